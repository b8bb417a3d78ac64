//! pNFS layout-type specific bodies: RFC 5663 block layout ([`block`]) and RFC 8154 SCSI layout
//! ([`scsi`]).
//!
//! Both layout types describe storage the same way: a device address is a flat array of
//! volumes in which SLICE, CONCAT and STRIPE volumes refer to other volumes by array index and
//! the last volume is the top of the tree; the leaves are SIMPLE volumes (block: found by disk
//! signatures) or BASE volumes (SCSI: found by a SCSI designator). This module holds everything
//! the two share, generic over the leaf type ([`LeafVolume`]):
//!
//! * the wire forms: [`VolumeNode`], [`DeviceAddr`], [`Extent`], [`ExtentState`], [`ExtentList`];
//! * validation, done once after decoding: [`DeviceAddr::validate`] gives a [`Topology`]
//!   (indices in range and only to earlier volumes — so no cycles —, bounded depth and count,
//!   nonzero lengths and stripe units); [`validate_extents`] gives extents sorted by file offset
//!   with no forbidden overlap;
//! * byte mapping: [`Topology::sizes`] derives every volume's size from the leaf sizes (which
//!   are not on the wire) and [`Topology::map`] maps a logical offset on the top volume to
//!   (leaf volume index, offset on the leaf, bytes contiguous from there).

pub mod block;
pub mod scsi;

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use thiserror::Error;

use crate::nfs4::types::DeviceId;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

/// Most volumes one device address may hold (decode and validation limit).
pub const LAYOUT_MAX_VOLUMES: usize = 1024;
/// Most children one CONCAT or STRIPE volume may list.
pub const LAYOUT_MAX_CHILDREN: usize = LAYOUT_MAX_VOLUMES;
/// Deepest volume tree accepted; a leaf has depth 1.
pub const LAYOUT_MAX_DEPTH: u32 = 16;
/// Most extents one layout body or layout update may hold.
pub const LAYOUT_MAX_EXTENTS: usize = 65_536;

/// Wire tag of a SLICE volume (the same in both layout types).
pub const VOLUME_TYPE_SLICE: u32 = 1;
/// Wire tag of a CONCAT volume (the same in both layout types).
pub const VOLUME_TYPE_CONCAT: u32 = 2;
/// Wire tag of a STRIPE volume (the same in both layout types).
pub const VOLUME_TYPE_STRIPE: u32 = 3;

