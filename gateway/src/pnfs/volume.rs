//! Leaf volumes (disks, LUNs, image files) and the I/O on them.
//!
//! [`VolumeIo`] is the one interface the engine uses, so tests stack layers on a real volume:
//! [`FaultVolume`] (EIO on a byte range) and [`TraceVolume`] (records every issued I/O with
//! the time it was issued). [`FileVolume`] is the real thing: `pread`/`pwrite` on a blocking
//! pool, with `O_DIRECT` and aligned buffers when the file system allows it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::time::Instant;

use super::scsi::{pr_register_ioctl, sysfs_designators, Designator};
use super::uring::VolumeRing;
use crate::mds_api::BoxFuture;

pub use super::aligned::{AlignedBuf, DIRECT_IO_ALIGN_BYTES};

/// I/O on one leaf volume. Offsets are bytes on the volume; requests need no alignment (an
/// implementation that needs it widens internally).
///
/// Writes of a sub-aligned range do a read-modify-write inside the implementation: callers
/// must not issue overlapping writes to the same aligned unit at once (the engine serialises
/// writes per server block, which is a multiple of [`DIRECT_IO_ALIGN_BYTES`]).
pub trait VolumeIo: Send + Sync + fmt::Debug {
    /// A name for logs (the path).
    fn name(&self) -> &str;
    /// Size in bytes.
    fn size_bytes(&self) -> u64;
    /// Reads exactly `length_bytes` at `offset_bytes` (an error if past the end).
    fn read(&self, offset_bytes: u64, length_bytes: usize) -> BoxFuture<io::Result<Vec<u8>>>;
    /// Writes all of `data` at `offset_bytes`.
    fn write(&self, offset_bytes: u64, data: Bytes) -> BoxFuture<io::Result<()>>;
    /// Makes completed writes durable (fdatasync).
    fn sync(&self) -> BoxFuture<io::Result<()>>;
    /// The logical-unit designators of the volume (SCSI layout volumes are matched by them);
    /// empty when none are known.
    fn scsi_designators(&self) -> &[Designator] {
        &[]
    }
    /// PERSISTENT RESERVE OUT: REGISTER (`old_key` must be this host's current key, 0 if
    /// none) or, with `ignore_existing`, REGISTER AND IGNORE EXISTING KEY; `new_key` 0 removes
    /// the registration. Volumes without persistent reservations fail with `Unsupported`.
    fn pr_register(
        &self,
        old_key: u64,
        new_key: u64,
        ignore_existing: bool,
    ) -> BoxFuture<io::Result<()>> {
        let _ = (old_key, new_key, ignore_existing);
        let msg = format!("{}: no persistent reservations on this volume", self.name());
        Box::pin(async move { Err(io::Error::new(io::ErrorKind::Unsupported, msg)) })
    }

    /// Reads exactly `length_bytes` at `offset_bytes` into `buf[at..at + length_bytes]` and
    /// hands the buffer back (it moves to the I/O thread and returns; on an error it is
    /// dropped). An implementation that
    /// can read straight into the buffer saves the copy of [`VolumeIo::read`]; the default
    /// reads with [`VolumeIo::read`] and copies, so layers that only override `read` keep
    /// their behaviour.
    fn read_into(
        &self,
        offset_bytes: u64,
        mut buf: AlignedBuf,
        at: usize,
        length_bytes: usize,
    ) -> BoxFuture<io::Result<AlignedBuf>> {
        let read = self.read(offset_bytes, length_bytes);
        Box::pin(async move {
            let data = read.await?;
            let buf_len = buf.len();
            match buf
                .as_mut_slice()
                .get_mut(at..at.saturating_add(length_bytes))
            {
                Some(dst) if data.len() == length_bytes => dst.copy_from_slice(&data),
                _ => return Err(into_range_error(buf_len, at, length_bytes)),
            }
            Ok(buf)
        })
    }
}

fn into_range_error(buf_len: usize, at: usize, length_bytes: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("read_into {at}+{length_bytes} does not fit a buffer of {buf_len} bytes"),
    )
}

/// A volume backed by a file or block device, opened read-write (or read-only).
pub struct FileVolume {
    path: String,
    file: Arc<File>,
    size_bytes: u64,
    direct: bool,
    designators: Vec<Designator>,
    /// The io_uring for aligned `O_DIRECT` I/O, set up on first use inside a runtime (None:
    /// unavailable, use the blocking pool).
    ring: std::sync::OnceLock<Option<VolumeRing>>,
}

