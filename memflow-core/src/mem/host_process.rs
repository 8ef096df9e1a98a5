//! Batched reads and writes of the memory of another process on this host: the primitive
//! under the native OS layer's processes and anything else that reads a host process.
//!
//! A batch goes to the kernel as `process_vm_readv` / `process_vm_writev` calls of up to
//! [`MAX_IOVECS`] operations each. Such a call stops at the first byte it cannot transfer and
//! returns how much it did; the done part is reported, and the next call starts where the
//! last one stopped. A call that can do nothing at all fails the page under its first byte,
//! so an unmapped page costs one extra call and everything after it still goes in bulk.
//! A single operation ([`HostProcessMemory::read_single`]) is first tried as one call with
//! one iovec, allocating nothing; only if that does not transfer every byte does it go the
//! batch way.
//!
//! Where those calls are not permitted (`EPERM`, as under some seccomp profiles, or
//! `ENOSYS`), the process switches for good to `pread` / `pwrite` on `/proc/PID/mem`, one
//! operation at a time. If that file cannot be opened either, the error is
//! `PermissionDenied`. Writes through `/proc/PID/mem` reach read-only mappings (as a
//! debugger's do), while `process_vm_writev` fails on them.
//!
//! A process that is gone gives `Gone` errors. Either way, every byte of every operation is
//! reported once, through `on_ok` or `on_fail`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use cglue::slice::{CSliceMut, CSliceRef};

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::{partial, report, ChunkCallback, MemBatch, MemOp, SplitBuf};
use crate::types::Address;

/// The most operations per `process_vm_readv` / `process_vm_writev` call (`IOV_MAX`).
pub const MAX_IOVECS: usize = 1024;

/// How a process's memory is reached.
#[derive(Clone)]
enum MemAccess {
    /// `process_vm_readv` / `process_vm_writev`.
    Syscalls,
    /// `pread` / `pwrite` on the open `/proc/PID/mem` (positioned calls: clones share the file).
    ProcMem(Arc<File>),
}

/// The error of a failed memory call on a process: a process that no longer exists gives
/// `Gone`, denied access `PermissionDenied`, anything else `Io`.
fn process_error(e: &io::Error) -> Error {
    Error::new(ErrorOrigin::Process, ErrorKind::of_process_io(e, ErrorKind::Gone))
}

/// `addr` as a 64-bit value, if it fits ([`crate::types::umem`] may be wider).
#[allow(clippy::useless_conversion)]
fn host_address(addr: Address) -> Option<u64> {
    u64::try_from(addr.to_umem()).ok()
}

/// A buffer of one transfer direction and the system calls that move it.
pub trait Transfer: SplitBuf {
    /// The local iovec of the whole buffer.
    fn local_iovec(&self) -> libc::iovec;

    /// `process_vm_readv` or `process_vm_writev`; returns the byte count or -1 (see `errno`).
    ///
    /// # Safety
    /// `local` must describe live buffers that may be written (reads) or read (writes).
    unsafe fn vm_call(pid: libc::pid_t, local: &[libc::iovec], remote: &[libc::iovec]) -> isize;

    /// `pread` into or `pwrite` from the whole buffer at `offset` of `file`.
    fn file_call(&mut self, file: &File, offset: u64) -> io::Result<usize>;
}

impl Transfer for CSliceMut<'_, u8> {
    fn local_iovec(&self) -> libc::iovec {
        libc::iovec { iov_base: self.as_ptr() as *mut libc::c_void, iov_len: self.len() }
    }

    unsafe fn vm_call(pid: libc::pid_t, local: &[libc::iovec], remote: &[libc::iovec]) -> isize {
        libc::process_vm_readv(pid, local.as_ptr(), local.len() as _, remote.as_ptr(), remote.len() as _, 0)
    }

    fn file_call(&mut self, file: &File, offset: u64) -> io::Result<usize> {
        file.read_at(self, offset)
    }
}

impl Transfer for CSliceRef<'_, u8> {
    fn local_iovec(&self) -> libc::iovec {
        // The kernel only reads the local buffers of a write.
        libc::iovec { iov_base: self.as_ptr() as *mut libc::c_void, iov_len: self.len() }
    }

    unsafe fn vm_call(pid: libc::pid_t, local: &[libc::iovec], remote: &[libc::iovec]) -> isize {
        libc::process_vm_writev(pid, local.as_ptr(), local.len() as _, remote.as_ptr(), remote.len() as _, 0)
    }

    fn file_call(&mut self, file: &File, offset: u64) -> io::Result<usize> {
        file.write_at(self, offset)
    }
}

