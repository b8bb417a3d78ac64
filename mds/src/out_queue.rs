//! The records waiting to be written to one client connection (replies, and callbacks on a
//! back channel), bounded in bytes.
//!
//! A connection's reader handles one request at a time and hands the reply to the
//! connection's writer task. A client that pipelines requests and does not read the replies
//! (a READ reply is up to [`crate::nfs::MAX_IO_BYTES`]) would grow this queue without bound,
//! so the reader waits ([`OutQueue::wait_for_room`]) before each request while more than
//! [`MAX_QUEUED_REPLY_BYTES`] are queued: the client's own requests then back up in TCP.
//! One reply (or callback) may go past the bound, so the queue holds at most the bound plus
//! one record.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

/// Queued bytes above which a connection's requests are no longer read.
pub const MAX_QUEUED_REPLY_BYTES: usize = 8 << 20;

/// One connection's outgoing records. The writer task owns the receiving end.
#[derive(Debug)]
pub struct OutQueue {
    tx: UnboundedSender<Vec<u8>>,
    /// Bytes sent into the queue and not yet written to the socket.
    queued_bytes: AtomicUsize,
    /// Woken whenever the writer has written a record, or has stopped.
    drained: Notify,
    /// The writer has stopped (the connection is going away).
    closed: AtomicBool,
    /// The largest `queued_bytes` seen on any connection of the server.
    peak_bytes: Arc<AtomicUsize>,
}

impl OutQueue {
    /// A new queue that reports its high-water mark into `peak_bytes`, and the receiver the
    /// connection's writer reads from.
    pub fn new(peak_bytes: Arc<AtomicUsize>) -> (Arc<Self>, UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = unbounded_channel();
        let q = Self {
            tx,
            queued_bytes: AtomicUsize::new(0),
            drained: Notify::new(),
            closed: AtomicBool::new(false),
            peak_bytes,
        };
        (Arc::new(q), rx)
    }

    /// Queues a record; false when the writer is gone.
    pub fn send(&self, record: Vec<u8>) -> bool {
        let n = record.len();
        let now = self.queued_bytes.fetch_add(n, Ordering::AcqRel) + n;
        self.peak_bytes.fetch_max(now, Ordering::AcqRel);
        if self.tx.send(record).is_err() {
            self.queued_bytes.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// The writer has written a record of `n` bytes.
    pub fn written(&self, n: usize) {
        self.queued_bytes.fetch_sub(n, Ordering::AcqRel);
        self.drained.notify_waiters();
    }

    /// The writer has stopped: nobody waits for room any more.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.drained.notify_waiters();
    }

    /// Returns once at most [`MAX_QUEUED_REPLY_BYTES`] are queued, or the writer has stopped.
    pub async fn wait_for_room(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a record written in between still wakes us.
            drained.as_mut().enable();
            if self.closed.load(Ordering::Acquire)
                || self.queued_bytes.load(Ordering::Acquire) <= MAX_QUEUED_REPLY_BYTES
            {
                return;
            }
            drained.await;
        }
    }
}
