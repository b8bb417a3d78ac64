# ublk acceptance on the real stack (issue 6), sourced after lib.sh in one guest boot:
# `pnfsgw export --ublk` on a 1 GiB file of a real MDS, then through /dev/ublkbN:
#   1. ext4: mkfs, mount, copy a tree, umount, fsck -fn, remount, diff -r; mkfs.xfs + xfs_repair -n
#   2. fio randwrite + crc32c verify, direct, QD16, 2 jobs on disjoint ranges
#   4. blkdiscard / punch-hole / zero-range read back zeros, the data around them untouched
#   5. SIGTERM: exit 0, the device gone, no layout left on the MDS (see below)
#   3. durability: seeded data, FLUSH + sync, SIGKILL; the kernel NFS client reads it back
#
# Env: PNFSGW (binary), MDS_KIND (nfsd | embedded), SEED (for the durability data).
# Results for the host side in $OUT: steps.txt (one "ok NAME" per passed check), gw*.log.
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
T=/run/ublk-acc
mkdir -p "$T"
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
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((sys.argv[2]+"\n").encode()); print(s.makefile().readline().strip())' "$T/mds/admin.sock" "$*"
}

# start_gw N: gateway number N (log gwN.log), sets GW (pid) and DEV.
start_gw() {
	RUST_LOG=info "$PNFSGW" export --mds "$MDS_ADDR" --path /disk.img --nbd 127.0.0.1:10809 \
		"${CREATE[@]}" --ublk --volume "$VOLUME" --control "$T/c.sock" >"$T/gw$1.out" 2>"$T/gw$1.log" &
	GW=$!
	wait_for 120 grep -q '^/dev/ublkb' "$T/gw$1.out" || { cat "$T/gw$1.log"; false; }
	DEV=$(grep '^/dev/ublkb' "$T/gw$1.out")
	test -b "$DEV"
	echo "gateway $1: pid $GW device $DEV"
}

step "1. gateway up: /dev/ublkbN for the 1 GiB file"
start_gw 1
assert_eq "$FILE_BYTES" "$(blockdev --getsize64 "$DEV")" "device size"
passed device

step "1. ext4: mkfs, mount, copy a tree, umount"
timeout 120 mkfs.ext4 -q -F "$DEV"
mkdir -p /mnt/u
mount "$DEV" /mnt/u
cp -a /usr/include/linux /mnt/u/tree
umount /mnt/u
step "1. ext4: fsck.ext4 -fn clean"
fsck.ext4 -fn "$DEV"
step "1. ext4: remount and diff -r"
drop_caches
mount -o ro "$DEV" /mnt/u
diff -r /usr/include/linux /mnt/u/tree
umount /mnt/u
passed ext4

step "1. xfs: mkfs.xfs -f, xfs_repair -n clean"
timeout 120 mkfs.xfs -q -f "$DEV"
xfs_repair -n "$DEV"
passed xfs

step "2. fio randwrite crc32c verify, direct, QD16, 2 jobs"
# Never-written space (from 512 MiB): the first writes into INVALID extents, then verify.
timeout 300 fio --name=ublk-verify --filename="$DEV" --direct=1 --ioengine=libaio \
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
dd if="$T/pattern" of="$DEV" bs=1M seek=700 oflag=direct conv=fsync status=none
cmp "$T/pattern" <(dd if="$DEV" bs=1M skip=700 count=5 iflag=direct status=none)
blkdiscard -o $((AT + MIB)) -l "$MIB" "$DEV"
fallocate --punch-hole -o $((AT + 2 * MIB)) -l "$MIB" "$DEV"
fallocate --zero-range -o $((AT + 3 * MIB)) -l "$MIB" "$DEV"
dd if="$DEV" of="$T/after" bs=1M skip=700 count=5 iflag=direct status=none
cmp -n "$MIB" "$T/pattern" "$T/after" || fail "data before the discarded range changed"
cmp -n $((3 * MIB)) /dev/zero <(tail -c +$((MIB + 1)) "$T/after") ||
	fail "discard / punch-hole / zero-range did not read back as zeros"
cmp <(tail -c "$MIB" "$T/pattern") <(tail -c "$MIB" "$T/after") ||
	fail "data after the zeroed range changed"
# Keep the expected content of the range for the kernel client's check after SIGTERM.
cp "$T/after" "$T/expect_700"
passed discard

step "5. SIGTERM: exit 0, device gone, layout returned"
if [ "$MDS_KIND" = nfsd ]; then
	cat /proc/fs/nfsd/clients/*/states >"$OUT/states_before" 2>/dev/null || true
	assert_gt "$(nfsd_layout_states)" 0 "nfsd lists the running gateway's layout"
	RETURNS_BEFORE=$(nfsd_op $OP_LAYOUTRETURN)
fi
kill -TERM "$GW"
rc=0
wait "$GW" || rc=$?
assert_eq 0 "$rc" "pnfsgw exit status after SIGTERM"
test ! -e "$DEV" || fail "$DEV still exists after the gateway exited"
grep -q 'stopped cleanly' "$T/gw1.log" || fail "no 'stopped cleanly' in the gateway's log"
if [ "$MDS_KIND" = nfsd ]; then
	cat /proc/fs/nfsd/clients/*/states >"$OUT/states_after" 2>/dev/null || true
	assert_eq 0 "$(nfsd_layout_states)" "layout stateids left on nfsd after SIGTERM"
	assert_gt "$(nfsd_op $OP_LAYOUTRETURN)" "$RETURNS_BEFORE" "nfsd LAYOUTRETURN count"
fi
step "5. the kernel client takes a layout on the file (LAYOUTGET) and reads it"
mount_kernel_client /mnt/nfs "$MOUNT_OPTS"
cmp "$T/expect_700" <(dd if=/mnt/nfs/disk.img bs=1M skip=700 count=5 status=none) ||
	fail "the kernel client reads other data than the gateway wrote"
echo "kernel client: LAYOUTGET=$(nfs_op_count LAYOUTGET) READ=$(nfs_op_count READ)"
assert_gt "$(nfs_op_count LAYOUTGET)" 0 "kernel client LAYOUTGET"
if [ "$MDS_KIND" = embedded ]; then
	STATS=$(mds_admin stats)
	echo "mds: $STATS"
	assert_eq "recalls_sent=0" "${STATS%% *}" "recalls for the kernel client's layout"
fi
umount_kernel_client
passed sigterm

step "3. durability: seeded data, sync, SIGKILL"
start_gw 2
echo "durability seed: $SEED"
python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(int(sys.argv[2])))' \
	"$SEED" $((8 * MIB)) >"$T/seeded"
# 8 MiB at 900 MiB: never written before, so only a LAYOUTCOMMIT makes it visible to the MDS.
dd if="$T/seeded" of="$DEV" bs=1M seek=900 oflag=direct conv=fsync status=none
sync
kill -KILL "$GW"
wait "$GW" || true
step "3. durability: the kernel NFS client reads the seeded data"
mount_kernel_client /mnt/nfs "$MOUNT_OPTS"
timeout 120 dd if=/mnt/nfs/disk.img of="$T/nfs_copy" bs=1M skip=900 count=8 status=none
cmp "$T/seeded" "$T/nfs_copy" || fail "the data written before SIGKILL differs through NFS"
umount_kernel_client
passed durability
[ "$MDS_KIND" = embedded ] && { kill -TERM "$MDS"; wait "$MDS"; }
echo ALL-OK
