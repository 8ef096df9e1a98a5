//! ELF core files: QEMU `dump-guest-memory` output and Linux vmcore / kdump files.
//!
//! Memory: every `PT_LOAD` with file bytes maps `p_filesz` bytes at guest physical address
//! `p_paddr` to file offset `p_offset`. When `p_memsz` is larger, the rest of the segment was
//! not saved and stays a hole. A segment lying wholly inside another with byte-identical
//! contents is a second view of the same memory (kdump maps the kernel image twice) and is
//! skipped; any other overlap is an error.
//!
//! CPU state (x86 and x86-64 cores only): one `CORE`/`NT_PRSTATUS` note per CPU gives the
//! general registers (the x86-64 `elf_prstatus` of 336 bytes or the i386 one of 144 bytes),
//! and QEMU adds one `QEMU` note (type 0, `QEMUCPUState` version 1) per CPU with segment
//! state and CR0 to CR4, plus `kernel_gs_base` when its size field covers it. The n-th note
//! of each kind belongs to CPU n. QEMU does not record `EFER`, so
//! [`X86RegisterSet::EFER`] stays clear and long mode is inferred
//! ([`X86Registers::infer_long_mode`]): paging and PAE on, and either `CS.L` or the 64-bit
//! `NT_PRSTATUS` layout, which QEMU and Linux only write for long-mode CPUs.
//!
//! Linux vmcores carry a `VMCOREINFO` note with `key=value` lines ([`VmcoreInfo`]).
//!
//! The input is untrusted: every offset is bounds-checked, counts are capped
//! ([`MAX_PROGRAM_HEADERS`], [`MAX_NOTES`], [`MAX_CPUS`]) and nothing is allocated in
//! proportion to a field's claim, only to the structures actually present in the file.

use std::collections::BTreeMap;

use super::bytes::{format_error, ByteReader};
use super::cpu_state::{X86RegisterSet, X86Registers};
use crate::error::{ErrorKind, Result};
use crate::mem::MemoryMap;
use crate::types::{umem, Address};

/// The most program headers accepted (QEMU writes one per guest RAM range plus one note).
pub const MAX_PROGRAM_HEADERS: u64 = 4096;
/// The most notes accepted over all `PT_NOTE` segments.
pub const MAX_NOTES: usize = 16384;
/// The most CPUs whose state is kept; notes of further CPUs are skipped with a warning.
pub const MAX_CPUS: usize = 4096;

/// The first four bytes of every ELF file.
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";

const ET_CORE: u16 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PN_XNUM: u16 = 0xffff;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const NT_PRSTATUS: u32 = 1;
const NOTE_HEADER_SIZE: u64 = 12;

/// Size of the x86-64 `elf_prstatus` note descriptor; registers start at byte 112.
const PRSTATUS_X86_64_SIZE: u64 = 336;
/// Size of the i386 `elf_prstatus` note descriptor; registers start at byte 72.
const PRSTATUS_I386_SIZE: u64 = 144;
/// Offset of the first segment (`cs`) in `QEMUCPUState`; each segment takes 24 bytes.
const QEMU_SEGMENTS: u64 = 152;
/// Offset of `cr[5]` (CR0 to CR4) in `QEMUCPUState`, after ten segments.
const QEMU_CONTROL: u64 = QEMU_SEGMENTS + 10 * 24;
/// `QEMUCPUState` up to and including `cr[5]`; `kernel_gs_base` follows at this offset.
const QEMU_STATE_MIN_SIZE: u64 = QEMU_CONTROL + 5 * 8;

/// The ELF file class.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ElfClass {
    /// `ELFCLASS32`: 32-bit offsets and addresses.
    Elf32 = 1,
    /// `ELFCLASS64`: 64-bit offsets and addresses.
    Elf64 = 2,
}

/// Where the fields this parser reads sit in one ELF class.
struct Layout {
    /// Size of addresses and offsets.
    word: usize,
    ehdr_size: u64,
    e_phoff: u64,
    e_shoff: u64,
    /// `e_phentsize`; `e_phnum` follows at +2, `e_shentsize` at +4.
    e_phentsize: u64,
    phdr_size: u64,
    p_offset: u64,
    p_paddr: u64,
    p_filesz: u64,
    p_memsz: u64,
    shdr_size: u64,
    sh_info: u64,
}

const ELF32: Layout = Layout {
    word: 4,
    ehdr_size: 52,
    e_phoff: 28,
    e_shoff: 32,
    e_phentsize: 42,
    phdr_size: 32,
    p_offset: 4,
    p_paddr: 12,
    p_filesz: 16,
    p_memsz: 20,
    shdr_size: 40,
    sh_info: 28,
};

const ELF64: Layout = Layout {
    word: 8,
    ehdr_size: 64,
    e_phoff: 32,
    e_shoff: 40,
    e_phentsize: 54,
    phdr_size: 56,
    p_offset: 8,
    p_paddr: 24,
    p_filesz: 32,
    p_memsz: 40,
    shdr_size: 64,
    sh_info: 44,
};

