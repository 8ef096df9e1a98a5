//! Writes real page tables of any supported architecture into synthetic physical memory and
//! remembers what it mapped.

use core::ops::Range;

use crate::arch::{Architecture, ArchitectureIdent, Entry};
use crate::connector::BufferMemory;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::PhysicalMemory;
use crate::translate::Page;
use crate::types::{umem, Address, PageType, PhysicalAddress};

/// Builds page tables in a [`BufferMemory`] (see the module docs).
///
/// Tables are allocated from a physical range given up front, one granule each (top tables
/// that are smaller still take a granule). Intermediate entries allow every access, so the
/// flags of a page are those of its leaf entry.
#[derive(Debug)]
pub struct PageTableBuilder {
    mem: BufferMemory,
    arch: Architecture,
    /// Top table per root.
    tops: Vec<Address>,
    next_table: Address,
    tables_end: Address,
    truth: Vec<Page>,
}

impl PageTableBuilder {
    /// Empty tables for `arch` in `mem`, taking table memory from `tables`.
    pub fn new(mem: BufferMemory, arch: ArchitectureIdent, tables: Range<Address>) -> Result<Self> {
        let arch = arch.describe()?;
        let mut b = PageTableBuilder {
            mem,
            arch,
            tops: vec![],
            next_table: tables.start.align_up(arch.page_size()),
            tables_end: tables.end,
            truth: vec![],
        };
        for _ in 0..arch.root_count() {
            let top = b.alloc_table()?;
            b.tops.push(top);
        }
        Ok(b)
    }

    /// The architecture.
    pub fn arch(&self) -> &Architecture {
        &self.arch
    }

    /// The root register values (CR3; TTBR0 and TTBR1; satp), one per root.
    pub fn roots(&self) -> Vec<Address> {
        self.tops.iter().map(|&t| self.arch.root_register(t)).collect()
    }

    /// A handle to the memory (clones share the bytes).
    pub fn memory(&self) -> BufferMemory {
        self.mem.clone()
    }

    /// Every page mapped so far, in the order mapped (aliases included).
    pub fn truth(&self) -> &[Page] {
        &self.truth
    }

    /// The translation of `va` according to the truth.
    pub fn expected(&self, va: Address) -> Option<(Address, &Page)> {
        self.truth.iter().find_map(|m| m.translate(va).map(|pa| (pa, m)))
    }

    /// Reads the raw entry at `addr`.
    pub fn read_entry(&mut self, addr: Address) -> Result<u64> {
        let mut bytes = [0u8; 8];
        let n = self.arch.entry_size();
        self.mem.phys_read_raw_into(PhysicalAddress::plain(addr), &mut bytes[..n]).data()?;
        Ok(self.arch.read_entry(&bytes))
    }

    /// Writes the raw entry `raw` at `addr` (for corrupting tables; the truth is not updated).
    pub fn write_entry(&mut self, addr: Address, raw: u64) -> Result<()> {
        let bytes = self.arch.entry_bytes(raw);
        let n = self.arch.entry_size();
        self.mem.phys_write_raw(PhysicalAddress::plain(addr), &bytes[..n]).data()
    }

    /// A zeroed table of one granule.
    fn alloc_table(&mut self) -> Result<Address> {
        let size = self.arch.page_size();
        let table = self.next_table;
        match table.checked_add(size) {
            Some(end) if end <= self.tables_end => self.next_table = end,
            _ => {
                return Err(Error::new(ErrorOrigin::Translation, ErrorKind::OutOfMemory)
                    .with_reason("page-table area exhausted"))
            }
        }
        let zeros = vec![0u8; size as usize];
        self.mem.phys_write_raw(PhysicalAddress::plain(table), &zeros).data()?;
        Ok(table)
    }

    /// The address of the entry for `va` at `level`, creating missing tables above it.
    pub fn entry_slot(&mut self, va: Address, level: usize) -> Result<Address> {
        let root = self.arch.root_index(va).ok_or(Error::new(ErrorOrigin::Translation, ErrorKind::OutOfBounds))?;
        let mut table = self.tops[root];
        let arch = self.arch;
        for (l, lvl) in arch.levels().iter().enumerate().take(level + 1) {
            let slot = table + (lvl.index(va) * self.arch.entry_size()) as umem;
            if l == level {
                return Ok(slot);
            }
            let raw = self.read_entry(slot)?;
            table = match self.arch.decode(l, raw) {
                Entry::Table { next, .. } => next,
                Entry::Invalid if raw == 0 => {
                    let next = self.alloc_table()?;
                    self.write_entry(slot, self.arch.encode_table(l, next))?;
                    next
                }
                Entry::Page { .. } | Entry::Invalid => {
                    return Err(Error::new(ErrorOrigin::Translation, ErrorKind::InvalidArgument))
                }
            };
        }
        Err(Error::new(ErrorOrigin::Translation, ErrorKind::InvalidArgument))
    }

    /// Maps the page of `1 << size_log2` bytes at `va` to `pa` with `flags` (writable, user,
    /// no-exec). Fails if the size is not a page size of the architecture, an address is not
    /// aligned, not canonical or too wide for an entry, or something is already mapped there.
    pub fn map(&mut self, va: Address, pa: Address, size_log2: u8, flags: PageType) -> Result<()> {
        let level = self.arch.levels().iter().position(|l| l.leaf && l.shift == size_log2);
        let level = level.ok_or(Error::new(ErrorOrigin::Translation, ErrorKind::InvalidArgument))?;
        let size = (1 as umem) << size_log2;
        if va.page_offset(size) != 0 || pa.page_offset(size) != 0 {
            return Err(Error::new(ErrorOrigin::Translation, ErrorKind::InvalidArgument));
        }
        let slot = self.entry_slot(va, level)?;
        if self.read_entry(slot)? != 0 {
            return Err(Error::new(ErrorOrigin::Translation, ErrorKind::InvalidArgument));
        }
        let raw = self
            .arch
            .encode_page(level, pa, flags)
            .ok_or(Error::new(ErrorOrigin::Translation, ErrorKind::InvalidArgument))?;
        // The entry must hold the whole physical address.
        let Entry::Page { base, denied } = self.arch.decode(level, raw) else {
            return Err(Error::new(ErrorOrigin::Translation, ErrorKind::Internal));
        };
        if base != pa {
            return Err(Error::new(ErrorOrigin::Translation, ErrorKind::OutOfBounds));
        }
        self.write_entry(slot, raw)?;
        self.truth.push(Page { va, pa, size_log2, page_type: denied.page_type() });
        Ok(())
    }

    /// Makes the entry for `to` at `level` a copy of the one for `from`, so both ranges share
    /// the table (or large page) below it, as a kernel's aliases do. The truth gains the
    /// aliased pages.
    pub fn alias(&mut self, from: Address, to: Address, level: usize) -> Result<()> {
        let src = self.entry_slot(from, level)?;
        let dst = self.entry_slot(to, level)?;
        let raw = self.read_entry(src)?;
        self.write_entry(dst, raw)?;
        let span = (1 as umem) << self.arch.levels()[level].shift;
        let (from, to) = (from.align_down(span), to.align_down(span));
        let aliased: Vec<Page> = self
            .truth
            .iter()
            .filter(|m| m.va >= from && m.va - from < span)
            .map(|m| Page { va: to + (m.va - from), ..*m })
            .collect();
        self.truth.extend(aliased);
        Ok(())
    }
}
