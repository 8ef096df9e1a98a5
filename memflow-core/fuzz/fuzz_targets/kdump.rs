//! The compressed kdump reader (plain and flattened) on arbitrary bytes: opening must return,
//! never panic, and every page of what opens must read back (or fail) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::{detect, DumpFormat, OpenOptions};
use memflow_core::mem::PhysicalMemory;
use memflow_core::types::{umem, PhysicalAddress};

fuzz_target!(|data: &[u8]| {
    // Only the kdump signatures: other formats have their own targets.
    if !(data.starts_with(b"KDUMP   ") || data.starts_with(b"makedumpfile")) {
        return;
    }
    let options = OpenOptions { cache_size: 8192, ..OpenOptions::default() };
    let Ok(mut conn) = detect::from_backing(data.to_vec(), options) else { return };
    assert!(matches!(conn.format(), DumpFormat::Kdump | DumpFormat::FlattenedKdump));
    let mut page = [0u8; 4096];
    // At most 256 pages per range, 64 ranges: bounded work per input.
    for r in conn.memory_map().ranges().iter().take(64).copied().collect::<Vec<_>>() {
        let mut off: umem = 0;
        while off < r.size && off < 256 * 4096 {
            let _ = conn.phys_read_raw_into(PhysicalAddress::plain(r.base + off), &mut page);
            off += 4096;
        }
    }
});
