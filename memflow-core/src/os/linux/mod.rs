//! A Linux kernel seen from its physical memory alone: no profile, no symbol file.
//!
//! [`LinuxOs`] finds everything it needs in the guest's memory:
//!
//! 1. the page tables and the kernel image, from the CPU state or by scanning (`scan.rs`, with
//!    the per-architecture part in `arch/`), with KASLR on or off: x86-64 with 4- or 5-level
//!    paging, AArch64 with 4 KiB pages and 48-bit or 16 KiB pages and 47-bit addresses,
//!    RISC-V with Sv39, Sv48 or Sv57;
//! 2. the kernel's symbol table, by decoding the kallsyms tables found in the image by their
//!    shape (`kallsyms.rs`);
//! 3. the structure layouts, from the kernel's own BTF type information
//!    (`CONFIG_DEBUG_INFO_BTF`, `btf.rs`, `layout.rs`);
//! 4. then processes from the task list (`tasks.rs`, walked by `list.rs`), their VMAs from the
//!    maple tree or list of their address space (`maple.rs`, `vma.rs`), file paths from
//!    dentries (`path.rs`), and kernel modules from the `modules` list.
//!
//! A process's handle is the address of its `task_struct`, a kernel module's the address of
//! its `struct module`. The layer is also a [`MemoryView`] of the kernel's address space and
//! passes the connector's [`PhysicalMemory`] and [`CpuState`] through.
//!
//! Errors name what is missing ("no kernel image found", "no kallsyms tables found", "kernel
//! has no BTF (CONFIG_DEBUG_INFO_BTF)", a missing structure member) and every walk over guest
//! data, every count, length and size read there is bounded by a limit in [`limits`], so
//! corrupt or hostile memory gives an error rather than a hang, an abort or garbage.
//! [`aarch64`] and [`riscv64`] also find an ARM64 or RISC-V guest's kernel tables on their own.

mod arch;
mod btf;
mod kallsyms;
mod layout;
pub mod limits;
mod list;
mod maple;
mod modules;
mod path;
mod process;
mod record;
mod scan;
mod tasks;
mod vma;
pub mod vmcoreinfo;

use std::sync::Arc;

use cglue::prelude::v1::*;

pub use arch::{aarch64, riscv64};
pub use btf::{Btf, Member, TypeId};
pub use kallsyms::{Kallsyms, Symbol};
pub use layout::Layout;
pub use process::LinuxProcess;
pub use vma::Vma;

use crate::arch::ArchitectureIdent;
use crate::connector::cpu_state::{AArch64Registers, CpuState, RiscVRegisters, X86Registers};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::{process_instance, ConnectorInstanceArcBox, LibArc, ProcessInstanceArcBox};
use crate::mem::{
    MemMapping, MemoryView, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata, ReadBatch,
    ViewMetadata, WriteBatch,
};
use crate::os::*;
use crate::types::{umem, Address, PhysicalAddress};
use crate::virt::VirtualDma;

use arch::LinuxArch;
use btf::BtfHeader;
use limits::{MAX_BTF_BYTES, MAX_MODULES};
use scan::FoundKernel;

/// Translations cached per address space.
const TLB_SLOTS: usize = 4096;

/// What the layer knows about the kernel; shared by the OS and its processes.
pub(crate) struct Kernel {
    /// The paging mode.
    arch: ArchitectureIdent,
    /// Its family: what differs between architectures.
    family: LinuxArch,
    /// Physical address of the kernel's top-level page table (x86-64: CR3; AArch64: TTBR1; RISC-V: `swapper_pg_dir`, whose page number `satp` holds).
    root: Address,
    /// The kernel's symbols.
    kallsyms: Kallsyms,
    /// The kernel's type information.
    btf: Btf,
    /// The offsets the layer reads, from `btf`.
    layout: Layout,
    /// The address of `init_task`, the head of the task list.
    init_task: Address,
    /// The addresses of the kernel's thread count `nr_threads` and of `pid_max`, where
    /// kallsyms has them (they bound the task list).
    nr_threads: Option<Address>,
    pid_max: Option<Address>,
    /// Kernel base, size and paging mode.
    info: OsInfo,
}

