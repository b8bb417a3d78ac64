//! The pNFS block layer: layout and extent cache, volume map, I/O engine, fencing, Disk impl.
//!
//! - [`aligned`]: pooled page-aligned buffers for `O_DIRECT` reads handed to the frontends.
//! - [`volume`]: [`volume::VolumeIo`] and its real ([`volume::FileVolume`]), fault and trace
//!   layers.
//! - [`device`]: GETDEVICEINFO bodies → volume trees matched by signature (block) or
//!   designator (SCSI, with the PR key registered); device cache.
//! - [`scsi`]: VPD page 0x83 designators and persistent-reservation registration.
//! - [`extent_cache`]: the per-file extent cache (sorted pieces, COW pairs, pending commits,
//!   recency for the per-file bound); `piece_map`: its compact store.
//! - [`fence`]: lease-timed fencing.
//! - [`contention`]: LAYOUTGET retry pauses and the back-off to the MDS when two clients
//!   keep recalling each other's layouts of one file (ping-pong).
//! - `layout`: LAYOUTGET / LAYOUTCOMMIT / LAYOUTRETURN with the stateid rules.
//! - `engine`: the data path (direct I/O, read-modify-write, MDS fallback).
//! - `recall`: the [`crate::mds_api::CallbackSink`] implementation.
//! - [`file_disk`]: [`file_disk::PnfsDisk`], the [`crate::disk::Disk`] of one file.
//! - `testing` (feature `testing`): an MDS test double and the seeded random workload.
//!
//! One [`PnfsClient`] serves every file of one MDS (one client ID); each configured file is a
//! [`file_disk::PnfsDisk`].

pub mod aligned;
pub mod contention;
pub mod device;
mod engine;
pub mod extent_cache;
pub mod fence;
pub mod file_disk;
mod layout;
mod mds_unstable;
mod piece_map;
mod range_lock;
mod recall;
pub mod scsi;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod uring;
pub mod volume;

use crate::sync::LockExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pnfs_proto::nfs4::{DeviceId, FileHandle, LayoutIoMode, LayoutType, Stateid};
use thiserror::Error;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::disk::{DiskError, DiskErrorKind};
use crate::mds_api::{CallbackSink, LeaseStatus, MdsError, MetadataServer, OpenFile, OpenMode};
use crate::stats::Stats;

use device::DeviceCache;
use extent_cache::ExtentCache;
use fence::FenceConfig;
use file_disk::PnfsDisk;
use range_lock::RangeLocks;
use volume::VolumeIo;

/// Errors inside the pNFS layer; mapped once to [`DiskError`] at the Disk boundary.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PnfsError {
    /// An MDS call failed.
    #[error(transparent)]
    Mds(#[from] MdsError),
    /// A layout or device body was malformed or unusable.
    #[error("layout: {0}")]
    Layout(String),
    /// A volume I/O failed.
    #[error("volume: {0}")]
    Volume(String),
    /// The layer is shutting down.
    #[error("shutting down")]
    Shutdown,
}

impl From<PnfsError> for DiskError {
    fn from(e: PnfsError) -> Self {
        let kind = match &e {
            PnfsError::Mds(m) => match m.kind {
                crate::mds_api::MdsErrorKind::Shutdown => DiskErrorKind::Shutdown,
                crate::mds_api::MdsErrorKind::Status(s)
                    if s == pnfs_proto::nfs4::NfsStat::NOSPC
                        || s == pnfs_proto::nfs4::NfsStat::DQUOT =>
                {
                    DiskErrorKind::NoSpace
                }
                _ => DiskErrorKind::Io,
            },
            PnfsError::Shutdown => DiskErrorKind::Shutdown,
            _ => DiskErrorKind::Io,
        };
        DiskError::new(kind, e.to_string())
    }
}

