//! Plugins written in C (issue 12), side by side with the Rust code doing the same job, in one
//! criterion run:
//!
//! - `os_process_read`: reads of a process whose memory the host translates for a C OS layer
//!   (`examples-c/plugin_cpu_spaces`, process `cpu0`: the address space of vCPU 0) against the
//!   Rust `linux` layer's process (a kernel thread, which reads the kernel's address space), on
//!   the QEMU dump `target/fixtures/cloud-4l/dump.elf`, both over the built-in `coredump`
//!   connector. Same seeded random addresses in the kernel image (ones both read completely
//!   and alike), 8 B and 4 KiB, through `read_raw_into` on the `ProcessInstanceArcBox` each
//!   layer hands out.
//! - `connector_read`: physical reads through a C connector plugin (`examples-c/plugin_buffer`,
//!   `cbuffer`: its built-in 1 MiB buffer, a `memcpy` per read) against the Rust `dummy`
//!   connector (1 MiB in memory, written first like cbuffer's, a copy per read), both through
//!   `phys_read_raw_into` on their `ConnectorInstanceArcBox`; same seeded random addresses,
//!   8 B and 4 KiB.
//!
//! The C plugins are compiled here with `cc -O2` against `include/memflow.h`, as a C author
//! builds them ([`memflow_tests::build_c_plugin`]), and loaded from files by the inventory.
//!
//! Run: `cargo bench -p memflow-tests --bench c_plugins -- --warm-up-time 1 --measurement-time 3`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{rngs::StdRng, Rng, SeedableRng};

use memflow_core::mem::{MemoryView, PhysicalMemory};
use memflow_core::os::{Os, ProcessInfo};
use memflow_core::plugins::{Inventory, ProcessInstanceArcBox};
use memflow_core::types::{Address, PhysicalAddress};
use memflow_tests::{build_c_plugin, repo_root, temp_dir};

const SEED: u64 = 0x6d656d666c6f77; // "memflow"
/// Addresses per read size, cycled.
const ADDRESSES: usize = 4096;

fn c_plugins(c: &mut Criterion) {
    let dir = temp_dir("bench-c-plugins");
    let mut inv = Inventory::builtin();
    for plugin in ["cpu_spaces", "buffer"] {
        let source = format!("examples-c/plugin_{plugin}/plugin_{plugin}.c");
        inv.add_file(&build_c_plugin(&source, &dir.join(format!("lib{plugin}.so")), &[])).unwrap();
    }
    let dump = repo_root().join("target/fixtures/cloud-4l/dump.elf");
    assert!(dump.is_file(), "{} missing: run `cargo xtask fixtures`", dump.display());
    let mut rng = StdRng::seed_from_u64(SEED);

    // ---- processes: host translation for a C layer vs the Rust linux layer -------------------
    let mut linux = inv.create_os_chain(&format!("coredump:'{}' -> linux", dump.display())).unwrap();
    let kthread: ProcessInfo = linux
        .process_info_list()
        .unwrap()
        .into_iter()
        .find(|p| p.table_root.is_null() && p.pid > 1)
        .expect("a kernel thread");
    let mut rust = linux.process_by_info(kthread).unwrap();
    let mut spaces = inv.create_os_chain(&format!("coredump:'{}' -> cpu_spaces", dump.display())).unwrap();
    let cpu0 = spaces.process_info_by_name("cpu0").unwrap();
    let mut ours = spaces.process_by_info(cpu0).unwrap();
    let (base, size) = (linux.info().base, linux.info().size as u64);

    let mut group = c.benchmark_group("os_process_read");
    for len in [8usize, 4096] {
        let addrs = readable_alike(&mut rng, &mut rust, &mut ours, base, size, len);
        let mut buf = vec![0u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        for (name, process) in [("rust-linux", &mut rust), ("c-cpu_spaces", &mut ours)] {
            let mut i = 0;
            group.bench_function(BenchmarkId::new(name, format!("{len}B")), |b| {
                b.iter(|| {
                    i = (i + 1) % addrs.len();
                    process.read_raw_into(addrs[i], &mut buf).unwrap();
                    black_box(&buf);
                })
            });
        }
    }
    group.finish();

    // ---- connectors: a C plugin vs a Rust connector, both copying from memory ---------------
    let mut cbuffer = inv.create_connector_chain("cbuffer").unwrap();
    let mut dummy = inv.create_connector_chain("dummy:1M").unwrap();
    // Written like cbuffer's buffer, so neither reads the kernel's shared zero page.
    let pattern: Vec<u8> = (0..1u32 << 20).map(|i| (i >> 3) as u8).collect();
    dummy.phys_write_raw(PhysicalAddress::plain(Address::NULL), &pattern).unwrap();
    let mut group = c.benchmark_group("connector_read");
    for len in [8usize, 4096] {
        let addrs: Vec<PhysicalAddress> = (0..ADDRESSES)
            .map(|_| PhysicalAddress::plain(Address::new(rng.gen_range(0..(1u64 << 20) - len as u64) & !7)))
            .collect();
        let mut buf = vec![0u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        for (name, conn) in [("rust-dummy", &mut dummy), ("c-cbuffer", &mut cbuffer)] {
            let mut i = 0;
            group.bench_function(BenchmarkId::new(name, format!("{len}B")), |b| {
                b.iter(|| {
                    i = (i + 1) % addrs.len();
                    conn.phys_read_raw_into(addrs[i], &mut buf).unwrap();
                    black_box(&buf);
                })
            });
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`ADDRESSES`] seeded random addresses of `len` bytes in `[base, base + size)` that both
/// processes read completely and alike (freed init memory of the kernel image is unmapped).
fn readable_alike(
    rng: &mut StdRng,
    a: &mut ProcessInstanceArcBox<'static>,
    b: &mut ProcessInstanceArcBox<'static>,
    base: Address,
    size: u64,
    len: usize,
) -> Vec<Address> {
    let (mut x, mut y) = (vec![0u8; len], vec![0u8; len]);
    let mut out = Vec::with_capacity(ADDRESSES);
    for _ in 0..ADDRESSES * 64 {
        let at = base + (rng.gen_range(0..size - len as u64) & !7);
        if a.read_raw_into(at, &mut x).is_ok() && b.read_raw_into(at, &mut y).is_ok() {
            assert_eq!(x, y, "the two layers read {at} differently");
            out.push(at);
            if out.len() == ADDRESSES {
                return out;
            }
        }
    }
    panic!("only {} readable addresses of {len} bytes in the kernel image", out.len());
}

criterion_group!(benches, c_plugins);
criterion_main!(benches);
