//! The translation engine on page tables written by a real kernel (issue 3, "Proof").
//!
//! Fixtures `cloud-4l` (`-cpu qemu64`, 4-level paging) and `cloud-5l` (`-cpu max`, LA57) are
//! the same Debian 6.1 cloud kernel booted with `nokaslr`, `trixie-4l-kaslr` and `trixie-5l`
//! the same with Debian's 6.12 cloud kernel (the first with KASLR); see `xtask::fixture`. For
//! each dump, with CR3 from the dump's CPU state and the paging mode from CR4.LA57:
//!
//! - every kernel-image text/data symbol of the guest's `/proc/kallsyms` is translated in
//!   batches by the engine (`virt_to_phys_list`) and one at a time (`virt_to_phys`) and
//!   compared with the single-address reference walker (`translate::reference`); all must
//!   translate (the init sections included: x86-64 and RISC-V keep them mapped in their image
//!   after boot),
//!   to `_text`'s linear physical offset;
//! - `linux_banner` read through `VirtualDma` equals the line the guest printed from
//!   `/proc/version`;
//! - the page map of the kernel half (`virt_page_map_range`) and its translation map equal what
//!   the reference walker's whole-space enumeration finds there.
//!
//! Fixtures `arm64-4k` and `arm64-16k` are Debian 13's arm64 kernels with 4 KiB pages
//! (48-bit virtual addresses) and 16 KiB pages (47-bit), KASLR on, under
//! `qemu-system-aarch64 -M virt`; `arm64-max` is `arm64-4k`'s kernel on QEMU's `max` CPU,
//! where it runs 52-bit virtual addresses with FEAT_LPA2's descriptors (5 levels). Their dumps record no system registers, so the
//! kernel's TTBR1 table is found by scanning (`memflow_core::os::linux::aarch64`; the test
//! checks it is `swapper_pg_dir`), and every symbol is also checked against a plain AArch64
//! descriptor walk written here ([`aarch64_walk`]), independent of the engine's architecture
//! tables. ARM64 unmaps the init sections when it frees them: their symbols must not translate.
//!
//! Fixtures `riscv64-sv39`, `riscv64-sv48` and `riscv64-sv57` are Debian 13's riscv64 kernel
//! under `qemu-system-riscv64 -M virt`, limited to Sv39 by `no4lvl` and to Sv48 by `no5lvl`,
//! and in the Sv57 QEMU's CPU offers. Their dumps record no `satp` either: the kernel's table and the paging mode are
//! found by scanning (`memflow_core::os::linux::riscv64`; the test checks they are
//! `swapper_pg_dir` and the mode of the `satp` QEMU's monitor showed), and every symbol is
//! also checked against a plain Sv39/48/57 walk written here ([`riscv_walk`]).
//!
//! Every symbol is checked (no sampling): a debug build runs each fixture in well under a second.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use memflow_core::arch::{Architecture, ArchitectureIdent};
use memflow_core::cglue::iter::CIterator;
use memflow_core::connector::cpu_state::CR4_LA57;
use memflow_core::connector::{CpuState, FileConnector, RiscVRegisters};
use memflow_core::error::Error;
use memflow_core::mem::{MemoryView, PhysicalMemory};
use memflow_core::os::linux::{aarch64, riscv64};
use memflow_core::translate::{
    reference, MemoryRange, TranslationFailure, TranslationRange, VirtualTranslate, VirtualTranslation,
};
use memflow_core::types::{umem, Address, PhysicalAddress};
use memflow_core::virt::VirtualDma;
use memflow_tests::Fixture;

/// Symbols translated per `virt_to_phys_list` call.
const BATCH: usize = 4096;

struct Symbol {
    addr: u64,
    kind: char,
    name: String,
}

/// The kernel-image symbols of kallsyms.txt (no module symbols), their image range and the init
/// range the kernel frees after boot.
struct Kallsyms {
    image: Vec<Symbol>,
    /// `_text..._end`.
    text_end: (u64, u64),
    /// `__init_begin..__init_end` (only counted).
    init: (u64, u64),
}

