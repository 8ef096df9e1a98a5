//! The `qemu` connector: the RAM of a QEMU guest running on this host, read and written in
//! the QEMU process's memory while the guest runs.
//!
//! - **Which QEMU.** The QEMU processes are the processes of an OS layer (the host's
//!   native OS layer unless the caller gives another, as in the chain `native -> qemu:vm1`)
//!   whose program, name or first argument is `qemu-system-*` or `qemu-kvm`. One is chosen
//!   by guest name (`-name vm1` or `-name guest=vm1,...`), by pid, or as the only one
//!   ([`QemuTarget`]).
//! - **Where guest RAM is.** The guest-physical layout comes from QMP if a QMP socket is
//!   given, otherwise from the machine type's known layout and `-m`; each RAM block is found
//!   among the QEMU process's mappings by its size (the rules are documented in `layout.rs`). The result is a
//!   [`MemoryMap`] from guest-physical addresses to host addresses in the QEMU process.
//! - **Reads and writes** go to the QEMU process through the OS layer's process memory (for
//!   the host: batched `process_vm_readv` / `process_vm_writev`, or `/proc/PID/mem`), a
//!   batch at a time. A single read or write within one RAM range is one map lookup and one
//!   single operation on the process (for the host: one system call, no allocation). Guest
//!   addresses outside the map fail like any unbacked address.
//! - **Which architecture.** The emulator's name says its target (`qemu-system-aarch64`);
//!   QMP's `query-target` says it too (for `qemu-kvm`), and must agree.
//! - **CPU state.** With QMP, the registers of every x86, AArch64 or riscv64 vCPU as `info
//!   registers -a` shows them when the connector is opened (AArch64: the general registers
//!   only; riscv64: `pc`, the general registers and `satp`). It is a snapshot: CR3 (`satp`)
//!   of a running guest changes with every task switch, but the kernel half of every task's
//!   tables is the same. Without QMP, and for other targets, the connector
//!   has no CPU state (`cpu_count()` is 0).
//! - **A guest that exits** makes the next read or write fail with `Gone` (all its bytes
//!   reported as failed), never crash.
//!
//! The QMP socket is used only while opening and then closed: a QMP server takes one client
//! at a time, and other tools may want it.

pub mod cmdline;
mod layout;
pub mod qmp;
mod registers;

use std::path::Path;
use std::sync::Arc;

use cglue::prelude::v1::*;

use crate::connector::cpu_state::*;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::*;
use crate::mem::partial;
use crate::mem::*;
use crate::os::{Os, Pid, Process, ProcessInfo};
use crate::types::{umem, Address, PhysicalAddress};
pub use cmdline::QemuCommandLine;
use layout::RamLayout;
use qmp::Qmp;

cglue_impl_group!(QemuConnector, ConnectorInstance, { CpuState });

/// A QEMU process found by an OS layer.
#[derive(Clone, Debug)]
pub struct QemuProcess {
    /// The process as the OS layer reports it.
    pub info: ProcessInfo,
    /// What its command line says about the guest.
    pub command_line: QemuCommandLine,
}

impl QemuProcess {
    /// A one-line description: pid, guest name, machine type and RAM size.
    pub fn describe(&self) -> String {
        let cmd = &self.command_line;
        format!(
            "QEMU pid {} ({}), guest `{}`, machine {}, {} MiB",
            self.info.pid,
            cmd.target.as_deref().unwrap_or("target not named"),
            cmd.name.as_deref().unwrap_or("(unnamed)"),
            cmd.machine.as_deref().unwrap_or("(default)"),
            cmd.ram_size.map_or("?".to_owned(), |s| (s >> 20).to_string())
        )
    }
}

/// Every QEMU process `os` lists.
pub fn qemu_processes(os: &mut impl Os) -> Result<Vec<QemuProcess>> {
    let mut out = Vec::new();
    os.process_info_list_callback(|info| {
        let program = info.command_line.split_whitespace().next().unwrap_or_default();
        if [&*info.path, &*info.name, program].into_iter().any(cmdline::is_qemu) {
            let mut command_line = QemuCommandLine::parse(&info.command_line);
            // `qemu-kvm` may be a link to a `qemu-system-*`.
            if command_line.target.is_none() {
                command_line.target = cmdline::emulator_target(&info.path).map(str::to_owned);
            }
            out.push(QemuProcess { info, command_line });
        }
        true
    })?;
    Ok(out)
}

