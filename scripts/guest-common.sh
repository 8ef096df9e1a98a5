# shellcheck shell=bash
# The part of the QEMU guest fixture that scripts/guest-dump.sh (boot, dump, quit) and
# scripts/guest-run.sh (boot, keep running) share. Sourced, never run.
#
# The sourcing script sets LOG_TAG and NAME, fills the options with guest_option, then:
#   check_guest_options; ensure_tools; fetch_kernel; boot_guest
# boot_guest leaves QEMU running with:
#   QEMU_PID      the QEMU process
#   WORK          a fresh directory under /tmp (short path: unix socket limit), holding
#   SERIAL_RAW    ttyS0 as QEMU writes it (CRs included): boot log, sections, READY line
#   KALLSYMS_RAW  ttyS1: the complete /proc/kallsyms
#   QMP_SOCK      the QMP socket
# and stop_qemu stops it. The guest runs scripts/guest-init.sh as /init.

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
FIXTURES=$REPO_ROOT/target/fixtures
KERNELS=$FIXTURES/kernels
INIT_SCRIPT=$SCRIPT_DIR/guest-init.sh
MACHINE=q35

log() { echo "[$LOG_TAG${NAME:+ $NAME}] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ options
CPU=qemu64 MEM=256M APPEND=nokaslr KERNEL=cloud TIMEOUT=300
# Extra QEMU arguments of the sourcing script (e.g. -name).
QEMU_EXTRA=()

# Parses one shared option ("$1", its value "$2"); sets SHIFT to the number of words it
# took, 0 if "$1" is no shared option.
# shellcheck disable=SC2034  # SHIFT is read by the sourcing script
guest_option() {
    SHIFT=2
    case $1 in
        --cpu) CPU=${2:?--cpu needs a value} ;;
        --mem) MEM=${2:?--mem needs a value} ;;
        --append) APPEND=${2?--append needs a value} ;;
        --kernel) KERNEL=${2:?--kernel needs a value} ;;
        --timeout) TIMEOUT=${2:?--timeout needs a value} ;;
        *) SHIFT=0 ;;
    esac
}

# Checks the shared options and the fixture name; sets META_PKG.
check_guest_options() {
    [[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
    [[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ && $NAME != kernels ]] ||
        die "invalid fixture name '$NAME'"
    case $KERNEL in
        cloud) META_PKG=linux-image-cloud-amd64 ;;
        generic) META_PKG=linux-image-amd64 ;;
        *) die "--kernel must be cloud or generic" ;;
    esac
    [[ $MEM =~ ^[0-9]+[MG]?$ ]] || die "--mem must look like 256M or 1G"
}

# --------------------------------------------------------------- host tools
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

# ------------------------------------------------------------------- kernel
# Modules of the kernel package (paths under lib/modules/<release>/) that go into the
# initramfs and that guest-init.sh loads: small ones without dependencies, so the guest has
# a kernel module list to report.
GUEST_MODULES=(kernel/drivers/net/dummy.ko kernel/lib/crc7.ko)

# Sets KDIR (kernel cache dir, with the kernel, its config and modules/), KPKG and KVER.
fetch_kernel() {
    mkdir -p "$KERNELS"
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

    if [[ ! -s $KDIR/vmlinuz || ! -d $KDIR/modules ]]; then
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
        mkdir -p "$tmp/k/modules"
        local module
        for module in "${GUEST_MODULES[@]}"; do
            cp "$tmp"/x/lib/modules/*/"$module" "$tmp/k/modules/" ||
                { rm -rf "$tmp"; die "$KPKG has no $module"; }
        done
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
    log "kernel: $KPKG $KVER ($KDIR)"
    if [[ $CPU == max ]] && ! grep -q '^CONFIG_X86_5LEVEL=y' "$KDIR/config"; then
        die "$KPKG is built without CONFIG_X86_5LEVEL=y; --cpu max would not give 5-level paging"
    fi
}

# --------------------------------------------------------------------- boot
QEMU_PID=

# Stops QEMU if it runs: SIGTERM, up to 5 s, then SIGKILL.
stop_qemu() {
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$QEMU_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$QEMU_PID" 2>/dev/null || true
    fi
    if [[ -n $QEMU_PID ]]; then
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    QEMU_PID=
}

# Prints the end of the console and QEMU's output, then exits with an error.
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

# Creates WORK, builds the initramfs, starts QEMU (TCG, one vCPU, the options above plus
# QEMU_EXTRA) and waits until the guest printed MEMFLOW-GUEST-READY; sets BOOT_SECONDS.
# The sourcing script's EXIT trap must call stop_qemu and remove WORK.
boot_guest() {
    WORK=$(mktemp -d "/tmp/memflow-$LOG_TAG.XXXXXX")
    python3 "$SCRIPT_DIR/fixture_util.py" initramfs "$WORK/initrd.gz" "$BUSYBOX" "$INIT_SCRIPT" "$KDIR/modules"

    SERIAL_RAW=$WORK/serial.raw
    KALLSYMS_RAW=$WORK/kallsyms.txt
    QMP_SOCK=$WORK/qmp.sock
    # panic=-1 + -no-reboot: a guest panic makes QEMU exit at once instead of
    # hanging until the timeout.
    local cmdline="console=ttyS0 panic=-1${APPEND:+ $APPEND}"
    local qemu_cmd=(
        qemu-system-x86_64
        -machine "$MACHINE" -accel tcg -cpu "$CPU" -m "$MEM" -smp 1
        -nodefaults -display none -monitor none -no-reboot
        -kernel "$KDIR/vmlinuz" -initrd "$WORK/initrd.gz" -append "$cmdline"
        -serial "file:$SERIAL_RAW"      # ttyS0: console + report sections
        -serial "file:$KALLSYMS_RAW"    # ttyS1: full /proc/kallsyms
        -qmp "unix:$QMP_SOCK,server=on,wait=off"
        "${QEMU_EXTRA[@]}"
    )
    log "booting: ${qemu_cmd[*]}"
    local t0
    t0=$(date +%s.%N)
    # setpriv --pdeathsig: QEMU gets SIGKILL even if this script is SIGKILLed
    # (e.g. by a CI timeout), where the EXIT trap cannot run.
    local pdeath=()
    setpriv --help 2>/dev/null | grep -q -- --pdeathsig && pdeath=(setpriv --pdeathsig KILL --)
    "${pdeath[@]}" "${qemu_cmd[@]}" </dev/null >"$WORK/qemu.log" 2>&1 &
    QEMU_PID=$!

    local deadline=$((SECONDS + TIMEOUT))
    until grep -q MEMFLOW-GUEST-READY "$SERIAL_RAW" 2>/dev/null; do
        kill -0 "$QEMU_PID" 2>/dev/null || fail_boot "QEMU exited before the guest was ready"
        ((SECONDS < deadline)) || fail_boot "guest not ready after ${TIMEOUT}s"
        sleep 0.5
    done
    BOOT_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    log "guest ready after ${BOOT_SECONDS}s"
}
