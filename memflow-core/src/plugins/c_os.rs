//! OS layers written in plain C.
//!
//! A C OS layer exports, under [`super::PLUGIN_SYMBOL`], a [`COsPlugin`]: the common
//! [`PluginHeader`] (flavor C, kind OS), the interface version and struct size, a user pointer
//! and plain function pointers (versioning, checks and errors: [`super::c_abi`]). `create`
//! gets the host table and, in a chain, the connector below as a [`CConnectorInput`] table;
//! `process_open` hands back a process context with its own [`CProcessTable`]. A process
//! either reads and writes its memory itself (`read`, `write`) or leaves `read` NULL: then the
//! host translates the addresses of its record's page-table roots (`table_root`,
//! `table_root_2`, architecture `sys_arch`) on the connector with [`VirtualDma`], so a C
//! author never writes a page walker.
//!
//! The host wraps all of this into the same [`OsInstance`] and [`ProcessInstance`] objects
//! Rust plugins produce (the OS passes the physical memory and CPU state of the connector below
//! through, as the Rust layers do). Records the plugin reports are checked and copied
//! ([`IncomingRecord`]), listings are bounded ([`super::c_limits`]), and every optional entry
//! left NULL makes its call fail with `Unsupported`.
//!
//! Threads: no two calls into one OS instance or into the processes opened from it run at
//! the same time (one lock serves them all), so a plugin needs no locking of its own. Memory
//! of host-translated processes is read without calling the plugin at all.

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::{Arc, Mutex, MutexGuard};

use cglue::prelude::v1::*;

use super::c_abi::{check_code, done_count, from_c, load_table, serve_batch, unsupported, CHost, CTable, Entry, HOST};
use super::c_input::{CConnectorInput, Input};
use super::c_limits::{MAX_MODULES, MAX_PROCESSES, MAX_RANGES, MAX_SYMBOLS};
use super::c_plugin::{CCloneFn, CDestroyFn, CReadFn, CWriteFn};
use super::descriptor::PluginHeader;
use super::records::*;
use crate::connector::cpu_state::{AArch64Registers, CpuState, CpuStateVtbl, RiscVRegisters, X86Registers};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::*;
use crate::mem::{
    MemMappingCallback, MemOp, MemoryView, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata,
    PhysicalMemoryVtbl, ReadBatch, ViewMetadata, WriteBatch,
};
use crate::os::mappings::{memory_ranges, Mapping};
use crate::os::*;
use crate::translate::{
    FailureCallback, TranslationCallback, TranslationRangeCallback, VirtualTranslate, VirtualTranslateVtbl,
};
use crate::types::{imem, umem, Address, PhysicalAddress};
use crate::virt::VirtualDma;

/// Translations cached per host-translated process.
const TLB_SLOTS: usize = 4096;

/// Creates an OS instance for `args` (NUL-terminated `key=value,...` text, may be empty) on
/// top of `input` (the connector below it in a chain; NULL without one). Stores the instance
/// in `*out` and returns 0, or returns a negative error code. `host` and `input` stay valid
/// until the instance is destroyed.
pub type COsCreateFn = unsafe extern "C" fn(
    args: *const c_char,
    user: *mut c_void,
    host: *const CHost,
    input: *const CConnectorInput,
    out: *mut *mut c_void,
) -> i32;
/// Fills `*out` with facts about the OS (called once, after `create`). Returns 0 or a negative
/// error code.
pub type COsInfoFn = unsafe extern "C" fn(os: *mut c_void, out: *mut MfOsInfo) -> i32;
/// Calls `callback(context, &record)` once for every process, until it returns `false`. The
/// record and its strings need to live only during that call. Returns 0 or a negative error
/// code.
pub type CProcessListFn =
    unsafe extern "C" fn(os: *mut c_void, callback: MfProcessInfoCallback, context: *mut c_void) -> i32;
/// Calls `callback(context, &record)` once with the record of the process whose `address`
/// field is `address`. Returns 0, or a negative error code (kind `MF_KIND_NOT_FOUND` if there
/// is none).
pub type CProcessInfoFn =
    unsafe extern "C" fn(os: *mut c_void, address: u64, callback: MfProcessInfoCallback, context: *mut c_void) -> i32;
/// Opens the process `info` (a record this OS listed, borrowed for the call): fills `*out` with
/// its table and context and returns 0, or returns a negative error code.
pub type CProcessOpenFn =
    unsafe extern "C" fn(os: *mut c_void, info: *const MfProcessInfo, out: *mut COpenedProcess) -> i32;
/// Calls `callback(context, &record)` for every module of a process (or of the kernel, for the
/// OS entry), until it returns `false`. Returns 0 or a negative error code.
pub type CModuleListFn =
    unsafe extern "C" fn(target: *mut c_void, callback: MfModuleInfoCallback, context: *mut c_void) -> i32;
