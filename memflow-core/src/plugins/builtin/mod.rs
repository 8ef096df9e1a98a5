//! The plugins compiled into the core. Each is a descriptor constant, registered by the
//! inventory as a built-in and exported unchanged by its plugin library crate in `plugins/`.
//!
//! One file per plugin holds its descriptor, create function and argument handling; a new
//! built-in plugin is one more file here, its `mod` line and its entry in [`BUILTIN`].

mod coredump;
mod dummy;
mod linux;
#[cfg(target_os = "linux")]
mod native;
#[cfg(target_os = "linux")]
mod qemu;

pub use coredump::{Coredump, COREDUMP};
pub use dummy::{DummyConnector, DummyOsPlugin, DUMMY_CONNECTOR, DUMMY_MEMORY_MAX, DUMMY_OS};
pub use linux::{Linux, LINUX};
#[cfg(target_os = "linux")]
pub use native::{Native, NATIVE};
#[cfg(target_os = "linux")]
pub use qemu::{Qemu, QEMU};

use crate::error::{Error, ErrorKind, ErrorOrigin};
use crate::plugins::descriptor::PluginDescriptor;

/// The error for an input plugin given to plugin `name`, which takes none.
fn no_input(name: &str) -> Error {
    Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument)
        .with_reason(format_args!("`{name}` takes no input plugin"))
}

/// The error for plugin `name` created without `what` it needs.
fn missing(name: &str, what: &str) -> Error {
    Error::new(ErrorOrigin::Args, ErrorKind::InvalidArgument).with_reason(format_args!("`{name}` needs {what}"))
}

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