/// What is wrong with a decoded topology, extent list, or an offset to map.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    /// The bytes were not valid XDR for the type.
    #[error(transparent)]
    Xdr(#[from] XdrError),
    /// A device address with no volumes.
    #[error("device address has no volumes")]
    NoVolumes,
    /// More volumes than [`LAYOUT_MAX_VOLUMES`].
    #[error("{count} volumes exceed the limit {limit}")]
    TooManyVolumes {
        /// Volumes on the wire.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A reference past the end of the volume array.
    #[error("volume {volume} refers to volume {child}, but there are only {count}")]
    ReferenceOutOfRange {
        /// The referring volume.
        volume: u32,
        /// The index it names.
        child: u32,
        /// Volumes in the array.
        count: usize,
    },
    /// A volume names itself.
    #[error("volume {volume} refers to itself")]
    SelfReference {
        /// The volume.
        volume: u32,
    },
    /// A volume names a later volume (only earlier volumes may be referenced, which is what
    /// rules out cycles).
    #[error("volume {volume} refers to the later volume {child}")]
    ForwardReference {
        /// The referring volume.
        volume: u32,
        /// The later index it names.
        child: u32,
    },
    /// A CONCAT or STRIPE volume lists the same child twice (its data would alias).
    #[error("volume {volume} lists volume {child} twice")]
    DuplicateReference {
        /// The referring volume.
        volume: u32,
        /// The repeated child.
        child: u32,
    },
    /// A CONCAT or STRIPE volume with no children.
    #[error("volume {volume} has no children")]
    NoChildren {
        /// The volume.
        volume: u32,
    },
    /// The volume tree is deeper than [`LAYOUT_MAX_DEPTH`].
    #[error("volume {volume} nests {depth} levels deep, limit {limit}")]
    TooDeep {
        /// The first volume over the limit.
        volume: u32,
        /// Its depth.
        depth: u32,
        /// The limit.
        limit: u32,
    },
    /// A STRIPE volume with a zero stripe unit.
    #[error("volume {volume} has a zero stripe unit")]
    ZeroStripeUnit {
        /// The volume.
        volume: u32,
    },
    /// A SLICE volume of zero bytes.
    #[error("volume {volume} is a zero-length slice")]
    ZeroLengthSlice {
        /// The volume.
        volume: u32,
    },
    /// A SLICE whose start + length overflows 64 bits.
    #[error("volume {volume}: slice start + length overflows")]
    SliceOverflow {
        /// The volume.
        volume: u32,
    },
    /// A leaf volume's own fields are invalid (no signature, empty designator, ...).
    #[error("volume {volume}: {detail}")]
    BadLeaf {
        /// The volume.
        volume: u32,
        /// What is wrong.
        detail: String,
    },
    /// The size of a leaf volume is not known to the caller.
    #[error("size of leaf volume {volume} is unknown")]
    UnknownLeafSize {
        /// The leaf volume.
        volume: u32,
    },
    /// A slice reaches past the end of the volume it slices.
    #[error(
        "volume {volume}: slice ends at {end_bytes}, past the child's {child_size_bytes} bytes"
    )]
    SliceOutOfRange {
        /// The slice volume.
        volume: u32,
        /// Where the slice ends.
        end_bytes: u64,
        /// Size of the sliced volume.
        child_size_bytes: u64,
    },
    /// The children of a STRIPE volume differ in size (RFC 5663: they MUST be the same size).
    #[error("volume {volume}: striped volumes differ in size ({first_bytes} vs {other_bytes})")]
    StripeSizeMismatch {
        /// The stripe volume.
        volume: u32,
        /// Size of the first child.
        first_bytes: u64,
        /// Size of a child that differs.
        other_bytes: u64,
    },
    /// A volume's size does not fit in 64 bits.
    #[error("volume {volume}: size overflows")]
    SizeOverflow {
        /// The volume.
        volume: u32,
    },
    /// An offset at or past the end of the volume being mapped.
    #[error("offset {offset_bytes} is outside the volume of {size_bytes} bytes")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset_bytes: u64,
        /// Size of the volume.
        size_bytes: u64,
    },
    /// [`VolumeSizes`] computed for another topology.
    #[error("volume sizes do not belong to this topology")]
    SizesMismatch,
    /// More extents than [`LAYOUT_MAX_EXTENTS`].
    #[error("{count} extents exceed the limit {limit}")]
    TooManyExtents {
        /// Extents given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An extent of zero bytes.
    #[error("extent {index} has zero length")]
    ZeroLengthExtent {
        /// Its position in the list as given.
        index: usize,
    },
    /// An extent whose file or storage offset + length overflows 64 bits.
    #[error("extent {index}: offset + length overflows")]
    ExtentOverflow {
        /// Its position in the list as given.
        index: usize,
    },
    /// Two extents cover the same file bytes and are not a copy-on-write pair
    /// (READ_DATA with INVALID_DATA).
    #[error("extents {first} and {second} overlap")]
    OverlappingExtents {
        /// Position (as given) of the extent that starts first.
        first: usize,
        /// Position (as given) of the one that overlaps it.
        second: usize,
    },
}

impl From<LayoutError> for XdrError {
    fn from(e: LayoutError) -> Self {
        match e {
            LayoutError::Xdr(x) => x,
            other => XdrError::Invalid {
                what: "pnfs layout",
                detail: other.to_string(),
            },
        }
    }
}

