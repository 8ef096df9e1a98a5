//! The `memflow` binary: parses the command line and runs the command (see `memflow_cli`).

use clap::Parser;

fn main() {
    let cli = memflow_cli::cli::Cli::parse();
    if let Err(failure) = memflow_cli::run(cli) {
        if failure.code != memflow_cli::EXIT_OK {
            eprintln!("memflow: {}", failure.message.replace('\n', " "));
        }
        std::process::exit(failure.code);
    }
}
