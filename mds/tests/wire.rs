//! Host-side tests of the MDS over a raw TCP connection: record limits, garbage, the slot
//! table, that a request that fails to decode changes nothing, and lease expiry. Requests
//! are built and replies read with `pnfs_proto`'s COMPOUND types.

use std::sync::Arc;
use std::time::Duration;

use pnfs_proto::nfs4::attr::{Bitmap4, Fattr, Fattr4, FATTR4_MODE, FATTR4_TYPE};
use pnfs_proto::nfs4::*;
use pnfs_proto::rpc::{self, CallBody, OpaqueAuth, RpcMsg};
use pnfs_proto::xdr::{from_bytes, to_bytes, Decoder, Encoder, XdrEncode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
}

async fn start(dir: Option<std::path::PathBuf>) -> Server {
    start_with(dir, &[]).await
}

/// Starts a server on a fresh (or the given) store with extra command-line flags.
async fn start_with(dir: Option<std::path::PathBuf>, flags: &[&str]) -> Server {
    let dir = dir.unwrap_or_else(|| {
        let d = std::env::temp_dir().join(format!(
            "pnfs-mds-wire-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::File::create(d.join("vol"))
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        d
    });
    let state = dir.join("state");
    let vol = dir.join("vol");
    let mut argv = vec![
        "pnfs-mds",
        "--state",
        state.to_str().unwrap(),
        "--volume",
        vol.to_str().unwrap(),
    ];
    argv.extend_from_slice(flags);
    let args = <pnfs_mds::MdsArgs as clap::Parser>::parse_from(argv);
    let mds = pnfs_mds::Config::from_args(&args).unwrap().open().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pnfs_mds::run(listener, Arc::clone(&mds), async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
        dir,
    }
}

impl Server {
    async fn stop(mut self) -> std::path::PathBuf {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
        self.dir
    }
}

struct Client {
    s: TcpStream,
    xid: u32,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self {
            s: TcpStream::connect(addr).await.unwrap(),
            xid: 1,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Sends one NFS call with `args` and returns the reply body after the RPC header, or the
    /// accept_stat when it is not SUCCESS.
    async fn call(&mut self, proc_num: u32, args: &[u8]) -> Result<Vec<u8>, u32> {
        self.xid += 1;
        let mut enc = Encoder::new();
        let mark = rpc::begin_record(&mut enc);
        RpcMsg::call(
            self.xid,
            CallBody::new(rpc::NFS_PROGRAM, 4, proc_num, OpaqueAuth::None),
        )
        .encode(&mut enc);
        enc.put_opaque_fixed(args);
        rpc::finish_record(&mut enc, mark).unwrap();
        self.s.write_all(enc.as_slice()).await.unwrap();
        let rec = self.read_record().await.expect("a reply");
        let mut d = Decoder::new(&rec);
        assert_eq!(d.u32().unwrap(), self.xid);
        assert_eq!(d.u32().unwrap(), 1); // REPLY
        assert_eq!(d.u32().unwrap(), 0); // MSG_ACCEPTED
        d.u32().unwrap();
        d.opaque("verf", 400).unwrap();
        match d.u32().unwrap() {
            0 => Ok(d.rest().to_vec()),
            s => Err(s),
        }
    }

    async fn read_record(&mut self) -> Option<Vec<u8>> {
        let mut mark = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.s.read_exact(&mut mark))
            .await
            .ok()?
            .ok()?;
        let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
        let mut b = vec![0u8; len];
        self.s.read_exact(&mut b).await.ok()?;
        Some(b)
    }

    /// Sends a COMPOUND and decodes the reply.
    async fn compound(&mut self, ops: Vec<NfsArgOp>) -> CompoundRes {
        let r = self
            .call(1, &to_bytes(&CompoundArgs::new("", ops)))
            .await
            .expect("accepted");
        from_bytes(&r).expect("a COMPOUND4res")
    }
}

fn seq(sess: SessionId, sequenceid: u32, slotid: u32) -> NfsArgOp {
    NfsArgOp::Sequence(SequenceArgs {
        sessionid: sess,
        sequenceid,
        slotid,
        highest_slotid: slotid,
        cachethis: false,
    })
}

fn lookup(name: &str) -> NfsArgOp {
    NfsArgOp::Lookup(LookupArgs {
        objname: name.into(),
    })
}

fn mkdir(name: &str, attrs: Fattr4) -> NfsArgOp {
    NfsArgOp::Create(CreateArgs {
        objtype: CreateType::Dir,
        objname: name.into(),
        createattrs: attrs,
    })
}

/// EXCHANGE_ID + CREATE_SESSION (no back channel); returns the client and session ids.
async fn session(c: &mut Client, owner: &[u8]) -> (ClientId, SessionId) {
    let r = c
        .compound(vec![NfsArgOp::ExchangeId(ExchangeIdArgs {
            clientowner: ClientOwner {
                verifier: Verifier([1; 8]),
                ownerid: owner.to_vec(),
            },
            ..ExchangeIdArgs::default()
        })])
        .await;
    let Some(NfsResOp::ExchangeId(Ok(x))) = r.resarray.first() else {
        panic!("EXCHANGE_ID: {r:?}");
    };
    assert_ne!(x.flags & EXCHGID4_FLAG_USE_PNFS_MDS, 0, "USE_PNFS_MDS");
    let chan = ChannelAttrs {
        headerpadsize: 0,
        maxrequestsize: 1 << 20,
        maxresponsesize: 1 << 20,
        maxresponsesize_cached: 4096,
        maxoperations: 16,
        maxrequests: 4,
        rdma_ird: None,
    };
    let clientid = x.clientid;
    let r = c
        .compound(vec![NfsArgOp::CreateSession(CreateSessionArgs {
            clientid,
            sequence: x.sequenceid,
            flags: 0,
            fore_chan_attrs: chan,
            back_chan_attrs: chan,
            cb_program: 0x4000_0000,
            sec_parms: vec![CallbackSecParms::None],
        })])
        .await;
    let Some(NfsResOp::CreateSession(Ok(s))) = r.resarray.first() else {
        panic!("CREATE_SESSION: {r:?}");
    };
    assert_eq!(s.fore_chan_attrs.maxrequests, 4);
    (clientid, s.sessionid)
}

#[tokio::test]
async fn oversized_record_closes_only_that_connection_and_garbage_gets_garbage_args() {
    let srv = start(None).await;
    let mut bad = Client::connect(srv.addr).await;
    let mut good = Client::connect(srv.addr).await;
    // A 2 GiB record: refused from its mark, the connection is closed.
    bad.send_raw(&0xffff_ffffu32.to_be_bytes()).await;
    assert!(
        bad.read_record().await.is_none(),
        "oversized record must close the connection"
    );
    // Garbage COMPOUND arguments in a well-formed record: GARBAGE_ARGS (4), connection stays.
    assert_eq!(good.call(1, &[0, 0, 0, 200, 1, 2]).await, Err(4));
    assert_eq!(good.call(0, &[]).await, Ok(vec![]));
    let (_, sess) = session(&mut good, b"wire-test-1").await;
    let r = good
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            NfsArgOp::Getattr(GetattrArgs {
                attr_request: Bitmap4::from_bits(&[FATTR4_TYPE]),
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK);
    let Some(NfsResOp::Getattr(Ok(g))) = r.resarray.get(2) else {
        panic!("GETATTR: {r:?}");
    };
    let attrs = Fattr::from_fattr4(&g.obj_attributes).unwrap();
    assert_eq!(attrs.file_type, Some(NF4DIR));
    srv.stop().await;
}

#[tokio::test]
async fn slot_table_replays_and_rejects_misordered() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (_, sess) = session(&mut c, b"wire-test-2").await;
    let req = to_bytes(&CompoundArgs::new(
        "",
        vec![seq(sess, 1, 1), NfsArgOp::Getfh],
    ));
    let first = c.call(1, &req).await.unwrap();
    // GETFH without a current file handle fails after SEQUENCE: the failure is cached too.
    let res: CompoundRes = from_bytes(&first).unwrap();
    assert_eq!(res.status, NfsStat::NOFILEHANDLE);
    // The same seqid again is a replay: the cached reply, byte for byte.
    let again = c.call(1, &req).await.unwrap();
    assert_eq!(first, again);
    for (sess, seqid, slot, want) in [
        (sess, 5, 1, NfsStat::SEQ_MISORDERED),
        (sess, 1, 9999, NfsStat::BADSLOT),
        (SessionId([7; 16]), 1, 0, NfsStat::BADSESSION),
    ] {
        let r = c.compound(vec![seq(sess, seqid, slot)]).await;
        assert_eq!(r.status, want);
    }
    srv.stop().await;
}

#[tokio::test]
async fn undecodable_compound_changes_nothing_even_after_restart() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (_, sess) = session(&mut c, b"wire-test-3").await;
    // SEQUENCE, PUTROOTFH, CREATE "x" followed by a LOOKUP cut after its op number: nothing
    // may run.
    let mut cut = to_bytes(&CompoundArgs::new(
        "",
        vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            mkdir("x", Fattr4::default()),
            lookup("z"),
        ],
    ));
    cut.truncate(cut.len() - 8);
    assert_eq!(c.call(1, &cut).await, Err(4));
    // A mode attribute without its value: the attributes are decoded before anything runs.
    let no_value = Fattr4 {
        attrmask: Bitmap4::from_bits(&[FATTR4_MODE]),
        attr_vals: Vec::new(),
    };
    let bad_attr = CompoundArgs::new(
        "",
        vec![seq(sess, 1, 0), NfsArgOp::Putrootfh, mkdir("w", no_value)],
    );
    assert_eq!(c.call(1, &to_bytes(&bad_attr)).await, Err(4));
    // The same without the garbage creates "y".
    let mode = Fattr {
        mode: Some(0o755),
        ..Fattr::default()
    };
    let r = c
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            mkdir("y", mode.to_fattr4()),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK);
    let dir = srv.stop().await;
    // Restart on the same store: "y" exists, "x" and "w" do not.
    let srv = start(Some(dir)).await;
    let mut c = Client::connect(srv.addr).await;
    let (_, sess) = session(&mut c, b"wire-test-3b").await;
    for (i, (name, want)) in [
        ("y", NfsStat::OK),
        ("x", NfsStat::NOENT),
        ("w", NfsStat::NOENT),
    ]
    .into_iter()
    .enumerate()
    {
        let seqid = u32::try_from(i).unwrap() + 1;
        let r = c
            .compound(vec![seq(sess, seqid, 0), NfsArgOp::Putrootfh, lookup(name)])
            .await;
        assert_eq!(r.status, want, "LOOKUP {name}");
    }
    srv.stop().await;
}

