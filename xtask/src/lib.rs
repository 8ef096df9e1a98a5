//! Library part of the project's tasks, shared with the integration tests (which regenerate
//! the headers and compare them with the checked-in ones, and build the SDK archive).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a developer tool: a panic is a failed task

pub mod dist;
pub mod guest;
pub mod headers;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the parent of the xtask crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Runs a command in the repository root, failing with its description if it fails.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
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
