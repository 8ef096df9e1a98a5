//! Where the kernel keeps the fields the layer reads, resolved once from BTF.
//!
//! Every offset comes from the running kernel's own type information, so the layer follows
//! whatever configuration and version the kernel was built with. Where kernels differ in
//! shape rather than in offsets, both shapes are known: the VMAs of an address space are in
//! a maple tree (`mm_struct.mm_mt`, since 6.1) or a linked list (`mm_struct.mmap`, before);
//! a module's memory is `core_layout` (up to 6.3) or `mem[MOD_TEXT]` (since 6.4), and its
//! size is the sum `/proc/modules` shows on either (all layouts or all memory types).

use super::btf::Btf;
use super::limits::{MAX_MAPLE_NODE, MAX_MAPLE_SLOTS, MAX_MODULE_MEMORY_TYPES, MAX_NAME_ARRAY};
use super::record::Span;
use crate::error::{Error, ErrorKind, ErrorOrigin, Result};

/// Size of a pointer or `unsigned long`.
const WORD: u32 = 8;

/// `struct task_struct`.
#[derive(Clone, Debug)]
pub struct TaskLayout {
    /// `tasks`: the list of thread-group leaders.
    pub tasks: u32,
    /// `pid`: the thread id.
    pub pid: u32,
    /// `tgid`: the process id.
    pub tgid: u32,
    /// `comm`: the name.
    pub comm: u32,
    /// Length of `comm`.
    pub comm_len: u32,
    /// `real_parent`.
    pub real_parent: u32,
    /// `mm`: the address space (NULL for kernel threads).
    pub mm: u32,
    /// `exit_state`: zombie or dead when non-zero.
    pub exit_state: u32,
    /// The bytes that cover all of the above.
    pub span: Span,
    /// How a process's threads are linked, if BTF has the members.
    pub threads: Option<ThreadLinks>,
}

/// The list of a thread group: `signal_struct.thread_head` links every thread of it (the
/// leader too) through `task_struct.thread_node`.
#[derive(Clone, Debug)]
pub struct ThreadLinks {
    /// `task_struct.signal`: the thread group's `signal_struct`.
    pub signal: u32,
    /// `task_struct.thread_node`.
    pub thread_node: u32,
    /// `signal_struct.thread_head`.
    pub thread_head: u32,
}

/// How the VMAs of an address space are linked.
#[derive(Clone, Debug)]
pub enum VmaLinks {
    /// A maple tree (`mm_struct.mm_mt`).
    Maple {
        /// Offset of `mm_mt.ma_root` in `mm_struct`.
        root: u32,
        /// The node layouts.
        nodes: MapleLayout,
    },
    /// A sorted list (`mm_struct.mmap`, `vm_area_struct.vm_next`).
    List {
        /// Offset of `mmap` in `mm_struct`.
        first: u32,
        /// Offset of `vm_next` in `vm_area_struct`.
        next: u32,
    },
}

/// `struct mm_struct`.
#[derive(Clone, Debug)]
pub struct MmLayout {
    /// `pgd`: the top-level page table (a kernel virtual address).
    pub pgd: u32,
    /// `arg_start`: the command line in user memory.
    pub arg_start: u32,
    /// `arg_end`.
    pub arg_end: u32,
    /// `exe_file`: the executable.
    pub exe_file: u32,
    /// Where the VMAs are.
    pub vmas: VmaLinks,
    /// The bytes that cover the fields above (and the VMA root).
    pub span: Span,
}

/// `struct vm_area_struct`.
#[derive(Clone, Debug)]
pub struct VmaLayout {
    /// `vm_start`.
    pub start: u32,
    /// `vm_end`.
    pub end: u32,
    /// `vm_mm`: the address space it belongs to.
    pub mm: u32,
    /// `vm_flags`.
    pub flags: u32,
    /// `vm_file`.
    pub file: u32,
    /// `vm_pgoff`: offset into the file in pages.
    pub pgoff: u32,
    /// The bytes that cover the fields above (and `vm_next` where there is one).
    pub span: Span,
}

