#!/usr/bin/env bash
# make check's and make demo's first step: on a host that cannot run MemGate's suite, stop
# at once with one line naming the missing piece and what brings it, rather than 300 tests
# later. KVM_DEVICE, QEMU_SYSTEM and MEMGATE_PREFLIGHT_CAN_INSTALL are for its own test.
set -u
device=${KVM_DEVICE:-/dev/kvm}
fail() { echo "make: this host cannot run MemGate: $*" >&2; exit 1; }
[ -e "$device" ] || fail "$device is missing: load the KVM module (modprobe kvm_intel or kvm_amd) and, on a cloud VM, turn on nested virtualization"
[ -c "$device" ] || fail "$device is not a character device: it must be the KVM device node (char 10:232)"
[ "$(stat -L -c %t:%T "$device")" = a:e8 ] || fail "$device is not the KVM device node (char 10:232) but $(stat -L -c %t:%T "$device" | sed 's/^/0x/;s/:/:0x/'): recreate it with mknod $device c 10 232"
{ : <> "$device"; } 2>/dev/null || fail "$device cannot be opened read-write by $(id -un): add the user to group kvm (usermod -aG kvm $(id -un)) or run as root"
if ! command -v "${QEMU_SYSTEM:-qemu-system-x86_64}" >/dev/null 2>&1; then
  # make deps installs it when it can (as root, or through sudo); only a host where it cannot stops here.
  can_install=${MEMGATE_PREFLIGHT_CAN_INSTALL:-}
  if [ -z "$can_install" ]; then
    if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then can_install=1; else can_install=0; fi
  fi
  [ "$can_install" = 1 ] || fail "qemu-system-x86_64 is missing (the nested private-memory host needs it): install the apt package qemu-system-x86 as root"
fi
exit 0
