//! One connection: the handshake, then the transmission phase, all in the connection's task:
//! a reader, the requests in flight (polled by a [`RequestSet`], not a task each) and a
//! writer that sends whole replies in completion order (replies that complete together go
//! out in one vectored write, the data from the buffers it was read into).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use crate::codec::consts::{NBD_EINVAL, NBD_EIO};
use crate::codec::{
    decode_client_flags, decode_option, decode_request_header, encode_greeting, Command, Decode,
    HeaderStyle, Request,
};
use crate::error::{NbdError, NbdResult};
use crate::export::ExportSet;
use crate::negotiate::{handle_option, Action, NegotiationState, TlsState};
use crate::request_set::{CatchPanic, RequestSet};
use crate::server::{NbdStream, ServerConfig, ShutdownSignal};
use crate::session::{error_reply, execute, Refusal, Session, WireReply};
use crate::tls::{ServerTls, TlsMode};
use tokio_rustls::server::TlsStream;

/// Initial capacity of a connection's read buffer.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// The unit of the in-flight data budget (a semaphore permit per KiB).
const BYTE_BUDGET_UNIT_BYTES: usize = 1024;

/// Reads until `buf` holds at least `total` bytes. `Ok(false)`: clean EOF with an empty
/// buffer (between messages); EOF inside a message is an error.
async fn fill<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    total: usize,
) -> NbdResult<bool> {
    while buf.len() < total {
        buf.reserve(total - buf.len());
        if r.read_buf(buf).await? == 0 {
            if buf.is_empty() {
                return Ok(false);
            }
            return Err(NbdError::protocol(format!(
                "peer closed the connection inside a message ({} of {total} bytes received)",
                buf.len()
            )));
        }
    }
    Ok(true)
}

/// Reads one message with `parse`; `Ok(None)` on a clean EOF.
async fn read_frame<R: AsyncRead + Unpin, T>(
    r: &mut R,
    buf: &mut BytesMut,
    parse: impl Fn(&[u8]) -> NbdResult<Decode<T>>,
) -> NbdResult<Option<T>> {
    loop {
        match parse(buf)? {
            Decode::Done {
                value,
                consumed_bytes,
            } => {
                buf.advance(consumed_bytes);
                return Ok(Some(value));
            }
            Decode::NeedMore { total_bytes } => {
                if !fill(r, buf, total_bytes).await? {
                    return Ok(None);
                }
            }
        }
    }
}

/// Serves one connection to the end. With `tls`, the listener offers (or requires)
/// `NBD_OPT_STARTTLS`, and after it the connection runs over TLS.
pub(crate) async fn serve_connection<S: NbdStream>(
    stream: S,
    exports: Arc<ExportSet>,
    config: ServerConfig,
    tls: Option<ServerTls>,
    mut shutdown: ShutdownSignal,
) -> NbdResult<()> {
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let limit = Duration::from_millis(config.handshake_timeout_ms);
    let negotiated = tokio::select! {
        r = tokio::time::timeout(limit, negotiate(stream, &mut buf, &exports, &config, tls.as_ref())) => match r {
            Ok(r) => r?,
            Err(_) => return Err(NbdError::Timeout(format!(
                "handshake not finished within {} ms", config.handshake_timeout_ms
            ))),
        },
        () = shutdown.wait() => {
            debug!("server shutting down: closing a connection in the handshake");
            return Ok(());
        }
    };
    match negotiated {
        Negotiated::Closed => Ok(()),
        Negotiated::Plain(stream, session) => {
            start_transmission(stream, buf, session, config, shutdown).await
        }
        Negotiated::Tls(stream, session) => {
            start_transmission(*stream, buf, session, config, shutdown).await
        }
    }
}

async fn start_transmission<S: NbdStream>(
    stream: S,
    buf: BytesMut,
    mut session: Session,
    config: ServerConfig,
    shutdown: ShutdownSignal,
) -> NbdResult<()> {
    session.max_block_status_descriptors = config.max_block_status_descriptors;
    debug!(
        export = session.export.name(),
        structured = session.structured,
        extended_headers = session.header_style == HeaderStyle::Extended,
        block_status = session.base_allocation_id.is_some(),
        "transmission"
    );
    transmission(stream, buf, Arc::new(session), config, shutdown).await
}

