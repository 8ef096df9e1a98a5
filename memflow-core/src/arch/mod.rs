//! Architecture descriptions: how an MMU splits virtual addresses and encodes its page tables.
//!
//! An architecture is data: a list of [`Level`]s (which address bits index each table, where
//! large pages may sit), the entry size, where the physical address sits in an entry and in
//! the root register, which bits grant or deny permissions, how a leaf is told from a table,
//! and which virtual addresses are canonical. [`Architecture::decode`] is the one piece of code
//! that reads an entry using that data; [`Architecture::encode_table`] and
//! [`Architecture::encode_page`] are its inverse (for the synthetic page-table builder).
//!
//! [`ArchitectureIdent`] names a mode and crosses the C boundary; [`ArchitectureIdent::describe`]
//! turns it into an [`Architecture`]. The modes, their C codes, argument names and ELF machines
//! are one table (`ident.rs`).
//!
//! Assumptions, per family (what a running OS sets up, not checked against control registers):
//! x86 32-bit paging has CR4.PSE set (4 MiB pages); x86 PAE and 64-bit honour the NX bit
//! (EFER.NXE); AArch64 uses a 48-bit output address up to 48 virtual-address bits and a
//! 52-bit one above (FEAT_LPA2 with `TCR.DS` set for 4 and 16 KiB granules, FEAT_LPA for
//! 64 KiB), ignores the access flag and top-byte-ignore;
//! RISC-V ignores the A/D bits. Reserved bits are not checked, except a large-page marker at a
//! level that cannot hold a page, which makes the entry invalid as on hardware.
#![allow(clippy::unnecessary_cast)] // casts to `umem` are needed when it is `u128`

use crate::error::Result;
use crate::types::{umem, Address, PageType};

mod decoder;
pub(crate) use decoder::{Decoder, Step};

mod aarch64;
mod ident;
pub use ident::ArchitectureIdent;
mod riscv;
#[cfg(test)]
mod tests;
mod x86;

/// The most levels any supported architecture walks.
pub const MAX_LEVELS: usize = 5;

impl ArchitectureIdent {
    /// Every supported mode, with AArch64 in its nine common shapes (three granules; 39, 48
    /// and 52 bits). Tests and fuzzers iterate this.
    pub const EVERY_MODE: &'static [ArchitectureIdent] = &[
        ArchitectureIdent::X86_32,
        ArchitectureIdent::X86Pae,
        ArchitectureIdent::X86_64,
        ArchitectureIdent::X86_64La57,
        ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 39 },
        ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 48 },
        ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 39 },
        ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 48 },
        ArchitectureIdent::AArch64 { granule_log2: 16, va_bits: 39 },
        ArchitectureIdent::AArch64 { granule_log2: 16, va_bits: 48 },
        ArchitectureIdent::AArch64 { granule_log2: 12, va_bits: 52 },
        ArchitectureIdent::AArch64 { granule_log2: 14, va_bits: 52 },
        ArchitectureIdent::AArch64 { granule_log2: 16, va_bits: 52 },
        ArchitectureIdent::RiscVSv39,
        ArchitectureIdent::RiscVSv48,
        ArchitectureIdent::RiscVSv57,
    ];

    /// The description of this mode; fails for AArch64 parameters outside the supported range.
    pub fn describe(self) -> Result<Architecture> {
        match self {
            ArchitectureIdent::X86_32 => Ok(x86::x86_32()),
            ArchitectureIdent::X86Pae => Ok(x86::x86_pae()),
            ArchitectureIdent::X86_64 => Ok(x86::x86_64(4)),
            ArchitectureIdent::X86_64La57 => Ok(x86::x86_64(5)),
            ArchitectureIdent::AArch64 { granule_log2, va_bits } => aarch64::aarch64(self, granule_log2, va_bits),
            ArchitectureIdent::RiscVSv39 => Ok(riscv::riscv(self, 3)),
            ArchitectureIdent::RiscVSv48 => Ok(riscv::riscv(self, 4)),
            ArchitectureIdent::RiscVSv57 => Ok(riscv::riscv(self, 5)),
        }
    }
}

/// One level of the page-table tree.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// The lowest virtual-address bit that indexes this level; an entry covers `1 << shift` bytes.
    pub shift: u8,
    /// How many virtual-address bits index this level: the table has `1 << bits` entries.
    pub bits: u8,
    /// An entry at this level may map a page itself (a large page, block or superpage).
    /// Always true for the last level.
    pub leaf: bool,
    /// Permission bits of table entries at this level take part (false for PAE's PDPTEs, which
    /// have none).
    pub table_perms: bool,
}

