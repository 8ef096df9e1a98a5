//! `scan pattern` and `scan string`, and the scanner under them and under value scans: a byte
//! pattern with wildcards, searched chunk by chunk through the mapped ranges of an address
//! space with `memchr::memmem` on its longest run of fixed bytes.

use std::ops::Range;
use std::sync::mpsc::{self, Receiver, SyncSender};

use indicatif::ProgressBar;
use memchr::memmem::Finder;
use memflow_core::error::{ErrorKind, ErrorOrigin};
use memflow_core::mem::alloc::zeroed_vec;
use memflow_core::mem::{MemMapping, PhysicalMemory};
use memflow_core::os::{MemoryRange, ModuleInfo, Os, Process, ProcessInfo};
use memflow_core::plugins::ChainInstance;
use memflow_core::prelude::{OsInstanceArcBox, ProcessInstanceArcBox};
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::Address;
use serde::Serialize;

use crate::cli::Region;
use crate::memory::read_readable;
use crate::output::{hex, Output, Row};
use crate::target::{Memory, SpaceKind, Target};
use crate::Failure;

/// How many bytes the scanner reads at once: small enough that the bytes are still in the
/// CPU's cache when they are searched (256 KiB measured best, see BENCHMARKS.md).
pub const CHUNK: usize = 256 << 10;

/// The longest pattern (the scanner keeps `len - 1` bytes between chunks).
pub const MAX_PATTERN: usize = 4096;

/// The largest kernel image or module a kernel scan covers (real ones are tens of MiB at most).
pub const MAX_KERNEL_MODULE: u64 = 1 << 30;

/// A byte pattern; some bytes may be wildcards.
#[derive(Debug)]
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

/// How many threads read a scan's memory (each on its own handle of the address space, see
/// [`Target::with_spaces`]); the caller's thread searches what they read, meanwhile.
pub const READERS: usize = 2;

/// Consecutive chunks a reader takes at a time (2 MiB, one x86 page table's reach: the readers
/// do not contend for the lock of the same page table in the kernel).
const STRIPE: usize = 8;

/// Buffers each reader fills ahead of the search, a stripe's worth (so that one reader goes on
/// while the chunks of the other's stripe are taken): bounds a scan's memory to
/// `READERS * BUFFERS` chunks.
const BUFFERS: usize = STRIPE;

/// Scans `ranges` of `mems` (handles of one address space, see [`scan_windows`]) for
/// `pattern` and calls `hit` with the address of each match whose address is a multiple of
/// `align`, in order, until it returns `false`. Unreadable pages are skipped (a match never
/// spans one); `progress` is called with the bytes of each chunk scanned, and stops the scan
/// by returning `false`.
pub fn scan_ranges(
    mems: &mut [&mut (dyn Memory + Send)],
    ranges: &[ScanRange],
    pattern: &Pattern,
    align: u64,
    progress: &mut dyn FnMut(u64) -> bool,
    mut hit: impl FnMut(u64) -> bool,
) -> Result<(), Failure> {
    let search = |address: u64, window: &[u8], found: &mut Vec<u64>| {
        pattern.find(window, |at| {
            let at = address.wrapping_add(at as u64);
            if at % align == 0 {
                found.push(at);
            }
            true
        });
    };
    let take = |_: u64, _: &[u8], found: Vec<u64>| found.into_iter().all(&mut hit);
    scan_windows(mems, ranges, pattern.len() - 1, progress, search, take)
}

/// A piece of a scan: `len` bytes at `address`, read together with the `lead` bytes before
/// it (the end of the chunk before, in the same range).
#[derive(Clone, Copy)]
struct Chunk {
    address: u64,
    lead: usize,
    len: usize,
}

/// The chunks of `ranges`, in order, each led by up to `overlap` bytes of the one before.
fn chunks(ranges: &[ScanRange], overlap: usize) -> impl Iterator<Item = Chunk> + '_ {
    ranges.iter().flat_map(move |&(base, size)| {
        (0..size.div_ceil(CHUNK as u64)).map(move |i| {
            let offset = i * CHUNK as u64;
            Chunk {
                address: base.wrapping_add(offset),
                lead: offset.min(overlap as u64) as usize,
                len: (size - offset).min(CHUNK as u64) as usize,
            }
        })
    })
}

