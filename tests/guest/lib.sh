# pnfs-gateway guest library: sourced (bash) in every guest before the test's script.
#
# The guest runs the host's root read-only through an overlay (so everything is writable and
# nothing reaches the host), with tmpfs on /run and /mnt, loopback up, no udev and no network.
# The script runs with `set -eEo pipefail`; `step NAME` names the step that is running.
#
# Functions (all fail the script with a message naming what is missing or wrong):
#   require_module MOD...         modprobe kernel modules ("kernel feature missing: MOD")
#   make_xfs_volume SIZE_MIB      image on tmpfs + loop device + mkfs.xfs; sets PNFS_VOL_IMG,
#                                 PNFS_VOL_DEV (e.g. /dev/loop0), PNFS_VOL_UUID
#   start_nfsd_pnfs [SIZE_MIB]    Linux nfsd exporting a fresh XFS (make_xfs_volume) mounted on
#                                 $PNFS_EXPORT (/mnt/export) as the NFSv4 pseudo-root with
#                                 `pnfs`; NFSv4.1/4.2 only, lease and grace 10 s; sets
#                                 PNFS_NFSD_PORT=2049
#   start_nfsd_pnfs_on DEV        the same on an existing block device DEV (mkfs.xfs on it)
#   make_lio_scsi_disk SIZE_MIB   a SCSI logical unit with SPC-3 persistent reservations (LIO
#                                 fileio backstore on tmpfs) reached through two tcm_loop
#                                 initiator ports (two I_T nexuses, like two hosts on a SAN):
#                                 sets PNFS_SCSI_DEV_A, PNFS_SCSI_DEV_B (/dev/sdX of each path),
#                                 PNFS_SCSI_NAA (the LU's NAA designator, hex),
#                                 PNFS_SCSI_PR_DIR (configfs pr/ dir: registrations, holder)
#   stop_nfsd                     stop nfsd threads, mountd, rpcbind; unexport
#   start_blkmapd                 the pNFS block-layout device mapper daemon (idempotent)
#   mount_kernel_client [MNT] [OPTS]  blkmapd + `mount -t nfs -o vers=4.1[,OPTS] localhost:/ MNT`
#                                 (MNT defaults to /mnt/nfs; sets PNFS_CLIENT_MNT)
#   umount_kernel_client [MNT]    unmount (the kernel client returns its layouts)
#   nfs_mountstats MNT            the /proc/self/mountstats block of the NFS mount on MNT
#   nfs_op_count OP [MNT]         per-op RPC count from /proc/self/mountstats (e.g. LAYOUTGET)
#   nfs_pnfs_type [MNT]           the "pnfs=" field of mountstats (LAYOUT_BLOCK_VOLUME when used)
#   nbd_attach HOST PORT EXPORT [DEV]  nbd-client to /dev/nbdN (default /dev/nbd0, 4 KiB
#                                 blocks); waits until the device has a size; sets PNFS_NBD_DEV
#   nbd_detach [DEV]              nbd-client -d
#   drop_caches                   sync and drop page/dentry/inode caches
#   assert_eq EXPECTED ACTUAL MSG / assert_gt A B MSG   (fail MSG and step NAME: the prelude)
#   wait_for TIMEOUT_S CMD...     run CMD until it succeeds, at most TIMEOUT_S seconds (then
#                                 hang_dump and fail)
#   guarded SECS WHAT CMD...      run CMD (in a subshell) with a deadline: if it is still running
#                                 after SECS, hang_dump, kill it (and its children) and fail
#                                 naming WHAT; else its exit status
#   wait_exit SECS PID WHAT       wait (with the same dump-and-fail deadline) until the child PID
#                                 has ended, every thread of it, then reap it; its exit status
#                                 in EXIT_STATUS (returns 0 unless it hung)
#   hang_dump WHY                 the guest's state into $OUT/hang-N.txt: every task's state and
#                                 wait channel, kernel stacks of the tasks of interest (pnfsgw
#                                 threads, dd, sync, mount, D state), sysrq-w + dmesg, blk-mq
#                                 state of ublk devices, nfsd client states, NFS client RPCs;
#                                 HANG_DUMP_EXTRA (a command) adds the test's own probes
#
# Every helper above that can block (mount, umount, mkfs, nbd-client, rpc.nfsd, sync, ...)
# runs its blocking commands under `guarded` with the deadlines below; scripts put their own
# blocking commands (I/O on NFS or block devices, waits for servers) under `guarded` too, so a
# hang fails its step in minutes with the dump instead of running into the guest timeout.
# Each deadline is several times what the command takes under TCG on a loaded machine.

