//! The seam between the command and the library crates it wires together: the NFSv4.1 client
//! and pNFS disk (pnfs-gateway), the NBD server (pnfs-nbd), the ublk frontend (pnfs-ublk) and
//! the embedded MDS (pnfs-mds). Everything the service does to them goes through this module,
//! so wiring a newly landed crate touches only this file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use pnfs_config::{Config, DataPath, DesignatorKind, DeviceConfig, LayoutChoice, MdsConfig};
use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::pnfs::file_disk::PnfsDisk;
use pnfs_gateway::pnfs::scsi::Designator;
use pnfs_gateway::pnfs::volume::{FileVolume, VolumeIo};
use pnfs_gateway::pnfs::{LayoutPreference, PnfsClient, PnfsConfig, PnfsError};
use pnfs_gateway::stats::Stats;
use pnfs_proto::layout::scsi::{ScsiCodeSet, ScsiDesignatorType};
use pnfs_proto::nfs4::NfsStat;
use thiserror::Error;
use tokio::sync::watch;

/// An error from a wired crate.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The file a device names does not exist on the MDS.
    #[error("file {path:?} does not exist on the MDS")]
    NotFound {
        /// The path on the MDS.
        path: String,
    },
    /// Anything else, with its message.
    #[error("{0}")]
    Failed(String),
}

/// A device to open: the configuration plus what only the command line can ask for.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// The validated device configuration.
    pub config: DeviceConfig,
    /// Create the file with this size if it does not exist (`export --create`, `demo`).
    pub create_size_bytes: Option<u64>,
}

/// The NFSv4.1 client as the pNFS layer sees it.
type Mds = NfsClient;

/// The gateway core: one NFSv4.1 client session to the MDS, the pNFS layer over it, and the
/// volumes it found.
#[derive(Debug)]
pub struct Gateway {
    client: Arc<Mds>,
    pnfs: PnfsClient<Mds>,
    stats: Arc<Stats>,
    /// The address the session is on.
    pub mds_addr: String,
}

