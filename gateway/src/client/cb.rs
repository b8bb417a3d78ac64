//! The backchannel (RFC 8881 §20): CB_COMPOUND decoding, CB_SEQUENCE checks against the
//! back-channel slot table (with a reply cache per slot), and dispatch of CB_LAYOUTRECALL,
//! CB_RECALL_ANY, CB_NOTIFY_DEVICEID and CB_RECALLABLE_OBJ_AVAIL to the pNFS layer's
//! [`CallbackSink`]. This client never holds delegations: CB_RECALL is answered OK and the
//! delegation returned, CB_GETATTR gets BADHANDLE. Pure except for the sink calls.

use std::sync::Mutex;

use pnfs_proto::nfs4::{
    DeviceId, FileHandle, LayoutType, NfsStat, SessionId, Stateid, NFS4_OPAQUE_LIMIT_BYTES,
};
use pnfs_proto::xdr::{Decoder, Encoder, XdrError, XdrResult};

use crate::mds_api::{CallbackSink, DeviceNotification, LayoutRecall, RecallTarget};

/// Callback operation numbers.
pub mod cbop {
    /// CB_GETATTR.
    pub const GETATTR: u32 = 3;
    /// CB_RECALL.
    pub const RECALL: u32 = 4;
    /// CB_LAYOUTRECALL.
    pub const LAYOUTRECALL: u32 = 5;
    /// CB_RECALL_ANY.
    pub const RECALL_ANY: u32 = 8;
    /// CB_RECALLABLE_OBJ_AVAIL.
    pub const RECALLABLE_OBJ_AVAIL: u32 = 9;
    /// CB_SEQUENCE.
    pub const SEQUENCE: u32 = 11;
    /// CB_NOTIFY_DEVICEID.
    pub const NOTIFY_DEVICEID: u32 = 14;
    /// CB_ILLEGAL.
    pub const ILLEGAL: u32 = 10044;
    /// Highest op number defined by RFC 8881 for the callback program.
    pub const MAX_DEFINED: u32 = 14;
}

/// Most ops in one CB_COMPOUND we process.
pub const MAX_CB_OPS: usize = 16;
/// Most referring-call lists / calls in CB_SEQUENCE.
const MAX_REFERRING: usize = 64;
/// Most CB_NOTIFY_DEVICEID entries.
const MAX_NOTIFICATIONS: usize = 256;
/// Largest tag.
const MAX_TAG_BYTES: usize = 256;

/// Back-channel slot table: last sequence id and cached reply per slot.
#[derive(Debug)]
pub struct CbSlotTable {
    slots: Mutex<Vec<CbSlot>>,
}

#[derive(Debug, Clone, Default)]
struct CbSlot {
    seqid: u32,
    in_progress: bool,
    cached: Option<Vec<u8>>,
}

/// What CB_SEQUENCE decided.
#[derive(Debug, PartialEq, Eq)]
pub enum CbSeqDecision {
    /// A new request: process it, then [`CbSlotTable::finish`].
    New,
    /// A retransmission whose reply is cached: send these bytes.
    Replay(Vec<u8>),
    /// Refuse the compound with this status on CB_SEQUENCE.
    Error(NfsStat),
}

impl CbSlotTable {
    /// A table of `n` slots (what we offered and the server accepted in CREATE_SESSION).
    pub fn new(n: u32) -> Self {
        let n = usize::try_from(n.clamp(1, 64)).unwrap_or(1);
        Self {
            slots: Mutex::new(vec![CbSlot::default(); n]),
        }
    }

    /// RFC 8881 §2.10.6.1 for the back channel.
    pub fn check(&self, slot: u32, seqid: u32, highest: u32) -> CbSeqDecision {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = slots.len();
        let Some(s) = usize::try_from(slot).ok().and_then(|i| slots.get_mut(i)) else {
            return CbSeqDecision::Error(NfsStat::BADSLOT);
        };
        if usize::try_from(highest).map_or(true, |h| h >= n) {
            return CbSeqDecision::Error(NfsStat::BAD_HIGH_SLOT);
        }
        if seqid == s.seqid.wrapping_add(1) {
            if s.in_progress {
                return CbSeqDecision::Error(NfsStat::DELAY);
            }
            s.in_progress = true;
            s.seqid = seqid;
            s.cached = None;
            CbSeqDecision::New
        } else if seqid == s.seqid {
            if s.in_progress {
                CbSeqDecision::Error(NfsStat::DELAY)
            } else if let Some(r) = &s.cached {
                CbSeqDecision::Replay(r.clone())
            } else {
                CbSeqDecision::Error(NfsStat::RETRY_UNCACHED_REP)
            }
        } else {
            CbSeqDecision::Error(NfsStat::SEQ_MISORDERED)
        }
    }

