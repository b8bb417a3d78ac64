//! The Disk API: what every frontend (NBD, ublk) sees of one configured file.
//!
//! Requests are validated once, at [`validate_request`], before any backend code runs; errors
//! are one type, [`DiskError`], mapped to an errno once, by [`DiskError::errno`].

#[cfg(feature = "testing")]
pub mod ram;

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

/// A block device as the frontends see it. Every method is cancel-safe only in the sense that
/// a dropped future never leaves a half-applied write acknowledged.
pub trait Disk: Send + Sync + 'static {
    /// Size, block sizes and flags.
    fn info(&self) -> DiskInfo;

    /// Reads `length_bytes` at `offset_bytes`.
    fn read(
        &self,
        offset_bytes: u64,
        length_bytes: u32,
    ) -> impl Future<Output = DiskResult<Bytes>> + Send;

    /// Reads `out.len()` bytes at `offset_bytes` into the caller's buffer (a frontend that
    /// owns its I/O buffer, like ublk, passes it here). A disk that can fill the buffer
    /// directly overrides this and saves a copy; the default reads with [`Disk::read`] and
    /// copies. The range is validated like a read of `out.len()` bytes.
    fn read_into<'a>(
        &'a self,
        offset_bytes: u64,
        out: &'a mut [u8],
    ) -> impl Future<Output = DiskResult<()>> + Send + 'a {
        async move {
            let length_bytes = u32::try_from(out.len()).map_err(|_| {
                DiskError::new(
                    DiskErrorKind::TooLarge,
                    format!("a read of {} bytes", out.len()),
                )
            })?;
            let data = self.read(offset_bytes, length_bytes).await?;
            if data.len() != out.len() {
                return Err(DiskError::new(
                    DiskErrorKind::Io,
                    format!(
                        "disk returned {} bytes for a read of {length_bytes}",
                        data.len()
                    ),
                ));
            }
            out.copy_from_slice(&data);
            Ok(())
        }
    }

    /// Writes `data` at `offset_bytes`; with `fua` it is durable when this returns.
    fn write(
        &self,
        offset_bytes: u64,
        data: Bytes,
        fua: bool,
    ) -> impl Future<Output = DiskResult<()>> + Send;

    /// Makes every completed write durable (on the volume, and LAYOUTCOMMIT done).
    fn flush(&self) -> impl Future<Output = DiskResult<()>> + Send;

    /// Discards a range: it may read back as zeros or as old data afterwards (NBD TRIM).
    fn trim(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> impl Future<Output = DiskResult<()>> + Send;

    /// Makes a range read as zeros; with `may_unmap` it may deallocate.
    fn write_zeroes(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
        may_unmap: bool,
        fua: bool,
    ) -> impl Future<Output = DiskResult<()>> + Send;

    /// What the range holds, as consecutive runs starting at `offset_bytes` (the last run may
    /// stop short of `offset_bytes + length_bytes`; never returns an empty list for a valid
    /// non-empty range).
    fn block_status(
        &self,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> impl Future<Output = DiskResult<Vec<StatusExtent>>> + Send;
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
pub fn validate_request(
    info: &DiskInfo,
    kind: RequestKind,
    offset_bytes: u64,
    length_bytes: u64,
) -> DiskResult<()> {
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
    Ok(())
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
        assert!(validate_request(&i, RequestKind::Read, 0, 4096).is_ok());
        let e = validate_request(&i, RequestKind::Read, (1 << 20) - 1, 2).unwrap_err();
        assert_eq!(e.errno(), libc_errno::EINVAL);
        let e = validate_request(&i, RequestKind::Read, u64::MAX, 2).unwrap_err();
        assert_eq!(e.kind, DiskErrorKind::InvalidRange);
        let e = validate_request(&i, RequestKind::Write, 0, 512).unwrap_err();
        assert_eq!(e.errno(), libc_errno::EPERM);
        let e = validate_request(&i, RequestKind::Read, 0, 65537).unwrap_err();
        assert_eq!(e.kind, DiskErrorKind::TooLarge);
    }
}
