"""Type stubs of the memflow package (the classes live in the extension `memflow._memflow`)."""

from os import PathLike
from types import TracebackType
from typing import Callable, Iterable, Optional, Sequence, TypeVar, Union, final

from typing_extensions import Buffer, Self

_C = TypeVar("_C")

__all__ = [
    "open",
    "AddressSpace",
    "Connector",
    "Export",
    "Inventory",
    "KernelSymbol",
    "MemoryRange",
    "Module",
    "Os",
    "PluginInfo",
    "Process",
    "ProcessInfo",
    "Thread",
    "Translation",
    "MemflowError",
    "UnknownError",
    "NotFoundError",
    "OutOfBoundsError",
    "UnmappedError",
    "PartialReadError",
    "PartialWriteError",
    "ReadOnlyError",
    "InvalidArgumentError",
    "NullPointerError",
    "MalformedError",
    "TruncatedError",
    "UnsupportedError",
    "IoError",
    "PermissionDeniedError",
    "VersionMismatchError",
    "LayoutMismatchError",
    "LimitExceededError",
    "PanicError",
    "OutOfMemoryError",
    "GoneError",
    "EncodingError",
    "InternalError",
    "InvalidHandleError",
    "CancelledError",
]

def open(chain: str) -> Union[Connector, Os]:
    """Opens `chain` with the plugins `Inventory()` finds (see `Inventory.chain`)."""

@final
class PluginInfo:
    """A plugin the inventory knows (read from its descriptor, without loading it)."""
    name: str
    version: str
    description: str
    help: str
    kind: str
    """`"connector"` or `"os"`."""
    flavor: str
    """`"rust"` or `"c"`."""
    path: Optional[str]
    """Its library file, `None` for a plugin built into memflow."""

@final
class Inventory:
    """The plugins available: built-in ones plus (with `scan`) plugin libraries found in
    `$MEMFLOW_PLUGIN_PATH`, `~/.local/lib/memflow`, `/usr/local/lib/memflow`, `/usr/lib/memflow`."""
    def __new__(cls, scan: bool = True) -> Inventory: ...
    def plugins(self) -> list[PluginInfo]:
        """Every plugin, one of each name and kind."""
    def add_dir(self, path: Union[str, PathLike[str]]) -> int:
        """Adds the plugin libraries of a directory; returns how many plugins were added."""
    def add_file(self, path: Union[str, PathLike[str]]) -> list[PluginInfo]:
        """Adds the plugins of one library file."""
    def chain(self, text: str) -> Union[Connector, Os]:
        """Opens a chain such as `"coredump:/path/dump.elf -> linux"`: an `Os` if it ends in an
        OS layer, else a `Connector`."""
    def os(self, text: str) -> Os:
        """Opens a chain that ends in an OS layer (e.g. `"dummy:procs=8"`)."""
    def connector(self, text: str) -> Connector:
        """Opens a chain that ends in a connector."""

