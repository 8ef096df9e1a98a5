//! The `list_head` walk (task list, module list) on arbitrary memory: it must end, visit at
//! most the limit, and never visit an element twice.
//!
//! Input: the limit (`u16`), the head's address (`u32`), then up to 64 KiB of memory.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::dummy_memory;
use memflow_core::mem::PhysicalMemory;
use memflow_core::os::linux::fuzz::list_walk;
use memflow_core::types::{Address, PhysicalAddress};

fuzz_target!(|data: &[u8]| {
    if data.len() < 7 || data.len() > 6 + (64 << 10) {
        return;
    }
    let max = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let head = Address::from(u32::from_le_bytes([data[2], data[3], data[4], data[5]]));
    let bytes = &data[6..];
    let mut mem = dummy_memory(bytes.len());
    mem.phys_write_raw(PhysicalAddress::plain(Address::NULL), bytes).unwrap();
    let mut seen = HashSet::new();
    let _ = list_walk(&mut mem.into_phys_view(), head, max, |node| {
        assert!(seen.insert(node), "{node} visited twice");
        true
    });
    assert!(seen.len() <= max);
});
