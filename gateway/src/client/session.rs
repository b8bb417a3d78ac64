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

enum Attempt {
    Reply(Vec<u8>, Instant),
    SessionChanged,
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

    async fn new_transport(&self) -> Result<Arc<Transport>, ClientError> {
        let timeout = Duration::from_millis(self.cfg.connect_timeout_ms);
        let stream = match tokio::time::timeout(timeout, self.connector.connect()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ClientError::Connect {
                    addr: self.connector.describe(),
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: self.connector.describe(),
                    detail: format!("no connection within {} ms", self.cfg.connect_timeout_ms),
                })
            }
        };
        bump(&self.stats.connects);
        // Different xid ranges per connection so a late reply can never match a new call.
        let seed = self.next_xid_seed.fetch_add(0x0100_0000, Ordering::Relaxed);
        let first_xid = u32::try_from(seed & 0xffff_ffff).unwrap_or(1);
        Ok(Transport::start(
            stream,
            self.cfg.limits,
            first_xid,
            self.cb_tx.clone(),
        ))
    }

    /// The current session, establishing client ID and session if there is none.
    async fn ensure_session(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<Arc<Session>, ClientError> {
        if let Some(s) = self.conn.lock_unpoisoned().session.clone() {
            return Ok(s);
        }
        let _g = self.recovery.lock().await;
        if let Some(s) = self.conn.lock_unpoisoned().session.clone() {
            return Ok(s);
        }
        self.establish_locked(deadline).await
    }

    /// The current live transport, reconnecting (and binding it to the session) if needed.
    async fn ensure_transport(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<(Arc<Transport>, u64), ClientError> {
        {
            let c = self.conn.lock_unpoisoned();
            if let Some(t) = c.transport.as_ref().filter(|t| !t.is_closed()) {
                return Ok((t.clone(), c.conn_gen));
            }
        }
        let _g = self.recovery.lock().await;
        self.reconnect_locked(deadline).await?;
        let c = self.conn.lock_unpoisoned();
        match c.transport.as_ref() {
            Some(t) => Ok((t.clone(), c.conn_gen)),
            None => Err(ClientError::ConnectionLost(
                "no transport after reconnect".into(),
            )),
        }
    }

    /// With the recovery lock held: make sure there is a live transport bound to the session.
    async fn reconnect_locked(self: &Arc<Self>, deadline: Instant) -> Result<(), ClientError> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF_MS;
        loop {
            if self.is_shutdown() {
                return Err(ClientError::Shutdown);
            }
            let (live, session) = {
                let c = self.conn.lock_unpoisoned();
                (
                    c.transport.as_ref().is_some_and(|t| !t.is_closed()),
                    c.session.clone(),
                )
            };
            if live {
                return Ok(());
            }
            let err = match self.new_transport().await {
                Ok(t) => match &session {
                    None => {
                        self.install_transport(t);
                        return Ok(());
                    }
                    Some(s) => match self
                        .plain_call(&t, vec![wire::bind_conn_to_session(s.id)])
                        .await
                    {
                        Ok(Ok(_)) => {
                            bump(&self.stats.binds);
                            tracing::info!("reconnected and bound the connection to the session");
                            self.install_transport(t);
                            return Ok(());
                        }
                        Ok(Err(f))
                            if matches!(
                                f.status,
                                NfsStat::BADSESSION
                                    | NfsStat::DEADSESSION
                                    | NfsStat::STALE_CLIENTID
                            ) =>
                        {
                            tracing::info!(status = %f.status, "session gone after reconnect: creating a new one");
                            self.install_transport(t);
                            self.drop_session_locked();
                            return Ok(());
                        }
                        Ok(Err(f)) => ClientError::Nfs {
                            op: "BIND_CONN_TO_SESSION",
                            status: f.status,
                        },
                        Err(e) => e,
                    },
                },
                Err(e) => e,
            };
            if Instant::now() + Duration::from_millis(backoff) > deadline {
                return Err(ClientError::RecoveryTimeout {
                    elapsed_ms: elapsed_ms(started),
                    last: err.to_string(),
                });
            }
            tracing::debug!(error = %err, backoff_ms = backoff, "reconnect failed; retrying");
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff_ms.max(FIRST_BACKOFF_MS));
        }
    }

    fn install_transport(&self, t: Arc<Transport>) {
        let mut c = self.conn.lock_unpoisoned();
        if let Some(old) = c.transport.replace(t) {
            old.close("replaced");
        }
        c.conn_gen += 1;
    }

    fn drop_session_locked(&self) {
        let mut c = self.conn.lock_unpoisoned();
        if let Some(s) = c.session.take() {
            s.slots.close();
        }
    }

    /// With the recovery lock held: client ID (if needed) and a new session.
    async fn establish_locked(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<Arc<Session>, ClientError> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF_MS;
        loop {
            if self.is_shutdown() {
                return Err(ClientError::Shutdown);
            }
            let err = match self.try_establish(deadline).await {
                Ok(s) => return Ok(s),
                Err(e) => e,
            };
            if !(err.is_transport()
                || matches!(
                    err,
                    ClientError::Nfs {
                        status: NfsStat::DELAY,
                        ..
                    }
                ))
            {
                return Err(err);
            }
            if Instant::now() + Duration::from_millis(backoff) > deadline {
                return Err(ClientError::RecoveryTimeout {
                    elapsed_ms: elapsed_ms(started),
                    last: err.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff_ms.max(FIRST_BACKOFF_MS));
        }
    }

    async fn try_establish(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<Arc<Session>, ClientError> {
        self.reconnect_locked(deadline).await?;
        if let Some(s) = self.conn.lock_unpoisoned().session.clone() {
            return Ok(s);
        }
        let t = self
            .conn
            .lock_unpoisoned()
            .transport
            .clone()
            .ok_or_else(|| ClientError::ConnectionLost("no transport".into()))?;
        let (clientid, seq) = {
            let c = self.conn.lock_unpoisoned();
            (c.clientid, c.create_seq)
        };
        if let Some(cid) = clientid {
            match self.create_session(&t, cid, seq).await {
                Ok(s) => return Ok(s),
                Err(ClientError::Nfs {
                    status: NfsStat::STALE_CLIENTID | NfsStat::EXPIRED,
                    ..
                }) => {
                    tracing::info!("client ID is stale: the server lost our state (restart?)");
                    self.conn.lock_unpoisoned().clientid = None;
                }
                Err(e) => return Err(e),
            }
        }
        let had_client = self.conn.lock_unpoisoned().client_epoch > 0;
        let (cid, seq) = self.exchange_id(&t).await?;
        let session = self.create_session(&t, cid, seq).await?;
        let epoch = {
            let mut c = self.conn.lock_unpoisoned();
            c.client_epoch += 1;
            c.client_epoch
        };
        self.lease_tx.send_modify(|l| l.client_epoch = epoch);
        bump(&self.stats.client_ids);
        let have_opens = !self.opens.lock_unpoisoned().is_empty();
        if had_client && have_opens {
            // Reclaim runs outside the recovery lock: its compounds need the session.
            self.reclaiming.send_replace(true);
            let me = self.clone();
            let h = tokio::spawn(me.reclaim());
            self.tasks.lock_unpoisoned().push(h);
        } else {
            // Nothing to reclaim: tell the server so that it can end our part of the grace.
            match self
                .plain_session_call(&t, &session, vec![NfsArgOp::ReclaimComplete(false)])
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(f)) if f.status == NfsStat::COMPLETE_ALREADY => {}
                Ok(Err(f)) => tracing::warn!(status = %f.status, "RECLAIM_COMPLETE failed"),
                Err(e) => return Err(e),
            }
        }
        Ok(session)
    }

    /// A compound with SEQUENCE on `session` over `t`, without recovery (used inside recovery).
    async fn plain_session_call(
        &self,
        t: &Transport,
        session: &Arc<Session>,
        ops: Vec<NfsArgOp>,
    ) -> Result<Result<Vec<NfsResOp>, OpFailure>, ClientError> {
        let slot = session
            .slots
            .acquire()
            .await
            .ok_or_else(|| ClientError::Protocol("session closed".into()))?;
        let mut all = vec![wire::sequence(
            session.id,
            slot.seqid,
            slot.slot,
            slot.highest_slotid,
            false,
        )];
        all.extend(ops);
        let sent_at = Instant::now();
        let r = self.plain_call(t, all).await?;
        match r {
            Ok(res) => {
                slot.complete();
                self.note_renewal(sent_at);
                Ok(Ok(res.into_iter().skip(1).collect()))
            }
            Err(f) if f.opnum == wire::opnum::SEQUENCE => {
                slot.abandon();
                Ok(Err(f))
            }
            Err(f) => {
                slot.complete();
                self.note_renewal(sent_at);
                Ok(Err(f))
            }
        }
    }

    async fn exchange_id(&self, t: &Transport) -> Result<(ClientId, u32), ClientError> {
        let mut mach = self.cfg.request_mach_cred;
        loop {
            let op = wire::exchange_id(
                self.verifier,
                self.cfg.owner_id.as_bytes().to_vec(),
                exchgid::USE_PNFS_MDS,
                mach,
            );
            match self.plain_call(t, vec![op]).await? {
                Ok(res) => {
                    let Some(NfsResOp::ExchangeId(Ok(e))) = res.into_iter().next() else {
                        return Err(ClientError::Protocol("EXCHANGE_ID without result".into()));
                    };
                    let (clientid, seqid, flags) = (e.clientid, e.sequenceid, e.flags);
                    let mut c = self.conn.lock_unpoisoned();
                    c.clientid = Some(clientid);
                    c.create_seq = seqid;
                    c.mach_cred = matches!(e.state_protect, p::StateProtectR::MachCred(_));
                    tracing::info!(clientid, flags, mach_cred = c.mach_cred, "EXCHANGE_ID done");
                    return Ok((clientid, seqid));
                }
                Err(f) if mach && !matches!(f.status, NfsStat::DELAY | NfsStat::CLID_INUSE) => {
                    // The server does not offer SP4_MACH_CRED with AUTH_SYS (Linux nfsd requires
                    // an integrity-protected transport): fall back to SP4_NONE.
                    tracing::info!(status = %f.status, "SP4_MACH_CRED refused; using SP4_NONE");
                    mach = false;
                }
                Err(f) => {
                    return Err(ClientError::Nfs {
                        op: "EXCHANGE_ID",
                        status: f.status,
                    })
                }
            }
        }
    }

    async fn create_session(
        &self,
        t: &Transport,
        clientid: ClientId,
        seq: u32,
    ) -> Result<Arc<Session>, ClientError> {
        let rw = self.cfg.max_rw_bytes;
        let fore = ChannelAttrs {
            headerpadsize: 0,
            maxrequestsize: rw.saturating_add(COMPOUND_OVERHEAD_BYTES * 8),
            maxresponsesize: rw.saturating_add(COMPOUND_OVERHEAD_BYTES * 8),
            maxresponsesize_cached: 64 * 1024,
            maxoperations: 16,
            maxrequests: self.cfg.fore_slots,
            rdma_ird: None,
        };
        let back = ChannelAttrs {
            headerpadsize: 0,
            maxrequestsize: 16 * 1024,
            maxresponsesize: 16 * 1024,
            maxresponsesize_cached: 16 * 1024,
            maxoperations: 8,
            maxrequests: self.cfg.back_slots,
            rdma_ird: None,
        };
        let op = NfsArgOp::CreateSession(p::CreateSessionArgs {
            clientid,
            sequence: seq,
            flags: CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
            fore_chan_attrs: fore,
            back_chan_attrs: back,
            cb_program: self.cfg.cb_program,
            sec_parms: vec![p::CallbackSecParms::Sys(self.cred.clone())],
        });
        match self.plain_call(t, vec![op]).await? {
            Ok(res) => {
                let Some(NfsResOp::CreateSession(Ok(created))) = res.into_iter().next() else {
                    return Err(ClientError::Protocol(
                        "CREATE_SESSION without result".into(),
                    ));
                };
                let (session, flags) = (created.sessionid, created.flags);
                let (fore, back) = (created.fore_chan_attrs, created.back_chan_attrs);
                if flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN == 0 {
                    tracing::warn!("server did not bind the connection for callbacks");
                }
                let mut c = self.conn.lock_unpoisoned();
                c.create_seq = seq.wrapping_add(1);
                c.session_gen += 1;
                let s = Arc::new(Session {
                    id: session,
                    gen: c.session_gen,
                    slots: SlotTable::new(fore.maxrequests),
                    cb_slots: Arc::new(CbSlotTable::new(back.maxrequests)),
                    fore,
                });
                if let Some(old) = c.session.replace(s.clone()) {
                    old.slots.close();
                }
                bump(&self.stats.sessions);
                tracing::info!(
                    slots = fore.maxrequests,
                    back_slots = back.maxrequests,
                    "session created"
                );
                Ok(s)
            }
            Err(f) => Err(ClientError::Nfs {
                op: "CREATE_SESSION",
                status: f.status,
            }),
        }
    }

    fn note_renewal(&self, sent_at: Instant) {
        self.lease_tx.send_if_modified(|l| {
            if l.last_renewal_sent.is_none_or(|t| t < sent_at) {
                l.last_renewal_sent = Some(sent_at);
                true
            } else {
                false
            }
        });
    }

    /// The connection `conn_gen` failed: close it so the next user reconnects.
    fn connection_failed(&self, conn_gen: u64) {
        let c = self.conn.lock_unpoisoned();
        if c.conn_gen == conn_gen {
            if let Some(t) = &c.transport {
                t.close("call failed");
            }
        }
    }

    /// The session `gen` is gone (BADSESSION, …): create a new one unless someone did.
    async fn session_failed(
        self: &Arc<Self>,
        gen: u64,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        let _g = self.recovery.lock().await;
        let current = self.conn.lock_unpoisoned().session.as_ref().map(|s| s.gen);
        if current == Some(gen) {
            self.drop_session_locked();
        }
        if self.conn.lock_unpoisoned().session.is_none() {
            self.establish_locked(deadline).await?;
        }
        Ok(())
    }

    fn handle_status_flags(self: &Arc<Self>, flags: u32) {
        if flags & (seq4::CB_PATH_DOWN | seq4::CB_PATH_DOWN_SESSION | seq4::BACKCHANNEL_FAULT) != 0
            && !self.rebinding.swap(true, Ordering::SeqCst)
        {
            tracing::info!(
                flags,
                "server reports the callback path down: rebinding the connection"
            );
            let me = self.clone();
            tokio::spawn(async move {
                let _g = me.recovery.lock().await;
                let (t, s) = {
                    let c = me.conn.lock_unpoisoned();
                    (c.transport.clone(), c.session.clone())
                };
                if let (Some(t), Some(s)) = (t, s) {
                    match me
                        .plain_call(&t, vec![wire::bind_conn_to_session(s.id)])
                        .await
                    {
                        Ok(Ok(_)) => bump(&me.stats.binds),
                        other => {
                            tracing::warn!(?other, "rebinding failed: dropping the connection");
                            t.close("rebind failed");
                        }
                    }
                }
                me.rebinding.store(false, Ordering::SeqCst);
            });
        }
        if flags
            & (seq4::EXPIRED_ALL_STATE_REVOKED
                | seq4::EXPIRED_SOME_STATE_REVOKED
                | seq4::ADMIN_STATE_REVOKED
                | seq4::RECALLABLE_STATE_REVOKED)
            != 0
            && !self.recovering_revoked.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                flags,
                "server revoked state of this client: testing stateids"
            );
            let me = self.clone();
            let h = tokio::spawn(me.recover_revoked(flags));
            self.tasks.lock_unpoisoned().push(h);
        }
    }

    /// After SEQ4_STATUS_*_REVOKED: TEST_STATEID every open stateid (and, when only
    /// recallable state was revoked, every layout stateid); FREE_STATEID each one the server
    /// no longer honours (so the flag clears) and re-open the revoked opens with CLAIM_FH.
    /// Then the pNFS layer drops the layouts: only the revoked ones after
    /// RECALLABLE_STATE_REVOKED ([`CallbackSink::layouts_revoked`]), all of them after the
    /// other flags ([`CallbackSink::state_lost`]). A recovery that found nothing revoked keeps
    /// the next one [`REVOKED_RECHECK_MIN`] away: a server may keep the flag up for state
    /// this client has already forgotten.
    fn recover_revoked(self: Arc<Self>, flags: u32) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let only_recallable = flags
                & (seq4::EXPIRED_ALL_STATE_REVOKED
                    | seq4::EXPIRED_SOME_STATE_REVOKED
                    | seq4::ADMIN_STATE_REVOKED)
                == 0;
            let opens: Vec<(u64, OpenState)> = self
                .opens
                .lock_unpoisoned()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            let layouts: Vec<Stateid> = match (only_recallable, self.sink()) {
                (true, Some(sink)) => sink.layout_stateids(),
                _ => Vec::new(),
            };
            let mut sids: Vec<Stateid> = opens.iter().map(|(_, o)| o.stateid).collect();
            sids.extend(layouts.iter().copied());
            // TEST_STATEID in chunks the protocol allows; any failure ends the testing (what
            // was found so far is still recovered).
            let mut revoked: Vec<Stateid> = Vec::new();
            for chunk in sids.chunks(NFS4_MAX_TEST_STATEIDS) {
                let ids = chunk.to_vec();
                match self
                    .compound(
                        &move || {
                            Ok(vec![NfsArgOp::TestStateid(p::TestStateidArgs {
                                stateids: ids.clone(),
                            })])
                        },
                        CallFlags::READ_ONLY,
                    )
                    .await
                {
                    Ok(r) => {
                        let Some(NfsResOp::TestStateid(Ok(t))) = r.into_iter().next() else {
                            tracing::error!("TEST_STATEID after revocation: no result");
                            break;
                        };
                        revoked.extend(
                            chunk
                                .iter()
                                .zip(t.status_codes)
                                .filter(|(_, status)| !status.is_ok())
                                .map(|(sid, _)| *sid),
                        );
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "TEST_STATEID after revocation failed");
                        break;
                    }
                }
            }
            for &sid in &revoked {
                if let Err(e) = self
                    .compound(
                        &move || Ok(vec![NfsArgOp::FreeStateid(sid)]),
                        CallFlags::READ_ONLY,
                    )
                    .await
                {
                    tracing::warn!(error = %e, "FREE_STATEID of a revoked stateid failed");
                }
            }
            let is_revoked = |sid: &Stateid| revoked.iter().any(|r| r.other == sid.other);
            let revoked_layouts: Vec<Stateid> =
                layouts.iter().filter(|l| is_revoked(l)).copied().collect();
            let mut reopened = 0u32;
            for (id, st) in &opens {
                if !is_revoked(&st.stateid) {
                    continue;
                }
                match self.reopen(st, false).await {
                    Ok(new) => {
                        reopened += 1;
                        bump(&self.stats.reopened_opens);
                        if let Some(o) = self.opens.lock_unpoisoned().get_mut(id) {
                            o.stateid = new;
                            self.open_gen.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(e) => {
                        tracing::error!(path = %st.path, error = %e, "re-open after revocation failed")
                    }
                }
            }
            if let Some(sink) = self.sink() {
                if !only_recallable {
                    // Layout state may be revoked even when the opens survived.
                    sink.state_lost();
                } else if !revoked_layouts.is_empty() {
                    sink.layouts_revoked(&revoked_layouts);
                }
            }
            tracing::info!(
                reopened,
                layouts = revoked_layouts.len(),
                "recovery from revoked state done"
            );
            if only_recallable && reopened == 0 && revoked_layouts.is_empty() {
                tokio::time::sleep(REVOKED_RECHECK_MIN).await;
            }
            self.recovering_revoked.store(false, Ordering::SeqCst);
        })
    }

    /// Runs one compound (SEQUENCE + `build()`), with every retry the module docs list. `build`
    /// is called again for each new attempt so it can pick up stateids changed by recovery.
    pub(crate) async fn compound(
        self: &Arc<Self>,
        build: &(dyn Fn() -> Result<Vec<NfsArgOp>, ClientError> + Send + Sync),
        flags: CallFlags,
    ) -> Result<Vec<NfsResOp>, ClientError> {
        match self.compound_raw(build, flags).await? {
            Ok(r) => Ok(r),
            Err(f) => Err(ClientError::Nfs {
                op: wire::op_name(f.opnum),
                status: f.status,
            }),
        }
    }

    /// Like [`Inner::compound`] but returns an op failure as a value (for TOOSMALL's count).
    pub(crate) async fn compound_raw(
        self: &Arc<Self>,
        build: &(dyn Fn() -> Result<Vec<NfsArgOp>, ClientError> + Send + Sync),
        flags: CallFlags,
    ) -> Result<Result<Vec<NfsResOp>, OpFailure>, ClientError> {
        let deadline = self.stall_deadline();
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF_MS;
        let mut misordered = 0u32;
        let mut last_err = String::new();
        loop {
            if self.is_shutdown() {
                return Err(ClientError::Shutdown);
            }
            if Instant::now() > deadline {
                return Err(ClientError::RecoveryTimeout {
                    elapsed_ms: elapsed_ms(started),
                    last: last_err,
                });
            }
            let session = self.ensure_session(deadline).await?;
            let Some(slot) = session.slots.acquire().await else {
                continue; // the session was replaced while we waited
            };
            let open_gen_at_build = self.open_gen.load(Ordering::SeqCst);
            let ops = build()?;
            let sent: Vec<u32> = std::iter::once(wire::opnum::SEQUENCE)
                .chain(ops.iter().map(NfsArgOp::opnum))
                .collect();
            let mut all = Vec::with_capacity(ops.len() + 1);
            all.push(wire::sequence(
                session.id,
                slot.seqid,
                slot.slot,
                slot.highest_slotid,
                flags.cache_this,
            ));
            all.extend(ops);
            let args = wire::encode_compound("", all);
            // Same slot and seqid across reconnects: the server executes the request once and
            // answers a retry from its reply cache.
            let attempt = loop {
                let (t, conn_gen) = self.ensure_transport(deadline).await?;
                if self.conn.lock_unpoisoned().session.as_ref().map(|s| s.gen) != Some(session.gen)
                {
                    break Attempt::SessionChanged;
                }
                let sent_at = Instant::now();
                match t
                    .call(NFS_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, &self.cred, &args)
                    .await
                {
                    Ok(bytes) => break Attempt::Reply(bytes, sent_at),
                    Err(e) if e.is_transport() => {
                        tracing::debug!(error = %e, "call failed on the transport; reconnecting");
                        last_err = e.to_string();
                        self.connection_failed(conn_gen);
                        if Instant::now() > deadline {
                            return Err(ClientError::RecoveryTimeout {
                                elapsed_ms: elapsed_ms(started),
                                last: last_err,
                            });
                        }
                    }
                    Err(e) => return Err(e),
                }
            };
            let (bytes, sent_at) = match attempt {
                Attempt::Reply(b, t) => (b, t),
                Attempt::SessionChanged => {
                    slot.abandon();
                    continue;
                }
            };
            let CompoundRes { results, failure } = wire::decode_compound(&bytes, &sent)?;
            if results.is_empty() {
                let f = failure.unwrap_or(OpFailure {
                    opnum: wire::opnum::SEQUENCE,
                    status: NfsStat::SERVERFAULT,
                    min_count: None,
                });
                last_err = format!("SEQUENCE: {}", f.status);
                match f.status {
                    NfsStat::BADSESSION
                    | NfsStat::DEADSESSION
                    | NfsStat::STALE_CLIENTID
                    | NfsStat::EXPIRED => {
                        slot.abandon();
                        self.session_failed(session.gen, deadline).await?;
                    }
                    NfsStat::DELAY => {
                        slot.abandon();
                        bump(&self.stats.delay_retries);
                        tokio::time::sleep(Duration::from_millis(backoff)).await;
                        backoff = (backoff * 2).min(self.cfg.max_backoff_ms.max(FIRST_BACKOFF_MS));
                    }
                    NfsStat::BADSLOT | NfsStat::BAD_HIGH_SLOT => {
                        session.slots.shrink_below(slot.slot);
                        slot.abandon();
                    }
                    NfsStat::SEQ_MISORDERED if misordered < MAX_MISORDERED_RETRIES => {
                        misordered += 1;
                        session.slots.resync(slot.slot, slot.seqid);
                        slot.abandon();
                    }
                    NfsStat::RETRY_UNCACHED_REP | NfsStat::SEQ_FALSE_RETRY if flags.idempotent => {
                        slot.complete();
                    }
                    _ => {
                        slot.complete();
                        return Ok(Err(f));
                    }
                }
                continue;
            }
            let mut results = results.into_iter();
            if let Some(NfsResOp::Sequence(Ok(seq))) = results.next() {
                slot.complete();
                session
                    .slots
                    .update_limits(seq.highest_slotid, seq.target_highest_slotid);
                self.note_renewal(sent_at);
                if seq.status_flags != 0 {
                    self.handle_status_flags(seq.status_flags);
                }
            } else {
                return Err(ClientError::Protocol("first result is not SEQUENCE".into()));
            }
            let results: Vec<NfsResOp> = results.collect();
            let Some(f) = failure else {
                return Ok(Ok(results));
            };
            last_err = format!("{}: {}", wire::op_name(f.opnum), f.status);
            match f.status {
                NfsStat::DELAY => {}
                NfsStat::GRACE if !flags.reclaim => {}
                NfsStat::BADSESSION | NfsStat::DEADSESSION | NfsStat::STALE_CLIENTID => {
                    self.session_failed(session.gen, deadline).await?;
                    continue;
                }
                // A retry on the same slot+seqid whose reply the server did not cache (some
                // servers report it on the op after SEQUENCE): safe to send again as new.
                NfsStat::RETRY_UNCACHED_REP if flags.idempotent => continue,
                NfsStat::STALE_STATEID | NfsStat::BAD_STATEID | NfsStat::EXPIRED
                    if flags.uses_open_state
                        && (self.open_gen.load(Ordering::SeqCst) != open_gen_at_build
                            || self.wait_reclaim(deadline).await) =>
                {
                    continue;
                }
                _ => return Ok(Err(f)),
            }
            bump(&self.stats.delay_retries);
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            backoff = (backoff * 2).min(self.cfg.max_backoff_ms.max(FIRST_BACKOFF_MS));
        }
    }

    /// If a reclaim is running, waits for it (true: retry the request with the new stateid).
    async fn wait_reclaim(&self, deadline: Instant) -> bool {
        let mut rx = self.reclaiming.subscribe();
        if !*rx.borrow() {
            return false;
        }
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|r| !*r)).await;
        true
    }

    /// Reboot recovery: re-open every file (CLAIM_PREVIOUS, or CLAIM_FH when the server has
    /// no grace period for us), let the pNFS layer reclaim its layout commits, then
    /// RECLAIM_COMPLETE.
    ///
    /// Boxed with an explicit `Send` type: it is spawned from inside session establishment,
    /// which its own compounds call, and that cycle defeats auto-trait inference.
    fn reclaim(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move { self.reclaim_inner().await })
    }

    async fn reclaim_inner(self: Arc<Self>) {
        let ids: Vec<u64> = self.opens.lock_unpoisoned().keys().copied().collect();
        let mut lost = false;
        for id in ids {
            let Some(st) = self.opens.lock_unpoisoned().get(&id).cloned() else {
                continue;
            };
            match self.reopen(&st, true).await {
                Ok(sid) => {
                    bump(&self.stats.reclaimed_opens);
                    if let Some(o) = self.opens.lock_unpoisoned().get_mut(&id) {
                        o.stateid = sid;
                        self.open_gen.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Err(ClientError::Nfs {
                    status: NfsStat::NO_GRACE | NfsStat::RECLAIM_BAD | NfsStat::RECLAIM_CONFLICT,
                    ..
                }) => {
                    lost = true;
                    match self.reopen(&st, false).await {
                        Ok(sid) => {
                            bump(&self.stats.reopened_opens);
                            if let Some(o) = self.opens.lock_unpoisoned().get_mut(&id) {
                                o.stateid = sid;
                                self.open_gen.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            tracing::error!(path = %st.path, error = %e, "re-open after server restart failed")
                        }
                    }
                }
                Err(e) => tracing::error!(path = %st.path, error = %e, "reclaim of an open failed"),
            }
        }
        if let Some(sink) = self.sink() {
            if lost {
                sink.state_lost();
            } else {
                let grace = self.lease_tx.borrow().lease;
                if tokio::time::timeout(grace, sink.server_restarted())
                    .await
                    .is_err()
                {
                    tracing::warn!("pNFS reclaim did not finish within the grace period");
                }
            }
        }
        let r = self
            .compound(
                &|| Ok(vec![NfsArgOp::ReclaimComplete(false)]),
                CallFlags {
                    reclaim: true,
                    ..CallFlags::READ_ONLY
                },
            )
            .await;
        match r {
            Ok(_)
            | Err(ClientError::Nfs {
                status: NfsStat::COMPLETE_ALREADY,
                ..
            }) => {}
            Err(e) => tracing::warn!(error = %e, "RECLAIM_COMPLETE failed"),
        }
        tracing::info!("reboot recovery done");
        self.reclaiming.send_replace(false);
    }

    async fn reopen(
        self: &Arc<Self>,
        st: &OpenState,
        previous: bool,
    ) -> Result<Stateid, ClientError> {
        let clientid = self.conn.lock_unpoisoned().clientid.unwrap_or(0);
        let (fh, access, owner) = (st.fh.clone(), st.access, st.owner.clone());
        let build = move || {
            Ok(vec![
                NfsArgOp::Putfh(fh.clone()),
                wire::open(
                    access | wire::share::WANT_NO_DELEG,
                    owner.clone(),
                    clientid,
                    p::OpenFlag::NoCreate,
                    if previous {
                        p::OpenClaim::Previous(p::OpenDelegationType::None)
                    } else {
                        p::OpenClaim::Fh
                    },
                ),
            ])
        };
        let flags = CallFlags {
            reclaim: previous,
            uses_open_state: false,
            ..CallFlags::STATEFUL
        };
        let res = self.compound(&build, flags).await?;
        match res.get(1) {
            Some(NfsResOp::Open(Ok(o))) => {
                if let Some(d) = wire::delegation_stateid(&o.delegation) {
                    self.return_delegation(st.fh.clone(), d);
                }
                Ok(o.stateid)
            }
            _ => Err(ClientError::Protocol("OPEN without result".into())),
        }
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

async fn renew_loop(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_shutdown() {
            return;
        }
        let (lease, last) = {
            let l = inner.lease_tx.borrow();
            (l.lease, l.last_renewal_sent)
        };
        let period = lease / 3;
        let due = last.map_or_else(Instant::now, |t| t + period);
        if Instant::now() >= due {
            bump(&inner.stats.renewals);
            if let Err(e) = inner.compound(&|| Ok(vec![]), CallFlags::READ_ONLY).await {
                tracing::warn!(error = %e, "lease renewal failed");
                drop(inner);
                tokio::time::sleep(Duration::from_millis(FIRST_BACKOFF_MS * 4)).await;
            }
            continue;
        }
        let mut lease_rx = inner.lease_tx.subscribe();
        drop(inner);
        // Wakes when due, or early when a compound renewed the lease (then re-computes).
        tokio::select! {
            () = tokio::time::sleep_until(due) => {}
            r = lease_rx.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}

async fn backchannel_loop(weak: Weak<Inner>, mut rx: mpsc::Receiver<IncomingCall>) {
    while let Some(call) = rx.recv().await {
        let Some(inner) = weak.upgrade() else { return };
        let (stat, body) = answer_callback(&inner, &call);
        if let Err(e) = call.reply.send(call.xid, stat, &body).await {
            tracing::debug!(error = %e, "callback reply not sent (connection gone)");
        }
    }
}

fn answer_callback(inner: &Arc<Inner>, call: &IncomingCall) -> (AcceptStat, Vec<u8>) {
    if call.prog != inner.cfg.cb_program {
        return (AcceptStat::ProgUnavail, vec![]);
    }
    if call.vers != NFS_CB_VERSION {
        return (
            AcceptStat::ProgMismatch {
                low: NFS_CB_VERSION,
                high: NFS_CB_VERSION,
            },
            vec![],
        );
    }
    match call.proc_num {
        CB_NULL => (AcceptStat::Success, vec![]),
        CB_COMPOUND => {
            let cbc = match cb::decode_cb_compound(&call.args) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "malformed CB_COMPOUND");
                    return (AcceptStat::GarbageArgs, vec![]);
                }
            };
            let session = inner.conn.lock_unpoisoned().session.clone();
            let Some(session) = session else {
                let res = pnfs_proto::nfs4::cb::CbCompoundRes {
                    status: NfsStat::BADSESSION,
                    tag: cbc.tag.clone(),
                    results: vec![],
                };
                return (AcceptStat::Success, pnfs_proto::xdr::to_bytes(&res));
            };
            let ctx = cb::CbContext {
                session: session.id,
                slots: &session.cb_slots,
                sink: inner.sink(),
            };
            // Counted before the pNFS layer sees the callback, so a test that saw the
            // callback also sees the count.
            bump(&inner.stats.callbacks);
            let (reply, follow) = cb::handle_cb_compound(&cbc, &ctx);
            for f in follow {
                match f {
                    FollowUp::ReturnDelegation { fh, stateid } => {
                        inner.return_delegation(fh, stateid)
                    }
                }
            }
            (AcceptStat::Success, reply)
        }
        _ => (AcceptStat::ProcUnavail, vec![]),
    }
}
