//! The one place that decides what a partly failed read or write means for the helpers.

use cglue::slice::{CSliceMut, CSliceRef};

use super::batch::{MemBatch, MemChunk, MemOp};
use crate::error::{PartialError, PartialResult, Result};

/// Runs a read batch; chunks that fail are zeroed, and any failure makes the result
/// [`PartialError::PartialRead`].
#[inline]
pub fn read_zeroing<'buf, A>(
    ops: impl Iterator<Item = MemOp<A, CSliceMut<'buf, u8>>>,
    run: impl FnOnce(MemBatch<'_, '_, '_, MemOp<A, CSliceMut<'buf, u8>>, CSliceMut<'buf, u8>>) -> Result<()>,
) -> PartialResult<()> {
    let mut failed = false;
    let mut on_fail = |mut chunk: MemChunk<CSliceMut<'buf, u8>>| {
        chunk.buf.fill(0);
        failed = true;
        true
    };
    MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), run)?;
    if failed {
        Err(PartialError::PartialRead(()))
    } else {
        Ok(())
    }
}

/// Runs a write batch; any failed chunk makes the result [`PartialError::PartialWrite`].
#[inline]
pub fn write_checking<'buf, A>(
    ops: impl Iterator<Item = MemOp<A, CSliceRef<'buf, u8>>>,
    run: impl FnOnce(MemBatch<'_, '_, '_, MemOp<A, CSliceRef<'buf, u8>>, CSliceRef<'buf, u8>>) -> Result<()>,
) -> PartialResult<()> {
    let mut failed = false;
    let mut on_fail = |_: MemChunk<CSliceRef<'buf, u8>>| {
        failed = true;
        true
    };
    MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), run)?;
    if failed {
        Err(PartialError::PartialWrite)
    } else {
        Ok(())
    }
}
