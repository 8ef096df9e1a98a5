//! The architecture (MMU mode) record and its `MF_ARCH_*` kinds.

use memflow_core::arch::ArchitectureIdent;
use memflow_core::error::{Error, ErrorKind};

use crate::call::ffi_err;

/// Which MMU mode an `MfArchitecture` describes: one of the `MF_ARCH_*` constants.
pub type MfArchKind = u32;
/// Architecture: not known.
pub const MF_ARCH_UNKNOWN: MfArchKind = 0;
/// Architecture: 32-bit x86 paging (2 levels).
pub const MF_ARCH_X86_32: MfArchKind = 1;
/// Architecture: x86 PAE paging (3 levels).
pub const MF_ARCH_X86_PAE: MfArchKind = 2;
/// Architecture: x86-64 4-level paging.
pub const MF_ARCH_X86_64: MfArchKind = 3;
/// Architecture: x86-64 5-level paging (LA57).
pub const MF_ARCH_X86_64_LA57: MfArchKind = 4;
/// Architecture: AArch64 (see `granule_log2` and `va_bits`).
pub const MF_ARCH_AARCH64: MfArchKind = 5;
/// Architecture: RISC-V Sv39.
pub const MF_ARCH_RISCV_SV39: MfArchKind = 6;
/// Architecture: RISC-V Sv48.
pub const MF_ARCH_RISCV_SV48: MfArchKind = 7;
/// Architecture: RISC-V Sv57.
pub const MF_ARCH_RISCV_SV57: MfArchKind = 8;

/// An architecture (MMU mode).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MfArchitecture {
    /// The mode, one of `MF_ARCH_*`.
    pub kind: MfArchKind,
    /// Pointer width in bits (32 or 64); 0 if unknown.
    pub pointer_bits: u8,
    /// log2 of the base page size (12 = 4 KiB); 0 if unknown.
    pub granule_log2: u8,
    /// Significant virtual address bits; 0 if unknown.
    pub va_bits: u8,
}

impl From<ArchitectureIdent> for MfArchitecture {
    fn from(a: ArchitectureIdent) -> Self {
        let (kind, pointer_bits, granule_log2, va_bits) = match a {
            ArchitectureIdent::X86_32 => (MF_ARCH_X86_32, 32, 12, 32),
            ArchitectureIdent::X86Pae => (MF_ARCH_X86_PAE, 32, 12, 32),
            ArchitectureIdent::X86_64 => (MF_ARCH_X86_64, 64, 12, 48),
            ArchitectureIdent::X86_64La57 => (MF_ARCH_X86_64_LA57, 64, 12, 57),
            ArchitectureIdent::AArch64 { granule_log2, va_bits } => (MF_ARCH_AARCH64, 64, granule_log2, va_bits),
            ArchitectureIdent::RiscVSv39 => (MF_ARCH_RISCV_SV39, 64, 12, 39),
            ArchitectureIdent::RiscVSv48 => (MF_ARCH_RISCV_SV48, 64, 12, 48),
            ArchitectureIdent::RiscVSv57 => (MF_ARCH_RISCV_SV57, 64, 12, 57),
        };
        MfArchitecture { kind, pointer_bits, granule_log2, va_bits }
    }
}

impl MfArchitecture {
    /// The core's identifier of this architecture.
    pub(crate) fn to_ident(self) -> Result<ArchitectureIdent, Error> {
        Ok(match self.kind {
            MF_ARCH_X86_32 => ArchitectureIdent::X86_32,
            MF_ARCH_X86_PAE => ArchitectureIdent::X86Pae,
            MF_ARCH_X86_64 => ArchitectureIdent::X86_64,
            MF_ARCH_X86_64_LA57 => ArchitectureIdent::X86_64La57,
            MF_ARCH_AARCH64 => ArchitectureIdent::AArch64 { granule_log2: self.granule_log2, va_bits: self.va_bits },
            MF_ARCH_RISCV_SV39 => ArchitectureIdent::RiscVSv39,
            MF_ARCH_RISCV_SV48 => ArchitectureIdent::RiscVSv48,
            MF_ARCH_RISCV_SV57 => ArchitectureIdent::RiscVSv57,
            k => return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("unknown architecture kind {k}"))),
        })
    }
}
