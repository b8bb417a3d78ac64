//! Host-side wire tests of the MDS's bounds on what a client can make it hold: exact
//! COMPOUNDs over a raw TCP connection.

use pnfs_mds::nfs::{MAX_CLIENT_RECORDS, MAX_LOCK_RANGES_PER_STATEID, MAX_SESSIONS_PER_CLIENT};
use pnfs_mds::out_queue::MAX_QUEUED_REPLY_BYTES;
use pnfs_proto::nfs4::*;
use pnfs_proto::rpc::{self, CallBody, RpcMsg};
use pnfs_proto::xdr::{from_bytes, to_bytes, Decoder, Encoder, XdrEncode};
use tokio::io::AsyncWriteExt;

mod common;
use common::*;

/// Bytes of each pipelined READ (the test session's replies are at most 1 MiB).
const READ_BYTES: u32 = 512 * 1024;
/// Pipelined READs: 48 MiB of replies, far more than the bound plus what the loopback
/// socket buffers can take while the client does not read.
const PIPELINED_READS: u32 = 96;

/// A client that pipelines READs and reads no reply makes the server stop reading its
/// requests once `MAX_QUEUED_REPLY_BYTES` are queued: the connection's queue never holds
/// more than the bound plus one reply, and every reply arrives, in order and whole, once the
/// client reads.
#[tokio::test]
async fn replies_a_client_does_not_read_are_bounded() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"pipeliner").await;
    let data: Vec<u8> = (0..READ_BYTES).map(|i| (i % 251) as u8).collect();
    let r = c
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            open_create(cid, "f"),
            NfsArgOp::Write(WriteArgs {
                stateid: Stateid::CURRENT,
                offset: 0,
                stable: StableHow::FileSync,
                data: data.clone(),
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "write f: {r:?}");

    // All the READs go out before any reply is read.
    let first_xid = c.xid + 1;
    let mut calls = Encoder::new();
    for i in 0..PIPELINED_READS {
        let ops = vec![
            seq(sess, 2 + i, 0),
            NfsArgOp::Putrootfh,
            lookup("f"),
            NfsArgOp::Read(ReadArgs {
                stateid: Stateid::ANONYMOUS,
                offset: 0,
                count: READ_BYTES,
            }),
        ];
        let mark = rpc::begin_record(&mut calls);
        RpcMsg::call(
            first_xid + i,
            CallBody::new(rpc::NFS_PROGRAM, 4, 1, c.cred.clone()),
        )
        .encode(&mut calls);
        calls.put_opaque_fixed(&to_bytes(&CompoundArgs::new("", ops)));
        rpc::finish_record(&mut calls, mark).unwrap();
    }
    c.s.write_all(calls.as_slice()).await.unwrap();

    for i in 0..PIPELINED_READS {
        let rec = c.read_record().await.expect("a reply");
        let mut d = Decoder::new(&rec);
        assert_eq!(d.u32().unwrap(), first_xid + i, "replies in order");
        assert_eq!(d.u32().unwrap(), 1, "a reply");
        assert_eq!(d.u32().unwrap(), 0, "accepted");
        d.u32().unwrap();
        d.opaque("verf", 400).unwrap();
        assert_eq!(d.u32().unwrap(), 0, "SUCCESS");
        let r: CompoundRes = from_bytes(d.rest()).expect("a COMPOUND4res");
        match r.resarray.get(3) {
            Some(NfsResOp::Read(Ok(rd))) => assert!(rd.data == data, "READ {i}: the data"),
            other => panic!("READ {i}: {other:?}"),
        }
    }
    let peak = srv.mds.peak_queued_reply_bytes();
    let one_reply = READ_BYTES as usize + 4096;
    assert!(
        peak <= MAX_QUEUED_REPLY_BYTES + one_reply,
        "{peak} bytes were queued on one connection"
    );
    assert!(peak >= READ_BYTES as usize, "the peak is counted: {peak}");
    srv.stop().await;
}

/// EXCHANGE_ID of a new owner past `MAX_CLIENT_RECORDS` records is DELAY (unconfirmed
/// records expire after a lease, making room); an owner that already has a record still
/// gets it.
#[tokio::test]
async fn client_records_are_bounded() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    for i in 0..MAX_CLIENT_RECORDS {
        let owner = format!("owner-{i}");
        exchange_id(&mut c, owner.as_bytes(), 1, 0)
            .await
            .unwrap_or_else(|e| panic!("record {i}: {e:?}"));
    }
    let r = exchange_id(&mut c, b"one-too-many", 1, 0).await;
    assert_eq!(r.err(), Some(NfsStat::DELAY), "past the bound");
    // The same owner again (case 4: its unconfirmed record is replaced) fits.
    exchange_id(&mut c, b"owner-7", 2, 0)
        .await
        .expect("a known owner's record is replaced");
    srv.stop().await;
}

