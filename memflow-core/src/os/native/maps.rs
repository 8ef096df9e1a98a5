//! `/proc/PID/maps`: the mappings of a process, the images they form and its mapped ranges.

use std::collections::HashMap;

use crate::os::MemoryRange;
use crate::types::{imem, umem, Address, PageType};

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Readable.
    pub read: bool,
    /// Writeable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Offset into the mapped file.
    pub offset: u64,
    /// The mapped file, a pseudo name like `[stack]`, or empty for anonymous memory.
    pub path: String,
}

/// Splits off the first whitespace-separated field.
fn split_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    text.split_at(text.find(|c: char| c.is_ascii_whitespace()).unwrap_or(text.len()))
}

impl Mapping {
    /// Parses `start-end perms offset dev inode [path]`; the path may contain spaces.
    fn parse(line: &str) -> Option<Mapping> {
        let (range, rest) = split_field(line);
        let (perms, rest) = split_field(rest);
        let (offset, rest) = split_field(rest);
        let (_dev, rest) = split_field(rest);
        let (_inode, rest) = split_field(rest);
        let (start, end) = range.split_once('-')?;
        let perms = perms.as_bytes();
        Some(Mapping {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            read: perms.first() == Some(&b'r'),
            write: perms.get(1) == Some(&b'w'),
            exec: perms.get(2) == Some(&b'x'),
            offset: u64::from_str_radix(offset, 16).ok()?,
            path: rest.trim_start().to_owned(),
        })
    }
}

/// Parses the text of `/proc/PID/maps`, skipping malformed lines.
pub(super) fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(Mapping::parse).collect()
}

/// A file mapped as an image: a mapping of the file at offset 0 and the later mappings of the
/// same file that follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ImageSpan {
    /// Start of the offset-0 mapping.
    pub base: u64,
    /// End of the last mapping of the file.
    pub end: u64,
    /// The file.
    pub path: String,
}

/// Groups the file-backed mappings into images, in address order of their bases. Each
/// offset-0 mapping starts an image (so a file mapped twice gives two); a mapping at another
/// offset extends the latest image of its file. Mappings of a file before its first offset-0
/// mapping belong to no image.
pub(super) fn image_spans(maps: &[Mapping]) -> Vec<ImageSpan> {
    let mut spans: Vec<ImageSpan> = Vec::new();
    let mut latest: HashMap<&str, usize> = HashMap::new();
    for m in maps.iter().filter(|m| m.path.starts_with('/')) {
        if m.offset == 0 {
            latest.insert(&m.path, spans.len());
            spans.push(ImageSpan { base: m.start, end: m.end, path: m.path.clone() });
        } else if let Some(&index) = latest.get(m.path.as_str()) {
            spans[index].end = spans[index].end.max(m.end);
        }
    }
    spans
}

/// The readable mappings clipped to `[start, end)`, as ranges with their flags (`USER`
/// always, `WRITEABLE` for writeable ones, `NOEXEC` for non-executable ones). A range joins
/// the previous one if their flags are equal and the gap between them is at most
/// `gap_size` bytes (never if `gap_size` is negative).
pub(super) fn memory_ranges(maps: &[Mapping], gap_size: imem, start: Address, end: Address) -> Vec<MemoryRange> {
    let mut out: Vec<MemoryRange> = Vec::new();
    for m in maps.iter().filter(|m| m.read) {
        let lo = Address::from(m.start).max(start);
        let hi = Address::from(m.end).min(end);
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

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 100    /usr/bin/my prog
55d0c0a02000-55d0c0a08000 r-xp 00002000 fd:01 100    /usr/bin/my prog
55d0c0a08000-55d0c0a0a000 rw-p 00008000 fd:01 100    /usr/bin/my prog
55d0c0a0a000-55d0c0a0b000 rw-p 00000000 00:00 0 
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0      [heap]
7f0000000000-7f0000001000 r--p 00001000 fd:01 200    /usr/lib/data.bin
7f0000010000-7f0000012000 r--p 00000000 fd:01 300    /usr/lib/libx.so
7f0000012000-7f0000013000 ---p 00002000 fd:01 300    /usr/lib/libx.so
7f0000013000-7f0000015000 r-xp 00003000 fd:01 300    /usr/lib/libx.so
7f0000020000-7f0000021000 r--p 00000000 fd:01 300    /usr/lib/libx.so
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0      [stack]
not a mapping line
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]
";

    #[test]
    fn parses_lines_with_spaces_and_without_paths() {
        let maps = parse_maps(MAPS);
        assert_eq!(maps.len(), 12);
        assert_eq!(maps[0].path, "/usr/bin/my prog");
        assert_eq!((maps[1].read, maps[1].write, maps[1].exec, maps[1].offset), (true, false, true, 0x2000));
        assert_eq!(maps[3].path, "");
        assert_eq!(maps[4].path, "[heap]");
        assert_eq!(maps[11].start, 0xffff_ffff_ff60_0000);
    }

    #[test]
    fn images_group_by_file_and_offset_zero() {
        let spans = image_spans(&parse_maps(MAPS));
        let expect = [
            (0x55d0_c0a0_0000, 0x55d0_c0a0_a000, "/usr/bin/my prog"),
            (0x7f00_0001_0000, 0x7f00_0001_5000, "/usr/lib/libx.so"),
            (0x7f00_0002_0000, 0x7f00_0002_1000, "/usr/lib/libx.so"),
        ];
        let got: Vec<_> = spans.iter().map(|s| (s.base, s.end, s.path.as_str())).collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn ranges_merge_clip_and_skip_unreadable() {
        let maps = parse_maps(MAPS);
        let all = memory_ranges(&maps, -1, Address::NULL, Address::INVALID);
        // Every readable mapping, none merged.
        assert_eq!(all.len(), 10);
        assert!(all.iter().all(|r| r.page_type.contains(PageType::USER)));
        let rw = PageType::USER | PageType::WRITEABLE | PageType::NOEXEC;
        assert_eq!(all[2], MemoryRange { base: Address::new(0x55d0_c0a0_8000), size: 0x2000, page_type: rw });
        // Adjacent rw ranges merge with gap 0; the heap is far away.
        let merged = memory_ranges(&maps, 0, Address::NULL, Address::INVALID);
        assert_eq!(merged.len(), 9);
        assert_eq!(merged[2].size, 0x3000);
        // A large gap joins the two read-only libx.so pieces around the unreadable one? No:
        // the executable piece between them has other flags.
        let wide = memory_ranges(&maps, 0x10_0000, Address::NULL, Address::INVALID);
        assert_eq!(
            wide.iter().filter(|r| r.base.to_umem() >= 0x7f00_0000_0000 && r.base.to_umem() < 0x7ff0_0000_0000).count(),
            3
        );
        // Clipping.
        let clipped = memory_ranges(&maps, -1, Address::new(0x55d0_c0a0_1000), Address::new(0x55d0_c0a0_3000));
        assert_eq!(clipped.len(), 2);
        assert_eq!((clipped[0].base, clipped[0].size), (Address::new(0x55d0_c0a0_1000), 0x1000));
        assert_eq!((clipped[1].base, clipped[1].size), (Address::new(0x55d0_c0a0_2000), 0x1000));
    }
}
