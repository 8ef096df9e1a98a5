//! `cargo xtask fixtures`: real QEMU guest physical-memory dumps (ELF cores) as test fixtures.
//!
//! ```text
//! cargo xtask fixtures [--all] [--timeout SECONDS] [--force]    # the default set (DEFAULT_SET)
//! cargo xtask fixtures NAME [--timeout SECONDS] [--force]       # one fixture of DEFAULT_SET
//! cargo xtask fixtures NAME [--arch amd64|arm64|riscv64] [--cpu qemu64|max] [--mem 256M] [--append "nokaslr ..."]
//!                           [--kernel [SUITE/]cloud|generic|generic-16k] [--timeout SECONDS] [--require-la57] [--force]
//! ```
//!
//! For each fixture: fetches the Debian kernel
//! (`xtask::kernel`), boots the guest (`xtask::guest`) under TCG, waits for its ready line,
//! dumps its memory over QMP (`dump-guest-memory`, ELF, `paging=false`) and quits; then writes
//! `target/fixtures/NAME/`:
//!
//! - `dump.elf`: ELF64 `ET_CORE`, one `PT_LOAD` per guest RAM range (`p_paddr` = guest
//!   physical address), notes `CORE`/`NT_PRSTATUS` and, for x86-64, `QEMU`/QEMUCPUState
//!   (CR0..CR4) per vCPU (an ARM64 dump has general registers only: no TTBR or TCR; a
//!   RISC-V dump `NT_PRSTATUS` only, with `pc` and x1..x31: no `satp`, which `meta.txt` takes
//!   from the monitor instead, `cpu0_satp=`);
//! - `serial.log`: the guest console, CRs stripped: the kernel's boot log, the sections
//!   `==== MEMFLOW-BEGIN <s> ====` .. `==== MEMFLOW-END <s> ====` ([`SECTIONS`]), then the
//!   ready line;
//! - `kallsyms.txt`: the complete `/proc/kallsyms` (real addresses), from the second serial port;
//! - `meta.txt`: `key=value` lines, the request (compared for cache hits) then observed facts
//!   (kernel package and version, la57, marker, control registers...). Written last: its
//!   presence marks a complete fixture.
//!
//! The fixture [`COMPRESSED_DUMPS_OF`] also gets
//! compressed dumps of the same guest moment (the guest is stopped before the first dump):
//! `dump.kdump-FORMAT` for each of QEMU's kdump formats that
//! `query-dump-guest-memory-capability` lists (QEMU 7.2 writes them in makedumpfile's
//! flattened form), and `dump.kdump-zlib-plain`, makedumpfile's reassembly (`-R`) of
//! `dump.kdump-zlib` into a plain kdump.
//!
//! The guest of [`AVML_CAPTURES_OF`] (the same guest as cloud-4l otherwise) takes two AVML
//! captures of itself (`xtask::avml`, run by `scripts/guest-init.sh` on `/proc/kcore` shortly
//! before the ELF dump, so not of the same moment), written to two NVMe disks:
//! `dump.avml-lime` (plain, LiME) and `dump.avml` (`--compress`). They are not taken in
//! cloud-4l itself: writing them fills the guest's RAM with page cache, and the hostile tests
//! build their fake structures in cloud-4l's zeroed RAM.
//!
//! `meta.txt` lists the extra dumps (`compressed_dumps=`).
//!
//! makedumpfile's page filtering (`-d 31`) is not among them: it refuses QEMU's ELF cores
//! ("Can't get the number of PT_LOAD"), and refiltering QEMU's kdump (1.7.2, with the
//! guest's VMCOREINFO given by `-i`) finds no `mem_map` and fails, or at `-d 1` writes an
//! empty dump and crashes with `-F`.
//!
//! A fixture whose `dump.elf` and `serial.log` exist and whose `meta.txt` starts with the same
//! request is kept without touching apt or QEMU. The kernel version is not part of the
//! request: a cached fixture keeps its kernel until `--force` (or deleting its directory),
//! even if apt has a newer one.

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memflow_core::connector::qemu::qmp::Qmp;
use serde_json::json;

