//! Lifecycle of one ublk device: create (or recover), start, stats, stop and delete, or hand
//! over to the next process.
//!
//! A control thread owns the libublk control object (its control io_uring is thread-local),
//! spawns one thread per queue, starts the device, then waits for a stop request or a queue
//! that exits on its own; it then stops the device (`STOP_DEV`: the kernel drains in-flight
//! requests and aborts the fetches), joins the queues and deletes the device.
//!
//! With user recovery ([`UblkParams::recovery`]) a device can instead be handed over
//! ([`UblkDevice::detach`]): the gate stops letting requests into the Disk, the running ones
//! finish, and the device is left to the kernel; when this process exits the kernel quiesces
//! it and re-queues every request this process did not answer. The next process recovers it
//! (`START_USER_RECOVERY`, new queues, `END_USER_RECOVERY`: [`UblkDevice::start_kept`], which
//! also applies the keep-or-delete rule of `recovery.rs` to devices left behind).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use libublk::io::UblkDev;
use libublk::UblkFlags;
use pnfs_disk::Disk;
use tokio::runtime::Handle;

use crate::error::{describe_libublk, UBLK_CONTROL_PATH};
use crate::gate::Gate;
use crate::geometry::{Geometry, UblkParams};
use crate::queue::{run_queue, Counters, QueueCtx};
use crate::recovery::{self, Decision, Registry, RECOVERY_FLAGS};
use crate::UblkError;

/// How long [`UblkDevice::start`] waits for the kernel to bring the device up (generous:
/// the test guest runs under software emulation).
pub const START_TIMEOUT_SECS: u64 = 120;
/// How long stopping waits for the queues to drain before it gives up on them.
pub const STOP_TIMEOUT_SECS: u64 = 120;

/// Where a device is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceState {
    /// Being created.
    Starting,
    /// Serving requests.
    Running,
    /// Stop requested; draining.
    Stopping,
    /// Deleted cleanly.
    Stopped,
    /// Handed over: left to the kernel for the next process to recover.
    Detached,
    /// Stopped because something failed (the reason).
    Failed(String),
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceState::Starting => f.write_str("starting"),
            DeviceState::Running => f.write_str("running"),
            DeviceState::Stopping => f.write_str("stopping"),
            DeviceState::Stopped => f.write_str("stopped"),
            DeviceState::Detached => f.write_str("handed over"),
            DeviceState::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// Request counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UblkStats {
    /// READ requests completed successfully.
    pub reads: u64,
    /// WRITE requests completed successfully.
    pub writes: u64,
    /// FLUSH requests completed successfully.
    pub flushes: u64,
    /// DISCARD requests completed successfully.
    pub discards: u64,
    /// WRITE_ZEROES requests completed successfully.
    pub write_zeroes: u64,
    /// Requests completed with an error.
    pub errors: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

/// A snapshot for `pnfsgw stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UblkStatus {
    /// Kernel device id (N in /dev/ublkbN).
    pub dev_id: u32,
    /// Block device path.
    pub path: PathBuf,
    /// Queues.
    pub nr_queues: u16,
    /// Depth per queue.
    pub queue_depth: u16,
    /// Largest request in bytes.
    pub max_io_bytes: u32,
    /// Device size in bytes.
    pub size_bytes: u64,
    /// Logical block size.
    pub logical_block_bytes: u32,
    /// Physical block size.
    pub physical_block_bytes: u32,
    /// Read-only device.
    pub read_only: bool,
    /// Life-cycle state.
    pub state: DeviceState,
    /// Counters.
    pub stats: UblkStats,
}

enum Ctl {
    Stop,
    Detach,
    QueueExited {
        qid: u16,
        result: Result<(), String>,
    },
}

/// A running ublk device serving one [`Disk`]. Dropping it stops and deletes the device
/// (blocking; see [`UblkDevice::stop`]).
#[derive(Debug)]
pub struct UblkDevice {
    dev_id: u32,
    path: PathBuf,
    geometry: Geometry,
    state: Arc<Mutex<DeviceState>>,
    counters: Arc<Counters>,
    ctl: Option<mpsc::Sender<Ctl>>,
    control: Option<JoinHandle<Result<(), UblkError>>>,
    /// Recovered from an earlier process (not added by this one).
    recovered: bool,
    /// Made with user recovery (can be handed over).
    recovery: bool,
    /// Where the device is recorded (devices started by [`UblkDevice::start_kept`]).
    registry: Option<Registry>,
}

