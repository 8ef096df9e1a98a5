#!/usr/bin/env bash
# Boot the fixture guest of scripts/guest-dump.sh and keep it running, for live tests.
#
#   scripts/guest-run.sh NAME [--cpu qemu64|max] [--mem 256M]
#                             [--append "nokaslr ..."] [--kernel cloud|generic]
#                             [--timeout SECONDS]
#
# Boots the same kernel and initramfs as guest-dump.sh (same options, shared code in
# guest-common.sh) with `-name memflow-test-NAME` and a QMP socket, waits for
# MEMFLOW-GUEST-READY, then prints on stdout, one per line:
#   pid=PID        the QEMU process
#   qmp=PATH       its QMP socket (server, one client at a time)
#   serial=PATH    the guest console so far (boot log and report sections; CRs kept)
#   kallsyms=PATH  the guest's complete /proc/kallsyms
#   ready
# and stays in the foreground until QEMU exits. Ending this script (SIGTERM, SIGINT,
# SIGHUP, or SIGKILL: QEMU has a parent-death signal) stops the guest and removes the
# files above. A program that runs it owns the guest by owning this process.
set -euo pipefail

LOG_TAG=guest-run
NAME=''
# shellcheck source=scripts/guest-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/guest-common.sh"

usage() {
    sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while (($#)); do
    guest_option "$1" "${2-}"
    if ((SHIFT)); then shift "$SHIFT"; continue; fi
    case $1 in
        -h|--help) usage 0 ;;
        -*) echo "unknown option: $1" >&2; usage 2 ;;
        *) [[ -z $NAME ]] || { echo "only one NAME allowed" >&2; usage 2; }
           NAME=$1; shift ;;
    esac
done
[[ -n $NAME ]] || usage 2
check_guest_options
ensure_tools
fetch_kernel

WORK=
cleanup() {
    local rc=$?
    stop_qemu
    [[ -z $WORK ]] || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

QEMU_EXTRA=(-name "memflow-test-$NAME")
boot_guest
printf '%s\n' "pid=$QEMU_PID" "qmp=$QMP_SOCK" "serial=$SERIAL_RAW" "kallsyms=$KALLSYMS_RAW" ready

# `wait` returns early when a trapped signal arrives; the trap then exits.
wait "$QEMU_PID" || true
QEMU_PID=
log "QEMU exited"
