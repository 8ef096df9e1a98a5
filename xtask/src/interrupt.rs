//! Stopping a task cleanly on SIGINT, SIGTERM or SIGHUP: while a [`Catch`] exists, these
//! signals only set a flag; the task's waiting loops see it through [`check`] and return an
//! error, so the usual clean-up (stopping QEMU, removing temporary files) runs. Outside a
//! `Catch` the signals keep their default action; a QEMU then dies with its owner through
//! its parent-death signal.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches the signals until dropped.
pub struct Catch(());

impl Catch {
    /// Starts catching the signals.
    pub fn new() -> Catch {
        for signal in SIGNALS {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            unsafe { libc::signal(signal, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t) };
        }
        Catch(())
    }
}

impl Default for Catch {
    fn default() -> Self {
        Catch::new()
    }
}

impl Drop for Catch {
    fn drop(&mut self) {
        for signal in SIGNALS {
            // SAFETY: restores the default action.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
}

/// An error if one of the signals arrived while caught.
pub fn check() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted by a signal".into())
    } else {
        Ok(())
    }
}
