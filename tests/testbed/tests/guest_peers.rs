//! Guest peer smoke test (one boot): ublk_drv and nbd load (and nbd-client works against
//! nbdkit); Linux nfsd exports XFS with `pnfs`;
//! the kernel client (vers=4.1, blkmapd) writes 8 MiB and reads it back through block layouts
//! only: LAYOUTGET > 0 and zero READ/WRITE RPCs in /proc/self/mountstats.

use std::time::Duration;

use pnfs_testbed::util::TempDir;
use pnfs_testbed::{require, GuestRunner, GuestScript};

/// Size of the data written through the kernel client.
const DATA_BYTES: usize = 8 * 1024 * 1024;

/// Deterministic pseudo-random bytes (a seeded `StdRng`), from a logged seed.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut out = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut out);
    out
}

/// The first count of `op` in the per-op statistics of a mountstats block.
fn op_count(mountstats: &str, op: &str) -> Option<u64> {
    let key = format!("{op}:");
    mountstats.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next() == Some(key.as_str()))
            .then(|| fields.next()?.parse().ok())
            .flatten()
    })
}

const SCRIPT: &str = r#"
# Deadlines (guarded in lib.sh; seconds, several times the TCG durations): a hang fails its
# step with the guest's state in $OUT/hang-N.txt.
IO_DEADLINE_S=120   # 1-8 MiB through nbd or pNFS
step "ublk_drv and nbd modules"
require_module ublk_drv
modprobe nbd nbds_max=4 || fail "kernel feature missing: nbd"
wait_for 10 test -c /dev/ublk-control
wait_for 10 test -b /dev/nbd0
ls -l /dev/ublk-control /dev/nbd0

step "nbd-client against nbdkit in the guest: ext4 round trip"
truncate -s 64M /run/nbd.img
nbdkit -f -i 127.0.0.1 -p 10809 -P /run/nbdkit.pid file /run/nbd.img &
wait_for 20 test -s /run/nbdkit.pid
nbd_attach 127.0.0.1 10809 disk
guarded $PNFS_MKFS_DEADLINE_S "mkfs.ext4 on nbd" mkfs.ext4 -q "$PNFS_NBD_DEV"
mkdir -p /mnt/nbd
guarded $PNFS_MOUNT_DEADLINE_S "mount ext4" mount "$PNFS_NBD_DEV" /mnt/nbd
guarded $IO_DEADLINE_S "write 1 MiB into ext4" sh -c 'head -c 1M "$DATA" > /mnt/nbd/part'
guarded $PNFS_MOUNT_DEADLINE_S "umount ext4" umount /mnt/nbd
guarded $PNFS_MKFS_DEADLINE_S "fsck.ext4 -fn" fsck.ext4 -fn "$PNFS_NBD_DEV"
nbd_detach
kill "$(cat /run/nbdkit.pid)"

step "nfsd pNFS export on XFS"
start_nfsd_pnfs 512
cat /proc/fs/nfsd/exports

step "kernel client mount (vers=4.1, blkmapd)"
mount_kernel_client /mnt/nfs

step "write 8 MiB through pNFS"
guarded $IO_DEADLINE_S "cp 8 MiB to the NFS mount" cp "$DATA" /mnt/nfs/data
guarded $PNFS_SYNC_DEADLINE_S sync sync
assert_eq LAYOUT_BLOCK_VOLUME "$(nfs_pnfs_type /mnt/nfs)" "pnfs layout type"
nfs_mountstats /mnt/nfs > $OUT/mountstats.write
umount_kernel_client /mnt/nfs

step "read back after remount"
drop_caches
mount_kernel_client /mnt/nfs
guarded $IO_DEADLINE_S "cmp of the data read back" cmp "$DATA" /mnt/nfs/data
guarded $IO_DEADLINE_S "sha256sum of the data read back" sha256sum /mnt/nfs/data | cut -d' ' -f1 > $OUT/readback.sha256
nfs_mountstats /mnt/nfs > $OUT/mountstats.read

step "layouts used, no READ/WRITE RPCs"
for f in write read; do
	s=$OUT/mountstats.$f
	assert_gt "$(awk '$1 == "LAYOUTGET:" {print $2}' $s)" 0 "LAYOUTGET after $f"
	assert_eq 0 "$(awk '$1 == "READ:" {print $2}' $s)" "READ RPCs after $f"
	assert_eq 0 "$(awk '$1 == "WRITE:" {print $2}' $s)" "WRITE RPCs after $f"
done
umount_kernel_client /mnt/nfs
nfsstat -s -4 2>/dev/null | head -20 || true
"#;

#[test]
fn nfsd_pnfs_block_layout_and_block_modules() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let seed: u64 = std::env::var("PNFS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0001);
    println!("data seed {seed:#x} (set PNFS_TEST_SEED to change)");
    let data = pseudo_random(seed, DATA_BYTES);
    // The host's /tmp is visible in the guest (through its root overlay) at the same path.
    let dir = TempDir::new("guest-peers").unwrap();
    let data_path = dir.path().join("data.bin");
    std::fs::write(&data_path, &data).unwrap();

    let outcome = runner
        .run(
            &GuestScript::new(SCRIPT)
                .name("nfsd-pnfs")
                .env("DATA", data_path.to_str().unwrap())
                .timeout(Duration::from_secs(900)),
        )
        .expect("guest peer checks");

    println!(
        "lock wait {:.1}s, boot {:.1}s, qemu total {:.1}s",
        outcome.lock_wait.as_secs_f64(),
        outcome.boot_time.as_secs_f64(),
        outcome.elapsed.as_secs_f64()
    );
    for s in &outcome.steps {
        println!("step {:?}: {:.1}s", s.name, s.duration.as_secs_f64());
    }
    // Checked again on the host, from the files the guest gave back.
    let expected = sha256_hex(&data_path);
    let got = std::fs::read_to_string(outcome.out_file("readback.sha256")).unwrap();
    assert_eq!(got.trim(), expected, "data read back through pNFS differs");
    for phase in ["write", "read"] {
        let stats =
            std::fs::read_to_string(outcome.out_file(&format!("mountstats.{phase}"))).unwrap();
        assert!(
            stats.contains("pnfs=LAYOUT_BLOCK_VOLUME"),
            "{phase}: {stats}"
        );
        let layoutget = op_count(&stats, "LAYOUTGET").expect("LAYOUTGET line");
        assert!(layoutget > 0, "{phase}: no LAYOUTGET\n{stats}");
        assert_eq!(
            op_count(&stats, "READ"),
            Some(0),
            "{phase}: READ RPCs\n{stats}"
        );
        assert_eq!(
            op_count(&stats, "WRITE"),
            Some(0),
            "{phase}: WRITE RPCs\n{stats}"
        );
    }
}

/// sha256 of a host file, through the host's sha256sum (coreutils).
fn sha256_hex(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn mountstats_parser_reads_first_count() {
    let stats = "device x mounted on /mnt/nfs with fstype nfs4\n\
                 \tper-op statistics\n\
                 \t        READ: 0 0 0 0 0 0 0 0 0\n\
                 \t   LAYOUTGET: 3 3 0 1 2 3 4 5 0\n";
    assert_eq!(op_count(stats, "LAYOUTGET"), Some(3));
    assert_eq!(op_count(stats, "READ"), Some(0));
    assert_eq!(op_count(stats, "WRITE"), None);
    assert_eq!(pseudo_random(1, 16), pseudo_random(1, 16));
    assert_ne!(pseudo_random(1, 16), pseudo_random(2, 16));
}
