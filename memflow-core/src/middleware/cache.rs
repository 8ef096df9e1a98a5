//! A physical page cache for pages that do not change under us: page tables and read-only
//! pages, as the translator and virtual reads label them.
//!
//! Reads of other pages (writeable or of unknown type) pass straight through. Cached pages
//! expire after a time or after a number of batch calls, since the target keeps running.
//!
//! One cache is shared by all clones of a [`CachedMemory`] (an OS layer gives every process
//! handle a clone), so it is allocated once whatever the number of clones and threads. Its
//! slots are spread over locked shards: clones on different threads wait for each other only
//! while copying a page in or out of the same shard, never while the wrapped memory is read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cglue::slice::CSliceMut;

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::alloc::{physical_memory, reserve, zeroed_vec};
use crate::mem::{
    report, ChunkCallback, MemBatch, MemChunk, MemMapping, MemOp, PhysReadBatch, PhysReadOp, PhysWriteBatch,
    PhysicalMemory, PhysicalMemoryMetadata, SplitBuf,
};
use crate::types::{umem, Address, PageType, PhysicalAddress};

/// The largest cache (option `cache_size`): 1 GiB of page data. It must also be at most a
/// quarter of the machine's physical memory.
pub const CACHE_SIZE_MAX: usize = 1 << 30;
/// The smallest cache page (option `cache_page_size`).
pub const CACHE_PAGE_SIZE_MIN: usize = 4 << 10;
/// The largest cache page (option `cache_page_size`): a large page of x86.
pub const CACHE_PAGE_SIZE_MAX: usize = 2 << 20;

/// How long a cached page stays valid.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CacheValidity {
    /// For this long after it was read.
    Time(Duration),
    /// For this many batch calls (reads or writes, through any clone) after the one that
    /// read it.
    Batches(u64),
}

/// Locked shards the slots are spread over (fewer when there are fewer slots).
const SHARDS: usize = 64;
/// Pieces collected before one round trip to the wrapped memory.
const FLUSH_AT: usize = 64;
/// Bytes of pages read per round trip when filling (at least one page). Each clone has a
/// buffer of this size, allocated on its first fill.
const FILL_BYTES: usize = 256 << 10;

/// Checks a cache configuration against the limits: `page_size` a power of two from
/// [`CACHE_PAGE_SIZE_MIN`] to [`CACHE_PAGE_SIZE_MAX`], `cache_size` at most
/// [`CACHE_SIZE_MAX`] and a quarter of the machine's physical memory. The errors
/// ([`ErrorKind::InvalidArgument`]) name the options `cache_page_size` and `cache_size`.
pub fn check_cache_config(cache_size: usize, page_size: usize) -> Result<()> {
    let invalid = || Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument);
    if !page_size.is_power_of_two() || !(CACHE_PAGE_SIZE_MIN..=CACHE_PAGE_SIZE_MAX).contains(&page_size) {
        return Err(invalid().with_reason(format_args!(
            "cache_page_size {page_size:#x}: expected a power of two from 4K ({CACHE_PAGE_SIZE_MIN:#x}) to 2M ({CACHE_PAGE_SIZE_MAX:#x})"
        )));
    }
    let quarter = physical_memory().map_or(usize::MAX, |ram| usize::try_from(ram / 4).unwrap_or(usize::MAX));
    let limit = CACHE_SIZE_MAX.min(quarter);
    if cache_size > limit {
        return Err(invalid().with_reason(format_args!(
            "cache_size {cache_size:#x}: at most {limit:#x} bytes (1G, and a quarter of this machine's memory)"
        )));
    }
    Ok(())
}

#[derive(Copy, Clone)]
struct Slot {
    page: Address,
    stamp: u64,
}

const EMPTY: Slot = Slot { page: Address::INVALID, stamp: 0 };

/// Every `shards`-th slot of the cache, with the bytes of its pages.
struct Shard {
    slots: Vec<Slot>,
    data: Vec<u8>,
}

