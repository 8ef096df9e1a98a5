//! Bounds-checked reads from untrusted bytes, shared by the dump parsers.
//!
//! Every read names what it read from in its error, so a truncated structure deep inside a
//! file still produces a message saying which structure ended too early.

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// A byte slice read at explicit offsets, in one byte order.
#[derive(Copy, Clone)]
pub(crate) struct ByteReader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    /// Reads `bytes`, called `what` in error messages.
    pub(crate) fn new(bytes: &'a [u8], big_endian: bool, what: &'static str) -> Self {
        ByteReader { bytes, big_endian, what }
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// `len` bytes at `offset`, or a `Truncated` error if they run past the end.
    pub(crate) fn bytes(&self, offset: u64, len: u64) -> Result<&'a [u8]> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(&self.bytes[offset as usize..end as usize]),
            _ => Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                "{}: {len:#x} bytes at offset {offset:#x} run past its end ({:#x} bytes)",
                self.what,
                self.len()
            ))),
        }
    }

    /// A reader of `len` bytes at `offset`, in the same byte order, called `what`.
    pub(crate) fn sub(&self, offset: u64, len: u64, what: &'static str) -> Result<Self> {
        Ok(ByteReader { bytes: self.bytes(offset, len)?, big_endian: self.big_endian, what })
    }

    /// An unsigned integer of `size` bytes (1 to 8) at `offset`.
    pub(crate) fn uint(&self, offset: u64, size: usize) -> Result<u64> {
        let raw = self.bytes(offset, size as u64)?;
        let fold = |acc: u64, b: &u8| acc << 8 | u64::from(*b);
        Ok(if self.big_endian { raw.iter().fold(0, fold) } else { raw.iter().rev().fold(0, fold) })
    }

    /// A `u16` at `offset`.
    pub(crate) fn u16(&self, offset: u64) -> Result<u16> {
        self.uint(offset, 2).map(|v| v as u16)
    }

    /// A `u32` at `offset`.
    pub(crate) fn u32(&self, offset: u64) -> Result<u32> {
        self.uint(offset, 4).map(|v| v as u32)
    }

    /// A `u64` at `offset`.
    pub(crate) fn u64(&self, offset: u64) -> Result<u64> {
        self.uint(offset, 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_byte_orders_and_checks_bounds() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let le = ByteReader::new(&data, false, "test");
        let be = ByteReader::new(&data, true, "test");
        assert_eq!(le.u16(0).unwrap(), 0x0201);
        assert_eq!(be.u16(0).unwrap(), 0x0102);
        assert_eq!(le.u32(5).unwrap(), 0x0908_0706);
        assert_eq!(be.u64(1).unwrap(), 0x0203_0405_0607_0809);
        assert_eq!(le.u64(2).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(le.bytes(u64::MAX, 2).unwrap_err().kind, ErrorKind::Truncated);
        let sub = be.sub(4, 4, "sub").unwrap();
        assert_eq!(sub.u32(0).unwrap(), 0x0506_0708);
        assert!(sub.u16(3).is_err());
    }
}
