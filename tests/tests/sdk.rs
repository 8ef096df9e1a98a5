//! The C/C++ SDK end to end, through the tools its users use.
//!
//! One setup (shared by every test here, built once per run and reused across runs under
//! `target/tmp/sdk/`): configure and build the top-level CMake project (cargo builds
//! `libmemflow_ffi` and the plugins in release mode), install it into a fresh prefix, and build
//! the C examples (as C99 in Debug and as C11 in Release, with the C plugin) and the C++ examples (C++17) against
//! that prefix through `find_package(memflow CONFIG REQUIRED)`, all with `-Wall -Wextra -Werror`.
//!
//! The tests then run the examples against this machine (native OS), real QEMU guest dumps
//! (physical reads compared with the bytes Rust reads from the same dump), a live ARM64 guest and the connector
//! plugin written in C (loaded from C, C++ and Rust), under valgrind, and check the packaging:
//! file modes, the soname, the static library's system libraries against rustc's list, a build
//! through `add_subdirectory`, builds through pkg-config (shared and `--static`), the
//! relocatable `xtask dist` archive unpacked elsewhere, and what `mf_inventory_scan` lists and
//! loads with the shipped plugin files beside the library.
//!
//! Needs cmake, cc, c++, pkg-config and valgrind (`cargo xtask deps`), and the guest
//! fixtures `target/fixtures/cloud-4l`, `arm64-4k`, `arm64-16k`, `arm64-max`, `riscv64-sv39`
//! and `riscv64-sv57` (`cargo xtask fixtures`), and `qemu-system-aarch64` and
//! `qemu-system-riscv64` for live guests. Reading other processes through the native layer
//! needs the rights to (root, or ptrace permission).

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;

use memflow_core::connector::{open, OpenOptions};
use memflow_core::error::PartialError;
use memflow_core::mem::PhysicalMemory;
use memflow_core::plugins::{Args, Inventory, PluginFlavor, PluginKind};
use memflow_core::types::{Address, PhysicalAddress};
use memflow_tests::{repo_root, section, Fixture, LiveGuest};

// ---- the shared setup -------------------------------------------------------------------

/// Where everything is built: the CMake build of the SDK, the install prefix, the examples.
struct Sdk {
    repo: PathBuf,
    work: PathBuf,
    /// The SDK's CMake build directory (cargo builds in `build/cargo`).
    build: PathBuf,
    /// The installed SDK.
    prefix: PathBuf,
    /// The C examples built as C99 and as C11 (with `libmemflow_cbuffer.so` beside them).
    c99: PathBuf,
    c11: PathBuf,
    /// The C++ examples.
    cpp: PathBuf,
}

fn sdk() -> &'static Sdk {
    static SDK: OnceLock<Result<Sdk, String>> = OnceLock::new();
    let setup = SDK.get_or_init(|| {
        std::panic::catch_unwind(setup).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match setup {
        Ok(sdk) => sdk,
        Err(why) => panic!("the SDK setup failed (see the first failing test): {why}"),
    }
}

fn setup() -> Sdk {
    for tool in ["cmake", "cc", "c++", "pkg-config", "valgrind", "readelf", "nm", "tar"] {
        assert!(
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success(),
            "`{tool}` is missing: run cargo xtask deps (cargo xtask test does)"
        );
    }
    let repo = repo_root();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk");
    std::fs::create_dir_all(&work).unwrap();
    let sdk = Sdk {
        build: work.join("build"),
        prefix: work.join("prefix"),
        c99: work.join("examples-c99"),
        c11: work.join("examples-c11"),
        cpp: work.join("examples-cpp"),
        repo,
        work,
    };
    // The same cargo that runs these tests builds the libraries.
    let cargo = format!("-DMEMFLOW_CARGO={}", env!("CARGO"));
    // The tool without YARA: yara-x's release build would add minutes to every CI run, and
    // `tests/cli.rs` tests YARA scans with the workspace's build of the same tool.
    run(Command::new("cmake")
        .arg("-S")
        .arg(&sdk.repo)
        .arg("-B")
        .arg(&sdk.build)
        .arg(&cargo)
        .arg("-DMEMFLOW_CLI_YARA=OFF"));
    run(Command::new("cmake").arg("--build").arg(&sdk.build));
    let _ = std::fs::remove_dir_all(&sdk.prefix);
    run(Command::new("cmake").arg("--install").arg(&sdk.build).arg("--prefix").arg(&sdk.prefix));

    let prefix_path = format!("-DCMAKE_PREFIX_PATH={}", sdk.prefix.display());
    // C11 in Release: optimisation enables more warnings (gcc's -Wformat-truncation).
    for (dir, std, build_type) in [(&sdk.c99, "99", "Debug"), (&sdk.c11, "11", "Release")] {
        cmake_project(
            &sdk.repo.join("examples-c"),
            dir,
            &[
                &prefix_path,
                &format!("-DMEMFLOW_EXAMPLES_C_STANDARD={std}"),
                &format!("-DCMAKE_BUILD_TYPE={build_type}"),
            ],
        );
    }
    cmake_project(&sdk.repo.join("examples-cpp"), &sdk.cpp, &[&prefix_path]);
    sdk
}

/// Configures and builds a CMake project.
fn cmake_project(src: &Path, build: &Path, defines: &[&str]) {
    run(Command::new("cmake").arg("-S").arg(src).arg("-B").arg(build).args(defines));
    run(Command::new("cmake").arg("--build").arg(build));
}

// ---- helpers ----------------------------------------------------------------------------

/// Runs a command and returns its stdout; fails with everything it printed if it fails.
fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}\n{}", out.status, text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command for an example program, with a plugin path that only holds what a test passes.
fn example(path: &Path) -> Command {
    assert!(path.is_file(), "{} was not built", path.display());
    let mut cmd = Command::new(path);
    cmd.env_remove("MEMFLOW_PLUGIN_PATH");
    cmd
}

fn fixture_dump() -> PathBuf {
    Fixture::load("cloud-4l").dir.join("dump.elf").canonicalize().unwrap()
}

/// The `comm` of this process, as the native OS layer reports its name.
fn own_name() -> String {
    std::fs::read_to_string("/proc/self/comm").unwrap().trim_end().to_string()
}

/// Parses `phys_read` output (`ADDR: xx xx ...` lines) into (address, bytes).
fn parse_hexdump(out: &str) -> (u64, Vec<u8>) {
    let mut start = None;
    let mut bytes = Vec::new();
    for line in out.lines().filter(|l| !l.starts_with('#')) {
        let (addr, hex) = line.split_once(':').unwrap_or_else(|| panic!("not a hexdump line: {line}"));
        let addr = u64::from_str_radix(addr, 16).unwrap();
        assert_eq!(addr, start.unwrap_or(addr) + bytes.len() as u64, "hexdump lines are consecutive");
        start.get_or_insert(addr);
        bytes.extend(hex.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()));
    }
    (start.expect("a hexdump"), bytes)
}

/// Physical memory of the QEMU fixture as Rust reads it (unreadable bytes are zero).
fn rust_phys_read(dump: &Path, addr: u64, len: usize) -> Vec<u8> {
    let mut conn = open(dump, OpenOptions::default()).unwrap();
    let mut buf = vec![0u8; len];
    match conn.phys_read_raw_into(PhysicalAddress::plain(Address::new(addr)), &mut buf) {
        Ok(()) | Err(PartialError::PartialRead(_)) => buf,
        Err(e) => panic!("Rust read of {len} bytes at {addr:#x} failed: {e:?}"),
    }
}