/// The cache all clones share.
struct Cache {
    page_size: usize,
    slots: usize,
    shards: Box<[Mutex<Shard>]>,
    validity: CacheValidity,
    /// How long a page stays fresh, in the unit of [`Cache::now`].
    limit: u64,
    epoch: Instant,
    /// Batch calls through any clone.
    generation: AtomicU64,
}

/// The slot a page lives in: direct-mapped on the page number, with the bits mixed so
/// regularly spaced pages (the tables of every process) spread out.
fn slot_index(page: Address, page_size: usize, count: usize) -> usize {
    let n = page.to_umem() / page_size as umem;
    let mixed = (n as u64) ^ ((n >> 17) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed % count as u64) as usize
}

impl Cache {
    fn new(cache_size: usize, page_size: usize, validity: CacheValidity) -> Result<Self> {
        check_cache_config(cache_size, page_size)?;
        let slots = (cache_size / page_size).max(1);
        let count = slots.min(SHARDS);
        let shards = (0..count)
            .map(|k| {
                let n = (slots - k).div_ceil(count);
                let mut tags = Vec::new();
                reserve(&mut tags, n, ErrorOrigin::Connector, "the page cache's slots")?;
                tags.resize(n, EMPTY);
                let data = zeroed_vec(n * page_size, ErrorOrigin::Connector, "the page cache")?;
                Ok(Mutex::new(Shard { slots: tags, data }))
            })
            .collect::<Result<_>>()?;
        let limit = match validity {
            CacheValidity::Time(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            CacheValidity::Batches(n) => n,
        };
        Ok(Cache { page_size, slots, shards, validity, limit, epoch: Instant::now(), generation: AtomicU64::new(0) })
    }

    /// Pages read in one round trip when filling: [`FILL_BYTES`] worth, at least one.
    fn fills_per_round(&self) -> usize {
        (FILL_BYTES / self.page_size).max(1)
    }

    fn now(&self, generation: u64) -> u64 {
        match self.validity {
            CacheValidity::Time(_) => u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX),
            CacheValidity::Batches(_) => generation,
        }
    }

    /// The shard of `slot`, locked, and the slot's index in it.
    fn shard(&self, slot: usize) -> (MutexGuard<'_, Shard>, usize) {
        let n = self.shards.len();
        // A panic while a shard was locked can only have been in a copy: the bytes may be
        // mixed, but every reader checks the tag first, so the shard is still usable.
        (self.shards[slot % n].lock().unwrap_or_else(PoisonError::into_inner), slot / n)
    }

    /// Copies the bytes of `page` from `offset` into `out` if its slot holds it fresh.
    fn read(&self, slot: usize, page: Address, now: u64, offset: usize, out: &mut [u8]) -> bool {
        let (shard, i) = self.shard(slot);
        let s = shard.slots[i];
        if s.page != page || now.saturating_sub(s.stamp) >= self.limit {
            return false;
        }
        let start = i * self.page_size + offset;
        out.copy_from_slice(&shard.data[start..start + out.len()]);
        true
    }

    /// Puts the whole `bytes` of `page`, read at time `stamp`, into its slot.
    fn store(&self, slot: usize, page: Address, stamp: u64, bytes: &[u8]) {
        let (mut shard, i) = self.shard(slot);
        shard.slots[i] = Slot { page, stamp };
        shard.data[i * self.page_size..(i + 1) * self.page_size].copy_from_slice(bytes);
    }

    /// Forgets `page` if it is cached.
    fn invalidate(&self, page: Address) {
        let (mut shard, i) = self.shard(slot_index(page, self.page_size, self.slots));
        if shard.slots[i].page == page {
            shard.slots[i] = EMPTY;
        }
    }

    fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(PoisonError::into_inner).slots.fill(EMPTY);
        }
    }
}

/// A direct-mapped cache of whole pages in front of a [`PhysicalMemory`].
///
/// Memory use is fixed: `cache_size` bytes of page data plus 16 bytes per slot, allocated
/// once and shared by every clone (see the module docs); each clone adds a fill buffer of
/// at most 256 KiB or one page. Writes through the cache invalidate the pages they touch.
pub struct CachedMemory<P> {
    mem: P,
    cache: Arc<Cache>,
    /// Pages being filled in one round trip; private to this clone.
    scratch: Vec<u8>,
}

