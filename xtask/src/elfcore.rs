//! The sanity check of a QEMU `dump-guest-memory` ELF core, and what it records in a
//! fixture's `meta.txt`: the `PT_LOAD` ranges, a summary of the notes and, for x86-64, per
//! vCPU, CR0, CR3 and CR4 from the `QEMU` note (QEMU writes no such note for ARM64).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// `e_machine` of x86-64, whose dumps have `QEMU` notes.
const EM_X86_64: u16 = 62;
const NT_PRSTATUS: u32 = 1;
/// `e_phnum` when the real count is in section header 0's `sh_info`.
const PN_XNUM: u16 = 0xffff;
/// Offset of `uint64_t cr[5]` in QEMU's QEMUCPUState (target/i386/arch_dump.c): u32 version,
/// u32 size, 18 u64 registers (GPRs, rip, rflags), 10 segments of 24 bytes.
const QEMU_CPUSTATE_CR_OFFSET: usize = 8 + 18 * 8 + 10 * 24;
/// The largest note segment read (QEMU writes a few KiB per vCPU).
const NOTES_MAX: u64 = 64 << 20;

/// Checks the ELF core `path` (little-endian ELF64 `ET_CORE` of `elf_machine`, at least one
/// `PT_LOAD` inside the file, `CORE`/`NT_PRSTATUS` notes and, for x86-64, `QEMU` notes) and returns its
/// `meta.txt` lines (`key=value`, one per line, with a final newline).
pub fn check(path: &Path, elf_machine: u16) -> Result<String, String> {
    let fail = |what: String| format!("{}: {what}", path.display());
    let io = |e: std::io::Error| fail(e.to_string());
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let header: [u8; 64] = read_at(&mut file, 0).map_err(io)?;
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(fail("not a little-endian ELF64 file".into()));
    }
    let (e_type, e_machine) = (u16_at(&header, 16), u16_at(&header, 18));
    if e_type != 4 || e_machine != elf_machine {
        return Err(fail(format!("expected ET_CORE of machine {elf_machine}, got type={e_type} machine={e_machine}")));
    }
    let phoff = u64_at(&header, 0x20);
    let phentsize = u64::from(u16_at(&header, 0x36));
    let mut phnum = u64::from(u16_at(&header, 0x38));
    if phnum == u64::from(PN_XNUM) {
        let section0: [u8; 64] = read_at(&mut file, u64_at(&header, 0x28)).map_err(io)?;
        phnum = u64::from(u32_at(&section0, 44));
    }

    let mut loads = Vec::new(); // (paddr, memsz, offset, filesz)
    let mut notes = Vec::new();
    for i in 0..phnum {
        let ph: [u8; 56] = read_at(&mut file, phoff + i * phentsize).map_err(io)?;
        let (offset, paddr, filesz, memsz) = (u64_at(&ph, 8), u64_at(&ph, 24), u64_at(&ph, 32), u64_at(&ph, 40));
        match u32_at(&ph, 0) {
            PT_LOAD => loads.push((paddr, memsz, offset, filesz)),
            PT_NOTE if filesz > NOTES_MAX => return Err(fail(format!("a note segment of {filesz} bytes"))),
            PT_NOTE => {
                let mut blob = vec![0u8; filesz as usize];
                file.seek(SeekFrom::Start(offset)).and_then(|_| file.read_exact(&mut blob)).map_err(io)?;
                notes.push(blob);
            }
            _ => {}
        }
    }

    let mut out = format!("elf_file_bytes={size}\nelf_pt_load_count={}\n", loads.len());
    let ranges: Vec<String> = loads
        .iter()
        .map(|&(paddr, memsz, _, _)| format!("{paddr:#x}-{:#x}", paddr.wrapping_add(memsz).wrapping_sub(1)))
        .collect();
    out += &format!("elf_pt_load_paddr_ranges={}\n", ranges.join(","));
    out += &format!("elf_pt_load_bytes={}\n", loads.iter().map(|l| l.3).sum::<u64>());
    if let Some(&(paddr, ..)) = loads.iter().find(|&&(_, _, offset, filesz)| offset.saturating_add(filesz) > size) {
        return Err(fail(format!("PT_LOAD at {paddr:#x} extends past the end of the file")));
    }

    // Note kinds (`name/type`) in order of first appearance, with their counts.
    let mut kinds: Vec<(String, usize)> = Vec::new();
    let mut cpus = 0;
    for blob in &notes {
        let mut pos = 0usize;
        while pos + 12 <= blob.len() {
            let (namesz, descsz, note_type) =
                (u32_at(blob, pos) as usize, u32_at(blob, pos + 4) as usize, u32_at(blob, pos + 8));
            pos += 12;
            let name_bytes = blob.get(pos..pos.saturating_add(namesz).min(blob.len())).unwrap_or_default();
            let name = String::from_utf8_lossy(name_bytes).trim_end_matches('\0').to_owned();
            pos = pos.saturating_add(align4(namesz));
            let desc = blob.get(pos..pos.saturating_add(descsz).min(blob.len())).unwrap_or_default();
            pos = pos.saturating_add(align4(descsz));
            if name == "QEMU" && descsz >= QEMU_CPUSTATE_CR_OFFSET + 40 && desc.len() == descsz {
                let cr = |i: usize| u64_at(desc, QEMU_CPUSTATE_CR_OFFSET + 8 * i);
                out += &format!("cpu{cpus}_cr0={:#x}\ncpu{cpus}_cr3={:#x}\ncpu{cpus}_cr4={:#x}\n", cr(0), cr(3), cr(4));
                // CR4.LA57 (bit 12): the guest really runs 5-level paging.
                out += &format!("cpu{cpus}_cr4_la57={}\n", if cr(4) >> 12 & 1 == 1 { "yes" } else { "no" });
                cpus += 1;
            }
            let kind = format!("{name}/{note_type}");
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, count)) => *count += 1,
                None => kinds.push((kind, 1)),
            }
        }
    }
    let summary: Vec<String> = kinds.iter().map(|(kind, count)| format!("{kind}x{count}")).collect();
    out += &format!("elf_notes={}\n", summary.join(","));
    if loads.is_empty() {
        return Err(fail("no PT_LOAD segments".into()));
    }
    if !kinds.iter().any(|(kind, _)| *kind == format!("CORE/{NT_PRSTATUS}")) || (elf_machine == EM_X86_64 && cpus == 0)
    {
        return Err(fail("missing CORE NT_PRSTATUS or QEMU notes".into()));
    }
    Ok(out)
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn read_at<const N: usize>(file: &mut File, offset: u64) -> std::io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut buf)?;
    Ok(buf)
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default())
}
