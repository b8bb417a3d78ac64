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
#[derive(Debug)]
pub struct Device {
    /// Size in bytes.
    pub size_bytes: u64,
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
    pub async fn shutdown(self) -> Result<(), BackendError> {
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
    /// Connection limit.
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
    _private: (),
}

impl NbdServer {
    /// Binds every listener (so address errors come before readiness).
    pub async fn bind(listeners: &NbdListeners) -> Result<Self, BackendError> {
        let _ = listeners;
        Err(BackendError::NotBuilt("the NBD server (pnfs-nbd)"))
    }

    /// Serves `exports` until `shutdown` turns true, then drains in-flight requests and
    /// returns.
    pub async fn serve(
        self,
        exports: Vec<NbdExport>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), BackendError> {
        let _ = (exports, shutdown);
        Err(BackendError::NotBuilt("the NBD server (pnfs-nbd)"))
    }
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
