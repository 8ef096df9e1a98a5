//! The batched page walk: a window of addresses advances one level at a time, with one
//! physical batch per level.
//!
//! The walking addresses are put in virtual-address order once per window (a single sort of
//! packed `u64` keys, skipped when they arrive in order, as the pieces of a read do). In that
//! order, the addresses that share a table entry at a level are exactly the consecutive ones
//! with equal address bits above the level's shift, so each distinct entry is found by comparing
//! neighbours: it is read once and decoded once for its whole run of addresses, and entries
//! adjacent in physical memory (consecutive indexes of one table) are read as one span.
//! Sharing is decided by the virtual path, never by the physical entry address, so ranges whose
//! tables share identical entries (a kernel image and its direct-map alias) cannot disturb each
//! other.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`

use cglue::slice::CSliceMut;

use crate::arch::{Architecture, Decoder, Denied, Entry, Step, MAX_LEVELS};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, Result};
use crate::mem::{MemBatch, MemChunk, MemOp, PhysicalMemory};
use crate::types::{umem, Address, PageType, PhysicalAddress};

/// How many addresses a window holds. Larger inputs are translated window by window.
pub const WINDOW: usize = 2048;

/// Bits of a slot index in a packed sort key (`WINDOW` fits).
const INDEX_BITS: u32 = 11;
const _: () = assert!(WINDOW <= 1 << INDEX_BITS);

/// The address is not canonical for the architecture.
pub(crate) const NOT_CANONICAL: Error = Error::new(ErrorOrigin::Translation, ErrorKind::OutOfBounds);
/// Some entry on the way is not present or invalid, or the root is missing.
pub(crate) const NOT_MAPPED: Error = Error::new(ErrorOrigin::Translation, ErrorKind::Unmapped);
/// A table entry on the way could not be read from physical memory.
pub(crate) const TABLE_UNREADABLE: Error = Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::OutOfBounds);

#[derive(Copy, Clone, Debug)]
enum State {
    /// `at` is the table of the next level.
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

/// The working memory of the batched walk. Every vector holds at most one element per address
/// of the window, so it never grows past [`Walker::MAX_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct Walker {
    /// The addresses in push order.
    slots: Vec<Slot>,
    /// The slots still walking, in virtual-address order.
    order: Vec<u32>,
    /// Packed sort keys (`va >> page shift`, slot index).
    keys: Vec<u64>,
    /// Per distinct entry of a level: the end (exclusive) of its run in `order`.
    runs: Vec<u32>,
    /// (start, length) of the physical reads of one level.
    spans: Vec<(Address, u32)>,
    /// The bytes of every distinct entry of one level, in `order` (sized once to a whole
    /// window's entries; only the front is used).
    scratch: Vec<u8>,
    /// Per distinct entry: its read failed. Empty unless some read of the level failed.
    failed: Vec<bool>,
    /// Per level, the entry [`Walker::walk_one`] decoded last there and its decoding (with the
    /// one decoder of the walker's translator; an all-zero entry decodes to the default).
    last: [(u64, Step); MAX_LEVELS],
}

impl Walker {
    /// The most bytes the buffers of one walker hold.
    pub const MAX_BYTES: usize = WINDOW
        * (core::mem::size_of::<Slot>()
            + core::mem::size_of::<u32>()
            + core::mem::size_of::<u64>()
            + core::mem::size_of::<u32>()
            + core::mem::size_of::<(Address, u32)>()
            + 8
            + 1);

    /// Empties the window.
    #[inline]
    pub fn clear(&mut self) {
        self.slots.clear();
    }

    /// Free places in the window.
    #[inline]
    pub fn room(&self) -> usize {
        WINDOW - self.slots.len()
    }

    /// Adds an address to walk from the top table at `table`.
    #[inline]
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

