//! The NFSv4.1 client against the project's embedded MDS (`pnfs-mds`, a real server process
//! on 127.0.0.1): the shared client suite (`common/client_suite.rs`: sessions, lease renewal,
//! connection cuts, SIGKILL + restart recovered by reclaim, three times), plus block layouts
//! and CB_LAYOUTRECALLs sent on demand through the MDS admin socket and delivered to the
//! CallbackSink.

mod common;

use std::time::Duration;

use pnfs_gateway::client::NfsClient;
use pnfs_gateway::mds_api::{MetadataServer, RecallTarget, StableHow};
use pnfs_proto::nfs4::LayoutType;

use common::client_suite::{
    config, layout_get, layout_return, pattern, write_all, Peer, PeerSettings, RecordingSink,
    OPEN_CREATE,
};
use common::{MdsOptions, MdsProcess};

/// The shortest grace period pnfs-mds accepts.
const MIN_GRACE_SECONDS: u32 = 1;
/// How long a recall sent through the admin socket may take to reach the sink.
const RECALL_DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

impl Peer for MdsProcess {
    const BLOCK_LAYOUTS: bool = true;
    const RESTARTS: u64 = 3;

    fn start(tag: &str, settings: PeerSettings) -> Self {
        MdsProcess::start(
            &format!("client-{tag}"),
            MdsOptions {
                lease_seconds: settings.lease_seconds,
                // pnfs-mds has no graceless mode (it clamps the grace to at least 1 s): "no
                // grace" is the shortest one, which is why the graceless restart test is
                // ganesha's alone.
                grace_seconds: if settings.grace {
                    settings.lease_seconds
                } else {
                    MIN_GRACE_SECONDS
                },
                ..MdsOptions::default()
            },
        )
    }
    fn addr(&self) -> String {
        MdsProcess::addr(self)
    }
    fn path(&self, name: &str) -> String {
        name.to_owned()
    }
    /// The data sits in the MDS's block map on its volume: not readable as a file here.
    fn stored_file(&self, _name: &str) -> Option<Vec<u8>> {
        None
    }
    fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }
    fn expired_clients(&self) -> u64 {
        mds_stat(self, "expired_clients")
    }
}

common::client_suite::client_suite!(MdsProcess);

/// One `key=value` counter of the MDS's admin `stats` line.
fn mds_stat(mds: &MdsProcess, key: &str) -> u64 {
    let line = mds.admin("stats");
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in MDS stats: {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layouts_and_recalls_on_demand_against_the_embedded_mds() {
    const FILE_BYTES: usize = 256 * 1024;
    const RECALLS: u64 = 10;
    let mds = MdsProcess::start("client", MdsOptions::default());
    let c = NfsClient::connect(&mds.addr(), config("layouts"))
        .await
        .expect("connect to pnfs-mds");
    let (_sink, mut rx) = RecordingSink::attach(&c);
    let f = c.open("m.bin", OPEN_CREATE).await.expect("OPEN create");
    assert!(
        f.layout_types.contains(&LayoutType::BlockVolume),
        "{:?}",
        f.layout_types
    );
    let data = pattern(0, FILE_BYTES, 7);
    write_all(&c, &f, 0, &data, StableHow::FileSync).await;
    let (_, layout) = layout_get(&c, &f, FILE_BYTES as u64).await;
    let dev = c
        .get_device_info(LayoutType::BlockVolume, layout.extents[0].device_id, 0)
        .await
        .expect("GETDEVICEINFO");
    assert!(!dev.addr_body.is_empty());

    // On-demand recalls: each is delivered to the sink and answered with LAYOUTRETURN.
    for i in 0..RECALLS {
        let (stateid, _) = layout_get(&c, &f, FILE_BYTES as u64).await;
        let answer = mds.admin("recall /m.bin");
        assert_eq!(answer, "ok 1", "recall {i}");
        let r = tokio::time::timeout(RECALL_DELIVERY_TIMEOUT, rx.recv())
            .await
            .expect("recall delivered")
            .expect("sink channel open");
        assert!(
            matches!(&r.target, RecallTarget::File { fh, .. } if *fh == f.fh),
            "{r:?}"
        );
        layout_return(&c, &f, stateid).await;
    }
    assert_eq!(c.stats().callbacks, RECALLS);
    c.close(&f).await.expect("CLOSE");
    c.shutdown().await.expect("shutdown");
}