/// How the handshake ended.
enum Negotiated<S: NbdStream> {
    /// The client left (ABORT or EOF).
    Closed,
    /// Transmission in plain text.
    Plain(S, Session),
    /// Transmission over TLS.
    Tls(Box<TlsStream<S>>, Session),
}

/// How one run of the option loop ended.
enum OptionsEnd {
    Closed,
    Session(Session),
    StartTls,
}

/// The whole handshake: greeting, client flags, options; on STARTTLS the TLS handshake and
/// the options again over TLS.
async fn negotiate<S: NbdStream>(
    mut stream: S,
    buf: &mut BytesMut,
    exports: &ExportSet,
    config: &ServerConfig,
    tls: Option<&ServerTls>,
) -> NbdResult<Negotiated<S>> {
    let mut out = BytesMut::new();
    encode_greeting(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let Some(flags) = read_frame(&mut stream, buf, decode_client_flags).await? else {
        return Ok(Negotiated::Closed);
    };
    let mut state = NegotiationState {
        no_zeroes: flags.no_zeroes,
        tls: match tls.map(ServerTls::mode) {
            None => TlsState::Unavailable,
            Some(TlsMode::On) => TlsState::Offered { required: false },
            Some(TlsMode::Require) => TlsState::Offered { required: true },
        },
        ..NegotiationState::default()
    };
    let mut options_left = config.max_options_per_handshake;
    match options(
        &mut stream,
        buf,
        &mut state,
        &mut options_left,
        exports,
        config,
    )
    .await?
    {
        OptionsEnd::Closed => return Ok(Negotiated::Closed),
        OptionsEnd::Session(session) => return Ok(Negotiated::Plain(stream, session)),
        OptionsEnd::StartTls => {}
    }
    let Some(tls) = tls else {
        return Err(NbdError::protocol(
            "STARTTLS accepted without TLS credentials",
        ));
    };
    if !buf.is_empty() {
        // Bytes sent before the TLS handshake would be taken as if they came over TLS.
        return Err(NbdError::protocol(format!(
            "{} bytes arrived after NBD_OPT_STARTTLS before the TLS handshake",
            buf.len()
        )));
    }
    let mut stream = tls.accept(stream, config.tls_handshake_timeout_ms).await?;
    state.tls_started();
    debug!(
        version = ?stream.get_ref().1.protocol_version(),
        client_certificate = stream.get_ref().1.peer_certificates().is_some(),
        "TLS established"
    );
    match options(
        &mut stream,
        buf,
        &mut state,
        &mut options_left,
        exports,
        config,
    )
    .await?
    {
        OptionsEnd::Closed => Ok(Negotiated::Closed),
        OptionsEnd::Session(session) => Ok(Negotiated::Tls(Box::new(stream), session)),
        OptionsEnd::StartTls => Err(NbdError::protocol("STARTTLS accepted twice")),
    }
}

/// Reads and answers options until transmission, STARTTLS or the end, at most
/// `options_left` of them in the whole handshake.
async fn options<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    state: &mut NegotiationState,
    options_left: &mut u32,
    exports: &ExportSet,
    config: &ServerConfig,
) -> NbdResult<OptionsEnd> {
    let mut out = BytesMut::new();
    while *options_left > 0 {
        *options_left -= 1;
        let Some(raw) = read_frame(stream, buf, |b| decode_option(b, &config.limits)).await? else {
            return Ok(OptionsEnd::Closed);
        };
        out.clear();
        let action = handle_option(state, exports, &config.limits, &raw, &mut out);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
        }
        match action {
            Action::Continue => {}
            Action::Close => return Ok(OptionsEnd::Closed),
            Action::HardClose(reason) => return Err(NbdError::Protocol(reason)),
            Action::Transmission(session) => return Ok(OptionsEnd::Session(*session)),
            Action::StartTls => return Ok(OptionsEnd::StartTls),
        }
    }
    Err(NbdError::protocol(format!(
        "more than {} options in one handshake",
        config.max_options_per_handshake
    )))
}

