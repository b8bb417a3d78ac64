//! Deterministic tests of the retry and recovery logic: an injected connector whose peer
//! decodes requests with `pnfs_proto` (so it also checks our encoding), keeps a real
//! per-slot reply cache, and injects scripted faults. Time is paused. The same behaviours are
//! exercised against real servers in `tests/client_*.rs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use pnfs_proto::nfs4::ops::{
    BindConnToSessionResOk, ChannelAttrs as PChannelAttrs, CommitArgs, CommitResOk, CompoundArgs,
    CompoundRes, CreateSessionResOk, ExchangeIdResOk, GetattrResOk, NfsArgOp, NfsResOp,
    SequenceResOk, ServerOwner, StateProtectR,
};
use pnfs_proto::nfs4::ops::{GetfhResOk, OpenResOk, TestStateidResOk};
use pnfs_proto::nfs4::{FileHandle, NfsStat, SessionId, Stateid, Verifier};
use pnfs_proto::rpc::{decode_message, write_record, AcceptStat, MsgBody, RecordReader};
use pnfs_proto::xdr::{from_bytes, to_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::session::{BoxStream, CallFlags, ClientConfig, Connector, NfsClient};

const SLOTS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Execute the next COMMIT, then close the connection instead of replying.
    DropAfterExecute,
    /// Answer the next SEQUENCE with DELAY (not executed, seqid not consumed).
    SequenceDelay,
    /// Forget the session before the next SEQUENCE (as if the server destroyed it).
    KillSession,
    /// Set SEQ4_STATUS_CB_PATH_DOWN in the next SEQUENCE reply.
    PathDown,
    /// Revoke every open stateid and set SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED until freed.
    Revoke,
}

#[derive(Debug, Default)]
struct Peer {
    session: Option<SessionId>,
    session_counter: u8,
    slots: Vec<(u32, Option<Vec<u8>>)>,
    script: VecDeque<Fault>,
    commits_executed: u32,
    binds: u32,
    replays: u32,
    misordered: u32,
    opens: u32,
    revoked: Vec<Stateid>,
    freed: Vec<Stateid>,
    closed: Vec<Stateid>,
}

