//! Hand-built dump images for the parser tests (and the fuzzing seeds).

use super::cpu_state::{CR0_PG, CR4_LA57, CR4_PAE, CS_FLAGS_L};
use super::lime;

/// CR3 of the synthetic QEMU cores (CPU `n` stores `CR3 + n`: flag bits the root masks off).
pub const CR3: u64 = 0x55c_8000;

/// Builds ELF core files: ELF header, program headers (the `PT_NOTE` first), notes, then the
/// bytes of each `PT_LOAD` in order.
#[derive(Clone)]
pub struct CoreBuilder {
    class64: bool,
    big_endian: bool,
    machine: u16,
    /// (p_paddr, file bytes, p_memsz)
    loads: Vec<(u64, Vec<u8>, u64)>,
    notes: Vec<u8>,
}

impl CoreBuilder {
    /// A little-endian core of the given class for `e_machine` `machine`.
    pub fn new(class64: bool, machine: u16) -> Self {
        CoreBuilder { class64, big_endian: false, machine, loads: vec![], notes: vec![] }
    }

    /// Switches to big-endian encoding (set before adding notes).
    pub fn big_endian(mut self) -> Self {
        self.big_endian = true;
        self
    }

    /// Adds a `PT_LOAD` of `data` at guest physical `paddr` with `p_memsz` `memsz`.
    pub fn load(mut self, paddr: u64, data: Vec<u8>, memsz: u64) -> Self {
        self.loads.push((paddr, data, memsz));
        self
    }

    /// Appends a note.
    pub fn note(mut self, name: &str, ntype: u32, desc: Vec<u8>) -> Self {
        let mut name = name.as_bytes().to_vec();
        name.push(0);
        for v in [name.len() as u32, desc.len() as u32, ntype] {
            let b = self.word(u64::from(v), 4);
            self.notes.extend_from_slice(&b);
        }
        for mut part in [name, desc] {
            part.resize(part.len().next_multiple_of(4), 0);
            self.notes.extend_from_slice(&part);
        }
        self
    }

    /// Appends raw bytes to the note segment.
    pub fn raw_notes(mut self, bytes: Vec<u8>) -> Self {
        self.notes.extend_from_slice(&bytes);
        self
    }

    fn word(&self, v: u64, size: usize) -> Vec<u8> {
        if self.big_endian {
            v.to_be_bytes()[8 - size..].to_vec()
        } else {
            v.to_le_bytes()[..size].to_vec()
        }
    }

    /// The file.
    pub fn build(&self) -> Vec<u8> {
        let (ehdr, phdr, w) = if self.class64 { (64u64, 56u64, 8) } else { (52, 32, 4) };
        let phnum = self.loads.len() as u64 + u64::from(!self.notes.is_empty());
        let mut data_off = ehdr + phnum * phdr;
        let mut out = vec![0x7f, b'E', b'L', b'F', 1 + u8::from(self.class64), 1 + u8::from(self.big_endian), 1];
        out.resize(16, 0);
        let put = |out: &mut Vec<u8>, v: u64, size: usize| out.extend_from_slice(&self.word(v, size));
        put(&mut out, 4, 2); // ET_CORE
        put(&mut out, u64::from(self.machine), 2);
        put(&mut out, 1, 4);
        put(&mut out, 0, w); // e_entry
        put(&mut out, ehdr, w); // e_phoff
        put(&mut out, 0, w); // e_shoff
        put(&mut out, 0, 4); // e_flags
        for v in [ehdr, phdr, phnum, 0, 0, 0] {
            put(&mut out, v, 2);
        }
        let mut segments = vec![];
        if !self.notes.is_empty() {
            segments.push((4u32, data_off, 0u64, self.notes.len() as u64, 0u64));
            data_off += self.notes.len() as u64;
        }
        for (paddr, data, memsz) in &self.loads {
            segments.push((1, data_off, *paddr, data.len() as u64, *memsz));
            data_off += data.len() as u64;
        }
        for (p_type, offset, paddr, filesz, memsz) in segments {
            put(&mut out, u64::from(p_type), 4);
            if self.class64 {
                put(&mut out, 0, 4); // p_flags
            }
            for v in [offset, paddr, paddr, filesz, memsz] {
                put(&mut out, v, w);
            }
            if !self.class64 {
                put(&mut out, 0, 4); // p_flags
            }
            put(&mut out, 0, w); // p_align
        }
        out.extend_from_slice(&self.notes);
        for (_, data, _) in &self.loads {
            out.extend_from_slice(data);
        }
        out
    }
}

