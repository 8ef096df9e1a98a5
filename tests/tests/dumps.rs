//! The dump connectors against real QEMU guest dumps.
//!
//! The fixtures come from `cargo xtask fixtures` (`cargo xtask test` builds them first): a
//! 4-level (`cloud-4l`, `trixie-4l-kaslr`) and a 5-level paging guest (`cloud-5l`,
//! `trixie-5l`) of Debian 12's and 13's kernels, ARM64 guests (`arm64-4k`, `arm64-16k`,
//! `arm64-max`) and RISC-V guests (`riscv64-sv39`, `riscv64-sv48`, `riscv64-sv57`),
//! each with `dump.elf` (QEMU `dump-guest-memory`), `serial.log` (what the guest printed about
//! itself) and `meta.txt`; cloud-4l also has QEMU's compressed kdump of the same moment
//! (flattened) and makedumpfile's plain reassembly of it, and `cloud-4l-avml` AVML captures
//! the guest took of itself.
//! A missing fixture fails the tests: they never skip silently.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memflow_core::connector::cpu_state::{CR0_PG, CR4_LA57, CR4_PAE};
use memflow_core::connector::{
    lime, open, CpuState, DumpFormat, FileConnector, OpenOptions, X86ArchHint, X86RegisterSet,
};
use memflow_core::error::{ErrorKind, PartialResultExt};
use memflow_core::mem::{MemoryMap, PhysicalMemory};
use memflow_core::types::{umem, Address, PhysicalAddress};
use memflow_tests::Fixture;
use rand::{Rng, SeedableRng};

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
}

fn memory_map_covers_system_ram(name: &'static str) {
    let fx = Fixture::load(name);
    let conn = fx.open();
    let map = conn.memory_map();
    for (start, end) in fx.system_ram() {
        let mut addr = start as umem;
        while addr <= end as umem {
            let (_, avail) = map
                .lookup(Address::new(addr))
                .unwrap_or_else(|| panic!("{name}: System RAM {start:#x}-{end:#x} is not mapped at {addr:#x}"));
            addr += avail;
        }
    }
}

