//! Virtual to physical address translation.
//!
//! [`Translator`] is the engine for one address space: an [`Architecture`], the table root(s),
//! and a fixed working memory. It translates address lists in windows of [`WINDOW`] addresses
//! that advance one level at a time with one batched physical read per level (see `walk.rs`),
//! and walks ranges depth first through the tree (see `pages.rs`). Neither allocates in
//! proportion to the input; [`Translator::MAX_WORKING_BYTES`] is the bound per clone.
//!
//! [`VirtualTranslate`] is the cglue trait users call; [`crate::virt::VirtualDma`] implements it.
//! [`reference`](mod@reference) is a deliberately simple walker used as the oracle in tests.

mod pages;
pub mod reference;
mod tlb;
mod walk;

use cglue::callback::OpaqueCallback;
use cglue::iter::CIterator;
use cglue::prelude::v1::*;

use crate::arch::{Architecture, ArchitectureIdent, Decoder, Segment};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::PhysicalMemory;
use crate::types::{umem, Address, PageType, PhysicalAddress};

pub use pages::{Page, CHUNK_BYTES};
pub use tlb::Tlb;
pub use walk::WINDOW;

use pages::PageWalker;
use walk::{walk_one, Walker, NOT_CANONICAL, NOT_MAPPED};

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

/// A range of mapped virtual memory with the same flags.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemoryRange {
    /// The first address.
    pub address: Address,
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
/// Receives mapped ranges.
pub type MemoryRangeCallback<'a> = OpaqueCallback<'a, MemoryRange>;
/// Receives virtual-to-physical ranges.
pub type TranslationRangeCallback<'a> = OpaqueCallback<'a, TranslationRange>;

/// Translation of virtual addresses of one address space.
///
/// Ranges are `start..end` with `end` exclusive; every page that intersects the range is
/// reported whole. The callbacks' return values are ignored. `Err` is returned only when physical memory fails as a whole; addresses that
/// do not translate go to the failure callback.
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

/// The translation engine for one address space (see the module docs).
///
/// Clones share nothing: each gets fresh, empty working memory (allocated on first use, never
/// more than [`Translator::MAX_WORKING_BYTES`]) and an empty TLB of the same size.
#[derive(Debug)]
pub struct Translator {
    arch: Architecture,
    /// `arch`'s entry format as masks, for the hot loops.
    decoder: Decoder,
    /// `arch`'s canonical segments (the second one empty where there is only one).
    segments: [Segment; 2],
    /// Top table per root; `None` where the root was not given.
    tables: [Option<Address>; 2],
    walker: Walker,
    pages: PageWalker,
    tlb: Option<Tlb>,
}

/// The documented bound: a translator never needs more than 1 MiB.
const _: () = assert!(Translator::MAX_WORKING_BYTES <= 1 << 20);

impl Clone for Translator {
    fn clone(&self) -> Self {
        let mut tlb = self.tlb.clone();
        if let Some(t) = &mut tlb {
            t.flush();
        }
        Translator {
            arch: self.arch,
            decoder: self.decoder,
            segments: self.segments,
            tables: self.tables,
            walker: Walker::default(),
            pages: PageWalker::default(),
            tlb,
        }
    }
}

impl Translator {
    /// The most bytes of working memory one translator uses (without a TLB):
    /// the window of the batched walk plus one chunk per level for page walks.
    pub const MAX_WORKING_BYTES: usize = Walker::MAX_BYTES + PageWalker::MAX_BYTES;

    /// A translator for `arch` with the root register values `roots` (CR3; TTBR0 and TTBR1;
    /// satp). Fails if the architecture parameters are unsupported or more roots are given than
    /// the architecture has; a missing second root leaves the high range unmapped.
    pub fn new(arch: ArchitectureIdent, roots: &[Address]) -> Result<Self> {
        let arch = arch.describe()?;
        let mut t = Translator {
            arch,
            decoder: Decoder::new(&arch),
            segments: segments_of(&arch),
            tables: [None; 2],
            walker: Walker::default(),
            pages: PageWalker::default(),
            tlb: None,
        };
        t.set_roots(roots)?;
        Ok(t)
    }

