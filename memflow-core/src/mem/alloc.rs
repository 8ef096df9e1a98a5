//! Fallible allocation for sizes that come from outside: a file, a user's option or guest
//! memory.
//!
//! Rust aborts the whole process when an allocation fails, which bypasses every error path
//! (and the C API's). Every buffer whose size is not a constant of the code is allocated
//! here instead, after the caller checked the size against its documented limit; a failure
//! is an [`ErrorKind::OutOfMemory`] error naming what the buffer was for.

use core::fmt::Display;

use bytemuck::Zeroable;

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

fn out_of_memory(origin: ErrorOrigin, bytes: impl Display, what: impl Display) -> Error {
    Error::new(origin, ErrorKind::OutOfMemory).with_reason(format_args!("cannot allocate {bytes} bytes for {what}"))
}

/// `len` zeroed values, or an [`ErrorKind::OutOfMemory`] error of `origin` naming `what`.
///
/// Large buffers come from the allocator's zeroed pages (as `vec![0; len]` does), so memory
/// is only committed where it is written.
pub fn zeroed_vec<T: Zeroable>(len: usize, origin: ErrorOrigin, what: impl Display) -> Result<Vec<T>> {
    let layout = core::alloc::Layout::array::<T>(len)
        .map_err(|_| out_of_memory(origin, format_args!("{len} x {}", core::mem::size_of::<T>()), &what))?;
    if layout.size() == 0 {
        return Ok(core::iter::repeat_with(T::zeroed).take(len).collect());
    }
    // SAFETY: the layout has a non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut T;
    if ptr.is_null() {
        return Err(out_of_memory(origin, layout.size(), what));
    }
    // SAFETY: `ptr` was allocated by the global allocator with the layout of `[T; len]`, and
    // all-zero bytes are a valid `T` (`Zeroable`), so all `len` elements are initialised.
    Ok(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

/// Reserves room for `additional` more values in `v`, or fails like [`zeroed_vec`].
pub fn reserve<T>(v: &mut Vec<T>, additional: usize, origin: ErrorOrigin, what: impl Display) -> Result<()> {
    v.try_reserve(additional).map_err(|_| {
        out_of_memory(
            origin,
            format_args!("{} x {}", v.len().saturating_add(additional), core::mem::size_of::<T>()),
            what,
        )
    })
}

/// The size of this machine's pages (4 KiB where the OS does not say).
pub fn host_page_size() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: `sysconf` only reads system configuration.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size).ok().filter(|s| s.is_power_of_two() && *s >= 4096).unwrap_or(4096)
    }
    #[cfg(not(unix))]
    {
        4096
    }
}

/// The physical memory of this machine in bytes, where the OS tells.
pub fn physical_memory() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: `sysconf` only reads system configuration.
        let pages = u64::try_from(unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) }).ok()?;
        pages.checked_mul(host_page_size() as u64).filter(|&bytes| bytes > 0)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_zeroed_values() {
        let v: Vec<u64> = zeroed_vec(1000, ErrorOrigin::Other, "a test").unwrap();
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|&x| x == 0));
        assert!(zeroed_vec::<u8>(0, ErrorOrigin::Other, "nothing").unwrap().is_empty());
        assert_eq!(zeroed_vec::<()>(5, ErrorOrigin::Other, "units").unwrap().len(), 5);
    }

    #[test]
    fn impossible_sizes_are_errors() {
        // More than the address space can hold: refused before asking the allocator.
        let err = zeroed_vec::<u64>(usize::MAX / 4, ErrorOrigin::Memory, "a huge table").unwrap_err();
        assert_eq!(err, Error::new(ErrorOrigin::Memory, ErrorKind::OutOfMemory));
        // Representable, but more than a 47-bit user address space: the allocator says no.
        let err = zeroed_vec::<u8>(1 << 50, ErrorOrigin::Args, "a huge buffer").unwrap_err();
        assert_eq!(err, Error::new(ErrorOrigin::Args, ErrorKind::OutOfMemory));
        let mut v = vec![1u8];
        assert_eq!(reserve(&mut v, usize::MAX, ErrorOrigin::Other, "more").unwrap_err().kind, ErrorKind::OutOfMemory);
        assert_eq!(reserve(&mut v, 1 << 50, ErrorOrigin::Other, "more").unwrap_err().kind, ErrorKind::OutOfMemory);
        reserve(&mut v, 10, ErrorOrigin::Other, "a little more").unwrap();
        assert!(v.capacity() >= 11);
    }

    #[test]
    fn knows_the_machine_memory() {
        #[cfg(target_os = "linux")]
        assert!(physical_memory().unwrap() >= 1 << 20);
    }
}
