//! `Connector`: physical memory, its metadata and memory map, and the CPU state the connector
//! knows (registers of a dump's or a live guest's CPUs).

use memflow_core::connector::cpu_state::X86Registers;
use memflow_core::error::ErrorKind;
use memflow_core::mem::{PhysicalMemory, PhysicalMemoryMetadata};
use memflow_core::prelude::CpuState;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{Raised, Result};
use crate::space::{physical_ranges, unsupported, AddressSpace, Handle};

/// Physical memory of a target: a connector, or the physical memory under an OS layer
/// (`Os.physical()`). Reads and writes take physical addresses.
#[pyclass(module = "memflow", extends = AddressSpace, frozen)]
pub struct Connector;

impl Connector {
    /// A new Python `Connector` of `handle` (a connector or an OS layer's physical memory).
    pub fn create(py: Python<'_>, handle: Handle) -> PyResult<PyObject> {
        let init = PyClassInitializer::from(AddressSpace::new(handle)).add_subclass(Connector);
        Ok(Py::new(py, init)?.into_any())
    }
}

/// The physical memory of `handle`.
fn with_phys<R>(handle: &mut Handle, f: impl FnOnce(&dyn PhysicalMemoryFacts) -> Result<R>) -> Result<R> {
    match handle {
        Handle::Connector(conn) => f(&*conn),
        Handle::OsPhysical(os) => f(os.as_ref_impl_physicalmemory().ok_or_else(|| unsupported("physical memory"))?),
        Handle::Os(_) | Handle::Process(_) => Err(Raised::new(ErrorKind::Internal, "not a physical memory handle")),
    }
}

/// How many CPUs `handle` knows the state of, and the registers of `cpu` if one is asked for.
fn cpu_state(handle: &mut Handle, cpu: Option<usize>) -> Result<(usize, Option<X86Registers>)> {
    fn of(state: Option<&impl CpuState>, cpu: Option<usize>) -> Result<(usize, Option<X86Registers>)> {
        let count = state.map_or(0, |s| s.cpu_count());
        let registers = match (state, cpu) {
            (_, None) => None,
            (None, Some(_)) => return Err(Raised::new(ErrorKind::Unsupported, "the connector has no CPU state")),
            (Some(s), Some(i)) => Some(s.x86_registers(i).map_err(|e| Raised::about(format!("CPU {i}"), e))?),
        };
        Ok((count, registers))
    }
    match handle {
        Handle::Connector(conn) => of(conn.as_ref_impl_cpustate(), cpu),
        Handle::OsPhysical(os) => of(os.as_ref_impl_cpustate(), cpu),
        Handle::Os(_) | Handle::Process(_) => Err(Raised::new(ErrorKind::Internal, "not a physical memory handle")),
    }
}

/// What `Connector` asks of physical memory, object-safe.
trait PhysicalMemoryFacts {
    fn facts(&self) -> PhysicalMemoryMetadata;
    fn ranges(&self) -> Result<Vec<(u64, u64)>>;
}

impl<T: PhysicalMemory> PhysicalMemoryFacts for T {
    fn facts(&self) -> PhysicalMemoryMetadata {
        self.metadata()
    }

    fn ranges(&self) -> Result<Vec<(u64, u64)>> {
        physical_ranges(self)
    }
}

#[pymethods]
impl Connector {
    /// metadata() -> dict: `max_address` (the highest address that may be backed),
    /// `real_size` (how many bytes are backed) and `readonly`.
    fn metadata<'py>(slf: PyRef<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let meta = slf.as_ref().with_handle(py, |h| with_phys(h, |phys| Ok(phys.facts())))?;
        let dict = PyDict::new(py);
        dict.set_item("max_address", meta.max_address.to_umem() as u64)?;
        dict.set_item("real_size", meta.real_size as u64)?;
        dict.set_item("readonly", meta.readonly)?;
        Ok(dict)
    }

    /// mem_map() -> list[tuple[int, int]]: the backed ranges, as `(address, size)`.
    fn mem_map(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Vec<(u64, u64)>> {
        Ok(slf.as_ref().with_handle(py, |h| with_phys(h, |phys| phys.ranges()))?)
    }

    /// cpu_count() -> int: how many CPUs the connector knows the registers of (0 if none).
    fn cpu_count(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<usize> {
        Ok(slf.as_ref().with_handle(py, |h| cpu_state(h, None).map(|(count, _)| count))?)
    }

    /// cpu_registers(cpu) -> dict[str, int]
    ///
    /// The x86 registers of CPU `cpu` (`rip`, `rsp`, `cr3`, ...) as the connector recorded
    /// them; raises `UnsupportedError` if it has no CPU state.
    fn cpu_registers<'py>(slf: PyRef<'py, Self>, py: Python<'py>, cpu: usize) -> PyResult<Bound<'py, PyDict>> {
        let (_, regs) = slf.as_ref().with_handle(py, |h| cpu_state(h, Some(cpu)))?;
        let regs = regs.ok_or_else(|| Raised::new(ErrorKind::Internal, "no registers for a CPU asked for"))?;
        let dict = PyDict::new(py);
        let fields: [(&str, u64); 29] = [
            ("rax", regs.rax),
            ("rbx", regs.rbx),
            ("rcx", regs.rcx),
            ("rdx", regs.rdx),
            ("rsi", regs.rsi),
            ("rdi", regs.rdi),
            ("rbp", regs.rbp),
            ("rsp", regs.rsp),
            ("r8", regs.r8),
            ("r9", regs.r9),
            ("r10", regs.r10),
            ("r11", regs.r11),
            ("r12", regs.r12),
            ("r13", regs.r13),
            ("r14", regs.r14),
            ("r15", regs.r15),
            ("rip", regs.rip),
            ("rflags", regs.rflags),
            ("cs", regs.cs.into()),
            ("ss", regs.ss.into()),
            ("fs_base", regs.fs_base),
            ("gs_base", regs.gs_base),
            ("kernel_gs_base", regs.kernel_gs_base),
            ("cr0", regs.cr0),
            ("cr2", regs.cr2),
            ("cr3", regs.cr3),
            ("cr4", regs.cr4),
            ("efer", regs.efer),
            ("cs_flags", regs.cs_flags.into()),
        ];
        for (name, value) in fields {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    /// clone() -> Connector: an independent instance of the same target (e.g. one per thread).
    fn clone(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<PyObject> {
        let handle = slf.as_ref().clone_handle(py)?;
        Connector::create(py, handle)
    }

    fn __repr__(slf: PyRef<'_, Self>, py: Python<'_>) -> String {
        match slf.as_ref().with_handle(py, |h| with_phys(h, |phys| Ok(phys.facts().real_size as u64))) {
            Ok(size) => format!("<memflow.Connector: {size} bytes of physical memory>"),
            Err(_) => "<memflow.Connector (closed)>".into(),
        }
    }
}