/// A chunk read: its bytes, lead first, in `buf`, the runs of them that were readable and
/// what was found in each run.
struct Filled<T> {
    chunk: Chunk,
    buf: Vec<u8>,
    runs: Vec<(Range<usize>, Vec<T>)>,
}

/// A reader's loop: reads each of `chunks` into a buffer from `spare`, searches its windows
/// and sends it on `filled`, until the chunks, the buffers or the receiver run out, or a read
/// fails.
fn read_chunks<T>(
    mem: &mut dyn Memory,
    chunks: impl Iterator<Item = Chunk>,
    search: &impl Fn(u64, &[u8], &mut Vec<T>),
    spare: Receiver<Vec<u8>>,
    filled: SyncSender<Result<Filled<T>, Failure>>,
) {
    for chunk in chunks {
        let Ok(mut buf) = spare.recv() else { return };
        let front = chunk.address.wrapping_sub(chunk.lead as u64);
        let read = read_readable(mem, front, &mut buf[..chunk.lead + chunk.len]).map(|runs| {
            // Runs that end in the lead were searched with the chunk before.
            let runs = runs.into_iter().filter(|run| run.end > chunk.lead);
            let runs = runs
                .map(|run| {
                    let mut found = Vec::new();
                    search(front.wrapping_add(run.start as u64), &buf[run.clone()], &mut found);
                    (run, found)
                })
                .collect();
            Filled { chunk, buf, runs }
        });
        let failed = read.is_err();
        if filled.send(read).is_err() || failed {
            return;
        }
    }
}

/// Reads `ranges` of an address space chunk by chunk and searches each run of readable bytes
/// (a window): `search(address, window, found)` collects what the window holds, on the
/// reading threads; `take(address, window, found)` is then called with each window and its
/// findings on this thread, in address order, until it returns `false`. `mems` are handles of
/// the address space: each reads (and searches) every `mems.len()`-th stripe of [`STRIPE`]
/// chunks on a thread of its own. Each chunk is read with up to `overlap` bytes before it in the same range, so a match
/// of up to `overlap + 1` bytes that spans two chunks lies whole in one window; a match never
/// spans an unreadable page. `progress` is called with the bytes of each chunk taken, and
/// stops the scan by returning `false`.
pub fn scan_windows<T: Send>(
    mems: &mut [&mut (dyn Memory + Send)],
    ranges: &[ScanRange],
    overlap: usize,
    progress: &mut dyn FnMut(u64) -> bool,
    search: impl Fn(u64, &[u8], &mut Vec<T>) + Sync,
    mut take: impl FnMut(u64, &[u8], Vec<T>) -> bool,
) -> Result<(), Failure> {
    let readers = mems.len();
    if readers == 0 {
        return Err(Failure::error("a scan needs a handle of the address space"));
    }
    let mut spares = Vec::with_capacity(readers * BUFFERS);
    for _ in 0..readers * BUFFERS {
        spares.push(zeroed_vec::<u8>(CHUNK + overlap, ErrorOrigin::Other, "the scan buffers")?);
    }
    let search = &search;
    std::thread::scope(|scope| {
        // Per reader: where its buffers go back to it, and where they come from filled.
        let mut lanes = Vec::with_capacity(readers);
        for (i, mem) in mems.iter_mut().enumerate() {
            let (give, spare) = mpsc::channel();
            for buf in spares.drain(..BUFFERS) {
                // Cannot fail: the receiver is alive (it is moved into the reader below).
                let _ = give.send(buf);
            }
            let (filled, take) = mpsc::sync_channel(BUFFERS);
            let mine =
                chunks(ranges, overlap).enumerate().filter(move |(n, _)| n / STRIPE % readers == i).map(|(_, c)| c);
            scope.spawn(move || read_chunks(&mut **mem, mine, search, spare, filled));
            lanes.push((give, take));
        }
        // Chunk `n` is reader `n / STRIPE % readers`'s; the first that is missing ends the scan.
        // On an early return, dropping `lanes` ends the readers.
        for n in 0.. {
            let (give, filled) = &lanes[n / STRIPE % readers];
            let Ok(read) = filled.recv() else { return Ok(()) };
            let Filled { chunk, buf, runs } = read?;
            let front = chunk.address.wrapping_sub(chunk.lead as u64);
            for (run, found) in runs {
                if !take(front.wrapping_add(run.start as u64), &buf[run], found) {
                    return Ok(());
                }
            }
            // A reader that has read all its chunks has gone: its buffer is not needed.
            let _ = give.send(buf);
            if !progress(chunk.len as u64) {
                return Ok(());
            }
        }
        Ok(())
    })
}

