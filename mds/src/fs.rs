//! The exported file system: namespace, per-file extent maps, the block allocator, and their
//! persistence in redb.
//!
//! The whole metadata set is kept in memory for lookups and mirrored in a redb database.
//! Every change is built in memory and then written in ONE redb write transaction
//! ([`Fs::commit`]) before the request is answered. If a commit ever fails the in-memory copy
//! can no longer be trusted, so the file system turns itself read-only (every later change gets
//! NFS4ERR_SERVERFAULT) instead of answering from state that is not on disk.
//!
//! The free-space map is not stored: it is derived at start from the extent maps (everything in
//! the logical volume that no extent uses and no label covers is free), so it can never
//! disagree with them after a crash.
//!
//! Extent maps have a state granularity of [`SECTOR_BYTES`] (4 KiB): a client may commit part of
//! an allocation block. Allocation is in units of the configured block size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pnfs_proto::nfs4::types::{NfsStat, NfsTime};
use pnfs_proto::xdr::{Decoder, Encoder, XdrResult};
use redb::{Database, ReadableTable, TableDefinition};

use crate::volume::LogicalVolume;
use crate::MdsError;

mod data;
pub use data::Durability;

/// State granularity of extent maps.
pub const SECTOR_BYTES: u64 = 4096;
/// The root directory's inode id.
pub const ROOT_ID: u64 = 1;
/// Largest file the server accepts (bytes).
pub const MAX_FILE_BYTES: u64 = 1 << 50;
/// Longest symlink target.
pub const MAX_SYMLINK_BYTES: usize = 4096;
/// Most extents one file may have (keeps records and layouts bounded).
pub const MAX_EXTENTS_PER_FILE: usize = 1 << 20;
/// Most truncations remembered per file for fencing late LAYOUTCOMMITs; older ones are folded
/// into the oldest kept one (which can only make the fence stricter).
pub const MAX_CUTS_PER_FILE: usize = 64;

const INODES: TableDefinition<u64, &[u8]> = TableDefinition::new("inodes");
const DIRENTS: TableDefinition<(u64, &str), u64> = TableDefinition::new("dirents");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CLIENTS: TableDefinition<&[u8], u64> = TableDefinition::new("clients");
const SHARED: TableDefinition<u64, u32> = TableDefinition::new("shared_refs");
/// `volume_layout` → [`LogicalVolume::fingerprint`] of the volume the store was created on.
const LAYOUT: TableDefinition<&str, &str> = TableDefinition::new("volume_layout");

/// State of an extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtState {
    /// Holds data.
    Written,
    /// Allocated, never written: reads as zeros (RFC 5663 INVALID_DATA).
    Invalid,
}

/// A mapping from a file range to a logical-volume range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// File offset.
    pub file_off: u64,
    /// Length.
    pub len: u64,
    /// Logical volume offset.
    pub vol_off: u64,
    /// State.
    pub state: ExtState,
}

impl Extent {
    fn end(&self) -> u64 {
        self.file_off + self.len
    }
}

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
    fn encode(&self) -> Vec<u8> {
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

    fn decode(b: &[u8]) -> XdrResult<Self> {
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

    fn touch_data(&mut self) {
        let t = now();
        self.mtime = t;
        self.ctime = t;
        self.change += 1;
    }

    fn touch_meta(&mut self) {
        self.ctime = now();
        self.change += 1;
    }
}

/// Set of records one change touches.
#[derive(Debug, Default)]
pub struct Tx {
    inodes: BTreeSet<u64>,
    deleted: BTreeSet<u64>,
    dirent_put: Vec<(u64, String, u64)>,
    dirent_del: Vec<(u64, String)>,
    shared: BTreeSet<u64>,
}

/// Attributes given at creation or by SETATTR.
#[derive(Debug, Clone, Default)]
pub struct SetAttrs {
    /// New size.
    pub size: Option<u64>,
    /// New mode.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New atime (None inside = server time).
    pub atime: Option<Option<NfsTime>>,
    /// New mtime (None inside = server time).
    pub mtime: Option<Option<NfsTime>>,
}

/// A piece of a layout as computed from the extent map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutPiece {
    /// File offset.
    pub file_off: u64,
    /// Length.
    pub len: u64,
    /// Volume offset (0 for holes).
    pub vol_off: u64,
    /// RFC 5663 extent state: 0 READ_WRITE, 1 READ, 2 INVALID, 3 NONE.
    pub es: u32,
}

/// An RW layout segment the committing client holds, with the truncation generation
/// ([`Fs::cut_gen`]) current when it was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// First file byte.
    pub off: u64,
    /// End (exclusive).
    pub end: u64,
    /// [`Fs::cut_gen`] at the LAYOUTGET that granted it.
    pub gen: u64,
}

/// The file system.
#[derive(Debug)]
pub struct Fs {
    db: Database,
    /// The logical volume.
    pub vol: LogicalVolume,
    /// Allocation unit, bytes.
    pub block_bytes: u64,
    inodes: HashMap<u64, Inode>,
    dirs: HashMap<u64, BTreeMap<String, u64>>,
    free: BTreeMap<u64, u64>,
    shared: BTreeMap<u64, u32>,
    next_id: u64,
    /// Boot epoch (incremented at every start).
    pub epoch: u64,
    broken: bool,
    free_bytes: u64,
    /// Truncation generation: bumped by every truncation that shrinks a file (in memory only:
    /// layouts do not survive a restart, reclaimed commits come before any new truncation).
    cut_gen: u64,
    /// Per file, its truncations since start as (generation, new size), oldest first.
    cuts: HashMap<u64, Vec<(u64, u64)>>,
    /// Files whose last name went while they were open: they keep their inode (nlink 0) and
    /// blocks until [`Fs::release_orphan`], so the opener can go on using its file handle and
    /// stateid (CLOSE, RFC 8881 §18.2, must still work), as on POSIX. Any left at a restart are
    /// freed when the store is loaded.
    orphans: BTreeSet<u64>,
    /// Files whose map or size an UNSTABLE write changed in memory only (see
    /// [`data`]): written to the store by the next [`Fs::commit`].
    unstable: BTreeSet<u64>,
    /// Data was written to the volume since its last sync.
    volume_dirty: bool,
}

fn sfault<E: std::fmt::Display>(e: E) -> NfsStat {
    tracing::error!("store: {e}");
    NfsStat::SERVERFAULT
}

fn round_up(v: u64, unit: u64) -> u64 {
    v.div_ceil(unit) * unit
}

