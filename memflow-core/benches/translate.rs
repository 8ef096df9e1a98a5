//! Address translation and virtual reads on a real guest (issue 3), side by side in one
//! criterion run with memflow 0.2.4 and with memcpy.
//!
//! The target is the 4-level fixture `target/fixtures/cloud-4l/dump.elf` (Debian 6.1 cloud
//! kernel, `nokaslr`, `-cpu qemu64`; made by `cargo xtask fixtures`) with CR3 from the dump's
//! CPU state:
//!
//! - `ours`: the ELF core `FileConnector` under `VirtualDma::new(.., X86_64, &[cr3])` (no TLB).
//!   The connector is built as `connector::open` builds it (map the file, `detect::parse`,
//!   `FileConnector::new`), from a mapping the memcpy baseline copies from too: two mappings
//!   of one file can differ in speed here (the same physical reads through a connector opened
//!   first ran 8-10% slower than through one opened later), which would count against ours;
//! - `memflow-0.2.4`: the peer's own mapping of the same file (`MmapInfo` with a memory map made
//!   of the dump's PT_LOAD ranges, since 0.2.4 itself does not read ELF cores) under its
//!   `VirtualDma::new(.., x64::ARCH, x64::new_translator(cr3))`, i.e. its `DirectTranslate`;
//! - `memcpy`: `copy_from_slice` of the very physical bytes a virtual read returns, from the same
//!   `memmap2::Mmap` of the file (the pieces are computed before measuring).
//!
//! Groups (every contender gets the same seeded addresses):
//!
//! - `translate/batch{1,64,4096}`: 1 million random mapped kernel addresses, picked uniformly
//!   from the mapped bytes of the kernel half's page map (those memflow 0.2.4 fails to
//!   translate are replaced by repeats of the others); each iteration translates the next
//!   batch of the cycled list (ours: `virt_to_phys` / `virt_to_phys_list`; memflow: the same
//!   names). Throughput in elements = translations.
//! - `translate_walk/kernel-half`: `virt_page_map_range` over `0xffff8000_00000000..` (gap 0),
//!   both libraries.
//! - `translate_arm64-4k/...`, `translate_walk_arm64-4k`, `translate_arm64-16k/...`,
//!   `translate_walk_arm64-16k`, `translate_arm64-max/...`, `translate_walk_arm64-max`: the
//!   same on the ARM64 guests `target/fixtures/arm64-4k`, `arm64-16k` and `arm64-max` (issue
//!   14, see [`translate_arm64`]), the kernel half being the TTBR1 range.
//! - `translate_riscv64-sv39/...`, `translate_walk_riscv64-sv39` and the same for
//!   `riscv64-sv57`: ours on the RISC-V guests (issue 14, see [`translate_riscv`]); no peer
//!   translates RISC-V (memflow 0.2.4 has no RISC-V architecture), so their interleaved lines
//!   set ours on RISC-V against ours on the x86-64 guest.
//!
//! Each translation group and walk also prints an interleaved line (see below) of ours
//! against memflow 0.2.4.
//! - `virt_read/{4KiB,64KiB,1MiB}`: `read_raw_into` at 4096 random addresses whose whole read is
//!   mapped and backed by the dump (cycled); besides the three contenders, `ours-tlb` (the same
//!   view with the optional 4096-slot TLB) and `ours-phys` (our connector's `phys_read_raw_into`
//!   of the same physical pieces, no translation) show where the time goes.
//! - `virt_read_5g/{4KiB,64KiB,1MiB}`: the same reads, set up the same way, on the 5 GiB guest
//!   `target/fixtures/cloud-4l-5g/dump.elf` (issue 11: large guests).
//!
//! For the 4 KiB reads of both guests the bench also prints a `... interleaved ...` line: 31
//! rounds in which ours, ours-phys and memcpy each make one timed pass over the 4096 reads in
//! turn, with each one's median per read and memcpy's median over it. Criterion measures the
//! contenders seconds apart, so on a shared machine its ratios follow the other processes'
//! load; the interleaved ones do not.
//!
//! Before measuring, the contenders' results are checked against each other, every mapping is
//! faulted in, and the working memory of one translator clone is measured with a counting
//! global allocator (peak live heap bytes above the baseline while it translates, walks and
//! reads); it is printed as `working-memory ...` lines.
//!
//! Run: `cargo bench -p memflow-core --bench translate -- --warm-up-time 1 --measurement-time 3`
//! and summarise with `cargo xtask bench-report translate [target-dir]`.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "support/interleave.rs"]
mod interleave;
use rand::{rngs::SmallRng, Rng, SeedableRng};

use memflow_core::arch::ArchitectureIdent;
use memflow_core::cglue::iter::CIterator;
use memflow_core::connector::detect::parse;
use memflow_core::connector::{CpuState, FileConnector, ParsedDump};
use memflow_core::mem::MemoryView;
use memflow_core::os::linux::{aarch64, riscv64};
use memflow_core::translate::{
    MemoryRange, TranslationFailure, TranslationRange, Translator, VirtualTranslate, VirtualTranslation,
};
use memflow_core::types::{umem, Address};
use memflow_core::virt::VirtualDma;

