//! Host-side wire tests of the MDS's session reply cache limits, byte-range lock waiters and
//! lease expiry, and delegations: exact COMPOUNDs over a raw TCP connection, exact statuses.

use std::time::Duration;

use pnfs_proto::nfs4::*;

mod common;
use common::*;

/// SEQUENCE with sa_cachethis = `cachethis`.
fn seq_cached(sess: SessionId, sequenceid: u32, cachethis: bool) -> NfsArgOp {
    NfsArgOp::Sequence(SequenceArgs {
        sessionid: sess,
        sequenceid,
        slotid: 0,
        highest_slotid: 0,
        cachethis,
    })
}

/// RFC 8881 §2.10.6.4, §18.46.3, §15.1.3: with sa_cachethis set, a reply larger than the
/// session's ca_maxresponsesize_cached fails the operation that made it so with
/// REP_TOO_BIG_TO_CACHE (that shortened reply is the one replayed); the same request without
/// sa_cachethis, or with a reply that fits, is OK.
#[tokio::test]
async fn reply_over_maxresponsesize_cached_is_rep_too_big_to_cache_when_cachethis() {
    const CACHED_BYTES: u32 = 512;
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let x = exchange_id(&mut c, b"wire-cache", 1, 0).await.unwrap();
    let fore = ChannelAttrs {
        maxresponsesize_cached: CACHED_BYTES,
        ..CHAN
    };
    let sess = create_session_with(&mut c, x.clientid, x.sequenceid, 0, fore)
        .await
        .unwrap();
    let r = c
        .compound(vec![
            seq_cached(sess, 1, true),
            NfsArgOp::Putrootfh,
            open_create(x.clientid, "f"),
            NfsArgOp::Write(WriteArgs {
                stateid: Stateid::CURRENT,
                offset: 0,
                stable: StableHow::FileSync,
                data: vec![7; 1000],
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "a small cached reply: {r:?}");
    let read = |sequenceid, cachethis, count| {
        vec![
            seq_cached(sess, sequenceid, cachethis),
            NfsArgOp::Putrootfh,
            lookup("f"),
            NfsArgOp::Read(ReadArgs {
                stateid: Stateid::ANONYMOUS,
                offset: 0,
                count,
            }),
        ]
    };
    let r = c.compound(read(2, true, 100)).await;
    assert_eq!(r.status, NfsStat::OK, "a 100-byte READ fits: {r:?}");
    let r = c.compound(read(3, false, 1000)).await;
    assert_eq!(r.status, NfsStat::OK, "not to be cached: {r:?}");
    let r = c.compound(read(4, true, 1000)).await;
    assert_eq!(r.status, NfsStat::REP_TOO_BIG_TO_CACHE, "{r:?}");
    assert!(
        matches!(
            r.resarray.as_slice(),
            [
                NfsResOp::Sequence(Ok(_)),
                NfsResOp::Putrootfh(NfsStat::OK),
                NfsResOp::Lookup(NfsStat::OK),
                NfsResOp::Read(Err(NfsStat::REP_TOO_BIG_TO_CACHE))
            ]
        ),
        "on the READ: {r:?}"
    );
    // The retransmission gets the cached (shortened) reply.
    let again = c.compound(read(4, true, 1000)).await;
    assert_eq!(again, r, "the replay");
    srv.stop().await;
}
