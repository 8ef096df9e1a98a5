//! The hostile corpus: input an attacker controls (a compromised guest's memory, a dump file,
//! a chain string) must end in an error code from the C API, in bounded time and memory,
//! never in an abort, a signal, a hang or an unbounded allocation.
//!
//! Every case is generated deterministically here, into `target/hostile/`: synthetic dump
//! files built byte by byte (`hostile/files.rs`) and patches of a real guest dump (the
//! `cloud-4l` fixture) at the kernel structures memflow's own Linux layer finds in it
//! (`hostile/dump.rs`). Each case runs `tests/c/hostile_runner.c`, a C program compiled
//! against `include/memflow.h` and the shared library, as a subprocess with an address space
//! limit ([`memory_limit`]) and a time limit ([`time_limit`]); the limits bound a hang or a
//! runaway allocation, they are not performance assertions. A case passes when the runner
//! exited normally and the C API's result is what the case expects: an error of the expected
//! kind, or (for the controls) the same processes as the unmodified dump. All cases run; the
//! test prints a table of every outcome and then fails listing the cases that did not pass.
//!
//! Knobs: `MEMFLOW_HOSTILE_FILTER=text` runs only the cases whose class or name contains
//! `text`; `MEMFLOW_HOSTILE_TIMEOUT=seconds` changes the time limit (default 60);
//! `MEMFLOW_HOSTILE_KEEP=1` keeps the generated files for reproducing a case by hand
//! (`target/hostile/hostile_runner OP CHAIN [ARG]`).

#![allow(clippy::unnecessary_cast)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

#[path = "hostile/dump.rs"]
mod dump;
#[path = "hostile/files.rs"]
mod files;

use std::fmt::Write as _;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memflow_core::error::{Error, ErrorKind};
use memflow_tests::{build_dir, repo_root};

use dump::{Dump, Patch, Slot, WorkCopy};
use files::{cpu_notes, elf_core, lime, pages_at, token_flood_memory, tokens, DIGIT_TOKENS};

/// Address space a case may use on top of the size of its input file (which the connector
/// maps): 1.5 GiB. Far more than any case needs when sizes are bounded (the largest
/// legitimate allocations are a kernel image of at most 256 MiB and a 512 MiB page cache),
/// far less than an unbounded allocation asks for.
const MEMORY_HEADROOM: u64 = 3 << 29;

/// Chains longer than this go to the runner in a file (the kernel limits one argument to
/// 128 KiB).
const MAX_ARG_CHAIN: usize = 64 << 10;

/// `unknown` kinds: any error passes.
const ANY: &[ErrorKind] = &[];
/// What a corrupt list or an absurd count of guest data should give.
const BOUNDED: &[ErrorKind] = &[ErrorKind::LimitExceeded, ErrorKind::Malformed];
/// What an absurd size given by the user should give.
const USER_SIZE: &[ErrorKind] = &[ErrorKind::InvalidArgument, ErrorKind::LimitExceeded, ErrorKind::OutOfMemory];