impl fmt::Debug for FileVolume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileVolume")
            .field("path", &self.path)
            .field("size_bytes", &self.size_bytes)
            .field("direct", &self.direct)
            .field("designators", &self.designators)
            .finish()
    }
}

fn block_device_size(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

impl FileVolume {
    /// Opens `path`; tries `O_DIRECT` first when `prefer_direct`, falling back to buffered I/O
    /// (with an fdatasync on [`VolumeIo::sync`]) where the file system refuses it.
    pub fn open(path: impl AsRef<Path>, read_only: bool, prefer_direct: bool) -> io::Result<Self> {
        let path_buf: PathBuf = path.as_ref().to_path_buf();
        let open = |direct: bool| {
            let mut o = OpenOptions::new();
            o.read(true).write(!read_only);
            if direct {
                o.custom_flags(libc::O_DIRECT);
            }
            o.open(&path_buf)
        };
        let (file, direct) = if prefer_direct {
            match open(true) {
                Ok(f) => (f, true),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(false)?, false),
                Err(e) => return Err(e),
            }
        } else {
            (open(false)?, false)
        };
        let size_bytes = block_device_size(&file)?;
        // A SCSI disk's logical-unit designators (VPD page 0x83 in sysfs) for SCSI layouts.
        let designators = match sysfs_designators(Path::new("/sys"), &path_buf) {
            Ok(Some(all)) => all,
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(volume = %path_buf.display(), error = %e, "cannot read the SCSI designators: the volume will not match SCSI layout devices");
                Vec::new()
            }
        };
        Ok(Self {
            path: path_buf.display().to_string(),
            file: Arc::new(file),
            size_bytes,
            direct,
            designators,
            ring: std::sync::OnceLock::new(),
        })
    }

    /// Replaces the volume's designators (from the configuration, for devices without a VPD
    /// page in sysfs such as device-mapper multipath devices).
    pub fn with_scsi_designators(mut self, designators: Vec<Designator>) -> Self {
        self.designators = designators;
        self
    }

    /// The volume's live io_uring for an aligned `O_DIRECT` request at `offset_bytes` of
    /// `length_bytes` (placed at `at` in an aligned buffer), if there is one.
    fn ring_for(&self, offset_bytes: u64, at: usize, length_bytes: usize) -> Option<&VolumeRing> {
        let align = DIRECT_IO_ALIGN_BYTES;
        let aligned =
            offset_bytes % align as u64 == 0 && at % align == 0 && length_bytes % align == 0;
        if !self.direct || !aligned || length_bytes == 0 {
            return None;
        }
        self.ring
            .get_or_init(VolumeRing::new)
            .as_ref()
            .filter(|r| r.is_alive())
    }

    /// `io_uring_enter` calls that submitted this volume's I/O so far (0 without a ring).
    pub fn ring_submit_calls(&self) -> u64 {
        self.ring
            .get()
            .and_then(|r| r.as_ref())
            .map_or(0, VolumeRing::submit_calls)
    }

    /// True when the volume is open with `O_DIRECT`.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn check_range(&self, offset_bytes: u64, length_bytes: usize) -> io::Result<()> {
        let end = u64::try_from(length_bytes)
            .ok()
            .and_then(|l| offset_bytes.checked_add(l));
        match end {
            Some(end) if end <= self.size_bytes => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: range {offset_bytes}+{length_bytes} past the end ({})",
                    self.path, self.size_bytes
                ),
            )),
        }
    }
}

/// The aligned superset of a range: (start, length).
fn aligned_span(offset_bytes: u64, length_bytes: usize) -> io::Result<(u64, usize)> {
    let align = DIRECT_IO_ALIGN_BYTES as u64;
    let len = u64::try_from(length_bytes).map_err(|e| io::Error::other(e.to_string()))?;
    let start = offset_bytes - offset_bytes % align;
    let end = (offset_bytes + len).div_ceil(align) * align;
    let span = usize::try_from(end - start).map_err(|e| io::Error::other(e.to_string()))?;
    Ok((start, span))
}

fn pread_exact(file: &File, buf: &mut [u8], offset_bytes: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset_bytes)
}

