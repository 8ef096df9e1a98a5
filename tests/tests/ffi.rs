//! The C API (memflow-ffi): every exported function with NULL and with garbage handles gives
//! an error code and never crashes; the library exports only `mf_*` symbols and carries its
//! ABI version in the soname; the API works end to end from Rust; and a C program compiled
//! against the shared library and `include/` runs clean under valgrind (no leaks, no invalid
//! accesses).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeSet;
use std::ffi::{c_char, c_void, CStr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::{null, null_mut};

use memflow_ffi::*;
use memflow_tests::{build_dir, copy_into, repo_root, shipped, temp_dir, Fixture};

/// The shared library, built by `cargo build --workspace` (or as a dependency of this crate).
fn shared_lib() -> PathBuf {
    let path = build_dir().join("libmemflow_ffi.so");
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

fn fixture_dump() -> PathBuf {
    Fixture::load("cloud-4l").dir.join("dump.elf")
}

fn last_message() -> String {
    // SAFETY: the library returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(mf_last_error_message()) }.to_string_lossy().into_owned()
}

fn text(p: *const c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: strings handed out by the library are NUL-terminated.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// How the pointer arguments of a call are filled.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Mode {
    /// Every pointer argument (handles included) is NULL.
    AllNull,
    /// Live handles, every other pointer argument NULL.
    NullArgs,
    /// Handles point to readable garbage; other pointers are valid.
    Garbage,
}

/// What a function is, for the expected outcome.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Kind {
    /// Takes a handle: NULL -> MF_ERR_NULL, garbage -> MF_ERR_INVALID_HANDLE.
    Handle,
    /// A free function: NULL -> 0, garbage -> MF_ERR_INVALID_HANDLE.
    Free,
    /// No handle, but required pointers: NULL -> MF_ERR_NULL.
    NoHandle,
    /// Takes no pointer; checked by its own assertion in the call, which returns 0.
    Plain,
}

/// Live objects and storage the calls use.
struct Live {
    inv: *mut MfInventory,
    conn: *mut MfConnector,
    os: *mut MfOs,
    process: *mut MfProcess,
    plist: *mut MfProcessList,
    mlist: *mut MfModuleList,
    tlist: *mut MfThreadList,
    elist: *mut MfExportList,
    ilist: *mut MfImportList,
    slist: *mut MfSectionList,
    rlist: *mut MfMemoryRangeList,
    klist: *mut MfKernelSymbolList,
    /// The dummy OS: it has kernel modules, which the native OS has not.
    dummy: *mut MfOs,
    /// Zeroed storage for output arguments in garbage mode (never written: calls fail first).
    scratch: *mut u64,
    /// Readable garbage posing as a handle.
    garbage: *mut u64,
}

impl Live {
    fn new() -> Live {
        let mut inv = null_mut();
        assert_eq!(mf_inventory_builtin(&mut inv), 0);
        let mut conn = null_mut();
        let args = format!("'{}'\0", fixture_dump().display());
        assert_eq!(
            mf_inventory_create_connector(inv, c"coredump".as_ptr(), args.as_ptr().cast(), null(), &mut conn),
            0,
            "{}",
            last_message()
        );
        let mut os = null_mut();
        assert_eq!(mf_inventory_create_chain(inv, c"native".as_ptr(), &mut os), 0, "{}", last_message());
        let mut process = null_mut();
        assert_eq!(mf_os_process_by_pid(os, std::process::id(), &mut process), 0, "{}", last_message());
        let mut plist = null_mut();
        assert_eq!(mf_os_process_list(os, &mut plist), 0);
        let mut mlist = null_mut();
        assert_eq!(mf_process_module_list(process, &mut mlist), 0);
        let (mut items, mut len) = (null(), 0usize);
        assert_eq!(mf_module_list_get(mlist, &mut items, &mut len), 0);
        // SAFETY: `len` records at `items`, borrowed from the list.
        let modules = unsafe { std::slice::from_raw_parts(items, len) };
        let libc = modules.iter().find(|m| text(m.name).starts_with("libc")).expect("libc is mapped");
        let mut tlist = null_mut();
        assert_eq!(mf_process_thread_list(process, &mut tlist), 0, "{}", last_message());
        let (mut elist, mut ilist, mut slist, mut rlist) = (null_mut(), null_mut(), null_mut(), null_mut());
        assert_eq!(mf_process_module_export_list(process, libc, &mut elist), 0, "{}", last_message());
        assert_eq!(mf_process_module_import_list(process, libc, &mut ilist), 0, "{}", last_message());
        assert_eq!(mf_process_module_section_list(process, libc, &mut slist), 0, "{}", last_message());
        assert_eq!(mf_process_mapped_range_list(process, 0, 0, u64::MAX, &mut rlist), 0, "{}", last_message());
        let mut dummy = null_mut();
        assert_eq!(mf_inventory_create_chain(inv, c"dummy".as_ptr(), &mut dummy), 0, "{}", last_message());
        let mut klist = null_mut();
        assert_eq!(mf_os_kernel_symbol_list(dummy, &mut klist), 0, "{}", last_message());
        let scratch = Box::into_raw(vec![0u64; 2048].into_boxed_slice()).cast::<u64>();
        let garbage = Box::into_raw(vec![0xa5a5_a5a5_a5a5_a5a5u64; 256].into_boxed_slice()).cast::<u64>();
        Live { inv, conn, os, process, plist, mlist, tlist, elist, ilist, slist, rlist, klist, dummy, scratch, garbage }
    }

    /// A handle argument.
    fn h<T>(&self, live: *mut T, m: Mode) -> *mut T {
        match m {
            Mode::AllNull => null_mut(),
            Mode::NullArgs => live,
            Mode::Garbage => self.garbage.cast(),
        }
    }

    /// Any other pointer argument.
    fn p<T>(&self, m: Mode) -> *mut T {
        match m {
            Mode::Garbage => self.scratch.cast(),
            _ => null_mut(),
        }
    }

    /// A string argument.
    fn s(&self, m: Mode) -> *const c_char {
        match m {
            Mode::Garbage => c"x".as_ptr(),
            _ => null(),
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        assert_eq!(mf_kernel_symbol_list_free(self.klist), 0);
        assert_eq!(mf_memory_range_list_free(self.rlist), 0);
        assert_eq!(mf_section_list_free(self.slist), 0);
        assert_eq!(mf_import_list_free(self.ilist), 0);
        assert_eq!(mf_export_list_free(self.elist), 0);
        assert_eq!(mf_os_free(self.dummy), 0);
        assert_eq!(mf_thread_list_free(self.tlist), 0);
        assert_eq!(mf_module_list_free(self.mlist), 0);
        assert_eq!(mf_process_list_free(self.plist), 0);
        assert_eq!(mf_process_free(self.process), 0);
        assert_eq!(mf_os_free(self.os), 0);
        assert_eq!(mf_connector_free(self.conn), 0);
        assert_eq!(mf_inventory_free(self.inv), 0);
        // SAFETY: made by Box::into_raw above with these lengths.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.scratch, 2048)));
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.garbage, 256)));
        }
    }
}

/// A callback of any record type, for the garbage mode (never called).
unsafe extern "C" fn any_cb<R>(_: *mut c_void, _: *const R) -> bool {
    true
}

fn cb<R>(m: Mode) -> Option<unsafe extern "C" fn(*mut c_void, *const R) -> bool> {
    match m {
        Mode::Garbage => Some(any_cb::<R>),
        _ => None,
    }
}

