//! Reads of a live QEMU guest (issue 11), side by side in one criterion run on one guest:
//!
//! - `ours`: memflow-core's `QemuConnector` as the `qemu` plugin opens it by default (found
//!   through the native OS layer, its memory read directly; layout from the machine rules),
//!   through `phys_read_raw_into` / `phys_read_batch`,
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
//! After each criterion group, the same operations run interleaved (31 rounds, each timing one
//! pass of 1024 reads (64 of 1 MiB, 16 batches) of every contender in turn) and one line gives
//! each one's median per operation and the bare call's over it: the ratios to go by on a busy
//! machine.
//!
//! Run: `cargo bench -p memflow-tests --bench qemu_live -- --warm-up-time 1 --measurement-time 3`
//! (boots the guest first; needs `qemu-system-x86_64` and the fixture kernel, as the live
//! QEMU tests do).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "../../memflow-core/benches/support/interleave.rs"]
mod interleave;
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
    // As the `qemu` plugin opens it by default: found through the native layer, read directly.
    let mut ours =
        QemuConnector::open_on_host(os_instance(NativeOs::new(Default::default()), Default::default()), &target, None)
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
        let at = |i: usize| i % addrs.len();
        let mut ops: [Op<'_>; 3] = [
            (
                "ours",
                Box::new(|buf, i| {
                    black_box(ours.phys_read_raw_into(pa(addrs[at(i)]), buf)).ok();
                }),
            ),
            (
                "memflow-qemu-0.2.1",
                Box::new(|buf, i| {
                    black_box(peer.phys_read_into(peer_pa(addrs[at(i)]), buf)).ok();
                }),
            ),
            (
                "process_vm_readv",
                Box::new(|buf, i| {
                    black_box(vm_readv(pid, &[iovec(buf.as_mut_ptr() as usize, size)], &[iovec(hosts[at(i)], size)]));
                }),
            ),
        ];
        let per_pass = if size == 1 << 20 { 64 } else { 1024 };
        compare(c, &format!("qemu_live/{label}"), size as u64, &mut buf, &mut ops, per_pass);
    }

    // 64 separate pages in one batch.
    let addrs = addresses(PAGE as u64, PAGE as u64);
    let hosts: Vec<usize> = addrs.iter().map(|&a| host(a)).collect();
    let mut buf = vec![0u8; BATCH * PAGE];
    // Batch `i` reads the 64 addresses from `i * 64` on (cycled).
    let at = |i: usize, k: usize| (i * BATCH + k) % addrs.len();
    let mut ops: [Op<'_>; 3] = [
        (
            "ours",
            Box::new(|buf, i| {
                let mut failed = 0usize;
                let mut on_fail = |_: MemChunk<CSliceMut<u8>>| {
                    failed += 1;
                    true
                };
                let ops = buf.chunks_exact_mut(PAGE).enumerate().map(|(k, chunk)| {
                    let addr = addrs[at(i, k)];
                    MemOp { addr: pa(addr), tag: Address::from(addr), buf: chunk.into() }
                });
                black_box(MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), |b| ours.phys_read_batch(b)))
                    .ok();
                black_box(failed);
            }),
        ),
        (
            "memflow-qemu-0.2.1",
            Box::new(|buf, i| {
                let mut failed = 0usize;
                let mut on_fail = |_: CTup2<PeerAddress, PeerCSliceMut<u8>>| {
                    failed += 1;
                    true
                };
                let ops = buf.chunks_exact_mut(PAGE).enumerate().map(|(k, chunk)| {
                    let addr = addrs[at(i, k)];
                    CTup3(peer_pa(addr), PeerAddress::from(addr), PeerCSliceMut::from(chunk))
                });
                black_box(MemOps::with_raw(ops, None, Some(&mut (&mut on_fail).into()), |d| {
                    peer.phys_read_raw_iter(d)
                }))
                .ok();
                black_box(failed);
            }),
        ),
        (
            "process_vm_readv",
            Box::new(|buf, i| {
                let mut local = [iovec(0, 0); BATCH];
                let mut remote = [iovec(0, 0); BATCH];
                for (k, ((l, r), chunk)) in
                    local.iter_mut().zip(&mut remote).zip(buf.chunks_exact_mut(PAGE)).enumerate()
                {
                    *l = iovec(chunk.as_mut_ptr() as usize, PAGE);
                    *r = iovec(hosts[at(i, k)], PAGE);
                }
                black_box(vm_readv(pid, &local, &remote));
            }),
        ),
    ];
    compare(c, "qemu_live/batch-64x4KiB", (BATCH * PAGE) as u64, &mut buf, &mut ops, 16);
    drop(guest);
}

/// A contender: its name and its operation number `i` (a read or a batch; the addresses
/// cycle) into the buffer.
type Op<'a> = (&'static str, Box<dyn FnMut(&mut [u8], usize) + 'a>);

/// One pass of a contender's operations over the buffer.
type Pass<'a> = Box<dyn FnMut(&mut [u8]) + 'a>;

/// Measures the contenders' operations into `buf` as one criterion group (`bytes` per
/// operation), then interleaved (see `support/interleave.rs`) in passes of `per_pass`
/// operations: the ratios criterion's groups give move with the load of other processes, the
/// interleaved ones much less. The last contender is the reference.
fn compare(c: &mut Criterion, group: &str, bytes: u64, buf: &mut [u8], ops: &mut [Op<'_>], per_pass: usize) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(bytes));
    for (name, op) in ops.iter_mut() {
        g.bench_function(BenchmarkId::from_parameter(*name), |bch| {
            let mut i = 0usize;
            bch.iter(|| {
                op(black_box(&mut *buf), i);
                i = i.wrapping_add(1);
            })
        });
    }
    g.finish();
    let names: Vec<&'static str> = ops.iter().map(|(name, _)| *name).collect();
    let mut passes: Vec<Pass<'_>> = ops
        .iter_mut()
        .map(|(_, op)| {
            Box::new(move |buf: &mut [u8]| (0..per_pass).for_each(|i| op(black_box(&mut *buf), i))) as Pass<'_>
        })
        .collect();
    let mut contenders: Vec<interleave::Contender<'_, [u8]>> =
        names.into_iter().zip(passes.iter_mut()).map(|(name, pass)| (name, &mut **pass as _)).collect();
    interleave::interleaved(group, &mut contenders, buf, per_pass);
}

criterion_group!(benches, qemu_live);
criterion_main!(benches);