/// One open device: a file on the MDS, as a Disk.
pub struct Device {
    /// Size in bytes.
    pub size_bytes: u64,
    /// One line for NBD's export description ("file PATH on MDS ADDR").
    pub description: String,
    /// Latency histograms and queue depth of the device's NBD frontend.
    pub nbd_timing: Arc<crate::latency::FrontendTiming>,
    pnfs_disk: Arc<PnfsDisk<Mds>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("size_bytes", &self.size_bytes)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

/// The NFSv4.1 client settings from the `[mds]` table.
fn client_config(mds: &MdsConfig) -> ClientConfig {
    let mut c = ClientConfig::new(mds.client_owner.clone());
    c.uid = mds.auth.uid;
    c.gid = mds.auth.gid;
    c.machine_name.clone_from(&mds.auth.machine_name);
    c.connect_timeout_ms = mds.connect_timeout_ms;
    c.stall_limit_ms = mds.stall_limit_ms;
    c.limits.call_timeout_ms = mds.request_timeout_ms;
    c
}

/// The pNFS layer settings from the configuration.
fn pnfs_config(config: &Config) -> PnfsConfig {
    let mut c = PnfsConfig {
        layout_preference: match config.mds.layout {
            LayoutChoice::Block => LayoutPreference::Block,
            LayoutChoice::Scsi => LayoutPreference::Scsi,
        },
        ..PnfsConfig::default()
    };
    // A ublk device that survives a restart answers a write only once it is committed: the
    // next process cannot know which blocks the dead one wrote, so a write that a later
    // flush (served by the next process) should make durable would otherwise be lost with
    // the dead process's uncommitted extents. Rewrites of committed space cost nothing.
    if config.devices.iter().any(|d| d.ublk_recovery) {
        c.commit_threshold_pieces = 0;
    }
    c.fence.safety_margin = Duration::from_millis(config.mds.lease_margin_ms);
    c.fence.max_io = Duration::from_millis(config.mds.max_io_ms);
    // Each device's `max_cached_extents` bounds its own file (`Backend::open`). The limit
    // over all files is their sum, so only the per-device bounds ever bind.
    let total: u64 = config
        .devices
        .iter()
        .map(|d| u64::from(d.max_cached_extents))
        .sum();
    c.max_cached_pieces = usize::try_from(total.max(1)).unwrap_or(usize::MAX);
    c
}

/// Opens every candidate volume of the search list; a candidate that cannot be opened is
/// logged and skipped (a search list may name devices that are absent on this host).
fn open_volumes(config: &Config) -> Result<Vec<Arc<dyn VolumeIo>>, BackendError> {
    let candidates = config.volumes.candidates().map_err(BackendError::Failed)?;
    for d in &config.volumes.designators {
        if !candidates.contains(&d.path) {
            tracing::warn!(
                "[[volumes.designator]] for {}: not among the volume search results, ignored",
                d.path.display()
            );
        }
    }
    let mut out: Vec<Arc<dyn VolumeIo>> = Vec::new();
    for path in candidates {
        match FileVolume::open(&path, false, true) {
            Ok(v) => {
                // A configured designator replaces what sysfs says (SCSI layouts).
                let v = match config.volumes.designators.iter().find(|d| d.path == path) {
                    Some(d) => v.with_scsi_designators(vec![scsi_designator(&d.designator)]),
                    None => v,
                };
                let ids: Vec<String> = v.scsi_designators().iter().map(|d| d.to_string()).collect();
                tracing::info!("volume candidate {} designators {ids:?}", path.display());
                out.push(Arc::new(v));
            }
            Err(e) => tracing::warn!("volume candidate skipped: {}: {e}", path.display()),
        }
    }
    Ok(out)
}

/// A configured designator as the pNFS layer matches it.
fn scsi_designator(d: &pnfs_config::ScsiDesignator) -> Designator {
    let (t, c) = match d.kind {
        DesignatorKind::Naa => (ScsiDesignatorType::Naa, ScsiCodeSet::Binary),
        DesignatorKind::Eui64 => (ScsiDesignatorType::Eui64, ScsiCodeSet::Binary),
        DesignatorKind::T10 => (ScsiDesignatorType::T10, ScsiCodeSet::Ascii),
        DesignatorKind::Name => (ScsiDesignatorType::Name, ScsiCodeSet::Utf8),
    };
    Designator::logical_unit(t, c, d.bytes.clone())
}

/// True when the MDS error is "no such file".
fn is_noent(e: &PnfsError) -> bool {
    matches!(e, PnfsError::Mds(m) if m.nfs_status() == Some(NfsStat::NOENT))
}

impl Gateway {
    /// Connects to the first MDS address that answers (EXCHANGE_ID, CREATE_SESSION), each
    /// try bounded by `connect_timeout_ms`, and sets up the pNFS layer over the volumes of
    /// the search list.
    ///
    /// `data_path = "mds"` is honoured by giving the pNFS layer no volumes (every layout's
    /// volume is then unresolvable and I/O goes through MDS READ/WRITE); the layer has one
    /// volume set per MDS, so it must be the same for every device.
    pub async fn connect(config: &Config) -> Result<Self, BackendError> {
        let mds_only = config.devices.iter().all(|d| d.data_path == DataPath::Mds);
        if !mds_only && config.devices.iter().any(|d| d.data_path == DataPath::Mds) {
            return Err(BackendError::Failed(
                "data_path = \"mds\" on some devices only is not supported yet: use it on all or none"
                    .into(),
            ));
        }
        let volumes = if mds_only {
            tracing::info!("data path: MDS READ/WRITE only (no volumes opened)");
            Vec::new()
        } else {
            open_volumes(config)?
        };
        let limit = Duration::from_millis(config.mds.connect_timeout_ms);
        let mut errors = Vec::new();
        for addr in &config.mds.addresses {
            let addr = addr.to_string();
            let cfg = client_config(&config.mds);
            match tokio::time::timeout(limit, NfsClient::connect(&addr, cfg)).await {
                Ok(Ok(client)) => {
                    tracing::info!(
                        "MDS {addr}: session up, lease {} s, {} fore-channel slots",
                        client.lease().as_secs(),
                        client.fore_slots()
                    );
                    let client = Arc::new(client);
                    let stats = Arc::new(Stats::default());
                    let pnfs = PnfsClient::new(
                        Arc::clone(&client),
                        volumes,
                        pnfs_config(config),
                        Arc::clone(&stats),
                    );
                    return Ok(Self {
                        client,
                        pnfs,
                        stats,
                        mds_addr: addr,
                    });
                }
                Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
                Err(_) => errors.push(format!(
                    "{addr}: no session within connect_timeout_ms = {}",
                    config.mds.connect_timeout_ms
                )),
            }
            tracing::warn!("{}", errors.last().map_or("", String::as_str));
        }
        Err(BackendError::Failed(errors.join("; ")))
    }

