//! Writing dumps: the physical memory of any connector to an ELF core (QEMU's layout), a LiME
//! file, a raw image or a compressed kdump, for other tools (and this library) to open.
//!
//! [`write_dump`] walks the source's memory map (everything up to `max_address` when the
//! source does not know its map) in 4 KiB pages, reading [`CHUNK`] bytes at a time: memory use
//! is bounded by the chunk and by small per-format tables, never by the size of the source.
//!
//! **Holes.** A page the source cannot read whole is left out of the file and reported in the
//! [`WriteSummary`], never written as zeros: the ELF core splits its `PT_LOAD`s around it, the
//! LiME file its ranges, the kdump clears its bit in the bitmap of saved pages (its bit in the
//! bitmap of existing pages stays set), and the raw image leaves a sparse hole (a raw image
//! cannot tell a hole from zeros when read back: the summary is the only record).
//!
//! **Atomic result.** The file is written under a temporary name in the target directory,
//! flushed to disk and renamed to its final name only when complete. An error or a
//! cancellation removes the temporary file: the final name then holds whatever it held
//! before, never a partial dump.
//!
//! **Progress and cancellation.** The progress callback is called after every chunk with the
//! bytes of the map done so far and in total; returning [`ControlFlow::Break`] stops the
//! writer, which fails with [`ErrorKind::Cancelled`].
//!
//! **What the formats carry.** ELF and kdump keep the CPU state (x86-64: one `NT_PRSTATUS` and
//! one QEMU CPU-state note per CPU, as QEMU's `dump-guest-memory` writes them) and the
//! `VMCOREINFO` note; LiME and raw hold memory only.
//!
//! **Virtual memory.** [`ViewSource`] serves the mapped ranges of a virtual address space (a
//! process's) as the source, written at their virtual addresses.

mod elf;
pub(crate) mod kdump;
mod lime;
mod notes;
pub(crate) mod output;
mod raw;
#[cfg(test)]
mod tests;
mod view;

use std::ops::ControlFlow;
use std::path::Path;

use output::{Output, TempFile};
pub use view::ViewSource;

use super::codec::Codec;
use super::cpu_state::{AArch64Registers, CpuState, RiscVRegisters, X86Registers};
use super::elf::VmcoreInfo;
use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::OsInstanceArcBox;
use crate::mem::alloc::{reserve, zeroed_vec};
use crate::mem::{MemMapping, PhysicalMemory};
use crate::os::linux::vmcoreinfo::kernel_vmcoreinfo;
use crate::os::Os;
use crate::types::{umem, Address, PhysicalAddress};

/// The unit of holes and of kdump pages.
pub const PAGE_SIZE: u64 = 4096;
/// Bytes read from the source at a time.
pub const CHUNK: usize = 1 << 20;
/// The most memory ranges accepted from the source's map (after rounding to pages).
pub const MAX_RANGES: usize = 65536;
/// The most hole ranges listed in a [`WriteSummary`]; further ones are only counted.
pub const MAX_LISTED_HOLES: usize = 1024;

/// The codec of the pages of a compressed kdump.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum KdumpCodec {
    /// zstd (makedumpfile `-z`), level 1.
    Zstd = 1,
    /// Snappy (makedumpfile `-p`).
    Snappy = 2,
    /// zlib (makedumpfile `-c`, QEMU `kdump-zlib`), fastest level.
    Zlib = 3,
}

/// The file format to write.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum WriteFormat {
    /// An ELF64 core laid out as QEMU's `dump-guest-memory` writes it.
    Elf,
    /// A LiME file: one header and the bytes of each range.
    Lime,
    /// A raw image: byte `n` of the file is physical address `n`; holes are sparse.
    Raw,
    /// A compressed kdump (makedumpfile's "KDUMP" diskdump, header version 6).
    Kdump(KdumpCodec),
}

impl WriteFormat {
    /// Every format, as [`WriteFormat::name`] names them.
    pub const ALL: [WriteFormat; 6] = [
        WriteFormat::Elf,
        WriteFormat::Lime,
        WriteFormat::Raw,
        WriteFormat::Kdump(KdumpCodec::Zstd),
        WriteFormat::Kdump(KdumpCodec::Snappy),
        WriteFormat::Kdump(KdumpCodec::Zlib),
    ];

