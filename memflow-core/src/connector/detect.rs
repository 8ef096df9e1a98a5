//! Format detection by content, and the one entry point that opens any dump file.
//!
//! The first bytes decide: an ELF core, LiME, AVML, a compressed kdump (plain or flattened)
//! are read; a recognised format that is not read (VMware suspend state, Windows crash dumps
//! and hibernation files, Linux hibernation images, old diskdumps, whole-file gzip/xz/zstd
//! compression...) is refused with its name; anything else is a raw image. An ELF file that
//! is not a core dump is refused rather than served as raw bytes. The file name plays no part;
//! [`OpenOptions::raw`] reads any file as raw.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use super::avml::{self, Avml};
use super::buffer::Backing;
use super::compressed::Store;
use super::file::{map_file, DumpFormat, DumpInfo, FileConnector, OpenOptions};
use super::kdump::{self, Kdump};
use super::{elf, lime};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::MemoryMap;
use crate::types::umem;

/// A parsed dump of an uncompressed format: where guest memory lies in the bytes, and what
/// else the dump recorded.
#[derive(Clone, Debug)]
pub struct ParsedDump {
    /// Guest physical layout; backing values are offsets into the parsed bytes.
    pub map: MemoryMap,
    /// Format, CPU state and notes.
    pub info: DumpInfo,
}

/// Formats recognised by a signature at an offset but not read: (offset, signature, name).
const UNSUPPORTED: [(usize, &[u8], &str); 19] = [
    (0, &0xbed2_bed0u32.to_le_bytes(), "a VMware suspended state file (.vmss/.vmsn)"),
    (0, &0xbad1_bad1u32.to_le_bytes(), "a VMware suspended state file (.vmss/.vmsn)"),
    (0, &0xbed2_bed2u32.to_le_bytes(), "a VMware suspended state file (.vmss/.vmsn)"),
    (0, &0xbed3_bed3u32.to_le_bytes(), "a VMware suspended state file (.vmss/.vmsn)"),
    (0, b"PAGEDUMP", "a 32-bit Windows crash dump (PAGEDUMP)"),
    (0, b"PAGEDU64", "a 64-bit Windows crash dump (PAGEDU64)"),
    (0, b"MDMP", "a Windows minidump (process memory, not physical memory)"),
    (0, b"hibr", "a Windows hibernation file (hiberfil.sys)"),
    (0, b"HIBR", "a Windows hibernation file (hiberfil.sys)"),
    (0, b"wake", "a Windows hibernation file (hiberfil.sys)"),
    (0, b"WAKE", "a Windows hibernation file (hiberfil.sys)"),
    (0, b"RSTR", "a Windows hibernation file (hiberfil.sys)"),
    (4086, b"S1SUSPEND", "a Linux hibernation image (swsusp)"),
    (0, b"QEVM", "a QEMU savevm/migration stream"),
    (0, b"DISKDUMP", "an old-style diskdump (signature DISKDUMP); only KDUMP files are read"),
    (0, b"\x1f\x8b\x08", "a gzip-compressed file: decompress it first"),
    (0, b"\xfd7zXZ\0", "an xz-compressed file: decompress it first"),
    (0, b"\x28\xb5\x2f\xfd", "a zstd-compressed file: decompress it first"),
    (0, b"\x04\x22\x4d\x18", "an LZ4-compressed file: decompress it first"),
];

/// The format of a dump, judged by its first bytes; a recognised format that is not read
/// gives an [`ErrorKind::Unsupported`] error naming it.
pub fn detect(bytes: &[u8]) -> Result<DumpFormat> {
    if bytes.starts_with(&elf::ELF_MAGIC) {
        return Ok(DumpFormat::ElfCore);
    } else if lime::is_lime(bytes) {
        return Ok(DumpFormat::Lime);
    } else if avml::is_avml(bytes) {
        return Ok(DumpFormat::Avml);
    } else if kdump::is_kdump(bytes) {
        return Ok(DumpFormat::Kdump);
    } else if kdump::is_flattened(bytes) {
        return Ok(DumpFormat::FlattenedKdump);
    }
    match UNSUPPORTED.iter().find(|(at, magic, _)| bytes.get(*at..).is_some_and(|b| b.starts_with(magic))) {
        Some((_, _, name)) => {
            Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
            "the file is {name}: this format is not read (open it with format=raw to read its bytes as a raw image)"
        )))
        }
        None => Ok(DumpFormat::Raw),
    }
}

/// Detects the format of `bytes` and parses them if the format is uncompressed (raw, ELF,
/// LiME); compressed formats are refused with [`ErrorKind::Unsupported`] (they are read
/// through [`from_backing`]). Empty input is refused.
pub fn parse(bytes: &[u8]) -> Result<ParsedDump> {
    check_not_empty(bytes)?;
    let format = detect(bytes)?;
    Ok(match format {
        DumpFormat::Raw => ParsedDump { map: MemoryMap::identity(bytes.len() as umem), info: DumpInfo::bare(format) },
        DumpFormat::Lime => ParsedDump { map: lime::parse(bytes)?, info: DumpInfo::bare(format) },
        DumpFormat::ElfCore => {
            let core = elf::parse(bytes)?;
            let description = format!("ELF core ({:?}, e_machine {})", core.class, core.machine);
            ParsedDump {
                map: core.map,
                info: DumpInfo {
                    format,
                    description,
                    cpus: core.cpus,
                    aarch64_cpus: core.aarch64_cpus,
                    riscv_cpus: core.riscv_cpus,
                    vmcoreinfo: core.vmcoreinfo,
                },
            }
        }
        DumpFormat::Kdump | DumpFormat::FlattenedKdump | DumpFormat::Avml => {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Unsupported).with_reason(format_args!(
                "a {} is compressed: it is served through from_backing, not as a memory map of its bytes",
                format.name()
            )))
        }
    })
}

