#!/usr/bin/env bash
# Produce a real QEMU guest physical-memory dump (ELF core) as a test fixture.
#
#   scripts/guest-dump.sh NAME [--cpu qemu64|max] [--mem 256M]
#                              [--append "nokaslr ..."] [--kernel cloud|generic]
#                              [--timeout SECONDS] [--require-la57] [--force]
#   scripts/guest-dump.sh --all [--force]   # the default fixture set (cloud-4l, cloud-5l)
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
#                 iomem meminfo dmesg), then the line MEMFLOW-GUEST-READY.
#   kallsyms.txt  complete /proc/kallsyms (real addresses), sent over ttyS1.
#   meta.txt      key=value: the request (compared for cache hits) followed by
#                 observed facts (kernel package/version, la57, marker, CRs...).
#
# Idempotent: if dump.elf + serial.log exist and the request part of meta.txt
# matches, it exits 0 immediately without touching apt or QEMU. The kernel
# version is *not* part of the request: a cached fixture keeps its kernel
# until --force (or deleting the directory) even if apt has a newer one.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
FIXTURES=$REPO_ROOT/target/fixtures
KERNELS=$FIXTURES/kernels
INIT_SCRIPT=$SCRIPT_DIR/guest-init.sh
# Bump when this script changes what ends up in a fixture (invalidates caches).
# Changes to guest-init.sh invalidate caches automatically (init_sha256).
FIXTURE_FORMAT=1
MACHINE=q35

# The sections guest-init.sh must have printed.
SECTIONS=(uname version cmdline cpuinfo ps marker kallsyms kallsyms-full iomem meminfo dmesg)

log() { echo "[guest-dump${NAME:+ $NAME}] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

# ----------------------------------------------------------------- arguments
NAME='' CPU=qemu64 MEM=256M APPEND=nokaslr KERNEL=cloud TIMEOUT=300
FORCE=0 REQUIRE_LA57=0 ALL=0
while (($#)); do
    case $1 in
        --cpu) CPU=${2:?--cpu needs a value}; shift 2 ;;
        --mem) MEM=${2:?--mem needs a value}; shift 2 ;;
        --append) APPEND=${2?--append needs a value}; shift 2 ;;
        --kernel) KERNEL=${2:?--kernel needs a value}; shift 2 ;;
        --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
        --require-la57) REQUIRE_LA57=1; shift ;;
        --force) FORCE=1; shift ;;
        --all) ALL=1; shift ;;
        -h|--help) usage 0 ;;
        -*) echo "unknown option: $1" >&2; usage 2 ;;
        *) [[ -z $NAME ]] || { echo "only one NAME allowed" >&2; usage 2; }
           NAME=$1; shift ;;
    esac
done

[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"

if ((ALL)); then
    # The default fixture set. Add lines here to extend it.
    [[ -z $NAME ]] || die "--all takes no NAME"
    extra=(--timeout "$TIMEOUT")
    ((FORCE)) && extra+=(--force)
    fixture() { "${BASH_SOURCE[0]}" "$@" "${extra[@]}"; }
    fixture cloud-4l --kernel cloud --cpu qemu64 --mem 256M --append nokaslr
    fixture cloud-5l --kernel cloud --cpu max --mem 256M --append nokaslr --require-la57
    exit 0
fi

[[ -n $NAME ]] || usage 2
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ && $NAME != kernels ]] ||
    die "invalid fixture name '$NAME'"
case $KERNEL in
    cloud) META_PKG=linux-image-cloud-amd64 ;;
    generic) META_PKG=linux-image-amd64 ;;
    *) die "--kernel must be cloud or generic" ;;
esac
[[ $MEM =~ ^[0-9]+[MG]?$ ]] || die "--mem must look like 256M or 1G"

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