/// The kernel-image symbols of `fx`, whose kernel half starts at `half`.
fn kallsyms(fx: &Fixture, half: u64) -> Kallsyms {
    let text = std::fs::read_to_string(fx.dir.join("kallsyms.txt"))
        .unwrap_or_else(|e| panic!("{}: kallsyms.txt: {e} (run cargo xtask fixtures)", fx.name));
    let mut all = vec![];
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else { continue };
        if f.next().is_some() {
            continue; // "[module]": not part of the kernel image
        }
        let kind = kind.chars().next().unwrap();
        all.push(Symbol { addr: u64::from_str_radix(addr, 16).unwrap(), kind, name: name.to_string() });
    }
    let find = |name: &str| {
        all.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{}: no {name} in kallsyms", fx.name)).addr
    };
    let text_end = (find("_text"), find("_end"));
    let init = (find("__init_begin"), find("__init_end"));
    assert!(text_end.0 >= half && text_end.0 < text_end.1, "{}: image {text_end:x?}", fx.name);
    let image =
        all.into_iter().filter(|s| "TtDdRrBb".contains(s.kind) && (text_end.0..text_end.1).contains(&s.addr)).collect();
    Kallsyms { image, text_end, init }
}

/// True for the RISC-V fixtures.
fn is_riscv(fx: &Fixture) -> bool {
    fx.meta("kernel_release").ends_with("-riscv64")
}

/// The dump, its paging mode and root registers: for x86-64 from CPU 0's CR4.LA57 and CR3;
/// for ARM64 (the `virt` machine) no TTBR0 and the kernel's TTBR1 found by scanning; for
/// RISC-V the mode and `satp` of the kernel's table found by scanning.
fn open_dump(fx: &Fixture) -> (FileConnector, ArchitectureIdent, Vec<Address>) {
    let mut conn = fx.open();
    if is_riscv(fx) {
        let tables = riscv64::find_kernel_tables(&mut conn).unwrap();
        return (conn, tables.arch, tables.roots().to_vec());
    }
    if fx.meta("machine") == "virt" {
        let tables = aarch64::find_kernel_tables(&mut conn).unwrap();
        return (conn, tables.arch, tables.roots().to_vec());
    }
    let regs = conn.x86_registers(0).unwrap();
    let ident = if regs.cr4 & CR4_LA57 != 0 { ArchitectureIdent::X86_64La57 } else { ArchitectureIdent::X86_64 };
    let root = regs.page_table_root().unwrap();
    (conn, ident, vec![root])
}

/// A plain AArch64 stage 1 walk of the TTBR1 address `va` from the top table at `ttbr1`, for
/// the 4 KiB granule with 48-bit or the 16 KiB granule with 47-bit virtual addresses, and
/// both with 52-bit ones (FEAT_LPA2, `TCR.DS` set): each level indexes `granule_log2 - 3`
/// bits, from the top of `va_bits` down to the page offset; an entry is invalid (bit 0
/// clear), a block (bit 1 clear; only where the granule allows blocks: 1 GiB and 2 MiB for
/// 4 KiB, 32 MiB for 16 KiB, with FEAT_LPA2 also 512 GiB and 64 GiB), a table or, at the
/// last level, a page (bit 1 set). Output addresses are bits `granule_log2..48`; with
/// FEAT_LPA2 bits `granule_log2..50` and bits 50 and 51 from descriptor bits 8 and 9.
fn aarch64_walk(mem: &mut FileConnector, granule_log2: u32, va_bits: u32, ttbr1: Address, va: u64) -> Option<u64> {
    let lpa2 = va_bits > 48;
    let output = |entry: u64| {
        let address = match lpa2 {
            false => entry & 0x0000_ffff_ffff_ffff,
            true => (entry & 0x0003_ffff_ffff_ffff) | ((entry >> 8) & 0b11) << 50,
        };
        address & !((1u64 << granule_log2) - 1)
    };
    let max_block_shift = match (granule_log2, lpa2) {
        (12, false) => 30,
        (12, true) => 39,
        (_, false) => 25,
        (_, true) => 36,
    };
    assert_eq!(va >> va_bits, u64::MAX >> va_bits, "{va:#x} is not a TTBR1 address");
    // The scan gives the table's address, aligned to the granule.
    let mut table = ttbr1.to_umem() as u64;
    let bits = granule_log2 - 3;
    let mut shift = granule_log2 + (va_bits - granule_log2 - 1) / bits * bits;
    loop {
        let index = (va >> shift) & ((1 << (va_bits - shift).min(bits)) - 1);
        let mut raw = [0u8; 8];
        mem.phys_view().read_raw_into(Address::new((table + index * 8) as umem), &mut raw).ok()?;
        let entry = u64::from_le_bytes(raw);
        let size = 1u64 << shift;
        let last = shift == granule_log2;
        match entry & 0b11 {
            0b00 | 0b10 => return None,
            0b01 if last || shift > max_block_shift => return None,
            0b01 => return Some((output(entry) & !(size - 1)) | (va & (size - 1))),
            _ if last => return Some(output(entry) | (va & (size - 1))),
            _ => table = output(entry),
        }
        shift -= bits;
    }
}

