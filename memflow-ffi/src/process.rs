//! Processes: their facts, memory, translation, modules, symbols and mapped ranges.

use std::ffi::{c_char, c_void, CStr};

use cglue::repr_cstring::ReprCString;
use memflow_core::error::{Error, ErrorKind, ErrorOrigin};
use memflow_core::instance::ProcessInstanceArcBox;
use memflow_core::mem::MemoryView;
use memflow_core::os::{ExportInfo, ImportInfo, MemoryRange, ModuleInfo, Process, SectionInfo, ThreadInfo};
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::{imem, Address};

use crate::call::{array_mut, buf_mut, buf_ref, callback_arg, guard, guard_partial, out_arg, ref_arg, str_arg};
use crate::handle::{self, impl_handle};
use crate::lists::{
    self, hand_out, impl_record_list, MfExportList, MfImportList, MfMemoryRangeList, MfSectionList, Records,
};
use crate::strings::KeptStrings;
use crate::{mem, translate};
use memflow_core::plugins::records::*;

/// An open process: its memory (virtual addresses), its translation and modules. Opaque; made
/// by `mf_os_process_by_pid`, `mf_os_process_by_name`, `mf_os_process_by_address` or
/// `mf_process_clone`; freed by `mf_process_free`. Independent of the OS handle it was opened
/// from and of the process it was cloned from.
///
/// Threads: may be used from several threads at once; calls on it are serialised (see
/// "Threads" at the top of memflow.h).
pub struct MfProcess {
    pub(crate) inner: ProcessInstanceArcBox<'static>,
    /// The strings of the module records `mf_process_module_by_name` and
    /// `mf_process_primary_module` handed out, each once: they stay valid until the process
    /// is freed, and repeated lookups of the same modules take no more memory.
    strings: KeptStrings,
}

/// A list of modules, as made by `mf_process_module_list` or the `mf_os_kernel_module_*`
/// lookups. Opaque; read it with `mf_module_list_get`, free it with `mf_module_list_free`.
///
/// Threads: may be used from several threads at once; calls on it are serialised (see
/// "Threads" at the top of memflow.h).
pub struct MfModuleList(pub(crate) Records<MfModuleInfo, ModuleInfo>);

/// The threads of a process, as made by `mf_process_thread_list`. Opaque; read it with
/// `mf_thread_list_get`, free it with `mf_thread_list_free`.
///
/// Threads: may be used from several threads at once; calls on it are serialised (see
/// "Threads" at the top of memflow.h).
pub struct MfThreadList(pub(crate) Records<MfThreadInfo, ThreadInfo>);

impl_handle! {
    MfProcess = 4;
    MfModuleList = 6;
    MfThreadList = 12;
}

impl_record_list! {
    MfModuleList: MfModuleInfo;
    MfThreadList: MfThreadInfo;
}

impl MfProcess {
    /// Registers a process instance as a new handle for C.
    pub(crate) fn into_handle(inner: ProcessInstanceArcBox<'static>) -> Result<*mut Self, Error> {
        handle::into_raw(MfProcess { inner, strings: KeptStrings::default() })
    }

    /// A record of `m` whose strings belong to the process (see `strings`).
    fn keep(&mut self, m: &ModuleInfo) -> MfModuleInfo {
        let mut rec = MfModuleInfo::borrow(m);
        rec.name = keep(&mut self.strings, &m.name);
        rec.path = keep(&mut self.strings, &m.path);
        rec
    }
}

/// The copy of `s` in `strings`.
fn keep(strings: &mut KeptStrings, s: &ReprCString) -> *const c_char {
    // SAFETY: a `ReprCString` is NUL-terminated; this is the string C would see.
    strings.keep(unsafe { CStr::from_ptr(str_out(s)) })
}

