//! Synthetic targets for tests and benchmarks: real page tables of every supported
//! architecture in synthetic physical memory, with the truth of what is mapped.
//!
//! [`PageTableBuilder`] writes tables page by page; [`random_space`] builds a whole address
//! space from a seed: pages of every size the architecture has, clustered so tables are
//! shared, with random flags, in every canonical range, over memory whose every 8-byte word
//! holds its own physical address (so reads can be checked).
//!
//! [`DummyOs`] is a whole synthetic OS on such tables: processes with ELF modules ([`elf`]),
//! heaps and stacks, kernel modules, and the truth of all of it (see `os.rs`; the records are in `truth.rs`).
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`

pub mod elf;
mod os;
mod page_tables;
mod process;
mod rng;
mod truth;

pub use os::{DummyOs, DummyOsBuilder};
pub use page_tables::PageTableBuilder;
pub use process::DummyProcess;
pub use rng::Rng;
pub use truth::{DummyModule, DummyProcessTruth, DummyRegion, DummySpace};

use crate::arch::ArchitectureIdent;
use crate::connector::dummy_memory;
use crate::error::{PartialResultExt, Result};
use crate::mem::PhysicalMemory;
use crate::types::{umem, Address, PageType, PhysicalAddress};

/// Memory of `size` bytes whose every aligned 8-byte word holds its own address (little endian).
#[allow(clippy::expect_used, reason = "the pattern is made for the memory: it always fits")]
pub fn patterned_memory(size: usize) -> crate::connector::BufferMemory {
    let mut mem = dummy_memory(size);
    let pattern: Vec<u8> = (0..size as u64 / 8).flat_map(|i| (i * 8).to_le_bytes()).collect();
    mem.phys_write_raw(PhysicalAddress::plain(Address::NULL), &pattern)
        .data()
        .expect("the pattern fits the memory it was made for");
    mem
}

/// A random address space of `arch` with about `pages` mappings (fewer where random choices
/// collide) in `mem_size` bytes of patterned memory (see the module docs).
///
/// The lower half of memory holds data pages, the upper half the tables. Pages larger than the
/// data half map physical addresses beyond memory (their reads fail, their translations work).
pub fn random_space(arch: ArchitectureIdent, seed: u64, pages: usize, mem_size: usize) -> Result<PageTableBuilder> {
    let mem = patterned_memory(mem_size);
    let half = Address::new((mem_size / 2) as umem);
    let mut b = PageTableBuilder::new(mem, arch, half..Address::new(mem_size as umem))?;
    let a = *b.arch();
    let mut rng = Rng::new(seed);
    let leaf_levels: Vec<u8> = a.levels().iter().filter(|l| l.leaf).map(|l| l.shift).collect();
    let segments: Vec<_> = a.segments().collect();
    // A few cluster bases per segment, so pages share their upper tables.
    let clusters: Vec<Address> = (0..8)
        .map(|i| {
            let s = segments[i % segments.len()];
            let span = (s.last - s.first) as u64;
            s.first + rng.below(span.max(1)) as umem
        })
        .collect();
    let mut mapped = 0;
    for _ in 0..pages * 8 {
        if mapped >= pages {
            break;
        }
        // Mostly small pages; sometimes each larger size.
        let shift = if rng.chance(75) {
            leaf_levels[leaf_levels.len() - 1]
        } else {
            leaf_levels[rng.below(leaf_levels.len() as u64) as usize]
        };
        let size = (1 as umem) << shift;
        let run = if rng.chance(50) { 1 + rng.below(16) } else { 1 };
        let base = clusters[rng.below(clusters.len() as u64) as usize];
        let va = (base + (rng.below(64) as umem) * size * 8).align_down(size);
        let pa = if size * 2 <= half.to_umem() {
            Address::new(rng.below((half.to_umem() / size) as u64) as umem * size)
        } else {
            let phys_bits = a.pointer_bits().min(40) as u32;
            Address::new((rng.next_u64() & ((1 << phys_bits) - 1)) as umem).align_down(size)
        };
        let mut flags = PageType::empty();
        for f in [PageType::WRITEABLE, PageType::USER, PageType::NOEXEC] {
            if rng.chance(50) {
                flags |= f;
            }
        }
        for i in 0..run as umem {
            // Collisions with earlier pages (or non-canonical ends of a run) are skipped.
            if b.map(va + i * size, pa + i * size, shift, flags).is_ok() {
                mapped += 1;
            }
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests;