    /// The format's name: `elf`, `lime`, `raw`, `kdump-zstd`, `kdump-snappy`, `kdump-zlib`.
    pub fn name(self) -> &'static str {
        match self {
            WriteFormat::Elf => "elf",
            WriteFormat::Lime => "lime",
            WriteFormat::Raw => "raw",
            WriteFormat::Kdump(KdumpCodec::Zstd) => "kdump-zstd",
            WriteFormat::Kdump(KdumpCodec::Snappy) => "kdump-snappy",
            WriteFormat::Kdump(KdumpCodec::Zlib) => "kdump-zlib",
        }
    }

    /// The format named `name` (see [`WriteFormat::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What a dump records about its target besides the memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpMeta {
    /// The target's architecture: the ELF machine and the kdump's `utsname.machine`.
    pub arch: ArchitectureIdent,
    /// Registers per CPU (written for x86-64 targets).
    pub cpus: Vec<X86Registers>,
    /// Registers per CPU (written for AArch64 targets).
    pub aarch64_cpus: Vec<AArch64Registers>,
    /// Registers per CPU (written for RISC-V targets; `satp` is not, the notes have no place
    /// for it).
    pub riscv_cpus: Vec<RiscVRegisters>,
    /// The Linux `VMCOREINFO` text (`key=value` lines).
    pub vmcoreinfo: Option<Vec<u8>>,
}

impl DumpMeta {
    /// The CPU state and the VMCOREINFO text `source` reports (none if it has none), for an
    /// `arch` target.
    pub fn of(source: &impl CpuState, arch: ArchitectureIdent) -> Self {
        let cpus = (0..source.cpu_count()).map_while(|cpu| source.x86_registers(cpu).ok()).collect();
        let aarch64_cpus = (0..source.cpu_count()).map_while(|cpu| source.aarch64_registers(cpu).ok()).collect();
        let riscv_cpus = (0..source.cpu_count()).map_while(|cpu| source.riscv_registers(cpu).ok()).collect();
        DumpMeta { arch, cpus, aarch64_cpus, riscv_cpus, vmcoreinfo: source.vmcoreinfo_text() }
    }

    /// The CPU state `source` reports, for the architecture it implies (a connector does not
    /// say its architecture): AArch64 (4 KiB granule, 48 bits) when it reports AArch64 CPUs,
    /// RISC-V (Sv39; the dump formats name no paging mode) when it reports RISC-V CPUs,
    /// x86-64 otherwise; with its VMCOREINFO text if it has one.
    pub fn of_cpus(source: &impl CpuState) -> Self {
        let arch = if source.aarch64_registers(0).is_ok() {
            ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 }
        } else if source.riscv_registers(0).is_ok() {
            ArchitectureIdent::RiscVSv39
        } else {
            ArchitectureIdent::X86_64
        };
        Self::of(source, arch)
    }

    /// What a dump of an OS layer's physical memory records: the layer's architecture, the CPU
    /// state of the connector below it, and the kernel's own VMCOREINFO text when the layer
    /// finds one in the kernel's memory (a Linux kernel: see
    /// [`crate::os::linux::vmcoreinfo`]; a dump with it is one makedumpfile can filter by page
    /// kind and crash can open), else the connector's (a dump's note). A dump of neither has
    /// none, logged.
    pub fn of_os(os: &mut OsInstanceArcBox<'_>) -> Self {
        let arch = os.info().arch;
        let mut meta = match os.as_ref_impl_cpustate() {
            Some(state) => DumpMeta::of(state, arch),
            None => {
                DumpMeta { arch, cpus: Vec::new(), aarch64_cpus: Vec::new(), riscv_cpus: Vec::new(), vmcoreinfo: None }
            }
        };
        match kernel_vmcoreinfo(os) {
            Ok(text) => meta.vmcoreinfo = Some(text),
            Err(e) if meta.vmcoreinfo.is_none() => log::info!("the dump will have no VMCOREINFO: {e}"),
            Err(e) => log::debug!("the connector's VMCOREINFO, not the kernel's: {e}"),
        }
        meta
    }

    /// What a dump file recorded (see [`super::FileConnector::info`]), for an `arch` target.
    pub fn from_info(info: &super::DumpInfo, arch: ArchitectureIdent) -> Self {
        let vmcoreinfo = info.vmcoreinfo.as_ref().map(VmcoreInfo::to_text);
        DumpMeta {
            arch,
            cpus: info.cpus.clone(),
            aarch64_cpus: info.aarch64_cpus.clone(),
            riscv_cpus: info.riscv_cpus.clone(),
            vmcoreinfo,
        }
    }
}

