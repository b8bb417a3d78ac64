//! A sparse in-memory [`Disk`] for tests (cargo feature `testing`, not in the default build).
//!
//! Block status is honest: never-written ranges (and trimmed ones) are `Hole`, ranges zeroed
//! with `write_zeroes` are `Zero`, written ranges are `Data`, at byte granularity. Data lives
//! in 64 KiB pages allocated on first write. It also counts flushes, can fail the next call
//! of a kind, and can hold reads at one offset until released (to force out-of-order
//! completion in tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use pnfs_disk::{
    Disk, DiskError, DiskErrorKind, DiskInfo, DiskRange, DiskResult, ExtentStatus, StatusExtent,
    DISK_MAX_IO_BYTES,
};
use tokio::sync::Semaphore;

/// Bytes per data page.
const PAGE_BYTES: u64 = 64 * 1024;

/// An index into a page or into one request's buffer: always below 64 KiB or below the
/// request length (a u32), so it fits a usize on every target this crate builds for.
#[allow(clippy::cast_possible_truncation)]
fn ix(v: u64) -> usize {
    v as usize
}

/// Which call a one-shot fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `read`.
    Read,
    /// `write`.
    Write,
    /// `flush`.
    Flush,
    /// `trim`.
    Trim,
    /// `write_zeroes`.
    WriteZeroes,
    /// `block_status`.
    BlockStatus,
}

#[derive(Debug, Default)]
struct State {
    pages: HashMap<u64, Box<[u8]>>,
    /// Non-hole runs: start → (end, status). Sorted, non-overlapping, neighbours with the
    /// same status merged.
    status: BTreeMap<u64, (u64, ExtentStatus)>,
    faults: HashMap<FaultOp, DiskErrorKind>,
    gate_offset: Option<u64>,
}

/// The in-memory disk.
#[derive(Debug)]
pub struct MemDisk {
    info: DiskInfo,
    state: Mutex<State>,
    flushes: AtomicU64,
    gate: Semaphore,
    gate_waiters: AtomicUsize,
    /// The next call of this kind panics (outside the state lock, which stays usable).
    panic_on: Mutex<Option<FaultOp>>,
}

impl MemDisk {
    /// A writable disk of `size_bytes` with 512-byte logical blocks, 4 KiB preferred blocks,
    /// the Disk API's largest I/O, multi-conn safe.
    pub fn new(size_bytes: u64) -> Self {
        Self::with_info(DiskInfo {
            size_bytes,
            logical_block_bytes: 512,
            preferred_block_bytes: 4096,
            max_io_bytes: DISK_MAX_IO_BYTES,
            read_only: false,
            multi_conn_safe: true,
        })
    }

    /// A disk with explicit info.
    pub fn with_info(info: DiskInfo) -> Self {
        Self {
            info,
            state: Mutex::new(State::default()),
            flushes: AtomicU64::new(0),
            gate: Semaphore::new(0),
            gate_waiters: AtomicUsize::new(0),
            panic_on: Mutex::new(None),
        }
    }

    /// Flushes so far.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// The next call of `op` fails with `kind`.
    pub fn fail_next(&self, op: FaultOp, kind: DiskErrorKind) {
        if let Ok(mut s) = self.state.lock() {
            s.faults.insert(op, kind);
        }
    }

    /// The next call of `op` panics (a bug inside the disk, for the frontend's isolation).
    pub fn panic_next(&self, op: FaultOp) {
        *self.panic_on.lock().unwrap_or_else(|p| p.into_inner()) = Some(op);
    }

    fn maybe_panic(&self, op: FaultOp) {
        let hit = {
            let mut p = self.panic_on.lock().unwrap_or_else(|p| p.into_inner());
            if *p == Some(op) {
                *p = None;
                true
            } else {
                false
            }
        };
        if hit {
            panic!("injected panic on {op:?}");
        }
    }

