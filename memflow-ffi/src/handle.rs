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
//! reading something. On 32-bit targets (5 tag, 13 generation and 14 index bits) a garbage
//! value can, rarely, equal a live handle, and a slot retires after 8,192 reuses.
//!
//! Limits: at most [`MAX_LIVE`] live handles per type (1,048,576 on 64-bit targets; more
//! gives `MF_KIND_LIMIT_EXCEEDED`); a slot retires after 2^36 reuses on 64-bit targets.
//!
//! Every call needs exclusive use of its object: calls on one object are serialised, calls on
//! different objects share nothing (no table-wide lock, no shared cache line), and a free waits
//! for the call running on the object, then empties the slot. The plain way, a mutex per slot,
//! costs two atomic read-modify-writes per call, and on x86 each of them also waits for every
//! load before it: a stream of small reads then loses all overlap between the cache misses of
//! consecutive reads (an 8 B read through the C API measured 3.7x a direct read). So a slot is
//! *biased* to the first thread that calls on it (see [`Slot`]): that thread enters and leaves
//! with plain stores and loads, and only another thread that wants the object takes it over,
//! once, with the slot's mutex and a process-wide barrier (Linux `membarrier`). Where that
//! barrier is not available, every call takes the mutex.

use std::cell::UnsafeCell;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicPtr, AtomicUsize, Ordering};
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
const GEN_BITS: u32 = 13;
#[cfg(not(target_pointer_width = "64"))]
const TAG_MARK: usize = 0x10;

const TAG_SHIFT: u32 = INDEX_BITS + GEN_BITS;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;
/// Live objects one type can have at once.
const MAX_LIVE: usize = 1 << INDEX_BITS;
/// Slots per chunk of a table.
const CHUNK: usize = 256;
const CHUNKS: usize = MAX_LIVE / CHUNK;

/// The C type names by tag (tag 0 is never used).
const NAMES: [&str; 13] = [
    "",
    "MfInventory",
    "MfConnector",
    "MfOs",
    "MfProcess",
    "MfProcessList",
    "MfModuleList",
    "MfExportList",
    "MfImportList",
    "MfSectionList",
    "MfMemoryRangeList",
    "MfKernelSymbolList",
    "MfThreadList",
];

// Tags are 4 bits below the mark bits.
const _: () = assert!(NAMES.len() <= 16 && TAG_MARK & 0xf == 0);

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

/// One slot of a table, on its own cache line(s): the object and its [`SlotState`].
#[repr(C, align(128))]
struct Slot<H> {
    state: SlotState,
    /// The object, if live; accessed only as [`SlotState`] says.
    object: UnsafeCell<Option<Box<H>>>,
}

/// The part of a slot that does not depend on the object's type.
///
/// Who may touch the object (and change `generation`):
/// - the thread the slot is biased to (`bias`), between setting `busy` and clearing it, if it
///   then finds `revoked` clear: the fast path, no atomic read-modify-write;
/// - a thread that holds `lock` and, if the slot is biased to another thread, has revoked the
///   bias: set `revoked`, run a process-wide barrier, then waited until `busy` is clear.
///
/// The barrier pairs with the biased thread's store of `busy` before its load of `revoked`
/// (an asymmetric Dekker handshake): either that load sees `revoked`, or the revoking thread
/// sees `busy` and waits. While its thread lives, a slot's bias never moves (a slot that one
/// thread uses keeps serving it fast, object after object), so `busy` has one writer, and a
/// stale attempt of the biased thread (a freed handle) only touches `busy` and `generation`.
/// `revoked` stays set for the object's life; a new object that the biased thread creates in
/// the slot clears it. When the biased thread exits, it unbiases its slots
/// ([`BiasedSlots`]), so that another thread can have them.
struct SlotState {
    /// Generation of the slot's current (or last) object: see [`encode`].
    generation: AtomicUsize,
    /// Mark (see [`thread_mark`]) of the thread the slot is biased to, 0 if none.
    bias: AtomicUsize,
    /// Set by the biased thread, its only writer, for the duration of each of its fast calls.
    busy: AtomicBool,
    /// Set by a thread that took the current object over from the biased thread.
    revoked: AtomicBool,
    /// Mark of the thread that holds `lock`, 0 if none.
    owner: AtomicUsize,
    /// Serialises every access other than the biased thread's fast path.
    lock: Mutex<()>,
}

