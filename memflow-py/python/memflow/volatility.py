"""Volatility 3 on any memflow chain: its plugins read physical memory through memflow.

Three pieces, registered with Volatility by importing this module:

- ``MemflowLayer``: a Volatility data layer holding the physical memory of a memflow chain
  (config key ``chain``); scans cover only the backed ranges of the chain's memory map.
- ``MemflowStacker``: turns ``-f memflow://<chain>`` into a ``MemflowLayer`` (first in the
  stacking order), so Volatility's own layers (Intel paging, symbol finders) stack on it.
- ``MemflowHandler``: opens ``memflow://<chain>`` URLs as files, for the parts of Volatility
  that open the location themselves before stacking.

From the command line, ``vol-memflow`` (installed with this package) is ``vol`` with these
registered::

    vol-memflow -f "memflow://coredump:/path/dump.kdump" banners.Banners
    vol-memflow -f "memflow://qemu:name=vm1" linux.pslist

The chain after ``memflow://`` may be percent-quoted (``urllib.parse.quote``) when it holds
characters a URL cannot (spaces, ``#``, ``?``); it should name a connector, whose physical
memory Volatility then reads.
"""

from __future__ import annotations

import io
import urllib.parse
import urllib.request
from typing import Any, Iterable, List, Optional, Tuple

from volatility3.framework import exceptions, interfaces
from volatility3.framework.configuration import requirements
from volatility3.framework.layers.resources import VolatilityHandler

import memflow

SCHEME = "memflow"


def chain_of(url: str) -> Optional[str]:
    """The chain of a ``memflow://<chain>`` URL, ``None`` for other URLs."""
    prefix = SCHEME + "://"
    if not url.startswith(prefix):
        return None
    return urllib.parse.unquote(url[len(prefix):])


def open_physical(chain: str) -> memflow.Connector:
    """The physical memory of ``chain``: its connector, or the memory under its OS layer."""
    target = memflow.open(chain)
    if isinstance(target, memflow.Os):
        with target:
            return target.physical()
    return target


class MemflowFile(io.RawIOBase):
    """Physical memory of a connector as a read-only binary file (unbacked bytes read as zero)."""

    def __init__(self, connector: memflow.Connector) -> None:
        super().__init__()
        self.connector = connector
        self.size = connector.metadata()["max_address"] + 1
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self.size - self.position))
        if count:
            self.connector.read_into(self.position, view[:count], pad=True)
        self.position += count
        return count

    def close(self) -> None:
        if not self.closed:
            self.connector.close()
        super().close()


class MemflowHandler(VolatilityHandler):
    """Opens ``memflow://<chain>`` URLs as :class:`MemflowFile` objects."""

    @classmethod
    def non_cached_schemes(cls) -> List[str]:
        return [SCHEME]

    @staticmethod
    def default_open(req: urllib.request.Request) -> Optional[Any]:
        chain = chain_of(req.full_url)
        if chain is None:
            return None
        return MemflowFile(open_physical(chain))


class MemflowLayer(interfaces.layers.DataLayerInterface):
    """Physical memory of a memflow chain, as a Volatility data layer.

    Config: ``chain`` (e.g. ``coredump:/path/dump.elf``, ``qemu:name=vm1``). Reads outside
    the backed ranges raise ``InvalidAddressException`` unless ``pad``.
    """

    _direct_metadata = {"architecture": "Unknown", "os": "Unknown"}

    def __init__(
        self,
        context: interfaces.context.ContextInterface,
        config_path: str,
        name: str,
        metadata: Optional[dict] = None,
    ) -> None:
        super().__init__(context, config_path, name, metadata)
        self._connector = open_physical(self.config["chain"])
        self._ranges = sorted(self._connector.mem_map())
        self._maximum = self._connector.metadata()["max_address"]

    @classmethod
    def get_requirements(cls) -> List[interfaces.configuration.RequirementInterface]:
        return [requirements.StringRequirement(name="chain", description="memflow chain to read", optional=False)]

    @property
    def maximum_address(self) -> int:
        return self._maximum

    @property
    def minimum_address(self) -> int:
        return 0

    def is_valid(self, offset: int, length: int = 1) -> bool:
        end = offset + length
        covered = offset
        for base, size in self._ranges:
            if base > covered:
                break
            covered = max(covered, base + size)
            if covered >= end:
                return True
        return length <= 0

    def read(self, offset: int, length: int, pad: bool = False) -> bytes:
        try:
            return self._connector.read(offset, length, pad=pad)
        except memflow.MemflowError as error:
            raise exceptions.InvalidAddressException(self.name, offset, f"{self.name}: {error}") from error

    def write(self, offset: int, data: bytes) -> None:
        try:
            self._connector.write(offset, data)
        except memflow.MemflowError as error:
            raise exceptions.InvalidAddressException(self.name, offset, f"{self.name}: {error}") from error

    def destroy(self) -> None:
        self._connector.close()

    def scan(
        self,
        context: interfaces.context.ContextInterface,
        scanner: interfaces.layers.ScannerInterface,
        progress_callback: Any = None,
        sections: Optional[Iterable[Tuple[int, int]]] = None,
    ) -> Iterable[Any]:
        """Scans ``sections``, by default the backed ranges only (not the holes between them)."""
        return super().scan(context, scanner, progress_callback, self._ranges if sections is None else sections)


class MemflowStacker(interfaces.automagic.StackerLayerInterface):
    """Replaces the file layer of a ``memflow://<chain>`` location with a :class:`MemflowLayer`."""

    stack_order = 1

    @classmethod
    def stack(
        cls,
        context: interfaces.context.ContextInterface,
        layer_name: str,
        progress_callback: Any = None,
    ) -> Optional[interfaces.layers.DataLayerInterface]:
        location = context.config.get(interfaces.configuration.path_join(context.layers[layer_name].config_path, "location"))
        chain = chain_of(location) if isinstance(location, str) else None
        if chain is None:
            return None
        name = context.layers.free_layer_name("MemflowLayer")
        context.config[interfaces.configuration.path_join(name, "chain")] = chain
        return MemflowLayer(context, name, name)


def main() -> None:
    """``vol`` with the memflow layer, stacker and URL handler registered (``vol-memflow``)."""
    from volatility3.cli import main as vol_main

    vol_main()


if __name__ == "__main__":
    main()
