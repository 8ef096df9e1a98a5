"""The Volatility 3 bridge: Vol3's own `banners` through memflow equals Vol3 on the file, and
the data layer reads what the guest recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import memflow
import pytest

volatility3 = pytest.importorskip("volatility3")
from memflow.volatility import MemflowLayer  # noqa: E402
from volatility3.framework import contexts, exceptions  # noqa: E402

VOL = Path(sys.executable).parent


def banners(program: str, location: str) -> list:
    out = subprocess.run(
        [str(VOL / program), "-q", "-r", "json", "-f", location, "banners.Banners"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def test_banners_through_memflow_equal_banners_of_the_file(dump):
    direct = banners("vol", str(dump.dump))
    bridged = banners("vol-memflow", f"memflow://coredump:{dump.dump}")
    assert bridged == direct
    assert any(b["Banner"] == dump.meta["linux_banner"] for b in bridged)


def test_the_layer_reads_known_bytes(dump):
    with memflow.open(dump.chain) as os_:
        banner_pa = os_.vtop(os_.kernel_symbol("linux_banner")).physical_address
    context = contexts.Context()
    context.config["memflow.chain"] = dump.phys_chain
    layer = MemflowLayer(context, "memflow", "memflow")
    context.add_layer(layer)
    banner = dump.meta["linux_banner"].encode()
    assert layer.read(banner_pa, len(banner)) == banner
    assert context.layers.read("memflow", banner_pa, 8) == banner[:8]
    assert layer.maximum_address == 0xFFFFFFFF
    assert layer.is_valid(banner_pa, len(banner)) and not layer.is_valid(0x10000000, 1)
    with pytest.raises(exceptions.InvalidAddressException):
        layer.read(0x10000000 - 4, 8)
    assert layer.read(0x10000000 - 4, 8, pad=True)[4:] == bytes(4)
    layer.destroy()