/// Opens (creating) `name` in the root and takes an RW layout on its first block; returns
/// the LAYOUTGET result.
async fn open_and_layoutget(
    c: &mut Client,
    clientid: ClientId,
    sess: SessionId,
    seqid: u32,
    name: &str,
) -> CompoundRes {
    c.compound(vec![
        seq(sess, seqid, 0),
        NfsArgOp::Putrootfh,
        NfsArgOp::Open(OpenArgs {
            seqid: 0,
            share_access: OPEN4_SHARE_ACCESS_BOTH,
            share_deny: OPEN4_SHARE_DENY_NONE,
            owner: StateOwner {
                clientid,
                owner: b"owner".to_vec(),
            },
            openhow: OpenFlag::Create(CreateHow::Unchecked(Fattr4::default())),
            claim: OpenClaim::Null(name.into()),
        }),
        NfsArgOp::Layoutget(LayoutgetArgs {
            signal_layout_avail: false,
            layout_type: LayoutType::BlockVolume,
            iomode: LayoutIoMode::ReadWrite,
            offset: 0,
            length: 4096,
            minlength: 4096,
            stateid: Stateid::CURRENT,
            maxcount: 4096,
        }),
    ])
    .await
}

/// [`open_and_layoutget`] on `name` until the layout is granted (another client's
/// conflicting layout goes away meanwhile); returns how many RECALLCONFLICTs it got first.
/// `seqid` is the session's next sequence id and is advanced.
async fn layoutget_until_granted(
    c: &mut Client,
    clientid: ClientId,
    sess: SessionId,
    seqid: &mut u32,
    name: &str,
) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut conflicts = 0;
    loop {
        let r = open_and_layoutget(c, clientid, sess, *seqid, name).await;
        *seqid += 1;
        match r.status {
            NfsStat::OK => return conflicts,
            NfsStat::RECALLCONFLICT => conflicts += 1,
            other => panic!("LAYOUTGET {name}: {other} ({r:?})"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the conflicting layout on {name} was never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The layout stateid of an [`open_and_layoutget`] reply.
fn layout_stateid(r: &CompoundRes) -> Stateid {
    match r.resarray.get(3) {
        Some(NfsResOp::Layoutget(LayoutgetRes::Ok(l))) => l.stateid,
        _ => panic!("LAYOUTGET: {r:?}"),
    }
}

/// SEQUENCE alone; returns its status flags.
async fn sequence_flags(c: &mut Client, sess: SessionId, seqid: u32) -> u32 {
    let r = c.compound(vec![seq(sess, seqid, 0)]).await;
    match r.resarray.first() {
        Some(NfsResOp::Sequence(Ok(s))) => s.status_flags,
        _ => panic!("SEQUENCE: {r:?}"),
    }
}

/// A layout revoked at the recall timeout is reported to its holder (RFC 8881 §18.46.3):
/// SEQUENCE carries RECALLABLE_STATE_REVOKED, TEST_STATEID says DELEG_REVOKED, and the flag
/// stays until every revoked layout is acknowledged: by FREE_STATEID, or (what Linux does,
/// never freeing layout stateids) by a new LAYOUTGET of the file on an open stateid.
#[tokio::test]
async fn revoked_layout_is_reported_until_freed_or_replaced() {
    let srv = start_with(
        None,
        &["--lease-seconds", "600", "--recall-timeout-seconds", "1"],
    )
    .await;
    let mut c1 = Client::connect(srv.addr).await;
    let mut c2 = Client::connect(srv.addr).await;
    // Client 1 has no back channel, so it never answers the recalls: both layouts are revoked.
    let (cid1, s1) = session(&mut c1, b"wire-revoke-1").await;
    let (cid2, s2) = session(&mut c2, b"wire-revoke-2").await;
    let f = open_and_layoutget(&mut c1, cid1, s1, 1, "f").await;
    let g = open_and_layoutget(&mut c1, cid1, s1, 2, "g").await;
    let (lf, lg) = (layout_stateid(&f), layout_stateid(&g));
    assert_eq!(
        sequence_flags(&mut c1, s1, 3).await & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "nothing revoked yet"
    );
    let mut seq2 = 1;
    for name in ["f", "g"] {
        let conflicts = layoutget_until_granted(&mut c2, cid2, s2, &mut seq2, name).await;
        assert!(
            conflicts > 0,
            "client 1's layout of {name} must conflict first"
        );
    }
    let test = |sids: Vec<Stateid>, seqid| {
        vec![
            seq(s1, seqid, 0),
            NfsArgOp::TestStateid(TestStateidArgs { stateids: sids }),
        ]
    };
    let r = c1.compound(test(vec![lf, lg], 4)).await;
    let Some(NfsResOp::Sequence(Ok(sq))) = r.resarray.first() else {
        panic!("SEQUENCE: {r:?}");
    };
    assert_ne!(
        sq.status_flags & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "the holder of a revoked layout is told"
    );
    let Some(NfsResOp::TestStateid(Ok(t))) = r.resarray.get(1) else {
        panic!("TEST_STATEID: {r:?}");
    };
    assert_eq!(t.status_codes, vec![NfsStat::DELEG_REVOKED; 2]);
    // FREE_STATEID of one: the other still keeps the flag up.
    let r = c1
        .compound(vec![seq(s1, 5, 0), NfsArgOp::FreeStateid(lf)])
        .await;
    assert_eq!(r.status, NfsStat::OK, "FREE_STATEID: {r:?}");
    assert_ne!(
        sequence_flags(&mut c1, s1, 6).await & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "g's layout is still revoked and not acknowledged"
    );
    // A new LAYOUTGET of g on the open stateid acknowledges it (client 2 holds g now, so
    // this one is told to wait, which does not matter here).
    let r = open_and_layoutget(&mut c1, cid1, s1, 7, "g").await;
    assert!(
        matches!(r.status, NfsStat::OK | NfsStat::RECALLCONFLICT),
        "LAYOUTGET g again: {r:?}"
    );
    assert_eq!(
        sequence_flags(&mut c1, s1, 8).await & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "every revoked layout was acknowledged"
    );
    let r = c1.compound(test(vec![lf], 9)).await;
    let Some(NfsResOp::TestStateid(Ok(t))) = r.resarray.get(1) else {
        panic!("TEST_STATEID: {r:?}");
    };
    assert_eq!(t.status_codes, vec![NfsStat::BAD_STATEID], "freed: unknown");
    srv.stop().await;
}

/// A client that stops renewing loses its session, opens and layouts once the lease has
/// expired, and another client then gets the layout it held — long before the recall timeout
/// would have revoked it.
#[tokio::test]
async fn expired_lease_drops_the_clients_state_and_frees_its_layouts() {
    let srv = start_with(
        None,
        &["--lease-seconds", "2", "--recall-timeout-seconds", "600"],
    )
    .await;
    let mut c1 = Client::connect(srv.addr).await;
    let mut c2 = Client::connect(srv.addr).await;
    let (cid1, s1) = session(&mut c1, b"wire-lease-1").await;
    let (cid2, s2) = session(&mut c2, b"wire-lease-2").await;
    let r = open_and_layoutget(&mut c1, cid1, s1, 1, "f").await;
    assert_eq!(r.status, NfsStat::OK, "client 1 open + LAYOUTGET: {r:?}");
    let Some(NfsResOp::Open(Ok(open1))) = r.resarray.get(2) else {
        panic!("OPEN: {r:?}");
    };
    // Client 2 asks for the same range and keeps its own lease alive by asking: it is told
    // to wait (RECALLCONFLICT) while client 1's lease lasts, then gets the layout.
    let mut seqid = 1;
    let conflicts = layoutget_until_granted(&mut c2, cid2, s2, &mut seqid, "f").await;
    assert!(
        conflicts > 0,
        "client 1's layout must conflict while its lease lasts"
    );
    // Client 1's session and open state are gone.
    let r = c1.compound(vec![seq(s1, 2, 0)]).await;
    assert_eq!(r.status, NfsStat::BADSESSION);
    let r = c2
        .compound(vec![
            seq(s2, seqid, 0),
            NfsArgOp::TestStateid(TestStateidArgs {
                stateids: vec![open1.stateid],
            }),
        ])
        .await;
    let Some(NfsResOp::TestStateid(Ok(t))) = r.resarray.get(1) else {
        panic!("TEST_STATEID: {r:?}");
    };
    assert_eq!(t.status_codes, vec![NfsStat::BAD_STATEID]);
    srv.stop().await;
}

/// GETDEVICEINFO grants the CHANGE/DELETE notifications the client asks for (as nfsd does):
/// Linux re-resolves a device whose reply grants fewer (a blkmapd upcall per new layout).
#[tokio::test]
async fn getdeviceinfo_grants_the_asked_change_and_delete_notifications() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (_, sess) = session(&mut c, b"wire-devinfo").await;
    let r = c
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Getdevicelist(GetdevicelistArgs {
                layout_type: LayoutType::BlockVolume,
                maxdevices: 16,
                cookie: 0,
                cookieverf: Verifier([0; 8]),
            }),
        ])
        .await;
    let Some(NfsResOp::Getdevicelist(Ok(list))) = r.resarray.get(1) else {
        panic!("GETDEVICELIST: {r:?}");
    };
    assert_eq!(list.deviceid_list.len(), 1, "one device");
    let device_id = list.deviceid_list[0];
    // Asked: CHANGE (bit 1), DELETE (bit 2) and an unknown bit 5; granted: CHANGE and DELETE.
    // Asked nothing: granted nothing.
    let cases: [(Vec<u32>, Vec<u32>); 2] = [(vec![0b10_0110], vec![0b110]), (vec![], vec![])];
    for (i, (asked, granted)) in cases.into_iter().enumerate() {
        let r = c
            .compound(vec![
                seq(sess, 2 + u32::try_from(i).unwrap(), 0),
                NfsArgOp::Getdeviceinfo(GetdeviceinfoArgs {
                    device_id,
                    layout_type: LayoutType::BlockVolume,
                    maxcount: 65536,
                    notify_types: Bitmap4(asked.clone()),
                }),
            ])
            .await;
        let Some(NfsResOp::Getdeviceinfo(GetdeviceinfoRes::Ok(info))) = r.resarray.get(1) else {
            panic!("GETDEVICEINFO: {r:?}");
        };
        assert_eq!(info.notification.0, granted, "asked {asked:?}");
    }
    srv.stop().await;
}

