//! Plain `#[repr(C)]` records handed to and received from C, and the callback types that
//! receive them. Addresses and sizes are `uint64_t`.
//!
//! Strings in records are NUL-terminated UTF-8. Who owns them is documented at each function
//! that hands a record out; records received from C are only read during the call.

mod arch;
mod memory;
mod module;
mod os_info;
mod process;
mod x86;

pub use arch::*;
pub use memory::*;
pub use module::*;
pub use os_info::*;
pub use process::*;
pub use x86::*;

use std::ffi::c_char;

use cglue::repr_cstring::ReprCString;
use memflow_core::types::{umem, Address};

/// An address in the target (virtual or physical).
pub(crate) fn addr_in(v: u64) -> Address {
    Address::new(umem::from(v))
}

/// An address handed to C (with 128-bit addresses, the low 64 bits).
#[allow(clippy::unnecessary_cast)] // not a no-op with the `128_bit_mem` feature
pub(crate) fn addr_out(a: Address) -> u64 {
    a.to_umem() as u64
}

/// A size handed to C.
#[allow(clippy::unnecessary_cast)] // not a no-op with the `128_bit_mem` feature
pub(crate) fn size_out(v: umem) -> u64 {
    v as u64
}

/// The C string of a record's string (borrowed from it).
pub(crate) fn str_out(s: &ReprCString) -> *const c_char {
    s.as_ptr().cast()
}