/// How far a write has come: bytes of the memory map done and in total.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the map read (written or found to be holes).
    pub done: u64,
    /// Bytes in the map.
    pub total: u64,
}

/// What a finished write did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Bytes of memory written to the file.
    pub bytes_written: u64,
    /// Size of the file (sparse formats: its apparent size).
    pub file_size: u64,
    /// Pages the source could not read, left out of the file.
    pub hole_pages: u64,
    /// Runs of such pages as `(first address, length)`: the first [`MAX_LISTED_HOLES`].
    pub holes: Vec<(u64, u64)>,
    /// Runs of hole pages in all (more than `holes.len()` when the list was cut).
    pub hole_runs: u64,
}

/// The summary being built, and where the last hole ended (to merge adjacent ones).
#[derive(Default)]
struct Tally {
    summary: WriteSummary,
    hole_end: Option<u64>,
}

impl Tally {
    fn written(&mut self, len: usize) {
        self.summary.bytes_written += len as u64;
    }

    fn hole(&mut self, addr: u64, len: u64) {
        let s = &mut self.summary;
        s.hole_pages += len / PAGE_SIZE;
        if self.hole_end == Some(addr) {
            if s.hole_runs as usize == s.holes.len() {
                if let Some(last) = s.holes.last_mut() {
                    last.1 += len;
                }
            }
        } else {
            s.hole_runs += 1;
            if s.holes.len() < MAX_LISTED_HOLES {
                s.holes.push((addr, len));
            }
        }
        self.hole_end = Some(addr + len);
    }
}

/// What the formats are told before the memory: the page-aligned ranges to be written.
pub(crate) struct Plan {
    /// `(start, end)` of each range, ascending, page-aligned, not touching.
    pub ranges: Vec<(u64, u64)>,
}

impl Plan {
    /// Bytes in all ranges.
    fn total(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// One past the last address of the last range.
    fn end(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.1)
    }
}

/// A file format: told the plan, then every readable run of pages in ascending order, then
/// to finish.
pub(crate) trait Sink {
    /// Writes what comes before the memory.
    fn begin(&mut self, out: &mut Output, plan: &Plan) -> Result<()>;
    /// Writes `bytes` of memory at guest address `addr` (page-aligned, whole pages), after
    /// every lower address was passed here or was a hole.
    fn data(&mut self, out: &mut Output, addr: u64, bytes: &[u8]) -> Result<()>;
    /// Writes what comes after the memory.
    fn finish(&mut self, out: &mut Output, plan: &Plan) -> Result<()>;
}

fn sink(format: WriteFormat, meta: &DumpMeta) -> Result<Box<dyn Sink>> {
    Ok(match format {
        WriteFormat::Elf => Box::new(elf::ElfSink::new(meta)),
        WriteFormat::Lime => Box::new(lime::LimeSink::default()),
        WriteFormat::Raw => Box::new(raw::RawSink),
        WriteFormat::Kdump(codec) => {
            let codec = match codec {
                KdumpCodec::Zstd => Codec::Zstd,
                KdumpCodec::Snappy => Codec::Snappy,
                KdumpCodec::Zlib => Codec::Zlib,
            };
            Box::new(kdump::KdumpSink::new(codec, meta)?)
        }
    })
}

