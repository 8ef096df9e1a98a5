//! BTF, the kernel's own type information (`CONFIG_DEBUG_INFO_BTF`): parsing the `.BTF`
//! section and looking up where a structure keeps a member.
//!
//! The section is a 24-byte header (magic `0xeB9F`, version 1, flags, header length, then
//! offset and length of the type and the string section, both counted from the end of the
//! header), the type records and the strings. A type record is three `u32`s (name offset,
//! `info` = kind in bits 24..29, member count `vlen` in bits 0..16, `kind_flag` in bit 31,
//! then size or referenced type) followed by data whose length depends on the kind. Type ids
//! count records from 1; id 0 is `void`. A structure member is (name, type, offset), the
//! offset in bits, or with `kind_flag` set a bitfield size in bits 24..32 and the offset in
//! bits 0..24.
//!
//! Only what the layer needs is here: finding a structure by name and the byte offset, type
//! and size of a member path such as `f_path.dentry`, looking through typedefs, qualifiers
//! and anonymous structures and unions. The bytes are untrusted: every record is bounds
//! checked when the index is built and every walk is bounded.

use std::collections::HashSet;

use super::limits::{MAX_BTF_DEPTH, MAX_BTF_TYPES};
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// The magic number in the first two bytes of a BTF header.
pub const BTF_MAGIC: u16 = 0xeb9f;
/// Bytes of the header this parser reads (`btf_header` of version 1).
pub const HEADER_LEN: usize = 24;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Logged at debug level: lookups of members that only some kernel versions have are
/// expected to fail; callers that need a member say so louder.
fn not_found(what: core::fmt::Arguments) -> Error {
    log::debug!("BTF: {what}");
    Error::new(ErrorOrigin::Os, ErrorKind::NotFound)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// The sizes a BTF header gives: the whole section is `total` bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BtfHeader {
    /// Header length (where the type and string offsets count from).
    pub hdr_len: u32,
    /// Offset of the type records.
    pub type_off: u32,
    /// Length of the type records.
    pub type_len: u32,
    /// Offset of the strings.
    pub str_off: u32,
    /// Length of the strings.
    pub str_len: u32,
}

impl BtfHeader {
    /// Parses a little-endian version-1 header; `None` if `bytes` does not start with one or
    /// its sections overlap the header.
    pub fn parse(bytes: &[u8]) -> Option<BtfHeader> {
        let magic = u16::from_le_bytes(bytes.get(0..2)?.try_into().ok()?);
        if magic != BTF_MAGIC || bytes.get(2) != Some(&1) {
            return None;
        }
        let h = BtfHeader {
            hdr_len: u32_at(bytes, 4)?,
            type_off: u32_at(bytes, 8)?,
            type_len: u32_at(bytes, 12)?,
            str_off: u32_at(bytes, 16)?,
            str_len: u32_at(bytes, 20)?,
        };
        let sane = h.hdr_len as usize >= HEADER_LEN && h.hdr_len < 256 && h.type_len > 0 && h.str_len > 0;
        let type_end = h.type_off.checked_add(h.type_len)?;
        let str_end = h.str_off.checked_add(h.str_len)?;
        (sane && (type_end <= h.str_off || str_end <= h.type_off)).then_some(h)
    }

    /// The length of the whole section: header, types and strings.
    pub fn total(&self) -> usize {
        let types = self.type_off as usize + self.type_len as usize;
        let strings = self.str_off as usize + self.str_len as usize;
        self.hdr_len as usize + types.max(strings)
    }
}

/// A BTF type id (0 is `void`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeId(pub u32);

/// Where a member sits in its (outermost) structure.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Offset in bytes from the start of the structure the path started at.
    pub offset: u32,
    /// The member's type (as declared, not resolved).
    pub ty: TypeId,
}

/// The type records and strings of a `.BTF` section, with an index from type id to record.
pub struct Btf {
    types: Vec<u8>,
    strings: Vec<u8>,
    /// Offset of the record of type id `i + 1` in `types`.
    records: Vec<u32>,
}

impl core::fmt::Debug for Btf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.records.len())
            .field("type_bytes", &self.types.len())
            .field("string_bytes", &self.strings.len())
            .finish()
    }
}

