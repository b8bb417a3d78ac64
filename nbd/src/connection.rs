//! One connection: the handshake, then the transmission phase with a reader loop, one task per
//! request, and one writer task that sends whole replies in completion order.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn, Instrument};

use crate::codec::consts::NBD_EINVAL;
use crate::codec::{
    decode_client_flags, decode_option, decode_request_header, encode_greeting, Command, Decode,
};
use crate::error::{NbdError, NbdResult};
use crate::export::ExportSet;
use crate::negotiate::{handle_option, Action, NegotiationState};
use crate::server::{NbdStream, ServerConfig, ShutdownSignal};
use crate::session::{error_reply, execute, Refusal, Session, WireReply};

/// Initial capacity of a connection's read buffer.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Capacity of the writer's buffer (small replies are batched into one write).
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
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

/// Serves one connection to the end.
pub(crate) async fn serve_connection<S: NbdStream>(
    mut stream: S,
    exports: Arc<ExportSet>,
    config: ServerConfig,
    mut shutdown: ShutdownSignal,
) -> NbdResult<()> {
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let limit = Duration::from_millis(config.handshake_timeout_ms);
    let negotiated = tokio::select! {
        r = tokio::time::timeout(limit, handshake(&mut stream, &mut buf, &exports, &config)) => match r {
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
    let Some(mut session) = negotiated else {
        return Ok(());
    };
    session.max_block_status_descriptors = config.max_block_status_descriptors;
    debug!(
        export = session.export.name(),
        structured = session.structured,
        block_status = session.base_allocation_id.is_some(),
        "transmission"
    );
    transmission(stream, buf, Arc::new(session), config, shutdown).await
}

async fn handshake<S: NbdStream>(
    stream: &mut S,
    buf: &mut BytesMut,
    exports: &ExportSet,
    config: &ServerConfig,
) -> NbdResult<Option<Session>> {
    let mut out = BytesMut::new();
    encode_greeting(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let Some(flags) = read_frame(stream, buf, decode_client_flags).await? else {
        return Ok(None);
    };
    let mut state = NegotiationState {
        no_zeroes: flags.no_zeroes,
        ..NegotiationState::default()
    };
    for _ in 0..config.max_options_per_handshake {
        let Some(raw) = read_frame(stream, buf, |b| decode_option(b, &config.limits)).await? else {
            return Ok(None);
        };
        out.clear();
        let action = handle_option(&mut state, exports, &config.limits, &raw, &mut out);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
        }
        match action {
            Action::Continue => {}
            Action::Close => return Ok(None),
            Action::HardClose(reason) => return Err(NbdError::Protocol(reason)),
            Action::Transmission(session) => return Ok(Some(*session)),
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

/// Replies with at least this much data go out as one vectored write (header and data
/// together) instead of through the buffer.
const VECTORED_REPLY_MIN_BYTES: usize = 64 * 1024;

/// Writes `head` then `data` with vectored writes (one packet train, no separate tiny header
/// write).
async fn write_two<W: AsyncWrite + Unpin>(w: &mut W, head: &[u8], data: &[u8]) -> NbdResult<()> {
    let (mut head_done, mut data_done) = (0usize, 0usize);
    while head_done < head.len() || data_done < data.len() {
        let slices = [
            std::io::IoSlice::new(&head[head_done..]),
            std::io::IoSlice::new(&data[data_done..]),
        ];
        let n = w.write_vectored(&slices).await?;
        if n == 0 {
            return Err(NbdError::Io(std::io::ErrorKind::WriteZero.into()));
        }
        let from_head = n.min(head.len() - head_done);
        head_done += from_head;
        data_done += n - from_head;
    }
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    w: W,
    mut rx: mpsc::Receiver<Outgoing>,
) -> NbdResult<()> {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER_BYTES, w);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Write everything already queued, then flush once.
        while let Some(msg) = next {
            match msg.reply.parts.as_slice() {
                [head, data] if data.len() >= VECTORED_REPLY_MIN_BYTES => {
                    w.flush().await?;
                    write_two(w.get_mut(), head, data).await?;
                }
                parts => {
                    for part in parts {
                        w.write_all(part).await?;
                    }
                }
            }
            drop(msg);
            next = rx.try_recv().ok();
        }
        w.flush().await?;
    }
    w.shutdown().await?;
    Ok(())
}

async fn transmission<S: NbdStream>(
    stream: S,
    mut buf: BytesMut,
    session: Arc<Session>,
    config: ServerConfig,
    mut shutdown: ShutdownSignal,
) -> NbdResult<()> {
    let stats = session.export.stats();
    stats.connection_opened();
    let (mut rd, wr) = stream.into_halves();
    let (tx, rx) = mpsc::channel::<Outgoing>(config.max_in_flight_requests + 1);
    let writer = tokio::spawn(write_loop(wr, rx).in_current_span());
    let request_slots = Arc::new(Semaphore::new(config.max_in_flight_requests));
    let budget_units = (config.max_in_flight_bytes / BYTE_BUDGET_UNIT_BYTES).max(1);
    let byte_slots = Arc::new(Semaphore::new(budget_units));
    let budget_units = u32::try_from(budget_units).unwrap_or(u32::MAX);
    let mut tasks = JoinSet::new();

    let result: NbdResult<()> = loop {
        while let Some(joined) = tasks.try_join_next() {
            if let Err(e) = joined {
                warn!("request task failed: {e}");
            }
        }
        // The semaphores are never closed, so acquiring only fails if they were.
        let slot = tokio::select! {
            p = request_slots.clone().acquire_owned() => p.ok(),
            () = shutdown.wait() => break Ok(()),
        };
        let header = tokio::select! {
            r = read_frame(&mut rd, &mut buf, decode_request_header) => r,
            () = shutdown.wait() => break Ok(()),
        };
        let req = match header {
            Ok(Some(r)) => r,
            Ok(None) => {
                debug!("client closed the connection");
                break Ok(());
            }
            Err(e) => break Err(e),
        };
        if req.command == Command::Disc {
            debug!("NBD_CMD_DISC: finishing requests in flight");
            break Ok(());
        }
        let payload_len = req.payload_bytes();
        if payload_len > config.limits.max_write_payload_bytes {
            // Answer, then close: skipping that much data is not worth keeping the connection.
            stats.request(req.command.code());
            stats.error();
            let refusal = Refusal {
                error: NBD_EINVAL,
                message: format!(
                    "write payload of {payload_len} bytes exceeds the limit of {} bytes; closing the connection",
                    config.limits.max_write_payload_bytes
                ),
            };
            let _ = tx
                .send(Outgoing {
                    reply: error_reply(&session, &req, &refusal),
                    _request_slot: slot,
                    _bytes: None,
                })
                .await;
            break Err(NbdError::TooLarge {
                what: "write payload",
                value_bytes: u64::from(payload_len),
                limit_bytes: u64::from(config.limits.max_write_payload_bytes),
            });
        }
        let data_len = match req.command {
            Command::Read | Command::Write => req.length_bytes as usize,
            _ => 0,
        };
        let units = u32::try_from(data_len.div_ceil(BYTE_BUDGET_UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .min(budget_units);
        let bytes_permit = if units > 0 {
            tokio::select! {
                p = byte_slots.clone().acquire_many_owned(units) => p.ok(),
                () = shutdown.wait() => break Ok(()),
            }
        } else {
            None
        };
        let payload = if payload_len > 0 {
            let need = payload_len as usize;
            let filled = tokio::select! {
                r = fill(&mut rd, &mut buf, need) => r,
                () = shutdown.wait() => break Ok(()),
            };
            match filled {
                Ok(true) => buf.split_to(need).freeze(),
                Ok(false) => {
                    break Err(NbdError::protocol(
                        "peer closed the connection before the write payload",
                    ))
                }
                Err(e) => break Err(e),
            }
        } else {
            bytes::Bytes::new()
        };
        let session = session.clone();
        let tx = tx.clone();
        let span = tracing::debug_span!(
            "nbd_request",
            cmd = req.command.name(),
            cookie = req.cookie,
            offset = req.offset_bytes,
            length = req.length_bytes
        );
        tasks.spawn(
            async move {
                let reply = execute(&session, req, payload).await;
                if tx
                    .send(Outgoing {
                        reply,
                        _request_slot: slot,
                        _bytes: bytes_permit,
                    })
                    .await
                    .is_err()
                {
                    debug!("reply dropped: the connection's writer has stopped");
                }
            }
            .instrument(span),
        );
    };

    // Finish what is in flight (DISC, EOF, shutdown or error), bounded.
    let drain = Duration::from_millis(config.drain_timeout_ms);
    let drained = tokio::time::timeout(drain, async {
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                warn!("request task failed: {e}");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            left = tasks.len(),
            "requests did not finish within {} ms; abandoning them", config.drain_timeout_ms
        );
        tasks.shutdown().await;
    }
    drop(tx);
    let written = match tokio::time::timeout(drain, writer).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(NbdError::Io(std::io::Error::other(format!(
            "writer task failed: {e}"
        )))),
        Err(_) => Err(NbdError::Timeout("writing the last replies".into())),
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
