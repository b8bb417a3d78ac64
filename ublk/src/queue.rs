//! One queue thread: libublk's per-queue io_uring, a local executor with one task per tag,
//! and the bridge to the tokio runtime that runs the [`Disk`].
//!
//! The bridge, without busy waiting:
//! - Each tag task (on the queue thread) decodes and validates its request, copies write data
//!   into `Bytes`, spawns the Disk call on the tokio [`Handle`] and awaits a
//!   `tokio::sync::oneshot` receiver (runtime-agnostic: it only needs a waker).
//! - The queue thread sleeps in `io_uring_enter`, not in the executor, so a waker alone does
//!   not wake it. Every queue has an eventfd with an `IORING_OP_POLL_ADD` armed on its ring
//!   by a small "kick" task. The tokio side sends the result (waking the tag task) and then
//!   writes the eventfd (at most one write until the queue thread has drained it, an
//!   `AtomicBool` coalesces); the poll completes, `io_uring_enter` returns, the executor
//!   runs the woken tasks, and they commit their results with
//!   `UBLK_U_IO_COMMIT_AND_FETCH_REQ`.
//! - A `Reply` guard kicks also when it is dropped unsent (a panicking Disk, a runtime
//!   shutting down): the request then completes with `-ESHUTDOWN`, never hangs the queue.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use libublk::helpers::IoBuf;
use libublk::io::{UblkDev, UblkQueue};
use libublk::uring_async::{
    ublk_reap_io_events_with_update_queue, ublk_submit_sqe_async, ublk_wake_task,
};
use libublk::{BufDesc, UblkUringData};
use pnfs_gateway::disk::{Disk, DiskError, DiskErrorKind, DiskInfo};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::describe_libublk;
use crate::request::{decode, execute, failure_result, Outcome, Request};

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

type ReplyResult = Result<Outcome, DiskError>;

/// The tokio side's handle on one request: sends the result, and wakes the queue thread
/// whether it was sent or dropped.
struct Reply {
    tx: Option<oneshot::Sender<ReplyResult>>,
    kicker: Arc<Kicker>,
}

impl Reply {
    fn send(mut self, result: ReplyResult) {
        if let Some(tx) = self.tx.take() {
            // The receiver is gone only if the queue thread is; nothing left to tell.
            let _ = tx.send(result);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.kicker.kick();
    }
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
    buf: &mut [u8],
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
    let data = match &request {
        Request::Write { length_bytes, .. } => {
            let len = usize::try_from(*length_bytes).unwrap_or(usize::MAX);
            buf.get(..len).map(Bytes::copy_from_slice)
        }
        _ => None,
    };
    let (tx, rx) = oneshot::channel();
    let reply = Reply {
        tx: Some(tx),
        kicker: Arc::clone(kicker),
    };
    let disk = Arc::clone(&ctx.disk);
    let req = request.clone();
    // If the runtime is shutting down the task is dropped, and so is `reply`.
    drop(ctx.handle.spawn(async move {
        let result = execute(&*disk, req, data).await;
        reply.send(result);
    }));
    let result = rx.await.unwrap_or_else(|_| {
        Err(DiskError::new(
            DiskErrorKind::Shutdown,
            "the request was dropped by the runtime (shutdown or a panic in the disk)",
        ))
    });
    match result {
        Ok(Outcome::Data(bytes)) => {
            let Some(dst) = buf.get_mut(..bytes.len()) else {
                c.errors.fetch_add(1, Ordering::Relaxed);
                return -libc::EIO;
            };
            dst.copy_from_slice(&bytes);
            c.reads.fetch_add(1, Ordering::Relaxed);
            c.bytes_read
                .fetch_add(u64::try_from(bytes.len()).unwrap_or(0), Ordering::Relaxed);
            i32::try_from(bytes.len()).unwrap_or(-libc::EOVERFLOW)
        }
        Ok(Outcome::Done(n)) => {
            match request {
                Request::Write { length_bytes, .. } => {
                    c.writes.fetch_add(1, Ordering::Relaxed);
                    c.bytes_written
                        .fetch_add(u64::from(length_bytes), Ordering::Relaxed);
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
                Request::Read { .. } => {}
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
    let mut buf = IoBuf::<u8>::new(len);
    q.submit_io_prep_cmd(tag, BufDesc::Slice(buf.as_slice()), 0, Some(&buf))
        .await?;
    loop {
        let res = handle_request(q, tag, buf.as_mut_slice(), ctx, kicker).await;
        q.submit_io_commit_cmd(tag, BufDesc::Slice(buf.as_slice()), res)
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