/// Stores the address of the kernel symbol `name` in `*out` and returns 0, or returns a
/// negative error code (kind `MF_KIND_NOT_FOUND` for an unknown symbol).
pub type CKernelSymbolFn = unsafe extern "C" fn(os: *mut c_void, name: *const c_char, out: *mut u64) -> i32;
/// Calls `callback(context, &record)` for every kernel symbol, until it returns `false`.
pub type CKernelSymbolListFn =
    unsafe extern "C" fn(os: *mut c_void, callback: MfKernelSymbolCallback, context: *mut c_void) -> i32;
/// The current run state of a process, one of `MF_PROCESS_STATE_*`.
pub type CProcessStateFn = unsafe extern "C" fn(process: *mut c_void) -> MfProcessState;
/// Calls `callback(context, &range)` for the mapped ranges of a process that overlap
/// `[start, end)`, until it returns `false`. The host clips and merges them.
pub type CRangeListFn = unsafe extern "C" fn(
    process: *mut c_void,
    start: u64,
    end: u64,
    callback: MfMemoryRangeCallback,
    context: *mut c_void,
) -> i32;
/// Calls `callback(context, &record)` for every export of `module` (a record of this process,
/// borrowed for the call), until it returns `false`.
pub type CExportListFn = unsafe extern "C" fn(
    process: *mut c_void,
    module: *const MfModuleInfo,
    callback: MfExportCallback,
    context: *mut c_void,
) -> i32;
/// Calls `callback(context, &record)` for every import of `module`, until it returns `false`.
pub type CImportListFn = unsafe extern "C" fn(
    process: *mut c_void,
    module: *const MfModuleInfo,
    callback: MfImportCallback,
    context: *mut c_void,
) -> i32;
/// Calls `callback(context, &record)` for every section of `module`, until it returns `false`.
pub type CSectionListFn = unsafe extern "C" fn(
    process: *mut c_void,
    module: *const MfModuleInfo,
    callback: MfSectionCallback,
    context: *mut c_void,
) -> i32;

/// The descriptor a C OS layer plugin exports as `MEMFLOW_PLUGIN`.
///
/// Entries after `process_open` are optional and may be left out by a plugin built against
/// an older table (its `struct_size` says so): they count as NULL, and a NULL entry makes the
/// corresponding call fail with `Unsupported` (except `process_info`, see there).
#[repr(C)]
pub struct COsPlugin {
    /// The common header, with `flavor` 2 (C) and `kind` 2 (OS layer).
    pub header: PluginHeader,
    /// `MF_C_PLUGIN_VERSION` the plugin was written against.
    pub version: u32,
    /// `sizeof` this struct as the plugin saw it.
    pub struct_size: u32,
    /// Passed to `create` unchanged.
    pub user: *mut c_void,
    /// Required.
    pub create: Option<COsCreateFn>,
    /// Required: frees an instance (after every process opened from it was destroyed).
    pub destroy: Option<CDestroyFn>,
    /// Required.
    pub info: Option<COsInfoFn>,
    /// Required.
    pub process_list: Option<CProcessListFn>,
    /// Required.
    pub process_open: Option<CProcessOpenFn>,
    /// Optional: without it, looking a process up by its address lists all processes.
    pub process_info: Option<CProcessInfoFn>,
    /// Optional: an independent copy of an instance for another thread (see
    /// `MfCCloneFn`); without it, clones of the OS share one instance.
    pub clone: Option<CCloneFn>,
    /// Optional: the kernel modules.
    pub module_list: Option<CModuleListFn>,
    /// Optional: a kernel symbol by name.
    pub kernel_symbol: Option<CKernelSymbolFn>,
    /// Optional: every kernel symbol.
    pub kernel_symbol_list: Option<CKernelSymbolListFn>,
}

// SAFETY: a repr(C) struct of a plain-bytes header, integers, a raw pointer and optional
// function pointers.
unsafe impl CTable for COsPlugin {
    const MIN_SIZE: usize = core::mem::offset_of!(COsPlugin, process_open) + core::mem::size_of::<usize>();
    const WHAT: &'static str = "the C OS layer plugin descriptor";
}

// SAFETY: the host only reads its copy of the descriptor: function pointers, plain data, and
// `user`, which it hands to the plugin's `create` unchanged.
unsafe impl Send for COsPlugin {}
// SAFETY: as above.
unsafe impl Sync for COsPlugin {}

/// What `process_open` fills in: the process's table (static, or living at least as long as
/// the process) and its context, passed to every entry of the table.
#[repr(C)]
pub struct COpenedProcess {
    /// The process's functions.
    pub table: *const CProcessTable,
    /// The process context.
    pub process: *mut c_void,
}