type Call = Box<dyn Fn(&Live, Mode) -> i32>;

/// Every exported function, with a call that fills its arguments according to the mode.
fn table() -> Vec<(&'static str, Kind, Call)> {
    use Kind::*;
    let plain = |f: fn() -> bool| -> Call { Box::new(move |_, _| if f() { 0 } else { -1 }) };
    vec![
        // error
        (
            "mf_error_string",
            Plain,
            plain(|| {
                text(mf_error_string(MF_ERR_NULL)) == "c api: null pointer"
                    && text(mf_error_string(0)) == "ok"
                    && !mf_error_string(i32::MIN).is_null()
            }),
        ),
        ("mf_last_error_message", Plain, plain(|| !mf_last_error_message().is_null())),
        ("mf_last_error_code", Plain, plain(|| mf_last_error_code() <= 0)),
        ("mf_last_error_copy", Plain, plain(|| mf_last_error_copy(std::ptr::null_mut(), 0) == last_message().len())),
        (
            "mf_error_kind",
            Plain,
            plain(|| mf_error_kind(MF_ERR_INVALID_HANDLE) == MF_KIND_INVALID_HANDLE && mf_error_kind(5) == 0),
        ),
        (
            "mf_error_origin",
            Plain,
            plain(|| mf_error_origin(MF_ERR_PARTIAL_READ) == MF_ORIGIN_MEMORY && mf_error_origin(0) == 0),
        ),
        // version
        ("mf_version", Plain, plain(|| text(mf_version()) == env!("CARGO_PKG_VERSION"))),
        ("mf_abi_version", Plain, plain(|| mf_abi_version() == MF_ABI_VERSION)),
        ("mf_plugin_abi_version", Plain, plain(|| mf_plugin_abi_version() == memflow_core::plugins::ABI_VERSION)),
        // log
        ("mf_log_init", Plain, plain(|| mf_log_init(99) == MF_ERR_INVALID_ARGUMENT)),
        ("mf_log_set_level", Plain, plain(|| mf_log_set_level(6) == MF_ERR_INVALID_ARGUMENT)),
        ("mf_log_level", Plain, plain(|| mf_log_level() <= MF_LOG_TRACE)),
        ("mf_log_set_callback", Plain, plain(|| mf_log_set_callback(None, null_mut()) == 0)),
        // inventory
        ("mf_inventory_scan", NoHandle, Box::new(|l, m| mf_inventory_scan(l.p(m)))),
        ("mf_inventory_builtin", NoHandle, Box::new(|l, m| mf_inventory_builtin(l.p(m)))),
        ("mf_inventory_add_dir", Handle, Box::new(|l, m| mf_inventory_add_dir(l.h(l.inv, m), l.s(m), l.p(m)))),
        ("mf_inventory_refused_count", Handle, Box::new(|l, m| mf_inventory_refused_count(l.h(l.inv, m), l.p(m)))),
        ("mf_inventory_refused_at", Handle, Box::new(|l, m| mf_inventory_refused_at(l.h(l.inv, m), 0, l.p(m)))),
        ("mf_inventory_add_file", Handle, Box::new(|l, m| mf_inventory_add_file(l.h(l.inv, m), l.s(m)))),
        ("mf_inventory_plugin_count", Handle, Box::new(|l, m| mf_inventory_plugin_count(l.h(l.inv, m), l.p(m)))),
        ("mf_inventory_plugin_at", Handle, Box::new(|l, m| mf_inventory_plugin_at(l.h(l.inv, m), 0, l.p(m)))),
        (
            "mf_inventory_create_connector",
            Handle,
            Box::new(|l, m| mf_inventory_create_connector(l.h(l.inv, m), l.s(m), null(), null(), l.p(m))),
        ),
        (
            "mf_inventory_create_os",
            Handle,
            Box::new(|l, m| mf_inventory_create_os(l.h(l.inv, m), l.s(m), null(), null(), l.p(m))),
        ),
        (
            "mf_inventory_create_chain",
            Handle,
            Box::new(|l, m| mf_inventory_create_chain(l.h(l.inv, m), l.s(m), l.p(m))),
        ),
        (
            "mf_inventory_create_connector_chain",
            Handle,
            Box::new(|l, m| mf_inventory_create_connector_chain(l.h(l.inv, m), l.s(m), l.p(m))),
        ),
        ("mf_inventory_free", Free, Box::new(|l, m| mf_inventory_free(l.h(null_mut(), m)))),
        // connector
        ("mf_connector_clone", Handle, Box::new(|l, m| mf_connector_clone(l.h(l.conn, m), l.p(m)))),
        ("mf_connector_free", Free, Box::new(|l, m| mf_connector_free(l.h(null_mut(), m)))),
        (
            "mf_connector_read",
            Handle,
            Box::new(|l, m| mf_connector_read(l.h(l.conn, m), 0x1000, l.p(m), 16, null_mut())),
        ),
        (
            "mf_connector_write",
            Handle,
            Box::new(|l, m| mf_connector_write(l.h(l.conn, m), 0x1000, l.p(m), 16, null_mut())),
        ),
        ("mf_connector_read_batch", Handle, Box::new(|l, m| mf_connector_read_batch(l.h(l.conn, m), l.p(m), 1))),
        ("mf_connector_write_batch", Handle, Box::new(|l, m| mf_connector_write_batch(l.h(l.conn, m), l.p(m), 1))),
        ("mf_connector_metadata", Handle, Box::new(|l, m| mf_connector_metadata(l.h(l.conn, m), l.p(m)))),
        ("mf_connector_cpu_count", Handle, Box::new(|l, m| mf_connector_cpu_count(l.h(l.conn, m), l.p(m)))),
        ("mf_connector_x86_registers", Handle, Box::new(|l, m| mf_connector_x86_registers(l.h(l.conn, m), 0, l.p(m)))),
        (
            "mf_connector_aarch64_registers",
            Handle,
            Box::new(|l, m| mf_connector_aarch64_registers(l.h(l.conn, m), 0, l.p(m))),
        ),
        (
            "mf_connector_riscv_registers",
            Handle,
            Box::new(|l, m| mf_connector_riscv_registers(l.h(l.conn, m), 0, l.p(m))),
        ),
        // dump files
        (
            "mf_dump_write",
            Handle,
            Box::new(|l, m| mf_dump_write(l.h(l.conn, m), l.s(m), l.p(m), None, null_mut(), l.p(m))),
        ),
        (
            "mf_os_dump_write",
            Handle,
            Box::new(|l, m| mf_os_dump_write(l.h(l.os, m), l.s(m), l.p(m), None, null_mut(), l.p(m))),
        ),
        // os
        ("mf_os_clone", Handle, Box::new(|l, m| mf_os_clone(l.h(l.os, m), l.p(m)))),
        ("mf_os_free", Free, Box::new(|l, m| mf_os_free(l.h(null_mut(), m)))),
        ("mf_os_info", Handle, Box::new(|l, m| mf_os_info(l.h(l.os, m), l.p(m)))),
        (
            "mf_os_process_list_callback",
            Handle,
            Box::new(|l, m| mf_os_process_list_callback(l.h(l.os, m), cb(m), null_mut())),
        ),
        ("mf_os_process_list", Handle, Box::new(|l, m| mf_os_process_list(l.h(l.os, m), l.p(m)))),
        ("mf_process_list_get", Handle, Box::new(|l, m| mf_process_list_get(l.h(l.plist, m), l.p(m), l.p(m)))),
        ("mf_process_list_free", Free, Box::new(|l, m| mf_process_list_free(l.h(null_mut(), m)))),
        ("mf_os_process_by_pid", Handle, Box::new(|l, m| mf_os_process_by_pid(l.h(l.os, m), 1, l.p(m)))),
        ("mf_os_process_by_name", Handle, Box::new(|l, m| mf_os_process_by_name(l.h(l.os, m), l.s(m), l.p(m)))),
        ("mf_os_process_by_address", Handle, Box::new(|l, m| mf_os_process_by_address(l.h(l.os, m), 1, l.p(m)))),
        (
            "mf_os_module_list_callback",
            Handle,
            Box::new(|l, m| mf_os_module_list_callback(l.h(l.os, m), cb(m), null_mut())),
        ),
        ("mf_os_kernel_symbol", Handle, Box::new(|l, m| mf_os_kernel_symbol(l.h(l.os, m), l.s(m), l.p(m)))),
        // kernel
        ("mf_os_kernel_module_list", Handle, Box::new(|l, m| mf_os_kernel_module_list(l.h(l.dummy, m), l.p(m)))),
        (
            "mf_os_kernel_module_by_name",
            Handle,
            Box::new(|l, m| mf_os_kernel_module_by_name(l.h(l.dummy, m), l.s(m), l.p(m))),
        ),
        (
            "mf_os_kernel_module_by_address",
            Handle,
            Box::new(|l, m| mf_os_kernel_module_by_address(l.h(l.dummy, m), 0, l.p(m))),
        ),
        (
            "mf_os_kernel_module_exports",
            Handle,
            Box::new(|l, m| mf_os_kernel_module_exports(l.h(l.dummy, m), l.p(m), cb(m), null_mut())),
        ),
        (
            "mf_os_kernel_module_export_list",
            Handle,
            Box::new(|l, m| mf_os_kernel_module_export_list(l.h(l.dummy, m), l.p(m), l.p(m))),
        ),
        (
            "mf_os_kernel_module_sections",
            Handle,
            Box::new(|l, m| mf_os_kernel_module_sections(l.h(l.dummy, m), l.p(m), cb(m), null_mut())),
        ),
        (
            "mf_os_kernel_module_section_list",
            Handle,
            Box::new(|l, m| mf_os_kernel_module_section_list(l.h(l.dummy, m), l.p(m), l.p(m))),
        ),
        (
            "mf_os_kernel_symbol_by_address",
            Handle,
            Box::new(|l, m| mf_os_kernel_symbol_by_address(l.h(l.dummy, m), 0, l.p(m), 16, l.p(m), l.p(m))),
        ),
        (
            "mf_os_kernel_symbol_list_callback",
            Handle,
            Box::new(|l, m| mf_os_kernel_symbol_list_callback(l.h(l.dummy, m), cb(m), null_mut())),
        ),
        ("mf_os_kernel_symbol_list", Handle, Box::new(|l, m| mf_os_kernel_symbol_list(l.h(l.dummy, m), l.p(m)))),
        ("mf_os_type_offset", Handle, Box::new(|l, m| mf_os_type_offset(l.h(l.dummy, m), l.s(m), l.s(m), l.p(m)))),
        ("mf_os_type_size", Handle, Box::new(|l, m| mf_os_type_size(l.h(l.dummy, m), l.s(m), l.p(m)))),
        ("mf_os_read", Handle, Box::new(|l, m| mf_os_read(l.h(l.os, m), 0x1000, l.p(m), 16, null_mut()))),
        ("mf_os_write", Handle, Box::new(|l, m| mf_os_write(l.h(l.os, m), 0x1000, l.p(m), 16, null_mut()))),
        (
            "mf_os_process_list_by_name",
            Handle,
            Box::new(|l, m| mf_os_process_list_by_name(l.h(l.os, m), l.s(m), l.p(m))),
        ),
        ("mf_os_virt_to_phys", Handle, Box::new(|l, m| mf_os_virt_to_phys(l.h(l.os, m), 0x1000, l.p(m)))),
        ("mf_os_virt_to_phys_batch", Handle, Box::new(|l, m| mf_os_virt_to_phys_batch(l.h(l.os, m), l.p(m), 1))),
        (
            "mf_os_page_map_callback",
            Handle,
            Box::new(|l, m| mf_os_page_map_callback(l.h(l.os, m), 0, 0, u64::MAX, cb(m), null_mut())),
        ),
        ("mf_os_page_map", Handle, Box::new(|l, m| mf_os_page_map(l.h(l.os, m), 0, 0, u64::MAX, l.p(m)))),
        ("mf_os_phys_read", Handle, Box::new(|l, m| mf_os_phys_read(l.h(l.os, m), 0x1000, l.p(m), 16, null_mut()))),
        ("mf_os_phys_write", Handle, Box::new(|l, m| mf_os_phys_write(l.h(l.os, m), 0x1000, l.p(m), 16, null_mut()))),
        ("mf_os_phys_read_batch", Handle, Box::new(|l, m| mf_os_phys_read_batch(l.h(l.os, m), l.p(m), 1))),
        ("mf_os_phys_write_batch", Handle, Box::new(|l, m| mf_os_phys_write_batch(l.h(l.os, m), l.p(m), 1))),
        ("mf_os_phys_metadata", Handle, Box::new(|l, m| mf_os_phys_metadata(l.h(l.os, m), l.p(m)))),
        ("mf_os_cpu_count", Handle, Box::new(|l, m| mf_os_cpu_count(l.h(l.os, m), l.p(m)))),
        ("mf_os_x86_registers", Handle, Box::new(|l, m| mf_os_x86_registers(l.h(l.os, m), 0, l.p(m)))),
        ("mf_os_aarch64_registers", Handle, Box::new(|l, m| mf_os_aarch64_registers(l.h(l.os, m), 0, l.p(m)))),
        ("mf_os_riscv_registers", Handle, Box::new(|l, m| mf_os_riscv_registers(l.h(l.os, m), 0, l.p(m)))),
        // process
        ("mf_process_clone", Handle, Box::new(|l, m| mf_process_clone(l.h(l.process, m), l.p(m)))),
        ("mf_process_free", Free, Box::new(|l, m| mf_process_free(l.h(null_mut(), m)))),
        ("mf_process_info", Handle, Box::new(|l, m| mf_process_info(l.h(l.process, m), l.p(m)))),
        ("mf_process_state", Handle, Box::new(|l, m| mf_process_state(l.h(l.process, m), l.p(m)))),
        (
            "mf_process_read",
            Handle,
            Box::new(|l, m| mf_process_read(l.h(l.process, m), 0x1000, l.p(m), 16, null_mut())),
        ),
        (
            "mf_process_write",
            Handle,
            Box::new(|l, m| mf_process_write(l.h(l.process, m), 0x1000, l.p(m), 16, null_mut())),
        ),
        ("mf_process_read_batch", Handle, Box::new(|l, m| mf_process_read_batch(l.h(l.process, m), l.p(m), 1))),
        ("mf_process_write_batch", Handle, Box::new(|l, m| mf_process_write_batch(l.h(l.process, m), l.p(m), 1))),
        (
            "mf_process_module_list_callback",
            Handle,
            Box::new(|l, m| mf_process_module_list_callback(l.h(l.process, m), cb(m), null_mut())),
        ),
        ("mf_process_module_list", Handle, Box::new(|l, m| mf_process_module_list(l.h(l.process, m), l.p(m)))),
        ("mf_module_list_get", Handle, Box::new(|l, m| mf_module_list_get(l.h(l.mlist, m), l.p(m), l.p(m)))),
        ("mf_module_list_free", Free, Box::new(|l, m| mf_module_list_free(l.h(null_mut(), m)))),
        ("mf_process_thread_list", Handle, Box::new(|l, m| mf_process_thread_list(l.h(l.process, m), l.p(m)))),
        ("mf_thread_list_get", Handle, Box::new(|l, m| mf_thread_list_get(l.h(l.tlist, m), l.p(m), l.p(m)))),
        ("mf_thread_list_free", Free, Box::new(|l, m| mf_thread_list_free(l.h(null_mut(), m)))),
        (
            "mf_process_module_by_name",
            Handle,
            Box::new(|l, m| mf_process_module_by_name(l.h(l.process, m), l.s(m), l.p(m))),
        ),
        ("mf_process_primary_module", Handle, Box::new(|l, m| mf_process_primary_module(l.h(l.process, m), l.p(m)))),
        (
            "mf_process_module_exports",
            Handle,
            Box::new(|l, m| mf_process_module_exports(l.h(l.process, m), l.p(m), cb(m), null_mut())),
        ),
        (
            "mf_process_module_imports",
            Handle,
            Box::new(|l, m| mf_process_module_imports(l.h(l.process, m), l.p(m), cb(m), null_mut())),
        ),
        (
            "mf_process_module_sections",
            Handle,
            Box::new(|l, m| mf_process_module_sections(l.h(l.process, m), l.p(m), cb(m), null_mut())),
        ),
        (
            "mf_process_export_address",
            Handle,
            Box::new(|l, m| mf_process_export_address(l.h(l.process, m), l.p(m), l.s(m), l.p(m))),
        ),
        (
            "mf_process_mapped_ranges",
            Handle,
            Box::new(|l, m| mf_process_mapped_ranges(l.h(l.process, m), 0, 0, u64::MAX, cb(m), null_mut())),
        ),
        (
            "mf_process_module_export_list",
            Handle,
            Box::new(|l, m| mf_process_module_export_list(l.h(l.process, m), l.p(m), l.p(m))),
        ),
        (
            "mf_process_module_import_list",
            Handle,
            Box::new(|l, m| mf_process_module_import_list(l.h(l.process, m), l.p(m), l.p(m))),
        ),
        (
            "mf_process_module_section_list",
            Handle,
            Box::new(|l, m| mf_process_module_section_list(l.h(l.process, m), l.p(m), l.p(m))),
        ),
        (
            "mf_process_mapped_range_list",
            Handle,
            Box::new(|l, m| mf_process_mapped_range_list(l.h(l.process, m), 0, 0, u64::MAX, l.p(m))),
        ),
        (
            "mf_process_virt_to_phys",
            Handle,
            Box::new(|l, m| mf_process_virt_to_phys(l.h(l.process, m), 0x1000, l.p(m))),
        ),
        (
            "mf_process_virt_to_phys_batch",
            Handle,
            Box::new(|l, m| mf_process_virt_to_phys_batch(l.h(l.process, m), l.p(m), 1)),
        ),
        (
            "mf_process_page_map_callback",
            Handle,
            Box::new(|l, m| mf_process_page_map_callback(l.h(l.process, m), 0, 0, u64::MAX, cb(m), null_mut())),
        ),
        (
            "mf_process_page_map",
            Handle,
            Box::new(|l, m| mf_process_page_map(l.h(l.process, m), 0, 0, u64::MAX, l.p(m))),
        ),
        // lists
        ("mf_export_list_get", Handle, Box::new(|l, m| mf_export_list_get(l.h(l.elist, m), l.p(m), l.p(m)))),
        ("mf_export_list_free", Free, Box::new(|l, m| mf_export_list_free(l.h(null_mut(), m)))),
        ("mf_import_list_get", Handle, Box::new(|l, m| mf_import_list_get(l.h(l.ilist, m), l.p(m), l.p(m)))),
        ("mf_import_list_free", Free, Box::new(|l, m| mf_import_list_free(l.h(null_mut(), m)))),
        ("mf_section_list_get", Handle, Box::new(|l, m| mf_section_list_get(l.h(l.slist, m), l.p(m), l.p(m)))),
        ("mf_section_list_free", Free, Box::new(|l, m| mf_section_list_free(l.h(null_mut(), m)))),
        (
            "mf_memory_range_list_get",
            Handle,
            Box::new(|l, m| mf_memory_range_list_get(l.h(l.rlist, m), l.p(m), l.p(m))),
        ),
        ("mf_memory_range_list_free", Free, Box::new(|l, m| mf_memory_range_list_free(l.h(null_mut(), m)))),
        (
            "mf_kernel_symbol_list_get",
            Handle,
            Box::new(|l, m| mf_kernel_symbol_list_get(l.h(l.klist, m), l.p(m), l.p(m))),
        ),
        ("mf_kernel_symbol_list_free", Free, Box::new(|l, m| mf_kernel_symbol_list_free(l.h(null_mut(), m)))),
    ]
}

