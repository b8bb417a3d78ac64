//! The pNFS disk against Linux nfsd (XFS, `pnfs` export) in the QEMU guest.
//!
//! The host test boots the guest; the guest script starts nfsd, creates the file, runs THIS
//! test binary's `guest_side_workload` (ignored on the host: it only makes sense in the guest,
//! where it reaches nfsd on 127.0.0.1 and the XFS volume through its loop device), then mounts
//! the export with the kernel client and copies the file out. The host compares that copy with
//! the workload's model and checks that nfsd handed out layouts and served no data READ/WRITE.

mod common;

use std::sync::Arc;
use std::time::Duration;

use pnfs_gateway::pnfs::testing::workload::run_workload;
use pnfs_gateway::pnfs::volume::{FileVolume, VolumeIo};
use pnfs_gateway::pnfs::PnfsConfig;
use pnfs_testbed::{require, GuestRunner, GuestScript};

use common::nfsd_guest::{
    assert_layouts_only, counter, guest_gateway, guest_save, guest_workload_config,
    guest_workload_lines, kernel_copy_lines, FILE_MIB,
};
use common::{assert_kernel_copy_is_model, guest_env, nfsd_ops};

/// Seed of the plain workload run.
const SEED: u64 = 0x6e_f5d0;
/// Guest deadline of the background reader's end once it is told to stop (one `cat` of the
/// file and a 0.2 s pause).
const READER_STOP_DEADLINE_S: u64 = 120;
/// Guest timeout of the plain workload run.
const WORKLOAD_GUEST_TIMEOUT: Duration = Duration::from_secs(900);
/// Guest timeout of the recall run.
const RECALL_GUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// The guest side: the seeded workload on nfsd through the gateway, model and stats written
/// to $OUT (`PNFS_GUEST_SEED` and `PNFS_GUEST_TAG` pick the run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside the QEMU guest, started by workload_against_linux_nfsd_in_guest"]
async fn guest_side_workload() {
    let vol: Arc<dyn VolumeIo> = Arc::new(
        FileVolume::open(guest_env("PNFS_GUEST_VOLUME"), false, true).expect("open volume"),
    );
    let gw = guest_gateway("pnfs-gateway-guest-test", vol, PnfsConfig::default()).await;
    let disk = gw
        .open_disk(&guest_env("PNFS_GUEST_PATH"), false)
        .await
        .expect("open disk");
    let seed = std::env::var("PNFS_GUEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SEED);
    let tag = std::env::var("PNFS_GUEST_TAG").unwrap_or_default();
    let (rep, model) = run_workload(&disk, &guest_workload_config(seed))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    disk.close().await.expect("close");
    let snap = gw.stats().snapshot();
    guest_save(
        &tag,
        &model,
        &format!("stats{tag}.txt"),
        &format!("{rep:?}\n{snap}\n"),
    );
    assert_eq!(snap.request_errors, 0);
}

#[test]
fn workload_against_linux_nfsd_in_guest() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let script = format!(
        r#"
step "nfsd pnfs export"
start_nfsd_pnfs 400
truncate -s {FILE_MIB}M "$PNFS_EXPORT/disk.img"
step "gateway workload"
{workload}cat /proc/net/rpc/nfsd > "$OUT/nfsd_after_gateway"
step "kernel client reads the file"
{copy}"#,
        workload = guest_workload_lines(
            "the gateway's workload",
            "guest_side_workload",
            r#"PNFS_GUEST_VOLUME="$PNFS_VOL_DEV""#,
            "warn"
        ),
        copy = kernel_copy_lines("kernel.img"),
    );
    let outcome = runner
        .run(
            &GuestScript::new(script)
                .name("pnfs-nfsd")
                .timeout(WORKLOAD_GUEST_TIMEOUT),
        )
        .expect("guest run");
    let stats = std::fs::read_to_string(outcome.out_file("stats.txt")).expect("stats");
    eprintln!("{stats}");
    assert_layouts_only(
        &outcome,
        "",
        "kernel.img",
        "nfsd_after_gateway",
        &stats,
        &format!("seed={SEED:#x}"),
    );
}