/// A leaf volume type: SIMPLE for the block layout, BASE for the SCSI layout.
pub trait LeafVolume: Clone + Debug + PartialEq + Eq {
    /// The discriminant of this leaf in the layout type's volume-type enum.
    const TYPE_TAG: u32;
    /// Name of the volume union for error messages.
    const WHAT: &'static str;
    /// Appends the leaf body (after the discriminant).
    fn encode_body(&self, enc: &mut Encoder);
    /// Reads the leaf body (after the discriminant), enforcing its length limits.
    fn decode_body(dec: &mut Decoder<'_>) -> XdrResult<Self>;
    /// Checks the leaf's own fields; the error text ends up in [`LayoutError::BadLeaf`].
    fn check(&self) -> Result<(), String>;
}

/// One entry of a device address's volume array, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeNode<L> {
    /// A leaf: a disk (block SIMPLE) or logical unit (SCSI BASE).
    Leaf(L),
    /// `bsv_start`..`bsv_start + bsv_length` of volume `volume`.
    Slice {
        /// Offset of the slice in the child.
        start_bytes: u64,
        /// Length of the slice.
        length_bytes: u64,
        /// Array index of the sliced volume.
        volume: u32,
    },
    /// The children one after another.
    Concat {
        /// Array indices of the concatenated volumes, in order.
        volumes: Vec<u32>,
    },
    /// Stripe units dealt round-robin over the children.
    Stripe {
        /// Size of one stripe unit.
        stripe_unit_bytes: u64,
        /// Array indices of the striped volumes, in order.
        volumes: Vec<u32>,
    },
}

impl<L> VolumeNode<L> {
    /// The volume indices this node refers to.
    pub fn children(&self) -> &[u32] {
        match self {
            Self::Leaf(_) => &[],
            Self::Slice { volume, .. } => std::slice::from_ref(volume),
            Self::Concat { volumes } | Self::Stripe { volumes, .. } => volumes,
        }
    }
}

impl<L: LeafVolume> XdrEncode for VolumeNode<L> {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Leaf(leaf) => {
                enc.put_u32(L::TYPE_TAG);
                leaf.encode_body(enc);
            }
            Self::Slice {
                start_bytes,
                length_bytes,
                volume,
            } => {
                enc.put_u32(VOLUME_TYPE_SLICE);
                enc.put_u64(*start_bytes);
                enc.put_u64(*length_bytes);
                enc.put_u32(*volume);
            }
            Self::Concat { volumes } => {
                enc.put_u32(VOLUME_TYPE_CONCAT);
                enc.put_array(volumes);
            }
            Self::Stripe {
                stripe_unit_bytes,
                volumes,
            } => {
                enc.put_u32(VOLUME_TYPE_STRIPE);
                enc.put_u64(*stripe_unit_bytes);
                enc.put_array(volumes);
            }
        }
    }
}

impl<L: LeafVolume> XdrDecode for VolumeNode<L> {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let tag = dec.u32()?;
        if tag == L::TYPE_TAG {
            return Ok(Self::Leaf(L::decode_body(dec)?));
        }
        match tag {
            VOLUME_TYPE_SLICE => Ok(Self::Slice {
                start_bytes: dec.u64()?,
                length_bytes: dec.u64()?,
                volume: dec.u32()?,
            }),
            VOLUME_TYPE_CONCAT => Ok(Self::Concat {
                volumes: dec.array("concat volumes", LAYOUT_MAX_CHILDREN)?,
            }),
            VOLUME_TYPE_STRIPE => Ok(Self::Stripe {
                stripe_unit_bytes: dec.u64()?,
                volumes: dec.array("stripe volumes", LAYOUT_MAX_CHILDREN)?,
            }),
            value => Err(XdrError::BadEnum {
                what: L::WHAT,
                value,
            }),
        }
    }
}

