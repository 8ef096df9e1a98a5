//! Finding the kernel: its page tables, its image and its symbol table, from physical memory.
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
//! paging mode and `init_top_pgt` (the kernel's own top-level table, also known as
//! `swapper_pg_dir`) the root used from then on.

use cglue::forward::ForwardMut;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, PartialResultExt, Result};
use crate::mem::{MemBatch, MemMapping, MemOp, MemoryView, PhysicalMemory, ReadChunk};
use crate::translate::VirtualTranslate;
use crate::types::{umem, Address};
use crate::virt::VirtualDma;

use super::kallsyms::Kallsyms;
use super::limits::{
    MAX_IMAGE, MAX_PHYS_ADDRESS, MAX_SCANNED_IMAGE_BYTES, MAX_SCANNED_TABLES, MAX_SCAN_HOLE_PAGES, MAX_SCAN_RANGES,
};

/// `__START_KERNEL_map`: where the kernel image mapping starts.
pub const KERNEL_MAP: umem = 0xffff_ffff_8000_0000;
/// The end of the image mapping window (`MODULES_VADDR` with a 1 GiB image window).
pub const KERNEL_MAP_END: umem = 0xffff_ffff_c000_0000;
/// Mapped pieces of the image this far apart still belong to it (freed init memory and the
/// gaps between text, read-only data and data are unmapped).
const IMAGE_GAP: umem = 16 << 20;
/// The smallest kernel image accepted.
const MIN_IMAGE: umem = 2 << 20;
/// Physical pages whose top entries are checked per batch while scanning.
const SCAN_BATCH: usize = 4096;
/// Bit 12 of CR3 selects the user copy of the tables under page-table isolation.
const PTI_USER_BIT: umem = 0x1000;

/// The kernel found in physical memory.
pub struct FoundKernel {
    /// The paging mode.
    pub arch: ArchitectureIdent,
    /// Physical address of the kernel's top-level page table.
    pub root: Address,
    /// The first mapped address of the image.
    pub image_base: Address,
    /// The bytes of the image from `image_base` (unmapped parts zero).
    pub image: Vec<u8>,
    /// The kernel's symbols.
    pub kallsyms: Kallsyms,
}

/// Finds the kernel, trying `hints` (paging mode and table root, e.g. from CR3) first and
/// scanning physical memory after them.
pub fn find_kernel<P: PhysicalMemory>(mem: &mut P, hints: &[(ArchitectureIdent, Address)]) -> Result<FoundKernel> {
    let mut tried = Vec::new();
    let mut images = Images { seen: Vec::new(), bytes_left: MAX_SCANNED_IMAGE_BYTES };
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
    for &(arch, root) in hints {
        for root in [Address::new(root.to_umem() & !PTI_USER_BIT), root] {
            if let Some(found) = attempt(mem, arch, root)? {
                return finish(mem, found);
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
        (Some(found), _) => finish(mem, found),
        (None, Some((base, ErrorKind::NotFound))) => Err(Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
            .with_reason(format_args!("no kallsyms tables found in the kernel image at {base} (CONFIG_KALLSYMS)"))),
        (None, Some((base, kind))) => Err(Error::new(ErrorOrigin::Os, kind).with_reason(format_args!(
            "no kallsyms tables found in the kernel image at {base}: the search hit a limit"
        ))),
        (None, None) => Err(Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
            .with_reason(format_args!("no kernel image found: no page table maps one at {KERNEL_MAP:#x}"))),
    }
}

/// What trying a table root gave.
enum Tried {
    /// No kernel image is mapped, or the same image as by a root tried before.
    NoImage,
    /// An image is mapped at this address, but no kallsyms tables were found in it: none
    /// (`NotFound`), or the search hit a limit (`LimitExceeded`).
    NoKallsyms(Address, ErrorKind),
    /// The kernel.
    Found(FoundKernel),
}

/// The images tried so far.
struct Images {
    /// Address and physical address of each.
    seen: Vec<(Address, Address)>,
    /// Bytes that may still be read (see [`MAX_SCANNED_IMAGE_BYTES`]).
    bytes_left: u64,
}

/// The image mapped by the tables at `root`, and its kallsyms tables. Every process's tables
/// map the kernel the same way: an image at an address and physical address in `images`
/// is not read again, and no image is read once `images` has no bytes left.
fn try_root<P: PhysicalMemory>(
    mem: &mut P,
    arch: ArchitectureIdent,
    root: Address,
    images: &mut Images,
) -> Result<Tried> {
    let mut view = VirtualDma::new(mem.forward_mut(), arch, &[root])?;
    let ranges = view.virt_page_map_range_vec(0, Address::new(KERNEL_MAP), Address::new(KERNEL_MAP_END))?;
    let Some(first) = ranges.first() else { return Ok(Tried::NoImage) };
    let image_base = first.base;
    let Ok(image_phys) = view.virt_to_phys(image_base) else { return Ok(Tried::NoImage) };
    if images.seen.contains(&(image_base, image_phys.address)) {
        return Ok(Tried::NoImage);
    }
    images.seen.push((image_base, image_phys.address));
    let mut end = image_base;
    for r in &ranges {
        if r.base - end > IMAGE_GAP || (r.base + r.size) - image_base > MAX_IMAGE as umem {
            break;
        }
        end = r.base + r.size;
    }
    let len = end - image_base;
    if len < MIN_IMAGE {
        return Ok(Tried::NoImage);
    }
    if len as u64 > images.bytes_left {
        log::warn!("linux: {MAX_SCANNED_IMAGE_BYTES:#x} bytes of candidate kernel images read; skipping the one at {image_base}");
        return Ok(Tried::NoImage);
    }
    images.bytes_left -= len as u64;
    let mut image = Vec::new();
    if image.try_reserve_exact(len as usize).is_err() {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::OutOfMemory)
            .with_reason(format_args!("no memory for the kernel image at {image_base} ({len:#x} bytes)")));
    }
    image.resize(len as usize, 0);
    match view.read_raw_into(image_base, &mut image) {
        Ok(()) | Err(PartialError::PartialRead(())) => {}
        Err(e) => return Err(Error::from(e)),
    }
    Ok(match Kallsyms::find(&image) {
        Ok(kallsyms) => Tried::Found(FoundKernel { arch, root, image_base, image, kallsyms }),
        Err(e) => Tried::NoKallsyms(image_base, e.kind),
    })
}

