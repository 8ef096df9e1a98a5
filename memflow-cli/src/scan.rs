//! `scan pattern` and `scan string`, and the scanner under them and under value scans: a byte
//! pattern with wildcards, searched chunk by chunk through the mapped ranges of an address
//! space with `memchr::memmem` on its longest run of fixed bytes.

use std::ops::Range;

use indicatif::ProgressBar;
use memchr::memmem::Finder;
use memflow_core::error::ErrorOrigin;
use memflow_core::mem::alloc::zeroed_vec;
use memflow_core::mem::{MemMapping, PhysicalMemory};
use memflow_core::os::{ModuleInfo, Os, Process};
use memflow_core::plugins::ChainInstance;
use serde::Serialize;

use crate::cli::Region;
use crate::memory::read_readable;
use crate::output::{hex, Output, Row};
use crate::target::{Memory, SpaceKind, Target};
use crate::Failure;

/// How many bytes the scanner reads at once.
pub const CHUNK: usize = 1 << 20;

/// The longest pattern (the scanner keeps `len - 1` bytes between chunks).
pub const MAX_PATTERN: usize = 4096;

/// A byte pattern; some bytes may be wildcards.
pub struct Pattern {
    bytes: Vec<u8>,
    fixed: Vec<bool>,
    /// The longest run of fixed bytes: what memmem looks for.
    anchor: Range<usize>,
    finder: Finder<'static>,
}

impl Pattern {
    /// Parses `48 8b ?? ?? 90`: hexadecimal bytes separated by spaces, `??` for any byte.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut bytes = Vec::new();
        let mut fixed = Vec::new();
        for token in text.split_whitespace() {
            if token == "??" || token == "?" {
                bytes.push(0);
                fixed.push(false);
            } else {
                let byte = u8::from_str_radix(token, 16)
                    .ok()
                    .filter(|_| token.len() == 2)
                    .ok_or_else(|| format!("`{token}` in the pattern is neither a hexadecimal byte nor `??`"))?;
                bytes.push(byte);
                fixed.push(true);
            }
        }
        Pattern::new(bytes, fixed)
    }

    /// A pattern of exactly `bytes`.
    pub fn literal(bytes: &[u8]) -> Result<Pattern, String> {
        Pattern::new(bytes.to_vec(), vec![true; bytes.len()])
    }

    fn new(bytes: Vec<u8>, fixed: Vec<bool>) -> Result<Pattern, String> {
        if bytes.len() > MAX_PATTERN {
            return Err(format!("the pattern has {} bytes; at most {MAX_PATTERN} are supported", bytes.len()));
        }
        let mut anchor = 0..0;
        let mut start = 0;
        for (i, &f) in fixed.iter().enumerate() {
            if !f {
                start = i + 1;
            } else if i + 1 - start > anchor.len() {
                anchor = start..i + 1;
            }
        }
        if anchor.is_empty() {
            return Err("the pattern needs at least one fixed byte".into());
        }
        let finder = Finder::new(&bytes[anchor.clone()]).into_owned();
        Ok(Pattern { bytes, fixed, anchor, finder })
    }

    /// The pattern's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the pattern is empty (never: a pattern has a fixed byte).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Calls `found` with the offset of every match in `haystack`, in order, until it returns
    /// `false`; returns `false` if it stopped.
    pub fn find(&self, haystack: &[u8], mut found: impl FnMut(usize) -> bool) -> bool {
        for at in self.finder.find_iter(haystack) {
            let Some(start) = at.checked_sub(self.anchor.start) else { continue };
            let Some(candidate) = haystack.get(start..start + self.bytes.len()) else { continue };
            let matches = candidate.iter().zip(&self.bytes).zip(&self.fixed).all(|((c, b), f)| !f || c == b);
            if matches && !found(start) {
                return false;
            }
        }
        true
    }
}

/// A range of an address space to scan: `(first address, length)`.
pub type ScanRange = (u64, u64);

