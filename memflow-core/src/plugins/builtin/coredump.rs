//! The `coredump` plugin: descriptor, creation and arguments.

use cglue::prelude::v1::*;

use super::{missing, no_input};
use crate::connector::cpu_state::*;
use crate::connector::{self, BufferMemory, FileConnector, OpenOptions};
use crate::error::Result;
use crate::instance::*;
use crate::plugins::args::Args;
use crate::plugins::descriptor::*;

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
