//! ARM64 guests: the kernel's translation table root, found by scanning physical memory, and
//! the kernel image it maps.
//!
//! QEMU's ELF dumps of ARM64 guests carry the general registers only (`NT_PRSTATUS`: x0..x30,
//! sp, pc, pstate; `NT_PRFPREG`), no TTBR0/TTBR1/TCR. The kernel's top-level table
//! (`swapper_pg_dir`, what TTBR1 holds) is recognisable in memory instead:
//!
//! - every entry is empty or a table descriptor pointing inside physical memory;
//! - it maps both halves of the TTBR1 range: the linear map in the lower half, the kernel
//!   image, modules and vmalloc in the upper half;
//! - its linear map is one: it maps most of the guest's RAM, the table's own page included.
//!
//! User processes' tables (TTBR0) map no RAM linearly; stale early tables (`init_pg_dir`) map
//! the image only. The translation modes tried at each address, in order, are [`MODES`]:
//! what kernels built for 52-bit addresses fall back to on CPUs without FEAT_LPA2, then the
//! 52-bit modes they run on CPUs with it; one pass over memory tries them all. A 52-bit top
//! table is smaller than a page (16 entries with 4 KiB granules, 32 with 16 KiB) but the
//! kernel's lies in a page of its own: the rest of the page is zero (which also tells it from
//! the first entries of a 48-bit table). The scan visits the connector's memory map; it ends
//! once it has seen as many bytes as the connector backs (`real_size`) or, for a connector
//! that does not know its map, after
//! [`MAX_SCAN_HOLE_PAGES`](crate::os::linux::limits::MAX_SCAN_HOLE_PAGES) pages it could not
//! read.
//!
//! The kernel image lies in the upper half of the TTBR1 range, at a random place with KASLR
//! (among modules, vmalloc and vmemmap mappings). Its first page is the start of the arm64
//! boot image, whose header carries the magic `ARM\x64` at offset 0x38: the image is the
//! mapping that starts with it.

use cglue::forward::ForwardMut;

use crate::arch::{AddrField, ArchitectureIdent};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::PhysicalMemory;
use crate::os::linux::scan::{
    found_or_none, maps_ram_linearly, no_kallsyms, ranges_from_magic, read_image, scan_max, scan_tables, FoundKernel,
    Images, Tried,
};
use crate::types::{umem, Address};
use crate::virt::VirtualDma;

/// The translation modes searched, in this order: 4 KiB granule with 48-bit and 16 KiB
/// granule with 47-bit virtual addresses, then both with 52-bit ones (FEAT_LPA2).
pub const MODES: [ArchitectureIdent; 4] = [
    ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 },
    ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 47 },
    ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 52 },
    ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 52 },
];
/// The arm64 boot image header's magic, at [`IMAGE_MAGIC_AT`] in the image's first page.
const IMAGE_MAGIC: [u8; 4] = *b"ARM\x64";
/// Where the header holds [`IMAGE_MAGIC`].
const IMAGE_MAGIC_AT: umem = 0x38;
/// A table descriptor: valid and table bits set.
const TABLE: u64 = 0b11;
/// Bits of a table descriptor that must be clear unless they hold address bits: ignored bits
/// 2..=11 (Linux leaves them zero) and bits 48..=58 (reserved or ignored).
const TABLE_MUST_BE_ZERO: u64 = 0x0000_0000_0000_0ffc | 0x07ff_0000_0000_0000;

/// The facts of one mode the scan needs.
#[derive(Copy, Clone)]
struct Mode {
    arch: ArchitectureIdent,
    /// Bytes of a granule: a page, where the top table lies.
    granule: usize,
    /// Bytes of the top table, at the start of its page.
    top_table: usize,
    /// Where table descriptors hold the next table's address.
    table_addr: AddrField,
    /// The first address of the TTBR1 range (`PAGE_OFFSET`, the linear map's start).
    ttbr1_start: umem,
    /// The middle of the TTBR1 range: the linear map lies below it, the image above.
    linear_end: umem,
}

impl Mode {
    fn of(arch: ArchitectureIdent) -> Result<Mode> {
        let ArchitectureIdent::AArch64 { granule_log2, va_bits } = arch else {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::InvalidArgument));
        };
        // A 64-bit address whatever the width of `umem` (with 128-bit addresses, the top of
        // the 128-bit space is not the kernel's).
        let ttbr1_start = 0u64.wrapping_sub(1u64 << va_bits) as umem;
        let described = arch.describe()?;
        Ok(Mode {
            arch,
            granule: 1 << granule_log2,
            top_table: described.levels()[0].entries() * 8,
            table_addr: described.entry_addr(),
            ttbr1_start,
            linear_end: ttbr1_start + ((1 as umem) << (va_bits - 1)),
        })
    }
}

