//! The compact store behind [`super::extent_cache::ExtentCache`]: pieces keyed by file offset,
//! 24 bytes a piece in the map (key included) instead of 88.
//!
//! A [`Piece`] as the rest of the layer sees it is 80 bytes (two 16-byte device IDs and two
//! storage offsets, for the rare copy-on-write pair). Kept like that in a `BTreeMap`, 1M
//! pieces took ~150 MiB; docs/requirements.md allows 64 MiB. So the map holds a 16-byte
//! [`Slot`]: the storage offset and one word with the length (48 bits), the device as an
//! index into a per-file table ([`MAX_DEVICES_PER_FILE`] distinct devices at most) and the
//! kind. The rare rest lives in side maps keyed like the piece: the copy-on-write source of
//! an INVALID piece (only clones have one) and lengths of 256 TiB or more (huge holes).
//! A `BTreeMap` built in order leaves its nodes about half full: 1M slots of 24 bytes took
//! 63.6 bytes a piece, of 16 bytes 49. Every change goes through
//! [`PieceMap::insert`] / [`PieceMap::remove`], which also keep the set of `Uncommitted`
//! pieces, so counting and listing pending commits costs O(pending), not O(pieces).
//! Bytes per piece are measured by `gateway/tests/extent_cache_memory.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeBounds;

use pnfs_proto::nfs4::DeviceId;

use super::extent_cache::{Piece, PieceState, StorageRef};

/// Most distinct devices the pieces of one file may name (the table is emptied whenever the
/// file caches nothing). A layout naming more is refused.
pub const MAX_DEVICES_PER_FILE: usize = 1 << DEVICE_BITS;

/// Bits of [`Slot::word`]: length, then device index, then kind.
const LENGTH_BITS: u32 = 48;
const DEVICE_BITS: u32 = 12;
const KIND_SHIFT: u32 = LENGTH_BITS + DEVICE_BITS;
const LENGTH_MASK: u64 = (1 << LENGTH_BITS) - 1;
const DEVICE_MASK: u64 = (1 << DEVICE_BITS) - 1;
/// The length field value that means "in [`PieceMap::long_lengths`]".
const LONG_LENGTH: u64 = LENGTH_MASK;

/// The kind of a stored piece (the state without its storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    ReadWrite = 0,
    Uncommitted = 1,
    ReadOnly = 2,
    /// INVALID without a copy-on-write source.
    Invalid = 3,
    /// INVALID whose source is in [`PieceMap::cow_sources`] under the same key.
    InvalidCow = 4,
    Hole = 5,
}

impl Kind {
    fn from_bits(v: u64) -> Self {
        match v {
            0 => Self::ReadWrite,
            1 => Self::Uncommitted,
            2 => Self::ReadOnly,
            3 => Self::Invalid,
            4 => Self::InvalidCow,
            _ => Self::Hole,
        }
    }
}

/// One piece without its file offset (the map key).
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Length (or [`LONG_LENGTH`]), device index and kind, packed.
    word: u64,
    /// Storage offset of the piece's first byte (the target for INVALID; 0 for holes).
    storage_offset_bytes: u64,
}

impl Slot {
    fn new(kind: Kind, device: u32, length_field: u64, storage_offset_bytes: u64) -> Self {
        Self {
            word: (kind as u64) << KIND_SHIFT
                | (u64::from(device) & DEVICE_MASK) << LENGTH_BITS
                | length_field & LENGTH_MASK,
            storage_offset_bytes,
        }
    }
    fn kind(self) -> Kind {
        Kind::from_bits(self.word >> KIND_SHIFT)
    }
    fn device(self) -> u32 {
        // Masked to 12 bits: the cast cannot truncate.
        ((self.word >> LENGTH_BITS) & DEVICE_MASK) as u32
    }
    fn length_field(self) -> u64 {
        self.word & LENGTH_MASK
    }
}

// The figure the memory bound rests on: a change that grows the slot must show up here.
const _: () = assert!(std::mem::size_of::<Slot>() == 16);
const _: () = assert!(KIND_SHIFT + 3 <= 64);

/// Sorted pieces keyed by file offset, stored compactly.
#[derive(Debug, Default, Clone)]
pub(super) struct PieceMap {
    slots: BTreeMap<u64, Slot>,
    /// Device table: index → ID, and back.
    devices: Vec<DeviceId>,
    device_index: HashMap<DeviceId, u32>,
    /// Copy-on-write sources of the `InvalidCow` pieces, by file offset.
    cow_sources: BTreeMap<u64, StorageRef>,
    /// Lengths of pieces of [`LONG_LENGTH`] bytes or more, by file offset.
    long_lengths: BTreeMap<u64, u64>,
    /// File offsets of the `Uncommitted` pieces.
    uncommitted: BTreeSet<u64>,
}

