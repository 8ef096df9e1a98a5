//! A loaded module rebuilt as a file: each loaded segment's file bytes (`p_filesz` of them,
//! read from memory) placed at its file offset (`p_offset`), so that the headers, code and
//! read-only data are the file's again. The ELF header and program headers come from memory
//! with the segment that holds them; section headers the loader did not map (the usual case:
//! they sit at the end of the file) cannot be recovered and are dropped from the header
//! (`e_shoff`, `e_shnum` and `e_shstrndx` zero), so that tools still parse the result. Writable
//! segments hold their run-time contents (relocated pointers, changed data), not the file's,
//! but for the dynamic segment: the loader rewrites some of its pointers to run-time addresses
//! (see the [`super`] docs), which are turned back into link-time ones, so that tools find the
//! tables they point to in the file.
//!
//! The file is written by the dump writer's machinery: under a temporary name until complete,
//! with progress and cancellation, and pages that cannot be read are holes (left as zeros in
//! the file and listed in the summary by their addresses), never invented bytes.

use std::ops::ControlFlow;
use std::path::Path;

use goblin::elf::dynamic::{
    DT_FINI, DT_FINI_ARRAY, DT_GNU_HASH, DT_HASH, DT_INIT, DT_INIT_ARRAY, DT_JMPREL, DT_NULL, DT_PLTGOT,
    DT_PREINIT_ARRAY, DT_REL, DT_RELA, DT_STRTAB, DT_SYMTAB, DT_VERDEF, DT_VERNEED, DT_VERSYM,
};
use goblin::elf::program_header::{PT_DYNAMIC, PT_LOAD};

use super::{le_uint, ElfImage, MAX_DYNAMIC_ENTRIES};
use crate::connector::write::output::Output;
use crate::connector::write::{write_with, Plan, Progress, Sink, ViewSource, WriteSummary};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::alloc::zeroed_vec;
use crate::mem::MemoryView;
use crate::translate::MemoryRange;
use crate::types::{umem, Address, PageType};

/// The largest file rebuilt (the largest shared objects are a few hundred MiB).
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// The unit segments are mapped in.
const PAGE: u64 = super::PAGE;

/// The file bytes of one loaded segment: `len` bytes at file `offset`, mapped at `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileSegment {
    addr: u64,
    offset: u64,
    len: u64,
}

/// Rebuilds the file of the ELF module mapped at `base` in `view` and writes it to `path`;
/// `progress` is called as the segments are read and may stop the write. PE images (`MZ`) and
/// anything else that is not a little-endian ELF image fail with `Unsupported` or
/// `Malformed`; counts, offsets and sizes from memory beyond reason fail with
/// `LimitExceeded` or `Malformed` before anything is written.
pub fn rebuild_file<V: MemoryView>(
    mut view: V,
    base: Address,
    path: &Path,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<WriteSummary> {
    let mut magic = [0u8; 2];
    view.read_raw_into(base, &mut magic).data()?;
    if &magic == b"MZ" {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported)
            .with_reason(format_args!("the module at {base} is a PE image: only ELF modules can be rebuilt")));
    }
    let image = ElfImage::parse(&mut view, base)?;
    let segments = image.file_segments()?;
    let header = image.rebuilt_header(&segments);
    let file_size = segments.iter().map(|s| s.offset + s.len).fold(header.len() as u64, u64::max);
    let dynamic = image.phdrs.iter().find(|p| p.p_type == PT_DYNAMIC).and_then(|p| {
        let entry = if image.ctx.container.is_big() { 16 } else { 8 };
        let len = p.p_filesz.min((MAX_DYNAMIC_ENTRIES * entry) as u64) as usize / entry * entry;
        let end = p.p_offset.checked_add(len as u64).filter(|&end| end <= file_size)?;
        Some((p.p_offset, end - p.p_offset))
    });
    let source = ViewSource::new(view, &page_ranges(&segments))?;
    let sink = ModuleSink { image, segments, header, dynamic, file_size };
    write_with(&mut { source }, path, Box::new(sink), progress)
}

