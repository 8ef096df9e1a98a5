"""The typed stubs (`memflow/__init__.pyi`) agree with the extension: mypy's stubtest checks
every class, method and parameter against the runtime objects."""

from __future__ import annotations

import subprocess
import sys


def test_stubs_match_the_runtime(tmp_path):
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nignore_missing_imports = True\n")
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(config), "memflow"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    errors = [line for line in out.stdout.splitlines() if line.startswith("error:")]
    # Not ours to state: `@disjoint_base` (typing's newest marker, which the extension's
    # classes are as every native class), and Volatility's metaclasses (it ships no stubs).
    ours = [e for e in errors if "disjoint base" not in e and not e.startswith("error: memflow.volatility.")]
    assert not ours, out.stdout