    /// Stores the reply of the request in progress on `slot`.
    pub fn finish(&self, slot: u32, reply: &[u8]) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = usize::try_from(slot).ok().and_then(|i| slots.get_mut(i)) {
            s.in_progress = false;
            s.cached = Some(reply.to_vec());
        }
    }
}

/// One decoded callback op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CbOp {
    /// CB_SEQUENCE.
    Sequence {
        /// Session.
        session: SessionId,
        /// Sequence id.
        seqid: u32,
        /// Slot.
        slot: u32,
        /// Highest slot.
        highest_slot: u32,
    },
    /// CB_LAYOUTRECALL.
    LayoutRecall(LayoutRecall),
    /// CB_RECALL_ANY.
    RecallAny {
        /// craa_objects_to_keep.
        keep: u32,
        /// craa_type_mask word 0.
        mask: u32,
    },
    /// CB_RECALLABLE_OBJ_AVAIL.
    RecallableObjAvail {
        /// type mask word 0.
        mask: u32,
    },
    /// CB_NOTIFY_DEVICEID.
    NotifyDeviceId(Vec<DeviceNotification>),
    /// CB_RECALL of a delegation.
    Recall {
        /// Delegation stateid.
        stateid: Stateid,
        /// File.
        fh: FileHandle,
    },
    /// CB_GETATTR.
    GetAttr,
    /// A defined op we do not implement.
    NotSupported(u32),
    /// An undefined op number.
    Illegal,
}

fn first_word(dec: &mut Decoder<'_>) -> XdrResult<u32> {
    let bm: Vec<u32> = dec.array("bitmap4", 8)?;
    Ok(bm.first().copied().unwrap_or(0))
}

fn decode_op(dec: &mut Decoder<'_>) -> XdrResult<CbOp> {
    let op = dec.u32()?;
    Ok(match op {
        cbop::SEQUENCE => {
            let session = dec.get()?;
            let seqid = dec.u32()?;
            let slot = dec.u32()?;
            let highest_slot = dec.u32()?;
            let _cache_this = dec.bool()?;
            let lists = dec.length("csa_referring_call_lists", MAX_REFERRING)?;
            for _ in 0..lists {
                let _s: SessionId = dec.get()?;
                let calls = dec.length("rcl_referring_calls", MAX_REFERRING)?;
                for _ in 0..calls {
                    dec.u32()?;
                    dec.u32()?;
                }
            }
            CbOp::Sequence {
                session,
                seqid,
                slot,
                highest_slot,
            }
        }
        cbop::LAYOUTRECALL => {
            let layout_type: LayoutType = dec.get()?;
            let iomode = dec.get()?;
            let changed = dec.bool()?;
            let target = match dec.u32()? {
                1 => RecallTarget::File {
                    fh: dec.get()?,
                    offset_bytes: dec.u64()?,
                    length_bytes: dec.u64()?,
                    stateid: dec.get()?,
                },
                2 => RecallTarget::Fsid {
                    major: dec.u64()?,
                    minor: dec.u64()?,
                },
                3 => RecallTarget::All,
                value => {
                    return Err(XdrError::BadEnum {
                        what: "layoutrecall_type4",
                        value,
                    })
                }
            };
            CbOp::LayoutRecall(LayoutRecall {
                layout_type,
                iomode,
                changed,
                target,
            })
        }
        cbop::RECALL_ANY => CbOp::RecallAny {
            keep: dec.u32()?,
            mask: first_word(dec)?,
        },
        cbop::RECALLABLE_OBJ_AVAIL => CbOp::RecallableObjAvail {
            mask: {
                dec.u32()?;
                first_word(dec)?
            },
        },
        cbop::NOTIFY_DEVICEID => {
            let n = dec.length("cnda_changes", MAX_NOTIFICATIONS)?;
            let mut out = Vec::new();
            for _ in 0..n {
                let mask = first_word(dec)?;
                let vals = dec.opaque("notify_vals", NFS4_OPAQUE_LIMIT_BYTES)?;
                let mut v = Decoder::new(vals);
                // notify_vals holds one value per set bit, in bit order.
                if mask & (1 << 1) != 0 {
                    let layout_type = v.get()?;
                    let device_id: DeviceId = v.get()?;
                    let immediate = v.bool()?;
                    out.push(DeviceNotification::Change {
                        layout_type,
                        device_id,
                        immediate,
                    });
                }
                if mask & (1 << 2) != 0 {
                    let layout_type = v.get()?;
                    let device_id: DeviceId = v.get()?;
                    out.push(DeviceNotification::Delete {
                        layout_type,
                        device_id,
                    });
                }
            }
            CbOp::NotifyDeviceId(out)
        }
        cbop::RECALL => {
            let stateid = dec.get()?;
            let _truncate = dec.bool()?;
            CbOp::Recall {
                stateid,
                fh: dec.get()?,
            }
        }
        cbop::GETATTR => {
            let _fh: FileHandle = dec.get()?;
            first_word(dec)?;
            CbOp::GetAttr
        }
        // Defined ops we do not implement: their arguments cannot be skipped generically, so
        // the compound stops here (which is what an error result does anyway).
        n if (3..=cbop::MAX_DEFINED).contains(&n) => CbOp::NotSupported(n),
        _ => CbOp::Illegal,
    })
}

