//! A process of the synthetic OS: its address space through its real page tables.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::truth::DummyProcessTruth;
use crate::arch::ArchitectureIdent;
use crate::connector::BufferMemory;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::{MemoryView, ReadBatch, ViewMetadata, WriteBatch};
use crate::os::elf_image::ElfImage;
use crate::os::*;
use crate::translate::VirtualTranslate;
use crate::types::{imem, umem, Address};
use crate::virt::VirtualDma;

/// A process of a [`super::DummyOs`], opened with `process_by_info` and friends.
///
/// Memory goes through the process's page tables ([`VirtualDma`]). Modules are those the OS
/// mapped, with their base as handle; exports, imports and sections are parsed from the
/// images in memory ([`ElfImage`]); mapped ranges come from a walk of the page tables. Once
/// the process is killed, every access fails with `Gone`.
#[derive(Clone)]
pub struct DummyProcess {
    info: ProcessInfo,
    modules: Vec<ModuleInfo>,
    view: VirtualDma<BufferMemory>,
    alive: Arc<AtomicBool>,
}

impl DummyProcess {
    /// The process `truth` describes, reading `mem`; `alive` turns false when it is killed.
    pub(super) fn new(mem: BufferMemory, truth: &DummyProcessTruth, alive: Arc<AtomicBool>) -> Result<Self> {
        let view = VirtualDma::new(mem, truth.info.sys_arch, &truth.space.roots)?;
        let modules = truth.space.modules.iter().map(|m| m.info.clone()).collect();
        Ok(DummyProcess { info: truth.info.clone(), modules, view, alive })
    }

    /// Fails with `Gone` once the process was killed.
    fn check_alive(&self) -> Result<()> {
        if self.alive.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::new(ErrorOrigin::Process, ErrorKind::Gone))
        }
    }

    /// The modules, or `Gone` once the process was killed.
    fn modules(&self) -> Result<&[ModuleInfo]> {
        self.check_alive()?;
        Ok(&self.modules)
    }
}

impl MemoryView for DummyProcess {
    fn read_batch(&mut self, batch: ReadBatch) -> Result<()> {
        self.check_alive()?;
        self.view.read_batch(batch)
    }

    fn write_batch(&mut self, batch: WriteBatch) -> Result<()> {
        self.check_alive()?;
        self.view.write_batch(batch)
    }

    fn metadata(&self) -> ViewMetadata {
        self.view.metadata()
    }
}

impl Process for DummyProcess {
    fn info(&self) -> &ProcessInfo {
        &self.info
    }

    fn state(&mut self) -> ProcessState {
        if self.check_alive().is_ok() {
            ProcessState::Alive
        } else {
            ProcessState::Dead
        }
    }

    fn module_address_list_callback(
        &mut self,
        arch: Option<&ArchitectureIdent>,
        mut callback: AddressCallback,
    ) -> Result<()> {
        crate::os::module_addresses(self.modules()?, arch, &mut callback);
        Ok(())
    }

    /// Every module has the process's architecture, so `arch` is not needed.
    fn module_by_address(&mut self, address: Address, _arch: ArchitectureIdent) -> Result<ModuleInfo> {
        crate::os::module_with_address(self.modules()?, address)
    }

    /// The executable, mapped first.
    fn primary_module_address(&mut self) -> Result<Address> {
        let first = self.modules()?.first().map(|m| m.address);
        first.ok_or_else(|| {
            Error::new(ErrorOrigin::Process, ErrorKind::NotFound)
                .with_reason(format_args!("process {} has no modules", self.info.pid))
        })
    }

    fn module_import_list_callback(&mut self, module: &ModuleInfo, mut callback: ImportCallback) -> Result<()> {
        let image = ElfImage::parse(self, module.base)?;
        image.imports(self, |import| callback.call(import))
    }

    fn module_export_list_callback(&mut self, module: &ModuleInfo, mut callback: ExportCallback) -> Result<()> {
        let image = ElfImage::parse(self, module.base)?;
        image.exports(self, |export| callback.call(export))
    }

    /// The section headers are mapped with the image.
    fn module_section_list_callback(&mut self, module: &ModuleInfo, mut callback: SectionCallback) -> Result<()> {
        let image = ElfImage::parse(self, module.base)?;
        image.sections(self, None, |section| callback.call(section))
    }

    /// The dummy OS has no threads.
    fn thread_list_callback(&mut self, _callback: ThreadCallback) -> Result<()> {
        Err(Error::new(ErrorOrigin::Process, ErrorKind::Unsupported).with_reason("the dummy OS layer has no threads"))
    }

    /// Ranges of equal flags from a walk of the page tables, pages reported whole. Pages are
    /// not mappings: neighbours with equal flags always form one range, and a negative
    /// `gap_size` merges nothing more.
    fn mapped_mem_range(
        &mut self,
        gap_size: imem,
        start: Address,
        end: Address,
        callback: MemoryRangeCallback,
    ) -> Result<()> {
        self.check_alive()?;
        self.view.virt_page_map_range(gap_size.max(0) as umem, start, end, callback)
    }
}

crate::forward_virtual_translate!(DummyProcess, view);