fn read_blocking(file: &File, direct: bool, offset_bytes: u64, len: usize) -> io::Result<Vec<u8>> {
    if !direct {
        let mut v = vec![0u8; len];
        pread_exact(file, &mut v, offset_bytes)?;
        return Ok(v);
    }
    let (start, span) = aligned_span(offset_bytes, len)?;
    let mut buf = AlignedBuf::new(span)?;
    pread_exact(file, buf.as_mut_slice(), start)?;
    let skip =
        usize::try_from(offset_bytes - start).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(buf.as_slice()[skip..skip + len].to_vec())
}

/// Reads `len` bytes at `offset_bytes` into `buf[at..at + len]`: straight into the buffer
/// when the file is buffered or the request is aligned for `O_DIRECT`, else through an
/// aligned bounce buffer.
fn read_into_blocking(
    file: &File,
    direct: bool,
    offset_bytes: u64,
    buf: &mut AlignedBuf,
    at: usize,
    len: usize,
) -> io::Result<()> {
    let buf_len = buf.len();
    let dst = buf
        .as_mut_slice()
        .get_mut(at..at.saturating_add(len))
        .ok_or_else(|| into_range_error(buf_len, at, len))?;
    let align = DIRECT_IO_ALIGN_BYTES;
    let aligned = offset_bytes % align as u64 == 0 && at % align == 0 && len % align == 0;
    if !direct || aligned {
        // The buffer's base is aligned, so `at` aligned means the slice is too.
        return pread_exact(file, dst, offset_bytes);
    }
    let (start, span) = aligned_span(offset_bytes, len)?;
    let mut bounce = AlignedBuf::new(span)?;
    pread_exact(file, bounce.as_mut_slice(), start)?;
    let skip =
        usize::try_from(offset_bytes - start).map_err(|e| io::Error::other(e.to_string()))?;
    dst.copy_from_slice(&bounce.as_slice()[skip..skip + len]);
    Ok(())
}

fn write_blocking(file: &File, direct: bool, offset_bytes: u64, data: &[u8]) -> io::Result<()> {
    if !direct {
        return file.write_all_at(data, offset_bytes);
    }
    let (start, span) = aligned_span(offset_bytes, data.len())?;
    // Every byte of the span is written below (head/tail units read back, data copied in).
    let mut buf = AlignedBuf::new(span)?;
    let skip =
        usize::try_from(offset_bytes - start).map_err(|e| io::Error::other(e.to_string()))?;
    let align = DIRECT_IO_ALIGN_BYTES;
    if skip != 0 || data.len() % align != 0 {
        // Read-modify-write of the partial head/tail units (the caller serialises writes to
        // the same unit).
        let head_len = align.min(span);
        pread_exact(file, &mut buf.as_mut_slice()[..head_len], start)?;
        if span > align {
            let tail = span - align;
            let tail_off =
                start + u64::try_from(tail).map_err(|e| io::Error::other(e.to_string()))?;
            pread_exact(file, &mut buf.as_mut_slice()[tail..], tail_off)?;
        }
    }
    buf.as_mut_slice()[skip..skip + data.len()].copy_from_slice(data);
    file.write_all_at(buf.as_slice(), start)
}

impl VolumeIo for FileVolume {
    fn name(&self) -> &str {
        &self.path
    }

    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn read(&self, offset_bytes: u64, length_bytes: usize) -> BoxFuture<io::Result<Vec<u8>>> {
        let checked = self.check_range(offset_bytes, length_bytes);
        let file = Arc::clone(&self.file);
        let direct = self.direct;
        Box::pin(async move {
            checked?;
            tokio::task::spawn_blocking(move || {
                read_blocking(&file, direct, offset_bytes, length_bytes)
            })
            .await
            .map_err(|e| io::Error::other(format!("volume read task: {e}")))?
        })
    }

