//! The AArch64 register record.

use crate::connector::cpu_state::AArch64Registers;

/// The general registers of one AArch64 CPU as a connector recorded them (what an AArch64
/// core's `NT_PRSTATUS` note holds; no translation registers).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MfAArch64Registers {
    /// `x0` to `x30` (`x29` is the frame pointer, `x30` the link register).
    pub x: [u64; 31],
    /// The stack pointer of the exception level the CPU was in.
    pub sp: u64,
    /// The program counter.
    pub pc: u64,
    /// `PSTATE` as `SPSR` holds it (the exception level in bits 2 and 3).
    pub pstate: u64,
}

impl From<&AArch64Registers> for MfAArch64Registers {
    fn from(r: &AArch64Registers) -> Self {
        MfAArch64Registers { x: r.x, sp: r.sp, pc: r.pc, pstate: r.pstate }
    }
}
