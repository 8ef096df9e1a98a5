//! The registers of one CPU by name, whatever its architecture: what `memflow info` and the
//! Python package's `Connector.cpu_registers` show.

use memflow_core::arch::ArchitectureIdent;
use memflow_core::connector::cpu_state::{AArch64Registers, RiscVRegisters, X86Registers};
use memflow_core::error::{Error, ErrorKind, ErrorOrigin, Result};
use memflow_core::prelude::CpuState;
use memflow_core::types::Address;

/// `x0`..`x31`: the general registers of AArch64 (`x0`..`x30`) and RISC-V (`x1`..`x31`) by
/// number.
const X: [&str; 32] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17",
    "x18", "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "x30", "x31",
];

/// The registers of one CPU as a connector recorded them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuRegisters {
    /// The CPU's family: `"x86"` (32- and 64-bit), `"aarch64"` or `"riscv64"`.
    pub arch: &'static str,
    /// Each register's name and value, in the architecture's order: x86 `rax`..`r15`, `rip`,
    /// `rflags`, `cs`, `ss`, `fs_base`, `gs_base`, `kernel_gs_base`, `cr0`, `cr2`, `cr3`, `cr4`,
    /// `efer`, `cs_flags` (all of them; those the connector did not record are 0, see
    /// [`X86Registers::valid`]); AArch64 `x0`..`x30`, `sp`, `pc`, `pstate`; RISC-V `pc`,
    /// `x1`..`x31` (by number: `x2` is `sp`), then `satp` if the connector knows it.
    pub registers: Vec<(&'static str, u64)>,
    /// The architecture to translate the CPU's addresses with and its page-table root, where
    /// the registers name them (x86 control registers, RISC-V `satp`; never AArch64's, whose
    /// translation registers connectors do not record).
    pub paging: Option<(ArchitectureIdent, Address)>,
}

impl From<&X86Registers> for CpuRegisters {
    fn from(r: &X86Registers) -> Self {
        let registers = vec![
            ("rax", r.rax),
            ("rbx", r.rbx),
            ("rcx", r.rcx),
            ("rdx", r.rdx),
            ("rsi", r.rsi),
            ("rdi", r.rdi),
            ("rbp", r.rbp),
            ("rsp", r.rsp),
            ("r8", r.r8),
            ("r9", r.r9),
            ("r10", r.r10),
            ("r11", r.r11),
            ("r12", r.r12),
            ("r13", r.r13),
            ("r14", r.r14),
            ("r15", r.r15),
            ("rip", r.rip),
            ("rflags", r.rflags),
            ("cs", r.cs.into()),
            ("ss", r.ss.into()),
            ("fs_base", r.fs_base),
            ("gs_base", r.gs_base),
            ("kernel_gs_base", r.kernel_gs_base),
            ("cr0", r.cr0),
            ("cr2", r.cr2),
            ("cr3", r.cr3),
            ("cr4", r.cr4),
            ("efer", r.efer),
            ("cs_flags", r.cs_flags.into()),
        ];
        CpuRegisters { arch: "x86", registers, paging: r.paging() }
    }
}

impl From<&AArch64Registers> for CpuRegisters {
    fn from(r: &AArch64Registers) -> Self {
        let mut registers: Vec<_> = X.iter().copied().zip(r.x).collect();
        registers.extend([("sp", r.sp), ("pc", r.pc), ("pstate", r.pstate)]);
        CpuRegisters { arch: "aarch64", registers, paging: None }
    }
}

impl From<&RiscVRegisters> for CpuRegisters {
    fn from(r: &RiscVRegisters) -> Self {
        // `x0` is the zero register: not recorded, always 0.
        let mut registers = vec![("pc", r.pc)];
        registers.extend(X.iter().copied().zip(r.x).skip(1));
        if r.satp_valid {
            registers.push(("satp", r.satp));
        }
        CpuRegisters { arch: "riscv64", registers, paging: r.paging() }
    }
}

/// The names of the program counter and the stack pointer among the registers of `arch` (a
/// [`CpuRegisters::arch`]).
pub fn pc_and_sp(arch: &str) -> (&'static str, &'static str) {
    match arch {
        "x86" => ("rip", "rsp"),
        "aarch64" => ("pc", "sp"),
        _ => ("pc", "x2"),
    }
}

/// `Some` registers read, `None` if the CPU is not of that family (`NotFound`), or the error.
fn of_family<R>(read: Result<R>) -> Result<Option<R>> {
    match read {
        Ok(registers) => Ok(Some(registers)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The registers of CPU `cpu` (0-based) of `state`, of whichever family the target's CPUs are.
/// `NotFound` if `cpu >= cpu_count()` or the CPU is of none of the families `CpuState` reads.
pub fn cpu_registers(state: &impl CpuState, cpu: usize) -> Result<CpuRegisters> {
    let count = state.cpu_count();
    if cpu >= count {
        return Err(Error::new(ErrorOrigin::Connector, ErrorKind::NotFound)
            .with_reason(format_args!("no CPU {cpu}: the target has the state of {count} CPUs")));
    }
    if let Some(r) = of_family(state.x86_registers(cpu))? {
        return Ok(CpuRegisters::from(&r));
    }
    if let Some(r) = of_family(state.aarch64_registers(cpu))? {
        return Ok(CpuRegisters::from(&r));
    }
    if let Some(r) = of_family(state.riscv_registers(cpu))? {
        return Ok(CpuRegisters::from(&r));
    }
    Err(Error::new(ErrorOrigin::Connector, ErrorKind::NotFound)
        .with_reason(format_args!("CPU {cpu} has no x86, AArch64 or RISC-V registers")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn riscv_lists_pc_and_x1_to_x31_and_satp_only_when_known() {
        let mut r = RiscVRegisters { pc: 0x10, ..Default::default() };
        r.x[1] = 0x11;
        r.x[31] = 0x31;
        let names = |c: &CpuRegisters| c.registers.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        let regs = CpuRegisters::from(&r);
        assert_eq!(regs.registers.len(), 32);
        assert_eq!(&regs.registers[..2], &[("pc", 0x10), ("x1", 0x11)]);
        assert_eq!(regs.registers[31], ("x31", 0x31));
        assert!(!names(&regs).contains(&"satp") && regs.paging.is_none());
        r.satp_valid = true;
        r.satp = 0x8004_6000_0008_2c6b;
        let regs = CpuRegisters::from(&r);
        assert_eq!(regs.registers.last(), Some(&("satp", r.satp)));
        assert_eq!(regs.paging, Some((ArchitectureIdent::RiscVSv39, Address::new(0x82c6_b000))));
    }

    #[test]
    fn aarch64_lists_x0_to_x30_then_sp_pc_pstate() {
        let mut r = AArch64Registers { sp: 1, pc: 2, pstate: 3, ..Default::default() };
        r.x[30] = 0x30;
        let regs = CpuRegisters::from(&r);
        assert_eq!(regs.arch, "aarch64");
        assert_eq!(regs.registers.len(), 34);
        assert_eq!(regs.registers[30], ("x30", 0x30));
        assert_eq!(&regs.registers[31..], &[("sp", 1), ("pc", 2), ("pstate", 3)]);
    }
}
