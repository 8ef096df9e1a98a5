#!/usr/bin/env python3
"""Summarise the translation benchmark (memflow-core/benches/translate.rs, issue 3) and the C
boundary benchmark (memflow-ffi/benches/c_boundary.rs, issue 5) as markdown.

Reads criterion's results under TARGET_DIR/criterion (every `new/benchmark.json` with the
`new/estimates.json` beside it; the median of the sample means, as scripts/bench-report.py)
and prints, for whichever of the two benchmarks has results:

  - translations per second at batch 1, 64 and 4096, ours against memflow 0.2.4;
  - the whole kernel-half page walk, ours against memflow 0.2.4;
  - virtual reads of 4 KiB, 64 KiB and 1 MiB against memcpy of the same physical bytes;
  - 8 B and 4 KiB physical reads through the C API against the same reads from Rust;
  - whether the targets of issues 3 and 5 are met.

Usage: scripts/bench-report-translate.py [TARGET_DIR]     (default: target)
Only the Python standard library is used.
"""

import glob
import json
import os
import sys

STAT = "median"
PEER = "memflow-0.2.4"


def load(target_dir):
    """{(group_id, bench_id): median ns per iteration}"""
    root = os.path.join(target_dir, "criterion")
    if not os.path.isdir(root):
        sys.exit(f"no criterion results under {root}; run the benchmarks first")
    out = {}
    for bench_file in glob.glob(os.path.join(root, "**", "new", "benchmark.json"), recursive=True):
        est_file = os.path.join(os.path.dirname(bench_file), "estimates.json")
        if not os.path.exists(est_file):
            continue
        with open(bench_file) as f:
            bench = json.load(f)
        with open(est_file) as f:
            est = json.load(f)
        bench_id = bench.get("value_str") or bench.get("function_id") or ""
        out[(bench["group_id"], bench_id)] = est[STAT]["point_estimate"]
    return out


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def gib_s(nbytes, ns):
    return f"{nbytes / ns * 1e9 / (1 << 30):.1f} GiB/s"


def verdict(ok):
    return "met" if ok else "**missed**"


def translate_tables(r):
    lines = []
    rows = []
    for batch in (1, 64, 4096):
        g = f"translate/batch{batch}"
        if (g, "ours") not in r:
            continue
        ours = batch / r[(g, "ours")] * 1e3  # M translations / s
        peer = batch / r[(g, PEER)] * 1e3
        ratio = ours / peer
        target = "≥ 3x: " + verdict(ratio >= 3) if batch >= 64 else "(none)"
        rows.append(f"| {batch} | {ours:.1f} M/s ({fmt_time(r[(g, 'ours')] / batch)} each) | "
                    f"{peer:.1f} M/s ({fmt_time(r[(g, PEER)] / batch)} each) | {ratio:.1f}x | {target} |")
    if rows:
        lines += ["| batch | ours | memflow 0.2.4 | ours / memflow | target |",
                  "|---:|---:|---:|---:|---|"] + rows + [""]
    g = "translate_walk"
    if (g, "ours") in r:
        ratio = r[(g, PEER)] / r[(g, "ours")]
        lines += ["| whole kernel-half page walk | ours | memflow 0.2.4 | memflow / ours | target |",
                  "|---|---:|---:|---:|---|",
                  f"| `virt_page_map_range` | {fmt_time(r[(g, 'ours')])} | {fmt_time(r[(g, PEER)])} | "
                  f"{ratio:.1f}x faster | ≥ 5x: {verdict(ratio >= 5)} |", ""]
    rows = []
    for label, size, need in (("4KiB", 4 << 10, 0.70), ("64KiB", 64 << 10, 0.85), ("1MiB", 1 << 20, 0.85)):
        g = f"virt_read/{label}"
        if (g, "ours") not in r:
            continue
        t = {k: r.get((g, k)) for k in ("ours", "ours-tlb", PEER, "ours-phys", "memcpy")}
        share = t["memcpy"] / t["ours"]
        tlb_share = t["memcpy"] / t["ours-tlb"]
        peer_share = t["memcpy"] / t[PEER]
        rows.append(f"| {label.replace('KiB', ' KiB').replace('MiB', ' MiB')} | "
                    f"{fmt_time(t['ours'])} ({gib_s(size, t['ours'])}) | "
                    f"{fmt_time(t['ours-tlb'])} | "
                    f"{fmt_time(t[PEER])} ({gib_s(size, t[PEER])}) | "
                    f"{fmt_time(t['ours-phys'])} | {fmt_time(t['memcpy'])} ({gib_s(size, t['memcpy'])}) | "
                    f"{share:.0%} | {tlb_share:.0%} | {peer_share:.0%} | ≥ {need:.0%}: {verdict(share >= need)} |")
    if rows:
        lines += ["| virtual read | ours | ours + TLB | memflow 0.2.4 | our connector, physical pieces only | memcpy | "
                  "ours / memcpy | ours + TLB / memcpy | memflow / memcpy | target (ours) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"] + rows + [""]
    return lines


def c_boundary_table(r):
    rows = []
    for label in ("8B", "4KiB"):
        g = f"c_boundary/{label}"
        if (g, "c-api") not in r:
            continue
        t = {k: r.get((g, k)) for k in ("c-api", "c-api-so", "rust", "rust-concrete")}
        ratio = t["c-api"] / t["rust"]
        ratio_so = t["c-api-so"] / t["rust"]
        worst = max(ratio, ratio_so)
        rows.append(f"| {label.replace('KiB', ' KiB').replace('B', ' B') if label == '8B' else '4 KiB'} | "
                    f"{fmt_time(t['c-api'])} | {fmt_time(t['c-api-so'])} | {fmt_time(t['rust'])} | "
                    f"{fmt_time(t['rust-concrete'])} | {ratio:.2f}x | {ratio_so:.2f}x | "
                    f"≤ 1.2x: {verdict(worst <= 1.2)} |")
    if not rows:
        return []
    return ["| read | C API (rlib) | C API (`libmemflow_ffi.so`) | Rust, same instance type | "
            "Rust, concrete `FileConnector` | C / Rust | C (.so) / Rust | target |",
            "|---|---:|---:|---:|---:|---:|---:|---|"] + rows + [""]


def main():
    target_dir = sys.argv[1] if len(sys.argv) > 1 else "target"
    r = load(target_dir)
    out = translate_tables(r)
    cb = c_boundary_table(r)
    if out:
        print("### Address translation (issue 3)\n")
        print("\n".join(out))
    if cb:
        print("### The C boundary (issue 5)\n")
        print("\n".join(cb))
    if not out and not cb:
        sys.exit("no results of the translate or c_boundary benchmarks found")


if __name__ == "__main__":
    main()