/// The `key=value` lines of a Linux `VMCOREINFO` note, e.g. `OSRELEASE=6.1.0-56-cloud-amd64`,
/// `PAGESIZE=4096`, `SYMBOL(swapper_pg_dir)=ffffffff82a0a000`, `KERNELOFFSET=0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmcoreInfo {
    entries: BTreeMap<String, String>,
}

impl VmcoreInfo {
    /// Parses the note text; lines without `=` are ignored, a repeated key keeps its last value.
    pub fn parse(text: &[u8]) -> Self {
        let text = String::from_utf8_lossy(text);
        let entries = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_end_matches('\0').to_owned()))
            .collect();
        VmcoreInfo { entries }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// All entries, sorted by key.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    /// The address in `SYMBOL(name)=<hex>`.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        u64::from_str_radix(self.get(&format!("SYMBOL({name})"))?, 16).ok()
    }

    /// The value of `NUMBER(name)=<decimal>`.
    pub fn number(&self, name: &str) -> Option<i64> {
        self.get(&format!("NUMBER({name})"))?.parse().ok()
    }

    /// `OSRELEASE`: the kernel release string.
    pub fn os_release(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    /// `PAGESIZE` in bytes.
    pub fn page_size(&self) -> Option<u64> {
        self.get("PAGESIZE")?.parse().ok()
    }

    /// `KERNELOFFSET`: the KASLR displacement of the kernel image (hexadecimal in the note).
    pub fn kernel_offset(&self) -> Option<u64> {
        u64::from_str_radix(self.get("KERNELOFFSET")?, 16).ok()
    }
}

/// What an ELF core file holds.
#[derive(Clone, Debug)]
pub struct ElfCore {
    /// 32- or 64-bit ELF.
    pub class: ElfClass,
    /// The `e_machine` field (62 for x86-64, 3 for i386).
    pub machine: u16,
    /// Guest physical layout; backing offsets are file offsets.
    pub map: MemoryMap,
    /// Registers per CPU (empty for machines other than x86 and x86-64).
    pub cpus: Vec<X86Registers>,
    /// The Linux `VMCOREINFO` note, if present.
    pub vmcoreinfo: Option<VmcoreInfo>,
}

/// A `PT_LOAD` with file bytes, after its bounds were checked.
#[derive(Copy, Clone)]
struct Load {
    /// Index in the program header table, for messages.
    index: u64,
    offset: u64,
    paddr: u64,
    size: u64,
}

impl Load {
    fn end(&self) -> u64 {
        self.paddr + self.size
    }
}

