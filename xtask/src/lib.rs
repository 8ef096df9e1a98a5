//! Library part of the project's tasks, shared with the integration tests (which regenerate
//! the headers and compare them with the checked-in ones, build the SDK archive and boot live
//! guests).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a developer tool: a panic is a failed task

pub mod arch;
pub mod avml;
pub mod bench;
pub mod deps;
pub mod dist;
pub mod elfcore;
pub mod fixture;
pub mod guest;
pub mod headers;
pub mod initramfs;
pub mod interrupt;
pub mod kernel;
pub mod python;

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root (the parent of the xtask crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Runs a command in the repository root, failing with its description if it fails.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_command(Command::new(program).args(args).current_dir(root()))
}

/// Runs `command` (printed first, as `+ program args`), failing with its description if it
/// cannot start or fails.
pub fn run_command(command: &mut Command) -> Result<(), String> {
    let line = describe(command);
    eprintln!("+ {line}");
    let status = command.status().map_err(|e| format!("cannot start `{line}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

/// The standard output of `program args` (run in the repository root), or why it failed
/// (with what it wrote to standard error).
pub fn output_of(program: &str, args: &[&str]) -> Result<String, String> {
    output_of_command(Command::new(program).args(args).current_dir(root()))
}

/// The standard output of `command`, or why it failed (with what it wrote to standard error).
pub fn output_of_command(command: &mut Command) -> Result<String, String> {
    let line = describe(command);
    let out = command.stdin(Stdio::null()).output().map_err(|e| format!("cannot start `{line}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{line}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim_end()));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("`{line}` wrote invalid UTF-8: {e}"))
}

/// `program args` of `command`, for messages.
pub(crate) fn describe(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// True if `command` names an executable file in a directory of `PATH`.
pub fn on_path(command: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .any(|dir| dir.join(command).metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// True if this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The SHA-256 of a file's contents as lowercase hex, by `sha256sum` (coreutils).
pub fn sha256_of(path: &Path) -> Result<String, String> {
    let path_s = path.to_str().ok_or_else(|| format!("path is not UTF-8: {}", path.display()))?;
    let out = output_of("sha256sum", &[path_s])?;
    let hash = out.split_whitespace().next().unwrap_or_default();
    if hash.len() == 64 {
        Ok(hash.to_owned())
    } else {
        Err(format!("sha256sum {path_s}: unexpected output {out:?}"))
    }
}

/// Opens (creating it if needed) and locks the file `path` exclusively, waiting for other
/// holders; the lock lasts as long as the returned file is open.
pub fn lock_file(path: &Path) -> Result<File, String> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("cannot lock {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// A directory (or file) removed with everything in it when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh directory `<parent>/<prefix>.XXXXXX` only this user can enter (`mkdtemp`).
    pub fn new_dir(parent: &Path, prefix: &str) -> Result<Scratch, String> {
        let template = parent.join(format!("{prefix}.XXXXXX"));
        let mut bytes = CString::new(template.as_os_str().as_bytes())
            .map_err(|_| format!("NUL in {}", template.display()))?
            .into_bytes_with_nul();
        // SAFETY: `bytes` is a NUL-terminated template that mkdtemp rewrites in place.
        let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if made.is_null() {
            return Err(format!("cannot create {}: {}", template.display(), std::io::Error::last_os_error()));
        }
        bytes.pop();
        Ok(Scratch(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))))
    }

    /// Takes care of removing `path` (a file or a directory), which may not exist yet.
    pub fn at(path: PathBuf) -> Scratch {
        Scratch(path)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Prints one progress line of a task on standard error: `[TAG NAME] message`.
pub fn log(tag: &str, name: &str, message: impl std::fmt::Display) {
    eprintln!("[{tag}{}{name}] {message}", if name.is_empty() { "" } else { " " });
}
