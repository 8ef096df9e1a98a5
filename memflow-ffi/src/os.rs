//! OS layers: what the bytes mean. OS facts, process lists and lookups, kernel modules and
//! symbols, kernel memory.

use std::ffi::{c_char, c_void};

use memflow_core::error::{Error, ErrorKind};
use memflow_core::instance::OsInstanceArcBox;
use memflow_core::mem::MemoryView;
use memflow_core::os::{Os, ProcessInfo};
use memflow_core::types::Address;

use crate::call::{buf_mut, buf_ref, callback_arg, ffi_err, guard, out_arg, str_arg};
use crate::handle::{self, impl_handle};
use crate::mem;
use crate::process::MfProcess;
use crate::records::{
    addr_in, addr_out, MfModuleInfo, MfModuleInfoCallback, MfOsInfo, MfProcessInfo, MfProcessInfoCallback,
};

/// An OS layer instance. Opaque; made by `mf_inventory_create_os`, `mf_inventory_create_chain`
/// or `mf_os_clone`; freed by `mf_os_free`.
///
/// It owns the connector below it (if any) and keeps its plugin libraries loaded; it does not
/// depend on the inventory or on any handle it was created from.
///
/// Threads: may be used from several threads at once; calls on it are serialised (see
/// "Threads" at the top of memflow.h).
pub struct MfOs {
    pub(crate) inner: OsInstanceArcBox<'static>,
}

/// A list of processes, as made by `mf_os_process_list`. Opaque; read it with
/// `mf_process_list_get`, free it with `mf_process_list_free`.
///
/// Threads: may be used from several threads at once; calls on it are serialised (see
/// "Threads" at the top of memflow.h).
pub struct MfProcessList {
    /// Owns the strings `items` point to.
    _infos: Vec<ProcessInfo>,
    items: Vec<MfProcessInfo>,
}

// SAFETY: the record pointers point into `_infos`, which the list owns and never changes;
// moving the list to another thread moves both.
unsafe impl Send for MfProcessList {}

impl_handle! {
    MfOs = 3;
    MfProcessList = 5;
}

impl MfOs {
    /// Registers an OS instance as a new handle for C.
    pub(crate) fn into_handle(inner: OsInstanceArcBox<'static>) -> Result<*mut Self, Error> {
        handle::into_raw(MfOs { inner })
    }
}

/// Makes an independent copy of `os` for use on another thread.
///
/// Ownership: `os` is borrowed. On success `*out` receives a new handle owned by the caller
/// (free it with `mf_os_free`).
#[no_mangle]
pub extern "C" fn mf_os_clone(os: *const MfOs, out: *mut *mut MfOs) -> i32 {
    guard(|| {
        let copy = handle::with(os, "os", |os| Ok(os.inner.clone()))?;
        let out = out_arg(out, "out")?;
        out.write(MfOs::into_handle(copy)?);
        Ok(())
    })
}

/// Frees an OS handle. NULL is a no-op (returns 0); anything that is not a live `MfOs`
/// returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `os`; it must not be used afterwards. Processes opened from it stay valid.
#[no_mangle]
pub extern "C" fn mf_os_free(os: *mut MfOs) -> i32 {
    handle::free(os)
}

/// Facts about the OS: kernel base and size, architecture.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_info(os: *const MfOs, out: *mut MfOsInfo) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let out = out_arg(out, "out")?;
            out.write(MfOsInfo::from(os.inner.info()));
            Ok(())
        })
    })
}

/// Calls `callback` with every process until it returns `false`. Processes that vanish while
/// listing are skipped.
///
/// Ownership: the record passed to `callback` and its strings are borrowed and valid only
/// during that call. `user` is passed through unchanged and stays owned by the caller.
#[no_mangle]
pub extern "C" fn mf_os_process_list_callback(
    os: *mut MfOs,
    callback: MfProcessInfoCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let cb = callback_arg(callback, "callback")?;
            os.inner.process_info_list_callback(|info| {
                let rec = MfProcessInfo::borrow(&info);
                // SAFETY: C callback with a record valid for the call, as documented.
                unsafe { cb(user, &rec) }
            })
        })
    })
}

