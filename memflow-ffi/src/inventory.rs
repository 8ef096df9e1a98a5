//! The plugin inventory: finding plugins, listing them, creating connectors, OS layers and
//! whole chains.

use std::ffi::c_char;
use std::path::Path;

use memflow_core::error::{Error, ErrorKind};
use memflow_core::plugins::{Args, Inventory, PluginFlavor, PluginInfo, PluginKind, PluginSource};

use crate::call::{ffi_err, guard, opt_str_arg, out_arg, str_arg};
use crate::connector::MfConnector;
use crate::handle::{self, impl_handle};
use crate::os::MfOs;
use crate::strings::KeptStrings;

/// What a plugin makes: one of the `MF_PLUGIN_KIND_*` constants.
pub type MfPluginKind = u32;
/// Plugin kind: a connector.
pub const MF_PLUGIN_KIND_CONNECTOR: MfPluginKind = 1;
/// Plugin kind: an OS layer.
pub const MF_PLUGIN_KIND_OS: MfPluginKind = 2;

/// How a plugin is implemented: one of the `MF_PLUGIN_FLAVOR_*` constants.
pub type MfPluginFlavor = u32;
/// Plugin flavor: Rust (cglue objects).
pub const MF_PLUGIN_FLAVOR_RUST: MfPluginFlavor = 1;
/// Plugin flavor: the C plugin interface.
pub const MF_PLUGIN_FLAVOR_C: MfPluginFlavor = 2;

const _: () = {
    assert!(MF_PLUGIN_KIND_CONNECTOR == PluginKind::Connector as u32);
    assert!(MF_PLUGIN_KIND_OS == PluginKind::Os as u32);
    assert!(MF_PLUGIN_FLAVOR_RUST == PluginFlavor::Rust as u32);
    assert!(MF_PLUGIN_FLAVOR_C == PluginFlavor::C as u32);
};

/// What the inventory knows about a plugin (read from its descriptor without loading it).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfPluginInfo {
    /// Name, as used in chains.
    pub name: *const c_char,
    /// Plugin version.
    pub version: *const c_char,
    /// One-line description.
    pub description: *const c_char,
    /// The accepted arguments (several lines).
    pub help: *const c_char,
    /// The library file, or NULL for a plugin built into this library.
    pub path: *const c_char,
    /// Connector or OS layer, one of `MF_PLUGIN_KIND_*`.
    pub kind: MfPluginKind,
    /// Rust or C plugin, one of `MF_PLUGIN_FLAVOR_*`.
    pub flavor: MfPluginFlavor,
}

/// A plugin file the inventory refused while scanning or adding a directory, as read by
/// `mf_inventory_refused_at`.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfRefusedFile {
    /// The file.
    pub path: *const c_char,
    /// What failed, as an error code (e.g. kind `MF_KIND_PERMISSION_DENIED`,
    /// `MF_KIND_VERSION_MISMATCH`).
    pub code: i32,
    /// Why, e.g. "refusing plugin /opt/p/libx.so: writable by group or others".
    pub reason: *const c_char,
}

/// The plugins available to a program. Opaque; made by `mf_inventory_scan` or
/// `mf_inventory_builtin`, freed by `mf_inventory_free`. Objects created from it do not depend
/// on it: it may be freed while they live.
///
/// Threads: may be used from several threads at once; calls on it are serialised (see
/// "Threads" at the top of memflow.h).
pub struct MfInventory {
    inner: Inventory,
    /// The plugins' records, in `Inventory::plugins` order.
    plugins: Vec<MfPluginInfo>,
    /// The refused files' records, in `Inventory::refused` order.
    refused: Vec<MfRefusedFile>,
    /// The records' strings: kept until the inventory is freed, so that adding plugins does
    /// not take away strings handed out before.
    strings: KeptStrings,
}

// SAFETY: the records' pointers point into `strings`, which moves with them.
unsafe impl Send for MfInventory {}

impl_handle! { MfInventory = 1; }

impl MfInventory {
    fn new(inner: Inventory) -> Self {
        let mut inv = MfInventory { inner, plugins: Vec::new(), refused: Vec::new(), strings: KeptStrings::default() };
        inv.refresh();
        inv
    }

    /// Rebuilds the records after the inventory changed.
    fn refresh(&mut self) {
        let strings = &mut self.strings;
        self.plugins = self.inner.plugins().map(|p| plugin_record(p, strings)).collect();
        self.refused = self
            .inner
            .refused()
            .iter()
            .map(|r| MfRefusedFile {
                path: strings.keep_str(&r.path.to_string_lossy()),
                code: r.error.code(),
                reason: strings.keep_str(&r.reason),
            })
            .collect();
    }
}

