//! kallsyms: the kernel's own symbol table, found in its read-only data and decoded.
//!
//! The build (`scripts/kallsyms`) emits these arrays, every one aligned to 8 bytes:
//!
//! - `kallsyms_num_syms`: the symbol count `n` (a 32-bit word);
//! - `kallsyms_names`: per symbol a length (one byte, or with bit 7 set two bytes, low seven
//!   bits first) and that many token numbers;
//! - `kallsyms_markers`: a `u32` per 256 symbols, the offset of that symbol's name in
//!   `kallsyms_names` (so the first is 0);
//! - `kallsyms_token_table`: 256 NUL-terminated tokens. Every byte value that occurs in some
//!   symbol name stands for itself (the token is that one character); the others stand for
//!   frequent substrings. The first character of an expanded name is the symbol type
//!   (`T`, `t`, `D`, ...);
//! - `kallsyms_token_index`: 256 `u16` offsets of the tokens in the token table;
//! - `kallsyms_offsets`: a 32-bit word per symbol, and `kallsyms_relative_base` (64 bits).
//!   With absolute per-CPU symbols (x86-64 SMP), a non-negative offset is the address itself
//!   and a negative one means `relative_base - 1 - offset`; otherwise the address is
//!   `relative_base + offset` (unsigned).
//!
//! Up to Linux 6.3 the offsets and the relative base come first, in front of
//! `kallsyms_num_syms`; from 6.4 they follow the token index. 6.2 and 6.3 (and kernels with
//! that change backported, like Debian's 6.1) put `kallsyms_seqs_of_names`, three bytes per
//! symbol, between the markers and the token table. Symbols are sorted by address in every
//! layout.
//!
//! None of these arrays has a name in memory, so they are found by shape, in time linear in
//! the image plus a bounded amount of checking:
//!
//! 1. the token index: an 8-aligned array of 256 `u16`s that starts with 0 and whose entries
//!    for `'0'..='9'` step by 2 (the digits are used in names, so their one-character tokens
//!    `"0\0" .. "9\0"` stand back to back in the table); one pass over the image finds these,
//!    and only they are checked further: the entries must ascend, the last token ends (with
//!    its NUL and padding) where the index starts, which places the table, the digit tokens
//!    must be where the index says, and the index must describe exactly the tokens there;
//! 2. the markers are the nearest array before the table that starts with 0 and grows by
//!    plausible steps; `kallsyms_num_syms` is the word in front of the names for which
//!    decoding `n` names hits every marker and ends at the markers.
//!
//! Everything after step 1's pass counts against [`MAX_KALLSYMS_STEPS`], at most
//! [`MAX_TOKEN_TABLES`] token tables are followed, and names and the text of all names are
//! capped ([`MAX_SYMBOL_NAME`], [`MAX_SYMBOL_TEXT`]): memory full of plausible tokens, or
//! tables built to look almost right, end the search with an error instead of a hang.

use super::limits::{MAX_KALLSYMS_STEPS, MAX_SYMBOLS, MAX_SYMBOL_NAME, MAX_SYMBOL_TEXT, MAX_TOKEN_TABLES};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};
use crate::types::{umem, Address};

/// The one-character tokens of the ten digits, as they stand in the token table.
const DIGIT_TOKENS: &[u8] = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00";
/// The largest token table (its offsets are 16-bit).
const MAX_TABLE_BYTES: usize = 0x1_0000;
/// Every kallsyms array is aligned to this many bytes (`.balign 8` in `scripts/kallsyms`).
const ALIGN: usize = 8;

/// A kernel symbol.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// Its address.
    pub address: Address,
    /// Its type as `/proc/kallsyms` shows it (`T`, `t`, `D`, `r`, ...).
    pub kind: char,
    /// Its name.
    pub name: &'a str,
}

/// One decoded entry: the address and where the name lies in [`Kallsyms::text`].
#[derive(Copy, Clone, Debug)]
struct Entry {
    address: Address,
    name_start: u32,
    name_end: u32,
    kind: u8,
}

