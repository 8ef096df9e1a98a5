//! Reading and parsing the `/proc` files the native layer uses (except `maps`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::os::Pid;

/// The most bytes of a command line kept.
const MAX_COMMAND_LINE: u64 = 64 << 10;

/// The path of `/proc/PID/<name>`.
pub(super) fn proc_path(pid: Pid, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{name}"))
}

/// At most `max` bytes of a file.
fn read_limited(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    File::open(path)?.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// What `/proc/PID/stat` says about a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Stat {
    /// The short name (`comm`).
    pub comm: String,
    /// The state letter (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    /// The parent pid.
    pub ppid: Pid,
    /// Start time in clock ticks after boot: tells a process from a later one with its pid.
    pub start_time: u64,
}

impl Stat {
    /// Reads `/proc/PID/stat`.
    pub(super) fn read(pid: Pid) -> io::Result<Stat> {
        Stat::read_path(&proc_path(pid, "stat"))
    }

    /// Reads a `stat` file of `/proc` (a process's or a thread's, `/proc/PID/task/TID/stat`).
    pub(super) fn read_path(path: &Path) -> io::Result<Stat> {
        let raw = std::fs::read(path)?;
        Stat::parse(&String::from_utf8_lossy(&raw))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unreadable {}", path.display())))
    }

    /// Parses the text of `/proc/PID/stat`: `pid (comm) state ppid ...` where `comm` may hold
    /// spaces and parentheses, so it runs to the last `)`; `starttime` is field 22.
    pub(super) fn parse(text: &str) -> Option<Stat> {
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text.get(open + 1..close)?.to_owned();
        let mut fields = text[close + 1..].split_ascii_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        // Fields after `ppid` (5th) up to `starttime` (22nd).
        let start_time = fields.nth(22 - 5)?.parse().ok()?;
        Some(Stat { comm, state, ppid, start_time })
    }

    /// True for a zombie or a dead task.
    pub(super) fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/PID/cmdline` with the NUL separators turned into spaces.
pub(super) fn command_line(pid: Pid) -> io::Result<String> {
    let raw = read_limited(&proc_path(pid, "cmdline"), MAX_COMMAND_LINE)?;
    Ok(join_command_line(&raw))
}

/// Turns NUL-separated arguments into one space-separated line.
pub(super) fn join_command_line(raw: &[u8]) -> String {
    let trimmed = raw.strip_suffix(&[0]).unwrap_or(raw);
    let spaced: Vec<u8> = trimmed.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
    String::from_utf8_lossy(&spaced).into_owned()
}

/// The ELF class byte (`1` for 32-bit, `2` for 64-bit) of the executable of a process.
pub(super) fn exe_elf_class(pid: Pid) -> Option<u8> {
    let ident = read_limited(&proc_path(pid, "exe"), 5).ok()?;
    (ident.len() == 5 && ident[..4] == *b"\x7fELF").then(|| ident[4])
}

/// A line of `/proc/modules`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KernelModule {
    /// Module name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Load address, 0 when hidden (`kptr_restrict`).
    pub base: u64,
}

/// Parses `/proc/modules`: `name size refcount deps state address [taints]` per line;
/// malformed lines are skipped.
pub(super) fn parse_modules(text: &str) -> Vec<KernelModule> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let (name, size, base) = (fields.first()?, fields.get(1)?, fields.get(5)?);
            Some(KernelModule {
                name: (*name).to_owned(),
                size: size.parse().ok()?,
                base: u64::from_str_radix(base.trim_start_matches("0x"), 16).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_awkward_comm() {
        let text = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let stat = Stat::parse(text).unwrap();
        assert_eq!(stat, Stat { comm: "a) b (c)".into(), state: 'S', ppid: 17, start_time: 987654 });
        assert!(!stat.is_dead());
        let zombie = Stat::parse("7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0").unwrap();
        assert!(zombie.is_dead());
        assert_eq!(zombie.start_time, 55);
        assert_eq!(Stat::parse("7 (x) S 1"), None);
        assert_eq!(Stat::parse("garbage"), None);
        assert_eq!(Stat::parse(")("), None);
    }

    #[test]
    fn own_stat_and_command_line() {
        let pid = std::process::id();
        let stat = Stat::read(pid).unwrap();
        assert_eq!(stat.ppid, std::os::unix::process::parent_id());
        let line = command_line(pid).unwrap();
        let first = std::env::args().next().unwrap();
        assert!(line.starts_with(&first), "{line}");
        assert_eq!(join_command_line(b"sleep\x0030\x00"), "sleep 30");
        assert_eq!(join_command_line(b""), "");
        assert_eq!(exe_elf_class(pid), Some(if cfg!(target_pointer_width = "64") { 2 } else { 1 }));
    }

    #[test]
    fn modules_list() {
        let text = "nf_tables 335872 0 - Live 0xffffffffc0a00000\n\
                    short line\n\
                    ext4 1015808 1 mbcache,jbd2, Live 0x0000000000000000 (E)\n";
        let mods = parse_modules(text);
        assert_eq!(mods.len(), 2);
        assert_eq!(mods[0], KernelModule { name: "nf_tables".into(), size: 335872, base: 0xffff_ffff_c0a0_0000 });
        assert_eq!(mods[1].base, 0);
    }
}
