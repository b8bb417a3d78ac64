//! One ublk request descriptor decoded into a Disk API call (pure, no I/O), and its
//! execution against a [`Disk`].

use bytes::Bytes;
use pnfs_disk::{
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
    /// Write the tag's buffer at `offset_bytes`.
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

/// Runs one decoded request against the disk. `buf` is the tag's I/O buffer: a read fills
/// its first `length_bytes` through [`Disk::read_into`] (no intermediate copy), a write
/// sends them. Returns the byte count to complete with (the request length for reads and
/// writes, 0 otherwise).
pub async fn execute<D: Disk>(
    disk: &D,
    request: &Request,
    buf: &mut [u8],
) -> Result<u32, DiskError> {
    let tag_buffer = |length_bytes: u32| {
        usize::try_from(length_bytes)
            .ok()
            .filter(|&l| l <= buf.len())
            .ok_or_else(|| {
                DiskError::new(
                    DiskErrorKind::TooLarge,
                    format!(
                        "{length_bytes} bytes exceed the {}-byte tag buffer",
                        buf.len()
                    ),
                )
            })
    };
    match *request {
        Request::Read {
            offset_bytes,
            length_bytes,
        } => {
            let len = tag_buffer(length_bytes)?;
            disk.read_into(offset_bytes, &mut buf[..len]).await?;
            Ok(length_bytes)
        }
        Request::Write {
            offset_bytes,
            length_bytes,
            fua,
        } => {
            let len = tag_buffer(length_bytes)?;
            let data = Bytes::copy_from_slice(&buf[..len]);
            disk.write(offset_bytes, data, fua).await?;
            Ok(length_bytes)
        }
        Request::Flush => {
            disk.flush().await?;
            Ok(0)
        }
        Request::Discard {
            offset_bytes,
            length_bytes,
        } => {
            disk.trim(offset_bytes, length_bytes).await?;
            Ok(0)
        }
        Request::WriteZeroes {
            offset_bytes,
            length_bytes,
            may_unmap,
            fua,
        } => {
            disk.write_zeroes(offset_bytes, length_bytes, may_unmap, fua)
                .await?;
            Ok(0)
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