/// Parses an ELF core file held in `bytes`.
pub fn parse(bytes: &[u8]) -> Result<ElfCore> {
    let len = bytes.len() as u64;
    if len < 16 || bytes[..4] != ELF_MAGIC {
        return Err(format_error(
            ErrorKind::Malformed,
            format_args!("the {len:#x} byte input does not start with the 16-byte ELF identification (\\x7fELF...)"),
        ));
    }
    let (class, layout) = match bytes[4] {
        1 => (ElfClass::Elf32, &ELF32),
        2 => (ElfClass::Elf64, &ELF64),
        c => {
            return Err(format_error(
                ErrorKind::Unsupported,
                format_args!("ELF class (EI_CLASS) {c} is neither 1 (32-bit) nor 2 (64-bit)"),
            ))
        }
    };
    let big_endian = match bytes[5] {
        1 => false,
        2 => true,
        d => {
            return Err(format_error(
                ErrorKind::Malformed,
                format_args!("ELF data encoding (EI_DATA) {d} is neither 1 (little) nor 2 (big endian)"),
            ))
        }
    };
    if len < layout.ehdr_size {
        return Err(format_error(
            ErrorKind::Truncated,
            format_args!("the {len:#x} byte file is too short for the {:#x} byte {class:?} header", layout.ehdr_size),
        ));
    }
    let file = ByteReader::new(bytes, big_endian, "ELF file");
    let e_type = file.u16(16)?;
    if e_type != ET_CORE {
        return Err(format_error(
            ErrorKind::Unsupported,
            format_args!("ELF type (e_type) {e_type} is not ET_CORE (4): not a core dump"),
        ));
    }
    let machine = file.u16(18)?;
    let phoff = file.uint(layout.e_phoff, layout.word)?;
    let phentsize = u64::from(file.u16(layout.e_phentsize)?);
    let phnum = program_header_count(&file, layout)?;
    if phnum > MAX_PROGRAM_HEADERS {
        return Err(format_error(
            ErrorKind::LimitExceeded,
            format_args!("the ELF header claims {phnum} program headers; at most {MAX_PROGRAM_HEADERS} are accepted"),
        ));
    }
    if phnum > 0 && phentsize < layout.phdr_size {
        return Err(format_error(
            ErrorKind::Malformed,
            format_args!(
                "program header size (e_phentsize) {phentsize:#x} is smaller than a {class:?} program header ({:#x})",
                layout.phdr_size
            ),
        ));
    }
    let table = file.sub(phoff, phnum * phentsize, "program header table").map_err(|_| {
        format_error(
            ErrorKind::Truncated,
            format_args!(
                "the program header table at file offset {phoff:#x} ({phnum} entries of {phentsize:#x} bytes) runs past the end of the {len:#x} byte file"
            ),
        )
    })?;

    let mut loads = Vec::new();
    let mut notes = Notes { x86: machine == EM_386 || machine == EM_X86_64, ..Notes::default() };
    for index in 0..phnum {
        let ph = table.sub(index * phentsize, layout.phdr_size, "program header")?;
        let p_type = ph.u32(0)?;
        let offset = ph.uint(layout.p_offset, layout.word)?;
        let filesz = ph.uint(layout.p_filesz, layout.word)?;
        let what = match p_type {
            _ if filesz == 0 => continue,
            PT_LOAD => "PT_LOAD",
            PT_NOTE => "PT_NOTE",
            _ => continue,
        };
        let segment = file.sub(offset, filesz, "segment").map_err(|_| {
            format_error(
                ErrorKind::Truncated,
                format_args!(
                    "{what} #{index} at file offset {offset:#x} of {filesz:#x} bytes runs past the end of the {len:#x} byte file"
                ),
            )
        })?;
        if p_type == PT_NOTE {
            notes.segment(&segment, index)?;
            continue;
        }
        let paddr = ph.uint(layout.p_paddr, layout.word)?;
        let memsz = ph.uint(layout.p_memsz, layout.word)?;
        if filesz > memsz {
            return Err(format_error(
                ErrorKind::Malformed,
                format_args!("PT_LOAD #{index} has more file bytes (p_filesz {filesz:#x}) than memory bytes (p_memsz {memsz:#x})"),
            ));
        }
        if paddr.checked_add(filesz).is_none() {
            return Err(format_error(
                ErrorKind::OutOfBounds,
                format_args!("PT_LOAD #{index} at guest physical {paddr:#x} of {filesz:#x} bytes runs past the top of the 64-bit address space"),
            ));
        }
        loads.push(Load { index, offset, paddr, size: filesz });
    }

    let map = build_map(bytes, loads)?;
    let Notes { mut cpus, vmcoreinfo, wide_prstatus, .. } = notes;
    for cpu in &mut cpus {
        cpu.infer_long_mode(wide_prstatus);
    }
    Ok(ElfCore { class, machine, map, cpus, vmcoreinfo })
}

/// `e_phnum`, or with `PN_XNUM` the real count from `sh_info` of section header 0.
fn program_header_count(file: &ByteReader, layout: &Layout) -> Result<u64> {
    let phnum = file.u16(layout.e_phentsize + 2)?;
    if phnum != PN_XNUM {
        return Ok(u64::from(phnum));
    }
    let shoff = file.uint(layout.e_shoff, layout.word)?;
    let shentsize = u64::from(file.u16(layout.e_phentsize + 4)?);
    if shoff == 0 || shentsize < layout.shdr_size {
        return Err(format_error(
            ErrorKind::Malformed,
            format_args!(
                "e_phnum is PN_XNUM (0xffff) but there is no usable section header 0 with the real count (e_shoff {shoff:#x}, e_shentsize {shentsize:#x})"
            ),
        ));
    }
    let sh0 = file.sub(shoff, layout.shdr_size, "section header 0").map_err(|_| {
        format_error(
            ErrorKind::Truncated,
            format_args!(
                "section header 0 at file offset {shoff:#x} (holding the PN_XNUM program header count) runs past the end of the {:#x} byte file",
                file.len()
            ),
        )
    })?;
    Ok(u64::from(sh0.u32(layout.sh_info)?))
}