class AddressSpace:
    """An address space: physical memory, a kernel's or a process's virtual memory.

    Reads raise `PartialReadError` if any byte is unreadable, unless `pad=True` (then those
    bytes are zero). `close()` or a `with` block releases the plugin instance at once."""
    def read(self, address: int, size: int, *, pad: bool = False) -> bytes:
        """Reads `size` bytes at `address` (at most 1 GiB at once)."""
    def read_into(self, address: int, buffer: Buffer, *, pad: bool = False) -> int:
        """Reads `len(buffer)` bytes into a writable C-contiguous buffer (bytearray,
        memoryview, array, numpy array, ctypes array); returns the byte count."""
    def read_batch(self, requests: Iterable[tuple[int, int]], *, pad: bool = False) -> list[bytes]:
        """Reads every `(address, size)` in one batch; returns their bytes in order."""
    def read_u8(self, address: int) -> int: ...
    def read_u16(self, address: int) -> int: ...
    def read_u32(self, address: int) -> int: ...
    def read_u64(self, address: int) -> int: ...
    def read_i8(self, address: int) -> int: ...
    def read_i16(self, address: int) -> int: ...
    def read_i32(self, address: int) -> int: ...
    def read_i64(self, address: int) -> int: ...
    def read_f32(self, address: int) -> float: ...
    def read_f64(self, address: int) -> float: ...
    def read_struct(self, address: int, ctype: type[_C]) -> _C:
        """Reads a `ctypes` type (Structure, Union, array, simple type) at `address`."""
    def write(self, address: int, data: Buffer) -> None:
        """Writes `data` at `address`, all of it or an error."""
    def scan(
        self,
        pattern: Union[str, bytes],
        *,
        ranges: Optional[Sequence[tuple[int, int]]] = None,
        align: int = 1,
        limit: Optional[int] = None,
        progress: Optional[Callable[[int, int], Optional[bool]]] = None,
    ) -> list[int]:
        """Finds `pattern` (`"48 8b ?? ?? 90"` with wildcards, or exact bytes); returns the
        match addresses. `progress(done, total)` may return `False` to stop."""
    def close(self) -> None:
        """Releases the plugin instance now; later calls raise `GoneError`."""
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class Connector(AddressSpace):
    """Physical memory of a target (a connector, or `Os.physical()`)."""
    def metadata(self) -> dict[str, Union[int, bool]]:
        """`max_address`, `real_size` (backed bytes) and `readonly`."""
    def mem_map(self) -> list[tuple[int, int]]:
        """The backed ranges as `(address, size)`."""
    def cpu_count(self) -> int:
        """How many CPUs the connector knows the registers of (0 if none)."""
    def cpu_arch(self) -> Optional[str]:
        """The family of the CPUs the connector knows the registers of: `"x86"`, `"aarch64"`
        or `"riscv64"` (one per target); `None` if it knows none. It says which names
        `cpu_registers` gives."""
    def cpu_registers(self, cpu: int) -> dict[str, int]:
        """The registers of CPU `cpu` by name, of the family `cpu_arch()` names. x86: `rax`..
        `r15`, `rip`, `rflags`, `cs`, `ss`, `fs_base`, `gs_base`, `kernel_gs_base`, `cr0`,
        `cr2`, `cr3`, `cr4`, `efer`, `cs_flags` (0 where not recorded). AArch64: `x0`..`x30`, `sp`, `pc`, `pstate`.
        RISC-V: `pc`, `x1`..`x31` (by number: `x2` is the stack pointer), and `satp` only where
        the connector knows it (QEMU's monitor, not its dumps). `UnsupportedError` without
        CPU state, `NotFoundError` for a CPU it has no registers of."""
    def dump(
        self,
        path: Union[str, PathLike[str]],
        format: str = "elf",
        *,
        progress: Optional[Callable[[int, int], Optional[bool]]] = None,
    ) -> dict[str, object]:
        """Writes this memory to `path` as `elf`, `lime`, `raw`, `kdump-zstd`, `kdump-snappy` or
        `kdump-zlib`; unreadable pages are left out and listed; `progress(done, total)` may
        return `False` to stop (`CancelledError`, no file). Returns `{path, format,
        bytes_written, file_size, hole_pages, hole_runs, holes}`."""
    def clone(self) -> Connector:
        """An independent instance of the same target."""

@final
class ProcessInfo:
    """One process, as an OS layer lists it."""
    pid: int
    ppid: int
    name: str
    path: str
    command_line: str
    state: str
    """`"alive"`, `"dead"` or `"unknown"`."""
    arch: str
    sys_arch: str
    address: int
    table_root: int

@final
class Thread:
    """A thread of a process (`Process.threads()`)."""
    tid: int
    """Thread id (Linux: the task's pid; the first thread's equals the process id)."""
    name: str
    """Its name (Linux: the thread's own `comm`)."""
    state: str
    """`"alive"`, `"dead"` or `"unknown"`."""

@final
class Module:
    """A process's loaded image or library, or a kernel module."""
    base: int
    size: int
    name: str
    path: str
    address: int
    arch: str

