//! The batched engine against the reference walker and the builder's truth, on random
//! address spaces of every architecture.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod xlate_common;

use memflow_core::arch::ArchitectureIdent;
use memflow_core::dummy::{random_space, PageTableBuilder, Rng};
use memflow_core::error::PartialResultExt;
use memflow_core::mem::{MemoryView, PhysicalMemory};
use memflow_core::translate::{reference, Page, Translator, VirtualTranslate};
use memflow_core::types::{umem, Address, PageType, PhysicalAddress};
use memflow_core::virt::VirtualDma;
use xlate_common::{sample_addresses, translate_list};

const MEM: usize = 16 << 20;

fn spaces() -> impl Iterator<Item = (ArchitectureIdent, u64, PageTableBuilder)> {
    ArchitectureIdent::EVERY_MODE
        .iter()
        .flat_map(|&ident| (0..3u64).map(move |seed| (ident, seed, random_space(ident, seed, 400, MEM).unwrap())))
}

#[test]
fn batched_equals_reference_equals_truth() {
    for (ident, seed, b) in spaces() {
        let mut rng = Rng::new(seed ^ 0x5eed);
        let vas = sample_addresses(&b, &mut rng, 500);
        assert!(b.truth().len() > 100, "{ident:?}: only {} pages mapped", b.truth().len());
        let roots = b.roots();
        let mut mem = b.memory();
        let mut plain = VirtualDma::new(b.memory(), ident, &roots).unwrap();
        let mut cached = VirtualDma::new(b.memory(), ident, &roots).unwrap().with_tlb(256);
        let batched = translate_list(&mut plain, &vas);
        // Twice through the TLB: the second pass is served from it.
        let _ = translate_list(&mut cached, &vas);
        let from_tlb = translate_list(&mut cached, &vas);
        for ((va, got), (_, tlb)) in batched.iter().zip(&from_tlb) {
            let want = reference::translate(&mut mem, b.arch(), &roots, *va);
            assert_eq!(*got, want, "{ident:?} seed {seed}: {va:?}");
            assert_eq!(*tlb, want, "{ident:?} seed {seed}: {va:?} through the TLB");
            match (want, b.expected(*va)) {
                (Ok(pa), Some((truth_pa, m))) => {
                    assert_eq!(pa, PhysicalAddress::with_page(truth_pa, m.page_type, m.size_log2), "{ident:?} {va:?}")
                }
                (Err(_), None) => {}
                (w, t) => panic!("{ident:?} seed {seed}: {va:?}: walk {w:?}, truth {t:?}"),
            }
        }
    }
}

#[test]
fn page_walk_equals_reference_equals_truth() {
    for (ident, seed, b) in spaces() {
        let roots = b.roots();
        let mut mem = b.memory();
        let mut translator = Translator::new(ident, &roots).unwrap();
        let mut walked = vec![];
        translator
            .for_each_page(&mut mem, Address::NULL, Address::INVALID, |p| {
                walked.push(p);
                true
            })
            .unwrap();
        let mut referenced = vec![];
        reference::for_each_page(&mut mem, b.arch(), &roots, |p| referenced.push(p));
        assert_eq!(walked, referenced, "{ident:?} seed {seed}");
        let mut truth: Vec<Page> = b
            .truth()
            .iter()
            .map(|m| Page { va: m.va, pa: m.pa, size_log2: m.size_log2, page_type: m.page_type })
            .collect();
        truth.sort_by_key(|p| p.va);
        assert_eq!(walked, truth, "{ident:?} seed {seed}");
    }
}

