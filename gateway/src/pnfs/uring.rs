//! `O_DIRECT` volume reads and writes through one io_uring per volume, completed on the tokio
//! runtime (the ring's fd is registered with the runtime's reactor), so a request costs no
//! hop to a blocking thread and back: the worker submits, the reactor sees the completion.
//!
//! Safety of the buffers: an operation's buffer and file handle live in the ring's slot
//! table, not in the future, until the kernel has posted the completion; a dropped future
//! only marks its slot abandoned. If the ring goes away with operations still in the kernel,
//! their buffers are leaked rather than freed under the device.
//!
//! The ring is bound to the runtime that first used it: when that runtime's reactor stops,
//! the ring is marked dead, operations still waiting fail with an error (the engine then
//! uses the MDS), and the volume uses its blocking-pool path from then on.
//!
//! Submissions are batched: an operation pushes its entry and the ring's task submits all
//! pushed entries in one `io_uring_enter` when it runs (after the pushing task yields).
//!
//! Unlike `spawn_blocking`, an operation in the ring does not hold back tokio's paused-clock
//! auto-advance: tests that pause time should not do volume I/O on `O_DIRECT` volumes.

use crate::sync::LockExt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, types, IoUring};
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use bytes::Bytes;
use pnfs_disk::plug::Unplug;

use super::aligned::{AlignedBuf, DIRECT_IO_ALIGN_BYTES};

/// Submission queue entries of one volume's ring.
const RING_ENTRIES: u32 = 256;
/// Operations in flight on one ring at most (the completion queue holds twice the entries).
const RING_MAX_IN_FLIGHT: usize = 256;
/// Attempts of one `io_uring_enter` submit before the ring is given up.
const SUBMIT_ATTEMPTS: u32 = 3;
/// Resubmissions of one short read or write before giving up with EIO.
const MAX_SHORT_RETRIES: u32 = 16;

/// The memory of one operation: an aligned buffer the kernel reads into or writes from, or
/// shared bytes (aligned, e.g. a frontend's buffer passed on as `Bytes`) that a write sends
/// without a copy. Either is kept alive by the slot until the completion.
enum IoMem {
    Buf(AlignedBuf),
    Shared(Bytes),
}

/// One operation's state, owned by the ring until its completion is reaped.
struct Slot {
    /// The buffer the kernel reads into or writes from.
    buf: Option<IoMem>,
    /// Keeps the file descriptor open while the kernel uses it.
    _file: Arc<File>,
    /// The completion result (bytes or -errno), once reaped.
    result: Option<i32>,
    /// Who to wake on completion.
    waker: Option<Waker>,
    /// The future was dropped: free the slot when the completion arrives.
    abandoned: bool,
    /// Holds a place in the in-flight budget until the completion.
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
}

impl Slots {
    fn insert(&mut self, slot: Slot) -> usize {
        if let Some(i) = self.free.pop() {
            self.slots[i] = Some(slot);
            i
        } else {
            self.slots.push(Some(slot));
            self.slots.len() - 1
        }
    }

    fn remove(&mut self, i: usize) -> Option<Slot> {
        let s = self.slots.get_mut(i)?.take();
        if s.is_some() {
            self.free.push(i);
        }
        s
    }
}

