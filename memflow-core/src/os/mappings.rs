//! The mappings of a process, however a layer learned them (`/proc/PID/maps`, the kernel's
//! VMAs): the images they form and the mapped ranges they give.

use std::collections::HashMap;
use std::hash::Hash;

use super::MemoryRange;
use crate::types::{imem, umem, Address, PageType};

/// One mapping of a process: `start..end` with its permissions, mapped from `file` at
/// `offset` (anonymous memory has no file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping<F> {
    /// First address.
    pub start: Address,
    /// One past the last address.
    pub end: Address,
    /// Readable.
    pub read: bool,
    /// Writeable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Offset into the mapped file in bytes.
    pub offset: umem,
    /// What identifies the mapped file (a path, a kernel object address), if any.
    pub file: Option<F>,
}

/// A file mapped as an image: a mapping of the file at offset 0 and the later mappings of the
/// same file that follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpan<F> {
    /// Start of the offset-0 mapping.
    pub base: Address,
    /// End of the last mapping of the file.
    pub end: Address,
    /// The file.
    pub file: F,
}

/// Groups the file-backed mappings into images, in address order of their bases. Each
/// offset-0 mapping starts an image (so a file mapped twice gives two); a mapping at another
/// offset extends the latest image of its file. Mappings of a file before its first offset-0
/// mapping belong to no image.
pub fn image_spans<F: Clone + Eq + Hash>(maps: &[Mapping<F>]) -> Vec<ImageSpan<F>> {
    let mut spans: Vec<ImageSpan<F>> = Vec::new();
    let mut latest: HashMap<&F, usize> = HashMap::new();
    for m in maps {
        let Some(file) = &m.file else { continue };
        if m.offset == 0 {
            latest.insert(file, spans.len());
            spans.push(ImageSpan { base: m.start, end: m.end, file: file.clone() });
        } else if let Some(&index) = latest.get(file) {
            spans[index].end = spans[index].end.max(m.end);
        }
    }
    spans
}

/// The readable mappings (sorted by address) clipped to `[start, end)`, as ranges with their
/// flags (`USER` always, `WRITEABLE` for writeable ones, `NOEXEC` for non-executable ones). A
/// range joins the previous one if their flags are equal and the gap between them is at most
/// `gap_size` bytes (never if `gap_size` is negative).
pub fn memory_ranges<F>(maps: &[Mapping<F>], gap_size: imem, start: Address, end: Address) -> Vec<MemoryRange> {
    let mut out: Vec<MemoryRange> = Vec::new();
    for m in maps.iter().filter(|m| m.read) {
        let lo = m.start.max(start);
        let hi = m.end.min(end);
        if lo >= hi {
            continue;
        }
        let mut page_type = PageType::USER;
        page_type.set(PageType::WRITEABLE, m.write);
        page_type.set(PageType::NOEXEC, !m.exec);
        if let Some(last) = out.last_mut() {
            let last_end = last.base + last.size;
            if gap_size >= 0 && last.page_type == page_type && lo >= last_end && lo - last_end <= gap_size as umem {
                last.size = hi - last.base;
                continue;
            }
        }
        out.push(MemoryRange { base: lo, size: hi - lo, page_type });
    }
    out
}
