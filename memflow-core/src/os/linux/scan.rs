//! Finding the kernel, the steps every architecture shares: reading the kernel image a table
//! root maps, finding the kallsyms tables in it, then switching to the top-level table the
//! kernel itself names. Where the image is and which table roots to try is the
//! per-architecture part ([`super::arch`]).

use cglue::forward::ForwardMut;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, Result};
use crate::mem::alloc::zeroed_vec;
use crate::mem::{MemMapping, MemoryView, PhysicalMemory};
use crate::translate::{MemoryRange, TranslationRange, VirtualTranslate};
use crate::types::{umem, Address};
use crate::virt::VirtualDma;

use super::arch::LinuxArch;
use super::kallsyms::Kallsyms;
use super::limits::{
    MAX_IMAGE, MAX_KERNEL_HALF_RANGES, MAX_PHYS_ADDRESS, MAX_SCANNED_IMAGE_BYTES, MAX_SCANNED_TABLES,
    MAX_SCAN_HOLE_PAGES, MAX_SCAN_RANGES,
};

/// Mapped pieces of the image this far apart still belong to it (freed init memory and the
/// gaps between text, read-only data and data are unmapped).
const IMAGE_GAP: umem = 16 << 20;
/// The smallest kernel image accepted.
const MIN_IMAGE: umem = 2 << 20;

/// The kernel found in physical memory.
pub struct FoundKernel {
    /// The paging mode.
    pub arch: ArchitectureIdent,
    /// Physical address of the kernel's top-level page table (x86-64: CR3; AArch64: TTBR1; RISC-V: `swapper_pg_dir`, whose page number `satp` holds).
    pub root: Address,
    /// The first mapped address of the image.
    pub image_base: Address,
    /// The bytes of the image from `image_base` (unmapped parts zero).
    pub image: Vec<u8>,
    /// The kernel's symbols.
    pub kallsyms: Kallsyms,
}

/// What trying a table root gave.
pub(super) enum Tried {
    /// No kernel image is mapped, or the same image as by a root tried before.
    NoImage,
    /// An image is mapped at this address, but no kallsyms tables were found in it: none
    /// (`NotFound`), or the search hit a limit (`LimitExceeded`).
    NoKallsyms(Address, ErrorKind),
    /// The kernel.
    Found(FoundKernel),
}

/// The images tried so far.
pub(super) struct Images {
    /// Address and physical address of each.
    seen: Vec<(Address, Address)>,
    /// Bytes that may still be read (see [`MAX_SCANNED_IMAGE_BYTES`]).
    bytes_left: u64,
}

impl Images {
    /// None tried yet.
    pub fn new() -> Images {
        Images { seen: Vec::new(), bytes_left: MAX_SCANNED_IMAGE_BYTES }
    }
}