impl<H> std::ops::Deref for Slot<H> {
    type Target = SlotState;
    fn deref(&self) -> &SlotState {
        &self.state
    }
}

// SAFETY: `object` is only reached with exclusive access (see `SlotState`), which moves `H`
// between threads but never shares it.
unsafe impl<H: Send> Sync for Slot<H> {}

impl<H> Slot<H> {
    fn empty() -> Self {
        Slot {
            state: SlotState {
                generation: AtomicUsize::new(0),
                bias: AtomicUsize::new(0),
                busy: AtomicBool::new(false),
                revoked: AtomicBool::new(false),
                owner: AtomicUsize::new(0),
                lock: Mutex::new(()),
            },
            object: UnsafeCell::new(None),
        }
    }
}

/// The slots biased to the calling thread. When the thread exits, it unbiases them (it can
/// have no call in flight then), so that a thread that comes later can take them: without
/// this, a program that starts threads for short jobs would leave most slots biased to
/// threads that are gone.
struct BiasedSlots(Vec<&'static SlotState>);

impl Drop for BiasedSlots {
    fn drop(&mut self) {
        for state in self.0.drain(..) {
            let _lock = state.lock.lock().unwrap_or_else(PoisonError::into_inner);
            state.bias.store(0, Ordering::Relaxed);
            state.revoked.store(false, Ordering::Relaxed);
        }
    }
}

thread_local! {
    static BIASED: std::cell::RefCell<BiasedSlots> = const { std::cell::RefCell::new(BiasedSlots(Vec::new())) };
}

/// Biases `state` (unbiased, its lock held by the calling thread `me`) to `me`, if biasing
/// works here and the thread can remember the slot for its exit.
fn bias_to(state: &'static SlotState, me: usize) {
    if !biasing() {
        return;
    }
    let remembered = BIASED.try_with(|b| {
        let mut b = b.try_borrow_mut().ok()?;
        b.0.try_reserve(1).ok()?;
        b.0.push(state);
        Some(())
    });
    if let Ok(Some(())) = remembered {
        state.bias.store(me, Ordering::Relaxed);
    }
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
    #[inline]
    fn slot(&'static self, index: usize) -> Option<&'static Slot<H>> {
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
            chunk.extend((0..CHUNK).map(|_| Slot::empty()));
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

#[inline]
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

/// A number unique to the calling thread while it lives, never 0: its `pthread_t` (on glibc
/// and musl the address of the thread's control block, read in two instructions, where a
/// thread-local of a shared library costs a call to `__tls_get_addr`).
#[cfg(unix)]
#[inline]
fn thread_mark() -> usize {
    // SAFETY: no arguments, always succeeds.
    (unsafe { libc::pthread_self() } as usize).max(1)
}

/// A number unique to the calling thread while it lives, never 0 (the address of a
/// thread-local).
#[cfg(not(unix))]
#[inline]
fn thread_mark() -> usize {
    thread_local! {
        static MARK: u8 = const { 0 };
    }
    MARK.with(|m| m as *const u8 as usize)
}

/// Whether slots may be biased: the process-wide barrier that revoking a bias needs works
/// here (Linux 4.14 and later, registered once).
#[cfg(target_os = "linux")]
fn biasing() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // SAFETY: membarrier takes no pointers.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
    })
}

#[cfg(not(target_os = "linux"))]
fn biasing() -> bool {
    false
}

#[cfg(target_os = "linux")]
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
#[cfg(target_os = "linux")]
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

/// Runs a memory barrier on every running thread of the process.
fn barrier_everywhere() {
    #[cfg(target_os = "linux")]
    // SAFETY: membarrier takes no pointers. It cannot fail once registered ([`biasing`]).
    unsafe {
        libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    }
}

/// Registers `value` and returns its handle; the caller (C) owns it.
pub(crate) fn into_raw<H: Handle>(value: H) -> Result<*mut H, Error> {
    let table = H::table();
    let index = table.reserve()?;
    let slot = table.slot(index).ok_or_else(|| {
        ffi_err(ErrorKind::Unknown, format_args!("handle slot {index} was reserved but has no chunk"))
    })?;
    let _lock = slot.lock.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: a reserved slot is empty and nobody else has its handle yet; a stale attempt of
    // the biased thread finds the old generation and never reaches `object`.
    unsafe { *slot.object.get() = Some(Box::new(value)) };
    if slot.bias.load(Ordering::Relaxed) == thread_mark() {
        // Only this thread reads `revoked` without the lock, and it is here.
        slot.revoked.store(false, Ordering::Relaxed);
    }
    Ok(encode(H::TAG, slot.generation.load(Ordering::Relaxed), index) as *mut H)
}

/// Why `value` is not a live handle of type `H`.
#[cold]
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

/// The error of a call on an object from inside a call on it on the same thread.
#[cold]
fn reentrant<H: Handle>(name: &str) -> Error {
    ffi_err(
        ErrorKind::Unsupported,
        format_args!(
            "handle `{name}` ({}) is already in a call on this thread (used from inside one of its own callbacks)",
            H::NAME
        ),
    )
}

/// Exclusive use of a slot's object, given up on drop.
enum Access<H: 'static> {
    /// The biased thread's fast path: `busy` is set.
    Biased(&'static Slot<H>),
    /// Any other access: the slot lock is held (the guard unlocks on drop) and no biased call
    /// can run.
    Locked(&'static Slot<H>, #[allow(dead_code)] MutexGuard<'static, ()>),
}

impl<H: 'static> Access<H> {
    fn slot(&self) -> &Slot<H> {
        match self {
            Access::Biased(slot) | Access::Locked(slot, _) => slot,
        }
    }

    /// The slot's object.
    fn object(&mut self) -> &mut Option<Box<H>> {
        // SAFETY: an `Access` is exclusive use of the object (see `Slot`).
        unsafe { &mut *self.slot().object.get() }
    }
}

