//! Connectors: where the bytes come from.

pub mod avml;
mod block_cache;
pub mod buffer;
mod bytes;
mod codec;
pub mod compressed;
// cglue generates undocumented items (its `cglue_*` module, opaque types) next to the trait here.
#[allow(missing_docs)]
pub mod cpu_state;
pub mod detect;
pub mod dummy;
pub mod elf;
pub mod file;
pub mod kdump;
pub mod lime;
mod lzo;
#[cfg(target_os = "linux")]
pub mod qemu;
#[cfg(test)]
mod testdata;
pub mod write;

pub use buffer::{Backing, BufferMemory, HeapBacking};
pub use compressed::{CompressedMemory, DEFAULT_CACHE_SIZE};
pub use cpu_state::{AArch64Registers, CpuState, RiscVRegisters, X86ArchHint, X86RegisterSet, X86Registers};
pub use detect::{open, ParsedDump};
pub use dummy::{dummy_memory, dummy_memory_with_map, try_dummy_memory};
pub use file::{DumpFormat, DumpInfo, FileConnector, OpenOptions};
pub use write::{write_dump, DumpMeta, KdumpCodec, Progress, ViewSource, WriteFormat, WriteSummary};
