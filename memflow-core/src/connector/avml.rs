//! AVML captures (Microsoft's acquisition tool, `avml --compress`): LiME-style range headers
//! whose data is a Snappy frame stream.
//!
//! Each block: a 32-byte header (little endian: magic `"AVML"` (0x4c4d5641), version 2, first
//! and last guest address (inclusive), 8 zero bytes), the range's bytes in Snappy's framing
//! format, then the length of that frame stream as a `u64`. AVML writes ranges of at most
//! 16 MiB in ascending order and leaves out ranges that are all zero, which therefore read as
//! absent. A plain LiME header (version 1, uncompressed data) may appear among the blocks.
//!
//! A frame stream is a sequence of chunks: a type byte, a 24-bit length, and for data
//! chunks a masked CRC-32C (not verified here) and up to 64 KiB of data, Snappy-compressed
//! (type 0) or stored (type 1). Opening walks the chunk headers only and keeps one index
//! entry per chunk, so a read decompresses just the chunks it touches.

use std::borrow::Cow;

use super::bytes::ByteReader;
use super::codec::Codec;
use super::compressed::{Block, Lookup};
use super::file::{DumpFormat, DumpInfo};
use super::lime::{LIME_HEADER_SIZE, LIME_MAGIC, LIME_VERSION};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::alloc::reserve;
use crate::mem::MemoryMap;
use crate::types::{umem, Address};

/// The magic of an AVML block header.
pub const AVML_MAGIC: u32 = 0x4c4d_5641;
/// The version of AVML block headers.
pub const AVML_VERSION: u32 = 2;
/// The most data one Snappy frame chunk holds.
pub const MAX_CHUNK: u64 = 65536;
/// The most index entries per byte of file: one per 256 bytes. A real capture has one per
/// 64 KiB of guest memory, a few KiB of file; a crafted file of tiny chunks is refused
/// before its index outgrows an eighth of the file.
const FILE_BYTES_PER_CHUNK: u64 = 256;

const STREAM_ID: &[u8] = b"sNaPpY";
const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_STORED: u8 = 0x01;
const CHUNK_STREAM_ID: u8 = 0xff;
const CRC_SIZE: u64 = 4;

/// True if `bytes` starts with an AVML block header.
pub fn is_avml(bytes: &[u8]) -> bool {
    bytes.get(..4) == Some(&AVML_MAGIC.to_le_bytes()[..])
}

/// The header of an AVML block of guest memory from `first` to `last` inclusive.
pub fn header(first: u64, last: u64) -> [u8; LIME_HEADER_SIZE as usize] {
    let mut h = super::lime::header(first, last);
    h[0..4].copy_from_slice(&AVML_MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&AVML_VERSION.to_le_bytes());
    h
}

/// One chunk of guest memory and where its data is in the file.
#[derive(Copy, Clone, Debug)]
struct Chunk {
    start: u64,
    len: u32,
    codec: Codec,
    file: u64,
    stored_len: u32,
}

/// A parsed AVML capture: its chunks in guest address order.
#[derive(Debug)]
pub struct Avml {
    chunks: Vec<Chunk>,
    map: MemoryMap,
}

fn error(kind: ErrorKind, reason: impl core::fmt::Display) -> Error {
    Error::new(ErrorOrigin::FileFormat, kind).with_reason(reason)
}

