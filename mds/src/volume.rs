//! Volumes: the files/devices that hold file data, their labels and the topology that
//! combines them into one logical volume (RFC 5663 §2.3.1).
//!
//! Every simple volume carries a label the MDS writes itself: [`LABEL_BYTES`] at offset 0
//! (or, if configured, at the end of the device), holding [`LABEL_MAGIC`] and a 16-byte UUID.
//! The signature component handed to clients in GETDEVICEINFO is exactly those 32 bytes at
//! that offset (a negative offset when the label is at the end), so `blkmapd` can find the
//! device. The label area is never handed out for data.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use pnfs_proto::layout::block::{self, BlockDeviceAddr, BlockVolumeNode, SigComponent};

use crate::MdsError;

/// Bytes reserved for a label at the start (or end) of every simple volume.
pub const LABEL_BYTES: u64 = 4096;
/// The first 16 bytes of a label.
pub const LABEL_MAGIC: &[u8; 16] = b"pNFS-MDS-VOL-v1\0";
/// Signature length: magic + UUID.
pub const SIGNATURE_BYTES: usize = 32;
/// Deepest topology accepted.
pub const MAX_TOPOLOGY_DEPTH: u32 = 8;
/// Most nodes in a topology.
pub const MAX_TOPOLOGY_NODES: usize = 64;

/// Where a simple volume's label lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LabelAt {
    /// At byte 0.
    #[default]
    Start,
    /// In the last [`LABEL_BYTES`] of the device (a negative signature offset).
    End,
}

/// How the simple volumes combine (config file `[topology]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Topology {
    /// One of the `--volume`s, by index.
    Simple {
        /// Index into the volume list.
        volume: usize,
    },
    /// A byte range of a child.
    Slice {
        /// Start on the child, bytes.
        start_bytes: u64,
        /// Length, bytes.
        length_bytes: u64,
        /// The child.
        child: Box<Topology>,
    },
    /// Children one after another.
    Concat {
        /// The children.
        children: Vec<Topology>,
    },
    /// Children striped with a unit.
    Stripe {
        /// Stripe unit, bytes.
        unit_bytes: u64,
        /// The children.
        children: Vec<Topology>,
    },
}

/// One opened simple volume.
#[derive(Debug)]
pub struct SimpleVolume {
    /// The path given.
    pub path: PathBuf,
    /// Open for read and write.
    pub file: File,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Label UUID.
    pub uuid: [u8; 16],
    /// Label position.
    pub label_at: LabelAt,
}

impl SimpleVolume {
    /// Opens `path`, reading its label or writing a new one.
    pub fn open(path: PathBuf, label_at: LabelAt) -> Result<Self, MdsError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| MdsError::Volume(format!("{}: {e}", path.display())))?;
        let size_bytes = device_size(&file)
            .map_err(|e| MdsError::Volume(format!("{}: size: {e}", path.display())))?;
        if size_bytes < 4 * LABEL_BYTES {
            return Err(MdsError::Volume(format!(
                "{}: {size_bytes} bytes is too small",
                path.display()
            )));
        }
        let label_off = match label_at {
            LabelAt::Start => 0,
            LabelAt::End => size_bytes - LABEL_BYTES,
        };
        let mut label = [0u8; SIGNATURE_BYTES];
        file.read_exact_at(&mut label, label_off)
            .map_err(|e| MdsError::Volume(format!("{}: read label: {e}", path.display())))?;
        let uuid = if &label[..16] == LABEL_MAGIC {
            let mut u = [0u8; 16];
            u.copy_from_slice(&label[16..]);
            u
        } else {
            let u: [u8; 16] = rand::random();
            let mut block = vec![0u8; usize::try_from(LABEL_BYTES).unwrap_or(4096)];
            block[..16].copy_from_slice(LABEL_MAGIC);
            block[16..32].copy_from_slice(&u);
            file.write_all_at(&block, label_off)
                .and_then(|()| file.sync_all())
                .map_err(|e| MdsError::Volume(format!("{}: write label: {e}", path.display())))?;
            u
        };
        Ok(Self {
            path,
            file,
            size_bytes,
            uuid,
            label_at,
        })
    }

    fn label_range(&self) -> (u64, u64) {
        match self.label_at {
            LabelAt::Start => (0, LABEL_BYTES),
            LabelAt::End => (self.size_bytes - LABEL_BYTES, self.size_bytes),
        }
    }
}

