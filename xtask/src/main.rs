//! `cargo xtask <task>`: the project's tasks, so that a fresh machine needs two commands.
//!
//! - `demo [CHAIN...]`: the main job. Runs `memflow ps` (the command-line tool) on this
//!   machine (`native`), on a real guest's memory dump (`coredump:... -> linux`) and on a live
//!   guest under QEMU (`qemu:... -> linux`) and a string scan of the dump; then builds and
//!   installs the C SDK and runs its C process-list example on the same chains.
//! - `test`: every test: guest fixtures, clippy with the workspace lints (`-D warnings`), the
//!   workspace tests in both address widths, the Python package's wheel and its pytest suite.
//! - `fixtures [NAME OPTIONS | --all] [--force]`: only (re)builds the cached QEMU guest dumps
//!   under `target/fixtures/` (see `xtask::fixture`).
//! - `guest NAME [OPTIONS]`: boots the fixture guest as `memflow-test-NAME` and keeps it
//!   running until QEMU exits or this task gets SIGINT, SIGTERM or SIGHUP; prints
//!   `pid=`, `qmp=`, `serial=` and `kallsyms=` lines and `ready` on standard output once the
//!   guest is ready.
//! - `deps`: installs the missing system packages (see `xtask::deps`).
//! - `bench-report phys|translate [TARGET_DIR]`: the benchmark results as markdown tables
//!   (see `xtask::bench`).
//! - `headers [OUT_DIR]`: generates the C and C++ headers into `include/` (or `OUT_DIR`), with
//!   the cbindgen version pinned by this crate (see `xtask::headers`).
//! - `dist`: the relocatable C/C++ SDK archive `target/dist/memflow-sdk-<version>-<arch>-linux.tar.gz`
//!   (CMake configure, build, install into a staging prefix, tar).
//! - `sdk [CHAIN...]`: builds and installs the C/C++ SDK under `target/sdk/`, builds the C
//!   examples against it and runs the C process list on this machine (or on each CHAIN).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a developer tool: a panic is a failed task

use std::path::PathBuf;
use std::process::exit;

use xtask::guest::{GuestOptions, LiveGuest};
use xtask::{deps, fixture, interrupt, root, run};

const USAGE: &str = "usage: cargo xtask <task>
  demo [CHAIN...]                       `memflow ps` and the SDK's process list on this machine, a dump and a live guest
  test                                  every test
  python-test                           build the Python wheel, install it in a fresh venv, run its pytest suite
  fixtures [NAME OPTIONS|--all] [--force]   the guest fixtures (cargo xtask fixtures --help)
  guest NAME [OPTIONS]                  a live guest memflow-test-NAME, until QEMU exits or Ctrl-C
  deps                                  install the missing system packages
  bench-report phys|translate [TARGET_DIR]  benchmark results as markdown
  headers [OUT_DIR]                     generate include/memflow.h and memflow.hpp
  dist [--build-dir DIR]                the relocatable SDK archive
  sdk [CHAIN...]                        build and install the SDK, run its C process list";

fn main() {
    // QEMU's error descriptions reach us as log warnings of the QMP client.
    log::set_logger(&StderrLogger).map(|()| log::set_max_level(log::LevelFilter::Warn)).ok();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("");
    let result = match task {
        "demo" => demo(&args[1..]),
        "test" => test(),
        "python-test" => xtask::python::test(),
        "fixtures" => deps::ensure().and_then(|()| fixture::main(&args[1..])),
        "guest" => guest(&args[1..]),
        "deps" => deps::ensure(),
        "bench-report" => bench_report(&args[1..]),
        "headers" => headers(&args[1..]),
        "dist" => dist(&args[1..]).map(|archive| println!("{}", archive.display())),
        "sdk" => xtask::dist::sdk_demo(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            exit(2);
        }
    };
    if let Err(message) = result {
        eprintln!("xtask {task}: {message}");
        exit(1);
    }
}

