#!/usr/bin/env bash
# privmem-run.sh CMD [ARGS...]: runs one command inside the nested private-memory host
# (our own 6.12 kernel with KVM_SW_PROTECTED_VM, under QEMU TCG with -cpu max) and
# passes its exit status back. The host's userland is the nested host's root (read-only),
# and this checkout is mounted at its own path (read-only), so the same binaries and paths
# work as they are; /tmp inside is the nested host's own (a working directory under the
# outer /tmp must lie inside the checkout). MEMGATE_PRIVMEM_TIMEOUT
# (seconds, default 1200) bounds the whole run. MEMGATE_PRIVMEM_TCG=multi runs the nested
# host's two vCPUs on two host threads; the default, single, runs them in turn on one: a
# rare SHUTDOWN of a 2-vCPU guest that no guest exception preceded was seen only under
# multi (README, "Tests"), and single costs about 6 s a run. The checkout is read-only inside:
# what the command writes to $MEMGATE_PRIVMEM_OUT is copied to MEMGATE_PRIVMEM_COLLECT (a
# directory on this host) when the nested host has finished, whatever the command's status.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "privmem-run: qemu-system-x86_64 is missing (apt package qemu-system-x86)" >&2; exit 1; }
kernel=$("$root/scripts/privmem/build-kernel.sh" | tail -1)
xfer=$(mktemp -d /tmp/memgate-privmem.XXXXXX)
trap 'rm -rf "$xfer"' EXIT
{ printf 'cd %q || exit 125\n' "$PWD"; printf '%q ' "$@"; echo; } > "$xfer/command"
console=$xfer/console.log
# The console goes to stdout as it comes (and to a file, for the failure message below).
set +e
timeout "${MEMGATE_PRIVMEM_TIMEOUT:-1200}" qemu-system-x86_64 \
  -accel "tcg,thread=${MEMGATE_PRIVMEM_TCG:-single}" -cpu max,phys-bits=48 -smp 2 -m 6G -nographic -no-reboot -nodefaults -serial stdio \
  -kernel "$kernel" \
  -append "console=ttyS0 quiet panic=-1 rootfstype=9p root=hostroot rootflags=trans=virtio,version=9p2000.L,msize=524288,cache=loose ro init=$root/scripts/privmem/init.sh memgate.xfer=$xfer memgate.checkout=$root" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$root,mount_tag=checkout,security_model=none,readonly=on,multidevs=remap" \
  -virtfs "local,path=$xfer,mount_tag=xfer,security_model=none" | tee "$console"
qemu=${PIPESTATUS[0]}
set -e
if [ -n "${MEMGATE_PRIVMEM_COLLECT:-}" ] && [ -d "$xfer/out" ]; then
  mkdir -p "$MEMGATE_PRIVMEM_COLLECT"
  cp -R "$xfer/out/." "$MEMGATE_PRIVMEM_COLLECT/"
fi
if [ ! -f "$xfer/status" ]; then
  if [ "$qemu" = 124 ]; then
    echo "privmem-run: the nested host did not finish within ${MEMGATE_PRIVMEM_TIMEOUT:-1200} s" >&2
  else
    echo "privmem-run: the nested host did not come up or did not run the command (QEMU exited $qemu); its console ended with:" >&2
    tail -20 "$console" >&2
  fi
  exit 1
fi
exit "$(cat "$xfer/status")"
