//! Where guest RAM lives: guest-physical ranges backed by QEMU RAM blocks, and where those
//! blocks are in the QEMU process.
//!
//! QEMU keeps each RAM block (`pc.ram`, a memory backend, a DIMM, video RAM) in one host
//! mapping of the block's size. The guest sees parts of blocks at guest-physical ranges.
//!
//! With QMP, the ranges come from the flat view of the `memory` address space (`info mtree
//! -f`): every `ram` or `rom` entry whose region is a RAM block that backs at least one `ram`
//! entry (so the BIOS-shadow `rom` entries of `pc.ram` count, but pure ROM blocks such as
//! `pc.bios` and option ROMs, whose small host mappings cannot be told apart, do not); the
//! block sizes come from `info ramblock`.
//!
//! Without QMP, the rules of the emulator's target and machine type ([`MACHINES`]) give the
//! ranges of the one RAM block of size `-m` (QEMU 7.2: `hw/i386/pc_q35.c`, `pc_piix.c`,
//! `hw/arm/virt.c`, `hw/riscv/virt.c`, default machine options):
//! - `q35` (`pc-q35-*`) on x86: RAM of at least 2.75 GiB (`0xb0000000`) is split at 2 GiB:
//!   guest `[0, 2 GiB)` holds its first 2 GiB, the rest starts at 4 GiB; smaller RAM lies at
//!   `[0, size)`.
//! - `pc` (`pc-i440fx-*`, QEMU's default machine on x86): the same with 3.5 GiB
//!   (`0xe0000000`) and a split at 3 GiB.
//! - `virt` (`virt-*`) on aarch64: RAM lies at `[1 GiB, 1 GiB + size)`.
//! - `virt` on riscv64: RAM lies at `[2 GiB, 2 GiB + size)`.
//!
//! The x86 rules map the legacy window `0xa0000..0x100000` as RAM (what it holds in the RAM
//! block, not what the guest may see there through VGA or the BIOS shadow); no rule maps
//! hot-plugged memory, ROMs or flash. A machine with `max-ram-below-4g` or another machine
//! type needs QMP. An emulator whose name does not say its target (`qemu-kvm`) is taken
//! for x86.
//!
//! Each block is then found among the QEMU process's mappings: the one readable, writeable,
//! non-executable mapping of exactly the block's size (rounded up to 4 KiB pages). A block
//! without exactly one such mapping is left out with a warning.

#![allow(clippy::unnecessary_cast)] // casts between `umem` and `u64` are needed when `umem` is `u128`

use super::cmdline::{QemuCommandLine, X86_TARGETS};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::MemoryMap;
use crate::os::MemoryRange;
use crate::types::{umem, Address, PageType};

/// 4 GiB: where RAM above the PCI hole starts.
const FOUR_GIB: u64 = 1 << 32;
/// The host page size QEMU rounds RAM block mappings to.
const HOST_PAGE: u64 = 0x1000;
/// QEMU's default RAM size when `-m` is not given.
const DEFAULT_RAM: u64 = 128 << 20;

/// Where a machine type puts its RAM block of size `-m`.
#[derive(Copy, Clone, Debug)]
enum RamRule {
    /// RAM of at least `threshold` bytes is split: `[0, split)` holds its first `split`
    /// bytes, the rest starts at 4 GiB; smaller RAM lies at `[0, size)`.
    SplitAt4G { threshold: u64, split: u64 },
    /// RAM lies at `[base, base + size)`.
    From(u64),
}

/// The RAM layout rule of a machine type of some emulator targets.
#[derive(Debug)]
struct MachineRule {
    /// The emulator targets (`qemu-system-TARGET`) that have the machine type.
    targets: &'static [&'static str],
    /// The machine type; its versioned names (`pc-q35-7.2`) start with [`Self::versioned`].
    machine: &'static str,
    /// The start of the versioned names.
    versioned: &'static str,
    /// True for the target's default machine type (used without `-machine`).
    default: bool,
    /// QEMU's name of the RAM block (unless RAM is a memory backend).
    block: &'static str,
    /// Where the RAM is.
    rule: RamRule,
}

