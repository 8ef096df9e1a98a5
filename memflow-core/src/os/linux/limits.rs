//! Every bound the Linux layer puts on work and memory driven by guest data, in one place.
//!
//! Guest memory is written by whoever controls the guest: every count, length, pointer and
//! list the layer reads there is checked against one of these limits, and exceeding one is an
//! error (`LimitExceeded` or `Malformed`, naming the structure), never a hang, an abort or a
//! garbage result. The values are far above what a real kernel has (the comments say what
//! that is); raising one means changing it here and rebuilding.

/// The highest physical address scanned for page tables: x86-64 and AArch64 physical
/// addresses have at most 52 bits (`MAXPHYADDR`, FEAT_LPA), so nothing above can be a page
/// table. (RISC-V's Sv48 and Sv57 allow 56 bits; its machines put RAM far below 2^52, QEMU's
/// `virt` at 2 GiB.)
pub const MAX_PHYS_ADDRESS: u64 = (1 << 52) - 1;
/// Pages probed in holes of physical memory (addresses the connector does not back) by the
/// page-table scan, in total: 16 GiB of holes. The scan stops once it has seen every backed
/// page the connector reports (`real_size`); holes before that cost this budget, so memory
/// declared at a huge address (one page at 2^40) ends the scan quickly instead of walking
/// the whole span.
pub const MAX_SCAN_HOLE_PAGES: u64 = 4 << 20;
/// The most physical memory ranges the scan accepts from a connector's memory map (dump
/// formats allow at most 4096; QEMU has a handful).
pub const MAX_SCAN_RANGES: usize = 1 << 16;
/// Candidate top-level tables tried by the scan.
pub const MAX_SCANNED_TABLES: usize = 64;
/// Bytes of candidate kernel images read and searched for kallsyms by the scan, in total.
pub const MAX_SCANNED_IMAGE_BYTES: u64 = 1 << 30;
/// The most mapped ranges (of equal flags) of an ARM64 kernel half searched for the kernel
/// image (a 256 MiB guest has about 100; each vmalloc area, e.g. a thread's stack, is one).
pub const MAX_KERNEL_HALF_RANGES: usize = 1 << 20;
/// The largest kernel image read (a Debian 6.1 image maps about 40 MiB).
pub const MAX_IMAGE: u64 = 256 << 20;

/// The most kallsyms symbols accepted (a distribution kernel has about 150,000).
pub const MAX_SYMBOLS: usize = 1 << 22;
/// The most tokens in one compressed kallsyms name, and the longest expanded name
/// (`KSYM_NAME_LEN` is 512).
pub const MAX_SYMBOL_NAME: usize = 512;
/// The most bytes of all symbol names together (a distribution kernel has about 4 MiB).
pub const MAX_SYMBOL_TEXT: usize = 64 << 20;
/// Token tables (256 tokens with a matching index) whose symbol names are looked for; a
/// kernel has one.
pub const MAX_TOKEN_TABLES: usize = 16;
/// Steps (bytes examined, names decoded) the kallsyms search may take in one image beyond
/// one pass over it; the search in a Debian 6.1 kernel takes about 160,000.
pub const MAX_KALLSYMS_STEPS: u64 = 1 << 26;

/// The largest BTF section read (a distribution kernel's is about 6 MiB).
pub const MAX_BTF_BYTES: usize = 64 << 20;
/// The most BTF type records accepted (a distribution kernel has about 130,000).
pub const MAX_BTF_TYPES: usize = 1 << 21;
/// How deep anonymous members, type references and arrays are followed in BTF.
pub const MAX_BTF_DEPTH: usize = 32;
/// The largest span of one kernel structure read as a record (a `task_struct` is about
/// 10 KiB).
pub const MAX_RECORD_BYTES: u32 = 1 << 16;
/// The most bytes of structures read in one batch (the VMAs of one address space: 65530
/// VMAs of about 200 bytes are 13 MiB).
pub const MAX_RECORD_BATCH_BYTES: usize = 64 << 20;
/// The longest fixed-size name array read (`TASK_COMM_LEN` is 16, `MODULE_NAME_LEN` 56).
pub const MAX_NAME_ARRAY: u32 = 256;

/// The most elements of `struct module`'s `mem[]` array accepted from BTF (6.4+ kernels
/// have 7 memory types: text, data, read-only data, read-only-after-init data and three for
/// init).
pub const MAX_MODULE_MEMORY_TYPES: u32 = 32;
/// The most symbols of one kernel module's symbol table (a large driver has some 50,000).
pub const MAX_MODULE_SYMBOLS: u32 = 1 << 20;
/// The most exported symbols of one kernel module, in each of its two export tables.
pub const MAX_MODULE_EXPORTS: u32 = 1 << 16;
/// The most bytes of one kernel module's symbol names read (a large driver has about 2 MiB).
pub const MAX_MODULE_STRTAB: u64 = 64 << 20;
/// The most sections of one kernel module (a module has a few dozen).
pub const MAX_MODULE_SECTIONS: u32 = 1 << 12;
/// The longest section name read (longer names are cut).
pub const MAX_SECTION_NAME: usize = 256;
/// The most slots of a maple tree node (the kernel has 31, 16 and 10) and the largest node
/// (256 bytes).
pub const MAX_MAPLE_SLOTS: u32 = 64;
/// The largest maple tree node.
pub const MAX_MAPLE_NODE: u32 = 4096;

/// The most processes listed when the kernel's own thread count cannot be read:
/// `PID_MAX_LIMIT` on 64-bit.
pub const MAX_TASKS: usize = 1 << 22;
/// Elements of the task list allowed beyond the thread count the kernel reports
/// (`nr_threads`), for a live guest that creates processes while it is read.
pub const TASK_SLACK: usize = 1024;
/// The longest command line read.
pub const MAX_COMMAND_LINE: usize = 32 << 10;
/// The most kernel modules listed (a distribution kernel loads a few hundred).
pub const MAX_MODULES: usize = 1 << 13;
/// The most VMAs of one address space (the kernel's default `vm.max_map_count` is 65530).
pub const MAX_VMAS: usize = 1 << 17;
/// The most maple tree nodes one walk visits.
pub const MAX_MAPLE_NODES: usize = 1 << 16;
/// The deepest maple tree walked (the kernel's limit is 31 levels).
pub const MAX_MAPLE_HEIGHT: usize = 31;
/// The most path components (and mount crossings) followed to spell a file's path.
pub const MAX_PATH_DEPTH: usize = 256;
