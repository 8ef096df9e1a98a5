//! The C ABI of memflow. The full SDK surface arrives with the SDK issue; for now it exposes
//! the version and error descriptions so the library builds and links from C.

use std::ffi::c_char;

use memflow_core::error::Error;

/// The library version as a NUL-terminated string, e.g. `"0.1.0"`. Static; do not free.
#[no_mangle]
pub extern "C" fn mf_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A static, NUL-terminated description of an error code (`"ok"` for codes >= 0). Do not free.
#[no_mangle]
pub extern "C" fn mf_error_string(code: i32) -> *const c_char {
    static OK: &[u8] = b"ok\0";
    match Error::from_code(code) {
        None => OK.as_ptr().cast(),
        Some(_) => error_text(code).as_ptr().cast(),
    }
}

/// Interned "origin: kind" strings, built once per code.
fn error_text(code: i32) -> &'static [u8] {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static TEXTS: OnceLock<Mutex<HashMap<i32, &'static [u8]>>> = OnceLock::new();
    let mut texts = TEXTS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    // Keyed by the normalised code, so at most one string per (origin, kind) pair is leaked.
    let err = Error::from_code(code).expect("negative code");
    texts.entry(err.code()).or_insert_with(|| {
        Box::leak(format!("{err}\0").into_bytes().into_boxed_slice())
    })
}
