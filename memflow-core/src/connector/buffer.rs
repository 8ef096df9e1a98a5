//! Physical memory served from bytes in this process (a memory-mapped file or a buffer),
//! laid out by a [`MemoryMap`]. Every file-backed connector and the synthetic memory are one
//! of these, so the hot read path exists exactly once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cglue::slice::{CSliceMut, CSliceRef};

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::alloc::zeroed_vec;
use crate::mem::partial::offset;
use crate::mem::{
    MapPiece, MemBatch, MemMapping, MemoryMap, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata,
    SplitBuf,
};
use crate::types::{umem, Address, PhysicalAddress};

/// Owns the bytes a [`BufferMemory`] points into.
pub trait Backing: Send + Sync + 'static {
    /// Start and length of the bytes.
    fn bytes(&self) -> (*const u8, usize);
    /// True if the bytes may be written through the pointer.
    fn writable(&self) -> bool;
    /// The bytes at `[offset, offset + len)` were streamed through and will not be read again
    /// soon. A file mapping lets the process's copy of those pages go (they stay in the page
    /// cache and come back on the next read), so a pass over a dump larger than memory does
    /// not grow the process by the dump's size; memory that holds the only copy of its bytes
    /// keeps them.
    fn release(&self, _offset: usize, _len: usize) {}
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

/// Bytes already in memory, read as a file's are (e.g. a dump received over a socket, or a
/// fuzzer's input): never written through the pointer.
impl Backing for Vec<u8> {
    fn bytes(&self) -> (*const u8, usize) {
        (self.as_ptr(), self.len())
    }
    fn writable(&self) -> bool {
        false
    }
}

/// A heap buffer that may be written through its pointer.
pub struct HeapBacking(Box<[u8]>);

impl HeapBacking {
    /// `size` zero bytes, allocated fallibly ([`ErrorKind::OutOfMemory`] if they cannot be).
    pub fn zeroed(size: usize) -> Result<Self> {
        let bytes = zeroed_vec(size, ErrorOrigin::Connector, "synthetic memory")?;
        Ok(HeapBacking(bytes.into_boxed_slice()))
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

/// How many mappings a [`BufferMemory`] keeps in itself for lookups (see its `hot` field).
const HOT_MAPPINGS: usize = 4;

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
    /// The largest mappings (largest first; unused places are empty), checked before the
    /// binary search of `map`: a raw image has one range and most dumps a handful, so a read
    /// is found without leaving `self`. That matters for virtual reads, which look up three
    /// or four table entries and then the data, each time after a 4 KiB copy may have pushed
    /// `map`'s vector out of the L1 cache: the search's dependent loads then cost as much as
    /// the rest of the walk.
    hot: [MemMapping; HOT_MAPPINGS],
    readonly: bool,
    /// The backing offsets of the last long read, to notice a stream of reads.
    last_long_read: LongRead,
}

/// Reads of at least this many bytes that follow on from each other through the backing are
/// a stream (a dump being written, a scan): each one releases the one before it (see
/// [`Backing::release`]). Shorter reads (page-table walks, 4 KiB reads, a 1 MiB read done
/// again) never release anything.
pub const STREAM_READ: usize = 256 << 10;

/// Start and end (backing offsets) of the last read of at least [`STREAM_READ`] bytes.
/// Atomics, as reads take `&self`; a race between threads that share one `BufferMemory` can
/// only release pages early, which then come back from the page cache.
#[derive(Default)]
struct LongRead {
    start: AtomicUsize,
    end: AtomicUsize,
}

impl Clone for LongRead {
    /// A clone reads on its own: it starts a stream of its own.
    fn clone(&self) -> Self {
        LongRead::default()
    }
}

// SAFETY: the pointer stays valid while `backing` lives, and `Backing` is Send + Sync.
unsafe impl Send for BufferMemory {}
// SAFETY: as for `Send`; concurrent writes race like writes to real memory from several CPUs
// (see the type's documentation) and never touch anything but the backing bytes.
unsafe impl Sync for BufferMemory {}

/// Copies `src` into `dst` (equal lengths). Reads of 4 to 16 bytes (pointers, page-table
/// entries: most reads a translator or OS layer makes) are two overlapping unaligned moves
/// instead of a call into `memcpy`; when the length is known at the call site this folds
/// into a single move.
#[inline(always)]
fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    let n = dst.len();
    assert_eq!(n, src.len());
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    // SAFETY: both slices are `n` bytes long, and each move below stays within them.
    unsafe {
        if (8..=16).contains(&n) {
            let head = core::ptr::read_unaligned(s as *const u64);
            let tail = core::ptr::read_unaligned(s.add(n - 8) as *const u64);
            core::ptr::write_unaligned(d as *mut u64, head);
            core::ptr::write_unaligned(d.add(n - 8) as *mut u64, tail);
        } else if (4..8).contains(&n) {
            let head = core::ptr::read_unaligned(s as *const u32);
            let tail = core::ptr::read_unaligned(s.add(n - 4) as *const u32);
            core::ptr::write_unaligned(d as *mut u32, head);
            core::ptr::write_unaligned(d.add(n - 4) as *mut u32, tail);
        } else {
            core::ptr::copy_nonoverlapping(s, d, n);
        }
    }
}

