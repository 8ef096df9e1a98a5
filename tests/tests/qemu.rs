//! The `qemu` connector against QEMU processes this test starts itself:
//!
//! - a live guest booted by `xtask::guest::LiveGuest` (the cloud kernel of the `cloud-4l`
//!   fixture, 256 MiB, q35, `nokaslr`), read with and without QMP while it runs (also over
//!   the OS layer plugin written in C, `procfs -> qemu:NAME`), compared
//!   with the fixture's dump of the same kernel build where memory does not change (kernel
//!   text and read-only data), written to, and read after it was killed;
//! - a live ARM64 guest (the `arm64-4k` fixture's kernel and CPU under `qemu-system-aarch64`)
//!   read by the `linux` layer through `qemu:NAME` alone, and a live RISC-V guest
//!   (`qemu-system-riscv64 -M virt`, the `riscv64-sv39` fixture's kernel) likewise;
//! - paused QEMUs (`-S`: no guest code runs, so their RAM is never touched and costs
//!   nothing however large `-m` is) of the q35 and pc machines with RAM sizes around the
//!   4 GiB split, and of the aarch64 and riscv64 `virt` machines, where the layout from the
//!   machine rules must match QEMU's own (QMP) and bytes written through the connector must
//!   be what QEMU reads at the same guest address.
//!
//! Every QEMU is the test's child with a parent-death signal, and killed when the test ends,
//! passes or fails. QEMU's own view of guest memory comes over QMP (`xp` through
//! `human-monitor-command`), with memflow-core's QMP client.

#![cfg(target_os = "linux")]
#![allow(clippy::unnecessary_cast)] // casts between `umem` and `u64` are needed when `umem` is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memflow_core::connector::qemu::qmp::Qmp;
use memflow_core::connector::qemu::{QemuConnector, QemuTarget};
use memflow_core::connector::{open, CpuState, OpenOptions, X86ArchHint};
use memflow_core::error::{ErrorKind, PartialError, PartialResultExt};
use memflow_core::instance::{os_instance, OsInstanceArcBox};
use memflow_core::mem::{MemoryMap, MemoryView, PhysicalMemory};
use memflow_core::os::native::NativeOs;
use memflow_core::os::Os;
use memflow_core::plugins::Inventory;
use memflow_core::types::{umem, Address, PhysicalAddress};
use memflow_core::virt::VirtualDma;
use memflow_tests::{build_c_plugin, section, temp_dir, Fixture, LiveGuest};
use xtask::guest::die_with_parent;

/// Waits up to `limit` for `done`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has no memory any more: count it as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

/// Runs one HMP command over QMP; returns its output.
fn hmp(socket: &Path, command: &str) -> String {
    let mut qmp = Qmp::connect(socket).unwrap_or_else(|e| panic!("QMP {}: {e}", socket.display()));
    qmp.hmp(command).unwrap_or_else(|e| panic!("HMP {command}: {e}"))
}

/// The 8-byte value QEMU itself reads at guest-physical `addr` (HMP `xp`).
fn qemu_reads_u64(socket: &Path, addr: u64) -> u64 {
    let text = hmp(socket, &format!("xp /1gx {addr:#x}"));
    let value = text.split(": 0x").nth(1).unwrap_or_else(|| panic!("unexpected xp output {text}"));
    let hex: String = value.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).unwrap()
}

/// Boots the fixture guest as `memflow-test-<tag>-<test pid>` and waits until it is ready.
/// The guest of the QEMU process `target` picks among the host's processes.
fn open_native(target: &QemuTarget, qmp: Option<&Path>) -> memflow_core::error::Result<QemuConnector> {
    QemuConnector::open(os_instance(NativeOs::new(Default::default()), Default::default()), target, qmp)
}

fn boot(tag: &str) -> LiveGuest {
    LiveGuest::start(&format!("{tag}-{}", std::process::id())).unwrap_or_else(|e| panic!("{e}"))
}

