"""Shared fixtures of the Python tests: the repository's builds and guest fixtures, the Rust
command-line tool's answers to compare with, child processes to read, a live guest.

`cargo xtask test` runs these after building the workspace and the wheel; by hand:
`MEMFLOW_BIN_DIR=target/debug target/py-test/bin/pytest memflow-py/tests`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("MEMFLOW_BIN_DIR", REPO / "target" / "debug"))
FIXTURES = REPO / "target" / "fixtures"


def cli(*args: str) -> object:
    """The JSON answer of the Rust command-line tool (`memflow --json ARGS`)."""
    out = subprocess.run([str(BIN_DIR / "memflow"), "--json", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def section(serial: str, name: str) -> str:
    """The lines a guest printed between its `==== MEMFLOW-BEGIN name ====` and END lines."""
    begin, end = f"==== MEMFLOW-BEGIN {name} ====", f"==== MEMFLOW-END {name} ===="
    text = serial.replace("\r", "")
    start = text.index(begin) + len(begin)
    return text[start : text.index(end, start)].strip("\n")


def guest_ps(serial: str) -> dict[int, str]:
    """pid -> command of the guest's own `ps` (without `ps` itself, gone since)."""
    rows = [line.split(None, 2) for line in section(serial, "ps").splitlines()[1:]]
    return {int(pid): command for pid, _, command in rows if command != "ps"}


class Dump:
    """A guest fixture of `cargo xtask fixtures`: its dump and what the guest recorded."""

    def __init__(self, name: str) -> None:
        self.dir = FIXTURES / name
        missing = [f for f in ("dump.elf", "serial.log", "meta.txt", "kallsyms.txt") if not (self.dir / f).is_file()]
        assert not missing, f"fixture {name} is incomplete ({missing}): run `cargo xtask fixtures`"
        self.dump = self.dir / "dump.elf"
        self.serial = (self.dir / "serial.log").read_text()
        self.meta = dict(line.split("=", 1) for line in (self.dir / "meta.txt").read_text().splitlines() if "=" in line and not line.startswith("#"))
        self.chain = f"coredump:{self.dump} -> linux"
        self.phys_chain = f"coredump:{self.dump}"

    def kallsyms(self, name: str) -> int:
        """The address of `name` in the guest's /proc/kallsyms."""
        for line in (self.dir / "kallsyms.txt").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2] == name:
                return int(fields[0], 16)
        raise KeyError(name)


@pytest.fixture(scope="session")
def dump() -> Dump:
    return Dump("cloud-4l")


CHILD = r"""
import sys
marker = bytes.fromhex(sys.argv[1])
buffer = bytearray(64)
print(id(marker), id(buffer), id(bytearray), flush=True)
for line in sys.stdin:
    if line.strip() == "buffer":
        print(bytes(buffer).hex(), flush=True)
"""


class Child:
    """A Python child process holding a known `bytes` object and a `bytearray`."""

    def __init__(self) -> None:
        self.marker = b"MEMFLOW-PY-" + os.urandom(16).hex().encode()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, self.marker.hex()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        marker_id, buffer_id, type_id = map(int, self.proc.stdout.readline().split())
        # CPython: a bytes object's data follows its header (`sys.getsizeof(b"") - 1` bytes);
        # a bytearray points to its data (`ob_bytes`, after the header and the allocated size).
        self.marker_address = marker_id + sys.getsizeof(b"") - 1
        self.bytearray_address = buffer_id
        self.bytearray_type = type_id
        self.pid = self.proc.pid

    def buffer(self) -> bytes:
        """The child's bytearray, as it reports it."""
        self.proc.stdin.write("buffer\n")
        self.proc.stdin.flush()
        return bytes.fromhex(self.proc.stdout.readline().strip())

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


@pytest.fixture
def child():
    c = Child()
    yield c
    c.stop()


class Live:
    """A live QEMU guest (the `cloud-4l` fixture guest), booted by `xtask guest`."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN_DIR / "xtask"), "guest", f"py-{os.getpid()}"], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        facts = {}
        for line in self.proc.stdout:
            line = line.strip()
            if line == "ready":
                break
            if "=" in line:
                key, value = line.split("=", 1)
                facts[key] = value
        assert "qmp" in facts, f"the live guest did not start (xtask exited {self.proc.poll()})"
        self.name = facts["name"]
        self.serial_path = Path(facts["serial"])
        self.chain = f"qemu:{self.name},qmp={facts['qmp']} -> linux"

    def serial(self) -> str:
        return self.serial_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()


@pytest.fixture(scope="session")
def live():
    guest = Live()
    yield guest
    guest.stop()
