//! A physical page cache for pages that do not change under us: page tables and read-only
//! pages, as the translator and virtual reads label them.
//!
//! Reads of other pages (writeable or of unknown type) pass straight through. Cached pages
//! expire after a time or after a number of batch calls, since the target keeps running.

use std::time::{Duration, Instant};

use cglue::slice::CSliceMut;

use crate::error::Result;
use crate::mem::{
    report, split_at_boundaries, MemBatch, MemChunk, MemMapping, MemOp, PhysReadBatch, PhysReadOp, PhysWriteBatch,
    PhysicalMemory, PhysicalMemoryMetadata,
};
use crate::types::{umem, Address, PageType, PhysicalAddress};

/// How long a cached page stays valid.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CacheValidity {
    /// For this long after it was read.
    Time(Duration),
    /// For this many batch calls (reads or writes) after the one that read it.
    Batches(u64),
}

/// Pieces collected before one round trip to the wrapped memory.
const FLUSH_AT: usize = 64;

#[derive(Copy, Clone)]
struct Slot {
    page: Address,
    stamp: u64,
}

const EMPTY: Slot = Slot { page: Address::INVALID, stamp: 0 };

/// A direct-mapped cache of whole pages in front of a [`PhysicalMemory`].
///
/// Memory use is fixed: `cache_size` bytes of page data plus 16 bytes per slot, allocated
/// once. Clones get their own (copied) cache. Writes through the cache invalidate the pages
/// they touch.
pub struct CachedMemory<P> {
    mem: P,
    page_size: usize,
    slots: Box<[Slot]>,
    data: Box<[u8]>,
    validity: CacheValidity,
    epoch: Instant,
    generation: u64,
}

impl<P: Clone> Clone for CachedMemory<P> {
    fn clone(&self) -> Self {
        CachedMemory {
            mem: self.mem.clone(),
            page_size: self.page_size,
            slots: self.slots.clone(),
            data: self.data.clone(),
            validity: self.validity,
            epoch: self.epoch,
            generation: self.generation,
        }
    }
}

/// The slot a page lives in: direct-mapped on the page number, with the bits mixed so
/// regularly spaced pages (the tables of every process) spread out.
fn slot_index(page: Address, page_size: usize, count: usize) -> usize {
    let n = page.to_umem() / page_size as umem;
    let mixed = (n as u64) ^ ((n >> 17) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed % count as u64) as usize
}

/// A read piece waiting for its page to be filled.
struct Pending<'buf> {
    slot: usize,
    offset: usize,
    tag: Address,
    addr: PhysicalAddress,
    buf: CSliceMut<'buf, u8>,
}

impl<P: PhysicalMemory> CachedMemory<P> {
    /// Wraps `mem` with a cache of about `cache_size` bytes of `page_size` pages (a power of
    /// two, at least 256 bytes; at least one slot).
    pub fn new(mem: P, cache_size: usize, page_size: usize, validity: CacheValidity) -> Self {
        let page_size = page_size.next_power_of_two().max(256);
        let count = (cache_size / page_size).max(1);
        CachedMemory {
            mem,
            page_size,
            slots: vec![EMPTY; count].into_boxed_slice(),
            data: vec![0u8; count * page_size].into_boxed_slice(),
            validity,
            epoch: Instant::now(),
            generation: 0,
        }
    }

    /// The wrapped memory.
    pub fn into_inner(self) -> P {
        self.mem
    }

    fn cacheable(page_type: PageType) -> bool {
        page_type.contains(PageType::PAGE_TABLE) || page_type.is_read_only()
    }

    fn slot_of(&self, page: Address) -> usize {
        slot_index(page, self.page_size, self.slots.len())
    }

    fn now(&self) -> u64 {
        match self.validity {
            CacheValidity::Time(_) => self.epoch.elapsed().as_nanos() as u64,
            CacheValidity::Batches(_) => self.generation,
        }
    }

    fn is_fresh(&self, slot: usize, page: Address, now: u64) -> bool {
        let s = self.slots[slot];
        let limit = match self.validity {
            CacheValidity::Time(d) => d.as_nanos() as u64,
            CacheValidity::Batches(n) => n,
        };
        s.page == page && now.saturating_sub(s.stamp) < limit
    }

    fn slot_bytes(&self, slot: usize) -> &[u8] {
        &self.data[slot * self.page_size..(slot + 1) * self.page_size]
    }