use memflow::architecture::arm::aarch64 as peer_aarch64;
use memflow::architecture::x86::x64;
use memflow::cglue::{CTup2, CTup3};
use memflow::connector::MmapInfo;
use memflow::mem::{
    MemoryMap as PeerMemoryMap, MemoryView as PeerMemoryView, VirtualTranslate as PeerVirtualTranslate,
    VirtualTranslate3 as PeerTranslate3,
};
use memflow::types::{Address as PeerAddress, PageType as PeerPageType};

// ---- a counting allocator (live bytes always; the peak only while `TRACK` is set) ----

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static TRACK: AtomicBool = AtomicBool::new(false);

#[inline]
fn grew(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    if TRACK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        grew(l.size() as isize);
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        grew(new as isize - l.size() as isize);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The peak of live heap bytes above the level before `f`, while `f` runs (what `f` keeps
/// after it returns is included, as the peak was at least that).
fn heap_peak<R>(f: impl FnOnce() -> R) -> (R, isize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    TRACK.store(true, Ordering::Relaxed);
    let r = f();
    TRACK.store(false, Ordering::Relaxed);
    (r, PEAK.load(Ordering::Relaxed) - base)
}

// ---- the workload ----

const SEED: u64 = 0x6d656d666c6f77; // "memflow"
const N_ADDRS: usize = 1 << 20; // "1 million"
const BATCHES: [usize; 3] = [1, 64, 4096];
const N_READS: usize = 4096;
const READS: [(usize, &str); 3] = [(4 << 10, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
/// Addresses translated per pass of the interleaved comparison.
const PASS_ADDRS: usize = 1 << 16;

/// `target/fixtures/<name>/dump.elf`.
fn fixture(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/fixtures/{name}/dump.elf"));
    assert!(path.is_file(), "{} missing: run `cargo xtask fixtures` first", path.display());
    path
}

fn peer_addr(a: Address) -> PeerAddress {
    PeerAddress::from(a.to_umem() as u64)
}

/// `n` addresses uniformly over the mapped bytes of `ranges`, each with at least `room` mapped
/// bytes from it on (within its range).
fn pick(ranges: &[MemoryRange], n: usize, room: umem, rng: &mut SmallRng) -> Vec<Address> {
    let fit: Vec<&MemoryRange> = ranges.iter().filter(|r| r.size >= room).collect();
    let mut cum = vec![];
    let mut total: umem = 0;
    for r in &fit {
        total += r.size - room + 1;
        cum.push(total);
    }
    (0..n)
        .map(|_| {
            let x = rng.gen_range(0..total);
            let i = cum.partition_point(|&c| c <= x);
            let before = if i == 0 { 0 } else { cum[i - 1] };
            fit[i].base + (x - before)
        })
        .collect()
}

/// Cycles through a list.
struct Cycle<'a, T> {
    items: &'a [T],
    i: usize,
}

impl<'a, T: Copy> Cycle<'a, T> {
    fn new(items: &'a [T]) -> Self {
        assert!(items.len().is_power_of_two());
        Cycle { items, i: 0 }
    }
    #[inline(always)]
    fn next(&mut self) -> T {
        let v = self.items[self.i];
        self.i = (self.i + 1) & (self.items.len() - 1);
        v
    }
    /// The next `n` items (`n` divides the length).
    #[inline(always)]
    fn next_slice(&mut self, n: usize) -> &'a [T] {
        let s = &self.items[self.i..self.i + n];
        self.i = (self.i + n) & (self.items.len() - 1);
        s
    }
}

/// The file-offset pieces a virtual read of `len` bytes at `va` copies (from the translation
/// map, merged where contiguous in the file).
fn pieces(tmap: &[TranslationRange], conn: &FileConnector, va: Address, len: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = vec![];
    let mut pos = 0usize;
    while pos < len {
        let a = va + pos;
        let i = tmap.partition_point(|r| r.va + r.size <= a);
        let r = &tmap[i];
        assert!(r.va <= a, "{a} is not mapped");
        let pa = r.pa + (a - r.va);
        let in_range = ((r.va + r.size) - a) as usize;
        let (off, avail) = conn.memory_map().lookup(pa).expect("mapped in the dump");
        let n = in_range.min(avail as usize).min(len - pos);
        match out.last_mut() {
            Some((o, l)) if *o + *l == off as usize => *l += n,
            _ => out.push((off as usize, n)),
        }
        pos += n;
    }
    out
}

/// `target/fixtures/<name>/dump.elf`: the file, one mapping of it (every page faulted in) and
/// our connector on that mapping, as `connector::open` builds it. The one mapping serves our
/// connector and the memcpy baseline (see the module docs).
fn open_dump(name: &str) -> (File, Arc<memmap2::Mmap>, FileConnector) {
    let file = File::open(fixture(name)).expect("open the dump");
    // SAFETY: the fixture is not modified while mapped.
    let mmap = Arc::new(unsafe { memmap2::Mmap::map(&file) }.expect("map the dump"));
    let ParsedDump { map, info } = parse(&mmap).expect("parse the dump");
    let conn = FileConnector::new(mmap.clone(), map, info).expect("our connector");
    let mut sum = 0u64;
    for page in mmap.chunks(4096) {
        sum = sum.wrapping_add(page[0] as u64);
    }
    black_box(sum);
    (file, mmap, conn)
}

/// Memflow 0.2.4's own mapping of `file`: one remap per range of `conn`'s memory map (the
/// dump's PT_LOAD ranges).
fn peer_connector(file: &File, conn: &FileConnector) -> memflow::connector::ReadMappedFilePhysicalMemory<'static> {
    let mut peer_map = PeerMemoryMap::new();
    for m in conn.memory_map().ranges() {
        peer_map.push_remap(peer_addr(m.base), m.size as u64, PeerAddress::from(m.backing as u64));
    }
    MmapInfo::try_with_filemap(file.try_clone().unwrap(), peer_map).expect("peer maps").into_connector()
}

/// Memflow 0.2.4's view of a dump: its file mapping under its `DirectTranslate` with the
/// architecture's translator `D`.
type PeerDma<D> = memflow::mem::VirtualDma<
    memflow::connector::ReadMappedFilePhysicalMemory<'static>,
    memflow::mem::DirectTranslate,
    D,
>;
/// Memflow 0.2.4's view of an x86-64 dump.
type PeerView = PeerDma<memflow::architecture::x86::X86VirtualTranslate>;

/// One fixture as every contender sees it, every mapping faulted in.
struct Guest {
    conn: FileConnector,
    cr3: Address,
    /// Ours, as a user builds it: `VirtualDma::new(conn, X86_64, &[cr3])`.
    ours: VirtualDma<FileConnector>,
    peer: PeerView,
    /// The mapping of the file that `conn` serves and the memcpy baseline copies from.
    mmap: Arc<memmap2::Mmap>,
    /// The kernel half's page map and translation map (ours; the reference walker agrees, see
    /// tests/tests/translate_guest.rs).
    map: Vec<MemoryRange>,
    tmap: Vec<TranslationRange>,
}

impl Guest {
    /// Opens `target/fixtures/<name>/dump.elf` for every contender. With `check`, every page
    /// of every mapping is read through both connectors first.
    fn open(name: &str, check: bool) -> Guest {
        let (file, mmap, conn) = open_dump(name);
        let regs = conn.x86_registers(0).expect("CPU 0 registers");
        let cr3 = regs.page_table_root().expect("paging on");
        let mut ours = VirtualDma::new(conn.clone(), ArchitectureIdent::X86_64, &[cr3]).expect("our view");
        let mut peer =
            memflow::mem::VirtualDma::new(peer_connector(&file, &conn), x64::ARCH, x64::new_translator(peer_addr(cr3)));

        // Read every page of every mapping through both connectors.
        let mut phys = conn.clone();
        let mut peer_phys = peer.phys_mem().clone();
        let mut buf = vec![0u8; 1 << 20];
        for m in conn.memory_map().ranges().iter().filter(|_| check) {
            let mut off: umem = 0;
            while off < m.size {
                let n = ((m.size - off) as usize).min(buf.len());
                memflow_core::mem::PhysicalMemory::phys_read_raw_into(
                    &mut phys,
                    memflow_core::types::PhysicalAddress::plain(m.base + off),
                    &mut buf[..n],
                )
                .unwrap();
                memflow::mem::PhysicalMemory::phys_read_into(
                    &mut peer_phys,
                    memflow::types::PhysicalAddress::from(peer_addr(m.base + off)),
                    &mut buf[..n],
                )
                .unwrap();
                off += n as umem;
            }
        }

        let half = Address::new(KERNEL_HALF as umem);
        let map = ours.virt_page_map_range_vec(0, half, Address::INVALID).unwrap();
        let mut tmap: Vec<TranslationRange> = vec![];
        ours.virt_translation_map_range(half, Address::INVALID, (&mut tmap).into()).unwrap();
        Guest { conn, cr3, ours, peer, mmap, map, tmap }
    }

    /// The part of the kernel half whose physical memory is in the dump (not MMIO, firmware
    /// or PCI windows).
    fn readable(&self) -> Vec<MemoryRange> {
        let mut readable: Vec<MemoryRange> = vec![];
        for r in &self.tmap {
            let mut pos: umem = 0;
            while pos < r.size {
                let lookup = self.conn.memory_map().lookup(r.pa + pos);
                let n = lookup.map_or(4096, |(_, avail)| avail).min(r.size - pos);
                if lookup.is_some() {
                    let va = r.va + pos;
                    match readable.last_mut() {
                        Some(last) if last.base + last.size == va => last.size += n,
                        _ => readable.push(MemoryRange { base: va, size: n, page_type: r.page_type }),
                    }
                }
                pos += n;
            }
        }
        readable
    }
}

fn translate(c: &mut Criterion) {
    let check = std::env::var_os("TRANSLATE_BENCH_NO_CHECK").is_none();
    let mut guest = Guest::open("cloud-4l", check);
    let half = Address::new(KERNEL_HALF as umem);
    let mapped: umem = guest.map.iter().map(|r| r.size).sum();

    // (a) translations and (b) the whole kernel-half page walk.
    let mut rng = SmallRng::seed_from_u64(SEED);
    let vas = pick(&guest.map, N_ADDRS, 1, &mut rng);
    let contenders = Contenders { ours: &mut guest.ours, peer: Some(&mut guest.peer) };
    translation_groups(c, "", contenders, &vas, half, mapped, check);

    // Working memory of one translator clone.
    let one = vas[..4096].to_vec();
    let va = pick(&guest.readable(), 1, 1 << 20, &mut SmallRng::seed_from_u64(1))[0];
    let mut buf = vec![0u8; 1 << 20];
    let (_, ours_heap) = heap_peak(|| {
        let mut v = guest.ours.clone();
        v.virt_to_phys_list(
            CIterator::from(&mut one.iter().copied()),
            (&mut |_: VirtualTranslation| true).into(),
            (&mut |_: TranslationFailure| true).into(),
        )
        .unwrap();
        v.virt_page_map_range(0, half, Address::INVALID, (&mut |_: MemoryRange| true).into()).unwrap();
        v.read_raw_into(va, &mut buf).unwrap();
        v
    });
    let peer_one: Vec<_> = one.iter().map(|&va| CTup2(peer_addr(va), 1u64)).collect();
    let (_, peer_heap) = heap_peak(|| {
        let mut v = guest.peer.clone();
        v.virt_to_phys_list(&peer_one, (&mut |_| true).into(), (&mut |_| true).into());
        v.virt_page_map_range(0, peer_addr(half), PeerAddress::invalid(), (&mut |_| true).into());
        v
    });
    println!(
        "working-memory ours: Translator::MAX_WORKING_BYTES {} B, VirtualDma::working_memory_bytes {} B, \
         measured peak heap of a fresh clone (4096 translations + kernel-half walk + 1 MiB read) {} B",
        Translator::MAX_WORKING_BYTES,
        guest.ours.working_memory_bytes(),
        ours_heap
    );
    println!("working-memory memflow-0.2.4: measured peak heap of a fresh VirtualDma clone (same work) {peer_heap} B");

    // (c) virtual reads.
    virt_reads(c, "virt_read", &mut guest, check);
}

/// Ours and, where it reads the guest's paging mode, memflow 0.2.4 on one guest's tables.
struct Contenders<'a, D> {
    ours: &'a mut VirtualDma<FileConnector>,
    peer: Option<&'a mut PeerDma<D>>,
}

