//! Virtual memory: physical memory seen through a translator.
//!
//! [`VirtualDma`] splits every operation at page boundaries, translates the pieces window by
//! window with the batched engine, joins pieces that are contiguous in physical memory again,
//! and issues one physical batch per window. Chunks that do not translate are reported through
//! `on_fail` with the caller's (virtual) tags; physical callbacks pass straight through.

use cglue::iter::CIterator;

use crate::arch::ArchitectureIdent;
use crate::error::Result;
use crate::mem::partial::read_single;
use crate::mem::{
    report, MemBatch, MemOp, MemoryView, PhysicalMemory, ReadBatch, ReadOp, SplitBuf, ViewMetadata, WriteBatch,
};
use crate::translate::{
    FailureCallback, MemoryRangeCallback, PageMapMerger, Tlb, TranslationCallback, TranslationFailure,
    TranslationMapMerger, TranslationRangeCallback, Translator, VirtualTranslate, VirtualTranslation, WINDOW,
};
use crate::types::{umem, Address, PhysicalAddress};

/// A physical operation of a batch of the caller's buffer type.
type PhysOp<B> = MemOp<PhysicalAddress, B>;

/// Physical memory plus a [`Translator`]: a [`MemoryView`] and [`VirtualTranslate`] of one
/// address space. Cloning clones the physical memory handle and gives the clone fresh working
/// memory, so each thread can own one.
///
/// Writes go wherever the tables point, whether or not the pages are marked writable.
pub struct VirtualDma<P> {
    mem: P,
    translator: Translator,
    /// Storage for the operations of one window, empty between calls (see [`recycle`]).
    virt_ops: Vec<ReadOp<'static>>,
    /// Storage for the physical operations of one window, empty between calls.
    phys_ops: Vec<PhysOp<cglue::slice::CSliceMut<'static, u8>>>,
}

impl<P: Clone> Clone for VirtualDma<P> {
    fn clone(&self) -> Self {
        VirtualDma { mem: self.mem.clone(), translator: self.translator.clone(), virt_ops: vec![], phys_ops: vec![] }
    }
}

impl<P: PhysicalMemory> VirtualDma<P> {
    /// The address space of `arch` whose tables start at the root register values `roots`
    /// (CR3; TTBR0 and TTBR1; satp).
    pub fn new(mem: P, arch: ArchitectureIdent, roots: &[Address]) -> Result<Self> {
        Ok(Self::with_translator(mem, Translator::new(arch, roots)?))
    }

    /// Uses a prepared translator.
    pub fn with_translator(mem: P, translator: Translator) -> Self {
        VirtualDma { mem, translator, virt_ops: vec![], phys_ops: vec![] }
    }

    /// Adds a TLB of `slots` translations (see [`Tlb`]).
    pub fn with_tlb(mut self, slots: usize) -> Self {
        self.translator = self.translator.with_tlb(Tlb::new(slots));
        self
    }

    /// The translator (to switch roots or flush its TLB).
    pub fn translator_mut(&mut self) -> &mut Translator {
        &mut self.translator
    }

    /// The physical memory.
    pub fn phys_mem(&mut self) -> &mut P {
        &mut self.mem
    }

    /// The translator and the physical memory at once, e.g. to translate with the view's own
    /// memory: `let (t, mem) = dma.parts_mut(); t.translate_one(mem, va)`.
    pub fn parts_mut(&mut self) -> (&mut Translator, &mut P) {
        (&mut self.translator, &mut self.mem)
    }

    /// The physical memory back.
    pub fn into_inner(self) -> P {
        self.mem
    }