impl Fs {
    /// Opens (or creates) the store in `state_dir` over `vol`.
    pub fn open(state_dir: &Path, vol: LogicalVolume, block_bytes: u64) -> Result<Self, MdsError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| MdsError::Store(format!("{}: {e}", state_dir.display())))?;
        let db = Database::create(state_dir.join("mds.redb"))
            .map_err(|e| MdsError::Store(e.to_string()))?;
        let mut fs = Self {
            db,
            vol,
            block_bytes,
            inodes: HashMap::new(),
            dirs: HashMap::new(),
            free: BTreeMap::new(),
            shared: BTreeMap::new(),
            next_id: ROOT_ID + 1,
            epoch: 0,
            broken: false,
            free_bytes: 0,
            cut_gen: 0,
            cuts: HashMap::new(),
            orphans: BTreeSet::new(),
            unstable: BTreeSet::new(),
            volume_dirty: false,
        };
        fs.load().map_err(|e| MdsError::Store(e.to_string()))?;
        // Files removed while open before the restart: nobody has them open any more.
        let left: Vec<u64> = fs
            .inodes
            .values()
            .filter(|i| i.nlink == 0 && i.id != ROOT_ID)
            .map(|i| i.id)
            .collect();
        for id in left {
            fs.orphans.insert(id);
            fs.release_orphan(id)
                .map_err(|e| MdsError::Store(format!("freeing removed file {id}: {e}")))?;
        }
        Ok(fs)
    }

    fn load(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let w = self.db.begin_write()?;
        {
            let mut meta = w.open_table(META)?;
            let epoch = meta.get("epoch")?.map(|v| v.value()).unwrap_or(0) + 1;
            meta.insert("epoch", epoch)?;
            self.epoch = epoch;
            if let Some(b) = meta.get("block_bytes")?.map(|v| v.value()) {
                if b != self.block_bytes {
                    return Err(format!(
                        "the store was created with block size {b}, not {}",
                        self.block_bytes
                    )
                    .into());
                }
            }
            meta.insert("block_bytes", self.block_bytes)?;
            let mut layout = w.open_table(LAYOUT)?;
            let here = self.vol.fingerprint();
            let recorded = layout.get("volume_layout")?.map(|v| v.value().to_owned());
            match recorded {
                Some(r) if r != here => {
                    return Err(format!(
                        "the store was created on the volume layout {r}, but the volumes and \
                         topology given now make {here}: every file's data would be read from \
                         the wrong place. Start with the original volumes and topology (the \
                         layout names each volume by its label's UUID)"
                    )
                    .into());
                }
                Some(_) => {}
                None => {
                    layout.insert("volume_layout", here.as_str())?;
                }
            }
            self.next_id = meta
                .get("next_id")?
                .map(|v| v.value())
                .unwrap_or(ROOT_ID + 1);
            let mut inodes = w.open_table(INODES)?;
            if inodes.get(ROOT_ID)?.is_none() {
                let t = now();
                let root = Inode {
                    id: ROOT_ID,
                    kind: Kind::Dir,
                    mode: 0o777,
                    uid: 0,
                    gid: 0,
                    size: 0,
                    atime: t,
                    mtime: t,
                    ctime: t,
                    change: 1,
                    nlink: 2,
                    parent: ROOT_ID,
                    extents: Vec::new(),
                    cow: Vec::new(),
                };
                inodes.insert(ROOT_ID, root.encode().as_slice())?;
            }
            w.open_table(DIRENTS)?;
            w.open_table(CLIENTS)?;
            w.open_table(SHARED)?;
        }
        w.commit()?;
        let r = self.db.begin_read()?;
        for item in r.open_table(INODES)?.iter()? {
            let (k, v) = item?;
            let ino = Inode::decode(v.value()).map_err(|e| format!("inode {}: {e}", k.value()))?;
            if ino.is_dir() {
                self.dirs.entry(ino.id).or_default();
            }
            self.inodes.insert(k.value(), ino);
        }
        for item in r.open_table(DIRENTS)?.iter()? {
            let (k, v) = item?;
            let (dir, name) = k.value();
            self.dirs
                .entry(dir)
                .or_default()
                .insert(name.to_owned(), v.value());
        }
        for item in r.open_table(SHARED)?.iter()? {
            let (k, v) = item?;
            self.shared.insert(k.value(), v.value());
        }
        self.rebuild_free();
        Ok(())
    }

    fn rebuild_free(&mut self) {
        let bs = self.block_bytes;
        let mut used: BTreeSet<u64> = BTreeSet::new();
        for ino in self.inodes.values() {
            for e in ino.extents.iter().chain(ino.cow.iter()) {
                let mut b = e.vol_off / bs * bs;
                while b < e.vol_off + e.len {
                    used.insert(b);
                    b += bs;
                }
            }
        }
        self.free.clear();
        self.free_bytes = 0;
        let nblocks = self.vol.size_bytes / bs;
        let mut run: Option<(u64, u64)> = None;
        for i in 0..nblocks {
            let b = i * bs;
            let ok = !used.contains(&b) && !self.vol.touches_label(b, bs);
            match (&mut run, ok) {
                (Some((_, l)), true) => *l += bs,
                (None, true) => run = Some((b, bs)),
                (Some(_), false) => {
                    let (s, l) = run.take().unwrap_or_default();
                    self.free.insert(s, l);
                    self.free_bytes += l;
                }
                (None, false) => {}
            }
        }
        if let Some((s, l)) = run {
            self.free.insert(s, l);
            self.free_bytes += l;
        }
    }

    /// Writes the records in `tx` in one redb transaction, with the files changed by UNSTABLE
    /// writes since the last one (their data synced first: a map in the store never points
    /// at data that is not on the volume).
    pub fn commit(&mut self, mut tx: Tx) -> Result<(), NfsStat> {
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        if !self.unstable.is_empty() {
            if let Err(e) = self.sync_volume() {
                // The caller's change is already in memory: as with a failed transaction.
                self.broken = true;
                return Err(e);
            }
            tx.inodes.extend(std::mem::take(&mut self.unstable));
        }
        let r = (|| -> Result<(), Box<dyn std::error::Error>> {
            let w = self.db.begin_write()?;
            {
                let mut inodes = w.open_table(INODES)?;
                for id in &tx.deleted {
                    inodes.remove(*id)?;
                }
                for id in &tx.inodes {
                    if let Some(ino) = self.inodes.get(id) {
                        inodes.insert(*id, ino.encode().as_slice())?;
                    }
                }
                let mut d = w.open_table(DIRENTS)?;
                for (dir, name) in &tx.dirent_del {
                    d.remove((*dir, name.as_str()))?;
                }
                for (dir, name, id) in &tx.dirent_put {
                    d.insert((*dir, name.as_str()), *id)?;
                }
                let mut s = w.open_table(SHARED)?;
                for b in &tx.shared {
                    match self.shared.get(b) {
                        Some(&n) if n > 1 => {
                            s.insert(*b, n)?;
                        }
                        _ => {
                            s.remove(*b)?;
                        }
                    }
                }
                let mut meta = w.open_table(META)?;
                meta.insert("next_id", self.next_id)?;
            }
            w.commit()?;
            Ok(())
        })();
        r.map_err(|e| {
            self.broken = true;
            sfault(e)
        })
    }

    /// Records that a client owner holds state (for reclaim after restart).
    pub fn record_client(&mut self, owner: &[u8], present: bool) -> Result<(), NfsStat> {
        let r = (|| -> Result<(), Box<dyn std::error::Error>> {
            let w = self.db.begin_write()?;
            {
                let mut t = w.open_table(CLIENTS)?;
                if present {
                    t.insert(owner, self.epoch)?;
                } else {
                    t.remove(owner)?;
                }
            }
            w.commit()?;
            Ok(())
        })();
        r.map_err(sfault)
    }

    /// Client owners recorded by earlier boots.
    pub fn known_clients(&self) -> Result<Vec<Vec<u8>>, MdsError> {
        let r = (|| -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
            let rt = self.db.begin_read()?;
            let t = rt.open_table(CLIENTS)?;
            let mut v = Vec::new();
            for item in t.iter()? {
                let (k, _) = item?;
                v.push(k.value().to_vec());
            }
            Ok(v)
        })();
        r.map_err(|e| MdsError::Store(e.to_string()))
    }

    /// An inode.
    pub fn get(&self, id: u64) -> Result<&Inode, NfsStat> {
        self.inodes.get(&id).ok_or(NfsStat::STALE)
    }

    /// Free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    fn check_name(name: &str) -> Result<(), NfsStat> {
        if name.is_empty() {
            return Err(NfsStat::INVAL);
        }
        if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
            return Err(NfsStat::BADNAME);
        }
        if name.len() > 255 {
            return Err(NfsStat::NAMETOOLONG);
        }
        Ok(())
    }

    fn dir(&self, id: u64) -> Result<&BTreeMap<String, u64>, NfsStat> {
        let ino = self.get(id)?;
        if !ino.is_dir() {
            return Err(NfsStat::NOTDIR);
        }
        self.dirs.get(&id).ok_or(NfsStat::SERVERFAULT)
    }

    /// Looks a name up in a directory.
    pub fn lookup(&self, dir: u64, name: &str) -> Result<u64, NfsStat> {
        Self::check_name(name)?;
        self.dir(dir)?.get(name).copied().ok_or(NfsStat::NOENT)
    }

    /// Directory entries in name order.
    pub fn readdir(&self, dir: u64) -> Result<Vec<(String, u64)>, NfsStat> {
        Ok(self
            .dir(dir)?
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect())
    }

    /// Creates an object; returns its id and the parent's change before/after.
    pub fn create(
        &mut self,
        dir: u64,
        name: &str,
        kind: Kind,
        uid: u32,
        gid: u32,
        attrs: &SetAttrs,
    ) -> Result<(u64, u64, u64), NfsStat> {
        Self::check_name(name)?;
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        if self.dir(dir)?.contains_key(name) {
            return Err(NfsStat::EXIST);
        }
        let id = self.next_id;
        self.next_id += 1;
        let t = now();
        let is_dir = kind == Kind::Dir;
        let size = match &kind {
            Kind::Symlink(s) => s.len() as u64,
            _ => 0,
        };
        let mut ino = Inode {
            id,
            kind,
            mode: attrs.mode.unwrap_or(if is_dir { 0o755 } else { 0o644 }) & 0o7777,
            uid: attrs.uid.unwrap_or(uid),
            gid: attrs.gid.unwrap_or(gid),
            size,
            atime: t,
            mtime: t,
            ctime: t,
            change: 1,
            nlink: if is_dir { 2 } else { 1 },
            parent: dir,
            extents: Vec::new(),
            cow: Vec::new(),
        };
        if let Some(Some(a)) = attrs.atime {
            ino.atime = a;
        }
        if let Some(Some(m)) = attrs.mtime {
            ino.mtime = m;
        }
        self.inodes.insert(id, ino);
        if is_dir {
            self.dirs.insert(id, BTreeMap::new());
        }
        self.dirs
            .get_mut(&dir)
            .ok_or(NfsStat::SERVERFAULT)?
            .insert(name.to_owned(), id);
        let p = self.inodes.get_mut(&dir).ok_or(NfsStat::SERVERFAULT)?;
        let before = p.change;
        p.touch_data();
        if is_dir {
            p.nlink += 1;
        }
        let after = p.change;
        let mut tx = Tx::default();
        tx.inodes.insert(id);
        tx.inodes.insert(dir);
        tx.dirent_put.push((dir, name.to_owned(), id));
        self.commit(tx)?;
        Ok((id, before, after))
    }

    /// Removes a name; frees the inode and its blocks when the last link goes.
    /// Returns (before, after, removed inode id if it was freed).
    pub fn remove(&mut self, dir: u64, name: &str) -> Result<(u64, u64, Option<u64>), NfsStat> {
        self.remove_keeping(dir, name, &|_| false)
    }

    /// [`Fs::remove`], but a file that loses its last name while `is_open` says it is open
    /// stays as an orphan (see `orphans`) instead of being freed.
    pub fn remove_keeping(
        &mut self,
        dir: u64,
        name: &str,
        is_open: &dyn Fn(u64) -> bool,
    ) -> Result<(u64, u64, Option<u64>), NfsStat> {
        let id = self.lookup(dir, name)?;
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        let is_dir = self.get(id)?.is_dir();
        if is_dir && !self.dirs.get(&id).is_none_or(|d| d.is_empty()) {
            return Err(NfsStat::NOTEMPTY);
        }
        let mut tx = Tx::default();
        if let Some(d) = self.dirs.get_mut(&dir) {
            d.remove(name);
        }
        tx.dirent_del.push((dir, name.to_owned()));
        let p = self.inodes.get_mut(&dir).ok_or(NfsStat::SERVERFAULT)?;
        let before = p.change;
        p.touch_data();
        if is_dir {
            p.nlink = p.nlink.saturating_sub(1);
        }
        let after = p.change;
        tx.inodes.insert(dir);
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::SERVERFAULT)?;
        ino.nlink = ino.nlink.saturating_sub(if is_dir { 2 } else { 1 });
        ino.touch_meta();
        let nlink = ino.nlink;
        let freed = if nlink == 0 && (is_dir || !is_open(id)) {
            self.free_inode(id, &mut tx)?;
            Some(id)
        } else {
            if nlink == 0 {
                self.orphans.insert(id);
            }
            tx.inodes.insert(id);
            None
        };
        self.commit(tx)?;
        Ok((before, after, freed))
    }

    /// Drops inode `id` and gives back its blocks (in `tx`).
    fn free_inode(&mut self, id: u64, tx: &mut Tx) -> Result<(), NfsStat> {
        let ino = self.inodes.remove(&id).ok_or(NfsStat::SERVERFAULT)?;
        for e in ino.extents.iter().chain(ino.cow.iter()) {
            self.release(e.vol_off, e.len, tx);
        }
        self.dirs.remove(&id);
        self.cuts.remove(&id);
        self.orphans.remove(&id);
        tx.deleted.insert(id);
        Ok(())
    }

    /// Files removed while open that are still kept (see `orphans`).
    pub fn orphans(&self) -> impl Iterator<Item = u64> + '_ {
        self.orphans.iter().copied()
    }

    /// Frees an orphan once nobody has it open; false if `id` is not one.
    pub fn release_orphan(&mut self, id: u64) -> Result<bool, NfsStat> {
        if !self.orphans.contains(&id) {
            return Ok(false);
        }
        let mut tx = Tx::default();
        self.free_inode(id, &mut tx)?;
        self.commit(tx)?;
        Ok(true)
    }

    /// Renames; returns (src before, src after, dst before, dst after, replaced inode freed).
    pub fn rename(
        &mut self,
        sdir: u64,
        sname: &str,
        ddir: u64,
        dname: &str,
    ) -> Result<(u64, u64, u64, u64, Option<u64>), NfsStat> {
        self.rename_keeping(sdir, sname, ddir, dname, &|_| false)
    }

    /// [`Fs::rename`]; a replaced target that `is_open` says is open stays as an orphan (see
    /// [`Fs::remove_keeping`]).
    pub fn rename_keeping(
        &mut self,
        sdir: u64,
        sname: &str,
        ddir: u64,
        dname: &str,
        is_open: &dyn Fn(u64) -> bool,
    ) -> Result<(u64, u64, u64, u64, Option<u64>), NfsStat> {
        // Both names are checked before either is looked up (a zero-length target is INVAL
        // whether or not the source exists).
        Self::check_name(sname)?;
        Self::check_name(dname)?;
        let id = self.lookup(sdir, sname)?;
        self.dir(ddir)?;
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        let moving_dir = self.get(id)?.is_dir();
        if moving_dir {
            // Refuse moving a directory under itself.
            let mut p = ddir;
            for _ in 0..4096 {
                if p == id {
                    return Err(NfsStat::INVAL);
                }
                if p == ROOT_ID {
                    break;
                }
                p = self.get(p)?.parent;
            }
        }
        let mut freed = None;
        if let Some(&old) = self.dir(ddir)?.get(dname) {
            if old == id {
                let c = self.get(sdir)?.change;
                let d = self.get(ddir)?.change;
                return Ok((c, c, d, d, None));
            }
            let old_dir = self.get(old)?.is_dir();
            if old_dir != moving_dir {
                return Err(NfsStat::EXIST);
            }
            let (_, _, f) = self.remove_keeping(ddir, dname, is_open)?;
            freed = f;
        }
        let mut tx = Tx::default();
        if let Some(d) = self.dirs.get_mut(&sdir) {
            d.remove(sname);
        }
        tx.dirent_del.push((sdir, sname.to_owned()));
        self.dirs
            .get_mut(&ddir)
            .ok_or(NfsStat::SERVERFAULT)?
            .insert(dname.to_owned(), id);
        tx.dirent_put.push((ddir, dname.to_owned(), id));
        let sp = self.inodes.get_mut(&sdir).ok_or(NfsStat::SERVERFAULT)?;
        let sb = sp.change;
        sp.touch_data();
        if moving_dir && sdir != ddir {
            sp.nlink = sp.nlink.saturating_sub(1);
        }
        let sa = sp.change;
        let dp = self.inodes.get_mut(&ddir).ok_or(NfsStat::SERVERFAULT)?;
        let db = if sdir == ddir { sb } else { dp.change };
        if sdir != ddir {
            dp.touch_data();
            if moving_dir {
                dp.nlink += 1;
            }
        }
        let da = dp.change;
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::SERVERFAULT)?;
        ino.touch_meta();
        ino.parent = ddir;
        tx.inodes.extend([sdir, ddir, id]);
        self.commit(tx)?;
        Ok((sb, sa, db, da, freed))
    }

    /// Adds a hard link to a file.
    pub fn link(&mut self, id: u64, dir: u64, name: &str) -> Result<(u64, u64), NfsStat> {
        Self::check_name(name)?;
        if self.get(id)?.is_dir() {
            return Err(NfsStat::ISDIR);
        }
        if self.dir(dir)?.contains_key(name) {
            return Err(NfsStat::EXIST);
        }
        self.dirs
            .get_mut(&dir)
            .ok_or(NfsStat::SERVERFAULT)?
            .insert(name.to_owned(), id);
        let p = self.inodes.get_mut(&dir).ok_or(NfsStat::SERVERFAULT)?;
        let b = p.change;
        p.touch_data();
        let a = p.change;
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::SERVERFAULT)?;
        ino.nlink += 1;
        ino.touch_meta();
        let mut tx = Tx::default();
        tx.inodes.extend([dir, id]);
        tx.dirent_put.push((dir, name.to_owned(), id));
        self.commit(tx)?;
        Ok((b, a))
    }

    /// Applies SETATTR. Size changes free blocks past the new end.
    pub fn setattr(&mut self, id: u64, a: &SetAttrs) -> Result<(), NfsStat> {
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        let ino = self.get(id)?;
        if a.size.is_some() && ino.kind != Kind::File {
            return Err(if ino.is_dir() {
                NfsStat::ISDIR
            } else {
                NfsStat::INVAL
            });
        }
        if a.size.is_some_and(|s| s > MAX_FILE_BYTES) {
            return Err(NfsStat::FBIG);
        }
        let mut tx = Tx::default();
        if let Some(size) = a.size {
            self.truncate(id, size, &mut tx)?;
        }
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
        if let Some(m) = a.mode {
            ino.mode = m & 0o7777;
        }
        if let Some(u) = a.uid {
            ino.uid = u;
        }
        if let Some(g) = a.gid {
            ino.gid = g;
        }
        ino.touch_meta();
        if let Some(t) = a.atime {
            ino.atime = t.unwrap_or_else(now);
        }
        if let Some(t) = a.mtime {
            ino.mtime = t.unwrap_or_else(now);
        }
        tx.inodes.insert(id);
        self.commit(tx)
    }

    fn truncate(&mut self, id: u64, size: u64, tx: &mut Tx) -> Result<(), NfsStat> {
        let bs = self.block_bytes;
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
        let old = ino.size;
        ino.size = size;
        ino.touch_data();
        if size >= old {
            return Ok(());
        }
        self.cut_gen += 1;
        let cuts = self.cuts.entry(id).or_default();
        cuts.push((self.cut_gen, size));
        if cuts.len() > MAX_CUTS_PER_FILE {
            // Fold the oldest into the next: a layout granted before either is then fenced at
            // the smaller size (stricter, never looser).
            let (_, s0) = cuts.remove(0);
            cuts[0].1 = cuts[0].1.min(s0);
        }
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
        // Blocks wholly past the new end are released; in the kept last block, sectors past the
        // end become INVALID (read as zeros), and the written tail of the last sector is zeroed.
        let keep_end = round_up(size, bs);
        let sector_end = round_up(size, SECTOR_BYTES);
        let mut exts = std::mem::take(&mut ino.extents);
        let mut cow = std::mem::take(&mut ino.cow);
        split_at(&mut exts, keep_end);
        split_at(&mut exts, sector_end);
        split_at(&mut cow, keep_end);
        let mut released = Vec::new();
        let mut zero_tail = None;
        exts.retain_mut(|e| {
            if e.file_off >= keep_end {
                released.push((e.vol_off, e.len));
                false
            } else {
                if e.file_off >= sector_end {
                    e.state = ExtState::Invalid;
                }
                if e.state == ExtState::Written && e.file_off < size && e.end() > size {
                    zero_tail = Some(e.vol_off + (size - e.file_off));
                }
                true
            }
        });
        cow.retain(|e| {
            if e.file_off >= keep_end {
                released.push((e.vol_off, e.len));
                false
            } else {
                true
            }
        });
        merge(&mut exts);
        ino.extents = exts;
        ino.cow = cow;
        if let Some(at) = zero_tail {
            let n = round_up(at, SECTOR_BYTES) - at;
            let zeros = vec![0u8; usize::try_from(n).unwrap_or(0)];
            self.vol
                .write(at, &zeros)
                .and_then(|()| self.vol.sync())
                .map_err(sfault)?;
        }
        for (o, l) in released {
            self.release(o, l, tx);
        }
        Ok(())
    }

    /// Drops one reference to a volume range; blocks with no reference left become free.
    fn release(&mut self, vol_off: u64, len: u64, tx: &mut Tx) {
        let bs = self.block_bytes;
        let mut b = vol_off / bs * bs;
        while b < vol_off + len {
            match self.shared.get_mut(&b) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    if *n <= 1 {
                        self.shared.remove(&b);
                    }
                    tx.shared.insert(b);
                }
                _ => self.free_block(b),
            }
            b += bs;
        }
    }

    fn free_block(&mut self, b: u64) {
        let bs = self.block_bytes;
        let mut start = b;
        let mut len = bs;
        if let Some((&ps, &pl)) = self.free.range(..b).next_back() {
            if ps + pl == b {
                self.free.remove(&ps);
                start = ps;
                len += pl;
            } else if ps + pl > b {
                tracing::error!("double free of block at {b}");
                return;
            }
        }
        if let Some(&nl) = self.free.get(&(b + bs)) {
            self.free.remove(&(b + bs));
            len += nl;
        }
        if self.free.contains_key(&b) && start == b {
            tracing::error!("double free of block at {b}");
            return;
        }
        self.free.insert(start, len);
        self.free_bytes += bs;
    }

    /// Allocates `len` bytes (a multiple of the block size), contiguous if possible, near
    /// `hint`. Returns the pieces.
    fn alloc(&mut self, len: u64, hint: u64) -> Result<Vec<(u64, u64)>, NfsStat> {
        if len > self.free_bytes {
            return Err(NfsStat::NOSPC);
        }
        let mut out = Vec::new();
        let mut left = len;
        // First fit at or after the hint for the whole length, then any run, then pieces.
        let pick = self
            .free
            .range(hint..)
            .find(|(_, &l)| l >= left)
            .or_else(|| self.free.iter().find(|(_, &l)| l >= left))
            .map(|(&s, _)| s);
        let starts: Vec<u64> = match pick {
            Some(s) => vec![s],
            None => self.free.keys().copied().collect(),
        };
        for s in starts {
            if left == 0 {
                break;
            }
            let l = self.free.remove(&s).unwrap_or(0);
            let take = l.min(left);
            if l > take {
                self.free.insert(s + take, l - take);
            }
            out.push((s, take));
            left -= take;
        }
        self.free_bytes -= len - left;
        if left != 0 {
            return Err(NfsStat::NOSPC);
        }
        Ok(out)
    }

    /// Allocates blocks for every hole in [off, off+len) (rounded to blocks); new extents are
    /// INVALID. Does not commit.
    fn ensure_allocated(&mut self, id: u64, off: u64, len: u64) -> Result<(), NfsStat> {
        let bs = self.block_bytes;
        let a = off / bs * bs;
        let b = round_up(off + len, bs);
        let holes = {
            let ino = self.get(id)?;
            holes(&ino.extents, a, b)
        };
        if holes.is_empty() {
            return Ok(());
        }
        let hint = {
            let ino = self.get(id)?;
            ino.extents
                .iter()
                .rev()
                .find(|e| e.file_off < a)
                .map(|e| e.vol_off + e.len)
                .unwrap_or(0)
        };
        let total: u64 = holes.iter().map(|h| h.1 - h.0).sum();
        let nexts = self.get(id)?.extents.len();
        if nexts + holes.len() * 4 > MAX_EXTENTS_PER_FILE {
            return Err(NfsStat::NOSPC);
        }
        let pieces = self.alloc(total, hint)?;
        let mut new = Vec::new();
        let mut pi = pieces.into_iter();
        let mut cur = pi.next();
        for (mut s, e) in holes {
            while s < e {
                let Some((po, pl)) = cur else {
                    return Err(NfsStat::SERVERFAULT);
                };
                let take = pl.min(e - s);
                new.push(Extent {
                    file_off: s,
                    len: take,
                    vol_off: po,
                    state: ExtState::Invalid,
                });
                s += take;
                cur = if take == pl {
                    pi.next()
                } else {
                    Some((po + take, pl - take))
                };
            }
        }
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
        ino.extents.extend(new);
        ino.extents.sort_by_key(|e| e.file_off);
        merge(&mut ino.extents);
        Ok(())
    }

    /// Replaces shared blocks in the range with private copies (MDS writes to clones).
    fn unshare(&mut self, id: u64, off: u64, len: u64, tx: &mut Tx) -> Result<(), NfsStat> {
        if self.shared.is_empty() {
            return Ok(());
        }
        let bs = self.block_bytes;
        let a = off / bs * bs;
        let b = round_up(off + len, bs);
        let shared_exts: Vec<Extent> = {
            let ino = self.get(id)?;
            let mut v = ino.extents.clone();
            split_at(&mut v, a);
            split_at(&mut v, b);
            v.into_iter()
                .filter(|e| e.file_off >= a && e.end() <= b && self.is_shared(e.vol_off, e.len))
                .collect()
        };
        for e in shared_exts {
            let pieces = self.alloc(round_up(e.len, bs), e.vol_off)?;
            let mut at = e.file_off;
            let mut copy = vec![0u8; usize::try_from(bs).unwrap_or(4096)];
            let mut replaced = Vec::new();
            for (po, pl) in pieces {
                let n = pl.min(e.end() - at);
                let mut done = 0;
                while done < n {
                    let k = (n - done).min(bs);
                    let c = &mut copy[..usize::try_from(k).unwrap_or(0)];
                    let src = e.vol_off + (at - e.file_off) + done;
                    self.vol.read(src, c).map_err(sfault)?;
                    self.vol.write(po + done, c).map_err(sfault)?;
                    done += k;
                }
                replaced.push(Extent {
                    file_off: at,
                    len: n,
                    vol_off: po,
                    state: e.state,
                });
                at += n;
            }
            self.vol.sync().map_err(sfault)?;
            let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
            split_at(&mut ino.extents, e.file_off);
            split_at(&mut ino.extents, e.end());
            ino.extents
                .retain(|x| x.file_off < e.file_off || x.file_off >= e.end());
            ino.extents.extend(replaced);
            ino.extents.sort_by_key(|x| x.file_off);
            merge(&mut ino.extents);
            self.release(e.vol_off, e.len, tx);
        }
        Ok(())
    }

    fn is_shared(&self, vol_off: u64, len: u64) -> bool {
        let bs = self.block_bytes;
        let first = vol_off / bs * bs;
        self.shared.range(first..vol_off + len).next().is_some()
    }

    /// Computes the extents of a layout for [off, off+len). For RW layouts holes are allocated
    /// (INVALID) and shared blocks get copy-on-write pairs. Commits any allocation.
    /// Returns the pieces (covering the range exactly, sorted; COW pairs overlap).
    pub fn layout(
        &mut self,
        id: u64,
        off: u64,
        len: u64,
        rw: bool,
    ) -> Result<Vec<LayoutPiece>, NfsStat> {
        let ino = self.get(id)?;
        if ino.kind != Kind::File {
            return Err(if ino.is_dir() {
                NfsStat::ISDIR
            } else {
                NfsStat::INVAL
            });
        }
        let end = off.checked_add(len).ok_or(NfsStat::INVAL)?;
        if end > MAX_FILE_BYTES {
            return Err(NfsStat::FBIG);
        }
        // A layout client reads the volume itself, maybe from another host: data written
        // UNSTABLE through the MDS must have left this host's page cache first.
        self.sync_volume()?;
        if rw {
            if self.broken {
                return Err(NfsStat::SERVERFAULT);
            }
            let mut tx = Tx::default();
            self.ensure_allocated(id, off, len)?;
            self.prepare_cow(id, off, end)?;
            tx.inodes.insert(id);
            self.commit(tx)?;
        }
        let ino = self.get(id)?;
        let mut exts = ino.extents.clone();
        split_at(&mut exts, off);
        split_at(&mut exts, end);
        let mut out = Vec::new();
        let mut at = off;
        for e in exts.iter().filter(|e| e.file_off >= off && e.end() <= end) {
            if e.file_off > at {
                out.push(LayoutPiece {
                    file_off: at,
                    len: e.file_off - at,
                    vol_off: 0,
                    es: 3,
                });
            }
            let shared = rw && self.is_shared(e.vol_off, e.len);
            let es = match (e.state, rw) {
                (ExtState::Invalid, _) => 2,
                (ExtState::Written, true) if shared => 1,
                (ExtState::Written, true) => 0,
                (ExtState::Written, false) => 1,
            };
            out.push(LayoutPiece {
                file_off: e.file_off,
                len: e.len,
                vol_off: e.vol_off,
                es,
            });
            if shared {
                let mut cow = ino.cow.clone();
                split_at(&mut cow, e.file_off);
                split_at(&mut cow, e.end());
                for c in cow
                    .iter()
                    .filter(|c| c.file_off >= e.file_off && c.end() <= e.end())
                {
                    out.push(LayoutPiece {
                        file_off: c.file_off,
                        len: c.len,
                        vol_off: c.vol_off,
                        es: 2,
                    });
                }
            }
            at = e.end();
        }
        if at < end {
            out.push(LayoutPiece {
                file_off: at,
                len: end - at,
                vol_off: 0,
                es: 3,
            });
        }
        Ok(out)
    }

    /// For shared written blocks in the range, allocates the new (private) blocks a client
    /// will write into, recorded in `cow`.
    fn prepare_cow(&mut self, id: u64, off: u64, end: u64) -> Result<(), NfsStat> {
        if self.shared.is_empty() {
            return Ok(());
        }
        let need: Vec<Extent> = {
            let ino = self.get(id)?;
            let mut v = ino.extents.clone();
            split_at(&mut v, off);
            split_at(&mut v, end);
            v.into_iter()
                .filter(|e| e.file_off >= off && e.end() <= end && self.is_shared(e.vol_off, e.len))
                .filter(|e| {
                    holes(&ino.cow, e.file_off, e.end())
                        .iter()
                        .any(|h| h.0 < h.1)
                })
                .collect()
        };
        for e in need {
            let hs = holes(&self.get(id)?.cow, e.file_off, e.end());
            for (s, t) in hs {
                let pieces = self.alloc(t - s, e.vol_off)?;
                let mut at = s;
                let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
                for (po, pl) in pieces {
                    ino.cow.push(Extent {
                        file_off: at,
                        len: pl,
                        vol_off: po,
                        state: ExtState::Invalid,
                    });
                    at += pl;
                }
                ino.cow.sort_by_key(|c| c.file_off);
            }
        }
        Ok(())
    }

    /// Current truncation generation: record it with every RW layout granted, and give it back
    /// in the [`Grant`]s of a LAYOUTCOMMIT.
    pub fn cut_gen(&self) -> u64 {
        self.cut_gen
    }

    /// The largest size a LAYOUTCOMMIT may make true at file offset `at`: the smallest size the
    /// file was truncated to after the newest of `grants` covering `at` was granted
    /// (`u64::MAX` when there was no such truncation). Offsets no grant covers count as granted
    /// before every truncation.
    fn commit_limit(&self, id: u64, grants: &[Grant], at: u64) -> u64 {
        let gen = grants
            .iter()
            .filter(|g| g.off <= at && at < g.end)
            .map(|g| g.gen)
            .max()
            .unwrap_or(0);
        self.cuts
            .get(&id)
            .and_then(|c| c.iter().filter(|(g, _)| *g > gen).map(|(_, s)| *s).min())
            .unwrap_or(u64::MAX)
    }

    /// The parts of the committed ranges a LAYOUTCOMMIT may still mark written: whole sectors
    /// below the commit limit of each piece (see [`Self::commit_limit`]). Writes made with a
    /// layout granted before a truncation never come back to life past it; the sector the
    /// truncation cut through is dropped too (its bytes were never committed before the client
    /// truncated the file).
    fn fence_commit(
        &self,
        id: u64,
        grants: &[Grant],
        committed: &[(u64, u64, u64)],
    ) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        for &(file_off, len, vol_off) in committed {
            let end = file_off.saturating_add(len);
            let mut cuts: Vec<u64> = grants
                .iter()
                .flat_map(|g| [g.off, g.end])
                .filter(|&x| x > file_off && x < end)
                .collect();
            cuts.push(end);
            cuts.sort_unstable();
            cuts.dedup();
            let mut at = file_off;
            for next in cuts {
                let lim = self.commit_limit(id, grants, at) / SECTOR_BYTES * SECTOR_BYTES;
                let keep_end = next.min(lim);
                if keep_end > at {
                    let v = if vol_off == 0 {
                        0
                    } else {
                        vol_off + (at - file_off)
                    };
                    out.push((at, keep_end - at, v));
                }
                if keep_end < next {
                    tracing::warn!(
                        "LAYOUTCOMMIT of file {id}: {keep_end}..{next} was written with a layout \
                         granted before a truncation; not marked written"
                    );
                }
                at = next;
            }
        }
        out
    }

    /// LAYOUTCOMMIT: marks committed ranges written when they match the map (or switch a COW
    /// range to its new blocks), updates size and mtime.
    ///
    /// `grants` are the RW layout segments the committing client holds (empty for a reclaim
    /// after restart). A commit never makes data or size true past a truncation that happened
    /// after the layout it was written with was granted: a late
    /// LAYOUTCOMMIT cannot grow a truncated file back.
    pub fn layout_commit(
        &mut self,
        id: u64,
        committed: &[(u64, u64, u64)],
        last_byte: Option<u64>,
        mtime: Option<NfsTime>,
        grants: &[Grant],
    ) -> Result<Option<u64>, NfsStat> {
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        self.get(id)?;
        for &(file_off, len, _) in committed {
            if len == 0 || file_off % SECTOR_BYTES != 0 || len % SECTOR_BYTES != 0 {
                return Err(NfsStat::INVAL);
            }
        }
        let committed = self.fence_commit(id, grants, committed);
        let size_limit = last_byte.map_or(u64::MAX, |l| self.commit_limit(id, grants, l));
        let mut tx = Tx::default();
        for &(file_off, len, vol_off) in &committed {
            let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
            // A committed range on the COW blocks switches the file to them.
            let mut cow_hit = Vec::new();
            for c in &ino.cow {
                let a = c.file_off.max(file_off);
                let b = c.end().min(file_off + len);
                if a < b
                    && (vol_off == 0 || c.vol_off + (a - c.file_off) == vol_off + (a - file_off))
                {
                    cow_hit.push((a, b, c.vol_off + (a - c.file_off)));
                }
            }
            let mut old = Vec::new();
            for (a, b, v) in cow_hit {
                let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
                split_at(&mut ino.cow, a);
                split_at(&mut ino.cow, b);
                ino.cow.retain(|c| c.file_off < a || c.file_off >= b);
                split_at(&mut ino.extents, a);
                split_at(&mut ino.extents, b);
                ino.extents.retain(|e| {
                    if e.file_off >= a && e.end() <= b {
                        old.push((e.vol_off, e.len));
                        false
                    } else {
                        true
                    }
                });
                ino.extents.push(Extent {
                    file_off: a,
                    len: b - a,
                    vol_off: v,
                    state: ExtState::Written,
                });
                ino.extents.sort_by_key(|e| e.file_off);
            }
            let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
            // Plain INVALID → written, only where the volume offsets match what we handed out.
            let mut marks = Vec::new();
            for e in &ino.extents {
                let a = e.file_off.max(file_off);
                let b = e.end().min(file_off + len);
                // Linux sends storage offset 0 in every commit extent; a non-zero offset must
                // match what we handed out.
                if a < b
                    && e.state == ExtState::Invalid
                    && (vol_off == 0 || e.vol_off + (a - e.file_off) == vol_off + (a - file_off))
                {
                    marks.push((a, b));
                }
            }
            for (a, b) in marks {
                set_state(&mut ino.extents, a, b, ExtState::Written);
            }
            merge(&mut ino.extents);
            for (o, l) in old {
                self.release(o, l, &mut tx);
            }
        }
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
        let mut new_size = None;
        if let Some(last) = last_byte {
            let s = last.saturating_add(1).min(size_limit);
            if s > ino.size {
                ino.size = s.min(MAX_FILE_BYTES);
                new_size = Some(ino.size);
            }
        }
        ino.touch_data();
        if let Some(m) = mtime {
            ino.mtime = m;
        }
        tx.inodes.insert(id);
        self.commit(tx)?;
        Ok(new_size)
    }

    /// Makes `dst` (a file) share all of `src`'s blocks (a clone). `dst` is truncated first.
    pub fn clone_file(&mut self, src: u64, dst: u64) -> Result<(), NfsStat> {
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        if self.get(src)?.kind != Kind::File || self.get(dst)?.kind != Kind::File || src == dst {
            return Err(NfsStat::INVAL);
        }
        let mut tx = Tx::default();
        self.truncate(dst, 0, &mut tx)?;
        let s = self.get(src)?.clone();
        let bs = self.block_bytes;
        let mut blocks = BTreeSet::new();
        for e in &s.extents {
            let mut b = e.vol_off / bs * bs;
            while b < e.vol_off + e.len {
                blocks.insert(b);
                b += bs;
            }
        }
        for b in blocks {
            let n = self.shared.entry(b).or_insert(1);
            *n += 1;
            tx.shared.insert(b);
        }
        let d = self.inodes.get_mut(&dst).ok_or(NfsStat::STALE)?;
        d.extents = s.extents.clone();
        d.cow.clear();
        d.size = s.size;
        d.touch_data();
        tx.inodes.insert(dst);
        self.commit(tx)
    }

    /// Resolves a slash-separated path from the root.
    pub fn resolve(&self, path: &str) -> Result<u64, NfsStat> {
        let mut id = ROOT_ID;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            id = self.lookup(id, c)?;
        }
        Ok(id)
    }

    /// Checks every invariant (tests): extents sorted, non-overlapping, no block used twice
    /// unless shared, nothing both free and used.
    pub fn check(&self) -> Result<(), String> {
        let bs = self.block_bytes;
        let mut owners: HashMap<u64, u32> = HashMap::new();
        for ino in self.inodes.values() {
            for w in ino.extents.windows(2) {
                if w[0].end() > w[1].file_off {
                    return Err(format!("inode {}: overlapping extents {w:?}", ino.id));
                }
            }
            let mut mine = BTreeSet::new();
            for e in ino.extents.iter().chain(ino.cow.iter()) {
                let mut b = e.vol_off / bs * bs;
                while b < e.vol_off + e.len {
                    mine.insert(b);
                    b += bs;
                }
            }
            for b in mine {
                *owners.entry(b).or_default() += 1;
            }
        }
        for (&b, &n) in &owners {
            if n > 1 && self.shared.get(&b).copied().unwrap_or(1) < 2 {
                return Err(format!("block {b} used {n} times but not shared"));
            }
            if let Some((&s, &l)) = self.free.range(..=b).next_back() {
                if b < s + l {
                    return Err(format!("block {b} both used and free"));
                }
            }
        }
        Ok(())
    }
}

