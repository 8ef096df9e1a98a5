//! `cargo xtask <task>`: the project's tasks, so that a fresh machine needs two commands.
//!
//! - `demo`: the main job. Builds a real QEMU guest dump if none is cached, then opens it and
//!   prints its memory map and CPU state.
//! - `test`: every test: guest fixtures, the workspace tests in both address widths.
//! - `fixtures`: only (re)builds the cached QEMU guest dumps under `target/fixtures/`.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("");
    let result = match task {
        "demo" => demo(&args[1..]),
        "test" => test(),
        "fixtures" => fixtures(),
        _ => {
            eprintln!("usage: cargo xtask <demo [DUMP]|test|fixtures>");
            exit(2);
        }
    };
    if let Err(message) = result {
        eprintln!("xtask {task}: {message}");
        exit(1);
    }
}

/// The repository root (the parent of this crate's directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Runs a command in the repository root, failing with its description if it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
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

fn demo(args: &[String]) -> Result<(), String> {
    let dump = match args.first() {
        Some(path) => path.clone(),
        None => {
            install_deps()?;
            run("bash", &["scripts/guest-dump.sh", "cloud-4l"])?;
            "target/fixtures/cloud-4l/dump.elf".to_string()
        }
    };
    run("cargo", &["run", "--quiet", "--release", "-p", "memflow-core", "--example", "dump_info", "--", &dump])
}

fn test() -> Result<(), String> {
    fixtures()?;
    run("cargo", &["test", "--workspace"])?;
    run("cargo", &["test", "-p", "memflow-core", "--features", "128_bit_mem"])
}
