//! CPU state a connector knows about its target: registers per CPU, so an OS layer can find
//! the page-table root (CR3) and the paging mode without guessing. A target's CPUs are x86
//! ([`X86Registers`]), AArch64 ([`AArch64Registers`]) or RISC-V ([`RiscVRegisters`]).

use cglue::prelude::v1::*;

use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::types::{umem, Address};

bitflags::bitflags! {
    /// Which groups of [`X86Registers`] hold values read from the target. Fields of groups
    /// that are not set are zero and mean nothing.
    #[repr(transparent)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct X86RegisterSet: u32 {
        /// `rax`..`r15`, `rip` and `rflags`.
        const GENERAL = 1 << 0;
        /// The segment selectors `cs`, `ss`, `ds`, `es`, `fs`, `gs`.
        const SELECTORS = 1 << 1;
        /// `cs_flags`: the hidden attributes of the code segment (for `CS.L`).
        const CS_FLAGS = 1 << 2;
        /// `fs_base` and `gs_base`.
        const SEGMENT_BASES = 1 << 3;
        /// `kernel_gs_base` (the `IA32_KERNEL_GS_BASE` MSR).
        const KERNEL_GS_BASE = 1 << 4;
        /// `cr0`, `cr2`, `cr3` and `cr4`.
        const CONTROL = 1 << 5;
        /// `efer` (the `IA32_EFER` MSR).
        const EFER = 1 << 6;
        /// The CPU ran in long mode (`EFER.LMA`). Set from `efer` when the target records it,
        /// otherwise inferred by the connector (see its documentation); clear when unknown or
        /// not in long mode.
        const LONG_MODE = 1 << 7;
    }
}

/// `CR0.PG`: paging enabled.
pub const CR0_PG: u64 = 1 << 31;
/// `CR4.PAE`: physical address extension (64-bit page-table entries).
pub const CR4_PAE: u64 = 1 << 5;
/// `CR4.LA57`: 5-level paging in long mode.
pub const CR4_LA57: u64 = 1 << 12;
/// `EFER.LMA`: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// `CS.L` in [`X86Registers::cs_flags`]: a 64-bit code segment. The flags use the layout of
/// the high dword of a segment descriptor, as QEMU stores them.
pub const CS_FLAGS_L: u32 = 1 << 21;

/// The paging mode of an x86 CPU, derived from its control registers.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum X86ArchHint {
    /// The control registers are not known.
    Unknown = 0,
    /// Paging is off (`CR0.PG` clear): virtual addresses are physical.
    NoPaging = 1,
    /// 32-bit paging: 2-level tables of 32-bit entries.
    X86 = 2,
    /// 32-bit PAE paging: 3-level tables of 64-bit entries.
    X86Pae = 3,
    /// Long mode with 4-level paging.
    X86_64 = 4,
    /// Long mode with 5-level paging (`CR4.LA57`).
    X86_64La57 = 5,
}

