//! What the two C plugin interfaces share: connectors ([`super::c_plugin`]) and OS layers
//! ([`super::c_os`]).
//!
//! Every table of function pointers that crosses the C boundary starts with an interface
//! version and its own size as the other side saw it (`version`, `struct_size`). Entries are
//! only ever appended, so the host reads a table by copying `struct_size` bytes of it (at most
//! its own size) over a zeroed table ([`load_table`]): an entry beyond the end of an older
//! table reads as NULL, and a NULL optional entry makes the call fail with `Unsupported`
//! ([`unsupported`]). A table must at least reach the end of its required entries
//! ([`CTable::MIN_SIZE`]). The version changes only for incompatible changes; the host speaks
//! exactly [`C_PLUGIN_VERSION`].
//!
//! A call into a plugin returns 0 or a negative memflow error code; the reason the plugin gave
//! through [`CHost::reason`] during the call travels with the error ([`check_code`]). Nothing
//! unwinds across this boundary: the host's functions that C calls catch panics.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::descriptor::PluginKind;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::{report, MemBatch, SplitBuf};
use crate::types::{umem, Address};

/// Version of the C plugin interfaces (`MfCConnectorPlugin`, `MfCOsPlugin` and the tables
/// they use). Version 2 added the OS layer interface, the version and size of the host table,
/// its `reason` entry, and the connector's batch and CPU state entries.
pub const C_PLUGIN_VERSION: u32 = 2;

/// Version of the host table ([`CHost`]) and of the connector the host hands an OS layer
/// (`MfCConnectorInput`); their `struct_size` says which entries a host has.
pub const C_HOST_VERSION: u32 = 1;

/// What the host offers a C plugin. The table is static: a plugin may keep the pointer it got
/// in `create` and call these functions at any time, from any thread.
#[repr(C)]
pub struct CHost {
    /// `MF_C_HOST_VERSION`.
    pub version: u32,
    /// `sizeof(MfCHost)` of the host: entries added later are there only if it covers them.
    pub struct_size: u32,
    /// Logs `message` (NUL-terminated UTF-8, borrowed for the call) at `level`: 1 error,
    /// 2 warning, 3 info, 4 debug, 5 trace.
    pub log: extern "C" fn(level: u32, message: *const c_char),
    /// Gives the error the current call into the plugin is about to return its reason
    /// (`message`, NUL-terminated UTF-8, copied): callers see it with the error code
    /// (`mf_last_error_message`, Rust's `Error` display). Only the last reason of a call counts.
    pub reason: extern "C" fn(message: *const c_char),
}

/// The longest text (log line, reason) taken from a plugin; longer text is cut.
pub const MAX_PLUGIN_TEXT: usize = 4096;

thread_local! {
    /// The reason a plugin gave during the call running on this thread.
    static REASON: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The text of a NUL-terminated string from a plugin, at most [`MAX_PLUGIN_TEXT`] bytes.
///
/// # Safety
/// `text` is NULL or points to a NUL-terminated string, or to at least `MAX_PLUGIN_TEXT`
/// readable bytes.
unsafe fn plugin_text(text: *const c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    let len = libc::strnlen(text, MAX_PLUGIN_TEXT);
    let bytes = core::slice::from_raw_parts(text.cast::<u8>(), len);
    Some(String::from_utf8_lossy(bytes).into_owned())
}

extern "C" fn host_log(level: u32, message: *const c_char) {
    let _ = catch_unwind(|| {
        // SAFETY: the plugin passes a NUL-terminated string valid for the call.
        let Some(text) = (unsafe { plugin_text(message) }) else { return };
        let level = match level {
            1 => log::Level::Error,
            2 => log::Level::Warn,
            3 => log::Level::Info,
            4 => log::Level::Debug,
            _ => log::Level::Trace,
        };
        log::log!(target: "c-plugin", level, "{text}");
    });
}

extern "C" fn host_reason(message: *const c_char) {
    let _ = catch_unwind(|| {
        // SAFETY: the plugin passes a NUL-terminated string valid for the call.
        let text = unsafe { plugin_text(message) };
        REASON.with(|r| *r.borrow_mut() = text);
    });
}

/// The host table handed to every C plugin.
pub static HOST: CHost = CHost {
    version: C_HOST_VERSION,
    struct_size: core::mem::size_of::<CHost>() as u32,
    log: host_log,
    reason: host_reason,
};

/// Runs `call` (one call into a plugin, returning its code) and turns the code into a result:
/// the error carries the reason the plugin gave during the call, and `what` (the plugin and
/// the entry) where it gave none.
pub fn check_code(what: impl core::fmt::Display, call: impl FnOnce() -> i32) -> Result<()> {
    // A call may nest inside another plugin's (a C OS layer reading a C connector): the outer
    // call's reason, if given already, is kept for it.
    let outer = REASON.with(|r| r.borrow_mut().take());
    let code = call();
    let reason = REASON.with(|r| core::mem::replace(&mut *r.borrow_mut(), outer));
    if code == 0 {
        return Ok(());
    }
    let err = Error::from_code(code).unwrap_or(Error::new(ErrorOrigin::Plugin, ErrorKind::Unknown));
    Err(match reason {
        Some(reason) => err.with_reason(format_args!("{what}: {reason}")),
        None if code > 0 => err.with_reason(format_args!("{what} returned {code}, not 0 or an error code")),
        None => err.with_reason(format_args!("{what} failed")),
    })
}

/// A table of function pointers that crosses the C boundary, starting with `version` and
/// `struct_size` (plugin descriptors: after their `PluginHeader`).
///
/// # Safety
/// Implementors are `#[repr(C)]` structs of integers, raw pointers and optional function
/// pointers, for which all-zero bytes are a valid value.
pub unsafe trait CTable: Sized {
    /// The smallest size accepted: up to the end of the last required entry.
    const MIN_SIZE: usize;
    /// What the table is, for errors ("C connector plugin descriptor").
    const WHAT: &'static str;
}

/// Checks an interface version and table size as the plugin gave them.
pub fn check_version<T: CTable>(version: u32, size: u32) -> Result<()> {
    if version != C_PLUGIN_VERSION {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::VersionMismatch).with_reason(format_args!(
            "{} has interface version {version}, this host speaks {C_PLUGIN_VERSION}: rebuild the plugin against this memflow.h",
            T::WHAT
        )));
    }
    if (size as usize) < T::MIN_SIZE {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::LayoutMismatch).with_reason(format_args!(
            "{} is {size} bytes, shorter than its required entries ({} bytes)",
            T::WHAT,
            T::MIN_SIZE
        )));
    }
    Ok(())
}

