#!/bin/busybox sh
# pnfs-testbed stage 1: the /init of the tiny initramfs (static busybox + a few modules).
#
# Mounts the host root (9p, read-only) as the lower layer of an overlay whose upper layer is a
# tmpfs, so the whole guest tree is writable and nothing reaches the host. Mounts the per-run
# share (9p, writable) at /out, then switch_roots into the overlay and runs stage 2 from /out.
# Everything printed here goes to the kernel console (the kernel log file on the host).
/bin/busybox mkdir -p /bin /proc /sys /dev /lower /upper /newroot
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
	echo "pnfs-testbed init: FAILED: $*"
	echo o >/proc/sysrq-trigger
	sleep 30
	exit 1
}

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs on /dev"
echo "pnfs-testbed init: loading 9p and overlay modules"
while read -r m; do
	insmod "/modules/$m" || fail "insmod $m"
done </modules/order

mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose hostroot /lower ||
	fail "mount the host root over 9p (mount_tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /upper || fail "mount tmpfs for the overlay"
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot ||
	fail "mount the root overlay"
# Decompressed copies of the big modules (built by the runner on the host, see
# initramfs::ensure_module_cache), laid over the module tree: loading them is then cheaper.
modcache=$(sed -n 's/.*pnfs\.modcache=\([^ ]*\).*/\1/p' /proc/cmdline)
release=$(uname -r)
if [ -n "$modcache" ] && [ -d "/lower$modcache" ] && [ -d "/newroot/lib/modules/$release/kernel" ]; then
	mount -t overlay -o "ro,lowerdir=/lower$modcache:/lower/usr/lib/modules/$release/kernel" \
		overlay "/newroot/lib/modules/$release/kernel" ||
		echo "pnfs-testbed init: WARNING: module cache overlay failed; using compressed modules"
fi
mkdir -p /newroot/out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /newroot/out ||
	fail "mount the per-run share (mount_tag out) on /out"
mount -o move /proc /newroot/proc || fail "move /proc"
mount -o move /sys /newroot/sys || fail "move /sys"
mount -o move /dev /newroot/dev || fail "move /dev"
mount -t tmpfs -o mode=0755 tmpfs /newroot/run || fail "tmpfs on /run"
mount -t tmpfs -o mode=0755 tmpfs /newroot/mnt || fail "tmpfs on /mnt"
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o mode=0620,ptmxmode=0666 devpts /newroot/dev/pts || fail "devpts"
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm || fail "tmpfs on /dev/shm"
ln -sf /proc/self/fd /newroot/dev/fd
ln -sf /proc/self/fd/0 /newroot/dev/stdin
ln -sf /proc/self/fd/1 /newroot/dev/stdout
ln -sf /proc/self/fd/2 /newroot/dev/stderr
[ -f /newroot/out/.runner/stage2.sh ] || fail "/out/.runner/stage2.sh missing"
echo "pnfs-testbed init: switching to the host root"
exec switch_root /newroot /bin/bash /out/.runner/stage2.sh
