//! RISC-V guests: the kernel's page-table root and paging mode, found by scanning physical
//! memory, and the kernel image it maps.
//!
//! QEMU's ELF dumps of RISC-V guests carry the general registers and `pc` only
//! (`NT_PRSTATUS`), no `satp`; a live guest's monitor shows `satp`. The table it names is
//! taken without a scan if its kernel half maps the kernel as below: it may be a process's
//! table (an idle CPU keeps the last one), whose kernel half is the kernel's, and the layer
//! then moves to `swapper_pg_dir` by its symbol. The kernel's top-level table
//! (`swapper_pg_dir`, what `satp` holds in kernel threads) is recognisable in memory:
//!
//! - its lower (user) half is empty; every entry of its upper half is empty, a table entry
//!   (valid, no permission bits) or a leaf (read or execute permission) pointing inside
//!   physical memory;
//! - it maps most of the guest's RAM linearly in the kernel half below the image window, the
//!   table's own page included;
//! - it maps the kernel image in the top 2 GiB of the address space (`KERNEL_LINK_ADDR`,
//!   moved by at most 1 GiB with KASLR), whose first page starts with the RISC-V boot image
//!   header: the magic `RSC\x05` at offset 0x38.
//!
//! Processes' tables copy the kernel half but map user space too; the early tables
//! (`early_pg_dir`, `trampoline_pg_dir`) map the image only. The same page read in another
//! paging mode than its own maps no image there (superpages must be aligned to their size,
//! so the levels do not line up), so each mode of [`MODES`] is tried at each address, the
//! largest first, in one pass over memory. The scan is bounded like the AArch64 one (see
//! `crate::os::linux::scan::scan_tables`).

use cglue::forward::ForwardMut;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::PhysicalMemory;
use crate::os::linux::scan::{
    found_or_none, maps_ram_linearly, no_kallsyms, ranges_from_magic, read_image, scan_max, scan_tables, FoundKernel,
    Images, Tried,
};
use crate::types::{umem, Address};
use crate::virt::VirtualDma;

/// The paging modes searched, in this order.
pub const MODES: [ArchitectureIdent; 3] =
    [ArchitectureIdent::RiscVSv57, ArchitectureIdent::RiscVSv48, ArchitectureIdent::RiscVSv39];
/// The RISC-V boot image header's magic (`magic2`), at [`IMAGE_MAGIC_AT`] in the image's
/// first page.
const IMAGE_MAGIC: [u8; 4] = *b"RSC\x05";
/// Where the header holds [`IMAGE_MAGIC`].
const IMAGE_MAGIC_AT: umem = 0x38;
/// The top of the address space that holds the kernel image.
const IMAGE_WINDOW: umem = 2 << 30;
/// Bytes of a top-level table (all modes).
const TABLE_SIZE: usize = 0x1000;
/// The valid bit of an entry.
const VALID: u64 = 1;
/// The read, write and execute bits: all clear in a table entry; read or execute set in a leaf.
const RWX: u64 = 0b1110;
/// Bits of a table entry that must be clear besides [`RWX`]: user, accessed and dirty (the
/// specification reserves them in table entries), bits 54..=63 (reserved, PBMT, NAPOT).
const TABLE_MUST_BE_ZERO: u64 = 0b1101_0000 | (0x3ff << 54);
/// Bits of a leaf that must be clear: reserved bits 54..=60.
const LEAF_MUST_BE_ZERO: u64 = 0x7f << 54;
/// The physical page number of an entry (bits 10..54), to shift left by 2 for an address.
const PPN: u64 = ((1 << 44) - 1) << 10;

/// The kernel's page tables found in a RISC-V guest's memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KernelTables {
    /// The paging mode (`satp.MODE`).
    pub arch: ArchitectureIdent,
    /// The physical address of the kernel's top-level table (`swapper_pg_dir`).
    pub root: Address,
}

impl KernelTables {
    /// The root registers for a `VirtualDma` or `Translator` of the kernel's address space:
    /// `satp` with the table's page number (ASID and mode bits zero; the mode is `arch`).
    pub fn roots(&self) -> [Address; 1] {
        [satp(self.root)]
    }
}

