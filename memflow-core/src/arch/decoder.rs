//! [`Decoder`]: an [`Architecture`]'s entry format compiled into masks, for the hot loops of
//! the translation engine.
//!
//! [`Architecture::decode`] reads the description field by field (matching on the leaf rule
//! and on every permission bit for each entry); it stays the plain statement of the rules and
//! the reference walker uses it. The decoder answers the same question with a few mask
//! operations and no data-dependent matching on the description, and must give the same
//! answer for every entry at every level: the tests below check that on crafted and random
//! entries for every mode.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`

use super::{Architecture, Denied, Entry, LeafRule, PermBit, Permissions, MAX_LEVELS};
use crate::types::{umem, Address};

/// What an entry is once it is valid and not reserved.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    Invalid,
    Table,
    Leaf,
}

/// Four permission tests on an entry's bits, in two steps: [`PermMasks::bits`] keeps the bits
/// that deny something (set where the access is denied), which the entries of a walk can `|`
/// together; [`PermMasks::denied`] names the accesses once per walk.
#[derive(Copy, Clone, Debug, Default)]
struct PermMasks {
    /// The bits that take part.
    used: u64,
    /// The bits that allow an access when set (they deny when clear).
    allow: u64,
    /// Per access (write, user, exec user, exec kernel): its bit.
    mask: [u64; 4],
}

impl PermMasks {
    /// The masks of `p`. No architecture uses one bit to allow one access and deny another
    /// (the decoder would get it wrong; the differential test below covers every mode).
    fn new(p: &Permissions) -> Self {
        let mut m = PermMasks::default();
        for (k, bit) in [p.write, p.user, p.exec_user, p.exec_kernel].into_iter().enumerate() {
            match bit {
                PermBit::Absent => {}
                PermBit::AllowIfSet(b) => {
                    m.mask[k] = 1 << b;
                    m.allow |= 1 << b;
                }
                PermBit::DenyIfSet(b) => m.mask[k] = 1 << b,
            }
            m.used |= m.mask[k];
        }
        m
    }

    /// The bits of `raw` that deny an access.
    #[inline(always)]
    fn bits(&self, raw: u64) -> u64 {
        (raw ^ self.allow) & self.used
    }

    /// The accesses denied by denying `bits` (of one or several entries).
    #[inline(always)]
    fn denied(&self, bits: u64) -> Denied {
        let d = |k: usize| u8::from(bits & self.mask[k] != 0) << k;
        Denied(d(0) | d(1) | d(2) | d(3))
    }
}

/// An entry as the walks see it: [`Entry`] with the permissions still as bits, so that a walk
/// names the denied accesses once ([`Decoder::denied`]) rather than at every level. The
/// default, [`Step::Invalid`], is what an all-zero entry decodes to in every mode.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Step {
    #[default]
    /// Not present, reserved or malformed.
    Invalid,
    /// Points to the next level's table; `bits` deny as table permissions.
    Table { next: Address, bits: u64 },
    /// Maps a page; `bits` deny as leaf permissions.
    Page { base: Address, bits: u64 },
}

#[derive(Copy, Clone, Debug)]
struct LevelRule {
    /// The kind when any bit of `Decoder::select` is set, and when none is.
    on_set: Kind,
    on_clear: Kind,
    /// The lowest virtual-address bit that indexes this level.
    shift: u8,
    /// The mask of the table index after shifting.
    index_mask: umem,
    /// `1 << shift`: the size of a page at this level.
    page_size: umem,
    /// The permissions of a table entry at this level (none where they do not take part).
    table_perms: PermMasks,
}

/// An architecture's entry format as masks (see the module docs). Small and `Copy`.
#[derive(Copy, Clone, Debug)]
pub struct Decoder {
    valid: u64,
    /// Entries with `raw & reserved_mask == reserved_value` are invalid (RISC-V: W without R).
    reserved_mask: u64,
    reserved_value: u64,
    /// The bits that pick between a level's `on_set` and `on_clear`.
    select: u64,
    levels: [LevelRule; MAX_LEVELS],
    level_count: usize,
    addr_lo: u32,
    addr_mask: u64,
    addr_shift: u32,
    /// The field of the top address bits (a zero mask if there is none).
    high_lo: u32,
    high_mask: u64,
    high_shift: u32,
    /// A leaf whose address is not aligned to its page size is invalid (RISC-V).
    strict_align: bool,
    leaf_perms: PermMasks,
    /// The table permissions (`LevelRule::table_perms` where they take part at a level).
    table_perms: PermMasks,
    entry_size: usize,
    little_endian: bool,
}

