//! NFSv4.1 COMPOUND processing on `pnfs_proto`'s codecs: the server state (clients, sessions,
//! slots, opens, layouts) and every operation.
//!
//! A request is decoded by `Request::decode` — `pnfs_proto`'s `CompoundArgs` with its limits,
//! then every fattr4 it carries typed — before the state lock is taken and before any
//! operation runs, so a request that fails to decode changes nothing (the caller answers RPC
//! GARBAGE_ARGS). Operations run under one lock on [`State`]; nothing awaits while holding it
//! (callbacks are queued in `State::recalls` and sent by the server afterwards). Each
//! operation builds `pnfs_proto`'s result type; the whole `CompoundRes` is encoded once and
//! kept in the slot's replay cache as bytes.
//!
//! Modules, by responsibility:
//! - `attrs`: fattr4 in (settable attributes) and out (an inode's attributes).
//! - `session`: client ids, sessions and slots, leases, grace, stateid checks.
//! - `namespace`: file handles, lookup, getattr/verify, create, remove, rename, link,
//!   readdir, setattr.
//! - `io`: OPEN, CLOSE, OPEN_DOWNGRADE, READ, WRITE, COMMIT, CLONE.
//! - `layout`: devices, LAYOUTGET / LAYOUTCOMMIT / LAYOUTRETURN, recalls.
//! - `lock`: LOCK, LOCKT, LOCKU.
//! - `deleg`: read delegations: grant on OPEN, CB_RECALL, DELEGRETURN, revocation.
//! - `callback`: the CB_COMPOUNDs the server sends and their replies.

pub(crate) mod attrs;
pub(crate) mod callback;
pub(crate) mod deleg;
pub(crate) mod io;
pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod namespace;
pub(crate) mod session;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use pnfs_proto::nfs4::{CompoundArgs, CompoundRes, NfsArgOp, NfsResOp, NfsStat, OpResult, Stateid};
use pnfs_proto::xdr::{from_bytes, to_bytes, Decoder, Encoder, XdrResult};

use crate::fs::Fs;
use crate::out_queue::OutQueue;

pub use callback::Recall;
pub(crate) use session::{Client, Session};

/// Most operations in one COMPOUND (the session's ca_maxoperations).
pub const MAX_OPS: usize = 64;
/// Fore-channel slots per session.
pub const MAX_SLOTS: u32 = 64;
/// Largest READ/WRITE through the MDS.
pub const MAX_IO_BYTES: u32 = 1024 * 1024;
/// Largest RPC request/response we negotiate.
pub const MAX_RPC_BYTES: u32 = MAX_IO_BYTES + 64 * 1024;
/// Most bytes one RW LAYOUTGET allocates.
pub const MAX_RW_LAYOUT_BYTES: u64 = 64 << 20;
/// Most bytes one READ layout covers.
pub const MAX_READ_LAYOUT_BYTES: u64 = 1 << 30;

const FH_MAGIC: u32 = 0x504d_4453; // "PMDS"
/// Bytes of our file handles.
const FH_BYTES: usize = 16;

/// File handle of an inode.
pub fn fh_of(id: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.put_u32(FH_MAGIC);
    e.put_u32(0);
    e.put_u64(id);
    e.into_inner()
}

/// The inode of a file handle (BADHANDLE when it is not one of ours).
fn id_of(fh: &[u8]) -> Result<u64, NfsStat> {
    if fh.len() != FH_BYTES {
        return Err(NfsStat::BADHANDLE);
    }
    let mut d = Decoder::new(fh);
    if d.u32().ok() != Some(FH_MAGIC) || d.u32().ok() != Some(0) {
        return Err(NfsStat::BADHANDLE);
    }
    d.u64().map_err(|_| NfsStat::BADHANDLE)
}

// ---------------------------------------------------------------------------------------------
// Settings, connections, state
// ---------------------------------------------------------------------------------------------

/// Server settings the protocol layer needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lease time.
    pub lease: Duration,
    /// Grace period after a restart.
    pub grace: Duration,
    /// How long a recalled layout may stay before it is revoked.
    pub recall_timeout: Duration,
    /// Block size reported in layout_blksize.
    pub layout_blksize: u32,
}

