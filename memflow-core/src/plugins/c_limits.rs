//! Every bound the host puts on what a C plugin hands it, in one place.
//!
//! A plugin's records and counts are taken as hostile as guest memory: a listing longer than
//! these limits, or a string longer than its limit (or without a NUL), fails the call with
//! `LimitExceeded`, naming the plugin and the listing, before anything grows without bound.
//! The values are far above what a real system has.

/// The longest name (process, module, export, import, section, kernel symbol) taken from a
/// record (Linux names files up to 255 bytes and symbols up to 512).
pub const MAX_NAME: usize = 4096;
/// The longest path taken from a record (`PATH_MAX` is 4096).
pub const MAX_PATH: usize = 4096;
/// The longest command line taken from a process record.
pub const MAX_COMMAND_LINE: usize = 64 << 10;
/// The most processes one listing may report (`PID_MAX_LIMIT` on 64-bit Linux).
pub const MAX_PROCESSES: usize = 1 << 22;
/// The most modules one process or kernel listing may report.
pub const MAX_MODULES: usize = 1 << 16;
/// The most mapped ranges one listing may report (Linux's default `vm.max_map_count` is
/// 65530).
pub const MAX_RANGES: usize = 1 << 20;
/// The most exports, imports or sections of one module, or kernel symbols, one listing may
/// report (a distribution kernel has about 150,000 symbols).
pub const MAX_SYMBOLS: usize = 1 << 23;
/// The most CPUs a connector may report state for.
pub const MAX_CPUS: usize = 1 << 16;
