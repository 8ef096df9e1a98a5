"""This machine's own processes through the `native` OS layer: a Python child's objects read
where CPython keeps them, and the listings the Rust command-line tool gives."""

from __future__ import annotations

import array
import ctypes
import os

import memflow
import pytest
from conftest import cli


class PyByteArrayObject(ctypes.Structure):
    """CPython's `bytearray` object header (Include/cpython/bytearrayobject.h)."""

    _fields_ = [
        ("ob_refcnt", ctypes.c_ssize_t),
        ("ob_type", ctypes.c_void_p),
        ("ob_size", ctypes.c_ssize_t),
        ("ob_alloc", ctypes.c_ssize_t),
        ("ob_bytes", ctypes.c_void_p),
        ("ob_start", ctypes.c_void_p),
        ("ob_exports", ctypes.c_ssize_t),
    ]


@pytest.fixture
def native():
    with memflow.open("native") as os_:
        yield os_


def test_reads_a_childs_bytes_object_every_way(native, child):
    marker, at = child.marker, child.marker_address
    with native.process(child.pid) as proc:
        assert proc.info.pid == child.pid
        assert proc.read(at, len(marker)) == marker
        for buffer in (bytearray(len(marker)), array.array("B", bytes(len(marker))), (ctypes.c_char * len(marker))()):
            assert proc.read_into(at, buffer) == len(marker)
            assert bytes(buffer) == marker
        view = memoryview(bytearray(len(marker) + 8))[4:-4]
        proc.read_into(at, view)
        assert view.tobytes() == marker
        # A buffer of wider items is filled byte for byte.
        wide = array.array("I", bytes(16))
        proc.read_into(at, wide)
        assert wide.tobytes() == marker[:16]
        assert proc.read_u8(at) == marker[0]
        assert proc.read_u32(at) == int.from_bytes(marker[:4], "little")
        assert proc.read_u64(at) == int.from_bytes(marker[:8], "little")
        assert proc.read_i16(at) == int.from_bytes(marker[:2], "little", signed=True)
        assert proc.read_batch([(at, 4), (at + 4, 8)]) == [marker[:4], marker[4:12]]


def test_read_struct_and_write_reach_the_childs_bytearray(native, child):
    with native.process(child.pid) as proc:
        header = proc.read_struct(child.bytearray_address, PyByteArrayObject)
        assert isinstance(header, PyByteArrayObject)
        assert header.ob_type == child.bytearray_type
        assert header.ob_size == 64
        proc.write(header.ob_bytes, b"written by memflow")
        assert child.buffer().startswith(b"written by memflow")
        assert proc.read(header.ob_bytes, 18) == b"written by memflow"


def test_scan_finds_the_marker_where_it_is(native, child):
    with native.process(child.pid) as proc:
        hits = proc.scan(child.marker)
        assert child.marker_address in hits
        # The same bytes as a pattern with wildcards.
        text = " ".join("??" if i % 3 == 1 else f"{b:02x}" for i, b in enumerate(child.marker))
        assert child.marker_address in proc.scan(text)


def test_processes_modules_and_exports_match_the_rust_tool(native, child):
    listed = {p.pid: p for p in native.processes()}
    assert listed[child.pid].ppid == os.getpid()
    rust = {p["pid"]: p["name"] for p in cli("ps")}
    assert listed[child.pid].name == rust[child.pid]
    assert listed[os.getpid()].name == rust[os.getpid()]
    with native.process(child.pid) as proc:
        modules = [(m.base, m.size, m.name) for m in proc.modules()]
        assert modules == [(int(m["base"], 16), m["size"], m["name"]) for m in cli("modules", str(child.pid))]
        libc = next(m for m in proc.modules() if m.name.startswith("libc.so"))
        exports = {(e.name, e.address) for e in proc.exports(libc)}
        rust_exports = {(e["name"], int(e["address"], 16)) for e in cli("exports", str(child.pid), libc.name)}
        assert exports == rust_exports and len(exports) > 100
        maps = proc.maps()
        assert any(r.base <= child.marker_address < r.base + r.size and "w" in r.access for r in maps)