/// One kind of maple tree node: pivots, slots and the metadata that says where data ends.
#[derive(Clone, Debug)]
pub struct NodeLayout {
    /// Offset of the pivot array (`None` for dense nodes, which have none).
    pub pivots: Option<u32>,
    /// Offset of the slot array.
    pub slots: u32,
    /// Number of slots (one more than pivots).
    pub slot_count: u32,
    /// Offset of `meta.end`, the index of the last used slot, where the node keeps it.
    pub meta_end: Option<u32>,
}

/// `struct maple_node` in its three shapes.
#[derive(Clone, Debug)]
pub struct MapleLayout {
    /// Bytes per node.
    pub node_size: u32,
    /// Dense nodes (slots only).
    pub dense: NodeLayout,
    /// `maple_range_64`: leaves and internal nodes of plain trees.
    pub range64: NodeLayout,
    /// `maple_arange_64`: internal nodes of allocation trees (with gaps).
    pub arange64: NodeLayout,
}

/// `struct file`, `struct dentry`, `struct vfsmount` and `struct mount`: enough to spell a
/// file's path.
#[derive(Clone, Debug)]
pub struct PathLayout {
    /// `file.f_path.mnt`.
    pub file_mnt: u32,
    /// `file.f_path.dentry`.
    pub file_dentry: u32,
    /// `dentry.d_parent`.
    pub d_parent: u32,
    /// `dentry.d_name.len`.
    pub d_name_len: u32,
    /// `dentry.d_name.name`.
    pub d_name_name: u32,
    /// The bytes of a file that cover the two fields above.
    pub file_span: Span,
    /// The bytes of a dentry that cover the three fields above.
    pub dentry_span: Span,
    /// `vfsmount.mnt_root`.
    pub mnt_root: u32,
    /// Offset of the `vfsmount` inside its `struct mount` (`mount.mnt`).
    pub mount_mnt: u32,
    /// `mount.mnt_parent`.
    pub mnt_parent: u32,
    /// `mount.mnt_mountpoint`.
    pub mnt_mountpoint: u32,
    /// The bytes of a mount that cover the two fields above.
    pub mount_span: Span,
}

/// `struct module`.
#[derive(Clone, Debug)]
pub struct ModuleLayout {
    /// `list`: the list of modules.
    pub list: u32,
    /// `name`.
    pub name: u32,
    /// Length of `name`.
    pub name_len: u32,
    /// Base of the module's code (`core_layout.base` or `mem[0].base`).
    pub base: u32,
    /// The `unsigned int` sizes whose sum is the module's size as `/proc/modules` counts it:
    /// `core_layout.size`, `init_layout.size` and `data_layout.size` where it exists (up to
    /// 6.3), or `mem[i].size` for every memory type (since 6.4).
    pub sizes: Vec<u32>,
    /// The base pointer of the memory each of `sizes` counts, at the same index.
    pub bases: Vec<u32>,
    /// The bytes that cover the fields above.
    pub span: Span,
}

/// A module's symbol table: `module.kallsyms` points to a `struct mod_kallsyms` (after
/// loading, the module's own `core_kallsyms`) with the ELF symbols, their names and types.
#[derive(Clone, Debug)]
pub struct ModuleSymbolsLayout {
    /// `module.kallsyms`.
    pub kallsyms: u32,
    /// `mod_kallsyms.symtab`: `Elf64_Sym[num_symtab]`.
    pub symtab: u32,
    /// `mod_kallsyms.num_symtab`.
    pub num_symtab: u32,
    /// `mod_kallsyms.strtab`: the names the symbols' `st_name` point into.
    pub strtab: u32,
    /// `mod_kallsyms.typetab`: one type letter per symbol.
    pub typetab: u32,
    /// The bytes of a `mod_kallsyms` that cover the four fields above.
    pub span: Span,
}

/// A module's exported symbols (`EXPORT_SYMBOL` and `EXPORT_SYMBOL_GPL`): `module.syms` and
/// `module.gpl_syms`, arrays of `struct kernel_symbol` of `num_syms` and `num_gpl_syms`
/// elements.
#[derive(Clone, Debug)]
pub struct ModuleExportsLayout {
    /// `module.syms` and `module.num_syms`.
    pub syms: (u32, u32),
    /// `module.gpl_syms` and `module.num_gpl_syms`.
    pub gpl_syms: (u32, u32),
    /// The size of one `struct kernel_symbol`.
    pub entry_size: u32,
    /// `kernel_symbol.value_offset` / `value`.
    pub value: u32,
    /// `kernel_symbol.name_offset` / `name`.
    pub name: u32,
    /// True if the two fields are 32-bit offsets from the field itself
    /// (`CONFIG_HAVE_ARCH_PREL32_RELOCATIONS`), false if they are pointers.
    pub relative: bool,
}