    /// Puts the walking slots into `order`, sorted by virtual address.
    fn sort(&mut self, page_shift: u8) {
        self.order.clear();
        let mut sorted = true;
        let mut prev = Address::NULL;
        for (i, slot) in self.slots.iter().enumerate() {
            if let State::Walking = slot.state {
                sorted &= slot.va >= prev;
                prev = slot.va;
                self.order.push(i as u32);
            }
        }
        if sorted {
            return;
        }
        // Walking addresses are canonical, so they fit in 64 bits (also with 128-bit `umem`),
        // and `va >> page_shift` (page_shift >= 12) leaves room for the index.
        self.keys.clear();
        let slots = &self.slots;
        self.keys.extend(
            self.order
                .iter()
                .map(|&i| (((slots[i as usize].va.to_umem() as u64) >> page_shift) << INDEX_BITS) | u64::from(i)),
        );
        self.keys.sort_unstable();
        let mask = (1u64 << INDEX_BITS) - 1;
        for (o, k) in self.order.iter_mut().zip(&self.keys) {
            *o = (k & mask) as u32;
        }
    }

    /// Walks every address of the window to its end. `Err` only if the memory itself fails.
    /// `dec` is `arch`'s decoder.
    pub fn run<P: PhysicalMemory>(&mut self, mem: &mut P, arch: &Architecture, dec: &Decoder) -> Result<()> {
        let entry_size = arch.entry_size();
        self.sort(arch.page_shift());
        // A lone address needs no grouping: one read per level, straight down.
        if let [i] = self.order[..] {
            let Slot { va, at, denied, .. } = self.slots[i as usize];
            let (state, at, denied) = match self.walk_one(mem, dec, at, va)? {
                Ok(pa) => (State::Mapped(pa.page_size_log2), pa.address, denied_of(pa.page_type)),
                Err(e) => (State::Failed(e), at, denied),
            };
            let slot = &mut self.slots[i as usize];
            (slot.state, slot.at, slot.denied) = (state, at, denied);
            return Ok(());
        }
        for (level, lvl) in arch.levels().iter().enumerate() {
            if self.order.is_empty() {
                break;
            }
            // The distinct entries of this level, one per run of equal `va >> shift`.
            self.runs.clear();
            self.spans.clear();
            let mut prev: Option<umem> = None;
            for (pos, &i) in self.order.iter().enumerate() {
                let slot = &self.slots[i as usize];
                let prefix = slot.va.to_umem() >> lvl.shift;
                if prev == Some(prefix) {
                    continue;
                }
                if prev.is_some() {
                    self.runs.push(pos as u32);
                }
                prev = Some(prefix);
                let entry = slot.at + lvl.index(slot.va) * entry_size;
                match self.spans.last_mut() {
                    Some((start, len)) if *start + *len as umem == entry => *len += entry_size as u32,
                    _ => self.spans.push((entry, entry_size as u32)),
                }
            }
            self.runs.push(self.order.len() as u32);
            self.read_entries(mem, entry_size)?;
            self.apply(dec, level, lvl.shift);
        }
        Ok(())
    }

    /// The outcome for every address of the window, in the order they were pushed.
    #[inline]
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