impl Peer {
    /// Handles one COMPOUND; `None` means "close the connection without replying".
    fn compound(&mut self, args: &[u8]) -> Option<Vec<u8>> {
        let args: CompoundArgs = from_bytes(args).expect("client sent a COMPOUND proto can decode");
        let mut ops = args.argarray.into_iter();
        let first = ops.next()?;
        let NfsArgOp::Sequence(seq) = first else {
            let res = match first {
                NfsArgOp::ExchangeId(_) => NfsResOp::ExchangeId(Ok(ExchangeIdResOk {
                    clientid: 0x1234,
                    sequenceid: 1,
                    flags: super::wire::exchgid::USE_PNFS_MDS,
                    state_protect: StateProtectR::None,
                    server_owner: ServerOwner {
                        minor_id: 0,
                        major_id: b"fake".to_vec(),
                    },
                    server_scope: b"fake".to_vec(),
                    server_impl_id: None,
                })),
                NfsArgOp::CreateSession(a) => {
                    self.session_counter += 1;
                    let id = SessionId([self.session_counter; 16]);
                    self.session = Some(id);
                    self.slots = vec![(0, None); SLOTS];
                    let attrs = PChannelAttrs {
                        headerpadsize: 0,
                        maxrequestsize: 1 << 20,
                        maxresponsesize: 1 << 20,
                        maxresponsesize_cached: 1 << 16,
                        maxoperations: 16,
                        maxrequests: u32::try_from(SLOTS).unwrap(),
                        rdma_ird: None,
                    };
                    NfsResOp::CreateSession(Ok(CreateSessionResOk {
                        sessionid: id,
                        sequence: a.sequence,
                        flags: a.flags,
                        fore_chan_attrs: attrs,
                        back_chan_attrs: attrs,
                    }))
                }
                NfsArgOp::BindConnToSession(a) => {
                    if Some(a.sessid) == self.session {
                        self.binds += 1;
                        NfsResOp::BindConnToSession(Ok(BindConnToSessionResOk {
                            sessid: a.sessid,
                            dir: Default::default(),
                            use_conn_in_rdma_mode: false,
                        }))
                    } else {
                        NfsResOp::BindConnToSession(Err(NfsStat::BADSESSION))
                    }
                }
                NfsArgOp::DestroySession(_) => NfsResOp::DestroySession(NfsStat::OK),
                NfsArgOp::DestroyClientid(_) => NfsResOp::DestroyClientid(NfsStat::OK),
                other => panic!("unexpected sessionless op {other:?}"),
            };
            return Some(to_bytes(&CompoundRes::new("", vec![res])));
        };
        if self.script.front() == Some(&Fault::KillSession) {
            self.script.pop_front();
            self.session = None;
        }
        if Some(seq.sessionid) != self.session {
            return Some(to_bytes(&CompoundRes::new(
                "",
                vec![NfsResOp::Sequence(Err(NfsStat::BADSESSION))],
            )));
        }
        if self.script.front() == Some(&Fault::SequenceDelay) {
            self.script.pop_front();
            return Some(to_bytes(&CompoundRes::new(
                "",
                vec![NfsResOp::Sequence(Err(NfsStat::DELAY))],
            )));
        }
        let slot = usize::try_from(seq.slotid).unwrap();
        let (last, cached) = self.slots[slot].clone();
        if seq.sequenceid == last && last != 0 {
            self.replays += 1;
            return Some(cached.unwrap_or_else(|| {
                to_bytes(&CompoundRes::new(
                    "",
                    vec![NfsResOp::Sequence(Err(NfsStat::RETRY_UNCACHED_REP))],
                ))
            }));
        }
        if seq.sequenceid != last.wrapping_add(1) {
            self.misordered += 1;
            return Some(to_bytes(&CompoundRes::new(
                "",
                vec![NfsResOp::Sequence(Err(NfsStat::SEQ_MISORDERED))],
            )));
        }
        let mut status_flags = if self.script.front() == Some(&Fault::PathDown) {
            self.script.pop_front();
            super::wire::seq4::CB_PATH_DOWN
        } else {
            0
        };
        if self.script.front() == Some(&Fault::Revoke) {
            self.script.pop_front();
            self.revoked.push(open_stateid(self.opens));
        }
        if self.revoked.iter().any(|r| !self.freed.contains(r)) {
            status_flags |= super::wire::seq4::EXPIRED_ALL_STATE_REVOKED;
        }
        let mut res = vec![NfsResOp::Sequence(Ok(SequenceResOk {
            sessionid: seq.sessionid,
            sequenceid: seq.sequenceid,
            slotid: seq.slotid,
            highest_slotid: u32::try_from(SLOTS - 1).unwrap(),
            target_highest_slotid: u32::try_from(SLOTS - 1).unwrap(),
            status_flags,
        }))];
        let mut drop_conn = false;
        for op in ops {
            res.push(match op {
                NfsArgOp::Putrootfh => NfsResOp::Putrootfh(NfsStat::OK),
                NfsArgOp::Putfh(_) => NfsResOp::Putfh(NfsStat::OK),
                NfsArgOp::Getattr(_) => NfsResOp::Getattr(Ok(GetattrResOk::default())),
                NfsArgOp::ReclaimComplete(_) => NfsResOp::ReclaimComplete(NfsStat::OK),
                NfsArgOp::Lookup(_) => NfsResOp::Lookup(NfsStat::OK),
                NfsArgOp::Open(_) => {
                    self.opens += 1;
                    NfsResOp::Open(Ok(OpenResOk {
                        stateid: open_stateid(self.opens),
                        ..Default::default()
                    }))
                }
                NfsArgOp::Getfh => NfsResOp::Getfh(Ok(GetfhResOk {
                    object: FileHandle(vec![9]),
                })),
                NfsArgOp::TestStateid(a) => NfsResOp::TestStateid(Ok(TestStateidResOk {
                    status_codes: a
                        .stateids
                        .iter()
                        .map(|s| {
                            if self.revoked.contains(s) {
                                NfsStat::ADMIN_REVOKED
                            } else {
                                NfsStat::OK
                            }
                        })
                        .collect(),
                })),
                NfsArgOp::FreeStateid(sid) => {
                    self.freed.push(sid);
                    NfsResOp::FreeStateid(NfsStat::OK)
                }
                NfsArgOp::Close(a) => {
                    self.closed.push(a.open_stateid);
                    NfsResOp::Close(Ok(a.open_stateid))
                }
                NfsArgOp::Commit(_) => {
                    self.commits_executed += 1;
                    if self.script.front() == Some(&Fault::DropAfterExecute) {
                        self.script.pop_front();
                        drop_conn = true;
                    }
                    NfsResOp::Commit(Ok(CommitResOk {
                        writeverf: Verifier([7; 8]),
                    }))
                }
                other => panic!("unexpected op {other:?}"),
            });
        }
        let reply = to_bytes(&CompoundRes::new("", res));
        self.slots[slot] = (seq.sequenceid, Some(reply.clone()));
        if drop_conn {
            None
        } else {
            Some(reply)
        }
    }
}

