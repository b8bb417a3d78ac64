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

/// The seeded random exerciser at 4 KiB and 64 KiB block sizes.
#[test]
#[ignore = "not yet: the Linux 6.12 client shrinks its i_size to the size in a LAYOUTCOMMIT reply \
            (nfs_size_wcc tracepoint, force-WCC path) when a write past EOF completed after that \
            LAYOUTCOMMIT was built; a later read inside the file then returns 0 bytes (seed 1 fails \
            at a varying op: 469, 1083, 2936). No MDS-side fix found yet"]
fn exerciser_4k_and_64k() {
    for bs in ["4096", "65536"] {
        let out = run(
            &format!("mds-exerciser-{bs}"),
            "exerciser.sh",
            &[("MDS_BS", bs), ("EX_SEED", "1")],
        );
        assert!(out.stdout.contains("exerciser OK"), "block size {bs}");
    }
}
