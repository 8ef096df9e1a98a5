"""Plugin handles: a plugin library stays loaded while an object made from it lives and is
unloaded when the last one goes (observed in /proc/self/maps)."""

from __future__ import annotations

import gc
import shutil

import memflow
import pytest
from conftest import BIN_DIR, REPO


def mapped(path) -> bool:
    with open("/proc/self/maps") as maps:
        return str(path) in maps.read()


@pytest.fixture
def probe_plugin(request):
    """A private copy of the probe plugin library (connector `probe`), in a directory memflow
    trusts (below the repository, not the world-writable /tmp)."""
    directory = REPO / "target" / "py-test-plugins" / request.node.name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o755)
    library = directory / "libprobe.so"
    shutil.copy(BIN_DIR / "libmemflow_probe_fixture.so", library)
    library.chmod(0o755)
    yield library
    shutil.rmtree(directory)


def test_close_and_with_blocks_unload_the_library(probe_plugin):
    inventory = memflow.Inventory(scan=False)
    [plugin] = inventory.add_file(probe_plugin)
    assert plugin.name == "probe" and plugin.kind == "connector" and str(plugin.path) == str(probe_plugin)
    assert not mapped(probe_plugin), "listed without being loaded"
    first = inventory.chain("probe:ok")
    second = first.clone()
    del inventory
    gc.collect()
    assert mapped(probe_plugin), "the connectors keep it loaded"
    with first:
        assert first.metadata()["real_size"] == 1 << 16
    assert mapped(probe_plugin), "the clone still keeps it loaded"
    second.close()
    assert not mapped(probe_plugin)


def test_collected_objects_unload_the_library(probe_plugin):
    inventory = memflow.Inventory(scan=False)
    inventory.add_file(probe_plugin)
    connectors = [inventory.chain("probe:ok") for _ in range(3)]
    del inventory
    assert mapped(probe_plugin)
    del connectors
    gc.collect()
    assert not mapped(probe_plugin)
