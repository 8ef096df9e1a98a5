//! Conversions of addresses, sizes and strings between core values and record fields.

use std::ffi::c_char;

use crate::types::{umem, Address};
use cglue::repr_cstring::ReprCString;

/// An address in the target (virtual or physical).
pub fn addr_in(v: u64) -> Address {
    Address::new(umem::from(v))
}

/// An address handed to C (with 128-bit addresses, the low 64 bits).
#[allow(clippy::unnecessary_cast)] // not a no-op with the `128_bit_mem` feature
pub fn addr_out(a: Address) -> u64 {
    a.to_umem() as u64
}

/// A size handed to C.
#[allow(clippy::unnecessary_cast)] // not a no-op with the `128_bit_mem` feature
pub fn size_out(v: umem) -> u64 {
    v as u64
}

/// The C string of a record's string (borrowed from it).
pub fn str_out(s: &ReprCString) -> *const c_char {
    s.as_ptr().cast()
}