/// End (exclusive, block aligned) of a READ layout that starts at the block-aligned `start`
/// and was asked to reach `want_end` (`u64::MAX` for "to the end of the file").
///
/// A READ layout is never cut at end of file: the part past EOF is one NONE_DATA extent
/// covering the whole requested range (bounded by `max_bytes`), as Linux nfsd does, so a
/// client reading where its own not yet committed writes moved EOF gets one LAYOUTGET, not
/// one per block. An open-ended request stops at the end of the file's last block (at least
/// one block).
pub fn read_layout_end(
    start: u64,
    want_end: u64,
    size_bytes: u64,
    block_bytes: u64,
    max_bytes: u64,
) -> u64 {
    let cap = start.saturating_add(max_bytes);
    let end = if want_end == u64::MAX {
        round_up(size_bytes, block_bytes).max(start.saturating_add(block_bytes))
    } else {
        want_end.saturating_add(block_bytes - 1) / block_bytes * block_bytes
    };
    end.min(cap)
}

/// Splits the extent containing `at` (if any) so that an extent boundary lies at `at`.
pub fn split_at(exts: &mut Vec<Extent>, at: u64) {
    if let Some(i) = exts.iter().position(|e| e.file_off < at && e.end() > at) {
        let e = exts[i];
        let left = at - e.file_off;
        exts[i].len = left;
        exts.insert(
            i + 1,
            Extent {
                file_off: at,
                len: e.len - left,
                vol_off: e.vol_off + left,
                state: e.state,
            },
        );
    }
}

