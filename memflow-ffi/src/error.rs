//! Error codes, their descriptions, and the thread-local detail of the last failure.
//!
//! Every function that can fail returns `MF_OK` (0) or a negative code. A code encodes where
//! the error came from (`mf_error_origin`, `MF_ORIGIN_*`) and what went wrong
//! (`mf_error_kind`, `MF_KIND_*`); `mf_error_string` gives a static description of it.
//!
//! When a call fails, the library also keeps a message with the detail for the calling
//! thread (`mf_last_error_message`). The detail is gathered in three ways: argument checks at
//! the C boundary format it at the failing site (e.g. "argument `name` is NULL"), the
//! reasons memflow and its plugins give their errors (`Error::with_reason`, e.g. "no OS
//! plugin named `linx` (known: native)") arrive through the core's reason sink, and a log
//! hook collects every warning and error logged on the calling thread during the call. The
//! first two work whatever the log level chosen with `mf_log_init`; the log hook needs this
//! library's logger to own the `log` facade (always the case for C programs). The detail stays bounded however much is logged (see `mf_last_error_message`), and the
//! final cause is always in it.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use memflow_core::error::{Error, ErrorKind, ErrorOrigin};

/// Success.
pub const MF_OK: i32 = 0;
/// A required pointer argument is NULL (origin `MF_ORIGIN_FFI`, kind `MF_KIND_NULL_POINTER`).
pub const MF_ERR_NULL: i32 = -3081;
/// A handle is not a live object of the expected type: garbage, already freed, or a handle of
/// another type (origin `MF_ORIGIN_FFI`, kind `MF_KIND_INVALID_HANDLE`).
pub const MF_ERR_INVALID_HANDLE: i32 = -3095;
/// An argument has an invalid value (origin `MF_ORIGIN_FFI`, kind `MF_KIND_INVALID_ARGUMENT`).
pub const MF_ERR_INVALID_ARGUMENT: i32 = -3080;
/// A string argument is not valid UTF-8 (origin `MF_ORIGIN_FFI`, kind `MF_KIND_ENCODING`).
pub const MF_ERR_ENCODING: i32 = -3093;
/// The library panicked; the panic was caught at the C boundary (origin `MF_ORIGIN_FFI`,
/// kind `MF_KIND_PANIC`). The object involved may be in an inconsistent state: free it.
pub const MF_ERR_PANIC: i32 = -3090;
/// The object does not support the operation, e.g. CPU state of a connector without it
/// (origin `MF_ORIGIN_FFI`, kind `MF_KIND_UNSUPPORTED`).
pub const MF_ERR_UNSUPPORTED: i32 = -3084;
/// A read only partly succeeded: the buffer is filled, unreadable bytes are zero
/// (origin `MF_ORIGIN_MEMORY`, kind `MF_KIND_PARTIAL_READ`). Whether that is an error is the
/// caller's choice.
pub const MF_ERR_PARTIAL_READ: i32 = -261;
/// A write only partly succeeded (origin `MF_ORIGIN_MEMORY`, kind `MF_KIND_PARTIAL_WRITE`).
pub const MF_ERR_PARTIAL_WRITE: i32 = -262;

/// Origin of an error code: any memory view.
pub const MF_ORIGIN_MEMORY: i32 = 1;
/// Origin of an error code: a physical memory backend.
pub const MF_ORIGIN_PHYSICAL_MEMORY: i32 = 2;
/// Origin of an error code: virtual memory access.
pub const MF_ORIGIN_VIRTUAL_MEMORY: i32 = 3;
/// Origin of an error code: address translation.
pub const MF_ORIGIN_TRANSLATION: i32 = 4;
/// Origin of an error code: a connector.
pub const MF_ORIGIN_CONNECTOR: i32 = 5;
/// Origin of an error code: a dump or image file parser.
pub const MF_ORIGIN_FILE_FORMAT: i32 = 6;
/// Origin of an error code: an OS layer.
pub const MF_ORIGIN_OS: i32 = 7;
/// Origin of an error code: a process.
pub const MF_ORIGIN_PROCESS: i32 = 8;
/// Origin of an error code: a plugin library or descriptor.
pub const MF_ORIGIN_PLUGIN: i32 = 9;
/// Origin of an error code: the plugin inventory.
pub const MF_ORIGIN_INVENTORY: i32 = 10;
/// Origin of an error code: plugin argument parsing.
pub const MF_ORIGIN_ARGS: i32 = 11;
/// Origin of an error code: the C API boundary itself.
pub const MF_ORIGIN_FFI: i32 = 12;
/// Origin of an error code: anything else.
pub const MF_ORIGIN_OTHER: i32 = 13;

