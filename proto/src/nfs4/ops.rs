//! COMPOUND4args / COMPOUND4res and the arguments and results of every NFSv4.1 operation,
//! plus the NFSv4.2 (RFC 7862) operations and the NFSv4.0-only operations (so a server can
//! answer them with NFS4ERR_NOTSUPP).
//!
//! - [`CompoundArgs`] holds [`NfsArgOp`]s, [`CompoundRes`] holds [`NfsResOp`]s; both decode with
//!   limits ([`NFS4_MAX_COMPOUND_OPS`], [`NFS4_MAX_TAG_BYTES`], …).
//! - An unknown operation number in the arguments decodes to [`NfsArgOp::Illegal`] and stops
//!   the decoding there (the rest of the record is ignored), so the server can answer
//!   NFS4ERR_OP_ILLEGAL with [`NfsResOp::Illegal`].
//! - Results are `Result<ResOk, NfsStat>` ([`NfsRes`]) where the RFC's union carries a body only
//!   on NFS4_OK; results that carry data on a specific error have their own enum
//!   ([`LockRes`], [`LocktRes`], [`LayoutgetRes`], [`GetdeviceinfoRes`], [`CopyRes`],
//!   [`SetclientidRes`]); status-only results are a bare [`NfsStat`].
//! - Every result type implements [`OpResult`] (build from an error status, read the status),
//!   and [`NfsResOp::error_for`] builds the error result for any argument op.
//! - Layout bodies (`loc_body`, `da_addr_body`, `lou_body`, `lrf_body`) stay opaque bytes;
//!   `crate::layout` parses them.
//! - Attribute values stay packed in [`Fattr4`]; `crate::nfs4::attr::Fattr` types them.
//!
//! Decoders accept what the XDR allows within the limits; protocol rules (a name longer than
//! 255 bytes, minor version, which ops are allowed) are the server's and client's business.
//!
//! ```
//! use pnfs_proto::nfs4::*;
//! use pnfs_proto::xdr::{from_bytes, to_bytes};
//!
//! // Client: build and encode a request.
//! let args = CompoundArgs::new("", vec![NfsArgOp::Putrootfh, NfsArgOp::Getfh, NfsArgOp::Savefh]);
//! let wire = to_bytes(&args);
//!
//! // Server: decode, answer op by op, stop at the first failure.
//! let req: CompoundArgs = from_bytes(&wire).unwrap();
//! let mut results = Vec::new();
//! for op in &req.argarray {
//!     let res = match op {
//!         NfsArgOp::Putrootfh => NfsResOp::Putrootfh(NfsStat::OK),
//!         NfsArgOp::Getfh => NfsResOp::Getfh(Ok(GetfhResOk { object: FileHandle(vec![1, 2]) })),
//!         other => NfsResOp::error_for(other, NfsStat::NOTSUPP),
//!     };
//!     let failed = !res.status().is_ok();
//!     results.push(res);
//!     if failed {
//!         break;
//!     }
//! }
//! let reply = CompoundRes::new(req.tag, results);
//! assert_eq!(reply.status, NfsStat::NOTSUPP);
//!
//! // Client: decode the reply.
//! let back: CompoundRes = from_bytes(&to_bytes(&reply)).unwrap();
//! assert_eq!(back.first_error(), Some((2, NfsStat::NOTSUPP)));
//! ```

