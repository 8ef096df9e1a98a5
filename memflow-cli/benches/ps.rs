//! `memflow ps` on a dump without the printing: the linux layer's process list of the
//! `cloud-4l` fixture through the chain the tool opens. The Python timing script
//! (`memflow-py/bench/bench.py`) runs this beside `Os.processes()` on the same dump.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is a failed run

use criterion::{criterion_group, criterion_main, Criterion};
use memflow_core::os::Os;
use memflow_core::plugins::Inventory;

fn process_list(c: &mut Criterion) {
    let dump = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures/cloud-4l/dump.elf");
    assert!(dump.is_file(), "{} is missing: run `cargo xtask fixtures`", dump.display());
    let mut os = Inventory::scan().create_os_chain(&format!("coredump:{} -> linux", dump.display())).unwrap();
    let count = os.process_info_list().unwrap().len();
    assert!(count > 10);
    c.bench_function("process_info_list (cloud-4l)", |b| b.iter(|| os.process_info_list().unwrap()));
}

criterion_group!(benches, process_list);
criterion_main!(benches);