/// The groups `translate{suffix}/batch{1,64,4096}` (the translation of `vas`, cycled, in
/// batches) and `translate_walk{suffix}` (the page map from `half` to the end, `mapped`
/// bytes) for the contenders, and for each an interleaved line (ours against memflow 0.2.4).
/// With the peer, only the addresses of `vas` it translates are used (see
/// [`peer_translated`]); with `check`, both translate every one of them first and must agree.
fn translation_groups<D: PeerTranslate3>(
    c: &mut Criterion,
    suffix: &str,
    contenders: Contenders<'_, D>,
    vas: &[Address],
    half: Address,
    mapped: umem,
    check: bool,
) {
    let Contenders { ours, mut peer } = contenders;
    let ours_ranges = ours.virt_page_map_range_vec(0, half, Address::INVALID).unwrap().len();
    print!("translate{suffix}: the kernel half from {half}: ours {ours_ranges} ranges, {} MiB mapped", mapped >> 20);
    let vas = match peer.as_deref_mut() {
        Some(peer) => {
            let mut peer_ranges = vec![];
            peer.virt_page_map_range(
                0,
                peer_addr(half),
                PeerAddress::invalid(),
                (&mut |CTup3(_, s, _): CTup3<PeerAddress, u64, PeerPageType>| {
                    peer_ranges.push(s);
                    true
                })
                    .into(),
            );
            let peer_mapped: u64 = peer_ranges.iter().sum();
            println!("; memflow 0.2.4 {} ranges, {} MiB mapped", peer_ranges.len(), peer_mapped >> 20);
            peer_translated(peer, vas)
        }
        None => {
            println!();
            vas.to_vec()
        }
    };
    let vas = &vas[..];
    let peer_vas: Vec<CTup2<PeerAddress, u64>> = vas.iter().map(|&va| CTup2(peer_addr(va), 1)).collect();
    // Ours and the peer agree on the physical addresses of every one of them (skipped with
    // TRANSLATE_BENCH_NO_CHECK set, e.g. to profile under callgrind).
    if check {
        let mut expect = vec![];
        ours.virt_to_phys_list(
            CIterator::from(&mut vas.iter().copied()),
            (&mut |t: VirtualTranslation| {
                expect.push((t.va.to_umem() as u64, t.pa.address.to_umem() as u64));
                true
            })
                .into(),
            (&mut |f: TranslationFailure| panic!("ours: {f:?}")).into(),
        )
        .unwrap();
        expect.sort_unstable();
        expect.dedup();
        let mut matched = 0usize;
        if let Some(peer) = peer.as_deref_mut() {
            let mut peer_got = vec![];
            for chunk in peer_vas.chunks(4096) {
                peer.virt_to_phys_list(
                    chunk,
                    (&mut |t: memflow::mem::virt_translate::VirtualTranslation| {
                        peer_got.push((t.in_virtual.to_umem(), t.out_physical.address.to_umem()));
                        true
                    })
                        .into(),
                    (&mut |_| true).into(),
                );
            }
            peer_got.sort_unstable();
            peer_got.dedup();
            let mut j = 0usize;
            for (va, pa) in &peer_got {
                while expect[j].0 < *va {
                    j += 1;
                }
                assert_eq!(expect[j], (*va, *pa), "ours and memflow 0.2.4 disagree");
                matched += 1;
            }
        }
        match peer {
            Some(_) => println!(
                "translate{suffix}: {} addresses; ours translated all, memflow 0.2.4's batched translation {} of \
                 the {} distinct ones (the rest are its false failures), all equal",
                vas.len(),
                matched,
                expect.len()
            ),
            None => println!("translate{suffix}: {} addresses; ours translated all", vas.len()),
        }
    }

    for batch in BATCHES {
        let mut g = c.benchmark_group(format!("translate{suffix}/batch{batch}"));
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::from_parameter("ours"), |b| {
            let mut it = Cycle::new(vas);
            b.iter(|| ours_batch(ours, it.next_slice(batch)))
        });
        if let Some(peer) = peer.as_deref_mut() {
            g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4"), |b| {
                let mut it = Cycle::new(&peer_vas);
                b.iter(|| peer_batch(peer, it.next_slice(batch)))
            });
        }
        g.finish();
        if let Some(peer) = peer.as_deref_mut() {
            let mut ours_pass = |_: &mut ()| vas[..PASS_ADDRS].chunks(batch).for_each(|chunk| ours_batch(ours, chunk));
            let mut peer_pass =
                |_: &mut ()| peer_vas[..PASS_ADDRS].chunks(batch).for_each(|chunk| peer_batch(peer, chunk));
            interleave::interleaved(
                &format!("translate{suffix}/batch{batch}"),
                &mut [("ours", &mut ours_pass), ("memflow-0.2.4", &mut peer_pass)],
                &mut (),
                PASS_ADDRS,
            );
        }
    }

    let mut g = c.benchmark_group(format!("translate_walk{suffix}"));
    g.sample_size(20);
    g.throughput(Throughput::Bytes(mapped as u64));
    g.bench_function(BenchmarkId::from_parameter("ours"), |b| b.iter(|| ours_walk(ours, half)));
    if let Some(peer) = peer.as_deref_mut() {
        g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4"), |b| b.iter(|| peer_walk(peer, half)));
    }
    g.finish();
    if let Some(peer) = peer {
        interleave::interleaved(
            &format!("translate_walk{suffix}"),
            &mut [
                ("ours", &mut |_: &mut ()| ours_walk(ours, half)),
                ("memflow-0.2.4", &mut |_: &mut ()| peer_walk(peer, half)),
            ],
            &mut (),
            1,
        );
    }
}

