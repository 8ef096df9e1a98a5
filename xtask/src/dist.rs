//! `cargo xtask dist`: the relocatable C/C++ SDK archive.
//!
//! Configures the top-level CMake project, builds it (cargo builds the Rust libraries), installs
//! it into a staging prefix `target/dist/memflow-sdk-<version>-<arch>-linux/` and packs that into
//! `target/dist/memflow-sdk-<version>-<arch>-linux.tar.gz`. The installed tree locates itself
//! (`memflowConfig.cmake` and `memflow.pc` use paths relative to their own location), so the
//! archive can be unpacked and used anywhere. Std-only; needs `cmake` and GNU `tar`.

use std::path::{Path, PathBuf};

use crate::{root, run};

/// `memflow-sdk-<version>-<arch>-linux`: the archive's base name and its top directory.
pub fn sdk_name() -> String {
    format!("memflow-sdk-{}-{}-linux", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH)
}

/// Where the archive and its staging prefix go.
pub fn dist_dir() -> PathBuf {
    root().join("target/dist")
}

/// Builds the SDK in the CMake build directory `build` (created if needed; an existing one is
/// reused, so cargo rebuilds nothing that is up to date) and writes the archive. Returns its path.
pub fn dist(build: &Path) -> Result<PathBuf, String> {
    let name = sdk_name();
    let stage = dist_dir().join(&name);
    let archive = dist_dir().join(format!("{name}.tar.gz"));
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(|e| format!("cannot remove {}: {e}", stage.display()))?;
    }
    let dist = dist_dir();
    let (build, stage_s, dist_s, archive_s) =
        (path_str(build)?, path_str(&stage)?, path_str(&dist)?, path_str(&archive)?);
    run("cmake", &["-S", ".", "-B", build])?;
    run("cmake", &["--build", build])?;
    run("cmake", &["--install", build, "--prefix", stage_s])?;
    // Owned by root and sorted, so the archive does not depend on who built it or how.
    run("tar", &["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-C", dist_s, "-czf", archive_s, &name])?;
    Ok(archive)
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str().ok_or_else(|| format!("path is not UTF-8: {}", path.display()))
}

/// `cargo xtask sdk [CHAIN...]`: the SDK's main job. Builds the SDK (in the CMake build
/// directory the SDK tests use, `target/tmp/sdk/build`, so neither rebuilds what the other
/// built), installs it into `target/sdk/prefix`, builds the C examples against that prefix
/// through `find_package(memflow)`, and runs the C process list on each chain: by default
/// `native`, this machine.
pub fn sdk_demo(chains: &[String]) -> Result<(), String> {
    let build = root().join("target/tmp/sdk/build");
    let base = root().join("target/sdk");
    let (prefix, examples) = (base.join("prefix"), base.join("examples-c"));
    if prefix.exists() {
        std::fs::remove_dir_all(&prefix).map_err(|e| format!("cannot remove {}: {e}", prefix.display()))?;
    }
    let (build_s, prefix_s, examples_s) = (path_str(&build)?, path_str(&prefix)?, path_str(&examples)?);
    run("cmake", &["-S", ".", "-B", build_s])?;
    run("cmake", &["--build", build_s])?;
    run("cmake", &["--install", build_s, "--prefix", prefix_s])?;
    run("cmake", &["-S", "examples-c", "-B", examples_s, &format!("-DCMAKE_PREFIX_PATH={prefix_s}")])?;
    run("cmake", &["--build", examples_s])?;
    let process_list = examples.join("process_list");
    let default = ["native".to_string()];
    for chain in if chains.is_empty() { &default[..] } else { chains } {
        run(path_str(&process_list)?, &[chain])?;
    }
    Ok(())
}
