//! The ELF notes of a dump (the ELF core's `PT_NOTE` segment, the kdump's note area): per
//! x86-64 CPU an `NT_PRSTATUS` note (`CORE`, the kernel's `elf_prstatus`) and then, per CPU, a
//! QEMU CPU-state note (`QEMU`, type 0, `QEMUCPUState` version 1), as QEMU writes them; per
//! AArch64 or riscv64 CPU an `NT_PRSTATUS` note (QEMU's floating-point and SVE notes are not
//! kept); then the `VMCOREINFO` note. The layouts are those the reader (`connector::elf`) decodes.

use super::DumpMeta;
use crate::arch::ArchitectureIdent;
use crate::connector::cpu_state::{AArch64Registers, RiscVRegisters, X86RegisterSet, X86Registers};
use crate::connector::elf::{PRSTATUS_AARCH64_SIZE, PRSTATUS_RISCV_SIZE};

const NT_PRSTATUS: u32 = 1;
/// Size of the x86-64 `elf_prstatus`; `user_regs_struct` starts at byte 112.
const PRSTATUS_SIZE: usize = 336;
/// `pr_pid` in `elf_prstatus`.
const PRSTATUS_PID: usize = 32;
/// Size of `QEMUCPUState` version 1 with `kernel_gs_base`.
const QEMU_STATE_SIZE: usize = 440;
/// `QEMUCPUState` segments (cs, ds, es, fs, gs, ss, ldt, tr, gdt, idt) of 24 bytes each.
const QEMU_SEGMENTS: usize = 152;
/// `QEMUCPUState::cr[5]`.
const QEMU_CONTROL: usize = QEMU_SEGMENTS + 10 * 24;

/// The notes, and where the `VMCOREINFO` text is among them (offset, length).
pub(super) struct NoteArea {
    pub bytes: Vec<u8>,
    pub vmcoreinfo: Option<(u64, u64)>,
}

/// The notes of `meta`. CPU notes are written for x86-64, AArch64 and RISC-V targets.
pub(super) fn notes(meta: &DumpMeta) -> NoteArea {
    let mut bytes = Vec::new();
    match meta.arch {
        ArchitectureIdent::X86_64 | ArchitectureIdent::X86_64La57 => {
            for (cpu, regs) in meta.cpus.iter().enumerate() {
                note(&mut bytes, b"CORE", NT_PRSTATUS, &prstatus(cpu, regs));
            }
            for regs in &meta.cpus {
                note(&mut bytes, b"QEMU", 0, &qemu_state(regs));
            }
        }
        ArchitectureIdent::AArch64 { .. } => {
            for (cpu, regs) in meta.aarch64_cpus.iter().enumerate() {
                note(&mut bytes, b"CORE", NT_PRSTATUS, &prstatus_aarch64(cpu, regs));
            }
        }
        ArchitectureIdent::RiscVSv39 | ArchitectureIdent::RiscVSv48 | ArchitectureIdent::RiscVSv57 => {
            for (cpu, regs) in meta.riscv_cpus.iter().enumerate() {
                note(&mut bytes, b"CORE", NT_PRSTATUS, &prstatus_riscv(cpu, regs));
            }
        }
        _ => {}
    }
    let vmcoreinfo = meta.vmcoreinfo.as_ref().map(|text| {
        let at = note(&mut bytes, b"VMCOREINFO", 0, text);
        (at, text.len() as u64)
    });
    NoteArea { bytes, vmcoreinfo }
}

/// Appends a note; returns the offset of its descriptor.
fn note(out: &mut Vec<u8>, name: &[u8], ntype: u32, desc: &[u8]) -> u64 {
    let namesz = name.len() + 1;
    for v in [namesz as u32, desc.len() as u32, ntype] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(name);
    out.resize(out.len() + namesz.next_multiple_of(4) - name.len(), 0);
    let at = out.len() as u64;
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
    at
}

