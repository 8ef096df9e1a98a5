//! A process of the running host: its memory, modules and mapped ranges.

use std::path::PathBuf;

use super::maps::parse_maps;
use super::procfs::{proc_path, Stat};
use super::{arch_of_elf_class, io_error};
use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, Result};
use crate::mem::host_process::MAX_ADDRESS_32;
use crate::mem::{HostProcessMemory, MemoryView, ReadBatch, ViewMetadata, WriteBatch};
use crate::os::elf_image::ElfImage;
use crate::os::mappings::{image_spans, memory_ranges, Mapping};
use crate::os::*;
use crate::types::{imem, umem, Address};

/// A process of the running host, opened through [`super::NativeOs`] or
/// [`NativeProcess::open`].
///
/// Memory goes through `process_vm_readv` / `process_vm_writev`, falling back to
/// `/proc/PID/mem` (see [`NativeProcess::use_proc_mem`]). Modules are the ELF files mapped
/// into the process (from `/proc/PID/maps`), named by file name, with the module's base as
/// its handle; exports, imports and sections are parsed from the mapped images
/// ([`ElfImage`]), with section headers read from the file as the process sees it
/// (`/proc/PID/root/...`) when they are not mapped.
#[derive(Clone)]
pub struct NativeProcess {
    info: ProcessInfo,
    /// The start time of the process when it was opened, to tell it from a later process
    /// with the same pid.
    start_time: u64,
    memory: HostProcessMemory,
}

impl NativeProcess {
    /// Opens the process with the pid of `info`; fails with `Gone` if it no longer exists.
    pub fn open(info: ProcessInfo) -> Result<Self> {
        let stat = Stat::read(info.pid).map_err(|e| io_error(ErrorOrigin::Process, ErrorKind::Gone, &e))?;
        let memory = HostProcessMemory::of_process(info.pid, info.proc_arch);
        Ok(NativeProcess { info, start_time: stat.start_time, memory })
    }

    /// Reaches memory through `pread` / `pwrite` on `/proc/PID/mem` from now on. This happens
    /// by itself when `process_vm_readv` is not permitted; call it to choose the file from the
    /// start. Fails with `PermissionDenied` or `Gone` if the file cannot be opened.
    pub fn use_proc_mem(&mut self) -> Result<()> {
        self.memory.use_proc_mem()
    }

    fn maps(&self) -> Result<Vec<Mapping<String>>> {
        let text = std::fs::read(proc_path(self.info.pid, "maps"))
            .map_err(|e| io_error(ErrorOrigin::Process, ErrorKind::Gone, &e))?;
        Ok(parse_maps(&String::from_utf8_lossy(&text)))
    }

    /// The ELF images mapped into the process. The ELF identification of every candidate is
    /// read in one batch; files without it (data files, fonts, locale archives) are left out.
    fn modules(&mut self) -> Result<Vec<ModuleInfo>> {
        let spans = image_spans(&self.maps()?);
        let mut idents: Vec<(Address, [u8; 5])> = spans.iter().map(|s| (s.base, [0u8; 5])).collect();
        if let Err(PartialError::Error(e)) = self.read_many(&mut idents) {
            return Err(e);
        }
        let parent = self.info.address;
        let modules = spans.into_iter().zip(idents).filter_map(|(span, (base, ident))| {
            let arch = match ident {
                [0x7f, b'E', b'L', b'F', class] => arch_of_elf_class(class)?,
                _ => return None,
            };
            let name = span.file.rsplit('/').next().unwrap_or_default();
            Some(ModuleInfo {
                address: base,
                parent,
                base,
                size: span.end - span.base,
                name: name.into(),
                path: span.file.as_str().into(),
                arch,
            })
        });
        Ok(modules.collect())
    }
}

impl MemoryView for NativeProcess {
    fn read_batch(&mut self, batch: ReadBatch) -> Result<()> {
        self.memory.transfer(batch)
    }

    fn write_batch(&mut self, batch: WriteBatch) -> Result<()> {
        self.memory.transfer(batch)
    }

    fn read_single(&mut self, addr: Address, out: &mut [u8]) -> Result<usize> {
        self.memory.read_single(addr, out)
    }

    fn write_single(&mut self, addr: Address, data: &[u8]) -> Result<usize> {
        self.memory.write_single(addr, data)
    }

    fn metadata(&self) -> ViewMetadata {
        let max_address = self.memory.max_address();
        ViewMetadata {
            max_address: Address::from(max_address),
            real_size: max_address as umem + 1,
            readonly: false,
            little_endian: true,
            arch_bits: if max_address == MAX_ADDRESS_32 { 32 } else { 64 },
        }
    }
}

impl Process for NativeProcess {
    fn info(&self) -> &ProcessInfo {
        &self.info
    }

    /// `Dead` for a zombie, a process that is gone and a later process with the same pid.
    fn state(&mut self) -> ProcessState {
        match Stat::read(self.info.pid) {
            Ok(stat) if stat.start_time == self.start_time && !stat.is_dead() => ProcessState::Alive,
            Ok(_) => ProcessState::Dead,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ProcessState::Dead,
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

    /// The module mapped from the file `/proc/PID/exe` links to.
    fn primary_module_address(&mut self) -> Result<Address> {
        let exe = std::fs::read_link(proc_path(self.info.pid, "exe"))
            .map_err(|e| io_error(ErrorOrigin::Process, ErrorKind::Gone, &e))?;
        let exe = exe.to_string_lossy();
        self.modules()?.into_iter().find(|m| *m.path == *exe).map(|m| m.address).ok_or_else(|| {
            Error::new(ErrorOrigin::Process, ErrorKind::NotFound)
                .with_reason(format_args!("no module mapped from {exe}"))
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

    fn module_section_list_callback(&mut self, module: &ModuleInfo, mut callback: SectionCallback) -> Result<()> {
        let image = ElfImage::parse(self, module.base)?;
        // The path as the process sees it, which may be in another mount namespace.
        let file =
            (!module.path.is_empty()).then(|| PathBuf::from(format!("/proc/{}/root{}", self.info.pid, &*module.path)));
        image.sections(self, file.as_deref(), |section| callback.call(section))
    }

    /// The entries of `/proc/PID/task`, by thread id; threads that end while listed are left
    /// out.
    fn thread_list_callback(&mut self, mut callback: ThreadCallback) -> Result<()> {
        let pid = self.info.pid;
        let tasks = std::fs::read_dir(proc_path(pid, "task"))
            .map_err(|e| io_error(ErrorOrigin::Process, ErrorKind::Gone, &e))?;
        let mut tids: Vec<Pid> = tasks.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        tids.sort_unstable();
        for tid in tids {
            let Ok(stat) = Stat::read_path(&proc_path(pid, &format!("task/{tid}/stat"))) else { continue };
            let state = if stat.is_dead() { ProcessState::Dead } else { ProcessState::Alive };
            if !callback.call(ThreadInfo { tid, name: stat.comm.as_str().into(), state }) {
                break;
            }
        }
        Ok(())
    }

    fn mapped_mem_range(
        &mut self,
        gap_size: imem,
        start: Address,
        end: Address,
        mut callback: MemoryRangeCallback,
    ) -> Result<()> {
        for range in memory_ranges(&self.maps()?, gap_size, start, end) {
            if !callback.call(range) {
                break;
            }
        }
        Ok(())
    }
}
