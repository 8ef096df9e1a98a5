//! memflow core: batched physical and virtual memory access for memory introspection.
//!
//! Bytes come from a connector as [`mem::PhysicalMemory`]; any address space is a
//! [`mem::MemoryView`] with typed helpers. See `DESIGN.md` for the whole picture.

// `umem` is `u64` or `u128` (feature `128_bit_mem`): casts and conversions that are no-ops in
// one width are needed in the other.
#![allow(clippy::unnecessary_cast, clippy::useless_conversion)]
#![warn(missing_docs)]

pub mod arch;
pub mod connector;
pub mod dummy;
pub mod error;
// cglue generates undocumented items (modules, structs, methods) for each trait group here.
#[allow(missing_docs)]
pub mod instance;
pub mod mem;
pub mod middleware;
pub mod os;
pub mod plugins;
pub mod translate;
pub mod types;
pub mod virt;

/// Re-export of the cglue version this crate's ABI is built on.
pub use cglue;

/// The items most users want in scope.
pub mod prelude {
    pub use crate::arch::ArchitectureIdent;
    pub use crate::connector::*;
    pub use crate::error::*;
    pub use crate::instance::*;
    pub use crate::mem::*;
    pub use crate::os::*;
    pub use crate::plugins::{Args, ChainInstance, Inventory};
    pub use crate::translate::{Translator, VirtualTranslate};
    pub use crate::types::*;
    pub use crate::virt::VirtualDma;
}

/// The Rust blocks of the README, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
