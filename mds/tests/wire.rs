//! Host-side tests of the MDS over a raw TCP connection: record limits, garbage, the slot
//! table, that a request that fails to decode changes nothing, and lease expiry. Requests
//! are built and replies read with `pnfs_proto`'s COMPOUND types.

use std::time::Duration;

use pnfs_proto::nfs4::attr::{Bitmap4, Fattr, Fattr4, FATTR4_MODE, FATTR4_TYPE};
use pnfs_proto::nfs4::*;
use pnfs_proto::xdr::{from_bytes, to_bytes};

mod common;
use common::*;

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

// ---------------------------------------------------------------------------------------------
// RFC 8881 rules, one exact COMPOUND and status each
// ---------------------------------------------------------------------------------------------

/// RFC 8881 §18.35.3: eia_flags bits not defined for the arguments (CONFIRMED_R is a result
/// flag) are INVAL; SP4_MACH_CRED, which needs RPCSEC_GSS, cannot be honoured over AUTH_SYS and
/// is INVAL too. The defined flags are accepted.
#[tokio::test]
async fn exchange_id_refuses_undefined_flags_and_mach_cred_without_gss() {
    let srv = start(None).await;
    let mut c = Client::connect_as(srv.addr, auth_sys("host-a", 0)).await;
    for flags in [0x8, 0x0100_0000, EXCHGID4_FLAG_CONFIRMED_R] {
        assert_eq!(
            exchange_id(&mut c, b"wire-flags", 1, flags).await.err(),
            Some(NfsStat::INVAL),
            "flags {flags:#x}"
        );
    }
    let mach = exchange_id_with(
        &mut c,
        ExchangeIdArgs {
            clientowner: ClientOwner {
                verifier: Verifier([1; 8]),
                ownerid: b"wire-flags".to_vec(),
            },
            state_protect: StateProtectA::MachCred(StateProtectOps::default()),
            ..ExchangeIdArgs::default()
        },
    )
    .await;
    assert_eq!(
        mach.err(),
        Some(NfsStat::INVAL),
        "SP4_MACH_CRED over AUTH_SYS"
    );
    let ok = exchange_id(
        &mut c,
        b"wire-flags",
        1,
        EXCHGID4_FLAG_SUPP_MOVED_REFER | EXCHGID4_FLAG_USE_PNFS_MDS,
    )
    .await;
    assert!(ok.is_ok(), "defined flags: {ok:?}");
    srv.stop().await;
}

/// RFC 8881 §18.35.5 cases 6–9: EXCHGID4_FLAG_UPD_CONFIRMED_REC_A needs a confirmed record
/// (NOENT: none, or only an unconfirmed one), of the same principal (PERM) and verifier
/// (NOT_SAME); then it is the same client ID, confirmed.
#[tokio::test]
async fn exchange_id_update_needs_the_confirmed_record_its_principal_and_verifier() {
    const UPD: u32 = EXCHGID4_FLAG_UPD_CONFIRMED_REC_A;
    let srv = start(None).await;
    let mut a = Client::connect_as(srv.addr, auth_sys("host-a", 0)).await;
    let mut b = Client::connect_as(srv.addr, auth_sys("host-b", 0)).await;
    let owner = b"wire-update";
    assert_eq!(
        exchange_id(&mut a, owner, 1, UPD).await.err(),
        Some(NfsStat::NOENT),
        "no record"
    );
    let x = exchange_id(&mut a, owner, 1, 0).await.unwrap();
    assert_eq!(
        exchange_id(&mut a, owner, 1, UPD).await.err(),
        Some(NfsStat::NOENT),
        "only an unconfirmed record"
    );
    create_session(&mut a, x.clientid, x.sequenceid)
        .await
        .unwrap();
    assert_eq!(
        exchange_id(&mut a, owner, 2, UPD).await.err(),
        Some(NfsStat::NOT_SAME),
        "another verifier"
    );
    assert_eq!(
        exchange_id(&mut b, owner, 1, UPD).await.err(),
        Some(NfsStat::PERM),
        "another principal"
    );
    let u = exchange_id(&mut a, owner, 1, UPD).await.unwrap();
    assert_eq!(u.clientid, x.clientid);
    assert_ne!(u.flags & EXCHGID4_FLAG_CONFIRMED_R, 0);
    srv.stop().await;
}