/// The decoded head of a CB_COMPOUND.
#[derive(Debug)]
pub struct CbCompound {
    /// Tag (echoed).
    pub tag: Vec<u8>,
    /// minorversion.
    pub minor_version: u32,
    /// The ops, decoded up to and including the first unsupported one.
    pub ops: Vec<CbOp>,
    /// Number of ops the server sent.
    pub op_count: usize,
}

/// Decodes CB_COMPOUND4args. A decode error means GARBAGE_ARGS for the RPC.
pub fn decode_cb_compound(args: &[u8]) -> XdrResult<CbCompound> {
    let mut dec = Decoder::new(args);
    let tag = dec.opaque("cb tag", MAX_TAG_BYTES)?.to_vec();
    let minor_version = dec.u32()?;
    let _callback_ident = dec.u32()?;
    let op_count = dec.length("cb argarray", MAX_CB_OPS)?;
    let mut ops = Vec::with_capacity(op_count);
    for _ in 0..op_count {
        let op = decode_op(&mut dec)?;
        let stop = matches!(op, CbOp::NotSupported(_) | CbOp::Illegal);
        ops.push(op);
        if stop {
            break;
        }
    }
    Ok(CbCompound {
        tag,
        minor_version,
        ops,
        op_count,
    })
}

/// What the client must do after answering (work that needs the fore channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// DELEGRETURN this delegation.
    ReturnDelegation {
        /// File.
        fh: FileHandle,
        /// Delegation stateid.
        stateid: Stateid,
    },
}

/// The session facts the backchannel needs.
pub struct CbContext<'a> {
    /// The current session id.
    pub session: SessionId,
    /// The back-channel slot table of that session.
    pub slots: &'a CbSlotTable,
    /// The pNFS layer, if registered.
    pub sink: Option<std::sync::Arc<dyn CallbackSink>>,
}

impl std::fmt::Debug for CbContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CbContext")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

fn result_header(tag: &[u8], status: NfsStat, n: usize) -> Encoder {
    let mut enc = Encoder::new();
    enc.put_u32(status.0);
    enc.put_opaque(tag);
    enc.put_u32(u32::try_from(n).unwrap_or(0));
    enc
}

