//! `pnfsgw demo`: a volume file, the embedded MDS and the gateway in one process, exporting a
//! demo file over NBD until SIGINT/SIGTERM.

use std::io::Write;
use std::path::{Path, PathBuf};

use pnfs_config::{
    AuthSys, Config, ControlConfig, DeviceConfig, Frontend, HostPort, MdsConfig, UblkDefaults,
    VolumePattern, VolumeSearch,
};

use crate::args::DemoArgs;
use crate::backend::{self, DeviceSpec, EmbeddedMdsOptions};
use crate::service::{self, Ready};
use crate::size::format_size;
use crate::{EXIT_FAILURE, EXIT_USAGE};

/// The demo file's path on the MDS and its export name.
pub const DEMO_PATH: &str = "/demo";
/// The export name.
pub const DEMO_EXPORT: &str = "demo";
/// The volume file inside the state directory.
pub const VOLUME_FILE: &str = "volume.img";
/// The embedded MDS's lease in the demo: long enough that the fencing budget (lease minus
/// margin minus the longest I/O) leaves direct I/O open between renewals.
pub const DEMO_LEASE_SECONDS: u32 = 30;
/// The line printed (to stdout) when the demo is ready; tests wait for it.
pub const READY_LINE: &str = "pnfsgw demo: ready";

/// Default state directory: $XDG_STATE_HOME/pnfsgw-demo, else /var/tmp/pnfsgw-demo.
fn default_state_dir() -> PathBuf {
    match std::env::var_os("XDG_STATE_HOME") {
        Some(d) if Path::new(&d).is_absolute() => Path::new(&d).join("pnfsgw-demo"),
        _ => PathBuf::from("/var/tmp/pnfsgw-demo"),
    }
}

/// Creates the state directory and a sparse volume file; keeps an existing volume (the MDS's
/// metadata refers to it). Returns the absolute directory and volume path.
fn prepare_state(dir: &Path, volume_size_bytes: u64) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let volume = dir.join(VOLUME_FILE);
    match std::fs::metadata(&volume) {
        Ok(m) => {
            if m.len() != volume_size_bytes {
                tracing::warn!(
                    "keeping the existing volume {} of {} (not the requested {}); remove the state directory to start afresh",
                    volume.display(),
                    format_size(m.len()),
                    format_size(volume_size_bytes)
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = std::fs::File::create_new(&volume)
                .map_err(|e| format!("creating {}: {e}", volume.display()))?;
            // Sparse: set_len allocates nothing.
            f.set_len(volume_size_bytes)
                .map_err(|e| format!("sizing {}: {e}", volume.display()))?;
            tracing::info!(
                "created sparse volume {} of {}",
                volume.display(),
                format_size(volume_size_bytes)
            );
        }
        Err(e) => return Err(format!("{}: {e}", volume.display())),
    }
    Ok((dir, volume))
}

/// The qemu command line that attaches the export as a virtio disk.
pub fn qemu_command(uri: &str) -> String {
    // qemu takes no nbds:// URI: over TLS the disk is a blockdev with a tls-creds object.
    if let Some((host, port, export)) = uri
        .strip_prefix("nbds://")
        .and_then(|r| r.split_once('/'))
        .and_then(|(hp, e)| hp.rsplit_once(':').map(|(h, p)| (h, p, e)))
    {
        return format!(
            "qemu-system-x86_64 -machine q35,accel=kvm:tcg -m 2G \
             --object tls-creds-x509,id=tls0,dir=CLIENT-CERT-DIR,endpoint=client \
             -blockdev driver=nbd,server.type=inet,server.host={host},server.port={port},\
             export={export},tls-creds=tls0,node-name=d0 \
             -device virtio-blk-pci,drive=d0 -cdrom INSTALLER.iso"
        );
    }
    format!(
        "qemu-system-x86_64 -machine q35,accel=kvm:tcg -m 2G \
         -drive file={uri},format=raw,if=virtio,cache=none -cdrom INSTALLER.iso"
    )
}

/// Runs the demo; returns the exit code.
pub fn main(a: DemoArgs) -> u8 {
    let block_size = match u32::try_from(a.block_size) {
        Ok(b) if b.is_power_of_two() && (512..=(16 << 20)).contains(&b) => b,
        _ => {
            eprintln!("pnfsgw demo: --block-size must be a power of two from 512 to 16M");
            return EXIT_USAGE;
        }
    };
    if a.size == 0 || a.size > a.volume_size || a.size % u64::from(block_size) != 0 {
        eprintln!(
            "pnfsgw demo: --size {} must be a non-zero multiple of the block size {} and fit the volume ({})",
            a.size,
            block_size,
            format_size(a.volume_size)
        );
        return EXIT_USAGE;
    }
    if a.listen.port() == 0 {
        eprintln!("pnfsgw demo: --listen: port 0 is not allowed: clients could not find it");
        return EXIT_USAGE;
    }
    let (dir, volume) = match prepare_state(
        &a.state_dir.clone().unwrap_or_else(default_state_dir),
        a.volume_size,
    ) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("pnfsgw demo: {e}");
            return EXIT_FAILURE;
        }
    };
    let metrics = match a.metrics.config() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pnfsgw demo: {e}");
            return EXIT_USAGE;
        }
    };
    let nbd = match a.tls.nbd_config(a.listen) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("pnfsgw demo: {e}");
            return EXIT_USAGE;
        }
    };
    let control = dir.join("control.sock");
    if control.as_os_str().len() > pnfs_config::UNIX_SOCKET_PATH_MAX_BYTES {
        eprintln!("pnfsgw demo: the state directory path is too long for a Unix socket; use a shorter --state-dir");
        return EXIT_USAGE;
    }
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let shutdown = match crate::shutdown_on_signals() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return EXIT_FAILURE;
            }
        };
        let mds_opts = EmbeddedMdsOptions {
            listen: a.mds_listen,
            state_dir: dir.join("mds"),
            volume: volume.clone(),
            block_size_bytes: block_size,
            lease_seconds: DEMO_LEASE_SECONDS,
        };
        let mds = match backend::start_embedded_mds(&mds_opts).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("starting the embedded MDS: {e}");
                return EXIT_FAILURE;
            }
        };
        tracing::info!("embedded MDS listening on {}", mds.addr);

        let host = pnfs_config::HostIdentity::local();
        let machine_name = host.machine_name.clone();
        let device = DeviceConfig {
            name: DEMO_EXPORT.into(),
            path: DEMO_PATH.into(),
            frontends: vec![Frontend::Nbd],
            export: DEMO_EXPORT.into(),
            read_only: false,
            block_size: Some(block_size),
            queues: pnfs_config::UBLK_QUEUES_DEFAULT,
            depth: pnfs_config::UBLK_DEPTH_DEFAULT,
            ublk_recovery: false,
            max_cached_extents: pnfs_config::MAX_CACHED_EXTENTS_DEFAULT,
            data_path: crate::data_path(a.data_path),
        };
        let config = Config {
            mds: MdsConfig {
                addresses: vec![HostPort {
                    host: mds.addr.ip().to_string(),
                    port: mds.addr.port(),
                }],
                auth: AuthSys {
                    uid: 0,
                    gid: 0,
                    machine_name: machine_name.clone(),
                },
                client_owner: host.client_owner(&control.display().to_string()),
                lease_margin_ms: pnfs_config::LEASE_MARGIN_DEFAULT_MS,
                connect_timeout_ms: pnfs_config::CONNECT_TIMEOUT_DEFAULT_MS,
                request_timeout_ms: pnfs_config::REQUEST_TIMEOUT_DEFAULT_MS,
                max_io_ms: pnfs_config::MAX_IO_DEFAULT_MS,
                stall_limit_ms: pnfs_config::STALL_LIMIT_DEFAULT_MS,
                layout: pnfs_config::LayoutChoice::default(),
            },
            volumes: VolumeSearch {
                entries: vec![VolumePattern {
                    pattern: volume.clone(),
                }],
                designators: Vec::new(),
            },
            nbd,
            ublk: UblkDefaults {
                queues: pnfs_config::UBLK_QUEUES_DEFAULT,
                depth: pnfs_config::UBLK_DEPTH_DEFAULT,
                recovery: false,
            },
            control: ControlConfig {
                socket: control.clone(),
            },
            metrics,
            devices: vec![device.clone()],
        };
        let specs = vec![DeviceSpec {
            config: device,
            create_size_bytes: Some(a.size),
        }];
        let mds_addr = mds.addr;
        let size = a.size;
        let metrics_addr = metrics.map(|m| m.listen);
        let on_ready: service::OnReady = Box::new(move |ready: &Ready| {
            print_instructions(ready, mds_addr, size, &control, metrics_addr);
        });
        let outcome = service::run(config, specs, shutdown, Some(on_ready)).await;
        let mut code = crate::exit_code(outcome);
        match mds.stop().await {
            Ok(()) => tracing::info!("embedded MDS stopped"),
            Err(e) => {
                tracing::error!("stopping the embedded MDS: {e}");
                code = EXIT_FAILURE;
            }
        }
        if code == crate::EXIT_OK {
            tracing::info!("demo stopped cleanly");
        }
        code
    })
}

