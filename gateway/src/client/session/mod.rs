//! The NFSv4.1 client proper: client ID and session establishment, SEQUENCE on every
//! compound with the slot table, recovery (connection loss, BADSESSION, STALE_CLIENTID,
//! server restart with reclaim), lease renewal, the backchannel task, and the file operations
//! the pNFS layer uses (see [`crate::mds_api::MetadataServer`], implemented in `mds_impl`).

use crate::sync::LockExt;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pnfs_proto::nfs4::{
    ClientId, FileHandle, NfsStat, SessionId, Stateid, Verifier, NFS4_MAX_TEST_STATEIDS,
};
use pnfs_proto::rpc::{
    AcceptStat, AuthSys, CB_COMPOUND, CB_NULL, NFSPROC4_COMPOUND, NFS_CB_VERSION, NFS_PROGRAM,
    NFS_V4,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::cb::{self, CbSlotTable, FollowUp};
use super::error::ClientError;
use super::slots::SlotTable;
use super::transport::{IncomingCall, Transport, TransportLimits};
use super::wire::{
    self, attr, exchgid, seq4, Attrs, CompoundRes, OpFailure, CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
};
use crate::mds_api::{CallbackSink, LeaseStatus};
use pnfs_proto::nfs4::ops::{self as p, ChannelAttrs, NfsArgOp, NfsResOp};

mod callbacks;
mod connect;
mod establish;
mod recovery;
mod sequence;

use callbacks::{backchannel_loop, renew_loop};

/// The NFSv4 callback program number we register (any value in the transient range works).
pub const DEFAULT_CB_PROGRAM: u32 = 0x4000_0000;
/// Lease assumed until the server tells us its lease_time.
const DEFAULT_LEASE_S: u32 = 90;
/// Callback calls queued before the connection reader waits.
const CB_QUEUE_DEPTH: usize = 32;
/// First retry pause for DELAY / GRACE / reconnects.
const FIRST_BACKOFF_MS: u64 = 50;
/// Most SEQ_MISORDERED resyncs in a row for one request.
const MAX_MISORDERED_RETRIES: u32 = 4;
/// Bytes of a COMPOUND that are not READ/WRITE payload (headers, SEQUENCE, PUTFH, …).
const COMPOUND_OVERHEAD_BYTES: u32 = 1024;
/// After a recovery from RECALLABLE_STATE_REVOKED that found nothing revoked, the earliest
/// next one (the flag may stay up a while for state this client already forgot).
const REVOKED_RECHECK_MIN: Duration = Duration::from_secs(2);

/// A stream the client can run RPC over.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A boxed connection.
pub type BoxStream = Box<dyn AsyncStream>;

/// Makes connections to the server. The default is plain TCP ([`TcpConnector`]); tests inject
/// fault layers or in-memory pipes here.
pub trait Connector: Send + Sync + 'static {
    /// Opens a new connection.
    fn connect(&self) -> Pin<Box<dyn Future<Output = std::io::Result<BoxStream>> + Send + '_>>;
    /// The address, for messages.
    fn describe(&self) -> String;
}

/// TCP to a fixed address.
#[derive(Debug, Clone)]
pub struct TcpConnector {
    /// `host:port`.
    pub addr: String,
}

impl Connector for TcpConnector {
    fn connect(&self) -> Pin<Box<dyn Future<Output = std::io::Result<BoxStream>> + Send + '_>> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxStream)
        })
    }

    fn describe(&self) -> String {
        self.addr.clone()
    }
}

/// Client configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client owner id (co_ownerid): stable across restarts of the gateway so that the
    /// server can tell a restarted client from a new one. At most 1024 bytes.
    pub owner_id: String,
    /// AUTH_SYS uid.
    pub uid: u32,
    /// AUTH_SYS gid.
    pub gid: u32,
    /// AUTH_SYS machine name.
    pub machine_name: String,
    /// Transport limits (record size, calls in flight, per-call timeout).
    pub limits: TransportLimits,
    /// Fore-channel slots asked for (the server may grant fewer).
    pub fore_slots: u32,
    /// Back-channel slots offered.
    pub back_slots: u32,
    /// Callback program number.
    pub cb_program: u32,
    /// Largest READ/WRITE payload per request.
    pub max_rw_bytes: u32,
    /// How long a request may stall in recovery, DELAY or GRACE before it fails. Must cover a
    /// server restart plus its grace period.
    pub stall_limit_ms: u64,
    /// Time allowed for one TCP connect.
    pub connect_timeout_ms: u64,
    /// Largest pause between reconnect attempts.
    pub max_backoff_ms: u64,
    /// Ask for SP4_MACH_CRED state protection (falls back to SP4_NONE if refused).
    pub request_mach_cred: bool,
}

