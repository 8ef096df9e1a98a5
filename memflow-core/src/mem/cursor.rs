//! `std::io` access to a memory view, for code that parses from a `Read + Seek`.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::view::MemoryView;
use crate::error::{Error, PartialError};
use crate::types::{umem, Address};

/// A position in a [`MemoryView`] with `Read`, `Write` and `Seek`.
///
/// Partial reads and writes fail by default (an `io::Error` wrapping the memflow error, with
/// the unreadable bytes of the buffer zeroed and the position unchanged); call
/// [`MemoryCursor::accept_partial`] to count zero-filled reads as success instead.
pub struct MemoryCursor<V> {
    view: V,
    pos: Address,
    accept_partial: bool,
}

impl<V: MemoryView> MemoryCursor<V> {
    /// A cursor at address 0.
    pub fn new(view: V) -> Self {
        MemoryCursor { view, pos: Address::NULL, accept_partial: false }
    }

    /// A cursor at `pos`.
    pub fn at(view: V, pos: Address) -> Self {
        MemoryCursor { view, pos, accept_partial: false }
    }

    /// Whether zero-filled partial reads count as success.
    pub fn accept_partial(mut self, accept: bool) -> Self {
        self.accept_partial = accept;
        self
    }

    /// The current address.
    pub fn position(&self) -> Address {
        self.pos
    }

    /// The view back.
    pub fn into_inner(self) -> V {
        self.view
    }

    fn finish<T>(&mut self, res: Result<(), PartialError<T>>, len: usize) -> io::Result<usize> {
        match res {
            Ok(()) => {}
            Err(PartialError::PartialRead(_)) if self.accept_partial => {}
            Err(e) => return Err(io::Error::other(Error::from(e))),
        }
        self.pos += len;
        Ok(len)
    }
}

impl<V: MemoryView> Read for MemoryCursor<V> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let res = self.view.read_raw_into(self.pos, buf);
        self.finish(res, buf.len())
    }
}

impl<V: MemoryView> Write for MemoryCursor<V> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let res = self.view.write_raw(self.pos, buf);
        self.finish(res, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<V: MemoryView> Seek for MemoryCursor<V> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(p) => Some(Address::new(p as umem)),
            SeekFrom::Current(d) => offset(self.pos, d),
            SeekFrom::End(d) => offset(self.view.metadata().max_address + 1 as umem, d),
        };
        match target {
            Some(t) if u64::try_from(t.to_umem()).is_ok() => {
                self.pos = t;
                Ok(t.to_umem() as u64)
            }
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek outside the address space")),
        }
    }
}

fn offset(base: Address, delta: i64) -> Option<Address> {
    let base = base.to_umem();
    let moved =
        if delta >= 0 { base.checked_add(delta as umem) } else { base.checked_sub(delta.unsigned_abs() as umem) };
    moved.map(Address::new)
}
