//! `pnfsgw` in the QEMU guest (the host kernel has no ublk or nbd driver): `pnfsgw mds` plus
//! `pnfsgw export --ublk`, the same file through /dev/ublkbN and /dev/nbd0, clean SIGTERM.

use std::time::Duration;

use pnfs_testbed::{require, GuestRunner, GuestScript};

const BIN: &str = env!("CARGO_BIN_EXE_pnfsgw");

#[test]
fn export_with_ublk_and_nbd_in_the_guest() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let script = r#"
# Deadlines (guarded / wait_exit in lib.sh; seconds, several times the TCG durations): a hang
# fails its step with the guest's state in $OUT/hang-N.txt.
IO_DEADLINE_S=60     # 4 MiB direct through ublk or nbd
FS_DEADLINE_S=300    # copying the tree into ext4 / diff -r of it
EXIT_DEADLINE_S=60   # a pnfsgw process's exit after SIGTERM
step "modules"
require_module ublk_drv nbd
T=/run/t; mkdir -p $T; truncate -s 256M $T/vol.img
HANG_DUMP_EXTRA="timeout 10 $PNFSGW stats --control $T/c.sock; tail -n 40 $T/gw.log $T/mds.log"
step "pnfsgw mds"
$PNFSGW mds --listen 127.0.0.1:20490 --state $T/mds --volume $T/vol.img >$T/mds.log 2>&1 &
MDS=$!
wait_for 60 bash -c 'echo > /dev/tcp/127.0.0.1/20490'
step "pnfsgw export --ublk"
$PNFSGW export --mds 127.0.0.1:20490 --path /disk.img --nbd 127.0.0.1:10809 --create 64M \
  --ublk --volume $T/vol.img --control $T/c.sock >$T/gw.out 2>$T/gw.log &
GW=$!
wait_for 120 grep -q '^/dev/ublkb' $T/gw.out || { cat $T/gw.log; false; }
DEV=$(grep '^/dev/ublkb' $T/gw.out)
grep -q '^nbd://127.0.0.1:10809/disk.img$' $T/gw.out
step "ublk write and read back"
test -b $DEV
head -c 4194304 /dev/urandom > $T/a
guarded $IO_DEADLINE_S "dd to ublk" dd if=$T/a of=$DEV bs=1M oflag=direct conv=fsync status=none
guarded $IO_DEADLINE_S "dd from ublk" dd if=$DEV of=$T/b bs=1M count=4 iflag=direct status=none
cmp $T/a $T/b
step "the same data through nbd"
nbd_attach 127.0.0.1 10809 disk.img
guarded $IO_DEADLINE_S "dd from nbd" dd if=$PNFS_NBD_DEV of=$T/c bs=1M count=4 iflag=direct status=none
cmp $T/a $T/c
step "ext4 through nbd: mkfs, copy a tree, fsck, remount and compare"
guarded $PNFS_MKFS_DEADLINE_S "mkfs.ext4 on nbd" mkfs.ext4 -q -F $PNFS_NBD_DEV
mkdir -p /mnt/fs
guarded $PNFS_MOUNT_DEADLINE_S "mount ext4" mount $PNFS_NBD_DEV /mnt/fs
guarded $FS_DEADLINE_S "cp -a the tree into ext4" cp -a /usr/include/linux /mnt/fs/tree
guarded $PNFS_MOUNT_DEADLINE_S "umount ext4" umount /mnt/fs
guarded $PNFS_MKFS_DEADLINE_S "fsck.ext4 -fn" fsck.ext4 -fn $PNFS_NBD_DEV
nbd_detach
nbd_attach 127.0.0.1 10809 disk.img
guarded $PNFS_MOUNT_DEADLINE_S "mount ext4 ro" mount -o ro $PNFS_NBD_DEV /mnt/fs
guarded $FS_DEADLINE_S "diff -r of the tree" diff -r /usr/include/linux /mnt/fs/tree
guarded $PNFS_MOUNT_DEADLINE_S "umount ext4" umount /mnt/fs
nbd_detach
step "stats"
guarded $IO_DEADLINE_S "pnfsgw stats" $PNFSGW stats --control $T/c.sock | tee $T/stats
grep -q "ublk $DEV: up" $T/stats
step "SIGTERM"
kill -TERM $GW
wait_exit $EXIT_DEADLINE_S $GW "pnfsgw export after SIGTERM"
[ "$EXIT_STATUS" = 0 ] || { echo "pnfsgw exited $EXIT_STATUS"; cat $T/gw.log; false; }
test ! -e $DEV
grep -q 'stopped cleanly' $T/gw.log
kill -TERM $MDS
wait_exit $EXIT_DEADLINE_S $MDS "pnfsgw mds after SIGTERM"
assert_eq 0 "$EXIT_STATUS" "pnfsgw mds exit status after SIGTERM"
"#;
    let out = runner
        .run(
            &GuestScript::new(script)
                .name("pnfsgw export --ublk")
                .env("PNFSGW", BIN)
                .timeout(Duration::from_secs(400)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.exit_code, 0);
}