/// The machine types whose RAM layout is known without QMP (see the module documentation).
const MACHINES: [MachineRule; 4] = [
    MachineRule {
        targets: &X86_TARGETS,
        machine: "q35",
        versioned: "pc-q35-",
        default: false,
        block: "pc.ram",
        rule: RamRule::SplitAt4G { threshold: 0xb000_0000, split: 0x8000_0000 },
    },
    MachineRule {
        targets: &X86_TARGETS,
        machine: "pc",
        versioned: "pc-i440fx-",
        default: true,
        block: "pc.ram",
        rule: RamRule::SplitAt4G { threshold: 0xe000_0000, split: 0xc000_0000 },
    },
    MachineRule {
        targets: &["aarch64"],
        machine: "virt",
        versioned: "virt-",
        default: false,
        block: "mach-virt.ram",
        rule: RamRule::From(0x4000_0000),
    },
    MachineRule {
        targets: &["riscv64"],
        machine: "virt",
        versioned: "virt-",
        default: false,
        block: "riscv_virt_board.ram",
        rule: RamRule::From(0x8000_0000),
    },
];

/// A RAM block of the QEMU process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RamBlock {
    /// QEMU's name for it (`pc.ram`, `/objects/mem0`, `0000:00:01.0/vga.vram`).
    pub name: String,
    /// The size of its host mapping in bytes.
    pub size: u64,
}

/// A guest-physical range backed by part of a RAM block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RamRange {
    /// First guest-physical address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// Index of the block in [`RamLayout::blocks`].
    pub block: usize,
    /// Offset of the first byte in the block.
    pub offset: u64,
}

/// Guest RAM: the blocks and the guest ranges they back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RamLayout {
    /// The RAM blocks the ranges use.
    pub blocks: Vec<RamBlock>,
    /// The guest-physical ranges, in guest address order.
    pub ranges: Vec<RamRange>,
}

/// One entry of a flat view: `START-END (prio P, KIND): NAME [@OFFSET]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FlatRange<'a> {
    base: u64,
    size: u64,
    kind: &'a str,
    name: &'a str,
    offset: u64,
}

fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

impl FlatRange<'_> {
    fn parse(line: &str) -> Option<FlatRange<'_>> {
        let (range, rest) = line.trim().split_once(' ')?;
        let (start, end) = range.split_once('-')?;
        let (start, end) = (hex(start)?, hex(end)?);
        let (attributes, tail) = rest.strip_prefix("(prio ")?.split_once("): ")?;
        let kind = attributes.rsplit(", ").next()?;
        let mut tail = tail.split_whitespace();
        let name = tail.next()?;
        let offset = match tail.next().and_then(|t| t.strip_prefix('@')) {
            Some(offset) => hex(offset)?,
            None => 0,
        };
        let size = end.checked_sub(start)?.checked_add(1)?;
        Some(FlatRange { base: start, size, kind, name, offset })
    }
}

/// The entries of the flat view of the `memory` address space in `info mtree -f` output.
fn memory_flat_view(mtree: &str) -> Vec<FlatRange<'_>> {
    let mut in_memory = false;
    let mut out = Vec::new();
    for line in mtree.lines() {
        if line.starts_with("FlatView") {
            if in_memory {
                break;
            }
        } else if line.trim_start().starts_with("AS \"memory\"") {
            in_memory = true;
        } else if in_memory {
            out.extend(FlatRange::parse(line));
        }
    }
    out
}

