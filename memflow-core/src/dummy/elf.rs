//! Writes the small ELF shared-object images the synthetic OS maps into its address spaces.
//!
//! An image is three segments of one page each, laid out in the file as in memory (file
//! offset = link-time address, link base 0):
//!
//! - page 0, read-only: the ELF header, the program headers (three `PT_LOAD`, `PT_DYNAMIC`),
//!   the hash table (`DT_GNU_HASH` or `DT_HASH`), `.dynsym`, `.dynstr`, the PLT relocations
//!   (`RELA` for ELF64, `REL` for ELF32), `.shstrtab` and the section headers;
//! - page 1, read and execute: `.text`, 16 bytes per exported function;
//! - page 2, read and write: `.dynamic`, `.got` (one slot per import) and `.data`, 8 bytes per
//!   exported object.
//!
//! Every exported symbol's first four bytes hold its name's GNU hash ([`gnu_hash`]), so a
//! reader that resolves an export can check it landed on the right bytes. Imports are
//! undefined symbols named by `JUMP_SLOT` relocations of their `.got` slots.

use goblin::elf::dynamic::{
    DT_GNU_HASH, DT_HASH, DT_JMPREL, DT_NULL, DT_PLTGOT, DT_PLTREL, DT_PLTRELSZ, DT_REL, DT_RELA, DT_STRSZ, DT_STRTAB,
    DT_SYMENT, DT_SYMTAB,
};
use goblin::elf::header::ET_DYN;
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_DYNAMIC, PT_LOAD};
use goblin::elf::reloc::{R_386_JMP_SLOT, R_AARCH64_JUMP_SLOT, R_RISCV_JUMP_SLOT, R_X86_64_JUMP_SLOT};
use goblin::elf::section_header::{
    SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_HASH, SHT_HASH, SHT_PROGBITS, SHT_REL,
    SHT_RELA, SHT_STRTAB,
};
use goblin::elf::sym::{STB_GLOBAL, STT_FUNC, STT_OBJECT};

use crate::arch::ArchitectureIdent;
use crate::types::umem;

/// Number of segments (and pages) of every image.
pub const SEGMENT_COUNT: usize = 3;

/// How a segment may be accessed (every segment is readable).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
}

/// The access of each segment, in page order: headers and tables, code, data.
pub const SEGMENTS: [Access; SEGMENT_COUNT] =
    [Access { write: false, exec: false }, Access { write: false, exec: true }, Access { write: true, exec: false }];

/// Bytes of `.text` per exported function.
const FUNCTION_SIZE: usize = 16;
/// Bytes of `.data` per exported object.
const OBJECT_SIZE: usize = 8;

/// Which symbol hash table an image carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HashStyle {
    /// `DT_GNU_HASH` (what current toolchains emit).
    Gnu,
    /// `DT_HASH`, the System V table.
    SysV,
}

/// What an image defines and needs.
#[derive(Copy, Clone, Debug)]
pub struct ImageSpec {
    /// Exported functions, placed in `.text`.
    pub functions: &'static [&'static str],
    /// Exported objects, placed in `.data`.
    pub objects: &'static [&'static str],
    /// Imported functions, each with a `.got` slot and a `JUMP_SLOT` relocation.
    pub imports: &'static [&'static str],
    /// The hash table to write.
    pub hash: HashStyle,
}

/// The ELF flavour of code for an architecture: class, machine and the relocation type of a
/// PLT slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ElfTarget {
    is64: bool,
    machine: u16,
    jump_slot: u32,
}

impl ElfTarget {
    /// The target of code running on `arch` (ELF32 for the 32-bit x86 modes).
    pub fn of(arch: ArchitectureIdent) -> Self {
        let (is64, jump_slot) = match arch {
            ArchitectureIdent::X86_32 | ArchitectureIdent::X86Pae => (false, R_386_JMP_SLOT),
            ArchitectureIdent::X86_64 | ArchitectureIdent::X86_64La57 => (true, R_X86_64_JUMP_SLOT),
            ArchitectureIdent::AArch64 { .. } => (true, R_AARCH64_JUMP_SLOT),
            ArchitectureIdent::RiscVSv39 | ArchitectureIdent::RiscVSv48 | ArchitectureIdent::RiscVSv57 => {
                (true, R_RISCV_JUMP_SLOT)
            }
        };
        ElfTarget { is64, machine: arch.elf_machine(), jump_slot }
    }
}

