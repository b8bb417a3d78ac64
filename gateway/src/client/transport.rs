//! One RPC connection: record marking, xid allocation, the table of outstanding calls, a bound
//! on calls in flight, per-call timeouts, and demultiplexing of REPLYs (to their callers) from
//! CALLs the server sends on the same connection (the NFSv4.1 backchannel).
//!
//! The stream is generic, so unit tests run over `tokio::io::duplex` and fault layers can sit
//! between the client and a real server.

use crate::sync::LockExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;

use pnfs_proto::rpc::{AcceptStat, AuthSys, RecordReader};

use super::error::ClientError;
use super::rpc::{self, Message};

/// Largest fragment we send (record marking allows 2^31 - 1).
const MAX_SEND_FRAGMENT_BYTES: usize = 1 << 30;
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Records queued for the writer before senders wait.
const WRITE_QUEUE_DEPTH: usize = 64;

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct TransportLimits {
    /// Largest record accepted from the peer (all fragments together).
    pub max_record_bytes: usize,
    /// Calls in flight at once; further callers wait for a free place.
    pub max_inflight_calls: usize,
    /// Time a call waits for its reply before failing with [`ClientError::Timeout`].
    pub call_timeout_ms: u64,
}

impl Default for TransportLimits {
    fn default() -> Self {
        Self {
            max_record_bytes: 4 * 1024 * 1024 + 64 * 1024,
            max_inflight_calls: 128,
            call_timeout_ms: 30_000,
        }
    }
}

/// A CALL the server sent us (the backchannel). Answer it with [`ReplyHandle`].
#[derive(Debug)]
pub struct IncomingCall {
    /// Transaction id (echoed in the reply).
    pub xid: u32,
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure.
    pub proc_num: u32,
    /// The encoded arguments.
    pub args: Vec<u8>,
    /// Where the reply goes (the connection the call came on).
    pub reply: ReplyHandle,
}

/// Sends replies to backchannel calls on the connection they arrived on.
#[derive(Debug, Clone)]
pub struct ReplyHandle {
    writer: mpsc::Sender<Vec<u8>>,
}

impl ReplyHandle {
    /// Sends an accepted reply. An error means the connection is gone (the server will retry
    /// the callback on another one, so this is logged by the caller, not fatal).
    pub async fn send(
        &self,
        xid: u32,
        stat: AcceptStat,
        results: &[u8],
    ) -> Result<(), ClientError> {
        let msg = rpc::encode_accepted_reply(xid, stat, results);
        self.writer
            .send(msg)
            .await
            .map_err(|_| ClientError::ConnectionLost("writer closed".into()))
    }
}

type ReplySender = oneshot::Sender<Result<Vec<u8>, ClientError>>;

#[derive(Debug, Default)]
struct Pending {
    closed: Option<String>,
    calls: HashMap<u32, ReplySender>,
}

/// Data for a reply: the whole record and the offset of the results in it.
fn fail_all(pending: &Mutex<Pending>, why: &str) {
    let calls = {
        let mut p = pending.lock_unpoisoned();
        if p.closed.is_none() {
            p.closed = Some(why.to_owned());
        }
        std::mem::take(&mut p.calls)
    };
    for (_, tx) in calls {
        let _ = tx.send(Err(ClientError::ConnectionLost(why.to_owned())));
    }
}

/// One RPC connection (see the module docs). Dropping it closes the connection.
#[derive(Debug)]
pub struct Transport {
    writer: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<Pending>>,
    next_xid: AtomicU32,
    inflight: Semaphore,
    limits: TransportLimits,
    reader_task: JoinHandle<()>,
    writer_task: JoinHandle<()>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.reader_task.abort();
        self.writer_task.abort();
        fail_all(&self.pending, "transport dropped");
    }
}