impl Level {
    /// The number of entries in a table of this level.
    pub const fn entries(&self) -> usize {
        1 << self.bits
    }

    /// The table index of `va` at this level.
    #[inline]
    pub fn index(&self, va: Address) -> usize {
        va.bits(self.shift as u32..(self.shift + self.bits) as u32) as usize
    }
}

/// One permission bit of an entry and what a set bit means.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PermBit {
    /// The format has no such bit: nothing is denied.
    Absent,
    /// The access is allowed only if this bit is set (x86 R/W and U/S, RISC-V W, U, X).
    AllowIfSet(u8),
    /// The access is denied if this bit is set (x86 NX, AArch64 AP[2], UXN, PXN).
    DenyIfSet(u8),
}

impl PermBit {
    #[inline]
    const fn denies(self, raw: u64) -> bool {
        match self {
            PermBit::Absent => false,
            PermBit::AllowIfSet(b) => raw & (1 << b) == 0,
            PermBit::DenyIfSet(b) => raw & (1 << b) != 0,
        }
    }

    /// Sets or clears the bit in `raw` so that the access is allowed (or denied).
    const fn encode(self, raw: u64, allow: bool) -> u64 {
        match self {
            PermBit::Absent => raw,
            PermBit::AllowIfSet(b) if allow => raw | (1 << b),
            PermBit::DenyIfSet(b) if !allow => raw | (1 << b),
            PermBit::AllowIfSet(b) | PermBit::DenyIfSet(b) => raw & !(1 << b),
        }
    }
}

/// The permission bits of one kind of entry (table entries or leaf entries).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// Writes.
    pub write: PermBit,
    /// Access from user mode (EL0, U-mode, CPL 3).
    pub user: PermBit,
    /// Instruction fetches from user mode.
    pub exec_user: PermBit,
    /// Instruction fetches from kernel mode.
    pub exec_kernel: PermBit,
}

impl Permissions {
    /// No permission bits at all.
    pub const NONE: Permissions = Permissions {
        write: PermBit::Absent,
        user: PermBit::Absent,
        exec_user: PermBit::Absent,
        exec_kernel: PermBit::Absent,
    };

    #[inline]
    const fn denied(&self, raw: u64) -> Denied {
        let mut d = 0;
        if self.write.denies(raw) {
            d |= Denied::WRITE.0;
        }
        if self.user.denies(raw) {
            d |= Denied::USER.0;
        }
        if self.exec_user.denies(raw) {
            d |= Denied::EXEC_USER.0;
        }
        if self.exec_kernel.denies(raw) {
            d |= Denied::EXEC_KERNEL.0;
        }
        Denied(d)
    }

    const fn encode(&self, raw: u64, flags: PageType) -> u64 {
        let exec = !flags.contains(PageType::NOEXEC);
        let raw = self.write.encode(raw, flags.contains(PageType::WRITEABLE));
        let raw = self.user.encode(raw, flags.contains(PageType::USER));
        let raw = self.exec_user.encode(raw, exec);
        self.exec_kernel.encode(raw, exec)
    }
}

/// Accesses denied by at least one level of a walk. Levels combine with `|`: an address is
/// writable only if no level denies writes, and so on.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Denied(pub u8);

impl Denied {
    /// Some level denies writes.
    pub const WRITE: Denied = Denied(1);
    /// Some level denies user-mode access.
    pub const USER: Denied = Denied(2);
    /// Some level denies user-mode instruction fetches.
    pub const EXEC_USER: Denied = Denied(4);
    /// Some level denies kernel-mode instruction fetches.
    pub const EXEC_KERNEL: Denied = Denied(8);

    /// The page flags: writable and user unless denied somewhere; no-exec if neither mode may
    /// execute (on x86 and RISC-V one bit denies both).
    pub const fn page_type(self) -> PageType {
        let mut t = PageType::empty();
        if self.0 & Denied::WRITE.0 == 0 {
            t = t.union(PageType::WRITEABLE);
        }
        if self.0 & Denied::USER.0 == 0 {
            t = t.union(PageType::USER);
        }
        let no_exec = Denied::EXEC_USER.0 | Denied::EXEC_KERNEL.0;
        if self.0 & no_exec == no_exec {
            t = t.union(PageType::NOEXEC);
        }
        t
    }
}