/// A written image and what a correct parser finds in it.
#[derive(Clone, Debug)]
pub struct WrittenImage {
    /// The image, [`SEGMENT_COUNT`] pages.
    pub bytes: Vec<u8>,
    /// Exported symbols with their offsets from the base.
    pub exports: Vec<(String, umem)>,
    /// Imported symbols with the offsets of their `.got` slots from the base.
    pub imports: Vec<(String, umem)>,
    /// Allocated sections: name, offset from the base, size.
    pub sections: Vec<(String, umem, umem)>,
}

impl WrittenImage {
    /// Rewrites the pointers of `.dynamic` to run-time addresses of the image loaded at `base`,
    /// as glibc's loader leaves them in every object it relocates.
    pub fn relocate_dynamic(&mut self, base: u64) {
        let word = if self.bytes[4] == 2 { 8 } else { 4 };
        let Some(&(_, dynamic, size)) = self.sections.iter().find(|(name, ..)| name == ".dynamic") else { return };
        let mut uint = [0u8; 8];
        for entry in self.bytes[dynamic as usize..(dynamic + size) as usize].chunks_exact_mut(2 * word) {
            let (tag, value) = entry.split_at_mut(word);
            uint[..word].copy_from_slice(tag);
            let tag = u64::from_le_bytes(uint);
            if matches!(tag, DT_GNU_HASH | DT_HASH | DT_SYMTAB | DT_STRTAB | DT_PLTGOT | DT_JMPREL) {
                uint[..word].copy_from_slice(value);
                let relocated = u64::from_le_bytes(uint) + base;
                value.copy_from_slice(&relocated.to_le_bytes()[..word]);
            }
        }
    }
}

/// The GNU hash of a symbol name (`h = h * 33 + c` from 5381).
pub fn gnu_hash(name: &str) -> u32 {
    name.bytes().fold(5381u32, |h, c| h.wrapping_mul(33).wrapping_add(u32::from(c)))
}

/// A section header to write.
struct Section {
    name: &'static str,
    kind: u32,
    flags: u32,
    offset: usize,
    size: usize,
    link: u32,
    info: u32,
    align: usize,
    entsize: usize,
}

/// Little-endian fields written into the image bytes.
struct Writer {
    bytes: Vec<u8>,
    is64: bool,
}

impl Writer {
    /// The size of an address-sized field (8 or 4 bytes).
    fn word(&self) -> usize {
        if self.is64 {
            8
        } else {
            4
        }
    }

