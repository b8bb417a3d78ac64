//! Device (logical volume) resolution: GETDEVICEINFO bodies → volume trees over the volumes
//! the configuration lists, matched by SIMPLE-volume signatures; a cache per device ID that
//! CB_NOTIFY_DEVICEID invalidates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pnfs_proto::layout::block::{BlockDeviceAddr, BlockTopology, SimpleVolume};
use pnfs_proto::layout::VolumeSizes;
use pnfs_proto::nfs4::DeviceId;

use super::volume::VolumeIo;
use super::PnfsError;

/// A logical volume ready for I/O: the validated topology and the leaf volumes it maps to.
#[derive(Debug)]
pub struct ResolvedDevice {
    /// The device ID.
    pub device_id: DeviceId,
    topology: BlockTopology,
    sizes: VolumeSizes,
    leaves: HashMap<u32, Arc<dyn VolumeIo>>,
}

/// One contiguous piece of a logical range on one leaf volume.
#[derive(Debug, Clone)]
pub struct LeafSpan {
    /// The leaf volume.
    pub volume: Arc<dyn VolumeIo>,
    /// Offset on the leaf.
    pub offset_bytes: u64,
    /// Length.
    pub length_bytes: u64,
}

/// Most leaf spans one mapped range may produce (stripes of tiny units over a huge range
/// would otherwise make an unbounded list).
pub const DEVICE_MAX_SPANS_PER_RANGE: usize = 65_536;

impl ResolvedDevice {
    /// Size of the logical volume.
    pub fn size_bytes(&self) -> u64 {
        self.sizes.top_bytes()
    }

    /// The leaf volumes this device uses (for fdatasync on flush).
    pub fn leaf_volumes(&self) -> Vec<Arc<dyn VolumeIo>> {
        self.leaves.values().cloned().collect()
    }

    /// Maps `[offset, offset + length)` of the logical volume to leaf spans, in order.
    pub fn map_range(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> Result<Vec<LeafSpan>, PnfsError> {
        let mut out = Vec::new();
        let mut at = offset_bytes;
        let end = offset_bytes
            .checked_add(length_bytes)
            .ok_or_else(|| PnfsError::Layout("device range overflows".into()))?;
        while at < end {
            if out.len() >= DEVICE_MAX_SPANS_PER_RANGE {
                return Err(PnfsError::Layout(
                    "range maps to too many leaf spans".into(),
                ));
            }
            let m = self
                .topology
                .map(&self.sizes, at)
                .map_err(|e| PnfsError::Layout(format!("device map: {e}")))?;
            let len = m.contiguous_bytes.min(end - at);
            let volume =
                self.leaves.get(&m.leaf).cloned().ok_or_else(|| {
                    PnfsError::Layout(format!("leaf volume {} unresolved", m.leaf))
                })?;
            out.push(LeafSpan {
                volume,
                offset_bytes: m.offset_bytes,
                length_bytes: len,
            });
            at += len;
        }
        Ok(out)
    }
}

/// Reads the signature components of `leaf` on `vol` and compares.
async fn signature_matches(leaf: &SimpleVolume, vol: &Arc<dyn VolumeIo>) -> bool {
    let size = vol.size_bytes();
    for comp in &leaf.signature {
        let Some(off) = comp.absolute_offset(size) else {
            return false;
        };
        match vol.read(off, comp.contents.len()).await {
            Ok(bytes) if bytes == comp.contents => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(volume = vol.name(), error = %e, "signature read failed");
                return false;
            }
        }
    }
    true
}

/// Decodes a GETDEVICEINFO body and matches every SIMPLE leaf against `candidates`.
pub async fn resolve_block_device(
    device_id: DeviceId,
    addr_body: &[u8],
    candidates: &[Arc<dyn VolumeIo>],
) -> Result<ResolvedDevice, PnfsError> {
    let topology = BlockDeviceAddr::decode_validated(addr_body)
        .map_err(|e| PnfsError::Layout(format!("device address: {e}")))?;
    let mut leaves: HashMap<u32, Arc<dyn VolumeIo>> = HashMap::new();
    let leaf_list: Vec<(u32, SimpleVolume)> =
        topology.leaves().map(|(i, l)| (i, l.clone())).collect();
    for (index, leaf) in leaf_list {
        let mut found: Option<Arc<dyn VolumeIo>> = None;
        for vol in candidates {
            if signature_matches(&leaf, vol).await {
                if let Some(prev) = &found {
                    return Err(PnfsError::Layout(format!(
                        "leaf volume {index} matches both {} and {}",
                        prev.name(),
                        vol.name()
                    )));
                }
                found = Some(Arc::clone(vol));
            }
        }
        let vol = found.ok_or_else(|| {
            PnfsError::Layout(format!(
                "no configured volume carries the signature of leaf volume {index}"
            ))
        })?;
        leaves.insert(index, vol);
    }
    let sizes = topology
        .sizes(|i, _| leaves.get(&i).map(|v| v.size_bytes()))
        .map_err(|e| PnfsError::Layout(format!("device sizes: {e}")))?;
    Ok(ResolvedDevice {
        device_id,
        topology,
        sizes,
        leaves,
    })
}

/// Resolved devices by ID.
#[derive(Debug, Default)]
pub struct DeviceCache {
    devices: Mutex<HashMap<DeviceId, Arc<ResolvedDevice>>>,
}

impl DeviceCache {
    /// The cached device, if any.
    pub fn get(&self, id: &DeviceId) -> Option<Arc<ResolvedDevice>> {
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Caches a resolved device.
    pub fn insert(&self, dev: Arc<ResolvedDevice>) {
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dev.device_id, dev);
    }

    /// Forgets a device (CB_NOTIFY_DEVICEID change/delete).
    pub fn invalidate(&self, id: &DeviceId) {
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Every cached device.
    pub fn all(&self) -> Vec<Arc<ResolvedDevice>> {
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