/// A stateid of an earlier boot is BAD_STATEID, not STALE_STATEID (moot in NFSv4.1, RFC 8881
/// §15.1.16.7; nfsd does the same for session clients). Linux answers STALE_STATEID to a
/// LAYOUTCOMMIT it prepared before the restart with a lease check and the same LAYOUTCOMMIT
/// again, for ever: `close()` hung in the guest's kill-during-writes step.
#[tokio::test]
async fn stateids_of_an_earlier_boot_are_bad_not_stale() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"wire-restart").await;
    let r = open_and_layoutget(&mut c, cid, sess, 1, "f").await;
    assert_eq!(r.status, NfsStat::OK, "{r:?}");
    let old_layout = layout_stateid(&r);
    let dir = srv.stop().await;

    let srv = start(Some(dir)).await;
    let mut c = Client::connect(srv.addr).await;
    let (_, sess) = session(&mut c, b"wire-restart").await;
    // The only client of the earlier boot is done reclaiming: the grace period ends.
    let r = c
        .compound(vec![seq(sess, 1, 0), NfsArgOp::ReclaimComplete(false)])
        .await;
    assert_eq!(r.status, NfsStat::OK, "{r:?}");
    let commit = LayoutcommitArgs {
        offset: 0,
        length: 4096,
        reclaim: false,
        stateid: old_layout,
        last_write_offset: Some(4095),
        time_modify: None,
        layoutupdate: LayoutUpdate {
            lou_type: LayoutType::BlockVolume,
            lou_body: to_bytes(&pnfs_proto::layout::block::BlockLayoutUpdate::default()),
        },
    };
    let r = c
        .compound(vec![
            seq(sess, 2, 0),
            NfsArgOp::Putrootfh,
            lookup("f"),
            NfsArgOp::Layoutcommit(commit),
        ])
        .await;
    assert_eq!(r.status, NfsStat::BAD_STATEID, "{r:?}");
    let r = c
        .compound(vec![
            seq(sess, 3, 0),
            NfsArgOp::TestStateid(TestStateidArgs {
                stateids: vec![old_layout],
            }),
        ])
        .await;
    match r.resarray.get(1) {
        Some(NfsResOp::TestStateid(Ok(t))) => {
            assert_eq!(t.status_codes, vec![NfsStat::BAD_STATEID]);
        }
        _ => panic!("TEST_STATEID: {r:?}"),
    }
    srv.stop().await;
}
