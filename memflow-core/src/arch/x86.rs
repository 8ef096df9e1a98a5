//! x86: 32-bit paging, PAE and 64-bit paging with 4 or 5 levels.

use super::{uniform_levels, AddrField, Architecture, ArchitectureIdent, Canonical, LeafRule, PermBit, Permissions};

/// Write and user bits, and NX (EFER.NXE is assumed set) in bit 63.
const X86_PERMS_NX: Permissions = Permissions {
    write: PermBit::AllowIfSet(1),
    user: PermBit::AllowIfSet(2),
    exec_user: PermBit::DenyIfSet(63),
    exec_kernel: PermBit::DenyIfSet(63),
};

/// 32-bit paging with 4 MiB pages (CR4.PSE).
pub(super) fn x86_32() -> Architecture {
    let perms = Permissions { exec_user: PermBit::Absent, exec_kernel: PermBit::Absent, ..X86_PERMS_NX };
    let (levels, level_count) = uniform_levels(32, 12, 10, 22);
    Architecture {
        ident: ArchitectureIdent::X86_32,
        levels,
        level_count,
        entry_size: 4,
        little_endian: true,
        pointer_bits: 32,
        canonical: Canonical::ZeroExtended,
        valid_bit: 0,
        entry_addr: AddrField::in_place(12, 32),
        root_addr: AddrField::in_place(12, 32),
        leaf_rule: LeafRule::LargePageBit(7),
        table_perms: perms,
        leaf_perms: perms,
    }
}

/// PAE paging: a 4-entry PDPT above two 9-bit levels.
pub(super) fn x86_pae() -> Architecture {
    let (mut levels, level_count) = uniform_levels(32, 12, 9, 21);
    // PDPTEs have no permission bits (and no NX); they can not map pages.
    levels[0].table_perms = false;
    Architecture {
        ident: ArchitectureIdent::X86Pae,
        levels,
        level_count,
        entry_size: 8,
        little_endian: true,
        pointer_bits: 32,
        canonical: Canonical::ZeroExtended,
        valid_bit: 0,
        entry_addr: AddrField::in_place(12, 52),
        // CR3 holds the 32-byte aligned PDPT address.
        root_addr: AddrField::in_place(5, 32),
        leaf_rule: LeafRule::LargePageBit(7),
        table_perms: X86_PERMS_NX,
        leaf_perms: X86_PERMS_NX,
    }
}

/// 64-bit paging with `level_count` (4 or 5) levels.
pub(super) fn x86_64(level_count: u8) -> Architecture {
    let va_bits = 12 + 9 * level_count;
    let (levels, _) = uniform_levels(va_bits, 12, 9, 30);
    Architecture {
        ident: if level_count == 5 { ArchitectureIdent::X86_64La57 } else { ArchitectureIdent::X86_64 },
        levels,
        level_count,
        entry_size: 8,
        little_endian: true,
        pointer_bits: 64,
        canonical: Canonical::SignExtended,
        valid_bit: 0,
        entry_addr: AddrField::in_place(12, 52),
        // Bits 0..12 of CR3 are flags or the PCID, bits 52..64 reserved or LAM controls.
        root_addr: AddrField::in_place(12, 52),
        leaf_rule: LeafRule::LargePageBit(7),
        table_perms: X86_PERMS_NX,
        leaf_perms: X86_PERMS_NX,
    }
}
