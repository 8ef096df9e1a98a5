//! The command line: every command, argument and option, as clap definitions. The shell
//! completions (`memflow completions SHELL`) and the man page (`memflow man`) are generated
//! from these definitions.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::value::{Condition, ValueType};

/// The exit codes, as `--help` shows them.
pub const EXIT_CODES: &str = "Exit codes:
  0  success
  1  error (the one-line message on standard error names the object and the reason)
  2  usage error (unknown command or option, invalid argument)
  3  not found (no such process, module, plugin or symbol)
  4  verification failed (`plugins verify` found refused files)";

/// `memflow`: inspect processes and kernels through memflow chains, read and translate
/// memory, scan it, and manage plugins.
#[derive(Parser, Debug)]
#[command(name = "memflow", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The chain to open: plugins joined by `->`, each with optional arguments after `:`,
    /// e.g. `coredump:guest.elf -> linux` or `qemu:vm1 -> linux`.
    #[arg(short, long, global = true, default_value = "native")]
    pub chain: String,

    /// Print one JSON document (stable field names, see the README) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on standard error (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Less output: -q hides warnings and progress bars, -qq errors of plugins too.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub quiet: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage plugins: list, show, verify, install and remove plugin libraries.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// The targets a connector plugin can open (e.g. running QEMU guests).
    Targets {
        /// The connector plugin.
        #[arg(default_value = "qemu")]
        plugin: String,
    },
    /// What the chain is: connector metadata, memory map, CPU state, OS, paging and kernel base.
    Info {
        /// Every register of every CPU in the table, not only the program counter and stack
        /// pointer (`--json` always has them all).
        #[arg(long)]
        registers: bool,
    },
    /// The processes.
    Ps,
    /// The modules of a process.
    Modules {
        /// Process id or name.
        process: String,
    },
    /// The threads of a process (where the OS layer knows them): id, state, name.
    Threads {
        /// Process id or name.
        process: String,
    },
    /// The mapped memory ranges of a process.
    Maps {
        /// Process id or name.
        process: String,
    },
    /// The symbols a module of a process exports.
    Exports {
        /// Process id or name.
        process: String,
        /// Module name.
        module: String,
    },
    /// The kernel modules.
    Kmods,
    /// The kernel symbols, optionally only those whose name contains PATTERN.
    Ksyms {
        /// A part of the names to show.
        pattern: Option<String>,
    },
    /// Reads memory and shows it as a hexdump (or raw bytes with --raw).
    Read {
        /// The first address (hexadecimal with 0x, or decimal).
        #[arg(value_parser = parse_number)]
        address: u64,
        /// How many bytes (at most 64 MiB).
        #[arg(value_parser = parse_number)]
        length: u64,
        /// Where to read (default: the kernel's address space).
        #[command(flatten)]
        space: Space,
        /// Write the bytes to standard output as they are.
        #[arg(long)]
        raw: bool,
    },
    /// Writes bytes to memory.
    Write {
        /// The first address (hexadecimal with 0x, or decimal).
        #[arg(value_parser = parse_number)]
        address: u64,
        /// The bytes, as hexadecimal pairs (`90 90 cc` or `9090cc`).
        data: String,
        /// Where to write (default: the kernel's address space).
        #[command(flatten)]
        space: Space,
    },
    /// Translates a virtual address, showing every level's page-table entry.
    Vtop {
        /// The virtual address (hexadecimal with 0x, or decimal).
        #[arg(value_parser = parse_number)]
        address: u64,
        /// The process whose tables to walk (default: the kernel's, from CPU 0's state).
        #[arg(long)]
        pid: Option<String>,
    },
    /// Writes the chain's physical memory (or a process's memory, or one of its modules rebuilt
    /// as a file) to a file that memflow and other tools open.
    ///
    /// Unreadable pages are left out and reported, never written as zeros. The file is
    /// written under a temporary name and renamed when complete: Ctrl-C leaves no file.
    Dump {
        /// The file to write.
        output: PathBuf,
        /// elf (QEMU-style ELF core), lime, raw (sparse image), kdump-zstd, kdump-snappy or
        /// kdump-zlib (compressed kdump).
        #[arg(long, default_value = "elf", value_parser = crate::dump::parse_format)]
        format: memflow_core::connector::WriteFormat,
        /// Dump this process's mapped memory (process id or name), at its virtual addresses,
        /// instead of physical memory.
        #[arg(long)]
        pid: Option<String>,
        /// Rebuild this module of the process (`--pid`) as a file instead: each loaded
        /// segment's file bytes from memory at its file offset (ELF modules; section headers
        /// that were not loaded are dropped, unreadable pages stay zero and are reported).
        #[arg(long, requires = "pid", conflicts_with_all = ["format", "vmcoreinfo"])]
        module: Option<String>,
        /// Record this Linux VMCOREINFO text (`KEY=value` lines, e.g. the guest's
        /// /sys/kernel/vmcoreinfo note) in an ELF or kdump file. Without it, a chain ending in
        /// the linux layer records the kernel's own, read from its memory, and a connector
        /// chain the one its dump recorded.
        #[arg(long)]
        vmcoreinfo: Option<PathBuf>,
    },
    /// Scans memory for byte patterns, strings or values.
    #[command(subcommand)]
    Scan(ScanCommand),
    /// Prints the shell completion script for SHELL.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Prints the man page (roff).
    Man,
}

