//! Issue 15 item 2: ublk devices that survive a gateway restart, in the QEMU guest (the host
//! kernel has no ublk driver): `pnfsgw export --ublk --ublk-recovery` under ext4 and a
//! write workload with fsync, the gateway SIGKILLed and restarted several times and once
//! restarted with SIGTERM; the workload finishes without an I/O error, fsck is clean, and
//! every record whose fsync returned is read back through a new gateway process (the crash
//! verifier: tests/guest/fsync_writer.py). Then the rule for devices left behind: a start
//! without recovery deletes the kept device, and a SIGKILLed gateway leaks no ublk id.
//!
//! Each boot runs `tests/guest/ublk_recovery.sh` (its header says what each step checks).

use std::path::PathBuf;
use std::time::Duration;

use pnfs_testbed::{require, GuestRunner, GuestScript};

const BIN: &str = env!("CARGO_BIN_EXE_pnfsgw");

/// Every check the script records in steps.txt when it passes, in order.
const CHECKS: [&str; 5] = ["workload", "sigkill", "sigterm", "verified", "rule"];

/// Most SIGKILL rounds one boot may run.
const ROUNDS_MAX: u32 = 50;

fn guest_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/guest")
        .join(name)
}

/// SIGKILL rounds: `UBLK_RECOVERY_ROUNDS` (1 to 50), else 3.
fn rounds() -> u32 {
    match std::env::var("UBLK_RECOVERY_ROUNDS") {
        Err(_) => 3,
        Ok(v) => match v.parse::<u32>() {
            Ok(n) if (1..=ROUNDS_MAX).contains(&n) => n,
            _ => panic!("UBLK_RECOVERY_ROUNDS={v:?}: expected 1 to {ROUNDS_MAX}"),
        },
    }
}

fn recovery(mds_kind: &str) {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let rounds = rounds();
    let seed: u64 = 0x5eed_0f15;
    let outcome = runner
        .run(
            &GuestScript::new(format!(
                "source {}",
                guest_file("ublk_recovery.sh").display()
            ))
            .name(format!("ublk-recovery-{mds_kind}"))
            .env("PNFSGW", BIN)
            .env(
                "WRITER",
                guest_file("fsync_writer.py").display().to_string(),
            )
            .env("MDS_KIND", mds_kind)
            .env("SEED", seed.to_string())
            .env("ROUNDS", rounds.to_string())
            .memory_mib(1536)
            .timeout(Duration::from_secs(900 + 60 * u64::from(rounds))),
        )
        .unwrap_or_else(|e| panic!("ublk recovery on {mds_kind}: {e}"));
    for s in &outcome.steps {
        println!("step {:?}: {:.1}s", s.name, s.duration.as_secs_f64());
    }
    for f in ["rounds.txt", "verify.txt"] {
        if let Ok(t) = std::fs::read_to_string(outcome.out_file(f)) {
            print!("{mds_kind} {f}:\n{t}");
        }
    }
    assert_eq!(outcome.exit_code, 0);
    let passed = std::fs::read_to_string(outcome.out_file("steps.txt")).unwrap_or_default();
    let passed: Vec<&str> = passed
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .collect();
    assert_eq!(passed, CHECKS, "checks passed on {mds_kind}");
    let verify = std::fs::read_to_string(outcome.out_file("verify.txt")).unwrap_or_default();
    assert!(verify.contains("; lost 0;"), "{verify}");
    assert!(
        outcome.stdout.contains("ALL-OK"),
        "the script did not finish"
    );
}

#[test]
fn ublk_device_survives_gateway_restarts_on_embedded_mds() {
    recovery("embedded");
}

#[test]
fn ublk_device_survives_gateway_restarts_on_linux_nfsd() {
    recovery("nfsd");
}