    /// The most bytes of working memory this view uses: the translator's plus one window of
    /// virtual and physical operations.
    pub fn working_memory_bytes(&self) -> usize {
        self.translator.working_memory_bytes()
            + WINDOW
                * (core::mem::size_of::<ReadOp<'static>>()
                    + core::mem::size_of::<PhysOp<cglue::slice::CSliceMut<'static, u8>>>())
    }
}

/// Reuses the allocation of `v` (emptied) for elements of another type of the same layout,
/// such as the same operation type with another buffer lifetime. The standard library collects
/// a `Vec`'s `into_iter` in place when the layouts match, so no allocation happens.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// Runs one batch of virtual operations (reads or writes) through the translator.
fn virt_batch<'a, P: PhysicalMemory, B: SplitBuf>(
    mem: &mut P,
    tr: &mut Translator,
    window: &mut Vec<MemOp<Address, B>>,
    phys: &mut Vec<PhysOp<B>>,
    batch: MemBatch<'a, '_, '_, MemOp<Address, B>, B>,
    mut submit: impl FnMut(&mut P, MemBatch<'a, '_, '_, PhysOp<B>, B>) -> Result<()>,
) -> Result<()> {
    let MemBatch { mut ops, mut on_ok, mut on_fail } = batch;
    let page = tr.arch().page_size();
    let mut carry: Option<MemOp<Address, B>> = None;
    loop {
        // Fill the window with page-sized pieces; an operation that does not fit is split and
        // its rest carried to the next window.
        tr.window_clear();
        while let Some(op) = carry.take().or_else(|| ops.next()) {
            if op.buf.is_empty() {
                continue;
            }
            let room = tr.window_room() as umem;
            if room == 0 {
                carry = Some(op);
                break;
            }
            let first_len = page - op.addr.page_offset(page);
            let pieces = 1 + (op.buf.len() as umem).saturating_sub(first_len).div_ceil(page);
            let op = if pieces > room {
                let take = first_len + (room - 1) * page;
                let (head, tail) = op.buf.split_at(take as usize);
                carry = Some(MemOp { addr: op.addr + take, tag: op.tag + take, buf: tail });
                MemOp { addr: op.addr, tag: op.tag, buf: head }
            } else {
                op
            };
            // By offsets, not addresses: an operation may wrap around the top of the space.
            let mut pos = 0usize;
            while pos < op.buf.len() {
                let va = op.addr + pos;
                tr.window_push(va);
                pos += ((page - va.page_offset(page)) as usize).min(op.buf.len() - pos);
            }
            window.push(op);
            if carry.is_some() {
                break;
            }
        }
        if window.is_empty() {
            return Ok(());
        }
        tr.window_run(mem)?;

        // Join pieces that are contiguous in physical memory with equal page facts; report
        // the ones that did not translate.
        let mut results = tr.window_results().map(|(_, res)| res.ok());
        for op in window.drain(..) {
            let MemOp { addr, tag, mut buf } = op;
            let mut done = 0usize;
            let mut run: Option<(Option<PhysicalAddress>, usize)> = None;
            let mut flush = |run: (Option<PhysicalAddress>, usize), buf: B| {
                let (head, rest) = buf.split_at(run.1);
                let at = tag + done;
                done += run.1;
                match run.0 {
                    Some(pa) => phys.push(MemOp { addr: pa, tag: at, buf: head }),
                    None => report(&mut on_fail, at, head),
                }
                rest
            };
            let total = buf.len();
            let mut pos = 0usize;
            while pos < total {
                let len = ((page - (addr + pos).page_offset(page)) as usize).min(total - pos);
                let pa = results.next().flatten();
                pos += len;
                match (&mut run, pa) {
                    (Some((Some(start), run_len)), Some(pa))
                        if start.address + *run_len == pa.address
                            && start.page_type == pa.page_type
                            && start.page_size_log2 == pa.page_size_log2 =>
                    {
                        *run_len += len
                    }
                    (Some((None, run_len)), None) => *run_len += len,
                    _ => {
                        if let Some(prev) = run.replace((pa, len)) {
                            buf = flush(prev, buf);
                        }
                    }
                }
            }
            if let Some(last) = run {
                flush(last, buf);
            }
        }
        let mut phys_ops = phys.drain(..);
        submit(
            mem,
            MemBatch {
                ops: CIterator::from(&mut phys_ops),
                on_ok: on_ok.as_deref_mut(),
                on_fail: on_fail.as_deref_mut(),
            },
        )?;
    }
}

impl<P: PhysicalMemory> MemoryView for VirtualDma<P> {
    /// Translated page by page, each page with one read per level and no window, and copied
    /// with the connector's single read, as long as that stays cheap: while the pages found are
    /// large or what is left fits in one of the smallest pages. The rest of a long read over
    /// small pages goes through [`MemoryView::read_batch`]. The outcome is the same either way.
    fn read_single(&mut self, addr: Address, out: &mut [u8]) -> Result<usize> {
        let page = self.translator.arch().page_size();
        let mut done = out.len();
        let mut pos = 0usize;
        while pos < out.len() {
            // By offsets, not addresses: a read may wrap around the top of the space.
            let va = addr + pos;
            let rest = &mut out[pos..];
            let small = match self.translator.translate_single(&mut self.mem, va)? {
                Ok(pa) => {
                    let size = (1 as umem) << pa.page_size_log2;
                    let n = ((size - va.page_offset(size)) as usize).min(rest.len());
                    let got = self.mem.phys_read_single(pa, &mut rest[..n])?;
                    if got < n {
                        done = done.min(pos + got);
                    }
                    pos += n;
                    size <= page
                }
                Err(_) => {
                    let n = ((page - va.page_offset(page)) as usize).min(rest.len());
                    rest[..n].fill(0);
                    done = done.min(pos);
                    pos += n;
                    true
                }
            };
            if small && (out.len() - pos) as umem > page {
                let (va, rest) = (addr + pos, &mut out[pos..]);
                let n = rest.len();
                let got = read_single(MemOp { addr: va, tag: va, buf: rest.into() }, |b| self.read_batch(b))?;
                if got < n {
                    done = done.min(pos + got);
                }
                break;
            }
        }
        Ok(done)
    }

    fn read_batch(&mut self, batch: ReadBatch) -> Result<()> {
        let mut window = recycle(core::mem::take(&mut self.virt_ops));
        let mut phys = recycle(core::mem::take(&mut self.phys_ops));
        let res =
            virt_batch(&mut self.mem, &mut self.translator, &mut window, &mut phys, batch, |m, b| m.phys_read_batch(b));
        self.virt_ops = recycle(window);
        self.phys_ops = recycle(phys);
        res
    }

