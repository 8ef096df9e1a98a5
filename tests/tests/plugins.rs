//! The plugin system with real libraries: loading from a directory, refusing bad libraries
//! with the reason, chains from strings, clones across threads.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use memflow_core::connector::CpuState;
use memflow_core::error::{ErrorKind, PartialResultExt};
use memflow_core::mem::{MemoryView, PhysicalMemory};
use memflow_core::os::Os;
use memflow_core::plugins::{Args, Inventory, PluginHeader, PluginKind, PluginSource, PLUGIN_MAGIC};
use memflow_core::types::Address;

use memflow_tests::{build_c_plugin, copy_into, shipped, temp_dir};

/// Overwrites the bytes at `offset` bytes into the descriptor header of a library copy.
fn patch_header(path: &Path, offset: usize, value: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.windows(8).position(|w| w == PLUGIN_MAGIC).expect("descriptor magic in file");
    bytes[at + offset..at + offset + value.len()].copy_from_slice(value);
    std::fs::write(path, bytes).unwrap();
}

fn fixture_dump() -> PathBuf {
    let dump = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures/cloud-4l/dump.elf");
    assert!(dump.exists(), "{} is missing: run `cargo xtask fixtures` (cargo xtask test does)", dump.display());
    dump
}

#[test]
fn loads_shipped_plugin_from_a_directory_and_reads_a_dump() {
    let dir = temp_dir("load");
    copy_into(&dir, &shipped("coredump"), "libmemflow_coredump.so");
    let mut inv = Inventory::default();
    assert_eq!(inv.add_dir(&dir).unwrap(), 1);
    let info = inv.plugins().next().unwrap().clone();
    assert_eq!(info.name, "coredump");
    assert_eq!(info.kind, PluginKind::Connector);
    assert!(matches!(info.source, PluginSource::File(_)));
    assert!(info.help.contains("PATH"));

    let args = Args::parse(&format!("'{}'", fixture_dump().display())).unwrap();
    let mut conn = inv.create_connector("coredump", None, &args).unwrap();
    assert!(conn.metadata().real_size >= 200 << 20);
    let banner = std::fs::read_to_string(fixture_dump().with_file_name("serial.log")).unwrap();
    assert!(banner.contains("Linux version"));
    // Reading works through the library's code, and its CPU state is there too.
    let cpu = conn.as_ref_impl_cpustate().expect("coredump reports CPU state");
    assert!(cpu.x86_registers(0).unwrap().cr3 != 0);
    let mut view = conn.phys_view();
    let mut buf = [0u8; 16];
    view.read_raw_into(Address::new(0x1000), &mut buf).data().unwrap();
}

#[test]
fn refuses_bad_libraries_with_the_reason() {
    let dir = temp_dir("refuse");
    let good = shipped("coredump");
    let mut inv = Inventory::default();

    let truncated = copy_into(&dir, &good, "truncated.so");
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&truncated).unwrap().set_len(len / 3).unwrap();
    assert!(inv.add_file(&truncated).is_err(), "truncated library");

    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    let plain = copy_into(&dir, Path::new(libm), "plain.so");
    assert_eq!(inv.add_file(&plain).unwrap_err().kind, ErrorKind::NotFound, "no descriptor");

    let old_abi = copy_into(&dir, &good, "old_abi.so");
    patch_header(&old_abi, 8, &999u32.to_le_bytes());
    assert_eq!(inv.add_file(&old_abi).unwrap_err().kind, ErrorKind::VersionMismatch);

    let other_arch = copy_into(&dir, &good, "other_arch.so");
    let mut bytes = std::fs::read(&other_arch).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    std::fs::write(&other_arch, bytes).unwrap();
    assert_eq!(inv.add_file(&other_arch).unwrap_err().kind, ErrorKind::Unsupported);

    let writable = copy_into(&dir, &good, "writable.so");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(inv.add_file(&writable).unwrap_err().kind, ErrorKind::PermissionDenied);

    let open_dir = temp_dir("open-dir");
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let in_open_dir = copy_into(&open_dir, &good, "libmemflow_coredump.so");
    assert_eq!(inv.add_file(&in_open_dir).unwrap_err().kind, ErrorKind::PermissionDenied);

    // A (sparse) 1 GiB file is refused by its size, before anything is read or allocated.
    let huge = copy_into(&dir, &good, "huge.so");
    std::fs::OpenOptions::new().write(true).open(&huge).unwrap().set_len(1 << 30).unwrap();
    assert_eq!(inv.add_file(&huge).unwrap_err().kind, ErrorKind::OutOfBounds, "too large");

    assert_eq!(inv.plugins().count(), 0, "nothing was registered");
    // The directory scan skips them all without failing, and says which and why.
    assert_eq!(inv.add_dir(&dir).unwrap(), 0);
    let refused: Vec<_> =
        inv.refused().iter().map(|r| (r.path.file_name().unwrap().to_owned(), r.error.kind)).collect();
    assert!(refused.contains(&("writable.so".into(), ErrorKind::PermissionDenied)), "{refused:?}");
    assert!(refused.contains(&("huge.so".into(), ErrorKind::OutOfBounds)), "{refused:?}");
    let writable = inv.refused().iter().find(|r| r.path.ends_with("writable.so")).unwrap();
    assert!(writable.reason.contains("writable.so") && writable.reason.contains("writ"), "{}", writable.reason);
    assert!(inv.refused().iter().all(|r| !r.reason.is_empty()));
    // Adding the directory again records each file once.
    let before = inv.refused().len();
    inv.add_dir(&dir).unwrap();
    assert_eq!(inv.refused().len(), before);
}

