#!/usr/bin/env python3
"""Helpers for scripts/guest-dump.sh (python3 stdlib only).

    fixture_util.py initramfs OUT.cpio.gz BUSYBOX INIT_SCRIPT [MODULES_DIR]
        Write a gzip'ed newc cpio archive containing a static busybox, a
        symlink per applet, the probe symlinks (mfprobe_alpha/beta),
        INIT_SCRIPT as /init and the *.ko files of MODULES_DIR in /lib/modules.
        Written directly (no cpio(1), no root needed for the /dev/console
        node) and reproducibly (all mtimes 0).

    fixture_util.py elfinfo DUMP.elf
        Sanity-check a QEMU dump-guest-memory ELF core and print key=value
        lines (PT_LOAD ranges, note summary, per-vCPU CR0/CR3/CR4 from the
        "QEMU" note). Exits non-zero if the file is not what we expect.
"""

import gzip
import os
import stat
import struct
import subprocess
import sys

# ---------------------------------------------------------------- initramfs


class Newc:
    """Minimal writer for the SVR4 "newc" cpio format the kernel unpacks."""

    def __init__(self, fp):
        self.fp = fp
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08X}" for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data),
            0, 0, rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        buf = hdr.encode() + name_b
        buf += b"\0" * (-len(buf) % 4)          # header+name padded to 4
        buf += data + b"\0" * (-len(data) % 4)  # data padded to 4
        self.fp.write(buf)

    def dir(self, name, perm=0o755):
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def file(self, name, data, perm=0o644):
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, perm=0o600):
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def trailer(self):
        self.ino = 0
        self._entry("TRAILER!!!", 0)


def is_static_elf(path):
    """True if `path` is an ELF executable without PT_INTERP (static)."""
    with open(path, "rb") as f:
        ehdr = f.read(64)
        if ehdr[:4] != b"\x7fELF" or ehdr[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", ehdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", ehdr, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if struct.unpack("<I", f.read(4))[0] == 3:  # PT_INTERP
                return False
    return True


def cmd_initramfs(out, busybox, init_script, modules_dir=None):
    if not is_static_elf(busybox):
        sys.exit(f"{busybox} is not a static ELF executable")
    applets = subprocess.run([busybox, "--list"], check=True,
                             capture_output=True, text=True).stdout.split()
    tmp = out + ".tmp"
    with open(tmp, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        c = Newc(gz)
        for d in ("bin", "dev", "etc", "proc", "sys", "run", "tmp", "root"):
            c.dir(d)
        # The kernel opens /dev/console for PID 1 *before* /init can mount
        # devtmpfs, so the node has to be in the archive.
        c.chardev("dev/console", 5, 1)
        with open(busybox, "rb") as f:
            c.file("bin/busybox", f.read(), 0o755)
        for a in sorted(set(applets)):
            if a != "busybox":
                c.symlink("bin/" + a, "busybox")
        # Probe processes: busybox exec'ed through a symlink gets the
        # symlink's basename as comm (see guest-init.sh).
        for probe in ("mfprobe_alpha", "mfprobe_beta"):
            c.symlink("bin/" + probe, "busybox")
        with open(init_script, "rb") as f:
            c.file("init", f.read(), 0o755)
        if modules_dir:
            c.dir("lib")
            c.dir("lib/modules")
            for name in sorted(os.listdir(modules_dir)):
                if name.endswith(".ko"):
                    with open(os.path.join(modules_dir, name), "rb") as f:
                        c.file("lib/modules/" + name, f.read())
        c.trailer()
    os.replace(tmp, out)


# ---------------------------------------------------------------- elfinfo

PT_LOAD, PT_NOTE = 1, 4
NT_PRSTATUS = 1
# Offset of `uint64_t cr[5]` in QEMU's QEMUCPUState (target/i386/arch_dump.c):
# u32 version, u32 size, 18 u64 GPRs/rip/rflags, 10 segments of 24 bytes.
QEMU_CPUSTATE_CR_OFF = 8 + 18 * 8 + 10 * 24


def cmd_elfinfo(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        eh = f.read(64)
        if eh[:4] != b"\x7fELF" or eh[4] != 2 or eh[5] != 1:
            sys.exit(f"{path}: not a little-endian ELF64 file")
        e_type, e_machine = struct.unpack_from("<HH", eh, 16)
        if e_type != 4 or e_machine != 62:
            sys.exit(f"{path}: expected ET_CORE/x86-64, got type={e_type} "
                     f"machine={e_machine}")
        phoff, = struct.unpack_from("<Q", eh, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", eh, 0x36)
        if phnum == 0xFFFF:  # PN_XNUM: real count in section 0's sh_info
            shoff, = struct.unpack_from("<Q", eh, 0x28)
            f.seek(shoff + 44)
            phnum, = struct.unpack("<I", f.read(4))
        loads, notes = [], []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (p_type, _flags, p_off, _vaddr, p_paddr, p_filesz, p_memsz,
             _align) = struct.unpack("<IIQQQQQQ", f.read(56))
            if p_type == PT_LOAD:
                loads.append((p_paddr, p_memsz, p_off, p_filesz))
            elif p_type == PT_NOTE:
                f.seek(p_off)
                notes.append(f.read(p_filesz))

    print(f"elf_file_bytes={size}")
    print(f"elf_pt_load_count={len(loads)}")
    print("elf_pt_load_paddr_ranges=" + ",".join(
        f"{pa:#x}-{pa + ms - 1:#x}" for pa, ms, _, _ in loads))
    print(f"elf_pt_load_bytes={sum(fs for _, _, _, fs in loads)}")
    for pa, ms, off, fs in loads:
        if off + fs > size:
            sys.exit(f"{path}: PT_LOAD at {pa:#x} extends past end of file")

    kinds, cpu = [], 0
    for blob in notes:
        pos = 0
        while pos + 12 <= len(blob):
            namesz, descsz, ntype = struct.unpack_from("<III", blob, pos)
            pos += 12
            name = blob[pos:pos + namesz].rstrip(b"\0").decode(errors="replace")
            pos += (namesz + 3) & ~3
            desc = blob[pos:pos + descsz]
            pos += (descsz + 3) & ~3
            kinds.append(f"{name}/{ntype}")
            if name == "QEMU" and descsz >= QEMU_CPUSTATE_CR_OFF + 40:
                cr = struct.unpack_from("<5Q", desc, QEMU_CPUSTATE_CR_OFF)
                print(f"cpu{cpu}_cr0={cr[0]:#x}")
                print(f"cpu{cpu}_cr3={cr[3]:#x}")
                print(f"cpu{cpu}_cr4={cr[4]:#x}")
                # CR4.LA57 (bit 12): the guest really runs 5-level paging.
                print(f"cpu{cpu}_cr4_la57={'yes' if cr[4] >> 12 & 1 else 'no'}")
                cpu += 1
    counts = {k: kinds.count(k) for k in dict.fromkeys(kinds)}
    print("elf_notes=" + ",".join(f"{k}x{n}" for k, n in counts.items()))
    if not loads:
        sys.exit(f"{path}: no PT_LOAD segments")
    if f"CORE/{NT_PRSTATUS}" not in counts or cpu == 0:
        sys.exit(f"{path}: missing CORE NT_PRSTATUS or QEMU notes")


def main(argv):
    if len(argv) in (5, 6) and argv[1] == "initramfs":
        cmd_initramfs(*argv[2:])
    elif len(argv) == 3 and argv[1] == "elfinfo":
        cmd_elfinfo(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