/// Handle on a connection's writer and its pending callback replies.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// Connection id.
    pub id: u64,
    /// Records to send (bounded in bytes, see [`OutQueue`]).
    pub out: std::sync::Arc<OutQueue>,
    /// Callback replies awaited, by xid.
    pub pending:
        std::sync::Arc<std::sync::Mutex<HashMap<u32, tokio::sync::oneshot::Sender<Vec<u8>>>>>,
}

/// Who is calling.
#[derive(Debug, Clone, Default)]
pub struct Cred {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// The principal a client record is bound to (see [`Principal`]).
    pub principal: Principal,
}

/// The principal of a request as far as client records go (RFC 8881 §18.35.5 compares it when
/// a client owner comes back, §18.36.4 when a client ID is confirmed). We have no RPCSEC_GSS,
/// so for AUTH_SYS it is the credential's machine name and uid (the gid is left out: the same
/// client may send different group lists); any other flavour is the anonymous principal
/// (`None`), the same for every caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal(pub Option<(String, u32)>);

/// One byte range of a layout and its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seg {
    pub rw: bool,
    pub off: u64,
    pub end: u64,
    /// `Fs::cut_gen` when granted (fences late LAYOUTCOMMITs after a truncation).
    pub gen: u64,
}

/// What a stateid's `other` names.
#[derive(Debug)]
pub(crate) enum StateEntry {
    Open {
        clientid: u64,
        owner: Vec<u8>,
        file: u64,
        access: u32,
        /// OPEN4_SHARE_DENY_* held (RFC 8881 §9.7).
        deny: u32,
        seqid: u32,
    },
    Layout {
        clientid: u64,
        file: u64,
        seqid: u32,
        segs: Vec<Seg>,
        recalled: Option<Instant>,
    },
    /// A lock-owner's byte-range locks on a file (RFC 8881 §9, §18.10), under the open it
    /// was created from.
    Lock {
        clientid: u64,
        owner: Vec<u8>,
        file: u64,
        /// The open stateid's `other`.
        open: [u8; 12],
        seqid: u32,
        /// Held ranges as (offset, end exclusive, write), disjoint.
        ranges: Vec<(u64, u64, bool)>,
    },
    /// A read delegation of a file (RFC 8881 §10.4, `deleg`).
    Deleg {
        clientid: u64,
        file: u64,
        seqid: u32,
        /// When CB_RECALL was queued.
        recalled: Option<Instant>,
    },
}

impl StateEntry {
    fn clientid(&self) -> u64 {
        match self {
            Self::Open { clientid, .. }
            | Self::Layout { clientid, .. }
            | Self::Lock { clientid, .. }
            | Self::Deleg { clientid, .. } => *clientid,
        }
    }

    fn file(&self) -> u64 {
        match self {
            Self::Open { file, .. }
            | Self::Layout { file, .. }
            | Self::Lock { file, .. }
            | Self::Deleg { file, .. } => *file,
        }
    }
}

/// Most revoked layout stateids remembered per client; older ones are forgotten first.
pub(crate) const MAX_REVOKED_LAYOUTS_PER_CLIENT: usize = 256;

// Bounds on the state clients can make the server hold (records, sessions with their reply
// caches, stateids and what each stateid holds). Past one, the operation that would grow
// the state is refused with a status that lets the client go on: DELAY where the state
// frees itself (leases expire, opens close), NOSPC for sessions, LAYOUTTRYLATER for
// layouts (the client does the I/O through the MDS), LOCK_RANGE for lock ranges.

