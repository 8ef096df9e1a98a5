#!/usr/bin/env bash
# Produce a real QEMU guest physical-memory dump (ELF core) as a test fixture.
#
#   scripts/guest-dump.sh NAME [--cpu qemu64|max] [--mem 256M]
#                              [--append "nokaslr ..."] [--kernel cloud|generic]
#                              [--timeout SECONDS] [--require-la57] [--force]
#   scripts/guest-dump.sh --all [--force]   # the default fixture set (cloud-4l, cloud-5l,
#                                           # cloud-4l-kaslr, generic-5l, pti-4l, cloud-4l-5g)
#
# What it does:
#   1. installs qemu-system-x86 / busybox-static / python3 with apt if missing;
#   2. fetches a Debian kernel package (apt-get download + dpkg-deb -x, never
#      installed on the host) into target/fixtures/kernels/<pkg>_<version>/;
#   3. builds a busybox initramfs whose /init is scripts/guest-init.sh;
#   4. boots it under TCG, waits for MEMFLOW-GUEST-READY on the serial console,
#      dumps guest memory over QMP (dump-guest-memory, ELF, paging=false), quits;
#   5. writes target/fixtures/NAME/{dump.elf,serial.log,kallsyms.txt,meta.txt}.
#
# Outputs (target/fixtures/NAME/):
#   dump.elf      ELF64 ET_CORE: one PT_LOAD per guest RAM range (p_paddr =
#                 guest physical address), NOTE with CORE/NT_PRSTATUS and
#                 QEMU/QEMUCPUState (incl. CR0..CR4) per vCPU.
#   serial.log    guest console (ttyS0), CRs stripped. Kernel boot log, then
#                 sections "==== MEMFLOW-BEGIN <s> ====" .. "==== MEMFLOW-END <s> ===="
#                 (uname version cmdline cpuinfo ps marker kallsyms kallsyms-full
#                 modules iomem meminfo dmesg), then the line MEMFLOW-GUEST-READY.
#   kallsyms.txt  complete /proc/kallsyms (real addresses), sent over ttyS1.
#   meta.txt      key=value: the request (compared for cache hits) followed by
#                 observed facts (kernel package/version, la57, marker, CRs...).
#
# Idempotent: if dump.elf + serial.log exist and the request part of meta.txt
# matches, it exits 0 immediately without touching apt or QEMU. The kernel
# version is *not* part of the request: a cached fixture keeps its kernel
# until --force (or deleting the directory) even if apt has a newer one.
set -euo pipefail

LOG_TAG=guest-dump
NAME=''
# shellcheck source=scripts/guest-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/guest-common.sh"
# Bump when this script changes what ends up in a fixture (invalidates caches).
# Changes to guest-init.sh invalidate caches automatically (init_sha256).
FIXTURE_FORMAT=2

# The sections guest-init.sh must have printed.
SECTIONS=(uname version cmdline cpuinfo ps marker kallsyms kallsyms-full modules iomem meminfo dmesg)

usage() {
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

# ----------------------------------------------------------------- arguments
FORCE=0 REQUIRE_LA57=0 ALL=0
while (($#)); do
    guest_option "$1" "${2-}"
    if ((SHIFT)); then shift "$SHIFT"; continue; fi
    case $1 in
        --require-la57) REQUIRE_LA57=1; shift ;;
        --force) FORCE=1; shift ;;
        --all) ALL=1; shift ;;
        -h|--help) usage 0 ;;
        -*) echo "unknown option: $1" >&2; usage 2 ;;
        *) [[ -z $NAME ]] || { echo "only one NAME allowed" >&2; usage 2; }
           NAME=$1; shift ;;
    esac
done

if ((ALL)); then
    # The default fixture set. Add lines here to extend it.
    [[ -z $NAME ]] || die "--all takes no NAME"
    extra=(--timeout "$TIMEOUT")
    ((FORCE)) && extra+=(--force)
    fixture() { "${BASH_SOURCE[0]}" "$@" "${extra[@]}"; }
    fixture cloud-4l --kernel cloud --cpu qemu64 --mem 256M --append nokaslr
    fixture cloud-5l --kernel cloud --cpu max --mem 256M --append nokaslr --require-la57
    fixture cloud-4l-kaslr --kernel cloud --cpu qemu64 --mem 256M --append ''
    fixture generic-5l --kernel generic --cpu max --mem 256M --append nokaslr --require-la57
    # An Intel CPU model: the kernel isolates user and kernel page tables (PTI).
    fixture pti-4l --kernel cloud --cpu Skylake-Client --mem 256M --append nokaslr
    # More than 4 GiB of RAM: a memory map with a hole below 4 GiB (a 5 GiB dump file).
    fixture cloud-4l-5g --kernel cloud --cpu qemu64 --mem 5G --append nokaslr
    exit 0
fi

[[ -n $NAME ]] || usage 2
check_guest_options

OUT=$FIXTURES/$NAME

# The part of meta.txt that must match for a cache hit (order matters).
request_meta() {
    local init_sha
    init_sha=$(sha256sum "$INIT_SCRIPT" | cut -d' ' -f1)
    printf '%s\n' "fixture_format=$FIXTURE_FORMAT" "name=$NAME" "machine=$MACHINE" \
        "cpu=$CPU" "mem=$MEM" "append=$APPEND" "kernel=$KERNEL" \
        "init_sha256=$init_sha"
}
REQUEST_KEYS='^(fixture_format|name|machine|cpu|mem|append|kernel|init_sha256)='

