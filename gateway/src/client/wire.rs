//! The fore-channel operations this client sends (RFC 8881 §18), as a small vocabulary
//! ([`Op`], [`OpRes`]) mapped onto `pnfs_proto::nfs4::ops`, which does all the XDR. No I/O;
//! every length from the server is bounded by proto's decoders plus the checks here.

use bytes::Bytes;
use pnfs_proto::nfs4::attr::Fattr;
use pnfs_proto::nfs4::ops as p;
use pnfs_proto::nfs4::{
    Bitmap4, ClientId, DeviceId, Fattr4, FileHandle, LayoutIoMode, LayoutType, NfsStat, NfsTime,
    SequenceId, SessionId, SlotId, Stateid, Verifier,
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
/// SP4_NONE.
pub const SP4_NONE: u32 = 0;
/// SP4_MACH_CRED.
pub const SP4_MACH_CRED: u32 = 1;
/// SP4_SSV.
pub const SP4_SSV: u32 = 2;
/// CDFC4_FORE_OR_BOTH.
pub const CDFC4_FORE_OR_BOTH: u32 = 3;
/// CDFS4_BOTH.
pub const CDFS4_BOTH: u32 = 3;

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

/// Channel attributes (channel_attrs4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelAttrs {
    /// ca_headerpadsize.
    pub header_pad_bytes: u32,
    /// ca_maxrequestsize.
    pub max_request_bytes: u32,
    /// ca_maxresponsesize.
    pub max_response_bytes: u32,
    /// ca_maxresponsesize_cached.
    pub max_response_cached_bytes: u32,
    /// ca_maxoperations.
    pub max_operations: u32,
    /// ca_maxrequests (slots).
    pub max_requests: u32,
}

impl ChannelAttrs {
    fn to_proto(self) -> p::ChannelAttrs {
        p::ChannelAttrs {
            headerpadsize: self.header_pad_bytes,
            maxrequestsize: self.max_request_bytes,
            maxresponsesize: self.max_response_bytes,
            maxresponsesize_cached: self.max_response_cached_bytes,
            maxoperations: self.max_operations,
            maxrequests: self.max_requests,
            rdma_ird: None,
        }
    }

    fn from_proto(a: &p::ChannelAttrs) -> Self {
        Self {
            header_pad_bytes: a.headerpadsize,
            max_request_bytes: a.maxrequestsize,
            max_response_bytes: a.maxresponsesize,
            max_response_cached_bytes: a.maxresponsesize_cached,
            max_operations: a.maxoperations,
            max_requests: a.maxrequests,
        }
    }
}

/// How an OPEN names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenClaim {
    /// CLAIM_NULL: name in the current (directory) filehandle.
    Null(String),
    /// CLAIM_PREVIOUS (reclaim after a server restart), delegation type NONE.
    Previous,
    /// CLAIM_FH: the current filehandle is the file.
    Fh,
}

/// How OPEN creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenCreate {
    /// OPEN4_NOCREATE.
    No,
    /// OPEN4_CREATE, GUARDED4 with this mode.
    Guarded {
        /// Permission bits.
        mode: u32,
    },
}