# ----------------------------------------------------------------- host tools
as_root() {
    if ((EUID == 0)); then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

apt_install() {
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    log "installing: $*"
    # On a fresh machine the package lists may be missing: update, retry once.
    as_root "${apt[@]}" install -y --no-install-recommends "$@" || {
        as_root "${apt[@]}" update && as_root "${apt[@]}" install -y --no-install-recommends "$@"
    }
}

busybox_static_installed() {
    [[ "$(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null)" == installed ]]
}

ensure_tools() {
    local pkgs=()
    command -v qemu-system-x86_64 >/dev/null || pkgs+=(qemu-system-x86)
    # The "busybox" package ships a dynamically linked /bin/busybox that is
    # useless in an initramfs without libc; we need busybox-static (or an
    # explicit BUSYBOX=/path/to/static/busybox).
    [[ -n ${BUSYBOX:-} ]] || busybox_static_installed || pkgs+=(busybox-static)
    command -v python3 >/dev/null || pkgs+=(python3)
    command -v flock >/dev/null || pkgs+=(util-linux)
    ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
    BUSYBOX=${BUSYBOX:-/bin/busybox}
}

ensure_tools

# Serialise concurrent runs for the same fixture (e.g. parallel test jobs).
mkdir -p "$OUT" "$KERNELS"
exec 9>"$OUT/.lock"
flock 9
if cache_hit; then
    log "cache hit (built by a concurrent run): $OUT"
    exit 0
fi

# ------------------------------------------------------------------- kernel
# Sets KDIR (kernel cache dir), KPKG and KVER.
fetch_kernel() {
    exec 8>"$KERNELS/.lock"
    flock 8
    # linux-image-cloud-amd64 is a metapackage; the real kernel is the
    # versioned package it depends on (e.g. linux-image-6.1.0-56-cloud-amd64).
    resolve() {
        apt-cache depends "$META_PKG" 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
    }
    KPKG=$(resolve)
    if [[ -z $KPKG ]]; then
        log "apt-cache does not know $META_PKG; running apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update >&2 || true
        KPKG=$(resolve)
    fi
    if [[ -n $KPKG ]]; then
        KVER=$(apt-cache policy "$KPKG" | awk '$1 == "Candidate:" { print $2 }')
        [[ -n $KVER && $KVER != "(none)" ]] || die "no candidate version for $KPKG"
        KDIR=$KERNELS/${KPKG}_${KVER//:/%3a}
    else
        # Offline fallback: newest kernel of this flavour already in the cache.
        local pat='linux-image-*[0-9]-amd64_*'
        [[ $KERNEL == cloud ]] && pat='linux-image-*-cloud-amd64_*'
        KDIR=$(find "$KERNELS" -mindepth 1 -maxdepth 1 -type d -name "$pat" | sort -V | tail -n 1)
        [[ -n $KDIR ]] || die "cannot resolve $META_PKG via apt and no cached kernel"
        log "WARNING: apt cannot resolve $META_PKG; using cached $(basename "$KDIR")"
    fi

    if [[ ! -s $KDIR/vmlinuz ]]; then
        log "downloading $KPKG $KVER"
        local tmp
        tmp=$(mktemp -d "$KERNELS/.dl.XXXXXX")
        local sandbox=()
        ((EUID == 0)) && sandbox=(-o APT::Sandbox::User=root)  # silences _apt warning
        (cd "$tmp" && apt-get "${sandbox[@]}" download "$KPKG=$KVER" >&2) ||
            { rm -rf "$tmp"; die "apt-get download $KPKG=$KVER failed"; }
        dpkg-deb -x "$tmp"/*.deb "$tmp/x"
        mkdir -p "$tmp/k"
        cp "$tmp"/x/boot/vmlinuz-* "$tmp/k/vmlinuz"
        cp "$tmp"/x/boot/config-* "$tmp/k/config"
        # Debian's System.map is an 83-byte placeholder ("The real System.map
        # is in the linux-image-<version>-dbg package"); keep it anyway.
        cp "$tmp"/x/boot/System.map-* "$tmp/k/System.map" 2>/dev/null || true
        printf 'package=%s\nversion=%s\nrelease=%s\n' \
            "$(dpkg-deb -f "$tmp"/*.deb Package)" "$(dpkg-deb -f "$tmp"/*.deb Version)" \
            "$(basename "$tmp"/x/boot/vmlinuz-* | sed 's/^vmlinuz-//')" > "$tmp/k/package.txt"
        rm -rf "$KDIR"
        mv "$tmp/k" "$KDIR"
        rm -rf "$tmp"
    fi
    KPKG=$(sed -n 's/^package=//p' "$KDIR/package.txt")
    KVER=$(sed -n 's/^version=//p' "$KDIR/package.txt")
    exec 8>&-
}

fetch_kernel
log "kernel: $KPKG $KVER ($KDIR)"
if [[ $CPU == max ]] && ! grep -q '^CONFIG_X86_5LEVEL=y' "$KDIR/config"; then
    die "$KPKG is built without CONFIG_X86_5LEVEL=y; --cpu max would not give 5-level paging"
fi

# --------------------------------------------------------------------- boot
WORK=$(mktemp -d /tmp/memflow-guest-dump.XXXXXX)  # short path: unix socket limit
QEMU_PID=
cleanup() {
    local rc=$?
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$QEMU_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    rm -f "$OUT/dump.elf.partial"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# A previous, possibly different, fixture is invalid from here on.
rm -f "$OUT/meta.txt"

python3 "$SCRIPT_DIR/fixture_util.py" initramfs "$WORK/initrd.gz" "$BUSYBOX" "$INIT_SCRIPT"

SERIAL_RAW=$WORK/serial.raw
KALLSYMS_RAW=$WORK/kallsyms.txt
QMP_SOCK=$WORK/qmp.sock
# panic=-1 + -no-reboot: a guest panic makes QEMU exit at once instead of
# hanging until the timeout.
CMDLINE="console=ttyS0 panic=-1${APPEND:+ $APPEND}"
QEMU_CMD=(
    qemu-system-x86_64
    -machine "$MACHINE" -accel tcg -cpu "$CPU" -m "$MEM" -smp 1
    -nodefaults -display none -monitor none -no-reboot
    -kernel "$KDIR/vmlinuz" -initrd "$WORK/initrd.gz" -append "$CMDLINE"
    -serial "file:$SERIAL_RAW"      # ttyS0: console + report sections
    -serial "file:$KALLSYMS_RAW"    # ttyS1: full /proc/kallsyms
    -qmp "unix:$QMP_SOCK,server=on,wait=off"
)
log "booting: ${QEMU_CMD[*]}"
t0=$(date +%s.%N)
# setpriv --pdeathsig: QEMU gets SIGKILL even if this script is SIGKILLed
# (e.g. by a CI timeout), where the EXIT trap cannot run.
PDEATH=()
setpriv --help 2>/dev/null | grep -q -- --pdeathsig && PDEATH=(setpriv --pdeathsig KILL --)
"${PDEATH[@]}" "${QEMU_CMD[@]}" </dev/null >"$WORK/qemu.log" 2>&1 &
QEMU_PID=$!

fail_boot() {
    log "$1"
    {
        echo "---- serial console (last 40 lines) ----"
        tr -d '\r' <"$SERIAL_RAW" 2>/dev/null | tail -n 40
        echo "---- qemu stdout/stderr ----"
        cat "$WORK/qemu.log"
    } >&2
    exit 1
}

deadline=$((SECONDS + TIMEOUT))
until grep -q MEMFLOW-GUEST-READY "$SERIAL_RAW" 2>/dev/null; do
    kill -0 "$QEMU_PID" 2>/dev/null || fail_boot "QEMU exited before the guest was ready"
    ((SECONDS < deadline)) || fail_boot "guest not ready after ${TIMEOUT}s"
    sleep 0.5
done
BOOT_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "guest ready after ${BOOT_SECONDS}s; dumping memory"

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
