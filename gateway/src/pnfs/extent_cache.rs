//! The extent cache of one file: what the layouts we hold say about each byte.
//!
//! The file axis is cut into [`Piece`]s, sorted and non-overlapping (asserted after every
//! change). A piece has one [`PieceState`]; copy-on-write pairs (a READ_DATA extent covering an
//! INVALID_DATA one, RFC 5663 §2.3.4) become one `Invalid` piece that remembers its read source.
//! Writes into INVALID storage turn the written (server-block-aligned) range `Uncommitted`; a
//! successful LAYOUTCOMMIT turns it `ReadWrite`.

use lru::LruCache;
use pnfs_proto::layout::{Extent, ExtentState};
use pnfs_proto::nfs4::DeviceId;

use super::piece_map::PieceMap;

/// Where bytes live on a logical volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StorageRef {
    /// The logical volume (device).
    pub device_id: DeviceId,
    /// Offset on it of the piece's first byte.
    pub offset_bytes: u64,
}

impl StorageRef {
    pub(super) fn advanced(self, by_bytes: u64) -> Self {
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

/// Default width of the recency windows ([`ExtentCache::with_window`]): the default LAYOUTGET
/// chunk (`PnfsConfig::layout_chunk_bytes`).
pub const DEFAULT_RECENCY_WINDOW_BYTES: u64 = 64 << 20;
/// Largest cache checked whole after every change in debug builds.
const DEBUG_CHECK_MAX_PIECES: usize = 4096;
/// Narrowest recency window.
const MIN_RECENCY_WINDOW_BYTES: u64 = 4096;
/// Most windows one [`ExtentCache::touch`] marks: a longer range marks its first ones (a
/// request is far shorter; only a huge hole piece reaches it).
const MAX_TOUCH_WINDOWS: u64 = 64;

/// The sorted, non-overlapping pieces of one file, and which parts of the file were used
/// last (for the per-file bound, [`ExtentCache::eviction_ranges`]).
///
/// Recency is kept per window: the file cut into aligned ranges of `window_bytes` (the
/// LAYOUTGET chunk), in an LRU list (the `lru` crate). Per piece it would cost 8 bytes more
/// for 1M pieces and a scan to find the oldest; per window it costs one hash lookup per
/// request and ~100 bytes per window holding pieces. A window is what eviction returns
/// (one ranged LAYOUTRETURN), so a file over its bound gives back the parts used longest
/// ago instead of everything.
#[derive(Debug, Clone)]
pub struct ExtentCache {
    pieces: PieceMap,
    window_bytes: u64,
    /// Windows overlapping cached pieces, least recently used first.
    recency: LruCache<u64, ()>,
}

impl Default for ExtentCache {
    fn default() -> Self {
        Self::with_window(DEFAULT_RECENCY_WINDOW_BYTES)
    }
}

impl ExtentCache {
    /// An empty cache with the default recency window.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache whose recency (and eviction) unit is `window_bytes` (at least 4 KiB).
    pub fn with_window(window_bytes: u64) -> Self {
        Self {
            pieces: PieceMap::default(),
            window_bytes: window_bytes.max(MIN_RECENCY_WINDOW_BYTES),
            recency: LruCache::unbounded(),
        }
    }

    /// Number of pieces (the memory measure).
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.pieces.len() == 0
    }

    /// Every piece, in order.
    pub fn pieces(&self) -> impl Iterator<Item = Piece> + '_ {
        self.pieces.iter()
    }

    /// Panics if the pieces are not sorted, non-overlapping, nonzero and keyed correctly
    /// (the TigerBeetle-style invariant check, run after each change in debug builds).
    pub fn check_invariant(&self) {
        let mut prev_end = 0u64;
        for p in self.pieces.iter() {
            let k = p.file_offset_bytes;
            assert!(p.length_bytes > 0, "empty piece at {k}");
            assert!(
                k >= prev_end,
                "pieces overlap at {k} (previous ends at {prev_end})"
            );
            prev_end = p.end_bytes();
        }
        self.pieces.check_invariant();
        if self.is_empty() {
            assert_eq!(self.recency.len(), 0, "recency of an empty cache");
        }
    }

