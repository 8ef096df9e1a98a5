//! The AVML reader on arbitrary bytes: opening must return, never panic, and what opens must
//! read back (or fail) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::{avml, detect, DumpFormat, OpenOptions};
use memflow_core::mem::PhysicalMemory;
use memflow_core::types::{umem, PhysicalAddress};

fuzz_target!(|data: &[u8]| {
    if !avml::is_avml(data) {
        return;
    }
    let options = OpenOptions { cache_size: 65536, ..OpenOptions::default() };
    let Ok(mut conn) = detect::from_backing(data.to_vec(), options) else { return };
    assert_eq!(conn.format(), DumpFormat::Avml);
    let mut buf = vec![0u8; 70000];
    for r in conn.memory_map().ranges().iter().take(64).copied().collect::<Vec<_>>() {
        let len = (r.size as usize).min(buf.len());
        let _ = conn.phys_read_raw_into(PhysicalAddress::plain(r.base), &mut buf[..len]);
        let _ = conn.phys_read_raw_into(PhysicalAddress::plain(r.end() - 100 as umem), &mut buf[..200]);
    }
});
