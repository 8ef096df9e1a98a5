//! The `linux` OS layer against real QEMU guest dumps, checked against what each guest printed
//! about itself (`serial.log`: `ps`, the marker process, `/proc/version`, `/proc/modules`) and
//! its complete `/proc/kallsyms` (`kallsyms.txt`).
//!
//! The fixtures come from `cargo xtask fixtures`: Debian's cloud kernel with and without
//! KASLR, with 4- and 5-level paging, with page-table isolation (an Intel CPU model) and with
//! 5 GiB of RAM (a memory map with a hole below 4 GiB), and Debian's generic kernel with
//! 5-level paging, all Debian 12's kernel 6.1; and Debian 13's cloud kernel 6.12 (the module
//! layout of 6.4 and later) with KASLR and with 5-level paging; and Debian 13's arm64 kernels
//! (4 KiB and 16 KiB pages; the 4 KiB one also on a CPU with FEAT_LPA2, where it runs 52-bit
//! virtual addresses) and riscv64 kernel (Sv39 and Sv57). A missing fixture fails the tests.

#![allow(clippy::unnecessary_cast)] // casts between `umem` and `u64` are needed when `umem` is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use memflow_core::arch::ArchitectureIdent;
use memflow_core::connector::{dummy_memory, DumpFormat, FileConnector, RiscVRegisters};
use memflow_core::error::{ErrorKind, PartialResultExt, Result};
use memflow_core::mem::MemoryView;
use memflow_core::os::linux::{cpu_hints, LinuxOs};
use memflow_core::os::{Os, Pid, Process, ProcessInfo};
use memflow_core::plugins::{Inventory, LibArc};
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::{umem, Address};
use memflow_core::virt::VirtualDma;
use memflow_tests::{Altered, Fixture};

/// Opens the fixture's dump with the layer, using the CPU state as the hint (formats that
/// record none, LiME and AVML, and ARM64 and RISC-V guests, whose dumps have no system
/// registers, are scanned for the kernel).
fn open_os(fx: &Fixture) -> LinuxOs<FileConnector> {
    let conn = fx.open();
    let hints = cpu_hints(&conn);
    let no_cpu_state = matches!(conn.format(), DumpFormat::Lime | DumpFormat::Avml) || fx.meta("machine") == "virt";
    assert!(no_cpu_state || !hints.is_empty(), "{}: the dump has no usable CPU state", fx.name);
    LinuxOs::new(conn, &hints, LibArc::default()).unwrap_or_else(|e| panic!("{}: {e}", fx.name))
}

/// One line of the guest's `ps -o pid,ppid,comm`.
struct PsLine {
    pid: Pid,
    ppid: Pid,
    name: String,
}

fn ps(fx: &Fixture) -> Vec<PsLine> {
    let lines: Vec<PsLine> = fx
        .section("ps")
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next().unwrap().parse().unwrap();
            let ppid = f.next().unwrap().parse().unwrap();
            PsLine { pid, ppid, name: f.collect::<Vec<_>>().join(" ") }
        })
        .collect();
    assert!(lines.len() > 10, "{}: short ps section", fx.name);
    lines
}

/// `ps` shows `/proc/PID/stat`'s name, which for workqueue workers adds the workqueue after a
/// `-` (`kworker/0:0-rcu_gp`), cut to 15 characters like `comm` itself.
fn same_name(ps_name: &str, comm: &str) -> bool {
    ps_name == comm || ps_name.strip_prefix(comm).is_some_and(|rest| rest.starts_with('-'))
}

