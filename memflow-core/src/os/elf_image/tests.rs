//! Tests of the ELF image parser on images of the synthetic OS's writer ([`crate::dummy::elf`]).

use super::*;
use crate::arch::ArchitectureIdent;
use crate::connector::{dummy_memory, BufferMemory};
use crate::dummy::elf::{write_image, ElfTarget, HashStyle, ImageSpec, WrittenImage, SEGMENTS, SEGMENT_COUNT};
use crate::mem::PhysicalView;
use goblin::elf::dynamic::{DT_STRSZ, DT_SYMTAB};
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// Where the synthetic image is placed in the test memory.
const BASE: u64 = 0x10000;
/// The page size of the images.
const IMAGE_PAGE: usize = 0x1000;

/// A small shared object: `my_func` and `my_data` exported, `puts` imported through a PLT
/// relocation, section headers inside the first loaded segment. ELF64 uses `DT_GNU_HASH` and
/// `RELA`, ELF32 `DT_HASH` and `REL`. With `relocated`, dynamic pointers hold run-time
/// addresses as glibc leaves them.
fn image(is64: bool, relocated: bool) -> WrittenImage {
    let arch = if is64 { ArchitectureIdent::X86_64 } else { ArchitectureIdent::X86_32 };
    let hash = if is64 { HashStyle::Gnu } else { HashStyle::SysV };
    let spec = ImageSpec { functions: &["my_func"], objects: &["my_data"], imports: &["puts"], hash };
    let mut image = write_image(ElfTarget::of(arch), IMAGE_PAGE, &spec);
    if relocated {
        image.relocate_dynamic(BASE);
    }
    image
}

/// The file offset of section `name` of `image`.
fn section(image: &WrittenImage, name: &str) -> usize {
    image.sections.iter().find(|(n, ..)| n == name).map(|&(_, offset, _)| offset as usize).unwrap()
}

/// The file offset of the value of the first dynamic entry tagged `tag` in an ELF64 `image`.
fn dynamic_value(image: &WrittenImage, tag: u64) -> usize {
    let dynamic = section(image, ".dynamic");
    let entry = image.bytes[dynamic..].chunks_exact(16).position(|e| e[..8] == tag.to_le_bytes()).unwrap();
    dynamic + 16 * entry + 8
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
        for relocated in [false, true] {
            let written = image(is64, relocated);
            if relocated {
                assert_ne!(written.bytes, image(is64, false).bytes, "relocation changes the dynamic pointers");
            }
            let mut mem = memory_with(&written.bytes);
            let (exports, imports, sections) = everything(&mut mem).unwrap();
            assert_eq!(exports, written.exports, "is64 {is64} relocated {relocated}");
            assert_eq!(imports, written.imports);
            let base = Address::from(BASE);
            let expect: Vec<_> =
                written.sections.iter().map(|(n, offset, size)| (n.clone(), base + *offset, *size)).collect();
            assert_eq!(sections, expect);
            assert_eq!(ElfImage::parse(&mut mem, base).unwrap().size(), (SEGMENT_COUNT * IMAGE_PAGE) as umem);
        }
    }
}

#[test]
fn segments_stand_in_for_missing_section_headers() {
    let mut bytes = image(true, false).bytes;
    bytes[40..48].fill(0); // e_shoff
    let mut mem = memory_with(&bytes);
    let sections = everything(&mut mem).unwrap().2;
    let expect: Vec<_> = SEGMENTS
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let name = format!("LOAD[r{}{}]", if a.write { 'w' } else { '-' }, if a.exec { 'x' } else { '-' });
            (name, Address::from(BASE + (i * IMAGE_PAGE) as u64), IMAGE_PAGE as umem)
        })
        .collect();
    assert_eq!(sections, expect);
}