/// One fore-channel operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// SEQUENCE.
    Sequence {
        /// sa_sessionid.
        session: SessionId,
        /// sa_sequenceid.
        seqid: SequenceId,
        /// sa_slotid.
        slot: SlotId,
        /// sa_highest_slotid.
        highest_slot: SlotId,
        /// sa_cachethis.
        cache_this: bool,
    },
    /// PUTROOTFH.
    PutRootFh,
    /// PUTFH.
    PutFh(FileHandle),
    /// LOOKUP.
    Lookup(String),
    /// GETFH.
    GetFh,
    /// GETATTR of the given attribute numbers.
    GetAttr(Vec<u32>),
    /// OPEN.
    Open {
        /// share_access (with want bits).
        access: u32,
        /// open_owner4 owner (the clientid is added from the session).
        owner: Vec<u8>,
        /// The client id.
        clientid: ClientId,
        /// openflag4.
        create: OpenCreate,
        /// open_claim4.
        claim: OpenClaim,
    },
    /// CLOSE.
    Close(Stateid),
    /// SETATTR of the size.
    SetSize {
        /// The open stateid.
        stateid: Stateid,
        /// New size.
        size_bytes: u64,
    },
    /// READ.
    Read {
        /// stateid.
        stateid: Stateid,
        /// offset.
        offset_bytes: u64,
        /// count.
        count_bytes: u32,
    },
    /// WRITE.
    Write {
        /// stateid.
        stateid: Stateid,
        /// offset.
        offset_bytes: u64,
        /// stable_how4 (0, 1, 2).
        stable: u32,
        /// data.
        data: Bytes,
    },
    /// COMMIT.
    Commit {
        /// offset.
        offset_bytes: u64,
        /// count (0 = to EOF).
        count_bytes: u32,
    },
    /// DELEGRETURN.
    DelegReturn(Stateid),
    /// TEST_STATEID.
    TestStateid(Vec<Stateid>),
    /// FREE_STATEID.
    FreeStateid(Stateid),
    /// EXCHANGE_ID.
    ExchangeId {
        /// co_verifier.
        verifier: Verifier,
        /// co_ownerid.
        owner: Vec<u8>,
        /// eia_flags.
        flags: u32,
        /// SP4_MACH_CRED (with the op sets of RFC 8881 §18.35.3) instead of SP4_NONE.
        mach_cred: bool,
    },
    /// CREATE_SESSION.
    CreateSession {
        /// csa_clientid.
        clientid: ClientId,
        /// csa_sequence.
        seqid: SequenceId,
        /// csa_flags.
        flags: u32,
        /// csa_fore_chan_attrs.
        fore: ChannelAttrs,
        /// csa_back_chan_attrs.
        back: ChannelAttrs,
        /// csa_cb_program.
        cb_program: u32,
        /// AUTH_SYS parameters for callbacks (uid, gid, machine name).
        cb_sec: pnfs_proto::rpc::AuthSys,
    },
    /// DESTROY_SESSION.
    DestroySession(SessionId),
    /// DESTROY_CLIENTID.
    DestroyClientId(ClientId),
    /// BIND_CONN_TO_SESSION (fore or both, no RDMA).
    BindConnToSession(SessionId),
    /// RECLAIM_COMPLETE (rca_one_fs = false).
    ReclaimComplete,
    /// LAYOUTGET.
    LayoutGet {
        /// loga_signal_layout_avail.
        signal: bool,
        /// layout type.
        layout_type: LayoutType,
        /// iomode.
        iomode: LayoutIoMode,
        /// offset.
        offset_bytes: u64,
        /// length.
        length_bytes: u64,
        /// minlength.
        min_length_bytes: u64,
        /// stateid.
        stateid: Stateid,
        /// maxcount.
        max_count: u32,
    },
    /// LAYOUTCOMMIT.
    LayoutCommit {
        /// offset.
        offset_bytes: u64,
        /// length.
        length_bytes: u64,
        /// reclaim.
        reclaim: bool,
        /// stateid.
        stateid: Stateid,
        /// newoffset4.
        last_write_offset: Option<u64>,
        /// newtime4.
        time_modify: Option<NfsTime>,
        /// layoutupdate4 type.
        layout_type: LayoutType,
        /// layoutupdate4 body.
        body: Bytes,
    },
    /// LAYOUTRETURN.
    LayoutReturn {
        /// reclaim.
        reclaim: bool,
        /// layout type.
        layout_type: LayoutType,
        /// iomode.
        iomode: LayoutIoMode,
        /// FILE (offset, length, stateid, body), or FSID / ALL.
        target: ReturnTarget,
    },
    /// GETDEVICEINFO.
    GetDeviceInfo {
        /// device id.
        device_id: DeviceId,
        /// layout type.
        layout_type: LayoutType,
        /// maxcount.
        max_count: u32,
        /// notification bitmap word 0.
        notify: u32,
    },
}

