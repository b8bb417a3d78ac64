//! One ublk request descriptor decoded into a Disk API call (pure, no I/O), and its
//! execution against a [`Disk`].

use bytes::Bytes;
use pnfs_gateway::disk::{
    libc_errno, validate_request, Disk, DiskError, DiskErrorKind, DiskInfo, RequestKind,
};

use crate::geometry::SECTOR_BYTES;

/// A request, as the Disk API sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read `length_bytes` at `offset_bytes` into the tag's buffer.
    Read {
        /// Byte offset.
        offset_bytes: u64,
        /// Byte length.
        length_bytes: u32,
    },
    /// Write the tag's buffer at `offset_bytes` (data is copied in by the queue thread).
    Write {
        /// Byte offset.
        offset_bytes: u64,
        /// Byte length.
        length_bytes: u32,
        /// Durable on return.
        fua: bool,
    },
    /// Make completed writes durable.
    Flush,
    /// Discard (`Disk::trim`).
    Discard {
        /// Byte offset.
        offset_bytes: u64,
        /// Byte length.
        length_bytes: u64,
    },
    /// Zero a range.
    WriteZeroes {
        /// Byte offset.
        offset_bytes: u64,
        /// Byte length.
        length_bytes: u64,
        /// The kernel allows deallocation (no `REQ_NOUNMAP`).
        may_unmap: bool,
        /// Durable on return.
        fua: bool,
    },
}

/// Decodes a descriptor's `op_flags`, `start_sector` and `nr_sectors`, then validates it
/// once against the disk (`validate_request`). The error is the positive errno to complete
/// the request with.
pub fn decode(
    info: &DiskInfo,
    op_flags: u32,
    start_sector: u64,
    nr_sectors: u32,
    buf_bytes: u32,
) -> Result<Request, DiskError> {
    use libublk::sys;
    let op = op_flags & 0xff;
    let fua = op_flags & sys::UBLK_IO_F_FUA != 0;
    if op == sys::UBLK_IO_OP_FLUSH {
        // A flush carries no range (the kernel leaves the sector fields unset).
        return Ok(Request::Flush);
    }
    let offset_bytes = start_sector.checked_mul(SECTOR_BYTES).ok_or_else(|| {
        DiskError::new(
            DiskErrorKind::InvalidRange,
            format!("start sector {start_sector} overflows"),
        )
    })?;
    let length_bytes = u64::from(nr_sectors) * SECTOR_BYTES;
    let io_length = |kind: &str| {
        u32::try_from(length_bytes)
            .ok()
            .filter(|&l| l <= buf_bytes)
            .ok_or_else(|| {
                DiskError::new(
                    DiskErrorKind::TooLarge,
                    format!("{kind} of {length_bytes} bytes exceeds the {buf_bytes}-byte buffer"),
                )
            })
    };
    let (request, kind) = match op {
        sys::UBLK_IO_OP_READ => (
            Request::Read {
                offset_bytes,
                length_bytes: io_length("read")?,
            },
            RequestKind::Read,
        ),
        sys::UBLK_IO_OP_WRITE => (
            Request::Write {
                offset_bytes,
                length_bytes: io_length("write")?,
                fua,
            },
            RequestKind::Write,
        ),
        sys::UBLK_IO_OP_DISCARD => (
            Request::Discard {
                offset_bytes,
                length_bytes,
            },
            RequestKind::Trim,
        ),
        sys::UBLK_IO_OP_WRITE_ZEROES => (
            Request::WriteZeroes {
                offset_bytes,
                length_bytes,
                may_unmap: op_flags & sys::UBLK_IO_F_NOUNMAP == 0,
                fua,
            },
            RequestKind::WriteZeroes,
        ),
        other => {
            return Err(DiskError::new(
                DiskErrorKind::NotSupported,
                format!("ublk op {other} is not supported"),
            ))
        }
    };
    validate_request(info, kind, offset_bytes, length_bytes)?;
    Ok(request)
}

/// What a finished request hands back to the queue thread.
#[derive(Debug)]
pub enum Outcome {
    /// Data read (exactly the requested length).
    Data(Bytes),
    /// Done; complete with this many bytes (the request length for writes, 0 otherwise).
    Done(u32),
}

