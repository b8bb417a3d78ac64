//! The extent cache of one file: what the layouts we hold say about each byte.
//!
//! The file axis is cut into [`Piece`]s, sorted and non-overlapping (asserted after every
//! change). A piece has one [`PieceState`]; copy-on-write pairs (a READ_DATA extent covering an
//! INVALID_DATA one, RFC 5663 §2.3.4) become one `Invalid` piece that remembers its read source.
//! Writes into INVALID storage turn the written (server-block-aligned) range `Uncommitted`; a
//! successful LAYOUTCOMMIT turns it `ReadWrite`.

use std::collections::BTreeMap;

use pnfs_proto::layout::{Extent, ExtentState};
use pnfs_proto::nfs4::DeviceId;

/// Where bytes live on a logical volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StorageRef {
    /// The logical volume (device).
    pub device_id: DeviceId,
    /// Offset on it of the piece's first byte.
    pub offset_bytes: u64,
}

impl StorageRef {
    fn advanced(self, by_bytes: u64) -> Self {
        Self {
            device_id: self.device_id,
            offset_bytes: self.offset_bytes + by_bytes,
        }
    }
}

/// What one piece of the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceState {
    /// READ_WRITE_DATA (or committed by us): read and write in place.
    ReadWrite(StorageRef),
    /// Formerly INVALID, written by us, LAYOUTCOMMIT pending: read and write in place.
    Uncommitted(StorageRef),
    /// READ_DATA with no INVALID cover: readable only (writes need the MDS or a new layout).
    ReadOnly(StorageRef),
    /// INVALID_DATA not yet written: reads come from `cow_source` or are zeros; a write fills
    /// whole server blocks into `target`.
    Invalid {
        /// Where writes go.
        target: StorageRef,
        /// The READ_DATA source of a copy-on-write pair.
        cow_source: Option<StorageRef>,
    },
    /// NONE_DATA: a hole; reads zeros; writes go through the MDS.
    None,
}

impl PieceState {
    fn advanced(self, by: u64) -> Self {
        match self {
            Self::ReadWrite(s) => Self::ReadWrite(s.advanced(by)),
            Self::Uncommitted(s) => Self::Uncommitted(s.advanced(by)),
            Self::ReadOnly(s) => Self::ReadOnly(s.advanced(by)),
            Self::Invalid { target, cow_source } => Self::Invalid {
                target: target.advanced(by),
                cow_source: cow_source.map(|c| c.advanced(by)),
            },
            Self::None => Self::None,
        }
    }

    /// True if `next` (starting `len` bytes later) continues this state seamlessly.
    fn continues(self, len: u64, next: Self) -> bool {
        self.advanced(len) == next
    }
}

/// A run of the file with one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// First file byte.
    pub file_offset_bytes: u64,
    /// Length (nonzero).
    pub length_bytes: u64,
    /// The state at `file_offset_bytes`.
    pub state: PieceState,
}

impl Piece {
    /// One past the last byte.
    pub fn end_bytes(&self) -> u64 {
        self.file_offset_bytes + self.length_bytes
    }

    /// The part of this piece within `[start, end)`, if any.
    pub fn clip(&self, start: u64, end: u64) -> Option<Piece> {
        let s = start.max(self.file_offset_bytes);
        let e = end.min(self.end_bytes());
        (s < e).then(|| Piece {
            file_offset_bytes: s,
            length_bytes: e - s,
            state: self.state.advanced(s - self.file_offset_bytes),
        })
    }
}

/// A pending LAYOUTCOMMIT range: file range and where it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitRange {
    /// File offset.
    pub file_offset_bytes: u64,
    /// Length.
    pub length_bytes: u64,
    /// Storage.
    pub storage: StorageRef,
}

/// Why a layout body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentError(pub String);

/// The sorted, non-overlapping pieces of one file.
#[derive(Debug, Default, Clone)]
pub struct ExtentCache {
    pieces: BTreeMap<u64, Piece>,
}