    fn write_batch(&mut self, batch: WriteBatch) -> Result<()> {
        let mut window = recycle(core::mem::take(&mut self.virt_ops));
        let mut phys = recycle(core::mem::take(&mut self.phys_ops));
        let res = virt_batch(&mut self.mem, &mut self.translator, &mut window, &mut phys, batch, |m, b| {
            m.phys_write_batch(b)
        });
        self.virt_ops = recycle(window);
        self.phys_ops = recycle(phys);
        res
    }

    fn metadata(&self) -> ViewMetadata {
        let arch = self.translator.arch();
        let max_address = arch.segments().last().map_or(Address::NULL, |s| s.last);
        ViewMetadata {
            max_address,
            real_size: max_address.to_umem().saturating_add(1),
            readonly: self.mem.metadata().readonly,
            little_endian: arch.little_endian(),
            arch_bits: arch.pointer_bits(),
        }
    }
}

impl<P: PhysicalMemory> VirtualTranslate for VirtualDma<P> {
    /// One address without the window (see [`Translator::translate_one`]).
    fn virt_to_phys(&mut self, va: Address) -> Result<PhysicalAddress>
    where
        Self: Sized,
    {
        self.translator.translate_single(&mut self.mem, va)?
    }

    fn virt_to_phys_list(
        &mut self,
        addrs: CIterator<Address>,
        mut out: TranslationCallback,
        mut out_fail: FailureCallback,
    ) -> Result<()> {
        self.translator.translate(&mut self.mem, addrs, |va, res| match res {
            Ok(pa) => out.call(VirtualTranslation { va, pa }),
            Err(error) => out_fail.call(TranslationFailure { va, error }),
        })
    }

    fn virt_page_map_range(
        &mut self,
        gap: umem,
        start: Address,
        end: Address,
        mut out: MemoryRangeCallback,
    ) -> Result<()> {
        let mut merge = PageMapMerger::new(gap);
        self.translator.for_each_page(&mut self.mem, start, end, |p| merge.push(p, &mut out))?;
        merge.finish(&mut out);
        Ok(())
    }

    fn virt_translation_map_range(
        &mut self,
        start: Address,
        end: Address,
        mut out: TranslationRangeCallback,
    ) -> Result<()> {
        let mut merge = TranslationMapMerger::default();
        self.translator.for_each_page(&mut self.mem, start, end, |p| merge.push(p, &mut out))?;
        merge.finish(&mut out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recycling keeps the allocation, so a view allocates its operation storage only once.
    #[test]
    fn recycle_reuses_the_allocation() {
        let mut v: Vec<ReadOp<'static>> = Vec::with_capacity(64);
        let ptr = v.as_ptr() as usize;
        let mut buf = [0u8; 4];
        let mut short: Vec<ReadOp<'_>> = recycle(core::mem::take(&mut v));
        short.push(MemOp { addr: Address::NULL, tag: Address::NULL, buf: (&mut buf[..]).into() });
        v = recycle(short);
        assert!(v.is_empty());
        assert_eq!(v.as_ptr() as usize, ptr);
        assert_eq!(v.capacity(), 64);
    }

    /// Single reads (page by page, then batched for long reads over small pages) give the
    /// same bytes and count as the batch path: inside regions, across their ends into
    /// unmapped space, and over whole regions; and the kernel's physical memory as well.
    #[test]
    fn single_reads_match_the_batch_path() {
        use crate::dummy::DummyOs;
        use crate::mem::partial::check;
        let mut os = DummyOs::builder().seed(7).process("a").build().unwrap();
        let truth = os.truth(1).unwrap();
        let mut view = VirtualDma::new(os.clone(), ArchitectureIdent::X86_64, &truth.space.roots).unwrap();
        let mut partial = 0;
        for r in &truth.space.regions {
            let (base, size) = (r.base.to_umem() as u64, r.size.min(0x40000) as u64);
            for (addr, len) in [(base, 8), (base + 0xffc, 8), (base, size as usize), (base + size - 0x10, 0x3000)] {
                let done = check::view_read_agrees(&mut view, addr, len);
                partial += usize::from(done < len);
                check::phys_read_agrees(&mut os, r.phys.to_umem() as u64 + 0xff0, len);
            }
        }
        assert!(partial > 0, "some reads ran into unmapped space");
        let mut buf = [0u8; 8];
        let unmapped = view.read_single(Address::new(0x10), &mut buf);
        assert_eq!(unmapped, Ok(0));
    }

    /// A read that wraps around the top of the address space is split into its pieces, not
    /// into every page of the space (found by the fuzzer).
    #[test]
    fn read_wrapping_around_the_top() {
        let ident = ArchitectureIdent::AArch64 { granule_log2: 16, va_bits: 39 };
        let mut view = VirtualDma::new(crate::connector::dummy_memory(2), ident, &[Address::NULL]).unwrap();
        let mut buf = [0xffu8; 64];
        let va = Address::new(0xffff_ffff_fffe_fff9u64 as umem);
        assert!(view.read_raw_into(va, &mut buf).is_err());
        assert_eq!(buf, [0u8; 64]);
    }
}