/// A device address body (`pnfs_block_deviceaddr4` / `pnfs_scsi_deviceaddr4`): the flat
/// volume array, last entry the top. Decoding checks only XDR and counts; call
/// [`DeviceAddr::validate`] before using it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAddr<L> {
    /// The volumes; the last one is the top-level volume.
    pub volumes: Vec<VolumeNode<L>>,
}

impl<L: LeafVolume> XdrEncode for DeviceAddr<L> {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_array(&self.volumes);
    }
}

impl<L: LeafVolume> XdrDecode for DeviceAddr<L> {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            volumes: dec.array("device address volumes", LAYOUT_MAX_VOLUMES)?,
        })
    }
}

fn index_u32(i: usize) -> u32 {
    // Volume counts are bounded by LAYOUT_MAX_VOLUMES, far below u32::MAX.
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl<L: LeafVolume> DeviceAddr<L> {
    /// Decodes a whole body (no trailing bytes) and validates it.
    pub fn decode_validated(bytes: &[u8]) -> Result<Topology<L>, LayoutError> {
        let addr: Self = crate::xdr::from_bytes(bytes)?;
        addr.into_topology()
    }

    /// Checks the topology (see [`Topology`]) and returns it in validated form.
    pub fn validate(&self) -> Result<Topology<L>, LayoutError> {
        self.clone().into_topology()
    }

    /// Like [`DeviceAddr::validate`], without copying the volumes.
    pub fn into_topology(self) -> Result<Topology<L>, LayoutError> {
        let count = self.volumes.len();
        if count == 0 {
            return Err(LayoutError::NoVolumes);
        }
        if count > LAYOUT_MAX_VOLUMES {
            return Err(LayoutError::TooManyVolumes {
                count,
                limit: LAYOUT_MAX_VOLUMES,
            });
        }
        let mut depth = Vec::with_capacity(count);
        for (i, node) in self.volumes.iter().enumerate() {
            let volume = index_u32(i);
            match node {
                VolumeNode::Leaf(leaf) => {
                    leaf.check()
                        .map_err(|detail| LayoutError::BadLeaf { volume, detail })?;
                }
                VolumeNode::Slice {
                    start_bytes,
                    length_bytes,
                    ..
                } => {
                    if *length_bytes == 0 {
                        return Err(LayoutError::ZeroLengthSlice { volume });
                    }
                    if start_bytes.checked_add(*length_bytes).is_none() {
                        return Err(LayoutError::SliceOverflow { volume });
                    }
                }
                VolumeNode::Concat { volumes } => {
                    if volumes.is_empty() {
                        return Err(LayoutError::NoChildren { volume });
                    }
                }
                VolumeNode::Stripe {
                    stripe_unit_bytes,
                    volumes,
                } => {
                    if volumes.is_empty() {
                        return Err(LayoutError::NoChildren { volume });
                    }
                    if *stripe_unit_bytes == 0 {
                        return Err(LayoutError::ZeroStripeUnit { volume });
                    }
                }
            }
            let children = node.children();
            let mut seen = HashSet::with_capacity(children.len());
            let mut max_child_depth = 0u32;
            for &child in children {
                let child_usize = usize::try_from(child).unwrap_or(usize::MAX);
                if child_usize >= count {
                    return Err(LayoutError::ReferenceOutOfRange {
                        volume,
                        child,
                        count,
                    });
                }
                if child_usize == i {
                    return Err(LayoutError::SelfReference { volume });
                }
                if child_usize > i {
                    return Err(LayoutError::ForwardReference { volume, child });
                }
                if !seen.insert(child) {
                    return Err(LayoutError::DuplicateReference { volume, child });
                }
                let d: u32 = depth[child_usize];
                max_child_depth = max_child_depth.max(d);
            }
            let d = max_child_depth + 1;
            if d > LAYOUT_MAX_DEPTH {
                return Err(LayoutError::TooDeep {
                    volume,
                    depth: d,
                    limit: LAYOUT_MAX_DEPTH,
                });
            }
            depth.push(d);
        }
        Ok(Topology {
            volumes: self.volumes,
            depth,
        })
    }
}

/// A validated volume topology: every reference points to an earlier volume (so there are no
/// cycles), the tree is at most [`LAYOUT_MAX_DEPTH`] deep, there are at most
/// [`LAYOUT_MAX_VOLUMES`] volumes, slices are nonempty and do not overflow, CONCAT/STRIPE
/// volumes have children (each listed once) and stripe units are nonzero. Volumes that the
/// top does not reach are allowed and ignored by [`Topology::map`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology<L> {
    volumes: Vec<VolumeNode<L>>,
    depth: Vec<u32>,
}

