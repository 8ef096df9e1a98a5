//! The commands that list what a chain sees: `info`, `ps`, `modules`, `maps`, `exports`,
//! `kmods`, `ksyms`, `targets`.

use memflow_core::arch::ArchitectureIdent;
use memflow_core::mem::{MemMapping, PhysicalMemory};
use memflow_core::os::{ExportInfo, KernelSymbolInfo, ModuleInfo, Os, Process, ProcessInfo, ProcessState};
use memflow_core::plugins::{ChainInstance, Inventory};
use memflow_core::prelude::CpuState;
use memflow_core::types::PageType;
use serde::Serialize;

use crate::output::{hex, Output, Row};
use crate::registers::{cpu_registers, pc_and_sp};
use crate::target::Target;
use crate::Failure;

/// The name chains use for an architecture (`x86_64`, `aarch64`...).
pub fn arch_name(arch: ArchitectureIdent) -> &'static str {
    arch.arg_names().first().copied().unwrap_or("unknown")
}

/// `info`: the connector's metadata and memory map, the CPU state, the OS.
#[derive(Serialize)]
pub struct ChainInfo {
    /// The chain's text.
    pub chain: String,
    /// The physical memory's metadata, if the chain has physical memory.
    pub physical_memory: Option<PhysicalInfo>,
    /// The ranges of physical memory that are backed.
    pub memory_map: Vec<MapEntry>,
    /// The registers and paging state of each CPU whose registers the connector knows.
    pub cpus: Vec<CpuInfo>,
    /// The OS layer's facts, if the chain ends in one.
    pub os: Option<OsFacts>,
}

/// Physical memory metadata.
#[derive(Serialize)]
pub struct PhysicalInfo {
    /// The highest address that may be backed.
    pub max_address: String,
    /// How many bytes are backed.
    pub real_size: u64,
    /// Whether writes always fail.
    pub readonly: bool,
}

/// One backed range of physical memory.
#[derive(Serialize)]
pub struct MapEntry {
    /// First address.
    pub base: String,
    /// Length in bytes.
    pub size: u64,
}

/// One CPU's registers and paging state.
#[derive(Serialize)]
pub struct CpuInfo {
    /// CPU index.
    pub cpu: usize,
    /// The CPU's family: `x86`, `aarch64` or `riscv64`.
    pub arch: &'static str,
    /// The paging mode, `null` if the registers do not name it (paging off, or AArch64).
    pub paging: Option<&'static str>,
    /// The root page table's physical address (x86 CR3, RISC-V `satp`), `null` if none.
    pub table_root: Option<String>,
    /// The registers (see [`crate::registers::CpuRegisters::registers`]) by name, in the architecture's order.
    pub registers: RegisterValues,
}

/// Registers by name, printed as a JSON object of `"0x..."` values.
pub struct RegisterValues(pub Vec<(&'static str, u64)>);

impl RegisterValues {
    /// The value of the register `name`, shown as hex, or `-` if there is none of that name.
    fn shown(&self, name: &str) -> String {
        self.0.iter().find(|&&(n, _)| n == name).map_or_else(|| "-".into(), |&(_, value)| hex(value))
    }
}

impl Serialize for RegisterValues {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|&(name, value)| (name, hex(value))))
    }
}

/// The OS layer's facts.
#[derive(Serialize)]
pub struct OsFacts {
    /// The paging mode (architecture) the OS runs in.
    pub arch: &'static str,
    /// Where the kernel image starts (`null` for layers without a kernel, e.g. native).
    pub kernel_base: Option<String>,
    /// The kernel image's size.
    pub kernel_size: u64,
}