fn print_instructions(
    ready: &Ready,
    mds: std::net::SocketAddr,
    size_bytes: u64,
    control: &Path,
    metrics: Option<std::net::SocketAddr>,
) {
    let mut out = std::io::stdout().lock();
    let Some((_, uri)) = ready.nbd_uris.first() else {
        let _ = writeln!(out, "pnfsgw demo: no NBD export came up");
        return;
    };
    let _ = writeln!(
        out,
        "{READY_LINE}: {uri}\n\
         \n  NBD export  {uri}   (file {DEMO_PATH}, {}, on the embedded MDS at {mds})\
         \n  inspect     nbdinfo {}\
         \n  VM disk     {}\
         \n  stats       pnfsgw stats --control {}{}\
         \n  stop        Ctrl-C or SIGTERM (layouts are committed and returned, then the session ends)\n",
        format_size(size_bytes),
        if uri.starts_with("nbds://") {
            format!("'{uri}?tls-certificates=CLIENT-CERT-DIR'")
        } else {
            uri.clone()
        },
        qemu_command(uri),
        control.display(),
        metrics.map_or_else(String::new, |m| format!(
            "\n  metrics     curl http://{m}{}",
            crate::metrics::METRICS_PATH
        ))
    );
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::qemu_command;

    #[test]
    fn the_qemu_command_over_tls_is_a_blockdev_with_tls_creds() {
        let c = qemu_command("nbds://127.0.0.1:10809/demo");
        assert!(!c.contains("nbds://"), "{c}");
        assert!(
            c.contains("tls-creds-x509,id=tls0,dir=CLIENT-CERT-DIR,endpoint=client")
                && c.contains("server.host=127.0.0.1,server.port=10809,export=demo,tls-creds=tls0"),
            "{c}"
        );
        assert!(qemu_command("nbd://127.0.0.1:10809/demo")
            .contains("-drive file=nbd://127.0.0.1:10809/demo,"));
    }
}
