//! COMPOUND arguments and results for the fore-channel operations this client sends
//! (RFC 8881 §18). Pure encoding and decoding, no I/O; every length from the server is bounded.
//!
//! This is the client's own op table: `pnfs_proto::nfs4::ops` did not exist when the client was
//! written. Only the shapes the client needs are here; bodies of layouts and device addresses
//! stay opaque.

use bytes::Bytes;
use pnfs_proto::nfs4::{
    ClientId, DeviceId, FileHandle, LayoutIoMode, LayoutType, NfsStat, NfsTime, SequenceId,
    SessionId, SlotId, Stateid, Verifier, NFS4_OPAQUE_LIMIT_BYTES,
};
use pnfs_proto::xdr::{Decoder, Encoder, XdrError, XdrResult};

/// NFSv4 minor version used.
pub const MINOR_VERSION: u32 = 1;
/// Most operations in one compound we accept in a reply.
pub const MAX_COMPOUND_OPS: usize = 32;
/// Longest tag we accept in a reply.
pub const MAX_TAG_BYTES: usize = 256;
/// Most bitmap words we accept.
pub const MAX_BITMAP_WORDS: usize = 8;
/// Longest attribute value blob we accept in a GETATTR reply.
pub const MAX_ATTR_VALS_BYTES: usize = 64 * 1024;
/// Largest layout / device body we accept.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most layout segments in one LAYOUTGET reply.
pub const MAX_LAYOUT_SEGMENTS: usize = 1024;
/// Largest READ payload we accept.
pub const MAX_READ_BYTES: usize = 4 * 1024 * 1024;

/// Operation numbers (nfs_opnum4).
pub mod opnum {
    /// CLOSE.
    pub const CLOSE: u32 = 4;
    /// COMMIT.
    pub const COMMIT: u32 = 5;
    /// DELEGRETURN.
    pub const DELEGRETURN: u32 = 8;
    /// GETATTR.
    pub const GETATTR: u32 = 9;
    /// GETFH.
    pub const GETFH: u32 = 10;
    /// LOOKUP.
    pub const LOOKUP: u32 = 15;
    /// OPEN.
    pub const OPEN: u32 = 18;
    /// PUTFH.
    pub const PUTFH: u32 = 22;
    /// PUTROOTFH.
    pub const PUTROOTFH: u32 = 24;
    /// READ.
    pub const READ: u32 = 25;
    /// SETATTR.
    pub const SETATTR: u32 = 34;
    /// WRITE.
    pub const WRITE: u32 = 38;
    /// BIND_CONN_TO_SESSION.
    pub const BIND_CONN_TO_SESSION: u32 = 41;
    /// EXCHANGE_ID.
    pub const EXCHANGE_ID: u32 = 42;
    /// CREATE_SESSION.
    pub const CREATE_SESSION: u32 = 43;
    /// DESTROY_SESSION.
    pub const DESTROY_SESSION: u32 = 44;
    /// GETDEVICEINFO.
    pub const GETDEVICEINFO: u32 = 47;
    /// LAYOUTCOMMIT.
    pub const LAYOUTCOMMIT: u32 = 49;
    /// LAYOUTGET.
    pub const LAYOUTGET: u32 = 50;
    /// LAYOUTRETURN.
    pub const LAYOUTRETURN: u32 = 51;
    /// SEQUENCE.
    pub const SEQUENCE: u32 = 53;
    /// DESTROY_CLIENTID.
    pub const DESTROY_CLIENTID: u32 = 57;
    /// RECLAIM_COMPLETE.
    pub const RECLAIM_COMPLETE: u32 = 58;
    /// ILLEGAL.
    pub const ILLEGAL: u32 = 10044;
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
    /// EXCHGID4_FLAG_USE_PNFS_MDS.
    pub const USE_PNFS_MDS: u32 = 0x0002_0000;
    /// EXCHGID4_FLAG_CONFIRMED_R.
    pub const CONFIRMED_R: u32 = 0x8000_0000;
}