    fn write(&self, offset_bytes: u64, data: Bytes) -> BoxFuture<io::Result<()>> {
        let checked = self.check_range(offset_bytes, data.len());
        let file = Arc::clone(&self.file);
        let direct = self.direct;
        if let (Ok(()), Some(ring)) = (&checked, self.ring_for(offset_bytes, 0, data.len())) {
            let ring = ring.clone_handle();
            if super::uring::RingHandle::bytes_aligned(&data) {
                // Aligned memory (a frontend's aligned buffer): written as it is, no copy.
                return Box::pin(async move { ring.write_bytes(&file, offset_bytes, data).await });
            }
            // Whole aligned units: one copy into an aligned buffer, no read-modify-write.
            return Box::pin(async move {
                let mut buf = AlignedBuf::new(data.len())?;
                buf.as_mut_slice().copy_from_slice(&data);
                let len = data.len();
                ring.write(&file, offset_bytes, buf, 0, len).await.map(drop)
            });
        }
        Box::pin(async move {
            checked?;
            tokio::task::spawn_blocking(move || write_blocking(&file, direct, offset_bytes, &data))
                .await
                .map_err(|e| io::Error::other(format!("volume write task: {e}")))?
        })
    }

    fn read_into(
        &self,
        offset_bytes: u64,
        mut buf: AlignedBuf,
        at: usize,
        length_bytes: usize,
    ) -> BoxFuture<io::Result<AlignedBuf>> {
        let checked = self.check_range(offset_bytes, length_bytes);
        let file = Arc::clone(&self.file);
        let direct = self.direct;
        if let (Ok(()), Some(ring)) = (&checked, self.ring_for(offset_bytes, at, length_bytes)) {
            if at
                .checked_add(length_bytes)
                .is_some_and(|end| end <= buf.len())
            {
                let ring = ring.clone_handle();
                return Box::pin(async move {
                    ring.read(&file, offset_bytes, buf, at, length_bytes).await
                });
            }
        }
        Box::pin(async move {
            checked?;
            tokio::task::spawn_blocking(move || {
                read_into_blocking(&file, direct, offset_bytes, &mut buf, at, length_bytes)
                    .map(|()| buf)
            })
            .await
            .map_err(|e| io::Error::other(format!("volume read task: {e}")))?
        })
    }

    fn sync(&self) -> BoxFuture<io::Result<()>> {
        let file = Arc::clone(&self.file);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|e| io::Error::other(format!("volume sync task: {e}")))?
        })
    }

    fn scsi_designators(&self) -> &[Designator] {
        &self.designators
    }

    fn pr_register(
        &self,
        old_key: u64,
        new_key: u64,
        ignore_existing: bool,
    ) -> BoxFuture<io::Result<()>> {
        let file = Arc::clone(&self.file);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                pr_register_ioctl(&file, old_key, new_key, ignore_existing)
            })
            .await
            .map_err(|e| io::Error::other(format!("PR register task: {e}")))?
        })
    }
}

/// A fault layer: I/O touching `[start, end)` fails with EIO (reads, writes, or both), and
/// writes can be held back ([`FaultVolume::stall_writes`]) until released, as a hung path
/// to the volume would.
#[derive(Debug)]
pub struct FaultVolume {
    inner: Arc<dyn VolumeIo>,
    faults: Mutex<Vec<FaultRange>>,
    /// True while writes are held back.
    stall: tokio::sync::watch::Sender<bool>,
    /// Writes that have been held back (waiting now or released since).
    stalled_writes: std::sync::atomic::AtomicU64,
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRange {
    /// First byte on the volume.
    pub start_bytes: u64,
    /// One past the last byte.
    pub end_bytes: u64,
    /// Fail reads.
    pub reads: bool,
    /// Fail writes.
    pub writes: bool,
}

impl FaultVolume {
    /// Wraps `inner` with no faults.
    pub fn new(inner: Arc<dyn VolumeIo>) -> Self {
        Self {
            inner,
            faults: Mutex::new(Vec::new()),
            stall: tokio::sync::watch::Sender::new(false),
            stalled_writes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// From now on every write waits (before reaching the inner volume) until
    /// [`FaultVolume::release_writes`].
    pub fn stall_writes(&self) {
        self.stall.send_replace(true);
    }

    /// Lets held-back and new writes through.
    pub fn release_writes(&self) {
        self.stall.send_replace(false);
    }

    /// How many writes have been held back so far.
    pub fn stalled_writes(&self) -> u64 {
        self.stalled_writes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Adds a fault.
    pub fn add_fault(&self, fault: FaultRange) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn hit(&self, offset_bytes: u64, length_bytes: usize, write: bool) -> bool {
        let end = offset_bytes.saturating_add(length_bytes as u64);
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|f| {
                (if write { f.writes } else { f.reads })
                    && offset_bytes < f.end_bytes
                    && f.start_bytes < end
            })
    }
}

fn eio(what: &str) -> io::Error {
    tracing::debug!(what, "fault layer: injected EIO");
    io::Error::from_raw_os_error(libc::EIO)
}

impl VolumeIo for FaultVolume {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn read(&self, offset_bytes: u64, length_bytes: usize) -> BoxFuture<io::Result<Vec<u8>>> {
        if self.hit(offset_bytes, length_bytes, false) {
            return Box::pin(async { Err(eio("read")) });
        }
        self.inner.read(offset_bytes, length_bytes)
    }

    fn write(&self, offset_bytes: u64, data: Bytes) -> BoxFuture<io::Result<()>> {
        if self.hit(offset_bytes, data.len(), true) {
            return Box::pin(async { Err(eio("write")) });
        }
        let mut stall = self.stall.subscribe();
        if !*stall.borrow_and_update() {
            return self.inner.write(offset_bytes, data);
        }
        self.stalled_writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            // The sender lives as long as `self`; a dropped layer lets the write through.
            let _ = stall.wait_for(|stalled| !*stalled).await;
            inner.write(offset_bytes, data).await
        })
    }

