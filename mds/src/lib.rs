//! Embedded NFSv4.1 pNFS block-layout metadata server (MDS).
//!
//! Serves a directory tree over NFSv4.1 (sessions, back channel on the client's connection,
//! leases, grace and reclaim) whose file data live on one or more volumes that clients reach
//! directly through RFC 5663 block layouts.
//!
//! # Design
//! - **Metadata store**: [redb](https://docs.rs/redb) — pure Rust, ACID with copy-on-write
//!   B-trees and a durable commit on every write transaction, no C toolchain, actively
//!   maintained. Every metadata change is ONE write transaction committed before the reply
//!   ([`fs::Fs::commit`]); the free-space map is derived from the extent maps at start.
//! - **Volumes** ([`volume`]): every simple volume gets a 4 KiB label (magic + UUID) at its
//!   start, or at its end (negative signature offset) when configured; the label area is
//!   never allocated. Topology: SIMPLE, SLICE, CONCAT, STRIPE, nested (config file).
//! - **Protocol** ([`nfs`]): every byte on the wire goes through `pnfs_proto` (COMPOUND
//!   arguments and results, fattr4, CB_COMPOUND, block-layout bodies) with its limits. A whole
//!   COMPOUND, attributes included, is decoded before any operation runs, so a request that
//!   fails to decode changes nothing (it gets RPC GARBAGE_ARGS). An oversized or malformed
//!   record closes that connection only.
//! - **Layouts**: READ layouts carry READ_DATA / NONE_DATA; RW layouts allocate holes as
//!   INVALID_DATA, written blocks are READ_WRITE_DATA, shared (cloned) blocks get READ_DATA +
//!   INVALID_DATA copy-on-write pairs. Layouts are return-on-close (like Linux nfsd). A
//!   conflicting LAYOUTGET from another client, an MDS write that changes the block map under a
//!   layout, or a truncation recalls layouts (CB_LAYOUTRECALL) and answers
//!   NFS4ERR_RECALLCONFLICT / NFS4ERR_DELAY until they are returned; after the recall timeout
//!   the layout is revoked (forgotten — plain block volumes cannot be fenced).
//! - **Read delegations** (never write ones) on read-only opens of files nobody writes, to
//!   clients with a back channel (`nfs::deleg`); another client's conflicting OPEN, SETATTR,
//!   RENAME, REMOVE or LINK recalls them (CB_RECALL) and gets NFS4ERR_DELAY until DELEGRETURN;
//!   one not returned a lease after its recall is revoked. Byte-range locks are advisory and
//!   POSIX-like (LOCK / LOCKT / LOCKU with lock stateids, DENIED with the holder; blocking
//!   requests are polled, no CB_NOTIFY_LOCK); they go with their open's CLOSE and the client's
//!   lease. Permissions are not enforced (trusted AUTH_SYS
//!   clients).
//! - **Client records** follow the EXCHANGE_ID case table of RFC 8881 §18.35.5, with the
//!   AUTH_SYS machine name and uid as the principal: a known owner with a new verifier gets
//!   a new, unconfirmed client ID, and the old client keeps its sessions and state until
//!   CREATE_SESSION confirms the new one — then they end (BADSESSION, STALE_CLIENTID). Two
//!   live clients sharing one owner therefore keep ending each other's state (logged as a
//!   warning); every client needs an owner of its own. Sessions enforce the channel
//!   attributes negotiated by CREATE_SESSION (TOO_MANY_OPS, REQ_TOO_BIG, REP_TOO_BIG).
//! - **Files**: regular files, directories, symlinks, devices, sockets and fifos; OPEN share
//!   deny modes are enforced (SHARE_DENIED); a file removed while open lives until its last
//!   CLOSE.
//! - **Restart**: client owners that completed RECLAIM_COMPLETE are stored; a restarted
//!   server has a grace period (ending early when all of them sent RECLAIM_COMPLETE) in which
//!   only CLAIM_PREVIOUS opens and reclaim LAYOUTCOMMITs are accepted, and REMOVE, RENAME,
//!   truncation and I/O under special stateids get GRACE. Owners that did not reclaim in it
//!   are forgotten when it ends.