/// The registers of one x86 or x86-64 CPU as recorded by a connector.
///
/// [`X86Registers::valid`] says which fields hold real values. 32-bit targets store their
/// 32-bit registers zero-extended (`eax` in `rax`, ...).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct X86Registers {
    /// Which of the fields below hold values read from the target.
    pub valid: X86RegisterSet,
    /// Hidden attributes of the code segment (descriptor high-dword layout; see [`CS_FLAGS_L`]).
    pub cs_flags: u32,
    /// General register `rax`.
    pub rax: u64,
    /// General register `rbx`.
    pub rbx: u64,
    /// General register `rcx`.
    pub rcx: u64,
    /// General register `rdx`.
    pub rdx: u64,
    /// General register `rsi`.
    pub rsi: u64,
    /// General register `rdi`.
    pub rdi: u64,
    /// Frame pointer `rbp`.
    pub rbp: u64,
    /// Stack pointer `rsp`.
    pub rsp: u64,
    /// General register `r8`.
    pub r8: u64,
    /// General register `r9`.
    pub r9: u64,
    /// General register `r10`.
    pub r10: u64,
    /// General register `r11`.
    pub r11: u64,
    /// General register `r12`.
    pub r12: u64,
    /// General register `r13`.
    pub r13: u64,
    /// General register `r14`.
    pub r14: u64,
    /// General register `r15`.
    pub r15: u64,
    /// Instruction pointer.
    pub rip: u64,
    /// Flags register.
    pub rflags: u64,
    /// Code segment selector.
    pub cs: u16,
    /// Stack segment selector.
    pub ss: u16,
    /// Data segment selector.
    pub ds: u16,
    /// Extra segment selector.
    pub es: u16,
    /// `fs` selector.
    pub fs: u16,
    /// `gs` selector.
    pub gs: u16,
    /// Base of the `fs` segment.
    pub fs_base: u64,
    /// Base of the `gs` segment.
    pub gs_base: u64,
    /// The `IA32_KERNEL_GS_BASE` MSR (swapped into `gs_base` by `swapgs`).
    pub kernel_gs_base: u64,
    /// Control register 0 (`PG` is bit 31).
    pub cr0: u64,
    /// Control register 2 (the last page-fault address).
    pub cr2: u64,
    /// Control register 3: the page-table root plus PCID or cache-control bits.
    pub cr3: u64,
    /// Control register 4 (`PAE` is bit 5, `LA57` bit 12).
    pub cr4: u64,
    /// The `IA32_EFER` MSR (`LMA` is bit 10).
    pub efer: u64,
}

impl X86Registers {
    /// The paging mode: long mode from [`X86RegisterSet::LONG_MODE`], then `CR4.LA57` or
    /// `CR4.PAE` pick the table format. `Unknown` without control registers.
    pub fn arch_hint(&self) -> X86ArchHint {
        if !self.valid.contains(X86RegisterSet::CONTROL) {
            X86ArchHint::Unknown
        } else if self.cr0 & CR0_PG == 0 {
            X86ArchHint::NoPaging
        } else if self.valid.contains(X86RegisterSet::LONG_MODE) {
            if self.cr4 & CR4_LA57 != 0 {
                X86ArchHint::X86_64La57
            } else {
                X86ArchHint::X86_64
            }
        } else if self.cr4 & CR4_PAE != 0 {
            X86ArchHint::X86Pae
        } else {
            X86ArchHint::X86
        }
    }

    /// The physical address of the top-level page table: CR3 without the PCID / cache-control
    /// bits (and without bits above 51, where AMD SME keeps its encryption bit), as the
    /// paging mode defines it (32-byte aligned for PAE, 4 KiB aligned otherwise).
    /// `None` without control registers or with paging off.
    pub fn page_table_root(&self) -> Option<Address> {
        let mask: u64 = match self.arch_hint() {
            X86ArchHint::Unknown | X86ArchHint::NoPaging => return None,
            X86ArchHint::X86 => 0xffff_f000,
            X86ArchHint::X86Pae => 0xffff_ffe0,
            X86ArchHint::X86_64 | X86ArchHint::X86_64La57 => 0x000f_ffff_ffff_f000,
        };
        Some(Address::new(umem::from(self.cr3 & mask)))
    }

    /// Infers [`X86RegisterSet::LONG_MODE`] for targets that do not record `EFER`: long mode
    /// needs paging and PAE, and then either a 64-bit code segment (`CS.L`) or outside
    /// evidence (`long_mode_evidence`, e.g. the dump used the 64-bit register layout).
    /// With `EFER` known, `EFER.LMA` decides alone.
    pub fn infer_long_mode(&mut self, long_mode_evidence: bool) {
        let long = if self.valid.contains(X86RegisterSet::EFER) {
            self.efer & EFER_LMA != 0
        } else {
            let paging =
                self.valid.contains(X86RegisterSet::CONTROL) && self.cr0 & CR0_PG != 0 && self.cr4 & CR4_PAE != 0;
            let cs_long = self.valid.contains(X86RegisterSet::CS_FLAGS) && self.cs_flags & CS_FLAGS_L != 0;
            paging && (cs_long || long_mode_evidence)
        };
        self.valid.set(X86RegisterSet::LONG_MODE, long);
    }