/// Kind of an error code: not further specified.
pub const MF_KIND_UNKNOWN: i32 = 1;
/// Kind of an error code: something looked up does not exist.
pub const MF_KIND_NOT_FOUND: i32 = 2;
/// Kind of an error code: an address or offset is out of range.
pub const MF_KIND_OUT_OF_BOUNDS: i32 = 3;
/// Kind of an error code: no mapping exists for an address.
pub const MF_KIND_UNMAPPED: i32 = 4;
/// Kind of an error code: only part of a read could be done (the rest is zero).
pub const MF_KIND_PARTIAL_READ: i32 = 5;
/// Kind of an error code: only part of a write could be done.
pub const MF_KIND_PARTIAL_WRITE: i32 = 6;
/// Kind of an error code: the target cannot be written.
pub const MF_KIND_READ_ONLY: i32 = 7;
/// Kind of an error code: an argument is invalid.
pub const MF_KIND_INVALID_ARGUMENT: i32 = 8;
/// Kind of an error code: a required pointer is NULL.
pub const MF_KIND_NULL_POINTER: i32 = 9;
/// Kind of an error code: input data is malformed.
pub const MF_KIND_MALFORMED: i32 = 10;
/// Kind of an error code: input data ends too early.
pub const MF_KIND_TRUNCATED: i32 = 11;
/// Kind of an error code: not supported.
pub const MF_KIND_UNSUPPORTED: i32 = 12;
/// Kind of an error code: an operating system I/O call failed.
pub const MF_KIND_IO: i32 = 13;
/// Kind of an error code: access denied.
pub const MF_KIND_PERMISSION_DENIED: i32 = 14;
/// Kind of an error code: an ABI or version check failed.
pub const MF_KIND_VERSION_MISMATCH: i32 = 15;
/// Kind of an error code: a type layout check failed.
pub const MF_KIND_LAYOUT_MISMATCH: i32 = 16;
/// Kind of an error code: a walk exceeded its bounds.
pub const MF_KIND_LIMIT_EXCEEDED: i32 = 17;
/// Kind of an error code: a panic was caught at a boundary.
pub const MF_KIND_PANIC: i32 = 18;
/// Kind of an error code: out of memory.
pub const MF_KIND_OUT_OF_MEMORY: i32 = 19;
/// Kind of an error code: the target has gone away.
pub const MF_KIND_GONE: i32 = 20;
/// Kind of an error code: data is not valid UTF-8.
pub const MF_KIND_ENCODING: i32 = 21;
/// Kind of an error code: an internal invariant failed.
pub const MF_KIND_INTERNAL: i32 = 22;
/// Kind of an error code: a handle is not a live object of the expected type.
pub const MF_KIND_INVALID_HANDLE: i32 = 23;
/// Kind of an error code: the caller stopped the operation (a progress callback said stop).
pub const MF_KIND_CANCELLED: i32 = 24;

