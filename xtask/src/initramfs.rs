//! The guests' initramfs: a newc cpio archive (uncompressed: the kernel unpacks that as well)
//! with a static busybox, a symlink per applet, the probe symlinks `mfprobe_alpha` and
//! `mfprobe_beta`, `scripts/guest-init.sh` as `/init` and the kernel modules of the cache in
//! `/lib/modules`. Written directly (no cpio(1), no root needed for the `/dev/console` node)
//! and reproducibly (every mtime 0).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// A writer of the SVR4 "newc" cpio format, the one the kernel unpacks.
struct Newc<W: Write> {
    out: W,
    inode: u32,
}

impl<W: Write> Newc<W> {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32), nlink: u32) -> std::io::Result<()> {
        let name_size = name.len() + 1; // with its NUL
        let fields = [self.inode, mode, 0, 0, nlink, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name_size as u32, 0];
        self.inode += 1;
        let mut header = String::from("070701");
        for field in fields {
            header.push_str(&format!("{field:08X}"));
        }
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        // The header and name together, and the data, are each padded to 4 bytes.
        self.out.write_all(&[0u8; 4][..1 + pad4(header.len() + name_size)])?;
        self.out.write_all(data)?;
        self.out.write_all(&[0u8; 3][..pad4(data.len())])
    }

    fn dir(&mut self, name: &str) -> std::io::Result<()> {
        self.entry(name, S_IFDIR | 0o755, &[], (0, 0), 2)
    }

    fn file(&mut self, name: &str, data: &[u8], perm: u32) -> std::io::Result<()> {
        self.entry(name, S_IFREG | perm, data, (0, 0), 1)
    }

    fn symlink(&mut self, name: &str, target: &str) -> std::io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, target.as_bytes(), (0, 0), 1)
    }

    fn char_device(&mut self, name: &str, major: u32, minor: u32) -> std::io::Result<()> {
        self.entry(name, S_IFCHR | 0o600, &[], (major, minor), 1)
    }

    fn trailer(&mut self) -> std::io::Result<()> {
        self.inode = 0;
        self.entry("TRAILER!!!", 0, &[], (0, 0), 1)
    }
}