/// An x86-64 `elf_prstatus` for CPU `cpu`: `r15` = 15, ..., `rip` = 0xffffffff81000000 + cpu,
/// `rsp` = 0xffffc90000001000 + cpu.
pub fn prstatus64(cpu: u64) -> Vec<u8> {
    let mut d = vec![0u8; 336];
    // user_regs_struct order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
    // orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs.
    let gprs = [15u64, 14, 13, 12, 5, 1, 11, 10, 9, 8, 0, 2, 3, 4, 6];
    let tail = [0, 0xffff_ffff_8100_0000 + cpu, 0x10, 0x246, 0xffff_c900_0000_1000 + cpu, 0x18, 0, 0, 0, 0, 0, 0];
    for (i, v) in gprs.iter().chain(tail.iter()).enumerate() {
        d[112 + 8 * i..120 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    d
}

/// A version 1 `QEMUCPUState` (440 bytes, with `kernel_gs_base`) for CPU `cpu`, with the
/// same general registers as [`prstatus64`] and the given control registers and CS flags.
pub fn qemu_state(cpu: u64, cr0: u64, cr3: u64, cr4: u64, cs_flags: u32) -> Vec<u8> {
    let mut d = vec![0u8; 440];
    d[0..4].copy_from_slice(&1u32.to_le_bytes());
    d[4..8].copy_from_slice(&440u32.to_le_bytes());
    // rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags
    let regs = [0u64, 1, 2, 3, 4, 6, 0xffff_c900_0000_1000 + cpu, 5, 8, 9, 10, 11, 12, 13, 14, 15];
    let tail = [0xffff_ffff_8100_0000 + cpu, 0x246];
    for (i, v) in regs.iter().chain(tail.iter()).enumerate() {
        d[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    d[152..156].copy_from_slice(&0x10u32.to_le_bytes()); // cs selector
    d[160..164].copy_from_slice(&cs_flags.to_le_bytes());
    for (i, v) in [cr0, 0, 0, cr3, cr4].iter().enumerate() {
        d[392 + 8 * i..400 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    d[432..440].copy_from_slice(&(0xffff_8880_0000_0000 + cpu).to_le_bytes());
    d
}

/// A QEMU-style x86-64 core: 0x2000 bytes at 0, 0x1000 file bytes of a 0x3000 byte segment
/// at 1 MiB, and two CPUs in long mode with 5-level paging.
pub fn qemu_core() -> CoreBuilder {
    let mut core =
        CoreBuilder::new(true, 62).load(0, pattern(0x2000, 1), 0x2000).load(0x10_0000, pattern(0x1000, 2), 0x3000);
    for cpu in 0..2 {
        core = core.note("CORE", 1, prstatus64(cpu));
    }
    for cpu in 0..2 {
        let state = qemu_state(cpu, 0x8005_0033, CR3 + cpu, CR4_PAE | CR4_LA57 | 0x6b0, 0x00a0_9b00 | CS_FLAGS_L);
        core = core.note("QEMU", 0, state);
    }
    core
}

/// A QEMU-style ELF32 core of a 32-bit PAE guest.
pub fn qemu_core32() -> CoreBuilder {
    CoreBuilder::new(false, 3)
        .load(0, pattern(0x1000, 3), 0x1000)
        .load(0xf000, pattern(0x800, 4), 0x1000)
        .note("CORE", 1, vec![0; 144])
        .note("QEMU", 0, qemu_state(0, CR0_PG | 1, 0x3018, CR4_PAE, 0x00cf_9b00))
}

/// Opens `bytes` as a dump file with the default options.
pub fn open_bytes(bytes: Vec<u8>) -> crate::error::Result<super::FileConnector> {
    super::detect::from_backing(bytes, super::OpenOptions::default())
}

/// `len` bytes of a pattern that differs per `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// A LiME file with one range per `(start, data)`.
pub fn lime_file(ranges: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![];
    for (start, data) in ranges {
        out.extend_from_slice(&lime::header(*start, start + data.len() as u64 - 1));
        out.extend_from_slice(data);
    }
    out
}

/// Memory whose reads of some pages fail, like a guest's unreadable MMIO.
#[derive(Clone)]
pub struct FailingPages {
    /// The memory.
    pub inner: super::BufferMemory,
    /// Addresses of the 4 KiB pages whose reads fail.
    pub bad_pages: Vec<u64>,
}

impl crate::mem::PhysicalMemory for FailingPages {
    fn phys_read_batch(&mut self, mut batch: crate::mem::PhysReadBatch) -> crate::error::Result<()> {
        use crate::error::PartialResultExt;
        while let Some(op) = batch.ops.next() {
            let mut buf = op.buf;
            let start = u64::try_from(op.addr.address.to_umem()).unwrap();
            let end = start + buf.len() as u64;
            let partial = self.inner.phys_read_raw_into(op.addr, &mut buf).is_partial();
            if partial || self.bad_pages.iter().any(|&p| p < end && p + 0x1000 > start) {
                batch.fail(op.tag, buf);
            } else {
                batch.ok(op.tag, buf);
            }
        }
        Ok(())
    }

    fn phys_write_batch(&mut self, batch: crate::mem::PhysWriteBatch) -> crate::error::Result<()> {
        self.inner.phys_write_batch(batch)
    }

    fn metadata(&self) -> crate::mem::PhysicalMemoryMetadata {
        self.inner.metadata()
    }

    fn mem_map_callback(&self, callback: crate::mem::MemMappingCallback) -> crate::error::Result<()> {
        self.inner.mem_map_callback(callback)
    }
}

/// The registers of [`qemu_core`]'s two CPUs and a vmcoreinfo, as a dump records them.
pub fn qemu_meta() -> super::DumpMeta {
    let core = super::elf::parse(&qemu_core().build()).unwrap();
    let vmcoreinfo = b"OSRELEASE=6.1.0-test\nPAGESIZE=4096\n".to_vec();
    super::DumpMeta {
        arch: crate::arch::ArchitectureIdent::X86_64,
        cpus: core.cpus,
        aarch64_cpus: Vec::new(),
        riscv_cpus: Vec::new(),
        vmcoreinfo: Some(vmcoreinfo),
    }
}

/// A compressed kdump of 4 KiB pages written by the dump writer: `pages` (by pfn) saved,
/// `excluded` pages existing but not saved (read failures of the source), with `meta`.
pub fn kdump_file(
    codec: super::codec::Codec,
    pages: &std::collections::BTreeMap<u64, Vec<u8>>,
    excluded: &[u64],
    meta: &super::DumpMeta,
) -> Vec<u8> {
    use crate::mem::PhysicalMemory;
    use crate::types::{umem, Address, PhysicalAddress};
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut pfns: Vec<u64> = pages.keys().chain(excluded).copied().collect();
    pfns.sort_unstable();
    let mut map = crate::mem::MemoryMap::new();
    for (i, pfn) in pfns.iter().enumerate() {
        map.push(Address::new((pfn * 0x1000) as umem), 0x1000, (i * 0x1000) as umem).unwrap();
    }
    let mut inner = super::dummy_memory_with_map(map).unwrap();
    for (pfn, data) in pages {
        inner.phys_write_raw(PhysicalAddress::plain(Address::new((pfn * 0x1000) as umem)), data).unwrap();
    }
    let mut source = FailingPages { inner, bad_pages: excluded.iter().map(|p| p * 0x1000).collect() };
    let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("memflow-kdump-test-{}-{n}", std::process::id()));
    let sink = Box::new(super::write::kdump::KdumpSink::new(codec, meta).unwrap());
    super::write::write_with(&mut source, &path, sink, &mut |_| std::ops::ControlFlow::Continue(())).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

/// Writes seed inputs for the fuzz targets to `memflow-core/fuzz/seeds/<target>/`.
/// Run with `cargo test -p memflow-core -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let lime = lime_file(&[(0, pattern(0x100, 5)), (0x1000, pattern(0x80, 6)), (0x10_0000, pattern(0x40, 7))]);
    let vmcore = CoreBuilder::new(true, 62)
        .load(0x100_0000, pattern(0x100, 8), 0x100)
        .load(0, pattern(0x1000, 9), 0x1000)
        .note("CORE", 1, prstatus64(0))
        .note("VMCOREINFO", 0, b"OSRELEASE=6.1.0\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff82a0a000\n".to_vec());
    let big = CoreBuilder::new(true, 22).big_endian().load(0x4000, pattern(0x40, 10), 0x80);
    let elves = [
        ("qemu64", qemu_core().build()),
        ("qemu32", qemu_core32().build()),
        ("vmcore", vmcore.build()),
        ("be", big.build()),
    ];
    for target in ["elf_core", "detect"] {
        for (name, bytes) in &elves {
            write(&root.join(target), name, bytes);
        }
    }
    for target in ["lime", "detect"] {
        write(&root.join(target), "lime3", &lime);
    }
    write(&root.join("detect"), "raw", &pattern(0x200, 11));
    // Small kdumps of every codec (pages, a zero page, excluded pages, CPU notes), plain and
    // flattened, and AVML captures.
    use super::codec::Codec;
    for (name, codec) in [("zlib", Codec::Zlib), ("lzo", Codec::Lzo), ("snappy", Codec::Snappy), ("zstd", Codec::Zstd)]
    {
        let mut pages = std::collections::BTreeMap::new();
        for pfn in [0u64, 1, 4, 9] {
            pages.insert(pfn, pattern(0x1000, pfn as u8));
        }
        pages.insert(5, vec![0; 0x1000]);
        let bytes = kdump_file(codec, &pages, &[2, 3], &qemu_meta());
        write(&root.join("kdump"), &format!("kdump-{name}"), &bytes);
        let half = bytes.len() / 2;
        let flat = super::kdump::flat_stream(&[(half as u64, &bytes[half..]), (0, &bytes[..half])]);
        write(&root.join("kdump"), &format!("flat-{name}"), &flat);
    }
    let mut avml = super::avml::block(0x1000, &pattern(70000, 12));
    avml.extend_from_slice(&lime::header(0x20000, 0x20fff));
    avml.extend_from_slice(&pattern(0x1000, 13));
    avml.extend_from_slice(&super::avml::block(0x100000, &vec![0; 300]));
    write(&root.join("avml"), "avml3", &avml);

    fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// The bytes of `path` this process has mapped and resident (`Rss` of its mappings in
/// `/proc/self/smaps`).
pub fn resident_bytes_of(path: &std::path::Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let name = path.to_str().unwrap();
    let mut ours = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            // A mapping's first line: `start-end perms offset dev inode [path]`.
            Some(head) if head.contains('-') && !head.ends_with(':') => ours = line.ends_with(name),
            Some("Rss:") if ours => kib += fields.next().and_then(|n| n.parse::<u64>().ok()).unwrap(),
            _ => {}
        }
    }
    kib * 1024
}
