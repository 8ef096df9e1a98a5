use std::ops::ControlFlow;
use std::path::PathBuf;

use super::*;
use crate::connector::testdata::{self, pattern, FailingPages};
use crate::connector::{detect, dummy_memory_with_map, BufferMemory, DumpFormat, FileConnector, OpenOptions};
use crate::error::PartialResultExt;
use crate::mem::{MemoryMap, PhysReadBatch, PhysWriteBatch, PhysicalMemoryMetadata};

/// Ranges 0..0x5000, 0x10000..0x13000 (with 1 MiB + 2 pages between: a chunk boundary) and
/// 0x20_0000..0x20_0800 (half a page: rounded up, the page is a hole); pages 0x2000 and 0x11000
/// fail; patterned bytes with one all-zero page.
fn source() -> FailingPages {
    let mut map = MemoryMap::new();
    map.push(Address::new(0), 0x5000, 0).unwrap();
    map.push(Address::new(0x10000), 0x3000, 0x5000).unwrap();
    map.push(Address::new(0x20_0000), 0x800, 0x8000).unwrap();
    let mut mem = dummy_memory_with_map(map).unwrap();
    for (addr, len, seed) in
        [(0u64, 0x3000usize, 1u8), (0x4000, 0x1000, 2), (0x10000, 0x3000, 3), (0x20_0000, 0x800, 4)]
    {
        mem.phys_write_raw(phys(addr), &pattern(len, seed)).unwrap();
    }
    FailingPages { inner: mem, bad_pages: vec![0x2000, 0x11000] }
}

fn meta() -> DumpMeta {
    let vmcoreinfo = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\nNUMBER(phys_base)=16777216\n".to_vec();
    DumpMeta { vmcoreinfo: Some(vmcoreinfo), ..testdata::qemu_meta() }
}

/// A fresh scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("memflow-write-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn page(conn: &mut FileConnector, addr: u64) -> (Vec<u8>, bool) {
    let mut buf = vec![0xa5u8; PAGE_SIZE as usize];
    let partial = conn.phys_read_raw_into(phys(addr), &mut buf).is_partial();
    (buf, partial)
}