/// A plain RISC-V Sv39/Sv48/Sv57 walk (`levels` levels of 9 bits above 4 KiB pages) of `va`
/// from the table whose page number `satp` holds: an entry is invalid (V clear, or W without
/// R), a leaf (R or X set; a superpage's page number must be aligned to its size) or, above
/// the last level, points to the next table. Page numbers are bits 10..54 of an entry.
fn riscv_walk(mem: &mut FileConnector, levels: u32, satp: Address, va: u64) -> Option<u64> {
    let va_bits = 12 + 9 * levels;
    assert_eq!((va as i64) >> (va_bits - 1), -1, "{va:#x} is not a kernel address");
    let mut table = (satp.to_umem() as u64 & ((1 << 44) - 1)) << 12;
    for level in (0..levels).rev() {
        let shift = 12 + 9 * level;
        let mut raw = [0u8; 8];
        let at = table + ((va >> shift) & 511) * 8;
        mem.phys_view().read_raw_into(Address::new(at as umem), &mut raw).ok()?;
        let entry = u64::from_le_bytes(raw);
        let (valid, read, write, exec) = (entry & 1, entry >> 1 & 1, entry >> 2 & 1, entry >> 3 & 1);
        let ppn = (entry >> 10) & ((1 << 44) - 1);
        if valid == 0 || (write == 1 && read == 0) {
            return None;
        }
        if read == 1 || exec == 1 {
            let size = 1u64 << shift;
            let base = ppn << 12;
            return (base & (size - 1) == 0).then_some(base | (va & (size - 1)));
        }
        table = ppn << 12;
    }
    None
}

/// The engine's outcome for every address of `vas`, translated `BATCH` at a time.
fn engine_translate(view: &mut VirtualDma<FileConnector>, vas: &[Address]) -> Vec<Result<PhysicalAddress, Error>> {
    let mut out = Vec::with_capacity(vas.len());
    for chunk in vas.chunks(BATCH) {
        let (mut ok, mut failed) = (vec![], vec![]);
        view.virt_to_phys_list(
            CIterator::from(&mut chunk.iter().copied()),
            (&mut |t: VirtualTranslation| {
                ok.push((t.va, Ok(t.pa)));
                true
            })
                .into(),
            (&mut |f: TranslationFailure| {
                failed.push((f.va, Err(f.error)));
                true
            })
                .into(),
        )
        .unwrap();
        assert_eq!(ok.len() + failed.len(), chunk.len(), "every address is reported exactly once");
        let got: HashMap<Address, Result<PhysicalAddress, Error>> = ok.into_iter().chain(failed).collect();
        out.extend(chunk.iter().map(|va| got[va]));
    }
    out
}

