//! LAYOUTGET, LAYOUTCOMMIT and LAYOUTRETURN for one file, with the layout stateid rules of
//! RFC 8881 §12.5.5.2 and the error handling of docs/requirements.md §pNFS layer (C1–C4).

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pnfs_proto::layout::block::{BlockLayout, BlockLayoutUpdate};
use pnfs_proto::layout::scsi::{ScsiLayout, ScsiLayoutUpdate, ScsiRange};
use pnfs_proto::layout::{Extent, ExtentState, ValidExtents};
use pnfs_proto::nfs4::{DeviceId, LayoutType, NfsStat, NfsTime, Stateid};
use pnfs_proto::xdr::{from_bytes, to_bytes};
use tokio::time::Instant;

use super::contention::{jitter_seed, layoutget_retry_pause};
use super::device::{register_pr_keys, resolve_block_device, resolve_scsi_device, ResolvedDevice};
use super::extent_cache::{CommitRange, PieceState};
use super::{align_down, align_up, overlaps, FileCtx, PnfsError, Shared};
use crate::mds_api::{
    LayoutCommitArgs, LayoutGetArgs, LayoutReturnArgs, LayoutReturnTarget, MdsErrorKind,
    MetadataServer, StateidArg, NOTIFY_DEVICEID4_CHANGE_MASK, NOTIFY_DEVICEID4_DELETE_MASK,
};
use crate::stats::Stats;

/// True if seqid `a` is newer than `b` (serial number arithmetic, RFC 8881 §12.5.5.2).
pub(super) fn seqid_newer(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < (1 << 31)
}

/// Applies a layout stateid from a LAYOUTGET/LAYOUTRETURN reply or a recall.
pub(super) fn update_stateid(cur: &mut Option<Stateid>, new: Stateid) {
    match cur {
        Some(c) if c.other == new.other => {
            if seqid_newer(new.seqid, c.seqid) {
                c.seqid = new.seqid;
            }
        }
        _ => *cur = Some(new),
    }
}

/// What [`ensure_layout`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LayoutOutcome {
    /// Something new was cached (the caller re-plans).
    Progress,
    /// No layout can be had now: use the MDS for this request.
    Unavailable,
}

fn is_unavailable(s: NfsStat) -> bool {
    matches!(
        s,
        NfsStat::LAYOUTUNAVAILABLE
            | NfsStat::BADLAYOUT
            | NfsStat::UNKNOWN_LAYOUTTYPE
            | NfsStat::NOTSUPP
            | NfsStat::BADIOMODE
            | NfsStat::PNFS_NO_LAYOUT
    )
}

fn is_stateid_error(s: NfsStat) -> bool {
    matches!(
        s,
        NfsStat::BAD_STATEID
            | NfsStat::OLD_STATEID
            | NfsStat::EXPIRED
            | NfsStat::ADMIN_REVOKED
            | NfsStat::STALE_STATEID
            | NfsStat::DELEG_REVOKED
    )
}

/// Resolves a device through the cache: GETDEVICEINFO, then a signature match (block) or a
/// designator match plus the PR key registration (SCSI, RFC 8154: before any I/O). The layout
/// type is the one the device ID was seen with in a layout (block if never seen).
pub(super) async fn ensure_device<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    id: DeviceId,
) -> Result<Arc<ResolvedDevice>, PnfsError> {
    let layout_type = sh.devices.layout_type_of(&id);
    if let Some(d) = sh.devices.get(&id) {
        if d.layout_type() == layout_type {
            return Ok(d);
        }
    }
    Stats::inc(&sh.stats.getdeviceinfos);
    let info = sh
        .mds
        .get_device_info(
            layout_type,
            id,
            NOTIFY_DEVICEID4_CHANGE_MASK | NOTIFY_DEVICEID4_DELETE_MASK,
        )
        .await?;
    let dev = if layout_type == LayoutType::Scsi {
        let (dev, keys) = resolve_scsi_device(id, &info.addr_body, &sh.volumes)?;
        match register_pr_keys(&sh.devices, &keys).await {
            Ok(n) => Stats::add(&sh.stats.pr_registrations, n),
            Err(e) => {
                Stats::inc(&sh.stats.pr_registration_errors);
                tracing::warn!(device = ?id, error = %e, "SCSI device unusable: PR key not registered");
                return Err(e);
            }
        }
        Arc::new(dev)
    } else {
        Arc::new(resolve_block_device(id, &info.addr_body, &sh.volumes).await?)
    };
    tracing::info!(device = ?id, ?layout_type, size_bytes = dev.size_bytes(), "device resolved");
    sh.devices.insert(Arc::clone(&dev));
    Ok(dev)
}

