//! Paths of the repository and of the build, and private temporary directories.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The directory cargo put this workspace's libraries in (`target/debug`): the parent of the
/// running test's `deps/` directory.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// A shipped plugin library, built by `cargo build --workspace` (which `cargo xtask test` runs first).
pub fn shipped(name: &str) -> PathBuf {
    let path = build_dir().join(format!("libmemflow_{name}.so"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (cargo xtask test does)",
        path.display()
    );
    path
}

/// A fresh directory `memflow-TAG-PID` only its owner may write to. It is under the target
/// directory (`target/tmp`), not the system's temporary directory: the plugin inventory refuses
/// plugins under a directory others can write to, and `/tmp` is one.
pub fn temp_dir(tag: &str) -> PathBuf {
    let target = build_dir().parent().unwrap().to_path_buf();
    let dir = target.join("tmp").join(format!("memflow-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Copies `src` into `dir` as `name` with mode 0755.
pub fn copy_into(dir: &Path, src: &Path, name: &str) -> PathBuf {
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst
}

/// Compiles the C plugin source `source` (relative to the repository) into `out` as a plugin
/// library, as a C author builds one: against `include/`, optimised, with warnings as errors,
/// hidden visibility (only `MEMFLOW_PLUGIN` is exported) and the `defines`.
pub fn build_c_plugin(source: &str, out: &Path, defines: &[&str]) -> PathBuf {
    let status = std::process::Command::new("cc")
        .args([
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-shared",
            "-fPIC",
            "-fvisibility=hidden",
        ])
        .args(defines)
        .arg("-I")
        .arg(repo_root().join("include"))
        .arg(repo_root().join(source))
        .arg("-o")
        .arg(out)
        .status()
        .expect("run cc");
    assert!(status.success(), "compiling {source} {defines:?} failed");
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o755)).unwrap();
    out.to_path_buf()
}
