//! The TCP server: one task per connection, RPC framing, the back channel on the client's own
//! connection, the periodic lease/recall/grace work, and the admin socket.

use crate::sync::LockExt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pnfs_proto::nfs4::NfsStat;
use pnfs_proto::rpc::{
    self, AcceptStat, AuthSys, CallBody, MsgBody, OpaqueAuth, RecordReader, ReplyBody, RpcMsg,
};
use pnfs_proto::xdr::{Encoder, XdrEncode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener};

use crate::nfs::{self, ConnHandle, Cred, Recall, State};
use crate::out_queue::OutQueue;

/// Largest RPC record accepted from a client.
pub const MAX_RECORD_BYTES: usize = 2 * 1024 * 1024;
/// Most admin commands per admin connection line length.
const MAX_ADMIN_LINE_BYTES: usize = 4096;
/// Attempts to deliver one recall when the client answers DELAY.
const MAX_RECALL_ATTEMPTS: u32 = 50;

/// The running server: state plus counters. Share it with `Arc`.
#[derive(Debug)]
pub struct Mds {
    pub(crate) state: Mutex<State>,
    next_conn: AtomicU64,
    next_xid: AtomicU32,
    /// The most bytes queued for writing on one connection so far (see [`OutQueue`]).
    peak_queued_reply_bytes: Arc<AtomicUsize>,
}

impl Mds {
    /// Wraps the state.
    pub fn new(state: State) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(state),
            next_conn: AtomicU64::new(1),
            next_xid: AtomicU32::new(rand::random::<u32>() | 1),
            peak_queued_reply_bytes: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The most bytes that were ever queued for writing on one connection: at most
    /// [`crate::out_queue::MAX_QUEUED_REPLY_BYTES`] plus one record.
    pub fn peak_queued_reply_bytes(&self) -> usize {
        self.peak_queued_reply_bytes.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving with the state as is.
        self.state.lock_unpoisoned()
    }

    /// Recalls every layout of the file at `path` (an admin/test hook). Returns the number
    /// of recalls sent.
    pub fn recall_layouts(self: &Arc<Self>, path: &str) -> Result<usize, crate::MdsError> {
        let recalls = {
            let mut st = self.lock();
            st.recall_path(path)
                .map_err(|e| crate::MdsError::Admin(format!("{path}: {e}")))?;
            std::mem::take(&mut st.recalls)
        };
        let n = recalls.len();
        self.spawn_recalls(recalls);
        Ok(n)
    }

    /// Makes `dst` a clone of `src` (both paths from the export root; `dst` must exist).
    pub fn clone_file(&self, src: &str, dst: &str) -> Result<(), crate::MdsError> {
        let mut st = self.lock();
        let s = st
            .fs
            .resolve(src)
            .map_err(|e| crate::MdsError::Admin(format!("{src}: {e}")))?;
        let d = st
            .fs
            .resolve(dst)
            .map_err(|e| crate::MdsError::Admin(format!("{dst}: {e}")))?;
        st.fs
            .clone_file(s, d)
            .map_err(|e| crate::MdsError::Admin(format!("clone: {e}")))
    }

    /// Layouts (one per client) held on the file at `path`.
    pub fn layouts_on(&self, path: &str) -> Result<usize, crate::MdsError> {
        self.lock()
            .layouts_on(path)
            .map_err(|e| crate::MdsError::Admin(format!("{path}: {e}")))
    }

    /// (CB_LAYOUTRECALLs sent, layouts revoked after a recall timeout).
    pub fn recall_stats(&self) -> (u64, u64) {
        let st = self.lock();
        (st.recalls_sent, st.revoked)
    }

    /// Delegations held on the file at `path`.
    pub fn delegations_on(&self, path: &str) -> Result<usize, crate::MdsError> {
        self.lock()
            .delegations_on(path)
            .map_err(|e| crate::MdsError::Admin(format!("{path}: {e}")))
    }