/// Sub-ranges report exactly the pages that intersect them, and the merged maps cover the
/// same bytes as the pages.
#[test]
fn range_maps_are_exact() {
    for (ident, seed, b) in spaces().filter(|(_, seed, _)| *seed == 0) {
        let mut rng = Rng::new(seed);
        let roots = b.roots();
        let mut dma = VirtualDma::new(b.memory(), ident, &roots).unwrap();
        let truth = b.truth().to_vec();
        for _ in 0..20 {
            let m = truth[rng.below(truth.len() as u64) as usize];
            let start = m.va + (rng.below(m.size() as u64) as umem);
            let end = start + (rng.below(1 << 24) as umem + 1);
            let mut want: Vec<_> = truth.iter().filter(|p| p.va < end && p.va + (p.size() - 1) >= start).collect();
            want.sort_by_key(|p| p.va);
            let maps = dma.virt_page_map_range_vec(0, start, end).unwrap();
            let bytes: umem = maps.iter().map(|r| r.size).sum();
            assert_eq!(bytes, want.iter().map(|p| p.size()).sum::<umem>(), "{ident:?}");
            let mut trans = vec![];
            dma.virt_translation_map_range(start, end, (&mut trans).into()).unwrap();
            for r in &trans {
                // Every byte of every range translates as the range says.
                for off in [0, r.size / 2, r.size - 1] {
                    assert_eq!(dma.virt_to_phys(r.va + off).unwrap().address, r.pa + off, "{ident:?}");
                }
            }
            assert_eq!(trans.iter().map(|r| r.size).sum::<umem>(), bytes);
        }
        // Gap bridging merges at least as much as no bridging, and covers every page.
        let exact = dma.virt_page_map(0).unwrap();
        let bridged = dma.virt_page_map(1 << 30).unwrap();
        assert!(bridged.len() <= exact.len());
        for r in &exact {
            assert!(bridged.iter().any(|g| g.base <= r.base && r.base - g.base + r.size <= g.size));
        }
        // Reverse lookup finds every virtual page of a physical address.
        let m = truth[0];
        let vas = dma.phys_to_virt(m.pa).unwrap();
        let want: Vec<Address> =
            truth.iter().filter(|p| p.pa <= m.pa && m.pa - p.pa < p.size()).map(|p| p.va + (m.pa - p.pa)).collect();
        let mut sorted_want = want.clone();
        sorted_want.sort();
        assert_eq!(vas, sorted_want, "{ident:?}");
    }
}

/// Virtual reads return what physical reads at the translated addresses return, zero-fill and
/// report exactly the bytes that do not translate, and batches of many operations (more pieces
/// than a window) come out right.
#[test]
fn virtual_reads_match_physical_reads() {
    for (ident, seed, b) in spaces().filter(|(_, seed, _)| *seed < 2) {
        let mut rng = Rng::new(seed + 7);
        let roots = b.roots();
        let mut mem = b.memory();
        let mut dma = VirtualDma::new(b.memory(), ident, &roots).unwrap();
        let truth = b.truth().to_vec();
        for _ in 0..40 {
            let m = truth[rng.below(truth.len() as u64) as usize];
            let page = b.arch().page_size();
            let start = m.va + (rng.below(m.size() as u64) as umem) - page;
            let len = 1 + rng.below(6 * page as u64) as usize;
            let mut got = vec![0xaau8; len];
            let res = dma.read_raw_into(start, &mut got);
            let mut any_missing = false;
            let mut i = 0;
            while i < len {
                let va = start + i;
                let n = ((page - va.page_offset(page)) as usize).min(len - i);
                let mut want = vec![0u8; n];
                let readable = match reference::translate(&mut mem, b.arch(), &roots, va) {
                    Ok(pa) => mem.phys_read_raw_into(pa, &mut want).is_ok(),
                    Err(_) => false,
                };
                any_missing |= !readable;
                assert_eq!(&got[i..i + n], &want[..], "{ident:?}: piece at {va:?}");
                i += n;
            }
            assert_eq!(res.is_partial(), any_missing, "{ident:?}");
        }
    }
}

