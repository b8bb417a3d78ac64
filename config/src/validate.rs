//! Raw serde structs → validated runtime types. Every rejection names the value's place.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

mod listener;

use crate::error::{ConfigError, ConfigErrorKind};
use crate::model::{
    check_metrics_listen, AuthSys, Config, ControlConfig, DataPath, DeviceConfig, Frontend,
    HostPort, LayoutChoice, MdsConfig, MetricsConfig, NbdConfig, ScsiDesignator, UblkDefaults,
    VolumeDesignator, VolumePattern, VolumeSearch,
};
use crate::raw::{RawConfig, RawDevice};
use crate::*;

/// Validation context: the file and text, for locations.
pub(crate) struct Checker<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

type Res<T> = Result<T, ConfigError>;

impl Checker<'_> {
    fn err(&self, span: Range<usize>, message: String) -> ConfigError {
        ConfigError::at(
            self.file,
            self.text,
            span,
            ConfigErrorKind::Invalid,
            message,
        )
    }

    /// An integer in `min..=max`, or the default when absent.
    fn ranged(
        &self,
        v: Option<&Spanned<u64>>,
        key: &str,
        min: u64,
        max: u64,
        default: u64,
    ) -> Res<u64> {
        match v {
            None => Ok(default),
            Some(s) if (min..=max).contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.err(
                s.span(),
                format!(
                    "{key} = {} is out of range: it must be between {min} and {max}",
                    s.get_ref()
                ),
            )),
        }
    }

    fn ranged_u16(
        &self,
        v: Option<&Spanned<u64>>,
        key: &str,
        min: u16,
        max: u16,
        default: u16,
    ) -> Res<u16> {
        let n = self.ranged(v, key, min.into(), max.into(), default.into())?;
        // In range by the check above.
        Ok(u16::try_from(n).unwrap_or(max))
    }

    fn ranged_u32(
        &self,
        v: Option<&Spanned<u64>>,
        key: &str,
        min: u32,
        max: u32,
        default: u32,
    ) -> Res<u32> {
        let n = self.ranged(v, key, min.into(), max.into(), default.into())?;
        Ok(u32::try_from(n).unwrap_or(max))
    }

    fn count_limit<T>(&self, items: &[Spanned<T>], key: &str, max: usize) -> Res<()> {
        match items.get(max) {
            Some(extra) => Err(self.err(
                extra.span(),
                format!("too many entries in {key}: at most {max}"),
            )),
            None => Ok(()),
        }
    }

    pub(crate) fn config(&self, raw: RawConfig, host: &HostIdentity) -> Res<Config> {
        let mut mds = self.mds(&raw.mds, &host.machine_name)?;
        let volumes = self.volumes(raw.volumes.as_ref())?;
        let nbd = self.nbd(raw.nbd.as_ref())?;
        let ublk = UblkDefaults {
            queues: self.ranged_u16(
                raw.ublk.as_ref().and_then(|u| u.queues.as_ref()),
                "queues",
                1,
                UBLK_QUEUES_MAX,
                UBLK_QUEUES_DEFAULT,
            )?,
            depth: self.ranged_u16(
                raw.ublk.as_ref().and_then(|u| u.depth.as_ref()),
                "depth",
                1,
                UBLK_DEPTH_MAX,
                UBLK_DEPTH_DEFAULT,
            )?,
            recovery: raw
                .ublk
                .as_ref()
                .and_then(|u| u.recovery.as_ref())
                .is_some_and(|r| *r.get_ref()),
        };
        let control = ControlConfig {
            socket: match raw.control.as_ref().and_then(|c| c.socket.as_ref()) {
                None => PathBuf::from(CONTROL_SOCKET_DEFAULT),
                Some(s) => self.unix_socket_path(s, "control socket")?,
            },
        };
        let metrics = match raw.metrics.as_ref() {
            None => None,
            Some(m) => {
                let a = &m.listen;
                let listen: SocketAddr = a.get_ref().parse().map_err(|_| {
                    self.err(a.span(), format!("{:?} is not an IP address and port (e.g. \"127.0.0.1:9810\" or \"[::1]:9810\")", a.get_ref()))
                })?;
                check_metrics_listen(listen, m.allow_remote.unwrap_or(false))
                    .map_err(|why| self.err(a.span(), why))?;
                Some(MetricsConfig { listen })
            }
        };
        if raw.mds.client_owner.is_none() {
            // One owner per instance: two gateways presenting one owner would be served as one
            // client, and then nothing recalls one's layouts for the other's I/O (RFC 8881
            // §2.4). The control socket tells instances on one host apart (two cannot share
            // it), the machine ID tells hosts apart.
            mds.client_owner = host.client_owner(&control.socket.display().to_string());
        }
        if raw.device.is_empty() {
            return Err(ConfigError::at(
                self.file,
                self.text,
                self.text.len()..self.text.len(),
                ConfigErrorKind::Invalid,
                "no [[device]] table: the gateway would serve nothing".into(),
            ));
        }
        self.count_limit(&raw.device, "[[device]]", DEVICES_MAX)?;
        let mut devices = Vec::with_capacity(raw.device.len());
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut exports: HashMap<String, Range<usize>> = HashMap::new();
        for d in &raw.device {
            let dev = self.device(d, &ublk, &nbd)?;
            if let Some(first) = names.get(&dev.name) {
                let first = crate::Location::of_offset(self.text, first.start);
                return Err(self.err(
                    d.get_ref().name.span(),
                    format!(
                        "duplicate device name {:?} (first used at line {})",
                        dev.name, first.line
                    ),
                ));
            }
            names.insert(dev.name.clone(), d.get_ref().name.span());
            let export_span = d
                .get_ref()
                .export
                .as_ref()
                .map_or(d.get_ref().name.span(), Spanned::span);
            if dev.has(Frontend::Nbd) {
                if let Some(first) = exports.get(&dev.export) {
                    let first = crate::Location::of_offset(self.text, first.start);
                    return Err(self.err(
                        export_span,
                        format!(
                            "duplicate NBD export name {:?} (first used at line {})",
                            dev.export, first.line
                        ),
                    ));
                }
                exports.insert(dev.export.clone(), export_span);
            }
            devices.push(dev);
        }
        self.check_listener_exports(raw.nbd.as_ref(), &exports)?;
        Ok(Config {
            mds,
            volumes,
            nbd,
            ublk,
            control,
            metrics,
            devices,
        })
    }

    fn mds(&self, m: &raw::RawMds, default_machine_name: &str) -> Res<MdsConfig> {
        if m.addresses.get_ref().is_empty() {
            return Err(self.err(
                m.addresses.span(),
                "addresses is empty: give at least one host:port".into(),
            ));
        }
        self.count_limit(m.addresses.get_ref(), "addresses", MDS_ADDRESSES_MAX)?;
        let addresses = m
            .addresses
            .get_ref()
            .iter()
            .map(|a| parse_host_port(a.get_ref()).map_err(|why| self.err(a.span(), why)))
            .collect::<Res<Vec<_>>>()?;
        let auth = m.auth.as_ref();
        let machine_name = match auth.and_then(|a| a.machine_name.as_ref()) {
            Some(n) => {
                self.printable(n, "machine_name", AUTH_MACHINE_NAME_MAX_BYTES)?;
                n.get_ref().clone()
            }
            None => default_machine_name.to_owned(),
        };
        let client_owner = match m.client_owner.as_ref() {
            Some(o) => {
                self.printable(o, "client_owner", CLIENT_OWNER_MAX_BYTES)?;
                o.get_ref().clone()
            }
            // Filled in by `config` once the control socket is known.
            None => String::new(),
        };
        Ok(MdsConfig {
            addresses,
            auth: AuthSys {
                uid: auth.and_then(|a| a.uid).unwrap_or(0),
                gid: auth.and_then(|a| a.gid).unwrap_or(0),
                machine_name,
            },
            client_owner,
            lease_margin_ms: self.ranged(
                m.lease_margin_ms.as_ref(),
                "lease_margin_ms",
                1,
                TIMEOUT_MAX_MS,
                LEASE_MARGIN_DEFAULT_MS,
            )?,
            connect_timeout_ms: self.ranged(
                m.connect_timeout_ms.as_ref(),
                "connect_timeout_ms",
                1,
                TIMEOUT_MAX_MS,
                CONNECT_TIMEOUT_DEFAULT_MS,
            )?,
            request_timeout_ms: self.ranged(
                m.request_timeout_ms.as_ref(),
                "request_timeout_ms",
                1,
                TIMEOUT_MAX_MS,
                REQUEST_TIMEOUT_DEFAULT_MS,
            )?,
            max_io_ms: self.ranged(
                m.max_io_ms.as_ref(),
                "max_io_ms",
                1,
                TIMEOUT_MAX_MS,
                MAX_IO_DEFAULT_MS,
            )?,
            stall_limit_ms: self.ranged(
                m.stall_limit_ms.as_ref(),
                "stall_limit_ms",
                1,
                TIMEOUT_MAX_MS,
                STALL_LIMIT_DEFAULT_MS,
            )?,
            layout: match m.layout.as_ref() {
                None => LayoutChoice::default(),
                Some(l) => match l.get_ref().as_str() {
                    "block" => LayoutChoice::Block,
                    "scsi" => LayoutChoice::Scsi,
                    other => {
                        return Err(self.err(
                            l.span(),
                            format!("unknown layout {other:?}: expected \"block\" or \"scsi\""),
                        ))
                    }
                },
            },
        })
    }

    /// A non-empty string of printable characters, at most `max` bytes.
    fn printable(&self, s: &Spanned<String>, key: &str, max: usize) -> Res<()> {
        let v = s.get_ref();
        if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
            return Err(self.err(
                s.span(),
                format!("{key} must be 1 to {max} bytes of printable characters"),
            ));
        }
        Ok(())
    }

    fn volumes(&self, v: Option<&raw::RawVolumes>) -> Res<VolumeSearch> {
        let Some(v) = v else {
            return Ok(VolumeSearch::default());
        };
        self.count_limit(&v.search, "search", VOLUME_SEARCH_MAX)?;
        let mut entries = Vec::with_capacity(v.search.len());
        for s in &v.search {
            let p = s.get_ref();
            check_absolute_path(p)
                .map_err(|why| self.err(s.span(), format!("volume search entry {p:?}: {why}")))?;
            let path = Path::new(p);
            let parent_has_glob = path
                .parent()
                .is_some_and(|d| d.to_string_lossy().contains(GLOB_CHARS));
            if parent_has_glob {
                return Err(self.err(
                    s.span(),
                    format!("volume search entry {p:?}: only the last path component may hold `*`, `?` or `[...]`"),
                ));
            }
            let entry = VolumePattern {
                pattern: PathBuf::from(p),
            };
            if entry.is_glob() {
                entry.name_pattern().map_err(|why| {
                    self.err(s.span(), format!("volume search entry {p:?}: {why}"))
                })?;
            }
            entries.push(entry);
        }
        self.count_limit(&v.designator, "[[volumes.designator]]", VOLUME_SEARCH_MAX)?;
        let mut designators: Vec<VolumeDesignator> = Vec::with_capacity(v.designator.len());
        for d in &v.designator {
            let raw = d.get_ref();
            let p = raw.path.get_ref();
            check_absolute_path(p).map_err(|why| {
                self.err(
                    raw.path.span(),
                    format!("volume designator path {p:?}: {why}"),
                )
            })?;
            let path = PathBuf::from(p);
            if designators.iter().any(|x| x.path == path) {
                return Err(self.err(
                    raw.path.span(),
                    format!("volume {p:?} has a designator already"),
                ));
            }
            let designator = ScsiDesignator::parse(raw.id.get_ref()).map_err(|why| {
                self.err(
                    raw.id.span(),
                    format!("designator {:?}: {why}", raw.id.get_ref()),
                )
            })?;
            designators.push(VolumeDesignator { path, designator });
        }
        Ok(VolumeSearch {
            entries,
            designators,
        })
    }

    fn nbd(&self, n: Option<&raw::RawNbd>) -> Res<NbdConfig> {
        let Some(n) = n else {
            return Ok(NbdConfig {
                tcp: Vec::new(),
                unix: Vec::new(),
                max_connections: NBD_MAX_CONNECTIONS_DEFAULT,
                listeners: Vec::new(),
            });
        };
        self.count_limit(&n.tcp, "tcp", NBD_LISTENERS_MAX)?;
        self.count_limit(&n.unix, "unix", NBD_LISTENERS_MAX)?;
        let mut tcp = Vec::with_capacity(n.tcp.len());
        for a in &n.tcp {
            let addr = self.tcp_address(a)?;
            if tcp.contains(&addr) {
                return Err(self.err(a.span(), format!("duplicate NBD listen address {addr}")));
            }
            tcp.push(addr);
        }
        let mut unix = Vec::with_capacity(n.unix.len());
        for u in &n.unix {
            let p = self.unix_socket_path(u, "NBD unix socket")?;
            if unix.contains(&p) {
                return Err(self.err(
                    u.span(),
                    format!("duplicate NBD unix socket {}", p.display()),
                ));
            }
            unix.push(p);
        }
        let listeners = self.nbd_listeners(n, &tcp, &unix)?;
        Ok(NbdConfig {
            tcp,
            unix,
            listeners,
            max_connections: self.ranged_u32(
                n.max_connections.as_ref(),
                "max_connections",
                1,
                NBD_MAX_CONNECTIONS_MAX,
                NBD_MAX_CONNECTIONS_DEFAULT,
            )?,
        })
    }

    fn unix_socket_path(&self, s: &Spanned<String>, what: &str) -> Res<PathBuf> {
        let p = s.get_ref();
        check_absolute_path(p).map_err(|why| self.err(s.span(), format!("{what} {p:?}: {why}")))?;
        if p.len() > UNIX_SOCKET_PATH_MAX_BYTES {
            return Err(self.err(
                s.span(),
                format!("{what} {p:?}: longer than {UNIX_SOCKET_PATH_MAX_BYTES} bytes, the limit of a Unix socket address"),
            ));
        }
        Ok(PathBuf::from(p))
    }

    fn device(
        &self,
        d: &Spanned<RawDevice>,
        ublk: &UblkDefaults,
        nbd: &NbdConfig,
    ) -> Res<DeviceConfig> {
        let raw = d.get_ref();
        let name = raw.name.get_ref();
        if name.is_empty()
            || name.len() > DEVICE_NAME_MAX_BYTES
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(self.err(
                raw.name.span(),
                format!("device name {name:?} must be 1 to {DEVICE_NAME_MAX_BYTES} of A-Z a-z 0-9 - _ ."),
            ));
        }
        check_absolute_path(raw.path.get_ref()).map_err(|why| {
            self.err(
                raw.path.span(),
                format!("path {:?} on the MDS: {why}", raw.path.get_ref()),
            )
        })?;

        let frontends = match raw.frontends.as_ref() {
            None => vec![Frontend::Nbd],
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(self.err(
                        list.span(),
                        "frontends is empty: use \"nbd\", \"ublk\" or both".into(),
                    ));
                }
                let mut out = Vec::new();
                for f in list.get_ref() {
                    let fe = match f.get_ref().as_str() {
                        "nbd" => Frontend::Nbd,
                        "ublk" => Frontend::Ublk,
                        other => {
                            return Err(self.err(
                                f.span(),
                                format!("unknown frontend {other:?}: expected \"nbd\" or \"ublk\""),
                            ))
                        }
                    };
                    if out.contains(&fe) {
                        return Err(self.err(f.span(), format!("frontend {fe} listed twice")));
                    }
                    out.push(fe);
                }
                out
            }
        };
        let frontends_span = raw.frontends.as_ref().map_or(d.span(), Spanned::span);
        if frontends.contains(&Frontend::Nbd) && nbd.is_empty() {
            return Err(self.err(
                frontends_span,
                format!(
                    "device {name:?} uses the nbd frontend but [nbd] has no tcp, unix or [[nbd.listener]] listener"
                ),
            ));
        }
        let export = match raw.export.as_ref() {
            None => name.clone(),
            Some(e) => {
                let v = e.get_ref();
                if v.is_empty()
                    || v.len() > NBD_EXPORT_NAME_MAX_BYTES
                    || v.chars().any(char::is_control)
                {
                    return Err(self.err(
                        e.span(),
                        format!("export name must be 1 to {NBD_EXPORT_NAME_MAX_BYTES} bytes of printable characters"),
                    ));
                }
                if !frontends.contains(&Frontend::Nbd) {
                    return Err(self.err(
                        e.span(),
                        format!("export is set but device {name:?} has no nbd frontend"),
                    ));
                }
                v.clone()
            }
        };
        let block_size = match raw.block_size.as_ref() {
            None => None,
            Some(b) => {
                let v = *b.get_ref();
                if !(BLOCK_SIZE_MIN_BYTES..=BLOCK_SIZE_MAX_BYTES).contains(&v)
                    || !v.is_power_of_two()
                {
                    return Err(self.err(
                        b.span(),
                        format!("block_size = {v} must be a power of two from {BLOCK_SIZE_MIN_BYTES} to {BLOCK_SIZE_MAX_BYTES}"),
                    ));
                }
                Some(u32::try_from(v).unwrap_or(u32::MAX))
            }
        };
        for (key, span) in [
            ("queues", raw.queues.as_ref().map(Spanned::span)),
            ("depth", raw.depth.as_ref().map(Spanned::span)),
            ("recovery", raw.recovery.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span {
                if !frontends.contains(&Frontend::Ublk) {
                    return Err(self.err(
                        span,
                        format!("{key} is set but device {name:?} has no ublk frontend"),
                    ));
                }
            }
        }
        let data_path = match raw.data_path.as_ref() {
            None => DataPath::default(),
            Some(p) => match p.get_ref().as_str() {
                "pnfs" => DataPath::Pnfs,
                "mds" => DataPath::Mds,
                other => {
                    return Err(self.err(
                        p.span(),
                        format!("unknown data_path {other:?}: expected \"pnfs\" or \"mds\""),
                    ))
                }
            },
        };
        let ublk_recovery = frontends.contains(&Frontend::Ublk)
            && raw
                .recovery
                .as_ref()
                .map_or(ublk.recovery, |r| *r.get_ref());
        Ok(DeviceConfig {
            name: name.clone(),
            path: raw.path.get_ref().clone(),
            frontends,
            export,
            read_only: raw.read_only.unwrap_or(false),
            block_size,
            queues: self.ranged_u16(
                raw.queues.as_ref(),
                "queues",
                1,
                UBLK_QUEUES_MAX,
                ublk.queues,
            )?,
            depth: self.ranged_u16(raw.depth.as_ref(), "depth", 1, UBLK_DEPTH_MAX, ublk.depth)?,
            ublk_recovery,
            max_cached_extents: self.ranged_u32(
                raw.max_cached_extents.as_ref(),
                "max_cached_extents",
                1,
                MAX_CACHED_EXTENTS_MAX,
                MAX_CACHED_EXTENTS_DEFAULT,
            )?,
            data_path,
        })
    }
}

