//! ELF notes: the note walk, `VMCOREINFO` and which note feeds which CPU.

use std::collections::BTreeMap;

use super::cpu::{
    prstatus_aarch64, prstatus_i386, prstatus_riscv, prstatus_x86_64, qemu_cpu_state, QEMU_STATE_MIN_SIZE,
};
use crate::connector::bytes::ByteReader;
use crate::connector::cpu_state::{AArch64Registers, RiscVRegisters, X86Registers};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The most notes accepted over all `PT_NOTE` segments.
pub const MAX_NOTES: usize = 16384;
/// The most CPUs whose state is kept; notes of further CPUs are skipped with a warning.
pub const MAX_CPUS: usize = 4096;

const NT_PRSTATUS: u32 = 1;
const NOTE_HEADER_SIZE: u64 = 12;

/// Size of the x86-64 `elf_prstatus` note descriptor; registers start at byte 112.
const PRSTATUS_X86_64_SIZE: u64 = 336;
/// Size of the i386 `elf_prstatus` note descriptor; registers start at byte 72.
const PRSTATUS_I386_SIZE: u64 = 144;
/// Size of the AArch64 `elf_prstatus` note descriptor; registers start at byte 112.
pub(crate) const PRSTATUS_AARCH64_SIZE: u64 = 392;
/// Size of the riscv64 `elf_prstatus` note descriptor; registers start at byte 112.
pub(crate) const PRSTATUS_RISCV_SIZE: u64 = 376;

/// Which CPU notes a dump's machine has.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum CpuFamily {
    /// A machine whose CPU notes are not read.
    #[default]
    Other,
    /// x86 or x86-64: `NT_PRSTATUS` and QEMU's CPU state notes.
    X86,
    /// AArch64: `NT_PRSTATUS`.
    AArch64,
    /// 64-bit RISC-V: `NT_PRSTATUS`.
    RiscV,
}

/// The CPU state of a dump's notes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CpuNotes {
    /// Registers per x86 CPU.
    pub x86: Vec<X86Registers>,
    /// Registers per AArch64 CPU.
    pub aarch64: Vec<AArch64Registers>,
    /// Registers per RISC-V CPU.
    pub riscv: Vec<RiscVRegisters>,
}

/// The `key=value` lines of a Linux `VMCOREINFO` note, e.g. `OSRELEASE=6.1.0-56-cloud-amd64`,
/// `PAGESIZE=4096`, `SYMBOL(swapper_pg_dir)=ffffffff82a0a000`, `KERNELOFFSET=0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmcoreInfo {
    /// The note's text as the dump holds it, without the NUL padding after it.
    text: Vec<u8>,
    entries: BTreeMap<String, String>,
}