#[test]
fn garbage_gives_errors() {
    let kind = |bytes: &[u8]| everything(&mut memory_with(bytes)).unwrap_err().kind;
    assert_eq!(kind(&[0u8; 64]), ErrorKind::Malformed);
    let elf64 = image(true, false);
    let elf32 = image(false, false);
    let mut big_endian = elf64.bytes.clone();
    big_endian[5] = 2;
    assert_eq!(kind(&big_endian), ErrorKind::Unsupported);
    let mut no_phdrs = elf64.bytes.clone();
    no_phdrs[56] = 0;
    assert_eq!(kind(&no_phdrs), ErrorKind::Malformed);
    let mut far_phdrs = elf32.bytes.clone();
    far_phdrs[28..32].copy_from_slice(&0x8000u32.to_le_bytes());
    assert_eq!(kind(&far_phdrs), ErrorKind::Malformed);
    // nchain of the System V hash table.
    let mut huge_hash = elf32.bytes.clone();
    let hash = section(&elf32, ".hash");
    huge_hash[hash + 4..hash + 8].fill(0xff);
    assert_eq!(kind(&huge_hash), ErrorKind::LimitExceeded);
    // The one GNU hash bucket (after the 16-byte header and one bloom word) names a symbol
    // whose chain starts in the last word of the image, which is zero: the chain never ends
    // inside the image.
    let mut endless_chain = elf64.bytes.clone();
    let gnu_hash = section(&elf64, ".gnu.hash");
    let chains = gnu_hash + 16 + 8 + 4;
    let symoffset = u32::from_le_bytes(endless_chain[gnu_hash + 4..gnu_hash + 8].try_into().unwrap()) as usize;
    let last_word = endless_chain.len() - 4;
    assert_eq!(endless_chain[last_word..], [0; 4]);
    let bucket = (symoffset + (last_word - chains) / 4) as u32;
    endless_chain[gnu_hash + 24..gnu_hash + 28].copy_from_slice(&bucket.to_le_bytes());
    assert_eq!(kind(&endless_chain), ErrorKind::Malformed);
    let mut wild_symtab = elf64.bytes.clone();
    let symtab = dynamic_value(&elf64, DT_SYMTAB);
    wild_symtab[symtab..symtab + 8].copy_from_slice(&0xdead_0000u64.to_le_bytes());
    assert_eq!(kind(&wild_symtab), ErrorKind::Malformed);
    let mut huge_strtab = elf64.bytes.clone();
    let strsz = dynamic_value(&elf64, DT_STRSZ);
    huge_strtab[strsz..strsz + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(kind(&huge_strtab), ErrorKind::LimitExceeded);
}

#[test]
fn rebuilt_files_are_the_images_they_were_loaded_from() {
    use std::ops::ControlFlow;
    let dir = std::env::temp_dir().join(format!("memflow-rebuild-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("module");
    let rebuild = |bytes: &[u8], progress: &mut dyn FnMut(_) -> ControlFlow<()>| {
        rebuild_file(memory_with(bytes), Address::from(BASE), &path, progress)
    };
    // Loaded with the dynamic pointers relocated (as glibc leaves them), rebuilt as linked:
    // byte for byte the file (whose section headers lie in its first segment, so they stay).
    for is64 in [true, false] {
        let summary = rebuild(&image(is64, true).bytes, &mut |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(summary.hole_pages, 0);
        assert_eq!(std::fs::read(&path).unwrap(), image(is64, false).bytes, "ELF{}", if is64 { 64 } else { 32 });
    }
    // A PE image is refused; so is a segment of absurd size; a cancelled rebuild leaves no file.
    std::fs::remove_file(&path).unwrap();
    let mut pe = vec![0u8; 0x1000];
    pe[..2].copy_from_slice(b"MZ");
    assert_eq!(rebuild(&pe, &mut |_| ControlFlow::Continue(())).unwrap_err().kind, ErrorKind::Unsupported);
    let mut huge = image(true, false).bytes;
    let phoff = u64::from_le_bytes(huge[0x20..0x28].try_into().unwrap()) as usize;
    let load = (0..).map(|i| phoff + 56 * i).find(|&ph| huge[ph..ph + 4] == PT_LOAD.to_le_bytes()).unwrap();
    huge[load + 32..load + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(rebuild(&huge, &mut |_| ControlFlow::Continue(())).unwrap_err().kind, ErrorKind::LimitExceeded);
    let cancelled = rebuild(&image(true, true).bytes, &mut |_| ControlFlow::Break(())).unwrap_err();
    assert_eq!(cancelled.kind, ErrorKind::Cancelled);
    assert!(!path.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mutated_images_never_panic() {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let images: Vec<_> = (0..4).map(|round| image(round % 2 == 0, round % 4 < 2).bytes).collect();
    for round in 0..3000 {
        let mut bytes = images[round % 4].clone();
        for _ in 0..rng.gen_range(1..8) {
            // Most of an image is its first page (headers and tables); mutate there mostly.
            let end = if rng.gen() { IMAGE_PAGE } else { bytes.len() };
            let at = rng.gen_range(0..end);
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
        std::fs::write(dir.join(name), image(is64, relocated).bytes).unwrap();
    }
}
