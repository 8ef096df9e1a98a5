//! Pattern scan of a process's whole mapped memory (this process, through the native chain)
//! against `memchr::memmem` over the same bytes already in one buffer: the limit of a scan
//! that has to read the bytes first; and the reading alone, to show where the difference
//! goes. With the `yara` feature, the same for YARA rules: `scan yara`'s block scan of the
//! process against yara-x scanning the buffer. Same run, same bytes (BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is a failed run

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memflow_cli::cli::Region;
use memflow_cli::memory::read_readable;
use memflow_cli::scan::{scan_ranges, Pattern, Scope, READERS};
use memflow_cli::target::Target;

/// Bytes of this process's own heap that the scan covers besides its code and libraries.
const BALLAST: usize = 128 << 20;

fn bench(c: &mut Criterion) {
    // Pseudo-random ballast, so that the process's memory is mostly data a scan must look at.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let ballast: Vec<u8> = (0..BALLAST)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    // Kept observable: an allocation nothing reads may be optimised away.
    let ballast = std::hint::black_box(ballast);
    // A needle that is not in memory (built at run time so it is not in the binary either).
    let needle: Vec<u8> = b"\x01memflow-bench-absent\x02".iter().map(|b| b ^ 0x5a).collect();
    let pattern = Pattern::literal(&needle).unwrap();
    let pid = std::process::id().to_string();
    let mut target = Target::open("native").unwrap();
    let region = Region { pid: Some(pid), kernel: false, phys: false, all_processes: false };
    let scope = Scope::of(&mut target, &region).unwrap();
    // The same bytes, read once into one buffer (unreadable pages as zeros).
    let mut copy = vec![0u8; scope.bytes() as usize];
    target
        .with_space(&scope.space, |mem| {
            let mut at = 0;
            for &(base, size) in &scope.ranges {
                read_readable(mem, base, &mut copy[at..at + size as usize])?;
                at += size as usize;
            }
            Ok(())
        })
        .unwrap();
    eprintln!("scanning {} ranges, {} MiB", scope.ranges.len(), scope.bytes() >> 20);

    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Bytes(scope.bytes()));
    group.sample_size(10);
    // The scan as the tool runs it (READERS threads), and with one reader thread.
    for readers in [READERS, 1] {
        group.bench_function(format!("memflow scan_ranges (process memory, {readers} readers)"), |b| {
            b.iter(|| {
                let mut hits = 0;
                target
                    .with_spaces(&scope.space, readers, |mems| {
                        scan_ranges(mems, &scope.ranges, &pattern, 1, &mut |_| true, |_| {
                            hits += 1;
                            true
                        })
                    })
                    .unwrap();
                hits
            })
        });
    }
    // What the scan pays before it searches: getting the bytes out of the process, in the
    // scanner's chunks, into one reused buffer.
    let mut chunk = vec![0u8; memflow_cli::scan::CHUNK];
    group.bench_function("read only (process memory, scan-sized chunks)", |b| {
        b.iter(|| {
            target
                .with_space(&scope.space, |mem| {
                    for &(base, size) in &scope.ranges {
                        let mut offset = 0;
                        while offset < size {
                            let n = (size - offset).min(chunk.len() as u64) as usize;
                            read_readable(mem, base + offset, &mut chunk[..n])?;
                            offset += n as u64;
                        }
                    }
                    Ok(())
                })
                .unwrap()
        })
    });
    let finder = memchr::memmem::Finder::new(&needle);
    group.bench_function("memchr::memmem (bytes in a buffer)", |b| b.iter(|| finder.find_iter(&copy).count()));
    #[cfg(feature = "yara")]
    yara(&mut group, &mut target, &scope, &copy);
    group.finish();
    drop(ballast);
}

/// Rules none of whose patterns is in memory: a text, a hex pattern with a wildcard and a jump,
/// and a regular expression, as a small real rule set has.
#[cfg(feature = "yara")]
fn yara(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    target: &mut Target,
    scope: &Scope,
    copy: &[u8],
) {
    let mut compiler = yara_x::Compiler::new();
    compiler
        .add_source(
            r#"rule absent {
                strings:
                    $text = "memflow-bench-absent-text"
                    $hex = { 4D 46 ?? 42 [2-4] 45 4E 43 48 }
                    $re = /mfbench[0-9]{6}zz/
                condition: any of them
            }"#,
        )
        .unwrap();
    let rules = compiler.build();
    group.bench_function("memflow scan yara (process memory)", |b| {
        b.iter(|| {
            let mut hits = Vec::new();
            target
                .with_spaces(&scope.space, READERS, |mems| {
                    memflow_cli::yara::scan_scope(mems, scope, &rules, 1000, &mut |_| true, &mut hits)
                })
                .unwrap();
            hits.len()
        })
    });
    let mut scanner = yara_x::Scanner::new(&rules);
    group.bench_function("yara-x Scanner::scan (bytes in a buffer)", |b| {
        b.iter(|| scanner.scan(copy).unwrap().matching_rules().len())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
