//! AArch64: 4, 16 or 64 KiB granules and a 25- to 48-bit virtual address space per TTBR.

use super::{uniform_levels, AddrField, Architecture, ArchitectureIdent, Canonical, LeafRule, PermBit, Permissions};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The stage 1 EL1&0 translation for a granule of `1 << granule_log2` bytes and `va_bits`.
pub(super) fn aarch64(ident: ArchitectureIdent, granule_log2: u8, va_bits: u8) -> Result<Architecture> {
    // The largest block each granule allows without FEAT_LPA/LPA2: 1 GiB, 32 MiB, 512 MiB.
    let max_block_shift = match granule_log2 {
        12 => 30,
        14 => 25,
        16 => 29,
        _ => return Err(Error::new(ErrorOrigin::Translation, ErrorKind::Unsupported)),
    };
    if !(25..=48).contains(&va_bits) {
        return Err(Error::new(ErrorOrigin::Translation, ErrorKind::Unsupported));
    }
    let (levels, level_count) = uniform_levels(va_bits, granule_log2, granule_log2 - 3, max_block_shift);
    // The top table may be smaller than a granule; TTBR holds it aligned to its size.
    let top_table_log2 = (levels[0].bits + 3).max(4);
    Ok(Architecture {
        ident,
        levels,
        level_count,
        entry_size: 8,
        little_endian: true,
        pointer_bits: 64,
        canonical: Canonical::SplitRoots,
        valid_bit: 0,
        entry_addr: AddrField::in_place(granule_log2, 48),
        // TTBRn_EL1: ASID in bits 48..64, CnP in bit 0.
        root_addr: AddrField::in_place(top_table_log2, 48),
        leaf_rule: LeafRule::TableBit(1),
        // APTable[1], APTable[0], UXNTable, PXNTable.
        table_perms: Permissions {
            write: PermBit::DenyIfSet(62),
            user: PermBit::DenyIfSet(61),
            exec_user: PermBit::DenyIfSet(60),
            exec_kernel: PermBit::DenyIfSet(59),
        },
        // AP[2] (read-only), AP[1] (EL0 access), UXN, PXN.
        leaf_perms: Permissions {
            write: PermBit::DenyIfSet(7),
            user: PermBit::AllowIfSet(6),
            exec_user: PermBit::DenyIfSet(54),
            exec_kernel: PermBit::DenyIfSet(53),
        },
    })
}