/// Makes an independent copy of `process` (its facts, and its own state for reading memory)
/// for use on another thread.
///
/// Ownership: `process` is borrowed. On success `*out` receives a new handle owned by the
/// caller (free it with `mf_process_free`).
#[no_mangle]
pub extern "C" fn mf_process_clone(process: *const MfProcess, out: *mut *mut MfProcess) -> i32 {
    guard(|| {
        let copy = handle::with(process, "process", |process| Ok(process.inner.clone()))?;
        let out = out_arg(out, "out")?;
        out.write(MfProcess::into_handle(copy)?);
        Ok(())
    })
}

/// Frees a process handle. NULL is a no-op (returns 0); anything that is not a live
/// `MfProcess` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `process`; it and every string that belongs to it (`mf_process_info`,
/// `mf_process_module_by_name`, `mf_process_primary_module`) must not be used afterwards.
/// Clones (`mf_process_clone`) stay valid.
#[no_mangle]
pub extern "C" fn mf_process_free(process: *mut MfProcess) -> i32 {
    handle::free(process)
}

/// The facts of the process as they were when it was opened.
///
/// Ownership: `*out` is caller storage, written on success; its strings are borrowed from
/// `process` and valid until it is freed.
#[no_mangle]
pub extern "C" fn mf_process_info(process: *const MfProcess, out: *mut MfProcessInfo) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            let out = out_arg(out, "out")?;
            out.write(MfProcessInfo::borrow(process.inner.info()));
            Ok(())
        })
    })
}

/// The current run state of the process (looked up again), one of `MF_PROCESS_STATE_*`.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_process_state(process: *mut MfProcess, out: *mut MfProcessState) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            let out = out_arg(out, "out")?;
            out.write(state_out(process.inner.state()));
            Ok(())
        })
    })
}

/// Reads `len` bytes of the process's memory at virtual address `addr` into `buf`.
///
/// Returns 0 if every byte was read, `MF_ERR_PARTIAL_READ` if some could not be (they are
/// zero in `buf`), or another error code.
///
/// `*done` (if `done` is not NULL) receives how many bytes from the start of `buf` were read
/// before the first unreadable one: `len` with 0, less with `MF_ERR_PARTIAL_READ` (bytes after
/// the first unreadable one are still read where they can be), 0 with any other error.
///
/// Ownership: `buf` (at least `len` writable bytes; NULL if `len` is 0) is borrowed; `*done`
/// is caller storage.
#[no_mangle]
pub extern "C" fn mf_process_read(
    process: *mut MfProcess,
    addr: u64,
    buf: *mut c_void,
    len: usize,
    done: *mut usize,
) -> i32 {
    mem::single(process, "process", done, len, ErrorKind::PartialRead, |process| {
        let buf = buf_mut(buf.cast(), len, "buf")?;
        process.inner.read_single(addr_in(addr), buf)
    })
}

/// Writes `len` bytes from `buf` into the process's memory at `addr`.
///
/// Returns 0, `MF_ERR_PARTIAL_WRITE` if some bytes were not written, an error of kind
/// `MF_KIND_READ_ONLY` if the memory behind the process is read-only, or another error code.
///
/// `*done` (if `done` is not NULL) receives how many bytes from the start of `buf` were
/// written before the first one that was not: `len` with 0, less with `MF_ERR_PARTIAL_WRITE`,
/// 0 with any other error.
///
/// Ownership: `buf` (at least `len` readable bytes; NULL if `len` is 0) is borrowed; `*done`
/// is caller storage.
#[no_mangle]
pub extern "C" fn mf_process_write(
    process: *mut MfProcess,
    addr: u64,
    buf: *const c_void,
    len: usize,
    done: *mut usize,
) -> i32 {
    mem::single(process, "process", done, len, ErrorKind::PartialWrite, |process| {
        let buf = buf_ref(buf.cast(), len, "buf")?;
        process.inner.write_single(addr_in(addr), buf)
    })
}