/// Runs `info`; the table shows every register of every CPU with `registers`, else each CPU's
/// program counter and stack pointer.
pub fn info(chain: &str, registers: bool, out: &Output) -> Result<(), Failure> {
    let mut target = Target::open(chain)?;
    let mut info =
        ChainInfo { chain: chain.to_string(), physical_memory: None, memory_map: vec![], cpus: vec![], os: None };
    match target.instance() {
        ChainInstance::Connector(conn) => {
            describe_physical(&*conn, &mut info);
            info.cpus = describe_cpus(conn.as_ref_impl_cpustate());
        }
        ChainInstance::Os(os) => {
            if let Some(phys) = os.as_ref_impl_physicalmemory() {
                describe_physical(phys, &mut info);
            }
            info.cpus = describe_cpus(os.as_ref_impl_cpustate());
            let facts = *os.info();
            info.os = Some(OsFacts {
                arch: arch_name(facts.arch),
                kernel_base: (!facts.base.is_null()).then(|| hex(facts.base.to_umem() as u64)),
                kernel_size: facts.size as u64,
            });
        }
    }
    if out.json() {
        return out.document(&info);
    }
    out.section("chain", &[("chain", info.chain.clone())])?;
    if let Some(phys) = &info.physical_memory {
        out.section(
            "physical memory",
            &[
                ("max address", phys.max_address.clone()),
                ("backed bytes", phys.real_size.to_string()),
                ("read-only", phys.readonly.to_string()),
            ],
        )?;
        out.table(&["BASE", "SIZE"], info.memory_map.iter().map(|m| vec![m.base.clone(), m.size.to_string()]))?;
    }
    let paging = |cpu: &CpuInfo| {
        (cpu.paging.unwrap_or("none").to_string(), cpu.table_root.clone().unwrap_or_else(|| "-".into()))
    };
    if registers {
        for cpu in &info.cpus {
            let (mode, root) = paging(cpu);
            let mut pairs = vec![("arch", cpu.arch.to_string()), ("paging", mode), ("table root", root)];
            pairs.extend(cpu.registers.0.iter().map(|&(name, value)| (name, hex(value))));
            out.section(&format!("cpu {}", cpu.cpu), &pairs)?;
        }
    } else if !info.cpus.is_empty() {
        let rows = info.cpus.iter().map(|cpu| {
            let ((mode, root), (pc, sp)) = (paging(cpu), pc_and_sp(cpu.arch));
            vec![
                cpu.cpu.to_string(),
                cpu.arch.to_string(),
                mode,
                root,
                cpu.registers.shown(pc),
                cpu.registers.shown(sp),
            ]
        });
        out.table(&["CPU", "ARCH", "PAGING", "TABLE ROOT", "PC", "SP"], rows)?;
    }
    if let Some(os) = &info.os {
        out.section(
            "os",
            &[
                ("arch", os.arch.to_string()),
                ("kernel base", os.kernel_base.clone().unwrap_or_else(|| "-".into())),
                ("kernel size", os.kernel_size.to_string()),
            ],
        )?;
    }
    Ok(())
}

fn describe_physical(phys: &impl PhysicalMemory, info: &mut ChainInfo) {
    let meta = phys.metadata();
    info.physical_memory = Some(PhysicalInfo {
        max_address: hex(meta.max_address.to_umem() as u64),
        real_size: meta.real_size as u64,
        readonly: meta.readonly,
    });
    let mut map: Vec<MemMapping> = Vec::new();
    if phys.mem_map_callback((&mut map).into()).is_ok() {
        info.memory_map =
            map.iter().map(|m| MapEntry { base: hex(m.base.to_umem() as u64), size: m.size as u64 }).collect();
    }
}

fn describe_cpus(state: Option<&impl CpuState>) -> Vec<CpuInfo> {
    let Some(state) = state else { return vec![] };
    (0..state.cpu_count())
        .filter_map(|i| {
            let regs = cpu_registers(state, i).map_err(|e| log::warn!("CPU {i}: {e}")).ok()?;
            Some(CpuInfo {
                cpu: i,
                arch: regs.arch,
                paging: regs.paging.map(|(arch, _)| arch_name(arch)),
                table_root: regs.paging.map(|(_, root)| hex(root.to_umem() as u64)),
                registers: RegisterValues(regs.registers),
            })
        })
        .collect()
}

/// One process, as `ps` prints it.
#[derive(Serialize)]
pub struct ProcessRow {
    /// Process id.
    pub pid: u32,
    /// Parent process id (0 if unknown).
    pub ppid: u32,
    /// `alive`, `dead` or `unknown`.
    pub state: &'static str,
    /// The architecture the process runs as.
    pub arch: &'static str,
    /// Short name.
    pub name: String,
    /// Executable path (empty if unknown).
    pub path: String,
    /// Command line (empty if unknown).
    pub command_line: String,
}

impl From<&ProcessInfo> for ProcessRow {
    fn from(p: &ProcessInfo) -> Self {
        ProcessRow {
            pid: p.pid,
            ppid: p.ppid,
            state: state_name(p.state),
            arch: arch_name(p.proc_arch),
            name: p.name.to_string(),
            path: p.path.to_string(),
            command_line: p.command_line.to_string(),
        }
    }
}