use crate::nfs4::attr::{Bitmap4, Fattr4};
use crate::nfs4::macros::{decode_op_list, op_table, xdr_status_union, xdr_struct, xdr_union};
use crate::nfs4::types::*;
use crate::rpc::{AuthSys, AUTH_NONE, AUTH_SYS, RPCSEC_GSS};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Most operations in one COMPOUND (the session's ca_maxoperations is usually lower).
pub const NFS4_MAX_COMPOUND_OPS: usize = 128;
/// Longest COMPOUND tag.
pub const NFS4_MAX_TAG_BYTES: usize = NFS4_OPAQUE_LIMIT_BYTES;
/// Longest name component a decoder accepts. Longer than [`NFS4_MAX_NAME_BYTES`] is still
/// decoded so the server can answer NFS4ERR_NAMETOOLONG instead of failing the whole request.
pub const NFS4_MAX_COMPONENT_BYTES: usize = NFS4_OPAQUE_LIMIT_BYTES;
/// Longest symbolic link text.
pub const NFS4_MAX_LINKTEXT_BYTES: usize = 4096;
/// Largest READ/WRITE/READ_PLUS data.
pub const NFS4_MAX_IO_BYTES: usize = 16 * 1024 * 1024;
/// Most READDIR entries in one reply.
pub const NFS4_MAX_READDIR_ENTRIES: usize = 16 * 1024;
/// Most device ids in one GETDEVICELIST reply.
pub const NFS4_MAX_DEVICE_IDS: usize = 4096;
/// Most layout4 segments in one LAYOUTGET reply.
pub const NFS4_MAX_LAYOUT_SEGMENTS: usize = 256;
/// Largest opaque layout body (loc_body, lou_body, lrf_body).
pub const NFS4_MAX_LAYOUT_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Largest opaque device address body.
pub const NFS4_MAX_DEVICE_ADDR_BYTES: usize = 1024 * 1024;
/// Most stateids in TEST_STATEID.
pub const NFS4_MAX_TEST_STATEIDS: usize = 1024;
/// Most callback_sec_parms4 entries.
pub const NFS4_MAX_CB_SEC_PARMS: usize = 16;
/// Most secinfo4 entries in a SECINFO reply.
pub const NFS4_MAX_SECINFO_ENTRIES: usize = 16;
/// Most OIDs in an SSV hash/encryption algorithm list.
pub const NFS4_MAX_SEC_OIDS: usize = 16;
/// Largest sec_oid4, GSS handle, SSV or digest.
pub const NFS4_MAX_SEC_OPAQUE_BYTES: usize = NFS4_OPAQUE_LIMIT_BYTES;
/// Most GSS handles in ssv_prot_info4.
pub const NFS4_MAX_GSS_HANDLES: usize = 16;
/// Most device errors in LAYOUTERROR.
pub const NFS4_MAX_LAYOUT_ERRORS: usize = 64;
/// Most segments in a READ_PLUS reply.
pub const NFS4_MAX_READ_PLUS_SEGMENTS: usize = 4096;
/// Most source servers in COPY / COPY_NOTIFY.
pub const NFS4_MAX_NETLOCS: usize = 16;
/// Longest netid / universal address string.
pub const NFS4_MAX_NETADDR_BYTES: usize = 128;

// ---------------------------------------------------------------------------------------------
// Operation numbers (nfs_opnum4, RFC 8881 §18 and RFC 7862 §13)
// ---------------------------------------------------------------------------------------------

/// OP_ACCESS.
pub const OP_ACCESS: u32 = 3;
/// OP_CLOSE.
pub const OP_CLOSE: u32 = 4;
/// OP_COMMIT.
pub const OP_COMMIT: u32 = 5;
/// OP_CREATE.
pub const OP_CREATE: u32 = 6;
/// OP_DELEGPURGE.
pub const OP_DELEGPURGE: u32 = 7;
/// OP_DELEGRETURN.
pub const OP_DELEGRETURN: u32 = 8;
/// OP_GETATTR.
pub const OP_GETATTR: u32 = 9;
/// OP_GETFH.
pub const OP_GETFH: u32 = 10;
/// OP_LINK.
pub const OP_LINK: u32 = 11;
/// OP_LOCK.
pub const OP_LOCK: u32 = 12;
/// OP_LOCKT.
pub const OP_LOCKT: u32 = 13;
/// OP_LOCKU.
pub const OP_LOCKU: u32 = 14;
/// OP_LOOKUP.
pub const OP_LOOKUP: u32 = 15;
/// OP_LOOKUPP.
pub const OP_LOOKUPP: u32 = 16;
/// OP_NVERIFY.
pub const OP_NVERIFY: u32 = 17;
/// OP_OPEN.
pub const OP_OPEN: u32 = 18;
/// OP_OPENATTR.
pub const OP_OPENATTR: u32 = 19;
/// OP_OPEN_CONFIRM (NFSv4.0 only).
pub const OP_OPEN_CONFIRM: u32 = 20;
/// OP_OPEN_DOWNGRADE.
pub const OP_OPEN_DOWNGRADE: u32 = 21;
/// OP_PUTFH.
pub const OP_PUTFH: u32 = 22;
/// OP_PUTPUBFH.
pub const OP_PUTPUBFH: u32 = 23;
/// OP_PUTROOTFH.
pub const OP_PUTROOTFH: u32 = 24;
/// OP_READ.
pub const OP_READ: u32 = 25;
/// OP_READDIR.
pub const OP_READDIR: u32 = 26;
/// OP_READLINK.
pub const OP_READLINK: u32 = 27;
/// OP_REMOVE.
pub const OP_REMOVE: u32 = 28;
/// OP_RENAME.
pub const OP_RENAME: u32 = 29;
/// OP_RENEW (NFSv4.0 only).
pub const OP_RENEW: u32 = 30;
/// OP_RESTOREFH.
pub const OP_RESTOREFH: u32 = 31;
/// OP_SAVEFH.
pub const OP_SAVEFH: u32 = 32;
/// OP_SECINFO.
pub const OP_SECINFO: u32 = 33;
/// OP_SETATTR.
pub const OP_SETATTR: u32 = 34;
/// OP_SETCLIENTID (NFSv4.0 only).
pub const OP_SETCLIENTID: u32 = 35;
/// OP_SETCLIENTID_CONFIRM (NFSv4.0 only).
pub const OP_SETCLIENTID_CONFIRM: u32 = 36;
/// OP_VERIFY.
pub const OP_VERIFY: u32 = 37;
/// OP_WRITE.
pub const OP_WRITE: u32 = 38;
/// OP_RELEASE_LOCKOWNER (NFSv4.0 only).
pub const OP_RELEASE_LOCKOWNER: u32 = 39;
/// OP_BACKCHANNEL_CTL.
pub const OP_BACKCHANNEL_CTL: u32 = 40;
/// OP_BIND_CONN_TO_SESSION.
pub const OP_BIND_CONN_TO_SESSION: u32 = 41;
/// OP_EXCHANGE_ID.
pub const OP_EXCHANGE_ID: u32 = 42;
/// OP_CREATE_SESSION.
pub const OP_CREATE_SESSION: u32 = 43;
/// OP_DESTROY_SESSION.
pub const OP_DESTROY_SESSION: u32 = 44;
/// OP_FREE_STATEID.
pub const OP_FREE_STATEID: u32 = 45;
/// OP_GET_DIR_DELEGATION.
pub const OP_GET_DIR_DELEGATION: u32 = 46;
/// OP_GETDEVICEINFO.
pub const OP_GETDEVICEINFO: u32 = 47;
/// OP_GETDEVICELIST.
pub const OP_GETDEVICELIST: u32 = 48;
/// OP_LAYOUTCOMMIT.
pub const OP_LAYOUTCOMMIT: u32 = 49;
/// OP_LAYOUTGET.
pub const OP_LAYOUTGET: u32 = 50;
/// OP_LAYOUTRETURN.
pub const OP_LAYOUTRETURN: u32 = 51;
/// OP_SECINFO_NO_NAME.
pub const OP_SECINFO_NO_NAME: u32 = 52;
/// OP_SEQUENCE.
pub const OP_SEQUENCE: u32 = 53;
/// OP_SET_SSV.
pub const OP_SET_SSV: u32 = 54;
/// OP_TEST_STATEID.
pub const OP_TEST_STATEID: u32 = 55;
/// OP_WANT_DELEGATION.
pub const OP_WANT_DELEGATION: u32 = 56;
/// OP_DESTROY_CLIENTID.
pub const OP_DESTROY_CLIENTID: u32 = 57;
/// OP_RECLAIM_COMPLETE.
pub const OP_RECLAIM_COMPLETE: u32 = 58;
/// OP_ALLOCATE (4.2).
pub const OP_ALLOCATE: u32 = 59;
/// OP_COPY (4.2).
pub const OP_COPY: u32 = 60;
/// OP_COPY_NOTIFY (4.2).
pub const OP_COPY_NOTIFY: u32 = 61;
/// OP_DEALLOCATE (4.2).
pub const OP_DEALLOCATE: u32 = 62;
/// OP_IO_ADVISE (4.2).
pub const OP_IO_ADVISE: u32 = 63;
/// OP_LAYOUTERROR (4.2).
pub const OP_LAYOUTERROR: u32 = 64;
/// OP_LAYOUTSTATS (4.2).
pub const OP_LAYOUTSTATS: u32 = 65;
/// OP_OFFLOAD_CANCEL (4.2).
pub const OP_OFFLOAD_CANCEL: u32 = 66;
/// OP_OFFLOAD_STATUS (4.2).
pub const OP_OFFLOAD_STATUS: u32 = 67;
/// OP_READ_PLUS (4.2).
pub const OP_READ_PLUS: u32 = 68;
/// OP_SEEK (4.2).
pub const OP_SEEK: u32 = 69;
/// OP_WRITE_SAME (4.2).
pub const OP_WRITE_SAME: u32 = 70;
/// OP_CLONE (4.2).
pub const OP_CLONE: u32 = 71;
/// OP_ILLEGAL.
pub const OP_ILLEGAL: u32 = 10044;

// ---------------------------------------------------------------------------------------------
// Flag and enum constants
// ---------------------------------------------------------------------------------------------

/// ACCESS4_READ.
pub const ACCESS4_READ: u32 = 0x01;
/// ACCESS4_LOOKUP.
pub const ACCESS4_LOOKUP: u32 = 0x02;
/// ACCESS4_MODIFY.
pub const ACCESS4_MODIFY: u32 = 0x04;
/// ACCESS4_EXTEND.
pub const ACCESS4_EXTEND: u32 = 0x08;
/// ACCESS4_DELETE.
pub const ACCESS4_DELETE: u32 = 0x10;
/// ACCESS4_EXECUTE.
pub const ACCESS4_EXECUTE: u32 = 0x20;

/// EXCHGID4_FLAG_SUPP_MOVED_REFER.
pub const EXCHGID4_FLAG_SUPP_MOVED_REFER: u32 = 0x0000_0001;
/// EXCHGID4_FLAG_SUPP_MOVED_MIGR.
pub const EXCHGID4_FLAG_SUPP_MOVED_MIGR: u32 = 0x0000_0002;
/// EXCHGID4_FLAG_SUPP_FENCE_OPS (RFC 7862).
pub const EXCHGID4_FLAG_SUPP_FENCE_OPS: u32 = 0x0000_0004;
/// EXCHGID4_FLAG_BIND_PRINC_STATEID.
pub const EXCHGID4_FLAG_BIND_PRINC_STATEID: u32 = 0x0000_0100;
/// EXCHGID4_FLAG_USE_NON_PNFS.
pub const EXCHGID4_FLAG_USE_NON_PNFS: u32 = 0x0001_0000;
/// EXCHGID4_FLAG_USE_PNFS_MDS.
pub const EXCHGID4_FLAG_USE_PNFS_MDS: u32 = 0x0002_0000;
/// EXCHGID4_FLAG_USE_PNFS_DS.
pub const EXCHGID4_FLAG_USE_PNFS_DS: u32 = 0x0004_0000;
/// EXCHGID4_FLAG_MASK_PNFS.
pub const EXCHGID4_FLAG_MASK_PNFS: u32 = 0x0007_0000;
/// EXCHGID4_FLAG_UPD_CONFIRMED_REC_A.
pub const EXCHGID4_FLAG_UPD_CONFIRMED_REC_A: u32 = 0x4000_0000;
/// EXCHGID4_FLAG_CONFIRMED_R.
pub const EXCHGID4_FLAG_CONFIRMED_R: u32 = 0x8000_0000;

/// CREATE_SESSION4_FLAG_PERSIST.
pub const CREATE_SESSION4_FLAG_PERSIST: u32 = 0x1;
/// CREATE_SESSION4_FLAG_CONN_BACK_CHAN.
pub const CREATE_SESSION4_FLAG_CONN_BACK_CHAN: u32 = 0x2;
/// CREATE_SESSION4_FLAG_CONN_RDMA.
pub const CREATE_SESSION4_FLAG_CONN_RDMA: u32 = 0x4;

/// SEQ4_STATUS_CB_PATH_DOWN.
pub const SEQ4_STATUS_CB_PATH_DOWN: u32 = 0x0000_0001;
/// SEQ4_STATUS_CB_GSS_CONTEXTS_EXPIRING.
pub const SEQ4_STATUS_CB_GSS_CONTEXTS_EXPIRING: u32 = 0x0000_0002;
/// SEQ4_STATUS_CB_GSS_CONTEXTS_EXPIRED.
pub const SEQ4_STATUS_CB_GSS_CONTEXTS_EXPIRED: u32 = 0x0000_0004;
/// SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED.
pub const SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED: u32 = 0x0000_0008;
/// SEQ4_STATUS_EXPIRED_SOME_STATE_REVOKED.
pub const SEQ4_STATUS_EXPIRED_SOME_STATE_REVOKED: u32 = 0x0000_0010;
/// SEQ4_STATUS_ADMIN_STATE_REVOKED.
pub const SEQ4_STATUS_ADMIN_STATE_REVOKED: u32 = 0x0000_0020;
/// SEQ4_STATUS_RECALLABLE_STATE_REVOKED.
pub const SEQ4_STATUS_RECALLABLE_STATE_REVOKED: u32 = 0x0000_0040;
/// SEQ4_STATUS_LEASE_MOVED.
pub const SEQ4_STATUS_LEASE_MOVED: u32 = 0x0000_0080;
/// SEQ4_STATUS_RESTART_RECLAIM_NEEDED.
pub const SEQ4_STATUS_RESTART_RECLAIM_NEEDED: u32 = 0x0000_0100;
/// SEQ4_STATUS_CB_PATH_DOWN_SESSION.
pub const SEQ4_STATUS_CB_PATH_DOWN_SESSION: u32 = 0x0000_0200;
/// SEQ4_STATUS_BACKCHANNEL_FAULT.
pub const SEQ4_STATUS_BACKCHANNEL_FAULT: u32 = 0x0000_0400;
/// SEQ4_STATUS_DEVID_CHANGED.
pub const SEQ4_STATUS_DEVID_CHANGED: u32 = 0x0000_0800;
/// SEQ4_STATUS_DEVID_DELETED.
pub const SEQ4_STATUS_DEVID_DELETED: u32 = 0x0000_1000;

/// OPEN4_SHARE_ACCESS_READ.
pub const OPEN4_SHARE_ACCESS_READ: u32 = 0x1;
/// OPEN4_SHARE_ACCESS_WRITE.
pub const OPEN4_SHARE_ACCESS_WRITE: u32 = 0x2;
/// OPEN4_SHARE_ACCESS_BOTH.
pub const OPEN4_SHARE_ACCESS_BOTH: u32 = 0x3;
/// OPEN4_SHARE_DENY_NONE.
pub const OPEN4_SHARE_DENY_NONE: u32 = 0x0;
/// OPEN4_SHARE_DENY_READ.
pub const OPEN4_SHARE_DENY_READ: u32 = 0x1;
/// OPEN4_SHARE_DENY_WRITE.
pub const OPEN4_SHARE_DENY_WRITE: u32 = 0x2;
/// OPEN4_SHARE_DENY_BOTH.
pub const OPEN4_SHARE_DENY_BOTH: u32 = 0x3;
/// OPEN4_SHARE_ACCESS_WANT_DELEG_MASK.
pub const OPEN4_SHARE_ACCESS_WANT_DELEG_MASK: u32 = 0xff00;
/// OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE.
pub const OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE: u32 = 0x0000;
/// OPEN4_SHARE_ACCESS_WANT_READ_DELEG.
pub const OPEN4_SHARE_ACCESS_WANT_READ_DELEG: u32 = 0x0100;
/// OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG.
pub const OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG: u32 = 0x0200;
/// OPEN4_SHARE_ACCESS_WANT_ANY_DELEG.
pub const OPEN4_SHARE_ACCESS_WANT_ANY_DELEG: u32 = 0x0300;
/// OPEN4_SHARE_ACCESS_WANT_NO_DELEG.
pub const OPEN4_SHARE_ACCESS_WANT_NO_DELEG: u32 = 0x0400;
/// OPEN4_SHARE_ACCESS_WANT_CANCEL.
pub const OPEN4_SHARE_ACCESS_WANT_CANCEL: u32 = 0x0500;
/// OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL.
pub const OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL: u32 = 0x1_0000;
/// OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED.
pub const OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED: u32 = 0x2_0000;

/// OPEN4_RESULT_CONFIRM (NFSv4.0 only).
pub const OPEN4_RESULT_CONFIRM: u32 = 0x02;
/// OPEN4_RESULT_LOCKTYPE_POSIX.
pub const OPEN4_RESULT_LOCKTYPE_POSIX: u32 = 0x04;
/// OPEN4_RESULT_PRESERVE_UNLINKED.
pub const OPEN4_RESULT_PRESERVE_UNLINKED: u32 = 0x08;
/// OPEN4_RESULT_MAY_NOTIFY_LOCK.
pub const OPEN4_RESULT_MAY_NOTIFY_LOCK: u32 = 0x20;

/// NOTIFY_DEVICEID4_CHANGE: bit number in GETDEVICEINFO notify bitmaps.
pub const NOTIFY_DEVICEID4_CHANGE: u32 = 1;
/// NOTIFY_DEVICEID4_DELETE: bit number in GETDEVICEINFO notify bitmaps.
pub const NOTIFY_DEVICEID4_DELETE: u32 = 2;

/// rpc_gss_svc_t: RPC_GSS_SVC_NONE.
pub const RPC_GSS_SVC_NONE: u32 = 1;
/// rpc_gss_svc_t: RPC_GSS_SVC_INTEGRITY.
pub const RPC_GSS_SVC_INTEGRITY: u32 = 2;
/// rpc_gss_svc_t: RPC_GSS_SVC_PRIVACY.
pub const RPC_GSS_SVC_PRIVACY: u32 = 3;

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

/// A result union that carries a body only on NFS4_OK, on both channels.
///
/// `Err` should never hold [`NfsStat::OK`] (the decoder cannot produce it); if one is built
/// anyway, it reads, encodes and is built by [`OpResult::from_error`] as
/// NFS4ERR_SERVERFAULT rather than as a malformed NFS4_OK without a body.
pub type NfsRes<T> = Result<T, NfsStat>;

/// The status of an [`NfsRes`] (NFS4ERR_SERVERFAULT for `Err(NFS4_OK)`).
fn res_status<T>(r: &NfsRes<T>) -> NfsStat {
    match r {
        Ok(_) => NfsStat::OK,
        Err(s) if s.is_ok() => NfsStat::SERVERFAULT,
        Err(s) => *s,
    }
}

impl<T: XdrEncode> XdrEncode for Result<T, NfsStat> {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Ok(v) => {
                enc.put_u32(NfsStat::OK.0);
                v.encode(enc);
            }
            Err(_) => res_status(self).encode(enc),
        }
    }
}

