//! Tests against the test process itself: known bytes, a scratch buffer, libc and the vDSO.

use super::*;
use crate::error::{PartialError, PartialResultExt};
use crate::mem::partial::check::view_read_agrees;
use crate::mem::{MemBatch, MemOp, MemoryView, ReadChunk};
use crate::os::elf_image::ElfImage;
use crate::types::PageType;

const fn pattern() -> [u8; 4096] {
    let mut out = [0u8; 4096];
    let mut i = 0;
    while i < out.len() {
        out[i] = (i * 7 + 3) as u8;
        i += 1;
    }
    out
}

/// Known bytes at a known address of this process.
static PATTERN: [u8; 4096] = pattern();

fn own_info() -> ProcessInfo {
    NativeOs::new(LibArc::default()).process_info_by_address(Address::from(std::process::id())).unwrap()
}

fn own_process(proc_mem: bool) -> NativeProcess {
    let mut process = NativeProcess::open(own_info()).unwrap();
    if proc_mem {
        process.use_proc_mem().unwrap();
    }
    process
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap()
}

#[test]
fn own_process_info() {
    let pid = std::process::id();
    let info = own_info();
    assert_eq!(info.address, Address::from(pid));
    assert_eq!(info.pid, pid);
    assert_eq!(info.ppid, std::os::unix::process::parent_id());
    assert_eq!(info.state, ProcessState::Alive);
    let exe = std::env::current_exe().unwrap();
    assert_eq!(*info.path, *exe.to_string_lossy());
    let file_name = exe.file_name().unwrap().to_string_lossy();
    assert_eq!(*info.name, file_name[..file_name.len().min(15)]);
    assert!(info.command_line.starts_with(&std::env::args().next().unwrap()));
    assert_eq!(info.sys_arch, HOST_ARCH);
    assert_eq!(info.proc_arch, HOST_ARCH);
    assert!(info.table_root.is_null());

    let mut os = NativeOs::new(LibArc::default());
    let mut pids = Vec::new();
    os.process_address_list_callback((&mut pids).into()).unwrap();
    assert!(pids.contains(&Address::from(pid)));
    assert_eq!(os.process_info_by_pid(pid).unwrap().pid, pid);
    assert_eq!(os.process_info_by_address(Address::from(u32::MAX)).unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(os.process_info_by_address(Address::INVALID).unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(os.info().arch, HOST_ARCH);
    // This kernel may have no module support; either way the list is well-formed.
    for module in os.module_list().unwrap() {
        assert!(!module.name.is_empty());
    }
}

#[test]
fn reads_and_writes_own_memory_both_ways() {
    for proc_mem in [false, true] {
        let mut process = own_process(proc_mem);
        let meta = process.metadata();
        assert_eq!((meta.arch_bits, meta.little_endian, meta.readonly), (64, true, false));
        assert_eq!(meta.max_address, Address::new(0x7fff_ffff_ffff));

        let at = Address::from(PATTERN.as_ptr() as usize);
        assert_eq!(process.read_raw(at, PATTERN.len()).data().unwrap(), PATTERN);
        let word: u32 = process.read(at + 4usize).data().unwrap();
        assert_eq!(word, u32::from_le_bytes([PATTERN[4], PATTERN[5], PATTERN[6], PATTERN[7]]));

        let mut target = vec![0u8; 64];
        let target_at = Address::from(target.as_mut_ptr() as usize);
        process.write_raw(target_at + 8usize, b"memflow").data().unwrap();
        // The compiler does not see the kernel's write; read the bytes back volatile.
        // SAFETY: every index is inside the vector.
        let seen: Vec<u8> = (0..64).map(|i| unsafe { core::ptr::read_volatile(target.as_ptr().add(i)) }).collect();
        assert_eq!(&seen[8..15], b"memflow");
        assert!(seen[..8].iter().chain(&seen[15..]).all(|&b| b == 0));

        assert_eq!(process.write_raw(Address::from(0x1000u64), b"x"), Err(PartialError::PartialWrite));
        assert_eq!(process.read::<u64>(Address::from(0x1000u64)), Err(PartialError::PartialRead(0)));
    }
}

#[test]
fn batched_reads_report_every_byte_once() {
    const OPS: usize = 2500; // more than MAX_IOVECS
    const LEN: usize = 16;
    let base = PATTERN.as_ptr() as usize;
    // Every 7th op reads unmapped memory, every 11th lies above the address space.
    let place = |i: usize| match (i % 7, i % 11) {
        (3, _) => (Address::from(0x1000 + i), false),
        (_, 5) => (Address::from(0x8000_0000_0000u64 + i as u64), false),
        _ => (Address::from(base + (i * 13) % (PATTERN.len() - LEN)), true),
    };
    for proc_mem in [false, true] {
        let mut process = own_process(proc_mem);
        let mut bufs = vec![[0xaau8; LEN]; OPS];
        let mut ok: Vec<(Address, Vec<u8>)> = Vec::new();
        let mut failed: Vec<(Address, usize)> = Vec::new();
        {
            let mut on_ok = |c: ReadChunk| {
                ok.push((c.tag, c.buf.to_vec()));
                true
            };
            let mut on_fail = |c: ReadChunk| {
                failed.push((c.tag, c.buf.len()));
                true
            };
            let ops = bufs.iter_mut().enumerate().map(|(i, b)| MemOp {
                addr: place(i).0,
                tag: Address::from(i * 0x100),
                buf: b.as_mut_slice().into(),
            });
            MemBatch::with(ops, Some(&mut (&mut on_ok).into()), Some(&mut (&mut on_fail).into()), |b| {
                process.read_batch(b)
            })
            .unwrap();
        }
        let mut ok_bytes = vec![0usize; OPS];
        let mut failed_bytes = vec![0usize; OPS];
        for (tag, data) in &ok {
            let (op, offset) = ((tag.to_umem() / 0x100) as usize, (tag.to_umem() % 0x100) as usize);
            let (addr, readable) = place(op);
            assert!(readable, "op {op} should have failed");
            let start = (addr.to_umem() as usize) - base + offset;
            assert_eq!(data[..], PATTERN[start..start + data.len()]);
            ok_bytes[op] += data.len();
        }
        for (tag, len) in &failed {
            let op = (tag.to_umem() / 0x100) as usize;
            assert!(!place(op).1, "op {op} should have been read");
            failed_bytes[op] += len;
        }
        for op in 0..OPS {
            assert_eq!(ok_bytes[op] + failed_bytes[op], LEN, "op {op}, /proc/PID/mem: {proc_mem}");
        }
        assert_eq!(bufs[0][..], PATTERN[..LEN]);
    }
}

#[test]
fn a_hole_fails_only_its_page() {
    let page = page_size();
    // SAFETY: a fresh private anonymous mapping, filled and partly unmapped only here.
    let map = unsafe {
        let map = libc::mmap(
            core::ptr::null_mut(),
            3 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(map, libc::MAP_FAILED);
        core::ptr::write_bytes(map as *mut u8, 0x11, page);
        core::ptr::write_bytes((map as *mut u8).add(2 * page), 0x33, page);
        assert_eq!(libc::munmap((map as *mut u8).add(page) as *mut _, page), 0);
        map as usize
    };
    for proc_mem in [false, true] {
        let mut process = own_process(proc_mem);
        let mut buf = vec![0xaau8; page + 16];
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        {
            let mut on_ok = |c: ReadChunk| {
                ok.push((c.tag.to_umem(), c.buf.to_vec()));
                true
            };
            let mut on_fail = |c: ReadChunk| {
                failed.push((c.tag.to_umem(), c.buf.len()));
                true
            };
            let op = MemOp { addr: Address::from(map + page - 8), tag: Address::NULL, buf: buf.as_mut_slice().into() };
            MemBatch::with(
                core::iter::once(op),
                Some(&mut (&mut on_ok).into()),
                Some(&mut (&mut on_fail).into()),
                |b| process.read_batch(b),
            )
            .unwrap();
        }
        assert_eq!(ok, [(0, vec![0x11; 8]), ((page + 8) as umem, vec![0x33; 8])], "/proc/PID/mem: {proc_mem}");
        assert_eq!(failed, [(8, page)]);

        let res = process.read_raw(Address::from(map + page - 8), page + 16);
        let Err(PartialError::PartialRead(data)) = res else { panic!("expected a partial read") };
        assert_eq!(data[..8], [0x11; 8]);
        assert!(data[8..8 + page].iter().all(|&b| b == 0));
        assert_eq!(data[8 + page..], [0x33; 8]);

        // The single entries agree with the batch path, whole, cut by the hole or in it.
        let at = |offset: usize| (map + offset) as u64;
        assert_eq!(view_read_agrees(&mut process, at(0), 16), 16, "/proc/PID/mem: {proc_mem}");
        assert_eq!(view_read_agrees(&mut process, at(page - 8), page + 16), 8);
        assert_eq!(view_read_agrees(&mut process, at(page + 8), 8), 0);
        assert_eq!(view_read_agrees(&mut process, at(2 * page), page), page);
        assert_eq!(view_read_agrees(&mut process, 0x7fff_ffff_fffc, 8), 0);
        assert_eq!(process.write_single(Address::from(at(page - 4)), &[0x44; 8]), Ok(4));
        assert_eq!(process.write_single(Address::from(at(2 * page)), &[0x55; 8]), Ok(8));
        assert_eq!(process.read_raw(Address::from(at(page - 4)), 4).unwrap(), [0x44; 4]);
        assert_eq!(
            process.read_raw(Address::from(at(2 * page + 4)), 8).unwrap(),
            [0x55, 0x55, 0x55, 0x55, 0x33, 0x33, 0x33, 0x33]
        );
        // Back as they were for the next round.
        assert_eq!(process.write_single(Address::from(at(page - 4)), &[0x11; 4]), Ok(4));
        assert_eq!(process.write_single(Address::from(at(2 * page)), &[0x33; 8]), Ok(8));
    }
    // SAFETY: unmaps what is left of the mapping made above.
    unsafe {
        libc::munmap(map as *mut _, page);
        libc::munmap((map + 2 * page) as *mut _, page);
    }
}

#[test]
fn modules_of_own_process() {
    let mut process = own_process(false);
    let modules = process.module_list().unwrap();
    let libc_module = process.module_by_name("libc.so.6").unwrap();
    assert!(libc_module.path.ends_with("/libc.so.6"));
    assert_eq!(libc_module.arch, HOST_ARCH);
    assert_eq!(libc_module.parent, Address::from(std::process::id()));
    let malloc = Address::from(libc::malloc as *const () as usize);
    assert!(malloc >= libc_module.base && malloc - libc_module.base < libc_module.size);

    let primary = process.primary_module().unwrap();
    assert_eq!(*primary.path, *std::env::current_exe().unwrap().to_string_lossy());
    let code = Address::from(own_process as *const () as usize);
    assert!(code >= primary.base && code - primary.base < primary.size);
    assert!(modules.iter().all(|m| m.base == m.address && m.size > 0));
    assert_eq!(process.module_by_address(libc_module.base, HOST_ARCH).unwrap().size, libc_module.size);
    assert_eq!(process.module_by_address(Address::from(0x1234u64), HOST_ARCH).unwrap_err().kind, ErrorKind::NotFound);

    let mut bits32 = Vec::new();
    process.module_address_list_callback(Some(&ArchitectureIdent::X86_32), (&mut bits32).into()).unwrap();
    assert!(bits32.is_empty());
}

#[test]
fn libc_exports_and_own_imports() {
    let mut process = own_process(false);
    let libc_module = process.module_by_name("libc.so.6").unwrap();
    assert_eq!(
        process.export_address(&libc_module, "malloc").unwrap(),
        Address::from(libc::malloc as *const () as usize)
    );
    assert_eq!(
        process.export_address(&libc_module, "printf").unwrap(),
        Address::from(libc::printf as *const () as usize)
    );
    assert!(process.module_exports(&libc_module).unwrap().len() > 1000);

    // The slot the loader filled for `malloc` in this binary holds malloc's address.
    let primary = process.primary_module().unwrap();
    let imports = process.module_imports(&primary).unwrap();
    let slots: Vec<Address> = imports
        .iter()
        .filter(|i| &*i.name == "malloc")
        .map(|i| process.read_addr(primary.base + i.offset).data().unwrap())
        .collect();
    assert!(slots.contains(&Address::from(libc::malloc as *const () as usize)), "{slots:?}");
}

#[test]
fn libc_sections_from_the_file_or_segments() {
    let mut process = own_process(false);
    let libc_module = process.module_by_name("libc.so.6").unwrap();
    let malloc = Address::from(libc::malloc as *const () as usize);
    let sections = process.module_sections(&libc_module).unwrap();
    let text = sections.iter().find(|s| &*s.name == ".text").expect(".text");
    assert!(malloc >= text.base && malloc - text.base < text.size);
    assert!(sections.iter().any(|s| &*s.name == ".dynsym"));

    let image = ElfImage::parse(&mut process, libc_module.base).unwrap();
    let mut segments = Vec::new();
    image
        .sections(&mut process, None, |s| {
            segments.push(s);
            true
        })
        .unwrap();
    assert!(segments.iter().all(|s| s.name.starts_with("LOAD[")));
    let code = segments.iter().find(|s| malloc >= s.base && malloc - s.base < s.size).unwrap();
    assert_eq!(&*code.name, "LOAD[r-x]");
}

#[test]
fn vdso_from_memory_alone() {
    // SAFETY: getauxval has no preconditions.
    let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if vdso == 0 {
        return;
    }
    let mut process = own_process(false);
    let image = ElfImage::parse(&mut process, Address::from(vdso)).unwrap();
    // The vDSO maps its whole file, section headers included, and its dynamic segment keeps
    // link-time addresses.
    let mut names = Vec::new();
    image
        .sections(&mut process, None, |s| {
            names.push(s.name.to_string());
            true
        })
        .unwrap();
    assert!(names.iter().any(|n| n == ".text") && names.iter().any(|n| n == ".dynsym"), "{names:?}");
    let mut exports = Vec::new();
    image
        .exports(&mut process, |e| {
            exports.push(e.name.to_string());
            true
        })
        .unwrap();
    assert!(exports.iter().any(|e| e.ends_with("clock_gettime")), "{exports:?}");
}

#[test]
fn mapped_ranges_hold_stack_heap_and_code() {
    let mut process = own_process(false);
    let local = 7u64;
    let boxed = Box::new([0u8; 64]);
    let ranges = process.mapped_mem(-1).unwrap();
    let flags_at = |addr: usize| {
        let addr = Address::from(addr);
        ranges.iter().find(|r| addr >= r.base && addr - r.base < r.size).map(|r| r.page_type)
    };
    let data = PageType::USER | PageType::WRITEABLE | PageType::NOEXEC;
    assert_eq!(flags_at(&local as *const u64 as usize), Some(data));
    assert_eq!(flags_at(boxed.as_ptr() as usize), Some(data));
    assert_eq!(flags_at(PATTERN.as_ptr() as usize), Some(PageType::USER | PageType::NOEXEC));
    assert_eq!(flags_at(own_process as *const () as usize), Some(PageType::USER));
    assert!(ranges.windows(2).all(|w| w[0].base + w[0].size <= w[1].base));

    let at = Address::from(&local as *const u64 as usize);
    let mut clipped = Vec::new();
    process.mapped_mem_range(0, at, at + 1usize, (&mut clipped).into()).unwrap();
    assert_eq!(clipped, [MemoryRange { base: at, size: 1, page_type: data }]);
    assert!(process.mapped_mem(0x1000).unwrap().len() <= ranges.len());
}