/// Reads many ranges of the process's memory in one batch (translation of all addresses is
/// batched too). Each op's `result` is set to 0 or `MF_ERR_PARTIAL_READ` and its `done` to the
/// bytes read before its first unreadable one.
///
/// Returns 0, `MF_ERR_PARTIAL_READ` if any op was partial, or another error code if the batch
/// as a whole failed.
///
/// Ownership: `ops` (an array of `count` ops, NULL if `count` is 0) and their buffers are
/// borrowed for the call.
#[no_mangle]
pub extern "C" fn mf_process_read_batch(process: *mut MfProcess, ops: *mut MfReadOp, count: usize) -> i32 {
    guard_partial(|| {
        handle::with(process, "process", |process| {
            let ops = array_mut(ops, count, "ops")?;
            memflow_core::plugins::records::read_ops(ops, addr_in, |b| process.inner.read_batch(b))
        })
    })
}

/// Writes many ranges of the process's memory in one batch. Each op's `result` is set to 0 or
/// `MF_ERR_PARTIAL_WRITE` and its `done` to the bytes written before its first failed one.
///
/// Returns 0, `MF_ERR_PARTIAL_WRITE` if any op was partly written, or another error code.
///
/// Ownership: `ops` (an array of `count` ops, NULL if `count` is 0) and their buffers are
/// borrowed for the call.
#[no_mangle]
pub extern "C" fn mf_process_write_batch(process: *mut MfProcess, ops: *mut MfWriteOp, count: usize) -> i32 {
    guard_partial(|| {
        handle::with(process, "process", |process| {
            let ops = array_mut(ops, count, "ops")?;
            memflow_core::plugins::records::write_ops(ops, addr_in, |b| process.inner.write_batch(b))
        })
    })
}

/// Calls `callback` with every module of the process until it returns `false`. Modules that
/// vanish while listing are skipped.
///
/// Ownership: the record passed to `callback` and its strings are borrowed and valid only
/// during that call. `user` is passed through unchanged.
#[no_mangle]
pub extern "C" fn mf_process_module_list_callback(
    process: *mut MfProcess,
    callback: MfModuleInfoCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            let cb = callback_arg(callback, "callback")?;
            let arch = process.inner.info().proc_arch;
            let mut addrs: Vec<Address> = Vec::new();
            process.inner.module_address_list_callback(None, (&mut addrs).into())?;
            for a in addrs {
                if let Ok(m) = process.inner.module_by_address(a, arch) {
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

/// Lists every module of the process into a new list.
///
/// Ownership: on success `*out` receives a list owned by the caller; free it with
/// `mf_module_list_free`. The strings of its records belong to the list.
#[no_mangle]
pub extern "C" fn mf_process_module_list(process: *mut MfProcess, out: *mut *mut MfModuleList) -> i32 {
    guard(|| {
        let modules = handle::with(process, "process", |process| {
            out_arg(out, "out")?;
            process.inner.module_list()
        })?;
        hand_out(MfModuleList(Records::new(modules, MfModuleInfo::borrow)), out)
    })
}

/// The records of a module list: `*out_items` receives a pointer to `*out_len` consecutive
/// records (NULL if the list is empty).
///
/// Ownership: the records and their strings are borrowed from `list` and valid until it is
/// freed. `*out_items` and `*out_len` are caller storage.
#[no_mangle]
pub extern "C" fn mf_module_list_get(
    list: *const MfModuleList,
    out_items: *mut *const MfModuleInfo,
    out_len: *mut usize,
) -> i32 {
    lists::get(list, out_items, out_len)
}

/// Frees a module list. NULL is a no-op (returns 0); anything that is not a live
/// `MfModuleList` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `list`; its records and strings must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_module_list_free(list: *mut MfModuleList) -> i32 {
    handle::free(list)
}

/// Lists every thread of the process into a new list. Fails with kind
/// `MF_KIND_UNSUPPORTED` where the OS layer does not know threads (C plugins, the dummy OS).
///
/// Ownership: on success `*out` receives a list owned by the caller; free it with
/// `mf_thread_list_free`. The names of its records belong to the list.
#[no_mangle]
pub extern "C" fn mf_process_thread_list(process: *mut MfProcess, out: *mut *mut MfThreadList) -> i32 {
    guard(|| {
        let threads = handle::with(process, "process", |process| {
            out_arg(out, "out")?;
            process.inner.thread_list()
        })?;
        hand_out(MfThreadList(Records::new(threads, MfThreadInfo::borrow)), out)
    })
}

/// The records of a thread list: `*out_items` receives a pointer to `*out_len` consecutive
/// records (NULL if the list is empty).
///
/// Ownership: the records and their names are borrowed from `list` and valid until it is
/// freed. `*out_items` and `*out_len` are caller storage.
#[no_mangle]
pub extern "C" fn mf_thread_list_get(
    list: *const MfThreadList,
    out_items: *mut *const MfThreadInfo,
    out_len: *mut usize,
) -> i32 {
    lists::get(list, out_items, out_len)
}

/// Frees a thread list. NULL is a no-op (returns 0); anything that is not a live
/// `MfThreadList` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `list`; its records and names must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_thread_list_free(list: *mut MfThreadList) -> i32 {
    handle::free(list)
}

/// Finds the first module whose name equals `name` (ASCII case-insensitive). Fails with kind
/// `MF_KIND_NOT_FOUND` if there is none.
///
/// Ownership: `name` is borrowed. `*out` is caller storage, written on success; its strings
/// belong to `process` and stay valid until it is freed (each distinct string is kept once,
/// however often it is looked up).
#[no_mangle]
pub extern "C" fn mf_process_module_by_name(
    process: *mut MfProcess,
    name: *const c_char,
    out: *mut MfModuleInfo,
) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            // SAFETY: C string argument, checked for NULL.
            let name = unsafe { str_arg(name, "name") }?;
            let out = out_arg(out, "out")?;
            let module = process.inner.module_by_name(name)?;
            out.write(process.keep(&module));
            Ok(())
        })
    })
}

