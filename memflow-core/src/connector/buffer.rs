//! Physical memory served from bytes in this process (a memory-mapped file or a buffer),
//! laid out by a [`MemoryMap`]. Every file-backed connector and the synthetic memory are one
//! of these, so the hot read path exists exactly once.

use std::sync::Arc;

use cglue::slice::{CSliceMut, CSliceRef};

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::{MapPiece, MemBatch, MemoryMap, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata, SplitBuf};
use crate::types::{umem, Address};

/// Owns the bytes a [`BufferMemory`] points into.
pub trait Backing: Send + Sync + 'static {
    /// Start and length of the bytes.
    fn bytes(&self) -> (*const u8, usize);
    /// True if the bytes may be written through the pointer.
    fn writable(&self) -> bool;
}

impl Backing for memmap2::Mmap {
    fn bytes(&self) -> (*const u8, usize) {
        (self.as_ptr(), self.len())
    }
    fn writable(&self) -> bool {
        false
    }
}

impl Backing for memmap2::MmapMut {
    fn bytes(&self) -> (*const u8, usize) {
        (self.as_ptr(), self.len())
    }
    fn writable(&self) -> bool {
        true
    }
}

/// A heap buffer that may be written through its pointer.
pub struct HeapBacking(Box<[u8]>);

impl HeapBacking {
    /// `size` zero bytes.
    pub fn zeroed(size: usize) -> Self {
        HeapBacking(vec![0u8; size].into_boxed_slice())
    }
}

impl Backing for HeapBacking {
    fn bytes(&self) -> (*const u8, usize) {
        (self.0.as_ptr(), self.0.len())
    }
    fn writable(&self) -> bool {
        true
    }
}

/// Physical memory backed by bytes in this process.
///
/// Clones share the bytes, so several threads can read one dump. Writes through clones go to
/// the same bytes without locking, as writes to real physical memory from several CPUs would.
#[derive(Clone)]
pub struct BufferMemory {
    /// Keeps the bytes behind `base` alive.
    _backing: Arc<dyn Backing>,
    base: *mut u8,
    len: usize,
    map: Arc<MemoryMap>,
    readonly: bool,
}

// SAFETY: the pointer stays valid while `backing` lives, and `Backing` is Send + Sync.
unsafe impl Send for BufferMemory {}
unsafe impl Sync for BufferMemory {}

fn buf_err(kind: ErrorKind) -> Error {
    Error::new(ErrorOrigin::PhysicalMemory, kind)
}

impl BufferMemory {
    /// Serves `backing` laid out by `map`. Every mapping must lie inside the backing bytes.
    pub fn new(backing: Arc<dyn Backing>, map: MemoryMap) -> Result<Self> {
        let (ptr, len) = backing.bytes();
        for r in map.ranges() {
            let end = r.backing.checked_add(r.size);
            if end.map_or(true, |e| e > len as umem) {
                return Err(buf_err(ErrorKind::OutOfBounds).log_warn(format_args!(
                    "range {}+{:#x} at offset {:#x} lies outside the {len:#x} backing bytes",
                    r.base, r.size, r.backing
                )));
            }
        }
        let readonly = !backing.writable();
        Ok(BufferMemory { base: ptr as *mut u8, len, _backing: backing, map: Arc::new(map), readonly })
    }

    /// Serves all of `backing` at guest address 0.
    pub fn identity(backing: Arc<dyn Backing>) -> Result<Self> {
        let size = backing.bytes().1 as umem;
        Self::new(backing, MemoryMap::identity(size))
    }

    /// Refuses writes even if the backing allows them.
    pub fn set_readonly(&mut self) {
        self.readonly = true;
    }

    /// The layout.
    pub fn map(&self) -> &MemoryMap {
        &self.map
    }

    /// Cuts `buf` at `addr` along the map and calls `hit` or `miss` for each piece.
    #[inline]
    fn for_pieces<B: SplitBuf>(
        &self,
        addr: Address,
        tag: Address,
        buf: B,
        mut hit: impl FnMut(usize, Address, B),
        mut miss: impl FnMut(Address, B),
    ) {
        // Fast path: the whole request lies in one mapping.
        if let Some((off, avail)) = self.map.lookup(addr) {
            if avail >= buf.len() as umem {
                hit(off as usize, tag, buf);
                return;
            }
        }
        let mut rest = Some(buf);
        let mut done = 0usize;
        self.map.split(addr, rest.as_ref().map_or(0, |b| b.len()), |piece| {
            let (len, backing) = match piece {
                MapPiece::Mapped { len, backing, .. } => (len, Some(backing)),
                MapPiece::Hole { len, .. } => (len, None),
            };
            let (head, tail) = rest.take().expect("pieces never exceed the request").split_at(len);
            let piece_tag = tag + done;
            match backing {
                Some(off) => hit(off as usize, piece_tag, head),
                None => miss(piece_tag, head),
            }
            done += len;
            rest = Some(tail);
        });
    }
}

