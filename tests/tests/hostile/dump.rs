//! Where things are in a real guest dump, for patching it: the kernel's structures found
//! through memflow-core's own Linux layer (kallsyms, BTF layout, translation), turned into
//! file offsets of the ELF core through its `PT_LOAD` headers, and the kernel's `.BTF`
//! section parsed far enough to point at single fields of single type records.

#![allow(clippy::unnecessary_cast)] // `umem` is `u64` or `u128`

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memflow_core::connector::FileConnector;
use memflow_core::error::PartialResultExt;
use memflow_core::mem::MemoryView;
use memflow_core::os::linux::{cpu_hints, LinuxOs};
use memflow_core::os::{Os, Process};
use memflow_core::plugins::LibArc;
use memflow_core::translate::VirtualTranslate;
use memflow_core::types::{umem, Address};
use memflow_tests::Fixture;

/// Bytes to write at a file offset.
pub type Patch = Vec<(u64, Vec<u8>)>;

const PAGE: u64 = 0x1000;
/// Zeroed 2 MiB chunks of guest RAM are where fake structures go.
pub const CHUNK: u64 = 2 << 20;
/// `__START_KERNEL_map`.
const KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// One `PT_LOAD` of the core: guest physical `paddr..paddr + len` at file offset `offset`.
#[derive(Copy, Clone, Debug)]
struct Load {
    paddr: u64,
    offset: u64,
    len: u64,
}

/// The `PT_LOAD`s of a little-endian ELF64 core.
fn loads(path: &Path) -> Vec<Load> {
    let file = std::fs::File::open(path).unwrap();
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).unwrap();
    assert_eq!(&header[..6], b"\x7fELF\x02\x01", "{}: not a little-endian ELF64 file", path.display());
    let phoff = u64::from_le_bytes(header[32..40].try_into().unwrap());
    let phnum = u16::from_le_bytes(header[56..58].try_into().unwrap()) as usize;
    let mut table = vec![0u8; phnum * 56];
    file.read_exact_at(&mut table, phoff).unwrap();
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    table
        .chunks(56)
        .filter(|p| u32::from_le_bytes(p[0..4].try_into().unwrap()) == 1)
        .map(|p| Load { paddr: word(p, 24), offset: word(p, 8), len: word(p, 32) })
        .collect()
}

/// The kernel's `.BTF` section, parsed enough to find records and members by name.
pub struct BtfSection {
    /// Virtual address of the section.
    pub va: u64,
    bytes: Vec<u8>,
    /// Where the strings start in the section.
    strings: usize,
    /// Section offset of the record of type id `i + 1`.
    records: Vec<usize>,
}

/// A member record of a structure: where it is in the section and what it says.
#[derive(Copy, Clone, Debug)]
pub struct MemberRecord {
    /// Section offset of the record (name offset, type, bit offset).
    pub at: usize,
    /// Type id of the member.
    pub ty: u32,
}