fn processes_match_ps(name: &'static str) {
    let fx = Fixture::load(name);
    let mut os = open_os(&fx);
    let list = os.process_info_list().unwrap();
    let by_pid: HashMap<Pid, &ProcessInfo> = list.iter().map(|p| (p.pid, p)).collect();
    assert_eq!(by_pid.len(), list.len(), "{name}: a pid is listed twice");
    let ps = ps(&fx);
    // The `ps` that printed the list has exited; anything started after it is newer than it.
    let ps_pid = ps.iter().find(|l| l.name == "ps").map(|l| l.pid).expect("ps lists itself");
    for line in ps.iter().filter(|l| l.pid != ps_pid) {
        let p = by_pid.get(&line.pid).unwrap_or_else(|| panic!("{name}: pid {} ({}) not listed", line.pid, line.name));
        assert_eq!(p.ppid, line.ppid, "{name}: parent of pid {} ({})", line.pid, line.name);
        assert!(
            same_name(&line.name, &p.name),
            "{name}: pid {}: ps says {:?}, the layer {:?}",
            line.pid,
            line.name,
            &*p.name
        );
    }
    for p in list.iter().filter(|p| p.pid < ps_pid) {
        assert!(ps.iter().any(|l| l.pid == p.pid), "{name}: pid {} ({}) is not in ps", p.pid, &*p.name);
    }
    for probe in ["mfprobe_alpha", "mfprobe_beta", "mfprobe_marker"] {
        let p = list.iter().find(|p| &*p.name == probe).unwrap_or_else(|| panic!("{name}: no {probe}"));
        assert_eq!(p.ppid, 1, "{name}: {probe}");
        assert_eq!(&*p.path, "/bin/busybox", "{name}: {probe} runs busybox");
        assert!(!p.table_root.is_null(), "{name}: {probe} has page tables");
    }
    // The guests' processes are single-threaded: the thread group's list holds the task alone
    // (init, a kernel thread, a probe).
    for p in list.iter().filter(|p| [1, 2].contains(&p.pid) || &*p.name == "mfprobe_marker") {
        let threads = os.process_by_info(p.clone()).unwrap().thread_list().unwrap_or_else(|e| panic!("{name}: {e}"));
        let threads: Vec<(Pid, String)> = threads.iter().map(|t| (t.tid, t.name.to_string())).collect();
        assert_eq!(threads, [(p.pid, p.name.to_string())], "{name}: threads of pid {}", p.pid);
    }
    // Kernel threads have no address space.
    let kthreadd = by_pid[&2];
    assert_eq!(&*kthreadd.name, "kthreadd");
    assert!(kthreadd.table_root.is_null() && kthreadd.path.is_empty() && kthreadd.command_line.is_empty());
    let init = by_pid[&1];
    assert_eq!((&*init.name, &*init.path), ("init", "/bin/busybox"));
    assert!(init.command_line.starts_with("/bin/sh /init"), "{name}: {:?}", &*init.command_line);
    let arch = guest_arch(&fx);
    assert!(list.iter().all(|p| p.sys_arch == arch && p.proc_arch == arch), "{name}: {arch:?}");
    // A process's kernel half is the kernel's: on AArch64 through the kernel's TTBR1 table.
    let second = if matches!(arch, ArchitectureIdent::AArch64 { .. }) { os.kernel_root() } else { Address::NULL };
    assert!(list.iter().filter(|p| !p.table_root.is_null()).all(|p| p.table_root_2 == second), "{name}");
    // The roots are register values: RISC-V's satp holds the table's page number, whose page
    // is in the guest's RAM.
    if matches!(arch, ArchitectureIdent::RiscVSv39 | ArchitectureIdent::RiscVSv48 | ArchitectureIdent::RiscVSv57) {
        let ram = fx.system_ram();
        for p in list.iter().filter(|p| !p.table_root.is_null()) {
            let table = (p.table_root.to_umem() as u64) << 12;
            assert!(ram.iter().any(|&(first, last)| (first..=last).contains(&table)), "{name}: satp {}", p.table_root);
        }
    }
}

/// The paging mode and table root CPU 0 of a RISC-V guest had in `satp` (QEMU's monitor,
/// recorded with the fixture); `None` for other guests.
fn satp_paging(fx: &Fixture) -> Option<(ArchitectureIdent, Address)> {
    if !fx.meta("kernel_release").ends_with("-riscv64") {
        return None;
    }
    let satp = u64::from_str_radix(fx.meta("cpu0_satp").trim_start_matches("0x"), 16).unwrap();
    let paging = RiscVRegisters { satp, satp_valid: true, ..Default::default() }.paging();
    Some(paging.unwrap_or_else(|| panic!("{}: satp {satp:#x} has no paging mode", fx.name)))
}

/// The paging mode the guest ran in: the RISC-V guests' from `satp`, the ARM64 guests' from
/// their kernel flavor (Debian's `arm64-16k` has 16 KiB pages and 47-bit addresses), the
/// x86-64 guests' from `/proc/cpuinfo`.
fn guest_arch(fx: &Fixture) -> ArchitectureIdent {
    if let Some((arch, _)) = satp_paging(fx) {
        return arch;
    }
    let granule_log2 = if fx.meta("kernel_release").ends_with("-arm64-16k") { 14 } else { 12 };
    match fx.meta("machine") {
        "virt" if fx.meta("cpu") == "max" => ArchitectureIdent::AArch64 { granule_log2, va_bits: 52 },
        "virt" => ArchitectureIdent::AArch64 { granule_log2, va_bits: if granule_log2 == 14 { 47 } else { 48 } },
        _ if fx.meta("guest_la57_cpuinfo") == "yes" => ArchitectureIdent::X86_64La57,
        _ => ArchitectureIdent::X86_64,
    }
}

