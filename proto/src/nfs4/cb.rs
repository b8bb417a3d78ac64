//! The NFSv4.1 callback program (RFC 8881 §19, §20): CB_COMPOUND arguments and results.
//!
//! Both directions are here: the MDS encodes [`CbCompoundArgs`] and decodes
//! [`CbCompoundRes`]; the gateway decodes the arguments and encodes the results. Every CB
//! operation of NFSv4.1 is decoded (CB_GETATTR 3 … CB_NOTIFY_DEVICEID 14). An operation
//! number the decoder does not know (including NFSv4.2's CB_OFFLOAD and CB_ILLEGAL itself)
//! becomes [`CbArgOp::Illegal`]; since its arguments cannot be parsed, it ends the operation
//! list and the rest of the message is ignored — the receiver answers the ops before it and
//! then CB_ILLEGAL with NFS4ERR_OP_ILLEGAL, which is what RFC 8881 §20.13 asks for.
//!
//! bitmap4, fattr4, state_owner4 and open_delegation4 are the fore channel's types
//! ([`crate::nfs4`]); fsid4 is defined here as [`Fsid`].

use crate::nfs4::macros::{decode_op_list, op_table, xdr_struct, xdr_union};
use crate::nfs4::types::{
    DeviceId, FileHandle, LayoutIoMode, LayoutType, NfsStat, SequenceId, SessionId, SlotId,
    Stateid, NFS4_OPAQUE_LIMIT_BYTES,
};
use crate::nfs4::{Bitmap4, Fattr4, NfsRes, OpenDelegation, StateOwner};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

/// Program number the Linux client and our gateway use for the callback program (the client
/// names its own number in CREATE_SESSION / BACKCHANNEL_CTL).
pub const NFS4_CALLBACK_PROGRAM: u32 = 0x4000_0000;
/// Version of the callback program.
pub const NFS_CB_VERSION: u32 = 1;
/// CB_NULL procedure.
pub const CB_NULL_PROC: u32 = 0;
/// CB_COMPOUND procedure.
pub const CB_COMPOUND_PROC: u32 = 1;

/// Most operations accepted in one CB_COMPOUND (servers send two or three).
pub const CB_MAX_OPS: usize = 64;
/// Longest tag accepted.
pub const CB_MAX_TAG_BYTES: usize = NFS4_OPAQUE_LIMIT_BYTES;
/// Most referring-call lists in one CB_SEQUENCE.
pub const CB_MAX_REFERRING_CALL_LISTS: usize = 16;
/// Most referring calls in one list.
pub const CB_MAX_REFERRING_CALLS: usize = 256;
/// Most notify4 entries in a CB_NOTIFY or CB_NOTIFY_DEVICEID.
pub const CB_MAX_NOTIFY_ENTRIES: usize = 1024;
/// Largest notify_vals of one notify4.
pub const CB_MAX_NOTIFY_VALS_BYTES: usize = 64 * 1024;

/// OP_CB_GETATTR.
pub const OP_CB_GETATTR: u32 = 3;
/// OP_CB_RECALL.
pub const OP_CB_RECALL: u32 = 4;
/// OP_CB_LAYOUTRECALL.
pub const OP_CB_LAYOUTRECALL: u32 = 5;
/// OP_CB_NOTIFY.
pub const OP_CB_NOTIFY: u32 = 6;
/// OP_CB_PUSH_DELEG.
pub const OP_CB_PUSH_DELEG: u32 = 7;
/// OP_CB_RECALL_ANY.
pub const OP_CB_RECALL_ANY: u32 = 8;
/// OP_CB_RECALLABLE_OBJ_AVAIL.
pub const OP_CB_RECALLABLE_OBJ_AVAIL: u32 = 9;
/// OP_CB_RECALL_SLOT.
pub const OP_CB_RECALL_SLOT: u32 = 10;
/// OP_CB_SEQUENCE.
pub const OP_CB_SEQUENCE: u32 = 11;
/// OP_CB_WANTS_CANCELLED.
pub const OP_CB_WANTS_CANCELLED: u32 = 12;
/// OP_CB_NOTIFY_LOCK.
pub const OP_CB_NOTIFY_LOCK: u32 = 13;
/// OP_CB_NOTIFY_DEVICEID.
pub const OP_CB_NOTIFY_DEVICEID: u32 = 14;
/// OP_CB_OFFLOAD (NFSv4.2; decoded as [`CbArgOp::Illegal`] here).
pub const OP_CB_OFFLOAD: u32 = 15;
/// OP_CB_ILLEGAL.
pub const OP_CB_ILLEGAL: u32 = 10044;