/// Which QEMU process to open. Every given field must match; with none given, the only QEMU
/// process is chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QemuTarget {
    /// The guest name (`-name`).
    pub name: Option<String>,
    /// The process id.
    pub pid: Option<Pid>,
}

impl QemuTarget {
    /// The one process of `candidates` that matches: `NotFound` if none does,
    /// `InvalidArgument` (listing them) if several do.
    fn select(&self, candidates: Vec<QemuProcess>) -> Result<QemuProcess> {
        let mut matching: Vec<QemuProcess> = candidates
            .into_iter()
            .filter(|q| self.pid.is_none_or(|pid| q.info.pid == pid))
            .filter(|q| self.name.is_none() || q.command_line.name == self.name)
            .collect();
        match matching.len() {
            1 => Ok(matching.remove(0)),
            0 => Err(Error::new(ErrorOrigin::Connector, ErrorKind::NotFound)
                .with_reason(format_args!("no QEMU process matches {self:?}"))),
            _ => {
                let list: Vec<String> = matching.iter().map(QemuProcess::describe).collect();
                Err(Error::new(ErrorOrigin::Connector, ErrorKind::InvalidArgument).with_reason(format_args!(
                    "several QEMU processes match {self:?}: {}; pick one by name or pid",
                    list.join("; ")
                )))
            }
        }
    }
}

/// What QMP tells about the guest.
struct QmpFacts {
    name: Option<String>,
    /// The emulator's target architecture (`query-target`).
    target: Option<String>,
    layout: RamLayout,
    cpus: Vec<X86Registers>,
    aarch64_cpus: Vec<AArch64Registers>,
    riscv_cpus: Vec<RiscVRegisters>,
}

impl QmpFacts {
    /// Asks the QMP server at `socket`, then disconnects.
    fn query(socket: &Path) -> Result<QmpFacts> {
        let mut qmp = Qmp::connect(socket)?;
        let mut text = |command: &str, key: &str| -> Result<Option<String>> {
            Ok(qmp.execute(command, None)?.get(key).and_then(|v| v.as_str()).map(str::to_owned))
        };
        let name = text("query-name", "name")?;
        let target = text("query-target", "arch")?;
        let layout = RamLayout::from_qmp(&qmp.hmp("info mtree -f")?, &qmp.hmp("info ramblock")?)?;
        // Each target prints its own registers.
        let (mut cpus, mut aarch64_cpus, mut riscv_cpus) = (Vec::new(), Vec::new(), Vec::new());
        if cmdline::is_x86(target.as_deref()) {
            cpus = registers::parse_registers(&qmp.hmp("info registers -a")?);
        } else if target.as_deref() == Some("aarch64") {
            aarch64_cpus = registers::parse_aarch64_registers(&qmp.hmp("info registers -a")?);
        } else if target.as_deref() == Some("riscv64") {
            riscv_cpus = registers::parse_riscv_registers(&qmp.hmp("info registers -a")?);
        }
        Ok(QmpFacts { name, target, layout, cpus, aarch64_cpus, riscv_cpus })
    }
}

/// A running QEMU guest's RAM as [`PhysicalMemory`], with its CPU state if opened with QMP.
/// See the module documentation.
///
/// Clones share the layout and CPU state and open their own handle on the QEMU process when
/// first used.
pub struct QemuConnector {
    os: OsInstanceArcBox<'static>,
    qemu: QemuProcess,
    /// Where the QEMU process's memory is read.
    memory: GuestMemory,
    map: Arc<MemoryMap>,
    cpus: Arc<[X86Registers]>,
    aarch64_cpus: Arc<[AArch64Registers]>,
    riscv_cpus: Arc<[RiscVRegisters]>,
}

impl Clone for QemuConnector {
    fn clone(&self) -> Self {
        QemuConnector {
            os: self.os.clone(),
            qemu: self.qemu.clone(),
            memory: self.memory.clone(),
            map: self.map.clone(),
            cpus: self.cpus.clone(),
            aarch64_cpus: self.aarch64_cpus.clone(),
            riscv_cpus: self.riscv_cpus.clone(),
        }
    }
}