/// Lists every process into a new list.
///
/// Ownership: on success `*out` receives a list owned by the caller; free it with
/// `mf_process_list_free`. The strings of its records belong to the list.
#[no_mangle]
pub extern "C" fn mf_os_process_list(os: *mut MfOs, out: *mut *mut MfProcessList) -> i32 {
    guard(|| {
        let infos = handle::with(os, "os", |os| {
            out_arg(out, "out")?;
            os.inner.process_info_list()
        })?;
        let items = infos.iter().map(MfProcessInfo::borrow).collect();
        out_arg(out, "out")?.write(handle::into_raw(MfProcessList { _infos: infos, items })?);
        Ok(())
    })
}

/// The records of a process list: `*out_items` receives a pointer to `*out_len` consecutive
/// records (NULL if the list is empty).
///
/// Ownership: the records and their strings are borrowed from `list` and valid until it is
/// freed. `*out_items` and `*out_len` are caller storage.
#[no_mangle]
pub extern "C" fn mf_process_list_get(
    list: *const MfProcessList,
    out_items: *mut *const MfProcessInfo,
    out_len: *mut usize,
) -> i32 {
    guard(|| {
        handle::with(list, "list", |list| {
            let items = out_arg(out_items, "out_items")?;
            let len = out_arg(out_len, "out_len")?;
            items.write(if list.items.is_empty() { std::ptr::null() } else { list.items.as_ptr() });
            len.write(list.items.len());
            Ok(())
        })
    })
}

/// Frees a process list. NULL is a no-op (returns 0); anything that is not a live
/// `MfProcessList` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `list`; its records and strings must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_process_list_free(list: *mut MfProcessList) -> i32 {
    handle::free(list)
}

/// Opens the process `find` looks up on `os`, into `*out`.
fn open(
    os: *mut MfOs,
    out: *mut *mut MfProcess,
    find: impl FnOnce(&mut MfOs) -> Result<ProcessInfo, Error>,
) -> Result<(), Error> {
    let process = handle::with(os, "os", |os| {
        out_arg(out, "out")?;
        let info = find(os)?;
        os.inner.process_by_info(info)
    })?;
    out_arg(out, "out")?.write(MfProcess::into_handle(process)?);
    Ok(())
}

/// Opens the process with id `pid`. Fails with kind `MF_KIND_NOT_FOUND` if there is none.
///
/// Ownership: on success `*out` receives a process handle owned by the caller (free it with
/// `mf_process_free`); it is independent of `os`.
#[no_mangle]
pub extern "C" fn mf_os_process_by_pid(os: *mut MfOs, pid: u32, out: *mut *mut MfProcess) -> i32 {
    guard(|| open(os, out, |os| os.inner.process_info_by_pid(pid)))
}

/// Opens the first process whose name is exactly `name`. Fails with kind `MF_KIND_NOT_FOUND`
/// if there is none.
///
/// Ownership: `name` is borrowed for the call. On success `*out` receives a process handle
/// owned by the caller (free it with `mf_process_free`).
#[no_mangle]
pub extern "C" fn mf_os_process_by_name(os: *mut MfOs, name: *const c_char, out: *mut *mut MfProcess) -> i32 {
    guard(|| {
        open(os, out, |os| {
            // SAFETY: C string argument, checked for NULL.
            let name = unsafe { str_arg(name, "name") }?;
            os.inner.process_info_by_name(name)
        })
    })
}

/// Opens the process whose OS handle (`MfProcessInfo::address`) is `address`.
///
/// Ownership: on success `*out` receives a process handle owned by the caller (free it with
/// `mf_process_free`).
#[no_mangle]
pub extern "C" fn mf_os_process_by_address(os: *mut MfOs, address: u64, out: *mut *mut MfProcess) -> i32 {
    guard(|| open(os, out, |os| os.inner.process_info_by_address(addr_in(address))))
}

