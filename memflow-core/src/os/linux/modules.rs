//! Kernel modules: the facts of a `struct module`, the memory it occupies, its symbol table
//! and its sections.
//!
//! A module's symbols are the ELF symbols the loader kept (`mod_kallsyms`: an `Elf64_Sym`
//! array, the string table their names point into and one type letter per symbol), which is
//! what `/proc/kallsyms` lists for it. Its sections are what sysfs lists in
//! `/sys/module/NAME/sections`: names and addresses, no sizes. Counts and lengths come from
//! guest memory and are bounded by the limits in [`super::limits`].

use std::collections::HashSet;

use super::limits::{
    MAX_MODULE_EXPORTS, MAX_MODULE_SECTIONS, MAX_MODULE_STRTAB, MAX_MODULE_SYMBOLS, MAX_RECORD_BATCH_BYTES,
    MAX_SECTION_NAME, MAX_SYMBOL_NAME,
};
use super::record::{Record, Span};
use super::Kernel;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::MemoryView;
use crate::os::{ModuleInfo, SectionInfo};
use crate::types::{umem, Address};

/// Bytes of one `Elf64_Sym`: name offset (`u32`), info, other (`u8`), section index
/// (`u16`), value and size (`u64`).
const ELF64_SYM: u32 = 24;
/// Offset of `st_value` in an `Elf64_Sym`.
const ST_VALUE: u32 = 8;

/// A `struct module` as read: its facts and the memory it occupies.
pub struct Module {
    /// Name, base and size.
    pub info: ModuleInfo,
    /// Base and size of each allocation of the module (code and data; init memory too while
    /// the kernel keeps it).
    pub regions: Vec<(Address, umem)>,
}

impl Module {
    /// True if `address` lies in one of the module's allocations.
    pub fn holds(&self, address: Address) -> bool {
        self.region_of(address).is_some()
    }

    /// The base of the allocation that holds `address`.
    pub fn region_of(&self, address: Address) -> Option<Address> {
        self.regions.iter().find(|&&(base, size)| address >= base && address - base < size).map(|r| r.0)
    }
}

/// One entry of a module's symbol table.
pub struct ModuleSymbol {
    /// Symbol name.
    pub name: String,
    /// Its address (`st_value`).
    pub address: Address,
    /// Its type letter, as `/proc/kallsyms` shows it.
    pub kind: u8,
}

/// Reads the `struct module` at `address`.
pub fn read<V: MemoryView>(view: &mut V, kernel: &Kernel, address: Address) -> Result<Module> {
    let l = &kernel.layout.module;
    let m = Record::read(view, address, l.span, "a struct module")?;
    let regions: Vec<(Address, umem)> = l
        .bases
        .iter()
        .zip(&l.sizes)
        .map(|(&base, &size)| (m.addr(base), m.u32(size) as umem))
        .filter(|&(base, size)| !base.is_null() && size > 0)
        .collect();
    let info = ModuleInfo {
        address,
        parent: Address::NULL,
        base: m.addr(l.base),
        size: l.sizes.iter().map(|&at| m.u32(at) as umem).fold(0, umem::saturating_add),
        name: m.text(l.name, l.name_len as usize).as_str().into(),
        path: "".into(),
        arch: kernel.arch,
    };
    Ok(Module { info, regions })
}

/// The `count` elements of `size` bytes from byte `start` of a structure; `Malformed` if the
/// offsets (from BTF) overflow.
fn span(start: u32, count: u32, size: u32, what: &str) -> Result<Span> {
    match count.checked_mul(size).and_then(|len| start.checked_add(len)) {
        Some(end) => Ok(Span { start, end }),
        None => Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
            .with_reason(format_args!("BTF: {count} × {size} bytes at offset {start} of {what} overflow"))),
    }
}

/// The pointer at byte `offset` of the structure `what` at `base`.
fn pointer<V: MemoryView>(view: &mut V, base: Address, offset: u32, what: &str) -> Result<Address> {
    let r = Record::read(view, base, span(offset, 1, 8, what)?, what)?;
    Ok(r.addr(offset))
}