/// x86-64 dumps (`la57`: `Some` with the paging mode) have per-CPU control registers that
/// name the page tables. ARM64 and RISC-V dumps (`None`) have general registers only (QEMU
/// writes no TTBR, TCR or `satp`): the one CPU ran in the kernel (ARM64: at EL1) with the
/// program counter in the kernel's text and the stack pointer in the kernel half, or, if QEMU
/// stopped it while a process ran, in user space (ARM64: at EL0) with both in the lower half.
fn cpu_state_finds_the_page_tables(name: &'static str, la57: Option<bool>) {
    let fx = Fixture::load(name);
    let conn = fx.open();
    let Some(la57) = la57 else {
        assert_eq!(conn.cpu_count(), 1, "{name}: CPU state of the dump");
        assert_eq!(conn.x86_registers(0).unwrap_err().kind, ErrorKind::NotFound, "{name}");
        if fx.meta("kernel_release").ends_with("-riscv64") {
            assert_eq!(conn.aarch64_registers(0).unwrap_err().kind, ErrorKind::NotFound, "{name}");
            let regs = conn.riscv_registers(0).unwrap();
            let in_kernel = fx.check_pc(regs.pc);
            assert!(regs.sp() >> 63 == u64::from(in_kernel) && regs.x[0] == 0, "{name}: {regs:x?}");
            assert!(!regs.satp_valid, "{name}: the dump records no satp");
            assert_eq!(conn.riscv_registers(1).unwrap_err().kind, ErrorKind::NotFound, "{name}");
            return;
        }
        assert_eq!(conn.riscv_registers(0).unwrap_err().kind, ErrorKind::NotFound, "{name}");
        let regs = conn.aarch64_registers(0).unwrap();
        let in_kernel = fx.check_pc(regs.pc);
        let el = if in_kernel { 0b0100 } else { 0b0000 };
        assert_eq!(regs.pstate & 0b1100, el, "{name}: exception level in PSTATE {:#x}", regs.pstate);
        assert!(regs.sp >> 63 == u64::from(in_kernel) && (!in_kernel || regs.x[30] >> 63 == 1), "{name}: {regs:x?}");
        assert_eq!(conn.aarch64_registers(1).unwrap_err().kind, ErrorKind::NotFound, "{name}");
        return;
    };
    assert_eq!(conn.aarch64_registers(0).unwrap_err().kind, ErrorKind::NotFound, "{name}");
    assert_eq!(conn.riscv_registers(0).unwrap_err().kind, ErrorKind::NotFound, "{name}");
    assert!(conn.cpu_count() >= 1, "{name}: no CPU state");
    for cpu in 0..conn.cpu_count() {
        let regs = conn.x86_registers(cpu).unwrap();
        assert!(regs.valid.contains(X86RegisterSet::CONTROL | X86RegisterSet::GENERAL), "{name} CPU {cpu}: {regs:?}");
        assert_ne!(regs.cr0 & CR0_PG, 0, "{name} CPU {cpu}: CR0.PG clear");
        assert_ne!(regs.cr4 & CR4_PAE, 0, "{name} CPU {cpu}: CR4.PAE clear");
        assert_eq!(regs.cr4 & CR4_LA57 != 0, la57, "{name} CPU {cpu}: CR4.LA57 should be {la57}");
        let want = if la57 { X86ArchHint::X86_64La57 } else { X86ArchHint::X86_64 };
        assert_eq!(regs.arch_hint(), want, "{name} CPU {cpu}");
        let root = regs.page_table_root().unwrap();
        assert!(!root.is_null() && root.to_umem() % 0x1000 == 0, "{name} CPU {cpu}: bad root {root}");
        assert!(conn.memory_map().lookup(root).is_some(), "{name} CPU {cpu}: root {root} is not in the dump");
    }
    // The fixture script read the same registers independently.
    let cpu0 = conn.x86_registers(0).unwrap();
    assert_eq!(cpu0.cr0, hex(fx.meta("cpu0_cr0")));
    assert_eq!(cpu0.cr3, hex(fx.meta("cpu0_cr3")));
    assert_eq!(cpu0.cr4, hex(fx.meta("cpu0_cr4")));
}

/// Scans all mapped memory for `needle` in chunks that overlap by `needle.len() - 1`.
fn find_in_memory(conn: &mut FileConnector, needle: &[u8]) -> Option<Address> {
    const CHUNK: usize = 4 << 20;
    let mut buf = vec![0u8; CHUNK + needle.len()];
    for r in conn.memory_map().ranges().to_vec() {
        let mut off: umem = 0;
        while off < r.size {
            let len = (r.size - off).min(buf.len() as umem) as usize;
            conn.phys_read_raw_into(PhysicalAddress::plain(r.base + off), &mut buf[..len]).data().unwrap();
            let hay = &buf[..len];
            let mut i = 0;
            while let Some(p) = hay[i..].iter().position(|&b| b == needle[0]) {
                if hay[i + p..].starts_with(needle) {
                    return Some(r.base + off + (i + p) as umem);
                }
                i += p + 1;
            }
            off += CHUNK as umem;
        }
    }
    None
}

fn proc_version_is_in_memory(name: &'static str) {
    let fx = Fixture::load(name);
    let version = fx.section("version").trim();
    assert!(version.starts_with("Linux version "), "{name}: unexpected /proc/version {version:?}");
    let found = find_in_memory(&mut fx.open(), version.as_bytes());
    assert!(found.is_some(), "{name}: /proc/version text not found in physical memory: {version:?}");
}

/// A guest address or size as the `u64` of a LiME header (`umem` is `u128` with the
/// `128_bit_mem` feature; the dumps here are 64-bit).
#[allow(clippy::unnecessary_cast)]
fn to_u64(v: umem) -> u64 {
    v as u64
}

