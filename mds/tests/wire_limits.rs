//! Host-side wire tests of the MDS's bounds on what a client can make it hold: exact
//! COMPOUNDs over a raw TCP connection.

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
