//! Measures physical reads from a running QEMU guest: 4 KiB and 1 MiB reads per second
//! through any chain that ends in a connector (normally `qemu`), beside a plain `memcpy` of
//! the same sizes in this process.
//!
//! ```text
//! cargo xtask guest bench &         # a guest named memflow-test-bench
//! cargo run --release -p memflow-core --example qemu_read -- "qemu:memflow-test-bench" [SECONDS]
//! ```
//!
//! Reads walk the guest's first RAM range block by block (wrapping around), so they touch
//! the guest RAM, not one cached block.
#![allow(clippy::unwrap_used, clippy::expect_used)] // example code: a panic with its message is the clearest way out

use std::time::{Duration, Instant};

use memflow_core::mem::PhysicalMemory;
use memflow_core::plugins::Inventory;
use memflow_core::types::{umem, PhysicalAddress};

/// Runs `read(offset)` over consecutive `block`-sized offsets below `limit` for `time`;
/// returns reads per second.
fn rate(block: usize, limit: umem, time: Duration, mut read: impl FnMut(umem)) -> f64 {
    let start = Instant::now();
    let mut count = 0u64;
    let mut offset: umem = 0;
    while start.elapsed() < time {
        read(offset);
        count += 1;
        offset += block as umem;
        if offset + block as umem > limit {
            offset = 0;
        }
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(chain) = args.next() else {
        eprintln!("usage: qemu_read CHAIN [SECONDS]   (e.g. \"qemu:memflow-test-bench\")");
        std::process::exit(2);
    };
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let mut conn = match Inventory::builtin().create_connector_chain(&chain) {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("cannot open `{chain}`: {e}");
            std::process::exit(1);
        }
    };
    let limit = conn.metadata().real_size.min(64 << 20);
    let time = Duration::from_secs_f64(seconds);
    println!("{chain}: reading the first {} MiB of guest RAM, {seconds} s per size", limit >> 20);
    for block in [4usize << 10, 1 << 20] {
        let mut buf = vec![0u8; block];
        let mut failed = 0u64;
        let per_sec = rate(block, limit, time, |offset| {
            if conn.phys_read_raw_into(PhysicalAddress::plain(offset.into()), &mut buf).is_err() {
                failed += 1;
            }
        });
        let source = vec![1u8; limit as usize];
        let memcpy = rate(block, limit, time, |offset| {
            buf.copy_from_slice(&source[offset as usize..offset as usize + block]);
            std::hint::black_box(&buf);
        });
        let mib = |reads: f64| reads * block as f64 / (1 << 20) as f64;
        println!(
            "{:>5} KiB reads: {per_sec:>10.0}/s {:>8.0} MiB/s ({failed} partial) | memcpy {memcpy:>10.0}/s {:>8.0} MiB/s",
            block >> 10,
            mib(per_sec),
            mib(memcpy)
        );
    }
}
