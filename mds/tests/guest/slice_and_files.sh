# Kernel client against the embedded MDS: 32 MiB through block layouts, file work, restart.
# Env: PNFS_MDS_BIN, MDS_BS (block size). Writes mountstats numbers to $OUT.
M=/mnt/x
PORT=20490
trap 'cp $MDS_DIR/mds.log $OUT/ 2>/dev/null || true' EXIT
remount() { umount $M; mount -t nfs -o vers=4.1,port=$PORT localhost:/ $M; }

step "start mds (block size $MDS_BS)"
start_mds $PORT "$MDS_BS"
step "mount"
mount_kernel_client $M port=$PORT

step "32 MiB through the block layout"
dd if=/dev/urandom of=/run/src bs=1M count=32 status=none
cp /run/src $M/big
sync
stats_w=$(nfs_mountstats $M)
echo "$stats_w" | grep -E "pnfs=|^\s+(READ|WRITE|LAYOUTGET|LAYOUTCOMMIT|LAYOUTRETURN|GETDEVICEINFO):"
assert_eq LAYOUT_BLOCK_VOLUME "$(nfs_pnfs_type $M)" "pnfs type"
for op in LAYOUTGET LAYOUTCOMMIT READ WRITE; do echo "$op $(nfs_op_count $op $M)" >>$OUT/stats_write; done
assert_gt "$(nfs_op_count LAYOUTGET $M)" 0 "LAYOUTGET"
assert_gt "$(nfs_op_count LAYOUTCOMMIT $M)" 0 "LAYOUTCOMMIT"
assert_eq 0 "$(nfs_op_count WRITE $M)" "WRITE RPCs"
remount
cmp /run/src $M/big
assert_eq 0 "$(nfs_op_count READ $M)" "READ RPCs"
assert_gt "$(nfs_op_count LAYOUTGET $M)" 0 "LAYOUTGET on read"
echo "read back equal; READ=$(nfs_op_count READ $M) LAYOUTGET=$(nfs_op_count LAYOUTGET $M)"
echo "LAYOUTGET_READ $(nfs_op_count LAYOUTGET $M)" >>$OUT/stats_write

step "file work"
mkdir $M/d1 $M/d1/d2
echo hello >$M/d1/a
printf 'x%.0s' $(seq 1 5000) >$M/d1/d2/b
mv $M/d1/a $M/d1/d2/a2
ln -s d2/a2 $M/d1/link
assert_eq hello "$(cat $M/d1/link)" "symlink"
dd if=/dev/urandom of=$M/t bs=64k count=10 status=none
truncate -s 100000 $M/t
truncate -s 300000 $M/t
head -c 100000 /run/src >/dev/null
sync
remount
assert_eq 300000 "$(stat -c %s $M/t)" "size after truncate up"
assert_eq 0 "$(tail -c 200000 $M/t | tr -d '\0' | wc -c)" "zeros past the old end"
assert_eq 5000 "$(stat -c %s $M/d1/d2/b)" "size of b"
assert_eq hello "$(cat $M/d1/d2/a2)" "renamed file"
rm $M/d1/d2/b
rmdir $M/d1/d2 2>/dev/null && fail "rmdir of a non-empty dir succeeded" || true
ls -l $M $M/d1 $M/d1/d2
touch -d '2020-01-02 03:04:05' $M/t
assert_eq "2020-01-02 03:04:05" "$(date -d @$(stat -c %Y $M/t) '+%Y-%m-%d %H:%M:%S')" "mtime"
sha_t=$(sha256sum <$M/t)
sha_big=$(sha256sum </run/src)
sync

step "special files: mknod, mkfifo, a socket; rename and remove them"
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
remount
assert_eq "character special file 1 3" "$(stat -c '%F %t %T' $M/d1/chr)" "device after remount"
assert_eq "fifo" "$(stat -c %F $M/d1/fifo2)" "renamed fifo after remount"
[ -e $M/d1/blk ] && fail "a removed device is still there"
[ -e $M/d1/fifo ] && fail "a renamed fifo is still under its old name"

step "byte-range locks between two processes"
guarded 120 "lock test" python3 "$PNFS_MDS_GUEST_DIR/locks.py" $M/d1/locked
echo "LOCK $(nfs_op_count LOCK $M) LOCKU $(nfs_op_count LOCKU $M)"
assert_gt "$(nfs_op_count LOCK $M)" 0 "LOCK calls"

step "SIGKILL the idle MDS and restart"
kill_mds
start_mds $PORT "$MDS_BS"
# The mounted client recovers by itself (new client id, reclaim, grace).
assert_eq "$sha_big" "$(sha256sum <$M/big)" "big after restart (old mount)"
remount
assert_eq "$sha_t" "$(sha256sum <$M/t)" "t after restart"
assert_eq "$sha_big" "$(sha256sum <$M/big)" "big after restart"
assert_eq hello "$(cat $M/d1/d2/a2)" "a2 after restart"
assert_eq hello "$(cat $M/d1/link)" "symlink after restart"
assert_eq "character special file 1 3" "$(stat -c '%F %t %T' $M/d1/chr)" "device after restart"
ls -lR $M | head -20

step "kill during writes: fsynced data survives"
dd if=/dev/urandom of=/run/src2 bs=1M count=8 status=none
dd if=/run/src2 of=$M/w bs=1M count=8 conv=fsync status=none
( dd if=/dev/urandom of=$M/w2 bs=1M count=16 status=none || true ) &
DD=$!
sleep 1
kill_mds
start_mds $PORT "$MDS_BS"
wait $DD || true
sync
assert_eq "$(sha256sum </run/src2)" "$(sha256sum <$M/w)" "fsynced file after restart"
remount
assert_eq "$(sha256sum </run/src2)" "$(sha256sum <$M/w)" "fsynced file after restart and remount"
umount $M
echo ALL-OK
