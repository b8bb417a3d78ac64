//! SCSI layout (RFC 8154) logic against the in-crate MDS test double in its SCSI mode, over
//! real volume files wrapped as reserved logical units (no I/O without a registered key). The
//! real-peer run (LIO + Linux nfsd in the guest) is pnfs_nfsd_scsi.rs.

use std::sync::Arc;
use std::time::Duration;

use pnfs_gateway::mds_api::DeviceNotification;
use pnfs_gateway::pnfs::testing::fake_mds::{
    fake_scsi_designator, FakeMds, FakeMdsConfig, FakeTopology, FAKE_SCSI_PR_KEY,
    FAKE_SIG_RESERVE_BYTES,
};
use pnfs_gateway::pnfs::testing::scsi_volume::{PrCall, ReservedScsiVolume};
use pnfs_gateway::pnfs::testing::workload::{run_workload, WorkloadConfig};
use pnfs_gateway::pnfs::testing::{make_volume_file, scratch_dir};
use pnfs_gateway::pnfs::volume::{FileVolume, VolumeIo};
use pnfs_gateway::pnfs::{LayoutPreference, PnfsClient, PnfsConfig};
use pnfs_gateway::stats::{Stats, StatsSnapshot};
use pnfs_proto::nfs4::{LayoutType, NfsStat};

const FILE_BYTES: u64 = 8 << 20;
const BLOCK_BYTES: u64 = 4096;

struct Bed {
    fake: Arc<FakeMds>,
    client: PnfsClient<FakeMds>,
    luns: Vec<Arc<ReservedScsiVolume>>,
}

/// Two leaves striped; the client's volumes carry the fake's designators when `designators`.
async fn bed(tag: &str, pref: LayoutPreference, designators: bool) -> Bed {
    let dir = scratch_dir(tag);
    let paths: Vec<_> = (0..2)
        .map(|i| {
            make_volume_file(
                &dir,
                &format!("lun{i}"),
                (16 << 20) + FAKE_SIG_RESERVE_BYTES,
            )
            .expect("volume file")
        })
        .collect();
    let fake = FakeMds::new(FakeMdsConfig {
        leaves: paths.clone(),
        topology: FakeTopology::Stripe { unit_bytes: 65536 },
        block_bytes: BLOCK_BYTES,
        lease: Duration::from_secs(30),
        layouts: true,
    })
    .await
    .expect("fake MDS");
    fake.serve_scsi();
    fake.create_file("/f", FILE_BYTES);
    let luns: Vec<Arc<ReservedScsiVolume>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let file: Arc<dyn VolumeIo> =
                Arc::new(FileVolume::open(p, false, true).expect("open volume"));
            let ds = if designators {
                vec![fake_scsi_designator(i)]
            } else {
                Vec::new()
            };
            Arc::new(ReservedScsiVolume::new(file, ds))
        })
        .collect();
    let cfg = PnfsConfig {
        layout_preference: pref,
        ..PnfsConfig::default()
    };
    let client = PnfsClient::new(
        Arc::clone(&fake),
        luns.iter()
            .map(|l| Arc::clone(l) as Arc<dyn VolumeIo>)
            .collect(),
        cfg,
        Arc::new(Stats::default()),
    );
    Bed { fake, client, luns }
}

