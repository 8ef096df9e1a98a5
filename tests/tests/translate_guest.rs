//! The translation engine on page tables written by a real kernel (issue 3, "Proof").
//!
//! Fixtures `cloud-4l` (`-cpu qemu64`, 4-level paging) and `cloud-5l` (`-cpu max`, LA57) are
//! the same Debian 6.1 cloud kernel booted with `nokaslr`, `trixie-4l-kaslr` and `trixie-5l`
//! the same with Debian's 6.12 cloud kernel (the first with KASLR); see `xtask::fixture`. For
//! each dump, with CR3 from the dump's CPU state and the paging mode from CR4.LA57:
//!
//! - every kernel-image text/data symbol of the guest's `/proc/kallsyms` is translated in
//!   batches by the engine (`virt_to_phys_list`) and compared with the single-address reference
//!   walker (`translate::reference`); all must translate (the init sections included: this
//!   kernel keeps them mapped in its image after boot), to `_text`'s linear physical offset;
//! - `linux_banner` read through `VirtualDma` equals the line the guest printed from
//!   `/proc/version`;
//! - the page map of the kernel half (`virt_page_map_range`) and its translation map equal what
//!   the reference walker's whole-space enumeration finds there.
//!
//! Every symbol is checked (no sampling): a debug build runs each fixture in well under a second.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use memflow_core::arch::{Architecture, ArchitectureIdent};
use memflow_core::cglue::iter::CIterator;
use memflow_core::connector::cpu_state::CR4_LA57;
use memflow_core::connector::{CpuState, FileConnector};
use memflow_core::error::Error;
use memflow_core::mem::MemoryView;
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

fn kallsyms(fx: &Fixture) -> Kallsyms {
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
    assert!(text_end.0 >= 0xffff_ffff_8000_0000 && text_end.0 < text_end.1, "{}: image {text_end:x?}", fx.name);
    let image =
        all.into_iter().filter(|s| "TtDdRrBb".contains(s.kind) && (text_end.0..text_end.1).contains(&s.addr)).collect();
    Kallsyms { image, text_end, init }
}

/// The dump, the paging mode from CPU 0's CR4.LA57 and its CR3.
fn open_dump(fx: &Fixture) -> (FileConnector, ArchitectureIdent, Address) {
    let conn = fx.open();
    let regs = conn.x86_registers(0).unwrap();
    let ident = if regs.cr4 & CR4_LA57 != 0 { ArchitectureIdent::X86_64La57 } else { ArchitectureIdent::X86_64 };
    let root = regs.page_table_root().unwrap();
    (conn, ident, root)
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
    let syms = kallsyms(&fx);
    let (conn, ident, root) = open_dump(&fx);
    assert_eq!(ident, want, "{name}: paging mode from CR4.LA57");
    let arch = ident.describe().unwrap();
    let mut view = VirtualDma::new(conn.clone(), ident, &[root]).unwrap();
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
    if fx.meta("kernel_cmdline").split_whitespace().any(|arg| arg == "nokaslr") {
        assert_eq!(offset, 0xffff_ffff_8000_0000, "{name}: _text at {text_pa:#x}");
    }
    let mut init = 0usize;
    let mut by_kind: HashMap<char, usize> = HashMap::new();
    for (sym, got) in syms.image.iter().zip(&engine) {
        let va = Address::new(sym.addr as umem);
        let oracle = reference::translate(&mut phys, &arch, &[root], va);
        assert_eq!(*got, oracle, "{name}: {} {} {:#x}: engine vs reference walker", sym.kind, sym.name, sym.addr);
        let pa = got
            .unwrap_or_else(|e| panic!("{name}: {} {} {:#x} does not translate: {e:?}", sym.kind, sym.name, sym.addr));
        assert_eq!(pa.address.to_umem() as u64, sym.addr.wrapping_sub(offset), "{name}: {}", sym.name);
        *by_kind.entry(sym.kind).or_default() += 1;
        init += (syms.init.0..syms.init.1).contains(&sym.addr) as usize;
    }
    println!(
        "{name}: {} kernel-image symbols ({:#x}..{:#x}) translated, {init} of them in the init sections; \
         by type {by_kind:?}; engine {engine_time:?}",
        vas.len(),
        syms.text_end.0,
        syms.text_end.1
    );
    for must in ["_text", "_stext", "linux_banner", "init_task", "_sdata", "__bss_start", "jiffies_64", "start_kernel"]
    {
        assert!(syms.image.iter().any(|s| s.name == must), "{name}: {must} not among the checked symbols");
    }
}

fn banner_reads(name: &'static str) {
    let fx = Fixture::load(name);
    let syms = kallsyms(&fx);
    let (conn, ident, root) = open_dump(&fx);
    let version = fx.section("version").trim_end_matches('\n');
    assert!(version.starts_with("Linux version "), "{name}: {version}");
    let banner = syms.image.iter().find(|s| s.name == "linux_banner").expect("linux_banner in kallsyms");
    let mut view = VirtualDma::new(conn, ident, &[root]).unwrap();
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
    let (conn, ident, root) = open_dump(&fx);
    assert_eq!(ident, want);
    let arch = ident.describe().unwrap();
    let half = kernel_half(&arch);
    assert_eq!(
        half.to_umem() as u64,
        if want == ArchitectureIdent::X86_64 { 0xffff_8000_0000_0000 } else { 0xff00_0000_0000_0000 }
    );

    let mut phys = conn.clone();
    let start = std::time::Instant::now();
    let mut pages = vec![];
    reference::for_each_page(&mut phys, &arch, &[root], |p| {
        if p.va >= half {
            pages.push(reference_page::P { va: p.va, pa: p.pa, size: p.size(), page_type: p.page_type });
        }
    });
    let reference_time = start.elapsed();
    assert!(pages.windows(2).all(|w| w[0].va + w[0].size <= w[1].va), "{name}: reference pages in order");
    let bytes: umem = pages.iter().map(|p| p.size).sum();
    let want_map = merge_page_map(&pages);
    let want_tmap = merge_translation_map(&pages);

    let mut view = VirtualDma::new(conn, ident, &[root]).unwrap();
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
    // The direct map covers the guest's RAM: its first page translates to physical 0.
    let direct = got_tmap.iter().find(|r| r.pa.is_null()).expect("a range maps physical 0");
    println!("{name}: physical 0 mapped at {}", direct.va);
}

macro_rules! fixture_tests {
    ($($module:ident: $name:literal, $arch:ident);* $(;)?) => {$(
        mod $module {
            use memflow_core::arch::ArchitectureIdent;

            #[test]
            fn kernel_symbols_translate() {
                super::symbols_translate($name, ArchitectureIdent::$arch);
            }

            #[test]
            fn linux_banner_reads() {
                super::banner_reads($name);
            }

            #[test]
            fn kernel_page_map_matches_reference() {
                super::kernel_page_map($name, ArchitectureIdent::$arch);
            }
        }
    )*};
}

fixture_tests! {
    cloud_4l: "cloud-4l", X86_64;
    cloud_5l: "cloud-5l", X86_64La57;
    trixie_4l_kaslr: "trixie-4l-kaslr", X86_64;
    trixie_5l: "trixie-5l", X86_64La57;
}