/// The bytes that pad `len` to a multiple of 4.
fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Writes the initramfs to `out`: `busybox` (a static executable of the guest's
/// architecture), `init` as `/init`, the `*.ko` files of `modules`, and `programs` (static
/// executables) in `/bin` under their file names.
pub fn write(out: &Path, busybox: &Path, init: &Path, modules: &Path, programs: &[&Path]) -> Result<(), String> {
    for exe in std::iter::once(&busybox).chain(programs) {
        if !is_static_elf(exe)? {
            return Err(format!(
                "{} is not a static ELF executable (for busybox: install busybox-static or set BUSYBOX)",
                exe.display()
            ));
        }
    }
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let busybox_bytes = read(busybox)?;
    let applets = applets(&busybox_bytes)
        .ok_or_else(|| format!("{}: no applet list found in the executable", busybox.display()))?;
    let mut module_files: Vec<_> = std::fs::read_dir(modules)
        .map_err(|e| format!("{}: {e}", modules.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ko"))
        .collect();
    module_files.sort();

    let file = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut cpio = Newc { out: BufWriter::new(file), inode: 1 };
    let written = (|| -> std::io::Result<()> {
        for dir in ["bin", "dev", "etc", "proc", "sys", "run", "tmp", "root"] {
            cpio.dir(dir)?;
        }
        // The kernel opens /dev/console for PID 1 before /init can mount devtmpfs.
        cpio.char_device("dev/console", 5, 1)?;
        cpio.file("bin/busybox", &busybox_bytes, 0o755)?;
        // The list may name `busybox` itself, the file just written.
        for applet in applets.into_iter().filter(|a| *a != "busybox") {
            cpio.symlink(&format!("bin/{applet}"), "busybox")?;
        }
        // Probe processes: busybox exec'ed through a symlink gets the symlink's name as its
        // comm (see guest-init.sh).
        for probe in ["mfprobe_alpha", "mfprobe_beta"] {
            cpio.symlink(&format!("bin/{probe}"), "busybox")?;
        }
        for exe in programs {
            let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("program");
            cpio.file(&format!("bin/{name}"), &read(exe).map_err(std::io::Error::other)?, 0o755)?;
        }
        cpio.file("init", &read(init).map_err(std::io::Error::other)?, 0o755)?;
        cpio.dir("lib")?;
        cpio.dir("lib/modules")?;
        for module in module_files {
            cpio.file(
                &format!("lib/modules/{module}"),
                &read(&modules.join(&module)).map_err(std::io::Error::other)?,
                0o644,
            )?;
        }
        cpio.trailer()?;
        cpio.out.flush()
    })();
    written.map_err(|e| format!("{}: {e}", out.display()))
}

/// The applet names of the busybox executable `busybox`, read from the file (it may be of
/// another architecture than the host's, so it is not run): busybox keeps them in one string,
/// NUL-separated and sorted, starting with its test applets `[` and `[[`, ended by an empty
/// name. `None` if no such string is there.
fn applets(busybox: &[u8]) -> Option<Vec<&str>> {
    const START: &[u8] = b"[\0[[\0";
    let is_name = |name: &[u8]| name.iter().all(|&b| b.is_ascii_alphanumeric() || b"[-_.".contains(&b));
    let list_at = |start: usize| {
        let names: Vec<&str> = busybox[start..]
            .split(|&b| b == 0)
            .take_while(|name| !name.is_empty() && is_name(name))
            .filter_map(|name| std::str::from_utf8(name).ok())
            .collect();
        // A real list has hundreds of applets, sorted; a stray "[ [[" in code is not one.
        (names.len() > 10 && names.windows(2).all(|w| w[0] < w[1])).then_some(names)
    };
    busybox.windows(START.len()).enumerate().filter(|(_, w)| *w == START).find_map(|(start, _)| list_at(start))
}

/// True if `path` is a 64-bit ELF executable without an interpreter (`PT_INTERP`): static.
pub fn is_static_elf(path: &Path) -> Result<bool, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::open(path).map_err(fail)?;
    let mut header = [0u8; 64];
    if file.read_exact(&mut header).is_err() || &header[..4] != b"\x7fELF" || header[4] != 2 {
        return Ok(false);
    }
    let phoff = u64::from_le_bytes(header[0x20..0x28].try_into().unwrap_or_default());
    let phentsize = u16::from_le_bytes([header[0x36], header[0x37]]);
    let phnum = u16::from_le_bytes([header[0x38], header[0x39]]);
    for i in 0..u64::from(phnum) {
        let mut p_type = [0u8; 4];
        file.seek(SeekFrom::Start(phoff + i * u64::from(phentsize))).map_err(fail)?;
        file.read_exact(&mut p_type).map_err(fail)?;
        if u32::from_le_bytes(p_type) == 3 {
            return Ok(false); // PT_INTERP
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries come out as the kernel's newc reader expects: a 110-byte header, the name with
    /// its NUL padded to 4 bytes, the data padded to 4 bytes.
    #[test]
    fn applets_come_from_the_name_list() {
        let binary = b"\x7fELF.[[\0[\0[[\0acpid\0ash\0b\0c\0d\0e\0f\0g\0h\0sh\0\0more";
        assert_eq!(applets(binary).unwrap(), ["[", "[[", "acpid", "ash", "b", "c", "d", "e", "f", "g", "h", "sh"]);
        assert!(applets(b"\0[\0[[\0x\0\0").is_none(), "too short a list");
        assert!(applets(b"no list here").is_none());
    }

    /// The host's busybox (the one `cargo xtask deps` installs): its list equals what it
    /// prints itself.
    #[test]
    fn applets_of_the_host_busybox() {
        let Ok(binary) = std::fs::read("/bin/busybox") else { panic!("/bin/busybox missing: run cargo xtask deps") };
        let listed = crate::output_of("/bin/busybox", &["--list"]).unwrap();
        let mut expected: Vec<&str> = listed.split_whitespace().collect();
        expected.sort_unstable();
        assert_eq!(applets(&binary).unwrap(), expected);
    }

    #[test]
    fn newc_entries_are_padded() {
        let mut cpio = Newc { out: Vec::new(), inode: 1 };
        cpio.symlink("bin/ls", "busybox").unwrap();
        cpio.trailer().unwrap();
        let out = String::from_utf8(cpio.out).unwrap();
        // inode 1, mode 0120777, uid, gid, nlink 1, mtime, size 7, dev and rdev 0, name size 7, check.
        let fields = ["00000001", "0000A1FF", "00000000", "00000000", "00000001", "00000000", "00000007"];
        let header = format!("070701{}{}{}", fields.concat(), "00000000".repeat(4), "0000000700000000");
        assert!(out.starts_with(&header), "{out}");
        // 110 + 7 name bytes = 117, padded to 120; 7 data bytes padded to 8.
        assert_eq!(&out[110..128], "bin/ls\0\0\0\0busybox\0");
        assert!(out[128..].starts_with("07070100000000"));
        assert_eq!(out.len() % 4, 0);
        assert!(out.ends_with("TRAILER!!!\0\0\0\0"), "{out:?}");
    }
}
