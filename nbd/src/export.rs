//! Exports: a named [`Disk`] with its NBD settings and counters, and the set a server serves.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use pnfs_disk::{Disk, DiskInfo, DiskRange, DiskResult, StatusExtent};

use crate::codec::consts::*;
use crate::codec::DEFAULT_MAX_WRITE_PAYLOAD_BYTES;
use crate::error::{NbdError, NbdResult};

/// A boxed future, as the object-safe [`DynDisk`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object-safe view of a [`Disk`] (the Disk trait returns `impl Future`, so it cannot be a
/// trait object itself). Implemented for every `Disk`.
pub trait DynDisk: Send + Sync + 'static {
    /// See [`Disk::info`].
    fn info(&self) -> DiskInfo;
    /// See [`Disk::read_range`].
    fn read(&self, range: DiskRange) -> BoxFuture<'_, DiskResult<Bytes>>;
    /// See [`Disk::write_range`].
    fn write(&self, range: DiskRange, data: Bytes, fua: bool) -> BoxFuture<'_, DiskResult<()>>;
    /// See [`Disk::flush`].
    fn flush(&self) -> BoxFuture<'_, DiskResult<()>>;
    /// See [`Disk::trim_range`].
    fn trim(&self, range: DiskRange) -> BoxFuture<'_, DiskResult<()>>;
    /// See [`Disk::write_zeroes_range`].
    fn write_zeroes(
        &self,
        range: DiskRange,
        may_unmap: bool,
        fua: bool,
    ) -> BoxFuture<'_, DiskResult<()>>;
    /// See [`Disk::block_status_range`].
    fn block_status(&self, range: DiskRange) -> BoxFuture<'_, DiskResult<Vec<StatusExtent>>>;
}

impl<D: Disk> DynDisk for D {
    fn info(&self) -> DiskInfo {
        Disk::info(self)
    }
    fn read(&self, range: DiskRange) -> BoxFuture<'_, DiskResult<Bytes>> {
        Box::pin(Disk::read_range(self, range))
    }
    fn write(&self, range: DiskRange, data: Bytes, fua: bool) -> BoxFuture<'_, DiskResult<()>> {
        Box::pin(Disk::write_range(self, range, data, fua))
    }
    fn flush(&self) -> BoxFuture<'_, DiskResult<()>> {
        Box::pin(Disk::flush(self))
    }
    fn trim(&self, range: DiskRange) -> BoxFuture<'_, DiskResult<()>> {
        Box::pin(Disk::trim_range(self, range))
    }
    fn write_zeroes(
        &self,
        range: DiskRange,
        may_unmap: bool,
        fua: bool,
    ) -> BoxFuture<'_, DiskResult<()>> {
        Box::pin(Disk::write_zeroes_range(self, range, may_unmap, fua))
    }
    fn block_status(&self, range: DiskRange) -> BoxFuture<'_, DiskResult<Vec<StatusExtent>>> {
        Box::pin(Disk::block_status_range(self, range))
    }
}

/// Largest minimum block size the protocol allows (64 KiB).
pub const MAX_MINIMUM_BLOCK_BYTES: u32 = 64 * 1024;

/// The block size constraints an export advertises (`NBD_INFO_BLOCK_SIZE`) and enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSizes {
    /// Every offset and length must be a multiple of this (the disk's logical block).
    pub minimum_bytes: u32,
    /// Efficient I/O size (the disk's preferred block, e.g. the pNFS server block).
    pub preferred_bytes: u32,
    /// Largest READ/WRITE/CACHE/WRITE_ZEROES length (the disk's max I/O, capped by the
    /// server's write payload limit, a multiple of the minimum).
    pub maximum_bytes: u32,
}

impl BlockSizes {
    /// Derives the advertised constraints from a disk, checking them against the protocol's
    /// rules (powers of two, minimum ≤ 64 KiB, maximum a multiple of the minimum).
    pub fn from_disk(info: &DiskInfo, max_payload_bytes: u32) -> NbdResult<Self> {
        let min = info.logical_block_bytes;
        if !min.is_power_of_two() || min > MAX_MINIMUM_BLOCK_BYTES {
            return Err(NbdError::Config(format!(
                "logical block size {min} must be a power of two of at most {MAX_MINIMUM_BLOCK_BYTES}"
            )));
        }
        let preferred = info.preferred_block_bytes.max(min).max(512);
        if !preferred.is_power_of_two() {
            return Err(NbdError::Config(format!(
                "preferred block size {preferred} must be a power of two"
            )));
        }
        let cap = info.max_io_bytes.min(max_payload_bytes);
        let max = cap - cap % min;
        if max < min {
            return Err(NbdError::Config(format!(
                "largest I/O {} bytes is smaller than the logical block {min}",
                info.max_io_bytes
            )));
        }
        Ok(Self {
            minimum_bytes: min,
            preferred_bytes: preferred,
            maximum_bytes: max,
        })
    }
}

