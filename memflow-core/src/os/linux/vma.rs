//! The VMAs (`vm_area_struct`s) of an address space: the mappings of a process.
//!
//! They are collected from the maple tree or the list of the `mm_struct`, read in one batch,
//! and kept only if they belong to that `mm_struct` (`vm_mm`) and span a page-aligned, non-empty
//! range; the result is sorted and free of overlaps. So a tree that still points at a freed VMA
//! of another process, or at garbage, gives fewer mappings, never wrong ones.

use std::collections::HashSet;

use super::layout::{Layout, VmaLinks};
use super::limits::MAX_VMAS;
use super::maple;
use super::record::Record;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::MemoryView;
use crate::os::mappings::Mapping;
use crate::types::{umem, Address};

/// `VM_READ`.
pub const VM_READ: u64 = 0x1;
/// `VM_WRITE`.
pub const VM_WRITE: u64 = 0x2;
/// `VM_EXEC`.
pub const VM_EXEC: u64 = 0x4;

/// One mapping of an address space.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Vma {
    /// First address.
    pub start: Address,
    /// One past the last address.
    pub end: Address,
    /// `vm_flags` (`VM_READ`, `VM_WRITE`, `VM_EXEC`, ...).
    pub flags: u64,
    /// The mapped `struct file`, NULL for anonymous memory.
    pub file: Address,
    /// Offset into the file in pages.
    pub pgoff: u64,
}

impl Vma {
    /// The mapping in the form the shared helpers take, its file identified by `file`.
    pub fn mapping<F>(&self, file: Option<F>) -> Mapping<F> {
        Mapping {
            start: self.start,
            end: self.end,
            read: self.flags & VM_READ != 0,
            write: self.flags & VM_WRITE != 0,
            exec: self.flags & VM_EXEC != 0,
            offset: (self.pgoff as umem) << 12,
            file,
        }
    }
}

/// The VMAs of the `mm_struct` at `mm`, whose fields `mm_rec` holds (see the module docs).
pub fn vmas<V: MemoryView>(mem: &mut V, layout: &Layout, mm: Address, mm_rec: &Record) -> Result<Vec<Vma>> {
    let l = &layout.vma;
    let addrs = match &layout.mm.vmas {
        VmaLinks::Maple { root, nodes } => {
            let mut addrs = Vec::new();
            maple::entries(mem, nodes, mm_rec.u64(*root), |a| addrs.push(a))?;
            addrs
        }
        VmaLinks::List { first, next } => {
            let mut addrs = Vec::new();
            let mut seen = HashSet::new();
            let mut vma = mm_rec.addr(*first);
            while !vma.is_null() {
                if !seen.insert(vma) || addrs.len() >= MAX_VMAS {
                    return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                        .with_reason(format_args!("the VMA list of mm {mm} loops at {vma}")));
                }
                addrs.push(vma);
                vma = Record::read(mem, vma, l.span, "a VMA")?.addr(*next);
            }
            addrs
        }
    };
    if addrs.len() > MAX_VMAS {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
            .with_reason(format_args!("mm {mm} has more than {MAX_VMAS} VMAs")));
    }
    let mut out: Vec<Vma> = Record::read_many(mem, &addrs, l.span)?
        .into_iter()
        .flatten()
        .filter(|r| r.addr(l.mm) == mm)
        .map(|r| Vma {
            start: r.addr(l.start),
            end: r.addr(l.end),
            flags: r.u64(l.flags),
            file: r.addr(l.file),
            pgoff: r.u64(l.pgoff),
        })
        .filter(|v| v.start < v.end && v.start.page_offset(0x1000) == 0 && v.end.page_offset(0x1000) == 0)
        .collect();
    out.sort_by_key(|v| v.start);
    let mut last_end = Address::NULL;
    out.retain(|v| {
        let keep = v.start >= last_end;
        if keep {
            last_end = v.end;
        }
        keep
    });
    Ok(out)
}
