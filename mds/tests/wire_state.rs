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

fn open_stateid(r: NfsResOp) -> Stateid {
    match r {
        NfsResOp::Open(Ok(o)) => o.stateid,
        other => panic!("OPEN: {other:?}"),
    }
}

fn lock_stateid(r: NfsResOp) -> Stateid {
    match r {
        NfsResOp::Lock(LockRes::Ok(s)) => s,
        other => panic!("LOCK: {other:?}"),
    }
}

/// A lock-owner of `clientid` named `name`.
fn owner(clientid: ClientId, name: &[u8]) -> StateOwner {
    StateOwner {
        clientid,
        owner: name.to_vec(),
    }
}

/// Lease of the lease-expiry tests.
const SHORT_LEASE_S: u64 = 2;
/// How long a waiter polls for a lock before the test fails.
const LOCK_WAIT_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two polls of a waiting lock (what a client's retry does).
const LOCK_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// RFC 8881 §9.6, §18.10.3: a blocking lock (WRITEW_LT) on a held range is DENIED (no
/// CB_NOTIFY_LOCK is promised: OPEN does not set OPEN4_RESULT_MAY_NOTIFY_LOCK), and the same
/// request polled again is granted once the holder unlocks. §8.3, §9.8: when the holder's
/// client stops renewing its lease, its locks are released at the lease's expiry — not before —
/// and a polling waiter of another client gets the range.
#[tokio::test]
async fn blocked_lock_is_granted_after_unlock_and_after_the_holders_lease_expires() {
    let lease = SHORT_LEASE_S.to_string();
    let srv = start_with(
        None,
        &["--lease-seconds", &lease, "--recall-timeout-seconds", "600"],
    )
    .await;
    let mut a = Client::connect(srv.addr).await;
    let mut b = Client::connect(srv.addr).await;
    let (cid_a, sa) = session(&mut a, b"wire-lockwait-a").await;
    let (cid_b, sb) = session(&mut b, b"wire-lockwait-b").await;
    let (mut qa, mut qb) = (0, 0);
    let r = on_file(&mut a, sa, &mut qa, "", open_create(cid_a, "f")).await;
    let NfsResOp::Open(Ok(open_a)) = &r else {
        panic!("OPEN: {r:?}");
    };
    assert_eq!(
        open_a.rflags & OPEN4_RESULT_MAY_NOTIFY_LOCK,
        0,
        "no CB_NOTIFY_LOCK is sent, so none may be promised"
    );
    let oa = open_a.stateid;
    let ob = open_stateid(on_file(&mut b, sb, &mut qb, "", open_create(cid_b, "f")).await);
    let la = lock_stateid(
        on_file(
            &mut a,
            sa,
            &mut qa,
            "f",
            lock_new(LockType::Write, 0, 100, oa, owner(cid_a, b"la")),
        )
        .await,
    );
    let wait_b = |open| lock_new(LockType::WriteW, 50, 10, open, owner(cid_b, b"lb"));
    let r = on_file(&mut b, sb, &mut qb, "f", wait_b(ob)).await;
    assert!(
        matches!(r, NfsResOp::Lock(LockRes::Denied(_))),
        "a blocking lock on a held range: {r:?}"
    );
    let r = on_file(&mut a, sa, &mut qa, "f", locku(0, 100, la)).await;
    assert!(matches!(r, NfsResOp::Locku(Ok(_))), "LOCKU: {r:?}");
    let lb = lock_stateid(on_file(&mut b, sb, &mut qb, "f", wait_b(ob)).await);
    let r = on_file(&mut b, sb, &mut qb, "f", locku(50, 10, lb)).await;
    assert!(matches!(r, NfsResOp::Locku(Ok(_))), "LOCKU: {r:?}");
    // A locks again and then falls silent (its last renewal is this LOCK).
    let r = on_file(
        &mut a,
        sa,
        &mut qa,
        "f",
        lock_new(LockType::Write, 0, 100, oa, owner(cid_a, b"la")),
    )
    .await;
    lock_stateid(r);
    let silent_since = std::time::Instant::now();
    let mut denied = 0;
    loop {
        let r = on_file(
            &mut b,
            sb,
            &mut qb,
            "f",
            lock_new(LockType::WriteW, 50, 10, ob, owner(cid_b, b"lb")),
        )
        .await;
        match r {
            NfsResOp::Lock(LockRes::Ok(_)) => break,
            NfsResOp::Lock(LockRes::Denied(d)) => {
                assert_eq!(d.owner, owner(cid_a, b"la"), "the holder");
                denied += 1;
            }
            other => panic!("LOCK: {other:?}"),
        }
        assert!(
            silent_since.elapsed() < LOCK_WAIT_DEADLINE,
            "A's lock outlived its lease"
        );
        tokio::time::sleep(LOCK_POLL_INTERVAL).await;
    }
    let waited = silent_since.elapsed();
    assert!(denied > 0, "A's lock must hold while its lease lasts");
    assert!(
        waited >= Duration::from_secs(SHORT_LEASE_S),
        "released after {waited:?}, before A's {SHORT_LEASE_S} s lease ran out"
    );
    // A's client is gone with its state.
    qa += 1;
    let r = a.compound(vec![seq(sa, qa, 0)]).await;
    assert_eq!(r.status, NfsStat::BADSESSION, "A's session: {r:?}");
    srv.stop().await;
}
