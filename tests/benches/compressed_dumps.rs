//! Compressed dumps (issue 13) against the ELF dump of the same guest moment and against
//! their codec alone, in one criterion run on the cloud-4l fixture (256 MiB):
//!
//! - `open_to_process_list/{elf,kdump-zlib-flat,kdump-zlib-plain}`: open the dump, find the
//!   kernel (CPU state, kallsyms, BTF) and list every process, as `coredump:DUMP -> linux`
//!   does; `.../avml-{elf-scan,lime,compressed}` the same on the cloud-4l-avml fixture (the
//!   same guest, which took AVML captures of itself), where the kernel is found by scanning
//!   since AVML records no CPU state, the ELF dump opened the same way for comparison;
//!   `.../kdump-{zstd,snappy}` the same on kdumps our own writer makes of `dump.elf` (no real
//!   tool here writes those codecs), written to `target/bench-data` before the run;
//! - `random_4k/{ours-cold,zlib-alone}`: 4 KiB reads of seeded random zlib-compressed pages
//!   from the plain kdump with a one-page cache (every read decompresses), and `flate2`
//!   inflating the same stored bytes (found through the dump's own bitmap and page
//!   descriptors) from memory;
//! - `sequential_1m/{ours,zlib-alone}`: 1 MiB reads walking the first 64 MiB of guest RAM in
//!   order (default cache of 32 MiB, so every round misses), and `flate2` inflating the same
//!   256 pages' stored bytes (all-zero pages are stored once in the dump: ours decompresses
//!   that one once and then finds it in the cache, the codec alone inflates it every time).
//!
//! Run: `cargo bench -p memflow-tests --bench compressed_dumps` (needs the cloud-4l and
//! cloud-4l-avml fixtures: `cargo xtask fixtures`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run

use std::hint::black_box;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{rngs::StdRng, Rng, SeedableRng};

use memflow_core::arch::ArchitectureIdent;
use memflow_core::connector::{open, write_dump, DumpMeta, FileConnector, KdumpCodec, OpenOptions, WriteFormat};
use memflow_core::error::PartialResultExt;
use memflow_core::mem::PhysicalMemory;
use memflow_core::os::linux::{cpu_hints, LinuxOs};
use memflow_core::os::Os;
use memflow_core::plugins::LibArc;
use memflow_core::types::{Address, PhysicalAddress};
use memflow_tests::{repo_root, Fixture};

const PAGE: usize = 4096;
const MIB: usize = 1 << 20;
const SEED: u64 = 0x6d656d666c6f77; // "memflow"

fn open_with(fx: &Fixture, file: &str, cache_size: usize) -> FileConnector {
    open_path(&fx.dir.join(file), cache_size)
}

fn open_path(path: &Path, cache_size: usize) -> FileConnector {
    open(path, OpenOptions { cache_size, ..OpenOptions::default() }).unwrap()
}

/// `dump.elf` of `fx` written by our writer as a compressed kdump with `codec`, into
/// `target/bench-data`.
fn written_kdump(fx: &Fixture, codec: KdumpCodec) -> PathBuf {
    let format = WriteFormat::Kdump(codec);
    let path = repo_root().join("target/bench-data").join(format!("cloud-4l.{}", format.name()));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut source = open_with(fx, "dump.elf", memflow_core::connector::DEFAULT_CACHE_SIZE);
    let meta = DumpMeta::from_info(source.info(), ArchitectureIdent::X86_64);
    write_dump(&mut source, &meta, &path, format, &mut |_| ControlFlow::Continue(())).unwrap();
    path
}

fn at(addr: u64) -> PhysicalAddress {
    PhysicalAddress::plain(Address::new(addr as _))
}

/// A saved page: its descriptor flags and its stored bytes.
type Stored = (u32, Vec<u8>);

/// The stored bytes of every page of a plain kdump by pfn, found as a reader finds them:
/// bitmap 2, then the n-th descriptor for the n-th saved page.
fn stored_pages(kdump: &[u8]) -> Vec<Option<Stored>> {
    use memflow_core::connector::kdump::format::{header, sub_header, PAGE_DESC_SIZE};
    let u32_at = |at: u64| u32::from_le_bytes(kdump[at as usize..at as usize + 4].try_into().unwrap());
    let u64_at = |at: u64| u64::from_le_bytes(kdump[at as usize..at as usize + 8].try_into().unwrap());
    let bs = u64::from(u32_at(header::BLOCK_SIZE));
    let (sub, bitmap_blocks) = (u64::from(u32_at(header::SUB_HDR_SIZE)), u64::from(u32_at(header::BITMAP_BLOCKS)));
    let max_mapnr = u64_at(bs + sub_header::MAX_MAPNR_64);
    let bitmap2 = bs * (1 + sub) + bitmap_blocks / 2 * bs;
    let mut desc = bs * (1 + sub + bitmap_blocks);
    (0..max_mapnr)
        .map(|pfn| {
            if kdump[(bitmap2 + pfn / 8) as usize] >> (pfn % 8) & 1 == 0 {
                return None;
            }
            let (offset, size, flags) = (u64_at(desc), u64::from(u32_at(desc + 8)), u32_at(desc + 12));
            desc += PAGE_DESC_SIZE;
            Some((flags, kdump[offset as usize..(offset + size) as usize].to_vec()))
        })
        .collect()
}

