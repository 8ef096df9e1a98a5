//! Mergers that turn pages, fed in ascending order, into the ranges the range walks report.

use super::pages::Page;
use super::records::{MemoryRange, MemoryRangeCallback, TranslationRange, TranslationRangeCallback};
use crate::types::{umem, Address};

/// Merges pages, fed in ascending order, into ranges of equal flags, bridging gaps of at most
/// `gap` bytes.
pub(crate) struct PageMapMerger {
    gap: umem,
    cur: Option<MemoryRange>,
}

impl PageMapMerger {
    pub fn new(gap: umem) -> Self {
        PageMapMerger { gap, cur: None }
    }

    /// Adds the next page; `false` once `out` asked to stop.
    pub fn push(&mut self, p: Page, out: &mut MemoryRangeCallback) -> bool {
        if let Some(r) = &mut self.cur {
            let last = r.base + (r.size - 1);
            if p.page_type == r.page_type && p.va > last && p.va - last - 1 <= self.gap {
                r.size = (p.va - r.base) + p.size();
                return true;
            }
        }
        let next = MemoryRange { base: p.va, size: p.size(), page_type: p.page_type };
        match self.cur.replace(next) {
            Some(done) if !out.call(done) => {
                self.cur = None;
                false
            }
            _ => true,
        }
    }

    /// Reports the range still open.
    pub fn finish(self, out: &mut MemoryRangeCallback) {
        if let Some(done) = self.cur {
            let _ = out.call(done);
        }
    }
}

/// Merges pages, fed in ascending order, into ranges contiguous in virtual and physical memory
/// with equal flags.
#[derive(Default)]
pub(crate) struct TranslationMapMerger {
    cur: Option<TranslationRange>,
}

impl TranslationMapMerger {
    /// Adds the next page; `false` once `out` asked to stop.
    pub fn push(&mut self, p: Page, out: &mut TranslationRangeCallback) -> bool {
        if let Some(r) = &mut self.cur {
            let contiguous = p.va > r.va && p.va - r.va == r.size && p.pa - r.pa == r.size;
            if p.page_type == r.page_type && contiguous {
                r.size += p.size();
                return true;
            }
        }
        let next = TranslationRange { va: p.va, pa: p.pa, size: p.size(), page_type: p.page_type };
        match self.cur.replace(next) {
            Some(done) if !out.call(done) => {
                self.cur = None;
                false
            }
            _ => true,
        }
    }

    /// Reports the range still open.
    pub fn finish(self, out: &mut TranslationRangeCallback) {
        if let Some(done) = self.cur {
            let _ = out.call(done);
        }
    }
}

/// The inclusive last address of `start..end`, `None` if the range is empty.
pub(crate) fn last_of(start: Address, end: Address) -> Option<Address> {
    (end > start).then(|| end - 1 as umem)
}
