//! Compressed kdump files built from pages, for tests: a minimal writer of the format laid out
//! as QEMU lays it out (notes and vmcoreinfo inside the sub header blocks, all-zero pages
//! stored once and shared, pages that do not shrink stored as they are).

use std::collections::BTreeMap;

use super::format::{self, header, sub_header, PageDesc};
use crate::connector::codec::{compress, Codec};

/// What to put in the file.
pub(crate) struct KdumpFile {
    pub(crate) block_size: u64,
    pub(crate) max_mapnr: u64,
    /// Saved pages by pfn.
    pub(crate) pages: BTreeMap<u64, Vec<u8>>,
    /// Pages that exist but were not saved (set in bitmap 1 only).
    pub(crate) excluded: Vec<u64>,
    pub(crate) codec: Codec,
    pub(crate) machine: &'static str,
    pub(crate) notes: Vec<u8>,
    pub(crate) vmcoreinfo: Vec<u8>,
}

/// A built file and where its parts are.
pub(crate) struct Built {
    pub(crate) bytes: Vec<u8>,
    pub(crate) desc_base: u64,
}

impl KdumpFile {
    /// An x86-64 dump of 4 KiB pages, `max_mapnr` pages, none saved yet.
    pub(crate) fn new(codec: Codec, max_mapnr: u64) -> Self {
        KdumpFile {
            block_size: 4096,
            max_mapnr,
            pages: BTreeMap::new(),
            excluded: Vec::new(),
            codec,
            machine: "x86_64",
            notes: Vec::new(),
            vmcoreinfo: Vec::new(),
        }
    }

    pub(crate) fn build(&self) -> Built {
        let bs = self.block_size;
        let blocks = |n: u64| n.div_ceil(bs);
        let status = match self.codec {
            Codec::Stored => 0,
            Codec::Zlib => format::DUMP_DH_COMPRESSED_ZLIB,
            Codec::Lzo => format::DUMP_DH_COMPRESSED_LZO,
            Codec::Snappy => format::DUMP_DH_COMPRESSED_SNAPPY,
            Codec::Zstd => format::DUMP_DH_COMPRESSED_ZSTD,
        };
        let extra_at = bs + sub_header::SIZE;
        let notes_at = extra_at + self.vmcoreinfo.len() as u64;
        let sub_blocks = blocks(sub_header::SIZE + self.vmcoreinfo.len() as u64 + self.notes.len() as u64);
        let half = blocks(self.max_mapnr.div_ceil(8)).max(1) * bs;
        let bitmap_at = bs * (1 + sub_blocks);
        let desc_base = bitmap_at + 2 * half;
        let data_base = desc_base + self.pages.len() as u64 * format::PAGE_DESC_SIZE;

        let mut out = vec![0u8; data_base as usize];
        let put = |out: &mut Vec<u8>, at: u64, b: &[u8]| out[at as usize..at as usize + b.len()].copy_from_slice(b);
        put(&mut out, 0, &format::KDUMP_SIGNATURE);
        put(&mut out, header::VERSION, &6u32.to_le_bytes());
        put(&mut out, header::UTSNAME, b"Linux");
        put(&mut out, header::UTSNAME + 2 * format::UTSNAME_FIELD, b"6.1.0-test");
        put(&mut out, header::UTSNAME + 4 * format::UTSNAME_FIELD, self.machine.as_bytes());
        put(&mut out, header::STATUS, &status.to_le_bytes());
        put(&mut out, header::BLOCK_SIZE, &(bs as u32).to_le_bytes());
        put(&mut out, header::SUB_HDR_SIZE, &(sub_blocks as u32).to_le_bytes());
        put(&mut out, header::BITMAP_BLOCKS, &((2 * half / bs) as u32).to_le_bytes());
        put(&mut out, header::MAX_MAPNR, &(self.max_mapnr.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        put(&mut out, header::NR_CPUS, &1u32.to_le_bytes());
        let sub = |field: u64| bs + field;
        put(&mut out, sub(sub_header::DUMP_LEVEL), &1u32.to_le_bytes());
        for (field, at, len) in
            [(sub_header::VMCOREINFO, extra_at, self.vmcoreinfo.len()), (sub_header::NOTE, notes_at, self.notes.len())]
        {
            if len > 0 {
                put(&mut out, sub(field), &at.to_le_bytes());
                put(&mut out, sub(field + 8), &(len as u64).to_le_bytes());
            }
        }
        put(&mut out, sub(sub_header::END_PFN_64), &self.max_mapnr.to_le_bytes());
        put(&mut out, sub(sub_header::MAX_MAPNR_64), &self.max_mapnr.to_le_bytes());
        put(&mut out, extra_at, &self.vmcoreinfo);
        put(&mut out, notes_at, &self.notes);

        let set = |out: &mut Vec<u8>, bitmap: u64, pfn: u64| out[(bitmap + pfn / 8) as usize] |= 1 << (pfn % 8);
        for &pfn in &self.excluded {
            set(&mut out, bitmap_at, pfn);
        }
        let mut zero_page: Option<PageDesc> = None;
        for (i, (&pfn, page)) in self.pages.iter().enumerate() {
            set(&mut out, bitmap_at, pfn);
            set(&mut out, bitmap_at + half, pfn);
            let desc = match zero_page.filter(|_| page.iter().all(|&b| b == 0)) {
                Some(shared) => shared,
                None => {
                    let packed = compress(self.codec, page);
                    let (data, flags) = if packed.len() < page.len() { (packed, status) } else { (page.clone(), 0) };
                    let desc = PageDesc { offset: out.len() as u64, size: data.len() as u32, flags, page_flags: 0 };
                    out.extend_from_slice(&data);
                    if page.iter().all(|&b| b == 0) {
                        zero_page = Some(desc);
                    }
                    desc
                }
            };
            put(&mut out, desc_base + i as u64 * format::PAGE_DESC_SIZE, &desc.encode());
        }
        Built { bytes: out, desc_base }
    }
}
