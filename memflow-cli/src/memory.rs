//! `read`, `write` and `vtop`.

use std::ops::Range;

use memflow_core::arch::Entry;
use memflow_core::error::ErrorOrigin;
use memflow_core::mem::alloc::zeroed_vec;
use memflow_core::prelude::CpuState;
use memflow_core::translate::reference::{walk_levels, LevelEntry};
use memflow_core::types::Address;
use serde::Serialize;

use crate::cli::{parse_hex_bytes, Space};
use crate::inspect::{access, arch_name};
use crate::output::{hex, write_stdout, Output};
use crate::target::{Memory, SpaceKind, Target};
use crate::Failure;

/// The most bytes `read` reads at once.
pub const MAX_READ: u64 = 64 << 20;

/// The unit re-read alone when a larger read fails in part.
pub const PAGE: usize = 4096;

/// Reads `out.len()` bytes at `address` into `out` and returns the byte ranges of `out` that
/// were readable, in order. Where the whole read fails in part, each 4 KiB page is read
/// alone; unreadable bytes are zero.
pub fn read_readable(mem: &mut dyn Memory, address: u64, out: &mut [u8]) -> Result<Vec<Range<usize>>, Failure> {
    if mem.read(address, out)? {
        let whole: Range<usize> = 0..out.len();
        return Ok(Vec::from([whole]));
    }
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    while start < out.len() {
        // Pages of the address space, not of the buffer: the first one may be short.
        let at = address.wrapping_add(start as u64);
        let end = (start + PAGE - (at % PAGE as u64) as usize).min(out.len());
        if mem.read(at, &mut out[start..end])? {
            match runs.last_mut() {
                Some(run) if run.end == start => run.end = end,
                _ => runs.push(start..end),
            }
        } else {
            out[start..end].fill(0);
        }
        start = end;
    }
    Ok(runs)
}

/// Where `read` and `write` go.
fn space_kind(space: &Space) -> SpaceKind {
    match (&space.pid, space.phys) {
        (Some(pid), _) => SpaceKind::Process(pid.clone()),
        (None, true) => SpaceKind::Physical,
        (None, false) => SpaceKind::Kernel,
    }
}

/// `read --json`.
#[derive(Serialize)]
pub struct ReadResult {
    /// The first address.
    pub address: String,
    /// The bytes as hexadecimal pairs (unreadable bytes as `00`).
    pub data: String,
    /// The readable parts, as offsets from `address`.
    pub readable: Vec<ReadableRun>,
}

/// A readable part of a read.
#[derive(Serialize)]
pub struct ReadableRun {
    /// Offset from the read's address.
    pub offset: usize,
    /// Length in bytes.
    pub length: usize,
}

/// Runs `read ADDRESS LENGTH`.
pub fn read(chain: &str, address: u64, length: u64, space: &Space, raw: bool, out: &Output) -> Result<(), Failure> {
    if length > MAX_READ {
        return Err(Failure::usage(format!("{length} bytes is more than `read` reads at once ({MAX_READ})")));
    }
    let mut buf: Vec<u8> = zeroed_vec(length as usize, ErrorOrigin::Other, "the bytes to read")?;
    let runs = Target::open(chain)?.with_space(&space_kind(space), |mem| read_readable(mem, address, &mut buf))?;
    if runs.is_empty() && length > 0 {
        return Err(Failure::error(format!("{}: no byte of {length} is readable", hex(address))));
    }
    if raw {
        return write_stdout(&buf);
    }
    if out.json() {
        let data = buf.iter().map(|b| format!("{b:02x}")).collect();
        let readable = runs.iter().map(|r| ReadableRun { offset: r.start, length: r.len() }).collect();
        return out.document(&ReadResult { address: hex(address), data, readable });
    }
    crate::output::print(&hexdump(address, &buf, &runs))
}

