//! The plain records the bindings return: processes, threads, modules, exports, symbols, mapped
//! ranges, translations, plugins. Immutable Python objects with attributes, comparable and readable.

use memflow_cli::inspect::{access, arch_name, state_name};
use memflow_core::os::MemoryRange as CoreRange;
use memflow_core::os::{ExportInfo, KernelSymbolInfo, ModuleInfo, ThreadInfo};
use memflow_core::types::PhysicalAddress;
use pyo3::prelude::*;

/// One process of an OS layer, as listed (`Os.processes()`), or a `Process`'s `info`.
#[pyclass(module = "memflow", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id (0 if unknown).
    pub ppid: u32,
    /// Short name (the kernel's `comm` on Linux).
    pub name: String,
    /// Executable path ("" if unknown).
    pub path: String,
    /// Command line ("" if unknown).
    pub command_line: String,
    /// `"alive"`, `"dead"` or `"unknown"`.
    pub state: &'static str,
    /// The architecture the process runs as (`"x86_64"`, `"x86"`...).
    pub arch: &'static str,
    /// The architecture of the system (the kernel's).
    pub sys_arch: &'static str,
    /// Where the OS layer found the process (e.g. its `task_struct`).
    pub address: u64,
    /// Physical address of its page-table root (0 for kernel threads).
    pub table_root: u64,
}

impl From<&memflow_core::os::ProcessInfo> for ProcessInfo {
    fn from(p: &memflow_core::os::ProcessInfo) -> Self {
        ProcessInfo {
            pid: p.pid,
            ppid: p.ppid,
            name: p.name.to_string(),
            path: p.path.to_string(),
            command_line: p.command_line.to_string(),
            state: state_name(p.state),
            arch: arch_name(p.proc_arch),
            sys_arch: arch_name(p.sys_arch),
            address: p.address.to_umem() as u64,
            table_root: p.table_root.to_umem() as u64,
        }
    }
}

#[pymethods]
impl ProcessInfo {
    fn __repr__(&self) -> String {
        format!("ProcessInfo(pid={}, ppid={}, name={:?}, state={:?})", self.pid, self.ppid, self.name, self.state)
    }
}

/// A thread of a process (`Process.threads()`).
#[pyclass(module = "memflow", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct Thread {
    /// Thread id (on Linux the task's pid; the first thread's equals the process id).
    pub tid: u32,
    /// Name (on Linux the thread's own `comm`, which may differ from its process's).
    pub name: String,
    /// `"alive"`, `"dead"` or `"unknown"`.
    pub state: &'static str,
}

impl From<&ThreadInfo> for Thread {
    fn from(t: &ThreadInfo) -> Self {
        Thread { tid: t.tid, name: t.name.to_string(), state: state_name(t.state) }
    }
}

#[pymethods]
impl Thread {
    fn __repr__(&self) -> String {
        format!("Thread(tid={}, name={:?}, state={:?})", self.tid, self.name, self.state)
    }
}

/// A module: a process's loaded image or library, or a kernel module.
#[pyclass(module = "memflow", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct Module {
    /// Where it starts.
    pub base: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its name.
    pub name: String,
    /// Its file ("" if unknown).
    pub path: String,
    /// Where the OS layer found it (its descriptor's address).
    pub address: u64,
    /// Its architecture.
    pub arch: &'static str,
}

impl From<&ModuleInfo> for Module {
    fn from(m: &ModuleInfo) -> Self {
        Module {
            base: m.base.to_umem() as u64,
            size: m.size as u64,
            name: m.name.to_string(),
            path: m.path.to_string(),
            address: m.address.to_umem() as u64,
            arch: arch_name(m.arch),
        }
    }
}

#[pymethods]
impl Module {
    fn __repr__(&self) -> String {
        format!("Module(name={:?}, base={:#x}, size={:#x})", self.name, self.base, self.size)
    }
}

/// A symbol a module exports.
#[pyclass(module = "memflow", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct Export {
    /// Its name.
    pub name: String,
    /// Its offset from the module's base.
    pub offset: u64,
    /// Its address (the module's base plus the offset).
    pub address: u64,
}

impl Export {
    /// `e` of the module at `base`.
    pub fn of(base: u64, e: &ExportInfo) -> Self {
        Export { name: e.name.to_string(), offset: e.offset as u64, address: base.wrapping_add(e.offset as u64) }
    }
}

#[pymethods]
impl Export {
    fn __repr__(&self) -> String {
        format!("Export(name={:?}, address={:#x})", self.name, self.address)
    }
}

/// A kernel symbol (`/proc/kallsyms` on Linux).
#[pyclass(module = "memflow", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct KernelSymbol {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: u64,
    /// Its type letter (`"T"`, `"t"`, `"D"`...).
    pub kind: String,
    /// The kernel module it belongs to ("" for the kernel image).
    pub module: String,
}

impl From<&KernelSymbolInfo> for KernelSymbol {
    fn from(s: &KernelSymbolInfo) -> Self {
        KernelSymbol {
            name: s.name.to_string(),
            address: s.address.to_umem() as u64,
            kind: char::from(s.kind).to_string(),
            module: s.module.to_string(),
        }
    }
}

#[pymethods]
impl KernelSymbol {
    fn __repr__(&self) -> String {
        format!("KernelSymbol(name={:?}, address={:#x}, kind={:?})", self.name, self.address, self.kind)
    }
}

/// A mapped range of a process's address space.
#[pyclass(module = "memflow", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct MemoryRange {
    /// First address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// `"r"`, then `"w"` if writable, `"x"` if executable, `"u"` if user-accessible (else `"-"`).
    pub access: String,
}

impl From<&CoreRange> for MemoryRange {
    fn from(r: &CoreRange) -> Self {
        MemoryRange { base: r.base.to_umem() as u64, size: r.size as u64, access: access(r.page_type) }
    }
}

#[pymethods]
impl MemoryRange {
    fn __repr__(&self) -> String {
        format!("MemoryRange(base={:#x}, size={:#x}, access={:?})", self.base, self.size, self.access)
    }
}

/// Where a virtual address lies in physical memory (`vtop`).
#[pyclass(module = "memflow", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct Translation {
    /// The physical address.
    pub physical_address: u64,
    /// The page's size in bytes (`None` if not known).
    pub page_size: Option<u64>,
    /// `rwxu` access of the page, as in `MemoryRange.access`.
    pub access: String,
}

impl From<&PhysicalAddress> for Translation {
    fn from(pa: &PhysicalAddress) -> Self {
        Translation {
            physical_address: pa.address.to_umem() as u64,
            page_size: pa.page_size().map(|s| s as u64),
            access: access(pa.page_type),
        }
    }
}

#[pymethods]
impl Translation {
    fn __repr__(&self) -> String {
        let size = self.page_size.map_or("None".to_string(), |s| s.to_string());
        format!(
            "Translation(physical_address={:#x}, page_size={size}, access={:?})",
            self.physical_address, self.access
        )
    }
}
