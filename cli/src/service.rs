//! The gateway service shared by `run`, `export` and `demo`: connect to the MDS, open every
//! device, start the frontends, report readiness, serve until told to stop, then stop in order
//! (frontends drain → devices commit and return layouts → session destroyed).
//!
//! A device that cannot start (its file missing on the MDS, a block size mismatch, …) is
//! logged by name and marked failed in `pnfsgw stats`; the other devices still start, and the
//! process exits with [`crate::EXIT_PARTIAL`] when it stops. The same holds for a ublk
//! frontend that cannot start (no ublk driver): the device's NBD export still serves, and it
//! is listed as `NAME (ublk)`. If no device starts, the service fails at once
//! ([`crate::EXIT_FAILURE`]).
//!
//! ublk devices with `recovery` survive the process: a stop hands them over instead of
//! deleting them, and a start first deletes the devices an earlier run of this instance left
//! that it will not recover, then recovers the others as it starts their frontends (the rule
//! and the records: pnfs_ublk's `recovery` module; records under
//! [`pnfs_ublk::RECORD_DIR_DEFAULT`], per client owner — one live process at most holds it).

use pnfs_gateway::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pnfs_config::{Config, Frontend};
use tokio::sync::watch;

use crate::backend::{self, Device, DeviceSpec, Gateway, NbdExport, NbdListeners, NbdServer};
use crate::control::ControlSocket;
use crate::metrics::MetricsListener;
use crate::notify::notify;
use crate::owner_lock::OwnerLock;
use crate::status::{Board, DeviceStatus, FrontendStatus, Snapshot, State};

/// How the service ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped cleanly; every device had started.
    Clean,
    /// Stopped cleanly, but these devices had failed to start.
    Partial(Vec<String>),
    /// Could not start, or failed while running or stopping.
    Failed(String),
}

/// What is being served, for the ready line and the demo's instructions.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    /// `(device name, NBD URI)` for every NBD export on a TCP listener.
    pub nbd_uris: Vec<(String, String)>,
    /// `(device name, /dev/ublkbN)`.
    pub ublk_paths: Vec<(String, String)>,
    /// Names of devices that failed to start.
    pub failed: Vec<String>,
}

/// Called once when every device that could start is up.
pub type OnReady = Box<dyn FnOnce(&Ready) + Send>;

/// The longest a stop may take in all (draining, committing, returning, ending the session):
/// below the systemd unit's `TimeoutStopSec=300`, so that the process ends by itself and says
/// what stayed uncommitted instead of being SIGKILLed in the middle.
pub const STOP_DEADLINE_MAX_MS: u64 = 240_000;

/// The stop deadline: one stall limit, capped at [`STOP_DEADLINE_MAX_MS`].
fn stop_budget(stall_limit_ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(stall_limit_ms.min(STOP_DEADLINE_MAX_MS))
}

/// The URI clients use for `export` on `addr`.
pub fn nbd_uri(addr: &std::net::SocketAddr, export: &str) -> String {
    format!("nbd://{addr}/{export}")
}

/// The URI of `export` on `listener`, if the listener serves it: `nbds://` when TLS is
/// required (libnbd's scheme for TLS), `nbd+unix://` on a Unix socket.
pub fn listener_uri(listener: &pnfs_config::NbdListener, export: &str) -> Option<String> {
    if let Some(allowed) = &listener.exports {
        if !allowed.iter().any(|a| a == export) {
            return None;
        }
    }
    let tls_required = listener
        .tls
        .as_ref()
        .is_some_and(|t| t.mode == pnfs_config::NbdTlsMode::Require);
    Some(match &listener.address {
        pnfs_config::NbdAddress::Tcp(addr) if tls_required => format!("nbds://{addr}/{export}"),
        pnfs_config::NbdAddress::Tcp(addr) => nbd_uri(addr, export),
        pnfs_config::NbdAddress::Unix(path) => {
            format!("nbd+unix:///{export}?socket={}", path.display())
        }
    })
}