/// Writes the physical memory of `mem` to `path` in `format`, with what `meta` says about
/// the target; `progress` is called after every chunk and may stop the write (see the module
/// documentation for holes, the temporary file and cancellation).
pub fn write_dump<M: PhysicalMemory>(
    mem: &mut M,
    meta: &DumpMeta,
    path: &Path,
    format: WriteFormat,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<WriteSummary> {
    let sink = sink(format, meta)?;
    write_with(mem, path, sink, progress)
}

/// [`write_dump`] with the format's writer given.
pub(crate) fn write_with<M: PhysicalMemory>(
    mem: &mut M,
    path: &Path,
    mut sink: Box<dyn Sink>,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<WriteSummary> {
    let plan = Plan { ranges: ranges_of(mem)? };
    let mut temp = TempFile::create(path)?;
    let mut out = Output::new(temp.file()?, path);
    sink.begin(&mut out, &plan)?;
    let mut summary = copy_memory(mem, &plan, sink.as_mut(), &mut out, progress)?;
    sink.finish(&mut out, &plan)?;
    summary.file_size = out.size()?;
    temp.persist(out)?;
    Ok(summary)
}

/// The source's map as page-aligned ranges (rounded outwards, merged where they touch), or
/// everything up to `max_address` when the source does not know its map.
fn ranges_of<M: PhysicalMemory>(mem: &M) -> Result<Vec<(u64, u64)>> {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut failure = None;
    let mut add = |m: MemMapping| {
        let (base, size) = (u64::try_from(m.base.to_umem()).ok(), u64::try_from(m.size).ok());
        let (Some(base), Some(size)) = (base, size) else {
            failure = Some("a range beyond 64-bit addresses");
            return false;
        };
        let start = base / PAGE_SIZE * PAGE_SIZE;
        let end = base.saturating_add(size).saturating_add(PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE;
        if let Some(last) = ranges.last_mut().filter(|last| start <= last.1) {
            last.1 = last.1.max(end);
            return true;
        }
        if ranges.len() == MAX_RANGES {
            failure = Some("more ranges than accepted");
            return false;
        }
        if let Err(e) = reserve(&mut ranges, 1, ErrorOrigin::Connector, "memory ranges") {
            log::warn!("{e}");
            failure = Some("no memory for the ranges");
            return false;
        }
        ranges.push((start, end));
        true
    };
    let reported = mem.mem_map_callback((&mut add).into());
    match reported {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::Unsupported => {
            let max = u64::try_from(mem.metadata().max_address.to_umem()).unwrap_or(u64::MAX);
            ranges = vec![(0, max.saturating_add(1).div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE))];
        }
        Err(e) => return Err(e),
    }
    if let Some(why) = failure {
        return Err(Error::new(ErrorOrigin::Connector, ErrorKind::LimitExceeded).with_reason(format_args!(
            "the source's memory map cannot be written: {why} (at most {MAX_RANGES} ranges below 2^64)"
        )));
    }
    ranges.retain(|r| r.1 > r.0);
    Ok(ranges)
}

/// Reads every range chunk by chunk and passes the readable runs of pages to `sink`.
fn copy_memory<M: PhysicalMemory>(
    mem: &mut M,
    plan: &Plan,
    sink: &mut dyn Sink,
    out: &mut Output,
    progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<WriteSummary> {
    let mut buf = zeroed_vec::<u8>(CHUNK, ErrorOrigin::Connector, "the dump writer's read buffer")?;
    let mut tally = Tally::default();
    let total = plan.total();
    let mut done = 0u64;
    for &(start, end) in &plan.ranges {
        let mut addr = start;
        while addr < end {
            let len = (end - addr).min(CHUNK as u64) as usize;
            let chunk = &mut buf[..len];
            let read = mem.phys_read_single(phys(addr), chunk)?;
            if read == len {
                sink.data(out, addr, chunk)?;
                tally.written(len);
            } else {
                copy_pages(mem, addr, chunk, read, sink, out, &mut tally)?;
            }
            addr += len as u64;
            done += len as u64;
            if progress(Progress { done, total }).is_break() {
                return Err(Error::new(ErrorOrigin::Connector, ErrorKind::Cancelled)
                    .with_reason(format_args!("the dump was cancelled after {done:#x} of {total:#x} bytes")));
            }
        }
    }
    Ok(tally.summary)
}

/// A chunk at `addr` whose first `read` bytes were read: the pages up to there are passed on
/// and every later page is read again on its own, so that only unreadable pages are holes.
fn copy_pages<M: PhysicalMemory>(
    mem: &mut M,
    addr: u64,
    chunk: &mut [u8],
    read: usize,
    sink: &mut dyn Sink,
    out: &mut Output,
    tally: &mut Tally,
) -> Result<()> {
    let page = PAGE_SIZE as usize;
    // The start of the run of readable pages not yet passed on.
    let mut run = 0usize;
    let mut at = read / page * page;
    while at < chunk.len() {
        let ok = mem.phys_read_single(phys(addr + at as u64), &mut chunk[at..at + page])? == page;
        if !ok {
            if run < at {
                sink.data(out, addr + run as u64, &chunk[run..at])?;
                tally.written(at - run);
            }
            tally.hole(addr + at as u64, PAGE_SIZE);
            run = at + page;
        }
        at += page;
    }
    if run < chunk.len() {
        sink.data(out, addr + run as u64, &chunk[run..])?;
        tally.written(chunk.len() - run);
    }
    Ok(())
}

fn phys(addr: u64) -> PhysicalAddress {
    PhysicalAddress::plain(Address::new(addr as umem))
}