/// One operation larger than a window, and many small operations in one batch.
#[test]
fn large_and_many_reads() {
    let ident = ArchitectureIdent::X86_64;
    let mem = memflow_core::dummy::patterned_memory(64 << 20);
    let mut b = PageTableBuilder::new(mem, ident, Address::new(48 << 20)..Address::new(64 << 20)).unwrap();
    let base = Address::new(0x7f00_0000_0000);
    // 40 MiB of 4 KiB pages mapped in reverse physical order, then one unmapped page.
    let pages = 10 << 8;
    for i in 0..pages {
        let pa = Address::new(((pages - 1 - i) * 0x1000) as umem);
        b.map(base + (i * 0x1000) as umem, pa, 12, PageType::WRITEABLE).unwrap();
    }
    let mut dma = VirtualDma::new(b.memory(), ident, &b.roots()).unwrap();
    let len = (pages + 1) * 0x1000;
    let mut buf = vec![0xffu8; len];
    let res = dma.read_raw_into(base, &mut buf);
    assert!(res.is_partial());
    for i in 0..pages {
        let word = u64::from_le_bytes(buf[i * 0x1000..i * 0x1000 + 8].try_into().unwrap());
        assert_eq!(word, ((pages - 1 - i) * 0x1000) as u64);
    }
    assert!(buf[pages * 0x1000..].iter().all(|&b| b == 0));

    let mut items: Vec<(Address, u64)> =
        (0..10_000).map(|i| (base + ((i * 4104) % (pages * 0x1000)) as umem, 0)).collect();
    dma.read_many(&mut items).unwrap();
    for (va, v) in items {
        let off = (va - base) as usize;
        let pa = (pages - 1 - off / 0x1000) * 0x1000 + off % 0x1000;
        assert_eq!(v, pa as u64, "{va:?}");
    }
    assert!(dma.working_memory_bytes() <= 1 << 20, "{} bytes", dma.working_memory_bytes());
}

/// Linux maps the kernel image and the direct map to the same physical pages with identical
/// entries (and the same page tables may hang below both). Translating addresses of both in
/// one batch must not fail any of them.
#[test]
fn kernel_aliases_share_entries_without_false_failures() {
    for ident in [ArchitectureIdent::X86_64, ArchitectureIdent::X86_64La57] {
        let mem = memflow_core::dummy::patterned_memory(64 << 20);
        let mut b = PageTableBuilder::new(mem, ident, Address::new(32 << 20)..Address::new(64 << 20)).unwrap();
        let direct = Address::new(0xffff_8880_0000_0000);
        let image = Address::new(0xffff_ffff_8000_0000);
        let rw_nx = PageType::WRITEABLE | PageType::NOEXEC;
        // Direct map: 2 MiB pages over the first 32 MiB; the first 2 MiB as 4 KiB pages.
        for i in 0..512u64 {
            b.map(direct + (i * 0x1000) as umem, Address::new((i * 0x1000) as umem), 12, rw_nx).unwrap();
        }
        for i in 1..16u64 {
            b.map(direct + (i << 21) as umem, Address::new((i << 21) as umem), 21, rw_nx).unwrap();
        }
        // Kernel image: the same 2 MiB pages 4..12 with identical entries, and the 4 KiB table
        // of the direct map's first 2 MiB shared below another PDE.
        for i in 4..12u64 {
            b.map(image + ((i - 4) << 21) as umem, Address::new((i << 21) as umem), 21, rw_nx).unwrap();
        }
        b.alias(direct, image + (20u64 << 21) as umem, 2 + (ident == ArchitectureIdent::X86_64La57) as usize).unwrap();
        let roots = b.roots();
        let mut rng = Rng::new(1);
        let mut vas: Vec<Address> = b.truth().iter().map(|m| m.va + (rng.below(m.size() as u64) as umem)).collect();
        // Interleave both ranges, and repeat in a sorted order.
        let mut sorted = vas.clone();
        sorted.sort();
        vas.extend(sorted);
        let mut dma = VirtualDma::new(b.memory(), ident, &roots).unwrap();
        for (va, res) in translate_list(&mut dma, &vas) {
            let (pa, m) = b.expected(va).unwrap();
            assert_eq!(res, Ok(PhysicalAddress::with_page(pa, m.page_type, m.size_log2)), "{ident:?} {va:?}");
        }
    }
}

