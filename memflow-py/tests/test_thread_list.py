"""`Process.threads()`: a native process's threads equal /proc/PID/task; a guest dump's
processes list their own task, the marker process exactly what the guest recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import memflow
import pytest
from conftest import cli, section

# Starts one thread per name given, each naming itself (its `comm`, which /proc shows), prints
# `ready` once all are named, and ends them when its standard input ends.
NAMED_THREADS = r"""
import sys, threading
names = sys.argv[1:]
named = threading.Barrier(len(names) + 1)
done = threading.Event()
def run(name):
    with open("/proc/thread-self/comm", "w") as comm:
        comm.write(name)
    named.wait()
    done.wait()
threads = [threading.Thread(target=run, args=(name,)) for name in names]
for t in threads:
    t.start()
named.wait()
print("ready", flush=True)
sys.stdin.read()
done.set()
for t in threads:
    t.join()
"""


def test_threads_of_a_native_process_are_those_of_proc_with_their_names():
    names = [f"mf-py-thread-{i}" for i in range(3)]
    child = subprocess.Popen(
        [sys.executable, "-c", NAMED_THREADS, *names], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with memflow.open("native") as os_, os_.process(child.pid) as proc:
            threads = proc.threads()
        tasks = Path(f"/proc/{child.pid}/task")
        kernel = sorted((int(t.name), (t / "comm").read_text().rstrip("\n")) for t in tasks.iterdir())
    finally:
        child.stdin.close()
        child.wait()
    assert sorted((t.tid, t.name) for t in threads) == kernel
    assert {name for _, name in kernel} >= set(names) and len(kernel) == len(names) + 1
    assert child.pid in {t.tid for t in threads}
    assert all(isinstance(t, memflow.Thread) and t.state == "alive" for t in threads)
    with pytest.raises(AttributeError):
        threads[0].tid = 0  # frozen


def test_every_guest_process_lists_its_own_task_and_the_marker_what_the_guest_recorded(dump):
    recorded = dict(line.split("=", 1) for line in section(dump.serial, "marker").splitlines() if "=" in line)
    marker = (int(recorded["pid"]), recorded["comm"])
    assert marker == (int(dump.meta["marker_pid"]), "mfprobe_marker")
    with memflow.open(dump.chain) as os_:
        processes = os_.processes()
        assert len(processes) > 10
        for info in processes:
            with os_.process(info.pid) as proc:
                threads = proc.threads()
            assert info.pid in {t.tid for t in threads}, f"{info}: {threads}"
        with os_.process(marker[0]) as proc:
            assert [(t.tid, t.name, t.state) for t in proc.threads()] == [(*marker, "alive")]
    rust = cli("-c", dump.chain, "threads", str(marker[0]))
    assert [(t["tid"], t["name"]) for t in rust] == [marker]


def test_a_layer_without_threads_raises_unsupported():
    with memflow.Inventory().os("dummy:procs=3") as os_, os_.process("init") as proc:
        with pytest.raises(memflow.UnsupportedError):
            proc.threads()