/// The functions of an opened process.
///
/// Entries after `destroy` are optional and may be left out by a plugin built against an
/// older table. Without `read`, the host reads and writes the process's memory itself by
/// translating with the page-table roots of its record (`table_root`, `table_root_2`,
/// architecture `sys_arch`) on the OS layer's connector.
#[repr(C)]
pub struct CProcessTable {
    /// `MF_C_PLUGIN_VERSION` the plugin was written against.
    pub version: u32,
    /// `sizeof(MfCProcessTable)` as the plugin saw it.
    pub struct_size: u32,
    /// Required: frees the process context.
    pub destroy: Option<CDestroyFn>,
    /// Optional: reads `len` bytes at virtual address `addr` (as a connector's `read`).
    pub read: Option<CReadFn>,
    /// Optional: writes (as a connector's `write`); without it (and with `read`) the process
    /// is read-only.
    pub write: Option<CWriteFn>,
    /// Optional: the current run state (without it: unknown).
    pub state: Option<CProcessStateFn>,
    /// Optional: the modules.
    pub module_list: Option<CModuleListFn>,
    /// Optional: the mapped ranges.
    pub mapped_ranges: Option<CRangeListFn>,
    /// Optional: a module's exports.
    pub module_exports: Option<CExportListFn>,
    /// Optional: a module's imports.
    pub module_imports: Option<CImportListFn>,
    /// Optional: a module's sections.
    pub module_sections: Option<CSectionListFn>,
}

// SAFETY: a repr(C) struct of integers and optional function pointers.
unsafe impl CTable for CProcessTable {
    const MIN_SIZE: usize = core::mem::offset_of!(CProcessTable, destroy) + core::mem::size_of::<usize>();
    const WHAT: &'static str = "a C process table";
}

/// One C OS instance and what it was given; destroyed when the last OS clone sharing it and
/// the last process opened from it are gone.
struct OsFamily {
    plugin: Arc<COsPlugin>,
    instance: *mut c_void,
    /// The connector the instance was given, kept until after it is destroyed.
    _input: Option<Arc<Input>>,
}

// SAFETY: `instance` is only used under the mutex around every `OsFamily`.
unsafe impl Send for OsFamily {}

impl Drop for OsFamily {
    fn drop(&mut self) {
        if let Some(destroy) = self.plugin.destroy {
            // SAFETY: the plugin made `instance`; it is destroyed exactly once, here, after
            // every process (each holds the family) is gone.
            unsafe { destroy(self.instance) }
        }
    }
}

/// The family lock: held for every call into the OS instance or one of its processes.
type Family = Arc<Mutex<OsFamily>>;

fn lock(family: &Family) -> MutexGuard<'_, OsFamily> {
    family.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gathers the records a plugin reports to a callback during one call, at most `max`.
struct Gather<R: IncomingRecord> {
    records: Vec<R::Core>,
    max: usize,
    error: Option<Error>,
}

/// The callback handed to a plugin's listing entries: checks and keeps each record.
unsafe extern "C" fn gather<R: IncomingRecord>(context: *mut c_void, record: *const R) -> bool {
    let gather = &mut *(context as *mut Gather<R>);
    let code = from_c(|| {
        if gather.error.is_some() {
            return Ok(());
        }
        if record.is_null() {
            return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::NullPointer)
                .with_reason(format_args!("{} is NULL", R::WHAT)));
        }
        if gather.records.len() >= gather.max {
            return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::LimitExceeded)
                .with_reason(format_args!("more than {} records", gather.max)));
        }
        let core = (*record).to_core(ErrorOrigin::Plugin)?;
        crate::mem::alloc::reserve(&mut gather.records, 1, ErrorOrigin::Plugin, R::WHAT)?;
        gather.records.push(core);
        Ok(())
    });
    if code != 0 && gather.error.is_none() {
        gather.error = Some(Error::from_code(code).unwrap_or(Error::new(ErrorOrigin::Plugin, ErrorKind::Panic)));
    }
    gather.error.is_none()
}

/// Runs a listing entry (`call` gets the callback and its context) and returns what it
/// reported; a record that fails its checks or one too many fails the listing.
fn gather_records<R: IncomingRecord>(
    what: Entry<'_>,
    max: usize,
    call: impl FnOnce(Option<unsafe extern "C" fn(*mut c_void, *const R) -> bool>, *mut c_void) -> i32,
) -> Result<Vec<R::Core>> {
    let mut gathered = Gather::<R> { records: Vec::new(), max, error: None };
    let context = &mut gathered as *mut Gather<R> as *mut c_void;
    let returned = check_code(what, || call(Some(gather::<R>), context));
    if let Some(error) = gathered.error {
        return Err(error.with_reason(format_args!("{what}: a bad record")));
    }
    returned?;
    Ok(gathered.records)
}

/// A C plugin's OS instance as a Rust OS layer.
pub struct COs {
    family: Family,
    name: Arc<str>,
    info: OsInfo,
    /// The connector below, for processes whose memory the host translates.
    conn: Option<ConnectorInstanceArcBox<'static>>,
    lib: LibArc,
}

