# Two kernel clients (two client ids: the second in its own network namespace with its own
# nfs_client identifier): byte-range locks between them (locks.py), then writing the same file
# in turn: CB_LAYOUTRECALL reaches the holder.
# Env: PNFS_MDS_BIN, MDS_BS.
# Everything that touches an NFS mount runs under a deadline (`guarded`): a hang fails its step
# with the guest's state in $OUT/hang-N.txt.
M=/mnt/x
M2=/mnt/y
PORT=20490
# 1 MiB with fsync, a cat, a cmp: a second or two under TCG; a write that conflicts with the
# other client's layout waits for the recall (answered in well under the 20 s recall timeout).
NFS_OP_DEADLINE_S=120
# locks.py (see slice_and_files.sh).
LOCK_TEST_DEADLINE_S=300
trap 'cp $MDS_DIR/mds.log $OUT/ 2>/dev/null || true' EXIT
# The log first: a busy MDS may not answer its admin socket within the dump's time limit.
HANG_DUMP_EXTRA="tail -n 60 $MDS_DIR/mds.log; [ ! -S $MDS_DIR/state/admin.sock ] || timeout 10 bash -c 'mds_admin stats'"
export MDS_DIR
export -f mds_admin
op() {
	local what=$1
	shift
	guarded "$NFS_OP_DEADLINE_S" "$what" "$@"
}
step "network namespace for the second client"
ip netns add c2
ip link add v1 type veth peer name v2 netns c2
ip addr add 10.77.0.1/24 dev v1
ip link set v1 up
ip -n c2 addr add 10.77.0.2/24 dev v2
ip -n c2 link set v2 up
ip -n c2 link set lo up
step "start mds"
MDS_LISTEN=0.0.0.0 start_mds $PORT "$MDS_BS" --recall-timeout-seconds 20
step "mount both clients"
mount_kernel_client $M port=$PORT,noac
ip netns exec c2 sh -c 'echo second-client-id > /sys/fs/nfs/net/nfs_client/identifier'
mkdir -p $M2
guarded "$PNFS_MOUNT_DEADLINE_S" "client 2 mount" nsenter --net=/run/netns/c2 mount -t nfs -o vers=4.1,port=$PORT,noac 10.77.0.1:/ $M2
step "byte-range locks across the two clients"
# The holder locks through client 2's mount; the refused F_SETLK, F_GETLK and the blocked
# F_SETLKW waiters go through client 1's.
guarded "$LOCK_TEST_DEADLINE_S" "lock test across two client ids" python3 "$PNFS_MDS_GUEST_DIR/locks.py" $M/locked $M2/locked nsenter --net=/run/netns/c2
assert_gt "$(nfs_op_count LOCK $M)" 0 "client 1 LOCK calls"
assert_gt "$(nfs_op_count LOCK $M2)" 0 "client 2 LOCK calls"
step "client 1 holds a RW layout"
head -c 1048576 /dev/urandom >/run/A
head -c 1048576 /dev/urandom >/run/B
head -c 1048576 /dev/urandom >/run/C
# Create the file under the deadline before the shell opens it.
op "client 1 creates f" touch $M/f
exec 7<>$M/f
op "client 1 writes A" dd if=/run/A of=$M/f bs=1M conv=notrunc,fsync status=none
assert_gt "$(nfs_op_count LAYOUTGET $M)" 0 "client 1 LAYOUTGET"
step "client 2 overwrites the range client 1 holds"
op "client 2 writes B" nsenter --net=/run/netns/c2 dd if=/run/B of=$M2/f bs=1M conv=notrunc,fsync status=none
stats=$(mds_admin stats)
echo "after client 2 write: $stats"
n1=$(echo "$stats" | sed -n 's/.*recalls_sent=\([0-9]*\).*/\1/p')
assert_gt "$n1" 0 "CB_LAYOUTRECALLs sent"
step "client 1 sees client 2's data and writes again"
drop_caches
op "client 1 reads B" cmp /run/B $M/f
op "client 1 writes C" dd if=/run/C of=$M/f bs=1M seek=1 conv=notrunc,fsync status=none
step "client 2 sees everything"
drop_caches
op "client 2 reads f" nsenter --net=/run/netns/c2 cat $M2/f >/run/got
cmp <(cat /run/B /run/C) /run/got
step "admin recall of a held layout"
op "client 1 writes A at 2 MiB" dd if=/run/A of=$M/f bs=1M seek=2 conv=notrunc,fsync status=none
assert_eq "ok 1" "$(mds_admin layouts /f)" "client 1 holds a layout on /f"
returns_before=$(nfs_op_count LAYOUTRETURN $M)
answer=$(mds_admin recall /f)
echo "admin recall: $answer"
assert_eq "ok 1" "$answer" "admin recall of client 1's layout"
# The holder gives the layout up: a LAYOUTRETURN, or (Linux, when no I/O holds the layout) it
# forgets the layout and answers the recall NFS4ERR_NOMATCHING_LAYOUT (RFC 8881 20.3.4), which
# counts as returned. Either way before the recall timeout (20 s), so nothing is revoked.
layout_gone() { [ "$(mds_admin layouts /f)" = "ok 0" ]; }
wait_for 18 layout_gone
echo "LAYOUTRETURNs from client 1 since the admin recall: $(( $(nfs_op_count LAYOUTRETURN $M) - returns_before ))"
grep "CB_LAYOUTRECALL" $MDS_DIR/mds.log || true
exec 7>&-
drop_caches
op "client 2 reads f again" nsenter --net=/run/netns/c2 cat $M2/f >/run/got
cmp <(cat /run/B /run/C /run/A) /run/got
step "client 2 holds a read delegation; client 1's write recalls it"
# Nobody has f open for writing now, and client 2 has a back channel: its read-only open got
# a read delegation (client 1's CLOSE of fd 7 may still be on its way: wait for it).
deleg_held() { [ "$(mds_admin delegations /f)" = "ok 1" ] || { op "client 2 reads f" nsenter --net=/run/netns/c2 cat $M2/f >/dev/null; false; }; }
wait_for 30 deleg_held
op "client 1 writes C at 3 MiB" dd if=/run/C of=$M/f bs=1M seek=3 conv=notrunc,fsync status=none
assert_eq "ok 0" "$(mds_admin delegations /f)" "client 2 returned its delegation"
stats=$(mds_admin stats)
assert_gt "$(echo "$stats" | sed -n 's/.*delegation_recalls=\([0-9]*\).*/\1/p')" 0 "CB_RECALLs sent"
# Client 2 dropped what it cached under the delegation.
op "client 2 reads f after the recall" nsenter --net=/run/netns/c2 cat $M2/f >/run/got
cmp <(cat /run/B /run/C /run/A /run/C) /run/got
stats=$(mds_admin stats)
echo "final: $stats"
echo "$stats" | tr ' ' '\n' >$OUT/stats
assert_eq "0" "$(echo "$stats" | sed -n 's/.*revoked=\([0-9]*\).*/\1/p')" "layouts revoked after a recall timeout"
nfs_mountstats $M | grep -E "^\s+(READ|WRITE|LAYOUTGET|LAYOUTCOMMIT|LAYOUTRETURN):"
nfs_mountstats $M2 | grep -E "^\s+(READ|WRITE|LAYOUTGET|LAYOUTCOMMIT|LAYOUTRETURN):"
umount_kernel_client $M
umount_kernel_client $M2
echo ALL-OK