impl Decoder {
    /// Compiles `arch`'s entry format.
    pub fn new(arch: &Architecture) -> Self {
        let count = arch.levels().len();
        let (select, reserved_mask, reserved_value) = match arch.leaf_rule {
            LeafRule::LargePageBit(b) | LeafRule::TableBit(b) => (1u64 << b, 0, 1),
            LeafRule::PermissionBits { read, write, exec } => {
                ((1u64 << read) | (1 << exec), (1u64 << read) | (1 << write), 1u64 << write)
            }
        };
        let table_perms = PermMasks::new(&arch.table_perms);
        let mut levels = [LevelRule {
            on_set: Kind::Invalid,
            on_clear: Kind::Invalid,
            shift: 0,
            index_mask: 0,
            page_size: 1,
            table_perms: PermMasks::default(),
        }; MAX_LEVELS];
        for (level, (rule, lvl)) in levels.iter_mut().zip(arch.levels()).enumerate() {
            let last = level + 1 == count;
            let leaf_here = if lvl.leaf { Kind::Leaf } else { Kind::Invalid };
            (rule.on_set, rule.on_clear) = match arch.leaf_rule {
                LeafRule::LargePageBit(_) if last => (Kind::Leaf, Kind::Leaf),
                LeafRule::LargePageBit(_) => (leaf_here, Kind::Table),
                LeafRule::TableBit(_) if last => (Kind::Leaf, Kind::Invalid),
                LeafRule::TableBit(_) => (Kind::Table, leaf_here),
                LeafRule::PermissionBits { .. } if last => (Kind::Leaf, Kind::Invalid),
                LeafRule::PermissionBits { .. } => (Kind::Leaf, Kind::Table),
            };
            rule.shift = lvl.shift;
            rule.index_mask = ((1 as umem) << lvl.bits) - 1;
            rule.page_size = (1 as umem) << lvl.shift;
            if lvl.table_perms {
                rule.table_perms = table_perms;
            }
        }
        let f = arch.entry_addr;
        Decoder {
            valid: 1 << arch.valid_bit,
            reserved_mask,
            reserved_value,
            select,
            levels,
            level_count: count,
            addr_lo: f.lo as u32,
            addr_mask: super::mask64(f.bits),
            addr_shift: f.shift as u32,
            high_lo: f.high.0 as u32,
            high_mask: super::mask64(f.high.1),
            high_shift: f.high.2 as u32,
            strict_align: matches!(arch.leaf_rule, LeafRule::PermissionBits { .. }),
            leaf_perms: PermMasks::new(&arch.leaf_perms),
            table_perms,
            entry_size: arch.entry_size(),
            little_endian: arch.little_endian,
        }
    }

    /// Bytes per entry.
    #[inline(always)]
    pub fn entry_size(&self) -> usize {
        self.entry_size
    }

    /// The number of levels.
    #[inline(always)]
    pub fn level_count(&self) -> usize {
        self.level_count
    }

    /// The table index of `va` at `level` (as [`super::Level::index`]).
    #[inline(always)]
    pub fn index(&self, level: usize, va: Address) -> usize {
        let rule = &self.levels[level];
        ((va.to_umem() >> rule.shift) & rule.index_mask) as usize
    }

    /// log2 of the size of a page at `level`.
    #[inline(always)]
    pub fn shift(&self, level: usize) -> u8 {
        self.levels[level].shift
    }

    /// Reads an entry from its bytes (as [`Architecture::read_entry`]).
    #[inline(always)]
    pub fn read(&self, bytes: &[u8]) -> u64 {
        match (self.entry_size, self.little_endian) {
            (8, true) => u64::from_le_bytes(first(bytes)),
            (4, true) => u64::from(u32::from_le_bytes(first(bytes))),
            (8, false) => u64::from_be_bytes(first(bytes)),
            _ => u64::from(u32::from_be_bytes(first(bytes))),
        }
    }

    /// Decodes the entry `raw` found at `level` exactly as [`Architecture::decode`] does.
    #[inline(always)]
    pub fn decode(&self, level: usize, raw: u64) -> Entry {
        match self.step(level, raw) {
            Step::Invalid => Entry::Invalid,
            Step::Table { next, bits } => Entry::Table { next, denied: self.denied(bits, 0) },
            Step::Page { base, bits } => Entry::Page { base, denied: self.denied(0, bits) },
        }
    }

