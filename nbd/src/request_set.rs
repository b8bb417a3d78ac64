//! The requests in flight on one connection, polled inside the connection's own task.
//!
//! A task per request costs a spawn, a wake of another worker thread and a hand-off of the
//! reply to a writer task: on a 4 KiB request that is more than the request itself. Here the
//! connection's task polls its requests, and each request gets a waker of its own that
//! records which request to poll and wakes the connection's task, so a completion costs one
//! poll of the request it completes (not of every request in flight).

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

/// A slot's future: its allocation is made once and reused by every request the slot holds
/// (`None` between requests), so a request costs no allocation of its own here.
type SlotFuture<F> = Pin<Box<Option<F>>>;

/// The requests that were woken, and the connection task to wake when one is.
#[derive(Default)]
struct Woken {
    /// Slot indices to poll (a slot may appear more than once; extra polls are harmless).
    slots: Vec<usize>,
    /// The connection task's waker (the last one that polled the set).
    task: Option<Waker>,
}

struct WakeQueue(Mutex<Woken>);

impl WakeQueue {
    fn lock(&self) -> MutexGuard<'_, Woken> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The waker of one slot.
struct SlotWaker {
    slot: usize,
    queue: Arc<WakeQueue>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let task = {
            let mut w = self.queue.lock();
            w.slots.push(self.slot);
            w.task.clone()
        };
        if let Some(t) = task {
            t.wake();
        }
    }
}

struct Slot<F> {
    fut: SlotFuture<F>,
    /// Built once per slot and reused by every request the slot holds.
    waker: Waker,
}

/// An unordered set of request futures of one type `F` (at most as many as the connection
/// allows in flight, which bounds the slot table).
pub(crate) struct RequestSet<F> {
    slots: Vec<Slot<F>>,
    free: Vec<usize>,
    queue: Arc<WakeQueue>,
    /// Woken slots taken from the queue, still to poll.
    to_poll: Vec<usize>,
    len: usize,
}

impl<F: Future> RequestSet<F> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            queue: Arc::new(WakeQueue(Mutex::new(Woken::default()))),
            to_poll: Vec::new(),
            len: 0,
        }
    }

    /// Requests not yet completed.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds a request; it is first polled by the next [`RequestSet::poll_next`].
    pub(crate) fn push(&mut self, fut: F) {
        let i = if let Some(i) = self.free.pop() {
            self.slots[i].fut.as_mut().set(Some(fut));
            i
        } else {
            let i = self.slots.len();
            let waker = Waker::from(Arc::new(SlotWaker {
                slot: i,
                queue: Arc::clone(&self.queue),
            }));
            self.slots.push(Slot {
                fut: Box::pin(Some(fut)),
                waker,
            });
            i
        };
        self.len += 1;
        self.to_poll.push(i);
    }

    /// The next completed request's output; `Ready(None)` when the set is empty.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        {
            let mut w = self.queue.lock();
            if !w.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                w.task = Some(cx.waker().clone());
            }
            self.to_poll.append(&mut w.slots);
        }
        while let Some(i) = self.to_poll.pop() {
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            let Some(fut) = slot.fut.as_mut().as_pin_mut() else {
                // A late wake of a slot whose request already completed.
                continue;
            };
            let mut scx = Context::from_waker(&slot.waker);
            if let Poll::Ready(out) = fut.poll(&mut scx) {
                slot.fut.as_mut().set(None);
                self.free.push(i);
                self.len -= 1;
                return Poll::Ready(Some(out));
            }
        }
        Poll::Pending
    }

    /// Waits for the next completed request (`None` when the set is empty).
    pub(crate) async fn next(&mut self) -> Option<F::Output> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

/// Runs a future and turns a panic inside it into `Err(message)`, so that a bug met by one
/// request fails that request (the connection answers it with an error) instead of unwinding
/// through the connection's task and ending every request on it. The future is dropped after
/// a panic and never polled again.
pub(crate) struct CatchPanic<F> {
    /// Pinned in place with the `CatchPanic` (no allocation of its own): never moved out,
    /// only polled or dropped in place.
    fut: Option<F>,
}