/// 16 bytes a line: address, bytes (`??` where unreadable), printable ASCII.
pub fn hexdump(address: u64, bytes: &[u8], readable: &[Range<usize>]) -> String {
    // The runs are sorted and disjoint: the first that ends after `i` is the only candidate.
    let is_readable = |i: usize| readable.get(readable.partition_point(|r| r.end <= i)).is_some_and(|r| r.contains(&i));
    let mut text = String::new();
    for (line, chunk) in bytes.chunks(16).enumerate() {
        let offset = line * 16;
        text.push_str(&format!("{:016x}  ", address.wrapping_add(offset as u64)));
        for i in 0..16 {
            match chunk.get(i) {
                Some(b) if is_readable(offset + i) => text.push_str(&format!("{b:02x} ")),
                Some(_) => text.push_str("?? "),
                None => text.push_str("   "),
            }
            if i == 7 {
                text.push(' ');
            }
        }
        text.push(' ');
        for (i, b) in chunk.iter().enumerate() {
            let shown = is_readable(offset + i) && b.is_ascii_graphic() || *b == b' ';
            text.push(if shown { char::from(*b) } else { '.' });
        }
        text.push('\n');
    }
    text
}

/// Runs `write ADDRESS DATA`.
pub fn write(chain: &str, address: u64, data: &str, space: &Space, out: &Output) -> Result<(), Failure> {
    let bytes = parse_hex_bytes(data).map_err(Failure::usage)?;
    Target::open(chain)?.with_space(&space_kind(space), |mem| {
        mem.write(address, &bytes)
            .map_err(|e| Failure::about(format!("writing {} bytes at {}", bytes.len(), hex(address)), e))
    })?;
    if out.json() {
        return out.document(&serde_json::json!({ "address": hex(address), "written": bytes.len() }));
    }
    crate::output::print(&format!("wrote {} bytes at {}\n", bytes.len(), hex(address)))
}

/// `vtop`'s result.
#[derive(Serialize)]
pub struct Translation {
    /// The virtual address.
    pub virtual_address: String,
    /// The paging mode walked.
    pub arch: &'static str,
    /// The root register the walk started from (CR3 and the like).
    pub root: String,
    /// Each level's entry, top level first.
    pub levels: Vec<LevelRow>,
    /// The physical address, `null` if the address does not translate.
    pub physical_address: Option<String>,
    /// The page's size in bytes, `null` if the address does not translate.
    pub page_size: Option<u64>,
    /// `rwxu` access of the page, `null` if the address does not translate.
    pub access: Option<String>,
    /// Why it does not translate, `null` if it does.
    pub error: Option<String>,
}

/// One level's entry of a walk.
#[derive(Serialize)]
pub struct LevelRow {
    /// The level (0 is the top table).
    pub level: usize,
    /// The physical address of the table.
    pub table: String,
    /// The physical address of the entry.
    pub entry_address: String,
    /// The entry's value.
    pub entry: String,
    /// `table` (points to the next table), `page` (maps the page) or `invalid`.
    pub kind: &'static str,
    /// The next table's or the page's physical address, `null` for `invalid`.
    pub next: Option<String>,
}

impl From<&LevelEntry> for LevelRow {
    fn from(e: &LevelEntry) -> Self {
        let (kind, next) = match e.decoded {
            Entry::Invalid => ("invalid", None),
            Entry::Table { next, .. } => ("table", Some(hex(next.to_umem() as u64))),
            Entry::Page { base, .. } => ("page", Some(hex(base.to_umem() as u64))),
        };
        LevelRow {
            level: e.level,
            table: hex(e.table.to_umem() as u64),
            entry_address: hex(e.entry_address.to_umem() as u64),
            entry: format!("{:#018x}", e.raw),
            kind,
            next,
        }
    }
}

