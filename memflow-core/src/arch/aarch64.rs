//! AArch64: 4, 16 or 64 KiB granules and a 25- to 52-bit virtual address space per TTBR.
//!
//! Up to 48 virtual-address bits, output addresses have 48 bits. Above, they have 52: with a
//! 4 or 16 KiB granule in FEAT_LPA2's format (`TCR_EL1.DS` set, what Linux uses with 52-bit
//! virtual addresses): address bits 50 and 51 in descriptor bits 8 and 9, blocks one level
//! higher (512 GiB with 4 KiB, 64 GiB with 16 KiB) and, for 4 KiB, a fifth level (level -1)
//! of 16 entries; with a 64 KiB granule in FEAT_LPA's: address bits 48 to 51 in descriptor
//! bits 12 to 15, 4 TiB blocks. TTBRn then holds the table's address bits 48 to 51 in its
//! bits 2 to 5.

use super::{uniform_levels, AddrField, Architecture, ArchitectureIdent, Canonical, LeafRule, PermBit, Permissions};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The stage 1 EL1&0 translation for a granule of `1 << granule_log2` bytes and `va_bits`.
pub(super) fn aarch64(ident: ArchitectureIdent, granule_log2: u8, va_bits: u8) -> Result<Architecture> {
    if !(25..=52).contains(&va_bits) {
        return Err(Error::new(ErrorOrigin::Translation, ErrorKind::Unsupported));
    }
    let wide = va_bits > 48;
    // The largest block each granule allows, without and with 52-bit output addresses.
    let max_block_shift = match (granule_log2, wide) {
        (12, false) => 30,
        (12, true) => 39,
        (14, false) => 25,
        (14, true) => 36,
        (16, false) => 29,
        (16, true) => 42,
        _ => return Err(Error::new(ErrorOrigin::Translation, ErrorKind::Unsupported)),
    };
    let (levels, level_count) = uniform_levels(va_bits, granule_log2, granule_log2 - 3, max_block_shift);
    // The top table may be smaller than a granule; TTBR holds it aligned to its size.
    let top_table_log2 = (levels[0].bits + 3).max(4);
    let (entry_addr, root_addr) = match (wide, granule_log2) {
        (false, _) => (AddrField::in_place(granule_log2, 48), AddrField::in_place(top_table_log2, 48)),
        (true, 16) => (
            AddrField::in_place(16, 48).with_high(12, 4, 48),
            AddrField::in_place(top_table_log2, 48).with_high(2, 4, 48),
        ),
        (true, _) => (
            AddrField::in_place(granule_log2, 50).with_high(8, 2, 50),
            AddrField::in_place(top_table_log2, 48).with_high(2, 4, 48),
        ),
    };
    Ok(Architecture {
        ident,
        levels,
        level_count,
        entry_size: 8,
        little_endian: true,
        pointer_bits: 64,
        canonical: Canonical::SplitRoots,
        valid_bit: 0,
        entry_addr,
        // TTBRn_EL1: ASID in bits 48..64, CnP in bit 0.
        root_addr,
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
