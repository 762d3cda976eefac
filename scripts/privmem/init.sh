#!/bin/bash
# PID 1 of the nested private-memory host (scripts/privmem-run.sh boots it). The root
# is the outer host's userland over 9p, read-only; this mounts what a Linux userland
# expects, runs the command the outer host left in the transfer directory, writes its
# exit status there and powers the machine off.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /dev/shm
xfer=$(sed -n 's/.*memgate.xfer=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p "$xfer"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 xfer "$xfer"
# The checkout, at its own path: it may lie under /tmp, which is this host's own tmpfs now.
checkout=$(sed -n 's/.*memgate.checkout=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p "$checkout" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose,ro checkout "$checkout"
ip link set lo up 2>/dev/null || true
# Files the command leaves in $MEMGATE_PRIVMEM_OUT reach the outer host (the checkout is read-only here).
mkdir -p "$xfer/out"
export HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 MEMGATE_PRIVMEM_OUT=$xfer/out
bash "$xfer/command" < /dev/null
echo $? > "$xfer/status"
sync
echo b > /proc/sysrq-trigger
