# A Jupyter-friendly session: paste the cells into a notebook (`# %%` marks cells for editors
# that run them, e.g. VS Code or Spyder). Needs only `memflow`; pandas is used if installed.

# %% Open a target: a dump here; "native" for this machine, "qemu:NAME -> linux" for a live guest.
import memflow

CHAIN = "coredump:target/fixtures/cloud-4l/dump.elf -> linux"
os_ = memflow.Inventory().os(CHAIN)
os_.info()

# %% The processes as a table (a list of dicts without pandas).
rows = [{"pid": p.pid, "ppid": p.ppid, "name": p.name, "command": p.command_line} for p in os_.processes()]
try:
    import pandas

    table = pandas.DataFrame(rows).set_index("pid")
except ImportError:
    table = rows
table

# %% One process: its modules and mappings, and a hexdump of its image's first bytes.
proc = os_.process("mfprobe_marker")
image = proc.primary_module()
data = proc.read(image.base, 64)
print("\n".join(f"{image.base + i:#x}  {data[i:i + 16].hex(' ')}" for i in range(0, len(data), 16)))
proc.maps()[:5]

# %% Kernel symbols and a kernel read.
banner = os_.kernel_symbol("linux_banner")
os_.read(banner, 120).split(b"\0")[0].decode()

# %% Release the plugin instances (or let the objects be collected).
proc.close()
os_.close()