# A mount or umount of NFS (a server in its grace period after a restart included), XFS, ext4.
PNFS_MOUNT_DEADLINE_S=${PNFS_MOUNT_DEADLINE_S:-120}
# mkfs.xfs / mkfs.ext4 of a volume of up to ~1 GiB, fsck / xfs_repair of one.
PNFS_MKFS_DEADLINE_S=${PNFS_MKFS_DEADLINE_S:-180}
# sync (and drop_caches) with up to a few tens of MiB dirty on NFS or a block device.
PNFS_SYNC_DEADLINE_S=${PNFS_SYNC_DEADLINE_S:-120}
# Starting or stopping a daemon (rpcbind, mountd, nfsd threads, blkmapd), exportfs,
# nbd-client attach / detach.
PNFS_DAEMON_DEADLINE_S=${PNFS_DAEMON_DEADLINE_S:-60}

PNFS_EXPORT=${PNFS_EXPORT:-/mnt/export}
PNFS_WORK=${PNFS_WORK:-/run/pnfs}

assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

assert_gt() {
	[ "$1" -gt "$2" ] || fail "$3: expected $1 > $2"
}

# The deadlines below are on the clock ($SECONDS), not counts of polls: under TCG a poll
# (fork + exec + sleep 0.1) can take several times its sleep.
wait_for() {
	local timeout_s=$1 end
	shift
	end=$((SECONDS + timeout_s))
	while [ "$SECONDS" -lt "$end" ]; do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	if "$@" >/dev/null 2>&1; then return 0; fi
	hang_dump "wait_for: no success within ${timeout_s} s: $*" || true
	fail "timed out after ${timeout_s}s waiting for: $* (state in \$OUT/hang-last.txt)"
}

require_module() {
	local m
	for m in "$@"; do
		modprobe "$m" || fail "kernel feature missing: module $m does not load in $(uname -r)"
	done
}

_pnfs_drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

drop_caches() {
	guarded "$PNFS_SYNC_DEADLINE_S" "drop_caches (sync, drop page/dentry/inode caches)" _pnfs_drop_caches
}

make_xfs_volume() {
	local size_mib=${1:-1024}
	# mkfs.xfs refuses devices under 300 MiB.
	[ "$size_mib" -ge 300 ] || fail "make_xfs_volume: XFS needs >= 300 MiB, got $size_mib"
	require_module loop xfs
	mkdir -p "$PNFS_WORK"
	PNFS_VOL_IMG=$PNFS_WORK/vol-$$-$RANDOM.img
	truncate -s "${size_mib}M" "$PNFS_VOL_IMG"
	PNFS_VOL_DEV=$(losetup -f --show "$PNFS_VOL_IMG")
	guarded "$PNFS_MKFS_DEADLINE_S" "mkfs.xfs $PNFS_VOL_DEV" mkfs.xfs -q -f "$PNFS_VOL_DEV"
	# The block layout's volume signature: the XFS superblock UUID.
	PNFS_VOL_UUID=$(blkid -o value -s UUID "$PNFS_VOL_DEV" 2>/dev/null || true)
	export PNFS_VOL_IMG PNFS_VOL_DEV PNFS_VOL_UUID
	echo "xfs volume: $PNFS_VOL_DEV on $PNFS_VOL_IMG (${size_mib} MiB, uuid ${PNFS_VOL_UUID:-?})"
}

_pnfs_mount_once() {
	# _pnfs_mount_once FSTYPE SOURCE DIR: mount unless DIR is already a mount point.
	mkdir -p "$3"
	mountpoint -q "$3" || guarded "$PNFS_MOUNT_DEADLINE_S" "mount -t $1 $2 $3" mount -t "$1" "$2" "$3"
}

