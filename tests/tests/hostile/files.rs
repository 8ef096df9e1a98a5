//! Synthetic hostile dump files, built byte by byte: ELF cores and LiME files with memory at
//! absurd addresses, too many CPU notes, absurd header counts, and page tables that map a
//! flood of kallsyms-like digit tokens where the kernel image should be.

/// `"0\0" .. "9\0"`: the ten one-character digit tokens as they stand back to back in a
/// kallsyms token table, the shape the kallsyms search looks for.
pub const DIGIT_TOKENS: &[u8] = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00";

const PAGE: usize = 0x1000;
const ELF_HEADER: usize = 64;
const PHDR: usize = 56;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const NT_PRSTATUS: u32 = 1;
/// The size of an x86-64 `NT_PRSTATUS` note's data.
const PRSTATUS_SIZE: usize = 336;
/// Present and writable: a page-table entry pointing to the next level.
const TABLE: u64 = 0x3;
/// Present, writable, large page (2 MiB in a page directory).
const LARGE: u64 = 0x83;

/// `len` bytes of repeated digit tokens.
pub fn tokens(len: usize) -> Vec<u8> {
    DIGIT_TOKENS.iter().copied().cycle().take(len).collect()
}

/// An x86-64 ELF core (`ET_CORE`): the header, the program headers (a `PT_NOTE` first when
/// there are notes), the notes, then the bytes of each `PT_LOAD` (`(p_paddr, bytes)`).
/// `phnum` overrides `e_phnum` (absurd counts) when given.
pub fn elf_core(loads: &[(u64, Vec<u8>)], notes: &[u8], phnum: Option<u16>) -> Vec<u8> {
    let headers = loads.len() + usize::from(!notes.is_empty());
    let mut data_at = ELF_HEADER + headers * PHDR;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
    out.extend_from_slice(&(ELF_HEADER as u64).to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for v in [ELF_HEADER as u16, PHDR as u16, phnum.unwrap_or(headers as u16), 64, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut phdr = |out: &mut Vec<u8>, kind: u32, paddr: u64, len: usize| {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&6u32.to_le_bytes()); // RW
        for v in [data_at as u64, 0, paddr, len as u64, len as u64, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        data_at += len;
    };
    if !notes.is_empty() {
        phdr(&mut out, PT_NOTE, 0, notes.len());
    }
    for (paddr, bytes) in loads {
        phdr(&mut out, PT_LOAD, *paddr, bytes.len());
    }
    out.extend_from_slice(notes);
    for (_, bytes) in loads {
        out.extend_from_slice(bytes);
    }
    out
}

/// `count` zeroed x86-64 `NT_PRSTATUS` notes (one per claimed CPU).
pub fn cpu_notes(count: usize) -> Vec<u8> {
    let mut one = Vec::new();
    for v in [5u32, PRSTATUS_SIZE as u32, NT_PRSTATUS] {
        one.extend_from_slice(&v.to_le_bytes());
    }
    one.extend_from_slice(b"CORE\0\0\0\0");
    one.resize(one.len() + PRSTATUS_SIZE, 0);
    one.repeat(count)
}

/// A LiME file: one range per `(first address, bytes)`.
pub fn lime(ranges: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (start, bytes) in ranges {
        out.extend_from_slice(&0x4C69_4D45u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&(start + bytes.len() as u64 - 1).to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(bytes);
    }
    out
}

/// One zeroed page at each address in `at`.
pub fn pages_at(at: impl IntoIterator<Item = u64>) -> Vec<(u64, Vec<u8>)> {
    at.into_iter().map(|a| (a, vec![0u8; PAGE])).collect()
}

/// Physical memory (4 MiB from 0) whose page tables look like a kernel's: a top-level table
/// at 0x1000 with two kernel-half entries, and under `__START_KERNEL_map`
/// (`0xffffffff80000000`) `mib / 2` large pages that all map the same 2 MiB of digit tokens
/// at 0x200000. No kallsyms table is there, so the search must go through all of it.
pub fn token_flood_memory(mib: usize) -> Vec<u8> {
    let mut mem = vec![0u8; 4 << 20];
    let mut entry = |table: usize, index: usize, value: u64| {
        let at = table + index * 8;
        mem[at..at + 8].copy_from_slice(&value.to_le_bytes());
    };
    entry(0x1000, 511, 0x2000 | TABLE);
    entry(0x1000, 256, 0x2000 | TABLE);
    entry(0x2000, 510, 0x3000 | TABLE);
    for i in 0..mib / 2 {
        entry(0x3000, i, 0x20_0000 | LARGE);
    }
    mem[0x20_0000..0x40_0000].copy_from_slice(&tokens(2 << 20));
    mem
}
