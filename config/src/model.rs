//! The validated configuration: what the rest of the program uses. Every value here has been
//! checked; nothing here knows about TOML.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// The Prometheus metrics listener, when `[metrics]` is set.
    pub metrics: Option<MetricsConfig>,
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
    /// The layout type wanted when the server offers both block and SCSI layouts.
    pub layout: LayoutChoice,
}

/// `[mds] layout`: which pNFS layout type to use when the file system offers both (one
/// offered alone is used whatever this says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LayoutChoice {
    /// `"block"`: RFC 5663 block volumes, found by signature (the default).
    #[default]
    Block,
    /// `"scsi"`: RFC 8154 SCSI logical units, found by designator and fenced with
    /// persistent reservations.
    Scsi,
}

impl fmt::Display for LayoutChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutChoice::Block => "block",
            LayoutChoice::Scsi => "scsi",
        })
    }
}

/// `[volumes]`: absolute paths; a pattern may use `*`, `?` and `[...]` in its last component.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeSearch {
    /// Entries in file order.
    pub entries: Vec<VolumePattern>,
    /// SCSI designators given for volume paths (`[[volumes.designator]]`), for devices whose
    /// Device Identification VPD page is not in sysfs (e.g. device-mapper multipath); a path
    /// appears at most once.
    pub designators: Vec<VolumeDesignator>,
}

/// `[[volumes.designator]]`: the logical-unit designator of one volume path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeDesignator {
    /// The absolute path of the volume (as the search finds it).
    pub path: PathBuf,
    /// Its designator.
    pub designator: ScsiDesignator,
}

/// The designator types a configuration can name (SPC Device Identification VPD page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DesignatorKind {
    /// `naa.<hex>`: NAA, 8 or 16 bytes, binary.
    Naa,
    /// `eui.<hex>`: EUI-64 based, 8, 12 or 16 bytes, binary.
    Eui64,
    /// `t10.<text>`: T10 vendor ID based, printable ASCII.
    T10,
    /// `name.<text>`: SCSI name string, UTF-8.
    Name,
}

/// A SCSI logical-unit designator from the configuration, already validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScsiDesignator {
    /// Its type (which also fixes the code set: binary for NAA/EUI, ASCII for T10, UTF-8 for
    /// names).
    pub kind: DesignatorKind,
    /// The designator bytes as in VPD page 0x83 (at most 255).
    pub bytes: Vec<u8>,
}

/// Longest designator text accepted.
pub const DESIGNATOR_TEXT_MAX_CHARS: usize = 600;

impl ScsiDesignator {
    /// Parses `naa.<hex>`, `eui.<hex>`, `t10.<printable ASCII>` or `name.<text>` (hex may
    /// start with `0x`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > DESIGNATOR_TEXT_MAX_CHARS {
            return Err(format!(
                "longer than {DESIGNATOR_TEXT_MAX_CHARS} characters"
            ));
        }
        let Some((kind, rest)) = text.split_once('.') else {
            return Err("expected naa.<hex>, eui.<hex>, t10.<text> or name.<text>".into());
        };
        let hex = |rest: &str| -> Result<Vec<u8>, String> {
            let h = rest.strip_prefix("0x").unwrap_or(rest);
            if h.is_empty() || h.len() % 2 != 0 {
                return Err("needs an even, nonzero number of hex digits".into());
            }
            (0..h.len())
                .step_by(2)
                .map(|i| {
                    h.get(i..i + 2)
                        .and_then(|d| u8::from_str_radix(d, 16).ok())
                        .ok_or_else(|| format!("{:?} is not hex", h.get(i..i + 2).unwrap_or(h)))
                })
                .collect()
        };
        let (kind, bytes) = match kind.to_ascii_lowercase().as_str() {
            "naa" => {
                let b = hex(rest)?;
                if b.len() != 8 && b.len() != 16 {
                    return Err(format!(
                        "an NAA designator has 8 or 16 bytes, not {}",
                        b.len()
                    ));
                }
                (DesignatorKind::Naa, b)
            }
            "eui" => {
                let b = hex(rest)?;
                if ![8, 12, 16].contains(&b.len()) {
                    return Err(format!(
                        "an EUI-64 based designator has 8, 12 or 16 bytes, not {}",
                        b.len()
                    ));
                }
                (DesignatorKind::Eui64, b)
            }
            "t10" => {
                if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
                    return Err("a T10 designator is non-empty printable ASCII".into());
                }
                (DesignatorKind::T10, rest.as_bytes().to_vec())
            }
            "name" => {
                if rest.is_empty() || rest.chars().any(char::is_control) {
                    return Err("a SCSI name string is non-empty printable text".into());
                }
                (DesignatorKind::Name, rest.as_bytes().to_vec())
            }
            other => {
                return Err(format!(
                    "unknown designator kind {other:?}: expected naa, eui, t10 or name"
                ))
            }
        };
        if bytes.len() > 255 {
            return Err(format!("{} bytes, at most 255", bytes.len()));
        }
        Ok(Self { kind, bytes })
    }
}

/// The characters that make a volume search entry a pattern.
pub const GLOB_CHARS: [char; 3] = ['*', '?', '['];

