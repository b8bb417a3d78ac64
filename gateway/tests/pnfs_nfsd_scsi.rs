//! The pNFS disk with SCSI layouts (RFC 8154) against Linux nfsd in the QEMU guest.
//!
//! The guest builds a real SCSI logical unit with SPC-3 persistent reservations (LIO fileio
//! backstore) reached through two tcm_loop initiator ports, i.e. two I_T nexuses like two
//! hosts on a SAN: nfsd's XFS sits on path A, the gateway uses path B. nfsd offers
//! LAYOUT4_SCSI; on GETDEVICEINFO it registers its own key on A and reserves the LU
//! "exclusive access, registrants only", so the gateway's direct I/O on B works only if it
//! registered the key nfsd gave it. The host test checks: zero mismatches in the seeded
//! workload, the kernel client's copy equals the model, nfsd served no data READ/WRITE, the
//! gateway used SCSI layouts and found the LU by its NAA designator, LIO lists the gateway's
//! key on path B's initiator while it runs and not after shutdown, and after shutdown path
//! B is refused by the reservation (so the registration is what let the I/O through).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pnfs_gateway::pnfs::testing::workload::run_workload;
use pnfs_gateway::pnfs::volume::{FileVolume, VolumeIo};
use pnfs_gateway::pnfs::{LayoutPreference, PnfsConfig};
use pnfs_proto::nfs4::LayoutType;
use pnfs_testbed::{require, GuestRunner, GuestScript};

use common::guest_env;
use common::nfsd_guest::{
    assert_layouts_only, counter, guest_gateway, guest_save, guest_workload_config,
    guest_workload_lines, kernel_copy_lines, FILE_MIB,
};

/// Guest deadline of one 4 KiB direct read from a SCSI path (an immediate answer, data or a
/// reservation conflict).
const DEVICE_IO_DEADLINE_S: u64 = 60;
/// Guest timeout of the whole run.
const GUEST_TIMEOUT: Duration = Duration::from_secs(900);
const SEED: u64 = 0x5c51_0001;
/// The initiator port name of path B (tests/guest/lib.sh make_lio_scsi_disk).
const PATH_B_INITIATOR: &str = "naa.500140500000a022";