    fn sync(&self) -> BoxFuture<io::Result<()>> {
        self.inner.sync()
    }

    fn scsi_designators(&self) -> &[Designator] {
        self.inner.scsi_designators()
    }

    fn pr_register(
        &self,
        old_key: u64,
        new_key: u64,
        ignore_existing: bool,
    ) -> BoxFuture<io::Result<()>> {
        self.inner.pr_register(old_key, new_key, ignore_existing)
    }
}

/// The kind of a traced I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    /// A read.
    Read,
    /// A write.
    Write,
    /// A sync.
    Sync,
}

/// One issued I/O, as recorded by [`TraceVolume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEntry {
    /// When it was issued (Tokio clock, so paused-time tests see virtual time).
    pub issued_at: Instant,
    /// What.
    pub kind: TraceKind,
    /// Offset on the volume.
    pub offset_bytes: u64,
    /// Length.
    pub length_bytes: u64,
}

/// A tracing layer: records every I/O passed to the inner volume, with its issue time.
#[derive(Debug)]
pub struct TraceVolume {
    inner: Arc<dyn VolumeIo>,
    log: Mutex<Vec<TraceEntry>>,
}

/// Most entries a [`TraceVolume`] keeps (older ones are dropped first).
pub const TRACE_MAX_ENTRIES: usize = 1 << 20;

impl TraceVolume {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn VolumeIo>) -> Self {
        Self {
            inner,
            log: Mutex::new(Vec::new()),
        }
    }

    /// A copy of the entries so far.
    pub fn entries(&self) -> Vec<TraceEntry> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, kind: TraceKind, offset_bytes: u64, length_bytes: u64) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= TRACE_MAX_ENTRIES {
            log.remove(0);
        }
        log.push(TraceEntry {
            issued_at: Instant::now(),
            kind,
            offset_bytes,
            length_bytes,
        });
    }
}

impl VolumeIo for TraceVolume {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn read(&self, offset_bytes: u64, length_bytes: usize) -> BoxFuture<io::Result<Vec<u8>>> {
        self.record(TraceKind::Read, offset_bytes, length_bytes as u64);
        self.inner.read(offset_bytes, length_bytes)
    }

    fn write(&self, offset_bytes: u64, data: Bytes) -> BoxFuture<io::Result<()>> {
        self.record(TraceKind::Write, offset_bytes, data.len() as u64);
        self.inner.write(offset_bytes, data)
    }

    fn sync(&self) -> BoxFuture<io::Result<()>> {
        self.record(TraceKind::Sync, 0, 0);
        self.inner.sync()
    }

    fn scsi_designators(&self) -> &[Designator] {
        self.inner.scsi_designators()
    }

    fn pr_register(
        &self,
        old_key: u64,
        new_key: u64,
        ignore_existing: bool,
    ) -> BoxFuture<io::Result<()>> {
        self.inner.pr_register(old_key, new_key, ignore_existing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, size: u64) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pnfs-vol-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join(name);
        let f = File::create(&p).expect("create");
        f.set_len(size).expect("set_len");
        p
    }

