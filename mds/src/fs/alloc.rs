//! The block allocator: the free-space map (derived from the extent maps at start, never
//! stored), allocation near a hint, and the reference counts of blocks shared by clones.

use std::collections::BTreeSet;

use pnfs_proto::nfs4::types::NfsStat;

use super::extents::{holes, merge, round_up, ExtState, Extent, MAX_EXTENTS_PER_FILE};
use super::store::{Fs, Tx};

impl Fs {
    pub(super) fn rebuild_free(&mut self) {
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
        self.label_bytes = 0;
        let nblocks = self.vol.size_bytes / bs;
        let mut run: Option<(u64, u64)> = None;
        for i in 0..nblocks {
            let b = i * bs;
            let label = self.vol.touches_label(b, bs);
            if label {
                self.label_bytes += bs;
            }
            let ok = !used.contains(&b) && !label;
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

    /// Drops one reference to a volume range; blocks with no reference left become free.
    pub(super) fn release(&mut self, vol_off: u64, len: u64, tx: &mut Tx) {
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
    pub(super) fn alloc(&mut self, len: u64, hint: u64) -> Result<Vec<(u64, u64)>, NfsStat> {
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
    pub(super) fn ensure_allocated(&mut self, id: u64, off: u64, len: u64) -> Result<(), NfsStat> {
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
}
