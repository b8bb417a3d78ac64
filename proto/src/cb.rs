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

use crate::nfs4::types::{
    DeviceId, FileHandle, LayoutIoMode, LayoutType, NfsStat, SequenceId, SessionId, SlotId,
    Stateid, NFS4_OPAQUE_LIMIT_BYTES,
};
use crate::nfs4::{Bitmap4, Fattr4, OpenDelegation, StateOwner};
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

/// fsid4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fsid {
    /// major.
    pub major: u64,
    /// minor.
    pub minor: u64,
}

impl XdrEncode for Fsid {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u64(self.major);
        enc.put_u64(self.minor);
    }
}

impl XdrDecode for Fsid {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            major: dec.u64()?,
            minor: dec.u64()?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Operation arguments.

/// CB_GETATTR4args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbGetattrArgs {
    /// fh.
    pub fh: FileHandle,
    /// attr_request.
    pub attr_request: Bitmap4,
}

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

/// layoutrecall4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutRecall {
    /// LAYOUTRECALL4_FILE (1): a byte range of one file.
    File(LayoutRecallFile),
    /// LAYOUTRECALL4_FSID (2): every layout of a file system.
    Fsid(Fsid),
    /// LAYOUTRECALL4_ALL (3): every layout.
    All,
}

/// layoutrecall_type4 values.
const LAYOUTRECALL4_FILE: u32 = 1;
const LAYOUTRECALL4_FSID: u32 = 2;
const LAYOUTRECALL4_ALL: u32 = 3;

impl XdrEncode for LayoutRecall {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::File(f) => {
                enc.put_u32(LAYOUTRECALL4_FILE);
                f.fh.encode(enc);
                enc.put_u64(f.offset_bytes);
                enc.put_u64(f.length_bytes);
                f.stateid.encode(enc);
            }
            Self::Fsid(fsid) => {
                enc.put_u32(LAYOUTRECALL4_FSID);
                fsid.encode(enc);
            }
            Self::All => enc.put_u32(LAYOUTRECALL4_ALL),
        }
    }
}

impl XdrDecode for LayoutRecall {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        match dec.u32()? {
            LAYOUTRECALL4_FILE => Ok(Self::File(LayoutRecallFile {
                fh: FileHandle::decode(dec)?,
                offset_bytes: dec.u64()?,
                length_bytes: dec.u64()?,
                stateid: Stateid::decode(dec)?,
            })),
            LAYOUTRECALL4_FSID => Ok(Self::Fsid(Fsid::decode(dec)?)),
            LAYOUTRECALL4_ALL => Ok(Self::All),
            value => Err(XdrError::BadEnum {
                what: "layoutrecall_type4",
                value,
            }),
        }
    }
}

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

/// notify4, undecoded: the mask and the packed values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notify4 {
    /// notify_mask.
    pub mask: Bitmap4,
    /// notify_vals.
    pub vals: Vec<u8>,
}

impl XdrEncode for Notify4 {
    fn encode(&self, enc: &mut Encoder) {
        self.mask.encode(enc);
        enc.put_opaque(&self.vals);
    }
}

impl XdrDecode for Notify4 {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            mask: Bitmap4::decode(dec)?,
            vals: dec
                .opaque("notify_vals", CB_MAX_NOTIFY_VALS_BYTES)?
                .to_vec(),
        })
    }
}

/// CB_NOTIFY4args (directory notifications; kept undecoded: we never ask for them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbNotifyArgs {
    /// cna_stateid.
    pub stateid: Stateid,
    /// cna_fh.
    pub fh: FileHandle,
    /// cna_changes.
    pub changes: Vec<Notify4>,
}

/// CB_PUSH_DELEG4args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbPushDelegArgs {
    /// cpda_fh.
    pub fh: FileHandle,
    /// cpda_delegation.
    pub delegation: OpenDelegation,
}

/// CB_RECALL_ANY4args (also CB_RECALLABLE_OBJ_AVAIL4args).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbRecallAnyArgs {
    /// craa_objects_to_keep.
    pub objects_to_keep: u32,
    /// craa_type_mask: `RCA4_TYPE_MASK_*` bits.
    pub type_mask: Bitmap4,
}

/// referring_call4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReferringCall {
    /// rc_sequenceid.
    pub sequenceid: SequenceId,
    /// rc_slotid.
    pub slotid: SlotId,
}