/// Issue 16 against Linux nfsd: two `pnfsgw export`s of one file (defaults: their own control
/// sockets and client owners) on nfsd's pNFS block export; what one wrote and flushed, the
/// other reads back exactly (self-describing blocks, cli/tests/blocks.py), both ways, with
/// interleaved writers on disjoint ranges and on one range, and the end state through a
/// third gateway that reads only through nfsd (READ). nfsd's layouts are exclusive per file,
/// so every switch of writer is a CB_LAYOUTRECALL.
#[test]
fn two_exports_on_nfsd_read_what_the_other_flushed() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let blocks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/blocks.py");
    let script = r#"
M=1048576
step "nfsd pNFS block export"
start_nfsd_pnfs 400
truncate -s 32M "$PNFS_EXPORT/vm"
T=/run/t; mkdir -p $T
# start_gw NAME PORT [ARGS...]: an export of /vm with its defaults; waits for its URI.
start_gw() {
	local name=$1 port=$2; shift 2
	RUST_LOG=info "$PNFSGW" export --mds 127.0.0.1:2049 --path /vm --nbd 127.0.0.1:$port \
		--volume "$PNFS_VOL_DEV" "$@" >$T/$name.out 2>$T/$name.log &
	echo $! > $T/$name.pid
	wait_for 120 grep -q "^nbd://127.0.0.1:$port/vm$" $T/$name.out || { cat $T/$name.log; false; }
}
blocks() { guarded 300 "blocks.py $*" /usr/bin/python3 "$BLOCKS" "$@"; }
w() { echo "w:$(($1 * M)):$(($2 * M)):$3"; }
v() { echo "v:$(($1 * M)):$(($2 * M)):$3"; }
counter() { "$PNFSGW" stats --control /run/pnfsgw/export-vm-$1.sock | awk -v k="pnfs.$2" '$1 == k { print $2 }'; }
step "two gateways on one file"
start_gw a 10809
start_gw b 10810
A=nbd://127.0.0.1:10809/vm B=nbd://127.0.0.1:10810/vm
oa=$(grep -o 'client owner .*' $T/a.log); ob=$(grep -o 'client owner .*' $T/b.log)
echo "A: $oa"; echo "B: $ob"
[ "$oa" != "$ob" ] || fail "both gateways present one client owner"
step "A writes, B reads; B writes, A reads"
blocks $A $(w 0 4 1)
blocks $B $(v 0 4 1)
blocks $B $(w 1 2 2)
blocks $A $(v 0 1 1) $(v 1 2 2) $(v 3 1 1)
step "interleaved writers on disjoint ranges"
for i in 0 1 2; do
	blocks $A $(w $((8 + 2 * i)) 1 $((10 + i)))
	blocks $B $(w $((9 + 2 * i)) 1 $((20 + i)))
done
DISJOINT="$(for i in 0 1 2; do v $((8 + 2 * i)) 1 $((10 + i)); v $((9 + 2 * i)) 1 $((20 + i)); done)"
blocks $A $DISJOINT
blocks $B $DISJOINT
step "both writers on one range"
blocks $A $(w 16 2 30)
blocks $B $(w 16 1 31)
blocks $A $(w 17 1 32)
blocks $B $(v 16 1 31) $(v 17 1 32)
blocks $A $(v 16 1 31) $(v 17 1 32)
step "counters: recalls and commits on both, no errors"
for g in a:10809 b:10810; do
	n=${g%%:*} p=${g##*:}
	echo "gateway $n: recalls=$(counter $p recalls) commits=$(counter $p commits) mds_write_bytes=$(counter $p mds_write_bytes) request_errors=$(counter $p request_errors)"
	assert_gt "$(counter $p recalls)" 0 "gateway $n: recalls"
	assert_gt "$(counter $p commits)" 0 "gateway $n: LAYOUTCOMMITs"
	assert_eq 0 "$(counter $p request_errors)" "gateway $n: request errors"
done
step "both stop cleanly"
for n in a b; do
	kill -TERM $(cat $T/$n.pid)
	wait_exit 120 $(cat $T/$n.pid) "gateway $n"
	assert_eq 0 "$EXIT_STATUS" "gateway $n: exit status after SIGTERM"
	grep -q 'stopped cleanly' $T/$n.log || { cat $T/$n.log; fail "gateway $n did not stop cleanly"; }
done
step "the end state through nfsd READ"
start_gw c 10811 --data-path mds --read-only
blocks nbd://127.0.0.1:10811/vm $(v 0 1 1) $(v 1 2 2) $(v 3 1 1) $DISJOINT $(v 16 1 31) $(v 17 1 32)
kill -TERM $(cat $T/c.pid)
wait_exit 120 $(cat $T/c.pid) "gateway c"
assert_eq 0 "$EXIT_STATUS" "gateway c: exit status after SIGTERM"
"#;
    let out = runner
        .run(
            &GuestScript::new(script)
                .name("two gateways on nfsd")
                .env("PNFSGW", BIN)
                .env("BLOCKS", blocks)
                .timeout(Duration::from_secs(600)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.exit_code, 0);
}
