//! Plugin library files: reading a descriptor header without loading the library, the
//! ownership and permission checks, and loading.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use goblin::elf::Elf;

use super::descriptor::{PluginFlavor, PluginHeader, PluginKind, PLUGIN_SYMBOL};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

fn refuse(kind: ErrorKind, why: impl core::fmt::Display) -> Error {
    Error::new(ErrorOrigin::Plugin, kind).log_warn(why)
}

/// The largest plugin file the inventory reads for its metadata.
const MAX_PLUGIN_FILE: u64 = 512 << 20;

/// The ELF machine this host runs.
fn host_machine() -> u16 {
    use goblin::elf::header::*;
    match std::env::consts::ARCH {
        "x86_64" => EM_X86_64,
        "x86" => EM_386,
        "aarch64" => EM_AARCH64,
        "arm" => EM_ARM,
        "riscv64" => EM_RISCV,
        _ => EM_NONE,
    }
}

/// Refuses files and directories that users other than root and the current user can write:
/// loading a plugin runs its code.
pub fn check_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut checked: Vec<PathBuf> = vec![path.to_path_buf()];
    if let Some(dir) = path.parent() {
        checked.push(if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() });
    }
    for p in checked {
        let meta = std::fs::metadata(&p)
            .map_err(|e| refuse(ErrorKind::of_io(&e), format_args!("cannot stat {}: {e}", p.display())))?;
        let others_write = meta.mode() & 0o022 != 0;
        // A sticky directory (like /tmp) still lets others replace only their own files.
        let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0 && meta.uid() == 0;
        if others_write && !sticky_dir {
            return Err(refuse(
                ErrorKind::PermissionDenied,
                format_args!(
                    "refusing plugin {}: {} is writable by other users (mode {:o})",
                    path.display(),
                    p.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        if meta.uid() != 0 && meta.uid() != me {
            return Err(refuse(
                ErrorKind::PermissionDenied,
                format_args!(
                    "refusing plugin {}: {} belongs to uid {}, not to root or this user",
                    path.display(),
                    p.display(),
                    meta.uid()
                ),
            ));
        }
    }
    Ok(())
}

/// The most descriptors one library may export.
const MAX_DESCRIPTORS: usize = 16;

/// A descriptor found in a library file.
#[derive(Clone)]
pub struct FileDescriptor {
    /// The exported symbol (`MEMFLOW_PLUGIN` or `MEMFLOW_PLUGIN_<suffix>`).
    pub symbol: String,
    /// Its header, as stored in the file.
    pub header: PluginHeader,
    /// Connector or OS layer.
    pub kind: PluginKind,
    /// Rust or C interface.
    pub flavor: PluginFlavor,
}

/// True for the symbols plugin descriptors are exported under.
fn is_descriptor_symbol(name: &str) -> bool {
    name == PLUGIN_SYMBOL || name.strip_prefix(PLUGIN_SYMBOL).is_some_and(|rest| rest.starts_with('_'))
}

/// Reads and checks every descriptor of a plugin library file, without loading it. One bad
/// descriptor refuses the whole file.
pub fn read_descriptors(path: &Path) -> Result<Vec<FileDescriptor>> {
    let len = std::fs::metadata(path)
        .map_err(|e| refuse(ErrorKind::of_io(&e), format_args!("{}: {e}", path.display())))?
        .len();
    if len > MAX_PLUGIN_FILE {
        return Err(refuse(
            ErrorKind::OutOfBounds,
            format_args!("{}: {len} bytes is too large for a plugin", path.display()),
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| refuse(ErrorKind::of_io(&e), format_args!("{}: {e}", path.display())))?;
    let in_file = |e: Error| e.log_warn(format_args!("in {}", path.display()));
    descriptors_in(&bytes).map_err(in_file)
}

/// Parses an ELF shared object image and checks each descriptor it exports.
fn descriptors_in(bytes: &[u8]) -> Result<Vec<FileDescriptor>> {
    let elf = Elf::parse(bytes)
        .map_err(|e| refuse(ErrorKind::Malformed, format_args!("not a readable ELF library ({e})")))?;
    if elf.header.e_type != goblin::elf::header::ET_DYN {
        return Err(refuse(ErrorKind::Malformed, "not a shared library (ELF type is not ET_DYN)"));
    }
    if elf.header.e_machine != host_machine() || elf.is_64 != cfg!(target_pointer_width = "64") {
        return Err(refuse(
            ErrorKind::Unsupported,
            format_args!(
                "built for another architecture (ELF machine {}, {}-bit; this host is {} {}-bit)",
                elf.header.e_machine,
                if elf.is_64 { 64 } else { 32 },
                std::env::consts::ARCH,
                usize::BITS
            ),
        ));
    }
    let mut found = Vec::new();
    for sym in elf.dynsyms.iter().filter(|s| s.st_shndx != 0) {
        let Some(name) = elf.dynstrtab.get_at(sym.st_name).filter(|n| is_descriptor_symbol(n)) else { continue };
        if found.len() == MAX_DESCRIPTORS {
            return Err(refuse(
                ErrorKind::LimitExceeded,
                format_args!("more than {MAX_DESCRIPTORS} plugin descriptors"),
            ));
        }
        let header_size = core::mem::size_of::<PluginHeader>();
        // Map the symbol's virtual address to its bytes through the segment holding it.
        let prefix = |size: usize| -> Result<&[u8]> {
            if sym.st_size < size as u64 {
                return Err(refuse(
                    ErrorKind::Malformed,
                    format_args!("`{name}` is {} bytes, too small for a descriptor", sym.st_size),
                ));
            }
            let seg = elf
                .program_headers
                .iter()
                .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
                .find(|p| {
                    sym.st_value >= p.p_vaddr
                        && sym.st_value.saturating_add(size as u64) <= p.p_vaddr.saturating_add(p.p_filesz)
                })
                .ok_or_else(|| {
                    refuse(ErrorKind::Malformed, format_args!("`{name}` lies outside every loaded segment"))
                })?;
            let start = (sym.st_value - seg.p_vaddr).saturating_add(seg.p_offset) as usize;
            bytes
                .get(start..start.saturating_add(size))
                .ok_or_else(|| refuse(ErrorKind::Truncated, format_args!("`{name}` lies past the end of the file")))
        };
        let header: PluginHeader = bytemuck::pod_read_unaligned(prefix(header_size)?);
        let (kind, flavor) = header.check()?;
        if flavor == PluginFlavor::C {
            super::c_plugin::check_prefix(&prefix(header_size + 8)?[header_size..])?;
        }
        found.push(FileDescriptor { symbol: name.to_string(), header, kind, flavor });
    }
    if found.is_empty() {
        return Err(refuse(ErrorKind::NotFound, format_args!("no `{PLUGIN_SYMBOL}` descriptor exported")));
    }
    Ok(found)
}

/// A loaded plugin library. Dropped (unloaded) when the last instance made from it is gone.
pub struct Library {
    lib: libloading::Library,
    path: PathBuf,
}

impl Library {
    /// Loads `path` (after checking its permissions again).
    pub fn load(path: &Path) -> Result<Arc<Library>> {
        check_permissions(path)?;
        // SAFETY: loading runs the library's initialisers; the file passed the ownership and
        // permission checks and its descriptors were validated before.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| refuse(ErrorKind::Io, format_args!("cannot load {}: {e}", path.display())))?;
        Ok(Arc::new(Library { lib, path: path.to_path_buf() }))
    }

    /// The address of descriptor `desc`, after checking that the loaded header is the one
    /// read from the file.
    pub fn descriptor(&self, desc: &FileDescriptor) -> Result<*const u8> {
        // SAFETY: the symbol is a static whose first bytes are a `PluginHeader`.
        let ptr: *const u8 = unsafe {
            let sym: libloading::Symbol<*const u8> = self
                .lib
                .get(desc.symbol.as_bytes())
                .map_err(|e| refuse(ErrorKind::NotFound, format_args!("{}: {e}", self.path.display())))?;
            *sym
        };
        // SAFETY: as above; the header is plain bytes.
        let loaded: PluginHeader = unsafe { core::ptr::read_unaligned(ptr as *const PluginHeader) };
        if bytemuck::bytes_of(&loaded) != bytemuck::bytes_of(&desc.header) {
            return Err(refuse(
                ErrorKind::Malformed,
                format_args!("{} changed since it was scanned", self.path.display()),
            ));
        }
        Ok(ptr)
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl core::fmt::Debug for Library {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let _ = &self.lib;
        write!(f, "Library({})", self.path.display())
    }
}