/// Advances `progress` by `bytes`; the scan goes on (see [`scan_ranges`]).
pub fn inc(progress: &ProgressBar, bytes: u64) -> bool {
    progress.inc(bytes);
    true
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
    /// The scopes of `region` in `target`: one per process with `--all-processes`, else one.
    /// Processes that cannot be read (e.g. they exited) are left out with a warning.
    pub fn list(target: &mut Target, region: &Region) -> Result<Vec<Scope>, Failure> {
        if !region.all_processes {
            return Ok(vec![Scope::of(target, region)?]);
        }
        let infos = target.os()?.process_info_list().map_err(|e| Failure::about("the process list", e))?;
        let mut scopes = Vec::with_capacity(infos.len());
        for info in infos {
            let pid = info.pid;
            match Scope::of_process(target, info) {
                Ok(scope) => scopes.push(scope),
                Err(failure) => log::warn!("not scanning process {pid}: {}", failure.message),
            }
        }
        Ok(scopes)
    }

    /// The scope of `region` in `target`, one address space (not `--all-processes`).
    pub fn of(target: &mut Target, region: &Region) -> Result<Scope, Failure> {
        if region.all_processes {
            return Err(Failure::usage("this scan covers one address space: use --pid, --kernel or --phys"));
        }
        if let Some(selector) = &region.pid {
            let info = target.process_info(selector)?;
            return Scope::of_process(target, info);
        }
        if region.kernel {
            let modules = kernel_ranges(target.os()?)?;
            let ranges = modules.iter().map(|&(base, size, _)| (base, size)).collect();
            return Ok(Scope { space: SpaceKind::Kernel, process: None, ranges, modules });
        }
        let ranges = physical_ranges(target)?;
        Ok(Scope { space: SpaceKind::Physical, process: None, ranges, modules: vec![] })
    }

    /// The mapped memory of one process.
    fn of_process(target: &mut Target, info: ProcessInfo) -> Result<Scope, Failure> {
        let (pid, name) = (info.pid, info.name.to_string());
        let mut proc = target.os()?.process_by_info(info).map_err(|e| Failure::about(format!("process {pid}"), e))?;
        let ranges = present_ranges(&mut proc).map_err(|e| Failure::about(format!("mappings of process {pid}"), e))?;
        // Without a module list (some layers), hits are still reported, without a module.
        let modules = proc.module_list().unwrap_or_default();
        Ok(Scope {
            space: SpaceKind::Process(pid.to_string()),
            process: Some((pid, name)),
            ranges,
            modules: named(&modules),
        })
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

/// The kernel image and modules of `os` as `(base, size, name)`, sorted by base: what a
/// kernel scan covers. Modules of implausible size (guest data) are left out.
pub fn kernel_ranges(os: &mut OsInstanceArcBox<'static>) -> Result<Vec<(u64, u64, String)>, Failure> {
    let info = *os.info();
    if info.base.is_null() {
        return Err(Failure::usage("the OS layer has no kernel image to scan"));
    }
    let kmods = os.module_list().map_err(|e| Failure::about("kernel modules", e))?;
    let mut modules = named(&kmods);
    modules.push((info.base.to_umem() as u64, info.size as u64, "kernel".into()));
    modules.sort();
    // Sizes come from guest memory: a corrupt one must not turn into a scan of years.
    modules.retain(|(base, size, name)| {
        let sane = *size <= MAX_KERNEL_MODULE;
        if !sane {
            log::warn!("not scanning kernel module `{name}` at {}: {size} bytes is implausible", hex(*base));
        }
        sane
    });
    Ok(modules)
}

/// The mapped ranges of `proc`; where its layer translates (a guest), only their pages that
/// are present: a mapping's size comes from the guest and may be anything, its present pages
/// are what there is to read.
pub fn present_ranges(proc: &mut ProcessInstanceArcBox<'static>) -> memflow_core::error::Result<Vec<ScanRange>> {
    let mappings = proc.mapped_mem(-1)?;
    let mut ranges = Vec::new();
    for m in &mappings {
        let mut present: Vec<MemoryRange> = Vec::new();
        let end = m.base.checked_add(m.size).unwrap_or(Address::INVALID);
        match proc.virt_page_map_range(0, m.base, end, (&mut present).into()) {
            // Clipped to the mapping: a large page may reach beyond it.
            Ok(()) => ranges.extend(present.iter().filter_map(|r| {
                let lo = r.base.max(m.base);
                let hi = r.base.checked_add(r.size).unwrap_or(Address::INVALID).min(end);
                (lo < hi).then(|| (lo.to_umem() as u64, (hi - lo) as u64))
            })),
            Err(e) if e.kind == ErrorKind::Unsupported => ranges.push((m.base.to_umem() as u64, m.size as u64)),
            Err(e) => return Err(e),
        }
    }
    Ok(ranges)
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
    let hits = scan_each(chain, region, limit, out, |mems, scope, progress, hits| {
        scan_ranges(mems, &scope.ranges, pattern, 1, progress, |address| {
            hits.push(Hit::at(scope, address));
            hits.len() < limit
        })
    })?;
    out.list(&hits)
}

/// Opens `chain` and runs `scan(memories, scope, progress, hits)` on each address space of
/// `region` in turn (one per process with `--all-processes`), with one progress bar over all,
/// until `hits` holds `limit`; returns the hits.
pub fn scan_each<T>(
    chain: &str,
    region: &Region,
    limit: usize,
    out: &Output,
    mut scan: impl FnMut(
        &mut [&mut (dyn Memory + Send)],
        &Scope,
        &mut dyn FnMut(u64) -> bool,
        &mut Vec<T>,
    ) -> Result<(), Failure>,
) -> Result<Vec<T>, Failure> {
    let mut target = Target::open(chain)?;
    let scopes = Scope::list(&mut target, region)?;
    let progress = out.progress(scopes.iter().map(Scope::bytes).sum(), "scanning");
    let mut hits = Vec::new();
    for scope in &scopes {
        target.with_spaces(&scope.space, READERS, |mems| scan(mems, scope, &mut |n| inc(&progress, n), &mut hits))?;
        if hits.len() >= limit {
            log::warn!("stopped at {limit} matches (--limit)");
            break;
        }
    }
    progress.finish_and_clear();
    Ok(hits)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::PAGE;

    /// Memory at `base` whose pages listed in `holes` are unreadable.
    #[derive(Clone)]
    struct Fake {
        base: u64,
        bytes: Vec<u8>,
        holes: Vec<u64>,
    }

    impl Fake {
        fn readable(&self, address: u64) -> bool {
            let offset = address.wrapping_sub(self.base);
            offset < self.bytes.len() as u64 && !self.holes.contains(&(offset / PAGE as u64))
        }
    }

    impl Memory for Fake {
        fn read(&mut self, address: u64, out: &mut [u8]) -> memflow_core::error::Result<bool> {
            let mut all = true;
            for (i, byte) in out.iter_mut().enumerate() {
                let at = address + i as u64;
                *byte = if self.readable(at) { self.bytes[(at - self.base) as usize] } else { 0 };
                all &= self.readable(at);
            }
            Ok(all)
        }

        fn write(&mut self, _: u64, _: &[u8]) -> memflow_core::error::Result<()> {
            unreachable!("scans do not write")
        }
    }

    /// Every match, found the slow way: every offset whose bytes are all readable.
    fn naive(mem: &Fake, pattern: &str, align: u64) -> Vec<u64> {
        let tokens: Vec<Option<u8>> = pattern.split_whitespace().map(|t| u8::from_str_radix(t, 16).ok()).collect();
        (0..mem.bytes.len().saturating_sub(tokens.len() - 1))
            .map(|i| mem.base + i as u64)
            .filter(|at| at % align == 0)
            .filter(|&at| {
                tokens.iter().enumerate().all(|(j, t)| {
                    let a = at + j as u64;
                    mem.readable(a) && t.is_none_or(|b| mem.bytes[(a - mem.base) as usize] == b)
                })
            })
            .collect()
    }

    /// The matches of `pattern` in `mem`, found by one, two and three readers alike.
    fn scan(mem: &mut Fake, pattern: &str, align: u64) -> Vec<u64> {
        let range = (mem.base, mem.bytes.len() as u64);
        let pattern = Pattern::parse(pattern).unwrap();
        let mut found = Vec::new();
        for readers in 1..=3 {
            let mut clones = vec![mem.clone(); readers];
            let mut mems: Vec<&mut (dyn Memory + Send)> = clones.iter_mut().map(|m| m as _).collect();
            let mut hits = Vec::new();
            scan_ranges(&mut mems, &[range], &pattern, align, &mut |_| true, |a| {
                hits.push(a);
                true
            })
            .unwrap();
            found.push(hits);
        }
        assert!(found.windows(2).all(|w| w[0] == w[1]), "readers disagree");
        found.swap_remove(0)
    }

    #[test]
    fn patterns_parse_with_wildcards_and_refuse_what_cannot_match() {
        let p = Pattern::parse("48 8b ?? ?? 90 91 92").unwrap();
        assert_eq!(p.len(), 7);
        assert_eq!(p.anchor, 4..7);
        let mut found = vec![];
        p.find(&[0, 0x48, 0x8b, 1, 2, 0x90, 0x91, 0x92, 0x48], |at| {
            found.push(at);
            true
        });
        assert_eq!(found, [1]);
        assert!(Pattern::parse("?? ??").unwrap_err().contains("fixed byte"));
        assert!(Pattern::parse("48 zz").unwrap_err().contains("`zz`"));
        assert!(Pattern::parse("480").is_err());
        assert!(Pattern::parse(&"00 ".repeat(MAX_PATTERN + 1)).unwrap_err().contains("at most"));
    }

    #[test]
    fn matches_across_chunks_but_never_across_unreadable_pages() {
        // Three chunks' worth of bytes with the needle planted across every chunk boundary,
        // at page edges, beside holes and inside them.
        let needle = [0xde, 0xad, 0xbe, 0xef, 0x11, 0x22];
        let mut bytes = vec![0u8; 3 * CHUNK + 1000];
        let mut plant = |at: usize| bytes[at..at + needle.len()].copy_from_slice(&needle);
        for at in
            [0, CHUNK - 3, 2 * CHUNK - 1, 3 * CHUNK - 5, 5 * PAGE - 2, 7 * PAGE - 3, 9 * PAGE + 8, 3 * CHUNK + 994]
        {
            plant(at);
        }
        let mut mem = Fake { base: 0x7000_0000, bytes, holes: vec![6, 9, 256 + 3] };
        for (pattern, align) in [("de ad be ef 11 22", 1), ("de ?? be ?? 11 22", 1), ("ad be", 1), ("de ad", 4)] {
            let want = naive(&mem, pattern, align);
            assert!(!want.is_empty());
            assert_eq!(scan(&mut mem, pattern, align), want, "{pattern} aligned to {align}");
        }
        // The needle beside page 6 (a hole) and inside page 9 is not found.
        let found = scan(&mut mem, "de ad be ef 11 22", 1);
        assert!(!found.contains(&(mem.base + 7 * PAGE as u64 - 3)));
        assert!(!found.contains(&(mem.base + 9 * PAGE as u64 + 8)));
        assert!(found.contains(&(mem.base + CHUNK as u64 - 3)));
    }

    #[test]
    fn readers_take_turns_by_stripe_and_hits_come_in_address_order() {
        // Enough chunks for three readers' stripes to come round twice; the needle across
        // every chunk boundary (so across every stripe boundary) and in a hole.
        let chunks = 6 * STRIPE + 3;
        let needle = [0x5a, 0xa5, 0x3c];
        let mut bytes = vec![0u8; chunks * CHUNK];
        for at in (1..chunks).map(|c| c * CHUNK - 1) {
            bytes[at..at + needle.len()].copy_from_slice(&needle);
        }
        let mut mem = Fake { base: 0x1000_0000, bytes, holes: vec![(5 * CHUNK / PAGE) as u64] };
        let want = naive(&mem, "5a a5 3c", 1);
        assert_eq!(want.len(), chunks - 1 - 1, "every boundary but the one in the hole");
        assert_eq!(scan(&mut mem, "5a a5 3c", 1), want);
    }

    #[test]
    fn a_scan_stops_when_told() {
        let mem = Fake { base: 0, bytes: vec![0x90; 3 * CHUNK], holes: vec![] };
        let pattern = Pattern::parse("90 90").unwrap();
        let mut hits = 0;
        scan_ranges(
            &mut [&mut mem.clone(), &mut mem.clone()],
            &[(0, 3 * CHUNK as u64)],
            &pattern,
            1,
            &mut |_| true,
            |_| {
                hits += 1;
                hits < 5
            },
        )
        .unwrap();
        assert_eq!(hits, 5);
    }
}
