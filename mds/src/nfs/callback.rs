//! The callbacks this server sends (CB_COMPOUND with CB_SEQUENCE + CB_LAYOUTRECALL) and the
//! reading of their replies, on `pnfs_proto::nfs4::cb`.

use pnfs_proto::nfs4::cb::{
    CbArgOp, CbCompoundArgs, CbCompoundRes, CbLayoutRecallArgs, CbRecallArgs, CbResOp,
    CbSequenceArgs, LayoutRecall, LayoutRecallFile,
};
use pnfs_proto::nfs4::{FileHandle, LayoutIoMode, LayoutType, NfsStat, SessionId, Stateid};
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrResult};

/// The back-channel slot every callback uses (the server sends one at a time per session).
const CB_SLOT: u32 = 0;

/// A CB_LAYOUTRECALL or CB_RECALL the server should send after releasing the state lock.
#[derive(Debug, Clone)]
pub struct Recall {
    /// The holder.
    pub clientid: u64,
    /// The file.
    pub fh: Vec<u8>,
    /// The layout stateid (its seqid already bumped for the recall) or delegation stateid.
    pub stateid: Stateid,
    /// A delegation (CB_RECALL), not a layout (CB_LAYOUTRECALL).
    pub delegation: bool,
}

/// The CB_COMPOUND4args of recall `r`: [`layoutrecall_args`] or [`deleg_recall_args`].
pub(crate) fn recall_args(sess: &[u8; 16], cb_seq: u32, r: &Recall) -> Vec<u8> {
    if r.delegation {
        deleg_recall_args(sess, cb_seq, r)
    } else {
        layoutrecall_args(sess, cb_seq, r)
    }
}

/// CB_SEQUENCE on slot 0 of `sess`.
fn cb_sequence(sess: &[u8; 16], cb_seq: u32) -> CbArgOp {
    CbArgOp::Sequence(CbSequenceArgs {
        sessionid: SessionId(*sess),
        sequenceid: cb_seq,
        slotid: CB_SLOT,
        highest_slotid: CB_SLOT,
        cachethis: false,
        referring_call_lists: Vec::new(),
    })
}

/// The CB_COMPOUND4args of a CB_RECALL of delegation `r` (RFC 8881 §20.2; no truncation).
pub(crate) fn deleg_recall_args(sess: &[u8; 16], cb_seq: u32, r: &Recall) -> Vec<u8> {
    to_bytes(&CbCompoundArgs {
        tag: String::new(),
        minorversion: 1,
        callback_ident: 0,
        ops: vec![
            cb_sequence(sess, cb_seq),
            CbArgOp::Recall(CbRecallArgs {
                stateid: r.stateid,
                truncate: false,
                fh: FileHandle(r.fh.clone()),
            }),
        ],
    })
}

/// The CB_COMPOUND4args of a whole-file recall of `r` (any iomode), sent on slot 0 of
/// session `sess` with CB_SEQUENCE sequence id `cb_seq`.
pub(crate) fn layoutrecall_args(sess: &[u8; 16], cb_seq: u32, r: &Recall) -> Vec<u8> {
    to_bytes(&CbCompoundArgs {
        tag: String::new(),
        minorversion: 1,
        callback_ident: 0,
        ops: vec![
            cb_sequence(sess, cb_seq),
            CbArgOp::LayoutRecall(CbLayoutRecallArgs {
                layout_type: LayoutType::BlockVolume,
                iomode: LayoutIoMode::Any,
                changed: false,
                recall: LayoutRecall::File(LayoutRecallFile {
                    fh: FileHandle(r.fh.clone()),
                    offset_bytes: 0,
                    length_bytes: u64::MAX,
                    stateid: r.stateid,
                }),
            }),
        ],
    })
}

/// What a CB_COMPOUND reply says: the compound status, and the CB_LAYOUTRECALL or CB_RECALL
/// status if the client got that far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CbOutcome {
    /// COMPOUND status (that of the first failing op).
    pub status: NfsStat,
    /// Status of CB_LAYOUTRECALL or CB_RECALL, when it ran.
    pub recall: Option<NfsStat>,
}

/// Reads a CB_COMPOUND4res (the bytes after the RPC reply header).
pub(crate) fn read_reply(body: &[u8]) -> XdrResult<CbOutcome> {
    let res: CbCompoundRes = from_bytes(body)?;
    let recall = res.results.iter().find_map(|r| match r {
        CbResOp::LayoutRecall(s) | CbResOp::Recall(s) => Some(*s),
        _ => None,
    });
    Ok(CbOutcome {
        status: res.status,
        recall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnfs_proto::nfs4::cb::CbSequenceResOk;

    fn recall() -> Recall {
        Recall {
            clientid: 7,
            fh: vec![1, 2, 3, 4],
            stateid: Stateid {
                seqid: 3,
                other: [9; 12],
            },
            delegation: false,
        }
    }

    #[test]
    fn layoutrecall_decodes_to_what_was_meant() {
        let bytes = layoutrecall_args(&[5; 16], 2, &recall());
        let args: CbCompoundArgs = from_bytes(&bytes).unwrap();
        assert_eq!(args.minorversion, 1);
        let [CbArgOp::Sequence(s), CbArgOp::LayoutRecall(l)] = args.ops.as_slice() else {
            panic!("ops {:?}", args.ops);
        };
        assert_eq!((s.sessionid.0, s.sequenceid, s.slotid), ([5; 16], 2, 0));
        assert_eq!(l.iomode, LayoutIoMode::Any);
        let LayoutRecall::File(f) = &l.recall else {
            panic!("not a file recall");
        };
        assert_eq!(f.fh.0, vec![1, 2, 3, 4]);
        assert_eq!(f.stateid.seqid, 3);
        assert_eq!((f.offset_bytes, f.length_bytes), (0, u64::MAX));
    }

    #[test]
    fn reply_statuses_are_read() {
        let seq = CbResOp::Sequence(Ok(CbSequenceResOk {
            sessionid: SessionId([5; 16]),
            sequenceid: 2,
            slotid: 0,
            highest_slotid: 0,
            target_highest_slotid: 0,
        }));
        let nomatch = CbCompoundRes::from_results(
            String::new(),
            vec![
                seq.clone(),
                CbResOp::LayoutRecall(NfsStat::NOMATCHING_LAYOUT),
            ],
        );
        let out = read_reply(&to_bytes(&nomatch)).unwrap();
        assert_eq!(out.status, NfsStat::NOMATCHING_LAYOUT);
        assert_eq!(out.recall, Some(NfsStat::NOMATCHING_LAYOUT));
        let misordered = CbCompoundRes::from_results(
            String::new(),
            vec![CbResOp::Sequence(Err(NfsStat::SEQ_MISORDERED))],
        );
        let out = read_reply(&to_bytes(&misordered)).unwrap();
        assert_eq!((out.status, out.recall), (NfsStat::SEQ_MISORDERED, None));
        assert!(read_reply(&[0, 0, 0]).is_err());
    }
}
