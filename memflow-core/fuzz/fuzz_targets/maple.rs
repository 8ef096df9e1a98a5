//! The maple tree walk (the VMAs of a process) on arbitrary memory with the Linux 6.1 node
//! layout: it must end, within the node limit.
//!
//! Input: the root pointer (`u64`), then up to 256 KiB of memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::dummy_memory;
use memflow_core::mem::PhysicalMemory;
use memflow_core::os::linux::{fuzz::maple_entries, limits};
use memflow_core::types::{Address, PhysicalAddress};

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 || data.len() > 8 + (256 << 10) {
        return;
    }
    let root = u64::from_le_bytes(data[..8].try_into().unwrap());
    let bytes = &data[8..];
    let mut mem = dummy_memory(bytes.len());
    mem.phys_write_raw(PhysicalAddress::plain(Address::NULL), bytes).unwrap();
    let mut count = 0usize;
    let _ = maple_entries(&mut mem.into_phys_view(), root, |_| count += 1);
    assert!(count <= limits::MAX_MAPLE_NODES * 31);
});