impl<H: 'static> Drop for Access<H> {
    fn drop(&mut self) {
        match self {
            // Release: a thread that revokes the bias next sees what this call wrote.
            Access::Biased(slot) => slot.busy.store(false, Ordering::Release),
            Access::Locked(slot, _) => {
                // The first thread to use a live object gets the slot's bias, once its call is
                // over (a biased call from inside this one would not be exclusive); a free
                // leaves the slot to whoever uses its next object. All of this happens before
                // the guard (a field) unlocks.
                let me = slot.owner.load(Ordering::Relaxed);
                // SAFETY: this access is exclusive until the guard unlocks.
                let live = unsafe { (*slot.object.get()).is_some() };
                if live && slot.bias.load(Ordering::Relaxed) == 0 {
                    bias_to(&slot.state, me);
                }
                slot.owner.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Exclusive use of the object of handle `ptr` for the thread its slot is biased to, if
/// `ptr` is a live handle of type `H` and no call on the object runs on this thread: the way
/// in of almost every call, kept small enough to inline. `None` otherwise, having changed
/// nothing; then [`acquire`] takes the checked way, which also says what is wrong.
#[inline(always)]
fn acquire_biased<H: Handle>(ptr: *const H) -> Option<Access<H>> {
    let d = decode(ptr as usize);
    if d.tag != H::TAG {
        return None;
    }
    let slot = H::table().slot(d.index)?;
    if slot.bias.load(Ordering::Relaxed) != thread_mark() || slot.busy.load(Ordering::Relaxed) {
        return None;
    }
    slot.busy.store(true, Ordering::Relaxed);
    // Keeps the compiler from moving the load of `revoked` above the store of `busy`; the
    // processor's reordering is undone by the revoking thread's barrier.
    compiler_fence(Ordering::SeqCst);
    let mut access = Access::Biased(slot);
    let live = !slot.revoked.load(Ordering::Relaxed)
        && slot.generation.load(Ordering::Relaxed) == d.generation
        && access.object().is_some();
    live.then_some(access) // dropping `access` clears `busy`
}

/// Exclusive use of the object of handle `ptr`, if `ptr` is a live handle of type `H`, through
/// the slot lock; checked without dereferencing `ptr`. Waits for a call running on the object
/// on another thread.
#[inline(never)]
fn acquire<H: Handle>(ptr: *const H, name: &str) -> Result<Access<H>, Error> {
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("handle `{name}` ({}) is NULL", H::NAME)));
    }
    let value = ptr as usize;
    let d = decode(value);
    let slot = match H::table().slot(d.index) {
        Some(slot) if d.tag == H::TAG => slot,
        _ => return Err(invalid::<H>(value, name)),
    };
    let mut access = locked::<H>(slot, thread_mark(), name)?;
    let live = slot.generation.load(Ordering::Relaxed) == d.generation && access.object().is_some();
    if !live {
        return Err(invalid::<H>(value, name));
    }
    Ok(access)
}

