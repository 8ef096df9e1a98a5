//! Compressed kdump files (header version 6, see [`crate::connector::kdump::format`]) laid
//! out as QEMU writes them: the notes (with the `VMCOREINFO` note) in the sub header's blocks,
//! the two bitmaps, the page descriptors, then the page data, each page compressed on its
//! own (stored as it is when that does not shrink it); all-zero pages share one copy.
//!
//! Bitmap 1 (pages that exist) holds every page of the map; bitmap 2 (pages saved) leaves
//! the holes out. Room for a descriptor per page of the map is set aside before the data, as
//! the number of saved pages is only known at the end; the unused tail stays a sparse gap
//! (the reader finds the n-th saved page's descriptor by rank, never past the saved count).

use super::notes::{notes, NoteArea};
use super::output::Output;
use super::{DumpMeta, Plan, Sink, PAGE_SIZE};
use crate::connector::codec::{Codec, Compressors};
use crate::connector::elf::VmcoreInfo;
use crate::connector::kdump::format::{self, header, sub_header, PageDesc, PAGE_DESC_SIZE};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The machines (`utsname.machine`) whose 64-bit little-endian layout this writes.
const MACHINES: [&str; 3] = ["x86_64", "aarch64", "riscv64"];
/// Bytes of a bitmap buffered before they are written.
const BITMAP_WINDOW: u64 = 4096;

/// One bitmap written bit by bit in ascending order through a small window.
struct Bitmap {
    /// File offset of the bitmap.
    at: u64,
    /// Byte of the bitmap where the window starts.
    window_start: u64,
    window: [u8; BITMAP_WINDOW as usize],
}

impl Bitmap {
    fn new(at: u64) -> Self {
        Bitmap { at, window_start: 0, window: [0; BITMAP_WINDOW as usize] }
    }

    /// Sets bit `bit`, which is not below any bit set before.
    fn set(&mut self, out: &mut Output, bit: u64) -> Result<()> {
        let byte = bit / 8;
        if byte >= self.window_start + BITMAP_WINDOW {
            self.flush(out)?;
            self.window_start = byte / BITMAP_WINDOW * BITMAP_WINDOW;
        }
        self.window[(byte - self.window_start) as usize] |= 1 << (bit % 8);
        Ok(())
    }

    /// Writes the window (all-zero windows stay sparse) and clears it.
    fn flush(&mut self, out: &mut Output) -> Result<()> {
        if self.window.iter().any(|&b| b != 0) {
            out.write_at(self.at + self.window_start, &self.window)?;
            self.window = [0; BITMAP_WINDOW as usize];
        }
        Ok(())
    }
}

pub(crate) struct KdumpSink {
    codec: Codec,
    status: u32,
    machine: &'static str,
    release: String,
    phys_base: u64,
    notes: NoteArea,
    nr_cpus: u32,
    saved: Option<Bitmap>,
    compressors: Compressors,
    /// Offset of the next descriptor and of the next page data.
    desc_at: u64,
    data_at: u64,
    /// The descriptor of the first all-zero page written, shared by later ones.
    zero_page: Option<PageDesc>,
    /// Buffers of one [`Sink::data`] call.
    descs: Vec<u8>,
    data: Vec<u8>,
    packed: Vec<u8>,
}