impl<T: XdrDecode> XdrDecode for Result<T, NfsStat> {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let status = NfsStat::decode(dec)?;
        if status.is_ok() {
            Ok(Ok(T::decode(dec)?))
        } else {
            Ok(Err(status))
        }
    }
}

/// What every operation result can do.
pub trait OpResult: Sized {
    /// The result for a failure with `status` (which must not be NFS4_OK).
    fn from_error(status: NfsStat) -> Self;
    /// The status of the result.
    fn status(&self) -> NfsStat;
}

impl<T> OpResult for Result<T, NfsStat> {
    fn from_error(status: NfsStat) -> Self {
        Err(if status.is_ok() {
            NfsStat::SERVERFAULT
        } else {
            status
        })
    }
    fn status(&self) -> NfsStat {
        res_status(self)
    }
}

impl OpResult for NfsStat {
    fn from_error(status: NfsStat) -> Self {
        status
    }
    fn status(&self) -> NfsStat {
        *self
    }
}

// ---------------------------------------------------------------------------------------------
// Shared structures
// ---------------------------------------------------------------------------------------------

/// A name component (component4), decoded with [`NFS4_MAX_COMPONENT_BYTES`].
pub type Component = String;

xdr_struct! {
    /// change_info4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ChangeInfo {
        /// atomic.
        pub atomic: bool,
        /// before.
        pub before: u64,
        /// after.
        pub after: u64,
    }
}

xdr_struct! {
    /// state_owner4 (open_owner4, lock_owner4).
    #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
    pub struct StateOwner {
        /// clientid.
        pub clientid: ClientId,
        /// owner, at most NFS4_OPAQUE_LIMIT bytes.
        pub owner: Vec<u8> => opaque(NFS4_OPAQUE_LIMIT_BYTES),
    }
}

xdr_struct! {
    /// specdata4: device numbers of NF4BLK / NF4CHR.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SpecData {
        /// Major device number.
        pub specdata1: u32,
        /// Minor device number.
        pub specdata2: u32,
    }
}

xdr_struct! {
    /// nfsace4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct NfsAce {
        /// acetype4.
        pub ace_type: u32,
        /// aceflag4.
        pub flag: u32,
        /// acemask4.
        pub access_mask: u32,
        /// who (utf8str_mixed).
        pub who: String => string(NFS4_OPAQUE_LIMIT_BYTES),
    }
}

xdr_struct! {
    /// netaddr4 (RFC 1833 netid and universal address).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct NetAddr {
        /// na_r_netid ("tcp", "tcp6"…).
        pub netid: String => string(NFS4_MAX_NETADDR_BYTES),
        /// na_r_addr ("h1.h2.h3.h4.p1.p2").
        pub addr: String => string(NFS4_MAX_NETADDR_BYTES),
    }
}

xdr_struct! {
    /// nfs_impl_id4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct NfsImplId {
        /// nii_domain.
        pub domain: String => string(NFS4_OPAQUE_LIMIT_BYTES),
        /// nii_name.
        pub name: String => string(NFS4_OPAQUE_LIMIT_BYTES),
        /// nii_date.
        pub date: NfsTime,
    }
}

/// stable_how4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum StableHow {
    /// UNSTABLE4.
    #[default]
    Unstable,
    /// DATA_SYNC4.
    DataSync,
    /// FILE_SYNC4.
    FileSync,
}

impl XdrEncode for StableHow {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(match self {
            Self::Unstable => 0,
            Self::DataSync => 1,
            Self::FileSync => 2,
        });
    }
}

impl XdrDecode for StableHow {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        match dec.u32()? {
            0 => Ok(Self::Unstable),
            1 => Ok(Self::DataSync),
            2 => Ok(Self::FileSync),
            value => Err(XdrError::BadEnum {
                what: "stable_how4",
                value,
            }),
        }
    }
}

xdr_union! {
    /// open_delegation_type4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum OpenDelegationType: "open_delegation_type4" {
        /// OPEN_DELEGATE_NONE.
        #[default]
        None = 0,
        /// OPEN_DELEGATE_READ.
        Read = 1,
        /// OPEN_DELEGATE_WRITE.
        Write = 2,
        /// OPEN_DELEGATE_NONE_EXT.
        NoneExt = 3,
    }
}

xdr_union! {
    /// nfs_lock_type4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum LockType: "nfs_lock_type4" {
        /// READ_LT.
        #[default]
        Read = 1,
        /// WRITE_LT.
        Write = 2,
        /// READW_LT (blocking).
        ReadW = 3,
        /// WRITEW_LT (blocking).
        WriteW = 4,
    }
}

// ---------------------------------------------------------------------------------------------
// Session and client id operations
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// client_owner4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ClientOwner {
        /// co_verifier (changes on client reboot).
        pub verifier: Verifier,
        /// co_ownerid.
        pub ownerid: Vec<u8> => opaque(NFS4_OPAQUE_LIMIT_BYTES),
    }
}

xdr_struct! {
    /// server_owner4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ServerOwner {
        /// so_minor_id.
        pub minor_id: u64,
        /// so_major_id.
        pub major_id: Vec<u8> => opaque(NFS4_OPAQUE_LIMIT_BYTES),
    }
}

xdr_struct! {
    /// state_protect_ops4: the two operation bitmaps of SP4_MACH_CRED / SP4_SSV.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct StateProtectOps {
        /// spo_must_enforce.
        pub must_enforce: Bitmap4,
        /// spo_must_allow.
        pub must_allow: Bitmap4,
    }
}

xdr_struct! {
    /// ssv_sp_parms4 (decoded so a server can refuse SP4_SSV).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SsvSpParms {
        /// ssp_ops.
        pub ops: StateProtectOps,
        /// ssp_hash_algs (OIDs).
        pub hash_algs: Vec<SecOid> => array(NFS4_MAX_SEC_OIDS),
        /// ssp_encr_algs (OIDs).
        pub encr_algs: Vec<SecOid> => array(NFS4_MAX_SEC_OIDS),
        /// ssp_window.
        pub window: u32,
        /// ssp_num_gss_handles.
        pub num_gss_handles: u32,
    }
}

/// sec_oid4 / gsshandle4_t: an opaque of at most [`NFS4_MAX_SEC_OPAQUE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SecOid(pub Vec<u8>);

impl XdrEncode for SecOid {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_opaque(&self.0);
    }
}

impl XdrDecode for SecOid {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self(
            dec.opaque("sec_oid4", NFS4_MAX_SEC_OPAQUE_BYTES)?.to_vec(),
        ))
    }
}

xdr_union! {
    /// state_protect4_a.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub enum StateProtectA: "state_protect_how4" {
        /// SP4_NONE.
        #[default]
        None = 0,
        /// SP4_MACH_CRED.
        MachCred(StateProtectOps) = 1,
        /// SP4_SSV (servers here refuse it).
        Ssv(SsvSpParms) = 2,
    }
}

xdr_struct! {
    /// ssv_prot_info4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SsvProtInfo {
        /// spi_ops.
        pub ops: StateProtectOps,
        /// spi_hash_alg.
        pub hash_alg: u32,
        /// spi_encr_alg.
        pub encr_alg: u32,
        /// spi_ssv_len.
        pub ssv_len: u32,
        /// spi_window.
        pub window: u32,
        /// spi_handles.
        pub handles: Vec<SecOid> => array(NFS4_MAX_GSS_HANDLES),
    }
}

xdr_union! {
    /// state_protect4_r.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub enum StateProtectR: "state_protect_how4" {
        /// SP4_NONE.
        #[default]
        None = 0,
        /// SP4_MACH_CRED.
        MachCred(StateProtectOps) = 1,
        /// SP4_SSV.
        Ssv(SsvProtInfo) = 2,
    }
}

xdr_struct! {
    /// EXCHANGE_ID4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ExchangeIdArgs {
        /// eia_clientowner.
        pub clientowner: ClientOwner,
        /// eia_flags (EXCHGID4_FLAG_*).
        pub flags: u32,
        /// eia_state_protect.
        pub state_protect: StateProtectA,
        /// eia_client_impl_id<1>.
        pub client_impl_id: Option<NfsImplId> => option,
    }
}

xdr_struct! {
    /// EXCHANGE_ID4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ExchangeIdResOk {
        /// eir_clientid.
        pub clientid: ClientId,
        /// eir_sequenceid.
        pub sequenceid: SequenceId,
        /// eir_flags.
        pub flags: u32,
        /// eir_state_protect.
        pub state_protect: StateProtectR,
        /// eir_server_owner.
        pub server_owner: ServerOwner,
        /// eir_server_scope.
        pub server_scope: Vec<u8> => opaque(NFS4_OPAQUE_LIMIT_BYTES),
        /// eir_server_impl_id<1>.
        pub server_impl_id: Option<NfsImplId> => option,
    }
}

xdr_struct! {
    /// channel_attrs4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ChannelAttrs {
        /// ca_headerpadsize.
        pub headerpadsize: u32,
        /// ca_maxrequestsize.
        pub maxrequestsize: u32,
        /// ca_maxresponsesize.
        pub maxresponsesize: u32,
        /// ca_maxresponsesize_cached.
        pub maxresponsesize_cached: u32,
        /// ca_maxoperations.
        pub maxoperations: u32,
        /// ca_maxrequests (slots).
        pub maxrequests: u32,
        /// ca_rdma_ird<1>.
        pub rdma_ird: Option<u32> => option,
    }
}

xdr_struct! {
    /// gss_cb_handles4 (decoded so a server can refuse RPCSEC_GSS callbacks).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct GssCbHandles {
        /// gcbp_service (rpc_gss_svc_t).
        pub service: u32,
        /// gcbp_handle_from_server.
        pub handle_from_server: Vec<u8> => opaque(NFS4_MAX_SEC_OPAQUE_BYTES),
        /// gcbp_handle_from_client.
        pub handle_from_client: Vec<u8> => opaque(NFS4_MAX_SEC_OPAQUE_BYTES),
    }
}

xdr_union! {
    /// callback_sec_parms4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub enum CallbackSecParms: "callback_sec_parms4" {
        /// AUTH_NONE.
        #[default]
        None = AUTH_NONE,
        /// AUTH_SYS.
        Sys(AuthSys) = AUTH_SYS,
        /// RPCSEC_GSS (servers here refuse it).
        Gss(GssCbHandles) = RPCSEC_GSS,
    }
}

xdr_struct! {
    /// CREATE_SESSION4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CreateSessionArgs {
        /// csa_clientid.
        pub clientid: ClientId,
        /// csa_sequence.
        pub sequence: SequenceId,
        /// csa_flags (CREATE_SESSION4_FLAG_*).
        pub flags: u32,
        /// csa_fore_chan_attrs.
        pub fore_chan_attrs: ChannelAttrs,
        /// csa_back_chan_attrs.
        pub back_chan_attrs: ChannelAttrs,
        /// csa_cb_program.
        pub cb_program: u32,
        /// csa_sec_parms.
        pub sec_parms: Vec<CallbackSecParms> => array(NFS4_MAX_CB_SEC_PARMS),
    }
}

xdr_struct! {
    /// CREATE_SESSION4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CreateSessionResOk {
        /// csr_sessionid.
        pub sessionid: SessionId,
        /// csr_sequence.
        pub sequence: SequenceId,
        /// csr_flags.
        pub flags: u32,
        /// csr_fore_chan_attrs.
        pub fore_chan_attrs: ChannelAttrs,
        /// csr_back_chan_attrs.
        pub back_chan_attrs: ChannelAttrs,
    }
}