struct Shared {
    ring: Mutex<IoUring>,
    slots: Mutex<Slots>,
    alive: AtomicBool,
    budget: Arc<Semaphore>,
    /// Signalled when the volume drops its ring: the reaper task ends.
    closing: Notify,
    /// Entries pushed to the submission queue and not yet submitted to the kernel.
    unsubmitted: AtomicBool,
    /// Wakes the reaper task to submit what was pushed (see [`RingHandle::one`]).
    kick: Notify,
    /// `io_uring_enter` calls that submitted entries (for tests of the batching).
    submit_calls: AtomicU64,
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock_unpoisoned()
    }

    fn ring(&self) -> MutexGuard<'_, IoUring> {
        self.ring.lock_unpoisoned()
    }

    /// Submits every entry pushed since the last submit in one `io_uring_enter` (the
    /// requests a frontend decoded from one socket read go to the kernel together: one
    /// system call and one block-layer plug for all of them). Retries a failing submit a
    /// few times, then marks the ring dead (waiting operations fail and fall back).
    fn submit_pending(&self) {
        if !self.unsubmitted.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut ok = false;
        {
            let mut ring = self.ring();
            if ring.submission().is_empty() {
                // A second kick for entries an earlier submit already took.
                return;
            }
            for _ in 0..SUBMIT_ATTEMPTS {
                if ring.submit().is_ok() {
                    self.submit_calls.fetch_add(1, Ordering::Relaxed);
                    ok = true;
                    break;
                }
            }
        }
        if !ok {
            tracing::warn!("volume io_uring: submit keeps failing; using the blocking pool");
            self.kill();
        }
    }

    /// Moves every posted completion into its slot and wakes the waiters.
    fn reap(&self) {
        let done: Vec<(u64, i32)> = {
            let mut ring = self.ring();
            ring.completion()
                .map(|c| (c.user_data(), c.result()))
                .collect()
        };
        if done.is_empty() {
            return;
        }
        let mut wake = Vec::with_capacity(done.len());
        {
            let mut slots = self.slots();
            for (user_data, res) in done {
                let Ok(i) = usize::try_from(user_data) else {
                    continue;
                };
                let abandoned = match slots.slots.get_mut(i) {
                    Some(Some(s)) => {
                        s.result = Some(res);
                        wake.extend(s.waker.take());
                        s.abandoned
                    }
                    _ => false,
                };
                if abandoned {
                    slots.remove(i);
                }
            }
        }
        for w in wake {
            w.wake();
        }
    }

    /// Marks the ring dead and fails every waiting operation (their buffers stay in the
    /// slots until the ring is dropped, see [`Drop for Shared`]).
    fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        let wake: Vec<Waker> = self
            .slots()
            .slots
            .iter_mut()
            .flatten()
            .filter_map(|s| s.waker.take())
            .collect();
        for w in wake {
            w.wake();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Operations without a completion may still be in the kernel after the ring fd
        // closes (teardown is asynchronous): never free their buffers.
        let slots = self.slots.get_mut().unwrap_or_else(|p| p.into_inner());
        for s in slots.slots.iter_mut().flatten() {
            if s.result.is_none() {
                if let Some(b) = s.buf.take() {
                    std::mem::forget(b);
                }
            }
        }
    }
}

impl Unplug for Shared {
    /// Submits, then reaps what completed inside the submit (a read from a RAM-backed or
    /// cached device often does): those requests go on at once on the plugging thread
    /// instead of after a wake of the ring's task and a wake back.
    fn unplug(&self) {
        self.submit_pending();
        self.reap();
    }
}

/// The ring's fd for the reactor; holds the ring (which owns the fd) so the fd stays open as
/// long as it is registered.
struct RingFd {
    raw: RawFd,
    _ring: Arc<Shared>,
}

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.raw
    }
}

/// Marks the ring dead when the reaper task ends (its runtime shut down or the fd failed).
struct ReaperGuard(Arc<Shared>);

impl Drop for ReaperGuard {
    fn drop(&mut self) {
        self.0.kill();
    }
}

/// The ring's task: submits what operations pushed (woken by `kick`) and moves completions
/// to their slots (woken by the ring fd's readiness).
async fn reaper(shared: Arc<Shared>, fd: AsyncFd<RingFd>) {
    let _guard = ReaperGuard(Arc::clone(&shared));
    loop {
        let readable = tokio::select! {
            biased;
            () = shared.closing.notified() => return,
            () = shared.kick.notified() => None,
            r = fd.readable() => Some(r),
        };
        match readable {
            None => {}
            Some(Ok(mut ready)) => ready.clear_ready(),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "volume io_uring: readiness failed; using the blocking pool");
                return;
            }
        }
        shared.submit_pending();
        shared.reap();
    }
}

