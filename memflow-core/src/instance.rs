//! The objects plugins hand out: cglue trait groups that carry their plugin library along.
//!
//! They sit below `os/` and `connector/` (which implement them and return them, e.g.
//! [`crate::os::Os::process_by_info`]) and below `plugins/` (which re-exports them).
//!
//! An instance is a boxed object plus a context ([`LibArc`]) that keeps the library it came
//! from loaded for as long as the instance, or anything made from it, lives. Built-in plugins
//! use an empty context.

use cglue::prelude::v1::*;

use crate::connector::cpu_state::*;
use crate::mem::*;
use crate::os::*;
use crate::translate::*;

/// A reference-counted handle that keeps a plugin library loaded (empty for built-ins).
pub type LibArc = CArc<cglue::trait_group::c_void>;

cglue_trait_group!(ConnectorInstance, { PhysicalMemory, Clone }, { CpuState });
cglue_trait_group!(OsInstance, { Os, Clone }, { PhysicalMemory, MemoryView, VirtualTranslate, CpuState });
cglue_trait_group!(ProcessInstance, { Process, MemoryView, Clone }, { VirtualTranslate });

/// Makes a connector instance of `conn` that keeps `lib` loaded. `conn`'s type must be
/// registered with `cglue_impl_group!(Type, ConnectorInstance, {...})`.
pub fn connector_instance<T>(conn: T, lib: LibArc) -> ConnectorInstanceArcBox<'static>
where
    T: Send + 'static,
    (T, LibArc): Into<ConnectorInstanceBaseArcBox<'static, T, cglue::trait_group::c_void>>,
{
    group_obj!((conn, lib) as ConnectorInstance)
}

/// Makes an OS instance of `os` that keeps `lib` loaded (see [`connector_instance`]).
pub fn os_instance<T>(os: T, lib: LibArc) -> OsInstanceArcBox<'static>
where
    T: Send + 'static,
    (T, LibArc): Into<OsInstanceBaseArcBox<'static, T, cglue::trait_group::c_void>>,
{
    group_obj!((os, lib) as OsInstance)
}

/// Makes a process instance of `process` that keeps `lib` loaded (see [`connector_instance`]).
pub fn process_instance<T>(process: T, lib: LibArc) -> ProcessInstanceArcBox<'static>
where
    T: Send + 'static,
    (T, LibArc): Into<ProcessInstanceBaseArcBox<'static, T, cglue::trait_group::c_void>>,
{
    group_obj!((process, lib) as ProcessInstance)
}

/// A connector instance reports the CPU state of its connector, or none (zero CPUs) if the
/// connector has none, so that layers holding one can pass it on (see `LinuxOs`).
impl CpuState for ConnectorInstanceArcBox<'static> {
    fn cpu_count(&self) -> usize {
        self.as_ref_impl_cpustate().map_or(0, |c| c.cpu_count())
    }

    fn x86_registers(&self, cpu: usize) -> crate::error::Result<X86Registers> {
        self.as_ref_impl_cpustate().ok_or_else(no_cpu_state)?.x86_registers(cpu)
    }

    fn aarch64_registers(&self, cpu: usize) -> crate::error::Result<AArch64Registers> {
        self.as_ref_impl_cpustate().ok_or_else(no_cpu_state)?.aarch64_registers(cpu)
    }

    fn riscv_registers(&self, cpu: usize) -> crate::error::Result<RiscVRegisters> {
        self.as_ref_impl_cpustate().ok_or_else(no_cpu_state)?.riscv_registers(cpu)
    }

    fn vmcoreinfo(&self, buf: &mut [u8]) -> crate::error::Result<usize> {
        self.as_ref_impl_cpustate().ok_or_else(no_cpu_state)?.vmcoreinfo(buf)
    }
}

/// The error of asking a connector without CPU state for registers.
fn no_cpu_state() -> crate::error::Error {
    crate::error::Error::new(crate::error::ErrorOrigin::Connector, crate::error::ErrorKind::Unsupported)
        .with_reason("the connector has no CPU state")
}

/// A process instance translates its addresses when its OS layer offers translation, and
/// fails with `Unsupported` otherwise, so that callers need not ask for the optional trait.
impl VirtualTranslate for ProcessInstanceArcBox<'static> {
    fn virt_to_phys_list(
        &mut self,
        addrs: cglue::iter::CIterator<crate::types::Address>,
        out: TranslationCallback,
        out_fail: FailureCallback,
    ) -> crate::error::Result<()> {
        self.as_mut_impl_virtualtranslate().ok_or_else(no_translation)?.virt_to_phys_list(addrs, out, out_fail)
    }

    fn virt_page_map_range(
        &mut self,
        gap: crate::types::umem,
        start: crate::types::Address,
        end: crate::types::Address,
        out: MemoryRangeCallback,
    ) -> crate::error::Result<()> {
        self.as_mut_impl_virtualtranslate().ok_or_else(no_translation)?.virt_page_map_range(gap, start, end, out)
    }

    fn virt_translation_map_range(
        &mut self,
        start: crate::types::Address,
        end: crate::types::Address,
        out: TranslationRangeCallback,
    ) -> crate::error::Result<()> {
        self.as_mut_impl_virtualtranslate().ok_or_else(no_translation)?.virt_translation_map_range(start, end, out)
    }
}

/// The error of a process whose OS layer offers no address translation.
fn no_translation() -> crate::error::Error {
    crate::error::Error::new(crate::error::ErrorOrigin::Process, crate::error::ErrorKind::Unsupported)
        .with_reason("the process's OS layer offers no address translation")
}
