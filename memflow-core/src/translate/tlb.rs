//! A software TLB: recent translations keyed by table root and virtual page.
//!
//! Direct mapped: a translation is stored at one slot chosen by hashing the root, the page
//! number and the page size, and looked up by probing each page size the architecture has.
//! Only the page sizes inserted since the last flush are probed, so on a guest without 1 GiB
//! pages a hit on a 2 MiB page costs one probe.
//! Entries go stale when the guest changes its tables; [`Tlb::flush`] drops them all, and an
//! optional maximum age drops them all when it has passed since the last flush. The age is
//! read from a coarse monotonic clock (the kernel's tick on Linux: a few nanoseconds, so it can
//! be checked on every lookup).
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`

use std::time::Duration;

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
    /// Bit `n` is set if a page of `1 << n` bytes was inserted since the last flush.
    sizes: u64,
    max_age: Option<Duration>,
    /// [`coarse_now`] at the last flush.
    flushed: Duration,
}

impl Tlb {
    /// A TLB of `slots` slots (rounded up to a power of two, at least 1), without a maximum age.
    pub fn new(slots: usize) -> Self {
        Tlb { entries: vec![EMPTY; slots.max(1).next_power_of_two()], sizes: 0, max_age: None, flushed: coarse_now() }
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

    /// The maximum age, if any.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// Drops every entry.
    pub fn flush(&mut self) {
        self.entries.fill(EMPTY);
        self.sizes = 0;
        self.flushed = coarse_now();
    }

    /// Flushes if the maximum age has passed. Called before every single translation and
    /// once per window of translations.
    #[inline]
    pub fn expire(&mut self) {
        if let Some(age) = self.max_age {
            if coarse_now().saturating_sub(self.flushed) > age {
                self.flush();
            }
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
        arch.levels().iter().filter(|l| l.leaf && self.sizes & (1 << l.shift) != 0).find_map(|l| {
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
        self.sizes |= 1 << size_log2;
        self.entries[slot] = TlbEntry {
            root,
            page,
            size_log2,
            page_type: pa.page_type,
            pa: pa.address.align_down((1 as umem) << size_log2),
        };
    }
}

/// A monotonic time that is cheap to read: `CLOCK_MONOTONIC_COARSE` on Linux (advanced by the
/// kernel's tick, read without a hardware counter), elsewhere the standard clock.
#[cfg(target_os = "linux")]
fn coarse_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// A monotonic time that is cheap to read (see the Linux version).
#[cfg(not(target_os = "linux"))]
fn coarse_now() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
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

    /// Entries older than the maximum age are dropped at the next lookup's expiry check.
    #[test]
    fn forgets_after_the_maximum_age() {
        let arch = ArchitectureIdent::X86_64.describe().unwrap();
        let mut tlb = Tlb::new(64).with_max_age(Duration::ZERO);
        let root = Address::new(0x1000);
        let va = Address::new(0xffff_8000_0000_1000);
        tlb.insert(root, va, PhysicalAddress::with_page(Address::new(0x2000), PageType::WRITEABLE, 12));
        assert!(tlb.lookup(&arch, root, va).is_some());
        let start = coarse_now();
        while coarse_now() == start {
            std::thread::sleep(Duration::from_millis(1));
        }
        tlb.expire();
        assert_eq!(tlb.lookup(&arch, root, va), None);
    }
}