/// A clone is an independent instance where the plugin has `clone`, else it shares the
/// instance (and its lock).
impl Clone for COs {
    fn clone(&self) -> Self {
        let shared = COs {
            family: self.family.clone(),
            name: self.name.clone(),
            info: self.info,
            conn: self.conn.clone(),
            lib: self.lib.clone(),
        };
        let family = lock(&self.family);
        let Some(clone) = family.plugin.clone else { return shared };
        let mut out = core::ptr::null_mut();
        // SAFETY: the instance is live and locked.
        if unsafe { clone(family.instance, &mut out) } != 0 || out.is_null() {
            return shared;
        }
        let fresh = OsFamily { plugin: family.plugin.clone(), instance: out, _input: family._input.clone() };
        COs { family: Arc::new(Mutex::new(fresh)), ..shared }
    }
}

impl COs {
    /// The plugin's `entry`, for errors.
    fn what<'a>(&'a self, entry: &'a str) -> Entry<'a> {
        Entry { plugin: &self.name, entry }
    }

    /// An optional entry, or `Unsupported`.
    fn entry<F>(&self, entry: Option<F>, name: &str) -> Result<F> {
        entry.ok_or_else(|| unsupported(ErrorOrigin::Os, &self.name, name))
    }

    /// Every process record the plugin lists.
    fn processes(&self) -> Result<Vec<ProcessInfo>> {
        let family = lock(&self.family);
        let list =
            family.plugin.process_list.ok_or_else(|| unsupported(ErrorOrigin::Os, &self.name, "process_list"))?;
        // SAFETY: the instance is live and locked; the callback and context are valid for the call.
        gather_records::<MfProcessInfo>(self.what("process_list"), MAX_PROCESSES, |cb, ctx| unsafe {
            list(family.instance, cb, ctx)
        })
    }

    /// Every kernel module record the plugin lists.
    fn kernel_modules(&self) -> Result<Vec<ModuleInfo>> {
        let family = lock(&self.family);
        let list = self.entry(family.plugin.module_list, "module_list")?;
        // SAFETY: as in `processes`.
        gather_records::<MfModuleInfo>(self.what("module_list"), MAX_MODULES, |cb, ctx| unsafe {
            list(family.instance, cb, ctx)
        })
    }
}

impl Os for COs {
    fn process_address_list_callback(&mut self, mut callback: AddressCallback) -> Result<()> {
        for process in self.processes()? {
            if !callback.call(process.address) {
                break;
            }
        }
        Ok(())
    }

    fn process_info_by_address(&mut self, address: Address) -> Result<ProcessInfo> {
        let family = lock(&self.family);
        let Some(info) = family.plugin.process_info else {
            drop(family);
            return self.processes()?.into_iter().find(|p| p.address == address).ok_or_else(|| {
                Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no process at {address}"))
            });
        };
        // SAFETY: as in `processes`.
        let found = gather_records::<MfProcessInfo>(self.what("process_info"), 1, |cb, ctx| unsafe {
            info(family.instance, addr_out(address), cb, ctx)
        })?;
        found.into_iter().next().ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
                .with_reason(format_args!("{} reported no process at {address}", self.what("process_info")))
        })
    }

    fn process_by_info(&mut self, info: ProcessInfo) -> Result<ProcessInstanceArcBox<'static>> {
        let family = lock(&self.family);
        let open = self.entry(family.plugin.process_open, "process_open")?;
        let record = MfProcessInfo::borrow(&info);
        let mut opened = COpenedProcess { table: core::ptr::null(), process: core::ptr::null_mut() };
        // SAFETY: the instance is live and locked; `record` and `opened` are valid for the call.
        check_code(self.what("process_open"), || unsafe { open(family.instance, &record, &mut opened) })?;
        if opened.table.is_null() || opened.process.is_null() {
            return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
                .with_reason(format_args!("{} returned success but no table or process", self.what("process_open"))));
        }
        // SAFETY: the plugin promises a table of at least its `struct_size` bytes.
        let table = unsafe { load_table(opened.table, (*opened.table).version, (*opened.table).struct_size) }
            .map_err(|e| e.with_reason(format_args!("{} (the process is leaked)", self.what("process_open"))))?;
        if table.destroy.is_none() {
            return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed).with_reason(format_args!(
                "{}: the process table has no destroy entry (the process is leaked)",
                self.what("process_open")
            )));
        }
        drop(family);
        let context = Arc::new(ProcessContext {
            family: self.family.clone(),
            name: self.name.clone(),
            table,
            process: opened.process,
        });
        let view = match (context.table.read, &self.conn) {
            (Some(_), _) => None,
            (None, Some(conn)) => Some(translated(conn.clone(), &info)?),
            (None, None) => {
                return Err(Error::new(ErrorOrigin::Process, ErrorKind::Unsupported).with_reason(format_args!(
                    "{}: the process has no read entry and the OS layer no connector to translate on",
                    self.what("process_open")
                )))
            }
        };
        Ok(process_instance(CProcess { context, info, view }, self.lib.clone()))
    }

    fn module_address_list_callback(&mut self, mut callback: AddressCallback) -> Result<()> {
        for module in self.kernel_modules()? {
            if !callback.call(module.address) {
                break;
            }
        }
        Ok(())
    }

    fn module_by_address(&mut self, address: Address) -> Result<ModuleInfo> {
        crate::os::module_with_address(&self.kernel_modules()?, address)
    }

    fn kernel_symbol(&mut self, name: &str) -> Result<Address> {
        let family = lock(&self.family);
        let symbol = self.entry(family.plugin.kernel_symbol, "kernel_symbol")?;
        let text = CString::new(name).map_err(|_| {
            Error::new(ErrorOrigin::Os, ErrorKind::InvalidArgument).with_reason("a symbol name contains a NUL byte")
        })?;
        let mut out = 0u64;
        // SAFETY: the instance is live and locked; `text` and `out` are valid for the call.
        check_code(self.what("kernel_symbol"), || unsafe { symbol(family.instance, text.as_ptr(), &mut out) })?;
        Ok(addr_in(out))
    }

    fn kernel_symbol_list_callback(&mut self, mut callback: KernelSymbolCallback) -> Result<()> {
        let symbols = {
            let family = lock(&self.family);
            let list = self.entry(family.plugin.kernel_symbol_list, "kernel_symbol_list")?;
            // SAFETY: as in `processes`.
            gather_records::<MfKernelSymbolInfo>(self.what("kernel_symbol_list"), MAX_SYMBOLS, |cb, ctx| unsafe {
                list(family.instance, cb, ctx)
            })?
        };
        for symbol in symbols {
            if !callback.call(symbol) {
                break;
            }
        }
        Ok(())
    }

    fn info(&self) -> &OsInfo {
        &self.info
    }
}