cache_hit() {
    ((FORCE)) && return 1
    [[ -s $OUT/dump.elf && -s $OUT/serial.log && -f $OUT/meta.txt ]] || return 1
    [[ "$(grep -E "$REQUEST_KEYS" "$OUT/meta.txt")" == "$(request_meta)" ]]
}

if cache_hit; then
    log "cache hit: $OUT"
    exit 0
fi

ensure_tools

# Serialise concurrent runs for the same fixture (e.g. parallel test jobs).
mkdir -p "$OUT" "$KERNELS"
exec 9>"$OUT/.lock"
flock 9
if cache_hit; then
    log "cache hit (built by a concurrent run): $OUT"
    exit 0
fi

fetch_kernel

# --------------------------------------------------------------------- boot
WORK=
cleanup() {
    local rc=$?
    stop_qemu
    [[ -z $WORK ]] || rm -rf "$WORK"
    rm -f "$OUT/dump.elf.partial"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# A previous, possibly different, fixture is invalid from here on.
rm -f "$OUT/meta.txt"

boot_guest
log "dumping memory"

timeout 900 python3 "$SCRIPT_DIR/qmp.py" "$QMP_SOCK" dump "$OUT/dump.elf.partial" \
    --timeout 600 >&2 || fail_boot "memory dump over QMP failed"
# qmp.py sent "quit"; give QEMU a moment to exit (cleanup kills it otherwise).
for _ in $(seq 1 40); do
    kill -0 "$QEMU_PID" 2>/dev/null || break
    sleep 0.25
done
if ! kill -0 "$QEMU_PID" 2>/dev/null; then
    wait "$QEMU_PID" 2>/dev/null || true
    QEMU_PID=
fi

# ------------------------------------------------------------------- verify
tr -d '\r' <"$SERIAL_RAW" >"$WORK/serial.log"
section() {  # print the body of one serial.log section
    awk -v s="$1" '$0 == "==== MEMFLOW-END " s " ====" { p = 0 }
                   p { print }
                   $0 == "==== MEMFLOW-BEGIN " s " ====" { p = 1 }' "$WORK/serial.log"
}
for s in "${SECTIONS[@]}"; do
    grep -qx "==== MEMFLOW-END $s ====" "$WORK/serial.log" ||
        die "serial log lacks section '$s' (see guest-init.sh)"
done
ks_lines=$(section kallsyms-full | sed -n 's/^lines=//p')
ks_sha=$(section kallsyms-full | sed -n 's/^sha256=//p')
[[ "$(sha256sum <"$KALLSYMS_RAW" | cut -d' ' -f1)" == "$ks_sha" ]] ||
    die "kallsyms.txt from ttyS1 is incomplete ($(wc -l <"$KALLSYMS_RAW")/$ks_lines lines)"

ELFINFO=$(python3 "$SCRIPT_DIR/fixture_util.py" elfinfo "$OUT/dump.elf.partial") ||
    die "dump.elf failed the ELF core sanity check"
LA57=$(section cpuinfo | sed -n 's/^la57=//p')
CR4_LA57=$(sed -n 's/^cpu0_cr4_la57=//p' <<<"$ELFINFO")
if [[ $CPU == max && $LA57 != yes ]]; then
    msg="guest /proc/cpuinfo does not list la57 with -cpu max (cr4.la57=$CR4_LA57)"
    ((REQUIRE_LA57)) && die "$msg"
    log "WARNING: $msg"
fi
((REQUIRE_LA57 == 0)) || [[ $LA57 == yes ]] || die "guest has no la57 (--require-la57)"

# ------------------------------------------------------------------ publish
{
    request_meta
    echo "# ---- observed (not compared for cache hits) ----"
    echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "kernel_package=$KPKG"
    echo "kernel_version=$KVER"
    echo "kernel_release=$(section uname | awk '{ print $3 }')"
    echo "kernel_dir=kernels/$(basename "$KDIR")"
    echo "kernel_cmdline=$(section cmdline)"
    echo "linux_banner=$(section version)"
    echo "qemu_version=$(qemu-system-x86_64 --version | head -n 1)"
    echo "guest_la57_cpuinfo=$LA57"
    echo "marker=$(section marker | sed -n 's/^marker=//p')"
    echo "marker_pid=$(section marker | sed -n 's/^pid=//p')"
    echo "kallsyms_lines=$ks_lines"
    echo "boot_seconds=$BOOT_SECONDS"
    echo "$ELFINFO"
} >"$WORK/meta.txt"
# meta.txt goes last: its presence marks a complete fixture.
chmod 0644 "$OUT/dump.elf.partial"  # QEMU creates it 0400; tests may not run as root
mv -f "$OUT/dump.elf.partial" "$OUT/dump.elf"
mv -f "$WORK/serial.log" "$OUT/serial.log"
mv -f "$KALLSYMS_RAW" "$OUT/kallsyms.txt"
mv -f "$WORK/meta.txt" "$OUT/meta.txt"
log "done: $OUT ($(du -h "$OUT/dump.elf" | cut -f1) dump, boot ${BOOT_SECONDS}s, la57=$LA57)"
