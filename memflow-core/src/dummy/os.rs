//! A synthetic OS that knows the truth: processes with real page tables in synthetic physical
//! memory, ELF modules, heaps and stacks, and a record of everything it put there.
//!
//! Each address space (the kernel's and one per process) gets its own page tables, built with
//! [`PageTableBuilder`] from a fixed area of 32 pages. A process maps:
//!
//! - a read-only 1 GiB page onto physical address 0 (a window such as a `/dev/mem` mapping),
//!   where the architecture has 1 GiB pages;
//! - its executable (named after the process, at `/usr/bin/NAME`) and the libraries
//!   `libdummy.so` and `libc.so.6`, each a three-page ELF image ([`super::elf`]) mapped with
//!   small pages, read-only, executable and writable in turn;
//! - a heap of one large page (the smallest of at most 4 MiB; 16 small pages where there is
//!   none), its first 64 KiB random;
//! - a stack of four small pages of random bytes.
//!
//! Placements are randomized from the seed like ASLR. The kernel's space holds the kernel
//! image `vmlinux` and two modules in the upper half (the upper 2 GiB on 32-bit x86). Every
//! region is contiguous in physical memory; large pages are taken from the top of memory, the
//! rest from the bottom.
//!
//! The process table is shared by all clones of a [`DummyOs`] and by the processes opened
//! from it: a process added or killed through one is seen by all. A killed process leaves the
//! list, and an opened instance of it fails every access with `Gone`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::elf::{self, Access, ElfTarget, HashStyle, ImageSpec, SEGMENTS, SEGMENT_COUNT};
use super::page_tables::PageTableBuilder;
use super::process::DummyProcess;
use super::rng::Rng;
use super::truth::{DummyModule, DummyProcessTruth, DummyRegion, DummySpace};
use cglue::repr_cstring::ReprCString;

use crate::arch::ArchitectureIdent;
use crate::connector::{try_dummy_memory, BufferMemory};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::instance::{process_instance, LibArc, ProcessInstanceArcBox};
use crate::mem::{
    MemoryView, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata, ReadBatch, ViewMetadata,
    WriteBatch,
};
use crate::os::elf_image::ElfImage;
use crate::os::*;
use crate::types::{umem, Address, PageType, PhysicalAddress};
use crate::virt::VirtualDma;

/// Page-table pages reserved for each address space.
const TABLE_PAGES: u64 = 32;
/// The spacing of randomized placements (2 MiB).
const SLOT: u64 = 2 << 20;
/// Where the kernel image lies above the start of the kernel's range.
const KERNEL_OFFSET: u64 = 16 << 20;
/// Bytes of random content at the start of each heap.
const HEAP_DATA: usize = 64 << 10;
/// Small pages of a heap where the architecture has no large page of at most 4 MiB.
const HEAP_PAGES: u64 = 16;
/// log2 of the largest page size used for heaps (4 MiB).
const MAX_HEAP_PAGE_SHIFT: u8 = 22;
/// Small pages of each stack.
const STACK_PAGES: u64 = 4;
/// log2 of the page size of the window onto physical memory (1 GiB).
const WINDOW_SHIFT: u8 = 30;
/// Default physical memory size of the builder (64 MiB).
const DEFAULT_MEMORY: usize = 64 << 20;

const READ_ONLY: Access = Access { write: false, exec: false };
const READ_WRITE: Access = Access { write: true, exec: false };

/// The main executable of every process (named after the process).
const EXECUTABLE: ImageSpec =
    ImageSpec { functions: &["main"], objects: &[], imports: &["dummy_open", "puts"], hash: HashStyle::Gnu };

/// The libraries every process loads.
const LIBRARIES: [(&str, ImageSpec); 2] = [
    (
        "libdummy.so",
        ImageSpec {
            functions: &["dummy_open", "dummy_read"],
            objects: &["dummy_version"],
            imports: &["malloc", "free"],
            hash: HashStyle::SysV,
        },
    ),
    (
        "libc.so.6",
        ImageSpec {
            functions: &["malloc", "free", "puts"],
            objects: &["environ"],
            imports: &["__tls_get_addr"],
            hash: HashStyle::Gnu,
        },
    ),
];