fn device_size(file: &File) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    // Block devices report 0 in metadata; seeking to the end gives the size.
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::End(0))
}

/// A piece of a logical range on one simple volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Simple volume index.
    pub volume: usize,
    /// Offset on it.
    pub offset_bytes: u64,
    /// Length.
    pub len_bytes: u64,
}

/// The logical volume: simple volumes plus the topology over them.
#[derive(Debug)]
pub struct LogicalVolume {
    /// Simple volumes, by index.
    pub volumes: Vec<SimpleVolume>,
    /// The topology.
    pub topology: Topology,
    /// Logical size in bytes.
    pub size_bytes: u64,
}

impl LogicalVolume {
    /// A canonical text form of the layout: the topology with each simple volume named by its
    /// label's UUID (not its position on the command line), e.g.
    /// `concat(simple(3f…),slice(0+1048576,simple(9a…)))`. The store records it at creation
    /// and refuses to open with another one: every file's block map is an offset in this
    /// logical volume, so a changed topology or volume set would misplace all data.
    pub fn fingerprint(&self) -> String {
        fn uuid_hex(u: &[u8; 16]) -> String {
            u.iter().map(|b| format!("{b:02x}")).collect()
        }
        fn walk(t: &Topology, vols: &[SimpleVolume], out: &mut String) {
            let list = |name: &str, extra: String, children: &[Topology], out: &mut String| {
                out.push_str(name);
                out.push('(');
                out.push_str(&extra);
                for (i, c) in children.iter().enumerate() {
                    if i > 0 || !extra.is_empty() {
                        out.push(',');
                    }
                    walk(c, vols, out);
                }
                out.push(')');
            };
            match t {
                Topology::Simple { volume } => {
                    let id = vols
                        .get(*volume)
                        .map_or_else(|| format!("#{volume}"), |v| uuid_hex(&v.uuid));
                    out.push_str(&format!("simple({id})"));
                }
                Topology::Slice {
                    start_bytes,
                    length_bytes,
                    child,
                } => list(
                    "slice",
                    format!("{start_bytes}+{length_bytes}"),
                    std::slice::from_ref(child.as_ref()),
                    out,
                ),
                Topology::Concat { children } => list("concat", String::new(), children, out),
                Topology::Stripe {
                    unit_bytes,
                    children,
                } => list("stripe", format!("{unit_bytes}"), children, out),
            }
        }
        let mut out = String::new();
        walk(&self.topology, &self.volumes, &mut out);
        out
    }

    /// Validates `topology` against `volumes`.
    pub fn new(volumes: Vec<SimpleVolume>, topology: Topology) -> Result<Self, MdsError> {
        let mut nodes = 0usize;
        let mut used = vec![false; volumes.len()];
        let size_bytes = validate(&topology, &volumes, 0, &mut nodes, &mut used)?;
        Ok(Self {
            volumes,
            topology,
            size_bytes,
        })
    }

    /// Splits a logical range into pieces on simple volumes.
    pub fn map(&self, offset_bytes: u64, len_bytes: u64) -> Vec<Piece> {
        let mut out = Vec::new();
        map_node(
            &self.topology,
            &self.volumes,
            offset_bytes,
            len_bytes,
            &mut out,
        );
        out
    }

    /// True when any byte of the logical range lies in a label area.
    pub fn touches_label(&self, offset_bytes: u64, len_bytes: u64) -> bool {
        self.map(offset_bytes, len_bytes).iter().any(|p| {
            let (a, b) = self.volumes[p.volume].label_range();
            p.offset_bytes < b && p.offset_bytes + p.len_bytes > a
        })
    }

    /// Reads a logical range.
    pub fn read(&self, offset_bytes: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut at = 0usize;
        for p in self.map(offset_bytes, buf.len() as u64) {
            let n = usize::try_from(p.len_bytes).unwrap_or(usize::MAX);
            self.volumes[p.volume]
                .file
                .read_exact_at(&mut buf[at..at + n], p.offset_bytes)?;
            at += n;
        }
        Ok(())
    }

    /// Writes a logical range (not synced).
    pub fn write(&self, offset_bytes: u64, buf: &[u8]) -> std::io::Result<()> {
        let mut at = 0usize;
        for p in self.map(offset_bytes, buf.len() as u64) {
            let n = usize::try_from(p.len_bytes).unwrap_or(usize::MAX);
            self.volumes[p.volume]
                .file
                .write_all_at(&buf[at..at + n], p.offset_bytes)?;
            at += n;
        }
        Ok(())
    }