impl<P: Clone> Clone for CachedMemory<P> {
    fn clone(&self) -> Self {
        CachedMemory { mem: self.mem.clone(), cache: self.cache.clone(), scratch: Vec::new() }
    }
}

/// A page to read whole into a slot.
struct Fill {
    slot: usize,
    page: PhysicalAddress,
}

/// A read piece waiting for its page to be filled.
struct Pending<'buf> {
    /// Index into the fills.
    fill: usize,
    offset: usize,
    tag: Address,
    addr: PhysicalAddress,
    buf: CSliceMut<'buf, u8>,
}

/// The pieces of a batch collected for one round trip to the wrapped memory.
#[derive(Default)]
struct Round<'buf> {
    fills: Vec<Fill>,
    /// Bytes read so far for each fill.
    filled: Vec<usize>,
    pending: Vec<Pending<'buf>>,
    direct: Vec<PhysReadOp<'buf>>,
}

impl<'buf> Round<'buf> {
    /// Queues a piece of `page` (in `slot`) at `addr` that missed the cache.
    fn miss(
        &mut self,
        slot: usize,
        page: PhysicalAddress,
        offset: usize,
        addr: PhysicalAddress,
        tag: Address,
        buf: CSliceMut<'buf, u8>,
    ) {
        let fill = match self.fills.iter().position(|f| f.slot == slot) {
            Some(i) if self.fills[i].page.address == page.address => i,
            // Another page of this round already claimed the slot.
            Some(_) => return self.direct.push(MemOp { addr, tag, buf }),
            None => {
                self.fills.push(Fill { slot, page });
                self.fills.len() - 1
            }
        };
        self.pending.push(Pending { fill, offset, tag, addr, buf });
    }

    /// Reads the fills into `scratch` in one batch, stores the whole pages in the cache and
    /// serves the pending pieces from them (or passes them through when their page could not
    /// be read whole), then reads the direct pieces.
    fn flush<'cb, P: PhysicalMemory>(
        &mut self,
        mem: &mut P,
        cache: &Cache,
        scratch: &mut Vec<u8>,
        generation: u64,
        on_ok: &mut Option<&mut ChunkCallback<'cb, CSliceMut<'buf, u8>>>,
        on_fail: &mut Option<&mut ChunkCallback<'cb, CSliceMut<'buf, u8>>>,
    ) -> Result<()> {
        if !self.fills.is_empty() {
            let page_size = cache.page_size;
            if scratch.is_empty() {
                let bytes = cache.fills_per_round() * page_size;
                *scratch = zeroed_vec(bytes, ErrorOrigin::Connector, "the page cache's fill buffer")?;
            }
            self.filled.clear();
            self.filled.resize(self.fills.len(), 0);
            let filled = &mut self.filled;
            let mut count_ok = |c: MemChunk<CSliceMut<u8>>| {
                // Tags are fill index * page size + offset, so the chunk finds its fill.
                filled[(c.tag.to_umem() / page_size as umem) as usize] += c.buf.len();
                true
            };
            let ops = self.fills.iter().zip(scratch.chunks_mut(page_size)).enumerate().map(|(i, (f, buf))| MemOp {
                addr: f.page,
                tag: Address::from(i * page_size),
                buf: buf.into(),
            });
            MemBatch::with(ops, Some(&mut (&mut count_ok).into()), None, |b| mem.phys_read_batch(b))?;
            let stamp = cache.now(generation);
            let page = |i: usize| &scratch[i * page_size..(i + 1) * page_size];
            for (i, f) in self.fills.iter().enumerate() {
                if self.filled[i] == page_size {
                    cache.store(f.slot, f.page.address, stamp, page(i));
                }
            }
            for mut p in self.pending.drain(..) {
                if self.filled[p.fill] == page_size {
                    let len = p.buf.len();
                    p.buf.copy_from_slice(&page(p.fill)[p.offset..p.offset + len]);
                    report(on_ok, p.tag, p.buf);
                } else {
                    self.direct.push(MemOp { addr: p.addr, tag: p.tag, buf: p.buf });
                }
            }
            self.fills.clear();
        }
        if !self.direct.is_empty() {
            let mut ops = self.direct.drain(..);
            let batch =
                MemBatch { ops: (&mut ops).into(), on_ok: on_ok.as_deref_mut(), on_fail: on_fail.as_deref_mut() };
            mem.phys_read_batch(batch)?;
        }
        Ok(())
    }

    fn is_full(&self, max_fills: usize) -> bool {
        self.fills.len() >= max_fills || self.pending.len() >= FLUSH_AT || self.direct.len() >= FLUSH_AT
    }
}

