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
        let meta = std::fs::metadata(&p).map_err(|e| refuse(ErrorKind::of_io(&e), format_args!("cannot stat {}: {e}", p.display())))?;
        let others_write = meta.mode() & 0o022 != 0;
        // A sticky directory (like /tmp) still lets others replace only their own files.
        let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0 && meta.uid() == 0;
        if others_write && !sticky_dir {
            return Err(refuse(
                ErrorKind::PermissionDenied,
                format_args!("refusing plugin {}: {} is writable by other users (mode {:o})", path.display(), p.display(), meta.mode() & 0o7777),
            ));
        }
        if meta.uid() != 0 && meta.uid() != me {
            return Err(refuse(
                ErrorKind::PermissionDenied,
                format_args!("refusing plugin {}: {} belongs to uid {}, not to root or this user", path.display(), p.display(), meta.uid()),
            ));
        }
    }
    Ok(())
}

/// Reads and checks the descriptor header of a plugin library file, without loading it.
pub fn read_header(path: &Path) -> Result<(PluginHeader, PluginKind, PluginFlavor)> {
    let len = std::fs::metadata(path).map_err(|e| refuse(ErrorKind::of_io(&e), format_args!("{}: {e}", path.display())))?.len();
    if len > MAX_PLUGIN_FILE {
        return Err(refuse(ErrorKind::OutOfBounds, format_args!("{}: {len} bytes is too large for a plugin", path.display())));
    }
    let bytes = std::fs::read(path).map_err(|e| refuse(ErrorKind::of_io(&e), format_args!("{}: {e}", path.display())))?;
    let in_file = |e: Error| e.log_warn(format_args!("in {}", path.display()));
    let header_size = core::mem::size_of::<PluginHeader>();
    let header: PluginHeader = bytemuck::pod_read_unaligned(descriptor_prefix(&bytes, header_size).map_err(in_file)?);
    let (kind, flavor) = header.check().map_err(in_file)?;
    if flavor == PluginFlavor::C {
        let prefix = descriptor_prefix(&bytes, header_size + 8).map_err(in_file)?;
        super::c_plugin::check_prefix(&prefix[header_size..]).map_err(in_file)?;
    }
    Ok((header, kind, flavor))
}

/// Finds the descriptor symbol in an ELF shared object image and returns its first `size`
/// bytes, as stored in the file.
fn descriptor_prefix(bytes: &[u8], size: usize) -> Result<&[u8]> {
    let elf = Elf::parse(bytes).map_err(|e| refuse(ErrorKind::Malformed, format_args!("not a readable ELF library ({e})")))?;
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
    let sym = elf
        .dynsyms
        .iter()
        .find(|s| elf.dynstrtab.get_at(s.st_name) == Some(PLUGIN_SYMBOL) && s.st_shndx != 0)
        .ok_or_else(|| refuse(ErrorKind::NotFound, format_args!("no `{PLUGIN_SYMBOL}` descriptor exported")))?;
    let size = size as u64;
    if sym.st_size < size {
        return Err(refuse(ErrorKind::Malformed, format_args!("`{PLUGIN_SYMBOL}` is {} bytes, too small for a descriptor", sym.st_size)));
    }
    // Map the symbol's virtual address to a file offset through the segment holding it.
    let seg = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .find(|p| sym.st_value >= p.p_vaddr && sym.st_value + size <= p.p_vaddr + p.p_filesz)
        .ok_or_else(|| refuse(ErrorKind::Malformed, "descriptor lies outside every loaded segment"))?;
    let start = (sym.st_value - seg.p_vaddr + seg.p_offset) as usize;
    bytes.get(start..start + size as usize).ok_or_else(|| refuse(ErrorKind::Truncated, "descriptor lies past the end of the file"))
}

/// A loaded plugin library. Dropped (unloaded) when the last instance made from it is gone.
pub struct Library {
    lib: libloading::Library,
    path: PathBuf,
}

impl Library {
    /// Loads `path` and returns it with the address of its descriptor, after checking that
    /// the loaded descriptor's header is the one read from the file.
    pub fn load(path: &Path, expected: &PluginHeader) -> Result<(Arc<Library>, *const u8)> {
        check_permissions(path)?;
        // SAFETY: loading runs the library's initialisers; the file passed the ownership and
        // permission checks and its descriptor was validated before.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| refuse(ErrorKind::Io, format_args!("cannot load {}: {e}", path.display())))?;
        // SAFETY: the symbol is a static whose first bytes are a `PluginHeader`.
        let ptr: *const u8 = unsafe {
            let sym: libloading::Symbol<*const u8> = lib
                .get(PLUGIN_SYMBOL.as_bytes())
                .map_err(|e| refuse(ErrorKind::NotFound, format_args!("{}: {e}", path.display())))?;
            *sym
        };
        // SAFETY: as above; the header is plain bytes.
        let loaded: PluginHeader = unsafe { core::ptr::read_unaligned(ptr as *const PluginHeader) };
        if bytemuck::bytes_of(&loaded) != bytemuck::bytes_of(expected) {
            return Err(refuse(ErrorKind::Malformed, format_args!("{} changed since it was scanned", path.display())));
        }
        Ok((Arc::new(Library { lib, path: path.to_path_buf() }), ptr))
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
