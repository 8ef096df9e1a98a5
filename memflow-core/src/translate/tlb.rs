//! A software TLB: recent translations keyed by table root and virtual page.
//!
//! Direct mapped: a translation is stored at one slot chosen by hashing the root, the page
//! number and the page size, and looked up by probing each page size the architecture has.
//! Entries go stale when the guest changes its tables; [`Tlb::flush`] drops them all, and an
//! optional maximum age drops them all when it has passed since the last flush.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`

use std::time::{Duration, Instant};

use crate::arch::Architecture;
use crate::types::{umem, Address, PageType, PhysicalAddress};

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct TlbEntry {
    /// Top table of the address space, `Address::INVALID` for an empty slot.
    root: Address,
    /// The virtual page number (`va >> size_log2`).
    page: umem,
    size_log2: u8,
    page_type: PageType,
    /// The physical page base.
    pa: Address,
}

const EMPTY: TlbEntry =
    TlbEntry { root: Address::INVALID, page: 0, size_log2: 0, page_type: PageType::empty(), pa: Address::NULL };

/// A software TLB with a fixed number of slots (see the module docs).
#[derive(Clone, Debug)]
pub struct Tlb {
    entries: Vec<TlbEntry>,
    max_age: Option<Duration>,
    flushed: Instant,
}

impl Tlb {
    /// A TLB of `slots` slots (rounded up to a power of two, at least 1), without a maximum age.
    pub fn new(slots: usize) -> Self {
        Tlb { entries: vec![EMPTY; slots.max(1).next_power_of_two()], max_age: None, flushed: Instant::now() }
    }

    /// Drops every entry once `age` has passed since the last flush.
    pub fn with_max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// The bytes the slots take.
    pub fn bytes(&self) -> usize {
        self.entries.len() * core::mem::size_of::<TlbEntry>()
    }

    /// Drops every entry.
    pub fn flush(&mut self) {
        self.entries.fill(EMPTY);
        self.flushed = Instant::now();
    }

    /// Flushes if the maximum age has passed. Called once per window of translations.
    pub fn expire(&mut self) {
        if self.max_age.is_some_and(|age| self.flushed.elapsed() > age) {
            self.flush();
        }
    }

    fn slot(&self, root: Address, page: umem, size_log2: u8) -> usize {
        let mut h = (root.to_umem() as u64) ^ (page as u64).rotate_left(17) ^ u64::from(size_log2) << 58;
        h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as usize & (self.entries.len() - 1)
    }

    /// The translation of `va` under the top table `root`, if cached.
    #[inline]
    pub fn lookup(&self, arch: &Architecture, root: Address, va: Address) -> Option<PhysicalAddress> {
        arch.levels().iter().filter(|l| l.leaf).find_map(|l| {
            let page = va.to_umem() >> l.shift;
            let e = &self.entries[self.slot(root, page, l.shift)];
            (e.root == root && e.page == page && e.size_log2 == l.shift).then(|| {
                let pa = e.pa + va.page_offset((1 as umem) << l.shift);
                PhysicalAddress::with_page(pa, e.page_type, l.shift)
            })
        })
    }

    /// Remembers that `va` under `root` translates to `pa` (which carries its page size).
    #[inline]
    pub fn insert(&mut self, root: Address, va: Address, pa: PhysicalAddress) {
        let size_log2 = pa.page_size_log2;
        let page = va.to_umem() >> size_log2;
        let slot = self.slot(root, page, size_log2);
        self.entries[slot] = TlbEntry {
            root,
            page,
            size_log2,
            page_type: pa.page_type,
            pa: pa.address.align_down((1 as umem) << size_log2),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchitectureIdent;

    #[test]
    fn finds_pages_of_every_size_and_forgets_on_flush() {
        let arch = ArchitectureIdent::X86_64.describe().unwrap();
        let mut tlb = Tlb::new(64);
        let root = Address::new(0x1000);
        let big = PhysicalAddress::with_page(Address::new(0x4012_3456), PageType::WRITEABLE, 21);
        tlb.insert(root, Address::new(0xffff_8000_0012_3456), big);
        let hit = tlb.lookup(&arch, root, Address::new(0xffff_8000_001f_0000)).unwrap();
        assert_eq!(hit, PhysicalAddress::with_page(Address::new(0x401f_0000), PageType::WRITEABLE, 21));
        assert_eq!(tlb.lookup(&arch, Address::new(0x2000), Address::new(0xffff_8000_001f_0000)), None);
        assert_eq!(tlb.lookup(&arch, root, Address::new(0xffff_8000_0020_0000)), None);
        tlb.flush();
        assert_eq!(tlb.lookup(&arch, root, Address::new(0xffff_8000_001f_0000)), None);
    }
}