impl ExtentCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of pieces (the memory measure).
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Every piece, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &Piece> {
        self.pieces.values()
    }

    /// Panics if the pieces are not sorted, non-overlapping, nonzero and keyed correctly
    /// (the TigerBeetle-style invariant check, run after each change in debug builds).
    pub fn check_invariant(&self) {
        let mut prev_end = 0u64;
        for (&k, p) in &self.pieces {
            assert_eq!(k, p.file_offset_bytes, "piece keyed at the wrong offset");
            assert!(p.length_bytes > 0, "empty piece at {k}");
            assert!(
                k >= prev_end,
                "pieces overlap at {k} (previous ends at {prev_end})"
            );
            prev_end = p.end_bytes();
        }
    }

    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            self.check_invariant();
        }
    }

    /// The pieces overlapping `[start, end)`, clipped to it, in order.
    pub fn lookup(&self, start: u64, end: u64) -> Vec<Piece> {
        let mut out = Vec::new();
        if start >= end {
            return out;
        }
        // The piece that starts at or before `start` may reach into the range.
        if let Some((_, p)) = self.pieces.range(..=start).next_back() {
            if let Some(c) = p.clip(start, end) {
                out.push(c);
            }
        }
        for (_, p) in self.pieces.range(start + 1..end) {
            if let Some(c) = p.clip(start, end) {
                out.push(c);
            }
        }
        out
    }

    /// The pieces of `[start, end)` (clipped to it) when they cover all of it without a gap,
    /// else `None`: one walk of the map and one allocation, for the per-request plan (the same
    /// answer as `gaps(start, end).is_empty()` followed by `lookup(start, end)`).
    pub fn lookup_covered(&self, start: u64, end: u64) -> Option<Vec<Piece>> {
        let pieces = self.lookup(start, end);
        let mut at = start;
        for p in &pieces {
            if p.file_offset_bytes != at {
                return None;
            }
            at = p.end_bytes();
        }
        (at >= end).then_some(pieces)
    }

    /// The parts of `[start, end)` no piece covers.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = start;
        for p in self.lookup(start, end) {
            if p.file_offset_bytes > at {
                gaps.push((at, p.file_offset_bytes));
            }
            at = p.end_bytes();
        }
        if at < end {
            gaps.push((at, end));
        }
        gaps
    }

    /// Cuts pieces so that `at` is a piece boundary.
    fn split_at(&mut self, at: u64) {
        let Some((&k, &p)) = self.pieces.range(..at).next_back() else {
            return;
        };
        if p.end_bytes() <= at {
            return;
        }
        let head = Piece {
            length_bytes: at - k,
            ..p
        };
        let tail = Piece {
            file_offset_bytes: at,
            length_bytes: p.end_bytes() - at,
            state: p.state.advanced(at - k),
        };
        self.pieces.insert(k, head);
        self.pieces.insert(at, tail);
    }

    /// Removes and returns the pieces within `[start, end)` (cut at the edges).
    pub fn remove_range(&mut self, start: u64, end: u64) -> Vec<Piece> {
        if start >= end {
            return Vec::new();
        }
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.pieces.range(start..end).map(|(&k, _)| k).collect();
        let removed = keys
            .into_iter()
            .filter_map(|k| self.pieces.remove(&k))
            .collect();
        self.debug_check();
        removed
    }

    /// Merges `piece` with neighbours that continue it seamlessly.
    fn coalesce_around(&mut self, start: u64, end: u64) {
        let mut keys: Vec<u64> = self
            .pieces
            .range(..start)
            .next_back()
            .map(|(&k, _)| k)
            .into_iter()
            .collect();
        keys.extend(self.pieces.range(start..=end).map(|(&k, _)| k));
        let mut i = 0;
        while i + 1 < keys.len() {
            let (a, b) = (keys[i], keys[i + 1]);
            let (Some(&pa), Some(&pb)) = (self.pieces.get(&a), self.pieces.get(&b)) else {
                i += 1;
                continue;
            };
            if pa.end_bytes() == pb.file_offset_bytes
                && pa.state.continues(pa.length_bytes, pb.state)
            {
                self.pieces.remove(&b);
                self.pieces.insert(
                    a,
                    Piece {
                        length_bytes: pa.length_bytes + pb.length_bytes,
                        ..pa
                    },
                );
                keys.remove(i + 1);
            } else {
                i += 1;
            }
        }
    }

    /// Adds the extents of one layout segment covering `[seg_start, seg_end)` (already
    /// validated by `pnfs_proto::layout::validate_extents`: sorted, COW pairs allowed).
    /// Extents are clipped to the segment. Our own `Uncommitted` pieces win over what the
    /// server sends (the server still calls them INVALID until our LAYOUTCOMMIT).
    pub fn insert_extents(
        &mut self,
        seg_start: u64,
        seg_end: u64,
        extents: &[Extent],
    ) -> Result<(), ExtentError> {
        let new_pieces = pieces_from_extents(seg_start, seg_end, extents)?;
        for p in new_pieces {
            // Keep Uncommitted pieces; replace everything else in p's range.
            let keep: Vec<Piece> = self
                .lookup(p.file_offset_bytes, p.end_bytes())
                .into_iter()
                .filter(|q| matches!(q.state, PieceState::Uncommitted(_)))
                .collect();
            self.remove_range(p.file_offset_bytes, p.end_bytes());
            let mut at = p.file_offset_bytes;
            for k in &keep {
                if k.file_offset_bytes > at {
                    if let Some(c) = p.clip(at, k.file_offset_bytes) {
                        self.pieces.insert(c.file_offset_bytes, c);
                    }
                }
                self.pieces.insert(k.file_offset_bytes, *k);
                at = k.end_bytes();
            }
            if let Some(c) = p.clip(at, p.end_bytes()) {
                self.pieces.insert(c.file_offset_bytes, c);
            }
            self.coalesce_around(p.file_offset_bytes, p.end_bytes());
        }
        self.debug_check();
        Ok(())
    }

    /// Turns the `Invalid` parts of `[start, end)` into `Uncommitted` (after the data of the
    /// whole range reached the volume). Other states are left alone.
    pub fn mark_written(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.pieces.range(start..end).map(|(&k, _)| k).collect();
        for k in keys {
            if let Some(p) = self.pieces.get_mut(&k) {
                if let PieceState::Invalid { target, .. } = p.state {
                    p.state = PieceState::Uncommitted(target);
                }
            }
        }
        self.coalesce_around(start, end);
        self.debug_check();
    }

    /// The `Uncommitted` ranges within `[start, end)`, coalesced, in order.
    pub fn uncommitted(&self, start: u64, end: u64) -> Vec<CommitRange> {
        let mut out: Vec<CommitRange> = Vec::new();
        for p in self.lookup(start, end) {
            if let PieceState::Uncommitted(s) = p.state {
                if let Some(last) = out.last_mut() {
                    if last.file_offset_bytes + last.length_bytes == p.file_offset_bytes
                        && last.storage.advanced(last.length_bytes) == s
                    {
                        last.length_bytes += p.length_bytes;
                        continue;
                    }
                }
                out.push(CommitRange {
                    file_offset_bytes: p.file_offset_bytes,
                    length_bytes: p.length_bytes,
                    storage: s,
                });
            }
        }
        out
    }

    /// Number of `Uncommitted` pieces.
    pub fn uncommitted_count(&self) -> usize {
        self.pieces
            .values()
            .filter(|p| matches!(p.state, PieceState::Uncommitted(_)))
            .count()
    }

    /// After a successful LAYOUTCOMMIT of `ranges`: `Uncommitted` → `ReadWrite` there.
    pub fn mark_committed(&mut self, ranges: &[CommitRange]) {
        for r in ranges {
            let (start, end) = (r.file_offset_bytes, r.file_offset_bytes + r.length_bytes);
            self.split_at(start);
            self.split_at(end);
            let keys: Vec<u64> = self.pieces.range(start..end).map(|(&k, _)| k).collect();
            for k in keys {
                if let Some(p) = self.pieces.get_mut(&k) {
                    if let PieceState::Uncommitted(s) = p.state {
                        p.state = PieceState::ReadWrite(s);
                    }
                }
            }
            self.coalesce_around(start, end);
        }
        self.debug_check();
    }
}