    /// (CB_RECALLs of delegations sent, delegations revoked a lease after their recall).
    pub fn delegation_stats(&self) -> (u64, u64) {
        let st = self.lock();
        (st.delegation_recalls_sent, st.delegations_revoked)
    }

    /// Clients whose lease expired (their state was dropped; they need a new client ID).
    pub fn expired_clients(&self) -> u64 {
        self.lock().expired_clients
    }

    /// Revoked layouts their clients have not acknowledged yet (they keep
    /// SEQ4_STATUS_RECALLABLE_STATE_REVOKED up in those clients' SEQUENCE replies).
    pub fn revoked_unacknowledged(&self) -> usize {
        self.lock().revoked_layouts.len()
    }

    fn spawn_recalls(self: &Arc<Self>, recalls: Vec<Recall>) {
        for r in recalls {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.send_recall(r).await });
        }
    }

    async fn send_recall(self: Arc<Self>, r: Recall) {
        let found = {
            let st = self.lock();
            st.sessions
                .iter()
                .find(|(_, s)| s.clientid == r.clientid && s.back.is_some())
                .map(|(id, s)| (*id, s.back.clone(), s.cb_prog, s.cb_sys, s.cb_seq.clone()))
        };
        let Some((sess, Some(back), prog, sys, seq_lock)) = found else {
            tracing::warn!(
                "client {:#x} has no back channel; its layout or delegation will be revoked at \
                 the timeout",
                r.clientid
            );
            return;
        };
        let timeout = self.lock().settings.recall_timeout;
        let mut seq = seq_lock.lock().await;
        for attempt in 0..MAX_RECALL_ATTEMPTS {
            *seq += 1;
            let xid = self.next_xid.fetch_add(1, Ordering::Relaxed);
            let cred = if sys {
                OpaqueAuth::Sys(AuthSys {
                    stamp: 0,
                    machine_name: "pnfs-mds".into(),
                    uid: 0,
                    gid: 0,
                    gids: Vec::new(),
                })
            } else {
                OpaqueAuth::None
            };
            let mut enc = Encoder::new();
            let mark = rpc::begin_record(&mut enc);
            RpcMsg::call(
                xid,
                CallBody::new(prog, rpc::NFS_CB_VERSION, rpc::CB_COMPOUND, cred),
            )
            .encode(&mut enc);
            enc.put_opaque_fixed(&nfs::callback::recall_args(&sess, *seq, &r));
            if rpc::finish_record(&mut enc, mark).is_err() {
                return;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            back.pending.lock_unpoisoned().insert(xid, tx);
            if !back.out.send(enc.into_inner()) {
                tracing::warn!("recall: back channel closed");
                return;
            }
            {
                let mut st = self.lock();
                if r.delegation {
                    st.delegation_recalls_sent += 1;
                } else {
                    st.recalls_sent += 1;
                }
            }
            let reply = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(b)) => b,
                _ => {
                    back.pending.lock_unpoisoned().remove(&xid);
                    tracing::warn!("recall: no answer from client {:#x}", r.clientid);
                    return;
                }
            };
            let result = match rpc::decode_message(&reply) {
                Ok((m, rest)) => match m.body {
                    MsgBody::Reply(ReplyBody::Accepted(a)) if a.stat == AcceptStat::Success => {
                        nfs::callback::read_reply(rest).map_err(|e| e.to_string())
                    }
                    other => Err(format!("RPC reply {other:?}")),
                },
                Err(e) => Err(e.to_string()),
            };
            tracing::info!(
                "{} to client {:#x} (stateid seqid {}): {result:?}",
                if r.delegation {
                    "CB_RECALL"
                } else {
                    "CB_LAYOUTRECALL"
                },
                r.clientid,
                r.stateid.seqid
            );
            match result {
                Ok(o) if o.recall.is_some_and(NfsStat::is_ok) => return,
                Ok(o) if !r.delegation && o.recall == Some(NfsStat::NOMATCHING_LAYOUT) => {
                    self.lock().recall_answered_nomatch(&r.stateid.other);
                    return;
                }
                Ok(o) if o.status == NfsStat::DELAY || attempt < 3 => {
                    tracing::debug!("recall: client said {}; retrying", o.status);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => {
                    tracing::warn!("recall: unexpected answer {other:?}");
                    return;
                }
            }
        }
    }
}

