//! `cargo xtask <task>`: the project's tasks, so that a fresh machine needs two commands.
//!
//! - `demo [CHAIN...]`: the main job. Builds and installs the C SDK, then runs the C
//!   process-list example on this machine (`native`), on a real guest's memory dump
//!   (`coredump:... -> linux`) and on a live guest under QEMU (`qemu:... -> linux`).
//! - `test`: every test: guest fixtures, clippy with the workspace lints (`-D warnings`), the
//!   workspace tests in both address widths.
//! - `fixtures`: only (re)builds the cached QEMU guest dumps under `target/fixtures/`.
//! - `headers [OUT_DIR]`: generates the C and C++ headers into `include/` (or `OUT_DIR`), with
//!   the cbindgen version pinned by this crate (see `xtask::headers`).
//! - `dist`: the relocatable C/C++ SDK archive `target/dist/memflow-sdk-<version>-<arch>-linux.tar.gz`
//!   (CMake configure, build, install into a staging prefix, tar).
//! - `sdk [CHAIN...]`: builds and installs the C/C++ SDK under `target/sdk/`, builds the C
//!   examples against it and runs the C process list on this machine (or on each CHAIN).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a developer tool: a panic is a failed task

use std::path::PathBuf;
use std::process::exit;

use xtask::guest::LiveGuest;
use xtask::{root, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("");
    let result = match task {
        "demo" => demo(&args[1..]),
        "test" => test(),
        "fixtures" => fixtures(),
        "headers" => headers(&args[1..]),
        "dist" => dist(&args[1..]).map(|archive| println!("{}", archive.display())),
        "sdk" => xtask::dist::sdk_demo(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <demo [DUMP]|test|fixtures|headers [OUT_DIR]|dist [--build-dir DIR]|sdk [CHAIN...]>");
            exit(2);
        }
    };
    if let Err(message) = result {
        eprintln!("xtask {task}: {message}");
        exit(1);
    }
}

/// Installs missing system packages (qemu, busybox, cmake, ...); a no-op when all are there.
fn install_deps() -> Result<(), String> {
    run("bash", &["scripts/install-deps.sh"])
}

fn fixtures() -> Result<(), String> {
    install_deps()?;
    run("bash", &["scripts/guest-dump.sh", "--all"])
}

/// The main job: one C program (the SDK's process-list example) lists the processes of this
/// machine, of a real guest's memory dump, and of a live guest under QEMU. With CHAIN
/// arguments, it runs on those chains instead.
fn demo(args: &[String]) -> Result<(), String> {
    install_deps()?;
    if !args.is_empty() {
        return xtask::dist::sdk_demo(args);
    }
    run("bash", &["scripts/guest-dump.sh", "cloud-4l"])?;
    let dump_chain = "coredump:target/fixtures/cloud-4l/dump.elf -> linux".to_string();
    let live = LiveGuest::start("demo")?;
    let live_chain = format!("qemu:{},qmp={} -> linux", live.name, live.qmp.display());
    let result = xtask::dist::sdk_demo(&["native".to_string(), dump_chain, live_chain]);
    drop(live);
    result
}

fn headers(args: &[String]) -> Result<(), String> {
    let out = args.first().map(PathBuf::from).unwrap_or_else(|| root().join("include"));
    for path in xtask::headers::generate(&out)? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn test() -> Result<(), String> {
    fixtures()?;
    // The plugin libraries (cdylib crates) must exist before the tests that load them.
    run("cargo", &["build", "--workspace"])?;
    // The lints of [workspace.lints] (documented unsafe, no unwrap outside tests, docs on the
    // public API) hold for every target.
    run("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    run("cargo", &["test", "--workspace"])?;
    run("cargo", &["test", "-p", "memflow-core", "--features", "128_bit_mem"])
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
