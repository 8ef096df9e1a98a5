//! Connector plugins written in plain C.
//!
//! cglue's generated vtables are not something a C author should type. A C plugin instead
//! exports, under [`super::PLUGIN_SYMBOL`], a [`CConnectorPlugin`]: the common pointer-free
//! [`PluginHeader`] (flavor C), then the interface version and struct size, then plain
//! function pointers and a user pointer (versioning and the shared checks: [`super::c_abi`]).
//! The inventory checks the header, version and size from the library file before loading
//! it, checks the required function pointers after loading, and wraps the plugin into the
//! very same [`ConnectorInstance`] objects that Rust plugins produce. Calls into one instance
//! are serialised by a lock, so the plugin needs none.

use std::ffi::{c_char, c_void, CStr};
use std::sync::{Arc, Mutex, MutexGuard};

use cglue::prelude::v1::*;

use super::c_abi::{check_code, done_count, load_table, serve_batch, CHost, CTable, Entry, HOST};
use super::c_limits::MAX_CPUS;
use super::descriptor::PluginHeader;
use super::records::{MfReadOp, MfWriteOp, MfX86Registers};
use crate::connector::cpu_state::{AArch64Registers, CpuState, CpuStateVtbl, RiscVRegisters, X86Registers};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::*;
use crate::mem::{
    report, MemBatch, MemOp, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata, SplitBuf,
};
use crate::types::{umem, Address, PhysicalAddress};

/// Facts about a C connector instance.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CConnectorMetadata {
    /// Highest readable physical address.
    pub max_address: u64,
    /// Bytes really backed.
    pub real_size: u64,
    /// Writes always fail.
    pub readonly: bool,
}

/// Creates an instance for `args` (NUL-terminated `key=value,...` text, may be empty); stores
/// it in `*out` and returns 0, or returns a negative error code. `host` stays valid as long as
/// the plugin is loaded.
pub type CCreateFn =
    unsafe extern "C" fn(args: *const c_char, user: *mut c_void, host: *const CHost, out: *mut *mut c_void) -> i32;
/// Reads `len` bytes at physical address `addr` into `buf`. Returns how many bytes from the
/// start were read (`0..=len`; the rest count as unreadable) or a negative error code.
pub type CReadFn = unsafe extern "C" fn(instance: *mut c_void, addr: u64, buf: *mut u8, len: u64) -> i64;
/// Writes `len` bytes from `buf` at `addr`. Returns how many bytes from the start were written
/// or a negative error code.
pub type CWriteFn = unsafe extern "C" fn(instance: *mut c_void, addr: u64, buf: *const u8, len: u64) -> i64;
/// Reads the `count` operations at `ops`: sets each one's `done` (bytes from the start of its
/// buffer that were read) and `result` (0, or `MF_ERR_PARTIAL_READ` when `done < len`).
/// Returns 0, or a negative error code when the whole batch failed.
pub type CReadBatchFn = unsafe extern "C" fn(instance: *mut c_void, ops: *mut MfReadOp, count: usize) -> i32;
/// Writes the `count` operations at `ops`, setting each one's `done` and `result` like
/// `MfCReadBatchFn`.
pub type CWriteBatchFn = unsafe extern "C" fn(instance: *mut c_void, ops: *mut MfWriteOp, count: usize) -> i32;
/// Fills `*out` with the instance's metadata.
pub type CMetadataFn = unsafe extern "C" fn(instance: *mut c_void, out: *mut CConnectorMetadata);
/// How many CPUs the target has register state for.
pub type CCpuCountFn = unsafe extern "C" fn(instance: *mut c_void) -> usize;
/// Fills `*out` with the x86 registers of CPU `cpu` (0-based) and returns 0, or returns a
/// negative error code (kind `MF_KIND_NOT_FOUND` for a CPU it has no state for).
pub type CX86RegistersFn = unsafe extern "C" fn(instance: *mut c_void, cpu: usize, out: *mut MfX86Registers) -> i32;
/// Makes an independent copy of an instance for another thread; returns 0 and stores it in
/// `*out`, or a negative code.
pub type CCloneFn = unsafe extern "C" fn(instance: *mut c_void, out: *mut *mut c_void) -> i32;
/// Frees an instance.
pub type CDestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The descriptor a C connector plugin exports as `MEMFLOW_PLUGIN`.
///
/// Calls into one instance are serialised by the host, so a plugin need not be thread-safe.
/// Without `clone`, clones of the connector share one instance. Entries after `user` may be
/// left out by a plugin built against an older table (its `struct_size` says so): they count
/// as NULL.
#[repr(C)]
pub struct CConnectorPlugin {
    /// The common header, with `flavor` 2 (C) and `kind` 1 (connector).
    pub header: PluginHeader,
    /// `MF_C_PLUGIN_VERSION` the plugin was written against.
    pub version: u32,
    /// `sizeof` this struct as the plugin saw it.
    pub struct_size: u32,
    /// Required.
    pub create: Option<CCreateFn>,
    /// Required.
    pub read: Option<CReadFn>,
    /// Optional: without it the connector is read-only.
    pub write: Option<CWriteFn>,
    /// Required.
    pub metadata: Option<CMetadataFn>,
    /// Optional.
    pub clone: Option<CCloneFn>,
    /// Required.
    pub destroy: Option<CDestroyFn>,
    /// Passed to `create` unchanged.
    pub user: *mut c_void,
    /// Optional: without it the host calls `read` once per operation of a batch.
    pub read_batch: Option<CReadBatchFn>,
    /// Optional: without it the host calls `write` once per operation of a batch.
    pub write_batch: Option<CWriteBatchFn>,
    /// Optional: without it the connector has no CPU state (zero CPUs).
    pub cpu_count: Option<CCpuCountFn>,
    /// Optional (with `cpu_count`): the registers of x86 CPUs.
    pub x86_registers: Option<CX86RegistersFn>,
}

