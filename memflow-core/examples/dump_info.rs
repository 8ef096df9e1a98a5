//! Opens a memory dump (format detected by content) and prints its memory map and CPU state.
//!
//! ```text
//! cargo run --release -p memflow-core --example dump_info -- target/fixtures/cloud-4l/dump.elf
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // example code: a panic with its message is the clearest way out

use memflow_core::connector::{self, CpuState, OpenOptions};
use memflow_core::mem::PhysicalMemory;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: dump_info DUMP");
        std::process::exit(2);
    };
    let dump = match connector::open(&path, OpenOptions::default()) {
        Ok(dump) => dump,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            std::process::exit(1);
        }
    };
    let meta = dump.metadata();
    println!(
        "{path}: {} ({:?}), {} bytes of memory up to {}",
        dump.format().name(),
        dump.format(),
        meta.real_size,
        meta.max_address
    );
    println!("  {}", dump.info().description);
    println!(
        "memory map ({} ranges; for compressed formats the offset column is the guest address):",
        dump.memory_map().ranges().len()
    );
    for r in dump.memory_map().ranges() {
        println!(
            "  {:#014x}-{:#014x} ({:>10} bytes) at file offset {:#x}",
            r.base.to_umem(),
            r.end().to_umem(),
            r.size,
            r.backing
        );
    }
    println!("cpus: {}", dump.cpu_count());
    for cpu in 0..dump.cpu_count() {
        let Ok(regs) = dump.x86_registers(cpu) else { continue };
        println!(
            "  cpu {cpu}: mode {:?}, page-table root {}",
            regs.arch_hint(),
            regs.page_table_root().map_or("unknown".to_string(), |a| a.to_string())
        );
        println!("    cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x}", regs.cr0, regs.cr3, regs.cr4, regs.efer);
        println!("    rip {:#x} rsp {:#x} rflags {:#x}", regs.rip, regs.rsp, regs.rflags);
    }
    if let Some(info) = &dump.info().vmcoreinfo {
        println!("vmcoreinfo: {info:?}");
    }
}