impl PhysicalMemory for BufferMemory {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        let MemBatch { ops, mut on_ok, mut on_fail } = batch;
        for op in ops {
            self.for_pieces(
                op.addr.address,
                op.tag,
                op.buf,
                |off, tag, mut buf: CSliceMut<u8>| {
                    // SAFETY: `new` checked that every mapping lies within `len` bytes.
                    let src = unsafe { core::slice::from_raw_parts(self.base.add(off), buf.len()) };
                    buf.copy_from_slice(src);
                    crate::mem::report(&mut on_ok, tag, buf);
                },
                |tag, buf| crate::mem::report(&mut on_fail, tag, buf),
            );
        }
        Ok(())
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        let MemBatch { ops, mut on_ok, mut on_fail } = batch;
        for op in ops {
            if self.readonly {
                crate::mem::report(&mut on_fail, op.tag, op.buf);
                continue;
            }
            self.for_pieces(
                op.addr.address,
                op.tag,
                op.buf,
                |off, tag, buf: CSliceRef<u8>| {
                    // SAFETY: bounds as for reads; the backing is writable (not read-only).
                    unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), self.base.add(off), buf.len()) };
                    crate::mem::report(&mut on_ok, tag, buf);
                },
                |tag, buf| crate::mem::report(&mut on_fail, tag, buf),
            );
        }
        Ok(())
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        PhysicalMemoryMetadata {
            max_address: self.map.max_address(),
            real_size: self.map.real_size(),
            readonly: self.readonly,
            ideal_batch_size: u32::MAX,
        }
    }
}

impl core::fmt::Debug for BufferMemory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BufferMemory")
            .field("len", &self.len)
            .field("ranges", &self.map.ranges().len())
            .field("readonly", &self.readonly)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{PartialError, PartialResultExt};
    use crate::mem::{MemoryView, PhysicalMemory};
    use crate::types::PhysicalAddress;
    use proptest::prelude::*;

    /// Guest 0x1000..0x3000 and 0x5000..0x6000, each byte holding (offset * 7) as u8.
    fn holey() -> BufferMemory {
        let mut map = MemoryMap::new();
        map.push(Address::new(0x1000), 0x2000, 0).unwrap();
        map.push(Address::new(0x5000), 0x1000, 0x2000).unwrap();
        let mut mem = crate::connector::dummy_memory_with_map(map).unwrap();
        let pattern: Vec<u8> = (0..0x3000usize).map(|i| (i * 7) as u8).collect();
        let raw = BufferMemory::identity(mem._backing.clone()).unwrap();
        raw.clone().phys_write_raw(PhysicalAddress::plain(Address::NULL), &pattern).unwrap();
        mem.readonly = false;
        mem
    }

    fn expected(addr: umem) -> Option<u8> {
        match addr {
            0x1000..=0x2fff => Some(((addr - 0x1000) as usize * 7) as u8),
            0x5000..=0x5fff => Some(((addr - 0x5000 + 0x2000) as usize * 7) as u8),
            _ => None,
        }
    }

    #[test]
    fn rejects_maps_outside_the_backing() {
        let mut map = MemoryMap::new();
        map.push(Address::new(0), 0x2000, 0).unwrap();
        let err = BufferMemory::new(Arc::new(HeapBacking::zeroed(0x1000)), map).unwrap_err();
        assert_eq!(err.kind, ErrorKind::OutOfBounds);
    }

    #[test]
    fn readonly_refuses_writes() {
        let mut mem = holey();
        mem.set_readonly();
        let res = mem.phys_write(PhysicalAddress::plain(Address::new(0x1000)), &1u32);
        assert_eq!(res, Err(PartialError::PartialWrite));
        assert!(mem.metadata().readonly);
    }

    #[test]
    fn metadata_reports_layout() {
        let m = holey().metadata();
        assert_eq!(m.max_address, Address::new(0x5fff));
        assert_eq!(m.real_size, 0x3000);
    }

    proptest! {
        /// Reads at every alignment across every boundary return the right bytes, zero the
        /// holes, and report partial exactly when a hole was touched.
        #[test]
        fn partial_reads_at_every_boundary(start in 0xf00u64..0x6100, len in 0usize..0x2100) {
            let mut view = holey().into_phys_view();
            let mut buf = vec![0xaau8; len];
            let res = view.read_raw_into(Address::new(start as umem), &mut buf);
            let mut any_hole = false;
            for (i, b) in buf.iter().enumerate() {
                match expected(start as umem + i as umem) {
                    Some(v) => prop_assert_eq!(*b, v),
                    None => { prop_assert_eq!(*b, 0); any_hole = true; }
                }
            }
            prop_assert_eq!(res.is_partial(), any_hole);
            prop_assert_eq!(res.is_ok(), !any_hole);
        }

        /// Writes land exactly where reads find them, and holes make writes partial.
        #[test]
        fn writes_roundtrip(start in 0xf00u64..0x6100, len in 1usize..0x300) {
            let mut view = holey().into_phys_view();
            let data: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x5a).collect();
            let res = view.write_raw(Address::new(start as umem), &data);
            let any_hole = (0..len).any(|i| expected(start as umem + i as umem).is_none());
            prop_assert_eq!(res.is_err(), any_hole);
            let back = view.read_raw(Address::new(start as umem), len).data_part().unwrap();
            for i in 0..len {
                if expected(start as umem + i as umem).is_some() {
                    prop_assert_eq!(back[i], data[i]);
                }
            }
        }
    }
}
