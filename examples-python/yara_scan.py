"""Scans a process's mapped memory with YARA rules (YARA-X: `pip install yara-x`):
`python yara_scan.py CHAIN PROCESS RULES_FILE`, or with `-e 'rule r { strings: $a = "x" condition: $a }'`
in place of RULES_FILE. Each mapped range is read (unreadable pages as zeros) and scanned on its
own, so a match never spans two ranges; ranges are read in pieces of at most 64 MiB, which
overlap by 4 KiB so that matches up to that long are not cut."""

import sys

import memflow
import yara_x

PIECE = 64 << 20
OVERLAP = 4096
# A mapping's size comes from the target (a guest's page tables): larger ones are skipped.
MAX_MAPPING = 4 << 30


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    chain, selector = sys.argv[1], sys.argv[2]
    source = sys.argv[4] if sys.argv[3] == "-e" else open(sys.argv[3]).read()
    scanner = yara_x.Scanner(yara_x.compile(source))
    with memflow.Inventory().os(chain) as os_, os_.process(int(selector) if selector.isdigit() else selector) as proc:
        seen = set()
        for mapping in proc.maps():
            if mapping.size > MAX_MAPPING:
                print(f"skipping {mapping.size} bytes at {mapping.base:#x}: larger than {MAX_MAPPING}", file=sys.stderr)
                continue
            for offset in range(0, mapping.size, PIECE - OVERLAP):
                start = mapping.base + offset
                data = proc.read(start, min(PIECE, mapping.size - offset), pad=True)
                for rule in scanner.scan(data).matching_rules:
                    for pattern in rule.patterns:
                        for match in pattern.matches:
                            hit = (rule.identifier, pattern.identifier, start + match.offset)
                            if hit not in seen:
                                seen.add(hit)
                                print(f"{hit[2]:#x}  {rule.identifier} {pattern.identifier} ({match.length} bytes, {mapping.access})")


if __name__ == "__main__":
    main()
