//! Kernel records: kernel symbols.

use std::ffi::{c_char, c_void};

use crate::os::KernelSymbolInfo;

use super::convert::{addr_out, str_out};

/// A kernel symbol, as `/proc/kallsyms` shows it on Linux. The strings are never NULL.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfKernelSymbolInfo {
    /// Symbol name.
    pub name: *const c_char,
    /// Its address.
    pub address: u64,
    /// Its type letter (`'T'` global text, `'t'` local text, `'D'`, `'d'`, `'R'`, `'r'`, `'B'`,
    /// `'b'`, ...), an ASCII character.
    pub kind: c_char,
    /// The kernel module it belongs to, empty for the kernel image.
    pub module: *const c_char,
}

impl MfKernelSymbolInfo {
    /// A view of `s` whose strings borrow from it.
    pub fn borrow(s: &KernelSymbolInfo) -> Self {
        MfKernelSymbolInfo {
            name: str_out(&s.name),
            address: addr_out(s.address),
            kind: s.kind as c_char,
            module: str_out(&s.module),
        }
    }
}

/// Receives a kernel symbol; return `true` to go on, `false` to stop. `info` and its strings
/// are borrowed and valid only during the call.
pub type MfKernelSymbolCallback =
    Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfKernelSymbolInfo) -> bool>;