/// Makes sure the cache covers (part of) `[start, end)`: one LAYOUTGET for the first gap,
/// with retries. Serialised per file (the first LAYOUTGET is seeded by the open stateid).
///
/// Two rules learnt against Linux nfsd (see `tests/pnfs_nfsd.rs`, the recall test):
/// - `loga_minlength` is one server block, never the whole gap: nfsd hands out ONE extent
///   per LAYOUTGET and answers NFS4ERR_LAYOUTUNAVAILABLE when that extent is shorter than
///   the minimum, which a file fragmented by LAYOUTCOMMITs and MDS writes always is sooner
///   or later; the caller re-plans and asks again for what is still missing.
/// - The LAYOUTGET lock is NOT held while backing off after LAYOUTTRYLATER /
///   RECALLCONFLICT / DELAY: nfsd answers RECALLCONFLICT to our LAYOUTGET while it recalls
///   OUR layout of the file, and our LAYOUTRETURN (`return_range`) needs that lock. Holding it
///   across the backoff made every recall wait for the whole retry budget. After each backoff
///   a recall overlapping the range ends the attempt (the caller waits for the recall).
pub(super) async fn ensure_layout<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    start: u64,
    end: u64,
) -> Result<LayoutOutcome, PnfsError> {
    let Some(layout_type) = f.layout_type else {
        // The file system offers no block or SCSI layouts (e.g. nfs-ganesha VFS): MDS I/O only.
        return Ok(LayoutOutcome::Unavailable);
    };
    let mut reset_done = false;
    let mut attempt = 0u32;
    loop {
        let serial = f.layoutget_lock.lock().await;
        let (gap_start, gap_end) = {
            let st = f.lock();
            if st.mds_only_until.is_some_and(|t| Instant::now() < t) {
                return Ok(LayoutOutcome::Unavailable);
            }
            if attempt > 0 && st.recalls.iter().any(|&r| overlaps(r, (start, end))) {
                // A recall of this range started while we backed off: let it finish first.
                return Ok(LayoutOutcome::Progress);
            }
            match st.cache.gaps(start, end).first() {
                Some(&g) => g,
                None => return Ok(LayoutOutcome::Progress),
            }
        };
        let block = f.block_bytes;
        let file_end = align_up(f.size_bytes, block).max(block);
        let off = align_down(gap_start, block);
        let min_end = align_up(gap_end, block).min(file_end).max(off + block);
        let want_end = off
            .saturating_add(sh.cfg.layout_chunk_bytes.max(min_end - off))
            .min(file_end)
            .max(min_end);
        let stateid = f.lock().layout_stateid;
        let args = LayoutGetArgs {
            layout_type,
            iomode: f.iomode,
            offset_bytes: off,
            length_bytes: want_end - off,
            // One server block: never 0 (nfsd refuses RW layouts over unwritten extents
            // with minlength 0), never more (see above).
            min_length_bytes: block.min(want_end - off),
            stateid: stateid.map_or(StateidArg::Open, StateidArg::Given),
            max_reply_bytes: sh.cfg.layoutget_max_reply_bytes,
            signal_layout_avail: false,
        };
        Stats::inc(&sh.stats.layoutgets);
        if layout_type == LayoutType::Scsi {
            Stats::inc(&sh.stats.scsi_layoutgets);
        }
        f.lock().layoutget_in_flight = true;
        let r = sh.mds.layout_get(&f.open, args).await;
        // On success "in flight" ends only together with applying the reply's stateid (in
        // `insert_layout`), never before: see there.
        let err = match r {
            Ok(res) => {
                if let Err(e) = insert_layout(sh, f, res).await {
                    // A layout that cannot be used (e.g. no configured volume matches its
                    // device, or the SCSI PR key could not be registered): the MDS serves
                    // this file for a while instead of a LAYOUTGET + GETDEVICEINFO per request.
                    tracing::warn!(path = %f.open.path, error = %e, "layout unusable: using the MDS for a while");
                    f.lock().mds_only_until = Some(Instant::now() + sh.cfg.unavailable_backoff);
                    return Err(e);
                }
                f.changed.notify_waiters();
                return Ok(LayoutOutcome::Progress);
            }
            Err(e) => {
                f.lock().layoutget_in_flight = false;
                e
            }
        };
        Stats::inc(&sh.stats.layoutget_errors);
        let status = match err.kind {
            MdsErrorKind::Status(s) => s,
            _ => return Err(err.into()),
        };
        if is_unavailable(status) {
            tracing::info!(path = %f.open.path, %status, "no layout: using the MDS for a while");
            f.lock().mds_only_until = Some(Instant::now() + sh.cfg.unavailable_backoff);
            return Ok(LayoutOutcome::Unavailable);
        }
        if is_stateid_error(status) && !reset_done {
            tracing::warn!(path = %f.open.path, %status, "layout stateid refused: resetting to the open stateid");
            reset_done = true;
            // Still holding the LAYOUTGET lock: no other LAYOUTGET uses the refused stateid.
            reset_layout_state(sh, f).await;
            drop(serial);
            continue;
        }
        if err.is_retryable() && attempt < sh.cfg.layoutget_max_retries {
            let backoff = layoutget_retry_pause(
                sh.cfg.layoutget_retry_base,
                sh.cfg.layoutget_retry_max,
                attempt,
                jitter_seed(),
            );
            attempt += 1;
            tracing::debug!(path = %f.open.path, %status, attempt, ?backoff, "LAYOUTGET refused for now: retrying");
            drop(serial);
            tokio::time::sleep(backoff).await;
            continue;
        }
        if err.is_retryable() {
            return Ok(LayoutOutcome::Unavailable);
        }
        return Err(err.into());
    }
}

