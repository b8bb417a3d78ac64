//! One queue thread: libublk's per-queue io_uring, a local executor with one task per tag,
//! and the bridge to the tokio runtime the [`Disk`] needs.
//!
//! The bridge, without busy waiting and without a thread hop per request:
//! - Each tag task (on the queue thread) decodes and validates its request and polls the
//!   Disk call itself, inside the tokio runtime's context ([`Handle::enter`] around every
//!   poll), so `spawn_blocking`, timers and sockets inside the disk work as on a tokio worker.
//!   A read goes through [`Disk::read_into`] straight into the tag's I/O buffer, a write
//!   hands it on through [`Disk::write_from`] (`crate::request::TagBuf`). A disk that
//!   answers without waiting (a RAM disk, a cache hit) completes with no thread switch at all.
//! - The queue thread sleeps in `io_uring_enter`, not in the executor, so a waker alone does
//!   not wake it. Every queue has an eventfd with an `IORING_OP_POLL_ADD` armed on its ring
//!   by a small "kick" task. The Disk future is polled with a waker that wakes the tag task
//!   and then writes the eventfd (at most one write until the queue thread has drained it, an
//!   `AtomicBool` coalesces); the poll completes, `io_uring_enter` returns, the executor
//!   runs the woken tasks, and they commit their results with
//!   `UBLK_U_IO_COMMIT_AND_FETCH_REQ`.
//! - The executor runs under a [`pnfs_disk::plug::Plug`]: a disk that submits its I/O from
//!   another thread (the gateway's volume io_uring) leaves the submission to the plug, and it
//!   happens on this thread after the round, for all requests of the round in one go.
//! - A Disk call that panics completes its request with `-ESHUTDOWN` (the panic is caught
//!   at the poll), never takes the queue thread down or hangs the queue.

use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use libublk::helpers::IoBuf;
use libublk::io::{UblkDev, UblkQueue};
use libublk::uring_async::{
    ublk_reap_io_events_with_update_queue, ublk_submit_sqe_async, ublk_wake_task,
};
use libublk::{BufDesc, UblkUringData};
use pnfs_disk::{Disk, DiskError, DiskErrorKind, DiskInfo};
use tokio::runtime::Handle;

use crate::error::describe_libublk;
use crate::request::{decode, execute, failure_result, Request, TagBuf};

/// How long a queue waits without events before libublk marks it idle (and releases its
/// buffers' pages).
const QUEUE_IDLE_SECS: u64 = 20;
/// Consecutive failures of the eventfd poll before the kick task gives up.
const MAX_KICK_FAILURES: u32 = 16;

/// Request counters of one device, shared by its queues.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub flushes: AtomicU64,
    pub discards: AtomicU64,
    pub write_zeroes: AtomicU64,
    pub errors: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
}

/// What every queue of a device shares.
pub(crate) struct QueueCtx<D> {
    pub disk: Arc<D>,
    pub info: DiskInfo,
    pub handle: Handle,
    pub counters: Arc<Counters>,
    pub buf_bytes: u32,
    pub dev_id: u32,
    /// Closed when the device is handed over to the next process (user recovery).
    pub gate: Arc<crate::gate::Gate>,
}

/// The eventfd the tokio side writes to wake one queue thread.
#[derive(Debug)]
struct Kicker {
    efd: OwnedFd,
    /// A write is outstanding that the queue thread has not drained yet.
    pending: AtomicBool,
}

impl Kicker {
    fn new() -> std::io::Result<Self> {
        // SAFETY: eventfd takes no pointers; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: `fd` is a fresh descriptor this struct now owns alone.
            efd: unsafe { OwnedFd::from_raw_fd(fd) },
            pending: AtomicBool::new(false),
        })
    }

    /// Wakes the queue thread (from any thread).
    fn kick(&self) {
        if self.pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        let n = unsafe {
            libc::write(
                self.efd.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n < 0 {
            // Only EAGAIN (counter at its maximum) is possible, and then a wakeup is pending.
            tracing::debug!("ublk eventfd write: {}", std::io::Error::last_os_error());
        }
    }

    /// Clears the counter (queue thread, after the poll fired); kicks from now on write.
    ///
    /// Read first, then clear `pending`: a kick between the two writes nothing, but its
    /// task was woken before it and the executor (running this) picks it up next. The
    /// other order loses wakeups: a kick between clear and read would be read away while
    /// `pending` stays set, and no later kick would write again.
    fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from an eventfd we own.
        let n = unsafe {
            libc::read(
                self.efd.as_raw_fd(),
                std::ptr::from_mut(&mut value).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n < 0 {
            tracing::trace!("ublk eventfd read: {}", std::io::Error::last_os_error());
        }
        self.pending.store(false, Ordering::SeqCst);
    }
}

/// A waker for a Disk future polled on the queue thread: wakes the tag task, then the queue
/// thread (which may be asleep in `io_uring_enter`).
struct KickWaker {
    task: Waker,
    kicker: Arc<Kicker>,
}

impl Wake for KickWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.task.wake_by_ref();
        self.kicker.kick();
    }
}

