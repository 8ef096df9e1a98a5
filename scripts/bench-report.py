#!/usr/bin/env python3
"""Summarise the physical-read benchmark (memflow-core/benches/phys_read.rs) as markdown.

Reads criterion's results under TARGET_DIR/criterion (every `new/benchmark.json` with the
`new/estimates.json` beside it) and prints:

  - one row per read size: ours, memcpy and memflow 0.2.4 (median time per read, throughput),
    ours as a share of memcpy's throughput, and ours' speedup over memflow 0.2.4 per call;
  - 8-byte reads through cglue trait objects (how plugins and the C API call a connector);
  - the batched group (64 reads of 8 B): 64 separate calls against one batch;
  - whether issue 2's targets are met.

Usage: scripts/bench-report.py [TARGET_DIR]     (default: target)
Only the Python standard library is used.
"""

import glob
import json
import os
import sys

SIZES = ["8B", "4KiB", "64KiB", "1MiB"]
SIZE_LABEL = {"8B": "8 B", "4KiB": "4 KiB", "64KiB": "64 KiB", "1MiB": "1 MiB"}
# Criterion's median of the sample means: on a shared machine it is less swayed by the odd
# sample taken while another process had the core than the mean is.
STAT = "median"
MEMCPY_TARGET = 0.90  # at 64 KiB and above, ours >= 90% of memcpy throughput
PEER_TARGET = 1.5  # 8 B reads: ours >= 1.5x memflow 0.2.4 per call


def load(target_dir):
    """{(group_id, bench_id): {"t": ns, "lo": ns, "hi": ns, "bytes": n or None}}"""
    root = os.path.join(target_dir, "criterion")
    if not os.path.isdir(root):
        sys.exit(f"no criterion results under {root}; run the benchmark first "
                 f"(cargo bench -p memflow-core --bench phys_read)")
    results = {}
    pattern = os.path.join(root, "**", "new", "benchmark.json")
    for bench_file in glob.glob(pattern, recursive=True):
        est_file = os.path.join(os.path.dirname(bench_file), "estimates.json")
        if not os.path.exists(est_file):
            continue
        with open(bench_file) as f:
            bench = json.load(f)
        with open(est_file) as f:
            est = json.load(f)
        stat = est[STAT]
        throughput = bench.get("throughput") or {}
        bench_id = bench.get("value_str") or bench.get("function_id") or ""
        results[(bench["group_id"], bench_id)] = {
            "t": stat["point_estimate"],
            "lo": stat["confidence_interval"]["lower_bound"],
            "hi": stat["confidence_interval"]["upper_bound"],
            "bytes": throughput.get("Bytes") or throughput.get("BytesDecimal"),
        }
    return results


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(nbytes, ns):
    if not nbytes:
        return ""
    rate = nbytes / (ns * 1e-9)  # bytes per second
    for unit, scale in (("GiB/s", 1 << 30), ("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
        if rate >= scale:
            return f"{rate / scale:.3g} {unit}"
    return f"{rate:.3g} B/s"


def cell(r):
    if r is None:
        return "–"
    rate = fmt_rate(r["bytes"], r["t"])
    return f"{fmt_time(r['t'])} ({rate})" if rate else fmt_time(r["t"])


def main():
    target_dir = sys.argv[1] if len(sys.argv) > 1 else "target"
    res = load(target_dir)
    get = lambda group, bench: res.get((group, bench))
    verdicts = []

    print(f"Time per read, criterion's {STAT} (throughput); ratios from the same {STAT}s.\n")
    print("| size | ours | memcpy | memflow 0.2.4 | ours / memcpy throughput | ours vs memflow 0.2.4 |")
    print("|---|---|---|---|---|---|")
    for size in SIZES:
        group = f"phys_read/{size}"
        ours, memcpy, peer = get(group, "ours"), get(group, "memcpy"), get(group, "memflow-0.2.4")
        if not (ours or memcpy or peer):
            continue
        share = f"{memcpy['t'] / ours['t']:.0%}" if ours and memcpy else "–"
        speedup = f"{peer['t'] / ours['t']:.2f}x" if ours and peer else "–"
        print(f"| {SIZE_LABEL[size]} | {cell(ours)} | {cell(memcpy)} | {cell(peer)} | {share} | {speedup} |")
        if ours and memcpy and size in ("64KiB", "1MiB"):
            ratio = memcpy["t"] / ours["t"]
            verdicts.append((f"{SIZE_LABEL[size]}: ours >= {MEMCPY_TARGET:.0%} of memcpy",
                             ratio >= MEMCPY_TARGET, f"{ratio:.0%}"))
        if ours and peer and size == "8B":
            ratio = peer["t"] / ours["t"]
            verdicts.append((f"8 B: ours >= {PEER_TARGET}x memflow 0.2.4 per call",
                             ratio >= PEER_TARGET, f"{ratio:.2f}x"))

    # Typed 8-byte reads: phys_read::<u64> against the peer's phys_read_into(&mut u64).
    ours_u64, peer_u64 = get("phys_read/8B", "ours-read-u64"), get("phys_read/8B", "memflow-0.2.4-u64")
    if ours_u64 or peer_u64:
        speedup = f"{peer_u64['t'] / ours_u64['t']:.2f}x" if ours_u64 and peer_u64 else "–"
        print(f"| 8 B as `u64` | {cell(ours_u64)} | | {cell(peer_u64)} | | {speedup} |")
        if ours_u64 and peer_u64:
            ratio = peer_u64["t"] / ours_u64["t"]
            verdicts.append((f"8 B as u64: ours >= {PEER_TARGET}x memflow 0.2.4 per call",
                             ratio >= PEER_TARGET, f"{ratio:.2f}x"))

    # 8-byte reads through cglue trait objects (plugins, the C API).
    ours_dyn, peer_dyn = get("phys_read/8B", "ours-dyn"), get("phys_read/8B", "memflow-0.2.4-dyn")
    if ours_dyn or peer_dyn:
        speedup = f"{peer_dyn['t'] / ours_dyn['t']:.2f}x" if ours_dyn and peer_dyn else "–"
        print(f"| 8 B via trait object | {cell(ours_dyn)} | | {cell(peer_dyn)} | | {speedup} |")

    batch_group = "phys_read_batch/64x8B"
    pairs = [
        ("ours", "ours-64-calls", "ours-batch"),
        ("ours via trait object", "ours-dyn-64-calls", "ours-dyn-batch"),
        ("memflow 0.2.4", "memflow-0.2.4-64-calls", "memflow-0.2.4-batch"),
        ("memcpy", "memcpy-64", None),
    ]
    rows = [(label, get(batch_group, calls), get(batch_group, one) if one else None)
            for label, calls, one in pairs]
    if any(c or b for _, c, b in rows):
        print("\n64 reads of 8 B at random offsets: 64 separate calls against one batch "
              "(time per read).\n")
        print("| path | 64 calls | one batch of 64 | batch speedup |")
        print("|---|---|---|---|")
        per = lambda r: fmt_time(r["t"] / 64) if r else "–"
        for (label, calls, one), (_, _, one_id) in zip(rows, pairs):
            speedup = f"{calls['t'] / one['t']:.2f}x" if calls and one else ""
            print(f"| {label} | {per(calls)} | {per(one) if one_id else ''} | {speedup} |")

    if verdicts:
        print("\nTargets (issue 2):\n")
        for what, ok, value in verdicts:
            print(f"- {what}: {value}, {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