xdr_struct! {
    /// SEQUENCE4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SequenceArgs {
        /// sa_sessionid.
        pub sessionid: SessionId,
        /// sa_sequenceid.
        pub sequenceid: SequenceId,
        /// sa_slotid.
        pub slotid: SlotId,
        /// sa_highest_slotid.
        pub highest_slotid: SlotId,
        /// sa_cachethis.
        pub cachethis: bool,
    }
}

xdr_struct! {
    /// SEQUENCE4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SequenceResOk {
        /// sr_sessionid.
        pub sessionid: SessionId,
        /// sr_sequenceid.
        pub sequenceid: SequenceId,
        /// sr_slotid.
        pub slotid: SlotId,
        /// sr_highest_slotid.
        pub highest_slotid: SlotId,
        /// sr_target_highest_slotid.
        pub target_highest_slotid: SlotId,
        /// sr_status_flags (SEQ4_STATUS_*).
        pub status_flags: u32,
    }
}

xdr_union! {
    /// channel_dir_from_client4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum ChannelDirFromClient: "channel_dir_from_client4" {
        /// CDFC4_FORE.
        Fore = 1,
        /// CDFC4_BACK.
        Back = 2,
        /// CDFC4_FORE_OR_BOTH.
        #[default]
        ForeOrBoth = 3,
        /// CDFC4_BACK_OR_BOTH.
        BackOrBoth = 7,
    }
}

xdr_union! {
    /// channel_dir_from_server4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum ChannelDirFromServer: "channel_dir_from_server4" {
        /// CDFS4_FORE.
        Fore = 1,
        /// CDFS4_BACK.
        Back = 2,
        /// CDFS4_BOTH.
        #[default]
        Both = 3,
    }
}

xdr_struct! {
    /// BIND_CONN_TO_SESSION4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct BindConnToSessionArgs {
        /// bctsa_sessid.
        pub sessid: SessionId,
        /// bctsa_dir.
        pub dir: ChannelDirFromClient,
        /// bctsa_use_conn_in_rdma_mode.
        pub use_conn_in_rdma_mode: bool,
    }
}

xdr_struct! {
    /// BIND_CONN_TO_SESSION4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct BindConnToSessionResOk {
        /// bctsr_sessid.
        pub sessid: SessionId,
        /// bctsr_dir.
        pub dir: ChannelDirFromServer,
        /// bctsr_use_conn_in_rdma_mode.
        pub use_conn_in_rdma_mode: bool,
    }
}

xdr_struct! {
    /// BACKCHANNEL_CTL4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct BackchannelCtlArgs {
        /// bca_cb_program.
        pub cb_program: u32,
        /// bca_sec_parms.
        pub sec_parms: Vec<CallbackSecParms> => array(NFS4_MAX_CB_SEC_PARMS),
    }
}

xdr_struct! {
    /// SET_SSV4args (decoded so a server can refuse it).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SetSsvArgs {
        /// ssa_ssv.
        pub ssv: Vec<u8> => opaque(NFS4_MAX_SEC_OPAQUE_BYTES),
        /// ssa_digest.
        pub digest: Vec<u8> => opaque(NFS4_MAX_SEC_OPAQUE_BYTES),
    }
}

xdr_struct! {
    /// SET_SSV4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SetSsvResOk {
        /// ssr_digest.
        pub digest: Vec<u8> => opaque(NFS4_MAX_SEC_OPAQUE_BYTES),
    }
}

xdr_struct! {
    /// TEST_STATEID4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct TestStateidArgs {
        /// ts_stateids.
        pub stateids: Vec<Stateid> => array(NFS4_MAX_TEST_STATEIDS),
    }
}

xdr_struct! {
    /// TEST_STATEID4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct TestStateidResOk {
        /// tsr_status_codes, one per stateid.
        pub status_codes: Vec<NfsStat> => array(NFS4_MAX_TEST_STATEIDS),
    }
}

// ---------------------------------------------------------------------------------------------
// File handle, lookup, attribute and access operations
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// LOOKUP4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LookupArgs {
        /// objname.
        pub objname: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

xdr_struct! {
    /// GETATTR4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct GetattrArgs {
        /// attr_request.
        pub attr_request: Bitmap4,
    }
}

xdr_struct! {
    /// GETATTR4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct GetattrResOk {
        /// obj_attributes.
        pub obj_attributes: Fattr4,
    }
}

xdr_struct! {
    /// GETFH4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct GetfhResOk {
        /// object.
        pub object: FileHandle,
    }
}

xdr_struct! {
    /// ACCESS4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct AccessArgs {
        /// access (ACCESS4_*).
        pub access: u32,
    }
}

xdr_struct! {
    /// ACCESS4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct AccessResOk {
        /// supported.
        pub supported: u32,
        /// access.
        pub access: u32,
    }
}

xdr_struct! {
    /// SETATTR4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SetattrArgs {
        /// stateid.
        pub stateid: Stateid,
        /// obj_attributes.
        pub obj_attributes: Fattr4,
    }
}

xdr_struct! {
    /// SETATTR4res: the set attributes come back whatever the status.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SetattrRes {
        /// status.
        pub status: NfsStat,
        /// attrsset.
        pub attrsset: Bitmap4,
    }
}

impl OpResult for SetattrRes {
    fn from_error(status: NfsStat) -> Self {
        Self {
            status,
            attrsset: Bitmap4::new(),
        }
    }
    fn status(&self) -> NfsStat {
        self.status
    }
}

xdr_struct! {
    /// VERIFY4args and NVERIFY4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct VerifyArgs {
        /// obj_attributes.
        pub obj_attributes: Fattr4,
    }
}

xdr_struct! {
    /// rpcsec_gss_info.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RpcsecGssInfo {
        /// oid.
        pub oid: SecOid,
        /// qop.
        pub qop: u32,
        /// service (rpc_gss_svc_t).
        pub service: u32,
    }
}

/// secinfo4: a flavour, with GSS details for RPCSEC_GSS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecInfo {
    /// RPCSEC_GSS with its mechanism.
    Gss(RpcsecGssInfo),
    /// Any other flavour (AUTH_NONE, AUTH_SYS…).
    Flavor(u32),
}

impl XdrEncode for SecInfo {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Gss(info) => {
                enc.put_u32(RPCSEC_GSS);
                info.encode(enc);
            }
            Self::Flavor(f) => enc.put_u32(*f),
        }
    }
}

impl XdrDecode for SecInfo {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        match dec.u32()? {
            RPCSEC_GSS => Ok(Self::Gss(dec.get()?)),
            f => Ok(Self::Flavor(f)),
        }
    }
}

xdr_struct! {
    /// SECINFO4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SecinfoArgs {
        /// name.
        pub name: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

xdr_struct! {
    /// SECINFO4resok (also SECINFO_NO_NAME).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SecinfoResOk {
        /// The flavours, most preferred first.
        pub flavors: Vec<SecInfo> => array(NFS4_MAX_SECINFO_ENTRIES),
    }
}

xdr_union! {
    /// secinfo_style4 (SECINFO_NO_NAME4args).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum SecinfoStyle: "secinfo_style4" {
        /// SECINFO_STYLE4_CURRENT_FH.
        #[default]
        CurrentFh = 0,
        /// SECINFO_STYLE4_PARENT.
        Parent = 1,
    }
}

// ---------------------------------------------------------------------------------------------
// OPEN, CLOSE, delegations
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// creatverfattr (EXCLUSIVE4_1).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CreatVerfAttr {
        /// cva_verf.
        pub verf: Verifier,
        /// cva_attrs.
        pub attrs: Fattr4,
    }
}

xdr_union! {
    /// createhow4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum CreateHow: "createmode4" {
        /// UNCHECKED4 with the initial attributes.
        Unchecked(Fattr4) = 0,
        /// GUARDED4 with the initial attributes.
        Guarded(Fattr4) = 1,
        /// EXCLUSIVE4 (NFSv4.0 style) with the verifier.
        Exclusive(Verifier) = 2,
        /// EXCLUSIVE4_1 with verifier and attributes.
        Exclusive41(CreatVerfAttr) = 3,
    }
}

xdr_union! {
    /// openflag4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub enum OpenFlag: "opentype4" {
        /// OPEN4_NOCREATE.
        #[default]
        NoCreate = 0,
        /// OPEN4_CREATE.
        Create(CreateHow) = 1,
    }
}

xdr_struct! {
    /// open_claim_delegate_cur4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct OpenClaimDelegateCur {
        /// delegate_stateid.
        pub delegate_stateid: Stateid,
        /// file.
        pub file: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

/// open_claim4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenClaim {
    /// CLAIM_NULL: open `file` in the current directory.
    Null(Component),
    /// CLAIM_PREVIOUS: reclaim after a server restart (current fh is the file).
    Previous(OpenDelegationType),
    /// CLAIM_DELEGATE_CUR.
    DelegateCur(OpenClaimDelegateCur),
    /// CLAIM_DELEGATE_PREV.
    DelegatePrev(Component),
    /// CLAIM_FH: open the current fh.
    Fh,
    /// CLAIM_DELEG_CUR_FH.
    DelegCurFh(Stateid),
    /// CLAIM_DELEG_PREV_FH.
    DelegPrevFh,
}

impl XdrEncode for OpenClaim {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Null(file) => {
                enc.put_u32(0);
                enc.put_str(file);
            }
            Self::Previous(t) => {
                enc.put_u32(1);
                t.encode(enc);
            }
            Self::DelegateCur(c) => {
                enc.put_u32(2);
                c.encode(enc);
            }
            Self::DelegatePrev(file) => {
                enc.put_u32(3);
                enc.put_str(file);
            }
            Self::Fh => enc.put_u32(4),
            Self::DelegCurFh(s) => {
                enc.put_u32(5);
                s.encode(enc);
            }
            Self::DelegPrevFh => enc.put_u32(6),
        }
    }
}

impl XdrDecode for OpenClaim {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            0 => Self::Null(dec.string("open_claim4.file", NFS4_MAX_COMPONENT_BYTES)?),
            1 => Self::Previous(dec.get()?),
            2 => Self::DelegateCur(dec.get()?),
            3 => Self::DelegatePrev(dec.string("open_claim4.file", NFS4_MAX_COMPONENT_BYTES)?),
            4 => Self::Fh,
            5 => Self::DelegCurFh(dec.get()?),
            6 => Self::DelegPrevFh,
            value => {
                return Err(XdrError::BadEnum {
                    what: "open_claim_type4",
                    value,
                })
            }
        })
    }
}

xdr_struct! {
    /// OPEN4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OpenArgs {
        /// seqid (ignored in 4.1).
        pub seqid: u32,
        /// share_access (OPEN4_SHARE_ACCESS_* with want bits).
        pub share_access: u32,
        /// share_deny.
        pub share_deny: u32,
        /// owner.
        pub owner: StateOwner,
        /// openhow.
        pub openhow: OpenFlag,
        /// claim.
        pub claim: OpenClaim,
    }
}

xdr_struct! {
    /// nfs_modified_limit4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ModifiedLimit {
        /// num_blocks.
        pub num_blocks: u32,
        /// bytes_per_block.
        pub bytes_per_block: u32,
    }
}

xdr_union! {
    /// nfs_space_limit4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum SpaceLimit: "limit_by4" {
        /// NFS_LIMIT_SIZE.
        Size(u64) = 1,
        /// NFS_LIMIT_BLOCKS.
        Blocks(ModifiedLimit) = 2,
    }
}

xdr_struct! {
    /// open_read_delegation4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct OpenReadDelegation {
        /// stateid.
        pub stateid: Stateid,
        /// recall.
        pub recall: bool,
        /// permissions.
        pub permissions: NfsAce,
    }
}

