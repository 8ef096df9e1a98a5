//! Opaque handles: boxed objects with a per-type magic value, checked before every use and
//! cleared on free.
//!
//! The check rejects NULL, misaligned pointers, pointers to readable memory that does not
//! hold a live handle of the expected type (garbage, a handle of another type, a freed handle
//! whose memory was not yet reused). It cannot reject a pointer to unmapped memory (reading
//! the magic faults) nor a freed handle whose memory now holds a new handle of the same type.

use memflow_core::error::{Error, ErrorKind};

use crate::call::{ffi_err, guard};

/// The magic value written into a handle when it is freed.
const FREED: u64 = 0xdead_f1ee_dead_f1ee;

/// A type handed to C as an opaque, owned pointer.
pub(crate) trait Handle: Sized {
    /// The value of the magic field of a live handle of this type.
    const MAGIC: u64;
    /// The C type name, for error messages.
    const NAME: &'static str;
    /// The address of the magic field of `this`, computed without creating a reference.
    ///
    /// # Safety
    /// `this` is non-NULL and aligned.
    unsafe fn magic_ptr(this: *mut Self) -> *mut u64;
}

/// Implements [`Handle`] for structs that have a `magic: u64` field.
macro_rules! impl_handle {
    ($($ty:ident = $magic:literal;)*) => {$(
        impl $crate::handle::Handle for $ty {
            const MAGIC: u64 = $magic;
            const NAME: &'static str = stringify!($ty);
            unsafe fn magic_ptr(this: *mut Self) -> *mut u64 {
                std::ptr::addr_of_mut!((*this).magic)
            }
        }
    )*};
}
pub(crate) use impl_handle;

/// Boxes `value` and hands out the raw pointer; the caller (C) owns it.
pub(crate) fn into_raw<H: Handle>(value: H) -> *mut H {
    Box::into_raw(Box::new(value))
}

/// Checks that `ptr` is a live handle of type `H`.
fn check<H: Handle>(ptr: *mut H, name: &str) -> Result<(), Error> {
    if ptr.is_null() {
        return Err(ffi_err(ErrorKind::NullPointer, format_args!("handle `{name}` ({}) is NULL", H::NAME)));
    }
    if ptr.align_offset(std::mem::align_of::<H>()) != 0 {
        return Err(ffi_err(
            ErrorKind::InvalidHandle,
            format_args!("handle `{name}` is not a {} (misaligned pointer {ptr:p})", H::NAME),
        ));
    }
    // SAFETY: non-NULL and aligned. The caller promises readable memory; a volatile read keeps
    // the compiler from assuming anything about what it finds there.
    let magic = unsafe { std::ptr::read_volatile(H::magic_ptr(ptr)) };
    if magic != H::MAGIC {
        let why = if magic == FREED { "already freed" } else { "garbage or another type" };
        return Err(ffi_err(
            ErrorKind::InvalidHandle,
            format_args!("handle `{name}` at {ptr:p} is not a live {} ({why})", H::NAME),
        ));
    }
    Ok(())
}

/// Borrows the handle `ptr` after checking it.
pub(crate) fn get<'a, H: Handle>(ptr: *const H, name: &str) -> Result<&'a H, Error> {
    check(ptr.cast_mut(), name)?;
    // SAFETY: checked to be a live handle of type H, made by `into_raw`.
    Ok(unsafe { &*ptr })
}

/// Borrows the handle `ptr` mutably after checking it.
pub(crate) fn get_mut<'a, H: Handle>(ptr: *mut H, name: &str) -> Result<&'a mut H, Error> {
    check(ptr, name)?;
    // SAFETY: checked to be a live handle of type H, made by `into_raw`. The caller promises no
    // other thread uses it at the same time.
    Ok(unsafe { &mut *ptr })
}

/// Frees the handle `ptr`: 0 on success or for NULL (a no-op), `MF_ERR_INVALID_HANDLE` for
/// anything that is not a live handle of type `H`.
pub(crate) fn free<H: Handle>(ptr: *mut H) -> i32 {
    guard(|| {
        if ptr.is_null() {
            return Ok(());
        }
        check(ptr, "handle")?;
        // SAFETY: a live handle made by `into_raw`; the magic is cleared first so that a second
        // free of the same pointer is recognised while the memory is not reused.
        unsafe {
            std::ptr::write_volatile(H::magic_ptr(ptr), FREED);
            drop(Box::from_raw(ptr));
        }
        Ok(())
    })
}