/// CB_RECALL_ANY type mask bit: read delegations.
pub const RCA4_TYPE_MASK_RDATA_DLG: u32 = 0;
/// CB_RECALL_ANY type mask bit: write delegations.
pub const RCA4_TYPE_MASK_WDATA_DLG: u32 = 1;
/// CB_RECALL_ANY type mask bit: directory delegations.
pub const RCA4_TYPE_MASK_DIR_DLG: u32 = 2;
/// CB_RECALL_ANY type mask bit: file layouts.
pub const RCA4_TYPE_MASK_FILE_LAYOUT: u32 = 3;
/// CB_RECALL_ANY type mask bit: block layouts (RFC 5663 `RCA4_BLK_LAYOUT_RECALL_ANY_LAYOUTS`).
pub const RCA4_TYPE_MASK_BLK_LAYOUT: u32 = 4;
/// CB_RECALL_ANY type mask bit: first of the object-layout bits.
pub const RCA4_TYPE_MASK_OBJ_LAYOUT_MIN: u32 = 8;
/// CB_RECALL_ANY type mask bit: last of the object-layout bits.
pub const RCA4_TYPE_MASK_OBJ_LAYOUT_MAX: u32 = 9;
/// CB_RECALL_ANY type mask bit: first bit for other layout types.
pub const RCA4_TYPE_MASK_OTHER_LAYOUT_MIN: u32 = 12;
/// CB_RECALL_ANY type mask bit: last bit for other layout types.
pub const RCA4_TYPE_MASK_OTHER_LAYOUT_MAX: u32 = 15;

/// notify_deviceid_type4 NOTIFY_DEVICEID4_CHANGE (a bit number in notify4's mask).
pub const NOTIFY_DEVICEID4_CHANGE: u32 = 1;
/// notify_deviceid_type4 NOTIFY_DEVICEID4_DELETE (a bit number in notify4's mask).
pub const NOTIFY_DEVICEID4_DELETE: u32 = 2;

// ---------------------------------------------------------------------------------------------
// fsid4 (the fore channel has no type for it yet).

xdr_struct! {
    /// fsid4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Fsid {
        /// major.
        pub major: u64,
        /// minor.
        pub minor: u64,
    }
}

// ---------------------------------------------------------------------------------------------
// Operation arguments.

xdr_struct! {
    /// CB_GETATTR4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbGetattrArgs {
        /// fh.
        pub fh: FileHandle,
        /// attr_request.
        pub attr_request: Bitmap4,
    }
}

xdr_struct! {
    /// CB_RECALL4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbRecallArgs {
        /// stateid of the delegation.
        pub stateid: Stateid,
        /// truncate.
        pub truncate: bool,
        /// fh.
        pub fh: FileHandle,
    }
}

xdr_struct! {
    /// layoutrecall_file4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutRecallFile {
        /// lor_fh.
        pub fh: FileHandle,
        /// lor_offset.
        pub offset_bytes: u64,
        /// lor_length (`u64::MAX`: to the end of the file).
        pub length_bytes: u64,
        /// lor_stateid: the layout stateid.
        pub stateid: Stateid,
    }
}

/// layoutrecall_type4 values.
const LAYOUTRECALL4_FILE: u32 = 1;
const LAYOUTRECALL4_FSID: u32 = 2;
const LAYOUTRECALL4_ALL: u32 = 3;

xdr_union! {
    /// layoutrecall4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LayoutRecall: "layoutrecall_type4" {
        /// LAYOUTRECALL4_FILE (1): a byte range of one file.
        File(LayoutRecallFile) = LAYOUTRECALL4_FILE,
        /// LAYOUTRECALL4_FSID (2): every layout of a file system.
        Fsid(Fsid) = LAYOUTRECALL4_FSID,
        /// LAYOUTRECALL4_ALL (3): every layout.
        All = LAYOUTRECALL4_ALL,
    }
}

