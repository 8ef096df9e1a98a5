//! A dump whose reads the tests alter: bytes patched (a corrupt guest) and pages that fail
//! (unreadable memory, as a guest's MMIO holes are); and counted.

#![allow(clippy::unnecessary_cast)] // casts between `umem` and `u64` are needed when `umem` is `u128`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memflow_core::connector::FileConnector;
use memflow_core::error::Result;
use memflow_core::mem::{
    MemMappingCallback, MemOp, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata,
};

/// `inner` with `patches` applied to what it reads and the ranges of `failing` unreadable.
#[derive(Clone)]
pub struct Altered {
    /// The dump.
    pub inner: FileConnector,
    /// Physical address and the bytes that replace the memory there.
    pub patches: Vec<(u64, Vec<u8>)>,
    /// `(address, length)` ranges whose reads fail: a read touching one fails whole.
    pub failing: Vec<(u64, u64)>,
    /// Bytes read through it and its clones.
    pub bytes_read: Arc<AtomicU64>,
}

impl PhysicalMemory for Altered {
    fn phys_read_batch(&mut self, mut batch: PhysReadBatch) -> Result<()> {
        while let Some(MemOp { addr, tag, mut buf }) = batch.ops.next() {
            let start = addr.address.to_umem() as u64;
            let end = start + buf.len() as u64;
            self.bytes_read.fetch_add(buf.len() as u64, Ordering::Relaxed);
            let res = self.inner.phys_read_raw_into(addr, &mut buf);
            for (at, bytes) in &self.patches {
                for (i, b) in bytes.iter().enumerate() {
                    let a = at + i as u64;
                    if a >= start && a < end {
                        buf[(a - start) as usize] = *b;
                    }
                }
            }
            if res.is_ok() && !self.failing.iter().any(|&(b, l)| b < end && b + l > start) {
                batch.ok(tag, buf);
            } else {
                batch.fail(tag, buf);
            }
        }
        Ok(())
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.inner.phys_write_batch(batch)
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        self.inner.metadata()
    }

    fn mem_map_callback(&self, callback: MemMappingCallback) -> Result<()> {
        self.inner.mem_map_callback(callback)
    }
}