    /// Reads starting at `offset_bytes` wait until [`MemDisk::release_gated_reads`].
    pub fn gate_reads_at(&self, offset_bytes: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.gate_offset = Some(offset_bytes);
        }
    }

    /// Reads waiting at the gate now (tests poll this to know a request reached the disk).
    pub fn gated_waiters(&self) -> usize {
        self.gate_waiters.load(Ordering::SeqCst)
    }

    /// Lets `n` gated reads through.
    pub fn release_gated_reads(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// The status runs as (offset, length, status), holes included, for assertions.
    pub fn extents(&self) -> Vec<StatusExtent> {
        match self.lock() {
            Ok(s) => query(&s, 0, self.info.size_bytes),
            Err(_) => Vec::new(),
        }
    }

    fn lock(&self) -> DiskResult<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| DiskError::new(DiskErrorKind::Io, "in-memory disk lock poisoned"))
    }

    fn check(&self, s: &mut State, op: FaultOp, offset: u64, len: u64) -> DiskResult<()> {
        if let Some(kind) = s.faults.remove(&op) {
            return Err(DiskError::new(kind, format!("injected fault on {op:?}")));
        }
        let end = offset
            .checked_add(len)
            .ok_or_else(|| DiskError::new(DiskErrorKind::InvalidRange, "range overflows"))?;
        if end > self.info.size_bytes {
            return Err(DiskError::new(
                DiskErrorKind::InvalidRange,
                format!("range {offset}+{len} past the end"),
            ));
        }
        let writes = matches!(op, FaultOp::Write | FaultOp::Trim | FaultOp::WriteZeroes);
        if writes && self.info.read_only {
            return Err(DiskError::new(DiskErrorKind::ReadOnly, "read-only"));
        }
        Ok(())
    }
}

/// Sets `[start, end)` to `status` (`None` = hole) in the run map, keeping it merged.
fn set_status(
    map: &mut BTreeMap<u64, (u64, ExtentStatus)>,
    start: u64,
    end: u64,
    status: Option<ExtentStatus>,
) {
    if start >= end {
        return;
    }
    let mut overlapping: Vec<(u64, u64, ExtentStatus)> = Vec::new();
    if let Some((&s, &(e, st))) = map.range(..start).next_back() {
        if e > start {
            overlapping.push((s, e, st));
        }
    }
    for (&s, &(e, st)) in map.range(start..end) {
        overlapping.push((s, e, st));
    }
    for (s, e, st) in overlapping {
        map.remove(&s);
        if s < start {
            map.insert(s, (start, st));
        }
        if e > end {
            map.insert(end, (e, st));
        }
    }
    let Some(status) = status else {
        return;
    };
    let mut new_start = start;
    let mut new_end = end;
    if let Some((&s, &(e, st))) = map.range(..start).next_back() {
        if e == start && st == status {
            map.remove(&s);
            new_start = s;
        }
    }
    if let Some(&(e, st)) = map.get(&end) {
        if st == status {
            map.remove(&end);
            new_end = e;
        }
    }
    map.insert(new_start, (new_end, status));
}

fn query(s: &State, offset: u64, len: u64) -> Vec<StatusExtent> {
    let end = offset + len;
    let mut out = Vec::new();
    let mut pos = offset;
    let mut push = |from: u64, to: u64, status: ExtentStatus| {
        if to > from {
            out.push(StatusExtent {
                offset_bytes: from,
                length_bytes: to - from,
                status,
            });
        }
    };
    let first = s
        .status
        .range(..=offset)
        .next_back()
        .map(|(&k, _)| k)
        .unwrap_or(offset);
    for (&rs, &(re, st)) in s.status.range(first..end) {
        if re <= pos {
            continue;
        }
        let rs = rs.max(pos);
        push(pos, rs, ExtentStatus::Hole);
        push(rs, re.min(end), st);
        pos = re.min(end);
    }
    push(pos, end, ExtentStatus::Hole);
    out
}