/// The addresses of `vas` that `peer` translates, cycled to the length of `vas` (a power of
/// two, see [`Cycle`]): both contenders are timed on addresses both translate. The number it
/// fails on is printed.
fn peer_translated<D: PeerTranslate3>(peer: &mut PeerDma<D>, vas: &[Address]) -> Vec<Address> {
    let mut ok = vec![];
    for chunk in vas.chunks(4096) {
        let peer_chunk: Vec<CTup2<PeerAddress, u64>> = chunk.iter().map(|&va| CTup2(peer_addr(va), 1)).collect();
        peer.virt_to_phys_list(
            &peer_chunk,
            (&mut |t: memflow::mem::virt_translate::VirtualTranslation| {
                ok.push(t.in_virtual.to_umem());
                true
            })
                .into(),
            (&mut |_| true).into(),
        );
    }
    ok.sort_unstable();
    let kept: Vec<Address> =
        vas.iter().copied().filter(|va| ok.binary_search(&(va.to_umem() as u64)).is_ok()).collect();
    println!(
        "memflow 0.2.4 fails on {} of the {} addresses: timed on the other {}",
        vas.len() - kept.len(),
        vas.len(),
        kept.len()
    );
    assert!(!kept.is_empty(), "memflow 0.2.4 translates none of the addresses");
    kept.iter().copied().cycle().take(vas.len()).collect()
}

