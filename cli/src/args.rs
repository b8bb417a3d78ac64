//! The command line, with clap derive.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::size::parse_size;

/// Exit codes, printed at the end of `--help` (and in README.md).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (for run/export/demo: stopped cleanly after SIGINT/SIGTERM)
  1  runtime failure (MDS unreachable, no device could start, I/O or shutdown error)
  2  usage or configuration error (check-config prints FILE:LINE:COL)
  3  run/export: served, but at least one device (or its ublk frontend) failed to start;
     each is logged by name

Logging: RUST_LOG (default \"info\"), to stderr.";

/// pNFS block-layout gateway: serves files on a pNFS server as NBD exports and ublk devices.
#[derive(Debug, Parser)]
#[command(name = "pnfsgw", version, after_help = EXIT_CODES_HELP, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway service from a configuration file (what systemd starts).
    #[command(after_help = EXIT_CODES_HELP)]
    Run(RunArgs),
    /// Export one file on the MDS as one NBD export, without a configuration file.
    #[command(after_help = EXIT_CODES_HELP)]
    Export(ExportArgs),
    /// Check a configuration file: exit 0 if good, 2 with FILE:LINE:COL if not.
    #[command(name = "check-config", after_help = EXIT_CODES_HELP)]
    CheckConfig(CheckConfigArgs),
    /// Run the embedded pNFS block-layout metadata server.
    #[command(after_help = EXIT_CODES_HELP)]
    Mds(MdsCmdArgs),
    /// Print the counters and device states of the running gateway.
    #[command(after_help = EXIT_CODES_HELP)]
    Stats(StatsArgs),
    /// Everything on one machine: a volume file, the embedded MDS, the gateway and an NBD
    /// export of a demo file, until SIGINT/SIGTERM.
    #[command(after_help = EXIT_CODES_HELP)]
    Demo(DemoArgs),
}

/// `pnfsgw run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
}

/// Which data path to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataPathArg {
    /// Direct volume I/O with pNFS layouts (MDS I/O only as a fallback).
    Pnfs,
    /// Every read and write through the MDS (for comparison).
    Mds,
}

/// `pnfsgw export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The MDS, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub mds: String,
    /// The file's absolute path on the MDS.
    #[arg(long, value_name = "PATH")]
    pub path: String,
    /// Where to serve NBD, IP:PORT.
    #[arg(long, value_name = "IP:PORT")]
    pub nbd: SocketAddr,
    /// The NBD export name (default: the file's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A volume (block device or image file) to search for the layout's signatures; repeat
    /// for several; `*` and `?` allowed in the last path component.
    #[arg(long = "volume", value_name = "PATH")]
    pub volumes: Vec<String>,
    /// Refuse writes.
    #[arg(long)]
    pub read_only: bool,
    /// Also create a /dev/ublkbN device and print its path.
    #[arg(long)]
    pub ublk: bool,
    /// Keep the ublk device across a restart: when this gateway exits or dies, /dev/ublkbN
    /// stays and its I/O waits; the next `export` of the same file (same --control) re-attaches
    /// to it. Without it, a device left by an earlier run is deleted at start.
    #[arg(long, requires = "ublk")]
    pub ublk_recovery: bool,
    /// Data path.
    #[arg(long, value_enum, default_value = "pnfs")]
    pub data_path: DataPathArg,
    /// Create the file with this size when it does not exist (e.g. 1G, 512M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub create: Option<u64>,
    /// The control socket for `pnfsgw stats` [default: /run/pnfsgw/export-NAME-PORT.sock].
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Prometheus metrics listener.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// NBD over TLS.
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// `--tls` of `export` and `demo`: whether the NBD listener offers or requires TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsArg {
    /// Plain text only.
    Off,
    /// TLS offered; plain-text clients served too.
    On,
    /// TLS required: no export is reachable in plain text.
    Require,
}

