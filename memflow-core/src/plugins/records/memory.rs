//! Memory records: page flags, mapped ranges, physical metadata, batch operations and
//! translations.

use std::ffi::c_void;

use crate::mem::PhysicalMemoryMetadata;
use crate::os::MemoryRange;
use crate::types::PageType;

use super::convert::{addr_out, size_out};

/// Page flags of a memory range: a combination of the `MF_PAGE_*` bits.
pub type MfPageFlags = u32;
/// Page flag: the page holds a page table.
pub const MF_PAGE_TABLE: MfPageFlags = 0x01;
/// Page flag: writable at every level.
pub const MF_PAGE_WRITEABLE: MfPageFlags = 0x02;
/// Page flag: instruction fetches are forbidden.
pub const MF_PAGE_NOEXEC: MfPageFlags = 0x04;
/// Page flag: user-mode accessible at every level.
pub const MF_PAGE_USER: MfPageFlags = 0x08;
/// Page flag: nothing is known about the page.
pub const MF_PAGE_UNKNOWN: MfPageFlags = 0x80;

const _: () = {
    assert!(MF_PAGE_TABLE == PageType::PAGE_TABLE.bits() as u32);
    assert!(MF_PAGE_WRITEABLE == PageType::WRITEABLE.bits() as u32);
    assert!(MF_PAGE_NOEXEC == PageType::NOEXEC.bits() as u32);
    assert!(MF_PAGE_USER == PageType::USER.bits() as u32);
    assert!(MF_PAGE_UNKNOWN == PageType::UNKNOWN.bits() as u32);
};

/// A mapped range of an address space.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfMemoryRange {
    /// First address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// Access flags, a combination of `MF_PAGE_*`.
    pub flags: MfPageFlags,
}

impl From<&MemoryRange> for MfMemoryRange {
    fn from(r: &MemoryRange) -> Self {
        MfMemoryRange { base: addr_out(r.base), size: size_out(r.size), flags: r.page_type.bits() as u32 }
    }
}

/// Static facts about a connector's physical memory.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfPhysicalMetadata {
    /// The highest address that may be backed.
    pub max_address: u64,
    /// How many bytes are really backed.
    pub real_size: u64,
    /// Writes always fail.
    pub readonly: bool,
    /// The number of operations per batch the backend handles best (`UINT32_MAX`: any).
    pub ideal_batch_size: u32,
}

impl From<&PhysicalMemoryMetadata> for MfPhysicalMetadata {
    fn from(m: &PhysicalMemoryMetadata) -> Self {
        MfPhysicalMetadata {
            max_address: addr_out(m.max_address),
            real_size: size_out(m.real_size),
            readonly: m.readonly,
            ideal_batch_size: m.ideal_batch_size,
        }
    }
}

/// One address of a translation batch (`mf_os_virt_to_phys_batch`,
/// `mf_process_virt_to_phys_batch`).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default)]
pub struct MfTranslateOp {
    /// The virtual address to translate.
    pub addr: u64,
    /// Set by the call: the physical address, 0 if `addr` does not translate.
    pub phys: u64,
    /// Set by the call: the size of the page `addr` lies in, 0 if not known or not translated.
    pub page_size: u64,
    /// Set by the call: the flags of that page (`MF_PAGE_*`), 0 if not translated.
    pub flags: MfPageFlags,
    /// Set by the call: 0, or the error code why `addr` does not translate (kind
    /// `MF_KIND_UNMAPPED`: not mapped; `MF_KIND_OUT_OF_BOUNDS`: not a valid address or a page
    /// table outside physical memory). Untouched if the call as a whole fails.
    pub result: i32,
}

/// One read of a batch (`mf_connector_read_batch`, `mf_process_read_batch`,
/// `mf_os_phys_read_batch`).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfReadOp {
    /// Where to read.
    pub addr: u64,
    /// Destination of `len` bytes (may be NULL when `len` is 0). Borrowed for the call.
    pub buf: *mut c_void,
    /// How many bytes to read.
    pub len: usize,
    /// Set by the call: 0, or `MF_ERR_PARTIAL_READ` if some bytes could not be read (they are
    /// zero). Untouched if the call as a whole fails.
    pub result: i32,
    /// Set by the call: how many bytes from the start of `buf` were read before the first
    /// unreadable one (`len` if `result` is 0). Untouched if the call as a whole fails.
    pub done: usize,
}

/// One write of a batch (`mf_connector_write_batch`, `mf_process_write_batch`,
/// `mf_os_phys_write_batch`).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfWriteOp {
    /// Where to write.
    pub addr: u64,
    /// Source of `len` bytes (may be NULL when `len` is 0). Borrowed for the call.
    pub buf: *const c_void,
    /// How many bytes to write.
    pub len: usize,
    /// Set by the call: 0, or `MF_ERR_PARTIAL_WRITE` if some bytes were not written.
    /// Untouched if the call as a whole fails.
    pub result: i32,
    /// Set by the call: how many bytes from the start of `buf` were written before the first
    /// one that was not (`len` if `result` is 0). Untouched if the call as a whole fails.
    pub done: usize,
}

/// Receives a mapped range; return `true` to go on, `false` to stop. Borrowed for the call only.
pub type MfMemoryRangeCallback = Option<unsafe extern "C" fn(user: *mut c_void, range: *const MfMemoryRange) -> bool>;
