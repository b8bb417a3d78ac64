//! One suite of NFSv4.1 client tests, run against every peer that can run it: each peer's test
//! binary implements [`Peer`] and instantiates the suite with [`client_suite!`], so a test
//! added here runs against ganesha and the embedded MDS alike. Tests that only make sense for
//! one peer (block layouts and recalls driven by that peer, nfsd in the guest) stay in that
//! peer's file and use the helpers here.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::mds_api::{
    BoxFuture, CallbackSink, DeviceNotification, LayoutGetArgs, LayoutRecall, LayoutReturnArgs,
    LayoutReturnTarget, MetadataServer, OpenFile, OpenMode, StableHow, StateidArg,
};
use pnfs_proto::layout::block::BlockLayout;
use pnfs_proto::nfs4::{LayoutIoMode, LayoutType, NfsStat, Stateid};
use tokio::sync::mpsc;

use super::CutProxy;

/// Per-call timeout of the suite's clients.
pub const CALL_TIMEOUT_MS: u64 = 10_000;
/// How long the suite's clients may stall on an unreachable server before failing.
pub const STALL_LIMIT_MS: u64 = 60_000;
/// Connection cuts in the cut test.
const CUTS: u64 = 5;
/// How long the cut test waits for the client to be connected and bound again.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two polls of the cut test's reconnect wait.
const RECONNECT_POLL: Duration = Duration::from_millis(20);
/// Pause after each cut, so that the writer makes progress on the new connection.
const AFTER_CUT_PAUSE: Duration = Duration::from_millis(150);
/// OPEN that creates an empty file.
pub const OPEN_CREATE: OpenMode = OpenMode {
    read_only: false,
    create_size_bytes: Some(0),
};
/// Bytes of each restart round's write in the restart test.
const RESTART_ROUND_BYTES: usize = 8192;

/// How a peer is started for one suite test.
#[derive(Debug, Clone, Copy)]
pub struct PeerSettings {
    /// The lease the server grants.
    pub lease_seconds: u32,
    /// Whether a (re)started server has a grace period for reclaims.
    pub grace: bool,
}

/// A server the suite runs against: started per test, restartable with SIGKILL.
pub trait Peer: Sized {
    /// Whether OPEN reports block layouts for a file (else it must report no layout type).
    const BLOCK_LAYOUTS: bool;
    /// Restarts in the restart-with-grace test.
    const RESTARTS: u64;
    /// Starts one for the test `tag` and returns once it listens.
    fn start(tag: &str, settings: PeerSettings) -> Self;
    /// `127.0.0.1:port`.
    fn addr(&self) -> String;
    /// The NFS path of the file `name` in the peer's export.
    fn path(&self, name: &str) -> String;
    /// The bytes of `name` as this host sees them in the peer's storage, where it can.
    fn stored_file(&self, name: &str) -> Option<Vec<u8>>;
    /// SIGKILL (in-memory state lost) and start again on the same storage and port.
    fn restart(&mut self);
    /// Clients whose lease the server let expire since it started (a loaded machine can
    /// stall reconnects past a lease), where the server reports it; 0 otherwise.
    fn expired_clients(&self) -> u64;
}

/// The suite's client configuration for the test `name`.
pub fn config(name: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(format!("pnfs-gateway-test-{name}-{}", std::process::id()));
    cfg.limits.call_timeout_ms = CALL_TIMEOUT_MS;
    cfg.stall_limit_ms = STALL_LIMIT_MS;
    cfg
}

/// Records what the client tells the pNFS layer; recalls go to a channel for the test body
/// (the sink must not call the fore channel itself) and are answered OK.
pub struct RecordingSink {
    tx: mpsc::UnboundedSender<LayoutRecall>,
    /// `server_restarted()` calls.
    pub restarted: AtomicU32,
    /// `state_lost()` calls.
    pub lost: AtomicU32,
}

