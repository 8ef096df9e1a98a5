//! x86-64 guests: the kernel's page tables and image, from the CPU state or physical memory.
//!
//! On x86-64 the kernel image is mapped in the 1 GiB above `__START_KERNEL_map`
//! (`0xffffffff80000000`; with KASLR at a random 2 MiB step inside it), and the boot code
//! unmaps the rest of that window, so the first mapped page there is the start of the image.
//! A top-level table is accepted when the image it maps holds the kallsyms tables. Candidates
//! are tried in order:
//!
//! 1. the root of every CPU's CR3 in the connector's CPU state (paging mode from CR4.LA57),
//!    first with bit 12 cleared, then as it is (with page-table isolation a CPU in user mode
//!    runs on the user copy of the tables, the page after the kernel copy, which maps the
//!    kernel's entry code but not its data);
//! 2. every physical page whose last entry (the one that maps the image) is a present,
//!    writable table entry and whose other entries look like table entries too,
//!    read as a 4-level table. On a 5-level kernel this finds the 4th-level table of the
//!    image, which maps the image just the same.
//!
//! The scan is bounded by what exists, not by the address span: it visits the ranges of the
//! connector's memory map (at most [`MAX_SCAN_RANGES`]), so memory declared at a huge address
//! costs only its own pages. It ends once it has seen as many backed pages as the connector
//! reports (`real_size`), at the 52-bit physical address limit ([`MAX_PHYS_ADDRESS`]), or,
//! for a connector that does not know its map, after [`MAX_SCAN_HOLE_PAGES`] unbacked pages. It tries at most [`MAX_SCANNED_TABLES`] tables
//! and reads at most [`MAX_SCANNED_IMAGE_BYTES`] of candidate images in all.
//!
//! Once kallsyms is decoded, the kernel says how it runs: `__pgtable_l5_enabled` gives the
//! paging mode (and `init_top_pgt` the root used from then on, see `scan.rs`).

use cglue::forward::ForwardMut;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::{MemBatch, MemOp, MemoryView, PhysicalMemory, ReadChunk};
use crate::translate::VirtualTranslate;
use crate::types::{umem, Address};
use crate::virt::VirtualDma;

use super::LinuxArch;
use crate::os::linux::limits::{MAX_PHYS_ADDRESS, MAX_SCANNED_TABLES, MAX_SCAN_HOLE_PAGES};
use crate::os::linux::scan::{finish, no_kallsyms, read_image, scan_ranges, FoundKernel, Images, Tried};

/// `__START_KERNEL_map`: where the kernel image mapping starts.
pub const KERNEL_MAP: umem = 0xffff_ffff_8000_0000;
/// The end of the image mapping window (`MODULES_VADDR` with a 1 GiB image window).
pub const KERNEL_MAP_END: umem = 0xffff_ffff_c000_0000;
/// Physical pages whose top entries are checked per batch while scanning.
const SCAN_BATCH: usize = 4096;
/// Bit 12 of CR3 selects the user copy of the tables under page-table isolation.
const PTI_USER_BIT: umem = 0x1000;

/// Finds the kernel, trying the x86-64 `hints` (paging mode and table root, e.g. from CR3)
/// first and scanning physical memory after them; the paging mode is the one the kernel
/// names.
pub fn find_kernel<P: PhysicalMemory>(mem: &mut P, hints: &[(ArchitectureIdent, Address)]) -> Result<FoundKernel> {
    let mut tried = Vec::new();
    let mut images = Images::new();
    let mut image_without_kallsyms = None;
    let mut attempt = |mem: &mut P, arch, root| -> Result<Option<FoundKernel>> {
        if tried.contains(&(arch, root)) {
            return Ok(None);
        }
        tried.push((arch, root));
        Ok(match try_root(mem, arch, root, &mut images)? {
            Tried::Found(found) => Some(found),
            Tried::NoKallsyms(base, kind) => {
                image_without_kallsyms = Some((base, kind));
                None
            }
            Tried::NoImage => None,
        })
    };
    let hints: Vec<_> = hints.iter().filter(|(arch, _)| LinuxArch::of(*arch).ok() == Some(LinuxArch::X86_64)).collect();
    for &&(arch, root) in &hints {
        for root in [Address::new(root.to_umem() & !PTI_USER_BIT), root] {
            if let Some(found) = attempt(mem, arch, root)? {
                return finish_x86(mem, found);
            }
        }
    }
    if !hints.is_empty() {
        log::info!("linux: no kernel with kallsyms behind the CPU's page tables; scanning physical memory");
    }
    let mut scanned = 0;
    let mut found = None;
    scan_top_tables(mem, |mem, root| {
        scanned += 1;
        found = attempt(mem, ArchitectureIdent::X86_64, root)?;
        Ok(found.is_none() && scanned < MAX_SCANNED_TABLES)
    })?;
    match (found, image_without_kallsyms) {
        (Some(found), _) => finish_x86(mem, found),
        (None, Some((base, kind))) => Err(no_kallsyms(base, kind)),
        (None, None) => Err(Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
            .with_reason(format_args!("no kernel image found: no page table maps one at {KERNEL_MAP:#x}"))),
    }
}