/// Decodes, resolves devices and caches one LAYOUTGET result.
///
/// The reply's stateid is applied and the file's "LAYOUTGET in flight" mark cleared in ONE
/// critical section. A CB_LAYOUTRECALL is answered (synchronously, on another thread) from
/// exactly these two fields: with a LAYOUTGET in flight and no (or another) layout stateid it
/// answers DELAY, with neither it answers NOMATCHING_LAYOUT, and the server may then count
/// the layout as returned (RFC 8881 §20.3.4; the fake MDS and the embedded MDS do). The mark
/// used to be cleared as soon as the reply arrived, before this function applied the
/// stateid: a recall landing in between was told NOMATCHING_LAYOUT, the server forgot the
/// layout, and we cached it anyway, wrote through it and sent LAYOUTCOMMIT with its stateid,
/// which failed with BAD_STATEID as an I/O error of the request that committed (issue 12: a
/// trim in the recall workload test). Now such a recall is answered DELAY and the server
/// sends it again once the reply has landed.
async fn insert_layout<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    res: crate::mds_api::LayoutGetResult,
) -> Result<(), PnfsError> {
    // Tests run a recall here: the reply has arrived and is not applied yet.
    #[cfg(any(test, feature = "testing"))]
    sh.hooks.layoutget_reply();
    {
        let mut st = f.lock();
        update_stateid(&mut st.layout_stateid, res.stateid);
        st.layoutget_in_flight = false;
    }
    let want = f.layout_type.unwrap_or(LayoutType::BlockVolume);
    let mut decoded = Vec::new();
    for seg in &res.segments {
        if seg.layout_type != want {
            return Err(PnfsError::Layout(format!(
                "layout type {:?} in a reply to a {want:?} LAYOUTGET",
                seg.layout_type
            )));
        }
        let valid = decode_layout_body(want, &seg.body)?;
        let seg_end = seg.offset_bytes.saturating_add(seg.length_bytes);
        decoded.push((seg.offset_bytes, seg_end, valid.into_vec()));
    }
    for (_, _, exts) in &decoded {
        for e in exts {
            sh.devices.note_layout_type(e.device_id, want);
        }
    }
    // Resolve every device before caching, so cached pieces always have a usable device.
    for (_, _, exts) in &decoded {
        for e in exts.iter().filter(|e| e.state != ExtentState::NoneData) {
            ensure_device(sh, e.device_id).await?;
        }
    }
    let mut st = f.lock();
    for (s, e, exts) in decoded {
        // Never cache what is being recalled right now.
        let mut ranges = vec![(s, e)];
        for &r in &st.recalls {
            ranges = ranges
                .into_iter()
                .flat_map(|(a, b)| {
                    if !overlaps((a, b), r) {
                        return vec![(a, b)];
                    }
                    let mut v = Vec::new();
                    if a < r.0 {
                        v.push((a, r.0));
                    }
                    if r.1 < b {
                        v.push((r.1, b));
                    }
                    v
                })
                .collect();
        }
        for (a, b) in ranges {
            st.cache
                .insert_extents(a, b, &exts)
                .map_err(|e| PnfsError::Layout(e.0))?;
        }
        for x in &exts {
            if x.state != ExtentState::NoneData && !st.devices_used.contains(&x.device_id) {
                st.devices_used.push(x.device_id);
            }
        }
    }
    st.last_use = Instant::now();
    Ok(())
}

