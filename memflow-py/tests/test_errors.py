"""Errors are exceptions of the hierarchy, with the reason as their message."""

from __future__ import annotations

import re
from pathlib import Path

import memflow
import pytest


def test_every_kind_is_a_memflow_error():
    kinds = [name for name in memflow.__all__ if name.endswith("Error") and name != "MemflowError"]
    # One exception per error kind of the library: the C header lists them all as MF_KIND_*.
    header = (Path(__file__).parents[2] / "include" / "memflow.h").read_text()
    assert len(kinds) == len(re.findall(r"^#define MF_KIND_\w+ \d+$", header, re.MULTILINE))
    for name in kinds:
        assert issubclass(getattr(memflow, name), memflow.MemflowError)


def test_bad_chains_raise_with_the_reason(dump):
    with pytest.raises(memflow.NotFoundError, match="no plugin named `nonexistent`") as raised:
        memflow.open("nonexistent:x")
    assert raised.value.kind == "not found" and raised.value.origin == "inventory"
    with pytest.raises(memflow.MemflowError):
        memflow.open(f"coredump:{dump.dir}/no-such-dump -> linux")
    with pytest.raises(memflow.MemflowError):
        memflow.open("coredump:/etc/hostname -> linux")
    with pytest.raises(memflow.InvalidArgumentError, match="ends in a connector"):
        memflow.Inventory().os(dump.phys_chain)
    with pytest.raises(memflow.InvalidArgumentError, match="unknown argument"):
        memflow.open("dummy:procs=3")
    with memflow.Inventory().os("dummy:procs=3") as os_:
        assert [p.name for p in os_.processes()][:2] == ["init", "worker1"]


def test_bad_pids_names_and_addresses_raise(dump):
    with memflow.open(dump.chain) as os_:
        with pytest.raises(memflow.NotFoundError, match="no process with pid 999999"):
            os_.process(999999)
        with pytest.raises(memflow.NotFoundError):
            os_.process("no-such-process")
        with pytest.raises(memflow.NotFoundError):
            os_.kernel_symbol("no_such_symbol_anywhere")
        with os_.process("mfprobe_marker") as proc:
            with pytest.raises(memflow.PartialReadError, match="not all readable"):
                proc.read(0x10, 8)
            assert proc.read(0x10, 8, pad=True) == bytes(8)
            with pytest.raises(memflow.PartialReadError):
                proc.read_u64(0x10)
            image = proc.primary_module().base
            with pytest.raises(memflow.PartialReadError, match="some of the 2 reads"):
                proc.read_batch([(image, 4), (0x10, 8)])
            assert proc.read_batch([(image, 4), (0x10, 8)], pad=True) == [b"\x7fELF", bytes(8)]
            with pytest.raises(memflow.MemflowError):
                proc.vtop(0x10)
            with pytest.raises(memflow.InvalidArgumentError):
                proc.read(0, 2 << 30)
        with os_.physical() as phys, pytest.raises(memflow.MemflowError):
            phys.write(0x1000, b"x")


def test_closed_objects_raise_gone(dump):
    os_ = memflow.open(dump.chain)
    with os_:
        assert not os_.closed
    assert os_.closed
    with pytest.raises(memflow.GoneError, match="closed"):
        os_.processes()
    os_.close()


def test_read_into_refuses_read_only_buffers(dump):
    with memflow.open(dump.phys_chain) as phys:
        with pytest.raises(BufferError):
            phys.read_into(0, b"immutable")
        with pytest.raises(TypeError):
            phys.read_into(0, "text")