/// A copy of the table at `ptr` of `size` bytes (as the plugin said), checked against the
/// version and minimum size; entries beyond `size` are NULL.
///
/// # Safety
/// `ptr` points to at least `size` readable bytes and is valid for the call.
pub unsafe fn load_table<T: CTable>(ptr: *const T, version: u32, size: u32) -> Result<T> {
    check_version::<T>(version, size)?;
    let mut table = core::mem::MaybeUninit::<T>::zeroed();
    let len = (size as usize).min(core::mem::size_of::<T>());
    core::ptr::copy_nonoverlapping(ptr.cast::<u8>(), table.as_mut_ptr().cast::<u8>(), len);
    // SAFETY: all-zero bytes are a valid T (the trait's contract), and the plugin's bytes are
    // its values of the same fields.
    Ok(table.assume_init())
}

/// Checks the interface version and struct size that follow the header of a C plugin
/// descriptor of `kind`, as read from the library file (before loading it).
pub fn check_prefix(kind: PluginKind, after_header: &[u8]) -> Result<()> {
    let word = |i: usize| after_header.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(version), Some(size)) = (word(0), word(4)) else {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Truncated)
            .with_reason("C plugin descriptor ends after its header"));
    };
    match kind {
        PluginKind::Connector => check_version::<super::c_plugin::CConnectorPlugin>(version, size),
        PluginKind::Os => check_version::<super::c_os::COsPlugin>(version, size),
    }
}

/// The bytes a descriptor check reads after the header: its version and size.
pub const PREFIX_LEN: usize = 8;

/// An entry of a plugin, for errors: "C plugin `name`: entry" (formatted only when needed).
#[derive(Copy, Clone)]
pub struct Entry<'a> {
    /// The plugin's name.
    pub plugin: &'a str,
    /// The entry (`read_batch`, `process module_list`, ...).
    pub entry: &'a str,
}

impl core::fmt::Display for Entry<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "C plugin `{}`: {}", self.plugin, self.entry)
    }
}

/// The error of an optional entry a plugin left NULL.
pub fn unsupported(origin: ErrorOrigin, plugin: &str, entry: &str) -> Error {
    Error::new(origin, ErrorKind::Unsupported).with_reason(format_args!("C plugin `{plugin}` has no `{entry}` entry"))
}

/// Serves a batch one operation at a time: `f` gets an operation's address and buffer and
/// returns how many bytes from its start it handled; those are reported done, the rest failed.
pub fn serve_batch<T, B: SplitBuf>(
    batch: MemBatch<'_, '_, '_, T, B>,
    split: impl Fn(T) -> (Address, Address, B),
    mut f: impl FnMut(Address, &mut B) -> usize,
) {
    let MemBatch { ops, mut on_ok, mut on_fail } = batch;
    for op in ops {
        let (addr, tag, mut buf) = split(op);
        let done = f(addr, &mut buf).min(buf.len());
        let (head, tail) = buf.split_at(done);
        if !head.is_empty() {
            report(&mut on_ok, tag, head);
        }
        if !tail.is_empty() {
            report(&mut on_fail, tag + done as umem, tail);
        }
    }
}

/// A count of bytes a plugin's read or write returned: at most `len`, none for an error.
pub fn done_count(returned: i64, len: usize) -> usize {
    usize::try_from(returned).map_or(0, |d| d.min(len))
}

/// Runs host code called from C, turning a panic into an error code (nothing unwinds into C).
pub fn from_c(body: impl FnOnce() -> Result<()>) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => e.code(),
        Err(_) => Error::new(ErrorOrigin::Plugin, ErrorKind::Panic).code(),
    }
}

/// A string of a record from C: NULL is empty; at most `max` bytes before its NUL, valid
/// UTF-8. Errors are of `origin` and name `what`.
///
/// # Safety
/// `text` is NULL or points to a NUL-terminated string, or to at least `max + 1` readable
/// bytes.
pub unsafe fn record_text(text: *const c_char, max: usize, origin: ErrorOrigin, what: &str) -> Result<String> {
    if text.is_null() {
        return Ok(String::new());
    }
    let len = libc::strnlen(text, max.saturating_add(1));
    if len > max {
        return Err(Error::new(origin, ErrorKind::LimitExceeded)
            .with_reason(format_args!("{what} is longer than {max} bytes (or has no NUL)")));
    }
    let bytes = core::slice::from_raw_parts(text.cast::<u8>(), len);
    core::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| Error::new(origin, ErrorKind::Encoding).with_reason(format_args!("{what} is not valid UTF-8")))
}