/// The decoded symbol table of a kernel (see the module docs).
pub struct Kallsyms {
    /// Every name, back to back.
    text: String,
    /// The symbols in table order (ascending addresses).
    entries: Vec<Entry>,
}

/// Logged at debug level: images are probed, and the caller says what failed in the end.
fn not_found() -> Error {
    log::debug!("linux: no kallsyms tables found in the kernel image");
    Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
}

/// The steps one search may still take (see [`MAX_KALLSYMS_STEPS`]).
struct Budget(u64);

impl Budget {
    /// Takes `n` steps; `None` (the candidate at hand is dropped) once the budget is spent.
    fn spend(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.saturating_sub(n as u64);
        (self.0 > 0).then_some(())
    }

    fn spent(&self) -> bool {
        self.0 == 0
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn align8(v: usize) -> usize {
    (v + 7) & !7
}

/// The token table and the index behind it.
struct Tokens<'a> {
    /// Where the table starts in the image.
    table: usize,
    /// Where the index starts in the image.
    index: usize,
    /// The 256 tokens.
    tokens: Vec<&'a [u8]>,
}

/// Where the names are, and how many.
struct Names {
    /// Where `kallsyms_num_syms` lies in the image.
    num_syms: usize,
    /// Where the names start.
    start: usize,
    /// The number of symbols.
    count: usize,
}

impl Kallsyms {
    /// Finds and decodes the tables in `image`, the bytes of the kernel image from a page
    /// aligned address on (its text, read-only data and data; unmapped parts zero).
    ///
    /// `NotFound` if there are none, `LimitExceeded` if the search ran out of steps or
    /// token tables (see the module docs) or the symbols exceed a limit.
    pub fn find(image: &[u8]) -> Result<Kallsyms> {
        Self::search(image, MAX_KALLSYMS_STEPS)
    }

    /// [`Kallsyms::find`] with `steps` instead of [`MAX_KALLSYMS_STEPS`].
    fn search(image: &[u8], steps: u64) -> Result<Kallsyms> {
        let mut budget = Budget(steps);
        let mut tables = 0;
        for index in (0..image.len()).step_by(ALIGN).filter(|&at| index_shape(image, at)) {
            if let Some(tokens) = token_table(image, index, &mut budget) {
                if let Some(names) = names(image, tokens.table, &mut budget) {
                    if let Some(kallsyms) = decode(image, &tokens, &names)? {
                        log::debug!("linux: kallsyms found after {} search steps", steps - budget.0);
                        return Ok(kallsyms);
                    }
                }
                tables += 1;
                if tables >= MAX_TOKEN_TABLES {
                    return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
                        .with_reason(format_args!("kallsyms: {tables} token tables without symbols; giving up")));
                }
            }
            if budget.spent() {
                return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
                    .with_reason(format_args!("kallsyms: no tables found in {steps} steps; giving up")));
            }
        }
        Err(not_found())
    }

    /// The number of symbols.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every symbol, in table order (ascending addresses).
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'_>> + '_ {
        (0..self.entries.len()).filter_map(|i| self.symbol(i))
    }

    /// The address of the first symbol named `name`.
    pub fn lookup(&self, name: &str) -> Option<Address> {
        self.iter().find(|s| s.name == name).map(|s| s.address)
    }

    /// The symbol with the highest address at or below `address`; of several at that address
    /// the first in the table (as the kernel's own `kallsyms_lookup` picks).
    pub fn nearest(&self, address: Address) -> Option<Symbol<'_>> {
        let above = self.entries.partition_point(|e| e.address <= address);
        let at = self.entries.get(above.checked_sub(1)?)?.address;
        let first = self.entries[..above].partition_point(|e| e.address < at);
        self.symbol(first)
    }

    fn symbol(&self, i: usize) -> Option<Symbol<'_>> {
        let e = self.entries.get(i)?;
        Some(Symbol {
            address: e.address,
            kind: e.kind as char,
            name: self.text.get(e.name_start as usize..e.name_end as usize)?,
        })
    }
}