/// Scans `ranges` of `mem` for `pattern` and calls `hit` with the address of each match whose
/// address is a multiple of `align`, in order, until it returns `false`. Unreadable pages
/// are skipped (a match never spans one); `progress` advances by the bytes scanned.
pub fn scan_ranges(
    mem: &mut dyn Memory,
    ranges: &[ScanRange],
    pattern: &Pattern,
    align: u64,
    progress: &ProgressBar,
    mut hit: impl FnMut(u64) -> bool,
) -> Result<(), Failure> {
    let keep = pattern.len() - 1;
    let mut buf: Vec<u8> = zeroed_vec(CHUNK + keep, ErrorOrigin::Other, "the scan buffer")?;
    for &(base, size) in ranges {
        // The bytes at the front of `buf` carried over from the previous chunk, which ends
        // right before this one.
        let mut carry = 0;
        let mut offset = 0u64;
        while offset < size {
            let n = (size - offset).min(CHUNK as u64) as usize;
            let address = base.wrapping_add(offset);
            let runs = read_readable(mem, address, &mut buf[carry..carry + n])?;
            let front = address.wrapping_sub(carry as u64);
            for run in &runs {
                // The first run continues the carried bytes if it starts the chunk.
                let start = if run.start == 0 { 0 } else { carry + run.start };
                let window = &buf[start..carry + run.end];
                let window_address = front.wrapping_add(start as u64);
                let going = pattern.find(window, |at| {
                    let found = window_address.wrapping_add(at as u64);
                    found % align != 0 || hit(found)
                });
                if !going {
                    return Ok(());
                }
            }
            carry = match runs.last() {
                Some(run) if run.end == n => {
                    let readable = if run.start == 0 { carry + n } else { run.len() };
                    let kept = keep.min(readable);
                    buf.copy_within(carry + n - kept..carry + n, 0);
                    kept
                }
                _ => 0,
            };
            progress.inc(n as u64);
            offset += n as u64;
        }
    }
    Ok(())
}

/// What a scan covers: the address space, its ranges, and the modules that name its
/// addresses.
pub struct Scope {
    /// The address space.
    pub space: SpaceKind,
    /// The process, for process scans: `(pid, name)`.
    pub process: Option<(u32, String)>,
    /// The ranges to scan.
    pub ranges: Vec<ScanRange>,
    /// Named ranges (modules) that hits are reported against, sorted by base.
    pub modules: Vec<(u64, u64, String)>,
}

impl Scope {
    /// The scope of `region` in `target`.
    pub fn of(target: &mut Target, region: &Region) -> Result<Scope, Failure> {
        if let Some(selector) = &region.pid {
            let info = target.process_info(selector)?;
            let (pid, name) = (info.pid, info.name.to_string());
            let mut proc =
                target.os()?.process_by_info(info).map_err(|e| Failure::about(format!("process {pid}"), e))?;
            let ranges = proc.mapped_mem(-1).map_err(|e| Failure::about(format!("mappings of process {pid}"), e))?;
            let ranges = ranges.iter().map(|r| (r.base.to_umem() as u64, r.size as u64)).collect();
            // Without a module list (some layers), hits are still reported, without a module.
            let modules = proc.module_list().unwrap_or_default();
            return Ok(Scope {
                space: SpaceKind::Process(pid.to_string()),
                process: Some((pid, name)),
                ranges,
                modules: named(&modules),
            });
        }
        if region.kernel {
            let os = target.os()?;
            let info = *os.info();
            if info.base.is_null() {
                return Err(Failure::usage("the OS layer has no kernel image to scan"));
            }
            let kmods = os.module_list().map_err(|e| Failure::about("kernel modules", e))?;
            let mut modules = named(&kmods);
            modules.push((info.base.to_umem() as u64, info.size as u64, "kernel".into()));
            modules.sort();
            let ranges = modules.iter().map(|&(base, size, _)| (base, size)).collect();
            return Ok(Scope { space: SpaceKind::Kernel, process: None, ranges, modules });
        }
        let ranges = physical_ranges(target)?;
        Ok(Scope { space: SpaceKind::Physical, process: None, ranges, modules: vec![] })
    }

    /// The module `address` lies in and the offset into it.
    pub fn locate(&self, address: u64) -> Option<(&str, u64)> {
        let i = self.modules.partition_point(|m| m.0 <= address).checked_sub(1)?;
        let (base, size, name) = &self.modules[i];
        (address - base < *size).then(|| (name.as_str(), address - base))
    }