/// Decodes and validates a `loc_body`: `pnfs_block_layout4` or `pnfs_scsi_layout4` (the same
/// extent list on the wire, decoded by each type's own codec).
fn decode_layout_body(layout_type: LayoutType, body: &[u8]) -> Result<ValidExtents, PnfsError> {
    let r = if layout_type == LayoutType::Scsi {
        let b: ScsiLayout =
            from_bytes(body).map_err(|e| PnfsError::Layout(format!("SCSI layout body: {e}")))?;
        b.validate()
    } else {
        let b: BlockLayout =
            from_bytes(body).map_err(|e| PnfsError::Layout(format!("block layout body: {e}")))?;
        b.validate()
    };
    r.map_err(|e| PnfsError::Layout(format!("{layout_type:?} layout extents: {e}")))
}

/// The `lou_body` of a LAYOUTCOMMIT: block layouts list extents with their storage offsets;
/// SCSI layouts list only the file ranges (RFC 8154 `pnfs_scsi_layoutupdate4`).
fn commit_body(layout_type: LayoutType, batch: &[CommitRange]) -> Bytes {
    if layout_type == LayoutType::Scsi {
        let update = ScsiLayoutUpdate {
            commit_list: batch
                .iter()
                .map(|r| ScsiRange {
                    file_offset_bytes: r.file_offset_bytes,
                    length_bytes: r.length_bytes,
                })
                .collect(),
        };
        return Bytes::from(to_bytes(&update));
    }
    let update = BlockLayoutUpdate {
        commit_list: batch
            .iter()
            .map(|r| Extent {
                device_id: r.storage.device_id,
                file_offset_bytes: r.file_offset_bytes,
                length_bytes: r.length_bytes,
                storage_offset_bytes: r.storage.offset_bytes,
                state: ExtentState::ReadWriteData,
            })
            .collect(),
    };
    Bytes::from(to_bytes(&update))
}

fn now_nfstime() -> NfsTime {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    NfsTime {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nseconds: d.subsec_nanos(),
    }
}

/// fdatasync of every leaf volume the file's layouts use.
pub(super) async fn sync_volumes<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
) -> Result<(), PnfsError> {
    let devs: Vec<DeviceId> = f.lock().devices_used.clone();
    let mut done: Vec<String> = Vec::new();
    for id in devs {
        let Some(dev) = sh.devices.get(&id) else {
            continue;
        };
        for v in dev.leaf_volumes() {
            let key = v.name().to_string();
            if done.contains(&key) {
                continue;
            }
            done.push(key);
            v.sync()
                .await
                .map_err(|e| PnfsError::Volume(format!("{}: fdatasync: {e}", v.name())))?;
        }
    }
    Ok(())
}

/// How often a LAYOUTCOMMIT that lost its layout state to a server restart (or client-state
/// loss) is redone against the file's current pending set before its error surfaces.
const COMMIT_RESTART_RETRIES: u32 = 3;