impl Row for ProcessRow {
    const HEADERS: &'static [&'static str] = &["PID", "PPID", "STATE", "ARCH", "NAME", "COMMAND"];
    fn cells(&self) -> Vec<String> {
        let command = if self.command_line.is_empty() { &self.path } else { &self.command_line };
        vec![
            self.pid.to_string(),
            self.ppid.to_string(),
            self.state.into(),
            self.arch.into(),
            self.name.clone(),
            command.clone(),
        ]
    }
}

/// Runs `ps`.
pub fn ps(chain: &str, out: &Output) -> Result<(), Failure> {
    let mut target = Target::open(chain)?;
    let processes = target.os()?.process_info_list()?;
    out.list(&processes.iter().map(ProcessRow::from).collect::<Vec<_>>())
}

/// One module, as `modules` and `kmods` print it.
#[derive(Serialize)]
pub struct ModuleRow {
    /// Where it starts.
    pub base: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its name.
    pub name: String,
    /// Its file (empty if unknown).
    pub path: String,
}

impl From<&ModuleInfo> for ModuleRow {
    fn from(m: &ModuleInfo) -> Self {
        ModuleRow {
            base: hex(m.base.to_umem() as u64),
            size: m.size as u64,
            name: m.name.to_string(),
            path: m.path.to_string(),
        }
    }
}

impl Row for ModuleRow {
    const HEADERS: &'static [&'static str] = &["BASE", "SIZE", "NAME", "PATH"];
    fn cells(&self) -> Vec<String> {
        vec![self.base.clone(), self.size.to_string(), self.name.clone(), self.path.clone()]
    }
}

/// Runs `modules PROCESS`.
pub fn modules(chain: &str, process: &str, out: &Output) -> Result<(), Failure> {
    let mut proc = Target::open(chain)?.process(process)?;
    let modules = proc.module_list().map_err(|e| Failure::about(format!("modules of process `{process}`"), e))?;
    out.list(&modules.iter().map(ModuleRow::from).collect::<Vec<_>>())
}

/// How `ps`, `threads` and the Python package name a run state.
pub fn state_name(state: ProcessState) -> &'static str {
    match state {
        ProcessState::Alive => "alive",
        ProcessState::Dead => "dead",
        ProcessState::Unknown => "unknown",
    }
}

/// One thread, as `threads` prints it.
#[derive(Serialize)]
pub struct ThreadRow {
    /// Thread id.
    pub tid: u32,
    /// `alive`, `dead` or `unknown`.
    pub state: &'static str,
    /// Its name.
    pub name: String,
}

impl Row for ThreadRow {
    const HEADERS: &'static [&'static str] = &["TID", "STATE", "NAME"];
    fn cells(&self) -> Vec<String> {
        vec![self.tid.to_string(), self.state.to_string(), self.name.clone()]
    }
}

/// Runs `threads PROCESS`.
pub fn threads(chain: &str, process: &str, out: &Output) -> Result<(), Failure> {
    let mut proc = Target::open(chain)?.process(process)?;
    let threads = proc.thread_list().map_err(|e| Failure::about(format!("threads of process `{process}`"), e))?;
    let rows: Vec<_> = threads
        .iter()
        .map(|t| ThreadRow { tid: t.tid, state: state_name(t.state), name: t.name.to_string() })
        .collect();
    out.list(&rows)
}

/// One mapped range, as `maps` prints it.
#[derive(Serialize)]
pub struct MapRow {
    /// First address.
    pub base: String,
    /// One past the last address.
    pub end: String,
    /// Size in bytes.
    pub size: u64,
    /// `r`, then `w` if writable, `x` if executable, `u` if user-accessible (else `-`).
    pub access: String,
}

impl Row for MapRow {
    const HEADERS: &'static [&'static str] = &["BASE", "END", "SIZE", "ACCESS"];
    fn cells(&self) -> Vec<String> {
        vec![self.base.clone(), self.end.clone(), self.size.to_string(), self.access.clone()]
    }
}

/// `rwxu` flags of a page type.
pub fn access(page_type: PageType) -> String {
    let flag = |on: bool, c: char| if on { c } else { '-' };
    [
        'r',
        flag(page_type.contains(PageType::WRITEABLE), 'w'),
        flag(!page_type.contains(PageType::NOEXEC), 'x'),
        flag(page_type.contains(PageType::USER), 'u'),
    ]
    .iter()
    .collect()
}

/// Runs `maps PROCESS`.
pub fn maps(chain: &str, process: &str, out: &Output) -> Result<(), Failure> {
    let mut proc = Target::open(chain)?.process(process)?;
    let ranges = proc.mapped_mem(-1).map_err(|e| Failure::about(format!("mappings of process `{process}`"), e))?;
    let rows: Vec<MapRow> = ranges
        .iter()
        .map(|r| MapRow {
            base: hex(r.base.to_umem() as u64),
            end: hex((r.base.to_umem() as u64).saturating_add(r.size as u64)),
            size: r.size as u64,
            access: access(r.page_type),
        })
        .collect();
    out.list(&rows)
}

