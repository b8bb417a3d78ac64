//! When two clients take turns on one file, every turn costs a CB_LAYOUTRECALL, a
//! LAYOUTCOMMIT, a LAYOUTRETURN and a LAYOUTGET on each side (the "ping-pong"): measured in
//! bench/results/2026-12-07-handover.txt at 1/8 (1 MiB turns) to 1/40 (64 KiB turns) of one
//! gateway alone. This module decides when a file should stop taking layouts and go through
//! the MDS (READ/WRITE) for a while instead, like a client that gives up on pNFS for a file
//! after repeated recalls; and the LAYOUTGET retry pauses after RECALLCONFLICT / LAYOUTTRYLATER
//! / DELAY.
//!
//! Both are pure functions of their inputs and the time passed in (`now`), so the tests drive
//! them with a made-up clock.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::Duration;

use tokio::time::Instant;

/// Recalls of one file's layout within [`CONTENTION_WINDOW`] that start a back-off.
pub const CONTENTION_RECALLS: u32 = 4;
/// The window in which [`CONTENTION_RECALLS`] recalls count as contention.
pub const CONTENTION_WINDOW: Duration = Duration::from_secs(2);
/// The first back-off period (the file uses the MDS for this long).
pub const CONTENTION_BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// The longest back-off period (it doubles while the contention goes on).
pub const CONTENTION_BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Doublings of the back-off period at most (`CONTENTION_BACKOFF_MAX` caps it sooner).
const MAX_BACKOFF_DOUBLINGS: u32 = 16;

/// Settings of the ping-pong back-off (part of [`super::PnfsConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentionConfig {
    /// Recalls of one file's layout within `window` that send the file to the MDS for a
    /// while; 0 never does.
    pub recalls: u32,
    /// See `recalls`.
    pub window: Duration,
    /// The first back-off period.
    pub backoff_initial: Duration,
    /// The longest back-off period.
    pub backoff_max: Duration,
}

impl Default for ContentionConfig {
    fn default() -> Self {
        Self {
            recalls: CONTENTION_RECALLS,
            window: CONTENTION_WINDOW,
            backoff_initial: CONTENTION_BACKOFF_INITIAL,
            backoff_max: CONTENTION_BACKOFF_MAX,
        }
    }
}

/// The contention record of one file: recent recalls and the back-off level.
///
/// - A back-off starts when `recalls` recalls arrive within `window` (level 0:
///   `backoff_initial`).
/// - While the file backs off it holds no layout, so the other client works undisturbed; when
///   the period ends the file takes layouts again. A recall that arrives within the "quiet
///   time" after the end (the last period plus `window`) means the contention goes on: the
///   next back-off starts at once, twice as long (up to `backoff_max`).
/// - No recall within the quiet time: the contention stopped; the level resets and the next
///   back-off again needs `recalls` recalls within `window`.
#[derive(Debug, Default)]
pub(super) struct Contention {
    /// Times of the recent recalls (at most `recalls` of them, none older than `window`).
    recent: VecDeque<Instant>,
    /// Back-offs in a row so far (the next one lasts `backoff_initial * 2^level`).
    level: u32,
    /// The current or last back-off: (end, its length).
    last: Option<(Instant, Duration)>,
}

impl Contention {
    /// A recall of a layout the file holds arrived at `now`. `Some(until)`: the file must use
    /// the MDS until `until` (and return its whole layout now).
    pub(super) fn on_recall(&mut self, cfg: &ContentionConfig, now: Instant) -> Option<Instant> {
        if cfg.recalls == 0 {
            return None;
        }
        if let Some((end, period)) = self.last {
            if now < end {
                // Already backing off (a layout taken just before the back-off started).
                return None;
            }
            if now.duration_since(end) <= period.saturating_add(cfg.window) {
                return Some(self.start(cfg, now));
            }
            // Quiet for long enough: the contention stopped.
            self.level = 0;
            self.last = None;
            self.recent.clear();
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) > cfg.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let keep = usize::try_from(cfg.recalls).unwrap_or(usize::MAX);
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
        (self.recent.len() >= keep).then(|| self.start(cfg, now))
    }

    fn start(&mut self, cfg: &ContentionConfig, now: Instant) -> Instant {
        let period = cfg
            .backoff_initial
            .saturating_mul(1u32 << self.level.min(MAX_BACKOFF_DOUBLINGS))
            .min(cfg.backoff_max);
        self.level = (self.level + 1).min(MAX_BACKOFF_DOUBLINGS);
        self.recent.clear();
        let end = now + period;
        self.last = Some((end, period));
        end
    }

    /// Back-offs in a row so far (0: no contention now).
    #[cfg(test)]
    fn level(&self) -> u32 {
        self.level
    }
}