/// A module's sections as sysfs shows them (`/sys/module/NAME/sections`): `module.sect_attrs`
/// points to a `struct module_sect_attrs` with `nsections` elements `attrs[]`, each a
/// `struct module_sect_attr` with the name (`battr.attr.name`) and the address.
#[derive(Clone, Debug)]
pub struct ModuleSectionsLayout {
    /// `module.sect_attrs`.
    pub sect_attrs: u32,
    /// `module_sect_attrs.nsections`.
    pub nsections: u32,
    /// `module_sect_attrs.attrs`.
    pub attrs: u32,
    /// The size of one `struct module_sect_attr`.
    pub attr_size: u32,
    /// `module_sect_attr.battr.attr.name`.
    pub name: u32,
    /// `module_sect_attr.address`.
    pub address: u32,
}

/// Everything the layer reads, from BTF.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `task_struct`.
    pub task: TaskLayout,
    /// `mm_struct`.
    pub mm: MmLayout,
    /// `vm_area_struct`.
    pub vma: VmaLayout,
    /// Files and paths.
    pub path: PathLayout,
    /// `module`.
    pub module: ModuleLayout,
    /// Module symbol tables, if BTF has every structure and member they need.
    pub module_symbols: Option<ModuleSymbolsLayout>,
    /// Module exports, if BTF has every structure and member they need.
    pub module_exports: Option<ModuleExportsLayout>,
    /// Module sections, if BTF has every structure and member they need.
    pub module_sections: Option<ModuleSectionsLayout>,
}

/// The offset of the member at `path` of `structure`, which the layer cannot do without: the
/// error is logged with both names.
fn required(btf: &Btf, structure: &str, path: &str) -> Result<u32> {
    btf.offset_of(structure, path)
        .map_err(|e| e.with_reason(format_args!("BTF: the kernel's `{structure}` has no member `{path}`")))
}

/// The offset of the member at `path` of `structure`, if this kernel has it.
fn optional(btf: &Btf, structure: &str, path: &str) -> Option<u32> {
    btf.offset_of(structure, path).ok()
}

/// The length of the array member at `path` of `structure`, which must lie in `range`
/// (the lengths come from BTF, which the guest could have changed).
fn array_len(btf: &Btf, structure: &str, path: &str, range: core::ops::RangeInclusive<u32>) -> Result<u32> {
    let m = btf
        .member_path(structure, path)
        .map_err(|e| e.with_reason(format_args!("BTF: the kernel's `{structure}` has no member `{path}`")))?;
    let reason = match btf.array(m.ty) {
        Some((_, n)) if range.contains(&n) => return Ok(n),
        Some((_, n)) => format!("has {n} elements, not {} to {}", range.start(), range.end()),
        None => "is not an array".to_string(),
    };
    Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
        .with_reason(format_args!("BTF: `{structure}.{path}` {reason}")))
}

impl Layout {
    /// Resolves every offset; the error names the first structure or member that is missing.
    pub fn from_btf(btf: &Btf) -> Result<Layout> {
        Ok(Layout {
            task: TaskLayout::from_btf(btf)?,
            mm: MmLayout::from_btf(btf)?,
            vma: VmaLayout::from_btf(btf)?,
            path: PathLayout::from_btf(btf)?,
            module: ModuleLayout::from_btf(btf)?,
            module_symbols: ModuleSymbolsLayout::from_btf(btf),
            module_exports: ModuleExportsLayout::from_btf(btf),
            module_sections: ModuleSectionsLayout::from_btf(btf),
        })
    }
}