#[test]
fn refuses_a_plugin_built_with_the_other_address_width() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-fixtures/wide/Cargo.toml");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wide-plugin");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building the 128-bit fixture plugin failed");
    let dir = temp_dir("wide");
    let lib = copy_into(&dir, &target.join("debug/libmemflow_wide_fixture.so"), "libwide.so");
    // This host uses 64-bit addresses: the header check names the width.
    assert_eq!(memflow_core::types::UMEM_BITS, 64);
    assert_eq!(Inventory::default().add_file(&lib).unwrap_err().kind, ErrorKind::LayoutMismatch);
}

#[test]
fn builds_chains_from_strings_with_middleware() {
    let inv = Inventory::builtin();
    let chain = format!("coredump:'{}',cache=true,metrics=1,delay=1us", fixture_dump().display());
    let mut conn = inv.create_connector_chain(&chain).unwrap();
    assert!(conn.as_ref_impl_cpustate().is_some(), "middleware keeps CPU state");
    let mut view = conn.phys_view();
    let a: u64 = view.read(Address::new(0x10_0000)).data().unwrap();
    let b: u64 = view.read(Address::new(0x10_0000)).data().unwrap();
    assert_eq!(a, b);
    assert!(inv.create_connector_chain("coredump:/nonexistent/file").is_err());
    assert!(inv.create_connector_chain("nosuchplugin:x").is_err());
    assert!(
        inv.create_connector_chain(&format!("coredump:'{}',bogus=1", fixture_dump().display())).is_err(),
        "unknown key"
    );
}

/// `coredump`'s own arguments on a compressed dump: the block cache size, `format=raw`, and
/// what is refused.
#[test]
fn coredump_block_cache_and_format_arguments() {
    let inv = Inventory::builtin();
    let kdump = fixture_dump().with_file_name("dump.kdump-zlib-plain");
    let (elf, compressed) = (
        format!("coredump:'{}' -> linux", fixture_dump().display()),
        format!("coredump:'{}',block_cache=4k,cache=true -> linux", kdump.display()),
    );
    // One page of block cache (and the generic page cache on top): the same processes.
    let pids = |chain: &str| {
        let mut os = inv.create_os_chain(chain).unwrap();
        os.process_info_list().unwrap().iter().map(|p| p.pid).collect::<Vec<_>>()
    };
    assert_eq!(pids(&compressed), pids(&elf));
    // format=raw reads the kdump file's own bytes from address 0.
    let mut raw = inv.create_connector_chain(&format!("coredump:'{}',format=raw", kdump.display())).unwrap();
    let head: [u8; 8] = raw.phys_view().read(Address::new(0)).data().unwrap();
    assert_eq!(&head, b"KDUMP   ");
    for (args, kind) in [
        ("block_cache=100", ErrorKind::InvalidArgument),
        ("block_cache=lots", ErrorKind::InvalidArgument),
        ("format=elf", ErrorKind::InvalidArgument),
        ("writable=true", ErrorKind::Unsupported),
    ] {
        let err = inv.create_connector_chain(&format!("coredump:'{}',{args}", kdump.display())).err().unwrap();
        assert_eq!(err.kind, kind, "{args}: {err}");
    }
}

