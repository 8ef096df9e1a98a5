//! Simulates a high-latency connector (a remote machine, a slow DMA link).

use std::time::Duration;

use crate::error::Result;
use crate::mem::{MemMapping, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata};

/// The longest delay the `delay` option accepts: a round trip of one second is already far
/// slower than any real link.
pub const DELAY_MAX: Duration = Duration::from_secs(1);

/// Waits a fixed time per batch call, as a round trip to a remote target would take.
///
/// This is what batching saves: a thousand reads in one batch wait once.
#[derive(Clone)]
pub struct DelayedMemory<P> {
    mem: P,
    delay: Duration,
}

impl<P: PhysicalMemory> DelayedMemory<P> {
    /// Wraps `mem`, adding `delay` to every batch call.
    pub fn new(mem: P, delay: Duration) -> Self {
        DelayedMemory { mem, delay }
    }

    /// The wrapped memory.
    pub fn into_inner(self) -> P {
        self.mem
    }
}

impl<P: PhysicalMemory> PhysicalMemory for DelayedMemory<P> {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        std::thread::sleep(self.delay);
        self.mem.phys_read_batch(batch)
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        std::thread::sleep(self.delay);
        self.mem.phys_write_batch(batch)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::dummy_memory;
    use crate::types::Address;

    #[test]
    fn forwards_reads_and_writes() {
        let mut mem = DelayedMemory::new(dummy_memory(0x2000), Duration::from_micros(10));
        mem.phys_write(Address::new(0x100).into(), &0xdead_beefu32).unwrap();
        assert_eq!(mem.phys_read::<u32>(Address::new(0x100).into()).unwrap(), 0xdead_beef);
        assert_eq!(mem.metadata().real_size, 0x2000);
    }
}
