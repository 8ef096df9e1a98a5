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

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use goblin::container::Ctx;
use goblin::elf::dynamic::{
    DT_GNU_HASH, DT_HASH, DT_JMPREL, DT_NULL, DT_PLTREL, DT_PLTRELSZ, DT_REL, DT_RELA, DT_RELASZ, DT_RELSZ, DT_STRSZ,
    DT_STRTAB, DT_SYMTAB,
};
use goblin::elf::header::{Header, EI_DATA, ELFDATA2LSB, ELFMAG, SELFMAG};
use goblin::elf::program_header::{ProgramHeader, PF_R, PF_W, PF_X, PT_DYNAMIC, PT_LOAD};
use goblin::elf::reloc::{Reloc, RelocSection};
use goblin::elf::section_header::{SectionHeader, SHF_ALLOC, SHN_LORESERVE, SHN_UNDEF};
use goblin::elf::sym::{Sym, Symtab, STB_LOCAL, STT_COMMON, STT_FUNC, STT_GNU_IFUNC, STT_NOTYPE, STT_OBJECT};
use goblin::elf::Elf;

use super::info::{ExportInfo, ImportInfo, SectionInfo};
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

/// A `FileFormat` error of `kind`; the message is logged at debug level, since images are
/// often probed and garbage is expected.
fn format_error(kind: ErrorKind, msg: core::fmt::Arguments) -> Error {
    log::debug!("elf image: {msg}");
    Error::new(ErrorOrigin::FileFormat, kind)
}

