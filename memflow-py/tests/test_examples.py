"""The examples of `examples-python/` run on the dump and print what the API gives."""

from __future__ import annotations

import subprocess
import sys

import memflow
import pytest
from conftest import REPO

EXAMPLES = REPO / "examples-python"


def run(*args: str, cwd=REPO) -> str:
    return subprocess.run([sys.executable, *map(str, args)], check=True, capture_output=True, text=True, cwd=cwd).stdout


@pytest.fixture(scope="module")
def marker(dump):
    """The marker process's image and the addresses of the marker's prefix in its memory."""
    with memflow.open(dump.chain) as os_, os_.process("mfprobe_marker") as proc:
        image = proc.primary_module()
        yield image, proc.read(image.base, image.size, pad=True), proc.scan(b"MEMFLOW-MARKER-")


def test_ps_lists_the_processes(dump):
    out = run(EXAMPLES / "ps.py", dump.chain)
    assert f"{dump.meta['marker_pid']}       1 alive   mfprobe_marker" in out


def test_dump_module_writes_the_mapped_image(dump, marker, tmp_path):
    image, data, _ = marker
    run(EXAMPLES / "dump_module.py", dump.chain, "mfprobe_marker", image.name, tmp_path / "image.bin")
    assert (tmp_path / "image.bin").read_bytes() == data


def test_pattern_and_yara_scans_find_the_marker(dump, marker):
    _, _, hits = marker
    wildcard = " ".join("??" if i == 3 else f"{b:02x}" for i, b in enumerate(b"MEMFLOW-MARKER-"))
    out = run(EXAMPLES / "scan.py", dump.chain, wildcard, "mfprobe_marker")
    assert [int(line.split()[0], 16) for line in out.splitlines()] == hits
    rule = 'rule marker { strings: $a = "MEMFLOW-MARKER-" condition: $a }'
    out = run(EXAMPLES / "yara_scan.py", dump.chain, "mfprobe_marker", "-e", rule)
    assert sorted(int(line.split()[0], 16) for line in out.splitlines()) == hits


def test_notebook_cells_run(dump):
    names: dict = {}
    source = (EXAMPLES / "notebook.py").read_text().replace("target/fixtures/cloud-4l/dump.elf", str(dump.dump))
    exec(compile(source, "notebook.py", "exec"), names)
    assert names["proc"].closed and names["os_"].closed
    assert any(row["name"] == "mfprobe_marker" for row in names["rows"])