/// Serves NFSv4.1 on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    mds: Arc<Mds>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let ticker = {
        let mds = Arc::clone(&mds);
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(500));
            loop {
                iv.tick().await;
                mds.lock().tick();
            }
        })
    };
    tokio::pin!(shutdown);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            acc = listener.accept() => match acc {
                Ok((sock, peer)) => {
                    tracing::debug!("connection from {peer}");
                    let _ = sock.set_nodelay(true);
                    let mds = Arc::clone(&mds);
                    conns.spawn(async move { serve_conn(mds, sock).await });
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    ticker.abort();
    conns.abort_all();
}

async fn serve_conn(mds: Arc<Mds>, sock: TcpStream) {
    let id = mds.next_conn.fetch_add(1, Ordering::Relaxed);
    let (mut rd, mut wr) = sock.into_split();
    let (out, mut rx) = OutQueue::new(Arc::clone(&mds.peak_queued_reply_bytes));
    let writer_out = Arc::clone(&out);
    let writer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if let Err(e) = wr.write_all(&b).await {
                tracing::debug!("write: {e}");
                break;
            }
            writer_out.written(b.len());
        }
        writer_out.close();
    });
    let conn = ConnHandle {
        id,
        out,
        pending: Arc::new(Mutex::new(std::collections::HashMap::new())),
    };
    let mut reader = RecordReader::new(MAX_RECORD_BYTES);
    let mut buf = vec![0u8; 256 * 1024];
    'outer: loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("read: {e}");
                break;
            }
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            match reader.feed(data) {
                Ok((used, rec)) => {
                    data = &data[used..];
                    if let Some(rec) = rec {
                        conn.out.wait_for_room().await;
                        handle_record(&mds, &conn, rec);
                    }
                }
                Err(e) => {
                    tracing::warn!("connection {id}: {e}; closing it");
                    break 'outer;
                }
            }
        }
    }
    {
        let mut st = mds.lock();
        for s in st.sessions.values_mut() {
            if s.back.as_ref().is_some_and(|b| b.id == id) {
                s.back = None;
            }
        }
    }
    drop(conn);
    writer.abort();
}

fn reply_header(xid: u32, stat: AcceptStat) -> (Encoder, usize) {
    let mut enc = Encoder::new();
    let mark = rpc::begin_record(&mut enc);
    RpcMsg::reply(xid, ReplyBody::accepted(stat)).encode(&mut enc);
    (enc, mark)
}

fn send(conn: &ConnHandle, mut enc: Encoder, mark: usize) {
    if rpc::finish_record(&mut enc, mark).is_ok() {
        // A closed queue: the connection is going away, its client will not read the reply.
        let _ = conn.out.send(enc.into_inner());
    }
}

