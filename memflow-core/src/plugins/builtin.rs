//! The plugins compiled into the core. Each is a descriptor constant, registered by the
//! inventory as a built-in and exported unchanged by its plugin library crate in `plugins/`.

use cglue::prelude::v1::*;

use super::args::{parse_number, Args};
use super::descriptor::*;
use super::instances::*;
use crate::connector::cpu_state::*;
use crate::connector::{self, BufferMemory, FileConnector, OpenOptions};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

fn no_input(name: &str) -> Error {
    Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).log_warn(format_args!("`{name}` takes no input plugin"))
}

fn missing(name: &str, what: &str) -> Error {
    Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).log_warn(format_args!("`{name}` needs {what}"))
}

/// `coredump`: memory dump files (QEMU ELF cores, kdump/vmcore, LiME, raw images).
pub struct Coredump;

impl ConnectorPlugin for Coredump {
    const NAME: &'static str = "coredump";
    const DESCRIPTION: &'static str =
        "Memory dump files: QEMU ELF cores, Linux vmcore/kdump, LiME, raw images (detected by content)";
    const HELP: &'static str = "coredump:PATH[,writable=true]\n  PATH      the dump file (also `path=`)\n  writable  map the file writable (writes change the file)";

    fn create(
        args: &Args,
        input: Option<OsInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<ConnectorInstanceArcBox<'static>> {
        if input.is_some() {
            return Err(no_input(Self::NAME));
        }
        args.check_known(&["path", "writable"])?;
        let path = args.target_or("path").ok_or_else(|| missing(Self::NAME, "a dump file path"))?;
        let options = OpenOptions { writable: args.flag("writable")?, raw_map: None };
        let conn = connector::open(path, options)?;
        Ok(group_obj!((conn, lib) as ConnectorInstance))
    }
}

cglue_impl_group!(FileConnector, ConnectorInstance, { CpuState });
cglue_impl_group!(BufferMemory, ConnectorInstance, {});

/// The `coredump` descriptor.
pub const COREDUMP: PluginDescriptor = PluginDescriptor::connector::<Coredump>();

/// `dummy`: zeroed synthetic physical memory of a chosen size.
pub struct DummyConnector;

/// The largest synthetic memory the `dummy` plugins (connector and OS) allocate; the size
/// must also be at most the machine's physical memory.
pub const DUMMY_MEMORY_MAX: usize = 16 << 30;

/// Parses the size of synthetic memory for `dummy`: 1 byte to [`DUMMY_MEMORY_MAX`] and at
/// most the machine's physical memory.
fn dummy_size(text: &str) -> Result<usize> {
    let ram = crate::mem::alloc::physical_memory();
    crate::types::size::parse(text)
        .and_then(|s| usize::try_from(s).ok())
        .filter(|&s| s > 0 && s <= DUMMY_MEMORY_MAX && ram.is_none_or(|ram| s as u64 <= ram))
        .ok_or_else(|| {
            let ram = ram.map_or(String::new(), |ram| format!(" and at most the {} MiB of this machine", ram >> 20));
            Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
                .log_warn(format_args!("`dummy` size `{text}`: expected 1 byte to 16G{ram}"))
        })
}

impl ConnectorPlugin for DummyConnector {
    const NAME: &'static str = "dummy";
    const DESCRIPTION: &'static str = "Synthetic physical memory (zeroed, writable), for tests and benchmarks";
    const HELP: &'static str =
        "dummy[:SIZE]\n  SIZE  bytes of memory, e.g. 16M or 1G (also `size=`; default 16M, at most 16G)";

    fn create(
        args: &Args,
        input: Option<OsInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<ConnectorInstanceArcBox<'static>> {
        if input.is_some() {
            return Err(no_input(Self::NAME));
        }
        args.check_known(&["size"])?;
        let size = dummy_size(args.target_or("size").unwrap_or("16M"))?;
        Ok(connector_instance(connector::try_dummy_memory(size)?, lib))
    }
}

/// The `dummy` connector descriptor.
pub const DUMMY_CONNECTOR: PluginDescriptor = PluginDescriptor::connector::<DummyConnector>();

/// `dummy` (OS layer): a synthetic OS with processes, modules and real page tables.
pub struct DummyOsPlugin;

