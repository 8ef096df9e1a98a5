//! A process of an OS layer: its facts, modules and mapped memory.

use cglue::prelude::v1::*;

use super::info::*;
use super::{MemoryRange, MemoryRangeCallback};
use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::types::{imem, Address};

/// A process. Instances are also a [`crate::mem::MemoryView`] of the process's address space
/// (see [`crate::instance::ProcessInstance`]).
#[cglue_trait]
#[int_result]
pub trait Process: Send {
    /// The facts known about the process.
    fn info(&self) -> &ProcessInfo;

    /// The current run state (looked up again, unlike `info().state`).
    fn state(&mut self) -> ProcessState;

    /// Calls back with the handle of every module; with `arch`, only modules of that
    /// architecture. Stops when the callback returns `false`.
    fn module_address_list_callback(
        &mut self,
        arch: Option<&ArchitectureIdent>,
        callback: AddressCallback,
    ) -> Result<()>;

    /// The module with handle `address`.
    fn module_by_address(&mut self, address: Address, arch: ArchitectureIdent) -> Result<ModuleInfo>;

    /// The handle of the main executable's module.
    fn primary_module_address(&mut self) -> Result<Address>;

    /// Calls back with each symbol `module` imports.
    fn module_import_list_callback(&mut self, module: &ModuleInfo, callback: ImportCallback) -> Result<()>;

    /// Calls back with each symbol `module` exports.
    fn module_export_list_callback(&mut self, module: &ModuleInfo, callback: ExportCallback) -> Result<()>;

    /// Calls back with each section of `module`.
    fn module_section_list_callback(&mut self, module: &ModuleInfo, callback: SectionCallback) -> Result<()>;

    /// Calls back with each thread of the process until the callback returns `false`. Layers
    /// that do not know threads fail with `Unsupported`.
    fn thread_list_callback(&mut self, callback: ThreadCallback) -> Result<()>;

    /// Calls back with the mapped ranges between `start` and `end`, merging neighbours with
    /// equal flags that are at most `gap_size` bytes apart (negative: never merge).
    fn mapped_mem_range(
        &mut self,
        gap_size: imem,
        start: Address,
        end: Address,
        callback: MemoryRangeCallback,
    ) -> Result<()>;

    /// Every module, as a list.
    #[skip_func]
    fn module_list(&mut self) -> Result<Vec<ModuleInfo>>
    where
        Self: Sized,
    {
        let arch = self.info().proc_arch;
        let mut addrs = Vec::new();
        self.module_address_list_callback(None, (&mut addrs).into())?;
        // A module may vanish between listing and lookup; skip it rather than fail the list.
        Ok(addrs.into_iter().filter_map(|a| self.module_by_address(a, arch).ok()).collect())
    }

    /// Every thread, as a list.
    #[skip_func]
    fn thread_list(&mut self) -> Result<Vec<ThreadInfo>>
    where
        Self: Sized,
    {
        let mut threads = Vec::new();
        self.thread_list_callback((&mut threads).into())?;
        Ok(threads)
    }

    /// The first module whose name equals `name` (ASCII case-insensitive).
    #[skip_func]
    fn module_by_name(&mut self, name: &str) -> Result<ModuleInfo>
    where
        Self: Sized,
    {
        self.module_list()?.into_iter().find(|m| m.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
            Error::new(ErrorOrigin::Process, ErrorKind::NotFound).with_reason(format_args!("no module `{name}`"))
        })
    }

    /// The main executable's module.
    #[skip_func]
    fn primary_module(&mut self) -> Result<ModuleInfo>
    where
        Self: Sized,
    {
        let addr = self.primary_module_address()?;
        let arch = self.info().proc_arch;
        self.module_by_address(addr, arch)
    }

    /// The exports of `module`, as a list.
    #[skip_func]
    fn module_exports(&mut self, module: &ModuleInfo) -> Result<Vec<ExportInfo>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.module_export_list_callback(module, (&mut out).into())?;
        Ok(out)
    }

    /// The imports of `module`, as a list.
    #[skip_func]
    fn module_imports(&mut self, module: &ModuleInfo) -> Result<Vec<ImportInfo>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.module_import_list_callback(module, (&mut out).into())?;
        Ok(out)
    }

    /// The sections of `module`, as a list.
    #[skip_func]
    fn module_sections(&mut self, module: &ModuleInfo) -> Result<Vec<SectionInfo>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.module_section_list_callback(module, (&mut out).into())?;
        Ok(out)
    }

    /// The address of the export `name` of `module`.
    #[skip_func]
    fn export_address(&mut self, module: &ModuleInfo, name: &str) -> Result<Address>
    where
        Self: Sized,
    {
        let mut found = None;
        let mut cb = |e: ExportInfo| {
            if &*e.name == name {
                found = Some(module.base + e.offset);
            }
            found.is_none()
        };
        self.module_export_list_callback(module, (&mut cb).into())?;
        found.ok_or_else(|| {
            Error::new(ErrorOrigin::Process, ErrorKind::NotFound).with_reason(format_args!("no export `{name}`"))
        })
    }

    /// Every mapped range of the whole address space, merging gaps up to `gap_size` bytes.
    #[skip_func]
    fn mapped_mem(&mut self, gap_size: imem) -> Result<Vec<MemoryRange>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.mapped_mem_range(gap_size, Address::NULL, Address::INVALID, (&mut out).into())?;
        Ok(out)
    }
}

/// For layers that know a process's module list: calls back with the handle of each module
/// of architecture `arch` (all with `None`), until the callback returns `false`.
pub fn module_addresses(modules: &[ModuleInfo], arch: Option<&ArchitectureIdent>, callback: &mut AddressCallback) {
    for module in modules {
        if arch.is_none_or(|a| *a == module.arch) && !callback.call(module.address) {
            break;
        }
    }
}

/// For layers that know a process's module list: the module with handle `address`.
pub fn module_with_address(modules: &[ModuleInfo], address: Address) -> Result<ModuleInfo> {
    modules.iter().find(|m| m.address == address).cloned().ok_or_else(|| {
        Error::new(ErrorOrigin::Process, ErrorKind::NotFound).with_reason(format_args!("no module at {address}"))
    })
}