// SAFETY: a repr(C) struct of a plain-bytes header, integers, a raw pointer and optional
// function pointers.
unsafe impl CTable for CConnectorPlugin {
    const MIN_SIZE: usize = core::mem::offset_of!(CConnectorPlugin, user) + core::mem::size_of::<*mut c_void>();
    const WHAT: &'static str = "the C connector plugin descriptor";
}

// SAFETY: the host only reads its copy of the descriptor: function pointers, plain data, and
// `user`, which it hands to the plugin's `create` unchanged.
unsafe impl Send for CConnectorPlugin {}
// SAFETY: as above.
unsafe impl Sync for CConnectorPlugin {}

/// The operations of one batch handed to a plugin's batch entry at a time (its array lives
/// on the host's stack).
const OPS_PER_CALL: usize = 64;

/// One C instance; destroyed when the last connector sharing it lets go.
struct CInstance {
    plugin: Arc<CConnectorPlugin>,
    /// The plugin's name, for errors.
    name: Arc<str>,
    instance: *mut c_void,
}

// SAFETY: access to `instance` is serialised by the mutex around every `CInstance`.
unsafe impl Send for CInstance {}

impl CInstance {
    /// Calls the plugin's `read`: how many bytes from the start of `buf` it read (none for an
    /// error code or an address beyond 64 bits).
    fn read(&self, addr: Address, buf: &mut [u8]) -> usize {
        let (Some(read), Ok(addr)) = (self.plugin.read, u64::try_from(addr.to_umem())) else { return 0 };
        // SAFETY: `buf` is a writable slice of `len` bytes for the call.
        done_count(unsafe { read(self.instance, addr, buf.as_mut_ptr(), buf.len() as u64) }, buf.len())
    }

    /// Calls the plugin's `write`: how many bytes from the start of `buf` it wrote.
    fn write(&self, addr: Address, buf: &[u8]) -> usize {
        let (Some(write), Ok(addr)) = (self.plugin.write, u64::try_from(addr.to_umem())) else { return 0 };
        // SAFETY: `buf` is a readable slice of `len` bytes for the call.
        done_count(unsafe { write(self.instance, addr, buf.as_ptr(), buf.len() as u64) }, buf.len())
    }

    /// Fails with [`ErrorKind::ReadOnly`] if the plugin has no `write`.
    fn check_writable(&self) -> Result<()> {
        if self.plugin.write.is_none() {
            return Err(Error::new(ErrorOrigin::Connector, ErrorKind::ReadOnly)
                .with_reason("the C plugin has no write function: its connector is read-only"));
        }
        Ok(())
    }

    /// The plugin's `entry`, for errors.
    fn entry<'a>(&'a self, entry: &'a str) -> Entry<'a> {
        Entry { plugin: &self.name, entry }
    }
}

