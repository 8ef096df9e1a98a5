//! Owned lists: what a listing hands out when the caller keeps the records after the call
//! (the `_callback` variants pass them one by one instead). Every list is read with its
//! `mf_<type>_list_get` and freed with its `mf_<type>_list_free`; the strings of its records
//! belong to the list.

use memflow_core::error::{Error, ErrorOrigin};
use memflow_core::os::{ExportInfo, ImportInfo, KernelSymbolInfo, MemoryRange, ModuleInfo, SectionInfo};

use crate::call::{guard, out_arg, ref_arg};
use crate::handle::{self, impl_handle, Handle};
use memflow_core::plugins::records::{
    IncomingRecord, MfExportInfo, MfImportInfo, MfKernelSymbolInfo, MfMemoryRange, MfModuleInfo, MfSectionInfo,
};

/// Records for C together with the core values their strings point into.
pub(crate) struct Records<R, C> {
    /// Owns the strings `items` point to; never changed after construction.
    _core: Vec<C>,
    items: Vec<R>,
}

// SAFETY: the record pointers point into `_core`, which the list owns and never changes;
// moving the list to another thread moves both.
unsafe impl<R, C: Send> Send for Records<R, C> {}

impl<R, C> Records<R, C> {
    /// The records `view` makes of `core`, whose strings borrow from it.
    pub(crate) fn new(core: Vec<C>, view: impl Fn(&C) -> R) -> Self {
        let items = core.iter().map(view).collect();
        Records { _core: core, items }
    }

    /// The records, in order.
    pub(crate) fn items(&self) -> &[R] {
        &self.items
    }
}

/// A handle type that is a list of records.
pub(crate) trait RecordList: Handle {
    /// The C record.
    type Item;
    /// The records, in order.
    fn items(&self) -> &[Self::Item];
}

/// Implements [`RecordList`] for list handles that wrap [`Records`] of the given item.
macro_rules! impl_record_list {
    ($($ty:ident: $item:ty;)*) => {$(
        impl $crate::lists::RecordList for $ty {
            type Item = $item;
            fn items(&self) -> &[$item] {
                self.0.items()
            }
        }
    )*};
}
pub(crate) use impl_record_list;

/// Registers a list as a new handle and writes it to `out` (checked by the caller first).
pub(crate) fn hand_out<L: Handle>(list: L, out: *mut *mut L) -> Result<(), Error> {
    out_arg(out, "out")?.write(handle::into_raw(list)?);
    Ok(())
}

/// The body of every function that lists one module's records (exports, imports, sections)
/// into a new list: reads `module`, checks `out`, fetches the records from the object behind
/// `handle` and hands out the list `wrap` makes of them.
pub(crate) fn module_records<H: Handle, T, L: Handle>(
    handle: *mut H,
    name: &str,
    module: *const MfModuleInfo,
    out: *mut *mut L,
    fetch: impl FnOnce(&mut H, &ModuleInfo) -> Result<Vec<T>, Error>,
    wrap: impl FnOnce(Vec<T>) -> L,
) -> i32 {
    guard(|| {
        let records = handle::with(handle, name, |object| {
            // SAFETY: the caller promises NUL-terminated strings in the record.
            let module = unsafe { ref_arg(module, "module")?.to_core(ErrorOrigin::Ffi) }?;
            out_arg(out, "out")?;
            fetch(object, &module)
        })?;
        hand_out(wrap(records), out)
    })
}

/// The body of every `mf_<type>_list_get`: `*out_items` receives a pointer to `*out_len`
/// consecutive records (NULL if the list is empty).
pub(crate) fn get<L: RecordList>(list: *const L, out_items: *mut *const L::Item, out_len: *mut usize) -> i32 {
    guard(|| {
        handle::with(list, "list", |list| {
            let items = out_arg(out_items, "out_items")?;
            let len = out_arg(out_len, "out_len")?;
            let records = list.items();
            items.write(if records.is_empty() { std::ptr::null() } else { records.as_ptr() });
            len.write(records.len());
            Ok(())
        })
    })
}

/// The exports of a module, as made by `mf_process_module_export_list` or
/// `mf_os_kernel_module_export_list`. Opaque; read it with `mf_export_list_get`, free it with
/// `mf_export_list_free`.
pub struct MfExportList(pub(crate) Records<MfExportInfo, ExportInfo>);

/// The imports of a module, as made by `mf_process_module_import_list`. Opaque; read it with
/// `mf_import_list_get`, free it with `mf_import_list_free`.
pub struct MfImportList(pub(crate) Records<MfImportInfo, ImportInfo>);

/// The sections of a module, as made by `mf_process_module_section_list` or
/// `mf_os_kernel_module_section_list`. Opaque; read it with `mf_section_list_get`, free it
/// with `mf_section_list_free`.
pub struct MfSectionList(pub(crate) Records<MfSectionInfo, SectionInfo>);

