//! Lists the processes of a Linux guest like `ps`, from any chain that ends in an OS layer,
//! and reports how long opening the chain and listing took (on stderr). Warnings go to
//! stderr; set `MEMFLOW_LOG=info` (or `debug`) for more.
//!
//! ```text
//! cargo run --release -p memflow-core --example linux_ps -- "coredump:target/fixtures/cloud-4l/dump.elf -> linux"
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // example code: a panic with its message is the clearest way out

use std::time::Instant;

use memflow_core::os::Os;
use memflow_core::plugins::Inventory;

/// Prints log records to stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.level() <= log::max_level()
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("[{}] {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

fn main() {
    let level = std::env::var("MEMFLOW_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(log::LevelFilter::Warn);
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(level);
    }
    let Some(chain) = std::env::args().nth(1) else {
        eprintln!("usage: linux_ps CHAIN   (e.g. \"coredump:guest.elf -> linux\")");
        std::process::exit(2);
    };
    let start = Instant::now();
    let mut os = match Inventory::builtin().create_os_chain(&chain) {
        Ok(os) => os,
        Err(e) => {
            eprintln!("cannot open `{chain}`: {e}");
            std::process::exit(1);
        }
    };
    let opened = start.elapsed();
    let processes = match os.process_info_list() {
        Ok(list) => list,
        Err(e) => {
            eprintln!("cannot list processes: {e}");
            std::process::exit(1);
        }
    };
    let listed = start.elapsed();
    println!("{:>6} {:>6} {:<7} {:<16} {:<24} COMMAND", "PID", "PPID", "STATE", "NAME", "PATH");
    for p in &processes {
        let state = format!("{:?}", p.state);
        println!("{:>6} {:>6} {:<7} {:<16} {:<24} {}", p.pid, p.ppid, state, &*p.name, &*p.path, &*p.command_line);
    }
    let info = os.info();
    eprintln!(
        "kernel at {} ({:#x} bytes, {:?}); {} processes; open {:.1} ms, list {:.1} ms, total {:.1} ms",
        info.base,
        info.size,
        info.arch,
        processes.len(),
        opened.as_secs_f64() * 1e3,
        (listed - opened).as_secs_f64() * 1e3,
        listed.as_secs_f64() * 1e3
    );
}