    /// Writes `(value, size)` fields one after another from `at`; returns the end.
    fn fields(&mut self, at: usize, fields: &[(u64, usize)]) -> usize {
        fields.iter().fold(at, |at, &(value, size)| {
            self.bytes[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
            at + size
        })
    }

    fn header_size(&self) -> usize {
        if self.is64 {
            64
        } else {
            52
        }
    }

    fn phdr_size(&self) -> usize {
        if self.is64 {
            56
        } else {
            32
        }
    }

    fn shdr_size(&self) -> usize {
        if self.is64 {
            64
        } else {
            40
        }
    }

    fn sym_size(&self) -> usize {
        if self.is64 {
            24
        } else {
            16
        }
    }

    /// `RELA` entries for ELF64, `REL` for ELF32.
    fn reloc_size(&self) -> usize {
        if self.is64 {
            24
        } else {
            8
        }
    }

    fn header(&mut self, machine: u16, phnum: usize, shoff: usize, shnum: usize) {
        self.bytes[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', if self.is64 { 2 } else { 1 }, 1, 1, 0]);
        let w = self.word();
        self.fields(
            16,
            &[
                (u64::from(ET_DYN), 2),
                (u64::from(machine), 2),
                (1, 4), // e_version
                (0, w), // e_entry
                (self.header_size() as u64, w),
                (shoff as u64, w),
                (0, 4), // e_flags
                (self.header_size() as u64, 2),
                (self.phdr_size() as u64, 2),
                (phnum as u64, 2),
                (self.shdr_size() as u64, 2),
                (shnum as u64, 2),
                (shnum as u64 - 1, 2), // .shstrtab is the last section
            ],
        );
    }

    /// A program header whose file offset, address and sizes are `offset` and `size`.
    fn phdr(&mut self, index: usize, kind: u32, flags: u32, offset: usize, size: usize, align: usize) {
        let at = self.header_size() + index * self.phdr_size();
        let (kind, flags, offset, size, align) =
            (u64::from(kind), u64::from(flags), offset as u64, size as u64, align as u64);
        if self.is64 {
            self.fields(
                at,
                &[(kind, 4), (flags, 4), (offset, 8), (offset, 8), (offset, 8), (size, 8), (size, 8), (align, 8)],
            );
        } else {
            self.fields(
                at,
                &[(kind, 4), (offset, 4), (offset, 4), (offset, 4), (size, 4), (size, 4), (flags, 4), (align, 4)],
            );
        }
    }

    fn sym(&mut self, at: usize, name: usize, info: u8, shndx: usize, value: usize, size: usize) {
        let (name, info, shndx, value, size) = (name as u64, u64::from(info), shndx as u64, value as u64, size as u64);
        if self.is64 {
            self.fields(at, &[(name, 4), (info, 1), (0, 1), (shndx, 2), (value, 8), (size, 8)]);
        } else {
            self.fields(at, &[(name, 4), (value, 4), (size, 4), (info, 1), (0, 1), (shndx, 2)]);
        }
    }

    fn jump_slot(&mut self, at: usize, slot: usize, sym: usize, kind: u32) {
        if self.is64 {
            self.fields(at, &[(slot as u64, 8), ((sym as u64) << 32 | u64::from(kind), 8), (0, 8)]);
        } else {
            self.fields(at, &[(slot as u64, 4), ((sym as u64) << 8 | u64::from(kind), 4)]);
        }
    }

    fn shdr(&mut self, at: usize, name: usize, s: &Section) {
        let w = self.word();
        // Allocated sections sit at the address equal to their file offset.
        let addr = if s.flags & SHF_ALLOC != 0 { s.offset as u64 } else { 0 };
        self.fields(
            at,
            &[
                (name as u64, 4),
                (u64::from(s.kind), 4),
                (u64::from(s.flags), w),
                (addr, w),
                (s.offset as u64, w),
                (s.size as u64, w),
                (u64::from(s.link), 4),
                (u64::from(s.info), 4),
                (s.align as u64, w),
                (s.entsize as u64, w),
            ],
        );
    }
}

/// Hands out 8-byte aligned places in the first page, one after another.
struct Cursor(usize);

impl Cursor {
    fn take(&mut self, size: usize) -> usize {
        let at = self.0.next_multiple_of(8);
        self.0 = at + size;
        at
    }
}

/// Appends `name` and a NUL to a string table; returns its offset.
fn add_name(table: &mut Vec<u8>, name: &str) -> usize {
    let at = table.len();
    table.extend_from_slice(name.as_bytes());
    table.push(0);
    at
}

/// Writes the image of `spec` for `target` with pages of `page` bytes (see the module docs).
///
/// Panics if the headers and tables, the code or the data do not fit their page, which takes
/// names and counts far beyond those of the synthetic OS's fixed specs.
pub fn write_image(target: ElfTarget, page: usize, spec: &ImageSpec) -> WrittenImage {
    let mut w = Writer { bytes: vec![0u8; SEGMENT_COUNT * page], is64: target.is64 };
    let word = w.word();
    let (text_at, rw_at) = (page, 2 * page);

    // Symbols: the null symbol, the imports (undefined), then the exports (hashed).
    let exported: Vec<&str> = spec.functions.iter().chain(spec.objects).copied().collect();
    let names: Vec<&str> = spec.imports.iter().copied().chain(exported.iter().copied()).collect();
    let mut dynstr = vec![0u8];
    let name_at: Vec<usize> = names.iter().map(|n| add_name(&mut dynstr, n)).collect();
    let sym_count = 1 + names.len();
    let first_export = 1 + spec.imports.len();

    // Page 2: .dynamic, .got, .data.
    let has_plt = !spec.imports.is_empty();
    let dyn_count = 6 + if has_plt { 4 } else { 0 };
    let dynamic_at = rw_at;
    let got_at = dynamic_at + dyn_count * 2 * word;
    let data_at = got_at + spec.imports.len() * word;

    // Page 0: the tables after the headers.
    let mut cursor = Cursor(w.header_size() + 4 * w.phdr_size());
    let hash_size = match spec.hash {
        // nbuckets, symoffset, bloom_size, bloom_shift, one bloom word, one bucket, the chain.
        HashStyle::Gnu => 16 + word + 4 + 4 * exported.len(),
        // nbucket, nchain, one bucket, a chain entry per symbol.
        HashStyle::SysV => 4 * (3 + sym_count),
    };
    let hash_at = cursor.take(hash_size);
    let dynsym_at = cursor.take(sym_count * w.sym_size());
    let dynstr_at = cursor.take(dynstr.len());
    let relocs_size = spec.imports.len() * w.reloc_size();
    let relocs_at = cursor.take(relocs_size);

    let (hash_kind, hash_name) = match spec.hash {
        HashStyle::Gnu => (SHT_GNU_HASH, ".gnu.hash"),
        HashStyle::SysV => (SHT_HASH, ".hash"),
    };
    let (reloc_kind, reloc_name) = if target.is64 { (SHT_RELA, ".rela.plt") } else { (SHT_REL, ".rel.plt") };
    // Indices: 1 hash, 2 .dynsym, 3 .dynstr, then the rest.
    let text_index = if has_plt { 5 } else { 4 };
    let data_index = text_index + 3;
    let mut sections = vec![
        Section { name: "", kind: 0, flags: 0, offset: 0, size: 0, link: 0, info: 0, align: 0, entsize: 0 },
        Section {
            name: hash_name,
            kind: hash_kind,
            flags: SHF_ALLOC,
            offset: hash_at,
            size: hash_size,
            link: 2,
            info: 0,
            align: word,
            entsize: if spec.hash == HashStyle::SysV { 4 } else { 0 },
        },
        Section {
            name: ".dynsym",
            kind: SHT_DYNSYM,
            flags: SHF_ALLOC,
            offset: dynsym_at,
            size: sym_count * w.sym_size(),
            link: 3,
            info: 1,
            align: word,
            entsize: w.sym_size(),
        },
        Section {
            name: ".dynstr",
            kind: SHT_STRTAB,
            flags: SHF_ALLOC,
            offset: dynstr_at,
            size: dynstr.len(),
            link: 0,
            info: 0,
            align: 1,
            entsize: 0,
        },
    ];
    if has_plt {
        let got_index = text_index as u32 + 2;
        sections.push(Section {
            name: reloc_name,
            kind: reloc_kind,
            flags: SHF_ALLOC,
            offset: relocs_at,
            size: relocs_size,
            link: 2,
            info: got_index,
            align: word,
            entsize: w.reloc_size(),
        });
    }
    sections.extend([
        Section {
            name: ".text",
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_EXECINSTR,
            offset: text_at,
            size: spec.functions.len() * FUNCTION_SIZE,
            link: 0,
            info: 0,
            align: FUNCTION_SIZE,
            entsize: 0,
        },
        Section {
            name: ".dynamic",
            kind: SHT_DYNAMIC,
            flags: SHF_ALLOC | SHF_WRITE,
            offset: dynamic_at,
            size: dyn_count * 2 * word,
            link: 3,
            info: 0,
            align: word,
            entsize: 2 * word,
        },
        Section {
            name: ".got",
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_WRITE,
            offset: got_at,
            size: spec.imports.len() * word,
            link: 0,
            info: 0,
            align: word,
            entsize: word,
        },
        Section {
            name: ".data",
            kind: SHT_PROGBITS,
            flags: SHF_ALLOC | SHF_WRITE,
            offset: data_at,
            size: spec.objects.len() * OBJECT_SIZE,
            link: 0,
            info: 0,
            align: OBJECT_SIZE,
            entsize: 0,
        },
    ]);
    let mut shstrtab = vec![0u8];
    let section_names: Vec<usize> =
        sections.iter().map(|s| if s.name.is_empty() { 0 } else { add_name(&mut shstrtab, s.name) }).collect();
    let shstrtab_name = add_name(&mut shstrtab, ".shstrtab");
    let shstrtab_at = cursor.take(shstrtab.len());
    sections.push(Section {
        name: ".shstrtab",
        kind: SHT_STRTAB,
        flags: 0,
        offset: shstrtab_at,
        size: shstrtab.len(),
        link: 0,
        info: 0,
        align: 1,
        entsize: 0,
    });
    let shdrs_at = cursor.take(sections.len() * w.shdr_size());
    assert!(cursor.0 <= page, "image tables take {:#x} bytes, more than a page", cursor.0);
    let code_and_data_fit = spec.functions.len() * FUNCTION_SIZE <= page
        && data_at + spec.objects.len() * OBJECT_SIZE <= SEGMENT_COUNT * page;
    assert!(code_and_data_fit, "the code or the data of the image take more than a page");

    // Headers.
    w.header(target.machine, 4, shdrs_at, sections.len());
    for (i, access) in SEGMENTS.iter().enumerate() {
        let flags = PF_R | if access.write { PF_W } else { 0 } | if access.exec { PF_X } else { 0 };
        w.phdr(i, PT_LOAD, flags, i * page, page, page);
    }
    w.phdr(3, PT_DYNAMIC, PF_R | PF_W, dynamic_at, dyn_count * 2 * word, word);

    // Symbols, their bytes and the hash table.
    let mut exports = Vec::new();
    for (i, name) in exported.iter().enumerate() {
        let (shndx, kind, at, size) = match i.checked_sub(spec.functions.len()) {
            None => (text_index, STT_FUNC, text_at + i * FUNCTION_SIZE, FUNCTION_SIZE),
            Some(j) => (data_index, STT_OBJECT, data_at + j * OBJECT_SIZE, OBJECT_SIZE),
        };
        let index = first_export + i;
        w.sym(dynsym_at + index * w.sym_size(), name_at[index - 1], STB_GLOBAL << 4 | kind, shndx, at, size);
        w.fields(at, &[(u64::from(gnu_hash(name)), 4)]);
        exports.push((name.to_string(), at as umem));
    }
    match spec.hash {
        HashStyle::Gnu => {
            // One bucket holding every export; a bloom word with both bits of each set.
            let bits = 8 * word as u32;
            let shift = 6u32;
            let hashes: Vec<u32> = exported.iter().map(|n| gnu_hash(n)).collect();
            let bloom = hashes.iter().fold(0u64, |b, h| b | 1 << (h % bits) | 1 << ((h >> shift) % bits));
            let bucket = if hashes.is_empty() { 0 } else { first_export };
            let at = w.fields(
                hash_at,
                &[(1, 4), (first_export as u64, 4), (1, 4), (u64::from(shift), 4), (bloom, word), (bucket as u64, 4)],
            );
            for (i, h) in hashes.iter().enumerate() {
                let end = u32::from(i + 1 == hashes.len());
                w.fields(at + 4 * i, &[(u64::from(h & !1 | end), 4)]);
            }
        }
        HashStyle::SysV => {
            // One bucket: symbol n-1 first, each chain entry pointing at the one before.
            let last = sym_count - 1;
            w.fields(hash_at, &[(1, 4), (sym_count as u64, 4), (last as u64, 4)]);
            for i in 1..sym_count {
                w.fields(hash_at + 12 + 4 * i, &[(i as u64 - 1, 4)]);
            }
        }
    }
    let mut imports = Vec::new();
    for (i, name) in spec.imports.iter().enumerate() {
        let index = 1 + i;
        w.sym(dynsym_at + index * w.sym_size(), name_at[i], STB_GLOBAL << 4 | STT_FUNC, 0, 0, 0);
        let slot = got_at + i * word;
        w.jump_slot(relocs_at + i * w.reloc_size(), slot, index, target.jump_slot);
        imports.push((name.to_string(), slot as umem));
    }
    w.bytes[dynstr_at..dynstr_at + dynstr.len()].copy_from_slice(&dynstr);

    // The dynamic segment.
    let hash_tag = if spec.hash == HashStyle::Gnu { DT_GNU_HASH } else { DT_HASH };
    let mut entries = vec![
        (hash_tag, hash_at),
        (DT_SYMTAB, dynsym_at),
        (DT_STRTAB, dynstr_at),
        (DT_STRSZ, dynstr.len()),
        (DT_SYMENT, w.sym_size()),
    ];
    if has_plt {
        let rel_tag = if target.is64 { DT_RELA } else { DT_REL };
        entries.extend([
            (DT_PLTGOT, got_at),
            (DT_JMPREL, relocs_at),
            (DT_PLTRELSZ, relocs_size),
            (DT_PLTREL, rel_tag as usize),
        ]);
    }
    entries.push((DT_NULL, 0));
    for (i, (tag, value)) in entries.into_iter().enumerate() {
        w.fields(dynamic_at + i * 2 * word, &[(tag, word), (value as u64, word)]);
    }

    // Section headers and their names.
    w.bytes[shstrtab_at..shstrtab_at + shstrtab.len()].copy_from_slice(&shstrtab);
    let names = section_names.iter().chain([&shstrtab_name]);
    for (i, (s, &name)) in sections.iter().zip(names).enumerate() {
        w.shdr(shdrs_at + i * w.shdr_size(), name, s);
    }
    let sections = sections
        .iter()
        .filter(|s| s.flags & SHF_ALLOC != 0)
        .map(|s| (s.name.to_string(), s.offset as umem, s.size as umem))
        .collect();
    WrittenImage { bytes: w.bytes, exports, imports, sections }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    const SPEC: ImageSpec = ImageSpec {
        functions: &["open", "read"],
        objects: &["version"],
        imports: &["malloc", "free"],
        hash: HashStyle::Gnu,
    };

    /// goblin, an independent parser, reads the whole image as a file and finds what was
    /// written, for both classes and both hash styles.
    #[test]
    fn goblin_parses_every_flavour() {
        let arches = [ArchitectureIdent::X86_64, ArchitectureIdent::X86Pae, ArchitectureIdent::RiscVSv48];
        for arch in arches {
            for hash in [HashStyle::Gnu, HashStyle::SysV] {
                for imports in [SPEC.imports, &[]] {
                    let spec = ImageSpec { hash, imports, ..SPEC };
                    let image = write_image(ElfTarget::of(arch), 0x1000, &spec);
                    let elf = Elf::parse(&image.bytes).unwrap_or_else(|e| panic!("{arch:?} {hash:?}: {e}"));
                    assert_eq!(elf.is_64, ElfTarget::of(arch).is64);
                    assert_eq!(elf.header.e_machine, ElfTarget::of(arch).machine);
                    let dynsyms: Vec<_> =
                        elf.dynsyms.iter().map(|s| (elf.dynstrtab.get_at(s.st_name).unwrap(), s.st_value)).collect();
                    let defined: Vec<_> =
                        dynsyms.iter().filter(|(_, v)| *v != 0).map(|(n, v)| (n.to_string(), *v as umem)).collect();
                    assert_eq!(defined, image.exports, "{arch:?} {hash:?}");
                    let relocs: Vec<_> = elf
                        .pltrelocs
                        .iter()
                        .map(|r| (dynsyms[r.r_sym].0.to_string(), r.r_offset as umem, r.r_type))
                        .collect();
                    let expect: Vec<_> =
                        image.imports.iter().map(|(n, o)| (n.clone(), *o, ElfTarget::of(arch).jump_slot)).collect();
                    assert_eq!(relocs, expect);
                    assert_eq!(elf.program_headers.len(), 4);
                    let names: Vec<_> =
                        elf.section_headers.iter().filter_map(|s| elf.shdr_strtab.get_at(s.sh_name)).collect();
                    assert!(names.contains(&".text") && names.contains(&".shstrtab"), "{names:?}");
                    for (name, offset) in &image.exports {
                        let at = *offset as usize;
                        assert_eq!(image.bytes[at..at + 4], gnu_hash(name).to_le_bytes());
                    }
                }
            }
        }
    }

    #[test]
    fn gnu_hash_matches_known_values() {
        assert_eq!(gnu_hash(""), 0x1505);
        assert_eq!(gnu_hash("printf"), 0x156b_2bb8);
    }
}