fn goblin_error(e: goblin::error::Error) -> Error {
    format_error(ErrorKind::Malformed, format_args!("{e}"))
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

/// The pointers and sizes of a dynamic segment that this parser uses (raw `d_val`s).
#[derive(Default)]
struct Dynamic {
    symtab: Option<u64>,
    strtab: Option<u64>,
    strsz: u64,
    hash: Option<u64>,
    gnu_hash: Option<u64>,
    jmprel: Option<u64>,
    pltrelsz: u64,
    plt_is_rela: bool,
    rela: Option<u64>,
    relasz: u64,
    rel: Option<u64>,
    relsz: u64,
}

/// The dynamic symbol table and its string table, read whole.
struct Symbols {
    table: Vec<u8>,
    count: usize,
    names: Vec<u8>,
}

/// Where the bytes of the file behind an image come from, by file offset.
enum FileBytes<'m, V> {
    /// The loaded segments of the image in memory.
    Image(&'m mut V),
    /// The file on disk.
    Disk(File),
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
            return Err(format_error(ErrorKind::Malformed, format_args!("no ELF magic at {base}")));
        }
        if header_bytes[EI_DATA] != ELFDATA2LSB {
            return Err(format_error(ErrorKind::Unsupported, format_args!("big-endian image at {base}")));
        }
        let header = Elf::parse_header(&header_bytes).map_err(goblin_error)?;
        let ctx = Ctx::new(header.container().map_err(goblin_error)?, header.endianness().map_err(goblin_error)?);

        let count = usize::from(header.e_phnum);
        let entry = ProgramHeader::size(ctx);
        if usize::from(header.e_phentsize) != entry || count == 0 {
            return Err(format_error(
                ErrorKind::Malformed,
                format_args!("{count} program headers of {} bytes at {base}", header.e_phentsize),
            ));
        }
        if count > MAX_PROGRAM_HEADERS {
            return Err(format_error(ErrorKind::LimitExceeded, format_args!("{count} program headers at {base}")));
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
            _ => return Err(format_error(ErrorKind::Malformed, format_args!("no usable PT_LOAD at {base}"))),
        };
        // Segments are mapped in whole pages.
        let span = (end - link_base) as umem;
        let page = PAGE as umem;
        let span = span.checked_add(page - 1).map_or(umem::MAX, |s| s & !(page - 1));
        if base.checked_add(span).is_none() {
            return Err(format_error(ErrorKind::Malformed, format_args!("image at {base} spans {span:#x} bytes")));
        }
        let image = ElfImage { base, header_bytes, header, ctx, phdrs, link_base, span };
        if image.file_to_runtime(header.e_phoff, table_len as u64) != Some(base + header.e_phoff as umem) {
            return Err(format_error(
                ErrorKind::Malformed,
                format_args!("program headers of the image at {base} are not in its first segment"),
            ));
        }
        Ok(image)
    }

    /// Bytes from the base to the end of the last loaded segment, rounded up to whole 4 KiB
    /// pages.
    pub fn size(&self) -> umem {
        self.span
    }

    /// Calls back with each exported symbol: defined, non-local dynamic symbols of code and
    /// data (functions, objects, indirect functions, untyped and common symbols) with a name,
    /// as offsets from the base. Stops when the callback returns `false`. An image without a
    /// dynamic segment exports nothing.
    pub fn exports<V: MemoryView>(&self, mem: &mut V, mut callback: impl FnMut(ExportInfo) -> bool) -> Result<()> {
        let Some(dynamic) = self.dynamic(mem)? else { return Ok(()) };
        let symbols = self.symbols(mem, &dynamic)?;
        let table = Symtab::parse(&symbols.table, 0, symbols.count, self.ctx).map_err(goblin_error)?;
        for sym in table.iter().filter(is_export) {
            let (Some(name), Some(offset)) = (name_at(&symbols.names, sym.st_name), self.link_offset(sym.st_value))
            else {
                continue;
            };
            if !callback(ExportInfo { name: name.as_str().into(), offset }) {
                break;
            }
        }
        Ok(())
    }

    /// Calls back with each imported symbol: undefined dynamic symbols named by a relocation
    /// (`DT_JMPREL`, `DT_RELA` and `DT_REL` tables), with the offset from the base of the
    /// slot the loader fills. Each slot is reported once. Stops when the callback returns
    /// `false`. An image without a dynamic segment imports nothing.
    pub fn imports<V: MemoryView>(&self, mem: &mut V, mut callback: impl FnMut(ImportInfo) -> bool) -> Result<()> {
        let Some(dynamic) = self.dynamic(mem)? else { return Ok(()) };
        let symbols = self.symbols(mem, &dynamic)?;
        let table = Symtab::parse(&symbols.table, 0, symbols.count, self.ctx).map_err(goblin_error)?;
        let tables = [
            (dynamic.jmprel, dynamic.pltrelsz, dynamic.plt_is_rela),
            (dynamic.rela, dynamic.relasz, true),
            (dynamic.rel, dynamic.relsz, false),
        ];
        // Some linkers let DT_RELASZ cover the DT_JMPREL table too.
        let mut seen = HashSet::new();
        for (start, size, is_rela) in tables {
            let Some(start) = start else { continue };
            let entry = Reloc::size(is_rela, self.ctx);
            let count = usize::try_from(size).unwrap_or(usize::MAX) / entry;
            if count > MAX_RELOCATIONS {
                return Err(format_error(ErrorKind::LimitExceeded, format_args!("{count} relocations")));
            }
            let start = self.inside(self.dyn_ptr(start), (count * entry) as umem, "relocation table")?;
            for first in (0..count).step_by(RELOC_CHUNK) {
                let n = RELOC_CHUNK.min(count - first);
                let bytes = mem.read_raw(start + first * entry, n * entry).data()?;
                let relocs = RelocSection::parse(&bytes, 0, bytes.len(), is_rela, self.ctx).map_err(goblin_error)?;
                for reloc in relocs.iter() {
                    let Some(sym) = table.get(reloc.r_sym).filter(|s| s.st_shndx == SHN_UNDEF as usize) else {
                        continue;
                    };
                    let (Some(name), Some(offset)) =
                        (name_at(&symbols.names, sym.st_name), self.link_offset(reloc.r_offset))
                    else {
                        continue;
                    };
                    if seen.insert(offset) && !callback(ImportInfo { name: name.as_str().into(), offset }) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Calls back with each allocated section (one that occupies memory at run time) at its
    /// run-time address. The section headers are read from memory if they are loaded, else
    /// from `file` if it is given and starts with the same ELF header as the image; failing
    /// both, each loaded segment is reported as a section named like `LOAD[r-x]`. Stops when
    /// the callback returns `false`.
    pub fn sections<V: MemoryView>(
        &self,
        mem: &mut V,
        file: Option<&Path>,
        mut callback: impl FnMut(SectionInfo) -> bool,
    ) -> Result<()> {
        let from_disk = |path: &Path| {
            let file = self.open_matching(path).map_err(|e| log::debug!("sections of {}: {e}", path.display())).ok()?;
            self.section_table(&mut FileBytes::<V>::Disk(file))
                .map_err(|e| log::debug!("section headers in {}: {e}", path.display()))
                .ok()
        };
        let in_memory = self.section_table(&mut FileBytes::Image(mem)).ok();
        match in_memory.or_else(|| file.and_then(from_disk)) {
            Some((headers, names)) => {
                for sh in headers.iter().filter(|sh| sh.sh_flags & u64::from(SHF_ALLOC) != 0) {
                    let (Some(name), Some(offset)) = (name_at(&names, sh.sh_name), self.link_offset(sh.sh_addr)) else {
                        continue;
                    };
                    let info =
                        SectionInfo { name: name.as_str().into(), base: self.base + offset, size: sh.sh_size as umem };
                    if !callback(info) {
                        break;
                    }
                }
            }
            None => {
                for p in self.loads() {
                    let flag = |bit: u32, c: char| if p.p_flags & bit != 0 { c } else { '-' };
                    let name = format!("LOAD[{}{}{}]", flag(PF_R, 'r'), flag(PF_W, 'w'), flag(PF_X, 'x'));
                    let info = SectionInfo {
                        name: name.as_str().into(),
                        base: self.runtime(p.p_vaddr),
                        size: p.p_memsz as umem,
                    };
                    if !callback(info) {
                        break;
                    }
                }
            }
        }
        Ok(())
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
            _ => Err(format_error(
                ErrorKind::Malformed,
                format_args!(
                    "{what}: {len:#x} bytes at {addr} are outside the image at {} ({:#x} bytes)",
                    self.base, self.span
                ),
            )),
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
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_TABLE_BYTES)
            .ok_or_else(|| format_error(ErrorKind::LimitExceeded, format_args!("{what}: {len:#x} bytes")))?;
        let addr = self.inside(addr, len as umem, what)?;
        mem.read_raw(addr, len).data()
    }

    /// The dynamic segment's entries, `None` if the image has no `PT_DYNAMIC`.
    fn dynamic<V: MemoryView>(&self, mem: &mut V) -> Result<Option<Dynamic>> {
        let Some(ph) = self.phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else { return Ok(None) };
        let entry = 2 * self.ctx.size();
        let count = usize::try_from(ph.p_memsz / entry as u64).unwrap_or(usize::MAX).min(MAX_DYNAMIC_ENTRIES);
        let bytes = self.read_table(mem, self.runtime(ph.p_vaddr), (count * entry) as u64, "dynamic segment")?;
        let mut d = Dynamic::default();
        for raw in bytes.chunks_exact(entry) {
            let (tag, value) = (le_uint(&raw[..entry / 2]), le_uint(&raw[entry / 2..]));
            match tag {
                DT_NULL => break,
                DT_SYMTAB => d.symtab = Some(value),
                DT_STRTAB => d.strtab = Some(value),
                DT_STRSZ => d.strsz = value,
                DT_HASH => d.hash = Some(value),
                DT_GNU_HASH => d.gnu_hash = Some(value),
                DT_JMPREL => d.jmprel = Some(value),
                DT_PLTRELSZ => d.pltrelsz = value,
                DT_PLTREL => d.plt_is_rela = value == DT_RELA,
                DT_RELA => d.rela = Some(value),
                DT_RELASZ => d.relasz = value,
                DT_REL => d.rel = Some(value),
                DT_RELSZ => d.relsz = value,
                _ => {}
            }
        }
        Ok(Some(d))
    }

    /// Reads the dynamic symbol table and its string table.
    fn symbols<V: MemoryView>(&self, mem: &mut V, d: &Dynamic) -> Result<Symbols> {
        let (Some(symtab), Some(strtab)) = (d.symtab, d.strtab) else {
            return Err(format_error(ErrorKind::Malformed, format_args!("no DT_SYMTAB or DT_STRTAB")));
        };
        let count = self.symbol_count(mem, d)?;
        let len = (count * Sym::size(self.ctx.container)) as u64;
        let table = self.read_table(mem, self.dyn_ptr(symtab), len, "dynamic symbol table")?;
        let names = self.read_table(mem, self.dyn_ptr(strtab), d.strsz, "dynamic string table")?;
        Ok(Symbols { table, count, names })
    }

    /// The number of dynamic symbols, from `DT_HASH` or else `DT_GNU_HASH`.
    fn symbol_count<V: MemoryView>(&self, mem: &mut V, d: &Dynamic) -> Result<usize> {
        let count = if let Some(hash) = d.hash {
            // nbucket, nchain: there are as many chain entries as symbols.
            let header = self.inside(self.dyn_ptr(hash), 8, "DT_HASH")?;
            let words: [u32; 2] = mem.read(header).data()?;
            u32::from_le(words[1]) as usize
        } else if let Some(gnu_hash) = d.gnu_hash {
            self.gnu_symbol_count(mem, gnu_hash)?
        } else {
            return Err(format_error(ErrorKind::Malformed, format_args!("no DT_HASH or DT_GNU_HASH")));
        };
        if count > MAX_SYMBOLS {
            return Err(format_error(ErrorKind::LimitExceeded, format_args!("{count} dynamic symbols")));
        }
        Ok(count)
    }

    /// The symbol count from a GNU hash table: one past the end of the chain of the highest
    /// symbol any bucket starts at (symbols below `symoffset` are not hashed).
    fn gnu_symbol_count<V: MemoryView>(&self, mem: &mut V, gnu_hash: u64) -> Result<usize> {
        let start = self.inside(self.dyn_ptr(gnu_hash), 16, "DT_GNU_HASH")?;
        let header: [u32; 4] = mem.read(start).data()?;
        let [nbuckets, symoffset, bloom_words, _] = header.map(|w| u32::from_le(w) as usize);
        if nbuckets > MAX_SYMBOLS || bloom_words > MAX_SYMBOLS || symoffset > MAX_SYMBOLS {
            return Err(format_error(ErrorKind::LimitExceeded, format_args!("GNU hash table with {nbuckets} buckets")));
        }
        let buckets_at = start + (16 + bloom_words * self.ctx.size()) as umem;
        let buckets_at = self.inside(buckets_at, (nbuckets * 4) as umem, "GNU hash buckets")?;
        let mut buckets = vec![0u32; nbuckets];
        mem.read_list(buckets_at, &mut buckets).data()?;
        let highest = buckets.iter().map(|&b| u32::from_le(b) as usize).max().unwrap_or(0);
        if highest < symoffset {
            // Every bucket is empty: only the unhashed symbols exist.
            return Ok(symoffset);
        }
        let chains_at = buckets_at + (nbuckets * 4) as umem;
        let mut chunk = [0u32; CHAIN_CHUNK];
        let mut index = highest;
        while index < MAX_SYMBOLS {
            let at = chains_at + ((index - symoffset) * 4) as umem;
            // Stay inside the page and the image: the chain may end right before either.
            let to_image_end = (self.base + self.span).checked_distance(at).unwrap_or(0);
            let page = PAGE as umem;
            let room = (page - at.page_offset(page)).min(to_image_end) / 4;
            let n = CHAIN_CHUNK.min(room.max(1) as usize);
            let at = self.inside(at, (n * 4) as umem, "GNU hash chain")?;
            mem.read_list(at, &mut chunk[..n]).data()?;
            if let Some(last) = chunk[..n].iter().position(|&w| u32::from_le(w) & 1 == 1) {
                return Ok(index + last + 1);
            }
            index += n;
        }
        Err(format_error(ErrorKind::LimitExceeded, format_args!("GNU hash chain runs past {MAX_SYMBOLS} symbols")))
    }

    /// Opens `path` if it starts with the same ELF header as the image.
    fn open_matching(&self, path: &Path) -> Result<File> {
        let mut file = File::open(path)?;
        let len = Header::size(self.ctx);
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact(&mut header[..len])?;
        if header[..len] != self.header_bytes[..len] {
            return Err(format_error(
                ErrorKind::Malformed,
                format_args!("the file's ELF header differs from the image's"),
            ));
        }
        Ok(file)
    }

    /// The section headers and the section name table.
    fn section_table<V: MemoryView>(&self, src: &mut FileBytes<V>) -> Result<(Vec<SectionHeader>, Vec<u8>)> {
        let count = usize::from(self.header.e_shnum);
        let entry = SectionHeader::size(self.ctx);
        if self.header.e_shoff == 0 || count == 0 || usize::from(self.header.e_shentsize) != entry {
            return Err(format_error(ErrorKind::NotFound, format_args!("no section header table")));
        }
        let table = src.read(self, self.header.e_shoff, (count * entry) as u64)?;
        let headers = SectionHeader::parse_from(&table, 0, count, self.ctx).map_err(goblin_error)?;
        let names = headers
            .get(usize::from(self.header.e_shstrndx))
            .ok_or_else(|| format_error(ErrorKind::Malformed, format_args!("no section name table")))?;
        let names = src.read(self, names.sh_offset, names.sh_size)?;
        Ok((headers, names))
    }
}

impl<V: MemoryView> FileBytes<'_, V> {
    /// `len` bytes at file offset `offset`, at most `MAX_TABLE_BYTES`.
    fn read(&mut self, image: &ElfImage, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len > MAX_TABLE_BYTES as u64 {
            return Err(format_error(
                ErrorKind::LimitExceeded,
                format_args!("{len:#x} bytes at file offset {offset:#x}"),
            ));
        }
        match self {
            FileBytes::Image(mem) => {
                let addr = image.file_to_runtime(offset, len).ok_or_else(|| {
                    format_error(ErrorKind::NotFound, format_args!("file offset {offset:#x} is not loaded"))
                })?;
                mem.read_raw(addr, len as usize).data()
            }
            FileBytes::Disk(file) => {
                file.seek(SeekFrom::Start(offset))?;
                let mut out = Vec::new();
                file.take(len).read_to_end(&mut out)?;
                if out.len() as u64 != len {
                    return Err(format_error(
                        ErrorKind::Truncated,
                        format_args!("file ends before offset {:#x}", offset + len),
                    ));
                }
                Ok(out)
            }
        }
    }
}

/// Whether a dynamic symbol is an export (see [`ElfImage::exports`]).
fn is_export(sym: &Sym) -> bool {
    sym.st_shndx != SHN_UNDEF as usize
        && sym.st_shndx < SHN_LORESERVE as usize
        && sym.st_bind() != STB_LOCAL
        && matches!(sym.st_type(), STT_NOTYPE | STT_OBJECT | STT_FUNC | STT_COMMON | STT_GNU_IFUNC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{dummy_memory, BufferMemory};
    use crate::mem::PhysicalView;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    /// Where the synthetic image is placed in the test memory.
    const BASE: u64 = 0x10000;
    const IMAGE_SIZE: usize = 0x600;
    const DYNAMIC: u64 = 0x100;
    const DYNSYM: u64 = 0x200;
    const DYNSTR: u64 = 0x280;
    const HASH: u64 = 0x2c0;
    const RELOCS: u64 = 0x300;
    const GOT_SLOT: u64 = 0x340;
    const FUNC: u64 = 0x380;
    const SHSTRTAB: u64 = 0x400;
    const SHDRS: u64 = 0x440;

    /// A small shared object: `my_func` exported, `puts` imported through a PLT relocation,
    /// section headers inside the loaded segment. ELF64 uses `DT_GNU_HASH` and `RELA`,
    /// ELF32 `DT_HASH` and `REL`. With `relocated`, dynamic pointers hold run-time addresses
    /// as glibc leaves them.
    struct Builder {
        bytes: Vec<u8>,
        is64: bool,
    }

    impl Builder {
        fn put(&mut self, off: u64, value: u64, size: usize) {
            let off = off as usize;
            self.bytes[off..off + size].copy_from_slice(&value.to_le_bytes()[..size]);
        }

        fn word(&mut self, off: u64, value: u64) {
            self.put(off, value, if self.is64 { 8 } else { 4 });
        }

        fn sym(&mut self, off: u64, name: u64, info: u8, shndx: u16, value: u64) {
            if self.is64 {
                self.put(off, name, 4);
                self.put(off + 4, u64::from(info), 1);
                self.put(off + 6, u64::from(shndx), 2);
                self.put(off + 8, value, 8);
            } else {
                self.put(off, name, 4);
                self.put(off + 4, value, 4);
                self.put(off + 12, u64::from(info), 1);
                self.put(off + 14, u64::from(shndx), 2);
            }
        }

        #[allow(clippy::too_many_arguments)]
        fn shdr(&mut self, off: u64, name: u64, typ: u64, flags: u64, addr: u64, offset: u64, size: u64) {
            let fields: [(u64, usize); 6] = if self.is64 {
                [(0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8)]
            } else {
                [(0, 4), (4, 4), (8, 4), (12, 4), (16, 4), (20, 4)]
            };
            for ((at, size), value) in fields.into_iter().zip([name, typ, flags, addr, offset, size]) {
                self.put(off + at, value, size);
            }
        }

        fn build(is64: bool, relocated: bool) -> Vec<u8> {
            let mut b = Builder { bytes: vec![0u8; IMAGE_SIZE], is64 };
            let (w, syment) = if is64 { (8, 24) } else { (4, 16) };
            let ptr = |v: u64| if relocated { BASE + v } else { v };
            // ELF header.
            b.bytes[..4].copy_from_slice(b"\x7fELF");
            b.put(4, if is64 { 2 } else { 1 }, 1);
            b.put(5, 1, 1);
            b.put(6, 1, 1);
            b.put(16, 3, 2);
            b.put(18, if is64 { 62 } else { 3 }, 2);
            b.put(20, 1, 4);
            let (phoff_at, ehsize, phentsize, shentsize) = if is64 { (32, 64, 56, 64) } else { (28, 52, 32, 40) };
            b.word(phoff_at, 0x40);
            b.word(phoff_at + w, SHDRS);
            let sizes = phoff_at + 2 * w + 4;
            for (i, v) in [ehsize, phentsize, 2, shentsize, 4, 3].into_iter().enumerate() {
                b.put(sizes + 2 * i as u64, v, 2);
            }
            // Program headers: one PT_LOAD over everything, then PT_DYNAMIC.
            let phdrs = [(PT_LOAD, PF_R | PF_X, 0, IMAGE_SIZE as u64), (PT_DYNAMIC, PF_R, DYNAMIC, 0x100)];
            for (i, (typ, flags, at, size)) in phdrs.into_iter().enumerate() {
                let off = 0x40 + (i * phentsize as usize) as u64;
                b.put(off, u64::from(typ), 4);
                let fields = if is64 {
                    [(4, 4), (8, 8), (16, 8), (32, 8), (40, 8)]
                } else {
                    [(24, 4), (4, 4), (8, 4), (16, 4), (20, 4)]
                };
                for ((field, size), value) in fields.into_iter().zip([u64::from(flags), at, at, size, size]) {
                    b.put(off + field, value, size);
                }
            }
            // Dynamic entries.
            let (hash_tag, rel_tag) = if is64 { (DT_GNU_HASH, DT_RELA) } else { (DT_HASH, DT_REL) };
            let reloc_size = if is64 { 24 } else { 8 };
            let entries = [
                (DT_SYMTAB, ptr(DYNSYM)),
                (DT_STRTAB, ptr(DYNSTR)),
                (DT_STRSZ, 0x20),
                (hash_tag, ptr(HASH)),
                (DT_JMPREL, ptr(RELOCS)),
                (DT_PLTRELSZ, reloc_size),
                (DT_PLTREL, rel_tag),
                (DT_NULL, 0),
            ];
            for (i, (tag, value)) in entries.into_iter().enumerate() {
                b.word(DYNAMIC + 2 * w * i as u64, tag);
                b.word(DYNAMIC + 2 * w * i as u64 + w, value);
            }
            // Symbols: null, undefined `puts`, defined global function `my_func`.
            b.bytes[DYNSTR as usize..DYNSTR as usize + 14].copy_from_slice(b"\0puts\0my_func\0");
            b.sym(DYNSYM + syment, 1, 0x12, 0, 0);
            b.sym(DYNSYM + 2 * syment, 6, 0x12, 1, FUNC);
            if is64 {
                // nbuckets 1, symoffset 2, one bloom word, bucket 0 -> symbol 2, its chain ends.
                for (i, v) in [1u64, 2, 1, 6].into_iter().enumerate() {
                    b.put(HASH + 4 * i as u64, v, 4);
                }
                b.put(HASH + 16 + 8, 2, 4);
                b.put(HASH + 16 + 8 + 4, 0x1234_5679, 4);
            } else {
                // nbucket 1, nchain 3.
                b.put(HASH, 1, 4);
                b.put(HASH + 4, 3, 4);
            }
            // The relocation of `puts` into its GOT slot (JUMP_SLOT: 7 on both).
            b.word(RELOCS, GOT_SLOT);
            if is64 {
                b.put(RELOCS + 8, 1 << 32 | 7, 8);
            } else {
                b.put(RELOCS + 4, 1 << 8 | 7, 4);
            }
            // Sections: null, .text, .dynsym, .shstrtab (not allocated).
            b.bytes[SHSTRTAB as usize..SHSTRTAB as usize + 25].copy_from_slice(b"\0.text\0.dynsym\0.shstrtab\0");
            let shdr_size = u64::from(shentsize as u16);
            b.shdr(SHDRS + shdr_size, 1, 1, 6, FUNC, FUNC, 0x10);
            b.shdr(SHDRS + 2 * shdr_size, 7, 11, 2, DYNSYM, DYNSYM, 3 * syment);
            b.shdr(SHDRS + 3 * shdr_size, 15, 3, 0, 0, SHSTRTAB, 25);
            b.bytes
        }
    }

    fn memory_with(image: &[u8]) -> PhysicalView<BufferMemory> {
        let mut mem = PhysicalView::new(dummy_memory(0x20000));
        mem.write_raw(Address::from(BASE), image).unwrap();
        mem
    }

    /// Exports and imports as (name, offset), sections as (name, base, size).
    type Parsed = (Vec<(String, umem)>, Vec<(String, umem)>, Vec<(String, Address, umem)>);

    fn everything(mem: &mut PhysicalView<BufferMemory>) -> Result<Parsed> {
        let image = ElfImage::parse(mem, Address::from(BASE))?;
        let mut exports = Vec::new();
        image.exports(mem, |e| {
            exports.push((e.name.to_string(), e.offset));
            true
        })?;
        let mut imports = Vec::new();
        image.imports(mem, |i| {
            imports.push((i.name.to_string(), i.offset));
            true
        })?;
        let mut sections = Vec::new();
        image.sections(mem, None, |s| {
            sections.push((s.name.to_string(), s.base, s.size));
            true
        })?;
        Ok((exports, imports, sections))
    }

    #[test]
    fn synthetic_images_of_both_classes() {
        for is64 in [true, false] {
            let syment = if is64 { 24 } else { 16 };
            for relocated in [false, true] {
                let mut mem = memory_with(&Builder::build(is64, relocated));
                let (exports, imports, sections) = everything(&mut mem).unwrap();
                assert_eq!(exports, [("my_func".to_string(), FUNC as umem)], "is64 {is64} relocated {relocated}");
                assert_eq!(imports, [("puts".to_string(), GOT_SLOT as umem)]);
                let base = Address::from(BASE);
                assert_eq!(
                    sections,
                    [
                        (".text".to_string(), base + FUNC as umem, 0x10),
                        (".dynsym".to_string(), base + DYNSYM as umem, 3 * syment)
                    ]
                );
                assert_eq!(ElfImage::parse(&mut mem, base).unwrap().size(), 0x1000);
            }
        }
    }

    #[test]
    fn segments_stand_in_for_missing_section_headers() {
        let mut bytes = Builder::build(true, false);
        bytes[40..48].fill(0); // e_shoff
        let mut mem = memory_with(&bytes);
        let sections = everything(&mut mem).unwrap().2;
        assert_eq!(sections, [("LOAD[r-x]".to_string(), Address::from(BASE), IMAGE_SIZE as umem)]);
    }

    #[test]
    fn garbage_gives_errors() {
        let kind = |bytes: &[u8]| everything(&mut memory_with(bytes)).unwrap_err().kind;
        assert_eq!(kind(&[0u8; 64]), ErrorKind::Malformed);
        let mut big_endian = Builder::build(true, false);
        big_endian[5] = 2;
        assert_eq!(kind(&big_endian), ErrorKind::Unsupported);
        let mut no_phdrs = Builder::build(true, false);
        no_phdrs[56] = 0;
        assert_eq!(kind(&no_phdrs), ErrorKind::Malformed);
        let mut far_phdrs = Builder::build(false, false);
        far_phdrs[28..32].copy_from_slice(&0x8000u32.to_le_bytes());
        assert_eq!(kind(&far_phdrs), ErrorKind::Malformed);
        let mut huge_hash = Builder::build(false, false);
        huge_hash[HASH as usize + 4..HASH as usize + 8].fill(0xff);
        assert_eq!(kind(&huge_hash), ErrorKind::LimitExceeded);
        let mut endless_chain = Builder::build(true, false);
        endless_chain[HASH as usize + 28..].fill(0);
        assert_eq!(kind(&endless_chain), ErrorKind::Malformed);
        let mut wild_symtab = Builder::build(true, false);
        wild_symtab[DYNAMIC as usize + 8..DYNAMIC as usize + 16].copy_from_slice(&0xdead_0000u64.to_le_bytes());
        assert_eq!(kind(&wild_symtab), ErrorKind::Malformed);
        let mut huge_strtab = Builder::build(true, false);
        huge_strtab[DYNAMIC as usize + 40..DYNAMIC as usize + 48].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(kind(&huge_strtab), ErrorKind::LimitExceeded);
    }

    #[test]
    fn mutated_images_never_panic() {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        for round in 0..3000 {
            let mut bytes = Builder::build(round % 2 == 0, round % 4 < 2);
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..IMAGE_SIZE);
                bytes[at] = rng.gen();
            }
            let _ = everything(&mut memory_with(&bytes));
        }
    }

    /// Writes the seeds of the `elf_image` fuzz target (the image at address 0). Run with
    /// `cargo test -p memflow-core --lib -- --ignored elf_image::tests::write_fuzz_seeds`.
    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/elf_image");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, is64, relocated) in [("elf64", true, false), ("elf32_relocated", false, true)] {
            std::fs::write(dir.join(name), Builder::build(is64, relocated)).unwrap();
        }
    }
}
