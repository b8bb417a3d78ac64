//! Request latency histograms and the queue depth of the NBD frontend, kept by a thin
//! [`Disk`] wrapper around each device's disk: two clock reads and three relaxed atomic
//! additions per request, no lock and no allocation. A request is timed from the moment the
//! NBD server hands it to the disk until the disk answers (error or not); the time its reply
//! spends in the socket is not included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pnfs_gateway::disk::{AlignedBuf, Disk, DiskInfo, DiskRange, DiskResult, StatusExtent};
use serde::{Deserialize, Serialize};

/// Upper bounds of the histogram buckets in microseconds (a last, unbounded bucket follows):
/// from a page-cache hit to a request stalled behind an MDS restart.
pub const BUCKET_BOUNDS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

/// One latency histogram: a count per bucket and the sum of the observed times.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Counts one request that took `took`.
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // The first bucket whose bound is >= the time (Prometheus buckets are "less or equal").
        let i = BUCKET_BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// A copy, labelled.
    pub fn snapshot(&self, frontend: &str, op: &str) -> LatencyHistogram {
        LatencyHistogram {
            frontend: frontend.to_owned(),
            op: op.to_owned(),
            bounds_us: BUCKET_BOUNDS_US.to_vec(),
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// A histogram as the control socket sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// "nbd".
    pub frontend: String,
    /// "read", "write" or "flush".
    pub op: String,
    /// Upper bounds of the buckets, microseconds.
    pub bounds_us: Vec<u64>,
    /// Requests per bucket (not cumulative); one more than `bounds_us`, the last unbounded.
    pub counts: Vec<u64>,
    /// The sum of the request times, nanoseconds.
    pub sum_ns: u64,
}

impl LatencyHistogram {
    /// Requests counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The bound of the bucket that holds the quantile `per_mille`/1000 (None: no requests,
    /// or it is in the unbounded bucket).
    pub fn quantile_bound_us(&self, per_mille: u64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        // The rank of the quantile, 1-based, in integers: ceil(n * per_mille / 1000).
        let rank = (u128::from(n) * u128::from(per_mille.min(1000))).div_ceil(1000);
        let rank = u64::try_from(rank).unwrap_or(n).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return self.bounds_us.get(i).copied();
            }
        }
        None
    }
}

/// The timing of one device's NBD frontend.
#[derive(Debug, Default)]
pub struct FrontendTiming {
    /// READ requests.
    pub read: Histogram,
    /// WRITE requests.
    pub write: Histogram,
    /// FLUSH requests.
    pub flush: Histogram,
    in_flight: AtomicU64,
}

impl FrontendTiming {
    /// Requests at the disk now (the frontend's queue depth).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The histograms, labelled with `frontend`.
    pub fn snapshot(&self, frontend: &str) -> Vec<LatencyHistogram> {
        vec![
            self.read.snapshot(frontend, "read"),
            self.write.snapshot(frontend, "write"),
            self.flush.snapshot(frontend, "flush"),
        ]
    }

    fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }
}

/// Counts a request in flight until dropped (also when the request is cancelled).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A disk that times the requests it passes on.
pub struct TimedDisk<D> {
    inner: Arc<D>,
    timing: Arc<FrontendTiming>,
}

impl<D> TimedDisk<D> {
    /// Wraps `inner`, counting into `timing`.
    pub fn new(inner: Arc<D>, timing: Arc<FrontendTiming>) -> Self {
        Self { inner, timing }
    }
}

impl<D: Disk> Disk for TimedDisk<D> {
    fn info(&self) -> DiskInfo {
        self.inner.info()
    }

    async fn read_range(&self, range: DiskRange) -> DiskResult<Bytes> {
        let _busy = self.timing.enter();
        let started = Instant::now();
        let r = self.inner.read_range(range).await;
        self.timing.read.observe(started.elapsed());
        r
    }

    async fn read_into(&self, range: DiskRange, buf: AlignedBuf) -> DiskResult<AlignedBuf> {
        let _busy = self.timing.enter();
        let started = Instant::now();
        let r = self.inner.read_into(range, buf).await;
        self.timing.read.observe(started.elapsed());
        r
    }

    async fn write_range(&self, range: DiskRange, data: Bytes, fua: bool) -> DiskResult<()> {
        let _busy = self.timing.enter();
        let started = Instant::now();
        let r = self.inner.write_range(range, data, fua).await;
        self.timing.write.observe(started.elapsed());
        r
    }

    async fn write_from(&self, range: DiskRange, data: AlignedBuf, fua: bool) -> DiskResult<()> {
        let _busy = self.timing.enter();
        let started = Instant::now();
        let r = self.inner.write_from(range, data, fua).await;
        self.timing.write.observe(started.elapsed());
        r
    }

    async fn flush(&self) -> DiskResult<()> {
        let _busy = self.timing.enter();
        let started = Instant::now();
        let r = self.inner.flush().await;
        self.timing.flush.observe(started.elapsed());
        r
    }

    async fn trim_range(&self, range: DiskRange) -> DiskResult<()> {
        let _busy = self.timing.enter();
        self.inner.trim_range(range).await
    }

    async fn write_zeroes_range(
        &self,
        range: DiskRange,
        may_unmap: bool,
        fua: bool,
    ) -> DiskResult<()> {
        let _busy = self.timing.enter();
        self.inner.write_zeroes_range(range, may_unmap, fua).await
    }

    async fn block_status_range(&self, range: DiskRange) -> DiskResult<Vec<StatusExtent>> {
        self.inner.block_status_range(range).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_is_not_below() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50)); // le 50
        h.observe(Duration::from_micros(51)); // le 100
        h.observe(Duration::from_millis(3)); // le 5000
        h.observe(Duration::from_secs(60)); // beyond the last bound
        let s = h.snapshot("nbd", "read");
        assert_eq!(s.count(), 4);
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.counts[6], 1);
        assert_eq!(s.counts[BUCKETS - 1], 1);
        assert_eq!(s.sum_ns, 50_000 + 51_000 + 3_000_000 + 60_000_000_000);
        assert_eq!(s.quantile_bound_us(500), Some(100));
        assert_eq!(s.quantile_bound_us(750), Some(5_000));
        assert_eq!(s.quantile_bound_us(1000), None);
        assert_eq!(
            Histogram::default()
                .snapshot("nbd", "read")
                .quantile_bound_us(500),
            None
        );
    }
}
