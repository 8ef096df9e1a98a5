//! A virtual address space (a process's, the kernel's) as the source of a dump: its mapped
//! ranges are the memory map and reads go through the view, so [`super::write_dump`] writes the
//! memory at its virtual addresses (an ELF core's `PT_LOAD`s then carry them as `p_vaddr` and
//! `p_paddr` alike). Pages the view cannot read (swapped out, unmapped meanwhile) are holes.

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::{
    MemBatch, MemMappingCallback, MemOp, MemoryMap, MemoryView, PhysReadBatch, PhysWriteBatch, PhysicalMemory,
    PhysicalMemoryMetadata,
};
use crate::translate::MemoryRange;
use crate::types::PhysicalAddress;

/// The mapped memory of `view` served as physical memory at the same addresses (read-only).
pub struct ViewSource<V> {
    view: V,
    map: MemoryMap,
}

impl<V: MemoryView> ViewSource<V> {
    /// Serves `ranges` of `view` (as a process's `mapped_mem` lists them; overlapping or
    /// wrapping ranges are an error).
    pub fn new(view: V, ranges: &[MemoryRange]) -> Result<Self> {
        let mut map = MemoryMap::new();
        for r in ranges {
            map.push(r.base, r.size, r.base.to_umem())?;
        }
        Ok(ViewSource { view, map })
    }
}

impl<V: MemoryView> PhysicalMemory for ViewSource<V> {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        let MemBatch { ops, on_ok, on_fail } = batch;
        let ops = ops.map(|op: MemOp<PhysicalAddress, _>| MemOp { addr: op.addr.address, tag: op.tag, buf: op.buf });
        MemBatch::with(ops, on_ok, on_fail, |b| self.view.read_batch(b))
    }

    fn phys_write_batch(&mut self, _batch: PhysWriteBatch) -> Result<()> {
        Err(Error::new(ErrorOrigin::Connector, ErrorKind::ReadOnly).with_reason("a dump source is read-only"))
    }

    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        self.view.read_single(addr.address, out)
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        PhysicalMemoryMetadata {
            max_address: self.map.max_address(),
            real_size: self.map.real_size(),
            readonly: true,
            ideal_batch_size: u32::MAX,
        }
    }

    fn mem_map_callback(&self, callback: MemMappingCallback) -> Result<()> {
        self.map.report(callback);
        Ok(())
    }
}
