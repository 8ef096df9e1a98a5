//! Physical memory served from a compressed dump (kdump, AVML): blocks are decompressed on
//! demand into a bounded cache, never the whole dump at once.
//!
//! A read looks up the block holding each address, takes it from the cache or decompresses
//! it into a cache slot, and copies out. Addresses no block holds (excluded pages, gaps)
//! are reported as failed, so a read over them is partial. A block that does not decompress
//! to its size fails the same way, and the reason (with the file offset) is logged once per
//! block.
//!
//! Each clone has its own cache (of the configured size) and decompression state, so clones
//! read from several threads without locking; the file mapping and the index are shared.
//! Within one batch each block is decompressed at most once as long as the blocks the batch
//! touches fit in the cache. A batch that needs many blocks the cache lacks has them
//! decompressed on two threads first ([`PARALLEL_MIN_BLOCKS`]): decompression, not the
//! lookups or copies, is what opening a compressed dump spends its time on.
//!
//! The compressed file is memory-mapped, and every page of it a reader touched would stay
//! mapped, so a pass over a dump (writing it in another format, a scan) would grow the process
//! by the compressed file's size. Each reader therefore lets the mapped pages go
//! ([`Backing::release`]) after every [`RELEASE_AFTER`] stored bytes it decompressed. They stay
//! in the page cache: what is read again (the index, a shared zero page) comes back for a
//! page fault, which costs far less than decompressing the same bytes did.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use cglue::slice::CSliceMut;

use super::avml::Avml;
use super::block_cache::{BlockCache, KeyHasher};
use super::buffer::Backing;
use super::codec::{Codec, Decompressors};
use super::kdump::Kdump;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::alloc::zeroed_vec;
use crate::mem::partial::read_single;
use crate::mem::{
    ChunkCallback, MemBatch, MemOp, MemoryMap, PhysReadBatch, PhysReadOp, PhysWriteBatch, PhysicalMemory,
    PhysicalMemoryMetadata,
};
use crate::types::PhysicalAddress;

/// The default size of each reader's block cache.
pub const DEFAULT_CACHE_SIZE: usize = 32 << 20;

/// Stored (compressed) bytes one reader decompresses before it lets the file's mapped pages go.
pub const RELEASE_AFTER: u64 = 16 << 20;

/// A block of guest memory stored in a compressed dump.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// Guest physical address of its first byte.
    pub(crate) start: u64,
    /// Its size once decompressed.
    pub(crate) len: u64,
    /// How it is stored.
    pub(crate) codec: Codec,
    /// Where the stored bytes are (a file offset; a dump offset for flattened kdumps). Also
    /// the block's cache key: blocks stored once and shared (kdump's zero page) share it.
    pub(crate) stored_at: u64,
    /// How many bytes are stored.
    pub(crate) stored_len: u64,
}

/// What holds a guest address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A stored block.
    Block(Block),
    /// Nothing, up to `end` (exclusive).
    Absent {
        /// The first address that may be held again.
        end: u64,
    },
}

/// The index of a compressed dump.
#[derive(Debug)]
pub(crate) enum Store {
    /// A compressed kdump.
    Kdump(Kdump),
    /// An AVML capture.
    Avml(Avml),
}

impl Store {
    fn lookup(&self, file: &[u8], addr: u64) -> Result<Lookup> {
        match self {
            Store::Kdump(k) => k.lookup(file, addr),
            Store::Avml(a) => Ok(a.lookup(addr)),
        }
    }

    fn stored<'a>(&self, file: &'a [u8], block: &Block) -> Result<Cow<'a, [u8]>> {
        match self {
            Store::Kdump(k) => k.stored(file, block),
            Store::Avml(a) => a.stored(file, block),
        }
    }

    /// The largest block.
    fn max_block(&self) -> u64 {
        match self {
            Store::Kdump(k) => k.block_size(),
            Store::Avml(_) => super::avml::MAX_CHUNK,
        }
    }

    fn map(&self) -> &MemoryMap {
        match self {
            Store::Kdump(k) => k.map(),
            Store::Avml(a) => a.map(),
        }
    }
}

