//! Garbage tables: random entries, self-references, loops and tables past the end of memory end
//! in per-address failures that agree with the reference walker, never in hangs or panics.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod xlate_common;

use memflow_core::arch::{Architecture, ArchitectureIdent};
use memflow_core::connector::{dummy_memory, BufferMemory};
use memflow_core::dummy::{PageTableBuilder, Rng};
use memflow_core::error::{ErrorKind, PartialResultExt};
use memflow_core::mem::PhysicalMemory;
use memflow_core::translate::{reference, Translator};
use memflow_core::types::{umem, Address, PageType, PhysicalAddress};
use memflow_core::virt::VirtualDma;
use xlate_common::translate_list;

/// `size` bytes of entries: half random bits, half table entries with random flag bits that
/// point to a random page of memory or a little past its end.
fn garbage_memory(arch: &Architecture, rng: &mut Rng, size: usize) -> BufferMemory {
    let mut mem = dummy_memory(size);
    let es = arch.entry_size();
    let page = arch.page_size() as u64;
    let mut bytes = vec![0u8; size];
    for chunk in bytes.chunks_mut(es) {
        let raw = if rng.chance(50) {
            rng.next_u64()
        } else {
            let target = rng.below((size as u64 + size as u64 / 8) / page) * page;
            let level = rng.below(arch.levels().len() as u64) as usize;
            arch.encode_table(level, Address::new(target as umem)) ^ (rng.next_u64() & 0xfff0_0000_0000_03ff)
        };
        chunk.copy_from_slice(&arch.entry_bytes(raw)[..es]);
    }
    mem.phys_write_raw(PhysicalAddress::plain(Address::NULL), &bytes).data().unwrap();
    mem
}

/// Random addresses, most of them canonical (sign- or zero-extended as the architecture wants).
fn random_addresses(arch: &Architecture, rng: &mut Rng, n: usize) -> Vec<Address> {
    let segments: Vec<_> = arch.segments().collect();
    (0..n)
        .map(|_| {
            if rng.chance(10) {
                return Address::new(rng.next_u64() as umem);
            }
            let s = segments[rng.below(segments.len() as u64) as usize];
            s.first + (rng.next_u64() as umem % (s.last - s.first))
        })
        .collect()
}

#[test]
fn random_garbage_agrees_with_reference_on_every_arch() {
    for &ident in ArchitectureIdent::EVERY_MODE {
        let arch = ident.describe().unwrap();
        let mut mapped = 0;
        for seed in 0..6 {
            let mut rng = Rng::new(seed);
            let size = 64 * arch.page_size() as usize;
            let mut mem = garbage_memory(&arch, &mut rng, size);
            let roots: Vec<Address> = (0..arch.root_count())
                .map(|_| arch.root_register(Address::new((rng.below(64) * arch.page_size() as u64) as umem)))
                .collect();
            let vas = random_addresses(&arch, &mut rng, 3000);
            let mut dma = VirtualDma::new(mem.clone(), ident, &roots).unwrap();
            for (va, got) in translate_list(&mut dma, &vas) {
                let want = reference::translate(&mut mem, &arch, &roots, va);
                mapped += want.is_ok() as usize;
                assert_eq!(got, want, "{ident:?} seed {seed} {va:?}");
            }

            // The depth-first walk ends, and every page it reports translates that way.
            let mut pages = vec![];
            Translator::new(ident, &roots)
                .unwrap()
                .for_each_page(&mut mem, Address::NULL, Address::INVALID, |p| {
                    if pages.len() < 2000 {
                        pages.push(p)
                    }
                    true
                })
                .unwrap();
            for p in pages {
                let got = reference::translate(&mut mem, &arch, &roots, p.va).unwrap();
                assert_eq!((got.address, got.page_size_log2, got.page_type), (p.pa, p.size_log2, p.page_type));
            }
        }
        assert!(mapped > 0, "{ident:?}: garbage should map something");
    }
}

/// A PML4 entry that points back at the PML4 (as Windows does) maps the tables themselves.
#[test]
fn self_referencing_pml4_entry() {
    let ident = ArchitectureIdent::X86_64;
    let mut b =
        PageTableBuilder::new(dummy_memory(4 << 20), ident, Address::new(1 << 20)..Address::new(4 << 20)).unwrap();
    let va = Address::new(0x7000_0000_0000);
    b.map(va, Address::new(0x5000), 12, PageType::WRITEABLE).unwrap();
    let pml4 = b.arch().root_table(b.roots()[0]);
    let self_slot = pml4 + (0x1ed * 8) as umem;
    b.write_entry(self_slot, pml4.to_umem() as u64 | 0b11).unwrap();
    let roots = b.roots();
    let mut mem = b.memory();
    // Through the self reference four times, the PML4 shows up as a page.
    let recursive = Address::new(0xffff_f6fb_7dbe_d000);
    let mut dma = VirtualDma::new(mem.clone(), ident, &roots).unwrap();
    let res = translate_list(&mut dma, &[recursive, va, recursive + 8 as umem]);
    assert_eq!(res[0].1.unwrap().address, pml4);
    assert_eq!(res[1].1.unwrap().address, Address::new(0x5000));
    assert_eq!(res[2].1, reference::translate(&mut mem, b.arch(), &roots, recursive + 8 as umem));
    let mut count = 0;
    Translator::new(ident, &roots)
        .unwrap()
        .for_each_page(&mut mem, Address::NULL, Address::INVALID, |_| {
            count += 1;
            true
        })
        .unwrap();
    // The one page, plus every table seen through 1, 2 and 3 self references.
    assert!(count > 1 && count < 100, "{count}");
}