xdr_struct! {
    /// CB_LAYOUTRECALL4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbLayoutRecallArgs {
        /// clora_type.
        pub layout_type: LayoutType,
        /// clora_iomode.
        pub iomode: LayoutIoMode,
        /// clora_changed: the layout changed on the server (data must be committed, not trusted).
        pub changed: bool,
        /// clora_recall.
        pub recall: LayoutRecall,
    }
}

xdr_struct! {
    /// notify4, undecoded: the mask and the packed values.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Notify4 {
        /// notify_mask.
        pub mask: Bitmap4,
        /// notify_vals.
        pub vals: Vec<u8> => opaque(CB_MAX_NOTIFY_VALS_BYTES),
    }
}

xdr_struct! {
    /// CB_NOTIFY4args (directory notifications; kept undecoded: we never ask for them).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbNotifyArgs {
        /// cna_stateid.
        pub stateid: Stateid,
        /// cna_fh.
        pub fh: FileHandle,
        /// cna_changes.
        pub changes: Vec<Notify4> => array(CB_MAX_NOTIFY_ENTRIES),
    }
}

xdr_struct! {
    /// CB_PUSH_DELEG4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbPushDelegArgs {
        /// cpda_fh.
        pub fh: FileHandle,
        /// cpda_delegation.
        pub delegation: OpenDelegation,
    }
}

xdr_struct! {
    /// CB_RECALL_ANY4args (also CB_RECALLABLE_OBJ_AVAIL4args).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbRecallAnyArgs {
        /// craa_objects_to_keep.
        pub objects_to_keep: u32,
        /// craa_type_mask: `RCA4_TYPE_MASK_*` bits.
        pub type_mask: Bitmap4,
    }
}

xdr_struct! {
    /// CB_RECALL_SLOT4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct CbRecallSlotArgs {
        /// rsa_target_highest_slotid.
        pub target_highest_slotid: SlotId,
    }
}

xdr_struct! {
    /// referring_call4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct ReferringCall {
        /// rc_sequenceid.
        pub sequenceid: SequenceId,
        /// rc_slotid.
        pub slotid: SlotId,
    }
}

xdr_struct! {
    /// referring_call_list4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ReferringCallList {
        /// rcl_sessionid.
        pub sessionid: SessionId,
        /// rcl_referring_calls.
        pub calls: Vec<ReferringCall> => array(CB_MAX_REFERRING_CALLS),
    }
}

xdr_struct! {
    /// CB_SEQUENCE4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbSequenceArgs {
        /// csa_sessionid.
        pub sessionid: SessionId,
        /// csa_sequenceid.
        pub sequenceid: SequenceId,
        /// csa_slotid.
        pub slotid: SlotId,
        /// csa_highest_slotid.
        pub highest_slotid: SlotId,
        /// csa_cachethis.
        pub cachethis: bool,
        /// csa_referring_call_lists.
        pub referring_call_lists: Vec<ReferringCallList> => array(CB_MAX_REFERRING_CALL_LISTS),
    }
}

xdr_struct! {
    /// CB_WANTS_CANCELLED4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct CbWantsCancelledArgs {
        /// cwca_contended_wants_cancelled.
        pub contended_wants_cancelled: bool,
        /// cwca_resourced_wants_cancelled.
        pub resourced_wants_cancelled: bool,
    }
}

xdr_struct! {
    /// CB_NOTIFY_LOCK4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbNotifyLockArgs {
        /// cnla_fh.
        pub fh: FileHandle,
        /// cnla_lock_owner.
        pub lock_owner: StateOwner,
    }
}

/// One device notification of CB_NOTIFY_DEVICEID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceNotification {
    /// notify_deviceid_change4: the device's address changed.
    Change {
        /// ndc_layouttype.
        layout_type: LayoutType,
        /// ndc_deviceid.
        device_id: DeviceId,
        /// ndc_immediate: stop using the old address now.
        immediate: bool,
    },
    /// notify_deviceid_delete4: the device is gone.
    Delete {
        /// ndd_layouttype.
        layout_type: LayoutType,
        /// ndd_deviceid.
        device_id: DeviceId,
    },
}