/// Sorts the loads by guest address, skips byte-identical duplicates inside other loads and
/// refuses every other overlap.
fn build_map(bytes: &[u8], mut loads: Vec<Load>) -> Result<MemoryMap> {
    if loads.is_empty() {
        return Err(format_error(
            ErrorKind::Malformed,
            "the ELF core has no PT_LOAD segment with file bytes: it holds no memory",
        ));
    }
    if loads.len() > 1 && loads.iter().all(|l| l.paddr == 0) {
        return Err(format_error(
            ErrorKind::Unsupported,
            format_args!(
                "all {} PT_LOAD segments have guest physical address (p_paddr) 0: a process core dump or a dump without physical addresses",
                loads.len()
            ),
        ));
    }
    // Largest first among equal starts, so a containing segment precedes what it contains.
    loads.sort_by_key(|l| (l.paddr, core::cmp::Reverse(l.size)));
    let mut map = MemoryMap::new();
    // Comparing duplicates reads at most as many bytes as the file holds.
    let mut compare_budget = bytes.len() as u64;
    let mut last: Option<Load> = None;
    for load in loads {
        if let Some(prev) = last.filter(|prev| load.paddr < prev.end()) {
            let (p, l) = (prev.index, load.index);
            if load.end() > prev.end() {
                return Err(format_error(
                    ErrorKind::Malformed,
                    format_args!(
                        "PT_LOAD #{l} (guest {:#x}..{:#x}) overlaps PT_LOAD #{p} (guest {:#x}..{:#x})",
                        load.paddr,
                        load.end(),
                        prev.paddr,
                        prev.end()
                    ),
                ));
            }
            if load.size > compare_budget {
                return Err(format_error(
                    ErrorKind::LimitExceeded,
                    "PT_LOAD segments duplicating other segments add up to more bytes than the file holds",
                ));
            }
            compare_budget -= load.size;
            let start = (prev.offset + (load.paddr - prev.paddr)) as usize;
            let size = load.size as usize;
            let same = bytes[start..start + size] == bytes[load.offset as usize..load.offset as usize + size];
            if !same {
                return Err(format_error(
                    ErrorKind::Malformed,
                    format_args!(
                        "PT_LOAD #{l} (guest {:#x}..{:#x}) lies inside PT_LOAD #{p} but holds different bytes",
                        load.paddr,
                        load.end()
                    ),
                ));
            }
            log::debug!("PT_LOAD #{l} duplicates part of PT_LOAD #{p}; skipped");
            continue;
        }
        map.push(Address::new(umem::from(load.paddr)), umem::from(load.size), umem::from(load.offset))?;
        last = Some(load);
    }
    Ok(map)
}

/// What the notes told so far.
#[derive(Default)]
struct Notes {
    /// Decode CPU notes (the machine is x86 or x86-64).
    x86: bool,
    notes: usize,
    cpus: Vec<X86Registers>,
    prstatus_seen: usize,
    qemu_seen: usize,
    /// A 64-bit `NT_PRSTATUS` was seen: the CPUs ran in long mode.
    wide_prstatus: bool,
    vmcoreinfo: Option<VmcoreInfo>,
}

impl Notes {
    /// Walks the notes of the `PT_NOTE` segment `segment` (program header `index`).
    fn segment(&mut self, segment: &ByteReader, index: u64) -> Result<()> {
        let mut off = 0u64;
        while off < segment.len() {
            if self.notes == MAX_NOTES {
                return Err(format_error(
                    ErrorKind::LimitExceeded,
                    format_args!("PT_NOTE #{index} holds more than the {MAX_NOTES} notes accepted in one file"),
                ));
            }
            let n = self.notes;
            self.notes += 1;
            if segment.len() - off < NOTE_HEADER_SIZE {
                return Err(format_error(
                    ErrorKind::Truncated,
                    format_args!(
                        "note at offset {off:#x} of PT_NOTE #{index}: only {:#x} bytes remain for the 12-byte note header",
                        segment.len() - off
                    ),
                ));
            }
            let namesz = u64::from(segment.u32(off)?);
            let descsz = u64::from(segment.u32(off + 4)?);
            let ntype = segment.u32(off + 8)?;
            let desc_off = off + NOTE_HEADER_SIZE + align4(namesz);
            if desc_off + descsz > segment.len() {
                return Err(format_error(
                    ErrorKind::Truncated,
                    format_args!(
                        "note #{n} at offset {off:#x} of PT_NOTE #{index} (name {namesz:#x} bytes, descriptor {descsz:#x} bytes) runs past the end of the {:#x} byte segment",
                        segment.len()
                    ),
                ));
            }
            let name = segment.bytes(off + NOTE_HEADER_SIZE, namesz)?;
            let name_end = name.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            let desc = segment.sub(desc_off, descsz, "note descriptor")?;
            self.note(&name[..name_end], ntype, &desc)?;
            off = align4(desc_off + descsz);
        }
        Ok(())
    }