impl ClientConfig {
    /// Defaults for everything but the owner id.
    pub fn new(owner_id: impl Into<String>) -> Self {
        Self {
            owner_id: owner_id.into(),
            uid: 0,
            gid: 0,
            machine_name: "pnfs-gateway".into(),
            limits: TransportLimits::default(),
            fore_slots: 64,
            back_slots: 4,
            cb_program: DEFAULT_CB_PROGRAM,
            max_rw_bytes: 1024 * 1024,
            stall_limit_ms: 300_000,
            connect_timeout_ms: 5_000,
            max_backoff_ms: 2_000,
            request_mach_cred: true,
        }
    }
}

/// Counters of what recovery did (for tests and the CLI).
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Connections made (the first one included).
    pub connects: AtomicU64,
    /// Successful BIND_CONN_TO_SESSION.
    pub binds: AtomicU64,
    /// Sessions created.
    pub sessions: AtomicU64,
    /// EXCHANGE_IDs that produced a new client ID.
    pub client_ids: AtomicU64,
    /// Opens reclaimed with CLAIM_PREVIOUS.
    pub reclaimed_opens: AtomicU64,
    /// Opens re-opened without reclaim (state lost or no grace).
    pub reopened_opens: AtomicU64,
    /// Idle SEQUENCEs sent to renew the lease.
    pub renewals: AtomicU64,
    /// Requests resent after DELAY / GRACE.
    pub delay_retries: AtomicU64,
    /// CB_COMPOUNDs received on a live session.
    pub callbacks: AtomicU64,
    /// Delegations returned (we never keep them).
    pub delegations_returned: AtomicU64,
}

/// A snapshot of [`ClientStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientStatsSnapshot {
    /// See [`ClientStats::connects`].
    pub connects: u64,
    /// See [`ClientStats::binds`].
    pub binds: u64,
    /// See [`ClientStats::sessions`].
    pub sessions: u64,
    /// See [`ClientStats::client_ids`].
    pub client_ids: u64,
    /// See [`ClientStats::reclaimed_opens`].
    pub reclaimed_opens: u64,
    /// See [`ClientStats::reopened_opens`].
    pub reopened_opens: u64,
    /// See [`ClientStats::renewals`].
    pub renewals: u64,
    /// See [`ClientStats::delay_retries`].
    pub delay_retries: u64,
    /// See [`ClientStats::callbacks`].
    pub callbacks: u64,
    /// See [`ClientStats::delegations_returned`].
    pub delegations_returned: u64,
}

impl ClientStats {
    fn snapshot(&self) -> ClientStatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStatsSnapshot {
            connects: g(&self.connects),
            binds: g(&self.binds),
            sessions: g(&self.sessions),
            client_ids: g(&self.client_ids),
            reclaimed_opens: g(&self.reclaimed_opens),
            reopened_opens: g(&self.reopened_opens),
            renewals: g(&self.renewals),
            delay_retries: g(&self.delay_retries),
            callbacks: g(&self.callbacks),
            delegations_returned: g(&self.delegations_returned),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: SessionId,
    gen: u64,
    pub(crate) slots: Arc<SlotTable>,
    cb_slots: Arc<CbSlotTable>,
    fore: ChannelAttrs,
}

#[derive(Debug, Default)]
struct ConnState {
    transport: Option<Arc<Transport>>,
    conn_gen: u64,
    session: Option<Arc<Session>>,
    session_gen: u64,
    clientid: Option<ClientId>,
    create_seq: u32,
    client_epoch: u64,
    mach_cred: bool,
}

/// Client-side open state, kept across recovery.
#[derive(Debug, Clone)]
pub(crate) struct OpenState {
    pub(crate) path: String,
    pub(crate) fh: FileHandle,
    pub(crate) stateid: Stateid,
    pub(crate) access: u32,
    pub(crate) owner: Vec<u8>,
}

/// Flags for one compound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallFlags {
    /// sa_cachethis.
    pub(crate) cache_this: bool,
    /// Safe to re-execute (RETRY_UNCACHED_REP then means "send again as new").
    pub(crate) idempotent: bool,
    /// Uses an open stateid: stale-state errors after a reclaim are retried with the new one.
    pub(crate) uses_open_state: bool,
    /// Sent during reboot recovery (CLAIM_PREVIOUS, reclaim LAYOUTCOMMIT): GRACE is an error.
    pub(crate) reclaim: bool,
}