impl Transport {
    /// Starts the reader and writer tasks on `stream`. CALLs from the peer go to `incoming`
    /// (if the receiver is gone they are dropped and logged). `first_xid` seeds the xid
    /// counter (use something that differs between connections).
    pub fn start<S>(
        stream: S,
        limits: TransportLimits,
        first_xid: u32,
        incoming: mpsc::Sender<IncomingCall>,
    ) -> Arc<Self>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let (wtx, wrx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE_DEPTH);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let writer_task = tokio::spawn(write_loop(wr, wrx, pending.clone()));
        let reader_task = tokio::spawn(read_loop(
            rd,
            limits.max_record_bytes,
            pending.clone(),
            incoming,
            wtx.clone(),
        ));
        Arc::new(Self {
            writer: wtx,
            pending,
            next_xid: AtomicU32::new(first_xid),
            inflight: Semaphore::new(limits.max_inflight_calls.max(1)),
            limits,
            reader_task,
            writer_task,
        })
    }

    /// True once the connection has failed or was closed.
    pub fn is_closed(&self) -> bool {
        self.pending.lock_unpoisoned().closed.is_some()
    }

    /// Closes the connection: every outstanding call fails with ConnectionLost.
    pub fn close(&self, why: &str) {
        self.reader_task.abort();
        self.writer_task.abort();
        fail_all(&self.pending, why);
    }

    /// Sends one CALL and waits for its reply; returns the procedure results.
    pub async fn call(
        &self,
        prog: u32,
        vers: u32,
        proc_num: u32,
        cred: &AuthSys,
        args: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let _permit = self
            .inflight
            .acquire()
            .await
            .map_err(|_| ClientError::ConnectionLost("closed".into()))?;
        let xid = self.next_xid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock_unpoisoned();
            if let Some(why) = &p.closed {
                return Err(ClientError::ConnectionLost(why.clone()));
            }
            p.calls.insert(xid, tx);
        }
        let msg = rpc::encode_call(xid, prog, vers, proc_num, cred, args);
        if self.writer.send(msg).await.is_err() {
            self.forget(xid);
            return Err(ClientError::ConnectionLost("writer closed".into()));
        }
        let timeout = Duration::from_millis(self.limits.call_timeout_ms);
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::ConnectionLost("reply channel dropped".into())),
            Err(_) => {
                self.forget(xid);
                Err(ClientError::Timeout {
                    timeout_ms: self.limits.call_timeout_ms,
                })
            }
        }
    }

    fn forget(&self, xid: u32) {
        self.pending.lock_unpoisoned().calls.remove(&xid);
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Mutex<Pending>>,
) {
    while let Some(msg) = rx.recv().await {
        if let Err(e) = write_record(&mut wr, &msg).await {
            tracing::debug!(error = %e, "RPC connection write failed");
            fail_all(&pending, &format!("write: {e}"));
            return;
        }
    }
}

async fn write_record<W: AsyncWrite + Unpin>(wr: &mut W, msg: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(msg.len() + 8);
    pnfs_proto::rpc::write_record(msg, MAX_SEND_FRAGMENT_BYTES, &mut buf);
    wr.write_all(&buf).await?;
    wr.flush().await
}

/// Reads records with a pure [`RecordReader`]; keeps unconsumed bytes in `buf`.
struct RecordStream<R> {
    rd: R,
    reader: RecordReader,
    buf: Vec<u8>,
    start: usize,
}

impl<R: AsyncRead + Unpin> RecordStream<R> {
    fn new(rd: R, max_record_bytes: usize) -> Self {
        Self {
            rd,
            reader: RecordReader::new(max_record_bytes),
            buf: Vec::new(),
            start: 0,
        }
    }

