//! `AddressSpace`: what `Connector` (physical memory), `Os` (the kernel's memory) and `Process`
//! share: reads, typed reads, batched reads, writes and scans of one address space, and the
//! plugin handle behind it.
//!
//! Threads: the handle sits behind a mutex, so an object may be used from any thread and its
//! calls run one at a time; for reads that run in parallel, give each thread its own `clone()`
//! (an independent instance of the same target). The mutex is waited for only with the GIL
//! released, so a thread holding it can always take the GIL (a scan's progress callback).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use memflow_cli::scan::{scan_ranges, Pattern, ScanRange};
use memflow_cli::target::Memory;
use memflow_core::error::{ErrorKind, ErrorOrigin, PartialError};
use memflow_core::mem::alloc::zeroed_vec;
use memflow_core::mem::{MemMapping, MemoryView, PhysicalMemory};
use memflow_core::prelude::{ConnectorInstanceArcBox, OsInstanceArcBox, ProcessInstanceArcBox};
use memflow_core::types::Address;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::buffer::Buffer;
use crate::errors::{Raised, Result};

/// The most bytes one `read` or `read_batch` returns (1 GiB): larger requests are refused
/// before anything is allocated.
pub const MAX_READ: usize = 1 << 30;

/// Reads and writes of at most this many bytes keep the GIL when the object is free: handing
/// the GIL over and back costs more than copying this much from a dump or a live guest (see
/// BENCHMARKS.md, "Python"), and no other thread could do Python work in so short a gap.
/// Longer ones, and every listing and scan, release it.
pub const KEEP_GIL_MAX: usize = 4096;