/// Writable only if every level allows it, user only if every level allows it, no-exec if any
/// level forbids execution.
#[test]
fn flags_combine_across_levels() {
    let ident = ArchitectureIdent::X86_64;
    let mem = memflow_core::dummy::patterned_memory(8 << 20);
    let mut b = PageTableBuilder::new(mem, ident, Address::new(4 << 20)..Address::new(8 << 20)).unwrap();
    let va = Address::new(0x4000_0000);
    let all = PageType::WRITEABLE | PageType::USER;
    b.map(va, Address::new(0x1000), 12, all).unwrap();
    let pde = b.entry_slot(va, 2).unwrap();
    let pdpte = b.entry_slot(va, 1).unwrap();
    let raw = b.read_entry(pde).unwrap();
    let mut dma = VirtualDma::new(b.memory(), ident, &b.roots()).unwrap();
    assert_eq!(dma.virt_to_phys(va).unwrap().page_type, all);
    b.write_entry(pde, raw & !0b10).unwrap();
    assert_eq!(dma.virt_to_phys(va).unwrap().page_type, PageType::USER);
    b.write_entry(pde, raw & !0b100).unwrap();
    assert_eq!(dma.virt_to_phys(va).unwrap().page_type, PageType::WRITEABLE);
    b.write_entry(pde, raw).unwrap();
    let raw1 = b.read_entry(pdpte).unwrap();
    b.write_entry(pdpte, raw1 | 1 << 63).unwrap();
    assert_eq!(dma.virt_to_phys(va).unwrap().page_type, all | PageType::NOEXEC);
    let mut pages = vec![];
    Translator::new(ident, &b.roots())
        .unwrap()
        .for_each_page(&mut b.memory(), va, va + 1 as umem, |p| {
            pages.push(p);
            true
        })
        .unwrap();
    assert_eq!(pages[0].page_type, all | PageType::NOEXEC);
}

/// Single translations decode an entry only when it differs from the one decoded last at its
/// level; an entry changed in between is seen at once: clearing and restoring the entry of
/// every level on the way to a page, with translations of another address in between, with
/// one view.
#[test]
fn single_translations_see_changed_entries() {
    for (ident, seed, mut b) in spaces() {
        let truth = b.truth().to_vec();
        let (page, other) = (truth[0], truth[truth.len() - 1]);
        let leaf = b.arch().levels().iter().position(|l| l.leaf && l.shift == page.size_log2).unwrap();
        let mut dma = VirtualDma::new(b.memory(), ident, &b.roots()).unwrap();
        let want = |p: &Page| Ok(PhysicalAddress::with_page(p.pa, p.page_type, p.size_log2));
        for level in 0..=leaf {
            let slot = b.entry_slot(page.va, level).unwrap();
            let raw = b.read_entry(slot).unwrap();
            assert_eq!(dma.virt_to_phys(page.va), want(&page), "{ident:?} seed {seed} level {level}");
            b.write_entry(slot, 0).unwrap();
            assert!(dma.virt_to_phys(page.va).is_err(), "{ident:?} seed {seed}: level {level} cleared");
            b.write_entry(slot, raw).unwrap();
            assert_eq!(dma.virt_to_phys(other.va), want(&other), "{ident:?} seed {seed} level {level}");
            assert_eq!(dma.virt_to_phys(page.va), want(&page), "{ident:?} seed {seed}: level {level} restored");
        }
    }
}

/// A translator and view stay within the documented working memory and clones start empty.
#[test]
fn working_memory_is_bounded() {
    let b = random_space(ArchitectureIdent::X86_64, 3, 50, 4 << 20).unwrap();
    let dma = VirtualDma::new(b.memory(), ArchitectureIdent::X86_64, &b.roots()).unwrap();
    assert!(dma.working_memory_bytes() <= 1 << 20);
    let _clone = dma.clone();
}

/// The second AArch64 root is optional; addresses of a missing root fail as unmapped. So do
/// those of a root given as `Address::INVALID` (an unknown TTBR0), with the engine and the
/// reference walker.
#[test]
fn missing_second_root_maps_nothing_high() {
    let ident = ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 };
    let b = random_space(ident, 9, 100, 8 << 20).unwrap();
    let roots = b.roots();
    let mut dma = VirtualDma::new(b.memory(), ident, &roots[..1]).unwrap();
    for m in b.truth() {
        let res = dma.virt_to_phys(m.va);
        assert_eq!(res.is_ok(), m.va.to_umem() < (1 as umem) << 48, "{:?}", m.va);
    }
    let high_only = [Address::INVALID, roots[1]];
    let mut dma = VirtualDma::new(b.memory(), ident, &high_only).unwrap();
    let (mut low, mut high) = (0, 0);
    for m in b.truth() {
        let is_high = m.va.to_umem() >= (1 as umem) << 48;
        (low, high) = if is_high { (low, high + 1) } else { (low + 1, high) };
        assert_eq!(dma.virt_to_phys(m.va).is_ok(), is_high, "{:?}", m.va);
        let oracle = reference::translate(&mut b.memory(), b.arch(), &high_only, m.va);
        assert_eq!(oracle.is_ok(), is_high, "reference: {:?}", m.va);
    }
    assert!(low > 0 && high > 0, "the space maps both ranges ({low} low, {high} high)");
    assert!(VirtualDma::new(b.memory(), ArchitectureIdent::X86_64, &roots).is_err());
}

