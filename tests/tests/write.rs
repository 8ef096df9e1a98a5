//! The dump writers (`memflow_core::connector::write`) on a real guest: the cloud-4l QEMU dump
//! written to every format, opened again through the `coredump` plugin and the `linux` layer,
//! and checked page by page against the source; holes from a source that fails some pages;
//! cancellation; the written ELF core read by binutils' `readelf` and converted and filtered
//! by makedumpfile.

#![allow(clippy::unnecessary_cast)] // casts between `umem` and `u64` are needed when `umem` is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;

use memflow_core::arch::ArchitectureIdent;
use memflow_core::connector::{
    open, write_dump, DumpFormat, DumpMeta, FileConnector, OpenOptions, WriteFormat, WriteSummary,
};
use memflow_core::error::{ErrorKind, PartialResultExt};
use memflow_core::mem::{MemoryMap, MemoryView, PhysicalMemory};
use memflow_core::os::{Os, Process};
use memflow_core::plugins::Inventory;
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::{umem, Address, PhysicalAddress};
use memflow_tests::{temp_dir, Altered, Fixture};

const CHUNK: usize = 1 << 20;

fn phys(addr: u64) -> PhysicalAddress {
    PhysicalAddress::plain(Address::new(addr as umem))
}

/// `(pid, name)` of every process the linux layer finds over `path`.
fn processes(path: &Path) -> Vec<(u32, String)> {
    let chain = format!("coredump:{} -> linux", path.display());
    let mut os = Inventory::builtin().create_os_chain(&chain).unwrap();
    let mut list: Vec<_> = os.process_info_list().unwrap().iter().map(|p| (p.pid, p.name.to_string())).collect();
    list.sort();
    list
}

