//! Test disks: the Disk API's RAM disk (re-exported), a flat RAM disk for the benchmark, and a
//! fault layer that fails reads of one range with EIO.

#![allow(dead_code)]

use std::ops::Range;

use bytes::Bytes;
pub use pnfs_disk::ram::RamDisk;
use pnfs_disk::{Disk, DiskError, DiskErrorKind, DiskInfo, DiskResult, ExtentStatus, StatusExtent};

/// An index below one request's length (a u32) or the flat disk's size: fits a usize.
#[allow(clippy::cast_possible_truncation)]
fn ix(v: u64) -> usize {
    v as usize
}

/// A fault layer: reads overlapping `eio_range` fail with an I/O error; all else passes.
#[derive(Debug)]
pub struct FailReads<D> {
    /// The disk underneath.
    pub inner: D,
    /// Byte range whose reads fail.
    pub eio_range: Range<u64>,
}

impl<D: Disk> Disk for FailReads<D> {
    fn info(&self) -> DiskInfo {
        self.inner.info()
    }

    async fn read(&self, offset_bytes: u64, length_bytes: u32) -> DiskResult<Bytes> {
        let end = offset_bytes.saturating_add(u64::from(length_bytes));
        if offset_bytes < self.eio_range.end && self.eio_range.start < end {
            return Err(DiskError::new(
                DiskErrorKind::Io,
                format!("injected read error at {offset_bytes}+{length_bytes}"),
            ));
        }
        self.inner.read(offset_bytes, length_bytes).await
    }

    async fn read_into(&self, offset_bytes: u64, out: &mut [u8]) -> DiskResult<()> {
        let end = offset_bytes.saturating_add(u64::try_from(out.len()).unwrap_or(u64::MAX));
        if offset_bytes < self.eio_range.end && self.eio_range.start < end {
            return Err(DiskError::new(
                DiskErrorKind::Io,
                format!("injected read error at {offset_bytes}+{}", out.len()),
            ));
        }
        self.inner.read_into(offset_bytes, out).await
    }

    async fn write(&self, offset_bytes: u64, data: Bytes, fua: bool) -> DiskResult<()> {
        self.inner.write(offset_bytes, data, fua).await
    }

    async fn flush(&self) -> DiskResult<()> {
        self.inner.flush().await
    }

    async fn trim(&self, offset_bytes: u64, length_bytes: u64) -> DiskResult<()> {
        self.inner.trim(offset_bytes, length_bytes).await
    }

    async fn write_zeroes(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
        may_unmap: bool,
        fua: bool,
    ) -> DiskResult<()> {
        self.inner
            .write_zeroes(offset_bytes, length_bytes, may_unmap, fua)
            .await
    }

    async fn block_status(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> DiskResult<Vec<StatusExtent>> {
        self.inner.block_status(offset_bytes, length_bytes).await
    }
}

/// A RAM disk in one flat buffer (the benchmark's: its reads are one copy of the whole
/// request, like the libublk-only server it is compared with; [`RamDisk`] copies per 64 KiB
/// chunk, which under TCG is several times slower per byte than one large copy).
#[derive(Debug)]
pub struct FlatRamDisk {
    info: DiskInfo,
    data: std::sync::RwLock<Vec<u8>>,
}

impl FlatRamDisk {
    /// A writable zeroed disk of `size_bytes` (pages are mapped on first write).
    pub fn new(size_bytes: u64) -> Self {
        let mut info = RamDisk::new(0).info();
        info.size_bytes = size_bytes;
        Self {
            info,
            data: std::sync::RwLock::new(vec![0u8; ix(size_bytes)]),
        }
    }

    fn range(&self, offset: u64, len: usize) -> DiskResult<Range<usize>> {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        match offset.checked_add(len) {
            Some(end) if end <= self.info.size_bytes => Ok(ix(offset)..ix(end)),
            _ => Err(DiskError::new(
                DiskErrorKind::InvalidRange,
                format!("{offset}+{len} past the end"),
            )),
        }
    }

    fn zero(&self, offset: u64, len: u64) -> DiskResult<()> {
        let r = self.range(offset, ix(len))?;
        let mut data = self
            .data
            .write()
            .map_err(|_| DiskError::new(DiskErrorKind::Io, "RAM disk lock poisoned"))?;
        data[r].fill(0);
        Ok(())
    }
}

impl Disk for FlatRamDisk {
    fn info(&self) -> DiskInfo {
        self.info.clone()
    }

    async fn read(&self, offset_bytes: u64, length_bytes: u32) -> DiskResult<Bytes> {
        let mut out = vec![0u8; ix(u64::from(length_bytes))];
        self.read_into(offset_bytes, &mut out).await?;
        Ok(Bytes::from(out))
    }

    async fn read_into(&self, offset_bytes: u64, out: &mut [u8]) -> DiskResult<()> {
        let r = self.range(offset_bytes, out.len())?;
        let data = self
            .data
            .read()
            .map_err(|_| DiskError::new(DiskErrorKind::Io, "RAM disk lock poisoned"))?;
        out.copy_from_slice(&data[r]);
        Ok(())
    }

    async fn write(&self, offset_bytes: u64, data: Bytes, _fua: bool) -> DiskResult<()> {
        let r = self.range(offset_bytes, data.len())?;
        let mut store = self
            .data
            .write()
            .map_err(|_| DiskError::new(DiskErrorKind::Io, "RAM disk lock poisoned"))?;
        store[r].copy_from_slice(&data);
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
        self.range(offset_bytes, ix(length_bytes))?;
        Ok(vec![StatusExtent {
            offset_bytes,
            length_bytes,
            status: ExtentStatus::Data,
        }])
    }
}
