//! The Disk API: what every frontend (NBD, ublk) sees of one configured file.
//!
//! Requests are validated once, at [`validate_request`], before any backend code runs: it
//! returns the [`DiskRange`] that the [`Disk`] methods take, so nothing behind the frontend
//! checks a range again. Errors are one type, [`DiskError`], mapped to an errno once, by
//! [`DiskError::errno`].

pub mod aligned;
pub mod plug;
#[cfg(any(test, feature = "testing"))]
pub mod ram;

pub use aligned::AlignedBuf;

use std::future::Future;

use bytes::Bytes;
use thiserror::Error;

/// The largest single read or write a frontend may pass (frontends split larger requests).
pub const DISK_MAX_IO_BYTES: u32 = 32 * 1024 * 1024;

/// What a range of the disk holds, for NBD `base:allocation` and SEEK_DATA-like callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtentStatus {
    /// Written data.
    Data,
    /// Allocated but reads as zeros (e.g. a pNFS INVALID_DATA extent).
    Zero,
    /// Not allocated; reads as zeros (NONE_DATA, or past the allocated part).
    Hole,
}

/// One run of the same [`ExtentStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusExtent {
    /// Start, in bytes from the start of the disk.
    pub offset_bytes: u64,
    /// Length in bytes.
    pub length_bytes: u64,
    /// What the range holds.
    pub status: ExtentStatus,
}

/// The kind of a [`DiskError`]: small and matchable; the errno mapping is on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskErrorKind {
    /// Range past the end, misaligned, or a length of zero where not allowed.
    InvalidRange,
    /// Write-type request on a read-only disk.
    ReadOnly,
    /// A request larger than the backend accepts.
    TooLarge,
    /// The storage failed (volume and MDS paths both failed).
    Io,
    /// No space left to allocate.
    NoSpace,
    /// The operation is not supported by this disk.
    NotSupported,
    /// The gateway is shutting down.
    Shutdown,
}

/// The single error type of the Disk API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind:?}: {message}")]
pub struct DiskError {
    /// What kind of failure.
    pub kind: DiskErrorKind,
    /// Human-readable detail for logs.
    pub message: String,
}

impl DiskError {
    /// A new error.
    pub fn new(kind: DiskErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The one errno mapping, used by every frontend.
    pub fn errno(&self) -> i32 {
        match self.kind {
            DiskErrorKind::InvalidRange => libc_errno::EINVAL,
            DiskErrorKind::ReadOnly => libc_errno::EPERM,
            DiskErrorKind::TooLarge => libc_errno::EOVERFLOW,
            DiskErrorKind::Io => libc_errno::EIO,
            DiskErrorKind::NoSpace => libc_errno::ENOSPC,
            DiskErrorKind::NotSupported => libc_errno::ENOTSUP,
            DiskErrorKind::Shutdown => libc_errno::ESHUTDOWN,
        }
    }
}

/// Linux errno values used at the frontends (kept here so no frontend invents its own).
pub mod libc_errno {
    /// EPERM.
    pub const EPERM: i32 = 1;
    /// EIO.
    pub const EIO: i32 = 5;
    /// ENOMEM.
    pub const ENOMEM: i32 = 12;
    /// EINVAL.
    pub const EINVAL: i32 = 22;
    /// ENOSPC.
    pub const ENOSPC: i32 = 28;
    /// EOVERFLOW.
    pub const EOVERFLOW: i32 = 75;
    /// ENOTSUP / EOPNOTSUPP.
    pub const ENOTSUP: i32 = 95;
    /// ESHUTDOWN.
    pub const ESHUTDOWN: i32 = 108;
}

/// Result of a Disk API call.
pub type DiskResult<T> = Result<T, DiskError>;

/// Static facts about a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// Size in bytes.
    pub size_bytes: u64,
    /// Smallest unit that can be written without read-modify-write by the frontend's peer
    /// (reported as the logical block size); at least 512.
    pub logical_block_bytes: u32,
    /// Preferred unit (the pNFS server block size): physical/optimal block size.
    pub preferred_block_bytes: u32,
    /// Largest request the disk takes in one call.
    pub max_io_bytes: u32,
    /// Writes are refused.
    pub read_only: bool,
    /// Several frontend connections may be served at once with consistent results
    /// (NBD multi-conn): true when all connections share one cache and flush covers all.
    pub multi_conn_safe: bool,
}