/// The root register value (`satp`'s page number field) for the top-level table at `table`.
pub(super) fn satp(table: Address) -> Address {
    Address::new(table.to_umem() >> 12)
}

/// The ranges of one mode's address space the validation reads: its kernel half below the
/// image window (the linear map, vmalloc, vmemmap) and the image window.
#[derive(Copy, Clone)]
struct Mode {
    arch: ArchitectureIdent,
    kernel_half: (Address, Address),
    image_window: (Address, Address),
}

impl Mode {
    fn of(arch: ArchitectureIdent) -> Result<Mode> {
        let description = arch.describe()?;
        let half_start = description.segments().last().map(|s| s.first).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::InvalidArgument).with_reason("riscv64: a mode without segments")
        })?;
        // The top of the 64-bit space also where `umem` is 128 bits wide.
        let top = Address::new(u64::MAX as umem);
        let window = top - (IMAGE_WINDOW - 1);
        Ok(Mode { arch, kernel_half: (half_start, window - 1 as umem), image_window: (window, top) })
    }

    /// True if the tables at `root` map RAM linearly in the kernel half and a kernel image in
    /// the image window (see the module documentation).
    fn is_kernels<P: PhysicalMemory>(&self, mem: &mut P, root: Address, ram: umem, max: Address) -> Result<bool> {
        let mut view = VirtualDma::new(mem.forward_mut(), self.arch, &[satp(root)])?;
        Ok(maps_ram_linearly(&mut view, self.kernel_half, root, ram, max)?
            && ranges_from_magic(&mut view, self.image_window, IMAGE_MAGIC_AT, IMAGE_MAGIC)?.is_some())
    }
}

/// Finds the kernel's top-level table and paging mode in `mem` (see the module
/// documentation). Visits the connector's memory map once, trying the modes of [`MODES`] in
/// that order at each address, validates at most
/// [`MAX_SCANNED_TABLES`](crate::os::linux::limits::MAX_SCANNED_TABLES) candidates in all,
/// and fails with `NotFound` if none is the kernel's.
pub fn find_kernel_tables<P: PhysicalMemory>(mem: &mut P) -> Result<KernelTables> {
    let max = scan_max(mem);
    let ram = mem.metadata().real_size;
    let candidates = MODES.iter().map(|&arch| Ok((Mode::of(arch)?, TABLE_SIZE))).collect::<Result<Vec<_>>>()?;
    let looks_like = |_, table: &[u8]| looks_like_top_table(table, max);
    let accept = |mem: &mut P, mode: Mode, root: Address| mode.is_kernels(mem, root, ram, max);
    if let Some((mode, root)) = scan_tables(mem, &candidates, "riscv64", looks_like, accept)? {
        return Ok(KernelTables { arch: mode.arch, root });
    }
    Err(Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
        .with_reason("riscv64: no top-level table maps the guest's RAM linearly and a kernel image (Sv57/48/39)"))
}

/// The tables of the first RISC-V paging mode and table root of `hints` (a CPU's `satp`,
/// see [`crate::os::linux::cpu_hints`]) whose kernel half maps RAM linearly and a kernel
/// image, as the scan requires (the user half is not looked at: see the module
/// documentation); `None` if no hint's does.
fn tables_from_hints<P: PhysicalMemory>(
    mem: &mut P,
    hints: &[(ArchitectureIdent, Address)],
) -> Result<Option<KernelTables>> {
    let (max, ram) = (scan_max(mem), mem.metadata().real_size);
    for &(arch, root) in hints.iter().filter(|(arch, _)| MODES.contains(arch)) {
        if Mode::of(arch)?.is_kernels(mem, root, ram, max)? {
            return Ok(Some(KernelTables { arch, root }));
        }
        log::info!("linux: the CPU's {arch:?} tables at {root} map no kernel; scanning");
    }
    Ok(None)
}

