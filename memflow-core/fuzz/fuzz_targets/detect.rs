//! The whole open path minus the file system: detect, parse, serve the bytes as physical
//! memory, and read across every mapped range and the holes around it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memflow_core::connector::{detect, CpuState, OpenOptions};
use memflow_core::mem::PhysicalMemory;
use memflow_core::types::{umem, PhysicalAddress};

fuzz_target!(|data: &[u8]| {
    let Ok(mut conn) = detect::from_backing(data.to_vec(), OpenOptions::default()) else {
        return;
    };
    let ranges: Vec<_> = conn.memory_map().ranges().to_vec();
    let mut buf = [0u8; 64];
    for r in ranges {
        // The first and last bytes of each range, and a read straddling its end.
        for addr in [r.base, r.end() - 1 as umem, r.end() - 32 as umem] {
            let _ = conn.phys_read_raw_into(PhysicalAddress::plain(addr), &mut buf);
        }
    }
    // Every counted CPU has the registers of the dump's one CPU family.
    for cpu in 0..conn.cpu_count() {
        match (conn.x86_registers(cpu), conn.aarch64_registers(cpu), conn.riscv_registers(cpu)) {
            (Ok(regs), Err(_), Err(_)) => {
                let _ = (regs.arch_hint(), regs.page_table_root());
            }
            (Err(_), Ok(_), Err(_)) => {}
            (Err(_), Err(_), Ok(regs)) => {
                let _ = regs.paging();
            }
            other => panic!("CPU {cpu}: registers of not exactly one family: {other:?}"),
        }
    }
});
