//! The tokio NBD server: accepts TCP or Unix-socket connections and serves an [`ExportSet`].
//!
//! ```no_run
//! # async fn example(disk: std::sync::Arc<impl pnfs_disk::Disk>) -> pnfs_nbd::NbdResult<()> {
//! use std::sync::Arc;
//! use pnfs_nbd::{serve, Export, ExportSet};
//! let mut exports = ExportSet::new();
//! exports.add(Export::new("demo", disk).with_description("demo file"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:10809").await?;
//! serve(listener, Arc::new(exports), async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```
//!
//! One task per connection runs the handshake and then reads requests; each request runs in
//! its own task (at most [`ServerConfig::max_in_flight_requests`] per connection, and at most
//! [`ServerConfig::max_in_flight_bytes`] of read/write data), and replies go out, in
//! completion order, through one writer task per connection, so the bytes of two replies never
//! interleave.
//!
//! Shutdown (the `shutdown` future completes): the listener is closed, connections still in
//! the handshake are closed, connections in transmission stop reading new requests, finish
//! the ones in flight (bounded by [`ServerConfig::drain_timeout_ms`]) and close; then every
//! export's disk is flushed. [`serve`] returns the first flush error, if any.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

use crate::codec::CodecLimits;
use crate::connection;
use crate::error::{NbdError, NbdResult};
use crate::export::ExportSet;
use crate::tls::ServerTls;

/// Tunables of the server. Every limit on what a peer can make us hold is here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Codec limits (option size, write payload, query counts).
    pub limits: CodecLimits,
    /// Requests executing at once on one connection.
    pub max_in_flight_requests: usize,
    /// Read/write data held at once for one connection (payloads being written, data read
    /// but not yet sent).
    pub max_in_flight_bytes: usize,
    /// Connections at once; further ones are closed right after accept.
    pub max_connections: usize,
    /// Options in one handshake before the connection is closed.
    pub max_options_per_handshake: u32,
    /// Time a client has to finish the handshake (TLS included).
    pub handshake_timeout_ms: u64,
    /// Time the TLS handshake after `NBD_OPT_STARTTLS` may take.
    pub tls_handshake_timeout_ms: u64,
    /// Time in-flight requests get to finish at DISC, EOF or shutdown.
    pub drain_timeout_ms: u64,
    /// Most descriptors in one block status reply.
    pub max_block_status_descriptors: usize,
}

/// Default requests in flight per connection.
pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS: usize = 64;
/// Default data in flight per connection (256 MiB).
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: usize = 256 * 1024 * 1024;
/// Default connections at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default options per handshake.
pub const DEFAULT_MAX_OPTIONS_PER_HANDSHAKE: u32 = 256;
/// Default handshake time limit.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 30_000;
/// Default TLS handshake time limit.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Default drain time limit.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;
/// Default most block status descriptors per reply.
pub const DEFAULT_MAX_BLOCK_STATUS_DESCRIPTORS: usize = 4096;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: CodecLimits::default(),
            max_in_flight_requests: DEFAULT_MAX_IN_FLIGHT_REQUESTS,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_options_per_handshake: DEFAULT_MAX_OPTIONS_PER_HANDSHAKE,
            handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
            tls_handshake_timeout_ms: DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            max_block_status_descriptors: DEFAULT_MAX_BLOCK_STATUS_DESCRIPTORS,
        }
    }
}

impl ServerConfig {
    fn check(&self) -> NbdResult<()> {
        if self.max_in_flight_requests == 0
            || self.max_connections == 0
            || self.max_block_status_descriptors == 0
        {
            return Err(NbdError::Config(
                "in-flight requests, connections and block status descriptors must be > 0".into(),
            ));
        }
        if self.max_in_flight_bytes < self.limits.max_write_payload_bytes as usize {
            return Err(NbdError::Config(format!(
                "max_in_flight_bytes {} is smaller than one write payload {}",
                self.max_in_flight_bytes, self.limits.max_write_payload_bytes
            )));
        }
        Ok(())
    }
}

/// A listening socket: TCP or Unix.
#[derive(Debug)]
pub enum Listener {
    /// TCP (`nbd://host:port/name`).
    Tcp(TcpListener),
    /// Unix socket (`nbd+unix:///name?socket=PATH`). The socket file is not removed by the
    /// server; the caller that bound it removes it.
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Self {
        Listener::Unix(l)
    }
}

/// A byte stream the server can serve, split into independent halves for the transmission
/// phase.
pub trait NbdStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The read half.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// The write half.
    type Writer: AsyncWrite + Unpin + Send + 'static;
    /// Splits the stream.
    fn into_halves(self) -> (Self::Reader, Self::Writer);
}

impl NbdStream for TcpStream {
    type Reader = tokio::net::tcp::OwnedReadHalf;
    type Writer = tokio::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }
}

impl NbdStream for UnixStream {
    type Reader = tokio::net::unix::OwnedReadHalf;
    type Writer = tokio::net::unix::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }
}