@final
class Export:
    """A symbol a module exports."""
    name: str
    offset: int
    address: int

@final
class KernelSymbol:
    """A kernel symbol (kallsyms)."""
    name: str
    address: int
    kind: str
    module: str

@final
class MemoryRange:
    """A mapped range of a process."""
    base: int
    size: int
    access: str
    """`"r"`, then `"w"`, `"x"`, `"u"` or `"-"` each."""

@final
class Translation:
    """Where a virtual address lies in physical memory."""
    physical_address: int
    page_size: Optional[int]
    access: str

@final
class Os(AddressSpace):
    """An OS layer; reads and writes take kernel virtual addresses."""
    def info(self) -> dict[str, Union[str, int]]:
        """`arch`, and `base`/`size` of the kernel image."""
    def processes(self) -> list[ProcessInfo]: ...
    def process_info(self, process: Union[int, str]) -> ProcessInfo:
        """The process of that id or name."""
    def process(self, process: Union[int, str]) -> Process:
        """Opens the process of that id or name."""
    def kernel_modules(self) -> list[Module]: ...
    def kernel_symbols(self, pattern: Optional[str] = None) -> list[KernelSymbol]:
        """The kernel's symbols; with `pattern`, those whose name contains it."""
    def kernel_symbol(self, name: str) -> int:
        """The address of a kernel symbol."""
    def type_member_offset(self, structure: str, member: str) -> int:
        """Offset of a member of a kernel structure, where the layer knows it."""
    def type_size(self, structure: str) -> int:
        """Size of a kernel structure, where the layer knows it."""
    def vtop(self, address: int) -> Translation:
        """Translates a kernel virtual address."""
    def physical(self) -> Connector:
        """The physical memory under the OS layer (an independent instance)."""
    def clone(self) -> Os:
        """An independent instance of the same OS layer."""

@final
class Process(AddressSpace):
    """A process; reads and writes take its virtual addresses."""
    info: ProcessInfo
    def state(self) -> str:
        """`"alive"`, `"dead"` or `"unknown"`, asked now."""
    def threads(self) -> list[Thread]:
        """The threads as the OS layer lists them (native: `/proc/PID/task`; Linux guests:
        the kernel's thread group list); `UnsupportedError` where it knows none."""
    def modules(self) -> list[Module]: ...
    def module(self, name: str) -> Module: ...
    def primary_module(self) -> Module: ...
    def exports(self, module: Union[Module, str]) -> list[Export]: ...
    def maps(self, gap: int = -1) -> list[MemoryRange]:
        """Mapped ranges; ranges closer than `gap` bytes merge (-1: all adjacent ones)."""
    def vtop(self, address: int) -> Translation:
        """Translates a virtual address (guests only)."""
    def clone(self) -> Process:
        """An independent instance of the same process."""

class MemflowError(Exception):
    """Base class of every error memflow raises; `kind` and `origin` name it."""
    kind: Optional[str]
    origin: str

class UnknownError(MemflowError): ...
class NotFoundError(MemflowError): ...
class OutOfBoundsError(MemflowError): ...
class UnmappedError(MemflowError): ...
class PartialReadError(MemflowError): ...
class PartialWriteError(MemflowError): ...
class ReadOnlyError(MemflowError): ...
class InvalidArgumentError(MemflowError): ...
class NullPointerError(MemflowError): ...
class MalformedError(MemflowError): ...
class TruncatedError(MemflowError): ...
class UnsupportedError(MemflowError): ...
class IoError(MemflowError): ...
class PermissionDeniedError(MemflowError): ...
class VersionMismatchError(MemflowError): ...
class LayoutMismatchError(MemflowError): ...
class LimitExceededError(MemflowError): ...
class PanicError(MemflowError): ...
class OutOfMemoryError(MemflowError): ...
class GoneError(MemflowError): ...
class EncodingError(MemflowError): ...
class InternalError(MemflowError): ...
class InvalidHandleError(MemflowError): ...
class CancelledError(MemflowError): ...