// The C constants are literals (cbindgen cannot evaluate `const fn`s); these checks keep them
// equal to the core's codes at compile time.
macro_rules! check_codes {
    ($($c:ident == $e:expr;)*) => { $(const _: () = assert!($c == $e);)* };
}
check_codes! {
    MF_ERR_NULL == Error::new(ErrorOrigin::Ffi, ErrorKind::NullPointer).code();
    MF_ERR_INVALID_HANDLE == Error::new(ErrorOrigin::Ffi, ErrorKind::InvalidHandle).code();
    MF_ERR_INVALID_ARGUMENT == Error::new(ErrorOrigin::Ffi, ErrorKind::InvalidArgument).code();
    MF_ERR_ENCODING == Error::new(ErrorOrigin::Ffi, ErrorKind::Encoding).code();
    MF_ERR_PANIC == Error::new(ErrorOrigin::Ffi, ErrorKind::Panic).code();
    MF_ERR_UNSUPPORTED == Error::new(ErrorOrigin::Ffi, ErrorKind::Unsupported).code();
    MF_ERR_PARTIAL_READ == Error::new(ErrorOrigin::Memory, ErrorKind::PartialRead).code();
    MF_ERR_PARTIAL_WRITE == Error::new(ErrorOrigin::Memory, ErrorKind::PartialWrite).code();
    MF_ORIGIN_MEMORY == ErrorOrigin::Memory as i32;
    MF_ORIGIN_PHYSICAL_MEMORY == ErrorOrigin::PhysicalMemory as i32;
    MF_ORIGIN_VIRTUAL_MEMORY == ErrorOrigin::VirtualMemory as i32;
    MF_ORIGIN_TRANSLATION == ErrorOrigin::Translation as i32;
    MF_ORIGIN_CONNECTOR == ErrorOrigin::Connector as i32;
    MF_ORIGIN_FILE_FORMAT == ErrorOrigin::FileFormat as i32;
    MF_ORIGIN_OS == ErrorOrigin::Os as i32;
    MF_ORIGIN_PROCESS == ErrorOrigin::Process as i32;
    MF_ORIGIN_PLUGIN == ErrorOrigin::Plugin as i32;
    MF_ORIGIN_INVENTORY == ErrorOrigin::Inventory as i32;
    MF_ORIGIN_ARGS == ErrorOrigin::Args as i32;
    MF_ORIGIN_FFI == ErrorOrigin::Ffi as i32;
    MF_ORIGIN_OTHER == ErrorOrigin::Other as i32;
    MF_KIND_UNKNOWN == ErrorKind::Unknown as i32;
    MF_KIND_NOT_FOUND == ErrorKind::NotFound as i32;
    MF_KIND_OUT_OF_BOUNDS == ErrorKind::OutOfBounds as i32;
    MF_KIND_UNMAPPED == ErrorKind::Unmapped as i32;
    MF_KIND_PARTIAL_READ == ErrorKind::PartialRead as i32;
    MF_KIND_PARTIAL_WRITE == ErrorKind::PartialWrite as i32;
    MF_KIND_READ_ONLY == ErrorKind::ReadOnly as i32;
    MF_KIND_INVALID_ARGUMENT == ErrorKind::InvalidArgument as i32;
    MF_KIND_NULL_POINTER == ErrorKind::NullPointer as i32;
    MF_KIND_MALFORMED == ErrorKind::Malformed as i32;
    MF_KIND_TRUNCATED == ErrorKind::Truncated as i32;
    MF_KIND_UNSUPPORTED == ErrorKind::Unsupported as i32;
    MF_KIND_IO == ErrorKind::Io as i32;
    MF_KIND_PERMISSION_DENIED == ErrorKind::PermissionDenied as i32;
    MF_KIND_VERSION_MISMATCH == ErrorKind::VersionMismatch as i32;
    MF_KIND_LAYOUT_MISMATCH == ErrorKind::LayoutMismatch as i32;
    MF_KIND_LIMIT_EXCEEDED == ErrorKind::LimitExceeded as i32;
    MF_KIND_PANIC == ErrorKind::Panic as i32;
    MF_KIND_OUT_OF_MEMORY == ErrorKind::OutOfMemory as i32;
    MF_KIND_GONE == ErrorKind::Gone as i32;
    MF_KIND_ENCODING == ErrorKind::Encoding as i32;
    MF_KIND_INTERNAL == ErrorKind::Internal as i32;
    MF_KIND_INVALID_HANDLE == ErrorKind::InvalidHandle as i32;
    MF_KIND_CANCELLED == ErrorKind::Cancelled as i32;
}
// Every kind and origin has its constant above.
const _: () = assert!(ErrorKind::ALL.len() == 24 && ErrorOrigin::ALL.len() == 13);

/// Runs of messages at the end of the detail that are always kept: the final cause of a
/// failure and what the layers above it added while giving up.
const RECENT: usize = 4;
/// Distinct kinds of earlier message kept per failure; messages of further kinds are only
/// counted.
const MAX_GROUPS: usize = 8;

/// Messages of one shape (the same text but for its numbers): the first one, and how many
/// more followed.
struct Group {
    shape: String,
    first: String,
    more: usize,
}

impl Group {
    fn render(&self) -> String {
        match self.more {
            0 => self.first.clone(),
            n => format!("{} (and {} more like this)", self.first, thousands(n)),
        }
    }
}

