//! The data path: plan a request against the extent cache, issue direct volume I/O (with
//! read-modify-write of server blocks into INVALID extents and copy-on-write fill), and fall
//! back to MDS READ/WRITE when no layout, a recall, the fence or a volume error says so.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use super::aligned::AlignedBuf;
use super::extent_cache::{Piece, PieceState, StorageRef};
use super::fence::{wait_unfenced, FenceDecision};
use super::layout::{
    commit, commit_over_threshold, ensure_device, ensure_layout, maybe_evict, LayoutOutcome,
};
use super::{align_down, align_up, overlaps, FileCtx, PnfsError, Shared};
use crate::mds_api::MetadataServer;
use crate::stats::Stats;

/// In-flight registration of a direct I/O; unregisters (and wakes drains) on drop.
struct InFlight<'a> {
    f: &'a Arc<FileCtx>,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.f.lock().in_flight.remove(&self.id);
        self.f.changed.notify_waiters();
    }
}

/// What to do with a request.
enum Plan<'a> {
    /// Direct I/O over these pieces (clipped to the planned range), registered in flight.
    Direct(Vec<Piece>, InFlight<'a>),
    /// Through the MDS.
    Mds,
}

/// Why direct I/O stopped part-way.
enum DirectError {
    /// Use the MDS for the request (fenced, or a volume error).
    Fallback,
    /// A real error.
    Fatal(PnfsError),
}

fn needs_write_layout(p: &Piece) -> bool {
    matches!(p.state, PieceState::ReadOnly(_) | PieceState::None)
}

/// What a plan round found when it could not plan direct I/O at once.
enum Next<'a> {
    /// A recall of the range is running: wait for the file's state to change.
    Wait(Pin<Box<Notified<'a>>>),
    /// Pieces are missing or need a write layout: LAYOUTGET.
    Layout,
}

/// Plans `[start, end)`: waits for the fence, recalls and LAYOUTGETs (bounded) and registers
/// the I/O in flight. `write` plans need writable pieces everywhere.
async fn plan<'a, M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &'a Arc<FileCtx>,
    start: u64,
    end: u64,
    write: bool,
) -> Result<Plan<'a>, PnfsError> {
    let mut lease_rx = sh.lease_rx.clone();
    let mut rounds = 0u32;
    loop {
        rounds += 1;
        if rounds > sh.cfg.max_plan_rounds {
            return Ok(Plan::Mds);
        }
        if wait_unfenced(&sh.cfg.fence, &mut lease_rx, || {
            Stats::inc(&sh.stats.fencing_events);
        })
        .await
            == FenceDecision::Fenced
        {
            Stats::inc(&sh.stats.fenced_to_mds);
            return Ok(Plan::Mds);
        }
        let next = {
            let mut st = f.lock();
            if st.closed {
                return Err(PnfsError::Shutdown);
            }
            // A recall first: a file that starts backing off to the MDS has its whole layout
            // under recall until its direct I/O has drained and been committed, and no
            // request may go to the MDS before that (see `recall::contention_backoff`).
            if st.recalls.iter().any(|&r| overlaps(r, (start, end))) {
                // Registered while the state lock is held: whoever ends the recall changes
                // the state under this lock first and notifies after, so the wake-up cannot
                // be missed. Only this rare path pays for the registration.
                let mut notified = Box::pin(f.changed.notified());
                notified.as_mut().enable();
                Next::Wait(notified)
            } else if st.mds_only_until.is_some_and(|t| Instant::now() < t) {
                return Ok(Plan::Mds);
            } else if let Some(pieces) = st.cache.lookup_covered(start, end) {
                if write && pieces.iter().any(needs_write_layout) {
                    return Ok(Plan::Mds);
                }
                if rounds == 1 {
                    Stats::inc(&sh.stats.cache_hits);
                }
                st.last_use = Instant::now();
                st.cache.touch(start, end);
                let id = st.next_io_id;
                st.next_io_id += 1;
                st.in_flight.insert(id, (start, end));
                return Ok(Plan::Direct(pieces, InFlight { f, id }));
            } else {
                Next::Layout
            }
        };
        match next {
            Next::Wait(notified) => {
                // A recall of this range is running: wait for it (bounded), then re-plan.
                if tokio::time::timeout(sh.cfg.recall_wait, notified)
                    .await
                    .is_err()
                {
                    return Ok(Plan::Mds);
                }
            }
            Next::Layout => {
                if rounds == 1 {
                    Stats::inc(&sh.stats.cache_misses);
                }
                match ensure_layout(sh, f, start, end).await {
                    Ok(LayoutOutcome::Progress) => maybe_evict(sh, f, start, end),
                    Ok(LayoutOutcome::Unavailable) => return Ok(Plan::Mds),
                    Err(e) => {
                        tracing::warn!(path = %f.open.path, error = %e, "LAYOUTGET failed: using the MDS");
                        return Ok(Plan::Mds);
                    }
                }
            }
        }
    }
}