fn symbols_translate(name: &'static str, want: ArchitectureIdent) {
    let fx = Fixture::load(name);
    let (conn, ident, roots) = open_dump(&fx);
    assert_eq!(ident, want, "{name}: paging mode");
    let arch = ident.describe().unwrap();
    let syms = kallsyms(&fx, kernel_half(&arch).to_umem() as u64);
    let mut view = VirtualDma::new(conn.clone(), ident, &roots).unwrap();
    let mut phys = conn;

    let vas: Vec<Address> = syms.image.iter().map(|s| Address::new(s.addr as umem)).collect();
    assert!(vas.len() > 50_000, "{name}: only {} kernel-image symbols", vas.len());
    let start = std::time::Instant::now();
    let engine = engine_translate(&mut view, &vas);
    let engine_time = start.elapsed();

    // The image is mapped linearly: every symbol at `_text`'s physical offset. Without KASLR
    // `_text` (0xffffffff81000000) is at physical 16 MiB; with it both addresses are random.
    let text = syms.image.iter().position(|s| s.name == "_text").expect("_text is a kernel-image symbol");
    let text_pa = engine[text].unwrap().address.to_umem() as u64;
    let offset = syms.image[text].addr.wrapping_sub(text_pa);
    let x86 = matches!(ident, ArchitectureIdent::X86_64 | ArchitectureIdent::X86_64La57);
    if x86 && fx.meta("kernel_cmdline").split_whitespace().any(|arg| arg == "nokaslr") {
        assert_eq!(offset, 0xffff_ffff_8000_0000, "{name}: _text at {text_pa:#x}");
    }
    // x86-64 and RISC-V keep the init sections mapped in their image after boot (RISC-V
    // frees the pages through the linear map only); ARM64 unmaps them when it frees them
    // (`free_initmem`), so there they must not translate.
    let init_mapped = !matches!(ident, ArchitectureIdent::AArch64 { .. });
    let mut init = 0usize;
    let mut by_kind: HashMap<char, usize> = HashMap::new();
    for (sym, got) in syms.image.iter().zip(&engine) {
        let va = Address::new(sym.addr as umem);
        let oracle = reference::translate(&mut phys, &arch, &roots, va);
        assert_eq!(*got, oracle, "{name}: {} {} {:#x}: engine vs reference walker", sym.kind, sym.name, sym.addr);
        let single = view.virt_to_phys(va);
        assert_eq!(
            single, oracle,
            "{name}: {} {} {:#x}: single translation vs reference",
            sym.kind, sym.name, sym.addr
        );
        let plain = match ident {
            ArchitectureIdent::AArch64 { granule_log2, va_bits } => {
                Some(aarch64_walk(&mut phys, granule_log2.into(), va_bits.into(), roots[1], sym.addr))
            }
            ArchitectureIdent::RiscVSv39 | ArchitectureIdent::RiscVSv48 | ArchitectureIdent::RiscVSv57 => {
                Some(riscv_walk(&mut phys, arch.levels().len() as u32, roots[0], sym.addr))
            }
            _ => None,
        };
        let in_init = (syms.init.0..syms.init.1).contains(&sym.addr);
        init += in_init as usize;
        if in_init && !init_mapped {
            assert!(
                got.is_err(),
                "{name}: {} {} {:#x} in the freed init sections translates",
                sym.kind,
                sym.name,
                sym.addr
            );
            assert_eq!(plain, Some(None), "{name}: {}: the plain walk finds it mapped", sym.name);
            continue;
        }
        let pa = got
            .unwrap_or_else(|e| panic!("{name}: {} {} {:#x} does not translate: {e:?}", sym.kind, sym.name, sym.addr));
        if let Some(plain) = plain {
            assert_eq!(Some(pa.address.to_umem() as u64), plain, "{name}: {} engine vs plain walk", sym.name);
        }
        assert_eq!(pa.address.to_umem() as u64, sym.addr.wrapping_sub(offset), "{name}: {}", sym.name);
        *by_kind.entry(sym.kind).or_default() += 1;
    }
    println!(
        "{name}: {} kernel-image symbols ({:#x}..{:#x}) checked, {init} of them in the init sections \
         (mapped: {init_mapped}); translated by type {by_kind:?}; engine {engine_time:?}",
        vas.len(),
        syms.text_end.0,
        syms.text_end.1
    );
    if !x86 {
        // The scan found the kernel's own top table (TTBR1; satp's).
        let swapper = syms.image.iter().position(|s| s.name == "swapper_pg_dir").expect("swapper_pg_dir");
        let root = arch.root_table(*roots.last().unwrap());
        assert_eq!(engine[swapper].unwrap().address, root, "{name}: the table found by scanning is swapper_pg_dir");
    }
    if is_riscv(&fx) {
        // The mode QEMU's monitor showed in satp.
        let satp = u64::from_str_radix(fx.meta("cpu0_satp").trim_start_matches("0x"), 16).unwrap();
        let regs = RiscVRegisters { satp, satp_valid: true, ..Default::default() };
        let (mode, _) = regs.paging().unwrap_or_else(|| panic!("{name}: satp {satp:#x} names no paging mode"));
        assert_eq!(ident, mode, "{name}: the mode found by scanning vs satp {satp:#x}");
    }
    for must in ["_text", "_stext", "linux_banner", "init_task", "_sdata", "__bss_start", "jiffies_64", "start_kernel"]
    {
        assert!(syms.image.iter().any(|s| s.name == must), "{name}: {must} not among the checked symbols");
    }
}