/// An operation still (partly) to do: the remote address, the caller's tag, the buffer.
struct Pending<B> {
    addr: u64,
    tag: Address,
    buf: B,
}

impl<B: SplitBuf> Pending<B> {
    /// Splits off the first `len` bytes (at most all of them); the rest follows, if any.
    fn split(self, len: usize) -> (Pending<B>, Option<Pending<B>>) {
        let len = len.min(self.buf.len());
        let (head, tail) = self.buf.split_at(len);
        let rest = (!tail.is_empty()).then(|| Pending { addr: self.addr + len as u64, tag: self.tag + len, buf: tail });
        (Pending { addr: self.addr, tag: self.tag, buf: head }, rest)
    }
}

/// The operations of one step and where their outcome goes.
struct Queue<'r, 'a, B> {
    pending: VecDeque<Pending<B>>,
    on_ok: Option<&'r mut ChunkCallback<'a, B>>,
    on_fail: Option<&'r mut ChunkCallback<'a, B>>,
    page_size: u64,
}

impl<B: SplitBuf> Queue<'_, '_, B> {
    /// Reports the first `len` bytes of the first operation as done (`ok`) or failed.
    fn settle_front(&mut self, len: usize, ok: bool) {
        let Some(op) = self.pending.pop_front() else { return };
        let (head, rest) = op.split(len);
        report(if ok { &mut self.on_ok } else { &mut self.on_fail }, head.tag, head.buf);
        if let Some(rest) = rest {
            self.pending.push_front(rest);
        }
    }

    /// Reports `len` bytes from the front as done, across as many operations as they cover.
    fn settle_done(&mut self, mut len: usize) {
        while len > 0 {
            let Some(op) = self.pending.front() else { return };
            let take = len.min(op.buf.len());
            self.settle_front(take, true);
            len -= take;
        }
    }

    /// Bytes of the first operation up to the end of the page under its first byte.
    fn front_page_len(&self) -> usize {
        self.pending.front().map_or(0, |op| {
            let room = self.page_size - op.addr % self.page_size;
            op.buf.len().min(usize::try_from(room).unwrap_or(usize::MAX))
        })
    }

    /// Fails the rest of the page under the first pending byte.
    fn fail_front_page(&mut self) {
        self.settle_front(self.front_page_len(), false);
    }

    /// Handles a call that could not start on the first operation. If the operation lies in
    /// one page, that page is failed; else its first page is split off for the next call to
    /// try alone, since a kernel may refuse a whole iovec when a later page of it fails.
    fn front_failed(&mut self) {
        let len = self.front_page_len();
        let Some(op) = self.pending.pop_front() else { return };
        match op.split(len) {
            (head, Some(rest)) => {
                self.pending.push_front(rest);
                self.pending.push_front(head);
            }
            (head, None) => report(&mut self.on_fail, head.tag, head.buf),
        }
    }

    /// Fails every pending operation.
    fn fail_all(&mut self) {
        while let Some(op) = self.pending.pop_front() {
            report(&mut self.on_fail, op.tag, op.buf);
        }
    }
}

/// One `process_vm_*` call over the queue (up to [`MAX_IOVECS`] operations). Returns
/// `Ok(false)` if such calls are not permitted here.
fn vm_step<B: Transfer>(pid: u32, queue: &mut Queue<B>) -> Result<bool> {
    // The iovecs live on the stack (16 KiB each), so a call allocates nothing; only the
    // first `count` entries are written and used.
    let mut local = [MaybeUninit::<libc::iovec>::uninit(); MAX_IOVECS];
    let mut remote = [MaybeUninit::<libc::iovec>::uninit(); MAX_IOVECS];
    let mut count = 0;
    for ((op, l), r) in queue.pending.iter().zip(&mut local).zip(&mut remote) {
        l.write(op.buf.local_iovec());
        r.write(remote_iovec(op.addr, op.buf.len()));
        count += 1;
    }
    // SAFETY: the first `count` entries of both arrays were written just above.
    let (local, remote) = unsafe { (assume_init(&local, count), assume_init(&remote, count)) };
    // SAFETY: the local iovecs describe the pending buffers, which the queue owns (borrowed
    // for the right direction) until they are reported after the call.
    let done = unsafe { B::vm_call(pid as libc::pid_t, local, remote) };
    match usize::try_from(done) {
        Ok(0) => queue.front_failed(),
        Ok(done) => queue.settle_done(done),
        Err(_) => {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EFAULT) => queue.front_failed(),
                Some(libc::EINTR) => {}
                Some(libc::EPERM | libc::ENOSYS) => return Ok(false),
                _ => return Err(process_error(&err)),
            }
        }
    }
    Ok(true)
}