fn set_state(exts: &mut Vec<Extent>, a: u64, b: u64, st: ExtState) {
    split_at(exts, a);
    split_at(exts, b);
    for e in exts.iter_mut() {
        if e.file_off >= a && e.end() <= b {
            e.state = st;
        }
    }
    merge(exts);
}

/// Merges neighbours that are contiguous in file and volume and have the same state.
pub fn merge(exts: &mut Vec<Extent>) {
    let mut out: Vec<Extent> = Vec::with_capacity(exts.len());
    for e in exts.drain(..) {
        if let Some(l) = out.last_mut() {
            if l.end() == e.file_off && l.vol_off + l.len == e.vol_off && l.state == e.state {
                l.len += e.len;
                continue;
            }
        }
        out.push(e);
    }
    *exts = out;
}

/// Ranges of [a, b) not covered by `exts`.
fn holes(exts: &[Extent], a: u64, b: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = a;
    for e in exts {
        if e.end() <= at || e.file_off >= b {
            continue;
        }
        if e.file_off > at {
            out.push((at, e.file_off));
        }
        at = at.max(e.end());
    }
    if at < b {
        out.push((at, b));
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::volume::{LabelAt, SimpleVolume, Topology};

    pub(super) fn mkfs(dir: &Path, bs: u64) -> Fs {
        let p = dir.join("vol");
        if !p.exists() {
            std::fs::File::create(&p)
                .unwrap()
                .set_len(16 << 20)
                .unwrap();
        }
        let v = SimpleVolume::open(p, LabelAt::Start).unwrap();
        let lv = LogicalVolume::new(vec![v], Topology::Simple { volume: 0 }).unwrap();
        Fs::open(&dir.join("state"), lv, bs).unwrap()
    }

    /// The store refuses another topology or volume set (its block maps would point at the
    /// wrong bytes) and names both layouts; the same volumes given in another order, with
    /// the topology following them, are the same layout.
    #[test]
    fn store_refuses_a_different_volume_layout() {
        let d = crate::volume::tests::tempdir();
        let vol = |name: &str| {
            let p = d.join(name);
            if !p.exists() {
                std::fs::File::create(&p)
                    .unwrap()
                    .set_len(16 << 20)
                    .unwrap();
            }
            SimpleVolume::open(p, LabelAt::Start).unwrap()
        };
        let open = |vols: Vec<SimpleVolume>, t: Topology| {
            let lv = LogicalVolume::new(vols, t).unwrap();
            Fs::open(&d.join("state"), lv, 4096)
        };
        let simple = |volume| Topology::Simple { volume };
        drop(open(vec![vol("a")], simple(0)).expect("create on a"));
        let concat = Topology::Concat {
            children: vec![simple(0), simple(1)],
        };
        let err = open(vec![vol("a"), vol("b")], concat)
            .expect_err("a concat over a and b is another layout")
            .to_string();
        assert!(
            err.contains("volume layout simple(") && err.contains("make concat(simple("),
            "{err}"
        );
        let err = open(vec![vol("b")], simple(0))
            .expect_err("another volume is another layout")
            .to_string();
        assert!(err.contains("volume layout"), "{err}");
        drop(open(vec![vol("b"), vol("a")], simple(1)).expect("a, listed second"));
        drop(open(vec![vol("a")], simple(0)).expect("the original layout"));
    }

    #[test]
    fn write_read_truncate_and_reopen() {
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, 65536);
        let free0 = fs.free_bytes();
        assert_eq!(free0, (16 << 20) - 65536);
        let (f, _, _) = fs
            .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        fs.write(f, 100, b"hello", Durability::Stable).unwrap();
        fs.write(f, 70000, b"world", Durability::Stable).unwrap();
        let (data, eof) = fs.read(f, 0, 100_000).unwrap();
        assert!(eof);
        assert_eq!(data.len(), 70005);
        assert_eq!(&data[100..105], b"hello");
        assert_eq!(&data[..100], &[0u8; 100][..]);
        assert_eq!(&data[70000..], b"world");
        assert_eq!(fs.free_bytes(), free0 - 2 * 65536);
        fs.setattr(
            f,
            &SetAttrs {
                size: Some(102),
                ..Default::default()
            },
        )
        .unwrap();
        fs.check().unwrap();
        assert_eq!(fs.free_bytes(), free0 - 65536);
        fs.setattr(
            f,
            &SetAttrs {
                size: Some(8000),
                ..Default::default()
            },
        )
        .unwrap();
        let (data, _) = fs.read(f, 0, 8000).unwrap();
        assert_eq!(&data[100..102], b"he");
        assert!(data[102..].iter().all(|&b| b == 0), "tail must read zeros");
        drop(fs);
        let mut fs = mkfs(&d, 65536);
        assert_eq!(fs.epoch, 2);
        assert_eq!(fs.free_bytes(), free0 - 65536);
        let f2 = fs.lookup(ROOT_ID, "a").unwrap();
        assert_eq!(f2, f);
        assert_eq!(&fs.read(f, 100, 2).unwrap().0, b"he");
        fs.remove(ROOT_ID, "a").unwrap();
        assert_eq!(fs.free_bytes(), free0);
        fs.check().unwrap();
    }

    #[test]
    fn layouts_allocate_invalid_and_commit_marks_written() {
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, 4096);
        let (f, _, _) = fs
            .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        let r = fs.layout(f, 0, 16384, false).unwrap();
        assert_eq!(
            r,
            vec![LayoutPiece {
                file_off: 0,
                len: 16384,
                vol_off: 0,
                es: 3
            }]
        );
        let w = fs.layout(f, 0, 16384, true).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].es, 2);
        let v = w[0].vol_off;
        fs.vol.write(v + 4096, b"xyz").unwrap();
        // A commit for the wrong volume offset changes nothing (0 means "not given", as Linux sends).
        fs.layout_commit(f, &[(4096, 4096, v + 8192)], Some(4098), None, &[])
            .unwrap();
        assert_eq!(fs.read(f, 4096, 3).unwrap().0, vec![0, 0, 0]);
        fs.layout_commit(f, &[(4096, 4096, v + 4096)], Some(4098), None, &[])
            .unwrap();
        assert_eq!(fs.get(f).unwrap().size, 4099);
        assert_eq!(fs.read(f, 4096, 3).unwrap().0, b"xyz");
        let w = fs.layout(f, 0, 16384, true).unwrap();
        assert_eq!(w.iter().map(|p| p.es).collect::<Vec<_>>(), vec![2, 0, 2]);
        fs.check().unwrap();
    }

    #[test]
    fn clone_gives_copy_on_write_layouts() {
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, 4096);
        let (a, _, _) = fs
            .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        let (b, _, _) = fs
            .create(ROOT_ID, "b", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        fs.write(a, 0, &[7u8; 8192], Durability::Stable).unwrap();
        fs.clone_file(a, b).unwrap();
        fs.check().unwrap();
        let w = fs.layout(b, 0, 8192, true).unwrap();
        assert_eq!(w.iter().map(|p| p.es).collect::<Vec<_>>(), vec![1, 2]);
        let newv = w[1].vol_off;
        fs.vol.write(newv, &[9u8; 8192]).unwrap();
        fs.layout_commit(b, &[(0, 8192, newv)], None, None, &[])
            .unwrap();
        assert_eq!(fs.read(b, 0, 1).unwrap().0, vec![9]);
        assert_eq!(fs.read(a, 0, 1).unwrap().0, vec![7]);
        fs.check().unwrap();
        fs.write(a, 0, &[1], Durability::Stable).unwrap();
        fs.remove(ROOT_ID, "a").unwrap();
        fs.remove(ROOT_ID, "b").unwrap();
        assert_eq!(fs.free_bytes(), (16 << 20) - 4096);
    }

    /// A LAYOUTCOMMIT that arrives after a truncation, for writes made with a layout granted
    /// before it, must neither grow the file back nor bring the old bytes back; a commit for a
    /// layout granted after the truncation extends the file as usual.
    #[test]
    fn late_layoutcommit_after_truncate_does_not_grow_the_file_back() {
        for bs in [4096u64, 65536] {
            let d = crate::volume::tests::tempdir();
            let mut fs = mkfs(&d, bs);
            let (f, _, _) = fs
                .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
                .unwrap();
            let old = Grant {
                off: 0,
                end: 131072,
                gen: fs.cut_gen(),
            };
            let w = fs.layout(f, 0, 131072, true).unwrap();
            assert!(w.iter().all(|p| p.es == 2), "{w:?}");
            // The client writes 128 KiB of 0xaa straight to the volume.
            for p in &w {
                let fill = vec![0xaa; usize::try_from(p.len).unwrap()];
                fs.vol.write(p.vol_off, &fill).unwrap();
            }
            let trunc = |fs: &mut Fs, size| {
                let a = SetAttrs {
                    size: Some(size),
                    ..Default::default()
                };
                fs.setattr(f, &a).unwrap();
            };
            // A first commit of it, then the client writes the range again and truncates
            // before its second commit.
            let grew = fs
                .layout_commit(f, &[(0, 131072, 0)], Some(131071), None, &[old])
                .unwrap();
            assert_eq!(grew, Some(131072));
            trunc(&mut fs, 5000);
            // The late commit of the whole write, with the pre-truncation layout.
            let grew = fs
                .layout_commit(f, &[(0, 131072, 0)], Some(131071), None, &[old])
                .unwrap();
            assert_eq!(grew, None, "bs {bs}: a late commit grew the file");
            assert_eq!(fs.get(f).unwrap().size, 5000, "bs {bs}");
            // Growing the file by truncation shows zeros past the cut, never the old bytes.
            trunc(&mut fs, 131072);
            let (data, _) = fs.read(f, 0, 131072).unwrap();
            assert!(
                data[5000..].iter().all(|&b| b == 0),
                "bs {bs}: old bytes past the truncation came back"
            );
            fs.check().unwrap();
            // A layout granted after the truncation commits and extends normally.
            trunc(&mut fs, 5000);
            let new = Grant {
                off: 0,
                end: 262144,
                gen: fs.cut_gen(),
            };
            let w = fs.layout(f, 131072, 131072, true).unwrap();
            for p in w.iter().filter(|p| p.es == 2) {
                let fill = vec![0xbb; usize::try_from(p.len).unwrap()];
                fs.vol.write(p.vol_off, &fill).unwrap();
            }
            let grew = fs
                .layout_commit(f, &[(131072, 131072, 0)], Some(262143), None, &[new])
                .unwrap();
            assert_eq!(grew, Some(262144), "bs {bs}");
            assert_eq!(fs.read(f, 262143, 1).unwrap().0, vec![0xbb], "bs {bs}");
            assert!(fs.read(f, 5000, 126072).unwrap().0.iter().all(|&b| b == 0));
            // The same late commit once more: still fenced below the first truncation.
            let grew = fs
                .layout_commit(f, &[(0, 131072, 0)], Some(131071), None, &[old])
                .unwrap();
            assert_eq!(grew, None);
            assert!(fs.read(f, 5000, 126072).unwrap().0.iter().all(|&b| b == 0));
            fs.check().unwrap();
        }
    }

    #[test]
    fn read_layouts_past_eof_cover_the_whole_request() {
        let mib = 1u64 << 20;
        // Asked 1 MiB at 4 MiB of a 1 MiB file: the whole MiB (one NONE extent), not one block.
        assert_eq!(
            read_layout_end(4 * mib, 5 * mib, mib, 4096, 1 << 30),
            5 * mib
        );
        assert_eq!(
            read_layout_end(4 * mib, 5 * mib - 1, mib, 65536, 1 << 30),
            5 * mib
        );
        // Bounded.
        assert_eq!(
            read_layout_end(0, u64::MAX - 1, mib, 4096, 1 << 30),
            1 << 30
        );
        // Open-ended: to the end of the last block, at least one block.
        assert_eq!(read_layout_end(0, u64::MAX, 5000, 4096, 1 << 30), 8192);
        assert_eq!(
            read_layout_end(mib, u64::MAX, 5000, 4096, 1 << 30),
            mib + 4096
        );
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, 4096);
        let (f, _, _) = fs
            .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        fs.write(f, 0, &[1u8; 5000], Durability::Stable).unwrap();
        let p = fs.layout(f, 4096, 4 * mib, false).unwrap();
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            (p[1].file_off, p[1].len, p[1].es),
            (8192, 4 * mib - 4096, 3)
        );
    }

    /// At a 64 KiB block size a client commits single 4 KiB pages: the rest of the newly
    /// allocated block reads as zeros (whatever the volume held there before), through the MDS
    /// and in READ layouts (NONE_DATA), and stays INVALID in RW layouts.
    #[test]
    fn partial_commit_of_a_64k_block_leaves_the_rest_zero() {
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, 65536);
        let (f, _, _) = fs
            .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        let w = fs.layout(f, 0, 65536, true).unwrap();
        assert_eq!((w.len(), w[0].len, w[0].es), (1, 65536, 2), "{w:?}");
        let v = w[0].vol_off;
        // Old bytes on the volume everywhere, then the client's one page at 4096.
        fs.vol.write(v, &[0xee; 65536]).unwrap();
        fs.vol.write(v + 4096, &[7; 4096]).unwrap();
        let grant = Grant {
            off: 0,
            end: 65536,
            gen: fs.cut_gen(),
        };
        fs.layout_commit(f, &[(4096, 4096, 0)], Some(65535), None, &[grant])
            .unwrap();
        let (data, _) = fs.read(f, 0, 65536).unwrap();
        assert!(data[..4096].iter().all(|&b| b == 0));
        assert!(data[4096..8192].iter().all(|&b| b == 7));
        assert!(data[8192..].iter().all(|&b| b == 0));
        // (INVALID pieces of a READ layout go out as NONE_DATA: nfs.rs maps them.)
        let r = fs.layout(f, 0, 65536, false).unwrap();
        let es: Vec<_> = r.iter().map(|p| (p.file_off, p.len, p.es)).collect();
        assert_eq!(es, vec![(0, 4096, 2), (4096, 4096, 1), (8192, 57344, 2)]);
        let w = fs.layout(f, 0, 65536, true).unwrap();
        let es: Vec<_> = w.iter().map(|p| (p.file_off, p.len, p.es)).collect();
        assert_eq!(es, vec![(0, 4096, 2), (4096, 4096, 0), (8192, 57344, 2)]);
        fs.check().unwrap();
    }
}
