//! The records translation reports and the callbacks that receive them.

use cglue::callback::OpaqueCallback;

use crate::error::Error;
use crate::types::{umem, Address, PageType, PhysicalAddress};

/// A translated address.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct VirtualTranslation {
    /// The virtual address.
    pub va: Address,
    /// Where it lives, with the flags and size of its page.
    pub pa: PhysicalAddress,
}

/// An address that could not be translated.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TranslationFailure {
    /// The virtual address.
    pub va: Address,
    /// Why: `Translation/OutOfBounds` (not canonical), `Translation/Unmapped` (an entry on the
    /// way is not present or invalid) or `PhysicalMemory/OutOfBounds` (a table is unreadable).
    pub error: Error,
}

/// A mapped range of an address space whose pages have the same flags.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemoryRange {
    /// The first address.
    pub base: Address,
    /// The length in bytes.
    pub size: umem,
    /// The flags of every page in it.
    pub page_type: PageType,
}

/// A range of virtual memory that maps to one contiguous range of physical memory.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TranslationRange {
    /// The first virtual address.
    pub va: Address,
    /// The first physical address.
    pub pa: Address,
    /// The length in bytes.
    pub size: umem,
    /// The flags of every page in it.
    pub page_type: PageType,
}

/// Receives translated addresses.
pub type TranslationCallback<'a> = OpaqueCallback<'a, VirtualTranslation>;
/// Receives addresses that could not be translated.
pub type FailureCallback<'a> = OpaqueCallback<'a, TranslationFailure>;
/// Receives mapped ranges; return `false` to stop.
pub type MemoryRangeCallback<'a> = OpaqueCallback<'a, MemoryRange>;
/// Receives virtual-to-physical ranges.
pub type TranslationRangeCallback<'a> = OpaqueCallback<'a, TranslationRange>;
