//! Dump files as physical memory, plus what the file recorded about its target
//! ([`DumpInfo`]). [`super::detect::open`] builds one. Uncompressed formats (raw, ELF, LiME)
//! are served by a [`BufferMemory`] over the mapped file; compressed ones (kdump, AVML) by a
//! [`CompressedMemory`] that decompresses blocks on demand into a bounded cache.
//!
//! The file stays mapped for as long as any clone of the connector lives. It must not be
//! truncated or changed by anyone else meanwhile: the bytes are read without copying.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use super::buffer::{Backing, BufferMemory};
use super::compressed::{CompressedMemory, Store, DEFAULT_CACHE_SIZE};
use super::cpu_state::{copy_vmcoreinfo, registers_of, AArch64Registers, CpuState, RiscVRegisters, X86Registers};
use super::elf::VmcoreInfo;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::{MemoryMap, PhysReadBatch, PhysWriteBatch, PhysicalMemory, PhysicalMemoryMetadata};
use crate::types::PhysicalAddress;

/// How to open a dump file.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Map the file writable: writes through the connector change the file. Read-only if false.
    /// Compressed formats cannot be opened writable.
    pub writable: bool,
    /// Treat the file as a raw image laid out by this map (backing values are file offsets)
    /// without looking at its content. `None`: detect the format by content (unless `raw`).
    pub raw_map: Option<MemoryMap>,
    /// Treat the file as a raw image mapped at guest address 0 as a whole, whatever its first
    /// bytes look like.
    pub raw: bool,
    /// Bytes of decompressed blocks each reader of a compressed dump keeps (at least one
    /// block; see [`CompressedMemory`]; the `coredump` plugin's `block_cache=`).
    pub cache_size: usize,
}

impl Default for OpenOptions {
    /// Read-only, format detected by content, [`DEFAULT_CACHE_SIZE`] of cache.
    fn default() -> Self {
        OpenOptions { writable: false, raw_map: None, raw: false, cache_size: DEFAULT_CACHE_SIZE }
    }
}

/// The file formats the connector reads.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DumpFormat {
    /// A raw image: file offset = guest physical address, or a caller-given layout.
    Raw = 0,
    /// An ELF core file (QEMU `dump-guest-memory`, Linux vmcore / kdump).
    ElfCore = 1,
    /// A LiME dump.
    Lime = 2,
    /// A compressed kdump (makedumpfile, QEMU `dump-guest-memory` with a kdump format).
    Kdump = 3,
    /// A compressed kdump in makedumpfile's flattened form (`makedumpfile -F`).
    FlattenedKdump = 4,
    /// An AVML capture (LiME headers with Snappy-compressed data).
    Avml = 5,
}

impl DumpFormat {
    /// The format's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            DumpFormat::Raw => "raw image",
            DumpFormat::ElfCore => "ELF core",
            DumpFormat::Lime => "LiME",
            DumpFormat::Kdump => "compressed kdump",
            DumpFormat::FlattenedKdump => "flattened compressed kdump",
            DumpFormat::Avml => "AVML",
        }
    }
}

/// What a dump file recorded about its target besides the memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpInfo {
    /// The format the file was read as.
    pub format: DumpFormat,
    /// One line about the file as the format describes it (version, codecs, what it holds).
    pub description: String,
    /// Registers per x86 CPU (empty when the format records none or the target is not x86).
    pub cpus: Vec<X86Registers>,
    /// Registers per AArch64 CPU (empty when the format records none or the target is not
    /// AArch64).
    pub aarch64_cpus: Vec<AArch64Registers>,
    /// Registers per RISC-V CPU (empty when the format records none or the target is not
    /// RISC-V).
    pub riscv_cpus: Vec<RiscVRegisters>,
    /// The Linux `VMCOREINFO` note of a vmcore.
    pub vmcoreinfo: Option<VmcoreInfo>,
}

impl DumpInfo {
    /// Nothing but the format.
    pub(crate) fn bare(format: DumpFormat) -> Self {
        DumpInfo {
            format,
            description: format.name().into(),
            cpus: Vec::new(),
            aarch64_cpus: Vec::new(),
            riscv_cpus: Vec::new(),
            vmcoreinfo: None,
        }
    }
}

/// A memory-mapped file, read-only or writable.
pub enum MappedFile {
    /// Mapped read-only.
    ReadOnly(memmap2::Mmap),
    /// Mapped writable (shared: writes reach the file).
    Writable(memmap2::MmapMut),
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            MappedFile::ReadOnly(m) => m,
            MappedFile::Writable(m) => m,
        }
    }
}

