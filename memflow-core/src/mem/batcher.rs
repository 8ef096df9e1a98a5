//! Collects many small reads and writes, then issues them as one batched call.

use bytemuck::Pod;

use super::batch::MemOp;
use super::partial::{read_zeroing, write_checking};
use super::view::MemoryView;
use crate::error::{PartialError, PartialResult};
use crate::types::Address;

/// Queues reads and writes against a view and runs them together on [`MemoryBatcher::commit`]
/// (also on drop, ignoring the outcome). High-latency backends then pay one round trip.
pub struct MemoryBatcher<'a, V: MemoryView> {
    view: &'a mut V,
    reads: Vec<(Address, &'a mut [u8])>,
    writes: Vec<(Address, &'a [u8])>,
}

impl<'a, V: MemoryView> MemoryBatcher<'a, V> {
    /// An empty batcher over `view`.
    pub fn new(view: &'a mut V) -> Self {
        MemoryBatcher { view, reads: Vec::new(), writes: Vec::new() }
    }

    /// Queues a raw read into `out`.
    pub fn read_raw_into(&mut self, addr: Address, out: &'a mut [u8]) -> &mut Self {
        self.reads.push((addr, out));
        self
    }

    /// Queues a read of a plain-old-data value into `out`.
    pub fn read_into<T: Pod>(&mut self, addr: Address, out: &'a mut T) -> &mut Self {
        self.read_raw_into(addr, bytemuck::bytes_of_mut(out))
    }

    /// Queues a raw write of `data`.
    pub fn write_raw(&mut self, addr: Address, data: &'a [u8]) -> &mut Self {
        self.writes.push((addr, data));
        self
    }

    /// Queues a write of a plain-old-data value.
    pub fn write<T: Pod>(&mut self, addr: Address, data: &'a T) -> &mut Self {
        self.write_raw(addr, bytemuck::bytes_of(data))
    }

    /// Runs the queued writes, then the queued reads, each as one batch.
    ///
    /// Unreadable bytes are zeroed; the result is partial if any read or write failed in part.
    pub fn commit(&mut self) -> PartialResult<()> {
        let writes = core::mem::take(&mut self.writes);
        let write_res =
            write_checking(writes.into_iter().map(|(addr, d)| MemOp { addr, tag: addr, buf: d.into() }), |b| {
                self.view.write_batch(b)
            });
        let reads = core::mem::take(&mut self.reads);
        let read_res = read_zeroing(reads.into_iter().map(|(addr, d)| MemOp { addr, tag: addr, buf: d.into() }), |b| {
            self.view.read_batch(b)
        });
        match (write_res, read_res) {
            (Err(PartialError::Error(e)), _) | (_, Err(PartialError::Error(e))) => Err(e.into()),
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

impl<V: MemoryView> Drop for MemoryBatcher<'_, V> {
    fn drop(&mut self) {
        if !self.reads.is_empty() || !self.writes.is_empty() {
            // The caller chose not to look at the outcome by not calling commit.
            let _ = self.commit();
        }
    }
}