/// The guest side: the seeded workload on nfsd through the gateway with SCSI layouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside the QEMU guest, started by scsi_layout_workload_against_linux_nfsd_in_guest"]
async fn guest_side_scsi_workload() {
    // The gateway's warnings (e.g. why a device could not be used) go to the guest's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let pr_file = PathBuf::from(guest_env("PNFS_GUEST_PR_FILE"));
    let vol = FileVolume::open(guest_env("PNFS_GUEST_VOLUME"), false, true).expect("open volume");
    let designators: Vec<String> = vol
        .scsi_designators()
        .iter()
        .map(|d| d.to_string())
        .collect();
    let vol: Arc<dyn VolumeIo> = Arc::new(vol);
    let cfg = PnfsConfig {
        layout_preference: LayoutPreference::Scsi,
        ..PnfsConfig::default()
    };
    let gw = guest_gateway("pnfs-gateway-guest-scsi", vol, cfg).await;
    let disk = gw
        .open_disk(&guest_env("PNFS_GUEST_PATH"), false)
        .await
        .expect("open disk");
    let offered = disk.offered_layout_types().to_vec();
    let used = disk.layout_type();
    let (rep, model) = run_workload(&disk, &guest_workload_config(SEED))
        .await
        .unwrap_or_else(|e| panic!("seed={SEED:#x}: {e}"));
    let keys = gw.pr_registrations();
    let pr_during = std::fs::read_to_string(&pr_file).expect("LIO registrations while running");
    disk.close().await.expect("close");
    gw.shutdown()
        .await
        .expect("shutdown (unregisters the PR key)");
    let pr_after = std::fs::read_to_string(&pr_file).expect("LIO registrations after shutdown");
    let snap = gw.stats().snapshot();
    let report = format!(
        "offered={offered:?}\nused={used:?}\ndesignators={designators:?}\nkeys={}\n{rep:?}\n{snap}\n--- pr during\n{pr_during}--- pr after\n{pr_after}",
        keys.iter()
            .map(|(v, k)| format!("{v}=0x{k:016x}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    guest_save("", &model, "report.txt", &report);
    assert_eq!(snap.request_errors, 0);
}

fn section<'a>(report: &'a str, start: &str, end: Option<&str>) -> &'a str {
    let from = report
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in report"))
        + start.len();
    let rest = &report[from..];
    match end.and_then(|e| rest.find(e)) {
        Some(i) => &rest[..i],
        None => rest,
    }
}

#[test]
fn scsi_layout_workload_against_linux_nfsd_in_guest() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let script = format!(
        r#"
step "LIO SCSI disk (two paths) and nfsd pnfs export on path A"
make_lio_scsi_disk 400
start_nfsd_pnfs_on "$PNFS_SCSI_DEV_A"
truncate -s {FILE_MIB}M "$PNFS_EXPORT/disk.img"
echo "$PNFS_SCSI_NAA" > "$OUT/naa"
step "gateway workload with SCSI layouts on path B"
{workload}cat /proc/net/rpc/nfsd > "$OUT/nfsd_after_gateway"
cat "$PNFS_SCSI_PR_DIR/res_pr_type" "$PNFS_SCSI_PR_DIR/res_pr_holder_tg_port" > "$OUT/pr_reservation" 2>&1 || true
dmesg | grep -iE 'pnfs|nfsd|reserv|sd[ab]' | tail -n 40 > "$OUT/dmesg" || true
step "path B without a key is refused by nfsd's reservation"
# dd's own status in a file: a refusal is a failing dd, a hang fails the script (guarded).
guarded {DEVICE_IO_DEADLINE_S} "dd from path B" sh -c \
  'dd if="$1" of=/dev/null bs=4096 count=1 iflag=direct 2>"$2"; echo $? >"$3"' \
  _ "$PNFS_SCSI_DEV_B" "$OUT/dd_b.err" /run/dd_b.status
if [ "$(cat /run/dd_b.status)" = 0 ]; then
  echo refused=no > "$OUT/path_b"
else
  echo refused=yes > "$OUT/path_b"
fi
step "kernel client reads the file"
{copy}"#,
        workload = guest_workload_lines(
            "the gateway's SCSI-layout workload",
            "guest_side_scsi_workload",
            r#"PNFS_GUEST_VOLUME="$PNFS_SCSI_DEV_B" PNFS_GUEST_PR_FILE="$PNFS_SCSI_PR_DIR/res_pr_registered_i_pts""#,
            "warn,pnfs_gateway::pnfs::device=info,pnfs_gateway::pnfs::layout=info"
        ),
        copy = kernel_copy_lines("kernel.img"),
    );
    let outcome = runner
        .run(
            &GuestScript::new(script)
                .name("pnfs-nfsd-scsi")
                .timeout(GUEST_TIMEOUT),
        )
        .expect("guest run");
    for diag in ["pr_reservation", "dmesg"] {
        let text = std::fs::read_to_string(outcome.out_file(diag)).unwrap_or_default();
        eprintln!("--- guest {diag}\n{text}");
    }
    let report = std::fs::read_to_string(outcome.out_file("report.txt")).expect("report");
    eprintln!("{report}");
    assert_layouts_only(
        &outcome,
        "",
        "kernel.img",
        "nfsd_after_gateway",
        &report,
        &format!("seed={SEED:#x}"),
    );

    // nfsd offered SCSI layouts and the gateway used them, on the LU found by its NAA.
    let offered = section(&report, "offered=", Some("\n"));
    assert!(
        offered.contains(&format!("{:?}", LayoutType::Scsi)),
        "nfsd does not offer LAYOUT4_SCSI: {offered}"
    );
    assert!(
        report.contains(&format!("used=Some({:?})", LayoutType::Scsi)),
        "{report}"
    );
    let naa = std::fs::read_to_string(outcome.out_file("naa")).expect("naa");
    let naa = naa.trim();
    assert_eq!(naa.len(), 32, "NAA designator {naa:?}");
    assert!(report.contains(&format!("naa.{naa}")), "{report}");
    assert!(counter(&report, "scsi_layoutgets") > 0, "{report}");
    assert_eq!(
        counter(&report, "scsi_layoutgets"),
        counter(&report, "layoutgets"),
        "every LAYOUTGET asked for SCSI layouts"
    );
    assert_eq!(counter(&report, "pr_registration_errors"), 0, "{report}");
    assert!(counter(&report, "pr_registrations") >= 1, "{report}");
    assert!(counter(&report, "direct_write_bytes") > 0, "{report}");
    assert_eq!(counter(&report, "volume_errors"), 0, "{report}");

    // The PR key: LIO lists it on path B's initiator while the gateway runs, not after.
    let key_line = section(&report, "keys=", Some("\n"));
    let key = key_line
        .split('=')
        .nth(1)
        .unwrap_or_else(|| panic!("no registered key: {key_line:?}"));
    let pr_during = section(&report, "--- pr during\n", Some("--- pr after"));
    let pr_after = section(&report, "--- pr after\n", None);
    let line_b = pr_during
        .lines()
        .find(|l| l.contains(PATH_B_INITIATOR))
        .unwrap_or_else(|| panic!("path B not registered while running:\n{pr_during}"));
    assert!(
        line_b.to_lowercase().contains(&key.to_lowercase()),
        "key {key} not on path B: {line_b}"
    );
    assert!(
        !pr_after.contains(PATH_B_INITIATOR),
        "path B still registered after shutdown:\n{pr_after}"
    );
    let path_b = std::fs::read_to_string(outcome.out_file("path_b")).expect("path_b");
    let dd_err = std::fs::read_to_string(outcome.out_file("dd_b.err")).unwrap_or_default();
    assert_eq!(
        path_b.trim(),
        "refused=yes",
        "unregistered path B could read the LU: nfsd's reservation is not in force ({dd_err})"
    );
}