impl Backing for MappedFile {
    fn bytes(&self) -> (*const u8, usize) {
        match self {
            MappedFile::ReadOnly(m) => m.bytes(),
            MappedFile::Writable(m) => m.bytes(),
        }
    }
    fn writable(&self) -> bool {
        matches!(self, MappedFile::Writable(_))
    }
    /// Drops the whole pages inside the range from this process (`MADV_DONTNEED`); a
    /// writable mapping keeps them, as it may be the place where writes are on their way.
    fn release(&self, offset: usize, len: usize) {
        let MappedFile::ReadOnly(map) = self else { return };
        let page = crate::mem::alloc::host_page_size();
        let (start, end) = (offset.next_multiple_of(page), (offset + len) / page * page);
        if end > start && end <= map.len() {
            // SAFETY: a read-only private mapping of a file: its dropped pages come back with
            // the file's bytes on the next access, the same bytes this connector's contract
            // (nobody rewrites the file while it is open) already relies on.
            let done = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            if let Err(e) = done {
                log::debug!("madvise(DONTNEED) of {:#x}+{:#x}: {e}", start, end - start);
            }
        }
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorOrigin::Connector, Error::from(std::io::Error::from(e.kind())).kind)
        .with_reason(format_args!("cannot {what} {}: {e}", path.display()))
}

/// Opens `path` without blocking and checks, on the opened descriptor, that it is a regular
/// file or a block device: opening a FIFO for reading would wait forever for a writer, and a
/// character device, socket or directory cannot be mapped as a dump.
fn open_dump(path: &Path, writable: bool) -> Result<File> {
    let mut options = File::options();
    options.read(true).write(writable);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK | libc::O_NOCTTY);
    let file = options.open(path).map_err(|e| io_error(path, "open", e))?;
    let kind = file.metadata().map_err(|e| io_error(path, "stat", e))?.file_type();
    if let Some(what) = unmappable(kind) {
        return Err(Error::new(ErrorOrigin::Connector, ErrorKind::InvalidArgument).with_reason(format_args!(
            "{} is {what}, not a regular file or a block device: it cannot be mapped as a dump",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        // Reads of the mapping must wait for the disk as usual.
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is the open descriptor of `file`; F_GETFL/F_SETFL only change its flags.
        let done = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
        };
        if !done {
            return Err(io_error(path, "clear O_NONBLOCK on", std::io::Error::last_os_error()));
        }
    }
    Ok(file)
}

/// What a file of type `kind` is, if it is not something a dump can be mapped from.
fn unmappable(kind: std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_block_device() {
            return None;
        }
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_char_device() {
            return Some("a character device");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
    }
    Some(if kind.is_dir() { "a directory" } else { "not a regular file" })
}

/// Maps the file (or block device) at `path`, writable only if asked. Empty files are
/// refused: there is nothing to map. FIFOs, character devices, sockets and directories are
/// refused without blocking.
pub fn map_file(path: &Path, writable: bool) -> Result<MappedFile> {
    let mut file = open_dump(path, writable)?;
    // The end, not the metadata: a block device's metadata says 0 bytes.
    let len = std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(|e| io_error(path, "seek in", e))?;
    if len == 0 {
        return Err(Error::new(ErrorOrigin::Connector, ErrorKind::Truncated)
            .with_reason(format_args!("{} is empty (0 bytes): there is no memory to map", path.display())));
    }
    let len = usize::try_from(len).map_err(|_| {
        Error::new(ErrorOrigin::Connector, ErrorKind::OutOfMemory).with_reason(format_args!(
            "{} ({len:#x} bytes) does not fit in this process's address space",
            path.display()
        ))
    })?;
    let mut options = memmap2::MmapOptions::new();
    options.len(len);
    // SAFETY: the mapping is only sound while nobody truncates or rewrites the file; that is
    // the documented contract of this connector (see the module documentation).
    let mapped = unsafe {
        if writable {
            options.map_mut(&file).map(MappedFile::Writable)
        } else {
            options.map(&file).map(MappedFile::ReadOnly)
        }
    };
    mapped.map_err(|e| io_error(path, "memory-map", e))
}

/// Where a dump file's memory is read from.
#[derive(Clone)]
enum Memory {
    /// The mapped file, laid out by a memory map.
    Mapped(BufferMemory),
    /// Blocks decompressed on demand (boxed: its cache state is large, and the mapped
    /// variant's hot path should not carry it).
    Compressed(Box<CompressedMemory>),
}

/// Evaluates `$call` with `$m` bound to the memory in `$mem` (a `&Memory` or `&mut Memory`),
/// whichever kind it is.
macro_rules! forward {
    ($mem:expr, $m:ident => $call:expr) => {
        match $mem {
            Memory::Mapped($m) => $call,
            Memory::Compressed($m) => $call,
        }
    };
}

/// Physical memory of a dump file, with the CPU state the file recorded.
///
/// Clones share the mapped bytes and the parsed information (each reader of a compressed
/// dump has its own block cache).
#[derive(Clone)]
pub struct FileConnector {
    mem: Memory,
    info: Arc<DumpInfo>,
}

impl FileConnector {
    /// Serves `backing` laid out by `map` (checked to lie within the backing), describing it
    /// with `info`.
    pub fn new(backing: Arc<dyn Backing>, map: MemoryMap, info: DumpInfo) -> Result<Self> {
        Ok(FileConnector { mem: Memory::Mapped(BufferMemory::new(backing, map)?), info: Arc::new(info) })
    }

    /// Serves the compressed dump in `file` indexed by `store`, with a block cache of
    /// `cache_size` bytes per reader.
    pub(crate) fn compressed(file: Arc<dyn Backing>, store: Store, info: DumpInfo, cache_size: usize) -> Result<Self> {
        let mem = Memory::Compressed(Box::new(CompressedMemory::new(file, store, cache_size)?));
        Ok(FileConnector { mem, info: Arc::new(info) })
    }

    /// The format the file was read as.
    pub fn format(&self) -> DumpFormat {
        self.info.format
    }

    /// Everything the file recorded besides the memory.
    pub fn info(&self) -> &DumpInfo {
        &self.info
    }

    /// The guest physical layout. Backing values are file offsets for the uncompressed
    /// formats; for compressed ones they equal the guest address, and pages the dump left out
    /// inside the ranges read as absent.
    pub fn memory_map(&self) -> &MemoryMap {
        forward!(&self.mem, m => m.map())
    }
}

// Everything forwards to the memory, including the buffer memory's direct single reads and
// writes.
impl PhysicalMemory for FileConnector {
    #[inline]
    fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
        forward!(&mut self.mem, m => m.phys_read_batch(batch))
    }

    #[inline]
    fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
        forward!(&mut self.mem, m => m.phys_write_batch(batch))
    }

    #[inline]
    fn phys_read_single(&mut self, addr: PhysicalAddress, out: &mut [u8]) -> Result<usize> {
        forward!(&mut self.mem, m => m.phys_read_single(addr, out))
    }

    #[inline]
    fn phys_write_single(&mut self, addr: PhysicalAddress, data: &[u8]) -> Result<usize> {
        forward!(&mut self.mem, m => m.phys_write_single(addr, data))
    }

    fn metadata(&self) -> PhysicalMemoryMetadata {
        forward!(&self.mem, m => m.metadata())
    }

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> Result<()> {
        forward!(&self.mem, m => m.mem_map_callback(callback))
    }
}

