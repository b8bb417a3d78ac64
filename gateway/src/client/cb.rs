//! The backchannel (RFC 8881 §20): CB_COMPOUND (decoded by `pnfs_proto::nfs4::cb`), CB_SEQUENCE
//! checks against the back-channel slot table (with a reply cache per slot), and dispatch of
//! CB_LAYOUTRECALL, CB_RECALL_ANY, CB_NOTIFY_DEVICEID and CB_RECALLABLE_OBJ_AVAIL to the pNFS
//! layer's [`CallbackSink`]. This client never holds delegations: CB_RECALL is answered OK and
//! the delegation returned, CB_GETATTR gets BADHANDLE. Pure except for the sink calls.

use crate::sync::LockExt;
use std::sync::Mutex;

use pnfs_proto::nfs4::cb::{
    CbArgOp, CbCompoundArgs, CbCompoundRes, CbResOp, CbSequenceResOk, LayoutRecall as PRecall,
};
use pnfs_proto::nfs4::{FileHandle, NfsStat, SessionId, Stateid};
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrResult};

use crate::mds_api::{CallbackSink, LayoutRecall, RecallTarget};

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
        let mut slots = self.slots.lock_unpoisoned();
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
        let mut slots = self.slots.lock_unpoisoned();
        if let Some(s) = usize::try_from(slot).ok().and_then(|i| slots.get_mut(i)) {
            s.in_progress = false;
            s.cached = Some(reply.to_vec());
        }
    }
}

