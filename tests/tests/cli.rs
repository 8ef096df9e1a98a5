//! The `memflow` command-line tool, run as a user runs it (the built binary, real processes,
//! real dumps, real files), checked against the library's own answers and against what the
//! guest fixtures recorded about themselves.

#![allow(clippy::unnecessary_cast)] // casts between `umem` and `u64` are needed when `umem` is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use memflow_core::connector::CpuState;
use memflow_core::error::PartialResultExt;
use memflow_core::mem::MemoryView;
use memflow_core::os::{Os, Process};
use memflow_core::plugins::Inventory;
use memflow_core::prelude::OsInstanceArcBox;
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::Address;
use memflow_tests::{build_dir, shipped, temp_dir, Fixture};
use serde_json::Value;

/// The binary `cargo build --workspace` built (which `cargo xtask test` runs first).
fn memflow() -> Command {
    let path = build_dir().join("memflow");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (cargo xtask test does)",
        path.display()
    );
    let mut command = Command::new(path);
    // No plugin directories of the machine: the built-in plugins only, unless a test adds some.
    command.env("HOME", "/nonexistent").env("MEMFLOW_PLUGIN_PATH", "").env("NO_COLOR", "1");
    command
}

/// Runs `memflow ARGS` and returns its output, whatever the exit code.
fn run(args: &[&str]) -> Output {
    memflow().args(args).output().unwrap()
}

/// Runs `memflow ARGS --json`, which must succeed, and parses its standard output.
fn json(args: &[&str]) -> Value {
    let out = memflow().args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "memflow {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("memflow {args:?}: not JSON ({e})"))
}

fn hex(v: &Value) -> u64 {
    let text = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    u64::from_str_radix(text.strip_prefix("0x").unwrap(), 16).unwrap()
}

fn dump_chain(fx: &Fixture) -> String {
    format!("coredump:{} -> linux", fx.dir.join("dump.elf").display())
}

fn open(chain: &str) -> OsInstanceArcBox<'static> {
    Inventory::builtin().create_os_chain(chain).unwrap()
}

#[test]
fn ps_on_this_machine_lists_this_process_as_the_library_does() {
    let listed = json(&["ps"]);
    let me = std::process::id();
    let row = listed.as_array().unwrap().iter().find(|p| p["pid"] == me).expect("ps lists this test process");
    let info = open("native").process_info_by_pid(me).unwrap();
    assert_eq!(row["name"], &*info.name);
    assert_eq!(row["ppid"], info.ppid);
    assert_eq!(row["command_line"], &*info.command_line);
    // The table has the same process.
    let table = String::from_utf8(run(&["ps"]).stdout).unwrap();
    assert!(table.lines().next().unwrap().starts_with("PID"));
    assert!(table.lines().any(|l| l.split_whitespace().next() == Some(&me.to_string())));
}

#[test]
fn ps_on_a_dump_matches_the_guest_and_the_library() {
    let fx = Fixture::load("cloud-4l");
    let chain = dump_chain(&fx);
    let listed = json(&["-c", &chain, "ps"]);
    let ours: BTreeSet<(u64, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["pid"].as_u64().unwrap(), p["name"].as_str().unwrap().to_string()))
        .collect();
    let library: BTreeSet<(u64, String)> =
        open(&chain).process_info_list().unwrap().iter().map(|p| (p.pid as u64, p.name.to_string())).collect();
    assert_eq!(ours, library);
    // Every process the guest's own `ps` printed (but `ps` itself, gone since) is listed.
    let guest_ps: Vec<u64> = fx
        .section("ps")
        .lines()
        .skip(1)
        .filter(|l| !l.ends_with(" ps"))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(guest_ps.len() > 10);
    for pid in guest_ps {
        assert!(ours.iter().any(|(p, _)| *p == pid), "pid {pid} of the guest's ps is not listed");
    }
}