start_nfsd_pnfs() {
	local size_mib=${1:-1024}
	make_xfs_volume "$size_mib"
	_nfsd_export_pnfs
}

start_nfsd_pnfs_on() {
	PNFS_VOL_DEV=$1
	[ -b "$PNFS_VOL_DEV" ] || fail "start_nfsd_pnfs_on: $PNFS_VOL_DEV is not a block device"
	require_module xfs
	guarded "$PNFS_MKFS_DEADLINE_S" "mkfs.xfs $PNFS_VOL_DEV" mkfs.xfs -q -f "$PNFS_VOL_DEV"
	export PNFS_VOL_DEV
	_nfsd_export_pnfs
}

# _sd_disks: the sd* block devices, one a line.
_sd_disks() {
	local d
	for d in /sys/block/sd*; do
		[ -e "$d" ] && echo "${d##*/}"
	done
	return 0
}

# _new_sd_disk BEFORE: waits for an sd disk not in BEFORE (space-separated) and prints it.
_new_sd_disk() {
	local before=" $1 " i d
	for ((i = 0; i < 300; i++)); do
		for d in $(_sd_disks); do
			if [[ $before != *" $d "* ]] && [ -b "/dev/$d" ] && [ "$(cat "/sys/block/$d/size")" -gt 0 ]; then
				echo "$d"
				return 0
			fi
		done
		sleep 0.1
	done
	fail "no new SCSI disk appeared within 30 s (have: $(_sd_disks | tr '\n' ' '))"
}

make_lio_scsi_disk() {
	local size_mib=${1:-400} cfg=/sys/kernel/config/target serial lun i target before dev
	require_module configfs target_core_mod target_core_file tcm_loop sd_mod
	mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
	[ -d $cfg/core ] || fail "LIO configfs missing: $cfg/core"
	# Linux's sd driver sets APTPL on every PR REGISTER (IOC_PR_REGISTER, nfsd's own key):
	# LIO then saves the registrations under <dbroot>/pr and fails the command (CHECK
	# CONDITION; nfsd logs "failed to register key") when that directory is missing.
	mkdir -p "$(cat $cfg/dbroot)/pr"
	mkdir -p "$PNFS_WORK"
	truncate -s "${size_mib}M" "$PNFS_WORK/lun0.img"
	lun=$cfg/core/fileio_0/pnfs_lun0
	mkdir -p "$lun"
	echo "fd_dev_name=$PNFS_WORK/lun0.img,fd_dev_size=$((size_mib << 20))" >"$lun/control"
	# LIO derives the NAA designator from the hex digits of the unit serial: make them random.
	serial=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
	echo "$serial" >"$lun/wwn/vpd_unit_serial"
	echo 1 >"$lun/enable"
	for i in 1 2; do
		target=$cfg/loopback/naa.50014050000000$i$i
		mkdir -p "$target/tpgt_1/lun/lun_0"
		echo "naa.500140500000a0$i$i" >"$target/tpgt_1/nexus"
		before=$(_sd_disks | tr '\n' ' ')
		ln -s "$lun" "$target/tpgt_1/lun/lun_0/pnfs_lun0"
		dev=$(_new_sd_disk "$before")
		if [ "$i" = 1 ]; then PNFS_SCSI_DEV_A=/dev/$dev; else PNFS_SCSI_DEV_B=/dev/$dev; fi
	done
	PNFS_SCSI_NAA=$(od -An -tx1 -j8 -N16 "/sys/block/${PNFS_SCSI_DEV_A#/dev/}/device/vpd_pg83" | tr -d ' \n')
	PNFS_SCSI_PR_DIR=$lun/pr
	export PNFS_SCSI_DEV_A PNFS_SCSI_DEV_B PNFS_SCSI_NAA PNFS_SCSI_PR_DIR
	echo "LIO SCSI disk: naa.$PNFS_SCSI_NAA (${size_mib} MiB) via $PNFS_SCSI_DEV_A and $PNFS_SCSI_DEV_B"
}

