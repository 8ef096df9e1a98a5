//! [`Translator`]: the translation engine for one address space.

use super::pages::{Page, PageWalker};
use super::tlb::Tlb;
use super::walk::{Walker, NOT_CANONICAL, NOT_MAPPED};
use crate::arch::{Architecture, ArchitectureIdent, Decoder, Segment};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::PhysicalMemory;
use crate::types::{Address, PhysicalAddress};

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
    /// the architecture has; a missing second root, or a root of `Address::INVALID` (e.g. an
    /// unknown TTBR0), leaves its range unmapped.
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
            return Err(Error::new(ErrorOrigin::Translation, ErrorKind::InvalidArgument).with_reason(format_args!(
                "{} roots given, the architecture has {}",
                roots.len(),
                self.arch.root_count()
            )));
        }
        self.tables = [None; 2];
        for (table, &reg) in self.tables.iter_mut().zip(roots) {
            *table = (reg != Address::INVALID).then(|| self.arch.root_table(reg));
        }
        Ok(())
    }

    /// The bytes of working memory this translator may use, its TLB included.
    pub fn working_memory_bytes(&self) -> usize {
        Self::MAX_WORKING_BYTES + self.tlb.as_ref().map_or(0, Tlb::bytes)
    }

    /// Translates every address of `vas`, calling `out` for each in input order until it
    /// returns `false`.
    pub fn translate<P: PhysicalMemory>(
        &mut self,
        mem: &mut P,
        vas: impl IntoIterator<Item = Address>,
        mut out: impl FnMut(Address, Result<PhysicalAddress>) -> bool,
    ) -> Result<()> {
        let mut vas = vas.into_iter().peekable();
        while vas.peek().is_some() {
            self.window_clear();
            while self.window_room() > 0 {
                let Some(va) = vas.next() else { break };
                self.window_push(va);
            }
            self.window_run(mem)?;
            for (va, res) in self.window_results() {
                if !out(va, res) {
                    return Ok(());
                }
            }
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
        let res = self.walker.walk_one(mem, &self.decoder, table, va)?;
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

    /// Calls `found` for every page that intersects `start..end` (`end` exclusive, like every
    /// range of the crate), in ascending order, until it returns `false`; walks the tree depth
    /// first (see the module docs of `pages.rs`).
    pub fn for_each_page<P: PhysicalMemory>(
        &mut self,
        mem: &mut P,
        start: Address,
        end: Address,
        found: impl FnMut(Page) -> bool,
    ) -> Result<()> {
        let Some(last) = super::merge::last_of(start, end) else { return Ok(()) };
        self.pages.walk(mem, &self.arch, &self.decoder, self.tables, start, last, found)
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
