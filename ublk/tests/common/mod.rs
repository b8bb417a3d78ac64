//! Test disks: the Disk API's RAM disk (re-exported), a flat RAM disk for the benchmark, and a
//! fault layer that fails reads of one range with EIO.

#![allow(dead_code)]

use std::ops::Range;

use bytes::Bytes;
pub use pnfs_disk::ram::RamDisk;
use pnfs_disk::{
    AlignedBuf, Disk, DiskError, DiskErrorKind, DiskInfo, DiskRange, DiskResult, ExtentStatus,
    StatusExtent,
};

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

impl<D> FailReads<D> {
    fn check(&self, range: DiskRange) -> DiskResult<()> {
        if range.offset_bytes() < self.eio_range.end && self.eio_range.start < range.end_bytes() {
            return Err(DiskError::new(
                DiskErrorKind::Io,
                format!(
                    "injected read error at {}+{}",
                    range.offset_bytes(),
                    range.length_bytes()
                ),
            ));
        }
        Ok(())
    }
}

impl<D: Disk> Disk for FailReads<D> {
    fn info(&self) -> DiskInfo {
        self.inner.info()
    }

    async fn read_range(&self, range: DiskRange) -> DiskResult<Bytes> {
        self.check(range)?;
        self.inner.read_range(range).await
    }

    async fn read_into(&self, range: DiskRange, buf: AlignedBuf) -> DiskResult<AlignedBuf> {
        self.check(range)?;
        self.inner.read_into(range, buf).await
    }

    async fn write_range(&self, range: DiskRange, data: Bytes, fua: bool) -> DiskResult<()> {
        self.inner.write_range(range, data, fua).await
    }

    async fn write_from(&self, range: DiskRange, data: AlignedBuf, fua: bool) -> DiskResult<()> {
        self.inner.write_from(range, data, fua).await
    }

    async fn flush(&self) -> DiskResult<()> {
        self.inner.flush().await
    }

    async fn trim_range(&self, range: DiskRange) -> DiskResult<()> {
        self.inner.trim_range(range).await
    }

    async fn write_zeroes_range(
        &self,
        range: DiskRange,
        may_unmap: bool,
        fua: bool,
    ) -> DiskResult<()> {
        self.inner.write_zeroes_range(range, may_unmap, fua).await
    }

    async fn block_status_range(&self, range: DiskRange) -> DiskResult<Vec<StatusExtent>> {
        self.inner.block_status_range(range).await
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

    fn lock(&self) -> DiskResult<std::sync::RwLockWriteGuard<'_, Vec<u8>>> {
        self.data
            .write()
            .map_err(|_| DiskError::new(DiskErrorKind::Io, "RAM disk lock poisoned"))
    }
}

/// The range's bytes in the flat buffer (the range is checked against the disk's size).
fn span(range: DiskRange) -> Range<usize> {
    ix(range.offset_bytes())..ix(range.end_bytes())
}

impl Disk for FlatRamDisk {
    fn info(&self) -> DiskInfo {
        self.info.clone()
    }

    async fn read_range(&self, range: DiskRange) -> DiskResult<Bytes> {
        let data = self
            .data
            .read()
            .map_err(|_| DiskError::new(DiskErrorKind::Io, "RAM disk lock poisoned"))?;
        Ok(Bytes::copy_from_slice(&data[span(range)]))
    }

    async fn read_into(&self, range: DiskRange, mut buf: AlignedBuf) -> DiskResult<AlignedBuf> {
        if buf.set_len(range.length_usize()?).is_err() {
            buf = AlignedBuf::new(range.length_usize()?)
                .map_err(|e| DiskError::new(DiskErrorKind::Io, e.to_string()))?;
        }
        let data = self
            .data
            .read()
            .map_err(|_| DiskError::new(DiskErrorKind::Io, "RAM disk lock poisoned"))?;
        buf.as_mut_slice().copy_from_slice(&data[span(range)]);
        Ok(buf)
    }

    async fn write_range(&self, range: DiskRange, data: Bytes, _fua: bool) -> DiskResult<()> {
        range.check_buffer(data.len())?;
        self.lock()?[span(range)].copy_from_slice(&data);
        Ok(())
    }

    async fn flush(&self) -> DiskResult<()> {
        Ok(())
    }

    async fn trim_range(&self, range: DiskRange) -> DiskResult<()> {
        self.lock()?[span(range)].fill(0);
        Ok(())
    }

    async fn write_zeroes_range(
        &self,
        range: DiskRange,
        _may_unmap: bool,
        _fua: bool,
    ) -> DiskResult<()> {
        self.lock()?[span(range)].fill(0);
        Ok(())
    }

    async fn block_status_range(&self, range: DiskRange) -> DiskResult<Vec<StatusExtent>> {
        Ok(vec![StatusExtent {
            offset_bytes: range.offset_bytes(),
            length_bytes: range.length_bytes(),
            status: ExtentStatus::Data,
        }])
    }
}
