//! Truncation and the fence it puts up for late LAYOUTCOMMITs: a commit never makes data or
//! size true past a truncation that came after the layout the data was written with.

use pnfs_proto::nfs4::types::NfsStat;

use super::extents::{merge, round_up, split_at, ExtState, SECTOR_BYTES};
use super::store::{sfault, Fs, Tx};

/// Most truncations remembered per file for fencing late LAYOUTCOMMITs; older ones are folded
/// into the oldest kept one (which can only make the fence stricter).
pub const MAX_CUTS_PER_FILE: usize = 64;

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

impl Fs {
    pub(super) fn truncate(&mut self, id: u64, size: u64, tx: &mut Tx) -> Result<(), NfsStat> {
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

    /// Current truncation generation: record it with every RW layout granted, and give it back
    /// in the [`Grant`]s of a LAYOUTCOMMIT.
    pub fn cut_gen(&self) -> u64 {
        self.cut_gen
    }

    /// The largest size a LAYOUTCOMMIT may make true at file offset `at`: the smallest size the
    /// file was truncated to after the newest of `grants` covering `at` was granted
    /// (`u64::MAX` when there was no such truncation). Offsets no grant covers count as granted
    /// before every truncation.
    pub(super) fn commit_limit(&self, id: u64, grants: &[Grant], at: u64) -> u64 {
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
    pub(super) fn fence_commit(
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
}