/// Removes a directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lime_and_raw_copies_read_back_identical(name: &'static str) {
    let fx = Fixture::load(name);
    let mut elf = fx.open();
    let tmp = TempDir(Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dumps-{name}-{}", std::process::id())));
    std::fs::create_dir_all(&tmp.0).unwrap();
    let ranges = elf.memory_map().ranges().to_vec();

    // A LiME file of the ranges, and a raw file of the same bytes back to back with the
    // matching caller-given layout.
    let (lime_path, raw_path) = (tmp.0.join("dump.lime"), tmp.0.join("dump.raw"));
    let mut lime_out = BufWriter::new(File::create(&lime_path).unwrap());
    let mut raw_out = BufWriter::new(File::create(&raw_path).unwrap());
    let mut raw_map = MemoryMap::new();
    let mut raw_off: umem = 0;
    let mut buf = vec![0u8; 4 << 20];
    for r in &ranges {
        let base = to_u64(r.base.to_umem());
        lime_out.write_all(&lime::header(base, base + to_u64(r.size) - 1)).unwrap();
        raw_map.push(r.base, r.size, raw_off).unwrap();
        raw_off += r.size;
        let mut off: umem = 0;
        while off < r.size {
            let len = (r.size - off).min(buf.len() as umem) as usize;
            elf.phys_read_raw_into(PhysicalAddress::plain(r.base + off), &mut buf[..len]).data().unwrap();
            lime_out.write_all(&buf[..len]).unwrap();
            raw_out.write_all(&buf[..len]).unwrap();
            off += len as umem;
        }
    }
    lime_out.into_inner().unwrap().sync_all().unwrap();
    raw_out.into_inner().unwrap().sync_all().unwrap();

    let mut lime = open(&lime_path, OpenOptions::default()).unwrap();
    assert_eq!(lime.format(), DumpFormat::Lime);
    let mut raw = open(&raw_path, OpenOptions { raw_map: Some(raw_map), ..OpenOptions::default() }).unwrap();
    assert_eq!(raw.format(), DumpFormat::Raw);
    assert_eq!(lime.memory_map().ranges().len(), ranges.len());
    assert_eq!(lime.metadata().real_size, elf.metadata().real_size);

    // Random reads, some across range edges into holes: same bytes, same partial status.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d656d666c6f77);
    for i in 0..4000 {
        let r = ranges[rng.gen_range(0..ranges.len())];
        let len = rng.gen_range(1..=8192usize);
        let addr = if i % 4 == 0 {
            // Around the end of the range.
            r.end() - (rng.gen_range(0..2 * len) as umem)
        } else {
            r.base + rng.gen_range(0..r.size)
        };
        let mut want = vec![0u8; len];
        let res = elf.phys_read_raw_into(PhysicalAddress::plain(addr), &mut want);
        for (what, conn) in [("LiME", &mut lime), ("raw", &mut raw)] {
            let mut got = vec![0xa5u8; len];
            let got_res = conn.phys_read_raw_into(PhysicalAddress::plain(addr), &mut got);
            assert_eq!(got_res.is_partial(), res.is_partial(), "{name} {what}: status at {addr}+{len:#x}");
            assert!(got == want, "{name} {what}: bytes differ at {addr}+{len:#x}");
        }
    }
}

/// A compressed dump of the same guest moment as the fixture's `dump.elf`: the same memory
/// map, the same CPU state, and every page present in both holds the same bytes.
fn compressed_dump_matches_the_elf(name: &'static str) {
    let fx = Fixture::load(name);
    let mut dump = fx.open();
    let mut elf = fx.open_elf();
    let ranges = |c: &FileConnector| -> Vec<(Address, umem)> {
        c.memory_map().ranges().iter().map(|r| (r.base, r.size)).collect()
    };
    assert_eq!(ranges(&dump), ranges(&elf), "{name}: memory map");
    assert_eq!(dump.info().cpus, elf.info().cpus, "{name}: CPU state");
    assert!(!dump.info().description.is_empty());
    const PAGE: usize = 4096;
    let (mut a, mut b) = (vec![0u8; 64 * PAGE], vec![0u8; 64 * PAGE]);
    let mut pages = 0u64;
    for r in elf.memory_map().ranges().to_vec() {
        let mut off: umem = 0;
        while off < r.size {
            let len = (r.size - off).min(a.len() as umem) as usize;
            let at = PhysicalAddress::plain(r.base + off);
            let ra = elf.phys_read_raw_into(at, &mut a[..len]);
            let rb = dump.phys_read_raw_into(at, &mut b[..len]);
            assert!(!ra.is_partial(), "{name}: ELF read at {}", r.base + off);
            // QEMU saves every page: nothing is absent.
            assert!(!rb.is_partial(), "{name}: compressed read at {}", r.base + off);
            for (i, (pa, pb)) in a[..len].chunks(PAGE).zip(b[..len].chunks(PAGE)).enumerate() {
                assert!(pa == pb, "{name}: page at {} differs", r.base + off + (i * PAGE) as umem);
                pages += 1;
            }
            off += len as umem;
        }
    }
    assert_eq!(pages * PAGE as u64, to_u64(elf.metadata().real_size), "{name}");
}