/// Runs `vtop ADDRESS [--pid PROCESS]`: walks the tables with the reference walker, which
/// reports every entry it reads.
pub fn vtop(chain: &str, address: u64, pid: Option<&str>, out: &Output) -> Result<(), Failure> {
    let mut target = Target::open(chain)?;
    let (arch, roots) = match pid {
        Some(selector) => {
            let info = target.process_info(selector)?;
            // Kernel threads have no tables of their own: they run on the kernel's.
            match info.table_root.is_null() {
                false => (info.sys_arch, vec![info.table_root, info.table_root_2]),
                true => kernel_paging(&mut target)?,
            }
        }
        None => kernel_paging(&mut target)?,
    };
    let described = arch.describe()?;
    let chain_text = target.chain().to_string();
    let phys = target
        .os()?
        .as_mut_impl_physicalmemory()
        .ok_or_else(|| Failure::usage(format!("chain `{chain_text}` has no physical memory to walk page tables in")))?;
    let mut levels = Vec::new();
    let walked = walk_levels(phys, &described, &roots, Address::from(address), |e| levels.push(LevelRow::from(&e)));
    let result = Translation {
        virtual_address: hex(address),
        arch: arch_name(arch),
        root: hex(roots.first().map_or(0, |r| r.to_umem() as u64)),
        levels,
        physical_address: walked.as_ref().ok().map(|pa| hex(pa.address.to_umem() as u64)),
        page_size: walked.as_ref().ok().and_then(|pa| pa.page_size()).map(|s| s as u64),
        access: walked.as_ref().ok().map(|pa| access(pa.page_type)),
        error: walked.as_ref().err().map(|e| e.to_string()),
    };
    if out.json() {
        return out.document(&result);
    }
    out.table(
        &["LEVEL", "TABLE", "ENTRY ADDRESS", "ENTRY", "KIND", "NEXT"],
        result.levels.iter().map(|l| {
            vec![
                l.level.to_string(),
                l.table.clone(),
                l.entry_address.clone(),
                l.entry.clone(),
                l.kind.to_string(),
                l.next.clone().unwrap_or_else(|| "-".into()),
            ]
        }),
    )?;
    match (&result.physical_address, &result.error) {
        (Some(pa), _) => crate::output::print(&format!(
            "{} -> {pa} ({} page of {} bytes, root {})\n",
            result.virtual_address,
            result.access.as_deref().unwrap_or("?"),
            result.page_size.unwrap_or(0),
            result.root
        )),
        (None, error) => Err(Failure::error(format!(
            "{} does not translate: {}",
            result.virtual_address,
            error.as_deref().unwrap_or("unknown")
        ))),
    }
}

/// The kernel's paging mode and table root: CPU 0's, from the connector's CPU state.
fn kernel_paging(target: &mut Target) -> Result<(memflow_core::arch::ArchitectureIdent, Vec<Address>), Failure> {
    let chain = target.chain().to_string();
    let os = target.os()?;
    let cpu = os.as_ref_impl_cpustate().filter(|c| c.cpu_count() > 0).ok_or_else(|| {
        Failure::usage(format!("chain `{chain}` has no CPU state to find the kernel's page tables: use --pid"))
    })?;
    let regs = cpu.x86_registers(0)?;
    let (arch, root) =
        regs.paging().ok_or_else(|| Failure::error("CPU 0 does not page (no long-mode paging in its registers)"))?;
    Ok((arch, vec![root]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hexdump_marks_unreadable_bytes() {
        let bytes: Vec<u8> = (0..20).map(|i| b'A' + i).collect();
        let text = hexdump(0x1000, &bytes, &[0..2, 17..20]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("0000000000001000  41 42 ?? ?? "), "{}", lines[0]);
        assert!(lines[0].ends_with(" AB.............."), "{}", lines[0]);
        assert!(lines[1].starts_with("0000000000001010  ?? 52 53 54 "), "{}", lines[1]);
        assert!(lines[1].ends_with(" .RST"), "{}", lines[1]);
    }
}
