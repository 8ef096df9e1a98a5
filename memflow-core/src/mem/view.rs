//! Memory views: any address space (a process, a kernel, physical memory) with typed helpers.

use bytemuck::Pod;
use cglue::prelude::v1::*;

use super::alloc::{reserve, zeroed_vec};
use super::batch::*;
use super::batcher::MemoryBatcher;
use super::cursor::MemoryCursor;
use super::partial::{read_outcome, read_single, read_zeroing, write_outcome, write_single};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, PartialResult, Result};
use crate::types::{umem, Address, Pointer, PointerWidth};

/// Static facts about an address space.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ViewMetadata {
    /// The highest valid address.
    pub max_address: Address,
    /// How many bytes are really backed, where known (else `max_address + 1`).
    pub real_size: umem,
    /// Writes always fail.
    pub readonly: bool,
    /// Multi-byte values are little endian.
    pub little_endian: bool,
    /// Pointer width of the target in bits (32 or 64).
    pub arch_bits: u8,
}

/// How many bytes string reads fetch per step.
const STRING_STEP: usize = 256;

/// An address space: batched reads and writes plus typed helpers.
///
/// Implementors provide the two batch methods and `metadata`, and may override the single
/// entries with a direct path (see [`crate::mem::PhysicalMemory`]). Every helper handles partial
/// reads the same way: unreadable bytes are zeroed and the result is
/// [`PartialError::PartialRead`] carrying the data, so the caller chooses with
/// [`crate::error::PartialResultExt::data`] (strict) or `data_part` (accept zeros).
#[cglue_trait]
#[int_result]
#[cglue_forward]
pub trait MemoryView: Send {
    /// Reads a batch.
    fn read_batch(&mut self, batch: ReadBatch) -> Result<()>;

    /// Writes a batch.
    fn write_batch(&mut self, batch: WriteBatch) -> Result<()>;

    /// Facts about the address space.
    fn metadata(&self) -> ViewMetadata;

    /// Reads `out.len()` bytes at `addr` in one operation; unreadable bytes are zeroed.
    ///
    /// Returns how many bytes from the start of `out` were read before the first unreadable
    /// one: `out.len()` if every byte was read. Bytes after the first unreadable one are still
    /// read where they can be. The default runs a one-op batch.
    fn read_single(&mut self, addr: Address, out: &mut [u8]) -> Result<usize> {
        read_single(MemOp { addr, tag: addr, buf: out.into() }, |b| self.read_batch(b))
    }

    /// Writes `data` at `addr` in one operation.
    ///
    /// Returns how many bytes from the start of `data` were written before the first one that
    /// was not: `data.len()` if every byte was written. Read-only memory fails as a whole with
    /// [`ErrorKind::ReadOnly`]. The default runs a one-op batch.
    fn write_single(&mut self, addr: Address, data: &[u8]) -> Result<usize> {
        write_single(MemOp { addr, tag: addr, buf: data.into() }, |b| self.write_batch(b))
    }

    /// Reads `out.len()` bytes at `addr`.
    #[skip_func]
    fn read_raw_into(&mut self, addr: Address, out: &mut [u8]) -> PartialResult<()>
    where
        Self: Sized,
    {
        let len = out.len();
        read_outcome(self.read_single(addr, out)?, len)
    }

    /// Reads `len` bytes at `addr` into a new vector.
    ///
    /// The vector is allocated up front and fallibly: a `len` that cannot be allocated is an
    /// [`ErrorKind::OutOfMemory`] error, not an abort. Callers still bound lengths they take
    /// from guest memory, since a length that can be allocated is also read.
    #[skip_func]
    fn read_raw(&mut self, addr: Address, len: usize) -> PartialResult<Vec<u8>>
    where
        Self: Sized,
    {
        let mut v = zeroed_vec(len, ErrorOrigin::Memory, format_args!("a read of {len:#x} bytes at {addr}"))?;
        match self.read_raw_into(addr, &mut v) {
            Ok(()) => Ok(v),
            Err(e) => Err(e.map_data(v)),
        }
    }

    /// Reads a plain-old-data value into `out`.
    #[skip_func]
    fn read_into<T: Pod>(&mut self, addr: Address, out: &mut T) -> PartialResult<()>
    where
        Self: Sized,
    {
        self.read_raw_into(addr, bytemuck::bytes_of_mut(out))
    }

    /// Reads a plain-old-data value.
    #[skip_func]
    fn read<T: Pod>(&mut self, addr: Address) -> PartialResult<T>
    where
        Self: Sized,
    {
        let mut v = T::zeroed();
        match self.read_into(addr, &mut v) {
            Ok(()) => Ok(v),
            Err(e) => Err(e.map_data(v)),
        }
    }

    /// Reads consecutive values (an array in target memory) into `out`.
    #[skip_func]
    fn read_list<T: Pod>(&mut self, addr: Address, out: &mut [T]) -> PartialResult<()>
    where
        Self: Sized,
    {
        self.read_raw_into(addr, bytemuck::cast_slice_mut(out))
    }

