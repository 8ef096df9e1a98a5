//! Basic types: addresses, physical addresses with page flags, target pointers, size units.

mod address;
mod page;
mod pointer;
pub mod size;

pub use address::{imem, umem, Address, UMEM_BITS};
pub use page::{PageType, PhysicalAddress};
pub use pointer::{Pointer, Pointer32, Pointer64, PointerWidth};
