//! Tests of the ELF core parser.

use super::cpu::QEMU_STATE_MIN_SIZE;
use super::*;
use crate::connector::cpu_state::{X86ArchHint, X86RegisterSet, CR0_PG, CR4_LA57, CR4_PAE};
use crate::connector::testdata::{self, CoreBuilder};
use proptest::prelude::*;

fn kind(bytes: &[u8]) -> ErrorKind {
    parse(bytes).unwrap_err().kind
}

#[test]
fn qemu_x86_64_core_maps_loads_and_reads_cpu_state() {
    let core = testdata::qemu_core();
    let parsed = parse(&core.build()).unwrap();
    assert_eq!(parsed.class, ElfClass::Elf64);
    assert_eq!(parsed.machine, 62);
    let ranges = parsed.map.ranges();
    assert_eq!(ranges.len(), 2);
    assert_eq!(ranges[0].base, Address::new(0));
    assert_eq!(ranges[0].size, 0x2000);
    assert_eq!(ranges[1].base, Address::new(0x10_0000));
    // p_memsz 0x3000 > p_filesz 0x1000: only the file bytes are mapped.
    assert_eq!(ranges[1].size, 0x1000);
    assert_eq!(parsed.cpus.len(), 2);
    let cpu = parsed.cpus[1];
    assert_eq!(cpu.cr3, testdata::CR3 + 1);
    assert_eq!(cpu.rip, 0xffff_ffff_8100_0001);
    assert_eq!(cpu.rsp, 0xffff_c900_0000_1001);
    assert_eq!(cpu.r15, 15);
    assert_eq!(cpu.cs, 0x10);
    assert_eq!(cpu.kernel_gs_base, 0xffff_8880_0000_0001);
    assert!(cpu.valid.contains(X86RegisterSet::KERNEL_GS_BASE | X86RegisterSet::CONTROL | X86RegisterSet::GENERAL));
    assert!(!cpu.valid.contains(X86RegisterSet::EFER));
    assert_eq!(cpu.arch_hint(), X86ArchHint::X86_64La57);
    assert_eq!(cpu.page_table_root(), Some(Address::new(umem::from(testdata::CR3))));
    assert!(parsed.vmcoreinfo.is_none());
}

#[test]
fn elf32_core_with_i386_prstatus() {
    let mut regs = [0u8; 144];
    regs[72 + 48..72 + 52].copy_from_slice(&0xc010_0000u32.to_le_bytes()); // eip
    regs[72 + 60..72 + 64].copy_from_slice(&0xc020_0000u32.to_le_bytes()); // esp
    let core = CoreBuilder::new(false, 3).load(0x1000, vec![7; 0x100], 0x100).note("CORE", 1, regs.to_vec());
    let cpu = parse(&core.build()).unwrap().cpus[0];
    assert_eq!((cpu.rip, cpu.rsp), (0xc010_0000, 0xc020_0000));
    assert_eq!(cpu.arch_hint(), X86ArchHint::Unknown);
    let parsed = parse(&testdata::qemu_core32().build()).unwrap();
    assert_eq!(parsed.class, ElfClass::Elf32);
    assert_eq!(parsed.map.ranges().len(), 2);
    // 32-bit prstatus and CS.L clear: PAE without long mode.
    let cpu = parsed.cpus[0];
    assert_eq!(cpu.arch_hint(), X86ArchHint::X86Pae);
    assert_eq!(cpu.page_table_root(), Some(Address::new(0x3000)));
}

#[test]
fn cores_of_other_machines_are_named_and_refused() {
    let core = CoreBuilder::new(true, 22).big_endian().load(0x4000, vec![1; 0x10], 0x10).note("CORE", 1, vec![0; 336]);
    let err = parse(&core.build()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert!(err.to_string().contains("e_machine 22"), "{err}");
}

#[test]
fn vmcoreinfo_note_is_exposed() {
    let text = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff82a0a000\nKERNELOFFSET=1e000000\nNUMBER(pgtable_l5_enabled)=1\nno equals sign\n\0";
    let core = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).note("VMCOREINFO", 0, text.to_vec());
    let info = parse(&core.build()).unwrap().vmcoreinfo.unwrap();
    assert_eq!(info.os_release(), Some("6.1.0-test"));
    assert_eq!(info.page_size(), Some(4096));
    assert_eq!(info.symbol("swapper_pg_dir"), Some(0xffff_ffff_82a0_a000));
    assert_eq!(info.kernel_offset(), Some(0x1e00_0000));
    assert_eq!(info.number("pgtable_l5_enabled"), Some(1));
    assert_eq!(info.entries().len(), 5);
    // The text is carried on as the kernel wrote it, in its order, without the padding.
    assert_eq!(info.to_text(), text[..text.len() - 1]);
    let twice = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).note("VMCOREINFO", 0, b"A=1\n".to_vec()).note(
        "VMCOREINFO",
        0,
        b"A=2\n".to_vec(),
    );
    assert_eq!(kind(&twice.build()), ErrorKind::Malformed);
}

