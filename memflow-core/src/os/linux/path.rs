//! The path of an open file, spelled from its dentry up to the root of the mount tree.
//!
//! A `struct file` holds a `struct path`: the mount (`vfsmount`, embedded in a
//! `struct mount`) and the dentry. Going up, each dentry adds its name (`d_name`) and moves to
//! `d_parent`; at the root of a mount (`mnt_root`, or a dentry that is its own parent) the walk
//! continues at the mount point in the parent mount, and it ends at a mount that is its own
//! parent. The path is absolute in the mount tree the file lives in, like the kernel's
//! `d_absolute_path`. Every step is bounded: a corrupt tree gives an error, never a hang.

use super::layout::PathLayout;
use super::limits::MAX_PATH_DEPTH;
use super::record::Record;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialResultExt, Result};
use crate::mem::MemoryView;
use crate::types::{umem, Address};

/// The longest name of one component (`NAME_MAX`).
const NAME_MAX: u32 = 255;

/// The final component of `path` (the file name).
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The absolute path of the `struct file` at `file`.
pub fn file_path<V: MemoryView>(mem: &mut V, l: &PathLayout, file: Address) -> Result<String> {
    let f = Record::read(mem, file, l.file_span, "a file")?;
    dentry_path(mem, l, f.addr(l.file_dentry), f.addr(l.file_mnt))
}

/// The absolute path of `dentry` seen through the mount `vfsmount` (see the module docs).
pub fn dentry_path<V: MemoryView>(
    mem: &mut V,
    l: &PathLayout,
    mut dentry: Address,
    mut vfsmount: Address,
) -> Result<String> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    for _ in 0..MAX_PATH_DEPTH {
        let d = Record::read(mem, dentry, l.dentry_span, "a dentry")?;
        let parent = d.addr(l.d_parent);
        let mnt_root = mem.read_addr(vfsmount + l.mnt_root as umem).data()?;
        if dentry == mnt_root || dentry == parent {
            let mount = vfsmount - l.mount_mnt as umem;
            let m = Record::read(mem, mount, l.mount_span, "a mount")?;
            let parent_mount = m.addr(l.mnt_parent);
            if parent_mount == mount || parent_mount.is_null() {
                return Ok(join(&names));
            }
            dentry = m.addr(l.mnt_mountpoint);
            vfsmount = parent_mount + l.mount_mnt as umem;
            continue;
        }
        let len = d.u32(l.d_name_len).min(NAME_MAX) as usize;
        let name = mem.read_raw(d.addr(l.d_name_name), len).data()?;
        names.push(name);
        dentry = parent;
    }
    Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
        .with_reason(format_args!("the path of dentry {dentry} is deeper than {MAX_PATH_DEPTH} levels")))
}

/// `/` followed by `names` in reverse order, separated by `/`.
fn join(names: &[Vec<u8>]) -> String {
    let mut path = String::new();
    for name in names.iter().rev() {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(name));
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}