#[test]
fn two_threads_read_through_clones_of_one_instance() {
    let inv = Inventory::builtin();
    let conn = inv
        .create_connector("coredump", None, &Args::parse(&format!("'{}'", fixture_dump().display())).unwrap())
        .unwrap();
    let mut reference = conn.clone();
    let expected: Vec<u64> =
        (0..64).map(|i| reference.phys_read::<u64>(Address::new(0x100_0000 + i * 0x1000).into()).unwrap()).collect();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let mut c = conn.clone();
            let expected = expected.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    for (i, e) in expected.iter().enumerate() {
                        let v: u64 = c.phys_read(Address::new(0x100_0000 + i as u64 * 0x1000).into()).unwrap();
                        assert_eq!(v, *e);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Eight threads, each on its own clone of a connector with a small page cache (constantly
/// evicting), read page-table-labelled ranges of the guest and get the bytes of the dump.
#[test]
fn eight_threads_read_through_clones_sharing_one_cache() {
    use memflow_core::types::{PageType, PhysicalAddress};
    let inv = Inventory::builtin();
    let dump = fixture_dump();
    let cached = inv.create_connector_chain(&format!("coredump:'{}',cache_size=256k", dump.display())).unwrap();
    let plain = inv.create_connector_chain(&format!("coredump:'{}'", dump.display())).unwrap();
    std::thread::scope(|scope| {
        for t in 0..8u64 {
            let (mut cached, mut plain) = (cached.clone(), plain.clone());
            scope.spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                for _ in 0..500 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Within the first 64 MiB, up to two pages long, any alignment.
                    let addr = Address::new((x >> 20) % (64 << 20));
                    let len = 1 + (x % 0x2000) as usize;
                    let at = PhysicalAddress::with_page(addr, PageType::PAGE_TABLE, 12);
                    let (mut got, mut want) = (vec![0u8; len], vec![0u8; len]);
                    let res = cached.phys_read_raw_into(at, &mut got);
                    assert_eq!(res, plain.phys_read_raw_into(at, &mut want), "thread {t}: {addr}+{len:#x}");
                    assert_eq!(got, want, "thread {t}: {addr}+{len:#x}");
                }
            });
        }
    });
}

/// A dump path that is a FIFO would block `open` forever; it is refused at once, naming it.
#[test]
fn a_fifo_as_dump_path_is_an_error_not_a_hang() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("dump.elf");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let inv = Inventory::builtin();
    let err = inv.create_connector_chain(&format!("coredump:'{}'", fifo.display())).err().unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    let err = inv.create_os_chain(&format!("coredump:'{}',writable=1 -> linux", fifo.display())).err().unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Captures log records so the test can see what plugins log through the host.
struct Capture(std::sync::Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        self.0.lock().unwrap().push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));
/// Held by the tests that set the (process-wide) log level and check what it lets through.
static LOG_LEVEL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn plugins_log_through_the_host_and_failures_and_panics_are_errors() {
    let _level = LOG_LEVEL.lock().unwrap_or_else(|p| p.into_inner());
    let _ = log::set_logger(&CAPTURE);
    let dir = temp_dir("probe");
    copy_into(&dir, &shipped("probe_fixture"), "libmemflow_probe_fixture.so");
    let mut inv = Inventory::default();
    inv.add_dir(&dir).unwrap();
    let seen = |needle: &str| CAPTURE.0.lock().unwrap().iter().any(|l| l.contains(needle));

    log::set_max_level(log::LevelFilter::Warn);
    let err = inv.create_connector("probe", None, &Args::parse("fail").unwrap()).err().unwrap();
    assert_eq!(err.kind, ErrorKind::NotFound, "the plugin's own error comes back");
    assert!(seen("WARN probe says warn"));
    assert!(!seen("probe says info"), "below the host's level");

    // A level change on the host reaches the already loaded plugin.
    log::set_max_level(log::LevelFilter::Info);
    let err = inv.create_connector("probe", None, &Args::parse("panic").unwrap()).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Panic, "a panic in the plugin is an error, not a crash");
    assert!(seen("INFO probe says info"));
    assert!(!seen("probe says debug"));

    let ok = inv.create_connector("probe", None, &Args::parse("ok").unwrap()).unwrap();
    assert_eq!(ok.metadata().real_size, 1 << 16);
}

#[test]
fn native_plugin_from_a_library_lists_and_reads_this_process() {
    use memflow_core::os::{Os, Process};
    let dir = temp_dir("native");
    copy_into(&dir, &shipped("native"), "libmemflow_native.so");
    let mut inv = Inventory::default();
    inv.add_dir(&dir).unwrap();
    let mut os = inv.create_os_chain("native").unwrap();
    let me = std::process::id();
    let info = os.process_info_by_pid(me).unwrap();
    assert_eq!(info.pid, me);
    let mut process = os.process_by_info(info).unwrap();
    static KNOWN: [u8; 8] = *b"mfknown!";
    let mut buf = [0u8; 8];
    process.read_raw_into(Address::from(KNOWN.as_ptr() as usize), &mut buf).data().unwrap();
    assert_eq!(&buf, &KNOWN);
    assert!(process.module_list().unwrap().iter().any(|m| m.name.starts_with("libc")));
    // The process keeps the library loaded after the OS and the inventory are gone.
    drop(os);
    drop(inv);
    process.read_raw_into(Address::from(KNOWN.as_ptr() as usize), &mut buf).data().unwrap();
    assert_eq!(&buf, &KNOWN);
}

