//! The cost of the C boundary (issue 5) and of single reads through trait objects (issue 11),
//! in one criterion run: physical reads of 8 B and 4 KiB through the C API, through a loaded
//! plugin and through memflow 0.2.4's trait object, beside the direct read, on the same target.
//!
//! The target is the fixture `target/fixtures/cloud-4l/dump.elf` (a QEMU ELF core; made by
//! `cargo xtask fixtures`). Contenders, every one reading the same seeded random addresses
//! of the dump's RAM, cycled: 4096 of them for 8 B reads, 256 for 4 KiB reads (1 MiB in all,
//! so the bytes come from the cache: with 16 MiB of random 4 KiB reads every contender waits
//! on DRAM and the run-to-run noise on this shared machine is far larger than the boundary):
//!
//! - `c-api`: `mf_connector_read` on an `MfConnector` made by `mf_inventory_builtin` +
//!   `mf_inventory_create_connector(inv, "coredump", path, NULL, &conn)`, called as the
//!   `extern "C"` function it is (memflow-ffi is also an rlib, so no dynamic loading);
//! - `c-api-so`: the same, but from the shared library `libmemflow_ffi.so` that cargo builds
//!   beside the bench binary, loaded with `dlopen` and called through `dlsym` pointers, as a C
//!   program linked against it calls it (PLT-free, but with the shared library's code model:
//!   its thread-locals go through `__tls_get_addr`);
//! - `rust`: `phys_read_raw_into` on the same connector instance type from Rust: a
//!   `ConnectorInstanceArcBox` made by `Inventory::builtin().create_connector("coredump", ..)`
//!   (the object `mf_connector_read` calls into);
//! - `plugin`: `phys_read_raw_into` on a `ConnectorInstanceArcBox` made by the coredump plugin
//!   library (`<target>/release/libmemflow_coredump.so`, loaded with `Inventory::add_file`): the
//!   read crosses into the library through the connector's vtable, as every plugin read does;
//! - `rust-concrete`: the direct read, `phys_read_raw_into` on the concrete `FileConnector`
//!   from `connector::open` (what a Rust program that links the connector statically gets);
//! - `memflow-0.2.4-dyn`: the peer's `phys_read_into` through its cglue trait object
//!   (`PhysicalMemoryBox`) over its own read-only mapping of the same file, laid out by the
//!   same memory map.
//!
//! - `threads/c-api` and `threads/rust`: 8 threads at once, each on its own clone
//!   (`mf_connector_clone` / `Clone` of the instance), 8 B reads; the time per read of one
//!   thread. Their ratio shows whether the C handle registry serialises readers of different
//!   objects (it must not: each handle has its own lock).
//!
//! Run: `cargo build --release -p memflow-coredump` (the plugin), then
//! `cargo bench -p memflow-ffi --bench c_boundary -- --warm-up-time 1 --measurement-time 3`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run

use std::ffi::{c_char, c_void, CString};
use std::hint::black_box;
use std::path::PathBuf;
use std::ptr::null_mut;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{rngs::SmallRng, Rng, SeedableRng};

use memflow::cglue::Opaquable as PeerOpaquable;
use memflow::connector::MmapInfo;
use memflow::mem::{MemoryMap as PeerMemoryMap, PhysicalMemory as PeerPhysicalMemory};
use memflow::types::{Address as PeerAddress, PhysicalAddress as PeerPhysicalAddress};
use memflow_core::connector::{open, OpenOptions};
use memflow_core::mem::PhysicalMemory;
use memflow_core::plugins::{Args, Inventory};
use memflow_core::types::{Address, PhysicalAddress};
use memflow_ffi::{
    mf_connector_clone, mf_connector_free, mf_connector_read, mf_inventory_builtin, mf_inventory_create_connector,
    mf_inventory_free, MfConnector,
};

const SEED: u64 = 0x6d656d666c6f77; // "memflow"
/// The guest's RAM is 256 MiB from physical 0 (`-m 256M`).
const RAM: u64 = 256 << 20;

fn fixture() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures/cloud-4l/dump.elf");
    assert!(path.is_file(), "{} missing: run `cargo xtask fixtures` first", path.display());
    path
}