impl CpuState for FileConnector {
    fn cpu_count(&self) -> usize {
        self.info.cpus.len().max(self.info.aarch64_cpus.len()).max(self.info.riscv_cpus.len())
    }

    fn x86_registers(&self, cpu: usize) -> Result<X86Registers> {
        registers_of(&self.info.cpus, cpu, "x86")
    }

    fn aarch64_registers(&self, cpu: usize) -> Result<AArch64Registers> {
        registers_of(&self.info.aarch64_cpus, cpu, "AArch64")
    }

    fn riscv_registers(&self, cpu: usize) -> Result<RiscVRegisters> {
        registers_of(&self.info.riscv_cpus, cpu, "RISC-V")
    }

    fn vmcoreinfo(&self, buf: &mut [u8]) -> Result<usize> {
        match &self.info.vmcoreinfo {
            Some(info) => Ok(copy_vmcoreinfo(&info.to_text(), buf)),
            None => {
                Err(Error::new(ErrorOrigin::Connector, ErrorKind::NotFound)
                    .with_reason("the dump has no VMCOREINFO note"))
            }
        }
    }
}

impl core::fmt::Debug for FileConnector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("FileConnector");
        d.field("format", &self.info.format);
        forward!(&self.mem, m => d.field("mem", m));
        d.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::buffer::STREAM_READ;
    use crate::connector::testdata::resident_bytes_of;
    use crate::types::{umem, Address};

    /// Long reads that follow on from each other (a dump being written) leave only the last
    /// one's pages in the process; the same reads out of order keep them all.
    #[test]
    fn a_stream_of_long_reads_does_not_grow_the_process() {
        const SIZE: usize = 64 << 20;
        let path = std::env::temp_dir().join(format!("memflow-stream-{}", std::process::id()));
        std::fs::write(&path, vec![0x5au8; SIZE]).unwrap();
        let chunk = STREAM_READ.max(1 << 20);
        let read_all = |offsets: &mut dyn Iterator<Item = usize>| {
            let mapped = Arc::new(map_file(&path, false).unwrap());
            let mut mem = BufferMemory::identity(mapped).unwrap();
            let mut buf = vec![0u8; chunk];
            for off in offsets {
                mem.phys_read_raw_into(PhysicalAddress::plain(Address::new(off as umem)), &mut buf).unwrap();
                assert!(buf.iter().all(|&b| b == 0x5a));
            }
            resident_bytes_of(&path)
        };
        let streamed = read_all(&mut (0..SIZE).step_by(chunk));
        let shuffled = read_all(&mut (0..SIZE).step_by(chunk).rev());
        std::fs::remove_file(&path).unwrap();
        assert!(streamed <= 4 * chunk as u64, "streamed: {streamed} bytes resident");
        assert!(shuffled >= SIZE as u64 / 2, "out of order: {shuffled} bytes resident");
    }
}
