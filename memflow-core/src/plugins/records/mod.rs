//! Plain `#[repr(C)]` records handed to and received from C, and the callback types that
//! receive them. Addresses and sizes are `uint64_t`. The C API (memflow-ffi) hands them to its
//! callers and C plugins hand them to the host ([`super::c_plugin`], [`super::c_os`]): a C
//! author meets one set of records on both sides.
//!
//! Strings in records are NUL-terminated UTF-8. Who owns them is documented at each function
//! that hands a record out; records received from C are only read during the call.

mod aarch64;
mod arch;
mod convert;
mod incoming;
mod kernel;
mod memory;
mod module;
mod ops;
mod os_info;
mod process;
mod riscv;
mod x86;

pub use aarch64::*;
pub use arch::*;
pub use convert::{addr_in, addr_out, size_out, str_out};
pub use incoming::IncomingRecord;
pub use kernel::*;
pub use memory::*;
pub use module::*;
pub use ops::{read_ops, write_ops};
pub use os_info::*;
pub use process::*;
pub use riscv::*;
pub use x86::*;