/// One reply on its way to the writer, with the budget it holds until it is written.
struct Outgoing {
    reply: WireReply,
    _request_slot: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// Most replies gathered into one vectored write (each has at most a few parts, so the
/// slices stay far below the kernel's `IOV_MAX` of 1024).
const WRITE_BATCH_MAX_REPLIES: usize = 64;

/// Writes every part of every reply in `batch` with vectored writes: the reply headers and
/// the read data go to the socket straight from where they are (the data from the volume's
/// I/O buffer), with no copy into a staging buffer, and replies that completed together
/// share one system call.
async fn write_batch<W: AsyncWrite + Unpin>(w: &mut W, batch: &[Outgoing]) -> NbdResult<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = batch
        .iter()
        .flat_map(|m| m.reply.parts.iter())
        .filter(|p| !p.is_empty())
        .map(|p| std::io::IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(NbdError::Io(std::io::ErrorKind::WriteZero.into()));
        }
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Outgoing>,
) -> NbdResult<()> {
    let mut batch: Vec<Outgoing> = Vec::with_capacity(WRITE_BATCH_MAX_REPLIES);
    while let Some(first) = rx.recv().await {
        // Everything already queued goes out together (bounded).
        batch.push(first);
        while batch.len() < WRITE_BATCH_MAX_REPLIES {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        write_batch(&mut w, &batch).await?;
        // A no-op on TCP and Unix sockets; over TLS it sends the records that the TLS layer
        // still holds when the socket was full (a reply must not wait for the next one).
        w.flush().await?;
        // Dropping the replies returns their budget (request slot, bytes).
        batch.clear();
    }
    w.shutdown().await?;
    Ok(())
}

/// What the connection's reader got from the peer.
enum Incoming {
    /// A request (with its write payload) and the budget it holds.
    Request {
        req: Request,
        payload: Bytes,
        slot: Option<OwnedSemaphorePermit>,
        bytes: Option<OwnedSemaphorePermit>,
    },
    /// A request whose payload exceeds the limit (not read): answer, then close.
    TooLarge {
        req: Request,
        slot: Option<OwnedSemaphorePermit>,
        payload_bytes: u64,
    },
    /// The peer closed the connection between requests.
    Eof,
}

/// The budgets a connection's reader takes for each request.
#[derive(Clone)]
struct Budget {
    request_slots: Arc<Semaphore>,
    byte_slots: Arc<Semaphore>,
    byte_units_max: u32,
    max_write_payload_bytes: u32,
    /// The request headers the connection negotiated.
    style: HeaderStyle,
}

/// Takes a request slot, reads one request header, takes its data budget and reads its write
/// payload. Owns the read half and buffer while it runs and hands them back, so the
/// connection keeps one reader future across requests (dropping it loses only a request
/// that was never answered: the connection is closing then).
async fn next_request<R: AsyncRead + Unpin>(
    mut rd: R,
    mut buf: BytesMut,
    budget: Budget,
) -> (R, BytesMut, NbdResult<Incoming>) {
    let r = read_one(&mut rd, &mut buf, &budget).await;
    (rd, buf, r)
}

async fn read_one<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    budget: &Budget,
) -> NbdResult<Incoming> {
    // The semaphores are never closed, so acquiring only fails if they were.
    let slot = match budget.request_slots.clone().try_acquire_owned() {
        Ok(p) => Some(p),
        Err(_) => budget.request_slots.clone().acquire_owned().await.ok(),
    };
    let Some(req) = read_frame(rd, buf, |b| decode_request_header(b, budget.style)).await? else {
        return Ok(Incoming::Eof);
    };
    if req.command == Command::Disc {
        return Ok(Incoming::Request {
            req,
            payload: Bytes::new(),
            slot,
            bytes: None,
        });
    }
    let payload_bytes = req.payload_bytes(budget.style);
    let payload_len = match usize::try_from(payload_bytes) {
        Ok(n) if payload_bytes <= u64::from(budget.max_write_payload_bytes) => n,
        _ => {
            return Ok(Incoming::TooLarge {
                req,
                slot,
                payload_bytes,
            })
        }
    };
    // Bytes this request holds in memory: its read data or its payload (both bounded: a read
    // longer than the maximum block is refused, the payload was checked above).
    let data_len = match req.command {
        Command::Read => usize::try_from(req.length_bytes).unwrap_or(usize::MAX),
        _ => payload_len,
    };
    let units = u32::try_from(data_len.div_ceil(BYTE_BUDGET_UNIT_BYTES))
        .unwrap_or(u32::MAX)
        .min(budget.byte_units_max);
    let bytes = if units > 0 {
        // Without the waiting future when the budget has room (the usual case); a budget with
        // room has no waiters, so this never jumps the queue.
        match budget.byte_slots.clone().try_acquire_many_owned(units) {
            Ok(p) => Some(p),
            Err(_) => budget
                .byte_slots
                .clone()
                .acquire_many_owned(units)
                .await
                .ok(),
        }
    } else {
        None
    };
    let payload = if payload_len > 0 {
        let need = payload_len;
        if !fill(rd, buf, need).await? {
            return Err(NbdError::protocol(
                "peer closed the connection before the write payload",
            ));
        }
        buf.split_to(need).freeze()
    } else {
        Bytes::new()
    };
    Ok(Incoming::Request {
        req,
        payload,
        slot,
        bytes,
    })
}

