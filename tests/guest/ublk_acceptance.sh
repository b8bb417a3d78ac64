# ublk acceptance on the real stack (issue 6), sourced after lib.sh in one guest boot:
# `pnfsgw export --ublk` on a 1 GiB file of a real MDS, then through /dev/ublkbN:
#   1. ext4: mkfs, mount, copy a tree, umount, fsck -fn, remount, diff -r; mkfs.xfs + xfs_repair -n
#   2. fio randwrite + crc32c verify, direct, QD16, 2 jobs on disjoint ranges
#   4. blkdiscard / punch-hole / zero-range read back zeros, the data around them untouched
#   5. SIGTERM: exit 0, the device gone, no layout left on the MDS (see below)
#   3. durability: seeded data, FLUSH + sync, SIGKILL; the kernel NFS client reads it back
#
# Env: PNFSGW (binary), MDS_KIND (nfsd | embedded), SEED (for the durability data), ROUNDS
# (default 1: how many times steps 5 and 3 run; rounds after the first start a fresh gateway
# for step 5, to repeat the SIGTERM -> restart -> SIGKILL sequence in one boot).
# Results for the host side in $OUT: steps.txt (one "ok NAME" per passed check), gw*.log, and
# hang-N.txt when a command hung.
#
# Every command that can block runs under a deadline (`guarded`, `wait_exit`, lib.sh): a hang
# fails the step at once, naming the command, with the guest's state (task states and kernel
# stacks, blk-mq and nfsd state, the gateway's stats) dumped into $OUT/hang-N.txt.
#
# "No layout left" is checked two ways, each of which fails if the gateway leaves its layout:
# - nfsd: /proc/fs/nfsd/clients/*/states lists every client's open/lock/layout stateids; it
#   shows the gateway's layout while it runs (checked, so the probe is known to work) and no
#   layout stateid at all after the gateway exited. nfsd's LAYOUTRETURN count grew.
# - embedded MDS: afterwards the kernel client opens the file and gets its own layouts through
#   LAYOUTGET; an outstanding gateway layout would conflict and make the MDS send a
#   CB_LAYOUTRECALL, so the admin socket's recalls_sent must stay 0.

MIB=$((1024 * 1024))
FILE_BYTES=$((1024 * MIB))
ROUNDS=${ROUNDS:-1}
T=/run/ublk-acc
mkdir -p "$T"
# hang_dump's own probes: the gateway's counters and device state, the embedded MDS's stats.
HANG_DUMP_EXTRA="timeout 10 $PNFSGW stats --control $T/c.sock; [ ! -S $T/mds/admin.sock ] || mds_admin stats"
export T
: >"$OUT/steps.txt"
passed() { echo "ok $1" | tee -a "$OUT/steps.txt"; }
trap 'cp "$T"/*.log "$OUT"/ 2>/dev/null || true' EXIT
# The logs also reach $OUT while the script runs, for a run that ends in the guest's timeout.
(while sleep 5; do cp "$T"/*.log "$OUT"/ 2>/dev/null || true; done) &

# nfsd's per-op counters (/proc/net/rpc/nfsd, proc4ops line; op numbers from RFC 8881).
nfsd_op() {
	awk -v op="$1" '$1 == "proc4ops" { print $(op + 3) }' /proc/net/rpc/nfsd
}
OP_LAYOUTRETURN=51
nfsd_layout_states() {
	cat /proc/fs/nfsd/clients/*/states 2>/dev/null | grep -c 'type: layout' || true
}

step "modules and MDS ($MDS_KIND)"
require_module ublk_drv
case "$MDS_KIND" in
nfsd)
	start_nfsd_pnfs 1200
	truncate -s "$FILE_BYTES" "$PNFS_EXPORT/disk.img"
	MDS_ADDR=127.0.0.1:2049
	VOLUME=$PNFS_VOL_DEV
	CREATE=()
	MOUNT_OPTS=
	;;
embedded)
	truncate -s 1200M "$T/vol.img"
	RUST_LOG=info "$PNFSGW" mds --listen 127.0.0.1:20490 --state "$T/mds" --volume "$T/vol.img" \
		--lease-seconds 10 --grace-seconds 10 --recall-timeout-seconds 10 >"$T/mds.log" 2>&1 &
	MDS=$!
	wait_for 60 test -S "$T/mds/admin.sock"
	MDS_ADDR=127.0.0.1:20490
	VOLUME=$T/vol.img
	CREATE=(--create 1G)
	MOUNT_OPTS=port=20490
	;;
*) fail "MDS_KIND must be nfsd or embedded, got '$MDS_KIND'" ;;
esac
mds_admin() {
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1]); s.sendall((sys.argv[2]+"\n").encode()); print(s.makefile().readline().strip())' "$T/mds/admin.sock" "$*"
}
export -f mds_admin