    /// Opens one device's file (creating it when asked and missing) and sets up its pNFS
    /// disk; checks the expected block size.
    pub async fn open(&self, spec: &DeviceSpec) -> Result<Device, BackendError> {
        let c = &spec.config;
        // Each device's own bound on cached extents (honoured per file by the pNFS layer).
        let bound = usize::try_from(c.max_cached_extents).unwrap_or(usize::MAX);
        let disk = match self
            .pnfs
            .open_disk_bounded(&c.path, c.read_only, bound)
            .await
        {
            Ok(d) => d,
            Err(e) if is_noent(&e) => match spec.create_size_bytes {
                None => {
                    return Err(BackendError::NotFound {
                        path: c.path.clone(),
                    })
                }
                Some(size) => {
                    self.create(&c.path, size).await?;
                    self.pnfs
                        .open_disk_bounded(&c.path, c.read_only, bound)
                        .await
                        .map_err(|e| {
                            BackendError::Failed(format!(
                                "opening {} after creating it: {e}",
                                c.path
                            ))
                        })?
                }
            },
            Err(e) => return Err(BackendError::Failed(e.to_string())),
        };
        if let Some(want) = c.block_size {
            if disk.block_bytes() != u64::from(want) {
                let got = disk.block_bytes();
                if let Err(e) = disk.close().await {
                    tracing::warn!("closing {}: {e}", c.path);
                }
                return Err(BackendError::Failed(format!(
                    "the layout block size is {got} bytes, the configuration expects block_size = {want}"
                )));
            }
        }
        let size_bytes = pnfs_gateway::disk::Disk::info(&disk).size_bytes;
        let pnfs_disk = Arc::new(disk);
        Ok(Device {
            size_bytes,
            description: format!("file {} on MDS {}", c.path, self.mds_addr),
            nbd_timing: Arc::default(),
            pnfs_disk,
        })
    }

    /// Creates `path` with `size_bytes` (OPEN with create, then CLOSE).
    async fn create(&self, path: &str, size_bytes: u64) -> Result<(), BackendError> {
        use pnfs_gateway::mds_api::{MetadataServer, OpenMode};
        let mode = OpenMode {
            read_only: false,
            create_size_bytes: Some(size_bytes),
        };
        let open = self
            .client
            .open(path, mode)
            .await
            .map_err(|e| BackendError::Failed(format!("creating {path}: {e}")))?;
        self.client
            .close(&open)
            .await
            .map_err(|e| BackendError::Failed(format!("closing {path} after creating it: {e}")))?;
        tracing::info!("created {path} ({size_bytes} bytes) on the MDS");
        Ok(())
    }