/// The image mapped by the tables at `root` (the first mapped page at or above
/// [`KERNEL_MAP`]), and its kallsyms tables.
fn try_root<P: PhysicalMemory>(
    mem: &mut P,
    arch: ArchitectureIdent,
    root: Address,
    images: &mut Images,
) -> Result<Tried> {
    let mut view = VirtualDma::new(mem.forward_mut(), arch, &[root])?;
    let ranges = view.virt_page_map_range_vec(0, Address::new(KERNEL_MAP), Address::new(KERNEL_MAP_END))?;
    read_image(&mut view, arch, root, &ranges, images)
}

/// The kernel in the paging mode it names (`__pgtable_l5_enabled`, where it can be read;
/// otherwise, logged, the mode it was found with) and the tables it names.
fn finish_x86<P: PhysicalMemory>(mem: &mut P, found: FoundKernel) -> Result<FoundKernel> {
    let mut arch = found.arch;
    if let Some(l5) = found.kallsyms.lookup("__pgtable_l5_enabled") {
        let mut view = VirtualDma::new(mem.forward_mut(), found.arch, &[found.root])?;
        match view.read::<u32>(l5).data() {
            Ok(0) => arch = ArchitectureIdent::X86_64,
            Ok(_) => arch = ArchitectureIdent::X86_64La57,
            Err(e) => log::warn!("linux: cannot read __pgtable_l5_enabled ({e}); keeping {arch:?}"),
        }
    }
    finish(mem, found, arch)
}

/// True if `entry` could be an entry of a top-level kernel table: not present, or present
/// with an address inside physical memory and no reserved bits.
fn plausible_entry(entry: u64, max_address: Address) -> bool {
    let addr = Address::new((entry & 0x000f_ffff_ffff_f000) as umem);
    entry & 1 == 0 || (entry & (1 << 7) == 0 && entry & 0x7ff0_0000_0000_0000 == 0 && addr <= max_address)
}

/// Calls `candidate` with every physical page that looks like a kernel top-level table (see
/// the module docs), in ascending order, until it returns `false`.
fn scan_top_tables<P: PhysicalMemory>(
    mem: &mut P,
    mut candidate: impl FnMut(&mut P, Address) -> Result<bool>,
) -> Result<()> {
    let meta = mem.metadata();
    let max = meta.max_address.min(Address::new(MAX_PHYS_ADDRESS as umem));
    // Unknown (0) means: no early end.
    let backed_pages = match (meta.real_size as u64).div_ceil(0x1000) {
        0 => u64::MAX,
        n => n,
    };
    let (mut backed, mut holes) = (0u64, 0u64);
    let mut last_entries = vec![(Address::NULL, 0u64); SCAN_BATCH];
    for (first, last) in scan_ranges(mem, max)? {
        let mut page = first.align_down(0x1000);
        while page <= last {
            for (i, slot) in last_entries.iter_mut().enumerate() {
                *slot = (page + (i as umem * 0x1000 + 0xff8), 0);
            }
            // Pages outside the memory map read as zero: no candidate.
            let failed = read_counting_failures(mem, &mut last_entries)?;
            backed += (SCAN_BATCH - failed) as u64;
            holes += failed as u64;
            for &(at, entry) in &last_entries {
                // Present, writable, no large page: a table entry (the kernel sets the user bit
                // in upper-level entries too; the leaves decide).
                if entry & 0x83 != 0x03 || !plausible_entry(entry, max) {
                    continue;
                }
                let table_at = at.align_down(0x1000);
                let mut table = [0u64; 512];
                if mem.phys_view().read_into(table_at, &mut table).is_err() {
                    continue;
                }
                let kernel_half = table[256..].iter().filter(|&&e| e & 1 == 1).count();
                if kernel_half >= 2 && table.iter().all(|&e| plausible_entry(e, max)) && !candidate(mem, table_at)? {
                    return Ok(());
                }
            }
            if backed >= backed_pages {
                return Ok(());
            }
            if holes >= MAX_SCAN_HOLE_PAGES {
                log::warn!("linux: page table scan stopped at {page} after {holes} pages of holes in physical memory");
                return Ok(());
            }
            page = match page.checked_add(SCAN_BATCH as umem * 0x1000) {
                Some(next) => next,
                None => break,
            };
        }
    }
    Ok(())
}

