//! OS layers: the [`Os`] and [`Process`] traits and the records they report.

pub mod elf_image;
pub mod info;
pub mod linux;
pub mod mappings;
#[cfg(target_os = "linux")]
pub mod native;
#[allow(clippy::module_inception)]
mod os;
mod process;

pub use info::*;
pub use os::*;
pub use process::*;
