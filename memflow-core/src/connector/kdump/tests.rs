use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::connector::codec::Codec;
use crate::connector::cpu_state::CpuState;
use crate::connector::testdata::{kdump_file, open_bytes, pattern, qemu_meta};
use crate::connector::{detect, FileConnector, OpenOptions};
use crate::error::PartialResultExt;
use crate::mem::PhysicalMemory;
use crate::types::PhysicalAddress;

const ALL: [Codec; 5] = [Codec::Stored, Codec::Zlib, Codec::Lzo, Codec::Snappy, Codec::Zstd];
const PAGE: usize = 4096;

/// Noise that no codec shrinks.
fn noise(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..PAGE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A kdump written by the dump writer, with the pages it was written from.
struct Sample {
    pages: BTreeMap<u64, Vec<u8>>,
    bytes: Vec<u8>,
    /// File offset of the first page descriptor.
    desc_base: u64,
}

/// Pages 0..=10 saved (8 and 9 all zero, 10 incompressible), 11 absent, 12..16 excluded,
/// 20..24 saved, 24 pages in all; QEMU's CPU notes and a vmcoreinfo.
fn sample(codec: Codec) -> Sample {
    let mut pages = BTreeMap::new();
    for pfn in (0..8).chain(20..24) {
        pages.insert(pfn, pattern(PAGE, pfn as u8));
    }
    pages.insert(8, vec![0; PAGE]);
    pages.insert(9, vec![0; PAGE]);
    pages.insert(10, noise(10));
    let excluded: Vec<u64> = (12..16).collect();
    let bytes = kdump_file(codec, &pages, &excluded, &qemu_meta());
    let field = |at: u64| u64::from(u32::from_le_bytes(bytes[at as usize..at as usize + 4].try_into().unwrap()));
    let desc_base = PAGE as u64 * (1 + field(format::header::SUB_HDR_SIZE) + field(format::header::BITMAP_BLOCKS));
    Sample { pages, bytes, desc_base }
}

fn read(conn: &mut FileConnector, addr: u64, len: usize) -> (Vec<u8>, bool) {
    let mut buf = vec![0xa5u8; len];
    let partial = conn
        .phys_read_raw_into(PhysicalAddress::plain(crate::types::Address::new(addr as umem)), &mut buf)
        .is_partial();
    (buf, partial)
}

/// Every page of `conn` reads as `f` says: saved pages whole, others absent (zeros).
fn reads_like(conn: &mut FileConnector, f: &Sample) {
    for pfn in 0..26 {
        let (got, partial) = read(conn, pfn * PAGE as u64, PAGE);
        match f.pages.get(&pfn) {
            Some(page) => assert!(!partial && got == *page, "pfn {pfn}"),
            None => assert!(partial && got.iter().all(|&b| b == 0), "pfn {pfn} should be absent"),
        }
    }
    // Across page edges: saved -> saved, saved -> excluded (partial, first part intact).
    let (got, partial) = read(conn, 0x1800, PAGE);
    assert!(!partial && got[..0x800] == f.pages[&1][0x800..] && got[0x800..] == f.pages[&2][..0x800]);
    let (got, partial) = read(conn, 10 * PAGE as u64 + 0x100, PAGE);
    assert!(partial && got[..0xf00] == f.pages[&10][0x100..]);
}

#[test]
fn every_codec_reads_back_saved_pages_and_absent_ones() {
    for codec in ALL {
        let f = sample(codec);
        let mut conn = open_bytes(f.bytes.clone()).unwrap();
        assert_eq!(conn.format(), DumpFormat::Kdump);
        reads_like(&mut conn, &f);
        let ranges: Vec<_> = conn.memory_map().ranges().iter().map(|r| (r.base.to_umem(), r.size)).collect();
        assert_eq!(ranges, [(0, 11 * 4096), (12 * 4096, 4 * 4096), (20 * 4096, 4 * 4096)], "{codec:?}");
        assert_eq!(conn.metadata().real_size, 19 * 4096);
        assert!(conn.metadata().readonly);
        // The CPU state and vmcoreinfo are those of the notes, as in an ELF core.
        assert_eq!(conn.info().cpus, qemu_meta().cpus);
        assert_eq!(conn.cpu_count(), 2);
        assert_eq!(conn.info().vmcoreinfo.as_ref().unwrap().os_release(), Some("6.1.0-test"));
        assert!(conn.info().description.contains("15 of 19 saved"), "{}", conn.info().description);
        // A clone reads the same through its own cache.
        reads_like(&mut conn.clone(), &f);
    }
}

#[test]
fn a_cache_of_two_pages_still_reads_everything() {
    let f = sample(Codec::Zlib);
    let options = OpenOptions { cache_size: 2 * PAGE, ..OpenOptions::default() };
    let mut conn = detect::from_backing(f.bytes.clone(), options).unwrap();
    for _ in 0..2 {
        reads_like(&mut conn, &f);
    }
    let options = OpenOptions { cache_size: PAGE - 1, ..OpenOptions::default() };
    let err = detect::from_backing(f.bytes.clone(), options).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    let options = OpenOptions { writable: true, ..OpenOptions::default() };
    assert_eq!(detect::from_backing(f.bytes.clone(), options).unwrap_err().kind, ErrorKind::Unsupported);
}

#[test]
fn flattened_streams_read_like_the_dump() {
    let f = sample(Codec::Snappy);
    let bytes = &f.bytes;
    // Records of uneven sizes, in a scrambled order.
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut size = 1;
    while at < bytes.len() {
        let n = size.min(bytes.len() - at);
        pieces.push((at as u64, &bytes[at..at + n]));
        at += n;
        size = size * 7 % 5000 + 13;
    }
    pieces.reverse();
    pieces.swap(0, 3);
    let mut conn = open_bytes(flat::flatten(&pieces)).unwrap();
    assert_eq!(conn.format(), DumpFormat::FlattenedKdump);
    reads_like(&mut conn, &f);
    assert_eq!(conn.cpu_count(), 2);
}

fn kind_and_reason(bytes: Vec<u8>) -> (ErrorKind, String) {
    let e = open_bytes(bytes).unwrap_err();
    (e.kind, e.to_string())
}

fn patch(bytes: &mut [u8], at: u64, value: &[u8]) {
    bytes[at as usize..at as usize + value.len()].copy_from_slice(value);
}

#[test]
fn broken_files_give_errors_naming_the_offset() {
    let built = sample(Codec::Zlib);
    let good = built.bytes;
    let last_desc = built.desc_base + 14 * format::PAGE_DESC_SIZE;
    let sub = |field: u64| 4096 + field;

    // Truncated: inside the header, the descriptor table, the last page's data.
    assert_eq!(kind_and_reason(good[..300].to_vec()).0, ErrorKind::Truncated);
    let (kind, why) = kind_and_reason(good[..(built.desc_base + 40) as usize].to_vec());
    assert_eq!(kind, ErrorKind::Truncated, "{why}");
    assert!(why.contains(&format!("{:#x}", built.desc_base)), "{why}");
    let (kind, why) = kind_and_reason(good[..good.len() - 1].to_vec());
    assert_eq!(kind, ErrorKind::Truncated, "{why}");
    assert!(why.contains(&format!("{last_desc:#x}")), "{why}");

    // Bitmap 2 claims pages the file does not hold (12..16, excluded).
    // (Their descriptors would be read from the unused tail of the descriptor table.)
    let mut claims = good.clone();
    let bitmap2 = 4096 * 3;
    claims[bitmap2 + 1] |= 0xf0;
    let (_, why) = kind_and_reason(claims);
    assert!(why.contains("page descriptor at offset 0x"), "{why}");

    // A page size field past the end, one larger than a page, unknown flags.
    let mut past = good.clone();
    patch(&mut past, last_desc + 8, &4000u32.to_le_bytes());
    let (kind, why) = kind_and_reason(past);
    assert_eq!(kind, ErrorKind::Truncated, "{why}");
    assert!(why.contains(&format!("{last_desc:#x}")), "{why}");
    let mut big = good.clone();
    patch(&mut big, last_desc + 8, &4097u32.to_le_bytes());
    assert_eq!(kind_and_reason(big).0, ErrorKind::Malformed);
    let mut flags = good.clone();
    patch(&mut flags, last_desc + 12, &3u32.to_le_bytes());
    assert_eq!(kind_and_reason(flags).0, ErrorKind::Unsupported);

    // Header sizes that overflow or lie.
    let mut mapnr = good.clone();
    patch(&mut mapnr, sub(format::sub_header::MAX_MAPNR_64), &u64::MAX.to_le_bytes());
    assert_eq!(kind_and_reason(mapnr).0, ErrorKind::Malformed);
    let mut block = good.clone();
    patch(&mut block, format::header::BLOCK_SIZE, &0x8000_0000u32.to_le_bytes());
    assert_eq!(kind_and_reason(block).0, ErrorKind::Malformed);
    let mut bitmap = good.clone();
    patch(&mut bitmap, format::header::BITMAP_BLOCKS, &0xffff_fffeu32.to_le_bytes());
    assert_eq!(kind_and_reason(bitmap).0, ErrorKind::Truncated);
    let mut notes = good.clone();
    patch(&mut notes, sub(format::sub_header::NOTE + 8), &u64::MAX.to_le_bytes());
    assert_eq!(kind_and_reason(notes).0, ErrorKind::Truncated);

    // Recognised but not read: other machines, split dumps, old diskdumps.
    let mut s390 = good.clone();
    patch(&mut s390, format::header::UTSNAME + 4 * format::UTSNAME_FIELD, b"s390x\0");
    let (kind, why) = kind_and_reason(s390);
    assert_eq!(kind, ErrorKind::Unsupported);
    assert!(why.contains("s390x"), "{why}");
    let mut split = good.clone();
    patch(&mut split, sub(format::sub_header::SPLIT), &1u32.to_le_bytes());
    assert_eq!(kind_and_reason(split).0, ErrorKind::Unsupported);
    let mut diskdump = good;
    patch(&mut diskdump, 0, &format::DISKDUMP_SIGNATURE);
    assert_eq!(kind_and_reason(diskdump).0, ErrorKind::Unsupported);
}

#[test]
fn batches_needing_many_blocks_read_the_same_as_page_by_page() {
    // Enough distinct pages for a batch to be decompressed on two threads first (the
    // prefetch), with excluded pages and a shared zero page among them.
    let mut pages = BTreeMap::new();
    for pfn in 0..200u64 {
        if pfn % 7 != 3 {
            pages.insert(pfn, if pfn % 11 == 0 { vec![0; PAGE] } else { noise(pfn) });
        }
    }
    let excluded: Vec<u64> = (0..200).filter(|p| p % 7 == 3).collect();
    for codec in [Codec::Zlib, Codec::Zstd, Codec::Snappy] {
        let bytes = kdump_file(codec, &pages, &excluded, &qemu_meta());
        // One read of everything, one batch of page reads, then each page alone on a fresh
        // reader: the same bytes and the same absent pages.
        let mut whole = open_bytes(bytes.clone()).unwrap();
        let (all, partial) = read(&mut whole, 0, 200 * PAGE);
        assert!(partial);
        let mut batched = open_bytes(bytes.clone()).unwrap();
        let mut bufs = vec![vec![0xa5u8; PAGE]; 200];
        let mut failed = Vec::new();
        {
            let mut on_fail = |c: crate::mem::MemChunk<cglue::slice::CSliceMut<u8>>| {
                failed.push(c.tag.to_umem() as usize / PAGE);
                true
            };
            let ops = bufs.iter_mut().enumerate().map(|(i, b)| crate::mem::MemOp {
                addr: PhysicalAddress::plain(crate::types::Address::new((i * PAGE) as umem)),
                tag: crate::types::Address::new((i * PAGE) as umem),
                buf: b.as_mut_slice().into(),
            });
            crate::mem::MemBatch::with(ops, None, Some(&mut (&mut on_fail).into()), |b| batched.phys_read_batch(b))
                .unwrap();
        }
        for pfn in 0..200u64 {
            let page = &all[pfn as usize * PAGE..(pfn as usize + 1) * PAGE];
            let alone = read(&mut open_bytes(bytes.clone()).unwrap(), pfn * PAGE as u64, PAGE);
            match pages.get(&pfn) {
                Some(want) => {
                    assert!(page == want.as_slice() && bufs[pfn as usize] == *want, "{codec:?} pfn {pfn}");
                    assert!(!alone.1 && alone.0 == *want);
                }
                None => {
                    assert!(failed.contains(&(pfn as usize)) && alone.1, "{codec:?} pfn {pfn} is absent");
                }
            }
        }
    }
}

#[test]
fn a_dump_without_a_machine_name_reads_like_one_with_it() {
    // What makedumpfile writes from a dump without VMCOREINFO: the utsname fields left empty.
    let f = sample(Codec::Zstd);
    let mut bytes = f.bytes.clone();
    patch(&mut bytes, format::header::UTSNAME + 4 * format::UTSNAME_FIELD, &[0; 8]);
    let mut conn = open_bytes(bytes).unwrap();
    reads_like(&mut conn, &f);
    assert!(conn.info().description.contains("unnamed machine"), "{}", conn.info().description);
    assert_eq!(conn.info().cpus, open_bytes(f.bytes.clone()).unwrap().info().cpus);
}

#[test]
fn pages_that_do_not_decompress_to_a_page_read_as_absent() {
    let built = sample(Codec::Zlib);
    let mut bytes = built.bytes;
    // Page 3's descriptor now points at a zlib stream of 1 MiB of zeros (a bomb), page 4's
    // at one that inflates to half a page.
    let bomb = crate::connector::codec::compress(Codec::Zlib, &vec![0u8; 1 << 20]);
    let short = crate::connector::codec::compress(Codec::Zlib, &[7u8; 2048]);
    for (pfn, data) in [(3u64, &bomb), (4, &short)] {
        let desc = PageDesc { offset: bytes.len() as u64, size: data.len() as u32, flags: 1, page_flags: 0 };
        bytes.extend_from_slice(data);
        patch(&mut bytes, built.desc_base + pfn * format::PAGE_DESC_SIZE, &desc.encode());
    }
    let mut conn = open_bytes(bytes).unwrap();
    for pfn in [3u64, 4] {
        let (got, partial) = read(&mut conn, pfn * PAGE as u64, PAGE);
        assert!(partial && got.iter().all(|&b| b == 0), "pfn {pfn}");
    }
    // Its neighbours are intact.
    let (got, partial) = read(&mut conn, 2 * PAGE as u64, 4 * PAGE);
    assert!(partial && got[..PAGE] == pattern(PAGE, 2)[..] && got[3 * PAGE..] == pattern(PAGE, 5)[..]);
}

#[test]
fn an_incomplete_dump_reads_what_it_holds() {
    let built = sample(Codec::Lzo);
    let mut bytes = built.bytes;
    let status = format::DUMP_DH_COMPRESSED_LZO | format::DUMP_DH_COMPRESSED_INCOMPLETE;
    patch(&mut bytes, format::header::STATUS, &status.to_le_bytes());
    // Cut inside the descriptor of the 13th saved page (pfn 21): pfns 20.. are gone.
    bytes.truncate((built.desc_base + 12 * format::PAGE_DESC_SIZE + 5) as usize);
    let mut conn = open_bytes(bytes).unwrap();
    assert!(conn.info().description.contains("INCOMPLETE"));
    // Page data of the first pages lay after the table: gone too. Nothing panics, nothing
    // reads as bytes it does not have.
    for pfn in 0..24u64 {
        let (got, partial) = read(&mut conn, pfn * PAGE as u64, PAGE);
        assert!(partial && got.iter().all(|&b| b == 0), "pfn {pfn}");
    }
}

proptest! {
    /// Mutated and cut kdumps (plain and flattened) never panic; what opens reads within
    /// bounds.
    #[test]
    fn mutated_files_never_panic(
        words in proptest::collection::vec((any::<prop::sample::Index>(), any::<u64>()), 0..6),
        cut in any::<prop::sample::Index>(),
        flattened in any::<bool>(),
    ) {
        let pages = [0u64, 1, 5, 9, 17].into_iter().map(|pfn| (pfn, pattern(PAGE, pfn as u8))).collect();
        let mut bytes = kdump_file(Codec::Zlib, &pages, &[2, 3], &qemu_meta());
        if flattened {
            bytes = flat::flatten(&[(0, &bytes[..9000]), (9000, &bytes[9000..])]);
        }
        for (at, v) in words {
            let i = at.index(bytes.len() - 8);
            bytes[i..i + 8].copy_from_slice(&v.to_le_bytes());
        }
        bytes.truncate(bytes.len() - cut.index(bytes.len()) / 8);
        if let Ok(mut conn) = open_bytes(bytes) {
            for pfn in 0..26u64 {
                let _ = read(&mut conn, pfn * PAGE as u64 + 100, PAGE);
            }
        }
    }
}

/// A pass over a compressed dump (a dump being converted, a scan) does not keep the
/// compressed file mapped: at most [`RELEASE_AFTER`] stored bytes and a few pages of index
/// stay resident, however large the file, and whatever the order of the reads.
#[test]
fn a_pass_over_a_compressed_dump_does_not_keep_the_file_mapped() {
    use crate::connector::compressed::RELEASE_AFTER;
    use crate::connector::testdata::resident_bytes_of;
    const PAGES: u64 = 12 << 10; // 48 MiB of pages no codec shrinks
    let pages: BTreeMap<u64, Vec<u8>> = (0..PAGES).map(|pfn| (pfn, noise(pfn))).collect();
    let path = std::env::temp_dir().join(format!("memflow-kdump-pass-{}", std::process::id()));
    std::fs::write(&path, kdump_file(Codec::Zstd, &pages, &[], &qemu_meta())).unwrap();
    let file_size = std::fs::metadata(&path).unwrap().len();
    const CHUNK: u64 = 256;
    for order in ["forward", "backward"] {
        let mut conn = crate::connector::open(path.to_str().unwrap(), OpenOptions::default()).unwrap();
        let mut peak = 0;
        let mut chunks: Vec<u64> = (0..PAGES / CHUNK).collect();
        if order == "backward" {
            chunks.reverse();
        }
        for chunk in chunks {
            let (got, partial) = read(&mut conn, chunk * CHUNK * PAGE as u64, (CHUNK as usize) * PAGE);
            assert!(!partial);
            for (i, page) in got.chunks(PAGE).enumerate() {
                assert!(page == pages[&(chunk * CHUNK + i as u64)], "{order}: pfn {}", chunk * CHUNK + i as u64);
            }
            peak = peak.max(resident_bytes_of(&path));
        }
        let limit = RELEASE_AFTER + (4 << 20);
        assert!(peak <= limit, "{order}: {peak} of {file_size} bytes of the file stayed mapped");
    }
    std::fs::remove_file(&path).unwrap();
}