/// The whole pages `segments` lie in, sorted, merged where they overlap or touch.
fn page_ranges(segments: &[FileSegment]) -> Vec<MemoryRange> {
    let mut pages: Vec<(u64, u64)> = segments
        .iter()
        .filter(|s| s.len > 0)
        .map(|s| (s.addr / PAGE * PAGE, (s.addr + s.len).div_ceil(PAGE) * PAGE))
        .collect();
    pages.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(pages.len());
    for (start, end) in pages {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
        .iter()
        .map(|&(start, end)| MemoryRange {
            base: Address::from(start),
            size: (end - start) as umem,
            page_type: PageType::UNKNOWN,
        })
        .collect()
}

impl ElfImage {
    /// The file bytes of each loaded segment, checked to lie inside the image in memory and,
    /// in the file, below [`MAX_FILE_BYTES`] (all of them together too).
    fn file_segments(&self) -> Result<Vec<FileSegment>> {
        let mut segments = Vec::new();
        let mut total = 0u64;
        for p in self.phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
            let end = p.p_offset.checked_add(p.p_filesz).filter(|&end| end <= MAX_FILE_BYTES);
            total = total.saturating_add(p.p_filesz);
            if end.is_none() || total > MAX_FILE_BYTES {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded).with_reason(format_args!(
                    "ELF image at {}: a segment of {:#x} file bytes at offset {:#x} (at most {MAX_FILE_BYTES:#x} are rebuilt)",
                    self.base, p.p_filesz, p.p_offset
                )));
            }
            let addr = self.inside(self.runtime(p.p_vaddr), p.p_filesz as umem, "loaded segment")?;
            let addr =
                u64::try_from(addr.to_umem()).map_err(|_| Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed))?;
            segments.push(FileSegment { addr, offset: p.p_offset, len: p.p_filesz });
        }
        Ok(segments)
    }

    /// The ELF header as a file rebuilt from `segments` has it: the one in memory, without
    /// the section header table unless a segment carries all of it.
    fn rebuilt_header(&self, segments: &[FileSegment]) -> Vec<u8> {
        let h = &self.header;
        let table = u64::from(h.e_shnum.max(1)) * u64::from(h.e_shentsize);
        let carried = h
            .e_shoff
            .checked_add(table)
            .is_some_and(|end| segments.iter().any(|s| s.offset <= h.e_shoff && end <= s.offset + s.len));
        let wide = self.ctx.container.is_big();
        let mut bytes = self.header_bytes[..if wide { 64 } else { 52 }].to_vec();
        if !carried {
            // e_shoff, then e_shnum and e_shstrndx (after e_flags, e_ehsize, e_phentsize, e_phnum
            // and e_shentsize).
            let (shoff, shnum) = if wide { (0x28..0x30, 0x3c..0x40) } else { (0x20..0x24, 0x30..0x34) };
            bytes[shoff].fill(0);
            bytes[shnum].fill(0);
        }
        bytes
    }
}

/// Places the bytes of the segments' pages at the segments' file offsets.
struct ModuleSink {
    image: ElfImage,
    segments: Vec<FileSegment>,
    header: Vec<u8>,
    /// The dynamic segment's place in the file, `(offset, length)` (whole entries).
    dynamic: Option<(u64, u64)>,
    file_size: u64,
}

/// Dynamic entries whose value is an address the loader may have made a run-time one.
const POINTER_TAGS: [u64; 16] = [
    DT_PLTGOT,
    DT_HASH,
    DT_STRTAB,
    DT_SYMTAB,
    DT_RELA,
    DT_INIT,
    DT_FINI,
    DT_REL,
    DT_JMPREL,
    DT_INIT_ARRAY,
    DT_FINI_ARRAY,
    DT_PREINIT_ARRAY,
    DT_GNU_HASH,
    DT_VERSYM,
    DT_VERDEF,
    DT_VERNEED,
];

impl ModuleSink {
    /// Turns the run-time addresses in the dynamic segment, as written, into link-time ones.
    fn unrelocate_dynamic(&self, out: &mut Output) -> Result<()> {
        let Some((offset, len)) = self.dynamic else { return Ok(()) };
        let mut table = zeroed_vec::<u8>(len as usize, ErrorOrigin::FileFormat, "the dynamic segment")?;
        out.read_at(offset, &mut table)?;
        let word = if self.image.ctx.container.is_big() { 8 } else { 4 };
        for entry in table.chunks_exact_mut(2 * word) {
            let (tag, value) = entry.split_at_mut(word);
            let tag = le_uint(tag);
            if tag == DT_NULL {
                break;
            }
            let addr = Address::from(le_uint(value));
            if POINTER_TAGS.contains(&tag) && addr >= self.image.base && addr - self.image.base < self.image.span {
                let link = ((addr - self.image.base) as u64).wrapping_add(self.image.link_base);
                value.copy_from_slice(&link.to_le_bytes()[..word]);
            }
        }
        out.write_at(offset, &table)
    }
}

impl Sink for ModuleSink {
    fn begin(&mut self, _out: &mut Output, _plan: &Plan) -> Result<()> {
        Ok(())
    }

    fn data(&mut self, out: &mut Output, addr: u64, bytes: &[u8]) -> Result<()> {
        let end = addr + bytes.len() as u64;
        for s in &self.segments {
            let (lo, hi) = (addr.max(s.addr), end.min(s.addr + s.len));
            if lo < hi {
                out.write_at(s.offset + (lo - s.addr), &bytes[(lo - addr) as usize..(hi - addr) as usize])?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Output, _plan: &Plan) -> Result<()> {
        out.write_at(0, &self.header)?;
        self.unrelocate_dynamic(out)?;
        out.set_len(self.file_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_segments_merge_where_they_share_a_page() {
        let s = |addr, len| FileSegment { addr, offset: 0, len };
        let ranges = page_ranges(&[s(0x5000, 0x10), s(0x1000, 0x1234), s(0x2300, 0x100), s(0x9000, 0)]);
        let got: Vec<(u64, u64)> = ranges.iter().map(|r| (r.base.to_umem() as u64, r.size as u64)).collect();
        assert_eq!(got, [(0x1000, 0x2000), (0x5000, 0x1000)]);
    }
}