xdr_struct! {
    /// open_write_delegation4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct OpenWriteDelegation {
        /// stateid.
        pub stateid: Stateid,
        /// recall.
        pub recall: bool,
        /// space_limit.
        pub space_limit: SpaceLimit,
        /// permissions.
        pub permissions: NfsAce,
    }
}

/// why_no_delegation4 values.
pub mod why_no_delegation {
    /// WND4_NOT_WANTED.
    pub const NOT_WANTED: u32 = 0;
    /// WND4_CONTENTION.
    pub const CONTENTION: u32 = 1;
    /// WND4_RESOURCE.
    pub const RESOURCE: u32 = 2;
    /// WND4_NOT_SUPP_FTYPE.
    pub const NOT_SUPP_FTYPE: u32 = 3;
    /// WND4_WRITE_DELEG_NOT_SUPP_FTYPE.
    pub const WRITE_DELEG_NOT_SUPP_FTYPE: u32 = 4;
    /// WND4_NOT_SUPP_UPGRADE.
    pub const NOT_SUPP_UPGRADE: u32 = 5;
    /// WND4_NOT_SUPP_DOWNGRADE.
    pub const NOT_SUPP_DOWNGRADE: u32 = 6;
    /// WND4_CANCELLED.
    pub const CANCELLED: u32 = 7;
    /// WND4_IS_DIR.
    pub const IS_DIR: u32 = 8;
}

/// open_none_delegation4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenNoneDelegation {
    /// WND4_CONTENTION with ond_server_will_push_deleg.
    Contention {
        /// The server will push a delegation when the contention ends.
        server_will_push_deleg: bool,
    },
    /// WND4_RESOURCE with ond_server_will_signal_avail.
    Resource {
        /// The server will signal when resources are available.
        server_will_signal_avail: bool,
    },
    /// Any other reason ([`why_no_delegation`]), no data.
    Other(u32),
}

impl XdrEncode for OpenNoneDelegation {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Contention {
                server_will_push_deleg,
            } => {
                enc.put_u32(why_no_delegation::CONTENTION);
                enc.put_bool(*server_will_push_deleg);
            }
            Self::Resource {
                server_will_signal_avail,
            } => {
                enc.put_u32(why_no_delegation::RESOURCE);
                enc.put_bool(*server_will_signal_avail);
            }
            Self::Other(why) => enc.put_u32(*why),
        }
    }
}

impl XdrDecode for OpenNoneDelegation {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            why_no_delegation::CONTENTION => Self::Contention {
                server_will_push_deleg: dec.bool()?,
            },
            why_no_delegation::RESOURCE => Self::Resource {
                server_will_signal_avail: dec.bool()?,
            },
            why => Self::Other(why),
        })
    }
}

xdr_union! {
    /// open_delegation4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub enum OpenDelegation: "open_delegation_type4" {
        /// OPEN_DELEGATE_NONE.
        #[default]
        None = 0,
        /// OPEN_DELEGATE_READ.
        Read(OpenReadDelegation) = 1,
        /// OPEN_DELEGATE_WRITE.
        Write(OpenWriteDelegation) = 2,
        /// OPEN_DELEGATE_NONE_EXT with the reason.
        NoneExt(OpenNoneDelegation) = 3,
    }
}

xdr_struct! {
    /// OPEN4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct OpenResOk {
        /// stateid.
        pub stateid: Stateid,
        /// cinfo of the directory.
        pub cinfo: ChangeInfo,
        /// rflags (OPEN4_RESULT_*).
        pub rflags: u32,
        /// attrset.
        pub attrset: Bitmap4,
        /// delegation.
        pub delegation: OpenDelegation,
    }
}

xdr_struct! {
    /// CLOSE4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CloseArgs {
        /// seqid (ignored in 4.1).
        pub seqid: u32,
        /// open_stateid.
        pub open_stateid: Stateid,
    }
}

xdr_struct! {
    /// OPEN_DOWNGRADE4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct OpenDowngradeArgs {
        /// open_stateid.
        pub open_stateid: Stateid,
        /// seqid.
        pub seqid: u32,
        /// share_access.
        pub share_access: u32,
        /// share_deny.
        pub share_deny: u32,
    }
}

xdr_struct! {
    /// OPENATTR4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct OpenattrArgs {
        /// createdir.
        pub createdir: bool,
    }
}

xdr_union! {
    /// deleg_claim4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum DelegClaim: "deleg_claim4" {
        /// CLAIM_FH.
        #[default]
        Fh = 4,
        /// CLAIM_DELEG_PREV_FH.
        DelegPrevFh = 6,
        /// CLAIM_PREVIOUS.
        Previous(OpenDelegationType) = 1,
    }
}

xdr_struct! {
    /// WANT_DELEGATION4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct WantDelegationArgs {
        /// wda_want (OPEN4_SHARE_ACCESS_WANT_* bits).
        pub want: u32,
        /// wda_claim.
        pub claim: DelegClaim,
    }
}

xdr_struct! {
    /// GET_DIR_DELEGATION4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct GetDirDelegationArgs {
        /// gdda_signal_deleg_avail.
        pub signal_deleg_avail: bool,
        /// gdda_notification_types.
        pub notification_types: Bitmap4,
        /// gdda_child_attr_delay.
        pub child_attr_delay: NfsTime,
        /// gdda_dir_attr_delay.
        pub dir_attr_delay: NfsTime,
        /// gdda_child_attributes.
        pub child_attributes: Bitmap4,
        /// gdda_dir_attributes.
        pub dir_attributes: Bitmap4,
    }
}

xdr_struct! {
    /// GET_DIR_DELEGATION4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct GetDirDelegationResOk {
        /// gddr_cookieverf.
        pub cookieverf: Verifier,
        /// gddr_stateid.
        pub stateid: Stateid,
        /// gddr_notification.
        pub notification: Bitmap4,
        /// gddr_child_attributes.
        pub child_attributes: Bitmap4,
        /// gddr_dir_attributes.
        pub dir_attributes: Bitmap4,
    }
}

xdr_union! {
    /// GET_DIR_DELEGATION4res_non_fatal.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum GetDirDelegationNonFatal: "gddrnf4_status" {
        /// GDD4_OK.
        Ok(GetDirDelegationResOk) = 0,
        /// GDD4_UNAVAIL with gddrnf_will_signal_deleg_avail.
        Unavail(bool) = 1,
    }
}

// ---------------------------------------------------------------------------------------------
// I/O
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// READ4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ReadArgs {
        /// stateid.
        pub stateid: Stateid,
        /// offset.
        pub offset: u64,
        /// count.
        pub count: u32,
    }
}

xdr_struct! {
    /// READ4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReadResOk {
        /// eof.
        pub eof: bool,
        /// data, at most [`NFS4_MAX_IO_BYTES`].
        pub data: Vec<u8> => opaque(NFS4_MAX_IO_BYTES),
    }
}

xdr_struct! {
    /// WRITE4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct WriteArgs {
        /// stateid.
        pub stateid: Stateid,
        /// offset.
        pub offset: u64,
        /// stable.
        pub stable: StableHow,
        /// data, at most [`NFS4_MAX_IO_BYTES`].
        pub data: Vec<u8> => opaque(NFS4_MAX_IO_BYTES),
    }
}

xdr_struct! {
    /// WRITE4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct WriteResOk {
        /// count.
        pub count: u32,
        /// committed.
        pub committed: StableHow,
        /// writeverf.
        pub writeverf: Verifier,
    }
}

xdr_struct! {
    /// COMMIT4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CommitArgs {
        /// offset.
        pub offset: u64,
        /// count (0 = to the end of file).
        pub count: u32,
    }
}

xdr_struct! {
    /// COMMIT4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CommitResOk {
        /// writeverf.
        pub writeverf: Verifier,
    }
}

// ---------------------------------------------------------------------------------------------
// pNFS
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// layout_content4: the layout-type specific body stays opaque here.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutContent {
        /// loc_type.
        pub loc_type: LayoutType,
        /// loc_body.
        pub loc_body: Vec<u8> => opaque(NFS4_MAX_LAYOUT_BODY_BYTES),
    }
}

xdr_struct! {
    /// layout4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Layout {
        /// lo_offset.
        pub offset: u64,
        /// lo_length.
        pub length: u64,
        /// lo_iomode.
        pub iomode: LayoutIoMode,
        /// lo_content.
        pub content: LayoutContent,
    }
}

xdr_struct! {
    /// device_addr4: the body stays opaque here.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DeviceAddr {
        /// da_layout_type.
        pub layout_type: LayoutType,
        /// da_addr_body.
        pub addr_body: Vec<u8> => opaque(NFS4_MAX_DEVICE_ADDR_BYTES),
    }
}

xdr_struct! {
    /// layoutupdate4: the body stays opaque here.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutUpdate {
        /// lou_type.
        pub lou_type: LayoutType,
        /// lou_body.
        pub lou_body: Vec<u8> => opaque(NFS4_MAX_LAYOUT_BODY_BYTES),
    }
}

xdr_struct! {
    /// LAYOUTGET4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct LayoutgetArgs {
        /// loga_signal_layout_avail.
        pub signal_layout_avail: bool,
        /// loga_layout_type.
        pub layout_type: LayoutType,
        /// loga_iomode.
        pub iomode: LayoutIoMode,
        /// loga_offset.
        pub offset: u64,
        /// loga_length.
        pub length: u64,
        /// loga_minlength.
        pub minlength: u64,
        /// loga_stateid.
        pub stateid: Stateid,
        /// loga_maxcount.
        pub maxcount: u32,
    }
}

xdr_struct! {
    /// LAYOUTGET4resok.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutgetResOk {
        /// logr_return_on_close.
        pub return_on_close: bool,
        /// logr_stateid.
        pub stateid: Stateid,
        /// logr_layout.
        pub layouts: Vec<Layout> => array(NFS4_MAX_LAYOUT_SEGMENTS),
    }
}

xdr_status_union! {
    /// LAYOUTGET4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LayoutgetRes {
        /// NFS4_OK.
        Ok(LayoutgetResOk),
        /// NFS4ERR_LAYOUTTRYLATER with logr_will_signal_layout_avail.
        TryLater {
            /// The server will send CB_RECALLABLE_OBJ_AVAIL.
            will_signal_layout_avail: bool,
        } = LAYOUTTRYLATER,
        /// Any other error.
        Error(NfsStat),
    }
}

/// newoffset4 / newsize4: an optional u64 after a bool.
pub type NewOffset = Option<u64>;
/// newtime4: an optional time after a bool.
pub type NewTime = Option<NfsTime>;

xdr_struct! {
    /// LAYOUTCOMMIT4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutcommitArgs {
        /// loca_offset.
        pub offset: u64,
        /// loca_length.
        pub length: u64,
        /// loca_reclaim.
        pub reclaim: bool,
        /// loca_stateid.
        pub stateid: Stateid,
        /// loca_last_write_offset (newoffset4).
        pub last_write_offset: NewOffset => option,
        /// loca_time_modify (newtime4).
        pub time_modify: NewTime => option,
        /// loca_layoutupdate.
        pub layoutupdate: LayoutUpdate,
    }
}

xdr_struct! {
    /// LAYOUTCOMMIT4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct LayoutcommitResOk {
        /// locr_newsize (newsize4): the new file size if it changed.
        pub newsize: Option<u64> => option,
    }
}

xdr_struct! {
    /// layoutreturn_file4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LayoutreturnFile {
        /// lrf_offset.
        pub offset: u64,
        /// lrf_length.
        pub length: u64,
        /// lrf_stateid.
        pub stateid: Stateid,
        /// lrf_body (layout-type specific).
        pub body: Vec<u8> => opaque(NFS4_MAX_LAYOUT_BODY_BYTES),
    }
}

