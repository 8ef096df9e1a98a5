//! `plugins list|info|verify|install|remove`: the plugin libraries, checked with the same
//! rules the inventory loads them by (`memflow_core::plugins::trust` and the descriptors).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use memflow_core::plugins::inventory::default_dirs;
use memflow_core::plugins::{Inventory, PluginFlavor, PluginInfo, PluginSource};
use serde::Serialize;

use crate::cli::PluginsCommand;
use crate::output::{Output, Row};
use crate::{Failure, EXIT_VERIFY};

/// Runs a `plugins` command.
pub fn run(command: PluginsCommand, out: &Output) -> Result<(), Failure> {
    match command {
        PluginsCommand::List => list(out),
        PluginsCommand::Info { name } => info(&name, out),
        PluginsCommand::Verify { dir } => verify(dir.as_deref(), out),
        PluginsCommand::Install { path, dir, profile } => install(&path, &plugin_dir(dir)?, &profile, out),
        PluginsCommand::Remove { name, dir } => remove(&name, &plugin_dir(dir)?, out),
    }
}

/// One plugin.
#[derive(Serialize)]
pub struct PluginRow {
    /// The name chains use.
    pub name: String,
    /// `connector` or `os`.
    pub kind: String,
    /// Its version.
    pub version: String,
    /// `rust` or `c` (the interface it is written against).
    pub flavor: &'static str,
    /// The library file, `null` for plugins built into memflow.
    pub file: Option<String>,
    /// One-line description.
    pub description: String,
    /// The arguments it accepts.
    pub help: String,
}

impl From<&PluginInfo> for PluginRow {
    fn from(p: &PluginInfo) -> Self {
        PluginRow {
            name: p.name.clone(),
            kind: p.kind.to_string(),
            version: p.version.clone(),
            flavor: match p.flavor {
                PluginFlavor::Rust => "rust",
                PluginFlavor::C => "c",
            },
            file: match &p.source {
                PluginSource::Builtin => None,
                PluginSource::File(path) => Some(path.display().to_string()),
            },
            description: p.description.clone(),
            help: p.help.clone(),
        }
    }
}

impl Row for PluginRow {
    const HEADERS: &'static [&'static str] = &["NAME", "KIND", "VERSION", "FLAVOR", "FILE"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.kind.clone(),
            self.version.clone(),
            self.flavor.into(),
            self.file.clone().unwrap_or_else(|| "(built in)".into()),
        ]
    }
}

/// A plugin file and what checking it found.
#[derive(Serialize)]
pub struct FileRow {
    /// The file.
    pub file: String,
    /// Whether it passes the checks.
    pub ok: bool,
    /// The names of its plugins (empty if refused).
    pub plugins: Vec<String>,
    /// Why it is refused (`null` if it is not).
    pub reason: Option<String>,
}

impl Row for FileRow {
    const HEADERS: &'static [&'static str] = &["FILE", "STATUS", "PLUGINS OR REASON"];
    fn cells(&self) -> Vec<String> {
        let detail = self.reason.clone().unwrap_or_else(|| self.plugins.join(", "));
        vec![self.file.clone(), if self.ok { "ok" } else { "refused" }.into(), detail]
    }
}

/// Checks one plugin file as the inventory would before loading it (owner and mode of the
/// file and of every directory on its path, descriptors), without loading it.
pub fn check_file(path: &Path) -> FileRow {
    let file = path.display().to_string();
    match Inventory::default().add_file(path) {
        Ok(plugins) => FileRow { file, ok: true, plugins: plugins.into_iter().map(|p| p.name).collect(), reason: None },
        Err(error) => {
            let reason = error.reason().unwrap_or_else(|| error.description());
            FileRow { file, ok: false, plugins: vec![], reason: Some(reason) }
        }
    }
}

/// `plugins list --json`.
#[derive(Serialize)]
struct Listing {
    plugins: Vec<PluginRow>,
    refused: Vec<FileRow>,
}

fn list(out: &Output) -> Result<(), Failure> {
    let inventory = Inventory::scan();
    let plugins: Vec<PluginRow> = inventory.plugins().map(PluginRow::from).collect();
    let refused: Vec<FileRow> = inventory
        .refused()
        .iter()
        .map(|r| FileRow {
            file: r.path.display().to_string(),
            ok: false,
            plugins: vec![],
            reason: Some(r.reason.clone()),
        })
        .collect();
    if out.json() {
        return out.document(&Listing { plugins, refused });
    }
    out.list(&plugins)?;
    if !refused.is_empty() {
        crate::output::print("\nrefused files:\n")?;
        out.list(&refused)?;
    }
    Ok(())
}

fn info(name: &str, out: &Output) -> Result<(), Failure> {
    let inventory = Inventory::scan();
    let found: Vec<PluginRow> = inventory.plugins().filter(|p| p.name == name).map(PluginRow::from).collect();
    if found.is_empty() {
        return Err(Failure::not_found(format!("no plugin named `{name}` (see `memflow plugins list`)")));
    }
    if out.json() {
        return out.document(&found);
    }
    for p in &found {
        out.section(
            &format!("{} ({})", p.name, p.kind),
            &[
                ("version", p.version.clone()),
                ("flavor", p.flavor.into()),
                ("file", p.file.clone().unwrap_or_else(|| "(built in)".into())),
                ("description", p.description.clone()),
                ("arguments", p.help.clone()),
            ],
        )?;
    }
    Ok(())
}

