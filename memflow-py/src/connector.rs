//! `Connector`: physical memory, its metadata and memory map, and the CPU state the connector
//! knows (registers of a dump's or a live guest's CPUs).

use std::ops::ControlFlow;
use std::path::PathBuf;

use memflow_cli::registers::{cpu_registers, CpuRegisters};
use memflow_core::connector::{write_dump, DumpMeta, Progress, WriteFormat};
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
fn cpu_state(handle: &mut Handle, cpu: Option<usize>) -> Result<(usize, Option<CpuRegisters>)> {
    fn of(state: Option<&impl CpuState>, cpu: Option<usize>) -> Result<(usize, Option<CpuRegisters>)> {
        let count = state.map_or(0, |s| s.cpu_count());
        let registers = match (state, cpu) {
            (_, None) => None,
            (None, Some(_)) => return Err(Raised::new(ErrorKind::Unsupported, "the connector has no CPU state")),
            (Some(s), Some(i)) => Some(cpu_registers(s, i).map_err(|e| Raised::about(format!("CPU {i}"), e))?),
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

    /// cpu_arch() -> str | None
    ///
    /// The family of the CPUs the connector knows the registers of: `"x86"`, `"aarch64"` or
    /// `"riscv64"` (a target's CPUs are of one family); `None` if it knows none.
    fn cpu_arch(slf: PyRef<'_, Self>, py: Python<'_>) -> PyResult<Option<&'static str>> {
        Ok(slf.as_ref().with_handle(py, |h| match cpu_state(h, None)? {
            (0, _) => Ok(None),
            _ => Ok(cpu_state(h, Some(0))?.1.map(|regs| regs.arch)),
        })?)
    }

    /// cpu_registers(cpu) -> dict[str, int]
    ///
    /// The registers of CPU `cpu` as the connector recorded them, by name, of the family
    /// `cpu_arch()` names. x86: `rax`..`r15`, `rip`, `rflags`, `cs`, `ss`, `fs_base`,
    /// `gs_base`, `kernel_gs_base`, `cr0`, `cr2`, `cr3`, `cr4`, `efer`, `cs_flags` (0 where
    /// not recorded). AArch64: `x0`..`x30`, `sp`, `pc`, `pstate`. RISC-V: `pc`, `x1`..`x31`
    /// (by number: `x2` is the stack pointer), and `satp` only where the connector knows it
    /// (QEMU's monitor, not its dumps). Raises `UnsupportedError` if the connector has no CPU
    /// state, `NotFoundError` for a CPU it has no registers of.
    fn cpu_registers<'py>(slf: PyRef<'py, Self>, py: Python<'py>, cpu: usize) -> PyResult<Bound<'py, PyDict>> {
        let (_, regs) = slf.as_ref().with_handle(py, |h| cpu_state(h, Some(cpu)))?;
        let regs = regs.ok_or_else(|| Raised::new(ErrorKind::Internal, "no registers for a CPU asked for"))?;
        let dict = PyDict::new(py);
        for (name, value) in regs.registers {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    /// dump(path, format="elf", *, progress=None) -> dict
    ///
    /// Writes this physical memory to the file `path` as `format`: `"elf"` (an ELF core as
    /// QEMU writes it, with the CPU state), `"lime"`, `"raw"` (sparse), `"kdump-zstd"`,
    /// `"kdump-snappy"` or `"kdump-zlib"`. Pages that cannot be read are left out of the file
    /// and listed in the result, never written as zeros. `progress(done, total)` is called
    /// with byte counts after each chunk (1 MiB); returning `False` stops the write, which
    /// then raises `CancelledError`. The file appears complete or not at all (it is written
    /// under a temporary name and renamed when done). Returns `{path, format, bytes_written,
    /// file_size, hole_pages, hole_runs, holes}`, `holes` as `(address, length)` pairs (the
    /// first 1024 runs).
    #[pyo3(signature = (path, format = "elf", *, progress = None), text_signature = "($self, path, format='elf', *, progress=None)")]
    fn dump<'py>(
        slf: PyRef<'py, Self>,
        py: Python<'py>,
        path: PathBuf,
        format: &str,
        progress: Option<PyObject>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let format = WriteFormat::from_name(format).ok_or_else(|| {
            let names: Vec<_> = WriteFormat::ALL.iter().map(|f| f.name()).collect();
            Raised::new(
                ErrorKind::InvalidArgument,
                format!("`{format}` is not a dump format; one of: {}", names.join(", ")),
            )
        })?;
        let mut callback_error: Option<PyErr> = None;
        let mut report = |p: Progress| {
            let Some(callback) = &progress else { return ControlFlow::Continue(()) };
            Python::with_gil(|py| match callback.call1(py, (p.done, p.total)) {
                Ok(answer) if matches!(answer.extract::<Option<bool>>(py), Ok(Some(false))) => ControlFlow::Break(()),
                Ok(_) => ControlFlow::Continue(()),
                Err(e) => {
                    callback_error = Some(e);
                    ControlFlow::Break(())
                }
            })
        };
        let written = slf.as_ref().with_handle(py, |handle| {
            let about = |e| Raised::about(format!("dump to {}", path.display()), e);
            match handle {
                Handle::Connector(conn) => {
                    let meta = DumpMeta::of_cpus(&*conn);
                    write_dump(conn, &meta, &path, format, &mut report).map_err(about)
                }
                Handle::OsPhysical(os) => {
                    let meta = DumpMeta::of_os(os);
                    let phys = os.as_mut_impl_physicalmemory().ok_or_else(|| unsupported("physical memory"))?;
                    write_dump(phys, &meta, &path, format, &mut report).map_err(about)
                }
                Handle::Os(_) | Handle::Process(_) => {
                    Err(Raised::new(ErrorKind::Internal, "not a physical memory handle"))
                }
            }
        });
        if let Some(e) = callback_error {
            return Err(e);
        }
        let summary = written?;
        let dict = PyDict::new(py);
        dict.set_item("path", path)?;
        dict.set_item("format", format.name())?;
        dict.set_item("bytes_written", summary.bytes_written)?;
        dict.set_item("file_size", summary.file_size)?;
        dict.set_item("hole_pages", summary.hole_pages)?;
        dict.set_item("hole_runs", summary.hole_runs)?;
        dict.set_item("holes", summary.holes)?;
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
