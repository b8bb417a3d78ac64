# Kernel client against the embedded MDS: 32 MiB through block layouts, file work, restart.
# Env: PNFS_MDS_BIN, MDS_BS (block size). Writes mountstats numbers to $OUT.
# Everything that touches the NFS mount runs under a deadline (`guarded`, `wait_exit`): a hang
# fails its step with the guest's state in $OUT/hang-N.txt (and the MDS's log in $OUT).
M=/mnt/x
PORT=20490
# One NFS operation or a small file (a second or two under TCG; up to the 10 s grace period
# plus the client's recovery after an MDS restart).
NFS_OP_DEADLINE_S=120
# 32 MiB through the block layout (cp, cmp, sync: about 10 s under TCG).
NFS_BULK_DEADLINE_S=300
# locks.py: two blocked F_SETLKW waiters, each checked blocked for 4 s, then granted at the
# Linux client's next LOCK poll (its interval doubles up to 30 s).
LOCK_TEST_DEADLINE_S=300
trap 'cp $MDS_DIR/mds.log $OUT/ 2>/dev/null || true' EXIT
# The log first: a busy MDS may not answer its admin socket within the dump's time limit.
HANG_DUMP_EXTRA="tail -n 60 $MDS_DIR/mds.log; [ ! -S $MDS_DIR/state/admin.sock ] || timeout 10 bash -c 'mds_admin stats'"
export MDS_DIR
export -f mds_admin
remount() {
	umount_kernel_client $M
	guarded "$PNFS_MOUNT_DEADLINE_S" "mount $M again" mount -t nfs -o vers=4.1,port=$PORT localhost:/ $M
}
# op WHAT CMD...: one command on the mount, under the NFS operation deadline.
op() {
	local what=$1
	shift
	guarded "$NFS_OP_DEADLINE_S" "$what" "$@"
}
# sha FILE: the SHA-256 of FILE (read under the deadline).
sha() {
	op "sha256sum $1" sha256sum "$1" | cut -d' ' -f1
}

step "start mds (block size $MDS_BS)"
start_mds $PORT "$MDS_BS"
step "mount"
mount_kernel_client $M port=$PORT

step "32 MiB through the block layout"
dd if=/dev/urandom of=/run/src bs=1M count=32 status=none
guarded "$NFS_BULK_DEADLINE_S" "cp 32 MiB to $M/big" cp /run/src $M/big
guarded "$NFS_BULK_DEADLINE_S" "sync after the 32 MiB copy" sync
stats_w=$(nfs_mountstats $M)
echo "$stats_w" | grep -E "pnfs=|^\s+(READ|WRITE|LAYOUTGET|LAYOUTCOMMIT|LAYOUTRETURN|GETDEVICEINFO):"
assert_eq LAYOUT_BLOCK_VOLUME "$(nfs_pnfs_type $M)" "pnfs type"
for op in LAYOUTGET LAYOUTCOMMIT READ WRITE; do echo "$op $(nfs_op_count $op $M)" >>$OUT/stats_write; done
assert_gt "$(nfs_op_count LAYOUTGET $M)" 0 "LAYOUTGET"
assert_gt "$(nfs_op_count LAYOUTCOMMIT $M)" 0 "LAYOUTCOMMIT"
assert_eq 0 "$(nfs_op_count WRITE $M)" "WRITE RPCs"
remount
guarded "$NFS_BULK_DEADLINE_S" "cmp 32 MiB read back" cmp /run/src $M/big
assert_eq 0 "$(nfs_op_count READ $M)" "READ RPCs"
assert_gt "$(nfs_op_count LAYOUTGET $M)" 0 "LAYOUTGET on read"
echo "read back equal; READ=$(nfs_op_count READ $M) LAYOUTGET=$(nfs_op_count LAYOUTGET $M)"
echo "LAYOUTGET_READ $(nfs_op_count LAYOUTGET $M)" >>$OUT/stats_write

