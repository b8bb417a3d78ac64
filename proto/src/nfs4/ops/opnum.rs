//! Operation numbers (nfs_opnum4, RFC 8881 §18 and RFC 7862 §13).

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