/// RFC 8881 §18.35.5 case 5 (what two gateways presenting one owner with two verifiers do):
/// the new verifier gets a new, unconfirmed client ID while the old client keeps its session
/// and state; once CREATE_SESSION confirms the new one, the old one ends with all its state —
/// its session answers BADSESSION, its client ID STALE_CLIENTID, its open stateid is unknown
/// and its layout no longer conflicts.
#[tokio::test]
async fn new_verifier_replaces_the_client_only_once_confirmed_and_ends_its_state() {
    let srv = start_with(None, &["--recall-timeout-seconds", "600"]).await;
    let mut a = Client::connect(srv.addr).await;
    let mut b = Client::connect(srv.addr).await;
    let owner = b"pnfsgw:host:export:/vm";
    let (cid_a, sess_a) = confirmed(&mut a, owner, 1).await;
    let r = open_and_layoutget(&mut a, cid_a, sess_a, 1, "f").await;
    assert_eq!(r.status, NfsStat::OK, "A: OPEN + LAYOUTGET: {r:?}");
    let Some(NfsResOp::Open(Ok(open_a))) = r.resarray.get(2) else {
        panic!("OPEN: {r:?}");
    };
    let open_a = open_a.stateid;
    // B: same owner, another verifier: a new client ID, not confirmed.
    let x = exchange_id(&mut b, owner, 2, 0).await.unwrap();
    assert_ne!(x.clientid, cid_a, "a new client ID");
    assert_eq!(x.flags & EXCHGID4_FLAG_CONFIRMED_R, 0, "unconfirmed");
    // A is untouched until then: its session, its open stateid, its client ID (case 2).
    let r = a
        .compound(vec![
            seq(sess_a, 2, 0),
            NfsArgOp::TestStateid(TestStateidArgs {
                stateids: vec![open_a],
            }),
        ])
        .await;
    let Some(NfsResOp::TestStateid(Ok(t))) = r.resarray.get(1) else {
        panic!("A: SEQUENCE + TEST_STATEID before B confirms: {r:?}");
    };
    assert_eq!(t.status_codes, vec![NfsStat::OK]);
    let again = exchange_id(&mut a, owner, 1, 0).await.unwrap();
    assert_eq!(
        again.clientid, cid_a,
        "A's record is still the confirmed one"
    );
    assert_ne!(again.flags & EXCHGID4_FLAG_CONFIRMED_R, 0);
    // B confirms: A's record and state end.
    let sess_b = create_session(&mut b, x.clientid, x.sequenceid)
        .await
        .unwrap();
    assert_eq!(
        sequence_status(&mut a, sess_a, 3).await,
        NfsStat::BADSESSION
    );
    assert_eq!(
        create_session(&mut a, cid_a, again.sequenceid).await.err(),
        Some(NfsStat::STALE_CLIENTID)
    );
    let r = b
        .compound(vec![
            seq(sess_b, 1, 0),
            NfsArgOp::TestStateid(TestStateidArgs {
                stateids: vec![open_a],
            }),
        ])
        .await;
    let Some(NfsResOp::TestStateid(Ok(t))) = r.resarray.get(1) else {
        panic!("B: TEST_STATEID: {r:?}");
    };
    assert_eq!(
        t.status_codes,
        vec![NfsStat::BAD_STATEID],
        "A's open is gone"
    );
    let r = open_and_layoutget(&mut b, x.clientid, sess_b, 2, "f").await;
    assert_eq!(
        r.status,
        NfsStat::OK,
        "A's layout no longer conflicts: {r:?}"
    );
    srv.stop().await;
}

/// RFC 8881 §18.35.5 cases 3 and 4, §18.36.4: another principal presenting an owner whose
/// confirmed record holds state is CLID_INUSE; without state it gets a new unconfirmed record
/// that only it can confirm (CLID_INUSE for anyone else). A second EXCHANGE_ID replaces an
/// unconfirmed record: the first client ID is stale.
#[tokio::test]
async fn exchange_id_collision_and_unconfirmed_replacement() {
    let srv = start(None).await;
    let mut a = Client::connect_as(srv.addr, auth_sys("host-a", 0)).await;
    let mut b = Client::connect_as(srv.addr, auth_sys("host-b", 0)).await;
    // Case 3 with state (a session): CLID_INUSE.
    let (_, sess) = confirmed(&mut a, b"wire-collide", 1).await;
    assert_eq!(
        exchange_id(&mut b, b"wire-collide", 1, 0).await.err(),
        Some(NfsStat::CLID_INUSE)
    );
    // Case 3 without state: a new record, confirmable only by its own principal.
    let r = a.compound(vec![NfsArgOp::DestroySession(sess)]).await;
    assert_eq!(r.status, NfsStat::OK, "DESTROY_SESSION: {r:?}");
    let x = exchange_id(&mut b, b"wire-collide", 1, 0).await.unwrap();
    assert_eq!(x.flags & EXCHGID4_FLAG_CONFIRMED_R, 0);
    assert_eq!(
        create_session(&mut a, x.clientid, x.sequenceid).await.err(),
        Some(NfsStat::CLID_INUSE)
    );
    assert!(create_session(&mut b, x.clientid, x.sequenceid)
        .await
        .is_ok());
    // Case 4: the unconfirmed record is replaced.
    let first = exchange_id(&mut a, b"wire-unconfirmed", 1, 0)
        .await
        .unwrap();
    let second = exchange_id(&mut a, b"wire-unconfirmed", 1, 0)
        .await
        .unwrap();
    assert_ne!(first.clientid, second.clientid);
    assert_eq!(
        create_session(&mut a, first.clientid, first.sequenceid)
            .await
            .err(),
        Some(NfsStat::STALE_CLIENTID)
    );
    assert!(create_session(&mut a, second.clientid, second.sequenceid)
        .await
        .is_ok());
    srv.stop().await;
}

/// RFC 8881 §18.50.3 and §18.37.3: DESTROY_CLIENTID and DESTROY_SESSION without SEQUENCE must
/// be the only operation (NOT_ONLY_OP), and then do nothing.
#[tokio::test]
async fn destroy_clientid_or_session_without_sequence_must_be_alone() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let x = exchange_id(&mut c, b"wire-not-only", 1, 0).await.unwrap();
    let r = c
        .compound(vec![
            NfsArgOp::DestroyClientid(x.clientid),
            NfsArgOp::Putrootfh,
        ])
        .await;
    assert_eq!(r.status, NfsStat::NOT_ONLY_OP, "DESTROY_CLIENTID: {r:?}");
    assert_eq!(r.resarray.len(), 1);
    let sess = create_session(&mut c, x.clientid, x.sequenceid)
        .await
        .expect("the client ID was not destroyed");
    let r = c
        .compound(vec![NfsArgOp::DestroySession(sess), NfsArgOp::Putrootfh])
        .await;
    assert_eq!(r.status, NfsStat::NOT_ONLY_OP, "DESTROY_SESSION: {r:?}");
    assert_eq!(sequence_status(&mut c, sess, 1).await, NfsStat::OK);
    srv.stop().await;
}