/// The module of the process's main executable.
///
/// Ownership: as for `mf_process_module_by_name`.
#[no_mangle]
pub extern "C" fn mf_process_primary_module(process: *mut MfProcess, out: *mut MfModuleInfo) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            let out = out_arg(out, "out")?;
            let module = process.inner.primary_module()?;
            out.write(process.keep(&module));
            Ok(())
        })
    })
}

/// Calls `callback` with every symbol `module` exports, until it returns `false`.
///
/// Ownership: `module` (a record obtained for this process; its strings may be NULL) is
/// borrowed for the call. The record passed to `callback` and its strings are borrowed and
/// valid only during that call. `user` is passed through unchanged.
#[no_mangle]
pub extern "C" fn mf_process_module_exports(
    process: *mut MfProcess,
    module: *const MfModuleInfo,
    callback: MfExportCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            // SAFETY: the caller promises NUL-terminated strings in the record.
            let module = unsafe { ref_arg(module, "module")?.to_core(ErrorOrigin::Ffi) }?;
            let cb = callback_arg(callback, "callback")?;
            let mut f = |e: ExportInfo| {
                let rec = MfExportInfo::borrow(&e);
                // SAFETY: C callback with a record valid for the call, as documented.
                unsafe { cb(user, &rec) }
            };
            process.inner.module_export_list_callback(&module, (&mut f).into())
        })
    })
}

/// Calls `callback` with every symbol `module` imports, until it returns `false`.
///
/// Ownership: as for `mf_process_module_exports`.
#[no_mangle]
pub extern "C" fn mf_process_module_imports(
    process: *mut MfProcess,
    module: *const MfModuleInfo,
    callback: MfImportCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            // SAFETY: the caller promises NUL-terminated strings in the record.
            let module = unsafe { ref_arg(module, "module")?.to_core(ErrorOrigin::Ffi) }?;
            let cb = callback_arg(callback, "callback")?;
            let mut f = |e: ImportInfo| {
                let rec = MfImportInfo::borrow(&e);
                // SAFETY: C callback with a record valid for the call, as documented.
                unsafe { cb(user, &rec) }
            };
            process.inner.module_import_list_callback(&module, (&mut f).into())
        })
    })
}

