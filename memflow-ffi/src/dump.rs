//! Writing dumps: the physical memory of a connector (`mf_dump_write`) or of an OS layer
//! (`mf_os_dump_write`) to an ELF core, LiME, raw or compressed kdump file.

use std::ffi::{c_char, c_void};
use std::ops::ControlFlow;
use std::path::Path;

use memflow_core::arch::ArchitectureIdent;
use memflow_core::connector::{write_dump, DumpMeta, KdumpCodec, WriteFormat, WriteSummary};
use memflow_core::error::{Error, ErrorKind};
use memflow_core::mem::PhysicalMemory;

use crate::call::{ffi_err, guard, opt_str_arg, ref_arg, str_arg};
use crate::connector::MfConnector;
use crate::handle;
use crate::os::MfOs;

/// An ELF64 core laid out as QEMU's `dump-guest-memory` writes it (CPU notes, VMCOREINFO).
pub const MF_DUMP_ELF: u32 = 1;
/// A LiME file (memory only).
pub const MF_DUMP_LIME: u32 = 2;
/// A raw image: file offset = physical address; holes are sparse (memory only).
pub const MF_DUMP_RAW: u32 = 3;
/// A compressed kdump with zstd pages (CPU notes, VMCOREINFO).
pub const MF_DUMP_KDUMP_ZSTD: u32 = 4;
/// A compressed kdump with snappy pages.
pub const MF_DUMP_KDUMP_SNAPPY: u32 = 5;
/// A compressed kdump with zlib pages.
pub const MF_DUMP_KDUMP_ZLIB: u32 = 6;

/// How many runs of unreadable pages an `MfDumpSummary` lists.
pub const MF_DUMP_LISTED_HOLES: usize = 16;

/// What to write.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfDumpOptions {
    /// The format: one of the `MF_DUMP_*` constants.
    pub format: u32,
    /// The target's ELF machine (`e_machine`; also the kdump's machine name): 62 x86-64 (also
    /// when 0), 183 AArch64, 243 RISC-V. CPU notes are written for the x86-64, AArch64 or RISC-V
    /// CPUs the connector reports.
    pub elf_machine: u16,
    /// The Linux `VMCOREINFO` text (`KEY=value` lines) to record in ELF and kdump files, or
    /// NULL: then none for `mf_dump_write` (a connector does not hand it out), the kernel's
    /// own for `mf_os_dump_write`.
    pub vmcoreinfo: *const c_char,
}

/// A run of pages left out of the dump.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfDumpHole {
    /// The first physical address.
    pub start: u64,
    /// Its length in bytes.
    pub length: u64,
}

/// What a finished dump holds.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfDumpSummary {
    /// Bytes of memory written.
    pub bytes_written: u64,
    /// The size of the file (the apparent size of a sparse raw image).
    pub file_size: u64,
    /// 4 KiB pages the connector could not read, left out of the file (never written as zeros).
    pub hole_pages: u64,
    /// Runs of such pages.
    pub hole_runs: u64,
    /// How many entries of `holes` are set: the first `MF_DUMP_LISTED_HOLES` runs.
    pub holes_listed: usize,
    /// The first runs of unreadable pages.
    pub holes: [MfDumpHole; MF_DUMP_LISTED_HOLES],
}

impl From<&WriteSummary> for MfDumpSummary {
    fn from(s: &WriteSummary) -> Self {
        let mut out = MfDumpSummary {
            bytes_written: s.bytes_written,
            file_size: s.file_size,
            hole_pages: s.hole_pages,
            hole_runs: s.hole_runs,
            ..MfDumpSummary::default()
        };
        for (slot, &(start, length)) in out.holes.iter_mut().zip(&s.holes) {
            *slot = MfDumpHole { start, length };
            out.holes_listed += 1;
        }
        out
    }
}

/// Receives the progress of a dump: bytes of the memory map done and in total. Return `true`
/// to go on, `false` to stop the dump (it then fails with kind `MF_KIND_CANCELLED`).
pub type MfDumpProgressCallback = Option<unsafe extern "C" fn(user: *mut c_void, done: u64, total: u64) -> bool>;

fn format_of(code: u32) -> Result<WriteFormat, Error> {
    Ok(match code {
        MF_DUMP_ELF => WriteFormat::Elf,
        MF_DUMP_LIME => WriteFormat::Lime,
        MF_DUMP_RAW => WriteFormat::Raw,
        MF_DUMP_KDUMP_ZSTD => WriteFormat::Kdump(KdumpCodec::Zstd),
        MF_DUMP_KDUMP_SNAPPY => WriteFormat::Kdump(KdumpCodec::Snappy),
        MF_DUMP_KDUMP_ZLIB => WriteFormat::Kdump(KdumpCodec::Zlib),
        other => {
            return Err(ffi_err(
                ErrorKind::InvalidArgument,
                format_args!("dump format {other} is not an MF_DUMP_* constant"),
            ))
        }
    })
}

