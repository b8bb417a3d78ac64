//! The `pnfsgw` command: `run`, `export`, `check-config`, `mds`, `stats`, `demo`.
//! Exit codes are in [`args::EXIT_CODES_HELP`].

mod accept;
mod args;
mod backend;
mod control;
mod demo;
mod latency;
mod metrics;
mod notify;
mod owner_lock;
mod service;
mod size;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pnfs_config::{
    Config, ControlConfig, DataPath, DeviceConfig, Frontend, MdsConfig, UblkDefaults,
    VolumePattern, VolumeSearch,
};
use tokio::sync::watch;

use args::{Cli, Command, DataPathArg};
use backend::DeviceSpec;
use service::Outcome;

/// Success.
pub const EXIT_OK: u8 = 0;
/// Runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Served, but some device failed to start.
pub const EXIT_PARTIAL: u8 = 3;

fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version.
    let cli = Cli::parse();
    init_logging();
    ExitCode::from(match cli.command {
        Command::CheckConfig(a) => check_config(&a.file),
        Command::Run(a) => match pnfs_config::load(&a.config) {
            Ok(config) => {
                let specs = config
                    .devices
                    .iter()
                    .map(|d| DeviceSpec {
                        config: d.clone(),
                        create_size_bytes: None,
                    })
                    .collect();
                run_service(config, specs, None)
            }
            Err(e) => {
                eprintln!("pnfsgw: {e}");
                EXIT_USAGE
            }
        },
        Command::Export(a) => match export_config(&a) {
            Ok((config, specs)) => run_service(config, specs, Some(Box::new(print_export_ready))),
            Err(e) => {
                eprintln!("pnfsgw export: {e}");
                EXIT_USAGE
            }
        },
        Command::Mds(a) => match backend::mds_main(a.mds) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("pnfsgw mds: {e}");
                EXIT_FAILURE
            }
        },
        Command::Stats(a) => stats(&a),
        Command::Demo(a) => demo::main(a),
    })
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: not in the journal, log files or test captures.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn check_config(file: &std::path::Path) -> u8 {
    match pnfs_config::load(file) {
        Ok(c) => {
            println!("{}: ok ({} device(s))", file.display(), c.devices.len());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_USAGE
        }
    }
}

fn stats(a: &args::StatsArgs) -> u8 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let sockets = match &a.control {
        Some(path) => vec![path.clone()],
        None => match control::running_instances() {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                eprintln!(
                    "pnfsgw stats: no running pnfsgw found (no control socket in {}); give --control PATH",
                    control::CONTROL_DIR
                );
                return EXIT_FAILURE;
            }
            Err(e) => {
                eprintln!("pnfsgw stats: {e}");
                return EXIT_FAILURE;
            }
        },
    };
    let several = sockets.len() > 1;
    let mut code = EXIT_OK;
    for path in sockets {
        match rt.block_on(control::fetch(&path)) {
            Ok(snap) => {
                if a.json {
                    match serde_json::to_string_pretty(&snap) {
                        Ok(s) => println!("{s}"),
                        Err(e) => {
                            eprintln!("pnfsgw stats: {e}");
                            code = EXIT_FAILURE;
                        }
                    }
                } else {
                    if several {
                        println!("== {}", path.display());
                    }
                    print!("{}", snap.to_text());
                }
            }
            Err(e) => {
                eprintln!("pnfsgw stats: {}: {e}", path.display());
                code = EXIT_FAILURE;
            }
        }
    }
    code
}

/// Environment variable that sets the number of async worker threads (default: half the
/// CPUs, at least one).
const WORKER_THREADS_ENV: &str = "PNFSGW_WORKER_THREADS";
/// Most async worker threads [`WORKER_THREADS_ENV`] may ask for.
const WORKER_THREADS_MAX: usize = 256;

/// Async worker threads: `PNFSGW_WORKER_THREADS` if set (1..=256), else half the CPUs (at
/// least one). The data path is mostly system calls (socket, io_uring); an idle worker is
/// woken to steal every time a request's task is woken, so on a 2-CPU host a second worker
/// doubled the CPU time per 4 KiB request (`bench/run.sh`) while the client and the kernel's
/// share of the I/O need the other CPU anyway.
fn worker_threads() -> Result<usize, String> {
    match std::env::var(WORKER_THREADS_ENV) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=WORKER_THREADS_MAX).contains(&n) => Ok(n),
            _ => Err(format!(
                "{WORKER_THREADS_ENV}={v:?}: expected a number of threads from 1 to {WORKER_THREADS_MAX}"
            )),
        },
        Err(std::env::VarError::NotPresent) => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get() / 2)
            .max(1)),
        Err(e) => Err(format!("{WORKER_THREADS_ENV}: {e}")),
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    let workers = worker_threads().map_err(|e| {
        eprintln!("pnfsgw: {e}");
        EXIT_FAILURE
    })?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("pnfsgw: cannot start the async runtime: {e}");
            EXIT_FAILURE
        })
}

/// A watch that turns true on the first SIGINT or SIGTERM; a second one exits at once.
pub(crate) fn shutdown_on_signals() -> std::io::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT: stopping cleanly (again to exit at once)"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping cleanly (again to exit at once)"),
        }
        let _ = tx.send(true);
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::error!("second signal: exiting without a clean stop");
        std::process::exit(i32::from(EXIT_FAILURE));
    });
    Ok(rx)
}

