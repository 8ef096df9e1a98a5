//! The page walkers on arbitrary table contents, for every architecture: the batched engine
//! must agree with the reference walker on every address, the depth-first page walk must end
//! and report only pages the reference agrees with, and virtual reads must not panic.
//!
//! Input: mode index, one root page per root, an address count, the addresses (8 bytes each,
//! little endian), then the bytes of physical memory (at most 256 KiB).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::arch::ArchitectureIdent;
use memflow_core::connector::dummy_memory;
use memflow_core::mem::{MemoryView, PhysicalMemory};
use memflow_core::translate::{reference, Translator};
use memflow_core::types::{umem, Address, PhysicalAddress};
use memflow_core::virt::VirtualDma;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let ident = ArchitectureIdent::EVERY_MODE[data[0] as usize % ArchitectureIdent::EVERY_MODE.len()];
    let arch = ident.describe().unwrap();
    let roots: Vec<Address> = data[1..3]
        .iter()
        .take(arch.root_count())
        .map(|&page| arch.root_register(Address::new(page as umem * arch.page_size())))
        .collect();
    let count = (data[3] % 32) as usize;
    let rest = &data[4..];
    let split = (count * 8).min(rest.len());
    let vas: Vec<Address> = rest[..split]
        .chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            Address::new(u64::from_le_bytes(b) as umem)
        })
        .collect();
    let bytes = &rest[split..];
    if bytes.is_empty() || bytes.len() > 256 << 10 {
        return;
    }
    let mut mem = dummy_memory(bytes.len());
    mem.phys_write_raw(PhysicalAddress::plain(Address::NULL), bytes).unwrap();

    let mut translator = Translator::new(ident, &roots).unwrap();
    let mut results = vec![];
    translator.translate(&mut mem, vas.iter().copied(), |va, res| {
        results.push((va, res));
        true
    })
    .unwrap();
    assert_eq!(results.len(), vas.len());
    for (va, got) in results {
        assert_eq!(got, reference::translate(&mut mem, &arch, &roots, va), "{ident:?} {va:?}");
    }

    let mut pages = vec![];
    translator
        .for_each_page(&mut mem, Address::NULL, Address::INVALID, |p| {
            if pages.len() < 64 {
                pages.push(p)
            }
            true
        })
        .unwrap();
    for p in pages {
        let pa = reference::translate(&mut mem, &arch, &roots, p.va).unwrap();
        assert_eq!((pa.address, pa.page_size_log2, pa.page_type), (p.pa, p.size_log2, p.page_type));
    }

    let mut view = VirtualDma::new(mem, ident, &roots).unwrap();
    let mut buf = [0u8; 64];
    for va in vas {
        let _ = view.read_raw_into(va, &mut buf);
    }
});
