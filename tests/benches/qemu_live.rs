//! Reads of a live QEMU guest (issue 11), side by side in one criterion run on one guest:
//!
//! - `ours`: memflow-core's `QemuConnector` over the native OS layer (layout from the machine
//!   rules), through `phys_read_raw_into` / `phys_read_batch`,
//! - `memflow-qemu-0.2.1`: the peer's connector (`memflow_qemu::create_connector`, over
//!   memflow-native 0.2) on the same QEMU process, through `phys_read_into` /
//!   `phys_read_raw_iter`,
//! - `process_vm_readv`: the bare system call on the host addresses ours maps the same guest
//!   addresses to (one iovec per read, 64 for a batch): the floor.
//!
//! The bench boots its own guest (the fixture guest of `xtask::guest::LiveGuest`, 1 GiB, TCG)
//! and stops it at the end. Every contender reads the same seeded random guest-physical
//! addresses between 16 MiB and 1 GiB (4096 of them, cycled): 8 B and 4 KiB single reads,
//! batches of 64 separate pages, 1 MiB reads. Before measuring, the three contenders read the
//! guest's kernel text (unchanging) and must agree, so all map guest addresses alike.
//!
//! Run: `cargo bench -p memflow-tests --bench qemu_live -- --warm-up-time 1 --measurement-time 3`
//! (boots the guest first; needs `qemu-system-x86_64` and the fixture kernel, as the live
//! QEMU tests do).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{rngs::StdRng, Rng, SeedableRng};

use memflow_core::cglue::slice::CSliceMut;
use memflow_core::connector::qemu::{QemuConnector, QemuTarget};
use memflow_core::instance::os_instance;
use memflow_core::mem::{MemBatch, MemChunk, MemOp, PhysicalMemory};
use memflow_core::os::native::NativeOs;
use memflow_core::types::{Address, PhysicalAddress};
use xtask::guest::{GuestOptions, LiveGuest};

use memflow::cglue::{CSliceMut as PeerCSliceMut, CTup2, CTup3};
use memflow::mem::{MemOps, PhysicalMemory as PeerPhysicalMemory};
use memflow::plugins::ConnectorArgs;
use memflow::types::{Address as PeerAddress, PhysicalAddress as PeerPhysicalAddress};

const GUEST_RAM: u64 = 1 << 30;
/// Above the kernel image's load address and the low holes: plain RAM in every layout.
const LOW: u64 = 16 << 20;
/// The kernel's text with `nokaslr`, which does not change while the guest runs.
const KERNEL_TEXT: u64 = 16 << 20;
const N_ADDRESSES: usize = 4096;
const SEED: u64 = 0x6d656d666c6f77; // "memflow"
const PAGE: usize = 4096;
const BATCH: usize = 64;

/// Seeded random guest addresses, aligned to `align`, such that `len` bytes fit below the
/// end of RAM.
fn addresses(align: u64, len: u64) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..N_ADDRESSES).map(|_| rng.gen_range(LOW / align..(GUEST_RAM - len) / align) * align).collect()
}

/// Cycles through a list of addresses.
struct Cycle<'a> {
    list: &'a [u64],
    at: usize,
}

impl<'a> Cycle<'a> {
    fn new(list: &'a [u64]) -> Self {
        Cycle { list, at: 0 }
    }

    fn next(&mut self) -> u64 {
        let v = self.list[self.at];
        self.at = (self.at + 1) % self.list.len();
        v
    }
}

fn pa(addr: u64) -> PhysicalAddress {
    PhysicalAddress::plain(Address::from(addr))
}

fn peer_pa(addr: u64) -> PeerPhysicalAddress {
    PeerPhysicalAddress::from(PeerAddress::from(addr))
}

/// `process_vm_readv` of the given (local buffer, remote address) pairs; the byte count.
fn vm_readv(pid: libc::pid_t, local: &[libc::iovec], remote: &[libc::iovec]) -> isize {
    // SAFETY: every local iovec describes a live, writable buffer of the caller.
    unsafe { libc::process_vm_readv(pid, local.as_ptr(), local.len() as _, remote.as_ptr(), remote.len() as _, 0) }
}

fn iovec(addr: usize, len: usize) -> libc::iovec {
    libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len }
}

