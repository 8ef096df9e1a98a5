//! The connector below a C OS layer, as the host hands it to the plugin's `create`: a table
//! of the same functions a C connector plugin implements ([`super::c_plugin`]), served by the
//! host from the connector of the chain. Every function checks its arguments and catches
//! panics; the connector is locked for each call, so the functions may be called from any
//! thread.

use std::ffi::c_void;
use std::sync::{Arc, Mutex, MutexGuard};

use super::c_abi::{from_c, C_HOST_VERSION};
use super::c_plugin::{
    CConnectorMetadata, CCpuCountFn, CMetadataFn, CReadBatchFn, CReadFn, CWriteBatchFn, CWriteFn, CX86RegistersFn,
};
use super::records::*;
use crate::connector::cpu_state::CpuState;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::ConnectorInstanceArcBox;
use crate::mem::PhysicalMemory;
use crate::types::PhysicalAddress;

/// The connector below a C OS layer, as the host hands it to `create`: its functions (the
/// signatures of a C connector plugin's entries) and the `connector` to pass them. Every entry
/// is set; `struct_size` tells a plugin built against a newer header which entries this host
/// has. The functions may be called from any thread.
#[repr(C)]
pub struct CConnectorInput {
    /// `MF_C_HOST_VERSION`.
    pub version: u32,
    /// `sizeof(MfCConnectorInput)` of the host.
    pub struct_size: u32,
    /// The first argument of every function below.
    pub connector: *mut c_void,
    /// Reads physical memory; returns the bytes read from the start or a negative error code.
    pub read: CReadFn,
    /// Writes physical memory (a negative code of kind `MF_KIND_READ_ONLY` when read-only).
    pub write: CWriteFn,
    /// Reads a batch in one go (each op's `done` and `result` are set).
    pub read_batch: CReadBatchFn,
    /// Writes a batch in one go.
    pub write_batch: CWriteBatchFn,
    /// The connector's metadata.
    pub metadata: CMetadataFn,
    /// How many CPUs the connector has register state for (0 without CPU state).
    pub cpu_count: CCpuCountFn,
    /// The x86 registers of a CPU.
    pub x86_registers: CX86RegistersFn,
}

/// The input table and the connector behind it, kept alive for as long as an instance (or a
/// clone of it) may use them.
pub(super) struct Input {
    /// What the plugin gets (its address is stable: the `Input` lives in an `Arc`).
    pub(super) table: CConnectorInput,
    _conn: Arc<Mutex<ConnectorInstanceArcBox<'static>>>,
}

// SAFETY: `table.connector` points to the mutex in `_conn`, which serialises every use.
unsafe impl Send for Input {}
// SAFETY: as above.
unsafe impl Sync for Input {}

impl Input {
    /// The table serving `conn`.
    pub(super) fn new(conn: ConnectorInstanceArcBox<'static>) -> Arc<Input> {
        let conn = Arc::new(Mutex::new(conn));
        let table = CConnectorInput {
            version: C_HOST_VERSION,
            struct_size: core::mem::size_of::<CConnectorInput>() as u32,
            connector: Arc::as_ptr(&conn) as *mut c_void,
            read: input_read,
            write: input_write,
            read_batch: input_read_batch,
            write_batch: input_write_batch,
            metadata: input_metadata,
            cpu_count: input_cpu_count,
            x86_registers: input_x86_registers,
        };
        Arc::new(Input { table, _conn: conn })
    }
}

