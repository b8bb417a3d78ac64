//! One poison-tolerant lock for the gateway and the crates built on it.
//!
//! A mutex here guards state that stays consistent at every unlock (no invariant spans a
//! panic point), so a panic in another holder must not take the whole gateway down with it:
//! the guard is taken whatever the poison flag says. This trait is the one place that says so,
//! instead of `unwrap_or_else(PoisonError::into_inner)` at every call site.
//!
//! The embedded MDS (`pnfs-mds`) has its own copy on purpose: it depends on the protocol crate
//! only, never on the gateway, so that the gateway's tests against it cannot pass by sharing
//! code with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// [`Mutex::lock`] that ignores poisoning.
pub trait LockExt<T: ?Sized> {
    /// Locks, taking the guard even if another holder panicked.
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> LockExt<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_holder_does_not_lock_others_out() {
        let m = std::sync::Arc::new(Mutex::new(5));
        let m2 = m.clone();
        let panicked = std::thread::spawn(move || {
            let _g = m2.lock_unpoisoned();
            panic!("holder panics");
        })
        .join();
        assert!(panicked.is_err());
        assert!(m.is_poisoned());
        assert_eq!(*m.lock_unpoisoned(), 5);
    }
}