_nfsd_export_pnfs() {
	mkdir -p "$PNFS_EXPORT"
	guarded "$PNFS_MOUNT_DEADLINE_S" "mount $PNFS_VOL_DEV $PNFS_EXPORT" mount "$PNFS_VOL_DEV" "$PNFS_EXPORT"
	require_module nfsd blocklayoutdriver
	_pnfs_mount_once nfsd nfsd /proc/fs/nfsd
	_pnfs_mount_once rpc_pipefs sunrpc /run/rpc_pipefs
	# The export must be the NFSv4 pseudo-root: nfsd cannot build one on the guest's 9p root.
	echo "$PNFS_EXPORT *(rw,pnfs,no_root_squash,insecure,no_subtree_check,fsid=0)" >/etc/exports
	mkdir -p /run/rpcbind /var/lib/nfs
	pgrep -x rpcbind >/dev/null || guarded "$PNFS_DAEMON_DEADLINE_S" "start rpcbind" rpcbind -w
	guarded "$PNFS_DAEMON_DEADLINE_S" "exportfs -ra" exportfs -ra
	pgrep -x rpc.mountd >/dev/null || guarded "$PNFS_DAEMON_DEADLINE_S" "start rpc.mountd" rpc.mountd -N 3
	echo 10 >/proc/fs/nfsd/nfsv4leasetime
	echo 10 >/proc/fs/nfsd/nfsv4gracetime
	# "-N 2" fails with "2: Unsupported version" on this kernel.
	guarded "$PNFS_DAEMON_DEADLINE_S" "start nfsd (rpc.nfsd)" rpc.nfsd -N 3 -V 4.1 -V 4.2 4
	PNFS_NFSD_PORT=2049
	export PNFS_NFSD_PORT PNFS_EXPORT
	exportfs -v | grep -q 'pnfs' || fail "nfsd does not export $PNFS_EXPORT with pnfs: $(exportfs -v)"
	echo "nfsd: exporting $PNFS_EXPORT (xfs on $PNFS_VOL_DEV) with pnfs, NFSv4.1/4.2 on port 2049"
}

stop_nfsd() {
	guarded "$PNFS_DAEMON_DEADLINE_S" "stop nfsd (rpc.nfsd 0)" rpc.nfsd 0 || true
	guarded "$PNFS_DAEMON_DEADLINE_S" "exportfs -ua" exportfs -ua || true
	pkill -x rpc.mountd || true
	pkill -x rpcbind || true
}

start_blkmapd() {
	require_module blocklayoutdriver
	_pnfs_mount_once rpc_pipefs sunrpc /run/rpc_pipefs
	pgrep -x blkmapd >/dev/null || guarded "$PNFS_DAEMON_DEADLINE_S" "start blkmapd" blkmapd
	wait_for 10 pgrep -x blkmapd
}

mount_kernel_client() {
	local mnt=${1:-/mnt/nfs} opts=${2:-}
	start_blkmapd
	require_module nfsv4
	mkdir -p "$mnt"
	guarded "$PNFS_MOUNT_DEADLINE_S" "mount -t nfs -o vers=4.1${opts:+,$opts} localhost:/ $mnt" \
		mount -t nfs -o "vers=4.1${opts:+,$opts}" localhost:/ "$mnt"
	PNFS_CLIENT_MNT=$mnt
	export PNFS_CLIENT_MNT
	echo "kernel client: localhost:/ on $mnt (vers=4.1${opts:+,$opts})"
}

umount_kernel_client() {
	local mnt=${1:-${PNFS_CLIENT_MNT:-/mnt/nfs}}
	guarded "$PNFS_MOUNT_DEADLINE_S" "umount $mnt" umount "$mnt"
}

# nfs_mountstats MNT: the mountstats block of the NFS mount on MNT.
nfs_mountstats() {
	awk -v mnt="$1" '
		/^device / { inblock = ($5 == mnt) }
		inblock { print }
	' /proc/self/mountstats
}

nfs_op_count() {
	local op=$1 mnt=${2:-${PNFS_CLIENT_MNT:-/mnt/nfs}} n
	n=$(nfs_mountstats "$mnt" | awk -v op="$op:" '$1 == op { print $2; exit }')
	[ -n "$n" ] || fail "no per-op statistics for $op on $mnt in /proc/self/mountstats"
	echo "$n"
}

