//! Reads and writes from C: single operations with their byte counts (batches built from C op
//! arrays: `memflow_core::plugins::records::{read_ops, write_ops}`).
//!
//! What a count means, for every function: the bytes from the start of the buffer that were
//! transferred before the first byte that could not be. Bytes after that one are still read or
//! written where they can be (unreadable bytes are zero), so the count tells a complete
//! transfer (`len`), a partial one (`1..len`) and one that got nothing (0) apart.

use memflow_core::error::{Error, ErrorKind, ErrorOrigin};

use crate::call::{guard_hot, out_arg};
use crate::handle::{self, Handle};

/// Runs a single read (`partial` is [`ErrorKind::PartialRead`]) or write
/// ([`ErrorKind::PartialWrite`]) of `len` bytes on the object of `handle`: `op` returns the
/// count. Stores it in `*done` if `done` is not NULL (0 if the call fails) and returns 0, the
/// partial code if the count is below `len`, or the error's code. The hottest path of the API:
/// see [`guard_hot`].
#[inline]
pub(crate) fn single<H: Handle>(
    handle: *const H,
    name: &str,
    done: *mut usize,
    len: usize,
    partial: ErrorKind,
    op: impl FnOnce(&mut H) -> Result<usize, Error>,
) -> i32 {
    guard_hot(|| {
        let mut done = if done.is_null() { None } else { Some(out_arg(done, "done")?) };
        if let Some(d) = done.as_mut() {
            d.write(0);
        }
        let count = handle::with(handle, name, op)?;
        if let Some(d) = done {
            d.write(count);
        }
        if count == len {
            Ok(())
        } else {
            Err(Error::new(ErrorOrigin::Memory, partial))
        }
    })
}