use crate::arch::{self, Arch};
use crate::guest::{Guest, GuestOptions};
use crate::kernel::{Flavour, Kernel, KernelSpec};
use crate::{elfcore, interrupt, lock_file, log, output_of, root, sha256_of, Scratch};

/// Changes when what ends up in a fixture changes (invalidates every cached one). Changes to
/// `scripts/guest-init.sh` invalidate them by its hash in the request.
const FIXTURE_FORMAT: u32 = 2;

/// The sections `scripts/guest-init.sh` must have printed.
pub const SECTIONS: [&str; 12] = [
    "uname",
    "version",
    "cmdline",
    "cpuinfo",
    "ps",
    "marker",
    "kallsyms",
    "kallsyms-full",
    "modules",
    "iomem",
    "meminfo",
    "dmesg",
];

/// The fixture of the default set that also gets QEMU's compressed kdumps.
pub const COMPRESSED_DUMPS_OF: &str = "cloud-4l";

/// The fixture of the default set whose guest takes AVML captures of itself.
pub const AVML_CAPTURES_OF: &str = "cloud-4l-avml";

/// QEMU's kdump formats, written when the QEMU at hand lists them.
const QEMU_KDUMP_FORMATS: [&str; 3] = ["kdump-zlib", "kdump-lzo", "kdump-snappy"];

/// The AVML captures: (file, what the guest calls it in its `avml` section), one NVMe disk
/// each, in the order the guest sees the disks.
const AVML_DISKS: [(&str, &str); 2] = [("dump.avml-lime", "lime"), ("dump.avml", "compressed")];

/// Size of each (sparse) AVML disk: more than a capture of the 256 MiB guest.
const AVML_DISK_SIZE: u64 = 1 << 30;

/// How long QEMU may take to write the dump.
const DUMP_TIMEOUT: Duration = Duration::from_secs(600);

const TAG: &str = "fixture";

const USAGE: &str = "usage: cargo xtask fixtures [--all] [--timeout SECONDS] [--force]
       cargo xtask fixtures NAME [--timeout SECONDS] [--force]
       cargo xtask fixtures NAME [--arch amd64|arm64|riscv64] [--cpu qemu64|max] [--mem 256M] [--append \"nokaslr ...\"]
                                 [--kernel [SUITE/]cloud|generic|generic-16k] [--timeout SECONDS] [--require-la57] [--force]";

/// One fixture to build.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Its directory's name under `target/fixtures`.
    pub name: String,
    /// How its guest boots.
    pub options: GuestOptions,
    /// Fail unless the guest runs 5-level paging.
    pub require_la57: bool,
}

/// A fixture of the default set: (name, architecture, Debian suite (`None`: the host's
/// apt sources), kernel flavour, cpu, memory, appended command line, la57 required).
type KnownFixture =
    (&'static str, &'static Arch, Option<&'static str>, Flavour, &'static str, &'static str, &'static str, bool);

