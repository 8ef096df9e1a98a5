//! RISC-V: Sv39, Sv48 and Sv57.

use super::{uniform_levels, AddrField, Architecture, ArchitectureIdent, Canonical, LeafRule, PermBit, Permissions};

/// An Sv mode with `level_count` levels of 9 bits above 4 KiB pages.
pub(super) fn riscv(ident: ArchitectureIdent, level_count: u8) -> Architecture {
    let va_bits = 12 + 9 * level_count;
    let (levels, _) = uniform_levels(va_bits, 12, 9, va_bits);
    Architecture {
        ident,
        levels,
        level_count,
        entry_size: 8,
        little_endian: true,
        pointer_bits: 64,
        canonical: Canonical::SignExtended,
        valid_bit: 0,
        // The PPN sits in bits 10..54 of an entry and in bits 0..44 of satp.
        entry_addr: AddrField { lo: 10, bits: 44, shift: 12, high: (0, 0, 0) },
        root_addr: AddrField { lo: 0, bits: 44, shift: 12, high: (0, 0, 0) },
        leaf_rule: LeafRule::PermissionBits { read: 1, write: 2, exec: 3 },
        table_perms: Permissions::NONE,
        leaf_perms: Permissions {
            write: PermBit::AllowIfSet(2),
            user: PermBit::AllowIfSet(4),
            exec_user: PermBit::AllowIfSet(3),
            exec_kernel: PermBit::AllowIfSet(3),
        },
    }
}
