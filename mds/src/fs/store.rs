//! The store: the in-memory metadata set ([`Fs`]) and its mirror in redb, written in ONE
//! redb write transaction per change ([`Fs::commit`]); the client records kept for reclaim.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use pnfs_proto::nfs4::types::NfsStat;
use redb::{Database, ReadableTable, TableDefinition};

use super::inode::{now, Inode, Kind, MAX_INODES, ROOT_ID};
use crate::volume::LogicalVolume;
use crate::MdsError;

const INODES: TableDefinition<u64, &[u8]> = TableDefinition::new("inodes");
const DIRENTS: TableDefinition<(u64, &str), u64> = TableDefinition::new("dirents");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CLIENTS: TableDefinition<&[u8], u64> = TableDefinition::new("clients");
const SHARED: TableDefinition<u64, u32> = TableDefinition::new("shared_refs");
/// `volume_layout` → [`LogicalVolume::fingerprint`] of the volume the store was created on.
const LAYOUT: TableDefinition<&str, &str> = TableDefinition::new("volume_layout");

/// Set of records one change touches.
#[derive(Debug, Default)]
pub struct Tx {
    pub(super) inodes: BTreeSet<u64>,
    pub(super) deleted: BTreeSet<u64>,
    pub(super) dirent_put: Vec<(u64, String, u64)>,
    pub(super) dirent_del: Vec<(u64, String)>,
    pub(super) shared: BTreeSet<u64>,
}

/// The file system.
#[derive(Debug)]
pub struct Fs {
    pub(super) db: Database,
    /// The logical volume.
    pub vol: LogicalVolume,
    /// Allocation unit, bytes.
    pub block_bytes: u64,
    pub(super) inodes: HashMap<u64, Inode>,
    pub(super) dirs: HashMap<u64, BTreeMap<String, u64>>,
    pub(super) free: BTreeMap<u64, u64>,
    pub(super) shared: BTreeMap<u64, u32>,
    pub(super) next_id: u64,
    /// Boot epoch (incremented at every start).
    pub epoch: u64,
    pub(super) broken: bool,
    pub(super) free_bytes: u64,
    /// Most inodes ([`MAX_INODES`]; lower in tests).
    pub(super) max_inodes: usize,
    /// Bytes of the blocks that touch a volume label (never free, never used).
    pub(super) label_bytes: u64,
    /// Truncation generation: bumped by every truncation that shrinks a file (in memory only:
    /// layouts do not survive a restart, reclaimed commits come before any new truncation).
    pub(super) cut_gen: u64,
    /// Per file, its truncations since start as (generation, new size), oldest first.
    pub(super) cuts: HashMap<u64, Vec<(u64, u64)>>,
    /// Files whose last name went while they were open: they keep their inode (nlink 0) and
    /// blocks until [`Fs::release_orphan`], so the opener can go on using its file handle and
    /// stateid (CLOSE, RFC 8881 §18.2, must still work), as on POSIX. Any left at a restart are
    /// freed when the store is loaded.
    pub(super) orphans: BTreeSet<u64>,
    /// Files whose map or size an UNSTABLE write changed in memory only (see
    /// [`super::data`]): written to the store by the next [`Fs::commit`].
    pub(super) unstable: BTreeSet<u64>,
    /// Data was written to the volume since its last sync.
    pub(super) volume_dirty: bool,
}

pub(super) fn sfault<E: std::fmt::Display>(e: E) -> NfsStat {
    tracing::error!("store: {e}");
    NfsStat::SERVERFAULT
}

/// Maps a volume I/O error to NFS4ERR_IO, logged with what was being done.
pub(super) fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> NfsStat + '_ {
    move |err| {
        tracing::error!("volume {what}: {err}");
        NfsStat::IO
    }
}

impl Fs {
    /// Opens (or creates) the redb database in `state_dir` and loads every record into
    /// memory. The free-space map is left empty (see `Fs::rebuild_free`).
    pub(super) fn load(
        state_dir: &Path,
        vol: LogicalVolume,
        block_bytes: u64,
    ) -> Result<Self, MdsError> {
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
            label_bytes: 0,
            max_inodes: MAX_INODES,
            cut_gen: 0,
            cuts: HashMap::new(),
            orphans: BTreeSet::new(),
            unstable: BTreeSet::new(),
            volume_dirty: false,
        };
        fs.load_records()
            .map_err(|e| MdsError::Store(e.to_string()))?;
        Ok(fs)
    }

    fn load_records(&mut self) -> Result<(), Box<dyn std::error::Error>> {
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
        Ok(())
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
        })?;
        self.debug_check();
        Ok(())
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

    /// fdatasync of the volume if anything was written to it since the last one.
    pub(super) fn sync_volume(&mut self) -> Result<(), NfsStat> {
        if self.volume_dirty {
            self.vol.sync().map_err(io_error("sync"))?;
            self.volume_dirty = false;
        }
        Ok(())
    }
}
