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