/// Add a new device, or recover the one with this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Add,
    Recover(u32),
}

impl std::fmt::Debug for Ctl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ctl::Stop => f.write_str("Stop"),
            Ctl::Detach => f.write_str("Detach"),
            Ctl::QueueExited { qid, result } => write!(f, "QueueExited({qid}, {result:?})"),
        }
    }
}

fn set_state(state: &Mutex<DeviceState>, new: DeviceState) {
    match state.lock() {
        Ok(mut s) => *s = new,
        Err(poisoned) => *poisoned.into_inner() = new,
    }
}

fn page_bytes() -> u32 {
    // SAFETY: sysconf takes no pointers.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(v).unwrap_or(4096)
}

impl UblkDevice {
    /// Creates and starts `/dev/ublkb<N>` serving `disk`; requests run on `handle`.
    ///
    /// Blocks until the kernel has the device up (the kernel reads the partition table
    /// during start, served through `handle`). Do not call it from a thread that must drive
    /// `handle`'s runtime itself (a current-thread runtime's own thread); from async code
    /// use [`UblkDevice::start_async`].
    pub fn start<D: Disk>(
        disk: Arc<D>,
        params: UblkParams,
        handle: Handle,
    ) -> Result<UblkDevice, UblkError> {
        Self::start_mode(disk, params, handle, Mode::Add)
    }

    /// Like [`UblkDevice::start`], for a device that may outlive this process: the device
    /// `registry` records for `params.name` (left by an earlier process of the same owner)
    /// is recovered when the rule allows it (see `recovery.rs`: same shape, made with
    /// recovery, `params.recovery` on), else deleted and a new one added; the device is
    /// recorded in `registry` until it is deleted. Blocking, like `start`; waits at most
    /// [`recovery::QUIESCE_WAIT_MS`] for a device whose old process is still exiting.
    pub fn start_kept<D: Disk>(
        disk: Arc<D>,
        params: UblkParams,
        handle: Handle,
        registry: &Registry,
    ) -> Result<UblkDevice, UblkError> {
        if !Path::new(UBLK_CONTROL_PATH).exists() {
            return Err(UblkError::ControlMissing);
        }
        let geometry = Geometry::new(&disk.info(), &params, page_bytes())?;
        let name = params.name.clone();
        if let Some(id) = registry.find(&name)? {
            match recovery::settle(id, &geometry, params.recovery)? {
                None => registry.remove(id)?,
                Some(Decision::Recover) => {
                    let started = Self::start_mode(
                        Arc::clone(&disk),
                        params.clone(),
                        handle.clone(),
                        Mode::Recover(id),
                    );
                    match started {
                        Ok(mut dev) => {
                            dev.registry = Some(registry.clone());
                            return Ok(dev);
                        }
                        Err(e) => {
                            tracing::error!(
                                "ublk: recovering device {id} ({name}) failed: {e}; deleting it \
                                 and adding a new one"
                            );
                            recovery::delete_leftover(id)?;
                            registry.remove(id)?;
                        }
                    }
                }
                Some(other) => {
                    let why = match other {
                        Decision::Delete(why) => why,
                        _ => "the kernel did not quiesce it".to_string(),
                    };
                    tracing::warn!(
                        "ublk: device {id} ({name}) left by an earlier run is not recovered: \
                         {why}; deleting it and adding a new one"
                    );
                    recovery::delete_leftover(id)?;
                    registry.remove(id)?;
                }
            }
        }
        let mut dev = Self::start_mode(disk, params, handle, Mode::Add)?;
        if let Err(e) = registry.write(dev.dev_id, &name) {
            if let Err(stop) = dev.stop_inner() {
                tracing::error!("ublk: deleting {} again: {stop}", dev.path.display());
            }
            return Err(e);
        }
        dev.registry = Some(registry.clone());
        Ok(dev)
    }