#[test]
fn truncated_headers_are_refused() {
    let core = testdata::qemu_core().build();
    assert_eq!(kind(&[]), ErrorKind::Malformed);
    assert_eq!(kind(&core[..10]), ErrorKind::Malformed);
    assert_eq!(kind(&core[..40]), ErrorKind::Truncated);
    // The header is complete but the program header table is cut.
    assert_eq!(kind(&core[..70]), ErrorKind::Truncated);
}

#[test]
fn bad_identification_and_type_are_refused() {
    let core = testdata::qemu_core().build();
    let mut bad = core.clone();
    bad[4] = 3;
    assert_eq!(kind(&bad), ErrorKind::Unsupported);
    let mut bad = core.clone();
    bad[5] = 0;
    assert_eq!(kind(&bad), ErrorKind::Malformed);
    let mut exec = core.clone();
    exec[16] = 2; // ET_EXEC
    assert_eq!(kind(&exec), ErrorKind::Unsupported);
}

#[test]
fn phdr_table_past_eof_is_refused() {
    let mut core = testdata::qemu_core().build();
    let near_end = core.len() as u64 - 8;
    core[32..40].copy_from_slice(&near_end.to_le_bytes());
    assert_eq!(kind(&core), ErrorKind::Truncated);
    core[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(kind(&core), ErrorKind::Truncated);
    let mut small = testdata::qemu_core().build();
    small[54..56].copy_from_slice(&8u16.to_le_bytes()); // e_phentsize
    assert_eq!(kind(&small), ErrorKind::Malformed);
}

#[test]
fn segment_past_eof_is_refused() {
    let build = |offset: u64, size: u64| {
        let mut core = CoreBuilder::new(true, 62).load(0, vec![0; 0x100], 0x100).build();
        // The only program header is the PT_LOAD at 64.
        core[64 + 8..64 + 16].copy_from_slice(&offset.to_le_bytes());
        core[64 + 32..64 + 40].copy_from_slice(&size.to_le_bytes());
        core[64 + 40..64 + 48].copy_from_slice(&size.to_le_bytes());
        core
    };
    assert!(parse(&build(0x78, 0x100)).is_ok());
    assert_eq!(kind(&build(0x78, 0x101)), ErrorKind::Truncated);
    assert_eq!(kind(&build(u64::MAX - 0x10, 0x100)), ErrorKind::Truncated);
    assert_eq!(kind(&build(0x78, u64::MAX)), ErrorKind::Truncated);
}

#[test]
fn memsz_below_filesz_and_wrapping_paddr_are_refused() {
    let mut core = CoreBuilder::new(true, 62).load(0, vec![0; 0x100], 0x100).build();
    core[64 + 40..64 + 48].copy_from_slice(&0x80u64.to_le_bytes());
    assert_eq!(kind(&core), ErrorKind::Malformed);
    let top = CoreBuilder::new(true, 62).load(u64::MAX - 0x7f, vec![0; 0x100], 0x100).build();
    assert_eq!(kind(&top), ErrorKind::OutOfBounds);
    let last_byte = CoreBuilder::new(true, 62).load(u64::MAX - 0x100, vec![0; 0x100], 0x100).build();
    assert!(parse(&last_byte).is_ok());
}

#[test]
fn overlapping_segments() {
    let partial =
        CoreBuilder::new(true, 62).load(0x1000, vec![1; 0x1000], 0x1000).load(0x1800, vec![1; 0x1000], 0x1000);
    assert_eq!(kind(&partial.build()), ErrorKind::Malformed);
    // A byte-identical segment inside another (kdump's kernel text) is skipped.
    let data: Vec<u8> = (0..0x2000u32).map(|i| i as u8).collect();
    let dup =
        CoreBuilder::new(true, 62).load(0x1000, data[0x800..0xc00].to_vec(), 0x400).load(0x800, data.clone(), 0x2000);
    let map = parse(&dup.build()).unwrap().map;
    assert_eq!(map.ranges().len(), 1);
    assert_eq!(map.ranges()[0].size, 0x2000);
    let differ = CoreBuilder::new(true, 62).load(0x1000, vec![0xee; 0x400], 0x400).load(0x800, data, 0x2000);
    assert_eq!(kind(&differ.build()), ErrorKind::Malformed);
}

#[test]
fn duplicates_cannot_cost_more_than_the_file() {
    let mut core = CoreBuilder::new(true, 62).load(0x1000, vec![0; 0x1000], 0x1000);
    for _ in 0..7 {
        core = core.load(0x1000, vec![0], 1);
    }
    let mut core = core.build();
    let first_offset = core[64 + 8..64 + 16].to_vec();
    for i in 1..8 {
        let ph = 64 + 56 * i;
        core[ph + 8..ph + 16].copy_from_slice(&first_offset);
        core[ph + 32..ph + 40].copy_from_slice(&0x1000u64.to_le_bytes());
        core[ph + 40..ph + 48].copy_from_slice(&0x1000u64.to_le_bytes());
    }
    assert_eq!(kind(&core), ErrorKind::LimitExceeded);
}

#[test]
fn process_cores_and_empty_cores_are_refused() {
    let process = CoreBuilder::new(true, 62).load(0, vec![1; 0x10], 0x10).load(0, vec![2; 0x20], 0x20);
    assert_eq!(kind(&process.build()), ErrorKind::Unsupported);
    let empty = CoreBuilder::new(true, 62).load(0x1000, vec![], 0x1000);
    assert_eq!(kind(&empty.build()), ErrorKind::Malformed);
}

#[test]
fn seventy_thousand_pt_loads_claimed() {
    let mut core = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).build();
    // PN_XNUM with section header 0 (placed at the end of the file) holding the count.
    let shoff = core.len() as u64;
    core.extend_from_slice(&[0u8; 64]);
    core[shoff as usize + 44..shoff as usize + 48].copy_from_slice(&70_000u32.to_le_bytes());
    core[40..48].copy_from_slice(&shoff.to_le_bytes());
    core[58..60].copy_from_slice(&64u16.to_le_bytes());
    core[56..58].copy_from_slice(&PN_XNUM.to_le_bytes());
    assert_eq!(kind(&core), ErrorKind::LimitExceeded);
    // The real count in range: the table is checked against the file instead.
    core[shoff as usize + 44..shoff as usize + 48].copy_from_slice(&4000u32.to_le_bytes());
    assert_eq!(kind(&core), ErrorKind::Truncated);
    core[shoff as usize + 44..shoff as usize + 48].copy_from_slice(&1u32.to_le_bytes());
    assert!(parse(&core).is_ok());
    // Section header 0 outside the file.
    core[40..48].copy_from_slice(&(shoff + 1).to_le_bytes());
    assert_eq!(kind(&core), ErrorKind::Truncated);
    core[40..48].copy_from_slice(&0u64.to_le_bytes());
    assert_eq!(kind(&core), ErrorKind::Malformed);
}

