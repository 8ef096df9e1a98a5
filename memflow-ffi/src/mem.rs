//! Reads and writes from C: single operations with their byte counts, and batches built from C
//! op arrays (one core batch per call, per-op results and counts).
//!
//! What a count means, for every function: the bytes from the start of the buffer that were
//! transferred before the first byte that could not be. Bytes after that one are still read or
//! written where they can be (unreadable bytes are zero), so the count tells a complete
//! transfer (`len`), a partial one (`1..len`) and one that got nothing (0) apart.

use cglue::slice::{CSliceMut, CSliceRef};
use memflow_core::error::{Error, ErrorKind, ErrorOrigin, PartialError, PartialResult};
use memflow_core::mem::{MemBatch, MemChunk, MemOp};
use memflow_core::types::Address;

use crate::call::{ffi_err, guard_hot, out_arg};
use crate::error::{MF_ERR_PARTIAL_READ, MF_ERR_PARTIAL_WRITE};
use crate::handle::{self, Handle};
use crate::records::{MfReadOp, MfWriteOp};

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

/// Offsets of each op in one running "tag space", so a failed chunk's tag names its op.
fn tag_starts(lens: impl Iterator<Item = usize>) -> Result<Vec<u64>, Error> {
    let mut starts = Vec::new();
    let mut at = 0u64;
    for len in lens {
        starts.push(at);
        at = at.checked_add(len as u64).ok_or_else(|| ffi_err(ErrorKind::InvalidArgument, "batch lengths overflow"))?;
    }
    Ok(starts)
}

/// The op a chunk tagged `tag` belongs to, and the chunk's offset in it.
fn op_of(starts: &[u64], tag: Address) -> (usize, usize) {
    let tag = crate::records::addr_out(tag);
    let i = starts.partition_point(|&s| s <= tag).saturating_sub(1);
    (i, starts.get(i).map_or(0, |&s| (tag - s) as usize))
}

/// Records a failed chunk: the op's count becomes at most the chunk's offset.
fn fail_at(starts: &[u64], first_fail: &mut [usize], tag: Address) {
    let (i, offset) = op_of(starts, tag);
    if let Some(f) = first_fail.get_mut(i) {
        *f = (*f).min(offset);
    }
}

/// Runs a read batch built from `ops`, zeroes failed bytes, sets each op's `result` and `done`.
pub(crate) fn read_batch<'buf, A>(
    ops: &mut [MfReadOp],
    addr: impl Fn(u64) -> A,
    run: impl FnOnce(MemBatch<'_, '_, '_, MemOp<A, CSliceMut<'buf, u8>>, CSliceMut<'buf, u8>>) -> Result<(), Error>,
) -> Result<PartialResult<()>, Error> {
    for (i, op) in ops.iter().enumerate() {
        if op.len > 0 && op.buf.is_null() {
            return Err(ffi_err(ErrorKind::NullPointer, format_args!("buffer of read op {i} is NULL")));
        }
        if op.len > isize::MAX as usize {
            return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("read op {i} is too long")));
        }
    }
    let starts = tag_starts(ops.iter().map(|o| o.len))?;
    let mut first_fail: Vec<usize> = ops.iter().map(|o| o.len).collect();
    {
        let mut on_fail = |mut chunk: MemChunk<CSliceMut<'buf, u8>>| {
            chunk.buf.fill(0);
            fail_at(&starts, &mut first_fail, chunk.tag);
            true
        };
        let iter = ops.iter().zip(&starts).filter(|(o, _)| o.len > 0).map(|(o, &start)| {
            // SAFETY: checked non-NULL above; the caller promises `len` writable bytes per op.
            let buf: &'buf mut [u8] = unsafe { std::slice::from_raw_parts_mut(o.buf.cast::<u8>(), o.len) };
            MemOp { addr: addr(o.addr), tag: Address::from(start), buf: buf.into() }
        });
        MemBatch::with(iter, None, Some(&mut (&mut on_fail).into()), run)?;
    }
    let mut any = false;
    for (op, done) in ops.iter_mut().zip(first_fail) {
        op.done = done;
        op.result = if done < op.len { MF_ERR_PARTIAL_READ } else { 0 };
        any |= done < op.len;
    }
    Ok(if any { Err(PartialError::PartialRead(())) } else { Ok(()) })
}

/// Runs a write batch built from `ops`, sets each op's `result` and `done`.
pub(crate) fn write_batch<'buf, A>(
    ops: &mut [MfWriteOp],
    addr: impl Fn(u64) -> A,
    run: impl FnOnce(MemBatch<'_, '_, '_, MemOp<A, CSliceRef<'buf, u8>>, CSliceRef<'buf, u8>>) -> Result<(), Error>,
) -> Result<PartialResult<()>, Error> {
    for (i, op) in ops.iter().enumerate() {
        if op.len > 0 && op.buf.is_null() {
            return Err(ffi_err(ErrorKind::NullPointer, format_args!("buffer of write op {i} is NULL")));
        }
        if op.len > isize::MAX as usize {
            return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("write op {i} is too long")));
        }
    }
    let starts = tag_starts(ops.iter().map(|o| o.len))?;
    let mut first_fail: Vec<usize> = ops.iter().map(|o| o.len).collect();
    {
        let mut on_fail = |chunk: MemChunk<CSliceRef<'buf, u8>>| {
            fail_at(&starts, &mut first_fail, chunk.tag);
            true
        };
        let iter = ops.iter().zip(&starts).filter(|(o, _)| o.len > 0).map(|(o, &start)| {
            // SAFETY: checked non-NULL above; the caller promises `len` readable bytes per op.
            let buf: &'buf [u8] = unsafe { std::slice::from_raw_parts(o.buf.cast::<u8>(), o.len) };
            MemOp { addr: addr(o.addr), tag: Address::from(start), buf: buf.into() }
        });
        MemBatch::with(iter, None, Some(&mut (&mut on_fail).into()), run)?;
    }
    let mut any = false;
    for (op, done) in ops.iter_mut().zip(first_fail) {
        op.done = done;
        op.result = if done < op.len { MF_ERR_PARTIAL_WRITE } else { 0 };
        any |= done < op.len;
    }
    Ok(if any { Err(PartialError::PartialWrite) } else { Ok(()) })
}