/// Every occurrence of `needle` in the readable mappings of `process`.
fn find_in_process(process: &mut (impl Process + MemoryView), needle: &[u8]) -> Vec<Address> {
    let mut hits = vec![];
    for range in process.mapped_mem(-1).unwrap() {
        let bytes = process.read_raw(range.base, range.size as usize).data_part().unwrap();
        hits.extend(bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| range.base + i));
    }
    hits
}

fn marker_in_process_memory(name: &'static str) {
    let fx = Fixture::load(name);
    let marker = fx.section("marker").lines().find_map(|l| l.strip_prefix("marker=")).unwrap().to_owned();
    let pid: Pid = fx.meta("marker_pid").parse().unwrap();
    assert!(marker.starts_with("MEMFLOW-MARKER-"));
    let mut os = open_os(&fx);
    let info = os.process_info_by_pid(pid).unwrap();
    assert_eq!(&*info.name, "mfprobe_marker");
    let cmdline = fx.section("marker").lines().find_map(|l| l.strip_prefix("cmdline=")).unwrap();
    assert_eq!(&*info.command_line, cmdline.trim_end(), "{name}: command line");
    let mut process = os.process(info).unwrap();
    // argv and the environment on the stack, the shell variable on the heap.
    let hits = find_in_process(&mut process, marker.as_bytes());
    assert!(hits.len() >= 2, "{name}: marker found {} times in the process", hits.len());

    // The process's mappings and its one module, the busybox image.
    let ranges = process.mapped_mem(0).unwrap();
    assert!(ranges.windows(2).all(|w| w[0].base + w[0].size <= w[1].base));
    assert!(ranges.iter().all(|r| r.base.to_umem() < 1 << 56 && r.size > 0));
    let modules = process.module_list().unwrap();
    let busybox = modules.iter().find(|m| &*m.name == "busybox").unwrap_or_else(|| panic!("{name}: {modules:?}"));
    assert_eq!(&*busybox.path, "/bin/busybox");
    assert_eq!(process.primary_module().unwrap().base, busybox.base);
    let elf = process.read_raw(busybox.base, 4).data().unwrap();
    assert_eq!(elf, b"\x7fELF");
    let sections = process.module_sections(busybox).unwrap();
    assert!(!sections.is_empty(), "{name}: busybox has sections or segments");
}

/// `(address, type, name)` of every line of `/proc/kallsyms`, with the module of module
/// symbols.
fn kallsyms_txt(fx: &Fixture) -> Vec<(u64, char, String, Option<String>)> {
    let text = std::fs::read_to_string(fx.dir.join("kallsyms.txt")).unwrap();
    text.lines()
        .map(|l| {
            let (sym, module) = match l.split_once('\t') {
                Some((sym, module)) => (sym, Some(module.to_owned())),
                None => (l, None),
            };
            let mut f = sym.splitn(3, ' ');
            let addr = u64::from_str_radix(f.next().unwrap(), 16).unwrap();
            let kind = f.next().unwrap().chars().next().unwrap();
            (addr, kind, f.next().unwrap().to_owned(), module)
        })
        .collect()
}