/// Tunables of the pNFS layer (limits on everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PnfsConfig {
    /// Lease fencing.
    pub fence: FenceConfig,
    /// How much to ask for in one LAYOUTGET beyond what a request needs.
    pub layout_chunk_bytes: u64,
    /// LAYOUTGET retries on LAYOUTTRYLATER / RECALLCONFLICT / DELAY before using the MDS.
    pub layoutget_max_retries: u32,
    /// First pause of those retries (doubles each time, with jitter:
    /// [`contention::layoutget_retry_pause`]).
    pub layoutget_retry_base: Duration,
    /// Longest pause of those retries: with `layoutget_max_retries` it bounds the total wait.
    pub layoutget_retry_max: Duration,
    /// When repeated recalls of a file's layout send it through the MDS for a while.
    pub contention: contention::ContentionConfig,
    /// After LAYOUTUNAVAILABLE, how long the file uses the MDS before asking again.
    pub unavailable_backoff: Duration,
    /// LAYOUTCOMMIT once this many uncommitted pieces are pending (besides on flush).
    pub commit_threshold_pieces: usize,
    /// Most extents in one LAYOUTCOMMIT.
    pub commit_max_extents: usize,
    /// Memory bound of each file (a disk opened with [`PnfsClient::open_disk`]; the CLI gives
    /// each `[[device]]` its `max_cached_extents` through [`PnfsClient::open_disk_bounded`]):
    /// past it the file returns its least recently used layout windows
    /// ([`extent_cache::ExtentCache::eviction_ranges`]). Other files are never touched.
    pub max_cached_pieces_per_file: usize,
    /// Memory bound over all files, a second limit for a process with many files: past it the
    /// least recently used other file returns its whole layout. Checked only while the
    /// per-file bounds of the open files add up to more than it (else it cannot be reached).
    pub max_cached_pieces: usize,
    /// How long a request waits for a recall of its range to finish before using the MDS.
    pub recall_wait: Duration,
    /// Largest MDS READ/WRITE.
    pub mds_io_chunk_bytes: u32,
    /// loga_maxcount of LAYOUTGET.
    pub layoutget_max_reply_bytes: u32,
    /// Most planning rounds (LAYOUTGET, waits) for one request before using the MDS.
    pub max_plan_rounds: u32,
    /// Open volumes with O_DIRECT where possible.
    pub prefer_direct_io: bool,
    /// Which layout type to use when the file system offers both block and SCSI layouts.
    pub layout_preference: LayoutPreference,
    /// Memory bound: bytes of MDS writes answered UNSTABLE4 kept (over all files) until a
    /// COMMIT makes them durable; past it the writing file is committed at once.
    pub mds_unstable_max_bytes: u64,
}

/// The layout type wanted when a file system offers both (one offered alone is used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayoutPreference {
    /// LAYOUT4_BLOCK_VOLUME (RFC 5663): volumes found by signature, fencing by the server's
    /// own means. The default: it needs nothing from the volume but its contents.
    #[default]
    Block,
    /// LAYOUT4_SCSI (RFC 8154): logical units found by designator, fenced with persistent
    /// reservations (the client registers the server's key before any I/O).
    Scsi,
}

/// The layout type a file uses: the preferred one if the file system offers it, else the
/// other supported one, else none (MDS I/O only).
pub fn choose_layout_type(offered: &[LayoutType], pref: LayoutPreference) -> Option<LayoutType> {
    let order = match pref {
        LayoutPreference::Block => [LayoutType::BlockVolume, LayoutType::Scsi],
        LayoutPreference::Scsi => [LayoutType::Scsi, LayoutType::BlockVolume],
    };
    order.into_iter().find(|t| offered.contains(t))
}

/// LAYOUTGET retries after LAYOUTTRYLATER / RECALLCONFLICT / DELAY before the request uses
/// the MDS. With [`LAYOUTGET_RETRY_BASE`] and [`LAYOUTGET_RETRY_MAX`] the retries of one
/// request wait about 1 s at most in all (2+4+…+256+256+256 ms).
pub const LAYOUTGET_MAX_RETRIES: u32 = 10;
/// The first LAYOUTGET retry pause: a recall that conflicts with our LAYOUTGET usually ends
/// within a few milliseconds (the holder drains, commits and returns); 50 ms used to be most
/// of the hand-over time (bench/results/2026-12-07-handover.txt).
pub const LAYOUTGET_RETRY_BASE: Duration = Duration::from_millis(2);
/// The longest single LAYOUTGET retry pause.
pub const LAYOUTGET_RETRY_MAX: Duration = Duration::from_millis(256);

/// Default per-file bound on cached pieces (the configuration's `max_cached_extents` default).
pub const DEFAULT_MAX_CACHED_PIECES_PER_FILE: usize = 65536;
/// Default bound on cached pieces over all files: 1M pieces, ~50 MiB
/// (`gateway/tests/extent_cache_memory.rs`).
pub const DEFAULT_MAX_CACHED_PIECES: usize = 1 << 20;

