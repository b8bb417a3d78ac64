//! Writes through the MDS sent UNSTABLE4 and kept until a COMMIT makes them durable.
//!
//! A FILE_SYNC4 WRITE makes the MDS sync its volume and its metadata store before it answers,
//! on every request (RFC 8881 §18.32). Sent UNSTABLE4, the MDS answers as soon as the data is
//! in its page cache; a COMMIT (§18.3) at the frontend's flush makes every such write durable
//! at once. The gateway keeps promising that every acknowledged flush is durable:
//!
//! - each write answered UNSTABLE4 is kept (offset, data, the verifier it was answered with)
//!   until a COMMIT succeeds with that same verifier;
//! - if the COMMIT's verifier differs from a kept write's (the MDS restarted, or lost its
//!   cache, in between), every kept write of the file is sent again, in the order they were
//!   first answered (an earlier one must not land over a later one on the same bytes), and
//!   committed again;
//! - the kept data is bounded: once the total over all files passes
//!   [`PnfsConfig::mds_unstable_max_bytes`](super::PnfsConfig::mds_unstable_max_bytes), the
//!   writing file is committed before its write returns.
//!
//! A file's commit excludes its MDS writes (a read/write gate), so no write can be answered
//! between the COMMIT and the release of what it covered.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use pnfs_proto::nfs4::Verifier;

use super::{FileCtx, PnfsError, Shared};
use crate::mds_api::{MetadataServer, StableHow};
use crate::stats::Stats;

/// Most COMMIT rounds of one commit whose verifier differs from the kept writes' (each round
/// sends them again): more means the MDS restarts faster than it can take the writes.
const MAX_COMMIT_ROUNDS: u32 = 4;
/// Most WRITE replies in a row that take no bytes before the write fails.
const MAX_ZERO_PROGRESS_WRITES: u32 = 3;

/// One write answered UNSTABLE4.
#[derive(Debug, Clone)]
struct KeptWrite {
    offset_bytes: u64,
    data: Bytes,
    /// The verifier of its reply; None when its parts were answered with different ones (it
    /// is sent again at the next commit whatever the COMMIT says).
    verifier: Option<Verifier>,
}

/// A file's writes answered UNSTABLE4 and not yet committed, oldest first.
#[derive(Debug, Default)]
pub(super) struct KeptWrites {
    writes: Vec<KeptWrite>,
    bytes: u64,
}

/// Sends `data` at `offset` through the MDS in chunks (short writes continued) with
/// `stable`. Returns the verifier of the replies (None if they differ) and whether every
/// reply was FILE_SYNC4 (then nothing needs keeping).
async fn send<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    offset: u64,
    data: &Bytes,
    stable: StableHow,
) -> Result<(Option<Verifier>, bool), PnfsError> {
    let chunk = usize::try_from(sh.cfg.mds_io_chunk_bytes.max(4096)).unwrap_or(1 << 20);
    let mut at = 0usize;
    let mut zero_rounds = 0u32;
    let mut verifier: Option<Option<Verifier>> = None;
    let mut all_file_sync = true;
    while at < data.len() {
        let n = (data.len() - at).min(chunk);
        let r = sh
            .mds
            .write(&f.open, offset + at as u64, data.slice(at..at + n), stable)
            .await?;
        let done = usize::try_from(r.count_bytes).unwrap_or(0).min(n);
        if done == 0 {
            zero_rounds += 1;
            if zero_rounds > MAX_ZERO_PROGRESS_WRITES {
                return Err(PnfsError::Volume("MDS WRITE makes no progress".into()));
            }
            continue;
        }
        all_file_sync &= r.committed == StableHow::FileSync;
        verifier = Some(match verifier {
            None => Some(r.verifier),
            Some(v) if v == Some(r.verifier) => v,
            Some(_) => None,
        });
        Stats::add(&sh.stats.mds_write_bytes, done as u64);
        at += done;
    }
    Ok((verifier.flatten(), all_file_sync))
}

/// Writes through the MDS, UNSTABLE4, keeping what is answered unstable for [`commit`];
/// commits the file first when the kept bytes of all files pass the bound.
pub(super) async fn write_all<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
    offset: u64,
    data: Bytes,
) -> Result<(), PnfsError> {
    {
        let _no_commit = f.mds_commit_gate.read().await;
        let (verifier, durable) = send(sh, f, offset, &data, StableHow::Unstable).await?;
        if !durable {
            let len = data.len() as u64;
            // A copy of its own: a frontend's payload may be a slice of a larger receive
            // buffer (NBD), which keeping the slice would pin, and the bound would not count.
            let data = Bytes::copy_from_slice(&data);
            let mut kept = f.mds_kept.lock().unwrap_or_else(|p| p.into_inner());
            kept.writes.push(KeptWrite {
                offset_bytes: offset,
                data,
                verifier,
            });
            kept.bytes += len;
            sh.mds_kept_bytes.fetch_add(len, Ordering::Relaxed);
        }
    }
    if sh.mds_kept_bytes.load(Ordering::Relaxed) > sh.cfg.mds_unstable_max_bytes {
        commit(sh, f).await?;
    }
    Ok(())
}

/// Makes the file's writes answered UNSTABLE4 durable: COMMIT, and while its verifier is not
/// the one every kept write was answered with, send them all again and COMMIT again (bounded
/// by [`MAX_COMMIT_ROUNDS`]). The writes are released only when that succeeds; on error they
/// stay kept for the next commit.
pub(super) async fn commit<M: MetadataServer>(
    sh: &Arc<Shared<M>>,
    f: &Arc<FileCtx>,
) -> Result<(), PnfsError> {
    let _gate = f.mds_commit_gate.write().await;
    let mut writes = {
        let kept = f.mds_kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.writes.is_empty() {
            return Ok(());
        }
        kept.writes.clone()
    };
    let mut rounds = 0u32;
    loop {
        rounds += 1;
        let verifier = sh.mds.commit(&f.open, 0, 0).await?;
        if writes.iter().all(|w| w.verifier == Some(verifier)) {
            break;
        }
        if rounds >= MAX_COMMIT_ROUNDS {
            return Err(PnfsError::Volume(format!(
                "MDS COMMIT verifier still changing after {rounds} rounds of sending the \
                 uncommitted writes again"
            )));
        }
        Stats::inc(&sh.stats.mds_rewrites);
        tracing::warn!(path = %f.open.path, writes = writes.len(), "MDS write verifier changed (server restart): sending the uncommitted writes again");
        for w in &mut writes {
            let (v, _) = send(sh, f, w.offset_bytes, &w.data, StableHow::Unstable).await?;
            w.verifier = v;
        }
    }
    let mut kept = f.mds_kept.lock().unwrap_or_else(|p| p.into_inner());
    let released = std::mem::take(&mut kept.bytes);
    kept.writes.clear();
    sh.mds_kept_bytes.fetch_sub(released, Ordering::Relaxed);
    Ok(())
}
