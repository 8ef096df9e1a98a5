//! Format detection by content, and the one entry point that opens any dump file.
//!
//! A file starting with the ELF magic is read as an ELF core (an ELF file that is not a core
//! dump is refused rather than served as raw bytes), one starting with the LiME magic as a
//! LiME dump, anything else as a raw image. The file name plays no part.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use super::buffer::Backing;
use super::file::{map_file, DumpFormat, DumpInfo, FileConnector, OpenOptions};
use super::{elf, lime};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::MemoryMap;
use crate::types::umem;

/// A parsed dump: where guest memory lies in the bytes, and what else the dump recorded.
#[derive(Clone, Debug)]
pub struct ParsedDump {
    /// Guest physical layout; backing values are offsets into the parsed bytes.
    pub map: MemoryMap,
    /// Format, CPU state and notes.
    pub info: DumpInfo,
}

/// The format of a dump, judged by its first bytes.
pub fn detect(bytes: &[u8]) -> DumpFormat {
    if bytes.starts_with(&elf::ELF_MAGIC) {
        DumpFormat::ElfCore
    } else if lime::is_lime(bytes) {
        DumpFormat::Lime
    } else {
        DumpFormat::Raw
    }
}

/// Detects the format of `bytes` and parses them. Empty input is refused.
pub fn parse(bytes: &[u8]) -> Result<ParsedDump> {
    if bytes.is_empty() {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated)
            .with_reason("the dump is empty (0 bytes): there is no memory to map"));
    }
    let format = detect(bytes);
    Ok(match format {
        DumpFormat::Raw => ParsedDump { map: MemoryMap::identity(bytes.len() as umem), info: DumpInfo::bare(format) },
        DumpFormat::Lime => ParsedDump { map: lime::parse(bytes)?, info: DumpInfo::bare(format) },
        DumpFormat::ElfCore => {
            let core = elf::parse(bytes)?;
            ParsedDump { map: core.map, info: DumpInfo { format, cpus: core.cpus, vmcoreinfo: core.vmcoreinfo } }
        }
    })
}

/// Serves the dump held in `backing` (a mapped file, or any bytes in memory), parsed by
/// content unless `options.raw_map` gives the layout of a raw image.
pub fn from_backing<B: Backing + Deref<Target = [u8]>>(backing: B, options: OpenOptions) -> Result<FileConnector> {
    let ParsedDump { map, info } = match options.raw_map {
        Some(map) => ParsedDump { map, info: DumpInfo::bare(DumpFormat::Raw) },
        None => parse(&backing)?,
    };
    FileConnector::new(Arc::new(backing), map, info)
}

/// Opens the dump file at `path`: maps it (writable only if `options.writable`), detects its
/// format by content and parses it.
pub fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<FileConnector> {
    from_backing(map_file(path.as_ref(), options.writable)?, options)
}

#[cfg(test)]
mod tests {
    use super::super::cpu_state::{CpuState, CpuStateBase, X86ArchHint};
    use super::super::testdata::{self, lime_file, pattern};
    use super::*;
    use crate::error::PartialResultExt;
    use crate::mem::{MemoryView, PhysicalMemory};
    use crate::types::Address;
    use std::path::PathBuf;

