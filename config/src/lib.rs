//! TOML configuration schema and validation for `pnfsgw run`.
//!
//! The file is parsed into private serde structs that deny unknown keys everywhere, then
//! validated into the runtime types of [`model`] (configuration apart from runtime objects).
//! Every error is a [`ConfigError`] that names the file and, when the problem is in the text,
//! the line and column: `FILE:LINE:COL: message`.
//!
//! ```toml
//! [mds]
//! addresses = ["10.0.0.5:2049"]          # host:port, tried in order
//! client_owner = "pnfsgw:gw1"            # unique per gateway, stable across restarts
//! lease_margin_ms = 5000
//! layout = "block"                       # or "scsi" (RFC 8154) when the server offers both
//! [mds.auth]
//! uid = 0
//! gid = 0
//! machine_name = "host1"
//!
//! [volumes]
//! search = ["/dev/disk/by-id/wwn-*", "/var/lib/pnfs/vol.img"]
//! [[volumes.designator]]                 # SCSI designator of a device without VPD in sysfs
//! path = "/dev/mapper/mpatha"
//! id = "naa.6001405abcdef0123456789abcdef012"
//!
//! [nbd]
//! tcp = ["127.0.0.1:10809"]
//! unix = ["/run/pnfsgw/nbd.sock"]
//!
//! [ublk]
//! queues = 2
//! depth = 128
//!
//! [metrics]                            # optional: GET /metrics for Prometheus
//! listen = "127.0.0.1:9810"              # loopback unless allow_remote = true
//!
//! [[device]]
//! name = "vm1"
//! path = "/vms/vm1.img"
//! frontends = ["nbd", "ublk"]
//! ```
//! See `systemd/pnfsgw.example.toml` for every key with its default.

mod error;
pub mod model;
mod raw;
mod validate;

pub use validate::{check_absolute_path, parse_host_port};

use std::io::Read;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigErrorKind, Location};
pub use model::*;

/// Largest configuration file read.
pub const CONFIG_FILE_MAX_BYTES: u64 = 1024 * 1024;
/// Most `[[device]]` tables.
pub const DEVICES_MAX: usize = 1024;
/// Most `[mds] addresses`.
pub const MDS_ADDRESSES_MAX: usize = 16;
/// Most `[volumes] search` entries.
pub const VOLUME_SEARCH_MAX: usize = 256;
/// Most volume paths one search expands to.
pub const VOLUME_CANDIDATES_MAX: usize = 4096;
/// Most `[nbd]` listeners of each kind.
pub const NBD_LISTENERS_MAX: usize = 16;
/// Default for `[nbd] max_connections`.
pub const NBD_MAX_CONNECTIONS_DEFAULT: u32 = 256;
/// Upper limit for `[nbd] max_connections`.
pub const NBD_MAX_CONNECTIONS_MAX: u32 = 65536;
/// Longest NBD export name (the NBD protocol's string limit).
pub const NBD_EXPORT_NAME_MAX_BYTES: usize = 4096;
/// Upper limit for ublk queues per device.
pub const UBLK_QUEUES_MAX: u16 = 64;
/// Default ublk queues per device.
pub const UBLK_QUEUES_DEFAULT: u16 = 1;
/// Upper limit for ublk queue depth (the kernel's UBLK_MAX_QUEUE_DEPTH).
pub const UBLK_DEPTH_MAX: u16 = 4096;
/// Default ublk queue depth.
pub const UBLK_DEPTH_DEFAULT: u16 = 128;
/// Smallest block size accepted for `block_size`.
pub const BLOCK_SIZE_MIN_BYTES: u64 = 512;
/// Largest block size accepted for `block_size`.
pub const BLOCK_SIZE_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default `max_cached_extents`.
pub const MAX_CACHED_EXTENTS_DEFAULT: u32 = 65536;
/// Upper limit for `max_cached_extents`.
pub const MAX_CACHED_EXTENTS_MAX: u32 = 16 * 1024 * 1024;
/// Longest device name.
pub const DEVICE_NAME_MAX_BYTES: usize = 64;
/// Longest path.
pub const PATH_MAX_BYTES: usize = 4096;
/// Longest path component.
pub const PATH_COMPONENT_MAX_BYTES: usize = 255;
/// Longest Unix socket path (sun_path is 108 bytes with its NUL).
pub const UNIX_SOCKET_PATH_MAX_BYTES: usize = 107;
/// Longest host name.
pub const HOST_NAME_MAX_BYTES: usize = 253;
/// Longest AUTH_SYS machine name (RFC 5531).
pub const AUTH_MACHINE_NAME_MAX_BYTES: usize = 255;
/// Longest client owner id (NFS4_OPAQUE_LIMIT).
pub const CLIENT_OWNER_MAX_BYTES: usize = 1024;
/// Upper limit for every `*_ms` value (one hour).
pub const TIMEOUT_MAX_MS: u64 = 3_600_000;
/// Default `lease_margin_ms`.
pub const LEASE_MARGIN_DEFAULT_MS: u64 = 1_000;
/// Default `connect_timeout_ms`.
pub const CONNECT_TIMEOUT_DEFAULT_MS: u64 = 10_000;
/// Default `request_timeout_ms`.
pub const REQUEST_TIMEOUT_DEFAULT_MS: u64 = 30_000;
/// Default `max_io_ms`.
pub const MAX_IO_DEFAULT_MS: u64 = 2_000;
/// Default `stall_limit_ms`.
pub const STALL_LIMIT_DEFAULT_MS: u64 = 300_000;
/// Default control socket.
pub const CONTROL_SOCKET_DEFAULT: &str = "/run/pnfsgw/control.sock";