fn zero_bytes(s: &mut State, offset: u64, len: u64) {
    let end = offset + len;
    let mut pos = offset;
    while pos < end {
        let page = pos / PAGE_BYTES;
        let in_page = pos % PAGE_BYTES;
        let n = (PAGE_BYTES - in_page).min(end - pos);
        if n == PAGE_BYTES {
            s.pages.remove(&page);
        } else if let Some(p) = s.pages.get_mut(&page) {
            // in_page + n ≤ PAGE_BYTES (64 KiB), so both fit in usize.
            let (a, b) = (ix(in_page), ix(in_page + n));
            p[a..b].fill(0);
        }
        pos += n;
    }
}

impl Disk for MemDisk {
    fn info(&self) -> DiskInfo {
        self.info.clone()
    }

    async fn read_range(&self, range: DiskRange) -> DiskResult<Bytes> {
        let (offset_bytes, length_bytes) = (range.offset_bytes(), range.io_length_bytes()?);
        self.maybe_panic(FaultOp::Read);
        let gated = {
            let mut s = self.lock()?;
            self.check(&mut s, FaultOp::Read, offset_bytes, u64::from(length_bytes))?;
            s.gate_offset == Some(offset_bytes)
        };
        if gated {
            self.gate_waiters.fetch_add(1, Ordering::SeqCst);
            let permit = self.gate.acquire().await;
            self.gate_waiters.fetch_sub(1, Ordering::SeqCst);
            permit
                .map_err(|_| DiskError::new(DiskErrorKind::Shutdown, "gate closed"))?
                .forget();
        }
        let s = self.lock()?;
        let mut out = BytesMut::zeroed(length_bytes as usize);
        let end = offset_bytes + u64::from(length_bytes);
        let mut pos = offset_bytes;
        while pos < end {
            let page = pos / PAGE_BYTES;
            let in_page = pos % PAGE_BYTES;
            let n = (PAGE_BYTES - in_page).min(end - pos);
            if let Some(p) = s.pages.get(&page) {
                let dst = ix(pos - offset_bytes);
                out[dst..dst + ix(n)].copy_from_slice(&p[ix(in_page)..ix(in_page + n)]);
            }
            pos += n;
        }
        Ok(out.freeze())
    }

    async fn write_range(&self, range: DiskRange, data: Bytes, _fua: bool) -> DiskResult<()> {
        range.check_buffer(data.len())?;
        let offset_bytes = range.offset_bytes();
        self.maybe_panic(FaultOp::Write);
        let mut s = self.lock()?;
        let len = data.len() as u64;
        self.check(&mut s, FaultOp::Write, offset_bytes, len)?;
        let end = offset_bytes + len;
        let mut pos = offset_bytes;
        while pos < end {
            let page = pos / PAGE_BYTES;
            let in_page = pos % PAGE_BYTES;
            let n = (PAGE_BYTES - in_page).min(end - pos);
            let p = s
                .pages
                .entry(page)
                .or_insert_with(|| vec![0u8; ix(PAGE_BYTES)].into_boxed_slice());
            let src = ix(pos - offset_bytes);
            p[ix(in_page)..ix(in_page + n)].copy_from_slice(&data[src..src + ix(n)]);
            pos += n;
        }
        set_status(&mut s.status, offset_bytes, end, Some(ExtentStatus::Data));
        Ok(())
    }