impl Default for PnfsConfig {
    fn default() -> Self {
        Self {
            fence: FenceConfig::default(),
            layout_chunk_bytes: 64 << 20,
            layoutget_max_retries: LAYOUTGET_MAX_RETRIES,
            layoutget_retry_base: LAYOUTGET_RETRY_BASE,
            layoutget_retry_max: LAYOUTGET_RETRY_MAX,
            contention: contention::ContentionConfig::default(),
            unavailable_backoff: Duration::from_secs(30),
            commit_threshold_pieces: 256,
            commit_max_extents: 1024,
            max_cached_pieces_per_file: DEFAULT_MAX_CACHED_PIECES_PER_FILE,
            max_cached_pieces: DEFAULT_MAX_CACHED_PIECES,
            recall_wait: Duration::from_secs(30),
            mds_io_chunk_bytes: 1 << 20,
            layoutget_max_reply_bytes: 1 << 20,
            max_plan_rounds: 16,
            prefer_direct_io: true,
            layout_preference: LayoutPreference::Block,
            mds_unstable_max_bytes: 64 << 20,
        }
    }
}

/// Hashes the gateway's own sequential I/O ids (never input from a peer, so no flooding
/// concern) with one multiplication instead of SipHash: every direct request inserts and
/// removes one id.
#[derive(Debug, Default, Clone, Copy)]
struct IoIdHasher(u64);

/// An odd constant whose high bits mix every bit of the id (2^64 / the golden ratio).
const IO_ID_HASH_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

impl std::hash::Hasher for IoIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(IO_ID_HASH_MULTIPLIER);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(IO_ID_HASH_MULTIPLIER);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by I/O id.
type IoIdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IoIdHasher>>;

/// Mutable layout state of one file (behind [`FileCtx::state`], never held across an await).
#[derive(Debug)]
struct FileState {
    cache: ExtentCache,
    /// The current layout stateid (None: next LAYOUTGET is seeded by the open stateid).
    layout_stateid: Option<Stateid>,
    /// A LAYOUTGET for this file is on the wire.
    layoutget_in_flight: bool,
    /// Use the MDS until this instant (after LAYOUTUNAVAILABLE and similar, or while backing
    /// off from contention).
    mds_only_until: Option<Instant>,
    /// Recent recalls of this file's layout: when to back off to the MDS.
    contention: contention::Contention,
    /// Ranges being recalled: no new direct I/O there.
    recalls: Vec<(u64, u64)>,
    /// Direct I/O in flight: id → range.
    in_flight: IoIdMap<(u64, u64)>,
    next_io_id: u64,
    /// Devices the cached layouts use (fdatasync on flush).
    devices_used: Vec<DeviceId>,
    last_use: Instant,
    closed: bool,
}

/// One open file with its layout state.
#[derive(Debug)]
struct FileCtx {
    open: OpenFile,
    read_only: bool,
    size_bytes: u64,
    /// The server block: unit of read-modify-write into INVALID extents.
    block_bytes: u64,
    iomode: LayoutIoMode,
    /// Most cached pieces of this file ([`PnfsConfig::max_cached_pieces_per_file`]).
    max_cached_pieces: usize,
    /// The layout type this file uses (None: the file system offers none we support).
    layout_type: Option<LayoutType>,
    state: Mutex<FileState>,
    /// Signalled when in-flight I/O drains or a recall finishes.
    changed: Notify,
    layoutget_lock: tokio::sync::Mutex<()>,
    commit_lock: tokio::sync::Mutex<()>,
    /// One MDS WRITE at a time for a file that has block layouts. Linux nfsd's WRITE
    /// breaks every layout on the file (ours and other clients') and the nfsd thread serving
    /// it waits until they are returned, which takes other nfsd threads (LAYOUTRETURN, the
    /// callback replies); concurrent MDS WRITEs could hold all of a small nfsd's threads and
    /// stall everyone for minutes (see `tests/pnfs_nfsd.rs`, the recall test).
    mds_write_lock: tokio::sync::Mutex<()>,
    write_locks: RangeLocks,
    /// MDS writes answered UNSTABLE4, kept until COMMIT ([`mds_unstable`]).
    mds_kept: Mutex<mds_unstable::KeptWrites>,
    /// MDS writes hold it shared, their COMMIT exclusive.
    mds_commit_gate: tokio::sync::RwLock<()>,
}

impl FileCtx {
    fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock_unpoisoned()
    }
}

/// Server block sizes accepted (docs/requirements.md B2: 4 KiB to at least 1 MiB; up to 16 MiB
/// tolerated).
const MIN_BLOCK_BYTES: u64 = 4096;
const MAX_BLOCK_BYTES: u64 = 16 << 20;