impl RecordingSink {
    /// Installs a new sink on `c`; returns it and the receiver of the recalls.
    pub fn attach(c: &NfsClient) -> (Arc<Self>, mpsc::UnboundedReceiver<LayoutRecall>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Arc::new(Self {
            tx,
            restarted: AtomicU32::new(0),
            lost: AtomicU32::new(0),
        });
        let dynsink: Arc<dyn CallbackSink> = sink.clone();
        let weak: Weak<dyn CallbackSink> = Arc::downgrade(&dynsink);
        c.set_callback_sink(weak);
        (sink, rx)
    }

    /// (`server_restarted()` calls, `state_lost()` calls).
    pub fn counts(&self) -> (u32, u32) {
        (
            self.restarted.load(Ordering::SeqCst),
            self.lost.load(Ordering::SeqCst),
        )
    }
}

impl CallbackSink for RecordingSink {
    fn layout_recall(&self, recall: LayoutRecall) -> NfsStat {
        // The receiver lives as long as the test body; a closed one is a finished test.
        let _ = self.tx.send(recall);
        NfsStat::OK
    }
    fn recall_any(&self, _type_mask: u32, _keep: u32) -> NfsStat {
        NfsStat::OK
    }
    fn notify_deviceid(&self, _n: &[DeviceNotification]) -> NfsStat {
        NfsStat::OK
    }
    fn server_restarted(&self) -> BoxFuture<()> {
        self.restarted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
    fn state_lost(&self) {
        self.lost.fetch_add(1, Ordering::SeqCst);
    }
}

/// Deterministic test data (no RNG needed: content is a function of the offset).
pub fn pattern(offset: u64, len: usize, salt: u8) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = (offset + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56;
            (x as u8) ^ salt
        })
        .collect()
}

/// WRITE until all of `data` is written at `off` (the server may write less per call).
pub async fn write_all(c: &NfsClient, f: &OpenFile, mut off: u64, data: &[u8], how: StableHow) {
    let mut rest = Bytes::copy_from_slice(data);
    while !rest.is_empty() {
        let w = c.write(f, off, rest.clone(), how).await.expect("WRITE");
        assert!(w.count_bytes > 0, "zero-length WRITE reply");
        off += u64::from(w.count_bytes);
        rest = rest.slice(w.count_bytes as usize..);
    }
}

/// READ `len` bytes at `off`, fewer only at end of file.
pub async fn read_all(c: &NfsClient, f: &OpenFile, mut off: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let want = u32::try_from(len - out.len()).expect("READ size");
        let r = c.read(f, off, want).await.expect("READ");
        if r.data.is_empty() {
            assert!(r.eof, "empty READ without eof");
            break;
        }
        off += r.data.len() as u64;
        out.extend_from_slice(&r.data);
    }
    out
}

/// LAYOUTGET of a READ block layout for `[0, len)`: its stateid and decoded body.
pub async fn layout_get(c: &NfsClient, f: &OpenFile, len: u64) -> (Stateid, BlockLayout) {
    const MIN_LAYOUT_BYTES: u64 = 4096;
    const MAX_LAYOUT_REPLY_BYTES: u32 = 64 * 1024;
    let lg = c
        .layout_get(
            f,
            LayoutGetArgs {
                layout_type: LayoutType::BlockVolume,
                iomode: LayoutIoMode::Read,
                offset_bytes: 0,
                length_bytes: len,
                min_length_bytes: MIN_LAYOUT_BYTES,
                stateid: StateidArg::Open,
                max_reply_bytes: MAX_LAYOUT_REPLY_BYTES,
                signal_layout_avail: false,
            },
        )
        .await
        .expect("LAYOUTGET");
    let body = &lg.segments.first().expect("a layout segment").body;
    (
        lg.stateid,
        pnfs_proto::xdr::from_bytes(body).expect("block layout body"),
    )
}

/// LAYOUTRETURN of the whole file's block layouts.
pub async fn layout_return(c: &NfsClient, f: &OpenFile, stateid: Stateid) {
    c.layout_return(
        f,
        LayoutReturnArgs {
            reclaim: false,
            layout_type: LayoutType::BlockVolume,
            iomode: LayoutIoMode::Any,
            target: LayoutReturnTarget::File {
                offset_bytes: 0,
                length_bytes: u64::MAX,
                stateid,
                body: Bytes::new(),
            },
        },
    )
    .await
    .expect("LAYOUTRETURN");
}

