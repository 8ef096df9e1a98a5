//! ELF images as a loader left them in memory: exports, imports and sections of a module,
//! read through any [`MemoryView`].
//!
//! An [`ElfImage`] starts at the module base, where the first loaded segment maps the ELF
//! header and the program headers. Exports and imports come from the dynamic segment
//! (`PT_DYNAMIC`): its symbol table, string table, hash table (which gives the symbol count,
//! walked to the end of the last chain for `DT_GNU_HASH`) and relocation tables (whose
//! entries name the imported symbols and the slots the loader fills). Section headers are
//! usually not loaded (they sit at the end of the file), so sections are read from memory
//! when they are, else from the file on disk when one is given and its header matches the
//! image, else the loaded segments stand in for them, named like `LOAD[r-x]`.
//!
//! Pointers in the dynamic segment are link-time addresses in the file. glibc's loader
//! rewrites them to run-time addresses in every object it relocates, while other loaders and
//! the vDSO leave them alone; a pointer that already lies inside the image is taken as a
//! run-time address, anything else as a link-time one.
//!
//! Memory is untrusted: every table must lie inside the image, every count and size is capped
//! (`MAX_*`) before anything is allocated for it, and garbage gives errors, never panics.
//! Little-endian ELF32 and ELF64 are supported.

mod rebuild;
mod sections;
mod symbols;
#[cfg(test)]
mod tests;

pub use rebuild::{rebuild_file, MAX_FILE_BYTES};

use goblin::container::Ctx;
use goblin::elf::header::{Header, EI_DATA, ELFDATA2LSB, ELFMAG, SELFMAG};
use goblin::elf::program_header::{ProgramHeader, PT_LOAD};
use goblin::elf::Elf;

use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::MemoryView;
use crate::types::{umem, Address};

/// The most program headers accepted.
pub const MAX_PROGRAM_HEADERS: usize = 4096;
/// The most dynamic entries read; the table normally ends much earlier at `DT_NULL`.
pub const MAX_DYNAMIC_ENTRIES: usize = 4096;
/// The most dynamic symbols accepted.
pub const MAX_SYMBOLS: usize = 1 << 20;
/// The most relocations accepted per relocation table.
pub const MAX_RELOCATIONS: usize = 1 << 20;
/// The largest table read in one piece (symbol, string and section header tables).
pub const MAX_TABLE_BYTES: usize = 32 << 20;
/// The longest symbol or section name; longer names are skipped.
pub const MAX_NAME_LEN: usize = 4096;

/// Bytes read for the ELF header (an ELF64 header; an ELF32 one is shorter).
const HEADER_BYTES: usize = 64;
/// Relocations read per step.
const RELOC_CHUNK: usize = 4096;
/// `DT_GNU_HASH` chain words read per step (never across a page boundary).
const CHAIN_CHUNK: usize = 256;
/// The smallest page size: segments are mapped in whole pages of (at least) this size, and
/// reads that may end early stay inside one such page.
const PAGE: u64 = 0x1000;

/// goblin's parse error as a `FileFormat/Malformed` error with its reason.
fn goblin_error(e: goblin::error::Error) -> Error {
    Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!("ELF image: {e}"))
}

/// A little-endian unsigned integer of up to eight bytes.
fn le_uint(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0, |acc, &b| acc << 8 | u64::from(b))
}

/// The NUL-terminated name at `offset` of a string table; `None` if it is empty, runs past
/// the table or is longer than [`MAX_NAME_LEN`].
fn name_at(table: &[u8], offset: usize) -> Option<String> {
    let rest = table.get(offset..)?;
    let rest = &rest[..rest.len().min(MAX_NAME_LEN + 1)];
    let len = rest.iter().position(|&b| b == 0)?;
    (len > 0).then(|| String::from_utf8_lossy(&rest[..len]).into_owned())
}

/// An ELF image mapped at a base address, with its header and program headers parsed.
#[derive(Clone, Debug)]
pub struct ElfImage {
    base: Address,
    header_bytes: [u8; HEADER_BYTES],
    header: Header,
    ctx: Ctx,
    phdrs: Vec<ProgramHeader>,
    /// The link-time virtual address of the header (the image's first byte).
    link_base: u64,
    /// Bytes from the base to the end of the last loaded segment, in whole pages.
    span: umem,
}

