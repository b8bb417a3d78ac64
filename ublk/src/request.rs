//! One ublk request descriptor decoded into a Disk API call (pure, no I/O), and its
//! execution against a [`Disk`].

use std::ops::DerefMut;

use bytes::Bytes;
use pnfs_disk::{
    libc_errno, validate_request, AlignedBuf, Disk, DiskError, DiskErrorKind, DiskInfo, DiskRange,
    RequestKind,
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

/// The I/O buffer of one tag: the address handed to the kernel with each FETCH /
/// COMMIT_AND_FETCH is where it takes a completed read's data from and puts the next
/// request's write data. It starts as `home` (the buffer registered with libublk at the
/// first FETCH); from then on it is an [`AlignedBuf`] that goes to the disk itself — a read
/// fills it through [`Disk::read_into`] (the volume reads straight into it), a write hands it
/// on through [`Disk::write_from`] and a new one (from the aligned-buffer pool) takes its
/// place — so neither copies the data. `home` serves again only after a failed read took the
/// buffer with it, or when no new buffer could be had.
#[derive(Debug)]
pub struct TagBuf<H> {
    home: H,
    owned: Option<AlignedBuf>,
    capacity_bytes: usize,
}

impl<H: DerefMut<Target = [u8]>> TagBuf<H> {
    /// A tag buffer starting at `home` (its length is the tag's buffer size).
    pub fn new(home: H) -> Self {
        let capacity_bytes = home.len();
        Self {
            home,
            owned: None,
            capacity_bytes,
        }
    }

    /// The memory to hand to the kernel with the next FETCH or COMMIT_AND_FETCH.
    pub fn current(&self) -> &[u8] {
        match &self.owned {
            Some(b) => b.as_slice(),
            None => &self.home,
        }
    }

    /// The buffer the kernel will use, writable (what the kernel does with a write's data).
    #[cfg(test)]
    fn current_mut(&mut self) -> &mut [u8] {
        match &mut self.owned {
            Some(b) => b.as_mut_slice(),
            None => &mut self.home,
        }
    }

    /// True while the kernel's buffer is `home` (not one of ours).
    pub fn at_home(&self) -> bool {
        self.owned.is_none()
    }

    /// A fresh owned buffer of the tag's size (None when none can be had: `home` serves).
    fn fresh(&self) -> Option<AlignedBuf> {
        match AlignedBuf::new(self.capacity_bytes) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!("ublk: no tag buffer of {} bytes: {e}", self.capacity_bytes);
                None
            }
        }
    }

    /// Makes `b` (holding a read's `len` bytes) the tag's buffer at the full tag size; a
    /// smaller buffer (a disk's replacement after a fallback) is copied into a full-size one,
    /// because the kernel puts the next request's data at the same address.
    fn keep(&mut self, mut b: AlignedBuf, len: usize) -> Result<(), DiskError> {
        if b.set_len(self.capacity_bytes).is_err() {
            let mut full = AlignedBuf::new(self.capacity_bytes)
                .map_err(|e| DiskError::new(DiskErrorKind::Io, e.to_string()))?;
            full.as_mut_slice()[..len].copy_from_slice(&b.as_slice()[..len]);
            b = full;
        }
        self.owned = Some(b);
        Ok(())
    }
}