    /// The architecture to translate this CPU's addresses with and its page-table root, as
    /// [`crate::virt::VirtualDma::new`] takes them; `None` without paging or control registers.
    pub fn paging(&self) -> Option<(ArchitectureIdent, Address)> {
        let arch = match self.arch_hint() {
            X86ArchHint::X86 => ArchitectureIdent::X86_32,
            X86ArchHint::X86Pae => ArchitectureIdent::X86Pae,
            X86ArchHint::X86_64 => ArchitectureIdent::X86_64,
            X86ArchHint::X86_64La57 => ArchitectureIdent::X86_64La57,
            X86ArchHint::Unknown | X86ArchHint::NoPaging => return None,
        };
        Some((arch, self.page_table_root()?))
    }
}

/// The general registers of one AArch64 CPU as recorded by a connector: the kernel's
/// `user_pt_regs`, what an AArch64 core's `NT_PRSTATUS` note holds. Translation registers
/// (TTBR0/1, TCR) are not among them: neither QEMU's dumps nor its monitor give them.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AArch64Registers {
    /// `x0` to `x30` (`x29` is the frame pointer, `x30` the link register).
    pub x: [u64; 31],
    /// The stack pointer of the exception level the CPU was in.
    pub sp: u64,
    /// The program counter.
    pub pc: u64,
    /// `PSTATE` as `SPSR` holds it (the exception level in bits 2 and 3).
    pub pstate: u64,
}

/// The registers of one 64-bit RISC-V CPU as recorded by a connector: `pc` and `x1`..`x31`,
/// what a riscv64 core's `NT_PRSTATUS` note holds (the kernel's `user_regs_struct`), and
/// `satp` where the connector knows it (QEMU's monitor shows it; its dumps do not).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RiscVRegisters {
    /// The program counter.
    pub pc: u64,
    /// `x0` to `x31` by number (`x1` is `ra`, `x2` `sp`, `x3` `gp`, `x4` `tp`, `x8` `s0`/`fp`,
    /// `x10` `a0`); `x[0]` is the zero register, always 0.
    pub x: [u64; 32],
    /// The address translation register: mode in bits 60..64, ASID in 44..60, the root
    /// table's page number in 0..44. Meaningful only if [`RiscVRegisters::satp_valid`].
    pub satp: u64,
    /// Whether [`RiscVRegisters::satp`] was read from the target.
    pub satp_valid: bool,
}

/// `satp.MODE` of Sv39 paging.
pub const SATP_MODE_SV39: u64 = 8;
/// `satp.MODE` of Sv48 paging.
pub const SATP_MODE_SV48: u64 = 9;
/// `satp.MODE` of Sv57 paging.
pub const SATP_MODE_SV57: u64 = 10;

impl RiscVRegisters {
    /// The stack pointer (`x2`).
    pub fn sp(&self) -> u64 {
        self.x[2]
    }

    /// The paging mode and the physical address of the root table `satp` names; `None`
    /// without `satp`, with translation off (`Bare`) or with a mode this crate does not know.
    pub fn paging(&self) -> Option<(ArchitectureIdent, Address)> {
        if !self.satp_valid {
            return None;
        }
        let arch = match self.satp >> 60 {
            SATP_MODE_SV39 => ArchitectureIdent::RiscVSv39,
            SATP_MODE_SV48 => ArchitectureIdent::RiscVSv48,
            SATP_MODE_SV57 => ArchitectureIdent::RiscVSv57,
            _ => return None,
        };
        Some((arch, Address::new(umem::from((self.satp & ((1 << 44) - 1)) << 12))))
    }
}

/// The CPU state a connector knows about its target.
///
/// File connectors report what the dump recorded; a connector that knows nothing reports
/// zero CPUs. The CPUs are of one family: the registers of the other fail with `NotFound`.
#[cglue_trait]
#[int_result]
#[cglue_forward]
pub trait CpuState {
    /// How many CPUs the target has state for.
    fn cpu_count(&self) -> usize;

