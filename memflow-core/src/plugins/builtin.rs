//! The plugins compiled into the core. Each is a descriptor constant, registered by the
//! inventory as a built-in and exported unchanged by its plugin library crate in `plugins/`.

use cglue::prelude::v1::*;

use super::args::Args;
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

/// Parses a boolean argument (`true`/`false`, `1`/`0`, `yes`/`no`); absent is `false`.
pub fn bool_arg(args: &Args, key: &str) -> Result<bool> {
    match args.get(key) {
        None | Some("0") | Some("false") | Some("no") | Some("off") => Ok(false),
        Some("") | Some("1") | Some("true") | Some("yes") | Some("on") => Ok(true),
        Some(v) => Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).log_warn(format_args!("`{key}={v}`: expected a boolean"))),
    }
}

/// `coredump`: memory dump files (QEMU ELF cores, kdump/vmcore, LiME, raw images).
pub struct Coredump;

impl ConnectorPlugin for Coredump {
    const NAME: &'static str = "coredump";
    const DESCRIPTION: &'static str = "Memory dump files: QEMU ELF cores, Linux vmcore/kdump, LiME, raw images (detected by content)";
    const HELP: &'static str = "coredump:PATH[,writable=true]\n  PATH      the dump file (also `path=`)\n  writable  map the file writable (writes change the file)";

    fn create(args: &Args, input: Option<OsInstanceArcBox<'static>>, lib: LibArc) -> Result<ConnectorInstanceArcBox<'static>> {
        if input.is_some() {
            return Err(no_input(Self::NAME));
        }
        args.check_known(&["path", "writable"])?;
        let path = args.target_or("path").ok_or_else(|| missing(Self::NAME, "a dump file path"))?;
        let options = OpenOptions { writable: bool_arg(args, "writable")?, raw_map: None };
        let conn = connector::open(path, options)?;
        Ok(group_obj!((conn, lib) as ConnectorInstance))
    }
}

cglue_impl_group!(FileConnector, ConnectorInstance, { CpuState });
cglue_impl_group!(BufferMemory, ConnectorInstance, {});

/// The `coredump` descriptor.
pub const COREDUMP: PluginDescriptor = PluginDescriptor::connector::<Coredump>();

/// `native`: the running Linux host as an OS layer.
#[cfg(target_os = "linux")]
pub struct Native;

#[cfg(target_os = "linux")]
impl OsPlugin for Native {
    const NAME: &'static str = "native";
    const DESCRIPTION: &'static str = "The running Linux host: processes from /proc, memory through process_vm_readv or /proc/PID/mem";
    const HELP: &'static str = "native (no arguments)";

    fn create(args: &Args, input: Option<ConnectorInstanceArcBox<'static>>, lib: LibArc) -> Result<OsInstanceArcBox<'static>> {
        if input.is_some() {
            return Err(no_input(Self::NAME));
        }
        args.check_known(&[])?;
        if let Some(extra) = args.default_value() {
            return Err(Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).log_warn(format_args!("`native` takes no target, got `{extra}`")));
        }
        Ok(os_instance(crate::os::native::NativeOs::new(lib.clone()), lib))
    }
}

/// The `native` descriptor.
#[cfg(target_os = "linux")]
pub const NATIVE: PluginDescriptor = PluginDescriptor::os::<Native>();

/// Every built-in plugin.
pub static BUILTIN: &[&PluginDescriptor] = &[
    &COREDUMP,
    #[cfg(target_os = "linux")]
    &NATIVE,
];
