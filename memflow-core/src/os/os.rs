//! An OS layer: what the bytes mean. Lists processes and kernel modules and opens processes.

use cglue::prelude::v1::*;

use super::info::*;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::ProcessInstanceArcBox;
use crate::types::{umem, Address};

/// An operating system seen through memory.
///
/// Implementors provide the address-based primitives; lookups by pid and name and the list
/// forms are helpers on top, the same for every layer.
#[cglue_trait]
#[int_result]
pub trait Os: Send {
    /// Calls back with the handle of every process; stops when the callback returns `false`.
    fn process_address_list_callback(&mut self, callback: AddressCallback) -> Result<()>;

    /// The facts of the process with handle `address`.
    fn process_info_by_address(&mut self, address: Address) -> Result<ProcessInfo>;

    /// Opens a process: the result reads and writes its memory and lists its modules. It is
    /// independent of this OS object (it keeps what it needs alive).
    fn process_by_info(&mut self, info: ProcessInfo) -> Result<ProcessInstanceArcBox<'static>>;

    /// Calls back with the handle of every kernel module (none for layers without a kernel).
    fn module_address_list_callback(&mut self, callback: AddressCallback) -> Result<()>;

    /// The kernel module with handle `address`.
    fn module_by_address(&mut self, address: Address) -> Result<ModuleInfo>;

    /// The address of the kernel symbol `name`, for layers that know kernel symbols.
    fn kernel_symbol(&mut self, name: &str) -> Result<Address> {
        let _ = name;
        Err(Error::new(ErrorOrigin::Os, ErrorKind::Unsupported))
    }

    /// The kernel symbol `address` lies in: the nearest symbol at or below it in the kernel
    /// image or in the kernel module whose memory holds it (`address - symbol.address` is the
    /// offset into it). `NotFound` for addresses outside both.
    fn kernel_symbol_by_address(&mut self, address: Address) -> Result<KernelSymbolInfo> {
        let _ = address;
        Err(unsupported("kernel symbols"))
    }

    /// Calls back with every kernel symbol: the kernel image's, then each kernel module's (the
    /// order of `/proc/kallsyms` on Linux). Stops when the callback returns `false`.
    fn kernel_symbol_list_callback(&mut self, callback: KernelSymbolCallback) -> Result<()> {
        let _ = callback;
        Err(unsupported("kernel symbols"))
    }

    /// Calls back with every symbol of the kernel module `module` (a record of this OS);
    /// `offset` is the symbol's address minus `module.base`, modulo 2^64 (symbols of a module
    /// may lie below its base). Stops when the callback returns `false`.
    fn kernel_module_export_list_callback(&mut self, module: &ModuleInfo, callback: ExportCallback) -> Result<()> {
        let _ = (module, callback);
        Err(unsupported("kernel module symbols"))
    }

    /// Calls back with every section of the kernel module `module` (a record of this OS).
    /// Stops when the callback returns `false`.
    fn kernel_module_section_list_callback(&mut self, module: &ModuleInfo, callback: SectionCallback) -> Result<()> {
        let _ = (module, callback);
        Err(unsupported("kernel module sections"))
    }

    /// The byte offset of `member` in the kernel structure (or union) `structure`, from the
    /// kernel's own type information. `member` may be a dotted path into nested members
    /// (`f_path.dentry`); anonymous structures and unions are looked through.
    fn type_member_offset(&self, structure: &str, member: &str) -> Result<umem> {
        let _ = (structure, member);
        Err(unsupported("kernel type information"))
    }

    /// The size in bytes of the kernel structure (or union) `structure`, from the kernel's own
    /// type information.
    fn type_size(&self, structure: &str) -> Result<umem> {
        let _ = structure;
        Err(unsupported("kernel type information"))
    }

    /// Facts about the OS.
    fn info(&self) -> &OsInfo;

