//! ARM64 guests: the kernel's translation table root, found by scanning physical memory.
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
//! the image only. Supported: the 4 KiB granule with 48-bit virtual addresses (what a 52-bit
//! kernel falls back to without FEAT_LPA2).

use cglue::forward::ForwardMut;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::{MemoryView, PhysicalMemory};
use crate::translate::{TranslationRange, VirtualTranslate};
use crate::types::{umem, Address};
use crate::virt::VirtualDma;

use super::limits::{MAX_PHYS_ADDRESS, MAX_SCANNED_TABLES};
use super::scan::scan_ranges;

/// The translation mode searched for: 4 KiB granule, 48-bit virtual addresses.
pub const ARCH: ArchitectureIdent = ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 };
/// The first address of the TTBR1 range with 48-bit virtual addresses (`PAGE_OFFSET`).
const TTBR1_START: umem = 0xffff_0000_0000_0000;
/// The middle of the TTBR1 range: the linear map lies below it, the image above.
const LINEAR_END: umem = 0xffff_8000_0000_0000;
/// Pages read per batch while scanning.
const SCAN_CHUNK: usize = 256;
const PAGE: usize = 0x1000;
/// A table descriptor: valid and table bits set.
const TABLE: u64 = 0b11;
/// Bits of a table descriptor that must be clear: ignored bits 2..=11 (Linux leaves them
/// zero) and bits 48..=58 (no output address bits there without FEAT_LPA, reserved or
/// ignored).
const TABLE_MUST_BE_ZERO: u64 = 0x0000_0000_0000_0ffc | 0x07ff_0000_0000_0000;
/// The output address of a table descriptor.
const TABLE_ADDR: u64 = 0x0000_ffff_ffff_f000;

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
/// connector's memory map once, validates at most [`MAX_SCANNED_TABLES`] candidates, and
/// fails with `NotFound` if none is the kernel's.
pub fn find_kernel_tables<P: PhysicalMemory>(mem: &mut P) -> Result<KernelTables> {
    let meta = mem.metadata();
    let max = meta.max_address.min(Address::new(MAX_PHYS_ADDRESS as umem));
    let ram = meta.real_size;
    let mut chunk = vec![0u8; SCAN_CHUNK * PAGE];
    let mut validated = 0;
    for (first, last) in scan_ranges(mem, max)? {
        let mut page = first.align_up(PAGE as umem);
        while page < last {
            let len = ((last - page) as usize + 1).min(chunk.len()) & !(PAGE - 1);
            if len == 0 {
                break;
            }
            // Unreadable pieces (holes inside a range) hold no table.
            if mem.phys_view().read_raw_into(page, &mut chunk[..len]).is_err() {
                chunk[..len].fill(0);
            }
            for (i, table) in chunk[..len].chunks_exact(PAGE).enumerate() {
                if !looks_like_top_table(table, max) {
                    continue;
                }
                let candidate = page + (i * PAGE) as umem;
                if maps_ram_linearly(mem, candidate, ram, max)? {
                    return Ok(KernelTables { arch: ARCH, ttbr1: candidate });
                }
                validated += 1;
                if validated >= MAX_SCANNED_TABLES {
                    return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded).with_reason(format_args!(
                        "aarch64: {MAX_SCANNED_TABLES} candidate top-level tables, none the kernel's"
                    )));
                }
            }
            page += len as umem;
        }
    }
    Err(Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
        .with_reason("aarch64: no top-level table maps the guest's RAM linearly (4K granule, 48-bit VA)"))
}

/// True if the 512 entries of `table` are all empty or table descriptors to pages at most
/// `max`, with entries in both halves.
fn looks_like_top_table(table: &[u8], max: Address) -> bool {
    let (mut low, mut high) = (false, false);
    for (i, raw) in table.chunks_exact(8).enumerate() {
        let entry = u64::from_le_bytes(raw.try_into().unwrap_or_default());
        if entry == 0 {
            continue;
        }
        let addr = Address::new((entry & TABLE_ADDR) as umem);
        if entry & TABLE != TABLE || entry & TABLE_MUST_BE_ZERO != 0 || addr > max {
            return false;
        }
        if i < 256 {
            low = true;
        } else {
            high = true;
        }
    }
    low && high
}

/// True if the tables at `root` map at least half of `ram` bytes in the lower half of the
/// TTBR1 range, the page of `root` among them. The walk stops once that is certain, or once
/// more is mapped there than physical addresses up to `max` span: then it is no linear map.
fn maps_ram_linearly<P: PhysicalMemory>(mem: &mut P, root: Address, ram: umem, max: Address) -> Result<bool> {
    let mut view = VirtualDma::new(mem.forward_mut(), ARCH, &[Address::INVALID, root])?;
    let span = max.to_umem().saturating_add(1);
    let (mut mapped, mut maps_itself): (umem, bool) = (0, false);
    let mut range = |r: TranslationRange| {
        mapped = mapped.saturating_add(r.size);
        maps_itself |= r.pa <= root && root - r.pa < r.size;
        !(maps_itself && mapped >= ram / 2) && mapped <= span
    };
    view.virt_translation_map_range(Address::new(TTBR1_START), Address::new(LINEAR_END), (&mut range).into())?;
    Ok(maps_itself && mapped >= ram / 2 && mapped <= span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dummy::{patterned_memory, PageTableBuilder};
    use crate::types::PageType;

    const MEM: umem = 8 << 20;
    const BLOCK: umem = 2 << 20;

    /// Kernel tables (in the top 2 MiB of 8 MiB of memory) with one image page and, if
    /// `linear`, a linear map of all the memory in 2 MiB blocks.
    fn kernel(linear: bool) -> PageTableBuilder {
        let tables = Address::new(MEM - BLOCK)..Address::new(MEM);
        let mut b = PageTableBuilder::new(patterned_memory(MEM as usize), ARCH, tables).unwrap();
        b.map(Address::new(0xffff_8000_1000_0000), Address::new(BLOCK), 12, PageType::WRITEABLE).unwrap();
        for i in (0..MEM / BLOCK).filter(|_| linear) {
            b.map(Address::new(TTBR1_START + i * BLOCK), Address::new(i * BLOCK), 21, PageType::WRITEABLE).unwrap();
        }
        b
    }

    #[test]
    fn the_table_with_a_linear_map_is_found() {
        let b = kernel(true);
        let found = find_kernel_tables(&mut b.memory()).unwrap();
        assert_eq!(found, KernelTables { arch: ARCH, ttbr1: b.roots()[1] });
        assert_eq!(found.roots(), [Address::INVALID, b.roots()[1]]);
    }

    #[test]
    fn tables_without_a_linear_map_are_not_the_kernels() {
        let b = kernel(false);
        assert_eq!(find_kernel_tables(&mut b.memory()).unwrap_err().kind, ErrorKind::NotFound);
    }
}