    fn start_mode<D: Disk>(
        disk: Arc<D>,
        params: UblkParams,
        handle: Handle,
        mode: Mode,
    ) -> Result<UblkDevice, UblkError> {
        if !Path::new(UBLK_CONTROL_PATH).exists() {
            return Err(UblkError::ControlMissing);
        }
        let info = disk.info();
        let geometry = Geometry::new(&info, &params, page_bytes())?;
        let recovery = params.recovery;
        let state = Arc::new(Mutex::new(DeviceState::Starting));
        let counters = Arc::new(Counters::default());
        let gate = Arc::new(Gate::default());
        let (ctl_tx, ctl_rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::sync_channel(1);
        // Thread names may not hold NULs; keep them short and plain.
        let label: String = params
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(32)
            .collect();
        let thread_name = format!("ublk-ctl-{label}");
        let control = {
            let (geometry, state, counters, ctl_tx, gate) = (
                geometry.clone(),
                Arc::clone(&state),
                Arc::clone(&counters),
                ctl_tx.clone(),
                Arc::clone(&gate),
            );
            std::thread::Builder::new()
                .name(thread_name.clone())
                .spawn(move || {
                    let control = Control {
                        geometry,
                        params,
                        state,
                        ctl_tx,
                        ctl_rx,
                        gate,
                        mode,
                    };
                    control.run(disk, info, handle, counters, started_tx)
                })
                .map_err(|e| UblkError::Thread {
                    name: thread_name.clone(),
                    detail: e.to_string(),
                })?
        };
        let started = started_rx.recv_timeout(Duration::from_secs(START_TIMEOUT_SECS));
        match started {
            Ok(Ok((dev_id, path))) => Ok(UblkDevice {
                dev_id,
                path,
                geometry,
                state,
                counters,
                ctl: Some(ctl_tx),
                control: Some(control),
                recovered: matches!(mode, Mode::Recover(_)),
                recovery,
                registry: None,
            }),
            Ok(Err(e)) => {
                // The control thread has already cleaned up and returns.
                let _ = control.join();
                Err(e)
            }
            Err(RecvTimeoutError::Timeout) => {
                // Dropping the sender makes the control thread tear down once start returns.
                drop(ctl_tx);
                Err(UblkError::StartTimeout {
                    secs: START_TIMEOUT_SECS,
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                let detail = match control.join() {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(())) => "exited before the device started".to_string(),
                    Err(_) => "panicked".to_string(),
                };
                Err(UblkError::Thread {
                    name: thread_name,
                    detail,
                })
            }
        }
    }

    /// [`UblkDevice::start`] on tokio's blocking pool, for async callers.
    pub async fn start_async<D: Disk>(
        disk: Arc<D>,
        params: UblkParams,
        handle: Handle,
    ) -> Result<UblkDevice, UblkError> {
        tokio::task::spawn_blocking(move || UblkDevice::start(disk, params, handle))
            .await
            .map_err(|e| UblkError::Thread {
                name: "ublk start".into(),
                detail: e.to_string(),
            })?
    }

    /// Kernel device id (N in /dev/ublkbN).
    pub fn dev_id(&self) -> u32 {
        self.dev_id
    }

    /// The block device path, `/dev/ublkb<N>`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this process recovered the device from an earlier one.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Current state (a queue failing stops the device: `Failed`).
    pub fn state(&self) -> DeviceState {
        match self.state.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Snapshot for `pnfsgw stats`.
    pub fn status(&self) -> UblkStatus {
        let c = &self.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        UblkStatus {
            dev_id: self.dev_id,
            path: self.path.clone(),
            nr_queues: self.geometry.nr_queues,
            queue_depth: self.geometry.queue_depth,
            max_io_bytes: self.geometry.max_io_bytes,
            size_bytes: self.geometry.size_bytes,
            logical_block_bytes: self.geometry.logical_block_bytes,
            physical_block_bytes: self.geometry.physical_block_bytes,
            read_only: self.geometry.read_only,
            state: self.state(),
            stats: UblkStats {
                reads: get(&c.reads),
                writes: get(&c.writes),
                flushes: get(&c.flushes),
                discards: get(&c.discards),
                write_zeroes: get(&c.write_zeroes),
                errors: get(&c.errors),
                bytes_read: get(&c.bytes_read),
                bytes_written: get(&c.bytes_written),
            },
        }
    }

    /// Stops and deletes the device: the kernel completes in-flight requests (they need
    /// the tokio runtime to keep running), `/dev/ublkb<N>` disappears, then this returns.
    /// Blocking; from async code use [`UblkDevice::stop_async`].
    pub fn stop(mut self) -> Result<(), UblkError> {
        self.stop_inner()
    }

    /// [`UblkDevice::stop`] on tokio's blocking pool.
    pub async fn stop_async(self) -> Result<(), UblkError> {
        tokio::task::spawn_blocking(move || self.stop())
            .await
            .map_err(|e| UblkError::Thread {
                name: "ublk stop".into(),
                detail: e.to_string(),
            })?
    }

    /// Hands the device over to the next process instead of deleting it (needs
    /// [`UblkParams::recovery`]): no new request reaches the Disk, the running ones finish
    /// (at most [`STOP_TIMEOUT_SECS`]), and every request not answered by then is left to
    /// the kernel, which issues it again to the process that recovers the device. Once this
    /// returns, the caller commits and closes the Disk, then exits: the kernel quiesces the
    /// device when the process is gone. `/dev/ublkbN` stays, and its I/O waits.
    pub fn detach(mut self) -> Result<(), UblkError> {
        if !self.recovery {
            return Err(UblkError::InvalidConfig(format!(
                "{} was made without user recovery: it cannot be handed over",
                self.path.display()
            )));
        }
        // The record stays: the next process finds the device by it (and Drop must not
        // remove it once this returns).
        self.registry = None;
        self.end(Ctl::Detach)
    }

    /// [`UblkDevice::detach`] on tokio's blocking pool.
    pub async fn detach_async(self) -> Result<(), UblkError> {
        tokio::task::spawn_blocking(move || self.detach())
            .await
            .map_err(|e| UblkError::Thread {
                name: "ublk detach".into(),
                detail: e.to_string(),
            })?
    }

    fn stop_inner(&mut self) -> Result<(), UblkError> {
        let result = self.end(Ctl::Stop);
        if result.is_ok() {
            if let Some(r) = &self.registry {
                r.remove(self.dev_id)?;
            }
        }
        result
    }

    fn end(&mut self, how: Ctl) -> Result<(), UblkError> {
        let Some(control) = self.control.take() else {
            return Ok(());
        };
        if let Some(tx) = self.ctl.take() {
            // Fails only if the control thread already ended (a queue failed).
            let _ = tx.send(how);
        }
        match control.join() {
            Ok(result) => result,
            Err(_) => Err(UblkError::Thread {
                name: format!("ublk-ctl for {}", self.path.display()),
                detail: "panicked".into(),
            }),
        }
    }
}

impl Drop for UblkDevice {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            tracing::error!("ublk: stopping {} on drop: {e}", self.path.display());
        }
    }
}

/// The control thread's state.
struct Control {
    geometry: Geometry,
    params: UblkParams,
    state: Arc<Mutex<DeviceState>>,
    ctl_tx: mpsc::Sender<Ctl>,
    ctl_rx: mpsc::Receiver<Ctl>,
    gate: Arc<Gate>,
    mode: Mode,
}

/// `START_USER_RECOVERY` for device `id`, retried while the kernel answers EBUSY (the old
/// process's `/dev/ublkcN` not yet released), at most [`recovery::QUIESCE_WAIT_MS`].
fn start_user_recovery(id: i32) -> Result<(), UblkError> {
    let ctrl = UblkCtrl::new_simple(id).map_err(|e| UblkError::kernel("opening the device", &e))?;
    let deadline = Instant::now() + Duration::from_millis(recovery::QUIESCE_WAIT_MS);
    loop {
        match ctrl.start_user_recover() {
            Ok(_) => return Ok(()),
            Err(libublk::UblkError::OtherError(code))
                if code == -libc::EBUSY && Instant::now() < deadline =>
            {
                // The driver has no notification for the release; poll it, bounded.
                std::thread::sleep(Duration::from_millis(recovery::QUIESCE_POLL_MS));
            }
            Err(e) => return Err(UblkError::kernel("START_USER_RECOVERY", &e)),
        }
    }
}

type Started = Result<(u32, PathBuf), UblkError>;

impl Control {
    fn run<D: Disk>(
        self,
        disk: Arc<D>,
        info: pnfs_disk::DiskInfo,
        handle: Handle,
        counters: Arc<Counters>,
        started: mpsc::SyncSender<Started>,
    ) -> Result<(), UblkError> {
        let g = &self.geometry;
        let dev_id = match self.params.dev_id {
            Some(id) => i32::try_from(id)
                .map_err(|_| UblkError::InvalidConfig(format!("device id {id} is too large"))),
            None => Ok(-1),
        };
        let ctrl_flags = if self.params.recovery {
            RECOVERY_FLAGS
        } else {
            0
        };
        // The same control for a new device and for one being recovered; only the dev flag
        // and what a failure is called differ.
        let open_ctrl = |id: i32, dev_flags: UblkFlags, what: &'static str| {
            UblkCtrlBuilder::default()
                .name(&self.params.name)
                .id(id)
                .nr_queues(g.nr_queues)
                .depth(g.queue_depth)
                .io_buf_bytes(g.max_io_bytes)
                .ctrl_flags(ctrl_flags)
                .dev_flags(dev_flags)
                .build()
                .map_err(|e| UblkError::kernel(what, &e))
        };
        let ctrl = match self.mode {
            Mode::Add => dev_id
                .and_then(|id| open_ctrl(id, UblkFlags::UBLK_DEV_F_ADD_DEV, "adding the device")),
            Mode::Recover(id) => i32::try_from(id)
                .map_err(|_| UblkError::InvalidConfig(format!("device id {id} is too large")))
                .and_then(|id| start_user_recovery(id).map(|()| id))
                .and_then(|id| {
                    open_ctrl(
                        id,
                        UblkFlags::UBLK_DEV_F_RECOVER_DEV,
                        "opening the device to recover",
                    )
                }),
        };
        let ctrl = match ctrl {
            Ok(c) => c,
            Err(e) => {
                set_state(&self.state, DeviceState::Failed(e.to_string()));
                let _ = started.send(Err(e));
                return Ok(());
            }
        };
        let id = ctrl.dev_info().dev_id;
        let path = PathBuf::from(ctrl.get_bdev_path());
        let ctx = Arc::new(QueueCtx {
            disk,
            info,
            handle,
            counters,
            buf_bytes: g.max_io_bytes,
            dev_id: id,
            gate: Arc::clone(&self.gate),
        });
        let mut queues = Vec::new();
        let outcome = self.bring_up(&ctrl, &ctx, &mut queues);
        let dev = match outcome {
            Ok(dev) => {
                set_state(&self.state, DeviceState::Running);
                tracing::info!(
                    "ublk: {} {} (id {id}, {} queues x depth {}, {} bytes{})",
                    path.display(),
                    if self.mode == Mode::Add {
                        "up"
                    } else {
                        "recovered: the requests that waited are served now"
                    },
                    g.nr_queues,
                    g.queue_depth,
                    g.size_bytes,
                    if self.params.recovery {
                        ", survives a restart"
                    } else {
                        ""
                    }
                );
                let _ = started.send(Ok((id, path.clone())));
                Some(dev)
            }
            Err(e) => {
                tracing::error!("ublk: starting {}: {e}", path.display());
                set_state(&self.state, DeviceState::Failed(e.to_string()));
                let _ = started.send(Err(e));
                None
            }
        };
        let mut reason = None;
        let mut exited = 0usize;
        if let Some(d) = &dev {
            match self.ctl_rx.recv() {
                Ok(Ctl::Stop) | Err(_) => {}
                Ok(Ctl::Detach) => return self.detach(&ctrl, d, &path, queues),
                Ok(Ctl::QueueExited { qid, result }) => {
                    exited += 1;
                    reason = Some(format!("queue {qid} exited on its own: {result:?}"));
                }
            }
            set_state(&self.state, DeviceState::Stopping);
        }
        // STOP_DEV: the kernel drains in-flight requests, then aborts every fetch; the
        // queue threads see the abort and return.
        if let Err(e) = ctrl.kill_dev() {
            tracing::debug!("ublk: stop of device {id}: {}", describe_libublk(&e));
        }
        let deadline = Instant::now() + Duration::from_secs(STOP_TIMEOUT_SECS);
        while exited < queues.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.ctl_rx.recv_timeout(left) {
                Ok(Ctl::QueueExited { qid, result }) => {
                    exited += 1;
                    if let Err(e) = result {
                        reason.get_or_insert_with(|| format!("queue {qid}: {e}"));
                    }
                }
                Ok(Ctl::Stop | Ctl::Detach) => {}
                Err(_) => {
                    let why = format!(
                        "{} of {} queues did not stop within {STOP_TIMEOUT_SECS} s",
                        queues.len() - exited,
                        queues.len()
                    );
                    set_state(&self.state, DeviceState::Failed(why.clone()));
                    return Err(UblkError::Failed(why));
                }
            }
        }
        for q in queues {
            if q.join().is_err() {
                reason.get_or_insert_with(|| "a queue thread panicked".to_string());
            }
        }
        // Removes libublk's JSON file; the STOP itself was done above.
        if let Err(e) = ctrl.stop_dev() {
            tracing::debug!("ublk: second stop of device {id}: {}", describe_libublk(&e));
        }
        let started_ok = dev.is_some();
        // Closes /dev/ublkcN: the delete waits for that.
        drop(dev);
        let deleted = ctrl.del_dev();
        drop(ctrl);
        if let Err(e) = deleted {
            let e = UblkError::kernel("deleting the device", &e);
            reason.get_or_insert_with(|| e.to_string());
        }
        match reason {
            None if started_ok => {
                tracing::info!("ublk: {} stopped and deleted", path.display());
                set_state(&self.state, DeviceState::Stopped);
                Ok(())
            }
            None => Ok(()),
            Some(why) => {
                tracing::error!("ublk: {}: {why}", path.display());
                set_state(&self.state, DeviceState::Failed(why.clone()));
                Err(UblkError::Failed(why))
            }
        }
    }

    /// The hand-over: close the gate, wait for the running requests, and leave the device
    /// (and the queue threads, blocked in the kernel until the process exits) as they are.
    fn detach(
        &self,
        ctrl: &UblkCtrl,
        _dev: &Arc<UblkDev>,
        path: &Path,
        queues: Vec<JoinHandle<()>>,
    ) -> Result<(), UblkError> {
        let limit = Duration::from_secs(STOP_TIMEOUT_SECS);
        let running = self.gate.close_and_drain(limit);
        // Dropping the control must not delete the device any more.
        ctrl.disown();
        // The queue threads end with the process; the kernel then aborts their fetches.
        drop(queues);
        set_state(&self.state, DeviceState::Detached);
        if running > 0 {
            // They will not be answered (the gate holds them once they finish), so the next
            // process runs them again; but they may still touch the Disk while it closes.
            let why = format!(
                "{running} request(s) still running {STOP_TIMEOUT_SECS} s into the hand-over"
            );
            tracing::error!("ublk: {}: {why}", path.display());
            return Err(UblkError::Failed(why));
        }
        tracing::info!(
            "ublk: {} handed over: it stays, and its requests wait for the next process",
            path.display()
        );
        Ok(())
    }

    /// Creates the device object, the queue threads, and sends START_DEV.
    fn bring_up<D: Disk>(
        &self,
        ctrl: &UblkCtrl,
        ctx: &Arc<QueueCtx<D>>,
        queues: &mut Vec<JoinHandle<()>>,
    ) -> Result<Arc<UblkDev>, UblkError> {
        let g = &self.geometry;
        let kparams = g.kernel_params()?;
        let depth = g.queue_depth;
        let dev = UblkDev::new(
            self.params.name.clone(),
            |dev: &mut UblkDev| {
                dev.tgt.dev_size = g.size_bytes;
                dev.tgt.params = kparams;
                // One SQE per tag plus the eventfd poll; room for a CQE burst.
                dev.tgt.sq_depth = depth.saturating_add(1);
                dev.tgt.cq_depth = depth.saturating_add(1).saturating_mul(2);
                Ok(())
            },
            ctrl,
        )
        .map_err(|e| UblkError::kernel("opening the ublk char device", &e))?;
        let dev = Arc::new(dev);
        let (tid_tx, tid_rx) = mpsc::channel();
        for qid in 0..g.nr_queues {
            let (dev, ctx, tid_tx, ctl_tx) = (
                Arc::clone(&dev),
                Arc::clone(ctx),
                tid_tx.clone(),
                self.ctl_tx.clone(),
            );
            let name = format!("ublk{}-q{qid}", ctx.dev_id);
            let spawned = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || {
                    let tid = UblkCtrl::init_queue_thread();
                    let _ = tid_tx.send((qid, tid));
                    let result = run_queue(qid, &dev, &ctx);
                    if let Err(e) = &result {
                        tracing::error!("ublk: queue {qid}: {e}");
                    }
                    let _ = ctl_tx.send(Ctl::QueueExited { qid, result });
                });
            match spawned {
                Ok(h) => queues.push(h),
                Err(e) => {
                    return Err(UblkError::Thread {
                        name,
                        detail: e.to_string(),
                    })
                }
            }
        }
        drop(tid_tx);
        for _ in 0..g.nr_queues {
            let (qid, tid) = tid_rx
                .recv_timeout(Duration::from_secs(START_TIMEOUT_SECS))
                .map_err(|_| UblkError::Thread {
                    name: "ublk queue".into(),
                    detail: "did not report its thread id".into(),
                })?;
            if self.params.pin_queue_threads {
                ctrl.set_thread_affinity(qid, tid);
            }
            ctrl.configure_queue(&dev, qid, tid)
                .map_err(|e| UblkError::kernel("configuring a queue", &e))?;
        }
        ctrl.start_dev(&dev)
            .map_err(|e| UblkError::kernel("starting the device", &e))?;
        Ok(dev)
    }
}
