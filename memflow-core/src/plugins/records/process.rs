//! The process record and its run states.

use std::ffi::{c_char, c_void};

use crate::os::{ProcessInfo, ProcessState, ThreadInfo};

use super::arch::MfArchitecture;
use super::convert::{addr_out, str_out};

/// The run state of a process: one of the `MF_PROCESS_STATE_*` constants.
pub type MfProcessState = u32;
/// Process state: not known.
pub const MF_PROCESS_STATE_UNKNOWN: MfProcessState = 0;
/// Process state: alive (running, sleeping or stopped).
pub const MF_PROCESS_STATE_ALIVE: MfProcessState = 1;
/// Process state: exited (a zombie) or gone.
pub const MF_PROCESS_STATE_DEAD: MfProcessState = 2;

/// The C form of a process state.
pub fn state_out(s: ProcessState) -> MfProcessState {
    match s {
        ProcessState::Unknown => MF_PROCESS_STATE_UNKNOWN,
        ProcessState::Alive => MF_PROCESS_STATE_ALIVE,
        ProcessState::Dead => MF_PROCESS_STATE_DEAD,
    }
}

/// A process. The strings are never NULL (empty when not known).
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfProcessInfo {
    /// The OS layer's handle for the process (pass it to `mf_os_process_by_address`).
    pub address: u64,
    /// Process id.
    pub pid: u32,
    /// Parent process id, 0 if not known.
    pub ppid: u32,
    /// Run state when it was listed, one of `MF_PROCESS_STATE_*`.
    pub state: MfProcessState,
    /// Short name (e.g. Linux `comm`).
    pub name: *const c_char,
    /// Path of the executable, empty if not known.
    pub path: *const c_char,
    /// Command line, arguments separated by spaces, empty if not known.
    pub command_line: *const c_char,
    /// Architecture of the system the process runs on.
    pub sys_arch: MfArchitecture,
    /// Architecture the process runs as.
    pub proc_arch: MfArchitecture,
    /// Root of its page tables, 0 if none.
    pub table_root: u64,
    /// Second table root where the architecture has one, else 0.
    pub table_root_2: u64,
}

impl MfProcessInfo {
    /// A view of `p` whose strings borrow from it.
    pub fn borrow(p: &ProcessInfo) -> Self {
        MfProcessInfo {
            address: addr_out(p.address),
            pid: p.pid,
            ppid: p.ppid,
            state: state_out(p.state),
            name: str_out(&p.name),
            path: str_out(&p.path),
            command_line: str_out(&p.command_line),
            sys_arch: p.sys_arch.into(),
            proc_arch: p.proc_arch.into(),
            table_root: addr_out(p.table_root),
            table_root_2: addr_out(p.table_root_2),
        }
    }
}

/// Receives a process record; return `true` to go on, `false` to stop. `info` and its
/// strings are borrowed and valid only during the call.
pub type MfProcessInfoCallback = Option<unsafe extern "C" fn(user: *mut c_void, info: *const MfProcessInfo) -> bool>;

/// A thread of a process. The name is never NULL.
#[repr(C)]
#[derive(Copy, Clone, Debug)]
pub struct MfThreadInfo {
    /// Thread id (on Linux the first thread's is the process id).
    pub tid: u32,
    /// Run state when it was listed, one of `MF_PROCESS_STATE_*`.
    pub state: MfProcessState,
    /// Name (Linux `comm`).
    pub name: *const c_char,
}

impl MfThreadInfo {
    /// A view of `t` whose name borrows from it.
    pub fn borrow(t: &ThreadInfo) -> Self {
        MfThreadInfo { tid: t.tid, state: state_out(t.state), name: str_out(&t.name) }
    }
}