/// The address space of `info` translated by the host: architecture `sys_arch`, roots
/// `table_root` and (where set) `table_root_2`.
fn translated(
    conn: ConnectorInstanceArcBox<'static>,
    info: &ProcessInfo,
) -> Result<VirtualDma<ConnectorInstanceArcBox<'static>>> {
    if info.table_root.is_null() {
        return Err(Error::new(ErrorOrigin::Process, ErrorKind::InvalidArgument).with_reason(format_args!(
            "process {} (`{}`) has no read entry and no page-table root",
            info.pid, info.name
        )));
    }
    let roots = [info.table_root, info.table_root_2];
    let count = if info.table_root_2.is_null() { 1 } else { 2 };
    Ok(VirtualDma::new(conn, info.sys_arch, &roots[..count])?.with_tlb(TLB_SLOTS))
}

/// A process context of the plugin; destroyed when the last clone of its process is gone.
struct ProcessContext {
    family: Family,
    name: Arc<str>,
    table: CProcessTable,
    process: *mut c_void,
}

// SAFETY: `process` is only used under the family lock.
unsafe impl Send for ProcessContext {}
// SAFETY: as above.
unsafe impl Sync for ProcessContext {}

impl Drop for ProcessContext {
    fn drop(&mut self) {
        let _family = lock(&self.family);
        if let Some(destroy) = self.table.destroy {
            // SAFETY: the plugin made `process`; it is destroyed exactly once, here.
            unsafe { destroy(self.process) }
        }
    }
}

impl ProcessContext {
    /// The process entry `entry`, for errors.
    fn what<'a>(&'a self, entry: &'a str) -> Entry<'a> {
        Entry { plugin: &self.name, entry }
    }

    /// An optional entry, or `Unsupported`.
    fn entry<F>(&self, entry: Option<F>, name: &str) -> Result<F> {
        entry.ok_or_else(|| unsupported(ErrorOrigin::Process, &self.name, name))
    }

    /// Runs a listing entry of the process.
    fn gather<R: IncomingRecord>(
        &self,
        entry: &str,
        max: usize,
        call: impl FnOnce(*mut c_void, Option<unsafe extern "C" fn(*mut c_void, *const R) -> bool>, *mut c_void) -> i32,
    ) -> Result<Vec<R::Core>> {
        let _family = lock(&self.family);
        gather_records::<R>(self.what(entry), max, |cb, ctx| call(self.process, cb, ctx))
    }

    /// Calls the plugin's `read` (the lock is held by the caller).
    fn read(&self, addr: Address, buf: &mut [u8]) -> usize {
        let (Some(read), Ok(addr)) = (self.table.read, u64::try_from(addr.to_umem())) else { return 0 };
        // SAFETY: `buf` is a writable slice of `len` bytes for the call.
        done_count(unsafe { read(self.process, addr, buf.as_mut_ptr(), buf.len() as u64) }, buf.len())
    }

