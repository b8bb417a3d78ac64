//! Host-side wire tests of the MDS's session reply cache limits, byte-range lock waiters and
//! lease expiry, and delegations: exact COMPOUNDs over a raw TCP connection, exact statuses.

use std::time::Duration;

use pnfs_proto::nfs4::attr::Fattr;
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

// ---------------------------------------------------------------------------------------------
// Delegations
// ---------------------------------------------------------------------------------------------

/// EXCHANGE_ID + CREATE_SESSION with a back channel on `c`'s connection.
async fn session_with_back_channel(c: &mut Client, owner: &[u8]) -> (ClientId, SessionId) {
    let x = exchange_id(c, owner, 1, 0).await.expect("EXCHANGE_ID");
    let s = create_session_with(
        c,
        x.clientid,
        x.sequenceid,
        CREATE_SESSION4_FLAG_CONN_BACK_CHAN,
        CHAN,
    )
    .await
    .expect("CREATE_SESSION");
    (x.clientid, s)
}

/// Reads the next call the server sent on `c`'s connection: a CB_COMPOUND of CB_SEQUENCE +
/// CB_RECALL, answered with CB_RECALL `status`. Returns the recalled stateid and file handle.
async fn answer_cb_recall(c: &mut Client, status: NfsStat) -> (Stateid, Vec<u8>) {
    use pnfs_proto::nfs4::cb::{CbArgOp, CbCompoundArgs, CbCompoundRes, CbResOp, CbSequenceResOk};
    use pnfs_proto::rpc::{self, AcceptStat, MsgBody, ReplyBody, RpcMsg};
    use pnfs_proto::xdr::{from_bytes, to_bytes, Encoder, XdrEncode};
    let rec = c.read_record().await.expect("a callback from the server");
    let (msg, body) = rpc::decode_message(&rec).expect("an RPC message");
    let MsgBody::Call(call) = msg.body else {
        panic!("not a call: {msg:?}");
    };
    assert_eq!(call.proc_num, rpc::CB_COMPOUND, "{call:?}");
    let args: CbCompoundArgs = from_bytes(body).expect("CB_COMPOUND4args");
    let [CbArgOp::Sequence(s), CbArgOp::Recall(r)] = args.ops.as_slice() else {
        panic!("not CB_SEQUENCE + CB_RECALL: {:?}", args.ops);
    };
    assert!(
        !r.truncate,
        "a read delegation is recalled without truncation"
    );
    let res = CbCompoundRes::from_results(
        String::new(),
        vec![
            CbResOp::Sequence(Ok(CbSequenceResOk {
                sessionid: s.sessionid,
                sequenceid: s.sequenceid,
                slotid: s.slotid,
                highest_slotid: s.highest_slotid,
                target_highest_slotid: s.highest_slotid,
            })),
            CbResOp::Recall(status),
        ],
    );
    let mut enc = Encoder::new();
    let mark = rpc::begin_record(&mut enc);
    RpcMsg::reply(msg.xid, ReplyBody::accepted(AcceptStat::Success)).encode(&mut enc);
    enc.put_opaque_fixed(&to_bytes(&res));
    rpc::finish_record(&mut enc, mark).unwrap();
    c.send_raw(enc.as_slice()).await;
    (r.stateid, r.fh.0.clone())
}

/// OPEN of the existing `name` by open-owner `who` with share_access `access` (want bits
/// included), deny none, then GETFH; the OPEN result (or the failing status) and the handle.
async fn open_want(
    c: &mut Client,
    sess: SessionId,
    seqid: &mut u32,
    cid: ClientId,
    who: &[u8],
    name: &str,
    access: u32,
) -> (Result<OpenResOk, NfsStat>, Option<Vec<u8>>) {
    *seqid += 1;
    let r = c
        .compound(vec![
            seq(sess, *seqid, 0),
            NfsArgOp::Putrootfh,
            NfsArgOp::Open(OpenArgs {
                seqid: 0,
                share_access: access,
                share_deny: OPEN4_SHARE_DENY_NONE,
                owner: owner(cid, who),
                openhow: OpenFlag::NoCreate,
                claim: OpenClaim::Null(name.into()),
            }),
            NfsArgOp::Getfh,
        ])
        .await;
    let open = match r.resarray.get(2) {
        Some(NfsResOp::Open(o)) => o.clone(),
        _ => Err(r.status),
    };
    let fh = match r.resarray.get(3) {
        Some(NfsResOp::Getfh(Ok(fh))) => Some(fh.object.0.clone()),
        _ => None,
    };
    (open, fh)
}