/// The blocks in `info ramblock` output: a header line naming the columns, then one line per
/// block. A data line has as many words as the header (the header's `Block Name` is two
/// words, a block name one; a page size such as `4 KiB` is two, the header's `PSize` one),
/// so a column's index in the header is its index in the data lines. The size is `Total`
/// (the mapping's size), else `Used`.
fn parse_ramblocks(text: &str) -> Result<Vec<RamBlock>> {
    let mut lines = text.lines().skip_while(|l| !l.contains("Block Name"));
    let header: Vec<&str> = lines.next().map(|h| h.split_whitespace().collect()).unwrap_or_default();
    let column = |name: &str| header.iter().position(|h| *h == name);
    let size_column = column("Total").or_else(|| column("Used")).ok_or_else(|| {
        Error::new(ErrorOrigin::Connector, ErrorKind::Malformed)
            .with_reason(format_args!("no block sizes in `info ramblock`: {text:?}"))
    })?;
    Ok(lines
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            Some(RamBlock { name: (*words.first()?).to_owned(), size: hex(words.get(size_column)?)? })
        })
        .collect())
}

impl RamLayout {
    /// The layout QEMU gives the machine of `cmd` (see the module documentation).
    pub(super) fn from_machine(cmd: &QemuCommandLine) -> Result<RamLayout> {
        let target = cmd.target.as_deref().unwrap_or(X86_TARGETS[0]);
        let machine = MACHINES
            .iter()
            .filter(|m| m.targets.contains(&target))
            .find(|m| match &cmd.machine {
                Some(name) => *name == m.machine || name.starts_with(m.versioned),
                None => m.default,
            })
            .ok_or_else(|| {
                Error::new(ErrorOrigin::Connector, ErrorKind::Unsupported).with_reason(format_args!(
                    "the RAM layout of machine type `{}` of qemu-system-{target} is not known: pass qmp=SOCKET",
                    cmd.machine.as_deref().unwrap_or("(default)")
                ))
            })?;
        let ram = match (cmd.ram_size, &cmd.memory_backend) {
            (Some(size), _) => size,
            (None, None) => DEFAULT_RAM,
            (None, Some(backend)) => {
                return Err(Error::new(ErrorOrigin::Connector, ErrorKind::Unsupported).with_reason(format_args!(
                    "RAM is memory backend `{backend}` without -m: its size is not known; pass qmp=SOCKET"
                )))
            }
        };
        let ranges = match machine.rule {
            RamRule::SplitAt4G { .. } if cmd.max_ram_below_4g.is_some() => {
                return Err(Error::new(ErrorOrigin::Connector, ErrorKind::Unsupported)
                    .with_reason("the machine sets max-ram-below-4g: pass qmp=SOCKET"))
            }
            RamRule::SplitAt4G { threshold, split } => {
                let below = if ram >= threshold { split } else { ram };
                let mut ranges = vec![RamRange { base: 0, size: below, block: 0, offset: 0 }];
                if ram > below {
                    ranges.push(RamRange { base: FOUR_GIB, size: ram - below, block: 0, offset: below });
                }
                ranges
            }
            RamRule::From(base) => vec![RamRange { base, size: ram, block: 0, offset: 0 }],
        };
        let name = cmd.memory_backend.clone().unwrap_or_else(|| machine.block.to_owned());
        Ok(RamLayout { blocks: vec![RamBlock { name, size: ram }], ranges })
    }