impl KdumpSink {
    pub(crate) fn new(codec: Codec, meta: &DumpMeta) -> Result<Self> {
        let machine = MACHINES.into_iter().find(|m| *m == meta.arch.target_arch()).ok_or_else(|| {
            Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
                "a kdump of a {} target: only the 64-bit layouts of {MACHINES:?} are written",
                meta.arch.target_arch()
            ))
        })?;
        let status = format::codec_flag(codec);
        let info = meta.vmcoreinfo.as_deref().map(VmcoreInfo::parse).unwrap_or_default();
        let release = info.os_release().unwrap_or_default().to_owned();
        let phys_base = info.number("phys_base").map_or(0, |v| v as u64);
        Ok(KdumpSink {
            codec,
            status,
            machine,
            release,
            phys_base,
            notes: notes(meta),
            nr_cpus: meta.cpus.len().min(u32::MAX as usize) as u32,
            saved: None,
            compressors: Compressors::default(),
            desc_at: 0,
            data_at: 0,
            zero_page: None,
            descs: Vec::new(),
            data: Vec::new(),
            packed: Vec::new(),
        })
    }

    /// The header block: `max_mapnr` pages, `sub_blocks` sub header blocks, `bitmap_blocks`.
    fn header(&self, max_mapnr: u64, sub_blocks: u64, bitmap_blocks: u64) -> Result<Vec<u8>> {
        let too_big = || {
            Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded).with_reason(format_args!(
                "a kdump of {max_mapnr:#x} pages needs {bitmap_blocks} bitmap blocks: more than the header's 32-bit fields hold"
            ))
        };
        let mut h = vec![0u8; PAGE_SIZE as usize];
        let mut put = |at: u64, b: &[u8]| h[at as usize..at as usize + b.len()].copy_from_slice(b);
        put(0, &format::KDUMP_SIGNATURE);
        put(header::VERSION, &6u32.to_le_bytes());
        let utsname = |i: u64| header::UTSNAME + i * format::UTSNAME_FIELD;
        put(utsname(0), b"Linux");
        let release = &self.release.as_bytes()[..self.release.len().min(format::UTSNAME_FIELD as usize - 1)];
        put(utsname(2), release);
        put(utsname(4), self.machine.as_bytes());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        put(header::TIMESTAMP, &now.as_secs().to_le_bytes());
        put(header::TIMESTAMP + 8, &u64::from(now.subsec_micros()).to_le_bytes());
        put(header::STATUS, &self.status.to_le_bytes());
        put(header::BLOCK_SIZE, &(PAGE_SIZE as u32).to_le_bytes());
        put(header::SUB_HDR_SIZE, &u32::try_from(sub_blocks).map_err(|_| too_big())?.to_le_bytes());
        put(header::BITMAP_BLOCKS, &u32::try_from(bitmap_blocks).map_err(|_| too_big())?.to_le_bytes());
        put(header::MAX_MAPNR, &(max_mapnr.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        put(header::NR_CPUS, &self.nr_cpus.to_le_bytes());
        Ok(h)
    }

    /// The sub header followed by the notes.
    fn sub_header(&self, max_mapnr: u64) -> Vec<u8> {
        let mut s = vec![0u8; sub_header::SIZE as usize];
        let mut put = |at: u64, v: u64| s[at as usize..at as usize + 8].copy_from_slice(&v.to_le_bytes());
        put(sub_header::PHYS_BASE, self.phys_base);
        let notes_at = PAGE_SIZE + sub_header::SIZE;
        if let Some((at, len)) = self.notes.vmcoreinfo {
            put(sub_header::VMCOREINFO, notes_at + at);
            put(sub_header::VMCOREINFO + 8, len);
        }
        if !self.notes.bytes.is_empty() {
            put(sub_header::NOTE, notes_at);
            put(sub_header::NOTE + 8, self.notes.bytes.len() as u64);
        }
        put(sub_header::END_PFN_64, max_mapnr);
        put(sub_header::MAX_MAPNR_64, max_mapnr);
        s.extend_from_slice(&self.notes.bytes);
        s
    }

    /// Stores one page: its data (unless it is an all-zero page after the first) and its
    /// descriptor.
    fn page(&mut self, page: &[u8]) -> Result<()> {
        let zero = page.iter().all(|&b| b == 0);
        let desc = match self.zero_page.filter(|_| zero) {
            Some(shared) => shared,
            None => {
                self.compressors.compress(self.codec, page, &mut self.packed).map_err(|why| {
                    Error::new(ErrorOrigin::FileFormat, ErrorKind::Internal)
                        .with_reason(format_args!("compressing a page: {why}"))
                })?;
                let (stored, flags) =
                    if self.packed.len() < page.len() { (&self.packed[..], self.status) } else { (page, 0) };
                let desc = PageDesc {
                    offset: self.data_at + self.data.len() as u64,
                    size: stored.len() as u32,
                    flags,
                    page_flags: 0,
                };
                self.data.extend_from_slice(stored);
                if zero {
                    self.zero_page = Some(desc);
                }
                desc
            }
        };
        self.descs.extend_from_slice(&desc.encode());
        Ok(())
    }
}

impl Sink for KdumpSink {
    fn begin(&mut self, out: &mut Output, plan: &Plan) -> Result<()> {
        let max_mapnr = plan.end() / PAGE_SIZE;
        let pages = plan.total() / PAGE_SIZE;
        let sub = self.sub_header(max_mapnr);
        let sub_blocks = (sub.len() as u64).div_ceil(PAGE_SIZE);
        let half_blocks = max_mapnr.div_ceil(8).div_ceil(PAGE_SIZE).max(1);
        let bitmap_at = PAGE_SIZE * (1 + sub_blocks);
        let desc_base = bitmap_at + 2 * half_blocks * PAGE_SIZE;
        out.write_at(0, &self.header(max_mapnr, sub_blocks, 2 * half_blocks)?)?;
        out.write_at(PAGE_SIZE, &sub)?;
        let mut existing = Bitmap::new(bitmap_at);
        for &(start, end) in &plan.ranges {
            for pfn in start / PAGE_SIZE..end / PAGE_SIZE {
                existing.set(out, pfn)?;
            }
        }
        existing.flush(out)?;
        self.saved = Some(Bitmap::new(bitmap_at + half_blocks * PAGE_SIZE));
        self.desc_at = desc_base;
        self.data_at = (desc_base + pages * PAGE_DESC_SIZE).next_multiple_of(PAGE_SIZE);
        Ok(())
    }

    fn data(&mut self, out: &mut Output, addr: u64, bytes: &[u8]) -> Result<()> {
        self.descs.clear();
        self.data.clear();
        for (i, page) in bytes.chunks(PAGE_SIZE as usize).enumerate() {
            self.page(page)?;
            if let Some(saved) = &mut self.saved {
                saved.set(out, addr / PAGE_SIZE + i as u64)?;
            }
        }
        out.write_at(self.desc_at, &self.descs)?;
        self.desc_at += self.descs.len() as u64;
        out.write_at(self.data_at, &self.data)?;
        self.data_at += self.data.len() as u64;
        Ok(())
    }

    fn finish(&mut self, out: &mut Output, _plan: &Plan) -> Result<()> {
        if let Some(saved) = &mut self.saved {
            saved.flush(out)?;
        }
        // Without pages the file would end before the bitmaps and descriptors it announces.
        let len = out.size()?.max(self.data_at);
        out.set_len(len)
    }
}