/// A ring whose completions wait for the reaping thread's next system call instead of
/// interrupting it (`IORING_SETUP_COOP_TASKRUN`, Linux 5.19): a completion that arrives
/// while the runtime's thread runs costs no inter-processor interrupt (a VM exit on a
/// virtual machine); the thread makes a system call (socket, submit, `epoll_wait`) within
/// microseconds, and a sleeping thread is still woken. Kernels without the flag refuse it
/// with `EINVAL`: then a plain ring.
fn new_ring() -> io::Result<IoUring> {
    match IoUring::builder().setup_coop_taskrun().build(RING_ENTRIES) {
        Ok(r) => Ok(r),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::new(RING_ENTRIES),
        Err(e) => Err(e),
    }
}

/// One volume's io_uring (dropping it ends its reaper task).
pub(super) struct VolumeRing {
    handle: RingHandle,
}

impl Drop for VolumeRing {
    fn drop(&mut self) {
        self.handle.shared.closing.notify_one();
    }
}

impl std::fmt::Debug for VolumeRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeRing")
            .field("alive", &self.is_alive())
            .finish()
    }
}

/// What an operation's future holds of the ring.
pub(super) struct RingHandle {
    shared: Arc<Shared>,
}

impl VolumeRing {
    /// A ring whose completions are reaped on the current tokio runtime; `None` outside a
    /// runtime or where io_uring is unavailable (the caller uses the blocking pool).
    pub(super) fn new() -> Option<Self> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let ring = match new_ring() {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "volume io_uring unavailable: using the blocking pool");
                return None;
            }
        };
        let raw = ring.as_raw_fd();
        let shared = Arc::new(Shared {
            ring: Mutex::new(ring),
            slots: Mutex::new(Slots::default()),
            alive: AtomicBool::new(true),
            budget: Arc::new(Semaphore::new(RING_MAX_IN_FLIGHT)),
            closing: Notify::new(),
            unsubmitted: AtomicBool::new(false),
            kick: Notify::new(),
            submit_calls: AtomicU64::new(0),
        });
        let fd = {
            let _enter = handle.enter();
            let ring_fd = RingFd {
                raw,
                _ring: Arc::clone(&shared),
            };
            // SAFETY: `raw` is the ring's fd, owned by the IoUring inside `shared`, which
            // `ring_fd` keeps alive: it stays open and the same for the AsyncFd's lifetime.
            match unsafe { AsyncFd::register_with_interest(ring_fd, tokio::io::Interest::READABLE) }
            {
                Ok(fd) => fd,
                Err(e) => {
                    tracing::info!(error = %e, "volume io_uring: cannot poll the ring; using the blocking pool");
                    return None;
                }
            }
        };
        handle.spawn(reaper(Arc::clone(&shared), fd));
        Some(Self {
            handle: RingHandle { shared },
        })
    }

    /// False once the runtime that reaps this ring is gone.
    pub(super) fn is_alive(&self) -> bool {
        self.handle.shared.alive.load(Ordering::SeqCst)
    }

    /// `io_uring_enter` calls that submitted entries so far.
    pub(super) fn submit_calls(&self) -> u64 {
        self.handle.shared.submit_calls.load(Ordering::Relaxed)
    }

    /// A handle for one operation's future.
    pub(super) fn clone_handle(&self) -> RingHandle {
        RingHandle {
            shared: Arc::clone(&self.handle.shared),
        }
    }
}

