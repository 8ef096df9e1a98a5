"""A live QEMU guest (booted by `xtask guest`): processes against the guest's own `ps` and the
Rust tool, reads of its memory, and Volatility 3's `banners` through the bridge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import memflow
from conftest import cli, section


def user_processes(ps: str) -> set[tuple[int, int, str]]:
    """(pid, ppid, name) of the guest's `ps`, without kernel threads and `ps` itself."""
    rows = (line.split(None, 2) for line in ps.splitlines()[1:])
    return {(int(p), int(pp), n) for p, pp, n in rows if p != "2" and pp != "2" and p != "0" and n != "ps"}


def test_live_processes_equal_the_guests_ps_and_the_rust_tool(live):
    with memflow.open(live.chain) as os_:
        listed = {(p.pid, p.ppid, p.name) for p in os_.processes() if p.pid not in (0, 2) and p.ppid != 2}
        rust = {(p["pid"], p["ppid"], p["name"]) for p in cli("-c", live.chain, "ps") if p["pid"] not in (0, 2) and p["ppid"] != 2}
        assert listed == rust
        ps = user_processes(section(live.serial(), "ps"))
        assert ps and listed >= ps
        # After its report, init only started the `sleep` it idles in.
        assert all(ppid == 1 and name == "sleep" for _, ppid, name in listed - ps)
        banner = section(live.serial(), "version").strip().encode()
        assert os_.read(os_.kernel_symbol("linux_banner"), len(banner)) == banner


def test_volatility_reads_the_live_guest(live):
    banner = section(live.serial(), "version").strip()
    connector = live.chain.split(" -> ")[0]
    vol = Path(sys.executable).parent / "vol-memflow"
    out = subprocess.run(
        [str(vol), "-q", "-r", "json", "-f", f"memflow://{connector}", "banners.Banners"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert banner in [row["Banner"] for row in json.loads(out.stdout)]
