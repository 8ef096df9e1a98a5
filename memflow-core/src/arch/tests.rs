//! Tests of the architecture model and of each family's entries.

use super::*;

fn arch(ident: ArchitectureIdent) -> Architecture {
    ident.describe().unwrap()
}

#[test]
fn level_splits() {
    let shifts = |a: Architecture| a.levels().iter().map(|l| (l.shift, l.bits, l.leaf)).collect::<Vec<_>>();
    assert_eq!(shifts(arch(ArchitectureIdent::X86_32)), [(22, 10, true), (12, 10, true)]);
    assert_eq!(shifts(arch(ArchitectureIdent::X86Pae)), [(30, 2, false), (21, 9, true), (12, 9, true)]);
    assert_eq!(shifts(arch(ArchitectureIdent::X86_64)), [(39, 9, false), (30, 9, true), (21, 9, true), (12, 9, true)]);
    assert_eq!(arch(ArchitectureIdent::X86_64La57).va_bits(), 57);
    let a = arch(ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 48 });
    assert_eq!(shifts(a), [(47, 1, false), (36, 11, false), (25, 11, true), (14, 11, true)]);
    let a = arch(ArchitectureIdent::AArch64 { granule_log2: 16, va_bits: 48 });
    assert_eq!(shifts(a), [(42, 6, false), (29, 13, true), (16, 13, true)]);
    let a = arch(ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 39 });
    assert_eq!(shifts(a), [(30, 9, true), (21, 9, true), (12, 9, true)]);
    assert!(arch(ArchitectureIdent::RiscVSv57).levels().iter().all(|l| l.leaf));
    assert!(ArchitectureIdent::AArch64 { granule_log2: 13, va_bits: 48 }.describe().is_err());
    assert!(ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 53 }.describe().is_err());
    assert!(ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 24 }.describe().is_err());
    // 52 bits: a fifth level (-1) of 16 entries with 4K, blocks one level higher.
    let a = arch(ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 52 });
    assert_eq!(shifts(a), [(48, 4, false), (39, 9, true), (30, 9, true), (21, 9, true), (12, 9, true)]);
    let a = arch(ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 52 });
    assert_eq!(shifts(a), [(47, 5, false), (36, 11, true), (25, 11, true), (14, 11, true)]);
    let a = arch(ArchitectureIdent::AArch64 { granule_log2: 16, va_bits: 52 });
    assert_eq!(shifts(a), [(42, 10, true), (29, 13, true), (16, 13, true)]);
}

/// 52-bit output addresses, from the Arm ARM's descriptor formats: FEAT_LPA2 (4K and 16K
/// granules, `TCR.DS` set) keeps address bits 50 and 51 in descriptor bits 8 and 9 and bits
/// 48 and 49 in place; FEAT_LPA (64K) keeps bits 48 to 51 in descriptor bits 12 to 15; both
/// keep a table's bits 48 to 51 in TTBR bits 2 to 5.
#[test]
fn aarch64_52_bit_output_addresses() {
    let a = arch(ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 52 });
    let none = Denied::default();
    // Level -1 table descriptor: NLTA 0x3_0000_1234_5000 in place, bits 50 and 51 in 9:8.
    let table = 0x0003_0000_1234_5000u64 | 0x300 | 0b11;
    assert_eq!(a.decode(0, table), Entry::Table { next: Address::new(0xf_0000_1234_5000), denied: none });
    // Level 0 block of 512 GiB at 0xf_ff80_0000_0000 (AF, EL1 read-write, no EL0 access).
    let block = 0x0003_ff80_0000_0000u64 | 0x300 | 0x401;
    assert_eq!(a.decode(1, block), Entry::Page { base: Address::new(0xf_ff80_0000_0000), denied: Denied::USER });
    assert_eq!(
        a.encode_page(1, Address::new(0xf_ff80_0000_0000), PageType::WRITEABLE | PageType::NOEXEC)
            .map(|r| r & a.entry_addr.raw_mask()),
        Some(0x0003_ff80_0000_0300)
    );
    // A level 3 page with bit 48 set: in place now, not an attribute.
    assert_eq!(
        a.decode(4, 0x0001_0000_4000_1403),
        Entry::Page { base: Address::new(0x1_0000_4000_1000), denied: Denied::USER }
    );
    // TTBR1 with ASID 1 and BADDR bits 48..51 in bits 2..5: the 16-entry top table is 128 bytes.
    assert_eq!(a.root_table(Address::new(0x0001_0000_4000_0080 | 0b1010 << 2)), Address::new(0xa_0000_4000_0080));
    assert_eq!(a.root_register(Address::new(0xa_0000_4000_0080)), Address::new(0x0000_0000_4000_0080 | 0b1010 << 2));

    let a16 = arch(ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 52 });
    // Level 1 block of 64 GiB.
    let block = 0x0000_0010_0000_0000u64 | 0x100 | 0x401;
    assert_eq!(a16.decode(1, block), Entry::Page { base: Address::new(0x4_0010_0000_0000), denied: Denied::USER });

    let a64 = arch(ArchitectureIdent::AArch64 { granule_log2: 16, va_bits: 52 });
    // Level 3 page: bits 48..51 (0xa) in descriptor bits 12..15.
    assert_eq!(
        a64.decode(2, 0x0000_0000_4001_0000u64 | 0xa000 | 0x403),
        Entry::Page { base: Address::new(0xa_0000_4001_0000), denied: Denied::USER }
    );

    // With 48 bits the same bits are attributes (shareability) or ignored, not address bits.
    let a48 = arch(ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 });
    assert_eq!(
        a48.decode(3, 0x0001_0000_4000_1703),
        Entry::Page { base: Address::new(0x4000_1000), denied: Denied::USER }
    );
}