impl QemuConnector {
    /// Opens the guest of the QEMU process `target` picks among those `os` lists, using the
    /// QMP server at `qmp` if given (then the QMP guest name picks the process when `target`
    /// names none, and a named target must have that name).
    pub fn open(mut os: OsInstanceArcBox<'static>, target: &QemuTarget, qmp: Option<&Path>) -> Result<Self> {
        let facts = qmp.map(QmpFacts::query).transpose()?;
        let mut target = target.clone();
        if let Some(qmp_name) = facts.as_ref().and_then(|f| f.name.clone()) {
            match &target.name {
                None => target.name = Some(qmp_name),
                Some(name) if *name != qmp_name => {
                    return Err(Error::new(ErrorOrigin::Connector, ErrorKind::InvalidArgument)
                        .with_reason(format_args!("the QMP socket belongs to guest `{qmp_name}`, not `{name}`")))
                }
                Some(_) => {}
            }
        }
        let mut qemu = target.select(qemu_processes(&mut os)?)?;
        let mut process = os.process_by_info(qemu.info.clone())?;
        let (layout, cpus, aarch64_cpus, riscv_cpus) = match facts {
            Some(facts) => {
                match (&qemu.command_line.target, facts.target) {
                    (Some(ours), Some(theirs)) if *ours != theirs => {
                        return Err(Error::new(ErrorOrigin::Connector, ErrorKind::InvalidArgument).with_reason(
                            format_args!(
                                "the QMP socket belongs to a qemu-system-{theirs}, not to {}",
                                qemu.describe()
                            ),
                        ))
                    }
                    (None, theirs) => qemu.command_line.target = theirs,
                    _ => {}
                }
                (facts.layout, facts.cpus, facts.aarch64_cpus, facts.riscv_cpus)
            }
            None => (RamLayout::from_machine(&qemu.command_line)?, Vec::new(), Vec::new(), Vec::new()),
        };
        let map = layout.resolve(&process.mapped_mem(-1)?)?;
        let cpu_count = cpus.len().max(aarch64_cpus.len()).max(riscv_cpus.len());
        log::info!("qemu: {} with {} RAM ranges, {cpu_count} CPU states", qemu.describe(), map.ranges().len());
        Ok(QemuConnector {
            os,
            qemu,
            memory: GuestMemory::Os(Some(process)),
            map: Arc::new(map),
            cpus: cpus.into(),
            aarch64_cpus: aarch64_cpus.into(),
            riscv_cpus: riscv_cpus.into(),
        })
    }

    /// [`open`](Self::open) for an `os` that is this host's own (the native layer): the QEMU
    /// process's memory is then read with the system calls directly, with no OS layer between
    /// (what a single small read costs is mostly that layer's calls).
    pub fn open_on_host(os: OsInstanceArcBox<'static>, target: &QemuTarget, qmp: Option<&Path>) -> Result<Self> {
        let mut conn = Self::open(os, target, qmp)?;
        conn.memory = GuestMemory::Host(HostProcessMemory::of_process(conn.qemu.info.pid, conn.qemu.info.proc_arch));
        Ok(conn)
    }

    /// The QEMU process.
    pub fn qemu(&self) -> &QemuProcess {
        &self.qemu
    }

    /// The guest-physical layout: guest ranges to host addresses in the QEMU process.
    pub fn map(&self) -> &MemoryMap {
        &self.map
    }