# start_gw N: gateway number N (log gwN.log), sets GW (pid) and DEV.
start_gw() {
	RUST_LOG=info "$PNFSGW" export --mds "$MDS_ADDR" --path /disk.img --nbd 127.0.0.1:10809 \
		"${CREATE[@]}" --ublk --volume "$VOLUME" --control "$T/c.sock" >"$T/gw$1.out" 2>"$T/gw$1.log" &
	GW=$!
	local i
	for ((i = 0; i < 1200; i++)); do
		grep -q '^/dev/ublkb' "$T/gw$1.out" && break
		kill -0 "$GW" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q '^/dev/ublkb' "$T/gw$1.out"; then
		cat "$T/gw$1.log"
		kill -0 "$GW" 2>/dev/null || fail "gateway $1 exited before it printed its device"
		hang_dump "gateway $1 did not print its device within 120 s"
		fail "gateway $1 did not print its device within 120 s"
	fi
	DEV=$(grep '^/dev/ublkb' "$T/gw$1.out")
	test -b "$DEV"
	echo "gateway $1: pid $GW device $DEV"
}

step "1. gateway up: /dev/ublkbN for the 1 GiB file"
start_gw 1
assert_eq "$FILE_BYTES" "$(blockdev --getsize64 "$DEV")" "device size"
passed device

step "1. ext4: mkfs, mount, copy a tree, umount"
guarded 120 mkfs.ext4 mkfs.ext4 -q -F "$DEV"
mkdir -p /mnt/u
guarded 60 "mount ext4" mount "$DEV" /mnt/u
guarded 120 "cp -a into ext4" cp -a /usr/include/linux /mnt/u/tree
guarded 120 "umount ext4" umount /mnt/u
step "1. ext4: fsck.ext4 -fn clean"
guarded 120 fsck.ext4 fsck.ext4 -fn "$DEV"
step "1. ext4: remount and diff -r"
guarded 60 drop_caches drop_caches
guarded 60 "mount ext4 ro" mount -o ro "$DEV" /mnt/u
guarded 120 "diff -r" diff -r /usr/include/linux /mnt/u/tree
guarded 60 "umount ext4" umount /mnt/u
passed ext4

step "1. xfs: mkfs.xfs -f, xfs_repair -n clean"
guarded 120 mkfs.xfs mkfs.xfs -q -f "$DEV"
guarded 120 "xfs_repair -n" xfs_repair -n "$DEV"
passed xfs

step "2. fio randwrite crc32c verify, direct, QD16, 2 jobs"
# Never-written space (from 512 MiB): the first writes into INVALID extents, then verify.
guarded 300 fio fio --name=ublk-verify --filename="$DEV" --direct=1 --ioengine=libaio \
	--rw=randwrite --bs=4k --iodepth=16 --numjobs=2 --size=16M --offset=512M \
	--offset_increment=16M --verify=crc32c --verify_fatal=1 --do_verify=1 \
	--group_reporting >"$T/fio.log" 2>&1 || { cat "$T/fio.log"; fail "fio failed"; }
grep -q 'err= 0' "$T/fio.log" || { cat "$T/fio.log"; fail "fio reported an error"; }
if grep -qi 'verify.*bad\|crc32c.*mismatch\|bad magic' "$T/fio.log"; then
	cat "$T/fio.log"
	fail "fio reported verify errors"
fi
passed fio

step "4. blkdiscard, punch-hole, zero-range read back zeros"
# 5 MiB of data at 700 MiB; the middle three MiB discarded / punched / zeroed one each.
AT=$((700 * MIB))
head -c $((5 * MIB)) /dev/urandom >"$T/pattern"
guarded 60 "dd pattern to the device" dd if="$T/pattern" of="$DEV" bs=1M seek=700 oflag=direct conv=fsync status=none
guarded 60 "dd from the device" dd if="$DEV" of="$T/before" bs=1M skip=700 count=5 iflag=direct status=none
cmp "$T/pattern" "$T/before"
guarded 60 blkdiscard blkdiscard -o $((AT + MIB)) -l "$MIB" "$DEV"
guarded 60 "fallocate --punch-hole" fallocate --punch-hole -o $((AT + 2 * MIB)) -l "$MIB" "$DEV"
guarded 60 "fallocate --zero-range" fallocate --zero-range -o $((AT + 3 * MIB)) -l "$MIB" "$DEV"
guarded 60 "dd from the device" dd if="$DEV" of="$T/after" bs=1M skip=700 count=5 iflag=direct status=none
cmp -n "$MIB" "$T/pattern" "$T/after" || fail "data before the discarded range changed"
cmp -n $((3 * MIB)) /dev/zero <(tail -c +$((MIB + 1)) "$T/after") ||
	fail "discard / punch-hole / zero-range did not read back as zeros"
cmp <(tail -c "$MIB" "$T/pattern") <(tail -c "$MIB" "$T/after") ||
	fail "data after the zeroed range changed"
# Keep the expected content of the range for the kernel client's check after SIGTERM.
cp "$T/after" "$T/expect_700"
passed discard

