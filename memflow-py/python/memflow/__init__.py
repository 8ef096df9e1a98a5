"""memflow: physical memory introspection from Python.

Open a target with a chain of plugins, then read processes, the kernel or physical memory::

    import memflow

    with memflow.open("coredump:/path/dump.elf -> linux") as os:
        for p in os.processes():
            print(p.pid, p.name)
        with os.process("sshd") as proc:
            header = proc.read(proc.primary_module().base, 64)

``open(chain)`` returns an :class:`Os` when the chain ends in an OS layer and a
:class:`Connector` (physical memory) otherwise. Every error is a :class:`MemflowError`; its
subclass names the kind (``NotFoundError``, ``PartialReadError``...), its message the reason.

Objects hold plugin instances: ``close()`` or a ``with`` block releases them at once (else
when they are collected). Calls release the GIL while they touch memory; an object may be
shared between threads (its calls then run one at a time), or each thread takes its own
``clone()`` to read in parallel.
"""

from ._memflow import (
    AddressSpace,
    Connector,
    Export,
    Inventory,
    KernelSymbol,
    MemoryRange,
    Module,
    Os,
    PluginInfo,
    Process,
    ProcessInfo,
    Thread,
    Translation,
    MemflowError,
    UnknownError,
    NotFoundError,
    OutOfBoundsError,
    UnmappedError,
    PartialReadError,
    PartialWriteError,
    ReadOnlyError,
    InvalidArgumentError,
    NullPointerError,
    MalformedError,
    TruncatedError,
    UnsupportedError,
    IoError,
    PermissionDeniedError,
    VersionMismatchError,
    LayoutMismatchError,
    LimitExceededError,
    PanicError,
    OutOfMemoryError,
    GoneError,
    EncodingError,
    InternalError,
    InvalidHandleError,
    CancelledError,
)

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


def open(chain: str) -> "Connector | Os":
    """Opens ``chain`` with the plugins ``Inventory()`` finds (see :meth:`Inventory.chain`)."""
    return Inventory().chain(chain)
