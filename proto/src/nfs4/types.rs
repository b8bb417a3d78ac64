//! Basic NFSv4.1 types shared by the fore channel, the callback program and the layouts.

use crate::nfs4::macros::xdr_struct;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

/// NFS4_FHSIZE: the largest file handle.
pub const NFS4_FHSIZE_BYTES: usize = 128;
/// NFS4_VERIFIER_SIZE.
pub const NFS4_VERIFIER_SIZE_BYTES: usize = 8;
/// NFS4_OTHER_SIZE: the `other` part of a stateid.
pub const NFS4_OTHER_SIZE_BYTES: usize = 12;
/// NFS4_SESSIONID_SIZE.
pub const NFS4_SESSIONID_SIZE_BYTES: usize = 16;
/// NFS4_DEVICEID4_SIZE.
pub const NFS4_DEVICEID4_SIZE_BYTES: usize = 16;
/// NFS4_OPAQUE_LIMIT: owner names, client ids and similar opaques.
pub const NFS4_OPAQUE_LIMIT_BYTES: usize = 1024;
/// Our limit on one path component (utf8str_cs / component4).
pub const NFS4_MAX_NAME_BYTES: usize = 255;

/// NFS4_UINT64_MAX: a layout length of "to the end of file".
pub const NFS4_LENGTH_TO_EOF: u64 = u64::MAX;

/// nfsstat4 as on the wire. Named constants live in [`NfsStat`]'s associated consts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NfsStat(pub u32);