/// The locked path: takes the slot lock (failing instead of deadlocking inside a call on the
/// object on the same thread) and revokes a bias to another thread.
fn locked<H: Handle>(slot: &'static Slot<H>, me: usize, name: &str) -> Result<Access<H>, Error> {
    // Our own biased call is running (this is a call from inside one of its callbacks): fail
    // before taking the lock, which a thread revoking the bias may hold while it waits for
    // that call to end. Only this thread writes `busy`, so the answer is exact.
    let our_call_runs = || slot.bias.load(Ordering::Relaxed) == me && slot.busy.load(Ordering::Relaxed);
    if our_call_runs() {
        return Err(reentrant::<H>(name));
    }
    let guard = match slot.lock.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => {
            // Only this thread ever stores its own mark, and it clears it before unlocking.
            if slot.owner.load(Ordering::Relaxed) == me {
                return Err(reentrant::<H>(name));
            }
            slot.lock.lock().unwrap_or_else(PoisonError::into_inner)
        }
    };
    slot.owner.store(me, Ordering::Relaxed);
    let access = Access::Locked(slot, guard);
    let bias = slot.bias.load(Ordering::Relaxed);
    if bias != me && bias != 0 && !slot.revoked.load(Ordering::Relaxed) {
        slot.revoked.store(true, Ordering::Relaxed);
        barrier_everywhere();
        wait_until_idle(&slot.busy);
    }
    Ok(access)
}

/// Waits until the biased thread's current call (if any) ends.
fn wait_until_idle(busy: &AtomicBool) {
    let mut round = 0u32;
    while busy.load(Ordering::Acquire) {
        match round {
            0..64 => std::hint::spin_loop(),
            64..128 => std::thread::yield_now(),
            _ => std::thread::sleep(std::time::Duration::from_micros(50 << (round - 128).min(4))),
        }
        round = round.saturating_add(1);
    }
}

