"""Timings of the Python bindings for BENCHMARKS.md ("Python (issue 16)"); not a test.

Run with the test environment's interpreter after `cargo xtask python-test`:

    target/py-test/bin/python memflow-py/bench/bench.py [--rust] [--peer PEER_PYTHON]

Every figure is the median of 9 `timeit` loops (time per statement, no Python function call
around it). `--rust` also
runs `cargo bench -p memflow-cli --bench ps` (criterion) for the Rust process list of the
same dump and prints the ratio; `--peer` times the PyPI `memflow` package (memflow-py, the
peer) in the interpreter given, on its built-in dummy OS, beside ours on our dummy OS.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import timeit
from pathlib import Path

import memflow

REPO = Path(__file__).resolve().parents[2]
DUMP = REPO / "target" / "fixtures" / "cloud-4l" / "dump.elf"
MIB = 1 << 20


def per_call(statement: str, names: dict, number: int) -> float:
    """Median seconds per run of `statement` (with `names` in scope) over 9 timeit loops of
    `number` runs: no Python function call around the statement."""
    return statistics.median(t / number for t in timeit.repeat(statement, globals=names, number=number, repeat=9))


def ns(seconds: float) -> str:
    return f"{seconds * 1e9:,.0f} ns"


def ours(results: dict) -> None:
    with memflow.open(f"coredump:{DUMP} -> linux") as os_, os_.physical() as phys:
        proc = os_.process("mfprobe_marker")
        image = proc.primary_module().base
        translation = proc.vtop(image)
        buffer = bytearray(MIB)
        names = {
            "os_": os_,
            "phys": phys,
            "proc": proc,
            "image": image,
            "translation": translation,
            "pa": translation.physical_address,
            "kernel": os_.info()["base"],
            "buffer": buffer,
            "source": bytes(phys.read(0x1000000, MIB)),
            "target": (ctypes.c_char * MIB).from_buffer(buffer),
            "memmove": ctypes.memmove,
            "MIB": MIB,
        }
        results["trivial PyO3 call (Translation.physical_address getter)"] = per_call("translation.physical_address", names, 500_000)
        results["8 B Process.read (dump, virtual)"] = per_call("proc.read(image, 8)", names, 200_000)
        results["8 B Process.read_u64 (dump, virtual)"] = per_call("proc.read_u64(image)", names, 200_000)
        results["8 B Connector.read (dump, physical)"] = per_call("phys.read(pa, 8)", names, 200_000)
        results["1 MiB Connector.read_into a bytearray (dump, physical)"] = per_call("phys.read_into(0x1000000, buffer)", names, 2_000)
        results["1 MiB Os.read_into a bytearray (dump, kernel virtual)"] = per_call("os_.read_into(kernel, buffer)", names, 2_000)
        results["1 MiB ctypes.memmove bytes -> bytearray (memcpy)"] = per_call("memmove(target, source, MIB)", names, 2_000)
        results["Os.processes() (dump, 50 processes)"] = per_call("os_.processes()", names, 200)
        del names["target"]
        proc.close()


def rust_process_list() -> float:
    """Seconds per `process_info_list` on the same dump, criterion's median."""
    env = dict(os.environ, CARGO_BUILD_JOBS="2")
    subprocess.run(["cargo", "bench", "-p", "memflow-cli", "--bench", "ps", "--", "--noplot"], check=True, cwd=REPO, env=env, stdout=sys.stderr)
    estimates = REPO / "target" / "criterion" / "process_info_list (cloud-4l)" / "new" / "estimates.json"
    return json.loads(estimates.read_text())["median"]["point_estimate"] / 1e9


PEER = r"""
import ctypes, json, statistics, timeit
import memflow
from memflow import dummy

def per_call(statement, number):
    return statistics.median(t / number for t in timeit.repeat(statement, globals=globals(), number=number, repeat=9))

builder = dummy.DummyOs(dummy.DummyMemory(64 << 20))
pid = builder.alloc_process_with_module(4096)
for _ in range(4):
    builder.alloc_process(4096)
os_ = builder.retrieve_os()
proc = os_.process_from_pid(pid)
base = proc.module_info_list()[0].base
print(json.dumps({
    "8 B read": per_call("proc.read(base, ctypes.c_uint64)", 100_000),
    "process list": per_call("os_.process_info_list()", 2_000),
    "processes": len(os_.process_info_list()),
}))
"""


def peer(python: str, results: dict) -> None:
    out = subprocess.run([python, "-c", PEER], check=True, capture_output=True, text=True)
    theirs = json.loads(out.stdout)
    with memflow.Inventory().os("dummy:procs=5") as os_:
        with os_.process("worker1") as proc:
            names = {"proc": proc, "base": proc.primary_module().base, "os_": os_}
            results["ours, dummy OS: 8 B Process.read_u64"] = per_call("proc.read_u64(base)", names, 100_000)
        results["ours, dummy OS: Os.processes() (5 processes)"] = per_call("os_.processes()", names, 2_000)
    results["peer memflow-py 0.2.0, dummy OS: 8 B Process.read(c_uint64)"] = theirs["8 B read"]
    results[f"peer memflow-py 0.2.0, dummy OS: process_info_list() ({theirs['processes']} processes)"] = theirs["process list"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rust", action="store_true", help="also run the Rust criterion bench of the process list")
    parser.add_argument("--peer", metavar="PYTHON", help="an interpreter with the PyPI memflow package")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    results: dict[str, float] = {}
    ours(results)
    if args.peer:
        peer(args.peer, results)
    if args.rust:
        results["Rust process_info_list (criterion median, same dump)"] = rust_process_list()
    print(f"load average after: {os.getloadavg()}")
    for name, seconds in results.items():
        print(f"{name:75} {ns(seconds):>16}")
    trivial = results["trivial PyO3 call (Translation.physical_address getter)"]
    memcpy = results["1 MiB ctypes.memmove bytes -> bytearray (memcpy)"]
    print(f"8 B Process.read / trivial call: {results['8 B Process.read (dump, virtual)'] / trivial:.2f}x")
    print(f"8 B Connector.read / trivial call: {results['8 B Connector.read (dump, physical)'] / trivial:.2f}x")
    print(f"1 MiB physical read_into throughput / memcpy: {memcpy / results['1 MiB Connector.read_into a bytearray (dump, physical)']:.0%}")
    print(f"1 MiB kernel read_into throughput / memcpy: {memcpy / results['1 MiB Os.read_into a bytearray (dump, kernel virtual)']:.0%}")
    if args.rust:
        rust = results["Rust process_info_list (criterion median, same dump)"]
        print(f"process list Python / Rust: {results['Os.processes() (dump, 50 processes)'] / rust:.2f}x")


if __name__ == "__main__":
    main()
