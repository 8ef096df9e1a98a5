//! Strings handed to C that belong to the object they came from.

use std::collections::BTreeSet;
use std::ffi::{c_char, CStr, CString};

/// The strings an object has handed to C, each kept once until the object is freed: a string
/// handed out is never "valid until the next call", and handing the same text out again takes
/// no more memory.
#[derive(Default)]
pub(crate) struct KeptStrings(BTreeSet<CString>);

impl KeptStrings {
    /// The kept copy of `s`, added if missing. A `CString`'s bytes do not move when the set
    /// moves it, so the pointer stays valid as long as the set holds it.
    pub(crate) fn keep(&mut self, s: &CStr) -> *const c_char {
        if let Some(kept) = self.0.get(s) {
            return kept.as_ptr();
        }
        let kept = s.to_owned();
        let ptr = kept.as_ptr();
        self.0.insert(kept);
        ptr
    }

    /// [`keep`](Self::keep) for Rust text; a NUL inside becomes a space.
    pub(crate) fn keep_str(&mut self, s: &str) -> *const c_char {
        match CString::new(s) {
            Ok(c) => self.keep(&c),
            Err(_) => self.keep(&CString::new(s.replace('\0', " ")).unwrap_or_default()),
        }
    }
}
