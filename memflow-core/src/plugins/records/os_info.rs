//! The record of facts about an OS as a whole.

use crate::os::OsInfo;

use super::arch::MfArchitecture;
use super::convert::{addr_out, size_out};

/// Facts about an OS as a whole.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfOsInfo {
    /// Where the kernel image starts (0 if the layer has none, e.g. the native layer).
    pub base: u64,
    /// Size of the kernel image.
    pub size: u64,
    /// The architecture the OS runs on.
    pub arch: MfArchitecture,
}

impl From<&OsInfo> for MfOsInfo {
    fn from(i: &OsInfo) -> Self {
        MfOsInfo { base: addr_out(i.base), size: size_out(i.size), arch: i.arch.into() }
    }
}