/// The record of `p`, its strings kept in `strings`.
fn plugin_record(p: &PluginInfo, strings: &mut KeptStrings) -> MfPluginInfo {
    MfPluginInfo {
        name: strings.keep_str(&p.name),
        version: strings.keep_str(&p.version),
        description: strings.keep_str(&p.description),
        help: strings.keep_str(&p.help),
        path: match &p.source {
            PluginSource::Builtin => std::ptr::null(),
            PluginSource::File(path) => strings.keep_str(&path.to_string_lossy()),
        },
        kind: p.kind as u32,
        flavor: p.flavor as u32,
    }
}

fn make(inner: Inventory, out: *mut *mut MfInventory) -> Result<(), Error> {
    let out = out_arg(out, "out")?;
    out.write(handle::into_raw(MfInventory::new(inner))?);
    Ok(())
}

/// Makes an inventory with the built-in plugins (`coredump`, `dummy`, `linux`, `native`,
/// `qemu`) plus the plugin libraries found in the default directories, in this order:
/// `$MEMFLOW_PLUGIN_PATH` (colon-separated), `~/.local/lib/memflow`, `/usr/local/lib/memflow`,
/// `/usr/lib/memflow`, `memflow/` beside libmemflow_ffi.so (beside the executable when linked
/// statically), and the directory of the executable. Libraries that fail their checks are
/// skipped and recorded with the reason (`mf_inventory_refused_at`).
///
/// Each plugin name and kind is listed once. A library plugin that is built in with the same
/// version is "shadowed by the built-in": skipped, and its library is never loaded (use
/// `mf_inventory_add_file` to use the file instead). A library plugin of another version than
/// the built-in one replaces it. Between libraries, the first directory in the order above
/// wins.
///
/// Ownership: on success `*out` receives an inventory owned by the caller; free it with
/// `mf_inventory_free`.
#[no_mangle]
pub extern "C" fn mf_inventory_scan(out: *mut *mut MfInventory) -> i32 {
    guard(|| {
        out_arg(out, "out")?;
        make(Inventory::scan(), out)
    })
}

/// Makes an inventory with only the built-in plugins.
///
/// Ownership: on success `*out` receives an inventory owned by the caller; free it with
/// `mf_inventory_free`.
#[no_mangle]
pub extern "C" fn mf_inventory_builtin(out: *mut *mut MfInventory) -> i32 {
    guard(|| make(Inventory::builtin(), out))
}

/// Adds every plugin library (`*.so`) in directory `path`, in the order of their names, as
/// `mf_inventory_add_file` does; libraries that fail their checks are skipped and recorded
/// with the reason (`mf_inventory_refused_at`). If `out_added` is not NULL it receives how
/// many plugins were added.
///
/// Invalidates the strings of earlier `mf_inventory_plugin_at` results.
///
/// Ownership: `path` is borrowed; `*out_added` is caller storage.
#[no_mangle]
pub extern "C" fn mf_inventory_add_dir(inv: *mut MfInventory, path: *const c_char, out_added: *mut usize) -> i32 {
    guard(|| {
        handle::with(inv, "inv", |inv| {
            // SAFETY: C string argument, checked for NULL.
            let path = unsafe { str_arg(path, "path") }?;
            let added = inv.inner.add_dir(Path::new(path));
            inv.refresh();
            let added = added?;
            if !out_added.is_null() {
                out_arg(out_added, "out_added")?.write(added);
            }
            Ok(())
        })
    })
}

/// Adds one plugin library file after checking its permissions and descriptor (without
/// loading it). Its plugins replace those of the same name and kind in the inventory, built-in
/// ones included: this is how to use a library whose plugin is also built in.
/// Fails with the reason (e.g. kind `MF_KIND_VERSION_MISMATCH`) if the library is refused.
///
/// Invalidates the strings of earlier `mf_inventory_plugin_at` results.
///
/// Ownership: `path` is borrowed.
#[no_mangle]
pub extern "C" fn mf_inventory_add_file(inv: *mut MfInventory, path: *const c_char) -> i32 {
    guard(|| {
        handle::with(inv, "inv", |inv| {
            // SAFETY: C string argument, checked for NULL.
            let path = unsafe { str_arg(path, "path") }?;
            let res = inv.inner.add_file(Path::new(path));
            inv.refresh();
            res.map(|_| ())
        })
    })
}

