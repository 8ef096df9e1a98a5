//! Exports and imports: the dynamic segment, its symbol and hash tables and relocations.

use std::collections::HashSet;

use goblin::elf::dynamic::{
    DT_GNU_HASH, DT_HASH, DT_JMPREL, DT_NULL, DT_PLTREL, DT_PLTRELSZ, DT_REL, DT_RELA, DT_RELASZ, DT_RELSZ, DT_STRSZ,
    DT_STRTAB, DT_SYMTAB,
};
use goblin::elf::program_header::PT_DYNAMIC;
use goblin::elf::reloc::{Reloc, RelocSection};
use goblin::elf::section_header::{SHN_LORESERVE, SHN_UNDEF};
use goblin::elf::sym::{Sym, Symtab, STB_LOCAL, STT_COMMON, STT_FUNC, STT_GNU_IFUNC, STT_NOTYPE, STT_OBJECT};

use super::{
    goblin_error, le_uint, name_at, ElfImage, CHAIN_CHUNK, MAX_DYNAMIC_ENTRIES, MAX_RELOCATIONS, MAX_SYMBOLS, PAGE,
    RELOC_CHUNK,
};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::MemoryView;
use crate::os::info::{ExportInfo, ImportInfo};
use crate::types::umem;

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

impl ElfImage {
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
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
                    .with_reason(format_args!("ELF image: {count} relocations")));
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
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                .with_reason(format_args!("ELF image: no DT_SYMTAB or DT_STRTAB")));
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
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                .with_reason(format_args!("ELF image: no DT_HASH or DT_GNU_HASH")));
        };
        if count > MAX_SYMBOLS {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
                .with_reason(format_args!("ELF image: {count} dynamic symbols")));
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
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
                .with_reason(format_args!("ELF image: GNU hash table with {nbuckets} buckets")));
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
        Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
            .with_reason(format_args!("ELF image: GNU hash chain runs past {MAX_SYMBOLS} symbols")))
    }
}

/// Whether a dynamic symbol is an export (see [`ElfImage::exports`]).
fn is_export(sym: &Sym) -> bool {
    sym.st_shndx != SHN_UNDEF as usize
        && sym.st_shndx < SHN_LORESERVE as usize
        && sym.st_bind() != STB_LOCAL
        && matches!(sym.st_type(), STT_NOTYPE | STT_OBJECT | STT_FUNC | STT_COMMON | STT_GNU_IFUNC)
}
