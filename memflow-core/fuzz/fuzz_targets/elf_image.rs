//! ELF images as a loader left them in memory (modules of a process): parse the image at 0
//! of arbitrary memory and list its exports, imports and sections. Everything must return.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::dummy_memory;
use memflow_core::mem::PhysicalMemory;
use memflow_core::os::elf_image::ElfImage;
use memflow_core::types::{Address, PhysicalAddress};

fuzz_target!(|bytes: &[u8]| {
    if bytes.is_empty() || bytes.len() > 256 << 10 {
        return;
    }
    let mut mem = dummy_memory(bytes.len());
    mem.phys_write_raw(PhysicalAddress::plain(Address::NULL), bytes).unwrap();
    let mut view = mem.into_phys_view();
    let Ok(image) = ElfImage::parse(&mut view, Address::NULL) else { return };
    let (mut exports, mut imports, mut sections) = (0usize, 0usize, 0usize);
    let _ = image.exports(&mut view, |_| {
        exports += 1;
        true
    });
    let _ = image.imports(&mut view, |_| {
        imports += 1;
        true
    });
    let _ = image.sections(&mut view, None, |_| {
        sections += 1;
        true
    });
    assert!(exports <= memflow_core::os::elf_image::MAX_SYMBOLS);
});