impl BtfSection {
    fn parse(va: u64, bytes: Vec<u8>) -> BtfSection {
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]), 0xeb9f, "BTF magic");
        let hdr_len = u32_at(4) as usize;
        let types = hdr_len + u32_at(8) as usize;
        let end = types + u32_at(12) as usize;
        let strings = hdr_len + u32_at(16) as usize;
        let mut records = Vec::new();
        let mut at = types;
        while at < end {
            records.push(at);
            let info = u32_at(at + 4);
            let vlen = (info & 0xffff) as usize;
            at += 12
                + match (info >> 24) & 0x1f {
                    1 | 14 | 17 => 4,
                    3 => 12,
                    4 | 5 | 15 | 19 => 12 * vlen,
                    6 | 13 => 8 * vlen,
                    _ => 0,
                };
        }
        BtfSection { va, bytes, strings, records }
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes[at..at + 4].try_into().unwrap())
    }

    fn name(&self, name_off: u32) -> &[u8] {
        let rest = &self.bytes[self.strings + name_off as usize..];
        &rest[..rest.iter().position(|&b| b == 0).unwrap()]
    }

    /// Section offset of the record of type `id`.
    pub fn record(&self, id: u32) -> usize {
        self.records[id as usize - 1]
    }

    /// The kind of type `id`.
    pub fn kind(&self, id: u32) -> u32 {
        (self.u32_at(self.record(id) + 4) >> 24) & 0x1f
    }

    /// The type a typedef, pointer or qualifier `id` refers to.
    pub fn target(&self, id: u32) -> u32 {
        self.u32_at(self.record(id) + 8)
    }

    /// The id of the first type of `kind` named `name` (structures with a body only).
    pub fn find(&self, kind: u32, name: &str) -> u32 {
        (1..=self.records.len() as u32)
            .find(|&id| self.kind(id) == kind && self.name(self.u32_at(self.record(id))) == name.as_bytes())
            .unwrap_or_else(|| panic!("BTF has no type {name} of kind {kind}"))
    }

    /// The name offset of the record at section offset `at` (a type or a member).
    pub fn name_off(&self, at: usize) -> u32 {
        self.u32_at(at)
    }

    /// The members of structure `id`.
    pub fn members(&self, id: u32) -> Vec<MemberRecord> {
        let at = self.record(id);
        let vlen = (self.u32_at(at + 4) & 0xffff) as usize;
        (0..vlen).map(|i| at + 12 + 12 * i).map(|m| MemberRecord { at: m, ty: self.u32_at(m + 4) }).collect()
    }

    /// The member `name` of structure `id`.
    pub fn member(&self, id: u32, name: &str) -> MemberRecord {
        *self
            .members(id)
            .iter()
            .find(|m| self.name(self.u32_at(m.at)) == name.as_bytes())
            .unwrap_or_else(|| panic!("BTF: no member {name}"))
    }
}

/// A real dump and the facts of its kernel the hostile cases patch.
pub struct Dump {
    /// The dump file (the fixture; never written).
    pub path: PathBuf,
    loads: Vec<Load>,
    os: LinuxOs<FileConnector>,
    /// The kernel's `.BTF`.
    pub btf: BtfSection,
    /// `init_task`.
    pub init_task: u64,
    /// The `task_struct` of pid 1.
    pub init_proc: u64,
    /// Offsets in `task_struct` of `tasks` and `mm`.
    pub task_tasks: u64,
    /// See `task_tasks`.
    pub task_mm: u64,
    /// Offsets in `mm_struct` of `arg_start` and `arg_end`.
    pub mm_args: (u64, u64),
    /// The head of the kernel module list (`modules`).
    pub modules: u64,
    /// `_stext`, the start of kernel text.
    pub text: u64,
    /// Physical address of the page directory that maps the first GiB of `__START_KERNEL_map`.
    pub kernel_pd: u64,
    /// The start of the kernel's direct map of physical memory (`page_offset_base`).
    pub direct_map: u64,
    /// Zeroed 2 MiB chunks of guest RAM (physical addresses), highest first.
    pub free: Vec<u64>,
    /// Physical address of the ELF header of pid 1's executable (`/bin/busybox`).
    pub busybox_header: u64,
    /// Kernel virtual address of `mm_mt.ma_root` of pid 1, the root of its VMA maple tree.
    pub maple_root: u64,
    /// `maple_range_64`: offsets of `pivot` and `slot`, and the number of slots.
    pub maple_range64: (u64, u64, usize),
    /// Kernel virtual address of `mm->exe_file` of pid 1.
    pub exe_file: u64,
    /// Offsets of the fields a file path is spelled from.
    pub path_offsets: PathOffsets,
}

