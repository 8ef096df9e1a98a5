//! ELF core files: QEMU `dump-guest-memory` output and Linux vmcore / kdump files.
//!
//! Memory: every `PT_LOAD` with file bytes maps `p_filesz` bytes at guest physical address
//! `p_paddr` to file offset `p_offset`. When `p_memsz` is larger, the rest of the segment was
//! not saved and stays a hole. A segment lying wholly inside another with byte-identical
//! contents is a second view of the same memory (kdump maps the kernel image twice) and is
//! skipped; any other overlap is an error.
//!
//! CPU state of AArch64 cores: one `CORE`/`NT_PRSTATUS` note per CPU (the 392-byte
//! `elf_prstatus`) gives `x0`..`x30`, `sp`, `pc` and `pstate`. Likewise for riscv64 cores
//! (`e_machine` 243; the 376-byte `elf_prstatus`): `pc` and `x1`..`x31`, no `satp`.
//!
//! CPU state of x86 and x86-64 cores: one `CORE`/`NT_PRSTATUS` note per CPU gives the
//! general registers (the x86-64 `elf_prstatus` of 336 bytes or the i386 one of 144 bytes),
//! and QEMU adds one `QEMU` note (type 0, `QEMUCPUState` version 1) per CPU with segment
//! state and CR0 to CR4, plus `kernel_gs_base` when its size field covers it. The n-th note
//! of each kind belongs to CPU n. QEMU does not record `EFER`, so
//! [`X86RegisterSet::EFER`](super::cpu_state::X86RegisterSet::EFER) stays clear and long mode is inferred
//! ([`X86Registers::infer_long_mode`]): paging and PAE on, and either `CS.L` or the 64-bit
//! `NT_PRSTATUS` layout, which QEMU and Linux only write for long-mode CPUs.
//!
//! Linux vmcores carry a `VMCOREINFO` note with `key=value` lines ([`VmcoreInfo`]).
//!
//! The input is untrusted: every offset is bounds-checked, counts are capped
//! ([`MAX_PROGRAM_HEADERS`], [`MAX_NOTES`], [`MAX_CPUS`]) and nothing is allocated in
//! proportion to a field's claim, only to the structures actually present in the file.

mod cpu;
mod notes;
#[cfg(test)]
mod tests;

pub use notes::{VmcoreInfo, MAX_CPUS, MAX_NOTES};

pub(crate) use notes::{CpuFamily, Notes, PRSTATUS_AARCH64_SIZE, PRSTATUS_RISCV_SIZE};

use super::bytes::ByteReader;
use super::cpu_state::{AArch64Registers, RiscVRegisters, X86Registers};
use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::MemoryMap;
use crate::types::{umem, Address};

/// The most program headers accepted (QEMU writes one per guest RAM range plus one note).
pub const MAX_PROGRAM_HEADERS: u64 = 4096;

/// The first four bytes of every ELF file.
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";