/// Checks an absolute, normal path: starts with `/`, no empty, `.` or `..` components, no NUL,
/// bounded length.
pub fn check_absolute_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err("must be an absolute path (start with /)".into());
    }
    if p.len() > PATH_MAX_BYTES {
        return Err(format!("longer than {PATH_MAX_BYTES} bytes"));
    }
    if p.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if p == "/" {
        return Err("names the root directory, not a file".into());
    }
    for comp in p[1..].split('/') {
        match comp {
            "" => return Err("has an empty component (`//` or a trailing `/`)".into()),
            "." | ".." => return Err(format!("has a `{comp}` component")),
            c if c.len() > PATH_COMPONENT_MAX_BYTES => {
                return Err(format!(
                    "has a component longer than {PATH_COMPONENT_MAX_BYTES} bytes"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses `host:port` / `[v6]:port`.
pub fn parse_host_port(s: &str) -> Result<HostPort, String> {
    let bad = || {
        format!("{s:?} is not host:port (e.g. \"mds.example:2049\", \"10.0.0.5:2049\", \"[fd00::5]:2049\")")
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{h:?} in brackets is not an IPv6 address"));
        }
        (h, p)
    } else {
        let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
        if h.contains(':') {
            return Err(format!(
                "{s:?}: put an IPv6 address in brackets, e.g. \"[{h}]:{p}\""
            ));
        }
        if h.is_empty()
            || h.len() > HOST_NAME_MAX_BYTES
            || !h
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!("{h:?} is not a host name or IPv4 address"));
        }
        (h, p)
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port:?} is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err("port 0 is not allowed".into());
    }
    Ok(HostPort {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("mds:2049").unwrap(),
            HostPort {
                host: "mds".into(),
                port: 2049
            }
        );
        assert_eq!(
            parse_host_port("[::1]:20490").unwrap().to_string(),
            "[::1]:20490"
        );
        assert!(parse_host_port("::1:2049")
            .unwrap_err()
            .contains("brackets"));
        assert!(parse_host_port("mds").is_err());
        assert!(parse_host_port("mds:0").is_err());
        assert!(parse_host_port("mds:70000").is_err());
        assert!(parse_host_port("m ds:1").is_err());
        assert!(parse_host_port("[zz]:1").is_err());
    }

    #[test]
    fn absolute_paths() {
        assert!(check_absolute_path("/a/b.img").is_ok());
        assert!(check_absolute_path("a/b").is_err());
        assert!(check_absolute_path("/").is_err());
        assert!(check_absolute_path("/a//b").is_err());
        assert!(check_absolute_path("/a/../b").is_err());
        assert!(check_absolute_path("/a/").is_err());
        assert!(check_absolute_path(&format!("/{}", "x".repeat(256))).is_err());
    }
}
