//! The kernel of an OS layer: kernel modules (lists, lookups, exports, sections), kernel
//! symbols by address and as a listing, and structure layouts from the kernel's own type
//! information (Linux: BTF).
//!
//! Layers without a kernel or without some of this (the native layer, the dummy OS for
//! symbols and types) fail with kind `MF_KIND_UNSUPPORTED` and say so in
//! `mf_last_error_message`.

use std::ffi::{c_char, c_void};

use memflow_core::error::{Error, ErrorKind, ErrorOrigin};
use memflow_core::os::{ExportInfo, KernelSymbolInfo, ModuleInfo, Os, SectionInfo};

use crate::call::{buf_mut, callback_arg, ffi_err, guard, out_arg, ref_arg, str_arg};
use crate::handle;
use crate::lists::{self, hand_out, MfExportList, MfKernelSymbolList, MfSectionList, Records};
use crate::os::MfOs;
use crate::process::MfModuleList;
use memflow_core::plugins::records::{
    addr_in, size_out, IncomingRecord, MfExportCallback, MfExportInfo, MfKernelSymbolCallback, MfKernelSymbolInfo,
    MfModuleInfo, MfSectionCallback, MfSectionInfo,
};

/// Lists every kernel module into a new list (empty for layers without a kernel). Modules
/// that vanish while listing are skipped.
///
/// Ownership: on success `*out` receives a list owned by the caller; free it with
/// `mf_module_list_free`. The strings of its records belong to the list.
#[no_mangle]
pub extern "C" fn mf_os_kernel_module_list(os: *mut MfOs, out: *mut *mut MfModuleList) -> i32 {
    guard(|| {
        let modules = handle::with(os, "os", |os| {
            out_arg(out, "out")?;
            os.inner.module_list()
        })?;
        hand_out(MfModuleList(Records::new(modules, MfModuleInfo::borrow)), out)
    })
}

/// Puts the module `find` looks up on `os` into a new list of one, at `*out`.
fn one_module(
    os: *mut MfOs,
    out: *mut *mut MfModuleList,
    find: impl FnOnce(&mut MfOs) -> Result<ModuleInfo, Error>,
) -> Result<(), Error> {
    let module = handle::with(os, "os", |os| {
        out_arg(out, "out")?;
        find(os)
    })?;
    hand_out(MfModuleList(Records::new(vec![module], MfModuleInfo::borrow)), out)
}

/// Finds the first kernel module whose name equals `name` (ASCII case-insensitive). Fails
/// with kind `MF_KIND_NOT_FOUND` if there is none.
///
/// Ownership: `name` is borrowed. On success `*out` receives a list of exactly that one
/// module, owned by the caller (read it with `mf_module_list_get`, free it with
/// `mf_module_list_free`); its strings belong to the list.
#[no_mangle]
pub extern "C" fn mf_os_kernel_module_by_name(os: *mut MfOs, name: *const c_char, out: *mut *mut MfModuleList) -> i32 {
    guard(|| {
        one_module(os, out, |os| {
            // SAFETY: C string argument, checked for NULL.
            let name = unsafe { str_arg(name, "name") }?;
            os.inner.module_by_name(name)
        })
    })
}

/// Finds the kernel module whose range `base` to `base + size` holds `address`. Fails with
/// kind `MF_KIND_NOT_FOUND` if no module's does.
///
/// Ownership: as for `mf_os_kernel_module_by_name`.
#[no_mangle]
pub extern "C" fn mf_os_kernel_module_by_address(os: *mut MfOs, address: u64, out: *mut *mut MfModuleList) -> i32 {
    guard(|| {
        one_module(os, out, |os| {
            let address = addr_in(address);
            let found = os.inner.module_list()?.into_iter().find(|m| address >= m.base && address - m.base < m.size);
            found.ok_or_else(|| {
                Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
                    .with_reason(format_args!("no kernel module holds {address}"))
            })
        })
    })
}

