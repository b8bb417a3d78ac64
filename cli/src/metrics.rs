//! The Prometheus metrics listener: `GET /metrics` answers with the counters of
//! `pnfsgw stats` in the Prometheus text format (version 0.0.4).
//!
//! There is one collection path: every scrape takes a [`Board::snapshot`], the same one the
//! control socket sends, and [`render`] names its counters after the Prometheus conventions
//! (`pnfsgw_…_total` for counters, `_bytes`, `_seconds`, labels `device`, `frontend`, `op`).
//! The encoding is `prometheus-client`'s.
//!
//! The HTTP server is a small HTTP/1.1 responder written here rather than hyper: it answers one
//! GET of one path per connection and closes, so all it needs is a bounded request head, a
//! time limit and a connection limit, and a parser that small is easier to bound than a general
//! server's dependency tree is to audit. Other paths get 404, other methods 405.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::status::{Board, Snapshot, State};

/// Largest request head (request line and headers) read.
pub const REQUEST_HEAD_MAX_BYTES: usize = 8 * 1024;
/// Most header lines in a request.
pub const REQUEST_HEADERS_MAX: usize = 64;
/// Time limit for one connection: reading the request and writing the answer.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Connections served at once; more are closed at once.
pub const CONNECTIONS_MAX: usize = 16;
/// The one path served.
pub const METRICS_PATH: &str = "/metrics";

/// A bound metrics listener.
#[derive(Debug)]
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    /// Binds `addr` (already checked by the configuration: loopback unless allowed).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes of `board` until `shutdown` turns true.
    pub async fn serve(self, board: Board, shutdown: watch::Receiver<bool>) {
        let limits = crate::accept::Limits {
            what: "metrics",
            connections_max: CONNECTIONS_MAX,
            request_timeout_ms: REQUEST_TIMEOUT_MS,
        };
        let listener = self.listener;
        let accept = || async {
            let (stream, peer) = listener.accept().await?;
            Ok((stream, peer.to_string()))
        };
        let answer = |stream| {
            let board = board.clone();
            async move { answer(stream, &board).await }
        };
        crate::accept::serve(limits, accept, answer, shutdown).await;
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// GET (or HEAD) of /metrics.
    Metrics { head_only: bool },
    /// Another path.
    NotFound,
    /// Another method.
    MethodNotAllowed,
    /// Not HTTP/1.x, or over the limits.
    Bad(&'static str),
}

/// Reads the request head: up to the empty line, at most [`REQUEST_HEAD_MAX_BYTES`].
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(buf));
        }
        if buf.len() >= REQUEST_HEAD_MAX_BYTES {
            return Ok(None);
        }
        let room = (REQUEST_HEAD_MAX_BYTES - buf.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the request head",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn parse_head(head: &[u8]) -> Request {
    let Ok(text) = std::str::from_utf8(head) else {
        return Request::Bad("the request head is not UTF-8");
    };
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next().unwrap_or_default();
    let headers = lines.take_while(|l| !l.is_empty()).count();
    if headers > REQUEST_HEADERS_MAX {
        return Request::Bad("too many header lines");
    }
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad("malformed request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Bad("not HTTP/1.x");
    }
    let path = target.split('?').next().unwrap_or_default();
    match method {
        "GET" | "HEAD" if path == METRICS_PATH => Request::Metrics {
            head_only: method == "HEAD",
        },
        "GET" | "HEAD" => Request::NotFound,
        _ => Request::MethodNotAllowed,
    }
}