impl RingHandle {
    /// Submits one read (`write == false`) or write of `buf[at..at + len]` at `offset` and
    /// waits for it; returns the buffer and the result (bytes or -errno).
    async fn one(
        &self,
        file: &Arc<File>,
        write: bool,
        offset: u64,
        mut buf: IoMem,
        at: usize,
        len: usize,
    ) -> io::Result<(IoMem, i32)> {
        let permit = acquire_owned_fast(&self.shared.budget)
            .await
            .map_err(|_| io::Error::other("volume io_uring closed"))?;
        let len_u32 = u32::try_from(len).map_err(|e| io::Error::other(e.to_string()))?;
        let outside = || io::Error::other("volume io_uring: range outside the buffer");
        let ptr = match &mut buf {
            IoMem::Buf(b) => b
                .as_mut_slice()
                .get_mut(at..at + len)
                .ok_or_else(outside)?
                .as_mut_ptr(),
            // Shared bytes are only ever written from: the kernel reads them.
            IoMem::Shared(_) if !write => {
                return Err(io::Error::other(
                    "volume io_uring: a read into shared bytes",
                ))
            }
            IoMem::Shared(b) => b.get(at..at + len).ok_or_else(outside)?.as_ptr().cast_mut(),
        };
        let fd = types::Fd(file.as_raw_fd());
        let sqe = if write {
            opcode::Write::new(fd, ptr, len_u32).offset(offset).build()
        } else {
            opcode::Read::new(fd, ptr, len_u32).offset(offset).build()
        };
        let idx = self.shared.slots().insert(Slot {
            buf: Some(buf),
            _file: Arc::clone(file),
            result: None,
            waker: None,
            abandoned: false,
            _permit: permit,
        });
        let user_data = u64::try_from(idx).map_err(|e| io::Error::other(e.to_string()))?;
        let op = OpFuture {
            shared: &self.shared,
            idx,
            done: false,
        };
        let pushed = {
            let mut ring = self.shared.ring();
            let entry = sqe.user_data(user_data);
            // SAFETY: the SQE points into the slot's buffer and names the slot's file; both
            // stay alive in the slot table until the completion is reaped (or are leaked if
            // the ring dies first), so the kernel never sees freed memory or a reused fd.
            let mut pushed = unsafe { ring.submission().push(&entry) }.is_ok();
            if !pushed {
                // The queue is full of entries not yet submitted: submit them, try again.
                if ring.submit().is_ok() {
                    self.shared.submit_calls.fetch_add(1, Ordering::Relaxed);
                }
                // SAFETY: as above.
                pushed = unsafe { ring.submission().push(&entry) }.is_ok();
            }
            pushed
        };
        if !pushed {
            // Never pushed: nothing is in the kernel, the slot can go with its buffer.
            drop(op.forget());
            return Err(io::Error::other("volume io_uring: submission queue full"));
        }
        // Once pushed the entry belongs to the kernel side: the slot stays until its
        // completion. The submit itself is left to the ring's task, which runs once the
        // caller's task yields, so that every operation pushed until then goes in one
        // `io_uring_enter` (a first push wakes it; later ones find it woken already).
        if !self.shared.unsubmitted.swap(true, Ordering::AcqRel) {
            // A frontend thread holding a plug (a ublk queue thread) submits the batch
            // itself when it is done; otherwise the ring's task does.
            let unplug: Arc<dyn Unplug> = Arc::clone(&self.shared) as Arc<dyn Unplug>;
            if !pnfs_disk::plug::defer(&unplug) {
                self.shared.kick.notify_one();
            }
        }
        op.await
    }

    /// Reads exactly `len` bytes at `offset` into `buf[at..at + len]` (resubmitting short
    /// reads).
    pub(super) async fn read(
        &self,
        file: &Arc<File>,
        offset: u64,
        buf: AlignedBuf,
        at: usize,
        len: usize,
    ) -> io::Result<AlignedBuf> {
        match self
            .full(file, false, offset, IoMem::Buf(buf), at, len)
            .await?
        {
            IoMem::Buf(b) => Ok(b),
            IoMem::Shared(_) => Err(io::Error::other("volume io_uring: buffer swapped")),
        }
    }

    /// Writes all of `buf[at..at + len]` at `offset` (resubmitting short writes).
    pub(super) async fn write(
        &self,
        file: &Arc<File>,
        offset: u64,
        buf: AlignedBuf,
        at: usize,
        len: usize,
    ) -> io::Result<AlignedBuf> {
        match self
            .full(file, true, offset, IoMem::Buf(buf), at, len)
            .await?
        {
            IoMem::Buf(b) => Ok(b),
            IoMem::Shared(_) => Err(io::Error::other("volume io_uring: buffer swapped")),
        }
    }