impl core::ops::BitOr for Denied {
    type Output = Denied;
    #[inline]
    fn bitor(self, rhs: Denied) -> Denied {
        Denied(self.0 | rhs.0)
    }
}

/// How a leaf entry is told apart from a table entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeafRule {
    /// x86: at a level that may hold pages this bit (PS) set marks a large page; set where no
    /// page may sit, the entry is invalid; entries of the last level are always pages.
    LargePageBit(u8),
    /// AArch64: this bit set marks a table above the last level and a page at the last level;
    /// clear, it marks a block where blocks are allowed and is invalid elsewhere.
    TableBit(u8),
    /// RISC-V: an entry with any of the read or execute bits set is a leaf; one with write but
    /// not read is reserved; a non-leaf at the last level and a superpage whose physical address
    /// is not aligned to its size are invalid.
    PermissionBits {
        /// The R bit.
        read: u8,
        /// The W bit.
        write: u8,
        /// The X bit.
        exec: u8,
    },
}

/// Which virtual addresses are canonical and which table root translates them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Canonical {
    /// The bits above `va_bits - 1` copy bit `va_bits - 1` (x86-64, RISC-V); one root.
    SignExtended,
    /// The bits above `va_bits` are zero (32-bit x86); one root.
    ZeroExtended,
    /// The bits above `va_bits` are all zero (root 0, TTBR0) or all one (root 1, TTBR1).
    SplitRoots,
}

/// Where a physical address is held in an entry or root register: `bits` bits starting at
/// bit `lo`, which become address bits starting at `shift`, and possibly a second such field
/// for the top address bits ([`Self::high`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AddrField {
    /// The lowest bit of the field.
    pub lo: u8,
    /// The width of the field.
    pub bits: u8,
    /// Where the field's lowest bit lands in the address.
    pub shift: u8,
    /// The top address bits where they are kept apart from the others (AArch64's 52-bit
    /// output addresses: bits 50 and 51 in entry bits 8 and 9, or bits 48 to 51 in entry bits
    /// 12 to 15 or register bits 2 to 5), as `(lo, bits, shift)`; `bits` is 0 without.
    pub high: (u8, u8, u8),
}

impl AddrField {
    /// The bits `lo..end` hold the address bits `lo..end`.
    const fn in_place(lo: u8, end: u8) -> AddrField {
        AddrField { lo, bits: end - lo, shift: lo, high: (0, 0, 0) }
    }

    /// This field with the address bits from `shift` on held in `bits` bits from `lo`.
    const fn with_high(self, lo: u8, bits: u8, shift: u8) -> AddrField {
        AddrField { high: (lo, bits, shift), ..self }
    }

    /// The bits of an entry or register that hold address bits.
    pub const fn raw_mask(self) -> u64 {
        (mask64(self.bits) << self.lo) | (mask64(self.high.1) << self.high.0)
    }

    /// The address stored in `raw`.
    #[inline]
    pub const fn extract(self, raw: u64) -> Address {
        let (high_lo, high_bits, high_shift) = self.high;
        let low = (((raw >> self.lo) & mask64(self.bits)) as umem) << self.shift;
        let high = (((raw >> high_lo) & mask64(high_bits)) as umem) << high_shift;
        Address::new(low | high)
    }

    /// `raw` with the field set to `addr` (bits of `addr` the field cannot hold are dropped).
    pub const fn insert(self, raw: u64, addr: Address) -> u64 {
        let (high_lo, high_bits, high_shift) = self.high;
        let low = ((addr.to_umem() >> self.shift) as u64) & mask64(self.bits);
        let high = ((addr.to_umem() >> high_shift) as u64) & mask64(high_bits);
        (raw & !self.raw_mask()) | (low << self.lo) | (high << high_lo)
    }
}

/// The lowest `bits` bits set (`bits` <= 64).
#[inline]
const fn mask64(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

/// A contiguous range of canonical virtual addresses translated through one root.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Which root translates it (0, or 1 for the TTBR1 range).
    pub root: usize,
    /// The first address.
    pub first: Address,
    /// The last address (inclusive).
    pub last: Address,
}

/// What an entry says, decoded by [`Architecture::decode`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Not present, reserved or malformed: the walk fails here.
    Invalid,
    /// Points to the next level's table.
    Table {
        /// Physical address of the next table.
        next: Address,
        /// Accesses this entry denies.
        denied: Denied,
    },
    /// Maps a page of `1 << level.shift` bytes.
    Page {
        /// Physical address of the page (aligned to its size).
        base: Address,
        /// Accesses this entry denies.
        denied: Denied,
    },
}

