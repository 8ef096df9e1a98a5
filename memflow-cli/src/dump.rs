//! `dump OUT --format F [--pid P]`: the physical memory of the chain (its connector, or the OS
//! layer's physical memory), or a process's mapped memory at its virtual addresses, written
//! to a file by the library's dump writers; `dump OUT --pid P --module M`: one module of a
//! process rebuilt as a file ([`memflow_core::os::elf_image::rebuild_file`]). Both with a
//! progress bar on a terminal. Ctrl-C stops the writer, which removes its unfinished file: the
//! result is a complete file or none (a file already at OUT is left as it was).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use memflow_core::connector::cpu_state::MAX_VMCOREINFO;
use memflow_core::connector::{write_dump, DumpMeta, Progress, ViewSource, WriteFormat, WriteSummary};
use memflow_core::os::elf_image::rebuild_file;
use memflow_core::os::Process;
use memflow_core::plugins::ChainInstance;
use memflow_core::prelude::PhysicalMemory;
use serde::Serialize;

use crate::output::{hex, Output};
use crate::target::Target;
use crate::Failure;

/// Parses a `--format` name (see [`WriteFormat::name`]).
pub fn parse_format(text: &str) -> Result<WriteFormat, String> {
    WriteFormat::from_name(text).ok_or_else(|| {
        let names: Vec<_> = WriteFormat::ALL.iter().map(|f| f.name()).collect();
        format!("`{text}` is not a dump format; one of: {}", names.join(", "))
    })
}

/// `dump --json`.
#[derive(Serialize)]
pub struct DumpResult {
    /// The file written.
    pub path: String,
    /// Its format (`elf`, `lime`, `raw`, `kdump-zstd`, ..., or `module` for a rebuilt module).
    pub format: &'static str,
    /// Bytes of memory written.
    pub bytes_written: u64,
    /// The file's size (its apparent size for sparse raw images).
    pub file_size: u64,
    /// Pages (4 KiB) the source could not read, left out of the file.
    pub hole_pages: u64,
    /// Runs of such pages.
    pub hole_runs: u64,
    /// The first runs, as `{start, length}` (hexadecimal strings).
    pub holes: Vec<Hole>,
}

/// A run of pages left out.
#[derive(Serialize)]
pub struct Hole {
    /// The first address.
    pub start: String,
    /// Its length in bytes.
    pub length: String,
}

/// Set by the SIGINT handler while a dump runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT (Ctrl-C) into [`INTERRUPTED`] while alive; restores the previous handler
/// when dropped.
struct CatchInterrupt {
    previous: libc::sighandler_t,
}

impl CatchInterrupt {
    fn new() -> Self {
        INTERRUPTED.store(false, Ordering::SeqCst);
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let previous =
            unsafe { libc::signal(libc::SIGINT, on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t) };
        CatchInterrupt { previous }
    }
}

impl Drop for CatchInterrupt {
    fn drop(&mut self) {
        // SAFETY: puts back the handler that was installed before `new`.
        unsafe { libc::signal(libc::SIGINT, self.previous) };
    }
}

