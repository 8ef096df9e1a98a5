//! Connector plugins written in plain C.
//!
//! cglue's generated vtables are not something a C author should type. A C plugin instead
//! exports, under [`super::PLUGIN_SYMBOL`], a [`CConnectorPlugin`]: the common pointer-free
//! [`PluginHeader`] (flavor C), then the interface version and struct size, then plain
//! function pointers, a user pointer and a destroy callback. The inventory checks the header,
//! version and size from the library file before loading it, checks the function pointers
//! after loading, and wraps the plugin into the very same [`ConnectorInstance`] objects that
//! Rust plugins produce. Nothing unwinds across this interface: C cannot unwind into Rust, and
//! the Rust side never calls back into C from a place that could panic through it.

use std::ffi::{c_char, c_void, CStr};
use std::sync::{Arc, Mutex, MutexGuard};

use cglue::prelude::v1::*;

use super::descriptor::PluginHeader;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::*;
use crate::mem::{report, MemBatch, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata, SplitBuf};
use crate::types::{umem, Address, PhysicalAddress};

/// Version of the C connector interface (`MfCConnectorPlugin`).
pub const C_PLUGIN_VERSION: u32 = 1;

/// What the host offers a C plugin while it creates an instance.
#[repr(C)]
pub struct CHost {
    /// Logs `message` (NUL-terminated UTF-8, borrowed for the call) at `level`: 1 error,
    /// 2 warning, 3 info, 4 debug, 5 trace. Callable during `create` only.
    pub log: extern "C" fn(level: u32, message: *const c_char),
}

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
/// it in `*out` and returns 0, or returns a negative error code.
pub type CCreateFn =
    unsafe extern "C" fn(args: *const c_char, user: *mut c_void, host: *const CHost, out: *mut *mut c_void) -> i32;
/// Reads `len` bytes at physical address `addr` into `buf`. Returns how many bytes from the
/// start were read (`0..=len`; the rest count as unreadable) or a negative error code.
pub type CReadFn = unsafe extern "C" fn(instance: *mut c_void, addr: u64, buf: *mut u8, len: u64) -> i64;
/// Writes `len` bytes from `buf` at `addr`. Returns how many bytes from the start were written
/// or a negative error code.
pub type CWriteFn = unsafe extern "C" fn(instance: *mut c_void, addr: u64, buf: *const u8, len: u64) -> i64;
/// Fills `*out` with the instance's metadata.
pub type CMetadataFn = unsafe extern "C" fn(instance: *mut c_void, out: *mut CConnectorMetadata);
/// Makes an independent copy of an instance for another thread; returns 0 and stores it in
/// `*out`, or a negative code.
pub type CCloneFn = unsafe extern "C" fn(instance: *mut c_void, out: *mut *mut c_void) -> i32;
/// Frees an instance.
pub type CDestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The descriptor a C connector plugin exports as `MEMFLOW_PLUGIN`.
///
/// Calls into one instance are serialised by the host, so a plugin need not be thread-safe.
/// Without `clone`, clones of the connector share one instance.
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
}

/// Checks the interface version and struct size that follow the header, as read from the
/// library file (before loading it).
pub fn check_prefix(after_header: &[u8]) -> Result<()> {
    let word = |i: usize| after_header.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(version), Some(size)) = (word(0), word(4)) else {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Truncated)
            .with_reason("C plugin descriptor ends after its header"));
    };
    if version != C_PLUGIN_VERSION {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::VersionMismatch)
            .with_reason(format_args!("C plugin interface version {version}, this host speaks {C_PLUGIN_VERSION}")));
    }
    if (size as usize) < core::mem::size_of::<CConnectorPlugin>() {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::LayoutMismatch).with_reason(format_args!(
            "C plugin descriptor is {size} bytes, expected {}",
            core::mem::size_of::<CConnectorPlugin>()
        )));
    }
    Ok(())
}

extern "C" fn host_log(level: u32, message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: the plugin passes a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    let level = match level {
        1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    };
    log::log!(target: "c-plugin", level, "{text}");
}

static HOST: CHost = CHost { log: host_log };