/// The dynamic symbols the shared library defines.
fn exported_symbols() -> BTreeSet<String> {
    let out = Command::new("nm").args(["-D", "--defined-only"]).arg(shared_lib()).output().expect("run nm");
    assert!(out.status.success(), "nm failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(str::to_string)
        .collect()
}

/// The functions `include/memflow.h` declares.
fn header_functions() -> BTreeSet<String> {
    let header = std::fs::read_to_string(repo_root().join("include/memflow.h")).expect("include/memflow.h");
    let mut names = BTreeSet::new();
    for line in header.lines().filter(|l| !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with("typedef")) {
        if let Some(at) = line.find("mf_") {
            let name: String = line[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if line[at + name.len()..].starts_with('(') {
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn only_mf_functions_are_exported_and_all_are_covered() {
    let exported = exported_symbols();
    let foreign: Vec<&String> =
        exported.iter().filter(|s| !s.starts_with("mf_") && !s.starts_with("MEMFLOW_PLUGIN")).collect();
    assert!(foreign.is_empty(), "symbols exported besides mf_*: {foreign:?}");
    let covered: BTreeSet<String> = table().iter().map(|(n, _, _)| n.to_string()).collect();
    assert_eq!(exported, covered, "the NULL/garbage table must cover exactly the exported functions");
    assert_eq!(header_functions(), exported, "include/memflow.h must declare exactly the exported functions");
}

/// The descriptor macros of `memflow.h` are the host's values.
#[test]
fn header_plugin_macros_match_the_host() {
    let header = std::fs::read_to_string(repo_root().join("include/memflow.h")).expect("include/memflow.h");
    let define = |name: &str| -> String {
        let prefix = format!("#define {name} ");
        let line = header.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
        line.unwrap_or_else(|| panic!("no {name} in memflow.h")).trim().to_string()
    };
    let magic = memflow_core::plugins::PLUGIN_MAGIC;
    assert_eq!(magic.last(), Some(&0), "the C string literal's NUL is the last magic byte");
    assert_eq!(define("MF_PLUGIN_MAGIC"), format!("\"{}\"", String::from_utf8_lossy(&magic[..magic.len() - 1])));
    assert_eq!(define("MF_PLUGIN_SYMBOL"), format!("\"{}\"", memflow_core::plugins::PLUGIN_SYMBOL));
}

#[test]
fn soname_carries_the_abi_version() {
    let out = Command::new("readelf").arg("-d").arg(shared_lib()).output().expect("run readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("[libmemflow_ffi.so.{MF_ABI_VERSION}]");
    assert!(text.lines().any(|l| l.contains("SONAME") && l.contains(&want)), "no soname {want} in:\n{text}");
    assert!(build_dir().join("libmemflow_ffi.a").exists(), "the static library is built too");
}

#[test]
fn every_function_rejects_null_and_garbage_without_crashing() {
    let live = Live::new();
    let mut failures = Vec::new();
    for (name, kind, call) in table() {
        let modes: &[(Mode, i32)] = match kind {
            Kind::Plain => &[(Mode::AllNull, 0)],
            Kind::NoHandle => &[(Mode::AllNull, MF_ERR_NULL)],
            Kind::Free => &[(Mode::AllNull, 0), (Mode::Garbage, MF_ERR_INVALID_HANDLE)],
            Kind::Handle => {
                &[(Mode::AllNull, MF_ERR_NULL), (Mode::NullArgs, MF_ERR_NULL), (Mode::Garbage, MF_ERR_INVALID_HANDLE)]
            }
        };
        for &(mode, want) in modes {
            let got = call(&live, mode);
            if got != want {
                failures.push(format!("{name} {mode:?}: got {got} ({}), want {want}", last_message()));
            } else if got < 0 && (mf_last_error_code() != got || last_message().is_empty()) {
                failures.push(format!("{name} {mode:?}: last error not recorded"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The live objects are still usable after all that.
    let mut buf = [0u8; 8];
    assert_eq!(mf_connector_read(live.conn, 0x1000, buf.as_mut_ptr().cast(), 8, null_mut()), 0);
}

#[test]
fn handles_of_another_type_and_freed_handles_are_rejected() {
    let live = Live::new();
    // Type confusion: an inventory passed as an OS, a connector as a process.
    let mut info = MfOsInfo::default();
    assert_eq!(mf_os_info(live.inv.cast(), &mut info), MF_ERR_INVALID_HANDLE);
    assert!(last_message().contains("MfOs"), "{}", last_message());
    assert_eq!(mf_process_free(live.conn.cast()), MF_ERR_INVALID_HANDLE);
    assert_eq!(mf_connector_free(live.os.cast()), MF_ERR_INVALID_HANDLE);
    // Misaligned pointers.
    let odd = (live.garbage as usize + 1) as *mut MfConnector;
    assert_eq!(mf_connector_free(odd), MF_ERR_INVALID_HANDLE);

    // A second free of the same list is recognised, also after a new list took its place.
    let mut list = null_mut();
    assert_eq!(mf_os_process_list(live.os, &mut list), 0);
    assert_eq!(mf_process_list_free(list), 0);
    assert_eq!(mf_process_list_free(list), MF_ERR_INVALID_HANDLE);
    let newer: Vec<_> = (0..32)
        .map(|_| {
            let mut l = null_mut();
            assert_eq!(mf_os_process_list(live.os, &mut l), 0);
            l
        })
        .collect();
    assert!(!newer.contains(&list), "a freed handle's value is never handed out again");
    assert_eq!(mf_process_list_free(list), MF_ERR_INVALID_HANDLE);
    assert!(last_message().contains("already freed"), "{}", last_message());
    for l in newer {
        assert_eq!(mf_process_list_free(l), 0);
    }
}

#[test]
fn errors_carry_detail_on_the_failing_thread() {
    let mut inv = null_mut();
    assert_eq!(mf_inventory_builtin(&mut inv), 0);
    let mut os = null_mut();
    let code = mf_inventory_create_os(inv, c"linx-typo".as_ptr(), null(), null(), &mut os);
    assert_eq!(mf_error_kind(code), MF_KIND_NOT_FOUND);
    assert_eq!(mf_error_origin(code), MF_ORIGIN_INVENTORY);
    assert!(os.is_null());
    let message = last_message();
    assert!(message.starts_with("inventory: not found: "), "{message}");
    assert!(
        message.contains("linx-typo") && message.contains("native"),
        "detail names the plugin and the known ones: {message}"
    );
    assert_eq!(mf_last_error_code(), code);
    // Successful calls leave the message alone; another thread has its own.
    let mut count = 0usize;
    assert_eq!(mf_inventory_plugin_count(inv, &mut count), 0);
    assert_eq!(last_message(), message);
    let other = std::thread::spawn(|| (mf_last_error_code(), last_message())).join().unwrap();
    assert_eq!(other, (0, String::new()));
    // Argument errors name the argument.
    assert_eq!(mf_inventory_create_chain(inv, null(), &mut os), MF_ERR_NULL);
    assert!(last_message().contains("`chain`"), "{}", last_message());
    assert_eq!(
        mf_inventory_create_chain(inv, c"coredump:/nonexistent/dump.elf".as_ptr(), &mut os),
        mf_last_error_code()
    );
    assert!(last_message().contains("/nonexistent/dump.elf"), "plugin detail: {}", last_message());
    let bad_utf8 = [0xffu8, 0xfe, 0];
    assert_eq!(mf_inventory_create_chain(inv, bad_utf8.as_ptr().cast(), &mut os), MF_ERR_ENCODING);
    assert_eq!(mf_inventory_free(inv), 0);
}

#[test]
fn refused_plugin_files_are_listed_with_the_reason() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("ffi-refused");
    let writable = copy_into(&dir, &shipped("dummy"), "libwritable.so");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut inv = null_mut();
    assert_eq!(mf_inventory_builtin(&mut inv), 0);
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    let mut added = usize::MAX;
    assert_eq!(mf_inventory_add_dir(inv, path.as_ptr(), &mut added), 0);
    assert_eq!(added, 0);
    let mut count = 0;
    assert_eq!(mf_inventory_refused_count(inv, &mut count), 0);
    assert_eq!(count, 1);
    let mut refused = MfRefusedFile { path: null(), code: 0, reason: null() };
    assert_eq!(mf_inventory_refused_at(inv, 0, &mut refused), 0);
    assert_eq!(text(refused.path), writable.to_str().unwrap());
    assert_eq!(mf_error_kind(refused.code), MF_KIND_PERMISSION_DENIED);
    assert!(text(refused.reason).contains("libwritable.so"), "{}", text(refused.reason));
    assert_eq!(mf_inventory_refused_at(inv, 1, &mut refused), MF_ERR_INVALID_ARGUMENT);
    assert_eq!(mf_inventory_free(inv), 0);
}

unsafe extern "C" fn collect_log(user: *mut c_void, record: *const MfLogRecord) {
    let out = &*(user as *const std::sync::Mutex<Vec<(u32, String)>>);
    let record = &*record;
    out.lock().unwrap().push((record.level, text(record.message)));
}

#[test]
fn logging_init_is_idempotent_and_callbacks_get_records() {
    assert_eq!(mf_log_init(MF_LOG_WARN), 0);
    assert_eq!(mf_log_init(MF_LOG_INFO), 0, "a second init must not fail or abort");
    assert_eq!(mf_log_level(), MF_LOG_INFO);
    let records: &'static std::sync::Mutex<Vec<(u32, String)>> = Box::leak(Box::default());
    assert_eq!(mf_log_set_callback(Some(collect_log), records as *const _ as *mut c_void), 0);
    let mut inv = null_mut();
    assert_eq!(mf_inventory_builtin(&mut inv), 0);
    let mut os = null_mut();
    // A returned error is not also warned about; its reason is in the message and, at debug
    // level, in the log.
    assert!(mf_inventory_create_os(inv, c"log-probe-quiet".as_ptr(), null(), null(), &mut os) < 0);
    assert!(last_message().contains("log-probe-quiet"), "{}", last_message());
    assert_eq!(mf_log_set_level(MF_LOG_DEBUG), 0);
    assert!(mf_inventory_create_os(inv, c"log-probe-missing".as_ptr(), null(), null(), &mut os) < 0);
    assert_eq!(mf_log_set_callback(None, null_mut()), 0);
    assert_eq!(mf_log_set_level(MF_LOG_OFF), 0);
    assert_eq!(mf_inventory_free(inv), 0);
    let records = records.lock().unwrap();
    assert!(
        !records.iter().any(|(_, m)| m.contains("log-probe-quiet")),
        "no warning for a returned error: {records:?}"
    );
    assert!(
        records.iter().any(|(level, m)| *level == MF_LOG_DEBUG && m.contains("log-probe-missing")),
        "the reason reached the callback: {records:?}"
    );
}

unsafe extern "C" fn count_processes(user: *mut c_void, info: *const MfProcessInfo) -> bool {
    let info = &*info;
    assert!(!info.name.is_null() && !info.path.is_null() && !info.command_line.is_null());
    *(user as *mut usize) += 1;
    true
}

unsafe extern "C" fn stop_at_first(user: *mut c_void, _: *const MfModuleInfo) -> bool {
    *(user as *mut usize) += 1;
    false
}

#[test]
fn api_works_end_to_end_from_rust() {
    let live = Live::new();
    // Plugins are listed with borrowed strings.
    let mut count = 0usize;
    assert_eq!(mf_inventory_plugin_count(live.inv, &mut count), 0);
    let names: Vec<String> = (0..count)
        .map(|i| {
            let mut p = std::mem::MaybeUninit::<MfPluginInfo>::uninit();
            assert_eq!(mf_inventory_plugin_at(live.inv, i, p.as_mut_ptr()), 0);
            // SAFETY: written on success.
            text(unsafe { p.assume_init() }.name)
        })
        .collect();
    assert!(names.contains(&"coredump".to_string()) && names.contains(&"native".to_string()), "{names:?}");

    // Physical reads: full, partial past the end, batched; byte counts; the dump is read-only.
    let mut meta = MfPhysicalMetadata::default();
    assert_eq!(mf_connector_metadata(live.conn, &mut meta), 0);
    let mut buf = [0xffu8; 32];
    let mut done = usize::MAX;
    let end = meta.max_address - 15;
    assert_eq!(mf_connector_read(live.conn, end, buf.as_mut_ptr().cast(), 32, &mut done), MF_ERR_PARTIAL_READ);
    assert!(buf[16..].iter().all(|&b| b == 0), "unreadable bytes are zeroed");
    assert_eq!(done, 16, "the bytes before the end of memory");
    assert_eq!(mf_connector_read(live.conn, 0x1000, buf.as_mut_ptr().cast(), 32, &mut done), 0);
    assert_eq!(done, 32);
    assert_eq!(mf_connector_read(live.conn, 0, null_mut(), 0, null_mut()), 0, "empty reads need no buffer");
    assert!(meta.readonly);
    let code = mf_connector_write(live.conn, 0x1000, buf.as_ptr().cast(), 8, &mut done);
    assert_eq!((mf_error_kind(code), done), (MF_KIND_READ_ONLY, 0), "{}", last_message());
    let mut write_ops = [MfWriteOp { addr: 0x1000, buf: buf.as_ptr().cast(), len: 8, result: 1, done: 1 }];
    assert_eq!(mf_error_kind(mf_connector_write_batch(live.conn, write_ops.as_mut_ptr(), 1)), MF_KIND_READ_ONLY);
    assert_eq!((write_ops[0].result, write_ops[0].done), (1, 1), "untouched when the batch fails as a whole");
    let mut regs = MfX86Registers::default();
    assert_eq!(mf_connector_x86_registers(live.conn, 0, &mut regs), 0);
    assert!(regs.cr3 != 0 && regs.page_table_root != 0);

    // Processes and modules of this very process.
    let mut n = 0usize;
    assert_eq!(mf_os_process_list_callback(live.os, Some(count_processes), (&mut n as *mut usize).cast()), 0);
    assert!(n > 1);
    let mut first = 0usize;
    assert_eq!(
        mf_process_module_list_callback(live.process, Some(stop_at_first), (&mut first as *mut usize).cast()),
        0
    );
    assert_eq!(first, 1, "returning false stops the listing");
    let marker: u64 = 0x1234_5678_9abc_def0;
    let mut value = 0u64;
    let addr = &marker as *const u64 as u64;
    assert_eq!(mf_process_read(live.process, addr, (&mut value as *mut u64).cast(), 8, null_mut()), 0);
    assert_eq!(value, marker);
    let mut ops = [
        MfReadOp { addr, buf: (&mut value as *mut u64).cast(), len: 8, result: 1, done: 1 },
        MfReadOp { addr: 0x10, buf: buf.as_mut_ptr().cast(), len: 8, result: 1, done: 1 },
    ];
    assert_eq!(mf_process_read_batch(live.process, ops.as_mut_ptr(), 2), MF_ERR_PARTIAL_READ);
    assert_eq!((ops[0].result, ops[1].result), (0, MF_ERR_PARTIAL_READ));
    assert_eq!((ops[0].done, ops[1].done), (8, 0));

    // Owned lists hand out their records until freed.
    let (mut items, mut len) = (null(), 0usize);
    assert_eq!(mf_module_list_get(live.mlist, &mut items, &mut len), 0);
    assert!(len > 0 && !items.is_null());
    // SAFETY: `len` records at `items`, borrowed from the list.
    let modules = unsafe { std::slice::from_raw_parts(items, len) };
    assert!(modules.iter().any(|m| text(m.name).starts_with("libc")), "libc is mapped");
}

/// A directory holding the shared library under its soname, as an installed SDK would.
fn lib_dir(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    // The soname names the file the program will look for; give it that name.
    let soname = format!("libmemflow_ffi.so.{MF_ABI_VERSION}");
    std::fs::copy(shared_lib(), dir.join(&soname)).unwrap();
    std::os::unix::fs::symlink(&soname, dir.join("libmemflow_ffi.so")).unwrap();
    dir
}

/// Builds `tests/c/<source>` into `dir/<exe>` against the shared library in `dir` and
/// `include/`, as a C or C++ user would, with warnings as errors and the `extra` flags.
fn build(dir: &Path, compiler: &str, std: &str, source: &str, exe: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(exe);
    let status = Command::new(compiler)
        .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .args(extra)
        .arg("-I")
        .arg(repo_root().join("include"))
        .arg(repo_root().join("tests/c").join(source))
        .arg("-L")
        .arg(dir)
        .arg("-lmemflow_ffi")
        .arg(format!("-Wl,-rpath,{}", dir.display()))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(status.success(), "compiling tests/c/{source} failed");
    out
}

/// Fails with a clear message if valgrind is not installed.
fn require_valgrind() {
    let found = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "valgrind is not installed: run cargo xtask deps (or apt-get install valgrind)");
}

/// Runs `exe DUMP` plainly and under valgrind; both must succeed and print `<ok>`, and
/// valgrind must report no errors and no leaks.
fn run_clean(dir: &Path, exe: &Path, ok: &str) {
    run_clean_with(dir, exe, &[fixture_dump().as_os_str()], ok);
}

/// [`run_clean`] with the arguments `args`.
fn run_clean_with(dir: &Path, exe: &Path, args: &[&std::ffi::OsStr], ok: &str) {
    let out = Command::new(exe).args(args).output().expect("run the program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(ok),
        "{} failed:\n{stdout}\n{}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );

    require_valgrind();
    let log = dir.join(format!("{}.valgrind.log", exe.file_name().unwrap().to_string_lossy()));
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect,possible",
            "--show-leak-kinds=definite,indirect,possible",
        ])
        .arg(format!("--log-file={}", log.display()))
        .arg(exe)
        .args(args)
        .output()
        .expect("run valgrind");
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(ok),
        "valgrind found errors or leaks in {}:\n{report}\n{}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
}

#[test]
fn c_smoke_program_runs_clean_under_valgrind() {
    let dir = lib_dir("smoke-c");
    let exe = build(&dir, "cc", "-std=c99", "smoke.c", "smoke", &[]);
    run_clean(&dir, &exe, "smoke ok");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cpp_wrappers_run_clean_under_valgrind_and_sanitizers() {
    let dir = lib_dir("smoke-cpp");
    let exe = build(&dir, "c++", "-std=c++17", "smoke.cpp", "smoke_cpp", &[]);
    run_clean(&dir, &exe, "smoke_cpp ok");
    let sanitized = build(&dir, "c++", "-std=c++17", "smoke.cpp", "smoke_cpp_asan", SANITIZERS);
    run_sanitized(&sanitized, &[fixture_dump().as_os_str()], "smoke_cpp ok");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `memflow.hpp` refuses an older C++ standard with a message that names the fix, instead of
/// a cascade of template errors.
#[test]
fn cpp_header_asks_for_cpp17() {
    let dir = temp_dir("cpp14");
    let source = dir.join("old.cpp");
    std::fs::write(&source, "#include \"memflow.hpp\"\nint main() { return 0; }\n").unwrap();
    let out = Command::new("c++")
        .args(["-std=c++14", "-fsyntax-only", "-I"])
        .arg(repo_root().join("include"))
        .arg(&source)
        .output()
        .expect("run c++");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "memflow.hpp compiled as C++14");
    assert!(stderr.contains("memflow.hpp needs C++17 or later"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Builds `tests/c/<source>` (C11, threads) plainly and with `-fsanitize=address,undefined`.
fn build_c11_pair(dir: &Path, source: &str, exe: &str) -> (PathBuf, PathBuf) {
    let plain = build(dir, "cc", "-std=c11", source, exe, &["-pthread"]);
    let flags: Vec<&str> = ["-pthread"].into_iter().chain(SANITIZERS.iter().copied()).collect();
    let sanitized = build(dir, "cc", "-std=c11", source, &format!("{exe}_asan"), &flags);
    (plain, sanitized)
}

/// The compiler flags of the AddressSanitizer/UBSan builds.
const SANITIZERS: &[&str] = &["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"];

/// Runs a program built with the sanitizers (leak detection on): it must succeed, print `ok`
/// and report nothing.
fn run_sanitized(exe: &Path, args: &[&std::ffi::OsStr], ok: &str) {
    let out = Command::new(exe)
        .args(args)
        .env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        .output()
        .expect("run the sanitized program");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(ok),
        "{} failed under the sanitizers:\n{stderr}",
        exe.display()
    );
    assert!(!stderr.contains("Sanitizer") && !stderr.contains("runtime error"), "sanitizer reports:\n{stderr}");
}

/// Handle misuse from C (tests/c/misuse.c): NULL, garbage, wrong-type, freed, double-freed,
/// stale-after-reuse handles, children of freed parents, re-entrant callbacks and a free
/// racing calls on other threads all give their documented codes, with no invalid access
/// under valgrind and no report from AddressSanitizer/UBSan (leak checks on).
#[test]
fn c_handle_misuse_is_rejected_under_valgrind_and_sanitizers() {
    let dir = lib_dir("misuse");
    let (plain, sanitized) = build_c11_pair(&dir, "misuse.c", "misuse");
    run_clean(&dir, &plain, "misuse ok");
    run_sanitized(&sanitized, &[fixture_dump().as_os_str()], "misuse ok");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The C API beyond the smoke test (tests/c/extended.c): translation of the kernel address
/// space and of a guest process checked against physical memory, physical memory and CPU
/// state through an OS handle, processes by name, process clones, module strings that outlive
/// later lookups, and the owned lists checked against the callbacks; with no invalid access or
/// leak under valgrind and no report from AddressSanitizer/UBSan.
#[test]
fn c_extended_api_runs_clean_under_valgrind_and_sanitizers() {
    let dir = lib_dir("extended");
    let (plain, sanitized) = build_c11_pair(&dir, "extended.c", "extended");
    run_clean(&dir, &plain, "extended ok");
    run_sanitized(&sanitized, &[fixture_dump().as_os_str()], "extended ok");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writing dumps from C (tests/c/dump.c): the guest written as an ELF core and a zstd kdump
/// and read back byte-equal with the same CPU state, a cancelling progress callback, bad
/// arguments; clean under valgrind and AddressSanitizer/UBSan.
#[test]
fn c_dump_writer_runs_clean_under_valgrind_and_sanitizers() {
    let dir = lib_dir("dump-c");
    let (plain, sanitized) = build_c11_pair(&dir, "dump.c", "dump");
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let args = [fixture_dump().into_os_string(), out.clone().into_os_string()];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    run_clean_with(&dir, &plain, &args, "dump ok");
    run_sanitized(&sanitized, &args, "dump ok");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "the program removed what it wrote");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kernel from C (tests/c/kernel.c) on the guest dump through `coredump -> linux`:
/// modules, exports, sections, symbols by address and as a listing (compared with the guest's
/// /proc/kallsyms), BTF offsets; clean under valgrind and AddressSanitizer/UBSan.
#[test]
fn c_kernel_modules_symbols_and_types_run_clean_under_valgrind_and_sanitizers() {
    let dir = lib_dir("kernel-c");
    let (plain, sanitized) = build_c11_pair(&dir, "kernel.c", "kernel");
    run_clean(&dir, &plain, "kernel ok");
    run_sanitized(&sanitized, &[fixture_dump().as_os_str()], "kernel ok");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kernel through the C++ wrappers (tests/c/kernel.cpp), clean under valgrind.
#[test]
fn cpp_kernel_wrappers_run_clean_under_valgrind() {
    let dir = lib_dir("kernel-cpp");
    let exe = build(&dir, "c++", "-std=c++17", "kernel.cpp", "kernel_cpp", &[]);
    run_clean(&dir, &exe, "kernel_cpp ok");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Byte counts from C (tests/c/counts.c): every single and batched read and write reports n,
/// n - 1 and 0 bytes where those were transferred, and writes to a read-only dump fail with
/// kind READ_ONLY; clean under valgrind and AddressSanitizer/UBSan.
#[test]
fn c_byte_counts_tell_complete_partial_and_nothing_apart() {
    let dir = lib_dir("counts");
    let (plain, sanitized) = build_c11_pair(&dir, "counts.c", "counts");
    run_clean(&dir, &plain, "counts ok");
    run_sanitized(&sanitized, &[fixture_dump().as_os_str()], "counts ok");
    let _ = std::fs::remove_dir_all(&dir);
}

/// 8 threads share one connector, OS and process, then use their own clones
/// (tests/c/threads.c), several runs: every byte and count matches a single-threaded reference
/// and nothing crashes; once more under AddressSanitizer/UBSan.
#[test]
fn c_threads_share_handles_and_use_clones() {
    let dir = lib_dir("threads");
    let (plain, sanitized) = build_c11_pair(&dir, "threads.c", "threads");
    let dump = fixture_dump();
    for run in 0..4 {
        let out = Command::new(&plain).arg(&dump).output().expect("run tests/c/threads.c");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("threads ok"),
            "run {run} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run_sanitized(&sanitized, &[dump.as_os_str(), std::ffi::OsStr::new("16")], "threads ok");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An x86-64 ELF core with `notes` malformed `NT_PRSTATUS` notes (one warning each) and one
/// page of zeros at guest physical 0x1000 (no kernel anywhere).
fn core_with_bad_notes(notes: usize) -> Vec<u8> {
    const NOTE: usize = 12 + 8 + 4; // header, "CORE\0" padded, 4-byte descriptor
    let notes_off = 64 + 2 * 56;
    let load_off = (notes_off + notes * NOTE).next_multiple_of(4096);
    let mut f = Vec::with_capacity(load_off + 4096);
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    for v in [4u16, 62] {
        f.extend_from_slice(&v.to_le_bytes()); // e_type ET_CORE, e_machine x86-64
    }
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    for v in [0u64, 64, 0] {
        f.extend_from_slice(&v.to_le_bytes()); // e_entry, e_phoff, e_shoff
    }
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for v in [64u16, 56, 2, 64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes()); // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
    }
    let phdr = |f: &mut Vec<u8>, ty: u32, off: usize, paddr: u64, size: usize| {
        f.extend_from_slice(&ty.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        for v in [off as u64, 0, paddr, size as u64, size as u64, 0] {
            f.extend_from_slice(&v.to_le_bytes());
        }
    };
    phdr(&mut f, 4, notes_off, 0, notes * NOTE); // PT_NOTE
    phdr(&mut f, 1, load_off, 0x1000, 4096); // PT_LOAD
    for _ in 0..notes {
        for v in [5u32, 4, 1] {
            f.extend_from_slice(&v.to_le_bytes()); // namesz, descsz, NT_PRSTATUS
        }
        f.extend_from_slice(b"CORE\0\0\0\0\0\0\0\0");
    }
    f.resize(load_off + 4096, 0);
    f
}

/// Thousands of repeated warnings before a failure are summarised in
/// `mf_last_error_message`, and the final cause is never cut (issue 9, item 5).
#[test]
fn repeated_warnings_do_not_push_out_the_final_cause() {
    let dir = temp_dir("notes");
    let dump = dir.join("notes.elf");
    std::fs::write(&dump, core_with_bad_notes(5000)).unwrap();
    let mut inv = null_mut();
    assert_eq!(mf_inventory_builtin(&mut inv), 0);
    let chain = format!("coredump:'{}' -> linux\0", dump.display());
    let mut os = null_mut();
    let code = mf_inventory_create_chain(inv, chain.as_ptr().cast(), &mut os);
    assert!(code < 0 && os.is_null(), "a dump without a kernel cannot give an OS");
    let message = last_message();
    assert!(message.contains("(and 4,999 more like this)"), "{message}");
    assert!(message.len() < 8192, "bounded: {} bytes", message.len());
    let after = message.split("(and 4,999 more like this); ").nth(1).unwrap_or_default();
    assert!(after.contains("no kernel image found"), "the final cause comes last and is kept: {message}");
    assert_eq!(mf_inventory_free(inv), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The registers of CPU 0 of the fixture `name`'s dump (one CPU) through `of_connector` on
/// the connector and through `of_os` on the `linux` layer on it: `want`, what the Rust API
/// reports; CPU 1 and its x86 registers are not found, and the x86 dump has none of them.
fn registers_of_a_dump<R: Default + PartialEq + std::fmt::Debug>(
    name: &'static str,
    want: impl FnOnce(&memflow_core::connector::FileConnector) -> R,
    of_connector: extern "C" fn(*const MfConnector, usize, *mut R) -> i32,
    of_os: extern "C" fn(*const MfOs, usize, *mut R) -> i32,
) {
    let fx = Fixture::load(name);
    let want = want(&fx.open());
    let mut inv = null_mut();
    assert_eq!(mf_inventory_builtin(&mut inv), 0);
    let mut conn = null_mut();
    let args = format!("'{}'\0", fx.dir.join("dump.elf").display());
    assert_eq!(mf_inventory_create_connector(inv, c"coredump".as_ptr(), args.as_ptr().cast(), null(), &mut conn), 0);
    let mut regs = R::default();
    assert_eq!(of_connector(conn, 0, &mut regs), 0, "{name}: {}", last_message());
    assert_eq!(regs, want, "{name}");
    assert_eq!(mf_error_kind(of_connector(conn, 1, &mut regs)), MF_KIND_NOT_FOUND, "{name}");
    let mut x86 = MfX86Registers::default();
    assert_eq!(mf_error_kind(mf_connector_x86_registers(conn, 0, &mut x86)), MF_KIND_NOT_FOUND, "{name}");
    let chain = format!("coredump:'{}' -> linux\0", fx.dir.join("dump.elf").display());
    let mut os = null_mut();
    assert_eq!(mf_inventory_create_chain(inv, chain.as_ptr().cast(), &mut os), 0, "{name}: {}", last_message());
    let mut through_os = R::default();
    assert_eq!(of_os(os, 0, &mut through_os), 0, "{name}: {}", last_message());
    assert_eq!(through_os, regs, "{name}");
    assert_eq!(mf_os_free(os), 0);
    assert_eq!(mf_connector_free(conn), 0);
    let args = format!("'{}'\0", fixture_dump().display());
    assert_eq!(mf_inventory_create_connector(inv, c"coredump".as_ptr(), args.as_ptr().cast(), null(), &mut conn), 0);
    assert_eq!(mf_error_kind(of_connector(conn, 0, &mut regs)), MF_KIND_NOT_FOUND, "{name}");
    assert_eq!(mf_connector_free(conn), 0);
    assert_eq!(mf_inventory_free(inv), 0);
}

/// The AArch64 registers of an ARM64 guest's dump (see [`registers_of_a_dump`]).
#[test]
fn aarch64_registers_of_an_arm64_dump() {
    use memflow_core::connector::CpuState;
    let want = |c: &memflow_core::connector::FileConnector| (&c.aarch64_registers(0).unwrap()).into();
    registers_of_a_dump::<MfAArch64Registers>(
        "arm64-4k",
        want,
        mf_connector_aarch64_registers,
        mf_os_aarch64_registers,
    );
}

/// The RISC-V registers of a riscv64 guest's dump (see [`registers_of_a_dump`]): `pc` set,
/// `satp` not (the dump has none).
#[test]
fn riscv_registers_of_a_riscv_dump() {
    use memflow_core::connector::CpuState;
    let want = |c: &memflow_core::connector::FileConnector| {
        let regs = c.riscv_registers(0).unwrap();
        assert!(regs.pc != 0 && !regs.satp_valid, "{regs:?}");
        (&regs).into()
    };
    registers_of_a_dump::<MfRiscVRegisters>("riscv64-sv39", want, mf_connector_riscv_registers, mf_os_riscv_registers);
}