/// Runs the seeded workload, checks the server's view against the model, closes.
async fn run(b: &Bed, seed: u64, want: Option<LayoutType>) -> StatsSnapshot {
    let disk = b.client.open_disk("/f", false).await.expect("open disk");
    assert!(disk.offered_layout_types().contains(&LayoutType::Scsi));
    assert_eq!(disk.layout_type(), want);
    let mut cfg = WorkloadConfig::new(seed, BLOCK_BYTES);
    cfg.ops = 200;
    let (rep, model) = run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("seed={seed}: {e}"));
    let server = b.fake.server_view("/f").await.expect("server view");
    for (i, (&s, &m)) in server.iter().zip(model.data.iter()).enumerate() {
        if model.defined[i] {
            assert_eq!(s, m, "seed={seed}: server view differs at byte {i}");
        }
    }
    disk.close().await.expect("close");
    let snap = b.client.stats().snapshot();
    eprintln!("seed={seed} {rep:?}\n  {snap}");
    assert_eq!(snap.request_errors, 0, "{snap}");
    snap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scsi_layouts_register_the_key_before_io_and_unregister_on_shutdown() {
    let b = bed("scsi-ok", LayoutPreference::Scsi, true).await;
    let snap = run(&b, 0x5c51_0101, Some(LayoutType::Scsi)).await;
    assert!(snap.scsi_layoutgets > 0, "{snap}");
    assert_eq!(snap.scsi_layoutgets, snap.layoutgets, "{snap}");
    assert_eq!(snap.pr_registrations, 2, "one key per logical unit: {snap}");
    assert_eq!(snap.pr_registration_errors, 0);
    assert!(snap.direct_write_bytes > 0 && snap.commits > 0, "{snap}");
    assert_eq!(snap.mds_write_bytes, 0, "{snap}");
    assert_eq!(snap.mds_read_bytes, 0, "{snap}");
    for lun in &b.luns {
        assert_eq!(lun.refused_io(), 0, "{}: I/O before the key", lun.name());
        assert_eq!(lun.registered_key(), FAKE_SCSI_PR_KEY);
        assert_eq!(
            lun.pr_calls(),
            vec![PrCall {
                old_key: 0,
                new_key: FAKE_SCSI_PR_KEY,
                ignore_existing: true
            }]
        );
    }
    let keys = b.client.pr_registrations();
    assert_eq!(keys.len(), 2, "{keys:?}");
    b.client.shutdown().await.expect("shutdown");
    for lun in &b.luns {
        assert_eq!(lun.registered_key(), 0, "{} still registered", lun.name());
        assert_eq!(
            lun.pr_calls().last().copied(),
            Some(PrCall {
                old_key: FAKE_SCSI_PR_KEY,
                new_key: 0,
                ignore_existing: false
            })
        );
    }
    assert!(b.client.pr_registrations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_registration_means_no_direct_io_and_mds_fallback() {
    let b = bed("scsi-refused", LayoutPreference::Scsi, true).await;
    for lun in &b.luns {
        lun.refuse_register(true);
    }
    let snap = run(&b, 0x5c51_0202, Some(LayoutType::Scsi)).await;
    assert_eq!(
        snap.pr_registration_errors, 1,
        "then the MDS for a while: {snap}"
    );
    assert_eq!(snap.layoutgets, 1, "{snap}");
    assert_eq!(snap.pr_registrations, 0);
    assert_eq!(snap.direct_write_bytes, 0, "{snap}");
    assert_eq!(snap.direct_read_bytes, 0, "{snap}");
    assert!(snap.mds_write_bytes > 0, "{snap}");
    for lun in &b.luns {
        assert_eq!(lun.refused_io(), 0, "{}: I/O without a key", lun.name());
    }
    b.client
        .shutdown()
        .await
        .expect("shutdown with nothing to unregister");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_designator_falls_back_to_the_mds() {
    let b = bed("scsi-nomatch", LayoutPreference::Scsi, false).await;
    let snap = run(&b, 0x5c51_0303, Some(LayoutType::Scsi)).await;
    assert_eq!(snap.direct_write_bytes, 0, "{snap}");
    assert_eq!(snap.pr_registrations + snap.pr_registration_errors, 0);
    assert_eq!(snap.layoutgets, 1, "then the MDS for a while: {snap}");
    assert!(snap.mds_write_bytes > 0, "{snap}");
    for lun in &b.luns {
        assert!(lun.pr_calls().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_layouts_by_default_when_both_are_offered() {
    let b = bed("scsi-default", LayoutPreference::default(), true).await;
    for lun in &b.luns {
        lun.set_reserved(false);
    }
    let snap = run(&b, 0x5c51_0404, Some(LayoutType::BlockVolume)).await;
    assert!(snap.layoutgets > 0 && snap.direct_write_bytes > 0, "{snap}");
    assert_eq!(snap.scsi_layoutgets, 0, "{snap}");
    for lun in &b.luns {
        assert!(lun.pr_calls().is_empty(), "block layouts register no key");
        assert_eq!(lun.refused_io(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preempted_key_is_registered_again_when_the_device_is_resolved_again() {
    let b = bed("scsi-preempt", LayoutPreference::Scsi, true).await;
    let disk = b.client.open_disk("/f", false).await.expect("open disk");
    let mut cfg = WorkloadConfig::new(0x5c51_0505, BLOCK_BYTES);
    cfg.ops = 100;
    run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The server fences this client (preempts its key on every LU), then hands the device
    // out again: CB_NOTIFY_DEVICEID makes the client resolve it again.
    for lun in &b.luns {
        lun.preempt();
    }
    let sink = b.fake.sink().expect("callback sink");
    let n = DeviceNotification::Change {
        layout_type: LayoutType::Scsi,
        device_id: b.fake.device_id(),
        immediate: true,
    };
    assert_eq!(sink.notify_deviceid(&[n]), NfsStat::OK);
    let first = b.client.stats().snapshot();
    cfg.seed = 0x5c51_0506;
    run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    disk.close().await.expect("close");
    let snap = b.client.stats().snapshot();
    eprintln!("{snap}");
    assert_eq!(
        snap.pr_registrations, 4,
        "two LUs, registered twice: {snap}"
    );
    assert!(snap.direct_write_bytes > first.direct_write_bytes, "{snap}");
    assert_eq!(snap.mds_write_bytes + snap.mds_read_bytes, 0, "{snap}");
    assert_eq!(snap.request_errors, 0, "{snap}");
    for lun in &b.luns {
        assert_eq!(lun.refused_io(), 0, "{}: I/O without a key", lun.name());
        assert_eq!(lun.registered_key(), FAKE_SCSI_PR_KEY);
        assert_eq!(lun.pr_calls().len(), 2, "{:?}", lun.pr_calls());
    }
}
