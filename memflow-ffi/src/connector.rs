//! Connectors: where the bytes come from. Physical reads and writes, metadata, CPU state.

use std::ffi::c_void;

use memflow_core::connector::CpuState;
use memflow_core::error::{Error, ErrorKind};
use memflow_core::instance::ConnectorInstanceArcBox;
use memflow_core::mem::PhysicalMemory;
use memflow_core::types::PhysicalAddress;

use crate::call::{array_mut, buf_mut, buf_ref, ffi_err, guard, guard_partial, out_arg};
use crate::handle::{self, impl_handle};
use crate::mem;
use memflow_core::plugins::records::{
    addr_in, MfAArch64Registers, MfPhysicalMetadata, MfReadOp, MfRiscVRegisters, MfWriteOp, MfX86Registers,
};

/// A connector instance: physical memory of a target, and its CPU state where the connector
/// knows it. Opaque; made by `mf_inventory_create_connector`,
/// `mf_inventory_create_connector_chain` or `mf_connector_clone`; freed by `mf_connector_free`.
///
/// It keeps the plugin library it came from loaded; it does not depend on the inventory or
/// on any handle it was created from.
///
/// Threads: may be used from several threads at once; calls on it are serialised (see
/// "Threads" at the top of memflow.h).
pub struct MfConnector {
    pub(crate) inner: ConnectorInstanceArcBox<'static>,
}

impl_handle! { MfConnector = 2; }

impl MfConnector {
    /// Registers a connector instance as a new handle for C.
    pub(crate) fn into_handle(inner: ConnectorInstanceArcBox<'static>) -> Result<*mut Self, Error> {
        handle::into_raw(MfConnector { inner })
    }
}

/// A physical address from C.
pub(crate) fn phys(addr: u64) -> PhysicalAddress {
    PhysicalAddress::plain(addr_in(addr))
}

/// Makes an independent copy of `conn` (sharing what the connector shares between clones,
/// e.g. a mapped dump file) for use on another thread.
///
/// Ownership: `conn` is borrowed. On success `*out` receives a new handle owned by the caller
/// (free it with `mf_connector_free`).
#[no_mangle]
pub extern "C" fn mf_connector_clone(conn: *const MfConnector, out: *mut *mut MfConnector) -> i32 {
    guard(|| {
        let copy = handle::with(conn, "conn", |conn| Ok(conn.inner.clone()))?;
        let out = out_arg(out, "out")?;
        out.write(MfConnector::into_handle(copy)?);
        Ok(())
    })
}

/// Frees a connector handle. NULL is a no-op (returns 0); anything that is not a live
/// `MfConnector` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `conn`; it must not be used afterwards. Objects made from it (OS layers,
/// processes) stay valid.
#[no_mangle]
pub extern "C" fn mf_connector_free(conn: *mut MfConnector) -> i32 {
    handle::free(conn)
}

/// Reads `len` bytes of physical memory at `addr` into `buf`.
///
/// Returns 0 if every byte was read, `MF_ERR_PARTIAL_READ` if some could not be (they are
/// zero in `buf`, the rest is valid), or another error code (then `buf` is unspecified).
///
/// `*done` (if `done` is not NULL) receives how many bytes from the start of `buf` were read
/// before the first unreadable one: `len` with 0, less with `MF_ERR_PARTIAL_READ` (bytes after
/// the first unreadable one are still read where they can be), 0 with any other error.
///
/// Ownership: `buf` (at least `len` writable bytes; may be NULL if `len` is 0) is borrowed;
/// `*done` is caller storage.
#[no_mangle]
pub extern "C" fn mf_connector_read(
    conn: *mut MfConnector,
    addr: u64,
    buf: *mut c_void,
    len: usize,
    done: *mut usize,
) -> i32 {
    mem::single(conn, "conn", done, len, ErrorKind::PartialRead, |conn| {
        let buf = buf_mut(buf.cast(), len, "buf")?;
        conn.inner.phys_read_single(phys(addr), buf)
    })
}

/// Writes `len` bytes from `buf` to physical memory at `addr`.
///
/// Returns 0, `MF_ERR_PARTIAL_WRITE` if some bytes were not written, an error of kind
/// `MF_KIND_READ_ONLY` if the connector is read-only, or another error code.
///
/// `*done` (if `done` is not NULL) receives how many bytes from the start of `buf` were
/// written before the first one that was not: `len` with 0, less with `MF_ERR_PARTIAL_WRITE`,
/// 0 with any other error.
///
/// Ownership: `buf` (at least `len` readable bytes; may be NULL if `len` is 0) is borrowed;
/// `*done` is caller storage.
#[no_mangle]
pub extern "C" fn mf_connector_write(
    conn: *mut MfConnector,
    addr: u64,
    buf: *const c_void,
    len: usize,
    done: *mut usize,
) -> i32 {
    mem::single(conn, "conn", done, len, ErrorKind::PartialWrite, |conn| {
        let buf = buf_ref(buf.cast(), len, "buf")?;
        conn.inner.phys_write_single(phys(addr), buf)
    })
}

