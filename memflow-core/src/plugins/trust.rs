//! Opening plugin library files so that only root and the current user can have put them
//! there or changed them: loading a plugin runs its code with this process's rights.
//!
//! The path is resolved one component at a time from `/` (`openat` with `O_NOFOLLOW`, so what
//! is checked is what is used), and refused unless:
//! - every directory passed through, `/` included, is owned by root or the effective user and
//!   not writable by group or others, sticky or not (a sticky `/tmp` still lets anyone create
//!   names in it, such as a symbolic link to a root-owned library);
//! - every symbolic link followed is owned by root or the effective user (the owner of a link
//!   chooses its target); its target is resolved under the same rules, so the target's whole
//!   path is checked too;
//! - the file is a regular file owned by root or the effective user and not writable by group
//!   or others.
//!
//! The file is opened once. The inventory reads the descriptors through that descriptor and
//! the loader maps the very same file through `/proc/self/fd/N`, so a file renamed over it
//! after the scan is never loaded in its place. Before and after loading, its device, inode,
//! size and modification time are compared with the scan's and its owner and mode checked
//! again, so a file rewritten or opened up to others since the scan is refused.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The most symbolic links followed while resolving one path (the kernel's own limit).
const MAX_SYMLINKS: usize = 40;

/// Refuses plugin `path` (as the caller gave it) for reason `why`.
fn refuse(path: &Path, kind: ErrorKind, why: impl core::fmt::Display) -> Error {
    Error::new(ErrorOrigin::Plugin, kind).with_reason(format_args!("refusing plugin {}: {why}", path.display()))
}

/// What identifies a file and the version of its contents. (Not the change time: it also
/// moves when the scanned file is unlinked, and the scanned file is still what gets loaded.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(meta: &Metadata) -> Stamp {
        Stamp { dev: meta.dev(), ino: meta.ino(), size: meta.size(), mtime: (meta.mtime(), meta.mtime_nsec()) }
    }
}

/// A plugin library file that passed the trust rules, open for reading.
#[derive(Debug)]
pub struct TrustedFile {
    file: File,
    /// The resolved path (no symbolic links, `.` or `..`).
    path: PathBuf,
    stamp: Stamp,
}

impl TrustedFile {
    /// The resolved path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path naming exactly this open file (`/proc/self/fd/N`), for the dynamic loader.
    pub fn fd_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// The whole file, as it was when checked; refused when larger than `max` bytes.
    pub fn bytes(&self, max: u64) -> Result<Vec<u8>> {
        let size = self.stamp.size;
        if size > max {
            return Err(refuse(
                &self.path,
                ErrorKind::OutOfBounds,
                format_args!("{size} bytes is too large for a plugin (at most {max})"),
            ));
        }
        let len = usize::try_from(size).map_err(|_| refuse(&self.path, ErrorKind::OutOfBounds, "too large"))?;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len).map_err(|_| {
            refuse(&self.path, ErrorKind::OutOfMemory, format_args!("cannot allocate {len} bytes to read it"))
        })?;
        bytes.resize(len, 0);
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| refuse(&self.path, ErrorKind::of_io(&e), format_args!("cannot read it: {e}")))?;
        self.unchanged()?;
        Ok(bytes)
    }

    /// Fails unless the open file is still the version that was checked and still passes
    /// the owner and mode rules.
    pub fn unchanged(&self) -> Result<()> {
        let rules = Rules::new(&self.path);
        let meta = rules.stat(&self.file, &self.path)?;
        if Stamp::of(&meta) != self.stamp {
            return Err(refuse(
                &self.path,
                ErrorKind::Malformed,
                "it changed since it was scanned (size or modification time differ): scan it again",
            ));
        }
        rules.owner_only_writes(&meta, "file", &self.path)
    }
}