/// Every entry of a table pointing at the table itself: translations end after as many
/// steps as there are levels, and the page walk stops at its budget instead of visiting
/// 512^4 entries.
#[test]
fn tables_that_loop_everywhere() {
    for ident in [ArchitectureIdent::X86_64, ArchitectureIdent::X86_64La57, ArchitectureIdent::RiscVSv57] {
        let arch = ident.describe().unwrap();
        let mut mem = dummy_memory(1 << 20);
        let table = Address::new(0x8000);
        let entries: Vec<u8> = (0..512).flat_map(|_| arch.encode_table(0, table).to_le_bytes()).collect();
        mem.phys_write_raw(PhysicalAddress::plain(table), &entries).data().unwrap();
        let roots = [arch.root_register(table)];
        let mut rng = Rng::new(3);
        let vas = random_addresses(&arch, &mut rng, 1000);
        let mut dma = VirtualDma::new(mem.clone(), ident, &roots).unwrap();
        for (va, got) in translate_list(&mut dma, &vas) {
            assert_eq!(got, reference::translate(&mut mem, &arch, &roots, va), "{ident:?} {va:?}");
        }
        let mut count = 0u64;
        Translator::new(ident, &roots)
            .unwrap()
            .for_each_page(&mut mem, Address::NULL, Address::INVALID, |_| {
                count += 1;
                true
            })
            .unwrap();
        // On x86 every last-level entry is a page (512^4 of them); RISC-V has none (pointers
        // at the last level are invalid). Either way the budget of entries ends the walk.
        assert!(count <= 5 * ((1 << 20) / 8 + 512), "{ident:?}: {count}");
    }
}

/// Tables past the end of memory, or in a hole of the memory map, fail their addresses with
/// "table unreadable"; the rest of the batch is unaffected.
#[test]
fn tables_past_the_end_of_memory() {
    let ident = ArchitectureIdent::X86_64;
    let mut b =
        PageTableBuilder::new(dummy_memory(2 << 20), ident, Address::new(1 << 20)..Address::new(2 << 20)).unwrap();
    let good = Address::new(0x1000_0000);
    let bad = Address::new(0x2000_0000_0000);
    b.map(good, Address::new(0x3000), 12, PageType::empty()).unwrap();
    b.map(bad, Address::new(0x4000), 12, PageType::empty()).unwrap();
    let pdpte = b.entry_slot(bad, 1).unwrap();
    b.write_entry(pdpte, 0x7_0000_0000 | 0b11).unwrap();
    let mut dma = VirtualDma::new(b.memory(), ident, &b.roots()).unwrap();
    let res = translate_list(&mut dma, &[bad, good, bad + 0x1000 as umem]);
    assert_eq!(res[0].1.unwrap_err().kind, ErrorKind::OutOfBounds);
    assert_eq!(res[1].1.unwrap().address, Address::new(0x3000));
    assert_eq!(res[2].1.unwrap_err().kind, ErrorKind::OutOfBounds);
    let pages = {
        let mut v = vec![];
        Translator::new(ident, &b.roots())
            .unwrap()
            .for_each_page(&mut b.memory(), Address::NULL, Address::INVALID, |p| {
                v.push(p);
                true
            })
            .unwrap();
        v
    };
    assert_eq!(pages.len(), 1);
}

/// An entry cut by the end of memory (found by the fuzzer): its readable half must not count
/// as an entry, in the batched walk, the reference walker and the page walk alike.
#[test]
fn entry_cut_by_the_end_of_memory() {
    for ident in [ArchitectureIdent::X86_32, ArchitectureIdent::X86_64] {
        let arch = ident.describe().unwrap();
        let mut mem = dummy_memory(0x1002);
        mem.phys_write_raw(PhysicalAddress::plain(Address::new(0x1000)), &[0x83, 0x00]).data().unwrap();
        let roots = [arch.root_register(Address::new(0x1000))];
        let va = Address::NULL;
        assert!(reference::translate(&mut mem, &arch, &roots, va).is_err());
        let mut dma = VirtualDma::new(mem.clone(), ident, &roots).unwrap();
        assert!(translate_list(&mut dma, &[va])[0].1.is_err());
        let mut count = 0;
        Translator::new(ident, &roots)
            .unwrap()
            .for_each_page(&mut mem, Address::NULL, Address::INVALID, |_| {
                count += 1;
                true
            })
            .unwrap();
        assert_eq!(count, 0, "{ident:?}");
    }
}