step "file work"
# The namespace and data changes, in one guarded subshell (each is one or two RPCs).
file_work() {
	mkdir $M/d1 $M/d1/d2
	echo hello >$M/d1/a
	printf 'x%.0s' $(seq 1 5000) >$M/d1/d2/b
	mv $M/d1/a $M/d1/d2/a2
	ln -s d2/a2 $M/d1/link
	assert_eq hello "$(cat $M/d1/link)" "symlink"
	dd if=/dev/urandom of=$M/t bs=64k count=10 status=none
	truncate -s 100000 $M/t
	truncate -s 300000 $M/t
	sync
}
op "file work: mkdir, write, rename, symlink, truncate, sync" file_work
remount
check_file_work() {
	assert_eq 300000 "$(stat -c %s $M/t)" "size after truncate up"
	assert_eq 0 "$(tail -c 200000 $M/t | tr -d '\0' | wc -c)" "zeros past the old end"
	assert_eq 5000 "$(stat -c %s $M/d1/d2/b)" "size of b"
	assert_eq hello "$(cat $M/d1/d2/a2)" "renamed file"
	rm $M/d1/d2/b
	rmdir $M/d1/d2 2>/dev/null && fail "rmdir of a non-empty dir succeeded" || true
	ls -l $M $M/d1 $M/d1/d2
	touch -d '2020-01-02 03:04:05' $M/t
	assert_eq "2020-01-02 03:04:05" "$(date -d @$(stat -c %Y $M/t) '+%Y-%m-%d %H:%M:%S')" "mtime"
}
op "file work read back: stat, tail, cat, rm, rmdir, ls, touch" check_file_work
sha_t=$(sha $M/t)
sha_big=$(sha /run/src)
op "sync after the file work" sync

step "special files: mknod, mkfifo, a socket; rename and remove them"
special_files() {
	mknod $M/d1/blk b 8 1
	mknod $M/d1/chr c 1 3
	mkfifo $M/d1/fifo
	python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('$M/d1/sock')"
	assert_eq "block special file 8 1" "$(stat -c '%F %t %T' $M/d1/blk)" "mknod b"
	assert_eq "character special file 1 3" "$(stat -c '%F %t %T' $M/d1/chr)" "mknod c"
	assert_eq "fifo" "$(stat -c %F $M/d1/fifo)" "mkfifo"
	assert_eq "socket" "$(stat -c %F $M/d1/sock)" "socket"
	mv $M/d1/fifo $M/d1/fifo2
	rm $M/d1/blk $M/d1/sock
}
op "special files: mknod, mkfifo, bind a socket, rename, remove" special_files
remount
check_special_files() {
	assert_eq "character special file 1 3" "$(stat -c '%F %t %T' $M/d1/chr)" "device after remount"
	assert_eq "fifo" "$(stat -c %F $M/d1/fifo2)" "renamed fifo after remount"
	[ ! -e $M/d1/blk ] || fail "a removed device is still there"
	[ ! -e $M/d1/fifo ] || fail "a renamed fifo is still under its old name"
}
op "special files after remount" check_special_files

step "byte-range locks between two processes"
guarded "$LOCK_TEST_DEADLINE_S" "lock test" python3 "$PNFS_MDS_GUEST_DIR/locks.py" $M/d1/locked
echo "LOCK $(nfs_op_count LOCK $M) LOCKU $(nfs_op_count LOCKU $M)"
assert_gt "$(nfs_op_count LOCK $M)" 0 "LOCK calls"

step "SIGKILL the idle MDS and restart"
kill_mds
start_mds $PORT "$MDS_BS"
# The mounted client recovers by itself (new client id, reclaim, grace).
assert_eq "$sha_big" "$(sha $M/big)" "big after restart (old mount)"
remount
assert_eq "$sha_t" "$(sha $M/t)" "t after restart"
assert_eq "$sha_big" "$(sha $M/big)" "big after restart"
assert_eq hello "$(op "cat a2" cat $M/d1/d2/a2)" "a2 after restart"
assert_eq hello "$(op "cat link" cat $M/d1/link)" "symlink after restart"
assert_eq "character special file 1 3" "$(op "stat chr" stat -c '%F %t %T' $M/d1/chr)" "device after restart"
op "ls -lR" ls -lR $M | head -20

# KILL_ROUNDS (default 1): how many times the step below runs in this boot (to hunt a rare
# hang after the restart).
for ((round = 1; round <= ${KILL_ROUNDS:-1}; round++)); do
	step "kill during writes: fsynced data survives$([ "${KILL_ROUNDS:-1}" = 1 ] || echo " (round $round)")"
	dd if=/dev/urandom of=/run/src2 bs=1M count=8 status=none
	op "dd 8 MiB conv=fsync to $M/w" dd if=/run/src2 of=$M/w bs=1M count=8 conv=fsync status=none
	(dd if=/dev/urandom of=$M/w2 bs=1M count=16 status=none || true) &
	DD=$!
	sleep 1
	kill_mds
	start_mds $PORT "$MDS_BS"
	wait_exit "$NFS_BULK_DEADLINE_S" $DD "dd of 16 MiB to $M/w2 across the MDS restart"
	guarded "$NFS_BULK_DEADLINE_S" "sync after the MDS restart" sync
	assert_eq "$(sha /run/src2)" "$(sha $M/w)" "fsynced file after restart"
	remount
	assert_eq "$(sha /run/src2)" "$(sha $M/w)" "fsynced file after restart and remount"
done
umount_kernel_client $M
echo ALL-OK
