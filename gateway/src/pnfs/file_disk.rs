//! [`PnfsDisk`]: the [`Disk`] of one file served through pNFS block layouts.
//!
//! - Size: the file size at open, fixed for the life of the disk (writes past it are refused
//!   by the frontend's `validate_request`; the file is never grown or shrunk by the gateway).
//!   Every method takes a [`DiskRange`] checked at the frontend and does not check it again.
//! - read / write: direct volume I/O through cached layouts, MDS READ/WRITE as fallback.
//!   `read_into` reads straight into the caller's aligned buffer (io_uring, `O_DIRECT`);
//!   `write_from` (the trait's default) passes the caller's aligned buffer on as `Bytes`,
//!   which an aligned volume write sends to the kernel without a copy.
//!   `fua` = the write, fdatasync of the volumes, LAYOUTCOMMIT.
//! - flush: fdatasync of the volumes the file's layouts use + LAYOUTCOMMIT of every pending
//!   write (MDS fallback writes are FILE_SYNC already).
//! - trim: MDS DEALLOCATE where the server has it (the range then reads as zeros), else zeros
//!   written over the parts of the range that may hold data (block_status `Data`); parts that
//!   already read as zeros (INVALID never written, NONE) cost nothing, so a whole-device
//!   discard of a fresh file (mkfs) writes nothing. Either way the range reads as zeros after.
//! - write_zeroes: writes zeros through the normal path (deterministic zeros).
//! - block_status: from extent states (fetching the layout first): READ_WRITE / READ / written
//!   → Data; INVALID (no COW source) → Zero; NONE → Hole; COW-sourced INVALID → Data. Where
//!   no layout can be had the answer is Data (always safe: the bytes are read for real).

use std::sync::Arc;

use bytes::Bytes;
use tracing::Instrument;

use super::engine;
use super::extent_cache::PieceState;
use super::layout::{close_file, commit, ensure_layout, sync_volumes, LayoutOutcome};
use super::{FileCtx, PnfsError, Shared};
use crate::disk::{
    AlignedBuf, Disk, DiskError, DiskErrorKind, DiskInfo, DiskRange, DiskResult, ExtentStatus,
    StatusExtent, DISK_MAX_IO_BYTES,
};
use crate::mds_api::{MdsErrorKind, MetadataServer};
use crate::stats::Stats;

/// Largest chunk write_zeroes writes at once.
const WRITE_ZEROES_CHUNK_BYTES: u64 = 1 << 20;
/// Largest range one block_status covers when trim has to find the data to zero.
const TRIM_STATUS_CHUNK_BYTES: u64 = 64 << 20;
/// Most LAYOUTGETs trim sends per chunk to learn where the data is (each brings at least one
/// extent; Linux nfsd answers one extent per LAYOUTGET). Parts still unknown after that are
/// zeroed like data.
const TRIM_LAYOUTGETS_PER_CHUNK_MAX: u32 = 4096;

/// One file as a block device.
#[derive(Debug)]
pub struct PnfsDisk<M: MetadataServer> {
    sh: Arc<Shared<M>>,
    f: Arc<FileCtx>,
    info: DiskInfo,
}

impl<M: MetadataServer> PnfsDisk<M> {
    pub(super) fn new(sh: Arc<Shared<M>>, f: Arc<FileCtx>) -> Self {
        let info = DiskInfo {
            size_bytes: f.size_bytes,
            logical_block_bytes: 512,
            preferred_block_bytes: u32::try_from(f.block_bytes).unwrap_or(4096),
            max_io_bytes: DISK_MAX_IO_BYTES,
            read_only: f.read_only,
            multi_conn_safe: true,
        };
        Self { sh, f, info }
    }

    /// The server block size used for read-modify-write.
    pub fn block_bytes(&self) -> u64 {
        self.f.block_bytes
    }

    /// The layout types the file's file system offers (FATTR4_FS_LAYOUT_TYPES).
    pub fn offered_layout_types(&self) -> &[pnfs_proto::nfs4::LayoutType] {
        &self.f.open.layout_types
    }

    /// The layout type this disk uses (None: MDS I/O only).
    pub fn layout_type(&self) -> Option<pnfs_proto::nfs4::LayoutType> {
        self.f.layout_type
    }

    /// The path on the MDS.
    pub fn path(&self) -> &str {
        &self.f.open.path
    }

    /// Cached pieces of this file.
    pub fn cached_pieces(&self) -> usize {
        self.f.lock().cache.len()
    }

    /// Uncommitted pieces of this file.
    pub fn uncommitted_pieces(&self) -> usize {
        self.f.lock().cache.uncommitted_count()
    }

    /// Commits, returns the layouts and CLOSEs the file. Later requests fail with Shutdown.
    pub async fn close(&self) -> DiskResult<()> {
        close_file(&self.sh, &self.f).await.map_err(DiskError::from)
    }