/// Calls `callback` with every section of `module`, until it returns `false`.
///
/// Ownership: as for `mf_process_module_exports`.
#[no_mangle]
pub extern "C" fn mf_process_module_sections(
    process: *mut MfProcess,
    module: *const MfModuleInfo,
    callback: MfSectionCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            // SAFETY: the caller promises NUL-terminated strings in the record.
            let module = unsafe { ref_arg(module, "module")?.to_core(ErrorOrigin::Ffi) }?;
            let cb = callback_arg(callback, "callback")?;
            let mut f = |s: SectionInfo| {
                let rec = MfSectionInfo::borrow(&s);
                // SAFETY: C callback with a record valid for the call, as documented.
                unsafe { cb(user, &rec) }
            };
            process.inner.module_section_list_callback(&module, (&mut f).into())
        })
    })
}

/// The address of the export `name` of `module` (module base plus the symbol's offset).
/// Fails with kind `MF_KIND_NOT_FOUND` if the module does not export it.
///
/// Ownership: `module` and `name` are borrowed; `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_process_export_address(
    process: *mut MfProcess,
    module: *const MfModuleInfo,
    name: *const c_char,
    out: *mut u64,
) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            // SAFETY: the caller promises NUL-terminated strings in the record.
            let module = unsafe { ref_arg(module, "module")?.to_core(ErrorOrigin::Ffi) }?;
            // SAFETY: C string argument, checked for NULL.
            let name = unsafe { str_arg(name, "name") }?;
            let out = out_arg(out, "out")?;
            out.write(addr_out(process.inner.export_address(&module, name)?));
            Ok(())
        })
    })
}

/// Calls `callback` with the mapped ranges of the process's address space between `start`
/// and `end` (use 0 and `UINT64_MAX` for all), merging neighbours with equal flags that are
/// at most `gap_size` bytes apart (negative: never merge), until it returns `false`.
///
/// Ownership: the range passed to `callback` is borrowed for that call. `user` is passed
/// through unchanged.
#[no_mangle]
pub extern "C" fn mf_process_mapped_ranges(
    process: *mut MfProcess,
    gap_size: i64,
    start: u64,
    end: u64,
    callback: MfMemoryRangeCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            let cb = callback_arg(callback, "callback")?;
            let mut f = |r: MemoryRange| {
                let rec = MfMemoryRange::from(&r);
                // SAFETY: C callback with a record valid for the call, as documented.
                unsafe { cb(user, &rec) }
            };
            process.inner.mapped_mem_range(imem::from(gap_size), addr_in(start), addr_in(end), (&mut f).into())
        })
    })
}

/// Lists every symbol `module` exports into a new list.
///
/// Ownership: `module` (a record obtained for this process; its strings may be NULL) is
/// borrowed for the call. On success `*out` receives a list owned by the caller; free it with
/// `mf_export_list_free`. The strings of its records belong to the list.
#[no_mangle]
pub extern "C" fn mf_process_module_export_list(
    process: *mut MfProcess,
    module: *const MfModuleInfo,
    out: *mut *mut MfExportList,
) -> i32 {
    lists::module_records(
        process,
        "process",
        module,
        out,
        |process, module| process.inner.module_exports(module),
        |v| MfExportList(Records::new(v, MfExportInfo::borrow)),
    )
}

/// Lists every symbol `module` imports into a new list.
///
/// Ownership: as for `mf_process_module_export_list`; free the list with
/// `mf_import_list_free`.
#[no_mangle]
pub extern "C" fn mf_process_module_import_list(
    process: *mut MfProcess,
    module: *const MfModuleInfo,
    out: *mut *mut MfImportList,
) -> i32 {
    lists::module_records(
        process,
        "process",
        module,
        out,
        |process, module| process.inner.module_imports(module),
        |v| MfImportList(Records::new(v, MfImportInfo::borrow)),
    )
}