    /// Whole-gateway counters for `pnfsgw stats`: the session's and the pNFS layer's.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let s = self.client.stats();
        let mut m: BTreeMap<String, u64> = [
            ("mds.connects", s.connects),
            ("mds.binds", s.binds),
            ("mds.sessions", s.sessions),
            ("mds.client_ids", s.client_ids),
            ("mds.reclaimed_opens", s.reclaimed_opens),
            ("mds.reopened_opens", s.reopened_opens),
            ("mds.renewals", s.renewals),
            ("mds.delay_retries", s.delay_retries),
            ("mds.callbacks", s.callbacks),
            ("mds.delegations_returned", s.delegations_returned),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // The pNFS counters print as "name=value ..."; take them all, whatever they are.
        for pair in self.stats.snapshot().to_string().split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                if let Ok(v) = v.parse() {
                    m.insert(format!("pnfs.{k}"), v);
                }
            }
        }
        m.insert(
            "pnfs.cached_pieces".into(),
            self.pnfs.cached_pieces() as u64,
        );
        m
    }

    /// Returns every layout still held, closes every file, then ends the session
    /// (DESTROY_SESSION, DESTROY_CLIENTID). Called after every device is closed.
    pub async fn shutdown(&self) -> Result<(), BackendError> {
        let pnfs = self
            .pnfs
            .shutdown()
            .await
            .map_err(|e| BackendError::Failed(format!("returning layouts: {e}")));
        let session = self
            .client
            .shutdown()
            .await
            .map_err(|e| BackendError::Failed(e.to_string()));
        pnfs.and(session)
    }
}

