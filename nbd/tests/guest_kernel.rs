//! The Linux kernel NBD client (nbd-client → /dev/nbd0) against this server, in the QEMU
//! guest: mkfs.ext4, mount, copy a directory tree in, umount, `fsck.ext4 -fn` clean, remount
//! and compare the tree. The server is this test binary itself, started in the guest with
//! `--ignored --exact serve_memdisk_for_guest` (the host's filesystem is the guest's root),
//! serving a 128 MiB in-memory disk.

mod common;

use std::sync::Arc;
use std::time::Duration;

use pnfs_nbd::testing::MemDisk;
use pnfs_nbd::{serve, Export, ExportSet};
use pnfs_testbed::{require, GuestRunner, GuestScript};

/// Size of the disk the guest formats.
const GUEST_DISK_BYTES: u64 = 128 * 1024 * 1024;
/// Port the server listens on inside the guest.
const GUEST_PORT: u16 = 10809;

const SCRIPT: &str = r#"
# Deadlines (guarded / wait_exit in lib.sh; seconds, several times the TCG durations): a hang
# fails its step with the guest's state in $OUT/hang-N.txt.
SERVER_START_DEADLINE_S=120   # the test binary starting its server
FS_DEADLINE_S=300             # copying the tree in / diff -r of it (128 MiB disk)
SERVER_EXIT_DEADLINE_S=60     # the server's exit after SIGTERM
step "start the NBD server (this test binary) in the guest"
NBD_GUEST_PORT=$PORT "$SERVER_BIN" serve_memdisk_for_guest --ignored --exact --nocapture \
    > /run/nbd-server.log 2>&1 &
NBD_SERVER=$!
wait_for $SERVER_START_DEADLINE_S nbdinfo --size "nbd://127.0.0.1:$PORT/guest"

step "nbd-client attaches the export"
nbd_attach 127.0.0.1 "$PORT" guest
assert_eq "$DISK_BYTES" "$(blockdev --getsize64 "$PNFS_NBD_DEV")" "device size"

step "mkfs.ext4, mount, copy a tree in"
guarded $PNFS_MKFS_DEADLINE_S "mkfs.ext4 $PNFS_NBD_DEV" mkfs.ext4 -q -F "$PNFS_NBD_DEV"
mkdir -p /mnt/nbd
guarded $PNFS_MOUNT_DEADLINE_S "mount ext4" mount "$PNFS_NBD_DEV" /mnt/nbd
mkdir -p /run/tree
cp -a /usr/include/linux /run/tree/
head -c 8M /dev/urandom > /run/tree/random.bin
guarded $FS_DEADLINE_S "cp -a the tree into ext4" cp -a /run/tree /mnt/nbd/tree
guarded $PNFS_SYNC_DEADLINE_S sync sync
guarded $PNFS_MOUNT_DEADLINE_S "umount ext4" umount /mnt/nbd

step "fsck.ext4 -fn is clean"
guarded $PNFS_MKFS_DEADLINE_S "fsck.ext4 -fn" fsck.ext4 -fn "$PNFS_NBD_DEV"

step "remount and compare the tree"
drop_caches
guarded $PNFS_MOUNT_DEADLINE_S "mount ext4 ro" mount -o ro "$PNFS_NBD_DEV" /mnt/nbd
guarded $FS_DEADLINE_S "diff -r of the tree" diff -r /run/tree /mnt/nbd/tree
guarded $PNFS_MOUNT_DEADLINE_S "umount ext4" umount /mnt/nbd
nbd_detach
kill "$NBD_SERVER"
wait_exit $SERVER_EXIT_DEADLINE_S "$NBD_SERVER" "the NBD server after SIGTERM"
cp /run/nbd-server.log $OUT/server.log
assert_eq 0 "$EXIT_STATUS" "the NBD server's exit status after SIGTERM"
"#;

#[test]
fn kernel_nbd_client_ext4_round_trip() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let server_bin = std::env::current_exe().expect("test binary path");
    let outcome = runner
        .run(
            &GuestScript::new(SCRIPT)
                .name("nbd-kernel-client")
                .env("SERVER_BIN", server_bin.to_str().expect("utf-8 path"))
                .env("PORT", GUEST_PORT.to_string())
                .env("DISK_BYTES", GUEST_DISK_BYTES.to_string())
                .timeout(Duration::from_secs(900)),
        )
        .expect("kernel nbd client checks in the guest");
    for s in &outcome.steps {
        println!("step {:?}: {:.1}s", s.name, s.duration.as_secs_f64());
    }
    let log = std::fs::read_to_string(outcome.out_file("server.log")).unwrap_or_default();
    assert!(
        log.contains("server stopped cleanly") && !log.contains("panicked"),
        "the server did not stop cleanly on SIGTERM in the guest:\n{log}"
    );
}

/// Not a test: the NBD server the guest test starts (does nothing without NBD_GUEST_PORT).
/// Serves a fresh in-memory disk as export `guest` until SIGTERM.
#[test]
#[ignore = "helper: started inside the guest by kernel_nbd_client_ext4_round_trip"]
fn serve_memdisk_for_guest() {
    let Some(port) = std::env::var("NBD_GUEST_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let mut set = ExportSet::new();
        set.add(Export::new(
            "guest",
            Arc::new(MemDisk::new(GUEST_DISK_BYTES)),
        ))
        .expect("export");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        serve(listener, Arc::new(set), async move {
            term.recv().await;
        })
        .await
        .expect("serve");
        println!("server stopped cleanly");
    });
}