/// One C instance; destroyed when the last sharer lets go.
struct CInstance {
    plugin: &'static CConnectorPlugin,
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
        let done = unsafe { read(self.instance, addr, buf.as_mut_ptr(), buf.len() as u64) };
        usize::try_from(done).map_or(0, |d| d.min(buf.len()))
    }

    /// Calls the plugin's `write`: how many bytes from the start of `buf` it wrote.
    fn write(&self, addr: Address, buf: &[u8]) -> usize {
        let (Some(write), Ok(addr)) = (self.plugin.write, u64::try_from(addr.to_umem())) else { return 0 };
        // SAFETY: `buf` is a readable slice of `len` bytes for the call.
        let done = unsafe { write(self.instance, addr, buf.as_ptr(), buf.len() as u64) };
        usize::try_from(done).map_or(0, |d| d.min(buf.len()))
    }

    /// Fails with [`ErrorKind::ReadOnly`] if the plugin has no `write`.
    fn check_writable(&self) -> Result<()> {
        if self.plugin.write.is_none() {
            return Err(Error::new(ErrorOrigin::Connector, ErrorKind::ReadOnly)
                .with_reason("the C plugin has no write function: its connector is read-only"));
        }
        Ok(())
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
        let fresh = CInstance { plugin: guard.plugin, instance: out };
        CConnector { inner: Arc::new(Mutex::new(fresh)), _lib: self._lib.clone() }
    }
}

impl CConnector {
    /// The instance, locked for a call.
    fn lock(&self) -> MutexGuard<'_, CInstance> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on every op of a batch with the instance locked; `f` returns how many bytes
    /// from the op's start it handled.
    fn run<T, B: SplitBuf>(
        &mut self,
        batch: MemBatch<'_, '_, '_, T, B>,
        split: impl Fn(T) -> (Address, Address, B),
        f: impl Fn(&CInstance, Address, &mut B) -> usize,
    ) {
        let MemBatch { ops, mut on_ok, mut on_fail } = batch;
        let guard = self.lock();
        for op in ops {
            let (addr, tag, mut buf) = split(op);
            let done = f(&guard, addr, &mut buf);
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
        self.run(batch, |op| (op.addr.address, op.tag, op.buf), |c, addr, buf| c.read(addr, buf));
        Ok(())
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.lock().check_writable()?;
        self.run(batch, |op| (op.addr.address, op.tag, op.buf), |c, addr, buf| c.write(addr, buf));
        Ok(())
    }

    /// One call of the plugin's `read`, which already has the single-read contract.
    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        let done = self.lock().read(addr.address, out);
        out[done..].fill(0);
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

cglue_impl_group!(CConnector, ConnectorInstance, {});

/// Creates a connector from the C plugin descriptor at `desc` (already header-checked).
pub fn create_connector(desc: *const u8, args: &CStr, lib: LibArc) -> Result<ConnectorInstanceArcBox<'static>> {
    // SAFETY: the inventory checked the header, interface version and size of this static
    // descriptor, which lives as long as `lib` keeps the library loaded.
    let plugin: &'static CConnectorPlugin = unsafe { &*(desc as *const CConnectorPlugin) };
    check_prefix(&[plugin.version.to_le_bytes(), plugin.struct_size.to_le_bytes()].concat())?;
    let name = plugin.header.name();
    let (Some(create), Some(_), Some(_), Some(_)) = (plugin.create, plugin.read, plugin.metadata, plugin.destroy)
    else {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
            .with_reason(format_args!("C plugin `{name}` lacks one of create, read, metadata, destroy")));
    };
    let mut out = core::ptr::null_mut();
    // SAFETY: the function pointers come from the plugin; arguments are valid for the call.
    let code = unsafe { create(args.as_ptr(), plugin.user, &HOST, &mut out) };
    if code != 0 {
        let err = Error::from_code(code).unwrap_or(Error::new(ErrorOrigin::Plugin, ErrorKind::Unknown));
        log::debug!("C plugin `{name}` failed to create an instance: {err}");
        return Err(err);
    }
    if out.is_null() {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
            .with_reason(format_args!("C plugin `{name}` returned success but no instance")));
    }
    let conn = CConnector { inner: Arc::new(Mutex::new(CInstance { plugin, instance: out })), _lib: lib.clone() };
    Ok(connector_instance(conn, lib))
}

/// C plugins can only be connectors; an OS layer needs the Rust interface.
pub fn create_os(
    _desc: *const u8,
    _args: &CStr,
    _input: Option<ConnectorInstanceArcBox<'static>>,
    _lib: LibArc,
) -> Result<OsInstanceArcBox<'static>> {
    Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Unsupported)
        .with_reason("OS layers cannot be C plugins; write them against the Rust plugin interface"))
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
            version: C_PLUGIN_VERSION,
            struct_size: core::mem::size_of::<CConnectorPlugin>() as u32,
            create: Some(create),
            read: Some(read),
            write: if with_write { Some(write) } else { None },
            metadata: Some(metadata),
            clone: Some(clone),
            destroy: Some(destroy),
            user: core::ptr::null_mut(),
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
        copy.version = C_PLUGIN_VERSION;
        copy.struct_size = 16;
        assert_eq!(
            create_connector(&copy as *const _ as *const u8, c"", LibArc::default()).err().unwrap().kind,
            ErrorKind::LayoutMismatch
        );
        assert!(check_prefix(&[1, 0, 0]).is_err());
    }
}
