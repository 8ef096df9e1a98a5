//! The Python package (`memflow-py/`): builds its wheel with maturin and runs its pytest suite
//! in a fresh virtual environment, as a user installs it.
//!
//! Both environments live under `target/`: `py-tools` (maturin, kept between runs) and
//! `py-test` (made anew each run: the wheel, and pytest, volatility3, yara-x and mypy from
//! PyPI). The tests read the workspace's debug builds (the `memflow` tool to compare with, the
//! probe plugin, `xtask guest` for a live guest), which `cargo xtask test` builds first.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run_command};

/// What the test environment installs besides the wheel.
const TEST_PACKAGES: [&str; 4] = ["pytest", "volatility3", "yara-x", "mypy"];

/// `python3 -m venv DIR` (after removing `DIR` when `fresh`), returning its `bin/`.
fn venv(dir: &Path, fresh: bool) -> Result<PathBuf, String> {
    if fresh && dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    if !dir.join("bin/python").exists() {
        run_command(Command::new("python3").args(["-m", "venv"]).arg(dir))?;
    }
    Ok(dir.join("bin"))
}

/// Builds the wheel into `target/wheels/` and returns its path.
pub fn build_wheel() -> Result<PathBuf, String> {
    let target = root().join("target");
    let tools = venv(&target.join("py-tools"), false)?;
    if !tools.join("maturin").exists() {
        run_command(Command::new(tools.join("pip")).args(["install", "-q", "maturin>=1.5,<2"]))?;
    }
    let out = target.join("wheels");
    // Only this build's wheel is there afterwards: the install below takes the one it finds.
    let _ = std::fs::remove_dir_all(&out);
    run_command(
        Command::new(tools.join("maturin")).arg("build").arg("--out").arg(&out).current_dir(root().join("memflow-py")),
    )?;
    let wheel = std::fs::read_dir(&out)
        .map_err(|e| format!("{}: {e}", out.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("maturin wrote no wheel into {}", out.display()))?;
    Ok(wheel)
}

/// Builds the wheel, installs it with the test packages into a fresh `target/py-test` and runs
/// the pytest suite (`memflow-py/tests`).
pub fn test() -> Result<(), String> {
    let wheel = build_wheel()?;
    let target = root().join("target");
    let bin = venv(&target.join("py-test"), true)?;
    run_command(Command::new(bin.join("pip")).args(["install", "-q"]).arg(&wheel).args(TEST_PACKAGES))?;
    run_command(
        Command::new(bin.join("pytest"))
            .args(["-p", "no:cacheprovider", "memflow-py/tests"])
            .env("MEMFLOW_BIN_DIR", target.join("debug"))
            .current_dir(root()),
    )
}