/// layoutreturn4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnTarget {
    /// LAYOUTRETURN4_FILE.
    File {
        /// offset.
        offset_bytes: u64,
        /// length.
        length_bytes: u64,
        /// stateid.
        stateid: Stateid,
        /// body.
        body: Bytes,
    },
    /// LAYOUTRETURN4_FSID.
    Fsid,
    /// LAYOUTRETURN4_ALL.
    All,
}

fn attrs_with(set: impl FnOnce(&mut Fattr)) -> Fattr4 {
    let mut f = Fattr::default();
    set(&mut f);
    f.to_fattr4()
}
impl Op {
    /// The operation number.
    pub fn opnum(&self) -> u32 {
        use opnum::*;
        match self {
            Op::Sequence { .. } => SEQUENCE,
            Op::PutRootFh => PUTROOTFH,
            Op::PutFh(_) => PUTFH,
            Op::Lookup(_) => LOOKUP,
            Op::GetFh => GETFH,
            Op::GetAttr(_) => GETATTR,
            Op::Open { .. } => OPEN,
            Op::Close(_) => CLOSE,
            Op::SetSize { .. } => SETATTR,
            Op::Read { .. } => READ,
            Op::Write { .. } => WRITE,
            Op::Commit { .. } => COMMIT,
            Op::DelegReturn(_) => DELEGRETURN,
            Op::TestStateid(_) => TEST_STATEID,
            Op::FreeStateid(_) => FREE_STATEID,
            Op::ExchangeId { .. } => EXCHANGE_ID,
            Op::CreateSession { .. } => CREATE_SESSION,
            Op::DestroySession(_) => DESTROY_SESSION,
            Op::DestroyClientId(_) => DESTROY_CLIENTID,
            Op::BindConnToSession(_) => BIND_CONN_TO_SESSION,
            Op::ReclaimComplete => RECLAIM_COMPLETE,
            Op::LayoutGet { .. } => LAYOUTGET,
            Op::LayoutCommit { .. } => LAYOUTCOMMIT,
            Op::LayoutReturn { .. } => LAYOUTRETURN,
            Op::GetDeviceInfo { .. } => GETDEVICEINFO,
        }
    }