/// The `*.so` files of `dir`, sorted.
fn libraries(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let listing = std::fs::read_dir(dir).map_err(|e| Failure::error(format!("{}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> =
        listing.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "so")).collect();
    files.sort();
    Ok(files)
}

fn verify(dir: Option<&Path>, out: &Output) -> Result<(), Failure> {
    let dirs = match dir {
        Some(dir) => vec![dir.to_path_buf()],
        None => default_dirs(),
    };
    let mut rows = Vec::new();
    for dir in &dirs {
        rows.extend(libraries(dir)?.iter().map(|f| check_file(f)));
    }
    out.list(&rows)?;
    let refused = rows.iter().filter(|r| !r.ok).count();
    match refused {
        0 => Ok(()),
        n => Err(Failure { code: EXIT_VERIFY, message: format!("{n} of {} plugin files refused", rows.len()) }),
    }
}

/// `--dir`, or the user's plugin directory (`~/.local/lib/memflow`, which the inventory
/// searches).
fn plugin_dir(dir: Option<PathBuf>) -> Result<PathBuf, Failure> {
    match dir {
        Some(dir) => Ok(dir),
        None => std::env::var_os("HOME")
            .map(|home| Path::new(&home).join(".local/lib/memflow"))
            .ok_or_else(|| Failure::usage("HOME is not set: pass --dir")),
    }
}

/// Installs what `path` is: a library, a directory of libraries, or a plugin crate.
fn install(path: &Path, dir: &Path, profile: &str, out: &Output) -> Result<(), Failure> {
    let libraries = if path.join("Cargo.toml").is_file() {
        build_crate(path, profile)?
    } else if path.is_dir() {
        let found = libraries(path)?;
        if found.is_empty() {
            return Err(Failure::not_found(format!(
                "{} holds no plugin library (*.so) and no Cargo.toml",
                path.display()
            )));
        }
        found
    } else {
        vec![path.to_path_buf()]
    };
    // Every library is checked before any is copied: a refused one installs nothing.
    for library in &libraries {
        if let Some(reason) = check_file(library).reason {
            return Err(Failure::error(format!("not installing {}: {reason}", library.display())));
        }
    }
    let rows = libraries.iter().map(|library| install_file(library, dir)).collect::<Result<Vec<_>, _>>()?;
    out.list(&rows)
}

/// Builds the plugin crate in `crate_dir` with cargo and returns the shared libraries it made.
/// Cargo's own messages (progress, warnings, errors) go to standard error.
fn build_crate(crate_dir: &Path, profile: &str) -> Result<Vec<PathBuf>, Failure> {
    let manifest = crate_dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--profile", profile, "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Failure::error(format!("cannot run {}: {e}", Path::new(&cargo).display())))?;
    if !output.status.success() {
        return Err(Failure::error(format!("cargo build of {} failed ({})", manifest.display(), output.status)));
    }
    let manifest = manifest.canonicalize().map_err(|e| Failure::error(format!("{}: {e}", manifest.display())))?;
    let mut built = Vec::new();
    for line in output.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(message) = serde_json::from_slice::<CargoMessage>(line) else { continue };
        let ours = message.manifest_path.as_deref().is_some_and(|m| Path::new(m) == manifest);
        if message.reason == "compiler-artifact" && ours && message.target.kind.iter().any(|k| k == "cdylib") {
            built.extend(
                message.filenames.into_iter().map(PathBuf::from).filter(|f| f.extension().is_some_and(|x| x == "so")),
            );
        }
    }
    if built.is_empty() {
        return Err(Failure::error(format!(
            "{} builds no shared library: a plugin crate needs `crate-type = [\"cdylib\"]`",
            manifest.display()
        )));
    }
    Ok(built)
}

/// The parts of a line of `cargo build --message-format=json` that name what was built.
#[derive(serde::Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    manifest_path: Option<String>,
    #[serde(default)]
    target: CargoTarget,
    #[serde(default)]
    filenames: Vec<String>,
}

/// The crate target of a cargo artifact message.
#[derive(serde::Deserialize, Default)]
struct CargoTarget {
    #[serde(default)]
    kind: Vec<String>,
}

/// Copies one checked library into `dir` and checks the copy where it will be loaded from.
fn install_file(path: &Path, dir: &Path) -> Result<FileRow, Failure> {
    let name = path.file_name().ok_or_else(|| Failure::usage(format!("{} is not a file", path.display())))?;
    let bytes = std::fs::read(path).map_err(|e| Failure::error(format!("{}: {e}", path.display())))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Failure::error(format!("{}: {e}", dir.display())))?;
    let dest = dir.join(name);
    // Written under a temporary name with its final mode (writable by its owner only), then
    // renamed over: the inventory never sees a half-written library.
    let partial = dir.join(format!(".{}.partial", name.to_string_lossy()));
    let _ = std::fs::remove_file(&partial);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&partial)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&partial, &dest));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(Failure::error(format!("{}: {e}", dest.display())));
    }
    // The directory's owner and mode count too.
    let installed = check_file(&dest);
    if let Some(reason) = &installed.reason {
        let _ = std::fs::remove_file(&dest);
        return Err(Failure::error(format!("not installing into {}: {reason}", dir.display())));
    }
    Ok(installed)
}

fn remove(name: &str, dir: &Path, out: &Output) -> Result<(), Failure> {
    let by_file = dir.join(name);
    let files: Vec<PathBuf> = if Path::new(name).file_name() == Some(name.as_ref()) && by_file.is_file() {
        vec![by_file]
    } else {
        libraries(dir)?.into_iter().filter(|f| check_file(f).plugins.iter().any(|p| p == name)).collect()
    };
    if files.is_empty() {
        return Err(Failure::not_found(format!("no plugin file or plugin named `{name}` in {}", dir.display())));
    }
    let mut rows = Vec::new();
    for file in files {
        std::fs::remove_file(&file).map_err(|e| Failure::error(format!("{}: {e}", file.display())))?;
        rows.push(FileRow { file: file.display().to_string(), ok: true, plugins: vec![], reason: None });
    }
    out.list(&rows)
}