/// The fewest missing blocks a batch must need before they are decompressed on two threads:
/// fewer do not pay for starting a thread (tens of microseconds, a zlib page takes about 16).
pub const PARALLEL_MIN_BLOCKS: usize = 16;

/// What all clones share.
struct Shared {
    /// Keeps the file's bytes alive.
    file: Arc<dyn Backing>,
    store: Store,
    /// Blocks whose failure was logged already.
    logged: Mutex<HashSet<u64, std::hash::BuildHasherDefault<KeyHasher>>>,
}

impl Shared {
    fn file(&self) -> &[u8] {
        let (ptr, len) = self.file.bytes();
        // SAFETY: `Backing` keeps `len` bytes at `ptr` valid while it lives, and `self.file`
        // lives as long as `self`. The connector never writes through the mapping.
        unsafe { core::slice::from_raw_parts(ptr, len) }
    }
}

/// Physical memory of a compressed dump; see the module documentation.
pub struct CompressedMemory {
    shared: Arc<Shared>,
    cache: BlockCache,
    codecs: Decompressors,
    /// The block found last and its cache slot, valid until the next insertion: reads that
    /// stay in one block (a page-table walk's entries) skip the lookup.
    last: Option<(Block, usize)>,
    /// Stored bytes decompressed since the file's pages were last released.
    decompressed: u64,
}

impl CompressedMemory {
    /// Serves `store`, an index of the dump in `file`, with a block cache of `cache_size`
    /// bytes per reader.
    pub(crate) fn new(file: Arc<dyn Backing>, store: Store, cache_size: usize) -> Result<Self> {
        let cache = BlockCache::new(cache_size, store.max_block() as usize)?;
        let shared = Arc::new(Shared { file, store, logged: Mutex::default() });
        Ok(CompressedMemory { shared, cache, codecs: Decompressors::default(), last: None, decompressed: 0 })
    }

    /// The guest physical ranges the dump covers (backing = guest address). Inside them,
    /// pages the dump left out still read as absent.
    pub fn map(&self) -> &MemoryMap {
        self.shared.store.map()
    }

    /// The size of each reader's block cache in bytes (whole blocks).
    pub fn cache_size(&self) -> usize {
        self.cache.capacity()
    }