/// Lists every section of `module` into a new list.
///
/// Ownership: as for `mf_process_module_export_list`; free the list with
/// `mf_section_list_free`.
#[no_mangle]
pub extern "C" fn mf_process_module_section_list(
    process: *mut MfProcess,
    module: *const MfModuleInfo,
    out: *mut *mut MfSectionList,
) -> i32 {
    lists::module_records(
        process,
        "process",
        module,
        out,
        |process, module| process.inner.module_sections(module),
        |v| MfSectionList(Records::new(v, MfSectionInfo::borrow)),
    )
}

/// Lists the mapped ranges of the process's address space (as `mf_process_mapped_ranges`)
/// into a new list.
///
/// Ownership: on success `*out` receives a list owned by the caller; free it with
/// `mf_memory_range_list_free`.
#[no_mangle]
pub extern "C" fn mf_process_mapped_range_list(
    process: *mut MfProcess,
    gap_size: i64,
    start: u64,
    end: u64,
    out: *mut *mut MfMemoryRangeList,
) -> i32 {
    guard(|| {
        let ranges = handle::with(process, "process", |process| {
            out_arg(out, "out")?;
            let mut ranges = Vec::new();
            process.inner.mapped_mem_range(imem::from(gap_size), addr_in(start), addr_in(end), (&mut ranges).into())?;
            Ok(ranges)
        })?;
        hand_out(MfMemoryRangeList(Records::new(ranges, |r| MfMemoryRange::from(r))), out)
    })
}

/// The address space of `process`, for translation.
fn process_translation(process: &mut MfProcess) -> Result<&mut (impl VirtualTranslate + '_), Error> {
    process.inner.as_mut_impl_virtualtranslate().ok_or_else(|| translate::no_translation("process"))
}

/// Translates the virtual address `addr` of the process into `*out`, for processes whose
/// layer translates (the native layer's do not: `MF_ERR_UNSUPPORTED`). An address that does
/// not translate fails with kind `MF_KIND_UNMAPPED` or `MF_KIND_OUT_OF_BOUNDS`.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_process_virt_to_phys(process: *mut MfProcess, addr: u64, out: *mut u64) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            let out = out_arg(out, "out")?;
            out.write(translate::virt_to_phys(process_translation(process)?, addr)?);
            Ok(())
        })
    })
}

/// Translates the virtual addresses of `count` ops of the process in one batch, as
/// `mf_os_virt_to_phys_batch`.
///
/// Ownership: `ops` (an array of `count` ops, NULL if `count` is 0) is borrowed for the call.
#[no_mangle]
pub extern "C" fn mf_process_virt_to_phys_batch(process: *mut MfProcess, ops: *mut MfTranslateOp, count: usize) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            let ops = array_mut(ops, count, "ops")?;
            translate::virt_to_phys_batch(process_translation(process)?, ops)
        })
    })
}

/// Calls `callback` with the ranges of the process's address space that its page tables map
/// between `start` and `end`, as `mf_os_page_map_callback`.
///
/// Ownership: the range passed to `callback` is borrowed for that call. `user` is passed
/// through unchanged.
#[no_mangle]
pub extern "C" fn mf_process_page_map_callback(
    process: *mut MfProcess,
    gap: u64,
    start: u64,
    end: u64,
    callback: MfMemoryRangeCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(process, "process", |process| {
            let cb = callback_arg(callback, "callback")?;
            translate::page_map_callback(process_translation(process)?, gap, start, end, cb, user)
        })
    })
}

/// The ranges the process's page tables map (as `mf_process_page_map_callback`) as a new list.
///
/// Ownership: on success `*out` receives a list owned by the caller; free it with
/// `mf_memory_range_list_free`.
#[no_mangle]
pub extern "C" fn mf_process_page_map(
    process: *mut MfProcess,
    gap: u64,
    start: u64,
    end: u64,
    out: *mut *mut MfMemoryRangeList,
) -> i32 {
    guard(|| {
        let list = handle::with(process, "process", |process| {
            out_arg(out, "out")?;
            translate::page_map(process_translation(process)?, gap, start, end)
        })?;
        hand_out(list, out)
    })
}