/// LAYOUTCOMMIT of every uncommitted range of the file (data synced first). With `reclaim`
/// (after a server restart) the open stateid is used.
///
/// Normal commits are serialised by the file's commit lock. A reclaim commit does NOT take it:
/// it runs inside [`crate::mds_api::CallbackSink::server_restarted`], which the client awaits
/// before RECLAIM_COMPLETE, while a normal commit holding the lock may be parked in that very
/// recovery (its LAYOUTCOMMIT cannot complete until recovery ends). Waiting for the lock there
/// would stall recovery until the client's bound and then fail the parked commit. Instead the
/// reclaim commits the pending set itself (a batch is marked committed only on success, so
/// nothing is lost), and a normal commit whose LAYOUTCOMMIT fails after the layout state
/// changed under it (new client epoch, or a stateid error for a layout stateid since
/// forgotten or replaced) re-reads the pending set and commits what is still uncommitted
/// with the current stateid (bounded by [`COMMIT_RESTART_RETRIES`]). A stateid error for the
/// stateid the file still holds means the server no longer has that layout: the uncommitted
/// data is rewritten through the MDS and the layout forgotten ([`forget_refused_layout`]), so
/// the request that committed does not fail.
pub(super) async fn commit<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    reclaim: bool,
) -> Result<(), PnfsError> {
    if reclaim {
        return commit_pending(sh, f, true).await.map_err(|(e, _)| e);
    }
    let _serial = f.commit_lock.lock().await;
    commit_serialised(sh, f).await
}

/// The commit a write makes when more than `threshold` pieces are uncommitted: [`commit`],
/// unless another commit brought the count back within `threshold` while this one waited
/// for the commit lock. Writes that cross the threshold together (QD16 of first writes)
/// then wait for ONE LAYOUTCOMMIT instead of sending one each (bench/scale.sh: 390
/// LAYOUTCOMMITs for ~19k first writes, where ~75 were needed).
pub(super) async fn commit_over_threshold<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    threshold: usize,
) -> Result<(), PnfsError> {
    let _serial = f.commit_lock.lock().await;
    if f.lock().cache.uncommitted_count() <= threshold {
        return Ok(());
    }
    commit_serialised(sh, f).await
}

