//! The fore-channel slot table (RFC 8881 §2.10.6): one sequence id per slot, the server-set
//! number of slots, `highest_slotid` sent with each request, and the server's
//! `target_highest_slotid` to shrink or grow the usable range. Callers wait for a free slot
//! without polling.

use crate::sync::LockExt;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use pnfs_proto::nfs4::{SequenceId, SlotId};

/// Hard upper bound on slots, whatever the server grants.
pub const MAX_SLOTS: u32 = 256;

#[derive(Debug)]
struct State {
    /// Last sequence id used on each slot (the next request uses +1).
    seqids: Vec<SequenceId>,
    busy: Vec<bool>,
    /// Slots `0..=usable_highest` may be handed out.
    usable_highest: SlotId,
    closed: bool,
}

/// The slot table of one session.
#[derive(Debug)]
pub struct SlotTable {
    state: Mutex<State>,
    freed: Notify,
}

/// A slot taken for one request. Drop it without [`SlotGuard::complete`] when the server
/// never processed the SEQUENCE (the sequence id stays unused); call `complete` when it did.
#[derive(Debug)]
pub struct SlotGuard {
    table: Arc<SlotTable>,
    /// The slot.
    pub slot: SlotId,
    /// The sequence id to send.
    pub seqid: SequenceId,
    /// The `highest_slotid` to send.
    pub highest_slotid: SlotId,
    released: bool,
}

impl SlotTable {
    /// A table of `max_slots` slots (the server's `ca_maxrequests`), clamped to 1..=[`MAX_SLOTS`].
    pub fn new(max_slots: u32) -> Arc<Self> {
        let n = max_slots.clamp(1, MAX_SLOTS);
        let len = usize::try_from(n).unwrap_or(1);
        Arc::new(Self {
            state: Mutex::new(State {
                seqids: vec![0; len],
                busy: vec![false; len],
                usable_highest: n - 1,
                closed: false,
            }),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock_unpoisoned()
    }

    /// Number of slots the server granted.
    pub fn max_slots(&self) -> usize {
        self.lock().seqids.len()
    }

    /// Highest slot currently handed out (for tests and stats).
    pub fn usable_highest(&self) -> SlotId {
        self.lock().usable_highest
    }

    /// Wakes all waiters with `None` from now on (the session is gone).
    pub fn close(&self) {
        self.lock().closed = true;
        self.freed.notify_waiters();
    }

    /// Takes the lowest free usable slot, waiting for one if all are busy. `None` when the
    /// table was closed.
    pub async fn acquire(self: &Arc<Self>) -> Option<SlotGuard> {
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if st.closed {
                    return None;
                }
                let limit = usize::try_from(st.usable_highest).unwrap_or(0) + 1;
                if let Some(i) = st.busy.iter().take(limit).position(|b| !b) {
                    st.busy[i] = true;
                    let highest = st.busy.iter().rposition(|b| *b).unwrap_or(i);
                    let slot = SlotId::try_from(i).unwrap_or(0);
                    return Some(SlotGuard {
                        table: self.clone(),
                        slot,
                        seqid: st.seqids[i].wrapping_add(1),
                        highest_slotid: SlotId::try_from(highest).unwrap_or(slot),
                        released: false,
                    });
                }
            }
            notified.await;
        }
    }

    /// Applies `sr_highest_slotid` / `sr_target_highest_slotid` from a SEQUENCE reply.
    pub fn update_limits(&self, highest_slotid: SlotId, target_highest_slotid: SlotId) {
        let mut st = self.lock();
        let len = SlotId::try_from(st.seqids.len()).unwrap_or(MAX_SLOTS);
        let grow_to = highest_slotid
            .max(target_highest_slotid)
            .saturating_add(1)
            .min(MAX_SLOTS);
        if grow_to > len {
            // The server may raise the slot count above the negotiated value (dynamic growth);
            // new slots start at sequence id 0 (first request uses 1).
            let n = usize::try_from(grow_to).unwrap_or(st.seqids.len());
            st.seqids.resize(n, 0);
            st.busy.resize(n, false);
        }
        let len = SlotId::try_from(st.seqids.len()).unwrap_or(MAX_SLOTS);
        let new_highest = target_highest_slotid.min(highest_slotid).min(len - 1);
        let grew = new_highest > st.usable_highest;
        st.usable_highest = new_highest;
        drop(st);
        if grew {
            self.freed.notify_waiters();
        }
    }

