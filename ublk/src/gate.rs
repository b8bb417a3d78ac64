//! The hand-over gate of one device: lets requests into the [`Disk`](pnfs_disk::Disk)
//! until the device is handed over to the next gateway process (user recovery), then holds
//! every new request unanswered and tells the control thread when the last running one has
//! finished.
//!
//! A held request is never completed by this process: when the process exits, the kernel
//! (with `UBLK_F_USER_RECOVERY_REISSUE`) re-queues it and issues it again to the process
//! that recovers the device. So after [`Gate::close_and_drain`] returns, nothing this process
//! does reaches the Disk any more, and a final commit of the Disk covers every write it
//! acknowledged.
//!
//! A request that was running when the gate closed is held as well once it finishes: no
//! answer leaves the process after the drain, so nothing it acknowledged can miss the commit.
//!
//! Cost on the request path: two atomic operations; the mutex and condition variable are
//! touched only while the gate is closed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    closed: AtomicBool,
    /// Requests inside the Disk right now.
    running: AtomicUsize,
    lock: Mutex<()>,
    drained: Condvar,
}

impl Gate {
    /// Enters the Disk; false when the gate is closed (the caller must hold the request and
    /// never answer it). A `true` must be paired with one [`Gate::leave`].
    pub(crate) fn enter(&self) -> bool {
        // Count first, then look: with the closer's "close, then read the count" (both SeqCst)
        // either it sees this request running or this request sees the gate closed.
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            let _ = self.leave();
            return false;
        }
        true
    }

    /// Leaves the Disk (the request's result is known); false when the gate has closed
    /// meanwhile (the caller must then hold the request, unanswered, as after a refused
    /// [`Gate::enter`]).
    pub(crate) fn leave(&self) -> bool {
        let before = self.running.fetch_sub(1, Ordering::SeqCst);
        if !self.closed.load(Ordering::SeqCst) {
            return true;
        }
        if before == 1 {
            // Under the lock, so that a closer between its check and its wait cannot miss it.
            let _held = self
                .lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.drained.notify_all();
        }
        false
    }

    /// Closes the gate and waits until no request is inside the Disk, at most `limit`.
    /// Returns how many are still running when the limit passed (0: drained).
    pub(crate) fn close_and_drain(&self, limit: Duration) -> usize {
        self.closed.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + limit;
        let mut held = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let running = self.running.load(Ordering::SeqCst);
            let left = deadline.saturating_duration_since(Instant::now());
            if running == 0 || left.is_zero() {
                return running;
            }
            held = match self.drained.wait_timeout(held, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn open_gate_lets_requests_in_and_a_closed_one_holds_them() {
        let g = Gate::default();
        assert!(g.enter());
        assert!(g.leave());
        assert_eq!(g.close_and_drain(Duration::from_secs(1)), 0);
        assert!(!g.enter(), "a closed gate let a request in");
        assert_eq!(g.running.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn close_waits_for_the_running_request_and_no_longer() {
        let g = Arc::new(Gate::default());
        assert!(g.enter());
        let (tx, rx) = std::sync::mpsc::channel();
        let closer = {
            let g = Arc::clone(&g);
            std::thread::spawn(move || {
                let left = g.close_and_drain(Duration::from_secs(60));
                tx.send(left).unwrap();
            })
        };
        // The closer must still be waiting: the request is inside.
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert!(
            !g.leave(),
            "a request that ends after the close must not be answered"
        );
        assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), 0);
        closer.join().unwrap();
    }

    #[test]
    fn drain_gives_up_at_its_limit_and_says_how_many_run() {
        let g = Gate::default();
        assert!(g.enter());
        assert!(g.enter());
        assert_eq!(g.close_and_drain(Duration::from_millis(20)), 2);
    }
}
