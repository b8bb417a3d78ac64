//! The pNFS disk against a real nfs-ganesha on 127.0.0.1 (no block layouts): the seeded
//! workload runs entirely through MDS READ/WRITE fallback and must match the model.
//!
//! Needs `ganesha.nfsd` (nfs-ganesha + nfs-ganesha-vfs) and root; missing either fails.

mod common;

use std::sync::Arc;

use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::pnfs::testing::workload::{run_workload, WorkloadConfig};
use pnfs_gateway::pnfs::{PnfsClient, PnfsConfig};
use pnfs_gateway::stats::Stats;

use common::ganesha::ExportedGanesha;
use pnfs_testbed::GaneshaOptions;

const FILE_BYTES: u64 = 4 << 20;
/// Ganesha's lease in this test.
const LEASE_S: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_through_mds_fallback_on_ganesha() {
    let g = ExportedGanesha::start(GaneshaOptions {
        lease_seconds: Some(LEASE_S),
        graceless: true,
    });
    let f = std::fs::File::create(g.export().join("disk.img")).expect("create file");
    f.set_len(FILE_BYTES).expect("size");
    drop(f);
    let nfs = NfsClient::connect(&g.addr(), ClientConfig::new("pnfs-ganesha-wl"))
        .await
        .expect("connect");
    let client = PnfsClient::new(
        Arc::new(nfs),
        Vec::new(),
        PnfsConfig::default(),
        Arc::new(Stats::default()),
    );
    let disk = client
        .open_disk("export/disk.img", false)
        .await
        .expect("open disk");
    let mut cfg = WorkloadConfig::new(0x6a4e5a, 4096);
    cfg.ops = 300;
    let (rep, model) = run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    disk.close().await.expect("close");
    // The file on ganesha's export equals the model where defined.
    let on_disk = std::fs::read(g.export().join("disk.img")).expect("read back");
    for (i, (&a, &m)) in on_disk.iter().zip(model.data.iter()).enumerate() {
        if model.defined[i] {
            assert_eq!(a, m, "seed={}: export file differs at byte {i}", cfg.seed);
        }
    }
    let snap = client.stats().snapshot();
    eprintln!("{rep:?}\n  {snap}");
    assert_eq!(
        snap.direct_write_bytes + snap.direct_read_bytes,
        0,
        "{snap}"
    );
    assert!(
        snap.mds_write_bytes > 0 && snap.mds_read_bytes > 0,
        "{snap}"
    );
    assert_eq!(snap.request_errors, 0);
}