/// The description of an MMU mode (see the module docs). Small and `Copy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Architecture {
    ident: ArchitectureIdent,
    levels: [Level; MAX_LEVELS],
    level_count: u8,
    entry_size: u8,
    little_endian: bool,
    pointer_bits: u8,
    canonical: Canonical,
    valid_bit: u8,
    entry_addr: AddrField,
    root_addr: AddrField,
    leaf_rule: LeafRule,
    table_perms: Permissions,
    leaf_perms: Permissions,
}

const NO_LEVEL: Level = Level { shift: 0, bits: 0, leaf: false, table_perms: false };

/// Levels of `bits_per_level` bits each above a page of `1 << page_shift` bytes, the top one
/// narrower if `va_bits` asks for it; a level may hold pages if its entries span at most
/// `1 << max_leaf_shift` bytes.
fn uniform_levels(va_bits: u8, page_shift: u8, bits_per_level: u8, max_leaf_shift: u8) -> ([Level; MAX_LEVELS], u8) {
    let index_bits = va_bits - page_shift;
    let count = index_bits.div_ceil(bits_per_level);
    let mut levels = [NO_LEVEL; MAX_LEVELS];
    for i in 0..count {
        let from_bottom = count - 1 - i;
        let shift = page_shift + from_bottom * bits_per_level;
        let bits = (va_bits - shift).min(bits_per_level);
        levels[i as usize] = Level { shift, bits, leaf: shift <= max_leaf_shift, table_perms: true };
    }
    (levels, count)
}

impl Architecture {
    /// The mode this describes.
    pub fn ident(&self) -> ArchitectureIdent {
        self.ident
    }

    /// The levels, top (root table) first.
    #[inline]
    pub fn levels(&self) -> &[Level] {
        &self.levels[..self.level_count as usize]
    }

    /// Where entries hold the physical address they point to.
    pub fn entry_addr(&self) -> AddrField {
        self.entry_addr
    }

    /// Bytes per table entry (4 or 8).
    #[inline]
    pub fn entry_size(&self) -> usize {
        self.entry_size as usize
    }

    /// True if entries and target values are little endian.
    pub fn little_endian(&self) -> bool {
        self.little_endian
    }

    /// The target's pointer width in bits (32 or 64).
    pub fn pointer_bits(&self) -> u8 {
        self.pointer_bits
    }

    /// log2 of the smallest page size (the granule).
    #[inline]
    pub fn page_shift(&self) -> u8 {
        self.levels()[self.levels().len() - 1].shift
    }

    /// The smallest page size in bytes.
    #[inline]
    pub fn page_size(&self) -> umem {
        (1 as umem) << self.page_shift()
    }

    /// Virtual-address bits translated through the tables.
    pub fn va_bits(&self) -> u8 {
        self.levels[0].shift + self.levels[0].bits
    }

    /// The number of table roots (2 for AArch64's TTBR0/TTBR1, else 1).
    pub fn root_count(&self) -> usize {
        if self.canonical == Canonical::SplitRoots {
            2
        } else {
            1
        }
    }

    /// The physical address of the top table held by a root register value (CR3, TTBRn, satp).
    /// Flag, ASID and PCID bits are dropped; RISC-V's PPN is turned into an address.
    #[inline]
    pub fn root_table(&self, register: Address) -> Address {
        self.root_addr.extract(register.to_umem() as u64)
    }

    /// The root register value for a top table at `table` (inverse of [`Self::root_table`]).
    pub fn root_register(&self, table: Address) -> Address {
        Address::new(self.root_addr.insert(0, table) as umem)
    }

    /// The canonical ranges of the address space in ascending order, with their roots.
    pub fn segments(&self) -> impl Iterator<Item = Segment> {
        let va_bits = self.va_bits() as u32;
        let top64 = u64::MAX as umem;
        let span = ((1 as umem) << va_bits) - 1;
        let [first, second] = match self.canonical {
            Canonical::ZeroExtended => [Some((0, 0, span)), None],
            Canonical::SignExtended => {
                let half = span >> 1;
                [Some((0, 0, half)), Some((0, top64 - half, top64))]
            }
            Canonical::SplitRoots => [Some((0, 0, span)), Some((1, top64 - span, top64))],
        };
        [first, second].into_iter().flatten().map(|(root, first, last)| Segment {
            root,
            first: Address::new(first),
            last: Address::new(last),
        })
    }