/// The most processes `dummy` starts.
const DUMMY_MAX_PROCS: usize = 4096;

impl OsPlugin for DummyOsPlugin {
    const NAME: &'static str = "dummy";
    const DESCRIPTION: &'static str =
        "Synthetic OS: processes with ELF modules, heaps and stacks on real page tables, for tests and benchmarks";
    const HELP: &'static str = "dummy[,procs=N][,arch=ARCH][,seed=N][,size=SIZE]\n  procs  processes: init, worker1, worker2, ... (default 4)\n  arch   x64 (default), la57, pae, aarch64 (4K pages, 48 bits), riscv (Sv48)\n  seed   seed of placements and contents (default 0)\n  size   bytes of physical memory (default 64M, at most 16G)";

    fn create(
        args: &Args,
        input: Option<ConnectorInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<OsInstanceArcBox<'static>> {
        use crate::arch::ArchitectureIdent;
        if input.is_some() {
            return Err(no_input(Self::NAME));
        }
        args.check_known(&["procs", "arch", "seed", "size"])?;
        args.check_no_target(Self::NAME)?;
        let bad = |what: core::fmt::Arguments| Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).log_warn(what);
        let procs: usize = args.number("procs", 4)?;
        if procs > DUMMY_MAX_PROCS {
            return Err(bad(format_args!("`procs={procs}`: at most {DUMMY_MAX_PROCS}")));
        }
        let arch = match args.get("arch").unwrap_or("x64") {
            "x64" => ArchitectureIdent::X86_64,
            "la57" => ArchitectureIdent::X86_64La57,
            "pae" => ArchitectureIdent::X86Pae,
            "aarch64" => ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 },
            "riscv" => ArchitectureIdent::RiscVSv48,
            other => return Err(bad(format_args!("`arch={other}`: expected x64, la57, pae, aarch64 or riscv"))),
        };
        let size = dummy_size(args.get("size").unwrap_or("64M"))?;
        let mut builder =
            crate::dummy::DummyOs::builder().arch(arch).memory(size).seed(args.number("seed", 0)?).lib(lib.clone());
        for i in 0..procs {
            builder = builder.process(&if i == 0 { "init".to_owned() } else { format!("worker{i}") });
        }
        Ok(os_instance(builder.build()?, lib))
    }
}

/// The `dummy` OS descriptor.
pub const DUMMY_OS: PluginDescriptor = PluginDescriptor::os::<DummyOsPlugin>();

/// `native`: the running Linux host as an OS layer.
#[cfg(target_os = "linux")]
pub struct Native;

#[cfg(target_os = "linux")]
impl OsPlugin for Native {
    const NAME: &'static str = "native";
    const DESCRIPTION: &'static str =
        "The running Linux host: processes from /proc, memory through process_vm_readv or /proc/PID/mem";
    const HELP: &'static str = "native (no arguments)";

    fn create(
        args: &Args,
        input: Option<ConnectorInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<OsInstanceArcBox<'static>> {
        if input.is_some() {
            return Err(no_input(Self::NAME));
        }
        args.check_known(&[])?;
        args.check_no_target(Self::NAME)?;
        Ok(os_instance(crate::os::native::NativeOs::new(lib.clone()), lib))
    }
}

/// The `native` descriptor.
#[cfg(target_os = "linux")]
pub const NATIVE: PluginDescriptor = PluginDescriptor::os::<Native>();

/// `qemu`: the RAM of a QEMU guest running on this host, read from the QEMU process.
#[cfg(target_os = "linux")]
pub struct Qemu;

#[cfg(target_os = "linux")]
impl ConnectorPlugin for Qemu {
    const NAME: &'static str = "qemu";
    const DESCRIPTION: &'static str =
        "A running QEMU guest's RAM, read from the QEMU process on this host; layout and CPU state from QMP if given";
    const HELP: &'static str = "qemu[:NAME][,pid=PID][,qmp=SOCKET]\n  NAME  the guest's -name (also `name=`); optional if one QEMU runs\n  pid   the QEMU process id\n  qmp   the guest's QMP socket: exact RAM layout and CPU registers\n  input an OS layer that sees the QEMU process (default: native)";

