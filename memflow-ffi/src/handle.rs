//! Opaque handles: a registry of live objects per type, so that a handle is checked without
//! ever being dereferenced.
//!
//! The pointer handed to C (`MfOs *`, ...) is not an address but a number that encodes a type
//! tag, a slot index and the slot's generation. A lookup decodes it, finds the slot in the
//! type's table and compares the generation before the object is touched: NULL, garbage
//! (small numbers, heap or stack addresses, pointers into strings), a handle of another type,
//! a freed handle, a double free and a stale handle whose slot now holds a newer object are
//! all rejected, every time, without reading memory at the handle's value. A slot whose
//! generation counter is used up is retired rather than wrapped, so a handle value is never
//! handed out twice. On 64-bit targets the tag sits in the top byte, which makes every handle
//! value a non-canonical address: C code that dereferences one faults at once instead of
//! reading something. On 32-bit targets (4 tag, 14 generation and 14 index bits) a garbage
//! value can, rarely, equal a live handle, and a slot retires after 16,384 reuses.
//!
//! Limits: at most [`MAX_LIVE`] live handles per type (1,048,576 on 64-bit targets; more
//! gives `MF_KIND_LIMIT_EXCEEDED`); a slot retires after 2^36 reuses on 64-bit targets.
//!
//! Each slot is a mutex around its generation and object, on its own cache line, in chunks
//! that are allocated as the table grows and never move or go away. A call locks its slot
//! for its duration: calls on one object are serialised, calls on different objects share
//! nothing (no table-wide lock, no shared cache line), and a free waits for the call running
//! on the object, then empties the slot. That costs one uncontended lock per call.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use memflow_core::error::{Error, ErrorKind};

use crate::call::{ffi_err, guard};

/// Bits of a handle value that hold the slot index.
#[cfg(target_pointer_width = "64")]
const INDEX_BITS: u32 = 20;
/// Bits of a handle value that hold the slot's generation.
#[cfg(target_pointer_width = "64")]
const GEN_BITS: u32 = 36;
/// The high bits every tag carries (the top byte is `0xa0 | tag`: never a user-space address).
#[cfg(target_pointer_width = "64")]
const TAG_MARK: usize = 0xa0;
#[cfg(not(target_pointer_width = "64"))]
const INDEX_BITS: u32 = 14;
#[cfg(not(target_pointer_width = "64"))]
const GEN_BITS: u32 = 14;
#[cfg(not(target_pointer_width = "64"))]
const TAG_MARK: usize = 0x8;

const TAG_SHIFT: u32 = INDEX_BITS + GEN_BITS;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;
/// Live objects one type can have at once.
const MAX_LIVE: usize = 1 << INDEX_BITS;
/// Slots per chunk of a table.
const CHUNK: usize = 256;
const CHUNKS: usize = MAX_LIVE / CHUNK;

/// The C type names by tag (tag 0 is never used).
const NAMES: [&str; 9] = [
    "",
    "MfInventory",
    "MfConnector",
    "MfOs",
    "MfProcess",
    "MfProcessList",
    "MfModuleList",
    "MfExportList",
    "MfSectionList",
];

/// A type handed to C as an opaque handle.
pub(crate) trait Handle: Send + Sized + 'static {
    /// The type's tag, an index into `NAMES`.
    const TAG: usize;
    /// The C type name, for error messages.
    const NAME: &'static str = NAMES[Self::TAG];
    /// The registry of live objects of this type.
    fn table() -> &'static Table<Self>;
}

/// Implements [`Handle`] for each type, with its tag and its own registry.
macro_rules! impl_handle {
    ($($ty:ident = $tag:literal;)*) => {$(
        impl $crate::handle::Handle for $ty {
            const TAG: usize = $tag;
            fn table() -> &'static $crate::handle::Table<Self> {
                static TABLE: $crate::handle::Table<$ty> = $crate::handle::Table::new();
                &TABLE
            }
        }
    )*};
}
pub(crate) use impl_handle;

/// What a slot holds: its generation and its object, if live.
struct State<H> {
    generation: usize,
    object: Option<Box<H>>,
}

