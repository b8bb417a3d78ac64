//! Shared structures.

use super::*;
use crate::nfs4::macros::{xdr_struct, xdr_union};
use crate::nfs4::types::*;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

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
