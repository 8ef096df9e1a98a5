//! Maple trees (`lib/maple_tree.c`, Linux 6.1 on): the range-indexed B-trees that hold the
//! VMAs of an address space.
//!
//! The tree's root and every slot of an internal node hold an encoded node pointer: bits 0..2
//! are `0b10` (an "internal" entry, above 4096), bits 3..7 the node type and the rest the
//! node's address (nodes are 256-byte aligned). The types are dense (0: slots only),
//! `leaf_64` (1) and `range_64` (2), which share the `maple_range_64` layout, and
//! `arange_64` (3), the internal nodes of trees that track gaps. Leaves are the dense and
//! `leaf_64` nodes; their slots hold the entries. A root that is not a node is the only entry.
//!
//! A node's used slots end at its data end: for `arange_64` nodes the metadata says where;
//! for `range_64` nodes it does when the last pivot is 0, otherwise the last pivot equals the
//! node's maximum (the last slot is unused) or not (every slot is used). A node's maximum is
//! the pivot of its slot in the parent, or the parent's maximum for the last slot.
//!
//! The walk visits each node at most once, at most [`MAX_MAPLE_NODES`] nodes, at most
//! [`MAX_MAPLE_HEIGHT`] levels deep; a tree outside these bounds is an error, never a hang.

use std::collections::HashSet;

use super::layout::{MapleLayout, NodeLayout};
use super::limits::{MAX_MAPLE_HEIGHT, MAX_MAPLE_NODES};
use super::record::{Record, Span};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::MemoryView;
use crate::types::{umem, Address};

/// Entries below this value that look internal are reserved markers, not nodes.
const RESERVED_RANGE: u64 = 4096;

const DENSE: u64 = 0;
const LEAF_64: u64 = 1;
const RANGE_64: u64 = 2;
const ARANGE_64: u64 = 3;

/// True for an encoded node pointer.
fn is_node(entry: u64) -> bool {
    entry & 3 == 2 && entry > RESERVED_RANGE
}

/// Calls `entry` with every entry of the tree whose root pointer (`ma_root`) is `root`, in
/// index order.
pub fn entries<V: MemoryView>(
    mem: &mut V,
    layout: &MapleLayout,
    root: u64,
    mut entry: impl FnMut(Address),
) -> Result<()> {
    if root == 0 {
        return Ok(());
    }
    if !is_node(root) {
        if root & 3 == 0 {
            entry(Address::new(root as umem));
        }
        return Ok(());
    }
    let mut seen = HashSet::new();
    walk(mem, layout, root, u64::MAX, 0, &mut seen, &mut entry)
}

fn walk<V: MemoryView>(
    mem: &mut V,
    layout: &MapleLayout,
    encoded: u64,
    max: u64,
    depth: usize,
    seen: &mut HashSet<u64>,
    entry: &mut impl FnMut(Address),
) -> Result<()> {
    let node = encoded & !0xff;
    if depth > MAX_MAPLE_HEIGHT {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
            .with_reason(format_args!("maple tree deeper than {MAX_MAPLE_HEIGHT} levels at node {node:#x}")));
    }
    if !seen.insert(node) {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
            .with_reason(format_args!("maple tree node {node:#x} is reached twice")));
    }
    if seen.len() > MAX_MAPLE_NODES {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
            .with_reason(format_args!("maple tree has more than {MAX_MAPLE_NODES} nodes")));
    }
    let kind = (encoded >> 3) & 0xf;
    let shape: &NodeLayout = match kind {
        DENSE => &layout.dense,
        LEAF_64 | RANGE_64 => &layout.range64,
        ARANGE_64 => &layout.arange64,
        _ => {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                .with_reason(format_args!("maple tree node {node:#x} has unknown type {kind}")))
        }
    };
    let bytes =
        Record::read(mem, Address::new(node as umem), Span { start: 0, end: layout.node_size }, "a maple tree node")?;
    let slots: Vec<u64> = (0..shape.slot_count).map(|i| bytes.u64(shape.slots + 8 * i)).collect();
    let pivots: Vec<u64> = match shape.pivots {
        Some(at) => (0..shape.slot_count - 1).map(|i| bytes.u64(at + 8 * i)).collect(),
        None => Vec::new(),
    };
    let meta_end = shape.meta_end.map(|at| u32::from(bytes.bytes(at, 1).first().copied().unwrap_or(0)));
    let last = data_end(kind, &pivots, meta_end, max, shape.slot_count).min(shape.slot_count - 1) as usize;
    let leaf = kind == DENSE || kind == LEAF_64;
    for (i, &slot) in slots.iter().enumerate().take(last + 1) {
        if leaf {
            // Leaves hold entries; internal-looking values are reserved markers.
            if slot != 0 && slot & 3 == 0 {
                entry(Address::new(slot as umem));
            }
        } else if is_node(slot) {
            let child_max = match pivots.get(i) {
                Some(&p) if p != 0 => p,
                _ => max,
            };
            walk(mem, layout, slot, child_max, depth + 1, seen, entry)?;
        }
    }
    Ok(())
}