/// True if the 256 `u16`s at `at` could be a token index: the first is 0 and those of the
/// digits step by 2 (see the module docs). Cheap: it runs for every aligned position.
fn index_shape(image: &[u8], at: usize) -> bool {
    if u16_at(image, at) != Some(0) {
        return false;
    }
    let digit = |k: usize| u16_at(image, at + 2 * (usize::from(b'0') + k));
    let Some(zero) = digit(0) else { return false };
    (1..10).all(|k| digit(k) == Some(zero.wrapping_add(2 * k as u16)))
}

/// The token table in front of the index candidate at `index` (see the module docs): its
/// 256 non-empty NUL-terminated tokens must be exactly where the index says, the last one
/// followed by at most 7 bytes of zero padding up to the index.
fn token_table<'a>(image: &'a [u8], index: usize, budget: &mut Budget) -> Option<Tokens<'a>> {
    budget.spend(256)?;
    let offsets: Vec<usize> = (0..256).map(|i| u16_at(image, index + 2 * i).map(usize::from)).collect::<Option<_>>()?;
    // Ascending by at least two: every token has a character and its NUL.
    if !offsets.windows(2).all(|w| w[1] >= w[0] + 2) {
        return None;
    }
    let before = &image[..index];
    let zeros = before.iter().rev().take(ALIGN).take_while(|&&b| b == 0).count();
    let end = index - zeros;
    let last_len = before[..end].iter().rev().take(MAX_TABLE_BYTES).take_while(|&&b| b != 0).count();
    budget.spend(last_len)?;
    let table = (end - last_len).checked_sub(offsets[255])?;
    if zeros == 0 || last_len == 0 || !image[table + offsets[usize::from(b'0')]..].starts_with(DIGIT_TOKENS) {
        return None;
    }
    budget.spend(end - table)?;
    let mut tokens = Vec::with_capacity(256);
    for (i, &start) in offsets.iter().enumerate() {
        let stop = offsets.get(i + 1).map_or(end, |&next| table + next - 1);
        let token = &image[table + start..stop];
        if image[stop] != 0 || token.contains(&0) {
            return None;
        }
        tokens.push(token);
    }
    Some(Tokens { table, index, tokens })
}

/// The length of the compressed name at `*pos` (one byte, or two with bit 7 of the first
/// set, low seven bits first); moves `*pos` past the length.
fn name_len(image: &[u8], pos: &mut usize) -> Option<usize> {
    let first = usize::from(*image.get(*pos)?);
    *pos += 1;
    if first & 0x80 == 0 {
        return Some(first);
    }
    let second = usize::from(*image.get(*pos)?);
    *pos += 1;
    Some((first & 0x7f) | second << 7)
}

/// Decodes the name lengths of `count` names from `start`, checking every marker on the way
/// and that every name has 1 to [`MAX_SYMBOL_NAME`] tokens; returns where the names end.
fn names_end(image: &[u8], start: usize, count: usize, markers: &[u32], budget: &mut Budget) -> Option<usize> {
    let mut pos = start;
    for i in 0..count {
        if i % 256 == 0 {
            budget.spend(256)?;
            if markers.get(i / 256).map(|&m| m as usize) != Some(pos - start) {
                return None;
            }
        }
        let len = name_len(image, &mut pos)?;
        if len == 0 || len > MAX_SYMBOL_NAME {
            return None;
        }
        pos += len;
    }
    Some(pos)
}