/// Runs one decoded request against the disk, with the tag's buffer: a read fills it, a
/// write sends it, with no copy once the tag uses its own buffers (see [`TagBuf`]). Returns
/// the byte count to complete with (the request length for reads and writes, 0 otherwise).
pub async fn execute<D: Disk, H: DerefMut<Target = [u8]>>(
    disk: &D,
    request: &Request,
    buf: &mut TagBuf<H>,
) -> Result<u32, DiskError> {
    let io_length = |range: &DiskRange| {
        let length_bytes = range.io_length_bytes()?;
        let len = range.length_usize()?;
        if len > buf.capacity_bytes {
            return Err(DiskError::new(
                DiskErrorKind::TooLarge,
                format!(
                    "{length_bytes} bytes exceed the {}-byte tag buffer",
                    buf.capacity_bytes
                ),
            ));
        }
        Ok((length_bytes, len))
    };
    match *request {
        Request::Read { range } => {
            let (length_bytes, len) = io_length(&range)?;
            // The data is taken from the buffer committed next, so a read can always move
            // to an owned buffer (home's contents do not matter).
            let Some(b) = buf.owned.take().or_else(|| buf.fresh()) else {
                let data = disk.read_range(range).await?;
                range.check_buffer(data.len())?;
                buf.home[..len].copy_from_slice(&data);
                return Ok(length_bytes);
            };
            let b = disk.read_into(range, b).await?;
            if b.len() != len {
                return Err(DiskError::new(
                    DiskErrorKind::Io,
                    format!("disk returned {} bytes for a read of {len}", b.len()),
                ));
            }
            buf.keep(b, len)?;
            Ok(length_bytes)
        }
        Request::Write { range, fua } => {
            let (length_bytes, len) = io_length(&range)?;
            match buf.owned.take() {
                Some(b) => {
                    // This buffer is the disk's now; the next request's data goes to a new
                    // one (taken after the write, when this one is usually back in the pool).
                    let written = disk.write_from(range, b, fua).await;
                    buf.owned = buf.fresh();
                    written?;
                }
                None => {
                    let data = Bytes::copy_from_slice(&buf.home[..len]);
                    let written = disk.write_range(range, data, fua).await;
                    buf.owned = buf.fresh();
                    written?;
                }
            }
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

    /// A write's data as the kernel leaves it: in the tag's current buffer.
    fn kernel_write(buf: &mut TagBuf<Vec<u8>>, data: &[u8]) {
        buf.current_mut()[..data.len()].copy_from_slice(data);
    }

    #[tokio::test]
    async fn tag_buffers_carry_writes_and_reads_without_staying_at_home() {
        let disk = pnfs_disk::ram::RamDisk::new(1 << 20);
        let i = disk.info();
        let tag_bytes = 65536;
        let mut buf = TagBuf::new(vec![0u8; tag_bytes]);
        assert!(buf.at_home());
        // The first write's data is in home (registered at FETCH): copied once, then the
        // tag moves to a buffer of its own.
        kernel_write(&mut buf, &[1u8; 4096]);
        let w = decode(&i, sys::UBLK_IO_OP_WRITE, 0, 8, 65536).unwrap();
        assert_eq!(execute(&disk, &w, &mut buf).await.unwrap(), 4096);
        assert!(!buf.at_home());
        assert_eq!(buf.current().len(), tag_bytes);
        // A write from an owned buffer hands it to the disk; the next comes in a new one.
        kernel_write(&mut buf, &[2u8; 8192]);
        let w = decode(&i, sys::UBLK_IO_OP_WRITE, 8, 16, 65536).unwrap();
        assert_eq!(execute(&disk, &w, &mut buf).await.unwrap(), 8192);
        assert_eq!(buf.current().len(), tag_bytes);
        // A read fills the buffer the commit hands back, in place.
        let before = buf.current().as_ptr();
        let r = decode(&i, sys::UBLK_IO_OP_READ, 0, 24, 65536).unwrap();
        assert_eq!(execute(&disk, &r, &mut buf).await.unwrap(), 12288);
        assert_eq!(
            buf.current().as_ptr(),
            before,
            "read into the tag's own buffer"
        );
        assert_eq!(buf.current().len(), tag_bytes);
        assert!(buf.current()[..4096].iter().all(|&b| b == 1));
        assert!(buf.current()[4096..12288].iter().all(|&b| b == 2));
        // A read as a tag's first request goes to an owned buffer too.
        let mut fresh = TagBuf::new(vec![0xeeu8; tag_bytes]);
        assert_eq!(execute(&disk, &r, &mut fresh).await.unwrap(), 12288);
        assert!(!fresh.at_home());
        assert_eq!(&fresh.current()[..12288], &buf.current()[..12288]);
    }
}
