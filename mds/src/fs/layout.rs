//! Layouts: the pieces of a LAYOUTGET computed from the extent map, and LAYOUTCOMMIT.

use pnfs_proto::nfs4::types::{NfsStat, NfsTime};

use super::extents::{merge, round_up, set_state, split_at, ExtState, Extent, SECTOR_BYTES};
use super::inode::{Kind, MAX_FILE_BYTES};
use super::store::{Fs, Tx};
use super::truncate::Grant;

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

impl Fs {
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