/// Calls `callback` with every symbol the kernel module `module` exports (Linux:
/// `EXPORT_SYMBOL` and `EXPORT_SYMBOL_GPL`; the offset is the symbol's address minus
/// `module->base`, modulo 2^64), until it returns `false`.
///
/// Ownership: `module` (a record obtained from this OS; its strings may be NULL) is borrowed
/// for the call. The record passed to `callback` and its strings are borrowed and valid only
/// during that call. `user` is passed through unchanged.
#[no_mangle]
pub extern "C" fn mf_os_kernel_module_exports(
    os: *mut MfOs,
    module: *const MfModuleInfo,
    callback: MfExportCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            // SAFETY: the caller promises NUL-terminated strings in the record.
            let module = unsafe { ref_arg(module, "module")?.to_core(ErrorOrigin::Ffi) }?;
            let cb = callback_arg(callback, "callback")?;
            let mut f = |e: ExportInfo| {
                let rec = MfExportInfo::borrow(&e);
                // SAFETY: C callback with a record valid for the call, as documented.
                unsafe { cb(user, &rec) }
            };
            os.inner.kernel_module_export_list_callback(&module, (&mut f).into())
        })
    })
}

/// Lists the exports of the kernel module `module` (see `mf_os_kernel_module_exports`) into a
/// new list.
///
/// Ownership: `module` is borrowed for the call. On success `*out` receives a list owned by
/// the caller; free it with `mf_export_list_free`. The strings of its records belong to the
/// list.
#[no_mangle]
pub extern "C" fn mf_os_kernel_module_export_list(
    os: *mut MfOs,
    module: *const MfModuleInfo,
    out: *mut *mut MfExportList,
) -> i32 {
    lists::module_records(
        os,
        "os",
        module,
        out,
        |os, module| os.inner.kernel_module_exports(module),
        |v| MfExportList(Records::new(v, MfExportInfo::borrow)),
    )
}

/// Calls `callback` with every section of the kernel module `module`, until it returns
/// `false`. On Linux these are the sections of `/sys/module/NAME/sections`, with size 0 (the
/// kernel does not keep section sizes).
///
/// Ownership: as for `mf_os_kernel_module_exports`.
#[no_mangle]
pub extern "C" fn mf_os_kernel_module_sections(
    os: *mut MfOs,
    module: *const MfModuleInfo,
    callback: MfSectionCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            // SAFETY: the caller promises NUL-terminated strings in the record.
            let module = unsafe { ref_arg(module, "module")?.to_core(ErrorOrigin::Ffi) }?;
            let cb = callback_arg(callback, "callback")?;
            let mut f = |s: SectionInfo| {
                let rec = MfSectionInfo::borrow(&s);
                // SAFETY: C callback with a record valid for the call, as documented.
                unsafe { cb(user, &rec) }
            };
            os.inner.kernel_module_section_list_callback(&module, (&mut f).into())
        })
    })
}

/// Lists the sections of the kernel module `module` (see `mf_os_kernel_module_sections`)
/// into a new list.
///
/// Ownership: `module` is borrowed for the call. On success `*out` receives a list owned by
/// the caller; free it with `mf_section_list_free`. The strings of its records belong to the
/// list.
#[no_mangle]
pub extern "C" fn mf_os_kernel_module_section_list(
    os: *mut MfOs,
    module: *const MfModuleInfo,
    out: *mut *mut MfSectionList,
) -> i32 {
    lists::module_records(
        os,
        "os",
        module,
        out,
        |os, module| os.inner.kernel_module_sections(module),
        |v| MfSectionList(Records::new(v, MfSectionInfo::borrow)),
    )
}

/// The kernel symbol `address` lies in: the nearest symbol at or below it in the kernel image
/// or in the kernel module whose memory holds it. Fails with kind `MF_KIND_NOT_FOUND` for
/// addresses outside both.
///
/// The name is copied into `name_buf` like `snprintf` does: at most `name_cap - 1` bytes and
/// a NUL; `*out_name_len` receives the name's full length (without the NUL), so the name was
/// cut if `*out_name_len >= name_cap` (pass `name_buf` NULL and `name_cap` 0 to learn the
/// length). `*out_offset` receives `address` minus the symbol's address.
///
/// Ownership: `name_buf` (`name_cap` writable bytes; NULL if `name_cap` is 0),
/// `*out_name_len` and `*out_offset` are caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_kernel_symbol_by_address(
    os: *mut MfOs,
    address: u64,
    name_buf: *mut c_char,
    name_cap: usize,
    out_name_len: *mut usize,
    out_offset: *mut u64,
) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let buf = buf_mut(name_buf.cast(), name_cap, "name_buf")?;
            let name_len = out_arg(out_name_len, "out_name_len")?;
            let offset = out_arg(out_offset, "out_offset")?;
            let symbol = os.inner.kernel_symbol_by_address(addr_in(address))?;
            let name = symbol.name.as_bytes();
            if let Some(room) = name_cap.checked_sub(1) {
                let n = name.len().min(room);
                buf[..n].copy_from_slice(&name[..n]);
                buf[n] = 0;
            }
            name_len.write(name.len());
            offset.write(size_out(addr_in(address).to_umem().wrapping_sub(symbol.address.to_umem())));
            Ok(())
        })
    })
}