#[test]
fn qemu_kdump_zlib_matches_the_elf() {
    compressed_dump_matches_the_elf("cloud-4l/dump.kdump-zlib");
}

#[test]
fn makedumpfile_reassembled_kdump_matches_the_elf() {
    compressed_dump_matches_the_elf("cloud-4l/dump.kdump-zlib-plain");
}

/// An AVML capture the guest took of itself before the ELF dump: not the same moment, but
/// the kernel's code and read-only data (`Kernel code` and `Kernel rodata` of /proc/iomem)
/// are the same bytes, and what AVML left out reads as absent.
fn avml_capture_holds_the_kernel_of_the_elf(name: &'static str) {
    let fx = Fixture::load(name);
    let mut capture = fx.open();
    let mut elf = fx.open_elf();
    for what in ["Kernel code", "Kernel rodata"] {
        let line = fx.section("iomem").lines().find(|l| l.trim_end().ends_with(&format!(": {what}"))).unwrap();
        let (start, end) = line.trim().split(' ').next().unwrap().split_once('-').unwrap();
        let (start, end) = (hex(start), hex(end));
        let len = (end - start + 1) as usize;
        let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
        let at = PhysicalAddress::plain(Address::new(start as umem));
        elf.phys_read_raw_into(at, &mut a).data().unwrap();
        capture.phys_read_raw_into(at, &mut b).data().unwrap();
        assert!(a == b, "{name}: {what} differs from the ELF dump's");
    }
    assert_eq!(capture.cpu_count(), 0, "{name}: AVML records no CPU state");
}

#[test]
fn avml_compressed_capture_holds_the_kernel() {
    avml_capture_holds_the_kernel_of_the_elf("cloud-4l-avml/dump.avml");
}

#[test]
fn avml_lime_capture_holds_the_kernel() {
    avml_capture_holds_the_kernel_of_the_elf("cloud-4l-avml/dump.avml-lime");
}

macro_rules! fixture_tests {
    ($($module:ident: $name:literal, la57: $la57:expr);* $(;)?) => {$(
        mod $module {
            #[test]
            fn memory_map_covers_system_ram() {
                super::memory_map_covers_system_ram($name);
            }

            #[test]
            fn cpu_state_finds_the_page_tables() {
                super::cpu_state_finds_the_page_tables($name, $la57);
            }

            #[test]
            fn proc_version_is_in_memory() {
                super::proc_version_is_in_memory($name);
            }

            #[test]
            fn lime_and_raw_copies_read_back_identical() {
                super::lime_and_raw_copies_read_back_identical($name);
            }
        }
    )*};
}

fixture_tests! {
    cloud_4l: "cloud-4l", la57: Some(false);
    cloud_5l: "cloud-5l", la57: Some(true);
    trixie_4l_kaslr: "trixie-4l-kaslr", la57: Some(false);
    trixie_5l: "trixie-5l", la57: Some(true);
    arm64_4k: "arm64-4k", la57: None;
    arm64_16k: "arm64-16k", la57: None;
    riscv64_sv39: "riscv64-sv39", la57: None;
    riscv64_sv48: "riscv64-sv48", la57: None;
    riscv64_sv57: "riscv64-sv57", la57: None;
    arm64_max: "arm64-max", la57: None;
}