/// CB_NOTIFY_DEVICEID4args, with every notify4 decoded into its notifications.
///
/// On the wire each notify4 carries a bitmap of notification types and their values packed in
/// bit order; the encoder writes one notify4 per notification, the decoder accepts several
/// bits per notify4 and rejects bits other than CHANGE and DELETE (their length is unknown).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CbNotifyDeviceidArgs {
    /// The notifications, in wire order.
    pub changes: Vec<DeviceNotification>,
}

impl XdrEncode for CbNotifyDeviceidArgs {
    fn encode(&self, enc: &mut Encoder) {
        let entries: Vec<Notify4> = self
            .changes
            .iter()
            .map(|n| {
                let mut vals = Encoder::new();
                let bit = match n {
                    DeviceNotification::Change {
                        layout_type,
                        device_id,
                        immediate,
                    } => {
                        layout_type.encode(&mut vals);
                        device_id.encode(&mut vals);
                        vals.put_bool(*immediate);
                        NOTIFY_DEVICEID4_CHANGE
                    }
                    DeviceNotification::Delete {
                        layout_type,
                        device_id,
                    } => {
                        layout_type.encode(&mut vals);
                        device_id.encode(&mut vals);
                        NOTIFY_DEVICEID4_DELETE
                    }
                };
                Notify4 {
                    mask: Bitmap4::from_bits(&[bit]),
                    vals: vals.into_inner(),
                }
            })
            .collect();
        enc.put_array(&entries);
    }
}

impl XdrDecode for CbNotifyDeviceidArgs {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let raw: Vec<Notify4> = dec.array("cnda_changes", CB_MAX_NOTIFY_ENTRIES)?;
        let mut changes = Vec::new();
        for n in &raw {
            let mut vals = Decoder::new(&n.vals);
            for bit in n.mask.iter() {
                if changes.len() >= CB_MAX_NOTIFY_ENTRIES {
                    return Err(XdrError::TooLong {
                        what: "device notifications",
                        len: u64::try_from(changes.len()).unwrap_or(u64::MAX) + 1,
                        limit: CB_MAX_NOTIFY_ENTRIES as u64,
                    });
                }
                changes.push(match bit {
                    NOTIFY_DEVICEID4_CHANGE => DeviceNotification::Change {
                        layout_type: LayoutType::decode(&mut vals)?,
                        device_id: DeviceId::decode(&mut vals)?,
                        immediate: vals.bool()?,
                    },
                    NOTIFY_DEVICEID4_DELETE => DeviceNotification::Delete {
                        layout_type: LayoutType::decode(&mut vals)?,
                        device_id: DeviceId::decode(&mut vals)?,
                    },
                    value => {
                        return Err(XdrError::BadEnum {
                            what: "notify_deviceid_type4",
                            value,
                        })
                    }
                });
            }
            vals.finish()?;
        }
        Ok(Self { changes })
    }
}

// ---------------------------------------------------------------------------------------------
// Operation results.

xdr_struct! {
    /// CB_SEQUENCE4resok.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CbSequenceResOk {
        /// csr_sessionid.
        pub sessionid: SessionId,
        /// csr_sequenceid.
        pub sequenceid: SequenceId,
        /// csr_slotid.
        pub slotid: SlotId,
        /// csr_highest_slotid.
        pub highest_slotid: SlotId,
        /// csr_target_highest_slotid.
        pub target_highest_slotid: SlotId,
    }
}

// ---------------------------------------------------------------------------------------------
// Operations: nfs_cb_argop4 / nfs_cb_resop4, from the same table machinery as the fore
// channel's COMPOUND. Results with a body on success are [`NfsRes`]; an `Err` that holds
// NFS4_OK reads and encodes as NFS4ERR_SERVERFAULT rather than a malformed body.