/// CREATE_SESSION4_FLAG_CONN_BACK_CHAN.
pub const CREATE_SESSION4_FLAG_CONN_BACK_CHAN: u32 = 0x2;
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
    /// SEQ4_STATUS_CB_PATH_DOWN.
    pub const CB_PATH_DOWN: u32 = 0x1;
    /// SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED.
    pub const EXPIRED_ALL_STATE_REVOKED: u32 = 0x8;
    /// SEQ4_STATUS_EXPIRED_SOME_STATE_REVOKED.
    pub const EXPIRED_SOME_STATE_REVOKED: u32 = 0x10;
    /// SEQ4_STATUS_ADMIN_STATE_REVOKED.
    pub const ADMIN_STATE_REVOKED: u32 = 0x20;
    /// SEQ4_STATUS_RECALLABLE_STATE_REVOKED.
    pub const RECALLABLE_STATE_REVOKED: u32 = 0x40;
    /// SEQ4_STATUS_RESTART_RECLAIM_NEEDED.
    pub const RESTART_RECLAIM_NEEDED: u32 = 0x100;
    /// SEQ4_STATUS_CB_PATH_DOWN_SESSION.
    pub const CB_PATH_DOWN_SESSION: u32 = 0x200;
    /// SEQ4_STATUS_BACKCHANNEL_FAULT.
    pub const BACKCHANNEL_FAULT: u32 = 0x400;
}

/// OPEN share access / deny / want bits.
pub mod share {
    /// OPEN4_SHARE_ACCESS_READ.
    pub const ACCESS_READ: u32 = 1;
    /// OPEN4_SHARE_ACCESS_BOTH.
    pub const ACCESS_BOTH: u32 = 3;
    /// OPEN4_SHARE_DENY_NONE.
    pub const DENY_NONE: u32 = 0;
    /// OPEN4_SHARE_ACCESS_WANT_NO_DELEG.
    pub const WANT_NO_DELEG: u32 = 0x0400;
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
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.header_pad_bytes);
        enc.put_u32(self.max_request_bytes);
        enc.put_u32(self.max_response_bytes);
        enc.put_u32(self.max_response_cached_bytes);
        enc.put_u32(self.max_operations);
        enc.put_u32(self.max_requests);
        enc.put_u32(0); // ca_rdma_ird<1>: none
    }

    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let a = Self {
            header_pad_bytes: dec.u32()?,
            max_request_bytes: dec.u32()?,
            max_response_bytes: dec.u32()?,
            max_response_cached_bytes: dec.u32()?,
            max_operations: dec.u32()?,
            max_requests: dec.u32()?,
        };
        let _ird: Vec<u32> = dec.array("ca_rdma_ird", 1)?;
        Ok(a)
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

fn put_bitmap(enc: &mut Encoder, attrs: &[u32]) {
    let words = attrs.iter().map(|a| a / 32 + 1).max().unwrap_or(0);
    let mut bm = vec![0u32; usize::try_from(words).unwrap_or(0)];
    for a in attrs {
        if let Some(w) = bm.get_mut(usize::try_from(a / 32).unwrap_or(usize::MAX)) {
            *w |= 1 << (a % 32);
        }
    }
    enc.put_array(&bm);
}

