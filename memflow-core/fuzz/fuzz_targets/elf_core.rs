//! The ELF core parser on arbitrary bytes: it must return, never panic, and only map bytes
//! that exist.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::elf;

fuzz_target!(|data: &[u8]| {
    if let Ok(core) = elf::parse(data) {
        for r in core.map.ranges() {
            assert!(r.backing + r.size <= data.len() as _);
        }
        for cpu in &core.cpus {
            let _ = (cpu.arch_hint(), cpu.page_table_root());
        }
    }
});