#[test]
fn linux_plugin_from_a_library_lists_a_dumped_guest() {
    use memflow_core::os::{Os, Process};
    let dir = temp_dir("linux");
    copy_into(&dir, &shipped("coredump"), "libmemflow_coredump.so");
    copy_into(&dir, &shipped("linux"), "libmemflow_linux.so");
    let mut inv = Inventory::default();
    assert_eq!(inv.add_dir(&dir).unwrap(), 2);
    let mut os = inv.create_os_chain(&format!("coredump:'{}' -> linux", fixture_dump().display())).unwrap();
    let alpha = os.process_info_by_name("mfprobe_alpha").unwrap();
    assert_eq!(alpha.ppid, 1);
    let mut process = os.process_by_info(alpha).unwrap();
    assert_eq!(process.primary_module().unwrap().name.to_string(), "busybox");
    // The process keeps both libraries loaded after the OS and the inventory are gone.
    drop(os);
    drop(inv);
    let base = process.primary_module().unwrap().base;
    let mut elf = [0u8; 4];
    process.read_raw_into(base, &mut elf).data().unwrap();
    assert_eq!(&elf, b"\x7fELF");
}

/// A new directory `name` in `parent` with exactly `mode`.
fn dir_with_mode(parent: &Path, name: &str, mode: u32) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

/// The uid of `nobody`: a user that is neither root nor this one.
const NOBODY: u32 = 65534;

#[test]
fn refuses_libraries_that_another_user_could_have_placed_or_chosen() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "these cases chown files to another user: run as root");
    let base = temp_dir("trust");
    let good = shipped("probe_fixture");
    let mut inv = Inventory::default();
    let mut refused = |path: &Path| inv.add_file(path).unwrap_err().kind;

    // A sticky world-writable directory, like /tmp: anyone may create names in it.
    let sticky = dir_with_mode(&base, "sticky", 0o1777);
    assert_eq!(refused(&copy_into(&sticky, &good, "lib.so")), ErrorKind::PermissionDenied, "sticky dir");
    // A world-writable grandparent lets anyone rename the parent away and put another in place.
    let open = dir_with_mode(&base, "open", 0o777);
    let closed = dir_with_mode(&open, "closed", 0o755);
    assert_eq!(refused(&copy_into(&closed, &good, "lib.so")), ErrorKind::PermissionDenied, "grandparent");
    // Group-writable: a directory, then a file.
    let group_dir = dir_with_mode(&base, "group", 0o775);
    assert_eq!(refused(&copy_into(&group_dir, &good, "lib.so")), ErrorKind::PermissionDenied, "group dir");
    let group_file = copy_into(&base, &good, "group_file.so");
    std::fs::set_permissions(&group_file, std::fs::Permissions::from_mode(0o775)).unwrap();
    assert_eq!(refused(&group_file), ErrorKind::PermissionDenied, "group-writable file");
    // Owned by another user: the file, then its directory.
    let foreign_file = copy_into(&base, &good, "foreign_file.so");
    std::os::unix::fs::chown(&foreign_file, Some(NOBODY), None).unwrap();
    assert_eq!(refused(&foreign_file), ErrorKind::PermissionDenied, "file of another user");
    let foreign_dir = dir_with_mode(&base, "foreign", 0o755);
    let in_foreign_dir = copy_into(&foreign_dir, &good, "lib.so");
    std::os::unix::fs::chown(&foreign_dir, Some(NOBODY), None).unwrap();
    assert_eq!(refused(&in_foreign_dir), ErrorKind::PermissionDenied, "directory of another user");

    // A symbolic link in a trusted directory to a library in an untrusted one: the target's
    // path is checked too.
    let links = dir_with_mode(&base, "links", 0o755);
    std::os::unix::fs::symlink(sticky.join("lib.so"), links.join("into_sticky.so")).unwrap();
    assert_eq!(refused(&links.join("into_sticky.so")), ErrorKind::PermissionDenied, "link into a sticky dir");
    // A directory on the path that is a link into an untrusted directory.
    std::os::unix::fs::symlink(&closed, links.join("closed")).unwrap();
    assert_eq!(refused(&links.join("closed/lib.so")), ErrorKind::PermissionDenied, "linked directory");
    // A link planted by another user, even to a trusted library: its owner chose the target.
    let trusted = copy_into(&base, &good, "trusted.so");
    std::os::unix::fs::symlink(&trusted, links.join("planted.so")).unwrap();
    std::os::unix::fs::lchown(links.join("planted.so"), Some(NOBODY), None).unwrap();
    assert_eq!(refused(&links.join("planted.so")), ErrorKind::PermissionDenied, "link of another user");
    // A loop of links ends with an error, not a hang.
    std::os::unix::fs::symlink("loop_b.so", links.join("loop_a.so")).unwrap();
    std::os::unix::fs::symlink("loop_a.so", links.join("loop_b.so")).unwrap();
    assert_eq!(refused(&links.join("loop_a.so")), ErrorKind::LimitExceeded, "link loop");

    // Not a regular file: a FIFO is refused without blocking in `open`, a directory too.
    let fifo = base.join("fifo.so");
    let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `name` is a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    assert_eq!(refused(&fifo), ErrorKind::PermissionDenied, "fifo");
    assert_eq!(refused(&dir_with_mode(&base, "dir.so", 0o755)), ErrorKind::InvalidArgument, "directory");

    // What the issue found: a library put in /tmp itself.
    let in_tmp = std::env::temp_dir().join(format!("memflow-trust-{}.so", std::process::id()));
    std::fs::copy(&good, &in_tmp).unwrap();
    std::fs::set_permissions(&in_tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kind = refused(&in_tmp);
    std::fs::remove_file(&in_tmp).unwrap();
    assert_eq!(kind, ErrorKind::PermissionDenied, "a library in /tmp");

    assert_eq!(inv.plugins().count(), 0, "nothing was registered");
    // Scanning the directories skips them all without failing.
    for dir in [&base, &sticky, &closed, &links] {
        assert_eq!(inv.add_dir(dir).unwrap(), usize::from(dir == &base), "{}", dir.display());
    }
}