/// The lines the guest printed so far between `==== MEMFLOW-BEGIN name ====` and its END line.
fn guest_section(guest: &LiveGuest, name: &str) -> String {
    let serial = std::fs::read_to_string(&guest.serial).unwrap().replace('\r', "");
    section(&serial, name).unwrap_or_else(|| panic!("no section {name}")).to_owned()
}

/// Kills QEMU (not the script) and waits until its memory is gone.
fn kill_qemu(guest: &LiveGuest) {
    // SAFETY: plain kill(2) of the QEMU process this guest owns.
    unsafe { libc::kill(guest.pid as libc::pid_t, libc::SIGKILL) };
    wait_for(Duration::from_secs(10), "QEMU to die", || !alive(guest.pid));
}

/// Physical address of a kernel-image address in a `nokaslr` guest: the image is mapped at
/// `__START_KERNEL_map` (0xffffffff80000000) from physical 0.
fn kernel_pa(va: u64) -> u64 {
    va - 0xffff_ffff_8000_0000
}

fn read(mem: &mut impl PhysicalMemory, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    mem.phys_read_raw_into(PhysicalAddress::plain(Address::from(addr)), &mut buf).unwrap();
    buf
}

/// Every start of `needle` in `len` bytes of guest memory from `start`, read in 1 MiB steps.
fn scan(mem: &mut impl PhysicalMemory, start: u64, len: u64, needle: &[u8]) -> Vec<u64> {
    const STEP: u64 = 1 << 20;
    let mut hits = Vec::new();
    let (mut base, end) = (start, start + len);
    while base < end {
        // Overlap the next step by the needle so no hit is cut in two.
        let chunk = read(mem, base, (STEP as usize + needle.len()).min((end - base) as usize));
        hits.extend(
            chunk.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| base + i as u64),
        );
        base += STEP;
    }
    hits.dedup();
    hits
}

/// (pid, ppid, name) of the guest's user processes (not kernel threads, not the `ps`
/// that listed them) in the `ps` section.
fn user_processes_of_ps(ps: &str) -> BTreeSet<(u32, u32, String)> {
    ps.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, f.next()?.to_owned()))
        })
        .filter(|(pid, ppid, name): &(u32, u32, String)| *pid != 2 && *ppid != 2 && *pid != 0 && name != "ps")
        .collect()
}

/// Opens `chain` (ending in the `linux` layer on `guest`) and checks that it lists the
/// processes the guest's own `ps` did; returns the OS layer.
fn lists_the_processes_of_ps(inventory: &Inventory, chain: &str, guest: &LiveGuest) -> OsInstanceArcBox<'static> {
    let mut linux = inventory.create_os_chain(chain).unwrap_or_else(|e| panic!("{chain}: {e}"));
    let listed: BTreeSet<(u32, u32, String)> = linux
        .process_info_list()
        .unwrap()
        .into_iter()
        .map(|p| (p.pid, p.ppid, (*p.name).to_owned()))
        .filter(|(pid, ppid, _)| *pid != 2 && *ppid != 2 && *pid != 0)
        .collect();
    let ps = user_processes_of_ps(&guest_section(guest, "ps"));
    assert!(ps.len() > 3, "{chain}: short ps section {ps:?}");
    assert!(listed.is_superset(&ps), "{chain}: lists {listed:?}, ps listed {ps:?}");
    // After its report, init only started the `sleep` it idles in.
    let later: Vec<_> = listed.difference(&ps).collect();
    assert!(later.iter().all(|(_, ppid, name)| *ppid == 1 && name == "sleep"), "{chain}: unexpected {later:?}");
    linux
}

/// The address of `name` in the live guest's `/proc/kallsyms`.
fn live_symbol(guest: &LiveGuest, name: &str) -> u64 {
    let kallsyms = std::fs::read_to_string(guest.kallsyms()).unwrap();
    kallsyms
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&name)).then(|| u64::from_str_radix(f[0], 16).unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in the guest's kallsyms"))
}