    /// The cached block holding `addr` and its slot, or the end of the gap if no block holds
    /// it (or the block holding it cannot be read).
    fn block(&mut self, addr: u64) -> core::result::Result<(Block, usize), u64> {
        if let Some((b, slot)) = self.last {
            if addr.wrapping_sub(b.start) < b.len {
                return Ok((b, slot));
            }
        }
        let file = self.shared.file();
        let block = match self.shared.store.lookup(file, addr) {
            Ok(Lookup::Block(b)) => b,
            Ok(Lookup::Absent { end }) => return Err(end),
            Err(e) => {
                self.log_once(addr, &e);
                // Skip to the next block boundary.
                return Err((addr | (self.shared.store.max_block() - 1)).saturating_add(1));
            }
        };
        let slot = match self.cache.find(block.stored_at) {
            Some(slot) => slot,
            None => {
                self.decompressed = self.decompressed.saturating_add(block.stored_len);
                let (store, codecs) = (&self.shared.store, &mut self.codecs);
                let filled = self.cache.insert(block.stored_at, |slot| {
                    let stored = store.stored(file, &block)?;
                    codecs.decompress(block.codec, &stored, &mut slot[..block.len as usize]).map_err(|why| {
                        Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                            "{} block at offset {:#x} ({:#x} bytes) for guest {:#x}: {why}",
                            block.codec.name(),
                            block.stored_at,
                            block.stored_len,
                            block.start
                        ))
                    })
                });
                match filled {
                    Ok(slot) => slot,
                    Err(e) => {
                        self.last = None;
                        self.log_once(block.stored_at, &e);
                        return Err(block.start + block.len);
                    }
                }
            }
        };
        self.last = Some((block, slot));
        Ok((block, slot))
    }

    /// Reads `op` from the blocks (cached or decompressed now) and reports its bytes as done
    /// or, where no block holds them or one fails, as failed.
    fn serve<'buf>(
        &mut self,
        op: PhysReadOp<'buf>,
        on_ok: &mut Option<&mut ChunkCallback<'_, CSliceMut<'buf, u8>>>,
        on_fail: &mut Option<&mut ChunkCallback<'_, CSliceMut<'buf, u8>>>,
    ) {
        let addr = u64::try_from(op.addr.address.to_umem()).unwrap_or(u64::MAX);
        let mut rest: &mut [u8] = op.buf.into();
        let mut tag = op.tag;
        // Bytes of `rest` already handled with the status `ok`, not reported yet.
        let (mut pending, mut ok) = (0usize, true);
        let total = rest.len();
        let mut done = 0usize;
        let mut report = |ok: bool, tag, bytes| match ok {
            true => crate::mem::report(on_ok, tag, bytes),
            false => crate::mem::report(on_fail, tag, bytes),
        };
        while done < total {
            let at = addr.saturating_add(done as u64);
            let (status, n) = match self.block(at) {
                Ok((b, slot)) => {
                    let into = (at - b.start) as usize;
                    let n = (b.len as usize - into).min(total - done);
                    rest[pending..pending + n].copy_from_slice(&self.cache.slot(slot)[into..into + n]);
                    (true, n)
                }
                Err(end) => (false, (end.saturating_sub(at)).clamp(1, (total - done) as u64) as usize),
            };
            if status != ok && pending > 0 {
                let (head, tail) = core::mem::take(&mut rest).split_at_mut(pending);
                report(ok, tag, CSliceMut::from(head));
                tag += pending;
                rest = tail;
                pending = 0;
            }
            ok = status;
            pending += n;
            done += n;
        }
        if pending > 0 {
            report(ok, tag, CSliceMut::from(rest));
        }
    }

    /// Decompresses the blocks `ops` need that the cache lacks on two threads and puts them
    /// in the cache, if there are at least [`PARALLEL_MIN_BLOCKS`] of them (at most half the
    /// cache, so that none is evicted before the batch reads it). A block that fails is left
    /// out: the read then meets it again and reports it.
    fn prefetch(&mut self, ops: &[PhysReadOp<'_>]) {
        let budget = self.cache.slots() / 2;
        if budget < PARALLEL_MIN_BLOCKS {
            return;
        }
        let shared = self.shared.clone();
        let file = shared.file();
        let mut missing: Vec<Block> = Vec::new();
        let mut seen: HashSet<u64, std::hash::BuildHasherDefault<KeyHasher>> = HashSet::default();
        'ops: for op in ops {
            let start = u64::try_from(op.addr.address.to_umem()).unwrap_or(u64::MAX);
            let end = start.saturating_add(op.buf.len() as u64);
            let mut at = start;
            while at < end {
                at = match shared.store.lookup(file, at) {
                    Ok(Lookup::Block(b)) => {
                        if self.cache.find(b.stored_at).is_none() && seen.insert(b.stored_at) {
                            missing.push(b);
                            if missing.len() == budget {
                                break 'ops;
                            }
                        }
                        b.start.saturating_add(b.len)
                    }
                    Ok(Lookup::Absent { end }) => end,
                    // The read reports it.
                    Err(_) => break,
                }
                .max(at.saturating_add(1));
            }
        }
        // Asked once: it reads the CPU affinity and the cgroup limits.
        static CORES: OnceLock<usize> = OnceLock::new();
        let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if missing.len() < PARALLEL_MIN_BLOCKS || cores < 2 {
            return;
        }
        self.decompressed = missing.iter().fold(self.decompressed, |n, b| n.saturating_add(b.stored_len));
        let (first, second) = missing.split_at(missing.len() / 2);
        // A plain thread, not `thread::scope`: a scope registers the calling thread with std,
        // and on a thread that C code made (the C API's callers) that registration is never
        // freed.
        let helper = {
            let (shared, blocks) = (self.shared.clone(), second.to_vec());
            std::thread::Builder::new()
                .spawn(move || decompress_blocks(&shared, &blocks, &mut Decompressors::default()))
        };
        let done_first = decompress_blocks(&self.shared, first, &mut self.codecs);
        // If the thread could not start (or panicked, which none is expected to), its blocks
        // are left to the read.
        let done_second = helper.ok().and_then(|h| h.join().ok()).unwrap_or_default();
        for (block, bytes) in missing.iter().zip(done_first.into_iter().chain(done_second)) {
            if let Some(bytes) = bytes {
                // Only fails to allocate the cache's memory; the read then tries again.
                let _ = self.cache.insert(block.stored_at, |slot| {
                    slot[..bytes.len()].copy_from_slice(&bytes);
                    Ok(())
                });
            }
        }
        self.last = None;
    }

    /// Lets the file's mapped pages go once [`RELEASE_AFTER`] stored bytes were decompressed
    /// since the last time (see the module documentation).
    fn release_file_pages(&mut self) {
        if self.decompressed >= RELEASE_AFTER {
            self.decompressed = 0;
            self.shared.file.release(0, self.shared.file.bytes().1);
        }
    }

    /// Logs `e` the first time a block (by `key`) fails.
    fn log_once(&self, key: u64, e: &Error) {
        let first = self.shared.logged.lock().map(|mut seen| seen.len() < 4096 && seen.insert(key)).unwrap_or(false);
        if first {
            log::warn!("compressed dump: {e}");
        }
    }
}

