//! Clones and copy on write: blocks shared between files, the private blocks a client writes
//! a shared range into, and the copies made when the MDS itself writes a shared range.

use std::collections::BTreeSet;

use pnfs_proto::nfs4::types::NfsStat;

use super::extents::{holes, merge, round_up, split_at, ExtState, Extent};
use super::inode::Kind;
use super::store::{sfault, Fs, Tx};

impl Fs {
    /// Replaces shared blocks in the range with private copies (MDS writes to clones).
    pub(super) fn unshare(
        &mut self,
        id: u64,
        off: u64,
        len: u64,
        tx: &mut Tx,
    ) -> Result<(), NfsStat> {
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

    pub(super) fn is_shared(&self, vol_off: u64, len: u64) -> bool {
        let bs = self.block_bytes;
        let first = vol_off / bs * bs;
        self.shared.range(first..vol_off + len).next().is_some()
    }

    /// For shared written blocks in the range, allocates the new (private) blocks a client
    /// will write into, recorded in `cow`.
    pub(super) fn prepare_cow(&mut self, id: u64, off: u64, end: u64) -> Result<(), NfsStat> {
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
}
