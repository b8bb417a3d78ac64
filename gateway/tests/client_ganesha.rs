//! The NFSv4.1 client against a real nfs-ganesha on 127.0.0.1 (MDS path: ganesha offers no
//! block layouts): the shared client suite (`common/client_suite.rs`) plus the graceless
//! restart, which only ganesha is configured for here. Each test starts its own ganesha
//! (the testbed's, foreground, own port and directories) and stops it on drop.
//!
//! Needs `ganesha.nfsd` (nfs-ganesha + nfs-ganesha-vfs) and root; missing either fails.

mod common;

use pnfs_gateway::client::NfsClient;
use pnfs_gateway::mds_api::{MetadataServer, StableHow};

use common::client_suite::{config, pattern, read_all, write_all, Peer, PeerSettings, OPEN_CREATE};
use common::ganesha::ExportedGanesha;
use pnfs_testbed::GaneshaOptions;

impl Peer for ExportedGanesha {
    const BLOCK_LAYOUTS: bool = false;
    const RESTARTS: u64 = 1;

    fn start(_tag: &str, settings: PeerSettings) -> Self {
        ExportedGanesha::start(GaneshaOptions {
            lease_seconds: Some(settings.lease_seconds),
            graceless: !settings.grace,
        })
    }
    fn addr(&self) -> String {
        ExportedGanesha::addr(self)
    }
    fn path(&self, name: &str) -> String {
        format!("export/{name}")
    }
    fn stored_file(&self, name: &str) -> Option<Vec<u8>> {
        Some(std::fs::read(self.export().join(name)).expect("file in ganesha's export"))
    }
    fn restart(&mut self) {
        ExportedGanesha::restart(self);
    }
    /// Ganesha reports no expiries here: the suite expects none.
    fn expired_clients(&self) -> u64 {
        0
    }
}

common::client_suite::client_suite!(ExportedGanesha);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ganesha_restart_gives_a_new_client_id_and_the_open_is_recovered() {
    const BYTES: usize = 65536;
    const LEASE_S: u32 = 5;
    let mut g = ExportedGanesha::start(GaneshaOptions {
        lease_seconds: Some(LEASE_S),
        graceless: true,
    });
    let c = NfsClient::connect(&g.addr(), config("restart"))
        .await
        .expect("connect");
    let f = c.open("export/r.bin", OPEN_CREATE).await.expect("OPEN");
    write_all(&c, &f, 0, &pattern(0, BYTES, 2), StableHow::Unstable).await;
    c.commit(&f, 0, 0).await.expect("COMMIT");
    g.restart();
    // The same open keeps working: reconnect, BADSESSION/STALE_CLIENTID, new client ID and
    // session, re-open (ganesha here is graceless: CLAIM_PREVIOUS gets NO_GRACE, then CLAIM_FH).
    // Ganesha derives client IDs from its boot second: the new one may equal the old one.
    let second = pattern(BYTES as u64, BYTES, 2);
    write_all(&c, &f, BYTES as u64, &second, StableHow::Unstable).await;
    c.commit(&f, 0, 0).await.expect("COMMIT after the restart");
    assert_eq!(
        read_all(&c, &f, 0, 2 * BYTES).await,
        pattern(0, 2 * BYTES, 2)
    );
    let s = c.stats();
    assert_eq!(s.client_ids, 2, "{s:?}");
    assert_eq!(s.sessions, 2, "{s:?}");
    assert_eq!(s.reclaimed_opens + s.reopened_opens, 1, "{s:?}");
    c.close(&f).await.expect("CLOSE");
    c.shutdown().await.expect("shutdown");
}
