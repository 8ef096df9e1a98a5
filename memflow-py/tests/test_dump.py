"""A guest dump (the `cloud-4l` fixture): the Python results equal the Rust tool's and what the
guest itself recorded."""

from __future__ import annotations

import memflow
import pytest
from conftest import cli, guest_ps


@pytest.fixture(scope="module")
def guest(dump):
    with memflow.open(dump.chain) as os_:
        yield os_


def test_processes_equal_the_rust_tool_and_the_guests_ps(guest, dump):
    ours = {(p.pid, p.ppid, p.name, p.command_line) for p in guest.processes()}
    rust = {(p["pid"], p["ppid"], p["name"], p["command_line"]) for p in cli("-c", dump.chain, "ps")}
    assert ours == rust
    pids = {p[0] for p in ours}
    recorded = guest_ps(dump.serial)
    assert len(recorded) > 10 and set(recorded) <= pids
    marker = guest.process_info(int(dump.meta["marker_pid"]))
    assert marker.name == "mfprobe_marker" and guest.process_info("mfprobe_marker") == marker


def test_kernel_symbols_and_modules_equal_kallsyms_and_the_rust_tool(guest, dump):
    assert guest.kernel_symbol("init_task") == dump.kallsyms("init_task")
    found = {s.name: s.address for s in guest.kernel_symbols("init_task")}
    assert found["init_task"] == dump.kallsyms("init_task") and all("init_task" in n for n in found)
    ours = [(m.base, m.name) for m in guest.kernel_modules()]
    assert ours == [(int(m["base"], 16), m["name"]) for m in cli("-c", dump.chain, "kmods")]


def test_the_banner_reads_the_same_through_kernel_and_physical_memory(guest, dump):
    banner = dump.meta["linux_banner"].encode()
    address = guest.kernel_symbol("linux_banner")
    assert guest.read(address, len(banner)) == banner
    translation = guest.vtop(address)
    rust = cli("-c", dump.chain, "vtop", hex(address))
    assert translation.physical_address == int(rust["physical_address"], 16)
    with guest.physical() as phys:
        assert phys.read(translation.physical_address, len(banner)) == banner
        assert phys.mem_map() == [(0, 0x10000000), (0xFFFC0000, 0x40000)]
        assert phys.metadata()["readonly"] is True
        assert phys.cpu_count() == 1
        assert phys.cpu_registers(0)["cr3"] == int(dump.meta["cpu0_cr3"], 16)


def test_a_guest_process_reads_and_scans(guest, dump):
    marker = dump.meta["marker"].encode()
    with guest.process("mfprobe_marker") as proc:
        image = proc.primary_module()
        assert proc.read(image.base, 4) == b"\x7fELF"
        assert proc.vtop(image.base).page_size == 4096
        hits = proc.scan(marker)
        rust = [int(h["address"], 16) for h in cli("-c", dump.chain, "scan", "string", dump.meta["marker"], "--pid", "mfprobe_marker")]
        assert hits == rust and hits
        assert all(proc.read(h, len(marker)) == marker for h in hits)


def test_kernel_scan_finds_the_banner(guest, dump):
    banner = dump.meta["linux_banner"].encode()
    assert guest.kernel_symbol("linux_banner") in guest.scan(banner[:40])


def test_type_offsets_locate_a_tasks_name(guest):
    # The layer's offsets (from the kernel's BTF) read the name where the listing found it.
    task = guest.process_info("mfprobe_marker").address
    comm = guest.read(task + guest.type_member_offset("task_struct", "comm"), 16)
    assert comm.split(b"\0")[0] == b"mfprobe_marker"
    assert guest.type_size("task_struct") > guest.type_member_offset("task_struct", "comm")
    with pytest.raises(memflow.NotFoundError):
        guest.type_member_offset("task_struct", "no_such_member")


def test_dump_writes_a_file_that_opens_with_the_same_bytes_and_processes(dump, tmp_path):
    with memflow.open(dump.phys_chain) as source:
        calls = []
        out = tmp_path / "guest.kdump"
        summary = source.dump(out, "kdump-zstd", progress=lambda done, total: calls.append((done, total)))
        assert summary["format"] == "kdump-zstd" and summary["hole_pages"] == 0 and summary["holes"] == []
        assert summary["bytes_written"] == sum(size for _, size in source.mem_map())
        assert calls and calls[-1][0] == calls[-1][1] and all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
        with memflow.open(f"coredump:{out}") as copy:
            for address, size in source.mem_map():
                step = max(size // 8, 4096) & ~4095
                for at in range(address, address + size, step):
                    assert copy.read(at, 4096) == source.read(at, 4096), hex(at)
        with memflow.open(f"coredump:{out} -> linux") as guest:
            assert {(p.pid, p.name) for p in guest.processes()} == {
                (p["pid"], p["name"]) for p in cli("-c", dump.chain, "ps")
            }
        # Stopped by the callback: CancelledError, and no file.
        stopped = tmp_path / "stopped.elf"
        with pytest.raises(memflow.CancelledError):
            source.dump(stopped, progress=lambda done, total: done < total // 2)
        assert not stopped.exists()
        # An exception in the callback comes through as itself.
        with pytest.raises(ZeroDivisionError):
            source.dump(stopped, "lime", progress=lambda done, total: 1 / 0)
        assert not stopped.exists()
        with pytest.raises(memflow.InvalidArgumentError, match="not a dump format"):
            source.dump(stopped, "vmss")
    # Through the linux layer the dump carries the kernel's own VMCOREINFO.
    with memflow.open(dump.chain) as guest:
        out = tmp_path / "guest-os.elf"
        guest.physical().dump(out)
        with open(out, "rb") as f:
            head = f.read(1 << 20)
        uts = guest.kernel_symbol("init_uts_ns") + guest.type_member_offset("uts_namespace", "name")
        release = guest.read(uts + guest.type_member_offset("new_utsname", "release"), 65).split(b"\0")[0]
        assert release and b"VMCOREINFO\0" in head and b"OSRELEASE=" + release + b"\n" in head