#[test]
fn follows_symbolic_links_through_trusted_paths_to_the_real_file() {
    let base = temp_dir("links-ok");
    let real_dir = dir_with_mode(&base, "real", 0o755);
    let lib = copy_into(&real_dir, &shipped("probe_fixture"), "libprobe.so");
    let links = dir_with_mode(&base, "links", 0o755);
    std::os::unix::fs::symlink(&lib, links.join("absolute.so")).unwrap();
    std::os::unix::fs::symlink("../real/./libprobe.so", links.join("relative.so")).unwrap();
    std::os::unix::fs::symlink("../real", links.join("dir")).unwrap();
    let real = lib.canonicalize().unwrap();
    for link in [links.join("absolute.so"), links.join("relative.so"), links.join("dir/libprobe.so")] {
        let mut inv = Inventory::default();
        let added = inv.add_file(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        assert_eq!(added[0].source, PluginSource::File(real.clone()), "the source is the resolved file");
        let conn = inv.create_connector("probe", None, &Args::parse("ok").unwrap()).unwrap();
        assert_eq!(conn.metadata().real_size, 1 << 16);
    }
    // A directory listing follows the links too; both links name one file, registered once.
    let mut inv = Inventory::default();
    inv.add_dir(&links).unwrap();
    assert_eq!(inv.plugins().count(), 1);
}

#[test]
fn loads_the_scanned_file_never_one_put_in_its_place() {
    let dir = temp_dir("swap");
    let lib = copy_into(&dir, &shipped("probe_fixture"), "libplugin.so");
    let mut inv = Inventory::default();
    inv.add_file(&lib).unwrap();
    // Another library renamed over the scanned one: the scanned one is what gets loaded.
    std::fs::rename(copy_into(&dir, &shipped("dummy"), "other.so"), &lib).unwrap();
    let conn = inv.create_connector("probe", None, &Args::parse("ok").unwrap()).unwrap();
    assert_eq!(conn.metadata().real_size, 1 << 16, "the probe plugin, not the dummy one");
    assert!(inv.create_connector("dummy", None, &Args::default()).is_err(), "the new file was not scanned");

    // The scanned file rewritten in place with another library: refused.
    let lib = copy_into(&dir, &shipped("probe_fixture"), "librewritten.so");
    let mut inv = Inventory::default();
    inv.add_file(&lib).unwrap();
    std::fs::write(&lib, std::fs::read(shipped("dummy")).unwrap()).unwrap();
    let err = inv.create_connector("probe", None, &Args::parse("ok").unwrap()).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Malformed, "changed since it was scanned");

    // Opened up to others after the scan: refused when it is about to be loaded.
    let lib = copy_into(&dir, &shipped("probe_fixture"), "libopened.so");
    let mut inv = Inventory::default();
    inv.add_file(&lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = inv.create_connector("probe", None, &Args::parse("ok").unwrap()).err().unwrap();
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "writable by others since the scan");
}

/// How many descriptors of this process have `file` open.
fn open_descriptors_of(file: &Path) -> usize {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap();
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).filter(|target| target == file).count()
}

#[test]
fn a_library_still_loaded_elsewhere_keeps_its_descriptor_name() {
    // The loader knows a library loaded through `/proc/self/fd/N` by that name. While it stays
    // loaded (here: by a second inventory), descriptor N must stay open, or the next plugin
    // file opened as N would be handed this library.
    let dir = temp_dir("fd-reuse");
    let probe = copy_into(&dir, &shipped("probe_fixture"), "libprobe.so");
    let (mut first, mut second) = (Inventory::default(), Inventory::default());
    first.add_file(&probe).unwrap();
    second.add_file(&probe).unwrap();
    assert_eq!(open_descriptors_of(&probe), 2, "each inventory keeps its file open");
    let kept = second.create_connector("probe", None, &Args::parse("ok").unwrap()).unwrap();
    drop(first.create_connector("probe", None, &Args::parse("ok").unwrap()).unwrap());
    drop(first);
    assert_eq!(open_descriptors_of(&probe), 2, "the first inventory's descriptor outlives it");
    // Other plugin files load as themselves.
    let native = copy_into(&dir, &shipped("native"), "libnative.so");
    for _ in 0..4 {
        let mut inv = Inventory::default();
        inv.add_file(&native).unwrap();
        inv.create_os_chain("native").expect("the native library, not the probe still loaded");
    }
    assert_eq!(kept.metadata().real_size, 1 << 16);
}

