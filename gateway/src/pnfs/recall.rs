//! Callbacks: CB_LAYOUTRECALL (FILE / FSID / ALL), CB_RECALL_ANY, CB_NOTIFY_DEVICEID, and the
//! recovery notifications. Answers are immediate; the work (drain, commit, return) runs in
//! spawned tasks so the backchannel never waits on the fore channel.

use std::sync::Arc;

use pnfs_proto::nfs4::{LayoutIoMode, LayoutType, NfsStat, Stateid};

use super::layout::{
    commit, drain, reset_layout_state, return_range, salvage_uncommitted, seqid_newer,
    update_stateid,
};
use super::{FileCtx, Shared};
use crate::mds_api::{
    BoxFuture, CallbackSink, DeviceNotification, LayoutRecall, LayoutReturnArgs,
    LayoutReturnTarget, MetadataServer, RecallTarget, RCA4_TYPE_MASK_BLK_LAYOUT_BIT,
};
use crate::stats::Stats;

/// A closing file counts until its close has returned the layout (see `file_by_fh`).
fn holds_layout(f: &FileCtx) -> bool {
    let st = f.lock();
    st.layout_stateid.is_some() || !st.cache.is_empty()
}

/// Starts the return of `[start, end)` of `f` in a task (the range joins `recalls` now, so no
/// new direct I/O starts there from this moment).
fn spawn_return<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: Arc<FileCtx>,
    start: u64,
    end: u64,
    send_return: bool,
) {
    f.lock().recalls.push((start, end));
    spawn_return_recalled(sh, f, start, end, send_return);
}

/// [`spawn_return`] for a range the caller has already put into `recalls`.
fn spawn_return_recalled<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: Arc<FileCtx>,
    start: u64,
    end: u64,
    send_return: bool,
) {
    let sh = Arc::clone(sh);
    tokio::spawn(async move {
        if let Err(e) = return_range(&sh, &f, start, end, send_return).await {
            tracing::warn!(path = %f.open.path, error = %e, "layout return after recall failed");
        }
    });
}

/// Bulk (FSID / ALL) recall: every matching file drains, commits and forgets its layouts;
/// then one LAYOUTRETURN of the same kind (RFC 8881 §12.5.5.1).
///
/// Each file stays under recall (no new direct I/O, so no LAYOUTGET from the data path) and
/// its LAYOUTGET lock is held until that LAYOUTRETURN is answered. Between a file's own
/// commit and the bulk LAYOUTRETURN a write could otherwise take a layout again, write
/// through it, and then commit on a stateid the bulk LAYOUTRETURN had just returned.
fn spawn_bulk_return<M: MetadataServer>(sh: &Arc<Shared<M>>, files: Vec<Arc<FileCtx>>, fsid: bool) {
    for f in &files {
        let mut st = f.lock();
        // One entry is `return_range`'s (it removes it when done), one is held until the
        // bulk LAYOUTRETURN is answered.
        st.recalls.push((0, u64::MAX));
        st.recalls.push((0, u64::MAX));
    }
    let sh = Arc::clone(sh);
    tokio::spawn(async move {
        for f in &files {
            if let Err(e) = return_range(&sh, f, 0, u64::MAX, false).await {
                tracing::warn!(path = %f.open.path, error = %e, "bulk recall: commit failed");
            }
        }
        // No LAYOUTGET may cross the LAYOUTRETURN (RFC 8881 §12.5.5.2.1).
        let mut serials = Vec::with_capacity(files.len());
        for f in &files {
            serials.push(f.layoutget_lock.lock().await);
        }
        if let Some(any) = files.first() {
            Stats::inc(&sh.stats.layoutreturns);
            let args = LayoutReturnArgs {
                reclaim: false,
                layout_type: any.layout_type.unwrap_or(LayoutType::BlockVolume),
                iomode: LayoutIoMode::Any,
                target: if fsid {
                    LayoutReturnTarget::Fsid
                } else {
                    LayoutReturnTarget::All
                },
            };
            if let Err(e) = sh.mds.layout_return(&any.open, args).await {
                tracing::warn!(error = %e, "bulk LAYOUTRETURN failed");
            }
        }
        for f in &files {
            let mut st = f.lock();
            st.layout_stateid = None;
            st.cache.remove_range(0, u64::MAX);
            if let Some(i) = st.recalls.iter().position(|&r| r == (0, u64::MAX)) {
                st.recalls.remove(i);
            }
        }
        drop(serials);
        for f in &files {
            f.changed.notify_waiters();
        }
    });
}

