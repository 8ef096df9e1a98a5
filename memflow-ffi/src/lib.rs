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
//! | [`dump`]      | `mf_dump_write`, `MF_DUMP_*`                   |
//! | [`os`]        | `mf_os_*`, `mf_process_list_*`                 |
//! | [`kernel`]    | `mf_os_kernel_*`, `mf_os_type_*`                |
//! | [`process`]   | `mf_process_*`, `mf_module_list_*`             |
//! | [`lists`]     | `mf_{export,import,section,memory_range}_list_*` |
//! | `records` (in memflow-core, shared with C plugins) | the plain `#[repr(C)]` records (`MfProcessInfo`, ...) |
//!
//! # Conventions (they hold for every function unless its documentation says otherwise)
//!
//! - Functions return `int32_t`: `0` (`MF_OK`) on success, a negative error code otherwise
//!   (`mf_error_string(code)` describes it, `mf_last_error_message()` gives the detail).
//!   Reads that partly fail return `MF_ERR_PARTIAL_READ` with the unreadable bytes zeroed,
//!   writes `MF_ERR_PARTIAL_WRITE`; writes to read-only memory fail with kind
//!   `MF_KIND_READ_ONLY`.
//! - Every read and write reports how many bytes it transferred: single calls through an
//!   optional `size_t *done` (NULL if not wanted), batches through each op's `done`. The count
//!   is the number of bytes from the start of the buffer before the first byte that could not
//!   be transferred (`len` when complete, 0 when nothing was); bytes after that one are still
//!   transferred where they can be.
//! - Every pointer argument is checked: `NULL` gives `MF_ERR_NULL`. Panics are caught and
//!   give an error code of kind `MF_KIND_PANIC`. Nothing unwinds into C.
//! - Handles (`MfInventory`, `MfConnector`, `MfOs`, `MfProcess` and the lists
//!   `MfProcessList`, `MfModuleList`, `MfExportList`, `MfImportList`, `MfSectionList`,
//!   `MfMemoryRangeList`) are opaque, owned by the caller, and released with exactly one function
//!   (`mf_<type>_free`). A handle is a registered number, not an address: the library looks
//!   it up in its registry of live objects before anything is read, so NULL gives
//!   `MF_ERR_NULL` and garbage, a handle of another type, a freed handle (also after its slot
//!   was reused by a new object) and a second free give `MF_ERR_INVALID_HANDLE`, every time.
//!   Never dereference a handle.
//! - Output pointers (`out`) are written only on success.
//! - Strings passed in are NUL-terminated UTF-8, borrowed for the call. Strings handed out
//!   belong to the object they came from (a list, a process) and stay valid until it is
//!   freed; those of records passed to callbacks are valid during the call only. Two
//!   exceptions: `mf_last_error_message` (per thread, until its next failure) and
//!   `mf_inventory_plugin_at` (until a plugin is added to the inventory).
//! - Threads: every handle may be used from several threads at once. Calls on one handle
//!   are serialised (a call waits for the one running on the same handle); calls on
//!   different handles run in parallel, so clone connectors and OS layers
//!   (`mf_connector_clone`, `mf_os_clone`) to read in parallel. Freeing a handle while
//!   another thread is in a call on it waits for that call to return; later calls get
//!   `MF_ERR_INVALID_HANDLE`. A callback must not call back into the library with (or free)
//!   the handle whose call invoked it: that call fails with `MF_ERR_UNSUPPORTED` (other
//!   handles are fine, but two threads whose callbacks each use the other's handle wait for
//!   each other forever). A string handed out by a handle stays valid until that
//!   handle is freed, whichever thread frees it.
//! - Dump files are memory-mapped: if a dump file is truncated or rewritten while a
//!   connector uses it, reads of the lost pages raise `SIGBUS` (which the library cannot turn
//!   into an error). Do not modify dumps that are in use; analyse a copy.

#![warn(missing_docs)]
// Every exported function checks its pointers itself; marking them `unsafe` would add nothing
// for C callers and is not what cbindgen needs.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod call;
pub mod connector;
pub mod dump;
pub mod error;
mod handle;
pub mod inventory;
pub mod kernel;
pub mod lists;
pub mod log;
mod mem;
pub mod os;
pub mod process;
mod strings;
mod translate;
pub mod version;

pub use connector::*;
pub use dump::*;
pub use error::*;
pub use inventory::*;
pub use kernel::*;
pub use lists::*;
pub use log::api::*;
pub use log::*;
pub use memflow_core::plugins::records::*;
pub use os::*;
pub use process::*;
pub use version::*;
