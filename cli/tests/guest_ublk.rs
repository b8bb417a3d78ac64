//! Issue 6 acceptance on the real stack: `pnfsgw export --ublk` on a 1 GiB file of a real MDS,
//! in the QEMU guest (the host kernel has no ublk driver), one boot per MDS kind:
//! Linux nfsd's pNFS block export (XFS) and the embedded MDS (`pnfsgw mds`).
//!
//! Each boot runs `tests/guest/ublk_acceptance.sh` (its header says what each step checks):
//! ext4 round trip with fsck + diff, mkfs.xfs + xfs_repair, fio randwrite with crc32c verify
//! (QD16, 2 jobs), blkdiscard / punch-hole / zero-range reading back zeros, SIGTERM (exit 0,
//! device gone, no layout left on the MDS) and durability (seeded data, sync, SIGKILL, read
//! back through a kernel NFS mount). A failure names the step.
//!
//! Every blocking command in the script has a deadline: a hang fails its step within minutes
//! with the guest's state in `hang-N.txt` (kept in the run directory). The kernel NFS client's
//! lost blkmapd wakeup (a Linux race that used to hang the durability read) is rescued and
//! reported as a WARNING line (tests/guest/lib.sh, `_pnfs_blkmapd_rescue`).

use std::path::PathBuf;
use std::time::Duration;

use pnfs_testbed::{require, GuestRunner, GuestScript};

const BIN: &str = env!("CARGO_BIN_EXE_pnfsgw");

/// Every check the script records in steps.txt when it passes, in order.
const CHECKS: [&str; 7] = [
    "device",
    "ext4",
    "xfs",
    "fio",
    "discard",
    "sigterm",
    "durability",
];

fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/guest/ublk_acceptance.sh")
}

/// The seed of the durability data: `UBLK_ACCEPTANCE_SEED`, else a fixed one (logged).
fn seed() -> u64 {
    std::env::var("UBLK_ACCEPTANCE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0b1c_5eed)
}

/// Most rounds of the SIGTERM / restart / SIGKILL steps one boot may run.
const ROUNDS_MAX: u32 = 50;

/// How many times the SIGTERM and durability steps run in the boot (each round after the
/// first with fresh gateways): `UBLK_ACCEPTANCE_ROUNDS` (1 to 50), else 1. For hunting
/// lifecycle races; every round costs about 30 s of guest time.
fn rounds() -> u32 {
    match std::env::var("UBLK_ACCEPTANCE_ROUNDS") {
        Err(_) => 1,
        Ok(v) => match v.parse::<u32>() {
            Ok(n) if (1..=ROUNDS_MAX).contains(&n) => n,
            _ => panic!("UBLK_ACCEPTANCE_ROUNDS={v:?}: expected 1 to {ROUNDS_MAX}"),
        },
    }
}

fn acceptance(mds_kind: &str) {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let seed = seed();
    let rounds = rounds();
    println!(
        "{mds_kind}: durability seed {seed} (set UBLK_ACCEPTANCE_SEED to change it), \
         {rounds} round(s) of SIGTERM / restart / SIGKILL (UBLK_ACCEPTANCE_ROUNDS)"
    );
    let outcome = runner
        .run(
            &GuestScript::new(format!("source {}", script_path().display()))
                .name(format!("ublk-{mds_kind}"))
                .env("PNFSGW", BIN)
                .env("MDS_KIND", mds_kind)
                .env("SEED", seed.to_string())
                .env("ROUNDS", rounds.to_string())
                .memory_mib(1536)
                .timeout(Duration::from_secs(900 + 60 * u64::from(rounds - 1))),
        )
        .unwrap_or_else(|e| panic!("ublk acceptance on {mds_kind} (seed {seed}): {e}"));
    for s in &outcome.steps {
        println!("step {:?}: {:.1}s", s.name, s.duration.as_secs_f64());
    }
    // The kernel client's lost-wakeup workaround (tests/guest/lib.sh, _pnfs_blkmapd_rescue):
    // a kernel race, not a gateway fault, but worth seeing.
    if let Ok(r) = std::fs::read_to_string(outcome.out_file("blkmapd-rescues")) {
        println!(
            "{mds_kind}: WARNING: {} lost blkmapd wakeup(s) in the kernel NFS client rescued",
            r.lines().count()
        );
    }
    assert_eq!(outcome.exit_code, 0);
    let passed = std::fs::read_to_string(outcome.out_file("steps.txt")).unwrap_or_default();
    let passed: Vec<&str> = passed
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .collect();
    assert_eq!(passed, CHECKS, "checks passed on {mds_kind}");
    assert!(
        outcome.stdout.contains("ALL-OK"),
        "the script did not finish"
    );
}

#[test]
fn ublk_acceptance_on_linux_nfsd() {
    acceptance("nfsd");
}

#[test]
fn ublk_acceptance_on_embedded_mds() {
    acceptance("embedded");
}
