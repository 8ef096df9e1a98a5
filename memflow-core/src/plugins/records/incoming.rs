//! Records coming in from C (a caller of the C API, or a C plugin): checked and copied into
//! the core's records. Every string is bounded ([`crate::plugins::c_limits`]) and must be
//! UTF-8; NULL strings are empty.

use std::ffi::c_char;

use cglue::repr_cstring::ReprCString;

use super::*;
use crate::error::{ErrorOrigin, Result};
use crate::os::{
    ExportInfo, ImportInfo, KernelSymbolInfo, MemoryRange, ModuleInfo, OsInfo, ProcessInfo, ProcessState, SectionInfo,
};
use crate::plugins::c_abi::record_text;
use crate::plugins::c_limits::{MAX_COMMAND_LINE, MAX_NAME, MAX_PATH};
use crate::types::{umem, PageType};

/// A record C hands in, and the core record it becomes.
pub trait IncomingRecord {
    /// The core record.
    type Core;
    /// What the record is, for errors ("a process record").
    const WHAT: &'static str;
    /// Checks and copies the record; errors are of `origin`.
    ///
    /// # Safety
    /// The record's string pointers are NULL or point to NUL-terminated strings (or to more
    /// readable bytes than their limit).
    unsafe fn to_core(&self, origin: ErrorOrigin) -> Result<Self::Core>;
}

/// A bounded string of a record.
///
/// # Safety
/// As [`record_text`].
unsafe fn text(p: *const c_char, max: usize, origin: ErrorOrigin, what: &str) -> Result<ReprCString> {
    Ok(ReprCString::from(record_text(p, max, origin, what)?.as_str()))
}

impl IncomingRecord for MfProcessInfo {
    type Core = ProcessInfo;
    const WHAT: &'static str = "a process record";

    unsafe fn to_core(&self, origin: ErrorOrigin) -> Result<ProcessInfo> {
        let name = text(self.name, MAX_NAME, origin, "the process name")?;
        let state = match self.state {
            MF_PROCESS_STATE_ALIVE => ProcessState::Alive,
            MF_PROCESS_STATE_DEAD => ProcessState::Dead,
            _ => ProcessState::Unknown,
        };
        Ok(ProcessInfo {
            address: addr_in(self.address),
            pid: self.pid,
            ppid: self.ppid,
            state,
            path: text(self.path, MAX_PATH, origin, "the process path")?,
            command_line: text(self.command_line, MAX_COMMAND_LINE, origin, "the command line")?,
            sys_arch: self.sys_arch.to_ident().map_err(|e| e.with_reason(format_args!("process `{name}`")))?,
            proc_arch: self.proc_arch.to_ident().map_err(|e| e.with_reason(format_args!("process `{name}`")))?,
            table_root: addr_in(self.table_root),
            table_root_2: addr_in(self.table_root_2),
            name,
        })
    }
}

impl IncomingRecord for MfModuleInfo {
    type Core = ModuleInfo;
    const WHAT: &'static str = "a module record";

    unsafe fn to_core(&self, origin: ErrorOrigin) -> Result<ModuleInfo> {
        Ok(ModuleInfo {
            address: addr_in(self.address),
            parent: addr_in(self.parent),
            base: addr_in(self.base),
            size: umem::from(self.size),
            name: text(self.name, MAX_NAME, origin, "the module name")?,
            path: text(self.path, MAX_PATH, origin, "the module path")?,
            arch: self.arch.to_ident()?,
        })
    }
}

impl IncomingRecord for MfExportInfo {
    type Core = ExportInfo;
    const WHAT: &'static str = "an export record";

    unsafe fn to_core(&self, origin: ErrorOrigin) -> Result<ExportInfo> {
        Ok(ExportInfo { name: text(self.name, MAX_NAME, origin, "the export name")?, offset: umem::from(self.offset) })
    }
}

impl IncomingRecord for MfImportInfo {
    type Core = ImportInfo;
    const WHAT: &'static str = "an import record";

    unsafe fn to_core(&self, origin: ErrorOrigin) -> Result<ImportInfo> {
        Ok(ImportInfo { name: text(self.name, MAX_NAME, origin, "the import name")?, offset: umem::from(self.offset) })
    }
}

impl IncomingRecord for MfSectionInfo {
    type Core = SectionInfo;
    const WHAT: &'static str = "a section record";

    unsafe fn to_core(&self, origin: ErrorOrigin) -> Result<SectionInfo> {
        Ok(SectionInfo {
            name: text(self.name, MAX_NAME, origin, "the section name")?,
            base: addr_in(self.base),
            size: umem::from(self.size),
        })
    }
}

impl IncomingRecord for MfKernelSymbolInfo {
    type Core = KernelSymbolInfo;
    const WHAT: &'static str = "a kernel symbol record";

    unsafe fn to_core(&self, origin: ErrorOrigin) -> Result<KernelSymbolInfo> {
        Ok(KernelSymbolInfo {
            name: text(self.name, MAX_NAME, origin, "the symbol name")?,
            address: addr_in(self.address),
            kind: self.kind as u8,
            module: text(self.module, MAX_NAME, origin, "the symbol's module")?,
        })
    }
}

impl IncomingRecord for MfMemoryRange {
    type Core = MemoryRange;
    const WHAT: &'static str = "a memory range record";

    /// Flags this version does not know are dropped.
    unsafe fn to_core(&self, _origin: ErrorOrigin) -> Result<MemoryRange> {
        Ok(MemoryRange {
            base: addr_in(self.base),
            size: umem::from(self.size),
            page_type: PageType::from_bits_truncate(self.flags as u8),
        })
    }
}

impl IncomingRecord for MfOsInfo {
    type Core = OsInfo;
    const WHAT: &'static str = "an OS record";

    unsafe fn to_core(&self, _origin: ErrorOrigin) -> Result<OsInfo> {
        Ok(OsInfo { base: addr_in(self.base), size: umem::from(self.size), arch: self.arch.to_ident()? })
    }
}
