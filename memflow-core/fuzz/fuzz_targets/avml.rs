//! The AVML reader on arbitrary bytes: opening must return, never panic, and what opens must
//! read back (or fail) without panicking.
#![no_main]

use std::ops::Deref;

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::{avml, detect, Backing, DumpFormat, OpenOptions};
use memflow_core::mem::PhysicalMemory;
use memflow_core::types::{umem, PhysicalAddress};

/// The fuzz input as a backing, the way a mapped file is one.
struct Bytes(Vec<u8>);

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Backing for Bytes {
    fn bytes(&self) -> (*const u8, usize) {
        (self.0.as_ptr(), self.0.len())
    }
    fn writable(&self) -> bool {
        false
    }
}

fuzz_target!(|data: &[u8]| {
    if !avml::is_avml(data) {
        return;
    }
    let options = OpenOptions { cache_size: 65536, ..OpenOptions::default() };
    let Ok(mut conn) = detect::from_backing(Bytes(data.to_vec()), options) else { return };
    assert_eq!(conn.format(), DumpFormat::Avml);
    let mut buf = vec![0u8; 70000];
    for r in conn.memory_map().ranges().iter().take(64).copied().collect::<Vec<_>>() {
        let len = (r.size as usize).min(buf.len());
        let _ = conn.phys_read_raw_into(PhysicalAddress::plain(r.base), &mut buf[..len]);
        let _ = conn.phys_read_raw_into(PhysicalAddress::plain(r.end() - 100 as umem), &mut buf[..200]);
    }
});