/// Reads and validates the configuration file at `file`. The defaults that name this host
/// (the AUTH_SYS machine name, the client owner) come from [`HostIdentity::local`].
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = read_bounded(file)?;
    parse_str(file, &text, &HostIdentity::local())
}

/// Parses and validates `text`, reporting errors against `file`; `host` gives the defaults for
/// the AUTH_SYS machine name and the client owner when the file sets none.
pub fn parse_str(file: &Path, text: &str, host: &HostIdentity) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_owned();
        match e.span() {
            Some(span) => ConfigError::at(file, text, span, ConfigErrorKind::Syntax, message),
            None => ConfigError::whole_file(file, ConfigErrorKind::Syntax, message),
        }
    })?;
    validate::Checker { file, text }.config(raw, host)
}

/// Reads at most [`CONFIG_FILE_MAX_BYTES`] of UTF-8.
fn read_bounded(file: &Path) -> Result<String, ConfigError> {
    let io = |e: std::io::Error| {
        ConfigError::whole_file(file, ConfigErrorKind::Io, format!("cannot read: {e}"))
    };
    let f = std::fs::File::open(file).map_err(io)?;
    let mut bytes = Vec::new();
    f.take(CONFIG_FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > CONFIG_FILE_MAX_BYTES {
        return Err(ConfigError::whole_file(
            file,
            ConfigErrorKind::Unreadable,
            format!("larger than the limit of {CONFIG_FILE_MAX_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        let at = e.utf8_error().valid_up_to();
        ConfigError::at(
            file,
            &text,
            at..at,
            ConfigErrorKind::Unreadable,
            "not valid UTF-8".into(),
        )
    })
}

/// What names this host to an MDS: its host name (the AUTH_SYS machine name, informational)
/// and an identity that no other host shares (the base of every default client owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// The AUTH_SYS machine name: the host name.
    pub machine_name: String,
    /// `/etc/machine-id` (systemd's per-installation ID), or the host name where there is none.
    pub machine_id: String,
}

/// Where the per-installation machine ID is read from, first found wins (machine-id(5)).
pub const MACHINE_ID_FILES: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

impl HostIdentity {
    /// This host's identity. Host names repeat (cloned VM images, "localhost"), machine IDs do
    /// not, as long as a cloned image's ID is regenerated (`systemd-machine-id-setup`).
    pub fn local() -> HostIdentity {
        let machine_name = local_host_name();
        let machine_id = MACHINE_ID_FILES
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .map(|s| s.trim().to_owned())
            .find(|s| (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_else(|| machine_name.clone());
        HostIdentity {
            machine_name,
            machine_id,
        }
    }

    /// The client owner of one gateway instance on this host: unique to the instance (two
    /// instances on one host differ in `instance`, e.g. their control sockets, which cannot be
    /// shared) and stable across its restarts (so it can reclaim after a server reboot).
    pub fn client_owner(&self, instance: &str) -> String {
        format!("pnfsgw:{}:{instance}", self.machine_id)
    }
}

/// This host's name (for the AUTH_SYS machine name), or "localhost" when unknown.
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.len() <= AUTH_MACHINE_NAME_MAX_BYTES)
        .unwrap_or_else(|| "localhost".to_owned())
}

impl VolumeSearch {
    /// The candidate volume paths, in search order without duplicates: plain entries as given
    /// (even when missing: the caller reports that), patterns expanded against their
    /// directory, sorted by name. At most [`VOLUME_CANDIDATES_MAX`]; errors name the entry.
    pub fn candidates(&self) -> Result<Vec<PathBuf>, String> {
        let mut out: Vec<PathBuf> = Vec::new();
        for entry in &self.entries {
            if !entry.is_glob() {
                if !out.contains(&entry.pattern) {
                    out.push(entry.pattern.clone());
                }
                continue;
            }
            let dir = entry.pattern.parent().unwrap_or(Path::new("/"));
            let pattern = entry
                .name_pattern()
                .map_err(|e| format!("volume search {}: {e}", entry.pattern.display()))?;
            let rd = match std::fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("volume search {}: {e}", entry.pattern.display())),
            };
            let mut found = Vec::new();
            for item in rd {
                let item =
                    item.map_err(|e| format!("volume search {}: {e}", entry.pattern.display()))?;
                if let Some(name) = item.file_name().to_str() {
                    if pattern.matches(name) {
                        found.push(item.path());
                    }
                }
                if found.len() > VOLUME_CANDIDATES_MAX {
                    break;
                }
            }
            found.sort();
            for p in found {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            if out.len() > VOLUME_CANDIDATES_MAX {
                return Err(format!(
                    "volume search expands to more than {VOLUME_CANDIDATES_MAX} paths; narrow the patterns"
                ));
            }
        }
        Ok(out)
    }
}