/// The default fixture set (`cargo xtask fixtures` without a NAME). Add lines here to extend it.
const DEFAULT_SET: [KnownFixture; 15] = [
    ("cloud-4l", &arch::X86_64, None, Flavour::Cloud, "qemu64", "256M", "nokaslr", false),
    // cloud-4l's guest taking AVML captures of itself (AVML_CAPTURES_OF).
    ("cloud-4l-avml", &arch::X86_64, None, Flavour::Cloud, "qemu64", "256M", "nokaslr", false),
    ("cloud-5l", &arch::X86_64, None, Flavour::Cloud, "max", "256M", "nokaslr", true),
    ("cloud-4l-kaslr", &arch::X86_64, None, Flavour::Cloud, "qemu64", "256M", "", false),
    ("generic-5l", &arch::X86_64, None, Flavour::Generic, "max", "256M", "nokaslr", true),
    // An Intel CPU model: the kernel isolates user and kernel page tables (PTI).
    ("pti-4l", &arch::X86_64, None, Flavour::Cloud, "Skylake-Client", "256M", "nokaslr", false),
    // More than 4 GiB of RAM: a memory map with a hole below 4 GiB (a 5 GiB dump file).
    ("cloud-4l-5g", &arch::X86_64, None, Flavour::Cloud, "qemu64", "5G", "nokaslr", false),
    // Debian 13's kernel 6.12: the layouts of kernels 6.4 and later (module memory types).
    ("trixie-4l-kaslr", &arch::X86_64, Some("trixie"), Flavour::Cloud, "qemu64", "256M", "", false),
    ("trixie-5l", &arch::X86_64, Some("trixie"), Flavour::Cloud, "max", "256M", "nokaslr", true),
    // ARM64, Debian 13's kernel with 4K pages, 48-bit virtual addresses (the kernel is built for
    // 52 but the CPU lacks LPA2), KASLR (the virt machine gives a seed). Boots in about 20s.
    ("arm64-4k", &arch::AARCH64, Some("trixie"), Flavour::Generic, "cortex-a72", "256M", "", false),
    // 16 KiB pages (a Neoverse N1, Graviton 2's core: the Cortex-A72 has no 16 KiB granule).
    ("arm64-16k", &arch::AARCH64, Some("trixie"), Flavour::Generic16k, "neoverse-n1", "256M", "", false),
    // RISC-V, Debian 13's kernel: QEMU's rv64 offers Sv57, which the kernel takes unless
    // `no4lvl` (Sv39) or `no5lvl` (Sv48) limits it; `satp` is recorded in meta.txt.
    ("riscv64-sv39", &arch::RISCV64, Some("trixie"), Flavour::Generic, "rv64", "256M", "no4lvl", false),
    ("riscv64-sv57", &arch::RISCV64, Some("trixie"), Flavour::Generic, "rv64", "256M", "", false),
    ("riscv64-sv48", &arch::RISCV64, Some("trixie"), Flavour::Generic, "rv64", "256M", "no5lvl", false),
    // arm64-4k's kernel on QEMU's `max` CPU, which has FEAT_LPA2: the kernel runs 52-bit virtual
    // addresses (5 levels of 4K tables).
    ("arm64-max", &arch::AARCH64, Some("trixie"), Flavour::Generic, "max", "256M", "", false),
];

/// The fixture of the default set named `name`, with the default timeout.
pub fn default_fixture(name: &str) -> Option<Fixture> {
    default_set(GuestOptions::default().timeout).find(|f| f.name == name)
}

fn default_set(timeout: u64) -> impl Iterator<Item = Fixture> {
    DEFAULT_SET.iter().map(move |&(name, arch, suite, flavour, cpu, mem, append, require_la57)| Fixture {
        name: name.into(),
        options: GuestOptions {
            arch,
            cpu: cpu.into(),
            mem: mem.into(),
            append: append.into(),
            kernel: KernelSpec { suite: suite.map(str::to_owned), flavour },
            timeout,
        },
        require_la57,
    })
}

/// Where the fixtures (and the kernel cache) are.
pub fn fixtures_dir() -> PathBuf {
    root().join("target/fixtures")
}

