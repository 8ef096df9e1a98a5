//! Sparse physical layouts: which guest ranges exist and where their bytes live.
//!
//! A [`MemoryMap`] is a sorted list of non-overlapping [`MemMapping`]s, each mapping a guest
//! range to a backing offset (an offset into a file, or a host address). Lookups are binary
//! searches; a request that straddles holes or mapping boundaries is split into
//! [`MapPiece`]s that together cover it exactly once.

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::types::{umem, Address};

/// One mapped range: `size` bytes at guest address `base` live at `backing`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemMapping {
    /// First guest address of the range.
    pub base: Address,
    /// Length in bytes (never zero in a map).
    pub size: umem,
    /// Where the first byte lives in the backing store (file offset or host address).
    pub backing: umem,
}

impl MemMapping {
    /// One past the last guest address (saturating at the top of the space).
    pub fn end(&self) -> Address {
        self.base.checked_add(self.size).unwrap_or(Address::INVALID)
    }

    fn contains(&self, addr: Address) -> bool {
        addr >= self.base && addr - self.base < self.size
    }
}

/// Called with each [`MemMapping`] of a memory map; returns `false` to stop.
pub type MemMappingCallback<'a> = cglue::callback::OpaqueCallback<'a, MemMapping>;

/// A piece of a request cut along the map.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MapPiece {
    /// `len` bytes at `offset` into the request are backed, starting at `backing`.
    Mapped {
        /// Where the piece starts in the request.
        offset: usize,
        /// Its length.
        len: usize,
        /// Where it starts in the backing.
        backing: umem,
    },
    /// `len` bytes at `offset` into the request are not mapped.
    Hole {
        /// Where the piece starts in the request.
        offset: usize,
        /// Its length.
        len: usize,
    },
}

/// A sparse guest-physical layout, sorted by guest address, without overlaps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryMap {
    ranges: Vec<MemMapping>,
}

impl MemoryMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of `size` bytes at guest 0, backed from offset 0.
    pub fn identity(size: umem) -> Self {
        let mut map = Self::new();
        if size > 0 {
            map.ranges.push(MemMapping { base: Address::NULL, size, backing: 0 });
        }
        map
    }

    /// Adds a range. Fails on empty or wrapping ranges and on overlap with an existing range;
    /// a range adjacent to its predecessor with contiguous backing is merged into it.
    pub fn push(&mut self, base: Address, size: umem, backing: umem) -> Result<()> {
        if size == 0 {
            return Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::InvalidArgument)
                .with_reason("empty memory map range"));
        }
        if base.checked_add(size).is_none() || backing.checked_add(size).is_none() {
            return Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::OutOfBounds)
                .with_reason(format_args!("memory map range {base}+{size:#x} wraps around")));
        }
        let new = MemMapping { base, size, backing };
        let idx = self.ranges.partition_point(|r| r.base < base);
        let overlaps_prev = idx > 0 && self.ranges[idx - 1].end() > base;
        let overlaps_next = idx < self.ranges.len() && self.ranges[idx].base < new.end();
        if overlaps_prev || overlaps_next {
            return Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::InvalidArgument)
                .with_reason(format_args!("memory map range {base}+{size:#x} overlaps another")));
        }
        if idx > 0 {
            let prev = &mut self.ranges[idx - 1];
            if prev.end() == base && prev.backing + prev.size == backing {
                prev.size += size;
                return Ok(());
            }
        }
        self.ranges.insert(idx, new);
        Ok(())
    }

    /// Calls back with each range in ascending order until the callback returns `false`.
    pub fn report(&self, mut callback: MemMappingCallback) {
        for range in &self.ranges {
            if !callback.call(*range) {
                break;
            }
        }
    }

    /// The ranges, sorted by guest address.
    pub fn ranges(&self) -> &[MemMapping] {
        &self.ranges
    }

    /// True if nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The highest mapped guest address, or `NULL` for an empty map.
    pub fn max_address(&self) -> Address {
        self.ranges.last().map(|r| r.end() - 1 as umem).unwrap_or(Address::NULL)
    }

    /// The sum of all range sizes.
    pub fn real_size(&self) -> umem {
        self.ranges.iter().fold(0 as umem, |acc, r| acc.saturating_add(r.size))
    }

    /// The backing location of `addr` and how many bytes follow it in the same range.
    #[inline]
    pub fn lookup(&self, addr: Address) -> Option<(umem, umem)> {
        let idx = self.ranges.partition_point(|r| r.base <= addr);
        let r = self.ranges.get(idx.checked_sub(1)?)?;
        r.contains(addr).then(|| {
            let off = addr - r.base;
            (r.backing + off, r.size - off)
        })
    }

    /// Cuts the request `[addr, addr + len)` along the map, calling `f` for each piece in
    /// address order. The pieces cover the request exactly once.
    pub fn split(&self, addr: Address, len: usize, mut f: impl FnMut(MapPiece)) {
        let mut offset = 0usize;
        let mut idx = self.ranges.partition_point(|r| r.end() <= addr);
        while offset < len {
            let cur = addr + offset;
            let remaining = len - offset;
            // A request running past the top of the address space is a hole from there on.
            if cur < addr {
                f(MapPiece::Hole { offset, len: remaining });
                return;
            }
            match self.ranges.get(idx) {
                Some(r) if r.contains(cur) => {
                    let avail = r.size - (cur - r.base);
                    let take = clamp(avail, remaining);
                    f(MapPiece::Mapped { offset, len: take, backing: r.backing + (cur - r.base) });
                    offset += take;
                    idx += 1;
                }
                Some(r) => {
                    let take = clamp(r.base - cur, remaining);
                    f(MapPiece::Hole { offset, len: take });
                    offset += take;
                }
                None => {
                    f(MapPiece::Hole { offset, len: remaining });
                    return;
                }
            }
        }
    }
}