/// A resolved volume tree built from a [`Topology`]; children shared between parents are
/// shared (`Arc`), not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Volume<L> {
    /// A leaf, with its index in the flat array.
    Leaf {
        /// Index in the device address.
        index: u32,
        /// The leaf's identification.
        info: L,
    },
    /// A slice of `child`.
    Slice {
        /// Offset of the slice in the child.
        start_bytes: u64,
        /// Length of the slice.
        length_bytes: u64,
        /// The sliced volume.
        child: Arc<Volume<L>>,
    },
    /// Concatenation.
    Concat {
        /// The volumes, in order.
        children: Vec<Arc<Volume<L>>>,
    },
    /// Striping.
    Stripe {
        /// Size of one stripe unit.
        stripe_unit_bytes: u64,
        /// The volumes, in order.
        children: Vec<Arc<Volume<L>>>,
    },
}

/// The size of every volume of one [`Topology`], from [`Topology::sizes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSizes {
    sizes_bytes: Vec<u64>,
}

impl VolumeSizes {
    /// Size of volume `index`, if it exists.
    pub fn get(&self, index: u32) -> Option<u64> {
        self.sizes_bytes.get(usize::try_from(index).ok()?).copied()
    }

    /// Size of the top-level volume.
    pub fn top_bytes(&self) -> u64 {
        self.sizes_bytes.last().copied().unwrap_or(0)
    }
}

/// Where a logical offset of the top volume lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    /// Index (in the device address) of the leaf volume.
    pub leaf: u32,
    /// Byte offset on that leaf.
    pub offset_bytes: u64,
    /// Bytes from the logical offset on that map contiguously onto the same leaf (at least 1).
    pub contiguous_bytes: u64,
}

impl<L: LeafVolume> Topology<L> {
    /// The volumes, as validated.
    pub fn volumes(&self) -> &[VolumeNode<L>] {
        &self.volumes
    }

    /// Index of the top-level volume (the last one).
    pub fn top(&self) -> u32 {
        index_u32(self.volumes.len() - 1)
    }

    /// Depth of the tree under the top volume (a lone leaf is 1).
    pub fn depth(&self) -> u32 {
        self.depth.last().copied().unwrap_or(0)
    }

    /// The volumes back as a wire body.
    pub fn to_device_addr(&self) -> DeviceAddr<L> {
        DeviceAddr {
            volumes: self.volumes.clone(),
        }
    }

