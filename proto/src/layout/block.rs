//! RFC 5663 block layout: volume topology (device address), extents, layout update.
//!
//! The wire types are the shared ones of [`crate::layout`] with the SIMPLE volume as leaf:
//!
//! | RFC 5663 XDR                     | here                                   |
//! |----------------------------------|----------------------------------------|
//! | `pnfs_block_sig_component4`      | [`SigComponent`]                       |
//! | `pnfs_block_simple_volume_info4` | [`SimpleVolume`]                       |
//! | `pnfs_block_volume4`             | [`BlockVolumeNode`]                    |
//! | `pnfs_block_deviceaddr4`         | [`BlockDeviceAddr`]                    |
//! | `pnfs_block_extent4`             | [`Extent`] (shared with SCSI)          |
//! | `pnfs_block_layout4`             | [`BlockLayout`]                        |
//! | `pnfs_block_layoutupdate4`       | [`BlockLayoutUpdate`]                  |
//!
//! Decode with [`crate::xdr::from_bytes`], then validate: [`BlockDeviceAddr::validate`] gives
//! a [`BlockTopology`] (resolve with `tree()`, size with `sizes()`, map offsets with `map()`),
//! [`BlockLayout::validate`] gives sorted, non-overlapping extents.

use crate::layout::{
    validate_extents, DeviceAddr, Extent, ExtentList, LayoutError, LeafVolume, Topology,
    ValidExtents, Volume, VolumeNode,
};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrResult};

pub use crate::layout::ExtentState;

/// PNFS_BLOCK_VOLUME_SIMPLE.
pub const PNFS_BLOCK_VOLUME_SIMPLE: u32 = 0;
/// PNFS_BLOCK_VOLUME_SLICE.
pub const PNFS_BLOCK_VOLUME_SLICE: u32 = crate::layout::VOLUME_TYPE_SLICE;
/// PNFS_BLOCK_VOLUME_CONCAT.
pub const PNFS_BLOCK_VOLUME_CONCAT: u32 = crate::layout::VOLUME_TYPE_CONCAT;
/// PNFS_BLOCK_VOLUME_STRIPE.
pub const PNFS_BLOCK_VOLUME_STRIPE: u32 = crate::layout::VOLUME_TYPE_STRIPE;
/// PNFS_BLOCK_MAX_SIG_COMP: most signature components of one SIMPLE volume.
pub const PNFS_BLOCK_MAX_SIG_COMP: usize = 16;
/// Our limit on one signature component's contents (the RFC sets none).
pub const BLOCK_SIG_MAX_CONTENTS_BYTES: usize = 512;

/// `pnfs_block_sig_component4`: bytes expected at an offset of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SigComponent {
    /// Byte offset on the disk of the component's first byte; a negative value counts back
    /// from the end of the disk (the component starts `|offset|` bytes before the end).
    pub sig_offset_bytes: i64,
    /// The bytes that must be there.
    pub contents: Vec<u8>,
}

impl SigComponent {
    /// Absolute byte offset of this component on a disk of `disk_size_bytes`, or `None` if the
    /// component would not fit on the disk.
    pub fn absolute_offset(&self, disk_size_bytes: u64) -> Option<u64> {
        let len = u64::try_from(self.contents.len()).ok()?;
        let start = if self.sig_offset_bytes >= 0 {
            self.sig_offset_bytes.unsigned_abs()
        } else {
            disk_size_bytes.checked_sub(self.sig_offset_bytes.unsigned_abs())?
        };
        (start.checked_add(len)? <= disk_size_bytes).then_some(start)
    }
}

impl XdrEncode for SigComponent {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_i64(self.sig_offset_bytes);
        enc.put_opaque(&self.contents);
    }
}

impl XdrDecode for SigComponent {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            sig_offset_bytes: dec.i64()?,
            contents: dec
                .opaque("bsc_contents", BLOCK_SIG_MAX_CONTENTS_BYTES)?
                .to_vec(),
        })
    }
}

