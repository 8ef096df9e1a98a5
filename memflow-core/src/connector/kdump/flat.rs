//! The bytes of a diskdump, whether the file is the dump itself or makedumpfile's flattened
//! stream of it (records placing pieces of the dump at offsets, written where seeking is not
//! possible, e.g. over ssh), read in place without rearranging the file.

use std::borrow::Cow;

use super::format::flat;
use crate::connector::bytes::ByteReader;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::alloc::reserve;

/// One record of a flattened stream: `len` bytes of the dump at `offset`, held in the file at
/// `file`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    offset: u64,
    len: u64,
    file: u64,
}

/// Where the bytes of the dump are in the file.
#[derive(Debug)]
pub(crate) enum DumpBytes {
    /// The file is the dump.
    Plain,
    /// A flattened stream: its records sorted by dump offset, none overlapping.
    Flat(Vec<Record>),
}

/// True if `bytes` starts with the header of a flattened stream.
pub(crate) fn is_flattened(bytes: &[u8]) -> bool {
    bytes.starts_with(flat::SIGNATURE)
}

impl DumpBytes {
    /// Indexes the records of the flattened stream `file`. Every byte of the file must belong
    /// to the header, a record or the end record; records must not overlap.
    pub(crate) fn flattened(file: &[u8]) -> Result<Self> {
        let r = ByteReader::new(file, true, "flattened makedumpfile stream");
        let len = r.len();
        if len < flat::HEADER_SIZE {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                "the flattened makedumpfile stream is {len:#x} bytes, shorter than its {:#x} byte header",
                flat::HEADER_SIZE
            )));
        }
        let (kind, version) = (r.u64(16)? as i64, r.u64(24)? as i64);
        if kind != flat::TYPE || version != flat::VERSION {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
                "flattened makedumpfile stream of type {kind} version {version}; only type 1 version 1 is known"
            )));
        }
        let mut records: Vec<Record> = Vec::new();
        let mut at = flat::HEADER_SIZE;
        loop {
            if len - at < flat::RECORD_HEADER_SIZE {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                    "the flattened stream ends at file offset {at:#x} without its end record"
                )));
            }
            let (offset, size) = (r.u64(at)? as i64, r.u64(at + 8)? as i64);
            if offset == flat::END && size == flat::END {
                at += flat::RECORD_HEADER_SIZE;
                break;
            }
            let data = at + flat::RECORD_HEADER_SIZE;
            if offset < 0 || size < 0 || size as u64 > len - data || (offset as u64).checked_add(size as u64).is_none()
            {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                    "flattened record at file offset {at:#x} places {size:#x} bytes at dump offset {offset:#x}: \
                     negative, past the end of the {len:#x} byte file, or past the 64-bit range"
                )));
            }
            if size > 0 {
                reserve(&mut records, 1, ErrorOrigin::FileFormat, "the flattened record index")?;
                records.push(Record { offset: offset as u64, len: size as u64, file: data });
            }
            at = data + size as u64;
        }
        if at != len {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                "{:#x} bytes follow the end record of the flattened stream at file offset {at:#x}",
                len - at
            )));
        }
        records.sort_unstable_by_key(|r| r.offset);
        // Adjacent records that are also adjacent in the file become one.
        let mut merged: Vec<Record> = Vec::with_capacity(records.len());
        for rec in records {
            match merged.last_mut() {
                Some(last) if rec.offset < last.offset + last.len => {
                    return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                        "flattened records at file offsets {:#x} and {:#x} both write dump offset {:#x}",
                        last.file, rec.file, rec.offset
                    )));
                }
                Some(last) if rec.offset == last.offset + last.len && rec.file == last.file + last.len => {
                    last.len += rec.len;
                }
                _ => merged.push(rec),
            }
        }
        Ok(DumpBytes::Flat(merged))
    }

    /// `len` bytes at dump offset `offset`, called `what` in errors: borrowed from the file
    /// when they are stored in one piece.
    pub(crate) fn read<'a>(&self, file: &'a [u8], offset: u64, len: u64, what: &str) -> Result<Cow<'a, [u8]>> {
        let missing = || {
            Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                "{what}: {len:#x} bytes at dump offset {offset:#x} are not (all) in the file"
            ))
        };
        let records = match self {
            DumpBytes::Plain => {
                let end = offset.checked_add(len).filter(|&e| e <= file.len() as u64).ok_or_else(missing)?;
                return Ok(Cow::Borrowed(&file[offset as usize..end as usize]));
            }
            DumpBytes::Flat(records) => records,
        };
        let end = offset.checked_add(len).ok_or_else(missing)?;
        let first = records.partition_point(|r| r.offset + r.len <= offset);
        let rec = records.get(first).filter(|r| r.offset <= offset).ok_or_else(missing)?;
        if end <= rec.offset + rec.len {
            let start = (rec.file + offset - rec.offset) as usize;
            return Ok(Cow::Borrowed(&file[start..start + len as usize]));
        }
        // Spread over several records: each must start where the previous one ended.
        if len > file.len() as u64 {
            return Err(missing());
        }
        let mut out = Vec::new();
        reserve(&mut out, len as usize, ErrorOrigin::FileFormat, what)?;
        let mut at = offset;
        for rec in &records[first..] {
            if at == end {
                break;
            }
            if rec.offset != at && at != offset {
                return Err(missing());
            }
            let take = (rec.offset + rec.len).min(end) - at;
            let start = (rec.file + at - rec.offset) as usize;
            out.extend_from_slice(&file[start..start + take as usize]);
            at += take;
        }
        if at != end {
            return Err(missing());
        }
        Ok(Cow::Owned(out))
    }

    /// The size of the dump: the file's, or the end of the last record.
    pub(crate) fn len(&self, file: &[u8]) -> u64 {
        match self {
            DumpBytes::Plain => file.len() as u64,
            DumpBytes::Flat(records) => records.last().map_or(0, |r| r.offset + r.len),
        }
    }
}

