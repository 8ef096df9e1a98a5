//! Memory access: the batch types, physical memory, memory views and their helpers, and the
//! fallible allocation every size from outside goes through.

pub mod alloc;
pub mod batch;
mod batcher;
mod cursor;
pub mod host_process;
pub mod map;
pub(crate) mod partial;
// cglue generates undocumented items (its `cglue_*` module, opaque types) next to the trait here.
#[allow(missing_docs)]
mod phys;
// cglue generates undocumented items (its `cglue_*` module, opaque types) next to the trait here.
#[allow(missing_docs)]
mod view;

pub use batch::*;
pub use batcher::MemoryBatcher;
pub use cursor::MemoryCursor;
pub use host_process::{HostProcessMemory, MAX_IOVECS};
pub use map::{MapPiece, MemMapping, MemMappingCallback, MemoryMap};
pub use phys::*;
pub use view::*;