/// Reads `map` from both connectors in chunks: every byte equal, and present in `copy`
/// wherever it is in `source`, except inside `holes` (absent in `copy`, unless `raw`).
fn same_memory(
    source: &mut impl PhysicalMemory,
    copy: &mut FileConnector,
    map: &MemoryMap,
    holes: &[(u64, u64)],
    raw: bool,
) {
    let (mut a, mut b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    for range in map.ranges() {
        let (start, end) = (range.base.to_umem() as u64, range.end().to_umem() as u64);
        let mut addr = start;
        while addr < end {
            let len = (end - addr).min(CHUNK as u64) as usize;
            let in_hole = holes.iter().any(|&(h, l)| h < addr + len as u64 && h + l > addr);
            let src_partial = source.phys_read_raw_into(phys(addr), &mut a[..len]).is_partial();
            let copy_partial = copy.phys_read_raw_into(phys(addr), &mut b[..len]).is_partial();
            assert!(!src_partial, "the source reads whole at {addr:#x}");
            if in_hole {
                for &(h, l) in holes.iter().filter(|&&(h, l)| h < addr + len as u64 && h + l > addr) {
                    let (from, to) = ((h.max(addr) - addr) as usize, ((h + l).min(addr + len as u64) - addr) as usize);
                    assert!(b[from..to].iter().all(|&x| x == 0), "hole at {h:#x} reads as zeros");
                    a[from..to].fill(0);
                }
                assert_eq!(copy_partial, !raw, "a hole in {addr:#x}+{len:#x} is absent");
            } else {
                assert!(!copy_partial, "the copy reads whole at {addr:#x}");
            }
            assert!(a[..len] == b[..len], "bytes differ in {addr:#x}+{len:#x}");
            addr += len as u64;
        }
    }
}

fn write(source: &mut impl PhysicalMemory, meta: &DumpMeta, path: &Path, format: WriteFormat) -> WriteSummary {
    let mut last = None;
    let summary = write_dump(source, meta, path, format, &mut |p| {
        assert!(last.is_none_or(|l: u64| l < p.done) && p.done <= p.total, "progress moves forward");
        last = Some(p.done);
        ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| panic!("writing {format:?}: {e}"));
    let map_size = source.metadata().real_size as u64;
    assert_eq!(last, Some(map_size), "{format:?}: the last progress call is the whole map");
    summary
}

#[test]
fn cloud_4l_round_trips_through_every_format() {
    let fx = Fixture::load("cloud-4l");
    let mut source = fx.open_elf();
    let meta = DumpMeta::from_info(source.info(), ArchitectureIdent::X86_64);
    assert!(!meta.cpus.is_empty());
    let map = source.memory_map().clone();
    let want_processes = processes(&fx.dump);
    assert!(want_processes.iter().any(|(_, n)| n == "mfprobe_marker"));
    let dir = temp_dir("write-formats");
    for format in WriteFormat::ALL {
        let path = dir.join(format.name());
        let summary = write(&mut source, &meta, &path, format);
        assert_eq!((summary.hole_pages, summary.bytes_written), (0, map.real_size() as u64), "{format:?}");
        let mut copy = open(&path, OpenOptions::default()).unwrap();
        same_memory(&mut source, &mut copy, &map, &[], format == WriteFormat::Raw);
        assert_eq!(processes(&path), want_processes, "{format:?}");
        if matches!(format, WriteFormat::Elf | WriteFormat::Kdump(_)) {
            assert_eq!(copy.info().cpus, source.info().cpus, "{format:?}: CPU state kept");
        }
        if format == WriteFormat::Elf {
            readelf_agrees(&path, &map);
        }
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// binutils reads the core: its `LOAD` program headers are the map.
/// The ARM64 and RISC-V guests' dumps written as ELF cores and zstd kdumps: the AArch64 or
/// riscv64 CPU notes (the general registers QEMU recorded) read back as they were, the
/// architecture taken from the CPU state, and the linux layer lists the same processes.
#[test]
fn arm64_and_riscv_cpu_notes_round_trip() {
    let dir = temp_dir("write-arm64-riscv");
    for name in ["arm64-4k", "arm64-max", "riscv64-sv39", "riscv64-sv57"] {
        let fx = Fixture::load(name);
        let mut source = fx.open_elf();
        let meta = DumpMeta::of_cpus(&source);
        let riscv = name.starts_with("riscv");
        if riscv {
            assert_eq!(meta.arch, ArchitectureIdent::RiscVSv39, "{name}");
            assert!(!meta.riscv_cpus.is_empty() && meta.aarch64_cpus.is_empty(), "{name}: {meta:?}");
        } else {
            assert!(matches!(meta.arch, ArchitectureIdent::AArch64 { .. }), "{name}: {:?}", meta.arch);
            assert!(!meta.aarch64_cpus.is_empty() && meta.riscv_cpus.is_empty(), "{name}: {meta:?}");
        }
        assert!(meta.cpus.is_empty(), "{name}: {meta:?}");
        assert_eq!(meta.aarch64_cpus, source.info().aarch64_cpus, "{name}");
        assert_eq!(meta.riscv_cpus, source.info().riscv_cpus, "{name}");
        let want_processes = processes(&fx.dump);
        for format in [WriteFormat::Elf, WriteFormat::Kdump(memflow_core::connector::KdumpCodec::Zstd)] {
            let path = dir.join(format!("{name}.{}", format.name()));
            write(&mut source, &meta, &path, format);
            let copy = open(&path, OpenOptions::default()).unwrap();
            assert_eq!(copy.info().aarch64_cpus, source.info().aarch64_cpus, "{name} {format:?}: CPU state kept");
            assert_eq!(copy.info().riscv_cpus, source.info().riscv_cpus, "{name} {format:?}: CPU state kept");
            assert_eq!(processes(&path), want_processes, "{name} {format:?}");
            std::fs::remove_file(&path).unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn readelf_agrees(path: &Path, map: &MemoryMap) {
    let out = Command::new("readelf").arg("-lnW").arg(path).output().expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let loads: Vec<(u64, u64)> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("LOAD"))
        .map(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            (hex(f[3]), hex(f[4]))
        })
        .collect();
    let want: Vec<_> = map.ranges().iter().map(|r| (r.base.to_umem() as u64, r.size as u64)).collect();
    assert_eq!(loads, want, "{text}");
    assert!(text.contains("NT_PRSTATUS") && text.contains("QEMU"), "{text}");
}

#[test]
fn unreadable_pages_are_reported_and_left_out() {
    let fx = Fixture::load("cloud-4l");
    let inner = fx.open_elf();
    let meta = DumpMeta::from_info(inner.info(), ArchitectureIdent::X86_64);
    let map = inner.memory_map().clone();
    // One page, three pages across a chunk boundary, and the last page of the last range.
    let last = map.ranges().last().unwrap().end().to_umem() as u64 - 0x1000;
    let bad = vec![(0x9000, 0x1000), (0x7ff000, 0x3000), (last, 0x1000)];
    // Some pages failing, as a guest's unreadable MMIO would.
    let mut source = Altered { inner, patches: Vec::new(), failing: bad.clone(), bytes_read: Default::default() };
    let dir = temp_dir("write-holes");
    for format in WriteFormat::ALL {
        let path = dir.join(format.name());
        let summary = write(&mut source, &meta, &path, format);
        assert_eq!(summary.holes, bad, "{format:?}");
        assert_eq!((summary.hole_pages, summary.hole_runs), (5, 3), "{format:?}");
        assert_eq!(summary.bytes_written, map.real_size() as u64 - 5 * 0x1000, "{format:?}");
        let mut copy = open(&path, OpenOptions::default()).unwrap();
        same_memory(&mut source.inner, &mut copy, &map, &bad, format == WriteFormat::Raw);
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cancelling_midway_leaves_no_file() {
    let fx = Fixture::load("cloud-4l");
    let mut source = fx.open_elf();
    let meta = DumpMeta::from_info(source.info(), ArchitectureIdent::X86_64);
    let dir = temp_dir("write-cancel");
    for format in [WriteFormat::Elf, WriteFormat::Kdump(memflow_core::connector::KdumpCodec::Zstd)] {
        let path = dir.join(format.name());
        let mut calls = 0;
        let err = write_dump(&mut source, &meta, &path, format, &mut |p| {
            calls += 1;
            if p.done >= p.total / 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Cancelled);
        assert!(calls > 1, "stopped midway, not before the first chunk");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{format:?}: neither the dump nor its temporary file");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `memflow` binary `cargo build --workspace` built, without the machine's plugins.
fn memflow() -> Command {
    let path = memflow_tests::build_dir().join("memflow");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    let mut command = Command::new(path);
    command.env("HOME", "/nonexistent").env("MEMFLOW_PLUGIN_PATH", "").env("NO_COLOR", "1");
    command
}

/// `memflow ARGS --json`, which must succeed, parsed.
fn memflow_json(args: &[&str]) -> serde_json::Value {
    let out = memflow().args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "memflow {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn cli_dump_round_trips() {
    let fx = Fixture::load("cloud-4l");
    let source_chain = format!("coredump:{}", fx.dump.display());
    let want_ps = memflow_json(&["-c", &format!("{source_chain} -> linux"), "ps"]);
    let mut source = fx.open_elf();
    let map = source.memory_map().clone();
    let dir = temp_dir("write-cli");
    let vmcoreinfo = dir.join("vmcoreinfo");
    std::fs::write(&vmcoreinfo, "OSRELEASE=6.1.0-test\nPAGESIZE=4096\n").unwrap();
    let release = fx.section("version").split_whitespace().nth(2).unwrap().to_owned();
    // From a connector chain and from the OS layer's physical memory, with the VMCOREINFO
    // given or, through the linux layer, the kernel's own.
    let os_chain = format!("{source_chain} -> linux");
    let runs = [
        (&source_chain, "elf", Some("6.1.0-test")),
        (&os_chain, "kdump-snappy", Some("6.1.0-test")),
        (&os_chain, "kdump-zstd", None),
    ];
    for (chain, format, given) in runs {
        let path = dir.join(format);
        let path_text = path.to_str().unwrap();
        let mut args = vec!["-c", chain, "dump", path_text, "--format", format];
        if given.is_some() {
            args.extend(["--vmcoreinfo", vmcoreinfo.to_str().unwrap()]);
        }
        let report = memflow_json(&args);
        assert_eq!(report["format"], format);
        assert_eq!(report["bytes_written"], map.real_size() as u64);
        assert_eq!(report["hole_pages"], 0);
        assert_eq!(report["file_size"], std::fs::metadata(&path).unwrap().len());
        let mut copy = open(&path, OpenOptions::default()).unwrap();
        same_memory(&mut source, &mut copy, &map, &[], false);
        assert_eq!(copy.info().cpus, source.info().cpus, "{format}: CPU state kept");
        let recorded = copy.info().vmcoreinfo.as_ref().expect("a VMCOREINFO is recorded");
        assert_eq!(recorded.os_release(), Some(given.unwrap_or(&release)), "{format}");
        assert_eq!(memflow_json(&["-c", &format!("coredump:{path_text} -> linux"), "ps"]), want_ps, "{format}");
        std::fs::remove_file(&path).unwrap();
    }
    let out = memflow().args(["-c", &source_chain, "dump", "x", "--format", "kdump-lzo"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown format is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("kdump-zstd"), "the error lists the formats");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C during `memflow dump` of the 5 GiB guest: the command stops and leaves no file (or,
/// had it finished first, a complete one), never a temporary or partial file.
#[test]
fn cli_dump_interrupted_leaves_a_complete_file_or_none() {
    let fx = Fixture::load("cloud-4l-5g");
    let dir = temp_dir("write-cli-interrupt");
    let path = dir.join("guest.kdump");
    let mut child = memflow()
        .args(["-c", &format!("coredump:{}", fx.dump.display()), "dump", path.to_str().unwrap()])
        .args(["--format", "kdump-zstd"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the temporary file exists the writer runs and its handler is installed.
    while std::fs::read_dir(&dir).unwrap().count() == 0 {
        assert!(child.try_wait().unwrap().is_none(), "memflow dump ended before writing");
        std::thread::yield_now();
    }
    // SAFETY: sends SIGINT to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    if out.status.success() {
        assert_eq!(files, [std::ffi::OsString::from("guest.kdump")]);
        open(&path, OpenOptions::default()).unwrap();
    } else {
        assert!(files.is_empty(), "{files:?} left after Ctrl-C");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cancelled"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `memflow dump --pid`: a guest process's mapped memory at its virtual addresses, page by page
/// what the library reads from the process (pages it cannot read are holes), with the marker
/// string the process holds.
#[test]
fn cli_dump_of_a_process_holds_its_mapped_memory() {
    use memflow_core::mem::MemoryView;
    use memflow_core::os::Process;
    let fx = Fixture::load("cloud-4l");
    let chain = format!("coredump:{} -> linux", fx.dump.display());
    let dir = temp_dir("write-cli-process");
    let path = dir.join("marker.elf");
    let report = memflow_json(&["-c", &chain, "dump", path.to_str().unwrap(), "--pid", "mfprobe_marker"]);
    let mut os = Inventory::builtin().create_os_chain(&chain).unwrap();
    let mut process = os.process_by_name("mfprobe_marker").unwrap();
    let ranges = process.mapped_mem(0).unwrap();
    let mut copy = open(&path, OpenOptions::default()).unwrap();
    let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 4096]);
    let (mut pages, mut holes, mut marker) = (0u64, 0u64, false);
    for r in &ranges {
        let start = r.base.to_umem() as u64;
        for page in (start..start + r.size as u64).step_by(4096) {
            let readable = process.read_raw_into(Address::new(page as umem), &mut a).is_ok();
            let partial = copy.phys_read_raw_into(phys(page), &mut b).is_partial();
            assert_eq!(partial, !readable, "page {page:#x}");
            if readable {
                assert!(a == b, "page {page:#x}");
                marker |= a.windows(fx.meta("marker").len()).any(|w| w == fx.meta("marker").as_bytes());
            }
            pages += 1;
            holes += u64::from(!readable);
        }
    }
    assert!(marker, "the marker string is in the dump");
    assert_eq!(report["hole_pages"], holes);
    assert_eq!(report["bytes_written"], (pages - holes) * 4096);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// makedumpfile (an independent reader of ELF cores) converts the written ELF core of the
/// guest into its own compressed kdump, unfiltered (`-d 0`: without a vmcoreinfo it cannot
/// filter pages by kind), and that kdump (whose header then names no machine) reads back with
/// the same memory and processes.
#[test]
fn makedumpfile_accepts_the_written_elf_core_and_its_kdump_reads_back() {
    let fx = Fixture::load("cloud-4l");
    let mut source = fx.open_elf();
    let meta = DumpMeta::from_info(source.info(), ArchitectureIdent::X86_64);
    let dir = temp_dir("write-makedumpfile");
    let (elf, kdump) = (dir.join("guest.elf"), dir.join("guest.kdump"));
    write(&mut source, &meta, &elf, WriteFormat::Elf);
    let out = Command::new("makedumpfile")
        .args(["-c", "-d", "0"])
        .arg(&elf)
        .arg(&kdump)
        .output()
        .expect("makedumpfile runs (cargo xtask deps installs it)");
    assert!(out.status.success(), "makedumpfile: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&kdump).unwrap();
    assert!(bytes.starts_with(b"KDUMP   "), "makedumpfile wrote a compressed kdump");
    drop(bytes);
    let mut copy = open(&kdump, OpenOptions::default()).unwrap();
    assert!(copy.info().description.contains("unnamed machine"), "{}", copy.info().description);
    let map = source.memory_map().clone();
    same_memory(&mut source, &mut copy, &map, &[], false);
    assert_eq!(processes(&kdump), processes(&fx.dir.join("dump.elf")));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `(address, name)` of every kernel symbol the linux layer finds over `path`.
fn kernel_symbols(path: &Path) -> Vec<(Address, String)> {
    let chain = format!("coredump:{} -> linux", path.display());
    let mut os = Inventory::builtin().create_os_chain(&chain).unwrap();
    os.kernel_symbol_list().unwrap().into_iter().map(|s| (s.address, s.name.to_string())).collect()
}

/// The guest dumped through the `linux` layer carries the kernel's own VMCOREINFO, read from
/// its memory, and with it makedumpfile filters by page kind (`-d 31`: zero, page-cache,
/// user and free pages left out; a kdump keeps zero pages as one shared zero page). Its
/// compressed kdump, its flattened kdump and its ELF output read back: processes and kernel
/// symbols equal the guest's, every page they hold equals the guest's, and the pages left
/// out (in the kdumps the marker process's among them) read as absent, not as zeros.
#[test]
fn makedumpfile_filters_by_page_kind_with_the_kernels_vmcoreinfo() {
    let fx = Fixture::load("cloud-4l");
    let mut os = Inventory::builtin().create_os_chain(&format!("coredump:{} -> linux", fx.dump.display())).unwrap();
    let meta = DumpMeta::of_os(&mut os);
    let text = String::from_utf8(meta.vmcoreinfo.clone().expect("the kernel's VMCOREINFO is found")).unwrap();
    let release = fx.section("version").split_whitespace().nth(2).unwrap().to_owned();
    assert!(text.starts_with(&format!("OSRELEASE={release}\n")), "{text}");
    let uts = format!("SYMBOL(init_uts_ns)={:x}\n", fx.symbol("init_uts_ns"));
    assert!(text.contains(&uts), "{text}");
    let marker = {
        let mut process = os.process_by_name("mfprobe_marker").unwrap();
        let at = process.mapped_mem(0).unwrap().iter().find_map(|r| {
            let bytes = process.read_raw(r.base, r.size as usize).data_part().unwrap();
            let hit = bytes.windows(fx.meta("marker").len()).position(|w| w == fx.meta("marker").as_bytes());
            hit.map(|i| r.base + i as umem)
        });
        process.virt_to_phys(at.expect("the marker is in its process")).unwrap().address.to_umem() as u64
    };

    let dir = temp_dir("write-makedumpfile-d31");
    let elf = dir.join("guest.elf");
    write(os.as_mut_impl_physicalmemory().unwrap(), &meta, &elf, WriteFormat::Elf);
    drop(os);
    let mut source = open(&elf, OpenOptions::default()).unwrap();
    assert_eq!(source.info().vmcoreinfo.as_ref().and_then(|v| v.get("OSRELEASE")), Some(release.as_str()));
    let want_processes = processes(&fx.dump);
    let want_symbols = kernel_symbols(&fx.dump);
    assert!(want_symbols.len() > 50_000);

    let runs: [(&str, &[&str], DumpFormat); 3] = [
        ("kdump", &["-c", "-d", "31"], DumpFormat::Kdump),
        ("flat", &["-F", "-l", "-d", "31"], DumpFormat::FlattenedKdump),
        ("elf", &["-E", "-d", "31"], DumpFormat::ElfCore),
    ];
    for (name, args, format) in runs {
        let path = dir.join(format!("d31.{name}"));
        let mut cmd = Command::new("makedumpfile");
        cmd.args(args).arg(&elf);
        let out = if format == DumpFormat::FlattenedKdump {
            let out = cmd.output().expect("makedumpfile runs (cargo xtask deps installs it)");
            std::fs::write(&path, &out.stdout).unwrap();
            out
        } else {
            cmd.arg(&path).output().expect("makedumpfile runs (cargo xtask deps installs it)")
        };
        assert!(out.status.success(), "makedumpfile {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let mut copy = open(&path, OpenOptions::default()).unwrap();
        assert_eq!(copy.format(), format, "{name}");
        assert_eq!(processes(&path), want_processes, "{name}: processes");
        assert_eq!(kernel_symbols(&path), want_symbols, "{name}: kernel symbols");

        let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 4096]);
        let (mut present, mut absent) = (0u64, 0u64);
        for r in source.memory_map().clone().ranges() {
            let (start, end) = (r.base.to_umem() as u64, r.end().to_umem() as u64);
            for page in (start..end).step_by(4096) {
                assert!(!source.phys_read_raw_into(phys(page), &mut a).is_partial());
                if copy.phys_read_raw_into(phys(page), &mut b).is_partial() {
                    absent += 1;
                    continue;
                }
                assert!(a == b, "{name}: page {page:#x} differs");
                present += 1;
            }
        }
        assert!(present > 4096 && absent > 4096, "{name}: {present} pages kept, {absent} left out");
        // makedumpfile's ELF output leaves out runs of at least 256 excluded pages only (shorter
        // runs are kept as they are); the kdump bitmaps mark every page.
        if format != DumpFormat::ElfCore {
            let marker_page = phys(marker & !0xfff);
            assert!(copy.phys_read_raw_into(marker_page, &mut b).is_partial(), "{name}: the user page is left out");
            let info = copy.info().vmcoreinfo.as_ref().expect("makedumpfile keeps VMCOREINFO");
            assert_eq!(info.get("OSRELEASE"), Some(release.as_str()), "{name}");
            // A chain's connector hands it on (CpuState::vmcoreinfo), so a dump of it keeps it.
            let chained = Inventory::builtin().create_connector_chain(&format!("coredump:{}", path.display())).unwrap();
            let text = DumpMeta::of_cpus(&chained).vmcoreinfo.expect("the chain's connector has the VMCOREINFO");
            // In the kernel's order, which begins with the release (not re-sorted by key).
            assert!(text.starts_with(format!("OSRELEASE={release}\n").as_bytes()), "{name}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
