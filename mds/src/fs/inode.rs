//! Inodes and their record format in the store (XDR, one record per inode).

use std::time::{SystemTime, UNIX_EPOCH};

use pnfs_proto::nfs4::types::NfsTime;
use pnfs_proto::xdr::{Decoder, Encoder, XdrResult};

use super::extents::{ExtState, Extent, MAX_EXTENTS_PER_FILE};

/// The root directory's inode id.
pub const ROOT_ID: u64 = 1;
/// Largest file the server accepts (bytes).
pub const MAX_FILE_BYTES: u64 = 1 << 50;
/// Most inodes the file system holds (every one is kept in memory); CREATE and OPEN past it
/// get NOSPC.
pub const MAX_INODES: usize = 1 << 24;
/// Most hard links of one file; LINK past it gets MLINK.
pub const MAX_LINKS: u32 = 65_000;
/// Longest symlink target.
pub const MAX_SYMLINK_BYTES: usize = 4096;

/// Object type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link with its target.
    Symlink(String),
    /// A device, socket or fifo (RFC 8881 §18.4): its NFSv4 type (NF4BLK, NF4CHR, NF4SOCK or
    /// NF4FIFO) and device numbers (zero but for devices). Only stored: no I/O goes through it.
    Special {
        /// nfs_ftype4.
        ftype: u32,
        /// specdata1 (major).
        major: u32,
        /// specdata2 (minor).
        minor: u32,
    },
}

/// Inode record tag of a [`Kind::Special`].
const KIND_SPECIAL_TAG: u32 = 6;

/// An inode.
#[derive(Debug, Clone)]
pub struct Inode {
    /// Id (also the fileid).
    pub id: u64,
    /// Type.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Access time.
    pub atime: NfsTime,
    /// Modify time.
    pub mtime: NfsTime,
    /// Change time.
    pub ctime: NfsTime,
    /// Change attribute.
    pub change: u64,
    /// Link count.
    pub nlink: u32,
    /// Parent (directories).
    pub parent: u64,
    /// Extent map, sorted and non-overlapping.
    pub extents: Vec<Extent>,
    /// Pending copy-on-write blocks (new blocks not yet committed), sorted.
    pub cow: Vec<Extent>,
}

/// Current time as nfstime4.
pub fn now() -> NfsTime {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    NfsTime {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nseconds: d.subsec_nanos(),
    }
}

fn put_time(e: &mut Encoder, t: NfsTime) {
    e.put_i64(t.seconds);
    e.put_u32(t.nseconds);
}
fn get_time(d: &mut Decoder<'_>) -> XdrResult<NfsTime> {
    Ok(NfsTime {
        seconds: d.i64()?,
        nseconds: d.u32()?,
    })
}
fn put_exts(e: &mut Encoder, v: &[Extent]) {
    e.put_u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
    for x in v {
        e.put_u64(x.file_off);
        e.put_u64(x.len);
        e.put_u64(x.vol_off);
        e.put_u32(match x.state {
            ExtState::Written => 0,
            ExtState::Invalid => 1,
        });
    }
}
fn get_exts(d: &mut Decoder<'_>) -> XdrResult<Vec<Extent>> {
    let n = d.length("extents", MAX_EXTENTS_PER_FILE)?;
    let mut v = Vec::with_capacity(n.min(d.remaining() / 28));
    for _ in 0..n {
        v.push(Extent {
            file_off: d.u64()?,
            len: d.u64()?,
            vol_off: d.u64()?,
            state: if d.u32()? == 0 {
                ExtState::Written
            } else {
                ExtState::Invalid
            },
        });
    }
    Ok(v)
}

impl Inode {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.put_u32(1); // record version
        e.put_u64(self.id);
        match &self.kind {
            Kind::File => e.put_u32(1),
            Kind::Dir => e.put_u32(2),
            Kind::Symlink(t) => {
                e.put_u32(5);
                e.put_str(t);
            }
            Kind::Special {
                ftype,
                major,
                minor,
            } => {
                e.put_u32(KIND_SPECIAL_TAG);
                for v in [*ftype, *major, *minor] {
                    e.put_u32(v);
                }
            }
        }
        for v in [self.mode, self.uid, self.gid, self.nlink] {
            e.put_u32(v);
        }
        e.put_u64(self.size);
        e.put_u64(self.change);
        e.put_u64(self.parent);
        for t in [self.atime, self.mtime, self.ctime] {
            put_time(&mut e, t);
        }
        put_exts(&mut e, &self.extents);
        put_exts(&mut e, &self.cow);
        e.into_inner()
    }

    pub(super) fn decode(b: &[u8]) -> XdrResult<Self> {
        let mut d = Decoder::new(b);
        let _version = d.u32()?;
        let id = d.u64()?;
        let kind = match d.u32()? {
            1 => Kind::File,
            2 => Kind::Dir,
            KIND_SPECIAL_TAG => Kind::Special {
                ftype: d.u32()?,
                major: d.u32()?,
                minor: d.u32()?,
            },
            _ => Kind::Symlink(d.string("symlink", MAX_SYMLINK_BYTES)?),
        };
        let (mode, uid, gid, nlink) = (d.u32()?, d.u32()?, d.u32()?, d.u32()?);
        let (size, change, parent) = (d.u64()?, d.u64()?, d.u64()?);
        let (atime, mtime, ctime) = (get_time(&mut d)?, get_time(&mut d)?, get_time(&mut d)?);
        let extents = get_exts(&mut d)?;
        let cow = get_exts(&mut d)?;
        Ok(Self {
            id,
            kind,
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime,
            change,
            nlink,
            parent,
            extents,
            cow,
        })
    }

    /// True for directories.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// Bytes allocated.
    pub fn used_bytes(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    pub(super) fn touch_data(&mut self) {
        let t = now();
        self.mtime = t;
        self.ctime = t;
        self.change += 1;
    }

    pub(super) fn touch_meta(&mut self) {
        self.ctime = now();
        self.change += 1;
    }
}
