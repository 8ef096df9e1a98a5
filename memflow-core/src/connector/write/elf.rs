//! ELF64 cores as QEMU lays them out: the ELF header, the program headers (the `PT_NOTE`
//! first, then one `PT_LOAD` per run of saved memory with `p_vaddr` = `p_paddr`), the notes,
//! then the memory.
//!
//! The number of runs is only known at the end (holes split them), so room for the reader's
//! limit of program headers is set aside after the ELF header and filled at the end; what
//! is not used stays a sparse gap that no header points into.

use super::notes::{notes, NoteArea};
use super::output::Output;
use super::{DumpMeta, Plan, Sink, PAGE_SIZE};
use crate::connector::elf::{ELF_MAGIC, MAX_PROGRAM_HEADERS};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u64 = 56;
const ET_CORE: u16 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// `p_flags` of the memory: readable, writable, executable (as QEMU sets them).
const PF_RWX: u32 = 7;

/// One `PT_LOAD`: `size` bytes at guest `paddr`, at file `offset`.
#[derive(Copy, Clone)]
struct Load {
    paddr: u64,
    offset: u64,
    size: u64,
}

pub(super) struct ElfSink {
    machine: u16,
    notes: NoteArea,
    notes_at: u64,
    loads: Vec<Load>,
    /// Where the next memory bytes go.
    cursor: u64,
}

impl ElfSink {
    pub(super) fn new(meta: &DumpMeta) -> Self {
        let notes_at = EHDR_SIZE + MAX_PROGRAM_HEADERS * PHDR_SIZE;
        let notes = notes(meta);
        let cursor = (notes_at + notes.bytes.len() as u64).next_multiple_of(PAGE_SIZE);
        ElfSink { machine: meta.arch.elf_machine(), notes, notes_at, loads: Vec::new(), cursor }
    }

    fn header(&self, phnum: u16) -> [u8; EHDR_SIZE as usize] {
        let mut h = [0u8; EHDR_SIZE as usize];
        h[..4].copy_from_slice(&ELF_MAGIC);
        // ELFCLASS64, little endian, EV_CURRENT, System V ABI.
        h[4..8].copy_from_slice(&[2, 1, 1, 0]);
        h[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
        h[18..20].copy_from_slice(&self.machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[32..40].copy_from_slice(&EHDR_SIZE.to_le_bytes()); // e_phoff
        h[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        h[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        h[56..58].copy_from_slice(&phnum.to_le_bytes());
        h
    }
}

fn program_header(p_type: u32, flags: u32, offset: u64, paddr: u64, size: u64) -> [u8; PHDR_SIZE as usize] {
    let mut p = [0u8; PHDR_SIZE as usize];
    p[0..4].copy_from_slice(&p_type.to_le_bytes());
    p[4..8].copy_from_slice(&flags.to_le_bytes());
    for (i, v) in [offset, paddr, paddr, size, size].into_iter().enumerate() {
        p[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    p
}

impl Sink for ElfSink {
    fn begin(&mut self, out: &mut Output, _plan: &Plan) -> Result<()> {
        out.write_at(self.notes_at, &self.notes.bytes)
    }

    fn data(&mut self, out: &mut Output, addr: u64, bytes: &[u8]) -> Result<()> {
        let len = bytes.len() as u64;
        match self.loads.last_mut() {
            Some(last) if last.paddr + last.size == addr => last.size += len,
            _ => {
                // One program header is the PT_NOTE.
                if self.loads.len() as u64 + 1 >= MAX_PROGRAM_HEADERS {
                    return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded).with_reason(format_args!(
                        "the memory is split into more runs (by holes and gaps) than the {MAX_PROGRAM_HEADERS} program headers an ELF core may have here; next run at {addr:#x}"
                    )));
                }
                self.loads.push(Load { paddr: addr, offset: self.cursor, size: len });
            }
        }
        out.write_at(self.cursor, bytes)?;
        self.cursor += len;
        Ok(())
    }

    fn finish(&mut self, out: &mut Output, _plan: &Plan) -> Result<()> {
        let mut table = Vec::with_capacity((self.loads.len() + 1) * PHDR_SIZE as usize);
        table.extend_from_slice(&program_header(PT_NOTE, 0, self.notes_at, 0, self.notes.bytes.len() as u64));
        for l in &self.loads {
            table.extend_from_slice(&program_header(PT_LOAD, PF_RWX, l.offset, l.paddr, l.size));
        }
        // Below MAX_PROGRAM_HEADERS (checked as loads were added), so it fits in 16 bits.
        let phnum = (self.loads.len() + 1) as u16;
        out.write_at(EHDR_SIZE, &table)?;
        out.write_at(0, &self.header(phnum))?;
        // An empty source leaves the file short of its notes' padding; make it whole.
        out.set_len(self.cursor)
    }
}