/// The markers that start at `start`: the first is 0, each next one at most a group of the
/// longest names further (every name takes at least two bytes).
fn markers_at(image: &[u8], start: usize) -> Vec<u32> {
    let step = |a: u32, b: u32| b > a && (b - a) as usize >= 256 * 2 && (b - a) as usize <= 256 * (2 + MAX_SYMBOL_NAME);
    let mut markers = vec![];
    let mut at = start;
    while let Some(v) = u32_at(image, at) {
        match markers.last() {
            None if v != 0 => break,
            Some(&last) if !step(last, v) => break,
            _ if markers.len() > MAX_SYMBOLS / 256 => break,
            _ => markers.push(v),
        }
        at += 4;
    }
    markers
}

/// The names and markers in front of the token table at `table`: the markers start at the
/// nearest zero word before the table that begins a plausible marker array (right before the
/// table, or before a `kallsyms_seqs_of_names` of three bytes per symbol), and the names end
/// where the markers start.
fn names(image: &[u8], table: usize, budget: &mut Budget) -> Option<Names> {
    let lowest = table.saturating_sub(3 * MAX_SYMBOLS + 64);
    for markers_start in (lowest..=table.checked_sub(8)? & !3).rev().step_by(4) {
        budget.spend(1)?;
        if u32_at(image, markers_start) != Some(0) {
            continue;
        }
        let markers = markers_at(image, markers_start);
        budget.spend(markers.len())?;
        // Past the last marker the data may happen to look like one more: try one less too.
        for count in (markers.len().saturating_sub(1).max(2)..=markers.len()).rev() {
            if let Some(names) = names_with_markers(image, markers_start, &markers[..count], budget) {
                return Some(names);
            }
        }
    }
    None
}

/// `kallsyms_num_syms` and the names that end at `markers_start` and agree with `markers`:
/// the count stands in front of the names, which are at least as long as the last marker says
/// and at most a group of the longest names longer.
fn names_with_markers(image: &[u8], markers_start: usize, markers: &[u32], budget: &mut Budget) -> Option<Names> {
    let last = *markers.last()? as usize;
    let highest = markers_start.checked_sub(8 + last)?;
    let lowest = highest.saturating_sub(256 * (2 + MAX_SYMBOL_NAME) + 8);
    (lowest..=highest & !3).rev().step_by(4).find_map(|num_syms| {
        budget.spend(1)?;
        let count = u32_at(image, num_syms)? as usize;
        if count == 0 || count > MAX_SYMBOLS || count.div_ceil(256) != markers.len() {
            return None;
        }
        let start = align8(num_syms + 4);
        let end = names_end(image, start, count, markers, budget)?;
        (end <= markers_start && markers_start - end < 8).then_some(Names { num_syms, start, count })
    })
}

/// The address of every symbol from the offsets at `offsets` and the base at `base_at`,
/// `None` unless the base is a kernel address and the addresses ascend.
fn addresses(image: &[u8], offsets: usize, base_at: usize, count: usize) -> Option<Vec<Address>> {
    let base = u64_at(image, base_at)?;
    if base >> 63 == 0 {
        return None;
    }
    let raw: Vec<i32> = (0..count).map(|i| u32_at(image, offsets + 4 * i).map(|v| v as i32)).collect::<Option<_>>()?;
    let absolute_percpu = raw.iter().any(|&o| o < 0);
    let addrs: Vec<Address> = raw
        .iter()
        .map(|&o| {
            let a = match (absolute_percpu, o >= 0) {
                (true, true) => o as u64,
                (true, false) => base.wrapping_sub(1).wrapping_sub(o as i64 as u64),
                (false, _) => base.wrapping_add(u64::from(o as u32)),
            };
            Address::new(a as umem)
        })
        .collect();
    addrs.windows(2).all(|w| w[0] <= w[1]).then_some(addrs)
}