    /// Adds a TLB (see [`Tlb`]).
    pub fn with_tlb(mut self, tlb: Tlb) -> Self {
        self.tlb = Some(tlb);
        self
    }

    /// The architecture.
    pub fn arch(&self) -> &Architecture {
        &self.arch
    }

    /// The TLB, if any (to flush it after the guest changed its tables).
    pub fn tlb_mut(&mut self) -> Option<&mut Tlb> {
        self.tlb.as_mut()
    }

    /// Switches to other root register values (another process). The TLB is keyed by root, so
    /// it stays valid.
    pub fn set_roots(&mut self, roots: &[Address]) -> Result<()> {
        if roots.len() > self.arch.root_count() {
            return Err(Error::new(ErrorOrigin::Translation, ErrorKind::InvalidArgument).log_warn(format_args!(
                "{} roots given, the architecture has {}",
                roots.len(),
                self.arch.root_count()
            )));
        }
        self.tables = [None; 2];
        for (table, &reg) in self.tables.iter_mut().zip(roots) {
            *table = Some(self.arch.root_table(reg));
        }
        Ok(())
    }

    /// The bytes of working memory this translator may use, its TLB included.
    pub fn working_memory_bytes(&self) -> usize {
        Self::MAX_WORKING_BYTES + self.tlb.as_ref().map_or(0, Tlb::bytes)
    }

    /// Translates every address of `vas`, calling `out` for each in input order.
    pub fn translate<P: PhysicalMemory>(
        &mut self,
        mem: &mut P,
        vas: impl IntoIterator<Item = Address>,
        mut out: impl FnMut(Address, Result<PhysicalAddress>),
    ) -> Result<()> {
        let mut vas = vas.into_iter().peekable();
        while vas.peek().is_some() {
            self.window_clear();
            while self.window_room() > 0 {
                let Some(va) = vas.next() else { break };
                self.window_push(va);
            }
            self.window_run(mem)?;
            self.window_results().for_each(|(va, res)| out(va, res));
        }
        Ok(())
    }

    /// Translates one address.
    pub fn translate_one<P: PhysicalMemory>(&mut self, mem: &mut P, va: Address) -> Result<PhysicalAddress> {
        self.translate_single(mem, va)?
    }

    /// Translates one address without the window (the same outcome, a shorter path): the
    /// outer `Err` only if the memory itself fails.
    #[inline]
    pub(crate) fn translate_single<P: PhysicalMemory>(
        &mut self,
        mem: &mut P,
        va: Address,
    ) -> Result<Result<PhysicalAddress>> {
        let Some(root) = self.root_index(va) else { return Ok(Err(NOT_CANONICAL)) };
        let Some(table) = self.tables[root] else { return Ok(Err(NOT_MAPPED)) };
        if let Some(tlb) = &mut self.tlb {
            tlb.expire();
            if let Some(pa) = tlb.lookup(&self.arch, table, va) {
                return Ok(Ok(pa));
            }
        }
        let res = walk_one(mem, &self.decoder, table, va)?;
        if let (Ok(pa), Some(tlb)) = (&res, &mut self.tlb) {
            tlb.insert(table, va, *pa);
        }
        Ok(res)
    }

    /// The root that translates `va`, `None` if it is not canonical (as
    /// [`Architecture::root_index`], from the cached segments).
    #[inline]
    fn root_index(&self, va: Address) -> Option<usize> {
        self.segments.iter().find(|s| s.first <= va && va <= s.last).map(|s| s.root)
    }

    /// Calls `found` for every page that intersects `first..=last`, in ascending order, walking
    /// the tree depth first (see the module docs of `pages.rs`).
    pub fn for_each_page<P: PhysicalMemory>(
        &mut self,
        mem: &mut P,
        first: Address,
        last: Address,
        found: impl FnMut(Page),
    ) -> Result<()> {
        self.pages.walk(mem, &self.arch, &self.decoder, self.tables, first, last, found)
    }

    /// Empties the window of the batched walk.
    pub(crate) fn window_clear(&mut self) {
        self.walker.clear();
    }

    /// Free places in the window.
    pub(crate) fn window_room(&self) -> usize {
        self.walker.room()
    }