/// Ranges of an address space, as made by `mf_process_mapped_range_list`, `mf_os_page_map`
/// or `mf_process_page_map`. Opaque; read it with `mf_memory_range_list_get`, free it with
/// `mf_memory_range_list_free`.
pub struct MfMemoryRangeList(pub(crate) Records<MfMemoryRange, MemoryRange>);

/// Kernel symbols, as made by `mf_os_kernel_symbol_list`. Opaque; read it with
/// `mf_kernel_symbol_list_get`, free it with `mf_kernel_symbol_list_free`.
pub struct MfKernelSymbolList(pub(crate) Records<MfKernelSymbolInfo, KernelSymbolInfo>);

impl_handle! {
    MfExportList = 7;
    MfImportList = 8;
    MfSectionList = 9;
    MfMemoryRangeList = 10;
    MfKernelSymbolList = 11;
}

impl_record_list! {
    MfExportList: MfExportInfo;
    MfImportList: MfImportInfo;
    MfSectionList: MfSectionInfo;
    MfMemoryRangeList: MfMemoryRange;
    MfKernelSymbolList: MfKernelSymbolInfo;
}

/// The records of an export list: `*out_items` receives a pointer to `*out_len` consecutive
/// records (NULL if the list is empty).
///
/// Ownership: the records and their strings are borrowed from `list` and valid until it is
/// freed. `*out_items` and `*out_len` are caller storage.
#[no_mangle]
pub extern "C" fn mf_export_list_get(
    list: *const MfExportList,
    out_items: *mut *const MfExportInfo,
    out_len: *mut usize,
) -> i32 {
    get(list, out_items, out_len)
}

/// Frees an export list. NULL is a no-op (returns 0); anything that is not a live
/// `MfExportList` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `list`; its records and strings must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_export_list_free(list: *mut MfExportList) -> i32 {
    handle::free(list)
}

/// The records of an import list (as `mf_export_list_get`).
///
/// Ownership: the records and their strings are borrowed from `list` and valid until it is
/// freed. `*out_items` and `*out_len` are caller storage.
#[no_mangle]
pub extern "C" fn mf_import_list_get(
    list: *const MfImportList,
    out_items: *mut *const MfImportInfo,
    out_len: *mut usize,
) -> i32 {
    get(list, out_items, out_len)
}

/// Frees an import list. NULL is a no-op (returns 0); anything that is not a live
/// `MfImportList` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `list`; its records and strings must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_import_list_free(list: *mut MfImportList) -> i32 {
    handle::free(list)
}

/// The records of a section list (as `mf_export_list_get`).
///
/// Ownership: the records and their strings are borrowed from `list` and valid until it is
/// freed. `*out_items` and `*out_len` are caller storage.
#[no_mangle]
pub extern "C" fn mf_section_list_get(
    list: *const MfSectionList,
    out_items: *mut *const MfSectionInfo,
    out_len: *mut usize,
) -> i32 {
    get(list, out_items, out_len)
}

/// Frees a section list. NULL is a no-op (returns 0); anything that is not a live
/// `MfSectionList` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `list`; its records and strings must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_section_list_free(list: *mut MfSectionList) -> i32 {
    handle::free(list)
}

/// The records of a memory range list (as `mf_export_list_get`), in ascending address order.
///
/// Ownership: the records are borrowed from `list` and valid until it is freed. `*out_items`
/// and `*out_len` are caller storage.
#[no_mangle]
pub extern "C" fn mf_memory_range_list_get(
    list: *const MfMemoryRangeList,
    out_items: *mut *const MfMemoryRange,
    out_len: *mut usize,
) -> i32 {
    get(list, out_items, out_len)
}

/// Frees a memory range list. NULL is a no-op (returns 0); anything that is not a live
/// `MfMemoryRangeList` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `list`; its records must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_memory_range_list_free(list: *mut MfMemoryRangeList) -> i32 {
    handle::free(list)
}

/// The records of a kernel symbol list (as `mf_export_list_get`).
///
/// Ownership: the records and their strings are borrowed from `list` and valid until it is
/// freed. `*out_items` and `*out_len` are caller storage.
#[no_mangle]
pub extern "C" fn mf_kernel_symbol_list_get(
    list: *const MfKernelSymbolList,
    out_items: *mut *const MfKernelSymbolInfo,
    out_len: *mut usize,
) -> i32 {
    get(list, out_items, out_len)
}

/// Frees a kernel symbol list. NULL is a no-op (returns 0); anything that is not a live
/// `MfKernelSymbolList` returns `MF_ERR_INVALID_HANDLE` and is left alone.
///
/// Ownership: takes `list`; its records and strings must not be used afterwards.
#[no_mangle]
pub extern "C" fn mf_kernel_symbol_list_free(list: *mut MfKernelSymbolList) -> i32 {
    handle::free(list)
}