/// Runs the service until `shutdown` turns true (or a fatal error).
pub async fn run(
    config: Config,
    specs: Vec<DeviceSpec>,
    shutdown: watch::Receiver<bool>,
    on_ready: Option<OnReady>,
) -> Outcome {
    let mds_addresses: Vec<String> = config
        .mds
        .addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    let _owner_lock = match OwnerLock::acquire(&config.mds.client_owner, &mds_addresses) {
        Ok(l) => l,
        Err(e) => return Outcome::Failed(e),
    };
    let board = Board::new(
        mds_addresses,
        specs.iter().map(initial_status(&config)).collect(),
    );
    tracing::info!("client owner {:?}", config.mds.client_owner);
    let control = match ControlSocket::bind(&config.control.socket) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Failed(format!(
                "control socket {}: {e}",
                config.control.socket.display()
            ))
        }
    };
    let (control_stop_tx, control_stop_rx) = watch::channel(false);
    let metrics_task = match config.metrics {
        None => None,
        Some(m) => match MetricsListener::bind(m.listen).await {
            Ok(l) => {
                let at = l.local_addr().map_or(m.listen, |a| a);
                tracing::info!("metrics at http://{at}{}", crate::metrics::METRICS_PATH);
                Some(tokio::spawn(
                    l.serve(board.clone(), control_stop_rx.clone()),
                ))
            }
            Err(e) => return Outcome::Failed(format!("metrics listener {}: {e}", m.listen)),
        },
    };
    let control_task = tokio::spawn(control.serve(board.clone(), control_stop_rx));

    let registry = pnfs_ublk::Registry::new(
        pnfs_ublk::RECORD_DIR_DEFAULT,
        config.mds.client_owner.clone(),
    );
    let outcome = serve(&config, &specs, &board, &registry, shutdown, on_ready).await;

    board.set_refresh(None);
    // Closing the control socket is last, so `pnfsgw stats` shows the stop progress.
    let _ = control_stop_tx.send(true);
    if let Err(e) = control_task.await {
        tracing::warn!("control socket task: {e}");
    }
    if let Some(t) = metrics_task {
        if let Err(e) = t.await {
            tracing::warn!("metrics listener task: {e}");
        }
    }
    outcome
}

fn initial_status(config: &Config) -> impl Fn(&DeviceSpec) -> DeviceStatus + '_ {
    move |spec| {
        let d = &spec.config;
        let mut frontends = Vec::new();
        if d.has(Frontend::Nbd) {
            let location = config
                .nbd
                .all_listeners()
                .iter()
                .find_map(|l| listener_uri(l, &d.export))
                .unwrap_or_default();
            frontends.push(FrontendStatus {
                kind: "nbd".into(),
                location,
                state: State::Starting,
            });
        }
        if d.has(Frontend::Ublk) {
            frontends.push(FrontendStatus {
                kind: "ublk".into(),
                location: String::new(),
                state: State::Starting,
            });
        }
        DeviceStatus {
            name: d.name.clone(),
            path: d.path.clone(),
            size_bytes: None,
            data_path: d.data_path.to_string(),
            state: State::Starting,
            frontends,
            counters: BTreeMap::new(),
            latency: Vec::new(),
        }
    }
}

/// Sets the state of every frontend of `kind` on device `index`.
fn frontend_state(board: &Board, index: usize, kind: &str, state: State, location: Option<String>) {
    board.device(index, |d| {
        for f in d.frontends.iter_mut().filter(|f| f.kind == kind) {
            f.state = state.clone();
            if let Some(l) = &location {
                f.location.clone_from(l);
            }
        }
    });
}