impl BufferMemory {
    /// Serves `backing` laid out by `map`. Every mapping must lie inside the backing bytes.
    pub fn new(backing: Arc<dyn Backing>, map: MemoryMap) -> Result<Self> {
        let (ptr, len) = backing.bytes();
        for r in map.ranges() {
            let end = r.backing.checked_add(r.size);
            if end.is_none_or(|e| e > len as umem) {
                return Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::OutOfBounds).with_reason(format_args!(
                    "range {}+{:#x} at offset {:#x} lies outside the {len:#x} backing bytes",
                    r.base, r.size, r.backing
                )));
            }
        }
        let readonly = !backing.writable();
        let mut hot = [MemMapping { base: Address::NULL, size: 0, backing: 0 }; HOT_MAPPINGS];
        for r in map.ranges() {
            if let Some(at) = hot.iter().position(|h| r.size > h.size) {
                hot[at..].rotate_right(1);
                hot[at] = *r;
            }
        }
        Ok(BufferMemory {
            base: ptr as *mut u8,
            len,
            _backing: backing,
            map: Arc::new(map),
            hot,
            readonly,
            last_long_read: LongRead::default(),
        })
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

    /// Copies the backing bytes at `off` into `buf` (`new` checked that every mapping lies in
    /// the backing; callers pass offsets and lengths of one mapping).
    #[inline(always)]
    fn copy_out(&self, off: usize, buf: &mut [u8]) {
        // SAFETY: `off + buf.len()` lies within the backing's `len` bytes (see above).
        let src = unsafe { core::slice::from_raw_parts(self.base.add(off), buf.len()) };
        copy_bytes(buf, src);
        if buf.len() >= STREAM_READ {
            self.long_read(off, buf.len());
        }
    }

    /// Notes a long read; if it follows on from the last one, that one is released.
    #[cold]
    #[inline(never)]
    fn long_read(&self, off: usize, len: usize) {
        let start = self.last_long_read.start.swap(off, Ordering::Relaxed);
        let end = self.last_long_read.end.swap(off + len, Ordering::Relaxed);
        if end == off && start < end {
            self._backing.release(start, end - start);
        }
    }

    /// Fails with [`ErrorKind::ReadOnly`] if writes are refused.
    #[inline]
    fn check_writable(&self) -> Result<()> {
        if self.readonly {
            return Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::ReadOnly)
                .with_reason("the memory is read-only (a file opened without write access, or set read-only)"));
        }
        Ok(())
    }

    /// Cuts `buf` at `addr` along the map and calls `hit` or `miss` for each piece.
    #[inline]
    fn for_pieces<B: SplitBuf>(
        &self,
        addr: Address,
        tag: Address,
        buf: B,
        mut hit: impl FnMut(usize, Address, B),
        miss: impl FnMut(Address, B),
    ) {
        // Fast path: the whole request lies in one mapping.
        match self.backing_of(addr, buf.len()) {
            Some(off) => hit(off, tag, buf),
            None => self.for_pieces_split(addr, tag, buf, hit, miss),
        }
    }

    /// The backing offset of `[addr, addr + len)` if the whole range lies in one mapping.
    #[inline]
    fn backing_of(&self, addr: Address, len: usize) -> Option<usize> {
        for hot in &self.hot {
            let into = umem::from(addr).wrapping_sub(umem::from(hot.base));
            if into < hot.size && hot.size - into >= len as umem {
                return Some((hot.backing + into) as usize);
            }
        }
        self.backing_in_map(addr, len)
    }

    /// [`Self::backing_of`] by a search of the whole map, for the mappings not kept in `hot`;
    /// out of line, so that the inlined lookup stays small.
    #[inline(never)]
    fn backing_in_map(&self, addr: Address, len: usize) -> Option<usize> {
        let (off, avail) = self.map.lookup(addr)?;
        (avail >= len as umem).then_some(off as usize)
    }

    /// The slow path of [`Self::for_pieces`]: the request crosses a mapping edge or a hole.
    /// Kept out of line so the inlined fast path stays small.
    #[inline(never)]
    #[cold]
    fn for_pieces_split<B: SplitBuf>(
        &self,
        addr: Address,
        tag: Address,
        buf: B,
        mut hit: impl FnMut(usize, Address, B),
        mut miss: impl FnMut(Address, B),
    ) {
        let mut rest = Some(buf);
        let mut done = 0usize;
        self.map.split(addr, rest.as_ref().map_or(0, |b| b.len()), |piece| {
            let (len, backing) = match piece {
                MapPiece::Mapped { len, backing, .. } => (len, Some(backing)),
                MapPiece::Hole { len, .. } => (len, None),
            };
            // Pieces never exceed the request: `rest` is always there.
            let Some(buf) = rest.take() else { return };
            let (head, tail) = buf.split_at(len);
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

// The batch methods are `#[inline]` so a caller that knows the concrete type (every typed
// helper is generic over `Self`) gets the whole read inlined: the `CIterator` of a one-op
// batch is then devirtualised and a small read costs about as much as the copy itself.
// Callers through a trait object still get one out-of-line copy of each.
impl PhysicalMemory for BufferMemory {
    #[inline]
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        let MemBatch { ops, mut on_ok, mut on_fail } = batch;
        for op in ops {
            self.for_pieces(
                op.addr.address,
                op.tag,
                op.buf,
                |off, tag, mut buf: CSliceMut<u8>| {
                    self.copy_out(off, &mut buf);
                    crate::mem::report(&mut on_ok, tag, buf);
                },
                |tag, buf| crate::mem::report(&mut on_fail, tag, buf),
            );
        }
        Ok(())
    }

    /// A read inside one mapping is a bare copy, without building a batch (every typed helper
    /// such as `phys_read` comes through here, and so do single reads through a trait object).
    #[inline]
    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        let mut done = out.len();
        self.for_pieces(
            addr.address,
            addr.address,
            CSliceMut::from(out),
            |off, _, mut buf: CSliceMut<u8>| self.copy_out(off, &mut buf),
            |tag, mut buf| {
                buf.fill(0);
                done = done.min(offset(addr.address, tag));
            },
        );
        Ok(done)
    }

    #[inline]
    fn phys_write_single(&mut self, addr: PhysicalAddress, data: &[u8]) -> Result<usize> {
        self.check_writable()?;
        let mut done = data.len();
        self.for_pieces(
            addr.address,
            addr.address,
            CSliceRef::from(data),
            |off, _, buf: CSliceRef<u8>| {
                // SAFETY: bounds as for reads; the backing is writable (not read-only).
                unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), self.base.add(off), buf.len()) };
            },
            |tag, _| done = done.min(offset(addr.address, tag)),
        );
        Ok(done)
    }

    #[inline]
    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.check_writable()?;
        let MemBatch { ops, mut on_ok, mut on_fail } = batch;
        for op in ops {
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

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
        self.map.report(callback);
        Ok(())
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
    use crate::instance::LibArc;
    use crate::mem::partial::check;
    use crate::mem::{MemOp, MemoryView, PhysicalMemory};
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
    fn copy_bytes_copies_every_small_length() {
        let src: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        for n in 0..40 {
            for at in 0..8 {
                let mut dst = vec![0xeeu8; n + 16];
                copy_bytes(&mut dst[3..3 + n], &src[at..at + n]);
                assert_eq!(&dst[3..3 + n], &src[at..at + n], "n {n} at {at}");
                assert!(dst[..3].iter().chain(&dst[3 + n..]).all(|&b| b == 0xee), "n {n}: wrote outside");
            }
        }
    }

    /// The largest mappings (checked first, in `hot`) are not the first ones, and two small
    /// ones are only in the map: reads at and across every edge of all of them still see the
    /// right bytes, holes and partial results.
    #[test]
    fn hot_mappings_first_lookup_keeps_edges() {
        // (guest base, size, backing offset); sizes all differ, the largest are not first.
        let ranges: [(umem, umem, umem); 6] = [
            (0x1000, 0x800, 0x3000),
            (0x2000, 0x100, 0x3800),
            (0x2200, 0x200, 0x3900),
            (0x4000, 0x3000, 0),
            (0x7800, 0x400, 0x3b00),
            (0x9000, 0x600, 0x3f00),
        ];
        let mut map = MemoryMap::new();
        for (base, size, backing) in ranges {
            map.push(Address::new(base), size, backing).unwrap();
        }
        let mut mem = crate::connector::dummy_memory_with_map(map).unwrap();
        assert!(mem.hot.iter().all(|h| h.size > 0x200), "the two smallest are not hot");
        let pattern: Vec<u8> = (0..0x4500usize).map(|i| (i * 13 + 1) as u8).collect();
        BufferMemory::identity(mem._backing.clone())
            .unwrap()
            .phys_write_raw(PhysicalAddress::plain(Address::NULL), &pattern)
            .unwrap();
        let expect = |a: umem| -> Option<u8> {
            let &(base, _, backing) = ranges.iter().find(|&&(base, size, _)| a >= base && a - base < size)?;
            Some(pattern[(a - base + backing) as usize])
        };
        for start in (0xf00 as umem..0x9700).step_by(0x3f) {
            for len in [1usize, 8, 13, 0x100, 0x801, 0x3001] {
                let mut out = vec![0xaau8; len];
                let res = mem.phys_read_raw_into(PhysicalAddress::plain(Address::new(start)), &mut out);
                let mut hole = false;
                for (i, b) in out.iter().enumerate() {
                    match expect(start + i as umem) {
                        Some(v) => assert_eq!(*b, v, "start {start:#x} len {len:#x} byte {i:#x}"),
                        None => {
                            assert_eq!(*b, 0);
                            hole = true
                        }
                    }
                }
                assert_eq!(res.is_err(), hole, "start {start:#x} len {len:#x}");
                // The batch path (through a view) agrees.
                let mut batched = vec![0x55u8; len];
                let res_batched = mem.phys_view().read_raw_into(Address::new(start), &mut batched);
                assert_eq!((batched, res_batched), (out, res), "start {start:#x} len {len:#x}");
            }
        }
    }

    #[test]
    fn rejects_maps_outside_the_backing() {
        let mut map = MemoryMap::new();
        map.push(Address::new(0), 0x2000, 0).unwrap();
        let err = BufferMemory::new(Arc::new(HeapBacking::zeroed(0x1000).unwrap()), map).unwrap_err();
        assert_eq!(err.kind, ErrorKind::OutOfBounds);
    }

    /// Lengths no caller could mean (taken from guest memory, say) are errors, not aborts.
    #[test]
    fn hostile_lengths_are_errors() {
        let mut view = holey().into_phys_view();
        for len in [usize::MAX, isize::MAX as usize, 1 << 50] {
            let err = view.read_raw(Address::new(0x1000), len).unwrap_err();
            assert_eq!(err, PartialError::Error(Error::new(ErrorOrigin::Memory, ErrorKind::OutOfMemory)), "{len:#x}");
        }
        assert_eq!(view.read_raw(Address::new(0x1000), 4).unwrap(), [0, 7, 14, 21]);
        // A string read stops at its maximum, however large, when memory ends first.
        let string = view.read_cstr_bytes(Address::new(0x5ff0), usize::MAX);
        assert!(matches!(string, Err(PartialError::PartialRead(ref b)) if b.len() == 0x10), "{string:?}");
        let oom = HeapBacking::zeroed(1 << 50).err();
        assert_eq!(oom, Some(Error::new(ErrorOrigin::Connector, ErrorKind::OutOfMemory)));
    }

    #[test]
    fn readonly_refuses_writes() {
        let mut mem = holey();
        mem.set_readonly();
        let at = PhysicalAddress::plain(Address::new(0x1000));
        let read_only = Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::ReadOnly);
        assert_eq!(mem.phys_write(at, &1u32), Err(PartialError::Error(read_only)));
        assert_eq!(mem.phys_write_single(at, &[1, 2]), Err(read_only));
        let ops = [MemOp { addr: at, tag: at.address, buf: [1u8][..].into() }];
        assert_eq!(MemBatch::with(ops.into_iter(), None, None, |b| mem.phys_write_batch(b)), Err(read_only));
        assert!(mem.metadata().readonly);
        assert_eq!(mem.phys_read::<u32>(at).unwrap(), u32::from_le_bytes([0, 7, 14, 21]), "reads still work");
    }

    /// Single writes count the bytes written before the first hole, and write the rest
    /// where it is backed.
    #[test]
    fn single_writes_count_up_to_the_first_hole() {
        let mut mem = holey();
        let data = [0xabu8; 0x20];
        let at = |a: umem| PhysicalAddress::plain(Address::new(a));
        assert_eq!(mem.phys_write_single(at(0x1000), &data), Ok(0x20));
        assert_eq!(mem.phys_write_single(at(0x2ff0), &data), Ok(0x10));
        assert_eq!(mem.phys_write_single(at(0x4ff0), &data), Ok(0));
        assert_eq!(mem.phys_read::<[u8; 0x10]>(at(0x5000)).unwrap(), [0xab; 0x10], "backed bytes after a hole");
        assert_eq!(mem.phys_write_single(at(0x1000), &[]), Ok(0));
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

        /// The direct single read agrees with the batch path, bytes and count, also through a
        /// trait object (the vtable entry) and a physical view.
        #[test]
        fn single_read_matches_batch_path(start in 0xf00u64..0x6100, len in 0usize..0x2100) {
            let mut mem = holey();
            let done = check::phys_read_agrees(&mut mem, start, len);
            let first_hole = (0..len).find(|&i| expected(start as umem + i as umem).is_none()).unwrap_or(len);
            prop_assert_eq!(done, first_hole);
            let mut object = crate::plugins::connector_instance(mem.clone(), LibArc::default());
            prop_assert_eq!(check::phys_read_agrees(&mut object, start, len), done);
            prop_assert_eq!(check::view_read_agrees(&mut mem.phys_view(), start, len), done);
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