/// The kernel's translation tables found in an ARM64 guest's memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KernelTables {
    /// The translation mode.
    pub arch: ArchitectureIdent,
    /// The physical address of the kernel's top-level table: TTBR1's value (ASID 0).
    pub ttbr1: Address,
}

impl KernelTables {
    /// The root registers for a `VirtualDma` or `Translator` of the kernel's half:
    /// no TTBR0 (the low range maps nothing), then TTBR1.
    pub fn roots(&self) -> [Address; 2] {
        [Address::INVALID, self.ttbr1]
    }
}

/// Finds the kernel's top-level table in `mem` (see the module documentation). Visits the
/// connector's memory map once, trying the modes of [`MODES`] in that order at each address,
/// validates at most [`MAX_SCANNED_TABLES`](crate::os::linux::limits::MAX_SCANNED_TABLES)
/// candidates in all, and fails with `NotFound` if none is the kernel's.
pub fn find_kernel_tables<P: PhysicalMemory>(mem: &mut P) -> Result<KernelTables> {
    let max = scan_max(mem);
    let ram = mem.metadata().real_size;
    let candidates =
        MODES.iter().map(|&arch| Mode::of(arch).map(|mode| (mode, mode.granule))).collect::<Result<Vec<_>>>()?;
    let looks_like = |mode, page: &[u8]| looks_like_top_table(page, mode, max);
    let accept = |mem: &mut P, mode: Mode, root: Address| {
        let mut view = VirtualDma::new(mem.forward_mut(), mode.arch, &[Address::INVALID, root])?;
        let linear = (Address::new(mode.ttbr1_start), Address::new(mode.linear_end));
        maps_ram_linearly(&mut view, linear, root, ram, max)
    };
    if let Some((mode, ttbr1)) = scan_tables(mem, &candidates, "aarch64", looks_like, accept)? {
        return Ok(KernelTables { arch: mode.arch, ttbr1 });
    }
    Err(Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
        .with_reason("aarch64: no top-level table maps the guest's RAM linearly (4K or 16K granule, 47 to 52 bits)"))
}

/// Finds the kernel of an ARM64 guest: its tables (see [`find_kernel_tables`]), the image
/// they map (see the module documentation) and its kallsyms tables. `None` if the scan finds
/// no tables (no ARM64 guest, or none among the candidates it may try; logged); an error
/// names what is missing after that.
pub(in crate::os::linux) fn find_kernel<P: PhysicalMemory>(mem: &mut P) -> Result<Option<FoundKernel>> {
    let Some(tables) = found_or_none(find_kernel_tables(mem), "ARM64")? else { return Ok(None) };
    let mode = Mode::of(tables.arch)?;
    let mut view = VirtualDma::new(mem.forward_mut(), tables.arch, &tables.roots())?;
    // The upper half ends at 2^64 (a 64-bit address also in 128-bit builds).
    let upper = (Address::new(mode.linear_end), Address::new(u64::MAX as umem));
    let not_found = || {
        Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!(
            "no kernel image found: the tables at {} map no arm64 boot image in the kernel half",
            tables.ttbr1
        ))
    };
    let ranges = ranges_from_magic(&mut view, upper, IMAGE_MAGIC_AT, IMAGE_MAGIC)?.ok_or_else(not_found)?;
    match read_image(&mut view, tables.arch, tables.ttbr1, &ranges, &mut Images::new())? {
        Tried::Found(found) => Ok(Some(found)),
        Tried::NoKallsyms(base, kind) => Err(no_kallsyms(base, kind)),
        Tried::NoImage => Err(not_found()),
    }
}

