//! Physical memory: raw bytes from a connector.

use bytemuck::Pod;
use cglue::prelude::v1::*;

use super::batch::*;
use super::map::{MemMapping, MemMappingCallback};
use super::partial::{read_outcome, read_single, write_outcome, write_single};
use super::view::{MemoryView, ViewMetadata};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResult, Result};
use crate::types::{umem, Address, PhysicalAddress};

/// Static facts about a physical memory backend.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PhysicalMemoryMetadata {
    /// The highest address that may be backed.
    pub max_address: Address,
    /// How many bytes are really backed (less than `max_address + 1` with holes).
    pub real_size: umem,
    /// Writes always fail.
    pub readonly: bool,
    /// The number of operations per batch the backend handles best (`u32::MAX`: any).
    pub ideal_batch_size: u32,
}

/// Physical memory: batched and single reads and writes of raw bytes.
///
/// Implementors provide the two batch methods and `metadata`; the typed helpers come for free.
/// Every byte of every operation is reported exactly once, through `on_ok` or `on_fail`.
/// The `Err` return is for failures of the backend as a whole (e.g. a guest that exited, or
/// any write to read-only memory: [`ErrorKind::ReadOnly`]); unbacked addresses are per-chunk
/// failures, not an `Err`.
///
/// The single-operation entries ([`PhysicalMemory::phys_read_single`],
/// [`PhysicalMemory::phys_write_single`]) default to a one-op batch; backends with a cheaper
/// direct path override them, so that a single read through a trait object (a plugin, the C
/// API) costs one indirect call instead of a batch with an iterator and callbacks. Every typed
/// helper goes through them.
#[cglue_trait]
#[int_result]
#[cglue_forward]
pub trait PhysicalMemory: Send {
    /// Reads a batch.
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()>;

    /// Writes a batch.
    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()>;

    /// Facts about the backend.
    fn metadata(&self) -> PhysicalMemoryMetadata;

    /// Tells the backend which ranges really exist, for backends that cannot find out
    /// themselves (an OS layer may know better). The default ignores it.
    fn set_mem_map(&mut self, _map: &[MemMapping]) {}

    /// Calls back with each range of physical memory that exists, in ascending order of
    /// address, until the callback returns `false` (a range's `backing` is the backend's own
    /// business). Scans over physical memory go over these ranges, never over the address
    /// span. Backends that do not know their layout return [`ErrorKind::Unsupported`] (the
    /// default): then anything up to `metadata().max_address` may exist.
    fn mem_map_callback(&self, callback: MemMappingCallback) -> Result<()> {
        let _ = callback;
        Err(Error::new(ErrorOrigin::PhysicalMemory, ErrorKind::Unsupported))
    }

