//! Plain `#[repr(C)]` records handed to and received from C, and the callback types that
//! receive them. Addresses and sizes are `uint64_t`.
//!
//! Strings in records are NUL-terminated UTF-8. Who owns them is documented at each function
//! that hands a record out; records received from C are only read during the call.

use std::ffi::{c_char, c_void, CStr};

use cglue::repr_cstring::ReprCString;
use memflow_core::arch::ArchitectureIdent;
use memflow_core::connector::X86Registers;
use memflow_core::error::{Error, ErrorKind};
use memflow_core::os::{
    ExportInfo, ImportInfo, MemoryRange, ModuleInfo, OsInfo, ProcessInfo, ProcessState, SectionInfo,
};
use memflow_core::types::{umem, Address, PageType};

use crate::call::ffi_err;

/// An address in the target (virtual or physical).
pub(crate) fn addr_in(v: u64) -> Address {
    Address::new(umem::from(v))
}

/// An address handed to C (with 128-bit addresses, the low 64 bits).
#[allow(clippy::unnecessary_cast)] // not a no-op with the `128_bit_mem` feature
pub(crate) fn addr_out(a: Address) -> u64 {
    a.to_umem() as u64
}

/// A size handed to C.
#[allow(clippy::unnecessary_cast)] // not a no-op with the `128_bit_mem` feature
pub(crate) fn size_out(v: umem) -> u64 {
    v as u64
}

/// The C string of a record's string (borrowed from it).
pub(crate) fn str_out(s: &ReprCString) -> *const c_char {
    s.as_ptr().cast()
}

/// Which MMU mode an `MfArchitecture` describes: one of the `MF_ARCH_*` constants.
pub type MfArchKind = u32;
/// Architecture: not known.
pub const MF_ARCH_UNKNOWN: MfArchKind = 0;
/// Architecture: 32-bit x86 paging (2 levels).
pub const MF_ARCH_X86_32: MfArchKind = 1;
/// Architecture: x86 PAE paging (3 levels).
pub const MF_ARCH_X86_PAE: MfArchKind = 2;
/// Architecture: x86-64 4-level paging.
pub const MF_ARCH_X86_64: MfArchKind = 3;
/// Architecture: x86-64 5-level paging (LA57).
pub const MF_ARCH_X86_64_LA57: MfArchKind = 4;
/// Architecture: AArch64 (see `granule_log2` and `va_bits`).
pub const MF_ARCH_AARCH64: MfArchKind = 5;
/// Architecture: RISC-V Sv39.
pub const MF_ARCH_RISCV_SV39: MfArchKind = 6;
/// Architecture: RISC-V Sv48.
pub const MF_ARCH_RISCV_SV48: MfArchKind = 7;
/// Architecture: RISC-V Sv57.
pub const MF_ARCH_RISCV_SV57: MfArchKind = 8;

/// An architecture (MMU mode).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MfArchitecture {
    /// The mode, one of `MF_ARCH_*`.
    pub kind: MfArchKind,
    /// Pointer width in bits (32 or 64); 0 if unknown.
    pub pointer_bits: u8,
    /// log2 of the base page size (12 = 4 KiB); 0 if unknown.
    pub granule_log2: u8,
    /// Significant virtual address bits; 0 if unknown.
    pub va_bits: u8,
}

impl From<ArchitectureIdent> for MfArchitecture {
    fn from(a: ArchitectureIdent) -> Self {
        let (kind, pointer_bits, granule_log2, va_bits) = match a {
            ArchitectureIdent::X86_32 => (MF_ARCH_X86_32, 32, 12, 32),
            ArchitectureIdent::X86Pae => (MF_ARCH_X86_PAE, 32, 12, 32),
            ArchitectureIdent::X86_64 => (MF_ARCH_X86_64, 64, 12, 48),
            ArchitectureIdent::X86_64La57 => (MF_ARCH_X86_64_LA57, 64, 12, 57),
            ArchitectureIdent::AArch64 { granule_log2, va_bits } => (MF_ARCH_AARCH64, 64, granule_log2, va_bits),
            ArchitectureIdent::RiscVSv39 => (MF_ARCH_RISCV_SV39, 64, 12, 39),
            ArchitectureIdent::RiscVSv48 => (MF_ARCH_RISCV_SV48, 64, 12, 48),
            ArchitectureIdent::RiscVSv57 => (MF_ARCH_RISCV_SV57, 64, 12, 57),
        };
        MfArchitecture { kind, pointer_bits, granule_log2, va_bits }
    }
}

