//! Batches of C operations (`MfReadOp`, `MfWriteOp` arrays) run as one core batch: each op's
//! `result` and `done` are set from the chunks that failed. The C API runs its callers' batches
//! this way, and the host runs a C OS layer's batches on its connector this way.
//!
//! What a count means: the bytes from the start of the buffer that were transferred before the
//! first byte that could not be. Bytes after that one are still read or written where they can
//! be (unreadable bytes are zero).

use cglue::slice::{CSliceMut, CSliceRef};

use super::{MfReadOp, MfWriteOp};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, PartialResult};
use crate::mem::{MemBatch, MemChunk, MemOp};
use crate::types::Address;

/// An error of the C boundary: a malformed op array.
fn op_err(kind: ErrorKind, reason: core::fmt::Arguments) -> Error {
    Error::new(ErrorOrigin::Ffi, kind).with_reason(reason)
}

/// Offsets of each op in one running "tag space", so a failed chunk's tag names its op.
fn tag_starts(lens: impl Iterator<Item = usize>) -> Result<Vec<u64>, Error> {
    let mut starts = Vec::new();
    let mut at = 0u64;
    for len in lens {
        starts.push(at);
        at = at
            .checked_add(len as u64)
            .ok_or_else(|| op_err(ErrorKind::InvalidArgument, format_args!("batch lengths overflow")))?;
    }
    Ok(starts)
}

/// The op a chunk tagged `tag` belongs to, and the chunk's offset in it.
fn op_of(starts: &[u64], tag: Address) -> (usize, usize) {
    let tag = super::addr_out(tag);
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
pub fn read_ops<'buf, A>(
    ops: &mut [MfReadOp],
    addr: impl Fn(u64) -> A,
    run: impl FnOnce(MemBatch<'_, '_, '_, MemOp<A, CSliceMut<'buf, u8>>, CSliceMut<'buf, u8>>) -> Result<(), Error>,
) -> Result<PartialResult<()>, Error> {
    for (i, op) in ops.iter().enumerate() {
        if op.len > 0 && op.buf.is_null() {
            return Err(op_err(ErrorKind::NullPointer, format_args!("buffer of read op {i} is NULL")));
        }
        if op.len > isize::MAX as usize {
            return Err(op_err(ErrorKind::InvalidArgument, format_args!("read op {i} is too long")));
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
        op.result = if done < op.len { Error::new(ErrorOrigin::Memory, ErrorKind::PartialRead).code() } else { 0 };
        any |= done < op.len;
    }
    Ok(if any { Err(PartialError::PartialRead(())) } else { Ok(()) })
}

/// Runs a write batch built from `ops`, sets each op's `result` and `done`.
pub fn write_ops<'buf, A>(
    ops: &mut [MfWriteOp],
    addr: impl Fn(u64) -> A,
    run: impl FnOnce(MemBatch<'_, '_, '_, MemOp<A, CSliceRef<'buf, u8>>, CSliceRef<'buf, u8>>) -> Result<(), Error>,
) -> Result<PartialResult<()>, Error> {
    for (i, op) in ops.iter().enumerate() {
        if op.len > 0 && op.buf.is_null() {
            return Err(op_err(ErrorKind::NullPointer, format_args!("buffer of write op {i} is NULL")));
        }
        if op.len > isize::MAX as usize {
            return Err(op_err(ErrorKind::InvalidArgument, format_args!("write op {i} is too long")));
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
        op.result = if done < op.len { Error::new(ErrorOrigin::Memory, ErrorKind::PartialWrite).code() } else { 0 };
        any |= done < op.len;
    }
    Ok(if any { Err(PartialError::PartialWrite) } else { Ok(()) })
}