/// Reads the `u64` at each address of `items` in one batch; what cannot be read is zero.
/// Returns how many items (pieces of them, strictly) could not be read.
fn read_counting_failures<P: PhysicalMemory>(mem: &mut P, items: &mut [(Address, u64)]) -> Result<usize> {
    let mut failed = 0;
    let mut on_fail = |mut chunk: ReadChunk| {
        chunk.buf.fill(0);
        failed += 1;
        true
    };
    let ops =
        items.iter_mut().map(|(at, v)| MemOp { addr: (*at).into(), tag: *at, buf: bytemuck::bytes_of_mut(v).into() });
    MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), |b| mem.phys_read_batch(b))?;
    Ok(failed.min(items.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::dummy_memory_with_map;
    use crate::mem::{MemMapping, MemoryMap, PhysReadBatch, PhysWriteBatch, PhysicalMemoryMetadata};
    use crate::os::linux::limits::MAX_SCAN_RANGES;

    /// Physical memory that counts the pages whose last entry the scan probes, and tells its
    /// memory map or (`map_known == false`) does not.
    struct Counting<P> {
        mem: P,
        probes: u64,
        map_known: bool,
    }

    impl<P: PhysicalMemory> PhysicalMemory for Counting<P> {
        fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
            let MemBatch { ops, on_ok, on_fail } = batch;
            let probes = &mut self.probes;
            let mut ops = ops.inspect(|op| *probes += u64::from(op.addr.address.page_offset(0x1000) == 0xff8));
            MemBatch::with(&mut ops, on_ok, on_fail, |b| self.mem.phys_read_batch(b))
        }

        fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
            self.mem.phys_write_batch(batch)
        }

        fn metadata(&self) -> PhysicalMemoryMetadata {
            self.mem.metadata()
        }

        fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
            if !self.map_known {
                return Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::Unsupported));
            }
            self.mem.mem_map_callback(callback)
        }

        fn set_mem_map(&mut self, _map: &[MemMapping]) {}
    }

    fn scan_probes<P: PhysicalMemory>(mem: P, map_known: bool) -> (u64, Result<FoundKernel>) {
        let mut mem = Counting { mem, probes: 0, map_known };
        let res = find_kernel(&mut mem, &[]);
        (mem.probes, res)
    }

    #[test]
    fn memory_at_huge_addresses_is_not_scanned_through() {
        for at in [1u64 << 40, 1 << 52, 1 << 63] {
            let mut map = MemoryMap::new();
            map.push(Address::new(at as umem), 0x1000, 0).unwrap();
            // With the map: the one page (in one batch), nothing of the span below it.
            let (probes, res) = scan_probes(dummy_memory_with_map(map.clone()).unwrap(), true);
            assert_eq!(res.err().map(|e| e.kind), Some(ErrorKind::NotFound), "page at {at:#x}");
            assert!(probes <= SCAN_BATCH as u64, "page at {at:#x}: {probes} pages probed");
            // Without it: the hole budget ends the scan.
            let (probes, res) = scan_probes(dummy_memory_with_map(map).unwrap(), false);
            assert_eq!(res.err().map(|e| e.kind), Some(ErrorKind::NotFound), "page at {at:#x}");
            assert!(probes <= MAX_SCAN_HOLE_PAGES + SCAN_BATCH as u64, "page at {at:#x}: {probes} pages probed");
        }
    }

    #[test]
    fn many_ranges_are_visited_and_too_many_refused() {
        // 4096 single pages spread over 2^60: each is probed, the span between them is not.
        let mut map = MemoryMap::new();
        for i in 0..4096u64 {
            map.push(Address::new((i << 48) as umem), 0x1000, (i * 0x1000) as umem).unwrap();
        }
        let (probes, res) = scan_probes(dummy_memory_with_map(map).unwrap(), true);
        assert_eq!(res.err().map(|e| e.kind), Some(ErrorKind::NotFound));
        assert!(probes <= 4096 * SCAN_BATCH as u64, "{probes} pages probed");

        let mut map = MemoryMap::new();
        for i in 0..=MAX_SCAN_RANGES as u64 {
            map.push(Address::new((i << 20) as umem), 0x1000, (i * 0x1000) as umem).unwrap();
        }
        let (probes, res) = scan_probes(dummy_memory_with_map(map).unwrap(), true);
        assert_eq!(res.err().map(|e| e.kind), Some(ErrorKind::LimitExceeded));
        assert_eq!(probes, 0);
    }

    #[test]
    fn the_scan_ends_with_the_backed_memory() {
        // 64 MiB at 0 and at 1 GiB: without the map, the scan ends after the second range,
        // having seen every backed page.
        let mut map = MemoryMap::new();
        map.push(Address::NULL, 64 << 20, 0).unwrap();
        map.push(Address::new(1 << 30), 64 << 20, 64 << 20).unwrap();
        map.push(Address::new(1 << 30), 64 << 20, 64 << 20).unwrap_err();
        let (probes, res) = scan_probes(dummy_memory_with_map(map.clone()).unwrap(), false);
        assert_eq!(res.err().map(|e| e.kind), Some(ErrorKind::NotFound));
        assert_eq!(probes, ((1 << 30) + (64 << 20)) / 0x1000);
        // With the map, the hole between the ranges is not visited either.
        let (probes, res) = scan_probes(dummy_memory_with_map(map).unwrap(), true);
        assert_eq!(res.err().map(|e| e.kind), Some(ErrorKind::NotFound));
        assert_eq!(probes, 2 * (64 << 20) / 0x1000);
    }
}