/// Polls a Disk future on the queue thread inside the tokio runtime's context, with a
/// [`KickWaker`]; a panic in the future becomes a `Shutdown` error.
struct OnRuntime<'a, F> {
    fut: Pin<&'a mut F>,
    handle: &'a Handle,
    kicker: &'a Arc<Kicker>,
    /// The task waker the cached kick waker wraps, and that kick waker.
    waker: Option<(Waker, Waker)>,
}

impl<T, F: Future<Output = Result<T, DiskError>>> Future for OnRuntime<'_, F> {
    type Output = Result<T, DiskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let kick = match &this.waker {
            Some((task, kick)) if task.will_wake(cx.waker()) => kick.clone(),
            _ => {
                let kick = Waker::from(Arc::new(KickWaker {
                    task: cx.waker().clone(),
                    kicker: Arc::clone(this.kicker),
                }));
                this.waker = Some((cx.waker().clone(), kick.clone()));
                kick
            }
        };
        let _runtime = this.handle.enter();
        let mut inner_cx = Context::from_waker(&kick);
        let fut = this.fut.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.poll(&mut inner_cx))) {
            Ok(p) => p,
            Err(_) => Poll::Ready(Err(DiskError::new(
                DiskErrorKind::Shutdown,
                "the disk panicked while handling the request",
            ))),
        }
    }
}

/// Runs `fut` (a Disk call) to completion on this thread, in the runtime's context.
async fn on_runtime<T, F: Future<Output = Result<T, DiskError>>>(
    fut: F,
    handle: &Handle,
    kicker: &Arc<Kicker>,
) -> Result<T, DiskError> {
    let fut = std::pin::pin!(fut);
    OnRuntime {
        fut,
        handle,
        kicker,
        waker: None,
    }
    .await
}

/// Keeps a POLL_ADD armed on the eventfd; each completion drains it and re-arms.
async fn kick_task(kicker: Arc<Kicker>) {
    let mut failures = 0u32;
    loop {
        let mask = u32::try_from(libc::POLLIN).unwrap_or(1);
        let sqe = io_uring::opcode::PollAdd::new(io_uring::types::Fd(kicker.efd.as_raw_fd()), mask)
            .build();
        match ublk_submit_sqe_async(sqe, UblkUringData::Target as u64).await {
            Ok(res) if res >= 0 => failures = 0,
            Ok(res) => {
                failures += 1;
                tracing::error!(
                    "ublk: eventfd poll failed: {}",
                    std::io::Error::from_raw_os_error(-res)
                );
            }
            Err(e) => {
                failures += 1;
                tracing::error!("ublk: eventfd poll submit failed: {}", describe_libublk(&e));
            }
        }
        kicker.drain();
        if failures >= MAX_KICK_FAILURES {
            tracing::error!(
                "ublk: giving up on the eventfd poll; the queue can no longer complete requests"
            );
            return;
        }
    }
}

/// Handles one request of `tag`; returns the kernel result (bytes or -errno).
async fn handle_request<D: Disk>(
    q: &UblkQueue<'_>,
    tag: u16,
    buf: &mut TagBuf<IoBuf<u8>>,
    ctx: &QueueCtx<D>,
    kicker: &Arc<Kicker>,
) -> i32 {
    let iod = q.get_iod(tag);
    let (op_flags, start_sector, nr_sectors) = (iod.op_flags, iod.start_sector, iod.nr_sectors);
    let c = &ctx.counters;
    let request = match decode(&ctx.info, op_flags, start_sector, nr_sectors, ctx.buf_bytes) {
        Ok(r) => r,
        Err(e) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(dev = ctx.dev_id, tag, "ublk: request refused: {e}");
            return failure_result(&e);
        }
    };
    if !ctx.gate.enter() {
        // Handed over: never answered here; the kernel issues it again to the next process.
        return std::future::pending().await;
    }
    let result = on_runtime(execute(&*ctx.disk, &request, buf), &ctx.handle, kicker).await;
    if !ctx.gate.leave() {
        // Finished after the hand-over began: unanswered too, so that no answer leaves this
        // process after its final commit (the next process runs the request again).
        return std::future::pending().await;
    }
    match result {
        Ok(n) => {
            match request {
                Request::Read { range } => {
                    c.reads.fetch_add(1, Ordering::Relaxed);
                    c.bytes_read
                        .fetch_add(range.length_bytes(), Ordering::Relaxed);
                }
                Request::Write { range, .. } => {
                    c.writes.fetch_add(1, Ordering::Relaxed);
                    c.bytes_written
                        .fetch_add(range.length_bytes(), Ordering::Relaxed);
                }
                Request::Flush => {
                    c.flushes.fetch_add(1, Ordering::Relaxed);
                }
                Request::Discard { .. } => {
                    c.discards.fetch_add(1, Ordering::Relaxed);
                }
                Request::WriteZeroes { .. } => {
                    c.write_zeroes.fetch_add(1, Ordering::Relaxed);
                }
            }
            i32::try_from(n).unwrap_or(-libc::EOVERFLOW)
        }
        Err(e) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(dev = ctx.dev_id, tag, ?request, "ublk: request failed: {e}");
            failure_result(&e)
        }
    }
}

