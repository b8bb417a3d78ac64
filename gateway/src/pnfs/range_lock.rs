//! Byte-range write locks: writes whose server-block-expanded ranges overlap run one at a
//! time, so read-modify-write of a block never loses a concurrent write to the same block.

use crate::sync::LockExt;
use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    held: Vec<(u64, u64, u64)>,
    next_id: u64,
}

/// A set of held ranges.
#[derive(Debug, Default)]
pub(super) struct RangeLocks {
    inner: Mutex<Inner>,
    released: Notify,
}

/// Held while a write runs; releases on drop.
#[derive(Debug)]
pub(super) struct RangeGuard<'a> {
    locks: &'a RangeLocks,
    id: u64,
}

impl RangeLocks {
    /// Waits until `[start, end)` overlaps no held range, then holds it.
    pub(super) async fn lock(&self, start: u64, end: u64) -> RangeGuard<'_> {
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut g = self.inner.lock_unpoisoned();
                if !g.held.iter().any(|&(_, s, e)| start < e && s < end) {
                    let id = g.next_id;
                    g.next_id += 1;
                    g.held.push((id, start, end));
                    return RangeGuard { locks: self, id };
                }
            }
            notified.await;
        }
    }
}

impl Drop for RangeGuard<'_> {
    fn drop(&mut self) {
        let mut g = self.locks.inner.lock_unpoisoned();
        g.held.retain(|&(id, _, _)| id != self.id);
        drop(g);
        self.locks.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn overlapping_ranges_wait_disjoint_do_not() {
        let locks = Arc::new(RangeLocks::default());
        let g = locks.lock(0, 4096).await;
        let _other = locks.lock(4096, 8192).await;
        let l2 = Arc::clone(&locks);
        let waiter = tokio::spawn(async move {
            let _g = l2.lock(100, 200).await;
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        drop(g);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("released")
            .expect("task");
    }
}
