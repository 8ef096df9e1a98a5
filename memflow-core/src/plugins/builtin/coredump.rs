//! The `coredump` plugin: descriptor, creation and arguments.

use cglue::prelude::v1::*;

use super::{missing, no_input};
use crate::connector::cpu_state::*;
use crate::connector::{self, BufferMemory, FileConnector, OpenOptions, DEFAULT_CACHE_SIZE};
use crate::error::Result;
use crate::instance::*;
use crate::plugins::args::{bad_value, Args};
use crate::plugins::descriptor::*;
use crate::types::size;

/// `coredump`: memory dump files (QEMU ELF cores, kdump/vmcore, compressed kdump, LiME, AVML,
/// raw images).
pub struct Coredump;

impl ConnectorPlugin for Coredump {
    const NAME: &'static str = "coredump";
    const DESCRIPTION: &'static str =
        "Memory dump files: ELF cores (QEMU, vmcore), compressed kdump (makedumpfile, QEMU), LiME, AVML, raw images (detected by content)";
    const HELP: &'static str = "coredump:PATH[,writable=true][,format=auto|raw][,block_cache=SIZE]\n  PATH      the dump file (also `path=`)\n  writable  map the file writable (writes change the file; not for compressed formats)\n  format    auto (default): detect by content; raw: read the bytes as a raw image whatever they hold\n  block_cache  decompressed blocks kept per reader of a compressed dump (default 32M; e.g. 4M, 1G)";

    fn create(
        args: &Args,
        input: Option<OsInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<ConnectorInstanceArcBox<'static>> {
        if input.is_some() {
            return Err(no_input(Self::NAME));
        }
        args.check_known(&["path", "writable", "format", "block_cache"])?;
        let path = args.target_or("path").ok_or_else(|| missing(Self::NAME, "a dump file path"))?;
        let raw = match args.get("format") {
            None | Some("auto") => false,
            Some("raw") => true,
            Some(other) => return Err(bad_value("format", other, "`auto` or `raw`")),
        };
        let cache_size = match args.get("block_cache") {
            None => DEFAULT_CACHE_SIZE,
            Some(text) => size::parse(text)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| bad_value("block_cache", text, "a size such as 64M"))?,
        };
        let options = OpenOptions { writable: args.flag("writable")?, raw_map: None, raw, cache_size };
        let conn = connector::open(path, options)?;
        Ok(group_obj!((conn, lib) as ConnectorInstance))
    }
}

cglue_impl_group!(FileConnector, ConnectorInstance, { CpuState });
cglue_impl_group!(BufferMemory, ConnectorInstance, {});

/// The `coredump` descriptor.
pub const COREDUMP: PluginDescriptor = PluginDescriptor::connector::<Coredump>();