#[test]
fn live_guest() {
    let fixture = Fixture::load("cloud-4l");
    let guest = boot("live");
    let release = guest_section(&guest, "uname").split_whitespace().nth(2).unwrap().to_owned();
    assert_eq!(
        release,
        fixture.meta("kernel_release"),
        "the live guest must run the fixture's kernel build; rebuild the fixtures with `cargo xtask fixtures --force`"
    );
    let banner = guest_section(&guest, "version").trim_end().to_owned();
    let ram = 256u64 << 20;

    // Listed as a target, opened by name, by pid, through QMP alone, and by chains; one over
    // an OS layer written in C (examples-c/plugin_procfs) instead of the native one.
    let mut inventory = Inventory::builtin();
    let plugins = temp_dir("qemu-procfs");
    let procfs = build_c_plugin("examples-c/plugin_procfs/plugin_procfs.c", &plugins.join("libprocfs.so"), &[]);
    inventory.add_file(&procfs).unwrap();
    let targets = inventory.targets("qemu").unwrap();
    assert!(targets.iter().any(|t| *t.name == guest.name), "{} not among {targets:?}", guest.name);
    let by_name = QemuTarget { name: Some(guest.name.clone()), pid: None };
    let mut plain = open_native(&by_name, None).unwrap();
    let mut with_qmp = open_native(&QemuTarget::default(), Some(&guest.qmp)).unwrap();
    assert_eq!(plain.qemu().info.pid, guest.pid);
    assert_eq!(with_qmp.qemu().info.pid, guest.pid, "the QMP guest name picks the process");
    assert_eq!(plain.map(), with_qmp.map(), "machine rules and QMP agree on a 256 MiB q35 guest");
    let range = plain.map().ranges()[0];
    assert_eq!((plain.map().ranges().len(), range.base, range.size), (1, Address::NULL, ram as umem));
    assert_eq!(plain.cpu_count(), 0);
    assert_eq!(with_qmp.cpu_count(), 1);
    let wrong = QemuTarget { name: Some("memflow-test-no-such-guest".into()), pid: None };
    assert_eq!(open_native(&wrong, Some(&guest.qmp)).err().unwrap().kind, ErrorKind::InvalidArgument);
    assert_eq!(open_native(&wrong, None).err().unwrap().kind, ErrorKind::NotFound);

    // The banner the guest printed is in its RAM, where kallsyms puts linux_banner.
    let banner_pa = kernel_pa(fixture.symbol("linux_banner"));
    let hits = scan(&mut plain, 0, ram, banner.as_bytes());
    assert!(hits.contains(&banner_pa), "banner at {hits:x?}, linux_banner at {banner_pa:#x}");
    let mut chains = vec![
        format!("qemu:{}", guest.name),
        format!("qemu:pid={}", guest.pid),
        format!("qemu:{},qmp={}", guest.name, guest.qmp.display()),
        format!("native -> qemu:{}", guest.name),
        format!("procfs -> qemu:{}", guest.name),
    ];
    for chain in &chains {
        let mut conn = inventory.create_connector_chain(chain).unwrap_or_else(|e| panic!("{chain}: {e}"));
        assert_eq!(read(&mut conn, banner_pa, banner.len()), banner.as_bytes(), "{chain}");
    }

    // The same through the plugin libraries `cargo build --workspace` ships.
    let build_dir = std::env::current_exe().unwrap().parent().and_then(Path::parent).unwrap().to_path_buf();
    let mut from_files = Inventory::default();
    for lib in ["native", "qemu"] {
        let path = build_dir.join(format!("libmemflow_{lib}.so"));
        from_files
            .add_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `cargo build --workspace` first)", path.display()));
    }
    assert!(from_files.targets("qemu").unwrap().iter().any(|t| *t.name == guest.name));
    let mut conn = from_files.create_connector_chain(&chains[3]).unwrap();
    assert_eq!(read(&mut conn, banner_pa, banner.len()), banner.as_bytes(), "{} from plugin files", chains[3]);

    // Kernel text and read-only data: what the dump of the same kernel build holds, apart
    // from code the kernel patches at run time (static keys flip as the guest runs).
    let mut dump = open(fixture.dir.join("dump.elf"), OpenOptions::default()).unwrap();
    for (start, end, max_diff) in [("_text", "_etext", 0.001), ("__start_rodata", "__end_rodata", 0.001)] {
        let (pa, len) = (kernel_pa(fixture.symbol(start)), (fixture.symbol(end) - fixture.symbol(start)) as usize);
        let (live, dumped) = (read(&mut with_qmp, pa, len), read(&mut dump, pa, len));
        let diff = live.iter().zip(&dumped).filter(|(a, b)| a != b).count();
        println!("{start}..{end}: {len} bytes at {pa:#x}, {diff} differ from the dump");
        assert!((diff as f64) < len as f64 * max_diff, "{start}..{end}: {diff} of {len} bytes differ");
    }

    // A write into a page Linux never uses (the first 64 KiB are reserved:
    // CONFIG_X86_RESERVE_LOW), seen by QEMU itself, by another connector, and undone.
    let page: u64 = 0x8000;
    let original = read(&mut plain, page, 8);
    let value: u64 = 0x6d65_6d66_6c6f_7721 ^ u64::from(std::process::id());
    plain.phys_write(PhysicalAddress::plain(Address::from(page)), &value).unwrap();
    assert_eq!(plain.phys_read::<u64>(PhysicalAddress::plain(Address::from(page))).unwrap(), value);
    assert_eq!(qemu_reads_u64(&guest.qmp, page), value, "QEMU sees the written bytes at the same guest address");
    let mut clone = with_qmp.clone();
    assert_eq!(read(&mut clone, page, 8), value.to_le_bytes());
    plain.phys_write_raw(PhysicalAddress::plain(Address::from(page)), &original).unwrap();
    assert_eq!(qemu_reads_u64(&guest.qmp, page).to_le_bytes().to_vec(), original);

    // CR3 from QMP is a page-table root of this guest: its kernel half is the kernel's
    // (init_top_pgt), and it maps linux_banner to the banner.
    let regs = with_qmp.x86_registers(0).unwrap();
    assert_eq!(regs.arch_hint(), X86ArchHint::X86_64);
    let root = regs.page_table_root().unwrap();
    let top = read(&mut with_qmp, root.to_umem() as u64, 4096);
    let kernel_top = read(&mut with_qmp, kernel_pa(fixture.symbol("init_top_pgt")), 4096);
    assert_eq!(top[2048..], kernel_top[2048..], "kernel half of the PML4 at CR3 {:#x}", regs.cr3);
    assert_ne!(top[4088..], [0u8; 8], "the kernel image is mapped");
    let mut kernel = VirtualDma::new(with_qmp.clone(), memflow_core::arch::ArchitectureIdent::X86_64, &[root]).unwrap();
    let mut text = vec![0u8; banner.len()];
    kernel.read_raw_into(Address::from(fixture.symbol("linux_banner")), &mut text).unwrap();
    assert_eq!(text, banner.as_bytes());

    // The `linux` layer on the live guest lists the processes the guest's own `ps` did.
    let chain = format!("qemu:{},qmp={} -> linux", guest.name, guest.qmp.display());
    lists_the_processes_of_ps(&inventory, &chain, &guest);
    chains.push(chain);

    // The guest exits: the next read and write fail with Gone, every byte reported failed.
    let mut chained = inventory.create_connector_chain(&chains[3]).unwrap();
    kill_qemu(&guest);
    let mut buf = [0xffu8; 16];
    match plain.phys_read_raw_into(PhysicalAddress::plain(Address::from(banner_pa)), &mut buf) {
        Err(PartialError::Error(e)) => assert_eq!(e.kind, ErrorKind::Gone),
        other => panic!("read from a dead guest gave {other:?}"),
    }
    let write = with_qmp.phys_write(PhysicalAddress::plain(Address::from(page)), &value);
    assert!(matches!(write, Err(PartialError::Error(e)) if e.kind == ErrorKind::Gone), "{write:?}");
    let chained_read = chained.phys_read::<u64>(PhysicalAddress::plain(Address::from(banner_pa))).data();
    assert_eq!(chained_read.unwrap_err().kind, ErrorKind::Gone);
    assert_eq!(clone.phys_read::<u64>(PhysicalAddress::plain(Address::NULL)).data().unwrap_err().kind, ErrorKind::Gone);
    assert!(open_native(&by_name, None).is_err());
    let _ = std::fs::remove_dir_all(&plugins);
}