/// The pause before LAYOUTGET retry number `attempt` (0-based) after RECALLCONFLICT,
/// LAYOUTTRYLATER or DELAY: `base * 2^attempt`, capped at `max`, with "equal jitter" (a
/// uniformly random point in the upper half, from `jitter`, a value in `[0, 1 << 32)`), so
/// two clients refused together do not retry in lock-step. The first pause is short: the
/// recall that caused the refusal usually completes within a few milliseconds (the holder
/// drains, commits and returns), and RFC 8881 §12.5.5.2 / §18.43.3 leave the retry timing
/// to the client.
pub fn layoutget_retry_pause(base: Duration, max: Duration, attempt: u32, jitter: u64) -> Duration {
    let full = base
        .saturating_mul(1u32 << attempt.min(MAX_BACKOFF_DOUBLINGS))
        .min(max);
    let half = full / 2;
    let frac = u128::from(jitter & 0xffff_ffff);
    let extra_ns = (half.as_nanos() * frac) >> 32;
    half + Duration::from_nanos(u64::try_from(extra_ns).unwrap_or(u64::MAX))
}

/// A random value for [`layoutget_retry_pause`] (std's per-process random hash keys; no
/// cryptographic quality needed).
pub(super) fn jitter_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn cfg() -> ContentionConfig {
        ContentionConfig {
            recalls: 3,
            window: Duration::from_secs(1),
            backoff_initial: 100 * MS,
            backoff_max: 400 * MS,
        }
    }

    #[test]
    fn backs_off_after_n_recalls_in_the_window_only() {
        let c = cfg();
        let t0 = Instant::now();
        let mut k = Contention::default();
        // Three recalls, but spread wider than the window: no back-off.
        assert_eq!(k.on_recall(&c, t0), None);
        assert_eq!(k.on_recall(&c, t0 + 600 * MS), None);
        assert_eq!(k.on_recall(&c, t0 + 1200 * MS), None, "t0 left the window");
        // The third within one window of the previous two: back off for the first period.
        assert_eq!(
            k.on_recall(&c, t0 + 1300 * MS),
            Some(t0 + 1400 * MS),
            "3 recalls within 1 s"
        );
        assert_eq!(k.level(), 1);
    }

    #[test]
    fn the_period_doubles_while_contention_lasts_and_resets_when_it_stops() {
        let c = cfg();
        let t0 = Instant::now();
        let mut k = Contention::default();
        k.on_recall(&c, t0);
        k.on_recall(&c, t0 + MS);
        let end1 = k.on_recall(&c, t0 + 2 * MS).expect("first back-off");
        assert_eq!(end1, t0 + 102 * MS);
        // During the back-off a late recall changes nothing.
        assert_eq!(k.on_recall(&c, t0 + 50 * MS), None);
        // One recall soon after the end: contention goes on, twice as long.
        let end2 = k.on_recall(&c, end1 + 10 * MS).expect("second back-off");
        assert_eq!(end2, end1 + 10 * MS + 200 * MS);
        let end3 = k.on_recall(&c, end2 + 5 * MS).expect("third back-off");
        assert_eq!(end3, end2 + 5 * MS + 400 * MS);
        let end4 = k.on_recall(&c, end3).expect("fourth back-off");
        assert_eq!(end4, end3 + 400 * MS, "capped at backoff_max");
        assert_eq!(k.level(), 4);
        // Quiet for longer than the last period plus the window: contention stopped. One
        // recall is no longer enough, and the next back-off is the first period again.
        let later = end4 + 400 * MS + c.window + MS;
        assert_eq!(k.on_recall(&c, later), None);
        assert_eq!(k.level(), 0);
        assert_eq!(k.on_recall(&c, later + MS), None);
        assert_eq!(k.on_recall(&c, later + 2 * MS), Some(later + 102 * MS));
    }

    #[test]
    fn zero_recalls_never_backs_off() {
        let c = ContentionConfig {
            recalls: 0,
            ..cfg()
        };
        let t0 = Instant::now();
        let mut k = Contention::default();
        for i in 0..100 {
            assert_eq!(k.on_recall(&c, t0 + i * MS), None);
        }
    }

    #[test]
    fn retry_pauses_start_short_grow_and_stay_bounded() {
        let (base, max) = (2 * MS, 256 * MS);
        // Jitter 0 gives the lower half, the largest jitter the full pause.
        assert_eq!(layoutget_retry_pause(base, max, 0, 0), MS);
        let top = layoutget_retry_pause(base, max, 0, u64::from(u32::MAX));
        assert!(
            top > 1999 * Duration::from_micros(1) && top <= base,
            "{top:?}"
        );
        assert_eq!(layoutget_retry_pause(base, max, 3, 0), 8 * MS);
        assert_eq!(layoutget_retry_pause(base, max, 10, 0), 128 * MS, "capped");
        assert_eq!(layoutget_retry_pause(base, max, u32::MAX, 0), 128 * MS);
        let mut total = Duration::ZERO;
        for attempt in 0..10 {
            let p = layoutget_retry_pause(base, max, attempt, u64::MAX);
            assert!(p <= max);
            total += p;
        }
        assert!(total <= 1100 * MS, "ten retries wait {total:?}");
    }
}