fn put_words(out: &mut [u8], at: usize, words: &[u64]) {
    for (i, w) in words.iter().enumerate() {
        out[at + 8 * i..at + 8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
}

/// The x86-64 `elf_prstatus` of CPU `cpu` (`pr_pid` is the CPU number plus one, as QEMU sets it).
fn prstatus(cpu: usize, r: &X86Registers) -> [u8; PRSTATUS_SIZE] {
    let mut d = [0u8; PRSTATUS_SIZE];
    d[PRSTATUS_PID..PRSTATUS_PID + 4].copy_from_slice(&(cpu as u32 + 1).to_le_bytes());
    let s = |v: u16| u64::from(v);
    #[rustfmt::skip]
    let words = [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, 0 /* orig_rax: unknown */, r.rip, s(r.cs), r.rflags, r.rsp, s(r.ss), r.fs_base,
        r.gs_base, s(r.ds), s(r.es), s(r.fs), s(r.gs),
    ];
    put_words(&mut d, 112, &words);
    d
}

/// A 64-bit `elf_prstatus` of `SIZE` bytes for CPU `cpu` (`pr_pid` as for x86-64) whose
/// register area at byte 112 holds `regs`.
fn prstatus_of<const SIZE: usize>(cpu: usize, regs: &[u64]) -> [u8; SIZE] {
    let mut d = [0u8; SIZE];
    d[PRSTATUS_PID..PRSTATUS_PID + 4].copy_from_slice(&(cpu as u32 + 1).to_le_bytes());
    put_words(&mut d, 112, regs);
    d
}

/// The AArch64 `elf_prstatus` of CPU `cpu`: `x0`..`x30`, `sp`, `pc`, `pstate`.
fn prstatus_aarch64(cpu: usize, r: &AArch64Registers) -> [u8; PRSTATUS_AARCH64_SIZE as usize] {
    let mut regs = [0u64; 34];
    regs[..31].copy_from_slice(&r.x);
    regs[31..].copy_from_slice(&[r.sp, r.pc, r.pstate]);
    prstatus_of(cpu, &regs)
}

/// The riscv64 `elf_prstatus` of CPU `cpu`: `pc` in the place of `x0`, then `x1`..`x31`.
fn prstatus_riscv(cpu: usize, r: &RiscVRegisters) -> [u8; PRSTATUS_RISCV_SIZE as usize] {
    let mut regs = r.x;
    regs[0] = r.pc;
    prstatus_of(cpu, &regs)
}

/// QEMU's `QEMUCPUState` version 1; its size field leaves `kernel_gs_base` out when unknown.
fn qemu_state(r: &X86Registers) -> [u8; QEMU_STATE_SIZE] {
    let mut d = [0u8; QEMU_STATE_SIZE];
    let has_kgs = r.valid.contains(X86RegisterSet::KERNEL_GS_BASE);
    let size = if has_kgs { QEMU_STATE_SIZE } else { QEMU_STATE_SIZE - 8 };
    d[0..4].copy_from_slice(&1u32.to_le_bytes());
    d[4..8].copy_from_slice(&(size as u32).to_le_bytes());
    #[rustfmt::skip]
    let words = [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15, r.rip, r.rflags,
    ];
    put_words(&mut d, 8, &words);
    // Segments cs, ds, es, fs, gs, ss: selector (u32) at +0, flags (u32) at +8, base at +16.
    let segments =
        [(r.cs, r.cs_flags, 0), (r.ds, 0, 0), (r.es, 0, 0), (r.fs, 0, r.fs_base), (r.gs, 0, r.gs_base), (r.ss, 0, 0)];
    for (i, (selector, flags, base)) in segments.into_iter().enumerate() {
        let at = QEMU_SEGMENTS + 24 * i;
        d[at..at + 4].copy_from_slice(&u32::from(selector).to_le_bytes());
        d[at + 8..at + 12].copy_from_slice(&flags.to_le_bytes());
        d[at + 16..at + 24].copy_from_slice(&base.to_le_bytes());
    }
    put_words(&mut d, QEMU_CONTROL, &[r.cr0, 0, r.cr2, r.cr3, r.cr4]);
    if has_kgs {
        put_words(&mut d, QEMU_CONTROL + 40, &[r.kernel_gs_base]);
    }
    d
}