/// Runs the service on a fresh runtime until a signal; maps the outcome to the exit code.
fn run_service(config: Config, specs: Vec<DeviceSpec>, on_ready: Option<service::OnReady>) -> u8 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let shutdown = match shutdown_on_signals() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return EXIT_FAILURE;
            }
        };
        exit_code(service::run(config, specs, shutdown, on_ready).await)
    })
}

/// Logs how the service ended and gives its exit code.
pub(crate) fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Clean => {
            tracing::info!("stopped cleanly");
            EXIT_OK
        }
        Outcome::Partial(failed) => {
            tracing::warn!(
                "stopped cleanly; these devices had failed to start: {}",
                failed.join(", ")
            );
            EXIT_PARTIAL
        }
        Outcome::Failed(e) => {
            tracing::error!("failed: {e}");
            EXIT_FAILURE
        }
    }
}

fn print_export_ready(ready: &service::Ready) {
    for (_, uri) in &ready.nbd_uris {
        println!("{uri}");
    }
    for (_, path) in &ready.ublk_paths {
        println!("{path}");
    }
}

/// The control socket of `pnfsgw export` without `--control`: one per export name and port
/// in the directory of the default socket, so several exports run side by side without flags.
fn default_export_control(name: &str, port: u16) -> PathBuf {
    let dir = std::path::Path::new(pnfs_config::CONTROL_SOCKET_DEFAULT)
        .parent()
        .unwrap_or(std::path::Path::new("/run/pnfsgw"));
    // A Unix socket path has at most 107 bytes: keep the name part short.
    let short: String = name.chars().take(EXPORT_CONTROL_NAME_MAX_CHARS).collect();
    dir.join(format!("export-{short}-{port}.sock"))
}

/// How much of an export's name goes into its default control socket's file name.
const EXPORT_CONTROL_NAME_MAX_CHARS: usize = 48;

/// The one-device configuration of `pnfsgw export`.
fn export_config(a: &args::ExportArgs) -> Result<(Config, Vec<DeviceSpec>), String> {
    let mds = pnfs_config::parse_host_port(&a.mds).map_err(|e| format!("--mds: {e}"))?;
    pnfs_config::check_absolute_path(&a.path).map_err(|e| format!("--path {:?}: {e}", a.path))?;
    let mut entries = Vec::new();
    for v in &a.volumes {
        // Relative to the working directory, as qemu-nbd takes its image path.
        let abs = std::path::absolute(v).map_err(|e| format!("--volume {v:?}: {e}"))?;
        let shown = abs.to_string_lossy().into_owned();
        pnfs_config::check_absolute_path(&shown).map_err(|e| format!("--volume {v:?}: {e}"))?;
        entries.push(VolumePattern { pattern: abs });
    }
    if a.nbd.port() == 0 {
        return Err("--nbd: port 0 is not allowed: clients could not find it".into());
    }
    let file_name = a.path.rsplit('/').next().unwrap_or_default().to_owned();
    let export = a.name.clone().unwrap_or(file_name);
    if export.is_empty() || export.len() > pnfs_config::NBD_EXPORT_NAME_MAX_BYTES {
        return Err("--name: 1 to 4096 bytes".into());
    }
    let name: String = export
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(pnfs_config::DEVICE_NAME_MAX_BYTES)
        .collect();
    let host = pnfs_config::HostIdentity::local();
    let machine_name = host.machine_name.clone();
    // Each export is its own instance: its own control socket (by default named after the
    // export and its port, which no other instance can hold) and so its own client owner.
    let control = a
        .control
        .clone()
        .unwrap_or_else(|| default_export_control(&name, a.nbd.port()));
    let ublk = UblkDefaults {
        queues: pnfs_config::UBLK_QUEUES_DEFAULT,
        depth: pnfs_config::UBLK_DEPTH_DEFAULT,
        recovery: a.ublk_recovery,
    };
    let mut frontends = vec![Frontend::Nbd];
    if a.ublk {
        frontends.push(Frontend::Ublk);
    }
    let device = DeviceConfig {
        name,
        path: a.path.clone(),
        frontends,
        export,
        read_only: a.read_only,
        block_size: None,
        queues: ublk.queues,
        depth: ublk.depth,
        ublk_recovery: a.ublk && a.ublk_recovery,
        max_cached_extents: pnfs_config::MAX_CACHED_EXTENTS_DEFAULT,
        data_path: data_path(a.data_path),
    };
    let config = Config {
        mds: MdsConfig {
            addresses: vec![mds],
            auth: pnfs_config::AuthSys {
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
            entries,
            designators: Vec::new(),
        },
        nbd: a.tls.nbd_config(a.nbd)?,
        ublk,
        control: ControlConfig { socket: control },
        metrics: a.metrics.config()?,
        devices: vec![device.clone()],
    };
    Ok((
        config,
        vec![DeviceSpec {
            config: device,
            create_size_bytes: a.create,
        }],
    ))
}

pub(crate) fn data_path(a: DataPathArg) -> DataPath {
    match a {
        DataPathArg::Pnfs => DataPath::Pnfs,
        DataPathArg::Mds => DataPath::Mds,
    }
}

/// Waits until `rx` turns true (or its sender is gone), holding no borrow across awaits.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
