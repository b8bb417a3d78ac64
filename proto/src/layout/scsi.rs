//! RFC 8154 SCSI layout: volumes with designators and PR keys, extents, layout update.
//!
//! The volume tree is the block layout's ([`crate::layout`]) with a BASE volume (a logical
//! unit found by its SCSI designator, with the persistent-reservation key to register) as the
//! leaf instead of SIMPLE; there is no SIMPLE volume here.
//!
//! | RFC 8154 XDR                     | here                                   |
//! |----------------------------------|----------------------------------------|
//! | `pnfs_scsi_base_volume_info4`    | [`ScsiBaseVolume`]                     |
//! | `pnfs_scsi_volume4`              | [`ScsiVolumeNode`]                     |
//! | `pnfs_scsi_deviceaddr4`          | [`ScsiDeviceAddr`]                     |
//! | `pnfs_scsi_extent4`              | [`Extent`] (shared with block)         |
//! | `pnfs_scsi_layout4`              | [`ScsiLayout`]                         |
//! | `pnfs_scsi_range4`               | [`ScsiRange`]                          |
//! | `pnfs_scsi_layoutupdate4`        | [`ScsiLayoutUpdate`]                   |
//!
//! Unlike the block layout, a SCSI LAYOUTCOMMIT lists only file ranges: the server already
//! knows where the data lives.

use crate::layout::{
    validate_extents, DeviceAddr, Extent, ExtentList, LayoutError, LeafVolume, Topology,
    ValidExtents, Volume, VolumeNode, LAYOUT_MAX_EXTENTS,
};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

pub use crate::layout::ExtentState;

/// PNFS_SCSI_VOLUME_SLICE.
pub const PNFS_SCSI_VOLUME_SLICE: u32 = crate::layout::VOLUME_TYPE_SLICE;
/// PNFS_SCSI_VOLUME_CONCAT.
pub const PNFS_SCSI_VOLUME_CONCAT: u32 = crate::layout::VOLUME_TYPE_CONCAT;
/// PNFS_SCSI_VOLUME_STRIPE.
pub const PNFS_SCSI_VOLUME_STRIPE: u32 = crate::layout::VOLUME_TYPE_STRIPE;
/// PNFS_SCSI_VOLUME_BASE.
pub const PNFS_SCSI_VOLUME_BASE: u32 = 4;
/// Longest designator: its length is one byte in the SPC Device Identification VPD page.
pub const SCSI_DESIGNATOR_MAX_BYTES: usize = 255;

/// `pnfs_scsi_code_set`: how the designator bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScsiCodeSet {
    /// PS_CODE_SET_BINARY (1).
    Binary,
    /// PS_CODE_SET_ASCII (2).
    Ascii,
    /// PS_CODE_SET_UTF8 (3).
    Utf8,
}

impl XdrEncode for ScsiCodeSet {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(match self {
            Self::Binary => 1,
            Self::Ascii => 2,
            Self::Utf8 => 3,
        });
    }
}

impl XdrDecode for ScsiCodeSet {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        match dec.u32()? {
            1 => Ok(Self::Binary),
            2 => Ok(Self::Ascii),
            3 => Ok(Self::Utf8),
            value => Err(XdrError::BadEnum {
                what: "pnfs_scsi_code_set",
                value,
            }),
        }
    }
}

/// `pnfs_scsi_designator_type`: which SPC designator identifies the logical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScsiDesignatorType {
    /// PS_DESIGNATOR_T10 (1): T10 vendor ID based.
    T10,
    /// PS_DESIGNATOR_EUI64 (2).
    Eui64,
    /// PS_DESIGNATOR_NAA (3).
    Naa,
    /// PS_DESIGNATOR_NAME (8): SCSI name string.
    Name,
}

impl ScsiDesignatorType {
    /// The wire value (also the SPC designator type code).
    pub fn to_u32(self) -> u32 {
        match self {
            Self::T10 => 1,
            Self::Eui64 => 2,
            Self::Naa => 3,
            Self::Name => 8,
        }
    }
}

impl XdrEncode for ScsiDesignatorType {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.to_u32());
    }
}

impl XdrDecode for ScsiDesignatorType {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        match dec.u32()? {
            1 => Ok(Self::T10),
            2 => Ok(Self::Eui64),
            3 => Ok(Self::Naa),
            8 => Ok(Self::Name),
            value => Err(XdrError::BadEnum {
                what: "pnfs_scsi_designator_type",
                value,
            }),
        }
    }
}

/// `pnfs_scsi_base_volume_info4`: one logical unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScsiBaseVolume {
    /// `sbv_code_set`.
    pub code_set: ScsiCodeSet,
    /// `sbv_designator_type`.
    pub designator_type: ScsiDesignatorType,
    /// `sbv_designator`: the designator bytes as in VPD page 0x83.
    pub designator: Vec<u8>,
    /// `sbv_pr_key`: the persistent-reservation key the client registers before any I/O.
    pub pr_key: u64,
}