op_table! {
    args:
        /// nfs_cb_argop4: one callback operation with its arguments.
        CbArgOp,
    results:
        /// nfs_cb_resop4: one operation's result.
        CbResOp,
    illegal: OP_CB_ILLEGAL,
    result_what: "nfs_cb_resop4",
    ops: {
        /// CB_GETATTR (3).
        Getattr = OP_CB_GETATTR (CbGetattrArgs) -> NfsRes<Fattr4>;
        /// CB_RECALL (4).
        Recall = OP_CB_RECALL (CbRecallArgs) -> NfsStat;
        /// CB_LAYOUTRECALL (5).
        LayoutRecall = OP_CB_LAYOUTRECALL (CbLayoutRecallArgs) -> NfsStat;
        /// CB_NOTIFY (6).
        Notify = OP_CB_NOTIFY (CbNotifyArgs) -> NfsStat;
        /// CB_PUSH_DELEG (7).
        PushDeleg = OP_CB_PUSH_DELEG (CbPushDelegArgs) -> NfsStat;
        /// CB_RECALL_ANY (8).
        RecallAny = OP_CB_RECALL_ANY (CbRecallAnyArgs) -> NfsStat;
        /// CB_RECALLABLE_OBJ_AVAIL (9).
        RecallableObjAvail = OP_CB_RECALLABLE_OBJ_AVAIL (CbRecallAnyArgs) -> NfsStat;
        /// CB_RECALL_SLOT (10).
        RecallSlot = OP_CB_RECALL_SLOT (CbRecallSlotArgs) -> NfsStat;
        /// CB_SEQUENCE (11).
        Sequence = OP_CB_SEQUENCE (CbSequenceArgs) -> NfsRes<CbSequenceResOk>;
        /// CB_WANTS_CANCELLED (12).
        WantsCancelled = OP_CB_WANTS_CANCELLED (CbWantsCancelledArgs) -> NfsStat;
        /// CB_NOTIFY_LOCK (13).
        NotifyLock = OP_CB_NOTIFY_LOCK (CbNotifyLockArgs) -> NfsStat;
        /// CB_NOTIFY_DEVICEID (14).
        NotifyDeviceid = OP_CB_NOTIFY_DEVICEID (CbNotifyDeviceidArgs) -> NfsStat;
    }
}

/// CB_COMPOUND4args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbCompoundArgs {
    /// tag (echoed in the reply).
    pub tag: String,
    /// minorversion (1 for NFSv4.1).
    pub minorversion: u32,
    /// callback_ident (NFSv4.0 only; 0 in NFSv4.1).
    pub callback_ident: u32,
    /// argarray. If the last is [`CbArgOp::Illegal`], the ops after it on the wire were not
    /// decoded.
    pub ops: Vec<CbArgOp>,
}

impl XdrEncode for CbCompoundArgs {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_str(&self.tag);
        enc.put_u32(self.minorversion);
        enc.put_u32(self.callback_ident);
        enc.put_array(&self.ops);
    }
}

impl XdrDecode for CbCompoundArgs {
    /// Decodes the arguments. After an unknown operation the rest of the buffer (whole XDR
    /// units) is consumed unread: CB_COMPOUND4args is the last item of a CB_COMPOUND call.
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            tag: dec.string("CB_COMPOUND tag", CB_MAX_TAG_BYTES)?,
            minorversion: dec.u32()?,
            callback_ident: dec.u32()?,
            ops: decode_op_list(dec, "CB_COMPOUND argarray", CB_MAX_OPS)?,
        })
    }
}

/// CB_COMPOUND4res.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbCompoundRes {
    /// status: that of the last result (NFS4_OK if all succeeded).
    pub status: NfsStat,
    /// tag, echoed from the arguments.
    pub tag: String,
    /// resarray: one result per op evaluated, stopping after the first failure.
    pub results: Vec<CbResOp>,
}

impl CbCompoundRes {
    /// A reply with `results`, the status taken from the last one (NFS4_OK if none).
    pub fn from_results(tag: String, results: Vec<CbResOp>) -> Self {
        let status = results.last().map_or(NfsStat::OK, CbResOp::status);
        Self {
            status,
            tag,
            results,
        }
    }
}

impl XdrEncode for CbCompoundRes {
    fn encode(&self, enc: &mut Encoder) {
        self.status.encode(enc);
        enc.put_str(&self.tag);
        enc.put_array(&self.results);
    }
}

impl XdrDecode for CbCompoundRes {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            status: NfsStat::decode(dec)?,
            tag: dec.string("CB_COMPOUND tag", CB_MAX_TAG_BYTES)?,
            results: dec.array("CB_COMPOUND resarray", CB_MAX_OPS)?,
        })
    }
}
