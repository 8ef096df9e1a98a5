//! What OS layers report: processes, modules, exports, imports, sections, memory ranges.
//!
//! All `#[repr(C)]`; strings are owned `ReprCString`s, so a record can cross the plugin and C
//! boundaries and be kept by the receiver.

use cglue::callback::OpaqueCallback;
use cglue::repr_cstring::ReprCString;

use crate::arch::ArchitectureIdent;
use crate::types::{umem, Address};

/// A process id as the OS numbers it.
pub type Pid = u32;

/// The run state of a process, as far as the layer can tell.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProcessState {
    /// Not known.
    Unknown,
    /// Alive (running, runnable, sleeping or stopped).
    Alive,
    /// Exited but not yet reaped (a zombie), or gone.
    Dead,
}

/// A process.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// The layer's handle for the process (e.g. the address of its kernel structure, or the
    /// pid for the native layer). Pass it back to look the process up again.
    pub address: Address,
    /// Process id.
    pub pid: Pid,
    /// Parent process id, 0 if not known.
    pub ppid: Pid,
    /// Run state.
    pub state: ProcessState,
    /// Short name (e.g. Linux `comm`).
    pub name: ReprCString,
    /// Path of the executable, empty if not known or not resident.
    pub path: ReprCString,
    /// Command line with arguments separated by spaces, empty if not known or not resident.
    pub command_line: ReprCString,
    /// The architecture of the system the process runs on.
    pub sys_arch: ArchitectureIdent,
    /// The architecture the process itself runs as (e.g. 32-bit on a 64-bit system).
    pub proc_arch: ArchitectureIdent,
    /// Root of its page tables (CR3, TTBR0, satp), `NULL` if it has none (kernel threads).
    pub table_root: Address,
    /// Second table root where the architecture has one (TTBR1, a kernel root), else `NULL`.
    pub table_root_2: Address,
}

/// A thread of a process.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct ThreadInfo {
    /// Thread id (on Linux the task's pid; the first thread's is the process id).
    pub tid: Pid,
    /// Name (Linux `comm`, which a thread may set apart from its process's).
    pub name: ReprCString,
    /// Run state.
    pub state: ProcessState,
}

/// A module (an executable image) mapped into a process or the kernel.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct ModuleInfo {
    /// The layer's handle for the module.
    pub address: Address,
    /// The handle of the process it belongs to (`NULL` for kernel modules).
    pub parent: Address,
    /// Where it is mapped.
    pub base: Address,
    /// How many bytes it spans.
    pub size: umem,
    /// Short name (file name).
    pub name: ReprCString,
    /// Full path, if known.
    pub path: ReprCString,
    /// The architecture of its code.
    pub arch: ArchitectureIdent,
}

/// A symbol a module exports.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct ExportInfo {
    /// Symbol name.
    pub name: ReprCString,
    /// Offset of the symbol from the module base.
    pub offset: umem,
}

/// A symbol a module imports.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct ImportInfo {
    /// Symbol name.
    pub name: ReprCString,
    /// Offset from the module base of the slot the loader fills (GOT / IAT entry), 0 if none.
    pub offset: umem,
}

/// A section (or, where section headers are not available, a segment) of a module.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct SectionInfo {
    /// Section name (segments are named like `LOAD[r-x]`).
    pub name: ReprCString,
    /// Virtual address of its start.
    pub base: Address,
    /// Size in bytes.
    pub size: umem,
}

/// A kernel symbol, as `/proc/kallsyms` shows it on Linux.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct KernelSymbolInfo {
    /// Symbol name.
    pub name: ReprCString,
    /// Its address.
    pub address: Address,
    /// Its type letter (`T` global text, `t` local text, `D`, `d`, `R`, `r`, `B`, `b`, ...),
    /// as an ASCII byte.
    pub kind: u8,
    /// The kernel module it belongs to, empty for the kernel image.
    pub module: ReprCString,
}

/// Facts about the OS as a whole.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OsInfo {
    /// Where the kernel image starts (`NULL` if the layer has none, e.g. the native layer).
    pub base: Address,
    /// Size of the kernel image.
    pub size: umem,
    /// The architecture the OS runs on.
    pub arch: ArchitectureIdent,
}

/// Receives addresses; return `false` to stop.
pub type AddressCallback<'a> = OpaqueCallback<'a, Address>;
/// Receives process records; return `false` to stop.
pub type ProcessInfoCallback<'a> = OpaqueCallback<'a, ProcessInfo>;
/// Receives module records; return `false` to stop.
pub type ModuleInfoCallback<'a> = OpaqueCallback<'a, ModuleInfo>;
/// Receives threads; returns `false` to stop.
pub type ThreadCallback<'a> = OpaqueCallback<'a, ThreadInfo>;
/// Receives exports; return `false` to stop.
pub type ExportCallback<'a> = OpaqueCallback<'a, ExportInfo>;
/// Receives imports; return `false` to stop.
pub type ImportCallback<'a> = OpaqueCallback<'a, ImportInfo>;
/// Receives sections; return `false` to stop.
pub type SectionCallback<'a> = OpaqueCallback<'a, SectionInfo>;
/// Receives kernel symbols; return `false` to stop.
pub type KernelSymbolCallback<'a> = OpaqueCallback<'a, KernelSymbolInfo>;