/// The time a case may take before it counts as hung.
fn time_limit() -> Duration {
    let secs = std::env::var("MEMFLOW_HOSTILE_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// The address space limit of a case reading `file`: its size plus [`MEMORY_HEADROOM`].
fn memory_limit(file: Option<&Path>) -> u64 {
    let size = file.and_then(|f| std::fs::metadata(f).ok()).filter(|m| m.is_file()).map_or(0, |m| m.len());
    size + MEMORY_HEADROOM
}

/// Builds the runner in `dir` against the shared library (under its soname, as installed)
/// and `include/`, with warnings as errors.
fn build_runner(dir: &Path) -> PathBuf {
    let lib = build_dir().join("libmemflow_ffi.so");
    assert!(lib.exists(), "{} is missing: run `cargo build --workspace` first", lib.display());
    let libdir = dir.join("lib");
    std::fs::create_dir_all(&libdir).unwrap();
    let soname = format!("libmemflow_ffi.so.{}", memflow_ffi::MF_ABI_VERSION);
    std::fs::copy(&lib, libdir.join(&soname)).unwrap();
    let link = libdir.join("libmemflow_ffi.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&soname, &link).unwrap();
    let exe = dir.join("hostile_runner");
    let status = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-I"])
        .arg(repo_root().join("include"))
        .arg(repo_root().join("tests/c/hostile_runner.c"))
        .arg("-L")
        .arg(&libdir)
        .arg("-lmemflow_ffi")
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("cannot run cc");
    assert!(status.success(), "compiling tests/c/hostile_runner.c failed");
    exe
}

/// What a case must end in.
#[derive(Clone, Debug)]
enum Expect {
    /// An error code of one of these kinds (any kind if empty) whose message contains the
    /// text, if given.
    Fails(&'static [ErrorKind], Option<&'static str>),
    /// Success, listing exactly the processes of the unmodified dump.
    Same,
    /// Any result the C API returns (error or success); a success lists no more than twice
    /// the processes of the unmodified dump.
    Returns,
}

/// Where a case's input comes from.
enum Source {
    /// Only the chain string.
    None,
    /// An existing file or device (read-only).
    Path(PathBuf),
    /// A generated file, named and made.
    File(String, Box<dyn Fn(&Path)>),
    /// The writable copy of the real dump with these bytes patched in for the case.
    Patched(Patch),
}

/// One case of the corpus: what to generate, which operation of the runner to call on which
/// chain (`{}` stands for the input file), and what must come out.
struct Case {
    class: &'static str,
    name: String,
    source: Source,
    chain: String,
    op: &'static str,
    arg: Option<String>,
    expect: Expect,
}

fn case(class: &'static str, name: impl Into<String>, source: Source, chain: impl Into<String>) -> Case {
    Case { class, name: name.into(), source, chain: chain.into(), op: "os", arg: None, expect: Expect::Returns }
}

impl Case {
    fn op(mut self, op: &'static str, arg: Option<&str>) -> Case {
        self.op = op;
        self.arg = arg.map(str::to_owned);
        self
    }

    fn fails(mut self, kinds: &'static [ErrorKind]) -> Case {
        self.expect = Expect::Fails(kinds, None);
        self
    }

    fn fails_saying(mut self, kinds: &'static [ErrorKind], text: &'static str) -> Case {
        self.expect = Expect::Fails(kinds, Some(text));
        self
    }
}

/// A generated file from `bytes()`.
fn file(name: impl Into<String>, bytes: impl Fn() -> Vec<u8> + 'static) -> Source {
    Source::File(name.into(), Box::new(move |path| std::fs::write(path, bytes()).unwrap()))
}

/// The chain that opens a dump file with the Linux layer.
const LINUX: &str = "coredump:'{}' -> linux";

/// Class 1: physical memory at huge addresses, or spread thin over the address space. The
/// layer must look at what exists, not at the span: "no kernel image found".
fn huge_addresses() -> Vec<Case> {
    let mut cases = vec![];
    for bits in [40u32, 52, 63] {
        let at = 1u64 << bits;
        let lime_file = file(format!("page-at-2^{bits}.lime"), move || lime(&pages_at([at])));
        cases.push(case("1-huge-address", format!("LiME, one page at 2^{bits}"), lime_file, LINUX));
        let elf_file = file(format!("page-at-2^{bits}.elf"), move || elf_core(&pages_at([at]), &[], None));
        cases.push(case("1-huge-address", format!("ELF, one page at 2^{bits}"), elf_file, LINUX));
    }
    let spread = || pages_at((0..4096u64).map(|i| (i << 48) | (i << 20)));
    cases.push(case(
        "1-huge-address",
        "LiME, 4096 pages spread over 2^60",
        file("spread.lime", move || lime(&spread())),
        LINUX,
    ));
    let spread = || pages_at((0..4000u64).map(|i| (i << 48) | (i << 20)));
    cases.push(case(
        "1-huge-address",
        "ELF, 4000 PT_LOADs spread over 2^60",
        file("spread.elf", move || elf_core(&spread(), &[], None)),
        LINUX,
    ));
    cases.push(case(
        "1-huge-address",
        "ELF, 4 KiB at 0 and one page at 2^63-4K",
        file("low-and-top.elf", || elf_core(&pages_at([0, (1 << 63) - 0x1000]), &[], None)),
        LINUX,
    ));
    cases.into_iter().map(|c| c.fails_saying(&[ErrorKind::NotFound], "kernel")).collect()
}

/// Class 2, synthetic: page tables that map 16 to 256 MiB of kallsyms-like digit tokens
/// where the kernel image goes, and no real table.
fn token_floods() -> Vec<Case> {
    let mut cases = vec![];
    for mib in [16usize, 64, 256] {
        let name = format!("tokens-{mib}m.elf");
        cases.push(
            case(
                "2-kallsyms",
                format!("{mib} MiB of digit tokens mapped as the kernel image"),
                file(name, move || elf_core(&[(0, token_flood_memory(mib))], &[], None)),
                LINUX,
            )
            .fails(&[ErrorKind::NotFound, ErrorKind::LimitExceeded]),
        );
    }
    cases.push(
        case(
            "2-kallsyms",
            "LiME: 256 MiB of digit tokens mapped as the kernel image",
            file("tokens-256m.lime", || lime(&[(0, token_flood_memory(256))])),
            LINUX,
        )
        .fails(&[ErrorKind::NotFound, ErrorKind::LimitExceeded]),
    );
    cases
}

/// Class 5: files that are not dumps, or dumps that are cut, or claim absurd counts.
fn bad_files(dir: &Path, fixture: &Path) -> Vec<Case> {
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo {}", fifo.display());
    let fixture_for = |len: usize| {
        let fixture = fixture.to_path_buf();
        move |path: &Path| {
            let mut bytes = vec![0u8; len];
            std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(&fixture).unwrap(), &mut bytes, 0).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    };
    let no_kernel = || vec![(0u64, vec![0u8; 1 << 20])];
    // The real compressed kdump of the same guest, cut or with a header field patched.
    let kdump = fixture.with_file_name("dump.kdump-zlib-plain");
    let kdump_with = move |cut: usize, patch: Option<(usize, u64)>| {
        let kdump = kdump.clone();
        move |path: &Path| {
            let mut bytes = std::fs::read(&kdump).unwrap();
            bytes.truncate(cut);
            if let Some((at, value)) = patch {
                bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
            }
            std::fs::write(path, bytes).unwrap();
        }
    };
    // kdump_sub_header.max_mapnr_64 (the sub header is the second 4 KiB block).
    let max_mapnr = 4096 + 96;
    vec![
        case(
            "5-files",
            "the real compressed kdump cut at 1 MiB",
            Source::File("cut-1m.kdump".into(), Box::new(kdump_with(1 << 20, None))),
            LINUX,
        )
        .fails(&[ErrorKind::Truncated]),
        case(
            "5-files",
            "the real compressed kdump claiming 2^62 pages",
            Source::File("mapnr.kdump".into(), Box::new(kdump_with(usize::MAX, Some((max_mapnr, 1 << 62))))),
            LINUX,
        )
        .fails(&[ErrorKind::Malformed]),
        case("5-files", "a FIFO as the dump", Source::Path(fifo), LINUX).fails(ANY),
        case("5-files", "a directory as the dump", Source::Path(dir.to_path_buf()), LINUX).fails(ANY),
        case("5-files", "/dev/zero as the dump", Source::Path("/dev/zero".into()), LINUX).fails(ANY),
        case("5-files", "/dev/null as the dump", Source::Path("/dev/null".into()), LINUX).fails(ANY),
        case(
            "5-files",
            "the real dump cut at 64 MiB",
            Source::File("cut-64m.elf".into(), Box::new(fixture_for(64 << 20))),
            LINUX,
        )
        .fails(ANY),
        case(
            "5-files",
            "the real dump cut at 4 KiB",
            Source::File("cut-4k.elf".into(), Box::new(fixture_for(4096))),
            LINUX,
        )
        .fails(ANY),
        case(
            "5-files",
            "5000 CPU notes and no kernel",
            file("cpus-5000.elf", move || elf_core(&no_kernel(), &cpu_notes(5000), None)),
            LINUX,
        )
        .fails_saying(ANY, "kernel"),
        case(
            "5-files",
            "20000 notes",
            file("notes-20000.elf", move || elf_core(&no_kernel(), &cpu_notes(20000), None)),
            LINUX,
        )
        .fails(ANY),
        case(
            "5-files",
            "ELF e_phnum 0xffff (PN_XNUM) without sections",
            file("phnum-xnum.elf", move || elf_core(&no_kernel(), &[], Some(0xffff))),
            LINUX,
        )
        .fails(ANY),
        case(
            "5-files",
            "ELF e_phnum 0xfffe, table past the end",
            file("phnum-big.elf", move || elf_core(&no_kernel(), &[], Some(0xfffe))),
            LINUX,
        )
        .fails(ANY),
        case(
            "5-files",
            "LiME with 70000 one-byte ranges",
            file("ranges-70000.lime", || lime(&(0..70000u64).map(|i| (i * 2, vec![0u8])).collect::<Vec<_>>())),
            LINUX,
        )
        .fails(&[ErrorKind::LimitExceeded]),
        case(
            "5-files",
            "LiME with 60000 ranges in descending order",
            file("ranges-60000-down.lime", || {
                lime(&(0..60000u64).rev().map(|i| (i * 2, vec![0u8])).collect::<Vec<_>>())
            }),
            LINUX,
        )
        .fails(ANY),
    ]
}

/// A chain string of `n` parts made by `part`, joined by `sep`, after `prefix`.
fn long_chain(prefix: &str, n: usize, sep: &str, part: impl Fn(usize) -> String) -> String {
    let mut s = String::from(prefix);
    for i in 0..n {
        if i > 0 {
            s.push_str(sep);
        }
        s.push_str(&part(i));
    }
    s
}

/// Class 6: sizes and strings from the user.
fn user_sizes(fixture: &Path) -> Vec<Case> {
    let small = || file("small.elf", || elf_core(&[(0, vec![0u8; 1 << 20])], &[], None));
    let real = || Source::Path(fixture.to_path_buf());
    let conn =
        |name: &str, source: Source, chain: String| case("6-user-sizes", name, source, chain).op("connector", None);
    vec![
        conn("cache_size=1T", small(), "coredump:'{}',cache=true,cache_size=1T".into()).fails(USER_SIZE),
        conn("cache_size=64G", small(), "coredump:'{}',cache=true,cache_size=64G".into()).fails(USER_SIZE),
        conn("cache_page_size=64G", small(), "coredump:'{}',cache=true,cache_page_size=64G".into()).fails(USER_SIZE),
        conn("cache_page_size=1G", small(), "coredump:'{}',cache=true,cache_page_size=1G".into()),
        conn("cache_size=512M, read through 4 clones", real(), "coredump:'{}',cache=true,cache_size=512M".into()),
        case(
            "6-user-sizes",
            "cache_size=1G, open pid 1 and its modules",
            real(),
            "coredump:'{}',cache=true,cache_size=1G -> linux",
        )
        .op("process", Some("1")),
        conn("dummy:16G", Source::None, "dummy:16G".into()),
        conn("dummy:1E", Source::None, "dummy:1E".into()).fails(USER_SIZE),
        conn("dummy:0", Source::None, "dummy:0".into()).fails(USER_SIZE),
        conn("dummy size of 30 digits", Source::None, "dummy:size=999999999999999999999999999999".into())
            .fails(USER_SIZE),
        conn("delay=1000000s", Source::None, "dummy:4k,delay=1000000s".into()).fails(USER_SIZE),
        conn("100k distinct argument keys", Source::None, long_chain("dummy:", 100_000, ",", |i| format!("k{i}=1")))
            .fails(USER_SIZE),
        conn("100k repeated argument keys", Source::None, long_chain("dummy:", 100_000, ",", |_| "size=4k".into()))
            .fails(USER_SIZE),
        conn("a 20 MB chain string", Source::None, format!("dummy:x={}", "a".repeat(20 << 20))).fails(USER_SIZE),
        conn("10k chain links", Source::None, long_chain("dummy:4k", 10_000, "", |_| " -> dummy:4k".into()))
            .fails(USER_SIZE),
        conn("1M nested quotes", Source::None, format!("dummy:'{}'", "'".repeat(1 << 20))).fails(USER_SIZE),
    ]
}

/// Classes 2, 3, 4 and 7 on the real dump: each case patches a few kernel structures.
fn patched(d: &mut Dump) -> Vec<Case> {
    let mut cases = vec![];
    fn add<'a>(cases: &'a mut Vec<Case>, class: &'static str, name: &str, patch: Patch) -> &'a mut Case {
        cases.push(case(class, name, Source::Patched(patch), LINUX).op("processes", None));
        cases.last_mut().unwrap()
    }
    add(&mut cases, "0-control", "the real dump, patched with nothing", vec![]).expect = Expect::Same;

    // kallsyms: token floods in front of the real table, and without it.
    let text = d.text;
    add(&mut cases, "2-kallsyms", "2 MiB of digit tokens in kernel text", d.virt(text + (1 << 20), &tokens(2 << 20)))
        .expect = Expect::Same;
    let flood = tokens(2 << 20);
    add(&mut cases, "2-kallsyms", "16 MiB of token pages mapped in front of the image", d.mapped_tokens(8, 0, &flood));
    let mut no_table = d.virt(text + (1 << 20), &tokens(2 << 20));
    for at in d.find_in_image(DIGIT_TOKENS).into_iter().filter(|&at| at < text || at >= text + (3 << 20)) {
        no_table.extend(d.virt(at, &[0xff; 2]));
    }
    add(&mut cases, "2-kallsyms", "tokens in text, the real token table destroyed", no_table).expect =
        Expect::Fails(&[ErrorKind::NotFound, ErrorKind::LimitExceeded], None);

    // BTF.
    let task = d.btf.find(4, "task_struct");
    let members = d.btf.members(task);
    let mut three = vec![];
    for m in &members[..3] {
        three.extend(d.btf_u32(m.at, 0));
        three.extend(d.btf_u32(m.at + 4, task));
    }
    add(&mut cases, "3-btf", "task_struct with 3 anonymous task_struct members", three.clone());
    // Looking for a member that is not there goes down every anonymous member: 3^depth.
    let comm = d.btf.member(task, "comm");
    let tasks = d.btf.member(task, "tasks");
    let tasks_name = d.btf.name_off(tasks.at);
    three.extend(d.btf_u32(comm.at, tasks_name));
    add(&mut cases, "3-btf", "3 anonymous task_struct members, no comm", three).expect = Expect::Fails(ANY, None);
    assert_eq!(d.btf.kind(comm.ty), 3, "task_struct.comm is an array");
    let nelems = d.btf.record(comm.ty) + 12 + 8;
    for (name, len) in [("comm length 2^30", 1u32 << 30), ("comm length 2^32-1", u32::MAX)] {
        let p = d.btf_u32(nelems, len);
        add(&mut cases, "3-btf", name, p).expect = Expect::Fails(BOUNDED, None);
    }
    // The layer needs only the offset of `tasks`, not its type: any outcome will do.
    for (name, id) in [("tasks of type id 2^24", 1u32 << 24), ("tasks of type id 2^32-1", u32::MAX)] {
        let p = d.btf_u32(tasks.at + 4, id);
        add(&mut cases, "3-btf", name, p);
    }
    for (name, id) in [("comm of type id 2^24", 1u32 << 24), ("comm of type id 2^32-1", u32::MAX)] {
        let p = d.btf_u32(comm.at + 4, id);
        add(&mut cases, "3-btf", name, p).expect = Expect::Fails(ANY, None);
    }
    let pid_t = d.btf.find(8, "pid_t");
    let kernel_pid_t = d.btf.target(pid_t);
    let mut self_typedef = d.btf_u32(comm.at + 4, pid_t);
    self_typedef.extend(d.btf_u32(d.btf.record(pid_t) + 8, pid_t));
    add(&mut cases, "3-btf", "comm of a typedef that is itself", self_typedef).expect = Expect::Fails(ANY, None);
    let mut elem_loop = d.btf_u32(d.btf.record(comm.ty) + 12, pid_t);
    elem_loop.extend(d.btf_u32(d.btf.record(pid_t) + 8, pid_t));
    add(&mut cases, "3-btf", "comm of elements of a typedef that is itself", elem_loop);
    let p = d.btf_u32(d.btf.record(kernel_pid_t) + 8, pid_t);
    add(&mut cases, "3-btf", "pid_t -> __kernel_pid_t -> pid_t", p);
    let mm = d.btf.member(task, "mm");
    let p = d.btf_u32(d.btf.record(mm.ty) + 8, mm.ty);
    add(&mut cases, "3-btf", "mm: a pointer to itself", p);
    let p = d.btf_u32(d.btf.record(task), 0x7fff_fff0);
    add(&mut cases, "3-btf", "task_struct name offset out of range", p).expect = Expect::Fails(ANY, None);
    let p = d.btf_u32(tasks.at, u32::MAX);
    add(&mut cases, "3-btf", "tasks name offset 2^32-1", p).expect = Expect::Fails(ANY, None);
    let info = d.btf.record(task) + 4;
    let p = d.btf_u32(info, (4 << 24) | 0xffff);
    add(&mut cases, "3-btf", "task_struct with vlen 65535", p).expect = Expect::Fails(ANY, None);
    let p = d.btf_u32(info, 31 << 24);
    add(&mut cases, "3-btf", "task_struct of unknown kind 31", p).expect = Expect::Fails(ANY, None);
    for (name, field, value) in [
        ("header type_len 2^32-16", 12, u32::MAX - 15),
        ("header str_off 2^32-2^16", 16, u32::MAX - 0xffff),
        ("header hdr_len 2^32-1", 4, u32::MAX),
    ] {
        let p = d.btf_u32(field, value);
        add(&mut cases, "3-btf", name, p).expect = Expect::Fails(ANY, None);
    }

    // The task list.
    let head = d.init_task + d.task_tasks;
    let p = d.virt_u64(head, 0);
    add(&mut cases, "4-task-list", "init_task.tasks.next = NULL", p).expect =
        Expect::Fails(&[ErrorKind::Malformed], None);
    let p = d.virt_u64(head, 0x0000_7fff_dead_0000);
    add(&mut cases, "4-task-list", "init_task.tasks.next unmapped", p).expect = Expect::Fails(ANY, None);
    let p = d.virt_u64(head, 0xdead_beef_dead_beef);
    add(&mut cases, "4-task-list", "init_task.tasks.next non-canonical", p).expect = Expect::Fails(ANY, None);
    let p = d.ring_of(head, &[Some(0)], 0);
    add(&mut cases, "4-task-list", "a task linked to itself", p).expect = Expect::Fails(BOUNDED, None);
    let p = d.ring_of(head, &[Some(1), Some(2), Some(1)], 0);
    add(&mut cases, "4-task-list", "a cycle not through init_task", p).expect = Expect::Fails(BOUNDED, None);
    let p = d.long_ring(head, 1 << 20, 0);
    add(&mut cases, "4-task-list", "1M tasks looping back to init_task", p).expect = Expect::Fails(BOUNDED, None);
    let init_mm = d.read_u64(d.init_proc + d.task_mm);
    let (arg_start, arg_end) = (d.mm_args.0, d.mm_args.1);
    let start = d.read_u64(init_mm + arg_start);
    let p = d.virt_u64(init_mm + arg_end, start + (1 << 40));
    add(&mut cases, "4-task-list", "pid 1 with a 1 TiB command line", p);
    let p = d.virt_u64(init_mm + arg_start, u64::MAX - 0xfff);
    add(&mut cases, "4-task-list", "pid 1 command line from 2^64-4K", p);
    let cycle = d.dentry_cycle(2);
    add(&mut cases, "4-task-list", "pid 1's executable in a dentry cycle", cycle.clone()).expect = Expect::Same;
    cases.push(
        case("7-process", "pid 1's executable in a dentry cycle: open it", Source::Patched(cycle), LINUX)
            .op("process", Some("1")),
    );
    let garbage = d.chunk(0);
    let mut p = d.phys(garbage, &[0x41; 0x4000]);
    p.extend(d.virt_u64(d.init_proc + d.task_mm, d.direct(garbage)));
    add(&mut cases, "4-task-list", "pid 1 with an mm_struct of 0x41 bytes", p);
    let p = d.virt_u64(d.init_proc + d.task_mm, 0xffff_ffff_ffff_fff8);
    add(&mut cases, "4-task-list", "pid 1 with mm at 2^64-8", p.clone());
    cases.push(
        case("7-process", "pid 1 with mm at 2^64-8: open it", Source::Patched(p), LINUX).op("process", Some("1")),
    );

    // The VMA maple tree of pid 1 (its modules are its file-backed VMAs).
    let mut maple = |name: &str, patch: Patch, expect: Expect| {
        cases.push(Case {
            expect,
            ..case("7-maple-tree", name, Source::Patched(patch), LINUX).op("process", Some("1"))
        });
    };
    maple("a node that is its own child", d.maple_nodes(&[vec![Slot::Node(0)]], 1), Expect::Fails(BOUNDED, None));
    let chain: Vec<Vec<Slot>> =
        (0..40).map(|i| vec![if i < 39 { Slot::Node(i + 1) } else { Slot::Entry(0) }]).collect();
    maple("40 levels deep", d.maple_nodes(&chain, 1), Expect::Fails(BOUNDED, None));
    let diamonds: Vec<Vec<Slot>> =
        (0..30).map(|i| if i < 29 { vec![Slot::Node(i + 1); 16] } else { vec![Slot::Entry(0)] }).collect();
    maple("29 levels, all 16 slots of a node one child", d.maple_nodes(&diamonds, 1), Expect::Fails(BOUNDED, None));
    let unknown_type = d.direct(d.chunk(1)) | 7 << 3 | 2;
    let root = d.maple_root;
    maple("root of unknown node type 7", d.virt_u64(root, unknown_type), Expect::Fails(BOUNDED, None));
    let vmas = d.direct(d.chunk(0));
    let mut leaf = d.maple_nodes(&[(0..16).map(|k| Slot::Entry(vmas + 0x400 * k)).collect()], 1);
    leaf.extend(d.phys(d.chunk(0), &[0x41; 0x10000]));
    maple("16 VMAs of 0x41 bytes", leaf, Expect::Returns);

    // Kernel modules.
    let modules = d.modules;
    let mut module = |name: &str, patch: Patch, expect: Expect| {
        cases.push(Case { expect, ..case("7-modules", name, Source::Patched(patch), LINUX).op("modules", None) });
    };
    module("the unmodified module list", vec![], Expect::Returns);
    module("modules.next = NULL", d.virt_u64(modules, 0), Expect::Fails(&[ErrorKind::Malformed], None));
    module("a module linked to itself", d.ring_of(modules, &[Some(0)], 0), Expect::Fails(BOUNDED, None));
    module("a cycle not through the head", d.ring_of(modules, &[Some(1), Some(0)], 0), Expect::Fails(BOUNDED, None));
    module("100k modules", d.long_ring(modules, 100_000, 0), Expect::Fails(BOUNDED, None));

    // The ELF image of pid 1's executable, in memory.
    let elf = d.busybox_header;
    let mut image = |name: &str, fields: &[(u64, &[u8])]| {
        let patch = fields.iter().flat_map(|&(at, bytes)| d.phys(elf + at, bytes)).collect();
        cases.push(case("7-elf-image", name, Source::Patched(patch), LINUX).op("process", Some("1")));
    };
    image("e_phnum 65535, e_phoff 2^64-2^16", &[(56, &[0xff, 0xff]), (32, &(u64::MAX - 0xffff).to_le_bytes())]);
    image(
        "e_shnum 65535, e_shoff 2^63, e_shstrndx 65534",
        &[(60, &[0xff, 0xff]), (40, &(1u64 << 63).to_le_bytes()), (62, &[0xfe, 0xff])],
    );
    image("e_phentsize 0, e_shentsize 1", &[(54, &[0, 0]), (58, &[1, 0])]);
    image("e_phoff pointing at the header itself", &[(32, &0u64.to_le_bytes())]);
    cases
}

/// How a case ended.
#[derive(Debug)]
enum Outcome {
    /// The runner printed a result: the C API returned.
    Returned { code: i32, count: usize, message: String, processes: Vec<String> },
    /// It ended any other way (signal, abort, bad exit status, no result line).
    Crashed(String),
    /// It ran past the time limit and was killed.
    TimedOut,
}

/// Runs `runner OP CHAIN [ARG]` with the limits.
fn run(runner: &Path, dir: &Path, op: &str, chain: &str, arg: Option<&str>, input: Option<&Path>) -> Outcome {
    let chain_arg = if chain.len() > MAX_ARG_CHAIN {
        let path = dir.join("chain.txt");
        std::fs::write(&path, chain).unwrap();
        format!("@{}", path.display())
    } else {
        chain.to_owned()
    };
    let (stdout, stderr) = (dir.join("runner.stdout"), dir.join("runner.stderr"));
    let limit = memory_limit(input);
    let mut cmd = Command::new(runner);
    cmd.arg(op).arg(&chain_arg).args(arg).stdin(Stdio::null()).env("RUST_BACKTRACE", "0");
    cmd.stdout(std::fs::File::create(&stdout).unwrap()).stderr(std::fs::File::create(&stderr).unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let as_limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::setrlimit(libc::RLIMIT_AS, &as_limit) != 0 || libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start the runner");
    let deadline = Instant::now() + time_limit();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = std::fs::read_to_string(&stdout).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    let tail = |s: &str| s.chars().rev().take(300).collect::<Vec<_>>().into_iter().rev().collect::<String>();
    if !status.success() {
        let how = match status.signal() {
            Some(sig) => format!("signal {sig}"),
            None => format!("exit status {}", status.code().unwrap_or(-1)),
        };
        return Outcome::Crashed(format!("{how}: {}", tail(&err).trim()));
    }
    let Some(result) = out.lines().find_map(|l| l.strip_prefix("result ")) else {
        return Outcome::Crashed(format!("no result line: {}", tail(&err).trim()));
    };
    let mut f = result.split(' ');
    let code = f.next().and_then(|c| c.parse().ok()).unwrap();
    let count = f.next().and_then(|c| c.parse().ok()).unwrap();
    let message = out.split_once("\nmessage ").map_or("", |(_, m)| m).trim().to_owned();
    let processes = out.lines().filter(|l| l.starts_with("proc ")).map(str::to_owned).collect();
    Outcome::Returned { code, count, message, processes }
}

/// Whether `outcome` is what `expect` asks for; `Err` says why not.
fn verdict(expect: &Expect, outcome: &Outcome, baseline: &[String]) -> Result<(), String> {
    let (code, count, message, processes) = match outcome {
        Outcome::Returned { code, count, message, processes } => (*code, *count, message, processes),
        Outcome::Crashed(how) => return Err(format!("crashed ({how})")),
        Outcome::TimedOut => return Err(format!("no result within {:?}", time_limit())),
    };
    match expect {
        Expect::Fails(kinds, text) => {
            let Some(err) = Error::from_code(code) else { return Err(format!("succeeded with {count} items")) };
            if !kinds.is_empty() && !kinds.contains(&err.kind) {
                return Err(format!("error of kind {:?}, expected one of {kinds:?}", err.kind));
            }
            if let Some(text) = text.filter(|t| !message.contains(t)) {
                return Err(format!("the message does not say {text:?}"));
            }
            Ok(())
        }
        Expect::Same if code != 0 => Err(format!("failed: {message}")),
        Expect::Same if processes[..] != baseline[..] => {
            Err(format!("lists {} processes, the unmodified dump {}", processes.len(), baseline.len()))
        }
        Expect::Same => Ok(()),
        Expect::Returns if code == 0 && count > 2 * baseline.len().max(100) => {
            Err(format!("succeeded with {count} items from corrupt data"))
        }
        Expect::Returns => Ok(()),
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Returned { code: 0, count, .. } => format!("ok, {count} items"),
        Outcome::Returned { code, message, .. } => {
            let kind = Error::from_code(*code).map_or(ErrorKind::Unknown, |e| e.kind);
            let short: String = message.chars().take(90).collect();
            format!("{kind:?}: {short}")
        }
        Outcome::Crashed(how) => format!("CRASH {}", how.chars().take(90).collect::<String>()),
        Outcome::TimedOut => "TIMEOUT".into(),
    }
}

#[test]
fn hostile_corpus_ends_in_errors_not_crashes() {
    let dir = repo_root().join("target/hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let runner = build_runner(&dir);
    let fixture = memflow_tests::Fixture::load("cloud-4l").dir.join("dump.elf");
    let filter = std::env::var("MEMFLOW_HOSTILE_FILTER").unwrap_or_default();

    // The unmodified dump: what the controls must list.
    let baseline =
        match run(&runner, &dir, "processes", &LINUX.replace("{}", fixture.to_str().unwrap()), None, Some(&fixture)) {
            Outcome::Returned { code: 0, processes, .. } if processes.len() > 10 => processes,
            other => panic!("the runner cannot list the unmodified dump: {other:?}"),
        };
    assert!(baseline.iter().any(|p| p.ends_with(" init")), "{baseline:?}");

    let mut dump = Dump::load("cloud-4l");
    let mut cases = huge_addresses();
    cases.extend(token_floods());
    cases.extend(bad_files(&dir, &fixture));
    cases.extend(user_sizes(&fixture));
    cases.extend(patched(&mut dump));
    cases.retain(|c| c.class.contains(&filter) || c.name.contains(&filter));
    let work = cases
        .iter()
        .any(|c| matches!(c.source, Source::Patched(_)))
        .then(|| WorkCopy::new(&dump.path, dir.join("work.elf")));

    let mut table = String::new();
    let mut failed = vec![];
    for c in &cases {
        let (input, undo) = match &c.source {
            Source::None => (None, None),
            Source::Path(p) => (Some(p.clone()), None),
            Source::File(name, make) => {
                let path = dir.join(name);
                make(&path);
                (Some(path), None)
            }
            Source::Patched(patch) => {
                let work = work.as_ref().unwrap();
                (Some(work.path.clone()), Some(work.apply(patch)))
            }
        };
        let chain = match &input {
            Some(p) => c.chain.replace("{}", p.to_str().unwrap()),
            None => c.chain.clone(),
        };
        let started = Instant::now();
        let outcome = run(&runner, &dir, c.op, &chain, c.arg.as_deref(), input.as_deref());
        let took = started.elapsed();
        if let (Some(undo), Some(work)) = (undo, &work) {
            work.apply(&undo);
        }
        let result = verdict(&c.expect, &outcome, &baseline);
        let mark = if result.is_ok() { "pass" } else { "FAIL" };
        let line = format!(
            "{mark} {:<15} {:<52} {:<10} {:>6.1}s  {}",
            c.class,
            c.name,
            c.op,
            took.as_secs_f64(),
            describe(&outcome)
        );
        println!("{line}");
        writeln!(table, "{line}").unwrap();
        if let Err(why) = result {
            failed.push(format!("{} / {}: {why} (expected {:?})", c.class, c.name, c.expect));
        }
    }
    drop(work);
    if std::env::var_os("MEMFLOW_HOSTILE_KEEP").is_none() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_name() != "hostile_runner" && entry.file_name() != "lib" {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    println!("\n{} cases, {} failed", cases.len(), failed.len());
    assert!(
        failed.is_empty(),
        "hostile cases that did not end in the expected error:\n{}\n\n{table}",
        failed.join("\n")
    );
}