    async fn flush(&self) -> DiskResult<()> {
        let mut s = self.lock()?;
        if let Some(kind) = s.faults.remove(&FaultOp::Flush) {
            return Err(DiskError::new(kind, "injected fault on Flush"));
        }
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn trim_range(&self, range: DiskRange) -> DiskResult<()> {
        let (offset_bytes, length_bytes) = (range.offset_bytes(), range.length_bytes());
        let mut s = self.lock()?;
        self.check(&mut s, FaultOp::Trim, offset_bytes, length_bytes)?;
        zero_bytes(&mut s, offset_bytes, length_bytes);
        set_status(
            &mut s.status,
            offset_bytes,
            offset_bytes + length_bytes,
            None,
        );
        Ok(())
    }

    async fn write_zeroes_range(
        &self,
        range: DiskRange,
        _may_unmap: bool,
        _fua: bool,
    ) -> DiskResult<()> {
        let (offset_bytes, length_bytes) = (range.offset_bytes(), range.length_bytes());
        let mut s = self.lock()?;
        self.check(&mut s, FaultOp::WriteZeroes, offset_bytes, length_bytes)?;
        zero_bytes(&mut s, offset_bytes, length_bytes);
        set_status(
            &mut s.status,
            offset_bytes,
            offset_bytes + length_bytes,
            Some(ExtentStatus::Zero),
        );
        Ok(())
    }

    async fn block_status_range(&self, range: DiskRange) -> DiskResult<Vec<StatusExtent>> {
        let (offset_bytes, length_bytes) = (range.offset_bytes(), range.length_bytes());
        let mut s = self.lock()?;
        self.check(&mut s, FaultOp::BlockStatus, offset_bytes, length_bytes)?;
        Ok(query(&s, offset_bytes, length_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(o: u64, l: u64, s: ExtentStatus) -> StatusExtent {
        StatusExtent {
            offset_bytes: o,
            length_bytes: l,
            status: s,
        }
    }

    #[tokio::test]
    async fn sparse_status_and_data() {
        let d = MemDisk::new(1 << 20);
        assert_eq!(d.extents(), vec![ext(0, 1 << 20, ExtentStatus::Hole)]);
        d.write(4096, Bytes::from(vec![7u8; 8192]), false)
            .await
            .unwrap();
        d.write_zeroes(65536, 65536, true, false).await.unwrap();
        d.write(12288, Bytes::from(vec![8u8; 100]), false)
            .await
            .unwrap();
        assert_eq!(
            d.extents(),
            vec![
                ext(0, 4096, ExtentStatus::Hole),
                ext(4096, 8292, ExtentStatus::Data),
                ext(12388, 65536 - 12388, ExtentStatus::Hole),
                ext(65536, 65536, ExtentStatus::Zero),
                ext(131072, (1 << 20) - 131072, ExtentStatus::Hole),
            ]
        );
        let r = d.read(4000, 200).await.unwrap();
        assert!(r[..96].iter().all(|b| *b == 0) && r[96..].iter().all(|b| *b == 7));
        d.trim(4096, 4096).await.unwrap();
        let r = d.read(4096, 4096).await.unwrap();
        assert!(r.iter().all(|b| *b == 0));
        assert_eq!(
            d.block_status(0, 16384).await.unwrap(),
            vec![
                ext(0, 8192, ExtentStatus::Hole),
                ext(8192, 4196, ExtentStatus::Data),
                ext(12388, 16384 - 12388, ExtentStatus::Hole),
            ]
        );
        // Overwrite a zero range partly with data, in the middle.
        d.write(70000, Bytes::from(vec![1u8; 10]), false)
            .await
            .unwrap();
        let st = d.block_status(65536, 65536).await.unwrap();
        assert_eq!(
            st,
            vec![
                ext(65536, 70000 - 65536, ExtentStatus::Zero),
                ext(70000, 10, ExtentStatus::Data),
                ext(70010, 131072 - 70010, ExtentStatus::Zero),
            ]
        );
        assert!(d.read(0, 100).await.is_ok());
        assert!(d.read((1 << 20) - 1, 2).await.is_err());
        d.fail_next(FaultOp::Read, DiskErrorKind::Io);
        assert_eq!(d.read(0, 1).await.unwrap_err().kind, DiskErrorKind::Io);
        assert!(d.read(0, 1).await.is_ok());
    }
}