nfs_pnfs_type() {
	local mnt=${1:-${PNFS_CLIENT_MNT:-/mnt/nfs}}
	nfs_mountstats "$mnt" | grep -o 'pnfs=[A-Za-z_]*' | head -n 1 | cut -d= -f2
}

nbd_attach() {
	local host=$1 port=$2 export_name=$3 dev=${4:-/dev/nbd0}
	[ -e /sys/module/nbd ] || modprobe nbd nbds_max=4 || fail "kernel feature missing: nbd"
	wait_for 10 test -b "$dev"
	guarded "$PNFS_DAEMON_DEADLINE_S" "nbd-client $host:$port $export_name $dev" \
		nbd-client "$host" "$port" "$dev" -N "$export_name" -b 4096
	wait_for 10 test "$(cat "/sys/block/${dev##*/}/size")" -gt 0
	PNFS_NBD_DEV=$dev
	export PNFS_NBD_DEV
	echo "nbd: $dev attached to $host:$port export '$export_name' ($(blockdev --getsize64 "$dev") bytes)"
}

nbd_detach() {
	local dev=${1:-${PNFS_NBD_DEV:-/dev/nbd0}}
	guarded "$PNFS_DAEMON_DEADLINE_S" "nbd-client -d $dev" nbd-client -d "$dev"
}

# The tasks whose kernel stacks hang_dump writes (besides every task in D state).
HANG_DUMP_COMMS=${HANG_DUMP_COMMS:-pnfsgw pnfs-mds dd sync mount mount.nfs umount python3 cat blkmapd fio mkfs.ext4 mkfs.xfs}

hang_dump() {
	local n=1 f p t
	mkdir -p "$OUT"
	while [ -e "$OUT/hang-$n.txt" ]; do n=$((n + 1)); done
	f=$OUT/hang-$n.txt
	echo "HANG: $1: dumping the guest's state to $f" >&2
	note "hang_dump: $1"
	{
		echo "=== hang_dump: $1 (step ${PNFS_STEP:-?}) at $(date -u +%T), up $(cut -d' ' -f1 /proc/uptime)s"
		echo "=== loadavg: $(cat /proc/loadavg)"
		echo "=== tasks"
		ps -eLo pid,tid,ppid,stat,wchan:32,comm,args 2>&1
		for p in /proc/[0-9]*; do
			[ -r "$p/stat" ] || continue
			local comm state
			comm=$(cat "$p/comm" 2>/dev/null) || continue
			state=$(awk '{ print $3 }' "$p/stat" 2>/dev/null) || continue
			case " $HANG_DUMP_COMMS " in *" $comm "*) ;; *) [ "$state" = D ] || continue ;; esac
			for t in "$p"/task/*; do
				echo "--- ${p#/proc/}/${t##*/} $(cat "$t/comm" 2>/dev/null) state $(awk '{ print $3 }' "$t/stat" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)"
				cat "$t/stack" 2>&1
			done
		done
		echo "=== ublk"
		ls -l /dev/ublk* 2>&1
		mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>&1
		for p in /sys/block/ublkb*; do
			[ -e "$p" ] || continue
			echo "--- ${p##*/}: inflight $(cat "$p/inflight" 2>&1) stat $(cat "$p/stat" 2>&1)"
			for t in /sys/kernel/debug/block/"${p##*/}"/state /sys/kernel/debug/block/"${p##*/}"/hctx*/{state,busy,dispatch,tags}; do
				[ -e "$t" ] && { echo "$t:"; timeout 5 cat "$t" 2>&1; }
			done
		done
		echo "=== nfsd clients"
		for p in /proc/fs/nfsd/clients/*; do
			[ -d "$p" ] || continue
			echo "--- $p"
			timeout 5 cat "$p/info" "$p/states" 2>&1
		done
		[ -e /proc/net/rpc/nfsd ] && grep proc4ops /proc/net/rpc/nfsd
		echo "=== NFS client RPC tasks"
		for p in /sys/kernel/debug/sunrpc/rpc_clnt/*/tasks; do
			[ -e "$p" ] && { echo "--- $p"; timeout 5 cat "$p" 2>&1; }
		done
		grep -A3 '^device .* nfs' /proc/self/mountstats 2>/dev/null
		if [ -n "${HANG_DUMP_EXTRA:-}" ]; then
			echo "=== $HANG_DUMP_EXTRA"
			timeout 20 bash -c "$HANG_DUMP_EXTRA" 2>&1
		fi
		echo "=== sysrq w + dmesg"
		echo w >/proc/sysrq-trigger
		sleep 1
		dmesg | tail -n 300
	} >"$f" 2>&1 || true
	cp "$f" "$OUT/hang-last.txt" 2>/dev/null || true
}