impl<F: Future> CatchPanic<F> {
    pub(crate) fn new(fut: F) -> Self {
        Self { fut: Some(fut) }
    }

    fn project(self: Pin<&mut Self>) -> Pin<&mut Option<F>> {
        // SAFETY: structural pinning of `fut`: `CatchPanic` has no `Drop` of its own and
        // `fut` is never moved out of a pinned `CatchPanic` (it is only polled in place or
        // replaced in place through `Pin::set`, which drops the old value where it lies).
        unsafe { self.map_unchecked_mut(|s| &mut s.fut) }
    }
}

/// The text of a panic payload (`panic!` with a message gives `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.project();
        let Some(fut) = slot.as_mut().as_pin_mut() else {
            return Poll::Ready(Err("polled after a panic".to_string()));
        };
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => {
                slot.set(None);
                Poll::Ready(Err(panic_message(payload.as_ref())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    /// Tests push futures of different types.
    type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

    #[tokio::test]
    async fn completes_in_completion_order_and_reuses_slots() {
        let mut set: RequestSet<Boxed<u32>> = RequestSet::new();
        assert_eq!(set.next().await, None);
        let mut senders = Vec::new();
        for n in 0..4u32 {
            let (tx, rx) = oneshot::channel::<()>();
            senders.push(Some(tx));
            set.push(Box::pin(async move {
                rx.await.ok();
                n
            }));
        }
        assert_eq!(set.len(), 4);
        // Complete them out of order: each comes out as it completes.
        for n in [2u32, 0, 3, 1] {
            let tx = senders[n as usize].take().unwrap();
            tx.send(()).unwrap();
            assert_eq!(set.next().await, Some(n));
        }
        assert_eq!(set.len(), 0);
        assert_eq!(set.next().await, None);
        // Slots are reused: the table does not grow past the most in flight at once.
        set.push(Box::pin(async { 7 }));
        assert_eq!(set.next().await, Some(7));
        assert_eq!(set.slots.len(), 4);
    }

    /// Completes at its first poll and wakes itself on the way (a late wake); a second poll
    /// is a bug of the set and fails the test.
    struct CompletesAndWakesItself {
        done: bool,
    }

    impl Future for CompletesAndWakesItself {
        type Output = u32;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            assert!(!self.done, "a completed request was polled again");
            self.done = true;
            cx.waker().wake_by_ref();
            Poll::Ready(5)
        }
    }

    #[tokio::test]
    async fn a_late_wake_of_a_completed_request_does_not_poll_it_again() {
        let mut set: RequestSet<Boxed<u32>> = RequestSet::new();
        set.push(Box::pin(std::future::pending()));
        set.push(Box::pin(CompletesAndWakesItself { done: false }));
        assert_eq!(set.next().await, Some(5));
        // Its wake queued its slot again while the other request still runs: the next poll
        // of the set must skip the emptied slot, not poll the finished future in it.
        let next = std::future::poll_fn(|cx| Poll::Ready(set.poll_next(cx))).await;
        assert!(next.is_pending());
        assert_eq!(set.len(), 1);
    }

    #[tokio::test]
    async fn a_panic_becomes_an_error_of_that_future_only() {
        let r = CatchPanic::new(async {
            if std::hint::black_box(true) {
                panic!("boom in one request");
            }
            1u32
        })
        .await;
        assert_eq!(r, Err("boom in one request".to_string()));
        assert_eq!(CatchPanic::new(async { 2u32 }).await, Ok(2));
    }

    #[tokio::test]
    async fn a_pending_set_wakes_the_task_when_one_request_completes() {
        let mut set: RequestSet<Boxed<&'static str>> = RequestSet::new();
        let (tx, rx) = oneshot::channel::<()>();
        set.push(Box::pin(async move {
            rx.await.ok();
            "done"
        }));
        set.push(Box::pin(std::future::pending()));
        let waiter = tokio::spawn(async move {
            let out = set.next().await;
            (out, set.len())
        });
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        let (out, left) = waiter.await.unwrap();
        assert_eq!(out, Some("done"));
        assert_eq!(left, 1);
    }
}