    /// In debug builds, the whole invariant after each change while the file holds at most
    /// [`DEBUG_CHECK_MAX_PIECES`] pieces (above that the O(pieces) check would make a
    /// change cost milliseconds, and tests that build 1M pieces would never end).
    fn debug_check(&self) {
        if cfg!(debug_assertions) && self.len() <= DEBUG_CHECK_MAX_PIECES {
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
        if let Some(p) = self.pieces.last_at_or_before(start) {
            if let Some(c) = p.clip(start, end) {
                out.push(c);
            }
        }
        for p in self.pieces.range(start + 1..end) {
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
        let Some(p) = self.pieces.last_before(at) else {
            return;
        };
        if p.end_bytes() <= at {
            return;
        }
        let k = p.file_offset_bytes;
        let head = Piece {
            length_bytes: at - k,
            ..p
        };
        let tail = Piece {
            file_offset_bytes: at,
            length_bytes: p.end_bytes() - at,
            state: p.state.advanced(at - k),
        };
        self.pieces.insert(head);
        self.pieces.insert(tail);
    }

    /// Removes and returns the pieces within `[start, end)` (cut at the edges).
    pub fn remove_range(&mut self, start: u64, end: u64) -> Vec<Piece> {
        if start >= end {
            return Vec::new();
        }
        self.split_at(start);
        self.split_at(end);
        let removed = self
            .pieces
            .keys(start..end)
            .into_iter()
            .filter_map(|k| self.pieces.remove(k))
            .collect();
        self.forget_unused_windows(start, end);
        self.debug_check();
        removed
    }

    /// Merges `piece` with neighbours that continue it seamlessly.
    fn coalesce_around(&mut self, start: u64, end: u64) {
        let mut keys: Vec<u64> = self
            .pieces
            .last_before(start)
            .map(|p| p.file_offset_bytes)
            .into_iter()
            .collect();
        keys.extend(self.pieces.keys(start..=end));
        let mut i = 0;
        while i + 1 < keys.len() {
            let (a, b) = (keys[i], keys[i + 1]);
            let (Some(pa), Some(pb)) = (self.pieces.get(a), self.pieces.get(b)) else {
                i += 1;
                continue;
            };
            if pa.end_bytes() == pb.file_offset_bytes
                && pa.state.continues(pa.length_bytes, pb.state)
            {
                self.pieces.remove(b);
                self.pieces.insert(Piece {
                    length_bytes: pa.length_bytes + pb.length_bytes,
                    ..pa
                });
                keys.remove(i + 1);
            } else {
                i += 1;
            }
        }
    }

    /// Adds the extents of one layout segment covering `[seg_start, seg_end)` (already
    /// validated by `pnfs_proto::layout::validate_extents`: sorted, COW pairs allowed).
    /// Extents are clipped to the segment. Our own `Uncommitted` pieces win over what the
    /// server sends (the server still calls them INVALID until our LAYOUTCOMMIT). The windows
    /// of the new pieces count as just used.
    pub fn insert_extents(
        &mut self,
        seg_start: u64,
        seg_end: u64,
        extents: &[Extent],
    ) -> Result<(), ExtentError> {
        let new_pieces = pieces_from_extents(seg_start, seg_end, extents)?;
        self.pieces
            .check_devices(new_pieces.iter())
            .map_err(|max| {
                ExtentError(format!("the file's layouts name more than {max} devices"))
            })?;
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
                        self.pieces.insert(c);
                    }
                }
                self.pieces.insert(*k);
                at = k.end_bytes();
            }
            if let Some(c) = p.clip(at, p.end_bytes()) {
                self.pieces.insert(c);
            }
            self.coalesce_around(p.file_offset_bytes, p.end_bytes());
            self.touch(p.file_offset_bytes, p.end_bytes());
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
        for k in self.pieces.keys(start..end) {
            if let Some(p) = self.pieces.get(k) {
                if let PieceState::Invalid { target, .. } = p.state {
                    self.pieces.insert(Piece {
                        state: PieceState::Uncommitted(target),
                        ..p
                    });
                }
            }
        }
        self.coalesce_around(start, end);
        self.debug_check();
    }

    /// The `Uncommitted` ranges within `[start, end)`, coalesced, in order. Costs
    /// O(uncommitted pieces), not O(pieces).
    pub fn uncommitted(&self, start: u64, end: u64) -> Vec<CommitRange> {
        let mut out: Vec<CommitRange> = Vec::new();
        if start >= end {
            return out;
        }
        let first = self
            .pieces
            .last_at_or_before(start)
            .filter(|p| matches!(p.state, PieceState::Uncommitted(_)));
        let rest = self.pieces.uncommitted(start + 1..end);
        for p in first
            .into_iter()
            .chain(rest)
            .filter_map(|p| p.clip(start, end))
        {
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

    /// Number of `Uncommitted` pieces (O(1)).
    pub fn uncommitted_count(&self) -> usize {
        self.pieces.uncommitted_len()
    }

    /// After a successful LAYOUTCOMMIT of `ranges`: `Uncommitted` → `ReadWrite` there.
    pub fn mark_committed(&mut self, ranges: &[CommitRange]) {
        for r in ranges {
            let (start, end) = (r.file_offset_bytes, r.file_offset_bytes + r.length_bytes);
            self.split_at(start);
            self.split_at(end);
            for k in self.pieces.keys(start..end) {
                if let Some(p) = self.pieces.get(k) {
                    if let PieceState::Uncommitted(s) = p.state {
                        self.pieces.insert(Piece {
                            state: PieceState::ReadWrite(s),
                            ..p
                        });
                    }
                }
            }
            self.coalesce_around(start, end);
        }
        self.debug_check();
    }

    /// The windows of `[start, end)` (at most [`MAX_TOUCH_WINDOWS`] of them).
    fn windows(&self, start: u64, end: u64) -> std::ops::RangeInclusive<u64> {
        let first = start / self.window_bytes;
        let last = (end.max(start + 1) - 1) / self.window_bytes;
        first..=last.min(first.saturating_add(MAX_TOUCH_WINDOWS - 1))
    }

    fn window_range(&self, w: u64) -> (u64, u64) {
        let s = w.saturating_mul(self.window_bytes);
        (s, s.saturating_add(self.window_bytes))
    }

    /// Marks the windows of `[start, end)` as just used (a cache hit, or new pieces).
    pub fn touch(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        for w in self.windows(start, end) {
            if !self.recency.promote(&w) {
                self.recency.put(w, ());
            }
        }
    }

    /// True if a piece overlaps `[start, end)`.
    fn covers_any(&self, start: u64, end: u64) -> bool {
        self.pieces
            .last_at_or_before(start)
            .is_some_and(|p| p.end_bytes() > start)
            || self.pieces.range(start..end).next().is_some()
    }

    /// Drops from the recency list the windows of `[start, end)` that no longer hold pieces,
    /// so it never lists more windows than hold pieces.
    fn forget_unused_windows(&mut self, start: u64, end: u64) {
        if self.is_empty() {
            self.recency.clear();
            return;
        }
        let first = start / self.window_bytes;
        let last = (end - 1) / self.window_bytes;
        let candidates: Vec<u64> = if last - first < self.recency.len() as u64 {
            (first..=last)
                .filter(|w| self.recency.contains(w))
                .collect()
        } else {
            self.recency
                .iter()
                .map(|(&w, _)| w)
                .filter(|w| (first..=last).contains(w))
                .collect()
        };
        for w in candidates {
            let (s, e) = self.window_range(w);
            if !self.covers_any(s, e) {
                self.recency.pop(&w);
            }
        }
    }

    /// How many pieces fewer the cache holds once `[start, end)` is removed (pieces cut at
    /// its edges stay, and a piece spanning the whole range becomes two).
    fn removal_gain(&self, start: u64, end: u64) -> usize {
        let mut overlapping = 0usize;
        let mut outside = 0usize;
        let mut count = |p: Piece| {
            if p.file_offset_bytes < end && p.end_bytes() > start {
                overlapping += 1;
                outside +=
                    usize::from(p.file_offset_bytes < start) + usize::from(p.end_bytes() > end);
            }
        };
        if let Some(p) = self.pieces.last_before(start) {
            count(p);
        }
        for p in self.pieces.range(start..end) {
            count(p);
        }
        overlapping.saturating_sub(outside)
    }

    /// The ranges to return so that the file gets back within `bound` pieces: whole
    /// windows, least recently used first, never one overlapping `keep` (the request that
    /// is being served) or `busy` (already being returned; what they will remove counts
    /// as done). The chosen windows leave the recency list; the caller must put them under
    /// recall and return them. Empty when the cache is within `bound`.
    pub fn eviction_ranges(
        &mut self,
        bound: usize,
        keep: (u64, u64),
        busy: &[(u64, u64)],
    ) -> Vec<(u64, u64)> {
        let pending: usize = busy.iter().map(|&(s, e)| self.removal_gain(s, e)).sum();
        let mut excess = self.len().saturating_sub(pending).saturating_sub(bound);
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut spared = Vec::new();
        while excess > 0 {
            let Some((w, ())) = self.recency.pop_lru() else {
                break;
            };
            let r = self.window_range(w);
            let o = |b: &(u64, u64)| r.0 < b.1 && b.0 < r.1;
            if o(&keep) || busy.iter().any(o) {
                spared.push(w);
                continue;
            }
            let gain = self.removal_gain(r.0, r.1);
            if gain == 0 {
                // Inside one piece that starts elsewhere: nothing to win here.
                continue;
            }
            excess = excess.saturating_sub(gain);
            match out.last_mut() {
                Some(last) if last.1 == r.0 => last.1 = r.1,
                _ => out.push(r),
            }
        }
        for w in spared {
            self.recency.put(w, ());
        }
        out
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

    const WINDOW: u64 = 64 * 1024;

    /// `windows` windows, each one INVALID extent with its first 4 KiB written: two pieces a
    /// window that never coalesce across windows.
    fn two_pieces_per_window(windows: u64) -> ExtentCache {
        let mut c = ExtentCache::with_window(WINDOW);
        for w in 0..windows {
            c.insert_extents(
                w * WINDOW,
                (w + 1) * WINDOW,
                &[ext(
                    w * WINDOW,
                    WINDOW,
                    w * 2 * WINDOW,
                    ExtentState::InvalidData,
                    D1,
                )],
            )
            .expect("insert");
            c.mark_written(w * WINDOW, w * WINDOW + 4096);
        }
        assert_eq!(c.len() as u64, 2 * windows);
        c
    }

    #[test]
    fn eviction_takes_least_recently_used_windows_and_spares_the_request_and_recalls() {
        let mut c = two_pieces_per_window(8);
        // Use order: 3 is the oldest, then 0, 1, 2, 4, ... (3 inserted then touched first).
        for w in [3u64, 0, 1, 2, 4, 5, 6, 7] {
            c.touch(w * WINDOW + 100, w * WINDOW + 200);
        }
        assert!(
            c.eviction_ranges(16, (0, 1), &[]).is_empty(),
            "within the bound"
        );
        // 4 pieces over: the two oldest windows (3, then 0).
        let r = c.eviction_ranges(12, (7 * WINDOW, 8 * WINDOW), &[]);
        assert_eq!(r, vec![(3 * WINDOW, 4 * WINDOW), (0, WINDOW)]);
        for &(s, e) in &r {
            c.remove_range(s, e);
        }
        assert_eq!(c.len(), 12);
        // The request's window and windows already being returned are never chosen, and
        // what those returns will remove counts as done.
        let busy = [(2 * WINDOW, 3 * WINDOW)];
        let r = c.eviction_ranges(8, (WINDOW, 2 * WINDOW), &busy);
        assert_eq!(
            r,
            vec![(4 * WINDOW, 5 * WINDOW)],
            "1 and 2 spared, 4 is next"
        );
        // Spared windows stay listed (and are now the most recent); window 4 is being
        // returned (its 2 pieces count as gone).
        let r = c.eviction_ranges(4, (0, 1), &[(4 * WINDOW, 5 * WINDOW)]);
        assert_eq!(
            r,
            vec![(5 * WINDOW, 8 * WINDOW)],
            "adjacent windows become one range"
        );
        c.check_invariant();
    }

    #[test]
    fn windows_without_pieces_leave_the_recency_list() {
        let mut c = two_pieces_per_window(4);
        c.remove_range(WINDOW, 3 * WINDOW);
        assert_eq!(c.recency.len(), 2, "{:?}", c.recency);
        // Nothing to win in windows that are gone: the next over-bound call takes real ones.
        assert_eq!(
            c.eviction_ranges(2, (0, 1), &[]),
            vec![(3 * WINDOW, 4 * WINDOW)]
        );
        c.remove_range(0, u64::MAX);
        assert_eq!(c.recency.len(), 0);
        c.check_invariant();
    }

    #[test]
    fn a_window_inside_one_long_piece_is_not_worth_evicting() {
        let mut c = ExtentCache::with_window(WINDOW);
        c.insert_extents(
            0,
            4 * WINDOW,
            &[ext(0, 4 * WINDOW, 0, ExtentState::ReadWriteData, D1)],
        )
        .expect("insert");
        c.insert_extents(
            4 * WINDOW,
            5 * WINDOW,
            &[ext(
                4 * WINDOW,
                WINDOW,
                9 * WINDOW,
                ExtentState::ReadWriteData,
                D2,
            )],
        )
        .expect("insert");
        for w in [1u64, 2, 0, 4] {
            c.touch(w * WINDOW, w * WINDOW + 1);
        }
        assert_eq!(c.len(), 2);
        // Windows 1 and 2 lie inside the first piece (removing them would cut it in two);
        // window 0 holds its start: returning it drops the piece's head only (no gain
        // either), so the second piece's window is the one that helps.
        let r = c.eviction_ranges(1, (3 * WINDOW, 3 * WINDOW + 1), &[]);
        assert_eq!(r, vec![(4 * WINDOW, 5 * WINDOW)]);
    }

    #[test]
    fn uncommitted_index_follows_every_change() {
        let mut c = two_pieces_per_window(4);
        assert_eq!(c.uncommitted_count(), 4);
        // A range starting inside an uncommitted piece still finds it.
        let u = c.uncommitted(2048, 3 * WINDOW + 1024);
        assert_eq!(
            u.iter()
                .map(|r| (r.file_offset_bytes, r.length_bytes))
                .collect::<Vec<_>>(),
            vec![
                (2048, 2048),
                (WINDOW, 4096),
                (2 * WINDOW, 4096),
                (3 * WINDOW, 1024)
            ]
        );
        c.mark_committed(&c.uncommitted(0, 2 * WINDOW));
        assert_eq!(c.uncommitted_count(), 2);
        c.remove_range(2 * WINDOW + 1024, 2 * WINDOW + 2048);
        assert_eq!(c.uncommitted_count(), 3, "a cut piece counts twice");
        c.check_invariant();
    }

    #[test]
    fn huge_pieces_and_the_device_limit() {
        let mut c = ExtentCache::new();
        // A hole to the end of the file axis (a length no slot word can hold).
        c.insert_extents(
            0,
            u64::MAX,
            &[ext(0, u64::MAX, 0, ExtentState::NoneData, D1)],
        )
        .expect("insert");
        assert_eq!(c.lookup(0, u64::MAX)[0].length_bytes, u64::MAX);
        c.insert_extents(
            1 << 50,
            (1 << 50) + 4096,
            &[ext(1 << 50, 4096, 0, ExtentState::ReadWriteData, D1)],
        )
        .expect("insert");
        let p: Vec<(u64, u64)> = c
            .pieces()
            .map(|p| (p.file_offset_bytes, p.length_bytes))
            .collect();
        assert_eq!(
            p,
            vec![
                (0, 1 << 50),
                (1 << 50, 4096),
                ((1 << 50) + 4096, u64::MAX - (1 << 50) - 4096)
            ]
        );
        c.remove_range(0, u64::MAX);
        c.check_invariant();

        // One device more than the table holds is refused, and changes nothing.
        let dev = |i: usize| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            DeviceId(id)
        };
        let many: Vec<Extent> = (0..=super::super::piece_map::MAX_DEVICES_PER_FILE)
            .map(|i| ext(i as u64 * 4096, 4096, 0, ExtentState::ReadWriteData, dev(i)))
            .collect();
        let err = c
            .insert_extents(0, u64::MAX, &many)
            .expect_err("too many devices");
        assert!(err.0.contains("devices"), "{err:?}");
        assert!(c.is_empty());
        c.insert_extents(0, u64::MAX, &many[1..])
            .expect("the limit itself is fine");
        assert_eq!(c.len(), many.len() - 1);
        // Devices no piece names any more make room for new ones.
        c.remove_range(4096 * 2, u64::MAX);
        c.insert_extents(0, u64::MAX, &many[..1])
            .expect("room after the table is compacted");
        let devs: Vec<DeviceId> = c
            .pieces()
            .filter_map(|p| match p.state {
                PieceState::ReadWrite(s) => Some(s.device_id),
                _ => None,
            })
            .collect();
        assert_eq!(devs, vec![dev(0), dev(1)]);
        c.check_invariant();
    }
}
