#!/usr/bin/env bash
# Installs the system packages the tests need, only when something is missing (idempotent).
set -euo pipefail

# command -> Debian package
declare -A needed=(
  [qemu-system-x86_64]=qemu-system-x86
  [busybox]=busybox-static
  [cpio]=cpio
  [cmake]=cmake
  [valgrind]=valgrind
  [cc]=gcc
  [c++]=g++
  [pkg-config]=pkg-config
)

missing=()
for cmd in "${!needed[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${needed[$cmd]}")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
else
  echo "system packages: all present"
fi