impl Device {
    /// This device's counters for `pnfsgw stats`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        [
            ("pnfs.cached_pieces", self.pnfs_disk.cached_pieces() as u64),
            (
                "pnfs.uncommitted_pieces",
                self.pnfs_disk.uncommitted_pieces() as u64,
            ),
            ("pnfs.block_bytes", self.pnfs_disk.block_bytes()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Flushes, commits (LAYOUTCOMMIT), returns the layouts and closes the file. Called once,
    /// after every frontend of the device has stopped.
    pub async fn close(&self) -> Result<(), BackendError> {
        use pnfs_gateway::disk::Disk;
        self.pnfs_disk
            .flush()
            .await
            .map_err(|e| BackendError::Failed(format!("flush: {e}")))?;
        self.pnfs_disk
            .close()
            .await
            .map_err(|e| BackendError::Failed(e.to_string()))
    }
}

/// Where the NBD server listens.
#[derive(Debug, Clone)]
pub struct NbdListeners {
    /// The listeners, with their TLS and export allow-lists.
    pub listeners: Vec<pnfs_config::NbdListener>,
    /// Connection limit (for each listener).
    pub max_connections: u32,
}

/// One bound NBD listener.
#[derive(Debug)]
struct BoundListener {
    name: String,
    listener: pnfs_nbd::Listener,
    tls: Option<pnfs_nbd::ServerTls>,
    exports: Option<Vec<String>>,
}

/// One NBD export.
#[derive(Debug)]
pub struct NbdExport {
    /// Export name.
    pub name: String,
    /// The device behind it.
    pub device: Arc<Device>,
    /// Refuse writes.
    pub read_only: bool,
}

/// The NBD server with its listeners bound.
#[derive(Debug)]
pub struct NbdServer {
    listeners: Vec<BoundListener>,
    unix_paths: Vec<PathBuf>,
    config: pnfs_nbd::ServerConfig,
}

/// Builds the export set the NBD server offers.
pub fn nbd_export_set(exports: &[NbdExport]) -> Result<Arc<pnfs_nbd::ExportSet>, BackendError> {
    let mut set = pnfs_nbd::ExportSet::new();
    for e in exports {
        // The NBD frontend's disk is timed (latency histograms, queue depth).
        let timed = crate::latency::TimedDisk::new(
            Arc::clone(&e.device.pnfs_disk),
            Arc::clone(&e.device.nbd_timing),
        );
        let export = pnfs_nbd::Export::new(e.name.clone(), Arc::new(timed))
            .with_description(e.device.description.clone())
            .with_read_only(e.read_only);
        set.add(export)
            .map_err(|err| BackendError::Failed(format!("NBD export {:?}: {err}", e.name)))?;
    }
    Ok(Arc::new(set))
}

/// The NBD counters of export `name`, named for `pnfsgw stats`.
pub fn nbd_counters(set: &pnfs_nbd::ExportSet, name: &str) -> BTreeMap<String, u64> {
    let Some(e) = set.lookup(name) else {
        return BTreeMap::new();
    };
    let s = e.stats().snapshot();
    let commands = [
        "read",
        "write",
        "disc",
        "flush",
        "trim",
        "cache",
        "write_zeroes",
        "block_status",
        "unknown",
    ];
    let mut m: BTreeMap<String, u64> = [
        ("nbd.connections_total", s.connections_total),
        ("nbd.connections_active", s.connections_active),
        ("nbd.errors", s.errors),
        ("nbd.read_bytes", s.read_bytes),
        ("nbd.written_bytes", s.written_bytes),
        ("nbd.trimmed_bytes", s.trimmed_bytes),
        ("nbd.zeroed_bytes", s.zeroed_bytes),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (name, n) in commands.iter().zip(s.requests) {
        if n > 0 {
            m.insert(format!("nbd.requests.{name}"), n);
        }
    }
    m
}

impl NbdServer {
    /// Loads every listener's TLS credentials and binds every listener (so certificate and
    /// address errors come before readiness). A stale Unix socket file (nobody listening) is
    /// replaced; a live one is an error.
    pub async fn bind(l: &NbdListeners) -> Result<Self, BackendError> {
        let mut listeners = Vec::new();
        let mut unix_paths = Vec::new();
        for cfg in &l.listeners {
            let tls = match &cfg.tls {
                None => None,
                Some(t) => {
                    let mode = match t.mode {
                        pnfs_config::NbdTlsMode::On => pnfs_nbd::TlsMode::On,
                        pnfs_config::NbdTlsMode::Require => pnfs_nbd::TlsMode::Require,
                    };
                    Some(
                        pnfs_nbd::ServerTls::from_dir(&t.dir, t.verify_peer, mode).map_err(
                            |e| BackendError::Failed(format!("NBD TLS credentials: {e}")),
                        )?,
                    )
                }
            };
            let (name, listener) = match &cfg.address {
                pnfs_config::NbdAddress::Tcp(addr) => {
                    let t = tokio::net::TcpListener::bind(addr)
                        .await
                        .map_err(|e| BackendError::Failed(format!("NBD listen on {addr}: {e}")))?;
                    (addr.to_string(), t.into())
                }
                pnfs_config::NbdAddress::Unix(path) => {
                    let u = bind_unix(path).map_err(|e| {
                        BackendError::Failed(format!("NBD listen on {}: {e}", path.display()))
                    })?;
                    unix_paths.push(path.clone());
                    (path.display().to_string(), u.into())
                }
            };
            listeners.push(BoundListener {
                name,
                listener,
                tls,
                exports: cfg.exports.clone(),
            });
        }
        let config = pnfs_nbd::ServerConfig {
            max_connections: usize::try_from(l.max_connections).unwrap_or(usize::MAX),
            ..pnfs_nbd::ServerConfig::default()
        };
        Ok(Self {
            listeners,
            unix_paths,
            config,
        })
    }

    /// Serves `exports` on every listener until `shutdown` turns true, then drains in-flight
    /// requests (the NBD server flushes every disk) and returns.
    pub async fn serve(
        mut self,
        exports: Arc<pnfs_nbd::ExportSet>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), BackendError> {
        let mut tasks = tokio::task::JoinSet::new();
        for bound in std::mem::take(&mut self.listeners) {
            let BoundListener {
                name,
                listener,
                tls,
                exports: allowed,
            } = bound;
            let exports = match allowed {
                None => Arc::clone(&exports),
                // Only the allowed exports: a client cannot reach any other device here. A
                // name missing from the set is a device that failed to start (reported as
                // such); the listener serves the others.
                Some(names) => {
                    let present: Vec<String> = names
                        .into_iter()
                        .filter(|n| exports.lookup(n).is_some())
                        .collect();
                    Arc::new(
                        exports
                            .subset(&present)
                            .map_err(|e| BackendError::Failed(format!("NBD on {name}: {e}")))?,
                    )
                }
            };
            let mut stop = shutdown.clone();
            let config = self.config;
            tasks.spawn(async move {
                let r = pnfs_nbd::serve_with_tls(listener, exports, config, tls, async move {
                    crate::stopped(&mut stop).await;
                })
                .await;
                (name, r)
            });
        }
        let mut errors = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(e))) => errors.push(format!("NBD on {name}: {e}")),
                Err(e) => errors.push(format!("NBD task: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(BackendError::Failed(errors.join("; ")))
        }
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        for p in &self.unix_paths {
            if let Err(e) = std::fs::remove_file(p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", p.display());
                }
            }
        }
    }
}