/// The number of plugin files refused so far by `mf_inventory_scan` and
/// `mf_inventory_add_dir` on this inventory (each file once, its latest attempt).
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_inventory_refused_count(inv: *const MfInventory, out: *mut usize) -> i32 {
    guard(|| {
        handle::with(inv, "inv", |inv| {
            out_arg(out, "out")?.write(inv.refused.len());
            Ok(())
        })
    })
}

/// Refused plugin file number `index` (0 .. count-1): which file, what failed and why.
/// `MF_ERR_INVALID_ARGUMENT` if `index` is out of range.
///
/// Ownership: `*out` is caller storage, written on success; its strings belong to `inv` and
/// stay valid until it is freed (adding plugins later does not take them away).
#[no_mangle]
pub extern "C" fn mf_inventory_refused_at(inv: *const MfInventory, index: usize, out: *mut MfRefusedFile) -> i32 {
    guard(|| {
        handle::with(inv, "inv", |inv| {
            let out = out_arg(out, "out")?;
            let r = inv.refused.get(index).ok_or_else(|| {
                ffi_err(
                    ErrorKind::InvalidArgument,
                    format_args!("refused file index {index} out of range (count {})", inv.refused.len()),
                )
            })?;
            out.write(*r);
            Ok(())
        })
    })
}

/// The number of plugins the inventory knows.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_inventory_plugin_count(inv: *const MfInventory, out: *mut usize) -> i32 {
    guard(|| {
        handle::with(inv, "inv", |inv| {
            out_arg(out, "out")?.write(inv.plugins.len());
            Ok(())
        })
    })
}

/// The facts of plugin number `index` (0 .. count-1), in the order they were registered
/// (built-in plugins first); a plugin that replaced another has its index.
/// `MF_ERR_INVALID_ARGUMENT` if `index` is out of range.
///
/// Ownership: `*out` is caller storage, written on success; its strings belong to `inv` and
/// stay valid until it is freed (adding plugins later does not take them away).
#[no_mangle]
pub extern "C" fn mf_inventory_plugin_at(inv: *const MfInventory, index: usize, out: *mut MfPluginInfo) -> i32 {
    guard(|| {
        handle::with(inv, "inv", |inv| {
            let out = out_arg(out, "out")?;
            let p = inv.plugins.get(index).ok_or_else(|| {
                ffi_err(
                    ErrorKind::InvalidArgument,
                    format_args!("plugin index {index} out of range (count {})", inv.plugins.len()),
                )
            })?;
            out.write(*p);
            Ok(())
        })
    })
}

fn args_of(args: *const c_char) -> Result<Args, Error> {
    // SAFETY: C string argument or NULL.
    match unsafe { opt_str_arg(args, "args") }? {
        None => Ok(Args::default()),
        Some(text) => Args::parse(text),
    }
}

/// A clone of the instance of the optional input handle (NULL: none).
fn input_of<H: handle::Handle, T>(input: *const H, clone: impl FnOnce(&mut H) -> T) -> Result<Option<T>, Error> {
    if input.is_null() {
        return Ok(None);
    }
    handle::with(input, "input", |h| Ok(Some(clone(h))))
}

/// Creates connector `name` with the argument string `args` (e.g. `"/dumps/a.elf"` or
/// `"path=/dumps/a.elf,cache=true"`; NULL or `""` for none), on top of the OS layer `input`
/// (NULL for none; e.g. the native OS for a connector reading a VM from its host process).
///
/// Ownership: `name`, `args` and `input` are borrowed: the connector gets its own clone of
/// `input`, and the caller still frees `input`. On success `*out` receives a connector owned
/// by the caller (free it with `mf_connector_free`).
#[no_mangle]
pub extern "C" fn mf_inventory_create_connector(
    inv: *const MfInventory,
    name: *const c_char,
    args: *const c_char,
    input: *const MfOs,
    out: *mut *mut MfConnector,
) -> i32 {
    guard(|| {
        // The input is cloned before the inventory is locked: one lock at a time, so no order
        // of calls on several threads can deadlock.
        let input = input_of(input, |os: &mut MfOs| os.inner.clone())?;
        let conn = handle::with(inv, "inv", |inv| {
            // SAFETY: C string argument, checked for NULL.
            let name = unsafe { str_arg(name, "name") }?;
            let args = args_of(args)?;
            out_arg(out, "out")?;
            inv.inner.create_connector(name, input, &args)
        })?;
        out_arg(out, "out")?.write(MfConnector::into_handle(conn)?);
        Ok(())
    })
}

