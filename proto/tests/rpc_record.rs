//! Record marking and rpc_msg header tests (RFC 5531).

use pnfs_proto::rpc::*;
use pnfs_proto::xdr::{from_bytes, to_bytes, Encoder, XdrError};

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

#[test]
fn multi_fragment_record_is_reassembled() {
    let data = payload(1000);
    let mut wire = Vec::new();
    write_record(&data, 300, &mut wire);
    // 4 fragments: 300, 300, 300, 100 (last).
    assert_eq!(wire.len(), 1000 + 4 * 4);
    assert_eq!(&wire[..4], &[0, 0, 0x01, 0x2c]);
    assert_eq!(&wire[304..308], &[0, 0, 0x01, 0x2c]);
    assert_eq!(&wire[912..916], &[0x80, 0, 0, 100]);
    let mut r = RecordReader::new(1000);
    let recs = r.feed_all(&wire).unwrap();
    assert_eq!(recs, vec![data]);
    assert!(r.is_idle());
}

#[test]
fn byte_by_byte_feeding_yields_each_record_once() {
    let a = payload(17);
    let b = payload(0);
    let c = payload(64);
    let mut wire = Vec::new();
    write_record(&a, 5, &mut wire);
    write_record(&b, 5, &mut wire);
    write_record(&c, 64, &mut wire);
    let mut r = RecordReader::new(64);
    let mut got = Vec::new();
    for byte in &wire {
        let (used, rec) = r.feed(std::slice::from_ref(byte)).unwrap();
        assert_eq!(used, 1);
        got.extend(rec);
    }
    assert_eq!(got, vec![a, b, c]);
    assert!(r.is_idle());
}

#[test]
fn feed_stops_at_the_end_of_a_record() {
    let mut wire = Vec::new();
    write_record(b"one!", 100, &mut wire);
    write_record(b"two!", 100, &mut wire);
    let mut r = RecordReader::new(100);
    let (used, rec) = r.feed(&wire).unwrap();
    assert_eq!(used, 8);
    assert_eq!(rec.as_deref(), Some(&b"one!"[..]));
    let (used, rec) = r.feed(&wire[8..]).unwrap();
    assert_eq!(used, 8);
    assert_eq!(rec.as_deref(), Some(&b"two!"[..]));
}