const ET_CORE: u16 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PN_XNUM: u16 = 0xffff;
/// The ELF machines of x86 code, whose CPU notes hold x86 registers.
const X86_MACHINES: [u16; 2] = [ArchitectureIdent::X86_32.elf_machine(), ArchitectureIdent::X86_64.elf_machine()];
/// The ELF machine of AArch64 code.
const AARCH64_MACHINE: u16 = ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 }.elf_machine();
/// The ELF machine of RISC-V code (the notes read are those of riscv64).
const RISCV_MACHINE: u16 = ArchitectureIdent::RiscVSv39.elf_machine();

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
    /// Registers per CPU of an AArch64 core (empty for other machines).
    pub aarch64_cpus: Vec<AArch64Registers>,
    /// Registers per CPU of a 64-bit RISC-V core (empty for other machines).
    pub riscv_cpus: Vec<RiscVRegisters>,
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
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
            "the {len:#x} byte input does not start with the 16-byte ELF identification (\\x7fELF...)"
        )));
    }
    let (class, layout) = match bytes[4] {
        1 => (ElfClass::Elf32, &ELF32),
        2 => (ElfClass::Elf64, &ELF64),
        c => {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported)
                .with_reason(format_args!("ELF class (EI_CLASS) {c} is neither 1 (32-bit) nor 2 (64-bit)")))
        }
    };
    let big_endian = match bytes[5] {
        1 => false,
        2 => true,
        d => {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                .with_reason(format_args!("ELF data encoding (EI_DATA) {d} is neither 1 (little) nor 2 (big endian)")))
        }
    };
    if len < layout.ehdr_size {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
            "the {len:#x} byte file is too short for the {:#x} byte {class:?} header",
            layout.ehdr_size
        )));
    }
    let file = ByteReader::new(bytes, big_endian, "ELF file");
    let e_type = file.u16(16)?;
    if e_type != ET_CORE {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported)
            .with_reason(format_args!("ELF type (e_type) {e_type} is not ET_CORE (4): not a core dump")));
    }
    let machine = file.u16(18)?;
    if !ArchitectureIdent::ALL.iter().any(|a| a.elf_machine() == machine) {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
            "an ELF core of a machine with e_machine {machine}: only cores of machines this library translates for (x86, x86-64, AArch64, RISC-V) are read"
        )));
    }
    let phoff = file.uint(layout.e_phoff, layout.word)?;
    let phentsize = u64::from(file.u16(layout.e_phentsize)?);
    let phnum = program_header_count(&file, layout)?;
    if phnum > MAX_PROGRAM_HEADERS {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded).with_reason(format_args!(
            "the ELF header claims {phnum} program headers; at most {MAX_PROGRAM_HEADERS} are accepted"
        )));
    }
    if phnum > 0 && phentsize < layout.phdr_size {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
            "program header size (e_phentsize) {phentsize:#x} is smaller than a {class:?} program header ({:#x})",
            layout.phdr_size
        )));
    }
    let table = file.sub(phoff, phnum * phentsize, "program header table").map_err(|_| {
        Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                "the program header table at file offset {phoff:#x} ({phnum} entries of {phentsize:#x} bytes) runs past the end of the {len:#x} byte file"
            ))
    })?;

    let mut loads = Vec::new();
    let family = match machine {
        _ if X86_MACHINES.contains(&machine) => CpuFamily::X86,
        AARCH64_MACHINE => CpuFamily::AArch64,
        RISCV_MACHINE if class == ElfClass::Elf64 => CpuFamily::RiscV,
        _ => CpuFamily::Other,
    };
    let mut notes = Notes::new(family);
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
            Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                    "{what} #{index} at file offset {offset:#x} of {filesz:#x} bytes runs past the end of the {len:#x} byte file"
                ))
        })?;
        if p_type == PT_NOTE {
            notes.segment(&segment, &format!("PT_NOTE #{index}"))?;
            continue;
        }
        let paddr = ph.uint(layout.p_paddr, layout.word)?;
        let memsz = ph.uint(layout.p_memsz, layout.word)?;
        if filesz > memsz {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                "PT_LOAD #{index} has more file bytes (p_filesz {filesz:#x}) than memory bytes (p_memsz {memsz:#x})"
            )));
        }
        if paddr.checked_add(filesz).is_none() {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::OutOfBounds).with_reason(format_args!("PT_LOAD #{index} at guest physical {paddr:#x} of {filesz:#x} bytes runs past the top of the 64-bit address space")));
        }
        loads.push(Load { index, offset, paddr, size: filesz });
    }

    let map = build_map(bytes, loads)?;
    let (cpus, vmcoreinfo) = notes.finish();
    Ok(ElfCore { class, machine, map, cpus: cpus.x86, aarch64_cpus: cpus.aarch64, riscv_cpus: cpus.riscv, vmcoreinfo })
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
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                "e_phnum is PN_XNUM (0xffff) but there is no usable section header 0 with the real count (e_shoff {shoff:#x}, e_shentsize {shentsize:#x})"
            )));
    }
    let sh0 = file.sub(shoff, layout.shdr_size, "section header 0").map_err(|_| {
        Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                "section header 0 at file offset {shoff:#x} (holding the PN_XNUM program header count) runs past the end of the {:#x} byte file",
                file.len()
            ))
    })?;
    Ok(u64::from(sh0.u32(layout.sh_info)?))
}

/// Sorts the loads by guest address, skips byte-identical duplicates inside other loads and
/// refuses every other overlap.
fn build_map(bytes: &[u8], mut loads: Vec<Load>) -> Result<MemoryMap> {
    if loads.is_empty() {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
            .with_reason("the ELF core has no PT_LOAD segment with file bytes: it holds no memory"));
    }
    if loads.len() > 1 && loads.iter().all(|l| l.paddr == 0) {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
                "all {} PT_LOAD segments have guest physical address (p_paddr) 0: a process core dump or a dump without physical addresses",
                loads.len()
            )));
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
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                    "PT_LOAD #{l} (guest {:#x}..{:#x}) overlaps PT_LOAD #{p} (guest {:#x}..{:#x})",
                    load.paddr,
                    load.end(),
                    prev.paddr,
                    prev.end()
                )));
            }
            if load.size > compare_budget {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded).with_reason(
                    "PT_LOAD segments duplicating other segments add up to more bytes than the file holds",
                ));
            }
            compare_budget -= load.size;
            let start = (prev.offset + (load.paddr - prev.paddr)) as usize;
            let size = load.size as usize;
            let same = bytes[start..start + size] == bytes[load.offset as usize..load.offset as usize + size];
            if !same {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed).with_reason(format_args!(
                    "PT_LOAD #{l} (guest {:#x}..{:#x}) lies inside PT_LOAD #{p} but holds different bytes",
                    load.paddr,
                    load.end()
                )));
            }
            log::debug!("PT_LOAD #{l} duplicates part of PT_LOAD #{p}; skipped");
            continue;
        }
        map.push(Address::new(umem::from(load.paddr)), umem::from(load.size), umem::from(load.offset))?;
        last = Some(load);
    }
    Ok(map)
}