# kernel_read MNT_OFFSET_MIB COUNT_MIB FILE: the kernel client reads the file through NFS.
kernel_read() {
	guarded 120 "mount the kernel NFS client" mount_kernel_client /mnt/nfs "$MOUNT_OPTS"
	PNFS_CLIENT_MNT=/mnt/nfs
	guarded 120 "the kernel client's read" dd if=/mnt/nfs/disk.img of="$3" bs=1M skip="$1" count="$2" status=none
}

for ((round = 1; round <= ROUNDS; round++)); do
	R=
	[ "$ROUNDS" = 1 ] || R=" (round $round of $ROUNDS)"
	if [ "$round" -gt 1 ]; then
		step "5. another gateway for the SIGTERM check$R"
		start_gw "$round-a"
	fi
	GW_LOG=$T/gw${round}$([ "$round" = 1 ] || echo -a).log

	step "5. SIGTERM: exit 0, device gone, layout returned$R"
	if [ "$MDS_KIND" = nfsd ]; then
		cat /proc/fs/nfsd/clients/*/states >"$OUT/states_before" 2>/dev/null || true
		assert_gt "$(nfsd_layout_states)" 0 "nfsd lists the running gateway's layout"
		RETURNS_BEFORE=$(nfsd_op $OP_LAYOUTRETURN)
	fi
	kill -TERM "$GW"
	wait_exit 120 "$GW" "gateway after SIGTERM"
	assert_eq 0 "$EXIT_STATUS" "pnfsgw exit status after SIGTERM"
	test ! -e "$DEV" || fail "$DEV still exists after the gateway exited"
	grep -q 'stopped cleanly' "$GW_LOG" || fail "no 'stopped cleanly' in the gateway's log"
	if [ "$MDS_KIND" = nfsd ]; then
		cat /proc/fs/nfsd/clients/*/states >"$OUT/states_after" 2>/dev/null || true
		assert_eq 0 "$(nfsd_layout_states)" "layout stateids left on nfsd after SIGTERM"
		assert_gt "$(nfsd_op $OP_LAYOUTRETURN)" "$RETURNS_BEFORE" "nfsd LAYOUTRETURN count"
	fi
	step "5. the kernel client takes a layout on the file (LAYOUTGET) and reads it$R"
	if [ "$MDS_KIND" = embedded ]; then RECALLS_BEFORE=$(mds_admin stats); fi
	kernel_read 700 5 "$T/nfs_700"
	cmp "$T/expect_700" "$T/nfs_700" || fail "the kernel client reads other data than the gateway wrote"
	echo "kernel client: LAYOUTGET=$(nfs_op_count LAYOUTGET) READ=$(nfs_op_count READ)"
	assert_gt "$(nfs_op_count LAYOUTGET)" 0 "kernel client LAYOUTGET"
	if [ "$MDS_KIND" = embedded ]; then
		STATS=$(mds_admin stats)
		echo "mds: $STATS"
		# An outstanding layout of the gateway would make the MDS recall it now.
		assert_eq "${RECALLS_BEFORE%% *}" "${STATS%% *}" "recalls for the kernel client's layout"
		if [ "$round" = 1 ]; then assert_eq recalls_sent=0 "${STATS%% *}" "recalls sent by the MDS"; fi
	fi
	guarded 60 "umount the kernel client" umount_kernel_client /mnt/nfs
	if [ "$round" = "$ROUNDS" ]; then passed sigterm; fi

	step "3. durability: seeded data, sync, SIGKILL$R"
	start_gw "$round-b"
	echo "durability seed: $SEED (round $round)"
	python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(int(sys.argv[2])))' \
		"$((SEED + round - 1))" $((8 * MIB)) >"$T/seeded"
	# 8 MiB at 900 MiB: never written before round 1, so only a LAYOUTCOMMIT makes it visible
	# to the MDS; later rounds overwrite it with other data.
	guarded 60 "dd conv=fsync to the device" dd if="$T/seeded" of="$DEV" bs=1M seek=900 oflag=direct conv=fsync status=none
	guarded 60 sync sync
	kill -KILL "$GW"
	wait_exit 60 "$GW" "gateway after SIGKILL"
	assert_eq 137 "$EXIT_STATUS" "pnfsgw exit status after SIGKILL"
	step "3. durability: the kernel NFS client reads the seeded data$R"
	kernel_read 900 8 "$T/nfs_copy"
	cmp "$T/seeded" "$T/nfs_copy" || fail "the data written before SIGKILL differs through NFS"
	guarded 60 "umount the kernel client" umount_kernel_client /mnt/nfs
done
passed durability
if [ "$MDS_KIND" = embedded ]; then
	kill -TERM "$MDS"
	wait_exit 60 "$MDS" "pnfsgw mds after SIGTERM"
	assert_eq 0 "$EXIT_STATUS" "pnfsgw mds exit status after SIGTERM"
fi
echo ALL-OK