/// Decompresses each of `blocks` of the dump `shared` into a buffer of its own; `None` for
/// those that fail (the read meets them again and reports them).
fn decompress_blocks(shared: &Shared, blocks: &[Block], codecs: &mut Decompressors) -> Vec<Option<Vec<u8>>> {
    let file = shared.file();
    blocks
        .iter()
        .map(|b| {
            let mut out = zeroed_vec(b.len as usize, ErrorOrigin::Connector, "a decompressed block").ok()?;
            let stored = shared.store.stored(file, b).ok()?;
            codecs.decompress(b.codec, &stored, &mut out).ok()?;
            Some(out)
        })
        .collect()
}

impl Clone for CompressedMemory {
    /// A reader of the same dump with an empty cache of the same size.
    fn clone(&self) -> Self {
        CompressedMemory {
            shared: self.shared.clone(),
            cache: self.cache.empty_like(),
            codecs: Decompressors::default(),
            last: None,
            decompressed: 0,
        }
    }
}

// The read methods stay out of line: `FileConnector` dispatches to them beside the mapped
// formats' inlined copy path, which must stay small.
impl PhysicalMemory for CompressedMemory {
    #[inline(never)]
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        let MemBatch { mut ops, mut on_ok, mut on_fail } = batch;
        let Some(first) = ops.next() else { return Ok(()) };
        match ops.next() {
            // One read (what single reads come as): no list of the batch is made.
            None => {
                if first.buf.len() as u64 > self.shared.store.max_block() {
                    self.prefetch(core::slice::from_ref(&first));
                }
                self.serve(first, &mut on_ok, &mut on_fail);
            }
            Some(second) => {
                let ops: Vec<_> = [first, second].into_iter().chain(ops).collect();
                self.prefetch(&ops);
                for op in ops {
                    self.serve(op, &mut on_ok, &mut on_fail);
                }
            }
        }
        self.release_file_pages();
        Ok(())
    }

    #[inline(never)]
    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        read_single(MemOp { addr, tag: addr.address, buf: out.into() }, |b| self.phys_read_batch(b))
    }

    fn phys_write_batch(&mut self, _batch: PhysWriteBatch) -> Result<()> {
        Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::ReadOnly)
            .with_reason("a compressed dump is read-only: its pages cannot be changed in place"))
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        let map = self.map();
        PhysicalMemoryMetadata {
            max_address: map.max_address(),
            real_size: map.real_size(),
            readonly: true,
            ideal_batch_size: u32::MAX,
        }
    }

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
        self.map().report(callback);
        Ok(())
    }
}

impl core::fmt::Debug for CompressedMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CompressedMemory").field("store", &self.shared.store).field("cache", &self.cache).finish()
    }
}
