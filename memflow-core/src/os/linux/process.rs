//! A process of a Linux guest: its address space, mappings and modules.

use std::sync::Arc;

use super::path::{file_name, file_path};
use super::record::Record;
use super::tasks::{thread_info, threads, Task};
use super::vma::{vmas, Vma};
use super::Kernel;
use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, Result};
use crate::mem::{MemoryView, PhysicalMemory, ReadBatch, ViewMetadata, WriteBatch};
use crate::os::elf_image::ElfImage;
use crate::os::mappings::{image_spans, memory_ranges};
use crate::os::*;
use crate::types::{imem, Address};
use crate::virt::VirtualDma;

/// A process of a [`super::LinuxOs`], opened with `process_by_info` and friends.
///
/// It reads and writes the process's memory through its own page tables for the user half and
/// the kernel's for the kernel half (on x86-64 the process's tables map both; a kernel thread,
/// which has none, sees the kernel's address space). Its mapped ranges are its VMAs; its
/// modules are the ELF images among its file-backed VMAs: an image starts at a mapping of a
/// file at offset 0 and takes in the later mappings of the same file, and is named after the
/// file (32-bit images on x86-64 only: AArch32 has no paging mode here). The module's handle
/// is its base address. Exports, imports and sections come from the image in memory
/// ([`ElfImage`]).
#[derive(Clone)]
pub struct LinuxProcess<P> {
    kernel: Arc<Kernel>,
    info: ProcessInfo,
    view: VirtualDma<P>,
}

impl<P: PhysicalMemory> LinuxProcess<P> {
    /// The process described by `info` (from this kernel), reading memory from `mem`.
    pub(super) fn new(mem: P, kernel: Arc<Kernel>, info: ProcessInfo) -> Result<Self> {
        let view = VirtualDma::new(mem, kernel.arch, &kernel.roots(info.table_root))?.with_tlb(super::TLB_SLOTS);
        Ok(LinuxProcess { kernel, info, view })
    }

    /// The VMAs of the process (none for a kernel thread).
    pub fn vmas(&mut self) -> Result<Vec<Vma>> {
        let task = Task::read(&mut self.view, &self.kernel, self.info.address)?;
        if task.mm.is_null() {
            return Ok(Vec::new());
        }
        let layout = &self.kernel.layout;
        let mm = Record::read(&mut self.view, task.mm, layout.mm.span, "an mm_struct")?;
        vmas(&mut self.view, layout, task.mm, &mm)
    }

    /// The ELF images mapped into the process (see the type docs). The ELF identification
    /// of every candidate is read in one batch; files without one are left out.
    fn modules(&mut self) -> Result<Vec<ModuleInfo>> {
        let maps: Vec<_> = self.vmas()?.iter().map(|v| v.mapping((!v.file.is_null()).then_some(v.file))).collect();
        let spans = image_spans(&maps);
        let mut idents: Vec<(Address, [u8; 5])> = spans.iter().map(|s| (s.base, [0u8; 5])).collect();
        if let Err(PartialError::Error(e)) = self.view.read_many(&mut idents) {
            return Err(e);
        }
        let mut out = Vec::new();
        for (span, (base, ident)) in spans.into_iter().zip(idents) {
            let arch = match ident {
                [0x7f, b'E', b'L', b'F', 1] => self.kernel.family.elf32(),
                [0x7f, b'E', b'L', b'F', 2] => Some(self.info.proc_arch),
                _ => None,
            };
            let Some(arch) = arch else { continue };
            let path = file_path(&mut self.view, &self.kernel.layout.path, span.file).unwrap_or_default();
            out.push(ModuleInfo {
                address: base,
                parent: self.info.address,
                base,
                size: span.end - span.base,
                name: file_name(&path).into(),
                path: path.as_str().into(),
                arch,
            });
        }
        Ok(out)
    }
}

impl<P: PhysicalMemory> MemoryView for LinuxProcess<P> {
    fn read_batch(&mut self, batch: ReadBatch) -> Result<()> {
        self.view.read_batch(batch)
    }

    fn write_batch(&mut self, batch: WriteBatch) -> Result<()> {
        self.view.write_batch(batch)
    }

