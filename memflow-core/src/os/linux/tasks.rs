//! Processes: the task list and what a `task_struct` says about its process.
//!
//! `init_task.tasks` links the thread-group leaders only (a thread is never on this list), so
//! every element is a process. `init_task` itself is the idle task (pid 0), the head of the
//! list and not listed, like `/proc` does not list it. A process's pid is the leader's `tgid`,
//! its parent the `tgid` of `real_parent`, its name `comm`. Kernel threads have no `mm`: no
//! table root, path or command line.
//!
//! The page tables of a process are `mm->pgd`, a kernel address of its top-level table. On
//! x86-64 that is the kernel's copy, which maps user space as well as the kernel (with
//! page-table isolation the user copy is the next page and maps almost none of the kernel);
//! on AArch64 it maps user space only (TTBR0), the kernel's table the rest (TTBR1,
//! `table_root_2`); on RISC-V it maps both, like x86-64. `table_root` and `table_root_2` hold
//! the root register values (RISC-V's `satp` holds the table's page number, not its address).

use super::layout::ThreadLinks;
use super::limits::{MAX_COMMAND_LINE, MAX_TASKS, TASK_SLACK};
use super::list;
use super::path::file_path;
use super::record::Record;
use super::Kernel;
use crate::error::{Error, ErrorKind, ErrorOrigin, PartialError, PartialResultExt, Result};
use crate::mem::{MemoryView, PhysicalMemory};
use crate::os::{Pid, ProcessInfo, ProcessState, ThreadInfo};
use crate::translate::VirtualTranslate;
use crate::types::{umem, Address};
use crate::virt::VirtualDma;

/// Calls `visit` with the `task_struct` address of every process until it returns `false`.
/// A list longer than the kernel says it can be (see [`task_limit`]) is corrupt: the walk
/// ends with `LimitExceeded` after that many elements. So is an empty one (a running kernel
/// has at least `init`): `Malformed`.
pub fn processes<V: MemoryView>(mem: &mut V, kernel: &Kernel, mut visit: impl FnMut(Address) -> bool) -> Result<()> {
    let tasks = kernel.layout.task.tasks as umem;
    let (max, reason) = task_limit(mem, kernel);
    let what = format!("the task list of init_task ({reason})");
    let mut any = false;
    list::walk(mem, kernel.init_task + tasks, max, &what, |node| {
        any = true;
        visit(node - tasks)
    })?;
    if !any {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::Malformed)
            .with_reason(format_args!("the task list of init_task is empty: no init, no processes")));
    }
    Ok(())
}

/// The most elements the task list can have, and why: every process is a thread and has its
/// own pid, so the kernel's thread count `nr_threads` plus [`TASK_SLACK`] (threads started
/// while a live guest is read) and the kernel's `pid_max`, whichever is smaller and can be
/// read; else (or if either says more) [`MAX_TASKS`], the highest `pid_max` there is.
fn task_limit<V: MemoryView>(mem: &mut V, kernel: &Kernel) -> (usize, String) {
    let mut read_count = |at: Option<Address>| {
        let n = mem.read::<i32>(at?).data().ok()?;
        usize::try_from(n).ok().filter(|&n| n > 0 && n <= MAX_TASKS)
    };
    let threads = read_count(kernel.nr_threads).map(|n| (n + TASK_SLACK, format!("the kernel counts {n} threads")));
    let pids = read_count(kernel.pid_max).map(|n| (n, format!("the kernel's pid_max is {n}")));
    match (threads, pids) {
        (Some(t), Some(p)) => {
            if t.0 <= p.0 {
                t
            } else {
                p
            }
        }
        (Some(limit), None) | (None, Some(limit)) => limit,
        (None, None) => (MAX_TASKS, format!("PID_MAX_LIMIT is {MAX_TASKS}")),
    }
}

