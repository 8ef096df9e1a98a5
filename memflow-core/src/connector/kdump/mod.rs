//! Compressed kdump files ("KDUMP" diskdumps written by makedumpfile and QEMU), plain or in
//! makedumpfile's flattened form (see [`format`] for the layout).
//!
//! Pages are found without an index of their own: bitmap 2 says which pages were saved, and
//! the n-th saved page has the n-th page descriptor, so a lookup is a bit test, a rank (a
//! prefix count per 512 pages plus a few popcounts) and one 24-byte read. Pages that exist
//! (bitmap 1) but were not saved (filtered out by makedumpfile's `-d`) read as absent.
//!
//! Only the layouts of 64-bit little-endian machines are read (the header's `utsname.machine`
//! names the machine); CPU registers are taken from the x86-64 notes.
//!
//! The input is untrusted: every size is checked against the file before anything is
//! allocated for it, and every page descriptor is checked at open, so a read can only fail
//! on data that does not decompress to a page.

mod flat;
pub mod format;

use std::borrow::Cow;

use flat::DumpBytes;
use format::{header, sub_header, PageDesc, PAGE_DESC_SIZE};

use super::bytes::ByteReader;
use super::codec::Codec;
use super::compressed::{Block, Lookup};
use super::elf::{CpuFamily, Notes, VmcoreInfo};
use super::file::{DumpFormat, DumpInfo};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::alloc::zeroed_vec;
use crate::mem::MemoryMap;
use crate::types::{umem, Address};

#[cfg(test)]
pub(crate) use flat::flatten as flat_stream;
pub(crate) use flat::is_flattened;

/// True if `bytes` starts with the kdump signature.
pub fn is_kdump(bytes: &[u8]) -> bool {
    bytes.starts_with(&format::KDUMP_SIGNATURE)
}

/// The most runs of existing pages accepted (each becomes a range of the memory map).
pub const MAX_RANGES: usize = 65536;

/// The machines whose kdump headers have the 64-bit little-endian layout read here.
const MACHINES: [&str; 4] = ["x86_64", "aarch64", "riscv64", "ppc64le"];

/// Words of bitmap per entry of the rank table.
const RANK_WORDS: usize = 8;

/// The smallest sub header of each header version (index = version, capped at 6).
const SUB_HEADER_NEEDED: [u64; 7] = [0, 16, 32, 48, 64, 80, sub_header::SIZE];

/// A parsed kdump: how to find each saved page.
#[derive(Debug)]
pub struct Kdump {
    bytes: DumpBytes,
    block_size: u64,
    max_mapnr: u64,
    /// Bitmap 2 (saved pages), bit `pfn % 64` of word `pfn / 64`.
    saved: Vec<u64>,
    /// Saved pages before each group of [`RANK_WORDS`] words.
    rank: Vec<u64>,
    /// Dump offset of the first page descriptor.
    desc_base: u64,
    /// The dump was cut short: descriptors past its end, or empty ones, mean "not saved".
    incomplete: bool,
    /// The pages that exist, as guest physical ranges (backing = guest address).
    map: MemoryMap,
}

fn malformed(reason: impl core::fmt::Display) -> Error {
    Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(reason)
}

/// The codec of a page descriptor's flags; `None` for more than one or an unknown one.
fn codec(flags: u32) -> Option<Codec> {
    use format::*;
    let bits = DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD;
    Some(match flags & bits {
        0 => Codec::Stored,
        DUMP_DH_COMPRESSED_ZLIB => Codec::Zlib,
        DUMP_DH_COMPRESSED_LZO => Codec::Lzo,
        DUMP_DH_COMPRESSED_SNAPPY => Codec::Snappy,
        DUMP_DH_COMPRESSED_ZSTD => Codec::Zstd,
        _ => return None,
    })
}

/// The NUL-terminated string in `field`.
fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Calls `f(first, count)` for each run of set bits among the first `bits` bits of the
/// little-endian bitmap `bytes`; stops at the first error.
fn for_runs(bytes: &[u8], bits: u64, mut f: impl FnMut(u64, u64) -> Result<()>) -> Result<()> {
    let mut run: Option<u64> = None;
    for (w, chunk) in bytes.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let base = w as u64 * 64;
        // Whole words of zeros or ones (most of a bitmap) cost one test.
        if (word == 0 && run.is_none()) || (word == u64::MAX && run.is_some()) {
            continue;
        }
        for bit in 0..64 {
            let set = word >> bit & 1 == 1 && base + bit < bits;
            match (set, run) {
                (true, None) => run = Some(base + bit),
                (false, Some(start)) => {
                    f(start, base + bit - start)?;
                    run = None;
                }
                _ => {}
            }
        }
    }
    match run {
        Some(start) => f(start, bits.min(bytes.len() as u64 * 8) - start),
        None => Ok(()),
    }
}

