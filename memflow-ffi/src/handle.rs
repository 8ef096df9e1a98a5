//! Opaque handles: a registry of live objects per type, so that a handle is checked without
//! ever being dereferenced.
//!
//! The pointer handed to C (`MfOs *`, ...) is not an address but a number that encodes a type
//! tag, a slot index and the slot's generation. A lookup decodes it, finds the slot in the
//! type's table and compares the generation before anything is touched: NULL, garbage (small
//! numbers, heap or stack addresses, pointers into strings), a handle of another type, a freed
//! handle, a double free and a stale handle whose slot now holds a newer object are all
//! rejected, every time, without reading memory at the handle's value. A slot whose generation
//! counter is used up is retired rather than wrapped, so a handle value is never handed out
//! twice. On 64-bit targets the tag sits in the top byte, which makes every handle value a
//! non-canonical address: C code that dereferences one faults at once instead of reading
//! something.
//!
//! Objects are `Arc<Mutex<_>>`. A call holds the shard's read lock only to clone the `Arc`,
//! then locks the object for the duration of the call: calls on one object are serialised,
//! calls on different objects run in parallel (the shards are chosen round-robin and sit on
//! their own cache lines), and a free that races a running call only removes the object from
//! the registry; the call finishes on its own reference.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};

use memflow_core::error::{Error, ErrorKind};

use crate::call::{ffi_err, guard};

/// Bits of a handle value that hold the slot index (shard in the low bits).
#[cfg(target_pointer_width = "64")]
const INDEX_BITS: u32 = 24;
/// Bits of a handle value that hold the slot's generation.
#[cfg(target_pointer_width = "64")]
const GEN_BITS: u32 = 32;
/// The high bits every tag carries (the top byte is `0xa0 | tag`: never a user-space address).
#[cfg(target_pointer_width = "64")]
const TAG_MARK: usize = 0xa0;
#[cfg(not(target_pointer_width = "64"))]
const INDEX_BITS: u32 = 16;
#[cfg(not(target_pointer_width = "64"))]
const GEN_BITS: u32 = 12;
#[cfg(not(target_pointer_width = "64"))]
const TAG_MARK: usize = 0x8;

const TAG_SHIFT: u32 = INDEX_BITS + GEN_BITS;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;
/// Shards per table (a power of two).
const SHARDS: usize = 16;
/// Live objects one type can have at once.
const MAX_LIVE: usize = 1 << INDEX_BITS;

/// The C type names by tag (tag 0 is never used).
const NAMES: [&str; 7] = ["", "MfInventory", "MfConnector", "MfOs", "MfProcess", "MfProcessList", "MfModuleList"];

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

/// A live object: the value behind its lock, and which thread holds that lock.
struct Object<H> {
    /// The mark (see [`thread_mark`]) of the thread inside a call on the object, 0 if none.
    owner: AtomicUsize,
    value: Mutex<H>,
}

struct Slot<H> {
    generation: usize,
    object: Option<Arc<Object<H>>>,
}

struct Slots<H> {
    slots: Vec<Slot<H>>,
    /// Indices of empty slots that may be reused; capacity kept >= `slots.len()` so that
    /// pushing never allocates.
    free: Vec<usize>,
}

/// One shard, on its own cache line(s) so that readers of different shards do not share one.
#[repr(align(128))]
struct Shard<H>(RwLock<Slots<H>>);

/// The registry of the live objects of one handle type.
pub(crate) struct Table<H> {
    shards: [Shard<H>; SHARDS],
    /// Round-robin choice of the shard for the next object.
    next: AtomicUsize,
}

impl<H: Handle> Table<H> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        Table {
            shards: [const { Shard(RwLock::new(Slots { slots: Vec::new(), free: Vec::new() })) }; SHARDS],
            next: AtomicUsize::new(0),
        }
    }
}

/// A handle's parts.
struct Decoded {
    tag: usize,
    generation: usize,
    shard: usize,
    slot: usize,
}

fn encode(tag: usize, generation: usize, shard: usize, slot: usize) -> usize {
    ((TAG_MARK | tag) << TAG_SHIFT) | (generation << INDEX_BITS) | (slot * SHARDS + shard)
}

