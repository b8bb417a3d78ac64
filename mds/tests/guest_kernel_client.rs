//! The Linux kernel client (in the QEMU guest) against the embedded MDS.
//!
//! Each test boots one guest and runs a script from `tests/guest/` with the `pnfs-mds` binary
//! built by cargo. Run with `cargo test -p pnfs-mds --test guest_kernel_client -- --nocapture`.

use std::path::PathBuf;
use std::time::Duration;

use pnfs_testbed::{require, GuestRunner, GuestScript};

fn guest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest")
}

fn run(name: &str, script: &str, env: &[(&str, &str)]) -> pnfs_testbed::GuestOutcome {
    let Some(runner) = require(GuestRunner::new()) else {
        panic!("no guest runner")
    };
    let mut s = GuestScript::new(format!("source {}/{script}", guest_dir().display()))
        .name(name)
        .timeout(Duration::from_secs(900))
        .source(guest_dir().join("mds_lib.sh"))
        .env("PNFS_MDS_BIN", env!("CARGO_BIN_EXE_pnfs-mds"))
        .env("PNFS_MDS_GUEST_DIR", guest_dir().display().to_string());
    for (k, v) in env {
        s = s.env(*k, *v);
    }
    // The MDS's log filter in the guest (default info), e.g. PNFS_MDS_RUST_LOG=pnfs_mds=debug.
    if let Ok(filter) = std::env::var("PNFS_MDS_RUST_LOG") {
        s = s.env("RUST_LOG", &filter);
    }
    runner.run(&s).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn stat(outcome: &pnfs_testbed::GuestOutcome, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(outcome.out_file(file)).expect("stats file");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// 32 MiB through block layouts (no READ/WRITE RPCs), file work, SIGKILL + restart.
/// `PNFS_SLICE_KILL_ROUNDS=N` repeats the SIGKILL-during-writes step N times in one boot.
#[test]
fn kernel_client_slice_files_and_restart_4k() {
    // PNFS_SLICE_KILL_ROUNDS=N repeats the kill-during-writes step N times in the boot.
    let rounds = std::env::var("PNFS_SLICE_KILL_ROUNDS").unwrap_or_else(|_| "1".to_owned());
    let out = run(
        "mds-slice-4k",
        "slice_and_files.sh",
        &[("MDS_BS", "4096"), ("KILL_ROUNDS", &rounds)],
    );
    assert!(out.stdout.contains("ALL-OK"));
    assert!(stat(&out, "stats_write", "LAYOUTGET") > 0);
    assert!(stat(&out, "stats_write", "LAYOUTCOMMIT") > 0);
    assert_eq!(stat(&out, "stats_write", "READ"), 0);
    assert_eq!(stat(&out, "stats_write", "WRITE"), 0);
}

/// Two client ids writing the same file in turn: CB_LAYOUTRECALL reaches the holder, which
/// gives the layout up before the recall timeout (nothing revoked). Linux 6.12 answers every
/// recall of an idle layout NFS4ERR_NOMATCHING_LAYOUT and forgets it (no LAYOUTRETURN is ever
/// sent), which RFC 8881 §20.3.4 lets the server treat as returned. About 45 s of guest time.
#[test]
fn two_clients_recall() {
    let out = run("mds-recall", "recall.sh", &[("MDS_BS", "4096")]);
    assert!(out.stdout.contains("ALL-OK"));
    let stats = std::fs::read_to_string(out.out_file("stats")).expect("stats");
    let sent: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("recalls_sent="))
        .and_then(|v| v.parse().ok())
        .expect("recalls_sent");
    assert!(sent > 0, "no CB_LAYOUTRECALL sent: {stats}");
}

/// The exerciser's seed: `PNFS_EX_SEED` when set (a number replays a failure, `random` picks
/// a fresh one), else `default`. Printed either way, so a failing run names the seed.
fn exerciser_seed(default: u64) -> String {
    let seed = match std::env::var("PNFS_EX_SEED") {
        Ok(s) if s.trim() == "random" => rand::random::<u64>() >> 16,
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .expect("PNFS_EX_SEED must be a number or `random`"),
        Err(_) => default,
    };
    println!("exerciser seed {seed} (replay with PNFS_EX_SEED={seed}; PNFS_EX_SEED=random for a new one)");
    seed.to_string()
}

/// Largest reply to a READ that returned no data (RPC + SEQUENCE + PUTFH + READ, eof, 0 bytes:
/// 104 bytes from the embedded MDS).
const EMPTY_READ_REPLY_MAX_BYTES: u64 = 128;

/// The suite's exerciser seed: green in three 10,000-op runs at both block sizes, as were
/// the fresh seeds 228708927977289 and 33145534975369.
const SUITE_EXERCISER_SEED: u64 = 145_087_636_339_994;
/// The seed on which the strict exerciser shows the Linux client's i_size race (op 1602).
const CLIENT_RACE_SEED: u64 = 2;

fn exerciser(name: &str, bs: &str, mode: &str, server: &str, seed: &str) {
    let mut out = run(
        &format!("{name}-{bs}"),
        "exerciser.sh",
        &[
            ("MDS_BS", bs),
            ("PNFS_EX_SEED", seed),
            ("EX_MODE", mode),
            ("EX_SERVER", server),
        ],
    );
    assert!(
        out.stdout.contains("exerciser OK"),
        "block size {bs}, seed {seed}, {mode}"
    );
    if server == "mds" {
        // No file data through the MDS: no WRITE at all, and READs only of nothing. Linux asks
        // for the READ layout of a page as `i_size - offset` bytes, so a page at or past EOF
        // (a truncate raced the read) gets a LAYOUTGET of length 0 (seen: 4108288+0) or one
        // wrapped past 2^64; the MDS answers INVAL as nfsd does, and the client reads the page
        // through the MDS and gets 0 bytes (a reply of 104 bytes).
        let (reads, writes) = (stat(&out, "stats", "READ"), stat(&out, "stats", "WRITE"));
        let read_reply_bytes = stat(&out, "stats", "READ_REPLY_BYTES");
        let commits = stat(&out, "stats", "LAYOUTCOMMIT");
        if read_reply_bytes > reads * EMPTY_READ_REPLY_MAX_BYTES || writes != 0 || commits == 0 {
            let kept = out.keep();
            panic!(
                "bs {bs}, seed {seed}: READ {reads} with {read_reply_bytes} reply bytes (no \
                 data may come through the MDS), WRITE {writes} (must be 0), LAYOUTCOMMIT \
                 {commits} (must be > 0); the guest's output (mds.log, ktrace) is kept in {}",
                kept.display()
            );
        }
        println!("bs {bs}: READ {reads} ({read_reply_bytes} reply bytes), WRITE 0, LAYOUTCOMMIT {commits}");
    }
}

/// The seeded random exerciser (10,000 write/truncate/read ops checked against a model) at
/// 4 KiB and 64 KiB block sizes, fsync'ing every write that moves EOF: that keeps the Linux
/// client's i_size race (see `exerciser_strict_4k`) out, and nothing the server does.
/// About 4 min of guest time for both sizes (5.5-8 min on a loaded machine).
#[test]
fn exerciser_4k_and_64k() {
    let seed = exerciser_seed(SUITE_EXERCISER_SEED);
    for bs in ["4096", "65536"] {
        exerciser("mds-exerciser", bs, "sync-extend", "mds", &seed);
    }
}

/// The exerciser with extending writes left to background writeback (seed 2 passed here once
/// on the MDS at 4 KiB: 10,000 ops in about 200 s of guest time; the race is timing dependent).
#[test]
#[ignore = "Linux 6.12 client race, reproduced with Linux nfsd + XFS too \
            (exerciser_strict_nfsd_reference): a LAYOUTCOMMIT reply's GETATTR size predating an \
            extending write that already reached the volume is applied by \
            nfs_post_op_update_inode_force_wcc (tracepoint nfs_size_wcc shrinks i_size, from a \
            kworker), and a read past the shrunk size returns 0 bytes"]
fn exerciser_strict_4k() {
    exerciser(
        "mds-exerciser-strict",
        "4096",
        "strict",
        "mds",
        &exerciser_seed(CLIENT_RACE_SEED),
    );
}

/// The same strict exerciser against Linux nfsd + XFS (pnfs export) as the reference server:
/// shows the client race above is not the MDS's (seed 2 fails at op 1602 with nfsd).
#[test]
#[ignore = "reference run against Linux nfsd: fails by the same Linux client race (seed 2)"]
fn exerciser_strict_nfsd_reference() {
    exerciser(
        "nfsd-exerciser-strict",
        "4096",
        "strict",
        "nfsd",
        &exerciser_seed(CLIENT_RACE_SEED),
    );
}