/// The image whose first mapped range is `ranges[0]` in `view` (the tables at `root` in mode
/// `arch`), taking in the following ranges up to gaps of [`IMAGE_GAP`] and [`MAX_IMAGE`] bytes
/// in all, and its kallsyms tables. Every process's tables map the kernel the same way: an
/// image at an address and physical address in `images` is not read again, and no image is
/// read once `images` has no bytes left.
pub(super) fn read_image<V: MemoryView + VirtualTranslate>(
    view: &mut V,
    arch: ArchitectureIdent,
    root: Address,
    ranges: &[MemoryRange],
    images: &mut Images,
) -> Result<Tried> {
    let Some(first) = ranges.first() else { return Ok(Tried::NoImage) };
    let image_base = first.base;
    let Ok(image_phys) = view.virt_to_phys(image_base) else { return Ok(Tried::NoImage) };
    if images.seen.contains(&(image_base, image_phys.address)) {
        return Ok(Tried::NoImage);
    }
    images.seen.push((image_base, image_phys.address));
    let mut end = image_base;
    for r in ranges {
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

/// The error for a kernel image at `base` whose kallsyms search (see [`Tried::NoKallsyms`])
/// ended with `kind`.
pub(super) fn no_kallsyms(base: Address, kind: ErrorKind) -> Error {
    match kind {
        ErrorKind::NotFound => Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
            .with_reason(format_args!("no kallsyms tables found in the kernel image at {base} (CONFIG_KALLSYMS)")),
        kind => Error::new(ErrorOrigin::Os, kind).with_reason(format_args!(
            "no kallsyms tables found in the kernel image at {base}: the search hit a limit"
        )),
    }
}

/// Switches to the paging mode `arch` the kernel runs in (an x86-64 kernel with 5-level
/// paging is found through its 4th-level table, read as a 4-level one) and to the top-level
/// table the kernel itself names (`init_top_pgt` on x86-64, `swapper_pg_dir`), where the
/// tables found so far map it and it maps the same image; otherwise (logged) keeps the tables
/// found.
pub(super) fn finish<P: PhysicalMemory>(
    mem: &mut P,
    mut found: FoundKernel,
    arch: ArchitectureIdent,
) -> Result<FoundKernel> {
    let family = LinuxArch::of(found.arch)?;
    let mut view = VirtualDma::new(mem.forward_mut(), found.arch, &family.kernel_roots(found.root))?;
    found.arch = arch;
    let top = found.kallsyms.lookup("init_top_pgt").or_else(|| found.kallsyms.lookup("swapper_pg_dir"));
    match top.map(|top| view.virt_to_phys(top)) {
        Some(Ok(root)) => {
            let mut check = VirtualDma::new(mem.forward_mut(), arch, &family.kernel_roots(root.address))?;
            let mut head = [0u8; 64];
            let same =
                check.read_raw_into(found.image_base, &mut head).is_ok() && head[..] == found.image[..head.len()];
            if same {
                found.root = root.address;
            } else {
                log::warn!(
                    "linux: the kernel's top-level table does not map its image; keeping the tables at {}",
                    found.root
                );
            }
        }
        Some(Err(e)) => {
            log::warn!(
                "linux: cannot translate the kernel's top-level table ({e}); keeping the tables at {}",
                found.root
            )
        }
        None => log::info!("linux: no init_top_pgt or swapper_pg_dir symbol; keeping the tables at {}", found.root),
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

/// Tables read per batch by [`scan_tables`].
pub(super) const SCAN_CHUNK: usize = 256;

/// The highest physical address a scan of `mem` visits.
pub(super) fn scan_max<P: PhysicalMemory>(mem: &P) -> Address {
    mem.metadata().max_address.min(Address::new(MAX_PHYS_ADDRESS as umem))
}

/// The kernel tables a table scan of `arch` (`ARM64`, `RISC-V`) found; `None`, logged, when
/// it found none (`NotFound`) or gave up among its candidates (`LimitExceeded`): then the
/// guest is not of that architecture. Other errors pass through.
pub(super) fn found_or_none<T>(found: Result<T>, arch: &str) -> Result<Option<T>> {
    match found {
        Ok(tables) => Ok(Some(tables)),
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::LimitExceeded) => {
            log::info!("linux: no {arch} kernel tables: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Scans physical memory once for the top-level table of any of `modes`, each given with
/// the size its tables are aligned to (a power of two; a page, where the table lies): at
/// every address in ascending order, each mode in the order given whose alignment the address
/// has, calls `accept` with the mode and the address if `looks_like` accepts the bytes there
/// (`size` of them), and returns the first mode and address it accepts. At
/// [`MAX_SCANNED_TABLES`] tables given to `accept` the search fails with `LimitExceeded`.
/// The scan visits the connector's memory map ([`scan_ranges`]) in pieces aligned to the
/// largest size (a range's unaligned head and tail hold no table); it ends once it has seen
/// as many bytes as the connector backs (`real_size`) or, for a connector that does not know
/// its map, after [`MAX_SCAN_HOLE_PAGES`] pages it could not read. `what` names the search
/// in messages.
pub(super) fn scan_tables<P: PhysicalMemory, M: Copy>(
    mem: &mut P,
    modes: &[(M, usize)],
    what: &str,
    mut looks_like: impl FnMut(M, &[u8]) -> bool,
    mut accept: impl FnMut(&mut P, M, Address) -> Result<bool>,
) -> Result<Option<(M, Address)>> {
    let (Some(stride), Some(largest)) =
        (modes.iter().map(|&(_, size)| size).min(), modes.iter().map(|&(_, size)| size).max())
    else {
        return Ok(None);
    };
    let real_size = mem.metadata().real_size;
    let ranges = scan_ranges(mem, scan_max(mem))?;
    // Unknown (0) means: no early end.
    let backed_bytes = if real_size == 0 { umem::MAX } else { real_size };
    let mut chunk: Vec<u8> = zeroed_vec(SCAN_CHUNK * largest, ErrorOrigin::Os, "the table scan")?;
    let (mut backed, mut holes, mut validated): (umem, u64, usize) = (0, 0, 0);
    for &(first, last) in &ranges {
        let mut page = first.align_up(largest as umem);
        while page < last {
            let len = ((last - page) as usize + 1).min(chunk.len()) & !(largest - 1);
            if len == 0 {
                break;
            }
            if backed >= backed_bytes {
                return Ok(None);
            }
            if holes >= MAX_SCAN_HOLE_PAGES {
                log::warn!("{what}: table scan stopped at {page} after {holes} pages of holes in physical memory");
                return Ok(None);
            }
            // Unreadable pieces (holes inside a range) hold no table.
            if mem.phys_view().read_raw_into(page, &mut chunk[..len]).is_err() {
                chunk[..len].fill(0);
                holes += len as u64 / 0x1000;
            } else {
                backed += len as umem;
            }
            for at in (0..len).step_by(stride) {
                for &(mode, size) in modes.iter().filter(|&&(_, size)| at % size == 0) {
                    if !looks_like(mode, &chunk[at..at + size]) {
                        continue;
                    }
                    let candidate = page + at as umem;
                    if accept(mem, mode, candidate)? {
                        return Ok(Some((mode, candidate)));
                    }
                    validated += 1;
                    if validated >= MAX_SCANNED_TABLES {
                        return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded).with_reason(format_args!(
                            "{what}: {MAX_SCANNED_TABLES} candidate top-level tables, none the kernel's"
                        )));
                    }
                }
            }
            page += len as umem;
        }
    }
    Ok(None)
}

/// True if `view` (the address space of the tables at physical `root`) maps at least half
/// of `ram` bytes between `start` and `end`, the page of `root` among them: the kernel's
/// linear map of RAM. The walk stops once that is certain, or once more is mapped there
/// than physical addresses up to `max` span: then it is no linear map.
pub(super) fn maps_ram_linearly<V: VirtualTranslate>(
    view: &mut V,
    (start, end): (Address, Address),
    root: Address,
    ram: umem,
    max: Address,
) -> Result<bool> {
    let span = max.to_umem().saturating_add(1);
    let (mut mapped, mut maps_itself): (umem, bool) = (0, false);
    let mut range = |r: TranslationRange| {
        mapped = mapped.saturating_add(r.size);
        maps_itself |= r.pa <= root && root - r.pa < r.size;
        !(maps_itself && mapped >= ram / 2) && mapped <= span
    };
    view.virt_translation_map_range(start, end, (&mut range).into())?;
    Ok(maps_itself && mapped >= ram / 2 && mapped <= span)
}

/// The mapped ranges of `view` between `start` and `end` from the first one whose bytes at
/// `magic_at` are `magic` (a boot image header: the kernel image's first page) on; `None` if
/// no range starts with it. At most [`MAX_KERNEL_HALF_RANGES`] ranges are looked at.
pub(super) fn ranges_from_magic<V: MemoryView + VirtualTranslate>(
    view: &mut V,
    (start, end): (Address, Address),
    magic_at: umem,
    magic: [u8; 4],
) -> Result<Option<Vec<MemoryRange>>> {
    let mut ranges = Vec::new();
    let mut add = |r: MemoryRange| {
        ranges.push(r);
        ranges.len() < MAX_KERNEL_HALF_RANGES
    };
    view.virt_page_map_range(0, start, end, (&mut add).into())?;
    if ranges.len() >= MAX_KERNEL_HALF_RANGES {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
            .with_reason(format_args!("linux: {start}..{end} has at least {MAX_KERNEL_HALF_RANGES} mapped ranges")));
    }
    let mut magics: Vec<(Address, [u8; 4])> = ranges.iter().map(|r| (r.base + magic_at, [0; 4])).collect();
    if let Err(PartialError::Error(e)) = view.read_many(&mut magics) {
        return Err(e);
    }
    Ok(magics.iter().position(|(_, m)| *m == magic).map(|first| ranges.split_off(first)))
}

/// The ranges of physical memory a scan visits, as (first, last) addresses clamped to
/// `max`: the connector's memory map, or everything up to `max` when the connector does not
/// know its map (then the scan's hole budget bounds it).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dummy::patterned_memory;

    /// One pass: addresses in ascending order, at each the modes in the order given, each
    /// only where the address has its alignment and with its size of bytes.
    #[test]
    fn one_pass_offers_each_address_to_the_modes_aligned_to_it() {
        let mut mem = patterned_memory(1 << 20);
        let modes = [("small", 0x1000), ("large", 0x4000)];
        let mut offered = Vec::new();
        let looks_like = |mode, bytes: &[u8]| bytes.len() == if mode == "small" { 0x1000 } else { 0x4000 };
        let accept = |_: &mut _, mode, at: Address| {
            offered.push((mode, at.to_umem() as u64));
            Ok(mode == "large" && at.to_umem() == 0x8000)
        };
        let found = scan_tables(&mut mem, &modes, "test", looks_like, accept).unwrap();
        assert_eq!(found, Some(("large", Address::new(0x8000))));
        let mut want = Vec::new();
        for at in (0..=0x8000).step_by(0x1000) {
            want.push(("small", at));
            if at % 0x4000 == 0 {
                want.push(("large", at));
            }
        }
        assert_eq!(offered, want);
    }
}