/// Processes one CB_COMPOUND and returns the encoded CB_COMPOUND4res plus follow-up work.
pub fn handle_cb_compound(cb: &CbCompound, ctx: &CbContext<'_>) -> (Vec<u8>, Vec<FollowUp>) {
    let mut follow = Vec::new();
    if cb.minor_version != 1 {
        return (
            result_header(&cb.tag, NfsStat::MINOR_VERS_MISMATCH, 0).into_inner(),
            follow,
        );
    }
    let mut results: Vec<(u32, NfsStat, Option<Vec<u8>>)> = Vec::new();
    let mut seq_slot = None;
    for (i, op) in cb.ops.iter().enumerate() {
        let (num, status, body) = match op {
            CbOp::Sequence {
                session,
                seqid,
                slot,
                highest_slot,
            } => {
                if i != 0 {
                    (cbop::SEQUENCE, NfsStat::SEQUENCE_POS, None)
                } else if *session != ctx.session {
                    (cbop::SEQUENCE, NfsStat::BADSESSION, None)
                } else {
                    match ctx.slots.check(*slot, *seqid, *highest_slot) {
                        CbSeqDecision::Replay(bytes) => return (bytes, follow),
                        CbSeqDecision::Error(st) => (cbop::SEQUENCE, st, None),
                        CbSeqDecision::New => {
                            seq_slot = Some(*slot);
                            let mut b = Encoder::new();
                            b.put(session);
                            b.put_u32(*seqid);
                            b.put_u32(*slot);
                            b.put_u32(*highest_slot);
                            b.put_u32(*highest_slot); // target_highest_slotid
                            (cbop::SEQUENCE, NfsStat::OK, Some(b.into_inner()))
                        }
                    }
                }
            }
            _ if i == 0 => (op_number(op), NfsStat::OP_NOT_IN_SESSION, None),
            CbOp::LayoutRecall(r) => {
                let st = match &ctx.sink {
                    Some(s) => s.layout_recall(r.clone()),
                    None => NfsStat::NOMATCHING_LAYOUT,
                };
                (cbop::LAYOUTRECALL, st, None)
            }
            CbOp::RecallAny { keep, mask } => {
                let st = ctx
                    .sink
                    .as_ref()
                    .map_or(NfsStat::OK, |s| s.recall_any(*mask, *keep));
                (cbop::RECALL_ANY, st, None)
            }
            CbOp::RecallableObjAvail { mask } => {
                let st = ctx
                    .sink
                    .as_ref()
                    .map_or(NfsStat::OK, |s| s.recallable_obj_avail(*mask));
                (cbop::RECALLABLE_OBJ_AVAIL, st, None)
            }
            CbOp::NotifyDeviceId(n) => {
                let st = ctx
                    .sink
                    .as_ref()
                    .map_or(NfsStat::OK, |s| s.notify_deviceid(n));
                (cbop::NOTIFY_DEVICEID, st, None)
            }
            CbOp::Recall { stateid, fh } => {
                // We never keep delegations; if the server granted one we return it.
                follow.push(FollowUp::ReturnDelegation {
                    fh: fh.clone(),
                    stateid: *stateid,
                });
                (cbop::RECALL, NfsStat::OK, None)
            }
            CbOp::GetAttr => (cbop::GETATTR, NfsStat::BADHANDLE, None),
            CbOp::NotSupported(n) => (*n, NfsStat::NOTSUPP, None),
            CbOp::Illegal => (cbop::ILLEGAL, NfsStat::OP_ILLEGAL, None),
        };
        results.push((num, status, body));
        if !status.is_ok() {
            break;
        }
    }
    let last = results.last().map_or(NfsStat::OK, |r| r.1);
    let mut enc = result_header(&cb.tag, last, results.len());
    for (num, st, body) in &results {
        enc.put_u32(*num);
        enc.put_u32(st.0);
        if let Some(b) = body {
            let mut v = enc.into_inner();
            v.extend_from_slice(b);
            enc = Encoder::with_buffer(v);
        }
    }
    let reply = enc.into_inner();
    if let Some(slot) = seq_slot {
        ctx.slots.finish(slot, &reply);
    }
    (reply, follow)
}