/// Counters of one export (all connections), for `pnfsgw stats`.
#[derive(Debug, Default)]
pub struct ExportStats {
    connections_total: AtomicU64,
    connections_active: AtomicU64,
    requests: [AtomicU64; STAT_COMMANDS],
    errors: AtomicU64,
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
    trimmed_bytes: AtomicU64,
    zeroed_bytes: AtomicU64,
}

/// Commands counted separately: READ, WRITE, DISC, FLUSH, TRIM, CACHE, WRITE_ZEROES,
/// BLOCK_STATUS, and one slot for unknown commands.
const STAT_COMMANDS: usize = 9;

/// A copy of an export's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Connections that reached transmission on this export, ever.
    pub connections_total: u64,
    /// Connections in transmission on this export now.
    pub connections_active: u64,
    /// Requests by command: READ, WRITE, DISC, FLUSH, TRIM, CACHE, WRITE_ZEROES,
    /// BLOCK_STATUS, unknown.
    pub requests: [u64; STAT_COMMANDS],
    /// Requests answered with an error.
    pub errors: u64,
    /// Bytes read by clients.
    pub read_bytes: u64,
    /// Bytes written by clients.
    pub written_bytes: u64,
    /// Bytes trimmed.
    pub trimmed_bytes: u64,
    /// Bytes zeroed with WRITE_ZEROES.
    pub zeroed_bytes: u64,
}

impl StatsSnapshot {
    /// Total requests of every kind.
    pub fn total_requests(&self) -> u64 {
        self.requests.iter().sum()
    }
}