    /// The root that translates `va`, or `None` if `va` is not canonical.
    #[inline]
    pub fn root_index(&self, va: Address) -> Option<usize> {
        self.segments().find(|s| s.first <= va && va <= s.last).map(|s| s.root)
    }

    /// Reads an entry from its bytes (`entry_size` of them) in the target's byte order.
    #[inline]
    pub fn read_entry(&self, bytes: &[u8]) -> u64 {
        let mut raw = [0u8; 8];
        let n = self.entry_size();
        if self.little_endian {
            raw[..n].copy_from_slice(&bytes[..n]);
            u64::from_le_bytes(raw)
        } else {
            raw[8 - n..].copy_from_slice(&bytes[..n]);
            u64::from_be_bytes(raw)
        }
    }

    /// The bytes of an entry in the target's byte order (the first `entry_size` are used).
    pub fn entry_bytes(&self, raw: u64) -> [u8; 8] {
        let n = self.entry_size();
        if self.little_endian {
            raw.to_le_bytes()
        } else {
            let be = raw.to_be_bytes();
            let mut out = [0u8; 8];
            out[..n].copy_from_slice(&be[8 - n..]);
            out
        }
    }

    /// Decodes the entry `raw` found at level `level` (0 = the root table).
    #[inline]
    pub fn decode(&self, level: usize, raw: u64) -> Entry {
        if raw & (1 << self.valid_bit) == 0 {
            return Entry::Invalid;
        }
        let last = level + 1 == self.levels().len();
        let lvl = self.levels[level];
        let is_leaf = match self.leaf_rule {
            LeafRule::LargePageBit(_) if last => true,
            LeafRule::LargePageBit(b) => {
                let large = raw & (1 << b) != 0;
                if large && !lvl.leaf {
                    return Entry::Invalid;
                }
                large
            }
            LeafRule::TableBit(b) => match (last, raw & (1 << b) != 0) {
                (true, true) => true,
                (false, true) => false,
                (false, false) if lvl.leaf => true,
                (_, false) => return Entry::Invalid,
            },
            LeafRule::PermissionBits { read, write, exec } => {
                let (r, w, x) = (raw >> read & 1, raw >> write & 1, raw >> exec & 1);
                if w == 1 && r == 0 {
                    return Entry::Invalid;
                }
                let leaf = r == 1 || x == 1;
                if last && !leaf {
                    return Entry::Invalid;
                }
                leaf
            }
        };
        let addr = self.entry_addr.extract(raw);
        if is_leaf {
            let size = (1 as umem) << lvl.shift;
            let base = addr.align_down(size);
            let strict = matches!(self.leaf_rule, LeafRule::PermissionBits { .. });
            if strict && base != addr {
                return Entry::Invalid;
            }
            Entry::Page { base, denied: self.leaf_perms.denied(raw) }
        } else {
            let denied = if lvl.table_perms { self.table_perms.denied(raw) } else { Denied::default() };
            Entry::Table { next: addr, denied }
        }
    }

    /// A table entry at `level` pointing to the table at `next`, allowing every access.
    pub fn encode_table(&self, level: usize, next: Address) -> u64 {
        let raw = self.entry_addr.insert(1 << self.valid_bit, next);
        let raw = match self.leaf_rule {
            LeafRule::TableBit(b) => raw | (1 << b),
            LeafRule::LargePageBit(_) | LeafRule::PermissionBits { .. } => raw,
        };
        let all = PageType::WRITEABLE.union(PageType::USER);
        if self.levels[level].table_perms {
            self.table_perms.encode(raw, all)
        } else {
            raw
        }
    }

    /// A leaf entry at `level` mapping the page at `base` with `flags` (writable, user, no-exec),
    /// or `None` if no page can sit at that level.
    pub fn encode_page(&self, level: usize, base: Address, flags: PageType) -> Option<u64> {
        let lvl = *self.levels().get(level)?;
        if !lvl.leaf {
            return None;
        }
        let last = level + 1 == self.levels().len();
        let raw = self.entry_addr.insert(1 << self.valid_bit, base);
        let raw = match self.leaf_rule {
            LeafRule::LargePageBit(b) if !last => raw | (1 << b),
            LeafRule::LargePageBit(_) => raw,
            LeafRule::TableBit(b) if last => raw | (1 << b),
            LeafRule::TableBit(_) => raw,
            LeafRule::PermissionBits { read, .. } => raw | (1 << read),
        };
        Some(self.leaf_perms.encode(raw, flags))
    }
}