impl XdrEncode for ReferringCall {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.sequenceid);
        enc.put_u32(self.slotid);
    }
}

impl XdrDecode for ReferringCall {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            sequenceid: dec.u32()?,
            slotid: dec.u32()?,
        })
    }
}

/// referring_call_list4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferringCallList {
    /// rcl_sessionid.
    pub sessionid: SessionId,
    /// rcl_referring_calls.
    pub calls: Vec<ReferringCall>,
}

impl XdrEncode for ReferringCallList {
    fn encode(&self, enc: &mut Encoder) {
        self.sessionid.encode(enc);
        enc.put_array(&self.calls);
    }
}

impl XdrDecode for ReferringCallList {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            sessionid: SessionId::decode(dec)?,
            calls: dec.array("rcl_referring_calls", CB_MAX_REFERRING_CALLS)?,
        })
    }
}

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
    pub referring_call_lists: Vec<ReferringCallList>,
}

/// CB_WANTS_CANCELLED4args.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CbWantsCancelledArgs {
    /// cwca_contended_wants_cancelled.
    pub contended_wants_cancelled: bool,
    /// cwca_resourced_wants_cancelled.
    pub resourced_wants_cancelled: bool,
}

/// CB_NOTIFY_LOCK4args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CbNotifyLockArgs {
    /// cnla_fh.
    pub fh: FileHandle,
    /// cnla_lock_owner.
    pub lock_owner: StateOwner,
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

/// nfs_cb_argop4: one callback operation with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CbArgOp {
    /// CB_GETATTR (3).
    Getattr(CbGetattrArgs),
    /// CB_RECALL (4).
    Recall(CbRecallArgs),
    /// CB_LAYOUTRECALL (5).
    LayoutRecall(CbLayoutRecallArgs),
    /// CB_NOTIFY (6).
    Notify(CbNotifyArgs),
    /// CB_PUSH_DELEG (7).
    PushDeleg(CbPushDelegArgs),
    /// CB_RECALL_ANY (8).
    RecallAny(CbRecallAnyArgs),
    /// CB_RECALLABLE_OBJ_AVAIL (9).
    RecallableObjAvail(CbRecallAnyArgs),
    /// CB_RECALL_SLOT (10): `rsa_target_highest_slotid`.
    RecallSlot {
        /// rsa_target_highest_slotid.
        target_highest_slotid: SlotId,
    },
    /// CB_SEQUENCE (11).
    Sequence(CbSequenceArgs),
    /// CB_WANTS_CANCELLED (12).
    WantsCancelled(CbWantsCancelledArgs),
    /// CB_NOTIFY_LOCK (13).
    NotifyLock(CbNotifyLockArgs),
    /// CB_NOTIFY_DEVICEID (14).
    NotifyDeviceid(CbNotifyDeviceidArgs),
    /// CB_ILLEGAL or any operation number not listed above; always the last op decoded.
    Illegal {
        /// The operation number on the wire.
        opnum: u32,
    },
}

impl CbArgOp {
    /// The operation number (`nfs_cb_opnum4`).
    pub fn opnum(&self) -> u32 {
        match self {
            Self::Getattr(_) => OP_CB_GETATTR,
            Self::Recall(_) => OP_CB_RECALL,
            Self::LayoutRecall(_) => OP_CB_LAYOUTRECALL,
            Self::Notify(_) => OP_CB_NOTIFY,
            Self::PushDeleg(_) => OP_CB_PUSH_DELEG,
            Self::RecallAny(_) => OP_CB_RECALL_ANY,
            Self::RecallableObjAvail(_) => OP_CB_RECALLABLE_OBJ_AVAIL,
            Self::RecallSlot { .. } => OP_CB_RECALL_SLOT,
            Self::Sequence(_) => OP_CB_SEQUENCE,
            Self::WantsCancelled(_) => OP_CB_WANTS_CANCELLED,
            Self::NotifyLock(_) => OP_CB_NOTIFY_LOCK,
            Self::NotifyDeviceid(_) => OP_CB_NOTIFY_DEVICEID,
            Self::Illegal { opnum } => *opnum,
        }
    }
}