impl PieceMap {
    /// Number of pieces.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Number of `Uncommitted` pieces.
    pub(super) fn uncommitted_len(&self) -> usize {
        self.uncommitted.len()
    }

    /// Makes room in the device table for the devices of `pieces` (before any change, so a
    /// refused layout changes nothing): when the table is full, devices no piece names any
    /// more are dropped first (O(pieces), only then).
    pub(super) fn check_devices<'a>(
        &mut self,
        pieces: impl Iterator<Item = &'a Piece> + Clone,
    ) -> Result<(), usize> {
        if self.fits(pieces.clone()).is_ok() {
            return Ok(());
        }
        self.compact_devices();
        self.fits(pieces)
    }

    fn fits<'a>(&self, pieces: impl Iterator<Item = &'a Piece>) -> Result<(), usize> {
        let mut new: Vec<DeviceId> = Vec::new();
        for p in pieces {
            if let Some(s) = target(p.state) {
                if !self.device_index.contains_key(&s.device_id) && !new.contains(&s.device_id) {
                    new.push(s.device_id);
                    if self.devices.len() + new.len() > MAX_DEVICES_PER_FILE {
                        return Err(MAX_DEVICES_PER_FILE);
                    }
                }
            }
        }
        Ok(())
    }

    /// Rebuilds the device table with only the devices that pieces name.
    fn compact_devices(&mut self) {
        let mut used = vec![false; self.devices.len()];
        for s in self.slots.values().filter(|s| s.kind() != Kind::Hole) {
            used[s.device() as usize] = true;
        }
        let old = std::mem::take(&mut self.devices);
        self.device_index.clear();
        let mut remap = vec![0u32; old.len()];
        for (i, id) in old.iter().enumerate() {
            if used[i] {
                remap[i] = self.intern(*id);
            }
        }
        for s in self.slots.values_mut().filter(|s| s.kind() != Kind::Hole) {
            *s = Slot::new(
                s.kind(),
                remap[s.device() as usize],
                s.length_field(),
                s.storage_offset_bytes,
            );
        }
    }

    fn intern(&mut self, id: DeviceId) -> u32 {
        if let Some(&i) = self.device_index.get(&id) {
            return i;
        }
        // Bounded by `check_devices` before every insert of new pieces (other inserts only
        // re-store pieces whose devices are in the table).
        let i = u32::try_from(self.devices.len()).unwrap_or(u32::MAX);
        self.devices.push(id);
        self.device_index.insert(id, i);
        i
    }

    fn storage(&self, device: u32, offset_bytes: u64) -> StorageRef {
        StorageRef {
            device_id: self.devices[device as usize],
            offset_bytes,
        }
    }

    fn unpack(&self, key: u64, s: &Slot) -> Piece {
        let own = || self.storage(s.device(), s.storage_offset_bytes);
        let state = match s.kind() {
            Kind::ReadWrite => PieceState::ReadWrite(own()),
            Kind::Uncommitted => PieceState::Uncommitted(own()),
            Kind::ReadOnly => PieceState::ReadOnly(own()),
            Kind::Invalid => PieceState::Invalid {
                target: own(),
                cow_source: None,
            },
            Kind::InvalidCow => PieceState::Invalid {
                target: own(),
                cow_source: self.cow_sources.get(&key).copied(),
            },
            Kind::Hole => PieceState::None,
        };
        let length_bytes = match s.length_field() {
            LONG_LENGTH => self.long_lengths.get(&key).copied().unwrap_or(LONG_LENGTH),
            l => l,
        };
        Piece {
            file_offset_bytes: key,
            length_bytes,
            state,
        }
    }

    /// Stores `p` (replacing a piece with the same offset).
    pub(super) fn insert(&mut self, p: Piece) {
        self.remove(p.file_offset_bytes);
        let key = p.file_offset_bytes;
        let length_field = if p.length_bytes >= LONG_LENGTH {
            self.long_lengths.insert(key, p.length_bytes);
            LONG_LENGTH
        } else {
            p.length_bytes
        };
        let mut slot = |kind, s: StorageRef| {
            let device = self.intern(s.device_id);
            Slot::new(kind, device, length_field, s.offset_bytes)
        };
        let slot = match p.state {
            PieceState::ReadWrite(s) => slot(Kind::ReadWrite, s),
            PieceState::Uncommitted(s) => {
                let v = slot(Kind::Uncommitted, s);
                self.uncommitted.insert(key);
                v
            }
            PieceState::ReadOnly(s) => slot(Kind::ReadOnly, s),
            PieceState::Invalid {
                target,
                cow_source: None,
            } => slot(Kind::Invalid, target),
            PieceState::Invalid {
                target,
                cow_source: Some(c),
            } => {
                let v = slot(Kind::InvalidCow, target);
                // The side map keeps the whole device ID: no table entry.
                self.cow_sources.insert(key, c);
                v
            }
            PieceState::None => Slot::new(Kind::Hole, 0, length_field, 0),
        };
        self.slots.insert(key, slot);
    }

    /// Removes and returns the piece at `key`.
    pub(super) fn remove(&mut self, key: u64) -> Option<Piece> {
        let s = self.slots.remove(&key)?;
        let p = self.unpack(key, &s);
        if s.length_field() == LONG_LENGTH {
            self.long_lengths.remove(&key);
        }
        match s.kind() {
            Kind::Uncommitted => {
                self.uncommitted.remove(&key);
            }
            Kind::InvalidCow => {
                self.cow_sources.remove(&key);
            }
            _ => {}
        }
        if self.slots.is_empty() {
            // Nothing refers to the table any more: start afresh (bounds it by what is cached).
            self.devices.clear();
            self.device_index.clear();
        }
        Some(p)
    }

    /// The piece at `key`.
    pub(super) fn get(&self, key: u64) -> Option<Piece> {
        self.slots.get(&key).map(|s| self.unpack(key, s))
    }

    /// The last piece starting at or before `at`.
    pub(super) fn last_at_or_before(&self, at: u64) -> Option<Piece> {
        self.slots
            .range(..=at)
            .next_back()
            .map(|(&k, s)| self.unpack(k, s))
    }

    /// The last piece starting before `at`.
    pub(super) fn last_before(&self, at: u64) -> Option<Piece> {
        self.slots
            .range(..at)
            .next_back()
            .map(|(&k, s)| self.unpack(k, s))
    }

    /// The pieces starting within `keys`, in order.
    pub(super) fn range<R: RangeBounds<u64>>(&self, keys: R) -> impl Iterator<Item = Piece> + '_ {
        self.slots.range(keys).map(|(&k, s)| self.unpack(k, s))
    }

    /// The offsets of the pieces starting within `keys`.
    pub(super) fn keys<R: RangeBounds<u64>>(&self, keys: R) -> Vec<u64> {
        self.slots.range(keys).map(|(&k, _)| k).collect()
    }

    /// The `Uncommitted` pieces starting within `keys`, in order.
    pub(super) fn uncommitted<R: RangeBounds<u64>>(
        &self,
        keys: R,
    ) -> impl Iterator<Item = Piece> + '_ {
        self.uncommitted.range(keys).filter_map(|&k| self.get(k))
    }

    /// Every piece, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Piece> + '_ {
        self.range(..)
    }

    /// Panics if the side tables disagree with the pieces.
    pub(super) fn check_invariant(&self) {
        let unc = self
            .slots
            .values()
            .filter(|s| s.kind() == Kind::Uncommitted)
            .count();
        assert_eq!(unc, self.uncommitted.len(), "uncommitted set out of step");
        for k in &self.uncommitted {
            assert!(
                self.slots
                    .get(k)
                    .is_some_and(|s| s.kind() == Kind::Uncommitted),
                "uncommitted set names {k}"
            );
        }
        for k in self.cow_sources.keys() {
            assert!(
                self.slots
                    .get(k)
                    .is_some_and(|s| s.kind() == Kind::InvalidCow),
                "copy-on-write source without its piece at {k}"
            );
        }
        let cow = self
            .slots
            .values()
            .filter(|s| s.kind() == Kind::InvalidCow)
            .count();
        assert_eq!(
            cow,
            self.cow_sources.len(),
            "copy-on-write table out of step"
        );
        assert!(self.devices.len() <= MAX_DEVICES_PER_FILE);
        for k in self.long_lengths.keys() {
            assert!(
                self.slots
                    .get(k)
                    .is_some_and(|s| s.length_field() == LONG_LENGTH),
                "long length without its piece at {k}"
            );
        }
    }
}

/// The storage a state's slot refers to by device index.
fn target(state: PieceState) -> Option<StorageRef> {
    match state {
        PieceState::ReadWrite(s) | PieceState::Uncommitted(s) | PieceState::ReadOnly(s) => Some(s),
        PieceState::Invalid { target, .. } => Some(target),
        PieceState::None => None,
    }
}
