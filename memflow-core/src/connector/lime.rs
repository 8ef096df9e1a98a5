//! LiME memory dumps: a sequence of ranges, each a 32-byte header followed by its bytes.
//!
//! Header (little endian): magic `0x4C694D45` (u32), version 1 (u32), first address `s_addr`
//! (u64), last address `e_addr` (u64, inclusive), 8 reserved bytes.

use super::bytes::ByteReader;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::alloc::reserve;
use crate::mem::MemoryMap;
use crate::types::{umem, Address};

/// The magic number at the start of every range header.
pub const LIME_MAGIC: u32 = 0x4C69_4D45;
/// The only header version there is.
pub const LIME_VERSION: u32 = 1;
/// Size of a range header in bytes.
pub const LIME_HEADER_SIZE: u64 = 32;
/// The most ranges accepted in one file: LiME writes one per System RAM range, AVML (without
/// `--compress`) one per 16 MiB of RAM, so this covers 1 TiB of AVML capture.
pub const MAX_RANGES: usize = 65536;

/// True if `bytes` starts with a LiME range header magic.
pub fn is_lime(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&LIME_MAGIC.to_le_bytes()[..])
}

/// The header of a range of guest physical memory from `s_addr` to `e_addr` inclusive.
pub fn header(s_addr: u64, e_addr: u64) -> [u8; LIME_HEADER_SIZE as usize] {
    let mut h = [0u8; LIME_HEADER_SIZE as usize];
    h[0..4].copy_from_slice(&LIME_MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&LIME_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&s_addr.to_le_bytes());
    h[16..24].copy_from_slice(&e_addr.to_le_bytes());
    h
}