/// `cargo xtask fixtures ARGS`: builds the fixtures the arguments name (see the module
/// documentation), each unless cached.
pub fn main(args: &[String]) -> Result<(), String> {
    let mut options = GuestOptions::default();
    let (mut name, mut all, mut force, mut require_la57) = (None, false, false, false);
    // The first option given that describes one fixture (the default set has its own).
    let mut one_fixture_option = None;
    let mut args = args.iter().cloned();
    while let Some(arg) = args.next() {
        if options.take(&arg, &mut args)? {
            if arg != "--timeout" {
                one_fixture_option.get_or_insert(arg);
            }
            continue;
        }
        match arg.as_str() {
            "--all" => all = true,
            "--force" => force = true,
            "--require-la57" => {
                require_la57 = true;
                one_fixture_option.get_or_insert(arg);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with('-') => return Err(format!("unknown option: {arg}\n{USAGE}")),
            _ if name.is_some() => return Err(format!("only one NAME allowed\n{USAGE}")),
            _ => name = Some(arg),
        }
    }
    let fixtures = match (name, one_fixture_option) {
        (Some(_), _) if all => return Err("--all takes no NAME".into()),
        (Some(name), None) => match default_fixture(&name) {
            Some(known) => {
                vec![Fixture { options: GuestOptions { timeout: options.timeout, ..known.options }, ..known }]
            }
            None => vec![Fixture { name, options, require_la57 }],
        },
        (Some(name), _) => vec![Fixture { name, options, require_la57 }],
        (None, None) => default_set(options.timeout).collect(),
        (None, Some(option)) => return Err(format!("{option} needs a NAME\n{USAGE}")),
    };
    for fixture in &fixtures {
        build(fixture, force)?;
    }
    Ok(())
}

/// Builds `fixture` unless it is cached (and `force` is false), installing the system
/// packages of its architecture first (`xtask::deps::ensure_for`). SIGINT, SIGTERM and SIGHUP stop it cleanly meanwhile (see
/// `xtask::interrupt`).
pub fn build(fixture: &Fixture, force: bool) -> Result<(), String> {
    let _signals = interrupt::Catch::new();
    let name = fixture.name.as_str();
    fixture.options.check(name)?;
    let out = fixtures_dir().join(name);
    let request = request_meta(fixture)?;
    if !force && cache_hit(&out, &request) {
        log(TAG, name, format_args!("cache hit: {}", out.display()));
        return Ok(());
    }
    // Concurrent runs for the same fixture (e.g. parallel test jobs) wait for each other.
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _lock = lock_file(&out.join(".lock"))?;
    if !force && cache_hit(&out, &request) {
        log(TAG, name, format_args!("cache hit (built by a concurrent run): {}", out.display()));
        return Ok(());
    }
    crate::deps::ensure_for(fixture.options.arch)?;
    let kernel = fixture.options.kernel(TAG, name)?;
    // A previous, possibly different, fixture is invalid from here on.
    let _ = std::fs::remove_file(out.join("meta.txt"));

    let compressed = name == COMPRESSED_DUMPS_OF;
    let (avml, disks) = if name == AVML_CAPTURES_OF {
        (
            Some(crate::avml::ensure()?),
            AVML_DISKS.iter().map(|(file, _)| Scratch::at(out.join(format!("{file}.partial")))).collect(),
        )
    } else {
        (None, Vec::new())
    };
    let mut qemu_args = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        std::fs::File::create(disk.path())
            .and_then(|f| f.set_len(AVML_DISK_SIZE))
            .map_err(|e| format!("{}: {e}", disk.path().display()))?;
        qemu_args.push("-drive".to_string());
        qemu_args.push(format!("file={},if=none,id=avml{i},format=raw", disk.path().display()));
        qemu_args.push("-device".to_string());
        qemu_args.push(format!("nvme,drive=avml{i},serial=avml{i}"));
    }
    let qemu_args: Vec<&str> = qemu_args.iter().map(String::as_str).collect();
    let programs: Vec<&Path> = avml.iter().map(PathBuf::as_path).collect();
    let mut guest = Guest::boot(TAG, name, &fixture.options, &kernel, &qemu_args, &programs)?;
    log(TAG, name, "dumping memory");
    let partial = Scratch::at(out.join("dump.elf.partial"));
    let (kdumps, registers) =
        dump(&guest.qmp(), fixture.options.arch, partial.path(), compressed.then_some(out.as_path()))
            .map_err(|e| format!("memory dump over QMP failed: {e}"))?;
    // The dump ended with `quit`; the guest's drop kills a QEMU that takes longer.
    guest.wait_exit(Duration::from_secs(10));

    let serial =
        std::fs::read_to_string(guest.serial_raw()).map_err(|e| format!("serial console: {e}"))?.replace('\r', "");
    let mut meta = check_and_describe(fixture, &kernel, &guest, &serial, partial.path())? + &registers;
    let mut files: Vec<String> = kdumps.iter().map(|f| format!("dump.{f}")).collect();
    if kdumps.contains(&"kdump-zlib") {
        files.push(reassemble(name, &out, "dump.kdump-zlib", "dump.kdump-zlib-plain")?);
    }
    if !disks.is_empty() {
        files.extend(avml_captures(&serial, &disks, &out)?);
    }
    if !files.is_empty() {
        meta += &format!("compressed_dumps={}\n", files.join(","));
    }

    let dump_size = std::fs::metadata(partial.path()).map(|m| m.len()).unwrap_or_default();
    let write = |file: &str, bytes: &[u8]| std::fs::write(out.join(file), bytes).map_err(|e| format!("{file}: {e}"));
    publish(partial.path(), &out.join("dump.elf"))?;
    write("serial.log", serial.as_bytes())?;
    std::fs::copy(guest.kallsyms(), out.join("kallsyms.txt")).map_err(|e| format!("kallsyms.txt: {e}"))?;
    write("meta.txt", format!("{request}{meta}").as_bytes())?;
    let done = format!("done: {} ({} MiB dump, boot {:.1}s)", out.display(), dump_size >> 20, guest.boot_seconds);
    log(TAG, name, done);
    Ok(())
}