impl TaskLayout {
    fn from_btf(btf: &Btf) -> Result<Self> {
        let off = |path| required(btf, "task_struct", path);
        let comm_len = array_len(btf, "task_struct", "comm", 1..=MAX_NAME_ARRAY)?;
        let mut t = TaskLayout {
            tasks: off("tasks")?,
            pid: off("pid")?,
            tgid: off("tgid")?,
            comm: off("comm")?,
            comm_len,
            real_parent: off("real_parent")?,
            mm: off("mm")?,
            exit_state: off("exit_state")?,
            span: Span { start: 0, end: 0 },
            threads: ThreadLinks::from_btf(btf),
        };
        t.span = Span::covering(
            "task_struct",
            &[
                (t.tasks, 2 * WORD),
                (t.pid, 4),
                (t.tgid, 4),
                (t.comm, t.comm_len),
                (t.real_parent, WORD),
                (t.mm, WORD),
                (t.exit_state, 4),
            ],
        )?;
        Ok(t)
    }
}

impl ThreadLinks {
    fn from_btf(btf: &Btf) -> Option<Self> {
        Some(ThreadLinks {
            signal: optional(btf, "task_struct", "signal")?,
            thread_node: optional(btf, "task_struct", "thread_node")?,
            thread_head: optional(btf, "signal_struct", "thread_head")?,
        })
    }
}

impl MmLayout {
    fn from_btf(btf: &Btf) -> Result<Self> {
        let off = |path| required(btf, "mm_struct", path);
        let vmas = match optional(btf, "mm_struct", "mm_mt.ma_root") {
            Some(root) => VmaLinks::Maple { root, nodes: MapleLayout::from_btf(btf)? },
            None => VmaLinks::List { first: off("mmap")?, next: required(btf, "vm_area_struct", "vm_next")? },
        };
        let vma_root = match vmas {
            VmaLinks::Maple { root, .. } => root,
            VmaLinks::List { first, .. } => first,
        };
        let (pgd, arg_start, arg_end, exe_file) = (off("pgd")?, off("arg_start")?, off("arg_end")?, off("exe_file")?);
        let span = Span::covering(
            "mm_struct",
            &[(pgd, WORD), (arg_start, WORD), (arg_end, WORD), (exe_file, WORD), (vma_root, WORD)],
        )?;
        Ok(MmLayout { pgd, arg_start, arg_end, exe_file, vmas, span })
    }
}

impl VmaLayout {
    fn from_btf(btf: &Btf) -> Result<Self> {
        let off = |path| required(btf, "vm_area_struct", path);
        let (start, end, mm, flags, file, pgoff) =
            (off("vm_start")?, off("vm_end")?, off("vm_mm")?, off("vm_flags")?, off("vm_file")?, off("vm_pgoff")?);
        let mut fields = vec![(start, WORD), (end, WORD), (mm, WORD), (flags, WORD), (file, WORD), (pgoff, WORD)];
        if let Some(next) = optional(btf, "vm_area_struct", "vm_next") {
            fields.push((next, WORD));
        }
        Ok(VmaLayout { start, end, mm, flags, file, pgoff, span: Span::covering("vm_area_struct", &fields)? })
    }
}

impl NodeLayout {
    fn from_btf(btf: &Btf, structure: &str) -> Result<Self> {
        let meta = required(btf, structure, "meta")?.checked_add(required(btf, "maple_metadata", "end")?);
        Ok(NodeLayout {
            pivots: Some(required(btf, structure, "pivot")?),
            slots: required(btf, structure, "slot")?,
            slot_count: array_len(btf, structure, "slot", 2..=MAX_MAPLE_SLOTS)?,
            meta_end: Some(meta.unwrap_or(u32::MAX)),
        })
    }

    /// True if every field lies inside a node of `node_size` bytes.
    fn fits(&self, node_size: u32) -> bool {
        let slots_end = self.slots.checked_add(8 * self.slot_count);
        let pivots_end = self.pivots.map_or(Some(0), |p| p.checked_add(8 * (self.slot_count - 1)));
        let meta_end = self.meta_end.map_or(Some(0), |m| m.checked_add(1));
        [slots_end, pivots_end, meta_end].iter().all(|e| e.is_some_and(|e| e <= node_size))
    }
}

impl MapleLayout {
    /// The layout of Linux 6.1 on x86-64: 256-byte nodes, 31 slots in dense nodes, 16 in
    /// range nodes, 10 in arange nodes.
    pub fn linux_6_1() -> Self {
        MapleLayout {
            node_size: 256,
            dense: NodeLayout { pivots: None, slots: 8, slot_count: 31, meta_end: None },
            range64: NodeLayout { pivots: Some(8), slots: 128, slot_count: 16, meta_end: Some(248) },
            arange64: NodeLayout { pivots: Some(8), slots: 80, slot_count: 10, meta_end: Some(240) },
        }
    }