/// One slot of a table, on its own cache line(s).
#[repr(align(128))]
struct Slot<H> {
    /// The mark (see [`thread_mark`]) of the thread that holds `state`, 0 if none.
    owner: AtomicUsize,
    state: Mutex<State<H>>,
}

/// Which slots are in use.
struct Alloc {
    /// Slots ever used (they are `0..used`).
    used: usize,
    /// Empty slots that may be reused; capacity kept >= `used` so that a free never allocates.
    free: Vec<usize>,
}

/// The registry of the live objects of one handle type.
pub(crate) struct Table<H> {
    /// Chunks of `CHUNK` slots, allocated in order as the table grows, never freed.
    chunks: [AtomicPtr<Slot<H>>; CHUNKS],
    alloc: Mutex<Alloc>,
}

impl<H: Handle> Table<H> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        Table {
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
            alloc: Mutex::new(Alloc { used: 0, free: Vec::new() }),
        }
    }

    /// Slot `index`, if its chunk exists.
    fn slot(&self, index: usize) -> Option<&Slot<H>> {
        let chunk = self.chunks.get(index / CHUNK)?.load(Ordering::Acquire);
        // SAFETY: a non-NULL chunk pointer points to `CHUNK` slots that are never freed.
        (!chunk.is_null()).then(|| unsafe { &*chunk.add(index % CHUNK) })
    }

    /// Reserves an empty slot: a free one, or the next one (allocating its chunk).
    fn reserve(&self) -> Result<usize, Error> {
        let mut a = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = a.free.pop() {
            return Ok(index);
        }
        let index = a.used;
        if index >= MAX_LIVE {
            return Err(ffi_err(
                ErrorKind::LimitExceeded,
                format_args!("too many live {} handles (at most {MAX_LIVE}); free some", H::NAME),
            ));
        }
        let no_memory = || ffi_err(ErrorKind::OutOfMemory, format_args!("no memory for the {} handle table", H::NAME));
        a.free.try_reserve(index + 1).map_err(|_| no_memory())?;
        if index % CHUNK == 0 {
            let mut chunk = Vec::new();
            chunk.try_reserve_exact(CHUNK).map_err(|_| no_memory())?;
            chunk.extend((0..CHUNK).map(|_| Slot {
                owner: AtomicUsize::new(0),
                state: Mutex::new(State { generation: 0, object: None }),
            }));
            // Never freed: a slot must outlive every lookup of it.
            let chunk = Box::leak(chunk.into_boxed_slice());
            self.chunks[index / CHUNK].store(chunk.as_mut_ptr(), Ordering::Release);
        }
        a.used += 1;
        Ok(index)
    }

    /// Puts slot `index` back for reuse.
    fn release(&self, index: usize) {
        let mut a = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        // Capacity for every used slot is reserved: this does not allocate.
        a.free.push(index);
    }
}

/// A handle's parts.
struct Decoded {
    tag: usize,
    generation: usize,
    index: usize,
}

fn encode(tag: usize, generation: usize, index: usize) -> usize {
    ((TAG_MARK | tag) << TAG_SHIFT) | (generation << INDEX_BITS) | index
}

fn decode(value: usize) -> Decoded {
    Decoded {
        tag: match (value >> TAG_SHIFT) ^ TAG_MARK {
            tag if tag < NAMES.len() => tag,
            _ => 0,
        },
        generation: (value >> INDEX_BITS) & GEN_MASK,
        index: value & INDEX_MASK,
    }
}

/// A number unique to the calling thread while it lives (the address of a thread-local).
fn thread_mark() -> usize {
    thread_local! {
        static MARK: u8 = const { 0 };
    }
    MARK.with(|m| m as *const u8 as usize)
}

/// Registers `value` and returns its handle; the caller (C) owns it.
pub(crate) fn into_raw<H: Handle>(value: H) -> Result<*mut H, Error> {
    let table = H::table();
    let index = table.reserve()?;
    let slot = table.slot(index).ok_or_else(|| {
        ffi_err(ErrorKind::Unknown, format_args!("handle slot {index} was reserved but has no chunk"))
    })?;
    let mut state = slot.state.lock().unwrap_or_else(PoisonError::into_inner);
    state.object = Some(Box::new(value));
    Ok(encode(H::TAG, state.generation, index) as *mut H)
}

