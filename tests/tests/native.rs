//! The native OS layer against processes this test starts itself: a renamed copy of
//! `sleep` (known name, known library), processes that exit while being read, and a copy of
//! this test running as `nobody` that tries to read this (root-owned) process. The
//! OS-independent `module_header` runs unchanged against the synthetic OS too.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use memflow_core::arch::ArchitectureIdent;
use memflow_core::cglue::{self, prelude::v1::*};
use memflow_core::dummy::DummyOs;
use memflow_core::error::{ErrorKind, PartialError, PartialResultExt, Result};
use memflow_core::mem::MemoryView;
use memflow_core::os::native::{NativeOs, NativeProcess};
use memflow_core::os::{Os, Process, ProcessState};
use memflow_core::plugins::{Inventory, LibArc, OsInstanceArcBox, OsInstanceBase};
use memflow_core::types::Address;

/// A directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mfnative-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        // Readable by the unprivileged helper too.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process, killed and reaped on drop.
struct Probe {
    child: Child,
    path: PathBuf,
    _dir: TempDir,
}

impl Probe {
    /// Runs a copy of `sleep` named `name` (at most 15 bytes, the kernel's `comm` limit).
    fn spawn(name: &str) -> Self {
        let dir = TempDir::new(name);
        let path = dir.0.join(name);
        std::fs::copy(sleep_binary(), &path).unwrap();
        let child = Command::new(&path).arg("30").spawn().unwrap();
        Probe { child, path, _dir: dir }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the process and waits until it is gone.
    fn end(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.end();
    }
}

fn sleep_binary() -> &'static Path {
    ["/bin/sleep", "/usr/bin/sleep"].into_iter().map(Path::new).find(|p| p.exists()).expect("a sleep binary")
}

/// Retries `f` for up to five seconds (a fresh process maps its libraries a moment after
/// it starts).
fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "gave up waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn native() -> NativeOs {
    NativeOs::new(LibArc::default())
}

/// The OS-independent function: the first four bytes of `module` in `process`, found by
/// name through any OS layer.
fn module_header<O: Os>(os: &mut O, process: &str, module: &str) -> Result<[u8; 4]> {
    let mut process = os.process_by_name(process)?;
    let module = process.module_by_name(module)?;
    let mut header = [0u8; 4];
    process.read_raw_into(module.base, &mut header).data()?;
    Ok(header)
}