fn handle_record(mds: &Arc<Mds>, conn: &ConnHandle, rec: Vec<u8>) {
    // Replies to our callbacks come back on the same connection.
    if rec.len() >= 8 && rec[4..8] == [0, 0, 0, 1] {
        if let Some(xid) = rpc::peek_xid(&rec) {
            let waiter = conn.pending.lock_unpoisoned().remove(&xid);
            match waiter {
                Some(w) => {
                    let _ = w.send(rec);
                }
                None => tracing::debug!("reply with unknown xid {xid}"),
            }
        }
        return;
    }
    let (msg, args) = match rpc::decode_message(&rec) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!("bad RPC header: {e}");
            if let Some(xid) = rpc::peek_xid(&rec) {
                let (enc, mark) = reply_header(xid, AcceptStat::GarbageArgs);
                send(conn, enc, mark);
            }
            return;
        }
    };
    let MsgBody::Call(call) = msg.body else {
        return;
    };
    let xid = msg.xid;
    if call.rpcvers != rpc::RPC_VERSION {
        let mut enc = Encoder::new();
        let mark = rpc::begin_record(&mut enc);
        enc.put_u32(xid);
        enc.put_u32(1);
        enc.put_u32(1); // MSG_DENIED
        enc.put_u32(0); // RPC_MISMATCH
        enc.put_u32(2);
        enc.put_u32(2);
        send(conn, enc, mark);
        return;
    }
    if call.prog != rpc::NFS_PROGRAM {
        let (enc, mark) = reply_header(xid, AcceptStat::ProgUnavail);
        send(conn, enc, mark);
        return;
    }
    if call.vers != rpc::NFS_V4 {
        let (enc, mark) = reply_header(xid, AcceptStat::ProgMismatch { low: 4, high: 4 });
        send(conn, enc, mark);
        return;
    }
    match call.proc_num {
        rpc::NFSPROC4_NULL => {
            let (enc, mark) = reply_header(xid, AcceptStat::Success);
            send(conn, enc, mark);
        }
        rpc::NFSPROC4_COMPOUND => {
            let compound = match nfs::Request::decode(args, rec.len()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("undecodable COMPOUND: {e}");
                    let (enc, mark) = reply_header(xid, AcceptStat::GarbageArgs);
                    send(conn, enc, mark);
                    return;
                }
            };
            let cred = match &call.cred {
                OpaqueAuth::Sys(a) => Cred {
                    uid: a.uid,
                    gid: a.gid,
                    principal: nfs::Principal(Some((a.machine_name.clone(), a.uid))),
                },
                _ => Cred {
                    uid: 65534,
                    gid: 65534,
                    principal: nfs::Principal(None),
                },
            };
            let (out, recalls) = {
                let mut st = mds.lock();
                let out = st.compound(compound, cred, conn);
                (out, std::mem::take(&mut st.recalls))
            };
            let (mut enc, mark) = reply_header(xid, AcceptStat::Success);
            enc.put_opaque_fixed(&out);
            send(conn, enc, mark);
            mds.spawn_recalls(recalls);
        }
        _ => {
            let (enc, mark) = reply_header(xid, AcceptStat::ProcUnavail);
            send(conn, enc, mark);
        }
    }
}

/// Serves admin commands on a Unix socket, one per line:
/// `recall PATH` → `ok N`, `layouts PATH` → `ok N`, `delegations PATH` → `ok N`,
/// `clone SRC DST` → `ok`,
/// `stats` → `recalls_sent=N revoked=M unacknowledged=K expired_clients=E
/// delegation_recalls=D delegation_revocations=R`.
pub async fn serve_admin(listener: UnixListener, mds: Arc<Mds>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let mds = Arc::clone(&mds);
        tokio::spawn(async move {
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r.take(1 << 20)).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.len() > MAX_ADMIN_LINE_BYTES {
                    let _ = w.write_all(b"err line too long\n").await;
                    break;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                let answer = match words.as_slice() {
                    ["recall", path] => match mds.recall_layouts(path) {
                        Ok(n) => format!("ok {n}"),
                        Err(e) => format!("err {e}"),
                    },
                    ["layouts", path] => match mds.layouts_on(path) {
                        Ok(n) => format!("ok {n}"),
                        Err(e) => format!("err {e}"),
                    },
                    ["delegations", path] => match mds.delegations_on(path) {
                        Ok(n) => format!("ok {n}"),
                        Err(e) => format!("err {e}"),
                    },
                    ["clone", s, d] => match mds.clone_file(s, d) {
                        Ok(()) => "ok".to_owned(),
                        Err(e) => format!("err {e}"),
                    },
                    ["stats"] => {
                        let (s, r) = mds.recall_stats();
                        let u = mds.revoked_unacknowledged();
                        let e = mds.expired_clients();
                        let (ds, dr) = mds.delegation_stats();
                        format!(
                            "recalls_sent={s} revoked={r} unacknowledged={u} expired_clients={e} \
                             delegation_recalls={ds} delegation_revocations={dr}"
                        )
                    }
                    _ => "err unknown command".to_owned(),
                };
                if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}