fn banner_reads(name: &'static str) {
    let fx = Fixture::load(name);
    let (conn, ident, roots) = open_dump(&fx);
    let syms = kallsyms(&fx, kernel_half(&ident.describe().unwrap()).to_umem() as u64);
    let version = fx.section("version").trim_end_matches('\n');
    assert!(version.starts_with("Linux version "), "{name}: {version}");
    let banner = syms.image.iter().find(|s| s.name == "linux_banner").expect("linux_banner in kallsyms");
    let mut view = VirtualDma::new(conn, ident, &roots).unwrap();
    let mut buf = vec![0u8; version.len() + 2];
    view.read_raw_into(Address::new(banner.addr as umem), &mut buf).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&buf[..version.len()]),
        version,
        "{name}: linux_banner at {:#x} vs /proc/version",
        banner.addr
    );
    assert_eq!(&buf[version.len()..], b"\n\0", "{name}: linux_banner ends with a newline and NUL");
}

/// Pages in ascending order merged like `virt_page_map_range` with gap 0: adjacent pages with
/// equal flags.
fn merge_page_map(pages: &[reference_page::P]) -> Vec<MemoryRange> {
    let mut out: Vec<MemoryRange> = vec![];
    for p in pages {
        if let Some(r) = out.last_mut() {
            if r.page_type == p.page_type && r.base + r.size == p.va {
                r.size += p.size;
                continue;
            }
        }
        out.push(MemoryRange { base: p.va, size: p.size, page_type: p.page_type });
    }
    out
}

/// Pages merged like `virt_translation_map_range`: contiguous in both spaces, equal flags.
fn merge_translation_map(pages: &[reference_page::P]) -> Vec<TranslationRange> {
    let mut out: Vec<TranslationRange> = vec![];
    for p in pages {
        if let Some(r) = out.last_mut() {
            if r.page_type == p.page_type && r.va + r.size == p.va && r.pa + r.size == p.pa {
                r.size += p.size;
                continue;
            }
        }
        out.push(TranslationRange { va: p.va, pa: p.pa, size: p.size, page_type: p.page_type });
    }
    out
}

mod reference_page {
    use memflow_core::types::{umem, Address, PageType};
    /// A page as the reference walker reports it.
    pub struct P {
        pub va: Address,
        pub pa: Address,
        pub size: umem,
        pub page_type: PageType,
    }
}

/// The first address of the upper canonical half.
fn kernel_half(arch: &Architecture) -> Address {
    arch.segments().last().unwrap().first
}

