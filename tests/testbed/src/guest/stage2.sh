#!/bin/bash
# pnfs-testbed stage 2: PID 1 in the guest, on the host's root (overlay over 9p).
#
# Runs /out/.runner/main.sh (prelude + the test's script) with its output on /dev/hvc0 (the
# runner reads it live), writes its exit code to /out/.runner/exit_code and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8
R=/out/.runner
exec </dev/null >/dev/hvc0 2>&1
echo "pnfs-testbed stage2: running the script" >/dev/kmsg
ip link set lo up || echo "pnfs-testbed: WARNING: ip link set lo up failed"
hostname pnfs-guest 2>/dev/null || true
cd /root || cd /
bash "$R/main.sh"
rc=$?
echo "pnfs-testbed stage2: script exited with $rc" >/dev/kmsg
echo "$rc" >"$R/exit_code.tmp" && mv "$R/exit_code.tmp" "$R/exit_code"
# Only the share's file system: a global `sync` waits for every mount, and one that hangs (a
# script that failed on a hung NFS server) would keep the guest up until its timeout.
sync -f "$R/exit_code"
echo o >/proc/sysrq-trigger
# The power-off is asynchronous; PID 1 must not exit before it happens (that would panic).
sleep 60