/// Why `value` is not a live handle of type `H`.
fn invalid<H: Handle>(value: usize, name: &str) -> Error {
    let tag = decode(value).tag;
    let why = if tag == H::TAG {
        format!("not a live {} (already freed)", H::NAME)
    } else if tag != 0 {
        format!("an {}, not an {}", NAMES[tag], H::NAME)
    } else {
        format!("not an {} (garbage)", H::NAME)
    };
    ffi_err(ErrorKind::InvalidHandle, format_args!("handle `{name}` ({value:#x}) is {why}"))
}

/// The slot of handle `ptr`, locked, if `ptr` is a live handle of type `H`; checked without
/// dereferencing `ptr`. Waits for a call running on the object on another thread.
fn lock<'t, H: Handle>(ptr: *const H, name: &str) -> Result<(&'t Slot<H>, MutexGuard<'t, State<H>>), Error> {
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("handle `{name}` ({}) is NULL", H::NAME)));
    }
    let value = ptr as usize;
    let d = decode(value);
    let slot = match H::table().slot(d.index) {
        Some(slot) if d.tag == H::TAG => slot,
        _ => return Err(invalid::<H>(value, name)),
    };
    let state = match slot.state.try_lock() {
        Ok(state) => state,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => {
            // Only this thread ever stores its own mark, and it clears it before unlocking.
            if slot.owner.load(Ordering::Relaxed) == thread_mark() {
                return Err(ffi_err(
                    ErrorKind::Unsupported,
                    format_args!(
                        "handle `{name}` ({}) is already in a call on this thread (used from inside one of its \
                         own callbacks)",
                        H::NAME
                    ),
                ));
            }
            slot.state.lock().unwrap_or_else(PoisonError::into_inner)
        }
    };
    if state.generation != d.generation || state.object.is_none() {
        return Err(invalid::<H>(value, name));
    }
    Ok((slot, state))
}

/// Clears the owner mark of a slot when a call on it ends (before its lock is released).
struct Owned<'a>(&'a AtomicUsize);

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Runs `f` on the object of handle `ptr` (checked first), holding the object's lock for the
/// call: other threads' calls on the same object wait. A call on the object from inside `f`
/// on the same thread (a C callback calling back with the same handle) fails instead of
/// deadlocking.
pub(crate) fn with<H: Handle, R>(
    ptr: *const H,
    name: &str,
    f: impl FnOnce(&mut H) -> Result<R, Error>,
) -> Result<R, Error> {
    let (slot, mut state) = lock(ptr, name)?;
    slot.owner.store(thread_mark(), Ordering::Relaxed);
    let _owned = Owned(&slot.owner);
    match state.object.as_deref_mut() {
        Some(object) => f(object),
        None => Err(invalid::<H>(ptr as usize, name)),
    }
}

