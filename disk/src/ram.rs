//! A sparse RAM disk for tests (cargo feature `testing`, not in the default build).

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::{
    Disk, DiskError, DiskErrorKind, DiskInfo, DiskRange, DiskResult, ExtentStatus, StatusExtent,
};

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

    fn zero(&self, range: DiskRange) -> DiskResult<()> {
        let (offset, len) = (range.offset_bytes(), range.length_bytes());
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

    async fn read_range(&self, range: DiskRange) -> DiskResult<Bytes> {
        let mut out = vec![0u8; range.length_usize()?];
        let chunks = self.chunks()?;
        Self::pieces(
            range.offset_bytes(),
            range.length_bytes(),
            |chunk, within, at, n| {
                let dst = &mut out[ix(at)..ix(at + n)];
                match chunks.get(&chunk) {
                    Some(c) => dst.copy_from_slice(&c[ix(within)..ix(within + n)]),
                    None => dst.fill(0),
                }
            },
        );
        Ok(Bytes::from(out))
    }

    async fn write_range(&self, range: DiskRange, data: Bytes, _fua: bool) -> DiskResult<()> {
        range.check_buffer(data.len())?;
        let mut chunks = self.chunks()?;
        Self::pieces(
            range.offset_bytes(),
            range.length_bytes(),
            |chunk, within, at, n| {
                let c = chunks
                    .entry(chunk)
                    .or_insert_with(|| vec![0u8; ix(CHUNK_BYTES)].into_boxed_slice());
                c[ix(within)..ix(within + n)].copy_from_slice(&data[ix(at)..ix(at + n)]);
            },
        );
        Ok(())
    }

    async fn flush(&self) -> DiskResult<()> {
        Ok(())
    }

    async fn trim_range(&self, range: DiskRange) -> DiskResult<()> {
        self.zero(range)
    }

    async fn write_zeroes_range(
        &self,
        range: DiskRange,
        _may_unmap: bool,
        _fua: bool,
    ) -> DiskResult<()> {
        self.zero(range)
    }

    async fn block_status_range(&self, range: DiskRange) -> DiskResult<Vec<StatusExtent>> {
        Ok(vec![StatusExtent {
            offset_bytes: range.offset_bytes(),
            length_bytes: range.length_bytes(),
            status: ExtentStatus::Data,
        }])
    }
}