/// Most client records, confirmed or not (unconfirmed ones expire after a lease).
pub const MAX_CLIENT_RECORDS: usize = 4096;
/// Most sessions of one client.
pub const MAX_SESSIONS_PER_CLIENT: usize = 16;
/// Most sessions in all.
pub const MAX_SESSIONS: usize = 1024;
/// Most open, lock and layout stateids of one client (delegations have their own bounds,
/// `deleg`).
pub const MAX_STATEIDS_PER_CLIENT: usize = 16 * 1024;
/// Most stateids in all.
pub const MAX_STATEIDS: usize = 256 * 1024;
/// Most byte ranges one lock stateid holds.
pub const MAX_LOCK_RANGES_PER_STATEID: usize = 1024;
/// Most byte ranges (segments) one layout stateid holds.
pub const MAX_SEGS_PER_LAYOUT_STATEID: usize = 4096;

/// A layout revoked after a recall timeout, remembered so that the client learns of it
/// (RFC 8881 §18.46.3: SEQ4_STATUS_RECALLABLE_STATE_REVOKED, TEST_STATEID →
/// NFS4ERR_DELEG_REVOKED) until it acknowledges it: FREE_STATEID of the stateid, a late
/// LAYOUTRETURN of it, a new LAYOUTGET of the same file with an open stateid (it has started
/// over), or one lease after the flag was first reported. The last two exist because Linux answers the flag by
/// destroying all its layouts and never frees layout stateids: a flag kept until FREE_STATEID
/// would make it drop every layout on every SEQUENCE for as long as it stays mounted.
#[derive(Debug, Clone)]
pub(crate) struct RevokedLayout {
    pub clientid: u64,
    pub file: u64,
    /// When the flag first went out in a SEQUENCE reply to the client.
    pub reported: Option<Instant>,
    /// Revocation order (for forgetting the oldest first).
    pub serial: u64,
    /// A delegation (revoked a lease after its CB_RECALL, `deleg`), not a layout: only
    /// FREE_STATEID, DELEGRETURN's DELEG_REVOKED answer aside, or a lease after the report
    /// ends it.
    pub deleg: bool,
}

/// All server state.
#[derive(Debug)]
pub struct State {
    /// The file system.
    pub fs: Fs,
    pub(crate) settings: Settings,
    pub(crate) clients: HashMap<u64, Client>,
    pub(crate) sessions: HashMap<[u8; 16], Session>,
    pub(crate) states: HashMap<[u8; 12], StateEntry>,
    next_clientid: u64,
    next_state: u64,
    next_session: u64,
    grace_until: Option<Instant>,
    reclaim_pending: HashSet<Vec<u8>>,
    write_verf: [u8; 8],
    server_owner: Vec<u8>,
    /// Callbacks to send (drained by the server after each compound).
    pub(crate) recalls: Vec<Recall>,
    /// Count of CB_LAYOUTRECALLs sent.
    pub recalls_sent: u64,
    /// Count of layouts revoked after a recall timeout.
    pub revoked: u64,
    /// Layout stateids revoked after a recall timeout that their client has not yet
    /// acknowledged (see [`RevokedLayout`]); while a client has one, its SEQUENCE replies carry
    /// SEQ4_STATUS_RECALLABLE_STATE_REVOKED.
    pub(crate) revoked_layouts: HashMap<[u8; 12], RevokedLayout>,
    /// Count of clients whose lease expired (their state was dropped).
    pub expired_clients: u64,
    /// Count of CB_RECALLs (delegation recalls) sent.
    pub delegation_recalls_sent: u64,
    /// Count of delegations revoked a lease after their recall.
    pub delegations_revoked: u64,
}

impl State {
    /// New state over `fs`; starts a grace period if earlier boots had clients.
    pub fn new(fs: Fs, settings: Settings) -> Result<Self, crate::MdsError> {
        let known = fs.known_clients()?;
        let grace_until = if known.is_empty() {
            None
        } else {
            Some(Instant::now() + settings.grace)
        };
        let epoch = fs.epoch;
        let mut server_owner = b"pnfs-mds-".to_vec();
        server_owner.extend_from_slice(&fs.vol.volumes[0].uuid);
        Ok(Self {
            fs,
            settings,
            clients: HashMap::new(),
            sessions: HashMap::new(),
            states: HashMap::new(),
            next_clientid: 1,
            next_state: 1,
            next_session: 1,
            grace_until,
            reclaim_pending: known.into_iter().collect(),
            write_verf: epoch.to_be_bytes(),
            server_owner,
            recalls: Vec::new(),
            recalls_sent: 0,
            revoked: 0,
            revoked_layouts: HashMap::new(),
            expired_clients: 0,
            delegation_recalls_sent: 0,
            delegations_revoked: 0,
        })
    }

