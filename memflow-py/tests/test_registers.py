"""`Connector.cpu_arch()` and `cpu_registers(cpu)` on the x86, ARM64 and RISC-V guest dumps:
the registers the Rust tool's `info` shows, with the program counter in the guest kernel's
text (the guests idled in their kernels)."""

from __future__ import annotations

import memflow
import pytest
from conftest import Dump, cli

# The register names of the architectures whose dumps give all of them (x86: see below).
NAMES = {
    "aarch64": [f"x{i}" for i in range(31)] + ["sp", "pc", "pstate"],
    # The dumps record no satp.
    "riscv64": ["pc"] + [f"x{i}" for i in range(1, 32)],
}


@pytest.mark.parametrize(("fixture", "arch"), [("cloud-4l", "x86"), ("arm64-4k", "aarch64"), ("riscv64-sv39", "riscv64")])
def test_cpu_registers_are_the_rust_tools_with_pc_where_the_cpu_ran(fixture, arch):
    dump = Dump(fixture)
    rust = cli("-c", dump.phys_chain, "info")["cpus"]
    with memflow.open(dump.phys_chain) as conn:
        assert conn.cpu_arch() == arch
        assert conn.cpu_count() == len(rust) == 1
        registers = conn.cpu_registers(0)
        with pytest.raises(memflow.NotFoundError):
            conn.cpu_registers(1)
    with memflow.open(dump.chain) as os_, os_.physical() as phys:
        assert phys.cpu_arch() == arch and phys.cpu_registers(0) == registers
    assert rust[0]["arch"] == arch
    assert list(registers.items()) == [(name, int(value, 16)) for name, value in rust[0]["registers"].items()]
    # QEMU stopped the CPU in the kernel (pc in its text) or, rarely, in a process (lower half).
    pc = registers["rip" if arch == "x86" else "pc"]
    in_kernel = pc >> 63 == 1
    assert dump.kallsyms("_text") <= pc < dump.kallsyms("_etext") if in_kernel else 0 < pc < 1 << 56, hex(pc)
    if arch == "x86":
        assert len(registers) == 29 and registers["cr3"] == int(dump.meta["cpu0_cr3"], 16)
        return
    assert list(registers) == NAMES[arch]
    stack = registers["sp" if arch == "aarch64" else "x2"]
    assert stack >> 63 == in_kernel, "the stack in the half of the code that ran"
    if arch == "aarch64":
        assert registers["pstate"] & 0b1100 == (0b0100 if in_kernel else 0), "EL1 in the kernel, EL0 in a process"


def test_a_connector_without_cpu_state_has_no_arch():
    with memflow.open("native") as os_, os_.physical() as phys:
        assert phys.cpu_count() == 0 and phys.cpu_arch() is None