    /// Fills the slots of `fills` in one batch, then serves `pending` from them (or passes
    /// them through when their page could not be read whole) together with `direct`.
    fn flush<'buf, 'cb>(
        &mut self,
        fills: &mut Vec<(usize, PhysicalAddress)>,
        pending: &mut Vec<Pending<'buf>>,
        direct: &mut Vec<PhysReadOp<'buf>>,
        on_ok: &mut Option<&mut crate::mem::ChunkCallback<'cb, CSliceMut<'buf, u8>>>,
        on_fail: &mut Option<&mut crate::mem::ChunkCallback<'cb, CSliceMut<'buf, u8>>>,
    ) -> Result<()> {
        if !fills.is_empty() {
            let page_size = self.page_size;
            let base = self.data.as_mut_ptr();
            let mut filled = vec![0usize; fills.len()];
            let mut count_ok = |c: MemChunk<CSliceMut<u8>>| {
                // Tags are fill index * page size + offset, so the chunk finds its fill.
                filled[(c.tag.to_umem() / page_size as umem) as usize] += c.buf.len();
                true
            };
            let ops = fills.iter().enumerate().map(|(i, &(slot, addr))| MemOp {
                addr,
                tag: Address::from(i * page_size),
                // SAFETY: fills name distinct slots, so these slices never overlap, and they
                // live only for this call while `self.data` is not otherwise touched.
                buf: unsafe { core::slice::from_raw_parts_mut(base.add(slot * page_size), page_size) }.into(),
            });
            MemBatch::with(ops, Some(&mut (&mut count_ok).into()), None, |b| self.mem.phys_read_batch(b))?;
            let stamp = self.now();
            for (&(slot, addr), &bytes) in fills.iter().zip(&filled) {
                self.slots[slot] = if bytes == page_size { Slot { page: addr.address, stamp } } else { EMPTY };
            }
            fills.clear();
        }
        for mut p in pending.drain(..) {
            if self.slots[p.slot].page == p.addr.address.align_down(self.page_size as umem) {
                let src = &self.slot_bytes(p.slot)[p.offset..p.offset + p.buf.len()];
                p.buf.copy_from_slice(src);
                report(on_ok, p.tag, p.buf);
            } else {
                direct.push(MemOp { addr: p.addr, tag: p.tag, buf: p.buf });
            }
        }
        if !direct.is_empty() {
            let mut ops = direct.drain(..);
            let batch =
                MemBatch { ops: (&mut ops).into(), on_ok: on_ok.as_deref_mut(), on_fail: on_fail.as_deref_mut() };
            self.mem.phys_read_batch(batch)?;
        }
        Ok(())
    }
}