/// The detail gathered during one call, bounded whatever is logged: messages are cut to
/// `MAX_REASON` (512) bytes, repeated ones (e.g. one warning per CPU note of a dump) are summarised
/// as "(and 4,990 more like this)", and the latest `RECENT` runs of messages, which hold the
/// final cause of a failure, are always kept.
struct Detail {
    /// Messages older than `recent`, grouped by shape in order of first appearance.
    groups: Vec<Group>,
    /// Messages of shapes beyond the first `MAX_GROUPS`.
    others: usize,
    /// The latest runs of consecutive messages of one shape, oldest first.
    recent: VecDeque<Group>,
}

impl Detail {
    const fn new() -> Self {
        Detail { groups: Vec::new(), others: 0, recent: VecDeque::new() }
    }

    fn clear(&mut self) {
        self.groups.clear();
        self.others = 0;
        self.recent.clear();
    }

    fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// Adds `text` (cut to `MAX_REASON` (512) bytes) as the latest message.
    fn add(&mut self, text: impl std::fmt::Display) {
        let entry = memflow_core::error::reason::bounded(text);
        let shape = shape(&entry);
        if let Some(run) = self.recent.back_mut().filter(|run| run.shape == shape) {
            run.more += 1;
            return;
        }
        if self.recent.len() == RECENT {
            if let Some(oldest) = self.recent.pop_front() {
                self.fold(oldest);
            }
        }
        self.recent.push_back(Group { shape, first: entry, more: 0 });
    }

    /// Counts a run that is no longer recent into its group.
    fn fold(&mut self, run: Group) {
        if let Some(g) = self.groups.iter_mut().find(|g| g.shape == run.shape) {
            g.more += run.more + 1;
        } else if self.groups.len() < MAX_GROUPS {
            self.groups.push(run);
        } else {
            self.others += run.more + 1;
        }
    }

    /// The messages as one line, the final cause last.
    fn render(&self) -> String {
        let mut parts: Vec<String> = self.groups.iter().map(Group::render).collect();
        if self.others > 0 {
            parts.push(format!("... and {} more messages", thousands(self.others)));
        }
        parts.extend(self.recent.iter().map(Group::render));
        parts.join("; ")
    }
}

/// `message` with every word that starts with a digit (`4096`, `0x1f00`, `3rd`) replaced by
/// `#`: messages that differ only in such numbers have the same shape.
fn shape(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_number = false;
    for c in message.chars() {
        if in_number && c.is_ascii_alphanumeric() {
            continue;
        }
        in_number = c.is_ascii_digit();
        out.push(if in_number { '#' } else { c });
    }
    out
}

/// `n` with thousands separators: 4990 -> "4,990".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The last failure on a thread. The message is built only when asked for, so that failures
/// nobody looks at (e.g. partial reads in a loop) cost no formatting.
struct Last {
    code: i32,
    detail: Detail,
    message: Option<CString>,
}

thread_local! {
    /// Detail gathered during the current call on this thread (site detail and captured logs).
    static DETAIL: RefCell<Detail> = const { RefCell::new(Detail::new()) };
    /// The last failure on this thread.
    static LAST: RefCell<Last> = const { RefCell::new(Last { code: 0, detail: Detail::new(), message: None }) };
}

/// Threads whose detail is not empty. Lets the hottest calls ([`crate::call::guard_hot`])
/// skip their thread's detail when no thread has any (the common case): changed only when a
/// detail gains its first message or is emptied, which happens on errors, never on a plain
/// successful call.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Whether any thread may have detail left from an earlier call.
#[inline]
pub(crate) fn detail_pending() -> bool {
    PENDING.load(Ordering::Relaxed) != 0
}

/// Empties `d`, keeping [`PENDING`] right.
fn clear_detail(d: &mut Detail) {
    if !d.is_empty() {
        d.clear();
        PENDING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Forgets the detail gathered so far on this thread: called when an entry point starts.
#[inline]
pub(crate) fn begin_detail() {
    let _ = DETAIL.try_with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            clear_detail(&mut d);
        }
    });
}

