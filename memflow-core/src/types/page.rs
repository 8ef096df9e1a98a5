//! Page flags and physical addresses that carry them.

use super::{umem, Address};

bitflags::bitflags! {
    /// What is known about the page an address lies in.
    ///
    /// Translation sets these from the page-table entries of every level; caches use them
    /// to decide what is safe to keep.
    #[repr(transparent)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PageType: u8 {
        /// The page holds a page table.
        const PAGE_TABLE = 0b0000_0001;
        /// Every level allows writes.
        const WRITEABLE = 0b0000_0010;
        /// Some level forbids instruction fetches.
        const NOEXEC = 0b0000_0100;
        /// Every level allows user-mode access.
        const USER = 0b0000_1000;
        /// Nothing is known about the page (e.g. a raw physical read).
        const UNKNOWN = 0b1000_0000;
    }
}

impl PageType {
    /// True if the page is known to be read-only (flags known and not writeable).
    pub fn is_read_only(self) -> bool {
        !self.contains(PageType::UNKNOWN) && !self.contains(PageType::WRITEABLE)
    }
}

/// A physical address, with the type and size of the page it lies in when known.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PhysicalAddress {
    /// The address itself.
    pub address: Address,
    /// Flags of the page; [`PageType::UNKNOWN`] when not known.
    pub page_type: PageType,
    /// log2 of the page size, 0 when not known.
    pub page_size_log2: u8,
}

impl PhysicalAddress {
    /// A physical address with nothing known about its page.
    pub const fn plain(address: Address) -> Self {
        PhysicalAddress { address, page_type: PageType::UNKNOWN, page_size_log2: 0 }
    }

    /// A physical address inside a page of `1 << page_size_log2` bytes with the given flags.
    pub const fn with_page(address: Address, page_type: PageType, page_size_log2: u8) -> Self {
        PhysicalAddress { address, page_type, page_size_log2 }
    }

    /// The page size in bytes, if known.
    pub fn page_size(&self) -> Option<umem> {
        (self.page_size_log2 != 0).then(|| (1 as umem) << self.page_size_log2)
    }

    /// The start of the page, if the page size is known.
    pub fn page_base(&self) -> Option<Address> {
        self.page_size().map(|s| self.address.align_down(s))
    }
}

impl From<Address> for PhysicalAddress {
    fn from(address: Address) -> Self {
        PhysicalAddress::plain(address)
    }
}

impl From<umem> for PhysicalAddress {
    fn from(address: umem) -> Self {
        PhysicalAddress::plain(Address::new(address))
    }
}