/// Runs `f` on the object of handle `ptr` (checked first), with exclusive use of the object
/// for the call: other threads' calls on the same object wait. A call on the object from
/// inside `f` on the same thread (a C callback calling back with the same handle) fails
/// instead of deadlocking.
#[inline]
pub(crate) fn with<H: Handle, R>(
    ptr: *const H,
    name: &str,
    f: impl FnOnce(&mut H) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut access = match acquire_biased(ptr) {
        Some(access) => access,
        None => acquire(ptr, name)?,
    };
    match access.object().as_deref_mut() {
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
        let mut access = acquire(ptr, "handle")?;
        let object = access.object().take();
        let slot = access.slot();
        let generation = slot.generation.load(Ordering::Relaxed) + 1;
        slot.generation.store(generation, Ordering::Relaxed);
        drop(access);
        // A slot whose generation would wrap is retired: its handle values are never reused.
        if generation <= GEN_MASK {
            H::table().release(decode(ptr as usize).index);
        }
        // Dropped outside the slot: closing a connector may take a while.
        drop(object);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(u32);
    struct Other;
    /// Used by one test each, so that their slots have no history.
    struct Solo(u32);
    struct Heir(u32);
    impl_handle! {
        Thing = 3;
        Other = 4;
        Solo = 5;
        Heir = 6;
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
        let unknown_tags = [(TAG_MARK | 0xb) << TAG_SHIFT, (TAG_MARK | 0xf) << TAG_SHIFT, TAG_MARK << TAG_SHIFT];
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
        slot.generation.store(GEN_MASK, Ordering::Relaxed);
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
    fn the_first_thread_gets_the_fast_path_and_keeps_it_for_its_next_objects() {
        if !biasing() {
            return; // every call takes the lock; the other tests cover that
        }
        let get = |h: *mut Solo| with(h, "h", |t: &mut Solo| Ok(t.0));
        let biased_here = |h: *mut Solo| {
            let slot = Solo::table().slot(decode(h as usize).index).unwrap();
            slot.bias.load(Ordering::Relaxed) == thread_mark() && !slot.revoked.load(Ordering::Relaxed)
        };
        let h = into_raw(Solo(1)).unwrap();
        assert_eq!(get(h).unwrap(), 1);
        assert!(biased_here(h));
        let nested = with(h, "h", |_| Ok(get(h)));
        assert_eq!(nested.unwrap().unwrap_err().kind, ErrorKind::Unsupported, "reentrance on the fast path");
        let freed = with(h, "h", |_| Ok(free(h)));
        assert_eq!(freed.unwrap(), crate::error::MF_ERR_UNSUPPORTED, "a free from inside a call");
        assert_eq!(free(h), 0);
        assert_eq!(get(h).unwrap_err().kind, ErrorKind::InvalidHandle, "a stale handle on the fast path");
        let again = into_raw(Solo(2)).unwrap();
        assert_eq!(decode(again as usize).index, decode(h as usize).index, "the slot is reused");
        assert!(biased_here(again));
        assert_eq!(get(again).unwrap(), 2);
        assert_eq!(free(again), 0);
    }

    #[test]
    fn a_thread_that_exits_leaves_its_slots_to_the_next() {
        if !biasing() {
            return;
        }
        let get = |h: usize| with(h as *mut Heir, "h", |t: &mut Heir| Ok(t.0));
        let slot_of = |h: usize| Heir::table().slot(decode(h).index).unwrap();
        let h = std::thread::spawn(move || {
            let h = into_raw(Heir(7)).unwrap() as usize;
            assert_eq!(get(h).unwrap(), 7);
            assert_eq!(slot_of(h).bias.load(Ordering::Relaxed), thread_mark());
            h
        })
        .join()
        .unwrap();
        assert_eq!(slot_of(h).bias.load(Ordering::Relaxed), 0, "unbiased when its thread exited");
        assert_eq!(get(h).unwrap(), 7);
        assert_eq!(slot_of(h).bias.load(Ordering::Relaxed), thread_mark(), "and biased to the next user");
        assert!(!slot_of(h).revoked.load(Ordering::Relaxed));
        assert_eq!(free(h as *mut Heir), 0);
    }

    #[test]
    fn another_thread_takes_a_biased_object_over_only_between_calls() {
        use std::sync::mpsc::channel;
        let h = into_raw(Thing(0)).unwrap() as usize;
        assert_eq!(value(h as *mut Thing).unwrap(), 0); // biased to this thread (where available)
        let (entered_tx, entered_rx) = channel();
        let other = std::thread::spawn(move || {
            entered_rx.recv().unwrap();
            // Waits for the call below to end, then sees what it wrote.
            with(h as *mut Thing, "h", |t: &mut Thing| Ok(t.0)).unwrap()
        });
        let slot = Thing::table().slot(decode(h).index).unwrap();
        let inner = with(h as *mut Thing, "h", |t: &mut Thing| {
            entered_tx.send(()).unwrap();
            if biasing() {
                // The other thread revokes the bias and waits: a call on the object from here
                // must fail, not deadlock.
                while !slot.revoked.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                }
                let nested = value(h as *mut Thing);
                assert_eq!(kind(nested), ErrorKind::Unsupported);
            }
            t.0 = 42;
            Ok(())
        });
        inner.unwrap();
        assert_eq!(other.join().unwrap(), 42, "the other thread got in after the call");
        // The bias is gone for this object: both threads now take the lock, and still agree.
        assert_eq!(value(h as *mut Thing).unwrap(), 42);
        let freer = std::thread::spawn(move || free(h as *mut Thing));
        assert_eq!(freer.join().unwrap(), 0, "a free from another thread");
        assert_eq!(kind(value(h as *mut Thing)), ErrorKind::InvalidHandle);
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