/// `pnfs_block_simple_volume_info4`: a disk, identified by its signature components.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SimpleVolume {
    /// The signature (1 to [`PNFS_BLOCK_MAX_SIG_COMP`] components).
    pub signature: Vec<SigComponent>,
}

impl LeafVolume for SimpleVolume {
    const TYPE_TAG: u32 = PNFS_BLOCK_VOLUME_SIMPLE;
    const WHAT: &'static str = "pnfs_block_volume_type4";

    fn encode_body(&self, enc: &mut Encoder) {
        enc.put_array(&self.signature);
    }

    fn decode_body(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            signature: dec.array("bsv_ds", PNFS_BLOCK_MAX_SIG_COMP)?,
        })
    }

    fn check(&self) -> Result<(), String> {
        if self.signature.is_empty() {
            return Err("SIMPLE volume without a signature".into());
        }
        if self.signature.len() > PNFS_BLOCK_MAX_SIG_COMP {
            return Err(format!(
                "{} signature components, limit {PNFS_BLOCK_MAX_SIG_COMP}",
                self.signature.len()
            ));
        }
        for (i, c) in self.signature.iter().enumerate() {
            if c.contents.is_empty() {
                return Err(format!("signature component {i} is empty"));
            }
            if c.contents.len() > BLOCK_SIG_MAX_CONTENTS_BYTES {
                return Err(format!(
                    "signature component {i} is {} bytes, limit {BLOCK_SIG_MAX_CONTENTS_BYTES}",
                    c.contents.len()
                ));
            }
        }
        Ok(())
    }
}

/// `pnfs_block_volume4`.
pub type BlockVolumeNode = VolumeNode<SimpleVolume>;
/// `pnfs_block_deviceaddr4` (the `da_addr_body` of a LAYOUT4_BLOCK_VOLUME device).
pub type BlockDeviceAddr = DeviceAddr<SimpleVolume>;
/// A validated block volume topology.
pub type BlockTopology = Topology<SimpleVolume>;
/// A resolved block volume tree.
pub type BlockVolume = Volume<SimpleVolume>;
/// `pnfs_block_extent4`.
pub type BlockExtent = Extent;

/// `pnfs_block_layout4` (the `loc_body` of a LAYOUT4_BLOCK_VOLUME layout).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockLayout {
    /// `blo_extents`.
    pub extents: Vec<Extent>,
}

impl BlockLayout {
    /// Checks the extents (see [`validate_extents`]).
    pub fn validate(&self) -> Result<ValidExtents, LayoutError> {
        validate_extents(&self.extents)
    }
}

impl XdrEncode for BlockLayout {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_array(&self.extents);
    }
}

impl XdrDecode for BlockLayout {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            extents: ExtentList::decode(dec)?.0,
        })
    }
}

/// `pnfs_block_layoutupdate4` (the `lou_body` of LAYOUTCOMMIT): extents that now hold valid
/// data (normally formerly INVALID_DATA, sent as READ_WRITE_DATA).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockLayoutUpdate {
    /// `blu_commit_list`.
    pub commit_list: Vec<Extent>,
}

impl BlockLayoutUpdate {
    /// Checks the extents (see [`validate_extents`]).
    pub fn validate(&self) -> Result<ValidExtents, LayoutError> {
        validate_extents(&self.commit_list)
    }
}

impl XdrEncode for BlockLayoutUpdate {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_array(&self.commit_list);
    }
}

impl XdrDecode for BlockLayoutUpdate {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            commit_list: ExtentList::decode(dec)?.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_signature_offset_counts_from_the_end() {
        let c = SigComponent {
            sig_offset_bytes: -512,
            contents: vec![1; 16],
        };
        assert_eq!(c.absolute_offset(4096), Some(3584));
        assert_eq!(c.absolute_offset(100), None);
        let c = SigComponent {
            sig_offset_bytes: 32,
            contents: vec![1; 16],
        };
        assert_eq!(c.absolute_offset(48), Some(32));
        assert_eq!(c.absolute_offset(47), None);
    }
}