    /// Calls the plugin's `write` (the lock is held by the caller).
    fn write(&self, addr: Address, buf: &[u8]) -> usize {
        let (Some(write), Ok(addr)) = (self.table.write, u64::try_from(addr.to_umem())) else { return 0 };
        // SAFETY: `buf` is a readable slice of `len` bytes for the call.
        done_count(unsafe { write(self.process, addr, buf.as_ptr(), buf.len() as u64) }, buf.len())
    }

    fn check_writable(&self) -> Result<()> {
        if self.table.write.is_none() {
            return Err(Error::new(ErrorOrigin::Process, ErrorKind::ReadOnly)
                .with_reason(format_args!("{}: the process has no write entry", self.what("process write"))));
        }
        Ok(())
    }
}

/// A process of a C OS layer.
#[derive(Clone)]
pub struct CProcess {
    context: Arc<ProcessContext>,
    info: ProcessInfo,
    /// The host's translation of its address space, for processes without `read`.
    view: Option<VirtualDma<ConnectorInstanceArcBox<'static>>>,
}

/// The address, tag and buffer of a virtual operation.
fn virt_parts<B>(op: MemOp<Address, B>) -> (Address, Address, B) {
    (op.addr, op.tag, op.buf)
}

impl CProcess {
    fn modules(&self) -> Result<Vec<ModuleInfo>> {
        let list = self.context.entry(self.context.table.module_list, "module_list")?;
        // SAFETY: the process is live and locked; the callback and context are valid for the call.
        self.context
            .gather::<MfModuleInfo>("process module_list", MAX_MODULES, |p, cb, ctx| unsafe { list(p, cb, ctx) })
    }
}

impl MemoryView for CProcess {
    fn read_batch(&mut self, batch: ReadBatch) -> Result<()> {
        if let Some(view) = &mut self.view {
            return view.read_batch(batch);
        }
        let _family = lock(&self.context.family);
        serve_batch(batch, virt_parts, |addr, buf| self.context.read(addr, buf));
        Ok(())
    }

    fn write_batch(&mut self, batch: WriteBatch) -> Result<()> {
        if let Some(view) = &mut self.view {
            return view.write_batch(batch);
        }
        self.context.check_writable()?;
        let _family = lock(&self.context.family);
        serve_batch(batch, virt_parts, |addr, buf| self.context.write(addr, buf));
        Ok(())
    }

    fn read_single(&mut self, addr: Address, out: &mut [u8]) -> Result<usize> {
        if let Some(view) = &mut self.view {
            return view.read_single(addr, out);
        }
        let _family = lock(&self.context.family);
        let done = self.context.read(addr, out);
        out[done..].fill(0);
        Ok(done)
    }

    fn write_single(&mut self, addr: Address, data: &[u8]) -> Result<usize> {
        if let Some(view) = &mut self.view {
            return view.write_single(addr, data);
        }
        self.context.check_writable()?;
        let _family = lock(&self.context.family);
        Ok(self.context.write(addr, data))
    }

    fn metadata(&self) -> ViewMetadata {
        if let Some(view) = &self.view {
            return view.metadata();
        }
        let bits = self.info.proc_arch.describe().map_or(64, |a| a.pointer_bits());
        let max = umem::MAX >> (umem::BITS - u32::from(bits.clamp(1, 64)));
        ViewMetadata {
            max_address: Address::from(max),
            real_size: max,
            readonly: self.context.table.write.is_none(),
            little_endian: true,
            arch_bits: bits,
        }
    }
}

impl Process for CProcess {
    fn info(&self) -> &ProcessInfo {
        &self.info
    }

    fn state(&mut self) -> ProcessState {
        let Some(state) = self.context.table.state else { return ProcessState::Unknown };
        let _family = lock(&self.context.family);
        // SAFETY: the process is live and locked.
        match unsafe { state(self.context.process) } {
            MF_PROCESS_STATE_ALIVE => ProcessState::Alive,
            MF_PROCESS_STATE_DEAD => ProcessState::Dead,
            _ => ProcessState::Unknown,
        }
    }

    fn module_address_list_callback(
        &mut self,
        arch: Option<&crate::arch::ArchitectureIdent>,
        mut callback: AddressCallback,
    ) -> Result<()> {
        crate::os::module_addresses(&self.modules()?, arch, &mut callback);
        Ok(())
    }

    fn module_by_address(&mut self, address: Address, _arch: crate::arch::ArchitectureIdent) -> Result<ModuleInfo> {
        crate::os::module_with_address(&self.modules()?, address)
    }

    /// The module mapped from the process's path.
    fn primary_module_address(&mut self) -> Result<Address> {
        let path = &*self.info.path;
        self.modules()?.into_iter().find(|m| !path.is_empty() && &*m.path == path).map(|m| m.address).ok_or_else(|| {
            Error::new(ErrorOrigin::Process, ErrorKind::NotFound)
                .with_reason(format_args!("no module mapped from `{path}`"))
        })
    }