/// One tag's life: register its buffer and fetch, then handle and commit until the queue
/// goes down.
async fn serve_tag<D: Disk>(
    q: &UblkQueue<'_>,
    tag: u16,
    ctx: &QueueCtx<D>,
    kicker: &Arc<Kicker>,
) -> Result<(), libublk::UblkError> {
    let len = usize::try_from(ctx.buf_bytes).unwrap_or(usize::MAX);
    let home = IoBuf::<u8>::new(len);
    q.submit_io_prep_cmd(tag, BufDesc::Slice(home.as_slice()), 0, Some(&home))
        .await?;
    let mut buf = TagBuf::new(home);
    loop {
        let res = handle_request(q, tag, &mut buf, ctx, kicker).await;
        q.submit_io_commit_cmd(tag, BufDesc::Slice(buf.current()), res)
            .await?;
    }
}

/// Runs queue `qid` of `dev` on the calling thread until the device stops. Errors are
/// returned as text for the control thread's report.
pub(crate) fn run_queue<D: Disk>(qid: u16, dev: &UblkDev, ctx: &QueueCtx<D>) -> Result<(), String> {
    let setup = Kicker::new()
        .map_err(|e| format!("eventfd: {e}"))
        .and_then(|k| {
            UblkQueue::new(qid, dev)
                .map(|q| (Arc::new(k), Rc::new(q)))
                .map_err(|e| format!("queue setup: {}", describe_libublk(&e)))
        });
    let (kicker, q) = match setup {
        Ok(v) => v,
        Err(e) => {
            // start_dev waits for every queue's buffer registration: report this queue as
            // done-but-failed so it returns an error instead of waiting forever.
            dev.notify_buffer_registration_complete(true);
            return Err(e);
        }
    };
    let exe = smol::LocalExecutor::new();
    let tags: Vec<_> = q
        .tags()
        .map(|tag| {
            let q = Rc::clone(&q);
            let kicker = Arc::clone(&kicker);
            exe.spawn(async move { serve_tag(&q, tag, ctx, &kicker).await })
        })
        .collect();
    let kick = exe.spawn(kick_task(Arc::clone(&kicker)));
    let idle = io_uring::types::Timespec::new().sec(QUEUE_IDLE_SECS);
    let mut failure = None;
    loop {
        {
            // The disk's I/O for every request this round started is submitted here, in one
            // go, when the plug ends: no wake of another thread to submit it.
            let _plug = pnfs_disk::plug::Plug::start();
            while exe.try_tick() {}
        }
        // Requests whose I/O completed inside the unplug's submit finish now.
        while exe.try_tick() {}
        if tags.iter().all(smol::Task::is_finished) {
            break;
        }
        let args = io_uring::types::SubmitArgs::new().timespec(&idle);
        let waited = libublk::with_task_io_ring_mut(|r| r.submitter().submit_with_args(1, &args));
        let timed_out = match waited {
            Ok(_) => false,
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => true,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                ) =>
            {
                false
            }
            Err(e) => {
                failure = Some(format!("io_uring_enter: {e}"));
                break;
            }
        };
        if let Err(e) = ublk_reap_io_events_with_update_queue(&q, timed_out, None, |cqe| {
            ublk_wake_task(cqe.user_data(), cqe);
        }) {
            failure = Some(format!("reaping completions: {}", describe_libublk(&e)));
            break;
        }
    }
    drop(kick);
    for task in tags {
        if !task.is_finished() {
            continue;
        }
        match smol::block_on(task) {
            Ok(()) | Err(libublk::UblkError::QueueIsDown) => {}
            Err(e) => {
                failure.get_or_insert_with(|| format!("tag task: {}", describe_libublk(&e)));
            }
        }
    }
    match failure {
        None => Ok(()),
        Some(f) => Err(f),
    }
}
