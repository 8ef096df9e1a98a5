//! `/proc/PID/maps`: the mappings of a process (grouped into images and ranges by
//! [`crate::os::mappings`]).

use crate::os::mappings::Mapping;
use crate::types::{umem, Address};

/// Splits off the first whitespace-separated field.
fn split_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    text.split_at(text.find(|c: char| c.is_ascii_whitespace()).unwrap_or(text.len()))
}

/// Parses one line, `start-end perms offset dev inode [path]`; the path may contain spaces.
/// Only paths starting with `/` name a file (not `[heap]`, `[stack]`, ...).
fn parse_line(line: &str) -> Option<Mapping<String>> {
    let (range, rest) = split_field(line);
    let (perms, rest) = split_field(rest);
    let (offset, rest) = split_field(rest);
    let (_dev, rest) = split_field(rest);
    let (_inode, rest) = split_field(rest);
    let (start, end) = range.split_once('-')?;
    let perms = perms.as_bytes();
    let path = rest.trim_start();
    Some(Mapping {
        start: Address::from(u64::from_str_radix(start, 16).ok()?),
        end: Address::from(u64::from_str_radix(end, 16).ok()?),
        read: perms.first() == Some(&b'r'),
        write: perms.get(1) == Some(&b'w'),
        exec: perms.get(2) == Some(&b'x'),
        offset: u64::from_str_radix(offset, 16).ok()? as umem,
        file: path.starts_with('/').then(|| path.to_owned()),
    })
}

/// Parses the text of `/proc/PID/maps`, skipping malformed lines.
pub(super) fn parse_maps(text: &str) -> Vec<Mapping<String>> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::mappings::{image_spans, memory_ranges};
    use crate::os::MemoryRange;
    use crate::types::PageType;

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
        assert_eq!(maps[0].file.as_deref(), Some("/usr/bin/my prog"));
        assert_eq!((maps[1].read, maps[1].write, maps[1].exec, maps[1].offset), (true, false, true, 0x2000));
        assert_eq!(maps[3].file, None);
        assert_eq!(maps[4].file, None, "[heap] is no file");
        assert_eq!(maps[11].start, Address::new(0xffff_ffff_ff60_0000));
    }

    #[test]
    fn images_group_by_file_and_offset_zero() {
        let spans = image_spans(&parse_maps(MAPS));
        let expect = [
            (Address::new(0x55d0_c0a0_0000), Address::new(0x55d0_c0a0_a000), "/usr/bin/my prog"),
            (Address::new(0x7f00_0001_0000), Address::new(0x7f00_0001_5000), "/usr/lib/libx.so"),
            (Address::new(0x7f00_0002_0000), Address::new(0x7f00_0002_1000), "/usr/lib/libx.so"),
        ];
        let got: Vec<_> = spans.iter().map(|s| (s.base, s.end, s.file.as_str())).collect();
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