impl MfArchitecture {
    /// The core's identifier of this architecture.
    pub(crate) fn to_ident(self) -> Result<ArchitectureIdent, Error> {
        Ok(match self.kind {
            MF_ARCH_X86_32 => ArchitectureIdent::X86_32,
            MF_ARCH_X86_PAE => ArchitectureIdent::X86Pae,
            MF_ARCH_X86_64 => ArchitectureIdent::X86_64,
            MF_ARCH_X86_64_LA57 => ArchitectureIdent::X86_64La57,
            MF_ARCH_AARCH64 => ArchitectureIdent::AArch64 { granule_log2: self.granule_log2, va_bits: self.va_bits },
            MF_ARCH_RISCV_SV39 => ArchitectureIdent::RiscVSv39,
            MF_ARCH_RISCV_SV48 => ArchitectureIdent::RiscVSv48,
            MF_ARCH_RISCV_SV57 => ArchitectureIdent::RiscVSv57,
            k => return Err(ffi_err(ErrorKind::InvalidArgument, format_args!("unknown architecture kind {k}"))),
        })
    }
}

/// Page flags of a memory range: a combination of the `MF_PAGE_*` bits.
pub type MfPageFlags = u32;
/// Page flag: the page holds a page table.
pub const MF_PAGE_TABLE: MfPageFlags = 0x01;
/// Page flag: writable at every level.
pub const MF_PAGE_WRITEABLE: MfPageFlags = 0x02;
/// Page flag: instruction fetches are forbidden.
pub const MF_PAGE_NOEXEC: MfPageFlags = 0x04;
/// Page flag: user-mode accessible at every level.
pub const MF_PAGE_USER: MfPageFlags = 0x08;
/// Page flag: nothing is known about the page.
pub const MF_PAGE_UNKNOWN: MfPageFlags = 0x80;

const _: () = {
    assert!(MF_PAGE_TABLE == PageType::PAGE_TABLE.bits() as u32);
    assert!(MF_PAGE_WRITEABLE == PageType::WRITEABLE.bits() as u32);
    assert!(MF_PAGE_NOEXEC == PageType::NOEXEC.bits() as u32);
    assert!(MF_PAGE_USER == PageType::USER.bits() as u32);
    assert!(MF_PAGE_UNKNOWN == PageType::UNKNOWN.bits() as u32);
};

/// The run state of a process: one of the `MF_PROCESS_STATE_*` constants.
pub type MfProcessState = u32;
/// Process state: not known.
pub const MF_PROCESS_STATE_UNKNOWN: MfProcessState = 0;
/// Process state: alive (running, sleeping or stopped).
pub const MF_PROCESS_STATE_ALIVE: MfProcessState = 1;
/// Process state: exited (a zombie) or gone.
pub const MF_PROCESS_STATE_DEAD: MfProcessState = 2;

/// The C form of a process state.
pub(crate) fn state_out(s: ProcessState) -> MfProcessState {
    match s {
        ProcessState::Unknown => MF_PROCESS_STATE_UNKNOWN,
        ProcessState::Alive => MF_PROCESS_STATE_ALIVE,
        ProcessState::Dead => MF_PROCESS_STATE_DEAD,
    }
}

/// A process. The strings are never NULL (empty when not known).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfProcessInfo {
    /// The OS layer's handle for the process (pass it to `mf_os_process_by_address`).
    pub address: u64,
    /// Process id.
    pub pid: u32,
    /// Parent process id, 0 if not known.
    pub ppid: u32,
    /// Run state when it was listed, one of `MF_PROCESS_STATE_*`.
    pub state: MfProcessState,
    /// Short name (e.g. Linux `comm`).
    pub name: *const c_char,
    /// Path of the executable, empty if not known.
    pub path: *const c_char,
    /// Command line, arguments separated by spaces, empty if not known.
    pub command_line: *const c_char,
    /// Architecture of the system the process runs on.
    pub sys_arch: MfArchitecture,
    /// Architecture the process runs as.
    pub proc_arch: MfArchitecture,
    /// Root of its page tables, 0 if none.
    pub table_root: u64,
    /// Second table root where the architecture has one, else 0.
    pub table_root_2: u64,
}

