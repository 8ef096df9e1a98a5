//! Physical reads from a memory-mapped file (issue 2), side by side in one criterion run:
//!
//! - `ours`: the file opened as a raw image the way `connector::open` does it (a
//!   `FileConnector`: a `BufferMemory` over a `memmap2` mapping), through `phys_read_raw_into`
//!   (and `phys_read::<u64>` for 8 B reads as `ours-read-u64`),
//! - `memcpy`: `copy_from_slice` of the same bytes from the same mapping,
//! - `memflow-0.2.4`: the peer's own read-only file mapping (`MmapInfo` ->
//!   `MappedPhysicalMemory`) of the same file, through its `phys_read_into`.
//!
//! Every contender reads the same sizes at the same seeded random offsets (4096 offsets,
//! cycled). The data file (256 MiB of random bytes) is created once under
//! `<workspace>/target/bench-data/`, and every mapping is read in full before measuring (the
//! contenders' bytes compared), so none pays first-touch page faults inside the measurement.
//!
//! For 8 B reads both libraries are also measured through their cglue trait objects (`-dyn`:
//! how plugins and the C API call a connector).
//!
//! A second group compares 64 reads of 8 B in one `phys_read_batch` against 64 separate calls,
//! on the concrete type and (ours) through the trait object.
//!
//! Run: `cargo bench -p memflow-core --bench phys_read -- --warm-up-time 1 --measurement-time 3`
//! and summarise with `cargo xtask bench-report phys [target-dir]`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{rngs::SmallRng, Rng, RngCore, SeedableRng};

use memflow_core::cglue::slice::CSliceMut;
use memflow_core::cglue::trait_group::Opaquable;
use memflow_core::connector::detect::from_backing;
use memflow_core::connector::file::{map_file, MappedFile};
use memflow_core::connector::{Backing, OpenOptions};
use memflow_core::mem::{MemBatch, MemChunk, MemOp, MemoryMap, PhysicalMemory};
use memflow_core::types::{Address, PhysicalAddress};

use memflow::cglue::{CSliceMut as PeerCSliceMut, CTup2, CTup3, Opaquable as PeerOpaquable};
use memflow::connector::MmapInfo;
use memflow::mem::{MemOps, MemoryMap as PeerMemoryMap, PhysicalMemory as PeerPhysicalMemory};
use memflow::types::{Address as PeerAddress, PhysicalAddress as PeerPhysicalAddress};

const FILE_SIZE: usize = 256 << 20;
const N_OFFSETS: usize = 4096;
const SEED: u64 = 0x6d656d666c6f77; // "memflow"
const SIZES: [(usize, &str); 4] = [(8, "8B"), (4 << 10, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];
const BATCH: usize = 64;

/// The data file, created with random content if missing or of the wrong size.
fn data_file() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    let path = dir.join("phys-read-256m.bin");
    if std::fs::metadata(&path).map(|m| m.len() == FILE_SIZE as u64).unwrap_or(false) {
        return path;
    }
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    let tmp = dir.join(format!("phys-read-256m.bin.tmp{}", std::process::id()));
    let mut rng = SmallRng::seed_from_u64(SEED ^ 0xf11e);
    let mut f = File::create(&tmp).expect("create bench data file");
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..FILE_SIZE / chunk.len() {
        rng.fill_bytes(&mut chunk);
        f.write_all(&chunk).expect("write bench data file");
    }
    f.sync_all().ok();
    std::fs::rename(&tmp, &path).expect("move bench data file in place");
    path
}

/// A file mapping shared between our connector and the memcpy baseline.
struct SharedMapping(Arc<MappedFile>);

impl Backing for SharedMapping {
    fn bytes(&self) -> (*const u8, usize) {
        self.0.bytes()
    }
    fn writable(&self) -> bool {
        self.0.writable()
    }
}

impl std::ops::Deref for SharedMapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Seeded random offsets, each leaving room for a read of `size` bytes.
fn offsets(size: usize) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(SEED);
    (0..N_OFFSETS).map(|_| rng.gen_range(0..=(FILE_SIZE - size) as u64)).collect()
}

/// Cycles through `offs`.
struct Cycle<'a> {
    offs: &'a [u64],
    i: usize,
}

