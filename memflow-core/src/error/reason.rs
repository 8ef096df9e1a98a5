//! The reasons given to errors: recorded per thread, bounded, and passed on to whoever
//! reports errors (the C API's `mf_last_error_message`, a plugin's host).
//!
//! An [`Error`] is a `Copy` code so that it crosses every ABI unchanged; its reason travels
//! beside it. [`Error::with_reason`] records the reason on the calling thread, where
//! [`Error::reason`] and `Display` find it again, and hands it to the sink installed with
//! [`set_sink`], if any. Each thread keeps the reasons of its last [`KEPT`] errors, each cut
//! to [`MAX_REASON`] bytes, so that a reason built from hostile input (a 20 KB chain string,
//! a corrupt name) never grows without bound.

use core::fmt::{self, Write as _};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::OnceLock;

use super::Error;

/// The longest reason kept, in bytes; a longer one is cut at a character boundary and ends
/// in `...`.
pub const MAX_REASON: usize = 512;
/// How many recent reasons each thread keeps.
pub const KEPT: usize = 16;

/// Receives every reason recorded in this module, with the code of its error (see
/// [`set_sink`]). Called on the thread that recorded it; must not panic.
pub type ReasonSink = fn(code: i32, reason: &str);

static SINK: OnceLock<ReasonSink> = OnceLock::new();

thread_local! {
    /// The latest reasons on this thread, oldest first: (error code, reason).
    static RECENT: RefCell<VecDeque<(i32, String)>> = const { RefCell::new(VecDeque::new()) };
}

/// Installs the sink that receives every reason from now on; only the first call has an
/// effect (returns `false` for later ones). The C API installs one to build
/// `mf_last_error_message`; a plugin installs one that forwards to its host.
pub fn set_sink(sink: ReasonSink) -> bool {
    SINK.set(sink).is_ok()
}

/// `reason` formatted and cut to [`MAX_REASON`] bytes (ending in `...` when cut).
pub fn bounded(reason: impl fmt::Display) -> String {
    let mut out = String::new();
    if write!(Bounded { out: &mut out, room: MAX_REASON }, "{reason}").is_err() {
        out.push_str("...");
    }
    out
}

/// Records `reason` for the error with `code` on this thread and passes it to the sink.
pub(crate) fn record(code: i32, reason: String) {
    if let Some(sink) = SINK.get() {
        sink(code, &reason);
    }
    let _ = RECENT.try_with(|recent| {
        if let Ok(mut recent) = recent.try_borrow_mut() {
            if recent.len() == KEPT {
                recent.pop_front();
            }
            recent.push_back((code, reason));
        }
    });
}

/// The latest reason recorded on this thread, if it belongs to an error with `code`. (A layer
/// that adds context to an error as it goes up records a newer reason for the same code;
/// the C API's message keeps them all.)
pub(crate) fn latest(code: i32) -> Option<String> {
    RECENT
        .try_with(|recent| {
            let recent = recent.try_borrow().ok()?;
            recent.back().filter(|(c, _)| *c == code).map(|(_, r)| r.clone())
        })
        .ok()
        .flatten()
}

/// Forgets the reasons recorded on this thread, so that a later error with the same code
/// does not show them.
pub fn clear() {
    let _ = RECENT.try_with(|recent| {
        if let Ok(mut recent) = recent.try_borrow_mut() {
            recent.clear();
        }
    });
}

/// A `fmt::Write` that keeps at most `room` more bytes (cut at a character boundary) and
/// then fails, which stops the formatting.
struct Bounded<'a> {
    out: &'a mut String,
    room: usize,
}

impl fmt::Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.room {
            self.out.push_str(s);
            self.room -= s.len();
            return Ok(());
        }
        let mut cut = self.room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.out.push_str(&s[..cut]);
        self.room = 0;
        Err(fmt::Error)
    }
}

impl Error {
    /// Records why this error happened and returns it: the one way to give an error its
    /// context (what was looked for, which file and offset, which limit).
    ///
    /// The reason (cut to [`MAX_REASON`] bytes) is kept on the calling thread, where
    /// [`Error::reason`] and `Display` find it, goes to the installed sink (the C API's
    /// `mf_last_error_message`, a plugin's host) and is logged at debug level. Errors that
    /// are expected in normal operation (a probe that finds nothing) are returned without
    /// one.
    pub fn with_reason(self, reason: impl fmt::Display) -> Self {
        let reason = bounded(reason);
        log::debug!("{}: {reason}", self.description());
        record(self.code(), reason);
        self
    }

    /// The reason the calling thread recorded last, if it was for an error with this code
    /// (see [`Error::with_reason`]); `None` if there is none or a later error has been given
    /// a reason since.
    pub fn reason(&self) -> Option<String> {
        latest(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, ErrorOrigin};

    #[test]
    fn display_names_the_reason_of_the_latest_error() {
        clear();
        let e = Error::new(ErrorOrigin::Os, ErrorKind::NotFound);
        assert_eq!(e.to_string(), "os layer: not found");
        let e = e.with_reason("no process with pid 7");
        assert_eq!(e.to_string(), "os layer: not found: no process with pid 7");
        // A layer above adds its context to the same error: the latest reason is shown.
        let e = e.with_reason("cannot open process 7");
        assert_eq!(e.reason().as_deref(), Some("cannot open process 7"));
        // A later, different error hides them.
        let other = Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed).with_reason("bad header");
        assert_eq!(e.reason(), None);
        assert_eq!(other.to_string(), "plugin: malformed data: bad header");
        // Other threads see nothing.
        std::thread::spawn(move || assert_eq!(other.reason(), None)).join().unwrap();
    }

    #[test]
    fn hostile_reasons_are_bounded() {
        clear();
        let chain = "x".repeat(20_000) + "é";
        let e = Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).with_reason(&chain);
        let reason = e.reason().unwrap();
        assert_eq!(reason.len(), MAX_REASON + 3);
        assert!(reason.ends_with("..."));
        for i in 0..10 * KEPT {
            let _ = Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).with_reason(i);
        }
        RECENT.with(|r| assert_eq!(r.borrow().len(), KEPT));
        // Multi-byte characters are never split.
        let wide = "é".repeat(MAX_REASON);
        assert!(bounded(&wide).trim_end_matches("...").chars().all(|c| c == 'é'));
    }
}