impl CallFlags {
    pub(crate) const READ_ONLY: Self = Self {
        cache_this: false,
        idempotent: true,
        uses_open_state: false,
        reclaim: false,
    };
    pub(crate) const STATEFUL: Self = Self {
        cache_this: true,
        idempotent: false,
        uses_open_state: true,
        reclaim: false,
    };
    pub(crate) const IO: Self = Self {
        cache_this: false,
        idempotent: true,
        uses_open_state: true,
        reclaim: false,
    };
}

pub(crate) struct Inner {
    pub(crate) cfg: ClientConfig,
    connector: Arc<dyn Connector>,
    pub(crate) cred: AuthSys,
    verifier: Verifier,
    conn: Mutex<ConnState>,
    recovery: tokio::sync::Mutex<()>,
    pub(crate) opens: Mutex<HashMap<u64, OpenState>>,
    pub(crate) next_open_id: AtomicU64,
    pub(crate) sink: Mutex<Option<Weak<dyn CallbackSink>>>,
    pub(crate) lease_tx: watch::Sender<LeaseStatus>,
    cb_tx: mpsc::Sender<IncomingCall>,
    shutdown: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    reclaiming: watch::Sender<bool>,
    rebinding: AtomicBool,
    recovering_revoked: AtomicBool,
    /// Bumped whenever recovery replaces an open stateid (requests built before that retry).
    open_gen: AtomicU64,
    pub(crate) stats: ClientStats,
    next_xid_seed: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("server", &self.connector.describe())
            .finish_non_exhaustive()
    }
}