/// Calls `visit` with the `task_struct` address of every thread of the process whose leader
/// is at `leader` (the leader among them), until it returns `false`: the list of the thread
/// group's `signal_struct`, bounded like the task list. `Unsupported` if BTF lacks its members.
pub fn threads<V: MemoryView>(
    mem: &mut V,
    kernel: &Kernel,
    leader: Address,
    visit: impl FnMut(Address) -> bool,
) -> Result<()> {
    let Some(links) = &kernel.layout.task.threads else {
        return Err(Error::new(ErrorOrigin::Os, ErrorKind::Unsupported).with_reason(
            "BTF: the kernel's task_struct has no `signal` and `thread_node` (or signal_struct no `thread_head`)",
        ));
    };
    let (max, reason) = task_limit(mem, kernel);
    thread_group(mem, links, leader, max, &reason, visit)
}

/// The walk of [`threads`], at most `max` threads (`reason` says why, in errors).
fn thread_group<V: MemoryView>(
    mem: &mut V,
    links: &ThreadLinks,
    leader: Address,
    max: usize,
    reason: &str,
    mut visit: impl FnMut(Address) -> bool,
) -> Result<()> {
    let signal = mem.read_addr(leader + links.signal as umem).data()?;
    // A task whose thread group is being torn down may have no signal_struct left.
    if signal.is_null() {
        visit(leader);
        return Ok(());
    }
    let what = format!("the thread list of the task at {leader} ({reason})");
    let node = links.thread_node as umem;
    list::walk(mem, signal + links.thread_head as umem, max, &what, |n| visit(n - node))
}

/// The thread at `task`: its id (`pid`), name and state.
pub fn thread_info<V: MemoryView>(mem: &mut V, kernel: &Kernel, task: Address) -> Result<ThreadInfo> {
    let l = &kernel.layout.task;
    let t = Record::read(mem, task, l.span, "a task_struct")?;
    let state = if t.u32(l.exit_state) != 0 { ProcessState::Dead } else { ProcessState::Alive };
    Ok(ThreadInfo { tid: t.u32(l.pid), name: t.text(l.comm, l.comm_len as usize).as_str().into(), state })
}

/// The fields of a `task_struct` that describe its process.
pub struct Task {
    /// The process id (`tgid`).
    pub pid: Pid,
    /// The parent's process id.
    pub ppid: Pid,
    /// `comm`.
    pub name: String,
    /// The `mm_struct`, NULL for kernel threads.
    pub mm: Address,
    /// Zombie or dead.
    pub dead: bool,
}

impl Task {
    /// Reads the task at `task` and its parent's pid.
    pub fn read<V: MemoryView>(mem: &mut V, kernel: &Kernel, task: Address) -> Result<Task> {
        let l = &kernel.layout.task;
        let t = Record::read(mem, task, l.span, "a task_struct")?;
        let parent = t.addr(l.real_parent);
        let ppid = if parent.is_null() || parent == task {
            0
        } else {
            Record::read(mem, parent, l.span, "the parent task_struct")?.u32(l.tgid)
        };
        Ok(Task {
            pid: t.u32(l.tgid),
            ppid,
            name: t.text(l.comm, l.comm_len as usize),
            mm: t.addr(l.mm),
            dead: t.u32(l.exit_state) != 0,
        })
    }
}