/// The iovec of `len` bytes at `addr` in the other process.
fn remote_iovec(addr: u64, len: usize) -> libc::iovec {
    libc::iovec { iov_base: addr as usize as *mut libc::c_void, iov_len: len }
}

/// The first `count` entries of `iovecs`.
///
/// # Safety
/// The first `count` entries must have been written.
unsafe fn assume_init(iovecs: &[MaybeUninit<libc::iovec>], count: usize) -> &[libc::iovec] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the caller guarantees the first
    // `count` entries are initialised.
    unsafe { std::slice::from_raw_parts(iovecs.as_ptr().cast::<libc::iovec>(), count.min(iovecs.len())) }
}

/// One `pread` / `pwrite` of the first operation.
fn file_step<B: Transfer>(file: &File, queue: &mut Queue<B>) -> Result<()> {
    let Some(op) = queue.pending.front_mut() else { return Ok(()) };
    match op.buf.file_call(file, op.addr) {
        // The file stays open after the process is gone, but its memory reads as empty.
        Ok(0) => Err(Error::new(ErrorOrigin::Process, ErrorKind::Gone)),
        Ok(done) => {
            queue.settle_front(done, true);
            Ok(())
        }
        Err(err) => match err.raw_os_error() {
            Some(libc::EIO | libc::EFAULT) => {
                queue.fail_front_page();
                Ok(())
            }
            Some(libc::EINTR) => Ok(()),
            _ => Err(process_error(&err)),
        },
    }
}

/// The memory of a process on this host, by pid (see the module documentation). Clones share
/// the open `/proc/PID/mem`, if any.
#[derive(Clone)]
pub struct HostProcessMemory {
    pid: u32,
    /// How its memory is reached; switched to `/proc/PID/mem` when the system calls are not
    /// permitted.
    access: MemAccess,
    /// The highest valid address.
    max_address: u64,
    /// The page size, the unit in which unreadable memory is failed.
    page_size: u64,
}

/// The highest user-space address of a 64-bit x86 process (4-level paging).
pub const MAX_ADDRESS_64: u64 = 0x7fff_ffff_ffff;
/// The highest address of a 32-bit process.
pub const MAX_ADDRESS_32: u64 = 0xffff_ffff;

impl HostProcessMemory {
    /// The memory of process `pid` of architecture `arch`, up to its highest user address.
    pub fn of_process(pid: u32, arch: ArchitectureIdent) -> Self {
        Self::new(pid, if arch == ArchitectureIdent::X86_32 { MAX_ADDRESS_32 } else { MAX_ADDRESS_64 })
    }

    /// The memory of process `pid`, valid up to `max_address`. Nothing is opened yet: a
    /// process that does not exist fails its first transfer with `Gone`.
    pub fn new(pid: u32, max_address: u64) -> Self {
        let page_size = crate::mem::alloc::host_page_size() as u64;
        HostProcessMemory { pid, access: MemAccess::Syscalls, max_address, page_size }
    }

    /// The highest valid address.
    pub fn max_address(&self) -> u64 {
        self.max_address
    }

    /// Reaches memory through `pread` / `pwrite` on `/proc/PID/mem` from now on. This happens
    /// by itself when `process_vm_readv` is not permitted; call it to choose the file from the
    /// start. Fails with `PermissionDenied` or `Gone` if the file cannot be opened.
    pub fn use_proc_mem(&mut self) -> Result<()> {
        let file = OpenOptions::new().read(true).write(true).open(format!("/proc/{}/mem", self.pid));
        self.access = MemAccess::ProcMem(Arc::new(file.map_err(|e| process_error(&e))?));
        Ok(())
    }

    /// Reads `out.len()` bytes at `addr` in one operation; unreadable bytes are zeroed.
    /// Returns how many bytes from the start were read before the first unreadable one (the
    /// contract of [`crate::mem::MemoryView::read_single`]).
    #[inline]
    pub fn read_single(&mut self, addr: Address, out: &mut [u8]) -> Result<usize> {
        let out = CSliceMut::from(out);
        if self.direct(addr, &out) {
            return Ok(out.len());
        }
        self.read_single_as_batch(addr, out)
    }

