//! The `dummy` plugins (a connector and an OS layer): descriptors, creation and arguments.

use super::no_input;
use crate::connector;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::*;
use crate::plugins::args::Args;
use crate::plugins::descriptor::*;

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
                .with_reason(format_args!("`dummy` size `{text}`: expected 1 byte to 16G{ram}"))
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
    const HELP: &'static str = "dummy[,procs=N][,arch=ARCH][,seed=N][,size=SIZE]\n  procs  processes: init, worker1, worker2, ... (default 4)\n  arch   x64 (default), la57, pae, x86, aarch64 (4K pages, 48 bits), sv39, sv48 (or riscv), sv57\n  seed   seed of placements and contents (default 0)\n  size   bytes of physical memory (default 64M, at most 16G)";

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
        let bad =
            |what: core::fmt::Arguments| Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).with_reason(what);
        let procs: usize = args.number("procs", 4)?;
        if procs > DUMMY_MAX_PROCS {
            return Err(bad(format_args!("`procs={procs}`: at most {DUMMY_MAX_PROCS}")));
        }
        let name = args.get("arch").unwrap_or("x64");
        let Some(arch) = ArchitectureIdent::from_arg_name(name) else {
            let known: Vec<&str> = ArchitectureIdent::ALL.iter().flat_map(|a| a.arg_names()).copied().collect();
            return Err(bad(format_args!("`arch={name}`: expected one of {}", known.join(", "))));
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

    /// The help names every architecture the `arch=` argument takes, by its usual name.
    #[test]
    fn help_names_every_architecture() {
        use crate::arch::ArchitectureIdent;
        for a in ArchitectureIdent::ALL {
            let name = a.arg_names()[0];
            assert!(
                DummyOsPlugin::HELP.split(|c: char| c.is_whitespace() || c == ',').any(|word| word == name),
                "{name}"
            );
        }
    }

    /// Every name of every architecture in the table makes a dummy OS of that architecture.
    #[test]
    fn arch_argument_takes_every_name() {
        use crate::arch::ArchitectureIdent;
        use crate::os::Os;
        let inv = Inventory::builtin();
        for &a in ArchitectureIdent::ALL {
            for name in a.arg_names() {
                let os = inv.create_os_chain(&format!("dummy:procs=1,size=16M,arch={name}")).unwrap();
                assert_eq!(os.info().arch, a, "{name}");
            }
        }
    }

    #[test]
    fn dummy_memory_allocation_failures_are_errors() {
        let oom = Error::new(ErrorOrigin::Connector, ErrorKind::OutOfMemory);
        assert_eq!(connector::try_dummy_memory(1 << 50).err(), Some(oom));
        assert_eq!(connector::try_dummy_memory(usize::MAX).err(), Some(oom));
        assert_eq!(connector::try_dummy_memory(0x1000).unwrap().metadata().real_size, 0x1000);
    }
}