/// The kernel image (first, the base of [`OsInfo`]) and the kernel modules.
const KERNEL_MODULES: [(&str, ImageSpec); 3] = [
    (
        "vmlinux",
        ImageSpec {
            functions: &["start_kernel", "printk"],
            objects: &["init_task", "jiffies"],
            imports: &[],
            hash: HashStyle::SysV,
        },
    ),
    (
        "dummy_blk.ko",
        ImageSpec { functions: &["blk_dummy_init"], objects: &[], imports: &["printk"], hash: HashStyle::Gnu },
    ),
    (
        "dummy_net.ko",
        ImageSpec {
            functions: &["net_dummy_init"],
            objects: &["net_dummy_stats"],
            imports: &["printk"],
            hash: HashStyle::SysV,
        },
    ),
];

/// Where things go in the address spaces of one architecture.
#[derive(Copy, Clone, Debug)]
struct Layout {
    arch: ArchitectureIdent,
    target: ElfTarget,
    page_shift: u8,
    /// The page size of heaps.
    heap_shift: u8,
    heap_size: u64,
    /// Whether there are 1 GiB pages (then each process gets a window onto physical memory).
    window: bool,
    /// One past the highest user address.
    user_top: u64,
    /// The first kernel address.
    kernel_start: u64,
}

impl Layout {
    fn new(arch: ArchitectureIdent) -> Result<Self> {
        let a = arch.describe()?;
        let page_shift = a.page_shift();
        let leaves = || a.levels().iter().filter(|l| l.leaf).map(|l| l.shift);
        let (heap_shift, heap_size) = match leaves().filter(|&s| s > page_shift && s <= MAX_HEAP_PAGE_SHIFT).min() {
            Some(shift) => (shift, 1 << shift),
            None => (page_shift, HEAP_PAGES << page_shift),
        };
        let mut segments = a.segments();
        let low = segments.next().ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::Internal).with_reason(format_args!("{arch:?} has no addresses"))
        })?;
        let low_end = low.last.to_umem() as u64 + 1;
        let (user_top, kernel_start) = match segments.next() {
            Some(high) => (low_end, high.first.to_umem() as u64),
            // One range (32-bit x86): the upper half is the kernel's.
            None => (low_end / 2, low_end / 2),
        };
        Ok(Layout {
            arch,
            target: ElfTarget::of(arch),
            page_shift,
            heap_shift,
            heap_size,
            window: leaves().any(|s| s == WINDOW_SHIFT),
            user_top,
            kernel_start,
        })
    }

    fn page(&self) -> u64 {
        1 << self.page_shift
    }
}

/// Hands out physical memory: allocations aligned to more than a small page from the top of
/// memory, the rest from the bottom, so alignment wastes little. Nothing is given back.
#[derive(Debug)]
struct PhysAlloc {
    low: u64,
    high: u64,
    page: u64,
}

impl PhysAlloc {
    fn take(&mut self, size: u64, align: u64) -> Result<Address> {
        let at = if align > self.page {
            self.high.checked_sub(size).map(|at| at & !(align - 1)).filter(|&at| at >= self.low)
        } else {
            Some(self.low.next_multiple_of(align)).filter(|at| at + size <= self.high)
        };
        let at = at.ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::OutOfMemory).with_reason(format_args!(
                "synthetic physical memory exhausted ({size:#x} bytes wanted); give the dummy OS more memory"
            ))
        })?;
        if align > self.page {
            self.high = at;
        } else {
            self.low = at + size;
        }
        Ok(Address::from(at))
    }
}

/// Builds one address space: its tables, regions and modules, recording the truth.
struct SpaceBuilder<'a> {
    tables: PageTableBuilder,
    mem: BufferMemory,
    alloc: &'a mut PhysAlloc,
    layout: Layout,
    /// Whether its pages are user pages.
    user: bool,
    /// The physical address of its table area (its first top-level table).
    tables_base: Address,
    modules: Vec<DummyModule>,
    regions: Vec<DummyRegion>,
}

