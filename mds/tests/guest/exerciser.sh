# Seeded random exerciser over the kernel client at MDS block size $MDS_BS.
# Env: PNFS_MDS_BIN, MDS_BS, PNFS_EX_SEED (required: the host picks and prints it), EX_OPS
# (default 10000), EX_MAX_BYTES (largest file, default 4 MiB), EX_MODE (strict | sync-extend,
# see exerciser.py), EX_SERVER (mds | nfsd: Linux nfsd + XFS as the reference server).
# The client's i_size changes (tracepoints nfs:nfs_size_*) are saved to $OUT/ktrace: a read that
# comes back short shows there which reply moved the size.
# Every blocking step runs under a deadline (`guarded`): a hang fails with the guest's state
# in $OUT/hang-N.txt.
M=/mnt/x
PORT=20490
# The whole exerciser run: 10,000 ops take 2-4 minutes under TCG (the guest's timeout is 15).
EX_DEADLINE_S=${EX_DEADLINE_S:-600}
T=/sys/kernel/tracing
trap 'cp $MDS_DIR/mds.log $OUT/ 2>/dev/null || true; cp $T/trace $OUT/ktrace 2>/dev/null || true' EXIT
seed=${PNFS_EX_SEED:?PNFS_EX_SEED must be set}
if [ "${EX_SERVER:-mds}" = nfsd ]; then
	step "start nfsd + xfs (reference server)"
	start_nfsd_pnfs 400
	mount_kernel_client $M
else
	step "start mds (block size $MDS_BS)"
	start_mds $PORT "$MDS_BS"
	HANG_DUMP_EXTRA="tail -n 60 $MDS_DIR/mds.log; timeout 10 bash -c 'mds_admin stats'"
	export MDS_DIR
	export -f mds_admin
	mount_kernel_client $M port=$PORT
fi
[ -d $T/events ] || mount -t tracefs nodev $T 2>/dev/null || true
echo 8192 >$T/buffer_size_kb 2>/dev/null || true
for e in nfs_size_update nfs_size_truncate nfs_size_grow nfs_size_wcc; do
	echo 1 >$T/events/nfs/$e/enable 2>/dev/null || echo "exerciser: no tracepoint nfs:$e"
done
step "exerciser seed $seed (${EX_MODE:-strict})"
guarded "$EX_DEADLINE_S" "exerciser seed $seed" python3 "$PNFS_MDS_GUEST_DIR/exerciser.py" $M/ex "$seed" "${EX_OPS:-10000}" "${EX_MAX_BYTES:-4194304}" "${EX_MODE:-strict}"
[ -n "${MDS_PID:-}" ] && awk '{print "mds cpu: user " $14/100 " s, system " $15/100 " s"}' /proc/$MDS_PID/stat
[ -n "${MDS_PID:-}" ] && echo "mds: $(mds_admin stats)"
nfs_mountstats $M | grep -E "^\s+(READ|WRITE|LAYOUTGET|LAYOUTCOMMIT|LAYOUTRETURN|SETATTR):"
assert_eq LAYOUT_BLOCK_VOLUME "$(nfs_pnfs_type $M)" "pnfs type"
for op in LAYOUTGET LAYOUTCOMMIT READ WRITE; do echo "$op $(nfs_op_count $op $M)" >>$OUT/stats; done
# Bytes of READ replies (mountstats per-op field 5): tells READs that brought data from ones
# past EOF that brought none.
echo "READ_REPLY_BYTES $(nfs_mountstats $M | awk '$1 == "READ:" { print $6; exit }')" >>$OUT/stats
umount_kernel_client $M
echo ALL-OK
