//! The file being written: positioned writes, and the temporary name it has until complete.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

fn io_error(what: impl core::fmt::Display, path: &Path, e: std::io::Error) -> Error {
    Error::new(ErrorOrigin::FileFormat, ErrorKind::Io).with_reason(format_args!("{what} {}: {e}", path.display()))
}

/// The dump file under construction; errors name `path`, its final name.
pub(crate) struct Output {
    file: File,
    /// Where the file's position is.
    pos: u64,
    path: PathBuf,
}

impl Output {
    pub(crate) fn new(file: File, path: &Path) -> Self {
        Output { file, pos: 0, path: path.to_path_buf() }
    }

    /// Writes `bytes` at `offset` (seeking only when not already there).
    pub(crate) fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        if offset != self.pos {
            self.file.seek(SeekFrom::Start(offset)).map_err(|e| io_error("seeking in", &self.path, e))?;
        }
        self.file.write_all(bytes).map_err(|e| io_error("writing", &self.path, e))?;
        self.pos = offset + bytes.len() as u64;
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset` of what was written (zeros where nothing was).
    pub(crate) fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset).map_err(|e| io_error("reading back", &self.path, e))
    }

    /// Makes the file `len` bytes long (a sparse tail when it grows).
    pub(crate) fn set_len(&mut self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| io_error("setting the size of", &self.path, e))
    }

    /// The size of the file.
    pub(crate) fn size(&self) -> Result<u64> {
        Ok(self.file.metadata().map_err(|e| io_error("reading the size of", &self.path, e))?.len())
    }
}

/// A file at a temporary name beside its final one, removed when dropped unless persisted.
pub(crate) struct TempFile {
    temp: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Creates `.NAME.partial-PID` in the directory of `path` (which must name a file).
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let name = path.file_name().ok_or_else(|| {
            Error::new(ErrorOrigin::FileFormat, ErrorKind::InvalidArgument)
                .with_reason(format_args!("{} does not name a file to write the dump to", path.display()))
        })?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".partial-{}", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_error("creating", &temp, e))?;
        Ok(TempFile { temp, file: Some(file) })
    }

    /// The open file (once).
    pub(crate) fn file(&mut self) -> Result<File> {
        self.file.take().ok_or_else(|| Error::new(ErrorOrigin::FileFormat, ErrorKind::Internal))
    }

    /// Flushes `out` to disk and gives it its final name.
    pub(crate) fn persist(mut self, out: Output) -> Result<()> {
        out.file.sync_all().map_err(|e| io_error("flushing", &out.path, e))?;
        drop(out.file);
        std::fs::rename(&self.temp, &out.path).map_err(|e| io_error("renaming the finished dump to", &out.path, e))?;
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            if let Err(e) = std::fs::remove_file(&self.temp) {
                log::warn!("removing the unfinished dump {}: {e}", self.temp.display());
            }
        }
    }
}