    /// Reacts to NFS4ERR_BADSLOT / BAD_HIGH_SLOT: the slot is beyond what the server has now.
    pub fn shrink_below(&self, slot: SlotId) {
        let mut st = self.lock();
        st.usable_highest = st.usable_highest.min(slot.saturating_sub(1));
    }

    fn release(&self, slot: SlotId, used_seqid: Option<SequenceId>) {
        let mut st = self.lock();
        let i = usize::try_from(slot).unwrap_or(usize::MAX);
        if i < st.busy.len() {
            st.busy[i] = false;
            if let Some(seq) = used_seqid {
                st.seqids[i] = seq;
            }
        }
        drop(st);
        self.freed.notify_one();
    }
}

impl SlotGuard {
    /// The server processed the SEQUENCE (any reply other than a SEQUENCE-level error):
    /// the sequence id is consumed; frees the slot.
    pub fn complete(mut self) {
        self.released = true;
        self.table.release(self.slot, Some(self.seqid));
    }

    /// The server did not process this sequence id (SEQUENCE failed before executing):
    /// frees the slot with its sequence id unchanged.
    pub fn abandon(mut self) {
        self.released = true;
        self.table.release(self.slot, None);
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if !self.released {
            // Outcome unknown (a lost connection or a cancelled caller): keep the slot's sequence
            // id as if the request executed, since the server may have seen it; the next request
            // on the slot then uses seqid+1, which the server accepts either way (RFC 8881
            // §2.10.6.1: a new request is seqid+1 of the last *processed* one, and a server that
            // never saw this one answers SEQ_MISORDERED, handled by [`SlotTable::resync`]).
            self.table.release(self.slot, Some(self.seqid));
        }
    }
}

impl SlotTable {
    /// After NFS4ERR_SEQ_MISORDERED for `seqid` on `slot`: the server's last seqid is one
    /// less than what we believed; step back so the next request uses the one it expects.
    pub fn resync(&self, slot: SlotId, seqid_sent: SequenceId) {
        let mut st = self.lock();
        let i = usize::try_from(slot).unwrap_or(usize::MAX);
        if i < st.seqids.len() {
            st.seqids[i] = seqid_sent.wrapping_sub(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sequence_ids_advance_only_when_completed() {
        let t = SlotTable::new(2);
        let g = t.acquire().await.unwrap();
        assert_eq!((g.slot, g.seqid, g.highest_slotid), (0, 1, 0));
        g.complete();
        let g = t.acquire().await.unwrap();
        assert_eq!((g.slot, g.seqid), (0, 2));
        g.abandon();
        let g0 = t.acquire().await.unwrap();
        assert_eq!((g0.slot, g0.seqid), (0, 2));
        let g1 = t.acquire().await.unwrap();
        assert_eq!((g1.slot, g1.seqid, g1.highest_slotid), (1, 1, 1));
        g0.complete();
        g1.complete();
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_when_a_slot_frees_and_target_shrinks_and_grows() {
        let t = SlotTable::new(4);
        t.update_limits(3, 0);
        assert_eq!(t.usable_highest(), 0);
        let g = t.acquire().await.unwrap();
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { t2.acquire().await.map(|g| (g.slot, g.seqid)) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !waiter.is_finished(),
            "only one slot usable: the second caller waits"
        );
        g.complete();
        assert_eq!(waiter.await.unwrap(), Some((0, 2)));
        // Growth beyond the negotiated count (server raised its target).
        t.update_limits(7, 7);
        assert_eq!(t.max_slots(), 8);
        let gs: Vec<_> = futures_take(&t, 8).await;
        assert_eq!(gs.iter().map(|g| g.slot).max(), Some(7));
        t.close();
        assert!(t.acquire().await.is_none());
    }

    async fn futures_take(t: &Arc<SlotTable>, n: usize) -> Vec<SlotGuard> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(t.acquire().await.unwrap());
        }
        v
    }

    #[tokio::test]
    async fn badslot_shrinks_and_misordered_resyncs() {
        let t = SlotTable::new(4);
        t.shrink_below(2);
        assert_eq!(t.usable_highest(), 1);
        let g = t.acquire().await.unwrap();
        let (slot, seq) = (g.slot, g.seqid);
        drop(g); // unknown outcome: treated as used
        let g = t.acquire().await.unwrap();
        assert_eq!(g.seqid, seq + 1);
        t.resync(slot, g.seqid);
        g.abandon();
        let g = t.acquire().await.unwrap();
        assert_eq!(g.seqid, seq);
        g.complete();
    }
}