impl NfsStat {
    /// NFS4_OK.
    pub const OK: Self = Self(0);
    /// NFS4ERR_PERM.
    pub const PERM: Self = Self(1);
    /// NFS4ERR_NOENT.
    pub const NOENT: Self = Self(2);
    /// NFS4ERR_IO.
    pub const IO: Self = Self(5);
    /// NFS4ERR_NXIO.
    pub const NXIO: Self = Self(6);
    /// NFS4ERR_ACCESS.
    pub const ACCESS: Self = Self(13);
    /// NFS4ERR_EXIST.
    pub const EXIST: Self = Self(17);
    /// NFS4ERR_XDEV.
    pub const XDEV: Self = Self(18);
    /// NFS4ERR_NOTDIR.
    pub const NOTDIR: Self = Self(20);
    /// NFS4ERR_ISDIR.
    pub const ISDIR: Self = Self(21);
    /// NFS4ERR_INVAL.
    pub const INVAL: Self = Self(22);
    /// NFS4ERR_FBIG.
    pub const FBIG: Self = Self(27);
    /// NFS4ERR_NOSPC.
    pub const NOSPC: Self = Self(28);
    /// NFS4ERR_ROFS.
    pub const ROFS: Self = Self(30);
    /// NFS4ERR_MLINK.
    pub const MLINK: Self = Self(31);
    /// NFS4ERR_NAMETOOLONG.
    pub const NAMETOOLONG: Self = Self(63);
    /// NFS4ERR_NOTEMPTY.
    pub const NOTEMPTY: Self = Self(66);
    /// NFS4ERR_DQUOT.
    pub const DQUOT: Self = Self(69);
    /// NFS4ERR_STALE.
    pub const STALE: Self = Self(70);
    /// NFS4ERR_BADHANDLE.
    pub const BADHANDLE: Self = Self(10001);
    /// NFS4ERR_BAD_COOKIE.
    pub const BAD_COOKIE: Self = Self(10003);
    /// NFS4ERR_NOTSUPP.
    pub const NOTSUPP: Self = Self(10004);
    /// NFS4ERR_TOOSMALL.
    pub const TOOSMALL: Self = Self(10005);
    /// NFS4ERR_SERVERFAULT.
    pub const SERVERFAULT: Self = Self(10006);
    /// NFS4ERR_BADTYPE.
    pub const BADTYPE: Self = Self(10007);
    /// NFS4ERR_DELAY.
    pub const DELAY: Self = Self(10008);
    /// NFS4ERR_SAME.
    pub const SAME: Self = Self(10009);
    /// NFS4ERR_DENIED.
    pub const DENIED: Self = Self(10010);
    /// NFS4ERR_EXPIRED.
    pub const EXPIRED: Self = Self(10011);
    /// NFS4ERR_LOCKED.
    pub const LOCKED: Self = Self(10012);
    /// NFS4ERR_GRACE.
    pub const GRACE: Self = Self(10013);
    /// NFS4ERR_FHEXPIRED.
    pub const FHEXPIRED: Self = Self(10014);
    /// NFS4ERR_SHARE_DENIED.
    pub const SHARE_DENIED: Self = Self(10015);
    /// NFS4ERR_WRONGSEC.
    pub const WRONGSEC: Self = Self(10016);
    /// NFS4ERR_CLID_INUSE.
    pub const CLID_INUSE: Self = Self(10017);
    /// NFS4ERR_RESOURCE (not used in 4.1).
    pub const RESOURCE: Self = Self(10018);
    /// NFS4ERR_MOVED.
    pub const MOVED: Self = Self(10019);
    /// NFS4ERR_NOFILEHANDLE.
    pub const NOFILEHANDLE: Self = Self(10020);
    /// NFS4ERR_MINOR_VERS_MISMATCH.
    pub const MINOR_VERS_MISMATCH: Self = Self(10021);
    /// NFS4ERR_STALE_CLIENTID.
    pub const STALE_CLIENTID: Self = Self(10022);
    /// NFS4ERR_STALE_STATEID.
    pub const STALE_STATEID: Self = Self(10023);
    /// NFS4ERR_OLD_STATEID.
    pub const OLD_STATEID: Self = Self(10024);
    /// NFS4ERR_BAD_STATEID.
    pub const BAD_STATEID: Self = Self(10025);
    /// NFS4ERR_BAD_SEQID.
    pub const BAD_SEQID: Self = Self(10026);
    /// NFS4ERR_NOT_SAME.
    pub const NOT_SAME: Self = Self(10027);
    /// NFS4ERR_LOCK_RANGE.
    pub const LOCK_RANGE: Self = Self(10028);
    /// NFS4ERR_SYMLINK.
    pub const SYMLINK: Self = Self(10029);
    /// NFS4ERR_RESTOREFH.
    pub const RESTOREFH: Self = Self(10030);
    /// NFS4ERR_LEASE_MOVED.
    pub const LEASE_MOVED: Self = Self(10031);
    /// NFS4ERR_ATTRNOTSUPP.
    pub const ATTRNOTSUPP: Self = Self(10032);
    /// NFS4ERR_NO_GRACE.
    pub const NO_GRACE: Self = Self(10033);
    /// NFS4ERR_RECLAIM_BAD.
    pub const RECLAIM_BAD: Self = Self(10034);
    /// NFS4ERR_RECLAIM_CONFLICT.
    pub const RECLAIM_CONFLICT: Self = Self(10035);
    /// NFS4ERR_BADXDR.
    pub const BADXDR: Self = Self(10036);
    /// NFS4ERR_LOCKS_HELD.
    pub const LOCKS_HELD: Self = Self(10037);
    /// NFS4ERR_OPENMODE.
    pub const OPENMODE: Self = Self(10038);
    /// NFS4ERR_BADOWNER.
    pub const BADOWNER: Self = Self(10039);
    /// NFS4ERR_BADCHAR.
    pub const BADCHAR: Self = Self(10040);
    /// NFS4ERR_BADNAME.
    pub const BADNAME: Self = Self(10041);
    /// NFS4ERR_BAD_RANGE.
    pub const BAD_RANGE: Self = Self(10042);
    /// NFS4ERR_LOCK_NOTSUPP.
    pub const LOCK_NOTSUPP: Self = Self(10043);
    /// NFS4ERR_OP_ILLEGAL.
    pub const OP_ILLEGAL: Self = Self(10044);
    /// NFS4ERR_DEADLOCK.
    pub const DEADLOCK: Self = Self(10045);
    /// NFS4ERR_FILE_OPEN.
    pub const FILE_OPEN: Self = Self(10046);
    /// NFS4ERR_ADMIN_REVOKED.
    pub const ADMIN_REVOKED: Self = Self(10047);
    /// NFS4ERR_CB_PATH_DOWN.
    pub const CB_PATH_DOWN: Self = Self(10048);
    /// NFS4ERR_BADIOMODE.
    pub const BADIOMODE: Self = Self(10049);
    /// NFS4ERR_BADLAYOUT.
    pub const BADLAYOUT: Self = Self(10050);
    /// NFS4ERR_BAD_SESSION_DIGEST.
    pub const BAD_SESSION_DIGEST: Self = Self(10051);
    /// NFS4ERR_BADSESSION.
    pub const BADSESSION: Self = Self(10052);
    /// NFS4ERR_BADSLOT.
    pub const BADSLOT: Self = Self(10053);
    /// NFS4ERR_COMPLETE_ALREADY.
    pub const COMPLETE_ALREADY: Self = Self(10054);
    /// NFS4ERR_CONN_NOT_BOUND_TO_SESSION.
    pub const CONN_NOT_BOUND_TO_SESSION: Self = Self(10055);
    /// NFS4ERR_DELEG_ALREADY_WANTED.
    pub const DELEG_ALREADY_WANTED: Self = Self(10056);
    /// NFS4ERR_BACK_CHAN_BUSY.
    pub const BACK_CHAN_BUSY: Self = Self(10057);
    /// NFS4ERR_LAYOUTTRYLATER.
    pub const LAYOUTTRYLATER: Self = Self(10058);
    /// NFS4ERR_LAYOUTUNAVAILABLE.
    pub const LAYOUTUNAVAILABLE: Self = Self(10059);
    /// NFS4ERR_NOMATCHING_LAYOUT.
    pub const NOMATCHING_LAYOUT: Self = Self(10060);
    /// NFS4ERR_RECALLCONFLICT.
    pub const RECALLCONFLICT: Self = Self(10061);
    /// NFS4ERR_UNKNOWN_LAYOUTTYPE.
    pub const UNKNOWN_LAYOUTTYPE: Self = Self(10062);
    /// NFS4ERR_SEQ_MISORDERED.
    pub const SEQ_MISORDERED: Self = Self(10063);
    /// NFS4ERR_SEQUENCE_POS.
    pub const SEQUENCE_POS: Self = Self(10064);
    /// NFS4ERR_REQ_TOO_BIG.
    pub const REQ_TOO_BIG: Self = Self(10065);
    /// NFS4ERR_REP_TOO_BIG.
    pub const REP_TOO_BIG: Self = Self(10066);
    /// NFS4ERR_REP_TOO_BIG_TO_CACHE.
    pub const REP_TOO_BIG_TO_CACHE: Self = Self(10067);
    /// NFS4ERR_RETRY_UNCACHED_REP.
    pub const RETRY_UNCACHED_REP: Self = Self(10068);
    /// NFS4ERR_UNSAFE_COMPOUND.
    pub const UNSAFE_COMPOUND: Self = Self(10069);
    /// NFS4ERR_TOO_MANY_OPS.
    pub const TOO_MANY_OPS: Self = Self(10070);
    /// NFS4ERR_OP_NOT_IN_SESSION.
    pub const OP_NOT_IN_SESSION: Self = Self(10071);
    /// NFS4ERR_HASH_ALG_UNSUPP.
    pub const HASH_ALG_UNSUPP: Self = Self(10072);
    /// NFS4ERR_CLIENTID_BUSY.
    pub const CLIENTID_BUSY: Self = Self(10074);
    /// NFS4ERR_PNFS_IO_HOLE.
    pub const PNFS_IO_HOLE: Self = Self(10075);
    /// NFS4ERR_SEQ_FALSE_RETRY.
    pub const SEQ_FALSE_RETRY: Self = Self(10076);
    /// NFS4ERR_BAD_HIGH_SLOT.
    pub const BAD_HIGH_SLOT: Self = Self(10077);
    /// NFS4ERR_DEADSESSION.
    pub const DEADSESSION: Self = Self(10078);
    /// NFS4ERR_ENCR_ALG_UNSUPP.
    pub const ENCR_ALG_UNSUPP: Self = Self(10079);
    /// NFS4ERR_PNFS_NO_LAYOUT.
    pub const PNFS_NO_LAYOUT: Self = Self(10080);
    /// NFS4ERR_NOT_ONLY_OP.
    pub const NOT_ONLY_OP: Self = Self(10081);
    /// NFS4ERR_WRONG_CRED.
    pub const WRONG_CRED: Self = Self(10082);
    /// NFS4ERR_WRONG_TYPE.
    pub const WRONG_TYPE: Self = Self(10083);
    /// NFS4ERR_DIRDELEG_UNAVAIL.
    pub const DIRDELEG_UNAVAIL: Self = Self(10084);
    /// NFS4ERR_REJECT_DELEG.
    pub const REJECT_DELEG: Self = Self(10085);
    /// NFS4ERR_RETURNCONFLICT.
    pub const RETURNCONFLICT: Self = Self(10086);
    /// NFS4ERR_DELEG_REVOKED.
    pub const DELEG_REVOKED: Self = Self(10087);
    /// NFS4ERR_PARTNER_NOTSUPP (4.2).
    pub const PARTNER_NOTSUPP: Self = Self(10088);
    /// NFS4ERR_PARTNER_NO_AUTH (4.2).
    pub const PARTNER_NO_AUTH: Self = Self(10089);
    /// NFS4ERR_UNION_NOTSUPP (4.2).
    pub const UNION_NOTSUPP: Self = Self(10090);
    /// NFS4ERR_OFFLOAD_DENIED (4.2).
    pub const OFFLOAD_DENIED: Self = Self(10091);
    /// NFS4ERR_WRONG_LFS (4.2).
    pub const WRONG_LFS: Self = Self(10092);
    /// NFS4ERR_BADLABEL (4.2).
    pub const BADLABEL: Self = Self(10093);
    /// NFS4ERR_OFFLOAD_NO_REQS (4.2).
    pub const OFFLOAD_NO_REQS: Self = Self(10094);