/// Parses a LiME file held in `bytes` into its guest physical layout (backing offsets are
/// file offsets). Every byte of the file must belong to a header or a range.
pub fn parse(bytes: &[u8]) -> Result<MemoryMap> {
    let file = ByteReader::new(bytes, false, "LiME file");
    let len = file.len();
    // (start, size, file offset, range number), put in the map in address order at the end.
    let mut ranges: Vec<(u64, u64, u64, usize)> = Vec::new();
    let mut off = 0u64;
    let mut n = 0usize;
    while off < len {
        if n == MAX_RANGES {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded).with_reason(format_args!(
                "more than {MAX_RANGES} LiME ranges: another header follows at file offset {off:#x}"
            )));
        }
        if len - off < LIME_HEADER_SIZE {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                "LiME range header #{n} at file offset {off:#x}: only {:#x} of its 32 bytes are in the file",
                len - off
            )));
        }
        let magic = file.u32(off)?;
        let version = file.u32(off + 4)?;
        let start = file.u64(off + 8)?;
        let last = file.u64(off + 16)?;
        if magic != LIME_MAGIC {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                "LiME range header #{n} at file offset {off:#x} has magic {magic:#x} instead of {LIME_MAGIC:#x}"
            )));
        }
        if version != LIME_VERSION {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
                "LiME range header #{n} at file offset {off:#x} has version {version}; only 1 is known"
            )));
        }
        if last < start {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                .with_reason(format_args!("LiME range #{n} ends at {last:#x}, before it starts at {start:#x}")));
        }
        let data = off + LIME_HEADER_SIZE;
        // `last - start + 1` bytes, compared without overflowing at the top of the space.
        if last - start >= len - data {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                    "LiME range #{n} ({start:#x}..={last:#x}) at file offset {data:#x} runs past the end of the {len:#x} byte file"
                )));
        }
        let size = last - start + 1;
        if last == u64::MAX {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::OutOfBounds).with_reason(format_args!(
                "LiME range #{n} ({start:#x}..={last:#x}) reaches the top of the 64-bit address space"
            )));
        }
        reserve(&mut ranges, 1, ErrorOrigin::FileFormat, "the LiME range list")?;
        ranges.push((start, size, data, n));
        off = data + size;
        n += 1;
    }
    if n == 0 {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated)
            .with_reason("the LiME input is empty: no range header"));
    }
    // In address order, every push appends (or merges): no quadratic insertion for files
    // whose ranges come in another order.
    ranges.sort_unstable_by_key(|r| r.0);
    let mut map = MemoryMap::new();
    for (start, size, data, n) in ranges {
        map.push(Address::new(umem::from(start)), umem::from(size), umem::from(data)).map_err(|_| {
            Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                "LiME range #{n} ({start:#x}..={:#x}) at file offset {:#x} overlaps another range",
                start + size - 1,
                data - LIME_HEADER_SIZE
            ))
        })?;
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{lime_file, pattern};
    use super::*;
    use proptest::prelude::*;

    fn kind(bytes: &[u8]) -> ErrorKind {
        parse(bytes).unwrap_err().kind
    }

    #[test]
    fn ranges_become_the_map() {
        let file = lime_file(&[(0x1000, pattern(0x100, 1)), (0x0, pattern(0x10, 2))]);
        assert!(is_lime(&file));
        let map = parse(&file).unwrap();
        let r = map.ranges();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].base, r[0].size, r[0].backing), (Address::new(0), 0x10, 0x120 + 0x20));
        assert_eq!((r[1].base, r[1].size, r[1].backing), (Address::new(0x1000), 0x100, 0x20));
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert_eq!(kind(&[]), ErrorKind::Truncated);
        let good = lime_file(&[(0x1000, pattern(0x100, 1))]);
        // Cut header, cut data, trailing bytes.
        assert_eq!(kind(&good[..20]), ErrorKind::Truncated);
        assert_eq!(kind(&good[..good.len() - 1]), ErrorKind::Truncated);
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 5]);
        assert_eq!(kind(&trailing), ErrorKind::Truncated);
        let mut garbage = good.clone();
        garbage.extend_from_slice(&[0; 32]);
        assert_eq!(kind(&garbage), ErrorKind::Malformed);
        // End before start.
        let mut backwards = header(0x2000, 0x1fff).to_vec();
        backwards.extend_from_slice(&[0; 0x10]);
        assert_eq!(kind(&backwards), ErrorKind::Malformed);
        // Huge ranges.
        assert_eq!(kind(&header(0, u64::MAX)), ErrorKind::Truncated);
        assert_eq!(kind(&header(1, u64::MAX)), ErrorKind::Truncated);
        let mut top = header(u64::MAX, u64::MAX).to_vec();
        top.push(0);
        assert_eq!(kind(&top), ErrorKind::OutOfBounds);
        // Wrong version.
        let mut v2 = good.clone();
        v2[4] = 2;
        assert_eq!(kind(&v2), ErrorKind::Unsupported);
        // Overlap.
        let overlap = lime_file(&[(0x1000, pattern(0x100, 1)), (0x10ff, pattern(0x10, 2))]);
        assert_eq!(kind(&overlap), ErrorKind::Malformed);
    }

    #[test]
    fn too_many_ranges_are_refused() {
        let ranges: Vec<_> = (0..=MAX_RANGES as u64).map(|i| (i * 2, vec![0u8])).collect();
        assert_eq!(kind(&lime_file(&ranges)), ErrorKind::LimitExceeded);
        assert!(parse(&lime_file(&ranges[..MAX_RANGES])).is_ok());
    }

    proptest! {
        /// Mutated LiME files never panic, and what parses maps only bytes that exist.
        #[test]
        fn mutated_files_never_panic(
            words in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut file = lime_file(&[(0, pattern(0x40, 1)), (0x1000, pattern(0x20, 2)), (0x800, pattern(0x8, 3))]);
            for (at, v) in words {
                let i = at.index(file.len() - 8);
                file[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            file.truncate(file.len() - cut.index(file.len()) / 4);
            if let Ok(map) = parse(&file) {
                for r in map.ranges() {
                    prop_assert!(r.backing + r.size <= file.len() as umem);
                }
            }
        }
    }
}
