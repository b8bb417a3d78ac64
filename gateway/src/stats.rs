//! Counters of the gateway core, as atomics, with a plain snapshot the CLI can print.
//!
//! One [`Stats`] is shared by everything that serves one MDS (all its devices); frontends and
//! the CLI read it with [`Stats::snapshot`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {
        /// Live counters (relaxed atomics: each is exact, the set is not a consistent cut).
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$m])* pub $name: AtomicU64,)*
        }

        /// A copy of [`Stats`] at one moment.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $($(#[$m])* pub $name: u64,)*
        }

        impl Stats {
            /// Copies every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }

        impl fmt::Display for StatsSnapshot {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut first = true;
                $(
                    if !first {
                        f.write_str(" ")?;
                    }
                    first = false;
                    write!(f, "{}={}", stringify!($name), self.$name)?;
                )*
                let _ = first;
                Ok(())
            }
        }
    };
}

counters! {
    /// Bytes read directly from the volume(s) for block requests.
    direct_read_bytes,
    /// Bytes written directly to the volume(s) for block requests (RMW fill included).
    direct_write_bytes,
    /// Bytes read through MDS READ.
    mds_read_bytes,
    /// Bytes written through MDS WRITE.
    mds_write_bytes,
    /// Bytes returned as zeros without I/O (INVALID / NONE extents).
    zero_fill_read_bytes,
    /// LAYOUTGET calls sent.
    layoutgets,
    /// LAYOUTGET calls that failed (any status).
    layoutget_errors,
    /// Request ranges fully served from cached extents.
    cache_hits,
    /// Request ranges that needed a LAYOUTGET.
    cache_misses,
    /// CB_LAYOUTRECALL received.
    recalls,
    /// CB_RECALL_ANY received.
    recall_anys,
    /// LAYOUTRETURN calls sent.
    layoutreturns,
    /// LAYOUTCOMMIT calls that succeeded.
    commits,
    /// LAYOUTCOMMIT calls that failed.
    commit_errors,
    /// Sub-block writes done as read-modify-write of a server block.
    rmw_blocks,
    /// Times direct I/O was held back by lease fencing.
    fencing_events,
    /// Requests sent through the MDS because the fence did not lift in time.
    fenced_to_mds,
    /// Volume I/O errors (each led to an MDS retry).
    volume_errors,
    /// GETDEVICEINFO calls sent.
    getdeviceinfos,
    /// Layouts of whole files evicted under the memory bound over all files.
    evictions,
    /// Ranges (least recently used windows) a file returned to stay within its own bound on
    /// cached pieces (`max_cached_extents`).
    window_evictions,
    /// Times a file went through the MDS for a while because its layout kept being recalled
    /// (two clients taking turns on it: ping-pong).
    contention_backoffs,
    /// Block requests that failed (error returned to the frontend).
    request_errors,
    /// LAYOUTGET calls sent for SCSI layouts (RFC 8154; also counted in `layoutgets`).
    scsi_layoutgets,
    /// SCSI persistent-reservation keys registered (PERSISTENT RESERVE OUT REGISTER).
    pr_registrations,
    /// PR registrations that failed (the device was not used).
    pr_registration_errors,
    /// Files whose layout the server revoked (found by TEST_STATEID after
    /// SEQ4_STATUS_RECALLABLE_STATE_REVOKED; dropped without LAYOUTRETURN).
    layouts_revoked,
    /// Times a COMMIT's verifier differed from the one uncommitted MDS writes were answered
    /// with (an MDS restart): each time they were all sent again.
    mds_rewrites,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_copies_and_displays() {
        let s = Stats::default();
        Stats::add(&s.direct_read_bytes, 4096);
        Stats::inc(&s.layoutgets);
        let snap = s.snapshot();
        assert_eq!(snap.direct_read_bytes, 4096);
        assert_eq!(snap.layoutgets, 1);
        let text = snap.to_string();
        assert!(
            text.starts_with("direct_read_bytes=4096 direct_write_bytes=0"),
            "{text}"
        );
        assert!(text.contains("layoutgets=1"));
    }
}