fn open_stateid(n: u32) -> Stateid {
    Stateid {
        seqid: 1,
        other: [u8::try_from(n).unwrap(); 12],
    }
}

struct FakeConnector(Arc<Mutex<Peer>>);

impl Connector for FakeConnector {
    fn connect(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<BoxStream>> + Send + '_>>
    {
        let peer = self.0.clone();
        Box::pin(async move {
            let (client, server) = tokio::io::duplex(1 << 20);
            tokio::spawn(async move {
                let (mut rd, mut wr) = tokio::io::split(server);
                let mut reader = RecordReader::new(1 << 22);
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let Ok(n) = rd.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    for rec in reader.feed_all(&buf[..n]).expect("well-formed records") {
                        let (msg, body) = decode_message(&rec).unwrap();
                        let MsgBody::Call(_) = msg.body else { continue };
                        let Some(results) = peer.lock().unwrap().compound(body) else {
                            return;
                        };
                        let reply = super::rpc::encode_accepted_reply(
                            msg.xid,
                            AcceptStat::Success,
                            &results,
                        );
                        let mut out = Vec::new();
                        write_record(&reply, 1 << 30, &mut out);
                        if wr.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok(Box::new(client) as BoxStream)
        })
    }

    fn describe(&self) -> String {
        "fake peer".into()
    }
}

async fn client(peer: &Arc<Mutex<Peer>>) -> NfsClient {
    let mut cfg = ClientConfig::new("fake-test");
    cfg.stall_limit_ms = 60_000;
    NfsClient::connect_with(Arc::new(FakeConnector(peer.clone())), cfg)
        .await
        .expect("connect to the fake peer")
}

async fn commit(c: &NfsClient) -> Result<(), super::ClientError> {
    let build = || {
        Ok(vec![
            NfsArgOp::Putfh(FileHandle(vec![1])),
            NfsArgOp::Commit(CommitArgs {
                offset: 0,
                count: 0,
            }),
        ])
    };
    c.inner.compound(&build, CallFlags::IO).await.map(|_| ())
}

#[tokio::test(start_paused = true)]
async fn a_request_lost_with_its_connection_is_resent_on_the_same_slot_and_replayed() {
    let peer = Arc::new(Mutex::new(Peer::default()));
    let c = client(&peer).await;
    peer.lock()
        .unwrap()
        .script
        .push_back(Fault::DropAfterExecute);
    commit(&c)
        .await
        .expect("COMMIT succeeds after the reconnect");
    let p = peer.lock().unwrap();
    assert_eq!(
        p.commits_executed, 1,
        "executed exactly once: the retry hit the reply cache"
    );
    assert_eq!((p.replays, p.binds, p.misordered), (1, 1, 0));
    let s = c.stats();
    assert_eq!((s.connects, s.binds, s.sessions), (2, 1, 1), "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn delay_on_sequence_is_retried_without_consuming_the_sequence_id() {
    let peer = Arc::new(Mutex::new(Peer::default()));
    let c = client(&peer).await;
    peer.lock()
        .unwrap()
        .script
        .extend([Fault::SequenceDelay; 3]);
    let t0 = tokio::time::Instant::now();
    commit(&c).await.unwrap();
    commit(&c).await.unwrap();
    // Backoff 50 + 100 + 200 ms (paused clock: exact).
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(350),
        "{:?}",
        t0.elapsed()
    );
    let p = peer.lock().unwrap();
    assert_eq!((p.commits_executed, p.misordered), (2, 0));
    assert!(c.stats().delay_retries >= 3);
}

#[tokio::test(start_paused = true)]
async fn badsession_creates_a_new_session_on_the_same_client_id() {
    let peer = Arc::new(Mutex::new(Peer::default()));
    let c = client(&peer).await;
    let first = c.session_id();
    peer.lock().unwrap().script.push_back(Fault::KillSession);
    commit(&c).await.unwrap();
    assert_ne!(c.session_id(), first);
    let s = c.stats();
    assert_eq!((s.sessions, s.client_ids, s.connects), (2, 1, 1), "{s:?}");
    assert_eq!(peer.lock().unwrap().commits_executed, 1);
}

#[tokio::test(start_paused = true)]
async fn connection_loss_with_a_dead_session_binds_fails_and_a_new_session_is_made() {
    let peer = Arc::new(Mutex::new(Peer::default()));
    let c = client(&peer).await;
    c.drop_connection();
    peer.lock().unwrap().session = None;
    commit(&c).await.unwrap();
    let s = c.stats();
    assert_eq!(
        (s.connects, s.binds, s.sessions, s.client_ids),
        (2, 0, 2, 1),
        "{s:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_renewal_runs_every_third_of_the_lease() {
    let peer = Arc::new(Mutex::new(Peer::default()));
    let c = client(&peer).await;
    // The fake peer returns no lease_time: the default 90 s applies, so renewals every 30 s.
    let before = c.stats().renewals;
    tokio::time::sleep(std::time::Duration::from_secs(95)).await;
    let n = c.stats().renewals - before;
    assert!((3..=4).contains(&n), "renewals in 95 s idle: {n}");
    c.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cb_path_down_in_a_sequence_reply_rebinds_the_connection() {
    let peer = Arc::new(Mutex::new(Peer::default()));
    let c = client(&peer).await;
    peer.lock().unwrap().script.push_back(Fault::PathDown);
    commit(&c).await.unwrap();
    // The rebind runs in the background: poll for it with a bound (paused clock).
    for _ in 0..100 {
        if peer.lock().unwrap().binds == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        peer.lock().unwrap().binds,
        1,
        "BIND_CONN_TO_SESSION after CB_PATH_DOWN"
    );
    let s = c.stats();
    assert_eq!(
        (s.binds, s.connects, s.sessions),
        (1, 1, 1),
        "same connection, same session: {s:?}"
    );
}

#[derive(Default)]
struct LostSink(std::sync::atomic::AtomicU32);

impl crate::mds_api::CallbackSink for LostSink {
    fn layout_recall(&self, _r: crate::mds_api::LayoutRecall) -> NfsStat {
        NfsStat::NOMATCHING_LAYOUT
    }
    fn recall_any(&self, _m: u32, _k: u32) -> NfsStat {
        NfsStat::OK
    }
    fn notify_deviceid(&self, _n: &[crate::mds_api::DeviceNotification]) -> NfsStat {
        NfsStat::OK
    }
    fn server_restarted(&self) -> crate::mds_api::BoxFuture<()> {
        Box::pin(async {})
    }
    fn state_lost(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn revoked_state_is_freed_reopened_and_reported_as_lost() {
    use crate::mds_api::{MetadataServer, OpenMode};
    let peer = Arc::new(Mutex::new(Peer::default()));
    let c = client(&peer).await;
    let sink: Arc<LostSink> = Arc::default();
    let dynsink: Arc<dyn crate::mds_api::CallbackSink> = sink.clone();
    c.set_callback_sink(Arc::downgrade(&dynsink));
    let f = c
        .open(
            "dir/f",
            OpenMode {
                read_only: false,
                create_size_bytes: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(f.open_stateid, open_stateid(1));
    peer.lock().unwrap().script.push_back(Fault::Revoke);
    commit(&c).await.unwrap();
    for _ in 0..200 {
        if sink.0.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        sink.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "state_lost reported once"
    );
    {
        let p = peer.lock().unwrap();
        assert_eq!(
            p.freed,
            vec![open_stateid(1)],
            "the revoked open stateid was freed"
        );
        assert_eq!(p.opens, 2, "re-opened");
    }
    assert_eq!(c.stats().reopened_opens, 1);
    // The next request uses the new open stateid; the flag is gone, nothing re-triggers.
    c.close(&f).await.unwrap();
    assert_eq!(peer.lock().unwrap().closed, vec![open_stateid(2)]);
    assert_eq!(sink.0.load(std::sync::atomic::Ordering::SeqCst), 1);
}