/// A live ARM64 guest: the `arm64-4k` fixture's kernel and CPU under `qemu-system-aarch64 -M
/// virt` (KASLR on: the machine gives a seed), RAM at 1 GiB by the machine's rules and by QMP
/// alike, and the `linux` layer on `qemu:NAME` (no dump) finding the kernel, its symbols at
/// the guest's randomised addresses and the processes of the guest's `ps`.
#[test]
fn live_arm64_guest() {
    let fixture = Fixture::load("arm64-4k");
    let options = xtask::fixture::default_fixture("arm64-4k").unwrap().options;
    let guest =
        LiveGuest::start_with(&format!("arm64-{}", std::process::id()), &options).unwrap_or_else(|e| panic!("{e}"));
    let release = guest_section(&guest, "uname").split_whitespace().nth(2).unwrap().to_owned();
    assert_eq!(release, fixture.meta("kernel_release"), "the live guest must run the fixture's kernel build");
    let banner = guest_section(&guest, "version").trim_end().to_owned();
    let (ram_base, ram) = (0x4000_0000u64, 256u64 << 20);

    let by_name = QemuTarget { name: Some(guest.name.clone()), pid: None };
    let plain = open_native(&by_name, None).unwrap();
    let mut with_qmp = open_native(&QemuTarget::default(), Some(&guest.qmp)).unwrap();
    assert_eq!(plain.qemu().command_line.target.as_deref(), Some("aarch64"));
    assert_eq!(plain.map(), with_qmp.map(), "the virt machine's rules and QMP agree");
    let ranges: Vec<(u64, u64)> =
        plain.map().ranges().iter().map(|r| (r.base.to_umem() as u64, r.size as u64)).collect();
    assert_eq!(ranges, [(ram_base, ram)]);
    assert_eq!((plain.cpu_count(), with_qmp.cpu_count()), (0, 1), "CPU state from QMP only");
    assert_eq!(with_qmp.x86_registers(0).unwrap_err().kind, ErrorKind::NotFound, "no x86 registers on an ARM64 guest");
    // The guest idles in its kernel: at EL1, in the kernel's text, on a kernel stack.
    let regs = with_qmp.aarch64_registers(0).unwrap();
    let text = live_symbol(&guest, "_text")..live_symbol(&guest, "_etext");
    assert_eq!(regs.pstate & 0b1100, 0b0100, "EL1 in PSTATE {:#x}", regs.pstate);
    assert!(text.contains(&regs.pc) && regs.sp >> 63 == 1, "{regs:x?} (kernel text {text:x?})");
    let hits = scan(&mut with_qmp, ram_base, ram, banner.as_bytes());
    assert!(!hits.is_empty(), "the banner the guest printed is in its RAM");

    let inventory = Inventory::builtin();
    for chain in
        [format!("qemu:{} -> linux", guest.name), format!("qemu:{},qmp={} -> linux", guest.name, guest.qmp.display())]
    {
        let mut linux = lists_the_processes_of_ps(&inventory, &chain, &guest);
        for name in ["linux_banner", "_text", "init_task"] {
            let va = linux.kernel_symbol(name).unwrap_or_else(|e| panic!("{chain}: {name}: {e}"));
            assert_eq!(va.to_umem() as u64, live_symbol(&guest, name), "{chain}: {name}");
        }
        let va = linux.kernel_symbol("linux_banner").unwrap();
        let view = linux.as_mut_impl_memoryview().unwrap();
        assert_eq!(view.read_raw(va, banner.len()).data().unwrap(), banner.as_bytes(), "{chain}");
    }
}