    /// Every leaf volume with its index (including any the top does not reach).
    pub fn leaves(&self) -> impl Iterator<Item = (u32, &L)> {
        self.volumes
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v {
                VolumeNode::Leaf(l) => Some((index_u32(i), l)),
                _ => None,
            })
    }

    /// The resolved tree under the top volume.
    pub fn tree(&self) -> Arc<Volume<L>> {
        let mut built: Vec<Arc<Volume<L>>> = Vec::with_capacity(self.volumes.len());
        for (i, node) in self.volumes.iter().enumerate() {
            // Validation guarantees every child index is below i, so it is already built.
            let kids = |v: &[u32]| {
                v.iter()
                    .map(|&c| Arc::clone(&built[c as usize]))
                    .collect::<Vec<_>>()
            };
            let vol = match node {
                VolumeNode::Leaf(info) => Volume::Leaf {
                    index: index_u32(i),
                    info: info.clone(),
                },
                VolumeNode::Slice {
                    start_bytes,
                    length_bytes,
                    volume,
                } => Volume::Slice {
                    start_bytes: *start_bytes,
                    length_bytes: *length_bytes,
                    child: Arc::clone(&built[*volume as usize]),
                },
                VolumeNode::Concat { volumes } => Volume::Concat {
                    children: kids(volumes),
                },
                VolumeNode::Stripe {
                    stripe_unit_bytes,
                    volumes,
                } => Volume::Stripe {
                    stripe_unit_bytes: *stripe_unit_bytes,
                    children: kids(volumes),
                },
            };
            built.push(Arc::new(vol));
        }
        built.pop().expect("a validated topology has a volume")
    }

    /// Computes every volume's size from the leaf sizes, which the caller knows from the
    /// devices it matched (`leaf_size(index, leaf)`, `None` if unknown).
    ///
    /// Slice: its length (it must fit in the child). Concat: the sum. Stripe: the children
    /// must all be the same size `c` (RFC 5663); the size is `n * (c - c % unit)`, the full
    /// stripe rows only.
    pub fn sizes(
        &self,
        mut leaf_size: impl FnMut(u32, &L) -> Option<u64>,
    ) -> Result<VolumeSizes, LayoutError> {
        let mut sizes: Vec<u64> = Vec::with_capacity(self.volumes.len());
        for (i, node) in self.volumes.iter().enumerate() {
            let volume = index_u32(i);
            let size = match node {
                VolumeNode::Leaf(l) => {
                    leaf_size(volume, l).ok_or(LayoutError::UnknownLeafSize { volume })?
                }
                VolumeNode::Slice {
                    start_bytes,
                    length_bytes,
                    volume: child,
                } => {
                    let child_size_bytes = sizes[*child as usize];
                    let end_bytes = start_bytes + length_bytes; // checked in validation
                    if end_bytes > child_size_bytes {
                        return Err(LayoutError::SliceOutOfRange {
                            volume,
                            end_bytes,
                            child_size_bytes,
                        });
                    }
                    *length_bytes
                }
                VolumeNode::Concat { volumes } => volumes
                    .iter()
                    .try_fold(0u64, |acc, &c| acc.checked_add(sizes[c as usize]))
                    .ok_or(LayoutError::SizeOverflow { volume })?,
                VolumeNode::Stripe {
                    stripe_unit_bytes,
                    volumes,
                } => {
                    let first_bytes = sizes[volumes[0] as usize];
                    if let Some(&c) = volumes.iter().find(|&&c| sizes[c as usize] != first_bytes) {
                        return Err(LayoutError::StripeSizeMismatch {
                            volume,
                            first_bytes,
                            other_bytes: sizes[c as usize],
                        });
                    }
                    let rows_bytes = first_bytes - first_bytes % stripe_unit_bytes;
                    rows_bytes
                        .checked_mul(volumes.len() as u64)
                        .ok_or(LayoutError::SizeOverflow { volume })?
                }
            };
            sizes.push(size);
        }
        Ok(VolumeSizes { sizes_bytes: sizes })
    }

    /// Maps `offset_bytes` on the top volume to the leaf that holds it. Pure arithmetic: no
    /// I/O. `sizes` must come from [`Topology::sizes`] on this topology.
    pub fn map(&self, sizes: &VolumeSizes, offset_bytes: u64) -> Result<Mapped, LayoutError> {
        if sizes.sizes_bytes.len() != self.volumes.len() {
            return Err(LayoutError::SizesMismatch);
        }
        let top = self.volumes.len() - 1;
        let size_bytes = sizes.sizes_bytes[top];
        if offset_bytes >= size_bytes {
            return Err(LayoutError::OffsetOutOfRange {
                offset_bytes,
                size_bytes,
            });
        }
        let mut v = top;
        let mut off = offset_bytes;
        let mut run = size_bytes - offset_bytes;
        // Each step goes to a lower index, so this ends within LAYOUT_MAX_DEPTH steps.
        loop {
            match &self.volumes[v] {
                VolumeNode::Leaf(_) => {
                    return Ok(Mapped {
                        leaf: index_u32(v),
                        offset_bytes: off,
                        contiguous_bytes: run,
                    });
                }
                VolumeNode::Slice {
                    start_bytes,
                    volume,
                    ..
                } => {
                    // Within the child when `sizes` belongs to this topology (checked by
                    // `sizes()`); sizes from elsewhere must not overflow into a panic.
                    off = off
                        .checked_add(*start_bytes)
                        .ok_or(LayoutError::SizesMismatch)?;
                    v = *volume as usize;
                }
                VolumeNode::Concat { volumes } => {
                    let mut found = None;
                    for &c in volumes {
                        let child_bytes = sizes.sizes_bytes[c as usize];
                        if off < child_bytes {
                            found = Some(c as usize);
                            run = run.min(child_bytes - off);
                            break;
                        }
                        off -= child_bytes;
                    }
                    // off < sum of children, so some child holds it.
                    v = found.ok_or(LayoutError::SizesMismatch)?;
                }
                VolumeNode::Stripe {
                    stripe_unit_bytes,
                    volumes,
                } => {
                    let unit = *stripe_unit_bytes;
                    let n = volumes.len() as u64;
                    let stripe_no = off / unit;
                    let within = off % unit;
                    let child = volumes[usize::try_from(stripe_no % n).unwrap_or(0)];
                    off = (stripe_no / n) * unit + within;
                    run = run.min(unit - within);
                    v = child as usize;
                }
            }
        }
    }

    /// Convenience: [`Topology::sizes`] then [`Topology::map`]. Callers mapping many offsets
    /// should compute the sizes once.
    pub fn map_offset(
        &self,
        offset_bytes: u64,
        leaf_size: impl FnMut(u32, &L) -> Option<u64>,
    ) -> Result<Mapped, LayoutError> {
        let sizes = self.sizes(leaf_size)?;
        self.map(&sizes, offset_bytes)
    }
}

