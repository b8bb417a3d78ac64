//! Extent maps: a file's byte ranges mapped to logical-volume ranges, sorted and
//! non-overlapping, and the pure functions that cut, merge and search them.

/// State granularity of extent maps.
pub const SECTOR_BYTES: u64 = 4096;
/// Most extents one file may have (keeps records and layouts bounded).
pub const MAX_EXTENTS_PER_FILE: usize = 1 << 20;

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
    pub(super) fn end(&self) -> u64 {
        self.file_off + self.len
    }
}

pub(super) fn round_up(v: u64, unit: u64) -> u64 {
    v.div_ceil(unit) * unit
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

pub(super) fn set_state(exts: &mut Vec<Extent>, a: u64, b: u64, st: ExtState) {
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
pub(super) fn holes(exts: &[Extent], a: u64, b: u64) -> Vec<(u64, u64)> {
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
