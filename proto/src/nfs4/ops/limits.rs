//! Limits.

use crate::nfs4::types::*;

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
