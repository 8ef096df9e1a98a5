//! Counts what flows through a physical memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::mem::{
    MemBatch, MemChunk, MemMapping, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata,
};

/// A snapshot of the counters of a [`MetricsMemory`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Batch calls (reads and writes).
    pub batches: u64,
    /// Read operations.
    pub reads: u64,
    /// Write operations.
    pub writes: u64,
    /// Bytes read successfully.
    pub bytes_read: u64,
    /// Bytes written successfully.
    pub bytes_written: u64,
    /// Bytes that failed to read or write.
    pub bytes_failed: u64,
    /// Time spent inside the wrapped memory, in nanoseconds.
    pub busy_ns: u64,
}

#[derive(Default)]
struct Counters {
    log_on_drop: std::sync::atomic::AtomicBool,
    batches: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    bytes_failed: AtomicU64,
    busy_ns: AtomicU64,
}

impl Drop for Counters {
    fn drop(&mut self) {
        if *self.log_on_drop.get_mut() {
            log::info!(
                "connector metrics: {} batches, {} reads ({} bytes), {} writes ({} bytes), {} bytes failed, {} ms busy",
                self.batches.get_mut(),
                self.reads.get_mut(),
                self.bytes_read.get_mut(),
                self.writes.get_mut(),
                self.bytes_written.get_mut(),
                self.bytes_failed.get_mut(),
                *self.busy_ns.get_mut() / 1_000_000
            );
        }
    }
}

/// Counts batches, operations, bytes and time. Clones share the counters.
#[derive(Clone)]
pub struct MetricsMemory<P> {
    mem: P,
    counters: Arc<Counters>,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl<P: PhysicalMemory> MetricsMemory<P> {
    /// Wraps `mem` with zeroed counters.
    pub fn new(mem: P) -> Self {
        MetricsMemory { mem, counters: Arc::default() }
    }

    /// Logs the counters at `info` level when the last clone is dropped.
    pub fn log_on_drop(self) -> Self {
        self.counters.log_on_drop.store(true, Ordering::Relaxed);
        self
    }

    /// The counters so far.
    pub fn metrics(&self) -> Metrics {
        let c = &*self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Metrics {
            batches: get(&c.batches),
            reads: get(&c.reads),
            writes: get(&c.writes),
            bytes_read: get(&c.bytes_read),
            bytes_written: get(&c.bytes_written),
            bytes_failed: get(&c.bytes_failed),
            busy_ns: get(&c.busy_ns),
        }
    }

    /// The wrapped memory.
    pub fn into_inner(self) -> P {
        self.mem
    }

    /// Runs one batch call through `f`, counting ops and the bytes the callbacks report.
    fn counted<T, B: crate::mem::SplitBuf>(
        &mut self,
        batch: MemBatch<'_, '_, '_, T, B>,
        op_counter: fn(&Counters) -> &AtomicU64,
        ok_counter: fn(&Counters) -> &AtomicU64,
        f: impl FnOnce(&mut P, MemBatch<'_, '_, '_, T, B>) -> Result<()>,
    ) -> Result<()> {
        let counters = self.counters.clone();
        let MemBatch { ops, mut on_ok, mut on_fail } = batch;
        let mut ops = ops.inspect(|_| add(op_counter(&counters), 1));
        let mut ok = |c: MemChunk<B>| {
            add(ok_counter(&counters), c.buf.len() as u64);
            crate::mem::report(&mut on_ok, c.tag, c.buf);
            true
        };
        let mut fail = |c: MemChunk<B>| {
            add(&counters.bytes_failed, c.buf.len() as u64);
            crate::mem::report(&mut on_fail, c.tag, c.buf);
            true
        };
        let start = Instant::now();
        let res = f(
            &mut self.mem,
            MemBatch {
                ops: (&mut ops).into(),
                on_ok: Some(&mut (&mut ok).into()),
                on_fail: Some(&mut (&mut fail).into()),
            },
        );
        add(&self.counters.busy_ns, start.elapsed().as_nanos() as u64);
        add(&self.counters.batches, 1);
        res
    }
}

impl<P: PhysicalMemory> PhysicalMemory for MetricsMemory<P> {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        self.counted(batch, |c| &c.reads, |c| &c.bytes_read, |m, b| m.phys_read_batch(b))
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.counted(batch, |c| &c.writes, |c| &c.bytes_written, |m, b| m.phys_write_batch(b))
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        self.mem.metadata()
    }

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
        self.mem.mem_map_callback(callback)
    }

    fn set_mem_map(&mut self, map: &[MemMapping]) {
        self.mem.set_mem_map(map)
    }
}
