//! Writing dumps (issue 13): `write_dump` of a 1 GiB guest to an ELF core and to a zstd
//! kdump against a plain `write` of the same bytes to the same disk, and the peak memory of
//! a dump.
//!
//! - `write_1gib/{plain_write,elf,kdump_zstd,kdump_snappy}` (criterion, 10 samples each): the
//!   source is a synthetic 1 GiB connector that generates its pages (half all-zero, a quarter
//!   repetitive text, a quarter random bytes, by page number), so no source memory is
//!   resident; `plain_write` reads the same 1 MiB chunks from it and `write`s them to a file.
//!   Every contender ends with `fsync` (the writer flushes before its rename) and deletes its
//!   file; all files go to `target/tmp`.
//! - `write_256mib` (interleaved, 31 rounds): the same contenders on 256 MiB, one pass of each
//!   per round, for ratios that the load of other processes affects alike.
//! - Peak RSS: the bench runs itself as a child process per case (one dump each) and prints
//!   the child's `VmHWM` and its peak anonymous memory (`RssAnon`, sampled every 64 MiB
//!   through the progress callback): the synthetic 1 GiB source, and the 5 GiB cloud-4l-5g
//!   guest (`dump.elf`, memory-mapped by the `coredump` connector: its pages read count as
//!   file-backed RSS of the process while the kernel keeps them mapped).
//!
//! Run: `cargo bench -p memflow-tests --bench write_dumps` (the RSS part needs the
//! cloud-4l-5g fixture: `cargo xtask fixtures`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run
#![allow(clippy::unnecessary_cast)] // casts between `umem` and `u64` are needed when `umem` is `u128`

use std::fs::File;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput};

#[path = "../../memflow-core/benches/support/interleave.rs"]
mod support;

use memflow_core::arch::ArchitectureIdent;
use memflow_core::connector::{open, write_dump, DumpMeta, KdumpCodec, OpenOptions, WriteFormat};
use memflow_core::error::Result;
use memflow_core::mem::{MemOp, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata};
use memflow_core::types::{umem, Address, PhysicalAddress};
use memflow_tests::{temp_dir, Fixture};

const PAGE: usize = 4096;
const MIB: usize = 1 << 20;
const SIZE: u64 = 1 << 30;
const CHILD: &str = "MF_WRITE_BENCH_CHILD";

/// `size` bytes of generated pages at physical 0, nothing resident.
struct Generated {
    size: u64,
}

/// The 1 GiB source of the criterion group and the peak-memory children.
fn gib() -> Generated {
    Generated { size: SIZE }
}

fn fill_page(pfn: u64, page: &mut [u8]) {
    let mut x = pfn.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    match pfn.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 62 {
        0 | 1 => page.fill(0),
        2 => {
            let text = format!("memflow page {pfn:#x}: some kernel text or a file cache page. ");
            for (b, t) in page.iter_mut().zip(text.bytes().cycle()) {
                *b = t;
            }
        }
        _ => {
            for b in page.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
        }
    }
}

impl PhysicalMemory for Generated {
    fn phys_read_batch(&mut self, mut batch: PhysReadBatch) -> Result<()> {
        while let Some(MemOp { addr, tag, mut buf }) = batch.ops.next() {
            let start = addr.address.to_umem() as u64;
            // The writer reads whole pages from page-aligned addresses.
            assert!(start.is_multiple_of(PAGE as u64) && buf.len().is_multiple_of(PAGE));
            for (i, page) in buf.chunks_mut(PAGE).enumerate() {
                fill_page(start / PAGE as u64 + i as u64, page);
            }
            batch.ok(tag, buf);
        }
        Ok(())
    }

    fn phys_write_batch(&mut self, _batch: PhysWriteBatch) -> Result<()> {
        unreachable!("the bench only reads")
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        PhysicalMemoryMetadata {
            max_address: Address::new((self.size - 1) as umem),
            real_size: self.size as umem,
            readonly: true,
            ideal_batch_size: u32::MAX,
        }
    }
}

fn meta() -> DumpMeta {
    DumpMeta {
        arch: ArchitectureIdent::X86_64,
        cpus: Vec::new(),
        aarch64_cpus: Vec::new(),
        riscv_cpus: Vec::new(),
        vmcoreinfo: None,
    }
}

/// Reads `src` in 1 MiB chunks and writes them to `path`, then `fsync`.
fn plain_write(mut src: Generated, path: &Path) {
    let mut buf = vec![0u8; MIB];
    let mut file = File::create(path).unwrap();
    for chunk in 0..src.size / MIB as u64 {
        let addr = PhysicalAddress::plain(Address::new((chunk * MIB as u64) as umem));
        assert_eq!(src.phys_read_single(addr, &mut buf).unwrap(), MIB);
        file.write_all(&buf).unwrap();
    }
    file.sync_all().unwrap();
}