/// Fence check right before issuing one direct I/O (no await between check and issue).
fn may_issue<M: MetadataServer>(sh: &Arc<Shared<M>>) -> bool {
    let ok = sh
        .cfg
        .fence
        .may_issue(&sh.lease_rx.borrow(), Instant::now());
    if !ok {
        Stats::inc(&sh.stats.fencing_events);
    }
    ok
}

/// Reads `len` bytes at `storage` of a logical volume.
async fn volume_read<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    storage: StorageRef,
    len: u64,
    out: &mut [u8],
) -> Result<(), DirectError> {
    let dev = ensure_device(sh, storage.device_id)
        .await
        .map_err(|_| DirectError::Fallback)?;
    let spans = dev
        .map_range(storage.offset_bytes, len)
        .map_err(|_| DirectError::Fallback)?;
    let mut at = 0usize;
    for s in spans {
        let n = usize::try_from(s.length_bytes)
            .map_err(|e| DirectError::Fatal(PnfsError::Volume(e.to_string())))?;
        if !may_issue(sh) {
            return Err(DirectError::Fallback);
        }
        match s.volume.read(s.offset_bytes, n).await {
            Ok(data) => out[at..at + n].copy_from_slice(&data),
            Err(e) => {
                Stats::inc(&sh.stats.volume_errors);
                tracing::warn!(volume = s.volume.name(), offset = s.offset_bytes, error = %e, "volume read failed: using the MDS");
                return Err(DirectError::Fallback);
            }
        }
        Stats::add(&sh.stats.direct_read_bytes, s.length_bytes);
        at += n;
    }
    Ok(())
}

/// Reads `len` bytes at `storage` of a logical volume into `buf[at..at + len]`, straight
/// into the buffer (no copy where the volume can). On `Err` the buffer is gone.
async fn volume_read_into<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    storage: StorageRef,
    len: u64,
    mut buf: AlignedBuf,
    mut at: usize,
) -> Result<AlignedBuf, DirectError> {
    let dev = ensure_device(sh, storage.device_id)
        .await
        .map_err(|_| DirectError::Fallback)?;
    let spans = dev
        .map_range(storage.offset_bytes, len)
        .map_err(|_| DirectError::Fallback)?;
    for s in spans {
        let n = usize::try_from(s.length_bytes)
            .map_err(|e| DirectError::Fatal(PnfsError::Volume(e.to_string())))?;
        if !may_issue(sh) {
            return Err(DirectError::Fallback);
        }
        buf = match s.volume.read_into(s.offset_bytes, buf, at, n).await {
            Ok(b) => b,
            Err(e) => {
                Stats::inc(&sh.stats.volume_errors);
                tracing::warn!(volume = s.volume.name(), offset = s.offset_bytes, error = %e, "volume read failed: using the MDS");
                return Err(DirectError::Fallback);
            }
        };
        Stats::add(&sh.stats.direct_read_bytes, s.length_bytes);
        at += n;
    }
    Ok(buf)
}

/// Writes `data` at `storage` of a logical volume.
async fn volume_write<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    storage: StorageRef,
    data: Bytes,
) -> Result<(), DirectError> {
    let dev = ensure_device(sh, storage.device_id)
        .await
        .map_err(|_| DirectError::Fallback)?;
    let spans = dev
        .map_range(storage.offset_bytes, data.len() as u64)
        .map_err(|_| DirectError::Fallback)?;
    let mut at = 0usize;
    for s in spans {
        let n = usize::try_from(s.length_bytes)
            .map_err(|e| DirectError::Fatal(PnfsError::Volume(e.to_string())))?;
        if !may_issue(sh) {
            return Err(DirectError::Fallback);
        }
        if let Err(e) = s.volume.write(s.offset_bytes, data.slice(at..at + n)).await {
            Stats::inc(&sh.stats.volume_errors);
            tracing::warn!(volume = s.volume.name(), offset = s.offset_bytes, error = %e, "volume write failed: using the MDS");
            return Err(DirectError::Fallback);
        }
        Stats::add(&sh.stats.direct_write_bytes, s.length_bytes);
        at += n;
    }
    Ok(())
}