/// Offsets of the fields of `struct file`, `dentry`, `vfsmount` and `mount` that a file's
/// path is spelled from.
#[derive(Copy, Clone, Debug)]
pub struct PathOffsets {
    /// `file.f_path.mnt` and `file.f_path.dentry`.
    pub file_mnt: u64,
    /// See `file_mnt`.
    pub file_dentry: u64,
    /// `dentry.d_parent`, `d_name.len` and `d_name.name`.
    pub d_parent: u64,
    /// See `d_parent`.
    pub d_name_len: u64,
    /// See `d_parent`.
    pub d_name_name: u64,
    /// `vfsmount.mnt_root`, and where `mount` keeps its `vfsmount`.
    pub mnt_root: u64,
    /// See `mnt_root`.
    pub mount_mnt: u64,
}

impl Dump {
    /// Opens the fixture `name` and finds everything the cases need.
    pub fn load(name: &'static str) -> Dump {
        let fx = Fixture::load(name);
        let conn = fx.open();
        let hints = cpu_hints(&conn);
        let mut os = LinuxOs::new(conn, &hints, LibArc::default()).unwrap();
        let path = fx.dir.join("dump.elf");
        let sym = |os: &mut LinuxOs<FileConnector>, name: &str| os.kernel_symbol(name).unwrap().to_umem() as u64;
        let (start, stop) = (sym(&mut os, "__start_BTF"), sym(&mut os, "__stop_BTF"));
        let bytes = os.read_raw(Address::new(start as umem), (stop - start) as usize).data().unwrap();
        let btf = BtfSection::parse(start, bytes);
        let layout = os.layout();
        let (task_tasks, task_mm) = (layout.task.tasks as u64, layout.task.mm as u64);
        let mm_args = (layout.mm.arg_start as u64, layout.mm.arg_end as u64);
        let exe_file_off = layout.mm.exe_file as u64;
        let p = &layout.path;
        let path_offsets = PathOffsets {
            file_mnt: p.file_mnt as u64,
            file_dentry: p.file_dentry as u64,
            d_parent: p.d_parent as u64,
            d_name_len: p.d_name_len as u64,
            d_name_name: p.d_name_name as u64,
            mnt_root: p.mnt_root as u64,
            mount_mnt: p.mount_mnt as u64,
        };
        let init_task = sym(&mut os, "init_task");
        let modules = sym(&mut os, "modules");
        let text = sym(&mut os, "_stext");
        let base_sym = sym(&mut os, "page_offset_base");
        let direct_map = os.read_addr(Address::new(base_sym as umem)).data().unwrap().to_umem() as u64;
        let info = os.process_info_by_pid(1).unwrap();
        let init_proc = info.address.to_umem() as u64;
        let mut process = os.process(info).unwrap();
        let busybox = process.primary_module().unwrap();
        let busybox_header = process.virt_to_phys(busybox.base).unwrap().address.to_umem() as u64;
        let root = os.kernel_root().to_umem() as u64;
        let init_mm = os.read_addr(Address::new((init_proc + task_mm) as umem)).data().unwrap().to_umem() as u64;
        let btf_of = |structure: &str, path: &str| os.btf().member_path(structure, path).unwrap();
        let maple_root = init_mm + btf_of("mm_struct", "mm_mt.ma_root").offset as u64;
        let slot = btf_of("maple_range_64", "slot");
        let slot_count = os.btf().array(slot.ty).unwrap().1 as usize;
        let maple_range64 = (btf_of("maple_range_64", "pivot").offset as u64, slot.offset as u64, slot_count);
        let exe_file = init_mm + exe_file_off;
        let loads = loads(&path);
        let mut dump = Dump {
            path,
            loads,
            os,
            btf,
            init_task,
            init_proc,
            task_tasks,
            task_mm,
            mm_args,
            modules,
            text,
            kernel_pd: 0,
            direct_map,
            free: vec![],
            busybox_header,
            maple_root,
            maple_range64,
            exe_file,
            path_offsets,
        };
        let pdpt = dump.phys_u64(root + 511 * 8) & 0x000f_ffff_ffff_f000;
        dump.kernel_pd = dump.phys_u64(pdpt + 510 * 8) & 0x000f_ffff_ffff_f000;
        dump.free = dump.zero_chunks(&fx);
        dump
    }