xdr_union! {
    /// layoutreturn4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Layoutreturn: "layoutreturn_type4" {
        /// LAYOUTRETURN4_FILE.
        File(LayoutreturnFile) = 1,
        /// LAYOUTRETURN4_FSID.
        Fsid = 2,
        /// LAYOUTRETURN4_ALL.
        All = 3,
    }
}

xdr_struct! {
    /// LAYOUTRETURN4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutreturnArgs {
        /// lora_reclaim.
        pub reclaim: bool,
        /// lora_layout_type.
        pub layout_type: LayoutType,
        /// lora_iomode.
        pub iomode: LayoutIoMode,
        /// lora_layoutreturn.
        pub layoutreturn: Layoutreturn,
    }
}

xdr_struct! {
    /// LAYOUTRETURN4res on NFS4_OK: layoutreturn_stateid.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct LayoutreturnResOk {
        /// lrs_stateid when lrs_present (some layout state remains).
        pub stateid: Option<Stateid> => option,
    }
}

xdr_struct! {
    /// GETDEVICEINFO4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GetdeviceinfoArgs {
        /// gdia_device_id.
        pub device_id: DeviceId,
        /// gdia_layout_type.
        pub layout_type: LayoutType,
        /// gdia_maxcount.
        pub maxcount: u32,
        /// gdia_notify_types (bits NOTIFY_DEVICEID4_*).
        pub notify_types: Bitmap4,
    }
}

xdr_struct! {
    /// GETDEVICEINFO4resok.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GetdeviceinfoResOk {
        /// gdir_device_addr.
        pub device_addr: DeviceAddr,
        /// gdir_notification.
        pub notification: Bitmap4,
    }
}

xdr_status_union! {
    /// GETDEVICEINFO4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum GetdeviceinfoRes {
        /// NFS4_OK.
        Ok(GetdeviceinfoResOk),
        /// NFS4ERR_TOOSMALL with gdir_mincount.
        TooSmall {
            /// The maxcount that would have been enough.
            mincount: u32,
        } = TOOSMALL,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_struct! {
    /// GETDEVICELIST4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct GetdevicelistArgs {
        /// gdla_layout_type.
        pub layout_type: LayoutType,
        /// gdla_maxdevices.
        pub maxdevices: u32,
        /// gdla_cookie.
        pub cookie: u64,
        /// gdla_cookieverf.
        pub cookieverf: Verifier,
    }
}

xdr_struct! {
    /// GETDEVICELIST4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct GetdevicelistResOk {
        /// gdlr_cookie.
        pub cookie: u64,
        /// gdlr_cookieverf.
        pub cookieverf: Verifier,
        /// gdlr_deviceid_list.
        pub deviceid_list: Vec<DeviceId> => array(NFS4_MAX_DEVICE_IDS),
        /// gdlr_eof.
        pub eof: bool,
    }
}

// ---------------------------------------------------------------------------------------------
// Namespace operations
// ---------------------------------------------------------------------------------------------

/// createtype4: the kind of object CREATE makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateType {
    /// NF4LNK with the link text.
    Link(String),
    /// NF4BLK with device numbers.
    Block(SpecData),
    /// NF4CHR with device numbers.
    Char(SpecData),
    /// NF4SOCK.
    Socket,
    /// NF4FIFO.
    Fifo,
    /// NF4DIR.
    Dir,
    /// Any other type (the server answers NFS4ERR_BADTYPE).
    Other(u32),
}

impl XdrEncode for CreateType {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Link(text) => {
                enc.put_u32(NF4LNK);
                enc.put_str(text);
            }
            Self::Block(d) => {
                enc.put_u32(NF4BLK);
                d.encode(enc);
            }
            Self::Char(d) => {
                enc.put_u32(NF4CHR);
                d.encode(enc);
            }
            Self::Socket => enc.put_u32(NF4SOCK),
            Self::Fifo => enc.put_u32(NF4FIFO),
            Self::Dir => enc.put_u32(NF4DIR),
            Self::Other(t) => enc.put_u32(*t),
        }
    }
}

impl XdrDecode for CreateType {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            NF4LNK => Self::Link(dec.string("createtype4.linkdata", NFS4_MAX_LINKTEXT_BYTES)?),
            NF4BLK => Self::Block(dec.get()?),
            NF4CHR => Self::Char(dec.get()?),
            NF4SOCK => Self::Socket,
            NF4FIFO => Self::Fifo,
            NF4DIR => Self::Dir,
            t => Self::Other(t),
        })
    }
}

xdr_struct! {
    /// CREATE4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CreateArgs {
        /// objtype.
        pub objtype: CreateType,
        /// objname.
        pub objname: Component => string(NFS4_MAX_COMPONENT_BYTES),
        /// createattrs.
        pub createattrs: Fattr4,
    }
}

xdr_struct! {
    /// CREATE4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CreateResOk {
        /// cinfo.
        pub cinfo: ChangeInfo,
        /// attrset.
        pub attrset: Bitmap4,
    }
}

xdr_struct! {
    /// REMOVE4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RemoveArgs {
        /// target.
        pub target: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

xdr_struct! {
    /// REMOVE4resok and LINK4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CinfoResOk {
        /// cinfo.
        pub cinfo: ChangeInfo,
    }
}

xdr_struct! {
    /// RENAME4args (saved fh: source dir, current fh: target dir).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RenameArgs {
        /// oldname.
        pub oldname: Component => string(NFS4_MAX_COMPONENT_BYTES),
        /// newname.
        pub newname: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

xdr_struct! {
    /// RENAME4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct RenameResOk {
        /// source_cinfo.
        pub source_cinfo: ChangeInfo,
        /// target_cinfo.
        pub target_cinfo: ChangeInfo,
    }
}

xdr_struct! {
    /// LINK4args (saved fh: source object, current fh: target dir).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LinkArgs {
        /// newname.
        pub newname: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

xdr_struct! {
    /// READLINK4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReadlinkResOk {
        /// link.
        pub link: String => string(NFS4_MAX_LINKTEXT_BYTES),
    }
}

xdr_struct! {
    /// READDIR4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReaddirArgs {
        /// cookie (0 = start).
        pub cookie: u64,
        /// cookieverf.
        pub cookieverf: Verifier,
        /// dircount.
        pub dircount: u32,
        /// maxcount.
        pub maxcount: u32,
        /// attr_request.
        pub attr_request: Bitmap4,
    }
}

xdr_struct! {
    /// entry4 without its link (the list is a `Vec` in [`DirList`]).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct DirEntry {
        /// cookie.
        pub cookie: u64,
        /// name.
        pub name: Component => string(NFS4_MAX_COMPONENT_BYTES),
        /// attrs.
        pub attrs: Fattr4,
    }
}

/// dirlist4: the entry4 linked list as a vector, decoded iteratively with
/// [`NFS4_MAX_READDIR_ENTRIES`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirList {
    /// entries, in order.
    pub entries: Vec<DirEntry>,
    /// eof.
    pub eof: bool,
}

impl XdrEncode for DirList {
    fn encode(&self, enc: &mut Encoder) {
        for e in &self.entries {
            enc.put_bool(true);
            e.encode(enc);
        }
        enc.put_bool(false);
        enc.put_bool(self.eof);
    }
}

impl XdrDecode for DirList {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let mut entries = Vec::new();
        while dec.bool()? {
            if entries.len() >= NFS4_MAX_READDIR_ENTRIES {
                return Err(XdrError::TooLong {
                    what: "dirlist4.entries",
                    len: entries.len() as u64 + 1,
                    limit: NFS4_MAX_READDIR_ENTRIES as u64,
                });
            }
            entries.push(dec.get()?);
        }
        Ok(Self {
            entries,
            eof: dec.bool()?,
        })
    }
}

xdr_struct! {
    /// READDIR4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReaddirResOk {
        /// cookieverf.
        pub cookieverf: Verifier,
        /// reply.
        pub reply: DirList,
    }
}

// ---------------------------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// open_to_lock_owner4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct OpenToLockOwner {
        /// open_seqid.
        pub open_seqid: u32,
        /// open_stateid.
        pub open_stateid: Stateid,
        /// lock_seqid.
        pub lock_seqid: u32,
        /// lock_owner.
        pub lock_owner: StateOwner,
    }
}

xdr_struct! {
    /// exist_lock_owner4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ExistLockOwner {
        /// lock_stateid.
        pub lock_stateid: Stateid,
        /// lock_seqid.
        pub lock_seqid: u32,
    }
}

xdr_union! {
    /// locker4 (switch on new_lock_owner).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Locker: "locker4" {
        /// FALSE: an existing lock owner.
        Exist(ExistLockOwner) = 0,
        /// TRUE: a new lock owner derived from an open.
        New(OpenToLockOwner) = 1,
    }
}

xdr_struct! {
    /// LOCK4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LockArgs {
        /// locktype.
        pub locktype: LockType,
        /// reclaim.
        pub reclaim: bool,
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
        /// locker.
        pub locker: Locker,
    }
}

xdr_struct! {
    /// LOCK4denied.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LockDenied {
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
        /// locktype.
        pub locktype: LockType,
        /// owner.
        pub owner: StateOwner,
    }
}

xdr_status_union! {
    /// LOCK4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LockRes {
        /// NFS4_OK with lock_stateid.
        Ok(Stateid),
        /// NFS4ERR_DENIED with the conflicting lock.
        Denied(LockDenied) = DENIED,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_status_union! {
    /// LOCKT4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LocktRes {
        /// NFS4_OK: no conflict.
        Ok,
        /// NFS4ERR_DENIED with the conflicting lock.
        Denied(LockDenied) = DENIED,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_struct! {
    /// LOCKT4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LocktArgs {
        /// locktype.
        pub locktype: LockType,
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
        /// owner.
        pub owner: StateOwner,
    }
}

xdr_struct! {
    /// LOCKU4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct LockuArgs {
        /// locktype.
        pub locktype: LockType,
        /// seqid.
        pub seqid: u32,
        /// lock_stateid.
        pub lock_stateid: Stateid,
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
    }
}

// ---------------------------------------------------------------------------------------------
// NFSv4.0-only operations (decoded so a 4.1 server can answer NFS4ERR_NOTSUPP)
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// OPEN_CONFIRM4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct OpenConfirmArgs {
        /// open_stateid.
        pub open_stateid: Stateid,
        /// seqid.
        pub seqid: u32,
    }
}

xdr_struct! {
    /// cb_client4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CbClient {
        /// cb_program.
        pub cb_program: u32,
        /// cb_location.
        pub cb_location: NetAddr,
    }
}

xdr_struct! {
    /// SETCLIENTID4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SetclientidArgs {
        /// client (nfs_client_id4, same layout as client_owner4).
        pub client: ClientOwner,
        /// callback.
        pub callback: CbClient,
        /// callback_ident.
        pub callback_ident: u32,
    }
}

xdr_struct! {
    /// SETCLIENTID4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SetclientidResOk {
        /// clientid.
        pub clientid: ClientId,
        /// setclientid_confirm.
        pub setclientid_confirm: Verifier,
    }
}

xdr_status_union! {
    /// SETCLIENTID4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum SetclientidRes {
        /// NFS4_OK.
        Ok(SetclientidResOk),
        /// NFS4ERR_CLID_INUSE with the address in use.
        ClidInUse(NetAddr) = CLID_INUSE,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_struct! {
    /// SETCLIENTID_CONFIRM4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SetclientidConfirmArgs {
        /// clientid.
        pub clientid: ClientId,
        /// setclientid_confirm.
        pub setclientid_confirm: Verifier,
    }
}