impl Avml {
    /// Parses the AVML capture in `file`.
    pub fn parse(file: &[u8]) -> Result<(Avml, DumpInfo)> {
        let r = ByteReader::new(file, false, "AVML file");
        let len = r.len();
        let max_chunks = len / FILE_BYTES_PER_CHUNK + 16;
        let mut avml = Avml { chunks: Vec::new(), map: MemoryMap::new() };
        // The end of the previous block, and the start of the current run of adjacent ones.
        let (mut prev_end, mut run): (u64, Option<(u64, u64)>) = (0, None);
        let (mut at, mut blocks, mut compressed) = (0u64, 0u64, 0u64);
        while at < len {
            if len - at < LIME_HEADER_SIZE {
                return Err(error(
                    ErrorKind::Truncated,
                    format_args!(
                        "block header #{blocks} at file offset {at:#x}: only {:#x} of its 32 bytes are in the file",
                        len - at
                    ),
                ));
            }
            let (magic, version) = (r.u32(at)?, r.u32(at + 4)?);
            let (first, last) = (r.u64(at + 8)?, r.u64(at + 16)?);
            let lime = match (magic, version) {
                (AVML_MAGIC, AVML_VERSION) => false,
                (LIME_MAGIC, LIME_VERSION) => true,
                _ => {
                    return Err(error(
                        ErrorKind::Malformed,
                        format_args!("block header #{blocks} at file offset {at:#x}: magic {magic:#x} version {version} is neither AVML 2 nor LiME 1"),
                    ))
                }
            };
            if last < first || last == u64::MAX || (!lime && r.u64(at + 24)? != 0) {
                return Err(error(
                    ErrorKind::Malformed,
                    format_args!("block header #{blocks} at file offset {at:#x}: range {first:#x}..={last:#x} is backwards or reaches 2^64, or its padding is not zero"),
                ));
            }
            if blocks > 0 && first < prev_end {
                return Err(error(
                    ErrorKind::Malformed,
                    format_args!("block #{blocks} at file offset {at:#x} (guest {first:#x}..={last:#x}) overlaps or precedes the block before it (ending at {prev_end:#x})"),
                ));
            }
            let size = last - first + 1;
            let data = at + LIME_HEADER_SIZE;
            at = if lime {
                avml.stored_block(first, size, data, len, max_chunks)?
            } else {
                compressed += 1;
                avml.frames(&r, first, size, data, max_chunks)?
            };
            run = match run {
                Some((start, end)) if end == first => Some((start, last + 1)),
                Some((start, end)) => {
                    avml.map.push(Address::new(umem::from(start)), umem::from(end - start), umem::from(start))?;
                    Some((first, last + 1))
                }
                None => Some((first, last + 1)),
            };
            prev_end = last + 1;
            blocks += 1;
        }
        match run {
            Some((start, end)) => {
                avml.map.push(Address::new(umem::from(start)), umem::from(end - start), umem::from(start))?
            }
            None => return Err(error(ErrorKind::Truncated, "the AVML input is empty: no block header")),
        }
        let description = format!(
            "AVML capture: {blocks} blocks ({compressed} snappy-compressed), {:#x} bytes of memory in {} chunks",
            avml.map.real_size(),
            avml.chunks.len()
        );
        Ok((avml, DumpInfo { description, ..DumpInfo::bare(DumpFormat::Avml) }))
    }

    /// Adds a chunk, refusing more than `max` in all.
    fn push(&mut self, chunk: Chunk, max: u64) -> Result<()> {
        if self.chunks.len() as u64 >= max {
            return Err(error(
                ErrorKind::LimitExceeded,
                format_args!("more than {max} data chunks (one per {FILE_BYTES_PER_CHUNK} bytes of file); the chunk at file offset {:#x} is one too many", chunk.file),
            ));
        }
        reserve(&mut self.chunks, 1, ErrorOrigin::FileFormat, "the AVML chunk index")?;
        self.chunks.push(chunk);
        Ok(())
    }

    /// Indexes a plain LiME block of `size` bytes at file offset `data` as stored chunks;
    /// returns where the next header is.
    fn stored_block(&mut self, first: u64, size: u64, data: u64, len: u64, max: u64) -> Result<u64> {
        if size > len - data {
            return Err(error(
                ErrorKind::Truncated,
                format_args!("LiME block at file offset {data:#x} of {size:#x} bytes runs past the end of the {len:#x} byte file"),
            ));
        }
        let mut done = 0;
        while done < size {
            let n = MAX_CHUNK.min(size - done);
            let chunk = Chunk {
                start: first + done,
                len: n as u32,
                codec: Codec::Stored,
                file: data + done,
                stored_len: n as u32,
            };
            self.push(chunk, max)?;
            done += n;
        }
        Ok(data + size)
    }

