"""`scan`: patterns, limits, alignment, progress callbacks."""

from __future__ import annotations

import memflow
import pytest


@pytest.fixture(scope="module")
def marker_process(dump):
    with memflow.open(dump.chain) as os_, os_.process("mfprobe_marker") as proc:
        yield proc


def test_progress_reports_every_byte_and_can_stop(marker_process, dump):
    marker = dump.meta["marker"].encode()
    calls = []
    hits = marker_process.scan(marker, progress=lambda done, total: calls.append((done, total)))
    assert hits
    total = calls[-1][1]
    assert calls[-1][0] == total and all(t == total for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    stopped = []
    marker_process.scan(marker, progress=lambda done, total: stopped.append(done) or False)
    assert len(stopped) == 1


def test_limit_align_and_ranges(marker_process, dump):
    marker = dump.meta["marker"].encode()
    hits = marker_process.scan(marker)
    assert marker_process.scan(marker, limit=1) == hits[:1]
    assert marker_process.scan(marker, align=8) == [h for h in hits if h % 8 == 0]
    first = hits[0]
    assert marker_process.scan(marker, ranges=[(first - 16, 64)]) == [first]


def test_bad_patterns_and_callbacks_raise(marker_process):
    with pytest.raises(memflow.InvalidArgumentError, match="fixed byte"):
        marker_process.scan("?? ??")
    with pytest.raises(memflow.InvalidArgumentError, match="zz"):
        marker_process.scan("48 zz")

    def failing(done, total):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        marker_process.scan("7f 45 4c 46", progress=failing)

    def reentrant(done, total):
        marker_process.read(0, 1)

    with pytest.raises(memflow.InvalidArgumentError, match="in use by this thread"):
        marker_process.scan("7f 45 4c 46", progress=reentrant)