/// The index of the last used slot of a node (see the module docs).
fn data_end(kind: u64, pivots: &[u64], meta_end: Option<u32>, max: u64, slot_count: u32) -> u32 {
    let meta = meta_end.unwrap_or(slot_count - 1);
    match (kind, pivots.last()) {
        (ARANGE_64, _) | (_, Some(0)) => meta,
        (_, Some(&last)) if last == max => pivots.len() as u32 - 1,
        _ => slot_count - 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{dummy_memory, BufferMemory};
    use crate::error::PartialResultExt;
    use crate::mem::PhysicalMemory;

    /// Writes a node of `kind` at `at` with pivots, slots and a metadata end (which shares its
    /// place with the last slot of a range node); returns its encoded pointer.
    fn node(mem: &mut BufferMemory, at: u64, kind: u64, pivots: &[u64], slots: &[u64], end: Option<u8>) -> u64 {
        let l = MapleLayout::linux_6_1();
        let shape = if kind == ARANGE_64 { &l.arange64 } else { &l.range64 };
        let write = |mem: &mut BufferMemory, off: u64, v: u64| {
            mem.phys_write(Address::from(at + off).into(), &v).data().unwrap()
        };
        for (i, &p) in pivots.iter().enumerate() {
            write(mem, u64::from(shape.pivots.unwrap()) + 8 * i as u64, p);
        }
        for (i, &s) in slots.iter().enumerate() {
            write(mem, u64::from(shape.slots) + 8 * i as u64, s);
        }
        if let Some(end) = end {
            mem.phys_write(Address::from(at + u64::from(shape.meta_end.unwrap())).into(), &end).data().unwrap();
        }
        at | kind << 3 | 2
    }

    fn collect(mem: BufferMemory, root: u64) -> (Result<()>, Vec<Address>) {
        let mut out = vec![];
        let res = entries(&mut mem.into_phys_view(), &MapleLayout::linux_6_1(), root, |a| out.push(a));
        (res, out)
    }

    #[test]
    fn walks_levels_and_stops_at_the_data_end() {
        let mut mem = dummy_memory(0x10000);
        // Leaf 1: three entries, the last pivot unused (0) so the metadata end (2) counts;
        // a stale entry beyond the end is not reported.
        let leaf1 = node(&mut mem, 0x1000, LEAF_64, &[0xfff, 0x1fff, 0x2fff], &[0x8000, 0, 0x8100, 0xdead00], Some(2));
        // Leaf 2: every slot used (the last pivot is neither 0 nor the maximum).
        let pivots: Vec<u64> = (0..15).map(|i| 0x10_0000 + i).collect();
        let slots: Vec<u64> = (0..16).map(|i| 0x9000 + 0x10 * i).collect();
        let leaf2 = node(&mut mem, 0x2000, LEAF_64, &pivots, &slots, None);
        let root = node(&mut mem, 0x3000, ARANGE_64, &[0x2fff, u64::MAX], &[leaf1, leaf2, leaf1], Some(1));
        let (res, out) = collect(mem, root);
        res.unwrap();
        let mut want = vec![0x8000u64, 0x8100];
        want.extend(slots);
        assert_eq!(out, want.into_iter().map(Address::from).collect::<Vec<_>>());
    }

    #[test]
    fn single_entries_and_bad_trees() {
        assert_eq!(collect(dummy_memory(0x1000), 0).1, []);
        assert_eq!(collect(dummy_memory(0x1000), 0x8000).1, [Address::new(0x8000)]);
        // A node that lists itself as its child.
        let mut mem = dummy_memory(0x10000);
        let me = 0x1000 | ARANGE_64 << 3 | 2;
        node(&mut mem, 0x1000, ARANGE_64, &[u64::MAX], &[me], Some(0));
        assert_eq!(collect(mem, me).0.unwrap_err().kind, ErrorKind::Malformed);
        // An unknown node type.
        assert_eq!(collect(dummy_memory(0x10000), 0x1000 | 7 << 3 | 2).0.unwrap_err().kind, ErrorKind::Malformed);
        // A node outside memory.
        assert!(collect(dummy_memory(0x1000), 0x10_0000 | LEAF_64 << 3 | 2).0.is_err());
    }

    #[test]
    fn deep_and_wide_trees_end_with_errors() {
        // A chain of 40 internal nodes, each the only child of the one before.
        let at = |n: u64| 0x1_0000 + n * 0x100;
        let mut mem = dummy_memory(at(41) as usize);
        let mut child = node(&mut mem, at(40), LEAF_64, &[0], &[0x8000], Some(0));
        for i in (0..40).rev() {
            child = node(&mut mem, at(i), RANGE_64, &[0], &[child], Some(0));
        }
        assert_eq!(collect(mem, child).0.unwrap_err().kind, ErrorKind::Malformed);
        // A full tree of range nodes, 16 children each, five levels: more than MAX_MAPLE_NODES.
        let mut mem = dummy_memory(at(70_000) as usize);
        let mut next = 1u64;
        let mut level = vec![0u64];
        for _ in 0..4 {
            let mut children = vec![];
            for &parent in &level {
                children.extend(next..next + 16);
                let slots: Vec<u64> = (next..next + 16).map(|n| at(n) | RANGE_64 << 3 | 2).collect();
                // Every pivot set and below the maximum: all 16 slots are used.
                node(&mut mem, at(parent), RANGE_64, &(1..16).collect::<Vec<_>>(), &slots, None);
                next += 16;
            }
            level = children;
        }
        let err = collect(mem, at(0) | RANGE_64 << 3 | 2).0.unwrap_err();
        assert_eq!(err.kind, ErrorKind::LimitExceeded);
    }

    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let mut mem = dummy_memory(0x4000);
        let leaf1 = node(&mut mem, 0x1000, LEAF_64, &[0xfff, 0x1fff, 0x2fff], &[0x8000, 0, 0x8100], Some(2));
        let leaf2 = node(&mut mem, 0x2000, LEAF_64, &[0x10_0000, 0x10_0001], &[0x9000, 0x9010], Some(1));
        let root = node(&mut mem, 0x3000, ARANGE_64, &[0x2fff, u64::MAX], &[leaf1, leaf2], Some(1));
        let mut seed = root.to_le_bytes().to_vec();
        let mut bytes = vec![0u8; 0x4000];
        mem.phys_read_raw_into(Address::NULL.into(), &mut bytes).unwrap();
        seed.extend(bytes);
        super::super::write_fuzz_seed("maple", "two_levels", &seed);
    }
}