fn arch_of(machine: u16) -> Result<ArchitectureIdent, Error> {
    let machine = if machine == 0 { ArchitectureIdent::X86_64.elf_machine() } else { machine };
    ArchitectureIdent::ALL.iter().copied().find(|a| a.elf_machine() == machine).ok_or_else(|| {
        ffi_err(ErrorKind::InvalidArgument, format_args!("ELF machine {machine} is not one this library knows"))
    })
}

/// Writes the physical memory of `conn` to the file `path` as `options` says.
///
/// The dump streams in 1 MiB chunks (memory use does not grow with the dump). Pages the
/// connector cannot read are left out and counted in `*summary`, never written as zeros. The
/// file is written under a temporary name in the same directory and renamed to `path` only
/// when complete: on any error, and when `progress` returns `false` (then the result has kind
/// `MF_KIND_CANCELLED`), no file is left and a file already at `path` is untouched.
///
/// `progress` (may be NULL) is called after every chunk, on the calling thread; it must not
/// use `conn` (see the threading rules).
///
/// Ownership: `conn`, `path`, `options` and `user` are borrowed for the call; `*summary`
/// (may be NULL) is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_dump_write(
    conn: *mut MfConnector,
    path: *const c_char,
    options: *const MfDumpOptions,
    progress: MfDumpProgressCallback,
    user: *mut c_void,
    summary: *mut MfDumpSummary,
) -> i32 {
    guard(|| {
        handle::with(conn, "conn", |conn| {
            let options = ref_arg(options, "options")?;
            let meta = DumpMeta::of(&conn.inner, arch_of(options.elf_machine)?);
            write(&mut conn.inner, meta, path, options, progress, user, summary)
        })
    })
}

/// Writes the physical memory of the OS layer `os` (that of the connector below it) to the
/// file `path` as `options` says, like `mf_dump_write`, with what the layer knows besides:
/// its architecture when `options->elf_machine` is 0, and when `options->vmcoreinfo` is NULL
/// the kernel's own `VMCOREINFO` text if the layer finds it in the kernel's memory (the
/// `linux` layer does), so that makedumpfile can filter the dump and crash can open it.
///
/// Ownership: as for `mf_dump_write`; `progress` must not use `os`.
#[no_mangle]
pub extern "C" fn mf_os_dump_write(
    os: *mut MfOs,
    path: *const c_char,
    options: *const MfDumpOptions,
    progress: MfDumpProgressCallback,
    user: *mut c_void,
    summary: *mut MfDumpSummary,
) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let options = ref_arg(options, "options")?;
            let mut meta = DumpMeta::of_os(&mut os.inner);
            if options.elf_machine != 0 {
                meta.arch = arch_of(options.elf_machine)?;
            }
            let mem = os
                .inner
                .as_mut_impl_physicalmemory()
                .ok_or_else(|| ffi_err(ErrorKind::Unsupported, "the OS layer has no physical memory to dump"))?;
            write(mem, meta, path, options, progress, user, summary)
        })
    })
}

/// The body of both dump calls: `meta` as the handle gives it, `options.vmcoreinfo` over its
/// VMCOREINFO when not NULL.
fn write(
    mem: &mut impl PhysicalMemory,
    mut meta: DumpMeta,
    path: *const c_char,
    options: &MfDumpOptions,
    progress: MfDumpProgressCallback,
    user: *mut c_void,
    summary: *mut MfDumpSummary,
) -> Result<(), Error> {
    // SAFETY: C string argument, checked for NULL.
    let path = unsafe { str_arg(path, "path") }?;
    let format = format_of(options.format)?;
    // SAFETY: C string argument or NULL.
    if let Some(text) = unsafe { opt_str_arg(options.vmcoreinfo, "options.vmcoreinfo") }? {
        meta.vmcoreinfo = Some(text.as_bytes().to_vec());
    }
    let mut report = |p: memflow_core::connector::Progress| match progress {
        // SAFETY: the caller's callback with its own `user` pointer.
        Some(f) if !unsafe { f(user, p.done, p.total) } => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    };
    let result = write_dump(mem, &meta, Path::new(path), format, &mut report)?;
    if !summary.is_null() {
        // SAFETY: checked for NULL; the caller provides storage for one summary.
        unsafe { summary.write(MfDumpSummary::from(&result)) };
    }
    Ok(())
}