    /// True for NFS4_OK.
    pub fn is_ok(self) -> bool {
        self == Self::OK
    }

    /// The RFC name ("NFS4ERR_NOENT"), or `None` for a value this crate does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::OK => "NFS4_OK",
            Self::PERM => "NFS4ERR_PERM",
            Self::NOENT => "NFS4ERR_NOENT",
            Self::IO => "NFS4ERR_IO",
            Self::NXIO => "NFS4ERR_NXIO",
            Self::ACCESS => "NFS4ERR_ACCESS",
            Self::EXIST => "NFS4ERR_EXIST",
            Self::XDEV => "NFS4ERR_XDEV",
            Self::NOTDIR => "NFS4ERR_NOTDIR",
            Self::ISDIR => "NFS4ERR_ISDIR",
            Self::INVAL => "NFS4ERR_INVAL",
            Self::FBIG => "NFS4ERR_FBIG",
            Self::NOSPC => "NFS4ERR_NOSPC",
            Self::ROFS => "NFS4ERR_ROFS",
            Self::MLINK => "NFS4ERR_MLINK",
            Self::NAMETOOLONG => "NFS4ERR_NAMETOOLONG",
            Self::NOTEMPTY => "NFS4ERR_NOTEMPTY",
            Self::DQUOT => "NFS4ERR_DQUOT",
            Self::STALE => "NFS4ERR_STALE",
            Self::BADHANDLE => "NFS4ERR_BADHANDLE",
            Self::BAD_COOKIE => "NFS4ERR_BAD_COOKIE",
            Self::NOTSUPP => "NFS4ERR_NOTSUPP",
            Self::TOOSMALL => "NFS4ERR_TOOSMALL",
            Self::SERVERFAULT => "NFS4ERR_SERVERFAULT",
            Self::BADTYPE => "NFS4ERR_BADTYPE",
            Self::DELAY => "NFS4ERR_DELAY",
            Self::SAME => "NFS4ERR_SAME",
            Self::DENIED => "NFS4ERR_DENIED",
            Self::EXPIRED => "NFS4ERR_EXPIRED",
            Self::LOCKED => "NFS4ERR_LOCKED",
            Self::GRACE => "NFS4ERR_GRACE",
            Self::FHEXPIRED => "NFS4ERR_FHEXPIRED",
            Self::SHARE_DENIED => "NFS4ERR_SHARE_DENIED",
            Self::WRONGSEC => "NFS4ERR_WRONGSEC",
            Self::CLID_INUSE => "NFS4ERR_CLID_INUSE",
            Self::RESOURCE => "NFS4ERR_RESOURCE",
            Self::MOVED => "NFS4ERR_MOVED",
            Self::NOFILEHANDLE => "NFS4ERR_NOFILEHANDLE",
            Self::MINOR_VERS_MISMATCH => "NFS4ERR_MINOR_VERS_MISMATCH",
            Self::STALE_CLIENTID => "NFS4ERR_STALE_CLIENTID",
            Self::STALE_STATEID => "NFS4ERR_STALE_STATEID",
            Self::OLD_STATEID => "NFS4ERR_OLD_STATEID",
            Self::BAD_STATEID => "NFS4ERR_BAD_STATEID",
            Self::BAD_SEQID => "NFS4ERR_BAD_SEQID",
            Self::NOT_SAME => "NFS4ERR_NOT_SAME",
            Self::LOCK_RANGE => "NFS4ERR_LOCK_RANGE",
            Self::SYMLINK => "NFS4ERR_SYMLINK",
            Self::RESTOREFH => "NFS4ERR_RESTOREFH",
            Self::LEASE_MOVED => "NFS4ERR_LEASE_MOVED",
            Self::ATTRNOTSUPP => "NFS4ERR_ATTRNOTSUPP",
            Self::NO_GRACE => "NFS4ERR_NO_GRACE",
            Self::RECLAIM_BAD => "NFS4ERR_RECLAIM_BAD",
            Self::RECLAIM_CONFLICT => "NFS4ERR_RECLAIM_CONFLICT",
            Self::BADXDR => "NFS4ERR_BADXDR",
            Self::LOCKS_HELD => "NFS4ERR_LOCKS_HELD",
            Self::OPENMODE => "NFS4ERR_OPENMODE",
            Self::BADOWNER => "NFS4ERR_BADOWNER",
            Self::BADCHAR => "NFS4ERR_BADCHAR",
            Self::BADNAME => "NFS4ERR_BADNAME",
            Self::BAD_RANGE => "NFS4ERR_BAD_RANGE",
            Self::LOCK_NOTSUPP => "NFS4ERR_LOCK_NOTSUPP",
            Self::OP_ILLEGAL => "NFS4ERR_OP_ILLEGAL",
            Self::DEADLOCK => "NFS4ERR_DEADLOCK",
            Self::FILE_OPEN => "NFS4ERR_FILE_OPEN",
            Self::ADMIN_REVOKED => "NFS4ERR_ADMIN_REVOKED",
            Self::CB_PATH_DOWN => "NFS4ERR_CB_PATH_DOWN",
            Self::BADIOMODE => "NFS4ERR_BADIOMODE",
            Self::BADLAYOUT => "NFS4ERR_BADLAYOUT",
            Self::BAD_SESSION_DIGEST => "NFS4ERR_BAD_SESSION_DIGEST",
            Self::BADSESSION => "NFS4ERR_BADSESSION",
            Self::BADSLOT => "NFS4ERR_BADSLOT",
            Self::COMPLETE_ALREADY => "NFS4ERR_COMPLETE_ALREADY",
            Self::CONN_NOT_BOUND_TO_SESSION => "NFS4ERR_CONN_NOT_BOUND_TO_SESSION",
            Self::DELEG_ALREADY_WANTED => "NFS4ERR_DELEG_ALREADY_WANTED",
            Self::BACK_CHAN_BUSY => "NFS4ERR_BACK_CHAN_BUSY",
            Self::LAYOUTTRYLATER => "NFS4ERR_LAYOUTTRYLATER",
            Self::LAYOUTUNAVAILABLE => "NFS4ERR_LAYOUTUNAVAILABLE",
            Self::NOMATCHING_LAYOUT => "NFS4ERR_NOMATCHING_LAYOUT",
            Self::RECALLCONFLICT => "NFS4ERR_RECALLCONFLICT",
            Self::UNKNOWN_LAYOUTTYPE => "NFS4ERR_UNKNOWN_LAYOUTTYPE",
            Self::SEQ_MISORDERED => "NFS4ERR_SEQ_MISORDERED",
            Self::SEQUENCE_POS => "NFS4ERR_SEQUENCE_POS",
            Self::REQ_TOO_BIG => "NFS4ERR_REQ_TOO_BIG",
            Self::REP_TOO_BIG => "NFS4ERR_REP_TOO_BIG",
            Self::REP_TOO_BIG_TO_CACHE => "NFS4ERR_REP_TOO_BIG_TO_CACHE",
            Self::RETRY_UNCACHED_REP => "NFS4ERR_RETRY_UNCACHED_REP",
            Self::UNSAFE_COMPOUND => "NFS4ERR_UNSAFE_COMPOUND",
            Self::TOO_MANY_OPS => "NFS4ERR_TOO_MANY_OPS",
            Self::OP_NOT_IN_SESSION => "NFS4ERR_OP_NOT_IN_SESSION",
            Self::HASH_ALG_UNSUPP => "NFS4ERR_HASH_ALG_UNSUPP",
            Self::CLIENTID_BUSY => "NFS4ERR_CLIENTID_BUSY",
            Self::PNFS_IO_HOLE => "NFS4ERR_PNFS_IO_HOLE",
            Self::SEQ_FALSE_RETRY => "NFS4ERR_SEQ_FALSE_RETRY",
            Self::BAD_HIGH_SLOT => "NFS4ERR_BAD_HIGH_SLOT",
            Self::DEADSESSION => "NFS4ERR_DEADSESSION",
            Self::ENCR_ALG_UNSUPP => "NFS4ERR_ENCR_ALG_UNSUPP",
            Self::PNFS_NO_LAYOUT => "NFS4ERR_PNFS_NO_LAYOUT",
            Self::NOT_ONLY_OP => "NFS4ERR_NOT_ONLY_OP",
            Self::WRONG_CRED => "NFS4ERR_WRONG_CRED",
            Self::WRONG_TYPE => "NFS4ERR_WRONG_TYPE",
            Self::DIRDELEG_UNAVAIL => "NFS4ERR_DIRDELEG_UNAVAIL",
            Self::REJECT_DELEG => "NFS4ERR_REJECT_DELEG",
            Self::RETURNCONFLICT => "NFS4ERR_RETURNCONFLICT",
            Self::DELEG_REVOKED => "NFS4ERR_DELEG_REVOKED",
            Self::PARTNER_NOTSUPP => "NFS4ERR_PARTNER_NOTSUPP",
            Self::PARTNER_NO_AUTH => "NFS4ERR_PARTNER_NO_AUTH",
            Self::UNION_NOTSUPP => "NFS4ERR_UNION_NOTSUPP",
            Self::OFFLOAD_DENIED => "NFS4ERR_OFFLOAD_DENIED",
            Self::WRONG_LFS => "NFS4ERR_WRONG_LFS",
            Self::BADLABEL => "NFS4ERR_BADLABEL",
            Self::OFFLOAD_NO_REQS => "NFS4ERR_OFFLOAD_NO_REQS",
            _ => return None,
        })
    }
}