impl<'a> Cycle<'a> {
    fn new(offs: &'a [u64]) -> Self {
        assert!(offs.len() == N_OFFSETS && N_OFFSETS.is_power_of_two());
        Cycle { offs, i: 0 }
    }
    #[inline(always)]
    fn next(&mut self) -> u64 {
        let o = self.offs[self.i];
        self.i = (self.i + 1) & (N_OFFSETS - 1);
        o
    }
}

#[inline(always)]
fn pa(off: u64) -> PhysicalAddress {
    PhysicalAddress::plain(Address::from(off))
}

#[inline(always)]
fn peer_pa(off: u64) -> PeerPhysicalAddress {
    PeerPhysicalAddress::from(PeerAddress::from(off))
}

fn phys_read(c: &mut Criterion) {
    let path = data_file();
    let file = File::open(&path).expect("open bench data file");

    // Ours: exactly what `connector::open` does for a raw image (`map_file`, then
    // `from_backing`), except that the bench keeps a handle on the mapping so that the memcpy
    // baseline copies from the very same mapped bytes.
    let mapped = Arc::new(map_file(&path, false).expect("map the bench data file"));
    let options = OpenOptions { raw_map: Some(MemoryMap::identity(FILE_SIZE as _)), ..OpenOptions::default() };
    let mut ours = from_backing(SharedMapping(mapped.clone()), options).expect("serve the file as a raw image");
    let raw: &[u8] = &mapped[..];

    // The peer: its own read-only mapping of the same file, identity-mapped.
    let mut peer_map = PeerMemoryMap::new();
    peer_map.push_remap(PeerAddress::from(0u64), FILE_SIZE as u64, PeerAddress::from(0u64));
    let mut peer = MmapInfo::try_with_filemap(file.try_clone().expect("dup file"), peer_map)
        .expect("peer maps the file")
        .into_connector();

    // The same two as cglue trait objects (sharing the mappings).
    let mut ours_dyn: memflow_core::mem::PhysicalMemoryBox<'static> =
        memflow_core::mem::PhysicalMemoryBase::from(ours.clone()).into_opaque();
    let mut peer_dyn: memflow::mem::phys_mem::PhysicalMemoryBox<'static> =
        memflow::mem::phys_mem::PhysicalMemoryBase::from(peer.clone()).into_opaque();

    // Fault every page of every mapping in (the comparison reads every byte of all three), and
    // check that the contenders agree.
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    for off in (0..FILE_SIZE).step_by(1 << 20) {
        ours.phys_read_raw_into(pa(off as u64), &mut a).expect("ours reads the file");
        peer.phys_read_into(peer_pa(off as u64), &mut b[..]).expect("peer reads the file");
        assert!(a == b && a[..] == raw[off..off + a.len()], "contenders disagree at {off:#x}");
    }

    for (size, name) in SIZES {
        let offs = offsets(size);
        let mut g = c.benchmark_group(format!("phys_read/{name}"));
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; size];

        g.bench_function(BenchmarkId::from_parameter("ours"), |bch| {
            let mut it = Cycle::new(&offs);
            bch.iter(|| {
                let r = ours.phys_read_raw_into(pa(it.next()), black_box(&mut buf[..]));
                black_box(r).ok();
            })
        });
        if size == 8 {
            g.bench_function(BenchmarkId::from_parameter("ours-read-u64"), |bch| {
                let mut it = Cycle::new(&offs);
                bch.iter(|| black_box(ours.phys_read::<u64>(pa(it.next()))).ok())
            });
            // Through a cglue trait object, as plugins and the C API call it: the helper
            // calls the vtable's single-read entry (`phys_read_single`).
            g.bench_function(BenchmarkId::from_parameter("ours-dyn"), |bch| {
                let mut it = Cycle::new(&offs);
                bch.iter(|| {
                    let r = ours_dyn.phys_read_raw_into(pa(it.next()), black_box(&mut buf[..]));
                    black_box(r).ok();
                })
            });
        }
        g.bench_function(BenchmarkId::from_parameter("memcpy"), |bch| {
            let mut it = Cycle::new(&offs);
            bch.iter(|| {
                let off = it.next() as usize;
                black_box(&mut buf[..]).copy_from_slice(&black_box(raw)[off..off + size]);
            })
        });
        g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4"), |bch| {
            let mut it = Cycle::new(&offs);
            bch.iter(|| {
                let r = peer.phys_read_into(peer_pa(it.next()), black_box(&mut buf[..]));
                black_box(r).ok();
            })
        });
        if size == 8 {
            g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4-dyn"), |bch| {
                let mut it = Cycle::new(&offs);
                bch.iter(|| {
                    let r = peer_dyn.phys_read_into(peer_pa(it.next()), black_box(&mut buf[..]));
                    black_box(r).ok();
                })
            });
            g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4-u64"), |bch| {
                let mut it = Cycle::new(&offs);
                bch.iter(|| {
                    let mut v = 0u64;
                    let r = peer.phys_read_into(peer_pa(it.next()), &mut v);
                    black_box(r).ok();
                    black_box(v)
                })
            });
        }
        g.finish();
    }

    // 64 reads of 8 B: one batch against 64 calls.
    let offs = offsets(8);
    let mut g = c.benchmark_group("phys_read_batch/64x8B");
    g.throughput(Throughput::Bytes((BATCH * 8) as u64));
    let mut buf = vec![0u8; BATCH * 8];
    g.bench_function(BenchmarkId::from_parameter("ours-batch"), |bch| {
        let mut it = Cycle::new(&offs);
        bch.iter(|| {
            let mut failed = 0usize;
            let mut on_fail = |_: MemChunk<CSliceMut<u8>>| {
                failed += 1;
                true
            };
            let ops = black_box(&mut buf[..]).chunks_exact_mut(8).map(|chunk| {
                let off = it.next();
                MemOp { addr: pa(off), tag: Address::from(off), buf: chunk.into() }
            });
            let r = MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), |b| ours.phys_read_batch(b));
            black_box(r).ok();
            black_box(failed)
        })
    });
    g.bench_function(BenchmarkId::from_parameter("ours-64-calls"), |bch| {
        let mut it = Cycle::new(&offs);
        bch.iter(|| {
            for chunk in black_box(&mut buf[..]).chunks_exact_mut(8) {
                black_box(ours.phys_read_raw_into(pa(it.next()), chunk)).ok();
            }
        })
    });
    // The same through the trait object: one vtable call per batch instead of one per read.
    g.bench_function(BenchmarkId::from_parameter("ours-dyn-batch"), |bch| {
        let mut it = Cycle::new(&offs);
        bch.iter(|| {
            let mut failed = 0usize;
            let mut on_fail = |_: MemChunk<CSliceMut<u8>>| {
                failed += 1;
                true
            };
            let ops = black_box(&mut buf[..]).chunks_exact_mut(8).map(|chunk| {
                let off = it.next();
                MemOp { addr: pa(off), tag: Address::from(off), buf: chunk.into() }
            });
            let r = MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), |b| ours_dyn.phys_read_batch(b));
            black_box(r).ok();
            black_box(failed)
        })
    });
    g.bench_function(BenchmarkId::from_parameter("ours-dyn-64-calls"), |bch| {
        let mut it = Cycle::new(&offs);
        bch.iter(|| {
            for chunk in black_box(&mut buf[..]).chunks_exact_mut(8) {
                black_box(ours_dyn.phys_read_raw_into(pa(it.next()), chunk)).ok();
            }
        })
    });
    g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4-batch"), |bch| {
        let mut it = Cycle::new(&offs);
        bch.iter(|| {
            let mut failed = 0usize;
            let mut on_fail = |_: CTup2<PeerAddress, PeerCSliceMut<u8>>| {
                failed += 1;
                true
            };
            let ops = black_box(&mut buf[..]).chunks_exact_mut(8).map(|chunk| {
                let off = it.next();
                CTup3(peer_pa(off), PeerAddress::from(off), PeerCSliceMut::from(chunk))
            });
            let r = MemOps::with_raw(ops, None, Some(&mut (&mut on_fail).into()), |d| peer.phys_read_raw_iter(d));
            black_box(r).ok();
            black_box(failed)
        })
    });
    g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4-64-calls"), |bch| {
        let mut it = Cycle::new(&offs);
        bch.iter(|| {
            for chunk in black_box(&mut buf[..]).chunks_exact_mut(8) {
                black_box(peer.phys_read_into(peer_pa(it.next()), chunk)).ok();
            }
        })
    });
    g.bench_function(BenchmarkId::from_parameter("memcpy-64"), |bch| {
        let mut it = Cycle::new(&offs);
        bch.iter(|| {
            for chunk in black_box(&mut buf[..]).chunks_exact_mut(8) {
                let off = it.next() as usize;
                chunk.copy_from_slice(&black_box(raw)[off..off + 8]);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, phys_read);
criterion_main!(benches);