fn c_boundary(c: &mut Criterion) {
    let path = fixture();
    let path_str = path.to_str().expect("UTF-8 path");

    // The C side: inventory, then the coredump connector, all through the C API.
    let mut inv = std::ptr::null_mut();
    assert_eq!(mf_inventory_builtin(&mut inv), 0);
    let mut conn = std::ptr::null_mut();
    let name = CString::new("coredump").unwrap();
    let args = CString::new(path_str).unwrap();
    assert_eq!(mf_inventory_create_connector(inv, name.as_ptr(), args.as_ptr(), std::ptr::null(), &mut conn), 0);

    // The same through the shared library (its own copy of everything, its own connector).
    let so_path = std::env::current_exe().unwrap().parent().unwrap().join("libmemflow_ffi.so");
    // SAFETY: our own C library; its initialisers have no preconditions.
    let so = unsafe { libloading::Library::new(&so_path) }.unwrap_or_else(|e| panic!("{}: {e}", so_path.display()));
    type Read = extern "C" fn(*mut c_void, u64, *mut c_void, usize, *mut usize) -> i32;
    type Builtin = extern "C" fn(*mut *mut c_void) -> i32;
    type Create = extern "C" fn(*const c_void, *const c_char, *const c_char, *const c_void, *mut *mut c_void) -> i32;
    type Free = extern "C" fn(*mut c_void) -> i32;
    // SAFETY: the symbols have these C signatures (include/memflow.h).
    let (so_read, so_builtin, so_create, so_conn_free, so_inv_free) = unsafe {
        (
            *so.get::<Read>(b"mf_connector_read\0").unwrap(),
            *so.get::<Builtin>(b"mf_inventory_builtin\0").unwrap(),
            *so.get::<Create>(b"mf_inventory_create_connector\0").unwrap(),
            *so.get::<Free>(b"mf_connector_free\0").unwrap(),
            *so.get::<Free>(b"mf_inventory_free\0").unwrap(),
        )
    };
    let mut so_inv = std::ptr::null_mut();
    assert_eq!(so_builtin(&mut so_inv), 0);
    let mut so_conn = std::ptr::null_mut();
    assert_eq!(so_create(so_inv, name.as_ptr(), args.as_ptr(), std::ptr::null(), &mut so_conn), 0);

    // The Rust side: the same connector instance type, and the concrete connector.
    let mut rust = Inventory::builtin()
        .create_connector("coredump", None, &Args::parse(path_str).unwrap())
        .expect("coredump connector");
    let mut concrete = open(&path, OpenOptions::default()).expect("open the dump");

    // The plugin library, loaded as any plugin is.
    let plugin_path = so_path.parent().unwrap().parent().unwrap().join("libmemflow_coredump.so");
    assert!(
        plugin_path.is_file(),
        "{} missing: run `cargo build --release -p memflow-coredump`",
        plugin_path.display()
    );
    let mut plugins = Inventory::default();
    plugins.add_file(&plugin_path).unwrap_or_else(|e| panic!("{}: {e}", plugin_path.display()));
    let mut plugin =
        plugins.create_connector("coredump", None, &Args::parse(path_str).unwrap()).expect("plugin connector");

    // The peer: its own mapping of the file, laid out by the dump's memory map.
    let mut peer_map = PeerMemoryMap::new();
    for r in concrete.memory_map().ranges() {
        peer_map.push_remap(PeerAddress::from(r.base.to_umem()), r.size, PeerAddress::from(r.backing));
    }
    let peer = MmapInfo::try_with_filemap(std::fs::File::open(&path).unwrap(), peer_map).unwrap().into_connector();
    let mut peer_dyn: memflow::mem::phys_mem::PhysicalMemoryBox<'static> =
        memflow::mem::phys_mem::PhysicalMemoryBase::from(peer).into_opaque();

    // Fault the dump in through every mapping and check that all contenders read the same bytes.
    let mut want = vec![0u8; 1 << 20];
    let mut got = vec![0u8; 1 << 20];
    for off in (0..RAM).step_by(1 << 20) {
        let pa = PhysicalAddress::plain(Address::from(off));
        concrete.phys_read_raw_into(pa, &mut want).unwrap();
        let agree = |what: &str, got: &mut Vec<u8>| {
            assert!(*got == want, "{what} disagrees at {off:#x}");
            got.fill(0);
        };
        assert_eq!(mf_connector_read(conn, off, got.as_mut_ptr().cast(), got.len(), null_mut()), 0);
        agree("c-api", &mut got);
        assert_eq!(so_read(so_conn, off, got.as_mut_ptr().cast(), got.len(), null_mut()), 0);
        agree("c-api-so", &mut got);
        rust.phys_read_raw_into(pa, &mut got).unwrap();
        agree("rust", &mut got);
        plugin.phys_read_raw_into(pa, &mut got).unwrap();
        agree("plugin", &mut got);
        peer_dyn.phys_read_into(PeerPhysicalAddress::from(PeerAddress::from(off)), &mut got[..]).unwrap();
        agree("memflow-0.2.4-dyn", &mut got);
    }

    for (size, label, n) in [(8usize, "8B", 4096usize), (4096, "4KiB", 256)] {
        let mut rng = SmallRng::seed_from_u64(SEED ^ size as u64);
        let addrs: Vec<u64> = (0..n).map(|_| rng.gen_range(0..=RAM - size as u64)).collect();
        let mut buf = vec![0u8; size];
        let mut g = c.benchmark_group(format!("c_boundary/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter("c-api"), |bch| {
            let mut i = 0;
            bch.iter(|| {
                let r = mf_connector_read(
                    black_box(conn),
                    addrs[i],
                    black_box(&mut buf[..]).as_mut_ptr().cast(),
                    size,
                    null_mut(),
                );
                i = (i + 1) & (n - 1);
                black_box(r)
            })
        });
        g.bench_function(BenchmarkId::from_parameter("c-api-so"), |bch| {
            let mut i = 0;
            bch.iter(|| {
                let r = so_read(
                    black_box(so_conn),
                    addrs[i],
                    black_box(&mut buf[..]).as_mut_ptr().cast(),
                    size,
                    null_mut(),
                );
                i = (i + 1) & (n - 1);
                black_box(r)
            })
        });
        g.bench_function(BenchmarkId::from_parameter("rust"), |bch| {
            let mut i = 0;
            bch.iter(|| {
                let r =
                    rust.phys_read_raw_into(PhysicalAddress::plain(Address::from(addrs[i])), black_box(&mut buf[..]));
                i = (i + 1) & (n - 1);
                black_box(r).ok()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("plugin"), |bch| {
            let mut i = 0;
            bch.iter(|| {
                let r =
                    plugin.phys_read_raw_into(PhysicalAddress::plain(Address::from(addrs[i])), black_box(&mut buf[..]));
                i = (i + 1) & (n - 1);
                black_box(r).ok()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4-dyn"), |bch| {
            let mut i = 0;
            bch.iter(|| {
                let addr = PeerPhysicalAddress::from(PeerAddress::from(addrs[i]));
                let r = peer_dyn.phys_read_into(addr, black_box(&mut buf[..]));
                i = (i + 1) & (n - 1);
                black_box(r).ok()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("rust-concrete"), |bch| {
            let mut i = 0;
            bch.iter(|| {
                let r = concrete
                    .phys_read_raw_into(PhysicalAddress::plain(Address::from(addrs[i])), black_box(&mut buf[..]));
                i = (i + 1) & (n - 1);
                black_box(r).ok()
            })
        });
        g.finish();
    }

    threads(c, conn, &rust);

    assert_eq!(so_conn_free(so_conn), 0);
    assert_eq!(so_inv_free(so_inv), 0);
    assert_eq!(mf_connector_free(conn), 0);
    assert_eq!(mf_inventory_free(inv), 0);
}

/// How many threads read at once in the `threads` group.
const THREADS: usize = 8;

/// A C handle that may be sent to another thread (every C handle may: each has its own lock).
struct SendHandle(*mut MfConnector);
// SAFETY: the C API serialises calls on one handle; each thread here uses its own clone anyway.
unsafe impl Send for SendHandle {}

/// 8 B reads by [`THREADS`] threads at once, each on its own clone, through the C API and from
/// Rust: the time of `iters` reads on one thread while all of them run.
fn threads(c: &mut Criterion, conn: *mut MfConnector, rust: &memflow_core::instance::ConnectorInstanceArcBox<'static>) {
    let mut rng = SmallRng::seed_from_u64(SEED ^ 0x7468);
    let addrs: Vec<u64> = (0..4096).map(|_| rng.gen_range(0..=RAM - 8)).collect();
    let mut g = c.benchmark_group(format!("c_boundary/threads{THREADS}-8B"));
    g.throughput(Throughput::Bytes(8));
    g.bench_function(BenchmarkId::from_parameter("c-api"), |bch| {
        bch.iter_custom(|iters| {
            let clones: Vec<SendHandle> = (0..THREADS)
                .map(|_| {
                    let mut clone = std::ptr::null_mut();
                    assert_eq!(mf_connector_clone(conn, &mut clone), 0);
                    SendHandle(clone)
                })
                .collect();
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for handle in clones.iter().map(|h| SendHandle(h.0)) {
                    let addrs = &addrs;
                    s.spawn(move || {
                        let handle = handle; // the whole wrapper, not its field, moves in
                        let mut buf = [0u8; 8];
                        for i in 0..iters as usize {
                            let addr = addrs[i & 4095];
                            black_box(mf_connector_read(handle.0, addr, buf.as_mut_ptr().cast(), 8, null_mut()));
                        }
                    });
                }
            });
            let elapsed = start.elapsed();
            for handle in clones {
                assert_eq!(mf_connector_free(handle.0), 0);
            }
            elapsed
        })
    });
    g.bench_function(BenchmarkId::from_parameter("rust"), |bch| {
        bch.iter_custom(|iters| {
            let clones: Vec<_> = (0..THREADS).map(|_| rust.clone()).collect();
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for mut clone in clones {
                    let addrs = &addrs;
                    s.spawn(move || {
                        let mut buf = [0u8; 8];
                        for i in 0..iters as usize {
                            let addr = PhysicalAddress::plain(Address::from(addrs[i & 4095]));
                            black_box(clone.phys_read_raw_into(addr, &mut buf).ok());
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, c_boundary);
criterion_main!(benches);