/// The connector behind an input table's `connector`, locked.
///
/// # Safety
/// `connector` is the `connector` of a live [`CConnectorInput`].
unsafe fn input<'a>(connector: *mut c_void) -> MutexGuard<'a, ConnectorInstanceArcBox<'static>> {
    let conn = &*(connector as *const Mutex<ConnectorInstanceArcBox<'static>>);
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// A buffer of `len` bytes from C, checked.
fn c_len(ptr: *const u8, len: u64) -> Result<usize> {
    let len = usize::try_from(len).ok().filter(|&l| l <= isize::MAX as usize).ok_or_else(|| {
        Error::new(ErrorOrigin::Ffi, ErrorKind::InvalidArgument).with_reason(format_args!("length {len} is too large"))
    })?;
    if ptr.is_null() && len > 0 {
        return Err(Error::new(ErrorOrigin::Ffi, ErrorKind::NullPointer).with_reason("the buffer is NULL"));
    }
    Ok(len)
}

/// A count of bytes, or the error code of the call that failed.
fn count_or_code(code: i32, count: usize) -> i64 {
    if code == 0 {
        count as i64
    } else {
        i64::from(code)
    }
}

unsafe extern "C" fn input_read(connector: *mut c_void, addr: u64, buf: *mut u8, len: u64) -> i64 {
    let mut done = 0;
    let code = from_c(|| {
        let len = c_len(buf, len)?;
        let out: &mut [u8] = if len == 0 { &mut [] } else { core::slice::from_raw_parts_mut(buf, len) };
        done = input(connector).phys_read_single(PhysicalAddress::plain(addr_in(addr)), out)?;
        Ok(())
    });
    count_or_code(code, done)
}

unsafe extern "C" fn input_write(connector: *mut c_void, addr: u64, buf: *const u8, len: u64) -> i64 {
    let mut done = 0;
    let code = from_c(|| {
        let len = c_len(buf, len)?;
        let data: &[u8] = if len == 0 { &[] } else { core::slice::from_raw_parts(buf, len) };
        done = input(connector).phys_write_single(PhysicalAddress::plain(addr_in(addr)), data)?;
        Ok(())
    });
    count_or_code(code, done)
}

/// The `count` operations at `ops`, checked.
unsafe fn c_ops<'a, T>(ops: *mut T, count: usize) -> Result<&'a mut [T]> {
    if count == 0 {
        return Ok(&mut []);
    }
    if ops.is_null() || ops.align_offset(core::mem::align_of::<T>()) != 0 {
        return Err(
            Error::new(ErrorOrigin::Ffi, ErrorKind::NullPointer).with_reason("the op array is NULL or misaligned")
        );
    }
    Ok(core::slice::from_raw_parts_mut(ops, count))
}

unsafe extern "C" fn input_read_batch(connector: *mut c_void, ops: *mut MfReadOp, count: usize) -> i32 {
    from_c(|| {
        let ops = c_ops(ops, count)?;
        let mut conn = input(connector);
        read_ops(ops, |a| PhysicalAddress::plain(addr_in(a)), |b| conn.phys_read_batch(b)).map(|_| ())
    })
}

unsafe extern "C" fn input_write_batch(connector: *mut c_void, ops: *mut MfWriteOp, count: usize) -> i32 {
    from_c(|| {
        let ops = c_ops(ops, count)?;
        let mut conn = input(connector);
        write_ops(ops, |a| PhysicalAddress::plain(addr_in(a)), |b| conn.phys_write_batch(b)).map(|_| ())
    })
}

unsafe extern "C" fn input_metadata(connector: *mut c_void, out: *mut CConnectorMetadata) {
    let _ = from_c(|| {
        let m = input(connector).metadata();
        if !out.is_null() {
            *out = CConnectorMetadata {
                max_address: addr_out(m.max_address),
                real_size: size_out(m.real_size),
                readonly: m.readonly,
            };
        }
        Ok(())
    });
}

unsafe extern "C" fn input_cpu_count(connector: *mut c_void) -> usize {
    let mut count = 0;
    let _ = from_c(|| {
        count = input(connector).cpu_count();
        Ok(())
    });
    count
}

unsafe extern "C" fn input_x86_registers(connector: *mut c_void, cpu: usize, out: *mut MfX86Registers) -> i32 {
    from_c(|| {
        if out.is_null() {
            return Err(Error::new(ErrorOrigin::Ffi, ErrorKind::NullPointer).with_reason("`out` is NULL"));
        }
        let regs = input(connector).x86_registers(cpu)?;
        *out = MfX86Registers::from(&regs);
        Ok(())
    })
}
