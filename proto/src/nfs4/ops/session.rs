//! Session and client id operations.

use super::*;
use crate::nfs4::attr::Bitmap4;
use crate::nfs4::macros::{xdr_struct, xdr_union};
use crate::nfs4::types::*;
use crate::rpc::{AuthSys, AUTH_NONE, AUTH_SYS, RPCSEC_GSS};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrResult};

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