/// RFC 8881 §18.45.3: SECINFO_NO_NAME with SECINFO_STYLE4_PARENT has no parent to ask about
/// at the root (NOENT); below the root it answers, and CURRENT_FH answers at the root.
#[tokio::test]
async fn secinfo_no_name_parent_of_the_root_is_noent() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (_, sess) = session(&mut c, b"wire-secinfo").await;
    let cases = [
        (vec![], SecinfoStyle::Parent, NfsStat::NOENT),
        (vec![], SecinfoStyle::CurrentFh, NfsStat::OK),
        (
            vec![mkdir("d", Fattr4::default())],
            SecinfoStyle::Parent,
            NfsStat::OK,
        ),
    ];
    for (i, (before, style, want)) in cases.into_iter().enumerate() {
        let mut ops = vec![
            seq(sess, u32::try_from(i).unwrap() + 1, 0),
            NfsArgOp::Putrootfh,
        ];
        ops.extend(before);
        ops.push(NfsArgOp::SecinfoNoName(style));
        let r = c.compound(ops).await;
        assert_eq!(r.status, want, "{style:?}: {r:?}");
    }
    srv.stop().await;
}

/// RFC 5663 §2.3.2: a block-layout LAYOUTCOMMIT may carry an empty layoutupdate body (the
/// client has no extents to report): OK, not BADLAYOUT.
#[tokio::test]
async fn layoutcommit_with_an_empty_block_layoutupdate_is_ok() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"wire-empty-commit").await;
    let r = open_and_layoutget(&mut c, cid, sess, 1, "f").await;
    let layout = layout_stateid(&r);
    let r = c
        .compound(vec![
            seq(sess, 2, 0),
            NfsArgOp::Putrootfh,
            lookup("f"),
            NfsArgOp::Layoutcommit(LayoutcommitArgs {
                offset: 0,
                length: 4096,
                reclaim: false,
                stateid: layout,
                last_write_offset: None,
                time_modify: None,
                layoutupdate: LayoutUpdate {
                    lou_type: LayoutType::BlockVolume,
                    lou_body: Vec::new(),
                },
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "LAYOUTCOMMIT: {r:?}");
    srv.stop().await;
}

fn rename(old: &str, new: &str) -> NfsArgOp {
    NfsArgOp::Rename(RenameArgs {
        oldname: old.into(),
        newname: new.into(),
    })
}

fn remove(name: &str) -> NfsArgOp {
    NfsArgOp::Remove(RemoveArgs {
        target: name.into(),
    })
}

/// RFC 8881 §18.25.3 (REMOVE), §18.26.3 (RENAME), §18.15.3 (LOOKUP), §18.4.3 (CREATE),
/// §18.16.3 (OPEN): a zero-length name is INVAL and one longer than maxname (255 bytes) is
/// NAMETOOLONG, whatever else the operation would find (RENAME checks both names before it
/// looks the source up).
#[tokio::test]
async fn zero_length_names_are_inval_and_long_names_nametoolong() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"wire-names").await;
    let long = "n".repeat(256);
    let mut seqid = 0;
    for (bad, want) in [("", NfsStat::INVAL), (long.as_str(), NfsStat::NAMETOOLONG)] {
        let cases: Vec<(&str, Vec<NfsArgOp>)> = vec![
            ("LOOKUP", vec![lookup(bad)]),
            ("CREATE", vec![mkdir(bad, Fattr4::default())]),
            ("REMOVE", vec![remove(bad)]),
            ("OPEN", vec![open_create(cid, bad)]),
            ("RENAME old", vec![NfsArgOp::Savefh, rename(bad, "x")]),
            ("RENAME new", vec![NfsArgOp::Savefh, rename("absent", bad)]),
        ];
        for (what, ops) in cases {
            seqid += 1;
            let mut all = vec![seq(sess, seqid, 0), NfsArgOp::Putrootfh];
            all.extend(ops);
            let r = c.compound(all).await;
            assert_eq!(r.status, want, "{what} of a {}-byte name: {r:?}", bad.len());
        }
    }
    srv.stop().await;
}