/// What `module_header` gives through `os`, where `process` runs with `libc.so.6` loaded:
/// the ELF magic of the executable and of libc, and `NotFound` for a missing module or
/// process.
fn check_module_header<O: Os>(os: &mut O, process: &str) {
    assert_eq!(module_header(os, process, process).unwrap(), *b"\x7fELF");
    assert_eq!(module_header(os, process, "libc.so.6").unwrap(), *b"\x7fELF");
    assert_eq!(module_header(os, process, "no_such_module.so").unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(module_header(os, "mf_no_such_proc", "libc.so.6").unwrap_err().kind, ErrorKind::NotFound);
}

#[test]
fn module_header_through_the_native_os() {
    let probe = Probe::spawn("mfnative_hdr");
    let mut os = native();
    // A fresh process maps libc a moment after it starts.
    eventually(|| module_header(&mut os, "mfnative_hdr", "libc.so.6").ok());
    check_module_header(&mut os, "mfnative_hdr");
    // The same function through the type-erased instance the plugin system hands out.
    let mut instance: OsInstanceArcBox<'static> = group_obj!((native(), LibArc::default()) as OsInstance);
    check_module_header(&mut instance, "mfnative_hdr");
    let mut chained = Inventory::builtin().create_os_chain("native").unwrap();
    check_module_header(&mut chained, "mfnative_hdr");
    drop(probe);
}

/// The same OS-independent function, unchanged, against the synthetic OS.
#[test]
fn module_header_through_the_dummy_os() {
    let mut os = DummyOs::builder().process("mfdummy_hdr").build().unwrap();
    check_module_header(&mut os, "mfdummy_hdr");
    for arch in ArchitectureIdent::ALL.iter().flat_map(|a| a.arg_names()) {
        let mut chained = Inventory::builtin().create_os_chain(&format!("dummy:arch={arch}")).unwrap();
        check_module_header(&mut chained, "init");
    }
}

#[test]
fn finds_a_started_process_by_name() {
    let probe = Probe::spawn("mfnative_probe");
    let mut os = native();
    let info = os.process_info_by_name("mfnative_probe").unwrap();
    assert_eq!(info.pid, probe.pid());
    assert_eq!(info.ppid, std::process::id());
    assert_eq!(&*info.name, "mfnative_probe");
    assert_eq!(*info.path, *probe.path.to_string_lossy());
    assert_eq!(*info.command_line, format!("{} 30", probe.path.display()));
    assert_eq!(info.state, ProcessState::Alive);
    assert_eq!(os.process_info_by_name_ci("MFNATIVE_Probe").unwrap().pid, probe.pid());
    assert_eq!(os.process_info_by_pid(probe.pid()).unwrap().pid, probe.pid());
    assert!(os.process_info_by_name("MFNATIVE_PROBE").is_err());

    let mut process = os.process_by_info(info).unwrap();
    let primary = process.primary_module().unwrap();
    assert_eq!(&*primary.name, "mfnative_probe");
    assert_eq!(process.state(), ProcessState::Alive);

    // A known library: libc, with malloc at the same offset as in this process.
    let libc_module = eventually(|| process.module_by_name("libc.so.6").ok());
    let malloc = process.export_address(&libc_module, "malloc").unwrap() - libc_module.base;
    let mut this = native().process_by_pid(std::process::id()).unwrap();
    let own_libc = this.module_by_name("libc.so.6").unwrap();
    if *own_libc.path == *libc_module.path {
        assert_eq!(malloc, Address::from(libc::malloc as *const () as usize) - own_libc.base);
    }
    // The executable imports from libc.
    let imports = process.module_imports(&primary).unwrap();
    assert!(imports.iter().any(|i| &*i.name == "__libc_start_main"), "{imports:?}");
    let sections = process.module_sections(&primary).unwrap();
    assert!(sections.iter().any(|s| &*s.name == ".text"));
    // Its stack is mapped.
    assert!(process.mapped_mem(0).unwrap().iter().any(|r| r.size > 0));
}

#[test]
fn a_process_that_exits_gives_clean_errors() {
    let mut probe = Probe::spawn("mfnative_gone");
    let mut os = native();
    let info = os.process_info_by_pid(probe.pid()).unwrap();
    let listed = info.clone();
    let mut process = os.process_by_info(info.clone()).unwrap();
    let mut proc_mem = NativeProcess::open(info).unwrap();
    proc_mem.use_proc_mem().unwrap();
    let primary = process.primary_module().unwrap();
    let header: [u8; 4] = process.read(primary.base).data().unwrap();
    assert_eq!(header, *b"\x7fELF");

    probe.end();
    let gone = |e: PartialError<[u8; 4]>| memflow_core::error::Error::from(e).kind;
    assert_eq!(gone(process.read::<[u8; 4]>(primary.base).unwrap_err()), ErrorKind::Gone);
    assert_eq!(gone(proc_mem.read::<[u8; 4]>(primary.base).unwrap_err()), ErrorKind::Gone);
    assert_eq!(process.write_raw(primary.base, b"x"), Err(PartialError::Error(gone_error())));
    assert_eq!(process.module_list().unwrap_err().kind, ErrorKind::Gone);
    assert_eq!(process.mapped_mem(0).unwrap_err().kind, ErrorKind::Gone);
    assert_eq!(process.state(), ProcessState::Dead);
    assert_eq!(os.process_info_by_address(Address::from(probe.pid())).unwrap_err().kind, ErrorKind::NotFound);
    // Listed before it exited, opened after.
    assert_eq!(os.process_by_info(listed).err().map(|e| e.kind), Some(ErrorKind::Gone));
}

fn gone_error() -> memflow_core::error::Error {
    memflow_core::error::Error::new(memflow_core::error::ErrorOrigin::Process, ErrorKind::Gone)
}

/// Runs inside the unprivileged copy of this test: every access to the target's memory and
/// mappings must fail with `PermissionDenied`, while its public facts stay readable.
fn check_denied(target: u32) {
    let mut os = native();
    let info = os.process_info_by_pid(target).unwrap();
    assert_eq!(&*info.path, "", "the executable link of another user's process is hidden");
    let mut process = os.process_by_info(info).unwrap();
    let denied = |e: memflow_core::error::Error| e.kind == ErrorKind::PermissionDenied;
    let addr = Address::from(0x1000u64);
    assert!(matches!(process.read::<u64>(addr), Err(PartialError::Error(e)) if denied(e)));
    assert!(matches!(process.write_raw(addr, b"x"), Err(PartialError::Error(e)) if denied(e)));
    assert!(denied(process.module_list().unwrap_err()));
    assert!(denied(process.mapped_mem(0).unwrap_err()));
    assert!(denied(process.primary_module_address().unwrap_err()));
}

/// The unprivileged side of `another_users_process_is_denied`; does nothing unless started
/// by it.
#[test]
#[ignore]
fn permission_helper() {
    if let Ok(target) = std::env::var("MFNATIVE_TARGET_PID") {
        check_denied(target.parse().unwrap());
        println!("permission-helper-ok");
    }
}

#[test]
fn another_users_process_is_denied() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Already unprivileged: pid 1 belongs to root.
        check_denied(1);
        return;
    }
    // As root every process is readable, so run a copy of this test as `nobody` and let it
    // try to read this root-owned process.
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().map(Path::new).find(|p| p.exists());
    let Some(setpriv) = setpriv else {
        eprintln!("setpriv not found; skipping the permission test");
        return;
    };
    let dir = TempDir::new("perm");
    let exe = dir.0.join("native-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["permission_helper", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("MFNATIVE_TARGET_PID", std::process::id().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("permission-helper-ok"), "{stdout}\n{stderr}");
}