    fn fail(&self, e: PnfsError) -> DiskError {
        Stats::inc(&self.sh.stats.request_errors);
        tracing::warn!(path = %self.f.open.path, error = %e, "block request failed");
        DiskError::from(e)
    }

    /// Writes zeros over the runs of the range that may hold data (trim without DEALLOCATE):
    /// after it the whole range reads as zeros, like after a DEALLOCATE.
    async fn zero_data_runs(&self, offset_bytes: u64, length_bytes: u64) -> DiskResult<()> {
        let end = offset_bytes + length_bytes;
        let mut at = offset_bytes;
        while at < end {
            let chunk = (end - at).min(TRIM_STATUS_CHUNK_BYTES);
            // Learn the whole chunk's extents first: block_status alone stops after a few
            // LAYOUTGETs and reports the rest as data, which would be zeroed for nothing.
            self.learn_extents(at, at + chunk, TRIM_LAYOUTGETS_PER_CHUNK_MAX)
                .await;
            let runs = self.block_status(at, chunk).await?;
            let mut next = at;
            for run in runs {
                if run.status == ExtentStatus::Data {
                    self.write_zeroes(run.offset_bytes, run.length_bytes, true, false)
                        .await?;
                }
                next = run.offset_bytes + run.length_bytes;
            }
            // block_status never returns an empty list for a valid range; guard progress anyway.
            if next <= at {
                return Err(DiskError::new(
                    DiskErrorKind::Io,
                    format!("trim: no block status for {at}+{chunk}"),
                ));
            }
            at = next;
        }
        Ok(())
    }

    /// Fetches layouts until [start, end) is all cached, at most `max_rounds` LAYOUTGETs.
    /// Each asks for the first gap with a minimum length of one block: Linux nfsd answers
    /// NFS4ERR_LAYOUTUNAVAILABLE when its extent at the offset is shorter than the minimum
    /// length, so asking for a long minimum would turn a fragmented file into MDS-only I/O.
    /// Returns false when layouts are unavailable (the rest stays unknown).
    async fn learn_extents(&self, start: u64, end: u64, max_rounds: u32) -> bool {
        for _ in 0..max_rounds {
            let Some(&(gap_start, gap_end)) = self.f.lock().cache.gaps(start, end).first() else {
                return true;
            };
            let want_end = gap_end.min(gap_start.saturating_add(self.f.block_bytes));
            match ensure_layout(&self.sh, &self.f, gap_start, want_end).await {
                Ok(LayoutOutcome::Progress) => {}
                Ok(LayoutOutcome::Unavailable) => return false,
                Err(e) => {
                    // Not fatal: unknown parts count as data (reads go to the volume or MDS).
                    tracing::debug!(path = %self.f.open.path, error = %e, "LAYOUTGET for extent states failed");
                    return false;
                }
            }
        }
        self.f.lock().cache.gaps(start, end).is_empty()
    }

    async fn flush_inner(&self) -> Result<(), PnfsError> {
        sync_volumes(&self.sh, &self.f).await?;
        commit(&self.sh, &self.f, false).await?;
        // Last: the layout commit may have rewritten data through the MDS.
        super::mds_unstable::commit(&self.sh, &self.f).await
    }
}

impl<M: MetadataServer> Disk for PnfsDisk<M> {
    fn info(&self) -> DiskInfo {
        self.info.clone()
    }

    async fn read_range(&self, range: DiskRange) -> DiskResult<Bytes> {
        let (offset_bytes, length_bytes) = (range.offset_bytes(), range.length_bytes());
        let len = range.length_usize()?;
        let read = engine::read(&self.sh, &self.f, offset_bytes, len);
        // A span per request only when debug logging is on (its poll wrapper costs on every
        // wake of a 4 KiB request otherwise).
        let r = if tracing::enabled!(tracing::Level::DEBUG) {
            read.instrument(tracing::debug_span!("pnfs_read", path = %self.f.open.path, offset_bytes, length_bytes))
                .await
        } else {
            read.await
        };
        r.map(Bytes::from_owner).map_err(|e| self.fail(e))
    }

    async fn read_into(&self, range: DiskRange, mut buf: AlignedBuf) -> DiskResult<AlignedBuf> {
        let len = range.length_usize()?;
        if buf.set_len(len).is_err() {
            buf = AlignedBuf::new(len)
                .map_err(|e| DiskError::new(DiskErrorKind::Io, e.to_string()))?;
        }
        let read = engine::read_into(&self.sh, &self.f, range.offset_bytes(), buf);
        let r = if tracing::enabled!(tracing::Level::DEBUG) {
            read.instrument(tracing::debug_span!("pnfs_read_into", path = %self.f.open.path, offset_bytes = range.offset_bytes(), length_bytes = len))
                .await
        } else {
            read.await
        };
        r.map_err(|e| self.fail(e))
    }

