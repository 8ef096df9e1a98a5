//! The x86 register record and its `MF_X86_REGS_*` groups.

use crate::connector::X86Registers;

use super::convert::addr_out;

/// Bits of `MfX86Registers::valid`: which groups of fields hold values read from the target.
pub type MfX86RegisterSet = u32;
/// Register group: `rax`..`r15`, `rip`, `rflags`.
pub const MF_X86_REGS_GENERAL: MfX86RegisterSet = 1 << 0;
/// Register group: the segment selectors.
pub const MF_X86_REGS_SELECTORS: MfX86RegisterSet = 1 << 1;
/// Register group: `cs_flags`.
pub const MF_X86_REGS_CS_FLAGS: MfX86RegisterSet = 1 << 2;
/// Register group: `fs_base` and `gs_base`.
pub const MF_X86_REGS_SEGMENT_BASES: MfX86RegisterSet = 1 << 3;
/// Register group: `kernel_gs_base`.
pub const MF_X86_REGS_KERNEL_GS_BASE: MfX86RegisterSet = 1 << 4;
/// Register group: `cr0`, `cr2`, `cr3`, `cr4`.
pub const MF_X86_REGS_CONTROL: MfX86RegisterSet = 1 << 5;
/// Register group: `efer`.
pub const MF_X86_REGS_EFER: MfX86RegisterSet = 1 << 6;
/// The CPU ran in long mode.
pub const MF_X86_REGS_LONG_MODE: MfX86RegisterSet = 1 << 7;

const _: () = {
    use crate::connector::X86RegisterSet as S;
    assert!(MF_X86_REGS_GENERAL == S::GENERAL.bits());
    assert!(MF_X86_REGS_SELECTORS == S::SELECTORS.bits());
    assert!(MF_X86_REGS_CS_FLAGS == S::CS_FLAGS.bits());
    assert!(MF_X86_REGS_SEGMENT_BASES == S::SEGMENT_BASES.bits());
    assert!(MF_X86_REGS_KERNEL_GS_BASE == S::KERNEL_GS_BASE.bits());
    assert!(MF_X86_REGS_CONTROL == S::CONTROL.bits());
    assert!(MF_X86_REGS_EFER == S::EFER.bits());
    assert!(MF_X86_REGS_LONG_MODE == S::LONG_MODE.bits());
};

/// The registers of one x86 / x86-64 CPU as a connector recorded them. Fields of groups not
/// set in `valid` are zero and mean nothing; 32-bit registers are zero-extended.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfX86Registers {
    /// Which groups hold values (`MF_X86_REGS_*` bits).
    pub valid: MfX86RegisterSet,
    /// Hidden attributes of the code segment (descriptor high-dword layout; `CS.L` is bit 21).
    pub cs_flags: u32,
    /// `rax`.
    pub rax: u64,
    /// `rbx`.
    pub rbx: u64,
    /// `rcx`.
    pub rcx: u64,
    /// `rdx`.
    pub rdx: u64,
    /// `rsi`.
    pub rsi: u64,
    /// `rdi`.
    pub rdi: u64,
    /// `rbp`.
    pub rbp: u64,
    /// `rsp`.
    pub rsp: u64,
    /// `r8`.
    pub r8: u64,
    /// `r9`.
    pub r9: u64,
    /// `r10`.
    pub r10: u64,
    /// `r11`.
    pub r11: u64,
    /// `r12`.
    pub r12: u64,
    /// `r13`.
    pub r13: u64,
    /// `r14`.
    pub r14: u64,
    /// `r15`.
    pub r15: u64,
    /// Instruction pointer.
    pub rip: u64,
    /// Flags register.
    pub rflags: u64,
    /// Code segment selector.
    pub cs: u16,
    /// Stack segment selector.
    pub ss: u16,
    /// Data segment selector.
    pub ds: u16,
    /// Extra segment selector.
    pub es: u16,
    /// `fs` selector.
    pub fs: u16,
    /// `gs` selector.
    pub gs: u16,
    /// Base of the `fs` segment.
    pub fs_base: u64,
    /// Base of the `gs` segment.
    pub gs_base: u64,
    /// `IA32_KERNEL_GS_BASE`.
    pub kernel_gs_base: u64,
    /// `cr0`.
    pub cr0: u64,
    /// `cr2`.
    pub cr2: u64,
    /// `cr3` (page-table root plus PCID / flag bits).
    pub cr3: u64,
    /// `cr4`.
    pub cr4: u64,
    /// `IA32_EFER`.
    pub efer: u64,
    /// The top-level page-table address derived from `cr3` and the paging mode, 0 if paging
    /// is off or the control registers are not known.
    pub page_table_root: u64,
}

// `MfX86Registers` is the core's `X86Registers` as C sees it, plus the derived page-table
// root: C needs `valid` as a plain integer. The core record is destructured without `..` and the C one
// built without it: a field added to either does not compile until both have it.
impl From<&X86Registers> for MfX86Registers {
    fn from(r: &X86Registers) -> Self {
        let X86Registers {
            valid,
            cs_flags,
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
            kernel_gs_base,
            cr0,
            cr2,
            cr3,
            cr4,
            efer,
        } = *r;
        MfX86Registers {
            valid: valid.bits(),
            cs_flags,
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
            kernel_gs_base,
            cr0,
            cr2,
            cr3,
            cr4,
            efer,
            page_table_root: r.page_table_root().map_or(0, addr_out),
        }
    }
}

/// The core record of registers a C plugin reported (`page_table_root` is derived again from
/// the control registers; `valid` bits this version does not know are dropped).
impl From<&MfX86Registers> for X86Registers {
    fn from(r: &MfX86Registers) -> Self {
        let MfX86Registers {
            valid,
            cs_flags,
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
            kernel_gs_base,
            cr0,
            cr2,
            cr3,
            cr4,
            efer,
            page_table_root: _,
        } = *r;
        X86Registers {
            valid: crate::connector::X86RegisterSet::from_bits_truncate(valid),
            cs_flags,
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
            kernel_gs_base,
            cr0,
            cr2,
            cr3,
            cr4,
            efer,
        }
    }
}
