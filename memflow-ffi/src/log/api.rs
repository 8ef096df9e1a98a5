//! The C entry points that set the log level and the log sink.

use std::ffi::c_void;
use std::sync::atomic::Ordering;

use memflow_core::error::ErrorKind;

use super::{filter_of, set_level, MfLogCallback, MfLogLevel, MF_LOG_TRACE, OUTPUT_LEVEL, OWNED, SINK};
use crate::call::{ffi_err, guard};

/// Refuses a level above `MF_LOG_TRACE`, naming it.
fn check_level(level: MfLogLevel) -> Result<(), memflow_core::error::Error> {
    if level > MF_LOG_TRACE {
        return Err(ffi_err(
            ErrorKind::InvalidArgument,
            format_args!("log level {level} is not one of MF_LOG_OFF..MF_LOG_TRACE"),
        ));
    }
    Ok(())
}

/// Turns log output on at `level` (`MF_LOG_OFF` .. `MF_LOG_TRACE`), to stderr unless a
/// callback was set. Safe to call any number of times, from any thread: later calls only change
/// the level. Plugins loaded before or after the call log through it too.
///
/// Returns 0; `MF_ERR_INVALID_ARGUMENT` for an unknown level; `MF_ERR_UNSUPPORTED` if another
/// logger already owns the process's Rust `log` facade (only possible when this library is
/// linked into a Rust program that installed its own logger), in which case only the level is
/// applied.
#[no_mangle]
pub extern "C" fn mf_log_init(level: MfLogLevel) -> i32 {
    guard(|| {
        check_level(level)?;
        set_level(level);
        if !OWNED.load(Ordering::Relaxed) {
            ::log::set_max_level(filter_of(level));
            return Err(ffi_err(ErrorKind::Unsupported, "another logger owns the Rust `log` facade of this process"));
        }
        Ok(())
    })
}

/// Changes the output level (`MF_LOG_OFF` .. `MF_LOG_TRACE`). Same as `mf_log_init`.
#[no_mangle]
pub extern "C" fn mf_log_set_level(level: MfLogLevel) -> i32 {
    mf_log_init(level)
}

/// The current output level.
#[no_mangle]
pub extern "C" fn mf_log_level() -> MfLogLevel {
    OUTPUT_LEVEL.load(Ordering::Relaxed)
}

/// Sends log records at or above the output level to `callback` instead of stderr, with
/// `user` passed through unchanged; `callback` NULL restores stderr. Does not change the
/// level (call `mf_log_init` for that).
///
/// The callback runs on whatever thread logs, possibly several at once, and receives
/// borrowed strings valid only during the call. Records logged from inside the callback
/// itself are dropped. After this function returns, a record that another thread is
/// currently delivering may still reach the previous callback: keep the old `user` alive
/// until such threads are done.
///
/// Ownership: `user` stays owned by the caller.
#[no_mangle]
pub extern "C" fn mf_log_set_callback(callback: MfLogCallback, user: *mut c_void) -> i32 {
    guard(|| {
        let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
        *sink = callback.map(|cb| (cb as usize, user as usize));
        Ok(())
    })
}