/// Our translation of `chunk`: one `virt_to_phys`, or `virt_to_phys_list` for more.
#[inline(always)]
fn ours_batch(ours: &mut VirtualDma<FileConnector>, chunk: &[Address]) {
    if let [va] = chunk {
        black_box(ours.virt_to_phys(*va)).ok();
        return;
    }
    let mut acc = 0u64;
    ours.virt_to_phys_list(
        CIterator::from(&mut chunk.iter().copied()),
        (&mut |t: VirtualTranslation| {
            acc = acc.wrapping_add(t.pa.address.to_umem() as u64);
            true
        })
            .into(),
        (&mut |_: TranslationFailure| true).into(),
    )
    .unwrap();
    black_box(acc);
}

/// Memflow 0.2.4's translation of `chunk`, the same way.
#[inline(always)]
fn peer_batch<D: PeerTranslate3>(peer: &mut PeerDma<D>, chunk: &[CTup2<PeerAddress, u64>]) {
    if let [va] = chunk {
        black_box(peer.virt_to_phys(va.0)).ok();
        return;
    }
    let mut acc = 0u64;
    peer.virt_to_phys_list(
        chunk,
        (&mut |t: memflow::mem::virt_translate::VirtualTranslation| {
            acc = acc.wrapping_add(t.out_physical.address.to_umem());
            true
        })
            .into(),
        (&mut |_| true).into(),
    );
    black_box(acc);
}