/// A range of a disk checked once, by [`validate_request`], against the disk's [`DiskInfo`]:
/// it ends inside the disk, a read or write is at most `max_io_bytes` long, and a write-type
/// range is on a writable disk. It can be built no other way, so a [`Disk`] method that takes
/// one does not check it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiskRange {
    offset_bytes: u64,
    length_bytes: u64,
}

impl DiskRange {
    /// Start, in bytes from the start of the disk.
    pub fn offset_bytes(&self) -> u64 {
        self.offset_bytes
    }

    /// Length in bytes.
    pub fn length_bytes(&self) -> u64 {
        self.length_bytes
    }

    /// One past the last byte (cannot overflow: checked to be at most the disk size).
    pub fn end_bytes(&self) -> u64 {
        self.offset_bytes + self.length_bytes
    }

    /// The length as a buffer length. A read or write range is at most `max_io_bytes` (a
    /// u32), so this is exact for those; a longer range (trim, write_zeroes, block status)
    /// is an error rather than a truncation.
    pub fn length_usize(&self) -> DiskResult<usize> {
        usize::try_from(self.length_bytes).map_err(|_| {
            DiskError::new(
                DiskErrorKind::TooLarge,
                format!("a range of {} bytes as one buffer", self.length_bytes),
            )
        })
    }

    /// The length of a read or write range as the u32 every Disk I/O length fits in
    /// (checked against `max_io_bytes`); an error for a longer range.
    pub fn io_length_bytes(&self) -> DiskResult<u32> {
        u32::try_from(self.length_bytes).map_err(|_| {
            DiskError::new(
                DiskErrorKind::TooLarge,
                format!("an I/O of {} bytes", self.length_bytes),
            )
        })
    }

