//! The `native` plugin: descriptor, creation and arguments.

use super::no_input;
use crate::error::Result;
use crate::instance::*;
use crate::plugins::args::Args;
use crate::plugins::descriptor::*;

/// `native`: the running Linux host as an OS layer.
pub struct Native;

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
pub const NATIVE: PluginDescriptor = PluginDescriptor::os::<Native>();