// ---------------------------------------------------------------------------------------------
// NFSv4.2 operations (RFC 7862)
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// ALLOCATE4args and DEALLOCATE4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct AllocateArgs {
        /// stateid.
        pub stateid: Stateid,
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
    }
}

/// netloc4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetLoc {
    /// NL4_NAME.
    Name(String),
    /// NL4_URL.
    Url(String),
    /// NL4_NETADDR.
    NetAddr(NetAddr),
}

impl XdrEncode for NetLoc {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Name(n) => {
                enc.put_u32(1);
                enc.put_str(n);
            }
            Self::Url(u) => {
                enc.put_u32(2);
                enc.put_str(u);
            }
            Self::NetAddr(a) => {
                enc.put_u32(3);
                a.encode(enc);
            }
        }
    }
}

impl XdrDecode for NetLoc {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            1 => Self::Name(dec.string("netloc4.nl_name", NFS4_OPAQUE_LIMIT_BYTES)?),
            2 => Self::Url(dec.string("netloc4.nl_url", NFS4_OPAQUE_LIMIT_BYTES)?),
            3 => Self::NetAddr(dec.get()?),
            value => {
                return Err(XdrError::BadEnum {
                    what: "netloc_type4",
                    value,
                })
            }
        })
    }
}

xdr_struct! {
    /// COPY4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CopyArgs {
        /// ca_src_stateid.
        pub src_stateid: Stateid,
        /// ca_dst_stateid.
        pub dst_stateid: Stateid,
        /// ca_src_offset.
        pub src_offset: u64,
        /// ca_dst_offset.
        pub dst_offset: u64,
        /// ca_count (0 = to the end of the source).
        pub count: u64,
        /// ca_consecutive.
        pub consecutive: bool,
        /// ca_synchronous.
        pub synchronous: bool,
        /// ca_source_server (empty for intra-server copy).
        pub source_server: Vec<NetLoc> => array(NFS4_MAX_NETLOCS),
    }
}

xdr_struct! {
    /// write_response4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct WriteResponse {
        /// wr_callback_id<1> (asynchronous copies only).
        pub callback_id: Option<Stateid> => option,
        /// wr_count.
        pub count: u64,
        /// wr_committed.
        pub committed: StableHow,
        /// wr_writeverf.
        pub writeverf: Verifier,
    }
}

xdr_struct! {
    /// copy_requirements4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CopyRequirements {
        /// cr_consecutive.
        pub consecutive: bool,
        /// cr_synchronous.
        pub synchronous: bool,
    }
}

xdr_struct! {
    /// COPY4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CopyResOk {
        /// cr_response.
        pub response: WriteResponse,
        /// cr_requirements.
        pub requirements: CopyRequirements,
    }
}

xdr_status_union! {
    /// COPY4res.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CopyRes {
        /// NFS4_OK.
        Ok(CopyResOk),
        /// NFS4ERR_OFFLOAD_NO_REQS with the requirements the server can meet.
        OffloadNoReqs(CopyRequirements) = OFFLOAD_NO_REQS,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_struct! {
    /// COPY_NOTIFY4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CopyNotifyArgs {
        /// cna_src_stateid.
        pub src_stateid: Stateid,
        /// cna_destination_server.
        pub destination_server: NetLoc,
    }
}

xdr_struct! {
    /// COPY_NOTIFY4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CopyNotifyResOk {
        /// cnr_lease_time.
        pub lease_time: NfsTime,
        /// cnr_stateid.
        pub stateid: Stateid,
        /// cnr_source_server.
        pub source_server: Vec<NetLoc> => array(NFS4_MAX_NETLOCS),
    }
}

xdr_struct! {
    /// OFFLOAD_STATUS4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct OffloadStatusResOk {
        /// osr_count.
        pub count: u64,
        /// osr_complete<1>.
        pub complete: Option<NfsStat> => option,
    }
}

xdr_struct! {
    /// IO_ADVISE4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct IoAdviseArgs {
        /// iaa_stateid.
        pub stateid: Stateid,
        /// iaa_offset.
        pub offset: u64,
        /// iaa_count.
        pub count: u64,
        /// iaa_hints (IO_ADVISE4_* bit numbers).
        pub hints: Bitmap4,
    }
}

xdr_struct! {
    /// IO_ADVISE4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct IoAdviseResOk {
        /// ior_hints.
        pub hints: Bitmap4,
    }
}

xdr_struct! {
    /// device_error4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct DeviceError {
        /// de_deviceid.
        pub deviceid: DeviceId,
        /// de_status.
        pub status: NfsStat,
        /// de_opnum.
        pub opnum: u32,
    }
}

xdr_struct! {
    /// LAYOUTERROR4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LayouterrorArgs {
        /// lea_offset.
        pub offset: u64,
        /// lea_length.
        pub length: u64,
        /// lea_stateid.
        pub stateid: Stateid,
        /// lea_errors.
        pub errors: Vec<DeviceError> => array(NFS4_MAX_LAYOUT_ERRORS),
    }
}

xdr_struct! {
    /// io_info4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct IoInfo {
        /// ii_count.
        pub count: u64,
        /// ii_bytes.
        pub bytes: u64,
    }
}

xdr_struct! {
    /// LAYOUTSTATS4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutstatsArgs {
        /// lsa_offset.
        pub offset: u64,
        /// lsa_length.
        pub length: u64,
        /// lsa_stateid.
        pub stateid: Stateid,
        /// lsa_read.
        pub read: IoInfo,
        /// lsa_write.
        pub write: IoInfo,
        /// lsa_deviceid.
        pub deviceid: DeviceId,
        /// lsa_layoutupdate.
        pub layoutupdate: LayoutUpdate,
    }
}

xdr_struct! {
    /// READ_PLUS4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ReadPlusArgs {
        /// rpa_stateid.
        pub stateid: Stateid,
        /// rpa_offset.
        pub offset: u64,
        /// rpa_count.
        pub count: u32,
    }
}

xdr_struct! {
    /// data4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Data4 {
        /// d_offset.
        pub offset: u64,
        /// d_data.
        pub data: Vec<u8> => opaque(NFS4_MAX_IO_BYTES),
    }
}

xdr_struct! {
    /// data_info4 (a hole).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct DataInfo {
        /// di_offset.
        pub offset: u64,
        /// di_length.
        pub length: u64,
    }
}

/// read_plus_content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlusContent {
    /// NFS4_CONTENT_DATA.
    Data(Data4),
    /// NFS4_CONTENT_HOLE.
    Hole(DataInfo),
    /// Any other content type (no body).
    Other(u32),
}

impl XdrEncode for ReadPlusContent {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Data(d) => {
                enc.put_u32(0);
                d.encode(enc);
            }
            Self::Hole(h) => {
                enc.put_u32(1);
                h.encode(enc);
            }
            Self::Other(t) => enc.put_u32(*t),
        }
    }
}

impl XdrDecode for ReadPlusContent {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            0 => Self::Data(dec.get()?),
            1 => Self::Hole(dec.get()?),
            t => Self::Other(t),
        })
    }
}

xdr_struct! {
    /// read_plus_res4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReadPlusResOk {
        /// rpr_eof.
        pub eof: bool,
        /// rpr_contents.
        pub contents: Vec<ReadPlusContent> => array(NFS4_MAX_READ_PLUS_SEGMENTS),
    }
}

xdr_union! {
    /// data_content4 (SEEK's sa_what).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum DataContent: "data_content4" {
        /// NFS4_CONTENT_DATA.
        #[default]
        Data = 0,
        /// NFS4_CONTENT_HOLE.
        Hole = 1,
    }
}

xdr_struct! {
    /// SEEK4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SeekArgs {
        /// sa_stateid.
        pub stateid: Stateid,
        /// sa_offset.
        pub offset: u64,
        /// sa_what.
        pub what: DataContent,
    }
}

xdr_struct! {
    /// seek_res4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct SeekResOk {
        /// sr_eof.
        pub eof: bool,
        /// sr_offset.
        pub offset: u64,
    }
}

xdr_struct! {
    /// app_data_block4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct AppDataBlock {
        /// adb_offset.
        pub offset: u64,
        /// adb_block_size.
        pub block_size: u64,
        /// adb_block_count.
        pub block_count: u64,
        /// adb_reloff_blocknum.
        pub reloff_blocknum: u64,
        /// adb_block_num.
        pub block_num: u32,
        /// adb_reloff_pattern.
        pub reloff_pattern: u64,
        /// adb_pattern.
        pub pattern: Vec<u8> => opaque(NFS4_MAX_IO_BYTES),
    }
}

xdr_struct! {
    /// WRITE_SAME4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct WriteSameArgs {
        /// wsa_stateid.
        pub stateid: Stateid,
        /// wsa_stable.
        pub stable: StableHow,
        /// wsa_adb.
        pub adb: AppDataBlock,
    }
}

xdr_struct! {
    /// CLONE4args (saved fh: source, current fh: destination).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CloneArgs {
        /// cl_src_stateid.
        pub src_stateid: Stateid,
        /// cl_dst_stateid.
        pub dst_stateid: Stateid,
        /// cl_src_offset.
        pub src_offset: u64,
        /// cl_dst_offset.
        pub dst_offset: u64,
        /// cl_count (0 = to the end of the source).
        pub count: u64,
    }
}

// ---------------------------------------------------------------------------------------------
// nfs_argop4 / nfs_resop4
// ---------------------------------------------------------------------------------------------

