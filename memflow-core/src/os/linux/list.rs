//! Walking a kernel `list_head` ring, bounded and safe against corrupt links.
//!
//! A `list_head` is two pointers, `next` then `prev`; a list is a ring through a head that is
//! not an element. The walk follows `next` from the head until it comes back, and stops with
//! an error when a link is NULL or unreadable, when an element comes round a second time
//! without the head (a loop), or after a maximum number of elements.

use std::collections::HashSet;

use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::MemoryView;
use crate::types::Address;

/// Calls `visit` with the address of every element (`list_head`) of the list whose head is at
/// `head`, in `next` order, until `visit` returns `false`; `what` names the list in errors.
/// At most `max` elements are visited (see the module docs for the errors).
pub fn walk<V: MemoryView>(
    mem: &mut V,
    head: Address,
    max: usize,
    what: &str,
    mut visit: impl FnMut(Address) -> bool,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut node = head;
    loop {
        let next = mem.read_addr(node).data().map_err(|e| {
            Error::new(ErrorOrigin::Os, e.kind).with_reason(format_args!("{what}: cannot read the link at {node}"))
        })?;
        if next == head {
            return Ok(());
        }
        if next.is_null() {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                .with_reason(format_args!("{what}: NULL link at {node}")));
        }
        if seen.try_reserve(1).is_err() {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::OutOfMemory)
                .with_reason(format_args!("{what}: no memory for {} elements", seen.len())));
        }
        if !seen.insert(next) {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
                .with_reason(format_args!("{what}: {next} comes round again without the head {head} (a loop)")));
        }
        if seen.len() > max {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
                .with_reason(format_args!("{what}: more than {max} elements")));
        }
        if !visit(next) {
            return Ok(());
        }
        node = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::dummy_memory;
    use crate::mem::PhysicalMemory;

    /// Physical memory with `links[i]` as the `next` pointer at `0x1000 * (i + 1)`; the head
    /// is at 0x1000.
    fn ring(links: &[u64]) -> impl MemoryView {
        let mut mem = dummy_memory(0x1000 * (links.len() + 2));
        for (i, &next) in links.iter().enumerate() {
            mem.phys_write(Address::from(0x1000 * (i + 1)).into(), &next).data().unwrap();
        }
        mem.into_phys_view()
    }

    fn collect(mem: &mut impl MemoryView, max: usize) -> (Result<()>, Vec<Address>) {
        let mut out = vec![];
        let res = walk(mem, Address::new(0x1000), max, "test list", |a| {
            out.push(a);
            true
        });
        (res, out)
    }

    #[test]
    fn walks_a_ring() {
        let (res, out) = collect(&mut ring(&[0x2000, 0x3000, 0x1000]), 10);
        assert!(res.is_ok());
        assert_eq!(out, [Address::new(0x2000), Address::new(0x3000)]);
        let (res, out) = collect(&mut ring(&[0x1000]), 10);
        assert!(res.is_ok() && out.is_empty(), "an empty list");
    }

    #[test]
    fn corrupt_rings_end_with_errors() {
        // An element pointing at itself.
        let (res, out) = collect(&mut ring(&[0x2000, 0x2000]), 10);
        assert_eq!(res.unwrap_err().kind, ErrorKind::LimitExceeded);
        assert_eq!(out, [Address::new(0x2000)]);
        // A loop that skips the head.
        let (res, _) = collect(&mut ring(&[0x2000, 0x3000, 0x2000]), 10);
        assert_eq!(res.unwrap_err().kind, ErrorKind::LimitExceeded);
        // NULL and unreadable links.
        let (res, _) = collect(&mut ring(&[0x2000, 0]), 10);
        assert_eq!(res.unwrap_err().kind, ErrorKind::Malformed);
        let (res, _) = collect(&mut ring(&[0x2000, 0x7fff_0000]), 10);
        assert_eq!(res.unwrap_err().kind, ErrorKind::PartialRead);
        // Too long.
        let (res, out) = collect(&mut ring(&[0x2000, 0x3000, 0x4000, 0x1000]), 2);
        assert_eq!(res.unwrap_err().kind, ErrorKind::LimitExceeded);
        assert_eq!(out.len(), 2);
    }

    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        // Limit 16, head at 0, elements at 0x10 and 0x20; and a loop that skips the head.
        let seed = |links: &[u64]| -> Vec<u8> {
            let mut out = vec![16, 0, 0, 0, 0, 0];
            for &next in links {
                out.extend_from_slice(&next.to_le_bytes());
                out.extend_from_slice(&[0; 8]);
            }
            out
        };
        super::super::write_fuzz_seed("task_list", "ring", &seed(&[0x10, 0x20, 0]));
        super::super::write_fuzz_seed("task_list", "loop", &seed(&[0x10, 0x20, 0x10]));
    }
}
