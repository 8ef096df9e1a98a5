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
//! Once kallsyms is decoded, the kernel says how it runs: `__pgtable_l5_enabled` gives the
//! paging mode and `init_top_pgt` (the kernel's own top-level table, also known as
//! `swapper_pg_dir`) the root used from then on.

use cglue::forward::ForwardMut;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, PartialResultExt, Result};
use crate::mem::{MemoryView, PhysicalMemory};
use crate::translate::VirtualTranslate;
use crate::types::{umem, Address};
use crate::virt::VirtualDma;

use super::kallsyms::Kallsyms;

/// `__START_KERNEL_map`: where the kernel image mapping starts.
pub const KERNEL_MAP: umem = 0xffff_ffff_8000_0000;
/// The end of the image mapping window (`MODULES_VADDR` with a 1 GiB image window).
pub const KERNEL_MAP_END: umem = 0xffff_ffff_c000_0000;
/// Mapped pieces of the image this far apart still belong to it (freed init memory and the
/// gaps between text, read-only data and data are unmapped).
const IMAGE_GAP: umem = 16 << 20;
/// The largest kernel image read.
const MAX_IMAGE: umem = 256 << 20;
/// The smallest kernel image accepted.
const MIN_IMAGE: umem = 2 << 20;
/// Physical pages whose top entries are checked per batch while scanning.
const SCAN_BATCH: usize = 4096;
/// The most scanned candidates tried.
const MAX_SCANNED: usize = 64;
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

fn error(kind: ErrorKind, what: core::fmt::Arguments) -> Error {
    Error::new(ErrorOrigin::Os, kind).log_warn(what)
}

/// Finds the kernel, trying `hints` (paging mode and table root, e.g. from CR3) first and
/// scanning physical memory after them.
pub fn find_kernel<P: PhysicalMemory>(mem: &mut P, hints: &[(ArchitectureIdent, Address)]) -> Result<FoundKernel> {
    let mut tried = Vec::new();
    let mut images = Vec::new();
    let mut image_without_kallsyms = None;
    let mut attempt = |mem: &mut P, arch, root| -> Result<Option<FoundKernel>> {
        if tried.contains(&(arch, root)) {
            return Ok(None);
        }
        tried.push((arch, root));
        Ok(match try_root(mem, arch, root, &mut images)? {
            Tried::Found(found) => Some(found),
            Tried::NoKallsyms(base) => {
                image_without_kallsyms = Some(base);
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
        Ok(found.is_none() && scanned < MAX_SCANNED)
    })?;
    match (found, image_without_kallsyms) {
        (Some(found), _) => finish(mem, found),
        (None, Some(base)) => Err(error(
            ErrorKind::NotFound,
            format_args!("no kallsyms tables found in the kernel image at {base} (CONFIG_KALLSYMS)"),
        )),
        (None, None) => Err(error(
            ErrorKind::NotFound,
            format_args!("no kernel image found: no page table maps one at {KERNEL_MAP:#x}"),
        )),
    }
}

/// What trying a table root gave.
enum Tried {
    /// No kernel image is mapped, or the same image as by a root tried before.
    NoImage,
    /// An image is mapped at this address, but it holds no kallsyms tables.
    NoKallsyms(Address),
    /// The kernel.
    Found(FoundKernel),
}

/// The image mapped by the tables at `root`, and its kallsyms tables. Every process's tables
/// map the kernel the same way: an image at an address and physical address in `images`
/// (where those tried so far are kept) is not read again.
fn try_root<P: PhysicalMemory>(
    mem: &mut P,
    arch: ArchitectureIdent,
    root: Address,
    images: &mut Vec<(Address, Address)>,
) -> Result<Tried> {
    let mut view = VirtualDma::new(mem.forward_mut(), arch, &[root])?;
    let ranges = view.virt_page_map_range_vec(0, Address::new(KERNEL_MAP), Address::new(KERNEL_MAP_END))?;
    let Some(first) = ranges.first() else { return Ok(Tried::NoImage) };
    let image_base = first.address;
    let Ok(image_phys) = view.virt_to_phys(image_base) else { return Ok(Tried::NoImage) };
    if images.contains(&(image_base, image_phys.address)) {
        return Ok(Tried::NoImage);
    }
    images.push((image_base, image_phys.address));
    let mut end = image_base;
    for r in &ranges {
        if r.address - end > IMAGE_GAP || (r.address + r.size) - image_base > MAX_IMAGE {
            break;
        }
        end = r.address + r.size;
    }
    let len = end - image_base;
    if len < MIN_IMAGE {
        return Ok(Tried::NoImage);
    }
    let mut image = vec![0u8; len as usize];
    match view.read_raw_into(image_base, &mut image) {
        Ok(()) | Err(PartialError::PartialRead(())) => {}
        Err(e) => return Err(Error::from(e)),
    }
    Ok(match Kallsyms::find(&image) {
        Ok(kallsyms) => Tried::Found(FoundKernel { arch, root, image_base, image, kallsyms }),
        Err(_) => Tried::NoKallsyms(image_base),
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

/// Calls `candidate` with every physical page that looks like a kernel top-level table (see
/// the module docs), in ascending order, until it returns `false`.
fn scan_top_tables<P: PhysicalMemory>(
    mem: &mut P,
    mut candidate: impl FnMut(&mut P, Address) -> Result<bool>,
) -> Result<()> {
    let max = mem.metadata().max_address;
    let mut page = Address::NULL;
    let mut last_entries = vec![(Address::NULL, 0u64); SCAN_BATCH];
    while page <= max {
        for (i, slot) in last_entries.iter_mut().enumerate() {
            *slot = (page + (i as umem * 0x1000 + 0xff8), 0);
        }
        // Pages outside the memory map read as zero: no candidate.
        if let Err(PartialError::Error(e)) = mem.phys_view().read_many(&mut last_entries) {
            return Err(e);
        }
        for &(at, entry) in &last_entries {
            // Present, writable, no large page: a table entry (the kernel sets the user bit in
            // upper-level entries too; the leaves decide).
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
        page = match page.checked_add(SCAN_BATCH as umem * 0x1000) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(())
}