/// `pnfs_block_extent_state4` / `pnfs_scsi_extent_state4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtentState {
    /// READ_WRITE_DATA (0): valid data, may be read and written.
    ReadWriteData,
    /// READ_DATA (1): valid data, read only (the source in copy-on-write).
    ReadData,
    /// INVALID_DATA (2): allocated, contents undefined: reads see zeros until written.
    InvalidData,
    /// NONE_DATA (3): a hole, no storage; reads see zeros.
    NoneData,
}

impl ExtentState {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::ReadWriteData => 0,
            Self::ReadData => 1,
            Self::InvalidData => 2,
            Self::NoneData => 3,
        }
    }
}

impl XdrEncode for ExtentState {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.to_u32());
    }
}

impl XdrDecode for ExtentState {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        match dec.u32()? {
            0 => Ok(Self::ReadWriteData),
            1 => Ok(Self::ReadData),
            2 => Ok(Self::InvalidData),
            3 => Ok(Self::NoneData),
            value => Err(XdrError::BadEnum {
                what: "extent state",
                value,
            }),
        }
    }
}

/// `pnfs_block_extent4` / `pnfs_scsi_extent4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    /// The device (logical volume) holding the data.
    pub device_id: DeviceId,
    /// First byte of the file covered.
    pub file_offset_bytes: u64,
    /// Bytes covered.
    pub length_bytes: u64,
    /// Offset of the data on the logical volume (meaningless for NONE_DATA).
    pub storage_offset_bytes: u64,
    /// What the data there is.
    pub state: ExtentState,
}

impl Extent {
    /// One past the last file byte, or `None` on overflow.
    pub fn file_end_bytes(&self) -> Option<u64> {
        self.file_offset_bytes.checked_add(self.length_bytes)
    }
}

