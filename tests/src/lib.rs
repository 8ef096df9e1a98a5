//! Shared helpers of the integration tests in `tests/tests/`: the guest fixtures, the
//! repository's paths, private temporary directories, the shipped plugin libraries and the
//! live-guest launcher (the one `cargo xtask demo` uses).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod altered;
mod files;
mod fixture;

pub use altered::Altered;
pub use files::{build_c_plugin, build_dir, copy_into, repo_root, shipped, temp_dir};
pub use fixture::Fixture;
pub use xtask::fixture::section;
pub use xtask::guest::LiveGuest;