fn op_number(op: &CbOp) -> u32 {
    match op {
        CbOp::Sequence { .. } => cbop::SEQUENCE,
        CbOp::LayoutRecall(_) => cbop::LAYOUTRECALL,
        CbOp::RecallAny { .. } => cbop::RECALL_ANY,
        CbOp::RecallableObjAvail { .. } => cbop::RECALLABLE_OBJ_AVAIL,
        CbOp::NotifyDeviceId(_) => cbop::NOTIFY_DEVICEID,
        CbOp::Recall { .. } => cbop::RECALL,
        CbOp::GetAttr => cbop::GETATTR,
        CbOp::NotSupported(n) => *n,
        CbOp::Illegal => cbop::ILLEGAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mds_api::BoxFuture;
    use pnfs_proto::nfs4::LayoutIoMode;
    use std::sync::Arc;

    #[derive(Default)]
    struct Sink(Mutex<Vec<String>>);
    impl CallbackSink for Sink {
        fn layout_recall(&self, r: LayoutRecall) -> NfsStat {
            self.0
                .lock()
                .unwrap()
                .push(format!("recall {:?}", r.target));
            NfsStat::OK
        }
        fn recall_any(&self, mask: u32, keep: u32) -> NfsStat {
            self.0.lock().unwrap().push(format!("any {mask} {keep}"));
            NfsStat::OK
        }
        fn notify_deviceid(&self, n: &[DeviceNotification]) -> NfsStat {
            self.0.lock().unwrap().push(format!("notify {}", n.len()));
            NfsStat::OK
        }
        fn server_restarted(&self) -> BoxFuture<()> {
            Box::pin(async {})
        }
        fn state_lost(&self) {}
    }

    fn compound(session: SessionId, seqid: u32, body: impl Fn(&mut Encoder), nops: u32) -> Vec<u8> {
        let mut e = Encoder::new();
        e.put_str("t");
        e.put_u32(1);
        e.put_u32(0);
        e.put_u32(nops + 1);
        e.put_u32(cbop::SEQUENCE);
        e.put(&session);
        e.put_u32(seqid);
        e.put_u32(0);
        e.put_u32(0);
        e.put_bool(false);
        e.put_u32(0);
        body(&mut e);
        e.into_inner()
    }

    #[test]
    fn layoutrecall_is_dispatched_and_a_retransmission_gets_the_cached_reply() {
        let session = SessionId([7; 16]);
        let slots = CbSlotTable::new(1);
        let sink = Arc::new(Sink::default());
        let ctx = CbContext {
            session,
            slots: &slots,
            sink: Some(sink.clone()),
        };
        let args = compound(
            session,
            1,
            |e| {
                e.put_u32(cbop::LAYOUTRECALL);
                e.put(&LayoutType::BlockVolume);
                e.put(&LayoutIoMode::Any);
                e.put_bool(true);
                e.put_u32(3);
            },
            1,
        );
        let cb = decode_cb_compound(&args).unwrap();
        let (reply, _) = handle_cb_compound(&cb, &ctx);
        let mut d = Decoder::new(&reply);
        assert_eq!(d.u32().unwrap(), 0);
        assert_eq!(sink.0.lock().unwrap().as_slice(), ["recall All"]);
        // Same seqid again: replayed from the cache, the sink is not called twice.
        let (again, _) = handle_cb_compound(&cb, &ctx);
        assert_eq!(again, reply);
        assert_eq!(sink.0.lock().unwrap().len(), 1);
        // A seqid that skips: SEQ_MISORDERED.
        let cb3 = decode_cb_compound(&compound(session, 3, |_| {}, 0)).unwrap();
        let (r, _) = handle_cb_compound(&cb3, &ctx);
        assert_eq!(Decoder::new(&r).u32().unwrap(), NfsStat::SEQ_MISORDERED.0);
        // Wrong session: BADSESSION.
        let cbx = decode_cb_compound(&compound(SessionId([1; 16]), 2, |_| {}, 0)).unwrap();
        let (r, _) = handle_cb_compound(&cbx, &ctx);
        assert_eq!(Decoder::new(&r).u32().unwrap(), NfsStat::BADSESSION.0);
    }

    #[test]
    fn unknown_ops_get_illegal_and_recall_returns_the_delegation() {
        let session = SessionId([7; 16]);
        let slots = CbSlotTable::new(2);
        let ctx = CbContext {
            session,
            slots: &slots,
            sink: None,
        };
        let cb = decode_cb_compound(&compound(session, 1, |e| e.put_u32(999), 1)).unwrap();
        let (r, _) = handle_cb_compound(&cb, &ctx);
        let mut d = Decoder::new(&r);
        assert_eq!(d.u32().unwrap(), NfsStat::OP_ILLEGAL.0);
        let cb = decode_cb_compound(&compound(
            session,
            2,
            |e| {
                e.put_u32(cbop::RECALL);
                e.put(&Stateid::default());
                e.put_bool(false);
                e.put(&FileHandle(vec![1, 2]));
            },
            1,
        ))
        .unwrap();
        let (r, follow) = handle_cb_compound(&cb, &ctx);
        assert_eq!(Decoder::new(&r).u32().unwrap(), 0);
        assert_eq!(follow.len(), 1);
        // Truncated arguments: a decode error, not a panic.
        assert!(decode_cb_compound(&[0, 0, 0, 1]).is_err());
    }
}