/// Inflates (zlib) or copies (stored) one page's stored bytes, as a reader must.
fn decode(z: &mut flate2::Decompress, (flags, stored): &Stored, out: &mut [u8]) {
    if flags & 1 == 0 {
        out.copy_from_slice(stored);
    } else {
        inflate(z, stored, out);
    }
}

fn inflate(z: &mut flate2::Decompress, input: &[u8], out: &mut [u8]) {
    z.reset(true);
    let status = z.decompress(input, out, flate2::FlushDecompress::Finish).unwrap();
    assert_eq!(status, flate2::Status::StreamEnd);
}

fn open_to_process_list(c: &mut Criterion, fx: &Fixture, avml: &Fixture) {
    let mut group = c.benchmark_group("open_to_process_list");
    group.sample_size(10);
    // (name, dump, use the CPU state)
    let cases = [
        ("elf", fx.dir.join("dump.elf"), true),
        ("kdump-zlib-flat", fx.dir.join("dump.kdump-zlib"), true),
        ("kdump-zlib-plain", fx.dir.join("dump.kdump-zlib-plain"), true),
        ("kdump-zstd", written_kdump(fx, KdumpCodec::Zstd), true),
        ("kdump-snappy", written_kdump(fx, KdumpCodec::Snappy), true),
        ("avml-elf-scan", avml.dir.join("dump.elf"), false),
        ("avml-lime", avml.dir.join("dump.avml-lime"), false),
        ("avml-compressed", avml.dir.join("dump.avml"), false),
    ];
    for (name, path, use_hints) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let conn = open_path(path, memflow_core::connector::DEFAULT_CACHE_SIZE);
                let hints = if *use_hints { cpu_hints(&conn) } else { Vec::new() };
                let mut os = LinuxOs::new(conn, &hints, LibArc::default()).unwrap();
                black_box(os.process_info_list().unwrap().len())
            })
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion, fx: &Fixture) {
    let stored = stored_pages(&std::fs::read(fx.dir.join("dump.kdump-zlib-plain")).unwrap());
    let ram_pages = (256 * MIB / PAGE) as u64;
    // Seeded random zlib-compressed pages (all-zero pages are stored once and shared, so
    // they would be cache hits).
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut pages = Vec::new();
    let mut buf = vec![0u8; PAGE];
    while pages.len() < 4096 {
        let pfn = rng.gen_range(0..ram_pages);
        if let Some((flags, bytes)) = &stored[pfn as usize] {
            if flags & 1 != 0 && bytes.len() > 200 {
                pages.push((pfn * PAGE as u64, bytes.clone()));
            }
        }
    }

    let mut group = c.benchmark_group("random_4k");
    group.throughput(Throughput::Bytes(PAGE as u64));
    let mut cold = open_with(fx, "dump.kdump-zlib-plain", PAGE);
    let mut i = 0;
    group.bench_function("ours-cold", |b| {
        b.iter(|| {
            i = (i + 1) % pages.len();
            cold.phys_read_raw_into(at(pages[i].0), &mut buf).data().unwrap();
            black_box(&buf);
        })
    });
    let mut z = flate2::Decompress::new(true);
    group.bench_function("zlib-alone", |b| {
        b.iter(|| {
            i = (i + 1) % pages.len();
            inflate(&mut z, &pages[i].1, &mut buf);
            black_box(&buf);
        })
    });
    group.finish();

    // Sequential: the first 64 MiB of guest RAM, 1 MiB at a time.
    let chunks: Vec<&[Option<Stored>]> = stored[..64 * MIB / PAGE].chunks(MIB / PAGE).collect();
    let zero = chunks.iter().flat_map(|c| c.iter()).filter(|p| p.as_ref().is_some_and(|(_, b)| b.len() < 64)).count();
    eprintln!("sequential_1m: {zero} of {} pages are stored in under 64 bytes (zero pages)", 64 * MIB / PAGE);
    let mut group = c.benchmark_group("sequential_1m");
    group.throughput(Throughput::Bytes(MIB as u64));
    let mut ours = open_with(fx, "dump.kdump-zlib-plain", memflow_core::connector::DEFAULT_CACHE_SIZE);
    let mut out = vec![0u8; MIB];
    let mut m = 0;
    group.bench_function("ours", |b| {
        b.iter(|| {
            m = (m + 1) % chunks.len();
            ours.phys_read_raw_into(at((m * MIB) as u64), &mut out).data().unwrap();
            black_box(&out);
        })
    });
    group.bench_function("zlib-alone", |b| {
        b.iter(|| {
            m = (m + 1) % chunks.len();
            for (page, packed) in out.chunks_mut(PAGE).zip(chunks[m]) {
                decode(&mut z, packed.as_ref().unwrap(), page);
            }
            black_box(&out);
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let fx = Fixture::load("cloud-4l");
    open_to_process_list(c, &fx, &Fixture::load("cloud-4l-avml"));
    reads(c, &fx);
}

criterion_group!(compressed, benches);
criterion_main!(compressed);