    /// Reads every distinct entry (the spans) with one batch; marks the unreadable ones.
    fn read_entries<P: PhysicalMemory>(&mut self, mem: &mut P, entry_size: usize) -> Result<()> {
        let distinct = self.runs.len();
        if self.scratch.len() < WINDOW * 8 {
            self.scratch.resize(WINDOW * 8, 0);
        }
        self.failed.clear();
        let scratch = &mut self.scratch[..distinct * entry_size];

        // One span (a single address, or the pieces of one read): the connector's plain read,
        // which many connectors serve without building a batch. Only if part of it fails is it
        // read again as a batch, to learn exactly which entries are unreadable.
        if let [(addr, _)] = self.spans[..] {
            match mem.phys_read_raw_into(PhysicalAddress::with_page(addr, PageType::PAGE_TABLE, 0), scratch) {
                Ok(()) => return Ok(()),
                Err(PartialError::Error(e)) => return Err(e),
                Err(PartialError::PartialRead(()) | PartialError::PartialWrite) => {}
            }
        }

        let Walker { spans, failed, .. } = self;
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
            if failed.is_empty() {
                failed.resize(distinct, false);
            }
            mark_failed(failed, chunk, entry_size);
            true
        };
        mem.phys_read_batch(MemBatch { ops: (&mut ops).into(), on_ok: None, on_fail: Some(&mut (&mut on_fail).into()) })
    }

    /// Decodes each distinct entry read for `level` once, moves its run of slots on, and keeps
    /// in `order` only the slots that still walk.
    #[inline]
    fn apply(&mut self, dec: &Decoder, level: usize, shift: u8) {
        let entry_size = dec.entry_size();
        let page_size = (1 as umem) << shift;
        let Walker { slots, order, runs, scratch, failed, .. } = self;
        let mut start = 0usize;
        let mut kept = 0usize;
        for (d, &end) in runs.iter().enumerate() {
            let end = end as usize;
            let entry = if !failed.is_empty() && failed[d] {
                Err(TABLE_UNREADABLE)
            } else {
                Ok(dec.decode(level, dec.read(&scratch[d * entry_size..])))
            };
            match entry {
                Err(e) => order[start..end].iter().for_each(|&i| slots[i as usize].state = State::Failed(e)),
                Ok(Entry::Invalid) => {
                    order[start..end].iter().for_each(|&i| slots[i as usize].state = State::Failed(NOT_MAPPED))
                }
                Ok(Entry::Page { base, denied }) => {
                    for &i in &order[start..end] {
                        let slot = &mut slots[i as usize];
                        slot.at = base + slot.va.page_offset(page_size);
                        slot.denied = slot.denied | denied;
                        slot.state = State::Mapped(shift);
                    }
                }
                Ok(Entry::Table { next, denied }) => {
                    for pos in start..end {
                        let i = order[pos];
                        let slot = &mut slots[i as usize];
                        slot.at = next;
                        slot.denied = slot.denied | denied;
                        order[kept] = i;
                        kept += 1;
                    }
                }
            }
            start = end;
        }
        order.truncate(kept);
    }

    /// Walks one address from the top table at `table`: one read per level. The outer `Err`
    /// only if the memory itself fails; the inner one says why `va` does not translate.
    ///
    /// An entry is decoded only if it differs from the one decoded last at its level: the
    /// decoding is a function of the entry's value, so nothing can go stale, and the upper
    /// entries of a run of walks (the same PML4 and PDPT entries for most kernel addresses)
    /// are only compared. Besides the decoding this saves waiting: the next table is known
    /// from the remembered decoding, so the CPU, predicting the comparison, reads the next
    /// level before this level's entry has arrived.
    #[inline]
    pub fn walk_one<P: PhysicalMemory>(
        &mut self,
        mem: &mut P,
        dec: &Decoder,
        mut table: Address,
        va: Address,
    ) -> Result<Result<PhysicalAddress>> {
        let entry_size = dec.entry_size();
        let mut table_bits = 0;
        for (level, (seen, step)) in self.last.iter_mut().enumerate().take(dec.level_count()) {
            let entry = table + dec.index(level, va) * entry_size;
            let mut bytes = [0u8; 8];
            let at = PhysicalAddress::with_page(entry, PageType::PAGE_TABLE, 0);
            if mem.phys_read_single(at, &mut bytes[..entry_size])? < entry_size {
                return Ok(Err(TABLE_UNREADABLE));
            }
            let raw = dec.read(&bytes);
            if raw != *seen {
                (*seen, *step) = (raw, dec.step(level, raw));
            }
            match *step {
                Step::Invalid => return Ok(Err(NOT_MAPPED)),
                Step::Table { next, bits } => {
                    table = next;
                    table_bits |= bits;
                }
                Step::Page { base, bits } => {
                    let shift = dec.shift(level);
                    let pa = base + va.page_offset((1 as umem) << shift);
                    let page_type = dec.denied(table_bits, bits).page_type();
                    return Ok(Ok(PhysicalAddress::with_page(pa, page_type, shift)));
                }
            }
        }
        Ok(Err(NOT_MAPPED))
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