async fn serve(
    config: &Config,
    specs: &[DeviceSpec],
    board: &Board,
    registry: &pnfs_ublk::Registry,
    mut shutdown: watch::Receiver<bool>,
    on_ready: Option<OnReady>,
) -> Outcome {
    // ublk devices an earlier run left and this one will not recover wait for nothing: delete
    // them first (their I/O fails now instead of hanging).
    {
        let (config, registry) = (config.clone(), registry.clone());
        match tokio::task::spawn_blocking(move || backend::sweep_ublk(&config, &registry)).await {
            Ok(Ok(ids)) if ids.is_empty() => {}
            Ok(Ok(ids)) => tracing::info!("deleted ublk device(s) {ids:?} left by an earlier run"),
            Ok(Err(e)) => tracing::error!("ublk devices left by an earlier run: {e}"),
            Err(e) => tracing::error!("ublk devices left by an earlier run: {e}"),
        }
    }
    let gateway = tokio::select! {
        g = Gateway::connect(config) => match g {
            Ok(g) => Arc::new(g),
            Err(e) => {
                let addrs: Vec<String> = config.mds.addresses.iter().map(ToString::to_string).collect();
                return Outcome::Failed(format!("connecting to the MDS at {}: {e}", addrs.join(", ")));
            }
        },
        _ = crate::stopped(&mut shutdown) => return Outcome::Clean,
    };
    tracing::info!("connected to the MDS");

    // Open every device; a failure is reported by name and the others go on.
    let mut devices: Vec<Option<Arc<Device>>> = Vec::with_capacity(specs.len());
    let mut failed = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let d = &spec.config;
        if *shutdown.borrow() {
            break;
        }
        let opened = tokio::select! {
            r = gateway.open(spec) => r,
            _ = crate::stopped(&mut shutdown) => break,
        };
        match opened {
            Ok(dev) => {
                tracing::info!(device = %d.name, "device {}: opened {} ({} bytes, data path {})", d.name, d.path, dev.size_bytes, d.data_path);
                let size = dev.size_bytes;
                board.device(i, |s| {
                    s.size_bytes = Some(size);
                    s.state = State::Up;
                });
                devices.push(Some(Arc::new(dev)));
            }
            Err(e) => {
                tracing::error!(device = %d.name, "device {}: cannot start: {} on the MDS: {e}; the other devices start anyway", d.name, d.path);
                board.device(i, |s| {
                    s.state = State::Failed(e.to_string());
                    for f in &mut s.frontends {
                        f.state = State::Failed("device not started".into());
                    }
                });
                failed.push(d.name.clone());
                devices.push(None);
            }
        }
    }
    let opened: Vec<(usize, Arc<Device>)> = devices
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.clone().map(|d| (i, d)))
        .collect();
    // A stop asked for while opening: close what is open, start no frontend.
    let early_stop = *shutdown.borrow();
    if early_stop {
        tracing::info!("stop requested while starting: not starting the frontends");
    }
    if opened.is_empty() {
        let outcome = if early_stop && failed.is_empty() {
            Outcome::Clean
        } else {
            Outcome::Failed(format!("no device could start ({})", failed.join(", ")))
        };
        drop(devices);
        if let Err(e) = gateway.shutdown().await {
            tracing::error!("ending the MDS session: {e}");
        }
        return outcome;
    }
    let mut ready = Ready {
        failed: failed.clone(),
        ..Ready::default()
    };
    let mut fatal: Option<String> = None;

    // Frontends get their own stop signal: they stop first, before the devices close.
    let (front_stop_tx, front_stop_rx) = watch::channel(false);

    // NBD: one server for every device with the nbd frontend.
    let nbd_exports: Vec<(usize, NbdExport)> = opened
        .iter()
        .filter(|(i, _)| specs[*i].config.has(Frontend::Nbd))
        .map(|(i, dev)| {
            let c = &specs[*i].config;
            (
                *i,
                NbdExport {
                    name: c.export.clone(),
                    device: Arc::clone(dev),
                    read_only: c.read_only,
                },
            )
        })
        .collect();
    let mut nbd_task = None;
    let mut nbd_set: Option<Arc<pnfs_nbd::ExportSet>> = None;
    if !nbd_exports.is_empty() && !early_stop {
        let listeners = NbdListeners {
            listeners: config.nbd.all_listeners(),
            max_connections: config.nbd.max_connections,
        };
        match NbdServer::bind(&listeners).await {
            Ok(server) => {
                for (i, e) in &nbd_exports {
                    frontend_state(board, *i, "nbd", State::Up, None);
                    for l in &listeners.listeners {
                        if !matches!(l.address, pnfs_config::NbdAddress::Tcp(_)) {
                            continue;
                        }
                        if let Some(uri) = listener_uri(l, &e.name) {
                            ready.nbd_uris.push((specs[*i].config.name.clone(), uri));
                        }
                    }
                }
                let exports: Vec<NbdExport> = nbd_exports.into_iter().map(|(_, e)| e).collect();
                match backend::nbd_export_set(&exports) {
                    Ok(set) => {
                        nbd_set = Some(Arc::clone(&set));
                        nbd_task = Some(tokio::spawn(server.serve(set, front_stop_rx.clone())));
                    }
                    Err(e) => fatal = Some(e.to_string()),
                }
            }
            Err(e) => {
                // Without its NBD listeners the service cannot do what it was asked.
                for (i, _) in &nbd_exports {
                    frontend_state(board, *i, "nbd", State::Failed(e.to_string()), None);
                }
                fatal = Some(format!("NBD server: {e}"));
            }
        }
    }

    // ublk: one device each; a missing kernel driver fails only the ublk frontends.
    let ublk_devices: Arc<Mutex<Vec<(usize, backend::UblkDevice)>>> = Arc::default();
    if fatal.is_none() && !early_stop {
        for (i, dev) in &opened {
            let spec = &specs[*i];
            if !spec.config.has(Frontend::Ublk) {
                continue;
            }
            match backend::start_ublk(spec, Arc::clone(dev), registry.clone()).await {
                Ok(u) => {
                    let how = if u.recovered() {
                        " (recovered from the earlier run)"
                    } else {
                        ""
                    };
                    tracing::info!(device = %spec.config.name, "device {}: {}{how}", spec.config.name, u.path);
                    frontend_state(board, *i, "ublk", State::Up, Some(u.path.clone()));
                    ready
                        .ublk_paths
                        .push((spec.config.name.clone(), u.path.clone()));
                    ublk_devices.lock_unpoisoned().push((*i, u));
                }
                Err(e) => {
                    let name = &spec.config.name;
                    if spec.config.has(Frontend::Nbd) {
                        tracing::error!(device = %name, "device {name}: ublk frontend failed: {e}; its NBD export still serves");
                        failed.push(format!("{name} (ublk)"));
                    } else {
                        tracing::error!(device = %name, "device {name}: ublk frontend failed: {e}");
                        failed.push(name.clone());
                    }
                    frontend_state(board, *i, "ublk", State::Failed(e.to_string()), None);
                }
            }
        }
        ready.failed.clone_from(&failed);
    }

    {
        let gateway = Arc::clone(&gateway);
        let devs = devices.clone();
        let exports: Vec<String> = specs.iter().map(|s| s.config.export.clone()).collect();
        let nbd_set = nbd_set.clone();
        let ublk = Arc::clone(&ublk_devices);
        board.set_refresh(Some(Arc::new(move |snap: &mut Snapshot| {
            snap.counters = gateway.counters();
            for ((status, dev), export) in snap.devices.iter_mut().zip(&devs).zip(&exports) {
                if let Some(dev) = dev {
                    status.counters = dev.counters();
                }
                if let Some(set) = &nbd_set {
                    status.counters.extend(backend::nbd_counters(set, export));
                    if let (Some(dev), true) = (dev, set.lookup(export).is_some()) {
                        status
                            .counters
                            .insert("nbd.in_flight".into(), dev.nbd_timing.in_flight());
                        status.latency = dev.nbd_timing.snapshot("nbd");
                    }
                }
            }
            for (i, u) in ublk.lock_unpoisoned().iter() {
                let (counters, problem) = u.counters();
                if let Some(d) = snap.devices.get_mut(*i) {
                    d.counters.extend(counters);
                    if let Some(p) = problem {
                        for f in d
                            .frontends
                            .iter_mut()
                            .filter(|f| f.kind == "ublk" && f.state == State::Up)
                        {
                            f.state = State::Failed(p.clone());
                        }
                    }
                }
            }
        })));
    }

    if fatal.is_none() && !early_stop {
        let up = opened.len();
        let status = if failed.is_empty() {
            format!("serving {up} device(s)")
        } else {
            format!("serving {up} device(s); failed: {}", failed.join(", "))
        };
        notify(&format!("READY=1\nSTATUS={status}"));
        tracing::info!("ready: {status}");
        if let Some(f) = on_ready {
            f(&ready);
        }
        // Serve until told to stop, or until the NBD server dies.
        tokio::select! {
            _ = crate::stopped(&mut shutdown) => tracing::info!("stopping: signal received"),
            r = async { match nbd_task.as_mut() { Some(t) => t.await, None => std::future::pending().await } } => {
                nbd_task = None;
                fatal = Some(match r {
                    Ok(Ok(())) => "NBD server stopped unexpectedly".into(),
                    Ok(Err(e)) => format!("NBD server: {e}"),
                    Err(e) => format!("NBD server task: {e}"),
                });
            }
        }
    }

    // Stop in order, within one deadline for the whole stop: with the MDS gone, every step
    // that needs it would otherwise wait the stall limit on its own (a flush, then the close,
    // then the session), and systemd's TimeoutStopSec would SIGKILL the process first.
    notify("STOPPING=1\nSTATUS=stopping: draining frontends, committing layouts");
    let stop_budget = stop_budget(config.mds.stall_limit_ms);
    let stop_by = tokio::time::Instant::now() + stop_budget;
    for (i, _) in &opened {
        board.device(*i, |d| d.state = State::Stopping);
    }
    let _ = front_stop_tx.send(true);
    let mut errors: Vec<String> = fatal.into_iter().collect();
    if let Some(mut t) = nbd_task {
        match tokio::time::timeout_at(stop_by, &mut t).await {
            Ok(Ok(Ok(()))) => tracing::info!("NBD server stopped"),
            Ok(Ok(Err(e))) => errors.push(format!("NBD server: {e}")),
            Ok(Err(e)) => errors.push(format!("NBD server task: {e}")),
            Err(_) => {
                t.abort();
                errors.push("NBD server: requests still waiting at the stop deadline".into());
            }
        }
    }
    let ublk_list = std::mem::take(&mut *ublk_devices.lock_unpoisoned());
    for (i, u) in ublk_list {
        let name = &specs[i].config.name;
        let path = u.path.clone();
        let (done, doing) = if u.recovery {
            (
                "handed over to the next run (it stays; its I/O waits)",
                "handing over",
            )
        } else {
            ("deleted", "deleting")
        };
        match u.end().await {
            Ok(()) => {
                tracing::info!(device = %name, "device {name}: {path} {done}");
                frontend_state(board, i, "ublk", State::Stopped, None);
            }
            Err(e) => errors.push(format!("device {name}: {doing} {path}: {e}")),
        }
    }
    let mut not_closed: Vec<String> = Vec::new();
    for (i, dev) in &opened {
        let name = &specs[*i].config.name;
        let Ok(closed) = tokio::time::timeout_at(stop_by, dev.close()).await else {
            not_closed.push(name.clone());
            board.device(*i, |d| {
                d.state = State::Failed("stop deadline passed".into())
            });
            continue;
        };
        match closed {
            Ok(()) => {
                tracing::info!(device = %name, "device {name}: committed, layouts returned, closed");
                board.device(*i, |d| {
                    d.state = State::Stopped;
                    for f in d.frontends.iter_mut().filter(|f| f.state == State::Up) {
                        f.state = State::Stopped;
                    }
                });
            }
            Err(e) => {
                errors.push(format!("device {name}: closing: {e}"));
                board.device(*i, |d| d.state = State::Failed(format!("closing: {e}")));
            }
        }
    }
    board.set_refresh(None);
    drop(opened);
    drop(devices);
    if not_closed.is_empty() {
        match tokio::time::timeout_at(stop_by, gateway.shutdown()).await {
            Ok(Ok(())) => tracing::info!("session destroyed"),
            Ok(Err(e)) => errors.push(format!("ending the MDS session: {e}")),
            Err(_) => errors.push(format!(
                "ending the MDS session: no answer within the stop deadline of {} s",
                stop_budget.as_secs()
            )),
        }
    } else {
        // One line that says what stays behind; the session is left to expire on the MDS.
        errors.push(format!(
            "the MDS did not answer within the stop deadline of {} s: not committed and \
             returned: {} (every flush a client saw succeed was committed; later writes may \
             be lost; the MDS revokes the layouts when the lease expires)",
            stop_budget.as_secs(),
            not_closed.join(", ")
        ));
    }
    if !errors.is_empty() {
        for e in &errors {
            tracing::error!("{e}");
        }
        return Outcome::Failed(errors.join("; "));
    }
    if failed.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Partial(failed)
    }
}