    /// The operation name for errors and logs.
    pub fn name(&self) -> &'static str {
        op_name(self.opnum())
    }

    /// The proto form of this operation.
    pub fn to_proto(&self) -> p::NfsArgOp {
        use p::NfsArgOp as A;
        match self {
            Op::Sequence {
                session,
                seqid,
                slot,
                highest_slot,
                cache_this,
            } => A::Sequence(p::SequenceArgs {
                sessionid: *session,
                sequenceid: *seqid,
                slotid: *slot,
                highest_slotid: *highest_slot,
                cachethis: *cache_this,
            }),
            Op::PutRootFh => A::Putrootfh,
            Op::GetFh => A::Getfh,
            Op::ReclaimComplete => A::ReclaimComplete(false),
            Op::PutFh(fh) => A::Putfh(fh.clone()),
            Op::Lookup(name) => A::Lookup(p::LookupArgs {
                objname: name.clone(),
            }),
            Op::GetAttr(attrs) => A::Getattr(p::GetattrArgs {
                attr_request: Bitmap4::from_bits(attrs),
            }),
            Op::Open {
                access,
                owner,
                clientid,
                create,
                claim,
            } => A::Open(p::OpenArgs {
                seqid: 0,
                share_access: *access,
                share_deny: share::DENY_NONE,
                owner: p::StateOwner {
                    clientid: *clientid,
                    owner: owner.clone(),
                },
                openhow: match create {
                    OpenCreate::No => p::OpenFlag::NoCreate,
                    OpenCreate::Guarded { mode } => {
                        p::OpenFlag::Create(p::CreateHow::Guarded(attrs_with(|f| {
                            f.mode = Some(*mode)
                        })))
                    }
                },
                claim: match claim {
                    OpenClaim::Null(name) => p::OpenClaim::Null(name.clone()),
                    OpenClaim::Previous => p::OpenClaim::Previous(p::OpenDelegationType::None),
                    OpenClaim::Fh => p::OpenClaim::Fh,
                },
            }),
            Op::Close(sid) => A::Close(p::CloseArgs {
                seqid: 0,
                open_stateid: *sid,
            }),
            Op::SetSize {
                stateid,
                size_bytes,
            } => A::Setattr(p::SetattrArgs {
                stateid: *stateid,
                obj_attributes: attrs_with(|f| f.size = Some(*size_bytes)),
            }),
            Op::Read {
                stateid,
                offset_bytes,
                count_bytes,
            } => A::Read(p::ReadArgs {
                stateid: *stateid,
                offset: *offset_bytes,
                count: *count_bytes,
            }),
            Op::Write {
                stateid,
                offset_bytes,
                stable,
                data,
            } => A::Write(p::WriteArgs {
                stateid: *stateid,
                offset: *offset_bytes,
                stable: match stable {
                    0 => p::StableHow::Unstable,
                    1 => p::StableHow::DataSync,
                    _ => p::StableHow::FileSync,
                },
                data: data.to_vec(),
            }),
            Op::Commit {
                offset_bytes,
                count_bytes,
            } => A::Commit(p::CommitArgs {
                offset: *offset_bytes,
                count: *count_bytes,
            }),
            Op::DelegReturn(sid) => A::Delegreturn(*sid),
            Op::TestStateid(sids) => A::TestStateid(p::TestStateidArgs {
                stateids: sids.clone(),
            }),
            Op::FreeStateid(sid) => A::FreeStateid(*sid),
            Op::ExchangeId {
                verifier,
                owner,
                flags,
                mach_cred,
            } => A::ExchangeId(p::ExchangeIdArgs {
                clientowner: p::ClientOwner {
                    verifier: *verifier,
                    ownerid: owner.clone(),
                },
                flags: *flags,
                state_protect: if *mach_cred {
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
            }),
            Op::CreateSession {
                clientid,
                seqid,
                flags,
                fore,
                back,
                cb_program,
                cb_sec,
            } => A::CreateSession(p::CreateSessionArgs {
                clientid: *clientid,
                sequence: *seqid,
                flags: *flags,
                fore_chan_attrs: fore.to_proto(),
                back_chan_attrs: back.to_proto(),
                cb_program: *cb_program,
                sec_parms: vec![p::CallbackSecParms::Sys(cb_sec.clone())],
            }),
            Op::DestroySession(s) => A::DestroySession(*s),
            Op::DestroyClientId(c) => A::DestroyClientid(*c),
            Op::BindConnToSession(s) => A::BindConnToSession(p::BindConnToSessionArgs {
                sessid: *s,
                dir: p::ChannelDirFromClient::ForeOrBoth,
                use_conn_in_rdma_mode: false,
            }),
            Op::LayoutGet {
                signal,
                layout_type,
                iomode,
                offset_bytes,
                length_bytes,
                min_length_bytes,
                stateid,
                max_count,
            } => A::Layoutget(p::LayoutgetArgs {
                signal_layout_avail: *signal,
                layout_type: *layout_type,
                iomode: *iomode,
                offset: *offset_bytes,
                length: *length_bytes,
                minlength: *min_length_bytes,
                stateid: *stateid,
                maxcount: *max_count,
            }),
            Op::LayoutCommit {
                offset_bytes,
                length_bytes,
                reclaim,
                stateid,
                last_write_offset,
                time_modify,
                layout_type,
                body,
            } => A::Layoutcommit(p::LayoutcommitArgs {
                offset: *offset_bytes,
                length: *length_bytes,
                reclaim: *reclaim,
                stateid: *stateid,
                last_write_offset: *last_write_offset,
                time_modify: *time_modify,
                layoutupdate: p::LayoutUpdate {
                    lou_type: *layout_type,
                    lou_body: body.to_vec(),
                },
            }),
            Op::LayoutReturn {
                reclaim,
                layout_type,
                iomode,
                target,
            } => A::Layoutreturn(p::LayoutreturnArgs {
                reclaim: *reclaim,
                layout_type: *layout_type,
                iomode: *iomode,
                layoutreturn: match target {
                    ReturnTarget::File {
                        offset_bytes,
                        length_bytes,
                        stateid,
                        body,
                    } => p::Layoutreturn::File(p::LayoutreturnFile {
                        offset: *offset_bytes,
                        length: *length_bytes,
                        stateid: *stateid,
                        body: body.to_vec(),
                    }),
                    ReturnTarget::Fsid => p::Layoutreturn::Fsid,
                    ReturnTarget::All => p::Layoutreturn::All,
                },
            }),
            Op::GetDeviceInfo {
                device_id,
                layout_type,
                max_count,
                notify,
            } => A::Getdeviceinfo(p::GetdeviceinfoArgs {
                device_id: *device_id,
                layout_type: *layout_type,
                maxcount: *max_count,
                notify_types: Bitmap4(vec![*notify]),
            }),
        }
    }
}