    /// How many bytes the ranges cover.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.1).sum()
    }
}

fn named(modules: &[ModuleInfo]) -> Vec<(u64, u64, String)> {
    let mut named: Vec<_> =
        modules.iter().map(|m| (m.base.to_umem() as u64, m.size as u64, m.name.to_string())).collect();
    named.sort();
    named
}

/// The backed ranges of the chain's physical memory.
fn physical_ranges(target: &mut Target) -> Result<Vec<ScanRange>, Failure> {
    let chain = target.chain().to_string();
    let mut map: Vec<MemMapping> = Vec::new();
    let found = match target.instance() {
        ChainInstance::Connector(conn) => conn.mem_map_callback((&mut map).into()),
        ChainInstance::Os(os) => os
            .as_ref_impl_physicalmemory()
            .ok_or_else(|| Failure::usage(format!("chain `{chain}` has no physical memory")))?
            .mem_map_callback((&mut map).into()),
    };
    found.map_err(|e| Failure::about("the physical memory map", e))?;
    Ok(map.iter().map(|m| (m.base.to_umem() as u64, m.size as u64)).collect())
}

/// One match.
#[derive(Serialize)]
pub struct Hit {
    /// Its address.
    pub address: String,
    /// The process, for process scans.
    pub pid: Option<u32>,
    /// The process's name, for process scans.
    pub process: Option<String>,
    /// The module the address lies in, if any.
    pub module: Option<String>,
    /// The offset into that module.
    pub offset: Option<String>,
}

impl Hit {
    /// The hit at `address` in `scope`.
    pub fn at(scope: &Scope, address: u64) -> Hit {
        let located = scope.locate(address);
        Hit {
            address: hex(address),
            pid: scope.process.as_ref().map(|p| p.0),
            process: scope.process.as_ref().map(|p| p.1.clone()),
            module: located.map(|(name, _)| name.to_string()),
            offset: located.map(|(_, offset)| hex(offset)),
        }
    }
}

impl Row for Hit {
    const HEADERS: &'static [&'static str] = &["ADDRESS", "PID", "PROCESS", "MODULE", "OFFSET"];
    fn cells(&self) -> Vec<String> {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        vec![
            self.address.clone(),
            self.pid.map_or("-".into(), |p| p.to_string()),
            or_dash(&self.process),
            or_dash(&self.module),
            or_dash(&self.offset),
        ]
    }
}

/// Scans `region` of `chain` for `pattern` and prints at most `limit` hits.
fn run(chain: &str, pattern: &Pattern, region: &Region, limit: usize, out: &Output) -> Result<(), Failure> {
    let mut target = Target::open(chain)?;
    let scope = Scope::of(&mut target, region)?;
    let progress = out.progress(scope.bytes(), "scanning");
    let mut hits = Vec::new();
    target.with_space(&scope.space, |mem| {
        scan_ranges(mem, &scope.ranges, pattern, 1, &progress, |address| {
            hits.push(Hit::at(&scope, address));
            hits.len() < limit
        })
    })?;
    progress.finish_and_clear();
    if hits.len() == limit {
        log::warn!("stopped at {limit} matches (--limit)");
    }
    out.list(&hits)
}

/// Runs `scan pattern PATTERN`.
pub fn pattern_command(chain: &str, pattern: &str, region: &Region, limit: usize, out: &Output) -> Result<(), Failure> {
    let pattern = Pattern::parse(pattern).map_err(Failure::usage)?;
    run(chain, &pattern, region, limit, out)
}

/// Runs `scan string TEXT`.
pub fn string_command(
    chain: &str,
    text: &str,
    utf16: bool,
    region: &Region,
    limit: usize,
    out: &Output,
) -> Result<(), Failure> {
    let bytes: Vec<u8> = match utf16 {
        true => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        false => text.as_bytes().to_vec(),
    };
    let pattern = Pattern::literal(&bytes).map_err(Failure::usage)?;
    run(chain, &pattern, region, limit, out)
}
