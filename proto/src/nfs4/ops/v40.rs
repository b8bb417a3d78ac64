//! NFSv4.0-only operations (decoded so a 4.1 server can answer NFS4ERR_NOTSUPP).

use super::*;
use crate::nfs4::macros::{xdr_status_union, xdr_struct};
use crate::nfs4::types::*;

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