fn throughput(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("write_1gib");
    group.sample_size(10).throughput(Throughput::Bytes(SIZE));
    let path = dir.join("out");
    group.bench_function("plain_write", |b| {
        b.iter(|| {
            plain_write(gib(), &path);
            std::fs::remove_file(&path).unwrap();
        })
    });
    for (name, format) in [
        ("elf", WriteFormat::Elf),
        ("kdump_zstd", WriteFormat::Kdump(KdumpCodec::Zstd)),
        ("kdump_snappy", WriteFormat::Kdump(KdumpCodec::Snappy)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                write_dump(&mut gib(), &meta(), &path, format, &mut |_| ControlFlow::Continue(())).unwrap();
                std::fs::remove_file(&path).unwrap();
            })
        });
    }
    group.finish();
}

/// A field of /proc/self/status in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// In the child: one dump of `source` (`generated` or a dump file) as `format` to `out`.
fn child(spec: &str) {
    let mut parts = spec.splitn(3, '|');
    let (source, format, out) = (parts.next().unwrap(), parts.next().unwrap(), PathBuf::from(parts.next().unwrap()));
    let format = WriteFormat::from_name(format).unwrap();
    let mut peak_anon = 0;
    let mut done_chunks = 0u64;
    let mut progress = |_| {
        done_chunks += 1;
        if done_chunks.is_multiple_of(64) {
            peak_anon = peak_anon.max(status_kib("RssAnon:"));
        }
        ControlFlow::Continue(())
    };
    let start = std::time::Instant::now();
    let summary = if source == "generated" {
        write_dump(&mut gib(), &meta(), &out, format, &mut progress).unwrap()
    } else {
        let mut conn = open(source, OpenOptions::default()).unwrap();
        let meta = DumpMeta::from_info(conn.info(), ArchitectureIdent::X86_64);
        write_dump(&mut conn, &meta, &out, format, &mut progress).unwrap()
    };
    let secs = start.elapsed().as_secs_f64();
    let file_size = std::fs::metadata(&out).unwrap().len();
    std::fs::remove_file(&out).unwrap();
    println!(
        "{:.1} GiB in {secs:.2} s ({:.0} MiB/s), file {:.0} MiB; VmHWM {} MiB, peak RssAnon {} MiB",
        summary.bytes_written as f64 / (1u64 << 30) as f64,
        summary.bytes_written as f64 / secs / MIB as f64,
        file_size as f64 / MIB as f64,
        status_kib("VmHWM:") / 1024,
        peak_anon.max(status_kib("RssAnon:")) / 1024,
    );
}

fn peak_memory(dir: &Path) {
    let guest = Fixture::load("cloud-4l-5g").dir.join("dump.elf");
    let guest = guest.to_str().unwrap();
    // A compressed source: the synthetic GiB as a zstd kdump (its random quarter stays
    // incompressible, so the file is about 260 MiB).
    let kdump = dir.join("rss-source.kdump");
    let zstd = WriteFormat::Kdump(KdumpCodec::Zstd);
    write_dump(&mut gib(), &meta(), &kdump, zstd, &mut |_| ControlFlow::Continue(())).unwrap();
    let kdump_label = format!("synthetic 1 GiB as kdump-zstd ({} MiB)", std::fs::metadata(&kdump).unwrap().len() >> 20);
    let kdump = kdump.to_str().unwrap();
    let sources = [("generated", "synthetic 1 GiB"), (kdump, kdump_label.as_str()), (guest, "cloud-4l-5g (5 GiB ELF)")];
    for (source, label) in sources {
        for format in ["elf", "kdump-zstd"] {
            let spec = format!("{source}|{format}|{}", dir.join("rss-out").display());
            let out = std::process::Command::new(std::env::current_exe().unwrap()).env(CHILD, spec).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            print!("peak memory, {label} -> {format}: {}", String::from_utf8_lossy(&out.stdout));
        }
    }
}

/// The same contenders on 256 MiB, interleaved (see `support/interleave.rs`): one pass of
/// each per round, so that the load of other processes falls on all of them alike.
fn interleaved_ratios(dir: &Path) {
    const PASS: u64 = 256 << 20;
    let path = dir.join("interleaved");
    let dump = |format: WriteFormat| {
        move |path: &mut PathBuf| {
            write_dump(&mut Generated { size: PASS }, &meta(), path, format, &mut |_| ControlFlow::Continue(()))
                .unwrap();
            std::fs::remove_file(&*path).unwrap();
        }
    };
    let (mut elf, mut zstd) = (dump(WriteFormat::Elf), dump(WriteFormat::Kdump(KdumpCodec::Zstd)));
    let mut plain = |path: &mut PathBuf| {
        plain_write(Generated { size: PASS }, path);
        std::fs::remove_file(&*path).unwrap();
    };
    let mut contenders: [support::Contender<'_, PathBuf>; 3] =
        [("elf", &mut elf), ("kdump_zstd", &mut zstd), ("plain_write", &mut plain)];
    support::interleaved("write_256mib", &mut contenders, &mut path.clone(), 1);
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let dir = temp_dir("write-bench");
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c, &dir);
    interleaved_ratios(&dir);
    peak_memory(&dir);
    c.final_summary();
    std::fs::remove_dir_all(&dir).unwrap();
}
