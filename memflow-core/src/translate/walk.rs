//! The batched page walk: a window of addresses advances one level at a time, with one
//! physical batch per level. Entries are sorted by their physical address, each distinct entry
//! is read once however many addresses need it, and adjacent entries are read as one span.

use cglue::slice::CSliceMut;

use crate::arch::{Architecture, Denied, Entry};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::{MemBatch, MemChunk, MemOp, PhysicalMemory};
use crate::types::{umem, Address, PageType, PhysicalAddress};

/// How many addresses a window holds. Larger inputs are translated window by window.
pub const WINDOW: usize = 2048;

/// The address is not canonical for the architecture.
pub(crate) const NOT_CANONICAL: Error = Error::new(ErrorOrigin::Translation, ErrorKind::OutOfBounds);
/// Some entry on the way is not present or invalid, or the root is missing.
pub(crate) const NOT_MAPPED: Error = Error::new(ErrorOrigin::Translation, ErrorKind::Unmapped);
/// A table entry on the way could not be read from physical memory.
pub(crate) const TABLE_UNREADABLE: Error = Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::OutOfBounds);

#[derive(Copy, Clone, Debug)]
enum State {
    /// `at` is the table (before a level) or entry (during a level) address.
    Walking,
    /// `at` is the physical address; the page is `1 << shift` bytes.
    Mapped(u8),
    Failed(Error),
}

#[derive(Copy, Clone, Debug)]
struct Slot {
    va: Address,
    at: Address,
    denied: Denied,
    state: State,
}

/// The working memory of the batched walk. Every vector holds at most one entry (or one
/// entry's bytes) per address of the window, so it never grows past [`Walker::MAX_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct Walker {
    slots: Vec<Slot>,
    /// (entry address, slot) of the slots still walking, sorted by entry address.
    keys: Vec<(Address, u32)>,
    /// (start, length) of the physical reads of one level.
    spans: Vec<(Address, u32)>,
    /// The bytes of every distinct entry of one level, in address order.
    scratch: Vec<u8>,
    /// Per distinct entry: its read failed.
    failed: Vec<bool>,
}

impl Walker {
    /// The most bytes the buffers of one walker hold.
    pub const MAX_BYTES: usize = WINDOW
        * (core::mem::size_of::<Slot>()
            + core::mem::size_of::<(Address, u32)>()
            + core::mem::size_of::<(Address, u32)>()
            + 8
            + 1);

    /// Empties the window.
    pub fn clear(&mut self) {
        self.slots.clear();
    }

    /// Free places in the window.
    pub fn room(&self) -> usize {
        WINDOW - self.slots.len()
    }

    /// Adds an address to walk from the top table at `table`.
    pub fn push_walk(&mut self, va: Address, table: Address) {
        self.slots.push(Slot { va, at: table, denied: Denied::default(), state: State::Walking });
    }

    /// Adds an address whose outcome is already known (a TLB hit, a non-canonical address).
    pub fn push_done(&mut self, va: Address, result: Result<PhysicalAddress>) {
        let (at, denied, state) = match result {
            Ok(pa) => (pa.address, denied_of(pa.page_type), State::Mapped(pa.page_size_log2)),
            Err(e) => (Address::NULL, Denied::default(), State::Failed(e)),
        };
        self.slots.push(Slot { va, at, denied, state });
    }

    /// Walks every address of the window to its end. `Err` only if the memory itself fails.
    pub fn run<P: PhysicalMemory>(&mut self, mem: &mut P, arch: &Architecture) -> Result<()> {
        let entry_size = arch.entry_size();
        for (level, lvl) in arch.levels().iter().enumerate() {
            self.keys.clear();
            for (i, slot) in self.slots.iter_mut().enumerate() {
                if let State::Walking = slot.state {
                    slot.at += lvl.index(slot.va) * entry_size;
                    self.keys.push((slot.at, i as u32));
                }
            }
            if self.keys.is_empty() {
                break;
            }
            if !self.keys.is_sorted() {
                self.keys.sort_unstable();
            }
            self.read_entries(mem, entry_size)?;
            self.apply(arch, level);
        }
        Ok(())
    }

