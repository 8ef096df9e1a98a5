//! Sections: the section header table from memory or from the file on disk, else the segments.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use goblin::elf::header::Header;
use goblin::elf::program_header::{PF_R, PF_W, PF_X};
use goblin::elf::section_header::{SectionHeader, SHF_ALLOC};

use super::{goblin_error, name_at, ElfImage, HEADER_BYTES, MAX_TABLE_BYTES};
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::MemoryView;
use crate::os::info::SectionInfo;
use crate::types::umem;

/// Where the bytes of the file behind an image come from, by file offset.
enum FileBytes<'m, V> {
    /// The loaded segments of the image in memory.
    Image(&'m mut V),
    /// The file on disk.
    Disk(File),
}
impl ElfImage {
    /// Calls back with each allocated section (one that occupies memory at run time) at its
    /// run-time address. The section headers are read from memory if they are loaded, else
    /// from `file` if it is given and starts with the same ELF header as the image; failing
    /// both, each loaded segment is reported as a section named like `LOAD[r-x]`. Stops when
    /// the callback returns `false`.
    pub fn sections<V: MemoryView>(
        &self,
        mem: &mut V,
        file: Option<&Path>,
        mut callback: impl FnMut(SectionInfo) -> bool,
    ) -> Result<()> {
        let from_disk = |path: &Path| {
            let file = self.open_matching(path).map_err(|e| log::debug!("sections of {}: {e}", path.display())).ok()?;
            self.section_table(&mut FileBytes::<V>::Disk(file))
                .map_err(|e| log::debug!("section headers in {}: {e}", path.display()))
                .ok()
        };
        let in_memory = self.section_table(&mut FileBytes::Image(mem)).ok();
        match in_memory.or_else(|| file.and_then(from_disk)) {
            Some((headers, names)) => {
                for sh in headers.iter().filter(|sh| sh.sh_flags & u64::from(SHF_ALLOC) != 0) {
                    let (Some(name), Some(offset)) = (name_at(&names, sh.sh_name), self.link_offset(sh.sh_addr)) else {
                        continue;
                    };
                    let info =
                        SectionInfo { name: name.as_str().into(), base: self.base + offset, size: sh.sh_size as umem };
                    if !callback(info) {
                        break;
                    }
                }
            }
            None => {
                for p in self.loads() {
                    let flag = |bit: u32, c: char| if p.p_flags & bit != 0 { c } else { '-' };
                    let name = format!("LOAD[{}{}{}]", flag(PF_R, 'r'), flag(PF_W, 'w'), flag(PF_X, 'x'));
                    let info = SectionInfo {
                        name: name.as_str().into(),
                        base: self.runtime(p.p_vaddr),
                        size: p.p_memsz as umem,
                    };
                    if !callback(info) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens `path` if it starts with the same ELF header as the image.
    fn open_matching(&self, path: &Path) -> Result<File> {
        let mut file = File::open(path)?;
        let len = Header::size(self.ctx);
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact(&mut header[..len])?;
        if header[..len] != self.header_bytes[..len] {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                .with_reason(format_args!("ELF image: the file's ELF header differs from the image's")));
        }
        Ok(file)
    }

    /// The section headers and the section name table.
    fn section_table<V: MemoryView>(&self, src: &mut FileBytes<V>) -> Result<(Vec<SectionHeader>, Vec<u8>)> {
        let count = usize::from(self.header.e_shnum);
        let entry = SectionHeader::size(self.ctx);
        if self.header.e_shoff == 0 || count == 0 || usize::from(self.header.e_shentsize) != entry {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::NotFound)
                .with_reason(format_args!("ELF image: no section header table")));
        }
        let table = src.read(self, self.header.e_shoff, (count * entry) as u64)?;
        let headers = SectionHeader::parse_from(&table, 0, count, self.ctx).map_err(goblin_error)?;
        let names = headers.get(usize::from(self.header.e_shstrndx)).ok_or_else(|| {
            Error::new(ErrorOrigin::FileFormat, ErrorKind::Malformed)
                .with_reason(format_args!("ELF image: no section name table"))
        })?;
        let names = src.read(self, names.sh_offset, names.sh_size)?;
        Ok((headers, names))
    }
}

impl<V: MemoryView> FileBytes<'_, V> {
    /// `len` bytes at file offset `offset`, at most `MAX_TABLE_BYTES`.
    fn read(&mut self, image: &ElfImage, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len > MAX_TABLE_BYTES as u64 {
            return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::LimitExceeded)
                .with_reason(format_args!("ELF image: {len:#x} bytes at file offset {offset:#x}")));
        }
        match self {
            FileBytes::Image(mem) => {
                let addr = image.file_to_runtime(offset, len).ok_or_else(|| {
                    Error::new(ErrorOrigin::FileFormat, ErrorKind::NotFound)
                        .with_reason(format_args!("ELF image: file offset {offset:#x} is not loaded"))
                })?;
                mem.read_raw(addr, len as usize).data()
            }
            FileBytes::Disk(file) => {
                file.seek(SeekFrom::Start(offset))?;
                let mut out = Vec::new();
                file.take(len).read_to_end(&mut out)?;
                if out.len() as u64 != len {
                    return Err(Error::new(ErrorOrigin::FileFormat, ErrorKind::Truncated)
                        .with_reason(format_args!("ELF image: file ends before offset {:#x}", offset + len)));
                }
                Ok(out)
            }
        }
    }
}
