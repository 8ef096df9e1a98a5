//! [`VirtualTranslate`]: the cglue trait for translating the addresses of one address space.

use cglue::iter::CIterator;
use cglue::prelude::v1::*;

use super::*;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::types::{umem, Address, PhysicalAddress};

/// Translation of virtual addresses of one address space.
///
/// Ranges are `start..end` with `end` exclusive; every page that intersects the range is
/// reported whole. A callback that returns `false` ends the call early (successfully).
/// `Err` is returned only when physical memory fails as a whole; addresses that do not
/// translate go to the failure callback.
#[cglue_trait]
#[int_result]
#[cglue_forward]
pub trait VirtualTranslate: Send {
    /// Translates every address of `addrs`, reporting each exactly once to `out` or `out_fail`
    /// (in input order within each window of [`WINDOW`] addresses).
    fn virt_to_phys_list(
        &mut self,
        addrs: CIterator<Address>,
        out: TranslationCallback,
        out_fail: FailureCallback,
    ) -> Result<()>;

    /// Reports the mapped memory of `start..end` as ranges of equal flags, in ascending order.
    /// Ranges with the same flags separated by at most `gap` unmapped bytes are merged.
    fn virt_page_map_range(&mut self, gap: umem, start: Address, end: Address, out: MemoryRangeCallback) -> Result<()>;

    /// Reports the mapped memory of `start..end` as ranges contiguous in both virtual and
    /// physical memory with equal flags, in ascending virtual order.
    fn virt_translation_map_range(&mut self, start: Address, end: Address, out: TranslationRangeCallback)
        -> Result<()>;

    /// Translates one address.
    #[skip_func]
    fn virt_to_phys(&mut self, va: Address) -> Result<PhysicalAddress>
    where
        Self: Sized,
    {
        let res = core::cell::Cell::new(Err(Error::new(ErrorOrigin::Translation, ErrorKind::Internal)));
        let mut ok = |t: VirtualTranslation| {
            res.set(Ok(t.pa));
            true
        };
        let mut fail = |f: TranslationFailure| {
            res.set(Err(f.error));
            true
        };
        self.virt_to_phys_list(CIterator::from(&mut core::iter::once(va)), (&mut ok).into(), (&mut fail).into())?;
        res.get()
    }

    /// Translates every address of `addrs`, calling `f(va, result)` for each in input order
    /// until it returns `false`: the closure form of [`VirtualTranslate::virt_to_phys_list`].
    #[skip_func]
    fn virt_to_phys_each(
        &mut self,
        addrs: impl IntoIterator<Item = Address>,
        mut f: impl FnMut(Address, Result<PhysicalAddress>) -> bool,
    ) -> Result<()>
    where
        Self: Sized,
    {
        // Both callbacks need `f`; only one runs at a time.
        let f = core::cell::RefCell::new(&mut f);
        let mut ok = |t: VirtualTranslation| (f.borrow_mut())(t.va, Ok(t.pa));
        let mut fail = |e: TranslationFailure| (f.borrow_mut())(e.va, Err(e.error));
        let mut addrs = addrs.into_iter();
        self.virt_to_phys_list(CIterator::from(&mut addrs), (&mut ok).into(), (&mut fail).into())
    }

    /// Calls `f` with the mapped ranges of `start..end` (see
    /// [`VirtualTranslate::virt_page_map_range`]) until it returns `false`.
    #[skip_func]
    fn virt_page_map_range_each(
        &mut self,
        gap: umem,
        start: Address,
        end: Address,
        mut f: impl FnMut(MemoryRange) -> bool,
    ) -> Result<()>
    where
        Self: Sized,
    {
        self.virt_page_map_range(gap, start, end, (&mut f).into())
    }

    /// The mapped ranges of `start..end` (see [`VirtualTranslate::virt_page_map_range`]).
    #[skip_func]
    fn virt_page_map_range_vec(&mut self, gap: umem, start: Address, end: Address) -> Result<Vec<MemoryRange>>
    where
        Self: Sized,
    {
        let mut out = vec![];
        self.virt_page_map_range(gap, start, end, (&mut out).into())?;
        Ok(out)
    }

    /// The mapped ranges of the whole address space.
    #[skip_func]
    fn virt_page_map(&mut self, gap: umem) -> Result<Vec<MemoryRange>>
    where
        Self: Sized,
    {
        self.virt_page_map_range_vec(gap, Address::NULL, Address::INVALID)
    }

    /// The virtual-to-physical ranges of the whole address space.
    #[skip_func]
    fn virt_translation_map(&mut self) -> Result<Vec<TranslationRange>>
    where
        Self: Sized,
    {
        let mut out = vec![];
        self.virt_translation_map_range(Address::NULL, Address::INVALID, (&mut out).into())?;
        Ok(out)
    }

    /// Every virtual address that maps to the physical address `pa` (reverse lookup).
    #[skip_func]
    fn phys_to_virt(&mut self, pa: Address) -> Result<Vec<Address>>
    where
        Self: Sized,
    {
        let mut out = vec![];
        let mut check = |r: TranslationRange| {
            if pa >= r.pa && pa - r.pa < r.size {
                out.push(r.va + (pa - r.pa));
            }
            true
        };
        self.virt_translation_map_range(Address::NULL, Address::INVALID, (&mut check).into())?;
        Ok(out)
    }
}
