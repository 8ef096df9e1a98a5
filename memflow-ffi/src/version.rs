//! Library and ABI versions, at compile time (macros in the header) and at run time.

use std::ffi::c_char;

/// Major version of the library this header belongs to.
pub const MF_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const MF_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const MF_VERSION_PATCH: u32 = 0;
/// Version of the C ABI of this header (the number in the shared library's soname,
/// `libmemflow_ffi.so.<MF_ABI_VERSION>`). Bumped on any incompatible change to the C API.
pub const MF_ABI_VERSION: u32 = 2;
/// Version of the plugin ABI (the descriptor layout plugins must be built for).
pub const MF_PLUGIN_ABI_VERSION: u32 = 3;

/// Parses a decimal number at compile time.
const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        assert!(b[i].is_ascii_digit());
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

// The header macros are literals; keep them equal to the package version and the core's ABI.
const _: () = assert!(MF_VERSION_MAJOR == parse(env!("CARGO_PKG_VERSION_MAJOR")));
const _: () = assert!(MF_VERSION_MINOR == parse(env!("CARGO_PKG_VERSION_MINOR")));
const _: () = assert!(MF_VERSION_PATCH == parse(env!("CARGO_PKG_VERSION_PATCH")));
const _: () = assert!(MF_PLUGIN_ABI_VERSION == memflow_core::plugins::ABI_VERSION);

/// The library version as a NUL-terminated string, e.g. `"0.1.0"`, for comparison with the
/// `MF_VERSION_*` macros of the header a program was compiled with.
///
/// Ownership: static; never free it. Never returns NULL.
#[no_mangle]
pub extern "C" fn mf_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The C ABI version of the loaded library (`MF_ABI_VERSION` of the header it was built
/// with). A program compiled against a header with another `MF_ABI_VERSION` must not use it.
#[no_mangle]
pub extern "C" fn mf_abi_version() -> u32 {
    MF_ABI_VERSION
}

/// The plugin ABI version of the loaded library: plugins must be built for this version.
#[no_mangle]
pub extern "C" fn mf_plugin_abi_version() -> u32 {
    MF_PLUGIN_ABI_VERSION
}
