"""Scans a process (or the kernel, or physical memory) for a byte pattern with wildcards, with
a progress line: `python scan.py CHAIN PATTERN [PROCESS|--kernel|--phys]`, e.g.
`python scan.py "coredump:dump.elf -> linux" "7f 45 4c 46 ?? 01" mfprobe_marker`.

For YARA rules, see `yara_scan.py`.
"""

import sys

import memflow


def progress(done: int, total: int) -> None:
    print(f"\rscanned {done >> 10} of {total >> 10} KiB", end="", file=sys.stderr, flush=True)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    chain, pattern = sys.argv[1], sys.argv[2]
    where = sys.argv[3] if len(sys.argv) > 3 else "--kernel"
    with memflow.Inventory().os(chain) as os_:
        space: memflow.AddressSpace
        if where == "--kernel":
            space = os_
        elif where == "--phys":
            space = os_.physical()
        else:
            space = os_.process(int(where) if where.isdigit() else where)
        with space:
            hits = space.scan(pattern, progress=progress, limit=1000)
            print(file=sys.stderr)
            for address in hits:
                print(f"{address:#x}  {space.read(address, 16, pad=True).hex(' ')}")


if __name__ == "__main__":
    main()