op_table! {
    args:
        /// nfs_argop4: one operation of a COMPOUND request.
        NfsArgOp,
    results:
        /// nfs_resop4: the result of one operation.
        NfsResOp,
    illegal: OP_ILLEGAL,
    result_what: "nfs_resop4",
    ops: {
    /// ACCESS.
    Access = OP_ACCESS (AccessArgs) -> NfsRes<AccessResOk>;
    /// CLOSE (result: the closed open stateid).
    Close = OP_CLOSE (CloseArgs) -> NfsRes<Stateid>;
    /// COMMIT.
    Commit = OP_COMMIT (CommitArgs) -> NfsRes<CommitResOk>;
    /// CREATE.
    Create = OP_CREATE (CreateArgs) -> NfsRes<CreateResOk>;
    /// DELEGPURGE (argument: clientid).
    Delegpurge = OP_DELEGPURGE (ClientId) -> NfsStat;
    /// DELEGRETURN (argument: the delegation stateid).
    Delegreturn = OP_DELEGRETURN (Stateid) -> NfsStat;
    /// GETATTR.
    Getattr = OP_GETATTR (GetattrArgs) -> NfsRes<GetattrResOk>;
    /// GETFH.
    Getfh = OP_GETFH () -> NfsRes<GetfhResOk>;
    /// LINK.
    Link = OP_LINK (LinkArgs) -> NfsRes<CinfoResOk>;
    /// LOCK.
    Lock = OP_LOCK (LockArgs) -> LockRes;
    /// LOCKT.
    Lockt = OP_LOCKT (LocktArgs) -> LocktRes;
    /// LOCKU (result: the lock stateid).
    Locku = OP_LOCKU (LockuArgs) -> NfsRes<Stateid>;
    /// LOOKUP.
    Lookup = OP_LOOKUP (LookupArgs) -> NfsStat;
    /// LOOKUPP.
    Lookupp = OP_LOOKUPP () -> NfsStat;
    /// NVERIFY.
    Nverify = OP_NVERIFY (VerifyArgs) -> NfsStat;
    /// OPEN.
    Open = OP_OPEN (OpenArgs) -> NfsRes<OpenResOk>;
    /// OPENATTR.
    Openattr = OP_OPENATTR (OpenattrArgs) -> NfsStat;
    /// OPEN_CONFIRM (NFSv4.0 only; result: the open stateid).
    OpenConfirm = OP_OPEN_CONFIRM (OpenConfirmArgs) -> NfsRes<Stateid>;
    /// OPEN_DOWNGRADE (result: the open stateid).
    OpenDowngrade = OP_OPEN_DOWNGRADE (OpenDowngradeArgs) -> NfsRes<Stateid>;
    /// PUTFH.
    Putfh = OP_PUTFH (FileHandle) -> NfsStat;
    /// PUTPUBFH.
    Putpubfh = OP_PUTPUBFH () -> NfsStat;
    /// PUTROOTFH.
    Putrootfh = OP_PUTROOTFH () -> NfsStat;
    /// READ.
    Read = OP_READ (ReadArgs) -> NfsRes<ReadResOk>;
    /// READDIR.
    Readdir = OP_READDIR (ReaddirArgs) -> NfsRes<ReaddirResOk>;
    /// READLINK.
    Readlink = OP_READLINK () -> NfsRes<ReadlinkResOk>;
    /// REMOVE.
    Remove = OP_REMOVE (RemoveArgs) -> NfsRes<CinfoResOk>;
    /// RENAME.
    Rename = OP_RENAME (RenameArgs) -> NfsRes<RenameResOk>;
    /// RENEW (NFSv4.0 only; argument: clientid).
    Renew = OP_RENEW (ClientId) -> NfsStat;
    /// RESTOREFH.
    Restorefh = OP_RESTOREFH () -> NfsStat;
    /// SAVEFH.
    Savefh = OP_SAVEFH () -> NfsStat;
    /// SECINFO.
    Secinfo = OP_SECINFO (SecinfoArgs) -> NfsRes<SecinfoResOk>;
    /// SETATTR.
    Setattr = OP_SETATTR (SetattrArgs) -> SetattrRes;
    /// SETCLIENTID (NFSv4.0 only).
    Setclientid = OP_SETCLIENTID (SetclientidArgs) -> SetclientidRes;
    /// SETCLIENTID_CONFIRM (NFSv4.0 only).
    SetclientidConfirm = OP_SETCLIENTID_CONFIRM (SetclientidConfirmArgs) -> NfsStat;
    /// VERIFY.
    Verify = OP_VERIFY (VerifyArgs) -> NfsStat;
    /// WRITE.
    Write = OP_WRITE (WriteArgs) -> NfsRes<WriteResOk>;
    /// RELEASE_LOCKOWNER (NFSv4.0 only; argument: the lock owner).
    ReleaseLockowner = OP_RELEASE_LOCKOWNER (StateOwner) -> NfsStat;
    /// BACKCHANNEL_CTL.
    BackchannelCtl = OP_BACKCHANNEL_CTL (BackchannelCtlArgs) -> NfsStat;
    /// BIND_CONN_TO_SESSION.
    BindConnToSession = OP_BIND_CONN_TO_SESSION (BindConnToSessionArgs) -> NfsRes<BindConnToSessionResOk>;
    /// EXCHANGE_ID.
    ExchangeId = OP_EXCHANGE_ID (ExchangeIdArgs) -> NfsRes<ExchangeIdResOk>;
    /// CREATE_SESSION.
    CreateSession = OP_CREATE_SESSION (CreateSessionArgs) -> NfsRes<CreateSessionResOk>;
    /// DESTROY_SESSION (argument: the session id).
    DestroySession = OP_DESTROY_SESSION (SessionId) -> NfsStat;
    /// FREE_STATEID (argument: the stateid).
    FreeStateid = OP_FREE_STATEID (Stateid) -> NfsStat;
    /// GET_DIR_DELEGATION.
    GetDirDelegation = OP_GET_DIR_DELEGATION (GetDirDelegationArgs) -> NfsRes<GetDirDelegationNonFatal>;
    /// GETDEVICEINFO.
    Getdeviceinfo = OP_GETDEVICEINFO (GetdeviceinfoArgs) -> GetdeviceinfoRes;
    /// GETDEVICELIST.
    Getdevicelist = OP_GETDEVICELIST (GetdevicelistArgs) -> NfsRes<GetdevicelistResOk>;
    /// LAYOUTCOMMIT.
    Layoutcommit = OP_LAYOUTCOMMIT (LayoutcommitArgs) -> NfsRes<LayoutcommitResOk>;
    /// LAYOUTGET.
    Layoutget = OP_LAYOUTGET (LayoutgetArgs) -> LayoutgetRes;
    /// LAYOUTRETURN.
    Layoutreturn = OP_LAYOUTRETURN (LayoutreturnArgs) -> NfsRes<LayoutreturnResOk>;
    /// SECINFO_NO_NAME.
    SecinfoNoName = OP_SECINFO_NO_NAME (SecinfoStyle) -> NfsRes<SecinfoResOk>;
    /// SEQUENCE.
    Sequence = OP_SEQUENCE (SequenceArgs) -> NfsRes<SequenceResOk>;
    /// SET_SSV.
    SetSsv = OP_SET_SSV (SetSsvArgs) -> NfsRes<SetSsvResOk>;
    /// TEST_STATEID.
    TestStateid = OP_TEST_STATEID (TestStateidArgs) -> NfsRes<TestStateidResOk>;
    /// WANT_DELEGATION.
    WantDelegation = OP_WANT_DELEGATION (WantDelegationArgs) -> NfsRes<OpenDelegation>;
    /// DESTROY_CLIENTID (argument: clientid).
    DestroyClientid = OP_DESTROY_CLIENTID (ClientId) -> NfsStat;
    /// RECLAIM_COMPLETE (argument: rca_one_fs).
    ReclaimComplete = OP_RECLAIM_COMPLETE (bool) -> NfsStat;
    /// ALLOCATE (4.2).
    Allocate = OP_ALLOCATE (AllocateArgs) -> NfsStat;
    /// COPY (4.2).
    Copy = OP_COPY (CopyArgs) -> CopyRes;
    /// COPY_NOTIFY (4.2).
    CopyNotify = OP_COPY_NOTIFY (CopyNotifyArgs) -> NfsRes<CopyNotifyResOk>;
    /// DEALLOCATE (4.2).
    Deallocate = OP_DEALLOCATE (AllocateArgs) -> NfsStat;
    /// IO_ADVISE (4.2).
    IoAdvise = OP_IO_ADVISE (IoAdviseArgs) -> NfsRes<IoAdviseResOk>;
    /// LAYOUTERROR (4.2).
    Layouterror = OP_LAYOUTERROR (LayouterrorArgs) -> NfsStat;
    /// LAYOUTSTATS (4.2).
    Layoutstats = OP_LAYOUTSTATS (LayoutstatsArgs) -> NfsStat;
    /// OFFLOAD_CANCEL (4.2; argument: the copy stateid).
    OffloadCancel = OP_OFFLOAD_CANCEL (Stateid) -> NfsStat;
    /// OFFLOAD_STATUS (4.2; argument: the copy stateid).
    OffloadStatus = OP_OFFLOAD_STATUS (Stateid) -> NfsRes<OffloadStatusResOk>;
    /// READ_PLUS (4.2).
    ReadPlus = OP_READ_PLUS (ReadPlusArgs) -> NfsRes<ReadPlusResOk>;
    /// SEEK (4.2).
    Seek = OP_SEEK (SeekArgs) -> NfsRes<SeekResOk>;
    /// WRITE_SAME (4.2).
    WriteSame = OP_WRITE_SAME (WriteSameArgs) -> NfsRes<WriteResponse>;
    /// CLONE (4.2).
    Clone = OP_CLONE (CloneArgs) -> NfsStat;
    }
}

// ---------------------------------------------------------------------------------------------
// COMPOUND
// ---------------------------------------------------------------------------------------------

/// COMPOUND4args.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundArgs {
    /// tag (echoed in the reply).
    pub tag: String,
    /// minorversion.
    pub minorversion: u32,
    /// argarray; if the last op is [`NfsArgOp::Illegal`], decoding stopped there.
    pub argarray: Vec<NfsArgOp>,
}

impl CompoundArgs {
    /// A minor-version-1 compound.
    pub fn new(tag: impl Into<String>, ops: Vec<NfsArgOp>) -> Self {
        Self {
            tag: tag.into(),
            minorversion: 1,
            argarray: ops,
        }
    }

    /// Sets the minor version (e.g. 2 for NFSv4.2).
    pub fn with_minorversion(mut self, minorversion: u32) -> Self {
        self.minorversion = minorversion;
        self
    }
}

/// The fixed head of COMPOUND4args, readable even when the operations are not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundHeader {
    /// tag.
    pub tag: String,
    /// minorversion.
    pub minorversion: u32,
    /// Number of operations announced (not checked against [`NFS4_MAX_COMPOUND_OPS`]).
    pub op_count: u32,
}

impl CompoundArgs {
    /// Reads only the tag, minor version and operation count of an encoded COMPOUND4args.
    ///
    /// A server whose full decode failed uses it to answer with the right tag and
    /// NFS4ERR_TOO_MANY_OPS (count above the limit), NFS4ERR_MINOR_VERS_MISMATCH or
    /// NFS4ERR_BADXDR and an empty result array.
    pub fn decode_header(bytes: &[u8]) -> XdrResult<CompoundHeader> {
        let mut dec = Decoder::new(bytes);
        Ok(CompoundHeader {
            tag: dec.string("COMPOUND4args.tag", NFS4_MAX_TAG_BYTES)?,
            minorversion: dec.u32()?,
            op_count: dec.u32()?,
        })
    }
}

impl XdrEncode for CompoundArgs {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_str(&self.tag);
        enc.put_u32(self.minorversion);
        enc.put_array(&self.argarray);
    }
}

impl XdrDecode for CompoundArgs {
    /// Decodes up to and including the first unknown operation; the bytes after an unknown
    /// operation cannot be parsed and are consumed unread (whole XDR units only).
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let tag = dec.string("COMPOUND4args.tag", NFS4_MAX_TAG_BYTES)?;
        let minorversion = dec.u32()?;
        let argarray = decode_op_list(dec, "COMPOUND4args.argarray", NFS4_MAX_COMPOUND_OPS)?;
        Ok(Self {
            tag,
            minorversion,
            argarray,
        })
    }
}

/// COMPOUND4res.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundRes {
    /// status: that of the last result (NFS4_OK when all succeeded).
    pub status: NfsStat,
    /// tag, echoed from the request.
    pub tag: String,
    /// resarray: one result per operation executed.
    pub resarray: Vec<NfsResOp>,
}

impl CompoundRes {
    /// A reply whose status is that of the last result (NFS4_OK when empty).
    pub fn new(tag: impl Into<String>, resarray: Vec<NfsResOp>) -> Self {
        let status = resarray.last().map_or(NfsStat::OK, NfsResOp::status);
        Self {
            status,
            tag: tag.into(),
            resarray,
        }
    }
}

impl CompoundRes {
    /// The index and status of the first failed result, if any.
    pub fn first_error(&self) -> Option<(usize, NfsStat)> {
        self.resarray
            .iter()
            .enumerate()
            .find(|(_, r)| !r.status().is_ok())
            .map(|(i, r)| (i, r.status()))
    }
}

impl XdrEncode for CompoundRes {
    fn encode(&self, enc: &mut Encoder) {
        self.status.encode(enc);
        enc.put_str(&self.tag);
        enc.put_array(&self.resarray);
    }
}

impl XdrDecode for CompoundRes {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            status: dec.get()?,
            tag: dec.string("COMPOUND4res.tag", NFS4_MAX_TAG_BYTES)?,
            resarray: dec.array("COMPOUND4res.resarray", NFS4_MAX_COMPOUND_OPS)?,
        })
    }
}