    /// The node layouts; every one must fit in a node of at most [`MAX_MAPLE_NODE`] bytes.
    fn from_btf(btf: &Btf) -> Result<Self> {
        let layout = MapleLayout {
            node_size: btf
                .struct_size("maple_node")
                .map_err(|e| e.with_reason("BTF: the kernel has no `maple_node`"))?,
            dense: NodeLayout {
                pivots: None,
                slots: required(btf, "maple_node", "slot")?,
                slot_count: array_len(btf, "maple_node", "slot", 2..=MAX_MAPLE_SLOTS)?,
                meta_end: None,
            },
            range64: NodeLayout::from_btf(btf, "maple_range_64")?,
            arange64: NodeLayout::from_btf(btf, "maple_arange_64")?,
        };
        let n = layout.node_size;
        if n <= MAX_MAPLE_NODE && [&layout.dense, &layout.range64, &layout.arange64].iter().all(|l| l.fits(n)) {
            Ok(layout)
        } else {
            Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed).with_reason(format_args!(
                "BTF: the maple tree nodes do not fit in `maple_node` ({n} bytes, at most {MAX_MAPLE_NODE})"
            )))
        }
    }
}

impl PathLayout {
    fn from_btf(btf: &Btf) -> Result<Self> {
        let dentry = |path| required(btf, "dentry", path);
        let (d_parent, d_name_len, d_name_name) = (dentry("d_parent")?, dentry("d_name.len")?, dentry("d_name.name")?);
        let (file_mnt, file_dentry) = (required(btf, "file", "f_path.mnt")?, required(btf, "file", "f_path.dentry")?);
        let (mnt_parent, mnt_mountpoint) =
            (required(btf, "mount", "mnt_parent")?, required(btf, "mount", "mnt_mountpoint")?);
        Ok(PathLayout {
            file_mnt,
            file_dentry,
            file_span: Span::covering("file", &[(file_mnt, WORD), (file_dentry, WORD)])?,
            d_parent,
            d_name_len,
            d_name_name,
            dentry_span: Span::covering("dentry", &[(d_parent, WORD), (d_name_len, 4), (d_name_name, WORD)])?,
            mnt_root: required(btf, "vfsmount", "mnt_root")?,
            mount_mnt: required(btf, "mount", "mnt")?,
            mnt_parent,
            mnt_mountpoint,
            mount_span: Span::covering("mount", &[(mnt_parent, WORD), (mnt_mountpoint, WORD)])?,
        })
    }
}

impl ModuleLayout {
    fn from_btf(btf: &Btf) -> Result<Self> {
        let off = |path| required(btf, "module", path);
        let (bases, sizes): (Vec<u32>, Vec<u32>) = match optional(btf, "module", "core_layout.base") {
            Some(base) => {
                let mut regions = vec![(base, off("core_layout.size")?)];
                for layout in ["init_layout", "data_layout"] {
                    let field = |member| optional(btf, "module", &format!("{layout}.{member}"));
                    regions.extend(field("base").zip(field("size")));
                }
                regions.into_iter().unzip()
            }
            None => (Self::memory_type_fields(btf, "base")?, Self::memory_type_fields(btf, "size")?),
        };
        let base = bases[0];
        let (list, name) = (off("list")?, off("name")?);
        let name_len = array_len(btf, "module", "name", 1..=MAX_NAME_ARRAY)?;
        let mut fields = vec![(list, 2 * WORD), (name, name_len)];
        fields.extend(bases.iter().map(|&at| (at, WORD)));
        fields.extend(sizes.iter().map(|&at| (at, 4)));
        let span = Span::covering("module", &fields)?;
        Ok(ModuleLayout { list, name, name_len, base, sizes, bases, span })
    }

    /// The offsets of `mem[i].<member>` for every element of `struct module_memory mem[]`
    /// (6.4+).
    fn memory_type_fields(btf: &Btf, member: &str) -> Result<Vec<u32>> {
        let mem = required(btf, "module", "mem")?;
        let count = array_len(btf, "module", "mem", 1..=MAX_MODULE_MEMORY_TYPES)?;
        let stride = btf.struct_size("module_memory")?;
        let field = required(btf, "module_memory", member)?;
        (0..count)
            .map(|i| {
                i.checked_mul(stride)
                    .and_then(|at| at.checked_add(mem))
                    .and_then(|at| at.checked_add(field))
                    .ok_or_else(|| {
                        Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
                            .with_reason(format_args!("BTF: the offsets of `module.mem[].{member}` overflow"))
                    })
            })
            .collect()
    }
}

