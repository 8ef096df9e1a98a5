//! `Process`: one process's address space, threads, modules, exports and mappings.

use memflow_cli::inspect::state_name;
use memflow_core::error::ErrorKind;
use memflow_core::os::{ModuleInfo, Process as _};
use memflow_core::prelude::ProcessInstanceArcBox;
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::Address;
use pyo3::prelude::*;

use crate::errors::{Raised, Result};
use crate::info::{Export, MemoryRange, Module, ProcessInfo, Thread, Translation};
use crate::space::{AddressSpace, Handle};

/// A process of an OS layer (`Os.process(...)`). Reads and writes take the process's virtual
/// addresses.
#[pyclass(module = "memflow", extends = AddressSpace, frozen)]
pub struct Process {
    /// What the OS layer knew of the process when it was opened.
    #[pyo3(get)]
    info: ProcessInfo,
}

/// A module given as a `Module` or by name.
#[derive(FromPyObject)]
enum ModuleArg {
    Module(Module),
    Name(String),
}

impl Process {
    /// A new Python `Process` of `proc`.
    pub fn create(py: Python<'_>, proc: ProcessInstanceArcBox<'static>) -> PyResult<PyObject> {
        let info = ProcessInfo::from(proc.info());
        let init = PyClassInitializer::from(AddressSpace::new(Handle::Process(proc))).add_subclass(Process { info });
        Ok(Py::new(py, init)?.into_any())
    }

    /// Runs `f` on the process with the GIL released.
    fn with_proc<R: Send>(
        slf: &PyRef<'_, Self>,
        py: Python<'_>,
        f: impl FnOnce(&mut ProcessInstanceArcBox<'static>) -> Result<R> + Send,
    ) -> Result<R> {
        slf.as_ref().with_handle(py, |handle| match handle {
            Handle::Process(proc) => f(proc),
            _ => Err(Raised::new(ErrorKind::Internal, "not a process handle")),
        })
    }
}

/// The module `module` names in `proc`.
fn module_info(proc: &mut ProcessInstanceArcBox<'static>, module: &ModuleArg) -> Result<ModuleInfo> {
    let name = match module {
        ModuleArg::Module(m) => &m.name,
        ModuleArg::Name(name) => name,
    };
    proc.module_by_name(name).map_err(|e| Raised::about(format!("module `{name}`"), e))
}

#[pymethods]
impl Process {
    /// state() -> str: `"alive"`, `"dead"` or `"unknown"`, asked of the OS layer now.
    fn state(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<&'static str> {
        let state = Self::with_proc(&slf, py, |proc| Ok(proc.state()))?;
        Ok(state_name(state))
    }

    /// threads() -> list[Thread]: the process's threads as the OS layer lists them (native:
    /// `/proc/PID/task`; Linux guests: the thread group's list in the kernel). Raises
    /// `UnsupportedError` where the layer does not know threads.
    fn threads(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Vec<Thread>> {
        let list = Self::with_proc(&slf, py, |proc| proc.thread_list().map_err(|e| Raised::about("threads", e)))?;
        Ok(list.iter().map(Thread::from).collect())
    }

    /// modules() -> list[Module]: the process's loaded images and libraries.
    fn modules(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Vec<Module>> {
        let list = Self::with_proc(&slf, py, |proc| proc.module_list().map_err(|e| Raised::about("modules", e)))?;
        Ok(list.iter().map(Module::from).collect())
    }

    /// module(name) -> Module: the module of that name.
    fn module(slf: PyRef<'_, Self>, py: Python<'_>, name: String) -> PyResult<Module> {
        let info = Self::with_proc(&slf, py, |proc| module_info(proc, &ModuleArg::Name(name)))?;
        Ok(Module::from(&info))
    }

    /// primary_module() -> Module: the process's executable image.
    fn primary_module(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Module> {
        let info =
            Self::with_proc(&slf, py, |proc| proc.primary_module().map_err(|e| Raised::about("primary module", e)))?;
        Ok(Module::from(&info))
    }

    /// exports(module) -> list[Export]: the symbols `module` (a `Module` or a name) exports.
    fn exports(slf: PyRef<'_, Self>, py: Python<'_>, module: ModuleArg) -> PyResult<Vec<Export>> {
        let (base, list) = Self::with_proc(&slf, py, |proc| {
            let info = module_info(proc, &module)?;
            let exports =
                proc.module_exports(&info).map_err(|e| Raised::about(format!("exports of `{}`", info.name), e))?;
            Ok((info.base.to_umem() as u64, exports))
        })?;
        Ok(list.iter().map(|e| Export::of(base, e)).collect())
    }

    /// maps(gap=-1) -> list[MemoryRange]
    ///
    /// The process's mapped ranges, in order; ranges of the same access closer than `gap`
    /// bytes are merged (-1: merge all adjacent ones).
    #[pyo3(signature = (gap = -1), text_signature = "($self, gap=-1)")]
    fn maps(slf: PyRef<'_, Self>, py: Python<'_>, gap: i64) -> PyResult<Vec<MemoryRange>> {
        let list =
            Self::with_proc(&slf, py, |proc| proc.mapped_mem(gap as _).map_err(|e| Raised::about("mappings", e)))?;
        Ok(list.iter().map(MemoryRange::from).collect())
    }

    /// vtop(address) -> Translation: where `address` lies in physical memory (guests only:
    /// native processes raise `UnsupportedError`).
    fn vtop(slf: PyRef<'_, Self>, py: Python<'_>, address: u64) -> PyResult<Translation> {
        let pa = Self::with_proc(&slf, py, |proc| {
            proc.virt_to_phys(Address::from(address)).map_err(|e| Raised::about(format!("{address:#x}"), e))
        })?;
        Ok(Translation::from(&pa))
    }

    /// clone() -> Process: an independent instance of the same process (e.g. one per thread).
    fn clone(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<PyObject> {
        let proc = Self::with_proc(&slf, py, |proc| Ok(proc.clone()))?;
        Process::create(py, proc)
    }

    fn __repr__(&self) -> String {
        format!("<memflow.Process {} {:?}>", self.info.pid, self.info.name)
    }
}
