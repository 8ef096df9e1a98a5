//! Reads and writes from C: single operations with their byte counts (batches built from C op
//! arrays: `memflow_core::plugins::records::{read_ops, write_ops}`).
//!
//! What a count means, for every function: the bytes from the start of the buffer that were
//! transferred before the first byte that could not be. Bytes after that one are still read or
//! written where they can be (unreadable bytes are zero), so the count tells a complete
//! transfer (`len`), a partial one (`1..len`) and one that got nothing (0) apart.

use memflow_core::error::{Error, ErrorKind, ErrorOrigin};

use crate::call::{guard, out_arg};

/// Runs a single read (`partial` is [`ErrorKind::PartialRead`]) or write
/// ([`ErrorKind::PartialWrite`]) of `len` bytes whose `body` returns the count: stores it in
/// `*done` if `done` is not NULL (0 if the call fails) and returns 0, the partial code if the
/// count is below `len`, or the error's code.
pub(crate) fn single(
    done: *mut usize,
    len: usize,
    partial: ErrorKind,
    body: impl FnOnce() -> Result<usize, Error>,
) -> i32 {
    guard(|| {
        let mut done = if done.is_null() { None } else { Some(out_arg(done, "done")?) };
        if let Some(d) = done.as_mut() {
            d.write(0);
        }
        let count = body()?;
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