/// The delegation an OPEN that must succeed returned.
fn delegation_of(open: &Result<OpenResOk, NfsStat>) -> OpenDelegation {
    open.as_ref().expect("OPEN").delegation.clone()
}

fn read_delegation(d: &OpenDelegation) -> Stateid {
    match d {
        OpenDelegation::Read(r) => r.stateid,
        other => panic!("no read delegation: {other:?}"),
    }
}

fn not_granted(why: u32) -> OpenDelegation {
    OpenDelegation::NoneExt(OpenNoneDelegation::Other(why))
}

/// Creates `name` in the root through `c` and closes it again.
async fn create_closed(
    c: &mut Client,
    sess: SessionId,
    seqid: &mut u32,
    cid: ClientId,
    name: &str,
) {
    let o = open_stateid(on_file(c, sess, seqid, "", open_create(cid, name)).await);
    let r = on_file(
        c,
        sess,
        seqid,
        name,
        NfsArgOp::Close(CloseArgs {
            seqid: 0,
            open_stateid: o,
        }),
    )
    .await;
    assert!(matches!(r, NfsResOp::Close(Ok(_))), "CLOSE: {r:?}");
}

/// RFC 8881 §10.4, §18.16.3: a read-only OPEN gets a read delegation when nobody writes the
/// file and the client has a callback path; none while another client has it open for
/// writing (NONE without a want, NONE_EXT/WND4_CONTENTION with WANT_READ_DELEG), none without
/// a back channel (WND4_RESOURCE); WANT_NO_DELEG → WND4_NOT_WANTED, WANT_CANCEL →
/// WND4_CANCELLED, WANT_WRITE_DELEG → WND4_WRITE_DELEG_NOT_SUPP_FTYPE; undefined want values
/// and share_access bits are INVAL. The delegation stateid is valid (TEST_STATEID) and not
/// freeable while held (FREE_STATEID → LOCKS_HELD).
#[tokio::test]
async fn read_delegation_is_granted_only_without_writers_and_with_a_back_channel() {
    let srv = start(None).await;
    let mut a = Client::connect(srv.addr).await;
    let mut w = Client::connect(srv.addr).await;
    let (cid_a, sa) = session_with_back_channel(&mut a, b"wire-deleg-a").await;
    let (cid_w, sw) = session(&mut w, b"wire-deleg-w").await;
    let (mut qa, mut qw) = (0, 0);
    let rd = OPEN4_SHARE_ACCESS_READ;
    // W writes f and keeps it open.
    let ow = open_stateid(on_file(&mut w, sw, &mut qw, "", open_create(cid_w, "f")).await);
    let (o, _) = open_want(&mut a, sa, &mut qa, cid_a, b"a1", "f", rd).await;
    assert_eq!(delegation_of(&o), OpenDelegation::None, "a writer exists");
    let (o, _) = open_want(
        &mut a,
        sa,
        &mut qa,
        cid_a,
        b"a1",
        "f",
        rd | OPEN4_SHARE_ACCESS_WANT_READ_DELEG,
    )
    .await;
    assert_eq!(
        delegation_of(&o),
        OpenDelegation::NoneExt(OpenNoneDelegation::Contention {
            server_will_push_deleg: false
        }),
        "wanted, but a writer exists"
    );
    let r = on_file(
        &mut w,
        sw,
        &mut qw,
        "f",
        NfsArgOp::Close(CloseArgs {
            seqid: 0,
            open_stateid: ow,
        }),
    )
    .await;
    assert!(matches!(r, NfsResOp::Close(Ok(_))), "CLOSE: {r:?}");
    // Nobody writes f now: A (with a back channel) gets a read delegation, W (without) none.
    let (o, _) = open_want(&mut a, sa, &mut qa, cid_a, b"a2", "f", rd).await;
    let d = read_delegation(&delegation_of(&o));
    let (o, _) = open_want(
        &mut w,
        sw,
        &mut qw,
        cid_w,
        b"w",
        "f",
        rd | OPEN4_SHARE_ACCESS_WANT_READ_DELEG,
    )
    .await;
    assert_eq!(
        delegation_of(&o),
        OpenDelegation::NoneExt(OpenNoneDelegation::Resource {
            server_will_signal_avail: false
        }),
        "no back channel"
    );
    for (want, why) in [
        (
            OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
            why_no_delegation::NOT_WANTED,
        ),
        (OPEN4_SHARE_ACCESS_WANT_CANCEL, why_no_delegation::CANCELLED),
        (
            OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG,
            why_no_delegation::WRITE_DELEG_NOT_SUPP_FTYPE,
        ),
    ] {
        let (o, _) = open_want(&mut a, sa, &mut qa, cid_a, b"a3", "f", rd | want).await;
        assert_eq!(delegation_of(&o), not_granted(why), "want {want:#x}");
    }
    for bad in [0x0600, 0x4_0000] {
        let (o, _) = open_want(&mut a, sa, &mut qa, cid_a, b"a3", "f", rd | bad).await;
        assert_eq!(o.err(), Some(NfsStat::INVAL), "share_access {bad:#x}");
    }
    qa += 1;
    let r = a
        .compound(vec![
            seq(sa, qa, 0),
            NfsArgOp::TestStateid(TestStateidArgs { stateids: vec![d] }),
            NfsArgOp::FreeStateid(d),
        ])
        .await;
    let Some(NfsResOp::TestStateid(Ok(t))) = r.resarray.get(1) else {
        panic!("TEST_STATEID: {r:?}");
    };
    assert_eq!(t.status_codes, vec![NfsStat::OK], "a held delegation");
    assert_eq!(r.status, NfsStat::LOCKS_HELD, "FREE_STATEID of it: {r:?}");
    srv.stop().await;
}

