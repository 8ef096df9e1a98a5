//! Tests of the ELF image parser on synthetic images.

use super::*;
use crate::connector::{dummy_memory, BufferMemory};
use crate::mem::PhysicalView;
use goblin::elf::dynamic::{
    DT_GNU_HASH, DT_HASH, DT_JMPREL, DT_NULL, DT_PLTREL, DT_PLTRELSZ, DT_REL, DT_RELA, DT_STRSZ, DT_STRTAB, DT_SYMTAB,
};
use goblin::elf::program_header::{PF_R, PF_X, PT_DYNAMIC, PT_LOAD};
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