    /// The layout from the output of the HMP commands `info mtree -f` and `info ramblock`
    /// (see the module documentation).
    pub(super) fn from_qmp(mtree: &str, ramblocks: &str) -> Result<RamLayout> {
        let all_blocks = parse_ramblocks(ramblocks)?;
        // A flat view names the memory region; a block is named after it, maybe with the
        // path of its device in front.
        let block_of = |region: &str| {
            all_blocks
                .iter()
                .position(|b| b.name == region || b.name.strip_suffix(region).is_some_and(|p| p.ends_with('/')))
        };
        let flat = memory_flat_view(mtree);
        let mut blocks: Vec<RamBlock> = Vec::new();
        for entry in flat.iter().filter(|e| e.kind == "ram") {
            if let Some(b) = block_of(entry.name) {
                if !blocks.contains(&all_blocks[b]) {
                    blocks.push(all_blocks[b].clone());
                }
            }
        }
        let ranges: Vec<RamRange> = flat
            .iter()
            .filter(|e| e.kind == "ram" || e.kind == "rom")
            .filter_map(|e| {
                let block = blocks.iter().position(|b| Some(b) == block_of(e.name).map(|i| &all_blocks[i]))?;
                Some(RamRange { base: e.base, size: e.size, block, offset: e.offset })
            })
            .collect();
        if ranges.is_empty() {
            return Err(Error::new(ErrorOrigin::Connector, ErrorKind::NotFound)
                .with_reason("QMP reports no RAM in the `memory` address space"));
        }
        Ok(RamLayout { blocks, ranges })
    }