impl VmcoreInfo {
    /// Parses the note text; lines without `=` are ignored, a repeated key keeps its last value.
    pub fn parse(text: &[u8]) -> Self {
        let end = text.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        let text = text[..end].to_vec();
        let entries = String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_end_matches('\0').to_owned()))
            .collect();
        VmcoreInfo { text, entries }
    }

    /// The note text as the dump holds it (its lines in their order, the NUL padding after
    /// them left off): what a dump written from this one carries on.
    pub fn to_text(&self) -> Vec<u8> {
        self.text.clone()
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

/// What the notes told so far (of an ELF core's `PT_NOTE` segments, or of a kdump's note area).
#[derive(Default)]
pub(crate) struct Notes {
    /// Which CPU notes to decode.
    family: CpuFamily,
    notes: usize,
    cpus: Vec<X86Registers>,
    aarch64_cpus: Vec<AArch64Registers>,
    riscv_cpus: Vec<RiscVRegisters>,
    prstatus_seen: usize,
    qemu_seen: usize,
    /// A 64-bit `NT_PRSTATUS` was seen: the CPUs ran in long mode.
    wide_prstatus: bool,
    vmcoreinfo: Option<VmcoreInfo>,
}

impl Notes {
    /// No notes yet; the CPU notes of `family` are decoded.
    pub(crate) fn new(family: CpuFamily) -> Self {
        Notes { family, ..Notes::default() }
    }

    /// The registers per CPU, x86 long mode inferred (see [`X86Registers::infer_long_mode`]),
    /// and the `VMCOREINFO` note.
    pub(crate) fn finish(self) -> (CpuNotes, Option<VmcoreInfo>) {
        let Notes { mut cpus, aarch64_cpus, riscv_cpus, vmcoreinfo, wide_prstatus, .. } = self;
        for cpu in &mut cpus {
            cpu.infer_long_mode(wide_prstatus);
        }
        (CpuNotes { x86: cpus, aarch64: aarch64_cpus, riscv: riscv_cpus }, vmcoreinfo)
    }

    /// Walks the notes in `segment`, called `what` in errors (e.g. `PT_NOTE #2`).
    pub(crate) fn segment(&mut self, segment: &ByteReader, what: &str) -> Result<()> {
        let mut off = 0u64;
        while off < segment.len() {
            if self.notes == MAX_NOTES {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
                    .with_reason(format_args!("{what} holds more than the {MAX_NOTES} notes accepted in one file")));
            }
            let n = self.notes;
            self.notes += 1;
            if segment.len() - off < NOTE_HEADER_SIZE {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                    "note at offset {off:#x} of {what}: only {:#x} bytes remain for the 12-byte note header",
                    segment.len() - off
                )));
            }
            let namesz = u64::from(segment.u32(off)?);
            let descsz = u64::from(segment.u32(off + 4)?);
            let ntype = segment.u32(off + 8)?;
            let desc_off = off + NOTE_HEADER_SIZE + align4(namesz);
            if desc_off + descsz > segment.len() {
                return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated).with_reason(format_args!(
                        "note #{n} at offset {off:#x} of {what} (name {namesz:#x} bytes, descriptor {descsz:#x} bytes) runs past the end of the {:#x} byte segment",
                        segment.len()
                    )));
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
                    return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                        .with_reason("the dump has more than one VMCOREINFO note"));
                }
                self.vmcoreinfo = Some(VmcoreInfo::parse(desc.bytes(0, desc.len())?));
            }
            (b"CORE", NT_PRSTATUS) if self.family == CpuFamily::AArch64 => {
                let cpu = self.prstatus_seen;
                self.prstatus_seen += 1;
                PRSTATUS_AARCH64.take(&mut self.aarch64_cpus, cpu, desc)?;
            }
            (b"CORE", NT_PRSTATUS) if self.family == CpuFamily::RiscV => {
                let cpu = self.prstatus_seen;
                self.prstatus_seen += 1;
                PRSTATUS_RISCV.take(&mut self.riscv_cpus, cpu, desc)?;
            }
            (b"CORE", NT_PRSTATUS) if self.family == CpuFamily::X86 => {
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
            (b"QEMU", 0) if self.family == CpuFamily::X86 => {
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

/// The one `NT_PRSTATUS` layout of a machine: its descriptor size, the machine's name (for
/// messages) and the decoder of its registers.
struct PrstatusLayout<R> {
    size: u64,
    machine: &'static str,
    decode: fn(&ByteReader) -> Result<R>,
}

const PRSTATUS_AARCH64: PrstatusLayout<AArch64Registers> =
    PrstatusLayout { size: PRSTATUS_AARCH64_SIZE, machine: "AArch64", decode: prstatus_aarch64 };
const PRSTATUS_RISCV: PrstatusLayout<RiscVRegisters> =
    PrstatusLayout { size: PRSTATUS_RISCV_SIZE, machine: "riscv64", decode: prstatus_riscv };

impl<R: Default + Clone> PrstatusLayout<R> {
    /// Takes in the `NT_PRSTATUS` note of CPU `cpu` into `cpus`. A note of another size, or
    /// of a CPU beyond [`MAX_CPUS`], is skipped with a warning; a skipped CPU's registers stay
    /// zero.
    fn take(&self, cpus: &mut Vec<R>, cpu: usize, desc: &ByteReader) -> Result<()> {
        if desc.len() != self.size {
            log::warn!(
                "NT_PRSTATUS of CPU {cpu} has {:#x} bytes, not the {} layout; skipped",
                desc.len(),
                self.machine
            );
        } else if cpu >= MAX_CPUS {
            log::warn!("CPU note #{cpu} exceeds the {MAX_CPUS} CPU states kept; skipped");
        } else {
            // Notes come in CPU order.
            cpus.resize(cpu, R::default());
            cpus.push((self.decode)(desc)?);
        }
        Ok(())
    }
}

fn align4(v: u64) -> u64 {
    (v + 3) & !3
}