/// Runs one decoded request against the disk (on the tokio runtime). `data` is the write
/// payload for [`Request::Write`].
pub async fn execute<D: Disk>(
    disk: &D,
    request: Request,
    data: Option<Bytes>,
) -> Result<Outcome, DiskError> {
    match request {
        Request::Read {
            offset_bytes,
            length_bytes,
        } => {
            let bytes = disk.read(offset_bytes, length_bytes).await?;
            if bytes.len() != usize::try_from(length_bytes).unwrap_or(usize::MAX) {
                return Err(DiskError::new(
                    DiskErrorKind::Io,
                    format!(
                        "disk returned {} bytes for a read of {length_bytes}",
                        bytes.len()
                    ),
                ));
            }
            Ok(Outcome::Data(bytes))
        }
        Request::Write {
            offset_bytes,
            length_bytes,
            fua,
        } => {
            let data =
                data.ok_or_else(|| DiskError::new(DiskErrorKind::Io, "write without data"))?;
            disk.write(offset_bytes, data, fua).await?;
            Ok(Outcome::Done(length_bytes))
        }
        Request::Flush => {
            disk.flush().await?;
            Ok(Outcome::Done(0))
        }
        Request::Discard {
            offset_bytes,
            length_bytes,
        } => {
            disk.trim(offset_bytes, length_bytes).await?;
            Ok(Outcome::Done(0))
        }
        Request::WriteZeroes {
            offset_bytes,
            length_bytes,
            may_unmap,
            fua,
        } => {
            disk.write_zeroes(offset_bytes, length_bytes, may_unmap, fua)
                .await?;
            Ok(Outcome::Done(0))
        }
    }
}

/// The kernel result for a failed request: `-errno`, from the Disk API's one mapping.
pub fn failure_result(err: &DiskError) -> i32 {
    let errno = err.errno();
    if errno > 0 {
        -errno
    } else {
        -libc_errno::EIO
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libublk::sys;

    fn info(read_only: bool) -> DiskInfo {
        DiskInfo {
            size_bytes: 1 << 20,
            logical_block_bytes: 512,
            preferred_block_bytes: 4096,
            max_io_bytes: 1 << 20,
            read_only,
            multi_conn_safe: true,
        }
    }

    #[test]
    fn ops_and_flags_decode() {
        let i = info(false);
        let r = decode(&i, sys::UBLK_IO_OP_WRITE | sys::UBLK_IO_F_FUA, 8, 8, 65536).unwrap();
        assert_eq!(
            r,
            Request::Write {
                offset_bytes: 4096,
                length_bytes: 4096,
                fua: true
            }
        );
        let r = decode(
            &i,
            sys::UBLK_IO_OP_WRITE_ZEROES | sys::UBLK_IO_F_NOUNMAP,
            0,
            16,
            0,
        )
        .unwrap();
        assert!(matches!(
            r,
            Request::WriteZeroes {
                may_unmap: false,
                length_bytes: 8192,
                ..
            }
        ));
        let r = decode(&i, sys::UBLK_IO_OP_WRITE_ZEROES, 0, 16, 0).unwrap();
        assert!(matches!(
            r,
            Request::WriteZeroes {
                may_unmap: true,
                fua: false,
                ..
            }
        ));
        assert_eq!(
            decode(&i, sys::UBLK_IO_OP_FLUSH, 0, 0, 0).unwrap(),
            Request::Flush
        );
        let r = decode(&i, sys::UBLK_IO_OP_DISCARD, 2, 2040, 0).unwrap();
        assert_eq!(
            r,
            Request::Discard {
                offset_bytes: 1024,
                length_bytes: 2040 * 512
            }
        );
    }

    #[test]
    fn bad_requests_get_the_disk_api_errno() {
        let i = info(false);
        let e = decode(&i, sys::UBLK_IO_OP_READ, 2047, 2, 65536).unwrap_err();
        assert_eq!(failure_result(&e), -libc_errno::EINVAL);
        let e = decode(&i, sys::UBLK_IO_OP_READ, u64::MAX / 2, 1, 65536).unwrap_err();
        assert_eq!(failure_result(&e), -libc_errno::EINVAL);
        let e = decode(&i, sys::UBLK_IO_OP_READ, 0, 256, 65536).unwrap_err();
        assert_eq!(failure_result(&e), -libc_errno::EOVERFLOW);
        let e = decode(&i, sys::UBLK_IO_OP_ZONE_APPEND, 0, 1, 65536).unwrap_err();
        assert_eq!(failure_result(&e), -libc_errno::ENOTSUP);
        let ro = info(true);
        let e = decode(&ro, sys::UBLK_IO_OP_WRITE, 0, 1, 65536).unwrap_err();
        assert_eq!(failure_result(&e), -libc_errno::EPERM);
        let e = decode(&ro, sys::UBLK_IO_OP_DISCARD, 0, 1, 65536).unwrap_err();
        assert_eq!(failure_result(&e), -libc_errno::EPERM);
        assert!(decode(&ro, sys::UBLK_IO_OP_READ, 0, 1, 65536).is_ok());
    }
}
