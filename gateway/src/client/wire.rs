//! The fore-channel COMPOUNDs this client sends (RFC 8881 §18). Requests and results are
//! `pnfs_proto::nfs4` types ([`NfsArgOp`], [`NfsResOp`]) — there is one protocol vocabulary;
//! this module only adds constructors for the operations whose proto form has fields this
//! client always sets the same way, the COMPOUND codec with the reply checks (result order,
//! count), and [`Attrs`], the attributes the client asks for, typed. No I/O; every length from
//! the server is bounded by proto's decoders plus the checks here.

use pnfs_proto::nfs4::attr::Fattr;
use pnfs_proto::nfs4::ops as p;
use pnfs_proto::nfs4::ops::{NfsArgOp, NfsResOp};
use pnfs_proto::nfs4::{
    Bitmap4, ClientId, Fattr4, LayoutType, NfsStat, SequenceId, SessionId, SlotId, Stateid,
    Verifier,
};
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrError, XdrResult};

/// NFSv4 minor version used.
pub const MINOR_VERSION: u32 = 1;
/// Most operations in one compound we accept in a reply.
pub const MAX_COMPOUND_OPS: usize = 32;
/// Largest GETDEVICEINFO reply we ask for (proto bounds device addresses at 1 MiB).
pub const MAX_BODY_BYTES: usize = p::NFS4_MAX_DEVICE_ADDR_BYTES;

/// Operation numbers (nfs_opnum4) the client uses, from proto.
pub mod opnum {
    pub use pnfs_proto::nfs4::ops::{
        OP_BIND_CONN_TO_SESSION as BIND_CONN_TO_SESSION, OP_CLOSE as CLOSE, OP_COMMIT as COMMIT,
        OP_CREATE_SESSION as CREATE_SESSION, OP_DELEGRETURN as DELEGRETURN,
        OP_DESTROY_CLIENTID as DESTROY_CLIENTID, OP_DESTROY_SESSION as DESTROY_SESSION,
        OP_EXCHANGE_ID as EXCHANGE_ID, OP_GETATTR as GETATTR, OP_GETDEVICEINFO as GETDEVICEINFO,
        OP_GETFH as GETFH, OP_ILLEGAL as ILLEGAL, OP_LAYOUTCOMMIT as LAYOUTCOMMIT,
        OP_LAYOUTGET as LAYOUTGET, OP_LAYOUTRETURN as LAYOUTRETURN, OP_LOOKUP as LOOKUP,
        OP_OPEN as OPEN, OP_PUTFH as PUTFH, OP_PUTROOTFH as PUTROOTFH, OP_READ as READ,
        OP_RECLAIM_COMPLETE as RECLAIM_COMPLETE, OP_SEQUENCE as SEQUENCE, OP_SETATTR as SETATTR,
        OP_WRITE as WRITE,
    };
    pub use pnfs_proto::nfs4::ops::{
        OP_FREE_STATEID as FREE_STATEID, OP_TEST_STATEID as TEST_STATEID,
    };
}

/// Attribute numbers used.
pub mod attr {
    /// type.
    pub const TYPE: u32 = 1;
    /// change.
    pub const CHANGE: u32 = 3;
    /// size.
    pub const SIZE: u32 = 4;
    /// fsid.
    pub const FSID: u32 = 8;
    /// lease_time.
    pub const LEASE_TIME: u32 = 10;
    /// fileid.
    pub const FILEID: u32 = 20;
    /// mode.
    pub const MODE: u32 = 33;
    /// fs_layout_types.
    pub const FS_LAYOUT_TYPES: u32 = 62;
    /// layout_blksize.
    pub const LAYOUT_BLKSIZE: u32 = 65;
    /// layout_alignment.
    pub const LAYOUT_ALIGNMENT: u32 = 66;
}

/// EXCHANGE_ID flags.
pub mod exchgid {
    pub use pnfs_proto::nfs4::ops::{
        EXCHGID4_FLAG_CONFIRMED_R as CONFIRMED_R, EXCHGID4_FLAG_USE_PNFS_MDS as USE_PNFS_MDS,
    };
}

pub use pnfs_proto::nfs4::ops::CREATE_SESSION4_FLAG_CONN_BACK_CHAN;

