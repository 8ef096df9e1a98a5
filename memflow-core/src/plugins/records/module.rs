//! Module records: modules and their exports, imports and sections.

use std::ffi::{c_char, c_void};

use crate::os::{ExportInfo, ImportInfo, ModuleInfo, SectionInfo};

use super::arch::MfArchitecture;
use super::convert::{addr_out, size_out, str_out};

/// A module (executable image) mapped into a process or the kernel. The strings are never
/// NULL in records handed out; in records passed in, NULL means empty.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfModuleInfo {
    /// The OS layer's handle for the module.
    pub address: u64,
    /// The handle of the process it belongs to (0 for kernel modules).
    pub parent: u64,
    /// Where it is mapped.
    pub base: u64,
    /// How many bytes it spans.
    pub size: u64,
    /// Short name (file name).
    pub name: *const c_char,
    /// Full path, empty if not known.
    pub path: *const c_char,
    /// Architecture of its code.
    pub arch: MfArchitecture,
}

impl MfModuleInfo {
    /// A view of `m` whose strings borrow from it.
    pub fn borrow(m: &ModuleInfo) -> Self {
        MfModuleInfo {
            address: addr_out(m.address),
            parent: addr_out(m.parent),
            base: addr_out(m.base),
            size: size_out(m.size),
            name: str_out(&m.name),
            path: str_out(&m.path),
            arch: m.arch.into(),
        }
    }
}

/// A symbol a module exports.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfExportInfo {
    /// Symbol name.
    pub name: *const c_char,
    /// Offset of the symbol from the module base.
    pub offset: u64,
}

impl MfExportInfo {
    /// A view of `e` whose strings borrow from it.
    pub fn borrow(e: &ExportInfo) -> Self {
        MfExportInfo { name: str_out(&e.name), offset: size_out(e.offset) }
    }
}

/// A symbol a module imports.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfImportInfo {
    /// Symbol name.
    pub name: *const c_char,
    /// Offset from the module base of the slot the loader fills, 0 if none.
    pub offset: u64,
}

impl MfImportInfo {
    /// A view of `e` whose strings borrow from it.
    pub fn borrow(e: &ImportInfo) -> Self {
        MfImportInfo { name: str_out(&e.name), offset: size_out(e.offset) }
    }
}

/// A section (or segment) of a module.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfSectionInfo {
    /// Section name.
    pub name: *const c_char,
    /// Virtual address of its start.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl MfSectionInfo {
    /// A view of `s` whose strings borrow from it.
    pub fn borrow(s: &SectionInfo) -> Self {
        MfSectionInfo { name: str_out(&s.name), base: addr_out(s.base), size: size_out(s.size) }
    }
}

/// Receives a module record; return `true` to go on, `false` to stop. `info` and its strings
/// are borrowed and valid only during the call.
pub type MfModuleInfoCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfModuleInfo) -> bool>;
/// Receives an export; return `true` to go on, `false` to stop. Borrowed for the call only.
pub type MfExportCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfExportInfo) -> bool>;
/// Receives an import; return `true` to go on, `false` to stop. Borrowed for the call only.
pub type MfImportCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfImportInfo) -> bool>;
/// Receives a section; return `true` to go on, `false` to stop. Borrowed for the call only.
pub type MfSectionCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfSectionInfo) -> bool>;