/// Reads through the MDS (chunked; zeros past EOF).
pub(super) async fn mds_read<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    offset: u64,
    out: &mut [u8],
) -> Result<(), PnfsError> {
    let chunk = usize::try_from(sh.cfg.mds_io_chunk_bytes.max(4096)).unwrap_or(1 << 20);
    let mut at = 0usize;
    // Bound: each round either moves forward or hits EOF.
    while at < out.len() {
        let want = (out.len() - at).min(chunk);
        let want_u32 = u32::try_from(want).map_err(|e| PnfsError::Volume(e.to_string()))?;
        let r = sh.mds.read(&f.open, offset + at as u64, want_u32).await?;
        let n = r.data.len().min(want);
        out[at..at + n].copy_from_slice(&r.data[..n]);
        Stats::add(&sh.stats.mds_read_bytes, n as u64);
        if n == 0 || (r.eof && n < want) {
            out[at + n..].fill(0);
            break;
        }
        at += n;
    }
    Ok(())
}

/// Writes through the MDS (chunked, UNSTABLE4, short writes continued); durable at the
/// file's next flush or close ([`super::mds_unstable`]).
pub(super) async fn mds_write_all<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    offset: u64,
    data: Bytes,
) -> Result<(), PnfsError> {
    super::mds_unstable::write_all(sh, f, offset, data).await
}

/// A write through the MDS while we may hold layouts for the range: commit our pending
/// writes first (the server must not treat our written blocks as unwritten), then write,
/// then forget the cached pieces of the touched blocks (the server's state changed there).
async fn mds_write_range<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    offset: u64,
    data: Bytes,
) -> Result<(), PnfsError> {
    let end = offset + data.len() as u64;
    let _one_mds_write = if f.layout_type.is_some() {
        Some(f.mds_write_lock.lock().await)
    } else {
        None
    };
    let has_pending = !f.lock().cache.uncommitted(0, u64::MAX).is_empty();
    if has_pending {
        commit(sh, f, false).await?;
    }
    mds_write_all(sh, f, offset, data).await?;
    let (bs, be) = (
        align_down(offset, f.block_bytes),
        align_up(end, f.block_bytes),
    );
    let mut st = f.lock();
    st.cache.remove_range(bs, be);
    Ok(())
}

/// Reads `[offset, offset + len)` into a new aligned buffer (every byte of it written: volume
/// data, zeros, or MDS data), which the caller hands to the frontend without copying.
pub(super) async fn read<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    offset: u64,
    len: usize,
) -> Result<AlignedBuf, PnfsError> {
    let out = AlignedBuf::new(len).map_err(|e| PnfsError::Volume(e.to_string()))?;
    read_into(sh, f, offset, out).await
}

/// Reads `[offset, offset + out.len())` into the caller's aligned buffer (every visible byte
/// written), straight from the volume where the request is aligned for `O_DIRECT`. The
/// buffer handed back is `out`, or a new one of the same length after a fallback to the MDS
/// (a failed volume read loses the buffer it was given).
pub(super) async fn read_into<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    offset: u64,
    mut out: AlignedBuf,
) -> Result<AlignedBuf, PnfsError> {
    let len = out.len();
    let new_buf = || AlignedBuf::new(len).map_err(|e| PnfsError::Volume(e.to_string()));
    let end = offset + len as u64;
    match plan(sh, f, offset, end, false).await? {
        Plan::Mds => {
            mds_read(sh, f, offset, out.as_mut_slice()).await?;
        }
        Plan::Direct(pieces, guard) => {
            let mut fallback = false;
            for p in &pieces {
                let s = usize::try_from(p.file_offset_bytes - offset)
                    .map_err(|e| PnfsError::Volume(e.to_string()))?;
                let n = usize::try_from(p.length_bytes)
                    .map_err(|e| PnfsError::Volume(e.to_string()))?;
                let source = match p.state {
                    PieceState::ReadWrite(st)
                    | PieceState::Uncommitted(st)
                    | PieceState::ReadOnly(st) => Some(st),
                    PieceState::Invalid { cow_source, .. } => cow_source,
                    PieceState::None => None,
                };
                match source {
                    None => {
                        out.as_mut_slice()[s..s + n].fill(0);
                        Stats::add(&sh.stats.zero_fill_read_bytes, p.length_bytes);
                    }
                    Some(st) => match volume_read_into(sh, st, p.length_bytes, out, s).await {
                        Ok(b) => out = b,
                        Err(DirectError::Fallback) => {
                            fallback = true;
                            out = new_buf()?;
                            break;
                        }
                        Err(DirectError::Fatal(e)) => return Err(e),
                    },
                }
            }
            drop(guard);
            if fallback {
                mds_read(sh, f, offset, out.as_mut_slice()).await?;
            }
        }
    }
    Ok(out)
}