/// The shipped plugins (library files named `libmemflow_<name>.so`).
const SHIPPED: [&str; 5] = ["coredump", "dummy", "linux", "native", "qemu"];

/// True if this process has a file below `path` mapped (that is, loaded).
fn mapped(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/maps").unwrap().contains(&*path.to_string_lossy())
}

/// A copy of the shipped `coredump` library whose descriptor says `version`.
fn coredump_of_version(dir: &Path, version: &str) {
    let lib = copy_into(dir, &shipped("coredump"), "libmemflow_coredump.so");
    let mut field = [0u8; 32];
    field[..version.len()].copy_from_slice(version.as_bytes());
    patch_header(&lib, std::mem::offset_of!(PluginHeader, version), &field);
}

#[test]
fn scan_lists_each_plugin_once_and_loads_no_shadowed_file() {
    // Two directories with the shipped libraries; `coredump` in each is of another version
    // than the built-in one. The scan runs in a child process: its search path comes from its
    // environment, and its memory map shows what it loaded.
    let base = temp_dir("scan");
    let dirs = [dir_with_mode(&base, "first", 0o755), dir_with_mode(&base, "second", 0o755)];
    for (dir, version) in dirs.iter().zip(["9.0.1", "9.0.2"]) {
        for name in SHIPPED {
            copy_into(dir, &shipped(name), &format!("libmemflow_{name}.so"));
        }
        coredump_of_version(dir, version);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "scan_in_a_fresh_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env("MEMFLOW_PLUGIN_PATH", std::env::join_paths(&dirs).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 passed"), "the child ran the test: {stdout}");
}

/// Run by `scan_lists_each_plugin_once_and_loads_no_shadowed_file` in a child process whose
/// `MEMFLOW_PLUGIN_PATH` names the two directories it made.
#[test]
#[ignore = "run in a child process by scan_lists_each_plugin_once_and_loads_no_shadowed_file"]
fn scan_in_a_fresh_process() {
    let path = std::env::var_os("MEMFLOW_PLUGIN_PATH").expect("set by the parent test");
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let mut inv = Inventory::scan();
    let mut seen = BTreeSet::new();
    for p in inv.plugins() {
        assert!(seen.insert((p.name.clone(), p.kind as u32)), "`{}` ({:?}) is listed twice", p.name, p.kind);
    }
    let sources = |inv: &Inventory, name: &str| -> Vec<PluginSource> {
        inv.plugins().filter(|p| p.name == name).map(|p| p.source.clone()).collect()
    };
    // A file of the built-in version is shadowed by the built-in plugin; one of another version
    // replaces it, and the first directory of the search path wins.
    for name in ["dummy", "linux", "native", "qemu"] {
        assert!(sources(&inv, name).iter().all(|s| *s == PluginSource::Builtin), "{name}: {:?}", sources(&inv, name));
    }
    assert_eq!(sources(&inv, "dummy").len(), 2, "a connector and an OS layer");
    let first_coredump = dirs[0].join("libmemflow_coredump.so").canonicalize().unwrap();
    assert_eq!(sources(&inv, "coredump"), [PluginSource::File(first_coredump)]);
    let coredump = inv.plugins().find(|p| p.name == "coredump").unwrap();
    assert_eq!(coredump.version, "9.0.1");

    // Using the built-in plugins loads none of the files.
    inv.create_connector("dummy", None, &Args::default()).unwrap();
    inv.create_os_chain("native").unwrap();
    for dir in &dirs {
        assert!(!mapped(dir), "nothing of {} is loaded", dir.display());
    }

    // A file the caller adds replaces the built-in plugins of its names, and is loaded on use.
    let dummy = dirs[1].join("libmemflow_dummy.so");
    assert_eq!(inv.add_file(&dummy).unwrap().len(), 2);
    let dummy = dummy.canonicalize().unwrap();
    assert_eq!(sources(&inv, "dummy"), [PluginSource::File(dummy.clone()), PluginSource::File(dummy.clone())]);
    assert_eq!(inv.plugins().count(), seen.len(), "replaced, not added");
    assert!(!mapped(&dummy));
    inv.create_connector("dummy", None, &Args::default()).unwrap();
    assert!(mapped(&dummy), "the added file is what was loaded");
}