/// Decodes the table: addresses from the offsets in front of `kallsyms_num_syms` (up to 6.3)
/// or behind the token index (from 6.4), whichever gives ascending kernel addresses.
/// `Ok(None)` if the tables do not decode; `LimitExceeded` if the names together are longer
/// than [`MAX_SYMBOL_TEXT`] (a name expands to at most [`MAX_SYMBOL_NAME`] characters after
/// its type, or the table is not taken).
fn decode(image: &[u8], tokens: &Tokens, names: &Names) -> Result<Option<Kallsyms>> {
    let n = names.count;
    let Some(old_base) = names.num_syms.checked_sub(8) else { return Ok(None) };
    let old = old_base.checked_sub(align8(4 * n)).and_then(|offsets| addresses(image, offsets, old_base, n));
    let new_offsets = align8(tokens.index + 512);
    let Some(addrs) = old.or_else(|| addresses(image, new_offsets, align8(new_offsets + 4 * n), n)) else {
        return Ok(None);
    };

    let mut text = String::new();
    let mut entries = Vec::with_capacity(n);
    let mut pos = names.start;
    let mut name = Vec::new();
    for address in addrs {
        let Some(len) = name_len(image, &mut pos) else { return Ok(None) };
        let Some(compressed) = image.get(pos..pos + len) else { return Ok(None) };
        name.clear();
        for &t in compressed {
            name.extend_from_slice(tokens.tokens[usize::from(t)]);
            if name.len() > 1 + MAX_SYMBOL_NAME {
                return Ok(None);
            }
        }
        pos += len;
        let Some((&kind, rest)) = name.split_first() else { return Ok(None) };
        let name_start = text.len() as u32;
        text.push_str(&String::from_utf8_lossy(rest));
        if text.len() > MAX_SYMBOL_TEXT {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded).with_reason(format_args!(
                "kallsyms: the names of {n} symbols are longer than {MAX_SYMBOL_TEXT} bytes"
            )));
        }
        entries.push(Entry { address, name_start, name_end: text.len() as u32, kind });
    }
    Ok(Some(Kallsyms { text, entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order of the arrays (see the module docs).
    #[derive(Copy, Clone, Debug)]
    enum Order {
        /// Up to 6.1.
        Old,
        /// 6.2, 6.3 and backports: `kallsyms_seqs_of_names` before the token table.
        OldWithSeqs,
        /// From 6.4.
        New,
    }

    /// Writes kallsyms tables the way the kernel build does, in `order`, without compression
    /// beyond one-character tokens plus one two-character token `"_s"`, at an 8-aligned
    /// position in an image.
    fn build_tables(syms: &[(char, &str, u64)], relative_base: u64, order: Order) -> Vec<u8> {
        // Printable characters stand for themselves; byte 1 for "_s"; the other bytes never
        // occur in names and get some unused token.
        let mut tokens: Vec<Vec<u8>> =
            (0..=255u8).map(|c| if (0x20..0x7f).contains(&c) { vec![c] } else { b"zz".to_vec() }).collect();
        tokens[1] = b"_s".to_vec();
        let pad = |v: &mut Vec<u8>| v.resize(align8(v.len()), 0);
        let encode = |name: &[u8]| -> Vec<u8> {
            let mut out = vec![];
            let mut i = 0;
            while i < name.len() {
                if name[i..].starts_with(b"_s") {
                    out.push(1);
                    i += 2;
                } else {
                    out.push(name[i]);
                    i += 1;
                }
            }
            out
        };
        let mut offsets = vec![];
        for &(_, _, addr) in syms {
            let off = if addr < 0x1_0000_0000 { addr as i32 } else { -((addr - relative_base) as i32) - 1 };
            offsets.extend_from_slice(&off.to_le_bytes());
        }
        pad(&mut offsets);
        let mut names = vec![];
        let mut markers = vec![];
        for (i, &(kind, name, _)) in syms.iter().enumerate() {
            if i % 256 == 0 {
                markers.extend_from_slice(&(names.len() as u32).to_le_bytes());
            }
            let mut full = vec![kind as u8];
            full.extend_from_slice(name.as_bytes());
            let enc = encode(&full);
            if enc.len() > 0x7f {
                names.push((enc.len() & 0x7f) as u8 | 0x80);
                names.push((enc.len() >> 7) as u8);
            } else {
                names.push(enc.len() as u8);
            }
            names.extend_from_slice(&enc);
        }
        pad(&mut names);
        pad(&mut markers);
        let mut table = vec![];
        let mut index = vec![];
        for t in &tokens {
            index.extend_from_slice(&(table.len() as u16).to_le_bytes());
            table.extend_from_slice(t);
            table.push(0);
        }
        pad(&mut table);
        pad(&mut index);
        let mut num = (syms.len() as u32).to_le_bytes().to_vec();
        pad(&mut num);
        let base = relative_base.to_le_bytes().to_vec();
        let mut out = vec![0xccu8; 64];
        // The sequence numbers of the names sorted by name, three bytes each, big endian.
        let mut seqs: Vec<u8> = (0..syms.len() as u32).flat_map(|i| i.to_be_bytes()[1..].to_vec()).collect();
        pad(&mut seqs);
        let parts: Vec<&[u8]> = match order {
            Order::Old => vec![&offsets, &base, &num, &names, &markers, &table, &index],
            Order::OldWithSeqs => vec![&offsets, &base, &num, &names, &markers, &seqs, &table, &index],
            Order::New => vec![&num, &names, &markers, &table, &index, &offsets, &base, &seqs],
        };
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&[0xcc; 64]);
        out
    }

    fn sample() -> Vec<(char, String, u64)> {
        let mut syms = vec![('A', "__per_cpu_start".to_string(), 0), ('A', "cpu_number".into(), 0x19160)];
        for i in 0..700u64 {
            let long = if i == 300 { "x".repeat(200) } else { String::new() };
            syms.push(('t', format!("sym_{i}{long}"), 0xffff_ffff_8100_0000 + i * 0x10));
        }
        syms.push(('D', "linux_banner".into(), 0xffff_ffff_8211_ffe0));
        syms
    }

    #[test]
    fn decodes_both_layouts() {
        let syms = sample();
        let refs: Vec<_> = syms.iter().map(|(k, n, a)| (*k, n.as_str(), *a)).collect();
        for order in [Order::Old, Order::OldWithSeqs, Order::New] {
            let image = build_tables(&refs, 0xffff_ffff_8100_0000, order);
            let k = Kallsyms::find(&image).unwrap_or_else(|e| panic!("{order:?}: {e}"));
            assert_eq!(k.len(), syms.len(), "{order:?}");
            for (got, want) in k.iter().zip(&syms) {
                assert_eq!((got.kind, got.name, got.address), (want.0, want.1.as_str(), Address::from(want.2)));
            }
            assert_eq!(k.lookup("linux_banner"), Some(Address::new(0xffff_ffff_8211_ffe0)));
            assert_eq!(k.lookup("sym_5"), Some(Address::new(0xffff_ffff_8100_0050)));
            assert_eq!(k.lookup("nope"), None);
            let sym5 = Address::new(0xffff_ffff_8100_0050);
            assert_eq!(k.nearest(sym5).map(|s| s.name), Some("sym_5"));
            assert_eq!(k.nearest(sym5 + 0xf_usize).map(|s| s.name), Some("sym_5"));
            assert_eq!(k.nearest(Address::new(0x19160)).map(|s| s.name), Some("cpu_number"));
        }
    }

    #[test]
    fn damaged_tables_are_not_found() {
        let syms = sample();
        let refs: Vec<_> = syms.iter().map(|(k, n, a)| (*k, n.as_str(), *a)).collect();
        let image = build_tables(&refs, 0xffff_ffff_8100_0000, Order::Old);
        // A broken marker: the names no longer line up with the markers.
        // The three markers (703 symbols) stand in the 16 bytes before the token table.
        let mut budget = Budget(MAX_KALLSYMS_STEPS);
        let tokens = (0..image.len()).step_by(ALIGN).filter(|&at| index_shape(&image, at));
        let table = tokens.filter_map(|index| token_table(&image, index, &mut budget)).next().unwrap().table;
        let mut bad = image.clone();
        bad[table - 16 + 4] ^= 0x40;
        assert_eq!(Kallsyms::find(&bad).err().map(|e| e.kind), Some(ErrorKind::NotFound));
        assert!(Kallsyms::find(&image[..image.len() / 2]).is_err());
        assert!(Kallsyms::find(&[0u8; 4096]).is_err());
    }

    fn sample_image(order: Order) -> Vec<u8> {
        let syms = sample();
        let refs: Vec<_> = syms.iter().map(|(k, n, a)| (*k, n.as_str(), *a)).collect();
        build_tables(&refs, 0xffff_ffff_8100_0000, order)
    }

    #[test]
    fn token_floods_cost_no_search_steps() {
        // 16 MiB of digit tokens (and the bytes `u16` 0..=9 in a row) in front of the tables:
        // the tables are still found with a budget far below the flood's size.
        let mut image: Vec<u8> = DIGIT_TOKENS.iter().copied().cycle().take(16 << 20).collect();
        image.extend((0u16..10).cycle().take(1 << 16).flat_map(u16::to_le_bytes));
        image.resize(align8(image.len()), 0);
        image.extend(sample_image(Order::New));
        let k = Kallsyms::search(&image, 1 << 16).unwrap();
        assert_eq!(k.lookup("linux_banner"), Some(Address::new(0xffff_ffff_8211_ffe0)));
    }

    #[test]
    fn almost_right_tables_end_the_search() {
        // Indexes that look right (0, 2, 4, ...) everywhere: each is checked and refused,
        // until the budget is spent.
        let index: Vec<u8> = (0u16..256).flat_map(|i| (2 * i).to_le_bytes()).collect();
        let image = index.repeat(2048);
        assert_eq!(Kallsyms::search(&image, 10_000).err().map(|e| e.kind), Some(ErrorKind::LimitExceeded));
        assert_eq!(Kallsyms::find(&image).err().map(|e| e.kind), Some(ErrorKind::NotFound));
        // Whole token tables without names, more than MAX_TOKEN_TABLES of them.
        let one = sample_image(Order::New);
        let mut budget = Budget(MAX_KALLSYMS_STEPS);
        let index = (0..one.len()).step_by(ALIGN).find(|&at| token_table(&one, at, &mut budget).is_some()).unwrap();
        let table = token_table(&one, index, &mut budget).unwrap().table;
        let mut chunk = one[table & !7..index + 512].to_vec();
        chunk.resize(align8(chunk.len()), 0);
        let image = chunk.repeat(MAX_TOKEN_TABLES + 1);
        assert_eq!(Kallsyms::find(&image).err().map(|e| e.kind), Some(ErrorKind::LimitExceeded));
    }

    #[test]
    fn overlong_names_are_refused() {
        let long = "y".repeat(MAX_SYMBOL_NAME + 1);
        let syms = [('T', "_text", 0xffff_ffff_8100_0000u64), ('T', long.as_str(), 0xffff_ffff_8100_0010)];
        let image = build_tables(&syms, 0xffff_ffff_8100_0000, Order::Old);
        assert_eq!(Kallsyms::find(&image).err().map(|e| e.kind), Some(ErrorKind::NotFound));
    }

    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let syms: Vec<_> = (0..300u64).map(|i| ('t', format!("f_{i}"), 0xffff_ffff_8100_0000 + 16 * i)).collect();
        let refs: Vec<_> = syms.iter().map(|(k, n, a)| (*k, n.as_str(), *a)).collect();
        for (name, order) in [("old", Order::Old), ("seqs", Order::OldWithSeqs), ("new", Order::New)] {
            super::super::write_fuzz_seed("kallsyms", name, &build_tables(&refs, 0xffff_ffff_8100_0000, order));
        }
    }
}
