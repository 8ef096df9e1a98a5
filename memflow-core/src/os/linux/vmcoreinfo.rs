//! The kernel's own VMCOREINFO text, read from the memory of a running or dumped kernel.
//!
//! At boot Linux writes a `key=value` description of itself for dump tools into the buffer
//! `vmcoreinfo_data`, `vmcoreinfo_size` bytes long: its release and page size, where
//! `mem_map`/`mem_section` and the page tables are, structure sizes and member offsets,
//! `KERNELOFFSET` (the KASLR slide). A kdump kernel copies it into its dump's VMCOREINFO note,
//! and makedumpfile needs it to tell free, cache and user pages apart (`-d 31`). A dump that
//! memflow writes from a guest carries it when it is read here.
//!
//! Both symbols come from the OS layer's kernel symbols, the text from its kernel address
//! space; the size and the text are checked, since guest memory may say anything.

use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, Result};
use crate::instance::OsInstanceArcBox;
use crate::mem::{alloc, MemoryView};
use crate::os::Os;
use crate::types::Address;

/// The kernel symbol of the pointer to the text.
pub const DATA_SYMBOL: &str = "vmcoreinfo_data";
/// The kernel symbol of the text's length in bytes (`size_t`).
pub const SIZE_SYMBOL: &str = "vmcoreinfo_size";
/// The longest text accepted: the kernel's buffer is one page, and pages are at most 64 KiB.
pub const MAX_LEN: u64 = 64 << 10;

/// The VMCOREINFO text of the kernel an OS layer sees, through its kernel symbols and its
/// kernel address space.
///
/// Fails with `NotFound` when the kernel has no such symbols (a kernel without
/// `CONFIG_VMCORE_INFO`, or an OS layer that is not Linux), `Unsupported` when the layer has no
/// kernel address space, and `Malformed` when the memory there is not a VMCOREINFO text.
pub fn kernel_vmcoreinfo(os: &mut OsInstanceArcBox<'_>) -> Result<Vec<u8>> {
    let data = os.kernel_symbol(DATA_SYMBOL)?;
    let size = os.kernel_symbol(SIZE_SYMBOL)?;
    let mem = os.as_mut_impl_memoryview().ok_or_else(|| {
        Error::new(ErrorOrigin::Os, ErrorKind::Unsupported).with_reason("the OS layer has no kernel address space")
    })?;
    read_vmcoreinfo(mem, data, size)
}

/// Reads the text whose pointer is at `data` and whose length is at `size` (both kernel
/// virtual addresses, as the symbols [`DATA_SYMBOL`] and [`SIZE_SYMBOL`] give them).
pub fn read_vmcoreinfo(mem: &mut impl MemoryView, data: Address, size: Address) -> Result<Vec<u8>> {
    let invalid = |why: String| Error::new(ErrorOrigin::Os, ErrorKind::Malformed).with_reason(why);
    let len = mem.read_addr(size).map_err(unreadable(format!("{SIZE_SYMBOL} at {size}")))?.to_umem() as u64;
    if len == 0 || len > MAX_LEN {
        return Err(invalid(format!("{SIZE_SYMBOL} at {size} says {len} bytes (1 to {MAX_LEN} expected)")));
    }
    let text_at = mem.read_addr(data).map_err(unreadable(format!("{DATA_SYMBOL} at {data}")))?;
    let mut text: Vec<u8> = alloc::zeroed_vec(len as usize, ErrorOrigin::Os, "the VMCOREINFO text")?;
    mem.read_raw_into(text_at, &mut text).map_err(unreadable(format!("the VMCOREINFO text at {text_at}")))?;
    if let Some(at) = text.iter().position(|&b| b != b'\n' && !(b' '..=b'~').contains(&b)) {
        return Err(invalid(format!(
            "{DATA_SYMBOL} points at {text_at}, whose byte {at} ({:#04x}) is not VMCOREINFO text",
            text[at]
        )));
    }
    if !text.starts_with(b"OSRELEASE=") {
        return Err(invalid(format!("the text at {text_at} does not begin with OSRELEASE=")));
    }
    Ok(text)
}

/// Maps a failed read of `what` to an error that names it.
fn unreadable<T>(what: String) -> impl FnOnce(PartialError<T>) -> Error {
    move |e| Error::from(e).with_reason(format!("{what} is unreadable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::connector::buffer::BufferMemory;
    use crate::mem::PhysicalMemory;

    /// A kernel address space of one page: the size at 0x0, the pointer at 0x8, text at 0x100.
    fn space(size: u64, text: &[u8]) -> impl MemoryView {
        let mut page = vec![0u8; 4096];
        page[..8].copy_from_slice(&size.to_le_bytes());
        page[8..16].copy_from_slice(&0x100u64.to_le_bytes());
        page[0x100..0x100 + text.len()].copy_from_slice(text);
        BufferMemory::identity(Arc::new(page)).unwrap().into_phys_view()
    }

    fn read(size: u64, text: &[u8]) -> Result<Vec<u8>> {
        read_vmcoreinfo(&mut space(size, text), Address::new(8), Address::new(0))
    }

    #[test]
    fn reads_the_text_the_size_covers() {
        let text = b"OSRELEASE=6.1.0\nPAGESIZE=4096\nKERNELOFFSET=0\n";
        assert_eq!(read(text.len() as u64, text).unwrap(), text);
        assert_eq!(read(16, text).unwrap(), b"OSRELEASE=6.1.0\n");
    }

    #[test]
    fn refuses_sizes_and_bytes_that_are_not_a_vmcoreinfo_text() {
        let text = b"OSRELEASE=6.1.0\n";
        for size in [0, MAX_LEN + 1, u64::MAX] {
            assert_eq!(read(size, text).unwrap_err().kind, ErrorKind::Malformed, "size {size}");
        }
        assert_eq!(read(20, text).unwrap_err().kind, ErrorKind::Malformed, "NUL bytes after the text");
        assert_eq!(read(8, b"PAGESIZE=4096\n").unwrap_err().kind, ErrorKind::Malformed);
        // A length past the end of the space reads partly: an error, not a short text.
        assert!(read(4000, text).is_err());
    }
}
