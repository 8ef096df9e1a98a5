//! Connectors: where the bytes come from.

pub mod buffer;
pub mod dummy;

pub use buffer::{Backing, BufferMemory, HeapBacking};
pub use dummy::{dummy_memory, dummy_memory_with_map};