/// Two clients with back channels, each session's next slot sequence id, and the read
/// delegation client A holds on file "f" (with its file handle), once client B's OPEN for
/// reading and writing (`rw`) has been answered DELAY.
struct Conflict {
    a: Client,
    b: Client,
    cid_a: ClientId,
    cid_b: ClientId,
    sa: SessionId,
    sb: SessionId,
    qa: u32,
    qb: u32,
    d: Stateid,
    fh: Vec<u8>,
    rw: u32,
}

/// Sets up [`Conflict`]: `tag` names the client owners (`TAG-a`, `TAG-b`).
async fn conflicting_open(srv: &Server, tag: &str) -> Conflict {
    let mut a = Client::connect(srv.addr).await;
    let mut b = Client::connect(srv.addr).await;
    let (cid_a, sa) = session_with_back_channel(&mut a, format!("{tag}-a").as_bytes()).await;
    let (cid_b, sb) = session_with_back_channel(&mut b, format!("{tag}-b").as_bytes()).await;
    let (mut qa, mut qb) = (0, 0);
    create_closed(&mut a, sa, &mut qa, cid_a, "f").await;
    let (o, fh) = open_want(
        &mut a,
        sa,
        &mut qa,
        cid_a,
        b"a",
        "f",
        OPEN4_SHARE_ACCESS_READ,
    )
    .await;
    let d = read_delegation(&delegation_of(&o));
    let fh = fh.expect("GETFH");
    let rw = OPEN4_SHARE_ACCESS_BOTH;
    let (o, _) = open_want(&mut b, sb, &mut qb, cid_b, b"b", "f", rw).await;
    assert_eq!(o.err(), Some(NfsStat::DELAY), "a conflicting open waits");
    Conflict {
        a,
        b,
        cid_a,
        cid_b,
        sa,
        sb,
        qa,
        qb,
        d,
        fh,
        rw,
    }
}