/// Our page map from `half` to the end.
fn ours_walk(ours: &mut VirtualDma<FileConnector>, half: Address) {
    let mut n = 0usize;
    ours.virt_page_map_range(
        0,
        half,
        Address::INVALID,
        (&mut |r: MemoryRange| {
            n += r.size as usize;
            true
        })
            .into(),
    )
    .unwrap();
    black_box(n);
}

/// Memflow 0.2.4's page map from `half` to the end.
fn peer_walk<D: PeerTranslate3>(peer: &mut PeerDma<D>, half: Address) {
    let mut n = 0u64;
    peer.virt_page_map_range(
        0,
        peer_addr(half),
        PeerAddress::invalid(),
        (&mut |CTup3(_, s, _): CTup3<PeerAddress, u64, PeerPageType>| {
            n += s;
            true
        })
            .into(),
    );
    black_box(n);
}

/// `virt_read/{4KiB,64KiB,1MiB}` groups named `<group>/<size>` on one guest: `read_raw_into`
/// at `N_READS` random addresses whose whole read is mapped and backed by the dump (cycled),
/// for ours, ours with the optional TLB, memflow 0.2.4, our connector reading the same physical
/// pieces and memcpy of the same bytes. With `check`, the contenders' bytes are compared first.
fn virt_reads(c: &mut Criterion, group: &str, guest: &mut Guest, check: bool) {
    let readable = guest.readable();
    let Guest { conn, cr3, ours, peer, mmap, tmap, .. } = guest;
    let raw: &[u8] = &mmap[..];
    let mut phys = conn.clone();
    let mut a = vec![0u8; 1 << 20];
    let mut b2 = vec![0u8; 1 << 20];
    // The same view with the optional TLB (4096 slots), as a user who opts in gets it.
    let mut ours_tlb =
        VirtualDma::new(conn.clone(), ArchitectureIdent::X86_64, &[*cr3]).expect("our view").with_tlb(4096);
    for (size, name) in READS {
        let mut rng = SmallRng::seed_from_u64(SEED ^ size as u64);
        let addrs = pick(&readable, N_READS, size as umem, &mut rng);
        let plan: Vec<Vec<(usize, usize)>> = addrs.iter().map(|&va| pieces(tmap, conn, va, size)).collect();
        let n_pieces: usize = plan.iter().map(Vec::len).sum();
        // The three agree on every read.
        for (va, p) in addrs.iter().zip(&plan).filter(|_| check) {
            ours.read_raw_into(*va, &mut a[..size]).expect("ours reads");
            peer.read_raw_into(peer_addr(*va), &mut b2[..size]).expect("memflow 0.2.4 reads");
            assert!(a[..size] == b2[..size], "ours and memflow 0.2.4 read different bytes at {va}");
            let mut at = 0;
            for &(off, len) in p {
                assert!(a[at..at + len] == raw[off..off + len], "ours and memcpy differ at {va}");
                at += len;
            }
        }
        println!(
            "{group}/{name}: {N_READS} addresses, {:.2} physical pieces per read",
            n_pieces as f64 / N_READS as f64
        );
        let mut g = c.benchmark_group(format!("{group}/{name}"));
        g.throughput(Throughput::Bytes(size as u64));
        let buf = &mut a[..size];
        g.bench_function(BenchmarkId::from_parameter("ours"), |b| {
            let mut it = Cycle::new(&addrs);
            b.iter(|| black_box(ours.read_raw_into(it.next(), black_box(&mut *buf))).ok())
        });
        g.bench_function(BenchmarkId::from_parameter("ours-tlb"), |b| {
            let mut it = Cycle::new(&addrs);
            b.iter(|| black_box(ours_tlb.read_raw_into(it.next(), black_box(&mut *buf))).ok())
        });
        g.bench_function(BenchmarkId::from_parameter("memflow-0.2.4"), |b| {
            let mut it = Cycle::new(&addrs);
            b.iter(|| black_box(peer.read_raw_into(peer_addr(it.next()), black_box(&mut *buf))).ok())
        });
        // The same physical pieces through our connector (no translation): splits the cost of
        // a virtual read into the connector's and the translation's.
        let phys_plan: Vec<Vec<(Address, usize)>> = addrs
            .iter()
            .map(|&va| {
                let mut out = vec![];
                let mut pos = 0usize;
                while pos < size {
                    let a = va + pos;
                    let r = &tmap[tmap.partition_point(|r| r.va + r.size <= a)];
                    let n = (((r.va + r.size) - a) as usize).min(size - pos);
                    out.push((r.pa + (a - r.va), n));
                    pos += n;
                }
                out
            })
            .collect();
        g.bench_function(BenchmarkId::from_parameter("ours-phys"), |b| {
            let mut i = 0usize;
            b.iter(|| {
                phys_read(&mut phys, &phys_plan[i], buf);
                i = (i + 1) & (N_READS - 1);
            })
        });
        g.bench_function(BenchmarkId::from_parameter("memcpy"), |b| {
            let mut i = 0usize;
            b.iter(|| {
                memcpy_read(raw, &plan[i], buf);
                i = (i + 1) & (N_READS - 1);
            })
        });
        g.finish();
        if size == 4 << 10 {
            let mut ours_pass = |buf: &mut [u8]| {
                for &va in &addrs {
                    black_box(ours.read_raw_into(va, black_box(&mut *buf))).ok();
                }
            };
            let mut phys_pass = |buf: &mut [u8]| {
                for p in &phys_plan {
                    phys_read(&mut phys, p, buf);
                }
            };
            let mut memcpy_pass = |buf: &mut [u8]| {
                for p in &plan {
                    memcpy_read(raw, p, buf);
                }
            };
            interleave::interleaved(
                &format!("{group}/{name}"),
                &mut [("ours", &mut ours_pass), ("ours-phys", &mut phys_pass), ("memcpy", &mut memcpy_pass)],
                buf,
                N_READS,
            );
        }
    }
}