impl ExportStats {
    pub(crate) fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_active.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn connection_closed(&self) {
        self.connections_active.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn request(&self, command_code: u16) {
        let slot = usize::from(command_code).min(STAT_COMMANDS - 1);
        self.requests[slot].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_read(&self, n: u64) {
        self.read_bytes.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_written(&self, n: u64) {
        self.written_bytes.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_trimmed(&self, n: u64) {
        self.trimmed_bytes.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_zeroed(&self, n: u64) {
        self.zeroed_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut requests = [0; STAT_COMMANDS];
        for (r, a) in requests.iter_mut().zip(self.requests.iter()) {
            *r = a.load(Ordering::Relaxed);
        }
        StatsSnapshot {
            connections_total: self.connections_total.load(Ordering::Relaxed),
            connections_active: self.connections_active.load(Ordering::Relaxed),
            requests,
            errors: self.errors.load(Ordering::Relaxed),
            read_bytes: self.read_bytes.load(Ordering::Relaxed),
            written_bytes: self.written_bytes.load(Ordering::Relaxed),
            trimmed_bytes: self.trimmed_bytes.load(Ordering::Relaxed),
            zeroed_bytes: self.zeroed_bytes.load(Ordering::Relaxed),
        }
    }
}

/// One export: a name, a disk, and how NBD presents it.
pub struct Export {
    name: String,
    description: String,
    disk: Arc<dyn DynDisk>,
    read_only: bool,
    fast_zero: bool,
    stats: ExportStats,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("read_only", &self.read_only)
            .field("fast_zero", &self.fast_zero)
            .finish_non_exhaustive()
    }
}

impl Export {
    /// An export named `name` (as clients ask for it, e.g. `nbd://host/NAME`) serving `disk`.
    pub fn new<D: Disk>(name: impl Into<String>, disk: Arc<D>) -> Self {
        Self::from_dyn(name, disk)
    }

    /// Like [`Export::new`] for a disk already behind [`DynDisk`].
    pub fn from_dyn(name: impl Into<String>, disk: Arc<dyn DynDisk>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            disk,
            read_only: false,
            fast_zero: false,
            stats: ExportStats::default(),
        }
    }

    /// A description shown by `nbdinfo --list` (`NBD_INFO_DESCRIPTION`).
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Serve read-only even if the disk is writable.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Advertise `NBD_FLAG_SEND_FAST_ZERO` and pass `NBD_CMD_FLAG_FAST_ZERO` requests to
    /// the disk's `write_zeroes`. Set it only when the disk zeroes faster than it writes
    /// (e.g. by marking extents); without it such requests are not advertised and get EINVAL.
    pub fn with_fast_zero(mut self, fast_zero: bool) -> Self {
        self.fast_zero = fast_zero;
        self
    }

    /// The export name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The description ("" = none).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The disk.
    pub fn disk(&self) -> &Arc<dyn DynDisk> {
        &self.disk
    }

    /// The counters.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Whether FAST_ZERO is advertised.
    pub fn fast_zero(&self) -> bool {
        self.fast_zero
    }

    /// The disk's info with this export's read-only setting applied: what every request is
    /// validated against.
    pub fn effective_info(&self) -> DiskInfo {
        let mut info = self.disk.info();
        info.read_only |= self.read_only;
        info
    }

    /// Transmission flags for this export, given whether structured replies were negotiated.
    pub fn transmission_flags(&self, info: &DiskInfo, structured_replies: bool) -> u16 {
        let mut flags = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_CACHE;
        if info.read_only {
            flags |= TFLAG_READ_ONLY;
        } else {
            flags |= TFLAG_SEND_FUA | TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES;
            if self.fast_zero {
                flags |= TFLAG_SEND_FAST_ZERO;
            }
        }
        if structured_replies {
            // Every read is answered with one data chunk, so DF costs nothing.
            flags |= TFLAG_SEND_DF;
        }
        if info.multi_conn_safe {
            flags |= TFLAG_CAN_MULTI_CONN;
        }
        flags
    }
}

/// The exports a server offers, by name, and the optional default export (served for the
/// empty name).
#[derive(Debug, Default)]
pub struct ExportSet {
    exports: BTreeMap<String, Arc<Export>>,
    default_name: Option<String>,
}

impl ExportSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an export; names must be unique, non-empty, and valid protocol strings.
    pub fn add(&mut self, export: Export) -> NbdResult<Arc<Export>> {
        let name = export.name.clone();
        if name.is_empty() {
            return Err(NbdError::Config(
                "an export name must not be empty (use set_default for the empty name)".into(),
            ));
        }
        crate::codec::parse_string(name.as_bytes(), "export name").map_err(NbdError::Config)?;
        BlockSizes::from_disk(&export.disk.info(), DEFAULT_MAX_WRITE_PAYLOAD_BYTES)
            .map_err(|e| NbdError::Config(format!("export {name:?}: {e}")))?;
        if self.exports.contains_key(&name) {
            return Err(NbdError::Config(format!("export {name:?} is listed twice")));
        }
        let export = Arc::new(export);
        self.exports.insert(name, export.clone());
        Ok(export)
    }

    /// Serves export `name` also to clients that ask for the empty name.
    pub fn set_default(&mut self, name: &str) -> NbdResult<()> {
        if !self.exports.contains_key(name) {
            return Err(NbdError::Config(format!(
                "default export {name:?} is not in the set"
            )));
        }
        self.default_name = Some(name.to_owned());
        Ok(())
    }

    /// The exports named in `allowed` (sharing their disks and counters with this set), for
    /// a listener that may reach only those; the default export is kept only if allowed.
    /// A name not in this set is an error.
    pub fn subset(&self, allowed: &[String]) -> NbdResult<ExportSet> {
        let mut out = ExportSet::new();
        for name in allowed {
            let Some(e) = self.exports.get(name) else {
                return Err(NbdError::Config(format!(
                    "export {name:?} is not in the set"
                )));
            };
            out.exports.insert(name.clone(), Arc::clone(e));
        }
        out.default_name = self
            .default_name
            .clone()
            .filter(|d| out.exports.contains_key(d));
        Ok(out)
    }

    /// Finds an export by the name a client sent ("" = the default export, if configured).
    pub fn lookup(&self, name: &str) -> Option<&Arc<Export>> {
        if name.is_empty() {
            return self.default_name.as_ref().and_then(|d| self.exports.get(d));
        }
        self.exports.get(name)
    }

    /// All exports, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Export>> {
        self.exports.values()
    }

    /// Number of exports.
    pub fn len(&self) -> usize {
        self.exports.len()
    }

    /// Whether there are no exports.
    pub fn is_empty(&self) -> bool {
        self.exports.is_empty()
    }

    /// The counters of every export, by name.
    pub fn stats(&self) -> Vec<(String, StatsSnapshot)> {
        self.exports
            .iter()
            .map(|(n, e)| (n.clone(), e.stats.snapshot()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(min: u32, pref: u32, max: u32) -> DiskInfo {
        DiskInfo {
            size_bytes: 1 << 30,
            logical_block_bytes: min,
            preferred_block_bytes: pref,
            max_io_bytes: max,
            read_only: false,
            multi_conn_safe: false,
        }
    }

    #[test]
    fn block_sizes_follow_the_protocol_rules() {
        let b = BlockSizes::from_disk(&info(512, 65536, 64 << 20), 32 << 20).unwrap();
        assert_eq!(
            b,
            BlockSizes {
                minimum_bytes: 512,
                preferred_bytes: 65536,
                maximum_bytes: 32 << 20
            }
        );
        let b = BlockSizes::from_disk(&info(4096, 512, 1_000_000), 32 << 20).unwrap();
        assert_eq!(b.preferred_bytes, 4096);
        assert_eq!(b.maximum_bytes % 4096, 0);
        assert!(BlockSizes::from_disk(&info(1000, 4096, 1 << 20), 32 << 20).is_err());
        assert!(BlockSizes::from_disk(&info(1 << 17, 1 << 17, 1 << 20), 32 << 20).is_err());
        assert!(BlockSizes::from_disk(&info(4096, 4096, 100), 32 << 20).is_err());
    }
}
