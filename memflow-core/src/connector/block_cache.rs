//! A bounded cache of decompressed blocks, keyed by where the block is stored in the file.
//!
//! Slots are reused in CLOCK order (a block read since the hand last passed it gets a second
//! chance), so the cache never holds more than its capacity and never allocates after it has
//! filled up.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::mem::alloc::reserve;

/// Hashes a `u64` key (a file offset) with one multiplication: the keys are distinct offsets,
/// not attacker-chosen strings, and SipHash would cost more than the lookup it serves.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Decompressed blocks of up to `slot_size` bytes each, at most `slots` of them.
pub(crate) struct BlockCache {
    slot_size: usize,
    slots: usize,
    /// The slots' bytes, back to back; grows one slot at a time up to `slots`.
    data: Vec<u8>,
    /// Per slot: its key and whether it was read since the hand last passed.
    keys: Vec<u64>,
    referenced: Vec<bool>,
    index: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    hand: usize,
}

impl BlockCache {
    /// A cache of `capacity` bytes for blocks of at most `slot_size` bytes; at least one slot.
    pub(crate) fn new(capacity: usize, slot_size: usize) -> Result<Self> {
        if slot_size == 0 || capacity < slot_size {
            return Err(Error::new(ErrorOrigin::Connector, ErrorKind::InvalidArgument).with_reason(format_args!(
                "a block cache of {capacity:#x} bytes cannot hold one block of {slot_size:#x} bytes"
            )));
        }
        Ok(Self::empty(slot_size, capacity / slot_size))
    }

    /// An empty cache of the same size.
    pub(crate) fn empty_like(&self) -> Self {
        Self::empty(self.slot_size, self.slots)
    }

    fn empty(slot_size: usize, slots: usize) -> Self {
        BlockCache {
            slot_size,
            slots,
            data: Vec::new(),
            keys: Vec::new(),
            referenced: Vec::new(),
            index: HashMap::default(),
            hand: 0,
        }
    }

    /// How many blocks it holds.
    pub(crate) fn slots(&self) -> usize {
        self.slots
    }

    /// The capacity in bytes (whole slots).
    pub(crate) fn capacity(&self) -> usize {
        self.slots * self.slot_size
    }

    /// The slot holding `key`, marked as used.
    #[inline]
    pub(crate) fn find(&mut self, key: u64) -> Option<usize> {
        let slot = *self.index.get(&key)?;
        self.referenced[slot] = true;
        Some(slot)
    }

    /// The bytes of `slot` (a whole slot; the block may use less of it).
    #[inline]
    pub(crate) fn slot(&self, slot: usize) -> &[u8] {
        &self.data[slot * self.slot_size..(slot + 1) * self.slot_size]
    }

    /// A slot for `key` (a free one, or the next one the clock evicts), filled by `fill`.
    /// If `fill` fails the slot is left empty and its error returned.
    pub(crate) fn insert(&mut self, key: u64, fill: impl FnOnce(&mut [u8]) -> Result<()>) -> Result<usize> {
        let slot = if self.keys.len() < self.slots {
            reserve(&mut self.data, self.slot_size, ErrorOrigin::Connector, "the block cache")?;
            self.data.resize(self.data.len() + self.slot_size, 0);
            self.keys.push(key);
            self.referenced.push(false);
            self.keys.len() - 1
        } else {
            let slot = self.victim();
            self.index.remove(&self.keys[slot]);
            slot
        };
        fill(&mut self.data[slot * self.slot_size..(slot + 1) * self.slot_size]).inspect_err(|_| {
            // An empty slot is the next victim: give it a key no block has.
            self.keys[slot] = u64::MAX;
            self.referenced[slot] = false;
        })?;
        self.keys[slot] = key;
        self.referenced[slot] = true;
        self.index.insert(key, slot);
        Ok(slot)
    }

    /// Advances the clock hand to the first slot not read since it last passed.
    fn victim(&mut self) -> usize {
        loop {
            let slot = self.hand;
            self.hand = (self.hand + 1) % self.slots;
            if !std::mem::take(&mut self.referenced[slot]) {
                return slot;
            }
        }
    }
}

impl core::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockCache").field("slot_size", &self.slot_size).field("slots", &self.slots).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(v: u8) -> impl FnOnce(&mut [u8]) -> Result<()> {
        move |b| {
            b.fill(v);
            Ok(())
        }
    }

    #[test]
    fn holds_at_most_its_capacity_and_keeps_what_is_used() {
        let mut c = BlockCache::new(3 * 16 + 5, 16).unwrap();
        assert_eq!(c.capacity(), 48);
        for k in 0..3 {
            c.insert(k, fill(k as u8)).unwrap();
        }
        assert_eq!(c.data.len(), 48);
        // Everything was just used: the clock clears all marks and takes slot 0 (key 0).
        c.insert(3, fill(3)).unwrap();
        assert!(c.find(0).is_none());
        // Key 1's mark was cleared by the last sweep; using it again saves it over key 2.
        let one = c.find(1).unwrap();
        c.insert(4, fill(4)).unwrap();
        assert!(c.find(2).is_none());
        let slot = c.find(1).unwrap();
        assert_eq!(c.slot(slot), &[1; 16]);
        assert_eq!(one, c.find(1).unwrap());
        let slot = c.find(4).unwrap();
        assert_eq!(c.slot(slot), &[4; 16]);
        assert_eq!(c.data.len(), 48);
    }

    #[test]
    fn a_failed_fill_leaves_no_entry() {
        let mut c = BlockCache::new(16, 16).unwrap();
        c.insert(1, fill(1)).unwrap();
        let err = Error::new(ErrorOrigin::Connector, ErrorKind::Malformed);
        assert!(c.insert(2, |_| Err(err)).is_err());
        assert!(c.find(1).is_none() && c.find(2).is_none());
        c.insert(2, fill(2)).unwrap();
        let slot = c.find(2).unwrap();
        assert_eq!(c.slot(slot), &[2; 16]);
    }

    #[test]
    fn too_small_is_refused() {
        assert_eq!(BlockCache::new(15, 16).unwrap_err().kind, ErrorKind::InvalidArgument);
        assert_eq!(BlockCache::new(16, 0).unwrap_err().kind, ErrorKind::InvalidArgument);
    }
}