impl ModuleSymbolsLayout {
    /// `None` (logged) if BTF lacks a structure or member.
    fn from_btf(btf: &Btf) -> Option<Self> {
        let found = (|| {
            let off = |path| required(btf, "mod_kallsyms", path);
            let (symtab, num_symtab, strtab, typetab) =
                (off("symtab")?, off("num_symtab")?, off("strtab")?, off("typetab")?);
            let span =
                Span::covering("mod_kallsyms", &[(symtab, WORD), (num_symtab, 4), (strtab, WORD), (typetab, WORD)])?;
            Ok(ModuleSymbolsLayout {
                kallsyms: required(btf, "module", "kallsyms")?,
                symtab,
                num_symtab,
                strtab,
                typetab,
                span,
            })
        })();
        found.map_err(|e: Error| log::info!("linux: no kernel module symbols: {e}")).ok()
    }
}

impl ModuleExportsLayout {
    /// `None` (logged) if BTF lacks a structure or member.
    fn from_btf(btf: &Btf) -> Option<Self> {
        let found = (|| {
            let module = |path| required(btf, "module", path);
            let relative = optional(btf, "kernel_symbol", "value_offset");
            let symbol = |path| required(btf, "kernel_symbol", path);
            let (value, name) = match relative {
                Some(value) => (value, symbol("name_offset")?),
                None => (symbol("value")?, symbol("name")?),
            };
            Ok(ModuleExportsLayout {
                syms: (module("syms")?, module("num_syms")?),
                gpl_syms: (module("gpl_syms")?, module("num_gpl_syms")?),
                entry_size: btf.struct_size("kernel_symbol")?,
                value,
                name,
                relative: relative.is_some(),
            })
        })();
        found.map_err(|e: Error| log::info!("linux: no kernel module exports: {e}")).ok()
    }
}

