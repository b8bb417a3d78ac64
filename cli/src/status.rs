//! What `pnfsgw stats` shows: the state of every device and frontend, and the gateway's
//! counters. The service updates a [`Board`]; the control socket serves [`Snapshot`]s of it.

use pnfs_gateway::sync::LockExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::latency::LatencyHistogram;

/// The state of a device or a frontend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum State {
    /// Being set up.
    Starting,
    /// Serving.
    Up,
    /// Could not start or stopped on an error; the message says why.
    Failed(String),
    /// Draining and committing.
    Stopping,
    /// Stopped cleanly.
    Stopped,
}

/// One frontend of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontendStatus {
    /// "nbd" or "ublk".
    pub kind: String,
    /// Where it is: `nbd://127.0.0.1:10809/vm1`, `/dev/ublkb0`, or empty while starting.
    pub location: String,
    /// State.
    #[serde(flatten)]
    pub state: State,
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The configured name.
    pub name: String,
    /// The file on the MDS.
    pub path: String,
    /// Size in bytes once open.
    pub size_bytes: Option<u64>,
    /// "pnfs" or "mds".
    pub data_path: String,
    /// State.
    #[serde(flatten)]
    pub state: State,
    /// Frontends.
    pub frontends: Vec<FrontendStatus>,
    /// The gateway's counters for this device (names as the gateway gives them).
    pub counters: BTreeMap<String, u64>,
    /// Request latency histograms of the device's frontends (absent from older gateways).
    #[serde(default)]
    pub latency: Vec<LatencyHistogram>,
}

/// A point-in-time copy of the board, as sent over the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// pnfsgw version.
    pub version: String,
    /// The gateway's pid.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_s: u64,
    /// The MDS addresses.
    pub mds: Vec<String>,
    /// Whole-gateway counters (session, callbacks, …).
    pub counters: BTreeMap<String, u64>,
    /// Devices in configuration order.
    pub devices: Vec<DeviceStatus>,
}

/// Shared, updatable state of the service.
#[derive(Debug, Clone)]
pub struct Board {
    inner: Arc<Mutex<Inner>>,
}

/// Fills live counters into a snapshot (called on every snapshot, outside the lock).
pub type Refresh = Arc<dyn Fn(&mut Snapshot) + Send + Sync>;

struct Inner {
    started: Instant,
    mds: Vec<String>,
    devices: Vec<DeviceStatus>,
    counters: BTreeMap<String, u64>,
    refresh: Option<Refresh>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("mds", &self.mds)
            .field("devices", &self.devices)
            .field("refresh", &self.refresh.is_some())
            .finish_non_exhaustive()
    }
}

impl Board {
    /// A board for these MDS addresses and devices (all `Starting`).
    pub fn new(mds: Vec<String>, devices: Vec<DeviceStatus>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                started: Instant::now(),
                mds,
                devices,
                counters: BTreeMap::new(),
                refresh: None,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic while holding the lock leaves plain data; keep serving it.
        let mut g = self.inner.lock_unpoisoned();
        f(&mut g)
    }

    /// Updates device `index`.
    pub fn device(&self, index: usize, f: impl FnOnce(&mut DeviceStatus)) {
        self.with(|i| {
            if let Some(d) = i.devices.get_mut(index) {
                f(d);
            }
        });
    }

    /// Sets the function that fills live counters into every snapshot (None: stop).
    pub fn set_refresh(&self, refresh: Option<Refresh>) {
        self.with(|i| i.refresh = refresh);
    }

    /// A copy for the control socket, with live counters.
    pub fn snapshot(&self) -> Snapshot {
        let (mut snap, refresh) = self.with(|i| {
            let snap = Snapshot {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                pid: std::process::id(),
                uptime_s: i.started.elapsed().as_secs(),
                mds: i.mds.clone(),
                counters: i.counters.clone(),
                devices: i.devices.clone(),
            };
            (snap, i.refresh.clone())
        });
        if let Some(r) = refresh {
            r(&mut snap);
        }
        snap
    }
}

impl State {
    /// Short text for tables.
    pub fn text(&self) -> String {
        match self {
            State::Starting => "starting".into(),
            State::Up => "up".into(),
            State::Failed(why) => format!("FAILED: {why}"),
            State::Stopping => "stopping".into(),
            State::Stopped => "stopped".into(),
        }
    }
}

impl Snapshot {
    /// The human-readable form `pnfsgw stats` prints.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "pnfsgw {} pid {} up {}s, MDS {}",
            self.version,
            self.pid,
            self.uptime_s,
            self.mds.join(", ")
        );
        for (k, v) in &self.counters {
            let _ = writeln!(s, "  {k} {v}");
        }
        for d in &self.devices {
            let size = d
                .size_bytes
                .map_or_else(|| "-".to_owned(), crate::size::format_size);
            let _ = writeln!(
                s,
                "device {} ({}, {size}, {}): {}",
                d.name,
                d.path,
                d.data_path,
                d.state.text()
            );
            for f in &d.frontends {
                let _ = writeln!(s, "  {} {}: {}", f.kind, f.location, f.state.text());
            }
            for (k, v) in &d.counters {
                let _ = writeln!(s, "  {k} {v}");
            }
            for h in d.latency.iter().filter(|h| h.count() > 0) {
                let bound = |q| {
                    h.quantile_bound_us(q)
                        .map_or_else(|| "more".to_owned(), |us| format!("{us}us"))
                };
                let _ = writeln!(
                    s,
                    "  {}.{} latency: {} requests, mean {}us, p50 <= {}, p99 <= {}",
                    h.frontend,
                    h.op,
                    h.count(),
                    h.sum_ns / h.count() / 1_000,
                    bound(500),
                    bound(990)
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_through_json_and_print_states() {
        let board = Board::new(
            vec!["127.0.0.1:2049".into()],
            vec![DeviceStatus {
                name: "vm1".into(),
                path: "/vm1.img".into(),
                size_bytes: None,
                data_path: "pnfs".into(),
                state: State::Starting,
                frontends: vec![FrontendStatus {
                    kind: "nbd".into(),
                    location: "nbd://127.0.0.1:10809/vm1".into(),
                    state: State::Starting,
                }],
                counters: BTreeMap::new(),
                latency: Vec::new(),
            }],
        );
        board.device(0, |d| {
            d.state = State::Failed("file not found on the MDS".into());
            d.counters.insert("reads".into(), 7);
        });
        let snap = board.snapshot();
        let json = serde_json::to_string(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        let text = back.to_text();
        assert!(
            text.contains("device vm1 (/vm1.img, -, pnfs): FAILED: file not found on the MDS"),
            "{text}"
        );
        assert!(text.contains("  reads 7"), "{text}");
    }
}