impl<P: PhysicalMemory> CachedMemory<P> {
    /// Wraps `mem` with a cache of about `cache_size` bytes of `page_size` pages (at least
    /// one page). Fails ([`ErrorKind::InvalidArgument`]) outside the limits of
    /// [`check_cache_config`], or ([`ErrorKind::OutOfMemory`]) if the cache cannot be
    /// allocated.
    pub fn new(mem: P, cache_size: usize, page_size: usize, validity: CacheValidity) -> Result<Self> {
        Ok(CachedMemory { mem, cache: Arc::new(Cache::new(cache_size, page_size, validity)?), scratch: Vec::new() })
    }

    /// The wrapped memory.
    pub fn into_inner(self) -> P {
        self.mem
    }

    /// The bytes of page data the cache holds (shared by all clones).
    pub fn cache_bytes(&self) -> usize {
        self.cache.slots * self.cache.page_size
    }

    /// True if `self` and `other` use the same cache (one is a clone of the other).
    pub fn shares_cache_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.cache, &other.cache)
    }

    fn cacheable(page_type: PageType) -> bool {
        page_type.contains(PageType::PAGE_TABLE) || page_type.is_read_only()
    }
}

impl<P: PhysicalMemory> PhysicalMemory for CachedMemory<P> {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        let CachedMemory { mem, cache, scratch } = self;
        let generation = cache.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let now = cache.now(generation);
        let page_size = cache.page_size;
        let max_fills = cache.fills_per_round();
        let MemBatch { ops, mut on_ok, mut on_fail } = batch;
        let mut round = Round::default();
        for op in ops {
            if !Self::cacheable(op.addr.page_type) {
                round.direct.push(op);
            } else {
                let template = op.addr;
                let (mut addr, mut tag, mut buf) = (op.addr.address, op.tag, op.buf);
                while !buf.is_empty() {
                    let page = addr.align_down(page_size as umem);
                    let offset = (addr - page) as usize;
                    let take = buf.len().min(page_size - offset);
                    let (mut head, rest) = buf.split_at(take);
                    let slot = slot_index(page, page_size, cache.slots);
                    let (len, at) = (head.len(), PhysicalAddress { address: addr, ..template });
                    if cache.read(slot, page, now, offset, &mut head) {
                        report(&mut on_ok, tag, head);
                    } else {
                        round.miss(slot, PhysicalAddress { address: page, ..template }, offset, at, tag, head);
                    }
                    addr += len;
                    tag += len;
                    buf = rest;
                    if round.is_full(max_fills) {
                        round.flush(mem, cache, scratch, generation, &mut on_ok, &mut on_fail)?;
                    }
                }
            }
            if round.is_full(max_fills) {
                round.flush(mem, cache, scratch, generation, &mut on_ok, &mut on_fail)?;
            }
        }
        round.flush(mem, cache, scratch, generation, &mut on_ok, &mut on_fail)
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        let cache = &*self.cache;
        cache.generation.fetch_add(1, Ordering::Relaxed);
        let MemBatch { ops, on_ok, on_fail } = batch;
        let page_size = cache.page_size as umem;
        let mut ops = ops.inspect(|op| {
            let first = op.addr.address.align_down(page_size);
            let pages = (op.addr.address - first + op.buf.len() as umem).div_ceil(page_size);
            for i in 0..pages {
                cache.invalidate(first + i * page_size);
            }
        });
        self.mem.phys_write_batch(MemBatch { ops: (&mut ops).into(), on_ok, on_fail })
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        self.mem.metadata()
    }

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
        self.mem.mem_map_callback(callback)
    }

    fn set_mem_map(&mut self, map: &[MemMapping]) {
        self.cache.clear();
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
        let mut cached = CachedMemory::new(metered.clone(), 0x4000, 0x1000, CacheValidity::Batches(100)).unwrap();
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
        let mut cached = CachedMemory::new(metered.clone(), 0x4000, 0x1000, CacheValidity::Batches(100)).unwrap();
        let rw = PhysicalAddress::with_page(Address::new(0x3000), PageType::WRITEABLE, 12);
        let _: u32 = cached.phys_read(rw).unwrap();
        let _: u32 = cached.phys_read(rw).unwrap();
        assert_eq!(metered.metrics().batches, 2);
        assert_eq!(metered.metrics().bytes_read, 8);
    }

    #[test]
    fn entries_expire_after_the_batch_count() {
        let metered = MetricsMemory::new(patterned(0x10000));
        let mut cached = CachedMemory::new(metered.clone(), 0x4000, 0x1000, CacheValidity::Batches(2)).unwrap();
        let _: u8 = cached.phys_read(table(0x1000)).unwrap();
        let _: u8 = cached.phys_read(table(0x1000)).unwrap();
        let hits_end = metered.metrics().batches;
        let _: u8 = cached.phys_read(table(0x1000)).unwrap();
        assert_eq!(metered.metrics().batches, hits_end + 1, "third read refills");
    }

    #[test]
    fn writes_invalidate_cached_pages() {
        let mut cached = CachedMemory::new(patterned(0x10000), 0x4000, 0x1000, CacheValidity::Batches(1000)).unwrap();
        let _: u64 = cached.phys_read(table(0x5000)).unwrap();
        cached.phys_write(table(0x5000), &0x1122_3344_5566_7788u64).unwrap();
        assert_eq!(cached.phys_read::<u64>(table(0x5000)).unwrap(), 0x1122_3344_5566_7788);
    }

    #[test]
    fn unreadable_pages_fail_per_chunk() {
        let mut cached = CachedMemory::new(patterned(0x2000), 0x4000, 0x1000, CacheValidity::Batches(1000)).unwrap();
        let mut buf = [0xffu8; 0x20];
        let res = cached.phys_read_raw_into(table(0x1ff0), &mut buf);
        assert!(res.is_partial());
        assert!(buf[0x10..].iter().all(|&b| b == 0));
        assert_eq!(
            &buf[..0x10],
            &patterned(0x2000).phys_view().read_raw(Address::new(0x1ff0), 0x10).data().unwrap()[..]
        );
    }

    #[test]
    fn sizes_outside_the_limits_are_refused() {
        let cache =
            |size: usize, page: usize| CachedMemory::new(patterned(0x1000), size, page, CacheValidity::Batches(1));
        for (size, page) in [
            (1 << 40, 0x1000),            // cache_size=1T
            (64 << 30, 0x1000),           // cache_size=64G
            (CACHE_SIZE_MAX + 1, 0x1000), // one byte over
            (2 << 20, 64 << 30),          // cache_page_size=64G
            (2 << 20, 1 << 30),           // cache_page_size=1G
            (2 << 20, 4 << 20),           // just over 2M
            (2 << 20, 0x800),             // under 4K
            (2 << 20, 3000),              // not a power of two
            (2 << 20, 0),
        ] {
            let err = cache(size, page).err().unwrap_or_else(|| panic!("{size:#x}/{page:#x} accepted"));
            assert_eq!(err, Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument), "{size:#x}/{page:#x}");
        }
        for page in [CACHE_PAGE_SIZE_MIN, 0x10000, CACHE_PAGE_SIZE_MAX] {
            assert_eq!(cache(4 << 20, page).unwrap().cache_bytes(), (4 << 20) / page * page);
        }
        // Smaller than a page: one page.
        assert_eq!(cache(10, 0x1000).unwrap().cache_bytes(), 0x1000);
    }

    /// Clones (the process handles of an OS layer) use the one cache: its memory is not
    /// multiplied, and a page one clone read is a hit for every other.
    #[test]
    fn clones_share_one_cache() {
        let metered = MetricsMemory::new(patterned(0x10000));
        let first = CachedMemory::new(metered.clone(), 0x8000, 0x1000, CacheValidity::Batches(1000)).unwrap();
        let mut clones: Vec<_> = (0..8).map(|_| first.clone()).collect();
        assert!(clones.iter().all(|c| c.shares_cache_with(&first) && c.cache_bytes() == 0x8000));
        assert_eq!(Arc::strong_count(&first.cache), 9);
        let other = CachedMemory::new(metered.clone(), 0x8000, 0x1000, CacheValidity::Batches(1000)).unwrap();
        assert!(!other.shares_cache_with(&first));

        let value: u64 = clones[0].phys_read(table(0x3008)).unwrap();
        let batches = metered.metrics().batches;
        for c in &mut clones[1..] {
            assert_eq!(c.phys_read::<u64>(table(0x3008)).unwrap(), value);
        }
        assert_eq!(metered.metrics().batches, batches, "every other clone hits the page the first one read");
        // A write through one clone invalidates the page for all.
        clones[3].phys_write(table(0x3008), &0xfeed_u64).unwrap();
        assert_eq!(clones[5].phys_read::<u64>(table(0x3008)).unwrap(), 0xfeed);
    }

    /// Clones on several threads, over a cache much smaller than what they read (constant
    /// eviction), always get the right bytes.
    #[test]
    fn concurrent_clones_read_correct_bytes() {
        const SIZE: usize = 0x40000;
        let truth = patterned(SIZE);
        let cached = CachedMemory::new(patterned(SIZE), 0x4000, 0x1000, CacheValidity::Batches(50)).unwrap();
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                let (mut mem, mut truth) = (cached.clone(), truth.clone());
                scope.spawn(move || {
                    let mut rng = crate::dummy::Rng::new(t);
                    for _ in 0..2000 {
                        let addr = rng.below(SIZE as u64 - 0x10) as umem;
                        let len = 1 + rng.below(0x2000.min(SIZE as u64 - addr as u64) - 1) as usize;
                        let at = table(addr);
                        let (mut got, mut want) = (vec![0u8; len], vec![0u8; len]);
                        mem.phys_read_raw_into(at, &mut got).unwrap();
                        truth.phys_read_raw_into(at, &mut want).unwrap();
                        assert_eq!(got, want, "thread {t}: {addr:#x}+{len:#x}");
                    }
                });
            }
        });
    }

    /// One read of many pages is filled in rounds of at most `FILL_BYTES`: the buffer each
    /// clone fills into stays small whatever the size of the read.
    #[test]
    fn large_reads_fill_in_bounded_rounds() {
        let metered = MetricsMemory::new(patterned(0x100000));
        let mut cached = CachedMemory::new(metered.clone(), 0x100000, 0x1000, CacheValidity::Batches(1000)).unwrap();
        let mut buf = vec![0u8; 0x100000];
        cached.phys_read_raw_into(table(0), &mut buf).unwrap();
        assert_eq!(buf, patterned(0x100000).phys_view().read_raw(Address::NULL, 0x100000).data().unwrap());
        assert_eq!(metered.metrics().batches, (0x100000 / FILL_BYTES) as u64);
        assert_eq!(cached.scratch.len(), FILL_BYTES);
    }

    proptest! {
        /// Through any mix of page types, sizes and cache sizes, cached reads equal direct ones.
        #[test]
        fn cached_reads_equal_direct_reads(
            reads in proptest::collection::vec((0u64..0x12000, 1usize..0x2400, any::<bool>()), 1..40),
            slots in 1usize..6,
        ) {
            let mut direct = patterned(0x11000);
            let mut cached = CachedMemory::new(patterned(0x11000), slots * 0x1000, 0x1000, CacheValidity::Batches(5)).unwrap();
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