/// Our connector's reads of the physical pieces `plan` into `buf`.
#[inline(always)]
fn phys_read(phys: &mut FileConnector, plan: &[(Address, usize)], buf: &mut [u8]) {
    let mut at = 0usize;
    for &(pa, len) in plan {
        let r = memflow_core::mem::PhysicalMemory::phys_read_raw_into(
            phys,
            memflow_core::types::PhysicalAddress::plain(pa),
            &mut black_box(&mut *buf)[at..at + len],
        );
        black_box(r).ok();
        at += len;
    }
}

/// The copies of the file pieces `plan` from `raw` into `buf`.
#[inline(always)]
fn memcpy_read(raw: &[u8], plan: &[(usize, usize)], buf: &mut [u8]) {
    let mut at = 0usize;
    for &(off, len) in plan {
        black_box(&mut *buf)[at..at + len].copy_from_slice(&black_box(raw)[off..off + len]);
        at += len;
    }
}

/// The virtual reads again on the 5 GiB guest (issue 11): its direct map spans 5 GiB, so the
/// reads' page walks and data are spread over far more memory than on the 256 MiB guest.
fn virt_read_large(c: &mut Criterion) {
    let check = std::env::var_os("TRANSLATE_BENCH_NO_CHECK").is_none();
    let mut guest = Guest::open("cloud-4l-5g", check);
    let mapped: umem = guest.map.iter().map(|r| r.size).sum();
    println!("cloud-4l-5g kernel half: {} ranges, {} MiB mapped", guest.map.len(), mapped >> 20);
    virt_reads(c, "virt_read_5g", &mut guest, check);
}