impl XdrEncode for Extent {
    fn encode(&self, enc: &mut Encoder) {
        self.device_id.encode(enc);
        enc.put_u64(self.file_offset_bytes);
        enc.put_u64(self.length_bytes);
        enc.put_u64(self.storage_offset_bytes);
        self.state.encode(enc);
    }
}

impl XdrDecode for Extent {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            device_id: DeviceId::decode(dec)?,
            file_offset_bytes: dec.u64()?,
            length_bytes: dec.u64()?,
            storage_offset_bytes: dec.u64()?,
            state: ExtentState::decode(dec)?,
        })
    }
}

/// A list of extents as on the wire (`blo_extents<>`, `blu_commit_list<>`, ...), at most
/// [`LAYOUT_MAX_EXTENTS`] long.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtentList(pub Vec<Extent>);

impl XdrEncode for ExtentList {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_array(&self.0);
    }
}

impl XdrDecode for ExtentList {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self(dec.array("extents", LAYOUT_MAX_EXTENTS)?))
    }
}

/// Extents checked by [`validate_extents`]: sorted by file offset (READ_DATA before
/// INVALID_DATA at equal offsets), no overflow, no zero lengths, no forbidden overlap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidExtents(Vec<Extent>);

impl ValidExtents {
    /// The extents, sorted by file offset.
    pub fn as_slice(&self) -> &[Extent] {
        &self.0
    }

    /// The extents, sorted by file offset.
    pub fn into_vec(self) -> Vec<Extent> {
        self.0
    }
}

/// Checks an extent list the way a client must before using it:
/// * each length is nonzero and neither `file_offset + length` nor (except for NONE_DATA)
///   `storage_offset + length` overflows;
/// * extents need not arrive sorted (the result is sorted);
/// * no two extents cover the same file byte, except a READ_DATA extent with an INVALID_DATA
///   extent: that pair is the copy-on-write case of RFC 5663 (read from one, write the other).
pub fn validate_extents(extents: &[Extent]) -> Result<ValidExtents, LayoutError> {
    if extents.len() > LAYOUT_MAX_EXTENTS {
        return Err(LayoutError::TooManyExtents {
            count: extents.len(),
            limit: LAYOUT_MAX_EXTENTS,
        });
    }
    for (index, e) in extents.iter().enumerate() {
        if e.length_bytes == 0 {
            return Err(LayoutError::ZeroLengthExtent { index });
        }
        let storage_ok = e.state == ExtentState::NoneData
            || e.storage_offset_bytes.checked_add(e.length_bytes).is_some();
        if e.file_end_bytes().is_none() || !storage_ok {
            return Err(LayoutError::ExtentOverflow { index });
        }
    }
    let mut order: Vec<usize> = (0..extents.len()).collect();
    order.sort_by_key(|&i| (extents[i].file_offset_bytes, extents[i].state.to_u32(), i));
    // Readers see RW/READ/NONE; writers see RW/INVALID/NONE. Within each class extents must
    // not overlap; READ vs INVALID is the only pair in no common class.
    let classes: [&[ExtentState]; 2] = [
        &[
            ExtentState::ReadWriteData,
            ExtentState::ReadData,
            ExtentState::NoneData,
        ],
        &[
            ExtentState::ReadWriteData,
            ExtentState::InvalidData,
            ExtentState::NoneData,
        ],
    ];
    for class in classes {
        let mut prev: Option<usize> = None;
        for &i in &order {
            if !class.contains(&extents[i].state) {
                continue;
            }
            if let Some(p) = prev {
                let prev_end = extents[p].file_end_bytes().unwrap_or(u64::MAX);
                if extents[i].file_offset_bytes < prev_end {
                    return Err(LayoutError::OverlappingExtents {
                        first: p,
                        second: i,
                    });
                }
            }
            prev = Some(i);
        }
    }
    Ok(ValidExtents(
        order.into_iter().map(|i| extents[i]).collect(),
    ))
}