impl XdrEncode for CbArgOp {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.opnum());
        match self {
            Self::Getattr(a) => {
                a.fh.encode(enc);
                a.attr_request.encode(enc);
            }
            Self::Recall(a) => {
                a.stateid.encode(enc);
                enc.put_bool(a.truncate);
                a.fh.encode(enc);
            }
            Self::LayoutRecall(a) => {
                a.layout_type.encode(enc);
                a.iomode.encode(enc);
                enc.put_bool(a.changed);
                a.recall.encode(enc);
            }
            Self::Notify(a) => {
                a.stateid.encode(enc);
                a.fh.encode(enc);
                enc.put_array(&a.changes);
            }
            Self::PushDeleg(a) => {
                a.fh.encode(enc);
                a.delegation.encode(enc);
            }
            Self::RecallAny(a) | Self::RecallableObjAvail(a) => {
                enc.put_u32(a.objects_to_keep);
                a.type_mask.encode(enc);
            }
            Self::RecallSlot {
                target_highest_slotid,
            } => enc.put_u32(*target_highest_slotid),
            Self::Sequence(a) => {
                a.sessionid.encode(enc);
                enc.put_u32(a.sequenceid);
                enc.put_u32(a.slotid);
                enc.put_u32(a.highest_slotid);
                enc.put_bool(a.cachethis);
                enc.put_array(&a.referring_call_lists);
            }
            Self::WantsCancelled(a) => {
                enc.put_bool(a.contended_wants_cancelled);
                enc.put_bool(a.resourced_wants_cancelled);
            }
            Self::NotifyLock(a) => {
                a.fh.encode(enc);
                a.lock_owner.encode(enc);
            }
            Self::NotifyDeviceid(a) => a.encode(enc),
            Self::Illegal { .. } => {}
        }
    }
}