impl ElfImage {
    /// Parses the header and program headers of the image whose ELF header is mapped at
    /// `base` in `mem`.
    ///
    /// Fails with `Malformed` if there is no valid little-endian ELF header with loadable
    /// segments there, `Unsupported` for big-endian images and `LimitExceeded` for absurd
    /// counts; read failures come back as they are.
    pub fn parse<V: MemoryView>(mem: &mut V, base: Address) -> Result<Self> {
        let mut header_bytes = [0u8; HEADER_BYTES];
        mem.read_raw_into(base, &mut header_bytes).data()?;
        if header_bytes[..SELFMAG] != ELFMAG[..] {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                .with_reason(format_args!("ELF image: no ELF magic at {base}")));
        }
        if header_bytes[EI_DATA] != ELFDATA2LSB {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported)
                .with_reason(format_args!("ELF image: big-endian image at {base}")));
        }
        let header = Elf::parse_header(&header_bytes).map_err(goblin_error)?;
        let ctx = Ctx::new(header.container().map_err(goblin_error)?, header.endianness().map_err(goblin_error)?);

        let count = usize::from(header.e_phnum);
        let entry = ProgramHeader::size(ctx);
        if usize::from(header.e_phentsize) != entry || count == 0 {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                "ELF image: {count} program headers of {} bytes at {base}",
                header.e_phentsize
            )));
        }
        if count > MAX_PROGRAM_HEADERS {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
                .with_reason(format_args!("ELF image: {count} program headers at {base}")));
        }
        let table_len = count * entry;
        let table = mem.read_raw(base + header.e_phoff as umem, table_len).data()?;
        let phdrs = ProgramHeader::parse(&table, 0, count, ctx).map_err(goblin_error)?;

        let loads = phdrs.iter().filter(|p| p.p_type == PT_LOAD);
        let first = loads.clone().min_by_key(|p| p.p_vaddr);
        let link_base = first.and_then(|p| p.p_vaddr.checked_sub(p.p_offset));
        let end = loads.map(|p| p.p_vaddr.checked_add(p.p_memsz)).try_fold(0u64, |end, e| Some(end.max(e?)));
        let (link_base, end) = match (link_base, end) {
            (Some(link_base), Some(end)) => (link_base, end),
            _ => {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                    .with_reason(format_args!("ELF image: no usable PT_LOAD at {base}")))
            }
        };
        // Segments are mapped in whole pages.
        let span = (end - link_base) as umem;
        let page = PAGE as umem;
        let span = span.checked_add(page - 1).map_or(umem::MAX, |s| s & !(page - 1));
        if base.checked_add(span).is_none() {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                .with_reason(format_args!("ELF image: image at {base} spans {span:#x} bytes")));
        }
        let image = ElfImage { base, header_bytes, header, ctx, phdrs, link_base, span };
        if image.file_to_runtime(header.e_phoff, table_len as u64) != Some(base + header.e_phoff as umem) {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                "ELF image: program headers of the image at {base} are not in its first segment"
            )));
        }
        Ok(image)
    }

    /// Bytes from the base to the end of the last loaded segment, rounded up to whole 4 KiB
    /// pages.
    pub fn size(&self) -> umem {
        self.span
    }

    fn loads(&self) -> impl Iterator<Item = &ProgramHeader> + Clone {
        self.phdrs.iter().filter(|p| p.p_type == PT_LOAD)
    }

    /// The run-time address of the link-time address `vaddr` (outside the image if `vaddr`
    /// is below the image; [`ElfImage::inside`] catches that).
    fn runtime(&self, vaddr: u64) -> Address {
        self.base + vaddr.wrapping_sub(self.link_base) as umem
    }

    /// The offset from the base of the link-time address `vaddr`, if it lies in the image.
    fn link_offset(&self, vaddr: u64) -> Option<umem> {
        let offset = vaddr.checked_sub(self.link_base)? as umem;
        (offset < self.span).then_some(offset)
    }

    /// The run-time address a dynamic-segment pointer refers to (see the module docs).
    fn dyn_ptr(&self, value: u64) -> Address {
        let addr = Address::from(value);
        if addr >= self.base && addr - self.base < self.span {
            addr
        } else {
            self.runtime(value)
        }
    }

    /// `addr` if the `len` bytes there lie inside the image, else a `Malformed` error.
    fn inside(&self, addr: Address, len: umem, what: &str) -> Result<Address> {
        match addr.checked_distance(self.base) {
            Some(offset) if offset <= self.span && len <= self.span - offset => Ok(addr),
            _ => Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                "ELF image: {what}: {len:#x} bytes at {addr} are outside the image at {} ({:#x} bytes)",
                self.base, self.span
            ))),
        }
    }

    /// The run-time address of `len` file bytes at `offset`, if one loaded segment maps them.
    ///
    /// A segment maps whole pages of the file, so file bytes up to the end of its last page
    /// are in memory too (that is where the vDSO keeps its section headers), unless the
    /// segment is larger in memory than in the file: the loader zeroes that page tail.
    fn file_to_runtime(&self, offset: u64, len: u64) -> Option<Address> {
        let p = self.loads().find(|p| {
            let mapped = (p.p_offset.checked_add(p.p_filesz))
                .and_then(|end| end.checked_add(PAGE - 1))
                .filter(|_| p.p_memsz <= p.p_filesz)
                .map_or(p.p_filesz, |end| (end & !(PAGE - 1)) - p.p_offset);
            offset.checked_sub(p.p_offset).is_some_and(|into| into <= mapped && len <= mapped - into)
        })?;
        let addr = self.runtime(p.p_vaddr.wrapping_add(offset - p.p_offset));
        self.inside(addr, len as umem, "file range").ok()
    }

    /// `len` bytes at `addr` inside the image, at most `MAX_TABLE_BYTES`.
    fn read_table<V: MemoryView>(&self, mem: &mut V, addr: Address, len: u64, what: &str) -> Result<Vec<u8>> {
        let len = usize::try_from(len).ok().filter(|&l| l <= MAX_TABLE_BYTES).ok_or_else(|| {
            Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
                .with_reason(format_args!("ELF image: {what}: {len:#x} bytes"))
        })?;
        let addr = self.inside(addr, len as umem, what)?;
        mem.read_raw(addr, len).data()
    }
}