/// The text of a `--vmcoreinfo` file.
fn read_vmcoreinfo(path: &Path) -> Result<Vec<u8>, Failure> {
    let failure = |e: std::io::Error| Failure::error(format!("vmcoreinfo {}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(failure)?.len();
    if size > MAX_VMCOREINFO as u64 {
        return Err(Failure::usage(format!(
            "vmcoreinfo {}: {size} bytes is more than a VMCOREINFO text ({MAX_VMCOREINFO} at most)",
            path.display()
        )));
    }
    std::fs::read(path).map_err(failure)
}

/// Runs `dump OUTPUT --format FORMAT [--pid PROCESS] [--vmcoreinfo FILE]`.
pub fn dump(
    chain: &str,
    output: &Path,
    format: WriteFormat,
    pid: Option<&str>,
    vmcoreinfo: Option<&Path>,
    out: &Output,
) -> Result<(), Failure> {
    let vmcoreinfo = vmcoreinfo.map(read_vmcoreinfo).transpose()?;
    let mut target = Target::open(chain)?;
    if let Some(selector) = pid {
        let mut process = target.process(selector)?;
        let info = process.info().clone();
        let ranges = process.mapped_mem(0).map_err(|e| Failure::about(format!("process {}", info.pid), e))?;
        let mut source =
            ViewSource::new(process, &ranges).map_err(|e| Failure::about(format!("process {}", info.pid), e))?;
        let meta = DumpMeta {
            arch: info.proc_arch,
            cpus: Vec::new(),
            aarch64_cpus: Vec::new(),
            riscv_cpus: Vec::new(),
            vmcoreinfo,
        };
        let summary = write_memory(&mut source, &meta, output, format, out)?;
        return report(output, format.name(), &summary, out);
    }
    let no_phys = || Failure::usage(format!("chain `{chain}` has no physical memory to dump"));
    // A `--vmcoreinfo` text replaces the one the chain has (its connector's or its kernel's).
    let with_given = |meta: DumpMeta| match &vmcoreinfo {
        Some(text) => DumpMeta { vmcoreinfo: Some(text.clone()), ..meta },
        None => meta,
    };
    let summary = match target.instance() {
        ChainInstance::Connector(conn) => {
            let meta = with_given(DumpMeta::of_cpus(&*conn));
            write_memory(conn, &meta, output, format, out)?
        }
        ChainInstance::Os(os) => {
            let meta = with_given(DumpMeta::of_os(os));
            write_memory(os.as_mut_impl_physicalmemory().ok_or_else(no_phys)?, &meta, output, format, out)?
        }
    };
    report(output, format.name(), &summary, out)
}

/// Writes a dump file to `path` with the library writer `run` (given the progress callback),
/// `total` bytes expected, under a progress bar labelled `label` and the Ctrl-C catcher.
fn write(
    path: &Path,
    total: u64,
    label: &str,
    out: &Output,
    run: impl FnOnce(&mut dyn FnMut(Progress) -> ControlFlow<()>) -> memflow_core::error::Result<WriteSummary>,
) -> Result<WriteSummary, Failure> {
    let bar = out.progress(total, label);
    let _interrupt = CatchInterrupt::new();
    let result = run(&mut |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        if INTERRUPTED.load(Ordering::SeqCst) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    bar.finish_and_clear();
    result.map_err(|e| Failure::about(format!("dump to {}", path.display()), e))
}

/// Writes the physical memory `mem` to `path` in `format`.
fn write_memory(
    mem: &mut impl PhysicalMemory,
    meta: &DumpMeta,
    path: &Path,
    format: WriteFormat,
    out: &Output,
) -> Result<WriteSummary, Failure> {
    let total = mem.metadata().real_size as u64;
    write(path, total, &format!("dump {}", format.name()), out, |progress| {
        write_dump(mem, meta, path, format, progress)
    })
}

/// Runs `dump OUTPUT --pid PROCESS --module MODULE`.
pub fn module(chain: &str, output: &Path, pid: &str, name: &str, out: &Output) -> Result<(), Failure> {
    let mut target = Target::open(chain)?;
    let mut process = target.process(pid)?;
    let what = format!("module `{name}` of process {}", process.info().pid);
    let module = process.module_by_name(name).map_err(|e| Failure::about(&what, e))?;
    let summary = write(output, module.size as u64, &format!("dump {name}"), out, |progress| {
        rebuild_file(process, module.base, output, progress)
    })
    .map_err(|f| Failure { message: format!("{what}: {}", f.message), ..f })?;
    report(output, "module", &summary, out)
}

fn report(path: &Path, format: &'static str, s: &WriteSummary, out: &Output) -> Result<(), Failure> {
    if out.json() {
        let holes = s.holes.iter().map(|&(start, len)| Hole { start: hex(start), length: hex(len) }).collect();
        return out.document(&DumpResult {
            path: path.display().to_string(),
            format,
            bytes_written: s.bytes_written,
            file_size: s.file_size,
            hole_pages: s.hole_pages,
            hole_runs: s.hole_runs,
            holes,
        });
    }
    let mut pairs = vec![
        ("format", format.to_string()),
        ("memory", format!("{} bytes", s.bytes_written)),
        ("file size", format!("{} bytes", s.file_size)),
        ("unreadable", format!("{} pages in {} runs (left out)", s.hole_pages, s.hole_runs)),
    ];
    let listed = s.holes.iter().take(8).map(|&(start, len)| format!("{}+{}", hex(start), hex(len)));
    if s.hole_runs > 0 {
        let more = if s.hole_runs > 8 { format!(" and {} more", s.hole_runs - 8) } else { String::new() };
        pairs.push(("holes", format!("{}{more}", listed.collect::<Vec<_>>().join(", "))));
    }
    out.section(&path.display().to_string(), &pairs)
}