/// Builds `tests/c/os_plugin_fixture.c` with the `defines` into `dir/<name>`.
fn build_os_fixture(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    build_c_plugin("tests/c/os_plugin_fixture.c", &dir.join(name), defines)
}

#[test]
fn a_c_os_layer_built_against_a_shorter_table_loads_and_lacks_only_the_rest() {
    use memflow_core::os::{Os, Process};
    let dir = temp_dir("old-table");
    let mut inv = Inventory::default();
    inv.add_file(&build_os_fixture(&dir, "libold.so", &[])).unwrap();
    let mut os = inv.create_os_chain("old").unwrap();
    // Without `process_info`, a lookup lists the processes (and the plugin logs through the
    // host table it kept from `create`).
    let level = LOG_LEVEL.lock().unwrap_or_else(|p| p.into_inner());
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Warn);
    let info = os.process_info_by_pid(7).unwrap();
    assert!(CAPTURE.0.lock().unwrap().iter().any(|l| l == "WARN old: listing processes"), "logged after create");
    drop(level);
    assert_eq!((&*info.name, info.ppid), ("old", 1));
    let mut process = os.process_by_info(info).unwrap();
    assert_eq!(process.read::<u32>(Address::new(0x10004)).unwrap(), u32::from_le_bytes([4, 5, 6, 7]));
    process.write(Address::new(0x10008), &0xabu8).unwrap();
    assert_eq!(process.read::<u8>(Address::new(0x10008)).unwrap(), 0xab);
    let mut tail = [0xffu8; 8];
    assert!(process.read_raw_into(Address::new(0x10ffc), &mut tail).is_err(), "partial");
    assert_eq!(tail, [0xfc, 0xfd, 0xfe, 0xff, 0, 0, 0, 0]);
    assert_eq!(process.module_list().unwrap().len(), 1);
    // Entries beyond its table are NULL: `Unsupported`, from the OS and the process alike.
    for err in [
        os.kernel_symbol("x").unwrap_err(),
        os.module_list().unwrap_err(),
        process.mapped_mem(-1).unwrap_err(),
        process.primary_module().unwrap_err(),
    ] {
        assert!(matches!(err.kind, ErrorKind::Unsupported | ErrorKind::NotFound), "{err}");
    }
    assert_eq!(os.module_list().unwrap_err().kind, ErrorKind::Unsupported);
    assert_eq!(process.state(), memflow_core::os::ProcessState::Unknown);
    // Used in a chain behind a connector, too (it ignores its input).
    inv.add_file(&shipped("coredump")).unwrap();
    let chain = format!("coredump:'{}' -> old", fixture_dump().display());
    assert_eq!(inv.create_os_chain(&chain).unwrap().process_info_list().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_c_os_layers_are_refused_and_hostile_ones_fail_cleanly() {
    use memflow_core::os::{Os, Process};
    let dir = temp_dir("bad-table");
    let mut inv = Inventory::default();
    // Refused from the file, before loading.
    let err = inv.add_file(&build_os_fixture(&dir, "libv1.so", &["-DBAD_VERSION"])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::VersionMismatch, "{err}");
    let err = inv.add_file(&build_os_fixture(&dir, "libshort.so", &["-DSHORT"])).unwrap_err();
    assert_eq!(err.kind, ErrorKind::LayoutMismatch, "{err}");
    // Refused when loaded: a required entry is NULL.
    inv.add_file(&build_os_fixture(&dir, "libnull.so", &["-DNULL_OPEN"])).unwrap();
    let err = inv.create_os_chain("old").err().unwrap();
    assert_eq!(err.kind, ErrorKind::Malformed, "{err}");
    assert!(err.to_string().contains("process_open"), "{err}");

    let mut inv = Inventory::default();
    inv.add_file(&build_os_fixture(&dir, "libold.so", &[])).unwrap();
    let os = |mode: &str| inv.create_os_chain(&format!("old:{mode}"));
    let err = os("fail").err().unwrap();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.to_string().contains("old: asked to fail"), "the plugin's reason: {err}");
    let err = os("badname").unwrap().process_info_list().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Encoding, "{err}");
    for (mode, kind) in [("badtable", ErrorKind::VersionMismatch), ("notable", ErrorKind::Malformed)] {
        let mut os = os(mode).unwrap();
        let info = os.process_info_by_pid(7).unwrap();
        assert_eq!(os.process_by_info(info).err().unwrap().kind, kind, "{mode}");
    }
    let mut os = os("endless").unwrap();
    let mut process = os.process_by_pid(7).unwrap();
    let err = process.module_list().unwrap_err();
    assert_eq!(err.kind, ErrorKind::LimitExceeded, "an endless list is cut off: {err}");
    // Counts beyond the buffer are clamped; a negative count is nothing written.
    let mut os = inv.create_os_chain("old:overcount").unwrap();
    let mut process = os.process_by_pid(7).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(process.read_single(Address::new(0x10000), &mut buf), Ok(16));
    assert_eq!(process.write_single(Address::new(0x10000), &[1, 2, 3]), Ok(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The code blocks of the README's "Writing plugins in C and C++" section, as (language, code).
fn readme_plugin_snippets() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(memflow_tests::repo_root().join("README.md")).unwrap();
    let start = readme.find("### Writing plugins in C and C++").expect("the README section");
    let section = &readme[start..start + readme[start..].find("\n## ").unwrap()];
    let mut out = Vec::new();
    for block in section.split("```").skip(1).step_by(2) {
        let (lang, code) = block.split_once('\n').unwrap();
        if lang == "c" || lang == "cpp" {
            out.push((lang.to_string(), code.to_string()));
        }
    }
    out
}

#[test]
fn the_readme_plugins_compile_and_work() {
    use memflow_core::os::{Os, Process};
    let dir = temp_dir("readme-plugins");
    let snippets = readme_plugin_snippets();
    assert_eq!(snippets.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["c", "c", "cpp"]);
    let mut libs = Vec::new();
    for (i, (lang, code)) in snippets.iter().enumerate() {
        let source = dir.join(format!("snippet{i}.{lang}"));
        std::fs::write(&source, code).unwrap();
        let lib = dir.join(format!("libsnippet{i}.so"));
        let (compiler, std) = if lang == "c" { ("cc", "-std=c11") } else { ("c++", "-std=c++17") };
        let status = Command::new(compiler)
            .args([std, "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden", "-I"])
            .arg(memflow_tests::repo_root().join("include"))
            .arg(&source)
            .arg("-o")
            .arg(&lib)
            .status()
            .unwrap();
        assert!(status.success(), "README snippet {i} ({lang}) does not compile");
        libs.push(lib);
    }
    // The connectors (C, then C++): 1 MiB of zeros.
    for lib in [&libs[0], &libs[2]] {
        let mut inv = Inventory::default();
        inv.add_file(lib).unwrap();
        let mut conn = inv.create_connector_chain("zeros").unwrap();
        assert_eq!(conn.metadata().real_size, 1 << 20);
        let mut view = conn.phys_view();
        assert_eq!(view.read::<u64>(Address::new(0xff8)).unwrap(), 0);
        assert!(view.read::<u64>(Address::new((1 << 20) - 4)).is_err(), "partial at the end");
    }
    // The OS layer: vCPU 0's address space, translated by the host, reads the kernel as the
    // linux layer does.
    let mut inv = Inventory::builtin();
    inv.add_file(&libs[1]).unwrap();
    let dump = fixture_dump();
    let mut linux = inv.create_os_chain(&format!("coredump:'{}' -> linux", dump.display())).unwrap();
    let banner = linux.kernel_symbol("linux_banner").unwrap();
    let mut space_os = inv.create_os_chain(&format!("coredump:'{}' -> space", dump.display())).unwrap();
    let mut space = space_os.process_by_name("space").unwrap();
    let text = space.read_raw(banner, 14).data().unwrap();
    assert_eq!(text, b"Linux version ");
    assert!(space.module_list().is_err(), "no module_list entry: unsupported");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cpp_os_layer_uses_its_input_and_lets_the_host_translate() {
    use memflow_core::os::{Os, Process};
    let dir = temp_dir("cpp-space");
    let lib = dir.join("libcpp_space.so");
    let status = Command::new("c++")
        .args(["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-fvisibility=hidden", "-I"])
        .arg(memflow_tests::repo_root().join("include"))
        .arg(memflow_tests::repo_root().join("tests/c/cpp_space_plugin.cpp"))
        .arg("-o")
        .arg(&lib)
        .status()
        .unwrap();
    assert!(status.success(), "compiling tests/c/cpp_space_plugin.cpp failed");
    let mut inv = Inventory::builtin();
    inv.add_file(&lib).unwrap();
    let dump = fixture_dump();
    let mut linux = inv.create_os_chain(&format!("coredump:'{}' -> linux", dump.display())).unwrap();
    let banner = linux.kernel_symbol("linux_banner").unwrap();
    let mut os = inv.create_os_chain(&format!("coredump:'{}' -> cpp_space", dump.display())).unwrap();
    // Os::process_info's default (found in the list) serves the lookup by pid.
    let mut space = os.process_by_pid(1).unwrap();
    assert_eq!(space.read_raw(banner, 14).data().unwrap(), b"Linux version ");
    // A std::exception from a member is an error with its message.
    let err = space.module_list().unwrap_err();
    assert!(err.to_string().contains("cpp_space: no modules here"), "{err}");
    // A Failure from the constructor keeps its code and message; nothing unwinds into the host.
    let err = inv.create_os_chain("cpp_space").err().unwrap();
    assert_eq!(err.kind, ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("needs a connector with CPU state"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