#[test]
fn bad_notes_are_refused_or_skipped() {
    // A note whose descriptor runs past the segment.
    let mut core = testdata::qemu_core().build();
    let note_off = 64 + 56 * 3;
    core[note_off + 4..note_off + 8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    assert_eq!(kind(&core), ErrorKind::Truncated);
    // A segment ending inside a note header.
    let short = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).raw_notes(vec![0; 13]);
    assert_eq!(kind(&short.build()), ErrorKind::Truncated);
    // Notes of unknown layouts are skipped; memory stays usable.
    let odd = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).note("CORE", 1, vec![0; 100]).note(
        "QEMU",
        0,
        vec![2, 0, 0, 0],
    );
    let parsed = parse(&odd.build()).unwrap();
    assert!(parsed.cpus.is_empty());
}

#[test]
fn too_many_notes_are_refused() {
    let notes = vec![0u8; 12 * (MAX_NOTES + 1)];
    let core = CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).raw_notes(notes);
    assert_eq!(kind(&core.build()), ErrorKind::LimitExceeded);
}

#[test]
fn qemu_state_without_kernel_gs_base() {
    let mut state = testdata::qemu_state(0, CR0_PG, 0x1000, CR4_PAE | CR4_LA57, 0);
    state.truncate(QEMU_STATE_MIN_SIZE as usize);
    state[4..8].copy_from_slice(&(QEMU_STATE_MIN_SIZE as u32).to_le_bytes());
    let core =
        CoreBuilder::new(true, 62).load(0, vec![0; 0x10], 0x10).note("CORE", 1, vec![0; 336]).note("QEMU", 0, state);
    let cpu = parse(&core.build()).unwrap().cpus[0];
    assert!(!cpu.valid.contains(X86RegisterSet::KERNEL_GS_BASE));
    // No CS.L, but the 64-bit NT_PRSTATUS says long mode.
    assert_eq!(cpu.arch_hint(), X86ArchHint::X86_64La57);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random byte and word mutations of a valid core never panic, and whatever parses
    /// maps only bytes that exist.
    #[test]
    fn mutated_cores_never_panic(
        class64 in any::<bool>(),
        bytes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        words in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 0..4),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut core = if class64 { testdata::qemu_core() } else { testdata::qemu_core32() }.build();
        for (at, v) in bytes {
            let i = at.index(core.len());
            core[i] = v;
        }
        for (at, v) in words {
            let i = at.index(core.len() - 8);
            core[i..i + 8].copy_from_slice(&v.to_le_bytes());
        }
        if do_cut {
            core.truncate(cut.index(core.len()));
        }
        if let Ok(parsed) = parse(&core) {
            for r in parsed.map.ranges() {
                prop_assert!(r.backing + r.size <= core.len() as umem);
            }
            for cpu in &parsed.cpus {
                let _ = (cpu.arch_hint(), cpu.page_table_root());
            }
        }
    }
}