    /// Indexes the frame stream at file offset `data` holding `size` bytes of guest memory
    /// from `first`, and checks the stream length that follows it; returns where the next
    /// header is.
    fn frames(&mut self, r: &ByteReader, first: u64, size: u64, data: u64, max: u64) -> Result<u64> {
        let (mut at, mut done) = (data, 0u64);
        while done < size {
            let head = r.bytes(at, 4).map_err(|_| {
                error(
                    ErrorKind::Truncated,
                    format_args!("snappy frame chunk at file offset {at:#x}: the file ends with {:#x} of the block's {size:#x} bytes", done),
                )
            })?;
            let (kind, chunk_len) = (head[0], u64::from(head[1]) | u64::from(head[2]) << 8 | u64::from(head[3]) << 16);
            let body = at + 4;
            let payload = r.bytes(body, chunk_len).map_err(|_| {
                error(
                    ErrorKind::Truncated,
                    format_args!("snappy frame chunk at file offset {at:#x} of {chunk_len:#x} bytes runs past the end of the file"),
                )
            })?;
            match kind {
                CHUNK_STREAM_ID if payload != STREAM_ID => {
                    return Err(error(
                        ErrorKind::Malformed,
                        format_args!("snappy stream identifier at file offset {at:#x} is not \"sNaPpY\""),
                    ))
                }
                CHUNK_COMPRESSED | CHUNK_STORED => {
                    let stored = payload.get(CRC_SIZE as usize..).unwrap_or_default();
                    let (codec, n) = if kind == CHUNK_STORED {
                        (Codec::Stored, stored.len() as u64)
                    } else {
                        let n = snap::raw::decompress_len(stored).map_err(|e| {
                            error(ErrorKind::Malformed, format_args!("snappy chunk at file offset {at:#x}: {e}"))
                        })?;
                        (Codec::Snappy, n as u64)
                    };
                    if chunk_len < CRC_SIZE || n == 0 || n > MAX_CHUNK || n > size - done {
                        return Err(error(
                            ErrorKind::Malformed,
                            format_args!("snappy chunk at file offset {at:#x} holds {n:#x} bytes: none, more than 64 KiB, or more than the {:#x} left of its block", size - done),
                        ));
                    }
                    let chunk = Chunk {
                        start: first + done,
                        len: n as u32,
                        codec,
                        file: body + CRC_SIZE,
                        stored_len: stored.len() as u32,
                    };
                    self.push(chunk, max)?;
                    done += n;
                }
                0x02..=0x7f => {
                    return Err(error(
                        ErrorKind::Unsupported,
                        format_args!("snappy chunk at file offset {at:#x} has reserved unskippable type {kind:#x}"),
                    ))
                }
                // The stream identifier, padding and reserved skippable chunks.
                _ => {}
            }
            at = body + chunk_len;
        }
        let stream_len = r.u64(at).map_err(|_| {
            error(
                ErrorKind::Truncated,
                format_args!("the stream length after the snappy frames at file offset {at:#x} is cut off"),
            )
        })?;
        if stream_len != at - data {
            return Err(error(
                ErrorKind::Malformed,
                format_args!("the stream length at file offset {at:#x} says {stream_len:#x} bytes; the frames that hold the block take {:#x}", at - data),
            ));
        }
        Ok(at + 8)
    }

    /// The guest memory the capture holds (backing = guest address).
    pub fn map(&self) -> &MemoryMap {
        &self.map
    }

    /// Where the chunk holding guest physical address `addr` is stored.
    pub(crate) fn lookup(&self, addr: u64) -> Lookup {
        let i = self.chunks.partition_point(|c| c.start + u64::from(c.len) <= addr);
        match self.chunks.get(i) {
            Some(c) if c.start <= addr => Lookup::Block(Block {
                start: c.start,
                len: u64::from(c.len),
                codec: c.codec,
                stored_at: c.file,
                stored_len: u64::from(c.stored_len),
            }),
            Some(c) => Lookup::Absent { end: c.start },
            None => Lookup::Absent { end: u64::MAX },
        }
    }

    /// The stored bytes of `block` (checked to lie in the file when indexed).
    pub(crate) fn stored<'a>(&self, file: &'a [u8], block: &Block) -> Result<Cow<'a, [u8]>> {
        ByteReader::new(file, false, "AVML file").bytes(block.stored_at, block.stored_len).map(Cow::Borrowed)
    }
}

/// An AVML block of `data` at guest address `first`, as `avml --compress` writes one (test
/// data, and what a writer of the format produces).
#[cfg(test)]
pub(crate) fn block(first: u64, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = header(first, first + data.len() as u64 - 1).to_vec();
    let mut frames = snap::write::FrameEncoder::new(Vec::new());
    frames.write_all(data).unwrap();
    let frames = frames.into_inner().unwrap();
    out.extend_from_slice(&frames);
    out.extend_from_slice(&(frames.len() as u64).to_le_bytes());
    out
}

#[cfg(test)]
mod tests;