/// The NUL-terminated name at `at` in `bytes`, at most `max` bytes long.
fn name_at(bytes: &[u8], at: usize, max: usize) -> String {
    let raw = bytes.get(at..).unwrap_or_default();
    let raw = &raw[..raw.len().min(max)];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The exported symbols (name and address) of the module at `module`: `EXPORT_SYMBOL`'s,
/// then `EXPORT_SYMBOL_GPL`'s.
pub fn exports<V: MemoryView>(view: &mut V, kernel: &Kernel, module: Address) -> Result<Vec<(String, Address)>> {
    let l = kernel.layout.module_exports.as_ref().ok_or_else(|| {
        Error::new(ErrorOrigin::Os, ErrorKind::Unsupported)
            .with_reason("BTF: this kernel has no `module.syms` / `struct kernel_symbol` to read module exports")
    })?;
    let fields = Span::covering("module", &[(l.syms.0, 8), (l.syms.1, 4), (l.gpl_syms.0, 8), (l.gpl_syms.1, 4)])?;
    let m = Record::read(view, module, fields, "a struct module")?;
    let mut out = Vec::new();
    for (table_at, count_at) in [l.syms, l.gpl_syms] {
        let (table, count) = (m.addr(table_at), m.u32(count_at));
        if count > MAX_MODULE_EXPORTS {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded).with_reason(format_args!(
                "module at {module}: {count} exports in one table, more than {MAX_MODULE_EXPORTS}"
            )));
        }
        if table.is_null() || count == 0 {
            continue;
        }
        let array = span(0, count, l.entry_size, "kernel_symbol")?;
        if array.end as usize > MAX_RECORD_BATCH_BYTES {
            return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded).with_reason(format_args!(
                "module at {module}: {count} exports of {} bytes are more than {MAX_RECORD_BATCH_BYTES} bytes",
                l.entry_size
            )));
        }
        let entries = Record::read(view, table, array, "a module's export table")?;
        for i in 0..count {
            // Inside `array`, which did not overflow.
            let at = i * l.entry_size;
            let field = |offset: u32| {
                let at = at.saturating_add(offset);
                if l.relative {
                    // A 32-bit offset from the field itself.
                    let delta = entries.u32(at) as i32 as i64 as u64;
                    Address::from((table.to_umem() as u64).wrapping_add(u64::from(at)).wrapping_add(delta))
                } else {
                    entries.addr(at)
                }
            };
            let name = view.read_raw(field(l.name), MAX_SYMBOL_NAME + 1).data_part()?;
            out.push((name_at(&name, 0, MAX_SYMBOL_NAME), field(l.value)));
        }
    }
    Ok(out)
}

