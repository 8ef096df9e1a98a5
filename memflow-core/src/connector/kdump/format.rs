//! The on-disk structures of the compressed kdump ("diskdump") format that makedumpfile and
//! QEMU's `dump-guest-memory -z|-l|-s` write, and of makedumpfile's flattened stream: field
//! offsets, flags and encoders, shared by the reader and by anything that writes the format.
//!
//! Layout of a dump (64-bit targets, little endian, `B` = `block_size`, usually the page size):
//!
//! ```text
//! 0            disk_dump_header (signature "KDUMP   ", version, utsname, status, ...)
//! B            kdump_sub_header (sub_hdr_size blocks: phys_base, notes, vmcoreinfo, 64-bit pfns)
//! B*(1+sub)    bitmap 1 (pages that exist) then bitmap 2 (pages saved), bitmap_blocks/2 each
//! ...          page_desc_t per saved page, in pfn order (offset, size, flags, page_flags)
//! ...          page data, compressed one page at a time (all-zero pages may share one copy)
//! ```

use crate::connector::bytes::ByteReader;
use crate::connector::codec::Codec;
use crate::error::Result;

/// The signature of a compressed kdump.
pub const KDUMP_SIGNATURE: [u8; 8] = *b"KDUMP   ";
/// The signature of the older diskdump format (not read).
pub const DISKDUMP_SIGNATURE: [u8; 8] = *b"DISKDUMP";
/// Size of one `utsname` field.
pub const UTSNAME_FIELD: u64 = 65;

/// Offsets in `disk_dump_header`.
pub mod header {
    /// `int header_version`.
    pub const VERSION: u64 = 8;
    /// `struct new_utsname`: sysname, nodename, release, version, machine, domainname.
    pub const UTSNAME: u64 = 12;
    /// `struct timeval` (seconds, microseconds).
    pub const TIMESTAMP: u64 = 408;
    /// `unsigned int status`: the `DUMP_DH_*` flags.
    pub const STATUS: u64 = 424;
    /// `int block_size`.
    pub const BLOCK_SIZE: u64 = 428;
    /// `int sub_hdr_size`, in blocks.
    pub const SUB_HDR_SIZE: u64 = 432;
    /// `unsigned int bitmap_blocks`: both bitmaps, in blocks.
    pub const BITMAP_BLOCKS: u64 = 436;
    /// `unsigned int max_mapnr`: 32-bit page count (the sub header has the full one from v6).
    pub const MAX_MAPNR: u64 = 440;
    /// `unsigned int total_ram_blocks`.
    pub const TOTAL_RAM_BLOCKS: u64 = 444;
    /// `unsigned int device_blocks`.
    pub const DEVICE_BLOCKS: u64 = 448;
    /// `unsigned int written_blocks`.
    pub const WRITTEN_BLOCKS: u64 = 452;
    /// `unsigned int current_cpu`.
    pub const CURRENT_CPU: u64 = 456;
    /// `int nr_cpus`.
    pub const NR_CPUS: u64 = 460;
    /// Size of the header.
    pub const SIZE: u64 = 464;
}

/// Offsets in `kdump_sub_header` (64-bit targets), with the header version that added each.
pub mod sub_header {
    /// `unsigned long phys_base`.
    pub const PHYS_BASE: u64 = 0;
    /// `int dump_level` (v1).
    pub const DUMP_LEVEL: u64 = 8;
    /// `int split` (v2).
    pub const SPLIT: u64 = 12;
    /// `off_t offset_vmcoreinfo`, `unsigned long size_vmcoreinfo` (v3).
    pub const VMCOREINFO: u64 = 32;
    /// `off_t offset_note`, `unsigned long size_note` (v4): ELF notes (`NT_PRSTATUS`...).
    pub const NOTE: u64 = 48;
    /// `off_t offset_eraseinfo`, `unsigned long size_eraseinfo` (v5).
    pub const ERASEINFO: u64 = 64;
    /// `unsigned long long start_pfn_64`, `end_pfn_64`, `max_mapnr_64` (v6).
    pub const START_PFN_64: u64 = 80;
    /// See [`START_PFN_64`].
    pub const END_PFN_64: u64 = 88;
    /// See [`START_PFN_64`].
    pub const MAX_MAPNR_64: u64 = 96;
    /// Size of the sub header of version 6.
    pub const SIZE: u64 = 104;
}