/// Counts a recall of a layout `f` holds (a new one, not a re-send) and decides whether the
/// file backs off to the MDS ([`super::contention`]). On a back-off the file uses the MDS
/// until the period ends and its WHOLE layout goes under recall in the same critical section:
/// no new direct I/O starts anywhere in the file, requests wait (in `plan`) until the return
/// has drained the direct I/O in flight, committed what it wrote and returned the layout, and
/// only then go through the MDS. An MDS READ can then never miss a direct write of ours that
/// completed but was not yet committed, and an MDS WRITE never races our own direct write of
/// the same blocks; the other client's layout is recalled by the server before it executes
/// our MDS WRITE (nfsd's `break_layout`, the embedded MDS's `recall_file`).
fn contention_backoff<M: MetadataServer>(
    sh: &Shared<M>,
    f: &FileCtx,
    st: &mut super::FileState,
) -> bool {
    let now = tokio::time::Instant::now();
    let Some(until) = st.contention.on_recall(&sh.cfg.contention, now) else {
        return false;
    };
    Stats::inc(&sh.stats.contention_backoffs);
    tracing::info!(
        path = %f.open.path,
        period_ms = until.duration_since(now).as_millis(),
        "layout recalled again and again (another client uses the file): using the MDS for a while"
    );
    st.mds_only_until = Some(st.mds_only_until.map_or(until, |t| t.max(until)));
    st.recalls.push((0, u64::MAX));
    true
}

impl<M: MetadataServer> CallbackSink for Shared<M> {
    fn layout_recall(&self, recall: LayoutRecall) -> NfsStat {
        Stats::inc(&self.stats.recalls);
        let Some(sh) = self.self_arc() else {
            return NfsStat::NOMATCHING_LAYOUT;
        };
        if !matches!(
            recall.layout_type,
            LayoutType::BlockVolume | LayoutType::Scsi
        ) {
            return NfsStat::NOMATCHING_LAYOUT;
        }
        match recall.target {
            RecallTarget::File {
                fh,
                offset_bytes,
                length_bytes,
                stateid,
            } => {
                let Some(f) = self.file_by_fh(&fh) else {
                    return NfsStat::NOMATCHING_LAYOUT;
                };
                let backoff = {
                    let mut st = f.lock();
                    match st.layout_stateid {
                        None if st.layoutget_in_flight => return NfsStat::DELAY,
                        None => return NfsStat::NOMATCHING_LAYOUT,
                        Some(cur) if cur.other != stateid.other => {
                            return if st.layoutget_in_flight {
                                NfsStat::DELAY
                            } else {
                                NfsStat::NOMATCHING_LAYOUT
                            };
                        }
                        Some(cur) => {
                            // A recall more than one ahead means a LAYOUTGET reply we have not
                            // seen yet: let it land first (RFC 8881 §12.5.5.2.1.5).
                            if st.layoutget_in_flight
                                && seqid_newer(stateid.seqid, cur.seqid.wrapping_add(1))
                            {
                                return NfsStat::DELAY;
                            }
                        }
                    }
                    update_stateid(&mut st.layout_stateid, stateid);
                    let end = offset_bytes.saturating_add(length_bytes);
                    // Linux nfsd re-sends the same CB_LAYOUTRECALL every ~10 ms until the
                    // layout is returned: a return already running over this range answers
                    // it (it drops whatever we hold there, then LAYOUTRETURNs with the
                    // current stateid); one more task per re-send would only queue more
                    // LAYOUTRETURNs behind it.
                    if st
                        .recalls
                        .iter()
                        .any(|&(a, b)| a <= offset_bytes && end <= b)
                    {
                        return NfsStat::OK;
                    }
                    contention_backoff(self, &f, &mut st)
                };
                let end = offset_bytes.saturating_add(length_bytes);
                if backoff {
                    // The whole file was put under recall with the back-off: return it all.
                    spawn_return_recalled(&sh, f, 0, u64::MAX, true);
                } else {
                    spawn_return(&sh, f, offset_bytes, end, true);
                }
                NfsStat::OK
            }
            RecallTarget::Fsid { major, minor } => {
                let files: Vec<_> = self
                    .files()
                    .into_iter()
                    .filter(|f| f.open.fsid == (major, minor) && holds_layout(f))
                    .collect();
                if files.is_empty() {
                    return NfsStat::NOMATCHING_LAYOUT;
                }
                spawn_bulk_return(&sh, files, true);
                NfsStat::OK
            }
            RecallTarget::All => {
                let files: Vec<_> = self
                    .files()
                    .into_iter()
                    .filter(|f| holds_layout(f))
                    .collect();
                if files.is_empty() {
                    return NfsStat::NOMATCHING_LAYOUT;
                }
                spawn_bulk_return(&sh, files, false);
                NfsStat::OK
            }
        }
    }