/// A file of `len` pseudo-random bytes for the C plugin to serve.
fn data_file(sdk: &Sdk, len: usize) -> (PathBuf, Vec<u8>) {
    let path = sdk.work.join(format!("cbuffer-data-{len}.bin"));
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// A process with a name no other process has: a renamed copy of `sleep`. Killed on drop.
struct Sleeper {
    child: Child,
    name: String,
    exe: PathBuf,
}

impl Sleeper {
    fn start(sdk: &Sdk, tag: &str) -> Self {
        // `comm` keeps 15 characters.
        let name = format!("mfsdk{tag}{}", std::process::id() % 100_000);
        let exe = sdk.work.join(&name);
        std::fs::copy("/bin/sleep", &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = Command::new(&exe).arg("120").spawn().unwrap();
        // Wait until the exec is done, so /proc shows the new name.
        let comm = format!("/proc/{}/comm", child.id());
        for _ in 0..500 {
            if std::fs::read_to_string(&comm).map(|c| c.trim_end() == name).unwrap_or(false) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Sleeper { child, name, exe }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.exe);
    }
}

/// The system libraries rustc says `libmemflow_ffi.a` needs (cargo replays the note when the
/// crate is up to date, so this is quick after the setup).
fn rustc_native_static_libs(sdk: &Sdk) -> Vec<String> {
    let out = output(
        Command::new(env!("CARGO"))
            .args(["rustc", "--release", "-p", "memflow-ffi", "--", "--print", "native-static-libs"])
            .env("CARGO_TARGET_DIR", sdk.build.join("cargo"))
            .current_dir(&sdk.repo),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("native-static-libs: ").map(|(_, libs)| libs))
        .expect("rustc reports native-static-libs");
    line.split_whitespace().map(str::to_string).collect()
}

// ---- packaging --------------------------------------------------------------------------

#[test]
fn installs_the_sdk_with_safe_modes_and_the_soname() {
    let sdk = sdk();
    let p = &sdk.prefix;
    let version = env!("CARGO_PKG_VERSION");
    for file in [
        "include/memflow.h",
        "include/memflow.hpp",
        "lib/libmemflow_ffi.a",
        "lib/memflow/libmemflow_coredump.so",
        "lib/memflow/libmemflow_dummy.so",
        "lib/memflow/libmemflow_linux.so",
        "lib/memflow/libmemflow_native.so",
        "lib/memflow/libmemflow_qemu.so",
        "lib/cmake/memflow/memflowConfig.cmake",
        "lib/cmake/memflow/memflowConfigVersion.cmake",
        "lib/pkgconfig/memflow.pc",
        "lib/pkgconfig/memflow-shared.pc",
        "share/memflow/examples/examples-c/CMakeLists.txt",
        "share/memflow/examples/examples-c/plugin_buffer/plugin_buffer.c",
        "share/memflow/examples/examples-cpp/CMakeLists.txt",
    ] {
        assert!(p.join(file).is_file(), "{file} is not installed");
    }

    // The soname carries the C ABI version of the header; the links lead to the real file.
    let header = std::fs::read_to_string(p.join("include/memflow.h")).unwrap();
    let abi = header.lines().find_map(|l| l.strip_prefix("#define MF_ABI_VERSION ")).expect("MF_ABI_VERSION").trim();
    let soname = format!("libmemflow_ffi.so.{abi}");
    let lib = p.join("lib");
    assert_eq!(std::fs::read_link(lib.join("libmemflow_ffi.so")).unwrap(), Path::new(&soname));
    assert_eq!(std::fs::read_link(lib.join(&soname)).unwrap(), Path::new(&format!("libmemflow_ffi.so.{version}")));
    let dynamic = run(Command::new("readelf").arg("-d").arg(lib.join(format!("libmemflow_ffi.so.{version}"))));
    assert!(dynamic.contains(&format!("Library soname: [{soname}]")), "{dynamic}");
    // Programs record the soname, not a path.
    let needed = run(Command::new("readelf").arg("-d").arg(sdk.c11.join("process_list")));
    assert!(needed.contains(&format!("Shared library: [{soname}]")), "{needed}");

    // Nothing is writable by group or others (the inventory refuses such plugins).
    let mut stack = vec![p.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.file_type().is_symlink() {
                continue;
            }
            assert_eq!(
                meta.permissions().mode() & 0o022,
                0,
                "{} is writable by group or others",
                entry.path().display()
            );
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    // The installed plugins pass the inventory's checks.
    let mut inv = Inventory::default();
    // dummy holds two plugins (a connector and an OS layer).
    assert_eq!(inv.add_dir(&lib.join("memflow")).unwrap(), 6);
    let names: BTreeSet<String> = inv.plugins().map(|i| i.name.clone()).collect();
    assert_eq!(names, ["coredump", "dummy", "linux", "native", "qemu"].map(String::from).into());
}

#[test]
fn installs_the_memflow_tool_with_its_man_page_and_completions() {
    let sdk = sdk();
    let p = &sdk.prefix;
    let tool = p.join("bin/memflow");
    assert_eq!(std::fs::metadata(&tool).unwrap().permissions().mode() & 0o777, 0o755);
    for (file, starts) in [
        ("share/man/man1/memflow.1", ".ie"),
        ("share/bash-completion/completions/memflow", "_memflow()"),
        ("share/zsh/site-functions/_memflow", "#compdef memflow"),
        ("share/fish/vendor_completions.d/memflow.fish", ""),
    ] {
        let text = std::fs::read_to_string(p.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            text.starts_with(starts) && text.contains("memflow"),
            "{file} is not what `memflow` generates:\n{text}"
        );
    }
    // With no plugin path and an empty home, the installed tool looks for plugins in
    // <prefix>/lib/memflow, beside it (files of the plugins it has built in are checked there,
    // the built-in ones are used).
    let home = sdk.work.join("tool-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = run(Command::new(&tool)
        .args(["plugins", "verify", "--json"])
        .env_remove("MEMFLOW_PLUGIN_PATH")
        .env("HOME", &home));
    let plugin_dir = p.join("lib/memflow").canonicalize().unwrap();
    let verified: serde_json::Value = serde_json::from_str(&out).unwrap();
    let files: BTreeSet<String> = verified
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] == true)
        .filter_map(|f| f["file"].as_str())
        .filter(|f| Path::new(f).starts_with(&plugin_dir))
        .map(|f| Path::new(f).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> =
        ["coredump", "dummy", "linux", "native", "qemu"].iter().map(|n| format!("libmemflow_{n}.so")).collect();
    assert_eq!(files, expected, "{out}");
    // And it works: the process list of the guest dump, from the installed plugins.
    let ps = run(Command::new(&tool)
        .args(["-c", &format!("coredump:{} -> linux", fixture_dump().display()), "ps", "--json"])
        .env_remove("MEMFLOW_PLUGIN_PATH")
        .env("HOME", &home));
    let ps: serde_json::Value = serde_json::from_str(&ps).unwrap();
    let names: BTreeSet<&str> = ps.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains("init") && names.len() > 3, "{ps}");
}

/// The libraries a shared object needs (`DT_NEEDED`).
fn needed(lib: &Path) -> BTreeSet<String> {
    let dynamic = run(Command::new("readelf").arg("-d").arg(lib));
    dynamic
        .lines()
        .filter_map(|l| l.split_once("Shared library: ["))
        .map(|(_, n)| n.trim_end_matches(']').to_string())
        .collect()
}

#[test]
fn plugins_carry_their_own_runtime_and_export_only_the_descriptor() {
    // Why one binary never holds two Rust static libraries (README.md): a plugin is a
    // separate shared library that exports its descriptor only and needs system libraries
    // only, never libmemflow_ffi.
    let sdk = sdk();
    let rust_plugins = ["coredump", "dummy", "linux", "native", "qemu"]
        .map(|p| sdk.prefix.join(format!("lib/memflow/libmemflow_{p}.so")));
    let c_plugins = C_PLUGINS.map(|p| sdk.c11.join(format!("libmemflow_{p}.so")));
    for lib in rust_plugins.iter().chain(&c_plugins) {
        let symbols = run(Command::new("nm").args(["-D", "--defined-only"]).arg(lib));
        let names: Vec<&str> = symbols.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
        assert!(
            !names.is_empty() && names.iter().all(|n| n.starts_with("MEMFLOW_PLUGIN")),
            "{} exports only descriptors: {names:?}",
            lib.display()
        );
        let libs = needed(lib);
        assert!(
            libs.iter().all(|n| n.starts_with("libc.so") || n.starts_with("libgcc_s.so") || n.starts_with("ld-linux")),
            "{}: {libs:?}",
            lib.display()
        );
    }
    for lib in &c_plugins {
        assert_eq!(needed(lib), ["libc.so.6".to_string()].into(), "{} links nothing but libc", lib.display());
    }
    // C++ plugins: the descriptor only, and the C++ runtime but no memflow library.
    for plugin in CPP_PLUGINS {
        let lib = sdk.cpp.join(format!("libmemflow_{plugin}.so"));
        let symbols = run(Command::new("nm").args(["-D", "--defined-only"]).arg(&lib));
        let names: Vec<&str> = symbols.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
        assert_eq!(names, ["MEMFLOW_PLUGIN"], "{}", lib.display());
        let libs = needed(&lib);
        assert!(
            libs.iter().all(|n| ["libstdc++.so", "libm.so", "libgcc_s.so", "libc.so"].iter().any(|p| n.starts_with(p))),
            "{}: {libs:?}",
            lib.display()
        );
    }
}

/// The plugins the C++ examples build (`libmemflow_<name>.so` beside the programs).
const CPP_PLUGINS: [&str; 2] = ["cpp_file", "cpp_procfs"];

/// The plugins the C examples build (`libmemflow_<name>.so` beside the programs).
const C_PLUGINS: [&str; 3] = ["cbuffer", "procfs", "cpu_spaces"];

#[test]
fn static_link_interface_and_pc_have_the_rustc_native_libs() {
    let sdk = sdk();
    let rustc = rustc_native_static_libs(sdk);
    assert!(rustc.iter().any(|l| l == "-lc"), "{rustc:?}");

    // CMake: the imported target's link interface, seen by a consumer of the installed package.
    let probe = sdk.work.join("probe");
    std::fs::create_dir_all(&probe).unwrap();
    std::fs::write(
        probe.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.16)\nproject(probe C)\n\
             find_package(memflow {} EXACT CONFIG REQUIRED)\n\
             get_target_property(libs memflow::memflow_static INTERFACE_LINK_LIBRARIES)\n\
             message(STATUS \"LINK=${{libs}}\")\nmessage(STATUS \"NATIVE=${{memflow_NATIVE_STATIC_LIBS}}\")\n",
            env!("CARGO_PKG_VERSION")
        ),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(probe.join("build"));
    let out = run(Command::new("cmake")
        .arg("-S")
        .arg(&probe)
        .arg("-B")
        .arg(probe.join("build"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", sdk.prefix.display())));
    let value = |key: &str| -> Vec<String> {
        let line = out
            .lines()
            .find_map(|l| l.split_once(&format!("-- {key}=")).map(|(_, v)| v))
            .unwrap_or_else(|| panic!("{out}"));
        line.split(';').map(str::to_string).collect()
    };
    assert_eq!(value("LINK"), rustc, "memflow::memflow_static INTERFACE_LINK_LIBRARIES");
    assert_eq!(value("NATIVE"), rustc, "memflow_NATIVE_STATIC_LIBS");

    // A newer minor version is not compatible with 0.x.
    std::fs::write(
        probe.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.16)\nproject(probe C)\nfind_package(memflow 0.99 CONFIG REQUIRED)\n",
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(probe.join("build"));
    let refused = output(
        Command::new("cmake")
            .arg("-S")
            .arg(&probe)
            .arg("-B")
            .arg(probe.join("build"))
            .arg(format!("-DCMAKE_PREFIX_PATH={}", sdk.prefix.display())),
    );
    assert!(!refused.status.success(), "find_package(memflow 0.99) must fail");

    // pkg-config: Libs.private is the archive and exactly rustc's list, and --static passes
    // them on.
    let pc = std::fs::read_to_string(sdk.prefix.join("lib/pkgconfig/memflow.pc")).unwrap();
    let private = pc.lines().find_map(|l| l.strip_prefix("Libs.private: ")).expect("Libs.private");
    let private: Vec<&str> = private.split_whitespace().collect();
    assert_eq!(private[0], "${libdir}/libmemflow_ffi.a", "{pc}");
    assert_eq!(private[1..], rustc, "{pc}");
    let static_libs = run(pkg_config(sdk).args(["--static", "--libs", "memflow"]));
    let got: BTreeSet<&str> = static_libs.split_whitespace().collect();
    for lib in &rustc {
        assert!(got.contains(lib.as_str()), "pkg-config --static --libs memflow lacks {lib}: {static_libs}");
    }
}

fn pkg_config(sdk: &Sdk) -> Command {
    let mut cmd = Command::new("pkg-config");
    cmd.env("PKG_CONFIG_PATH", sdk.prefix.join("lib/pkgconfig"));
    cmd
}

/// Builds the C program `source` into `<work>/pkg-config/<exe>` the way a user does, through
/// the shell: `cc ... $(pkg-config --cflags --libs [--static] memflow)`.
fn build_with_pkg_config(sdk: &Sdk, source: &Path, exe: &str, pkg_config_options: &str) -> PathBuf {
    let out_dir = sdk.work.join("pkg-config");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(exe);
    let _ = std::fs::remove_file(&exe);
    let line = format!(
        "cc -std=c11 -Wall -Wextra -Werror {} -o {} $(pkg-config {pkg_config_options} memflow)",
        source.display(),
        exe.display()
    );
    run(Command::new("sh").args(["-c", &line]).env("PKG_CONFIG_PATH", sdk.prefix.join("lib/pkgconfig")));
    exe
}

#[test]
fn builds_with_pkg_config() {
    let sdk = sdk();
    let source = sdk.repo.join("examples-c/process_list.c");
    run(pkg_config(sdk).args(["--exists", "memflow"]));
    let soname = |exe: &Path| needed(exe).into_iter().find(|n| n.starts_with("libmemflow_ffi"));

    // The shared library.
    let exe = build_with_pkg_config(sdk, &source, "process_list", "--cflags --libs");
    assert!(soname(&exe).is_some_and(|n| n.starts_with("libmemflow_ffi.so.")), "{:?}", needed(&exe));
    let out = run(example(&exe).env("LD_LIBRARY_PATH", sdk.prefix.join("lib")));
    assert_lists_this_process(&out);

    // --static: the archive, with no dependency on the shared library; it runs without it.
    let exe = build_with_pkg_config(sdk, &source, "process_list_static", "--cflags --libs --static");
    assert_eq!(soname(&exe), None, "{:?}", needed(&exe));
    let ldd = run(Command::new("ldd").arg(&exe));
    assert!(!ldd.contains("libmemflow_ffi"), "{ldd}");
    let nm = run(Command::new("nm").arg("--defined-only").arg(&exe));
    assert!(nm.lines().any(|l| l.ends_with(" T mf_inventory_scan")), "the program holds the library's code");
    assert_lists_this_process(&run(&mut example(&exe)));
    // The .pc locates its prefix from its own place.
    let include = run(pkg_config(sdk).args(["--cflags", "memflow"]));
    let dir = include.trim().strip_prefix("-I").expect("an -I flag");
    assert_eq!(Path::new(dir).canonicalize().unwrap(), sdk.prefix.join("include").canonicalize().unwrap());
}

#[test]
fn builds_through_add_subdirectory() {
    let sdk = sdk();
    let src = sdk.work.join("subdir-consumer");
    let build = sdk.work.join("subdir-consumer-build");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("CMakeLists.txt"),
        format!(
            "cmake_minimum_required(VERSION 3.16)\nproject(consumer C)\n\
             add_subdirectory(\"{repo}\" memflow)\n\
             add_subdirectory(\"{repo}/examples-c\" examples-c)\n\
             add_executable(version version.c)\n\
             target_link_libraries(version PRIVATE memflow::memflow_static)\n",
            repo = sdk.repo.display()
        ),
    )
    .unwrap();
    std::fs::write(
        src.join("version.c"),
        "#include <memflow.h>\n#include <stdio.h>\n#include <string.h>\n\
         int main(void) { printf(\"%s %u\\n\", mf_version(), mf_abi_version());\n\
         return mf_abi_version() == MF_ABI_VERSION ? 0 : 1; }\n",
    )
    .unwrap();
    // Reuse the setup's cargo build: nothing is recompiled.
    let cargo_dir = format!("-DMEMFLOW_CARGO_TARGET_DIR={}", sdk.build.join("cargo").display());
    cmake_project(&src, &build, &[&cargo_dir, &format!("-DMEMFLOW_CARGO={}", env!("CARGO"))]);

    let out = run(&mut example(&build.join("version")));
    assert!(out.starts_with(env!("CARGO_PKG_VERSION")), "{out}");
    assert_lists_this_process(&run(&mut example(&build.join("examples-c/process_list"))));
    // The C plugin built in this tree is found beside the programs.
    let dump = run(example(&build.join("examples-c/phys_read")).args(["0x1000", "16"]));
    assert_eq!(parse_hexdump(&dump), (0x1000, [0x1000u64.to_le_bytes(), 0x1008u64.to_le_bytes()].concat()));
}

#[test]
fn dist_archive_is_relocatable() {
    let sdk = sdk();
    let archive = xtask::dist::dist(&sdk.build).expect("xtask dist");
    let name = format!("memflow-sdk-{}-x86_64-linux", env!("CARGO_PKG_VERSION"));
    assert_eq!(archive, sdk.repo.join("target/dist").join(format!("{name}.tar.gz")));

    // Unpack it somewhere else and use it alone: the repository is not involved from here on.
    let elsewhere = sdk.work.join("unpacked");
    let _ = std::fs::remove_dir_all(&elsewhere);
    std::fs::create_dir_all(&elsewhere).unwrap();
    run(Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&elsewhere));
    let root = elsewhere.join(&name);
    let listing = run(Command::new("tar").arg("-tvzf").arg(&archive));
    assert!(
        listing.lines().all(|l| l.contains(" 0/0 ") || l.contains(" root/root ")),
        "archive entries are owned by root:\n{listing}"
    );
    for file in ["lib/cmake/memflow/memflowConfig.cmake", "lib/pkgconfig/memflow.pc"] {
        let content = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            !content.contains("target/dist") && !content.contains(&*sdk.repo.to_string_lossy()),
            "{file} holds an absolute path:\n{content}"
        );
    }

    let examples = root.join("share/memflow/examples");
    let prefix_path = format!("-DCMAKE_PREFIX_PATH={}", root.display());
    let c = elsewhere.join("build-c");
    cmake_project(&examples.join("examples-c"), &c, &[&prefix_path]);
    let cpp = elsewhere.join("build-cpp");
    cmake_project(&examples.join("examples-cpp"), &cpp, &[&prefix_path]);
    let cache = std::fs::read_to_string(c.join("CMakeCache.txt")).unwrap();
    assert!(
        cache.contains(&format!("memflow_DIR:PATH={}", root.join("lib/cmake/memflow").display())),
        "found the unpacked SDK"
    );

    assert_lists_this_process(&run(&mut example(&c.join("process_list"))));
    assert_lists_this_process(&run(&mut example(&c.join("process_list_static"))));
    let out = run(example(&cpp.join("processes")).arg("native"));
    assert!(out.contains("marker read through the OS layer: 0x6d656d666c6f7721 (matches)"), "{out}");
    let dump = run(example(&c.join("phys_read")).args(["0x8", "8"]));
    assert_eq!(parse_hexdump(&dump), (8, 8u64.to_le_bytes().to_vec()));
    // The shipped plugins in lib/memflow are found through MEMFLOW_PLUGIN_PATH.
    let dump = fixture_dump();
    let out = run(example(&c.join("phys_read"))
        .args(["0x100000", "32", &format!("coredump:{}", dump.display())])
        .env("MEMFLOW_PLUGIN_PATH", root.join("lib/memflow")));
    assert_eq!(parse_hexdump(&out).1, rust_phys_read(&dump, 0x10_0000, 32));
}

// ---- the examples on this machine ---------------------------------------------------------

/// Checks `process_list` output: a line with this test's pid, its parent's pid and its name,
/// and the count at the end.
fn assert_lists_this_process(out: &str) {
    assert_lists_pid(out);
    assert!(out.trim_end().ends_with(" processes"), "{out}");
}

/// Checks that a listing has a line `PID PPID  NAME ...` for this test process.
fn assert_lists_pid(out: &str) {
    let pid = std::process::id().to_string();
    let ppid = std::os::unix::process::parent_id().to_string();
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pid.as_str()))
        .unwrap_or_else(|| panic!("pid {pid} is not listed:\n{out}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[1], ppid, "{line}");
    assert!(line.contains(&format!("  {}", own_name())), "name {} in {line}", own_name());
}

#[test]
fn c_process_list_lists_this_process() {
    let sdk = sdk();
    for exe in [sdk.c99.join("process_list"), sdk.c11.join("process_list"), sdk.c11.join("process_list_static")] {
        assert_lists_this_process(&run(&mut example(&exe)));
        assert_lists_this_process(&run(example(&exe).arg("native")));
    }
    // The static program carries no dependency on the shared library.
    let needed = run(Command::new("readelf").arg("-d").arg(sdk.c11.join("process_list_static")));
    assert!(!needed.contains("libmemflow_ffi"), "{needed}");
    // A bad chain is an error with the library's message, not a crash.
    let out = output(example(&sdk.c11.join("process_list")).arg("nosuchos"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no plugin named `nosuchos`"), "{}", text(&out.stderr));
}

/// Checks the output `out` of the `process_list` example on the guest `what` against the
/// guest's `ps` section `ps_section`: every process of it (but `ps` itself, gone by the
/// time memory was read) with its parent, name (`ps` adds a workqueue to a worker's) and,
/// for the probes the guest started, the path of their program.
fn assert_lists_guest_ps(what: &str, out: &str, ps_section: &str) {
    let listed: Vec<Vec<&str>> = out.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    let count = format!("{} processes", listed.len() - 1);
    assert_eq!(out.lines().last(), Some(count.as_str()), "{what}: {out}");
    let ps: Vec<Vec<&str>> = ps_section.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert!(ps.len() > 10, "{what}: short ps section");
    for line in ps.iter().filter(|l| l[2] != "ps") {
        let found = listed.iter().find(|p| p[0] == line[0]).unwrap_or_else(|| panic!("{what}: {line:?} in {out}"));
        assert_eq!(found[1], line[1], "{what}: parent of {line:?}");
        let (ps_name, comm) = (line[2..].join(" "), found[2]);
        assert!(
            ps_name == comm || ps_name.strip_prefix(comm).is_some_and(|rest| rest.starts_with('-')),
            "{what}: {line:?} is {found:?}"
        );
    }
    for probe in ["mfprobe_alpha", "mfprobe_beta", "mfprobe_marker"] {
        let found = listed.iter().find(|p| p[2] == probe).unwrap_or_else(|| panic!("{what}: {probe} in {out}"));
        assert_eq!(found[1..], ["1", probe, "/bin/busybox"], "{what}");
    }
}

/// The unchanged `process_list` example on `coredump:<dump> -> linux` for an x86-64 guest,
/// the three ARM64 guests and the two RISC-V guests (see [`assert_lists_guest_ps`]).
#[test]
fn c_process_list_on_x86_64_arm64_and_riscv_guest_dumps() {
    let sdk = sdk();
    for name in ["cloud-4l", "arm64-4k", "arm64-16k", "arm64-max", "riscv64-sv39", "riscv64-sv57"] {
        let fx = Fixture::load(name);
        let chain = format!("coredump:{} -> linux", fx.dir.join("dump.elf").display());
        let out = run(example(&sdk.c11.join("process_list")).arg(&chain));
        assert_lists_guest_ps(name, &out, fx.section("ps"));
    }
}

/// The unchanged `process_list` example on `qemu:NAME -> linux` for a live ARM64 guest (the
/// `arm64-4k` fixture's kernel and CPU under `qemu-system-aarch64`, running while it is read).
#[test]
fn c_process_list_on_a_live_arm64_guest() {
    let sdk = sdk();
    let options = xtask::fixture::default_fixture("arm64-4k").unwrap().options;
    let guest =
        LiveGuest::start_with(&format!("sdk-arm64-{}", std::process::id()), &options).unwrap_or_else(|e| panic!("{e}"));
    let out = run(example(&sdk.c11.join("process_list")).arg(format!("qemu:{} -> linux", guest.name)));
    let serial = std::fs::read_to_string(&guest.serial).unwrap().replace('\r', "");
    assert_lists_guest_ps(&guest.name, &out, section(&serial, "ps").expect("the guest's ps section"));
}

/// The same example on a live RISC-V guest (the `riscv64-sv39` fixture's kernel and options)
/// through `qemu:NAME,qmp=SOCKET -> linux`.
#[test]
fn c_process_list_on_a_live_riscv_guest() {
    let sdk = sdk();
    let options = xtask::fixture::default_fixture("riscv64-sv39").expect("a default fixture").options;
    let guest =
        LiveGuest::start_with(&format!("sdk-riscv-{}", std::process::id()), &options).unwrap_or_else(|e| panic!("{e}"));
    let chain = format!("qemu:{},qmp={} -> linux", guest.name, guest.qmp.display());
    let out = run(example(&sdk.c11.join("process_list")).arg(&chain));
    let serial = std::fs::read_to_string(&guest.serial).unwrap().replace('\r', "");
    assert_lists_guest_ps(&guest.name, &out, section(&serial, "ps").expect("the guest's ps section"));
}

#[test]
fn c_examples_find_list_dump_and_export() {
    let sdk = sdk();
    let sleeper = Sleeper::start(sdk, "c");
    let pid = sleeper.child.id().to_string();
    for dir in [&sdk.c99, &sdk.c11] {
        let out = run(example(&dir.join("find_process")).arg(&sleeper.name));
        assert!(
            out.starts_with(&format!("pid {pid}\nppid {}\nname {}\nstate alive\n", std::process::id(), sleeper.name)),
            "{out}"
        );
        assert!(out.contains(&format!("path {}\n", sleeper.exe.display())), "{out}");
        assert!(out.contains(&format!("main module {} at 0x", sleeper.name)), "{out}");

        let out = run(example(&dir.join("module_list")).arg(&pid));
        let names: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().nth(2)).collect();
        assert!(names.contains(&sleeper.name.as_str()) && names.contains(&"libc.so.6"), "{out}");

        // The first page of the mapped executable is the first page of its file.
        let file = sdk.work.join(format!("module-{}.bin", dir.file_name().unwrap().to_string_lossy()));
        let out = run(example(&dir.join("module_dump")).args([pid.as_str(), &sleeper.name]).arg(&file));
        assert!(out.starts_with("wrote ") && out.contains(&format!(" of {} ", sleeper.name)), "{out}");
        let dumped = std::fs::read(&file).unwrap();
        let original = std::fs::read(&sleeper.exe).unwrap();
        assert_eq!(dumped[..4096], original[..4096]);
    }

    // This process's libc: the example's address of getpid is where this process has it.
    let out = run(example(&sdk.c11.join("module_exports")).args([&std::process::id().to_string(), "libc.so.6"]));
    let getpid = out.lines().find(|l| l.ends_with(" getpid")).unwrap_or_else(|| panic!("{out}"));
    let addr = u64::from_str_radix(getpid.trim_start_matches("0x").split(' ').next().unwrap(), 16).unwrap();
    assert_eq!(addr, libc::getpid as *const () as u64, "{getpid}");

    // Errors are reported with the library's message.
    let out = output(example(&sdk.c11.join("find_process")).arg("no-such-process-name"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error: no-such-process-name: os layer: not found"), "{}", text(&out.stderr));
}

#[test]
fn cpp_examples_list_processes_and_read_typed() {
    let sdk = sdk();
    let out = run(&mut example(&sdk.cpp.join("processes")));
    assert_lists_pid(&out);
    assert!(out.contains(" processes, ") && out.contains(" distinct names"), "{out}");
    assert!(out.contains("(processes), largest first:"), "{out}");
    assert!(out.contains(" libmemflow_ffi.so"), "the program's own modules: {out}");
    assert!(out.contains("marker read through the OS layer: 0x6d656d666c6f7721 (matches)"), "{out}");

    // Typed reads from the C plugin's built-in buffer: each 8-byte word holds its address.
    let out = run(example(&sdk.cpp.join("typed_reads")).env("MEMFLOW_PLUGIN_PATH", &sdk.c11));
    for expected in [
        "expected error: kind not found",
        "cbuffer: 1048576 bytes, highest address 0xfffff",
        "u64 at 0x1000 = 0x0000000000001000",
        "u64 at 0x10000 = 0x0000000000010000",
        "u32[4] at 0x1000 = 00001000 00000000 00001008 00000000",
        "Pair at 0x1000 = {low 0x1000, high 0x0}",
        "16 bytes at the last 8: partial",
        "read<T> past the end throws: partial=yes",
    ] {
        assert!(out.contains(expected), "`{expected}` missing:\n{out}");
    }
}

// ---- physical reads: the QEMU dump and the C plugin ---------------------------------------

#[test]
fn c_phys_read_matches_rust_on_the_qemu_dump() {
    let sdk = sdk();
    let dump = fixture_dump();
    let chain = format!("coredump:{}", dump.display());
    // Low memory, the kernel's usual load area, deeper RAM, and a range running into the end.
    let meta = open(&dump, OpenOptions::default()).unwrap().metadata();
    let end = meta.max_address.to_umem() as u64 + 1;
    for (addr, len) in [(0x0u64, 64usize), (0x9_f000, 256), (0x100_0000, 4096), (0x300_0123, 100), (end - 8, 16)] {
        for dir in [&sdk.c99, &sdk.c11] {
            let out = run(example(&dir.join("phys_read")).args([&format!("{addr:#x}"), &len.to_string(), &chain]));
            assert_eq!(parse_hexdump(&out), (addr, rust_phys_read(&dump, addr, len)), "{len} bytes at {addr:#x}");
            assert_eq!(out.contains("# partial read"), addr == end - 8, "{out}");
        }
    }
    // The C++ typed reads agree too.
    let out = run(example(&sdk.cpp.join("typed_reads")).arg(&chain));
    let word = u64::from_le_bytes(rust_phys_read(&dump, 0x10000, 8).try_into().unwrap());
    assert!(out.contains(&format!("u64 at 0x10000 = 0x{word:016x}")), "{out}");
}

#[test]
fn c_read_benchmark_reports_rates() {
    let sdk = sdk();
    for chain in ["cbuffer".to_string(), format!("coredump:{}", fixture_dump().display())] {
        let out = run(example(&sdk.c11.join("phys_bench")).args([&chain, "100"]));
        let rows: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(rows.len(), 4, "{out}");
        for (row, size) in rows.iter().zip(["8 B", "4096 B", "8 B", "4096 B"]) {
            assert!(row.trim_start().starts_with(size), "{row}");
            let fields: Vec<&str> = row.split_whitespace().collect();
            let rate = |unit: &str| fields[fields.iter().position(|f| *f == unit).unwrap() - 1].parse::<f64>().unwrap();
            // Rates depend on the machine's load: only check that reads happened and were counted.
            assert!(rate("reads/s") > 0.0 && rate("MB/s") >= 0.0, "{row}");
        }
    }
}

/// Checks a file connector plugin (`name:PATH`) as Rust sees it: every byte of a file as in
/// the file, the end partial, read-only, found through a chain string, errors with reasons.
fn check_file_connector(sdk: &Sdk, inv: &Inventory, name: &str) {
    let (file, bytes) = data_file(sdk, 100_003);
    let args = Args::parse(&format!("'{}'", file.display())).unwrap();
    let mut conn = inv.create_connector(name, None, &args).unwrap();
    let meta = conn.metadata();
    assert_eq!(
        (meta.real_size as usize, meta.max_address.to_umem() as usize, meta.readonly),
        (bytes.len(), bytes.len() - 1, true),
        "{name}"
    );
    let mut all = vec![0u8; bytes.len()];
    conn.phys_read_raw_into(PhysicalAddress::plain(Address::NULL), &mut all).unwrap();
    assert_eq!(all, bytes, "{name}");
    let mut tail = [0xffu8; 16];
    let at = bytes.len() as u64 - 5;
    assert_eq!(
        conn.phys_read_raw_into(PhysicalAddress::plain(Address::new(at)), &mut tail),
        Err(PartialError::PartialRead(()))
    );
    assert_eq!((&tail[..5], &tail[5..]), (&bytes[bytes.len() - 5..], &[0u8; 11][..]), "{name}");
    assert!(conn.phys_write(PhysicalAddress::plain(Address::new(0)), &1u8).is_err(), "{name}");
    // Batches (split by the host into the plugin's single reads) and a chain string.
    use memflow_core::mem::MemoryView;
    let mut chained = inv.create_connector_chain(&format!("{name}:'{}',cache=true", file.display())).unwrap();
    let mut view = chained.phys_view();
    let mut words = [(Address::new(8), 0u64), (Address::new(0x4000), 0), (Address::new(99_990), 0)];
    view.read_many(&mut words).unwrap();
    for (addr, word) in words {
        let at = addr.to_umem() as usize;
        assert_eq!(word.to_le_bytes(), bytes[at..at + 8], "{name} at {addr}");
    }
    // Errors come back with the plugin's reason.
    let err = inv.create_connector(name, None, &Args::parse("/nonexistent/file").unwrap()).err().unwrap();
    assert_eq!(err.kind, memflow_core::error::ErrorKind::NotFound, "{name}: {err}");
    assert!(err.to_string().contains("/nonexistent/file"), "{name}: {err}");
}

#[test]
fn c_plugin_loaded_by_rust_like_a_rust_plugin() {
    let sdk = sdk();
    let mut inv = Inventory::default();
    inv.add_file(&sdk.c11.join("libmemflow_cbuffer.so")).unwrap();
    let info = inv.plugins().next().unwrap().clone();
    assert_eq!((info.name.as_str(), info.kind, info.flavor), ("cbuffer", PluginKind::Connector, PluginFlavor::C));
    assert!(info.help.contains("PATH"), "{}", info.help);
    check_file_connector(sdk, &inv, "cbuffer");

    // The built-in buffer, through a chain with middleware: writable, patterned, clones share it.
    let mut conn = inv.create_connector_chain("cbuffer:cache=true").unwrap();
    assert_eq!(conn.phys_read::<u64>(PhysicalAddress::plain(Address::new(0x4_2008))).unwrap(), 0x4_2008);
    conn.phys_write(PhysicalAddress::plain(Address::new(0x10)), &0xdead_beef_u64).unwrap();
    let mut clone = conn.clone();
    assert_eq!(clone.phys_read::<u64>(PhysicalAddress::plain(Address::new(0x10))).unwrap(), 0xdead_beef);

    assert!(inv.create_connector("cbuffer", None, &Args::parse("nosuch=1").unwrap()).is_err());
}

#[test]
fn cpp_connector_plugin_passes_the_checks_of_the_c_one() {
    let sdk = sdk();
    let mut inv = Inventory::default();
    let added = inv.add_file(&sdk.cpp.join("libmemflow_cpp_file.so")).unwrap();
    assert_eq!((added[0].kind, added[0].flavor), (PluginKind::Connector, PluginFlavor::C));
    check_file_connector(sdk, &inv, "cpp_file");
    // A C++ exception in the constructor is an error with its message, not a crash.
    let err = inv.create_connector("cpp_file", None, &Args::default()).err().unwrap();
    assert!(err.to_string().contains("cpp_file: give a file path"), "{err}");
    // From C: phys_read through the C++ plugin.
    let (file, bytes) = data_file(sdk, 100_003);
    let out = run(example(&sdk.c11.join("phys_read"))
        .args(["0x100", "64", &format!("cpp_file:{}", file.display())])
        .env("MEMFLOW_PLUGIN_PATH", &sdk.cpp));
    assert_eq!(parse_hexdump(&out), (0x100, bytes[0x100..0x140].to_vec()));
}

#[test]
fn c_plugin_read_from_c_and_cpp() {
    let sdk = sdk();
    let (file, bytes) = data_file(sdk, 70_001);
    let chain = format!("cbuffer:{}", file.display());
    for dir in [&sdk.c99, &sdk.c11] {
        // Found beside the program, in the executable's directory.
        let out = run(example(&dir.join("phys_read")).args(["0x1234", "300", &chain]));
        assert_eq!(parse_hexdump(&out), (0x1234, bytes[0x1234..0x1234 + 300].to_vec()));
        assert!(
            out.starts_with(&format!("# {chain}: 70001 bytes backed, highest address 0x11170, read-only")),
            "{out}"
        );
        // The default chain is the plugin's built-in buffer.
        let out = run(example(&dir.join("phys_read")).args(["0xff8", "16"]));
        assert_eq!(parse_hexdump(&out), (0xff8, [0xff8u64.to_le_bytes(), 0x1000u64.to_le_bytes()].concat()));
    }
    // A path that needs quoting reaches the plugin intact.
    let odd = sdk.work.join("a dir, with=odd chars");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::copy(&file, odd.join("data.bin")).unwrap();
    let out = run(example(&sdk.c11.join("phys_read")).args([
        "0",
        "32",
        &format!("cbuffer:'{}'", odd.join("data.bin").display()),
    ]));
    assert_eq!(parse_hexdump(&out).1, bytes[..32]);

    // C++: typed reads of the file through the plugin.
    let out = run(example(&sdk.cpp.join("typed_reads")).arg(&chain).env("MEMFLOW_PLUGIN_PATH", &sdk.c11));
    let word = u64::from_le_bytes(bytes[0x1000..0x1008].try_into().unwrap());
    assert!(out.contains(&format!("u64 at 0x1000 = 0x{word:016x}")), "{out}");
    assert!(out.contains("u64 at 0x10000 = "), "{out}");

    // The plugin's refusal reaches the C program's message.
    let out = output(example(&sdk.c11.join("phys_read")).args(["0", "8", "cbuffer:nosuch=1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cbuffer: unknown argument (known: path): nosuch"), "{}", text(&out.stderr));
}

// ---- the OS layer plugin written in C ------------------------------------------------------

/// The facts the C `procfs` layer and the Rust `native` layer must agree on.
fn process_facts(info: &memflow_core::os::ProcessInfo) -> (u32, u32, String, String) {
    (info.pid, info.ppid, info.name.to_string(), info.path.to_string())
}

/// Checks an OS layer plugin over /proc (`name`, in `file`) against the Rust `native` layer:
/// the processes this test started and itself (pid, ppid, name, path, command line), reads of
/// known bytes, the module lists (libc in detail), mapped ranges, errors with reasons.
fn check_procfs_layer(sdk: &Sdk, file: &Path, name: &str, tag: &str) {
    use memflow_core::mem::MemoryView;
    use memflow_core::os::{Os, Process};
    let sleeper = Sleeper::start(sdk, tag);
    let mut inv = Inventory::default();
    let added = inv.add_file(file).unwrap();
    assert_eq!((added[0].name.as_str(), added[0].kind, added[0].flavor), (name, PluginKind::Os, PluginFlavor::C));
    let mut procfs = inv.create_os_chain(name).unwrap();
    let mut native = Inventory::builtin().create_os_chain("native").unwrap();

    // The processes this test started, and this test itself.
    let me = std::process::id();
    for pid in [sleeper.child.id(), me] {
        let (ours, theirs) = (procfs.process_info_by_pid(pid).unwrap(), native.process_info_by_pid(pid).unwrap());
        assert_eq!(process_facts(&ours), process_facts(&theirs), "pid {pid}");
        assert_eq!(ours.command_line, theirs.command_line, "pid {pid}");
    }
    let sleeper_info = procfs.process_info_by_name(&sleeper.name).unwrap();
    assert_eq!((sleeper_info.ppid, &*sleeper_info.path), (me, &*sleeper.exe.to_string_lossy()));
    let listed: Vec<u32> = procfs.process_info_list().unwrap().iter().map(|p| p.pid).collect();
    assert!(listed.contains(&me) && listed.contains(&sleeper.child.id()), "{listed:?}");

    // Reads of known bytes, through the plugin's process_vm_readv.
    static KNOWN: [u8; 16] = *b"plugin reads ok!";
    let at = Address::from(KNOWN.as_ptr() as usize);
    let mut ours = procfs.process_by_pid(me).unwrap();
    let mut theirs = native.process_by_pid(me).unwrap();
    let mut buf = [0u8; 16];
    ours.read_raw_into(at, &mut buf).unwrap();
    assert_eq!(buf, KNOWN);
    assert_eq!(ours.read::<u64>(at + 8usize).unwrap(), theirs.read::<u64>(at + 8usize).unwrap());
    assert!(ours.read_raw_into(Address::new(8), &mut buf).is_err(), "page 0 is not mapped");

    // The module lists agree for libc (and the main module is the executable).
    let libc = |p: &mut memflow_core::plugins::ProcessInstanceArcBox<'static>| p.module_by_name("libc.so.6").unwrap();
    let (a, b) = (libc(&mut ours), libc(&mut theirs));
    assert_eq!((a.base, a.size, &*a.name, &*a.path, a.arch), (b.base, b.size, &*b.name, &*b.path, b.arch));
    let names = |p: &mut memflow_core::plugins::ProcessInstanceArcBox<'static>| -> Vec<String> {
        p.module_list().unwrap().iter().map(|m| m.path.to_string()).collect()
    };
    assert_eq!(names(&mut ours), names(&mut theirs));
    let mut sleeping = procfs.process_by_info(sleeper_info).unwrap();
    assert_eq!(&*sleeping.primary_module().unwrap().name, sleeper.name.as_str());
    assert_eq!(
        sleeping.mapped_mem(-1).unwrap(),
        native.process_by_pid(sleeper.child.id()).unwrap().mapped_mem(-1).unwrap()
    );
    // What the plugin leaves out is `Unsupported`, not a crash.
    let err = ours.module_exports(&a).unwrap_err();
    assert_eq!(err.kind, memflow_core::error::ErrorKind::Unsupported, "{err}");
    assert!(procfs.kernel_symbol("init_task").is_err());
    // The plugin's reason comes with its error.
    let err = inv.create_os(name, None, &Args::parse("bogus=1").unwrap()).err().unwrap();
    assert!(err.to_string().contains(&format!("{name}: takes no arguments, got: bogus=1")), "{err}");
}

#[test]
fn c_os_plugin_procfs_agrees_with_the_native_layer() {
    let sdk = sdk();
    check_procfs_layer(sdk, &sdk.c11.join("libmemflow_procfs.so"), "procfs", "p");
}

#[test]
fn cpp_os_plugin_procfs_agrees_with_the_native_layer() {
    let sdk = sdk();
    check_procfs_layer(sdk, &sdk.cpp.join("libmemflow_cpp_procfs.so"), "cpp_procfs", "r");
    assert_lists_this_process(&run(example(&sdk.c11.join("process_list"))
        .arg("cpp_procfs")
        .env("MEMFLOW_PLUGIN_PATH", &sdk.cpp)));
}

#[test]
fn c_os_plugin_procfs_from_c_and_cpp_programs() {
    let sdk = sdk();
    let (pid, ppid) = (std::process::id(), std::os::unix::process::parent_id());
    for dir in [&sdk.c99, &sdk.c11] {
        assert_lists_this_process(&run(example(&dir.join("process_list")).arg("procfs")));
        let out = run(example(&dir.join("find_process")).args([&pid.to_string(), "procfs"]));
        assert!(out.starts_with(&format!("pid {pid}\nppid {ppid}\nname {}\n", own_name())), "{out}");
    }
    // The C++ wrappers over the C plugin: processes and this process's modules.
    let out = run(example(&sdk.cpp.join("processes"))
        .args(["procfs", &pid.to_string()])
        .env("MEMFLOW_PLUGIN_PATH", &sdk.c11));
    assert_lists_pid(&out);
    assert!(out.contains(" libc.so.6"), "the modules of this process: {out}");
}

#[test]
fn c_os_plugin_cpu_spaces_reads_the_kernel_bytes_the_linux_layer_reads() {
    use memflow_core::connector::CpuState;
    use memflow_core::error::PartialResultExt;
    use memflow_core::mem::MemoryView;
    use memflow_core::os::Os;
    use memflow_core::translate::VirtualTranslate;
    let sdk = sdk();
    let dump = fixture_dump();
    let mut inv = Inventory::builtin();
    inv.add_file(&sdk.c11.join("libmemflow_cpu_spaces.so")).unwrap();
    let mut linux = inv.create_os_chain(&format!("coredump:'{}' -> linux", dump.display())).unwrap();
    let banner = linux.kernel_symbol("linux_banner").unwrap();
    let expected = linux.as_mut_impl_memoryview().unwrap().read_raw(banner, 256).data().unwrap();
    assert!(expected.starts_with(b"Linux version "), "{}", String::from_utf8_lossy(&expected));

    // One address space per distinct vCPU root; the host translates (the plugin has no read).
    let mut spaces = inv.create_os_chain(&format!("coredump:'{}' -> cpu_spaces", dump.display())).unwrap();
    let list = spaces.process_info_list().unwrap();
    assert!(!list.is_empty() && list[0].name.as_ref() == "cpu0", "{list:?}");
    let cpu0 = &list[0];
    assert_eq!(cpu0.table_root.to_umem() & 0xfff, 0, "a page-aligned root: {cpu0:?}");
    let mut space = spaces.process_by_info(cpu0.clone()).unwrap();
    assert_eq!(space.read_raw(banner, 256).data().unwrap(), expected);
    assert!(space.virt_to_phys(banner).is_ok(), "host translation is reachable through the process");
    // The OS passes the connector's physical memory and CPU state through.
    let cpu = spaces.as_ref_impl_cpustate().expect("CPU state through the C OS layer");
    assert_eq!(cpu.x86_registers(0).unwrap().page_table_root().unwrap(), cpu0.table_root);
    let phys = spaces.as_mut_impl_physicalmemory().expect("physical memory through the C OS layer");
    let mut page = [0u8; 64];
    phys.phys_read_raw_into(PhysicalAddress::plain(Address::new(0x10_0000)), &mut page).unwrap();
    assert_eq!(page[..], rust_phys_read(&dump, 0x10_0000, 64)[..]);
    // A chain string without a connector below is refused with the plugin's reason.
    let err = inv.create_os_chain("cpu_spaces").err().unwrap();
    assert!(err.to_string().contains("needs a connector with CPU state"), "{err}");
    // From C, the spaces are processes like any other.
    let chain = format!("coredump:{} -> cpu_spaces", dump.display());
    let out = run(example(&sdk.c11.join("process_list")).arg(&chain));
    assert!(out.lines().any(|l| l.contains("  cpu0")), "{out}");
}

// ---- valgrind -----------------------------------------------------------------------------

#[test]
fn examples_run_clean_under_valgrind() {
    let sdk = sdk();
    let sleeper = Sleeper::start(sdk, "v");
    let pid = sleeper.child.id().to_string();
    let dump = format!("coredump:{}", fixture_dump().display());
    let (file, _) = data_file(sdk, 10_000);
    let cbuffer_file = format!("cbuffer:{}", file.display());
    let dump_out = sdk.work.join("valgrind-module.bin");
    let c = |name: &str| sdk.c11.join(name);
    let runs: Vec<(PathBuf, Vec<String>)> = [
        (c("process_list"), vec![]),
        (c("process_list"), vec!["procfs".into()]),
        (c("process_list"), vec!["cpp_procfs".into()]),
        (c("process_list"), vec![format!("{dump} -> cpu_spaces")]),
        (c("find_process"), vec![sleeper.name.clone(), "procfs".into()]),
        (c("module_list"), vec![pid.clone(), "procfs".into()]),
        (c("phys_read"), vec!["0x10".into(), "64".into(), format!("cpp_file:{}", file.display())]),
        (c("process_list_static"), vec![]),
        (c("find_process"), vec![sleeper.name.clone()]),
        (c("module_list"), vec![pid.clone()]),
        (c("module_exports"), vec![pid.clone(), "libc.so.6".into()]),
        (c("module_dump"), vec![pid.clone(), sleeper.name.clone(), dump_out.display().to_string()]),
        (c("phys_read"), vec!["0x1000".into(), "64".into(), dump.clone()]),
        (c("phys_read"), vec!["0x10".into(), "64".into(), cbuffer_file.clone()]),
        (c("phys_read"), vec!["0xffff8".into(), "64".into()]),
        (c("phys_bench"), vec![dump.clone(), "20".into()]),
        (sdk.cpp.join("processes"), vec![]),
        (sdk.cpp.join("typed_reads"), vec![]),
        (sdk.cpp.join("typed_reads"), vec![dump.clone()]),
        // Failures must not leak either.
        (c("process_list"), vec!["nosuchos".into()]),
        (c("phys_read"), vec!["0".into(), "8".into(), "cbuffer:nosuch=1".into()]),
    ]
    .into_iter()
    .collect();
    let mut failures = Vec::new();
    for (exe, args) in &runs {
        let out = output(
            Command::new("valgrind")
                .args(["--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite", "--quiet"])
                .arg(exe)
                .args(args)
                .env("MEMFLOW_PLUGIN_PATH", std::env::join_paths([&sdk.c11, &sdk.cpp]).unwrap()),
        );
        let expect_failure = args.iter().any(|a| a.contains("nosuch"));
        if out.status.code() != Some(if expect_failure { 1 } else { 0 }) {
            failures.push(format!("{} {args:?}: {}\n{}", exe.display(), out.status, text(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "valgrind found problems:\n{}", failures.join("\n"));
}

// ---- the plugin listing ---------------------------------------------------------------------

/// Runs `tests/c/inventory_scan` (built against the installed shared library), optionally
/// adding plugin file `added`; returns its plugin lines (name, kind, path) and the files it had
/// mapped.
fn inventory_scan(sdk: &Sdk, exe: &Path, added: Option<&Path>) -> (Vec<[String; 3]>, BTreeSet<PathBuf>) {
    let out = run(example(exe).args(added).env("LD_LIBRARY_PATH", sdk.prefix.join("lib")));
    let (plugins, maps) = out.split_once("maps\n").unwrap_or_else(|| panic!("{out}"));
    let plugins = plugins
        .lines()
        .map(|l| match l.splitn(4, ' ').collect::<Vec<_>>()[..] {
            ["plugin", name, kind, path] => [name, kind, path].map(str::to_string),
            _ => panic!("not a plugin line: {l}"),
        })
        .collect();
    let mapped = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).map(PathBuf::from).collect();
    (plugins, mapped)
}

#[test]
fn c_inventory_scan_lists_each_plugin_once_and_loads_no_shipped_file() {
    // The installed library finds the shipped plugin files in lib/memflow beside it. Their
    // plugins are built into it with the same version: each is listed once, as the built-in
    // one, and no file is loaded.
    let sdk = sdk();
    let exe =
        build_with_pkg_config(sdk, &sdk.repo.join("tests/c/inventory_scan.c"), "inventory_scan", "--cflags --libs");
    let plugin_dir = sdk.prefix.join("lib/memflow").canonicalize().unwrap();
    let (plugins, mapped) = inventory_scan(sdk, &exe, None);
    let mut seen = BTreeSet::new();
    for [name, kind, _] in &plugins {
        assert!(seen.insert((name, kind)), "{name} ({kind}) is listed twice: {plugins:?}");
    }
    let builtin: BTreeSet<[&str; 2]> =
        plugins.iter().filter(|[_, _, path]| path == "builtin").map(|[n, k, _]| [n.as_str(), k.as_str()]).collect();
    let shipped = [
        ["coredump", "connector"],
        ["dummy", "connector"],
        ["dummy", "os"],
        ["linux", "os"],
        ["native", "os"],
        ["qemu", "connector"],
    ];
    assert_eq!(builtin, shipped.into(), "{plugins:?}");
    let is_library = |m: &&PathBuf| m.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libmemflow_ffi.so"));
    assert!(mapped.iter().any(|m| is_library(&m)), "the map shows the library itself: {mapped:?}");
    assert!(!mapped.iter().any(|m| m.starts_with(&plugin_dir)), "a shipped plugin file was loaded: {mapped:?}");

    // A file added with mf_inventory_add_file replaces the built-in plugins of its names and is
    // the one loaded.
    let dummy = plugin_dir.join("libmemflow_dummy.so");
    let (with_file, mapped) = inventory_scan(sdk, &exe, Some(&dummy));
    assert_eq!(with_file.len(), plugins.len(), "replaced, not added: {with_file:?}");
    let dummy_paths: Vec<&str> =
        with_file.iter().filter(|[name, _, _]| name == "dummy").map(|[_, _, path]| path.as_str()).collect();
    assert_eq!(dummy_paths, [dummy.to_str().unwrap(); 2]);
    assert!(mapped.contains(&dummy), "{mapped:?}");
}