/// True if `page` starts with a top table of `mode` whose entries are all empty or table
/// descriptors to tables (aligned to the granule) at most at `max`, with entries in both
/// halves, and holds nothing after it.
fn looks_like_top_table(page: &[u8], mode: Mode, max: Address) -> bool {
    let (table, rest) = page.split_at(mode.top_table.min(page.len()));
    let half = table.len() / 16;
    // Low bits of an aligned table's address are zero too.
    let must_be_zero = (TABLE_MUST_BE_ZERO | ((mode.granule as u64 - 1) & !TABLE)) & !mode.table_addr.raw_mask();
    let (mut low, mut high) = (false, false);
    for (i, raw) in table.chunks_exact(8).enumerate() {
        let entry = u64::from_le_bytes(raw.try_into().unwrap_or_default());
        if entry == 0 {
            continue;
        }
        if entry & TABLE != TABLE || entry & must_be_zero != 0 || mode.table_addr.extract(entry) > max {
            return false;
        }
        if i < half {
            low = true;
        } else {
            high = true;
        }
    }
    low && high && rest.iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dummy::{patterned_memory, PageTableBuilder};
    use crate::mem::MemoryView;
    use crate::os::linux::limits::{MAX_SCANNED_TABLES, MAX_SCAN_HOLE_PAGES};
    use crate::os::linux::scan::SCAN_CHUNK;
    use crate::types::PageType;

    const MEM: umem = 64 << 20;
    const TABLES: umem = 4 << 20;

    /// Kernel tables of `arch` (in the top 4 MiB of 64 MiB of memory) with one image page
    /// and, if `linear`, a linear map of all the memory in blocks of `1 << block_log2`.
    fn kernel(arch: ArchitectureIdent, block_log2: u8, linear: bool) -> PageTableBuilder {
        let mode = Mode::of(arch).unwrap();
        let tables = Address::new(MEM - TABLES)..Address::new(MEM);
        let mut b = PageTableBuilder::new(patterned_memory(MEM as usize), arch, tables).unwrap();
        let page = b.arch().page_shift();
        b.map(Address::new(mode.linear_end + (1 << 30)), Address::new(TABLES), page, PageType::WRITEABLE).unwrap();
        let block = (1 as umem) << block_log2;
        for i in (0..MEM / block).filter(|_| linear) {
            let va = Address::new(mode.ttbr1_start + i * block);
            b.map(va, Address::new(i * block), block_log2, PageType::WRITEABLE).unwrap();
        }
        b
    }

    #[test]
    fn the_table_with_a_linear_map_is_found() {
        for (arch, block_log2) in MODES.into_iter().zip([21, 25, 21, 25]) {
            let b = kernel(arch, block_log2, true);
            let found = find_kernel_tables(&mut b.memory()).unwrap();
            assert_eq!(found, KernelTables { arch, ttbr1: b.roots()[1] });
            assert_eq!(found.roots(), [Address::INVALID, b.roots()[1]]);
        }
    }

    /// Memory full of pages shaped like top tables (entries in both halves) that map nothing
    /// linearly: the scan gives up after validating [`MAX_SCANNED_TABLES`] of them.
    #[test]
    fn candidates_are_bounded() {
        let mut mem = patterned_memory(MEM as usize);
        let mut fake = [0u8; 0x1000];
        for index in [0usize, 300] {
            fake[index * 8..index * 8 + 8].copy_from_slice(&(0x3 | (MEM - 0x1000) as u64).to_le_bytes());
        }
        for i in 0..2 * MAX_SCANNED_TABLES as umem {
            mem.phys_view().write_raw(Address::new(i * 0x1000), &fake).unwrap();
        }
        assert_eq!(find_kernel_tables(&mut mem).unwrap_err().kind, ErrorKind::LimitExceeded);
    }

    #[test]
    fn tables_without_a_linear_map_are_not_the_kernels() {
        for (arch, block_log2) in MODES.into_iter().zip([21, 25, 21, 25]) {
            let b = kernel(arch, block_log2, false);
            assert_eq!(find_kernel_tables(&mut b.memory()).unwrap_err().kind, ErrorKind::NotFound, "{arch:?}");
        }
    }

    /// Physical memory that counts the bytes read from it and does not tell its memory map.
    struct NoMap<P> {
        mem: P,
        bytes: u64,
    }

    impl<P: PhysicalMemory> PhysicalMemory for NoMap<P> {
        fn phys_read_batch(&mut self, batch: crate::mem::PhysReadBatch) -> Result<()> {
            let crate::mem::MemBatch { ops, on_ok, on_fail } = batch;
            let bytes = &mut self.bytes;
            let mut ops = ops.inspect(|op| *bytes += op.buf.len() as u64);
            crate::mem::MemBatch::with(&mut ops, on_ok, on_fail, |b| self.mem.phys_read_batch(b))
        }

        fn phys_write_batch(&mut self, batch: crate::mem::PhysWriteBatch) -> Result<()> {
            self.mem.phys_write_batch(batch)
        }

        fn metadata(&self) -> crate::mem::PhysicalMemoryMetadata {
            self.mem.metadata()
        }

        fn mem_map_callback(&self, _: crate::mem::MemMappingCallback) -> Result<()> {
            Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::Unsupported))
        }

        fn set_mem_map(&mut self, _: &[crate::mem::MemMapping]) {}
    }

    /// One page at a huge address of a connector that does not know its map: the scan does
    /// not read through the span below it, it stops after the hole budget in each mode.
    #[test]
    fn holes_end_the_scan_without_a_memory_map() {
        let mut map = crate::mem::MemoryMap::new();
        map.push(Address::new(1 << 48), 0x1000, 0).unwrap();
        let mut mem = NoMap { mem: crate::connector::dummy_memory_with_map(map).unwrap(), bytes: 0 };
        assert_eq!(find_kernel_tables(&mut mem).unwrap_err().kind, ErrorKind::NotFound);
        let per_mode = (MAX_SCAN_HOLE_PAGES << 12) + (SCAN_CHUNK << 14) as u64;
        assert!(mem.bytes <= MODES.len() as u64 * per_mode, "{} bytes read", mem.bytes);
    }
}