# _pnfs_descendants PID: PID's children, grandchildren, ... (one a line; never fails).
_pnfs_descendants() {
	ps -eo pid=,ppid= 2>/dev/null | awk -v root="$1" '
		{ parent[$1] = $2 }
		END {
			for (p in parent) {
				q = p
				for (depth = 0; depth < 64 && q != "" && q != 0 && q != 1; depth++) {
					q = parent[q]
					if (q == root) { print p; break }
				}
			}
		}' || true
}

# Seconds a task may sit in bl_resolve_deviceid (the pNFS block-layout client waiting for
# blkmapd's answer; blkmapd answers in milliseconds) with blkmapd idle before it counts as
# the kernel's lost wakeup (see _pnfs_blkmapd_rescue).
PNFS_BLKMAPD_STUCK_S=10

# _pnfs_blkmapd_rescue TASKS...: works around a Linux NFS client race (seen on 6.12 in this
# guest): bl_resolve_deviceid() (fs/nfs/blocklayout/rpc_pipefs.c) queues its upcall to
# blkmapd and only THEN sets TASK_UNINTERRUPTIBLE and sleeps; when blkmapd's downcall (the
# wake_up) lands in between, the wakeup is lost and the reader sleeps in D forever (SIGKILL
# cannot end it). When one of TASKS is in bl_resolve_deviceid and blkmapd is idle in
# select() (it has answered), this writes the answer again into the blocklayout pipe (a
# downcall wakes every waiter): the device of $PNFS_VOL_DEV if set (what blkmapd finds for
# nfsd's export), else "not found" (the client then reads through the MDS). Each rescue is
# logged loudly and counted in $OUT/blkmapd-rescues; the guest state is dumped first.
# Prints the number of rescues done (0 or 1).
_pnfs_blkmapd_rescue() {
	local t stuck="" bm pipe=/run/rpc_pipefs/nfs/blocklayout major=0 minor=0 status=2
	for t in "$@"; do
		[ "$(cat "/proc/$t/wchan" 2>/dev/null)" = bl_resolve_deviceid ] && stuck="$stuck $t"
	done
	[ -n "$stuck" ] || { echo 0; return 0; }
	bm=$(pgrep -x blkmapd | head -n 1)
	[ -n "$bm" ] && [ "$(cat "/proc/$bm/wchan" 2>/dev/null)" = do_select ] || { echo 0; return 0; }
	if [ -n "${PNFS_VOL_DEV:-}" ] && [ -b "$PNFS_VOL_DEV" ]; then
		major=$((0x$(stat -L -c %t "$PNFS_VOL_DEV")))
		minor=$((0x$(stat -L -c %T "$PNFS_VOL_DEV")))
		status=1
	fi
	hang_dump "kernel bug: task(s)$stuck stuck in bl_resolve_deviceid with blkmapd idle (lost wakeup)" >&2 || true
	echo "KERNEL BUG WORKAROUND: task(s)$stuck lost blkmapd's wakeup in bl_resolve_deviceid; re-sending the answer (status $status, device $major:$minor)" >&2
	note "blkmapd rescue: re-sending the answer (status $status, device $major:$minor) for$stuck"
	python3 -c 'import os, struct, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.write(fd, struct.pack("<iII", int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
os.close(fd)' "$pipe" "$status" "$major" "$minor" >&2 || true
	echo "$stuck" >>"$OUT/blkmapd-rescues"
	echo 1
}