    fn recall_any(&self, type_mask: u32, objects_to_keep: u32) -> NfsStat {
        Stats::inc(&self.stats.recall_anys);
        if type_mask & (1 << RCA4_TYPE_MASK_BLK_LAYOUT_BIT) == 0 {
            return NfsStat::OK;
        }
        let Some(sh) = self.self_arc() else {
            return NfsStat::OK;
        };
        let mut files: Vec<_> = self
            .files()
            .into_iter()
            .filter(|f| holds_layout(f))
            .collect();
        // Keep the most recently used `objects_to_keep` files' layouts.
        files.sort_by_key(|f| std::cmp::Reverse(f.lock().last_use));
        let keep = usize::try_from(objects_to_keep).unwrap_or(usize::MAX);
        for f in files.into_iter().skip(keep) {
            spawn_return(&sh, f, 0, u64::MAX, true);
        }
        NfsStat::OK
    }

    fn notify_deviceid(&self, notifications: &[DeviceNotification]) -> NfsStat {
        for n in notifications {
            let id = match n {
                DeviceNotification::Change { device_id, .. }
                | DeviceNotification::Delete { device_id, .. } => device_id,
            };
            tracing::info!(device = ?id, "device notification: cache entry dropped");
            self.devices.invalidate(id);
        }
        NfsStat::OK
    }

    fn server_restarted(&self) -> BoxFuture<()> {
        let Some(sh) = self.self_arc() else {
            return Box::pin(async {});
        };
        Box::pin(async move {
            for f in sh.files() {
                f.lock().recalls.push((0, u64::MAX));
                drain(&f, 0, u64::MAX).await;
                f.lock().layout_stateid = None;
                // Neither the commit lock nor the LAYOUTGET lock is taken here (nor
                // `return_range`, which takes both): a normal LAYOUTCOMMIT or a LAYOUTGET
                // holding them may be parked in the very recovery that awaits this future.
                // A parked commit redoes what is still pending afterwards (see `commit`).
                if let Err(e) = commit(&sh, &f, true).await {
                    tracing::error!(path = %f.open.path, error = %e, "reclaim LAYOUTCOMMIT failed: rewriting through the MDS");
                    // Every loss is logged and counted inside.
                    let _ = salvage_uncommitted(&sh, &f).await;
                }
                // Forget the layouts of the old server instance.
                {
                    let mut st = f.lock();
                    st.layout_stateid = None;
                    st.cache.remove_range(0, u64::MAX);
                    if let Some(i) = st.recalls.iter().position(|&r| r == (0, u64::MAX)) {
                        st.recalls.remove(i);
                    }
                }
                f.changed.notify_waiters();
            }
            sh.devices_clear();
        })
    }

    fn state_lost(&self) {
        for f in self.files() {
            let lost = f.lock().cache.uncommitted_count();
            if lost > 0 {
                tracing::error!(path = %f.open.path, pieces = lost, "client state lost: uncommitted block writes may be lost");
                Stats::add(&self.stats.request_errors, lost as u64);
            }
            {
                let mut st = f.lock();
                st.layout_stateid = None;
                st.recalls.push((0, u64::MAX));
            }
            tokio::spawn(async move {
                drain(&f, 0, u64::MAX).await;
                {
                    let mut st = f.lock();
                    st.cache.remove_range(0, u64::MAX);
                    if let Some(i) = st.recalls.iter().position(|&r| r == (0, u64::MAX)) {
                        st.recalls.remove(i);
                    }
                }
                f.changed.notify_waiters();
            });
        }
    }

    fn layout_stateids(&self) -> Vec<Stateid> {
        self.files()
            .iter()
            .filter_map(|f| f.lock().layout_stateid)
            .collect()
    }

    /// Each revoked file: new direct I/O waits, in-flight I/O drains, then the layout state is
    /// reset as after BAD_STATEID (a LAYOUTCOMMIT is tried; when refused, the uncommitted data
    /// is read back from the volume and written through the MDS), and the next request takes
    /// a new layout. Other files keep theirs.
    fn layouts_revoked(&self, revoked: &[Stateid]) {
        let Some(sh) = self.self_arc() else {
            return;
        };
        for f in self.files() {
            {
                let mut st = f.lock();
                if !st
                    .layout_stateid
                    .is_some_and(|s| revoked.iter().any(|r| r.other == s.other))
                {
                    continue;
                }
                // Forgotten now, so a second recovery (a SEQUENCE reply that carried the flag
                // before the FREE_STATEID) does not find it again; the commit below then goes
                // with the open stateid and is refused, which sends the data through the MDS.
                st.layout_stateid = None;
                st.recalls.push((0, u64::MAX));
            }
            Stats::inc(&self.stats.layouts_revoked);
            tracing::warn!(path = %f.open.path, "layout revoked by the server: dropping it");
            let sh = Arc::clone(&sh);
            tokio::spawn(async move {
                drain(&f, 0, u64::MAX).await;
                reset_layout_state(&sh, &f).await;
                {
                    let mut st = f.lock();
                    if let Some(i) = st.recalls.iter().position(|&r| r == (0, u64::MAX)) {
                        st.recalls.remove(i);
                    }
                }
                f.changed.notify_waiters();
            });
        }
    }
}