/// Adds `text` to the detail of the current call on this thread, as its latest message.
pub(crate) fn add_detail(text: impl std::fmt::Display) {
    let _ = DETAIL.try_with(|d| {
        if let Ok(mut d) = d.try_borrow_mut() {
            let was_empty = d.is_empty();
            d.add(text);
            if was_empty && !d.is_empty() {
                PENDING.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
}

/// The core's reason sink: a reason given to an error during the current call becomes part
/// of its detail.
pub(crate) fn add_reason(_code: i32, reason: &str) {
    add_detail(reason);
}

/// Records a failure of the current call with the detail gathered so far; returns `code`.
pub(crate) fn record_failure(code: i32) -> i32 {
    let _ = DETAIL.try_with(|d| {
        LAST.try_with(|l| {
            if let (Ok(mut d), Ok(mut l)) = (d.try_borrow_mut(), l.try_borrow_mut()) {
                l.code = code;
                l.detail.clear();
                std::mem::swap(&mut l.detail, &mut *d);
                if !l.detail.is_empty() {
                    PENDING.fetch_sub(1, Ordering::Relaxed);
                }
                l.message = None;
            }
        })
    });
    code
}

/// The message of the last failure: "origin: kind: detail".
fn last_message(l: &mut Last) -> *const c_char {
    if l.message.is_none() {
        let base = Error::from_code(l.code).map(|e| e.description()).unwrap_or_default();
        // Logged warnings often start with the description of the code; say it once.
        let detail = l.detail.render().replace(&format!("{base}: "), "");
        let text = if detail.is_empty() { base } else { format!("{base}: {detail}") };
        l.message = Some(CString::new(text.replace('\0', " ")).unwrap_or_default());
    }
    l.message.as_ref().map_or(c"".as_ptr(), |m| m.as_ptr())
}

/// A static, NUL-terminated description of an error code, `"origin: kind"` (e.g.
/// `"c api: null pointer"`), or `"ok"` for codes >= 0.
///
/// Ownership: the string is static; never free it. Never returns NULL.
#[no_mangle]
pub extern "C" fn mf_error_string(code: i32) -> *const c_char {
    static OK: &[u8] = b"ok\0";
    static FALLBACK: &[u8] = b"error\0";
    std::panic::catch_unwind(|| match Error::from_code(code) {
        None => OK.as_ptr().cast(),
        Some(err) => error_text(err),
    })
    .unwrap_or(FALLBACK.as_ptr().cast())
}

/// The interned description of `err`: at most one string per (origin, kind) pair is ever
/// made, kept for the life of the process.
fn error_text(err: Error) -> *const c_char {
    static TEXTS: OnceLock<Mutex<HashMap<i32, CString>>> = OnceLock::new();
    let mut texts = TEXTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    // A CString's heap buffer never moves, so the pointer stays valid after the lock is gone.
    texts.entry(err.code()).or_insert_with(|| CString::new(err.description()).unwrap_or_default()).as_ptr()
}

/// The message of the last failed call on the calling thread: the description of its code
/// followed by the detail, e.g. `"inventory: not found: no OS plugin named `linx` (known:
/// native)"`. Returns `""` if no call has failed on this thread yet.
///
/// The detail is bounded: each message is cut to 512 bytes, messages that differ only in
/// numbers are summarised (`"CPU note #4096 exceeds ... (and 4,990 more like this)"`), at most
/// 8 kinds of earlier message are shown (`"... and 120 more messages"`), and the last four
/// runs of messages, which hold the cause of the failure, are always kept.
///
/// Ownership: borrowed from thread-local storage of the library; valid until the next failing
/// call on the same thread (successful calls leave it alone). Never free it; copy it to keep it
/// (`mf_last_error_copy` copies it into a buffer of yours). Never returns NULL.
#[no_mangle]
pub extern "C" fn mf_last_error_message() -> *const c_char {
    std::panic::catch_unwind(|| {
        LAST.try_with(|l| match l.try_borrow_mut() {
            Ok(mut l) if l.code < 0 => last_message(&mut l),
            _ => c"".as_ptr(),
        })
        .unwrap_or(c"".as_ptr())
    })
    .unwrap_or(c"".as_ptr())
}

/// Copies the message of `mf_last_error_message` into `buf`: at most `cap` - 1 bytes and a
/// NUL (nothing if `cap` is 0). Returns the whole message's length without the NUL, like
/// `snprintf`: a result >= `cap` means the copy was cut; call again with a larger buffer.
///
/// Ownership: `buf` (at least `cap` writable bytes; may be NULL if `cap` is 0) is caller
/// storage. Like `mf_last_error_message`, this changes no error state.
#[no_mangle]
pub extern "C" fn mf_last_error_copy(buf: *mut c_char, cap: usize) -> usize {
    // SAFETY: never NULL; a NUL-terminated string valid until the next failing call, and this
    // call cannot fail.
    let message = unsafe { CStr::from_ptr(mf_last_error_message()) }.to_bytes();
    if cap > 0 && !buf.is_null() {
        let n = message.len().min(cap - 1);
        // SAFETY: the caller promises `cap` writable bytes at `buf`; `n` < `cap`.
        unsafe {
            std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    message.len()
}

/// The code of the last failed call on the calling thread, 0 if none has failed yet.
/// Like `mf_last_error_message`, successful calls leave it alone.
#[no_mangle]
pub extern "C" fn mf_last_error_code() -> i32 {
    LAST.try_with(|l| l.try_borrow().map(|l| l.code).unwrap_or(0)).unwrap_or(0)
}

/// The kind part of an error code (one of `MF_KIND_*`), 0 for codes >= 0.
#[no_mangle]
pub extern "C" fn mf_error_kind(code: i32) -> i32 {
    Error::from_code(code).map_or(0, |e| e.kind as i32)
}

/// The origin part of an error code (one of `MF_ORIGIN_*`), 0 for codes >= 0.
#[no_mangle]
pub extern "C" fn mf_error_origin(code: i32) -> i32 {
    Error::from_code(code).map_or(0, |e| e.origin as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memflow_core::error::reason::MAX_REASON;

    fn message_of(code: i32) -> String {
        assert_eq!(record_failure(code), code);
        // SAFETY: a NUL-terminated string of this thread's storage.
        unsafe { std::ffi::CStr::from_ptr(mf_last_error_message()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn repeated_warnings_are_summarised_and_the_final_cause_is_kept() {
        begin_detail();
        for cpu in 0..5000 {
            add_detail(format_args!("CPU note #{cpu} exceeds the 4096 CPU states kept; skipped"));
        }
        add_detail("no kernel image found");
        let m = message_of(MF_ERR_INVALID_ARGUMENT);
        assert_eq!(
            m,
            "c api: invalid argument: CPU note #0 exceeds the 4096 CPU states kept; skipped (and 4,999 more like \
             this); no kernel image found"
        );
    }

    #[test]
    fn many_kinds_of_message_and_huge_ones_stay_bounded() {
        begin_detail();
        let huge = "x".repeat(1 << 20);
        add_detail(&huge);
        for i in 0..100_000u32 {
            // Shapes that differ in letters, not numbers.
            let word: String = i.to_string().bytes().map(|b| char::from(b - b'0' + b'a')).collect();
            add_detail(format_args!("warning {word}"));
        }
        add_detail(format_args!("the cause ({})", "é".repeat(1000)));
        add_detail("the layer above gave up");
        let m = message_of(MF_ERR_NULL);
        assert!(m.len() < (MAX_GROUPS + RECENT + 1) * (MAX_REASON + 64), "{} bytes", m.len());
        assert!(m.starts_with(&format!("c api: null pointer: {}...; warning a; ", "x".repeat(MAX_REASON))), "{m}");
        // 100,003 messages: 8 groups, 4 recent runs, the rest counted.
        assert!(m.contains("; ... and 99,991 more messages; warning jjjji; warning jjjjj; the cause (éé"), "{m}");
        assert!(m.ends_with("...; the layer above gave up"), "the final cause is kept: {m}");
    }

    #[test]
    fn each_call_starts_afresh_and_numbers_are_grouped() {
        begin_detail();
        add_detail("old");
        begin_detail();
        add_detail("read at 0x1000 failed");
        add_detail("read at 0xfff000 failed");
        add_detail("gone");
        assert_eq!(message_of(MF_ERR_NULL), "c api: null pointer: read at 0x1000 failed (and 1 more like this); gone");
        assert_eq!(
            (thousands(0), thousands(999), thousands(1000), thousands(1234567)),
            ("0".into(), "999".into(), "1,000".into(), "1,234,567".into())
        );
    }
}
