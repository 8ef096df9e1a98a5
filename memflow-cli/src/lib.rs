//! `memflow`, the command-line tool: the commands behind the `memflow` binary, on the chains
//! and plugins of `memflow-core`. `main.rs` only parses the command line and calls [`run`].
//!
//! Exit codes (see [`cli::EXIT_CODES`]): 0 success, 1 error, 2 usage error, 3 not found,
//! 4 verification failed. Errors print as one line on standard error.

// `umem` is `u64` or `u128` (feature `128_bit_mem` of memflow-core); the CLI prints 64-bit
// addresses, and the casts are no-ops in the default width.
#![allow(clippy::unnecessary_cast, clippy::useless_conversion)]

pub mod cli;
pub mod dump;
pub mod inspect;
pub mod logger;
pub mod memory;
pub mod output;
pub mod plugins;
pub mod registers;
pub mod scan;
pub mod target;
pub mod value;
#[cfg(feature = "yara")]
pub mod yara;

use clap::CommandFactory;
use memflow_core::error::{Error, ErrorKind};

use cli::{Cli, Command, ScanCommand};
use output::Output;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: an error.
pub const EXIT_ERROR: i32 = 1;
/// Exit code: a usage error (clap's own code for them).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the process, module, plugin or symbol asked for does not exist.
pub const EXIT_NOT_FOUND: i32 = 3;
/// Exit code: `plugins verify` found files it refuses.
pub const EXIT_VERIFY: i32 = 4;

/// A failed command: the exit code and the one-line message.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: i32,
    /// What failed and why, on one line.
    pub message: String,
}

impl Failure {
    /// A failure with exit code [`EXIT_ERROR`].
    pub fn error(message: impl Into<String>) -> Self {
        Failure { code: EXIT_ERROR, message: message.into() }
    }

    /// A failure with exit code [`EXIT_USAGE`].
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { code: EXIT_USAGE, message: message.into() }
    }

    /// A failure with exit code [`EXIT_NOT_FOUND`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Failure { code: EXIT_NOT_FOUND, message: message.into() }
    }

    /// `error` of the library, said about `what` (e.g. "process 42").
    pub fn about(what: impl std::fmt::Display, error: Error) -> Self {
        Failure { message: format!("{what}: {error}"), ..Failure::from(error) }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = if error.kind == ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_ERROR };
        Failure { code, message: error.to_string() }
    }
}

impl From<std::io::Error> for Failure {
    /// A closed standard output (`memflow ps | head`) ends the command quietly.
    fn from(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::BrokenPipe => Failure { code: EXIT_OK, message: String::new() },
            _ => Failure::error(error.to_string()),
        }
    }
}

/// Runs the command `cli` describes.
pub fn run(cli: Cli) -> Result<(), Failure> {
    logger::init(cli.verbose, cli.quiet);
    let out = Output::new(cli.json, cli.quiet > 0);
    let chain = cli.chain.as_str();
    match cli.command {
        Command::Plugins(command) => plugins::run(command, &out),
        Command::Targets { plugin } => inspect::targets(&plugin, &out),
        Command::Info { registers } => inspect::info(chain, registers, &out),
        Command::Ps => inspect::ps(chain, &out),
        Command::Modules { process } => inspect::modules(chain, &process, &out),
        Command::Threads { process } => inspect::threads(chain, &process, &out),
        Command::Maps { process } => inspect::maps(chain, &process, &out),
        Command::Exports { process, module } => inspect::exports(chain, &process, &module, &out),
        Command::Kmods => inspect::kmods(chain, &out),
        Command::Ksyms { pattern } => inspect::ksyms(chain, pattern.as_deref(), &out),
        Command::Read { address, length, space, raw } => memory::read(chain, address, length, &space, raw, &out),
        Command::Write { address, data, space } => memory::write(chain, address, &data, &space, &out),
        Command::Vtop { address, pid } => memory::vtop(chain, address, pid.as_deref(), &out),
        Command::Dump { output, pid, module: Some(module), .. } => {
            dump::module(chain, &output, pid.as_deref().unwrap_or_default(), &module, &out)
        }
        Command::Dump { output, format, pid, module: None, vmcoreinfo } => {
            dump::dump(chain, &output, format, pid.as_deref(), vmcoreinfo.as_deref(), &out)
        }
        Command::Scan(ScanCommand::Pattern { pattern, region, limit }) => {
            scan::pattern_command(chain, &pattern, &region, limit, &out)
        }
        Command::Scan(ScanCommand::String { text, utf16, region, limit }) => {
            scan::string_command(chain, &text, utf16, &region, limit, &out)
        }
        #[cfg(feature = "yara")]
        Command::Scan(ScanCommand::Yara { rules, region, limit }) => yara::command(chain, &rules, &region, limit, &out),
        Command::Scan(ScanCommand::Value { value_type, value, region, state }) => {
            value::first(chain, value_type, &value, &region, &state, &out)
        }
        Command::Scan(ScanCommand::Next { condition, value, state }) => {
            value::next(chain, condition, value.as_deref(), &state, &out)
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "memflow", &mut script);
            output::write_stdout(&script)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            output::write_stdout(&page)
        }
    }
}
