//! What differs between the architectures the layer reads, x86-64, AArch64 and RISC-V;
//! everything else (kallsyms, BTF, tasks, VMAs, modules, symbols) is shared.
//!
//! - Where the kernel image is and how its page tables are found: [`x86_64`] (the image
//!   window at `__START_KERNEL_map`, CR3 from the CPU state or a scan), [`aarch64`] (the
//!   kernel's TTBR1 table found by its linear map, the image by its header anywhere in the
//!   upper half, so KASLR needs nothing more: kallsyms holds the relocated addresses) and
//!   [`riscv64`] (the kernel's table and paging mode found by its linear map and the image
//!   header in the top 2 GiB).
//! - The table roots of an address space ([`LinuxArch::roots`]): x86-64 and RISC-V
//!   translate both halves through one table, a process's (`mm->pgd`) mapping the kernel too
//!   (RISC-V's root register `satp` holds the table's page number); AArch64 has a table per
//!   half, the process's for the user half (TTBR0) and the kernel's for the kernel half
//!   (TTBR1).
//! - The architecture of 32-bit ELF images in a process ([`LinuxArch::elf32`]).
//!
//! `mm->pgd` is a kernel address in the linear map on all three; its physical address comes
//! from translating it through the kernel's tables, so the linear map's offset (x86-64's
//! `page_offset_base`, AArch64's `PAGE_OFFSET` and `memstart_addr`, RISC-V's
//! `kernel_map.va_pa_offset`) is never needed.

pub mod aarch64;
pub mod riscv64;
mod x86_64;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::PhysicalMemory;
use crate::types::Address;

use super::scan::{self, FoundKernel};

/// The architecture families the layer reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinuxArch {
    /// x86-64 with 4- or 5-level paging.
    X86_64,
    /// AArch64 with any granule.
    AArch64,
    /// RISC-V Sv39, Sv48 or Sv57.
    RiscV,
}

impl LinuxArch {
    /// The family of the paging mode `arch`; `Unsupported` for the modes the layer does not read.
    pub fn of(arch: ArchitectureIdent) -> Result<LinuxArch> {
        match arch {
            ArchitectureIdent::X86_64 | ArchitectureIdent::X86_64La57 => Ok(LinuxArch::X86_64),
            ArchitectureIdent::AArch64 { .. } => Ok(LinuxArch::AArch64),
            ArchitectureIdent::RiscVSv39 | ArchitectureIdent::RiscVSv48 | ArchitectureIdent::RiscVSv57 => {
                Ok(LinuxArch::RiscV)
            }
            _ => Err(Error::new(ErrorOrigin::Os, ErrorKind::Unsupported).with_reason(format_args!(
                "linux: {arch:?} guests are not supported (x86-64, AArch64 and RISC-V are)"
            ))),
        }
    }

    /// The root register value for a process's top-level table at physical `table` (its
    /// `mm->pgd`): the address itself, or on RISC-V `satp`'s page number.
    pub fn user_root(self, table: Address) -> Address {
        match self {
            LinuxArch::X86_64 | LinuxArch::AArch64 => table,
            LinuxArch::RiscV => riscv64::satp(table),
        }
    }

    /// The root registers of an address space whose user half is translated by the table of
    /// the root register value `user` (see [`LinuxArch::user_root`]; NULL for the kernel's
    /// own address space) and whose kernel half by the kernel's table at physical `kernel`.
    pub fn roots(self, user: Address, kernel: Address) -> Vec<Address> {
        match (self, user.is_null()) {
            (LinuxArch::X86_64, true) => vec![kernel],
            (LinuxArch::X86_64, false) => vec![user],
            (LinuxArch::AArch64, true) => vec![Address::INVALID, kernel],
            (LinuxArch::AArch64, false) => vec![user, kernel],
            (LinuxArch::RiscV, true) => vec![riscv64::satp(kernel)],
            (LinuxArch::RiscV, false) => vec![user],
        }
    }

    /// The root registers of the kernel's address space (the kernel's table at `kernel`).
    pub fn kernel_roots(self, kernel: Address) -> Vec<Address> {
        self.roots(Address::NULL, kernel)
    }

    /// The architecture 32-bit ELF images in a process run as, where the layer has one
    /// (AArch32 has no paging mode of its own here).
    pub fn elf32(self) -> Option<ArchitectureIdent> {
        match self {
            LinuxArch::X86_64 => Some(ArchitectureIdent::X86_32),
            LinuxArch::AArch64 | LinuxArch::RiscV => None,
        }
    }
}

/// Finds the kernel, trying the families in turn: those `hints` name first (in the order of
/// the hints), then the rest in the order x86-64, AArch64, RISC-V. x86-64 and RISC-V try the
/// hints' table roots before they scan; a hint with a NULL root only names its family (a
/// CPU whose registers give no table root, see [`crate::os::linux::cpu_hints`]). The kernel
/// found is read in the tables it names (see [`scan::finish`]). Without any, the x86-64
/// search's error (it names what was missing).
pub(super) fn find_kernel<P: PhysicalMemory>(
    mem: &mut P,
    hints: &[(ArchitectureIdent, Address)],
) -> Result<FoundKernel> {
    let roots: Vec<_> = hints.iter().filter(|(_, root)| !root.is_null()).copied().collect();
    let named = |family: &LinuxArch| hints.iter().position(|&(arch, _)| LinuxArch::of(arch).ok() == Some(*family));
    let mut families = [LinuxArch::X86_64, LinuxArch::AArch64, LinuxArch::RiscV];
    // A family no hint names sorts after all named ones; the sort is stable.
    families.sort_by_key(|family| named(family).unwrap_or(usize::MAX));
    let mut x86_error = None;
    for family in families {
        let found = match family {
            LinuxArch::X86_64 => match x86_64::find_kernel(mem, &roots) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    x86_error = Some(e);
                    continue;
                }
            },
            LinuxArch::AArch64 => aarch64::find_kernel(mem)?,
            LinuxArch::RiscV => riscv64::find_kernel(mem, &roots)?,
        };
        if let Some(found) = found {
            let arch = found.arch;
            return scan::finish(mem, found, arch);
        }
    }
    Err(x86_error.unwrap_or_else(|| Error::new(ErrorOrigin::Os, ErrorKind::NotFound).with_reason("no kernel found")))
}
