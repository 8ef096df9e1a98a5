//! `Inventory`: the plugins this process can use, and chains built from them.

use std::path::PathBuf;

use memflow_core::plugins::descriptor::{PluginFlavor, PluginKind};
use memflow_core::plugins::{ChainInstance, Inventory as CoreInventory, PluginInfo as CorePluginInfo, PluginSource};
use pyo3::prelude::*;

use crate::connector::Connector;
use crate::errors::Raised;
use crate::os::Os;
use crate::space::Handle;

/// A plugin the inventory knows (read from its descriptor, without loading it).
#[pyclass(module = "memflow", frozen, get_all, eq)]
#[derive(Clone, PartialEq)]
pub struct PluginInfo {
    /// The name chains use.
    pub name: String,
    /// Its version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// The arguments it accepts.
    pub help: String,
    /// `"connector"` or `"os"`.
    pub kind: &'static str,
    /// `"rust"` or `"c"`: the plugin interface it implements.
    pub flavor: &'static str,
    /// Its library file, `None` for a plugin built into memflow.
    pub path: Option<PathBuf>,
}

impl From<&CorePluginInfo> for PluginInfo {
    fn from(p: &CorePluginInfo) -> Self {
        PluginInfo {
            name: p.name.clone(),
            version: p.version.clone(),
            description: p.description.clone(),
            help: p.help.clone(),
            kind: match p.kind {
                PluginKind::Connector => "connector",
                PluginKind::Os => "os",
            },
            flavor: match p.flavor {
                PluginFlavor::Rust => "rust",
                PluginFlavor::C => "c",
            },
            path: match &p.source {
                PluginSource::Builtin => None,
                PluginSource::File(path) => Some(path.clone()),
            },
        }
    }
}

#[pymethods]
impl PluginInfo {
    fn __repr__(&self) -> String {
        format!("PluginInfo(name={:?}, kind={:?}, version={:?})", self.name, self.kind, self.version)
    }
}

/// Inventory(scan=True)
///
/// The plugins available: the built-in ones, plus (with `scan`) the plugin libraries found in
/// `$MEMFLOW_PLUGIN_PATH`, `~/.local/lib/memflow`, `/usr/local/lib/memflow` and
/// `/usr/lib/memflow`. A plugin library stays loaded while an object made from it lives and
/// the inventory that loaded it is alive.
#[pyclass(module = "memflow", frozen)]
pub struct Inventory {
    inner: std::sync::RwLock<CoreInventory>,
}

#[pymethods]
impl Inventory {
    #[new]
    #[pyo3(signature = (scan = true))]
    fn new(scan: bool) -> Self {
        let inner = if scan { CoreInventory::scan() } else { CoreInventory::builtin() };
        Inventory { inner: std::sync::RwLock::new(inner) }
    }

    /// plugins() -> list[PluginInfo]: every plugin, one of each name and kind.
    fn plugins(&self) -> Vec<PluginInfo> {
        self.read().plugins().map(PluginInfo::from).collect()
    }

    /// add_dir(path) -> int
    ///
    /// Adds the plugin libraries in directory `path` (they replace plugins of the same name);
    /// returns how many plugins were added. Files memflow refuses to load (writable by others,
    /// wrong ABI...) are skipped.
    fn add_dir(&self, py: Python<'_>, path: PathBuf) -> PyResult<usize> {
        let added = py.allow_threads(|| self.write().add_dir(&path));
        Ok(added.map_err(|e| Raised::about(format!("plugin directory {}", path.display()), e))?)
    }

    /// add_file(path) -> list[PluginInfo]
    ///
    /// Adds the plugins of library file `path` (they replace plugins of the same name).
    fn add_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<Vec<PluginInfo>> {
        let added = py.allow_threads(|| self.write().add_file(&path));
        let added = added.map_err(|e| Raised::about(format!("plugin file {}", path.display()), e))?;
        Ok(added.iter().map(PluginInfo::from).collect())
    }

    /// chain(text) -> Connector | Os
    ///
    /// Opens a chain: a connector and the OS layers on top of it, e.g.
    /// `"coredump:/path/dump.elf -> linux"`, `"native"`, `"qemu:name=vm1 -> linux"`.
    /// Returns an `Os` if the chain ends in an OS layer, else a `Connector`. Where the last
    /// name is both a connector and an OS layer (`dummy`), a lone one is the connector; see
    /// `os()` and `connector()`.
    fn chain(&self, py: Python<'_>, text: &str) -> PyResult<PyObject> {
        // The core's reasons name the chain.
        match py.allow_threads(|| self.read().create_chain(text)).map_err(Raised::from)? {
            ChainInstance::Connector(conn) => Connector::create(py, Handle::Connector(conn)),
            ChainInstance::Os(os) => Os::create(py, os),
        }
    }

    /// os(text) -> Os: opens a chain that ends in an OS layer (e.g. `"dummy:procs=8"`).
    fn os(&self, py: Python<'_>, text: &str) -> PyResult<PyObject> {
        let os = py.allow_threads(|| self.read().create_os_chain(text)).map_err(Raised::from)?;
        Os::create(py, os)
    }

    /// connector(text) -> Connector: opens a chain that ends in a connector.
    fn connector(&self, py: Python<'_>, text: &str) -> PyResult<PyObject> {
        let conn = py.allow_threads(|| self.read().create_connector_chain(text)).map_err(Raised::from)?;
        Connector::create(py, Handle::Connector(conn))
    }
}

impl Inventory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, CoreInventory> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CoreInventory> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}
