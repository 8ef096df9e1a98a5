//! CPU state from ELF notes: the x86 `elf_prstatus` registers and QEMU's `QEMUCPUState`, and
//! the AArch64 and riscv64 `elf_prstatus` registers.

use crate::connector::bytes::ByteReader;
use crate::connector::cpu_state::{AArch64Registers, RiscVRegisters, X86RegisterSet, X86Registers};
use crate::error::Result;

/// Offset of the first segment (`cs`) in `QEMUCPUState`; each segment takes 24 bytes.
const QEMU_SEGMENTS: u64 = 152;
/// Offset of `cr[5]` (CR0 to CR4) in `QEMUCPUState`, after ten segments.
const QEMU_CONTROL: u64 = QEMU_SEGMENTS + 10 * 24;
/// `QEMUCPUState` up to and including `cr[5]`; `kernel_gs_base` follows at this offset.
pub(super) const QEMU_STATE_MIN_SIZE: u64 = QEMU_CONTROL + 5 * 8;

/// `N` unsigned integers of `size` bytes each, starting at `offset`.
fn words<const N: usize>(r: &ByteReader, offset: u64, size: usize) -> Result<[u64; N]> {
    let mut out = [0u64; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = r.uint(offset + (i * size) as u64, size)?;
    }
    Ok(out)
}

/// Registers from an AArch64 `elf_prstatus` (`user_pt_regs` at byte 112: `x0`..`x30`, `sp`,
/// `pc`, `pstate`).
pub(super) fn prstatus_aarch64(desc: &ByteReader) -> Result<AArch64Registers> {
    let words = words::<34>(desc, 112, 8)?;
    let mut x = [0u64; 31];
    x.copy_from_slice(&words[..31]);
    Ok(AArch64Registers { x, sp: words[31], pc: words[32], pstate: words[33] })
}

/// Registers from a riscv64 `elf_prstatus` (`user_regs_struct` at byte 112: `pc`, then `x1`..`x31`).
pub(super) fn prstatus_riscv(desc: &ByteReader) -> Result<RiscVRegisters> {
    let mut x = words::<32>(desc, 112, 8)?;
    let pc = std::mem::take(&mut x[0]);
    Ok(RiscVRegisters { pc, x, ..Default::default() })
}

/// Registers from an x86-64 `elf_prstatus` (`user_regs_struct` at byte 112).
pub(super) fn prstatus_x86_64(cpu: &mut X86Registers, desc: &ByteReader) -> Result<()> {
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
pub(super) fn prstatus_i386(cpu: &mut X86Registers, desc: &ByteReader) -> Result<()> {
    let [rbx, rcx, rdx, rsi, rdi, rbp, rax, ds, es, fs, gs, _orig_eax, rip, cs, rflags, rsp, ss] =
        words::<17>(desc, 72, 4)?;
    let valid = cpu.valid | X86RegisterSet::GENERAL | X86RegisterSet::SELECTORS;
    let (cs, ss, ds, es, fs, gs) = (cs as u16, ss as u16, ds as u16, es as u16, fs as u16, gs as u16);
    *cpu = X86Registers { valid, rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, rip, rflags, cs, ss, ds, es, fs, gs, ..*cpu };
    Ok(())
}

/// Registers from QEMU's `QEMUCPUState` (version 1).
pub(super) fn qemu_cpu_state(cpu: &mut X86Registers, desc: &ByteReader) -> Result<()> {
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