//!
//! # Running it (also from other crates' tests)
//! `pnfs-mds --listen 127.0.0.1:PORT --state DIR --volume FILE [--volume FILE…]
//! [--block-size BYTES] [--config FILE] [--lease-seconds N] [--grace-seconds N]
//! [--recall-timeout-seconds N] [--admin-socket PATH] [--label-at-end]`. The admin socket
//! (default `DIR/admin.sock`, created once the server is ready) takes one command per line:
//! `recall /path` → `ok N` (CB_LAYOUTRECALL to every holder of a layout on that file),
//! `layouts /path` → `ok N` (how many clients hold a layout on that file),
//! `delegations /path` → `ok N` (how many clients hold a delegation of that file),
//! `clone /src /dst` → `ok`, `stats` → `recalls_sent=N revoked=M unacknowledged=K expired_clients=E
//! delegation_recalls=D delegation_revocations=R`.
//! In-process:
//! [`Config::from_args`] + [`Config::open`] + [`run`], and [`Mds::recall_layouts`].

pub mod fs;
pub mod nfs;
pub mod out_queue;
pub mod server;
pub mod sync;
pub mod volume;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use server::Mds;

/// Errors of the MDS.
#[derive(Debug, thiserror::Error)]
pub enum MdsError {
    /// A volume could not be used.
    #[error("volume: {0}")]
    Volume(String),
    /// Bad configuration.
    #[error("config: {0}")]
    Config(String),
    /// The metadata store failed.
    #[error("store: {0}")]
    Store(String),
    /// An admin request failed.
    #[error("admin: {0}")]
    Admin(String),
    /// I/O (listening sockets).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Command-line arguments of the MDS (also the `pnfsgw mds` subcommand).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "pnfs-mds",
    about = "Embedded NFSv4.1 pNFS block-layout metadata server"
)]
pub struct MdsArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2049")]
    pub listen: String,
    /// Directory for the metadata store.
    #[arg(long)]
    pub state: PathBuf,
    /// Volume file or block device (repeat for several; they are concatenated unless the
    /// config file gives a topology).
    #[arg(long = "volume", required = true)]
    pub volumes: Vec<PathBuf>,
    /// Allocation block size in bytes (4096 to 1048576, a power of two).
    #[arg(long)]
    pub block_size: Option<u64>,
    /// TOML config file (topology, label positions, timers).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Lease time in seconds.
    #[arg(long)]
    pub lease_seconds: Option<u64>,
    /// Grace period after restart, seconds.
    #[arg(long)]
    pub grace_seconds: Option<u64>,
    /// Seconds a client has to return a recalled layout before it is revoked.
    #[arg(long)]
    pub recall_timeout_seconds: Option<u64>,
    /// Admin Unix socket (default: STATE/admin.sock).
    #[arg(long)]
    pub admin_socket: Option<PathBuf>,
    /// Put every volume's label at its end (negative signature offset).
    #[arg(long)]
    pub label_at_end: bool,
}

/// The config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Block size.
    pub block_size: Option<u64>,
    /// Lease seconds.
    pub lease_seconds: Option<u64>,
    /// Grace seconds.
    pub grace_seconds: Option<u64>,
    /// Recall timeout seconds.
    pub recall_timeout_seconds: Option<u64>,
    /// Label position per volume (by index); missing entries: start.
    #[serde(default)]
    pub label_at: Vec<volume::LabelAt>,
    /// The topology over the volumes.
    pub topology: Option<volume::Topology>,
}

/// Everything `run` needs, validated.
#[derive(Debug)]
pub struct Config {
    /// Protocol timers and sizes.
    pub settings: nfs::Settings,
    /// Block size.
    pub block_bytes: u64,
    /// Store directory.
    pub state_dir: PathBuf,
    /// Volumes and where their labels are.
    pub volumes: Vec<(PathBuf, volume::LabelAt)>,
    /// Topology.
    pub topology: volume::Topology,
}

