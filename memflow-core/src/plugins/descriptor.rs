//! Plugin descriptors: what a plugin library exports, and what built-in plugins register.
//!
//! A plugin library exports a static under the symbol [`PLUGIN_SYMBOL`] (more under
//! `MEMFLOW_PLUGIN_<SUFFIX>` when it holds several plugins). Each starts with a
//! [`PluginHeader`] of plain bytes (no pointers), so the inventory can read and check it from
//! the library file without loading the library: magic, ABI version, address width, a
//! fingerprint of the layouts that cross the boundary, kind, name, version, description and
//! help. Only when an instance is created is the library loaded and the create function
//! called. Built-in plugins are the very same descriptors, registered statically.

use std::ffi::c_char;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};

use cglue::option::COption;
use cglue::repr_cstring::ReprCString;

use super::args::Args;
use super::logging::PluginLogger;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::*;
use crate::types::{umem, Address, PhysicalAddress, UMEM_BITS};

/// The exported symbol every plugin library defines.
pub const PLUGIN_SYMBOL: &str = "MEMFLOW_PLUGIN";

/// Version of the plugin ABI. Bumped on any change to what crosses the boundary.
pub const ABI_VERSION: u32 = 3;

/// The first bytes of every descriptor.
pub const PLUGIN_MAGIC: [u8; 8] = *b"MEMFLOW\0";

/// What a plugin makes.
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// A connector: physical memory (and optionally CPU state).
    Connector = 1,
    /// An OS layer on top of a connector.
    Os = 2,
}

impl core::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PluginKind::Connector => "connector",
            PluginKind::Os => "OS layer",
        })
    }
}

/// How the rest of the descriptor after the header is laid out.
#[repr(u32)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PluginFlavor {
    /// A [`PluginDescriptor`]: create functions that return cglue instances (Rust plugins).
    Rust = 1,
    /// The C plugin interface (a versioned table of plain function pointers).
    C = 2,
}

/// The pointer-free start of every descriptor. Text fields are NUL-padded UTF-8.
#[repr(C)]
#[derive(Copy, Clone, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PluginHeader {
    /// `MF_PLUGIN_MAGIC` (`PLUGIN_MAGIC` in Rust): the bytes `MEMFLOW` and a NUL.
    pub magic: [u8; 8],
    /// `MF_PLUGIN_ABI_VERSION` (`ABI_VERSION` in Rust) the plugin was built for.
    pub abi_version: u32,
    /// `sizeof(MfPluginHeader)` as the plugin saw it.
    pub header_size: u32,
    /// What the plugin makes, one of `MF_PLUGIN_KIND_*`.
    pub kind: u32,
    /// How it is implemented, one of `MF_PLUGIN_FLAVOR_*`.
    pub flavor: u32,
    /// Address width the plugin was built with (64 or 128).
    pub umem_bits: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Fingerprint of the layouts that cross the boundary (computed by the Rust host); 0 for
    /// the C flavor, whose layout is checked through its own struct size.
    pub layout: u64,
    /// Plugin name, as used in chains (`[A-Za-z0-9_-]`).
    pub name: [u8; 32],
    /// Plugin version.
    pub version: [u8; 32],
    /// One-line description.
    pub description: [u8; 128],
    /// Help text: the accepted arguments.
    pub help: [u8; 512],
}

/// Copies `s` into a NUL-padded array at compile time; too-long text is cut.
pub const fn text<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() && i + 1 < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The text of a NUL-padded field, lossily decoded.
pub fn field_text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

impl PluginHeader {
    /// A header for a plugin built now, with this crate's ABI and layout.
    pub const fn new(
        kind: PluginKind,
        flavor: PluginFlavor,
        name: &str,
        version: &str,
        description: &str,
        help: &str,
    ) -> Self {
        PluginHeader {
            magic: PLUGIN_MAGIC,
            abi_version: ABI_VERSION,
            header_size: core::mem::size_of::<PluginHeader>() as u32,
            kind: kind as u32,
            flavor: flavor as u32,
            umem_bits: UMEM_BITS,
            reserved: 0,
            layout: match flavor {
                PluginFlavor::Rust => layout_fingerprint(),
                PluginFlavor::C => 0,
            },
            name: text(name),
            version: text(version),
            description: text(description),
            help: text(help),
        }
    }

