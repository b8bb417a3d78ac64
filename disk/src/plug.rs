//! Plugging: a frontend thread that starts a batch of requests at once (a ublk queue thread
//! running every tag task its ring woke) holds a [`Plug`] while it does. A disk that would
//! otherwise wake another thread to submit its I/O (the gateway's volume io_uring is submitted
//! by a task on the tokio runtime) hands the submission to the plug with [`defer`] instead;
//! it runs on this thread when the plug is dropped: one submission for the whole batch and
//! no thread hop before the I/O reaches the kernel. Without a plug, [`defer`] returns false
//! and the disk submits as it always does.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;

/// Something whose deferred submissions run when the plug ends.
pub trait Unplug: Send + Sync {
    /// Submits what was deferred (on the thread that held the plug).
    fn unplug(&self);
}

thread_local! {
    /// The current thread's plug: None when no plug is held.
    static PLUGGED: RefCell<Option<Vec<Arc<dyn Unplug>>>> = const { RefCell::new(None) };
}

/// Held while a thread starts a batch of requests; runs the deferred submissions when
/// dropped. Not `Send`: it belongs to the thread that took it. Plugs do not nest (a second
/// one on the same thread is inert; the first one's drop submits everything).
#[derive(Debug)]
pub struct Plug {
    outer: bool,
    _thread_bound: PhantomData<*const ()>,
}

impl Plug {
    /// Starts plugging on the current thread.
    pub fn start() -> Self {
        let outer = PLUGGED.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_some() {
                return false;
            }
            *p = Some(Vec::new());
            true
        });
        Self {
            outer,
            _thread_bound: PhantomData,
        }
    }
}

impl Drop for Plug {
    fn drop(&mut self) {
        if !self.outer {
            return;
        }
        // Taken out first: an unplug that defers again (it cannot, no plug is held now)
        // or panics leaves the thread unplugged.
        let deferred = PLUGGED.with(|p| p.borrow_mut().take()).unwrap_or_default();
        for u in deferred {
            u.unplug();
        }
    }
}

/// Defers `u`'s submission to the current thread's plug (once per plug, however often it is
/// deferred). False when this thread holds no plug: the caller submits as usual.
pub fn defer(u: &Arc<dyn Unplug>) -> bool {
    PLUGGED.with(|p| {
        let mut p = p.borrow_mut();
        let Some(list) = p.as_mut() else {
            return false;
        };
        if !list.iter().any(|d| Arc::ptr_eq(d, u)) {
            list.push(Arc::clone(u));
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Default)]
    struct Count(AtomicU32);

    impl Unplug for Count {
        fn unplug(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn deferred_submissions_run_once_when_the_outer_plug_ends() {
        let c = Arc::new(Count::default());
        let u: Arc<dyn Unplug> = c.clone();
        assert!(!defer(&u), "no plug held");
        {
            let _plug = Plug::start();
            assert!(defer(&u) && defer(&u));
            {
                let _inner = Plug::start();
                assert!(defer(&u));
            }
            assert_eq!(
                c.0.load(Ordering::SeqCst),
                0,
                "the inner plug submits nothing"
            );
        }
        assert_eq!(c.0.load(Ordering::SeqCst), 1, "once for the batch");
        assert!(!defer(&u), "unplugged again");
        // Another thread has no plug of its own.
        let _plug = Plug::start();
        let u2 = Arc::clone(&u);
        assert!(!std::thread::spawn(move || defer(&u2)).join().unwrap());
    }
}