/// One entry of the volume search list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePattern {
    /// An absolute path; only the last component may hold `*`, `?` or `[...]` (the
    /// [`glob::Pattern`] syntax).
    pub pattern: PathBuf,
}

impl VolumePattern {
    /// True when the last component holds a wildcard.
    pub fn is_glob(&self) -> bool {
        self.pattern
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(GLOB_CHARS))
    }

    /// The last component as a pattern; the error says where in it and why it is not one.
    pub fn name_pattern(&self) -> Result<glob::Pattern, String> {
        let name = self
            .pattern
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        glob::Pattern::new(name).map_err(|e| {
            format!(
                "{name:?} is not a pattern: {} at character {}",
                e.msg,
                e.pos + 1
            )
        })
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
    /// `[[nbd.listener]]` tables: listeners with TLS or an export allow-list.
    pub listeners: Vec<NbdListener>,
}

impl NbdConfig {
    /// Every listener: the plain `tcp` and `unix` ones (no TLS, every export) first, then
    /// the `[[nbd.listener]]` ones.
    pub fn all_listeners(&self) -> Vec<NbdListener> {
        let plain = |address| NbdListener {
            address,
            tls: None,
            exports: None,
        };
        self.tcp
            .iter()
            .map(|a| plain(NbdAddress::Tcp(*a)))
            .chain(self.unix.iter().map(|p| plain(NbdAddress::Unix(p.clone()))))
            .chain(self.listeners.iter().cloned())
            .collect()
    }

    /// True when there is no listener at all.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.unix.is_empty() && self.listeners.is_empty()
    }
}

/// Where an NBD listener listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NbdAddress {
    /// A TCP address.
    Tcp(SocketAddr),
    /// An absolute Unix socket path.
    Unix(PathBuf),
}

/// Whether an NBD listener offers TLS or insists on it (`tls = "on" | "require"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NbdTlsMode {
    /// Offered; plain-text clients are served too.
    On,
    /// Required: no export is reachable in plain text.
    Require,
}

impl fmt::Display for NbdTlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NbdTlsMode::On => "on",
            NbdTlsMode::Require => "require",
        })
    }
}

/// The TLS of one NBD listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdTls {
    /// On or required.
    pub mode: NbdTlsMode,
    /// The credentials directory (`ca-cert.pem`, `server-cert.pem`, `server-key.pem`, as
    /// qemu's `tls-creds-x509`); the files were there when the configuration was checked.
    pub dir: PathBuf,
    /// Clients must present a certificate signed by `ca-cert.pem`.
    pub verify_peer: bool,
}

/// The certificate files a TLS directory must hold (`ca-cert.pem` only with
/// `verify_peer`).
pub const TLS_SERVER_FILES: [&str; 2] = ["server-cert.pem", "server-key.pem"];
/// The CA file of a TLS directory.
pub const TLS_CA_FILE: &str = "ca-cert.pem";

/// Checks that a TLS credentials directory holds the server's files (and the CA with
/// `verify_peer`); the error names the first missing file.
pub fn check_tls_dir(dir: &Path, verify_peer: bool) -> Result<(), String> {
    let needed = TLS_SERVER_FILES
        .iter()
        .chain(verify_peer.then_some(&TLS_CA_FILE));
    for file in needed {
        let f = dir.join(file);
        if !f.is_file() {
            let why = if *file == TLS_CA_FILE {
                " (tls_verify_peer checks client certificates against it)"
            } else {
                ""
            };
            return Err(format!("missing certificate file {}{why}", f.display()));
        }
    }
    Ok(())
}

/// One NBD listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbdListener {
    /// Where it listens.
    pub address: NbdAddress,
    /// TLS (TCP only); `None`: plain text.
    pub tls: Option<NbdTls>,
    /// The export names it serves (each one a device's); `None`: every NBD export.
    pub exports: Option<Vec<String>>,
}

/// `[ublk]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UblkDefaults {
    /// Queues per device.
    pub queues: u16,
    /// Requests in flight per queue.
    pub depth: u16,
    /// Devices survive a restart of the gateway (ublk user recovery); the default of
    /// [`DeviceConfig::ublk_recovery`].
    pub recovery: bool,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Absolute path of the Unix socket serving stats.
    pub socket: PathBuf,
}

/// `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where the HTTP listener serves `GET /metrics`: a loopback address unless
    /// `allow_remote = true` was set.
    pub listen: SocketAddr,
}

/// Checks a metrics listen address: port not 0, loopback unless `allow_remote`.
pub fn check_metrics_listen(addr: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if addr.port() == 0 {
        return Err("metrics listen port 0 is not allowed: scrapers could not find it".into());
    }
    if !allow_remote && !addr.ip().is_loopback() {
        return Err(format!(
            "metrics listen address {addr} is not a loopback address: the counters would be \
             readable from the network without authentication; set allow_remote = true in \
             [metrics] to allow it"
        ));
    }
    Ok(())
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
    /// The ublk device survives a restart of the gateway: kept (its I/O waits) when the
    /// gateway exits or dies, recovered by the next start (ublk user recovery).
    pub ublk_recovery: bool,
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
