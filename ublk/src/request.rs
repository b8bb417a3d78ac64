//! One ublk request descriptor decoded into a Disk API call (pure, no I/O), and its
//! execution against a [`Disk`].

use pnfs_disk::{
    libc_errno, validate_request, Disk, DiskError, DiskErrorKind, DiskInfo, DiskRange, RequestKind,
};

use crate::geometry::SECTOR_BYTES;

/// A request, as the Disk API sees it: its range checked once, by [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read the range into the tag's buffer.
    Read {
        /// The checked range (at most the tag buffer's length).
        range: DiskRange,
    },
    /// Write the tag's buffer over the range.
    Write {
        /// The checked range (at most the tag buffer's length).
        range: DiskRange,
        /// Durable on return.
        fua: bool,
    },
    /// Make completed writes durable.
    Flush,
    /// Discard (`Disk::trim_range`).
    Discard {
        /// The checked range.
        range: DiskRange,
    },
    /// Zero a range.
    WriteZeroes {
        /// The checked range.
        range: DiskRange,
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
    let io_range = |kind: RequestKind, what: &str| {
        if length_bytes > u64::from(buf_bytes) {
            return Err(DiskError::new(
                DiskErrorKind::TooLarge,
                format!("{what} of {length_bytes} bytes exceeds the {buf_bytes}-byte buffer"),
            ));
        }
        validate_request(info, kind, offset_bytes, length_bytes)
    };
    match op {
        sys::UBLK_IO_OP_READ => Ok(Request::Read {
            range: io_range(RequestKind::Read, "read")?,
        }),
        sys::UBLK_IO_OP_WRITE => Ok(Request::Write {
            range: io_range(RequestKind::Write, "write")?,
            fua,
        }),
        sys::UBLK_IO_OP_DISCARD => Ok(Request::Discard {
            range: validate_request(info, RequestKind::Trim, offset_bytes, length_bytes)?,
        }),
        sys::UBLK_IO_OP_WRITE_ZEROES => Ok(Request::WriteZeroes {
            range: validate_request(info, RequestKind::WriteZeroes, offset_bytes, length_bytes)?,
            may_unmap: op_flags & sys::UBLK_IO_F_NOUNMAP == 0,
            fua,
        }),
        other => Err(DiskError::new(
            DiskErrorKind::NotSupported,
            format!("ublk op {other} is not supported"),
        )),
    }
}

/// Runs one decoded request against the disk. `buf` is the tag's I/O buffer: a read fills
/// its first bytes through [`Disk::read_into`], a write sends them through
/// [`Disk::write_from`] (no intermediate copy where the disk supports it). Returns the byte
/// count to complete with (the request length for reads and writes, 0 otherwise).
pub async fn execute<D: Disk>(
    disk: &D,
    request: &Request,
    buf: &mut [u8],
) -> Result<u32, DiskError> {
    let tag_buffer = |range: &DiskRange| {
        let len = range.io_length_bytes()?;
        usize::try_from(len)
            .ok()
            .filter(|&l| l <= buf.len())
            .map(|l| (len, l))
            .ok_or_else(|| {
                DiskError::new(
                    DiskErrorKind::TooLarge,
                    format!("{len} bytes exceed the {}-byte tag buffer", buf.len()),
                )
            })
    };
    match *request {
        Request::Read { range } => {
            let (length_bytes, len) = tag_buffer(&range)?;
            disk.read_into(range, &mut buf[..len]).await?;
            Ok(length_bytes)
        }
        Request::Write { range, fua } => {
            let (length_bytes, len) = tag_buffer(&range)?;
            disk.write_from(range, &buf[..len], fua).await?;
            Ok(length_bytes)
        }
        Request::Flush => {
            disk.flush().await?;
            Ok(0)
        }
        Request::Discard { range } => {
            disk.trim_range(range).await?;
            Ok(0)
        }
        Request::WriteZeroes {
            range,
            may_unmap,
            fua,
        } => {
            disk.write_zeroes_range(range, may_unmap, fua).await?;
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
        let range = |o, l| validate_request(&i, RequestKind::Status, o, l).unwrap();
        let r = decode(&i, sys::UBLK_IO_OP_WRITE | sys::UBLK_IO_F_FUA, 8, 8, 65536).unwrap();
        assert_eq!(
            r,
            Request::Write {
                range: range(4096, 4096),
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
                range,
                ..
            } if range.length_bytes() == 8192
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
                range: range(1024, 2040 * 512)
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