/// Reads many ranges of physical memory in one batch (one round trip for remote
/// connectors). Each op's `result` is set to 0 or `MF_ERR_PARTIAL_READ` (unreadable bytes
/// zeroed) and its `done` to the bytes read before its first unreadable one.
///
/// Returns 0 if every op was read fully, `MF_ERR_PARTIAL_READ` if any was partial, or another
/// error code if the batch as a whole failed (then the ops' results are untouched).
///
/// Ownership: `ops` (an array of `count` ops, NULL if `count` is 0) and their buffers are
/// borrowed for the call.
#[no_mangle]
pub extern "C" fn mf_connector_read_batch(conn: *mut MfConnector, ops: *mut MfReadOp, count: usize) -> i32 {
    guard_partial(|| {
        handle::with(conn, "conn", |conn| {
            let ops = array_mut(ops, count, "ops")?;
            memflow_core::plugins::records::read_ops(ops, phys, |b| conn.inner.phys_read_batch(b))
        })
    })
}

/// Writes many ranges of physical memory in one batch. Each op's `result` is set to 0 or
/// `MF_ERR_PARTIAL_WRITE` and its `done` to the bytes written before its first failed one.
///
/// Returns 0, `MF_ERR_PARTIAL_WRITE` if any op was partly written, an error of kind
/// `MF_KIND_READ_ONLY` if the connector is read-only, or another error code if the batch as a
/// whole failed (then the ops' results are untouched).
///
/// Ownership: `ops` (an array of `count` ops, NULL if `count` is 0) and their buffers are
/// borrowed for the call.
#[no_mangle]
pub extern "C" fn mf_connector_write_batch(conn: *mut MfConnector, ops: *mut MfWriteOp, count: usize) -> i32 {
    guard_partial(|| {
        handle::with(conn, "conn", |conn| {
            let ops = array_mut(ops, count, "ops")?;
            memflow_core::plugins::records::write_ops(ops, phys, |b| conn.inner.phys_write_batch(b))
        })
    })
}

/// Static facts about the connector's memory (size, read-only).
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_connector_metadata(conn: *const MfConnector, out: *mut MfPhysicalMetadata) -> i32 {
    guard(|| {
        handle::with(conn, "conn", |conn| {
            let out = out_arg(out, "out")?;
            out.write(MfPhysicalMetadata::from(&conn.inner.metadata()));
            Ok(())
        })
    })
}

/// The number of CPUs the connector has register state for: 0 for connectors without CPU
/// state (e.g. raw images).
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_connector_cpu_count(conn: *const MfConnector, out: *mut usize) -> i32 {
    guard(|| {
        handle::with(conn, "conn", |conn| {
            let out = out_arg(out, "out")?;
            out.write(conn.inner.as_ref_impl_cpustate().map_or(0, |c| c.cpu_count()));
            Ok(())
        })
    })
}

/// The x86 registers of CPU `cpu` (0-based) as the connector recorded them.
///
/// Returns 0; `MF_ERR_UNSUPPORTED` if the connector has no CPU state; an error of kind
/// `MF_KIND_NOT_FOUND` if `cpu` is out of range or the target is not x86.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_connector_x86_registers(conn: *const MfConnector, cpu: usize, out: *mut MfX86Registers) -> i32 {
    guard(|| {
        handle::with(conn, "conn", |conn| {
            registers(conn.inner.as_ref_impl_cpustate(), "connector", out, |s| Ok((&s.x86_registers(cpu)?).into()))
        })
    })
}

/// The AArch64 registers of CPU `cpu` (0-based) as the connector recorded them.
///
/// Returns 0; `MF_ERR_UNSUPPORTED` if the connector has no CPU state; an error of kind
/// `MF_KIND_NOT_FOUND` if `cpu` is out of range or the target is not AArch64.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_connector_aarch64_registers(
    conn: *const MfConnector,
    cpu: usize,
    out: *mut MfAArch64Registers,
) -> i32 {
    guard(|| {
        handle::with(conn, "conn", |conn| {
            registers(conn.inner.as_ref_impl_cpustate(), "connector", out, |s| Ok((&s.aarch64_registers(cpu)?).into()))
        })
    })
}

/// The RISC-V registers of CPU `cpu` (0-based) as the connector recorded them (`satp_valid`
/// says whether `satp` is among them).
///
/// Returns 0; `MF_ERR_UNSUPPORTED` if the connector has no CPU state; an error of kind
/// `MF_KIND_NOT_FOUND` if `cpu` is out of range or the target is not RISC-V.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_connector_riscv_registers(
    conn: *const MfConnector,
    cpu: usize,
    out: *mut MfRiscVRegisters,
) -> i32 {
    guard(|| {
        handle::with(conn, "conn", |conn| {
            registers(conn.inner.as_ref_impl_cpustate(), "connector", out, |s| Ok((&s.riscv_registers(cpu)?).into()))
        })
    })
}

/// The body of the `mf_connector_*_registers` and `mf_os_*_registers` functions: what `read`
/// takes from `state` into `*out`; `Unsupported` without state (`what` names its owner).
pub(crate) fn registers<S: CpuState, R>(
    state: Option<&S>,
    what: &str,
    out: *mut R,
    read: impl FnOnce(&S) -> Result<R, Error>,
) -> Result<(), Error> {
    let out = out_arg(out, "out")?;
    let state = state.ok_or_else(|| ffi_err(ErrorKind::Unsupported, format_args!("the {what} has no CPU state")))?;
    out.write(read(state)?);
    Ok(())
}