/// Shared state of a [`PnfsClient`].
struct Shared<M: MetadataServer> {
    me: Weak<Shared<M>>,
    mds: Arc<M>,
    cfg: PnfsConfig,
    volumes: Vec<Arc<dyn VolumeIo>>,
    devices: DeviceCache,
    stats: Arc<Stats>,
    files: Mutex<Vec<Arc<FileCtx>>>,
    lease_rx: watch::Receiver<LeaseStatus>,
    /// Bytes in every file's [`FileCtx::mds_kept`].
    mds_kept_bytes: std::sync::atomic::AtomicU64,
    /// The per-file bounds of the files in `files`, added up: while it is within
    /// [`PnfsConfig::max_cached_pieces`] the total needs no O(files) sum.
    file_bounds_sum: std::sync::atomic::AtomicUsize,
    #[cfg(any(test, feature = "testing"))]
    hooks: testing::Hooks,
}

impl<M: MetadataServer> std::fmt::Debug for Shared<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("cfg", &self.cfg)
            .field("volumes", &self.volumes)
            .finish_non_exhaustive()
    }
}

impl<M: MetadataServer> Shared<M> {
    fn self_arc(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    fn devices_clear(&self) {
        for d in self.devices.all() {
            self.devices.invalidate(&d.device_id);
        }
    }

    fn files(&self) -> Vec<Arc<FileCtx>> {
        self.files.lock_unpoisoned().clone()
    }

    /// The file a recall of `fh` is for: the open one, else one still closing. A closing file
    /// is in `files` until its close has committed and returned its layout; it must answer
    /// recalls until then (OK: its close's LAYOUTRETURN answers them), never
    /// NOMATCHING_LAYOUT, which tells the server the layout is already returned and makes the
    /// close's LAYOUTCOMMIT fail.
    fn file_by_fh(&self, fh: &FileHandle) -> Option<Arc<FileCtx>> {
        let files = self.files();
        let open = files.iter().find(|f| &f.open.fh == fh && !f.lock().closed);
        open.or_else(|| files.iter().find(|f| &f.open.fh == fh))
            .cloned()
    }
}

/// The pNFS block-layout client of one MDS: owns the device cache and every open file's layout
/// state, and receives the callbacks.
#[derive(Debug)]
pub struct PnfsClient<M: MetadataServer> {
    shared: Arc<Shared<M>>,
}

impl<M: MetadataServer> Clone for PnfsClient<M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: MetadataServer> PnfsClient<M> {
    /// A client over `mds`, resolving devices against `volumes` (the configured search list,
    /// already opened, possibly wrapped in fault/trace layers). Registers itself as the
    /// callback sink.
    pub fn new(
        mds: Arc<M>,
        volumes: Vec<Arc<dyn VolumeIo>>,
        cfg: PnfsConfig,
        stats: Arc<Stats>,
    ) -> Self {
        let lease_rx = mds.lease_watch();
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            mds: Arc::clone(&mds),
            cfg,
            volumes,
            devices: DeviceCache::default(),
            stats,
            files: Mutex::new(Vec::new()),
            lease_rx,
            mds_kept_bytes: std::sync::atomic::AtomicU64::new(0),
            file_bounds_sum: std::sync::atomic::AtomicUsize::new(0),
            #[cfg(any(test, feature = "testing"))]
            hooks: testing::Hooks::default(),
        });
        let weak: Weak<Shared<M>> = Arc::downgrade(&shared);
        let sink: Weak<dyn CallbackSink> = weak;
        mds.set_callback_sink(sink);
        Self { shared }
    }

    /// Opens the volumes at `paths` as [`volume::FileVolume`]s (O_DIRECT if `prefer_direct`).
    pub fn open_volumes(
        paths: &[std::path::PathBuf],
        read_only: bool,
        prefer_direct: bool,
    ) -> Result<Vec<Arc<dyn VolumeIo>>, PnfsError> {
        paths
            .iter()
            .map(|p| {
                volume::FileVolume::open(p, read_only, prefer_direct)
                    .map(|v| Arc::new(v) as Arc<dyn VolumeIo>)
                    .map_err(|e| PnfsError::Volume(format!("{}: {e}", p.display())))
            })
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.shared.stats
    }

    /// The MDS.
    pub fn mds(&self) -> &Arc<M> {
        &self.shared.mds
    }

    /// Test hook points inside the layer (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn hooks(&self) -> &testing::Hooks {
        &self.shared.hooks
    }

    /// Opens `path` on the MDS and returns its disk. The disk size is the file size at open
    /// and stays fixed (writes past it are refused by `validate_request`).
    pub async fn open_disk(&self, path: &str, read_only: bool) -> Result<PnfsDisk<M>, PnfsError> {
        let bound = self.shared.cfg.max_cached_pieces_per_file;
        self.open_disk_bounded(path, read_only, bound).await
    }

    /// [`Self::open_disk`] with this file's own bound on cached pieces (at least 1).
    pub async fn open_disk_bounded(
        &self,
        path: &str,
        read_only: bool,
        max_cached_pieces: usize,
    ) -> Result<PnfsDisk<M>, PnfsError> {
        let max_cached_pieces = max_cached_pieces.max(1);
        let open = self
            .shared
            .mds
            .open(
                path,
                OpenMode {
                    read_only,
                    create_size_bytes: None,
                },
            )
            .await?;
        let hint = u64::from(open.layout_blksize_bytes.max(open.layout_alignment_bytes));
        let block_bytes = if hint.is_power_of_two() {
            hint.clamp(MIN_BLOCK_BYTES, MAX_BLOCK_BYTES)
        } else {
            MIN_BLOCK_BYTES
        };
        let ctx = Arc::new(FileCtx {
            max_cached_pieces,
            size_bytes: open.size_bytes,
            read_only,
            block_bytes,
            iomode: if read_only {
                LayoutIoMode::Read
            } else {
                LayoutIoMode::ReadWrite
            },
            layout_type: choose_layout_type(&open.layout_types, self.shared.cfg.layout_preference),
            open,
            state: Mutex::new(FileState {
                cache: ExtentCache::with_window(self.shared.cfg.layout_chunk_bytes),
                layout_stateid: None,
                layoutget_in_flight: false,
                mds_only_until: None,
                contention: contention::Contention::default(),
                recalls: Vec::new(),
                in_flight: IoIdMap::default(),
                next_io_id: 0,
                devices_used: Vec::new(),
                last_use: Instant::now(),
                closed: false,
            }),
            changed: Notify::new(),
            layoutget_lock: tokio::sync::Mutex::new(()),
            commit_lock: tokio::sync::Mutex::new(()),
            mds_write_lock: tokio::sync::Mutex::new(()),
            mds_kept: Mutex::new(mds_unstable::KeptWrites::default()),
            mds_commit_gate: tokio::sync::RwLock::new(()),
            write_locks: RangeLocks::default(),
        });
        self.shared.files.lock_unpoisoned().push(Arc::clone(&ctx));
        self.shared
            .file_bounds_sum
            .fetch_add(max_cached_pieces, std::sync::atomic::Ordering::Relaxed);
        Ok(PnfsDisk::new(Arc::clone(&self.shared), ctx))
    }

    /// The SCSI persistent-reservation keys this client holds: (volume name, key).
    pub fn pr_registrations(&self) -> Vec<(String, u64)> {
        self.shared
            .devices
            .registrations()
            .into_iter()
            .map(|r| (r.volume.name().to_string(), r.key))
            .collect()
    }

    /// Total cached pieces over all files.
    pub fn cached_pieces(&self) -> usize {
        self.shared
            .files()
            .iter()
            .map(|f| f.lock().cache.len())
            .sum()
    }

    /// Returns every layout (commit + LAYOUTRETURN) and closes every file: the shutdown path.
    pub async fn shutdown(&self) -> Result<(), PnfsError> {
        let mut first_err = None;
        for f in self.shared.files() {
            if let Err(e) = layout::close_file(&self.shared, &f).await {
                first_err.get_or_insert(e);
            }
        }
        // RFC 8154: a client that stops using a SCSI device removes its PR key.
        if let Err(e) = self.shared.devices.unregister_all().await {
            tracing::warn!(error = %e, "SCSI PR keys not removed");
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn align_down(v: u64, a: u64) -> u64 {
    v - v % a
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a).saturating_mul(a)
}

#[cfg(test)]
mod layout_choice_tests {
    use super::*;

    #[test]
    fn block_by_default_scsi_when_preferred_or_alone() {
        let both = [LayoutType::Scsi, LayoutType::BlockVolume];
        assert_eq!(
            choose_layout_type(&both, LayoutPreference::default()),
            Some(LayoutType::BlockVolume)
        );
        assert_eq!(
            choose_layout_type(&both, LayoutPreference::Scsi),
            Some(LayoutType::Scsi)
        );
        assert_eq!(
            choose_layout_type(&[LayoutType::Scsi], LayoutPreference::Block),
            Some(LayoutType::Scsi)
        );
        assert_eq!(
            choose_layout_type(&[LayoutType::BlockVolume], LayoutPreference::Scsi),
            Some(LayoutType::BlockVolume)
        );
        assert_eq!(
            choose_layout_type(&[LayoutType::Files], LayoutPreference::Scsi),
            None
        );
    }
}