/// A live RISC-V guest (the kernel and options of the `riscv64-sv39` fixture) under
/// `qemu-system-riscv64 -M virt`: RAM at 2 GiB by the machine's rules and by QMP alike, the
/// registers from QMP (in the kernel's text, on a kernel stack, `satp` in the paging mode the
/// layer finds), and the `linux` layer on it, with and without QMP, lists the processes the
/// guest's own `ps` did.
#[test]
fn live_riscv_guest() {
    let options = xtask::fixture::default_fixture("riscv64-sv39").expect("a default fixture").options;
    let guest =
        LiveGuest::start_with(&format!("riscv-{}", std::process::id()), &options).unwrap_or_else(|e| panic!("{e}"));
    let by_name = QemuTarget { name: Some(guest.name.clone()), pid: None };
    let plain = open_native(&by_name, None).unwrap();
    let with_qmp = open_native(&by_name, Some(&guest.qmp)).unwrap();
    assert_eq!(plain.qemu().command_line.target.as_deref(), Some("riscv64"));
    assert_eq!(plain.map(), with_qmp.map(), "the virt machine's rules and QMP agree");
    let ranges: Vec<(u64, u64)> =
        plain.map().ranges().iter().map(|r| (r.base.to_umem() as u64, r.size as u64)).collect();
    assert_eq!(ranges, [(0x8000_0000, 256 << 20)], "RAM of the virt machine");
    assert_eq!((plain.cpu_count(), with_qmp.cpu_count()), (0, 1), "CPU state from QMP only");
    assert_eq!(with_qmp.x86_registers(0).unwrap_err().kind, ErrorKind::NotFound, "no x86 registers");
    assert_eq!(with_qmp.aarch64_registers(0).unwrap_err().kind, ErrorKind::NotFound, "no AArch64 registers");
    // The guest idles in its kernel: in the kernel's text, on a kernel stack.
    let regs = with_qmp.riscv_registers(0).unwrap();
    let text = live_symbol(&guest, "_text")..live_symbol(&guest, "_etext");
    assert!(text.contains(&regs.pc) && regs.sp() >> 63 == 1, "{regs:x?} (kernel text {text:x?})");
    let (satp_mode, _) = regs.paging().unwrap_or_else(|| panic!("satp names a paging mode: {regs:x?}"));
    let inventory = Inventory::builtin();
    for chain in
        [format!("qemu:{} -> linux", guest.name), format!("qemu:{},qmp={} -> linux", guest.name, guest.qmp.display())]
    {
        let linux = lists_the_processes_of_ps(&inventory, &chain, &guest);
        assert_eq!(linux.info().arch, satp_mode, "{chain}: the layer's paging mode is satp's");
    }
}

