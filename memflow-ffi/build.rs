//! Link settings of the shared library: a soname carrying the C ABI version
//! (`libmemflow_ffi.so.<MF_ABI_VERSION>`) and a version script that exports only the C API.
//! The ABI version is read from `src/version.rs`, the single place it is defined.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a build script: a panic is a failed build

use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let manifest = Path::new(&manifest);
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=exports.map");
    println!("cargo:rerun-if-changed=src/version.rs");

    let version_rs = std::fs::read_to_string(manifest.join("src/version.rs")).expect("src/version.rs");
    let abi = version_rs
        .lines()
        .find_map(|l| l.trim().strip_prefix("pub const MF_ABI_VERSION: u32 = "))
        .and_then(|rest| rest.trim_end_matches(';').trim().parse::<u32>().ok())
        .expect("src/version.rs defines `pub const MF_ABI_VERSION: u32 = N;`");

    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmemflow_ffi.so.{abi}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", manifest.join("exports.map").display());
    }
}
