//! `cargo xtask <task>`: project tasks.

fn main() {
    eprintln!("usage: cargo xtask <demo>");
    std::process::exit(2);
}
