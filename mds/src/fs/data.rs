//! File data through the MDS: READ, WRITE (stable or UNSTABLE4) and COMMIT.
//!
//! RFC 8881 §18.32.3 lets a server answer an UNSTABLE4 WRITE before its data or metadata is
//! on stable storage, as long as a COMMIT (§18.3) makes every such write durable and the write
//! verifier changes whenever uncommitted writes may have been lost (here: every start, the
//! verifier is the boot epoch), so that the client sends them again. An UNSTABLE4 write
//! therefore only writes the volume (page cache) and changes the in-memory extent map; the
//! file is remembered in [`Fs::unstable`] and its map goes to the store with the next store
//! transaction, whichever comes first: a COMMIT ([`Fs::flush`]), a stable write, or any
//! other change ([`Fs::commit`] makes the volume durable before it writes a map that refers
//! to data written unstably). Until then the store still shows the blocks such a write
//! allocated as free and the sectors it wrote as unwritten, so a crash loses only what the
//! client still holds for re-sending, never exposes stale blocks.
//!
//! A FILE_SYNC4 / DATA_SYNC4 write syncs the volume and commits its map before the reply,
//! as every write did before: that costs an fdatasync of the volume and a store transaction
//! (with its own syncs) per WRITE.

use pnfs_proto::nfs4::types::NfsStat;

use super::extents::{round_up, set_state, ExtState, SECTOR_BYTES};
use super::inode::{Kind, MAX_FILE_BYTES};
use super::store::{io_error, Fs, Tx};

/// How durable a WRITE is when it is answered (the `committed` of RFC 8881 §18.32.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// In the volume's page cache and the in-memory map only, until [`Fs::flush`].
    Unstable,
    /// Data synced and the map committed to the store.
    Stable,
}

impl Fs {
    /// Reads file data through the extent map (READ through the MDS).
    pub fn read(&self, id: u64, off: u64, count: u32) -> Result<(Vec<u8>, bool), NfsStat> {
        let ino = self.get(id)?;
        match ino.kind {
            Kind::File => {}
            Kind::Dir => return Err(NfsStat::ISDIR),
            Kind::Symlink(_) | Kind::Special { .. } => return Err(NfsStat::INVAL),
        }
        if off >= ino.size {
            return Ok((Vec::new(), true));
        }
        let end = ino.size.min(off + u64::from(count));
        let mut buf = vec![0u8; usize::try_from(end - off).map_err(|_| NfsStat::INVAL)?];
        for e in &ino.extents {
            if e.state != ExtState::Written || e.end() <= off || e.file_off >= end {
                continue;
            }
            let a = e.file_off.max(off);
            let b = e.end().min(end);
            let dst = &mut buf
                [usize::try_from(a - off).unwrap_or(0)..usize::try_from(b - off).unwrap_or(0)];
            self.vol
                .read(e.vol_off + (a - e.file_off), dst)
                .map_err(io_error("read"))?;
        }
        Ok((buf, end >= ino.size))
    }

    /// True when writing this range through the MDS changes the extent map (allocation or
    /// INVALID → written), which makes cached layouts stale.
    pub fn write_changes_map(&self, id: u64, off: u64, len: u64) -> bool {
        let Ok(ino) = self.get(id) else { return false };
        let a = off / SECTOR_BYTES * SECTOR_BYTES;
        let b = round_up(off + len, SECTOR_BYTES);
        let mut covered = a;
        for e in &ino.extents {
            if e.end() <= a || e.file_off >= b {
                continue;
            }
            if e.file_off > covered || e.state != ExtState::Written {
                return true;
            }
            covered = e.end();
        }
        covered < b || ino.cow.iter().any(|e| e.file_off < b && e.end() > a)
    }