/// `--tls`, `--tls-dir`, `--tls-verify-peer` of `export` and `demo`.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// NBD over TLS (NBD_OPT_STARTTLS) on the listener.
    #[arg(
        long = "tls",
        id = "tls",
        value_enum,
        value_name = "MODE",
        requires = "tls_dir"
    )]
    pub mode: Option<TlsArg>,
    /// The certificate directory, as qemu's tls-creds-x509: server-cert.pem, server-key.pem
    /// and, for --tls-verify-peer, ca-cert.pem.
    #[arg(long = "tls-dir", id = "tls_dir", value_name = "DIR", requires = "tls")]
    pub dir: Option<PathBuf>,
    /// Accept only clients with a certificate signed by DIR/ca-cert.pem.
    #[arg(long = "tls-verify-peer", requires = "tls")]
    pub verify_peer: bool,
}

impl TlsArgs {
    /// The `[nbd]` configuration for one TCP listener at `addr` with these flags.
    pub fn nbd_config(&self, addr: SocketAddr) -> Result<pnfs_config::NbdConfig, String> {
        let mut nbd = pnfs_config::NbdConfig {
            tcp: Vec::new(),
            unix: Vec::new(),
            max_connections: pnfs_config::NBD_MAX_CONNECTIONS_DEFAULT,
            listeners: Vec::new(),
        };
        let mode = match self.mode {
            None | Some(TlsArg::Off) => {
                if self.verify_peer {
                    return Err("--tls-verify-peer needs --tls on or --tls require".into());
                }
                nbd.tcp.push(addr);
                return Ok(nbd);
            }
            Some(TlsArg::On) => pnfs_config::NbdTlsMode::On,
            Some(TlsArg::Require) => pnfs_config::NbdTlsMode::Require,
        };
        let Some(dir) = &self.dir else {
            return Err("--tls needs --tls-dir DIR".into());
        };
        // A relative directory is taken from the current directory, as qemu-nbd does.
        let dir =
            std::path::absolute(dir).map_err(|e| format!("--tls-dir {}: {e}", dir.display()))?;
        pnfs_config::check_tls_dir(&dir, self.verify_peer)
            .map_err(|e| format!("--tls-dir: {e}"))?;
        nbd.listeners.push(pnfs_config::NbdListener {
            address: pnfs_config::NbdAddress::Tcp(addr),
            tls: Some(pnfs_config::NbdTls {
                mode,
                dir,
                verify_peer: self.verify_peer,
            }),
            exports: None,
        });
        Ok(nbd)
    }
}

/// `--metrics` of `export` and `demo`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Serve the counters of `pnfsgw stats` for Prometheus at http://IP:PORT/metrics
    /// (a loopback address unless --metrics-allow-remote).
    #[arg(long = "metrics", id = "metrics", value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// Allow a --metrics address that is not loopback (the counters carry no authentication).
    #[arg(long = "metrics-allow-remote", requires = "metrics")]
    pub allow_remote: bool,
}

impl MetricsArgs {
    /// The `[metrics]` configuration these flags ask for.
    pub fn config(&self) -> Result<Option<pnfs_config::MetricsConfig>, String> {
        let Some(listen) = self.listen else {
            return Ok(None);
        };
        pnfs_config::check_metrics_listen(listen, self.allow_remote).map_err(|e| {
            format!("--metrics: {e}").replace(
                "set allow_remote = true in [metrics]",
                "give --metrics-allow-remote",
            )
        })?;
        Ok(Some(pnfs_config::MetricsConfig { listen }))
    }
}

/// `pnfsgw check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `pnfsgw mds`: the embedded MDS's own flags.
#[derive(Debug, Args)]
pub struct MdsCmdArgs {
    /// The embedded MDS's arguments.
    #[command(flatten)]
    pub mds: pnfs_mds::MdsArgs,
}

/// `pnfsgw stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The gateway's control socket [default: every running instance's:
    /// /run/pnfsgw/control.sock and /run/pnfsgw/export-*.sock].
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Print the raw JSON snapshot.
    #[arg(long)]
    pub json: bool,
}

