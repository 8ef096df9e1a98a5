//! OS layers: what the bytes mean. OS facts, process lists and lookups, kernel modules and
//! symbols, kernel memory and its translation, and the physical memory and CPU state of the
//! connector below.

use std::ffi::{c_char, c_void};

use memflow_core::connector::CpuState;
use memflow_core::error::{Error, ErrorKind};
use memflow_core::instance::OsInstanceArcBox;
use memflow_core::mem::{MemoryView, PhysicalMemory};
use memflow_core::os::{Os, ProcessInfo};
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::Address;

use crate::call::{array_mut, buf_mut, buf_ref, callback_arg, ffi_err, guard, guard_partial, out_arg, str_arg};
use crate::connector::{phys, registers};
use crate::handle::{self, impl_handle};
use crate::lists::{self, hand_out, impl_record_list, MfMemoryRangeList, Records};
use crate::process::MfProcess;
use crate::{mem, translate};
use memflow_core::plugins::records::{
    addr_in, addr_out, MfAArch64Registers, MfMemoryRangeCallback, MfModuleInfo, MfModuleInfoCallback, MfOsInfo,
    MfPhysicalMetadata, MfProcessInfo, MfProcessInfoCallback, MfReadOp, MfRiscVRegisters, MfTranslateOp, MfWriteOp,
    MfX86Registers,
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

/// A list of processes, as made by `mf_os_process_list` or `mf_os_process_list_by_name`. Opaque; read it with
/// `mf_process_list_get`, free it with `mf_process_list_free`.
///
/// Threads: may be used from several threads at once; calls on it are serialised (see
/// "Threads" at the top of memflow.h).
pub struct MfProcessList(Records<MfProcessInfo, ProcessInfo>);

impl_handle! {
    MfOs = 3;
    MfProcessList = 5;
}

impl_record_list! {
    MfProcessList: MfProcessInfo;
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
        hand_out(MfProcessList(Records::new(infos, MfProcessInfo::borrow)), out)
    })
}

/// Lists every process whose name is exactly `name` into a new list (empty if there is none).
///
/// Ownership: `name` is borrowed for the call. On success `*out` receives a list owned by the
/// caller; free it with `mf_process_list_free`. The strings of its records belong to the list.
#[no_mangle]
pub extern "C" fn mf_os_process_list_by_name(os: *mut MfOs, name: *const c_char, out: *mut *mut MfProcessList) -> i32 {
    guard(|| {
        let infos = handle::with(os, "os", |os| {
            // SAFETY: C string argument, checked for NULL.
            let name = unsafe { str_arg(name, "name") }?;
            out_arg(out, "out")?;
            let mut infos = os.inner.process_info_list()?;
            infos.retain(|i| &*i.name == name);
            Ok(infos)
        })?;
        hand_out(MfProcessList(Records::new(infos, MfProcessInfo::borrow)), out)
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
    lists::get(list, out_items, out_len)
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
    mem::single(os, "os", done, len, ErrorKind::PartialRead, |os| {
        let buf = buf_mut(buf.cast(), len, "buf")?;
        let view = os
            .inner
            .as_mut_impl_memoryview()
            .ok_or_else(|| ffi_err(ErrorKind::Unsupported, "this OS layer has no kernel address space"))?;
        view.read_single(addr_in(addr), buf)
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
    mem::single(os, "os", done, len, ErrorKind::PartialWrite, |os| {
        let buf = buf_ref(buf.cast(), len, "buf")?;
        let view = os
            .inner
            .as_mut_impl_memoryview()
            .ok_or_else(|| ffi_err(ErrorKind::Unsupported, "this OS layer has no kernel address space"))?;
        view.write_single(addr_in(addr), buf)
    })
}

/// The kernel address space of `os`, for translation.
fn kernel_translation(os: &mut MfOs) -> Result<&mut (impl VirtualTranslate + '_), Error> {
    os.inner.as_mut_impl_virtualtranslate().ok_or_else(|| translate::no_translation("OS layer"))
}

/// Translates the kernel virtual address `addr` into `*out`, for layers with a kernel address
/// space (others fail with `MF_ERR_UNSUPPORTED`). An address that does not translate fails
/// with kind `MF_KIND_UNMAPPED` or `MF_KIND_OUT_OF_BOUNDS`.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_virt_to_phys(os: *mut MfOs, addr: u64, out: *mut u64) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let out = out_arg(out, "out")?;
            out.write(translate::virt_to_phys(kernel_translation(os)?, addr)?);
            Ok(())
        })
    })
}