#[test]
fn oversized_record_is_refused_at_the_header_and_the_error_sticks() {
    let mut r = RecordReader::new(1024);
    // One fragment that claims 1025 bytes: refused before any body arrives.
    let err = r.feed(&[0x80, 0, 0x04, 0x01]).unwrap_err();
    assert!(
        matches!(
            err,
            XdrError::TooLong {
                len: 1025,
                limit: 1024,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(r.feed(&[0]).unwrap_err(), err);

    // Two fragments that are each fine but together too large.
    let mut wire = Vec::new();
    write_record(&payload(1500), 1000, &mut wire);
    let mut r = RecordReader::new(1024);
    let err = r.feed_all(&wire).unwrap_err();
    assert!(
        matches!(
            err,
            XdrError::TooLong {
                len: 1500,
                limit: 1024,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn endless_empty_fragments_are_refused() {
    let mut r = RecordReader::new(16);
    let empty_fragment = [0u8, 0, 0, 0];
    let mut result = Ok((0, None));
    for _ in 0..=RECORD_MAX_FRAGMENTS {
        result = r.feed(&empty_fragment);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(
        result,
        Err(XdrError::TooLong {
            what: "RPC record fragments",
            ..
        })
    ));
}

#[test]
fn begin_finish_record_writes_one_last_fragment() {
    let mut enc = Encoder::new();
    let at = begin_record(&mut enc);
    enc.put_u32(7);
    enc.put_u32(8);
    finish_record(&mut enc, at).unwrap();
    assert_eq!(enc.as_slice(), &[0x80, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 8]);
}

/// A NULL call with AUTH_SYS, bytes derived by hand from RFC 5531.
#[test]
fn call_header_byte_exact() {
    let msg = RpcMsg::call(
        0x0102_0304,
        CallBody {
            rpcvers: RPC_VERSION,
            prog: NFS_PROGRAM,
            vers: NFS_V4,
            proc_num: NFSPROC4_COMPOUND,
            cred: OpaqueAuth::Sys(AuthSys {
                stamp: 0x11,
                machine_name: "ab".into(),
                uid: 0,
                gid: 0,
                gids: vec![10],
            }),
            verf: OpaqueAuth::None,
        },
    );
    let expected: Vec<u8> = [
        "01020304", // xid
        "00000000", // CALL
        "00000002", // rpcvers 2
        "000186a3", // prog 100003
        "00000004", // vers 4
        "00000001", // proc COMPOUND
        "00000001", // cred flavor AUTH_SYS
        "0000001c", // cred body length 28
        "00000011", //   stamp
        "00000002", //   machinename length 2
        "61620000", //   "ab" + pad
        "00000000", //   uid
        "00000000", //   gid
        "00000001", //   gids count
        "0000000a", //   gid 10
        "00000000", // verf flavor AUTH_NONE
        "00000000", // verf length 0
    ]
    .iter()
    .flat_map(|h| hex(h))
    .collect();
    assert_eq!(to_bytes(&msg), expected);
    let (back, rest) = decode_message(&expected).unwrap();
    assert_eq!(back, msg);
    assert!(rest.is_empty());
}

#[test]
fn every_reply_kind_round_trips() {
    let replies = [
        ReplyBody::success(),
        ReplyBody::accepted(AcceptStat::ProgUnavail),
        ReplyBody::accepted(AcceptStat::ProgMismatch { low: 4, high: 4 }),
        ReplyBody::accepted(AcceptStat::ProcUnavail),
        ReplyBody::accepted(AcceptStat::GarbageArgs),
        ReplyBody::accepted(AcceptStat::SystemErr),
        ReplyBody::Denied(RejectedReply::RpcMismatch { low: 2, high: 2 }),
        ReplyBody::Denied(RejectedReply::AuthError(AuthStat::TOOWEAK)),
    ];
    for r in replies {
        let msg = RpcMsg::reply(9, r);
        let bytes = to_bytes(&msg);
        assert_eq!(from_bytes::<RpcMsg>(&bytes), Ok(msg.clone()));
        for cut in 0..bytes.len() {
            assert!(from_bytes::<RpcMsg>(&bytes[..cut]).is_err());
        }
    }
    // Denied AUTH_ERROR, by hand: xid, REPLY, MSG_DENIED, AUTH_ERROR, AUTH_BADCRED.
    let bytes = to_bytes(&RpcMsg::reply(
        5,
        ReplyBody::Denied(RejectedReply::AuthError(AuthStat::BADCRED)),
    ));
    assert_eq!(bytes, hex("0000000500000001000000010000000100000001"));
}

#[test]
fn auth_limits_are_enforced() {
    // A body longer than 400 bytes.
    let other = OpaqueAuth::Other {
        flavor: RPCSEC_GSS,
        body: vec![0; 401],
    };
    assert!(from_bytes::<OpaqueAuth>(&to_bytes(&other)).is_err());
    let other = OpaqueAuth::Other {
        flavor: RPCSEC_GSS,
        body: vec![0; 400],
    };
    assert_eq!(from_bytes::<OpaqueAuth>(&to_bytes(&other)), Ok(other));
    // 17 gids.
    let sys = OpaqueAuth::Sys(AuthSys {
        gids: vec![1; 17],
        ..AuthSys::default()
    });
    assert!(from_bytes::<OpaqueAuth>(&to_bytes(&sys)).is_err());
    // Machine name of 256 bytes.
    let sys = OpaqueAuth::Sys(AuthSys {
        machine_name: "x".repeat(256),
        ..AuthSys::default()
    });
    assert!(from_bytes::<OpaqueAuth>(&to_bytes(&sys)).is_err());
    // Trailing bytes inside an AUTH_SYS body are an error.
    let mut bytes = to_bytes(&OpaqueAuth::Sys(AuthSys::default()));
    bytes[7] += 4;
    bytes.extend_from_slice(&[0; 4]);
    assert!(from_bytes::<OpaqueAuth>(&bytes).is_err());
}

#[test]
fn random_bytes_never_panic_the_reader_or_header_decoder() {
    // Seeded StdRng, seed logged.
    let seed = 0x5eed_1234_u64;
    println!("seed {seed:#x}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut next = || rand::RngCore::next_u64(&mut rng);
    for _ in 0..2000 {
        let len = usize::try_from(next() % 64).unwrap();
        let bytes: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        let _ = decode_message(&bytes);
        let mut r = RecordReader::new(32);
        let _ = r.feed_all(&bytes);
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
