//! The seam between the command and the library crates it wires together: the NFSv4.1 client
//! and pNFS disk (pnfs-gateway), the NBD server (pnfs-nbd), the ublk frontend (pnfs-ublk) and
//! the embedded MDS (pnfs-mds). Everything the service does to them goes through this module,
//! so wiring a newly landed crate touches only this file.

// Until every crate is wired, some placeholder fields are not read yet.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use pnfs_config::{Config, DeviceConfig, MdsConfig};
use pnfs_gateway::client::{ClientConfig, NfsClient};
use thiserror::Error;
use tokio::sync::watch;

/// An error from a wired crate, or a crate that is not there yet.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The library piece this needs has not landed yet.
    #[error("{0} is not built yet")]
    NotBuilt(&'static str),
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

/// The gateway core: one NFSv4.1 client session to the MDS and the volume map.
#[derive(Debug)]
pub struct Gateway {
    client: NfsClient,
    /// The address the session is on.
    pub mds_addr: String,
}

/// One open device: a file on the MDS, as a Disk.
pub struct Device {
    /// Size in bytes.
    pub size_bytes: u64,
    /// The disk the frontends serve.
    pub disk: Arc<dyn pnfs_nbd::DynDisk>,
    /// One line for NBD's export description ("file PATH on MDS ADDR").
    pub description: String,
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

impl Gateway {
    /// Connects to the first MDS address that answers (EXCHANGE_ID, CREATE_SESSION), each
    /// try bounded by `connect_timeout_ms`.
    pub async fn connect(config: &Config) -> Result<Self, BackendError> {
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
                    return Ok(Self {
                        client,
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

    /// Opens one device's file (creating it when asked) and sets up its pNFS disk.
    pub async fn open(&self, spec: &DeviceSpec) -> Result<Device, BackendError> {
        let _ = spec;
        Err(BackendError::NotBuilt("the pNFS disk (pnfs-gateway pnfs/)"))
    }

    /// Whole-gateway counters for `pnfsgw stats`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let s = self.client.stats();
        [
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
        .collect()
    }

    /// Ends the session (open files closed, DESTROY_SESSION, DESTROY_CLIENTID) after every
    /// device is closed.
    pub async fn shutdown(&self) -> Result<(), BackendError> {
        self.client
            .shutdown()
            .await
            .map_err(|e| BackendError::Failed(e.to_string()))
    }
}

impl Device {
    /// This device's counters for `pnfsgw stats`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }

    /// Flushes, commits (LAYOUTCOMMIT), returns the layouts and closes the file. Called once,
    /// after every frontend of the device has stopped.
    pub async fn close(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Where the NBD server listens.
#[derive(Debug, Clone)]
pub struct NbdListeners {
    /// TCP addresses.
    pub tcp: Vec<SocketAddr>,
    /// Unix socket paths.
    pub unix: Vec<PathBuf>,
    /// Connection limit (for each listener).
    pub max_connections: u32,
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
    listeners: Vec<(String, pnfs_nbd::Listener)>,
    unix_paths: Vec<PathBuf>,
    config: pnfs_nbd::ServerConfig,
}

/// Builds the export set the NBD server offers.
pub fn nbd_export_set(exports: &[NbdExport]) -> Result<Arc<pnfs_nbd::ExportSet>, BackendError> {
    let mut set = pnfs_nbd::ExportSet::new();
    for e in exports {
        let export = pnfs_nbd::Export::from_dyn(e.name.clone(), Arc::clone(&e.device.disk))
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
    /// Binds every listener (so address errors come before readiness). A stale Unix socket
    /// file (nobody listening) is replaced; a live one is an error.
    pub async fn bind(l: &NbdListeners) -> Result<Self, BackendError> {
        let mut listeners = Vec::new();
        let mut unix_paths = Vec::new();
        for addr in &l.tcp {
            let t = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| BackendError::Failed(format!("NBD listen on {addr}: {e}")))?;
            listeners.push((addr.to_string(), t.into()));
        }
        for path in &l.unix {
            let u = bind_unix(path).map_err(|e| {
                BackendError::Failed(format!("NBD listen on {}: {e}", path.display()))
            })?;
            unix_paths.push(path.clone());
            listeners.push((path.display().to_string(), u.into()));
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
        for (name, listener) in std::mem::take(&mut self.listeners) {
            let exports = Arc::clone(&exports);
            let mut stop = shutdown.clone();
            let config = self.config;
            tasks.spawn(async move {
                let r = pnfs_nbd::serve_with_config(listener, exports, config, async move {
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
}

/// Creates a /dev/ublkbN for `device`.
pub async fn start_ublk(
    spec: &DeviceSpec,
    device: Arc<Device>,
) -> Result<UblkDevice, BackendError> {
    let _ = (spec, device);
    Err(BackendError::NotBuilt("the ublk frontend (pnfs-ublk)"))
}

impl UblkDevice {
    /// Stops the queues (in-flight requests complete) and deletes the device.
    pub async fn stop(self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// The embedded MDS running in this process.
#[derive(Debug)]
pub struct EmbeddedMds {
    /// Where it listens.
    pub addr: SocketAddr,
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
}

/// Starts the embedded MDS in this process.
pub async fn start_embedded_mds(opts: &EmbeddedMdsOptions) -> Result<EmbeddedMds, BackendError> {
    let _ = opts;
    Err(BackendError::NotBuilt("the embedded MDS (pnfs-mds)"))
}

impl EmbeddedMds {
    /// Stops the MDS and waits for it to save its state.
    pub async fn stop(self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// `pnfsgw mds`: runs the embedded MDS from its own flags until SIGINT/SIGTERM.
pub fn mds_main(args: crate::args::pnfs_mds_args::Args) -> Result<(), BackendError> {
    let _ = args;
    Err(BackendError::NotBuilt(
        "the embedded MDS (pnfs-mds MdsArgs/main_with)",
    ))
}