impl Drop for CInstance {
    fn drop(&mut self) {
        if let Some(destroy) = self.plugin.destroy {
            // SAFETY: the plugin made `instance` and it is destroyed exactly once, here.
            unsafe { destroy(self.instance) }
        }
    }
}

/// A C plugin's instance as a Rust connector.
pub struct CConnector {
    inner: Arc<Mutex<CInstance>>,
    /// Keeps the plugin library loaded.
    _lib: LibArc,
}

impl Clone for CConnector {
    fn clone(&self) -> Self {
        let shared = CConnector { inner: self.inner.clone(), _lib: self._lib.clone() };
        let guard = self.lock();
        let Some(clone) = guard.plugin.clone else { return shared };
        let mut out = core::ptr::null_mut();
        // SAFETY: `instance` is live and we hold its lock.
        if unsafe { clone(guard.instance, &mut out) } != 0 || out.is_null() {
            return shared;
        }
        let fresh = CInstance { plugin: guard.plugin.clone(), name: guard.name.clone(), instance: out };
        CConnector { inner: Arc::new(Mutex::new(fresh)), _lib: self._lib.clone() }
    }
}

impl CConnector {
    /// The instance, locked for a call.
    fn lock(&self) -> MutexGuard<'_, CInstance> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The address, tag and buffer of a physical operation.
fn phys_parts<B>(op: MemOp<PhysicalAddress, B>) -> (Address, Address, B) {
    (op.addr.address, op.tag, op.buf)
}

/// A batch handed to a plugin's batch entry in groups of [`OPS_PER_CALL`]: `to_c` makes the C
/// operation of an operation's address and buffer, `call` runs one group, and each operation
/// is reported done up to the count the plugin set.
fn batch_through<T, B: SplitBuf, C: Copy>(
    batch: MemBatch<'_, '_, '_, T, B>,
    split: impl Fn(T) -> (Address, Address, B),
    to_c: impl Fn(u64, &mut B) -> C,
    done_of: impl Fn(&C) -> usize,
    mut call: impl FnMut(&mut [C]) -> Result<()>,
) -> Result<()> {
    let MemBatch { mut ops, mut on_ok, mut on_fail } = batch;
    let mut pending: Vec<(Address, B)> = Vec::with_capacity(OPS_PER_CALL);
    let mut c_ops: Vec<C> = Vec::with_capacity(OPS_PER_CALL);
    loop {
        for op in ops.by_ref().take(OPS_PER_CALL) {
            let (addr, tag, mut buf) = split(op);
            match u64::try_from(addr.to_umem()) {
                Ok(addr) => {
                    c_ops.push(to_c(addr, &mut buf));
                    pending.push((tag, buf));
                }
                Err(_) => report(&mut on_fail, tag, buf),
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        call(&mut c_ops)?;
        for ((tag, buf), c) in pending.drain(..).zip(c_ops.drain(..)) {
            let done = done_of(&c).min(buf.len());
            let (head, tail) = buf.split_at(done);
            if !head.is_empty() {
                report(&mut on_ok, tag, head);
            }
            if !tail.is_empty() {
                report(&mut on_fail, tag + done as umem, tail);
            }
        }
    }
}

impl PhysicalMemory for CConnector {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        let guard = self.lock();
        let Some(read_batch) = guard.plugin.read_batch else {
            serve_batch(batch, phys_parts, |addr, buf| guard.read(addr, buf));
            return Ok(());
        };
        let to_c = |addr, buf: &mut cglue::slice::CSliceMut<u8>| MfReadOp {
            addr,
            buf: buf.as_mut_ptr().cast(),
            len: buf.len(),
            result: 0,
            done: 0,
        };
        batch_through(
            batch,
            phys_parts,
            to_c,
            |c| c.done,
            |ops| {
                // SAFETY: `ops` holds `len` operations whose buffers are live for the call.
                check_code(guard.entry("read_batch"), || unsafe {
                    read_batch(guard.instance, ops.as_mut_ptr(), ops.len())
                })
            },
        )
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        let guard = self.lock();
        guard.check_writable()?;
        let Some(write_batch) = guard.plugin.write_batch else {
            serve_batch(batch, phys_parts, |addr, buf| guard.write(addr, buf));
            return Ok(());
        };
        let to_c = |addr, buf: &mut cglue::slice::CSliceRef<u8>| MfWriteOp {
            addr,
            buf: buf.as_ptr().cast(),
            len: buf.len(),
            result: 0,
            done: 0,
        };
        batch_through(
            batch,
            phys_parts,
            to_c,
            |c| c.done,
            |ops| {
                // SAFETY: `ops` holds `len` operations whose buffers are live for the call.
                check_code(guard.entry("write_batch"), || unsafe {
                    write_batch(guard.instance, ops.as_mut_ptr(), ops.len())
                })
            },
        )
    }

    /// One call of the plugin's `read`, which already has the single-read contract.
    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        let done = self.lock().read(addr.address, out);
        if done < out.len() {
            out[done..].fill(0);
        }
        Ok(done)
    }

    fn phys_write_single(&mut self, addr: PhysicalAddress, data: &[u8]) -> Result<usize> {
        let guard = self.lock();
        guard.check_writable()?;
        Ok(guard.write(addr.address, data))
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        let guard = self.lock();
        let mut m = CConnectorMetadata::default();
        // `metadata` was checked when the plugin was created.
        if let Some(metadata) = guard.plugin.metadata {
            // SAFETY: `m` is a valid place for the plugin to write.
            unsafe { metadata(guard.instance, &mut m) };
        }
        PhysicalMemoryMetadata {
            max_address: Address::from(m.max_address),
            real_size: m.real_size as umem,
            readonly: m.readonly || guard.plugin.write.is_none(),
            ideal_batch_size: u32::MAX,
        }
    }
}

/// The plugin's CPU state: none without `cpu_count`, at most [`MAX_CPUS`] CPUs, x86 ones only
/// (the C plugin interface has no other registers).
impl CpuState for CConnector {
    fn cpu_count(&self) -> usize {
        let guard = self.lock();
        // SAFETY: the instance is live and locked.
        guard.plugin.cpu_count.map_or(0, |count| unsafe { count(guard.instance) }.min(MAX_CPUS))
    }