impl Config {
    /// Validates the arguments (and reads the config file).
    pub fn from_args(a: &MdsArgs) -> Result<Self, MdsError> {
        let file: ConfigFile = match &a.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| MdsError::Config(format!("{}: {e}", p.display())))?;
                toml::from_str(&text)
                    .map_err(|e| MdsError::Config(format!("{}: {e}", p.display())))?
            }
            None => ConfigFile::default(),
        };
        let block_bytes = a.block_size.or(file.block_size).unwrap_or(4096);
        if !(4096..=1 << 20).contains(&block_bytes) || !block_bytes.is_power_of_two() {
            return Err(MdsError::Config(format!(
                "block size {block_bytes} must be a power of two from 4096 to 1048576"
            )));
        }
        let secs = |cli: Option<u64>, f: Option<u64>, d: u64| {
            Duration::from_secs(cli.or(f).unwrap_or(d).clamp(1, 3600))
        };
        let settings = nfs::Settings {
            lease: secs(a.lease_seconds, file.lease_seconds, 10),
            grace: secs(a.grace_seconds, file.grace_seconds, 10),
            recall_timeout: secs(a.recall_timeout_seconds, file.recall_timeout_seconds, 15),
            // layout_blksize is the unit a client must write whole (RFC 5663 read-modify-write
            // of INVALID space). The extent maps keep state per 4 KiB sector at every
            // allocation block size (a commit of part of a 64 KiB block leaves the rest INVALID,
            // read as zeros), so the sector is the honest answer; the Linux block layout driver
            // also refuses a layout_blksize above its page size (bl_set_layoutdriver).
            layout_blksize: u32::try_from(fs::SECTOR_BYTES).unwrap_or(4096),
        };
        let volumes: Vec<_> = a
            .volumes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let at = if a.label_at_end {
                    volume::LabelAt::End
                } else {
                    file.label_at.get(i).copied().unwrap_or_default()
                };
                (p.clone(), at)
            })
            .collect();
        let topology = file.topology.clone().unwrap_or_else(|| {
            if volumes.len() == 1 {
                volume::Topology::Simple { volume: 0 }
            } else {
                volume::Topology::Concat {
                    children: (0..volumes.len())
                        .map(|volume| volume::Topology::Simple { volume })
                        .collect(),
                }
            }
        });
        Ok(Self {
            settings,
            block_bytes,
            state_dir: a.state.clone(),
            volumes,
            topology,
        })
    }

    /// Opens the volumes and the store and builds the server.
    pub fn open(self) -> Result<Arc<Mds>, MdsError> {
        let vols = self
            .volumes
            .into_iter()
            .map(|(p, at)| volume::SimpleVolume::open(p, at))
            .collect::<Result<Vec<_>, _>>()?;
        let lv = volume::LogicalVolume::new(vols, self.topology)?;
        let fs = fs::Fs::open(&self.state_dir, lv, self.block_bytes)?;
        Ok(Mds::new(nfs::State::new(fs, self.settings)?))
    }
}

/// Serves `mds` on `listener` until `shutdown` completes (tests drive this directly).
pub async fn run(
    listener: tokio::net::TcpListener,
    mds: Arc<Mds>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    server::serve(listener, mds, shutdown).await;
}

/// Runs the MDS as the `pnfs-mds` binary and `pnfsgw mds` do: until SIGINT/SIGTERM.
pub async fn main_with(args: MdsArgs) -> Result<(), MdsError> {
    let cfg = Config::from_args(&args)?;
    let state_dir = cfg.state_dir.clone();
    let mds = cfg.open()?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let admin_path = args
        .admin_socket
        .clone()
        .unwrap_or_else(|| state_dir.join("admin.sock"));
    let _ = std::fs::remove_file(&admin_path);
    let admin = tokio::net::UnixListener::bind(&admin_path)?;
    tracing::info!(
        "pnfs-mds listening on {} (admin {})",
        listener.local_addr()?,
        admin_path.display()
    );
    let admin_task = tokio::spawn(server::serve_admin(admin, Arc::clone(&mds)));
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    run(listener, mds, shutdown).await;
    admin_task.abort();
    let _ = std::fs::remove_file(&admin_path);
    Ok(())
}
