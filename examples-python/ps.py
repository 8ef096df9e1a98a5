"""Lists the processes of a chain: `python ps.py ["coredump:/path/dump.elf -> linux"]`."""

import sys

import memflow


def main() -> None:
    chain = sys.argv[1] if len(sys.argv) > 1 else "native"
    with memflow.Inventory().os(chain) as os_:
        print(f"{'PID':>7} {'PPID':>7} {'STATE':<7} NAME / COMMAND")
        for p in sorted(os_.processes(), key=lambda p: p.pid):
            print(f"{p.pid:>7} {p.ppid:>7} {p.state:<7} {p.name}  {p.command_line or p.path}")


if __name__ == "__main__":
    main()