/// A flattened stream of `pieces` (dump offset, bytes), in the given order (test data, and
/// what a writer of the format produces).
#[cfg(test)]
pub(crate) fn flatten(pieces: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; flat::HEADER_SIZE as usize];
    out[..12].copy_from_slice(flat::SIGNATURE);
    out[16..24].copy_from_slice(&flat::TYPE.to_be_bytes());
    out[24..32].copy_from_slice(&flat::VERSION.to_be_bytes());
    for (offset, bytes) in pieces {
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&flat::END.to_be_bytes());
    out.extend_from_slice(&flat::END.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pieces_in_place_and_across_records() {
        let file = flatten(&[(0x10, b"world"), (0, b"hello "), (6, b"big "), (0x20, b"!")]);
        let bytes = DumpBytes::flattened(&file).unwrap();
        assert_eq!(bytes.len(&file), 0x21);
        assert_eq!(&*bytes.read(&file, 0, 6, "t").unwrap(), b"hello ");
        assert_eq!(&*bytes.read(&file, 2, 8, "t").unwrap(), b"llo big ");
        assert_eq!(&*bytes.read(&file, 0x11, 3, "t").unwrap(), b"orl");
        // Holes between records are missing, not zeros.
        assert_eq!(bytes.read(&file, 8, 4, "t").unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(bytes.read(&file, 0x14, 2, "t").unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(bytes.read(&file, u64::MAX, 2, "t").unwrap_err().kind, ErrorKind::Truncated);
    }

    #[test]
    fn broken_streams_are_refused() {
        let good = flatten(&[(0, b"abc")]);
        assert!(DumpBytes::flattened(&good).is_ok());
        let kind = |f: &[u8]| DumpBytes::flattened(f).unwrap_err().kind;
        assert_eq!(kind(&good[..good.len() - 1]), ErrorKind::Truncated);
        assert_eq!(kind(&good[..100]), ErrorKind::Truncated);
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(kind(&trailing), ErrorKind::Malformed);
        assert_eq!(kind(&flatten(&[(0, b"abc"), (2, b"x")])), ErrorKind::Malformed);
        let mut version = good.clone();
        version[31] = 2;
        assert_eq!(kind(&version), ErrorKind::Unsupported);
        // A record size past the end of the file, and a negative offset.
        let mut size = good.clone();
        size[4096 + 8] = 0x7f;
        assert_eq!(kind(&size), ErrorKind::Malformed);
        let mut negative = good;
        negative[4096] = 0x80;
        assert_eq!(kind(&negative), ErrorKind::Malformed);
    }
}