impl CbArgOp {
    /// Reads one operation. An unknown number gives `Illegal` without reading further.
    fn decode_op(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let opnum = dec.u32()?;
        Ok(match opnum {
            OP_CB_GETATTR => Self::Getattr(CbGetattrArgs {
                fh: FileHandle::decode(dec)?,
                attr_request: Bitmap4::decode(dec)?,
            }),
            OP_CB_RECALL => Self::Recall(CbRecallArgs {
                stateid: Stateid::decode(dec)?,
                truncate: dec.bool()?,
                fh: FileHandle::decode(dec)?,
            }),
            OP_CB_LAYOUTRECALL => Self::LayoutRecall(CbLayoutRecallArgs {
                layout_type: LayoutType::decode(dec)?,
                iomode: LayoutIoMode::decode(dec)?,
                changed: dec.bool()?,
                recall: LayoutRecall::decode(dec)?,
            }),
            OP_CB_NOTIFY => Self::Notify(CbNotifyArgs {
                stateid: Stateid::decode(dec)?,
                fh: FileHandle::decode(dec)?,
                changes: dec.array("cna_changes", CB_MAX_NOTIFY_ENTRIES)?,
            }),
            OP_CB_PUSH_DELEG => Self::PushDeleg(CbPushDelegArgs {
                fh: FileHandle::decode(dec)?,
                delegation: OpenDelegation::decode(dec)?,
            }),
            OP_CB_RECALL_ANY | OP_CB_RECALLABLE_OBJ_AVAIL => {
                let a = CbRecallAnyArgs {
                    objects_to_keep: dec.u32()?,
                    type_mask: Bitmap4::decode(dec)?,
                };
                if opnum == OP_CB_RECALL_ANY {
                    Self::RecallAny(a)
                } else {
                    Self::RecallableObjAvail(a)
                }
            }
            OP_CB_RECALL_SLOT => Self::RecallSlot {
                target_highest_slotid: dec.u32()?,
            },
            OP_CB_SEQUENCE => Self::Sequence(CbSequenceArgs {
                sessionid: SessionId::decode(dec)?,
                sequenceid: dec.u32()?,
                slotid: dec.u32()?,
                highest_slotid: dec.u32()?,
                cachethis: dec.bool()?,
                referring_call_lists: dec
                    .array("csa_referring_call_lists", CB_MAX_REFERRING_CALL_LISTS)?,
            }),
            OP_CB_WANTS_CANCELLED => Self::WantsCancelled(CbWantsCancelledArgs {
                contended_wants_cancelled: dec.bool()?,
                resourced_wants_cancelled: dec.bool()?,
            }),
            OP_CB_NOTIFY_LOCK => Self::NotifyLock(CbNotifyLockArgs {
                fh: FileHandle::decode(dec)?,
                lock_owner: StateOwner::decode(dec)?,
            }),
            OP_CB_NOTIFY_DEVICEID => Self::NotifyDeviceid(CbNotifyDeviceidArgs::decode(dec)?),
            opnum => Self::Illegal { opnum },
        })
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
        let tag = dec.string("CB_COMPOUND tag", CB_MAX_TAG_BYTES)?;
        let minorversion = dec.u32()?;
        let callback_ident = dec.u32()?;
        let count = dec.length("CB_COMPOUND argarray", CB_MAX_OPS)?;
        let mut ops = Vec::with_capacity(count.min(dec.remaining() / 4));
        for _ in 0..count {
            let op = CbArgOp::decode_op(dec)?;
            let illegal = matches!(op, CbArgOp::Illegal { .. });
            ops.push(op);
            if illegal {
                // Skip the unparseable rest in whole XDR units; a call that is not a multiple
                // of four bytes is malformed anyway and its tail stays unread (an error in
                // `from_bytes`).
                let rest = dec.remaining();
                dec.opaque_fixed(rest - rest % 4)?;
                break;
            }
        }
        Ok(Self {
            tag,
            minorversion,
            callback_ident,
            ops,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Operation results.

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

impl XdrEncode for CbSequenceResOk {
    fn encode(&self, enc: &mut Encoder) {
        self.sessionid.encode(enc);
        enc.put_u32(self.sequenceid);
        enc.put_u32(self.slotid);
        enc.put_u32(self.highest_slotid);
        enc.put_u32(self.target_highest_slotid);
    }
}

impl XdrDecode for CbSequenceResOk {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            sessionid: SessionId::decode(dec)?,
            sequenceid: dec.u32()?,
            slotid: dec.u32()?,
            highest_slotid: dec.u32()?,
            target_highest_slotid: dec.u32()?,
        })
    }
}

/// nfs_cb_resop4: one operation's result.
///
/// Results with a body on success are `Result<body, NfsStat>`; the `Err` status is never
/// NFS4_OK (the decoder cannot produce that, and an encoder given one writes an error status
/// of NFS4ERR_SERVERFAULT rather than a malformed body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CbResOp {
    /// CB_GETATTR.
    Getattr(Result<Fattr4, NfsStat>),
    /// CB_RECALL.
    Recall(NfsStat),
    /// CB_LAYOUTRECALL.
    LayoutRecall(NfsStat),
    /// CB_NOTIFY.
    Notify(NfsStat),
    /// CB_PUSH_DELEG.
    PushDeleg(NfsStat),
    /// CB_RECALL_ANY.
    RecallAny(NfsStat),
    /// CB_RECALLABLE_OBJ_AVAIL.
    RecallableObjAvail(NfsStat),
    /// CB_RECALL_SLOT.
    RecallSlot(NfsStat),
    /// CB_SEQUENCE.
    Sequence(Result<CbSequenceResOk, NfsStat>),
    /// CB_WANTS_CANCELLED.
    WantsCancelled(NfsStat),
    /// CB_NOTIFY_LOCK.
    NotifyLock(NfsStat),
    /// CB_NOTIFY_DEVICEID.
    NotifyDeviceid(NfsStat),
    /// CB_ILLEGAL (normally NFS4ERR_OP_ILLEGAL).
    Illegal(NfsStat),
}

fn status_of<T>(r: &Result<T, NfsStat>) -> NfsStat {
    match r {
        Ok(_) => NfsStat::OK,
        Err(s) if s.is_ok() => NfsStat::SERVERFAULT,
        Err(s) => *s,
    }
}

impl CbResOp {
    /// The operation number (`nfs_cb_opnum4`).
    pub fn opnum(&self) -> u32 {
        match self {
            Self::Getattr(_) => OP_CB_GETATTR,
            Self::Recall(_) => OP_CB_RECALL,
            Self::LayoutRecall(_) => OP_CB_LAYOUTRECALL,
            Self::Notify(_) => OP_CB_NOTIFY,
            Self::PushDeleg(_) => OP_CB_PUSH_DELEG,
            Self::RecallAny(_) => OP_CB_RECALL_ANY,
            Self::RecallableObjAvail(_) => OP_CB_RECALLABLE_OBJ_AVAIL,
            Self::RecallSlot(_) => OP_CB_RECALL_SLOT,
            Self::Sequence(_) => OP_CB_SEQUENCE,
            Self::WantsCancelled(_) => OP_CB_WANTS_CANCELLED,
            Self::NotifyLock(_) => OP_CB_NOTIFY_LOCK,
            Self::NotifyDeviceid(_) => OP_CB_NOTIFY_DEVICEID,
            Self::Illegal(_) => OP_CB_ILLEGAL,
        }
    }