impl<'a> SpaceBuilder<'a> {
    fn new(mem: &BufferMemory, alloc: &'a mut PhysAlloc, layout: Layout, user: bool) -> Result<Self> {
        let size = TABLE_PAGES * layout.page();
        let tables_base = alloc.take(size, layout.page())?;
        let tables = PageTableBuilder::new(mem.clone(), layout.arch, tables_base..tables_base + size as umem)?;
        Ok(SpaceBuilder {
            tables,
            mem: mem.clone(),
            alloc,
            layout,
            user,
            tables_base,
            modules: vec![],
            regions: vec![],
        })
    }

    /// Maps `size` bytes at `va` to `pa` with pages of `1 << shift` bytes and writes `data`
    /// at its start.
    #[allow(clippy::too_many_arguments)]
    fn map(
        &mut self,
        name: String,
        va: u64,
        pa: Address,
        size: u64,
        shift: u8,
        access: Access,
        data: Vec<u8>,
    ) -> Result<()> {
        let mut flags = PageType::empty();
        flags.set(PageType::USER, self.user);
        flags.set(PageType::WRITEABLE, access.write);
        flags.set(PageType::NOEXEC, !access.exec);
        let base = Address::from(va);
        for offset in (0..size).step_by(1 << shift) {
            self.tables.map(base + offset as umem, pa + offset as umem, shift, flags)?;
        }
        if !data.is_empty() {
            self.mem.phys_write_raw(PhysicalAddress::plain(pa), &data).data()?;
        }
        // What the architecture can express of the flags.
        let page_type = self.tables.truth().last().map_or(flags, |m| m.page_type);
        self.regions.push(DummyRegion { name, base, size: size as umem, page_type, phys: pa, data });
        Ok(())
    }

    /// Takes physical memory for `size` bytes and maps it like [`SpaceBuilder::map`].
    fn alloc_map(&mut self, name: &str, va: u64, size: u64, shift: u8, data: Vec<u8>) -> Result<()> {
        let pa = self.alloc.take(size, 1 << shift)?;
        self.map(name.into(), va, pa, size, shift, READ_WRITE, data)
    }

    /// Writes the image of `spec` and maps it at `va` as module `name` of `parent`.
    fn module(&mut self, name: &str, path: String, va: u64, spec: &ImageSpec, parent: Address) -> Result<()> {
        let page = self.layout.page();
        let image = elf::write_image(self.layout.target, page as usize, spec);
        let pa = self.alloc.take(SEGMENT_COUNT as u64 * page, page)?;
        for (i, (access, bytes)) in SEGMENTS.iter().zip(image.bytes.chunks(page as usize)).enumerate() {
            let offset = i as u64 * page;
            let region = format!("{name} segment {i}");
            self.map(region, va + offset, pa + offset as umem, page, self.layout.page_shift, *access, bytes.to_vec())?;
        }
        let base = Address::from(va);
        let info = ModuleInfo {
            address: base,
            parent,
            base,
            size: image.bytes.len() as umem,
            name: name.into(),
            path: path.as_str().into(),
            arch: self.layout.arch,
        };
        let sections = image.sections.into_iter().map(|(name, offset, size)| (name, base + offset, size)).collect();
        self.modules.push(DummyModule { info, exports: image.exports, imports: image.imports, sections });
        Ok(())
    }

    fn finish(self) -> DummySpace {
        let mut regions = self.regions;
        regions.sort_by_key(|r| r.base);
        DummySpace { roots: self.tables.roots(), modules: self.modules, regions, pages: self.tables.truth().to_vec() }
    }
}

/// A process in the table, with the flag its opened instances check.
struct ProcessEntry {
    truth: DummyProcessTruth,
    alive: Arc<AtomicBool>,
}

/// The mutable state shared by clones: memory allocation and the process table.
struct World {
    mem: BufferMemory,
    layout: Layout,
    alloc: PhysAlloc,
    rng: Rng,
    next_pid: Pid,
    processes: Vec<ProcessEntry>,
}