    /// Checks that a caller's buffer (of `len` bytes) is exactly as long as the range.
    pub fn check_buffer(&self, len: usize) -> DiskResult<()> {
        if buffer_length_bytes(len) != self.length_bytes {
            return Err(DiskError::new(
                DiskErrorKind::InvalidRange,
                format!(
                    "a buffer of {len} bytes for a range of {}",
                    self.length_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// The length of a caller's buffer as a range length.
fn buffer_length_bytes(len: usize) -> u64 {
    // usize is at most 64 bits on every target this builds for.
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// A block device as the frontends see it. Every method is cancel-safe only in the sense that
/// a dropped future never leaves a half-applied write acknowledged.
///
/// The `*_range` methods, [`Disk::read_into`] and [`Disk::write_from`] take a [`DiskRange`]
/// that the frontend checked once with [`validate_request`]; implementations do not check it
/// again. The methods named by offset and length ([`Disk::read`], [`Disk::write`], …) are for
/// callers that are not a frontend (tools, tests): they check the range, then call the
/// `*_range` method.
pub trait Disk: Send + Sync + 'static {
    /// Size, block sizes and flags.
    fn info(&self) -> DiskInfo;

    /// Reads the range.
    fn read_range(&self, range: DiskRange) -> impl Future<Output = DiskResult<Bytes>> + Send;

    /// Reads the range into the caller's buffer, handed over and handed back with its
    /// visible length set to the range's length (a frontend that owns its I/O buffers, like
    /// ublk, passes them here). The buffer is owned, not borrowed, so that a disk can give it
    /// to the kernel (io_uring, `O_DIRECT`) and keep it alive until the kernel is done with
    /// it even if this future is dropped. The buffer handed back may be another one (after a
    /// fallback, or when the capacity was too small); on an error it is gone. A disk that can
    /// read into it directly overrides this and saves a copy; the default reads with
    /// [`Disk::read_range`] and copies.
    fn read_into(
        &self,
        range: DiskRange,
        mut buf: AlignedBuf,
    ) -> impl Future<Output = DiskResult<AlignedBuf>> + Send {
        async move {
            let data = self.read_range(range).await?;
            range.check_buffer(data.len()).map_err(|_| {
                DiskError::new(
                    DiskErrorKind::Io,
                    format!(
                        "disk returned {} bytes for a read of {}",
                        data.len(),
                        range.length_bytes
                    ),
                )
            })?;
            if buf.set_len(data.len()).is_err() {
                buf = AlignedBuf::new(data.len())
                    .map_err(|e| DiskError::new(DiskErrorKind::Io, e.to_string()))?;
            }
            buf.as_mut_slice().copy_from_slice(&data);
            Ok(buf)
        }
    }

    /// Writes `data` (exactly the range's length) over the range; with `fua` it is durable
    /// when this returns.
    fn write_range(
        &self,
        range: DiskRange,
        data: Bytes,
        fua: bool,
    ) -> impl Future<Output = DiskResult<()>> + Send;

    /// Writes the first range-length bytes of the caller's buffer over the range, like
    /// [`Disk::write_range`]; the buffer is handed over (it goes to the volume as it is:
    /// aligned memory that an `O_DIRECT` write can use without a copy). An error if the
    /// buffer is shorter than the range.
    fn write_from(
        &self,
        range: DiskRange,
        mut buf: AlignedBuf,
        fua: bool,
    ) -> impl Future<Output = DiskResult<()>> + Send {
        async move {
            let len = range.length_usize()?;
            if len > buf.len() {
                return Err(DiskError::new(
                    DiskErrorKind::InvalidRange,
                    format!("a buffer of {} bytes for a range of {len}", buf.len()),
                ));
            }
            buf.set_len(len)
                .map_err(|e| DiskError::new(DiskErrorKind::Io, e.to_string()))?;
            self.write_range(range, Bytes::from_owner(buf), fua).await
        }
    }

    /// Makes every completed write durable (on the volume, and LAYOUTCOMMIT done).
    fn flush(&self) -> impl Future<Output = DiskResult<()>> + Send;

    /// Discards the range: it may read back as zeros or as old data afterwards (NBD TRIM).
    fn trim_range(&self, range: DiskRange) -> impl Future<Output = DiskResult<()>> + Send;

    /// Makes the range read as zeros; with `may_unmap` it may deallocate.
    fn write_zeroes_range(
        &self,
        range: DiskRange,
        may_unmap: bool,
        fua: bool,
    ) -> impl Future<Output = DiskResult<()>> + Send;

    /// What the range holds, as consecutive runs starting at its offset (the last run may
    /// stop short of its end; never returns an empty list for a non-empty range).
    fn block_status_range(
        &self,
        range: DiskRange,
    ) -> impl Future<Output = DiskResult<Vec<StatusExtent>>> + Send;

    /// Checks a read of `length_bytes` at `offset_bytes`, then [`Disk::read_range`].
    fn read(
        &self,
        offset_bytes: u64,
        length_bytes: u32,
    ) -> impl Future<Output = DiskResult<Bytes>> + Send {
        async move {
            let info = self.info();
            let range = validate_request(
                &info,
                RequestKind::Read,
                offset_bytes,
                u64::from(length_bytes),
            )?;
            self.read_range(range).await
        }
    }

    /// Checks a write of `data` at `offset_bytes`, then [`Disk::write_range`].
    fn write(
        &self,
        offset_bytes: u64,
        data: Bytes,
        fua: bool,
    ) -> impl Future<Output = DiskResult<()>> + Send {
        async move {
            let info = self.info();
            let range = validate_request(
                &info,
                RequestKind::Write,
                offset_bytes,
                buffer_length_bytes(data.len()),
            )?;
            self.write_range(range, data, fua).await
        }
    }

    /// Checks a trim of the range, then [`Disk::trim_range`].
    fn trim(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> impl Future<Output = DiskResult<()>> + Send {
        async move {
            let info = self.info();
            let range = validate_request(&info, RequestKind::Trim, offset_bytes, length_bytes)?;
            self.trim_range(range).await
        }
    }

    /// Checks a write_zeroes of the range, then [`Disk::write_zeroes_range`].
    fn write_zeroes(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
        may_unmap: bool,
        fua: bool,
    ) -> impl Future<Output = DiskResult<()>> + Send {
        async move {
            let info = self.info();
            let range =
                validate_request(&info, RequestKind::WriteZeroes, offset_bytes, length_bytes)?;
            self.write_zeroes_range(range, may_unmap, fua).await
        }
    }

    /// Checks a block status query of the range, then [`Disk::block_status_range`].
    fn block_status(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> impl Future<Output = DiskResult<Vec<StatusExtent>>> + Send {
        async move {
            let info = self.info();
            let range = validate_request(&info, RequestKind::Status, offset_bytes, length_bytes)?;
            self.block_status_range(range).await
        }
    }
}

/// The kinds of request, for [`validate_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// read.
    Read,
    /// write.
    Write,
    /// trim.
    Trim,
    /// write_zeroes.
    WriteZeroes,
    /// block_status / cache.
    Status,
}

/// The one check every frontend runs before calling the disk: range, size limit, read-only.
/// The [`DiskRange`] it returns is what the disk's methods take.
pub fn validate_request(
    info: &DiskInfo,
    kind: RequestKind,
    offset_bytes: u64,
    length_bytes: u64,
) -> DiskResult<DiskRange> {
    let end = offset_bytes
        .checked_add(length_bytes)
        .ok_or_else(|| DiskError::new(DiskErrorKind::InvalidRange, "offset + length overflows"))?;
    if end > info.size_bytes {
        return Err(DiskError::new(
            DiskErrorKind::InvalidRange,
            format!(
                "range {offset_bytes}+{length_bytes} ends past the disk size {}",
                info.size_bytes
            ),
        ));
    }
    let writes = matches!(
        kind,
        RequestKind::Write | RequestKind::Trim | RequestKind::WriteZeroes
    );
    if writes && info.read_only {
        return Err(DiskError::new(
            DiskErrorKind::ReadOnly,
            "the disk is read-only",
        ));
    }
    if matches!(kind, RequestKind::Read | RequestKind::Write)
        && length_bytes > u64::from(info.max_io_bytes)
    {
        return Err(DiskError::new(
            DiskErrorKind::TooLarge,
            format!(
                "request of {length_bytes} bytes exceeds the limit {}",
                info.max_io_bytes
            ),
        ));
    }
    Ok(DiskRange {
        offset_bytes,
        length_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DiskInfo {
        DiskInfo {
            size_bytes: 1 << 20,
            logical_block_bytes: 512,
            preferred_block_bytes: 4096,
            max_io_bytes: 65536,
            read_only: true,
            multi_conn_safe: true,
        }
    }

    #[test]
    fn validation_catches_range_size_and_read_only() {
        let i = info();
        let r = validate_request(&i, RequestKind::Read, 4096, 8192).unwrap();
        assert_eq!(
            (r.offset_bytes(), r.length_bytes(), r.end_bytes()),
            (4096, 8192, 12288)
        );
        assert_eq!(r.io_length_bytes(), Ok(8192));
        let e = validate_request(&i, RequestKind::Read, (1 << 20) - 1, 2).unwrap_err();
        assert_eq!(e.errno(), libc_errno::EINVAL);
        let e = validate_request(&i, RequestKind::Read, u64::MAX, 2).unwrap_err();
        assert_eq!(e.kind, DiskErrorKind::InvalidRange);
        let e = validate_request(&i, RequestKind::Write, 0, 512).unwrap_err();
        assert_eq!(e.errno(), libc_errno::EPERM);
        let e = validate_request(&i, RequestKind::Read, 0, 65537).unwrap_err();
        assert_eq!(e.kind, DiskErrorKind::TooLarge);
    }

    #[tokio::test]
    async fn range_methods_by_offset_check_the_range_and_buffers_must_match_it() {
        let d = ram::RamDisk::new(1 << 20);
        d.write(4096, Bytes::from(vec![7u8; 4096]), false)
            .await
            .unwrap();
        let past_end = d.read((1 << 20) - 512, 1024).await.unwrap_err();
        assert_eq!(past_end.kind, DiskErrorKind::InvalidRange);
        let too_long = d.write(0, Bytes::from(vec![0u8; 1 << 21]), false).await;
        assert_eq!(too_long.unwrap_err().kind, DiskErrorKind::InvalidRange);
        let range = validate_request(&d.info(), RequestKind::Read, 4096, 4096).unwrap();
        let short = AlignedBuf::new(512).unwrap();
        let e = d.write_from(range, short, false).await.unwrap_err();
        assert_eq!(e.kind, DiskErrorKind::InvalidRange);
        // A bigger buffer comes back with the range's length and its bytes.
        let big = AlignedBuf::zeroed(65536).unwrap();
        let out = d.read_into(range, big).await.unwrap();
        assert_eq!(out.len(), 4096);
        assert!(out.as_slice().iter().all(|&b| b == 7));
        // A smaller one is replaced.
        let out = d
            .read_into(range, AlignedBuf::new(0).unwrap())
            .await
            .unwrap();
        assert_eq!(out.as_slice(), &vec![7u8; 4096][..]);
        let mut data = AlignedBuf::new(8192).unwrap();
        data.as_mut_slice().fill(9);
        d.write_from(range, data, false).await.unwrap();
        let back = d.read_range(range).await.unwrap();
        assert!(back.iter().all(|&b| b == 9));
    }
}
