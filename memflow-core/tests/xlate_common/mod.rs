//! Helpers shared by the translation tests.
#![allow(dead_code)]

use std::collections::HashMap;

use memflow_core::cglue::iter::CIterator;
use memflow_core::dummy::{PageTableBuilder, Rng};
use memflow_core::error::Error;
use memflow_core::translate::{TranslationFailure, VirtualTranslate, VirtualTranslation};
use memflow_core::types::{umem, Address, PhysicalAddress};

/// Addresses worth translating in a built space: every page's first, last and a random byte,
/// the bytes just outside each page, and fully random addresses.
pub fn sample_addresses(b: &PageTableBuilder, rng: &mut Rng, random: usize) -> Vec<Address> {
    let mut out = vec![];
    for m in b.truth() {
        let size = m.size();
        out.push(m.va);
        out.push(m.va + (size - 1));
        out.push(m.va + (rng.next_u64() as umem % size));
        out.push(m.va - 1 as umem);
        out.push(m.va + size);
    }
    for _ in 0..random {
        out.push(Address::new(rng.next_u64() as umem));
    }
    out
}

/// Translates `vas` in one list call; every address must be reported exactly once.
pub fn translate_list(
    t: &mut impl VirtualTranslate,
    vas: &[Address],
) -> Vec<(Address, Result<PhysicalAddress, Error>)> {
    let mut ok = vec![];
    let mut fail = vec![];
    t.virt_to_phys_list(
        CIterator::from(&mut vas.iter().copied()),
        (&mut |v: VirtualTranslation| {
            ok.push((v.va, v.pa));
            true
        })
            .into(),
        (&mut |f: TranslationFailure| {
            fail.push((f.va, f.error));
            true
        })
            .into(),
    )
    .unwrap();
    assert_eq!(ok.len() + fail.len(), vas.len(), "every address is reported once");
    let mut by_va: HashMap<Address, Result<PhysicalAddress, Error>> = HashMap::new();
    by_va.extend(ok.into_iter().map(|(va, pa)| (va, Ok(pa))));
    by_va.extend(fail.into_iter().map(|(va, e)| (va, Err(e))));
    vas.iter().map(|va| (*va, by_va[va])).collect()
}