# _pnfs_watch PID SECS WHAT MARKER WAITER: every second, the blkmapd rescue for PID's tasks;
# after SECS: dump, kill PID and its descendants, tell the waiter (MARKER, then SIGUSR1 to
# WAITER if PID could not be killed: a task in uninterruptible sleep ignores SIGKILL, and the
# waiter's `wait` must end anyway).
_pnfs_watch() {
	local end=$((SECONDS + $2)) victims i stuck_s=0 tasks
	while kill -0 "$1" 2>/dev/null; do
		# Sleep first, and look for stuck tasks cheaply (one grep) before listing PID's
		# descendants (ps + awk): most guarded commands end within a second, and under TCG
		# every process the watcher starts takes CPU from the test.
		# Not on the caller's stdout / stderr: a `sleep` that outlives a killed watcher must
		# not hold a pipe (`x=$(guarded ...)`, `guarded ... | tee`) open.
		sleep 1 </dev/null >/dev/null 2>&1
		kill -0 "$1" 2>/dev/null || break
		if [ "$SECONDS" -ge "$end" ]; then
			hang_dump "$3: still running after $2 s" || true
			echo "$3" >"$4"
			victims="$1 $(_pnfs_descendants "$1" | tr '\n' ' ')"
			kill -KILL $victims 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do
				kill -0 "$1" 2>/dev/null || return 0
				sleep 0.1
			done
			echo "HANG: $3: pid $1 survives SIGKILL (uninterruptible sleep); giving up on it" >&2
			kill -USR1 "$5" 2>/dev/null || true
			return 0
		fi
		if ! grep -qsx bl_resolve_deviceid /proc/[0-9]*/wchan; then
			stuck_s=0
			continue
		fi
		tasks="$1 $(_pnfs_descendants "$1" | tr '\n' ' ')"
		if grep -qx bl_resolve_deviceid $(printf '/proc/%s/wchan ' $tasks) 2>/dev/null; then
			stuck_s=$((stuck_s + 1))
			if [ "$stuck_s" -ge "$PNFS_BLKMAPD_STUCK_S" ]; then
				[ "$(_pnfs_blkmapd_rescue $tasks)" = 1 ] && end=$((end + PNFS_BLKMAPD_STUCK_S))
				stuck_s=0
			fi
		else
			stuck_s=0
		fi
	done
	return 0
}

guarded() {
	local secs=$1 what=$2 pid watcher rc=0 marker me=$BASHPID
	shift 2
	marker=$PNFS_WORK/guard.$BASHPID.$RANDOM
	mkdir -p "$PNFS_WORK"
	rm -f "$marker"
	# The watcher's SIGUSR1 ends `wait` for a task that cannot be killed; stays installed (a
	# late signal must not kill this shell).
	trap ':' USR1
	"$@" &
	pid=$!
	# The watcher's stdout is stderr: in `x=$(guarded ...)` it must not hold the
	# substitution's pipe open (its `sleep 1` outlives it by up to a second).
	_pnfs_watch "$pid" "$secs" "$what" "$marker" "$me" >&2 &
	watcher=$!
	wait "$pid" || rc=$?
	if [ -e "$marker" ]; then
		rm -f "$marker"
		wait "$watcher" 2>/dev/null || true
		fail "$what: no end within ${secs} s (killed; state in \$OUT/hang-last.txt)"
		return 1
	fi
	kill "$watcher" 2>/dev/null || true
	wait "$watcher" 2>/dev/null || true
	return "$rc"
}

# _pnfs_ended PID: PID has exited with every thread (a zombie leader alone, or gone).
_pnfs_ended() {
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[ "$state" = Z ] && [ "$(ls "/proc/$1/task" 2>/dev/null | wc -l)" -le 1 ]
}

wait_exit() {
	local secs=$1 pid=$2 what=$3 end rc=0
	end=$((SECONDS + secs))
	while [ "$SECONDS" -lt "$end" ]; do
		_pnfs_ended "$pid" && break
		sleep 0.1
	done
	if ! _pnfs_ended "$pid"; then
		hang_dump "$what: pid $pid has not exited after $secs s"
		# What can still be killed goes, so the script's EXIT traps and the guest's power-off
		# do not wait on it.
		kill -KILL "$pid" $(_pnfs_descendants "$pid") 2>/dev/null || true
		fail "$what: pid $pid has not exited after ${secs} s (state in \$OUT/hang-last.txt)"
	fi
	wait "$pid" || rc=$?
	EXIT_STATUS=$rc
	return 0
}
