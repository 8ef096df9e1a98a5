//! Address translation of one address space (an OS layer's kernel space or a process), the
//! common bodies of `mf_os_virt_to_phys*` / `mf_os_page_map*` and their `mf_process_*` twins.

use std::collections::HashMap;
use std::ffi::c_void;

use memflow_core::error::{Error, ErrorKind, ErrorOrigin};
use memflow_core::os::MemoryRange;
use memflow_core::translate::{TranslationFailure, VirtualTranslate, VirtualTranslation};
use memflow_core::types::{umem, PhysicalAddress};

use crate::call::ffi_err;
use crate::lists::{MfMemoryRangeList, Records};
use memflow_core::plugins::records::{addr_in, addr_out, size_out, MfMemoryRange, MfTranslateOp};

/// A (checked, non-NULL) `MfMemoryRangeCallback`.
type RangeFn = unsafe extern "C" fn(user: *mut c_void, range: *const MfMemoryRange) -> bool;

/// The error for an object without an address space of its own.
pub(crate) fn no_translation(what: &str) -> Error {
    ffi_err(ErrorKind::Unsupported, format_args!("this {what} has no address translation"))
}

/// The physical address of `addr`.
pub(crate) fn virt_to_phys(t: &mut impl VirtualTranslate, addr: u64) -> Result<u64, Error> {
    Ok(addr_out(t.virt_to_phys(addr_in(addr))?.address))
}

/// Translates the address of every op in one batch and sets each op's outcome.
pub(crate) fn virt_to_phys_batch(t: &mut impl VirtualTranslate, ops: &mut [MfTranslateOp]) -> Result<(), Error> {
    // Every address is reported once, but successes and failures through different
    // callbacks: the outcomes are matched to the ops by address.
    let mut outcome: HashMap<u64, Result<PhysicalAddress, i32>> = HashMap::with_capacity(ops.len());
    {
        let mut ok = |t: VirtualTranslation| {
            outcome.insert(addr_out(t.va), Ok(t.pa));
            true
        };
        let mut addrs = ops.iter().map(|op| addr_in(op.addr));
        // A second closure cannot borrow `outcome` mutably as well; collect failures apart.
        let mut failed: Vec<(u64, i32)> = Vec::new();
        let mut fail = |f: TranslationFailure| {
            failed.push((addr_out(f.va), f.error.code()));
            true
        };
        t.virt_to_phys_list((&mut addrs).into(), (&mut ok).into(), (&mut fail).into())?;
        outcome.extend(failed.into_iter().map(|(va, code)| (va, Err(code))));
    }
    for op in ops.iter_mut() {
        // Every address is reported; `Internal` marks a translator that left one out.
        let result =
            outcome.get(&op.addr).copied().unwrap_or(Err(Error::new(ErrorOrigin::Ffi, ErrorKind::Internal).code()));
        *op = match result {
            Ok(pa) => MfTranslateOp {
                addr: op.addr,
                phys: addr_out(pa.address),
                page_size: pa.page_size().map_or(0, size_out),
                flags: pa.page_type.bits() as u32,
                result: 0,
            },
            Err(code) => MfTranslateOp { addr: op.addr, result: code, ..MfTranslateOp::default() },
        };
    }
    Ok(())
}

/// Calls `callback` with the mapped ranges of `start..end` (merged across gaps of at most
/// `gap` bytes) until it returns `false`.
pub(crate) fn page_map_callback(
    t: &mut impl VirtualTranslate,
    gap: u64,
    start: u64,
    end: u64,
    cb: RangeFn,
    user: *mut c_void,
) -> Result<(), Error> {
    // The translator goes on after `false`; the caller's callback is not called again.
    let mut going = true;
    let mut f = |r: MemoryRange| {
        if going {
            let rec = MfMemoryRange::from(&r);
            // SAFETY: C callback with a record valid for the call, as documented.
            going = unsafe { cb(user, &rec) };
        }
        going
    };
    t.virt_page_map_range(umem::from(gap), addr_in(start), addr_in(end), (&mut f).into())
}

/// The mapped ranges of `start..end` (merged across gaps of at most `gap` bytes) as a list.
pub(crate) fn page_map(
    t: &mut impl VirtualTranslate,
    gap: u64,
    start: u64,
    end: u64,
) -> Result<MfMemoryRangeList, Error> {
    let ranges = t.virt_page_map_range_vec(umem::from(gap), addr_in(start), addr_in(end))?;
    Ok(MfMemoryRangeList(Records::new(ranges, |r| MfMemoryRange::from(r))))
}