impl World {
    /// Builds a process named `name` (see the module docs).
    fn add_process(&mut self, name: &str) -> Result<ProcessInfo> {
        let l = self.layout;
        let page = l.page();
        let mut s = SpaceBuilder::new(&self.mem, &mut self.alloc, l, true)?;
        let address = s.tables_base;
        let rng = &mut self.rng;
        if l.window {
            let va = (l.user_top / 4) & !((1 << WINDOW_SHIFT) - 1);
            s.map("window".into(), va, Address::NULL, 1 << WINDOW_SHIFT, WINDOW_SHIFT, READ_ONLY, vec![])?;
        }
        let path = format!("/usr/bin/{name}");
        let exe = ((l.user_top / 2) & !(SLOT - 1)) + rng.below(32) * SLOT;
        s.module(name, path.clone(), exe, &EXECUTABLE, address)?;
        let heap = (exe + 2 * SLOT).next_multiple_of(1 << l.heap_shift);
        let heap_data = rng.bytes(HEAP_DATA.min(l.heap_size as usize));
        s.alloc_map("heap", heap, l.heap_size, l.heap_shift, heap_data)?;
        let libs = ((l.user_top - l.user_top / 8) & !(SLOT - 1)) + rng.below(32) * SLOT;
        for (i, (lib, spec)) in LIBRARIES.iter().enumerate() {
            s.module(lib, format!("/usr/lib/{lib}"), libs + i as u64 * SLOT, spec, address)?;
        }
        let stack_size = STACK_PAGES * page;
        let stack = l.user_top - SLOT - rng.below(256) * page - stack_size;
        s.alloc_map("stack", stack, stack_size, l.page_shift, rng.bytes(stack_size as usize))?;
        let space = s.finish();

        let pid = self.next_pid;
        let info = ProcessInfo {
            address,
            pid,
            ppid: if pid == 1 { 0 } else { 1 },
            state: ProcessState::Alive,
            name: name.into(),
            path: path.as_str().into(),
            command_line: path.as_str().into(),
            sys_arch: l.arch,
            proc_arch: l.arch,
            table_root: space.roots[0],
            table_root_2: space.roots.get(1).copied().unwrap_or(Address::NULL),
        };
        self.next_pid += 1;
        let truth = DummyProcessTruth { info: info.clone(), space };
        self.processes.push(ProcessEntry { truth, alive: Arc::new(AtomicBool::new(true)) });
        Ok(info)
    }

    fn process(&self, address: Address) -> Option<&ProcessEntry> {
        self.processes.iter().find(|p| p.truth.info.address == address)
    }
}

/// Builds a [`DummyOs`]: see [`DummyOs::builder`].
pub struct DummyOsBuilder {
    arch: ArchitectureIdent,
    memory: usize,
    seed: u64,
    processes: Vec<String>,
    lib: LibArc,
}

impl Default for DummyOsBuilder {
    fn default() -> Self {
        DummyOsBuilder {
            arch: ArchitectureIdent::X86_64,
            memory: DEFAULT_MEMORY,
            seed: 0,
            processes: vec![],
            lib: LibArc::default(),
        }
    }
}

impl DummyOsBuilder {
    /// The paging mode of every address space (default `X86_64`).
    pub fn arch(mut self, arch: ArchitectureIdent) -> Self {
        self.arch = arch;
        self
    }

    /// Bytes of physical memory (default 64 MiB; a process takes about 2.5 MiB with 4 KiB
    /// pages).
    pub fn memory(mut self, size: usize) -> Self {
        self.memory = size;
        self
    }

    /// The seed of placements and random contents (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds a process named `name`; processes get pids 1, 2, ... in the order added.
    pub fn process(mut self, name: &str) -> Self {
        self.processes.push(name.to_owned());
        self
    }

    /// The library context opened processes carry (when the OS comes from a plugin library).
    pub fn lib(mut self, lib: LibArc) -> Self {
        self.lib = lib;
        self
    }