impl<P: PhysicalMemory> PhysicalMemory for CachedMemory<P> {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        self.generation += 1;
        let now = self.now();
        let MemBatch { ops, mut on_ok, mut on_fail } = batch;
        let mut fills: Vec<(usize, PhysicalAddress)> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        let mut direct: Vec<PhysReadOp> = Vec::new();
        let page_size = self.page_size as umem;
        for op in ops {
            if !Self::cacheable(op.addr.page_type) {
                direct.push(op);
            } else {
                let template = op.addr;
                split_at_boundaries(op.addr.address, op.tag, op.buf, page_size, |addr, tag, mut buf| {
                    let page = addr.align_down(page_size);
                    let slot = self.slot_of(page);
                    let offset = (addr - page) as usize;
                    let phys = PhysicalAddress { address: addr, ..template };
                    if self.is_fresh(slot, page, now) {
                        let len = buf.len();
                        buf.copy_from_slice(&self.slot_bytes(slot)[offset..offset + len]);
                        report(&mut on_ok, tag, buf);
                        return;
                    }
                    match fills.iter().find(|f| f.0 == slot) {
                        Some(f) if f.1.address == page => {}
                        // Another page of this batch already claimed the slot.
                        Some(_) => return direct.push(MemOp { addr: phys, tag, buf }),
                        None => fills.push((slot, PhysicalAddress { address: page, ..template })),
                    }
                    pending.push(Pending { slot, offset, tag, addr: phys, buf });
                });
            }
            if pending.len() >= FLUSH_AT || direct.len() >= FLUSH_AT {
                self.flush(&mut fills, &mut pending, &mut direct, &mut on_ok, &mut on_fail)?;
            }
        }
        self.flush(&mut fills, &mut pending, &mut direct, &mut on_ok, &mut on_fail)
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.generation += 1;
        let MemBatch { ops, on_ok, on_fail } = batch;
        let (page_size, slots) = (self.page_size, &mut self.slots);
        let mut ops = ops.inspect(|op| {
            let first = op.addr.address.align_down(page_size as umem);
            let pages = (op.addr.address - first + op.buf.len() as umem).div_ceil(page_size as umem);
            for i in 0..pages {
                let page = first + i * page_size as umem;
                let slot = slot_index(page, page_size, slots.len());
                if slots[slot].page == page {
                    slots[slot] = EMPTY;
                }
            }
        });
        self.mem.phys_write_batch(MemBatch { ops: (&mut ops).into(), on_ok, on_fail })
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        self.mem.metadata()
    }

    fn set_mem_map(&mut self, map: &[MemMapping]) {
        self.slots.fill(EMPTY);
        self.mem.set_mem_map(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::dummy_memory;
    use crate::error::PartialResultExt;
    use crate::mem::MemoryView;
    use crate::middleware::MetricsMemory;
    use proptest::prelude::*;

    fn table(addr: umem) -> PhysicalAddress {
        PhysicalAddress::with_page(Address::new(addr), PageType::PAGE_TABLE, 12)
    }

    fn patterned(size: usize) -> crate::connector::BufferMemory {
        let mut mem = dummy_memory(size);
        let pattern: Vec<u8> = (0..size).map(|i| (i / 3) as u8 ^ (i >> 12) as u8).collect();
        mem.phys_write_raw(Address::NULL.into(), &pattern).unwrap();
        mem
    }

    #[test]
    fn serves_repeated_table_reads_from_cache() {
        let metered = MetricsMemory::new(patterned(0x10000));
        let mut cached = CachedMemory::new(metered.clone(), 0x4000, 0x1000, CacheValidity::Batches(100));
        let first: u64 = cached.phys_read(table(0x2008)).unwrap();
        let before = metered.metrics().batches;
        let second: u64 = cached.phys_read(table(0x2010)).unwrap();
        assert_eq!(metered.metrics().batches, before, "second read must be a hit");
        assert_eq!(first, patterned(0x10000).phys_read::<u64>(table(0x2008)).unwrap());
        assert_eq!(second, patterned(0x10000).phys_read::<u64>(table(0x2010)).unwrap());
    }

    #[test]
    fn writeable_pages_pass_through() {
        let metered = MetricsMemory::new(patterned(0x10000));
        let mut cached = CachedMemory::new(metered.clone(), 0x4000, 0x1000, CacheValidity::Batches(100));
        let rw = PhysicalAddress::with_page(Address::new(0x3000), PageType::WRITEABLE, 12);
        let _: u32 = cached.phys_read(rw).unwrap();
        let _: u32 = cached.phys_read(rw).unwrap();
        assert_eq!(metered.metrics().batches, 2);
        assert_eq!(metered.metrics().bytes_read, 8);
    }

    #[test]
    fn entries_expire_after_the_batch_count() {
        let metered = MetricsMemory::new(patterned(0x10000));
        let mut cached = CachedMemory::new(metered.clone(), 0x4000, 0x1000, CacheValidity::Batches(2));
        let _: u8 = cached.phys_read(table(0x1000)).unwrap();
        let _: u8 = cached.phys_read(table(0x1000)).unwrap();
        let hits_end = metered.metrics().batches;
        let _: u8 = cached.phys_read(table(0x1000)).unwrap();
        assert_eq!(metered.metrics().batches, hits_end + 1, "third read refills");
    }

    #[test]
    fn writes_invalidate_cached_pages() {
        let mut cached = CachedMemory::new(patterned(0x10000), 0x4000, 0x1000, CacheValidity::Batches(1000));
        let _: u64 = cached.phys_read(table(0x5000)).unwrap();
        cached.phys_write(table(0x5000), &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(cached.phys_read::<u64>(table(0x5000)).unwrap(), 0x1122_3344_5566_7788);
    }

    #[test]
    fn unreadable_pages_fail_per_chunk() {
        let mut cached = CachedMemory::new(patterned(0x2000), 0x4000, 0x1000, CacheValidity::Batches(1000));
        let mut buf = [0xffu8; 0x20];
        let res = cached.phys_read_raw_into(table(0x1ff0), &mut buf);
        assert!(res.is_partial());
        assert!(buf[0x10..].iter().all(|&b| b == 0));
        assert_eq!(
            &buf[..0x10],
            &patterned(0x2000).phys_view().read_raw(Address::new(0x1ff0), 0x10).data().unwrap()[..]
        );
    }

    proptest! {
        /// Through any mix of page types, sizes and cache sizes, cached reads equal direct ones.
        #[test]
        fn cached_reads_equal_direct_reads(
            reads in proptest::collection::vec((0u64..0x12000, 1usize..0x2400, any::<bool>()), 1..40),
            slots in 1usize..6,
        ) {
            let mut direct = patterned(0x11000);
            let mut cached = CachedMemory::new(patterned(0x11000), slots * 0x1000, 0x1000, CacheValidity::Batches(5));
            for (addr, len, is_table) in reads {
                let kind = if is_table { PageType::PAGE_TABLE } else { PageType::UNKNOWN };
                let at = PhysicalAddress::with_page(Address::new(addr as umem), kind, 12);
                let mut a = vec![0x55u8; len];
                let mut b = vec![0xaau8; len];
                let ra = direct.phys_read_raw_into(at, &mut a);
                let rb = cached.phys_read_raw_into(at, &mut b);
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(ra.is_ok(), rb.is_ok());
            }
        }
    }
}
