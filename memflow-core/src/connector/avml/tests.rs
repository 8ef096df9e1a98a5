use proptest::prelude::*;

use super::*;
use crate::connector::cpu_state::CpuState;
use crate::connector::lime;
use crate::connector::testdata::{open_bytes, pattern};
use crate::connector::FileConnector;
use crate::error::PartialResultExt;
use crate::mem::PhysicalMemory;
use crate::types::PhysicalAddress;

/// Three blocks as `avml --compress` writes them (the first spans several frame chunks) and a
/// plain LiME block between them; guest 0x1000.. and 0x50000.. are adjacent ranges.
fn sample() -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
    let blocks = vec![(0x1000, pattern(3 * 65536 + 100, 1)), (0x31064, vec![0u8; 5000]), (0x10_0000, pattern(5000, 3))];
    let mut file = block(blocks[0].0, &blocks[0].1);
    file.extend_from_slice(&lime::header(blocks[1].0, blocks[1].0 + 4999));
    file.extend_from_slice(&blocks[1].1);
    file.extend_from_slice(&block(blocks[2].0, &blocks[2].1));
    (file, blocks)
}

fn read(conn: &mut FileConnector, addr: u64, len: usize) -> (Vec<u8>, bool) {
    let mut buf = vec![0xa5u8; len];
    let partial = conn.phys_read_raw_into(PhysicalAddress::plain(Address::new(addr as umem)), &mut buf).is_partial();
    (buf, partial)
}

#[test]
fn blocks_read_back_and_gaps_are_absent() {
    let (file, blocks) = sample();
    assert!(is_avml(&file));
    let mut conn = open_bytes(file).unwrap();
    assert_eq!(conn.format(), DumpFormat::Avml);
    for (start, data) in &blocks {
        let (got, partial) = read(&mut conn, *start, data.len());
        assert!(!partial && got == *data, "block at {start:#x}");
        // Across chunk edges inside the block.
        if data.len() > 70000 {
            let (got, partial) = read(&mut conn, start + 65000, 2000);
            assert!(!partial && got[..] == data[65000..67000]);
        }
    }
    // Around the edges of the two ranges: the bytes before and after are absent.
    for (start, end) in [(0x1000, 0x31064 + 5000), (0x10_0000, 0x10_0000 + 5000)] {
        let (got, partial) = read(&mut conn, start - 16, 32);
        assert!(partial && got[..16].iter().all(|&b| b == 0), "before {start:#x}");
        let (got, partial) = read(&mut conn, end - 16, 32);
        assert!(partial && got[16..].iter().all(|&b| b == 0), "after {end:#x}");
    }
    let (got, partial) = read(&mut conn, 0x10_0000 - 16, 32);
    assert!(partial && got[16..] == blocks[2].1[..16]);
    let ranges: Vec<_> = conn.memory_map().ranges().iter().map(|r| (r.base.to_umem(), r.size)).collect();
    assert_eq!(ranges, [(0x1000, 3 * 65536 + 100 + 5000), (0x10_0000, 5000)]);
    assert_eq!(conn.cpu_count(), 0);
    assert!(conn.info().description.contains("3 blocks (2 snappy-compressed)"), "{}", conn.info().description);
}

fn kind_and_reason(bytes: Vec<u8>) -> (ErrorKind, String) {
    let e = open_bytes(bytes).unwrap_err();
    (e.kind, e.to_string())
}

#[test]
fn broken_captures_give_errors_naming_the_offset() {
    let one = block(0x1000, &pattern(100_000, 1));
    // Cut anywhere: in the header, in the frames, in the stream length.
    for cut in [10, 40, one.len() / 2, one.len() - 3] {
        let (kind, why) = kind_and_reason(one[..cut].to_vec());
        assert_eq!(kind, ErrorKind::Truncated, "cut at {cut}: {why}");
        assert!(why.contains("file offset 0x"), "{why}");
    }
    // Ranges that overlap, come backwards or wrap.
    let mut overlap = one.clone();
    overlap.extend_from_slice(&block(0x1000 + 99_999, &[1, 2]));
    let (kind, why) = kind_and_reason(overlap);
    assert_eq!(kind, ErrorKind::Malformed);
    assert!(why.contains(&format!("file offset {:#x}", one.len())) && why.contains("overlaps"), "{why}");
    let mut backwards = one.clone();
    backwards[16..24].copy_from_slice(&0x10u64.to_le_bytes());
    assert_eq!(kind_and_reason(backwards).0, ErrorKind::Malformed);
    let mut wrap = one.clone();
    wrap[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(kind_and_reason(wrap).0, ErrorKind::Malformed);
    // More data in the frames than the range holds, or less.
    let mut longer = one.clone();
    longer[16..24].copy_from_slice(&(0x1000u64 + 50_000).to_le_bytes());
    assert_eq!(kind_and_reason(longer).0, ErrorKind::Malformed);
    let mut shorter = one.clone();
    shorter[16..24].copy_from_slice(&(0x1000u64 + 200_000).to_le_bytes());
    assert_eq!(kind_and_reason(shorter).0, ErrorKind::Truncated);
    // A wrong stream length, non-zero padding, a reserved chunk type.
    let mut length = one.clone();
    let n = length.len();
    length[n - 8] ^= 1;
    assert_eq!(kind_and_reason(length).0, ErrorKind::Malformed);
    let mut padding = one.clone();
    padding[24] = 1;
    assert_eq!(kind_and_reason(padding).0, ErrorKind::Malformed);
    let mut reserved = one;
    reserved[32 + 10] = 0x02;
    assert_eq!(kind_and_reason(reserved).0, ErrorKind::Unsupported);
}

#[test]
fn a_chunk_that_does_not_decompress_reads_as_absent() {
    let data = pattern(3 * 65536, 4);
    let mut file = block(0, &data);
    // The second data chunk: keep its length header, spoil its compressed bytes.
    let first_len = u32::from_le_bytes([file[32 + 10 + 1], file[32 + 10 + 2], file[32 + 10 + 3], 0]) as usize;
    let second = 32 + 10 + 4 + first_len;
    for b in &mut file[second + 4 + 4 + 3..second + 4 + 40] {
        *b = 0xff;
    }
    let mut conn = open_bytes(file).unwrap();
    let (got, partial) = read(&mut conn, 0, data.len());
    assert!(partial);
    assert!(got[..65536] == data[..65536] && got[2 * 65536..] == data[2 * 65536..]);
    assert!(got[65536..2 * 65536].iter().all(|&b| b == 0));
}

proptest! {
    /// Mutated and cut captures never panic; what opens reads within bounds.
    #[test]
    fn mutated_files_never_panic(
        words in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut file, _) = sample();
        for (at, v) in words {
            let i = at.index(file.len() - 8);
            file[i..i + 8].copy_from_slice(&v.to_le_bytes());
        }
        file.truncate(file.len() - cut.index(file.len()) / 8);
        if let Ok(mut conn) = open_bytes(file) {
            for r in conn.memory_map().ranges().to_vec() {
                let base = r.base.to_umem() as u64;
                let _ = read(&mut conn, base, (r.size as usize).min(300_000));
            }
        }
    }
}