/// Opens `name` in directory `dir` (or the working directory) without following a final
/// symbolic link.
fn open_at(dir: Option<&File>, name: &OsStr, flags: libc::c_int) -> std::io::Result<File> {
    let name = CString::new(name.as_bytes()).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let dir = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `dir` is an open directory (or AT_FDCWD) and `name` is NUL-terminated.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The target of the symbolic link open (`O_PATH`) as `link`.
fn read_link(link: &File) -> std::io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `link` is an O_PATH descriptor of a symbolic link, which readlinkat reads with an
    // empty path; `buf` is writable for its whole length.
    let n = unsafe { libc::readlinkat(link.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
    if n == buf.len() {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// The names to resolve in `path`, in order (`..` kept, `.` and `/` dropped).
fn names(path: &Path) -> impl DoubleEndedIterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// The trust rules for one object of the path.
struct Rules {
    /// The plugin path as given, for messages.
    plugin: PathBuf,
    /// The effective user id.
    me: u32,
}

impl Rules {
    /// The rules for the effective user, reporting refusals of `plugin`.
    fn new(plugin: &Path) -> Rules {
        // SAFETY: geteuid has no preconditions.
        Rules { plugin: plugin.to_path_buf(), me: unsafe { libc::geteuid() } }
    }

    /// Refuses objects owned by anyone but root and the effective user.
    fn owner(&self, meta: &Metadata, what: &str, at: &Path) -> Result<()> {
        if meta.uid() != 0 && meta.uid() != self.me {
            return Err(refuse(
                &self.plugin,
                ErrorKind::PermissionDenied,
                format_args!(
                    "{what} {} belongs to uid {}, not to root or this user (uid {})",
                    at.display(),
                    meta.uid(),
                    self.me
                ),
            ));
        }
        Ok(())
    }

    /// Refuses objects that others may write to, or owned by anyone but root and the
    /// effective user.
    fn owner_only_writes(&self, meta: &Metadata, what: &str, at: &Path) -> Result<()> {
        self.owner(meta, what, at)?;
        if meta.mode() & 0o022 != 0 {
            return Err(refuse(
                &self.plugin,
                ErrorKind::PermissionDenied,
                format_args!(
                    "{what} {} is writable by group or others (mode {:o}; sticky or not, that is refused)",
                    at.display(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        Ok(())
    }

    /// The metadata of an open object.
    fn stat(&self, file: &File, at: &Path) -> Result<Metadata> {
        file.metadata()
            .map_err(|e| refuse(&self.plugin, ErrorKind::of_io(&e), format_args!("cannot stat {}: {e}", at.display())))
    }
}

/// Opens plugin library `path` if it and every directory and symbolic link on the way to it
/// pass the trust rules of this module; every refusal names the object and the rule.
pub fn open_trusted(path: &Path) -> Result<TrustedFile> {
    let rules = Rules::new(path);
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| {
            refuse(path, ErrorKind::of_io(&e), format_args!("cannot resolve the working directory: {e}"))
        })?;
        cwd.join(path)
    };
    let root_path = PathBuf::from("/");
    let root = open_at(None, OsStr::new("/"), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| refuse(path, ErrorKind::of_io(&e), format_args!("cannot open /: {e}")))?;
    rules.owner_only_writes(&rules.stat(&root, &root_path)?, "directory", &root_path)?;
    // The directories resolved so far below `/`; `..` pops one (none at `/`), as the kernel does.
    let mut dirs: Vec<(File, PathBuf)> = Vec::new();
    let mut pending: VecDeque<OsString> = names(&absolute).collect();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            dirs.pop();
            continue;
        }
        let (dir, dir_path) = dirs.last().map_or((&root, &root_path), |(d, p)| (d, p));
        let at = dir_path.join(&name);
        let node = open_at(Some(dir), &name, libc::O_PATH)
            .map_err(|e| refuse(path, ErrorKind::of_io(&e), format_args!("cannot open {}: {e}", at.display())))?;
        let meta = rules.stat(&node, &at)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            rules.owner(&meta, "symbolic link", &at)?;
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(refuse(
                    path,
                    ErrorKind::LimitExceeded,
                    format_args!("more than {MAX_SYMLINKS} symbolic links to follow (a loop?) at {}", at.display()),
                ));
            }
            let target = read_link(&node).map_err(|e| {
                refuse(path, ErrorKind::of_io(&e), format_args!("cannot read symbolic link {}: {e}", at.display()))
            })?;
            if target.is_absolute() {
                dirs.clear();
            }
            for name in names(&target).rev() {
                pending.push_front(name);
            }
        } else if kind.is_dir() {
            rules.owner_only_writes(&meta, "directory", &at)?;
            dirs.push((node, at));
        } else if pending.is_empty() {
            return open_file(&rules, dir, &name, at, &meta);
        } else {
            return Err(refuse(path, ErrorKind::NotFound, format_args!("{} is not a directory", at.display())));
        }
    }
    let resolved = dirs.last().map_or(&root_path, |(_, p)| p);
    Err(refuse(path, ErrorKind::InvalidArgument, format_args!("{} is a directory, not a library", resolved.display())))
}

/// Opens the final file `name` of `dir` for reading, after its `O_PATH` metadata (`seen`)
/// showed a regular file, and checks that what was opened is that file and passes the rules.
fn open_file(rules: &Rules, dir: &File, name: &OsStr, at: PathBuf, seen: &Metadata) -> Result<TrustedFile> {
    // Checked before opening: opening a device or a FIFO can block or have effects.
    if !seen.file_type().is_file() {
        return Err(refuse(
            &rules.plugin,
            ErrorKind::PermissionDenied,
            format_args!("{} is not a regular file", at.display()),
        ));
    }
    let file = open_at(Some(dir), name, libc::O_RDONLY | libc::O_NONBLOCK)
        .map_err(|e| refuse(&rules.plugin, ErrorKind::of_io(&e), format_args!("cannot open {}: {e}", at.display())))?;
    let meta = rules.stat(&file, &at)?;
    if (meta.dev(), meta.ino()) != (seen.dev(), seen.ino()) || !meta.file_type().is_file() {
        return Err(refuse(
            &rules.plugin,
            ErrorKind::PermissionDenied,
            format_args!("{} was replaced while it was being checked", at.display()),
        ));
    }
    rules.owner_only_writes(&meta, "file", &at)?;
    Ok(TrustedFile { file, path: at, stamp: Stamp::of(&meta) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C library this test program is linked against, by the name the loader used.
    fn libc_path() -> PathBuf {
        // SAFETY: Dl_info is plain data; all-zero is a valid value.
        let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
        // SAFETY: dladdr only reads the address; `info` is a valid place for the result.
        assert_ne!(unsafe { libc::dladdr(libc::getpid as *const libc::c_void, &mut info) }, 0);
        // SAFETY: dladdr returned a NUL-terminated path owned by the loader.
        let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
        PathBuf::from(OsStr::from_bytes(name.to_bytes()))
    }

    #[test]
    fn resolves_links_dots_and_relative_paths_like_the_kernel() {
        let lib = libc_path();
        let real = lib.canonicalize().unwrap();
        let (dir, name) = (real.parent().unwrap(), real.file_name().unwrap());
        let twisted = PathBuf::from(format!(
            "/../..{}/./../{}/{}",
            dir.display(),
            dir.file_name().unwrap().to_str().unwrap(),
            name.to_str().unwrap()
        ));
        assert!(twisted.starts_with("/../.."), "{}", twisted.display());
        for path in [lib, real.clone(), twisted] {
            let file = open_trusted(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(file.path(), real, "{}", path.display());
            file.unchanged().unwrap();
        }
        // Relative to the working directory (this crate's directory during tests).
        let manifest = open_trusted(Path::new("./src/../Cargo.toml")).unwrap();
        assert_eq!(manifest.path(), Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml").canonicalize().unwrap());
    }

    #[test]
    fn reads_the_checked_file_within_a_limit() {
        let file = open_trusted(&libc_path()).unwrap();
        let bytes = file.bytes(u64::MAX).unwrap();
        assert_eq!(&bytes[..4], b"\x7fELF");
        assert_eq!(bytes.len() as u64, file.stamp.size);
        assert_eq!(file.bytes(1000).unwrap_err().kind, ErrorKind::OutOfBounds);
        assert!(file.fd_path().starts_with("/proc/self/fd/"));
    }

    #[test]
    fn refuses_what_is_not_a_trusted_regular_file() {
        let kind = |p: &[u8]| open_trusted(Path::new(OsStr::from_bytes(p))).unwrap_err().kind;
        assert_eq!(kind(b"/"), ErrorKind::InvalidArgument, "a directory");
        assert_eq!(kind(b"/usr/lib/../"), ErrorKind::InvalidArgument, "a directory");
        assert_eq!(kind(b"/dev/null"), ErrorKind::PermissionDenied, "a device");
        assert_eq!(kind(b"/tmp/no-such-plugin.so"), ErrorKind::PermissionDenied, "below sticky /tmp");
        assert_eq!(kind(b"/usr/no-such-dir/plugin.so"), ErrorKind::NotFound);
        assert_eq!(kind(b"/usr/lib/\0/plugin.so"), ErrorKind::InvalidArgument, "a NUL byte");
        assert_eq!(kind(b"./Cargo.toml/x.so"), ErrorKind::NotFound, "a file used as a directory");
    }
}