/// The file handle of a removed file is STALE for every operation, but a file removed while
/// open — by REMOVE or by a RENAME over it — lives until its last CLOSE (RFC 8881 §18.2: CLOSE
/// of the open stateid succeeds), and only then goes STALE.
#[tokio::test]
async fn removed_file_handle_is_stale_but_close_after_rename_over_it_succeeds() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"wire-stale").await;
    let getattr = || {
        NfsArgOp::Getattr(GetattrArgs {
            attr_request: Bitmap4::from_bits(&[FATTR4_TYPE]),
        })
    };
    // "a" is opened and stays open; "b" is created and closed.
    let r = c
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            open_create(cid, "a"),
            NfsArgOp::Getfh,
        ])
        .await;
    let (Some(NfsResOp::Open(Ok(open_a))), Some(NfsResOp::Getfh(Ok(fh_a)))) =
        (r.resarray.get(2), r.resarray.get(3))
    else {
        panic!("OPEN a: {r:?}");
    };
    let (open_a, fh_a) = (open_a.stateid, fh_a.object.clone());
    let r = c
        .compound(vec![
            seq(sess, 2, 0),
            NfsArgOp::Putrootfh,
            open_create(cid, "b"),
            NfsArgOp::Getfh,
            NfsArgOp::Close(CloseArgs {
                seqid: 0,
                open_stateid: Stateid::CURRENT,
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "OPEN + CLOSE b: {r:?}");
    let Some(NfsResOp::Getfh(Ok(fh_b))) = r.resarray.get(3) else {
        panic!("GETFH b: {r:?}");
    };
    let fh_b = fh_b.object.clone();
    // RENAME b over a: a has no name left but is open.
    let r = c
        .compound(vec![
            seq(sess, 3, 0),
            NfsArgOp::Putrootfh,
            NfsArgOp::Savefh,
            rename("b", "a"),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "RENAME b a: {r:?}");
    let r = c
        .compound(vec![
            seq(sess, 4, 0),
            NfsArgOp::Putfh(fh_a.clone()),
            getattr(),
        ])
        .await;
    assert_eq!(
        r.status,
        NfsStat::OK,
        "GETATTR of the open, replaced a: {r:?}"
    );
    let r = c
        .compound(vec![
            seq(sess, 5, 0),
            NfsArgOp::Putfh(fh_a.clone()),
            NfsArgOp::Close(CloseArgs {
                seqid: 0,
                open_stateid: open_a,
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "CLOSE of the replaced a: {r:?}");
    // Closed: now a's handle is stale (PUTFH says so).
    let r = c
        .compound(vec![seq(sess, 6, 0), NfsArgOp::Putfh(fh_a), getattr()])
        .await;
    assert_eq!(r.status, NfsStat::STALE, "a after its CLOSE: {r:?}");
    // REMOVE of the closed file (now named "a"): its handle goes stale at once.
    let r = c
        .compound(vec![seq(sess, 7, 0), NfsArgOp::Putrootfh, remove("a")])
        .await;
    assert_eq!(r.status, NfsStat::OK, "REMOVE a: {r:?}");
    let r = c
        .compound(vec![seq(sess, 8, 0), NfsArgOp::Putfh(fh_b), getattr()])
        .await;
    assert_eq!(r.status, NfsStat::STALE, "b after REMOVE: {r:?}");
    srv.stop().await;
}

/// Starts a server on `dir` (a previous server's store) with a grace period of `grace_s`.
async fn restart(dir: std::path::PathBuf, grace_s: &str) -> Server {
    start_with(Some(dir), &["--grace-seconds", grace_s]).await
}

/// RFC 8881 §18.51.3: RECLAIM_COMPLETE once is OK, again COMPLETE_ALREADY. §8.4.2: after a
/// restart, while a known client may still reclaim, REMOVE, RENAME, SETATTR of the size and
/// READ/WRITE under a special stateid, and OPEN without reclaim, are GRACE; looking is not.
#[tokio::test]
async fn reclaim_complete_twice_and_grace_refuses_non_reclaim_changes() {
    let srv = start(None).await;
    let mut a = Client::connect(srv.addr).await;
    let (cid_a, sess_a) = session(&mut a, b"wire-grace-a").await;
    for (seqid, want) in [(1, NfsStat::OK), (2, NfsStat::COMPLETE_ALREADY)] {
        let r = a
            .compound(vec![
                seq(sess_a, seqid, 0),
                NfsArgOp::ReclaimComplete(false),
            ])
            .await;
        assert_eq!(r.status, want, "RECLAIM_COMPLETE #{seqid}: {r:?}");
    }
    let r = a
        .compound(vec![
            seq(sess_a, 3, 0),
            NfsArgOp::Putrootfh,
            open_create(cid_a, "f"),
            NfsArgOp::Close(CloseArgs {
                seqid: 0,
                open_stateid: Stateid::CURRENT,
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "create f: {r:?}");
    let srv = restart(srv.stop().await, "600").await;
    let mut b = Client::connect(srv.addr).await;
    let (cid_b, sess_b) = session(&mut b, b"wire-grace-b").await;
    let size0 = Fattr {
        size: Some(0),
        ..Fattr::default()
    };
    let cases: Vec<(&str, Vec<NfsArgOp>, NfsStat)> = vec![
        ("REMOVE", vec![remove("f")], NfsStat::GRACE),
        (
            "RENAME",
            vec![NfsArgOp::Savefh, rename("f", "h")],
            NfsStat::GRACE,
        ),
        (
            "SETATTR size",
            vec![
                lookup("f"),
                NfsArgOp::Setattr(SetattrArgs {
                    stateid: Stateid::ANONYMOUS,
                    obj_attributes: size0.to_fattr4(),
                }),
            ],
            NfsStat::GRACE,
        ),
        (
            "WRITE",
            vec![
                lookup("f"),
                NfsArgOp::Write(WriteArgs {
                    stateid: Stateid::ANONYMOUS,
                    offset: 0,
                    stable: StableHow::FileSync,
                    data: b"x".to_vec(),
                }),
            ],
            NfsStat::GRACE,
        ),
        ("OPEN", vec![open_create(cid_b, "n")], NfsStat::GRACE),
        ("LOOKUP", vec![lookup("f")], NfsStat::OK),
    ];
    for (i, (what, ops, want)) in cases.into_iter().enumerate() {
        let mut all = vec![
            seq(sess_b, u32::try_from(i).unwrap() + 1, 0),
            NfsArgOp::Putrootfh,
        ];
        all.extend(ops);
        let r = b.compound(all).await;
        assert_eq!(r.status, want, "{what} in grace: {r:?}");
    }
    srv.stop().await;
}

/// RFC 8881 §8.4.3: a client that did not reclaim during a grace period loses its state for
/// good: after the next restart there is nobody left to wait for, so no grace period.
#[tokio::test]
async fn client_that_did_not_reclaim_is_forgotten_after_grace() {
    let srv = start(None).await;
    let mut a = Client::connect(srv.addr).await;
    let (_, sess_a) = session(&mut a, b"wire-forgotten-a").await;
    let r = a
        .compound(vec![seq(sess_a, 1, 0), NfsArgOp::ReclaimComplete(false)])
        .await;
    assert_eq!(r.status, NfsStat::OK);
    // Restart with a short grace period that A lets pass; B waits it out.
    let srv = restart(srv.stop().await, "1").await;
    let mut b = Client::connect(srv.addr).await;
    let (cid_b, sess_b) = session(&mut b, b"wire-forgotten-b").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seqid = 0;
    loop {
        seqid += 1;
        let r = b
            .compound(vec![
                seq(sess_b, seqid, 0),
                NfsArgOp::Putrootfh,
                open_create(cid_b, "x"),
            ])
            .await;
        if r.status == NfsStat::OK {
            break;
        }
        assert_eq!(r.status, NfsStat::GRACE, "{r:?}");
        assert!(std::time::Instant::now() < deadline, "grace never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // B never sent RECLAIM_COMPLETE either, so nobody is known: no grace after this restart.
    let srv = restart(srv.stop().await, "600").await;
    let mut c = Client::connect(srv.addr).await;
    let (cid_c, sess_c) = session(&mut c, b"wire-forgotten-c").await;
    let r = c
        .compound(vec![
            seq(sess_c, 1, 0),
            NfsArgOp::Putrootfh,
            open_create(cid_c, "y"),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "no grace once A is forgotten: {r:?}");
    srv.stop().await;
}

/// RFC 8881 §9.7, §18.16.3: an OPEN whose access another open-owner denies, or whose deny
/// covers another open-owner's access, is SHARE_DENIED. §18.18.3: OPEN_DOWNGRADE only to
/// subsets of what is held (else INVAL), and then the freed share is available. §18.2.3: CLOSE
/// of a closed stateid is BAD_STATEID.
#[tokio::test]
async fn share_reservations_downgrade_and_close_of_a_closed_stateid() {
    const R: u32 = OPEN4_SHARE_ACCESS_READ;
    const W: u32 = OPEN4_SHARE_ACCESS_WRITE;
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"wire-share").await;
    let mut seqid = 0;
    let mut run = |ops: Vec<NfsArgOp>| {
        seqid += 1;
        let mut all = vec![seq(sess, seqid, 0), NfsArgOp::Putrootfh];
        all.extend(ops);
        all
    };
    // o1 reads and denies writers.
    let r = c
        .compound(run(vec![open_share(
            cid,
            b"o1",
            "f",
            R,
            OPEN4_SHARE_DENY_WRITE,
        )]))
        .await;
    let Some(NfsResOp::Open(Ok(o1))) = r.resarray.get(2) else {
        panic!("OPEN o1: {r:?}");
    };
    let o1 = o1.stateid;
    for (access, deny, want) in [
        (W, OPEN4_SHARE_DENY_NONE, NfsStat::SHARE_DENIED),
        (R, OPEN4_SHARE_DENY_READ, NfsStat::SHARE_DENIED),
        (R, OPEN4_SHARE_DENY_NONE, NfsStat::OK),
    ] {
        let r = c
            .compound(run(vec![open_share(cid, b"o2", "f", access, deny)]))
            .await;
        assert_eq!(r.status, want, "o2 access {access} deny {deny}: {r:?}");
    }
    let downgrade = |access, deny| {
        NfsArgOp::OpenDowngrade(OpenDowngradeArgs {
            open_stateid: o1,
            seqid: 0,
            share_access: access,
            share_deny: deny,
        })
    };
    // Not a subset: INVAL. A subset (deny nothing): OK, and o2 may now write.
    let r = c
        .compound(run(vec![
            lookup("f"),
            downgrade(R | W, OPEN4_SHARE_DENY_NONE),
        ]))
        .await;
    assert_eq!(r.status, NfsStat::INVAL, "upgrade by OPEN_DOWNGRADE: {r:?}");
    let r = c
        .compound(run(vec![lookup("f"), downgrade(R, OPEN4_SHARE_DENY_BOTH)]))
        .await;
    assert_eq!(
        r.status,
        NfsStat::INVAL,
        "more deny by OPEN_DOWNGRADE: {r:?}"
    );
    let r = c
        .compound(run(vec![lookup("f"), downgrade(R, OPEN4_SHARE_DENY_NONE)]))
        .await;
    assert_eq!(r.status, NfsStat::OK, "OPEN_DOWNGRADE: {r:?}");
    let r = c
        .compound(run(vec![open_share(
            cid,
            b"o2",
            "f",
            W,
            OPEN4_SHARE_DENY_NONE,
        )]))
        .await;
    assert_eq!(
        r.status,
        NfsStat::OK,
        "o2 writes after the downgrade: {r:?}"
    );
    let close = || {
        NfsArgOp::Close(CloseArgs {
            seqid: 0,
            open_stateid: o1,
        })
    };
    let r = c.compound(run(vec![lookup("f"), close()])).await;
    assert_eq!(r.status, NfsStat::OK, "CLOSE o1: {r:?}");
    let r = c.compound(run(vec![lookup("f"), close()])).await;
    assert_eq!(r.status, NfsStat::BAD_STATEID, "CLOSE o1 again: {r:?}");
    srv.stop().await;
}

/// RFC 8881 §18.36.3: CREATE_SESSION with undefined flags is INVAL and with a fore channel too
/// small for a SEQUENCE-only COMPOUND TOOSMALL. Then the session's negotiated limits hold
/// (§18.46.3, §15.1.3): more operations than ca_maxoperations is TOO_MANY_OPS and a call larger
/// than ca_maxrequestsize REQ_TOO_BIG (both on SEQUENCE, leaving the slot unused), and a reply
/// larger than ca_maxresponsesize fails the operation that makes it so with REP_TOO_BIG.
#[tokio::test]
async fn create_session_limits_are_checked_then_enforced() {
    const SMALL_BYTES: u32 = 512;
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let x = exchange_id(&mut c, b"wire-chan", 1, 0).await.unwrap();
    let small = ChannelAttrs {
        maxrequestsize: SMALL_BYTES,
        maxresponsesize: SMALL_BYTES,
        maxoperations: 8,
        ..CHAN
    };
    for (what, flags, fore, want) in [
        ("undefined flag", 0x8, small, NfsStat::INVAL),
        (
            "request size",
            0,
            ChannelAttrs {
                maxrequestsize: 64,
                ..small
            },
            NfsStat::TOOSMALL,
        ),
        (
            "response size",
            0,
            ChannelAttrs {
                maxresponsesize: 64,
                ..small
            },
            NfsStat::TOOSMALL,
        ),
        (
            "operations",
            0,
            ChannelAttrs {
                maxoperations: 1,
                ..small
            },
            NfsStat::TOOSMALL,
        ),
    ] {
        let r = create_session_with(&mut c, x.clientid, x.sequenceid, flags, fore).await;
        assert_eq!(r.err(), Some(want), "{what}");
    }
    let sess = create_session_with(&mut c, x.clientid, x.sequenceid, 0, small)
        .await
        .unwrap();
    let big = create_session(&mut c, x.clientid, x.sequenceid + 1)
        .await
        .unwrap();
    // A 1000-byte file, written on the session with room for it.
    let r = c
        .compound(vec![
            seq(big, 1, 0),
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
    assert_eq!(r.status, NfsStat::OK, "write f: {r:?}");
    let nine = std::iter::once(seq(sess, 1, 0))
        .chain(std::iter::repeat_n(NfsArgOp::Putrootfh, 8))
        .collect();
    let r = c.compound(nine).await;
    assert_eq!(r.status, NfsStat::TOO_MANY_OPS, "9 operations: {r:?}");
    let r = c
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            lookup(&"n".repeat(600)),
        ])
        .await;
    assert_eq!(r.status, NfsStat::REQ_TOO_BIG, "a 600-byte name: {r:?}");
    let read = |count| {
        NfsArgOp::Read(ReadArgs {
            stateid: Stateid::ANONYMOUS,
            offset: 0,
            count,
        })
    };
    // Slot 0's sequence id 1 is still unused.
    let r = c
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            lookup("f"),
            read(100),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "a 100-byte READ: {r:?}");
    let r = c
        .compound(vec![
            seq(sess, 2, 0),
            NfsArgOp::Putrootfh,
            lookup("f"),
            read(1000),
        ])
        .await;
    assert_eq!(r.status, NfsStat::REP_TOO_BIG, "a 1000-byte READ: {r:?}");
    assert!(
        matches!(
            r.resarray.get(3),
            Some(NfsResOp::Read(Err(NfsStat::REP_TOO_BIG)))
        ),
        "on the READ: {r:?}"
    );
    srv.stop().await;
}

/// RFC 8881 §18.14.3: LOOKUPP from a symbolic link is SYMLINK, from a regular file NOTDIR,
/// from the root NOENT.
#[tokio::test]
async fn lookupp_from_a_symlink_a_file_and_the_root() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"wire-lookupp").await;
    let r = c
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            NfsArgOp::Create(CreateArgs {
                objtype: CreateType::Link("target".into()),
                objname: "l".into(),
                createattrs: Fattr4::default(),
            }),
            NfsArgOp::Putrootfh,
            open_create(cid, "f"),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "symlink l, file f: {r:?}");
    for (i, (name, want)) in [
        (Some("l"), NfsStat::SYMLINK),
        (Some("f"), NfsStat::NOTDIR),
        (None, NfsStat::NOENT),
    ]
    .into_iter()
    .enumerate()
    {
        let mut ops = vec![
            seq(sess, u32::try_from(i).unwrap() + 2, 0),
            NfsArgOp::Putrootfh,
        ];
        ops.extend(name.map(lookup));
        ops.push(NfsArgOp::Lookupp);
        let r = c.compound(ops).await;
        assert_eq!(r.status, want, "LOOKUPP from {name:?}: {r:?}");
    }
    srv.stop().await;
}

/// RFC 8881 §18.4: CREATE of a block or character device (with its numbers), a socket and a
/// fifo stores them; GETATTR returns their type and rawdev, across a restart too; they can be
/// renamed and removed; OPEN of one is WRONG_TYPE (§18.16.3).
#[tokio::test]
async fn special_files_are_created_stored_renamed_and_removed() {
    use pnfs_proto::nfs4::attr::FATTR4_RAWDEV;
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"wire-special").await;
    let dev = |specdata1, specdata2| SpecData {
        specdata1,
        specdata2,
    };
    let specials = [
        ("b", CreateType::Block(dev(8, 1)), NF4BLK, dev(8, 1)),
        ("c", CreateType::Char(dev(1, 3)), NF4CHR, dev(1, 3)),
        ("s", CreateType::Socket, NF4SOCK, dev(0, 0)),
        ("p", CreateType::Fifo, NF4FIFO, dev(0, 0)),
    ];
    let getattr = || {
        NfsArgOp::Getattr(GetattrArgs {
            attr_request: Bitmap4::from_bits(&[FATTR4_TYPE, FATTR4_RAWDEV]),
        })
    };
    let type_and_rawdev = |r: &CompoundRes| {
        let Some(NfsResOp::Getattr(Ok(g))) = r.resarray.last() else {
            panic!("GETATTR: {r:?}");
        };
        let a = Fattr::from_fattr4(&g.obj_attributes).unwrap();
        (a.file_type.unwrap(), a.rawdev.unwrap())
    };
    let mut seqid = 0;
    for (name, objtype, ftype, rawdev) in specials.clone() {
        seqid += 1;
        let r = c
            .compound(vec![
                seq(sess, seqid, 0),
                NfsArgOp::Putrootfh,
                NfsArgOp::Create(CreateArgs {
                    objtype,
                    objname: name.into(),
                    createattrs: Fattr4::default(),
                }),
                getattr(),
            ])
            .await;
        assert_eq!(r.status, NfsStat::OK, "CREATE {name}: {r:?}");
        assert_eq!(type_and_rawdev(&r), (ftype, rawdev), "{name}");
    }
    let r = c
        .compound(vec![
            seq(sess, 5, 0),
            NfsArgOp::Putrootfh,
            NfsArgOp::Open(OpenArgs {
                openhow: OpenFlag::NoCreate,
                ..match open_create(cid, "p") {
                    NfsArgOp::Open(o) => o,
                    _ => unreachable!(),
                }
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::WRONG_TYPE, "OPEN of a fifo: {r:?}");
    let r = c
        .compound(vec![
            seq(sess, 6, 0),
            NfsArgOp::Putrootfh,
            NfsArgOp::Savefh,
            rename("p", "q"),
            remove("s"),
            lookup("q"),
            getattr(),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "RENAME p q, REMOVE s: {r:?}");
    assert_eq!(type_and_rawdev(&r).0, NF4FIFO);
    let srv = start(Some(srv.stop().await)).await;
    let mut c = Client::connect(srv.addr).await;
    let (_, sess) = session(&mut c, b"wire-special-2").await;
    for (i, (name, want)) in [
        ("c", Ok((NF4CHR, dev(1, 3)))),
        ("b", Ok((NF4BLK, dev(8, 1)))),
        ("q", Ok((NF4FIFO, dev(0, 0)))),
        ("s", Err(NfsStat::NOENT)),
        ("p", Err(NfsStat::NOENT)),
    ]
    .into_iter()
    .enumerate()
    {
        let r = c
            .compound(vec![
                seq(sess, u32::try_from(i).unwrap() + 1, 0),
                NfsArgOp::Putrootfh,
                lookup(name),
                getattr(),
            ])
            .await;
        match want {
            Ok(w) => assert_eq!(type_and_rawdev(&r), w, "{name} after a restart"),
            Err(e) => assert_eq!(r.status, e, "{name} after a restart: {r:?}"),
        }
    }
    srv.stop().await;
}

/// RFC 8881 §18.10–§18.12, §9: LOCK from an open (new lock-owner) and from a lock stateid,
/// conflicts DENIED with the holder's range, type and owner, LOCKT likewise, read locks
/// shared, a downgrade by a new LOCK, LOCKU, OLD_STATEID for a superseded lock stateid,
/// FREE_STATEID of a lock stateid with locks LOCKS_HELD, a zero length INVAL, a write lock on
/// a read-only open OPENMODE, and a CLOSE releasing the open's locks.
#[tokio::test]
async fn byte_range_locks_conflict_downgrade_unlock_and_go_with_close() {
    let srv = start(None).await;
    let mut a = Client::connect(srv.addr).await;
    let mut b = Client::connect(srv.addr).await;
    let (cid_a, sa) = session(&mut a, b"wire-lock-a").await;
    let (cid_b, sb) = session(&mut b, b"wire-lock-b").await;
    let (mut qa, mut qb) = (0, 0);
    let open_of = |r: NfsResOp| match r {
        NfsResOp::Open(Ok(o)) => o.stateid,
        other => panic!("OPEN: {other:?}"),
    };
    let lock_ok = |r: NfsResOp| match r {
        NfsResOp::Lock(LockRes::Ok(s)) => s,
        other => panic!("LOCK: {other:?}"),
    };
    let oa = open_of(on_file(&mut a, sa, &mut qa, "", open_create(cid_a, "f")).await);
    let ob = open_of(on_file(&mut b, sb, &mut qb, "", open_create(cid_b, "f")).await);
    let la_owner = StateOwner {
        clientid: cid_a,
        owner: b"la".to_vec(),
    };
    let lb_owner = StateOwner {
        clientid: cid_b,
        owner: b"lb".to_vec(),
    };
    let la = lock_ok(
        on_file(
            &mut a,
            sa,
            &mut qa,
            "f",
            lock_new(LockType::Write, 0, 100, oa, la_owner.clone()),
        )
        .await,
    );
    // B is denied, and told who holds what.
    let r = on_file(
        &mut b,
        sb,
        &mut qb,
        "f",
        lock_new(LockType::Read, 50, 10, ob, lb_owner.clone()),
    )
    .await;
    let want = LockDenied {
        offset: 0,
        length: 100,
        locktype: LockType::Write,
        owner: la_owner.clone(),
    };
    assert_eq!(r, NfsResOp::Lock(LockRes::Denied(want.clone())));
    let r = on_file(
        &mut b,
        sb,
        &mut qb,
        "f",
        lockt(LockType::Read, 99, 1, lb_owner.clone()),
    )
    .await;
    assert_eq!(r, NfsResOp::Lockt(LocktRes::Denied(want)));
    let r = on_file(
        &mut b,
        sb,
        &mut qb,
        "f",
        lockt(LockType::Write, 100, 100, lb_owner.clone()),
    )
    .await;
    assert_eq!(r, NfsResOp::Lockt(LocktRes::Ok), "no overlap");
    // A downgrades to a read lock: B's read lock is granted, its write lock is not.
    let la2 = lock_ok(
        on_file(
            &mut a,
            sa,
            &mut qa,
            "f",
            lock_more(LockType::Read, 0, 100, la),
        )
        .await,
    );
    assert_eq!(la2.other, la.other);
    let lb = lock_ok(
        on_file(
            &mut b,
            sb,
            &mut qb,
            "f",
            lock_new(LockType::Read, 50, 10, ob, lb_owner.clone()),
        )
        .await,
    );
    let r = on_file(
        &mut b,
        sb,
        &mut qb,
        "f",
        lock_more(LockType::Write, 50, 10, lb),
    )
    .await;
    assert!(matches!(r, NfsResOp::Lock(LockRes::Denied(_))), "{r:?}");
    // The superseded stateid is old; the current one unlocks everything.
    let r = on_file(&mut a, sa, &mut qa, "f", locku(0, u64::MAX, la)).await;
    assert_eq!(r, NfsResOp::Locku(Err(NfsStat::OLD_STATEID)));
    let la3 = match on_file(&mut a, sa, &mut qa, "f", locku(0, u64::MAX, la2)).await {
        NfsResOp::Locku(Ok(s)) => s,
        other => panic!("LOCKU: {other:?}"),
    };
    let lb = lock_ok(
        on_file(
            &mut b,
            sb,
            &mut qb,
            "f",
            lock_more(LockType::Write, 50, 10, lb),
        )
        .await,
    );
    qb += 1;
    let r = b
        .compound(vec![seq(sb, qb, 0), NfsArgOp::FreeStateid(lb)])
        .await;
    assert_eq!(r.status, NfsStat::LOCKS_HELD);
    let r = on_file(
        &mut b,
        sb,
        &mut qb,
        "f",
        lock_more(LockType::Read, 0, 0, lb),
    )
    .await;
    assert_eq!(
        r,
        NfsResOp::Lock(LockRes::Error(NfsStat::INVAL)),
        "zero length"
    );
    // B's CLOSE takes its lock with it: A may write-lock the range.
    let r = on_file(
        &mut b,
        sb,
        &mut qb,
        "f",
        NfsArgOp::Close(CloseArgs {
            seqid: 0,
            open_stateid: ob,
        }),
    )
    .await;
    assert!(matches!(r, NfsResOp::Close(Ok(_))), "{r:?}");
    let r = on_file(
        &mut a,
        sa,
        &mut qa,
        "f",
        lock_more(LockType::Write, 50, 10, la3),
    )
    .await;
    assert!(
        matches!(r, NfsResOp::Lock(LockRes::Ok(_))),
        "after B's CLOSE: {r:?}"
    );
    // A read-only open cannot carry a write lock.
    let r = on_file(
        &mut b,
        sb,
        &mut qb,
        "",
        NfsArgOp::Open(OpenArgs {
            share_access: OPEN4_SHARE_ACCESS_READ,
            ..match open_create(cid_b, "g") {
                NfsArgOp::Open(o) => o,
                _ => unreachable!(),
            }
        }),
    )
    .await;
    let og = open_of(r);
    let r = on_file(
        &mut b,
        sb,
        &mut qb,
        "g",
        lock_new(LockType::Write, 0, 1, og, lb_owner),
    )
    .await;
    assert_eq!(r, NfsResOp::Lock(LockRes::Error(NfsStat::OPENMODE)));
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

fn write_op(offset: u64, stable: StableHow, data: &[u8]) -> NfsArgOp {
    NfsArgOp::Write(WriteArgs {
        stateid: Stateid::CURRENT,
        offset,
        stable,
        data: data.to_vec(),
    })
}

/// The WRITE result at `i` of `r`: (committed, verifier).
fn write_res(r: &CompoundRes, i: usize) -> (StableHow, Verifier) {
    match r.resarray.get(i) {
        Some(NfsResOp::Write(Ok(w))) => {
            assert_eq!(w.count as usize, 4096, "WRITE count: {r:?}");
            (w.committed, w.writeverf)
        }
        _ => panic!("WRITE at {i}: {r:?}"),
    }
}

fn commit_verf(r: &CompoundRes, i: usize) -> Verifier {
    match r.resarray.get(i) {
        Some(NfsResOp::Commit(Ok(c))) => c.writeverf,
        _ => panic!("COMMIT at {i}: {r:?}"),
    }
}

/// RFC 8881 §18.32.3 / §18.3: an UNSTABLE4 WRITE is answered UNSTABLE4 (nothing synced for
/// it), FILE_SYNC4 and DATA_SYNC4 FILE_SYNC4; all carry the same verifier, which COMMIT
/// returns too; READ sees unstable data at once. What COMMIT made durable survives a restart,
/// and the verifier after the restart differs, so a client that had not committed knows it
/// must send its writes again.
#[tokio::test]
async fn unstable_writes_commit_and_the_verifier_changes_at_restart() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let (cid, sess) = session(&mut c, b"wire-unstable").await;
    let r = c
        .compound(vec![
            seq(sess, 1, 0),
            NfsArgOp::Putrootfh,
            open_create(cid, "f"),
            write_op(0, StableHow::Unstable, &[1; 4096]),
            write_op(4096, StableHow::FileSync, &[2; 4096]),
            write_op(8192, StableHow::DataSync, &[3; 4096]),
            write_op(12288, StableHow::Unstable, &[4; 4096]),
            NfsArgOp::Read(ReadArgs {
                stateid: Stateid::CURRENT,
                offset: 0,
                count: 16384,
            }),
            NfsArgOp::Commit(CommitArgs {
                offset: 0,
                count: 0,
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "{r:?}");
    let (u1, verf) = write_res(&r, 3);
    assert_eq!(u1, StableHow::Unstable, "UNSTABLE4 WRITE");
    for (i, want) in [
        (4, StableHow::FileSync),
        (5, StableHow::FileSync),
        (6, StableHow::Unstable),
    ] {
        assert_eq!(write_res(&r, i), (want, verf), "WRITE {i}");
    }
    match r.resarray.get(7) {
        Some(NfsResOp::Read(Ok(rd))) => {
            let want: Vec<u8> = [1u8, 2, 3, 4].iter().flat_map(|&b| [b; 4096]).collect();
            assert!(rd.data == want, "READ before COMMIT sees every write");
        }
        _ => panic!("READ: {r:?}"),
    }
    assert_eq!(
        commit_verf(&r, 8),
        verf,
        "COMMIT returns the write verifier"
    );
    // A COMMIT of a directory is ISDIR (RFC 8881 §18.3.4 via §15.1).
    let r = c
        .compound(vec![
            seq(sess, 2, 0),
            NfsArgOp::Putrootfh,
            NfsArgOp::Commit(CommitArgs {
                offset: 0,
                count: 0,
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::ISDIR, "{r:?}");

    let srv = start(Some(srv.stop().await)).await;
    let mut c = Client::connect(srv.addr).await;
    let (_, sess) = session(&mut c, b"wire-unstable").await;
    let r = c
        .compound(vec![seq(sess, 1, 0), NfsArgOp::ReclaimComplete(false)])
        .await;
    assert_eq!(r.status, NfsStat::OK, "{r:?}");
    let r = c
        .compound(vec![
            seq(sess, 2, 0),
            NfsArgOp::Putrootfh,
            lookup("f"),
            NfsArgOp::Read(ReadArgs {
                stateid: Stateid::ANONYMOUS,
                offset: 0,
                count: 16384,
            }),
            NfsArgOp::Commit(CommitArgs {
                offset: 0,
                count: 0,
            }),
        ])
        .await;
    assert_eq!(r.status, NfsStat::OK, "{r:?}");
    match r.resarray.get(3) {
        Some(NfsResOp::Read(Ok(rd))) => {
            assert_eq!(rd.data.len(), 16384, "the committed size");
            assert!(
                rd.data
                    .chunks(4096)
                    .zip(1u8..)
                    .all(|(s, b)| s.iter().all(|&x| x == b)),
                "committed data after the restart"
            );
        }
        _ => panic!("READ: {r:?}"),
    }
    assert_ne!(
        commit_verf(&r, 4),
        verf,
        "the verifier changes at a restart"
    );
    srv.stop().await;
}