impl Default for NfsStat {
    /// NFS4_OK.
    fn default() -> Self {
        Self::OK
    }
}

impl std::fmt::Display for NfsStat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "nfsstat4 {}", self.0),
        }
    }
}

impl XdrEncode for NfsStat {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.0);
    }
}

impl XdrDecode for NfsStat {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self(dec.u32()?))
    }
}

/// stateid4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stateid {
    /// seqid.
    pub seqid: u32,
    /// other.
    pub other: [u8; NFS4_OTHER_SIZE_BYTES],
}

impl Stateid {
    /// The anonymous stateid (all zeros).
    pub const ANONYMOUS: Self = Self {
        seqid: 0,
        other: [0; NFS4_OTHER_SIZE_BYTES],
    };
    /// The "current stateid" special stateid (seqid 1, other all zero).
    pub const CURRENT: Self = Self {
        seqid: 1,
        other: [0; NFS4_OTHER_SIZE_BYTES],
    };
    /// The READ bypass stateid (all ones).
    pub const BYPASS: Self = Self {
        seqid: u32::MAX,
        other: [0xff; NFS4_OTHER_SIZE_BYTES],
    };
}

impl XdrEncode for Stateid {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.seqid);
        enc.put_opaque_fixed(&self.other);
    }
}

impl XdrDecode for Stateid {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            seqid: dec.u32()?,
            other: dec.array_fixed()?,
        })
    }
}