impl NbdStream for tokio::io::DuplexStream {
    type Reader = tokio::io::ReadHalf<tokio::io::DuplexStream>;
    type Writer = tokio::io::WriteHalf<tokio::io::DuplexStream>;
    fn into_halves(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

/// A handle that tells connections to wind down; cloned into every connection.
#[derive(Debug, Clone)]
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    /// A signal and the sender that fires it (`send(true)`).
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Completes once shutdown was requested (or the sender was dropped).
    pub async fn wait(&mut self) {
        // An Err means the sender is gone: treat it as shutdown too.
        let _ = self.0.wait_for(|v| *v).await;
    }

    /// Whether shutdown was requested.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}

/// Serves `exports` on `listener` with the default [`ServerConfig`] until `shutdown`
/// completes; see the module documentation for what shutdown does.
pub async fn serve(
    listener: impl Into<Listener>,
    exports: Arc<ExportSet>,
    shutdown: impl Future<Output = ()>,
) -> NbdResult<()> {
    serve_with_config(listener, exports, ServerConfig::default(), shutdown).await
}

static CONNECTION_IDS: AtomicU64 = AtomicU64::new(1);

/// Like [`serve`], with explicit tunables.
pub async fn serve_with_config(
    listener: impl Into<Listener>,
    exports: Arc<ExportSet>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> NbdResult<()> {
    serve_with_tls(listener, exports, config, None, shutdown).await
}

/// Like [`serve_with_config`], offering or requiring TLS (`NBD_OPT_STARTTLS`) when `tls` is
/// given. TLS is refused on a Unix socket: qemu and libnbd use it only over TCP, and a
/// socket file's permissions already guard it.
pub async fn serve_with_tls(
    listener: impl Into<Listener>,
    exports: Arc<ExportSet>,
    config: ServerConfig,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()>,
) -> NbdResult<()> {
    config.check()?;
    let listener = listener.into();
    if tls.is_some() && matches!(listener, Listener::Unix(_)) {
        return Err(NbdError::Config(
            "TLS is only offered on TCP listeners, not on a Unix socket".into(),
        ));
    }
    let (stop_tx, stop_rx) = ShutdownSignal::new();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    info!(
        exports = exports.len(),
        tls = ?tls.as_ref().map(ServerTls::mode),
        "NBD server listening"
    );
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => match accepted {
                Ok((conn, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        warn!(%peer, limit = config.max_connections, "too many connections; closing the new one");
                        drop(conn);
                        continue;
                    };
                    let id = CONNECTION_IDS.fetch_add(1, Ordering::Relaxed);
                    let span = tracing::info_span!("nbd_conn", id, %peer);
                    let exports = exports.clone();
                    let stop = stop_rx.clone();
                    let tls = tls.clone();
                    conns.spawn(async move {
                        let r = match conn {
                            Accepted::Tcp(s) => {
                                if let Err(e) = s.set_nodelay(true) {
                                    debug!("TCP_NODELAY: {e}");
                                }
                                connection::serve_connection(s, exports, config, tls, stop).await
                            }
                            Accepted::Unix(s) => connection::serve_connection(s, exports, config, None, stop).await,
                        };
                        match r {
                            Ok(()) => debug!("connection closed"),
                            // A refused certificate or a failed TLS handshake is worth a
                            // warning: someone tried and failed to get in.
                            Err(e @ NbdError::Tls(_)) => warn!(%peer, "connection closed: {e}"),
                            Err(e) => info!(%peer, "connection closed: {e}"),
                        }
                        drop(slot);
                    }.instrument(span));
                }
                Err(e) => {
                    warn!("accept failed: {e}");
                    // Back off briefly (e.g. out of file descriptors) instead of spinning.
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            Some(joined) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = joined {
                    warn!("connection task failed: {e}");
                }
            }
        }
    }
    drop(listener);
    info!(connections = conns.len(), "NBD server shutting down");
    let _ = stop_tx.send(true);
    let deadline = Duration::from_millis(config.drain_timeout_ms + config.handshake_timeout_ms);
    let drained = tokio::time::timeout(deadline, async {
        while let Some(joined) = conns.join_next().await {
            if let Err(e) = joined {
                warn!("connection task failed: {e}");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            left = conns.len(),
            "connections did not finish in time; aborting them"
        );
        conns.shutdown().await;
    }
    let mut first_error = None;
    for export in exports.iter() {
        if let Err(e) = export.disk().flush().await {
            warn!(export = export.name(), "flush at shutdown failed: {e}");
            first_error.get_or_insert(NbdError::Disk {
                export: export.name().to_owned(),
                source: e,
            });
        }
    }
    info!("NBD server stopped");
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

enum Accepted {
    Tcp(TcpStream),
    Unix(UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Accepted, String)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, a) = l.accept().await?;
            Ok((Accepted::Tcp(s), a.to_string()))
        }
        Listener::Unix(l) => {
            let (s, _) = l.accept().await?;
            Ok((Accepted::Unix(s), "unix".to_owned()))
        }
    }
}

/// Serves one already-connected stream (any [`NbdStream`], e.g. an in-memory duplex pipe in
/// tests) until the client disconnects or `shutdown` fires.
pub async fn serve_stream<S: NbdStream>(
    stream: S,
    exports: Arc<ExportSet>,
    config: ServerConfig,
    shutdown: ShutdownSignal,
) -> NbdResult<()> {
    config.check()?;
    connection::serve_connection(stream, exports, config, None, shutdown).await
}