/// Creates OS layer `name` with the argument string `args` (NULL or `""` for none), on top
/// of the connector `input` (NULL for none, e.g. for the native OS).
///
/// Ownership: `name`, `args` and `input` are borrowed: the OS layer gets its own clone of
/// `input`, and the caller still frees `input`. On success `*out` receives an OS layer owned
/// by the caller (free it with `mf_os_free`).
#[no_mangle]
pub extern "C" fn mf_inventory_create_os(
    inv: *const MfInventory,
    name: *const c_char,
    args: *const c_char,
    input: *const MfConnector,
    out: *mut *mut MfOs,
) -> i32 {
    guard(|| {
        // As in `mf_inventory_create_connector`: one lock at a time.
        let input = input_of(input, |conn: &mut MfConnector| conn.inner.clone())?;
        let os = handle::with(inv, "inv", |inv| {
            // SAFETY: C string argument, checked for NULL.
            let name = unsafe { str_arg(name, "name") }?;
            let args = args_of(args)?;
            out_arg(out, "out")?;
            inv.inner.create_os(name, input, &args)
        })?;
        out_arg(out, "out")?.write(MfOs::into_handle(os)?);
        Ok(())
    })
}

/// Builds a whole chain that ends in an OS layer from a string such as `"native"` or
/// `"coredump:/dumps/guest.elf -> linux"`: each link's output is the next link's input.
///
/// Syntax: links are joined by `->`; a link is `name` or `name:args`; args are
/// comma-separated `key=value` pairs plus at most one element without `=` (the target, e.g.
/// a file). A value containing `,`, `=`, `->`, `:` or spaces is quoted with `'...'` or
/// `"..."`; inside double quotes `\"` and `\\` are escapes, e.g.
/// `coredump:'/dumps/a,b.elf',cache=true -> linux`. At most 16 links, 256 arguments per link
/// and 64 KiB of text; the same rules apply to `args` of `mf_inventory_create_connector` and
/// `mf_inventory_create_os`.
/// Fails with kind `MF_KIND_INVALID_ARGUMENT` if the chain ends in a connector (use
/// `mf_inventory_create_connector_chain` for those).
///
/// Ownership: `chain` is borrowed. On success `*out` receives an OS layer owned by the
/// caller (free it with `mf_os_free`); it owns the whole chain below it.
#[no_mangle]
pub extern "C" fn mf_inventory_create_chain(inv: *const MfInventory, chain: *const c_char, out: *mut *mut MfOs) -> i32 {
    guard(|| {
        let os = handle::with(inv, "inv", |inv| {
            // SAFETY: C string argument, checked for NULL.
            let chain = unsafe { str_arg(chain, "chain") }?;
            out_arg(out, "out")?;
            inv.inner.create_os_chain(chain)
        })?;
        out_arg(out, "out")?.write(MfOs::into_handle(os)?);
        Ok(())
    })
}

/// Builds a whole chain that ends in a connector, such as `"coredump:/dumps/guest.elf"` or
/// `"native -> qemu:vm1"`. Fails with kind `MF_KIND_INVALID_ARGUMENT` if the chain ends in an
/// OS layer.
///
/// Ownership: `chain` is borrowed. On success `*out` receives a connector owned by the caller
/// (free it with `mf_connector_free`).
#[no_mangle]
pub extern "C" fn mf_inventory_create_connector_chain(
    inv: *const MfInventory,
    chain: *const c_char,
    out: *mut *mut MfConnector,
) -> i32 {
    guard(|| {
        let conn = handle::with(inv, "inv", |inv| {
            // SAFETY: C string argument, checked for NULL.
            let chain = unsafe { str_arg(chain, "chain") }?;
            out_arg(out, "out")?;
            inv.inner.create_connector_chain(chain)
        })?;
        out_arg(out, "out")?.write(MfConnector::into_handle(conn)?);
        Ok(())
    })
}

/// Frees an inventory. NULL is a no-op (returns 0); anything that is not a live
/// `MfInventory` returns `MF_ERR_INVALID_HANDLE` and is left alone. Connectors, OS layers and
/// processes created from it stay valid (they keep their plugin libraries loaded).
///
/// Ownership: takes `inv`; it and strings borrowed from it must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_inventory_free(inv: *mut MfInventory) -> i32 {
    handle::free(inv)
}