/// Checks what the guest reported (`serial`, its console with CRs removed; its kallsyms) and
/// the `dump`, and returns the observed part of `meta.txt`.
fn check_and_describe(
    fixture: &Fixture,
    kernel: &Kernel,
    guest: &Guest,
    serial: &str,
    dump: &Path,
) -> Result<String, String> {
    for s in SECTIONS {
        if !serial.lines().any(|l| l == format!("==== MEMFLOW-END {s} ====")) {
            return Err(format!("serial log lacks section '{s}' (see scripts/guest-init.sh)"));
        }
    }
    let body = |s: &str| section(serial, s).unwrap_or_default().trim_end_matches('\n');
    let value = |s: &str, key: &str| {
        body(s).lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).unwrap_or_default().to_owned()
    };
    let kallsyms_lines = value("kallsyms-full", "lines");
    if sha256_of(&guest.kallsyms())? != value("kallsyms-full", "sha256") {
        let got = std::fs::read(guest.kallsyms()).map_or(0, |k| k.iter().filter(|&&b| b == b'\n').count());
        return Err(format!("kallsyms.txt from the second serial port is incomplete ({got}/{kallsyms_lines} lines)"));
    }
    let arch = fixture.options.arch;
    let elf_info = elfcore::check(dump, arch.elf_machine)
        .map_err(|e| format!("dump.elf failed the ELF core sanity check: {e}"))?;
    let la57 = value("cpuinfo", "la57");
    if arch == &arch::X86_64 && fixture.options.cpu == "max" && la57 != "yes" {
        let cr4_la57 = elf_info.lines().find_map(|l| l.strip_prefix("cpu0_cr4_la57=")).unwrap_or_default();
        let message = format!("guest /proc/cpuinfo does not list la57 with -cpu max (cr4.la57={cr4_la57})");
        if fixture.require_la57 {
            return Err(message);
        }
        log(TAG, &fixture.name, format_args!("WARNING: {message}"));
    }
    if fixture.require_la57 && la57 != "yes" {
        return Err("guest has no la57 (--require-la57)".into());
    }

    let qemu_version = output_of(arch.qemu, &["--version"])?;
    let observed = [
        ("created", output_of("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])?.trim_end().to_owned()),
        ("kernel_package", kernel.package.clone()),
        ("kernel_version", kernel.version.clone()),
        ("kernel_release", body("uname").split_whitespace().nth(2).unwrap_or_default().to_owned()),
        ("kernel_dir", kernel.dir.strip_prefix(fixtures_dir()).unwrap_or(&kernel.dir).display().to_string()),
        ("kernel_cmdline", body("cmdline").to_owned()),
        ("linux_banner", body("version").to_owned()),
        ("qemu_version", qemu_version.lines().next().unwrap_or_default().to_owned()),
        ("guest_la57_cpuinfo", la57),
        ("marker", value("marker", "marker")),
        ("marker_pid", value("marker", "pid")),
        ("kallsyms_lines", kallsyms_lines),
        ("boot_seconds", format!("{:.1}", guest.boot_seconds)),
    ];
    let mut meta = String::from("# ---- observed (not compared for cache hits) ----\n");
    for (key, value) in observed {
        meta += &format!("{key}={value}\n");
    }
    Ok(meta + &elf_info)
}

/// The part of `meta.txt` that must match for a cache hit, in this order.
fn request_meta(fixture: &Fixture) -> Result<String, String> {
    let init_sha256 = sha256_of(&root().join("scripts/guest-init.sh"))?;
    let o = &fixture.options;
    let mut request = format!(
        "fixture_format={FIXTURE_FORMAT}\nname={}\nmachine={}\ncpu={}\nmem={}\nappend={}\nkernel={}\ninit_sha256={init_sha256}\n",
        fixture.name,
        o.arch.machine,
        o.cpu,
        o.mem,
        o.append,
        o.kernel
    );
    if fixture.name == COMPRESSED_DUMPS_OF {
        request += "compressed=qemu-kdump,makedumpfile-reassembled\n";
    }
    if fixture.name == AVML_CAPTURES_OF {
        request += &format!("avml={}\n", crate::avml::VERSION);
    }
    Ok(request)
}

/// True if `out` holds a complete fixture made for `request`.
fn cache_hit(out: &Path, request: &str) -> bool {
    let non_empty = |file: &str| std::fs::metadata(out.join(file)).is_ok_and(|m| m.len() > 0);
    let Ok(meta) = std::fs::read_to_string(out.join("meta.txt")) else { return false };
    let keys: Vec<&str> = request.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    let requested: Vec<&str> =
        meta.lines().filter(|l| l.split_once('=').is_some_and(|(k, _)| keys.contains(&k))).collect();
    non_empty("dump.elf") && non_empty("serial.log") && requested == request.lines().collect::<Vec<_>>()
}

/// Dumps the guest's memory through its QMP socket `socket` into `file` (ELF, physical
/// memory) and, with `kdump_dir`, into `kdump_dir/dump.FORMAT` for each of
/// [`QEMU_KDUMP_FORMATS`] that this QEMU writes, all of the same stopped guest of `arch`;
/// then tells QEMU to quit. Returns the kdump formats written and the `meta.txt` lines of
/// `arch`'s monitor registers.
fn dump(
    socket: &Path,
    arch: &Arch,
    file: &Path,
    kdump_dir: Option<&Path>,
) -> Result<(Vec<&'static str>, String), String> {
    let qmp_error = |e| format!("QMP: {e}");
    let mut qmp = Qmp::connect(socket).map_err(qmp_error)?;
    qmp.execute("stop", None).map_err(qmp_error)?;
    let registers = monitor_registers(&mut qmp, arch)?;
    dump_one(&mut qmp, "elf", file)?;
    let mut kdumps = Vec::new();
    if let Some(dir) = kdump_dir {
        let capability = qmp.execute("query-dump-guest-memory-capability", None).map_err(qmp_error)?;
        for format in QEMU_KDUMP_FORMATS {
            if !capability["formats"].as_array().is_some_and(|f| f.iter().any(|v| v == format)) {
                eprintln!("this QEMU does not write {format}; skipped");
                continue;
            }
            let partial = Scratch::at(dir.join(format!("dump.{format}.partial")));
            // QEMU 7.2 once failed a kdump right after the ELF dump ("failed to write start
            // flat header") and wrote it on the next try: one more try before giving up.
            if let Err(e) = dump_one(&mut qmp, format, partial.path()) {
                eprintln!("{format} dump failed ({e}); trying once more");
                dump_one(&mut qmp, format, partial.path())?;
            }
            publish(partial.path(), &dir.join(format!("dump.{format}")))?;
            kdumps.push(format);
        }
    }
    // QEMU may close the connection before it replies.
    let _ = qmp.execute("quit", None);
    Ok((kdumps, registers))
}

/// `cpu0_<name>=<hex>` lines for `arch`'s [`Arch::monitor_registers`], from the monitor's
/// `info registers` (lines ` name  0000000000000000`) of the stopped guest.
fn monitor_registers(qmp: &mut Qmp, arch: &Arch) -> Result<String, String> {
    if arch.monitor_registers.is_empty() {
        return Ok(String::new());
    }
    let reply = qmp
        .execute("human-monitor-command", Some(json!({ "command-line": "info registers" })))
        .map_err(|e| format!("QMP: {e}"))?;
    let text = reply.as_str().unwrap_or_default();
    let mut meta = String::new();
    for name in arch.monitor_registers {
        let value = text
            .lines()
            .find_map(|l| {
                let mut fields = l.split_whitespace();
                (fields.next() == Some(*name)).then(|| fields.next()).flatten()
            })
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| format!("'info registers' shows no {name}: {text}"))?;
        meta += &format!("cpu0_{name}=0x{value}\n");
    }
    Ok(meta)
}