    /// Writes file data through the MDS: allocates holes, zero-fills partial sectors of
    /// unwritten space and writes the volume. `wanted` [`Durability::Stable`] (FILE_SYNC4 or
    /// DATA_SYNC4) syncs the volume and commits the map before returning; `Unstable` leaves
    /// both to [`Fs::flush`] (see the module documentation). Returns what was done, which may
    /// be more than asked: a write that has to copy shared (cloned) blocks is always stable.
    pub fn write(
        &mut self,
        id: u64,
        off: u64,
        data: &[u8],
        wanted: Durability,
    ) -> Result<Durability, NfsStat> {
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        let ino = self.get(id)?;
        match ino.kind {
            Kind::File => {}
            Kind::Dir => return Err(NfsStat::ISDIR),
            Kind::Symlink(_) | Kind::Special { .. } => return Err(NfsStat::INVAL),
        }
        let end = off.checked_add(data.len() as u64).ok_or(NfsStat::FBIG)?;
        if end > MAX_FILE_BYTES {
            return Err(NfsStat::FBIG);
        }
        if data.is_empty() {
            return Ok(wanted);
        }
        let mut tx = Tx::default();
        // Shared blocks in the range are copied first (copy on write). That releases the
        // shared references in `tx`, which must reach the store together with the new map.
        self.unshare(id, off, data.len() as u64, &mut tx)?;
        let unshared = !tx.shared.is_empty() || !tx.inodes.is_empty();
        let map_changes = self.write_changes_map(id, off, data.len() as u64);
        self.ensure_allocated(id, off, data.len() as u64)?;
        let a = off / SECTOR_BYTES * SECTOR_BYTES;
        let b = round_up(end, SECTOR_BYTES);
        // Assemble the whole sectors: existing data for written ones, zeros for the rest.
        let mut buf = vec![0u8; usize::try_from(b - a).map_err(|_| NfsStat::INVAL)?];
        let ino = self.get(id)?;
        for e in &ino.extents {
            if e.end() <= a || e.file_off >= b {
                continue;
            }
            let x = e.file_off.max(a);
            let y = e.end().min(b);
            if e.state == ExtState::Written && (x < off || y > end) {
                // Only the partial head/tail sectors need the old contents.
                for (s, t) in [(x, off.min(y)), (end.max(x), y)] {
                    if s < t {
                        let dst = &mut buf[usize::try_from(s - a).unwrap_or(0)
                            ..usize::try_from(t - a).unwrap_or(0)];
                        self.vol
                            .read(e.vol_off + (s - e.file_off), dst)
                            .map_err(io_error("read"))?;
                    }
                }
            }
        }
        let d0 = usize::try_from(off - a).unwrap_or(0);
        buf[d0..d0 + data.len()].copy_from_slice(data);
        for e in &ino.extents {
            if e.end() <= a || e.file_off >= b {
                continue;
            }
            let x = e.file_off.max(a);
            let y = e.end().min(b);
            let src =
                &buf[usize::try_from(x - a).unwrap_or(0)..usize::try_from(y - a).unwrap_or(0)];
            self.vol
                .write(e.vol_off + (x - e.file_off), src)
                .map_err(io_error("write"))?;
        }
        self.volume_dirty = true;
        let stable = wanted == Durability::Stable || unshared;
        if stable {
            self.sync_volume()?;
        }
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
        set_state(&mut ino.extents, a, b, ExtState::Written);
        let grows = end > ino.size;
        if grows {
            ino.size = end;
        }
        ino.touch_data();
        if stable {
            tx.inodes.insert(id);
            self.commit(tx)?;
            return Ok(Durability::Stable);
        }
        if map_changes || grows {
            // The map or the size must be in the store at the next COMMIT.
            self.unstable.insert(id);
        }
        Ok(Durability::Unstable)
    }

    /// COMMIT (RFC 8881 §18.3): makes every write answered UNSTABLE durable — the volume
    /// synced, then the maps and sizes those writes changed committed to the store. The whole
    /// volume is synced at once, so the range of the COMMIT does not matter.
    pub fn flush(&mut self) -> Result<(), NfsStat> {
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        if !self.unstable.is_empty() {
            // Syncs the volume first (see `commit`).
            return self.commit(Tx::default());
        }
        self.sync_volume()
    }

    /// True while some write answered UNSTABLE is not yet durable.
    pub fn has_unstable_writes(&self) -> bool {
        self.volume_dirty || !self.unstable.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inode::ROOT_ID;
    use crate::fs::namespace::SetAttrs;
    use crate::fs::testing::mkfs;

    /// An UNSTABLE write is readable at once but reaches the store only with the next
    /// transaction: dropped without one (a crash), the store still has the file empty and
    /// the blocks free; after [`Fs::flush`] it has the data and the size.
    #[test]
    fn unstable_writes_reach_the_store_only_at_flush() {
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, 65536);
        let free0 = fs.free_bytes();
        let (f, _, _) = fs
            .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        let done = fs.write(f, 0, &[5u8; 8192], Durability::Unstable).unwrap();
        assert_eq!(done, Durability::Unstable);
        assert!(fs.has_unstable_writes());
        assert_eq!(fs.read(f, 0, 8192).unwrap().0, vec![5u8; 8192]);
        drop(fs);

        let mut fs = mkfs(&d, 65536);
        assert_eq!(fs.get(f).unwrap().size, 0, "an uncommitted size");
        assert_eq!(fs.free_bytes(), free0, "an uncommitted allocation");
        fs.check().unwrap();
        fs.write(f, 0, &[6u8; 8192], Durability::Unstable).unwrap();
        fs.write(f, 4096, &[7u8; 100], Durability::Unstable)
            .unwrap();
        fs.flush().unwrap();
        assert!(!fs.has_unstable_writes());
        drop(fs);

        let fs = mkfs(&d, 65536);
        let (data, eof) = fs.read(f, 0, 65536).unwrap();
        assert!(eof);
        let mut want = vec![6u8; 8192];
        want[4096..4196].fill(7);
        assert!(data == want, "committed data after reopening");
        assert_eq!(fs.free_bytes(), free0 - 65536);
        fs.check().unwrap();
    }

    /// Any other transaction takes the maps of earlier UNSTABLE writes with it, and a stable
    /// write answers stable.
    #[test]
    fn another_change_commits_unstable_maps_with_their_data() {
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, 4096);
        let (f, _, _) = fs
            .create(ROOT_ID, "a", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        fs.write(f, 0, &[8u8; 4096], Durability::Unstable).unwrap();
        fs.create(ROOT_ID, "b", Kind::File, 0, 0, &SetAttrs::default())
            .unwrap();
        assert!(!fs.has_unstable_writes());
        let done = fs.write(f, 4096, &[9u8; 4096], Durability::Stable).unwrap();
        assert_eq!(done, Durability::Stable);
        drop(fs);
        let fs = mkfs(&d, 4096);
        let want: Vec<u8> = [8u8, 9].iter().flat_map(|&b| [b; 4096]).collect();
        assert!(fs.read(f, 0, 8192).unwrap().0 == want);
        fs.check().unwrap();
    }
}