    /// Builds the OS. Fails if the architecture is not supported or memory runs out
    /// (`OutOfMemory`).
    pub fn build(self) -> Result<DummyOs> {
        let layout = Layout::new(self.arch)?;
        let mem = try_dummy_memory(self.memory)?;
        let mut alloc = PhysAlloc { low: 0, high: self.memory as u64, page: layout.page() };
        let mut s = SpaceBuilder::new(&mem, &mut alloc, layout, false)?;
        let base = layout.kernel_start + KERNEL_OFFSET;
        for (i, (name, spec)) in KERNEL_MODULES.iter().enumerate() {
            s.module(name, String::new(), base + i as u64 * SLOT, spec, Address::NULL)?;
        }
        let kernel = s.finish();
        let kernel_view = VirtualDma::new(mem.clone(), self.arch, &kernel.roots)?;
        let image = &kernel.modules[0].info;
        let info = OsInfo { base: image.base, size: image.size, arch: self.arch };
        let mut world =
            World { mem: mem.clone(), layout, alloc, rng: Rng::new(self.seed), next_pid: 1, processes: vec![] };
        for name in &self.processes {
            world.add_process(name)?;
        }
        Ok(DummyOs {
            world: Arc::new(Mutex::new(world)),
            mem,
            kernel: Arc::new(kernel),
            kernel_view,
            info,
            lib: self.lib,
        })
    }
}

/// A synthetic OS (see the module docs). As an [`Os`] it lists and opens its processes and
/// kernel modules (the kernel image `vmlinux` first); as a [`MemoryView`] it is the kernel's
/// address space, as [`PhysicalMemory`] its synthetic memory. Clones share the memory and the
/// process table.
#[derive(Clone)]
pub struct DummyOs {
    world: Arc<Mutex<World>>,
    mem: BufferMemory,
    kernel: Arc<DummySpace>,
    kernel_view: VirtualDma<BufferMemory>,
    info: OsInfo,
    lib: LibArc,
}

impl DummyOs {
    /// A builder with the defaults: `X86_64`, 64 MiB, seed 0, no processes.
    pub fn builder() -> DummyOsBuilder {
        DummyOsBuilder::default()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // Nothing panics while holding the lock; recover rather than propagate a poison.
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a process named `name` with the next pid. Fails with `OutOfMemory` when the
    /// memory is used up (what the failed attempt took is not given back).
    pub fn add_process(&self, name: &str) -> Result<ProcessInfo> {
        self.world().add_process(name)
    }

    /// Ends the process `pid`: it leaves the process list, and its opened instances fail
    /// with `Gone` from now on. Fails with `NotFound` if there is no such process.
    pub fn kill(&self, pid: Pid) -> Result<()> {
        let mut world = self.world();
        let index = world.processes.iter().position(|p| p.truth.info.pid == pid).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no process with pid {pid}"))
        })?;
        world.processes.remove(index).alive.store(false, Ordering::Release);
        Ok(())
    }

    /// What the OS put into process `pid`, if it is running.
    pub fn truth(&self, pid: Pid) -> Option<DummyProcessTruth> {
        self.world().processes.iter().find(|p| p.truth.info.pid == pid).map(|p| p.truth.clone())
    }

    /// What the OS put into the kernel's address space (the kernel image is the first module).
    pub fn kernel(&self) -> &DummySpace {
        &self.kernel
    }
}

impl Os for DummyOs {
    /// The handle of a process is the physical address of its page-table area.
    fn process_address_list_callback(&mut self, mut callback: AddressCallback) -> Result<()> {
        let addresses: Vec<Address> = self.world().processes.iter().map(|p| p.truth.info.address).collect();
        for address in addresses {
            if !callback.call(address) {
                break;
            }
        }
        Ok(())
    }