/// The facts of the process whose leader is the `task_struct` at `task`. `view` is the
/// kernel's address space; it is switched to the process's tables to read the command line and
/// back. The path and command line are empty where they are not resident.
pub fn process_info<P: PhysicalMemory>(
    view: &mut VirtualDma<P>,
    kernel: &Kernel,
    task: Address,
) -> Result<ProcessInfo> {
    let t = Task::read(view, kernel, task)?;
    let mut info = ProcessInfo {
        address: task,
        pid: t.pid,
        ppid: t.ppid,
        state: if t.dead { ProcessState::Dead } else { ProcessState::Alive },
        name: t.name.as_str().into(),
        path: "".into(),
        command_line: "".into(),
        sys_arch: kernel.arch,
        proc_arch: kernel.arch,
        table_root: Address::NULL,
        table_root_2: Address::NULL,
    };
    if t.mm.is_null() {
        return Ok(info);
    }
    let l = &kernel.layout.mm;
    let mm = Record::read(view, t.mm, l.span, "an mm_struct")?;
    info.table_root = kernel.family.user_root(view.virt_to_phys(mm.addr(l.pgd))?.address);
    let roots = kernel.roots(info.table_root);
    info.table_root_2 = roots.get(1).copied().unwrap_or(Address::NULL);
    let exe = mm.addr(l.exe_file);
    if !exe.is_null() {
        match file_path(view, &kernel.layout.path, exe) {
            Ok(path) => info.path = path.as_str().into(),
            Err(e) => log::debug!("linux: no path for pid {}: {e}", t.pid),
        }
    }
    let (start, end) = (mm.addr(l.arg_start), mm.addr(l.arg_end));
    if start < end {
        let len = ((end - start) as usize).min(MAX_COMMAND_LINE);
        view.translator_mut().set_roots(&roots)?;
        let args = view.read_raw(start, len);
        view.translator_mut().set_roots(&kernel.roots(Address::NULL))?;
        match args {
            Ok(args) => info.command_line = command_line(&args).as_str().into(),
            Err(PartialError::Error(e)) => return Err(e),
            Err(_) => log::debug!("linux: the command line of pid {} is not resident", t.pid),
        }
    }
    Ok(info)
}

/// The arguments `argv` as stored in memory (NUL-separated), joined by spaces.
pub fn command_line(args: &[u8]) -> String {
    let args = args.strip_suffix(&[0]).unwrap_or(args);
    let joined: Vec<u8> = args.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
    String::from_utf8_lossy(&joined).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::dummy_memory;
    use crate::mem::PhysicalMemory;

    const LINKS: ThreadLinks = ThreadLinks { signal: 0x20, thread_node: 0x40, thread_head: 0x10 };

    /// Tasks at 0x1000, 0x2000, ... whose `signal` is `signal`, linked in that order into the
    /// thread list of the `signal_struct` at 0x8000 (`next` links only, as the walk reads).
    fn group(tasks: usize, signal: u64) -> impl MemoryView {
        let mut mem = dummy_memory(0x10000);
        let head = 0x8000 + LINKS.thread_head as u64;
        let node = |i: usize| 0x1000 * (i as u64 + 1) + LINKS.thread_node as u64;
        let mut write = |at: u64, value: u64| mem.phys_write(Address::from(at).into(), &value).data().unwrap();
        write(head, if tasks == 0 { head } else { node(0) });
        for i in 0..tasks {
            write(0x1000 * (i as u64 + 1) + LINKS.signal as u64, signal);
            write(node(i), if i + 1 == tasks { head } else { node(i + 1) });
        }
        mem.into_phys_view()
    }

    fn walk(mem: &mut impl MemoryView, max: usize) -> (Result<()>, Vec<u64>) {
        let mut seen = Vec::new();
        let result = thread_group(mem, &LINKS, Address::from(0x1000u64), max, "a test", |task| {
            seen.push(task.to_umem() as u64);
            true
        });
        (result, seen)
    }

    #[test]
    fn a_thread_group_is_its_signal_structs_list_leader_first() {
        let (result, seen) = walk(&mut group(3, 0x8000), 100);
        result.unwrap();
        assert_eq!(seen, [0x1000, 0x2000, 0x3000]);
        // Without a signal_struct, the task alone.
        let (result, seen) = walk(&mut group(3, 0), 100);
        result.unwrap();
        assert_eq!(seen, [0x1000]);
        // More threads than the kernel can have: the walk stops with an error.
        let (result, seen) = walk(&mut group(3, 0x8000), 2);
        assert_eq!(result.unwrap_err().kind, ErrorKind::LimitExceeded);
        assert_eq!(seen.len(), 2);
    }
}