    /// The file offset of guest physical `pa` with at least `len` bytes behind it in its load.
    fn file_offset(&self, pa: u64, len: u64) -> u64 {
        let l = self
            .loads
            .iter()
            .find(|l| l.paddr <= pa && pa + len <= l.paddr + l.len)
            .unwrap_or_else(|| panic!("{pa:#x}+{len:#x} is not in one PT_LOAD"));
        l.offset + (pa - l.paddr)
    }

    fn phys_u64(&self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        std::fs::File::open(&self.path).unwrap().read_exact_at(&mut b, self.file_offset(pa, 8)).unwrap();
        u64::from_le_bytes(b)
    }

    /// The 2 MiB chunks of System RAM that hold only zeros, from the top of memory down.
    fn zero_chunks(&self, fx: &Fixture) -> Vec<u64> {
        let file = std::fs::File::open(&self.path).unwrap();
        let mut buf = vec![0u8; CHUNK as usize];
        let mut out = vec![];
        for (first, last) in fx.system_ram().into_iter().rev() {
            let mut at = (last + 1) & !(CHUNK - 1);
            while at >= first + CHUNK {
                at -= CHUNK;
                if at < first || !self.loads.iter().any(|l| l.paddr <= at && at + CHUNK <= l.paddr + l.len) {
                    continue;
                }
                file.read_exact_at(&mut buf, self.file_offset(at, CHUNK)).unwrap();
                if buf.iter().all(|&b| b == 0) {
                    out.push(at);
                }
            }
        }
        out
    }

    /// `bytes` at guest physical `pa`.
    pub fn phys(&self, pa: u64, bytes: &[u8]) -> Patch {
        vec![(self.file_offset(pa, bytes.len() as u64), bytes.to_vec())]
    }

    /// `bytes` at kernel virtual `va`, page by page.
    pub fn virt(&mut self, va: u64, bytes: &[u8]) -> Patch {
        let mut out = vec![];
        let mut done = 0;
        while done < bytes.len() {
            let at = va + done as u64;
            let n = ((PAGE - at % PAGE) as usize).min(bytes.len() - done);
            let pa = self.os.virt_to_phys(Address::new(at as umem)).unwrap().address.to_umem() as u64;
            out.extend(self.phys(pa, &bytes[done..done + n]));
            done += n;
        }
        out
    }

    /// The 64-bit value at kernel virtual `va`.
    pub fn read_u64(&mut self, va: u64) -> u64 {
        self.os.read::<u64>(Address::new(va as umem)).data().unwrap()
    }

