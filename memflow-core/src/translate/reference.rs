//! A deliberately simple page walker: one address at a time, one entry read at a time, no
//! batching, sorting, windows, caches or chunked reads. It is the oracle the batched engine and
//! the depth-first page walk are tested against, and it shows every level's entry of one walk
//! ([`walk_levels`], for the CLI's `vtop`); use [`super::Translator`] for real work.
//!
//! It shares only the architecture description (and its [`Architecture::decode`]) with the
//! engine. [`for_each_page`] recurses through every present entry without any bound, so only
//! use it on sane tables.

use crate::arch::{Architecture, Denied, Entry};
use crate::error::Result;
use crate::mem::PhysicalMemory;
use crate::types::{umem, Address, PhysicalAddress};

use super::pages::Page;
use super::walk::{NOT_CANONICAL, NOT_MAPPED, TABLE_UNREADABLE};

/// Reads the entry at `addr`; `None` if any byte of it is unreadable.
fn read_entry<P: PhysicalMemory>(mem: &mut P, arch: &Architecture, addr: Address) -> Option<u64> {
    let mut bytes = [0u8; 8];
    let n = arch.entry_size();
    mem.phys_read_raw_into(PhysicalAddress::plain(addr), &mut bytes[..n]).ok()?;
    Some(arch.read_entry(&bytes))
}

/// One entry read on the way from a root table to a page (see [`walk_levels`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LevelEntry {
    /// The level (0 is the top table).
    pub level: usize,
    /// Physical address of the table the entry is in.
    pub table: Address,
    /// Physical address of the entry itself.
    pub entry_address: Address,
    /// The entry as read.
    pub raw: u64,
    /// What the entry says.
    pub decoded: Entry,
}

/// Translates `va` through the root registers `roots` (one per root of the architecture; a
/// missing one, or `Address::INVALID`, maps nothing).
pub fn translate<P: PhysicalMemory>(
    mem: &mut P,
    arch: &Architecture,
    roots: &[Address],
    va: Address,
) -> Result<PhysicalAddress> {
    walk_levels(mem, arch, roots, va, |_| {})
}

/// Translates `va` as [`translate`] does and calls `seen` with every entry read on the way,
/// top level first (what a debugger's `!pte` shows). A walk that stops early (an invalid
/// entry) has reported the entry that stopped it; an unreadable table reports nothing more.
pub fn walk_levels<P: PhysicalMemory>(
    mem: &mut P,
    arch: &Architecture,
    roots: &[Address],
    va: Address,
    mut seen: impl FnMut(LevelEntry),
) -> Result<PhysicalAddress> {
    let root = arch.root_index(va).ok_or(NOT_CANONICAL)?;
    let mut table = arch.root_table(*roots.get(root).filter(|&&r| r != Address::INVALID).ok_or(NOT_MAPPED)?);
    let mut denied = Denied::default();
    for (level, lvl) in arch.levels().iter().enumerate() {
        let entry_address = table + (lvl.index(va) * arch.entry_size()) as umem;
        let raw = read_entry(mem, arch, entry_address).ok_or(TABLE_UNREADABLE)?;
        let decoded = arch.decode(level, raw);
        seen(LevelEntry { level, table, entry_address, raw, decoded });
        match decoded {
            Entry::Invalid => return Err(NOT_MAPPED),
            Entry::Table { next, denied: d } => {
                table = next;
                denied = denied | d;
            }
            Entry::Page { base, denied: d } => {
                let pa = base + va.page_offset((1 as umem) << lvl.shift);
                return Ok(PhysicalAddress::with_page(pa, (denied | d).page_type(), lvl.shift));
            }
        }
    }
    Err(NOT_MAPPED)
}

/// Calls `found` for every page mapped anywhere, by recursing through every present entry.
pub fn for_each_page<P: PhysicalMemory>(
    mem: &mut P,
    arch: &Architecture,
    roots: &[Address],
    mut found: impl FnMut(Page),
) {
    for seg in arch.segments() {
        let Some(&root) = roots.get(seg.root).filter(|&&r| r != Address::INVALID) else { continue };
        let lvl = arch.levels()[0];
        // The top-level entries whose addresses fall inside this segment.
        let local = |a: Address| (a.to_umem() & (((1 as umem) << arch.va_bits()) - 1)) >> lvl.shift;
        let high = seg.first.to_umem() & !(((1 as umem) << arch.va_bits()) - 1);
        for idx in local(seg.first)..=local(seg.last) {
            let va = high | (idx << lvl.shift);
            visit(mem, arch, arch.root_table(root), idx as usize, 0, Address::new(va), Denied::default(), &mut found);
        }
    }
}

/// Visits entry `idx` of the `level` table at `table`, which maps `va` onwards.
#[allow(clippy::too_many_arguments)]
fn visit<P: PhysicalMemory>(
    mem: &mut P,
    arch: &Architecture,
    table: Address,
    idx: usize,
    level: usize,
    va: Address,
    denied: Denied,
    found: &mut impl FnMut(Page),
) {
    let lvl = arch.levels()[level];
    let Some(raw) = read_entry(mem, arch, table + (idx * arch.entry_size()) as umem) else { return };
    match arch.decode(level, raw) {
        Entry::Invalid => {}
        Entry::Page { base, denied: d } => {
            found(Page { va, pa: base, size_log2: lvl.shift, page_type: (denied | d).page_type() })
        }
        Entry::Table { next, denied: d } => {
            let child = arch.levels()[level + 1];
            for i in 0..child.entries() {
                let child_va = va + ((i as umem) << child.shift);
                visit(mem, arch, next, i, level + 1, child_va, denied | d, found);
            }
        }
    }
}
