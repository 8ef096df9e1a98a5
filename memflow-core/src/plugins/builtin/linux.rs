//! The `linux` plugin: descriptor, creation and arguments.

use super::missing;
use crate::error::Result;
use crate::instance::*;
use crate::plugins::args::Args;
use crate::plugins::descriptor::*;

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
