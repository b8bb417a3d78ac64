//! Lease-timed I/O fencing (docs/requirements.md B7; RFC 5663 §2.3.8).
//!
//! The server may fence a client whose lease expired and hand its blocks to someone else. The
//! client cannot know when the server's clock says "expired", only that the lease was renewed
//! no earlier than the moment the renewing request was SENT. So no direct volume I/O may be
//! issued after
//!
//! ```text
//! fence point = last renewal request send time + lease − safety margin − max I/O time
//! ```
//!
//! (an I/O issued before that point completes, bounded by `max_io`, before the lease can have
//! run out). After the point, I/O waits for a renewal (bounded by `max_wait`) and then goes
//! through the MDS. The clock is Tokio's, so tests drive it with `tokio::time::pause()`.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::mds_api::LeaseStatus;

/// Fencing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceConfig {
    /// Subtracted from the lease for clock skew and message delay.
    pub safety_margin: Duration,
    /// The longest one direct I/O may take (an I/O slower than this is counted and logged).
    pub max_io: Duration,
    /// How long a request waits for a renewal before it goes through the MDS.
    pub max_wait: Duration,
}

impl Default for FenceConfig {
    fn default() -> Self {
        Self {
            safety_margin: Duration::from_secs(1),
            max_io: Duration::from_secs(2),
            max_wait: Duration::from_secs(3),
        }
    }
}

impl FenceConfig {
    /// The fence point for a lease status, or `None` if the lease was never renewed (no
    /// direct I/O at all then).
    pub fn fence_point(&self, lease: &LeaseStatus) -> Option<Instant> {
        let sent = lease.last_renewal_sent?;
        let budget = lease
            .lease
            .checked_sub(self.safety_margin)
            .and_then(|d| d.checked_sub(self.max_io))?;
        Some(sent + budget)
    }

    /// True if direct I/O may be issued at `now`.
    pub fn may_issue(&self, lease: &LeaseStatus, now: Instant) -> bool {
        self.fence_point(lease).is_some_and(|p| now < p)
    }
}

/// What [`wait_unfenced`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceDecision {
    /// Direct I/O may be issued now (without further awaits before issuing).
    Open,
    /// It waited and the fence did not lift in time: use the MDS.
    Fenced,
}

/// Returns [`FenceDecision::Open`] at once if the lease allows direct I/O; else waits (up to
/// `cfg.max_wait`) for a renewal that does. `on_fenced` runs once if it had to wait.
pub async fn wait_unfenced(
    cfg: &FenceConfig,
    lease_rx: &mut watch::Receiver<LeaseStatus>,
    on_fenced: impl FnOnce(),
) -> FenceDecision {
    if cfg.may_issue(&lease_rx.borrow_and_update(), Instant::now()) {
        return FenceDecision::Open;
    }
    on_fenced();
    let deadline = Instant::now() + cfg.max_wait;
    loop {
        match tokio::time::timeout_at(deadline, lease_rx.changed()).await {
            Ok(Ok(())) => {
                if cfg.may_issue(&lease_rx.borrow_and_update(), Instant::now()) {
                    return FenceDecision::Open;
                }
            }
            // Sender gone (client shut down) or timed out.
            Ok(Err(_)) | Err(_) => return FenceDecision::Fenced,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(sent: Option<Instant>) -> LeaseStatus {
        LeaseStatus {
            last_renewal_sent: sent,
            lease: Duration::from_secs(30),
            client_epoch: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fence_point_is_send_time_plus_lease_minus_margin_and_io() {
        let cfg = FenceConfig::default();
        let t0 = Instant::now();
        assert_eq!(
            cfg.fence_point(&lease(Some(t0))),
            Some(t0 + Duration::from_secs(27))
        );
        assert!(cfg.may_issue(&lease(Some(t0)), t0 + Duration::from_millis(26_999)));
        assert!(!cfg.may_issue(&lease(Some(t0)), t0 + Duration::from_secs(27)));
        assert!(!cfg.may_issue(&lease(None), t0));
        let tiny = LeaseStatus {
            lease: Duration::from_secs(3),
            ..lease(Some(t0))
        };
        assert!(
            !cfg.may_issue(&tiny, t0),
            "lease shorter than margins: never issue"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_renewal_then_opens_or_gives_up() {
        let cfg = FenceConfig::default();
        let t0 = Instant::now();
        let (tx, mut rx) = watch::channel(lease(Some(t0)));
        assert_eq!(
            wait_unfenced(&cfg, &mut rx, || panic!("not fenced")).await,
            FenceDecision::Open
        );
        tokio::time::sleep(Duration::from_secs(28)).await;
        let renew = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.send_replace(lease(Some(Instant::now())));
            tx
        });
        let mut fenced = 0;
        assert_eq!(
            wait_unfenced(&cfg, &mut rx, || fenced += 1).await,
            FenceDecision::Open
        );
        assert_eq!(fenced, 1);
        let _tx = renew.await.expect("renewer");
        tokio::time::sleep(Duration::from_secs(30)).await;
        let start = Instant::now();
        assert_eq!(
            wait_unfenced(&cfg, &mut rx, || ()).await,
            FenceDecision::Fenced
        );
        assert_eq!(Instant::now() - start, cfg.max_wait);
    }
}
