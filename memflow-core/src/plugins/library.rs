//! Plugin library files: reading their descriptors without loading them, and loading them
//! through the descriptor they were checked through ([`super::trust`]).

use std::mem::ManuallyDrop;
use std::path::Path;
use std::sync::Arc;

use goblin::elf::Elf;

use super::c_abi::PREFIX_LEN;
use super::descriptor::{PluginFlavor, PluginHeader, PluginKind, PLUGIN_SYMBOL};
use super::trust::TrustedFile;
use crate::arch::ArchitectureIdent;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The largest plugin file the inventory reads for its metadata.
const MAX_PLUGIN_FILE: u64 = 512 << 20;

/// The ELF machine this host runs: that of the architectures whose code runs on it, `EM_NONE`
/// (no plugin file matches) on a host of none of them.
fn host_machine() -> u16 {
    let host = ArchitectureIdent::ALL.iter().find(|a| a.target_arch() == std::env::consts::ARCH);
    host.map_or(goblin::elf::header::EM_NONE, |a| a.elf_machine())
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
pub fn read_descriptors(file: &TrustedFile) -> Result<Vec<FileDescriptor>> {
    let bytes = file.bytes(MAX_PLUGIN_FILE)?;
    let in_file = |e: Error| e.with_reason(format_args!("in {}", file.path().display()));
    descriptors_in(&bytes).map_err(in_file)
}

/// Parses an ELF shared object image and checks each descriptor it exports.
fn descriptors_in(bytes: &[u8]) -> Result<Vec<FileDescriptor>> {
    let elf = Elf::parse(bytes).map_err(|e| {
        Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
            .with_reason(format_args!("not a readable ELF library ({e})"))
    })?;
    if elf.header.e_type != goblin::elf::header::ET_DYN {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
            .with_reason("not a shared library (ELF type is not ET_DYN)"));
    }
    if elf.header.e_machine != host_machine() || elf.is_64 != cfg!(target_pointer_width = "64") {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Unsupported).with_reason(format_args!(
            "built for another architecture (ELF machine {}, {}-bit; this host is {} {}-bit)",
            elf.header.e_machine,
            if elf.is_64 { 64 } else { 32 },
            std::env::consts::ARCH,
            usize::BITS
        )));
    }
    let mut found = Vec::new();
    for sym in elf.dynsyms.iter().filter(|s| s.st_shndx != 0) {
        let Some(name) = elf.dynstrtab.get_at(sym.st_name).filter(|n| is_descriptor_symbol(n)) else { continue };
        if found.len() == MAX_DESCRIPTORS {
            return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::LimitExceeded)
                .with_reason(format_args!("more than {MAX_DESCRIPTORS} plugin descriptors")));
        }
        let header_size = core::mem::size_of::<PluginHeader>();
        // Map the symbol's virtual address to its bytes through the segment holding it.
        let prefix = |size: usize| -> Result<&[u8]> {
            if sym.st_size < size as u64 {
                return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
                    .with_reason(format_args!("`{name}` is {} bytes, too small for a descriptor", sym.st_size)));
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
                    Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
                        .with_reason(format_args!("`{name}` lies outside every loaded segment"))
                })?;
            let start = (sym.st_value - seg.p_vaddr).saturating_add(seg.p_offset) as usize;
            bytes.get(start..start.saturating_add(size)).ok_or_else(|| {
                Error::new(ErrorOrigin::Plugin, ErrorKind::Truncated)
                    .with_reason(format_args!("`{name}` lies past the end of the file"))
            })
        };
        let header: PluginHeader = bytemuck::pod_read_unaligned(prefix(header_size)?);
        let (kind, flavor) = header.check()?;
        if flavor == PluginFlavor::C {
            super::c_abi::check_prefix(kind, &prefix(header_size + PREFIX_LEN)?[header_size..])?;
        }
        found.push(FileDescriptor { symbol: name.to_string(), header, kind, flavor });
    }
    if found.is_empty() {
        return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::NotFound)
            .with_reason(format_args!("no `{PLUGIN_SYMBOL}` descriptor exported")));
    }
    Ok(found)
}

/// A loaded plugin library. Dropped (unloaded) when the last instance made from it is gone.
pub struct Library {
    lib: ManuallyDrop<libloading::Library>,
    /// The descriptor it was loaded through.
    file: Arc<TrustedFile>,
}

impl Library {
    /// Loads the checked file `file` through its open descriptor, so the loaded code is the
    /// checked file's, and only if it has not changed since it was checked.
    pub fn load(file: &Arc<TrustedFile>) -> Result<Arc<Library>> {
        // Before loading: loading runs the library's initialisers.
        file.unchanged()?;
        let name = file.fd_path();
        // SAFETY: loading runs the library's initialisers; the file passed the trust rules and
        // its descriptors were validated before.
        let lib = unsafe { libloading::Library::new(&name) }.map_err(|e| {
            Error::new(ErrorOrigin::Plugin, ErrorKind::Io).with_reason(format_args!(
                "cannot load {} (as {}): {e}",
                file.path().display(),
                name.display()
            ))
        })?;
        let lib = Arc::new(Library { lib: ManuallyDrop::new(lib), file: file.clone() });
        // After loading: a change while it was being mapped.
        file.unchanged()?;
        Ok(lib)
    }

    /// The address of descriptor `desc`, after checking that the loaded header is the one
    /// read from the file.
    pub fn descriptor(&self, desc: &FileDescriptor) -> Result<*const u8> {
        let path = self.file.path();
        // SAFETY: the symbol is a static whose first bytes are a `PluginHeader`.
        let ptr: *const u8 = unsafe {
            let sym: libloading::Symbol<*const u8> = self.lib.get(desc.symbol.as_bytes()).map_err(|e| {
                Error::new(ErrorOrigin::Plugin, ErrorKind::NotFound)
                    .with_reason(format_args!("{}: {e}", path.display()))
            })?;
            *sym
        };
        // SAFETY: as above; the header is plain bytes.
        let loaded: PluginHeader = unsafe { core::ptr::read_unaligned(ptr as *const PluginHeader) };
        if bytemuck::bytes_of(&loaded) != bytemuck::bytes_of(&desc.header) {
            return Err(Error::new(ErrorOrigin::Plugin, ErrorKind::Malformed)
                .with_reason(format_args!("{} changed since it was scanned", path.display())));
        }
        Ok(ptr)
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and not used afterwards.
        let lib = unsafe { ManuallyDrop::take(&mut self.lib) };
        let _ = lib.close();
        // The loader finds loaded libraries by name before it opens anything, so while a
        // library loaded as `/proc/self/fd/N` stays resident (a library may not unload, or
        // another inventory holds it), descriptor N must stay open: a later plugin opened as
        // N would otherwise be handed this library instead of its own file.
        let name = self.file.fd_path();
        // SAFETY: RTLD_NOLOAD only looks the name up; nothing is loaded or initialised.
        let resident = unsafe { libloading::os::unix::Library::open(Some(&name), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        if let Ok(handle) = resident {
            let _ = handle.close();
            core::mem::forget(self.file.clone());
        }
    }
}

impl core::fmt::Debug for Library {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Library({})", self.file.path().display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine derived from the architecture table is the one this test binary was built for.
    #[test]
    fn host_machine_is_the_machine_of_this_binary() {
        use std::io::Read;
        let mut header = [0u8; 64];
        std::fs::File::open("/proc/self/exe").unwrap().read_exact(&mut header).unwrap();
        assert_eq!(host_machine(), Elf::parse_header(&header).unwrap().e_machine);
    }
}