/// SEQUENCE status flags (sr_status_flags).
pub mod seq4 {
    pub use pnfs_proto::nfs4::ops::{
        SEQ4_STATUS_ADMIN_STATE_REVOKED as ADMIN_STATE_REVOKED,
        SEQ4_STATUS_BACKCHANNEL_FAULT as BACKCHANNEL_FAULT,
        SEQ4_STATUS_CB_PATH_DOWN as CB_PATH_DOWN,
        SEQ4_STATUS_CB_PATH_DOWN_SESSION as CB_PATH_DOWN_SESSION,
        SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED as EXPIRED_ALL_STATE_REVOKED,
        SEQ4_STATUS_EXPIRED_SOME_STATE_REVOKED as EXPIRED_SOME_STATE_REVOKED,
        SEQ4_STATUS_RECALLABLE_STATE_REVOKED as RECALLABLE_STATE_REVOKED,
        SEQ4_STATUS_RESTART_RECLAIM_NEEDED as RESTART_RECLAIM_NEEDED,
    };
}

/// OPEN share access / deny / want bits.
pub mod share {
    pub use pnfs_proto::nfs4::ops::{
        OPEN4_SHARE_ACCESS_BOTH as ACCESS_BOTH, OPEN4_SHARE_ACCESS_READ as ACCESS_READ,
        OPEN4_SHARE_ACCESS_WANT_NO_DELEG as WANT_NO_DELEG, OPEN4_SHARE_DENY_NONE as DENY_NONE,
    };
}

fn attrs_with(set: impl FnOnce(&mut Fattr)) -> Fattr4 {
    let mut f = Fattr::default();
    set(&mut f);
    f.to_fattr4()
}

/// SEQUENCE.
pub fn sequence(
    session: SessionId,
    seqid: SequenceId,
    slot: SlotId,
    highest_slot: SlotId,
    cache_this: bool,
) -> NfsArgOp {
    NfsArgOp::Sequence(p::SequenceArgs {
        sessionid: session,
        sequenceid: seqid,
        slotid: slot,
        highest_slotid: highest_slot,
        cachethis: cache_this,
    })
}

/// LOOKUP of one component.
pub fn lookup(name: &str) -> NfsArgOp {
    NfsArgOp::Lookup(p::LookupArgs {
        objname: name.to_owned(),
    })
}

/// GETATTR of the given attribute numbers.
pub fn getattr(attrs: &[u32]) -> NfsArgOp {
    NfsArgOp::Getattr(p::GetattrArgs {
        attr_request: Bitmap4::from_bits(attrs),
    })
}

/// OPEN4_CREATE, GUARDED4 with the permission bits `mode`.
pub fn create_guarded(mode: u32) -> p::OpenFlag {
    p::OpenFlag::Create(p::CreateHow::Guarded(attrs_with(|f| f.mode = Some(mode))))
}

/// OPEN with share deny NONE; `owner` is the open_owner4 owner of client `clientid`.
pub fn open(
    access: u32,
    owner: Vec<u8>,
    clientid: ClientId,
    openhow: p::OpenFlag,
    claim: p::OpenClaim,
) -> NfsArgOp {
    NfsArgOp::Open(p::OpenArgs {
        seqid: 0,
        share_access: access,
        share_deny: share::DENY_NONE,
        owner: p::StateOwner { clientid, owner },
        openhow,
        claim,
    })
}

/// CLOSE of an open stateid.
pub fn close(stateid: Stateid) -> NfsArgOp {
    NfsArgOp::Close(p::CloseArgs {
        seqid: 0,
        open_stateid: stateid,
    })
}

/// SETATTR of the size only.
pub fn set_size(stateid: Stateid, size_bytes: u64) -> NfsArgOp {
    NfsArgOp::Setattr(p::SetattrArgs {
        stateid,
        obj_attributes: attrs_with(|f| f.size = Some(size_bytes)),
    })
}

/// EXCHANGE_ID; with `mach_cred`, SP4_MACH_CRED with the op sets of RFC 8881 §18.35.3
/// instead of SP4_NONE.
pub fn exchange_id(verifier: Verifier, owner: Vec<u8>, flags: u32, mach_cred: bool) -> NfsArgOp {
    NfsArgOp::ExchangeId(p::ExchangeIdArgs {
        clientowner: p::ClientOwner {
            verifier,
            ownerid: owner,
        },
        flags,
        state_protect: if mach_cred {
            // spo_must_enforce: the client-ID and session ops (RFC 8881 §18.35.3);
            // spo_must_allow: state teardown the machine credential may do.
            p::StateProtectA::MachCred(p::StateProtectOps {
                must_enforce: Bitmap4::from_bits(&[
                    opnum::BIND_CONN_TO_SESSION,
                    opnum::EXCHANGE_ID,
                    opnum::CREATE_SESSION,
                    opnum::DESTROY_SESSION,
                    opnum::DESTROY_CLIENTID,
                ]),
                must_allow: Bitmap4::from_bits(&[
                    opnum::CLOSE,
                    opnum::COMMIT,
                    opnum::DELEGRETURN,
                    opnum::WRITE,
                    opnum::LAYOUTRETURN,
                ]),
            })
        } else {
            p::StateProtectA::None
        },
        client_impl_id: None,
    })
}