    /// The x86 registers of CPU `cpu` (0-based). `NotFound` if `cpu >= cpu_count()` or the
    /// target is not x86.
    fn x86_registers(&self, cpu: usize) -> Result<X86Registers>;

    /// The AArch64 registers of CPU `cpu` (0-based). `NotFound` if `cpu >= cpu_count()` or
    /// the target is not AArch64.
    fn aarch64_registers(&self, cpu: usize) -> Result<AArch64Registers>;

    /// The RISC-V registers of CPU `cpu` (0-based). `NotFound` if `cpu >= cpu_count()` or
    /// the target is not RISC-V.
    fn riscv_registers(&self, cpu: usize) -> Result<RiscVRegisters>;

    /// The Linux `VMCOREINFO` text the target recorded (a dump's note), copied into `buf` as
    /// far as it fits. Returns the text's whole length: when that is more than `buf.len()`,
    /// call again with a larger buffer. `NotFound` if the target recorded none.
    fn vmcoreinfo(&self, _buf: &mut [u8]) -> Result<usize> {
        Err(Error::new(ErrorOrigin::Connector, ErrorKind::NotFound).with_reason("the target recorded no VMCOREINFO"))
    }

    /// The whole [`CpuState::vmcoreinfo`] text, if there is one of at most
    /// [`MAX_VMCOREINFO`] bytes.
    #[skip_func]
    fn vmcoreinfo_text(&self) -> Option<Vec<u8>>
    where
        Self: Sized,
    {
        let mut text = vec![0u8; 4096];
        let len = self.vmcoreinfo(&mut text).ok()?;
        if len > text.len() {
            if len > MAX_VMCOREINFO {
                log::warn!("a VMCOREINFO text of {len} bytes is left out (at most {MAX_VMCOREINFO})");
                return None;
            }
            text.resize(len, 0);
            self.vmcoreinfo(&mut text).ok().filter(|&again| again == len)?;
        }
        text.truncate(len);
        Some(text)
    }

    /// The architecture and page-table root of every CPU that has paging on, in CPU order
    /// (see [`X86Registers::paging`]): what to build a `VirtualDma` of the kernel with.
    #[skip_func]
    fn paging_of_cpus(&self) -> Vec<(ArchitectureIdent, Address)>
    where
        Self: Sized,
    {
        (0..self.cpu_count()).filter_map(|i| self.x86_registers(i).ok()?.paging()).collect()
    }
}

/// The longest `VMCOREINFO` text taken from a target or a user (the kernel's is one page).
pub const MAX_VMCOREINFO: usize = 1 << 20;

/// Copies `text` into `buf` as far as it fits and returns its whole length (see
/// [`CpuState::vmcoreinfo`]).
pub(crate) fn copy_vmcoreinfo(text: &[u8], buf: &mut [u8]) -> usize {
    let n = text.len().min(buf.len());
    buf[..n].copy_from_slice(&text[..n]);
    text.len()
}