    /// Decodes the entry `raw` found at `level`, leaving its permissions as bits.
    #[inline(always)]
    pub fn step(&self, level: usize, raw: u64) -> Step {
        let rule = &self.levels[level];
        if raw & self.valid == 0 || raw & self.reserved_mask == self.reserved_value {
            return Step::Invalid;
        }
        let kind = if raw & self.select != 0 { rule.on_set } else { rule.on_clear };
        let low = (((raw >> self.addr_lo) & self.addr_mask) as umem) << self.addr_shift;
        let high = (((raw >> self.high_lo) & self.high_mask) as umem) << self.high_shift;
        let addr = Address::new(low | high);
        match kind {
            Kind::Invalid => Step::Invalid,
            Kind::Table => Step::Table { next: addr, bits: rule.table_perms.bits(raw) },
            Kind::Leaf => {
                let base = addr.align_down(rule.page_size);
                if self.strict_align && base != addr {
                    return Step::Invalid;
                }
                Step::Page { base, bits: self.leaf_perms.bits(raw) }
            }
        }
    }

    /// The accesses denied by a walk whose table entries gave `table_bits` (`|`-ed) and whose
    /// leaf gave `leaf_bits`.
    #[inline(always)]
    pub fn denied(&self, table_bits: u64, leaf_bits: u64) -> Denied {
        self.table_perms.denied(table_bits) | self.leaf_perms.denied(leaf_bits)
    }
}

/// The first `N` bytes of `bytes`, which the caller sized to an entry (shorter panics, as
/// indexing does).
#[inline(always)]
fn first<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchitectureIdent;
    use crate::types::PageType;

    /// Every mode, every level: entries made by the encoder with every flag combination, with
    /// single bits flipped, and random ones decode the same through both.
    #[test]
    fn same_as_architecture_decode() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for &ident in ArchitectureIdent::EVERY_MODE {
            let arch = ident.describe().unwrap();
            let dec = Decoder::new(&arch);
            assert_eq!(dec.level_count(), arch.levels().len());
            let width_mask = if arch.entry_size() == 4 { u32::MAX as u64 } else { u64::MAX };
            for (level, lvl) in arch.levels().iter().enumerate() {
                let mut samples = vec![0u64, width_mask, 1];
                let base = Address::new(0x1234_5678_9000u64 as umem).align_down((1 as umem) << lvl.shift);
                for bits in 0..8u8 {
                    let flags = PageType::from_bits_truncate(bits << 1);
                    samples.extend(arch.encode_page(level, base, flags));
                    samples.extend(arch.encode_page(level, base + 0x3000 as umem, flags));
                }
                samples.push(arch.encode_table(level, Address::new(0x5000)));
                let crafted = samples.clone();
                for raw in crafted {
                    for bit in 0..arch.entry_size() * 8 {
                        samples.push(raw ^ (1 << bit));
                    }
                }
                for _ in 0..20_000 {
                    let r = next();
                    samples.push(r & width_mask);
                    samples.push((r | 1) & width_mask);
                    samples.push(r & next() & width_mask);
                }
                for raw in samples {
                    assert_eq!(dec.decode(level, raw), arch.decode(level, raw), "{ident:?} level {level} {raw:#x}");
                }
                // The single-address walk starts from this as its last decoded entry.
                assert_eq!(dec.step(level, 0), Step::default(), "{ident:?} level {level}");
                for _ in 0..1000 {
                    let va = Address::new(next() as umem);
                    assert_eq!(dec.index(level, va), lvl.index(va), "{ident:?} level {level} {va}");
                }
                assert_eq!(dec.shift(level), lvl.shift);
            }
            for raw in [0u64, 0x0123_4567_89ab_cdef, u64::MAX] {
                let bytes = raw.to_le_bytes();
                let mut be = [0u8; 8];
                be[..arch.entry_size()].copy_from_slice(&arch.entry_bytes(raw & width_mask)[..arch.entry_size()]);
                assert_eq!(dec.read(&bytes), arch.read_entry(&bytes), "{ident:?}");
                assert_eq!(dec.read(&be), arch.read_entry(&be), "{ident:?}");
            }
        }
    }
}