/// Session, OPEN create, WRITE split by the session's request size, COMMIT, GETATTR, READ
/// back and past EOF, SETATTR size, a second OPEN that does not create, a stable write
/// verifier, NOENT for a missing file, one client ID and one session.
pub async fn session_open_write_read_commit<P: Peer>() {
    const LEASE_S: u32 = 10;
    let p = P::start(
        "rw",
        PeerSettings {
            lease_seconds: LEASE_S,
            grace: false,
        },
    );
    let c = NfsClient::connect(&p.addr(), config("rw"))
        .await
        .expect("connect + session");
    assert!(c.session_id().is_some());
    println!(
        "state protection: SP4_MACH_CRED granted = {}",
        c.uses_mach_cred()
    );
    assert!(c.fore_slots() >= 1);
    assert_eq!(
        c.lease(),
        Duration::from_secs(u64::from(LEASE_S)),
        "lease_time from the root"
    );
    let f = c
        .open(&p.path("data.bin"), OPEN_CREATE)
        .await
        .expect("OPEN create");
    assert_eq!(f.size_bytes, 0);
    if P::BLOCK_LAYOUTS {
        assert!(
            f.layout_types.contains(&LayoutType::BlockVolume),
            "block layouts offered: {:?}",
            f.layout_types
        );
    } else {
        assert!(
            f.layout_types.is_empty(),
            "no layouts offered: {:?}",
            f.layout_types
        );
    }
    // 3 MiB + a bit, so that WRITE is split by the session's max request size.
    let len = 3 * 1024 * 1024 + 4097;
    let data = pattern(0, len, 0x5a);
    write_all(&c, &f, 0, &data, StableHow::Unstable).await;
    let v1 = c.commit(&f, 0, 0).await.expect("COMMIT");
    assert_eq!(c.get_size(&f).await.expect("GETATTR"), len as u64);
    let back = read_all(&c, &f, 0, len).await;
    assert!(back == data, "read back differs from what was written");
    // Past EOF: short read with eof.
    let r = c.read(&f, len as u64 - 10, 100).await.expect("READ at EOF");
    assert_eq!((r.data.len(), r.eof), (10, true));
    // The bytes are in the server's storage.
    if let Some(stored) = p.stored_file("data.bin") {
        assert!(stored == data, "file in the server's storage differs");
    }
    // SETATTR size truncates; a second open of an existing file does not create.
    c.set_size(&f, 4096).await.expect("SETATTR size");
    if let Some(stored) = p.stored_file("data.bin") {
        assert_eq!(stored.len(), 4096);
    }
    let f2 = c
        .open(
            &p.path("data.bin"),
            OpenMode {
                read_only: true,
                create_size_bytes: Some(1),
            },
        )
        .await
        .expect("second OPEN");
    assert_eq!(f2.size_bytes, 4096);
    let v2 = c.commit(&f, 0, 0).await.expect("COMMIT");
    assert_eq!(v1, v2, "write verifier stable while the server runs");
    c.close(&f2).await.expect("CLOSE");
    c.close(&f).await.expect("CLOSE");
    let err = c
        .open(
            &p.path("missing"),
            OpenMode {
                read_only: true,
                create_size_bytes: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.nfs_status(), Some(NfsStat::NOENT), "{err}");
    let s = c.stats();
    assert_eq!((s.client_ids, s.sessions), (1, 1), "{s:?}");
    c.shutdown()
        .await
        .expect("DESTROY_SESSION + DESTROY_CLIENTID");
}

/// An idle client renews its lease (~lease/3) for three leases; the open survives.
pub async fn idle_lease_renewal_keeps_the_session_across_three_leases<P: Peer>() {
    const LEASE_S: u32 = 4;
    const MIN_RENEWALS: u64 = 6;
    let p = P::start(
        "lease",
        PeerSettings {
            lease_seconds: LEASE_S,
            grace: false,
        },
    );
    let c = NfsClient::connect(&p.addr(), config("lease"))
        .await
        .expect("connect");
    assert_eq!(c.lease(), Duration::from_secs(u64::from(LEASE_S)));
    let f = c.open(&p.path("f"), OPEN_CREATE).await.expect("OPEN");
    write_all(&c, &f, 0, b"before idle", StableHow::Unstable).await;
    let session = c.session_id();
    let mut lease = c.lease_watch();
    let start = tokio::time::Instant::now();
    // Idle for three leases; wait on the lease watch (no fixed sleeps): it moves on every renewal.
    let mut renewals_seen = 0;
    while start.elapsed() < Duration::from_secs(3 * u64::from(LEASE_S)) {
        tokio::time::timeout(Duration::from_secs(u64::from(LEASE_S)), lease.changed())
            .await
            .expect("no lease renewal within one lease time")
            .expect("lease watch open");
        renewals_seen += 1;
    }
    assert!(
        renewals_seen >= MIN_RENEWALS,
        "renewals at ~lease/3: saw {renewals_seen}"
    );
    // The open state survived: the same stateid still works and nothing was re-established.
    write_all(&c, &f, 11, b" after idle", StableHow::Unstable).await;
    assert_eq!(read_all(&c, &f, 0, 22).await, b"before idle after idle");
    let s = c.stats();
    assert_eq!(c.session_id(), session);
    assert_eq!(
        (s.client_ids, s.sessions, s.reopened_opens),
        (1, 1, 0),
        "{s:?}"
    );
    assert!(s.renewals >= MIN_RENEWALS, "{s:?}");
    c.close(&f).await.expect("CLOSE");
    c.shutdown().await.expect("shutdown");
}

/// Five connection cuts (a TCP proxy closes both sides) while a writer runs: each new
/// connection is bound to the same session, no request fails, the data is intact.
pub async fn connection_cuts_reconnect_and_bind_while_the_workload_continues<P: Peer>() {
    const CHUNK_BYTES: usize = 256 * 1024;
    const CHUNKS: u64 = 24;
    let p = P::start(
        "cut",
        PeerSettings {
            lease_seconds: 10,
            grace: false,
        },
    );
    let proxy = CutProxy::start(p.addr()).await;
    let c = NfsClient::connect(&proxy.addr(), config("cut"))
        .await
        .expect("connect");
    let session = c.session_id();
    let f = c.open(&p.path("cut.bin"), OPEN_CREATE).await.expect("OPEN");
    // Writers run concurrently (several slots in use) while the connection is cut.
    let writer = {
        let (c, f) = (c.clone(), f.clone());
        tokio::spawn(async move {
            for i in 0..CHUNKS {
                let off = i * CHUNK_BYTES as u64;
                let data = pattern(off, CHUNK_BYTES, 1);
                write_all(&c, &f, off, &data, StableHow::Unstable).await;
            }
        })
    };
    let mut cuts = 0;
    for _ in 0..CUTS {
        // Wait until the client is connected again AND has bound that connection to the
        // session (a live proxied TCP connection alone is not enough: cutting it while
        // BIND_CONN_TO_SESSION is in flight makes the client retry on one more connection, so
        // two cuts would cost only one bind and the bind count below would not match).
        let deadline = tokio::time::Instant::now() + RECONNECT_TIMEOUT;
        loop {
            if c.stats().binds >= cuts && proxy.cut() > 0 {
                cuts += 1;
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "client never reconnected"
            );
            tokio::time::sleep(RECONNECT_POLL).await;
        }
        tokio::time::sleep(AFTER_CUT_PAUSE).await;
    }
    writer.await.expect("writer saw an error");
    let total = usize::try_from(CHUNKS).expect("chunks") * CHUNK_BYTES;
    let back = read_all(&c, &f, 0, total).await;
    let expect: Vec<u8> = (0..CHUNKS)
        .flat_map(|i| pattern(i * CHUNK_BYTES as u64, CHUNK_BYTES, 1))
        .collect();
    assert!(back == expect, "contents differ after connection cuts");
    // Counted after the reads: a cut after the writer's last request is only noticed by the
    // next request.
    let s = c.stats();
    assert_eq!(cuts, CUTS);
    assert!(
        s.binds >= CUTS,
        "each new connection is bound to the session: {s:?}"
    );
    assert!(s.connects > CUTS, "{s:?}");
    assert_eq!(c.session_id(), session, "the session survived the cuts");
    // One client ID, plus one for each time the server let the lease expire: never a new ID
    // without a reason.
    let expired = p.expired_clients();
    assert_eq!(
        s.client_ids,
        1 + expired,
        "{s:?} (server expired {expired})"
    );
    c.close(&f).await.expect("CLOSE");
    c.shutdown().await.expect("shutdown");
}

/// SIGKILL + restart of a server with a grace period, [`Peer::RESTARTS`] times: a new client
/// ID each time, the open reclaimed in grace (CLAIM_PREVIOUS), `server_restarted()` delivered,
/// the data intact and writes continuing on the same OpenFile.
pub async fn restart_with_grace_reclaims_the_open_with_claim_previous<P: Peer>() {
    let mut p = P::start(
        "grace",
        PeerSettings {
            lease_seconds: 5,
            grace: true,
        },
    );
    let c = NfsClient::connect(&p.addr(), config("grace"))
        .await
        .expect("connect");
    let (sink, _recalls) = RecordingSink::attach(&c);
    // A server that starts in grace stalls the first non-reclaim OPEN (GRACE) until it ends.
    let f = c.open(&p.path("g.bin"), OPEN_CREATE).await.expect("OPEN");
    let round = |k: u64| pattern(k * RESTART_ROUND_BYTES as u64, RESTART_ROUND_BYTES, 3);
    write_all(&c, &f, 0, &round(0), StableHow::Unstable).await;
    c.commit(&f, 0, 0).await.expect("COMMIT");
    // The server counts its expiries from zero after each restart: add them up.
    let mut expired = 0;
    for k in 1..=P::RESTARTS {
        expired += p.expired_clients();
        p.restart();
        let off = k * RESTART_ROUND_BYTES as u64;
        write_all(&c, &f, off, &round(k), StableHow::Unstable).await;
        c.commit(&f, 0, 0).await.expect("COMMIT after the restart");
        assert!(
            read_all(&c, &f, 0, RESTART_ROUND_BYTES).await == round(0),
            "data from before restart {k} is intact"
        );
    }
    expired += p.expired_clients();
    let rounds = usize::try_from(P::RESTARTS + 1).expect("rounds");
    let all: Vec<u8> = (0..P::RESTARTS + 1).flat_map(round).collect();
    assert!(
        read_all(&c, &f, 0, rounds * RESTART_ROUND_BYTES).await == all,
        "data written across the restarts reads back"
    );
    assert_eq!(
        c.get_size(&f).await.expect("GETATTR"),
        (rounds * RESTART_ROUND_BYTES) as u64
    );
    let s = c.stats();
    println!("client stats after {} restarts: {s:?}", P::RESTARTS);
    assert_eq!(
        s.client_ids,
        1 + P::RESTARTS + expired,
        "{s:?} (server expired {expired})"
    );
    assert_eq!(
        (s.reclaimed_opens, s.reopened_opens),
        (P::RESTARTS, 0),
        "CLAIM_PREVIOUS accepted in grace: {s:?}"
    );
    assert_eq!(
        sink.counts(),
        (u32::try_from(P::RESTARTS).expect("restarts"), 0)
    );
    c.close(&f).await.expect("CLOSE");
    c.shutdown().await.expect("shutdown");
}

/// One `#[tokio::test]` per suite test for the peer type `$peer`.
#[allow(unused_macros)] // binaries without a suite peer share this module
macro_rules! client_suite {
    ($peer:ty) => {
        common::client_suite::client_suite!(@tests $peer;
            session_open_write_read_commit,
            idle_lease_renewal_keeps_the_session_across_three_leases,
            connection_cuts_reconnect_and_bind_while_the_workload_continues,
            restart_with_grace_reclaims_the_open_with_claim_previous,
        );
    };
    (@tests $peer:ty; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                common::client_suite::$name::<$peer>().await;
            }
        )*
    };
}
#[allow(unused_imports)] // see the macro
pub(crate) use client_suite;