macro_rules! fixed_opaque_type {
    ($(#[$m:meta])* $name:ident, $len:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl XdrEncode for $name {
            fn encode(&self, enc: &mut Encoder) {
                enc.put_opaque_fixed(&self.0);
            }
        }

        impl XdrDecode for $name {
            fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
                Ok(Self(dec.array_fixed()?))
            }
        }
    };
}

fixed_opaque_type!(
    /// verifier4.
    Verifier,
    NFS4_VERIFIER_SIZE_BYTES
);
fixed_opaque_type!(
    /// sessionid4.
    SessionId,
    NFS4_SESSIONID_SIZE_BYTES
);
fixed_opaque_type!(
    /// deviceid4.
    DeviceId,
    NFS4_DEVICEID4_SIZE_BYTES
);

/// nfs_fh4: an opaque file handle of at most [`NFS4_FHSIZE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FileHandle(pub Vec<u8>);

impl XdrEncode for FileHandle {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_opaque(&self.0);
    }
}

impl XdrDecode for FileHandle {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self(dec.opaque("nfs_fh4", NFS4_FHSIZE_BYTES)?.to_vec()))
    }
}

/// nfs_ftype4: NF4REG, a regular file.
pub const NF4REG: u32 = 1;
/// nfs_ftype4: NF4DIR, a directory.
pub const NF4DIR: u32 = 2;
/// nfs_ftype4: NF4BLK, a block device.
pub const NF4BLK: u32 = 3;
/// nfs_ftype4: NF4CHR, a character device.
pub const NF4CHR: u32 = 4;
/// nfs_ftype4: NF4LNK, a symbolic link.
pub const NF4LNK: u32 = 5;
/// nfs_ftype4: NF4SOCK, a socket.
pub const NF4SOCK: u32 = 6;
/// nfs_ftype4: NF4FIFO, a named pipe.
pub const NF4FIFO: u32 = 7;
/// nfs_ftype4: NF4ATTRDIR, a named-attribute directory.
pub const NF4ATTRDIR: u32 = 8;
/// nfs_ftype4: NF4NAMEDATTR, a named attribute.
pub const NF4NAMEDATTR: u32 = 9;