impl ModuleSectionsLayout {
    /// `None` (logged) if BTF lacks a structure or member.
    fn from_btf(btf: &Btf) -> Option<Self> {
        let found = (|| {
            Ok(ModuleSectionsLayout {
                sect_attrs: required(btf, "module", "sect_attrs")?,
                nsections: required(btf, "module_sect_attrs", "nsections")?,
                attrs: required(btf, "module_sect_attrs", "attrs")?,
                attr_size: btf.struct_size("module_sect_attr")?,
                name: required(btf, "module_sect_attr", "battr.attr.name")?,
                address: required(btf, "module_sect_attr", "address")?,
            })
        })();
        found.map_err(|e: Error| log::info!("linux: no kernel module sections: {e}")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::btf::tests::BtfBuilder;
    use super::*;

    /// A `task_struct` with every member the layer reads, `comm` of `comm_len` characters
    /// and `exit_state` at byte `exit_state`.
    fn task_btf(comm_len: u32, exit_state: u32) -> Btf {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let ch = b.int("char", 1);
        let comm = b.array(ch, int, comm_len);
        let ptr = b.ptr(int);
        let list = b.structure("list_head", false, 16, &[("next", ptr, 0, 0), ("prev", ptr, 64, 0)]);
        let members = [
            ("tasks", list, 0),
            ("pid", int, 128),
            ("tgid", int, 160),
            ("real_parent", ptr, 192),
            ("mm", ptr, 256),
            ("exit_state", int, exit_state * 8),
            ("comm", comm, 512),
        ];
        let members: Vec<_> = members.iter().map(|&(n, t, off)| (n, t, off, 0)).collect();
        b.structure("task_struct", false, 4096, &members);
        Btf::parse(&b.build()).unwrap()
    }

    #[test]
    fn hostile_array_lengths_and_offsets_are_refused() {
        let t = TaskLayout::from_btf(&task_btf(16, 40)).unwrap();
        assert_eq!((t.comm, t.comm_len, t.span), (64, 16, Span { start: 0, end: 80 }));
        // Without `signal`, `thread_node` and `signal_struct`, threads are not listed.
        assert!(t.threads.is_none());
        for comm_len in [0, MAX_NAME_ARRAY + 1, 1 << 30, u32::MAX] {
            let err = TaskLayout::from_btf(&task_btf(comm_len, 40)).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Malformed, "comm of {comm_len}");
        }
        // A member far out: the record would be huge.
        let err = TaskLayout::from_btf(&task_btf(16, 1 << 28)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed);
    }

    /// A `struct module` of a 6.1 kernel (`core_layout`, `init_layout`) or, with
    /// `memory_types`, of a 6.4+ kernel (`struct module_memory mem[memory_types]`).
    fn module_btf(memory_types: Option<u32>) -> Btf {
        let mut b = BtfBuilder::new();
        let int = b.int("unsigned int", 4);
        let ch = b.int("char", 1);
        let name = b.array(ch, int, 56);
        let ptr = b.ptr(int);
        let list = b.structure("list_head", false, 16, &[("next", ptr, 0, 0), ("prev", ptr, 64, 0)]);
        let mut members = vec![("list", list, 64, 0), ("name", name, 192, 0)];
        match memory_types {
            None => {
                let layout = b.structure("module_layout", false, 80, &[("base", ptr, 0, 0), ("size", int, 64, 0)]);
                members.extend([("core_layout", layout, 1024 * 8, 0), ("init_layout", layout, 1104 * 8, 0)]);
            }
            Some(n) => {
                let memory = b.structure("module_memory", false, 72, &[("base", ptr, 0, 0), ("size", int, 64, 0)]);
                let mem = b.array(memory, int, n);
                members.push(("mem", mem, 512 * 8, 0));
            }
        }
        b.structure("module", false, 2048, &members);
        Btf::parse(&b.build()).unwrap()
    }

    #[test]
    fn module_size_is_what_proc_modules_counts() {
        let old = ModuleLayout::from_btf(&module_btf(None)).unwrap();
        assert_eq!((old.base, old.sizes.as_slice()), (1024, &[1032, 1112][..]), "core + init layout");
        let new = ModuleLayout::from_btf(&module_btf(Some(7))).unwrap();
        let every_type: Vec<u32> = (0..7).map(|i| 512 + i * 72 + 8).collect();
        assert_eq!((new.base, new.sizes), (512, every_type), "mem[0..7].size");
        assert_eq!(old.bases, [1024, 1104], "core + init layout bases");
        assert_eq!(new.bases, (0..7).map(|i| 512 + i * 72).collect::<Vec<u32>>(), "mem[0..7].base");
        for hostile in [0, MAX_MODULE_MEMORY_TYPES + 1, u32::MAX] {
            let err = ModuleLayout::from_btf(&module_btf(Some(hostile))).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Malformed, "mem[{hostile}]");
        }
    }

    #[test]
    fn maple_nodes_must_fit() {
        let node = |slot_count: u32, slots: u32| NodeLayout { pivots: Some(8), slots, slot_count, meta_end: Some(248) };
        assert!(node(16, 128).fits(256));
        assert!(!node(16, 200).fits(256), "slots run past the node");
        assert!(!node(16, u32::MAX - 8).fits(256), "overflow");
        assert!(!NodeLayout { meta_end: Some(u32::MAX), ..node(16, 128) }.fits(256));
    }

    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let own = super::super::btf::TypeId(3);
        b.structure("task_struct", false, 64, &[("", own, 0, 0), ("pid", int, 32, 0)]);
        b.structure("", true, 8, &[("comm", int, 0, 0)]);
        super::super::write_fuzz_seed("btf", "anonymous", &b.build());
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let ch = b.int("char", 1);
        let comm = b.array(ch, int, 16);
        let ptr = b.ptr(int);
        let list = b.structure("list_head", false, 16, &[("next", ptr, 0, 0), ("prev", ptr, 64, 0)]);
        let members = [("tasks", list, 0), ("pid", int, 128), ("tgid", int, 160), ("comm", comm, 512)];
        let members: Vec<_> = members.iter().map(|&(n, t, off)| (n, t, off, 0)).collect();
        b.structure("task_struct", false, 4096, &members);
        super::super::write_fuzz_seed("btf", "task_struct", &b.build());
    }
}