/// Calls `callback` with every kernel module until it returns `false` (no calls for layers
/// without a kernel, like the native one). Modules that vanish while listing are skipped.
///
/// Ownership: the record passed to `callback` and its strings are borrowed and valid only
/// during that call. `user` is passed through unchanged.
#[no_mangle]
pub extern "C" fn mf_os_module_list_callback(os: *mut MfOs, callback: MfModuleInfoCallback, user: *mut c_void) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let cb = callback_arg(callback, "callback")?;
            let mut addrs: Vec<Address> = Vec::new();
            os.inner.module_address_list_callback((&mut addrs).into())?;
            for a in addrs {
                if let Ok(m) = os.inner.module_by_address(a) {
                    let rec = MfModuleInfo::borrow(&m);
                    // SAFETY: C callback with a record valid for the call, as documented.
                    if !unsafe { cb(user, &rec) } {
                        break;
                    }
                }
            }
            Ok(())
        })
    })
}

/// The address of the kernel symbol `name`, for layers that know kernel symbols (others
/// fail with kind `MF_KIND_UNSUPPORTED`).
///
/// Ownership: `name` is borrowed; `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_kernel_symbol(os: *mut MfOs, name: *const c_char, out: *mut u64) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            // SAFETY: C string argument, checked for NULL.
            let name = unsafe { str_arg(name, "name") }?;
            let out = out_arg(out, "out")?;
            out.write(addr_out(os.inner.kernel_symbol(name)?));
            Ok(())
        })
    })
}

/// Reads `len` bytes of the OS layer's own address space (the kernel's virtual memory) at
/// `addr`. Layers without one (like the native layer) fail with `MF_ERR_UNSUPPORTED`.
///
/// Returns 0, `MF_ERR_PARTIAL_READ` (unreadable bytes are zero), or another error code.
///
/// `*done` (if `done` is not NULL) receives how many bytes from the start of `buf` were read
/// before the first unreadable one: `len` with 0, less with `MF_ERR_PARTIAL_READ` (bytes after
/// the first unreadable one are still read where they can be), 0 with any other error.
///
/// Ownership: `buf` (at least `len` writable bytes; NULL if `len` is 0) is borrowed; `*done`
/// is caller storage.
#[no_mangle]
pub extern "C" fn mf_os_read(os: *mut MfOs, addr: u64, buf: *mut c_void, len: usize, done: *mut usize) -> i32 {
    mem::single(done, len, ErrorKind::PartialRead, || {
        handle::with(os, "os", |os| {
            let buf = buf_mut(buf.cast(), len, "buf")?;
            let view = os
                .inner
                .as_mut_impl_memoryview()
                .ok_or_else(|| ffi_err(ErrorKind::Unsupported, "this OS layer has no kernel address space"))?;
            view.read_single(addr_in(addr), buf)
        })
    })
}

/// Writes `len` bytes from `buf` into the OS layer's own address space at `addr`.
///
/// Returns 0, `MF_ERR_PARTIAL_WRITE`, `MF_ERR_UNSUPPORTED`, an error of kind
/// `MF_KIND_READ_ONLY` if the memory below is read-only, or another error code.
///
/// `*done` (if `done` is not NULL) receives how many bytes from the start of `buf` were
/// written before the first one that was not: `len` with 0, less with `MF_ERR_PARTIAL_WRITE`,
/// 0 with any other error.
///
/// Ownership: `buf` (at least `len` readable bytes; NULL if `len` is 0) is borrowed; `*done`
/// is caller storage.
#[no_mangle]
pub extern "C" fn mf_os_write(os: *mut MfOs, addr: u64, buf: *const c_void, len: usize, done: *mut usize) -> i32 {
    mem::single(done, len, ErrorKind::PartialWrite, || {
        handle::with(os, "os", |os| {
            let buf = buf_ref(buf.cast(), len, "buf")?;
            let view = os
                .inner
                .as_mut_impl_memoryview()
                .ok_or_else(|| ffi_err(ErrorKind::Unsupported, "this OS layer has no kernel address space"))?;
            view.write_single(addr_in(addr), buf)
        })
    })
}