/// clientid4.
pub type ClientId = u64;
/// sequenceid4.
pub type SequenceId = u32;
/// slotid4.
pub type SlotId = u32;

/// layouttype4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutType {
    /// LAYOUT4_NFSV4_1_FILES.
    Files,
    /// LAYOUT4_OSD2_OBJECTS.
    Objects,
    /// LAYOUT4_BLOCK_VOLUME (RFC 5663).
    BlockVolume,
    /// LAYOUT4_FLEX_FILES.
    FlexFiles,
    /// LAYOUT4_SCSI (RFC 8154).
    Scsi,
    /// Any other value, kept so that lists of types round-trip.
    Other(u32),
}

impl LayoutType {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::Files => 1,
            Self::Objects => 2,
            Self::BlockVolume => 3,
            Self::FlexFiles => 4,
            Self::Scsi => 5,
            Self::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Files,
            2 => Self::Objects,
            3 => Self::BlockVolume,
            4 => Self::FlexFiles,
            5 => Self::Scsi,
            v => Self::Other(v),
        }
    }
}

impl XdrEncode for LayoutType {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.to_u32());
    }
}

impl XdrDecode for LayoutType {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self::from_u32(dec.u32()?))
    }
}

/// layoutiomode4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutIoMode {
    /// LAYOUTIOMODE4_READ.
    Read,
    /// LAYOUTIOMODE4_RW.
    ReadWrite,
    /// LAYOUTIOMODE4_ANY (only in recalls and returns).
    Any,
}