#[test]
fn canonical_ranges() {
    let a = arch(ArchitectureIdent::X86_64);
    assert_eq!(a.root_index(Address::new(0x7fff_ffff_ffff)), Some(0));
    assert_eq!(a.root_index(Address::new(0x8000_0000_0000)), None);
    assert_eq!(a.root_index(Address::new(0xffff_8000_0000_0000)), Some(0));
    assert_eq!(a.root_index(Address::new(0xfffe_8000_0000_0000)), None);
    let a = arch(ArchitectureIdent::X86_64La57);
    assert_eq!(a.root_index(Address::new(0x00ff_ffff_ffff_ffff)), Some(0));
    assert_eq!(a.root_index(Address::new(0x0100_0000_0000_0000)), None);
    assert_eq!(a.root_index(Address::new(0xff00_0000_0000_0000)), Some(0));
    let a = arch(ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 39 });
    assert_eq!(a.root_index(Address::new(0x7f_ffff_ffff)), Some(0));
    assert_eq!(a.root_index(Address::new(0xffff_ff80_0000_0000)), Some(1));
    assert_eq!(a.root_index(Address::new(0xffff_ff00_0000_0000)), None);
    let a = arch(ArchitectureIdent::X86_32);
    assert_eq!(a.root_index(Address::new(0xffff_ffff)), Some(0));
    assert_eq!(a.root_index(Address::new(0x1_0000_0000)), None);
    #[cfg(feature = "128_bit_mem")]
    assert_eq!(arch(ArchitectureIdent::X86_64).root_index(Address::new(1 << 64)), None);
}

/// Entries written by hand from the manuals decode as the manuals say.
#[test]
fn known_entries() {
    let x64 = arch(ArchitectureIdent::X86_64);
    // PDE: present, writable, supervisor, PS, PAT (bit 12) set, NX.
    let pde = 0x8000_0001_2340_1083u64;
    let expect = Entry::Page {
        base: Address::new(0x1_2340_0000),
        denied: Denied::USER | Denied::EXEC_USER | Denied::EXEC_KERNEL,
    };
    assert_eq!(x64.decode(2, pde), expect);
    assert_eq!(x64.decode(0, 0x83), Entry::Invalid, "PS is reserved in a PML4E");
    assert_eq!(x64.decode(3, 0x5007), Entry::Page { base: Address::new(0x5000), denied: Denied::default() });

    let x32 = arch(ArchitectureIdent::X86_32);
    assert_eq!(x32.decode(0, 0x00c0_0083), Entry::Page { base: Address::new(0xc0_0000), denied: Denied::USER });

    let pae = arch(ArchitectureIdent::X86Pae);
    assert_eq!(
        pae.decode(0, 0x8000_0000_0000_3001),
        Entry::Table { next: Address::new(0x3000), denied: Denied::default() }
    );
    assert_eq!(pae.root_table(Address::new(0x1_2345_6fe0)), Address::new(0x2345_6fe0));

    // AArch64 4K: level 1 block, AF, AP = RO at EL1 (AP[2]=1), UXN; level 3 page RW EL0, PXN.
    let arm = arch(ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 });
    let block = 0x0040_0000_4000_0481u64;
    assert_eq!(
        arm.decode(1, block),
        Entry::Page { base: Address::new(0x4000_0000), denied: Denied::WRITE | Denied::USER | Denied::EXEC_USER }
    );
    assert_eq!(arm.decode(0, block), Entry::Invalid, "no blocks at level 0 with 4K granule");
    assert_eq!(
        arm.decode(3, 0x0020_0000_8765_4443),
        Entry::Page { base: Address::new(0x8765_4000), denied: Denied::EXEC_KERNEL }
    );
    assert_eq!(arm.decode(3, 0x0000_0000_8765_4441), Entry::Invalid, "0b01 is reserved at level 3");
    assert_eq!(
        arm.decode(0, 0x6000_0000_1234_5003),
        Entry::Table { next: Address::new(0x1234_5000), denied: Denied::WRITE | Denied::USER }
    );
    let arm16 = arch(ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 48 });
    assert_eq!(arm16.decode(1, 0x4000_0001), Entry::Invalid, "no level 1 blocks with 16K granule");
    assert!(matches!(arm16.decode(2, 0x0200_0001), Entry::Page { .. }));

    // RISC-V: PPN 0x80200 << 10, V R W X U: a 4 KiB page; as a level 1 (2 MiB) superpage
    // it is misaligned; W without R is reserved; a non-leaf at the last level is invalid.
    let rv = arch(ArchitectureIdent::RiscVSv39);
    let pte = (0x80201u64 << 10) | 0b11111;
    assert_eq!(rv.decode(2, pte), Entry::Page { base: Address::new(0x8020_1000), denied: Denied::default() });
    assert_eq!(rv.decode(1, pte), Entry::Invalid);
    assert_eq!(
        rv.decode(1, (0x80200u64 << 10) | 0b00011),
        Entry::Page {
            base: Address::new(0x8020_0000),
            denied: Denied::WRITE | Denied::USER | Denied::EXEC_USER | Denied::EXEC_KERNEL
        }
    );
    assert_eq!(rv.decode(0, 0b101), Entry::Invalid);
    assert_eq!(rv.decode(2, (0x1234u64 << 10) | 1), Entry::Invalid);
    assert_eq!(rv.root_table(Address::new(0x8000_0000_0008_0200)), Address::new(0x8020_0000));
}

