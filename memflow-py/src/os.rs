//! `Os`: an OS layer (a guest's Linux kernel, the native host): its processes, kernel modules
//! and symbols, type layouts, and the kernel's address space.

use memflow_core::error::ErrorKind;
use memflow_core::os::{KernelSymbolInfo, Os as _};
use memflow_core::prelude::OsInstanceArcBox;
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::Address;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::connector::Connector;
use crate::errors::{Raised, Result};
use crate::info::{KernelSymbol, Module, ProcessInfo, Translation};
use crate::process::Process;
use crate::space::{unsupported, AddressSpace, Handle};

/// An OS layer. Reads and writes take kernel virtual addresses; `physical()` gives the
/// physical memory under it.
#[pyclass(module = "memflow", extends = AddressSpace, frozen)]
pub struct Os;

/// A process given by id (`int`) or name (`str`).
#[derive(FromPyObject)]
pub enum Selector {
    /// By process id.
    Pid(u32),
    /// By name (the first process of that name).
    Name(String),
}

impl Os {
    /// A new Python `Os` of `os`.
    pub fn create(py: Python<'_>, os: OsInstanceArcBox<'static>) -> PyResult<PyObject> {
        let init = PyClassInitializer::from(AddressSpace::new(Handle::Os(os))).add_subclass(Os);
        Ok(Py::new(py, init)?.into_any())
    }

    /// Runs `f` on the OS layer with the GIL released.
    fn with_os<R: Send>(
        slf: &PyRef<'_, Self>,
        py: Python<'_>,
        f: impl FnOnce(&mut OsInstanceArcBox<'static>) -> Result<R> + Send,
    ) -> Result<R> {
        slf.as_ref().with_handle(py, |handle| match handle {
            Handle::Os(os) => f(os),
            _ => Err(Raised::new(ErrorKind::Internal, "not an OS layer handle")),
        })
    }
}

/// The process `selector` names in `os`.
fn find(os: &mut OsInstanceArcBox<'static>, selector: &Selector) -> Result<memflow_core::os::ProcessInfo> {
    match selector {
        Selector::Pid(pid) => os.process_info_by_pid(*pid).map_err(|e| Raised::about(format!("process {pid}"), e)),
        Selector::Name(name) => {
            os.process_info_by_name(name).map_err(|e| Raised::about(format!("process `{name}`"), e))
        }
    }
}

#[pymethods]
impl Os {
    /// info() -> dict: `arch` (the paging mode the OS runs in), `base` and `size` of the
    /// kernel image (0 for layers without a kernel, e.g. native).
    fn info<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let info = Self::with_os(&slf, py, |os| Ok(*os.info()))?;
        let dict = PyDict::new(py);
        dict.set_item("arch", memflow_cli::inspect::arch_name(info.arch))?;
        dict.set_item("base", info.base.to_umem() as u64)?;
        dict.set_item("size", info.size as u64)?;
        Ok(dict)
    }