    /// Reads many values at many addresses in one batch; returns partial if any failed.
    #[skip_func]
    fn read_many<T: Pod>(&mut self, items: &mut [(Address, T)]) -> PartialResult<()>
    where
        Self: Sized,
    {
        let ops = items.iter_mut().map(|(a, v)| MemOp { addr: *a, tag: *a, buf: bytemuck::bytes_of_mut(v).into() });
        read_zeroing(ops, |b| self.read_batch(b))
    }

    /// Follows a target pointer and reads what it points to.
    #[skip_func]
    fn read_ptr<W: PointerWidth, T: Pod>(&mut self, ptr: Pointer<W, T>) -> PartialResult<T>
    where
        Self: Sized,
    {
        self.read(ptr.address())
    }

    /// Reads a pointer-sized value of the target (width and endianness from the metadata).
    #[skip_func]
    fn read_addr(&mut self, addr: Address) -> PartialResult<Address>
    where
        Self: Sized,
    {
        let meta = self.metadata();
        let mut raw = [0u8; 8];
        let width = if meta.arch_bits == 32 { 4 } else { 8 };
        let res = self.read_raw_into(addr, &mut raw[..width]);
        let value = match (width, meta.little_endian) {
            (4, true) => Address::from(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            (4, false) => Address::from(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])),
            (_, true) => Address::from(u64::from_le_bytes(raw)),
            (_, false) => Address::from(u64::from_be_bytes(raw)),
        };
        res.map(|_| value).map_err(|e| e.map_data(value))
    }

    /// Reads a NUL-terminated byte string of at most `max_len` bytes (without the NUL).
    ///
    /// Reads in small steps, so a short string next to an unmapped page still reads fully.
    /// If an unreadable byte comes before the NUL, the bytes so far are returned as partial.
    #[skip_func]
    fn read_cstr_bytes(&mut self, addr: Address, max_len: usize) -> PartialResult<Vec<u8>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        let mut step = [0u8; STRING_STEP];
        while out.len() < max_len {
            let cur = addr + out.len();
            // Never cross a 4 KiB boundary in one step: the next page may be unmapped.
            let to_page = (0x1000 - cur.page_offset(0x1000)) as usize;
            let want = STRING_STEP.min(max_len - out.len()).min(to_page);
            let res = self.read_raw_into(cur, &mut step[..want]);
            let chunk = &step[..want];
            reserve(&mut out, want, ErrorOrigin::Memory, format_args!("a string at {addr}"))?;
            if let Some(nul) = chunk.iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                return match res {
                    // A zeroed (unreadable) byte is not a real terminator.
                    Err(PartialError::PartialRead(())) => Err(PartialError::PartialRead(out)),
                    Err(e) => Err(e.map_data(out)),
                    Ok(()) => Ok(out),
                };
            }
            if let Err(e) = res {
                return Err(e.map_data(out));
            }
            out.extend_from_slice(chunk);
        }
        Ok(out)
    }

    /// Reads a NUL-terminated UTF-8 string of at most `max_len` bytes; invalid UTF-8 is an
    /// error of kind [`ErrorKind::Encoding`].
    #[skip_func]
    fn read_utf8(&mut self, addr: Address, max_len: usize) -> PartialResult<String>
    where
        Self: Sized,
    {
        let decode =
            |b: Vec<u8>| String::from_utf8(b).map_err(|_| Error::new(ErrorOrigin::Memory, ErrorKind::Encoding));
        match self.read_cstr_bytes(addr, max_len) {
            Ok(b) => Ok(decode(b)?),
            Err(PartialError::PartialRead(b)) => Err(PartialError::PartialRead(decode(b)?)),
            Err(e) => Err(e.map_data(String::new())),
        }
    }

    /// Like [`MemoryView::read_utf8`], replacing invalid UTF-8 with U+FFFD.
    #[skip_func]
    fn read_utf8_lossy(&mut self, addr: Address, max_len: usize) -> PartialResult<String>
    where
        Self: Sized,
    {
        let decode = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        match self.read_cstr_bytes(addr, max_len) {
            Ok(b) => Ok(decode(b)),
            Err(PartialError::PartialRead(b)) => Err(PartialError::PartialRead(decode(b))),
            Err(e) => Err(e.map_data(String::new())),
        }
    }

    /// Writes raw bytes at `addr`.
    #[skip_func]
    fn write_raw(&mut self, addr: Address, data: &[u8]) -> PartialResult<()>
    where
        Self: Sized,
    {
        write_outcome(self.write_single(addr, data)?, data.len())
    }

    /// Writes a plain-old-data value at `addr`.
    #[skip_func]
    fn write<T: Pod>(&mut self, addr: Address, data: &T) -> PartialResult<()>
    where
        Self: Sized,
    {
        self.write_raw(addr, bytemuck::bytes_of(data))
    }

    /// A `std::io::{Read, Write, Seek}` cursor over this view, starting at address 0.
    #[skip_func]
    fn cursor(&mut self) -> MemoryCursor<Fwd<&mut Self>>
    where
        Self: Sized,
    {
        MemoryCursor::new(self.forward_mut())
    }

    /// A batcher that collects many small reads and writes into one batched call.
    #[skip_func]
    fn batcher(&mut self) -> MemoryBatcher<'_, Self>
    where
        Self: Sized,
    {
        MemoryBatcher::new(self)
    }
}
