"""Writes a process's module, as it is mapped in memory, to a file (unreadable pages as zeros):
`python dump_module.py CHAIN PROCESS [MODULE] [OUT]`, e.g.
`python dump_module.py "coredump:dump.elf -> linux" mfprobe_marker busybox busybox.bin`."""

import sys

import memflow

CHUNK = 1 << 20


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    chain, selector = sys.argv[1], sys.argv[2]
    process = int(selector) if selector.isdigit() else selector
    with memflow.Inventory().os(chain) as os_, os_.process(process) as proc:
        module = proc.module(sys.argv[3]) if len(sys.argv) > 3 else proc.primary_module()
        out = sys.argv[4] if len(sys.argv) > 4 else f"{module.name}.{module.base:x}.bin"
        buffer = bytearray(CHUNK)
        with open(out, "wb") as file:
            for offset in range(0, module.size, CHUNK):
                view = memoryview(buffer)[: min(CHUNK, module.size - offset)]
                proc.read_into(module.base + offset, view, pad=True)
                file.write(view)
        print(f"{module.name}: {module.size} bytes from {module.base:#x} written to {out}")


if __name__ == "__main__":
    main()
