//! Walks the page-table tree of a virtual range depth first, level by level, skipping entries
//! that are not present, and reports every mapped page in ascending virtual order.
//!
//! Working memory is one chunk of entries per level ([`CHUNK_BYTES`] each); a table is read in
//! chunks, one physical read each. The number of entries inspected is capped by a budget
//! derived from the size of physical memory, so tables that point back at themselves end the
//! walk early (with a warning) instead of running for a very long time. Entries with any byte
//! that cannot be read count as not present.

use crate::arch::{Architecture, Decoder, Denied, Entry, MAX_LEVELS};
use cglue::slice::CSliceMut;

use super::walk::mark_failed;
use crate::error::Result;
use crate::mem::{MemBatch, MemChunk, MemOp, PhysicalMemory};
use crate::types::{umem, Address, PageType, PhysicalAddress};

/// Bytes of entries read at once per level.
pub const CHUNK_BYTES: usize = 4096;

/// A mapped page: found by a walk, or written by the synthetic page-table builder.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Page {
    /// The first virtual address of the page.
    pub va: Address,
    /// The first physical address of the page.
    pub pa: Address,
    /// log2 of the page size.
    pub size_log2: u8,
    /// The flags combined over every level.
    pub page_type: PageType,
}

impl Page {
    /// The page size in bytes.
    pub fn size(&self) -> umem {
        (1 as umem) << self.size_log2
    }

    /// The translation of `va` if this page holds it.
    pub fn translate(&self, va: Address) -> Option<Address> {
        (va >= self.va && va - self.va < self.size()).then(|| self.pa + (va - self.va))
    }
}

/// Reads consecutive entries at `addr` into `buf`; an entry with any unreadable byte is
/// zeroed (not present).
fn read_chunk<P: PhysicalMemory>(mem: &mut P, addr: Address, buf: &mut [u8], entry_size: usize) -> Result<()> {
    let mut failed = [false; CHUNK_BYTES / 4];
    let mut on_fail = |chunk: MemChunk<CSliceMut<u8>>| {
        mark_failed(&mut failed, chunk, entry_size);
        true
    };
    let op = MemOp {
        addr: PhysicalAddress::with_page(addr, PageType::PAGE_TABLE, 0),
        tag: Address::NULL,
        buf: (&mut *buf).into(),
    };
    mem.phys_read_batch(MemBatch {
        ops: (&mut core::iter::once(op)).into(),
        on_ok: None,
        on_fail: Some(&mut (&mut on_fail).into()),
    })?;
    for (entry, _) in buf.chunks_mut(entry_size).zip(failed).filter(|(_, f)| *f) {
        entry.fill(0);
    }
    Ok(())
}

/// One table being walked.
#[derive(Copy, Clone, Debug, Default)]
struct Frame {
    table: Address,
    /// The (segment-local) virtual address of entry 0.
    base: umem,
    next: usize,
    last: usize,
    denied: Denied,
    /// The entries `loaded..loaded + count` are in this level's chunk.
    loaded: usize,
    count: usize,
}

/// The working memory of depth-first walks.
#[derive(Debug, Default)]
pub(crate) struct PageWalker {
    chunks: Vec<u8>,
}

impl PageWalker {
    /// The most bytes one walker holds.
    pub const MAX_BYTES: usize = MAX_LEVELS * CHUNK_BYTES;

    /// Calls `found` for every page that intersects `first..=last`, in ascending order, until
    /// it returns `false`. `tables` are the top table addresses per root (`None`: nothing
    /// mapped there).
    #[allow(clippy::too_many_arguments)]
    pub fn walk<P: PhysicalMemory>(
        &mut self,
        mem: &mut P,
        arch: &Architecture,
        dec: &Decoder,
        tables: [Option<Address>; 2],
        first: Address,
        last: Address,
        mut found: impl FnMut(Page) -> bool,
    ) -> Result<()> {
        self.chunks.resize(Self::MAX_BYTES, 0);
        let levels = arch.levels();
        let entry_size = arch.entry_size();
        let per_chunk = CHUNK_BYTES / entry_size;
        let meta = mem.metadata();
        let phys_bytes = if meta.real_size > 0 { meta.real_size } else { meta.max_address.to_umem() };
        let phys_entries = phys_bytes / entry_size as umem;
        let mut budget = (levels.len() as umem).saturating_mul(phys_entries + levels[0].entries() as umem);
        let local_mask = ((1 as umem) << arch.va_bits()) - 1;

        for seg in arch.segments() {
            let Some(table) = tables[seg.root] else { continue };
            let (lo, hi) = (first.max(seg.first), last.min(seg.last));
            if lo > hi {
                continue;
            }
            let high = seg.first.to_umem() & !local_mask;
            let (lo, hi) = (lo.to_umem() & local_mask, hi.to_umem() & local_mask);
            let mut stack = [Frame::default(); MAX_LEVELS];
            stack[0] = Frame {
                table,
                next: (lo >> levels[0].shift) as usize,
                last: (hi >> levels[0].shift) as usize,
                ..Frame::default()
            };
            let mut depth = 1;
            while depth > 0 {
                let level = depth - 1;
                let lvl = levels[level];
                let frame = stack[level];
                if frame.next > frame.last {
                    depth -= 1;
                    continue;
                }
                let idx = frame.next;
                stack[level].next += 1;
                let chunk = &mut self.chunks[level * CHUNK_BYTES..(level + 1) * CHUNK_BYTES];
                if idx < frame.loaded || idx >= frame.loaded + frame.count {
                    let count = (frame.last - idx + 1).min(per_chunk);
                    if budget < count as umem {
                        log::warn!("page walk stopped: more entries than physical memory can hold (looping tables?)");
                        return Ok(());
                    }
                    budget -= count as umem;
                    read_chunk(mem, frame.table + idx * entry_size, &mut chunk[..count * entry_size], entry_size)?;
                    stack[level].loaded = idx;
                    stack[level].count = count;
                }
                let raw = dec.read(&chunk[(idx - stack[level].loaded) * entry_size..]);
                let base = frame.base + ((idx as umem) << lvl.shift);
                match dec.decode(level, raw) {
                    Entry::Invalid => {}
                    Entry::Page { base: pa, denied } => {
                        let page = Page {
                            va: Address::new(high | base),
                            pa,
                            size_log2: lvl.shift,
                            page_type: (frame.denied | denied).page_type(),
                        };
                        if !found(page) {
                            return Ok(());
                        }
                    }
                    Entry::Table { next, denied } => {
                        let child = levels[level + 1];
                        let end = base + (((1 as umem) << lvl.shift) - 1);
                        stack[depth] = Frame {
                            table: next,
                            base,
                            next: ((lo.max(base) - base) >> child.shift) as usize,
                            last: ((hi.min(end) - base) >> child.shift) as usize,
                            denied: frame.denied | denied,
                            loaded: 0,
                            count: 0,
                        };
                        depth += 1;
                    }
                }
            }
        }
        Ok(())
    }
}
