//! OS layers: the [`Os`] and [`Process`] traits and the records they report.

pub mod elf_image;
pub mod info;
pub mod linux;
pub mod mappings;
#[cfg(target_os = "linux")]
pub mod native;
#[allow(clippy::module_inception)]
// cglue generates undocumented items (its `cglue_*` module, opaque types) next to the trait here.
#[allow(missing_docs)]
mod os;
// cglue generates undocumented items (its `cglue_*` module, opaque types) next to the trait here.
#[allow(missing_docs)]
mod process;

/// Mapped ranges are the translator's records, shared by every address space.
pub use crate::translate::{MemoryRange, MemoryRangeCallback};
pub use info::*;
pub use os::*;
pub use process::*;