/// Decodes CB_COMPOUND4args. A decode error means GARBAGE_ARGS for the RPC.
pub fn decode_cb_compound(args: &[u8]) -> XdrResult<CbCompoundArgs> {
    from_bytes(args)
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

fn to_recall(a: &pnfs_proto::nfs4::cb::CbLayoutRecallArgs) -> LayoutRecall {
    LayoutRecall {
        layout_type: a.layout_type,
        iomode: a.iomode,
        changed: a.changed,
        target: match &a.recall {
            PRecall::File(f) => RecallTarget::File {
                fh: f.fh.clone(),
                offset_bytes: f.offset_bytes,
                length_bytes: f.length_bytes,
                stateid: f.stateid,
            },
            PRecall::Fsid(f) => RecallTarget::Fsid {
                major: f.major,
                minor: f.minor,
            },
            PRecall::All => RecallTarget::All,
        },
    }
}

/// Processes one CB_COMPOUND and returns the encoded CB_COMPOUND4res plus follow-up work.
pub fn handle_cb_compound(cb: &CbCompoundArgs, ctx: &CbContext<'_>) -> (Vec<u8>, Vec<FollowUp>) {
    let mut follow = Vec::new();
    if cb.minorversion != 1 {
        let res = CbCompoundRes {
            status: NfsStat::MINOR_VERS_MISMATCH,
            tag: cb.tag.clone(),
            results: vec![],
        };
        return (to_bytes(&res), follow);
    }
    let mut results = Vec::new();
    let mut seq_slot = None;
    for (i, op) in cb.ops.iter().enumerate() {
        let res = match op {
            CbArgOp::Sequence(_) if i != 0 => CbResOp::error_for(op, NfsStat::SEQUENCE_POS),
            CbArgOp::Sequence(a) if a.sessionid != ctx.session => {
                CbResOp::error_for(op, NfsStat::BADSESSION)
            }
            CbArgOp::Sequence(a) => match ctx.slots.check(a.slotid, a.sequenceid, a.highest_slotid)
            {
                CbSeqDecision::Replay(bytes) => return (bytes, follow),
                CbSeqDecision::Error(st) => CbResOp::error_for(op, st),
                CbSeqDecision::New => {
                    seq_slot = Some(a.slotid);
                    CbResOp::Sequence(Ok(CbSequenceResOk {
                        sessionid: a.sessionid,
                        sequenceid: a.sequenceid,
                        slotid: a.slotid,
                        highest_slotid: a.highest_slotid,
                        target_highest_slotid: a.highest_slotid,
                    }))
                }
            },
            _ if i == 0 => CbResOp::error_for(op, NfsStat::OP_NOT_IN_SESSION),
            CbArgOp::LayoutRecall(a) => CbResOp::LayoutRecall(match &ctx.sink {
                Some(s) => s.layout_recall(to_recall(a)),
                // No pNFS layer registered: no layout can exist.
                None => NfsStat::NOMATCHING_LAYOUT,
            }),
            CbArgOp::RecallAny(a) => {
                let mask = a.type_mask.0.first().copied().unwrap_or(0);
                CbResOp::RecallAny(
                    ctx.sink
                        .as_ref()
                        .map_or(NfsStat::OK, |s| s.recall_any(mask, a.objects_to_keep)),
                )
            }
            CbArgOp::RecallableObjAvail(a) => {
                let mask = a.type_mask.0.first().copied().unwrap_or(0);
                CbResOp::RecallableObjAvail(
                    ctx.sink
                        .as_ref()
                        .map_or(NfsStat::OK, |s| s.recallable_obj_avail(mask)),
                )
            }
            CbArgOp::NotifyDeviceid(a) => CbResOp::NotifyDeviceid(
                ctx.sink
                    .as_ref()
                    .map_or(NfsStat::OK, |s| s.notify_deviceid(&a.changes)),
            ),
            CbArgOp::Recall(a) => {
                // We never keep delegations; if the server granted one we return it.
                follow.push(FollowUp::ReturnDelegation {
                    fh: a.fh.clone(),
                    stateid: a.stateid,
                });
                CbResOp::Recall(NfsStat::OK)
            }
            CbArgOp::Getattr(_) => CbResOp::error_for(op, NfsStat::BADHANDLE),
            CbArgOp::Illegal { .. } => CbResOp::Illegal(NfsStat::OP_ILLEGAL),
            other => CbResOp::error_for(other, NfsStat::NOTSUPP),
        };
        let failed = !res.status().is_ok();
        results.push(res);
        if failed {
            break;
        }
    }
    let reply = to_bytes(&CbCompoundRes::from_results(cb.tag.clone(), results));
    if let Some(slot) = seq_slot {
        ctx.slots.finish(slot, &reply);
    }
    (reply, follow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mds_api::BoxFuture;
    use crate::mds_api::DeviceNotification;
    use pnfs_proto::nfs4::cb::{
        CbLayoutRecallArgs, CbRecallArgs, CbRecallSlotArgs, CbSequenceArgs,
    };
    use pnfs_proto::nfs4::{LayoutIoMode, LayoutType};
    use pnfs_proto::xdr::Decoder;
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

    fn compound(session: SessionId, seqid: u32, rest: Vec<CbArgOp>) -> Vec<u8> {
        let mut ops = vec![CbArgOp::Sequence(CbSequenceArgs {
            sessionid: session,
            sequenceid: seqid,
            slotid: 0,
            highest_slotid: 0,
            cachethis: false,
            referring_call_lists: vec![],
        })];
        ops.extend(rest);
        to_bytes(&CbCompoundArgs {
            tag: "t".into(),
            minorversion: 1,
            callback_ident: 0,
            ops,
        })
    }

    fn status(reply: &[u8]) -> NfsStat {
        NfsStat(Decoder::new(reply).u32().unwrap())
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
        let recall = CbArgOp::LayoutRecall(CbLayoutRecallArgs {
            layout_type: LayoutType::BlockVolume,
            iomode: LayoutIoMode::Any,
            changed: true,
            recall: PRecall::All,
        });
        let cb = decode_cb_compound(&compound(session, 1, vec![recall])).unwrap();
        let (reply, _) = handle_cb_compound(&cb, &ctx);
        let res: CbCompoundRes = from_bytes(&reply).unwrap();
        assert_eq!(res.status, NfsStat::OK);
        assert_eq!(res.results.len(), 2);
        assert_eq!(sink.0.lock().unwrap().as_slice(), ["recall All"]);
        // Same seqid again: replayed from the cache, the sink is not called twice.
        let (again, _) = handle_cb_compound(&cb, &ctx);
        assert_eq!(again, reply);
        assert_eq!(sink.0.lock().unwrap().len(), 1);
        // A seqid that skips: SEQ_MISORDERED.
        let cb3 = decode_cb_compound(&compound(session, 3, vec![])).unwrap();
        assert_eq!(
            status(&handle_cb_compound(&cb3, &ctx).0),
            NfsStat::SEQ_MISORDERED
        );
        // Wrong session: BADSESSION.
        let cbx = decode_cb_compound(&compound(SessionId([1; 16]), 2, vec![])).unwrap();
        assert_eq!(
            status(&handle_cb_compound(&cbx, &ctx).0),
            NfsStat::BADSESSION
        );
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
        let cb = decode_cb_compound(&compound(session, 1, vec![CbArgOp::Illegal { opnum: 999 }]))
            .unwrap();
        assert_eq!(
            status(&handle_cb_compound(&cb, &ctx).0),
            NfsStat::OP_ILLEGAL
        );
        let recall = CbArgOp::Recall(CbRecallArgs {
            stateid: Stateid::default(),
            truncate: false,
            fh: FileHandle(vec![1, 2]),
        });
        let cb = decode_cb_compound(&compound(session, 2, vec![recall])).unwrap();
        let (r, follow) = handle_cb_compound(&cb, &ctx);
        assert_eq!(status(&r), NfsStat::OK);
        assert_eq!(follow.len(), 1);
        // CB_SEQUENCE not first: OP_NOT_IN_SESSION.
        let no_seq = to_bytes(&CbCompoundArgs {
            tag: String::new(),
            minorversion: 1,
            callback_ident: 0,
            ops: vec![CbArgOp::RecallSlot(CbRecallSlotArgs {
                target_highest_slotid: 0,
            })],
        });
        let cb = decode_cb_compound(&no_seq).unwrap();
        assert_eq!(
            status(&handle_cb_compound(&cb, &ctx).0),
            NfsStat::OP_NOT_IN_SESSION
        );
        // Truncated arguments: a decode error, not a panic.
        assert!(decode_cb_compound(&[0, 0, 0, 1]).is_err());
    }
}