fn kernel_symbols_match_kallsyms(name: &'static str) {
    let fx = Fixture::load(name);
    let mut os = open_os(&fx);
    let txt = kallsyms_txt(&fx);
    let ours: Vec<_> = os.kallsyms().iter().map(|s| (s.address.to_umem() as u64, s.kind, s.name.to_owned())).collect();
    assert!(ours.len() > 50_000, "{name}: {} symbols", ours.len());
    // /proc/kallsyms lists the kernel's table in order, then module (and BPF) symbols.
    assert!(txt.len() >= ours.len());
    for (i, (got, want)) in ours.iter().zip(&txt).enumerate() {
        assert_eq!((got.0, got.1, got.2.as_str()), (want.0, want.1, want.2.as_str()), "{name}: symbol {i}");
        assert!(want.3.is_none(), "{name}: symbol {i} belongs to a module");
    }
    assert!(txt[ours.len()..].iter().all(|t| t.3.is_some()), "{name}: kernel symbols after the table");

    // Lookups by name through the Os trait: the first symbol of each name, for a spread of names.
    let mut first: HashMap<&str, u64> = HashMap::new();
    for t in txt.iter().filter(|t| t.3.is_none()) {
        first.entry(t.2.as_str()).or_insert(t.0);
    }
    let mut names: Vec<_> = first.iter().collect();
    names.sort();
    for (sym, &addr) in names.iter().step_by(names.len() / 400) {
        assert_eq!(os.kernel_symbol(sym).unwrap().to_umem() as u64, addr, "{name}: {sym}");
    }
    assert_eq!(os.kernel_symbol("no_such_symbol_anywhere").unwrap_err().kind, ErrorKind::NotFound);

    // The banner read through the kernel's address space is what /proc/version printed.
    let banner = os.kernel_symbol("linux_banner").unwrap();
    let text = os.read_utf8_lossy(banner, 1024).data().unwrap();
    assert_eq!(text.trim_end(), fx.section("version").trim_end(), "{name}: linux_banner");

    // BTF is there for other structures too.
    let btf = os.btf();
    assert!(btf.type_count() > 10_000, "{name}: {} BTF types", btf.type_count());
    assert_eq!(btf.offset_of("list_head", "prev").unwrap(), 8);
    assert_eq!(btf.struct_size("task_struct").unwrap() % 64, 0, "{name}: task_struct is cache aligned");

    // The kernel image: _text to _end.
    let info = *os.info();
    assert_eq!(info.base.to_umem() as u64, first["_text"], "{name}: kernel base");
    assert_eq!(info.size as u64, first["_end"] - first["_text"], "{name}: kernel size");
}

fn kernel_modules_match_proc_modules(name: &'static str) {
    let fx = Fixture::load(name);
    let mut os = open_os(&fx);
    let mut want: Vec<(String, u64, u64)> = fx
        .section("modules")
        .lines()
        .map(|l| {
            let f: Vec<_> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].parse().unwrap(), u64::from_str_radix(f[5].trim_start_matches("0x"), 16).unwrap())
        })
        .collect();
    assert!(want.len() >= 2, "{name}: the guest loaded its modules");
    let mut got: Vec<_> = os
        .module_list()
        .unwrap()
        .iter()
        .map(|m| (m.name.to_string(), m.size as u64, m.base.to_umem() as u64))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{name}: kernel modules");
    assert_eq!(&*os.module_by_name("DUMMY").unwrap().name, "dummy");
}

/// The symbols of `/proc/kallsyms` by module (`""` for the kernel image), in its order.
fn kallsyms_by_module(txt: &[(u64, char, String, Option<String>)]) -> HashMap<String, Vec<(u64, char, String)>> {
    let mut out: HashMap<String, Vec<_>> = HashMap::new();
    for (addr, kind, name, module) in txt {
        let module = module.as_deref().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
        out.entry(module.to_owned()).or_default().push((*addr, *kind, name.clone()));
    }
    out
}

/// `os.kernel_symbol_by_address` of `at` and of addresses inside the symbol, compared with
/// what `syms` (one module's symbols, or the kernel image's) says is there: the first symbol
/// at the highest address at or below.
fn check_symbol_at(os: &mut LinuxOs<FileConnector>, syms: &[(u64, char, String)], module: &str, at: u64) {
    let mut addrs: Vec<u64> = syms.iter().map(|s| s.0).collect();
    addrs.sort();
    addrs.dedup();
    // Up to the next symbol, but within the symbol's page: since 6.4 a module's text, data and
    // read-only data are separate allocations, and the gap between them belongs to no module.
    let next = addrs.iter().copied().find(|&a| a > at).map(|n| n.min((at | 0xfff) + 1));
    let first = syms.iter().find(|s| s.0 == at).unwrap();
    let inside = next.map_or(vec![0], |n| vec![0, (n - at) / 2, n - at - 1]);
    for k in inside {
        let got =
            os.kernel_symbol_by_address(Address::from(at + k)).unwrap_or_else(|e| panic!("{module} {at:#x}+{k}: {e}"));
        let want = if module.is_empty() { (first.2.as_str(), at, first.1) } else { (&*got.name, at, first.1) };
        assert_eq!((&*got.name, got.address.to_umem() as u64, got.kind as char), want, "{module} {at:#x} + {k:#x}");
        // Module symbols of one address come in no defined order: any of them is right.
        assert!(syms.iter().any(|s| s.0 == at && s.2 == *got.name), "{module} {at:#x}: {}", &*got.name);
        assert_eq!(&*got.module, module);
    }
}

