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
#[test]
fn kernel_client_slice_files_and_restart_4k() {
    let out = run("mds-slice-4k", "slice_and_files.sh", &[("MDS_BS", "4096")]);
    assert!(out.stdout.contains("ALL-OK"));
    assert!(stat(&out, "stats_write", "LAYOUTGET") > 0);
    assert!(stat(&out, "stats_write", "LAYOUTCOMMIT") > 0);
    assert_eq!(stat(&out, "stats_write", "READ"), 0);
    assert_eq!(stat(&out, "stats_write", "WRITE"), 0);
}

/// Two client ids writing the same file in turn: CB_LAYOUTRECALL reaches the holder.
#[test]
#[ignore = "not yet: the two-client conflict recall passes (recalls_sent=1, both see each other's \
            data), but after the admin-socket recall no LAYOUTRETURN from the holder was seen \
            within 30 s"]
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

/// The exerciser's seed: `PNFS_EX_SEED` when set (to replay a failure), else a fresh one.
/// Printed either way, so a failing run names the seed that replays it.
fn exerciser_seed() -> String {
    let seed = match std::env::var("PNFS_EX_SEED") {
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .expect("PNFS_EX_SEED must be a number"),
        Err(_) => rand::random::<u64>() >> 16,
    };
    println!("exerciser seed {seed} (replay with PNFS_EX_SEED={seed})");
    seed.to_string()
}

fn exerciser(name: &str, bs: &str, mode: &str, server: &str, seed: &str) {
    let out = run(
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
        assert_eq!(
            stat(&out, "stats", "READ"),
            0,
            "READ RPCs (bs {bs}, seed {seed})"
        );
        assert_eq!(
            stat(&out, "stats", "WRITE"),
            0,
            "WRITE RPCs (bs {bs}, seed {seed})"
        );
        assert!(stat(&out, "stats", "LAYOUTCOMMIT") > 0);
    }
}

/// The seeded random exerciser (10,000 write/truncate/read ops checked against a model) at
/// 4 KiB and 64 KiB block sizes, fsync'ing every write that moves EOF: that keeps the Linux
/// client's i_size race (see `exerciser_strict_4k`) out, and nothing the server does.
#[test]
fn exerciser_4k_and_64k() {
    let seed = exerciser_seed();
    for bs in ["4096", "65536"] {
        exerciser("mds-exerciser", bs, "sync-extend", "mds", &seed);
    }
}

/// The exerciser with extending writes left to background writeback.
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
        &exerciser_seed(),
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
        &exerciser_seed(),
    );
}
