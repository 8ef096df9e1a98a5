//! Synthetic physical memory of a configurable size, for tests and benchmarks.

use std::sync::Arc;

use super::buffer::{BufferMemory, HeapBacking};
use crate::error::Result;
use crate::mem::MemoryMap;
use crate::types::umem;

/// `size` bytes of zeroed, writable physical memory at address 0.
pub fn dummy_memory(size: usize) -> BufferMemory {
    BufferMemory::identity(Arc::new(HeapBacking::zeroed(size))).expect("an identity map always fits its own buffer")
}

/// Zeroed, writable physical memory laid out by `map`; the backing is as large as the
/// highest backing offset the map uses.
pub fn dummy_memory_with_map(map: MemoryMap) -> Result<BufferMemory> {
    let size = map.ranges().iter().map(|r| r.backing + r.size).max().unwrap_or(0 as umem);
    BufferMemory::new(Arc::new(HeapBacking::zeroed(size as usize)), map)
}