    fn module_import_list_callback(&mut self, module: &ModuleInfo, mut callback: ImportCallback) -> Result<()> {
        let list = self.context.entry(self.context.table.module_imports, "module_imports")?;
        let record = MfModuleInfo::borrow(module);
        // SAFETY: as in `modules`; `record` is valid for the call.
        let imports =
            self.context.gather::<MfImportInfo>("process module_imports", MAX_SYMBOLS, |p, cb, ctx| unsafe {
                list(p, &record, cb, ctx)
            })?;
        imports.into_iter().take_while(|i| callback.call(i.clone())).for_each(drop);
        Ok(())
    }

    fn module_export_list_callback(&mut self, module: &ModuleInfo, mut callback: ExportCallback) -> Result<()> {
        let list = self.context.entry(self.context.table.module_exports, "module_exports")?;
        let record = MfModuleInfo::borrow(module);
        // SAFETY: as in `modules`; `record` is valid for the call.
        let exports =
            self.context.gather::<MfExportInfo>("process module_exports", MAX_SYMBOLS, |p, cb, ctx| unsafe {
                list(p, &record, cb, ctx)
            })?;
        exports.into_iter().take_while(|e| callback.call(e.clone())).for_each(drop);
        Ok(())
    }

    fn module_section_list_callback(&mut self, module: &ModuleInfo, mut callback: SectionCallback) -> Result<()> {
        let list = self.context.entry(self.context.table.module_sections, "module_sections")?;
        let record = MfModuleInfo::borrow(module);
        // SAFETY: as in `modules`; `record` is valid for the call.
        let sections =
            self.context.gather::<MfSectionInfo>("process module_sections", MAX_SYMBOLS, |p, cb, ctx| unsafe {
                list(p, &record, cb, ctx)
            })?;
        sections.into_iter().take_while(|s| callback.call(s.clone())).for_each(drop);
        Ok(())
    }

    /// The C plugin interface has no thread list.
    fn thread_list_callback(&mut self, _callback: ThreadCallback) -> Result<()> {
        Err(Error::new(ErrorOrigin::Process, ErrorKind::Unsupported)
            .with_reason("C plugins do not list threads (the C OS interface has no entry for them)"))
    }

    /// The plugin's ranges, sorted, clipped and merged as every layer's are
    /// ([`crate::os::mappings::memory_ranges`]).
    fn mapped_mem_range(
        &mut self,
        gap_size: imem,
        start: Address,
        end: Address,
        mut callback: MemoryRangeCallback,
    ) -> Result<()> {
        let list = self.context.entry(self.context.table.mapped_ranges, "mapped_ranges")?;
        let (lo, hi) = (addr_out(start), addr_out(end));
        // SAFETY: as in `modules`.
        let ranges =
            self.context.gather::<MfMemoryRange>("process mapped_ranges", MAX_RANGES, |p, cb, ctx| unsafe {
                list(p, lo, hi, cb, ctx)
            })?;
        let mut maps: Vec<Mapping<()>> = ranges
            .iter()
            .map(|r| Mapping {
                start: r.base,
                end: r.base + r.size,
                read: true,
                write: r.page_type.contains(crate::types::PageType::WRITEABLE),
                exec: !r.page_type.contains(crate::types::PageType::NOEXEC),
                offset: 0,
                file: None,
            })
            .collect();
        maps.sort_by_key(|m| m.start);
        for range in memory_ranges(&maps, gap_size, start, end) {
            if !callback.call(range) {
                break;
            }
        }
        Ok(())
    }
}

impl CProcess {
    /// The host's translation, or `Unsupported` for a process that reads its memory itself.
    fn translation(&mut self) -> Result<&mut VirtualDma<ConnectorInstanceArcBox<'static>>> {
        self.view.as_mut().ok_or_else(|| {
            Error::new(ErrorOrigin::Process, ErrorKind::Unsupported).with_reason(format_args!(
                "C plugin `{}`: the process reads its own memory; the host does not translate it",
                self.context.name
            ))
        })
    }
}

/// Translation by the host, for processes that report page-table roots instead of reading.
impl VirtualTranslate for CProcess {
    fn virt_to_phys_list(
        &mut self,
        addrs: cglue::iter::CIterator<Address>,
        out: TranslationCallback,
        out_fail: FailureCallback,
    ) -> Result<()> {
        self.translation()?.virt_to_phys_list(addrs, out, out_fail)
    }

    fn virt_page_map_range(&mut self, gap: umem, start: Address, end: Address, out: MemoryRangeCallback) -> Result<()> {
        self.translation()?.virt_page_map_range(gap, start, end, out)
    }

    fn virt_translation_map_range(
        &mut self,
        start: Address,
        end: Address,
        out: TranslationRangeCallback,
    ) -> Result<()> {
        self.translation()?.virt_translation_map_range(start, end, out)
    }
}