/// CREATE_SESSION past `MAX_SESSIONS_PER_CLIENT` sessions of one client is NOSPC; a
/// retransmission of the last one still gets its cached reply.
#[tokio::test]
async fn sessions_of_one_client_are_bounded() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let x = exchange_id(&mut c, b"many-sessions", 1, 0).await.unwrap();
    let mut seq = x.sequenceid;
    let mut last = None;
    for i in 0..MAX_SESSIONS_PER_CLIENT {
        last = Some(
            create_session(&mut c, x.clientid, seq)
                .await
                .unwrap_or_else(|e| panic!("session {i}: {e:?}")),
        );
        seq += 1;
    }
    let r = create_session(&mut c, x.clientid, seq).await;
    assert_eq!(r.err(), Some(NfsStat::NOSPC), "past the bound");
    let again = create_session(&mut c, x.clientid, seq - 1).await;
    assert_eq!(again.ok(), last, "the replay of the last CREATE_SESSION");
    srv.stop().await;
}

/// One lock stateid holds at most `MAX_LOCK_RANGES_PER_STATEID` byte ranges: a LOCK that
/// would add one more, and a LOCKU that would split one more, are LOCK_RANGE and change
/// nothing.
#[tokio::test]
async fn lock_ranges_of_one_stateid_are_bounded() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"many-locks").await;
    let mut q = 0;
    let open = match on_file(&mut c, sess, &mut q, "", open_create(cid, "f")).await {
        NfsResOp::Open(Ok(o)) => o.stateid,
        other => panic!("OPEN: {other:?}"),
    };
    let lock_owner = StateOwner {
        clientid: cid,
        owner: b"lo".to_vec(),
    };
    // Ranges at even offsets: none touches another.
    let at = |i: usize| 2 * i as u64;
    let first = lock_new(LockType::Write, at(0), 1, open, lock_owner);
    let mut lock = match on_file(&mut c, sess, &mut q, "f", first).await {
        NfsResOp::Lock(LockRes::Ok(s)) => s,
        other => panic!("LOCK: {other:?}"),
    };
    for i in 1..MAX_LOCK_RANGES_PER_STATEID {
        let op = lock_more(LockType::Write, at(i), 1, lock);
        lock = match on_file(&mut c, sess, &mut q, "f", op).await {
            NfsResOp::Lock(LockRes::Ok(s)) => s,
            other => panic!("LOCK {i}: {other:?}"),
        };
    }
    let over = lock_more(LockType::Write, at(MAX_LOCK_RANGES_PER_STATEID), 1, lock);
    let r = on_file(&mut c, sess, &mut q, "f", over).await;
    assert!(
        matches!(r, NfsResOp::Lock(LockRes::Error(NfsStat::LOCK_RANGE))),
        "one range too many: {r:?}"
    );
    // Unlocking a whole range makes room; splitting one in two does not fit again.
    let r = on_file(&mut c, sess, &mut q, "f", locku(at(0), 1, lock)).await;
    let NfsResOp::Locku(Ok(lock)) = r else {
        panic!("LOCKU: {r:?}");
    };
    let far = at(2 * MAX_LOCK_RANGES_PER_STATEID);
    let wide = lock_more(LockType::Write, far, 3, lock);
    let lock = match on_file(&mut c, sess, &mut q, "f", wide).await {
        NfsResOp::Lock(LockRes::Ok(s)) => s,
        other => panic!("LOCK of 3 bytes: {other:?}"),
    };
    let r = on_file(&mut c, sess, &mut q, "f", locku(far + 1, 1, lock)).await;
    assert!(
        matches!(r, NfsResOp::Locku(Err(NfsStat::LOCK_RANGE))),
        "a split past the bound: {r:?}"
    );
    // Nothing changed: the whole 3-byte range is still held.
    let other = StateOwner {
        clientid: cid,
        owner: b"other".to_vec(),
    };
    let r = on_file(
        &mut c,
        sess,
        &mut q,
        "f",
        lockt(LockType::Write, far + 1, 1, other),
    )
    .await;
    assert!(
        matches!(r, NfsResOp::Lockt(LocktRes::Denied(_))),
        "the middle byte is still locked: {r:?}"
    );
    srv.stop().await;
}