/// The fixed part of a type record.
#[derive(Copy, Clone, Debug)]
struct Record {
    at: usize,
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    /// Size (integers, structures, unions, enums) or referenced type (pointers, typedefs,
    /// qualifiers).
    size_or_type: u32,
}

impl Btf {
    /// Parses a whole `.BTF` section (header, types, strings) and indexes its types.
    pub fn parse(section: &[u8]) -> Result<Btf> {
        let h = BtfHeader::parse(section).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::Malformed).with_reason(format_args!("BTF: no version 1 header"))
        })?;
        if section.len() < h.total() {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed).with_reason(format_args!(
                "BTF: section has {} bytes, the header says {}",
                section.len(),
                h.total()
            )));
        }
        let base = h.hdr_len as usize;
        let types = section[base + h.type_off as usize..][..h.type_len as usize].to_vec();
        let strings = section[base + h.str_off as usize..][..h.str_len as usize].to_vec();
        let mut btf = Btf { types, strings, records: Vec::new() };
        let mut at = 0usize;
        while at < btf.types.len() {
            if btf.records.len() >= MAX_BTF_TYPES {
                return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                    .with_reason(format_args!("BTF: more than {MAX_BTF_TYPES} types")));
            }
            let rec = btf.record_at(at).ok_or_else(|| {
                Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                    .with_reason(format_args!("BTF: type record at {at:#x} is cut off"))
            })?;
            let data = Self::data_len(&rec).ok_or_else(|| {
                Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                    .with_reason(format_args!("BTF: unknown type kind {}", rec.kind))
            })?;
            let end = at + 12 + data;
            if end > btf.types.len() {
                return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                    .with_reason(format_args!("BTF: type record at {at:#x} runs past the type section")));
            }
            btf.records.push(at as u32);
            at = end;
        }
        Ok(btf)
    }

    /// The number of types (the highest type id).
    pub fn type_count(&self) -> usize {
        self.records.len()
    }

    /// Bytes of kind-specific data after the fixed part of a record.
    fn data_len(rec: &Record) -> Option<usize> {
        Some(match rec.kind {
            KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * rec.vlen,
            KIND_ENUM | KIND_FUNC_PROTO => 8 * rec.vlen,
            KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_FUNC
            | KIND_FLOAT | KIND_TYPE_TAG => 0,
            _ => return None,
        })
    }

    fn record_at(&self, at: usize) -> Option<Record> {
        let info = u32_at(&self.types, at + 4)?;
        Some(Record {
            at,
            name_off: u32_at(&self.types, at)?,
            kind: (info >> 24) & 0x1f,
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 == 1,
            size_or_type: u32_at(&self.types, at + 8)?,
        })
    }

    fn record(&self, id: TypeId) -> Option<Record> {
        let at = *self.records.get((id.0 as usize).checked_sub(1)?)?;
        self.record_at(at as usize)
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    /// The structure (or union) named `name` that has a body (not a forward declaration).
    pub fn find_struct(&self, name: &str) -> Result<TypeId> {
        (1..=self.records.len() as u32)
            .map(TypeId)
            .find(|&id| {
                self.record(id).is_some_and(|r| {
                    matches!(r.kind, KIND_STRUCT | KIND_UNION) && self.name(r.name_off) == name.as_bytes()
                })
            })
            .ok_or_else(|| not_found(format_args!("no structure `{name}`")))
    }

    /// The type `id` refers to once typedefs and qualifiers (const, volatile, restrict, type
    /// tags) are looked through.
    pub fn resolve(&self, mut id: TypeId) -> TypeId {
        for _ in 0..MAX_BTF_DEPTH {
            match self.record(id) {
                Some(r)
                    if matches!(r.kind, KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG) =>
                {
                    id = TypeId(r.size_or_type)
                }
                _ => break,
            }
        }
        id
    }

    /// The size in bytes of a value of type `id`; `None` for types without one (void,
    /// functions, forward declarations), arrays nested deeper than [`MAX_BTF_DEPTH`] (an
    /// array of itself) and sizes that overflow.
    pub fn size_of(&self, id: TypeId) -> Option<u32> {
        let mut id = id;
        let mut count = 1u32;
        for _ in 0..MAX_BTF_DEPTH {
            let id_now = self.resolve(id);
            let r = self.record(id_now)?;
            let size = match r.kind {
                KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => r.size_or_type,
                KIND_PTR => 8,
                KIND_ARRAY => {
                    let (elem, n) = self.array(id_now)?;
                    count = count.checked_mul(n)?;
                    id = elem;
                    continue;
                }
                _ => return None,
            };
            return size.checked_mul(count);
        }
        None
    }

    /// Element type and element count of the array type `id` (after resolving).
    pub fn array(&self, id: TypeId) -> Option<(TypeId, u32)> {
        let r = self.record(self.resolve(id))?;
        (r.kind == KIND_ARRAY)
            .then(|| Some((TypeId(u32_at(&self.types, r.at + 12)?), u32_at(&self.types, r.at + 20)?)))?
    }

    /// The member `name` of the structure or union `container`, searching anonymous
    /// structures and unions inside it too (depth first, in member order). The offset is in
    /// bytes from `container`'s start; bitfields that do not start on a byte are not found.
    /// Each type is searched at most once per lookup and at most [`MAX_BTF_DEPTH`] levels
    /// deep, so anonymous members that contain their own container (a cycle) or share types
    /// cannot make the lookup run away.
    pub fn member(&self, container: TypeId, name: &str) -> Option<Member> {
        self.member_in(container, name.as_bytes(), 0, &mut HashSet::new())
    }

    fn member_in(&self, container: TypeId, name: &[u8], depth: usize, searched: &mut HashSet<u32>) -> Option<Member> {
        let container = self.resolve(container);
        // A type searched before (on this path: a cycle; or done: it has no such member).
        if depth > MAX_BTF_DEPTH || !searched.insert(container.0) {
            return None;
        }
        let r = self.record(container)?;
        if !matches!(r.kind, KIND_STRUCT | KIND_UNION) {
            return None;
        }
        for i in 0..r.vlen {
            let at = r.at + 12 + 12 * i;
            let (m_name, m_type, m_off) =
                (u32_at(&self.types, at)?, TypeId(u32_at(&self.types, at + 4)?), u32_at(&self.types, at + 8)?);
            let bit_offset = if r.kind_flag { m_off & 0x00ff_ffff } else { m_off };
            if m_name == 0 {
                if let Some(inner) = self.member_in(m_type, name, depth + 1, searched) {
                    if bit_offset % 8 == 0 {
                        return Some(Member { offset: inner.offset.checked_add(bit_offset / 8)?, ty: inner.ty });
                    }
                }
            } else if self.name(m_name) == name && bit_offset % 8 == 0 {
                return Some(Member { offset: bit_offset / 8, ty: m_type });
            }
        }
        None
    }

    /// The member at the dotted `path` (e.g. `f_path.dentry`) of the structure named
    /// `structure`, with its offset from the structure's start. A path through an array
    /// member goes into its first element (`mem.base` is `mem[0].base`).
    pub fn member_path(&self, structure: &str, path: &str) -> Result<Member> {
        let mut ty = self.find_struct(structure)?;
        let mut offset = 0u32;
        let mut found = None;
        for part in path.split('.') {
            // An array is entered at its first element.
            if let Some((elem, _)) = self.array(ty) {
                ty = elem;
            }
            let m = self
                .member(ty, part)
                .ok_or_else(|| not_found(format_args!("structure `{structure}` has no member `{path}`")))?;
            offset = offset.checked_add(m.offset).ok_or_else(|| {
                Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                    .with_reason(format_args!("BTF: offset of `{structure}.{path}` overflows"))
            })?;
            ty = m.ty;
            found = Some(Member { offset, ty });
        }
        found.ok_or_else(|| not_found(format_args!("empty member path in `{structure}`")))
    }

    /// The byte offset of the member at `path` of the structure `structure`.
    pub fn offset_of(&self, structure: &str, path: &str) -> Result<u32> {
        Ok(self.member_path(structure, path)?.offset)
    }

    /// The size in bytes of the structure named `structure`.
    pub fn struct_size(&self, structure: &str) -> Result<u32> {
        let id = self.find_struct(structure)?;
        self.size_of(id).ok_or_else(|| {
            Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                .with_reason(format_args!("BTF: structure `{structure}` has no size"))
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Builds BTF sections by hand.
    #[derive(Default)]
    pub(crate) struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        count: u32,
    }

    impl BtfBuilder {
        pub(crate) fn new() -> Self {
            BtfBuilder { strings: vec![0], ..Default::default() }
        }

        fn name(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }

        pub(crate) fn push(
            &mut self,
            name: &str,
            kind: u32,
            vlen: u32,
            kind_flag: bool,
            size_or_type: u32,
            data: &[u32],
        ) -> TypeId {
            let name = self.name(name);
            let info = kind << 24 | vlen | (kind_flag as u32) << 31;
            for v in [name, info, size_or_type].iter().chain(data) {
                self.types.extend_from_slice(&v.to_le_bytes());
            }
            self.count += 1;
            TypeId(self.count)
        }

        pub(crate) fn int(&mut self, name: &str, size: u32) -> TypeId {
            self.push(name, KIND_INT, 0, false, size, &[size * 8])
        }

        pub(crate) fn ptr(&mut self, to: TypeId) -> TypeId {
            self.push("", KIND_PTR, 0, false, to.0, &[])
        }

        pub(crate) fn typedef(&mut self, name: &str, to: TypeId) -> TypeId {
            self.push(name, KIND_TYPEDEF, 0, false, to.0, &[])
        }

        pub(crate) fn array(&mut self, elem: TypeId, index: TypeId, count: u32) -> TypeId {
            self.push("", KIND_ARRAY, 0, false, 0, &[elem.0, index.0, count])
        }

        /// A structure (or union) with members `(name, type, bit offset)`; bitfields use
        /// `kind_flag` encoding with the given bit size when it is non-zero.
        pub(crate) fn structure(
            &mut self,
            name: &str,
            union: bool,
            size: u32,
            members: &[(&str, TypeId, u32, u32)],
        ) -> TypeId {
            let kind_flag = members.iter().any(|m| m.3 != 0);
            let mut data = vec![];
            for &(m_name, ty, bit_off, bits) in members {
                data.push(self.name(m_name));
                data.push(ty.0);
                data.push(if kind_flag { bits << 24 | bit_off } else { bit_off });
            }
            let kind = if union { KIND_UNION } else { KIND_STRUCT };
            self.push(name, kind, members.len() as u32, kind_flag, size, &data)
        }

        pub(crate) fn fwd(&mut self, name: &str) -> TypeId {
            self.push(name, KIND_FWD, 0, false, 0, &[])
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for v in [HEADER_LEN as u32, 0, self.types.len() as u32, self.types.len() as u32, self.strings.len() as u32]
            {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    #[test]
    fn members_through_typedefs_anonymous_unions_and_paths() {
        let mut b = BtfBuilder::new();
        let u32_t = b.int("unsigned int", 4);
        let u64_t = b.int("long unsigned int", 8);
        let flags_t = b.typedef("vm_flags_t", u64_t);
        b.fwd("inner");
        let inner = b.structure("inner", false, 16, &[("a", u64_t, 0, 0), ("b", u32_t, 64, 0)]);
        let anon_union = b.structure("", true, 8, &[("vm_flags", flags_t, 0, 0), ("__vm_flags", u64_t, 0, 0)]);
        let char_t = b.int("char", 1);
        let chars = b.array(char_t, u32_t, 16);
        let inners = b.array(inner, u32_t, 2);
        let outer = b.structure(
            "outer",
            false,
            64,
            &[
                ("x", u32_t, 0, 0),
                ("", anon_union, 64, 0),
                ("in", inner, 128, 0),
                ("comm", chars, 256, 0),
                ("bits", u32_t, 387, 3),
                ("arr", inners, 256, 0),
            ],
        );
        let ptr = b.ptr(outer);
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(btf.type_count() as u32, ptr.0);
        assert_eq!(btf.find_struct("inner").unwrap(), inner, "the forward declaration is skipped");
        assert_eq!(btf.offset_of("outer", "vm_flags").unwrap(), 8);
        assert_eq!(btf.offset_of("outer", "in.b").unwrap(), 24);
        assert_eq!(btf.offset_of("outer", "arr.b").unwrap(), 40, "first element of an array");
        assert_eq!(btf.member_path("outer", "comm").unwrap().ty, chars);
        assert_eq!(btf.array(chars).map(|a| a.1), Some(16));
        assert_eq!(btf.size_of(chars), Some(16));
        assert_eq!(btf.size_of(flags_t), Some(8));
        assert_eq!(btf.size_of(ptr), Some(8));
        assert_eq!(btf.struct_size("outer").unwrap(), 64);
        assert_eq!(btf.offset_of("outer", "bits").unwrap_err().kind, ErrorKind::NotFound, "not byte aligned");
        assert_eq!(btf.offset_of("outer", "nope").unwrap_err().kind, ErrorKind::NotFound);
        assert_eq!(btf.find_struct("absent").unwrap_err().kind, ErrorKind::NotFound);
    }

    #[test]
    fn garbage_is_refused() {
        let mut b = BtfBuilder::new();
        b.int("int", 4);
        let good = b.build();
        assert!(Btf::parse(&good).is_ok());
        assert!(Btf::parse(&good[..good.len() - 1]).is_err());
        let mut bad_kind = good.clone();
        bad_kind[HEADER_LEN + 7] = 30; // kind 30 in the top byte of `info`
        assert_eq!(Btf::parse(&bad_kind).unwrap_err().kind, ErrorKind::Malformed);
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        assert!(BtfHeader::parse(&bad_magic).is_none());
        // Found by the `btf` fuzz target: the magic alone (a `__start_BTF` two bytes before
        // `__stop_BTF`) panicked on the version byte.
        for len in 0..HEADER_LEN {
            assert!(BtfHeader::parse(&good[..len]).is_none(), "{len} bytes");
            assert_eq!(Btf::parse(&good[..len]).unwrap_err().kind, ErrorKind::Malformed);
        }
        // A structure claiming more members than there are bytes.
        let mut big = good.clone();
        big[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&(KIND_STRUCT << 24 | 0xffff).to_le_bytes());
        assert_eq!(Btf::parse(&big).unwrap_err().kind, ErrorKind::Malformed);
    }

    #[test]
    fn anonymous_members_that_contain_their_container_end() {
        // `task_struct` with three anonymous members of type `task_struct` (a cycle), and a
        // chain of 40 structures each with three anonymous members of the next (3^40 paths
        // without memoisation).
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let own = TypeId(b.count + 1);
        let task = b.structure("task_struct", false, 64, &[("", own, 0, 0), ("", own, 0, 0), ("", own, 0, 0)]);
        assert_eq!(task, own);
        let mut next = b.structure("leaf", false, 8, &[("deep", int, 32, 0)]);
        for level in 0..40 {
            let name = if level == 39 { "top" } else { "" };
            next = b.structure(name, false, 8, &[("", next, 0, 0), ("", next, 0, 0), ("", next, 0, 0)]);
        }
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(btf.offset_of("task_struct", "comm").unwrap_err().kind, ErrorKind::NotFound);
        assert_eq!(btf.member(next, "nothing"), None);
        // Deeper than MAX_BTF_DEPTH: not found, but found within it.
        assert_eq!(btf.member(next, "deep"), None);
        assert_eq!(btf.member(TypeId(next.0 - 10), "deep").map(|m| m.offset), Some(4));
    }

    #[test]
    fn self_referencing_types_have_no_size() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        // An array of itself, a typedef of itself, an array of 2^31 arrays of 2^31 ints.
        let own = TypeId(b.count + 1);
        let arr = b.array(own, int, 2);
        let tdef = TypeId(b.count + 1);
        b.typedef("loop", tdef);
        let big = b.array(int, int, 1 << 31);
        let bigger = b.array(big, int, 1 << 31);
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(btf.size_of(arr), None);
        assert_eq!(btf.size_of(tdef), None);
        assert_eq!(btf.size_of(bigger), None, "overflows");
        assert_eq!(btf.size_of(TypeId(1000)), None, "out of range");
    }
}