/// `pnfsgw demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// State directory (volume file, MDS metadata, control socket). Default:
    /// $XDG_STATE_HOME/pnfsgw-demo, else /var/tmp/pnfsgw-demo.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// NBD listen address.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:10809")]
    pub listen: SocketAddr,
    /// Size of the demo file.
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub size: u64,
    /// Size of the (sparse) volume file that holds the MDS's file data.
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub volume_size: u64,
    /// The embedded MDS's listen address (port 0: any free port).
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    pub mds_listen: SocketAddr,
    /// The MDS's layout block size in bytes.
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = parse_size)]
    pub block_size: u64,
    /// Data path of the demo device.
    #[arg(long, value_enum, default_value = "pnfs")]
    pub data_path: DataPathArg,
    /// Prometheus metrics listener.
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// NBD over TLS.
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn export_parses() {
        let cli = Cli::try_parse_from([
            "pnfsgw",
            "export",
            "--mds",
            "10.0.0.5:2049",
            "--path",
            "/vm.img",
            "--nbd",
            "127.0.0.1:10809",
            "--volume",
            "/dev/sdb",
            "--volume",
            "/dev/sdc",
            "--read-only",
            "--create",
            "1G",
        ])
        .unwrap();
        let Command::Export(e) = cli.command else {
            panic!("not export")
        };
        assert_eq!(e.volumes, ["/dev/sdb", "/dev/sdc"]);
        assert!(e.read_only && !e.ublk);
        assert_eq!(e.create, Some(1 << 30));
    }

    #[test]
    fn metrics_flags_refuse_remote_addresses_unless_allowed() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["pnfsgw", "demo"];
            argv.extend_from_slice(extra);
            let Command::Demo(d) = Cli::try_parse_from(argv).unwrap().command else {
                panic!("not demo")
            };
            d.metrics.config()
        };
        assert_eq!(parse(&[]).unwrap(), None);
        let ok = parse(&["--metrics", "127.0.0.1:9810"]).unwrap().unwrap();
        assert_eq!(ok.listen, "127.0.0.1:9810".parse().unwrap());
        let e = parse(&["--metrics", "0.0.0.0:9810"]).unwrap_err();
        assert!(
            e.contains("not a loopback address") && e.contains("--metrics-allow-remote"),
            "{e}"
        );
        assert!(
            parse(&["--metrics", "0.0.0.0:9810", "--metrics-allow-remote"])
                .unwrap()
                .is_some()
        );
        assert!(parse(&["--metrics", "127.0.0.1:0"])
            .unwrap_err()
            .contains("port 0"));
        // The allowance alone is a usage error.
        let e = Cli::try_parse_from(["pnfsgw", "demo", "--metrics-allow-remote"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn tls_flags_make_a_tls_listener_or_a_usage_error() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["pnfsgw", "demo"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|c| match c.command {
                Command::Demo(d) => d.tls,
                _ => panic!("not demo"),
            })
        };
        let addr: SocketAddr = "127.0.0.1:10809".parse().unwrap();
        let plain = parse(&[]).unwrap().nbd_config(addr).unwrap();
        assert_eq!(plain.tcp, [addr]);
        assert!(plain.listeners.is_empty());
        // --tls without a directory, or a directory without --tls: usage errors.
        assert_eq!(parse(&["--tls", "on"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["--tls-dir", "/x"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["--tls-verify-peer"]).unwrap_err().exit_code(), 2);
        // A directory without the server's files is named.
        let dir = std::env::temp_dir().join(format!("pnfsgw-args-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let e = parse(&["--tls", "require", "--tls-dir", d])
            .unwrap()
            .nbd_config(addr)
            .unwrap_err();
        assert!(e.contains("server-cert.pem"), "{e}");
        for f in ["server-cert.pem", "server-key.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let e = parse(&["--tls", "require", "--tls-dir", d, "--tls-verify-peer"])
            .unwrap()
            .nbd_config(addr)
            .unwrap_err();
        assert!(e.contains("ca-cert.pem"), "{e}");
        let c = parse(&["--tls", "require", "--tls-dir", d])
            .unwrap()
            .nbd_config(addr)
            .unwrap();
        assert!(c.tcp.is_empty());
        let tls = c.listeners[0].tls.as_ref().unwrap();
        assert_eq!(tls.mode, pnfs_config::NbdTlsMode::Require);
        assert!(!tls.verify_peer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_sizes_are_usage_errors() {
        let e = Cli::try_parse_from(["pnfsgw", "demo", "--size", "12Q"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