/// BIND_CONN_TO_SESSION, fore channel or both, no RDMA.
pub fn bind_conn_to_session(session: SessionId) -> NfsArgOp {
    NfsArgOp::BindConnToSession(p::BindConnToSessionArgs {
        sessid: session,
        dir: p::ChannelDirFromClient::ForeOrBoth,
        use_conn_in_rdma_mode: false,
    })
}

/// Operation name for errors and logs.
pub fn op_name(op: u32) -> &'static str {
    use opnum::*;
    match op {
        SEQUENCE => "SEQUENCE",
        PUTROOTFH => "PUTROOTFH",
        PUTFH => "PUTFH",
        LOOKUP => "LOOKUP",
        GETFH => "GETFH",
        GETATTR => "GETATTR",
        OPEN => "OPEN",
        CLOSE => "CLOSE",
        SETATTR => "SETATTR",
        READ => "READ",
        WRITE => "WRITE",
        COMMIT => "COMMIT",
        DELEGRETURN => "DELEGRETURN",
        TEST_STATEID => "TEST_STATEID",
        FREE_STATEID => "FREE_STATEID",
        EXCHANGE_ID => "EXCHANGE_ID",
        CREATE_SESSION => "CREATE_SESSION",
        DESTROY_SESSION => "DESTROY_SESSION",
        DESTROY_CLIENTID => "DESTROY_CLIENTID",
        BIND_CONN_TO_SESSION => "BIND_CONN_TO_SESSION",
        RECLAIM_COMPLETE => "RECLAIM_COMPLETE",
        LAYOUTGET => "LAYOUTGET",
        LAYOUTCOMMIT => "LAYOUTCOMMIT",
        LAYOUTRETURN => "LAYOUTRETURN",
        GETDEVICEINFO => "GETDEVICEINFO",
        _ => "ILLEGAL",
    }
}

/// Encodes COMPOUND4args.
pub fn encode_compound(tag: &str, ops: Vec<NfsArgOp>) -> Vec<u8> {
    to_bytes(&p::CompoundArgs::new(tag, ops))
}

/// Decoded attributes (only those this client asks for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// type.
    pub file_type: Option<u32>,
    /// change.
    pub change: Option<u64>,
    /// size.
    pub size_bytes: Option<u64>,
    /// fsid (major, minor).
    pub fsid: Option<(u64, u64)>,
    /// lease_time in seconds.
    pub lease_time_s: Option<u32>,
    /// fileid.
    pub fileid: Option<u64>,
    /// fs_layout_types.
    pub fs_layout_types: Vec<LayoutType>,
    /// layout_blksize.
    pub layout_blksize: Option<u32>,
    /// layout_alignment.
    pub layout_alignment: Option<u32>,
}

impl Attrs {
    /// From a decoded fattr4 (proto checks every value; unknown attributes are an error).
    pub fn from_fattr4(f: &Fattr4) -> XdrResult<Self> {
        let a = Fattr::from_fattr4(f)?;
        Ok(Self {
            file_type: a.file_type,
            change: a.change,
            size_bytes: a.size,
            fsid: a.fsid.map(|f| (f.major, f.minor)),
            lease_time_s: a.lease_time,
            fileid: a.fileid,
            fs_layout_types: a.fs_layout_types.unwrap_or_default(),
            layout_blksize: a.layout_blksize,
            layout_alignment: a.layout_alignment,
        })
    }
}

/// The delegation stateid an OPEN granted anyway (we return it at once), if any.
pub fn delegation_stateid(d: &p::OpenDelegation) -> Option<Stateid> {
    match d {
        p::OpenDelegation::Read(r) => Some(r.stateid),
        p::OpenDelegation::Write(w) => Some(w.stateid),
        _ => None,
    }
}

/// A failed op: its number and status, and GETDEVICEINFO's gdir_mincount for TOOSMALL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpFailure {
    /// The op number.
    pub opnum: u32,
    /// The status.
    pub status: NfsStat,
    /// gdir_mincount of a GETDEVICEINFO that failed with TOOSMALL.
    pub min_count: Option<u32>,
}

/// A decoded COMPOUND4res.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundRes {
    /// Results of the ops that succeeded, in order.
    pub results: Vec<NfsResOp>,
    /// The op that failed, if any (the compound stopped there).
    pub failure: Option<OpFailure>,
}