/// Translates the kernel virtual addresses of `count` ops in one batch. Every op gets its own
/// outcome: `phys`, `page_size` and `flags` on success, else `result` says why it does not
/// translate.
///
/// Returns 0 when the batch ran (check each op's `result`), `MF_ERR_UNSUPPORTED` for layers
/// without a kernel address space, or another error code if the batch as a whole failed
/// (then the ops are untouched).
///
/// Ownership: `ops` (an array of `count` ops, NULL if `count` is 0) is borrowed for the call.
#[no_mangle]
pub extern "C" fn mf_os_virt_to_phys_batch(os: *mut MfOs, ops: *mut MfTranslateOp, count: usize) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let ops = array_mut(ops, count, "ops")?;
            translate::virt_to_phys_batch(kernel_translation(os)?, ops)
        })
    })
}

/// Calls `callback` with the mapped ranges of the kernel address space between `start` and
/// `end` (0 and `UINT64_MAX` for all), in ascending order, merging neighbours with equal
/// flags at most `gap` bytes apart, until it returns `false`. Fails with `MF_ERR_UNSUPPORTED`
/// for layers without a kernel address space.
///
/// Ownership: the range passed to `callback` is borrowed for that call. `user` is passed
/// through unchanged.
#[no_mangle]
pub extern "C" fn mf_os_page_map_callback(
    os: *mut MfOs,
    gap: u64,
    start: u64,
    end: u64,
    callback: MfMemoryRangeCallback,
    user: *mut c_void,
) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let cb = callback_arg(callback, "callback")?;
            translate::page_map_callback(kernel_translation(os)?, gap, start, end, cb, user)
        })
    })
}

/// The mapped ranges of the kernel address space (as `mf_os_page_map_callback`) as a new list.
///
/// Ownership: on success `*out` receives a list owned by the caller; free it with
/// `mf_memory_range_list_free`.
#[no_mangle]
pub extern "C" fn mf_os_page_map(
    os: *mut MfOs,
    gap: u64,
    start: u64,
    end: u64,
    out: *mut *mut MfMemoryRangeList,
) -> i32 {
    guard(|| {
        let list = handle::with(os, "os", |os| {
            out_arg(out, "out")?;
            translate::page_map(kernel_translation(os)?, gap, start, end)
        })?;
        hand_out(list, out)
    })
}

/// The physical memory under `os` (the connector it was created on).
fn phys_mem(os: &mut MfOs) -> Result<&mut (impl PhysicalMemory + '_), Error> {
    os.inner
        .as_mut_impl_physicalmemory()
        .ok_or_else(|| ffi_err(ErrorKind::Unsupported, "this OS layer has no physical memory (no connector below it)"))
}

/// Reads `len` bytes of the physical memory under `os` (the connector it was created on) at
/// `addr`, as `mf_connector_read`. Layers without one (like the native layer) fail with
/// `MF_ERR_UNSUPPORTED`.
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
pub extern "C" fn mf_os_phys_read(os: *mut MfOs, addr: u64, buf: *mut c_void, len: usize, done: *mut usize) -> i32 {
    mem::single(os, "os", done, len, ErrorKind::PartialRead, |os| {
        let buf = buf_mut(buf.cast(), len, "buf")?;
        phys_mem(os)?.phys_read_single(phys(addr), buf)
    })
}

/// Writes `len` bytes from `buf` to the physical memory under `os` at `addr`, as
/// `mf_connector_write`. Layers without one fail with `MF_ERR_UNSUPPORTED`.
///
/// Returns 0, `MF_ERR_PARTIAL_WRITE` if some bytes were not written, an error of kind
/// `MF_KIND_READ_ONLY` if the physical memory is read-only, or another error code.
///
/// `*done` (if `done` is not NULL) receives how many bytes from the start of `buf` were
/// written before the first one that was not: `len` with 0, less with `MF_ERR_PARTIAL_WRITE`,
/// 0 with any other error.
///
/// Ownership: `buf` (at least `len` readable bytes; NULL if `len` is 0) is borrowed; `*done`
/// is caller storage.
#[no_mangle]
pub extern "C" fn mf_os_phys_write(os: *mut MfOs, addr: u64, buf: *const c_void, len: usize, done: *mut usize) -> i32 {
    mem::single(os, "os", done, len, ErrorKind::PartialWrite, |os| {
        let buf = buf_ref(buf.cast(), len, "buf")?;
        phys_mem(os)?.phys_write_single(phys(addr), buf)
    })
}

