//! Plain `#[repr(C)]` records handed to and received from C, and the callback types that
//! receive them. Addresses and sizes are `uint64_t`.
//!
//! Strings in records are NUL-terminated UTF-8. Who owns them is documented at each function
//! that hands a record out; records received from C are only read during the call.

mod arch;
mod convert;
mod kernel;
mod memory;
mod module;
mod os_info;
mod process;
mod x86;

pub use arch::*;
pub(crate) use convert::{addr_in, addr_out, size_out, str_out};
pub use kernel::*;
pub use memory::*;
pub use module::*;
pub use os_info::*;
pub use process::*;
pub use x86::*;