/// The error of an OS layer asked for physical memory or CPU state without a connector below.
fn no_connector(name: &str) -> Error {
    Error::new(ErrorOrigin::Os, ErrorKind::Unsupported)
        .with_reason(format_args!("C plugin `{name}`: the OS layer has no connector below it"))
}

/// The physical memory of the connector below, passed through (as every OS layer does).
impl PhysicalMemory for COs {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        self.conn.as_mut().ok_or_else(|| no_connector(&self.name))?.phys_read_batch(batch)
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.conn.as_mut().ok_or_else(|| no_connector(&self.name))?.phys_write_batch(batch)
    }

    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        self.conn.as_mut().ok_or_else(|| no_connector(&self.name))?.phys_read_single(addr, out)
    }

    fn phys_write_single(&mut self, addr: PhysicalAddress, data: &[u8]) -> Result<usize> {
        self.conn.as_mut().ok_or_else(|| no_connector(&self.name))?.phys_write_single(addr, data)
    }

    /// Without a connector: nothing (no byte backed, read-only).
    fn metadata(&self) -> PhysicalMemoryMetadata {
        self.conn.as_ref().map_or(
            PhysicalMemoryMetadata { max_address: Address::NULL, real_size: 0, readonly: true, ideal_batch_size: 1 },
            |c| c.metadata(),
        )
    }

    fn mem_map_callback(&self, callback: MemMappingCallback) -> Result<()> {
        self.conn.as_ref().ok_or_else(|| no_connector(&self.name))?.mem_map_callback(callback)
    }
}

/// The CPU state of the connector below (none without one).
impl CpuState for COs {
    fn cpu_count(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.cpu_count())
    }

    fn x86_registers(&self, cpu: usize) -> Result<X86Registers> {
        self.conn.as_ref().ok_or_else(|| no_connector(&self.name))?.x86_registers(cpu)
    }

    fn aarch64_registers(&self, cpu: usize) -> Result<AArch64Registers> {
        self.conn.as_ref().ok_or_else(|| no_connector(&self.name))?.aarch64_registers(cpu)
    }

    fn riscv_registers(&self, cpu: usize) -> Result<RiscVRegisters> {
        self.conn.as_ref().ok_or_else(|| no_connector(&self.name))?.riscv_registers(cpu)
    }

    fn vmcoreinfo(&self, buf: &mut [u8]) -> Result<usize> {
        self.conn.as_ref().ok_or_else(|| no_connector(&self.name))?.vmcoreinfo(buf)
    }
}

cglue_impl_group!(COs, OsInstance, { PhysicalMemory, CpuState });
cglue_impl_group!(CProcess, ProcessInstance, { VirtualTranslate });

/// Creates an OS layer from the C plugin descriptor at `desc` (already header-checked) on top
/// of `input`.
pub fn create_os(
    desc: *const u8,
    args: &CStr,
    input: Option<ConnectorInstanceArcBox<'static>>,
    lib: LibArc,
) -> Result<OsInstanceArcBox<'static>> {
    let desc = desc as *const COsPlugin;
    // SAFETY: the inventory checked the header, interface version and size of this static
    // descriptor, which lives as long as `lib` keeps the library loaded.
    let plugin = unsafe { load_table(desc, (*desc).version, (*desc).struct_size) }?;
    let name: Arc<str> = plugin.header.name().into();
    let (Some(create), Some(_), Some(info), Some(_), Some(_)) =
        (plugin.create, plugin.destroy, plugin.info, plugin.process_list, plugin.process_open)
    else {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed).with_reason(format_args!(
            "C plugin `{name}` lacks one of create, destroy, info, process_list, process_open"
        )));
    };
    let conn = input.clone();
    let input = input.map(Input::new);
    let input_table = input.as_ref().map_or(core::ptr::null(), |i| &i.table as *const CConnectorInput);
    let mut instance = core::ptr::null_mut();
    // SAFETY: the function pointers come from the plugin; the arguments are valid for the
    // call, and `HOST` and `input_table` for as long as the instance lives.
    check_code(format_args!("C plugin `{name}`: create"), || unsafe {
        create(args.as_ptr(), plugin.user, &HOST, input_table, &mut instance)
    })?;
    if instance.is_null() {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
            .with_reason(format_args!("C plugin `{name}` returned success but no instance")));
    }
    let family = OsFamily { plugin: Arc::new(plugin), instance, _input: input };
    let mut record = MfOsInfo::default();
    // SAFETY: the instance is live and not shared yet; `record` is a valid place to write.
    check_code(format_args!("C plugin `{name}`: info"), || unsafe { info(family.instance, &mut record) })?;
    // SAFETY: an `MfOsInfo` has no strings.
    let info = unsafe { record.to_core(ErrorOrigin::Plugin) }?;
    let os = COs { family: Arc::new(Mutex::new(family)), name, info, conn, lib: lib.clone() };
    Ok(os_instance(os, lib))
}