#[test]
fn every_format_round_trips_pages_and_leaves_holes_out() {
    let dir = scratch("formats");
    for format in WriteFormat::ALL {
        let path = dir.join(format.name());
        let mut src = source();
        let mut calls = Vec::new();
        let summary = write_dump(&mut src, &meta(), &path, format, &mut |p| {
            calls.push(p);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(summary.holes, [(0x2000, 0x1000), (0x11000, 0x1000), (0x20_0000, 0x1000)], "{format:?}");
        assert_eq!((summary.hole_pages, summary.hole_runs), (3, 3));
        assert_eq!(summary.bytes_written, 0x6000);
        assert_eq!(summary.file_size, std::fs::metadata(&path).unwrap().len());
        // One call per chunk-sized piece of each range, ending at the total.
        assert_eq!(calls.len(), 3);
        assert_eq!(calls.last(), Some(&Progress { done: 0x9000, total: 0x9000 }));

        let mut conn = detect::open(&path, OpenOptions::default()).unwrap();
        let expect_format = match format {
            WriteFormat::Elf => DumpFormat::ElfCore,
            WriteFormat::Lime => DumpFormat::Lime,
            WriteFormat::Raw => DumpFormat::Raw,
            WriteFormat::Kdump(_) => DumpFormat::Kdump,
        };
        assert_eq!(conn.format(), expect_format);
        let mut inner = src.inner.clone();
        for addr in (0..0x5000).chain(0x10000..0x13000).chain(0x20_0000..0x20_1000).step_by(PAGE_SIZE as usize) {
            let (got, partial) = page(&mut conn, addr);
            let mut want = vec![0u8; PAGE_SIZE as usize];
            let _ = inner.phys_read_raw_into(phys(addr), &mut want);
            if src.bad_pages.contains(&addr) || addr == 0x20_0000 {
                // A raw image cannot mark a hole: it reads as zeros.
                assert!(got.iter().all(|&b| b == 0), "{format:?} {addr:#x}");
                assert_eq!(partial, format != WriteFormat::Raw, "{format:?} {addr:#x} is a hole");
            } else {
                assert!(!partial && got == want, "{format:?} {addr:#x}");
            }
        }
        let carries_meta = matches!(format, WriteFormat::Elf | WriteFormat::Kdump(_));
        let info = conn.info();
        if carries_meta {
            assert_eq!(info.cpus, meta().cpus, "{format:?}");
            let text = meta().vmcoreinfo.unwrap();
            assert_eq!(info.vmcoreinfo, Some(VmcoreInfo::parse(&text)), "{format:?}");
        } else {
            assert!(info.cpus.is_empty() && info.vmcoreinfo.is_none());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cancelling_leaves_no_file_and_keeps_an_old_one() {
    let dir = scratch("cancel");
    for format in WriteFormat::ALL {
        let path = dir.join(format.name());
        std::fs::write(&path, b"the previous dump").unwrap();
        let mut calls = 0;
        let err = write_dump(&mut source(), &meta(), &path, format, &mut |_| {
            calls += 1;
            ControlFlow::Break(())
        })
        .unwrap_err();
        assert_eq!((err.kind, calls), (ErrorKind::Cancelled, 1), "{format:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"the previous dump");
        std::fs::remove_file(&path).unwrap();
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no temporary file is left");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_source_without_a_map_is_written_up_to_its_max_address() {
    let dir = scratch("nomap");
    let mut mem = crate::connector::dummy_memory(0x3000);
    mem.phys_write_raw(phys(0x1000), &pattern(0x2000, 9)).unwrap();
    // The view hides the map: only `max_address` is known.
    struct NoMap(BufferMemory);
    impl PhysicalMemory for NoMap {
        fn phys_read_batch(&mut self, batch: PhysReadBatch) -> Result<()> {
            self.0.phys_read_batch(batch)
        }
        fn phys_write_batch(&mut self, batch: PhysWriteBatch) -> Result<()> {
            self.0.phys_write_batch(batch)
        }
        fn metadata(&self) -> PhysicalMemoryMetadata {
            self.0.metadata()
        }
    }
    let path = dir.join("elf");
    let meta = DumpMeta {
        arch: ArchitectureIdent::X86_64,
        cpus: vec![],
        aarch64_cpus: vec![],
        riscv_cpus: vec![],
        vmcoreinfo: None,
    };
    let summary =
        write_dump(&mut NoMap(mem), &meta, &path, WriteFormat::Elf, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!((summary.bytes_written, summary.hole_pages), (0x3000, 0));
    let mut conn = detect::open(&path, OpenOptions::default()).unwrap();
    assert_eq!(page(&mut conn, 0x2000), (pattern(0x2000, 9)[0x1000..].to_vec(), false));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_targets_are_refused() {
    let dir = scratch("refused");
    let mut meta = meta();
    meta.arch = ArchitectureIdent::X86Pae;
    let err = write_dump(&mut source(), &meta, &dir.join("k"), WriteFormat::Kdump(KdumpCodec::Zstd), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    let err =
        write_dump(
            &mut source(),
            &meta,
            &dir.join("missing/elf"),
            WriteFormat::Elf,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn format_names_round_trip() {
    for f in WriteFormat::ALL {
        assert_eq!(WriteFormat::from_name(f.name()), Some(f));
    }
    assert_eq!(WriteFormat::from_name("kdump-lzo"), None);
}

#[test]
fn a_view_source_writes_the_mapped_ranges_at_their_addresses() {
    use crate::mem::partial::check::phys_read_agrees;
    use crate::translate::MemoryRange;
    use crate::types::PageType;
    // A view whose "virtual" addresses are the physical ones of the source; two ranges, the
    // second with a failing page.
    let view = source().into_phys_view();
    let range = |base: u64, size: u64| MemoryRange {
        base: Address::new(base as umem),
        size: size as umem,
        page_type: PageType::UNKNOWN,
    };
    let mut src = ViewSource::new(view, &[range(0x1000, 0x1000), range(0x10000, 0x3000)]).unwrap();
    assert_eq!(src.metadata().real_size, 0x4000);
    // Batch and single reads agree, across the failing page at 0x11000 too (the source fails
    // a whole read that touches it).
    assert_eq!(phys_read_agrees(&mut src, 0x10000, 0x3000), 0);
    assert_eq!(phys_read_agrees(&mut src, 0x1000, 0x1000), 0x1000);
    let dir = scratch("view");
    let path = dir.join("elf");
    let summary = write_dump(&mut src, &meta(), &path, WriteFormat::Elf, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!((summary.bytes_written, summary.holes), (0x3000, vec![(0x11000, 0x1000)]));
    let mut conn = detect::open(&path, OpenOptions::default()).unwrap();
    let ranges: Vec<_> = conn.memory_map().ranges().iter().map(|r| (r.base.to_umem(), r.size)).collect();
    assert_eq!(ranges, [(0x1000, 0x1000), (0x10000, 0x1000), (0x12000, 0x1000)]);
    assert_eq!(page(&mut conn, 0x12000), (pattern(0x3000, 3)[0x2000..].to_vec(), false));
    std::fs::remove_dir_all(&dir).unwrap();
}