    /// Reads `out.len()` bytes at `addr` in one operation; unreadable bytes are zeroed.
    ///
    /// Returns how many bytes from the start of `out` were read before the first unreadable
    /// one: `out.len()` if every byte was read. Bytes after the first unreadable one are still
    /// read where they can be (the rest is zero), exactly as the batch path does.
    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        read_single(MemOp { addr, tag: addr.address, buf: out.into() }, |b| self.phys_read_batch(b))
    }

    /// Writes `data` at `addr` in one operation.
    ///
    /// Returns how many bytes from the start of `data` were written before the first one that
    /// was not: `data.len()` if every byte was written. Read-only memory fails as a whole with
    /// [`ErrorKind::ReadOnly`].
    fn phys_write_single(&mut self, addr: PhysicalAddress, data: &[u8]) -> Result<usize> {
        write_single(MemOp { addr, tag: addr.address, buf: data.into() }, |b| self.phys_write_batch(b))
    }

    /// Reads `out.len()` bytes at `addr`; unreadable bytes are zeroed and reported as partial.
    #[skip_func]
    fn phys_read_raw_into(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> PartialResult<()>
    where
        Self: Sized,
    {
        let len = out.len();
        read_outcome(self.phys_read_single(addr, out)?, len)
    }

    /// Reads a plain-old-data value at `addr` (partial: the missing bytes are zero).
    #[skip_func]
    fn phys_read<T: Pod>(&mut self, addr: PhysicalAddress) -> PartialResult<T>
    where
        Self: Sized,
    {
        let mut v = T::zeroed();
        match self.phys_read_raw_into(addr, bytemuck::bytes_of_mut(&mut v)) {
            Ok(()) => Ok(v),
            Err(e) => Err(e.map_data(v)),
        }
    }

    /// Writes raw bytes at `addr`.
    #[skip_func]
    fn phys_write_raw(&mut self, addr: PhysicalAddress, data: &[u8]) -> PartialResult<()>
    where
        Self: Sized,
    {
        write_outcome(self.phys_write_single(addr, data)?, data.len())
    }

    /// Writes a plain-old-data value at `addr`.
    #[skip_func]
    fn phys_write<T: Pod>(&mut self, addr: PhysicalAddress, data: &T) -> PartialResult<()>
    where
        Self: Sized,
    {
        self.phys_write_raw(addr, bytemuck::bytes_of(data))
    }

    /// A [`MemoryView`] of this memory that borrows it.
    #[skip_func]
    fn phys_view(&mut self) -> PhysicalView<Fwd<&mut Self>>
    where
        Self: Sized,
    {
        PhysicalView::new(self.forward_mut())
    }

    /// A [`MemoryView`] of this memory that owns it.
    #[skip_func]
    fn into_phys_view(self) -> PhysicalView<Self>
    where
        Self: Sized,
    {
        PhysicalView::new(self)
    }
}

/// Any [`PhysicalMemory`] seen as a [`MemoryView`]: addresses are physical addresses.
///
/// Pointer width and endianness default to 64-bit little endian; set them with
/// [`PhysicalView::with_arch`] when the target differs.
#[derive(Clone)]
pub struct PhysicalView<P> {
    mem: P,
    little_endian: bool,
    arch_bits: u8,
}

impl<P: PhysicalMemory> PhysicalView<P> {
    /// Wraps `mem`.
    pub fn new(mem: P) -> Self {
        PhysicalView { mem, little_endian: true, arch_bits: 64 }
    }

    /// Sets the pointer width and endianness reported in the metadata.
    pub fn with_arch(mut self, arch_bits: u8, little_endian: bool) -> Self {
        self.arch_bits = arch_bits;
        self.little_endian = little_endian;
        self
    }

    /// The wrapped memory.
    pub fn into_inner(self) -> P {
        self.mem
    }
}

impl<P: PhysicalMemory> MemoryView for PhysicalView<P> {
    fn read_batch(&mut self, batch: ReadBatch) -> Result<()> {
        let MemBatch { ops, on_ok, on_fail } = batch;
        let mut ops = ops.map(|op| MemOp { addr: PhysicalAddress::plain(op.addr), tag: op.tag, buf: op.buf });
        self.mem.phys_read_batch(MemBatch { ops: (&mut ops).into(), on_ok, on_fail })
    }

    fn write_batch(&mut self, batch: WriteBatch) -> Result<()> {
        let MemBatch { ops, on_ok, on_fail } = batch;
        let mut ops = ops.map(|op| MemOp { addr: PhysicalAddress::plain(op.addr), tag: op.tag, buf: op.buf });
        self.mem.phys_write_batch(MemBatch { ops: (&mut ops).into(), on_ok, on_fail })
    }

    #[inline]
    fn read_single(&mut self, addr: Address, out: &mut [u8]) -> Result<usize> {
        self.mem.phys_read_single(PhysicalAddress::plain(addr), out)
    }

    #[inline]
    fn write_single(&mut self, addr: Address, data: &[u8]) -> Result<usize> {
        self.mem.phys_write_single(PhysicalAddress::plain(addr), data)
    }

    fn metadata(&self) -> ViewMetadata {
        let m = self.mem.metadata();
        ViewMetadata {
            max_address: m.max_address,
            real_size: m.real_size,
            readonly: m.readonly,
            little_endian: self.little_endian,
            arch_bits: self.arch_bits,
        }
    }
}