fn kernel_symbols_by_address_and_module_symbols(name: &'static str) {
    let fx = Fixture::load(name);
    let mut os = open_os(&fx);
    let txt = kallsyms_txt(&fx);
    let by_module = kallsyms_by_module(&txt);

    // The whole listing is /proc/kallsyms.
    let listed: Vec<_> = os
        .kernel_symbol_list()
        .unwrap()
        .iter()
        .map(|s| (s.address.to_umem() as u64, s.kind as char, s.name.to_string(), s.module.to_string()))
        .collect();
    let want: Vec<_> = txt
        .iter()
        .map(|(a, k, n, m)| (*a, *k, n.clone(), m.as_deref().unwrap_or("").trim_matches(['[', ']']).to_owned()))
        .collect();
    assert_eq!(listed.len(), want.len(), "{name}: symbol count");
    for (i, (got, want)) in listed.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "{name}: symbol {i}");
    }

    // By address: a spread of the kernel image's symbols, and every module symbol.
    let info = *os.info();
    let (base, end) = (info.base.to_umem() as u64, (info.base + info.size).to_umem() as u64);
    let image = &by_module[""];
    for s in image.iter().filter(|s| s.0 >= base && s.0 < end).step_by(997) {
        check_symbol_at(&mut os, image, "", s.0);
    }
    let modules = os.module_list().unwrap();
    assert!(!modules.is_empty());
    for m in &modules {
        let syms = &by_module[&*m.name];
        for s in syms {
            check_symbol_at(&mut os, syms, &m.name, s.0);
        }
        // The exports of a module are the symbols /proc/kallsyms marks global (upper case).
        let mut exports: Vec<_> = os
            .kernel_module_exports(m)
            .unwrap()
            .iter()
            .map(|e| (e.name.to_string(), (m.base.to_umem() as u64).wrapping_add(e.offset as u64)))
            .collect();
        let mut want: Vec<_> = syms.iter().filter(|s| s.1.is_ascii_uppercase()).map(|s| (s.2.clone(), s.0)).collect();
        exports.sort();
        want.sort();
        assert_eq!(exports, want, "{name}: exports of {}", &*m.name);
        // Its sections: the text starts at the base, `struct module` is its own section.
        let sections = os.kernel_module_sections(m).unwrap();
        let section =
            |n: &str| sections.iter().find(|s| &*s.name == n).unwrap_or_else(|| panic!("{n} in {sections:?}"));
        assert_eq!(section(".text").base, m.base, "{name}: {}", &*m.name);
        assert_eq!(section(".gnu.linkonce.this_module").base, m.address, "{name}: {}", &*m.name);
        assert!(sections.iter().all(|s| s.size == 0));
    }
    for nowhere in [0u64, 0x1000, base - 1, end, u64::MAX] {
        let err = os.kernel_symbol_by_address(Address::from(nowhere)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{name}: {nowhere:#x}");
    }

    // Type information from BTF: what the layer itself uses.
    let layout = os.layout().clone();
    assert_eq!(os.type_member_offset("task_struct", "pid").unwrap() as u32, layout.task.pid);
    assert_eq!(os.type_member_offset("task_struct", "comm").unwrap() as u32, layout.task.comm);
    assert_eq!(os.type_member_offset("file", "f_path.dentry").unwrap() as u32, layout.path.file_dentry);
    assert_eq!(os.type_member_offset("list_head", "prev").unwrap(), 8);
    assert_eq!(os.type_size("list_head").unwrap(), 16);
    assert_eq!(os.type_size("task_struct").unwrap() as u32, os.btf().struct_size("task_struct").unwrap());
    assert_eq!(os.type_member_offset("task_struct", "no_such_member").unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(os.type_size("no_such_struct").unwrap_err().kind, ErrorKind::NotFound);
}

fn scan_without_cpu_state_finds_the_same_kernel(name: &'static str) {
    let fx = Fixture::load(name);
    let mut with_hint = open_os(&fx);
    let pids =
        |os: &mut LinuxOs<FileConnector>| os.process_info_list().unwrap().iter().map(|p| p.pid).collect::<Vec<_>>();
    let want = pids(&mut with_hint);
    // No CPU state at all, a hint that points at no page table, and for a RISC-V guest the
    // `satp` its CPU had (a process's table: the layer moves to the kernel's own).
    let satp = satp_paging(&fx).into_iter().collect();
    for hints in [vec![], vec![(ArchitectureIdent::X86_64, Address::new(0x1000))], satp] {
        let mut os = LinuxOs::new(fx.open(), &hints, LibArc::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(os.kernel_root(), with_hint.kernel_root(), "{name}: kernel page tables");
        assert_eq!(os.info(), with_hint.info(), "{name}");
        assert_eq!(pids(&mut os), want, "{name}");
    }
    // Hints spare the searches of other families: the registers of a dump's ARM64 or RISC-V
    // CPUs (no table root) name the family to search first, and a RISC-V CPU's `satp` the
    // tables themselves. Counted in bytes read, with the same result (checked above).
    let bytes_read = |hints: &[(ArchitectureIdent, Address)]| {
        let mem = Altered { inner: fx.open(), patches: vec![], failing: vec![], bytes_read: Default::default() };
        let counter = mem.bytes_read.clone();
        LinuxOs::new(mem, hints, LibArc::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        counter.load(std::sync::atomic::Ordering::Relaxed)
    };
    let (unhinted, from_dump) = (bytes_read(&[]), bytes_read(&cpu_hints(&fx.open())));
    if fx.meta("machine") == "virt" {
        assert!(from_dump < unhinted, "{name}: {from_dump} bytes read with the dump's hints, {unhinted} without");
    }
    if let Some(satp) = satp_paging(&fx) {
        let hinted = bytes_read(&[satp]);
        assert!(hinted < from_dump, "{name}: {hinted} bytes read with satp, {from_dump} without");
    }
}

macro_rules! fixture_tests {
    ($($module:ident: $name:literal),* $(,)?) => {$(
        mod $module {
            #[test]
            fn processes_match_ps() {
                super::processes_match_ps($name);
            }

            #[test]
            fn marker_in_process_memory() {
                super::marker_in_process_memory($name);
            }

            #[test]
            fn kernel_symbols_match_kallsyms() {
                super::kernel_symbols_match_kallsyms($name);
            }

            #[test]
            fn kernel_modules_match_proc_modules() {
                super::kernel_modules_match_proc_modules($name);
            }

            #[test]
            fn kernel_symbols_by_address_and_module_symbols() {
                super::kernel_symbols_by_address_and_module_symbols($name);
            }

            #[test]
            fn scan_without_cpu_state_finds_the_same_kernel() {
                super::scan_without_cpu_state_finds_the_same_kernel($name);
            }
        }
    )*};
}

fixture_tests! {
    cloud_4l: "cloud-4l",
    cloud_5l: "cloud-5l",
    cloud_4l_kaslr: "cloud-4l-kaslr",
    generic_5l: "generic-5l",
    pti_4l: "pti-4l",
    cloud_4l_5g: "cloud-4l-5g",
    trixie_4l_kaslr: "trixie-4l-kaslr",
    trixie_5l: "trixie-5l",
    // The same guest moment as cloud-4l's dump.elf, in QEMU's compressed kdump (flattened) and
    // makedumpfile's reassembly of it (plain).
    cloud_4l_kdump_zlib: "cloud-4l/dump.kdump-zlib",
    cloud_4l_kdump_zlib_plain: "cloud-4l/dump.kdump-zlib-plain",
    // AVML captures the guest took of itself shortly before its ELF dump (no CPU state: the
    // kernel is found by scanning).
    cloud_4l_avml: "cloud-4l-avml/dump.avml",
    cloud_4l_avml_lime: "cloud-4l-avml/dump.avml-lime",
    // Debian 13's arm64 kernels (KASLR on) with 4 KiB pages and 48-bit and 16 KiB pages and
    // 47-bit addresses.
    arm64_4k: "arm64-4k",
    arm64_16k: "arm64-16k",
    // arm64-4k's kernel on QEMU's `max` CPU: 52-bit virtual addresses (FEAT_LPA2).
    arm64_max: "arm64-max",
    // Debian 13's riscv64 kernel in Sv39 (`no4lvl`), Sv48 (`no5lvl`) and Sv57.
    riscv64_sv39: "riscv64-sv39",
    riscv64_sv48: "riscv64-sv48",
    riscv64_sv57: "riscv64-sv57",
}

/// With page-table isolation a CPU in user mode runs on the user copy of the tables (the page
/// after the kernel copy, CR3 bit 12), which maps the kernel's entry code (here its text and
/// read-only data) but none of its data.
#[test]
fn user_copy_of_the_tables_leads_to_the_kernel_copy() {
    let fx = Fixture::load("pti-4l");
    assert!(fx.section("dmesg").contains("Kernel/User page tables isolation: enabled"));
    let want = open_os(&fx);
    let conn = fx.open();
    let hints: Vec<_> = cpu_hints(&conn).into_iter().map(|(arch, root)| (arch, root + 0x1000 as umem)).collect();
    let mut user = VirtualDma::new(fx.open(), hints[0].0, &[hints[0].1]).unwrap();
    let init_task = want.kallsyms().lookup("init_task").unwrap();
    assert!(user.virt_to_phys(init_task).is_err(), "the user copy does not map kernel data");
    let mut os = LinuxOs::new(conn, &hints, LibArc::default()).unwrap();
    assert_eq!(os.kernel_root(), want.kernel_root());
    assert!(os.process_info_by_name("mfprobe_marker").unwrap().command_line.contains(fx.meta("marker")));
}

#[test]
fn chain_through_the_inventory() {
    let fx = Fixture::load("cloud-4l");
    let chain = format!("coredump:{} -> linux", fx.dir.join("dump.elf").display());
    let mut os = Inventory::builtin().create_os_chain(&chain).unwrap();
    let names: Vec<_> = os.process_info_list().unwrap().iter().map(|p| p.name.to_string()).collect();
    for probe in ["init", "kthreadd", "mfprobe_alpha", "mfprobe_beta", "mfprobe_marker"] {
        assert!(names.iter().any(|n| n == probe), "{probe} in {names:?}");
    }
    let marker = fx.meta("marker");
    let mut process = os.process_by_name("mfprobe_marker").unwrap();
    assert!(process.info().command_line.contains(marker));
    assert!(!find_in_process(&mut process, marker.as_bytes()).is_empty());
    assert_eq!(process.primary_module().unwrap().name.to_string(), "busybox");
    let banner = os.kernel_symbol("linux_banner").unwrap();
    let kernel = os.as_mut_impl_memoryview().expect("the layer is a view of kernel memory");
    assert!(kernel.read_utf8_lossy(banner, 256).data().unwrap().starts_with("Linux version "));
    assert_eq!(os.module_list().unwrap().len(), 2);
    // Without an input connector the layer has nothing to read.
    assert!(Inventory::builtin().create_os_chain("linux").is_err());
}

/// The physical address of the kernel virtual address `va` in the fixture.
fn kernel_phys(os: &LinuxOs<FileConnector>, fx: &Fixture, va: Address) -> Address {
    let mut view = VirtualDma::new(fx.open(), os.info().arch, &[os.kernel_root()]).unwrap();
    view.virt_to_phys(va).unwrap().address
}

fn open_patched(fx: &Fixture, patches: Vec<(Address, Vec<u8>)>) -> Result<LinuxOs<Altered>> {
    let conn = fx.open();
    let hints = cpu_hints(&conn);
    let patches = patches.into_iter().map(|(at, bytes)| (at.to_umem() as u64, bytes)).collect();
    LinuxOs::new(
        Altered { inner: conn, patches, failing: Vec::new(), bytes_read: Default::default() },
        &hints,
        LibArc::default(),
    )
}

#[test]
fn corrupt_task_lists_give_errors_not_hangs() {
    let fx = Fixture::load("cloud-4l");
    let mut os = open_os(&fx);
    let alpha = os.process_info_by_name("mfprobe_alpha").unwrap().address;
    let tasks = os.layout().task.tasks as umem;
    let next_field = kernel_phys(&os, &fx, alpha + tasks);
    let own_list = (alpha + tasks).to_umem() as u64;
    for (next, kind) in
        [(own_list, ErrorKind::LimitExceeded), (0, ErrorKind::Malformed), (0x1000, ErrorKind::PartialRead)]
    {
        let mut os = open_patched(&fx, vec![(next_field, next.to_le_bytes().to_vec())]).unwrap();
        let err = os.process_info_list().unwrap_err();
        assert_eq!(err.kind, kind, "next = {next:#x}");
    }
}

/// A fake task list of 5000 elements that loops back to `init_task` (a hostile guest's): the
/// walk stops once it has more elements than the kernel has threads (`nr_threads`, plus
/// `TASK_SLACK`) and says the list is corrupt, instead of listing 5000 garbage processes.
#[test]
fn fake_task_lists_are_cut_at_the_kernel_thread_count() {
    let fx = Fixture::load("cloud-4l");
    let mut os = open_os(&fx);
    let [nr_threads, page_offset_base, init_task] =
        ["nr_threads", "page_offset_base", "init_task"].map(|name| os.kallsyms().lookup(name).unwrap());
    let nr_threads = os.read::<i32>(nr_threads).data().unwrap() as usize;
    let direct_map = Address::from(os.read::<u64>(page_offset_base).data().unwrap());
    let head = init_task + os.layout().task.tasks as umem;
    // The fake elements, 16 bytes apart at 128 MiB (reached through the direct map).
    let (fake, count) = (128u64 << 20, 5000u64);
    let mut links = Vec::new();
    for i in 1..=count {
        let next = if i == count { head } else { direct_map + (fake + 16 * i) as umem };
        links.extend_from_slice(&(next.to_umem() as u64).to_le_bytes());
        links.extend_from_slice(&[0; 8]);
    }
    let first = ((direct_map + fake as umem).to_umem() as u64).to_le_bytes().to_vec();
    let patches = vec![(kernel_phys(&os, &fx, head), first), (Address::from(fake), links)];
    let mut os = open_patched(&fx, patches).unwrap();
    let mut visited = 0;
    let err = os
        .process_address_list_callback(
            (&mut |_| {
                visited += 1;
                true
            })
                .into(),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded);
    assert_eq!(visited, nr_threads + memflow_core::os::linux::limits::TASK_SLACK, "{nr_threads} threads");
    // An empty task list is no less corrupt than an endless one.
    let head_phys = kernel_phys(&open_os(&fx), &fx, head);
    let mut os = open_patched(&fx, vec![(head_phys, (head.to_umem() as u64).to_le_bytes().to_vec())]).unwrap();
    assert_eq!(os.process_info_list().unwrap_err().kind, ErrorKind::Malformed);
}

#[test]
fn missing_btf_and_kallsyms_are_named() {
    let fx = Fixture::load("cloud-4l");
    let os = open_os(&fx);
    let btf = os.kallsyms().lookup("__start_BTF").unwrap();
    let err = open_patched(&fx, vec![(kernel_phys(&os, &fx, btf), vec![0; 4])]).err().expect("no BTF, no layer");
    assert_eq!(err.kind, ErrorKind::NotFound);
    // The digit tokens of the token table are gone: no kallsyms, whatever page tables are tried.
    let image: Vec<u8> = {
        let mut view = VirtualDma::new(fx.open(), os.info().arch, &[os.kernel_root()]).unwrap();
        view.read_raw(os.info().base, os.info().size as usize).data_part().unwrap()
    };
    let digits = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00";
    let patches: Vec<_> = image
        .windows(digits.len())
        .enumerate()
        .filter(|(_, w)| w == digits)
        .map(|(i, _)| (kernel_phys(&os, &fx, os.info().base + i), vec![b'x'; 2]))
        .collect();
    assert!(!patches.is_empty());
    let err = open_patched(&fx, patches).err().expect("no kallsyms, no layer");
    assert_eq!(err.kind, ErrorKind::NotFound);
    // Memory without any kernel.
    let conn = memflow_core::plugins::connector_instance(dummy_memory(16 << 20), LibArc::default());
    assert_eq!(LinuxOs::from_connector(conn, LibArc::default()).err().map(|e| e.kind), Some(ErrorKind::NotFound));
}

/// A hostile guest's module symbol and section tables (counts of 2^32 - 1) give
/// `LimitExceeded` naming the table, before anything that large is read or allocated.
#[test]
fn corrupt_module_symbol_and_section_counts_give_errors() {
    let fx = Fixture::load("cloud-4l");
    let mut os = open_os(&fx);
    let module = os.module_by_name("dummy").unwrap();
    let symbols = os.layout().module_symbols.clone().expect("6.1 has mod_kallsyms");
    let sections = os.layout().module_sections.clone().expect("6.1 has sect_attrs");
    let mut pointer = |offset: u32| Address::from(os.read::<u64>(module.address + offset as umem).data().unwrap());
    let (table, attrs) = (pointer(symbols.kallsyms), pointer(sections.sect_attrs));
    assert!(!table.is_null() && !attrs.is_null());
    let patches = vec![
        (kernel_phys(&os, &fx, table + symbols.num_symtab as umem), u32::MAX.to_le_bytes().to_vec()),
        (kernel_phys(&os, &fx, attrs + sections.nsections as umem), u32::MAX.to_le_bytes().to_vec()),
    ];
    let mut hostile = open_patched(&fx, patches).unwrap();
    let module = hostile.module_by_name("dummy").unwrap();
    for err in [hostile.kernel_symbol_list().unwrap_err(), hostile.kernel_module_sections(&module).unwrap_err()] {
        assert_eq!(err.kind, ErrorKind::LimitExceeded, "{err}");
    }
    // The kernel's own symbols are untouched.
    assert!(hostile.kernel_symbol("init_task").is_ok());
}