/// Prints log records (warnings and errors) on standard error.
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("{}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// The main job: the `memflow` command-line tool lists the processes of this machine, of a
/// real guest's memory dump and of a live guest under QEMU, and scans the dump for the marker
/// string its guest planted; then one C program (the SDK's process-list example) lists the
/// same three. With CHAIN arguments, it runs `memflow ps` and the C example on those chains
/// instead.
fn demo(args: &[String]) -> Result<(), String> {
    deps::ensure()?;
    if !args.is_empty() {
        for chain in args {
            memflow_cli(&["-c", chain, "ps"])?;
        }
        return xtask::dist::sdk_demo(args);
    }
    let cloud_4l = fixture::default_fixture("cloud-4l").ok_or("no fixture cloud-4l in the default set")?;
    fixture::build(&cloud_4l, false)?;
    let dump_chain = "coredump:target/fixtures/cloud-4l/dump.elf -> linux".to_string();
    let live = LiveGuest::start("demo")?;
    let live_chain = format!("qemu:{},qmp={} -> linux", live.name, live.qmp.display());
    let result = (|| {
        for chain in ["native", &dump_chain, &live_chain] {
            memflow_cli(&["-c", chain, "ps"])?;
        }
        memflow_cli(&["-c", &dump_chain, "scan", "string", "MEMFLOW-MARKER-", "--pid", "mfprobe_marker"])?;
        xtask::dist::sdk_demo(&["native".to_string(), dump_chain.clone(), live_chain.clone()])
    })();
    drop(live);
    result
}

/// Runs the `memflow` command-line tool (built first if needed) with `args`.
fn memflow_cli(args: &[&str]) -> Result<(), String> {
    let mut all = vec!["run", "-q", "-p", "memflow-cli", "--"];
    all.extend_from_slice(args);
    run("cargo", &all)
}

/// `guest NAME [OPTIONS]`: a live guest in the foreground, for trying things by hand.
fn guest(args: &[String]) -> Result<(), String> {
    let mut options = GuestOptions::default();
    let mut name = None;
    let mut rest = args.iter().cloned();
    while let Some(arg) = rest.next() {
        if options.take(&arg, &mut rest)? {
            continue;
        }
        if arg.starts_with('-') || name.is_some() {
            return Err(format!(
                "usage: cargo xtask guest NAME [--arch amd64|arm64|riscv64] [--cpu CPU] [--mem 256M] [--append ARGS] [--kernel [SUITE/]cloud|generic|generic-16k] [--timeout SECONDS] ({arg}?)"
            ));
        }
        name = Some(arg);
    }
    let name = name.ok_or("usage: cargo xtask guest NAME [OPTIONS]")?;
    let _signals = interrupt::Catch::new();
    let mut live = LiveGuest::start_with(&name, &options)?;
    println!("name={}", live.name);
    println!("pid={}", live.pid);
    println!("qmp={}", live.qmp.display());
    println!("serial={}", live.serial.display());
    println!("kallsyms={}", live.kallsyms().display());
    println!("ready");
    live.wait();
    Ok(())
}

fn bench_report(args: &[String]) -> Result<(), String> {
    let (which, target) = match args {
        [which] => (which, root().join("target")),
        [which, dir] => (which, PathBuf::from(dir)),
        _ => return Err("usage: cargo xtask bench-report phys|translate [TARGET_DIR]".into()),
    };
    print!("{}", xtask::bench::report(which, &target)?);
    Ok(())
}

fn headers(args: &[String]) -> Result<(), String> {
    let out = args.first().map(PathBuf::from).unwrap_or_else(|| root().join("include"));
    for path in xtask::headers::generate(&out)? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn test() -> Result<(), String> {
    deps::ensure()?;
    fixture::main(&[])?;
    // The plugin libraries (cdylib crates) and the `memflow` binary must exist before the
    // tests that load and run them.
    run("cargo", &["build", "--workspace"])?;
    // The lints of [workspace.lints] (documented unsafe, no unwrap outside tests, docs on the
    // public API) hold for every target.
    run("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    run("cargo", &["test", "--workspace"])?;
    run("cargo", &["test", "-p", "memflow-core", "--features", "128_bit_mem"])?;
    // The Python package, built and installed as a user does (see `xtask::python`).
    xtask::python::test()
}

/// Builds the SDK with CMake in `target/dist/build` (or `--build-dir DIR`, to reuse an existing
/// CMake build directory) and packs the installed tree into a relocatable archive (see
/// `xtask::dist`). Prints the archive's path on stdout.
fn dist(args: &[String]) -> Result<PathBuf, String> {
    let build = match args {
        [] => xtask::dist::dist_dir().join("build"),
        // Relative to where the user is; the commands run in the repository root.
        [flag, dir] if flag == "--build-dir" => std::env::current_dir().map_err(|e| e.to_string())?.join(dir),
        _ => return Err("usage: cargo xtask dist [--build-dir DIR]".into()),
    };
    xtask::dist::dist(&build)
}