impl MfProcessInfo {
    /// A view of `p` whose strings borrow from it.
    pub(crate) fn borrow(p: &ProcessInfo) -> Self {
        MfProcessInfo {
            address: addr_out(p.address),
            pid: p.pid,
            ppid: p.ppid,
            state: state_out(p.state),
            name: str_out(&p.name),
            path: str_out(&p.path),
            command_line: str_out(&p.command_line),
            sys_arch: p.sys_arch.into(),
            proc_arch: p.proc_arch.into(),
            table_root: addr_out(p.table_root),
            table_root_2: addr_out(p.table_root_2),
        }
    }
}

/// A module (executable image) mapped into a process or the kernel. The strings are never
/// NULL in records handed out; in records passed in, NULL means empty.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfModuleInfo {
    /// The OS layer's handle for the module.
    pub address: u64,
    /// The handle of the process it belongs to (0 for kernel modules).
    pub parent: u64,
    /// Where it is mapped.
    pub base: u64,
    /// How many bytes it spans.
    pub size: u64,
    /// Short name (file name).
    pub name: *const c_char,
    /// Full path, empty if not known.
    pub path: *const c_char,
    /// Architecture of its code.
    pub arch: MfArchitecture,
}

impl MfModuleInfo {
    /// A view of `m` whose strings borrow from it.
    pub(crate) fn borrow(m: &ModuleInfo) -> Self {
        MfModuleInfo {
            address: addr_out(m.address),
            parent: addr_out(m.parent),
            base: addr_out(m.base),
            size: size_out(m.size),
            name: str_out(&m.name),
            path: str_out(&m.path),
            arch: m.arch.into(),
        }
    }

    /// The core record for a module record passed in by C (strings copied).
    pub(crate) fn to_core(self) -> Result<ModuleInfo, Error> {
        let text = |p: *const c_char, what: &str| -> Result<ReprCString, Error> {
            if p.is_null() {
                return Ok(ReprCString::from(""));
            }
            // SAFETY: the caller promises NUL-terminated strings in the record.
            let s = unsafe { CStr::from_ptr(p) }
                .to_str()
                .map_err(|_| ffi_err(ErrorKind::Encoding, format_args!("module {what} is not valid UTF-8")))?;
            Ok(ReprCString::from(s))
        };
        Ok(ModuleInfo {
            address: addr_in(self.address),
            parent: addr_in(self.parent),
            base: addr_in(self.base),
            size: umem::from(self.size),
            name: text(self.name, "name")?,
            path: text(self.path, "path")?,
            arch: self.arch.to_ident()?,
        })
    }
}

/// A symbol a module exports.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfExportInfo {
    /// Symbol name.
    pub name: *const c_char,
    /// Offset of the symbol from the module base.
    pub offset: u64,
}

impl MfExportInfo {
    pub(crate) fn borrow(e: &ExportInfo) -> Self {
        MfExportInfo { name: str_out(&e.name), offset: size_out(e.offset) }
    }
}

/// A symbol a module imports.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfImportInfo {
    /// Symbol name.
    pub name: *const c_char,
    /// Offset from the module base of the slot the loader fills, 0 if none.
    pub offset: u64,
}

impl MfImportInfo {
    pub(crate) fn borrow(e: &ImportInfo) -> Self {
        MfImportInfo { name: str_out(&e.name), offset: size_out(e.offset) }
    }
}

/// A section (or segment) of a module.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfSectionInfo {
    /// Section name.
    pub name: *const c_char,
    /// Virtual address of its start.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl MfSectionInfo {
    pub(crate) fn borrow(s: &SectionInfo) -> Self {
        MfSectionInfo { name: str_out(&s.name), base: addr_out(s.base), size: size_out(s.size) }
    }
}