    /// True when `data` can be written by [`RingHandle::write_bytes`]: its memory is aligned
    /// for `O_DIRECT` (the length is checked by the volume with the offset).
    pub(super) fn bytes_aligned(data: &Bytes) -> bool {
        (data.as_ptr() as usize) % DIRECT_IO_ALIGN_BYTES == 0
    }

    /// Writes all of `data` at `offset` straight from its memory, which must be aligned for
    /// `O_DIRECT` ([`RingHandle::bytes_aligned`]): no copy into a buffer of our own.
    pub(super) async fn write_bytes(
        &self,
        file: &Arc<File>,
        offset: u64,
        data: Bytes,
    ) -> io::Result<()> {
        let len = data.len();
        self.full(file, true, offset, IoMem::Shared(data), 0, len)
            .await
            .map(drop)
    }

    async fn full(
        &self,
        file: &Arc<File>,
        write: bool,
        offset: u64,
        mut buf: IoMem,
        at: usize,
        len: usize,
    ) -> io::Result<IoMem> {
        let mut done = 0usize;
        let mut retries = 0u32;
        while done < len {
            let (b, res) = self
                .one(
                    file,
                    write,
                    offset + done as u64,
                    buf,
                    at + done,
                    len - done,
                )
                .await?;
            buf = b;
            match usize::try_from(res) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "volume io_uring: no progress (past the end?)",
                    ))
                }
                Ok(n) => done += n.min(len - done),
                Err(_) if res == -libc::EINTR || res == -libc::EAGAIN => {}
                Err(_) => return Err(io::Error::from_raw_os_error(-res)),
            }
            retries += 1;
            if done < len && retries > MAX_SHORT_RETRIES {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        Ok(buf)
    }
}

/// A permit of `budget`, without building the waiting future when one is free (the usual
/// case: the acquire future and its poll were a few hundred instructions per operation). A
/// free permit means nobody waits (released permits go to waiters first), so this never
/// jumps a queue.
async fn acquire_owned_fast(
    budget: &Arc<Semaphore>,
) -> Result<OwnedSemaphorePermit, tokio::sync::AcquireError> {
    match Arc::clone(budget).try_acquire_owned() {
        Ok(p) => Ok(p),
        Err(_) => Arc::clone(budget).acquire_owned().await,
    }
}

/// Waits for slot `idx` to complete.
struct OpFuture<'a> {
    shared: &'a Arc<Shared>,
    idx: usize,
    done: bool,
}

impl OpFuture<'_> {
    /// Frees a slot that was never submitted and returns its buffer.
    fn forget(mut self) -> Option<IoMem> {
        self.done = true;
        self.shared.slots().remove(self.idx).and_then(|s| s.buf)
    }
}

impl Future for OpFuture<'_> {
    type Output = io::Result<(IoMem, i32)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut slots = this.shared.slots();
        let Some(Some(slot)) = slots.slots.get_mut(this.idx) else {
            this.done = true;
            return Poll::Ready(Err(io::Error::other("volume io_uring: lost operation")));
        };
        if let Some(res) = slot.result {
            let buf = slot.buf.take();
            slots.remove(this.idx);
            this.done = true;
            return Poll::Ready(
                buf.map(|b| (b, res))
                    .ok_or_else(|| io::Error::other("volume io_uring: buffer missing")),
            );
        }
        if !this.shared.alive.load(Ordering::SeqCst) {
            // Leave the slot (and its buffer) to the ring: the kernel may still use it.
            slot.abandoned = true;
            this.done = true;
            return Poll::Ready(Err(io::Error::other(
                "volume io_uring: the runtime reaping this ring has stopped",
            )));
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for OpFuture<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.shared.slots();
        match slots.slots.get_mut(self.idx) {
            Some(Some(s)) if s.result.is_some() => {
                slots.remove(self.idx);
            }
            Some(Some(s)) => {
                s.abandoned = true;
                s.waker = None;
            }
            _ => {}
        }
    }
}