/// Binds a Unix stream socket, replacing a stale socket file.
fn bind_unix(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "in use: is another pnfsgw running?",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => {
            if std::fs::symlink_metadata(path)?.file_type().is_socket() {
                std::fs::remove_file(path)?;
            }
        }
    }
    tokio::net::UnixListener::bind(path)
}

/// A running ublk device.
#[derive(Debug)]
pub struct UblkDevice {
    /// Its block device path, /dev/ublkbN.
    pub path: String,
    /// It survives the gateway: [`UblkDevice::end`] hands it over instead of deleting it.
    pub recovery: bool,
    dev: pnfs_ublk::UblkDevice,
}

/// Creates a /dev/ublkbN for `device` with the device's queues, depth and recovery setting,
/// or recovers the one an earlier run of this instance left (recorded in `registry`; the
/// rule is in pnfs_ublk's `recovery` module). Without the kernel's ublk driver the error
/// names it (`/dev/ublk-control not found: ... ublk_drv`).
pub async fn start_ublk(
    spec: &DeviceSpec,
    device: Arc<Device>,
    registry: pnfs_ublk::Registry,
) -> Result<UblkDevice, BackendError> {
    let params = pnfs_ublk::UblkParams {
        nr_queues: spec.config.queues,
        queue_depth: spec.config.depth,
        name: spec.config.name.clone(),
        recovery: spec.config.ublk_recovery,
        ..pnfs_ublk::UblkParams::default()
    };
    let disk = Arc::clone(&device.pnfs_disk);
    let handle = tokio::runtime::Handle::current();
    let dev = tokio::task::spawn_blocking(move || {
        pnfs_ublk::UblkDevice::start_kept(disk, params, handle, &registry)
    })
    .await
    .map_err(|e| BackendError::Failed(format!("ublk start: {e}")))?
    .map_err(|e| BackendError::Failed(e.to_string()))?;
    Ok(UblkDevice {
        path: dev.path().display().to_string(),
        recovery: spec.config.ublk_recovery,
        dev,
    })
}

/// Deletes the ublk devices an earlier run of this instance left that no configured device
/// recovers (see pnfs_ublk's `recovery` module); blocking.
pub fn sweep_ublk(
    config: &Config,
    registry: &pnfs_ublk::Registry,
) -> Result<Vec<u32>, BackendError> {
    let keep: Vec<String> = config
        .devices
        .iter()
        .filter(|d| d.ublk_recovery)
        .map(|d| d.name.clone())
        .collect();
    registry
        .sweep(&keep)
        .map_err(|e| BackendError::Failed(e.to_string()))
}

