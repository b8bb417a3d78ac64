//! The TOML file as serde sees it: every table denies unknown keys, and every value that
//! validation may reject is [`Spanned`] so its error can name the line and column.
//!
//! Nothing outside this crate sees these types: [`crate::validate`] turns them into the runtime
//! types of [`crate::model`].

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub mds: RawMds,
    #[serde(default)]
    pub volumes: Option<RawVolumes>,
    #[serde(default)]
    pub nbd: Option<RawNbd>,
    #[serde(default)]
    pub ublk: Option<RawUblk>,
    #[serde(default)]
    pub control: Option<RawControl>,
    #[serde(default)]
    pub metrics: Option<RawMetrics>,
    #[serde(default)]
    pub device: Vec<Spanned<RawDevice>>,
}

/// `[mds]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMds {
    pub addresses: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub auth: Option<RawAuth>,
    #[serde(default)]
    pub client_owner: Option<Spanned<String>>,
    #[serde(default)]
    pub lease_margin_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub connect_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub request_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_io_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub stall_limit_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub layout: Option<Spanned<String>>,
}

/// `[mds.auth]`: AUTH_SYS credentials.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
    #[serde(default)]
    pub machine_name: Option<Spanned<String>>,
}

/// `[volumes]`: where to look for the volumes the layouts name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVolumes {
    #[serde(default)]
    pub search: Vec<Spanned<String>>,
    #[serde(default)]
    pub designator: Vec<Spanned<RawDesignator>>,
}

/// `[[volumes.designator]]`: the SCSI logical-unit designator of one volume path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDesignator {
    pub path: Spanned<String>,
    pub id: Spanned<String>,
}

/// `[nbd]`: listeners shared by every device with the `nbd` frontend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNbd {
    #[serde(default)]
    pub tcp: Vec<Spanned<String>>,
    #[serde(default)]
    pub unix: Vec<Spanned<String>>,
    #[serde(default)]
    pub max_connections: Option<Spanned<u64>>,
    #[serde(default)]
    pub listener: Vec<Spanned<RawNbdListener>>,
}

/// `[[nbd.listener]]`: one listener with its own TLS and export allow-list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNbdListener {
    #[serde(default)]
    pub tcp: Option<Spanned<String>>,
    #[serde(default)]
    pub unix: Option<Spanned<String>>,
    #[serde(default)]
    pub tls: Option<Spanned<String>>,
    #[serde(default)]
    pub tls_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub tls_verify_peer: Option<Spanned<bool>>,
    #[serde(default)]
    pub exports: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[ublk]`: defaults for every device with the `ublk` frontend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUblk {
    #[serde(default)]
    pub queues: Option<Spanned<u64>>,
    #[serde(default)]
    pub depth: Option<Spanned<u64>>,
    #[serde(default)]
    pub recovery: Option<Spanned<bool>>,
}

/// `[control]`: the control socket `pnfsgw stats` talks to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    #[serde(default)]
    pub socket: Option<Spanned<String>>,
}

/// `[metrics]`: the Prometheus HTTP listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: Spanned<String>,
    #[serde(default)]
    pub allow_remote: Option<bool>,
}

/// One `[[device]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDevice {
    pub name: Spanned<String>,
    pub path: Spanned<String>,
    #[serde(default)]
    pub frontends: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub export: Option<Spanned<String>>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub block_size: Option<Spanned<u64>>,
    #[serde(default)]
    pub queues: Option<Spanned<u64>>,
    #[serde(default)]
    pub depth: Option<Spanned<u64>>,
    #[serde(default)]
    pub recovery: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_cached_extents: Option<Spanned<u64>>,
    #[serde(default)]
    pub data_path: Option<Spanned<String>>,
}
