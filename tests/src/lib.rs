//! Shared helpers of the integration tests in `tests/tests/`: the guest fixtures, the
//! repository's paths, private temporary directories, the shipped plugin libraries and the
//! live-guest launcher (the one `cargo xtask demo` uses).

mod files;
mod fixture;

pub use files::{build_dir, copy_into, repo_root, shipped, temp_dir};
pub use fixture::{section, Fixture};
pub use xtask::guest::LiveGuest;