/// The name of an operation number.
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
pub fn encode_compound(tag: &str, ops: &[Op]) -> Vec<u8> {
    to_bytes(&p::CompoundArgs::new(
        tag,
        ops.iter().map(Op::to_proto).collect(),
    ))
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

/// Result of OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRes {
    /// The open stateid.
    pub stateid: Stateid,
    /// A delegation the server granted anyway (we return it at once).
    pub delegation: Option<Stateid>,
}

/// One decoded op result (status OK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpRes {
    /// SEQUENCE.
    Sequence {
        /// sr_sessionid.
        session: SessionId,
        /// sr_sequenceid.
        seqid: SequenceId,
        /// sr_slotid.
        slot: SlotId,
        /// sr_highest_slotid.
        highest_slot: SlotId,
        /// sr_target_highest_slotid.
        target_highest_slot: SlotId,
        /// sr_status_flags.
        status_flags: u32,
    },
    /// Ops with no result body.
    Empty,
    /// GETFH.
    Fh(FileHandle),
    /// GETATTR.
    Attrs(Attrs),
    /// OPEN.
    Open(OpenRes),
    /// CLOSE.
    Close(Stateid),
    /// READ.
    Read {
        /// eof.
        eof: bool,
        /// data.
        data: Bytes,
    },
    /// WRITE.
    Write {
        /// count.
        count_bytes: u32,
        /// committed.
        committed: u32,
        /// verifier.
        verifier: Verifier,
    },
    /// COMMIT.
    Commit(Verifier),
    /// TEST_STATEID: one status per stateid tested.
    TestStateid(Vec<NfsStat>),
    /// EXCHANGE_ID.
    ExchangeId {
        /// eir_clientid.
        clientid: ClientId,
        /// eir_sequenceid.
        seqid: SequenceId,
        /// eir_flags.
        flags: u32,
        /// eir_state_protect.spr_how.
        state_protect: u32,
        /// server_owner4.so_major_id.
        server_major: Vec<u8>,
        /// eir_server_scope.
        server_scope: Vec<u8>,
    },
    /// CREATE_SESSION.
    CreateSession {
        /// csr_sessionid.
        session: SessionId,
        /// csr_sequence.
        seqid: SequenceId,
        /// csr_flags.
        flags: u32,
        /// csr_fore_chan_attrs.
        fore: ChannelAttrs,
        /// csr_back_chan_attrs.
        back: ChannelAttrs,
    },
    /// BIND_CONN_TO_SESSION.
    BindConn {
        /// bctsr_dir.
        dir: u32,
    },
    /// LAYOUTGET.
    LayoutGet {
        /// logr_return_on_close.
        return_on_close: bool,
        /// logr_stateid.
        stateid: Stateid,
        /// logr_layout.
        segments: Vec<crate::mds_api::LayoutSegment>,
    },
    /// LAYOUTCOMMIT.
    LayoutCommit {
        /// locr_newsize.
        new_size_bytes: Option<u64>,
    },
    /// LAYOUTRETURN.
    LayoutReturn {
        /// lrs_stateid.
        stateid: Option<Stateid>,
    },
    /// GETDEVICEINFO.
    DeviceInfo {
        /// da_layout_type.
        layout_type: LayoutType,
        /// da_addr_body.
        body: Bytes,
        /// gdir_notification word 0.
        notify: u32,
    },
}

