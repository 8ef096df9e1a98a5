//! The C ABI of memflow: `libmemflow_ffi.so` / `libmemflow_ffi.a` and the generated
//! `include/memflow.h` (plus the C++17 wrappers in `include/memflow.hpp`).
//!
//! One concept per module:
//!
//! | module        | C functions                                   |
//! |---------------|-----------------------------------------------|
//! | [`error`]     | `mf_error_*`, `mf_last_error_*`, `MF_ERR_*`    |
//! | [`log`]       | `mf_log_*`                                    |
//! | [`version`]   | `mf_version`, `mf_abi_version`, `MF_VERSION_*` |
//! | [`inventory`] | `mf_inventory_*`                              |
//! | [`connector`] | `mf_connector_*`                              |
//! | [`os`]        | `mf_os_*`, `mf_process_list_*`                 |
//! | [`process`]   | `mf_process_*`, `mf_module_list_*`             |
//! | [`records`]   | the plain `#[repr(C)]` records (`MfProcessInfo`, ...) |
//!
//! # Conventions (they hold for every function unless its documentation says otherwise)
//!
//! - Functions return `int32_t`: `0` (`MF_OK`) on success, a negative error code otherwise
//!   (`mf_error_string(code)` describes it, `mf_last_error_message()` gives the detail).
//!   Reads that partly fail return `MF_ERR_PARTIAL_READ` with the unreadable bytes zeroed.
//! - Every pointer argument is checked: `NULL` gives `MF_ERR_NULL`. Panics are caught and
//!   give an error code of kind `MF_KIND_PANIC`. Nothing unwinds into C.
//! - Handles (`MfInventory`, `MfConnector`, `MfOs`, `MfProcess`, `MfProcessList`,
//!   `MfModuleList`) are opaque, owned by the caller, and released with exactly one function
//!   (`mf_<type>_free`). Each carries a per-type magic value that is checked before use and
//!   cleared on free: a pointer to readable memory that is not a live handle of the expected
//!   type (garbage, a handle of another type, a freed handle whose memory was not reused)
//!   gives `MF_ERR_INVALID_HANDLE`. Limits: a pointer to unmapped memory cannot be detected
//!   and faults like in any C library, and a freed handle whose memory was reused for a new
//!   handle of the same type is indistinguishable from that new handle.
//! - Output pointers (`out`) are written only on success.
//! - Strings passed in are NUL-terminated UTF-8, borrowed for the call. Strings handed out
//!   are either borrowed (the documentation says from what and for how long) or owned with a
//!   named free function.
//! - A handle may be used from any thread, but not from two threads at once; clone connectors
//!   and OS layers (`mf_connector_clone`, `mf_os_clone`) to work in parallel.

#![warn(missing_docs)]
// Every exported function checks its pointers itself; marking them `unsafe` would add nothing
// for C callers and is not what cbindgen needs.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod call;
pub mod connector;
pub mod error;
mod handle;
pub mod inventory;
pub mod log;
mod mem;
pub mod os;
pub mod process;
pub mod records;
pub mod version;

pub use connector::*;
pub use error::*;
pub use inventory::*;
pub use log::*;
pub use os::*;
pub use process::*;
pub use records::*;
pub use version::*;