    /// The kernel virtual addresses of every occurrence of `needle` in the kernel image
    /// (`_text` to `_end`).
    pub fn find_in_image(&mut self, needle: &[u8]) -> Vec<u64> {
        let text = self.os.kernel_symbol("_text").unwrap().to_umem() as u64;
        let end = self.os.kernel_symbol("_end").unwrap().to_umem() as u64;
        let image = self.os.read_raw(Address::new(text as umem), (end - text) as usize).data_part().unwrap();
        let hits = image.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle);
        hits.map(|(i, _)| text + i as u64).collect()
    }

    /// A 64-bit value at kernel virtual `va`.
    pub fn virt_u64(&mut self, va: u64, value: u64) -> Patch {
        self.virt(va, &value.to_le_bytes())
    }

    /// A 32-bit `value` at offset `at` of the `.BTF` section (its header starts at 0).
    pub fn btf_u32(&mut self, at: usize, value: u32) -> Patch {
        self.virt(self.btf.va + at as u64, &value.to_le_bytes())
    }

    /// The kernel virtual address of guest physical `pa` in the direct map.
    pub fn direct(&self, pa: u64) -> u64 {
        self.direct_map + pa
    }

    /// Free chunk `i` (see [`Dump::free`]); fails the test with a clear message if the dump
    /// has too few.
    pub fn chunk(&self, i: usize) -> u64 {
        assert!(
            i < self.free.len(),
            "{}: only {} zeroed 2 MiB chunks of RAM to build fake structures in",
            self.path.display(),
            self.free.len()
        );
        self.free[i]
    }

    /// A ring of `count` fake `list_head`s in free chunks (from chunk `first_chunk` on),
    /// 16 bytes apart, linked from and back to the list head at `head` (`next` and `prev`
    /// consistent, so only a bound on the count can stop a walk).
    pub fn long_ring(&mut self, head: u64, count: usize, first_chunk: usize) -> Patch {
        let per_chunk = (CHUNK / 16) as usize;
        let chunks = count.div_ceil(per_chunk);
        let node = |d: &Dump, i: usize| d.direct(d.chunk(first_chunk + i / per_chunk)) + 16 * (i % per_chunk) as u64;
        let mut out = vec![];
        for c in 0..chunks {
            let mut buf = vec![0u8; CHUNK as usize];
            for j in 0..per_chunk.min(count - c * per_chunk) {
                let i = c * per_chunk + j;
                let next = if i + 1 == count { head } else { node(self, i + 1) };
                let prev = if i == 0 { head } else { node(self, i - 1) };
                buf[16 * j..16 * j + 8].copy_from_slice(&next.to_le_bytes());
                buf[16 * j + 8..16 * j + 16].copy_from_slice(&prev.to_le_bytes());
            }
            out.extend(self.phys(self.chunk(first_chunk + c), &buf));
        }
        out.extend(self.virt_u64(head, node(self, 0)));
        out.extend(self.virt_u64(head + 8, node(self, count - 1)));
        out
    }

    /// Nodes in free chunk `chunk` whose `next` links are `links[i]` (an index into the same
    /// nodes, or `None` for the list head at `head`); the head's `next` is node 0.
    pub fn ring_of(&mut self, head: u64, links: &[Option<usize>], chunk: usize) -> Patch {
        let base = self.direct(self.chunk(chunk));
        let mut buf = vec![0u8; 16 * links.len()];
        for (i, link) in links.iter().enumerate() {
            let next = link.map_or(head, |j| base + 16 * j as u64);
            buf[16 * i..16 * i + 8].copy_from_slice(&next.to_le_bytes());
        }
        let mut out = self.phys(self.chunk(chunk), &buf);
        out.extend(self.virt_u64(head, base));
        out
    }

    /// Maple tree nodes in free chunk `chunk`, 256 bytes apart, with pivots that mark every
    /// slot used: node `i` holds `slots[i]` (the rest empty) and is a `range_64` node if one of
    /// them is a node, a `leaf_64` otherwise; pid 1's tree root points at node 0.
    pub fn maple_nodes(&mut self, slots: &[Vec<Slot>], chunk: usize) -> Patch {
        let (pivot_at, slot_at, count) = self.maple_range64;
        let base = self.direct(self.chunk(chunk));
        let leaf = |i: usize| slots[i].iter().all(|s| matches!(s, Slot::Entry(_)));
        let encode = |i: usize| (base + 256 * i as u64) | if leaf(i) { 1 << 3 } else { 2 << 3 } | 2;
        let mut buf = vec![0u8; 256 * slots.len()];
        for (i, node_slots) in slots.iter().enumerate() {
            let node = &mut buf[256 * i..256 * (i + 1)];
            for k in 0..count - 1 {
                let at = pivot_at as usize + 8 * k;
                node[at..at + 8].copy_from_slice(&((k as u64 + 1) << 32).to_le_bytes());
            }
            for (k, slot) in node_slots.iter().enumerate().take(count) {
                let value = match *slot {
                    Slot::Node(c) => encode(c),
                    Slot::Entry(v) => v,
                };
                let at = slot_at as usize + 8 * k;
                node[at..at + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        let mut out = self.phys(self.chunk(chunk), &buf);
        let root = self.maple_root;
        out.extend(self.virt_u64(root, encode(0)));
        out
    }

    /// Pid 1's executable as a fake `struct file` in free chunk `chunk` whose dentry and its
    /// parent are each other's parents, both with 255-byte names, on a mount whose root is
    /// neither: spelling the path never reaches a root.
    pub fn dentry_cycle(&mut self, chunk: usize) -> Patch {
        let p = self.path_offsets;
        let va = self.direct(self.chunk(chunk));
        let (file, mount, dentry_a, dentry_b, name) = (va, va + 0x1000, va + 0x2000, va + 0x2800, va + 0x5000);
        let mut buf = vec![0u8; 0x6000];
        let put = |buf: &mut Vec<u8>, at: u64, v: u64| buf[(at - va) as usize..][..8].copy_from_slice(&v.to_le_bytes());
        put(&mut buf, file + p.file_mnt, mount + p.mount_mnt);
        put(&mut buf, file + p.file_dentry, dentry_a);
        put(&mut buf, mount + p.mount_mnt + p.mnt_root, va + 0x3000);
        for (me, parent) in [(dentry_a, dentry_b), (dentry_b, dentry_a)] {
            put(&mut buf, me + p.d_parent, parent);
            put(&mut buf, me + p.d_name_name, name);
            buf[(me + p.d_name_len - va) as usize..][..4].copy_from_slice(&255u32.to_le_bytes());
        }
        buf[0x5000..0x5000 + 255].fill(b'a');
        let mut out = self.phys(self.chunk(chunk), &buf);
        let exe = self.exe_file;
        out.extend(self.virt_u64(exe, file));
        out
    }

    /// 2 MiB of digit tokens in free chunk `chunk`, mapped by `count` large pages of the
    /// kernel's page directory from `__START_KERNEL_map` on (in front of a kernel image
    /// loaded at `KERNEL_MAP + 16 MiB`, where those entries are empty).
    pub fn mapped_tokens(&mut self, count: usize, chunk: usize, tokens: &[u8]) -> Patch {
        let pa = self.chunk(chunk);
        assert!(
            (0..count).all(|i| self.phys_u64(self.kernel_pd + 8 * i as u64) == 0),
            "the first {count} large pages of {KERNEL_MAP:#x} are in use: not a `nokaslr` guest"
        );
        let mut out = self.phys(pa, tokens);
        for i in 0..count {
            out.extend(self.phys(self.kernel_pd + 8 * i as u64, &(pa | 0x83).to_le_bytes()));
        }
        out
    }
}

/// What a maple tree slot written by [`Dump::maple_nodes`] holds.
#[derive(Copy, Clone, Debug)]
pub enum Slot {
    /// The node of this index.
    Node(usize),
    /// This raw value (an entry: a VMA address).
    Entry(u64),
}

/// A writable copy of a dump that patches are applied to and taken back from.
pub struct WorkCopy {
    /// Its path.
    pub path: PathBuf,
    file: std::fs::File,
}

impl WorkCopy {
    /// Copies `src` to `path`.
    pub fn new(src: &Path, path: PathBuf) -> WorkCopy {
        std::fs::copy(src, &path).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        WorkCopy { path, file }
    }

    /// Writes `patch`, returning what it overwrote (apply that to undo).
    pub fn apply(&self, patch: &Patch) -> Patch {
        let mut undo = Vec::with_capacity(patch.len());
        for (at, bytes) in patch {
            let mut old = vec![0u8; bytes.len()];
            self.file.read_exact_at(&mut old, *at).unwrap();
            self.file.write_all_at(bytes, *at).unwrap();
            undo.push((*at, old));
        }
        undo.reverse();
        undo
    }
}

impl Drop for WorkCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