    fn create(
        args: &Args,
        input: Option<OsInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<ConnectorInstanceArcBox<'static>> {
        use crate::connector::qemu::{QemuConnector, QemuTarget};
        args.check_known(&["name", "pid", "qmp"])?;
        let pid = args.get("pid").map(|pid| parse_number("pid", pid)).transpose()?;
        let target = QemuTarget { name: args.target_or("name").map(str::to_owned), pid };
        let os = input.unwrap_or_else(|| os_instance(crate::os::native::NativeOs::new(lib.clone()), lib.clone()));
        let conn = QemuConnector::open(os, &target, args.get("qmp").map(std::path::Path::new))?;
        Ok(connector_instance(conn, lib))
    }

    /// Every QEMU process of the host: its guest name (or `pid=PID` when it has none).
    fn targets() -> Result<Vec<TargetInfo>> {
        let mut host = crate::os::native::NativeOs::new(LibArc::default());
        let qemus = crate::connector::qemu::qemu_processes(&mut host)?;
        Ok(qemus
            .iter()
            .map(|q| {
                let name = q.command_line.name.clone().unwrap_or_else(|| format!("pid={}", q.info.pid));
                TargetInfo { name: name.as_str().into(), description: q.describe().as_str().into() }
            })
            .collect())
    }
}

/// The `qemu` descriptor.
#[cfg(target_os = "linux")]
pub const QEMU: PluginDescriptor = PluginDescriptor::connector::<Qemu>();

/// `linux`: a Linux guest from its physical memory alone (kallsyms and BTF found in memory).
pub struct Linux;

impl OsPlugin for Linux {
    const NAME: &'static str = "linux";
    const DESCRIPTION: &'static str =
        "Linux guests from memory alone: kernel found by scanning, symbols from kallsyms, layouts from BTF";
    const HELP: &'static str = "linux (no arguments; takes a connector as input, e.g. `coredump:guest.elf -> linux`)";

    fn create(
        args: &Args,
        input: Option<ConnectorInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<OsInstanceArcBox<'static>> {
        args.check_known(&[])?;
        args.check_no_target(Self::NAME)?;
        let conn = input.ok_or_else(|| missing(Self::NAME, "a connector as input"))?;
        Ok(os_instance(crate::os::linux::LinuxOs::from_connector(conn, lib.clone())?, lib))
    }
}

/// The `linux` descriptor.
pub const LINUX: PluginDescriptor = PluginDescriptor::os::<Linux>();

/// Every built-in plugin.
pub static BUILTIN: &[&PluginDescriptor] = &[
    &COREDUMP,
    &DUMMY_CONNECTOR,
    &DUMMY_OS,
    #[cfg(target_os = "linux")]
    &NATIVE,
    #[cfg(target_os = "linux")]
    &QEMU,
    &LINUX,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::PhysicalMemory;
    use crate::plugins::Inventory;

    /// Sizes of synthetic memory beyond the limits are argument errors, checked before
    /// anything is allocated; so are cache options given with them.
    #[test]
    fn dummy_sizes_beyond_the_limits_are_errors() {
        let inv = Inventory::builtin();
        let invalid = Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument);
        for chain in [
            "dummy:1T",
            "dummy:64G",
            "dummy:17G",
            "dummy:0",
            "dummy:size=0xffffffffffffffffffffffff",
            "dummy:1M,cache_size=1T",
            "dummy:1M,cache_size=64G",
            "dummy:1M,cache_page_size=64G",
            "dummy:1M,cache_page_size=1G",
        ] {
            assert_eq!(inv.create_connector_chain(chain).err(), Some(invalid), "{chain}");
        }
        for chain in ["dummy:size=1T", "dummy:size=64G", "dummy:procs=1,size=0"] {
            assert_eq!(inv.create_os_chain(chain).err(), Some(invalid), "{chain}");
        }
        assert!(inv.create_connector_chain("dummy:1M,cache_size=1M,cache_page_size=2M").is_ok());
    }

    #[test]
    fn dummy_memory_allocation_failures_are_errors() {
        let oom = Error::new(ErrorOrigin::Connector, ErrorKind::OutOfMemory);
        assert_eq!(connector::try_dummy_memory(1 << 50).err(), Some(oom));
        assert_eq!(connector::try_dummy_memory(usize::MAX).err(), Some(oom));
        assert_eq!(connector::try_dummy_memory(0x1000).unwrap().metadata().real_size, 0x1000);
    }
}
