//! Synthetic physical memory of a configurable size, for tests and benchmarks.

use std::sync::Arc;

use super::buffer::{BufferMemory, HeapBacking};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::MemoryMap;
use crate::types::umem;

/// `size` bytes of zeroed, writable physical memory at address 0, allocated fallibly
/// (`OutOfMemory` if they cannot be). Zero pages are only committed once written.
pub fn try_dummy_memory(size: usize) -> Result<BufferMemory> {
    BufferMemory::identity(Arc::new(HeapBacking::zeroed(size)?))
}

/// [`try_dummy_memory`] for sizes written in the code (tests, benchmarks).
///
/// # Panics
///
/// If the memory cannot be allocated; sizes from users or files go through
/// [`try_dummy_memory`].
#[allow(clippy::expect_used, reason = "documented panic for sizes written in the code")]
pub fn dummy_memory(size: usize) -> BufferMemory {
    try_dummy_memory(size).expect("synthetic memory of a size written in the code")
}

/// Zeroed, writable physical memory laid out by `map`; the backing is as large as the
/// highest backing offset the map uses, allocated fallibly.
pub fn dummy_memory_with_map(map: MemoryMap) -> Result<BufferMemory> {
    let size = map.ranges().iter().map(|r| r.backing + r.size).max().unwrap_or(0 as umem);
    let size = usize::try_from(size).map_err(|_| {
        Error::new(ErrorOrigin::Connector, ErrorKind::OutOfMemory)
            .with_reason(format_args!("synthetic memory of {size:#x} bytes does not fit in this process"))
    })?;
    BufferMemory::new(Arc::new(HeapBacking::zeroed(size)?), map)
}