    /// Runs `batch` on the QEMU process's memory: each operation is cut along the map, the
    /// mapped pieces go to `run` as host-address operations in batches of at most
    /// [`MAX_IOVECS`], holes fail at once. After an error every remaining byte fails and the
    /// error is returned.
    fn transfer<B: SplitBuf>(
        &mut self,
        batch: MemBatch<'_, '_, '_, MemOp<PhysicalAddress, B>, B>,
        mut run: impl FnMut(Ready<'_>, MemBatch<'_, '_, '_, MemOp<Address, B>, B>) -> Result<()>,
    ) -> Result<()> {
        let MemBatch { mut ops, mut on_ok, mut on_fail } = batch;
        let mut memory = match self.memory.ready(&mut self.os, &self.qemu) {
            Ok(memory) => memory,
            Err(e) => {
                ops.for_each(|op| report(&mut on_fail, op.tag, op.buf));
                return Err(e);
            }
        };
        // One allocation per batch: at most a step of host operations is held at a time.
        let mut host_ops: Vec<MemOp<Address, B>> = Vec::new();
        if host_ops.try_reserve_exact(ops.size_hint().0.clamp(1, MAX_IOVECS)).is_err() {
            ops.for_each(|op| report(&mut on_fail, op.tag, op.buf));
            return Err(Error::new(ErrorOrigin::Connector, ErrorKind::OutOfMemory)
                .with_reason("no memory for a batch of host operations"));
        }
        loop {
            let next = ops.next();
            if !host_ops.is_empty() && (next.is_none() || host_ops.len() >= MAX_IOVECS) {
                let on_ok = on_ok.as_deref_mut();
                let on_fail_inner = on_fail.as_deref_mut();
                if let Err(e) = MemBatch::with(host_ops.drain(..), on_ok, on_fail_inner, |b| run(memory.reborrow(), b))
                {
                    next.into_iter().chain(ops).for_each(|op| report(&mut on_fail, op.tag, op.buf));
                    return Err(e);
                }
            }
            let Some(MemOp { addr, tag, buf }) = next else { return Ok(()) };
            // Most operations lie in one RAM range.
            if let Some(host) = host_range(&self.map, addr, buf.len()) {
                host_ops.push(MemOp { addr: host, tag, buf });
                continue;
            }
            let mut rest = Some(buf);
            self.map.split(addr.address, rest.as_ref().map_or(0, SplitBuf::len), |piece| {
                let Some(buf) = rest.take() else { return };
                let (offset, len) = match piece {
                    MapPiece::Mapped { offset, len, .. } | MapPiece::Hole { offset, len } => (offset, len),
                };
                let (head, tail) = buf.split_at(len);
                rest = Some(tail);
                match piece {
                    MapPiece::Mapped { backing, .. } => {
                        host_ops.push(MemOp { addr: Address::new(backing), tag: tag + offset, buf: head })
                    }
                    MapPiece::Hole { .. } => report(&mut on_fail, tag + offset, head),
                }
            });
        }
    }
}

/// The host address of `len` bytes at guest `addr` if they lie in one mapped range of `map`:
/// then an operation is one host operation.
fn host_range(map: &MemoryMap, addr: PhysicalAddress, len: usize) -> Option<Address> {
    let (backing, room) = map.lookup(addr.address)?;
    (len > 0 && len as umem <= room).then(|| Address::new(backing))
}

/// How a connector reaches the QEMU process's memory.
#[derive(Clone)]
enum GuestMemory {
    /// Through the OS layer's process, opened when a clone first reads (`None` until then;
    /// a clone opens its own).
    Os(Option<ProcessInstanceArcBox<'static>>),
    /// The process runs on this host: the system calls, directly.
    Host(HostProcessMemory),
}

/// [`GuestMemory`] ready for a transfer.
enum Ready<'a> {
    Os(&'a mut ProcessInstanceArcBox<'static>),
    Host(&'a mut HostProcessMemory),
}

impl Ready<'_> {
    fn reborrow(&mut self) -> Ready<'_> {
        match self {
            Ready::Os(process) => Ready::Os(process),
            Ready::Host(host) => Ready::Host(host),
        }
    }
}

impl GuestMemory {
    /// The memory, opening the QEMU process through `os` if this clone has not yet.
    #[inline]
    fn ready<'a>(&'a mut self, os: &mut OsInstanceArcBox<'static>, qemu: &QemuProcess) -> Result<Ready<'a>> {
        match self {
            GuestMemory::Host(host) => Ok(Ready::Host(host)),
            GuestMemory::Os(Some(process)) => Ok(Ready::Os(process)),
            GuestMemory::Os(slot) => Ok(Ready::Os(open_process(slot, os, qemu)?)),
        }
    }
}

/// Opens the QEMU process through `os` into `slot`, out of the way of every read.
#[cold]
#[inline(never)]
fn open_process<'a>(
    slot: &'a mut Option<ProcessInstanceArcBox<'static>>,
    os: &mut OsInstanceArcBox<'static>,
    qemu: &QemuProcess,
) -> Result<&'a mut ProcessInstanceArcBox<'static>> {
    Ok(slot.insert(os.process_by_info(qemu.info.clone())?))
}

