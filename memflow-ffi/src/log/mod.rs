//! Logging: where memflow's (and its plugins') log records go.
//!
//! The library installs its own logger into the `log` facade the first time any `mf_`
//! function is called. Until `mf_log_init` is called nothing is printed; records of level
//! warning and error are still collected into the detail of `mf_last_error_message`.
//! Records go to stderr, or to a C callback set with `mf_log_set_callback`.

pub mod api;

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, Once};

/// A log level: one of the `MF_LOG_*` constants.
pub type MfLogLevel = u32;
/// Log level: nothing.
pub const MF_LOG_OFF: MfLogLevel = 0;
/// Log level: errors.
pub const MF_LOG_ERROR: MfLogLevel = 1;
/// Log level: warnings and above.
pub const MF_LOG_WARN: MfLogLevel = 2;
/// Log level: information and above.
pub const MF_LOG_INFO: MfLogLevel = 3;
/// Log level: debug output and above.
pub const MF_LOG_DEBUG: MfLogLevel = 4;
/// Log level: everything.
pub const MF_LOG_TRACE: MfLogLevel = 5;

/// One log record, as passed to an `MfLogCallback`.
///
/// Ownership: every string is borrowed and valid only during the callback; copy what you need.
#[repr(C)]
pub struct MfLogRecord {
    /// The record's level, `MF_LOG_ERROR` to `MF_LOG_TRACE`.
    pub level: MfLogLevel,
    /// The Rust module (or plugin module) that logged it; never NULL.
    pub target: *const c_char,
    /// The message; never NULL.
    pub message: *const c_char,
    /// The source file, or NULL if not known.
    pub file: *const c_char,
    /// The source line, 0 if not known.
    pub line: u32,
}

/// Receives log records (see `mf_log_set_callback`). `record` and its strings are valid only
/// during the call. Called from whatever thread logs; must not unwind or `longjmp` out.
pub type MfLogCallback = Option<unsafe extern "C" fn(user: *mut c_void, record: *const MfLogRecord)>;

/// The level records are printed or passed on at (the user's choice).
pub(super) static OUTPUT_LEVEL: AtomicU32 = AtomicU32::new(MF_LOG_OFF);
/// Whether this library's logger owns the `log` facade.
pub(super) static OWNED: AtomicBool = AtomicBool::new(false);
/// The callback and its user pointer (as integers, so the static is `Send`); `None`: stderr.
pub(super) static SINK: Mutex<Option<(usize, usize)>> = Mutex::new(None);

thread_local! {
    /// Set while a record is being passed to the C callback on this thread (no recursion).
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

struct FfiLogger;

static LOGGER: FfiLogger = FfiLogger;

fn level_number(level: ::log::Level) -> u32 {
    level as usize as u32
}

impl ::log::Log for FfiLogger {
    fn enabled(&self, metadata: &::log::Metadata) -> bool {
        let n = level_number(metadata.level());
        n <= MF_LOG_WARN || n <= OUTPUT_LEVEL.load(Ordering::Relaxed)
    }

    fn log(&self, record: &::log::Record) {
        let n = level_number(record.level());
        if n <= MF_LOG_WARN {
            crate::error::add_detail(record.args());
        }
        if n > OUTPUT_LEVEL.load(Ordering::Relaxed) {
            return;
        }
        let sink = *SINK.lock().unwrap_or_else(|p| p.into_inner());
        match sink {
            None => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "[memflow {} {}] {}",
                    record.level(),
                    record.target(),
                    record.args()
                );
            }
            Some((cb, user)) => {
                if IN_CALLBACK.with(|c| c.replace(true)) {
                    return;
                }
                let text = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
                let target = text(record.target());
                let message = text(&record.args().to_string());
                let file = record.file().map(text);
                let rec = MfLogRecord {
                    level: n,
                    target: target.as_ptr(),
                    message: message.as_ptr(),
                    file: file.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
                    line: record.line().unwrap_or(0),
                };
                // SAFETY: `cb` was stored from a non-NULL `MfLogCallback`.
                let cb: unsafe extern "C" fn(*mut c_void, *const MfLogRecord) = unsafe { std::mem::transmute(cb) };
                // SAFETY: the C callback gets pointers valid for the call, as documented.
                unsafe { cb(user as *mut c_void, &rec) };
                IN_CALLBACK.with(|c| c.set(false));
            }
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

pub(super) fn filter_of(level: MfLogLevel) -> ::log::LevelFilter {
    match level {
        0 => ::log::LevelFilter::Off,
        1 => ::log::LevelFilter::Error,
        2 => ::log::LevelFilter::Warn,
        3 => ::log::LevelFilter::Info,
        4 => ::log::LevelFilter::Debug,
        _ => ::log::LevelFilter::Trace,
    }
}

/// Keeps warnings flowing to the logger (for error detail) whatever the output level.
fn apply_max_level() {
    ::log::set_max_level(filter_of(OUTPUT_LEVEL.load(Ordering::Relaxed).max(MF_LOG_WARN)));
}

/// Installs the library's logger once, if no other logger owns the `log` facade, and the
/// sink that collects the reasons of errors into `mf_last_error_message`.
pub(crate) fn ensure_logger() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        memflow_core::error::reason::set_sink(crate::error::add_reason);
        if ::log::set_logger(&LOGGER).is_ok() {
            OWNED.store(true, Ordering::Relaxed);
            apply_max_level();
        }
    });
}

pub(super) fn set_level(level: MfLogLevel) {
    OUTPUT_LEVEL.store(level, Ordering::Relaxed);
    if OWNED.load(Ordering::Relaxed) {
        apply_max_level();
    }
}
