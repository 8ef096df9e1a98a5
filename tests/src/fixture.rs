//! The guest fixtures: QEMU dumps with the guest's own recordings of what was in memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use memflow_core::connector::{open, DumpFormat, FileConnector, OpenOptions};
use xtask::fixture::section;

/// One guest fixture directory made by `cargo xtask fixtures`, checked to be complete.
/// A missing fixture fails the test that loads it: tests never skip silently.
pub struct Fixture {
    /// The fixture's name (its directory under `target/fixtures`), with `/FILE` when a dump
    /// other than `dump.elf` was asked for.
    pub name: &'static str,
    /// Its directory.
    pub dir: PathBuf,
    /// The dump file [`Fixture::open`] opens.
    pub dump: PathBuf,
    /// `serial.log`.
    pub serial: String,
    /// `meta.txt`.
    pub meta: String,
    /// `kallsyms.txt` by name, read on first use.
    kallsyms: OnceLock<HashMap<String, u64>>,
}

impl Fixture {
    /// Loads `target/fixtures/NAME`, or with `NAME/FILE` the same fixture with the dump
    /// `FILE` (e.g. `cloud-4l/dump.kdump-zlib`) instead of `dump.elf`; panics with
    /// instructions if it is incomplete.
    pub fn load(name: &'static str) -> Self {
        let (dir_name, dump) = name.split_once('/').unwrap_or((name, "dump.elf"));
        let dir = crate::repo_root().join("target/fixtures").join(dir_name);
        let missing: Vec<_> = [dump, "dump.elf", "serial.log", "meta.txt", "kallsyms.txt"]
            .into_iter()
            .filter(|f| !dir.join(f).is_file())
            .collect();
        assert!(
            missing.is_empty(),
            "fixture {name} is incomplete: {missing:?} missing in {}. Run `cargo xtask fixtures` \
             first (cargo xtask test does); it boots a guest under QEMU and dumps its memory.",
            dir.display()
        );
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let dump = dir.join(dump);
        Fixture { name, serial: read("serial.log"), meta: read("meta.txt"), dir, dump, kallsyms: OnceLock::new() }
    }

    /// Opens the fixture's dump (`dump.elf` unless another was named).
    pub fn open(&self) -> FileConnector {
        let conn = open(&self.dump, OpenOptions::default()).unwrap();
        let want = match self.dump.file_name().and_then(|f| f.to_str()) {
            Some("dump.elf") => DumpFormat::ElfCore,
            // QEMU 7.2 writes its kdump formats flattened; makedumpfile -R made the plain one.
            Some(f) if f.ends_with("-plain") => DumpFormat::Kdump,
            Some(f) if f.starts_with("dump.kdump-") => DumpFormat::FlattenedKdump,
            // AVML without --compress writes LiME.
            Some("dump.avml-lime") => DumpFormat::Lime,
            Some("dump.avml") => DumpFormat::Avml,
            _ => panic!("{}: unknown kind of dump {}", self.name, self.dump.display()),
        };
        assert_eq!(conn.format(), want, "{}", self.name);
        conn
    }

    /// Opens `dump.elf`, whichever dump [`Fixture::open`] opens.
    pub fn open_elf(&self) -> FileConnector {
        let conn = open(self.dir.join("dump.elf"), OpenOptions::default()).unwrap();
        assert_eq!(conn.format(), DumpFormat::ElfCore);
        conn
    }

    /// The lines the guest printed between `==== MEMFLOW-BEGIN name ====` and its END line.
    pub fn section(&self, name: &str) -> &str {
        section(&self.serial, name).unwrap_or_else(|| panic!("{}: no section {name}", self.name))
    }

    /// Checks where the dump stopped the guest's CPU: true if in its kernel (`pc` in the
    /// kernel's text), false if in a user process (`pc` in the lower half). The guest idles in
    /// its kernel most of the time, but QEMU may stop it while a process runs.
    pub fn check_pc(&self, pc: u64) -> bool {
        let text = self.symbol("_text")..self.symbol("_etext");
        let in_kernel = pc >> 63 == 1;
        if in_kernel {
            assert!(text.contains(&pc), "{}: pc {pc:#x} outside the kernel text {text:x?}", self.name);
        } else {
            assert!(pc != 0 && pc < 1 << 56, "{}: pc {pc:#x} neither in the kernel nor in user space", self.name);
        }
        in_kernel
    }

    /// The address of a symbol of the guest's `/proc/kallsyms` (kallsyms.txt).
    pub fn symbol(&self, name: &str) -> u64 {
        let kallsyms = self.kallsyms.get_or_init(|| {
            std::fs::read_to_string(self.dir.join("kallsyms.txt"))
                .unwrap()
                .lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let addr = u64::from_str_radix(f.next()?, 16).ok()?;
                    Some((f.nth(1)?.to_owned(), addr))
                })
                .collect()
        });
        *kallsyms.get(name).unwrap_or_else(|| panic!("{}: no {name} in kallsyms.txt", self.name))
    }

    /// A `key=value` line of meta.txt.
    pub fn meta(&self, key: &str) -> &str {
        let prefix = format!("{key}=");
        self.meta
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{}: no {key} in meta.txt", self.name))
    }

    /// The `System RAM` ranges of the guest's /proc/iomem, inclusive.
    pub fn system_ram(&self) -> Vec<(u64, u64)> {
        let ram: Vec<_> = self
            .section("iomem")
            .lines()
            .filter(|l| l.trim_end().ends_with(": System RAM"))
            .map(|l| {
                let (start, end) = l.trim().split(' ').next().unwrap().split_once('-').unwrap();
                (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap())
            })
            .collect();
        assert!(!ram.is_empty(), "{}: no System RAM in /proc/iomem", self.name);
        ram
    }
}