/// Finds the kernel of a RISC-V guest: its tables (from `hints` where one names them, else
/// see [`find_kernel_tables`]), the image they map and its kallsyms tables. `None` if the
/// scan finds no tables (no RISC-V guest, or none among the candidates it may try; logged);
/// an error names what is missing after that.
pub(in crate::os::linux) fn find_kernel<P: PhysicalMemory>(
    mem: &mut P,
    hints: &[(ArchitectureIdent, Address)],
) -> Result<Option<FoundKernel>> {
    let found = tables_from_hints(mem, hints)?.map_or_else(|| find_kernel_tables(mem), Ok);
    let Some(tables) = found_or_none(found, "RISC-V")? else { return Ok(None) };
    let mode = Mode::of(tables.arch)?;
    let mut view = VirtualDma::new(mem.forward_mut(), tables.arch, &tables.roots())?;
    let not_found = || {
        Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!(
            "no kernel image found: the tables at {} map no RISC-V boot image in the top 2 GiB",
            tables.root
        ))
    };
    let ranges = ranges_from_magic(&mut view, mode.image_window, IMAGE_MAGIC_AT, IMAGE_MAGIC)?.ok_or_else(not_found)?;
    match read_image(&mut view, tables.arch, tables.root, &ranges, &mut Images::new())? {
        Tried::Found(found) => Ok(Some(found)),
        Tried::NoKallsyms(base, kind) => Err(no_kallsyms(base, kind)),
        Tried::NoImage => Err(not_found()),
    }
}