fn clamp(avail: umem, want: usize) -> usize {
    if avail < want as umem {
        avail as usize
    } else {
        want
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> MemoryMap {
        let mut m = MemoryMap::new();
        m.push(Address::new(0x1000), 0x1000, 0).unwrap();
        m.push(Address::new(0x4000), 0x2000, 0x1000).unwrap();
        m.push(Address::new(0x10000), 0x1000, 0x8000).unwrap();
        m
    }

    #[test]
    fn lookup_finds_ranges_and_holes() {
        let m = sample();
        assert_eq!(m.lookup(Address::new(0xfff)), None);
        assert_eq!(m.lookup(Address::new(0x1000)), Some((0, 0x1000)));
        assert_eq!(m.lookup(Address::new(0x1fff)), Some((0xfff, 1)));
        assert_eq!(m.lookup(Address::new(0x2000)), None);
        assert_eq!(m.lookup(Address::new(0x5000)), Some((0x2000, 0x1000)));
        assert_eq!(m.lookup(Address::new(0x11000)), None);
        assert_eq!(m.max_address(), Address::new(0x10fff));
        assert_eq!(m.real_size(), 0x4000);
    }

    #[test]
    fn rejects_overlap_empty_and_wrap() {
        let mut m = sample();
        assert!(m.push(Address::new(0x1800), 0x100, 0x9000).is_err());
        assert!(m.push(Address::new(0x3000), 0x1001, 0x9000).is_err());
        assert!(m.push(Address::new(0x3000), 0, 0x9000).is_err());
        assert!(m.push(Address::new(umem::MAX - 1), 0x10, 0).is_err());
        assert!(m.push(Address::new(0x3000), 0x1000, 0x9000).is_ok());
    }

    #[test]
    fn adjacent_contiguous_ranges_merge() {
        let mut m = MemoryMap::new();
        m.push(Address::new(0), 0x1000, 0x100).unwrap();
        m.push(Address::new(0x1000), 0x1000, 0x1100).unwrap();
        assert_eq!(m.ranges().len(), 1);
        m.push(Address::new(0x2000), 0x1000, 0x9000).unwrap();
        assert_eq!(m.ranges().len(), 2);
    }

    #[test]
    fn split_straddles_holes() {
        let m = sample();
        let mut pieces = vec![];
        m.split(Address::new(0x1f00), 0x2200, |p| pieces.push(p));
        assert_eq!(
            pieces,
            vec![
                MapPiece::Mapped { offset: 0, len: 0x100, backing: 0xf00 },
                MapPiece::Hole { offset: 0x100, len: 0x2000 },
                MapPiece::Mapped { offset: 0x2100, len: 0x100, backing: 0x1000 },
            ]
        );
    }

    #[test]
    fn split_near_top_of_space() {
        let mut m = MemoryMap::new();
        m.push(Address::new(umem::MAX - 0x1fff), 0x1000, 0).unwrap();
        let mut pieces = vec![];
        m.split(Address::new(umem::MAX - 0x100f), 0x20, |p| pieces.push(p));
        assert_eq!(
            pieces,
            vec![MapPiece::Mapped { offset: 0, len: 0x10, backing: 0xff0 }, MapPiece::Hole { offset: 0x10, len: 0x10 },]
        );
        pieces.clear();
        m.split(Address::new(umem::MAX - 0xf), 0x20, |p| pieces.push(p));
        assert_eq!(pieces, vec![MapPiece::Hole { offset: 0, len: 0x20 }]);
    }

    proptest! {
        /// Splitting agrees with byte-by-byte lookups, for random maps and requests.
        #[test]
        fn split_matches_lookup(
            gaps in proptest::collection::vec((0u64..0x3000, 1u64..0x3000), 0..8),
            start in 0u64..0x20000,
            len in 0usize..0x8000,
        ) {
            let mut m = MemoryMap::new();
            let mut cursor = 0 as umem;
            let mut backing = 0 as umem;
            for (gap, size) in gaps {
                cursor += gap as umem;
                m.push(Address::new(cursor), size as umem, backing).unwrap();
                cursor += size as umem;
                backing += size as umem + 0x10;
            }
            let mut next = 0usize;
            m.split(Address::new(start as umem), len, |p| {
                let (offset, plen) = match p {
                    MapPiece::Mapped { offset, len, backing } => {
                        for i in [0, len - 1] {
                            let a = Address::new(start as umem) + (offset + i) as umem;
                            assert_eq!(m.lookup(a).map(|x| x.0), Some(backing + i as umem));
                        }
                        (offset, len)
                    }
                    MapPiece::Hole { offset, len } => {
                        for i in [0, len - 1] {
                            let a = Address::new(start as umem) + (offset + i) as umem;
                            assert_eq!(m.lookup(a), None);
                        }
                        (offset, len)
                    }
                };
                assert_eq!(offset, next);
                assert!(plen > 0);
                next += plen;
            });
            prop_assert_eq!(next, len);
        }
    }
}
