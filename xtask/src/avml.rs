//! AVML (Microsoft's memory acquisition tool) for the fixture guest: the `avml` crate from
//! crates.io, built as a static executable (glibc linked statically, `crt-static`; no musl
//! target is needed) without its upload features, cached in
//! `target/fixtures/tools/avml-VERSION/`.

use std::path::PathBuf;
use std::process::Command;

use crate::fixture::fixtures_dir;
use crate::{lock_file, run_command};

/// The AVML release the fixtures are taken with.
pub const VERSION: &str = "0.20.0";

/// The static `avml` executable, built first if it is not cached.
pub fn ensure() -> Result<PathBuf, String> {
    let root = fixtures_dir().join("tools").join(format!("avml-{VERSION}"));
    let exe = root.join("bin/avml");
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let _lock = lock_file(&root.join(".lock"))?;
    if !exe.is_file() {
        let mut command = Command::new("cargo");
        command
            .args(["install", "avml", "--version", VERSION, "--locked", "--no-default-features"])
            .args(["--target", crate::arch::X86_64.rust_target, "--root"])
            .arg(&root)
            // Only the target's artifacts get the flag (build scripts stay dynamic): a
            // statically linked executable for the guest's bare initramfs.
            .env("RUSTFLAGS", "-C target-feature=+crt-static");
        run_command(&mut command)?;
    }
    if !crate::initramfs::is_static_elf(&exe)? {
        return Err(format!("{} is not a static executable", exe.display()));
    }
    Ok(exe)
}