    fn epoch32(&self) -> u32 {
        u32::try_from(self.fs.epoch & 0xffff_ffff).unwrap_or(0)
    }

    /// True while the grace period lasts.
    pub fn in_grace(&mut self) -> bool {
        match self.grace_until {
            Some(t) if Instant::now() < t && !self.reclaim_pending.is_empty() => true,
            Some(_) => {
                tracing::info!("grace period over");
                self.grace_until = None;
                // RFC 8881 §8.4.3: a client that did not reclaim in this grace period has
                // lost its state for good and must not reclaim after a later restart either:
                // its stable record goes.
                for owner in std::mem::take(&mut self.reclaim_pending) {
                    if let Err(e) = self.fs.record_client(&owner, false) {
                        tracing::error!("forgetting a client that did not reclaim: {e}");
                    }
                }
                false
            }
            None => false,
        }
    }

    /// RFC 8881 §8.4.2: during the grace period, state-changing operations that are not
    /// reclaims and not done under state reclaimed in it get GRACE, since they could conflict
    /// with state a client has yet to reclaim. That is READ/WRITE/SETATTR(size) under a
    /// special stateid, and (as Linux nfsd does) REMOVE and RENAME (`sid` = None), which
    /// could take away a file someone is about to reclaim an open of. (OPEN, LAYOUTGET and
    /// LAYOUTCOMMIT check grace themselves.)
    pub(crate) fn refuse_in_grace(&mut self, sid: Option<&Stateid>) -> Result<(), NfsStat> {
        let special = sid.is_none_or(|s| s.other == [0; 12] || s.other == [0xff; 12]);
        if special && self.in_grace() {
            return Err(NfsStat::GRACE);
        }
        Ok(())
    }

    /// May client `cid` get another open, lock or layout stateid
    /// ([`MAX_STATEIDS_PER_CLIENT`], [`MAX_STATEIDS`])?
    pub(crate) fn room_for_stateid(&self, cid: u64) -> bool {
        self.states.len() < MAX_STATEIDS
            && self
                .states
                .values()
                .filter(|s| s.clientid() == cid && !matches!(s, StateEntry::Deleg { .. }))
                .count()
                < MAX_STATEIDS_PER_CLIENT
    }

    fn new_other(&mut self) -> [u8; 12] {
        let mut o = [0u8; 12];
        o[..4].copy_from_slice(&self.epoch32().to_be_bytes());
        o[4..].copy_from_slice(&self.next_state.to_be_bytes());
        self.next_state += 1;
        o
    }