    /// The next record; `Ok(None)` on a clean EOF between records.
    async fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            if self.start < self.buf.len() {
                let (used, rec) = self
                    .reader
                    .feed(&self.buf[self.start..])
                    .map_err(|e| format!("bad record: {e}"))?;
                self.start += used;
                if let Some(rec) = rec {
                    return Ok(Some(rec));
                }
            }
            self.buf.clear();
            self.start = 0;
            self.buf.resize(READ_CHUNK_BYTES, 0);
            let n = self
                .rd
                .read(&mut self.buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            self.buf.truncate(n);
            if n == 0 {
                return if self.reader.is_idle() {
                    Ok(None)
                } else {
                    Err("connection closed inside a record".into())
                };
            }
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    rd: R,
    max_record_bytes: usize,
    pending: Arc<Mutex<Pending>>,
    incoming: mpsc::Sender<IncomingCall>,
    writer: mpsc::Sender<Vec<u8>>,
) {
    let mut stream = RecordStream::new(rd, max_record_bytes);
    let why = loop {
        let record = match stream.next().await {
            Ok(Some(r)) => r,
            Ok(None) => break "closed by peer".to_owned(),
            Err(e) => break e,
        };
        match rpc::parse_message(&record) {
            Ok(Message::Reply { xid, body }) => {
                let tx = pending.lock_unpoisoned().calls.remove(&xid);
                let Some(tx) = tx else {
                    tracing::debug!(xid, "reply for an unknown or timed-out call dropped");
                    continue;
                };
                let result = match body {
                    Ok(offset) => Ok(record[offset..].to_vec()),
                    Err(e) => Err(ClientError::Rpc(e)),
                };
                let _ = tx.send(result);
            }
            Ok(Message::Call {
                xid,
                prog,
                vers,
                proc_num,
                args_offset,
            }) => {
                let call = IncomingCall {
                    xid,
                    prog,
                    vers,
                    proc_num,
                    args: record[args_offset..].to_vec(),
                    reply: ReplyHandle {
                        writer: writer.clone(),
                    },
                };
                if incoming.send(call).await.is_err() {
                    tracing::warn!(xid, "backchannel call dropped: no handler");
                }
            }
            Err(e) => break format!("malformed RPC message: {e}"),
        }
    };
    tracing::debug!(reason = %why, "RPC connection reader stopped");
    fail_all(&pending, &why);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnfs_proto::xdr::Decoder;

    fn cred() -> AuthSys {
        AuthSys {
            stamp: 0,
            machine_name: "t".into(),
            uid: 0,
            gid: 0,
            gids: vec![],
        }
    }

    /// A tiny peer: answers each call with its xid as the result, in reverse order of two.
    #[tokio::test]
    async fn replies_are_matched_by_xid_and_calls_are_demultiplexed() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (itx, mut irx) = mpsc::channel(4);
        let t = Transport::start(a, TransportLimits::default(), 100, itx);
        let (brd, mut bwr) = tokio::io::split(b);
        let mut brd = RecordStream::new(brd, 1 << 20);
        let peer = tokio::spawn(async move {
            let r1 = brd.next().await.unwrap().unwrap();
            let r2 = brd.next().await.unwrap().unwrap();
            // A callback CALL first, then the replies out of order.
            let cb = rpc::encode_call(9, 0x4000_0000, 1, 0, &cred(), &[]);
            write_record(&mut bwr, &cb).await.unwrap();
            for r in [r2, r1] {
                let xid = Decoder::new(&r).u32().unwrap();
                let reply =
                    rpc::encode_accepted_reply(xid, AcceptStat::Success, &xid.to_be_bytes());
                write_record(&mut bwr, &reply).await.unwrap();
            }
            // Read our reply to the callback.
            let r = brd.next().await.unwrap().unwrap();
            assert!(matches!(
                rpc::parse_message(&r).unwrap(),
                Message::Reply { xid: 9, .. }
            ));
            (brd, bwr)
        });
        let c = cred();
        let (x, y) = tokio::join!(t.call(1, 1, 1, &c, &[]), t.call(1, 1, 1, &c, &[]));
        assert_eq!(x.unwrap(), 100u32.to_be_bytes());
        assert_eq!(y.unwrap(), 101u32.to_be_bytes());
        let call = irx.recv().await.unwrap();
        assert_eq!((call.xid, call.prog, call.proc_num), (9, 0x4000_0000, 0));
        call.reply
            .send(call.xid, AcceptStat::Success, &[])
            .await
            .unwrap();
        let (brd, bwr) = peer.await.unwrap();
        // Peer closes: further calls fail with ConnectionLost, no hang.
        drop((brd, bwr));
        let err = t.call(1, 1, 1, &c, &[]).await.unwrap_err();
        assert!(err.is_transport(), "{err}");
        assert!(t.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_without_reply_times_out_and_an_oversized_record_closes() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (itx, _irx) = mpsc::channel(4);
        let limits = TransportLimits {
            max_record_bytes: 64,
            max_inflight_calls: 2,
            call_timeout_ms: 5_000,
        };
        let t = Transport::start(a, limits, 1, itx);
        let err = t.call(1, 1, 1, &cred(), &[]).await.unwrap_err();
        assert_eq!(err, ClientError::Timeout { timeout_ms: 5_000 });
        let (_brd, mut bwr) = tokio::io::split(b);
        write_record(&mut bwr, &[0u8; 100]).await.unwrap();
        let err = t.call(1, 1, 1, &cred(), &[]).await.unwrap_err();
        assert!(
            matches!(err, ClientError::ConnectionLost(ref why) if why.contains("bad record")),
            "{err}"
        );
    }
}