fn qemu_live(c: &mut Criterion) {
    let options = GuestOptions { mem: "1G".into(), ..GuestOptions::default() };
    let guest = LiveGuest::start_with(&format!("bench-{}", std::process::id()), &options).unwrap();
    let pid = libc::pid_t::try_from(guest.pid).unwrap();

    let target = QemuTarget { pid: Some(guest.pid), name: None };
    let mut ours =
        QemuConnector::open(os_instance(NativeOs::new(Default::default()), Default::default()), &target, None)
            .expect("ours opens the guest");
    let args: ConnectorArgs = guest.pid.to_string().parse().unwrap();
    let mut peer = memflow_qemu::create_connector(&args).expect("memflow-qemu opens the guest");
    // The host address of a guest address, as ours maps it (the bare contender reads there).
    let map = ours.map().clone();
    let host = move |addr: u64| -> usize {
        let (backing, room) = map.lookup(Address::from(addr)).expect("guest RAM");
        assert!(room > 0);
        usize::try_from(backing).unwrap()
    };

    // The three agree on the kernel text.
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    let mut c3 = vec![0u8; 1 << 20];
    ours.phys_read_raw_into(pa(KERNEL_TEXT), &mut a).unwrap();
    peer.phys_read_into(peer_pa(KERNEL_TEXT), &mut b[..]).unwrap();
    let n = vm_readv(pid, &[iovec(c3.as_mut_ptr() as usize, c3.len())], &[iovec(host(KERNEL_TEXT), c3.len())]);
    assert_eq!(n, c3.len() as isize);
    assert!(a.iter().any(|&x| x != 0), "the kernel text is not all zero");
    assert!(a == b && a == c3, "the contenders read different bytes at the kernel text");

    for (size, label) in [(8usize, "8B"), (PAGE, "4KiB"), (1 << 20, "1MiB")] {
        let addrs = addresses(if size == 8 { 8 } else { PAGE as u64 }, size as u64);
        let hosts: Vec<usize> = addrs.iter().map(|&a| host(a)).collect();
        let mut buf = vec![0u8; size];
        let mut g = c.benchmark_group(format!("qemu_live/{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::from_parameter("ours"), |bch| {
            let mut it = Cycle::new(&addrs);
            bch.iter(|| black_box(ours.phys_read_raw_into(pa(it.next()), black_box(&mut buf[..]))).ok())
        });
        g.bench_function(BenchmarkId::from_parameter("memflow-qemu-0.2.1"), |bch| {
            let mut it = Cycle::new(&addrs);
            bch.iter(|| black_box(peer.phys_read_into(peer_pa(it.next()), black_box(&mut buf[..]))).ok())
        });
        g.bench_function(BenchmarkId::from_parameter("process_vm_readv"), |bch| {
            let mut i = 0;
            bch.iter(|| {
                let remote = hosts[i];
                i = (i + 1) % hosts.len();
                let local = black_box(&mut buf[..]);
                black_box(vm_readv(pid, &[iovec(local.as_mut_ptr() as usize, size)], &[iovec(remote, size)]))
            })
        });
        g.finish();
    }

    // 64 separate pages in one batch.
    let addrs = addresses(PAGE as u64, PAGE as u64);
    let hosts: Vec<usize> = addrs.iter().map(|&a| host(a)).collect();
    let mut buf = vec![0u8; BATCH * PAGE];
    let mut g = c.benchmark_group("qemu_live/batch-64x4KiB");
    g.throughput(Throughput::Bytes((BATCH * PAGE) as u64));
    g.bench_function(BenchmarkId::from_parameter("ours"), |bch| {
        let mut it = Cycle::new(&addrs);
        bch.iter(|| {
            let mut failed = 0usize;
            let mut on_fail = |_: MemChunk<CSliceMut<u8>>| {
                failed += 1;
                true
            };
            let ops = black_box(&mut buf[..]).chunks_exact_mut(PAGE).map(|chunk| {
                let addr = it.next();
                MemOp { addr: pa(addr), tag: Address::from(addr), buf: chunk.into() }
            });
            black_box(MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), |b| ours.phys_read_batch(b))).ok();
            black_box(failed)
        })
    });
    g.bench_function(BenchmarkId::from_parameter("memflow-qemu-0.2.1"), |bch| {
        let mut it = Cycle::new(&addrs);
        bch.iter(|| {
            let mut failed = 0usize;
            let mut on_fail = |_: CTup2<PeerAddress, PeerCSliceMut<u8>>| {
                failed += 1;
                true
            };
            let ops = black_box(&mut buf[..]).chunks_exact_mut(PAGE).map(|chunk| {
                let addr = it.next();
                CTup3(peer_pa(addr), PeerAddress::from(addr), PeerCSliceMut::from(chunk))
            });
            black_box(MemOps::with_raw(ops, None, Some(&mut (&mut on_fail).into()), |d| peer.phys_read_raw_iter(d)))
                .ok();
            black_box(failed)
        })
    });
    g.bench_function(BenchmarkId::from_parameter("process_vm_readv"), |bch| {
        let mut i = 0;
        bch.iter(|| {
            let mut local = [iovec(0, 0); BATCH];
            let mut remote = [iovec(0, 0); BATCH];
            for ((l, r), chunk) in local.iter_mut().zip(&mut remote).zip(black_box(&mut buf[..]).chunks_exact_mut(PAGE))
            {
                *l = iovec(chunk.as_mut_ptr() as usize, PAGE);
                *r = iovec(hosts[i], PAGE);
                i = (i + 1) % hosts.len();
            }
            black_box(vm_readv(pid, &local, &remote))
        })
    });
    g.finish();
    drop(guest);
}

criterion_group!(benches, qemu_live);
criterion_main!(benches);