/// One exported symbol, as `exports` prints it.
#[derive(Serialize)]
pub struct ExportRow {
    /// Its address (module base + offset).
    pub address: String,
    /// Its offset from the module's base.
    pub offset: String,
    /// Its name.
    pub name: String,
}

impl Row for ExportRow {
    const HEADERS: &'static [&'static str] = &["ADDRESS", "OFFSET", "NAME"];
    fn cells(&self) -> Vec<String> {
        vec![self.address.clone(), self.offset.clone(), self.name.clone()]
    }
}

fn export_rows(module: &ModuleInfo, exports: &[ExportInfo]) -> Vec<ExportRow> {
    let base = module.base.to_umem() as u64;
    exports
        .iter()
        .map(|e| ExportRow {
            address: hex(base.wrapping_add(e.offset as u64)),
            offset: hex(e.offset as u64),
            name: e.name.to_string(),
        })
        .collect()
}

/// Runs `exports PROCESS MODULE`.
pub fn exports(chain: &str, process: &str, module: &str, out: &Output) -> Result<(), Failure> {
    let mut proc = Target::open(chain)?.process(process)?;
    let info = proc.module_by_name(module).map_err(|e| Failure::about(format!("module `{module}`"), e))?;
    let exports = proc.module_exports(&info).map_err(|e| Failure::about(format!("exports of `{module}`"), e))?;
    out.list(&export_rows(&info, &exports))
}

/// Runs `kmods`.
pub fn kmods(chain: &str, out: &Output) -> Result<(), Failure> {
    let mut target = Target::open(chain)?;
    let modules = target.os()?.module_list().map_err(|e| Failure::about("kernel modules", e))?;
    out.list(&modules.iter().map(ModuleRow::from).collect::<Vec<_>>())
}

/// One kernel symbol, as `ksyms` prints it.
#[derive(Serialize)]
pub struct SymbolRow {
    /// Its address.
    pub address: String,
    /// Its `/proc/kallsyms` type letter (`T`, `t`, `D`...).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The kernel module it belongs to (empty for the kernel image).
    pub module: String,
}

impl From<&KernelSymbolInfo> for SymbolRow {
    fn from(s: &KernelSymbolInfo) -> Self {
        SymbolRow {
            address: hex(s.address.to_umem() as u64),
            kind: char::from(s.kind).to_string(),
            name: s.name.to_string(),
            module: s.module.to_string(),
        }
    }
}

impl Row for SymbolRow {
    const HEADERS: &'static [&'static str] = &["ADDRESS", "TYPE", "NAME", "MODULE"];
    fn cells(&self) -> Vec<String> {
        vec![self.address.clone(), self.kind.clone(), self.name.clone(), self.module.clone()]
    }
}

/// Runs `ksyms [PATTERN]`.
pub fn ksyms(chain: &str, pattern: Option<&str>, out: &Output) -> Result<(), Failure> {
    let mut target = Target::open(chain)?;
    let mut rows = Vec::new();
    target
        .os()?
        .kernel_symbol_list_callback(
            (&mut |s: KernelSymbolInfo| {
                if pattern.is_none_or(|p| s.name.contains(p)) {
                    rows.push(SymbolRow::from(&s));
                }
                true
            })
                .into(),
        )
        .map_err(|e| Failure::about("kernel symbols", e))?;
    out.list(&rows)
}

/// One target of a connector, as `targets` prints it.
#[derive(Serialize)]
pub struct TargetRow {
    /// What to pass as the connector's argument.
    pub name: String,
    /// A short description.
    pub description: String,
}

impl Row for TargetRow {
    const HEADERS: &'static [&'static str] = &["NAME", "DESCRIPTION"];
    fn cells(&self) -> Vec<String> {
        vec![self.name.clone(), self.description.clone()]
    }
}

/// Runs `targets PLUGIN`.
pub fn targets(plugin: &str, out: &Output) -> Result<(), Failure> {
    let targets = Inventory::scan().targets(plugin).map_err(|e| Failure::about(format!("targets of `{plugin}`"), e))?;
    let rows: Vec<TargetRow> = targets
        .iter()
        .map(|t| TargetRow { name: t.name.to_string(), description: t.description.to_string() })
        .collect();
    out.list(&rows)
}