    fn read_single(&mut self, addr: Address, out: &mut [u8]) -> Result<usize> {
        self.view.read_single(addr, out)
    }

    fn write_single(&mut self, addr: Address, data: &[u8]) -> Result<usize> {
        self.view.write_single(addr, data)
    }

    fn metadata(&self) -> ViewMetadata {
        self.view.metadata()
    }
}

impl<P: PhysicalMemory> Process for LinuxProcess<P> {
    fn info(&self) -> &ProcessInfo {
        &self.info
    }

    /// Read again from the task: `Dead` once it is a zombie, `Unknown` if it cannot be read.
    fn state(&mut self) -> ProcessState {
        match Task::read(&mut self.view, &self.kernel, self.info.address) {
            Ok(t) if t.dead => ProcessState::Dead,
            Ok(_) => ProcessState::Alive,
            Err(_) => ProcessState::Unknown,
        }
    }

    fn module_address_list_callback(
        &mut self,
        arch: Option<&ArchitectureIdent>,
        mut callback: AddressCallback,
    ) -> Result<()> {
        crate::os::module_addresses(&self.modules()?, arch, &mut callback);
        Ok(())
    }

    /// Every module's architecture comes from its own ELF header, so `arch` is not needed.
    fn module_by_address(&mut self, address: Address, _arch: ArchitectureIdent) -> Result<ModuleInfo> {
        crate::os::module_with_address(&self.modules()?, address)
    }

    /// The module mapped from the process's executable (`mm->exe_file`).
    fn primary_module_address(&mut self) -> Result<Address> {
        let path = self.info.path.to_string();
        self.modules()?.into_iter().find(|m| !path.is_empty() && *m.path == *path).map(|m| m.address).ok_or_else(|| {
            Error::new(ErrorOrigin::Process, ErrorKind::NotFound)
                .with_reason(format_args!("no module mapped from `{path}`"))
        })
    }

    /// The thread group of the process's `task_struct` (see [`super::tasks::threads`]); a
    /// thread that cannot be read ends the list with its error.
    fn thread_list_callback(&mut self, mut callback: ThreadCallback) -> Result<()> {
        let (mut tasks, mut no_memory) = (Vec::new(), false);
        threads(&mut self.view, &self.kernel, self.info.address, |task| {
            no_memory = tasks.try_reserve(1).is_err();
            if !no_memory {
                tasks.push(task);
            }
            !no_memory
        })?;
        if no_memory {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::OutOfMemory).with_reason(format_args!(
                "no memory for the {} threads of pid {}",
                tasks.len(),
                self.info.pid
            )));
        }
        for task in tasks {
            if !callback.call(thread_info(&mut self.view, &self.kernel, task)?) {
                break;
            }
        }
        Ok(())
    }

    fn module_import_list_callback(&mut self, module: &ModuleInfo, mut callback: ImportCallback) -> Result<()> {
        let image = ElfImage::parse(&mut self.view, module.base)?;
        image.imports(&mut self.view, |import| callback.call(import))
    }

    fn module_export_list_callback(&mut self, module: &ModuleInfo, mut callback: ExportCallback) -> Result<()> {
        let image = ElfImage::parse(&mut self.view, module.base)?;
        image.exports(&mut self.view, |export| callback.call(export))
    }

    fn module_section_list_callback(&mut self, module: &ModuleInfo, mut callback: SectionCallback) -> Result<()> {
        let image = ElfImage::parse(&mut self.view, module.base)?;
        image.sections(&mut self.view, None, |section| callback.call(section))
    }

    /// The readable VMAs (see [`crate::os::mappings::memory_ranges`]).
    fn mapped_mem_range(
        &mut self,
        gap_size: imem,
        start: Address,
        end: Address,
        mut callback: MemoryRangeCallback,
    ) -> Result<()> {
        let maps: Vec<_> = self.vmas()?.iter().map(|v| v.mapping::<()>(None)).collect();
        for range in memory_ranges(&maps, gap_size, start, end) {
            if !callback.call(range) {
                break;
            }
        }
        Ok(())
    }
}

crate::forward_virtual_translate!(LinuxProcess<P>, view, P: PhysicalMemory + 'static);