impl UblkDevice {
    /// Counters for `pnfsgw stats`, and the device's state when it is not running.
    pub fn counters(&self) -> (BTreeMap<String, u64>, Option<String>) {
        let st = self.dev.status();
        let s = st.stats;
        let m = [
            ("ublk.reads", s.reads),
            ("ublk.writes", s.writes),
            ("ublk.flushes", s.flushes),
            ("ublk.discards", s.discards),
            ("ublk.write_zeroes", s.write_zeroes),
            ("ublk.errors", s.errors),
            ("ublk.bytes_read", s.bytes_read),
            ("ublk.bytes_written", s.bytes_written),
            ("ublk.queues", u64::from(st.nr_queues)),
            ("ublk.queue_depth", u64::from(st.queue_depth)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let problem = match st.state {
            pnfs_ublk::DeviceState::Running => None,
            other => Some(other.to_string()),
        };
        (m, problem)
    }

    /// True when this run recovered the device from an earlier one.
    pub fn recovered(&self) -> bool {
        self.dev.recovered()
    }

    /// Ends this run's service of the device: with recovery, hands it over (no new request
    /// reaches the disk, the running ones finish, the rest wait in the kernel for the next
    /// run); without, stops the queues (in-flight requests complete) and deletes it.
    pub async fn end(self) -> Result<(), BackendError> {
        let r = if self.recovery {
            self.dev.detach_async().await
        } else {
            self.dev.stop_async().await
        };
        r.map_err(|e| BackendError::Failed(e.to_string()))
    }
}

/// The embedded MDS running in this process.
#[derive(Debug)]
pub struct EmbeddedMds {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Options for the in-process MDS of `pnfsgw demo`.
#[derive(Debug, Clone)]
pub struct EmbeddedMdsOptions {
    /// Listen address (port 0: any).
    pub listen: SocketAddr,
    /// Directory for its persistent metadata.
    pub state_dir: PathBuf,
    /// Its volume file.
    pub volume: PathBuf,
    /// Layout block size.
    pub block_size_bytes: u32,
    /// Lease time it grants.
    pub lease_seconds: u32,
}

/// Starts the embedded MDS in this process.
pub async fn start_embedded_mds(opts: &EmbeddedMdsOptions) -> Result<EmbeddedMds, BackendError> {
    let args = pnfs_mds::MdsArgs {
        listen: opts.listen.to_string(),
        state: opts.state_dir.clone(),
        volumes: vec![opts.volume.clone()],
        block_size: Some(u64::from(opts.block_size_bytes)),
        config: None,
        lease_seconds: Some(u64::from(opts.lease_seconds)),
        grace_seconds: None,
        recall_timeout_seconds: None,
        admin_socket: None,
        label_at_end: false,
    };
    std::fs::create_dir_all(&opts.state_dir)
        .map_err(|e| BackendError::Failed(format!("{}: {e}", opts.state_dir.display())))?;
    let mds = pnfs_mds::Config::from_args(&args)
        .and_then(pnfs_mds::Config::open)
        .map_err(|e| BackendError::Failed(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| BackendError::Failed(format!("MDS listen on {}: {e}", opts.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BackendError::Failed(e.to_string()))?;
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(pnfs_mds::run(listener, mds, async move {
        crate::stopped(&mut stop_rx).await;
    }));
    Ok(EmbeddedMds { addr, stop, task })
}

impl EmbeddedMds {
    /// Stops the MDS and waits for it (its metadata is committed on every change).
    pub async fn stop(self) -> Result<(), BackendError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| BackendError::Failed(format!("MDS task: {e}")))
    }
}

/// `pnfsgw mds`: runs the embedded MDS from its own flags until SIGINT/SIGTERM.
pub fn mds_main(args: pnfs_mds::MdsArgs) -> Result<(), BackendError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BackendError::Failed(format!("async runtime: {e}")))?;
    rt.block_on(pnfs_mds::main_with(args))
        .map_err(|e| BackendError::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(device_extra: &str) -> Config {
        let text = format!(
            "[mds]\naddresses = [\"127.0.0.1:2049\"]\n[nbd]\ntcp = [\"127.0.0.1:10809\"]\n\
             [[device]]\nname = \"a\"\npath = \"/a\"\nfrontends = [\"ublk\"]\n{device_extra}\
             [[device]]\nname = \"b\"\npath = \"/b\"\n"
        );
        let host = pnfs_config::HostIdentity {
            machine_name: "h".into(),
            machine_id: "0123456789abcdef".into(),
        };
        pnfs_config::parse_str(std::path::Path::new("/t.toml"), &text, &host)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A device that survives restarts must not answer a write before it is committed: the
    /// next process could not commit what a dead one wrote (README, "ublk devices that
    /// survive a restart").
    #[test]
    fn writes_commit_before_the_answer_only_while_a_device_survives_restarts() {
        let plain = pnfs_config(&config(""));
        assert_eq!(
            plain.commit_threshold_pieces,
            PnfsConfig::default().commit_threshold_pieces
        );
        assert!(plain.commit_threshold_pieces > 0);
        let kept = pnfs_config(&config("recovery = true\n"));
        assert_eq!(kept.commit_threshold_pieces, 0);
    }
}