/// Builds pieces from validated extents, clipped to `[seg_start, seg_end)`.
fn pieces_from_extents(
    seg_start: u64,
    seg_end: u64,
    extents: &[Extent],
) -> Result<Vec<Piece>, ExtentError> {
    let storage = |e: &Extent| StorageRef {
        device_id: e.device_id,
        offset_bytes: e.storage_offset_bytes,
    };
    let reads: Vec<&Extent> = extents
        .iter()
        .filter(|e| e.state == ExtentState::ReadData)
        .collect();
    let invalids: Vec<&Extent> = extents
        .iter()
        .filter(|e| e.state == ExtentState::InvalidData)
        .collect();
    let mut out: Vec<Piece> = Vec::new();
    let mut push = |p: Piece| {
        if let Some(c) = p.clip(seg_start, seg_end) {
            out.push(c);
        }
    };
    for e in extents {
        let end = e
            .file_end_bytes()
            .ok_or_else(|| ExtentError("extent end overflows".into()))?;
        match e.state {
            ExtentState::ReadWriteData => push(Piece {
                file_offset_bytes: e.file_offset_bytes,
                length_bytes: e.length_bytes,
                state: PieceState::ReadWrite(storage(e)),
            }),
            ExtentState::NoneData => push(Piece {
                file_offset_bytes: e.file_offset_bytes,
                length_bytes: e.length_bytes,
                state: PieceState::None,
            }),
            ExtentState::ReadData => {
                // The parts not covered by an INVALID extent are plain read-only.
                let mut at = e.file_offset_bytes;
                let mut covers: Vec<(u64, u64)> = invalids
                    .iter()
                    .filter_map(|i| {
                        let s = i.file_offset_bytes.max(e.file_offset_bytes);
                        let t = i.file_end_bytes()?.min(end);
                        (s < t).then_some((s, t))
                    })
                    .collect();
                covers.sort_unstable();
                for (s, t) in covers {
                    if s > at {
                        push(Piece {
                            file_offset_bytes: at,
                            length_bytes: s - at,
                            state: PieceState::ReadOnly(
                                storage(e).advanced(at - e.file_offset_bytes),
                            ),
                        });
                    }
                    at = at.max(t);
                }
                if at < end {
                    push(Piece {
                        file_offset_bytes: at,
                        length_bytes: end - at,
                        state: PieceState::ReadOnly(storage(e).advanced(at - e.file_offset_bytes)),
                    });
                }
            }
            ExtentState::InvalidData => {
                // Cut at the edges of READ_DATA extents that cover it (copy-on-write source).
                let mut cuts: Vec<u64> = vec![e.file_offset_bytes, end];
                for r in &reads {
                    let r_end = r.file_end_bytes().unwrap_or(u64::MAX);
                    for c in [r.file_offset_bytes, r_end] {
                        if c > e.file_offset_bytes && c < end {
                            cuts.push(c);
                        }
                    }
                }
                cuts.sort_unstable();
                cuts.dedup();
                for w in cuts.windows(2) {
                    let (s, t) = (w[0], w[1]);
                    let cow_source = reads.iter().find_map(|r| {
                        let r_end = r.file_end_bytes()?;
                        (r.file_offset_bytes <= s && t <= r_end)
                            .then(|| storage(r).advanced(s - r.file_offset_bytes))
                    });
                    push(Piece {
                        file_offset_bytes: s,
                        length_bytes: t - s,
                        state: PieceState::Invalid {
                            target: storage(e).advanced(s - e.file_offset_bytes),
                            cow_source,
                        },
                    });
                }
            }
        }
    }
    out.sort_by_key(|p| p.file_offset_bytes);
    for w in out.windows(2) {
        if w[0].end_bytes() > w[1].file_offset_bytes {
            return Err(ExtentError(format!(
                "extents overlap at file offset {}",
                w[1].file_offset_bytes
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: DeviceId = DeviceId([1; 16]);
    const D2: DeviceId = DeviceId([2; 16]);

    fn ext(off: u64, len: u64, st: u64, state: ExtentState, dev: DeviceId) -> Extent {
        Extent {
            device_id: dev,
            file_offset_bytes: off,
            length_bytes: len,
            storage_offset_bytes: st,
            state,
        }
    }

    #[test]
    fn lookup_gaps_and_split_storage_offsets() {
        let mut c = ExtentCache::new();
        c.insert_extents(
            0,
            1 << 20,
            &[
                ext(0, 8192, 100_000, ExtentState::ReadWriteData, D1),
                ext(16384, 8192, 0, ExtentState::NoneData, D1),
            ],
        )
        .expect("insert");
        let l = c.lookup(4096, 20000);
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0].state,
            PieceState::ReadWrite(StorageRef {
                device_id: D1,
                offset_bytes: 104_096
            })
        );
        assert_eq!(l[0].length_bytes, 4096);
        assert_eq!(c.gaps(0, 30000), vec![(8192, 16384), (24576, 30000)]);
        assert_eq!(c.lookup_covered(0, 30000), None, "gaps inside");
        assert_eq!(c.lookup_covered(20000, 30000), None, "a gap at the end");
        assert_eq!(c.lookup_covered(8192, 20000), None, "a gap at the start");
        assert_eq!(c.lookup_covered(4096, 8000), Some(c.lookup(4096, 8000)));
        let both = c.lookup_covered(16384, 24576).expect("one piece covers it");
        assert_eq!(both.len(), 1);
        assert_eq!(c.lookup_covered(5, 5), Some(Vec::new()), "an empty range");
    }

    #[test]
    fn copy_on_write_pair_becomes_invalid_with_source_and_commits() {
        let mut c = ExtentCache::new();
        let exts = [
            ext(0, 65536, 1 << 20, ExtentState::ReadData, D1),
            ext(16384, 16384, 4096, ExtentState::InvalidData, D2),
        ];
        let v = pnfs_proto::layout::validate_extents(&exts).expect("valid COW pair");
        c.insert_extents(0, u64::MAX, v.as_slice()).expect("insert");
        let p = c.lookup(0, 65536);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(matches!(p[0].state, PieceState::ReadOnly(_)));
        assert_eq!(
            p[1].state,
            PieceState::Invalid {
                target: StorageRef {
                    device_id: D2,
                    offset_bytes: 4096
                },
                cow_source: Some(StorageRef {
                    device_id: D1,
                    offset_bytes: (1 << 20) + 16384
                }),
            }
        );
        c.mark_written(20480, 24576);
        let u = c.uncommitted(0, u64::MAX);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].storage.offset_bytes, 4096 + 4096);
        assert_eq!(c.uncommitted_count(), 1);
        // A fresh layout from the server (still INVALID there) must not undo our write.
        c.insert_extents(0, u64::MAX, v.as_slice())
            .expect("re-insert");
        assert_eq!(c.uncommitted(0, u64::MAX), u);
        c.mark_committed(&u);
        assert_eq!(c.uncommitted_count(), 0);
        let w = c.lookup(20480, 24576);
        assert_eq!(
            w[0].state,
            PieceState::ReadWrite(StorageRef {
                device_id: D2,
                offset_bytes: 8192
            })
        );
        c.check_invariant();
    }

    #[test]
    fn adjacent_writes_coalesce_and_remove_range_cuts() {
        let mut c = ExtentCache::new();
        c.insert_extents(
            0,
            u64::MAX,
            &[ext(0, 1 << 20, 0, ExtentState::InvalidData, D1)],
        )
        .expect("insert");
        for i in 0..16u64 {
            c.mark_written(i * 4096, (i + 1) * 4096);
        }
        assert_eq!(c.uncommitted(0, u64::MAX).len(), 1);
        assert_eq!(c.len(), 2);
        let removed = c.remove_range(8192, 1 << 19);
        assert_eq!(removed.len(), 2);
        assert_eq!(c.gaps(0, 1 << 20), vec![(8192, 1 << 19)]);
        c.check_invariant();
    }
}
