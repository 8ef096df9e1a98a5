//! The checked-in headers (`include/memflow.h`, `include/memflow.hpp`): regenerated with the
//! pinned generator they must be identical; their version macros match the workspace version
//! and the library; each compiles on its own as C99/C11/C++17 with warnings as errors and
//! survives double inclusion.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;

use memflow_tests::{repo_root, temp_dir};

fn include_dir() -> PathBuf {
    repo_root().join("include")
}

/// The version in the workspace's Cargo.toml (`[workspace.package] version = "..."`).
fn workspace_version() -> String {
    let toml = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let mut in_package = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package {
            if let Some(v) = line.strip_prefix("version").map(str::trim).and_then(|r| r.strip_prefix('=')) {
                return v.trim().trim_matches('"').to_string();
            }
        }
    }
    panic!("no version in [workspace.package] of Cargo.toml");
}

/// The value of `#define NAME value` in `header`.
fn define(header: &str, name: &str) -> String {
    header
        .lines()
        .find_map(|l| l.strip_prefix("#define ").and_then(|r| r.strip_prefix(name)).filter(|r| r.starts_with(' ')))
        .unwrap_or_else(|| panic!("no #define {name}"))
        .trim()
        .to_string()
}

#[test]
fn checked_in_headers_match_the_generator() {
    let out = temp_dir("regen");
    xtask::headers::generate(&out).expect("header generation");
    let mut stale = Vec::new();
    for name in xtask::headers::HEADERS {
        let fresh = std::fs::read_to_string(out.join(name)).unwrap();
        let checked_in = std::fs::read_to_string(include_dir().join(name)).unwrap_or_default();
        if fresh != checked_in {
            let line = fresh.lines().zip(checked_in.lines()).position(|(a, b)| a != b).map_or_else(
                || format!("lengths differ ({} vs {} lines)", fresh.lines().count(), checked_in.lines().count()),
                |i| format!("first difference at line {}", i + 1),
            );
            stale.push(format!("include/{name}: {line}"));
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(stale.is_empty(), "headers are out of date, run `cargo xtask headers`:\n{}", stale.join("\n"));
}

#[test]
fn version_macros_match_cargo_and_the_library() {
    let header = std::fs::read_to_string(include_dir().join("memflow.h")).unwrap();
    let version = workspace_version();
    let macros = format!(
        "{}.{}.{}",
        define(&header, "MF_VERSION_MAJOR"),
        define(&header, "MF_VERSION_MINOR"),
        define(&header, "MF_VERSION_PATCH")
    );
    assert_eq!(macros, version, "MF_VERSION_* macros vs Cargo.toml");
    // SAFETY: mf_version returns a static NUL-terminated string.
    let runtime = unsafe { std::ffi::CStr::from_ptr(memflow_ffi::mf_version()) }.to_str().unwrap().to_string();
    assert_eq!(runtime, version, "mf_version() vs Cargo.toml");
    assert_eq!(define(&header, "MF_ABI_VERSION"), memflow_ffi::mf_abi_version().to_string());
    assert_eq!(define(&header, "MF_PLUGIN_ABI_VERSION"), memflow_core::plugins::ABI_VERSION.to_string());
    assert_eq!(
        define(&header, "MF_ERR_NULL"),
        format!("({})", memflow_ffi::MF_ERR_NULL),
        "negative macros are parenthesised"
    );
}

/// Compiles `source` (a file in `dir`) with `compiler` and `flags`, `-I include/`.
fn compile(dir: &Path, compiler: &str, flags: &[&str], source: &str) {
    let out = Command::new(compiler)
        .args(flags)
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-fsyntax-only", "-I"])
        .arg(include_dir())
        .arg(dir.join(source))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(out.status.success(), "{compiler} {flags:?} {source} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn headers_compile_alone_and_twice() {
    let dir = temp_dir("compile");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    // Alone, as the first include of a translation unit.
    write("h_alone.c", "#include \"memflow.h\"\n");
    write("h_alone.cpp", "#include \"memflow.h\"\n");
    write("hpp_alone.cpp", "#include \"memflow.hpp\"\n");
    // Twice, and the C++ header after the C header; the macros work in expressions.
    let use_c = "#include \"memflow.h\"\n#include \"memflow.h\"\n\
                 typedef char mf_null_is_negative[(0 - MF_ERR_NULL) == 3081 ? 1 : -1];\n\
                 typedef char mf_abi_is_positive[MF_ABI_VERSION > 0 ? 1 : -1];\n\
                 int main(void) { MfInventory *inv = 0; return mf_inventory_free(inv); }\n";
    write("h_twice.c", use_c);
    write("h_twice.cpp", use_c);
    write(
        "hpp_twice.cpp",
        "#include \"memflow.h\"\n#include \"memflow.hpp\"\n#include \"memflow.hpp\"\n\
         int main() {\n  memflow::Inventory inv;\n  memflow::Inventory moved = std::move(inv);\n  \
         return moved ? 1 : static_cast<int>(memflow::version().size() == 0);\n}\n",
    );
    for std in ["-std=c99", "-std=c11"] {
        compile(&dir, "cc", &[std], "h_alone.c");
        compile(&dir, "cc", &[std], "h_twice.c");
    }
    for source in ["h_alone.cpp", "hpp_alone.cpp", "h_twice.cpp", "hpp_twice.cpp"] {
        compile(&dir, "c++", &["-std=c++17"], source);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