#[test]
fn ksyms_and_kmods_on_a_dump_match_kallsyms_and_the_library() {
    let fx = Fixture::load("cloud-4l");
    let chain = dump_chain(&fx);
    let syms = json(&["-c", &chain, "ksyms", "init_task"]);
    let syms = syms.as_array().unwrap();
    assert!(syms.iter().all(|s| s["name"].as_str().unwrap().contains("init_task")));
    let init_task = syms.iter().find(|s| s["name"] == "init_task").expect("init_task listed");
    assert_eq!(hex(&init_task["address"]), fx.symbol("init_task"));
    assert_eq!(init_task["module"], "");

    let kmods = json(&["-c", &chain, "kmods"]);
    let ours: Vec<(u64, String)> =
        kmods.as_array().unwrap().iter().map(|m| (hex(&m["base"]), m["name"].as_str().unwrap().to_string())).collect();
    let library: Vec<(u64, String)> =
        open(&chain).module_list().unwrap().iter().map(|m| (m.base.to_umem() as u64, m.name.to_string())).collect();
    assert!(!ours.is_empty());
    assert_eq!(ours, library);
}

#[test]
fn read_and_vtop_on_a_dump_equal_the_library() {
    let fx = Fixture::load("cloud-4l");
    let chain = dump_chain(&fx);
    let mut os = open(&chain);
    let init_task = fx.symbol("init_task");
    let at = format!("{init_task:#x}");

    let read = json(&["-c", &chain, "read", &at, "256"]);
    let want = os.as_mut_impl_memoryview().unwrap().read_raw(Address::from(init_task), 256).data().unwrap();
    let want_hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(read["data"], want_hex);
    assert_eq!(read["readable"][0]["length"], 256);
    // --raw writes exactly those bytes.
    let raw = run(&["-c", &chain, "read", &at, "256", "--raw"]);
    assert_eq!(raw.stdout, want);

    let vtop = json(&["-c", &chain, "vtop", &at]);
    let pa = os.as_mut_impl_virtualtranslate().unwrap().virt_to_phys(Address::from(init_task)).unwrap();
    assert_eq!(hex(&vtop["physical_address"]), pa.address.to_umem() as u64);
    let levels = vtop["levels"].as_array().unwrap();
    assert!(levels.len() >= 2 && levels.len() <= 4, "{levels:?}");
    assert!(levels[..levels.len() - 1].iter().all(|l| l["kind"] == "table"));
    assert_eq!(levels.last().unwrap()["kind"], "page");
    // Each level's table is where the entry above pointed.
    for pair in levels.windows(2) {
        assert_eq!(pair[0]["next"], pair[1]["table"]);
    }

    // A process's user address, through its own tables.
    let pid: u32 = fx.meta("marker_pid").parse().unwrap();
    let info = os.process_info_by_pid(pid).unwrap();
    let mut process = os.process_by_info(info.clone()).unwrap();
    let base = process.primary_module().unwrap().base;
    let vtop = json(&["-c", &chain, "vtop", &format!("{:#x}", base.to_umem()), "--pid", &pid.to_string()]);
    assert_eq!(hex(&vtop["root"]), info.table_root.to_umem() as u64);
    assert_eq!(hex(&vtop["physical_address"]), process.virt_to_phys(base).unwrap().address.to_umem() as u64);
    let read = json(&["-c", &chain, "read", &format!("{:#x}", base.to_umem()), "4", "--pid", &pid.to_string()]);
    assert_eq!(read["data"], "7f454c46");
}

