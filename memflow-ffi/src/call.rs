//! What every entry point does around its body: install the logger, start a fresh error
//! detail, catch panics, turn results into codes; and the checks of pointer arguments.

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use memflow_core::error::{Error, ErrorKind, ErrorOrigin, PartialResult};

use crate::error::{add_detail, begin_detail, detail_pending, record_failure};

/// Result of an entry point's body.
pub(crate) type FfiResult = Result<(), Error>;

/// An error of the C boundary itself, with `detail` for `mf_last_error_message`.
#[cold]
pub(crate) fn ffi_err(kind: ErrorKind, detail: impl std::fmt::Display) -> Error {
    add_detail(detail);
    Error::new(ErrorOrigin::Ffi, kind)
}

/// Runs an entry point's body: returns 0 on success, the error's code otherwise (recording the
/// message for `mf_last_error_message`), and a panic code if the body panicked.
pub(crate) fn guard(body: impl FnOnce() -> FfiResult) -> i32 {
    crate::log::ensure_logger();
    begin_detail();
    run(body)
}

/// [`guard`] for the hottest calls (single reads and writes): the thread's error detail is
/// only touched when some thread has detail left over, which keeps a successful call free of
/// thread-local lookups.
#[inline]
pub(crate) fn guard_hot(body: impl FnOnce() -> FfiResult) -> i32 {
    crate::log::ensure_logger();
    if detail_pending() {
        forget_detail();
    }
    run(body)
}

/// [`begin_detail`] out of line, for [`guard_hot`]'s rare case.
#[cold]
#[inline(never)]
fn forget_detail() {
    begin_detail();
}

/// Runs `body`, turning its result or panic into a code.
#[inline]
fn run(body: impl FnOnce() -> FfiResult) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => record_failure(e.code()),
        Err(payload) => panicked(payload),
    }
}

/// Records a panic caught at the boundary; returns its code.
#[cold]
fn panicked(payload: Box<dyn std::any::Any + Send>) -> i32 {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into());
    add_detail(format_args!("panic caught at the C boundary: {what}"));
    // Dropping the payload could panic again; forget it instead.
    std::mem::forget(payload);
    record_failure(crate::error::MF_ERR_PANIC)
}

/// Like [`guard`], for reads and writes: a partial result is returned as
/// `MF_ERR_PARTIAL_READ` / `MF_ERR_PARTIAL_WRITE`.
pub(crate) fn guard_partial(body: impl FnOnce() -> Result<PartialResult<()>, Error>) -> i32 {
    guard(|| match body()? {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::from(e)),
    })
}

/// A required string argument: NUL-terminated UTF-8, borrowed for the call.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("argument `{name}` is NULL")));
    }
    CStr::from_ptr(ptr)
        .to_str()
        .map_err(|e| ffi_err(ErrorKind::Encoding, format_args!("argument `{name}` is not valid UTF-8: {e}")))
}

/// An optional string argument (NULL means absent).
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        Ok(None)
    } else {
        str_arg(ptr, name).map(Some)
    }
}

/// A required output pointer.
pub(crate) fn out_arg<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut std::mem::MaybeUninit<T>, Error> {
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("output argument `{name}` is NULL")));
    }
    if ptr.align_offset(std::mem::align_of::<T>()) != 0 {
        return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("output argument `{name}` is misaligned")));
    }
    // SAFETY: non-NULL and aligned; the caller promises it points to writable storage of a T.
    Ok(unsafe { &mut *ptr.cast::<std::mem::MaybeUninit<T>>() })
}

/// A required pointer to an input record.
pub(crate) fn ref_arg<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Error> {
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("argument `{name}` is NULL")));
    }
    if ptr.align_offset(std::mem::align_of::<T>()) != 0 {
        return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("argument `{name}` is misaligned")));
    }
    // SAFETY: non-NULL and aligned; the caller promises it points to a valid T.
    Ok(unsafe { &*ptr })
}

/// A writable buffer of `len` bytes (NULL is fine when `len` is 0).
pub(crate) fn buf_mut<'a>(ptr: *mut u8, len: usize, name: &str) -> Result<&'a mut [u8], Error> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("buffer `{name}` is NULL (length {len})")));
    }
    if len > isize::MAX as usize {
        return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("buffer `{name}` length {len} is too large")));
    }
    // SAFETY: the caller promises `ptr` points to `len` writable bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A readable buffer of `len` bytes (NULL is fine when `len` is 0).
pub(crate) fn buf_ref<'a>(ptr: *const u8, len: usize, name: &str) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("buffer `{name}` is NULL (length {len})")));
    }
    if len > isize::MAX as usize {
        return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("buffer `{name}` length {len} is too large")));
    }
    // SAFETY: the caller promises `ptr` points to `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A required callback.
pub(crate) fn callback_arg<F>(cb: Option<F>, name: &str) -> Result<F, Error> {
    cb.ok_or_else(|| ffi_err(ErrorKind::NullPointer, format_args!("callback `{name}` is NULL")))
}

/// A writable array of `count` records (NULL is fine when `count` is 0).
pub(crate) fn array_mut<'a, T>(ptr: *mut T, count: usize, name: &str) -> Result<&'a mut [T], Error> {
    if count == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("array `{name}` is NULL (count {count})")));
    }
    if ptr.align_offset(std::mem::align_of::<T>()) != 0 || count > isize::MAX as usize / std::mem::size_of::<T>().max(1)
    {
        return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("array `{name}` is misaligned or too long")));
    }
    // SAFETY: the caller promises `count` valid, writable records at `ptr`.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, count) })
}