/// Reads many ranges of the physical memory under `os` in one batch, as
/// `mf_connector_read_batch`: each op's `result` is set to 0 or `MF_ERR_PARTIAL_READ`
/// (unreadable bytes zeroed) and its `done` to the bytes read before its first unreadable one.
/// Layers without physical memory fail with `MF_ERR_UNSUPPORTED`.
///
/// Returns 0 if every op was read fully, `MF_ERR_PARTIAL_READ` if any was partial, or another
/// error code if the batch as a whole failed (then the ops' results are untouched).
///
/// Ownership: `ops` (an array of `count` ops, NULL if `count` is 0) and their buffers are
/// borrowed for the call.
#[no_mangle]
pub extern "C" fn mf_os_phys_read_batch(os: *mut MfOs, ops: *mut MfReadOp, count: usize) -> i32 {
    guard_partial(|| {
        handle::with(os, "os", |os| {
            let ops = array_mut(ops, count, "ops")?;
            let mem = phys_mem(os)?;
            memflow_core::plugins::records::read_ops(ops, phys, |b| mem.phys_read_batch(b))
        })
    })
}

/// Writes many ranges of the physical memory under `os` in one batch, as
/// `mf_connector_write_batch`: each op's `result` is set to 0 or `MF_ERR_PARTIAL_WRITE` and
/// its `done` to the bytes written before its first failed one. Layers without physical memory
/// fail with `MF_ERR_UNSUPPORTED`.
///
/// Returns 0, `MF_ERR_PARTIAL_WRITE` if any op was partly written, an error of kind
/// `MF_KIND_READ_ONLY` if the physical memory is read-only, or another error code if the batch
/// as a whole failed (then the ops' results are untouched).
///
/// Ownership: `ops` (an array of `count` ops, NULL if `count` is 0) and their buffers are
/// borrowed for the call.
#[no_mangle]
pub extern "C" fn mf_os_phys_write_batch(os: *mut MfOs, ops: *mut MfWriteOp, count: usize) -> i32 {
    guard_partial(|| {
        handle::with(os, "os", |os| {
            let ops = array_mut(ops, count, "ops")?;
            let mem = phys_mem(os)?;
            memflow_core::plugins::records::write_ops(ops, phys, |b| mem.phys_write_batch(b))
        })
    })
}

/// Static facts about the physical memory under `os` (size, read-only), as
/// `mf_connector_metadata`. Layers without physical memory fail with `MF_ERR_UNSUPPORTED`.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_phys_metadata(os: *mut MfOs, out: *mut MfPhysicalMetadata) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let out = out_arg(out, "out")?;
            out.write(MfPhysicalMetadata::from(&phys_mem(os)?.metadata()));
            Ok(())
        })
    })
}

/// The number of CPUs the connector under `os` has register state for: 0 if it has none or
/// the layer has no connector.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_cpu_count(os: *const MfOs, out: *mut usize) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            let out = out_arg(out, "out")?;
            out.write(os.inner.as_ref_impl_cpustate().map_or(0, |c| c.cpu_count()));
            Ok(())
        })
    })
}

/// The x86 registers of CPU `cpu` (0-based) as the connector under `os` recorded them, as
/// `mf_connector_x86_registers`.
///
/// Returns 0; `MF_ERR_UNSUPPORTED` if there is no CPU state; an error of kind
/// `MF_KIND_NOT_FOUND` if `cpu` is out of range or the target is not x86.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_x86_registers(os: *const MfOs, cpu: usize, out: *mut MfX86Registers) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            registers(os.inner.as_ref_impl_cpustate(), "OS layer", out, |s| Ok((&s.x86_registers(cpu)?).into()))
        })
    })
}

/// The AArch64 registers of CPU `cpu` (0-based) as the connector under `os` recorded them,
/// as `mf_connector_aarch64_registers`.
///
/// Returns 0; `MF_ERR_UNSUPPORTED` if there is no CPU state; an error of kind
/// `MF_KIND_NOT_FOUND` if `cpu` is out of range or the target is not AArch64.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_aarch64_registers(os: *const MfOs, cpu: usize, out: *mut MfAArch64Registers) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            registers(os.inner.as_ref_impl_cpustate(), "OS layer", out, |s| Ok((&s.aarch64_registers(cpu)?).into()))
        })
    })
}

/// The RISC-V registers of CPU `cpu` (0-based) as the connector under `os` recorded them,
/// as `mf_connector_riscv_registers`.
///
/// Returns 0; `MF_ERR_UNSUPPORTED` if there is no CPU state; an error of kind
/// `MF_KIND_NOT_FOUND` if `cpu` is out of range or the target is not RISC-V.
///
/// Ownership: `*out` is caller storage, written on success.
#[no_mangle]
pub extern "C" fn mf_os_riscv_registers(os: *const MfOs, cpu: usize, out: *mut MfRiscVRegisters) -> i32 {
    guard(|| {
        handle::with(os, "os", |os| {
            registers(os.inner.as_ref_impl_cpustate(), "OS layer", out, |s| Ok((&s.riscv_registers(cpu)?).into()))
        })
    })
}