/// Decodes COMPOUND4res. `sent` are the op numbers sent, to check the reply's order.
pub fn decode_compound(buf: &[u8], sent: &[u32]) -> XdrResult<CompoundRes> {
    let res: p::CompoundRes = from_bytes(buf)?;
    if res.resarray.len() > sent.len().min(MAX_COMPOUND_OPS) {
        return Err(XdrError::Invalid {
            what: "COMPOUND4res",
            detail: format!("{} results for {} ops", res.resarray.len(), sent.len()),
        });
    }
    let mut results = Vec::with_capacity(res.resarray.len());
    let mut failure = None;
    for (i, r) in res.resarray.into_iter().enumerate() {
        let op = r.opnum();
        if sent.get(i) != Some(&op) && op != opnum::ILLEGAL {
            return Err(XdrError::Invalid {
                what: "COMPOUND4res",
                detail: format!("result {i} is op {op}, sent {:?}", sent.get(i)),
            });
        }
        let status = r.status();
        if status.is_ok() {
            results.push(r);
            continue;
        }
        let min_count = match r {
            NfsResOp::Getdeviceinfo(p::GetdeviceinfoRes::TooSmall { mincount }) => Some(mincount),
            _ => None,
        };
        failure = Some(OpFailure {
            opnum: op,
            status,
            min_count,
        });
        break;
    }
    if failure.is_none() && !res.status.is_ok() {
        // A compound-level error without an op result (e.g. MINOR_VERS_MISMATCH).
        failure = Some(OpFailure {
            opnum: sent.first().copied().unwrap_or(0),
            status: res.status,
            min_count: None,
        });
    }
    Ok(CompoundRes { results, failure })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnfs_proto::xdr::Encoder;

    #[test]
    fn getattr_bitmap_and_attribute_values_go_through_proto() {
        let NfsArgOp::Getattr(g) = getattr(&[attr::SIZE, attr::LAYOUT_BLKSIZE]) else {
            panic!("not GETATTR")
        };
        assert_eq!(
            g.attr_request.0,
            vec![1 << attr::SIZE, 0, 1 << (attr::LAYOUT_BLKSIZE - 64)]
        );
        let fattr = attrs_with(|f| {
            f.size = Some(4096);
            f.layout_blksize = Some(65536);
            f.fs_layout_types = Some(vec![LayoutType::BlockVolume]);
        });
        let a = Attrs::from_fattr4(&fattr).unwrap();
        assert_eq!((a.size_bytes, a.layout_blksize), (Some(4096), Some(65536)));
        assert_eq!(a.fs_layout_types, vec![LayoutType::BlockVolume]);
    }

    #[test]
    fn compound_reply_stops_at_the_failing_op_and_checks_order() {
        let reply = to_bytes(&p::CompoundRes::new(
            "",
            vec![
                p::NfsResOp::Putrootfh(NfsStat::OK),
                p::NfsResOp::Lookup(NfsStat::NOENT),
            ],
        ));
        let r = decode_compound(&reply, &[opnum::PUTROOTFH, opnum::LOOKUP, opnum::GETFH]).unwrap();
        assert_eq!(r.results, vec![NfsResOp::Putrootfh(NfsStat::OK)]);
        assert_eq!(
            r.failure.map(|f| (f.opnum, f.status)),
            Some((opnum::LOOKUP, NfsStat::NOENT))
        );
        assert!(decode_compound(&reply, &[opnum::PUTROOTFH, opnum::GETFH]).is_err());
        // TOOSMALL carries the server's minimum count.
        let reply = to_bytes(&p::CompoundRes::new(
            "",
            vec![p::NfsResOp::Getdeviceinfo(p::GetdeviceinfoRes::TooSmall {
                mincount: 9000,
            })],
        ));
        let f = decode_compound(&reply, &[opnum::GETDEVICEINFO])
            .unwrap()
            .failure
            .unwrap();
        assert_eq!((f.status, f.min_count), (NfsStat::TOOSMALL, Some(9000)));
        // A huge op count is refused before allocating.
        let mut enc = Encoder::new();
        enc.put_u32(0);
        enc.put_str("");
        enc.put_u32(u32::MAX);
        assert!(decode_compound(enc.as_slice(), &[]).is_err());
    }

    #[test]
    fn encoded_compounds_decode_as_the_same_ops() {
        let ops = vec![
            NfsArgOp::Putrootfh,
            lookup("export"),
            open(
                share::ACCESS_BOTH | share::WANT_NO_DELEG,
                b"o".to_vec(),
                5,
                create_guarded(0o600),
                p::OpenClaim::Null("f".into()),
            ),
            NfsArgOp::Getfh,
        ];
        let args: p::CompoundArgs = from_bytes(&encode_compound("t", ops.clone())).unwrap();
        assert_eq!(args.minorversion, MINOR_VERSION);
        assert_eq!(args.argarray, ops);
        assert_eq!(args.argarray[2].opnum(), opnum::OPEN);
    }
}