fn kernel_page_map(name: &'static str, want: ArchitectureIdent) {
    let fx = Fixture::load(name);
    let (conn, ident, roots) = open_dump(&fx);
    assert_eq!(ident, want);
    let arch = ident.describe().unwrap();
    let half = kernel_half(&arch);
    let want_half: u64 = match want {
        ArchitectureIdent::X86_64 => 0xffff_8000_0000_0000,
        ArchitectureIdent::X86_64La57 => 0xff00_0000_0000_0000,
        ArchitectureIdent::AArch64 { va_bits, .. } => u64::MAX << va_bits, // all of TTBR1's range
        ArchitectureIdent::RiscVSv39 => 0xffff_ffc0_0000_0000,
        ArchitectureIdent::RiscVSv48 => 0xffff_8000_0000_0000,
        ArchitectureIdent::RiscVSv57 => 0xff00_0000_0000_0000,
        _ => unreachable!("no fixture of {want:?}"),
    };
    assert_eq!(half.to_umem() as u64, want_half);

    let mut phys = conn.clone();
    let start = std::time::Instant::now();
    let mut pages = vec![];
    reference::for_each_page(&mut phys, &arch, &roots, |p| {
        if p.va >= half {
            pages.push(reference_page::P { va: p.va, pa: p.pa, size: p.size(), page_type: p.page_type });
        }
    });
    let reference_time = start.elapsed();
    assert!(pages.windows(2).all(|w| w[0].va + w[0].size <= w[1].va), "{name}: reference pages in order");
    let bytes: umem = pages.iter().map(|p| p.size).sum();
    let want_map = merge_page_map(&pages);
    let want_tmap = merge_translation_map(&pages);

    let mut view = VirtualDma::new(conn, ident, &roots).unwrap();
    let start = std::time::Instant::now();
    let got = view.virt_page_map_range_vec(0, half, Address::INVALID).unwrap();
    let engine_time = start.elapsed();
    let mut got_tmap = vec![];
    view.virt_translation_map_range(half, Address::INVALID, (&mut got_tmap).into()).unwrap();
    println!(
        "{name}: kernel half from {half}: {} pages, {} MiB, {} ranges, {} translation ranges; reference \
         {reference_time:?}, engine {engine_time:?}",
        pages.len(),
        bytes >> 20,
        want_map.len(),
        want_tmap.len()
    );
    assert!(pages.len() > 1000, "{name}: the kernel half maps only {} pages", pages.len());
    assert_eq!(got.len(), want_map.len(), "{name}: number of page map ranges");
    for (g, w) in got.iter().zip(&want_map) {
        assert_eq!(g, w, "{name}: page map");
    }
    assert_eq!(got_tmap.len(), want_tmap.len(), "{name}: number of translation ranges");
    for (g, w) in got_tmap.iter().zip(&want_tmap) {
        assert_eq!(g, w, "{name}: translation map");
    }
    // The direct map covers the guest's RAM: its first page is mapped.
    let ram = Address::new(fx.system_ram()[0].0 as umem);
    let direct = got_tmap.iter().find(|r| r.pa <= ram && ram - r.pa < r.size).expect("a range maps the first RAM page");
    println!("{name}: physical {ram} (first RAM page) mapped at {}", direct.va + (ram - direct.pa));
}

macro_rules! fixture_tests {
    ($($module:ident: $name:literal, $arch:expr);* $(;)?) => {$(
        mod $module {
            use memflow_core::arch::ArchitectureIdent;

            #[test]
            fn kernel_symbols_translate() {
                super::symbols_translate($name, $arch);
            }

            #[test]
            fn linux_banner_reads() {
                super::banner_reads($name);
            }

            #[test]
            fn kernel_page_map_matches_reference() {
                super::kernel_page_map($name, $arch);
            }
        }
    )*};
}

fixture_tests! {
    cloud_4l: "cloud-4l", ArchitectureIdent::X86_64;
    cloud_5l: "cloud-5l", ArchitectureIdent::X86_64La57;
    trixie_4l_kaslr: "trixie-4l-kaslr", ArchitectureIdent::X86_64;
    trixie_5l: "trixie-5l", ArchitectureIdent::X86_64La57;
    arm64_4k: "arm64-4k", ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 };
    arm64_16k: "arm64-16k", ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 47 };
    riscv64_sv39: "riscv64-sv39", ArchitectureIdent::RiscVSv39;
    riscv64_sv48: "riscv64-sv48", ArchitectureIdent::RiscVSv48;
    riscv64_sv57: "riscv64-sv57", ArchitectureIdent::RiscVSv57;
    arm64_max: "arm64-max", ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 52 };
}