/// The NFSv4.1 client. Cheap to clone (shared state); the background tasks stop on
/// [`NfsClient::shutdown`].
#[derive(Debug, Clone)]
pub struct NfsClient {
    pub(crate) inner: Arc<Inner>,
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl NfsClient {
    /// Connects over TCP to `addr` and establishes a client ID and session.
    pub async fn connect(addr: &str, cfg: ClientConfig) -> Result<Self, ClientError> {
        Self::connect_with(
            Arc::new(TcpConnector {
                addr: addr.to_owned(),
            }),
            cfg,
        )
        .await
    }

    /// Like [`NfsClient::connect`] with a custom connector (fault layers, tests).
    pub async fn connect_with(
        connector: Arc<dyn Connector>,
        cfg: ClientConfig,
    ) -> Result<Self, ClientError> {
        if cfg.owner_id.is_empty() || cfg.owner_id.len() > pnfs_proto::nfs4::NFS4_OPAQUE_LIMIT_BYTES
        {
            return Err(ClientError::Invalid(
                "owner_id must be 1..=1024 bytes".into(),
            ));
        }
        let boot_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let verifier = Verifier(
            u64::try_from(boot_ns & u128::from(u64::MAX))
                .unwrap_or(0)
                .to_be_bytes(),
        );
        let stamp = u32::try_from(boot_ns & 0xffff_ffff).unwrap_or(0);
        let cred = AuthSys {
            stamp,
            machine_name: cfg.machine_name.clone(),
            uid: cfg.uid,
            gid: cfg.gid,
            gids: vec![],
        };
        let (cb_tx, cb_rx) = mpsc::channel(CB_QUEUE_DEPTH);
        let (lease_tx, _) = watch::channel(LeaseStatus {
            last_renewal_sent: None,
            lease: Duration::from_secs(u64::from(DEFAULT_LEASE_S)),
            client_epoch: 0,
        });
        let (reclaiming, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            cfg,
            connector,
            cred,
            verifier,
            conn: Mutex::new(ConnState::default()),
            recovery: tokio::sync::Mutex::new(()),
            opens: Mutex::new(HashMap::new()),
            next_open_id: AtomicU64::new(1),
            sink: Mutex::new(None),
            lease_tx,
            cb_tx,
            shutdown: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            reclaiming,
            rebinding: AtomicBool::new(false),
            recovering_revoked: AtomicBool::new(false),
            open_gen: AtomicU64::new(0),
            stats: ClientStats::default(),
            next_xid_seed: AtomicU64::new(u64::from(stamp)),
        });
        let cb_task = tokio::spawn(backchannel_loop(Arc::downgrade(&inner), cb_rx));
        inner.tasks.lock_unpoisoned().push(cb_task);
        let client = Self { inner };
        let deadline = Instant::now() + Duration::from_millis(client.inner.cfg.stall_limit_ms);
        client.inner.ensure_session(deadline).await?;
        // The lease time comes from the root (FATTR4_LEASE_TIME).
        let res = client
            .inner
            .compound(
                &|| {
                    Ok(vec![
                        NfsArgOp::Putrootfh,
                        wire::getattr(&[attr::LEASE_TIME]),
                    ])
                },
                CallFlags::READ_ONLY,
            )
            .await?;
        if let Some(NfsResOp::Getattr(Ok(a))) = res.get(1) {
            let a = Attrs::from_fattr4(&a.obj_attributes)?;
            if let Some(s) = a.lease_time_s.filter(|s| *s > 0) {
                client
                    .inner
                    .lease_tx
                    .send_modify(|l| l.lease = Duration::from_secs(u64::from(s)));
            }
        }
        let renew = tokio::spawn(renew_loop(Arc::downgrade(&client.inner)));
        client.inner.tasks.lock_unpoisoned().push(renew);
        Ok(client)
    }

    /// Counters of what the client did.
    pub fn stats(&self) -> ClientStatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The lease time the server announced.
    pub fn lease(&self) -> Duration {
        self.inner.lease_tx.borrow().lease
    }

    /// The current session id (for tests and logs).
    pub fn session_id(&self) -> Option<SessionId> {
        self.inner
            .conn
            .lock_unpoisoned()
            .session
            .as_ref()
            .map(|s| s.id)
    }

    /// The current client ID.
    pub fn client_id(&self) -> Option<ClientId> {
        self.inner.conn.lock_unpoisoned().clientid
    }

    /// Whether SP4_MACH_CRED state protection is in force.
    pub fn uses_mach_cred(&self) -> bool {
        self.inner.conn.lock_unpoisoned().mach_cred
    }

    /// Fore-channel slots granted by the server.
    pub fn fore_slots(&self) -> usize {
        self.inner
            .conn
            .lock_unpoisoned()
            .session
            .as_ref()
            .map_or(0, |s| s.slots.max_slots())
    }

    /// Closes the current connection as if the network failed (fault injection for tests and
    /// the CLI's `demo`); the next request reconnects and binds the new connection.
    pub fn drop_connection(&self) {
        let t = self.inner.conn.lock_unpoisoned().transport.clone();
        if let Some(t) = t {
            t.close("dropped on request");
        }
    }

    /// Sends one SEQUENCE-only compound now (what the renewal task does on idle).
    pub async fn renew(&self) -> Result<(), ClientError> {
        self.inner
            .compound(&|| Ok(vec![]), CallFlags::READ_ONLY)
            .await
            .map(|_| ())
    }