/// [`commit`] with the commit lock held.
async fn commit_serialised<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
) -> Result<(), PnfsError> {
    let mut retries = 0;
    loop {
        let epoch = sh.mds.lease_status().client_epoch;
        match commit_pending(sh, f, false).await {
            Ok(()) => return Ok(()),
            Err((PnfsError::Mds(e), sent)) => {
                // Redo when the layout state changed under this attempt: a new client epoch
                // (server restart / state loss: any status from the old state is meaningless
                // now), or a stateid error for a layout stateid the file has since forgotten
                // or replaced.
                let epoch_changed = sh.mds.lease_status().client_epoch != epoch;
                let now = f
                    .lock()
                    .layout_stateid
                    .map_or(StateidArg::Open, StateidArg::Given);
                let refused = e.nfs_status().is_some_and(is_stateid_error);
                let redo = (epoch_changed && e.nfs_status().is_some()) || (refused && now != sent);
                if redo && retries < COMMIT_RESTART_RETRIES {
                    retries += 1;
                    tracing::info!(path = %f.open.path, error = %e, retries, "layout state changed under a LAYOUTCOMMIT (server restart/reclaim): committing what is still pending");
                    continue;
                }
                if refused && now == sent && !epoch_changed {
                    // The stateid the file still holds is refused: the server no longer has
                    // this layout (it counts it as returned or revoked), so what was written
                    // through it can never be committed with it. Not an I/O error
                    // (docs/requirements.md C1–C4: BAD_STATEID → reset and retry): rewrite it
                    // through the MDS and forget the layout; the next request takes a new one.
                    tracing::warn!(path = %f.open.path, error = %e, "LAYOUTCOMMIT refused the current layout stateid: rewriting the uncommitted data through the MDS and resetting the layout");
                    return forget_refused_layout(sh, f, sent).await;
                }
                return Err(PnfsError::Mds(e));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// One pass of [`commit`] over the current pending set. On error also returns the stateid
/// argument the failing LAYOUTCOMMIT was sent with.
async fn commit_pending<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    reclaim: bool,
) -> Result<(), (PnfsError, StateidArg)> {
    let pending: Vec<CommitRange> = f.lock().cache.uncommitted(0, u64::MAX);
    if pending.is_empty() {
        return Ok(());
    }
    sync_volumes(sh, f)
        .await
        .map_err(|e| (e, StateidArg::Open))?;
    for batch in pending.chunks(sh.cfg.commit_max_extents.max(1)) {
        let first = batch[0].file_offset_bytes;
        let last = batch[batch.len() - 1];
        let end = last.file_offset_bytes + last.length_bytes;
        let layout_type = f.layout_type.unwrap_or(LayoutType::BlockVolume);
        let stateid = if reclaim {
            StateidArg::Open
        } else {
            f.lock()
                .layout_stateid
                .map_or(StateidArg::Open, StateidArg::Given)
        };
        let args = LayoutCommitArgs {
            offset_bytes: first,
            length_bytes: end - first,
            reclaim,
            stateid,
            last_write_offset_bytes: Some(end - 1),
            time_modify: Some(now_nfstime()),
            layout_type,
            update_body: commit_body(layout_type, batch),
        };
        match sh.mds.layout_commit(&f.open, args).await {
            Ok(_) => {
                Stats::inc(&sh.stats.commits);
                f.lock().cache.mark_committed(batch);
            }
            Err(e) => {
                Stats::inc(&sh.stats.commit_errors);
                return Err((e.into(), stateid));
            }
        }
    }
    Ok(())
}

/// The server refused `refused`, the layout stateid a LAYOUTCOMMIT used, and the file still
/// holds it (so it is not a stale stateid that a newer one replaced). Holds off new direct
/// I/O on the file (a recall entry over all of it), drains what is in flight, rewrites every
/// uncommitted range through the MDS (read back from the volume), then forgets the cached
/// pieces and that stateid: the next request takes a new layout, seeded by the open stateid.
/// Err only if some data could not be rewritten (then it is lost, and logged and counted).
async fn forget_refused_layout<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    refused: StateidArg,
) -> Result<(), PnfsError> {
    f.lock().recalls.push((0, u64::MAX));
    drain(f, 0, u64::MAX).await;
    let result = salvage_uncommitted(sh, f).await;
    {
        let mut st = f.lock();
        st.cache.remove_range(0, u64::MAX);
        if st
            .layout_stateid
            .map_or(StateidArg::Open, StateidArg::Given)
            == refused
        {
            st.layout_stateid = None;
        }
        if let Some(i) = st.recalls.iter().position(|&r| r == (0, u64::MAX)) {
            st.recalls.remove(i);
        }
    }
    f.changed.notify_waiters();
    result
}

/// Writes uncommitted data through the MDS (read back from the volume) when its layout state
/// is gone, so nothing written is lost; the caller then drops it from the cache. Err (the
/// first failure) if some range could not be rewritten: that data is lost, and each loss is
/// logged and counted in `request_errors` here.
pub(super) async fn salvage_uncommitted<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
) -> Result<(), PnfsError> {
    let mut first_err = None;
    let pending: Vec<CommitRange> = f.lock().cache.uncommitted(0, u64::MAX);
    for r in pending {
        let res = async {
            let dev = ensure_device(sh, r.storage.device_id).await?;
            let mut data = Vec::with_capacity(usize::try_from(r.length_bytes).unwrap_or(0));
            for span in dev.map_range(r.storage.offset_bytes, r.length_bytes)? {
                let len = usize::try_from(span.length_bytes)
                    .map_err(|e| PnfsError::Volume(e.to_string()))?;
                let part = span
                    .volume
                    .read(span.offset_bytes, len)
                    .await
                    .map_err(|e| PnfsError::Volume(e.to_string()))?;
                data.extend_from_slice(&part);
            }
            super::engine::mds_write_all(sh, f, r.file_offset_bytes, Bytes::from(data)).await
        }
        .await;
        match res {
            Ok(()) => {
                tracing::warn!(path = %f.open.path, offset = r.file_offset_bytes, len = r.length_bytes, "uncommitted data rewritten through the MDS")
            }
            Err(e) => {
                Stats::inc(&sh.stats.request_errors);
                tracing::error!(path = %f.open.path, offset = r.file_offset_bytes, len = r.length_bytes, error = %e, "uncommitted data LOST: layout state gone and MDS rewrite failed");
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Forgets the layout state (after BAD_STATEID and similar): tries to commit, else rewrites
/// uncommitted data through the MDS; empties the cache; next LAYOUTGET uses the open stateid.
pub(super) async fn reset_layout_state<M: MetadataServer>(sh: &Arc<Shared<M>>, f: &Arc<FileCtx>) {
    if let Err(e) = commit(sh, f, false).await {
        tracing::warn!(path = %f.open.path, error = %e, "commit before reset failed");
        // Every loss is logged and counted inside.
        let _ = salvage_uncommitted(sh, f).await;
    }
    let mut st = f.lock();
    let dropped = st.cache.remove_range(0, u64::MAX);
    let lost = dropped
        .iter()
        .filter(|p| matches!(p.state, PieceState::Uncommitted(_)))
        .count();
    if lost > 0 {
        tracing::error!(path = %f.open.path, pieces = lost, "reset dropped uncommitted pieces");
    }
    st.layout_stateid = None;
    drop(st);
    f.changed.notify_waiters();
}

/// Waits until no direct I/O overlapping `[start, end)` is in flight.
pub(super) async fn drain(f: &Arc<FileCtx>, start: u64, end: u64) {
    loop {
        let notified = f.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !f
            .lock()
            .in_flight
            .values()
            .any(|&r| overlaps(r, (start, end)))
        {
            return;
        }
        notified.await;
    }
}

/// The recall/eviction/close path for `[start, end)`: the range must already be in
/// `recalls` (no new direct I/O). Drains, commits, drops the cached pieces and returns the
/// layout. Removes the range from `recalls` at the end, whatever happened.
pub(super) async fn return_range<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    start: u64,
    end: u64,
    send_return: bool,
) -> Result<(), PnfsError> {
    drain(f, start, end).await;
    let result = async {
        if let Err(e) = commit(sh, f, false).await {
            tracing::warn!(path = %f.open.path, error = %e, "commit before return failed: rewriting through the MDS");
            // Every loss is logged and counted inside.
            let _ = salvage_uncommitted(sh, f).await;
        }
        // No LAYOUTGET may cross this LAYOUTRETURN (RFC 8881 §12.5.5.2.1): a reply processed
        // after the return would resurrect a dead layout stateid. LAYOUTGETs hold this lock
        // from send to reply processing.
        let _serial = f.layoutget_lock.lock().await;
        let stateid = {
            let mut st = f.lock();
            st.cache.remove_range(start, end);
            st.layout_stateid
        };
        if !send_return {
            return Ok(());
        }
        let Some(stateid) = stateid else {
            return Ok(());
        };
        Stats::inc(&sh.stats.layoutreturns);
        let args = LayoutReturnArgs {
            reclaim: false,
            layout_type: f.layout_type.unwrap_or(LayoutType::BlockVolume),
            iomode: pnfs_proto::nfs4::LayoutIoMode::Any,
            target: LayoutReturnTarget::File {
                offset_bytes: start,
                length_bytes: if end == u64::MAX { u64::MAX } else { end - start },
                stateid,
                body: Bytes::new(),
            },
        };
        match sh.mds.layout_return(&f.open, args).await {
            Ok(r) => {
                let mut st = f.lock();
                match r.stateid {
                    Some(s) => update_stateid(&mut st.layout_stateid, s),
                    None => {
                        st.layout_stateid = None;
                        st.cache.remove_range(0, u64::MAX);
                    }
                }
                Ok(())
            }
            Err(e) if e.nfs_status().is_some_and(|s| s == NfsStat::NOMATCHING_LAYOUT || is_stateid_error(s)) => {
                let mut st = f.lock();
                st.layout_stateid = None;
                st.cache.remove_range(0, u64::MAX);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
    .await;
    {
        let mut st = f.lock();
        if let Some(i) = st.recalls.iter().position(|&r| r == (start, end)) {
            st.recalls.remove(i);
        }
    }
    f.changed.notify_waiters();
    result
}

/// Commits and returns the file's whole layout, then CLOSEs it.
pub(super) async fn close_file<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
) -> Result<(), PnfsError> {
    {
        let mut st = f.lock();
        if st.closed {
            return Ok(());
        }
        st.closed = true;
        st.recalls.push((0, u64::MAX));
    }
    let r = return_range(sh, f, 0, u64::MAX, true).await;
    {
        sh.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|x| !Arc::ptr_eq(x, f));
        sh.file_bounds_sum
            .fetch_sub(f.max_cached_pieces, std::sync::atomic::Ordering::Relaxed);
    }
    // MDS writes answered UNSTABLE4 must be durable before the file is closed.
    let m = super::mds_unstable::commit(sh, f).await;
    let c = sh.mds.close(&f.open).await;
    r?;
    m?;
    c?;
    Ok(())
}

/// Keeps the cache within its bounds after a LAYOUTGET for `[start, end)` of `f`:
/// - `f` over its own bound (`FileCtx::max_cached_pieces`) returns its least recently used
///   windows, never the one the request uses, and no other file's;
/// - all files over `max_cached_pieces` (a second, process-wide limit): the least recently
///   used other file returns its whole layout.
///
/// The returns run in the background, each range under recall first (no new direct I/O
/// there; the next request in it takes a new layout with LAYOUTGET, never stale pieces).
pub(super) fn maybe_evict<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    start: u64,
    end: u64,
) {
    let ranges = {
        let mut st = f.lock();
        if st.cache.len() <= f.max_cached_pieces {
            Vec::new()
        } else {
            let busy = st.recalls.clone();
            let ranges = st
                .cache
                .eviction_ranges(f.max_cached_pieces, (start, end), &busy);
            st.recalls.extend_from_slice(&ranges);
            ranges
        }
    };
    for (s, e) in ranges {
        Stats::inc(&sh.stats.window_evictions);
        spawn_eviction(sh, f, s, e);
    }
    let bounds = sh
        .file_bounds_sum
        .load(std::sync::atomic::Ordering::Relaxed);
    if bounds > sh.cfg.max_cached_pieces {
        evict_other_file(sh, f);
    }
}

/// Returns `[start, end)` of `f` (already in its recalls) in the background.
fn spawn_eviction<M: MetadataServer>(sh: &Arc<Shared<M>>, f: &Arc<FileCtx>, start: u64, end: u64) {
    let sh = Arc::clone(sh);
    let f = Arc::clone(f);
    tokio::spawn(async move {
        if let Err(e) = return_range(&sh, &f, start, end, true).await {
            tracing::warn!(path = %f.open.path, start, end, error = %e, "eviction return failed");
        }
    });
}

/// Evicts the least recently used other file's whole layout while the total over all files
/// is over `max_cached_pieces` (O(files)).
fn evict_other_file<M: MetadataServer>(sh: &Arc<Shared<M>>, except: &Arc<FileCtx>) {
    let files = sh.files();
    let total: usize = files.iter().map(|f| f.lock().cache.len()).sum();
    if total <= sh.cfg.max_cached_pieces {
        return;
    }
    let victim = files
        .iter()
        .filter(|f| !Arc::ptr_eq(f, except))
        .filter(|f| {
            let st = f.lock();
            !st.cache.is_empty() && st.recalls.is_empty()
        })
        .min_by_key(|f| f.lock().last_use)
        .cloned();
    if let Some(v) = victim {
        Stats::inc(&sh.stats.evictions);
        v.lock().recalls.push((0, u64::MAX));
        spawn_eviction(sh, &v, 0, u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqid_serial_arithmetic() {
        assert!(seqid_newer(2, 1));
        assert!(!seqid_newer(1, 2));
        assert!(!seqid_newer(5, 5));
        assert!(seqid_newer(1, u32::MAX), "wraps");
        let mut cur = None;
        let a = Stateid {
            seqid: 1,
            other: [1; 12],
        };
        update_stateid(&mut cur, a);
        update_stateid(&mut cur, Stateid { seqid: 3, ..a });
        update_stateid(&mut cur, Stateid { seqid: 2, ..a });
        assert_eq!(
            cur.map(|s| s.seqid),
            Some(3),
            "an older reply does not move it back"
        );
        let b = Stateid {
            seqid: 1,
            other: [2; 12],
        };
        update_stateid(&mut cur, b);
        assert_eq!(cur, Some(b), "a new layout state replaces the old");
    }
}