/// `memflow plugins ...`.
#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// Every plugin the inventory sees, and every file it refused with the reason.
    List,
    /// One plugin's details: kind, version, file, description, arguments.
    Info {
        /// The plugin name.
        name: String,
    },
    /// Checks every plugin file in the plugin directories (or DIR) again.
    Verify {
        /// Only this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Copies built plugin libraries into a plugin directory, after checking them: one library,
    /// every library of a directory, or what a plugin crate builds (with `cargo build`).
    Install {
        /// A plugin library (`libmemflow_NAME.so`), a directory of them, or a plugin crate's
        /// directory (one with a `Cargo.toml`: built with cargo, its cdylib installed).
        path: PathBuf,
        /// The plugin directory (default: the user's, ~/.local/lib/memflow).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The cargo profile a plugin crate is built with.
        #[arg(long, default_value = "release")]
        profile: String,
    },
    /// Removes a plugin library from a plugin directory.
    Remove {
        /// The plugin name, or the library's file name.
        name: String,
        /// The plugin directory (default: the user's, ~/.local/lib/memflow).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Which address space `read` and `write` use.
#[derive(Args, Debug, Clone)]
pub struct Space {
    /// A process's address space (process id or name).
    #[arg(long, conflicts_with = "phys")]
    pub pid: Option<String>,
    /// Physical memory.
    #[arg(long)]
    pub phys: bool,
}

/// Which memory a scan covers.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Region {
    /// A process's mapped memory (process id or name).
    #[arg(long)]
    pub pid: Option<String>,
    /// The kernel image and the kernel modules.
    #[arg(long)]
    pub kernel: bool,
    /// All physical memory.
    #[arg(long)]
    pub phys: bool,
    /// The mapped memory of every process, one after the other (not for value scans).
    #[arg(long)]
    pub all_processes: bool,
}

/// `memflow scan ...`.
#[derive(Subcommand, Debug)]
pub enum ScanCommand {
    /// Bytes with wildcards: `48 8b ?? ?? 90`.
    Pattern {
        /// Hexadecimal bytes separated by spaces; `??` matches any byte.
        pattern: String,
        /// Where to scan.
        #[command(flatten)]
        region: Region,
        /// Stop after this many matches (at least 1).
        #[arg(long, default_value_t = 1000, value_parser = parse_limit)]
        limit: usize,
    },
    /// A string, as ASCII/UTF-8 bytes or as UTF-16LE.
    String {
        /// The text.
        text: String,
        /// Look for its UTF-16LE encoding instead.
        #[arg(long)]
        utf16: bool,
        /// Where to scan.
        #[command(flatten)]
        region: Region,
        /// Stop after this many matches (at least 1).
        #[arg(long, default_value_t = 1000, value_parser = parse_limit)]
        limit: usize,
    },
    /// YARA rules (text, hex and regular-expression patterns), through yara-x: each address
    /// space is scanned as one piece of data in blocks, so file-format modules, `filesize` and
    /// `uint32(...)`-style reads are not available.
    #[cfg(feature = "yara")]
    Yara {
        /// The rules file.
        rules: PathBuf,
        /// Where to scan.
        #[command(flatten)]
        region: Region,
        /// Stop after this many matches (at least 1).
        #[arg(long, default_value_t = 1000, value_parser = parse_limit)]
        limit: usize,
    },
    /// Starts a value scan: every aligned place holding VALUE; the candidates go to the state file.
    Value {
        /// The value's type.
        #[arg(value_enum)]
        value_type: ValueType,
        /// The value.
        value: String,
        /// Where to scan.
        #[command(flatten)]
        region: Region,
        /// The file that keeps the candidates between runs.
        #[arg(long, default_value = "memflow-scan.json")]
        state: PathBuf,
    },
    /// Narrows the candidates of the last value scan to those that meet CONDITION now.
    Next {
        /// How the value must compare with the previous one (or with VALUE for `equal`).
        #[arg(value_enum)]
        condition: Condition,
        /// The value, for `equal`.
        value: Option<String>,
        /// The file that keeps the candidates between runs.
        #[arg(long, default_value = "memflow-scan.json")]
        state: PathBuf,
    },
}

/// Parses `0x...` as hexadecimal and anything else as decimal.
pub fn parse_number(text: &str) -> Result<u64, String> {
    let text = text.trim().replace('_', "");
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|e| format!("`{text}` is not a number (hexadecimal needs 0x): {e}"))
}

/// Parses a match limit: a number of at least 1.
pub fn parse_limit(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(0) | Err(_) => Err(format!("`{text}` is not a limit of at least 1")),
        Ok(n) => Ok(n),
    }
}

/// Parses hexadecimal byte pairs, with or without spaces between them.
pub fn parse_hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text.split_whitespace().collect();
    if digits.is_empty() || digits.len() % 2 != 0 || !digits.is_ascii() {
        return Err(format!("`{text}` is not a list of hexadecimal byte pairs"));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| format!("`{}` is not a byte", &digits[i..i + 2]))
        })
        .collect()
}