impl Kdump {
    /// Parses the kdump (plain or flattened) in `file`.
    pub fn parse(file: &[u8]) -> Result<(Kdump, DumpInfo)> {
        let flattened = is_flattened(file);
        let bytes = if flattened { DumpBytes::flattened(file)? } else { DumpBytes::Plain };
        let dump_len = bytes.len(file);
        let head = bytes.read(file, 0, header::SIZE, "kdump header")?;
        let h = ByteReader::new(&head, false, "kdump header");
        if h.bytes(0, 8)? == format::DISKDUMP_SIGNATURE {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported)
                .with_reason("an old-style DISKDUMP file (signature \"DISKDUMP\"): only KDUMP files are read"));
        }
        if h.bytes(0, 8)? != format::KDUMP_SIGNATURE {
            return Err(malformed("the dump does not start with the \"KDUMP   \" signature"));
        }
        let utsname =
            |i: u64| h.bytes(header::UTSNAME + i * format::UTSNAME_FIELD, format::UTSNAME_FIELD).map(c_string);
        let (release, machine) = (utsname(2)?, utsname(4)?);
        // makedumpfile leaves the name empty when the dump it converted had no VMCOREINFO (e.g.
        // a QEMU ELF core without one). Such a file has the layout of the machine that wrote
        // it: read as 64-bit little-endian (the checks below refuse a header that is not), with
        // CPU notes decoded where their sizes are x86-64's.
        let unnamed = machine.is_empty();
        if !unnamed && !MACHINES.contains(&machine.as_str()) {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
                "a kdump of a {machine:?} machine: only the 64-bit little-endian layouts of {MACHINES:?} are read"
            )));
        }
        let version = h.u32(header::VERSION)? as i32;
        let status = h.u32(header::STATUS)?;
        let block_size = u64::from(h.u32(header::BLOCK_SIZE)?);
        let sub_blocks = u64::from(h.u32(header::SUB_HDR_SIZE)?);
        let bitmap_blocks = u64::from(h.u32(header::BITMAP_BLOCKS)?);
        if version < 1 {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported)
                .with_reason(format_args!("kdump header version {version}: version 1 and later are read")));
        }
        if !block_size.is_power_of_two() || !(512..=1 << 20).contains(&block_size) {
            return Err(malformed(format_args!(
                "kdump block size (header offset {:#x}) is {block_size:#x}: not a power of two from 512 to 1 MiB",
                header::BLOCK_SIZE
            )));
        }
        if bitmap_blocks == 0 || bitmap_blocks % 2 != 0 || sub_blocks > u64::from(u32::MAX >> 1) {
            return Err(malformed(format_args!(
                "kdump header: {bitmap_blocks} bitmap blocks (must be even, not 0) and {sub_blocks} sub header blocks"
            )));
        }
        // All products below stay far from overflowing: each factor is below 2^32 or 2^20.
        let sub_needed = SUB_HEADER_NEEDED[version.min(6) as usize];
        if sub_blocks * block_size < sub_needed {
            return Err(malformed(format_args!(
                "kdump header version {version} needs a {sub_needed}-byte sub header; it has {sub_blocks} blocks of {block_size:#x} bytes"
            )));
        }
        let sub = bytes.read(file, block_size, sub_needed, "kdump sub header")?;
        let s = ByteReader::new(&sub, false, "kdump sub header");
        let dump_level = s.u32(sub_header::DUMP_LEVEL)?;
        if version >= 2 && s.u32(sub_header::SPLIT)? != 0 {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(
                "one part of a split kdump (makedumpfile --split): join the parts with makedumpfile --reassemble",
            ));
        }
        let max_mapnr =
            if version >= 6 { s.u64(sub_header::MAX_MAPNR_64)? } else { u64::from(h.u32(header::MAX_MAPNR)?) };

        // The bitmaps: each half of the bitmap blocks, one bit per page.
        let bitmap_at = block_size * (1 + sub_blocks);
        let half = bitmap_blocks / 2 * block_size;
        if max_mapnr.div_ceil(8) > half || max_mapnr.checked_mul(block_size).is_none() {
            return Err(malformed(format_args!(
                "kdump header claims {max_mapnr:#x} pages: more than its {half:#x} byte bitmaps hold, or beyond 64-bit addresses"
            )));
        }
        let bitmap_len = max_mapnr.div_ceil(8);
        let existing = bytes.read(file, bitmap_at, bitmap_len, "kdump bitmap 1 (existing pages)")?;
        let saved_bytes = bytes.read(file, bitmap_at + half, bitmap_len, "kdump bitmap 2 (saved pages)")?;
        let mut saved = zeroed_vec::<u64>(max_mapnr.div_ceil(64) as usize, ErrorOrigin::FileFormat, "kdump bitmap")?;
        for (word, chunk) in saved.iter_mut().zip(saved_bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_le_bytes(b);
        }
        if max_mapnr % 64 != 0 {
            if let Some(last) = saved.last_mut() {
                *last &= (1u64 << (max_mapnr % 64)) - 1;
            }
        }
        let mut rank =
            zeroed_vec::<u64>(saved.len().div_ceil(RANK_WORDS), ErrorOrigin::FileFormat, "kdump rank table")?;
        let mut count = 0u64;
        for (group, words) in rank.iter_mut().zip(saved.chunks(RANK_WORDS)) {
            *group = count;
            count += words.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        }

        let incomplete = status & format::DUMP_DH_COMPRESSED_INCOMPLETE != 0;
        let desc_base = block_size * (1 + sub_blocks + bitmap_blocks);
        let desc_end = desc_base + count * PAGE_DESC_SIZE;
        if desc_end > dump_len && !incomplete {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                "bitmap 2 claims {count} saved pages, whose descriptors at offset {desc_base:#x}..{desc_end:#x} run past the end of the {dump_len:#x} byte dump"
            )));
        }
        let mut map = MemoryMap::new();
        let mut ranges = 0usize;
        let mut either = existing.into_owned();
        for (e, s) in either.iter_mut().zip(saved_bytes.iter()) {
            *e |= s;
        }
        for_runs(&either, max_mapnr, |first, pages| {
            ranges += 1;
            if ranges > MAX_RANGES {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
                    .with_reason(format_args!("the kdump bitmaps hold more than {MAX_RANGES} runs of pages")));
            }
            let base = umem::from(first * block_size);
            map.push(Address::new(base), umem::from(pages * block_size), base)
        })?;
        drop(either);

        let kdump = Kdump { bytes, block_size, max_mapnr, saved, rank, desc_base, incomplete, map };
        kdump.check_descriptors(file, count)?;

        let family = match machine.as_str() {
            _ if unnamed => CpuFamily::X86,
            "x86_64" => CpuFamily::X86,
            "aarch64" => CpuFamily::AArch64,
            "riscv64" => CpuFamily::RiscV,
            _ => CpuFamily::Other,
        };
        let mut notes = Notes::new(family);
        if version >= 4 {
            let (at, len) = (s.u64(sub_header::NOTE)?, s.u64(sub_header::NOTE + 8)?);
            if len > 0 {
                let area = kdump.bytes.read(file, at, len, "kdump note area")?;
                notes.segment(&ByteReader::new(&area, false, "kdump note area"), "the kdump note area")?;
            }
        }
        let (cpus, note_vmcoreinfo) = notes.finish();
        let mut vmcoreinfo = note_vmcoreinfo;
        if version >= 3 {
            let (at, len) = (s.u64(sub_header::VMCOREINFO)?, s.u64(sub_header::VMCOREINFO + 8)?);
            if len > 0 {
                vmcoreinfo = Some(VmcoreInfo::parse(&kdump.bytes.read(file, at, len, "kdump vmcoreinfo")?));
            }
        }

        let format = if flattened { DumpFormat::FlattenedKdump } else { DumpFormat::Kdump };
        let description = format!(
            "{}kdump v{version} of {} Linux {release}: {block_size}-byte pages, {count} of {} saved ({}), dump level {dump_level}{}",
            if flattened { "flattened " } else { "" },
            if unnamed { "an unnamed machine's" } else { machine.as_str() },
            kdump.map.real_size() / umem::from(block_size),
            kdump_codecs(status),
            if incomplete { ", INCOMPLETE (cut short when written)" } else { "" }
        );
        Ok((
            kdump,
            DumpInfo {
                format,
                description,
                cpus: cpus.x86,
                aarch64_cpus: cpus.aarch64,
                riscv_cpus: cpus.riscv,
                vmcoreinfo,
            },
        ))
    }

    /// Checks every page descriptor: a known codec, a size no larger than a page (exactly a
    /// page when stored uncompressed) and data inside the dump. In an incomplete dump,
    /// descriptors past its end or left empty mean "not saved".
    fn check_descriptors(&self, file: &[u8], count: u64) -> Result<()> {
        const BATCH: u64 = 4096;
        let dump_len = self.bytes.len(file);
        let mut index = 0;
        while index < count {
            let n = BATCH.min(count - index);
            let at = self.desc_base + index * PAGE_DESC_SIZE;
            let table = match self.bytes.read(file, at, n * PAGE_DESC_SIZE, "kdump page descriptors") {
                Ok(table) => table,
                Err(_) if self.incomplete => return Ok(()),
                Err(e) => return Err(e),
            };
            let table = ByteReader::new(&table, false, "kdump page descriptors");
            for i in 0..n {
                let d = PageDesc::parse(&table, i * PAGE_DESC_SIZE)?;
                self.check(&d, at + i * PAGE_DESC_SIZE, dump_len)?;
            }
            index += n;
        }
        Ok(())
    }

    /// Checks the descriptor `d` found at offset `at` (see [`Self::check_descriptors`]) and
    /// returns its codec, or `None` for a page an incomplete dump does not hold.
    fn check(&self, d: &PageDesc, at: u64, dump_len: u64) -> Result<Option<Codec>> {
        if self.incomplete && d.size == 0 {
            return Ok(None);
        }
        let codec = codec(d.flags).ok_or_else(|| {
            Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
                "page descriptor at offset {at:#x} has unknown compression flags {:#x}",
                d.flags
            ))
        })?;
        let size = u64::from(d.size);
        if size == 0 || size > self.block_size || (codec == Codec::Stored && size != self.block_size) {
            return Err(malformed(format_args!(
                "page descriptor at offset {at:#x} gives {size:#x} bytes of {} data for a {:#x} byte page",
                codec.name(),
                self.block_size
            )));
        }
        if d.offset.checked_add(size).is_none_or(|end| end > dump_len) {
            if self.incomplete {
                return Ok(None);
            }
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                "page descriptor at offset {at:#x} puts {size:#x} bytes of page data at offset {:#x}, past the end of the {dump_len:#x} byte dump",
                d.offset
            )));
        }
        Ok(Some(codec))
    }

    /// The page size of the dump.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// The pages that exist, as guest physical ranges (backing = guest address).
    pub fn map(&self) -> &MemoryMap {
        &self.map
    }

    /// Where the page holding guest physical address `addr` is stored.
    pub(crate) fn lookup(&self, file: &[u8], addr: u64) -> Result<Lookup> {
        let pfn = addr / self.block_size;
        if pfn >= self.max_mapnr {
            return Ok(Lookup::Absent { end: u64::MAX });
        }
        let start = pfn * self.block_size;
        let (word, bit) = ((pfn / 64) as usize, pfn % 64);
        if self.saved[word] >> bit & 1 == 0 {
            return Ok(Lookup::Absent { end: start + self.block_size });
        }
        let group = word / RANK_WORDS;
        let before: u64 = self.saved[group * RANK_WORDS..word].iter().map(|w| u64::from(w.count_ones())).sum();
        let index = self.rank[group] + before + u64::from((self.saved[word] & ((1u64 << bit) - 1)).count_ones());
        let at = self.desc_base + index * PAGE_DESC_SIZE;
        let d = match self.bytes.read(file, at, PAGE_DESC_SIZE, "kdump page descriptor") {
            Ok(raw) => PageDesc::parse(&ByteReader::new(&raw, false, "kdump page descriptor"), 0)?,
            Err(_) if self.incomplete => return Ok(Lookup::Absent { end: start + self.block_size }),
            Err(e) => return Err(e),
        };
        match self.check(&d, at, self.bytes.len(file))? {
            Some(codec) => Ok(Lookup::Block(Block {
                start,
                len: self.block_size,
                codec,
                stored_at: d.offset,
                stored_len: u64::from(d.size),
            })),
            None => Ok(Lookup::Absent { end: start + self.block_size }),
        }
    }

    /// The stored bytes of `block`.
    pub(crate) fn stored<'a>(&self, file: &'a [u8], block: &Block) -> Result<Cow<'a, [u8]>> {
        self.bytes.read(file, block.stored_at, block.stored_len, "kdump page data")
    }
}

/// The codecs the header's status announces, for the description.
fn kdump_codecs(status: u32) -> String {
    use format::*;
    let names: Vec<&str> = [
        (DUMP_DH_COMPRESSED_ZLIB, "zlib"),
        (DUMP_DH_COMPRESSED_LZO, "lzo"),
        (DUMP_DH_COMPRESSED_SNAPPY, "snappy"),
        (DUMP_DH_COMPRESSED_ZSTD, "zstd"),
    ]
    .into_iter()
    .filter(|(bit, _)| status & bit != 0)
    .map(|(_, name)| name)
    .collect();
    if names.is_empty() {
        "uncompressed".into()
    } else {
        names.join("+")
    }
}

#[cfg(test)]
mod tests;