/// `status` and page `flags`: the page is zlib-compressed.
pub const DUMP_DH_COMPRESSED_ZLIB: u32 = 0x1;
/// The page is LZO1X-compressed.
pub const DUMP_DH_COMPRESSED_LZO: u32 = 0x2;
/// The page is snappy-compressed.
pub const DUMP_DH_COMPRESSED_SNAPPY: u32 = 0x4;
/// `status`: the dump was cut short (e.g. the disk filled up); pages may be missing.
pub const DUMP_DH_COMPRESSED_INCOMPLETE: u32 = 0x8;
/// `status`: unused vmemmap pages were excluded.
pub const DUMP_DH_EXCLUDED_VMEMMAP: u32 = 0x10;
/// The page is zstd-compressed.
pub const DUMP_DH_COMPRESSED_ZSTD: u32 = 0x20;

/// The `DUMP_DH_COMPRESSED_*` flag of `codec` (0 for pages stored as they are).
pub(crate) fn codec_flag(codec: Codec) -> u32 {
    match codec {
        Codec::Stored => 0,
        Codec::Zlib => DUMP_DH_COMPRESSED_ZLIB,
        Codec::Lzo => DUMP_DH_COMPRESSED_LZO,
        Codec::Snappy => DUMP_DH_COMPRESSED_SNAPPY,
        Codec::Zstd => DUMP_DH_COMPRESSED_ZSTD,
    }
}

/// Size of a `page_desc_t`.
pub const PAGE_DESC_SIZE: u64 = 24;

/// One `page_desc_t`: where a saved page's data is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PageDesc {
    /// File offset of the page data.
    pub offset: u64,
    /// Size of the stored data; the block size (with no compression flag) for a page stored
    /// as it is.
    pub size: u32,
    /// `DUMP_DH_COMPRESSED_*`: how the data is compressed (none set: stored as it is).
    pub flags: u32,
    /// The kernel's `struct page` flags of the page (informational).
    pub page_flags: u64,
}

impl PageDesc {
    /// Reads a descriptor at `offset` of `bytes` (little endian).
    pub(crate) fn parse(bytes: &ByteReader, offset: u64) -> Result<Self> {
        Ok(PageDesc {
            offset: bytes.u64(offset)?,
            size: bytes.u32(offset + 8)?,
            flags: bytes.u32(offset + 12)?,
            page_flags: bytes.u64(offset + 16)?,
        })
    }

    /// The descriptor's bytes (little endian).
    pub fn encode(&self) -> [u8; PAGE_DESC_SIZE as usize] {
        let mut b = [0u8; PAGE_DESC_SIZE as usize];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.size.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.page_flags.to_le_bytes());
        b
    }
}

/// makedumpfile's flattened stream (`-F`): a header, then records of a big-endian
/// `(offset, size)` pair and `size` bytes to be placed at `offset` of the dump, ending with
/// a record of `(-1, -1)`.
pub mod flat {
    /// The signature at the start of a flattened stream (zero-padded to 16 bytes).
    pub const SIGNATURE: &[u8; 12] = b"makedumpfile";
    /// `type` of the flattened format (big endian `i64` at byte 16).
    pub const TYPE: i64 = 1;
    /// `version` (big endian `i64` at byte 24).
    pub const VERSION: i64 = 1;
    /// Records start here (the header is padded to this size).
    pub const HEADER_SIZE: u64 = 4096;
    /// Size of a record header.
    pub const RECORD_HEADER_SIZE: u64 = 16;
    /// The `(offset, size)` of the end record.
    pub const END: i64 = -1;
}