    /// The plugin name.
    pub fn name(&self) -> String {
        field_text(&self.name)
    }

    /// Checks that a host built like this crate can use the plugin; the error says which
    /// check failed and why.
    pub fn check(&self) -> Result<(PluginKind, PluginFlavor)> {
        let refuse = |kind, why: String| Err(Error::new(ErrorOrigin::Plugin, kind).with_reason(why));
        if self.magic != PLUGIN_MAGIC {
            return refuse(ErrorKind::Malformed, "descriptor does not start with the memflow magic".into());
        }
        if self.abi_version != ABI_VERSION {
            return refuse(
                ErrorKind::VersionMismatch,
                format!(
                    "plugin `{}` was built for plugin ABI {}, this host uses ABI {ABI_VERSION}",
                    self.name(),
                    self.abi_version
                ),
            );
        }
        if self.header_size as usize != core::mem::size_of::<PluginHeader>() {
            return refuse(
                ErrorKind::LayoutMismatch,
                format!("plugin `{}` has a {}-byte header", self.name(), self.header_size),
            );
        }
        if self.umem_bits != UMEM_BITS {
            return refuse(
                ErrorKind::LayoutMismatch,
                format!("plugin `{}` uses {}-bit addresses, this host {UMEM_BITS}-bit (rebuild it with the same `128_bit_mem` setting)", self.name(), self.umem_bits),
            );
        }
        let kind = match self.kind {
            1 => PluginKind::Connector,
            2 => PluginKind::Os,
            k => return refuse(ErrorKind::Unsupported, format!("plugin `{}` has unknown kind {k}", self.name())),
        };
        let flavor = match self.flavor {
            1 => PluginFlavor::Rust,
            2 => PluginFlavor::C,
            f => return refuse(ErrorKind::Unsupported, format!("plugin `{}` has unknown flavor {f}", self.name())),
        };
        if flavor == PluginFlavor::Rust && self.layout != layout_fingerprint() {
            return refuse(
                ErrorKind::LayoutMismatch,
                format!("plugin `{}` was built with different type layouts ({:#x}, host {:#x}): rebuild it against this memflow version", self.name(), self.layout, layout_fingerprint()),
            );
        }
        let name = self.name();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return refuse(
                ErrorKind::Malformed,
                format!("plugin name `{name}` is empty or has characters other than [A-Za-z0-9_-]"),
            );
        }
        Ok((kind, flavor))
    }
}