    /// [`read_single`](Self::read_single) when one call did not do it, out of the way of the
    /// common case.
    #[cold]
    #[inline(never)]
    fn read_single_as_batch(&mut self, addr: Address, out: CSliceMut<'_, u8>) -> Result<usize> {
        partial::read_single(MemOp { addr, tag: addr, buf: out }, |b| self.transfer(b))
    }

    /// Writes `data` at `addr` in one operation. Returns how many bytes from the start were
    /// written before the first one that was not (the contract of
    /// [`crate::mem::MemoryView::write_single`]).
    #[inline]
    pub fn write_single(&mut self, addr: Address, data: &[u8]) -> Result<usize> {
        let data = CSliceRef::from(data);
        if self.direct(addr, &data) {
            return Ok(data.len());
        }
        self.write_single_as_batch(addr, data)
    }

    /// [`write_single`](Self::write_single) when one call did not do it.
    #[cold]
    #[inline(never)]
    fn write_single_as_batch(&mut self, addr: Address, data: CSliceRef<'_, u8>) -> Result<usize> {
        partial::write_single(MemOp { addr, tag: addr, buf: data }, |b| self.transfer(b))
    }

    /// Tries `buf` at `addr` as one `process_vm_*` call with one iovec, allocating nothing;
    /// true if every byte was transferred. Anything else (a partial or failed call, bytes
    /// above the highest valid address, `/proc/PID/mem` access, an empty buffer) is for the
    /// caller to redo as a one-operation batch, which reports every byte the way batches do:
    /// a read is then read again and a write written again, both harmless.
    #[inline]
    fn direct<B: Transfer>(&self, addr: Address, buf: &B) -> bool {
        let len = buf.len();
        let Some(start) = host_address(addr) else { return false };
        let fits = len > 0 && start <= self.max_address && (len as u64 - 1) <= self.max_address - start;
        if !fits || !matches!(self.access, MemAccess::Syscalls) {
            return false;
        }
        // SAFETY: the local iovec describes `buf`, borrowed for the right direction for the
        // whole call.
        let done = unsafe { B::vm_call(self.pid as libc::pid_t, &[buf.local_iovec()], &[remote_iovec(start, len)]) };
        usize::try_from(done) == Ok(len)
    }

    /// Runs a batch: bytes above the highest valid address fail at once, the rest goes to the
    /// kernel in steps of at most [`MAX_IOVECS`] operations. After an error every remaining
    /// byte is failed and the error is returned.
    pub fn transfer<B: Transfer>(&mut self, batch: MemBatch<'_, '_, '_, MemOp<Address, B>, B>) -> Result<()> {
        let MemBatch { ops, on_ok, on_fail } = batch;
        let mut pending = VecDeque::new();
        // A step holds at most MAX_IOVECS operations (a partial step may put one back split).
        if pending.try_reserve_exact(ops.size_hint().0.clamp(1, MAX_IOVECS + 1)).is_err() {
            let mut on_fail = on_fail;
            ops.for_each(|op| report(&mut on_fail, op.tag, op.buf));
            return Err(Error::new(ErrorOrigin::Process, ErrorKind::OutOfMemory)
                .with_reason("no memory for a batch of host operations"));
        }
        let mut queue = Queue { pending, on_ok, on_fail, page_size: self.page_size };
        let mut outcome = Ok(());
        for MemOp { addr, tag, buf } in ops {
            let (start, valid) = host_address(addr)
                .filter(|&a| a <= self.max_address)
                .map_or((0, 0), |a| (a, (self.max_address - a).saturating_add(1)));
            let len = buf.len().min(usize::try_from(valid).unwrap_or(usize::MAX));
            let (head, tail) = buf.split_at(len);
            if !tail.is_empty() {
                report(&mut queue.on_fail, tag + head.len(), tail);
            }
            if !head.is_empty() {
                queue.pending.push_back(Pending { addr: start, tag, buf: head });
            }
            if queue.pending.len() >= MAX_IOVECS {
                outcome = outcome.and_then(|()| self.drain(&mut queue));
                queue.fail_all();
            }
        }
        outcome = outcome.and_then(|()| self.drain(&mut queue));
        queue.fail_all();
        outcome
    }

    /// Does every pending operation, leaving the queue empty unless there is an error.
    fn drain<B: Transfer>(&mut self, queue: &mut Queue<B>) -> Result<()> {
        while !queue.pending.is_empty() {
            match self.access {
                MemAccess::Syscalls => {
                    if !vm_step(self.pid, queue)? {
                        self.use_proc_mem()?;
                    }
                }
                MemAccess::ProcMem(ref file) => file_step(file, queue)?,
            }
        }
        Ok(())
    }
}