fn check_not_empty(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated)
            .with_reason("the dump is empty (0 bytes): there is no memory to map"));
    }
    Ok(())
}

/// Serves the dump held in `backing` (a mapped file, or any bytes in memory), parsed by
/// content unless `options` says it is a raw image (`raw`, or the layout in `raw_map`).
pub fn from_backing<B: Backing + Deref<Target = [u8]>>(backing: B, options: OpenOptions) -> Result<FileConnector> {
    let backing = Arc::new(backing);
    let bytes: &[u8] = &backing;
    let raw = |map| FileConnector::new(backing.clone(), map, DumpInfo::bare(DumpFormat::Raw));
    if let Some(map) = options.raw_map {
        return raw(map);
    }
    check_not_empty(bytes)?;
    if options.raw {
        return raw(MemoryMap::identity(bytes.len() as umem));
    }
    let format = detect(bytes)?;
    let (store, info) = match format {
        DumpFormat::Kdump | DumpFormat::FlattenedKdump => {
            let (kdump, info) = Kdump::parse(bytes)?;
            (Store::Kdump(kdump), info)
        }
        DumpFormat::Avml => {
            let (avml, info) = Avml::parse(bytes)?;
            (Store::Avml(avml), info)
        }
        DumpFormat::Raw | DumpFormat::ElfCore | DumpFormat::Lime => {
            let ParsedDump { map, info } = parse(bytes)?;
            return FileConnector::new(backing, map, info);
        }
    };
    if options.writable {
        return Err(Error::new(ErrorOrigin::Connector, ErrorKind::Unsupported)
            .with_reason(format_args!("a {} cannot be opened writable: its pages are compressed", format.name())));
    }
    FileConnector::compressed(backing, store, info, options.cache_size)
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
        assert_eq!(detect(&testdata::qemu_core().build()).unwrap(), DumpFormat::ElfCore);
        assert_eq!(detect(&lime_file(&[(0, vec![1])])).unwrap(), DumpFormat::Lime);
        assert_eq!(detect(b"\x7fEL").unwrap(), DumpFormat::Raw);
        assert_eq!(detect(&[]).unwrap(), DumpFormat::Raw);
        assert_eq!(parse(&[]).unwrap_err().kind, ErrorKind::Truncated);
        assert_eq!(parse(&[0]).unwrap().map, MemoryMap::identity(1));
    }

    #[test]
    fn recognised_formats_that_are_not_read_are_named() {
        let mut swsusp = vec![0u8; 4096];
        swsusp[4086..].copy_from_slice(b"S1SUSPEND\0");
        let cases: [(Vec<u8>, &str); 7] = [
            (0xbed2_bed0u32.to_le_bytes().to_vec(), "VMware"),
            (b"PAGEDU64\0\0\0\0".to_vec(), "64-bit Windows crash dump"),
            (b"PAGEDUMP".to_vec(), "32-bit Windows crash dump"),
            (b"HIBR\0\0\0\0".to_vec(), "Windows hibernation"),
            (swsusp, "Linux hibernation"),
            (b"\x1f\x8b\x08\0\0".to_vec(), "gzip"),
            (b"DISKDUMP".to_vec(), "old-style diskdump"),
        ];
        for (bytes, name) in cases {
            let err = detect(&bytes).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Unsupported);
            assert!(err.to_string().contains(name), "{name}: {err}");
            // format=raw reads the bytes anyway.
            let conn = from_backing(bytes.clone(), OpenOptions { raw: true, ..OpenOptions::default() });
            assert_eq!(conn.unwrap().memory_map(), &MemoryMap::identity(bytes.len() as umem));
        }
        // Signatures of the read formats.
        assert_eq!(detect(b"KDUMP   \0").unwrap(), DumpFormat::Kdump);
        assert_eq!(detect(b"makedumpfile\0\0\0\0").unwrap(), DumpFormat::FlattenedKdump);
        assert_eq!(detect(b"AVML\x02\0\0\0").unwrap(), DumpFormat::Avml);
        // A compressed format is not a memory map of its bytes.
        assert_eq!(parse(b"AVML\x02\0\0\0").unwrap_err().kind, ErrorKind::Unsupported);
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
        let conn = open(&raw.0, OpenOptions { raw_map: Some(map.clone()), ..OpenOptions::default() }).unwrap();
        assert_eq!(read(&conn, 0x10_0000, 0x10), pattern(0x3000, 5)[0x1000..0x1010]);
        assert_eq!(
            open(&lime.0, OpenOptions { raw_map: Some(map), ..OpenOptions::default() }).unwrap_err().kind,
            ErrorKind::OutOfBounds
        );
    }

    #[test]
    fn writable_maps_write_through_to_the_file() {
        let raw = TempFile::new("rw.raw", &[0u8; 0x1000]);
        let mut conn = open(&raw.0, OpenOptions { writable: true, ..OpenOptions::default() }).unwrap();
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
            let err = open(path, OpenOptions { writable, ..OpenOptions::default() }).unwrap_err();
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