    /// Calls back with the facts of every process; processes that vanish while listing are
    /// skipped. Stops when the callback returns `false`.
    #[skip_func]
    fn process_info_list_callback(&mut self, mut callback: impl FnMut(ProcessInfo) -> bool) -> Result<()>
    where
        Self: Sized,
    {
        let mut addrs = Vec::new();
        self.process_address_list_callback((&mut addrs).into())?;
        for addr in addrs {
            if let Ok(info) = self.process_info_by_address(addr) {
                if !callback(info) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The facts of every process, as a list.
    #[skip_func]
    fn process_info_list(&mut self) -> Result<Vec<ProcessInfo>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.process_info_list_callback(|i| {
            out.push(i);
            true
        })?;
        Ok(out)
    }

    /// The first process matching `pred`.
    #[skip_func]
    fn process_info_find(&mut self, mut pred: impl FnMut(&ProcessInfo) -> bool) -> Result<Option<ProcessInfo>>
    where
        Self: Sized,
    {
        let mut found = None;
        self.process_info_list_callback(|i| {
            if pred(&i) {
                found = Some(i);
            }
            found.is_none()
        })?;
        Ok(found)
    }

    /// The process with id `pid`.
    #[skip_func]
    fn process_info_by_pid(&mut self, pid: Pid) -> Result<ProcessInfo>
    where
        Self: Sized,
    {
        self.process_info_find(|i| i.pid == pid)?.ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no process with pid {pid}"))
        })
    }

    /// The first process whose name is exactly `name`.
    #[skip_func]
    fn process_info_by_name(&mut self, name: &str) -> Result<ProcessInfo>
    where
        Self: Sized,
    {
        self.process_info_find(|i| &*i.name == name)?.ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no process named `{name}`"))
        })
    }

    /// The first process whose name equals `name` ignoring ASCII case.
    #[skip_func]
    fn process_info_by_name_ci(&mut self, name: &str) -> Result<ProcessInfo>
    where
        Self: Sized,
    {
        self.process_info_find(|i| i.name.eq_ignore_ascii_case(name))?.ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
                .with_reason(format_args!("no process named `{name}` (any case)"))
        })
    }

    /// Opens the process with id `pid`.
    #[skip_func]
    fn process_by_pid(&mut self, pid: Pid) -> Result<ProcessInstanceArcBox<'static>>
    where
        Self: Sized,
    {
        let info = self.process_info_by_pid(pid)?;
        self.process_by_info(info)
    }

    /// Opens the first process named exactly `name`.
    #[skip_func]
    fn process_by_name(&mut self, name: &str) -> Result<ProcessInstanceArcBox<'static>>
    where
        Self: Sized,
    {
        let info = self.process_info_by_name(name)?;
        self.process_by_info(info)
    }

    /// Every kernel module, as a list (modules that vanish while listing are skipped).
    #[skip_func]
    fn module_list(&mut self) -> Result<Vec<ModuleInfo>>
    where
        Self: Sized,
    {
        let mut addrs = Vec::new();
        self.module_address_list_callback((&mut addrs).into())?;
        Ok(addrs.into_iter().filter_map(|a| self.module_by_address(a).ok()).collect())
    }

    /// Every kernel symbol, as a list (see [`Os::kernel_symbol_list_callback`]).
    #[skip_func]
    fn kernel_symbol_list(&mut self) -> Result<Vec<KernelSymbolInfo>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.kernel_symbol_list_callback((&mut out).into())?;
        Ok(out)
    }

    /// Every symbol of the kernel module `module`, as a list.
    #[skip_func]
    fn kernel_module_exports(&mut self, module: &ModuleInfo) -> Result<Vec<ExportInfo>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.kernel_module_export_list_callback(module, (&mut out).into())?;
        Ok(out)
    }

    /// Every section of the kernel module `module`, as a list.
    #[skip_func]
    fn kernel_module_sections(&mut self, module: &ModuleInfo) -> Result<Vec<SectionInfo>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.kernel_module_section_list_callback(module, (&mut out).into())?;
        Ok(out)
    }

    /// The first kernel module whose name equals `name` ignoring ASCII case.
    #[skip_func]
    fn module_by_name(&mut self, name: &str) -> Result<ModuleInfo>
    where
        Self: Sized,
    {
        self.module_list()?.into_iter().find(|m| m.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason(format_args!("no kernel module `{name}`"))
        })
    }
}

/// The error of an OS layer that does not offer `what`.
fn unsupported(what: &str) -> Error {
    Error::new(ErrorOrigin::Os, ErrorKind::Unsupported).with_reason(format_args!("this OS layer has no {what}"))
}