/// Issue 4's recall acceptance on Linux nfsd: while the gateway runs the seeded workload on
/// the file, the kernel client in the same guest reads that file over and over (pNFS block
/// layout, READ iomode). nfsd's block layouts are exclusive per file, so every kernel
/// LAYOUTGET recalls the gateway's layout and the gateway's next LAYOUTGET recalls the kernel
/// client's. The workload checks every read against its model; afterwards a fresh kernel
/// mount's copy of the file must equal the model.
///
/// nfsd runs with only 4 threads on purpose (`start_nfsd_pnfs`): the stall this test used to
/// show (minutes, "server localhost not responding") came from the gateway, and a small
/// thread pool is what exposes it. Diagnosed with nfsd/filelock tracepoints:
/// - the gateway's LAYOUTGET retry loop slept (up to ~3 s per recall) while holding the lock
///   its own LAYOUTRETURN needed, while nfsd answered that LAYOUTGET RECALLCONFLICT because
///   it was recalling the gateway's layout;
/// - LAYOUTGET asked for `loga_minlength` = the whole request: nfsd 6.12 returns one extent
///   and answers LAYOUTUNAVAILABLE when it is shorter, so the gateway went MDS-only for 30 s;
/// - every MDS WRITE then blocked an nfsd thread in `break_layout` (nfsd 6.12 waits without a
///   timeout until all layouts on the file are returned); four concurrent ones held all four
///   threads, so no LAYOUTRETURN or callback reply could be served.
#[test]
fn recall_by_kernel_client_reads_in_guest() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let script = format!(
        r#"
step "nfsd pnfs export (4 threads)"
start_nfsd_pnfs 400
truncate -s {FILE_MIB}M "$PNFS_EXPORT/disk.img"
mount_kernel_client
step "kernel client reads while the gateway writes (nfsd recalls the gateway's layout)"
: > "$OUT/reader.log"
# Bounded (200 reads); stopped through a flag file so no `cat` is left holding the mount.
( set +e
  for i in $(seq 200); do
    [ -e /run/stop-reader ] && break
    if cat "$PNFS_CLIENT_MNT/disk.img" >/dev/null; then echo ok >> "$OUT/reader.log"; else echo "FAIL $?" >> "$OUT/reader.log"; fi
    sleep 0.2
  done ) &
READER=$!
{workload}touch /run/stop-reader
wait_exit {READER_STOP_DEADLINE_S} $READER "the kernel client's reader loop"
nfs_op_count LAYOUTGET > "$OUT/kernel_layoutgets"
cat /proc/net/rpc/nfsd > "$OUT/nfsd_after_recall"
step "fresh kernel mount copies the file"
umount_kernel_client
{copy}"#,
        workload = guest_workload_lines(
            "the gateway's workload under recalls",
            "guest_side_workload",
            r#"PNFS_GUEST_VOLUME="$PNFS_VOL_DEV" PNFS_GUEST_SEED=7340033 PNFS_GUEST_TAG=-recall"#,
            "warn"
        ),
        copy = kernel_copy_lines("kernel-recall.img"),
    );
    let outcome = runner
        .run(
            &GuestScript::new(script)
                .name("pnfs-nfsd-recall")
                .timeout(RECALL_GUEST_TIMEOUT),
        )
        .expect("guest run");
    for s in &outcome.steps {
        eprintln!("step {:?}: {:.1}s", s.name, s.duration.as_secs_f64());
    }
    // The workload checked every read against its model (a mismatch fails the guest run).
    let stats = std::fs::read_to_string(outcome.out_file("stats-recall.txt"))
        .expect("stats of the recall run");
    eprintln!("{stats}");
    assert!(
        counter(&stats, "recalls") > 0,
        "nfsd never recalled the gateway's layout: {stats}"
    );
    assert_eq!(counter(&stats, "request_errors"), 0, "{stats}");
    let reader = std::fs::read_to_string(outcome.out_file("reader.log")).expect("reader log");
    let (ok, failed) = reader.lines().fold(
        (0, 0),
        |(o, f), l| {
            if l == "ok" {
                (o + 1, f)
            } else {
                (o, f + 1)
            }
        },
    );
    let kernel_layoutgets =
        std::fs::read_to_string(outcome.out_file("kernel_layoutgets")).expect("kernel LAYOUTGETs");
    eprintln!(
        "kernel reader: {ok} whole-file reads, {failed} failed, {} LAYOUTGETs",
        kernel_layoutgets.trim()
    );
    assert_eq!(failed, 0, "the kernel reader saw errors: {reader}");
    assert!(ok > 0, "the kernel reader never finished a read");
    nfsd_ops(&outcome, "nfsd_after_recall");
    assert_kernel_copy_is_model(
        &outcome,
        "model-recall.bin",
        "kernel-recall.img",
        "seed=7340033",
    );
}
