//! File handle, lookup, attribute and access operations.

use super::*;
use crate::nfs4::attr::{Bitmap4, Fattr4};
use crate::nfs4::macros::{xdr_struct, xdr_union};
use crate::nfs4::types::*;
use crate::rpc::RPCSEC_GSS;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrResult};

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