impl LeafVolume for ScsiBaseVolume {
    const TYPE_TAG: u32 = PNFS_SCSI_VOLUME_BASE;
    const WHAT: &'static str = "pnfs_scsi_volume_type4";

    fn encode_body(&self, enc: &mut Encoder) {
        self.code_set.encode(enc);
        self.designator_type.encode(enc);
        enc.put_opaque(&self.designator);
        enc.put_u64(self.pr_key);
    }

    fn decode_body(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            code_set: ScsiCodeSet::decode(dec)?,
            designator_type: ScsiDesignatorType::decode(dec)?,
            designator: dec
                .opaque("sbv_designator", SCSI_DESIGNATOR_MAX_BYTES)?
                .to_vec(),
            pr_key: dec.u64()?,
        })
    }

    fn check(&self) -> Result<(), String> {
        if self.designator.is_empty() {
            return Err("BASE volume with an empty designator".into());
        }
        if self.designator.len() > SCSI_DESIGNATOR_MAX_BYTES {
            return Err(format!(
                "designator of {} bytes, limit {SCSI_DESIGNATOR_MAX_BYTES}",
                self.designator.len()
            ));
        }
        if self.pr_key == 0 {
            // Registering key 0 is how a reservation key is removed, so it cannot fence.
            return Err("persistent-reservation key 0".into());
        }
        Ok(())
    }
}

/// `pnfs_scsi_volume4`.
pub type ScsiVolumeNode = VolumeNode<ScsiBaseVolume>;
/// `pnfs_scsi_deviceaddr4` (the `da_addr_body` of a LAYOUT4_SCSI device).
pub type ScsiDeviceAddr = DeviceAddr<ScsiBaseVolume>;
/// A validated SCSI volume topology.
pub type ScsiTopology = Topology<ScsiBaseVolume>;
/// A resolved SCSI volume tree.
pub type ScsiVolume = Volume<ScsiBaseVolume>;
/// `pnfs_scsi_extent4`.
pub type ScsiExtent = Extent;

/// `pnfs_scsi_layout4` (the `loc_body` of a LAYOUT4_SCSI layout).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiLayout {
    /// `sl_extents`.
    pub extents: Vec<Extent>,
}

impl ScsiLayout {
    /// Checks the extents (see [`validate_extents`]).
    pub fn validate(&self) -> Result<ValidExtents, LayoutError> {
        validate_extents(&self.extents)
    }
}

impl XdrEncode for ScsiLayout {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_array(&self.extents);
    }
}

impl XdrDecode for ScsiLayout {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            extents: ExtentList::decode(dec)?.0,
        })
    }
}

/// `pnfs_scsi_range4`: a file range that now holds valid data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScsiRange {
    /// First file byte.
    pub file_offset_bytes: u64,
    /// Bytes.
    pub length_bytes: u64,
}

impl XdrEncode for ScsiRange {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u64(self.file_offset_bytes);
        enc.put_u64(self.length_bytes);
    }
}

impl XdrDecode for ScsiRange {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            file_offset_bytes: dec.u64()?,
            length_bytes: dec.u64()?,
        })
    }
}

/// `pnfs_scsi_layoutupdate4` (the `lou_body` of LAYOUTCOMMIT).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScsiLayoutUpdate {
    /// `slu_commit_list`.
    pub commit_list: Vec<ScsiRange>,
}

impl ScsiLayoutUpdate {
    /// Checks the ranges: nonzero, no overflow, no overlap. Returns them sorted.
    pub fn validate(&self) -> Result<Vec<ScsiRange>, LayoutError> {
        let n = self.commit_list.len();
        if n > LAYOUT_MAX_EXTENTS {
            return Err(LayoutError::TooManyExtents {
                count: n,
                limit: LAYOUT_MAX_EXTENTS,
            });
        }
        for (index, r) in self.commit_list.iter().enumerate() {
            if r.length_bytes == 0 {
                return Err(LayoutError::ZeroLengthExtent { index });
            }
            if r.file_offset_bytes.checked_add(r.length_bytes).is_none() {
                return Err(LayoutError::ExtentOverflow { index });
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (self.commit_list[i].file_offset_bytes, i));
        for pair in order.windows(2) {
            let (a, b) = (self.commit_list[pair[0]], self.commit_list[pair[1]]);
            if b.file_offset_bytes < a.file_offset_bytes + a.length_bytes {
                return Err(LayoutError::OverlappingExtents {
                    first: pair[0],
                    second: pair[1],
                });
            }
        }
        Ok(order.into_iter().map(|i| self.commit_list[i]).collect())
    }
}

impl XdrEncode for ScsiLayoutUpdate {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_array(&self.commit_list);
    }
}

impl XdrDecode for ScsiLayoutUpdate {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            commit_list: dec.array("slu_commit_list", LAYOUT_MAX_EXTENTS)?,
        })
    }
}