/// Hands a finished reply to the writer (never waits: every reply holds a request slot, so
/// the channel, one larger than the slots, has room).
async fn send_reply(tx: &mpsc::Sender<Outgoing>, out: Outgoing) {
    match tx.try_send(out) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(out)) => {
            if tx.send(out).await.is_err() {
                debug!("reply dropped: the connection's writer has stopped");
            }
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            debug!("reply dropped: the connection's writer has stopped");
        }
    }
}

/// The reply to a request whose execution panicked: EIO for that request (logged and
/// counted as an error); the connection and its other requests go on.
fn panicked_reply(session: &Session, req: &Request, panic: &str) -> WireReply {
    let stats = session.export.stats();
    stats.error();
    warn!(
        command = req.command.name(),
        offset = req.offset_bytes,
        length = req.length_bytes,
        "request panicked: {panic}"
    );
    let refusal = Refusal {
        error: NBD_EIO,
        message: format!("internal error in {}: {panic}", req.command.name()),
    };
    error_reply(session, req, &refusal)
}

/// One step of the connection's reader.
enum Event<R> {
    Done(Outgoing),
    Read(R, BytesMut, NbdResult<Incoming>),
    Shutdown,
}

/// Reads requests and runs them, all in the connection's task: the requests in flight are
/// polled by [`RequestSet`], each completion wakes this task once and its reply goes to the
/// writer future (polled by the same task). Returns when the peer disconnects, the server
/// shuts down or the stream fails, after finishing what is in flight (bounded).
async fn read_and_run<R: AsyncRead + Unpin>(
    rd: R,
    buf: BytesMut,
    session: Arc<Session>,
    config: ServerConfig,
    mut shutdown: ShutdownSignal,
    tx: mpsc::Sender<Outgoing>,
) -> NbdResult<()> {
    let stats = session.export.stats();
    let budget_units = (config.max_in_flight_bytes / BYTE_BUDGET_UNIT_BYTES).max(1);
    let budget = Budget {
        request_slots: Arc::new(Semaphore::new(config.max_in_flight_requests)),
        byte_slots: Arc::new(Semaphore::new(budget_units)),
        byte_units_max: u32::try_from(budget_units).unwrap_or(u32::MAX),
        max_write_payload_bytes: config.limits.max_write_payload_bytes,
        style: session.header_style,
    };
    let mut running = RequestSet::new();
    let reading = next_request(rd, buf, budget.clone());
    tokio::pin!(reading);
    let stop = shutdown.wait();
    tokio::pin!(stop);

    let result: NbdResult<()> = loop {
        let event = tokio::select! {
            biased;
            () = &mut stop => Event::Shutdown,
            Some(out) = running.next() => Event::Done(out),
            (rd, buf, r) = &mut reading => Event::Read(rd, buf, r),
        };
        let (rd, buf, incoming) = match event {
            Event::Shutdown => break Ok(()),
            Event::Done(out) => {
                send_reply(&tx, out).await;
                continue;
            }
            Event::Read(rd, buf, r) => (rd, buf, r),
        };
        let (req, payload, slot, bytes) = match incoming {
            Ok(Incoming::Request {
                req,
                payload,
                slot,
                bytes,
            }) => (req, payload, slot, bytes),
            Ok(Incoming::Eof) => {
                debug!("client closed the connection");
                break Ok(());
            }
            Ok(Incoming::TooLarge {
                req,
                slot,
                payload_bytes,
            }) => {
                // Answer, then close: skipping that much data is not worth keeping the connection.
                stats.request(req.command.code());
                stats.error();
                let refusal = Refusal {
                    error: NBD_EINVAL,
                    message: format!(
                        "payload of {payload_bytes} bytes exceeds the limit of {} bytes; closing the connection",
                        config.limits.max_write_payload_bytes
                    ),
                };
                send_reply(
                    &tx,
                    Outgoing {
                        reply: error_reply(&session, &req, &refusal),
                        _request_slot: slot,
                        _bytes: None,
                    },
                )
                .await;
                break Err(NbdError::TooLarge {
                    what: "write payload",
                    value_bytes: payload_bytes,
                    limit_bytes: u64::from(config.limits.max_write_payload_bytes),
                });
            }
            Err(e) => break Err(e),
        };
        if req.command == Command::Disc {
            debug!("NBD_CMD_DISC: finishing requests in flight");
            break Ok(());
        }
        let session = session.clone();
        running.push(async move {
            let reply = match CatchPanic::new(execute(&session, req, payload)).await {
                Ok(reply) => reply,
                Err(panic) => panicked_reply(&session, &req, &panic),
            };
            Outgoing {
                reply,
                _request_slot: slot,
                _bytes: bytes,
            }
        });
        reading.set(next_request(rd, buf, budget.clone()));
    };

    // Finish what is in flight (DISC, EOF, shutdown or error), bounded.
    let drain = Duration::from_millis(config.drain_timeout_ms);
    let drained = tokio::time::timeout(drain, async {
        while let Some(out) = running.next().await {
            send_reply(&tx, out).await;
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            left = running.len(),
            "requests did not finish within {} ms; abandoning them", config.drain_timeout_ms
        );
    }
    result
}

async fn transmission<S: NbdStream>(
    stream: S,
    buf: BytesMut,
    session: Arc<Session>,
    config: ServerConfig,
    shutdown: ShutdownSignal,
) -> NbdResult<()> {
    let export = Arc::clone(&session.export);
    let stats = export.stats();
    stats.connection_opened();
    let (rd, wr) = stream.into_halves();
    let (tx, rx) = mpsc::channel::<Outgoing>(config.max_in_flight_requests + 1);
    let drain = Duration::from_millis(config.drain_timeout_ms);
    // Reader, requests and writer share this task: no hand-offs between threads per request.
    let reader = read_and_run(rd, buf, session, config, shutdown, tx);
    let writer = write_loop(wr, rx);
    tokio::pin!(reader, writer);
    let mut written: Option<NbdResult<()>> = None;
    let result = loop {
        tokio::select! {
            r = &mut reader => break r,
            w = &mut writer, if written.is_none() => {
                // The writer stopped early (the peer went away): replies are dropped from now
                // on and the reader ends at the peer's EOF or error.
                written = Some(w);
            }
        }
    };
    let written = match written {
        Some(w) => w,
        // The reader dropped its sender: the writer sends what is queued and ends.
        None => match tokio::time::timeout(drain, writer).await {
            Ok(r) => r,
            Err(_) => Err(NbdError::Timeout("writing the last replies".into())),
        },
    };
    stats.connection_closed();
    result?;
    match written {
        // The peer may close first after DISC; a reset while shutting down our side is fine.
        Err(NbdError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::NotConnected
            ) =>
        {
            debug!("peer gone while writing the last replies: {e}");
            Ok(())
        }
        other => other,
    }
}