    /// The guest-physical memory map to host addresses, given the QEMU process's mapped
    /// ranges. Fails with `NotFound` if no block could be found.
    pub(super) fn resolve(&self, host: &[MemoryRange]) -> Result<MemoryMap> {
        let rw = PageType::WRITEABLE | PageType::NOEXEC;
        let hosts: Vec<Option<u64>> = self
            .blocks
            .iter()
            .map(|block| {
                let size = block.size.div_ceil(HOST_PAGE) * HOST_PAGE;
                let mut candidates = host.iter().filter(|r| r.page_type.contains(rw) && r.size == size as umem);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only.base.to_umem() as u64),
                    (first, _) => {
                        log::warn!(
                            "qemu: RAM block `{}` ({size:#x} bytes) has {} host mappings of its size; left out",
                            block.name,
                            if first.is_some() { "several" } else { "no" }
                        );
                        None
                    }
                }
            })
            .collect();
        let mut map = MemoryMap::new();
        for range in &self.ranges {
            let Some(host) = hosts[range.block] else { continue };
            if range.offset.checked_add(range.size).is_none_or(|end| end > self.blocks[range.block].size) {
                log::warn!(
                    "qemu: guest range {:#x}+{:#x} lies outside its RAM block; left out",
                    range.base,
                    range.size
                );
                continue;
            }
            map.push(Address::from(range.base), range.size as umem, (host + range.offset) as umem)?;
        }
        if map.is_empty() {
            return Err(Error::new(ErrorOrigin::Connector, ErrorKind::NotFound)
                .with_reason("no guest RAM found among the QEMU process's mappings"));
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `info mtree -f` of a running q35 guest with 256 MiB (QEMU 7.2), cut short.
    const MTREE: &str = "FlatView #0\r
 AS \"I/O\", root: io\r
 Root memory region: io\r
  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan\r
\r
FlatView #1\r
 AS \"mch\", root: bus master container\r
 Root memory region: (none)\r
  No rendered FlatView\r
\r
FlatView #2\r
 AS \"memory\", root: system\r
 AS \"cpu-memory-0\", root: system\r
 Root memory region: system\r
  0000000000000000-00000000000c2fff (prio 0, ram): pc.ram\r
  00000000000c3000-00000000000e7fff (prio 0, rom): pc.ram @00000000000c3000\r
  00000000000e8000-00000000000effff (prio 0, ram): pc.ram @00000000000e8000\r
  00000000000f0000-00000000000fffff (prio 0, rom): pc.ram @00000000000f0000\r
  0000000000100000-000000000fffffff (prio 0, ram): pc.ram @0000000000100000 KVM\r
  00000000b0000000-00000000bfffffff (prio 0, i/o): pcie-mmcfg-mmio\r
  00000000fd000000-00000000fdffffff (prio 1, ram): vga.vram\r
  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\r
  0000000100000000-000000010fffffff (prio 0, ram): pc.ram @0000000010000000\r
\r
FlatView #3\r
 AS \"cpu-smm-0\", root: memory\r
 Root memory region: memory\r
  0000000000000000-00000000000c2fff (prio 0, ram): smram-only\r
";

    const RAMBLOCK: &str =
        "              Block Name    PSize              Offset               Used              Total\r
                  pc.ram    4 KiB  0x0000000000000000 0x0000000020000000 0x0000000020000000\r
   0000:00:01.0/vga.vram    4 KiB  0x0000000020000000 0x0000000001000000 0x0000000001000000\r
    /rom@etc/acpi/tables    4 KiB  0x0000000021080000 0x0000000000020000 0x0000000000200000\r
                 pc.bios    4 KiB  0x0000000021000000 0x0000000000040000 0x0000000000040000\r
";

    fn range(base: u64, size: u64, block: usize, offset: u64) -> RamRange {
        RamRange { base, size, block, offset }
    }

    #[test]
    fn layout_from_qmp() {
        let layout = RamLayout::from_qmp(MTREE, RAMBLOCK).unwrap();
        assert_eq!(
            layout.blocks,
            vec![
                RamBlock { name: "pc.ram".into(), size: 0x2000_0000 },
                RamBlock { name: "0000:00:01.0/vga.vram".into(), size: 0x100_0000 }
            ]
        );
        assert_eq!(
            layout.ranges,
            vec![
                range(0, 0xc3000, 0, 0),
                range(0xc3000, 0x25000, 0, 0xc3000),
                range(0xe8000, 0x8000, 0, 0xe8000),
                range(0xf0000, 0x10000, 0, 0xf0000),
                range(0x10_0000, 0xff0_0000, 0, 0x10_0000),
                range(0xfd00_0000, 0x100_0000, 1, 0),
                range(0x1_0000_0000, 0x1000_0000, 0, 0x1000_0000),
            ]
        );
        assert!(RamLayout::from_qmp("FlatView #0\n AS \"memory\", root: system\n", RAMBLOCK).is_err());
        assert!(RamLayout::from_qmp(MTREE, "garbage").is_err());
    }

    fn machine(machine: Option<&str>, ram: Option<u64>) -> Result<RamLayout> {
        let cmd = QemuCommandLine { machine: machine.map(str::to_owned), ram_size: ram, ..Default::default() };
        RamLayout::from_machine(&cmd)
    }

    fn of_target(target: &str, machine: Option<&str>, ram: u64) -> Result<RamLayout> {
        let cmd = QemuCommandLine {
            target: Some(target.to_owned()),
            machine: machine.map(str::to_owned),
            ram_size: Some(ram),
            ..Default::default()
        };
        RamLayout::from_machine(&cmd)
    }

    #[test]
    fn layout_of_each_target() {
        const G: u64 = 1 << 30;
        let virt = of_target("aarch64", Some("virt"), 8 * G).unwrap();
        assert_eq!(virt.ranges, vec![range(G, 8 * G, 0, 0)]);
        assert_eq!(virt.blocks, vec![RamBlock { name: "mach-virt.ram".into(), size: 8 * G }]);
        assert_eq!(of_target("aarch64", Some("virt-7.2"), G).unwrap().ranges, vec![range(G, G, 0, 0)]);
        assert_eq!(of_target("riscv64", Some("virt"), G).unwrap().ranges, vec![range(2 * G, G, 0, 0)]);
        assert_eq!(of_target("i386", Some("q35"), G).unwrap().ranges, vec![range(0, G, 0, 0)]);
        assert_eq!(of_target("x86_64", None, G).unwrap().blocks[0].name, "pc.ram");
        // No default machine off x86, no x86 machine on aarch64, no virt on x86.
        for (target, machine) in [("aarch64", None), ("aarch64", Some("q35")), ("x86_64", Some("virt"))] {
            assert_eq!(of_target(target, machine, G).unwrap_err().kind, ErrorKind::Unsupported, "{target} {machine:?}");
        }
        assert_eq!(of_target("ppc64", Some("pseries"), G).unwrap_err().kind, ErrorKind::Unsupported);
    }

    #[test]
    fn layout_from_machine_rules() {
        const G: u64 = 1 << 30;
        const M: u64 = 1 << 20;
        let ranges = |m: Option<&str>, ram: u64| machine(m, Some(ram)).unwrap().ranges;
        assert_eq!(ranges(Some("q35"), 256 * M), vec![range(0, 256 * M, 0, 0)]);
        assert_eq!(ranges(Some("pc-q35-7.2"), 0xb000_0000 - M), vec![range(0, 0xb000_0000 - M, 0, 0)]);
        assert_eq!(ranges(Some("q35"), 0xb000_0000), vec![range(0, 2 * G, 0, 0), range(4 * G, 0x3000_0000, 0, 2 * G)]);
        assert_eq!(ranges(Some("q35"), 5 * G), vec![range(0, 2 * G, 0, 0), range(4 * G, 3 * G, 0, 2 * G)]);
        assert_eq!(ranges(Some("pc"), 0xe000_0000 - M), vec![range(0, 0xe000_0000 - M, 0, 0)]);
        assert_eq!(ranges(None, 4 * G), vec![range(0, 3 * G, 0, 0), range(4 * G, G, 0, 3 * G)]);
        assert_eq!(
            ranges(Some("pc-i440fx-7.2"), 0xe000_0000),
            vec![range(0, 3 * G, 0, 0), range(4 * G, 0x2000_0000, 0, 3 * G)]
        );
        assert_eq!(machine(None, None).unwrap().blocks, vec![RamBlock { name: "pc.ram".into(), size: 128 * M }]);
        assert_eq!(machine(Some("microvm"), Some(G)).unwrap_err().kind, ErrorKind::Unsupported);
        let limited = QemuCommandLine { max_ram_below_4g: Some(G), ..Default::default() };
        assert_eq!(RamLayout::from_machine(&limited).unwrap_err().kind, ErrorKind::Unsupported);
        let backend = QemuCommandLine { memory_backend: Some("mem".into()), ..Default::default() };
        assert_eq!(RamLayout::from_machine(&backend).unwrap_err().kind, ErrorKind::Unsupported);
        let sized = QemuCommandLine { memory_backend: Some("mem".into()), ram_size: Some(G), ..Default::default() };
        assert_eq!(RamLayout::from_machine(&sized).unwrap().blocks[0].name, "mem");
    }

    fn host(base: u64, size: u64, page_type: PageType) -> MemoryRange {
        MemoryRange { base: Address::from(base), size: size as umem, page_type }
    }

    #[test]
    fn blocks_resolve_by_unique_size() {
        let rw = PageType::USER | PageType::WRITEABLE | PageType::NOEXEC;
        let layout = RamLayout::from_qmp(MTREE, RAMBLOCK).unwrap();
        let maps = [
            host(0x7f00_0000_0000, 0x2000_0000, rw),
            // Same size but executable (a TCG code buffer): not RAM.
            host(0x7f10_0000_0000, 0x2000_0000, PageType::USER | PageType::WRITEABLE),
            // Two mappings of the VGA RAM's size: ambiguous, left out.
            host(0x7f20_0000_0000, 0x100_0000, rw),
            host(0x7f30_0000_0000, 0x100_0000, rw),
        ];
        let map = layout.resolve(&maps).unwrap();
        let got: Vec<(u64, u64, u64)> =
            map.ranges().iter().map(|r| (r.base.to_umem() as u64, r.size as u64, r.backing as u64)).collect();
        assert_eq!(
            got,
            vec![(0, 0x1000_0000, 0x7f00_0000_0000), (0x1_0000_0000, 0x1000_0000, 0x7f00_1000_0000)],
            "the pieces below 1 MiB merge: their host addresses are contiguous"
        );
        assert_eq!(layout.resolve(&maps[1..]).unwrap_err().kind, ErrorKind::NotFound);
    }
}
