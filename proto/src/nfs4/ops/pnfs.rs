//! pNFS.

use super::*;
use crate::nfs4::attr::Bitmap4;
use crate::nfs4::macros::{xdr_status_union, xdr_struct, xdr_union};
use crate::nfs4::types::*;

xdr_struct! {
    /// layout_content4: the layout-type specific body stays opaque here.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutContent {
        /// loc_type.
        pub loc_type: LayoutType,
        /// loc_body.
        pub loc_body: Vec<u8> => opaque(NFS4_MAX_LAYOUT_BODY_BYTES),
    }
}

xdr_struct! {
    /// layout4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Layout {
        /// lo_offset.
        pub offset: u64,
        /// lo_length.
        pub length: u64,
        /// lo_iomode.
        pub iomode: LayoutIoMode,
        /// lo_content.
        pub content: LayoutContent,
    }
}

xdr_struct! {
    /// device_addr4: the body stays opaque here.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DeviceAddr {
        /// da_layout_type.
        pub layout_type: LayoutType,
        /// da_addr_body.
        pub addr_body: Vec<u8> => opaque(NFS4_MAX_DEVICE_ADDR_BYTES),
    }
}

xdr_struct! {
    /// layoutupdate4: the body stays opaque here.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutUpdate {
        /// lou_type.
        pub lou_type: LayoutType,
        /// lou_body.
        pub lou_body: Vec<u8> => opaque(NFS4_MAX_LAYOUT_BODY_BYTES),
    }
}

xdr_struct! {
    /// LAYOUTGET4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct LayoutgetArgs {
        /// loga_signal_layout_avail.
        pub signal_layout_avail: bool,
        /// loga_layout_type.
        pub layout_type: LayoutType,
        /// loga_iomode.
        pub iomode: LayoutIoMode,
        /// loga_offset.
        pub offset: u64,
        /// loga_length.
        pub length: u64,
        /// loga_minlength.
        pub minlength: u64,
        /// loga_stateid.
        pub stateid: Stateid,
        /// loga_maxcount.
        pub maxcount: u32,
    }
}

xdr_struct! {
    /// LAYOUTGET4resok.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutgetResOk {
        /// logr_return_on_close.
        pub return_on_close: bool,
        /// logr_stateid.
        pub stateid: Stateid,
        /// logr_layout.
        pub layouts: Vec<Layout> => array(NFS4_MAX_LAYOUT_SEGMENTS),
    }
}

xdr_status_union! {
    /// LAYOUTGET4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LayoutgetRes {
        /// NFS4_OK.
        Ok(LayoutgetResOk),
        /// NFS4ERR_LAYOUTTRYLATER with logr_will_signal_layout_avail.
        TryLater {
            /// The server will send CB_RECALLABLE_OBJ_AVAIL.
            will_signal_layout_avail: bool,
        } = LAYOUTTRYLATER,
        /// Any other error.
        Error(NfsStat),
    }
}

/// newoffset4 / newsize4: an optional u64 after a bool.
pub type NewOffset = Option<u64>;
/// newtime4: an optional time after a bool.
pub type NewTime = Option<NfsTime>;

xdr_struct! {
    /// LAYOUTCOMMIT4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutcommitArgs {
        /// loca_offset.
        pub offset: u64,
        /// loca_length.
        pub length: u64,
        /// loca_reclaim.
        pub reclaim: bool,
        /// loca_stateid.
        pub stateid: Stateid,
        /// loca_last_write_offset (newoffset4).
        pub last_write_offset: NewOffset => option,
        /// loca_time_modify (newtime4).
        pub time_modify: NewTime => option,
        /// loca_layoutupdate.
        pub layoutupdate: LayoutUpdate,
    }
}

xdr_struct! {
    /// LAYOUTCOMMIT4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct LayoutcommitResOk {
        /// locr_newsize (newsize4): the new file size if it changed.
        pub newsize: Option<u64> => option,
    }
}

xdr_struct! {
    /// layoutreturn_file4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LayoutreturnFile {
        /// lrf_offset.
        pub offset: u64,
        /// lrf_length.
        pub length: u64,
        /// lrf_stateid.
        pub stateid: Stateid,
        /// lrf_body (layout-type specific).
        pub body: Vec<u8> => opaque(NFS4_MAX_LAYOUT_BODY_BYTES),
    }
}

xdr_union! {
    /// layoutreturn4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Layoutreturn: "layoutreturn_type4" {
        /// LAYOUTRETURN4_FILE.
        File(LayoutreturnFile) = 1,
        /// LAYOUTRETURN4_FSID.
        Fsid = 2,
        /// LAYOUTRETURN4_ALL.
        All = 3,
    }
}

xdr_struct! {
    /// LAYOUTRETURN4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutreturnArgs {
        /// lora_reclaim.
        pub reclaim: bool,
        /// lora_layout_type.
        pub layout_type: LayoutType,
        /// lora_iomode.
        pub iomode: LayoutIoMode,
        /// lora_layoutreturn.
        pub layoutreturn: Layoutreturn,
    }
}

xdr_struct! {
    /// LAYOUTRETURN4res on NFS4_OK: layoutreturn_stateid.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct LayoutreturnResOk {
        /// lrs_stateid when lrs_present (some layout state remains).
        pub stateid: Option<Stateid> => option,
    }
}

xdr_struct! {
    /// GETDEVICEINFO4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GetdeviceinfoArgs {
        /// gdia_device_id.
        pub device_id: DeviceId,
        /// gdia_layout_type.
        pub layout_type: LayoutType,
        /// gdia_maxcount.
        pub maxcount: u32,
        /// gdia_notify_types (bits NOTIFY_DEVICEID4_*).
        pub notify_types: Bitmap4,
    }
}

xdr_struct! {
    /// GETDEVICEINFO4resok.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GetdeviceinfoResOk {
        /// gdir_device_addr.
        pub device_addr: DeviceAddr,
        /// gdir_notification.
        pub notification: Bitmap4,
    }
}

xdr_status_union! {
    /// GETDEVICEINFO4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum GetdeviceinfoRes {
        /// NFS4_OK.
        Ok(GetdeviceinfoResOk),
        /// NFS4ERR_TOOSMALL with gdir_mincount.
        TooSmall {
            /// The maxcount that would have been enough.
            mincount: u32,
        } = TOOSMALL,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_struct! {
    /// GETDEVICELIST4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct GetdevicelistArgs {
        /// gdla_layout_type.
        pub layout_type: LayoutType,
        /// gdla_maxdevices.
        pub maxdevices: u32,
        /// gdla_cookie.
        pub cookie: u64,
        /// gdla_cookieverf.
        pub cookieverf: Verifier,
    }
}

xdr_struct! {
    /// GETDEVICELIST4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct GetdevicelistResOk {
        /// gdlr_cookie.
        pub cookie: u64,
        /// gdlr_cookieverf.
        pub cookieverf: Verifier,
        /// gdlr_deviceid_list.
        pub deviceid_list: Vec<DeviceId> => array(NFS4_MAX_DEVICE_IDS),
        /// gdlr_eof.
        pub eof: bool,
    }
}