impl Kernel {
    /// The root registers of the address space whose user half is translated by the table of
    /// the root register value `user` (NULL: the kernel's own address space), see
    /// [`LinuxArch::roots`].
    fn roots(&self, user: Address) -> Vec<Address> {
        self.family.roots(user, self.root)
    }
}

/// Hints for [`LinuxOs::new`] from the CPUs whose state `cpu` records: the paging mode and
/// table root of x86 CPUs in long mode and of RISC-V CPUs with a known `satp`; for AArch64
/// CPUs and RISC-V CPUs without `satp` (what a dump's notes hold), a hint with a NULL root
/// that only names the family, so that its search runs first.
pub fn cpu_hints<C: CpuState + ?Sized>(cpu: &C) -> Vec<(ArchitectureIdent, Address)> {
    let mut hints = Vec::new();
    for i in 0..cpu.cpu_count() {
        if let Ok(regs) = cpu.x86_registers(i) {
            let long_mode = |(arch, _): &(ArchitectureIdent, Address)| {
                matches!(arch, ArchitectureIdent::X86_64 | ArchitectureIdent::X86_64La57)
            };
            hints.extend(regs.paging().filter(long_mode));
        } else if let Ok(regs) = cpu.riscv_registers(i) {
            hints.push(regs.paging().unwrap_or((ArchitectureIdent::RiscVSv39, Address::NULL)));
        } else if cpu.aarch64_registers(i).is_ok() {
            hints.push((ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 }, Address::NULL));
        }
    }
    hints.dedup();
    hints
}

/// A Linux kernel as an [`Os`] (see the module docs). Clones share the decoded kernel facts.
#[derive(Clone)]
pub struct LinuxOs<P> {
    kernel: Arc<Kernel>,
    /// The kernel's address space.
    view: VirtualDma<P>,
    /// The physical memory, passed through.
    mem: P,
    lib: LibArc,
}

impl LinuxOs<ConnectorInstanceArcBox<'static>> {
    /// The kernel in the memory of `conn`, using its CPU state as a hint where it has one.
    pub fn from_connector(conn: ConnectorInstanceArcBox<'static>, lib: LibArc) -> Result<Self> {
        let hints = conn.as_ref_impl_cpustate().map(cpu_hints).unwrap_or_default();
        Self::new(conn, &hints, lib)
    }
}

impl<P: PhysicalMemory + Clone> LinuxOs<P> {
    /// The kernel in `mem`. `hints` are paging modes and table roots to try first, their
    /// families searched first (see [`cpu_hints`]; a NULL root names only the family); without
    /// any, or if none maps the kernel, physical memory is scanned.
    /// `lib` is the library context every opened process carries (`LibArc::default()` when
    /// built in).
    pub fn new(mut mem: P, hints: &[(ArchitectureIdent, Address)], lib: LibArc) -> Result<Self> {
        let found = arch::find_kernel(&mut mem, hints)?;
        let family = LinuxArch::of(found.arch)?;
        let mut view = VirtualDma::new(mem.clone(), found.arch, &family.kernel_roots(found.root))?.with_tlb(TLB_SLOTS);
        let btf = read_btf(&found, &mut view)?;
        let layout = Layout::from_btf(&btf)?;
        let FoundKernel { arch, root, image_base, image, kallsyms } = found;
        let init_task = kallsyms.lookup("init_task").ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("kallsyms has no `init_task`"))
        })?;
        let base = kallsyms.lookup("_text").unwrap_or(image_base);
        let size = match kallsyms.lookup("_end") {
            Some(end) if end > base => end - base,
            _ => image.len() as umem,
        };
        let info = OsInfo { base, size, arch };
        let (nr_threads, pid_max) = (kallsyms.lookup("nr_threads"), kallsyms.lookup("pid_max"));
        let kernel = Kernel { arch, family, root, kallsyms, btf, layout, init_task, nr_threads, pid_max, info };
        Ok(LinuxOs { kernel: Arc::new(kernel), view, mem, lib })
    }

    /// The kernel's symbols.
    pub fn kallsyms(&self) -> &Kallsyms {
        &self.kernel.kallsyms
    }

    /// The kernel's BTF type information, for structures the layer itself does not read.
    pub fn btf(&self) -> &Btf {
        &self.kernel.btf
    }

    /// The structure layouts read from BTF.
    pub fn layout(&self) -> &Layout {
        &self.kernel.layout
    }

    /// Physical address of the kernel's top-level page table (x86-64: CR3; AArch64: TTBR1; RISC-V: `swapper_pg_dir`, whose page number `satp` holds).
    pub fn kernel_root(&self) -> Address {
        self.kernel.root
    }

    /// Opens the process `info` as a [`LinuxProcess`] (what [`Os::process_by_info`] wraps).
    pub fn process(&mut self, info: ProcessInfo) -> Result<LinuxProcess<P>> {
        LinuxProcess::new(self.mem.clone(), self.kernel.clone(), info)
    }
}