    /// Makes every write durable.
    pub fn sync(&self) -> std::io::Result<()> {
        for v in &self.volumes {
            v.file.sync_data()?;
        }
        Ok(())
    }

    /// The `pnfs_block_deviceaddr4` of the logical volume: the volume array, children before
    /// their parents, the top volume last.
    pub fn device_addr(&self) -> BlockDeviceAddr {
        let mut volumes = Vec::new();
        device_node(&self.topology, &self.volumes, &mut volumes);
        BlockDeviceAddr { volumes }
    }
}

fn validate(
    t: &Topology,
    vols: &[SimpleVolume],
    depth: u32,
    nodes: &mut usize,
    used: &mut [bool],
) -> Result<u64, MdsError> {
    *nodes += 1;
    if depth > MAX_TOPOLOGY_DEPTH || *nodes > MAX_TOPOLOGY_NODES {
        return Err(MdsError::Config("topology too deep or too large".into()));
    }
    match t {
        Topology::Simple { volume } => {
            let v = vols
                .get(*volume)
                .ok_or_else(|| MdsError::Config(format!("topology: no volume {volume}")))?;
            if std::mem::replace(&mut used[*volume], true) {
                return Err(MdsError::Config(format!(
                    "topology: volume {volume} used twice"
                )));
            }
            Ok(v.size_bytes)
        }
        Topology::Slice {
            start_bytes,
            length_bytes,
            child,
        } => {
            let s = validate(child, vols, depth + 1, nodes, used)?;
            if start_bytes.checked_add(*length_bytes).is_none_or(|e| e > s) || *length_bytes == 0 {
                return Err(MdsError::Config("topology: slice out of range".into()));
            }
            Ok(*length_bytes)
        }
        Topology::Concat { children } => {
            if children.is_empty() {
                return Err(MdsError::Config("topology: empty concat".into()));
            }
            let mut total = 0u64;
            for c in children {
                total += validate(c, vols, depth + 1, nodes, used)?;
            }
            Ok(total)
        }
        Topology::Stripe {
            unit_bytes,
            children,
        } => {
            if children.is_empty() || *unit_bytes == 0 || unit_bytes % 4096 != 0 {
                return Err(MdsError::Config(
                    "topology: stripe needs children and a unit that is a multiple of 4096".into(),
                ));
            }
            let mut min = u64::MAX;
            for c in children {
                min = min.min(validate(c, vols, depth + 1, nodes, used)?);
            }
            let units = min / unit_bytes;
            Ok(units * unit_bytes * children.len() as u64)
        }
    }
}

fn node_size(t: &Topology, vols: &[SimpleVolume]) -> u64 {
    match t {
        Topology::Simple { volume } => vols[*volume].size_bytes,
        Topology::Slice { length_bytes, .. } => *length_bytes,
        Topology::Concat { children } => children.iter().map(|c| node_size(c, vols)).sum(),
        Topology::Stripe {
            unit_bytes,
            children,
        } => {
            let min = children
                .iter()
                .map(|c| node_size(c, vols))
                .min()
                .unwrap_or(0);
            (min / unit_bytes) * unit_bytes * children.len() as u64
        }
    }
}

fn map_node(t: &Topology, vols: &[SimpleVolume], off: u64, len: u64, out: &mut Vec<Piece>) {
    if len == 0 {
        return;
    }
    match t {
        Topology::Simple { volume } => out.push(Piece {
            volume: *volume,
            offset_bytes: off,
            len_bytes: len,
        }),
        Topology::Slice {
            start_bytes, child, ..
        } => map_node(child, vols, start_bytes + off, len, out),
        Topology::Concat { children } => {
            let mut base = 0u64;
            let (mut off, mut len) = (off, len);
            for c in children {
                let s = node_size(c, vols);
                if off < base + s && len > 0 {
                    let n = len.min(base + s - off);
                    map_node(c, vols, off - base, n, out);
                    off += n;
                    len -= n;
                }
                base += s;
            }
        }
        Topology::Stripe {
            unit_bytes,
            children,
        } => {
            let n = children.len() as u64;
            let (mut off, mut len) = (off, len);
            while len > 0 {
                let unit_no = off / unit_bytes;
                let in_unit = off % unit_bytes;
                let take = len.min(unit_bytes - in_unit);
                let child = usize::try_from(unit_no % n).unwrap_or(0);
                let child_off = (unit_no / n) * unit_bytes + in_unit;
                map_node(&children[child], vols, child_off, take, out);
                off += take;
                len -= take;
            }
        }
    }
}