/// A QEMU started paused (`-S`), killed on drop.
struct PausedQemu {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl PausedQemu {
    /// `qemu-system-<target> -machine <machine> -m <mib>M`, paused.
    fn start(target: &str, machine: &str, mib: u64) -> PausedQemu {
        let dir = std::env::temp_dir().join(format!("mfqemu-{}-{target}-{machine}-{mib}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let socket = dir.join("qmp.sock");
        let emulator = format!("qemu-system-{target}");
        let child = die_with_parent(Command::new(&emulator).args([
            "-machine",
            machine,
            "-accel",
            "tcg",
            "-m",
            &format!("{mib}M"),
            "-S",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-name",
            &format!("memflow-test-layout-{}-{target}-{machine}-{mib}", std::process::id()),
            "-qmp",
            &format!("unix:{},server=on,wait=off", socket.display()),
        ]))
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{emulator} (cargo xtask deps installs it): {e}"));
        // The socket appears before the machine (and its RAM) exists; QEMU greets QMP clients
        // only once its main loop runs, after machine setup.
        wait_for(Duration::from_secs(30), "the QMP greeting", || Qmp::connect(&socket).is_ok());
        PausedQemu { child, socket, dir }
    }
}

impl Drop for PausedQemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// (guest base, size, host address) of every range, with `[lo, hi)` cut out.
fn ranges_outside(map: &MemoryMap, lo: u64, hi: u64) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for r in map.ranges() {
        let (base, end, host) = (r.base.to_umem() as u64, r.end().to_umem() as u64, r.backing as u64);
        for (s, e) in [(base, end.min(lo)), (base.max(hi), end)] {
            if s < e {
                out.push((s, e - s, host + (s - base)));
            }
        }
    }
    out
}

#[test]
fn machine_layouts_match_qemu() {
    const MIB: u64 = 1 << 20;
    const FOUR_GIB: u64 = 1 << 32;
    // (machine, RAM in MiB, RAM below 4 GiB): sizes around each x86 machine's split threshold.
    let cases = [
        ("q35", 256, 256 * MIB),
        ("q35", 2815, 2815 * MIB),
        ("q35", 2816, 2048 * MIB),
        ("q35", 5120, 2048 * MIB),
        ("pc", 256, 256 * MIB),
        ("pc", 3583, 3583 * MIB),
        ("pc", 3584, 3072 * MIB),
        ("pc", 5120, 3072 * MIB),
    ];
    for (machine, mib, below) in cases {
        let qemu = PausedQemu::start("x86_64", machine, mib);
        let target = QemuTarget { name: None, pid: Some(qemu.child.id()) };
        let mut rules = open_native(&target, None).unwrap();
        let with_qmp = open_native(&target, Some(&qemu.socket)).unwrap();
        let ranges = rules.map().ranges().to_vec();
        let above = mib * MIB - below;
        let expect: Vec<(u64, u64)> =
            [(0, below), (FOUR_GIB, above)].into_iter().filter(|(_, size)| *size > 0).collect();
        let got: Vec<(u64, u64)> = ranges.iter().map(|r| (r.base.to_umem() as u64, r.size as u64)).collect();
        assert_eq!(got, expect, "{machine} with {mib} MiB");
        // Before the firmware runs, QEMU shows ROM in the legacy window the rules map as RAM.
        assert_eq!(
            ranges_outside(rules.map(), 0xa0000, 0x10_0000),
            ranges_outside(with_qmp.map(), 0xa0000, 0x10_0000),
            "{machine} with {mib} MiB: rules and QMP disagree"
        );
        let mut probes = vec![0x10_0000, below - 8];
        if above > 0 {
            probes.extend([FOUR_GIB, FOUR_GIB + above - 8]);
        }
        for (i, addr) in probes.into_iter().enumerate() {
            let value = 0x5155_454d_0000_0000 | (mib << 8) | i as u64;
            rules.phys_write(PhysicalAddress::plain(Address::from(addr)), &value).unwrap();
            assert_eq!(qemu_reads_u64(&qemu.socket, addr), value, "{machine} with {mib} MiB at {addr:#x}");
        }
    }
}

/// The `virt` machines of `qemu-system-aarch64` (RAM at 1 GiB) and `qemu-system-riscv64` (at
/// 2 GiB): the layout from the machine rules is QEMU's own (QMP), and bytes written through
/// the connector at both ends of RAM are what QEMU reads there.
#[test]
fn virt_machine_layouts_match_qemu() {
    const MIB: u64 = 1 << 20;
    for (target, base) in [("aarch64", 0x4000_0000u64), ("riscv64", 0x8000_0000)] {
        for mib in [256, 3072] {
            let qemu = PausedQemu::start(target, "virt", mib);
            let target_of = QemuTarget { name: None, pid: Some(qemu.child.id()) };
            let mut rules = open_native(&target_of, None).unwrap();
            let with_qmp = open_native(&target_of, Some(&qemu.socket)).unwrap();
            let got: Vec<(u64, u64)> =
                rules.map().ranges().iter().map(|r| (r.base.to_umem() as u64, r.size as u64)).collect();
            assert_eq!(got, [(base, mib * MIB)], "{target} virt with {mib} MiB");
            assert_eq!(rules.map(), with_qmp.map(), "{target} virt with {mib} MiB: rules and QMP disagree");
            assert_eq!(with_qmp.qemu().command_line.target.as_deref(), Some(target));
            for (i, addr) in [base, base + mib * MIB - 8].into_iter().enumerate() {
                let value = 0x5155_454d_0000_0000 | (mib << 8) | i as u64;
                rules.phys_write(PhysicalAddress::plain(Address::from(addr)), &value).unwrap();
                assert_eq!(qemu_reads_u64(&qemu.socket, addr), value, "{target} virt with {mib} MiB at {addr:#x}");
            }
        }
    }
}
