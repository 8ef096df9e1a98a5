//! The plugin system with real libraries: loading from a directory, refusing bad libraries
//! with the reason, chains from strings, clones across threads.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use memflow_core::connector::CpuState;
use memflow_core::error::{ErrorKind, PartialResultExt};
use memflow_core::mem::{MemoryView, PhysicalMemory};
use memflow_core::plugins::{Args, Inventory, PluginKind, PluginSource, PLUGIN_MAGIC};
use memflow_core::types::Address;

mod common;
use common::{copy_into, shipped, temp_dir};

/// Patches the `u32` at `offset` bytes into the descriptor header of a library copy.
fn patch_header(path: &Path, offset: usize, value: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.windows(8).position(|w| w == PLUGIN_MAGIC).expect("descriptor magic in file");
    bytes[at + offset..at + offset + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

fn fixture_dump() -> PathBuf {
    let dump = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures/cloud-4l/dump.elf");
    assert!(dump.exists(), "{} is missing: run `scripts/guest-dump.sh --all` (cargo xtask test does)", dump.display());
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
    patch_header(&old_abi, 8, 999);
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

    assert_eq!(inv.plugins().count(), 0, "nothing was registered");
    // The directory scan skips them all without failing.
    assert_eq!(inv.add_dir(&dir).unwrap(), 0);
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

#[test]
fn plugins_log_through_the_host_and_failures_and_panics_are_errors() {
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