/// Appends the volumes of `t` (children first) and returns the index of `t`.
/// Appends `t` (after its children) to `out` and returns its index there.
fn device_node(t: &Topology, vols: &[SimpleVolume], out: &mut Vec<BlockVolumeNode>) -> u32 {
    let node = match t {
        Topology::Simple { volume } => {
            let v = &vols[*volume];
            let sig_offset_bytes: i64 = match v.label_at {
                LabelAt::Start => 0,
                LabelAt::End => -i64::try_from(LABEL_BYTES).unwrap_or(4096),
            };
            let mut contents = Vec::with_capacity(SIGNATURE_BYTES);
            contents.extend_from_slice(LABEL_MAGIC);
            contents.extend_from_slice(&v.uuid);
            BlockVolumeNode::Leaf(block::SimpleVolume {
                signature: vec![SigComponent {
                    sig_offset_bytes,
                    contents,
                }],
            })
        }
        Topology::Slice {
            start_bytes,
            length_bytes,
            child,
        } => BlockVolumeNode::Slice {
            start_bytes: *start_bytes,
            length_bytes: *length_bytes,
            volume: device_node(child, vols, out),
        },
        Topology::Concat { children } => BlockVolumeNode::Concat {
            volumes: children.iter().map(|c| device_node(c, vols, out)).collect(),
        },
        Topology::Stripe {
            unit_bytes,
            children,
        } => BlockVolumeNode::Stripe {
            stripe_unit_bytes: *unit_bytes,
            volumes: children.iter().map(|c| device_node(c, vols, out)).collect(),
        },
    };
    out.push(node);
    u32::try_from(out.len() - 1).unwrap_or(u32::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn vol(dir: &std::path::Path, name: &str, size: u64, at: LabelAt) -> SimpleVolume {
        let p = dir.join(name);
        let f = File::create(&p).unwrap();
        f.set_len(size).unwrap();
        SimpleVolume::open(p, at).unwrap()
    }

    #[test]
    fn label_is_written_once_and_reread() {
        let d = tempdir();
        let v = vol(&d, "a", 1 << 20, LabelAt::End);
        let uuid = v.uuid;
        drop(v);
        let v = SimpleVolume::open(d.join("a"), LabelAt::End).unwrap();
        assert_eq!(v.uuid, uuid);
        let mut b = [0u8; 16];
        v.file.read_exact_at(&mut b, (1 << 20) - 4096).unwrap();
        assert_eq!(&b, LABEL_MAGIC);
    }

    #[test]
    fn stripe_and_concat_map_to_the_right_devices() {
        let d = tempdir();
        let vols = vec![
            vol(&d, "a", 1 << 20, LabelAt::Start),
            vol(&d, "b", 1 << 20, LabelAt::Start),
            vol(&d, "c", 1 << 20, LabelAt::Start),
        ];
        let t = Topology::Concat {
            children: vec![
                Topology::Stripe {
                    unit_bytes: 65536,
                    children: vec![
                        Topology::Simple { volume: 0 },
                        Topology::Simple { volume: 1 },
                    ],
                },
                Topology::Slice {
                    start_bytes: 4096,
                    length_bytes: 65536,
                    child: Box::new(Topology::Simple { volume: 2 }),
                },
            ],
        };
        let lv = LogicalVolume::new(vols, t).unwrap();
        assert_eq!(lv.size_bytes, (2 << 20) + 65536);
        assert_eq!(
            lv.map(65536 + 10, 20),
            vec![Piece {
                volume: 1,
                offset_bytes: 10,
                len_bytes: 20
            }]
        );
        assert_eq!(
            lv.map(2 << 20, 10),
            vec![Piece {
                volume: 2,
                offset_bytes: 4096,
                len_bytes: 10
            }]
        );
        assert!(lv.touches_label(0, 1));
        assert!(lv.touches_label(65536, 1));
        assert!(!lv.touches_label(2 << 20, 4096));
        let addr = lv.device_addr();
        assert_eq!(addr.volumes.len(), 6);
        // What clients get is a topology the protocol crate accepts.
        let body = pnfs_proto::xdr::to_bytes(&addr);
        let topo = BlockDeviceAddr::decode_validated(&body).unwrap();
        assert_eq!(topo.volumes().len(), 6);
    }

    pub(crate) fn tempdir() -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "pnfs-mds-test-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        p
    }
}