#[test]
fn string_scan_finds_the_marker_at_the_right_process_and_addresses() {
    let fx = Fixture::load("cloud-4l");
    let chain = dump_chain(&fx);
    let marker = fx.section("marker").lines().find_map(|l| l.strip_prefix("marker=")).unwrap().to_owned();
    let pid: u32 = fx.meta("marker_pid").parse().unwrap();
    let hits = json(&["-c", &chain, "scan", "string", &marker, "--pid", &pid.to_string()]);
    let ours: BTreeSet<u64> = hits.as_array().unwrap().iter().map(|h| hex(&h["address"])).collect();
    assert!(hits.as_array().unwrap().iter().all(|h| h["pid"] == pid && h["process"] == "mfprobe_marker"));
    // The library's answer: every occurrence in the process's readable mappings.
    let mut os = open(&chain);
    let mut process = os.process_by_pid(pid).unwrap();
    let mut want = BTreeSet::new();
    for range in process.mapped_mem(-1).unwrap() {
        let bytes = process.read_raw(range.base, range.size as usize).data_part().unwrap();
        for (i, w) in bytes.windows(marker.len()).enumerate() {
            if w == marker.as_bytes() {
                want.insert(range.base.to_umem() as u64 + i as u64);
            }
        }
    }
    assert!(want.len() >= 2, "the marker is in argv, the environment and the heap");
    assert_eq!(ours, want);
    // A pattern with wildcards over the same bytes finds the same places.
    let spaced: Vec<String> =
        marker.bytes().enumerate().map(|(i, b)| if i % 3 == 1 { "??".into() } else { format!("{b:02x}") }).collect();
    let hits = json(&["-c", &chain, "scan", "pattern", &spaced.join(" "), "--pid", &pid.to_string()]);
    let by_pattern: BTreeSet<u64> = hits.as_array().unwrap().iter().map(|h| hex(&h["address"])).collect();
    assert!(by_pattern.is_superset(&want));

    // YARA: a text rule finds the same places; a hex rule with a wildcard and a regular
    // expression find them too; over all processes, the marker process is among those found.
    let dir = temp_dir("cli-yara");
    let rules = dir.join("marker.yar");
    let hex_pattern: Vec<String> =
        marker.bytes().enumerate().map(|(i, b)| if i == 2 { "??".into() } else { format!("{b:02X}") }).collect();
    // The marker is `MEMFLOW-MARKER-` and hexadecimal digits.
    let (head, tail) = marker.split_at(marker.len() / 2);
    std::fs::write(
        &rules,
        format!(
            "rule marker_text {{ strings: $m = \"{marker}\" condition: $m }}\n\
             rule marker_hex {{ strings: $h = {{ {} }} condition: $h }}\n\
             rule marker_regex {{ strings: $r = /{head}[0-9a-f]{{{}}}/ condition: $r }}\n\
             rule absent {{ strings: $a = \"no such bytes in any guest\" condition: $a }}\n",
            hex_pattern.join(" "),
            tail.len()
        ),
    )
    .unwrap();
    let pid_arg = pid.to_string();
    let hits = json(&["-c", &chain, "scan", "yara", rules.to_str().unwrap(), "--pid", &pid_arg]);
    let hits = hits.as_array().unwrap();
    assert!(hits.iter().all(|h| h["pid"] == pid && h["process"] == "mfprobe_marker" && h["rule"] != "absent"));
    for rule in ["marker_text", "marker_hex", "marker_regex"] {
        let found: BTreeSet<u64> = hits.iter().filter(|h| h["rule"] == rule).map(|h| hex(&h["address"])).collect();
        assert_eq!(found, want, "{rule}");
    }
    assert!(hits.iter().all(|h| h["length"] == marker.len()));
    let all = json(&["-c", &chain, "scan", "yara", rules.to_str().unwrap(), "--all-processes"]);
    let in_marker: BTreeSet<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["pid"] == pid && h["rule"] == "marker_text")
        .map(|h| hex(&h["address"]))
        .collect();
    assert_eq!(in_marker, want);
    // A rule error: usage (exit code 2), one line naming the file and line.
    std::fs::write(&rules, "rule ok { condition: true }\nrule broken { condition: $nowhere }\n").unwrap();
    let out = run(&["-c", &chain, "scan", "yara", rules.to_str().unwrap(), "--pid", &pid_arg]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.lines().count() == 1 && stderr.contains("marker.yar:2"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Checks a module that `dump --module` rebuilt (`result`, its `--json` report) against
/// `original`, the file it was loaded from at `base`: goblin and readelf parse it (readelf
/// without a complaint), and every read-only loaded segment holds the file's bytes, but for
/// the section header fields of the ELF header (dropped: the section headers were not loaded)
/// and the pages reported as holes (zeros). Returns how many bytes equal the file's.
fn check_rebuilt(result: &Value, original: &[u8], base: u64) -> usize {
    let path = Path::new(result["path"].as_str().unwrap());
    let rebuilt = std::fs::read(path).unwrap();
    let elf = goblin::elf::Elf::parse(&rebuilt).expect("goblin parses the rebuilt module");
    assert_eq!((elf.header.e_shoff, elf.header.e_shnum, elf.header.e_shstrndx), (0, 0, 0));
    let readelf = Command::new("readelf").args(["-h", "-l", "-d"]).arg(path).output().unwrap();
    assert!(readelf.status.success() && readelf.stderr.is_empty(), "{}", String::from_utf8_lossy(&readelf.stderr));
    let holes: Vec<(u64, u64)> =
        result["holes"].as_array().unwrap().iter().map(|h| (hex(&h["start"]), hex(&h["length"]))).collect();
    assert_eq!(holes.len() as u64, result["hole_runs"].as_u64().unwrap(), "every hole is listed");
    let in_hole = |addr: u64| holes.iter().any(|&(start, len)| addr >= start && addr - start < len);
    let file = goblin::elf::Elf::parse(original).unwrap();
    let loads: Vec<_> =
        file.program_headers.iter().filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD).collect();
    let first = loads.iter().min_by_key(|p| p.p_vaddr).unwrap();
    let link_base = first.p_vaddr - first.p_offset;
    let dropped = 0x28..0x30usize; // e_shoff; e_shnum and e_shstrndx follow at 0x3c..0x40
    let mut equal = 0;
    for p in loads.iter().filter(|p| p.p_flags & goblin::elf::program_header::PF_W == 0) {
        let runtime = base + (p.p_vaddr - link_base);
        for i in 0..p.p_filesz as usize {
            let at = p.p_offset as usize + i;
            let want = if dropped.contains(&at) || (0x3c..0x40).contains(&at) || in_hole(runtime + i as u64) {
                0
            } else {
                equal += 1;
                original[at]
            };
            assert_eq!(rebuilt[at], want, "file offset {at:#x} of {}", path.display());
        }
    }
    equal
}

#[test]
fn dump_module_rebuilds_libc_and_the_executable_of_a_native_process() {
    let mut child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id().to_string();
    let dir = temp_dir("cli-dump-module");
    let modules = json(&["modules", &pid]);
    for wanted in ["libc.so.6", "sleep"] {
        let module = modules.as_array().unwrap().iter().find(|m| m["name"] == wanted).expect("module listed");
        let out = dir.join(wanted);
        let result = json(&["dump", out.to_str().unwrap(), "--pid", &pid, "--module", wanted]);
        assert_eq!(result["format"], "module");
        assert_eq!(result["hole_pages"], 0, "a live process's loaded pages are all readable");
        let original = std::fs::read(module["path"].as_str().unwrap()).unwrap();
        let equal = check_rebuilt(&result, &original, hex(&module["base"]));
        assert!(equal > original.len() / 2, "{wanted}: {equal} bytes compared");
    }
    // A module the process does not have: not found (exit code 3), one line, no file.
    let missing = dir.join("missing");
    let out = run(&["dump", missing.to_str().unwrap(), "--pid", &pid, "--module", "no-such-module.so"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8(out.stderr).unwrap().contains("no-such-module.so"));
    assert!(!missing.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn dump_module_rebuilds_busybox_from_a_guest_dump() {
    let fx = Fixture::load("cloud-4l");
    let chain = dump_chain(&fx);
    let pid = fx.meta("marker_pid");
    let dir = temp_dir("cli-dump-module-guest");
    let modules = json(&["-c", &chain, "modules", pid]);
    let module = modules.as_array().unwrap().iter().find(|m| m["name"] == "busybox").expect("busybox is the marker's");
    let out = dir.join("busybox");
    let result = json(&["-c", &chain, "dump", out.to_str().unwrap(), "--pid", pid, "--module", "busybox"]);
    // The guest runs the host's busybox-static (the initramfs is built from it); pages the guest
    // never touched are not in its memory, and are reported.
    let original = std::fs::read("/bin/busybox").unwrap();
    let equal = check_rebuilt(&result, &original, hex(&module["base"]));
    assert!(equal > 256 << 10, "{equal} bytes compared");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The child of [`threads_of_a_native_process_are_those_of_proc_with_their_names`]: starts
/// three named threads, prints `ready`, and ends them when its standard input ends.
fn run_named_threads() {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Arc::new(std::sync::Mutex::new(wait));
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let wait = wait.clone();
            // std names the OS thread too (pthread_setname_np): that is what /proc shows.
            std::thread::Builder::new()
                .name(format!("mf-thread-{i}"))
                .spawn(move || wait.lock().unwrap().recv())
                .unwrap()
        })
        .collect();
    println!("ready");
    std::io::stdin().read_line(&mut String::new()).unwrap();
    drop(done);
    for t in threads {
        let _ = t.join().unwrap();
    }
}

#[test]
fn threads_of_a_native_process_are_those_of_proc_with_their_names() {
    if std::env::var_os("MEMFLOW_CLI_THREADS").is_some() {
        return run_named_threads();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "threads_of_a_native_process_are_those_of_proc_with_their_names", "--nocapture"])
        .args(["--test-threads=1"])
        .env("MEMFLOW_CLI_THREADS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines.next().expect("the child says it is ready").unwrap().ends_with("ready") {}
    let pid = child.id();
    let listed = json(&["threads", &pid.to_string()]);
    let ours: BTreeSet<(u64, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tid"].as_u64().unwrap(), t["name"].as_str().unwrap().to_string()))
        .collect();
    assert!(listed.as_array().unwrap().iter().all(|t| t["state"] == "alive"));
    // What the kernel says, read here.
    let proc: BTreeSet<(u64, String)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| {
            let tid: u64 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap();
            (tid, comm.trim_end().to_string())
        })
        .collect();
    assert_eq!(ours, proc);
    assert!(ours.contains(&(pid as u64, proc.iter().find(|t| t.0 == pid as u64).unwrap().1.clone())));
    for i in 0..3 {
        assert!(ours.iter().any(|t| t.1 == format!("mf-thread-{i}")), "mf-thread-{i} in {ours:?}");
    }
    let table = String::from_utf8(run(&["threads", &pid.to_string()]).stdout).unwrap();
    assert!(table.starts_with("TID") && table.contains("mf-thread-2"));
    writeln!(child.stdin.take().unwrap(), "done").unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn threads_of_every_guest_process_are_its_one_task() {
    // The guests' processes are single-threaded (busybox and kernel threads): each lists one
    // thread, the task itself (the multi-threaded walk is tested on synthetic memory in
    // memflow-core's linux::tasks).
    let fx = Fixture::load("cloud-4l");
    let chain = dump_chain(&fx);
    let mut os = open(&chain);
    let processes = os.process_info_list().unwrap();
    assert!(processes.len() > 10);
    for info in processes {
        let (pid, name) = (info.pid, info.name.to_string());
        let threads = os.process_by_info(info).unwrap().thread_list().unwrap();
        let threads: Vec<(u32, String)> = threads.iter().map(|t| (t.tid, t.name.to_string())).collect();
        assert_eq!(threads, [(pid, name)]);
    }
    // The command lists the same, for init and the marker process.
    for pid in ["1", fx.meta("marker_pid")] {
        let listed = json(&["-c", &chain, "threads", pid]);
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["tid"].to_string(), pid);
        assert_eq!(listed[0]["state"], "alive");
    }
}

/// The registers `info` should show for CPU 0 of `conn`, read through the library: its
/// family, the program counter and every register by name (x86: the ones checked here).
fn registers_of_cpu0(conn: &impl CpuState) -> (&'static str, u64, Vec<(String, u64)>) {
    let x = |i: usize, value: u64| (format!("x{i}"), value);
    if let Ok(r) = conn.aarch64_registers(0) {
        let mut want: Vec<_> = r.x.iter().enumerate().map(|(i, &v)| x(i, v)).collect();
        want.extend([("sp".into(), r.sp), ("pc".into(), r.pc), ("pstate".into(), r.pstate)]);
        return ("aarch64", r.pc, want);
    }
    if let Ok(r) = conn.riscv_registers(0) {
        assert!(!r.satp_valid, "the dumps record no satp");
        let mut want = vec![("pc".to_string(), r.pc)];
        want.extend((1..32).map(|i| x(i, r.x[i])));
        return ("riscv64", r.pc, want);
    }
    let r = conn.x86_registers(0).unwrap();
    let want = [("rsp", r.rsp), ("rip", r.rip), ("cr0", r.cr0), ("cr3", r.cr3), ("cr4", r.cr4), ("efer", r.efer)];
    ("x86", r.rip, want.iter().map(|&(n, v)| (n.to_string(), v)).collect())
}

#[test]
fn info_shows_the_registers_of_arm64_riscv_and_x86_dumps_as_the_library_reads_them() {
    for name in ["arm64-4k", "riscv64-sv39", "cloud-4l"] {
        let fx = Fixture::load(name);
        let conn = fx.open();
        let (arch, pc, want) = registers_of_cpu0(&conn);
        fx.check_pc(pc);

        let chain = format!("coredump:{}", fx.dir.join("dump.elf").display());
        let info = json(&["-c", &chain, "info"]);
        let cpus = info["cpus"].as_array().unwrap();
        assert_eq!(cpus.len(), conn.cpu_count(), "{name}");
        let cpu = &cpus[0];
        assert_eq!((cpu["cpu"].as_u64(), cpu["arch"].as_str()), (Some(0), Some(arch)), "{name}");
        let shown = cpu["registers"].as_object().unwrap();
        for (register, value) in &want {
            assert_eq!(hex(&shown[register.as_str()]), *value, "{name}: {register}");
        }
        if arch == "x86" {
            assert_eq!(shown.len(), 29, "{name}: {shown:?}");
            assert_eq!(cpu["paging"], "x64", "{name}");
            assert_eq!(hex(&cpu["table_root"]), u64::from_str_radix(&fx.meta("cpu0_cr3")[2..], 16).unwrap());
        } else {
            assert_eq!(shown.len(), want.len(), "{name}: {shown:?}");
            // Neither QEMU's ARM64 nor its RISC-V dumps record the translation registers.
            assert!(cpu["paging"].is_null() && cpu["table_root"].is_null(), "{name}: {cpu}");
        }

        // The table shows each CPU's program counter and stack pointer...
        let table = String::from_utf8(run(&["-c", &chain, "info"]).stdout).unwrap();
        let row: Vec<&str> = table
            .lines()
            .skip_while(|l| !l.starts_with("CPU "))
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: {table}"))
            .split_whitespace()
            .collect();
        let (pc_name, sp_name) =
            if arch == "x86" { ("rip", "rsp") } else { ("pc", if arch == "aarch64" { "sp" } else { "x2" }) };
        let value_of = |register: &str| want.iter().find(|(n, _)| n == register).map(|&(_, v)| format!("{v:#x}"));
        assert_eq!(row[..2], ["0", arch], "{name}: {table}");
        assert_eq!(
            (Some(row[4].to_string()), Some(row[5].to_string())),
            (value_of(pc_name), value_of(sp_name)),
            "{name}"
        );
        // ...and with --registers all of them, in the architecture's order.
        let table = String::from_utf8(run(&["-c", &chain, "info", "--registers"]).stdout).unwrap();
        let section: Vec<&str> =
            table.lines().skip_while(|l| *l != "cpu 0").skip(1).take_while(|l| l.starts_with("  ")).collect();
        assert_eq!(section.first().map(|l| l.split_whitespace().collect()), Some(vec!["arch", arch]), "{name}");
        let rows: Vec<(String, u64)> = section
            .iter()
            .filter_map(|l| {
                let (register, value) = l.trim().split_once(char::is_whitespace)?;
                let value = u64::from_str_radix(value.trim().strip_prefix("0x")?, 16).ok()?;
                Some((register.to_string(), value))
            })
            .collect();
        if arch == "x86" {
            assert_eq!(rows.len(), 29, "{name}: {rows:?}");
            assert!(want.iter().all(|w| rows.contains(w)), "{name}: {rows:?}");
        } else {
            assert_eq!(rows, want, "{name}");
        }
    }
}

/// Holds a `u32` on the heap for [`value_scan_narrows_to_the_value_a_child_changes`], which
/// runs this test binary again as the child: prints its address, sets the second value when a
/// line arrives on standard input, then waits for the end of the input.
fn hold_value(first: u32, second: u32) {
    let value = Box::new(std::hint::black_box(first));
    let address = &*value as *const u32 as usize;
    println!("address={address:#x}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let mut value = value;
    // SAFETY: `value` is a live, aligned u32 we own; volatile so the store really happens.
    unsafe { std::ptr::write_volatile(&mut *value, second) };
    println!("changed");
    line.clear();
    std::io::stdin().read_line(&mut line).unwrap();
    drop(std::hint::black_box(value));
}

#[test]
fn value_scan_narrows_to_the_value_a_child_changes() {
    if let Ok(values) = std::env::var("MEMFLOW_CLI_HOLD") {
        let (first, second) = values.split_once(',').unwrap();
        return hold_value(first.parse().unwrap(), second.parse().unwrap());
    }
    let first = rand::random::<u32>() | 0x8000_0001;
    let second = first ^ 0x0f0f_0000;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "value_scan_narrows_to_the_value_a_child_changes", "--nocapture", "--test-threads=1"])
        .env("MEMFLOW_CLI_HOLD", format!("{first},{second}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("the child prints its address").unwrap();
        // The harness prints `test NAME ... ` before it, on the same line.
        if let Some((_, a)) = line.split_once("address=") {
            break u64::from_str_radix(a.strip_prefix("0x").unwrap(), 16).unwrap();
        }
    };
    let dir = temp_dir("cli-value");
    let state = dir.join("scan.json");
    let state = state.to_str().unwrap();
    let pid = child.id().to_string();
    let addresses = |doc: &Value| -> BTreeSet<u64> {
        doc["shown"].as_array().unwrap().iter().map(|c| hex(&c["address"])).collect()
    };

    let found = json(&["scan", "value", "u32", &first.to_string(), "--pid", &pid, "--state", state]);
    assert!(addresses(&found).contains(&address), "{found}");
    let before = found["count"].as_u64().unwrap();

    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "change").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "changed");

    let changed = json(&["scan", "next", "changed", "--state", state]);
    assert!(addresses(&changed).contains(&address), "{changed}");
    assert!(changed["count"].as_u64().unwrap() <= before);
    let equal = json(&["scan", "next", "equal", &second.to_string(), "--state", state]);
    assert!(addresses(&equal).contains(&address), "{equal}");
    let second_text = second.to_string();
    assert!(equal["shown"].as_array().unwrap().iter().all(|c| c["value"] == second_text.as_str()));
    // Nothing changes any more: `changed` leaves no candidate.
    let none = json(&["scan", "next", "changed", "--state", state]);
    assert_eq!(none["count"], 0);

    // `write` changes it; `read` and a new scan's narrowing see the new value.
    json(&["scan", "value", "u32", &second.to_string(), "--pid", &pid, "--state", state]);
    let third = second ^ 0xff;
    let at = format!("{address:#x}");
    let le: String = third.to_le_bytes().iter().map(|b| format!("{b:02x} ")).collect();
    let written = json(&["write", &at, &le, "--pid", &pid]);
    assert_eq!(written["written"], 4);
    let read = json(&["read", &at, "4", "--pid", &pid]);
    assert_eq!(read["data"], le.replace(' ', ""));
    let equal = json(&["scan", "next", "equal", &third.to_string(), "--state", state]);
    assert_eq!(addresses(&equal), BTreeSet::from([address]), "{equal}");

    drop(stdin);
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plugins_install_builds_a_plugin_crate_and_installs_its_library() {
    let dir = temp_dir("cli-plugin-crate");
    let plugins = dir.join("plugins");
    let crate_dir = memflow_tests::repo_root().join("tests/plugin-fixtures/probe");
    // The SDK tests' release build directory: the build of memflow-core there is shared with
    // them, and the build lock of this test run's own target directory is held.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk/build/cargo");
    let out = memflow()
        .args(["plugins", "install", crate_dir.to_str().unwrap(), "--dir", plugins.to_str().unwrap(), "--json"])
        .env("CARGO", env!("CARGO"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let installed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(installed.as_array().unwrap().len(), 1, "{installed}");
    assert_eq!(installed[0]["ok"], true);
    assert_eq!(installed[0]["plugins"][0], "probe");
    let file = plugins.join("libmemflow_probe_fixture.so");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(target.join("release/libmemflow_probe_fixture.so")).unwrap()
    );

    // A directory without a Cargo.toml: each library in it, and none if one is refused.
    let from_dir = dir.join("from-dir");
    let listed = json(&["plugins", "install", plugins.to_str().unwrap(), "--dir", from_dir.to_str().unwrap()]);
    assert_eq!(listed[0]["file"], from_dir.join("libmemflow_probe_fixture.so").to_str().unwrap());
    std::fs::write(plugins.join("libnot_a_plugin.so"), b"not an ELF file").unwrap();
    let refused = run(&["plugins", "install", plugins.to_str().unwrap(), "--dir", dir.join("none").to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("libnot_a_plugin.so"));
    assert!(!dir.join("none").exists());
    // A crate that builds no library is refused with the reason.
    let empty = dir.join("empty-crate");
    std::fs::create_dir_all(empty.join("src")).unwrap();
    std::fs::write(
        empty.join("Cargo.toml"),
        "[package]\nname = \"empty\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(empty.join("src/lib.rs"), "").unwrap();
    let out = memflow()
        .args(["plugins", "install", empty.to_str().unwrap(), "--dir", dir.join("none").to_str().unwrap()])
        .env("CARGO", env!("CARGO"))
        .env("CARGO_TARGET_DIR", dir.join("empty-target"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cdylib"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(dir).unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn plugins_install_verify_and_remove_in_a_directory_and_refuse_with_the_reason() {
    let dir = temp_dir("cli-plugins");
    let plugins = dir.join("plugins");
    let plugins_arg = plugins.to_str().unwrap();
    // The test plugin: not built in, so the inventory lists its file (a file of a built-in
    // plugin of the same version is skipped).
    let library = shipped("probe_fixture");
    let installed = json(&["plugins", "install", library.to_str().unwrap(), "--dir", plugins_arg]);
    assert_eq!(installed[0]["ok"], true);
    assert_eq!(installed[0]["plugins"][0], "probe");
    let file: PathBuf = plugins.join("libmemflow_probe_fixture.so");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read(&file).unwrap(), std::fs::read(&library).unwrap());

    let verified = json(&["plugins", "verify", "--dir", plugins_arg]);
    assert_eq!(verified.as_array().unwrap().len(), 1);
    assert_eq!(verified[0]["ok"], true);
    // The inventory sees it where the CLI looks for plugins.
    let listed = memflow().args(["plugins", "list", "--json"]).env("MEMFLOW_PLUGIN_PATH", &plugins).output().unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(listed["plugins"].as_array().unwrap().iter().any(|p| p["file"] == file.to_str().unwrap()), "{listed}");

    // Group-writable: verify refuses it with the reason (exit code 4), list shows it refused.
    set_mode(&file, 0o775);
    let out = run(&["plugins", "verify", "--dir", plugins_arg, "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = verified[0]["reason"].as_str().unwrap();
    assert!(reason.contains("writable by group or others"), "{reason}");
    let listed = memflow().args(["plugins", "list", "--json"]).env("MEMFLOW_PLUGIN_PATH", &plugins).output().unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let refused = listed["refused"].as_array().unwrap().iter().find(|r| r["file"] == file.to_str().unwrap());
    assert!(refused.unwrap()["reason"].as_str().unwrap().contains("writable by group or others"), "{listed}");
    // ... and install refuses to copy a group-writable file, naming the reason on one line.
    let out = run(&["plugins", "install", file.to_str().unwrap(), "--dir", dir.join("other").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("writable by group or others") && stderr.lines().count() == 1, "{stderr}");
    assert!(!dir.join("other/libmemflow_probe_fixture.so").exists());

    // A file that belongs to another user.
    set_mode(&file, 0o755);
    std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
    let out = run(&["plugins", "verify", "--dir", plugins_arg, "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(verified[0]["reason"].as_str().unwrap().contains("belongs to uid 65534"), "{verified}");
    std::os::unix::fs::chown(&file, Some(0), None).unwrap();

    let removed = json(&["plugins", "remove", "probe", "--dir", plugins_arg]);
    assert_eq!(removed[0]["file"], file.to_str().unwrap());
    assert!(!file.exists());
    assert_eq!(run(&["plugins", "remove", "probe", "--dir", plugins_arg]).status.code(), Some(3));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn errors_are_one_line_with_documented_exit_codes() {
    let out = run(&["modules", "no-such-process-name"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-process-name") && stderr.contains("not found"), "{stderr}");
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(run(&["read", "0xzz", "4"]).status.code(), Some(2));
    assert_eq!(run(&["scan", "pattern", "90", "--pid", "1", "--limit", "0"]).status.code(), Some(2));
    assert_eq!(run(&["scan", "pattern", "?? ??", "--pid", "1"]).status.code(), Some(2));
    // A chain ending in a connector cannot list processes: a usage error naming the chain.
    let fx = Fixture::load("cloud-4l");
    let conn = format!("coredump:{}", fx.dir.join("dump.elf").display());
    let out = run(&["-c", &conn, "ps"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("ends in a connector"));
    let out = run(&["-c", "nosuchplugin", "ps"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8(out.stderr).unwrap().contains("nosuchplugin"));
}

#[test]
fn completions_and_man_page_come_from_the_definitions() {
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success());
    let bash = String::from_utf8(bash.stdout).unwrap();
    assert!(bash.contains("memflow") && bash.contains("vtop") && bash.contains("--chain"));
    let man = run(&["man"]);
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.contains(".TH memflow") && man.contains("Exit codes"), "{}", &man[..man.len().min(400)]);
}
