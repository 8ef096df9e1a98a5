//! The unit of I/O: a batch of memory operations with per-chunk success and failure callbacks.
//!
//! Every memory trait takes a [`MemBatch`]: an iterator of operations (where, a caller tag,
//! a buffer) and two optional callbacks. An implementation reports every byte of every
//! operation exactly once, either through `on_ok` or through `on_fail`, possibly split into
//! several chunks. A chunk carries the operation's tag advanced by the chunk's offset, so a
//! layer that rewrites addresses (a translator turning virtual into physical addresses) can
//! pass the caller's address through as the tag and forward callbacks unchanged.
//!
//! All types here are `#[repr(C)]` so batches cross plugin and C boundaries as they are.

use cglue::callback::OpaqueCallback;
use cglue::iter::CIterator;
use cglue::slice::{CSliceMut, CSliceRef};

use crate::types::{umem, Address, PhysicalAddress};

/// One operation: the address to access, a caller-chosen tag, and the buffer.
#[repr(C)]
pub struct MemOp<A, B> {
    /// Where to read or write.
    pub addr: A,
    /// Caller's tag, usually the address in the caller's own address space.
    pub tag: Address,
    /// Destination (reads) or source (writes).
    pub buf: B,
}

/// What a callback receives: the tag of the first byte of the chunk and the chunk itself.
#[repr(C)]
pub struct MemChunk<B> {
    /// The operation's tag plus the chunk's offset inside the operation.
    pub tag: Address,
    /// The part of the operation's buffer this report covers.
    pub buf: B,
}

/// A read from an address space.
pub type ReadOp<'a> = MemOp<Address, CSliceMut<'a, u8>>;
/// A write into an address space.
pub type WriteOp<'a> = MemOp<Address, CSliceRef<'a, u8>>;
/// A read from physical memory.
pub type PhysReadOp<'a> = MemOp<PhysicalAddress, CSliceMut<'a, u8>>;
/// A write into physical memory.
pub type PhysWriteOp<'a> = MemOp<PhysicalAddress, CSliceRef<'a, u8>>;
/// A reported chunk of a read.
pub type ReadChunk<'a> = MemChunk<CSliceMut<'a, u8>>;
/// A reported chunk of a write.
pub type WriteChunk<'a> = MemChunk<CSliceRef<'a, u8>>;
/// A callback that receives chunks. Its return value is reserved and ignored by memory
/// implementations; return `true`.
pub type ChunkCallback<'a, B> = OpaqueCallback<'a, MemChunk<B>>;

/// A batch of operations and where to report their outcome.
#[repr(C)]
pub struct MemBatch<'a, 'b, 'c, T, B> {
    /// The operations.
    pub ops: CIterator<'b, T>,
    /// Receives chunks that were done.
    pub on_ok: Option<&'c mut ChunkCallback<'a, B>>,
    /// Receives chunks that could not be done.
    pub on_fail: Option<&'c mut ChunkCallback<'a, B>>,
}

/// A batch of reads from an address space.
pub type ReadBatch<'buf, 'a, 'b, 'c> = MemBatch<'a, 'b, 'c, ReadOp<'buf>, CSliceMut<'buf, u8>>;
/// A batch of writes into an address space.
pub type WriteBatch<'buf, 'a, 'b, 'c> = MemBatch<'a, 'b, 'c, WriteOp<'buf>, CSliceRef<'buf, u8>>;
/// A batch of physical reads.
pub type PhysReadBatch<'buf, 'a, 'b, 'c> = MemBatch<'a, 'b, 'c, PhysReadOp<'buf>, CSliceMut<'buf, u8>>;
/// A batch of physical writes.
pub type PhysWriteBatch<'buf, 'a, 'b, 'c> = MemBatch<'a, 'b, 'c, PhysWriteOp<'buf>, CSliceRef<'buf, u8>>;

impl<'a, 'b, 'c, T, B> MemBatch<'a, 'b, 'c, T, B> {
    /// Runs `f` on a batch built from a Rust iterator and optional callbacks.
    #[inline]
    pub fn with<O>(
        mut ops: impl Iterator<Item = T>,
        on_ok: Option<&mut ChunkCallback<'a, B>>,
        on_fail: Option<&mut ChunkCallback<'a, B>>,
        f: impl FnOnce(MemBatch<'a, '_, '_, T, B>) -> O,
    ) -> O {
        f(MemBatch { ops: CIterator::new(&mut ops), on_ok, on_fail })
    }

    /// Reports a done chunk.
    #[inline]
    pub fn ok(&mut self, tag: Address, buf: B) {
        report(&mut self.on_ok, tag, buf)
    }

    /// Reports a failed chunk.
    #[inline]
    pub fn fail(&mut self, tag: Address, buf: B) {
        report(&mut self.on_fail, tag, buf)
    }
}

/// Calls an optional chunk callback.
#[inline]
pub fn report<B>(cb: &mut Option<&mut ChunkCallback<'_, B>>, tag: Address, buf: B) {
    if let Some(cb) = cb.as_deref_mut() {
        let _ = cb.call(MemChunk { tag, buf });
    }
}

/// A buffer that can be split into consecutive chunks (read and write buffers alike).
pub trait SplitBuf: Sized {
    /// Length in bytes.
    fn len(&self) -> usize;
    /// True if empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Splits into `[0, at)` and `[at, len)`.
    fn split_at(self, at: usize) -> (Self, Self);
}

impl<'a> SplitBuf for CSliceMut<'a, u8> {
    #[inline]
    fn len(&self) -> usize {
        CSliceMut::len(self)
    }
    #[inline]
    fn split_at(self, at: usize) -> (Self, Self) {
        let s: &'a mut [u8] = self.into();
        let (l, r) = s.split_at_mut(at);
        (l.into(), r.into())
    }
}

impl<'a> SplitBuf for CSliceRef<'a, u8> {
    #[inline]
    fn len(&self) -> usize {
        CSliceRef::len(self)
    }
    #[inline]
    fn split_at(self, at: usize) -> (Self, Self) {
        let s: &'a [u8] = self.into();
        let (l, r) = s.split_at(at);
        (l.into(), r.into())
    }
}

/// Splits `buf`, which starts at `addr`, at every multiple of `boundary` (a power of two),
/// calling `f(addr, tag, chunk)` for each piece in order.
pub fn split_at_boundaries<B: SplitBuf>(
    mut addr: Address,
    mut tag: Address,
    mut buf: B,
    boundary: umem,
    mut f: impl FnMut(Address, Address, B),
) {
    while !buf.is_empty() {
        let room = boundary - addr.page_offset(boundary);
        let take = if (buf.len() as umem) <= room { buf.len() } else { room as usize };
        let (head, rest) = buf.split_at(take);
        f(addr, tag, head);
        addr += take;
        tag += take;
        buf = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_split_covers_every_byte_once() {
        let mut buf = vec![0u8; 10000];
        let mut pieces = vec![];
        split_at_boundaries(
            Address::new(0xff0),
            Address::new(0x7ff0),
            CSliceMut::from(&mut buf[..]),
            0x1000,
            |a, t, b: CSliceMut<u8>| pieces.push((a, t, b.len())),
        );
        assert_eq!(pieces[0], (Address::new(0xff0), Address::new(0x7ff0), 0x10));
        assert_eq!(pieces[1], (Address::new(0x1000), Address::new(0x8000), 0x1000));
        assert_eq!(pieces.iter().map(|p| p.2).sum::<usize>(), 10000);
        assert!(pieces[1..pieces.len() - 1].iter().all(|p| p.2 == 0x1000));
    }
}