impl XdrEncode for LayoutIoMode {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(match self {
            Self::Read => 1,
            Self::ReadWrite => 2,
            Self::Any => 3,
        });
    }
}

impl XdrDecode for LayoutIoMode {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        match dec.u32()? {
            1 => Ok(Self::Read),
            2 => Ok(Self::ReadWrite),
            3 => Ok(Self::Any),
            value => Err(XdrError::BadEnum {
                what: "layoutiomode4",
                value,
            }),
        }
    }
}

/// nfstime4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct NfsTime {
    /// Seconds since the epoch.
    pub seconds: i64,
    /// Nanoseconds, below 1e9.
    pub nseconds: u32,
}

/// Largest valid `nseconds`.
pub const NFS4_MAX_NSECONDS: u32 = 999_999_999;

impl XdrEncode for NfsTime {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_i64(self.seconds);
        enc.put_u32(self.nseconds);
    }
}

impl XdrDecode for NfsTime {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let seconds = dec.i64()?;
        let nseconds = dec.u32()?;
        if nseconds > NFS4_MAX_NSECONDS {
            return Err(XdrError::Invalid {
                what: "nfstime4",
                detail: format!("nseconds {nseconds} out of range"),
            });
        }
        Ok(Self { seconds, nseconds })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::{from_bytes, to_bytes};

    #[test]
    fn stateid_is_16_bytes_and_round_trips() {
        let s = Stateid {
            seqid: 7,
            other: *b"abcdefghijkl",
        };
        let b = to_bytes(&s);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..4], &[0, 0, 0, 7]);
        assert_eq!(from_bytes::<Stateid>(&b), Ok(s));
    }

    #[test]
    fn file_handle_limit_is_enforced() {
        let fh = FileHandle(vec![1; NFS4_FHSIZE_BYTES + 1]);
        assert!(from_bytes::<FileHandle>(&to_bytes(&fh)).is_err());
        let fh = FileHandle(vec![1; NFS4_FHSIZE_BYTES]);
        assert_eq!(from_bytes::<FileHandle>(&to_bytes(&fh)), Ok(fh));
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