/// One `dump-guest-memory` of the (stopped) guest in `format` into `file`.
fn dump_one(qmp: &mut Qmp, format: &str, file: &Path) -> Result<(), String> {
    let qmp_error = |e| format!("QMP: {e}");
    let arguments =
        json!({ "paging": false, "protocol": format!("file:{}", file.display()), "detach": true, "format": format });
    qmp.execute("dump-guest-memory", Some(arguments)).map_err(qmp_error)?;
    let start = Instant::now();
    let event = loop {
        interrupt::check()?;
        if let Some(event) = qmp.wait_event("DUMP_COMPLETED", Duration::from_secs(1)).map_err(qmp_error)? {
            break event;
        }
        if start.elapsed() > DUMP_TIMEOUT {
            return Err(format!("{format} dump did not complete within {}s", DUMP_TIMEOUT.as_secs()));
        }
    };
    if let Some(error) = event["data"].get("error") {
        return Err(format!("{format} dump failed: {error}"));
    }
    let status = qmp.execute("query-dump", None).map_err(qmp_error)?;
    if status["status"] != "completed" {
        return Err(format!("query-dump reports {status}"));
    }
    eprintln!("{format} dump completed: {} bytes of guest memory -> {}", status["completed"], file.display());
    Ok(())
}

/// Makes the dump `partial` readable by all (QEMU creates dumps 0400; the tests may not run
/// as root) and renames it to `file`.
fn publish(partial: &Path, file: &Path) -> Result<(), String> {
    std::fs::set_permissions(partial, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(partial, file).map_err(|e| format!("{}: {e}", file.display()))
}

/// Cuts the AVML disks to their captures (after the guest's `avml` section reported
/// `NAME status=0` for each), checks each starts with its format's magic, and publishes them;
/// returns their file names.
fn avml_captures(serial: &str, disks: &[Scratch], out: &Path) -> Result<Vec<String>, String> {
    let report = section(serial, "avml").ok_or("the guest printed no avml section (is /bin/avml in the initramfs?)")?;
    let mut files = Vec::new();
    for ((file, what), disk) in AVML_DISKS.iter().zip(disks) {
        if !report.lines().any(|l| l == format!("{what} status=0")) {
            return Err(format!("avml {what} failed in the guest: {report:?}"));
        }
        let image = std::fs::OpenOptions::new().read(true).write(true).open(disk.path());
        let image = image.map_err(|e| format!("{}: {e}", disk.path().display()))?;
        let mut magic = [0u8; 4];
        image.read_exact_at(&mut magic, 0).map_err(|e| format!("{file}: {e}"))?;
        let want: &[u8; 4] = if *what == "lime" { b"EMiL" } else { b"AVML" };
        if &magic != want {
            return Err(format!(
                "{file} starts with {magic:?}, not {want:?}: the guest saw the disks in another order"
            ));
        }
        let len = capture_len(&image).map_err(|e| format!("{file}: {e}"))?;
        image.set_len(len).map_err(|e| format!("{}: {e}", disk.path().display()))?;
        publish(disk.path(), &out.join(file))?;
        files.push(file.to_string());
    }
    Ok(files)
}

/// The length of the LiME or AVML capture at the start of `disk`, a zeroed disk larger than
/// it: its blocks (a 32-byte header with the range, then the bytes, or for AVML the Snappy
/// frame chunks holding them and their length as a `u64`), walked up to the first bytes that
/// are not a block header.
fn capture_len(disk: &std::fs::File) -> Result<u64, String> {
    let read = |at: u64, buf: &mut [u8]| disk.read_exact_at(buf, at).map_err(|e| format!("at {at:#x}: {e}"));
    let u64_at = |at: u64| -> Result<u64, String> {
        let mut b = [0u8; 8];
        read(at, &mut b)?;
        Ok(u64::from_le_bytes(b))
    };
    let mut at = 0u64;
    loop {
        let mut header = [0u8; 32];
        read(at, &mut header)?;
        let size = u64_at(at + 16)?.wrapping_sub(u64_at(at + 8)?).wrapping_add(1);
        at = match &header[..4] {
            b"EMiL" => at + 32 + size,
            b"AVML" => {
                let frames = at + 32;
                let (mut p, mut done) = (frames, 0u64);
                while done < size {
                    // Type, 24-bit length, then for data chunks a CRC and the data.
                    let mut chunk = [0u8; 13];
                    read(p, &mut chunk)?;
                    let len = u64::from(chunk[1]) | u64::from(chunk[2]) << 8 | u64::from(chunk[3]) << 16;
                    done += match chunk[0] {
                        // Compressed data: the uncompressed length is the varint after the CRC.
                        0x00 => {
                            let mut n = 0u64;
                            for (i, b) in chunk[8..].iter().enumerate() {
                                n |= u64::from(b & 0x7f) << (7 * i);
                                if b & 0x80 == 0 {
                                    break;
                                }
                            }
                            n
                        }
                        0x01 => len - 4,
                        _ => 0,
                    };
                    p += 4 + len;
                }
                if u64_at(p)? != p - frames {
                    return Err(format!("the AVML block at {at:#x} does not end with the length of its frames"));
                }
                p + 8
            }
            _ => return Ok(at),
        };
    }
}

/// Writes `out/to`, makedumpfile's reassembly (`-R`) of the flattened kdump `out/from` into a
/// plain one; returns `to`.
fn reassemble(name: &str, out: &Path, from: &str, to: &'static str) -> Result<String, String> {
    log(TAG, name, format_args!("makedumpfile -R {to} < {from}"));
    let partial = Scratch::at(out.join(format!("{to}.partial")));
    let _ = std::fs::remove_file(partial.path());
    let input = std::fs::File::open(out.join(from)).map_err(|e| format!("{from}: {e}"))?;
    let mut command = std::process::Command::new("makedumpfile");
    command.arg("-R").arg(partial.path()).stdin(input).stdout(std::process::Stdio::null());
    crate::run_command(&mut command).map_err(|e| format!("makedumpfile -R for {to}: {e}"))?;
    publish(partial.path(), &out.join(to))?;
    Ok(to.to_string())
}

/// The lines a guest printed between `==== MEMFLOW-BEGIN name ====` and its END line in
/// `serial` (its console output, CRs removed), if it printed both.
pub fn section<'a>(serial: &'a str, name: &str) -> Option<&'a str> {
    let begin = format!("==== MEMFLOW-BEGIN {name} ====\n");
    let start = serial.find(&begin)? + begin.len();
    let len = serial[start..].find(&format!("==== MEMFLOW-END {name} ===="))?;
    Some(&serial[start..start + len])
}
