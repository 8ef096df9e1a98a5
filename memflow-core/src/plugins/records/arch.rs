//! The architecture (MMU mode) record and its `MF_ARCH_*` kinds.

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin};

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

// The C constants are literals (cbindgen cannot evaluate `const fn`s). This `match` gives
// every architecture of the core's table its constant (a new one does not compile without
// one), and the check below keeps each constant equal to the table's code.
const fn c_constant(a: ArchitectureIdent) -> MfArchKind {
    match a {
        ArchitectureIdent::X86_32 => MF_ARCH_X86_32,
        ArchitectureIdent::X86Pae => MF_ARCH_X86_PAE,
        ArchitectureIdent::X86_64 => MF_ARCH_X86_64,
        ArchitectureIdent::X86_64La57 => MF_ARCH_X86_64_LA57,
        ArchitectureIdent::AArch64 { .. } => MF_ARCH_AARCH64,
        ArchitectureIdent::RiscVSv39 => MF_ARCH_RISCV_SV39,
        ArchitectureIdent::RiscVSv48 => MF_ARCH_RISCV_SV48,
        ArchitectureIdent::RiscVSv57 => MF_ARCH_RISCV_SV57,
    }
}

const _: () = {
    assert!(ArchitectureIdent::from_code(MF_ARCH_UNKNOWN).is_none());
    let all = ArchitectureIdent::ALL;
    let mut i = 0;
    while i < all.len() {
        assert!(c_constant(all[i]) == all[i].code());
        i += 1;
    }
};

impl From<ArchitectureIdent> for MfArchitecture {
    fn from(a: ArchitectureIdent) -> Self {
        let kind = a.code();
        match (a.describe(), a) {
            (Ok(d), _) => MfArchitecture {
                kind,
                pointer_bits: d.pointer_bits(),
                granule_log2: d.page_shift(),
                va_bits: d.va_bits(),
            },
            // An AArch64 shape the core cannot describe keeps its parameters, so the record
            // converts back to the same identifier.
            (Err(_), ArchitectureIdent::AArch64 { granule_log2, va_bits }) => {
                MfArchitecture { kind, pointer_bits: 64, granule_log2, va_bits }
            }
            (Err(_), _) => MfArchitecture { kind, ..MfArchitecture::default() },
        }
    }
}

impl MfArchitecture {
    /// The core's identifier of this architecture.
    pub fn to_ident(self) -> Result<ArchitectureIdent, Error> {
        match ArchitectureIdent::from_code(self.kind) {
            Some(ArchitectureIdent::AArch64 { .. }) => {
                Ok(ArchitectureIdent::AArch64 { granule_log2: self.granule_log2, va_bits: self.va_bits })
            }
            Some(ident) => Ok(ident),
            None => Err(Error::new(ErrorOrigin::Ffi, ErrorKind::InvalidArgument)
                .with_reason(format_args!("unknown architecture kind {}", self.kind))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every architecture of the core's table, every shape tests use and a shape the core
    /// cannot describe convert to their record and back unchanged.
    #[test]
    fn every_architecture_round_trips_through_its_record() {
        let odd = ArchitectureIdent::AArch64 { granule_log2: 13, va_bits: 60 };
        let modes = ArchitectureIdent::ALL.iter().chain(ArchitectureIdent::EVERY_MODE).chain([&odd]);
        for &a in modes {
            let record = MfArchitecture::from(a);
            assert_eq!(record.kind, a.code(), "{a:?}");
            assert_eq!(record.to_ident(), Ok(a), "{a:?}");
        }
        let unknown = MfArchitecture { kind: MF_ARCH_UNKNOWN, ..MfArchitecture::default() };
        assert!(unknown.to_ident().is_err());
    }

    /// The records C sees: kind, pointer bits, granule and virtual address bits.
    #[test]
    fn records_describe_their_architecture() {
        let record =
            |kind, pointer_bits, granule_log2, va_bits| MfArchitecture { kind, pointer_bits, granule_log2, va_bits };
        let cases = [
            (ArchitectureIdent::X86_32, record(MF_ARCH_X86_32, 32, 12, 32)),
            (ArchitectureIdent::X86Pae, record(MF_ARCH_X86_PAE, 32, 12, 32)),
            (ArchitectureIdent::X86_64, record(MF_ARCH_X86_64, 64, 12, 48)),
            (ArchitectureIdent::X86_64La57, record(MF_ARCH_X86_64_LA57, 64, 12, 57)),
            (ArchitectureIdent::AArch64 { granule_log2: 16, va_bits: 39 }, record(MF_ARCH_AARCH64, 64, 16, 39)),
            (ArchitectureIdent::AArch64 { granule_log2: 13, va_bits: 60 }, record(MF_ARCH_AARCH64, 64, 13, 60)),
            (ArchitectureIdent::RiscVSv39, record(MF_ARCH_RISCV_SV39, 64, 12, 39)),
            (ArchitectureIdent::RiscVSv48, record(MF_ARCH_RISCV_SV48, 64, 12, 48)),
            (ArchitectureIdent::RiscVSv57, record(MF_ARCH_RISCV_SV57, 64, 12, 57)),
        ];
        for (a, want) in cases {
            assert_eq!(MfArchitecture::from(a), want, "{a:?}");
        }
    }
}