/// The `.BTF` section: between `__start_BTF` and `__stop_BTF` where kallsyms has them, they
/// are at most [`MAX_BTF_BYTES`] apart and a BTF header is there, else the first BTF header
/// in the kernel image. Without one the kernel
/// was built without BTF: `NotFound`.
fn read_btf<P: PhysicalMemory>(found: &FoundKernel, view: &mut VirtualDma<P>) -> Result<Btf> {
    let named = match (found.kallsyms.lookup("__start_BTF"), found.kallsyms.lookup("__stop_BTF")) {
        (Some(start), Some(stop)) if stop > start && stop - start <= MAX_BTF_BYTES as umem => {
            view.read_raw(start, (stop - start) as usize).ok()
        }
        (Some(start), Some(stop)) if stop > start => {
            log::warn!("linux: __start_BTF..__stop_BTF is {:#x} bytes, more than {MAX_BTF_BYTES}", stop - start);
            None
        }
        _ => None,
    };
    let section = match named.filter(|bytes| BtfHeader::parse(bytes).is_some()) {
        Some(bytes) => bytes,
        None => {
            let image = &found.image;
            let (at, header) = (0..image.len().saturating_sub(btf::HEADER_LEN))
                .step_by(4)
                .find_map(|at| {
                    BtfHeader::parse(&image[at..]).filter(|h| at + h.total() <= image.len()).map(|h| (at, h))
                })
                .ok_or_else(|| {
                    Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
                        .with_reason(format_args!("kernel has no BTF (CONFIG_DEBUG_INFO_BTF)"))
                })?;
            image[at..at + header.total()].to_vec()
        }
    };
    Btf::parse(&section).map_err(|e| e.with_reason("the kernel's BTF (CONFIG_DEBUG_INFO_BTF) cannot be parsed"))
}

/// Entry points for the fuzz targets (`memflow-core/fuzz`): the walks over guest data that
/// are not public otherwise. Not a stable API.
#[doc(hidden)]
pub mod fuzz {
    use super::*;

    /// `list::walk`: the elements of the `list_head` ring at `head`, at most `max`.
    pub fn list_walk<V: MemoryView>(
        mem: &mut V,
        head: Address,
        max: usize,
        visit: impl FnMut(Address) -> bool,
    ) -> Result<()> {
        list::walk(mem, head, max, "the fuzzed list", visit)
    }

    /// `maple::entries` with the node layout of Linux 6.1 on x86-64.
    pub fn maple_entries<V: MemoryView>(mem: &mut V, root: u64, entry: impl FnMut(Address)) -> Result<()> {
        maple::entries(mem, &layout::MapleLayout::linux_6_1(), root, entry)
    }
}

/// Writes `bytes` as the seed `name` of the fuzz target `target` (`fuzz/seeds/<target>/`); the
/// modules' ignored `write_fuzz_seeds` tests call it. Run them with
/// `cargo test -p memflow-core --lib -- --ignored os::linux`.
#[cfg(test)]
fn write_fuzz_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

