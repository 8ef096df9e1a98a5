//! Batched reads and writes from C op arrays: one core batch per call, per-op results.

use cglue::slice::{CSliceMut, CSliceRef};
use memflow_core::error::{Error, ErrorKind, PartialError, PartialResult};
use memflow_core::mem::{MemBatch, MemChunk, MemOp};
use memflow_core::types::Address;

use crate::call::ffi_err;
use crate::error::{MF_ERR_PARTIAL_READ, MF_ERR_PARTIAL_WRITE};
use crate::records::{MfReadOp, MfWriteOp};

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

fn op_of(starts: &[u64], tag: Address) -> usize {
    let tag = crate::records::addr_out(tag);
    starts.partition_point(|&s| s <= tag).saturating_sub(1)
}

/// Runs a read batch built from `ops`, zeroes failed bytes, sets each op's `result`.
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
    let mut failed = vec![false; ops.len()];
    {
        let mut on_fail = |mut chunk: MemChunk<CSliceMut<'buf, u8>>| {
            chunk.buf.fill(0);
            let i = op_of(&starts, chunk.tag);
            if let Some(f) = failed.get_mut(i) {
                *f = true;
            }
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
    for (op, f) in ops.iter_mut().zip(failed) {
        op.result = if f { MF_ERR_PARTIAL_READ } else { 0 };
        any |= f;
    }
    Ok(if any { Err(PartialError::PartialRead(())) } else { Ok(()) })
}

/// Runs a write batch built from `ops`, sets each op's `result`.
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
    let mut failed = vec![false; ops.len()];
    {
        let mut on_fail = |chunk: MemChunk<CSliceRef<'buf, u8>>| {
            let i = op_of(&starts, chunk.tag);
            if let Some(f) = failed.get_mut(i) {
                *f = true;
            }
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
    for (op, f) in ops.iter_mut().zip(failed) {
        op.result = if f { MF_ERR_PARTIAL_WRITE } else { 0 };
        any |= f;
    }
    Ok(if any { Err(PartialError::PartialWrite) } else { Ok(()) })
}
