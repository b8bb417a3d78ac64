//! A sparse RAM disk for tests (cargo feature `testing`, not in the default build).

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::{Disk, DiskError, DiskErrorKind, DiskInfo, DiskResult, ExtentStatus, StatusExtent};

/// Bytes per allocation chunk of [`RamDisk`].
const CHUNK_BYTES: u64 = 64 * 1024;

/// An index below `CHUNK_BYTES` or below one request's length (a u32): fits a usize.
#[allow(clippy::cast_possible_truncation)]
fn ix(v: u64) -> usize {
    v as usize
}

/// A sparse in-memory disk: chunks are allocated on first write, dropped when fully
/// trimmed or zeroed.
#[derive(Debug)]
pub struct RamDisk {
    info: DiskInfo,
    chunks: Mutex<HashMap<u64, Box<[u8]>>>,
}

impl RamDisk {
    /// A writable disk of `size_bytes`, 512-byte logical and 4 KiB preferred blocks.
    pub fn new(size_bytes: u64) -> Self {
        Self {
            info: DiskInfo {
                size_bytes,
                logical_block_bytes: 512,
                preferred_block_bytes: 4096,
                max_io_bytes: crate::DISK_MAX_IO_BYTES,
                read_only: false,
                multi_conn_safe: true,
            },
            chunks: Mutex::new(HashMap::new()),
        }
    }

    fn chunks(&self) -> DiskResult<std::sync::MutexGuard<'_, HashMap<u64, Box<[u8]>>>> {
        self.chunks
            .lock()
            .map_err(|_| DiskError::new(DiskErrorKind::Io, "RAM disk lock poisoned"))
    }

    fn check(&self, offset: u64, len: u64) -> DiskResult<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.info.size_bytes => Ok(()),
            _ => Err(DiskError::new(
                DiskErrorKind::InvalidRange,
                format!("{offset}+{len} past the end"),
            )),
        }
    }

    /// Calls `f(chunk index, start in chunk, start in request, length)` per chunk piece.
    fn pieces(offset: u64, len: u64, mut f: impl FnMut(u64, u64, u64, u64)) {
        let mut done = 0;
        while done < len {
            let pos = offset + done;
            let (chunk, within) = (pos / CHUNK_BYTES, pos % CHUNK_BYTES);
            let n = (CHUNK_BYTES - within).min(len - done);
            f(chunk, within, done, n);
            done += n;
        }
    }

    fn zero(&self, offset: u64, len: u64) -> DiskResult<()> {
        self.check(offset, len)?;
        let mut chunks = self.chunks()?;
        Self::pieces(offset, len, |chunk, within, _, n| {
            if n == CHUNK_BYTES {
                chunks.remove(&chunk);
            } else if let Some(c) = chunks.get_mut(&chunk) {
                c[ix(within)..ix(within + n)].fill(0);
            }
        });
        Ok(())
    }
}

impl Disk for RamDisk {
    fn info(&self) -> DiskInfo {
        self.info.clone()
    }

    async fn read(&self, offset_bytes: u64, length_bytes: u32) -> DiskResult<Bytes> {
        let mut out = vec![0u8; ix(u64::from(length_bytes))];
        self.read_into(offset_bytes, &mut out).await?;
        Ok(Bytes::from(out))
    }

    async fn read_into(&self, offset_bytes: u64, out: &mut [u8]) -> DiskResult<()> {
        let len = u64::try_from(out.len()).unwrap_or(u64::MAX);
        self.check(offset_bytes, len)?;
        let chunks = self.chunks()?;
        Self::pieces(offset_bytes, len, |chunk, within, at, n| {
            let dst = &mut out[ix(at)..ix(at + n)];
            match chunks.get(&chunk) {
                Some(c) => dst.copy_from_slice(&c[ix(within)..ix(within + n)]),
                None => dst.fill(0),
            }
        });
        Ok(())
    }

    async fn write(&self, offset_bytes: u64, data: Bytes, _fua: bool) -> DiskResult<()> {
        let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        self.check(offset_bytes, len)?;
        let mut chunks = self.chunks()?;
        Self::pieces(offset_bytes, len, |chunk, within, at, n| {
            let c = chunks
                .entry(chunk)
                .or_insert_with(|| vec![0u8; ix(CHUNK_BYTES)].into_boxed_slice());
            c[ix(within)..ix(within + n)].copy_from_slice(&data[ix(at)..ix(at + n)]);
        });
        Ok(())
    }

    async fn flush(&self) -> DiskResult<()> {
        Ok(())
    }

    async fn trim(&self, offset_bytes: u64, length_bytes: u64) -> DiskResult<()> {
        self.zero(offset_bytes, length_bytes)
    }

    async fn write_zeroes(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
        _may_unmap: bool,
        _fua: bool,
    ) -> DiskResult<()> {
        self.zero(offset_bytes, length_bytes)
    }

    async fn block_status(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> DiskResult<Vec<StatusExtent>> {
        self.check(offset_bytes, length_bytes)?;
        Ok(vec![StatusExtent {
            offset_bytes,
            length_bytes,
            status: ExtentStatus::Data,
        }])
    }
}
