//! OPEN, CLOSE, delegations.

use super::*;
use crate::nfs4::attr::{Bitmap4, Fattr4};
use crate::nfs4::macros::{xdr_struct, xdr_union};
use crate::nfs4::types::*;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

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