/// Switches to the paging mode and the top-level table the kernel itself names, where the
/// tables found so far map them; otherwise (logged) keeps what was found.
fn finish<P: PhysicalMemory>(mem: &mut P, mut found: FoundKernel) -> Result<FoundKernel> {
    let mut view = VirtualDma::new(mem.forward_mut(), found.arch, &[found.root])?;
    if let Some(l5) = found.kallsyms.lookup("__pgtable_l5_enabled") {
        match view.read::<u32>(l5).data() {
            Ok(0) => found.arch = ArchitectureIdent::X86_64,
            Ok(_) => found.arch = ArchitectureIdent::X86_64La57,
            Err(e) => log::warn!("linux: cannot read __pgtable_l5_enabled ({e}); keeping {:?}", found.arch),
        }
    }
    let top = found.kallsyms.lookup("init_top_pgt").or_else(|| found.kallsyms.lookup("swapper_pg_dir"));
    match top.map(|top| view.virt_to_phys(top)) {
        Some(Ok(root)) => {
            let mut check = VirtualDma::new(mem.forward_mut(), found.arch, &[root.address])?;
            let mut head = [0u8; 64];
            let same =
                check.read_raw_into(found.image_base, &mut head).is_ok() && head[..] == found.image[..head.len()];
            if same {
                found.root = root.address;
            } else {
                log::warn!("linux: init_top_pgt does not map the kernel image; keeping the tables at {}", found.root);
            }
        }
        Some(Err(e)) => log::warn!("linux: cannot translate init_top_pgt ({e}); keeping the tables at {}", found.root),
        None => log::info!("linux: no init_top_pgt symbol; keeping the tables at {}", found.root),
    }
    log::info!(
        "linux: kernel image at {} ({:#x} bytes mapped), {} symbols, {:?} tables at {}",
        found.image_base,
        found.image.len(),
        found.kallsyms.len(),
        found.arch,
        found.root
    );
    Ok(found)
}

/// True if `entry` could be an entry of a top-level kernel table: not present, or present
/// with an address inside physical memory and no reserved bits.
fn plausible_entry(entry: u64, max_address: Address) -> bool {
    let addr = Address::new((entry & 0x000f_ffff_ffff_f000) as umem);
    entry & 1 == 0 || (entry & (1 << 7) == 0 && entry & 0x7ff0_0000_0000_0000 == 0 && addr <= max_address)
}

/// The ranges of physical memory the scan visits, as (first, last) addresses clamped to
/// `max`: the connector's memory map, or everything up to `max` when the connector does not
/// know its map (then the hole budget bounds the scan).
pub(super) fn scan_ranges<P: PhysicalMemory>(mem: &P, max: Address) -> Result<Vec<(Address, Address)>> {
    let mut ranges = Vec::new();
    let mut too_many = false;
    let mut add = |range: MemMapping| {
        if ranges.len() >= MAX_SCAN_RANGES {
            too_many = true;
            return false;
        }
        if range.size > 0 && range.base <= max {
            let last = (range.end() - 1).min(max);
            ranges.push((range.base, last));
        }
        true
    };
    match mem.mem_map_callback((&mut add).into()) {
        Ok(()) if too_many => Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
            .with_reason(format_args!("linux: more than {MAX_SCAN_RANGES} physical memory ranges"))),
        Ok(()) => Ok(ranges),
        Err(e) if e.kind == ErrorKind::Unsupported => Ok(vec![(Address::NULL, max)]),
        Err(e) => Err(e),
    }
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