/// The registers of `cpu` in a list of per-CPU states of the `family` (`x86`, `AArch64`, `RISC-V`),
/// or a `NotFound` error.
pub(crate) fn registers_of<R: Copy>(cpus: &[R], cpu: usize, family: &str) -> Result<R> {
    cpus.get(cpu).copied().ok_or_else(|| {
        Error::new(ErrorOrigin::Connector, ErrorKind::NotFound)
            .with_reason(format_args!("no {family} registers for CPU {cpu}: the target has {} of them", cpus.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(cr0: u64, cr3: u64, cr4: u64) -> X86Registers {
        X86Registers { valid: X86RegisterSet::CONTROL, cr0, cr3, cr4, ..Default::default() }
    }

    #[test]
    fn arch_hints_follow_control_registers() {
        assert_eq!(X86Registers::default().arch_hint(), X86ArchHint::Unknown);
        assert_eq!(control(0x11, 0, 0).arch_hint(), X86ArchHint::NoPaging);
        assert_eq!(control(CR0_PG, 0, 0).arch_hint(), X86ArchHint::X86);
        let mut pae = control(CR0_PG, 0, CR4_PAE);
        assert_eq!(pae.arch_hint(), X86ArchHint::X86Pae);
        pae.infer_long_mode(false);
        assert_eq!(pae.arch_hint(), X86ArchHint::X86Pae);
        pae.infer_long_mode(true);
        assert_eq!(pae.arch_hint(), X86ArchHint::X86_64);
        let mut la57 = control(CR0_PG, 0, CR4_PAE | CR4_LA57);
        la57.valid |= X86RegisterSet::CS_FLAGS;
        la57.cs_flags = CS_FLAGS_L;
        la57.infer_long_mode(false);
        assert_eq!(la57.arch_hint(), X86ArchHint::X86_64La57);
    }

    #[test]
    fn efer_decides_long_mode_when_known() {
        let mut r = control(CR0_PG, 0, CR4_PAE);
        r.valid |= X86RegisterSet::EFER;
        r.infer_long_mode(true);
        assert_eq!(r.arch_hint(), X86ArchHint::X86Pae);
        r.efer = EFER_LMA;
        r.infer_long_mode(false);
        assert_eq!(r.arch_hint(), X86ArchHint::X86_64);
    }

    #[test]
    fn paging_names_the_architecture_to_translate_with() {
        assert_eq!(X86Registers::default().paging(), None);
        assert_eq!(control(0x11, 0x1000, 0).paging(), None, "paging off");
        assert_eq!(control(CR0_PG, 0x1fff, 0).paging(), Some((ArchitectureIdent::X86_32, Address::new(0x1000))));
        assert_eq!(control(CR0_PG, 0x2000, CR4_PAE).paging(), Some((ArchitectureIdent::X86Pae, Address::new(0x2000))));
        let mut long = control(CR0_PG, 0x3000, CR4_PAE | CR4_LA57);
        long.valid |= X86RegisterSet::LONG_MODE;
        assert_eq!(long.paging(), Some((ArchitectureIdent::X86_64La57, Address::new(0x3000))));
    }

    #[test]
    fn page_table_root_masks_flag_bits() {
        let mut r = control(CR0_PG, 0x8000_0000_1234_5fff, CR4_PAE);
        r.valid |= X86RegisterSet::LONG_MODE;
        assert_eq!(r.page_table_root(), Some(Address::new(0x1234_5000)));
        r.valid.remove(X86RegisterSet::LONG_MODE);
        assert_eq!(r.page_table_root(), Some(Address::new(0x1234_5fe0)));
        r.cr4 = 0;
        assert_eq!(r.page_table_root(), Some(Address::new(0x1234_5000)));
        r.cr0 = 0;
        assert_eq!(r.page_table_root(), None);
    }

    #[test]
    fn out_of_range_cpu_is_not_found() {
        let cpus = [X86Registers::default()];
        assert!(registers_of(&cpus, 0, "x86").is_ok());
        assert_eq!(registers_of(&cpus, 1, "x86").unwrap_err().kind, ErrorKind::NotFound);
        assert_eq!(registers_of::<AArch64Registers>(&[], 0, "AArch64").unwrap_err().kind, ErrorKind::NotFound);
    }

    #[test]
    fn riscv_paging_follows_satp() {
        let satp = |satp: u64| RiscVRegisters { satp, satp_valid: true, ..Default::default() };
        // The riscv64-sv39 fixture's `cpu0_satp`.
        assert_eq!(
            satp(0x8004_6000_0008_2c6b).paging(),
            Some((ArchitectureIdent::RiscVSv39, Address::new(0x82c6_b000)))
        );
        assert_eq!(
            satp(0xa000_0000_0008_1000).paging(),
            Some((ArchitectureIdent::RiscVSv57, Address::new(0x8100_0000)))
        );
        assert_eq!(satp(0x0000_0000_0008_1000).paging(), None, "Bare");
        assert_eq!(RiscVRegisters { satp: 0x8000_0000_0008_1000, ..Default::default() }.paging(), None, "unknown");
    }
}