    /// A file in the temp directory that is removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!("memflow-detect-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A directory in the temp directory that is removed with its contents when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!("memflow-detect-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn read(conn: &FileConnector, addr: umem, len: usize) -> Vec<u8> {
        conn.clone().into_phys_view().read_raw(Address::new(addr), len).data().unwrap()
    }

    #[test]
    fn detects_by_content() {
        assert_eq!(detect(&testdata::qemu_core().build()), DumpFormat::ElfCore);
        assert_eq!(detect(&lime_file(&[(0, vec![1])])), DumpFormat::Lime);
        assert_eq!(detect(b"\x7fEL"), DumpFormat::Raw);
        assert_eq!(detect(&[]), DumpFormat::Raw);
        assert_eq!(parse(&[]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&[0]).unwrap().map, MemoryMap::identity(1));
    }

    #[test]
    fn opens_elf_core_with_cpu_state() {
        let file = TempFile::new("core.elf", &testdata::qemu_core().build());
        let conn = open(&file.0, OpenOptions::default()).unwrap();
        assert_eq!(conn.format(), DumpFormat::ElfCore);
        assert_eq!(read(&conn, 0x10_0000, 0x10), pattern(0x10, 2));
        assert_eq!(read(&conn, 0x1ff0, 0x10), pattern(0x2000, 1)[0x1ff0..]);
        assert_eq!(conn.cpu_count(), 2);
        let cpu = conn.x86_registers(0).unwrap();
        assert_eq!(cpu.arch_hint(), X86ArchHint::X86_64La57);
        assert_eq!(conn.x86_registers(2).unwrap_err().kind, ErrorKind::NotFound);
        // The same through a cglue trait object (the C ABI path).
        let obj = cglue::trait_obj!(conn.clone() as CpuState);
        assert_eq!(obj.cpu_count(), 2);
        assert_eq!(obj.x86_registers(1).unwrap(), conn.x86_registers(1).unwrap());
        assert_eq!(obj.x86_registers(2).unwrap_err().kind, ErrorKind::NotFound);
        // Read-only by default.
        assert!(conn.metadata().readonly);
        assert!(conn.clone().phys_write(crate::types::PhysicalAddress::plain(Address::NULL), &1u8).is_err());
    }

    #[test]
    fn opens_lime_and_raw() {
        let lime = TempFile::new("mem.lime", &lime_file(&[(0x1000, pattern(0x100, 4))]));
        let conn = open(&lime.0, OpenOptions::default()).unwrap();
        assert_eq!(conn.format(), DumpFormat::Lime);
        assert_eq!(read(&conn, 0x1080, 0x80), pattern(0x100, 4)[0x80..]);
        assert_eq!(conn.cpu_count(), 0);

        let raw = TempFile::new("mem.raw", &pattern(0x3000, 5));
        let conn = open(&raw.0, OpenOptions::default()).unwrap();
        assert_eq!(conn.format(), DumpFormat::Raw);
        assert_eq!(conn.memory_map(), &MemoryMap::identity(0x3000));
        assert_eq!(read(&conn, 0x2ff0, 0x10), pattern(0x3000, 5)[0x2ff0..]);

        // A caller-given layout: file 0x1000.. at guest 1 MiB. The LiME file is raw bytes too.
        let mut map = MemoryMap::new();
        map.push(Address::new(0x10_0000), 0x2000, 0x1000).unwrap();
        let conn = open(&raw.0, OpenOptions { writable: false, raw_map: Some(map.clone()) }).unwrap();
        assert_eq!(read(&conn, 0x10_0000, 0x10), pattern(0x3000, 5)[0x1000..0x1010]);
        assert_eq!(
            open(&lime.0, OpenOptions { writable: false, raw_map: Some(map) }).unwrap_err().kind,
            ErrorKind::OutOfBounds
        );
    }

    #[test]
    fn writable_maps_write_through_to_the_file() {
        let raw = TempFile::new("rw.raw", &[0u8; 0x1000]);
        let mut conn = open(&raw.0, OpenOptions { writable: true, raw_map: None }).unwrap();
        assert!(!conn.metadata().readonly);
        conn.phys_write_raw(crate::types::PhysicalAddress::plain(Address::new(0x10)), b"memflow").unwrap();
        drop(conn);
        assert_eq!(&std::fs::read(&raw.0).unwrap()[0x10..0x17], b"memflow");
    }

    /// A FIFO would block `open` forever waiting for a writer; it, character devices,
    /// directories and sockets are refused at once, naming what they are.
    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_without_blocking() {
        use std::os::unix::ffi::OsStrExt;
        let dir = TempDir::new("special");
        let fifo = dir.0.join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let invalid = |path: &std::path::Path, writable: bool| {
            let err = open(path, OpenOptions { writable, raw_map: None }).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidArgument, "{}", path.display());
        };
        invalid(&fifo, false);
        invalid(&fifo, true);
        invalid(&dir.0, false);
        invalid(std::path::Path::new("/dev/null"), false);
        invalid(std::path::Path::new("/dev/zero"), true);
        let socket = dir.0.join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(open(&socket, OpenOptions::default()).is_err());
        // A regular file next to them still opens, and stays readable (O_NONBLOCK cleared).
        let raw = dir.0.join("raw");
        std::fs::write(&raw, pattern(0x2000, 9)).unwrap();
        let conn = open(&raw, OpenOptions::default()).unwrap();
        assert_eq!(read(&conn, 0x1ff0, 0x10), pattern(0x2000, 9)[0x1ff0..]);
    }

    #[test]
    fn empty_missing_and_broken_files_are_refused() {
        let empty = TempFile::new("empty", &[]);
        assert_eq!(open(&empty.0, OpenOptions::default()).unwrap_err().kind, ErrorKind::Truncated);
        let missing = std::env::temp_dir().join("memflow-detect-does-not-exist");
        assert_eq!(open(missing, OpenOptions::default()).unwrap_err().kind, ErrorKind::NotFound);
        let mut core = testdata::qemu_core().build();
        core.truncate(core.len() - 1);
        let cut = TempFile::new("cut.elf", &core);
        assert_eq!(open(&cut.0, OpenOptions::default()).unwrap_err().kind, ErrorKind::Truncated);
    }
}
