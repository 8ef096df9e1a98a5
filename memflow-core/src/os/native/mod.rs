//! The running Linux host as an OS layer.
//!
//! [`NativeOs`] lists the host's processes from `/proc` (a process's handle is its pid) and
//! its kernel modules from `/proc/modules` (a module's handle is its index there; the base
//! is `NULL` where the kernel hides addresses). Opening a process gives a
//! [`NativeProcess`], which reads and writes the process's memory and lists its modules.
//!
//! Errors are clean: a process that no longer exists gives `NotFound` from [`NativeOs`]
//! lookups and `Gone` from an opened process, and missing privileges (another user's
//! process without `CAP_SYS_PTRACE`) give `PermissionDenied`.
//!
//! The architecture identities describe x86 hosts: the system is `X86_64` (or `X86_32` on a
//! 32-bit host), and a process is `X86_32` if its executable is a 32-bit ELF file.

mod maps;
mod process;
mod procfs;

use std::io;

use cglue::prelude::v1::*;

pub use process::NativeProcess;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::{LibArc, ProcessInstanceArcBox, ProcessInstanceBase};
use crate::os::*;
use crate::types::{umem, Address};
use procfs::{proc_path, KernelModule, Stat};

/// The architecture of the host system.
#[cfg(target_pointer_width = "64")]
const HOST_ARCH: ArchitectureIdent = ArchitectureIdent::X86_64;
/// The architecture of the host system.
#[cfg(not(target_pointer_width = "64"))]
const HOST_ARCH: ArchitectureIdent = ArchitectureIdent::X86_32;

/// The architecture of code in an ELF file of class `class` (`1`: 32-bit, `2`: 64-bit).
fn arch_of_elf_class(class: u8) -> Option<ArchitectureIdent> {
    match class {
        1 => Some(ArchitectureIdent::X86_32),
        2 => Some(ArchitectureIdent::X86_64),
        _ => None,
    }
}

/// The error for a failed `/proc` access or memory system call: a process that does not
/// exist (any more) gives `missing`, denied access `PermissionDenied`, anything else `Io`.
fn io_error(origin: ErrorOrigin, missing: ErrorKind, e: &io::Error) -> Error {
    log::debug!("native: {e}");
    Error::new(origin, ErrorKind::of_process_io(e, missing))
}

// Both are whole instances: an OS without physical memory or a kernel view, and a process.
cglue_impl_group!(NativeOs, crate::instance::OsInstance, {});
cglue_impl_group!(NativeProcess, crate::instance::ProcessInstance, {});

/// The running Linux host as an [`Os`]. Clones share nothing but the library context.
#[derive(Clone)]
pub struct NativeOs {
    info: OsInfo,
    lib: LibArc,
}

impl NativeOs {
    /// The host. `lib` is the library context every opened process carries, which keeps the
    /// plugin library this layer came from loaded (`LibArc::default()` when built in).
    pub fn new(lib: LibArc) -> Self {
        NativeOs { info: OsInfo { base: Address::NULL, size: 0, arch: HOST_ARCH }, lib }
    }

    /// The lines of `/proc/modules`; none on a kernel without module support.
    fn kernel_modules() -> Result<Vec<KernelModule>> {
        match std::fs::read_to_string("/proc/modules") {
            Ok(text) => Ok(procfs::parse_modules(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_error(ErrorOrigin::Os, ErrorKind::NotFound, &e)),
        }
    }
}

impl Os for NativeOs {
    fn process_address_list_callback(&mut self, mut callback: AddressCallback) -> Result<()> {
        let dir = std::fs::read_dir("/proc").map_err(|e| io_error(ErrorOrigin::Os, ErrorKind::NotFound, &e))?;
        for entry in dir.flatten() {
            let pid = entry.file_name().to_str().and_then(|name| name.parse::<Pid>().ok());
            if let Some(pid) = pid {
                if !callback.call(Address::from(pid)) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Fails with `NotFound` if there is no process with the pid `address`.
    fn process_info_by_address(&mut self, address: Address) -> Result<ProcessInfo> {
        let pid = Pid::try_from(address.to_umem()).map_err(|_| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no pid {address}"))
        })?;
        let stat = Stat::read(pid).map_err(|e| io_error(ErrorOrigin::Os, ErrorKind::NotFound, &e))?;
        // Both are empty where access is denied (another user's process) or for kernel threads.
        let path = std::fs::read_link(proc_path(pid, "exe")).map(|p| p.to_string_lossy().into_owned());
        let command_line = procfs::command_line(pid).unwrap_or_default();
        let proc_arch = procfs::exe_elf_class(pid).and_then(arch_of_elf_class).unwrap_or(HOST_ARCH);
        Ok(ProcessInfo {
            address,
            pid,
            ppid: stat.ppid,
            state: if stat.is_dead() { ProcessState::Dead } else { ProcessState::Alive },
            name: stat.comm.as_str().into(),
            path: path.unwrap_or_default().as_str().into(),
            command_line: command_line.as_str().into(),
            sys_arch: HOST_ARCH,
            proc_arch,
            table_root: Address::NULL,
            table_root_2: Address::NULL,
        })
    }

    fn process_by_info(&mut self, info: ProcessInfo) -> Result<ProcessInstanceArcBox<'static>> {
        let process = NativeProcess::open(info)?;
        Ok(group_obj!((process, self.lib.clone()) as ProcessInstance))
    }

    fn module_address_list_callback(&mut self, mut callback: AddressCallback) -> Result<()> {
        for index in 0..Self::kernel_modules()?.len() {
            if !callback.call(Address::from(index)) {
                break;
            }
        }
        Ok(())
    }

    fn module_by_address(&mut self, address: Address) -> Result<ModuleInfo> {
        let modules = Self::kernel_modules()?;
        let module = usize::try_from(address.to_umem()).ok().and_then(|i| modules.get(i)).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no kernel module {address}"))
        })?;
        Ok(ModuleInfo {
            address,
            parent: Address::NULL,
            base: Address::from(module.base),
            size: module.size as umem,
            name: module.name.as_str().into(),
            path: "".into(),
            arch: HOST_ARCH,
        })
    }

    fn info(&self) -> &OsInfo {
        &self.info
    }
}

#[cfg(test)]
mod tests;
