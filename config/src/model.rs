//! The validated configuration: what the rest of the program uses. Every value here has been
//! checked; nothing here knows about TOML.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How to reach and talk to the metadata server.
    pub mds: MdsConfig,
    /// Where to look for the block volumes the layouts name.
    pub volumes: VolumeSearch,
    /// NBD listeners (shared by every device with the NBD frontend).
    pub nbd: NbdConfig,
    /// ublk defaults.
    pub ublk: UblkDefaults,
    /// The control socket for `pnfsgw stats`.
    pub control: ControlConfig,
    /// The devices, in file order; names and export names are unique.
    pub devices: Vec<DeviceConfig>,
}

/// A `host:port` of the MDS; the host may be a name (resolved when connecting) or an IP
/// address (IPv6 in brackets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP address, without brackets.
    pub host: String,
    /// TCP port, never 0.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// AUTH_SYS credentials sent to the MDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSys {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// The AUTH_SYS machine name.
    pub machine_name: String,
}

/// `[mds]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdsConfig {
    /// Addresses, tried in order.
    pub addresses: Vec<HostPort>,
    /// Credentials.
    pub auth: AuthSys,
    /// The client owner id sent in EXCHANGE_ID; must stay the same across restarts of this
    /// gateway so the server lets it reclaim state after a server reboot.
    pub client_owner: String,
    /// Direct volume I/O stops this long before the lease could expire (fencing margin).
    pub lease_margin_ms: u64,
    /// Limit for connecting to the MDS.
    pub connect_timeout_ms: u64,
    /// Limit for one RPC to the MDS.
    pub request_timeout_ms: u64,
    /// The longest one direct volume I/O may take (part of the fencing budget).
    pub max_io_ms: u64,
    /// How long a request may stall while the MDS is unreachable, restarting or in its grace
    /// period before it fails; must cover a server restart plus its grace period.
    pub stall_limit_ms: u64,
}

/// `[volumes]`: absolute paths; a pattern may use `*` and `?` in its last component.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeSearch {
    /// Entries in file order.
    pub entries: Vec<VolumePattern>,
}

/// One entry of the volume search list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePattern {
    /// An absolute path; only the last component may hold `*` or `?`.
    pub pattern: PathBuf,
}

impl VolumePattern {
    /// True when the last component holds a wildcard.
    pub fn is_glob(&self) -> bool {
        self.pattern
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(['*', '?']))
    }
}

/// `[nbd]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdConfig {
    /// TCP listen addresses.
    pub tcp: Vec<SocketAddr>,
    /// Unix socket paths (absolute).
    pub unix: Vec<PathBuf>,
    /// Connections served at once over all listeners.
    pub max_connections: u32,
}

/// `[ublk]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UblkDefaults {
    /// Queues per device.
    pub queues: u16,
    /// Requests in flight per queue.
    pub depth: u16,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Absolute path of the Unix socket serving stats.
    pub socket: PathBuf,
}

/// A frontend a device is exposed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frontend {
    /// An NBD export on every `[nbd]` listener.
    Nbd,
    /// A /dev/ublkbN device.
    Ublk,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Frontend::Nbd => "nbd",
            Frontend::Ublk => "ublk",
        })
    }
}

/// Which data path a device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DataPath {
    /// pNFS: direct volume I/O with layouts, MDS READ/WRITE only as a fallback.
    #[default]
    Pnfs,
    /// Every read and write through the MDS (NFS READ/WRITE/COMMIT); for comparison and for
    /// servers without block layouts.
    Mds,
}

impl fmt::Display for DataPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataPath::Pnfs => "pnfs",
            DataPath::Mds => "mds",
        })
    }
}

/// One `[[device]]`: one file on the MDS exposed as a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Unique name (logs, stats).
    pub name: String,
    /// Absolute path of the file on the MDS (from the NFSv4 root).
    pub path: String,
    /// Frontends, without duplicates, never empty.
    pub frontends: Vec<Frontend>,
    /// The NBD export name (unique); defaults to `name`.
    pub export: String,
    /// Refuse writes.
    pub read_only: bool,
    /// The block size the layout must have, when set (startup fails for this device otherwise).
    pub block_size: Option<u32>,
    /// ublk queues for this device.
    pub queues: u16,
    /// ublk depth for this device.
    pub depth: u16,
    /// Limit on cached layout extents for this file.
    pub max_cached_extents: u32,
    /// Data path.
    pub data_path: DataPath,
}

impl DeviceConfig {
    /// True when the device has frontend `f`.
    pub fn has(&self, f: Frontend) -> bool {
        self.frontends.contains(&f)
    }
}
