//! The inventory: finds plugins, lists them without loading them, and creates instances and
//! whole chains. Built-in plugins and library files go through the same descriptors.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cglue::arc::CArc;
use cglue::option::COption;
use cglue::trait_group::Opaquable;

use super::args::{parse_chain, Args, ChainLink};
use super::descriptor::*;
use super::library::{read_descriptors, FileDescriptor, Library};
use super::logging::PluginLogger;
use super::middleware::{take_middleware, MiddlewareConfig};
use super::trust::{open_trusted, TrustedFile};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::instance::*;

/// Where a plugin comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// Compiled into this program.
    Builtin,
    /// A library file, loaded on first use.
    File(PathBuf),
}

/// What the inventory knows about a plugin (read from its descriptor header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Name used in chains.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Accepted arguments.
    pub help: String,
    /// Connector or OS layer.
    pub kind: PluginKind,
    /// Rust or C interface.
    pub flavor: PluginFlavor,
    /// Where it comes from.
    pub source: PluginSource,
}

/// How to reach a plugin's functions.
enum Loader {
    Builtin(&'static PluginDescriptor),
    File { file: Arc<TrustedFile>, desc: Box<FileDescriptor>, loaded: Mutex<Option<(Arc<Library>, usize)>> },
}

struct Entry {
    info: PluginInfo,
    loader: Loader,
}

/// A connector or an OS layer: what a chain ends in.
pub enum ChainInstance {
    /// The chain ends in a connector.
    Connector(ConnectorInstanceArcBox<'static>),
    /// The chain ends in an OS layer.
    Os(OsInstanceArcBox<'static>),
}

/// Who asked for a plugin file, which decides what happens when the inventory already has a
/// plugin of the same name and kind (see [`Inventory`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// The caller named the file or its directory: its plugins replace the ones there.
    Caller,
    /// [`Inventory::scan`] found it: it only fills gaps and replaces built-in plugins of
    /// another version.
    Scan,
}

/// The plugins available to this program.
///
/// It holds at most one plugin of each name and kind. When a plugin file offers one that is
/// already there:
///
/// - a file the caller adds ([`Inventory::add_file`], [`Inventory::add_dir`]) replaces it,
///   built-in or not: this is how to use a file instead of the built-in plugin of the same
///   version;
/// - a file [`Inventory::scan`] finds is skipped if the plugin there is built in with the same
///   version (the file is "shadowed by the built-in": the same code, so the file is never
///   loaded), or came from a file in an earlier directory of the search path; it replaces a
///   built-in plugin of another version.
#[derive(Default)]
pub struct Inventory {
    entries: Vec<Entry>,
    refused: Vec<RefusedFile>,
}

/// A plugin file the inventory refused while adding a directory (see
/// [`Inventory::refused`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedFile {
    /// The file.
    pub path: PathBuf,
    /// What kind of check failed (permissions, ABI version, layout, machine, format...).
    pub error: Error,
    /// Why, as the checks gave it (e.g. "refusing plugin ...: writable by group or others").
    pub reason: String,
}

impl Inventory {
    /// An inventory with only the built-in plugins.
    pub fn builtin() -> Self {
        let mut inv = Inventory::default();
        for desc in super::builtin::BUILTIN {
            inv.add_builtin(desc);
        }
        inv
    }

    /// The built-in plugins plus the plugins found in the directories of [`default_dirs`],
    /// each name and kind once: a file whose plugin is built in with the same version is
    /// skipped without being loaded, and the first directory that has a plugin wins (see
    /// [`Inventory`]). Directories that do not exist are skipped; refused files are skipped
    /// and recorded in [`Inventory::refused`].
    pub fn scan() -> Self {
        let mut inv = Self::builtin();
        for dir in default_dirs() {
            let _ = inv.add_dir_for(&dir, Asked::Scan);
        }
        inv
    }