/// `read_raw_into` (page by page without a window while pages are large or few, the rest
/// batched) gives the same bytes and the same partial flag as one batched read, with and
/// without a TLB, for reads from one byte to several large pages that start inside, before
/// and across mappings of every page size.
#[test]
fn single_reads_equal_batched_reads() {
    use memflow_core::cglue::slice::CSliceMut;
    use memflow_core::mem::{MemBatch, MemChunk, MemOp};
    for (ident, seed, b) in spaces() {
        let mut rng = Rng::new(seed ^ 0x7ead);
        let roots = b.roots();
        let mut batched = VirtualDma::new(b.memory(), ident, &roots).unwrap();
        let mut single = VirtualDma::new(b.memory(), ident, &roots).unwrap();
        let mut cached = VirtualDma::new(b.memory(), ident, &roots).unwrap().with_tlb(64);
        let truth = b.truth().to_vec();
        let page = b.arch().page_size();
        for i in 0..120 {
            let m = truth[rng.below(truth.len() as u64) as usize];
            let start = m.va + (rng.below(m.size() as u64) as umem) - page;
            let max = match i % 3 {
                0 => 3 * page,
                1 => 3 * m.size(),
                _ => 12 * page,
            };
            let len = 1 + rng.below((max as u64).min(8 << 20)) as usize;
            let mut want = vec![0xaau8; len];
            let mut failed = false;
            let mut on_fail = |mut c: MemChunk<CSliceMut<u8>>| {
                c.buf.fill(0);
                failed = true;
                true
            };
            let op = MemOp { addr: start, tag: start, buf: (&mut want[..]).into() };
            MemBatch::with(core::iter::once(op), None, Some(&mut (&mut on_fail).into()), |batch| {
                batched.read_batch(batch)
            })
            .unwrap();
            for dma in [&mut single, &mut cached] {
                for _ in 0..2 {
                    let mut got = vec![0x55u8; len];
                    let res = dma.read_raw_into(start, &mut got);
                    assert!(got == want, "{ident:?} seed {seed}: {len} bytes at {start:?}");
                    assert_eq!(res.is_partial(), failed, "{ident:?} seed {seed}: {len} bytes at {start:?}");
                }
            }
        }
    }
}

/// The closure forms stop where the caller says, and give what the callback forms give.
#[test]
fn callbacks_that_return_false_stop_the_walk() {
    let (ident, _, b) = spaces().next().unwrap();
    let mut dma = VirtualDma::new(b.memory(), ident, &b.roots()).unwrap();
    let all = dma.virt_page_map(0).unwrap();
    assert!(all.len() > 3, "{ident:?}: {} ranges", all.len());
    let mut seen = vec![];
    dma.virt_page_map_range_each(0, Address::NULL, Address::INVALID, |r| {
        seen.push(r);
        seen.len() < 2
    })
    .unwrap();
    assert_eq!(seen, all[..2]);

    let mut pages = 0;
    let (translator, mem) = dma.parts_mut();
    translator
        .for_each_page(mem, Address::NULL, Address::INVALID, |_| {
            pages += 1;
            pages < 5
        })
        .unwrap();
    assert_eq!(pages, 5);

    let vas: Vec<Address> = b.truth().iter().take(10).map(|p| p.va).collect();
    let mut got = vec![];
    dma.virt_to_phys_each(vas.iter().copied(), |va, res| {
        got.push((va, res.map(|pa| pa.address)));
        got.len() < 3
    })
    .unwrap();
    let want: Vec<_> = vas[..3].iter().map(|&va| (va, Ok(b.expected(va).unwrap().0))).collect();
    assert_eq!(got, want);
}