fn decode(value: usize) -> Decoded {
    let index = value & INDEX_MASK;
    let top = value >> TAG_SHIFT;
    Decoded {
        tag: match top ^ TAG_MARK {
            tag if tag < NAMES.len() => tag,
            _ => 0,
        },
        generation: (value >> INDEX_BITS) & GEN_MASK,
        shard: index % SHARDS,
        slot: index / SHARDS,
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
    let shard = table.next.fetch_add(1, Ordering::Relaxed) % SHARDS;
    let mut s = table.shards[shard].0.write().unwrap_or_else(PoisonError::into_inner);
    let slot = match s.free.pop() {
        Some(slot) => slot,
        None => {
            let slot = s.slots.len();
            if slot >= MAX_LIVE / SHARDS {
                return Err(ffi_err(
                    ErrorKind::LimitExceeded,
                    format_args!("too many live {} handles (at most {MAX_LIVE}); free some", H::NAME),
                ));
            }
            let more = slot + 1 - s.free.len();
            if s.slots.try_reserve(1).is_err() || s.free.try_reserve(more).is_err() {
                return Err(ffi_err(
                    ErrorKind::OutOfMemory,
                    format_args!("no memory for the handle table of {}", H::NAME),
                ));
            }
            s.slots.push(Slot { generation: 0, object: None });
            slot
        }
    };
    let entry = &mut s.slots[slot];
    entry.object = Some(Arc::new(Object { owner: AtomicUsize::new(0), value: Mutex::new(value) }));
    Ok(encode(H::TAG, entry.generation, shard, slot) as *mut H)
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

/// The object of handle `ptr`, checked without dereferencing `ptr`.
fn lookup<H: Handle>(ptr: *const H, name: &str) -> Result<Arc<Object<H>>, Error> {
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("handle `{name}` ({}) is NULL", H::NAME)));
    }
    let value = ptr as usize;
    let d = decode(value);
    if d.tag != H::TAG {
        return Err(invalid::<H>(value, name));
    }
    let s = H::table().shards[d.shard].0.read().unwrap_or_else(PoisonError::into_inner);
    match s.slots.get(d.slot) {
        Some(Slot { generation, object: Some(object) }) if *generation == d.generation => Ok(Arc::clone(object)),
        _ => Err(invalid::<H>(value, name)),
    }
}

/// Clears the owner mark of an object when a call on it ends (before its lock is released).
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
    let object = lookup(ptr, name)?;
    let me = thread_mark();
    let mut value = match object.value.try_lock() {
        Ok(v) => v,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => {
            // Only this thread ever stores its own mark, and it clears it before unlocking.
            if object.owner.load(Ordering::Relaxed) == me {
                return Err(ffi_err(
                    ErrorKind::Unsupported,
                    format_args!(
                        "handle `{name}` ({}) is already in a call on this thread (used from inside one of its \
                         own callbacks)",
                        H::NAME
                    ),
                ));
            }
            object.value.lock().unwrap_or_else(PoisonError::into_inner)
        }
    };
    object.owner.store(me, Ordering::Relaxed);
    let _owned = Owned(&object.owner);
    f(&mut value)
}

/// Frees the handle `ptr`: 0 on success or for NULL (a no-op), `MF_ERR_INVALID_HANDLE` for
/// anything that is not a live handle of type `H`. A call running on the object on another
/// thread finishes first; the object is dropped when the last call on it ends.
pub(crate) fn free<H: Handle>(ptr: *mut H) -> i32 {
    guard(|| {
        if ptr.is_null() {
            return Ok(());
        }
        let value = ptr as usize;
        let d = decode(value);
        if d.tag != H::TAG {
            return Err(invalid::<H>(value, "handle"));
        }
        let object = {
            let mut s = H::table().shards[d.shard].0.write().unwrap_or_else(PoisonError::into_inner);
            let Slots { slots, free } = &mut *s;
            let slot = match slots.get_mut(d.slot) {
                Some(slot) if slot.generation == d.generation && slot.object.is_some() => slot,
                _ => return Err(invalid::<H>(value, "handle")),
            };
            let object = slot.object.take();
            slot.generation += 1;
            // A slot whose generation would wrap is retired: its handle values are never reused.
            if slot.generation <= GEN_MASK {
                free.push(d.slot);
            }
            object
        };
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
        let d = decode(h as usize);
        set_generation(d.shard, d.slot, GEN_MASK);
        let last = encode(3, GEN_MASK, d.shard, d.slot) as *mut Thing;
        assert_eq!(value(last).unwrap(), 1);
        assert_eq!(free(last), 0);
        let s = Thing::table().shards[d.shard].0.read().unwrap();
        assert!(!s.free.contains(&d.slot), "the slot is not reused");
    }

    /// Sets the generation of a slot (a test cannot free 2^32 times).
    fn set_generation(shard: usize, slot: usize, generation: usize) {
        let mut s = Thing::table().shards[shard].0.write().unwrap();
        s.slots[slot].generation = generation;
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