/// Calls `visit` with every named symbol of the module at `module`, in table order, until it
/// returns `false`. A module without a table has no symbols. As in `/proc/kallsyms`, the
/// type letter of an exported symbol is upper case and of any other lower case (where the
/// exports can be read).
pub fn symbols<V: MemoryView>(
    view: &mut V,
    kernel: &Kernel,
    module: Address,
    mut visit: impl FnMut(ModuleSymbol) -> bool,
) -> Result<()> {
    let l = kernel.layout.module_symbols.as_ref().ok_or_else(|| {
        Error::new(ErrorOrigin::Os, ErrorKind::Unsupported)
            .with_reason("BTF: this kernel has no `module.kallsyms` / `struct mod_kallsyms` to read module symbols")
    })?;
    let table = pointer(view, module, l.kallsyms, "a struct module")?;
    if table.is_null() {
        return Ok(());
    }
    let t = Record::read(view, table, l.span, "a struct mod_kallsyms")?;
    let count = t.u32(l.num_symtab);
    if count > MAX_MODULE_SYMBOLS {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
            .with_reason(format_args!("module at {module}: {count} symbols, more than {MAX_MODULE_SYMBOLS}")));
    }
    let symtab = Record::read(view, t.addr(l.symtab), span(0, count, ELF64_SYM, "a symtab")?, "a module symtab")?;
    let types = Record::read(view, t.addr(l.typetab), span(0, count, 1, "a typetab")?, "a module typetab")?;
    let name_offsets: Vec<u32> = (0..count).map(|i| symtab.u32(i * ELF64_SYM)).collect();
    // The names end somewhere after the last one starts.
    let strtab_len = name_offsets.iter().max().map_or(0, |&last| u64::from(last) + MAX_SYMBOL_NAME as u64 + 1);
    if strtab_len > MAX_MODULE_STRTAB {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded).with_reason(format_args!(
            "module at {module}: symbol names reach {strtab_len} bytes into the string table, more than {MAX_MODULE_STRTAB}"
        )));
    }
    // The table's end may border unmapped memory: unreadable bytes read as zero.
    let strtab = view.read_raw(t.addr(l.strtab), strtab_len as usize).data_part()?;
    let exported: Option<HashSet<(String, Address)>> = match kernel.layout.module_exports {
        Some(_) => Some(exports(view, kernel, module)?.into_iter().collect()),
        None => None,
    };
    for (i, &name_off) in (0..count).zip(&name_offsets) {
        let name = name_at(&strtab, name_off as usize, MAX_SYMBOL_NAME);
        if name.is_empty() {
            continue;
        }
        let address = symtab.addr(i * ELF64_SYM + ST_VALUE);
        let kind = types.bytes(i, 1).first().copied().unwrap_or(b'?');
        let kind = match &exported {
            Some(set) if set.contains(&(name.clone(), address)) => kind.to_ascii_uppercase(),
            Some(_) => kind.to_ascii_lowercase(),
            None => kind,
        };
        if !visit(ModuleSymbol { name, address, kind }) {
            break;
        }
    }
    Ok(())
}

/// Calls `visit` with every section of the module at `module` (size 0: the kernel keeps no
/// section sizes), until it returns `false`. A module without section attributes has none.
pub fn sections<V: MemoryView>(
    view: &mut V,
    kernel: &Kernel,
    module: Address,
    mut visit: impl FnMut(SectionInfo) -> bool,
) -> Result<()> {
    let l = kernel.layout.module_sections.as_ref().ok_or_else(|| {
        Error::new(ErrorOrigin::Os, ErrorKind::Unsupported).with_reason(
            "BTF: this kernel has no `module.sect_attrs` / `struct module_sect_attrs` to read module sections",
        )
    })?;
    let attrs = pointer(view, module, l.sect_attrs, "a struct module")?;
    if attrs.is_null() {
        return Ok(());
    }
    let head = Record::read(view, attrs, span(l.nsections, 1, 4, "module_sect_attrs")?, "a module_sect_attrs")?;
    let count = head.u32(l.nsections);
    if count > MAX_MODULE_SECTIONS {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded)
            .with_reason(format_args!("module at {module}: {count} sections, more than {MAX_MODULE_SECTIONS}")));
    }
    let array = span(l.attrs, count, l.attr_size, "module_sect_attrs")?;
    if (array.end - array.start) as usize > MAX_RECORD_BATCH_BYTES {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::LimitExceeded).with_reason(format_args!(
            "module at {module}: {count} sections of {} bytes are more than {MAX_RECORD_BATCH_BYTES} bytes",
            l.attr_size
        )));
    }
    let entries = Record::read(view, attrs, array, "the module_sect_attr array")?;
    for i in 0..count {
        // Inside `array`, which did not overflow; `Record` reads 0 outside it.
        let at = l.attrs + i * l.attr_size;
        let field = |offset: u32| entries.addr(at.saturating_add(offset));
        let name = view.read_raw(field(l.name), MAX_SECTION_NAME).data_part()?;
        let section =
            SectionInfo { name: name_at(&name, 0, MAX_SECTION_NAME).as_str().into(), base: field(l.address), size: 0 };
        if !visit(section) {
            break;
        }
    }
    Ok(())
}
