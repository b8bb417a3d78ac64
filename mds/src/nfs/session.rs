//! Client ids, sessions and their slot tables, leases, grace and stateid checks.

use std::time::Instant;

use pnfs_proto::nfs4::{
    BindConnToSessionArgs, BindConnToSessionResOk, CallbackSecParms, ChannelAttrs,
    ChannelDirFromClient, ChannelDirFromServer, CreateSessionArgs, CreateSessionResOk,
    ExchangeIdArgs, ExchangeIdResOk, NfsRes, NfsStat, SequenceArgs, SequenceResOk, ServerOwner,
    SessionId, StateProtectA, StateProtectR, Stateid, TestStateidResOk,
    CREATE_SESSION4_FLAG_CONN_BACK_CHAN, CREATE_SESSION4_FLAG_CONN_RDMA,
    CREATE_SESSION4_FLAG_PERSIST, EXCHGID4_FLAG_BIND_PRINC_STATEID, EXCHGID4_FLAG_CONFIRMED_R,
    EXCHGID4_FLAG_MASK_PNFS, EXCHGID4_FLAG_SUPP_FENCE_OPS, EXCHGID4_FLAG_SUPP_MOVED_MIGR,
    EXCHGID4_FLAG_SUPP_MOVED_REFER, EXCHGID4_FLAG_UPD_CONFIRMED_REC_A, EXCHGID4_FLAG_USE_PNFS_MDS,
    SEQ4_STATUS_CB_PATH_DOWN_SESSION, SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
};

use super::{
    ConnHandle, Ctx, Principal, RevokedLayout, State, StateEntry, MAX_CLIENT_RECORDS, MAX_OPS,
    MAX_REVOKED_LAYOUTS_PER_CLIENT, MAX_RPC_BYTES, MAX_SESSIONS, MAX_SESSIONS_PER_CLIENT,
    MAX_SLOTS,
};

/// The eia_flags bits RFC 8881 §18.35 (and RFC 7862 for SUPP_FENCE_OPS) defines for EXCHANGE_ID
/// arguments.
const EXCHGID_ARG_FLAGS: u32 = EXCHGID4_FLAG_SUPP_MOVED_REFER
    | EXCHGID4_FLAG_SUPP_MOVED_MIGR
    | EXCHGID4_FLAG_SUPP_FENCE_OPS
    | EXCHGID4_FLAG_BIND_PRINC_STATEID
    | EXCHGID4_FLAG_MASK_PNFS
    | EXCHGID4_FLAG_UPD_CONFIRMED_REC_A;

/// The csa_flags RFC 8881 §18.36 defines.
const CREATE_SESSION_FLAGS: u32 = CREATE_SESSION4_FLAG_PERSIST
    | CREATE_SESSION4_FLAG_CONN_BACK_CHAN
    | CREATE_SESSION4_FLAG_CONN_RDMA;
/// Smallest fore-channel ca_maxrequestsize / ca_maxresponsesize we accept: a SEQUENCE-only
/// COMPOUND with its RPC headers (about 90 bytes either way) fits with room to spare.
const MIN_CHANNEL_REQUEST_BYTES: u32 = 128;
const MIN_CHANNEL_RESPONSE_BYTES: u32 = 128;
/// Smallest ca_maxoperations we accept: SEQUENCE and one operation.
const MIN_CHANNEL_OPS: u32 = 2;