    /// Adds an address to the window (there must be room).
    #[inline]
    pub(crate) fn window_push(&mut self, va: Address) {
        let Some(root) = self.root_index(va) else {
            return self.walker.push_done(va, Err(NOT_CANONICAL));
        };
        let Some(table) = self.tables[root] else {
            return self.walker.push_done(va, Err(NOT_MAPPED));
        };
        match self.tlb.as_ref().and_then(|tlb| tlb.lookup(&self.arch, table, va)) {
            Some(pa) => self.walker.push_done(va, Ok(pa)),
            None => self.walker.push_walk(va, table),
        }
    }

    /// Translates every address of the window.
    pub(crate) fn window_run<P: PhysicalMemory>(&mut self, mem: &mut P) -> Result<()> {
        if let Some(tlb) = &mut self.tlb {
            tlb.expire();
        }
        self.walker.run(mem, &self.arch, &self.decoder)?;
        if let Some(tlb) = &mut self.tlb {
            for (va, res) in self.walker.results() {
                if let (Ok(pa), Some(root)) = (res, self.arch.root_index(va)) {
                    if let Some(table) = self.tables[root] {
                        tlb.insert(table, va, pa);
                    }
                }
            }
        }
        Ok(())
    }

    /// The outcome for every address of the window, in push order.
    pub(crate) fn window_results(&self) -> impl Iterator<Item = (Address, Result<PhysicalAddress>)> + '_ {
        self.walker.results()
    }
}

/// The canonical segments of `arch` as an array; a missing second one is empty (first > last).
fn segments_of(arch: &Architecture) -> [Segment; 2] {
    let empty = Segment { root: 0, first: Address::INVALID, last: Address::NULL };
    let mut out = [empty; 2];
    for (o, s) in out.iter_mut().zip(arch.segments()) {
        *o = s;
    }
    out
}

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

    pub fn push(&mut self, p: Page, out: &mut MemoryRangeCallback) {
        if let Some(r) = &mut self.cur {
            let last = r.address + (r.size - 1);
            if p.page_type == r.page_type && p.va > last && p.va - last - 1 <= self.gap {
                r.size = (p.va - r.address) + p.size();
                return;
            }
        }
        let next = MemoryRange { address: p.va, size: p.size(), page_type: p.page_type };
        if let Some(done) = self.cur.replace(next) {
            let _ = out.call(done);
        }
    }

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
    pub fn push(&mut self, p: Page, out: &mut TranslationRangeCallback) {
        if let Some(r) = &mut self.cur {
            let contiguous = p.va > r.va && p.va - r.va == r.size && p.pa - r.pa == r.size;
            if p.page_type == r.page_type && contiguous {
                r.size += p.size();
                return;
            }
        }
        let next = TranslationRange { va: p.va, pa: p.pa, size: p.size(), page_type: p.page_type };
        if let Some(done) = self.cur.replace(next) {
            let _ = out.call(done);
        }
    }

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

/// Implements [`VirtualTranslate`] for a type by forwarding to one of its fields (an OS or
/// process object that translates through the [`crate::virt::VirtualDma`] it holds).
#[macro_export]
macro_rules! forward_virtual_translate {
    ($ty:ty, $field:ident $(, $($gen:tt)*)?) => {
        impl $(<$($gen)*>)? $crate::translate::VirtualTranslate for $ty {
            fn virt_to_phys_list(
                &mut self,
                addrs: $crate::cglue::iter::CIterator<$crate::types::Address>,
                out: $crate::translate::TranslationCallback,
                out_fail: $crate::translate::FailureCallback,
            ) -> $crate::error::Result<()> {
                self.$field.virt_to_phys_list(addrs, out, out_fail)
            }

            fn virt_page_map_range(
                &mut self,
                gap: $crate::types::umem,
                start: $crate::types::Address,
                end: $crate::types::Address,
                out: $crate::translate::MemoryRangeCallback,
            ) -> $crate::error::Result<()> {
                self.$field.virt_page_map_range(gap, start, end, out)
            }

            fn virt_translation_map_range(
                &mut self,
                start: $crate::types::Address,
                end: $crate::types::Address,
                out: $crate::translate::TranslationRangeCallback,
            ) -> $crate::error::Result<()> {
                self.$field.virt_translation_map_range(start, end, out)
            }
        }
    };
}