    async fn write_range(&self, range: DiskRange, data: Bytes, fua: bool) -> DiskResult<()> {
        range.check_buffer(data.len())?;
        let offset_bytes = range.offset_bytes();
        if data.is_empty() {
            return Ok(());
        }
        let length_bytes = data.len();
        let write = engine::write(&self.sh, &self.f, offset_bytes, data);
        let r = if tracing::enabled!(tracing::Level::DEBUG) {
            write
                .instrument(tracing::debug_span!("pnfs_write", path = %self.f.open.path, offset_bytes, length_bytes, fua))
                .await
        } else {
            write.await
        };
        r.map_err(|e| self.fail(e))?;
        if fua {
            self.flush_inner().await.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    async fn flush(&self) -> DiskResult<()> {
        self.flush_inner().await.map_err(|e| self.fail(e))
    }

    async fn trim_range(&self, range: DiskRange) -> DiskResult<()> {
        let (offset_bytes, length_bytes) = (range.offset_bytes(), range.length_bytes());
        if length_bytes == 0 {
            return Ok(());
        }
        // Our pending writes must be committed before the server deallocates under them.
        commit(&self.sh, &self.f, false)
            .await
            .map_err(|e| self.fail(e))?;
        match self
            .sh
            .mds
            .deallocate(&self.f.open, offset_bytes, length_bytes)
            .await
        {
            Ok(()) => {
                let bs = super::align_down(offset_bytes, self.f.block_bytes);
                let be = super::align_up(offset_bytes + length_bytes, self.f.block_bytes);
                self.f.lock().cache.remove_range(bs, be);
                Ok(())
            }
            Err(e)
                if e.kind == MdsErrorKind::NotSupported
                    || e.nfs_status() == Some(pnfs_proto::nfs4::NfsStat::NOTSUPP) =>
            {
                self.zero_data_runs(offset_bytes, length_bytes).await
            }
            Err(e) => Err(self.fail(e.into())),
        }
    }

    async fn write_zeroes_range(
        &self,
        range: DiskRange,
        _may_unmap: bool,
        fua: bool,
    ) -> DiskResult<()> {
        let (offset_bytes, length_bytes) = (range.offset_bytes(), range.length_bytes());
        let zeros = Bytes::from(vec![
            0u8;
            usize::try_from(WRITE_ZEROES_CHUNK_BYTES)
                .unwrap_or(1 << 20)
        ]);
        let mut at = offset_bytes;
        let end = offset_bytes + length_bytes;
        while at < end {
            let n = (end - at).min(WRITE_ZEROES_CHUNK_BYTES);
            let n_usize = usize::try_from(n).unwrap_or(0);
            engine::write(&self.sh, &self.f, at, zeros.slice(..n_usize))
                .await
                .map_err(|e| self.fail(e))?;
            at += n;
        }
        if fua {
            self.flush_inner().await.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    async fn block_status_range(&self, range: DiskRange) -> DiskResult<Vec<StatusExtent>> {
        let (offset_bytes, length_bytes) = (range.offset_bytes(), range.length_bytes());
        let end = offset_bytes + length_bytes;
        if length_bytes == 0 {
            return Ok(Vec::new());
        }
        self.learn_extents(offset_bytes, end, self.sh.cfg.max_plan_rounds)
            .await;
        let mut out: Vec<StatusExtent> = Vec::new();
        let mut push = |o: u64, l: u64, status: ExtentStatus| {
            if let Some(last) = out.last_mut() {
                if last.status == status && last.offset_bytes + last.length_bytes == o {
                    last.length_bytes += l;
                    return;
                }
            }
            out.push(StatusExtent {
                offset_bytes: o,
                length_bytes: l,
                status,
            });
        };
        let st = self.f.lock();
        let mut at = offset_bytes;
        for p in st.cache.lookup(offset_bytes, end) {
            if p.file_offset_bytes > at {
                push(at, p.file_offset_bytes - at, ExtentStatus::Data);
            }
            let status = match p.state {
                PieceState::ReadWrite(_) | PieceState::Uncommitted(_) | PieceState::ReadOnly(_) => {
                    ExtentStatus::Data
                }
                PieceState::Invalid {
                    cow_source: Some(_),
                    ..
                } => ExtentStatus::Data,
                PieceState::Invalid {
                    cow_source: None, ..
                } => ExtentStatus::Zero,
                PieceState::None => ExtentStatus::Hole,
            };
            push(p.file_offset_bytes, p.length_bytes, status);
            at = p.end_bytes();
        }
        if at < end {
            push(at, end - at, ExtentStatus::Data);
        }
        Ok(out)
    }
}