    fn process_info_by_address(&mut self, address: Address) -> Result<ProcessInfo> {
        let world = self.world();
        let entry = world.process(address).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no process {address}"))
        })?;
        Ok(entry.truth.info.clone())
    }

    /// Fails with `Gone` if the process was killed.
    fn process_by_info(&mut self, info: ProcessInfo) -> Result<ProcessInstanceArcBox<'static>> {
        let world = self.world();
        let entry = world.process(info.address).ok_or_else(|| {
            Error::new(ErrorOrigin::Process, ErrorKind::Gone).with_reason(format_args!("process {} is gone", info.pid))
        })?;
        let process = DummyProcess::new(self.mem.clone(), &entry.truth, entry.alive.clone())?;
        Ok(process_instance(process, self.lib.clone()))
    }

    /// A module's handle is its base.
    fn module_address_list_callback(&mut self, mut callback: AddressCallback) -> Result<()> {
        for module in &self.kernel.modules {
            if !callback.call(module.info.address) {
                break;
            }
        }
        Ok(())
    }

    fn module_by_address(&mut self, address: Address) -> Result<ModuleInfo> {
        let module = self.kernel.modules.iter().find(|m| m.info.address == address);
        module.map(|m| m.info.clone()).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no kernel module {address}"))
        })
    }

    /// The exports of the kernel image.
    fn kernel_symbol(&mut self, name: &str) -> Result<Address> {
        let base = self.info.base;
        let image = ElfImage::parse(&mut self.kernel_view, base)?;
        let mut found = None;
        image.exports(&mut self.kernel_view, |e| {
            if &*e.name == name {
                found = Some(base + e.offset);
            }
            found.is_none()
        })?;
        found.ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no kernel symbol `{name}`"))
        })
    }

    /// The ELF exports of the kernel image (kind `T`), then those of each module, like
    /// `/proc/kallsyms`.
    fn kernel_symbol_list_callback(&mut self, mut callback: KernelSymbolCallback) -> Result<()> {
        // The module list starts with the kernel image itself (`vmlinux`).
        let kernel_base = self.info.base;
        let images: Vec<(Address, ReprCString)> = (self.kernel.modules.iter())
            .map(|m| (m.info.base, if m.info.base == kernel_base { "".into() } else { m.info.name.clone() }))
            .collect();
        let mut more = true;
        for (base, module) in images {
            let image = ElfImage::parse(&mut self.kernel_view, base)?;
            image.exports(&mut self.kernel_view, |e| {
                let symbol =
                    KernelSymbolInfo { name: e.name, address: base + e.offset, kind: b'T', module: module.clone() };
                more = callback.call(symbol);
                more
            })?;
            if !more {
                break;
            }
        }
        Ok(())
    }

    /// The nearest symbol of [`Os::kernel_symbol_list_callback`] at or below `address`.
    fn kernel_symbol_by_address(&mut self, address: Address) -> Result<KernelSymbolInfo> {
        let mut best: Option<KernelSymbolInfo> = None;
        self.kernel_symbol_list_callback(
            (&mut |s: KernelSymbolInfo| {
                if s.address <= address && best.as_ref().is_none_or(|b| s.address > b.address) {
                    best = Some(s);
                }
                true
            })
                .into(),
        )?;
        best.ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no kernel symbol at {address}"))
        })
    }

    /// The ELF exports of the module's image.
    fn kernel_module_export_list_callback(&mut self, module: &ModuleInfo, mut callback: ExportCallback) -> Result<()> {
        let image = ElfImage::parse(&mut self.kernel_view, module.base)?;
        image.exports(&mut self.kernel_view, |export| callback.call(export))
    }

    /// The section headers of the module's image.
    fn kernel_module_section_list_callback(
        &mut self,
        module: &ModuleInfo,
        mut callback: SectionCallback,
    ) -> Result<()> {
        let image = ElfImage::parse(&mut self.kernel_view, module.base)?;
        image.sections(&mut self.kernel_view, None, |section| callback.call(section))
    }

    fn info(&self) -> &OsInfo {
        &self.info
    }
}

/// The kernel's address space.
impl MemoryView for DummyOs {
    fn read_batch(&mut self, batch: ReadBatch) -> Result<()> {
        self.kernel_view.read_batch(batch)
    }

    fn write_batch(&mut self, batch: WriteBatch) -> Result<()> {
        self.kernel_view.write_batch(batch)
    }

    fn metadata(&self) -> ViewMetadata {
        self.kernel_view.metadata()
    }
}

/// The synthetic physical memory.
impl PhysicalMemory for DummyOs {
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
}

// A whole OS instance (kernel view and physical memory included), and a process.
mod groups {
    use super::*;
    use crate::instance::*;
    use crate::mem::{MemoryViewVtbl, PhysicalMemoryVtbl};
    use crate::translate::{VirtualTranslate, VirtualTranslateVtbl};
    use cglue::prelude::v1::*;

    cglue_impl_group!(DummyOs, OsInstance, { PhysicalMemory, MemoryView, VirtualTranslate });
    cglue_impl_group!(DummyProcess, ProcessInstance, { VirtualTranslate });

    crate::forward_virtual_translate!(DummyOs, kernel_view);
}