/// A failed op: its number, status, and for TOOSMALL the server's minimum count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpFailure {
    /// The op number.
    pub opnum: u32,
    /// The status.
    pub status: NfsStat,
    /// gdir_mincount for GETDEVICEINFO TOOSMALL; will_signal for LAYOUTTRYLATER as 0/1.
    pub detail: u32,
}

/// A decoded COMPOUND4res.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompoundRes {
    /// Results of the ops that succeeded, in order.
    pub results: Vec<OpRes>,
    /// The op that failed, if any (the compound stopped there).
    pub failure: Option<OpFailure>,
}

fn delegation_stateid(d: &p::OpenDelegation) -> Option<Stateid> {
    match d {
        p::OpenDelegation::Read(r) => Some(r.stateid),
        p::OpenDelegation::Write(w) => Some(w.stateid),
        _ => None,
    }
}

fn failure(opnum: u32, status: NfsStat, detail: u32) -> Result<OpRes, OpFailure> {
    Err(OpFailure {
        opnum,
        status,
        detail,
    })
}

/// One result: its [`OpRes`] or why it failed.
fn convert(r: p::NfsResOp) -> XdrResult<Result<OpRes, OpFailure>> {
    use p::NfsResOp as R;
    let opnum = r.opnum();
    let status = r.status();
    if !status.is_ok() {
        let detail = match &r {
            R::Getdeviceinfo(p::GetdeviceinfoRes::TooSmall { mincount }) => *mincount,
            R::Layoutget(p::LayoutgetRes::TryLater {
                will_signal_layout_avail,
            }) => u32::from(*will_signal_layout_avail),
            _ => 0,
        };
        return Ok(failure(opnum, status, detail));
    }
    Ok(Ok(match r {
        R::Sequence(Ok(s)) => OpRes::Sequence {
            session: s.sessionid,
            seqid: s.sequenceid,
            slot: s.slotid,
            highest_slot: s.highest_slotid,
            target_highest_slot: s.target_highest_slotid,
            status_flags: s.status_flags,
        },
        R::Getfh(Ok(f)) => OpRes::Fh(f.object),
        R::Getattr(Ok(a)) => OpRes::Attrs(Attrs::from_fattr4(&a.obj_attributes)?),
        R::Open(Ok(o)) => OpRes::Open(OpenRes {
            stateid: o.stateid,
            delegation: delegation_stateid(&o.delegation),
        }),
        R::Close(Ok(s)) => OpRes::Close(s),
        R::Read(Ok(r)) => OpRes::Read {
            eof: r.eof,
            data: Bytes::from(r.data),
        },
        R::Write(Ok(w)) => OpRes::Write {
            count_bytes: w.count,
            committed: match w.committed {
                p::StableHow::Unstable => 0,
                p::StableHow::DataSync => 1,
                p::StableHow::FileSync => 2,
            },
            verifier: w.writeverf,
        },
        R::Commit(Ok(c)) => OpRes::Commit(c.writeverf),
        R::TestStateid(Ok(t)) => OpRes::TestStateid(t.status_codes),
        R::ExchangeId(Ok(e)) => OpRes::ExchangeId {
            clientid: e.clientid,
            seqid: e.sequenceid,
            flags: e.flags,
            state_protect: match e.state_protect {
                p::StateProtectR::None => SP4_NONE,
                p::StateProtectR::MachCred(_) => SP4_MACH_CRED,
                p::StateProtectR::Ssv(_) => SP4_SSV,
            },
            server_major: e.server_owner.major_id,
            server_scope: e.server_scope,
        },
        R::CreateSession(Ok(c)) => OpRes::CreateSession {
            session: c.sessionid,
            seqid: c.sequence,
            flags: c.flags,
            fore: ChannelAttrs::from_proto(&c.fore_chan_attrs),
            back: ChannelAttrs::from_proto(&c.back_chan_attrs),
        },
        R::BindConnToSession(Ok(b)) => OpRes::BindConn {
            dir: match b.dir {
                p::ChannelDirFromServer::Fore => 1,
                p::ChannelDirFromServer::Back => 2,
                p::ChannelDirFromServer::Both => CDFS4_BOTH,
            },
        },
        R::Layoutget(p::LayoutgetRes::Ok(l)) => OpRes::LayoutGet {
            return_on_close: l.return_on_close,
            stateid: l.stateid,
            segments: l
                .layouts
                .into_iter()
                .map(|s| crate::mds_api::LayoutSegment {
                    offset_bytes: s.offset,
                    length_bytes: s.length,
                    iomode: s.iomode,
                    layout_type: s.content.loc_type,
                    body: Bytes::from(s.content.loc_body),
                })
                .collect(),
        },
        R::Layoutcommit(Ok(c)) => OpRes::LayoutCommit {
            new_size_bytes: c.newsize,
        },
        R::Layoutreturn(Ok(r)) => OpRes::LayoutReturn { stateid: r.stateid },
        R::Getdeviceinfo(p::GetdeviceinfoRes::Ok(d)) => OpRes::DeviceInfo {
            layout_type: d.device_addr.layout_type,
            body: Bytes::from(d.device_addr.addr_body),
            notify: d.notification.0.first().copied().unwrap_or(0),
        },
        R::Putrootfh(_)
        | R::Putfh(_)
        | R::Lookup(_)
        | R::Delegreturn(_)
        | R::FreeStateid(_)
        | R::DestroySession(_)
        | R::DestroyClientid(_)
        | R::ReclaimComplete(_)
        | R::Setattr(_) => OpRes::Empty,
        other => {
            return Err(XdrError::Invalid {
                what: "COMPOUND4res",
                detail: format!("unexpected result for op {}", other.opnum()),
            })
        }
    }))
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
        match convert(r)? {
            Ok(x) => results.push(x),
            Err(f) => {
                failure = Some(f);
                break;
            }
        }
    }
    if failure.is_none() && !res.status.is_ok() {
        // A compound-level error without an op result (e.g. MINOR_VERS_MISMATCH).
        failure = Some(OpFailure {
            opnum: sent.first().copied().unwrap_or(0),
            status: res.status,
            detail: 0,
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
        let p::NfsArgOp::Getattr(g) =
            Op::GetAttr(vec![attr::SIZE, attr::LAYOUT_BLKSIZE]).to_proto()
        else {
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
        assert_eq!(r.results, vec![OpRes::Empty]);
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
        assert_eq!((f.status, f.detail), (NfsStat::TOOSMALL, 9000));
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
            Op::PutRootFh,
            Op::Lookup("export".into()),
            Op::Open {
                access: share::ACCESS_BOTH | share::WANT_NO_DELEG,
                owner: b"o".to_vec(),
                clientid: 5,
                create: OpenCreate::Guarded { mode: 0o600 },
                claim: OpenClaim::Null("f".into()),
            },
            Op::GetFh,
        ];
        let args: p::CompoundArgs = from_bytes(&encode_compound("t", &ops)).unwrap();
        assert_eq!(args.minorversion, MINOR_VERSION);
        assert_eq!(
            args.argarray,
            ops.iter().map(Op::to_proto).collect::<Vec<_>>()
        );
        assert_eq!(args.argarray[2].opnum(), opnum::OPEN);
    }
}