    /// The error for a stateid we do not know: DELEG_REVOKED for a layout revoked after a
    /// recall timeout (RFC 8881 §15.1.5.5 covers layouts too), else BAD_STATEID.
    ///
    /// A stateid of an earlier boot is BAD_STATEID too, never STALE_STATEID: RFC 8881
    /// §15.1.16.7 makes STALE_STATEID moot in NFSv4.1 (the session finds the restart), and
    /// nfsd answers session clients BAD_STATEID. Linux answers a STALE_STATEID to a
    /// LAYOUTCOMMIT that it prepared with a layout stateid of the killed boot with a lease
    /// check (which succeeds on its new client id) and sends the same LAYOUTCOMMIT again, for
    /// ever: the `close()` that sent it hung (kernel_client_slice_files_and_restart_4k).
    /// BAD_STATEID ends that LAYOUTCOMMIT with an error.
    fn unknown_stateid(&self, sid: &Stateid) -> NfsStat {
        if self.revoked_layouts.contains_key(&sid.other) {
            NfsStat::DELEG_REVOKED
        } else {
            NfsStat::BAD_STATEID
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// A decoded and validated COMPOUND: `pnfs_proto`'s arguments plus, for every operation that
/// carries attributes, those attributes typed.
#[derive(Debug)]
pub(crate) struct Request {
    args: CompoundArgs,
    /// Index-aligned with `args.argarray`.
    attrs: Vec<Option<attrs::InAttrs>>,
    /// Bytes of the whole RPC call, headers included, record mark excluded (what
    /// ca_maxrequestsize limits, RFC 8881 §18.36.3).
    wire_bytes: usize,
}

impl Request {
    /// Decodes COMPOUND4args (the bytes after the RPC call header) of an RPC call of
    /// `wire_bytes`. Any XDR error — in the operations or in the attributes they carry — fails
    /// the whole request.
    pub(crate) fn decode(bytes: &[u8], wire_bytes: usize) -> XdrResult<Self> {
        let args: CompoundArgs = from_bytes(bytes)?;
        let attrs = args
            .argarray
            .iter()
            .map(attrs::of_op)
            .collect::<XdrResult<Vec<_>>>()?;
        Ok(Self {
            args,
            attrs,
            wire_bytes,
        })
    }
}

/// Bytes of our RPC reply header before the COMPOUND4res (xid, REPLY, MSG_ACCEPTED, an
/// AUTH_NONE verifier, SUCCESS): part of what ca_maxresponsesize limits.
const RPC_REPLY_HEADER_BYTES: usize = 24;

/// Per-compound context: the current and saved file handles and the session.
pub(crate) struct Ctx {
    cfh: Option<u64>,
    sfh: Option<u64>,
    clientid: Option<u64>,
    /// The current stateid (RFC 8881 §16.2.3.1.2): the last one OPEN or LAYOUTGET returned.
    csid: Option<Stateid>,
    cred: Cred,
    conn: ConnHandle,
    /// Operations in the COMPOUND and bytes of its RPC call (SEQUENCE checks them against
    /// the session's channel attributes).
    nops: usize,
    request_bytes: usize,
}

impl Ctx {
    /// `sid`, or the current stateid when `sid` is the special CURRENT stateid.
    fn sid(&self, sid: &Stateid) -> Result<Stateid, NfsStat> {
        if *sid == Stateid::CURRENT {
            self.csid.ok_or(NfsStat::BAD_STATEID)
        } else {
            Ok(*sid)
        }
    }

    fn cfh(&self) -> Result<u64, NfsStat> {
        self.cfh.ok_or(NfsStat::NOFILEHANDLE)
    }

    fn sfh(&self) -> Result<u64, NfsStat> {
        self.sfh.ok_or(NfsStat::NOFILEHANDLE)
    }

    fn clientid(&self) -> Result<u64, NfsStat> {
        self.clientid.ok_or(NfsStat::OP_NOT_IN_SESSION)
    }
}

/// The status of a status-only result.
fn st(r: Result<(), NfsStat>) -> NfsStat {
    match r {
        Ok(()) => NfsStat::OK,
        Err(e) => e,
    }
}

/// Operations allowed as the only (or first) operation without SEQUENCE.
fn is_sessionless(op: &NfsArgOp) -> bool {
    matches!(
        op,
        NfsArgOp::ExchangeId(_)
            | NfsArgOp::CreateSession(_)
            | NfsArgOp::DestroySession(_)
            | NfsArgOp::BindConnToSession(_)
            | NfsArgOp::DestroyClientid(_)
    )
}

impl State {
    /// Runs a decoded COMPOUND and returns the encoded COMPOUND4res (a replayed one when
    /// SEQUENCE names a slot's last request).
    pub(crate) fn compound(&mut self, req: Request, cred: Cred, conn: &ConnHandle) -> Vec<u8> {
        let Request {
            args,
            attrs,
            wire_bytes,
        } = req;
        let tag = args.tag;
        if args.minorversion != 1 && args.minorversion != 2 {
            return to_bytes(&CompoundRes {
                status: NfsStat::MINOR_VERS_MISMATCH,
                tag,
                resarray: Vec::new(),
            });
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            let names: Vec<u32> = args.argarray.iter().map(NfsArgOp::opnum).collect();
            tracing::debug!("compound {names:?}");
        }
        let mut ctx = Ctx {
            cfh: None,
            sfh: None,
            clientid: None,
            csid: None,
            cred,
            conn: conn.clone(),
            nops: args.argarray.len(),
            request_bytes: wire_bytes,
        };
        let nops = args.argarray.len();
        let mut results = Vec::with_capacity(nops);
        let mut slot_to_cache: Option<([u8; 16], u32)> = None;
        // RFC 8881 §18.46.3 / §15.1.3.4: once SEQUENCE has named the session, a reply longer
        // than its ca_maxresponsesize fails the operation that made it so with REP_TOO_BIG.
        let mut reply_limit: Option<usize> = None;
        // RFC 8881 §2.10.6.4 / §18.46.3 / §15.1.3.5: with sa_cachethis set, a reply longer than
        // the session's ca_maxresponsesize_cached fails the operation that made it so with
        // REP_TOO_BIG_TO_CACHE (the shortened reply is what the slot caches).
        let mut cache_limit: Option<usize> = None;
        let mut reply_bytes = RPC_REPLY_HEADER_BYTES + 12 + tag.len().div_ceil(4) * 4;
        for (i, (op, op_attrs)) in args.argarray.into_iter().zip(attrs).enumerate() {
            let is_seq = matches!(op, NfsArgOp::Sequence(_));
            let sessionless = is_sessionless(&op);
            let refused = if i == 0 && !is_seq && !sessionless {
                Some(NfsStat::OP_NOT_IN_SESSION)
            } else if i == 0 && sessionless && nops > 1 {
                // Without SEQUENCE each of these must be alone: RFC 8881 §18.35.3
                // (EXCHANGE_ID), §18.36.3 (CREATE_SESSION), §18.37.3 (DESTROY_SESSION),
                // §18.34.3 (BIND_CONN_TO_SESSION), §18.50.3 (DESTROY_CLIENTID).
                Some(NfsStat::NOT_ONLY_OP)
            } else if i > 0 && is_seq {
                Some(NfsStat::SEQUENCE_POS)
            } else if i == 0 && nops > MAX_OPS {
                Some(NfsStat::TOO_MANY_OPS)
            } else {
                None
            };
            // What the result becomes if it does not fit the reply (a WRITE's data is not
            // needed for that).
            let shadow = reply_limit.map(|_| match &op {
                NfsArgOp::Write(_) => NfsArgOp::Write(pnfs_proto::nfs4::WriteArgs::default()),
                other => other.clone(),
            });
            let mut res = match (refused, op) {
                (Some(e), op) => NfsResOp::error_for(&op, e),
                (None, NfsArgOp::Sequence(a)) => match self.sequence(&mut ctx, &a) {
                    Ok(session::SeqResult::Replay(bytes)) => return bytes,
                    Ok(session::SeqResult::New(ok)) => {
                        slot_to_cache = Some((a.sessionid.0, a.slotid));
                        let sess = self.sessions.get(&a.sessionid.0);
                        reply_limit = sess.map(|s| s.max_reply_bytes);
                        cache_limit = sess
                            .filter(|_| a.cachethis)
                            .map(|s| s.max_cached_reply_bytes);
                        NfsResOp::Sequence(Ok(ok))
                    }
                    Err(e) => NfsResOp::Sequence(Err(e)),
                },
                (None, op) => self.run_op(&mut ctx, op, op_attrs),
            };
            reply_bytes += to_bytes(&res).len();
            if let (Some(limit), Some(shadow)) = (reply_limit, &shadow) {
                if reply_bytes > limit {
                    res = NfsResOp::error_for(shadow, NfsStat::REP_TOO_BIG);
                } else if cache_limit.is_some_and(|c| reply_bytes > c) {
                    res = NfsResOp::error_for(shadow, NfsStat::REP_TOO_BIG_TO_CACHE);
                }
            }
            let failed = !res.status().is_ok();
            if failed {
                tracing::debug!("op {} failed: {}", res.opnum(), res.status());
            }
            results.push(res);
            if failed {
                break;
            }
        }
        let reply = to_bytes(&CompoundRes::new(tag, results));
        if let Some((sess, slot)) = slot_to_cache {
            self.cache_reply(&sess, slot, &reply);
        }
        reply
    }

    /// Runs one operation (SEQUENCE is handled by [`State::compound`]).
    #[allow(clippy::too_many_lines)]
    fn run_op(
        &mut self,
        ctx: &mut Ctx,
        op: NfsArgOp,
        op_attrs: Option<attrs::InAttrs>,
    ) -> NfsResOp {
        use NfsArgOp as A;
        use NfsResOp as R;
        let in_attrs = op_attrs.unwrap_or_default();
        match op {
            // File handles and names.
            A::Putrootfh => R::Putrootfh(st(self.putrootfh(ctx))),
            A::Putpubfh => R::Putpubfh(st(self.putrootfh(ctx))),
            A::Putfh(fh) => R::Putfh(st(self.putfh(ctx, &fh.0))),
            A::Getfh => R::Getfh(self.getfh(ctx)),
            A::Savefh => R::Savefh(st(ctx.cfh().map(|id| ctx.sfh = Some(id)))),
            A::Restorefh => R::Restorefh(st(ctx
                .sfh
                .ok_or(NfsStat::RESTOREFH)
                .map(|id| ctx.cfh = Some(id)))),
            A::Lookup(a) => R::Lookup(st(self.lookup(ctx, &a.objname))),
            A::Lookupp => R::Lookupp(st(self.lookupp(ctx))),
            A::Getattr(a) => R::Getattr(self.getattr(ctx, &a.attr_request)),
            A::Verify(a) => R::Verify(st(self.verify(ctx, &a.obj_attributes, false))),
            A::Nverify(a) => R::Nverify(st(self.verify(ctx, &a.obj_attributes, true))),
            A::Access(a) => R::Access(self.access(ctx, a.access)),
            A::SecinfoNoName(style) => R::SecinfoNoName(self.secinfo(
                ctx,
                None,
                style == pnfs_proto::nfs4::SecinfoStyle::Parent,
            )),
            A::Secinfo(a) => R::Secinfo(self.secinfo(ctx, Some(&a.name), false)),
            A::Readlink => R::Readlink(self.readlink(ctx)),
            A::Create(a) => R::Create(self.create(ctx, a, in_attrs)),
            A::Remove(a) => R::Remove(self.remove(ctx, &a.target)),
            A::Rename(a) => R::Rename(self.rename(ctx, &a.oldname, &a.newname)),
            A::Link(a) => R::Link(self.link(ctx, &a.newname)),
            A::Readdir(a) => R::Readdir(self.readdir(ctx, &a)),
            A::Setattr(a) => R::Setattr(self.setattr(ctx, &a.stateid, in_attrs)),
            // Opens and I/O through the MDS.
            A::Open(a) => R::Open(self.open(ctx, a, in_attrs)),
            A::OpenDowngrade(a) => R::OpenDowngrade(self.open_downgrade(ctx, &a)),
            A::Close(a) => R::Close(self.close(ctx, &a.open_stateid)),
            A::Read(a) => R::Read(self.read(ctx, &a)),
            A::Write(a) => R::Write(self.write(ctx, &a)),
            A::Commit(_) => R::Commit(self.commit(ctx)),
            A::Clone(a) => R::Clone(st(self.clone_range(ctx, &a))),
            // Byte-range locks.
            A::Lock(a) => R::Lock(match self.lock(ctx, &a) {
                Ok(sid) => pnfs_proto::nfs4::LockRes::Ok(sid),
                Err(lock::Refused::Denied(d)) => pnfs_proto::nfs4::LockRes::Denied(d),
                Err(lock::Refused::Status(e)) => pnfs_proto::nfs4::LockRes::Error(e),
            }),
            A::Lockt(a) => R::Lockt(match self.lockt(ctx, &a) {
                Ok(()) => pnfs_proto::nfs4::LocktRes::Ok,
                Err(lock::Refused::Denied(d)) => pnfs_proto::nfs4::LocktRes::Denied(d),
                Err(lock::Refused::Status(e)) => pnfs_proto::nfs4::LocktRes::Error(e),
            }),
            A::Locku(a) => R::Locku(self.locku(ctx, &a)),
            // Client ids and sessions.
            A::ExchangeId(a) => R::ExchangeId(self.exchange_id(ctx, &a)),
            A::CreateSession(a) => R::CreateSession(self.create_session(ctx, &a)),
            A::DestroySession(s) => R::DestroySession(st(self.destroy_session(&s.0))),
            A::BindConnToSession(a) => R::BindConnToSession(self.bind_conn(ctx, &a)),
            A::DestroyClientid(c) => R::DestroyClientid(st(self.destroy_clientid(c))),
            A::ReclaimComplete(_) => R::ReclaimComplete(st(self.reclaim_complete(ctx))),
            A::Delegreturn(s) => R::Delegreturn(st(self.delegreturn(ctx, &s))),
            A::TestStateid(a) => R::TestStateid(Ok(self.test_stateids(&a.stateids))),
            A::FreeStateid(s) => R::FreeStateid(st(self.free_stateid(&s))),
            // pNFS.
            A::Getdevicelist(a) => R::Getdevicelist(self.getdevicelist(&a)),
            A::Getdeviceinfo(a) => R::Getdeviceinfo(self.getdeviceinfo(&a)),
            A::Layoutget(a) => R::Layoutget(match self.layout_get(ctx, &a) {
                Ok(ok) => pnfs_proto::nfs4::LayoutgetRes::Ok(ok),
                Err(e) => OpResult::from_error(e),
            }),
            A::Layoutcommit(a) => R::Layoutcommit(self.layout_commit(ctx, &a)),
            A::Layoutreturn(a) => R::Layoutreturn(self.layout_return(ctx, &a)),
            A::Sequence(_) => R::Sequence(Err(NfsStat::SEQUENCE_POS)),
            A::Illegal { opnum } => {
                tracing::debug!("illegal operation {opnum}");
                R::Illegal(NfsStat::OP_ILLEGAL)
            }
            other => {
                tracing::debug!("operation {} is not supported", other.opnum());
                NfsResOp::error_for(&other, NfsStat::NOTSUPP)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::ROOT_ID;

    /// A client may hold `MAX_STATEIDS_PER_CLIENT` open, lock and layout stateids; its
    /// delegations and other clients' stateids do not count, and a freed one makes room.
    /// (OPEN, LOCK and LAYOUTGET ask `room_for_stateid` before they add one; filling the
    /// table over the wire takes minutes, the table's scans being linear.)
    #[test]
    fn stateids_of_one_client_are_bounded() {
        let d = crate::volume::tests::tempdir();
        let fs = crate::fs::testing::mkfs(&d, 4096);
        let settings = Settings {
            lease: Duration::from_secs(90),
            grace: Duration::from_secs(0),
            recall_timeout: Duration::from_secs(90),
            layout_blksize: 4096,
        };
        let mut st = State::new(fs, settings).unwrap();
        let open = |clientid| StateEntry::Open {
            clientid,
            owner: Vec::new(),
            file: ROOT_ID,
            access: 1,
            deny: 0,
            seqid: 1,
        };
        for _ in 0..MAX_STATEIDS_PER_CLIENT - 1 {
            let k = st.new_other();
            st.states.insert(k, open(1));
        }
        let deleg = st.new_other();
        st.states.insert(
            deleg,
            StateEntry::Deleg {
                clientid: 1,
                file: ROOT_ID,
                seqid: 1,
                recalled: None,
            },
        );
        assert!(st.room_for_stateid(1), "one left (delegations not counted)");
        let last = st.new_other();
        st.states.insert(last, open(1));
        assert!(!st.room_for_stateid(1), "full");
        assert!(st.room_for_stateid(2), "another client");
        st.states.remove(&last);
        assert!(st.room_for_stateid(1), "room after a close");
    }
}