/// Frees the handle `ptr`: 0 on success or for NULL (a no-op), `MF_ERR_INVALID_HANDLE` for
/// anything that is not a live handle of type `H`. Waits for a call running on the object on
/// another thread; from inside such a call on the same thread it fails like [`with`].
pub(crate) fn free<H: Handle>(ptr: *mut H) -> i32 {
    guard(|| {
        if ptr.is_null() {
            return Ok(());
        }
        let (_, mut state) = lock(ptr, "handle")?;
        let object = state.object.take();
        state.generation += 1;
        // A slot whose generation would wrap is retired: its handle values are never reused.
        let reuse = state.generation <= GEN_MASK;
        drop(state);
        if reuse {
            H::table().release(decode(ptr as usize).index);
        }
        // Dropped outside the lock: closing a connector may take a while.
        drop(object);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(u32);
    struct Other;
    impl_handle! {
        Thing = 3;
        Other = 4;
    }

    fn value(h: *mut Thing) -> Result<u32, Error> {
        with(h, "h", |t: &mut Thing| Ok(t.0))
    }

    fn kind(r: Result<u32, Error>) -> ErrorKind {
        r.expect_err("must fail").kind
    }

    #[test]
    fn live_handles_work_and_everything_else_is_rejected_without_a_read() {
        let h = into_raw(Thing(7)).unwrap();
        assert_eq!(value(h).unwrap(), 7);
        assert_eq!(kind(value(std::ptr::null_mut())), ErrorKind::NullPointer);
        let local = 5u64;
        let unknown_tags = [(TAG_MARK | 7) << TAG_SHIFT, (TAG_MARK | 0xf) << TAG_SHIFT, TAG_MARK << TAG_SHIFT];
        let others = [0x10usize, 0x1000, &local as *const u64 as usize, usize::MAX, h as usize ^ 1 << INDEX_BITS];
        for garbage in unknown_tags.into_iter().chain(others) {
            assert_eq!(kind(value(garbage as *mut Thing)), ErrorKind::InvalidHandle, "{garbage:#x}");
        }
        let other = into_raw(Other).unwrap();
        assert_eq!(kind(value(other.cast())), ErrorKind::InvalidHandle);
        assert_eq!(free(other), 0);
        assert_eq!(free(h), 0);
        assert_eq!(kind(value(h)), ErrorKind::InvalidHandle);
        assert_eq!(free(h), crate::error::MF_ERR_INVALID_HANDLE, "double free");
    }

    #[test]
    fn a_stale_handle_never_aliases_the_object_that_reuses_its_slot() {
        let mut stale = Vec::new();
        for i in 0..64 {
            let h = into_raw(Thing(i)).unwrap();
            assert_eq!(free(h), 0);
            stale.push(h);
        }
        let fresh: Vec<_> = (100..164).map(|i| into_raw(Thing(i)).unwrap()).collect();
        for h in &stale {
            assert!(!fresh.contains(h), "a handle value was handed out twice");
            assert_eq!(kind(value(*h)), ErrorKind::InvalidHandle);
        }
        for h in fresh {
            assert!(value(h).unwrap() >= 100);
            assert_eq!(free(h), 0);
        }
    }

    #[test]
    fn a_slot_whose_generation_is_used_up_is_retired() {
        let h = into_raw(Thing(1)).unwrap();
        let index = decode(h as usize).index;
        let slot = Thing::table().slot(index).unwrap();
        // A test cannot free 2^36 times: jump to the last generation.
        slot.state.lock().unwrap().generation = GEN_MASK;
        let last = encode(3, GEN_MASK, index) as *mut Thing;
        assert_eq!(value(last).unwrap(), 1);
        assert_eq!(free(last), 0);
        let a = Thing::table().alloc.lock().unwrap();
        assert!(!a.free.contains(&index), "the slot is not reused");
    }

    #[test]
    fn concurrent_churn_never_revives_a_freed_handle() {
        let stale = std::sync::Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let stale = stale.clone();
                std::thread::spawn(move || {
                    for i in 0..2000u32 {
                        let h = into_raw(Thing(t * 10_000 + i)).unwrap();
                        assert_eq!(value(h).unwrap(), t * 10_000 + i, "a live handle finds its own object");
                        assert_eq!(free(h), 0);
                        let mut s = stale.lock().unwrap();
                        s.push(h as usize);
                        for &old in s.iter().rev().take(8) {
                            assert_eq!(kind(value(old as *mut Thing)), ErrorKind::InvalidHandle);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let mut all = stale.lock().unwrap().clone();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8000, "no handle value was handed out twice");
    }

    #[test]
    fn reentrant_use_fails_and_other_threads_wait() {
        let h = into_raw(Thing(0)).unwrap() as usize;
        let inner = with(h as *mut Thing, "h", |_| Ok(value(h as *mut Thing)));
        assert_eq!(kind(inner.unwrap()), ErrorKind::Unsupported);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        with(h as *mut Thing, "h", |t: &mut Thing| {
                            t.0 += 1;
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(value(h as *mut Thing).unwrap(), 8000, "calls on one object are serialised");
        assert_eq!(free(h as *mut Thing), 0);
    }
}