/// True if `table` has no entry in its lower half, some in its upper half, and all of those
/// are table entries or leaves (see the module documentation) at most at `max`.
fn looks_like_top_table(table: &[u8], max: Address) -> bool {
    let (low, high) = table.split_at(table.len() / 2);
    if low.iter().any(|&b| b != 0) {
        return false;
    }
    let mut any = false;
    for raw in high.chunks_exact(8) {
        let entry = u64::from_le_bytes(raw.try_into().unwrap_or_default());
        if entry == 0 {
            continue;
        }
        let leaf = entry & RWX != 0;
        let must_be_zero = if leaf { LEAF_MUST_BE_ZERO } else { TABLE_MUST_BE_ZERO | RWX };
        let addr = Address::new(((entry & PPN) << 2) as umem);
        if entry & VALID == 0 || entry & must_be_zero != 0 || addr > max {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dummy::{patterned_memory, PageTableBuilder};
    use crate::mem::MemoryView;
    use crate::os::linux::limits::MAX_SCANNED_TABLES;
    use crate::types::PageType;

    const MEM: umem = 64 << 20;
    const TABLES: umem = 4 << 20;
    /// Where the fake image (one page with the header magic) is in physical memory.
    const IMAGE: umem = 8 << 20;

    /// Kernel tables of `arch` (in the top 4 MiB of 64 MiB of memory) with a one-page image
    /// at the start of the image window if `image`, and a linear map of all the memory in
    /// 2 MiB pages at the start of the kernel half if `linear`.
    fn kernel(arch: ArchitectureIdent, image: bool, linear: bool) -> PageTableBuilder {
        let mode = Mode::of(arch).unwrap();
        let tables = Address::new(MEM - TABLES)..Address::new(MEM);
        let mut mem = patterned_memory(MEM as usize);
        mem.phys_view().write_raw(Address::new(IMAGE + IMAGE_MAGIC_AT), &IMAGE_MAGIC).unwrap();
        let mut b = PageTableBuilder::new(mem, arch, tables).unwrap();
        if image {
            b.map(mode.image_window.0, Address::new(IMAGE), 12, PageType::empty()).unwrap();
        }
        for i in (0..MEM >> 21).filter(|_| linear) {
            let va = mode.kernel_half.0 + (i << 21);
            b.map(va, Address::new(i << 21), 21, PageType::WRITEABLE).unwrap();
        }
        b
    }

    #[test]
    fn the_table_with_a_linear_map_and_an_image_is_found_in_its_mode() {
        for arch in MODES {
            let b = kernel(arch, true, true);
            let found = find_kernel_tables(&mut b.memory()).unwrap();
            let root = arch.describe().unwrap().root_table(b.roots()[0]);
            assert_eq!(found, KernelTables { arch, root });
            assert_eq!(found.roots(), [b.roots()[0]], "{arch:?}: satp's page number");
        }
    }

    /// A hint naming the kernel's table in its mode is taken, also where the table maps user
    /// space (a process's, which the scan passes over); one in another mode, or naming another
    /// page, is not.
    #[test]
    fn hints_name_the_kernels_table() {
        let mut b = kernel(ArchitectureIdent::RiscVSv39, true, true);
        b.map(Address::new(0x1000), Address::new(IMAGE), 12, PageType::WRITEABLE).unwrap();
        assert_eq!(find_kernel_tables(&mut b.memory()).unwrap_err().kind, ErrorKind::NotFound, "user half");
        let root = ArchitectureIdent::RiscVSv39.describe().unwrap().root_table(b.roots()[0]);
        let mut mem = b.memory();
        let kernel = KernelTables { arch: ArchitectureIdent::RiscVSv39, root };
        let hint = |arch, root| tables_from_hints(&mut b.memory(), &[(arch, root)]).unwrap();
        assert_eq!(hint(ArchitectureIdent::RiscVSv39, root), Some(kernel));
        assert_eq!(hint(ArchitectureIdent::RiscVSv57, root), None, "another mode");
        assert_eq!(hint(ArchitectureIdent::RiscVSv39, Address::new(IMAGE)), None, "another page");
        assert_eq!(hint(ArchitectureIdent::X86_64, root), None, "not a RISC-V mode");
        let other = [(ArchitectureIdent::RiscVSv39, Address::new(IMAGE)), (ArchitectureIdent::RiscVSv39, root)];
        assert_eq!(tables_from_hints(&mut mem, &other).unwrap(), Some(kernel), "the first that is the kernel's");
    }

    #[test]
    fn tables_without_a_linear_map_or_an_image_are_not_the_kernels() {
        for arch in MODES {
            for (image, linear) in [(true, false), (false, true)] {
                let b = kernel(arch, image, linear);
                let e = find_kernel_tables(&mut b.memory()).unwrap_err();
                assert_eq!(e.kind, ErrorKind::NotFound, "{arch:?} image {image} linear {linear}");
            }
        }
    }

    #[test]
    fn entries_are_checked() {
        let max = Address::new(MEM - 1);
        let table = |entries: &[(usize, u64)]| {
            let mut t = vec![0u8; TABLE_SIZE];
            for &(i, e) in entries {
                t[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
            }
            t
        };
        let next = (0x1000u64 >> 12) << 10 | VALID;
        assert!(looks_like_top_table(&table(&[(300, next), (510, next | 0b1010)]), max));
        assert!(!looks_like_top_table(&table(&[]), max), "empty");
        assert!(!looks_like_top_table(&table(&[(1, next), (300, next)]), max), "user half");
        assert!(!looks_like_top_table(&table(&[(300, next & !VALID)]), max), "invalid entry");
        assert!(!looks_like_top_table(&table(&[(300, next | 1 << 4)]), max), "user bit on a table");
        assert!(!looks_like_top_table(&table(&[(300, next | 1 << 60)]), max), "reserved bit");
        assert!(!looks_like_top_table(&table(&[(300, (MEM as u64 >> 12) << 10 | VALID)]), max), "beyond memory");
    }

    /// Memory full of pages shaped like kernel top tables that map nothing: the scan gives up
    /// after validating [`MAX_SCANNED_TABLES`] of them.
    #[test]
    fn candidates_are_bounded() {
        let mut mem = patterned_memory(MEM as usize);
        let mut fake = [0u8; TABLE_SIZE];
        let entry = ((MEM as u64 - 0x1000) >> 12) << 10 | VALID;
        fake[300 * 8..301 * 8].copy_from_slice(&entry.to_le_bytes());
        for i in 0..2 * MAX_SCANNED_TABLES as umem {
            mem.phys_view().write_raw(Address::new(i * 0x1000), &fake).unwrap();
        }
        assert_eq!(find_kernel_tables(&mut mem).unwrap_err().kind, ErrorKind::LimitExceeded);
    }
}