    /// processes() -> list[ProcessInfo]: every process, as the OS layer lists them.
    fn processes(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Vec<ProcessInfo>> {
        let list = Self::with_os(&slf, py, |os| os.process_info_list().map_err(|e| Raised::about("processes", e)))?;
        Ok(list.iter().map(ProcessInfo::from).collect())
    }

    /// process_info(process) -> ProcessInfo: the process of that id (`int`) or name (`str`).
    fn process_info(slf: PyRef<'_, Self>, py: Python<'_>, process: Selector) -> PyResult<ProcessInfo> {
        let info = Self::with_os(&slf, py, |os| find(os, &process))?;
        Ok(ProcessInfo::from(&info))
    }

    /// process(process) -> Process: opens the process of that id (`int`) or name (`str`).
    fn process(slf: PyRef<'_, Self>, py: Python<'_>, process: Selector) -> PyResult<PyObject> {
        let proc = Self::with_os(&slf, py, |os| {
            let info = find(os, &process)?;
            let pid = info.pid;
            os.process_by_info(info).map_err(|e| Raised::about(format!("process {pid}"), e))
        })?;
        Process::create(py, proc)
    }

    /// kernel_modules() -> list[Module]: the loaded kernel modules.
    fn kernel_modules(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Vec<Module>> {
        let list = Self::with_os(&slf, py, |os| os.module_list().map_err(|e| Raised::about("kernel modules", e)))?;
        Ok(list.iter().map(Module::from).collect())
    }

    /// kernel_symbols(pattern=None) -> list[KernelSymbol]
    ///
    /// The kernel's symbols (kallsyms on Linux); with `pattern`, those whose name contains it.
    #[pyo3(signature = (pattern = None))]
    fn kernel_symbols(slf: PyRef<'_, Self>, py: Python<'_>, pattern: Option<String>) -> PyResult<Vec<KernelSymbol>> {
        Ok(Self::with_os(&slf, py, |os| {
            let mut symbols = Vec::new();
            os.kernel_symbol_list_callback(
                (&mut |s: KernelSymbolInfo| {
                    if pattern.as_deref().is_none_or(|p| s.name.contains(p)) {
                        symbols.push(KernelSymbol::from(&s));
                    }
                    true
                })
                    .into(),
            )
            .map_err(|e| Raised::about("kernel symbols", e))?;
            Ok(symbols)
        })?)
    }

    /// kernel_symbol(name) -> int: the address of kernel symbol `name`.
    fn kernel_symbol(slf: PyRef<'_, Self>, py: Python<'_>, name: &str) -> PyResult<u64> {
        let address = Self::with_os(&slf, py, |os| {
            os.kernel_symbol(name).map_err(|e| Raised::about(format!("kernel symbol `{name}`"), e))
        })?;
        Ok(address.to_umem() as u64)
    }

    /// type_member_offset(structure, member) -> int
    ///
    /// The offset of `member` in kernel structure `structure` (e.g. `"task_struct"`,
    /// `"comm"`), where the layer knows it; raises `NotFoundError` / `UnsupportedError` else.
    fn type_member_offset(slf: PyRef<'_, Self>, py: Python<'_>, structure: &str, member: &str) -> PyResult<u64> {
        let offset = Self::with_os(&slf, py, |os| {
            os.type_member_offset(structure, member).map_err(|e| Raised::about(format!("{structure}.{member}"), e))
        })?;
        Ok(offset as u64)
    }

    /// type_size(structure) -> int: the size of kernel structure `structure`, where known.
    fn type_size(slf: PyRef<'_, Self>, py: Python<'_>, structure: &str) -> PyResult<u64> {
        let size = Self::with_os(&slf, py, |os| {
            os.type_size(structure).map_err(|e| Raised::about(format!("struct {structure}"), e))
        })?;
        Ok(size as u64)
    }

    /// vtop(address) -> Translation: where kernel virtual `address` lies in physical memory.
    fn vtop(slf: PyRef<'_, Self>, py: Python<'_>, address: u64) -> PyResult<Translation> {
        let pa = Self::with_os(&slf, py, |os| {
            let translate =
                os.as_mut_impl_virtualtranslate().ok_or_else(|| unsupported("translation of kernel addresses"))?;
            translate.virt_to_phys(Address::from(address)).map_err(|e| Raised::about(format!("{address:#x}"), e))
        })?;
        Ok(Translation::from(&pa))
    }

    /// physical() -> Connector: the physical memory under the OS layer (an independent
    /// instance: closing one does not close the other).
    fn physical(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<PyObject> {
        let os = Self::with_os(&slf, py, |os| Ok(os.clone()))?;
        Connector::create(py, Handle::OsPhysical(os))
    }

    /// clone() -> Os: an independent instance of the same OS layer (e.g. one per thread).
    fn clone(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<PyObject> {
        let os = Self::with_os(&slf, py, |os| Ok(os.clone()))?;
        Os::create(py, os)
    }

    fn __repr__(slf: PyRef<'_, Self>, py: Python<'_>) -> String {
        match Self::with_os(&slf, py, |os| Ok(*os.info())) {
            Ok(info) => format!(
                "<memflow.Os: {} kernel at {:#x}>",
                memflow_cli::inspect::arch_name(info.arch),
                info.base.to_umem() as u64
            ),
            Err(_) => "<memflow.Os (closed)>".into(),
        }
    }
}
