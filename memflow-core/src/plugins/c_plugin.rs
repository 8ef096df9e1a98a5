//! Plugins written in C: a versioned table of plain function pointers (see the SDK issue).
//! Until that interface lands, C-flavor descriptors are recognised and refused clearly.

use super::instances::*;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

fn unsupported() -> Error {
    Error::new(ErrorOrigin::Plugin, ErrorKind::Unsupported).log_warn("C plugin interface is not available in this build")
}

/// Creates a connector from a C plugin descriptor.
pub fn create_connector(_desc: *const u8, _args: &std::ffi::CStr, _lib: LibArc) -> Result<ConnectorInstanceArcBox<'static>> {
    Err(unsupported())
}

/// Creates an OS layer from a C plugin descriptor.
pub fn create_os(
    _desc: *const u8,
    _args: &std::ffi::CStr,
    _input: Option<ConnectorInstanceArcBox<'static>>,
    _lib: LibArc,
) -> Result<OsInstanceArcBox<'static>> {
    Err(unsupported())
}