fn mode_attr(enc: &mut Encoder, mode: u32) {
    put_bitmap(enc, &[attr::MODE]);
    enc.put_opaque(&mode.to_be_bytes());
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

    /// Appends nfs_argop4.
    pub fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.opnum());
        match self {
            Op::Sequence {
                session,
                seqid,
                slot,
                highest_slot,
                cache_this,
            } => {
                enc.put(session);
                enc.put_u32(*seqid);
                enc.put_u32(*slot);
                enc.put_u32(*highest_slot);
                enc.put_bool(*cache_this);
            }
            Op::PutRootFh | Op::GetFh | Op::ReclaimComplete => {
                if matches!(self, Op::ReclaimComplete) {
                    enc.put_bool(false);
                }
            }
            Op::PutFh(fh) => enc.put(fh),
            Op::Lookup(name) => enc.put_str(name),
            Op::GetAttr(attrs) => put_bitmap(enc, attrs),
            Op::Open {
                access,
                owner,
                clientid,
                create,
                claim,
            } => {
                enc.put_u32(0); // seqid (ignored in 4.1)
                enc.put_u32(*access);
                enc.put_u32(share::DENY_NONE);
                enc.put_u64(*clientid);
                enc.put_opaque(owner);
                match create {
                    OpenCreate::No => enc.put_u32(0),
                    OpenCreate::Guarded { mode } => {
                        enc.put_u32(1); // OPEN4_CREATE
                        enc.put_u32(1); // GUARDED4
                        mode_attr(enc, *mode);
                    }
                }
                match claim {
                    OpenClaim::Null(name) => {
                        enc.put_u32(0);
                        enc.put_str(name);
                    }
                    OpenClaim::Previous => {
                        enc.put_u32(1);
                        enc.put_u32(0); // OPEN_DELEGATE_NONE
                    }
                    OpenClaim::Fh => enc.put_u32(4),
                }
            }
            Op::Close(sid) => {
                enc.put_u32(0);
                enc.put(sid);
            }
            Op::SetSize {
                stateid,
                size_bytes,
            } => {
                enc.put(stateid);
                put_bitmap(enc, &[attr::SIZE]);
                enc.put_opaque(&size_bytes.to_be_bytes());
            }
            Op::Read {
                stateid,
                offset_bytes,
                count_bytes,
            } => {
                enc.put(stateid);
                enc.put_u64(*offset_bytes);
                enc.put_u32(*count_bytes);
            }
            Op::Write {
                stateid,
                offset_bytes,
                stable,
                data,
            } => {
                enc.put(stateid);
                enc.put_u64(*offset_bytes);
                enc.put_u32(*stable);
                enc.put_opaque(data);
            }
            Op::Commit {
                offset_bytes,
                count_bytes,
            } => {
                enc.put_u64(*offset_bytes);
                enc.put_u32(*count_bytes);
            }
            Op::DelegReturn(sid) => enc.put(sid),
            Op::ExchangeId {
                verifier,
                owner,
                flags,
                mach_cred,
            } => {
                enc.put(verifier);
                enc.put_opaque(owner);
                enc.put_u32(*flags);
                if *mach_cred {
                    enc.put_u32(SP4_MACH_CRED);
                    // spo_must_enforce: the client-ID and session ops (RFC 8881 §18.35.3).
                    put_bitmap(
                        enc,
                        &[
                            opnum::BIND_CONN_TO_SESSION,
                            opnum::EXCHANGE_ID,
                            opnum::CREATE_SESSION,
                            opnum::DESTROY_SESSION,
                            opnum::DESTROY_CLIENTID,
                        ],
                    );
                    // spo_must_allow: state teardown the machine credential may do.
                    put_bitmap(
                        enc,
                        &[
                            opnum::CLOSE,
                            opnum::COMMIT,
                            opnum::DELEGRETURN,
                            opnum::WRITE,
                            opnum::LAYOUTRETURN,
                        ],
                    );
                } else {
                    enc.put_u32(SP4_NONE);
                }
                enc.put_u32(0); // eia_client_impl_id<1>: none
            }
            Op::CreateSession {
                clientid,
                seqid,
                flags,
                fore,
                back,
                cb_program,
                cb_sec,
            } => {
                enc.put_u64(*clientid);
                enc.put_u32(*seqid);
                enc.put_u32(*flags);
                fore.encode(enc);
                back.encode(enc);
                enc.put_u32(*cb_program);
                enc.put_u32(1); // one callback_sec_parms4
                enc.put_u32(pnfs_proto::rpc::AUTH_SYS);
                enc.put(cb_sec);
            }
            Op::DestroySession(s) => enc.put(s),
            Op::DestroyClientId(c) => enc.put_u64(*c),
            Op::BindConnToSession(s) => {
                enc.put(s);
                enc.put_u32(CDFC4_FORE_OR_BOTH);
                enc.put_bool(false);
            }
            Op::LayoutGet {
                signal,
                layout_type,
                iomode,
                offset_bytes,
                length_bytes,
                min_length_bytes,
                stateid,
                max_count,
            } => {
                enc.put_bool(*signal);
                enc.put(layout_type);
                enc.put(iomode);
                enc.put_u64(*offset_bytes);
                enc.put_u64(*length_bytes);
                enc.put_u64(*min_length_bytes);
                enc.put(stateid);
                enc.put_u32(*max_count);
            }
            Op::LayoutCommit {
                offset_bytes,
                length_bytes,
                reclaim,
                stateid,
                last_write_offset,
                time_modify,
                layout_type,
                body,
            } => {
                enc.put_u64(*offset_bytes);
                enc.put_u64(*length_bytes);
                enc.put_bool(*reclaim);
                enc.put(stateid);
                enc.put_option(last_write_offset.as_ref());
                enc.put_option(time_modify.as_ref());
                enc.put(layout_type);
                enc.put_opaque(body);
            }
            Op::LayoutReturn {
                reclaim,
                layout_type,
                iomode,
                target,
            } => {
                enc.put_bool(*reclaim);
                enc.put(layout_type);
                enc.put(iomode);
                match target {
                    ReturnTarget::File {
                        offset_bytes,
                        length_bytes,
                        stateid,
                        body,
                    } => {
                        enc.put_u32(1);
                        enc.put_u64(*offset_bytes);
                        enc.put_u64(*length_bytes);
                        enc.put(stateid);
                        enc.put_opaque(body);
                    }
                    ReturnTarget::Fsid => enc.put_u32(2),
                    ReturnTarget::All => enc.put_u32(3),
                }
            }
            Op::GetDeviceInfo {
                device_id,
                layout_type,
                max_count,
                notify,
            } => {
                enc.put(device_id);
                enc.put(layout_type);
                enc.put_u32(*max_count);
                enc.put_array(&[*notify]);
            }
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
    let mut enc = Encoder::new();
    enc.put_str(tag);
    enc.put_u32(MINOR_VERSION);
    enc.put_u32(u32::try_from(ops.len()).unwrap_or(u32::MAX));
    for op in ops {
        op.encode(&mut enc);
    }
    enc.into_inner()
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

/// Most layout types we accept in fs_layout_types.
const MAX_LAYOUT_TYPES: usize = 16;

fn decode_bitmap(dec: &mut Decoder<'_>) -> XdrResult<Vec<u32>> {
    dec.array("bitmap4", MAX_BITMAP_WORDS)
}

/// Decodes fattr4 (bitmap + attr_vals), understanding the attributes listed in [`attr`].
pub fn decode_fattr(dec: &mut Decoder<'_>) -> XdrResult<Attrs> {
    let bm = decode_bitmap(dec)?;
    let vals = dec.opaque("attr_vals", MAX_ATTR_VALS_BYTES)?;
    let mut d = Decoder::new(vals);
    let mut a = Attrs::default();
    for (w, word) in bm.iter().enumerate() {
        for bit in 0..32u32 {
            if word & (1 << bit) == 0 {
                continue;
            }
            let n = u32::try_from(w)
                .unwrap_or(u32::MAX)
                .saturating_mul(32)
                .saturating_add(bit);
            match n {
                attr::TYPE => a.file_type = Some(d.u32()?),
                attr::CHANGE => a.change = Some(d.u64()?),
                attr::SIZE => a.size_bytes = Some(d.u64()?),
                attr::FSID => a.fsid = Some((d.u64()?, d.u64()?)),
                attr::LEASE_TIME => a.lease_time_s = Some(d.u32()?),
                attr::FILEID => a.fileid = Some(d.u64()?),
                attr::MODE => {
                    d.u32()?;
                }
                attr::FS_LAYOUT_TYPES => {
                    a.fs_layout_types = d.array("fs_layout_types", MAX_LAYOUT_TYPES)?
                }
                attr::LAYOUT_BLKSIZE => a.layout_blksize = Some(d.u32()?),
                attr::LAYOUT_ALIGNMENT => a.layout_alignment = Some(d.u32()?),
                other => {
                    return Err(XdrError::Invalid {
                        what: "fattr4",
                        detail: format!("server returned attribute {other} that was not asked for"),
                    })
                }
            }
        }
    }
    Ok(a)
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

fn decode_delegation(dec: &mut Decoder<'_>) -> XdrResult<Option<Stateid>> {
    match dec.u32()? {
        0 => Ok(None),
        t @ (1 | 2) => {
            let sid: Stateid = dec.get()?;
            let _recall = dec.bool()?;
            if t == 2 {
                // nfs_space_limit4
                match dec.u32()? {
                    1 => {
                        dec.u64()?;
                    }
                    2 => {
                        dec.u32()?;
                        dec.u32()?;
                    }
                    value => {
                        return Err(XdrError::BadEnum {
                            what: "limitby4",
                            value,
                        })
                    }
                }
            }
            // nfsace4
            dec.u32()?;
            dec.u32()?;
            dec.u32()?;
            dec.opaque("nfsace4.who", NFS4_OPAQUE_LIMIT_BYTES)?;
            Ok(Some(sid))
        }
        3 => {
            // open_none_delegation4
            match dec.u32()? {
                1 | 2 => {
                    dec.bool()?;
                }
                _ => {}
            }
            Ok(None)
        }
        value => Err(XdrError::BadEnum {
            what: "open_delegation_type4",
            value,
        }),
    }
}

fn decode_ok(op: u32, dec: &mut Decoder<'_>) -> XdrResult<OpRes> {
    use opnum::*;
    Ok(match op {
        SEQUENCE => OpRes::Sequence {
            session: dec.get()?,
            seqid: dec.u32()?,
            slot: dec.u32()?,
            highest_slot: dec.u32()?,
            target_highest_slot: dec.u32()?,
            status_flags: dec.u32()?,
        },
        PUTROOTFH | PUTFH | LOOKUP | DELEGRETURN | DESTROY_SESSION | DESTROY_CLIENTID
        | RECLAIM_COMPLETE => OpRes::Empty,
        GETFH => OpRes::Fh(dec.get()?),
        GETATTR => OpRes::Attrs(decode_fattr(dec)?),
        OPEN => {
            let stateid = dec.get()?;
            // change_info4
            dec.bool()?;
            dec.u64()?;
            dec.u64()?;
            let _rflags = dec.u32()?;
            decode_bitmap(dec)?;
            let delegation = decode_delegation(dec)?;
            OpRes::Open(OpenRes {
                stateid,
                delegation,
            })
        }
        CLOSE => OpRes::Close(dec.get()?),
        SETATTR => {
            decode_bitmap(dec)?;
            OpRes::Empty
        }
        READ => {
            let eof = dec.bool()?;
            let data = Bytes::copy_from_slice(dec.opaque("READ data", MAX_READ_BYTES)?);
            OpRes::Read { eof, data }
        }
        WRITE => OpRes::Write {
            count_bytes: dec.u32()?,
            committed: dec.u32()?,
            verifier: dec.get()?,
        },
        COMMIT => OpRes::Commit(dec.get()?),
        EXCHANGE_ID => {
            let clientid = dec.u64()?;
            let seqid = dec.u32()?;
            let flags = dec.u32()?;
            let state_protect = dec.u32()?;
            match state_protect {
                SP4_NONE => {}
                SP4_MACH_CRED => {
                    decode_bitmap(dec)?;
                    decode_bitmap(dec)?;
                }
                value => {
                    return Err(XdrError::BadEnum {
                        what: "state_protect_how4 (we never ask SSV)",
                        value,
                    })
                }
            }
            let _minor = dec.u64()?;
            let server_major = dec.opaque("so_major_id", NFS4_OPAQUE_LIMIT_BYTES)?.to_vec();
            let server_scope = dec
                .opaque("eir_server_scope", NFS4_OPAQUE_LIMIT_BYTES)?
                .to_vec();
            let n = dec.length("eir_server_impl_id", 1)?;
            for _ in 0..n {
                dec.opaque("nii_domain", NFS4_OPAQUE_LIMIT_BYTES)?;
                dec.opaque("nii_name", NFS4_OPAQUE_LIMIT_BYTES)?;
                let _: NfsTime = dec.get()?;
            }
            OpRes::ExchangeId {
                clientid,
                seqid,
                flags,
                state_protect,
                server_major,
                server_scope,
            }
        }
        CREATE_SESSION => OpRes::CreateSession {
            session: dec.get()?,
            seqid: dec.u32()?,
            flags: dec.u32()?,
            fore: ChannelAttrs::decode(dec)?,
            back: ChannelAttrs::decode(dec)?,
        },
        BIND_CONN_TO_SESSION => {
            let _s: SessionId = dec.get()?;
            let dir = dec.u32()?;
            dec.bool()?;
            OpRes::BindConn { dir }
        }
        LAYOUTGET => {
            let return_on_close = dec.bool()?;
            let stateid = dec.get()?;
            let n = dec.length("logr_layout", MAX_LAYOUT_SEGMENTS)?;
            let mut segments = Vec::with_capacity(n.min(dec.remaining() / 24));
            for _ in 0..n {
                segments.push(crate::mds_api::LayoutSegment {
                    offset_bytes: dec.u64()?,
                    length_bytes: dec.u64()?,
                    iomode: dec.get()?,
                    layout_type: dec.get()?,
                    body: Bytes::copy_from_slice(dec.opaque("loc_body", MAX_BODY_BYTES)?),
                });
            }
            OpRes::LayoutGet {
                return_on_close,
                stateid,
                segments,
            }
        }
        LAYOUTCOMMIT => OpRes::LayoutCommit {
            new_size_bytes: dec.option::<u64>()?,
        },
        LAYOUTRETURN => OpRes::LayoutReturn {
            stateid: dec.option::<Stateid>()?,
        },
        GETDEVICEINFO => {
            let layout_type = dec.get()?;
            let body = Bytes::copy_from_slice(dec.opaque("da_addr_body", MAX_BODY_BYTES)?);
            let bm = decode_bitmap(dec)?;
            OpRes::DeviceInfo {
                layout_type,
                body,
                notify: bm.first().copied().unwrap_or(0),
            }
        }
        value => {
            return Err(XdrError::BadEnum {
                what: "nfs_opnum4 in reply",
                value,
            })
        }
    })
}

/// Decodes COMPOUND4res. `sent` are the op numbers sent, to check the reply's order.
pub fn decode_compound(buf: &[u8], sent: &[u32]) -> XdrResult<CompoundRes> {
    let mut dec = Decoder::new(buf);
    let status = NfsStat(dec.u32()?);
    dec.opaque("compound tag", MAX_TAG_BYTES)?;
    let n = dec.length("resarray", MAX_COMPOUND_OPS)?;
    let mut results = Vec::with_capacity(n);
    let mut failure = None;
    for i in 0..n {
        let op = dec.u32()?;
        let expected = sent.get(i).copied();
        if expected != Some(op) && op != opnum::ILLEGAL {
            return Err(XdrError::Invalid {
                what: "COMPOUND4res",
                detail: format!("result {i} is op {op}, sent {expected:?}"),
            });
        }
        let st = NfsStat(dec.u32()?);
        if st.is_ok() {
            results.push(decode_ok(op, &mut dec)?);
        } else {
            let detail = match (op, st) {
                (opnum::GETDEVICEINFO, NfsStat::TOOSMALL) => dec.u32()?,
                (opnum::LAYOUTGET, NfsStat::LAYOUTTRYLATER) => u32::from(dec.bool()?),
                _ => 0,
            };
            failure = Some(OpFailure {
                opnum: op,
                status: st,
                detail,
            });
            break;
        }
    }
    if failure.is_none() && !status.is_ok() {
        // A compound-level error without an op result (e.g. MINOR_VERS_MISMATCH).
        failure = Some(OpFailure {
            opnum: sent.first().copied().unwrap_or(0),
            status,
            detail: 0,
        });
    }
    Ok(CompoundRes { results, failure })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_sets_the_right_words_and_fattr_decodes_in_order() {
        let mut enc = Encoder::new();
        put_bitmap(&mut enc, &[attr::SIZE, attr::LAYOUT_BLKSIZE]);
        assert_eq!(
            enc.as_slice(),
            &[0, 0, 0, 3, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 2]
        );
        let mut vals = Encoder::new();
        vals.put_u64(4096);
        vals.put_u32(65536);
        let mut f = Encoder::new();
        put_bitmap(&mut f, &[attr::SIZE, attr::LAYOUT_BLKSIZE]);
        f.put_opaque(vals.as_slice());
        let a = decode_fattr(&mut Decoder::new(f.as_slice())).unwrap();
        assert_eq!((a.size_bytes, a.layout_blksize), (Some(4096), Some(65536)));
        // An attribute we did not ask for cannot be skipped: clear error, no panic.
        let mut f = Encoder::new();
        put_bitmap(&mut f, &[12]);
        f.put_opaque(&[0; 4]);
        assert!(decode_fattr(&mut Decoder::new(f.as_slice())).is_err());
    }

    #[test]
    fn compound_reply_stops_at_the_failing_op_and_checks_order() {
        let mut enc = Encoder::new();
        enc.put_u32(NfsStat::NOENT.0);
        enc.put_str("");
        enc.put_u32(2);
        enc.put_u32(opnum::PUTROOTFH);
        enc.put_u32(0);
        enc.put_u32(opnum::LOOKUP);
        enc.put_u32(NfsStat::NOENT.0);
        let r = decode_compound(
            enc.as_slice(),
            &[opnum::PUTROOTFH, opnum::LOOKUP, opnum::GETFH],
        )
        .unwrap();
        assert_eq!(r.results, vec![OpRes::Empty]);
        assert_eq!(
            r.failure.map(|f| (f.opnum, f.status)),
            Some((opnum::LOOKUP, NfsStat::NOENT))
        );
        assert!(decode_compound(enc.as_slice(), &[opnum::PUTROOTFH, opnum::GETFH]).is_err());
        // A huge op count is refused before allocating.
        let mut enc = Encoder::new();
        enc.put_u32(0);
        enc.put_str("");
        enc.put_u32(u32::MAX);
        assert!(decode_compound(enc.as_slice(), &[]).is_err());
    }
}
