//! The one place that decides what a partly failed read or write means for the helpers.

use cglue::slice::{CSliceMut, CSliceRef};

use super::batch::{MemBatch, MemChunk, MemOp};
use crate::error::{PartialError, PartialResult, Result};
use crate::types::Address;

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

/// Runs `op` as a one-op read batch; failed chunks are zeroed. Returns how many bytes from the
/// start of the buffer were read before the first failed one (the single-read contract).
#[inline]
pub fn read_single<'buf, A>(
    op: MemOp<A, CSliceMut<'buf, u8>>,
    run: impl FnOnce(MemBatch<'_, '_, '_, MemOp<A, CSliceMut<'buf, u8>>, CSliceMut<'buf, u8>>) -> Result<()>,
) -> Result<usize> {
    let start = op.tag;
    let mut done = op.buf.len();
    let mut on_fail = |mut chunk: MemChunk<CSliceMut<'buf, u8>>| {
        chunk.buf.fill(0);
        done = done.min(offset(start, chunk.tag));
        true
    };
    MemBatch::with(core::iter::once(op), None, Some(&mut (&mut on_fail).into()), run)?;
    Ok(done)
}

/// Runs `op` as a one-op write batch. Returns how many bytes from the start of the buffer were
/// written before the first failed one (the single-write contract).
#[inline]
pub fn write_single<'buf, A>(
    op: MemOp<A, CSliceRef<'buf, u8>>,
    run: impl FnOnce(MemBatch<'_, '_, '_, MemOp<A, CSliceRef<'buf, u8>>, CSliceRef<'buf, u8>>) -> Result<()>,
) -> Result<usize> {
    let start = op.tag;
    let mut done = op.buf.len();
    let mut on_fail = |chunk: MemChunk<CSliceRef<'buf, u8>>| {
        done = done.min(offset(start, chunk.tag));
        true
    };
    MemBatch::with(core::iter::once(op), None, Some(&mut (&mut on_fail).into()), run)?;
    Ok(done)
}

/// How far `tag` lies past `start`, for a chunk of an operation tagged `start` (the distance
/// wraps like addresses do; an operation is never longer than `usize::MAX`).
#[inline]
pub fn offset(start: Address, tag: Address) -> usize {
    (tag - start) as usize
}

/// The helpers' outcome of a single read that got `done` of `len` bytes.
#[inline]
pub fn read_outcome(done: usize, len: usize) -> PartialResult<()> {
    if done == len {
        Ok(())
    } else {
        Err(PartialError::PartialRead(()))
    }
}

/// The helpers' outcome of a single write that got `done` of `len` bytes.
#[inline]
pub fn write_outcome(done: usize, len: usize) -> PartialResult<()> {
    if done == len {
        Ok(())
    } else {
        Err(PartialError::PartialWrite)
    }
}

/// Checks for every implementor's tests: the single entries agree with the batch path.
#[cfg(test)]
pub(crate) mod check {
    use cglue::slice::CSliceMut;

    use crate::mem::{MemBatch, MemChunk, MemOp, MemoryView, PhysicalMemory};
    use crate::types::{Address, PhysicalAddress};

    /// Reads `len` bytes at `addr` with one `phys_read_single` and with a one-op
    /// `phys_read_batch`, asserts that both give the same bytes (failed ones zero) and that the
    /// count is the offset of the batch's first failed chunk; returns the count.
    pub fn phys_read_agrees(mem: &mut impl PhysicalMemory, addr: u64, len: usize) -> usize {
        let at = Address::from(addr);
        let mut single = vec![0xaau8; len];
        let done = mem.phys_read_single(PhysicalAddress::plain(at), &mut single).unwrap();
        let mut batched = vec![0x55u8; len];
        let first_fail = first_failure(at, len, |on_fail| {
            let op = MemOp { addr: PhysicalAddress::plain(at), tag: at, buf: (&mut batched[..]).into() };
            MemBatch::with(core::iter::once(op), None, Some(on_fail), |b| mem.phys_read_batch(b)).unwrap()
        });
        assert_eq!(single, batched, "bytes at {at} len {len:#x}");
        assert_eq!(done, first_fail, "count at {at} len {len:#x}");
        done
    }

    /// [`phys_read_agrees`] for a [`MemoryView`].
    pub fn view_read_agrees(view: &mut impl MemoryView, addr: u64, len: usize) -> usize {
        let at = Address::from(addr);
        let mut single = vec![0xaau8; len];
        let done = view.read_single(at, &mut single).unwrap();
        let mut batched = vec![0x55u8; len];
        let first_fail = first_failure(at, len, |on_fail| {
            let op = MemOp { addr: at, tag: at, buf: (&mut batched[..]).into() };
            MemBatch::with(core::iter::once(op), None, Some(on_fail), |b| view.read_batch(b)).unwrap()
        });
        assert_eq!(single, batched, "bytes at {at} len {len:#x}");
        assert_eq!(done, first_fail, "count at {at} len {len:#x}");
        done
    }

    /// Runs a read with an `on_fail` that zeroes failed chunks; the offset of the first failed
    /// byte (`len` if none failed).
    fn first_failure<'buf>(
        at: Address,
        len: usize,
        run: impl FnOnce(&mut crate::mem::ChunkCallback<'_, CSliceMut<'buf, u8>>),
    ) -> usize {
        let mut first = len;
        let mut on_fail = |mut chunk: MemChunk<CSliceMut<'buf, u8>>| {
            chunk.buf.fill(0);
            first = first.min((chunk.tag - at) as usize);
            true
        };
        run(&mut (&mut on_fail).into());
        first
    }
}