    #[tokio::test]
    async fn unaligned_io_round_trips_with_and_without_direct() {
        for direct in [false, true] {
            let p = temp_file(&format!("rt-{direct}"), 64 * 1024);
            let v = FileVolume::open(&p, false, direct).expect("open");
            v.write(4096 * 3 + 17, Bytes::from(vec![0xab; 5000]))
                .await
                .expect("write");
            let back = v.read(4096 * 3 + 10, 5020).await.expect("read");
            assert_eq!(&back[..7], &[0; 7]);
            assert!(back[7..5007].iter().all(|&b| b == 0xab));
            assert_eq!(&back[5007..], &[0; 13]);
            v.sync().await.expect("sync");
            assert!(v.read(64 * 1024 - 1, 2).await.is_err());
            let _ = std::fs::remove_file(&p);
        }
    }

    /// The requests a task issues before it yields reach the kernel in one `io_uring_enter`
    /// (on a file system with `O_DIRECT`: /var/tmp, not a tmpfs /tmp).
    #[tokio::test]
    async fn ring_reads_issued_together_are_submitted_together() {
        const READS: usize = 16;
        const UNIT: usize = DIRECT_IO_ALIGN_BYTES;
        let dir = PathBuf::from("/var/tmp").join(format!("pnfs-vol-ring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("ring");
        let mut data = vec![0u8; READS * UNIT];
        for (i, b) in data.iter_mut().enumerate() {
            *b = u8::try_from(i / UNIT).expect("small") ^ u8::try_from(i % 251).expect("small");
        }
        std::fs::write(&p, &data).expect("write the file");
        let v = FileVolume::open(&p, false, true).expect("open");
        if !v.is_direct() {
            eprintln!("no O_DIRECT on /var/tmp: nothing to test");
            return;
        }
        // First use sets the ring up (and submits once).
        let first = v.read_into(0, AlignedBuf::new(UNIT).expect("buf"), 0, UNIT);
        assert_eq!(first.await.expect("read").as_slice(), &data[..UNIT]);
        let before = v.ring_submit_calls();
        assert!(before >= 1, "the read did not go through the ring");
        let reads: Vec<_> = (0..READS)
            .map(|i| {
                let buf = AlignedBuf::new(UNIT).expect("buf");
                v.read_into((i * UNIT) as u64, buf, 0, UNIT)
            })
            .collect();
        let bufs: Vec<AlignedBuf> = futures_join(reads)
            .await
            .into_iter()
            .map(|r| r.expect("read"))
            .collect();
        for (i, b) in bufs.iter().enumerate() {
            assert_eq!(b.as_slice(), &data[i * UNIT..(i + 1) * UNIT], "read {i}");
        }
        let submits = v.ring_submit_calls() - before;
        assert!(
            submits <= 2,
            "{READS} reads pushed in one poll took {submits} io_uring_enter calls"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Polls all futures in one task until every one is done (their first polls happen in
    /// one pass, as a frontend's requests decoded from one socket read do).
    async fn futures_join<T>(futs: Vec<BoxFuture<T>>) -> Vec<T> {
        let mut futs: Vec<Option<BoxFuture<T>>> = futs.into_iter().map(Some).collect();
        let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
                if let Some(fut) = f.as_mut() {
                    match fut.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => {
                            *o = Some(v);
                            *f = None;
                        }
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        out.into_iter().flatten().collect()
    }

    #[tokio::test]
    async fn fault_and_trace_layers_stack() {
        let p = temp_file("fault", 64 * 1024);
        let base: Arc<dyn VolumeIo> = Arc::new(FileVolume::open(&p, false, false).expect("open"));
        let trace = Arc::new(TraceVolume::new(base));
        let fault = FaultVolume::new(trace.clone());
        fault.add_fault(FaultRange {
            start_bytes: 8192,
            end_bytes: 12288,
            reads: true,
            writes: true,
        });
        assert!(fault.read(0, 4096).await.is_ok());
        let e = fault.read(12000, 4096).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO));
        assert!(fault.write(8192, Bytes::from_static(b"x")).await.is_err());
        assert!(fault.write(12288, Bytes::from_static(b"x")).await.is_ok());
        let t = trace.entries();
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[1].kind, TraceKind::Write);
        assert_eq!(t[1].offset_bytes, 12288);
        let _ = std::fs::remove_file(&p);
    }
}
