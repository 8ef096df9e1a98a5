//! Kernel structures read in one piece: the byte range of a structure that holds the fields
//! the layer needs, read with one call, and the fields taken out of it by offset.

use super::limits::{MAX_RECORD_BATCH_BYTES, MAX_RECORD_BYTES};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::{MemBatch, MemOp, MemoryView, ReadChunk};
use crate::types::{umem, Address};

/// The byte range `start..end` of a structure that covers a set of fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset one past the last byte.
    pub end: u32,
}

impl Span {
    /// The smallest span covering fields `(offset, size)` of the structure `what`. Offsets
    /// and sizes come from BTF: a span that overflows or is larger than
    /// [`MAX_RECORD_BYTES`] is a `Malformed` error naming the structure.
    pub fn covering(what: &str, fields: &[(u32, u32)]) -> Result<Span> {
        let start = fields.iter().map(|f| f.0).min().unwrap_or(0);
        let end = fields.iter().try_fold(0u32, |end, f| Some(end.max(f.0.checked_add(f.1)?)));
        match end {
            Some(end) if end - start <= MAX_RECORD_BYTES => Ok(Span { start, end }),
            _ => Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed).with_reason(format_args!(
                "BTF: the fields read of `{what}` span more than {MAX_RECORD_BYTES} bytes (offsets {:?})",
                fields.iter().map(|f| f.0).collect::<Vec<_>>()
            ))),
        }
    }
}

/// The bytes of a span of a structure, read from memory.
#[derive(Clone, Debug)]
pub struct Record {
    start: u32,
    bytes: Vec<u8>,
}

impl Record {
    /// Reads `span` of the structure at `base`. Fails with a logged error naming `what` if any
    /// byte cannot be read.
    pub fn read<V: MemoryView>(mem: &mut V, base: Address, span: Span, what: &str) -> Result<Record> {
        let bytes = mem.read_raw(base + span.start as umem, (span.end - span.start) as usize).data().map_err(|e| {
            Error::new(ErrorOrigin::Os, e.kind).with_reason(format_args!("cannot read {what} at {base}"))
        })?;
        Ok(Record { start: span.start, bytes })
    }

    /// Reads `span` of the structures at each of `bases` in one batch; a structure that
    /// cannot be read whole is `None`.
    /// All of them together may be at most [`MAX_RECORD_BATCH_BYTES`] (`LimitExceeded`).
    pub fn read_many<V: MemoryView>(mem: &mut V, bases: &[Address], span: Span) -> Result<Vec<Option<Record>>> {
        let len = (span.end - span.start) as usize;
        let total = len.checked_mul(bases.len()).filter(|&t| t <= MAX_RECORD_BATCH_BYTES).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded).with_reason(format_args!(
                "{} structures of {len} bytes are more than {MAX_RECORD_BATCH_BYTES} bytes",
                bases.len()
            ))
        })?;
        let mut bytes = vec![0u8; total];
        let mut ok = vec![true; bases.len()];
        {
            let ops = bases.iter().zip(bytes.chunks_mut(len.max(1))).map(|(&base, buf)| {
                let addr = base + span.start as umem;
                MemOp { addr, tag: addr, buf: buf.into() }
            });
            let mut failed = |chunk: ReadChunk| {
                if let Some(i) =
                    bases.iter().position(|&b| chunk.tag >= b + span.start as umem && chunk.tag < b + span.end as umem)
                {
                    ok[i] = false;
                }
                true
            };
            MemBatch::with(ops, None, Some(&mut (&mut failed).into()), |b| mem.read_batch(b))?;
        }
        Ok(bytes
            .chunks(len.max(1))
            .zip(ok)
            .map(|(b, ok)| ok.then(|| Record { start: span.start, bytes: b.to_vec() }))
            .collect())
    }

    /// The bytes of the field at `offset` of `len` bytes (empty if outside the span).
    pub fn bytes(&self, offset: u32, len: usize) -> &[u8] {
        let from = offset.wrapping_sub(self.start) as usize;
        self.bytes.get(from..from.saturating_add(len)).unwrap_or_default()
    }

    /// The little-endian `u32` at `offset` (0 if outside the span).
    pub fn u32(&self, offset: u32) -> u32 {
        self.bytes(offset, 4).try_into().map_or(0, u32::from_le_bytes)
    }

    /// The little-endian `u64` at `offset` (0 if outside the span).
    pub fn u64(&self, offset: u32) -> u64 {
        self.bytes(offset, 8).try_into().map_or(0, u64::from_le_bytes)
    }

    /// The pointer at `offset`.
    pub fn addr(&self, offset: u32) -> Address {
        Address::new(self.u64(offset) as umem)
    }

    /// The NUL-terminated text in the `len`-byte array at `offset`.
    pub fn text(&self, offset: u32, len: usize) -> String {
        let raw = self.bytes(offset, len);
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::dummy_memory;
    use crate::mem::PhysicalMemory;

    #[test]
    fn spans_and_batches_are_bounded() {
        assert_eq!(Span::covering("s", &[(8, 8), (0, 4)]).unwrap(), Span { start: 0, end: 16 });
        assert_eq!(Span::covering("s", &[(u32::MAX, 8)]).unwrap_err().kind, ErrorKind::Malformed, "overflow");
        assert_eq!(Span::covering("s", &[(0, 8), (1 << 20, 8)]).unwrap_err().kind, ErrorKind::Malformed);
        let mut mem = dummy_memory(0x1000).into_phys_view();
        let span = Span { start: 0, end: MAX_RECORD_BYTES };
        let bases = vec![Address::NULL; MAX_RECORD_BATCH_BYTES / MAX_RECORD_BYTES as usize + 1];
        assert_eq!(Record::read_many(&mut mem, &bases, span).unwrap_err().kind, ErrorKind::LimitExceeded);
        let small = Record::read_many(&mut mem, &bases[..2], Span { start: 0, end: 16 }).unwrap();
        assert!(small.iter().all(Option::is_some));
    }
}