/// A mapped range of an address space.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfMemoryRange {
    /// First address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// Access flags, a combination of `MF_PAGE_*`.
    pub flags: MfPageFlags,
}

impl From<&MemoryRange> for MfMemoryRange {
    fn from(r: &MemoryRange) -> Self {
        MfMemoryRange { base: addr_out(r.base), size: size_out(r.size), flags: r.page_type.bits() as u32 }
    }
}

/// Facts about an OS as a whole.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfOsInfo {
    /// Where the kernel image starts (0 if the layer has none, e.g. the native layer).
    pub base: u64,
    /// Size of the kernel image.
    pub size: u64,
    /// The architecture the OS runs on.
    pub arch: MfArchitecture,
}

impl From<&OsInfo> for MfOsInfo {
    fn from(i: &OsInfo) -> Self {
        MfOsInfo { base: addr_out(i.base), size: size_out(i.size), arch: i.arch.into() }
    }
}

/// Static facts about a connector's physical memory.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfPhysicalMetadata {
    /// The highest address that may be backed.
    pub max_address: u64,
    /// How many bytes are really backed.
    pub real_size: u64,
    /// Writes always fail.
    pub readonly: bool,
    /// The number of operations per batch the backend handles best (`UINT32_MAX`: any).
    pub ideal_batch_size: u32,
}

/// Bits of `MfX86Registers::valid`: which groups of fields hold values read from the target.
pub type MfX86RegisterSet = u32;
/// Register group: `rax`..`r15`, `rip`, `rflags`.
pub const MF_X86_REGS_GENERAL: MfX86RegisterSet = 1 << 0;
/// Register group: the segment selectors.
pub const MF_X86_REGS_SELECTORS: MfX86RegisterSet = 1 << 1;
/// Register group: `cs_flags`.
pub const MF_X86_REGS_CS_FLAGS: MfX86RegisterSet = 1 << 2;
/// Register group: `fs_base` and `gs_base`.
pub const MF_X86_REGS_SEGMENT_BASES: MfX86RegisterSet = 1 << 3;
/// Register group: `kernel_gs_base`.
pub const MF_X86_REGS_KERNEL_GS_BASE: MfX86RegisterSet = 1 << 4;
/// Register group: `cr0`, `cr2`, `cr3`, `cr4`.
pub const MF_X86_REGS_CONTROL: MfX86RegisterSet = 1 << 5;
/// Register group: `efer`.
pub const MF_X86_REGS_EFER: MfX86RegisterSet = 1 << 6;
/// The CPU ran in long mode.
pub const MF_X86_REGS_LONG_MODE: MfX86RegisterSet = 1 << 7;

const _: () = {
    use memflow_core::connector::X86RegisterSet as S;
    assert!(MF_X86_REGS_GENERAL == S::GENERAL.bits());
    assert!(MF_X86_REGS_SELECTORS == S::SELECTORS.bits());
    assert!(MF_X86_REGS_CS_FLAGS == S::CS_FLAGS.bits());
    assert!(MF_X86_REGS_SEGMENT_BASES == S::SEGMENT_BASES.bits());
    assert!(MF_X86_REGS_KERNEL_GS_BASE == S::KERNEL_GS_BASE.bits());
    assert!(MF_X86_REGS_CONTROL == S::CONTROL.bits());
    assert!(MF_X86_REGS_EFER == S::EFER.bits());
    assert!(MF_X86_REGS_LONG_MODE == S::LONG_MODE.bits());
};