/// The plugin instance behind a Python object.
pub enum Handle {
    /// A connector: physical memory.
    Connector(ConnectorInstanceArcBox<'static>),
    /// The physical memory under an OS layer.
    OsPhysical(OsInstanceArcBox<'static>),
    /// An OS layer: the kernel's address space.
    Os(OsInstanceArcBox<'static>),
    /// A process: its address space.
    Process(ProcessInstanceArcBox<'static>),
}

/// An address space the bindings read: any [`MemoryView`] behind one object-safe trait.
pub trait Space: Memory {
    /// Reads each `(address, buffer)` in one batch: `Ok(true)` if every byte was readable,
    /// `Ok(false)` if some were not (those are zero).
    fn read_many(&mut self, ops: &mut [(u64, &mut [u8])]) -> memflow_core::error::Result<bool>;

    /// This space as the scanner takes it (one reader thread).
    fn as_memory(&mut self) -> &mut (dyn Memory + Send);
}

impl<T: MemoryView + Send> Space for T {
    fn read_many(&mut self, ops: &mut [(u64, &mut [u8])]) -> memflow_core::error::Result<bool> {
        let mut batcher = self.batcher();
        for (address, buf) in ops.iter_mut() {
            batcher.read_raw_into(Address::from(*address), buf);
        }
        match batcher.commit() {
            Ok(()) => Ok(true),
            Err(PartialError::PartialRead(())) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn as_memory(&mut self) -> &mut (dyn Memory + Send) {
        self
    }
}

/// The error for an OS layer without `what` (an optional part of an OS instance).
pub fn unsupported(what: &str) -> Raised {
    Raised::new(ErrorKind::Unsupported, format!("the OS layer has no {what}"))
}

impl Handle {
    /// Runs `f` on the address space of the handle.
    pub fn with_space<R>(&mut self, f: impl FnOnce(&mut dyn Space) -> Result<R>) -> Result<R> {
        match self {
            Handle::Connector(conn) => f(&mut conn.phys_view()),
            Handle::OsPhysical(os) => {
                f(&mut os.as_mut_impl_physicalmemory().ok_or_else(|| unsupported("physical memory"))?.phys_view())
            }
            Handle::Os(os) => f(os.as_mut_impl_memoryview().ok_or_else(|| unsupported("kernel address space"))?),
            Handle::Process(proc) => f(proc),
        }
    }

    /// An independent instance of the same target.
    pub fn duplicate(&self) -> Handle {
        match self {
            Handle::Connector(conn) => Handle::Connector(conn.clone()),
            Handle::OsPhysical(os) => Handle::OsPhysical(os.clone()),
            Handle::Os(os) => Handle::Os(os.clone()),
            Handle::Process(proc) => Handle::Process(proc.clone()),
        }
    }

    /// What a scan of this space covers by default: the present pages of a process's
    /// mappings, the kernel image and modules, the backed physical ranges.
    fn scan_ranges(&mut self) -> Result<Vec<ScanRange>> {
        match self {
            Handle::Process(proc) => {
                memflow_cli::scan::present_ranges(proc).map_err(|e| Raised::about("the process's mappings", e))
            }
            Handle::Os(os) => Ok(memflow_cli::scan::kernel_ranges(os)?.into_iter().map(|(b, s, _)| (b, s)).collect()),
            Handle::Connector(conn) => physical_ranges(conn),
            Handle::OsPhysical(os) => {
                physical_ranges(os.as_ref_impl_physicalmemory().ok_or_else(|| unsupported("physical memory"))?)
            }
        }
    }
}

/// The backed ranges of `phys`.
pub fn physical_ranges(phys: &impl PhysicalMemory) -> Result<Vec<ScanRange>> {
    let mut map: Vec<MemMapping> = Vec::new();
    phys.mem_map_callback((&mut map).into()).map_err(|e| Raised::about("the physical memory map", e))?;
    Ok(map.iter().map(|m| (m.base.to_umem() as u64, m.size as u64)).collect())
}

/// Turns a read's outcome into bytes or an error: unreadable bytes are an error unless `pad`.
fn check_read(all_readable: bool, pad: bool, address: u64, len: usize) -> Result<()> {
    match all_readable || pad {
        true => Ok(()),
        false => Err(Raised::new(
            ErrorKind::PartialRead,
            format!("{len} bytes at {address:#x} are not all readable (pass pad=True to read them as zeros)"),
        )),
    }
}

fn check_len(len: usize) -> Result<()> {
    match len <= MAX_READ {
        true => Ok(()),
        false => Err(Raised::new(
            ErrorKind::InvalidArgument,
            format!("{len} bytes is more than one read returns ({MAX_READ})"),
        )),
    }
}

/// An address space of a target: physical memory, a kernel's or a process's virtual memory.
///
/// Reads raise `PartialReadError` if any byte is unreadable, unless `pad=True` (then those
/// bytes are zero). The object holds a plugin instance: `close()` (or leaving a `with`
/// block) releases it at once, after which every call raises `GoneError`. Calls release the
/// GIL while they touch memory (but for reads and writes of at most 4 KiB, shorter than the
/// GIL's hand-over).
#[pyclass(subclass, module = "memflow", frozen)]
pub struct AddressSpace {
    handle: Mutex<Option<Handle>>,
    /// The thread holding `handle` (see [`thread_token`]), 0 if none: a call from a scan's
    /// progress callback on the object it scans fails instead of waiting for itself.
    holder: AtomicUsize,
}

/// A number unique to the calling thread among live threads: the address of a thread local.
fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|t| t as *const u8 as usize)
}

impl AddressSpace {
    /// The space of `handle`.
    pub fn new(handle: Handle) -> Self {
        AddressSpace { handle: Mutex::new(Some(handle)), holder: AtomicUsize::new(0) }
    }

    /// Runs `f` on the handle's slot, locked. With `keep_gil` (short reads and writes), `f`
    /// runs without releasing the GIL when the slot is free at once; otherwise, and whenever
    /// the slot is busy, the GIL is released first (so a thread holding the slot can always
    /// get the GIL, e.g. for a scan's progress callback).
    fn guarded<R: Send>(
        &self,
        py: Python<'_>,
        keep_gil: bool,
        f: impl FnOnce(&mut Option<Handle>) -> Result<R> + Send,
    ) -> Result<R> {
        let me = thread_token();
        if self.holder.load(Ordering::Acquire) == me {
            return Err(Raised::new(
                ErrorKind::InvalidArgument,
                "the object is in use by this thread (a scan's progress callback cannot use the object it scans)",
            ));
        }
        let run = |mut slot: MutexGuard<'_, Option<Handle>>| {
            self.holder.store(me, Ordering::Release);
            let result = f(&mut slot);
            self.holder.store(0, Ordering::Release);
            result
        };
        if keep_gil {
            match self.handle.try_lock() {
                Ok(slot) => return run(slot),
                // A panic cannot leave a handle half-changed: every call takes it as it is.
                Err(TryLockError::Poisoned(p)) => return run(p.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        py.allow_threads(|| run(self.handle.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// Runs `f` on the handle with the GIL released.
    pub fn with_handle<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Handle) -> Result<R> + Send) -> Result<R> {
        self.guarded(py, false, |slot| match slot {
            Some(handle) => f(handle),
            None => Err(Raised::new(ErrorKind::Gone, "the object is closed")),
        })
    }

    /// Runs `f`, which reads or writes `bytes` bytes, on the address space: with the GIL
    /// released, but for at most [`KEEP_GIL_MAX`] bytes (see there).
    pub fn with_space<R: Send>(
        &self,
        py: Python<'_>,
        bytes: usize,
        f: impl FnOnce(&mut dyn Space) -> Result<R> + Send,
    ) -> Result<R> {
        self.guarded(py, bytes <= KEEP_GIL_MAX, |slot| match slot {
            Some(handle) => handle.with_space(f),
            None => Err(Raised::new(ErrorKind::Gone, "the object is closed")),
        })
    }

    /// An independent instance of the handle.
    pub fn clone_handle(&self, py: Python<'_>) -> Result<Handle> {
        self.with_handle(py, |handle| Ok(handle.duplicate()))
    }

    /// Reads a plain value at `address`.
    fn read_pod<T: bytemuck::Pod + Send>(&self, py: Python<'_>, address: u64) -> Result<T> {
        self.with_space(py, std::mem::size_of::<T>(), |space| {
            let mut value = T::zeroed();
            let all = space.read(address, bytemuck::bytes_of_mut(&mut value))?;
            check_read(all, false, address, std::mem::size_of::<T>())?;
            Ok(value)
        })
    }
}

/// A scan pattern given from Python: text with wildcards or exact bytes.
#[derive(FromPyObject)]
enum PatternArg {
    Text(String),
    Bytes(Vec<u8>),
}

#[pymethods]
impl AddressSpace {
    /// read(address, size, *, pad=False) -> bytes
    ///
    /// Reads `size` bytes at `address` (at most 1 GiB at once).
    #[pyo3(signature = (address, size, *, pad = false))]
    fn read<'py>(&self, py: Python<'py>, address: u64, size: usize, pad: bool) -> PyResult<Bound<'py, PyBytes>> {
        check_len(size)?;
        let mut outcome: Result<()> = Ok(());
        let bytes = PyBytes::new_with(py, size, |out| {
            outcome = self.with_space(py, size, move |space| {
                let all = space.read(address, out)?;
                check_read(all, pad, address, size)
            });
            Ok(())
        })?;
        outcome?;
        Ok(bytes)
    }

    /// read_into(address, buffer, *, pad=False) -> int
    ///
    /// Reads `len(buffer)` bytes at `address` into `buffer`, any writable C-contiguous object
    /// of the buffer protocol (`bytearray`, `memoryview`, `array.array`, a numpy array, a
    /// `ctypes` array), without copying through Python. Returns the number of bytes read.
    #[pyo3(signature = (address, buffer, *, pad = false))]
    fn read_into(&self, py: Python<'_>, address: u64, buffer: &Bound<'_, PyAny>, pad: bool) -> PyResult<usize> {
        let mut buf = Buffer::get(buffer, true)?;
        let len = buf.len();
        let mut bytes = buf.bytes_mut();
        self.with_space(py, len, move |space| {
            let all = space.read(address, bytes.as_mut_slice())?;
            check_read(all, pad, address, len)
        })?;
        Ok(len)
    }

    /// read_batch(requests, *, pad=False) -> list[bytes]
    ///
    /// Reads every `(address, size)` of `requests` in one batch (one round trip on slow
    /// connectors) and returns their bytes in order.
    #[pyo3(signature = (requests, *, pad = false))]
    fn read_batch<'py>(&self, py: Python<'py>, requests: Vec<(u64, usize)>, pad: bool) -> PyResult<Bound<'py, PyList>> {
        let total = requests.iter().try_fold(0usize, |sum, r| sum.checked_add(r.1)).unwrap_or(usize::MAX);
        check_len(total)?;
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        for &(_, size) in &requests {
            bufs.push(zeroed_vec(size, ErrorOrigin::Other, "a batch read's bytes").map_err(Raised::from)?);
        }
        let bufs = self.with_space(py, total, move |space| {
            let mut ops: Vec<(u64, &mut [u8])> =
                requests.iter().zip(bufs.iter_mut()).map(|(r, b)| (r.0, b.as_mut_slice())).collect();
            match space.read_many(&mut ops)? || pad {
                true => Ok(bufs),
                false => Err(Raised::new(
                    ErrorKind::PartialRead,
                    format!(
                        "some of the {} reads are not all readable (pass pad=True to read them as zeros)",
                        ops.len()
                    ),
                )),
            }
        })?;
        PyList::new(py, bufs.iter().map(|b| PyBytes::new(py, b)))
    }

    /// read_u8(address) -> int: an unsigned 8-bit integer.
    fn read_u8(&self, py: Python<'_>, address: u64) -> PyResult<u8> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_u16(address) -> int: an unsigned 16-bit integer, in the target's (little) byte order.
    fn read_u16(&self, py: Python<'_>, address: u64) -> PyResult<u16> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_u32(address) -> int: an unsigned 32-bit integer.
    fn read_u32(&self, py: Python<'_>, address: u64) -> PyResult<u32> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_u64(address) -> int: an unsigned 64-bit integer (also a pointer on 64-bit targets).
    fn read_u64(&self, py: Python<'_>, address: u64) -> PyResult<u64> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_i8(address) -> int: a signed 8-bit integer.
    fn read_i8(&self, py: Python<'_>, address: u64) -> PyResult<i8> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_i16(address) -> int: a signed 16-bit integer.
    fn read_i16(&self, py: Python<'_>, address: u64) -> PyResult<i16> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_i32(address) -> int: a signed 32-bit integer.
    fn read_i32(&self, py: Python<'_>, address: u64) -> PyResult<i32> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_i64(address) -> int: a signed 64-bit integer.
    fn read_i64(&self, py: Python<'_>, address: u64) -> PyResult<i64> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_f32(address) -> float: an IEEE 754 single.
    fn read_f32(&self, py: Python<'_>, address: u64) -> PyResult<f32> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_f64(address) -> float: an IEEE 754 double.
    fn read_f64(&self, py: Python<'_>, address: u64) -> PyResult<f64> {
        Ok(self.read_pod(py, address)?)
    }

    /// read_struct(address, ctype) -> ctype instance
    ///
    /// Reads `ctypes.sizeof(ctype)` bytes at `address` into a new instance of `ctype` (a
    /// `ctypes.Structure`, `Union`, array or simple type).
    fn read_struct<'py>(
        &self,
        py: Python<'py>,
        address: u64,
        ctype: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let instance = ctype.call0()?;
        self.read_into(py, address, &instance, false)?;
        Ok(instance)
    }

    /// write(address, data) -> None
    ///
    /// Writes `data` (any bytes-like object) at `address`, all of it or an error.
    fn write(&self, py: Python<'_>, address: u64, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let buf = Buffer::get(data, false)?;
        let bytes = buf.bytes();
        self.with_space(py, bytes.len(), |space| {
            space
                .write(address, bytes)
                .map_err(|e| Raised::about(format!("writing {} bytes at {address:#x}", bytes.len()), e))
        })?;
        Ok(())
    }

    /// scan(pattern, *, ranges=None, align=1, limit=None, progress=None) -> list[int]
    ///
    /// Finds `pattern` and returns the addresses of its matches, in order. `pattern` is text
    /// of hexadecimal bytes with `??` wildcards (`"48 8b ?? ?? 90"`) or exact `bytes`.
    /// `ranges` lists `(address, size)` pairs to search; by default a process's present
    /// pages, the kernel image and its modules, or the backed physical ranges. Only matches
    /// at multiples of `align` count; the scan stops after `limit` matches. `progress(done,
    /// total)` is called with byte counts after each chunk (256 KiB); it may return `False`
    /// to stop. Matches never span unreadable pages.
    #[pyo3(
        signature = (pattern, *, ranges = None, align = 1, limit = None, progress = None),
        text_signature = "($self, pattern, *, ranges=None, align=1, limit=None, progress=None)"
    )]
    fn scan(
        &self,
        py: Python<'_>,
        pattern: PatternArg,
        ranges: Option<Vec<ScanRange>>,
        align: u64,
        limit: Option<usize>,
        progress: Option<PyObject>,
    ) -> PyResult<Vec<u64>> {
        let pattern = match pattern {
            PatternArg::Text(text) => Pattern::parse(&text),
            PatternArg::Bytes(bytes) => Pattern::literal(&bytes),
        }
        .map_err(|reason| Raised::new(ErrorKind::InvalidArgument, reason))?;
        if align == 0 {
            return Err(Raised::new(ErrorKind::InvalidArgument, "align must be at least 1").into());
        }
        let limit = limit.unwrap_or(usize::MAX);
        let mut callback_error: Option<PyErr> = None;
        let hits = self.with_handle(py, |handle| {
            let ranges = match ranges {
                Some(ranges) => ranges,
                None => handle.scan_ranges()?,
            };
            let total: u64 = ranges.iter().map(|r| r.1).sum();
            let mut done = 0u64;
            let mut hits = Vec::new();
            let mut report = |n: u64| {
                done += n;
                let Some(callback) = &progress else { return true };
                Python::with_gil(|py| match callback.call1(py, (done, total)) {
                    Ok(answer) => !matches!(answer.extract::<Option<bool>>(py), Ok(Some(false))),
                    Err(e) => {
                        callback_error = Some(e);
                        false
                    }
                })
            };
            handle.with_space(|space| {
                scan_ranges(&mut [space.as_memory()], &ranges, &pattern, align, &mut report, |address| {
                    hits.push(address);
                    hits.len() < limit
                })
                .map_err(Raised::from)
            })?;
            Ok(hits)
        })?;
        match callback_error {
            Some(e) => Err(e),
            None => Ok(hits),
        }
    }

    /// close() -> None
    ///
    /// Releases the plugin instance now (the plugin library is unloaded when nothing else
    /// uses it). Further calls raise `GoneError`; closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let handle = self.guarded(py, false, |slot| Ok(slot.take()))?;
        drop(handle);
        Ok(())
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.guarded(py, true, |slot| Ok(slot.is_none()))?)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close(py)
    }
}