/// RFC 8881 §10.4.1, §20.2, §18.6: an OPEN for writing by another client (with its own back
/// channel) recalls the read delegation (CB_RECALL of that stateid and file) and is answered
/// DELAY until the holder returns it; meanwhile the holder can still make its local opens
/// real with CLAIM_DELEG_CUR_FH; after DELEGRETURN the OPEN succeeds, and the delegation is
/// gone (a second DELEGRETURN is BAD_STATEID).
#[tokio::test]
async fn conflicting_open_recalls_the_delegation_and_waits_for_delegreturn() {
    let srv = start(None).await;
    let Conflict {
        mut a,
        mut b,
        cid_a,
        cid_b,
        sa,
        sb,
        mut qa,
        mut qb,
        d,
        fh,
        rw,
    } = conflicting_open(&srv, "wire-recall").await;
    let (recalled, recalled_fh) = answer_cb_recall(&mut a, NfsStat::OK).await;
    assert_eq!((recalled, recalled_fh), (d, fh.clone()), "CB_RECALL");
    let (o, _) = open_want(&mut b, sb, &mut qb, cid_b, b"b", "f", rw).await;
    assert_eq!(o.err(), Some(NfsStat::DELAY), "still not returned");
    // The holder claims an open it did under the delegation.
    qa += 1;
    let r = a
        .compound(vec![
            seq(sa, qa, 0),
            NfsArgOp::Putfh(FileHandle(fh.clone())),
            NfsArgOp::Open(OpenArgs {
                seqid: 0,
                share_access: OPEN4_SHARE_ACCESS_READ,
                share_deny: OPEN4_SHARE_DENY_NONE,
                owner: owner(cid_a, b"a-local"),
                openhow: OpenFlag::NoCreate,
                claim: OpenClaim::DelegCurFh(d),
            }),
        ])
        .await;
    assert_eq!(
        r.status,
        NfsStat::OK,
        "CLAIM_DELEG_CUR_FH while recalled: {r:?}"
    );
    let delegreturn = |seqid| {
        vec![
            seq(sa, seqid, 0),
            NfsArgOp::Putfh(FileHandle(fh.clone())),
            NfsArgOp::Delegreturn(d),
        ]
    };
    qa += 1;
    let r = a.compound(delegreturn(qa)).await;
    assert_eq!(r.status, NfsStat::OK, "DELEGRETURN: {r:?}");
    let (o, _) = open_want(&mut b, sb, &mut qb, cid_b, b"b", "f", rw).await;
    assert_eq!(
        delegation_of(&o),
        OpenDelegation::None,
        "B writes: no delegation"
    );
    qa += 1;
    let r = a.compound(delegreturn(qa)).await;
    assert_eq!(r.status, NfsStat::BAD_STATEID, "returned twice: {r:?}");
    srv.stop().await;
}

/// RFC 8881 §10.4.6, §18.46.3: a delegation not returned a lease after its CB_RECALL is
/// revoked — not before — and the conflicting OPEN then succeeds; its holder's SEQUENCE carries
/// RECALLABLE_STATE_REVOKED, TEST_STATEID and DELEGRETURN say DELEG_REVOKED, and FREE_STATEID
/// acknowledges it (the flag goes).
#[tokio::test]
async fn unreturned_delegation_is_revoked_a_lease_after_its_recall() {
    let lease = SHORT_LEASE_S.to_string();
    let srv = start_with(
        None,
        &["--lease-seconds", &lease, "--recall-timeout-seconds", "600"],
    )
    .await;
    let Conflict {
        mut a,
        mut b,
        cid_b,
        sa,
        sb,
        mut qa,
        mut qb,
        d,
        fh,
        rw,
        ..
    } = conflicting_open(&srv, "wire-revoke-deleg").await;
    let recalled_at = std::time::Instant::now();
    // A acknowledges the recall but never returns the delegation; it keeps its lease.
    answer_cb_recall(&mut a, NfsStat::OK).await;
    loop {
        qa += 1;
        let flags = sequence_flags(&mut a, sa, qa).await;
        let (o, _) = open_want(&mut b, sb, &mut qb, cid_b, b"b", "f", rw).await;
        match o {
            Ok(_) => break,
            Err(NfsStat::DELAY) => assert_eq!(
                flags & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
                0,
                "nothing revoked while B waits"
            ),
            Err(e) => panic!("OPEN: {e}"),
        }
        assert!(
            recalled_at.elapsed() < LOCK_WAIT_DEADLINE,
            "the delegation was never revoked"
        );
        tokio::time::sleep(LOCK_POLL_INTERVAL).await;
    }
    let waited = recalled_at.elapsed();
    assert!(
        waited >= Duration::from_secs(SHORT_LEASE_S),
        "revoked after {waited:?}, within the {SHORT_LEASE_S} s lease"
    );
    qa += 1;
    let r = a
        .compound(vec![
            seq(sa, qa, 0),
            NfsArgOp::TestStateid(TestStateidArgs { stateids: vec![d] }),
        ])
        .await;
    let (Some(NfsResOp::Sequence(Ok(sq))), Some(NfsResOp::TestStateid(Ok(t)))) =
        (r.resarray.first(), r.resarray.get(1))
    else {
        panic!("SEQUENCE + TEST_STATEID: {r:?}");
    };
    assert_ne!(
        sq.status_flags & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "the holder is told"
    );
    assert_eq!(t.status_codes, vec![NfsStat::DELEG_REVOKED]);
    qa += 1;
    let r = a
        .compound(vec![
            seq(sa, qa, 0),
            NfsArgOp::Putfh(FileHandle(fh.clone())),
            NfsArgOp::Delegreturn(d),
        ])
        .await;
    assert_eq!(r.status, NfsStat::DELEG_REVOKED, "DELEGRETURN: {r:?}");
    qa += 1;
    let r = a
        .compound(vec![seq(sa, qa, 0), NfsArgOp::FreeStateid(d)])
        .await;
    assert_eq!(r.status, NfsStat::OK, "FREE_STATEID: {r:?}");
    qa += 1;
    assert_eq!(
        sequence_flags(&mut a, sa, qa).await & SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
        0,
        "acknowledged"
    );
    srv.stop().await;
}