/// A fingerprint of the sizes and alignments of the types that cross the plugin boundary,
/// the function tables (vtables) of the traits included, so that a table that gained an entry
/// changes it even where the ABI version was not bumped. A plugin built with another address
/// width or another layout of these types differs.
pub const fn layout_fingerprint() -> u64 {
    use core::mem::{align_of, size_of};
    type Conn = ConnectorInstanceContainer<cglue::boxed::CBox<'static, cglue::trait_group::c_void>, LibArc>;
    type OsC = OsInstanceContainer<cglue::boxed::CBox<'static, cglue::trait_group::c_void>, LibArc>;
    type ProcC = ProcessInstanceContainer<cglue::boxed::CBox<'static, cglue::trait_group::c_void>, LibArc>;
    let parts: [usize; 29] = [
        size_of::<crate::mem::PhysicalMemoryVtbl<'static, Conn>>(),
        size_of::<crate::connector::cpu_state::CpuStateVtbl<'static, Conn>>(),
        size_of::<crate::os::OsVtbl<'static, OsC>>(),
        size_of::<crate::mem::MemoryViewVtbl<'static, OsC>>(),
        size_of::<crate::translate::VirtualTranslateVtbl<'static, OsC>>(),
        size_of::<crate::os::ProcessVtbl<'static, ProcC>>(),
        size_of::<crate::mem::MemoryViewVtbl<'static, ProcC>>(),
        size_of::<super::logging::PluginLogger>(),
        size_of::<Address>(),
        size_of::<PhysicalAddress>(),
        size_of::<umem>(),
        size_of::<crate::os::ProcessInfo>(),
        align_of::<crate::os::ProcessInfo>(),
        size_of::<crate::os::ModuleInfo>(),
        size_of::<crate::os::ThreadInfo>(),
        size_of::<crate::os::OsInfo>(),
        size_of::<crate::os::MemoryRange>(),
        size_of::<crate::arch::ArchitectureIdent>(),
        size_of::<crate::mem::PhysicalMemoryMetadata>(),
        size_of::<crate::mem::ViewMetadata>(),
        size_of::<crate::mem::PhysReadOp<'static>>(),
        size_of::<crate::mem::ReadOp<'static>>(),
        size_of::<ConnectorInstanceArcBox<'static>>(),
        size_of::<OsInstanceArcBox<'static>>(),
        size_of::<ProcessInstanceArcBox<'static>>(),
        size_of::<PluginHeader>(),
        size_of::<PluginDescriptor>(),
        size_of::<crate::error::Error>(),
        size_of::<TargetInfo>(),
    ];
    // FNV-1a over the numbers.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        hash ^= parts[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// A target a connector can open (e.g. a VM name), as listed by the plugin.
#[repr(C)]
#[derive(Clone, Debug)]
pub struct TargetInfo {
    /// What to pass as the positional argument.
    pub name: ReprCString,
    /// A short description.
    pub description: ReprCString,
}

/// Receives targets; return `false` to stop.
pub type TargetCallback<'a> = cglue::callback::OpaqueCallback<'a, TargetInfo>;

/// Lists the targets a plugin can open. Returns 0 or a negative error code.
pub type TargetListFn = extern "C" fn(callback: TargetCallback) -> i32;

/// Creates a connector from its argument text and an optional OS below it (e.g. the native
/// OS for a connector reading a VM's memory from its host process). On success writes the
/// instance to `out` and returns 0; otherwise returns a negative error code.
pub type ConnectorCreateFn = extern "C" fn(
    args: *const c_char,
    input: COption<OsInstanceArcBox<'static>>,
    lib: LibArc,
    logger: Option<&PluginLogger>,
    out: &mut MaybeUninit<ConnectorInstanceArcBox<'static>>,
) -> i32;

/// Creates an OS layer from its argument text and an optional connector below it.
pub type OsCreateFn = extern "C" fn(
    args: *const c_char,
    input: COption<ConnectorInstanceArcBox<'static>>,
    lib: LibArc,
    logger: Option<&PluginLogger>,
    out: &mut MaybeUninit<OsInstanceArcBox<'static>>,
) -> i32;

/// The descriptor of a Rust plugin: the header, then its functions.
#[repr(C)]
pub struct PluginDescriptor {
    /// The pointer-free header.
    pub header: PluginHeader,
    /// Lists openable targets, if the plugin can.
    pub target_list: Option<TargetListFn>,
    /// Set for connectors.
    pub create_connector: Option<ConnectorCreateFn>,
    /// Set for OS layers.
    pub create_os: Option<OsCreateFn>,
}

/// A connector implementation, turned into a descriptor by [`PluginDescriptor::connector`].
pub trait ConnectorPlugin {
    /// The plugin's name, as used in chains.
    const NAME: &'static str;
    /// One-line description.
    const DESCRIPTION: &'static str;
    /// Accepted arguments.
    const HELP: &'static str;
    /// Creates the connector.
    fn create(
        args: &Args,
        input: Option<OsInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<ConnectorInstanceArcBox<'static>>;
    /// The targets it can open (none by default).
    fn targets() -> Result<Vec<TargetInfo>> {
        Ok(Vec::new())
    }
}

/// An OS layer implementation, turned into a descriptor by [`PluginDescriptor::os`].
pub trait OsPlugin {
    /// The plugin's name, as used in chains.
    const NAME: &'static str;
    /// One-line description.
    const DESCRIPTION: &'static str;
    /// Accepted arguments.
    const HELP: &'static str;
    /// Creates the OS layer.
    fn create(
        args: &Args,
        input: Option<ConnectorInstanceArcBox<'static>>,
        lib: LibArc,
    ) -> Result<OsInstanceArcBox<'static>>;
}

impl PluginDescriptor {
    /// The descriptor of connector `P`.
    pub const fn connector<P: ConnectorPlugin>() -> Self {
        PluginDescriptor {
            header: PluginHeader::new(
                PluginKind::Connector,
                PluginFlavor::Rust,
                P::NAME,
                env!("CARGO_PKG_VERSION"),
                P::DESCRIPTION,
                P::HELP,
            ),
            target_list: Some(target_list_shim::<P>),
            create_connector: Some(create_connector_shim::<P>),
            create_os: None,
        }
    }

    /// The descriptor of OS layer `P`.
    pub const fn os<P: OsPlugin>() -> Self {
        PluginDescriptor {
            header: PluginHeader::new(
                PluginKind::Os,
                PluginFlavor::Rust,
                P::NAME,
                env!("CARGO_PKG_VERSION"),
                P::DESCRIPTION,
                P::HELP,
            ),
            target_list: None,
            create_connector: None,
            create_os: Some(create_os_shim::<P>),
        }
    }
}

/// Runs `f` inside the plugin with its logger installed, turning errors and panics into codes.
fn guarded(logger: Option<&PluginLogger>, f: impl FnOnce() -> Result<()>) -> i32 {
    if let Some(logger) = logger {
        logger.install();
    }
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => e.code(),
        Err(_) => {
            log::error!("plugin code panicked; the panic was caught at the plugin boundary");
            Error::new(ErrorOrigin::Plugin, ErrorKind::Panic).code()
        }
    }
}

/// Parses the argument text handed over the boundary.
fn args_from(ptr: *const c_char) -> Result<Args> {
    if ptr.is_null() {
        return Ok(Args::default());
    }
    // SAFETY: the host passes a NUL-terminated string that lives for the call.
    let text = unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Error::new(ErrorOrigin::Args, ErrorKind::Encoding))?;
    Args::parse(text)
}