/// Translation and the kernel-half walk on the ARM64 guests (issue 14), `translate_arm64-4k`,
/// `translate_arm64-16k` and `translate_arm64-max` (52-bit addresses, FEAT_LPA2, which no
/// memflow 0.2.4 mode walks) groups: the kernel's TTBR1 table found by scanning (as the Linux
/// layer finds it), ours under `VirtualDma::new(.., tables.arch, &tables.roots())` and, on the
/// 4 KiB guest, memflow 0.2.4 under `aarch64::new_translator(NULL, ttbr1)` (48-bit addresses,
/// 4 KiB granule; it refuses the lower half of the TTBR1 range, the linear map, as not
/// canonical in the x86 sense, so it is timed on the rest). Memflow 0.2.4's only 16 KiB mode (`new_translator_16k`) walks 48-bit
/// addresses from a 2-entry top table; the 16 KiB guest's kernel uses 47-bit ones (its top
/// table is the 2048-entry level 1), which it cannot translate.
fn translate_arm64(c: &mut Criterion) {
    let check = std::env::var_os("TRANSLATE_BENCH_NO_CHECK").is_none();
    for name in ["arm64-4k", "arm64-16k", "arm64-max"] {
        let (file, _mmap, mut conn) = open_dump(name);
        let tables = aarch64::find_kernel_tables(&mut conn).expect("the kernel's tables");
        let ArchitectureIdent::AArch64 { granule_log2, va_bits } = tables.arch else { unreachable!() };
        let mut ours = VirtualDma::new(conn.clone(), tables.arch, &tables.roots()).expect("our view");
        // The TTBR1 range: the linear map, then vmalloc, modules, the image, vmemmap.
        let half = Address::new(0u64.wrapping_sub(1 << va_bits) as umem);
        let map = ours.virt_page_map_range_vec(0, half, Address::INVALID).unwrap();
        let mapped: umem = map.iter().map(|r| r.size).sum();
        let vas = pick(&map, N_ADDRS, 1, &mut SmallRng::seed_from_u64(SEED));
        let mut peer = (granule_log2 == 12 && va_bits == 48).then(|| {
            let translator = peer_aarch64::new_translator(PeerAddress::NULL, peer_addr(tables.ttbr1));
            memflow::mem::VirtualDma::new(peer_connector(&file, &conn), peer_aarch64::ARCH, translator)
        });
        let contenders = Contenders { ours: &mut ours, peer: peer.as_mut() };
        translation_groups(c, &format!("_{name}"), contenders, &vas, half, mapped, check);
    }
}

/// Translation and the kernel-half walk on the RISC-V guests (issue 14),
/// `translate_riscv64-sv39` and `translate_riscv64-sv57` groups: the kernel's table and
/// paging mode found by scanning (as the Linux layer finds them), ours under
/// `VirtualDma::new(.., tables.arch, &tables.roots())`, alone (no peer reads RISC-V). Since
/// there is no peer to set them against, each group also prints interleaved lines of ours on
/// the RISC-V guest against ours on the x86-64 guest `cloud-4l` (the same seeded picking over
/// its kernel half): the cost of the architecture, measured under the same load.
fn translate_riscv(c: &mut Criterion) {
    let check = std::env::var_os("TRANSLATE_BENCH_NO_CHECK").is_none();
    let (_x86_file, _x86_mmap, x86_conn) = open_dump("cloud-4l");
    let cr3 = x86_conn.x86_registers(0).expect("CPU 0 registers").page_table_root().expect("paging on");
    let mut x86 = VirtualDma::new(x86_conn, ArchitectureIdent::X86_64, &[cr3]).expect("our x86-64 view");
    let x86_half = Address::new(KERNEL_HALF as umem);
    let x86_map = x86.virt_page_map_range_vec(0, x86_half, Address::INVALID).unwrap();
    let x86_vas = pick(&x86_map, N_ADDRS, 1, &mut SmallRng::seed_from_u64(SEED));
    for name in ["riscv64-sv39", "riscv64-sv57"] {
        let (_file, _mmap, mut conn) = open_dump(name);
        let tables = riscv64::find_kernel_tables(&mut conn).expect("the kernel's tables");
        let mut ours = VirtualDma::new(conn, tables.arch, &tables.roots()).expect("our view");
        let half = tables.arch.describe().unwrap().segments().last().unwrap().first;
        let map = ours.virt_page_map_range_vec(0, half, Address::INVALID).unwrap();
        let mapped: umem = map.iter().map(|r| r.size).sum();
        let vas = pick(&map, N_ADDRS, 1, &mut SmallRng::seed_from_u64(SEED));
        let contenders = Contenders::<memflow::architecture::x86::X86VirtualTranslate> { ours: &mut ours, peer: None };
        translation_groups(c, &format!("_{name}"), contenders, &vas, half, mapped, check);

        let here = format!("ours-{name}");
        for batch in BATCHES {
            let mut riscv_pass =
                |_: &mut ()| vas[..PASS_ADDRS].chunks(batch).for_each(|chunk| ours_batch(&mut ours, chunk));
            let mut x86_pass =
                |_: &mut ()| x86_vas[..PASS_ADDRS].chunks(batch).for_each(|chunk| ours_batch(&mut x86, chunk));
            interleave::interleaved(
                &format!("translate_{name}/batch{batch} vs x86-64"),
                &mut [(&here, &mut riscv_pass), ("ours-x86-64", &mut x86_pass)],
                &mut (),
                PASS_ADDRS,
            );
        }
        interleave::interleaved(
            &format!("translate_walk_{name} vs x86-64"),
            &mut [
                (&here, &mut |_: &mut ()| ours_walk(&mut ours, half)),
                ("ours-x86-64", &mut |_: &mut ()| ours_walk(&mut x86, x86_half)),
            ],
            &mut (),
            1,
        );
    }
}

criterion_group!(benches, translate, translate_arm64, translate_riscv, virt_read_large);
criterion_main!(benches);