// A whole OS instance (kernel memory and physical memory included), and a process.
mod groups {
    use super::*;
    use crate::instance::*;
    use crate::mem::{MemoryViewVtbl, PhysicalMemoryVtbl};
    use crate::translate::{VirtualTranslate, VirtualTranslateVtbl};

    use crate::connector::cpu_state::CpuStateVtbl;

    cglue_impl_group!(LinuxOs<P: PhysicalMemory + CpuState + Clone + 'static>, OsInstance, { PhysicalMemory, MemoryView, VirtualTranslate, CpuState });
    cglue_impl_group!(LinuxProcess<P: PhysicalMemory + Clone + 'static>, ProcessInstance, { VirtualTranslate });

    crate::forward_virtual_translate!(LinuxOs<P>, view, P: PhysicalMemory + Clone + 'static);
}

/// The CPU state of the connector below, passed through.
impl<P: CpuState> CpuState for LinuxOs<P> {
    fn cpu_count(&self) -> usize {
        self.mem.cpu_count()
    }

    fn x86_registers(&self, cpu: usize) -> Result<X86Registers> {
        self.mem.x86_registers(cpu)
    }

    fn aarch64_registers(&self, cpu: usize) -> Result<AArch64Registers> {
        self.mem.aarch64_registers(cpu)
    }

    fn riscv_registers(&self, cpu: usize) -> Result<RiscVRegisters> {
        self.mem.riscv_registers(cpu)
    }

    fn vmcoreinfo(&self, buf: &mut [u8]) -> Result<usize> {
        self.mem.vmcoreinfo(buf)
    }
}

impl<P: PhysicalMemory + Clone + 'static> Os for LinuxOs<P> {
    /// Every thread-group leader on the task list of `init_task` (see `tasks.rs`).
    fn process_address_list_callback(&mut self, mut callback: AddressCallback) -> Result<()> {
        tasks::processes(&mut self.view, &self.kernel, |task| callback.call(task))
    }

    fn process_info_by_address(&mut self, address: Address) -> Result<ProcessInfo> {
        tasks::process_info(&mut self.view, &self.kernel, address)
    }

    fn process_by_info(&mut self, info: ProcessInfo) -> Result<ProcessInstanceArcBox<'static>> {
        let process = self.process(info)?;
        Ok(process_instance(process, self.lib.clone()))
    }

    /// Every `struct module` on the kernel's `modules` list.
    fn module_address_list_callback(&mut self, mut callback: AddressCallback) -> Result<()> {
        let head = self.kernel_symbol("modules")?;
        let list = self.kernel.layout.module.list as umem;
        list::walk(&mut self.view, head, MAX_MODULES, "the module list", |node| callback.call(node - list))
    }

    fn module_by_address(&mut self, address: Address) -> Result<ModuleInfo> {
        Ok(modules::read(&mut self.view, &self.kernel, address)?.info)
    }

    fn kernel_symbol(&mut self, name: &str) -> Result<Address> {
        self.kernel.kallsyms.lookup(name).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no kernel symbol `{name}`"))
        })
    }

    /// In the kernel image: the kallsyms table. Elsewhere: the symbols of the module whose
    /// memory holds `address`, at or above the start of that memory.
    fn kernel_symbol_by_address(&mut self, address: Address) -> Result<KernelSymbolInfo> {
        let OsInfo { base, size, .. } = self.kernel.info;
        if address >= base && address - base < size {
            if let Some(s) = self.kernel.kallsyms.nearest(address).filter(|s| s.address >= base) {
                return Ok(KernelSymbolInfo {
                    name: s.name.into(),
                    address: s.address,
                    kind: s.kind as u8,
                    module: "".into(),
                });
            }
        } else if let Some(module) = self.module_holding(address)? {
            let region = module.region_of(address).unwrap_or(module.info.base);
            let mut best: Option<modules::ModuleSymbol> = None;
            modules::symbols(&mut self.view, &self.kernel, module.info.address, |s| {
                if s.address >= region && s.address <= address && best.as_ref().is_none_or(|b| s.address > b.address) {
                    best = Some(s);
                }
                true
            })?;
            if let Some(s) = best {
                return Ok(KernelSymbolInfo {
                    name: s.name.as_str().into(),
                    address: s.address,
                    kind: s.kind,
                    module: module.info.name,
                });
            }
        }
        Err(Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no kernel symbol at {address}")))
    }

    /// The kallsyms table, then the symbols of every module on the module list.
    fn kernel_symbol_list_callback(&mut self, mut callback: KernelSymbolCallback) -> Result<()> {
        for s in self.kernel.kallsyms.iter() {
            let info =
                KernelSymbolInfo { name: s.name.into(), address: s.address, kind: s.kind as u8, module: "".into() };
            if !callback.call(info) {
                return Ok(());
            }
        }
        for module in self.module_list()? {
            let mut go_on = true;
            modules::symbols(&mut self.view, &self.kernel, module.address, |s| {
                let info = KernelSymbolInfo {
                    name: s.name.as_str().into(),
                    address: s.address,
                    kind: s.kind,
                    module: module.name.clone(),
                };
                go_on = callback.call(info);
                go_on
            })?;
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    /// The module's `EXPORT_SYMBOL` and `EXPORT_SYMBOL_GPL` symbols (all of its symbols are
    /// in [`Os::kernel_symbol_list_callback`]).
    fn kernel_module_export_list_callback(&mut self, module: &ModuleInfo, mut callback: ExportCallback) -> Result<()> {
        for (name, address) in modules::exports(&mut self.view, &self.kernel, module.address)? {
            let offset = address.to_umem().wrapping_sub(module.base.to_umem());
            if !callback.call(ExportInfo { name: name.as_str().into(), offset }) {
                break;
            }
        }
        Ok(())
    }

    /// The sections sysfs lists; their sizes are 0 (the kernel does not keep them).
    fn kernel_module_section_list_callback(
        &mut self,
        module: &ModuleInfo,
        mut callback: SectionCallback,
    ) -> Result<()> {
        modules::sections(&mut self.view, &self.kernel, module.address, |s| callback.call(s))
    }

    /// From the kernel's BTF.
    fn type_member_offset(&self, structure: &str, member: &str) -> Result<umem> {
        Ok(self
            .kernel
            .btf
            .offset_of(structure, member)
            .map_err(|e| e.with_reason(format_args!("BTF: no structure `{structure}` with a member `{member}`")))?
            as umem)
    }

    /// From the kernel's BTF.
    fn type_size(&self, structure: &str) -> Result<umem> {
        Ok(self
            .kernel
            .btf
            .struct_size(structure)
            .map_err(|e| e.with_reason(format_args!("BTF: no structure `{structure}`")))? as umem)
    }

    fn info(&self) -> &OsInfo {
        &self.kernel.info
    }
}

impl<P: PhysicalMemory + Clone + 'static> LinuxOs<P> {
    /// The module on the module list whose memory holds `address`.
    fn module_holding(&mut self, address: Address) -> Result<Option<modules::Module>> {
        let mut addrs = Vec::new();
        self.module_address_list_callback((&mut addrs).into())?;
        for a in addrs {
            let module = modules::read(&mut self.view, &self.kernel, a)?;
            if module.holds(address) {
                return Ok(Some(module));
            }
        }
        Ok(None)
    }
}

/// The kernel's address space.
impl<P: PhysicalMemory> MemoryView for LinuxOs<P> {
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

/// The connector's physical memory, unchanged.
impl<P: PhysicalMemory> PhysicalMemory for LinuxOs<P> {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        self.mem.phys_read_batch(batch)
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.mem.phys_write_batch(batch)
    }

    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        self.mem.phys_read_single(addr, out)
    }

    fn phys_write_single(&mut self, addr: PhysicalAddress, data: &[u8]) -> Result<usize> {
        self.mem.phys_write_single(addr, data)
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        self.mem.metadata()
    }

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
        self.mem.mem_map_callback(callback)
    }

    fn set_mem_map(&mut self, map: &[MemMapping]) {
        self.mem.set_mem_map(map);
        self.view.phys_mem().set_mem_map(map);
    }
}