impl PhysicalMemory for QemuConnector {
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        self.transfer(batch, |memory, b| match memory {
            Ready::Host(host) => host.transfer(b),
            Ready::Os(process) => process.read_batch(b),
        })
    }

    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        self.transfer(batch, |memory, b| match memory {
            Ready::Host(host) => host.transfer(b),
            Ready::Os(process) => process.write_batch(b),
        })
    }

    /// One map lookup and one read of the QEMU process when the bytes lie in one RAM range;
    /// otherwise a one-operation batch.
    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        match host_range(&self.map, addr, out.len()) {
            Some(host) => match self.memory.ready(&mut self.os, &self.qemu)? {
                Ready::Host(memory) => memory.read_single(host, out),
                Ready::Os(process) => process.read_single(host, out),
            },
            None => {
                partial::read_single(MemOp { addr, tag: addr.address, buf: out.into() }, |b| self.phys_read_batch(b))
            }
        }
    }

    /// One map lookup and one write to the QEMU process when the bytes lie in one RAM range;
    /// otherwise a one-operation batch.
    fn phys_write_single(&mut self, addr: PhysicalAddress, data: &[u8]) -> Result<usize> {
        match host_range(&self.map, addr, data.len()) {
            Some(host) => match self.memory.ready(&mut self.os, &self.qemu)? {
                Ready::Host(memory) => memory.write_single(host, data),
                Ready::Os(process) => process.write_single(host, data),
            },
            None => {
                partial::write_single(MemOp { addr, tag: addr.address, buf: data.into() }, |b| self.phys_write_batch(b))
            }
        }
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        PhysicalMemoryMetadata {
            max_address: self.map.max_address(),
            real_size: self.map.real_size(),
            readonly: false,
            ideal_batch_size: MAX_IOVECS as u32,
        }
    }

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
        self.map.report(callback);
        Ok(())
    }
}

impl CpuState for QemuConnector {
    fn cpu_count(&self) -> usize {
        self.cpus.len().max(self.aarch64_cpus.len()).max(self.riscv_cpus.len())
    }

    fn x86_registers(&self, cpu: usize) -> Result<X86Registers> {
        registers_of(&self.cpus, cpu, "x86")
    }

    fn aarch64_registers(&self, cpu: usize) -> Result<AArch64Registers> {
        registers_of(&self.aarch64_cpus, cpu, "AArch64")
    }

    fn riscv_registers(&self, cpu: usize) -> Result<RiscVRegisters> {
        registers_of(&self.riscv_cpus, cpu, "RISC-V")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu(pid: Pid, name: Option<&str>) -> QemuProcess {
        let info = ProcessInfo {
            address: Address::from(pid),
            pid,
            ppid: 1,
            state: crate::os::ProcessState::Alive,
            name: "qemu-system-x86".into(),
            path: "/usr/bin/qemu-system-x86_64".into(),
            command_line: "".into(),
            sys_arch: crate::arch::ArchitectureIdent::X86_64,
            proc_arch: crate::arch::ArchitectureIdent::X86_64,
            table_root: Address::NULL,
            table_root_2: Address::NULL,
        };
        let command_line = QemuCommandLine { name: name.map(str::to_owned), ..Default::default() };
        QemuProcess { info, command_line }
    }

    #[test]
    fn target_selection() {
        let all = || vec![qemu(10, Some("a")), qemu(11, Some("b")), qemu(12, None)];
        let pick = |name: Option<&str>, pid: Option<Pid>, list: Vec<QemuProcess>| {
            QemuTarget { name: name.map(str::to_owned), pid }.select(list).map(|q| q.info.pid).map_err(|e| e.kind)
        };
        assert_eq!(pick(Some("b"), None, all()), Ok(11));
        assert_eq!(pick(None, Some(12), all()), Ok(12));
        assert_eq!(pick(Some("a"), Some(10), all()), Ok(10));
        assert_eq!(pick(Some("a"), Some(11), all()), Err(ErrorKind::NotFound));
        assert_eq!(pick(Some("c"), None, all()), Err(ErrorKind::NotFound));
        assert_eq!(pick(None, None, all()), Err(ErrorKind::InvalidArgument));
        assert_eq!(pick(None, None, vec![qemu(12, None)]), Ok(12));
        assert_eq!(pick(None, None, vec![]), Err(ErrorKind::NotFound));
        assert!(qemu(10, Some("a")).describe().contains("guest `a`"));
    }
}