/// Writes `data` at `offset`.
pub(super) async fn write<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    offset: u64,
    data: Bytes,
) -> Result<(), PnfsError> {
    let end = offset + data.len() as u64;
    let block = f.block_bytes;
    let (bs, be) = (align_down(offset, block), align_up(end, block));
    let _wl = f.write_locks.lock(bs, be).await;
    // Plan the block-expanded range: RMW needs the states of the whole blocks.
    let plan_end = be.min(align_up(f.size_bytes, block)).max(end);
    let mut committed_kept = false;
    let (pieces, guard) = loop {
        match plan(sh, f, bs, plan_end, true).await? {
            Plan::Mds => return mds_write_range(sh, f, offset, data).await,
            // Back from the MDS path (a back-off ended, a layout came): our uncommitted MDS
            // writes of these bytes are made durable first, or a verifier change at the
            // next commit would send them again over this write. Once: the range's write
            // lock keeps new MDS writes of these bytes out (and orders the earlier ones before
            // the load of the total, so the lock-free check first costs the hot path nothing).
            Plan::Direct(_, g)
                if !committed_kept
                    && sh.mds_kept_bytes.load(std::sync::atomic::Ordering::Relaxed) > 0
                    && super::mds_unstable::kept_overlaps(f, bs, be) =>
            {
                drop(g);
                super::mds_unstable::commit(sh, f).await?;
                committed_kept = true;
            }
            Plan::Direct(p, g) => break (p, g),
        }
    };
    let mut written: Vec<(u64, u64)> = Vec::new();
    let mut result: Result<(), DirectError> = Ok(());
    for p in &pieces {
        let (ps, pe) = (p.file_offset_bytes, p.end_bytes());
        let (ws, we) = (ps.max(offset), pe.min(end));
        if ws >= we {
            continue;
        }
        let slice = |a: u64, b: u64| {
            data.slice(
                usize::try_from(a - offset).unwrap_or(0)..usize::try_from(b - offset).unwrap_or(0),
            )
        };
        let r = match p.state {
            PieceState::ReadWrite(st) | PieceState::Uncommitted(st) => {
                volume_write(
                    sh,
                    StorageRef {
                        offset_bytes: st.offset_bytes + (ws - ps),
                        ..st
                    },
                    slice(ws, we),
                )
                .await
            }
            PieceState::Invalid { target, cow_source } => {
                // Fill whole server blocks (clipped to this piece).
                let fs = align_down(ws, block).max(ps);
                let fe = align_up(we, block).min(pe);
                let flen = usize::try_from(fe - fs).unwrap_or(0);
                let mut buf = vec![0u8; flen];
                let mut r = Ok(());
                if fs < ws || we < fe {
                    Stats::inc(&sh.stats.rmw_blocks);
                    if let Some(src) = cow_source {
                        r = volume_read(
                            sh,
                            StorageRef {
                                offset_bytes: src.offset_bytes + (fs - ps),
                                ..src
                            },
                            fe - fs,
                            &mut buf,
                        )
                        .await;
                    }
                }
                if r.is_ok() {
                    let a = usize::try_from(ws - fs).unwrap_or(0);
                    let b = usize::try_from(we - fs).unwrap_or(0);
                    buf[a..b].copy_from_slice(&slice(ws, we));
                    r = volume_write(
                        sh,
                        StorageRef {
                            offset_bytes: target.offset_bytes + (fs - ps),
                            ..target
                        },
                        Bytes::from(buf),
                    )
                    .await;
                }
                if r.is_ok() {
                    written.push((fs, fe));
                }
                r
            }
            PieceState::ReadOnly(_) | PieceState::None => Err(DirectError::Fallback),
        };
        if r.is_err() {
            result = r;
            break;
        }
    }
    // Only a write that turned INVALID pieces into written ones adds uncommitted pieces, so
    // only such a write counts them (O(1): the cache keeps an index of them) and checks the
    // file's bound; a rewrite of written extents, the common case, costs nothing here.
    let (pending, over_bound) = if written.is_empty() {
        (0, false)
    } else {
        let mut st = f.lock();
        for (a, b) in &written {
            st.cache.mark_written(*a, *b);
        }
        // Cutting pieces grows the cache without a LAYOUTGET: check the file's bound too.
        (
            st.cache.uncommitted_count(),
            st.cache.len() > f.max_cached_pieces,
        )
    };
    drop(guard);
    if over_bound {
        maybe_evict(sh, f, bs, be);
    }
    match result {
        Ok(()) => {}
        Err(DirectError::Fallback) => mds_write_range(sh, f, offset, data).await?,
        Err(DirectError::Fatal(e)) => return Err(e),
    }
    if pending > sh.cfg.commit_threshold_pieces {
        commit_over_threshold(sh, f, sh.cfg.commit_threshold_pieces).await?;
    }
    Ok(())
}