    fn x86_registers(&self, cpu: usize) -> Result<X86Registers> {
        let guard = self.lock();
        let Some(registers) = guard.plugin.x86_registers else {
            return Err(super::c_abi::unsupported(
                ErrorOrigin::Connector,
                &guard.plugin.header.name(),
                "x86_registers",
            ));
        };
        let mut out = MfX86Registers::default();
        // SAFETY: the instance is live and locked; `out` is a valid place to write.
        check_code(guard.entry("x86_registers"), || unsafe { registers(guard.instance, cpu, &mut out) })?;
        Ok(X86Registers::from(&out))
    }

    fn aarch64_registers(&self, _cpu: usize) -> Result<AArch64Registers> {
        let guard = self.lock();
        Err(super::c_abi::unsupported(ErrorOrigin::Connector, &guard.plugin.header.name(), "aarch64_registers"))
    }

    fn riscv_registers(&self, _cpu: usize) -> Result<RiscVRegisters> {
        let guard = self.lock();
        Err(super::c_abi::unsupported(ErrorOrigin::Connector, &guard.plugin.header.name(), "riscv_registers"))
    }
}

cglue_impl_group!(CConnector, ConnectorInstance, { CpuState });

/// Creates a connector from the C plugin descriptor at `desc` (already header-checked).
pub fn create_connector(desc: *const u8, args: &CStr, lib: LibArc) -> Result<ConnectorInstanceArcBox<'static>> {
    let desc = desc as *const CConnectorPlugin;
    // SAFETY: the inventory checked the header, interface version and size of this static
    // descriptor, which lives as long as `lib` keeps the library loaded; `struct_size` bytes
    // of it are readable.
    let plugin = unsafe { load_table(desc, (*desc).version, (*desc).struct_size) }?;
    let name = plugin.header.name();
    let (Some(create), Some(_), Some(_), Some(_)) = (plugin.create, plugin.read, plugin.metadata, plugin.destroy)
    else {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
            .with_reason(format_args!("C plugin `{name}` lacks one of create, read, metadata, destroy")));
    };
    let mut out = core::ptr::null_mut();
    // SAFETY: the function pointers come from the plugin; arguments are valid for the call.
    check_code(format_args!("C plugin `{name}`: create"), || unsafe {
        create(args.as_ptr(), plugin.user, &HOST, &mut out)
    })?;
    if out.is_null() {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
            .with_reason(format_args!("C plugin `{name}` returned success but no instance")));
    }
    let instance = CInstance { plugin: Arc::new(plugin), name: name.into(), instance: out };
    let conn = CConnector { inner: Arc::new(Mutex::new(instance)), _lib: lib.clone() };
    Ok(connector_instance(conn, lib))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{PartialError, PartialResultExt};
    use crate::mem::partial::check;
    use crate::plugins::descriptor::{PluginFlavor, PluginKind};
    use crate::types::PhysicalAddress;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A C-style plugin written in Rust: serves 4 KiB of bytes `i as u8`, read-only unless
    /// `writable` is in the arguments.
    struct Buffer {
        bytes: Vec<u8>,
    }

    static LIVE: AtomicUsize = AtomicUsize::new(0);
    /// Tests that create instances run one at a time, so `LIVE` counts only their own.
    static SERIAL: Mutex<()> = Mutex::new(());

    unsafe extern "C" fn create(
        args: *const c_char,
        _user: *mut c_void,
        host: *const CHost,
        out: *mut *mut c_void,
    ) -> i32 {
        let args = CStr::from_ptr(args).to_str().unwrap();
        ((*host).log)(3, c"buffer plugin creating".as_ptr());
        if args == "fail" {
            ((*host).reason)(c"cbuffer: told to fail".as_ptr());
            return Error::new(ErrorOrigin::Connector, ErrorKind::NotFound).code();
        }
        LIVE.fetch_add(1, Ordering::SeqCst);
        *out = Box::into_raw(Box::new(Buffer { bytes: (0..4096).map(|i| i as u8).collect() })) as *mut c_void;
        0
    }

    unsafe extern "C" fn read(inst: *mut c_void, addr: u64, buf: *mut u8, len: u64) -> i64 {
        let b = &*(inst as *const Buffer);
        let avail = (b.bytes.len() as u64).saturating_sub(addr).min(len);
        core::ptr::copy_nonoverlapping(b.bytes.as_ptr().add(addr.min(4096) as usize), buf, avail as usize);
        avail as i64
    }

    unsafe extern "C" fn write(inst: *mut c_void, addr: u64, buf: *const u8, len: u64) -> i64 {
        let b = &mut *(inst as *mut Buffer);
        let avail = (b.bytes.len() as u64).saturating_sub(addr).min(len);
        core::ptr::copy_nonoverlapping(buf, b.bytes.as_mut_ptr().add(addr.min(4096) as usize), avail as usize);
        avail as i64
    }

    unsafe extern "C" fn metadata(_inst: *mut c_void, out: *mut CConnectorMetadata) {
        *out = CConnectorMetadata { max_address: 4095, real_size: 4096, readonly: false };
    }

    unsafe extern "C" fn clone(inst: *mut c_void, out: *mut *mut c_void) -> i32 {
        let b = &*(inst as *const Buffer);
        LIVE.fetch_add(1, Ordering::SeqCst);
        *out = Box::into_raw(Box::new(Buffer { bytes: b.bytes.clone() })) as *mut c_void;
        0
    }

    unsafe extern "C" fn destroy(inst: *mut c_void) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
        drop(Box::from_raw(inst as *mut Buffer));
    }

    fn plugin(with_write: bool) -> &'static CConnectorPlugin {
        Box::leak(Box::new(CConnectorPlugin {
            header: PluginHeader::new(PluginKind::Connector, PluginFlavor::C, "cbuffer", "1.0", "test", "help"),
            version: crate::plugins::c_abi::C_PLUGIN_VERSION,
            struct_size: core::mem::size_of::<CConnectorPlugin>() as u32,
            create: Some(create),
            read: Some(read),
            write: if with_write { Some(write) } else { None },
            metadata: Some(metadata),
            clone: Some(clone),
            destroy: Some(destroy),
            user: core::ptr::null_mut(),
            read_batch: None,
            write_batch: None,
            cpu_count: None,
            x86_registers: None,
        }))
    }

    fn at(a: u64) -> PhysicalAddress {
        PhysicalAddress::plain(Address::from(a))
    }

    #[test]
    fn wraps_a_c_plugin_into_a_connector_instance() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let p = plugin(true) as *const CConnectorPlugin as *const u8;
        {
            let mut conn = create_connector(p, c"", LibArc::default()).unwrap();
            assert_eq!(conn.metadata().real_size, 4096);
            assert_eq!(conn.phys_read::<u32>(at(0x100)).unwrap(), u32::from_le_bytes([0, 1, 2, 3]));
            let mut buf = [0xffu8; 16];
            let res = conn.phys_read_raw_into(at(4088), &mut buf);
            assert_eq!(res, Err(PartialError::PartialRead(())));
            assert_eq!(&buf[8..], &[0u8; 8], "the unreadable tail is zeroed");
            assert_eq!(check::phys_read_agrees(&mut conn, 4088, 16), 8, "the count is the plugin's");
            assert_eq!(check::phys_read_agrees(&mut conn, 4096, 16), 0);
            assert_eq!(conn.phys_write_single(at(4090), &[7; 10]), Ok(6));
            conn.phys_write(at(8), &0xdead_beefu32).unwrap();
            assert_eq!(conn.phys_read::<u32>(at(8)).data().unwrap(), 0xdead_beef);
            // A clone is an independent C instance (the plugin provides `clone`).
            let mut other = conn.clone();
            assert_eq!(LIVE.load(Ordering::SeqCst), 2);
            other.phys_write(at(8), &1u32).unwrap();
            assert_eq!(conn.phys_read::<u32>(at(8)).unwrap(), 0xdead_beef);
        }
        assert_eq!(LIVE.load(Ordering::SeqCst), 0, "every instance destroyed exactly once");
    }

    #[test]
    fn read_only_without_write_and_errors_pass_through() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let p = plugin(false) as *const CConnectorPlugin as *const u8;
        let mut conn = create_connector(p, c"", LibArc::default()).unwrap();
        assert!(conn.metadata().readonly);
        let read_only = Error::new(ErrorOrigin::Connector, ErrorKind::ReadOnly);
        assert_eq!(conn.phys_write(at(0), &1u8), Err(PartialError::Error(read_only)));
        assert_eq!(conn.phys_write_single(at(0), &[1]), Err(read_only));
        let ops = [crate::mem::MemOp { addr: at(0), tag: Address::NULL, buf: [1u8][..].into() }];
        assert_eq!(MemBatch::with(ops.into_iter(), None, None, |b| conn.phys_write_batch(b)), Err(read_only));
        drop(conn);
        let err = create_connector(p, c"fail", LibArc::default()).err().unwrap();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert!(err.to_string().contains("cbuffer: told to fail"), "the plugin's reason: {err}");
    }

    static BATCHES: AtomicUsize = AtomicUsize::new(0);

    /// Reads each op like `read`; marks the op at 3000 as failing after 10 bytes.
    unsafe extern "C" fn read_batch(inst: *mut c_void, ops: *mut MfReadOp, count: usize) -> i32 {
        BATCHES.fetch_add(1, Ordering::SeqCst);
        for op in core::slice::from_raw_parts_mut(ops, count) {
            let done = read(inst, op.addr, op.buf.cast(), op.len as u64) as usize;
            op.done = if op.addr == 3000 { done.min(10) } else { done };
        }
        0
    }

    unsafe extern "C" fn cpu_count(_inst: *mut c_void) -> usize {
        2
    }

    unsafe extern "C" fn x86_registers(_inst: *mut c_void, cpu: usize, out: *mut MfX86Registers) -> i32 {
        if cpu >= 2 {
            return Error::new(ErrorOrigin::Connector, ErrorKind::NotFound).code();
        }
        *out = MfX86Registers { valid: 1 << 5, cr0: 1 << 31, cr3: 0x1000 * (cpu as u64 + 1), ..Default::default() };
        0
    }

    #[test]
    fn batches_go_to_the_batch_entry_and_cpu_state_passes_through() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: a bitwise copy of a descriptor of plain pointers.
        let mut table = unsafe { core::ptr::read(plugin(false)) };
        table.read_batch = Some(read_batch);
        table.cpu_count = Some(cpu_count);
        table.x86_registers = Some(x86_registers);
        let p = Box::leak(Box::new(table)) as *const CConnectorPlugin as *const u8;
        let mut conn = create_connector(p, c"", LibArc::default()).unwrap();
        let before = BATCHES.load(Ordering::SeqCst);
        let mut bufs = [[0xffu8; 16]; 3];
        let addrs = [0u64, 3000, 4090];
        let mut failed = Vec::new();
        let mut on_fail = |chunk: crate::mem::ReadChunk| {
            failed.push((chunk.tag.to_umem() as u64, chunk.buf.len()));
            true
        };
        let ops = bufs.iter_mut().zip(addrs).map(|(b, a)| crate::mem::MemOp {
            addr: at(a),
            tag: Address::from(a),
            buf: (&mut b[..]).into(),
        });
        MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), |b| conn.phys_read_batch(b)).unwrap();
        assert_eq!(BATCHES.load(Ordering::SeqCst), before + 1, "one call of the batch entry");
        assert_eq!(failed, [(3010, 6), (4096, 10)], "failures from the counts the plugin set");
        assert_eq!(&bufs[0][..4], &[0, 1, 2, 3]);
        // CPU state.
        let cpu = conn.as_ref_impl_cpustate().expect("the C connector has CPU state");
        assert_eq!(cpu.cpu_count(), 2);
        assert_eq!(cpu.x86_registers(1).unwrap().cr3, 0x2000);
        assert_eq!(cpu.x86_registers(2).unwrap_err().kind, ErrorKind::NotFound);
        drop(conn);
        // Without the entries: no CPUs, and `Unsupported` registers.
        let conn =
            create_connector(plugin(false) as *const CConnectorPlugin as *const u8, c"", LibArc::default()).unwrap();
        let cpu = conn.as_ref_impl_cpustate().unwrap();
        assert_eq!(cpu.cpu_count(), 0);
        assert_eq!(cpu.x86_registers(0).unwrap_err().kind, ErrorKind::Unsupported);
    }

    static INSIDE: AtomicUsize = AtomicUsize::new(0);
    static OVERLAPS: AtomicUsize = AtomicUsize::new(0);

    /// `read`, noting calls that overlap another call into the plugin.
    unsafe extern "C" fn watched_read(inst: *mut c_void, addr: u64, buf: *mut u8, len: u64) -> i64 {
        if INSIDE.fetch_add(1, Ordering::SeqCst) != 0 {
            OVERLAPS.fetch_add(1, Ordering::SeqCst);
        }
        std::thread::yield_now();
        let done = read(inst, addr, buf, len);
        INSIDE.fetch_sub(1, Ordering::SeqCst);
        done
    }

    #[test]
    fn clones_sharing_one_instance_never_call_it_at_once() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: a bitwise copy of a descriptor of plain pointers.
        let mut table = unsafe { core::ptr::read(plugin(false)) };
        table.read = Some(watched_read);
        table.clone = None;
        let p = Box::leak(Box::new(table)) as *const CConnectorPlugin as *const u8;
        let conn = create_connector(p, c"", LibArc::default()).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let mut mine = conn.clone();
                scope.spawn(move || {
                    for i in 0..2000u64 {
                        assert_eq!(mine.phys_read::<u8>(at(i % 4096)).unwrap(), (i % 4096) as u8);
                    }
                });
            }
        });
        assert_eq!(OVERLAPS.load(Ordering::SeqCst), 0, "calls into one shared instance overlapped");
        assert_eq!(LIVE.load(Ordering::SeqCst), 1, "one instance, shared");
    }

    #[test]
    fn refuses_incomplete_or_mismatched_descriptors() {
        let good = plugin(true);
        // SAFETY: a bitwise copy of a descriptor of plain pointers.
        let mut copy = CConnectorPlugin { read: None, ..unsafe { core::ptr::read(good) } };
        assert_eq!(
            create_connector(&copy as *const _ as *const u8, c"", LibArc::default()).err().unwrap().kind,
            ErrorKind::Malformed
        );
        copy.read = good.read;
        copy.version = 7;
        assert_eq!(
            create_connector(&copy as *const _ as *const u8, c"", LibArc::default()).err().unwrap().kind,
            ErrorKind::VersionMismatch
        );
        copy.version = crate::plugins::c_abi::C_PLUGIN_VERSION;
        copy.struct_size = 16;
        assert_eq!(
            create_connector(&copy as *const _ as *const u8, c"", LibArc::default()).err().unwrap().kind,
            ErrorKind::LayoutMismatch
        );
        assert!(crate::plugins::c_abi::check_prefix(PluginKind::Connector, &[1, 0, 0]).is_err());
    }
}