    /// Takes in one note.
    fn note(&mut self, name: &[u8], ntype: u32, desc: &ByteReader) -> Result<()> {
        match (name, ntype) {
            (b"VMCOREINFO", _) => {
                if self.vmcoreinfo.is_some() {
                    return Err(format_error(ErrorKind::Malformed, "the ELF core has more than one VMCOREINFO note"));
                }
                self.vmcoreinfo = Some(VmcoreInfo::parse(desc.bytes(0, desc.len())?));
            }
            (b"CORE", NT_PRSTATUS) if self.x86 => {
                let cpu = self.prstatus_seen;
                self.prstatus_seen += 1;
                match desc.len() {
                    PRSTATUS_X86_64_SIZE => {
                        self.wide_prstatus = true;
                        if let Some(regs) = self.cpu(cpu) {
                            prstatus_x86_64(regs, desc)?;
                        }
                    }
                    PRSTATUS_I386_SIZE => {
                        if let Some(regs) = self.cpu(cpu) {
                            prstatus_i386(regs, desc)?;
                        }
                    }
                    other => log::warn!("NT_PRSTATUS of CPU {cpu} has {other:#x} bytes, not an x86 layout; skipped"),
                }
            }
            (b"QEMU", 0) if self.x86 => {
                let cpu = self.qemu_seen;
                self.qemu_seen += 1;
                let version = if desc.len() >= 4 { desc.u32(0)? } else { 0 };
                if version != 1 || desc.len() < QEMU_STATE_MIN_SIZE {
                    log::warn!("QEMU CPU state note of CPU {cpu} has version {version} and {:#x} bytes, not a known layout; skipped", desc.len());
                } else if let Some(regs) = self.cpu(cpu) {
                    qemu_cpu_state(regs, desc)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The registers of CPU `cpu`, created on first use; `None` beyond [`MAX_CPUS`].
    fn cpu(&mut self, cpu: usize) -> Option<&mut X86Registers> {
        if cpu >= MAX_CPUS {
            log::warn!("CPU note #{cpu} exceeds the {MAX_CPUS} CPU states kept; skipped");
            return None;
        }
        if self.cpus.len() <= cpu {
            self.cpus.resize(cpu + 1, X86Registers::default());
        }
        Some(&mut self.cpus[cpu])
    }
}

fn align4(v: u64) -> u64 {
    (v + 3) & !3
}

/// `N` unsigned integers of `size` bytes each, starting at `offset`.
fn words<const N: usize>(r: &ByteReader, offset: u64, size: usize) -> Result<[u64; N]> {
    let mut out = [0u64; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = r.uint(offset + (i * size) as u64, size)?;
    }
    Ok(out)
}

/// Registers from an x86-64 `elf_prstatus` (`user_regs_struct` at byte 112).
fn prstatus_x86_64(cpu: &mut X86Registers, desc: &ByteReader) -> Result<()> {
    let [r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, _orig_rax, rip, cs, rflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs] =
        words::<27>(desc, 112, 8)?;
    let valid = cpu.valid | X86RegisterSet::GENERAL | X86RegisterSet::SELECTORS | X86RegisterSet::SEGMENT_BASES;
    let (cs, ss, ds, es, fs, gs) = (cs as u16, ss as u16, ds as u16, es as u16, fs as u16, gs as u16);
    *cpu = X86Registers {
        valid,
        rax,
        rbx,
        rcx,
        rdx,
        rsi,
        rdi,
        rbp,
        rsp,
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
        rip,
        rflags,
        cs,
        ss,
        ds,
        es,
        fs,
        gs,
        fs_base,
        gs_base,
        ..*cpu
    };
    Ok(())
}

/// Registers from an i386 `elf_prstatus` (`user_regs_struct` at byte 72, 32-bit slots).
fn prstatus_i386(cpu: &mut X86Registers, desc: &ByteReader) -> Result<()> {
    let [rbx, rcx, rdx, rsi, rdi, rbp, rax, ds, es, fs, gs, _orig_eax, rip, cs, rflags, rsp, ss] =
        words::<17>(desc, 72, 4)?;
    let valid = cpu.valid | X86RegisterSet::GENERAL | X86RegisterSet::SELECTORS;
    let (cs, ss, ds, es, fs, gs) = (cs as u16, ss as u16, ds as u16, es as u16, fs as u16, gs as u16);
    *cpu = X86Registers { valid, rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, rip, rflags, cs, ss, ds, es, fs, gs, ..*cpu };
    Ok(())
}

/// Registers from QEMU's `QEMUCPUState` (version 1).
fn qemu_cpu_state(cpu: &mut X86Registers, desc: &ByteReader) -> Result<()> {
    let [rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip, rflags] =
        words::<18>(desc, 8, 8)?;
    // Segments cs, ds, es, fs, gs, ss: selector (u32) at +0, flags (u32) at +8, base at +16.
    let segment = |i: u64| QEMU_SEGMENTS + 24 * i;
    let selector = |i: u64| desc.u32(segment(i)).map(|s| s as u16);
    let [cr0, _cr1, cr2, cr3, cr4] = words::<5>(desc, QEMU_CONTROL, 8)?;
    let mut valid = cpu.valid
        | X86RegisterSet::GENERAL
        | X86RegisterSet::SELECTORS
        | X86RegisterSet::CS_FLAGS
        | X86RegisterSet::SEGMENT_BASES
        | X86RegisterSet::CONTROL;
    // `size` says how much of the structure QEMU filled; `kernel_gs_base` came later.
    let size = u64::from(desc.u32(4)?).min(desc.len());
    let kernel_gs_base = if size >= QEMU_STATE_MIN_SIZE + 8 {
        valid |= X86RegisterSet::KERNEL_GS_BASE;
        desc.u64(QEMU_STATE_MIN_SIZE)?
    } else {
        cpu.kernel_gs_base
    };
    *cpu = X86Registers {
        valid,
        cs_flags: desc.u32(segment(0) + 8)?,
        rax,
        rbx,
        rcx,
        rdx,
        rsi,
        rdi,
        rbp,
        rsp,
        r8,
        r9,
        r10,
        r11,
        r12,
        r13,
        r14,
        r15,
        rip,
        rflags,
        cs: selector(0)?,
        ds: selector(1)?,
        es: selector(2)?,
        fs: selector(3)?,
        gs: selector(4)?,
        ss: selector(5)?,
        fs_base: desc.u64(segment(3) + 16)?,
        gs_base: desc.u64(segment(4) + 16)?,
        kernel_gs_base,
        cr0,
        cr2,
        cr3,
        cr4,
        ..*cpu
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{self, CoreBuilder};
    use super::*;
    use crate::connector::cpu_state::{X86ArchHint, CR0_PG, CR4_LA57, CR4_PAE};
    use proptest::prelude::*;

    fn kind(bytes: &[u8]) -> ErrorKind {
        parse(bytes).unwrap_err().kind
    }

    #[test]
    fn qemu_x86_64_core_maps_loads_and_reads_cpu_state() {
        let core = testdata::qemu_core();
        let parsed = parse(&core.build()).unwrap();
        assert_eq!(parsed.class, ElfClass::Elf64);
        assert_eq!(parsed.machine, 62);
        let ranges = parsed.map.ranges();
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].base, Address::new(0));
        assert_eq!(ranges[0].size, 0x2000);
        assert_eq!(ranges[1].base, Address::new(0x10_0000));
        // p_memsz 0x3000 > p_filesz 0x1000: only the file bytes are mapped.
        assert_eq!(ranges[1].size, 0x1000);
        assert_eq!(parsed.cpus.len(), 2);
        let cpu = parsed.cpus[1];
        assert_eq!(cpu.cr3, testdata::CR3 + 1);
        assert_eq!(cpu.rip, 0xffff_ffff_8100_0001);
        assert_eq!(cpu.rsp, 0xffff_c900_0000_1001);
        assert_eq!(cpu.r15, 15);
        assert_eq!(cpu.cs, 0x10);
        assert_eq!(cpu.kernel_gs_base, 0xffff_8880_0000_0001);
        assert!(cpu.valid.contains(X86RegisterSet::KERNEL_GS_BASE | X86RegisterSet::CONTROL | X86RegisterSet::GENERAL));
        assert!(!cpu.valid.contains(X86RegisterSet::EFER));
        assert_eq!(cpu.arch_hint(), X86ArchHint::X86_64La57);
        assert_eq!(cpu.page_table_root(), Some(Address::new(umem::from(testdata::CR3))));
        assert!(parsed.vmcoreinfo.is_none());
    }

    #[test]
    fn elf32_core_with_i386_prstatus() {
        let mut regs = [0u8; 144];
        regs[72 + 48..72 + 52].copy_from_slice(&0xc010_0000u32.to_le_bytes()); // eip
        regs[72 + 60..72 + 64].copy_from_slice(&0xc020_0000u32.to_le_bytes()); // esp
        let core = CoreBuilder::new(false, 3).load(0x1000, vec![7; 0x100], 0x100).note("CORE", 1, regs.to_vec());
        let cpu = parse(&core.build()).unwrap().cpus[0];
        assert_eq!((cpu.rip, cpu.rsp), (0xc010_0000, 0xc020_0000));
        assert_eq!(cpu.arch_hint(), X86ArchHint::Unknown);
        let parsed = parse(&testdata::qemu_core32().build()).unwrap();
        assert_eq!(parsed.class, ElfClass::Elf32);
        assert_eq!(parsed.map.ranges().len(), 2);
        // 32-bit prstatus and CS.L clear: PAE without long mode.
        let cpu = parsed.cpus[0];
        assert_eq!(cpu.arch_hint(), X86ArchHint::X86Pae);
        assert_eq!(cpu.page_table_root(), Some(Address::new(0x3000)));
    }

    #[test]
    fn big_endian_core_maps_memory_without_cpu_state() {
        let core =
            CoreBuilder::new(true, 22).big_endian().load(0x4000, vec![1; 0x10], 0x10).note("CORE", 1, vec![0; 336]);
        let parsed = parse(&core.build()).unwrap();
        assert_eq!(parsed.map.ranges()[0].base, Address::new(0x4000));
        assert!(parsed.cpus.is_empty());
    }

    #[test]
    fn vmcoreinfo_note_is_exposed() {
        let text = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff82a0a000\nKERNELOFFSET=1e000000\nNUMBER(pgtable_l5_enabled)=1\nno equals sign\n\0";
        let core = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).note("VMCOREINFO", 0, text.to_vec());
        let info = parse(&core.build()).unwrap().vmcoreinfo.unwrap();
        assert_eq!(info.os_release(), Some("6.1.0-test"));
        assert_eq!(info.page_size(), Some(4096));
        assert_eq!(info.symbol("swapper_pg_dir"), Some(0xffff_ffff_82a0_a000));
        assert_eq!(info.kernel_offset(), Some(0x1e00_0000));
        assert_eq!(info.number("pgtable_l5_enabled"), Some(1));
        assert_eq!(info.entries().len(), 5);
        let twice = CoreBuilder::new(true, 62)
            .load(0, vec![0; 0x10], 0x10)
            .note("VMCOREINFO", 0, b"A=1\n".to_vec())
            .note("VMCOREINFO", 0, b"A=2\n".to_vec());
        assert_eq!(kind(&twice.build()), ErrorKind::Malformed);
    }

    #[test]
    fn truncated_headers_are_refused() {
        let core = testdata::qemu_core().build();
        assert_eq!(kind(&[]), ErrorKind::Malformed);
        assert_eq!(kind(&core[..10]), ErrorKind::Malformed);
        assert_eq!(kind(&core[..40]), ErrorKind::Truncated);
        // The header is complete but the program header table is cut.
        assert_eq!(kind(&core[..70]), ErrorKind::Truncated);
    }

    #[test]
    fn bad_identification_and_type_are_refused() {
        let core = testdata::qemu_core().build();
        let mut bad = core.clone();
        bad[4] = 3;
        assert_eq!(kind(&bad), ErrorKind::Unsupported);
        let mut bad = core.clone();
        bad[5] = 0;
        assert_eq!(kind(&bad), ErrorKind::Malformed);
        let mut exec = core.clone();
        exec[16] = 2; // ET_EXEC
        assert_eq!(kind(&exec), ErrorKind::Unsupported);
    }

    #[test]
    fn phdr_table_past_eof_is_refused() {
        let mut core = testdata::qemu_core().build();
        let near_end = core.len() as u64 - 8;
        core[32..40].copy_from_slice(&near_end.to_le_bytes());
        assert_eq!(kind(&core), ErrorKind::Truncated);
        core[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(kind(&core), ErrorKind::Truncated);
        let mut small = testdata::qemu_core().build();
        small[54..56].copy_from_slice(&8u16.to_le_bytes()); // e_phentsize
        assert_eq!(kind(&small), ErrorKind::Malformed);
    }

    #[test]
    fn segment_past_eof_is_refused() {
        let build = |offset: u64, size: u64| {
            let mut core = CoreBuilder::new(true, 62).load(0, vec![0; 0x100], 0x100).build();
            // The only program header is the PT_LOAD at 64.
            core[64 + 8..64 + 16].copy_from_slice(&offset.to_le_bytes());
            core[64 + 32..64 + 40].copy_from_slice(&size.to_le_bytes());
            core[64 + 40..64 + 48].copy_from_slice(&size.to_le_bytes());
            core
        };
        assert!(parse(&build(0x78, 0x100)).is_ok());
        assert_eq!(kind(&build(0x78, 0x101)), ErrorKind::Truncated);
        assert_eq!(kind(&build(u64::MAX - 0x10, 0x100)), ErrorKind::Truncated);
        assert_eq!(kind(&build(0x78, u64::MAX)), ErrorKind::Truncated);
    }

    #[test]
    fn memsz_below_filesz_and_wrapping_paddr_are_refused() {
        let mut core = CoreBuilder::new(true, 62).load(0, vec![0; 0x100], 0x100).build();
        core[64 + 40..64 + 48].copy_from_slice(&0x80u64.to_le_bytes());
        assert_eq!(kind(&core), ErrorKind::Malformed);
        let top = CoreBuilder::new(true, 62).load(u64::MAX - 0x7f, vec![0; 0x100], 0x100).build();
        assert_eq!(kind(&top), ErrorKind::OutOfBounds);
        let last_byte = CoreBuilder::new(true, 62).load(u64::MAX - 0x100, vec![0; 0x100], 0x100).build();
        assert!(parse(&last_byte).is_ok());
    }

    #[test]
    fn overlapping_segments() {
        let partial =
            CoreBuilder::new(true, 62).load(0x1000, vec![1; 0x1000], 0x1000).load(0x1800, vec![1; 0x1000], 0x1000);
        assert_eq!(kind(&partial.build()), ErrorKind::Malformed);
        // A byte-identical segment inside another (kdump's kernel text) is skipped.
        let data: Vec<u8> = (0..0x2000u32).map(|i| i as u8).collect();
        let dup = CoreBuilder::new(true, 62).load(0x1000, data[0x800..0xc00].to_vec(), 0x400).load(
            0x800,
            data.clone(),
            0x2000,
        );
        let map = parse(&dup.build()).unwrap().map;
        assert_eq!(map.ranges().len(), 1);
        assert_eq!(map.ranges()[0].size, 0x2000);
        let differ = CoreBuilder::new(true, 62).load(0x1000, vec![0xee; 0x400], 0x400).load(0x800, data, 0x2000);
        assert_eq!(kind(&differ.build()), ErrorKind::Malformed);
    }

    #[test]
    fn duplicates_cannot_cost_more_than_the_file() {
        let mut core = CoreBuilder::new(true, 62).load(0x1000, vec![0; 0x1000], 0x1000);
        for _ in 0..7 {
            core = core.load(0x1000, vec![0], 1);
        }
        let mut core = core.build();
        let first_offset = core[64 + 8..64 + 16].to_vec();
        for i in 1..8 {
            let ph = 64 + 56 * i;
            core[ph + 8..ph + 16].copy_from_slice(&first_offset);
            core[ph + 32..ph + 40].copy_from_slice(&0x1000u64.to_le_bytes());
            core[ph + 40..ph + 48].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        assert_eq!(kind(&core), ErrorKind::LimitExceeded);
    }

    #[test]
    fn process_cores_and_empty_cores_are_refused() {
        let process = CoreBuilder::new(true, 62).load(0, vec![1; 0x10], 0x10).load(0, vec![2; 0x20], 0x20);
        assert_eq!(kind(&process.build()), ErrorKind::Unsupported);
        let empty = CoreBuilder::new(true, 62).load(0x1000, vec![], 0x1000);
        assert_eq!(kind(&empty.build()), ErrorKind::Malformed);
    }

    #[test]
    fn seventy_thousand_pt_loads_claimed() {
        let mut core = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).build();
        // PN_XNUM with section header 0 (placed at the end of the file) holding the count.
        let shoff = core.len() as u64;
        core.extend_from_slice(&[0u8; 64]);
        core[shoff as usize + 44..shoff as usize + 48].copy_from_slice(&70_000u32.to_le_bytes());
        core[40..48].copy_from_slice(&shoff.to_le_bytes());
        core[58..60].copy_from_slice(&64u16.to_le_bytes());
        core[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
        assert_eq!(kind(&core), ErrorKind::LimitExceeded);
        // The real count in range: the table is checked against the file instead.
        core[shoff as usize + 44..shoff as usize + 48].copy_from_slice(&4000u32.to_le_bytes());
        assert_eq!(kind(&core), ErrorKind::Truncated);
        core[shoff as usize + 44..shoff as usize + 48].copy_from_slice(&1u32.to_le_bytes());
        assert!(parse(&core).is_ok());
        // Section header 0 outside the file.
        core[40..48].copy_from_slice(&(shoff + 1).to_le_bytes());
        assert_eq!(kind(&core), ErrorKind::Truncated);
        core[40..48].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(kind(&core), ErrorKind::Malformed);
    }

    #[test]
    fn bad_notes_are_refused_or_skipped() {
        // A note whose descriptor runs past the segment.
        let mut core = testdata::qemu_core().build();
        let note_off = 64 + 56 * 3;
        core[note_off + 4..note_off + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert_eq!(kind(&core), ErrorKind::Truncated);
        // A segment ending inside a note header.
        let short = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).raw_notes(vec![0; 13]);
        assert_eq!(kind(&short.build()), ErrorKind::Truncated);
        // Notes of unknown layouts are skipped; memory stays usable.
        let odd = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).note("CORE", 1, vec![0; 100]).note(
            "QEMU",
            0,
            vec![2, 0, 0, 0],
        );
        let parsed = parse(&odd.build()).unwrap();
        assert!(parsed.cpus.is_empty());
    }

    #[test]
    fn too_many_notes_are_refused() {
        let notes = vec![0u8; 12 * (MAX_NOTES + 1)];
        let core = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).raw_notes(notes);
        assert_eq!(kind(&core.build()), ErrorKind::LimitExceeded);
    }

    #[test]
    fn qemu_state_without_kernel_gs_base() {
        let mut state = testdata::qemu_state(0, CR0_PG, 0x1000, CR4_PAE | CR4_LA57, 0);
        state.truncate(QEMU_STATE_MIN_SIZE as usize);
        state[4..8].copy_from_slice(&(QEMU_STATE_MIN_SIZE as u32).to_le_bytes());
        let core = CoreBuilder::new(true, 62)
            .load(0, vec![0; 0x10], 0x10)
            .note("CORE", 1, vec![0; 336])
            .note("QEMU", 0, state);
        let cpu = parse(&core.build()).unwrap().cpus[0];
        assert!(!cpu.valid.contains(X86RegisterSet::KERNEL_GS_BASE));
        // No CS.L, but the 64-bit NT_PRSTATUS says long mode.
        assert_eq!(cpu.arch_hint(), X86ArchHint::X86_64La57);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Random byte and word mutations of a valid core never panic, and whatever parses
        /// maps only bytes that exist.
        #[test]
        fn mutated_cores_never_panic(
            class64 in any::<bool>(),
            bytes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            words in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 0..4),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let mut core = if class64 { testdata::qemu_core() } else { testdata::qemu_core32() }.build();
            for (at, v) in bytes {
                let i = at.index(core.len());
                core[i] = v;
            }
            for (at, v) in words {
                let i = at.index(core.len() - 8);
                core[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            if do_cut {
                core.truncate(cut.index(core.len()));
            }
            if let Ok(parsed) = parse(&core) {
                for r in parsed.map.ranges() {
                    prop_assert!(r.backing + r.size <= core.len() as umem);
                }
                for cpu in &parsed.cpus {
                    let _ = (cpu.arch_hint(), cpu.page_table_root());
                }
            }
        }
    }
}