    /// Registers a built-in plugin's descriptor, in place of a plugin of the same name and kind.
    pub fn add_builtin(&mut self, desc: &'static PluginDescriptor) {
        if let Ok((kind, flavor)) = desc.header.check() {
            let info = info_from(&desc.header, kind, flavor, PluginSource::Builtin);
            self.put(Entry { info, loader: Loader::Builtin(desc) });
        }
    }

    /// Adds every plugin library (`*.so`) in `dir`, in the order of their names, as
    /// [`Inventory::add_file`] does; returns how many plugins were added. Files that are
    /// refused are skipped and recorded with the reason in [`Inventory::refused`].
    pub fn add_dir(&mut self, dir: &Path) -> Result<usize> {
        self.add_dir_for(dir, Asked::Caller)
    }

    fn add_dir_for(&mut self, dir: &Path, asked: Asked) -> Result<usize> {
        let listing = std::fs::read_dir(dir).map_err(|e| {
            Error::new(ErrorOrigin::Inventory, ErrorKind::of_io(&e)).with_reason(format_args!("{}: {e}", dir.display()))
        })?;
        let mut paths: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "so") && p.is_file())
            .collect();
        paths.sort();
        let mut added = 0;
        for path in paths {
            match self.add_file_for(&path, asked) {
                Ok(plugins) => added += plugins.len(),
                Err(error) => {
                    let reason = error.reason().unwrap_or_else(|| error.description());
                    self.refused.retain(|r| r.path != path);
                    self.refused.push(RefusedFile { path, error, reason });
                }
            }
        }
        Ok(added)
    }

    /// The plugin files refused so far by [`Inventory::scan`] and [`Inventory::add_dir`], each
    /// once (the latest attempt), with what failed and why.
    pub fn refused(&self) -> &[RefusedFile] {
        &self.refused
    }

    /// Adds the plugins of one library after checking who could have put it there
    /// ([`super::trust`]) and its descriptors, without loading it. The file stays open: it is
    /// loaded through the same descriptor, so a file put in its place later is never loaded.
    /// Its plugins replace those of the same name and kind already there, built-in ones
    /// included.
    pub fn add_file(&mut self, path: &Path) -> Result<Vec<PluginInfo>> {
        self.add_file_for(path, Asked::Caller)
    }

    fn add_file_for(&mut self, path: &Path, asked: Asked) -> Result<Vec<PluginInfo>> {
        let file = Arc::new(open_trusted(path)?);
        let descs = read_descriptors(&file)?;
        let path = file.path().to_path_buf();
        let known = |e: &Entry| e.info.source == PluginSource::File(path.clone());
        if self.entries.iter().any(known) {
            return Ok(self.entries.iter().filter(|e| known(e)).map(|e| e.info.clone()).collect());
        }
        let mut added = Vec::new();
        for desc in descs {
            let info = info_from(&desc.header, desc.kind, desc.flavor, PluginSource::File(path.clone()));
            let kept = self.plugins().find(|p| p.name == info.name && p.kind == info.kind);
            if let (Asked::Scan, Some(kept)) = (asked, kept) {
                if kept.source != PluginSource::Builtin || kept.version == info.version {
                    log::debug!(
                        "skipping plugin `{}` ({:?}) in {}: shadowed by {}",
                        info.name,
                        info.kind,
                        path.display(),
                        match &kept.source {
                            PluginSource::Builtin => "the built-in one of the same version".to_string(),
                            PluginSource::File(other) => other.display().to_string(),
                        }
                    );
                    continue;
                }
            }
            log::debug!("found plugin `{}` ({:?}) in {}", info.name, info.kind, path.display());
            added.push(info.clone());
            self.put(Entry {
                info,
                loader: Loader::File { file: file.clone(), desc: Box::new(desc), loaded: Mutex::new(None) },
            });
        }
        Ok(added)
    }

    /// Registers `entry` in the place of the plugin of the same name and kind, if there is one.
    fn put(&mut self, entry: Entry) {
        let same = |e: &Entry| e.info.name == entry.info.name && e.info.kind == entry.info.kind;
        match self.entries.iter().position(same) {
            Some(i) => self.entries[i] = entry,
            None => self.entries.push(entry),
        }
    }

    /// Every known plugin, one of each name and kind, in the order they were registered
    /// (built-in plugins first); a plugin that replaced another has its place.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.entries.iter().map(|e| &e.info)
    }

    fn find(&self, name: &str, kind: PluginKind) -> Result<&Entry> {
        self.entries.iter().find(|e| e.info.name == name && e.info.kind == kind).ok_or_else(|| {
            let known: Vec<&str> =
                self.entries.iter().filter(|e| e.info.kind == kind).map(|e| e.info.name.as_str()).collect();
            let known = match known.is_empty() {
                true => format!("the inventory has no {kind} plugins"),
                false => format!("known: {}", known.join(", ")),
            };
            Error::new(ErrorOrigin::Inventory, ErrorKind::NotFound)
                .with_reason(format_args!("no {kind} plugin named `{name}` ({known})"))
        })
    }

    /// The descriptor and library context of a plugin, loading its library on first use.
    fn resolve(&self, entry: &Entry) -> Result<(DescriptorRef, LibArc)> {
        match &entry.loader {
            Loader::Builtin(desc) => Ok((DescriptorRef::Rust(desc), LibArc::default())),
            Loader::File { file, desc, loaded } => {
                let mut slot = loaded.lock().unwrap_or_else(|p| p.into_inner());
                let (lib, ptr) = match &mut *slot {
                    Some(loaded) => &*loaded,
                    empty => {
                        let lib = Library::load(file)?;
                        let ptr = lib.descriptor(desc)?;
                        &*empty.insert((lib, ptr as usize))
                    }
                };
                let ctx: LibArc = CArc::<Library>::from(lib.clone()).into_opaque();
                let desc = match entry.info.flavor {
                    // SAFETY: the header check proved this is a Rust descriptor of our layout.
                    PluginFlavor::Rust => DescriptorRef::Rust(unsafe { &*(*ptr as *const PluginDescriptor) }),
                    PluginFlavor::C => DescriptorRef::C(*ptr as *const u8),
                };
                Ok((desc, ctx))
            }
        }
    }

    /// Creates connector `name` with `args` on top of an optional OS (`input`). Middleware
    /// options in `args` (`cache`, `cache_size`, `cache_page_size`, `cache_time`, `delay`,
    /// `metrics`) are applied here and not passed to the plugin.
    pub fn create_connector(
        &self,
        name: &str,
        input: Option<OsInstanceArcBox<'static>>,
        args: &Args,
    ) -> Result<ConnectorInstanceArcBox<'static>> {
        let entry = self.find(name, PluginKind::Connector)?;
        let mut args = args.clone();
        let middleware: MiddlewareConfig = take_middleware(&mut args)?;
        let (desc, lib) = self.resolve(entry)?;
        let text = args_text(&args)?;
        let conn = match desc {
            DescriptorRef::Rust(d) => {
                let create = d.create_connector.ok_or_else(|| {
                    Error::new(ErrorOrigin::Inventory, ErrorKind::Malformed)
                        .with_reason(format_args!("`{name}` has no connector create function"))
                })?;
                let mut out = MaybeUninit::uninit();
                let code =
                    create(text.as_ptr(), COption::from(input), lib.clone(), Some(PluginLogger::host()), &mut out);
                if code != 0 {
                    return Err(create_failed(name, code));
                }
                // SAFETY: a zero return means the plugin wrote the instance.
                unsafe { out.assume_init() }
            }
            DescriptorRef::C(ptr) => super::c_plugin::create_connector(ptr, &text, lib.clone())?,
        };
        middleware.apply(conn, lib)
    }

    /// Creates OS layer `name` with `args` on top of an optional connector (`input`).
    pub fn create_os(
        &self,
        name: &str,
        input: Option<ConnectorInstanceArcBox<'static>>,
        args: &Args,
    ) -> Result<OsInstanceArcBox<'static>> {
        let entry = self.find(name, PluginKind::Os)?;
        let (desc, lib) = self.resolve(entry)?;
        let text = args_text(args)?;
        match desc {
            DescriptorRef::Rust(d) => {
                let create = d.create_os.ok_or_else(|| {
                    Error::new(ErrorOrigin::Inventory, ErrorKind::Malformed)
                        .with_reason(format_args!("`{name}` has no OS create function"))
                })?;
                let mut out = MaybeUninit::uninit();
                let code = create(text.as_ptr(), COption::from(input), lib, Some(PluginLogger::host()), &mut out);
                if code != 0 {
                    return Err(create_failed(name, code));
                }
                // SAFETY: a zero return means the plugin wrote the instance.
                Ok(unsafe { out.assume_init() })
            }
            DescriptorRef::C(ptr) => super::c_os::create_os(ptr, &text, input, lib),
        }
    }

    /// Builds a whole chain such as `coredump:/dumps/a.elf -> linux` or
    /// `native -> qemu:vm1 -> linux`: each link's output is the next link's input, and a
    /// link's kind (connector or OS) is whatever plugin of that name exists, preferring the
    /// kind that fits after the previous link.
    pub fn create_chain(&self, chain: &str) -> Result<ChainInstance> {
        self.create_chain_ending(chain, None)
    }

    /// Builds a chain; where the last link's name exists as both kinds, `last` decides.
    fn create_chain_ending(&self, chain: &str, last: Option<PluginKind>) -> Result<ChainInstance> {
        let mut current: Option<ChainInstance> = None;
        let links = parse_chain(chain)?;
        let count = links.len();
        for (i, ChainLink { name, args }) in links.into_iter().enumerate() {
            let want_os = match (i + 1 == count, last) {
                (true, Some(kind)) => kind == PluginKind::Os,
                _ => matches!(current, Some(ChainInstance::Connector(_))),
            };
            let is = |kind| self.entries.iter().any(|e| e.info.name == name && e.info.kind == kind);
            let as_os = match (is(PluginKind::Os), is(PluginKind::Connector)) {
                (true, true) => want_os,
                (true, false) => true,
                (false, true) => false,
                (false, false) => {
                    return Err(Error::new(ErrorOrigin::Inventory, ErrorKind::NotFound)
                        .with_reason(format_args!("no plugin named `{name}` in chain `{chain}`")))
                }
            };
            current = Some(match (as_os, current.take()) {
                (true, Some(ChainInstance::Os(_))) => {
                    return Err(Error::new(ErrorOrigin::Inventory, ErrorKind::InvalidArgument)
                        .with_reason(format_args!("OS layer `{name}` cannot take an OS as input in `{chain}`")))
                }
                (true, Some(ChainInstance::Connector(c))) => {
                    ChainInstance::Os(self.create_os(&name, Some(c), &args)?)
                }
                (true, None) => ChainInstance::Os(self.create_os(&name, None, &args)?),
                (false, Some(ChainInstance::Connector(_))) => {
                    return Err(Error::new(ErrorOrigin::Inventory, ErrorKind::InvalidArgument)
                        .with_reason(format_args!("connector `{name}` cannot take a connector as input in `{chain}`")))
                }
                (false, Some(ChainInstance::Os(o))) => {
                    ChainInstance::Connector(self.create_connector(&name, Some(o), &args)?)
                }
                (false, None) => ChainInstance::Connector(self.create_connector(&name, None, &args)?),
            });
        }
        current.ok_or_else(|| Error::new(ErrorOrigin::Inventory, ErrorKind::InvalidArgument).with_reason("empty chain"))
    }

    /// Like [`Inventory::create_chain`], for chains that must end in an OS layer.
    pub fn create_os_chain(&self, chain: &str) -> Result<OsInstanceArcBox<'static>> {
        match self.create_chain_ending(chain, Some(PluginKind::Os))? {
            ChainInstance::Os(os) => Ok(os),
            ChainInstance::Connector(_) => Err(Error::new(ErrorOrigin::Inventory, ErrorKind::InvalidArgument)
                .with_reason(format_args!("chain `{chain}` ends in a connector, not an OS layer"))),
        }
    }

    /// Like [`Inventory::create_chain`], for chains that must end in a connector.
    pub fn create_connector_chain(&self, chain: &str) -> Result<ConnectorInstanceArcBox<'static>> {
        match self.create_chain_ending(chain, Some(PluginKind::Connector))? {
            ChainInstance::Connector(c) => Ok(c),
            ChainInstance::Os(_) => Err(Error::new(ErrorOrigin::Inventory, ErrorKind::InvalidArgument)
                .with_reason(format_args!("chain `{chain}` ends in an OS layer, not a connector"))),
        }
    }

    /// The targets a connector plugin can open.
    pub fn targets(&self, name: &str) -> Result<Vec<TargetInfo>> {
        let entry = self.find(name, PluginKind::Connector)?;
        let (desc, _lib) = self.resolve(entry)?;
        let mut out = Vec::new();
        if let DescriptorRef::Rust(PluginDescriptor { target_list: Some(list), .. }) = desc {
            let code = list((&mut out).into());
            if code != 0 {
                return Err(create_failed(name, code));
            }
        }
        Ok(out)
    }
}