/// The registers of one x86 / x86-64 CPU as a connector recorded them. Fields of groups not
/// set in `valid` are zero and mean nothing; 32-bit registers are zero-extended.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfX86Registers {
    /// Which groups hold values (`MF_X86_REGS_*` bits).
    pub valid: MfX86RegisterSet,
    /// Hidden attributes of the code segment (descriptor high-dword layout; `CS.L` is bit 21).
    pub cs_flags: u32,
    /// `rax`.
    pub rax: u64,
    /// `rbx`.
    pub rbx: u64,
    /// `rcx`.
    pub rcx: u64,
    /// `rdx`.
    pub rdx: u64,
    /// `rsi`.
    pub rsi: u64,
    /// `rdi`.
    pub rdi: u64,
    /// `rbp`.
    pub rbp: u64,
    /// `rsp`.
    pub rsp: u64,
    /// `r8`.
    pub r8: u64,
    /// `r9`.
    pub r9: u64,
    /// `r10`.
    pub r10: u64,
    /// `r11`.
    pub r11: u64,
    /// `r12`.
    pub r12: u64,
    /// `r13`.
    pub r13: u64,
    /// `r14`.
    pub r14: u64,
    /// `r15`.
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
    /// `IA32_KERNEL_GS_BASE`.
    pub kernel_gs_base: u64,
    /// `cr0`.
    pub cr0: u64,
    /// `cr2`.
    pub cr2: u64,
    /// `cr3` (page-table root plus PCID / flag bits).
    pub cr3: u64,
    /// `cr4`.
    pub cr4: u64,
    /// `IA32_EFER`.
    pub efer: u64,
    /// The top-level page-table address derived from `cr3` and the paging mode, 0 if paging
    /// is off or the control registers are not known.
    pub page_table_root: u64,
}

impl From<&X86Registers> for MfX86Registers {
    fn from(r: &X86Registers) -> Self {
        MfX86Registers {
            valid: r.valid.bits(),
            cs_flags: r.cs_flags,
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            rsp: r.rsp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            rflags: r.rflags,
            cs: r.cs,
            ss: r.ss,
            ds: r.ds,
            es: r.es,
            fs: r.fs,
            gs: r.gs,
            fs_base: r.fs_base,
            gs_base: r.gs_base,
            kernel_gs_base: r.kernel_gs_base,
            cr0: r.cr0,
            cr2: r.cr2,
            cr3: r.cr3,
            cr4: r.cr4,
            efer: r.efer,
            page_table_root: r.page_table_root().map_or(0, addr_out),
        }
    }
}

/// One read of a batch (`mf_connector_read_batch`, `mf_process_read_batch`).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfReadOp {
    /// Where to read.
    pub addr: u64,
    /// Destination of `len` bytes (may be NULL when `len` is 0). Borrowed for the call.
    pub buf: *mut c_void,
    /// How many bytes to read.
    pub len: usize,
    /// Set by the call: 0, or `MF_ERR_PARTIAL_READ` if some bytes could not be read (they are
    /// zero). Untouched if the call as a whole fails.
    pub result: i32,
}

/// One write of a batch (`mf_connector_write_batch`, `mf_process_write_batch`).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfWriteOp {
    /// Where to write.
    pub addr: u64,
    /// Source of `len` bytes (may be NULL when `len` is 0). Borrowed for the call.
    pub buf: *const c_void,
    /// How many bytes to write.
    pub len: usize,
    /// Set by the call: 0, or `MF_ERR_PARTIAL_WRITE` if some bytes were not written.
    /// Untouched if the call as a whole fails.
    pub result: i32,
}

/// Receives a process record; return `true` to go on, `false` to stop. `info` and its
/// strings are borrowed and valid only during the call.
pub type MfProcessInfoCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfProcessInfo) -> bool>;
/// Receives a module record; return `true` to go on, `false` to stop. `info` and its strings
/// are borrowed and valid only during the call.
pub type MfModuleInfoCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfModuleInfo) -> bool>;
/// Receives an export; return `true` to go on, `false` to stop. Borrowed for the call only.
pub type MfExportCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfExportInfo) -> bool>;
/// Receives an import; return `true` to go on, `false` to stop. Borrowed for the call only.
pub type MfImportCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfImportInfo) -> bool>;
/// Receives a section; return `true` to go on, `false` to stop. Borrowed for the call only.
pub type MfSectionCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfSectionInfo) -> bool>;
/// Receives a mapped range; return `true` to go on, `false` to stop. Borrowed for the call only.
pub type MfMemoryRangeCallback = Option<unsafe extern "C" fn(user: *mut c_void, range: *const MfMemoryRange) -> bool>;