/// A channel attribute as a byte (or operation) count.
fn bytes(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Fewest operations per COMPOUND we offer.
const MIN_OPS: u32 = 8;

/// One fore-channel slot: its sequence id and the reply to replay.
#[derive(Debug)]
pub(crate) struct Slot {
    seq: u32,
    reply: Option<Vec<u8>>,
}

/// A session.
#[derive(Debug)]
pub(crate) struct Session {
    pub clientid: u64,
    slots: Vec<Slot>,
    pub cb_prog: u32,
    pub cb_sys: bool,
    pub back: Option<ConnHandle>,
    pub cb_seq: std::sync::Arc<tokio::sync::Mutex<u32>>,
    /// The fore channel's negotiated ca_maxrequestsize, ca_maxresponsesize and
    /// ca_maxoperations, enforced on every request (RFC 8881 §18.36.3, §2.10.6.4).
    max_request_bytes: usize,
    pub max_reply_bytes: usize,
    /// The fore channel's ca_maxresponsesize_cached: the largest reply of a request with
    /// sa_cachethis set (RFC 8881 §18.36.3, §2.10.6.4).
    pub max_cached_reply_bytes: usize,
    max_ops: usize,
}

/// A client id.
#[derive(Debug)]
pub(crate) struct Client {
    pub owner: Vec<u8>,
    verifier: [u8; 8],
    /// Who created the record (RFC 8881 §18.35.5 compares it).
    principal: Principal,
    /// Confirmed by CREATE_SESSION. Until then the record only allows CREATE_SESSION and
    /// DESTROY_CLIENTID, and another of the same owner may replace it.
    pub confirmed: bool,
    cs_seq: u32,
    cs_reply: Option<CreateSessionResOk>,
    pub renewed: Instant,
    reclaim_complete: bool,
    /// Known from a previous boot: may reclaim during grace.
    pub may_reclaim: bool,
}

impl Client {
    /// May this client reclaim state now (it was known before the restart and has not sent
    /// RECLAIM_COMPLETE)?
    pub fn can_reclaim(&self) -> bool {
        self.may_reclaim && !self.reclaim_complete
    }
}

/// What SEQUENCE found.
pub(crate) enum SeqResult {
    /// A new request on the slot.
    New(SequenceResOk),
    /// A retransmission: the cached reply.
    Replay(Vec<u8>),
}

impl State {
    pub(crate) fn sequence(
        &mut self,
        ctx: &mut Ctx,
        a: &SequenceArgs,
    ) -> Result<SeqResult, NfsStat> {
        let s = self
            .sessions
            .get_mut(&a.sessionid.0)
            .ok_or(NfsStat::BADSESSION)?;
        // RFC 8881 §18.46.3 / §15.1.3: a COMPOUND beyond what the session negotiated is
        // refused before it touches the slot.
        if ctx.nops > s.max_ops {
            return Err(NfsStat::TOO_MANY_OPS);
        }
        if ctx.request_bytes > s.max_request_bytes {
            return Err(NfsStat::REQ_TOO_BIG);
        }
        let nslots = u32::try_from(s.slots.len()).unwrap_or(1);
        let sl = s
            .slots
            .get_mut(usize::try_from(a.slotid).unwrap_or(usize::MAX))
            .ok_or(NfsStat::BADSLOT)?;
        if a.sequenceid == sl.seq {
            return match &sl.reply {
                Some(r) => Ok(SeqResult::Replay(r.clone())),
                None => Err(NfsStat::RETRY_UNCACHED_REP),
            };
        }
        if a.sequenceid != sl.seq.wrapping_add(1) {
            return Err(NfsStat::SEQ_MISORDERED);
        }
        sl.seq = a.sequenceid;
        sl.reply = None;
        let cid = s.clientid;
        let mut flags = 0;
        if s.back.is_none() {
            flags |= SEQ4_STATUS_CB_PATH_DOWN_SESSION;
        }
        let now = Instant::now();
        for r in self.revoked_layouts.values_mut() {
            if r.clientid == cid {
                flags |= SEQ4_STATUS_RECALLABLE_STATE_REVOKED;
                r.reported.get_or_insert(now);
            }
        }
        ctx.clientid = Some(cid);
        if let Some(c) = self.clients.get_mut(&cid) {
            c.renewed = Instant::now();
        }
        // Every reply is cached, whatever sa_cachethis says; with sa_cachethis set it must
        // also fit ca_maxresponsesize_cached (`State::compound` checks).
        Ok(SeqResult::New(SequenceResOk {
            sessionid: a.sessionid,
            sequenceid: a.sequenceid,
            slotid: a.slotid,
            highest_slotid: nslots - 1,
            target_highest_slotid: nslots - 1,
            status_flags: flags,
        }))
    }

    /// Keeps `reply` for replays of the slot's current request.
    pub(crate) fn cache_reply(&mut self, sess: &[u8; 16], slot: u32, reply: &[u8]) {
        if let Some(sl) = self
            .sessions
            .get_mut(sess)
            .and_then(|s| s.slots.get_mut(usize::try_from(slot).unwrap_or(usize::MAX)))
        {
            sl.reply = Some(reply.to_vec());
        }
    }

    /// EXCHANGE_ID, RFC 8881 §18.35. The client records of one owner are at most one confirmed
    /// and one unconfirmed; the case numbers below are those of the case table in §18.35.5.
    pub(crate) fn exchange_id(&mut self, ctx: &Ctx, a: &ExchangeIdArgs) -> NfsRes<ExchangeIdResOk> {
        // §18.35.3: eia_flags bits the protocol does not define for the arguments (the result
        // only EXCHGID4_FLAG_CONFIRMED_R among them) are refused.
        if a.flags & !EXCHGID_ARG_FLAGS != 0 {
            return Err(NfsStat::INVAL);
        }
        match &a.state_protect {
            StateProtectA::None => {}
            // §18.35.3: SP4_MACH_CRED binds the client ID to an RPCSEC_GSS principal with
            // integrity or privacy; we only speak AUTH_SYS/AUTH_NONE, so it cannot be
            // honoured (as Linux nfsd answers over AUTH_SYS).
            StateProtectA::MachCred(_) => return Err(NfsStat::INVAL),
            StateProtectA::Ssv(_) => return Err(NfsStat::ENCR_ALG_UNSUPP),
        }
        let owner = &a.clientowner.ownerid;
        let verifier = a.clientowner.verifier.0;
        let principal = &ctx.cred.principal;
        let update = a.flags & EXCHGID4_FLAG_UPD_CONFIRMED_REC_A != 0;
        let confirmed = self.client_of_owner(owner, true);
        let id = match confirmed {
            // Case 7: an update of a record that does not exist (an unconfirmed one does not
            // count).
            None if update => return Err(NfsStat::NOENT),
            Some(id) => {
                let c = &self.clients[&id];
                let same_principal = c.principal == *principal;
                let same_verifier = c.verifier == verifier;
                if update {
                    if !same_principal {
                        // Case 9: update but wrong principal.
                        return Err(NfsStat::PERM);
                    }
                    if !same_verifier {
                        // Case 8: update but wrong verifier.
                        return Err(NfsStat::NOT_SAME);
                    }
                    // Case 6: update. Nothing we keep can change (no state protection, the
                    // flags we return are fixed), so it is the existing client ID.
                    Some(id)
                } else if !same_principal {
                    // Case 3: client collision. A record with state stays its principal's;
                    // one without is replaced like an unconfirmed record (the old one goes
                    // only when the new one is confirmed).
                    if self.client_has_state(id) {
                        return Err(NfsStat::CLID_INUSE);
                    }
                    None
                } else if same_verifier {
                    // Case 2: non-update on an existing client ID (a retry, or the client
                    // trunking): the same client ID, confirmed.
                    Some(id)
                } else {
                    // Case 5: client restart. A new unconfirmed record; the old confirmed one
                    // and its state live until the new one is confirmed by CREATE_SESSION
                    // (`create_session`), so until then the old sessions keep working.
                    None
                }
            }
            None => None,
        };
        let (id, confirmed) = match id {
            Some(id) => {
                if let Some(c) = self.clients.get_mut(&id) {
                    c.renewed = Instant::now();
                }
                (id, true)
            }
            None => {
                // Case 4: an unconfirmed record of this owner is replaced (its client ID
                // becomes stale); case 1: a new owner.
                if let Some(old) = self.client_of_owner(owner, false) {
                    self.drop_client(old);
                }
                if self.clients.len() >= MAX_CLIENT_RECORDS {
                    tracing::warn!("EXCHANGE_ID: {MAX_CLIENT_RECORDS} client records; DELAY");
                    return Err(NfsStat::DELAY);
                }
                let id = self.new_client(owner.clone(), verifier, principal.clone());
                (id, false)
            }
        };
        let mut flags = EXCHGID4_FLAG_USE_PNFS_MDS;
        if confirmed {
            flags |= EXCHGID4_FLAG_CONFIRMED_R;
        }
        Ok(ExchangeIdResOk {
            clientid: id,
            sequenceid: self.clients[&id].cs_seq,
            flags,
            state_protect: StateProtectR::None,
            server_owner: ServerOwner {
                minor_id: 0,
                major_id: self.server_owner.clone(),
            },
            server_scope: self.server_owner.clone(),
            server_impl_id: None,
        })
    }

    /// The confirmed (or the unconfirmed) client record of `owner`.
    fn client_of_owner(&self, owner: &[u8], confirmed: bool) -> Option<u64> {
        self.clients
            .iter()
            .find(|(_, c)| c.owner == owner && c.confirmed == confirmed)
            .map(|(&id, _)| id)
    }

    /// Does client `id` hold anything a collision must not take away (sessions, opens,
    /// layouts)?
    fn client_has_state(&self, id: u64) -> bool {
        self.sessions.values().any(|s| s.clientid == id)
            || self.states.values().any(|s| s.clientid() == id)
    }

    fn new_client(&mut self, owner: Vec<u8>, verifier: [u8; 8], principal: Principal) -> u64 {
        let id = (u64::from(self.epoch32()) << 32) | self.next_clientid;
        self.next_clientid += 1;
        let may_reclaim = self.reclaim_pending.contains(&owner);
        self.clients.insert(
            id,
            Client {
                owner,
                verifier,
                principal,
                confirmed: false,
                cs_seq: 1,
                cs_reply: None,
                renewed: Instant::now(),
                reclaim_complete: false,
                may_reclaim,
            },
        );
        id
    }

    pub(crate) fn create_session(
        &mut self,
        ctx: &Ctx,
        a: &CreateSessionArgs,
    ) -> NfsRes<CreateSessionResOk> {
        let epoch32 = self.epoch32();
        let sessions_of_client = self
            .sessions
            .values()
            .filter(|s| s.clientid == a.clientid)
            .count();
        let sessions_full =
            sessions_of_client >= MAX_SESSIONS_PER_CLIENT || self.sessions.len() >= MAX_SESSIONS;
        let c = self
            .clients
            .get_mut(&a.clientid)
            .ok_or(NfsStat::STALE_CLIENTID)?;
        if a.sequence == c.cs_seq.wrapping_sub(1) && c.confirmed {
            if let Some(r) = &c.cs_reply {
                return Ok(r.clone());
            }
        }
        // §18.36.4: the client ID belongs to the principal that created it (its record's
        // principal, from EXCHANGE_ID).
        if c.principal != ctx.cred.principal {
            return Err(NfsStat::CLID_INUSE);
        }
        if a.sequence != c.cs_seq {
            return Err(NfsStat::SEQ_MISORDERED);
        }
        // §18.36.3: flags the protocol does not define are INVAL; a fore channel that cannot
        // carry even a SEQUENCE-only COMPOUND is TOOSMALL.
        if a.flags & !CREATE_SESSION_FLAGS != 0 {
            return Err(NfsStat::INVAL);
        }
        let fore = &a.fore_chan_attrs;
        if fore.maxrequestsize < MIN_CHANNEL_REQUEST_BYTES
            || fore.maxresponsesize < MIN_CHANNEL_RESPONSE_BYTES
            || fore.maxoperations < MIN_CHANNEL_OPS
        {
            return Err(NfsStat::TOOSMALL);
        }
        if sessions_full {
            return Err(NfsStat::NOSPC);
        }
        let newly_confirmed = !c.confirmed;
        let owner = c.owner.clone();
        c.confirmed = true;
        c.cs_seq = c.cs_seq.wrapping_add(1);
        c.renewed = Instant::now();
        let mut sid = [0u8; 16];
        sid[..8].copy_from_slice(&a.clientid.to_be_bytes());
        sid[8..12].copy_from_slice(&epoch32.to_be_bytes());
        sid[12..].copy_from_slice(
            &u32::try_from(self.next_session & 0xffff_ffff)
                .unwrap_or(0)
                .to_be_bytes(),
        );
        self.next_session += 1;
        let nslots = fore.maxrequests.clamp(1, MAX_SLOTS);
        let back_ok = a.flags & CREATE_SESSION4_FLAG_CONN_BACK_CHAN != 0;
        let max_ops = u32::try_from(MAX_OPS).unwrap_or(u32::MAX);
        let res = CreateSessionResOk {
            sessionid: SessionId(sid),
            sequence: a.sequence,
            flags: if back_ok {
                CREATE_SESSION4_FLAG_CONN_BACK_CHAN
            } else {
                0
            },
            // Fore channel: what the client asked for, clamped to our limits.
            fore_chan_attrs: ChannelAttrs {
                headerpadsize: 0,
                maxrequestsize: fore.maxrequestsize.min(MAX_RPC_BYTES),
                maxresponsesize: fore.maxresponsesize.min(MAX_RPC_BYTES),
                maxresponsesize_cached: fore.maxresponsesize_cached.min(MAX_RPC_BYTES),
                maxoperations: fore.maxoperations.clamp(MIN_OPS, max_ops),
                maxrequests: nslots,
                rdma_ird: None,
            },
            // Back channel: exactly what the client offered (we use one slot of it).
            back_chan_attrs: ChannelAttrs {
                headerpadsize: 0,
                rdma_ird: None,
                ..a.back_chan_attrs
            },
        };
        c.cs_reply = Some(res.clone());
        if newly_confirmed {
            // §18.35.5 cases 3 and 5: the owner's previous confirmed record (a restarted
            // client's, or a collision's without state) ends now that the new one is
            // confirmed, with all its state: its sessions answer BADSESSION, its client ID
            // STALE_CLIENTID.
            let old: Vec<u64> = self
                .clients
                .iter()
                .filter(|(&id, c)| id != a.clientid && c.owner == owner && c.confirmed)
                .map(|(&id, _)| id)
                .collect();
            for id in old {
                // Two live clients presenting one owner (two gateways sharing a client
                // owner) show up here again and again, each ending the other's state.
                tracing::warn!(
                    "client {id:#x}: replaced by {:#x} (same owner {:?}, new verifier); its \
                     state is dropped",
                    a.clientid,
                    String::from_utf8_lossy(&owner)
                );
                self.drop_client(id);
            }
        }
        let cb_sys = matches!(a.sec_parms.first(), Some(CallbackSecParms::Sys(_)));
        let slots = (0..nslots)
            .map(|_| Slot {
                seq: 0,
                reply: None,
            })
            .collect();
        self.sessions.insert(
            sid,
            Session {
                clientid: a.clientid,
                slots,
                cb_prog: a.cb_program,
                cb_sys,
                back: back_ok.then(|| ctx.conn.clone()),
                cb_seq: std::sync::Arc::new(tokio::sync::Mutex::new(0)),
                max_request_bytes: bytes(res.fore_chan_attrs.maxrequestsize),
                max_reply_bytes: bytes(res.fore_chan_attrs.maxresponsesize),
                max_cached_reply_bytes: bytes(res.fore_chan_attrs.maxresponsesize_cached),
                max_ops: bytes(res.fore_chan_attrs.maxoperations),
            },
        );
        Ok(res)
    }

    pub(crate) fn destroy_session(&mut self, sess: &[u8; 16]) -> Result<(), NfsStat> {
        self.sessions
            .remove(sess)
            .map(|_| ())
            .ok_or(NfsStat::BADSESSION)
    }

    pub(crate) fn bind_conn(
        &mut self,
        ctx: &Ctx,
        a: &BindConnToSessionArgs,
    ) -> NfsRes<BindConnToSessionResOk> {
        let s = self
            .sessions
            .get_mut(&a.sessid.0)
            .ok_or(NfsStat::BADSESSION)?;
        let back = !matches!(a.dir, ChannelDirFromClient::Fore);
        if back {
            s.back = Some(ctx.conn.clone());
        }
        Ok(BindConnToSessionResOk {
            sessid: a.sessid,
            dir: if back {
                ChannelDirFromServer::Both
            } else {
                ChannelDirFromServer::Fore
            },
            use_conn_in_rdma_mode: false,
        })
    }

    pub(crate) fn destroy_clientid(&mut self, cid: u64) -> Result<(), NfsStat> {
        let c = self.clients.get(&cid).ok_or(NfsStat::STALE_CLIENTID)?;
        if self.sessions.values().any(|s| s.clientid == cid) {
            return Err(NfsStat::CLIENTID_BUSY);
        }
        // An unconfirmed record never held state: the owner's stable record (for reclaim
        // after a restart) is its confirmed record's.
        if c.confirmed {
            let owner = c.owner.clone();
            self.fs.record_client(&owner, false)?;
        }
        self.drop_client(cid);
        Ok(())
    }

    pub(crate) fn reclaim_complete(&mut self, ctx: &Ctx) -> Result<(), NfsStat> {
        let cid = ctx.clientid()?;
        let c = self.clients.get_mut(&cid).ok_or(NfsStat::STALE_CLIENTID)?;
        if c.reclaim_complete {
            return Err(NfsStat::COMPLETE_ALREADY);
        }
        c.reclaim_complete = true;
        let owner = c.owner.clone();
        self.reclaim_pending.remove(&owner);
        self.fs.record_client(&owner, true)
    }

    /// A stateid usable for READ/WRITE/CLONE: special, or one we know.
    pub(crate) fn check_sid_for_io(&self, sid: &Stateid) -> Result<(), NfsStat> {
        if sid.other == [0; 12] || sid.other == [0xff; 12] {
            return Ok(());
        }
        if self.states.contains_key(&sid.other) {
            Ok(())
        } else {
            Err(self.unknown_stateid(sid))
        }
    }

    pub(crate) fn test_stateids(&self, sids: &[Stateid]) -> TestStateidResOk {
        TestStateidResOk {
            status_codes: sids
                .iter()
                .map(|s| match self.check_sid_for_io(s) {
                    Ok(()) => NfsStat::OK,
                    Err(e) => e,
                })
                .collect(),
        }
    }

    pub(crate) fn free_stateid(&mut self, sid: &Stateid) -> Result<(), NfsStat> {
        if self.revoked_layouts.remove(&sid.other).is_some() {
            return Ok(());
        }
        match self.states.get(&sid.other) {
            Some(StateEntry::Layout { .. }) => {
                self.states.remove(&sid.other);
                Ok(())
            }
            // §18.38.3: an open, or a delegation not revoked, is not freed by FREE_STATEID.
            Some(StateEntry::Open { .. } | StateEntry::Deleg { .. }) => Err(NfsStat::LOCKS_HELD),
            // §18.38.3: a lock stateid still holding locks stays.
            Some(StateEntry::Lock { ranges, .. }) => {
                if !ranges.is_empty() {
                    return Err(NfsStat::LOCKS_HELD);
                }
                self.states.remove(&sid.other);
                Ok(())
            }
            None => Err(NfsStat::BAD_STATEID),
        }
    }

    /// Periodic work: lease expiry, recall timeouts, grace end.
    pub fn tick(&mut self) {
        self.tick_at(Instant::now());
    }

    /// [`State::tick`] at a given time (tests).
    pub fn tick_at(&mut self, now: Instant) {
        self.in_grace();
        let lease = self.settings.lease;
        let expired: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.renewed) > lease + lease / 2)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            tracing::info!("client {id:#x}: lease expired; its state is dropped");
            if let Some(c) = self.clients.get(&id).filter(|c| c.confirmed) {
                let owner = c.owner.clone();
                if let Err(e) = self.fs.record_client(&owner, false) {
                    tracing::error!("forgetting client record: {e}");
                }
            }
            self.drop_client(id);
            self.expired_clients += 1;
        }
        let rt = self.settings.recall_timeout;
        let late: Vec<[u8; 12]> = self
            .states
            .iter()
            .filter_map(|(k, s)| match s {
                StateEntry::Layout {
                    recalled: Some(t), ..
                } if now.saturating_duration_since(*t) > rt => Some(*k),
                _ => None,
            })
            .collect();
        for k in late {
            tracing::warn!("layout {k:02x?}: recall timed out, revoked");
            if let Some(StateEntry::Layout { clientid, file, .. }) = self.states.remove(&k) {
                self.remember_revoked(k, clientid, file, false);
            }
            self.revoked += 1;
        }
        self.revoke_late_delegations(now);
        // A revoked layout the client was told about a whole lease ago is forgotten (see
        // RevokedLayout for why not only FREE_STATEID ends it).
        self.revoked_layouts.retain(|_, r| {
            r.reported
                .is_none_or(|t| now.saturating_duration_since(t) <= lease)
        });
    }

    /// Keeps a revoked layout stateid for its client to learn of, at most
    /// [`MAX_REVOKED_LAYOUTS_PER_CLIENT`] per client (the oldest is forgotten first).
    pub(crate) fn remember_revoked(
        &mut self,
        other: [u8; 12],
        clientid: u64,
        file: u64,
        deleg: bool,
    ) {
        let serial = self.revoked + self.delegations_revoked;
        let mine: Vec<([u8; 12], u64)> = self
            .revoked_layouts
            .iter()
            .filter(|(_, r)| r.clientid == clientid)
            .map(|(k, r)| (*k, r.serial))
            .collect();
        if mine.len() >= MAX_REVOKED_LAYOUTS_PER_CLIENT {
            if let Some((oldest, _)) = mine.iter().min_by_key(|(_, s)| *s) {
                self.revoked_layouts.remove(oldest);
            }
        }
        self.revoked_layouts.insert(
            other,
            RevokedLayout {
                clientid,
                file,
                reported: None,
                serial,
                deleg,
            },
        );
    }

    /// Forgets a client and everything it holds (sessions, opens, layouts).
    pub(crate) fn drop_client(&mut self, id: u64) {
        self.clients.remove(&id);
        self.sessions.retain(|_, s| s.clientid != id);
        self.states.retain(|_, s| s.clientid() != id);
        self.revoked_layouts.retain(|_, r| r.clientid != id);
        self.reap_orphans();
    }
}