    /// Closes all opens still held, destroys the session and the client ID, and stops the
    /// background tasks. Errors are reported, but the client is stopped either way.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        let inner = &self.inner;
        let ids: Vec<u64> = inner.opens.lock_unpoisoned().keys().copied().collect();
        let mut first_err = None;
        for id in ids {
            if let Err(e) = inner.close_open(id).await {
                first_err.get_or_insert(e);
            }
        }
        inner.shutdown.store(true, Ordering::SeqCst);
        let (transport, session, clientid) = {
            let c = inner.conn.lock_unpoisoned();
            (c.transport.clone(), c.session.clone(), c.clientid)
        };
        if let Some(t) = transport.filter(|t| !t.is_closed()) {
            if let Some(s) = session {
                s.slots.close();
                if let Err(e) = inner
                    .plain_call(&t, vec![NfsArgOp::DestroySession(s.id)])
                    .await
                {
                    first_err.get_or_insert(e);
                }
            }
            if let Some(c) = clientid {
                match inner
                    .plain_call(&t, vec![NfsArgOp::DestroyClientid(c)])
                    .await
                {
                    Ok(_) => {}
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            t.close("shutdown");
        }
        for t in inner.tasks.lock_unpoisoned().drain(..) {
            t.abort();
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Inner {
    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn sink(&self) -> Option<Arc<dyn CallbackSink>> {
        self.sink.lock_unpoisoned().as_ref().and_then(Weak::upgrade)
    }

    fn stall_deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.cfg.stall_limit_ms)
    }

    /// The current client ID.
    pub(crate) fn client_id_snapshot(&self) -> Option<ClientId> {
        self.conn.lock_unpoisoned().clientid
    }

    /// Max READ/WRITE payload for the current session.
    pub(crate) fn max_io_bytes(&self) -> u32 {
        let c = self.conn.lock_unpoisoned();
        let by_session = c.session.as_ref().map_or(u32::MAX, |s| {
            s.fore
                .maxrequestsize
                .min(s.fore.maxresponsesize)
                .saturating_sub(COMPOUND_OVERHEAD_BYTES)
        });
        self.cfg.max_rw_bytes.min(by_session).max(512)
    }

    /// A sessionless compound (EXCHANGE_ID, CREATE_SESSION, BIND_CONN_TO_SESSION, DESTROY_*).
    async fn plain_call(
        &self,
        t: &Transport,
        ops: Vec<NfsArgOp>,
    ) -> Result<Result<Vec<NfsResOp>, OpFailure>, ClientError> {
        let sent: Vec<u32> = ops.iter().map(NfsArgOp::opnum).collect();
        let args = wire::encode_compound("", ops);
        let reply = t
            .call(NFS_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, &self.cred, &args)
            .await?;
        let res = wire::decode_compound(&reply, &sent)?;
        Ok(match res.failure {
            Some(f) => Err(f),
            None => Ok(res.results),
        })
    }

    /// Returns a delegation in the background (we never keep them).
    pub(crate) fn return_delegation(self: &Arc<Self>, fh: FileHandle, stateid: Stateid) {
        let me = self.clone();
        tokio::spawn(async move {
            let build = move || {
                Ok(vec![
                    NfsArgOp::Putfh(fh.clone()),
                    NfsArgOp::Delegreturn(stateid),
                ])
            };
            match me.compound(&build, CallFlags::STATEFUL).await {
                Ok(_) => bump(&me.stats.delegations_returned),
                Err(e) => tracing::warn!(error = %e, "DELEGRETURN failed"),
            }
        });
    }

    /// CLOSE of an open the client holds, forgetting it.
    pub(crate) async fn close_open(self: &Arc<Self>, id: u64) -> Result<(), ClientError> {
        let Some(st) = self.opens.lock_unpoisoned().get(&id).cloned() else {
            return Err(ClientError::Invalid(format!("open {id} is not held")));
        };
        let me = self.clone();
        let fh = st.fh.clone();
        let build = move || {
            let sid = me
                .opens
                .lock_unpoisoned()
                .get(&id)
                .map_or(Stateid::default(), |o| o.stateid);
            Ok(vec![NfsArgOp::Putfh(fh.clone()), wire::close(sid)])
        };
        let r = self.compound(&build, CallFlags::STATEFUL).await;
        self.opens.lock_unpoisoned().remove(&id);
        match r {
            Ok(_) => Ok(()),
            // After a restart without grace the open may be gone already.
            Err(ClientError::Nfs {
                status: NfsStat::BAD_STATEID | NfsStat::EXPIRED | NfsStat::STALE_STATEID,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