/// Calls `callback` with every kernel symbol until it returns `false`: the kernel image's,
/// then each kernel module's (on Linux the order and content of `/proc/kallsyms`).
///
/// Ownership: the record passed to `callback` and its strings are borrowed and valid only
/// during that call. `user` is passed through unchanged.
#[no_mangle]
pub extern "C" fn mf_os_kernel_symbol_list_callback(
    os: *mut MfOs,
    callback: MfKernelSymbolCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let cb = callback_arg(callback, "callback")?;
            let mut f = |s: KernelSymbolInfo| {
                let rec = MfKernelSymbolInfo::borrow(&s);
                // SAFETY: C callback with a record valid for the call, as documented.
                unsafe { cb(user, &rec) }
            };
            os.inner.kernel_symbol_list_callback((&mut f).into())
        })
    })
}

/// Every kernel symbol (as `mf_os_kernel_symbol_list_callback`, in the same order) in a new
/// list at `*out`.
///
/// Ownership: on success `*out` receives a list owned by the caller (read it with
/// `mf_kernel_symbol_list_get`, free it with `mf_kernel_symbol_list_free`); the strings of
/// its records belong to the list.
#[no_mangle]
pub extern "C" fn mf_os_kernel_symbol_list(os: *mut MfOs, out: *mut *mut MfKernelSymbolList) -> i32 {
    guard(|| {
        let symbols = handle::with(os, "os", |os| {
            out_arg(out, "out")?;
            let mut symbols = Vec::new();
            let mut no_memory = false;
            let mut keep = |s: KernelSymbolInfo| {
                no_memory = symbols.try_reserve(1).is_err();
                if !no_memory {
                    symbols.push(s);
                }
                !no_memory
            };
            os.inner.kernel_symbol_list_callback((&mut keep).into())?;
            if no_memory {
                return Err(ffi_err(
                    ErrorKind::OutOfMemory,
                    format_args!("no memory for {} kernel symbols", symbols.len() + 1),
                ));
            }
            Ok(symbols)
        })?;
        hand_out(MfKernelSymbolList(Records::new(symbols, MfKernelSymbolInfo::borrow)), out)
    })
}

/// The byte offset of `member` in the kernel structure (or union) `structure`, from the
/// kernel's own type information (Linux: BTF), e.g. `("task_struct", "comm")`. `member` may
/// be a dotted path into nested members (`"f_path.dentry"` of `"file"`); anonymous
/// structures and unions are looked through. Fails with kind `MF_KIND_NOT_FOUND` if there is
/// no such structure or member.
///
/// Ownership: `structure` and `member` are borrowed; `*out` is caller storage, written on
/// success.
#[no_mangle]
pub extern "C" fn mf_os_type_offset(
    os: *mut MfOs,
    structure: *const c_char,
    member: *const c_char,
    out: *mut u64,
) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            // SAFETY: C string arguments, checked for NULL.
            let (structure, member) = unsafe { (str_arg(structure, "structure")?, str_arg(member, "member")?) };
            let out = out_arg(out, "out")?;
            out.write(size_out(os.inner.type_member_offset(structure, member)?));
            Ok(())
        })
    })
}

/// The size in bytes of the kernel structure (or union) `structure`, from the kernel's own
/// type information. Fails with kind `MF_KIND_NOT_FOUND` if there is none.
///
/// Ownership: `structure` is borrowed; `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_type_size(os: *mut MfOs, structure: *const c_char, out: *mut u64) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            // SAFETY: C string argument, checked for NULL.
            let structure = unsafe { str_arg(structure, "structure") }?;
            let out = out_arg(out, "out")?;
            out.write(size_out(os.inner.type_size(structure)?));
            Ok(())
        })
    })
}