async fn answer(mut stream: TcpStream, board: &Board) -> io::Result<()> {
    let (status, content_type, body, head_only, extra) = match read_head(&mut stream).await? {
        None => (
            "431 Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            format!("request head over {REQUEST_HEAD_MAX_BYTES} bytes\n"),
            false,
            "",
        ),
        Some(head) => match parse_head(&head) {
            Request::Metrics { head_only } => {
                let body = render(&board.snapshot()).map_err(io::Error::other)?;
                (
                    "200 OK",
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    body,
                    head_only,
                    "",
                )
            }
            Request::NotFound => (
                "404 Not Found",
                "text/plain; charset=utf-8",
                format!("not found: the metrics are at {METRICS_PATH}\n"),
                false,
                "",
            ),
            Request::MethodNotAllowed => (
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                "only GET and HEAD\n".to_owned(),
                false,
                "Allow: GET, HEAD\r\n",
            ),
            Request::Bad(why) => (
                "400 Bad Request",
                "text/plain; charset=utf-8",
                format!("{why}\n"),
                false,
                "",
            ),
        },
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// The snapshot in the Prometheus text format.
pub fn render(snap: &Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotMetrics(snap.clone())));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// Where one snapshot counter goes: the metric (a counter's name without `_total`), its kind,
/// its help, and fixed labels.
struct Mapping {
    key: &'static str,
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

const fn m(
    key: &'static str,
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [(&'static str, &'static str)],
) -> Mapping {
    Mapping {
        key,
        name,
        kind,
        help,
        labels,
    }
}

use Kind::{Counter as C, Gauge as G};

const READ_HELP: &str =
    "Bytes read for block requests by data path: direct from the volumes, through MDS READ, or zero-filled without I/O.";
const WRITE_HELP: &str =
    "Bytes written for block requests by data path: direct to the volumes (read-modify-write fill included) or through MDS WRITE.";

/// The whole-gateway counters (`Snapshot::counters`): one session to the MDS and the pNFS layer
/// over it, shared by every device.
const GATEWAY: &[Mapping] = &[
    m(
        "mds.connects",
        "pnfsgw_mds_connects",
        C,
        "TCP connections made to the MDS.",
        &[],
    ),
    m(
        "mds.binds",
        "pnfsgw_mds_binds",
        C,
        "Connections bound to the session (BIND_CONN_TO_SESSION).",
        &[],
    ),
    m(
        "mds.sessions",
        "pnfsgw_mds_sessions",
        C,
        "Sessions created (CREATE_SESSION).",
        &[],
    ),
    m(
        "mds.client_ids",
        "pnfsgw_mds_client_ids",
        C,
        "Client IDs established (EXCHANGE_ID).",
        &[],
    ),
    m(
        "mds.reclaimed_opens",
        "pnfsgw_mds_reclaimed_opens",
        C,
        "Opens reclaimed after an MDS restart.",
        &[],
    ),
    m(
        "mds.reopened_opens",
        "pnfsgw_mds_reopened_opens",
        C,
        "Opens reopened after the client state was lost.",
        &[],
    ),
    m(
        "mds.renewals",
        "pnfsgw_mds_lease_renewals",
        C,
        "Lease renewals.",
        &[],
    ),
    m(
        "mds.delay_retries",
        "pnfsgw_mds_delay_retries",
        C,
        "MDS requests retried after NFS4ERR_DELAY.",
        &[],
    ),
    m(
        "mds.callbacks",
        "pnfsgw_mds_callbacks",
        C,
        "Callbacks received from the MDS.",
        &[],
    ),
    m(
        "mds.delegations_returned",
        "pnfsgw_mds_delegations_returned",
        C,
        "Delegations returned.",
        &[],
    ),
    m(
        "pnfs.direct_read_bytes",
        "pnfsgw_read_bytes",
        C,
        READ_HELP,
        &[("path", "direct")],
    ),
    m(
        "pnfs.mds_read_bytes",
        "pnfsgw_read_bytes",
        C,
        READ_HELP,
        &[("path", "mds")],
    ),
    m(
        "pnfs.zero_fill_read_bytes",
        "pnfsgw_read_bytes",
        C,
        READ_HELP,
        &[("path", "zero_fill")],
    ),
    m(
        "pnfs.direct_write_bytes",
        "pnfsgw_write_bytes",
        C,
        WRITE_HELP,
        &[("path", "direct")],
    ),
    m(
        "pnfs.mds_write_bytes",
        "pnfsgw_write_bytes",
        C,
        WRITE_HELP,
        &[("path", "mds")],
    ),
    m(
        "pnfs.layoutgets",
        "pnfsgw_layoutgets",
        C,
        "LAYOUTGET calls sent.",
        &[],
    ),
    m(
        "pnfs.layoutget_errors",
        "pnfsgw_layoutget_errors",
        C,
        "LAYOUTGET calls that failed.",
        &[],
    ),
    m(
        "pnfs.scsi_layoutgets",
        "pnfsgw_scsi_layoutgets",
        C,
        "LAYOUTGET calls for SCSI layouts (also in pnfsgw_layoutgets_total).",
        &[],
    ),
    m(
        "pnfs.cache_hits",
        "pnfsgw_layout_cache_hits",
        C,
        "Request ranges served from cached layout extents.",
        &[],
    ),
    m(
        "pnfs.cache_misses",
        "pnfsgw_layout_cache_misses",
        C,
        "Request ranges that needed a LAYOUTGET.",
        &[],
    ),
    m(
        "pnfs.recalls",
        "pnfsgw_layout_recalls",
        C,
        "CB_LAYOUTRECALL received.",
        &[],
    ),
    m(
        "pnfs.recall_anys",
        "pnfsgw_recall_any",
        C,
        "CB_RECALL_ANY received.",
        &[],
    ),
    m(
        "pnfs.layoutreturns",
        "pnfsgw_layoutreturns",
        C,
        "LAYOUTRETURN calls sent.",
        &[],
    ),
    m(
        "pnfs.commits",
        "pnfsgw_layoutcommits",
        C,
        "LAYOUTCOMMIT calls that succeeded.",
        &[],
    ),
    m(
        "pnfs.commit_errors",
        "pnfsgw_layoutcommit_errors",
        C,
        "LAYOUTCOMMIT calls that failed.",
        &[],
    ),
    m(
        "pnfs.layouts_revoked",
        "pnfsgw_layouts_revoked",
        C,
        "Files whose layout the MDS revoked.",
        &[],
    ),
    m(
        "pnfs.evictions",
        "pnfsgw_layout_evictions",
        C,
        "Layouts of whole files evicted under the memory bound over all files.",
        &[],
    ),
    m(
        "pnfs.window_evictions",
        "pnfsgw_layout_window_evictions",
        C,
        "Least recently used layout ranges a file returned to stay within its max_cached_extents.",
        &[],
    ),
    m(
        "pnfs.contention_backoffs",
        "pnfsgw_contention_backoffs",
        C,
        "Times a file used the MDS for a while because its layout kept being recalled.",
        &[],
    ),
    m(
        "pnfs.mds_rewrites",
        "pnfsgw_mds_rewrites",
        C,
        "Times the uncommitted UNSTABLE writes of a file were sent to the MDS again because its \
         write verifier changed (an MDS restart).",
        &[],
    ),
    m(
        "pnfs.rmw_blocks",
        "pnfsgw_rmw_blocks",
        C,
        "Sub-block writes done as read-modify-write of a server block.",
        &[],
    ),
    m(
        "pnfs.fencing_events",
        "pnfsgw_fencing_events",
        C,
        "Times direct I/O was held back by lease fencing.",
        &[],
    ),
    m(
        "pnfs.fenced_to_mds",
        "pnfsgw_fenced_to_mds_requests",
        C,
        "Requests sent through the MDS because the fence did not lift in time.",
        &[],
    ),
    m(
        "pnfs.volume_errors",
        "pnfsgw_volume_errors",
        C,
        "Volume I/O errors (each retried through the MDS).",
        &[],
    ),
    m(
        "pnfs.request_errors",
        "pnfsgw_request_errors",
        C,
        "Block requests that failed (error returned to the frontend).",
        &[],
    ),
    m(
        "pnfs.getdeviceinfos",
        "pnfsgw_getdeviceinfos",
        C,
        "GETDEVICEINFO calls sent.",
        &[],
    ),
    m(
        "pnfs.pr_registrations",
        "pnfsgw_pr_registrations",
        C,
        "SCSI persistent-reservation keys registered.",
        &[],
    ),
    m(
        "pnfs.pr_registration_errors",
        "pnfsgw_pr_registration_errors",
        C,
        "SCSI persistent-reservation registrations that failed.",
        &[],
    ),
    m(
        "pnfs.cached_pieces",
        "pnfsgw_layout_extents_cached",
        G,
        "Layout extents held in the cache, all devices.",
        &[],
    ),
];

const FE_REQ: &str = "Requests received by the frontend, by operation.";
const FE_ERR: &str = "Requests the frontend answered with an error.";
const FE_READ: &str = "Bytes read by the frontend's clients.";
const FE_WRITE: &str = "Bytes written by the frontend's clients.";

/// The per-device counters (`DeviceStatus::counters`); `device="NAME"` is added.
const DEVICE: &[Mapping] = &[
    m(
        "pnfs.cached_pieces",
        "pnfsgw_device_layout_extents_cached",
        G,
        "Layout extents of the device's file held in the cache.",
        &[],
    ),
    m(
        "pnfs.uncommitted_pieces",
        "pnfsgw_device_uncommitted_extents",
        G,
        "Extents written directly but not yet committed (LAYOUTCOMMIT).",
        &[],
    ),
    m(
        "pnfs.block_bytes",
        "pnfsgw_device_layout_block_size_bytes",
        G,
        "The layout's block size.",
        &[],
    ),
    m(
        "nbd.connections_total",
        "pnfsgw_frontend_connections",
        C,
        "Client connections that reached the transmission phase.",
        &[("frontend", "nbd")],
    ),
    m(
        "nbd.connections_active",
        "pnfsgw_frontend_open_connections",
        G,
        "Client connections open now.",
        &[("frontend", "nbd")],
    ),
    m(
        "nbd.in_flight",
        "pnfsgw_frontend_requests_in_flight",
        G,
        "Requests at the disk now (queue depth).",
        &[("frontend", "nbd")],
    ),
    m(
        "nbd.errors",
        "pnfsgw_frontend_errors",
        C,
        FE_ERR,
        &[("frontend", "nbd")],
    ),
    m(
        "nbd.read_bytes",
        "pnfsgw_frontend_read_bytes",
        C,
        FE_READ,
        &[("frontend", "nbd")],
    ),
    m(
        "nbd.written_bytes",
        "pnfsgw_frontend_written_bytes",
        C,
        FE_WRITE,
        &[("frontend", "nbd")],
    ),
    m(
        "nbd.trimmed_bytes",
        "pnfsgw_frontend_trimmed_bytes",
        C,
        "Bytes trimmed.",
        &[("frontend", "nbd")],
    ),
    m(
        "nbd.zeroed_bytes",
        "pnfsgw_frontend_zeroed_bytes",
        C,
        "Bytes zeroed with WRITE_ZEROES.",
        &[("frontend", "nbd")],
    ),
    m(
        "ublk.reads",
        "pnfsgw_frontend_requests",
        C,
        FE_REQ,
        &[("frontend", "ublk"), ("op", "read")],
    ),
    m(
        "ublk.writes",
        "pnfsgw_frontend_requests",
        C,
        FE_REQ,
        &[("frontend", "ublk"), ("op", "write")],
    ),
    m(
        "ublk.flushes",
        "pnfsgw_frontend_requests",
        C,
        FE_REQ,
        &[("frontend", "ublk"), ("op", "flush")],
    ),
    m(
        "ublk.discards",
        "pnfsgw_frontend_requests",
        C,
        FE_REQ,
        &[("frontend", "ublk"), ("op", "trim")],
    ),
    m(
        "ublk.write_zeroes",
        "pnfsgw_frontend_requests",
        C,
        FE_REQ,
        &[("frontend", "ublk"), ("op", "write_zeroes")],
    ),
    m(
        "ublk.errors",
        "pnfsgw_frontend_errors",
        C,
        FE_ERR,
        &[("frontend", "ublk")],
    ),
    m(
        "ublk.bytes_read",
        "pnfsgw_frontend_read_bytes",
        C,
        FE_READ,
        &[("frontend", "ublk")],
    ),
    m(
        "ublk.bytes_written",
        "pnfsgw_frontend_written_bytes",
        C,
        FE_WRITE,
        &[("frontend", "ublk")],
    ),
    m(
        "ublk.queues",
        "pnfsgw_ublk_queues",
        G,
        "ublk queues of the device.",
        &[],
    ),
    m(
        "ublk.queue_depth",
        "pnfsgw_ublk_queue_depth",
        G,
        "Requests each ublk queue holds at most.",
        &[],
    ),
];

/// The NBD request counters `nbd.requests.OP` all go to one family, by operation.
const NBD_REQUESTS_PREFIX: &str = "nbd.requests.";

/// Counters this mapping does not name yet (a counter added to the gateway later): shown
/// untyped under their snapshot name, so that nothing `pnfsgw stats` shows is missing here.
const UNMAPPED: &str = "pnfsgw_unmapped";

type Labels = Vec<(String, String)>;

struct Family {
    kind: Option<Kind>,
    help: &'static str,
    samples: Vec<(Labels, u64)>,
}

#[derive(Debug)]
struct SnapshotMetrics(Snapshot);

fn labels(fixed: &[(&str, &str)], device: Option<&str>) -> Labels {
    device
        .map(|d| ("device".to_owned(), d.to_owned()))
        .into_iter()
        .chain(
            fixed
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect()
}

impl SnapshotMetrics {
    fn families(&self) -> BTreeMap<&'static str, Family> {
        let snap = &self.0;
        let mut out: BTreeMap<&'static str, Family> = BTreeMap::new();
        let mut add =
            |name: &'static str, kind: Option<Kind>, help: &'static str, l: Labels, v: u64| {
                out.entry(name)
                    .or_insert(Family {
                        kind,
                        help,
                        samples: Vec::new(),
                    })
                    .samples
                    .push((l, v));
            };
        add(
            "pnfsgw_uptime_seconds",
            Some(G),
            "Seconds since the gateway started.",
            Vec::new(),
            snap.uptime_s,
        );
        add(
            "pnfsgw_build_info",
            Some(G),
            "The pnfsgw version (value 1).",
            vec![("version".into(), snap.version.clone())],
            1,
        );
        let unmapped_help =
            "Counters of `pnfsgw stats` without a metric name yet, by their name there.";
        for (k, v) in &snap.counters {
            match GATEWAY.iter().find(|m| m.key == k) {
                Some(m) => add(m.name, Some(m.kind), m.help, labels(m.labels, None), *v),
                None => add(
                    UNMAPPED,
                    None,
                    unmapped_help,
                    vec![("key".into(), k.clone())],
                    *v,
                ),
            }
        }
        for d in &snap.devices {
            let dev = Some(d.name.as_str());
            add(
                "pnfsgw_device_up",
                Some(G),
                "1 while the device serves, 0 while it starts, stops or has failed.",
                labels(&[], dev),
                u64::from(d.state == State::Up),
            );
            if let Some(size) = d.size_bytes {
                add(
                    "pnfsgw_device_size_bytes",
                    Some(G),
                    "Size of the device.",
                    labels(&[], dev),
                    size,
                );
            }
            for (k, v) in &d.counters {
                if let Some(op) = k.strip_prefix(NBD_REQUESTS_PREFIX) {
                    let l = labels(&[("frontend", "nbd")], dev)
                        .into_iter()
                        .chain([("op".to_owned(), op.to_owned())])
                        .collect();
                    add("pnfsgw_frontend_requests", Some(C), FE_REQ, l, *v);
                    continue;
                }
                match DEVICE.iter().find(|m| m.key == k) {
                    Some(m) => add(m.name, Some(m.kind), m.help, labels(m.labels, dev), *v),
                    None => add(
                        UNMAPPED,
                        None,
                        unmapped_help,
                        labels(&[], dev)
                            .into_iter()
                            .chain([("key".to_owned(), k.clone())])
                            .collect(),
                        *v,
                    ),
                }
            }
        }
        out
    }
}

/// Nanoseconds to seconds.
const NS_PER_S: f64 = 1e9;
/// Microseconds to seconds.
const US_PER_S: f64 = 1e6;

impl Collector for SnapshotMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, f) in self.families() {
            let kind = match f.kind {
                Some(Kind::Counter) => MetricType::Counter,
                Some(Kind::Gauge) => MetricType::Gauge,
                None => MetricType::Unknown,
            };
            let mut me = encoder.encode_descriptor(name, f.help, None, kind)?;
            for (l, v) in &f.samples {
                let mut s = me.encode_family(l)?;
                match f.kind {
                    Some(Kind::Counter) => s.encode_counter::<NoLabelSet, u64, u64>(
                        v,
                        None::<&Exemplar<NoLabelSet, u64>>,
                    )?,
                    Some(Kind::Gauge) | None => s.encode_gauge(v)?,
                }
            }
        }
        let hists: Vec<(&str, &crate::latency::LatencyHistogram)> = self
            .0
            .devices
            .iter()
            .flat_map(|d| d.latency.iter().map(move |h| (d.name.as_str(), h)))
            .collect();
        if !hists.is_empty() {
            let mut me = encoder.encode_descriptor(
                "pnfsgw_frontend_request_duration_seconds",
                "Time from a request reaching the disk until the disk answered, by operation.",
                None,
                MetricType::Histogram,
            )?;
            for (device, h) in hists {
                let l: Labels = vec![
                    ("device".into(), device.to_owned()),
                    ("frontend".into(), h.frontend.clone()),
                    ("op".into(), h.op.clone()),
                ];
                let buckets: Vec<(f64, u64)> = h
                    .bounds_us
                    .iter()
                    .map(|&us| us as f64 / US_PER_S)
                    .chain([f64::INFINITY])
                    .zip(h.counts.iter().copied())
                    .collect();
                me.encode_family(&l)?.encode_histogram::<NoLabelSet>(
                    h.sum_ns as f64 / NS_PER_S,
                    h.count(),
                    &buckets,
                    None,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn request_heads_are_bounded_and_routed() {
        let r = |s: &str| parse_head(s.as_bytes());
        assert_eq!(
            r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            r("HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics { head_only: true }
        );
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(
            r("POST /metrics HTTP/1.1\r\n\r\n"),
            Request::MethodNotAllowed
        );
        assert!(matches!(r("GET /metrics\r\n\r\n"), Request::Bad(_)));
        assert!(matches!(r("GET /metrics HTTP/2\r\n\r\n"), Request::Bad(_)));
        let many = format!(
            "GET /metrics HTTP/1.1\r\n{}\r\n",
            "a: b\r\n".repeat(REQUEST_HEADERS_MAX + 1)
        );
        assert!(matches!(r(&many), Request::Bad(_)));
    }

    #[test]
    fn every_gateway_counter_has_a_metric_name() {
        // The pNFS counters reach the snapshot as "pnfs.NAME" from the Display of the
        // gateway's StatsSnapshot; each must be named here, not fall to pnfsgw_unmapped.
        let text = pnfs_gateway::stats::Stats::default().snapshot().to_string();
        for pair in text.split_whitespace() {
            let (k, _) = pair.split_once('=').unwrap();
            let key = format!("pnfs.{k}");
            assert!(
                GATEWAY.iter().any(|m| m.key == key),
                "{key} has no metric name in metrics.rs GATEWAY"
            );
        }
    }

    #[test]
    fn a_snapshot_renders_with_conventional_names() {
        let mut snap = crate::status::Board::new(vec!["mds:2049".into()], Vec::new()).snapshot();
        snap.counters.insert("pnfs.direct_write_bytes".into(), 4096);
        snap.counters.insert("pnfs.something_new".into(), 3);
        let timing = crate::latency::FrontendTiming::default();
        timing.read.observe(Duration::from_micros(70));
        snap.devices.push(crate::status::DeviceStatus {
            name: "vm\"1".into(),
            path: "/vm1".into(),
            size_bytes: Some(1 << 20),
            data_path: "pnfs".into(),
            state: State::Up,
            frontends: Vec::new(),
            counters: [
                ("nbd.requests.read".to_owned(), 1),
                ("nbd.in_flight".to_owned(), 0),
            ]
            .into_iter()
            .collect(),
            latency: timing.snapshot("nbd"),
        });
        let text = render(&snap).unwrap();
        for line in [
            "# TYPE pnfsgw_write_bytes_total counter",
            "pnfsgw_write_bytes_total{path=\"direct\"} 4096",
            "pnfsgw_unmapped{key=\"pnfs.something_new\"} 3",
            "pnfsgw_frontend_requests_total{device=\"vm\\\"1\",frontend=\"nbd\",op=\"read\"} 1",
            "pnfsgw_frontend_requests_in_flight{device=\"vm\\\"1\",frontend=\"nbd\"} 0",
            "pnfsgw_device_up{device=\"vm\\\"1\"} 1",
            "# TYPE pnfsgw_frontend_request_duration_seconds histogram",
            "pnfsgw_frontend_request_duration_seconds_bucket{device=\"vm\\\"1\",frontend=\"nbd\",op=\"read\",le=\"0.0001\"} 1",
            "pnfsgw_frontend_request_duration_seconds_count{device=\"vm\\\"1\",frontend=\"nbd\",op=\"read\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    /// Sends `request` to `addr`, returns the whole answer.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The server may answer (and close) before all of an over-long request is sent.
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn the_listener_answers_scrapes_and_refuses_the_rest() {
        let l = MetricsListener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = l.local_addr().unwrap();
        let board = Board::new(vec!["mds:2049".into()], Vec::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(l.serve(board, stop_rx));

        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{ok}"
        );
        assert!(
            body.contains("# TYPE pnfsgw_uptime_seconds gauge"),
            "{body}"
        );

        let head_only = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head_only.starts_with("HTTP/1.1 200 OK\r\n"), "{head_only}");
        assert!(
            head_only.ends_with("\r\n\r\n"),
            "no body for HEAD: {head_only}"
        );

        let missing = exchange(addr, b"GET /other HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
        // Exactly the limit without the end of the head: all of it is read (so the close sends
        // no reset), and the head is still not complete.
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.resize(REQUEST_HEAD_MAX_BYTES, b'a');
        let refused = exchange(addr, &big).await;
        assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
        let junk = exchange(addr, b"hello\r\n\r\n").await;
        assert!(junk.starts_with("HTTP/1.1 400 "), "{junk}");

        stop_tx.send(true).unwrap();
        server.await.unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still listening after stop"
        );
    }
}