/// A resolved descriptor.
enum DescriptorRef {
    Rust(&'static PluginDescriptor),
    C(*const u8),
}

fn create_failed(name: &str, code: i32) -> Error {
    let err = Error::from_code(code).unwrap_or(Error::new(ErrorOrigin::Plugin, ErrorKind::Unknown));
    log::debug!("plugin `{name}` failed to create an instance: {err}");
    err
}

fn args_text(args: &Args) -> Result<CString> {
    CString::new(args.to_string()).map_err(|_| {
        Error::new(ErrorOrigin::Inventory, ErrorKind::InvalidArgument).with_reason("argument contains a NUL byte")
    })
}

fn info_from(h: &PluginHeader, kind: PluginKind, flavor: PluginFlavor, source: PluginSource) -> PluginInfo {
    PluginInfo {
        name: h.name(),
        version: field_text(&h.version),
        description: field_text(&h.description),
        help: field_text(&h.help),
        kind,
        flavor,
        source,
    }
}

/// The directory of the binary this code is part of (an executable, or a shared library
/// such as `libmemflow_ffi.so`).
fn own_module_dir() -> Option<PathBuf> {
    // SAFETY: Dl_info is plain data; all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: dladdr only reads the address; `info` is a valid place for the result.
    let found = unsafe { libc::dladdr(own_module_dir as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
    let path = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path.to_bytes()));
    path.canonicalize().ok()?.parent().map(Path::to_path_buf)
}

/// The directories [`Inventory::scan`] looks in, in order (the first one that has a plugin
/// wins): `$MEMFLOW_PLUGIN_PATH`, `~/.local/lib/memflow`, `/usr/local/lib/memflow`,
/// `/usr/lib/memflow`, `memflow/` beside the binary that contains this code (so an SDK
/// installed in any prefix finds `<prefix>/lib/memflow` next to `libmemflow_ffi.so`),
/// `lib/memflow` in the parent of the executable's directory (what the `memflow` tool installed in
/// `<prefix>/bin` finds), and the executable's directory.
pub fn default_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("MEMFLOW_PLUGIN_PATH").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/lib/memflow"));
    }
    dirs.push("/usr/local/lib/memflow".into());
    dirs.push("/usr/lib/memflow".into());
    if let Some(module_dir) = own_module_dir() {
        dirs.push(module_dir.join("memflow"));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        if let Some(prefix) = exe_dir.parent() {
            dirs.push(prefix.join("lib/memflow"));
        }
        dirs.push(exe_dir);
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}
