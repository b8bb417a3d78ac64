# Seeded random exerciser over the kernel client at MDS block size $MDS_BS.
# Env: PNFS_MDS_BIN, MDS_BS, EX_SEED (default: random), EX_OPS (default 10000).
M=/mnt/x
PORT=20490
trap 'cp $MDS_DIR/mds.log $OUT/ 2>/dev/null || true' EXIT
seed=${EX_SEED:-$RANDOM$RANDOM}
step "start mds (block size $MDS_BS)"
start_mds $PORT "$MDS_BS"
mount_kernel_client $M port=$PORT
step "exerciser seed $seed"
python3 "$PNFS_MDS_GUEST_DIR/exerciser.py" $M/ex "$seed" "${EX_OPS:-10000}"
nfs_mountstats $M | grep -E "^\s+(READ|WRITE|LAYOUTGET|LAYOUTCOMMIT|LAYOUTRETURN|SETATTR):"
for op in LAYOUTGET LAYOUTCOMMIT READ WRITE; do echo "$op $(nfs_op_count $op $M)" >>$OUT/stats; done
umount $M
echo ALL-OK
