//! Log lines (ours and the plugins', which reach the host's logger) on standard error, at the
//! level `-v` and `-q` choose.

use log::{LevelFilter, Log, Metadata, Record};

/// Prints each record as one line on standard error.
struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            eprintln!("[{}] {}: {}", record.level(), record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger: warnings by default, each `-v` one level more, each `-q` one less.
pub fn init(verbose: u8, quiet: u8) {
    let levels = [
        LevelFilter::Off,
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ];
    let index = (2 + verbose as i32 - quiet as i32).clamp(0, levels.len() as i32 - 1) as usize;
    if log::set_logger(&StderrLogger).is_ok() {
        log::set_max_level(levels[index]);
    }
}
