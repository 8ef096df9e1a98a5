//! The RISC-V register record.

use crate::connector::cpu_state::RiscVRegisters;

/// The registers of one 64-bit RISC-V CPU as a connector recorded them: `pc` and the general
/// registers (what a riscv64 core's `NT_PRSTATUS` note holds), and `satp` where known.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MfRiscVRegisters {
    /// The program counter.
    pub pc: u64,
    /// `x0` to `x31` by number (`x1` is `ra`, `x2` `sp`, `x8` `s0`/`fp`, `x10` `a0`); `x[0]`
    /// is the zero register, always 0.
    pub x: [u64; 32],
    /// The address translation register (mode in bits 60..64, ASID in 44..60, the root
    /// table's page number in 0..44); meaningful only if `satp_valid`.
    pub satp: u64,
    /// Whether `satp` was read from the target (a live QEMU guest's monitor shows it; dumps
    /// do not record it).
    pub satp_valid: bool,
}

impl From<&RiscVRegisters> for MfRiscVRegisters {
    fn from(r: &RiscVRegisters) -> Self {
        MfRiscVRegisters { pc: r.pc, x: r.x, satp: r.satp, satp_valid: r.satp_valid }
    }
}