/// RFC 8881 §10.4.1 (nfsd breaks delegations on setattr, unlink, rename and link alike): a
/// SETATTR, RENAME or REMOVE of a delegated file by another client recalls the delegation and
/// is answered DELAY until DELEGRETURN, then done.
#[tokio::test]
async fn namespace_changes_by_another_client_recall_the_delegation() {
    let srv = start(None).await;
    let mut a = Client::connect(srv.addr).await;
    let mut b = Client::connect(srv.addr).await;
    let (cid_a, sa) = session_with_back_channel(&mut a, b"wire-ns-deleg-a").await;
    let (_, sb) = session_with_back_channel(&mut b, b"wire-ns-deleg-b").await;
    let (mut qa, mut qb) = (0, 0);
    create_closed(&mut a, sa, &mut qa, cid_a, "f").await;
    let mode = |m: u32| {
        NfsArgOp::Setattr(SetattrArgs {
            stateid: Stateid::ANONYMOUS,
            obj_attributes: Fattr {
                mode: Some(m),
                ..Fattr::default()
            }
            .to_fattr4(),
        })
    };
    // (what, the delegated file, where the change runs, the change)
    let changes: [(&str, &str, &str, NfsArgOp); 3] = [
        ("SETATTR", "f", "f", mode(0o600)),
        (
            "RENAME",
            "f",
            "",
            NfsArgOp::Rename(RenameArgs {
                oldname: "f".into(),
                newname: "g".into(),
            }),
        ),
        (
            "REMOVE",
            "g",
            "",
            NfsArgOp::Remove(RemoveArgs { target: "g".into() }),
        ),
    ];
    for (what, name, on, change) in changes {
        let (o, fh) = open_want(
            &mut a,
            sa,
            &mut qa,
            cid_a,
            b"a",
            name,
            OPEN4_SHARE_ACCESS_READ,
        )
        .await;
        let d = read_delegation(&delegation_of(&o));
        let fh = fh.expect("GETFH");
        let run = |seqid| {
            let mut ops = vec![seq(sb, seqid, 0), NfsArgOp::Putrootfh];
            if on.is_empty() {
                // RENAME takes the saved handle as the source directory.
                ops.push(NfsArgOp::Savefh);
            } else {
                ops.push(lookup(on));
            }
            ops.push(change.clone());
            ops
        };
        qb += 1;
        let r = b.compound(run(qb)).await;
        assert_eq!(
            r.status,
            NfsStat::DELAY,
            "{what} of a delegated file: {r:?}"
        );
        let (recalled, _) = answer_cb_recall(&mut a, NfsStat::OK).await;
        assert_eq!(recalled, d, "{what}: CB_RECALL");
        qa += 1;
        let r = a
            .compound(vec![
                seq(sa, qa, 0),
                NfsArgOp::Putfh(FileHandle(fh)),
                NfsArgOp::Delegreturn(d),
            ])
            .await;
        assert_eq!(r.status, NfsStat::OK, "DELEGRETURN: {r:?}");
        qb += 1;
        let r = b.compound(run(qb)).await;
        assert_eq!(r.status, NfsStat::OK, "{what} once returned: {r:?}");
    }
    srv.stop().await;
}