    /// The outcome for every address of the window, in the order they were pushed.
    pub fn results(&self) -> impl Iterator<Item = (Address, Result<PhysicalAddress>)> + '_ {
        self.slots.iter().map(|s| {
            let res = match s.state {
                State::Mapped(shift) => Ok(PhysicalAddress::with_page(s.at, s.denied.page_type(), shift)),
                State::Failed(e) => Err(e),
                State::Walking => Err(Error::new(ErrorOrigin::Translation, ErrorKind::Internal)),
            };
            (s.va, res)
        })
    }

    /// Reads every distinct entry named in `keys` with one batch; marks the unreadable ones.
    fn read_entries<P: PhysicalMemory>(&mut self, mem: &mut P, entry_size: usize) -> Result<()> {
        self.spans.clear();
        let mut distinct = 0usize;
        let mut prev = None;
        for &(addr, _) in &self.keys {
            if prev == Some(addr) {
                continue;
            }
            prev = Some(addr);
            distinct += 1;
            match self.spans.last_mut() {
                Some((start, len)) if *start + *len as umem == addr => *len += entry_size as u32,
                _ => self.spans.push((addr, entry_size as u32)),
            }
        }
        self.scratch.clear();
        self.scratch.resize(distinct * entry_size, 0);
        self.failed.clear();
        self.failed.resize(distinct, false);

        let Walker { spans, scratch, failed, .. } = self;
        let mut rest: &mut [u8] = scratch;
        let mut offset = 0usize;
        let mut ops = spans.iter().map(|&(addr, len)| {
            let (buf, tail) = core::mem::take(&mut rest).split_at_mut(len as usize);
            rest = tail;
            let tag = Address::from(offset);
            offset += len as usize;
            MemOp { addr: PhysicalAddress::with_page(addr, PageType::PAGE_TABLE, 0), tag, buf: buf.into() }
        });
        let mut on_fail = |chunk: MemChunk<CSliceMut<u8>>| {
            mark_failed(failed, chunk, entry_size);
            true
        };
        mem.phys_read_batch(MemBatch {
            ops: (&mut ops).into(),
            on_ok: None,
            on_fail: Some(&mut (&mut on_fail).into()),
        })
    }

    /// Decodes the entries read for `level` and moves every walking slot on.
    fn apply(&mut self, arch: &Architecture, level: usize) {
        let entry_size = arch.entry_size();
        let shift = arch.levels()[level].shift;
        let mut distinct = usize::MAX;
        let mut prev = None;
        for &(addr, i) in &self.keys {
            if prev != Some(addr) {
                prev = Some(addr);
                distinct = distinct.wrapping_add(1);
            }
            let slot = &mut self.slots[i as usize];
            if self.failed[distinct] {
                slot.state = State::Failed(TABLE_UNREADABLE);
                continue;
            }
            let raw = arch.read_entry(&self.scratch[distinct * entry_size..]);
            match arch.decode(level, raw) {
                Entry::Invalid => slot.state = State::Failed(NOT_MAPPED),
                Entry::Table { next, denied } => {
                    slot.at = next;
                    slot.denied = slot.denied | denied;
                }
                Entry::Page { base, denied } => {
                    slot.at = base + slot.va.page_offset((1 as umem) << shift);
                    slot.denied = slot.denied | denied;
                    slot.state = State::Mapped(shift);
                }
            }
        }
    }
}

/// Marks every entry that a failed chunk touches (the chunk's tag is its byte offset into a
/// buffer of entries); tags outside the buffer are ignored.
pub(crate) fn mark_failed(failed: &mut [bool], chunk: MemChunk<CSliceMut<u8>>, entry_size: usize) {
    let start = (chunk.tag.to_umem() as usize / entry_size).min(failed.len());
    let end = (chunk.tag.to_umem() as usize).saturating_add(chunk.buf.len()).div_ceil(entry_size).min(failed.len());
    if start < end {
        failed[start..end].fill(true);
    }
}

/// The accesses a page type denies (inverse of [`Denied::page_type`]).
pub(crate) fn denied_of(t: PageType) -> Denied {
    let mut d = Denied::default();
    if !t.contains(PageType::WRITEABLE) {
        d = d | Denied::WRITE;
    }
    if !t.contains(PageType::USER) {
        d = d | Denied::USER;
    }
    if t.contains(PageType::NOEXEC) {
        d = d | Denied::EXEC_USER | Denied::EXEC_KERNEL;
    }
    d
}