#[test]
fn encode_is_inverse_of_decode() {
    for &ident in ArchitectureIdent::EVERY_MODE {
        let a = arch(ident);
        for (level, lvl) in a.levels().iter().enumerate() {
            let base = Address::new(0x3456_7000).align_down((1 as umem) << lvl.shift);
            for bits in 0..8u8 {
                let flags = PageType::from_bits_truncate(bits << 1);
                match a.encode_page(level, base, flags) {
                    Some(raw) => match a.decode(level, raw) {
                        Entry::Page { base: got, denied } => {
                            assert_eq!(got, base, "{ident:?} level {level}");
                            let mut expect = flags;
                            if a.leaf_perms.exec_user == PermBit::Absent {
                                expect.remove(PageType::NOEXEC);
                            }
                            assert_eq!(denied.page_type(), expect, "{ident:?} level {level}");
                        }
                        other => panic!("{ident:?} level {level}: {other:?}"),
                    },
                    None => assert!(!lvl.leaf),
                }
            }
            if level + 1 < a.levels().len() {
                let next = Address::new(0x30000);
                assert_eq!(
                    a.decode(level, a.encode_table(level, next)),
                    Entry::Table { next, denied: Denied::default() }
                );
            }
        }
        let root = Address::new(0x30000);
        assert_eq!(a.root_table(a.root_register(root)), root);
    }
}

/// Every mode of the table comes back from its C code and from each of its argument names, and
/// its ELF machine and Rust `target_arch` name each other one to one (the host's plugin files
/// are checked through that pair).
#[test]
fn every_mode_round_trips_through_its_code_names_and_elf_machine() {
    for &a in ArchitectureIdent::ALL {
        assert_ne!(a.code(), 0, "{a:?}: 0 is MF_ARCH_UNKNOWN");
        assert_eq!(ArchitectureIdent::from_code(a.code()), Some(a), "{a:?}");
        for name in a.arg_names() {
            assert_eq!(ArchitectureIdent::from_arg_name(name), Some(a), "{a:?}: `{name}`");
        }
        for &b in ArchitectureIdent::ALL {
            let same_machine = a.elf_machine() == b.elf_machine();
            assert_eq!(same_machine, a.target_arch() == b.target_arch(), "{a:?} and {b:?}");
        }
    }
    assert_eq!(ArchitectureIdent::from_code(0), None);
    assert_eq!(ArchitectureIdent::from_arg_name("sparc"), None);
}

/// The list tests iterate holds every mode of the table, in its default shape among others.
#[test]
fn every_mode_list_covers_the_table() {
    for a in ArchitectureIdent::ALL {
        assert!(ArchitectureIdent::EVERY_MODE.contains(a), "{a:?}");
    }
}