    /// The operation's status.
    pub fn status(&self) -> NfsStat {
        match self {
            Self::Getattr(r) => status_of(r),
            Self::Sequence(r) => status_of(r),
            Self::Recall(s)
            | Self::LayoutRecall(s)
            | Self::Notify(s)
            | Self::PushDeleg(s)
            | Self::RecallAny(s)
            | Self::RecallableObjAvail(s)
            | Self::RecallSlot(s)
            | Self::WantsCancelled(s)
            | Self::NotifyLock(s)
            | Self::NotifyDeviceid(s)
            | Self::Illegal(s) => *s,
        }
    }

    /// The result for `op` that carries only `status` (for ops with a body on success, an
    /// error status; `NFS4_OK` there gives NFS4ERR_SERVERFAULT, since the body is missing).
    pub fn error_for(op: &CbArgOp, status: NfsStat) -> Self {
        let err = if status.is_ok() {
            NfsStat::SERVERFAULT
        } else {
            status
        };
        match op {
            CbArgOp::Getattr(_) => Self::Getattr(Err(err)),
            CbArgOp::Recall(_) => Self::Recall(status),
            CbArgOp::LayoutRecall(_) => Self::LayoutRecall(status),
            CbArgOp::Notify(_) => Self::Notify(status),
            CbArgOp::PushDeleg(_) => Self::PushDeleg(status),
            CbArgOp::RecallAny(_) => Self::RecallAny(status),
            CbArgOp::RecallableObjAvail(_) => Self::RecallableObjAvail(status),
            CbArgOp::RecallSlot { .. } => Self::RecallSlot(status),
            CbArgOp::Sequence(_) => Self::Sequence(Err(err)),
            CbArgOp::WantsCancelled(_) => Self::WantsCancelled(status),
            CbArgOp::NotifyLock(_) => Self::NotifyLock(status),
            CbArgOp::NotifyDeviceid(_) => Self::NotifyDeviceid(status),
            CbArgOp::Illegal { .. } => Self::Illegal(NfsStat::OP_ILLEGAL),
        }
    }
}

impl XdrEncode for CbResOp {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.opnum());
        self.status().encode(enc);
        match self {
            Self::Getattr(Ok(attrs)) => attrs.encode(enc),
            Self::Sequence(Ok(ok)) => ok.encode(enc),
            _ => {}
        }
    }
}

impl XdrDecode for CbResOp {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let opnum = dec.u32()?;
        let status = NfsStat::decode(dec)?;
        Ok(match opnum {
            OP_CB_GETATTR if status.is_ok() => Self::Getattr(Ok(Fattr4::decode(dec)?)),
            OP_CB_GETATTR => Self::Getattr(Err(status)),
            OP_CB_SEQUENCE if status.is_ok() => Self::Sequence(Ok(CbSequenceResOk::decode(dec)?)),
            OP_CB_SEQUENCE => Self::Sequence(Err(status)),
            OP_CB_RECALL => Self::Recall(status),
            OP_CB_LAYOUTRECALL => Self::LayoutRecall(status),
            OP_CB_NOTIFY => Self::Notify(status),
            OP_CB_PUSH_DELEG => Self::PushDeleg(status),
            OP_CB_RECALL_ANY => Self::RecallAny(status),
            OP_CB_RECALLABLE_OBJ_AVAIL => Self::RecallableObjAvail(status),
            OP_CB_RECALL_SLOT => Self::RecallSlot(status),
            OP_CB_WANTS_CANCELLED => Self::WantsCancelled(status),
            OP_CB_NOTIFY_LOCK => Self::NotifyLock(status),
            OP_CB_NOTIFY_DEVICEID => Self::NotifyDeviceid(status),
            OP_CB_ILLEGAL => Self::Illegal(status),
            value => {
                return Err(XdrError::BadEnum {
                    what: "nfs_cb_resop4",
                    value,
                })
            }
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