extern "C" fn create_connector_shim<P: ConnectorPlugin>(
    args: *const c_char,
    input: COption<OsInstanceArcBox<'static>>,
    lib: LibArc,
    logger: Option<&PluginLogger>,
    out: &mut MaybeUninit<ConnectorInstanceArcBox<'static>>,
) -> i32 {
    guarded(logger, || {
        let instance = P::create(&args_from(args)?, input.into(), lib)?;
        out.write(instance);
        Ok(())
    })
}

extern "C" fn create_os_shim<P: OsPlugin>(
    args: *const c_char,
    input: COption<ConnectorInstanceArcBox<'static>>,
    lib: LibArc,
    logger: Option<&PluginLogger>,
    out: &mut MaybeUninit<OsInstanceArcBox<'static>>,
) -> i32 {
    guarded(logger, || {
        let instance = P::create(&args_from(args)?, input.into(), lib)?;
        out.write(instance);
        Ok(())
    })
}

extern "C" fn target_list_shim<P: ConnectorPlugin>(mut callback: TargetCallback) -> i32 {
    guarded(None, || {
        for target in P::targets()? {
            if !callback.call(target) {
                break;
            }
        }
        Ok(())
    })
}

/// Exports a descriptor from a plugin library: `export_plugin!(DESC)` under
/// [`PLUGIN_SYMBOL`]; a library with several plugins exports the others as
/// `export_plugin!(MEMFLOW_PLUGIN_<SUFFIX> = DESC)`.
#[macro_export]
macro_rules! export_plugin {
    ($symbol:ident = $descriptor:expr) => {
        #[no_mangle]
        #[used]
        pub static $symbol: $crate::plugins::PluginDescriptor = $descriptor;
    };
    ($descriptor:expr) => {
        $crate::export_plugin!(MEMFLOW_PLUGIN = $descriptor);
    };
}
