//! Seeded round-trip tests: decode(encode(x)) == x for the arguments and results of every
//! NFSv4 operation, COMPOUNDs of them and typed attributes; and decoders never panic on
//! truncated, mutated or random input.
//!
//! The seed is printed; set `PNFS_PROTO_SEED` to replay one.

use pnfs_proto::nfs4::attr::*;
use pnfs_proto::nfs4::*;
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrDecode, XdrEncode};

#[path = "nfs4_gen.rs"]
mod gen;
use gen::*;

fn round_trip<T: XdrEncode + XdrDecode + PartialEq + std::fmt::Debug>(x: &T) -> Vec<u8> {
    let bytes = to_bytes(x);
    assert_eq!(bytes.len() % 4, 0, "{x:?}: not whole XDR units");
    match from_bytes::<T>(&bytes) {
        Ok(back) => assert_eq!(&back, x),
        Err(e) => panic!("{x:?} did not decode: {e}"),
    }
    bytes
}

/// Every prefix shorter than the whole must fail (not panic), and so must a trailing byte.
fn truncations_fail<T: XdrDecode + std::fmt::Debug>(bytes: &[u8]) {
    for cut in 0..bytes.len() {
        if let Ok(v) = from_bytes::<T>(&bytes[..cut]) {
            panic!("prefix of {cut}/{} bytes decoded: {v:?}", bytes.len());
        }
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(from_bytes::<T>(&longer).is_err());
}

/// Random byte flips must never panic (the result may be Ok or Err).
fn mutations_do_not_panic<T: XdrDecode>(bytes: &[u8], r: &mut Rng) {
    if bytes.is_empty() {
        return;
    }
    for _ in 0..32 {
        let mut m = bytes.to_vec();
        for _ in 0..=r.below(4) {
            let i = r.below(m.len());
            m[i] = u8::gen(r);
        }
        let _ = from_bytes::<T>(&m);
    }
}

#[test]
fn every_op_kind_is_covered_once() {
    // Each kind maps to a distinct opnum, and together they are every op but ILLEGAL.
    let mut r = Rng::new(1);
    let mut nums: Vec<u32> = (0..=ARGOP_KINDS)
        .map(|k| gen_argop(k, &mut r).opnum())
        .collect();
    nums.sort_unstable();
    nums.dedup();
    assert_eq!(nums, (OP_ACCESS..=OP_CLONE).collect::<Vec<_>>());
}

#[test]
fn every_op_args_and_result_round_trip() {
    let mut r = Rng::new(seed());
    for round in 0..40 {
        for k in 0..=ARGOP_KINDS {
            let arg = gen_argop(k, &mut r);
            let res = gen_resop(&arg, &mut r);
            let ab = round_trip(&arg);
            let rb = round_trip(&res);
            assert_eq!(res.opnum(), arg.opnum());
            if round < 4 {
                truncations_fail::<NfsArgOp>(&ab);
                truncations_fail::<NfsResOp>(&rb);
            }
            mutations_do_not_panic::<NfsArgOp>(&ab, &mut r);
            mutations_do_not_panic::<NfsResOp>(&rb, &mut r);
            // The error result for this op keeps the op and the status.
            let err = NfsResOp::error_for(&arg, NfsStat::SERVERFAULT);
            assert_eq!(
                (err.opnum(), err.status()),
                (arg.opnum(), NfsStat::SERVERFAULT)
            );
            round_trip(&err);
        }
    }
}

#[test]
fn compounds_round_trip_and_refuse_truncation() {
    let mut r = Rng::new(seed() ^ 0xc0de);
    for _ in 0..200 {
        let n = r.below(8);
        let ops: Vec<NfsArgOp> = (0..n)
            .map(|_| gen_argop(r.below(ARGOP_KINDS + 1), &mut r))
            .collect();
        let results: Vec<NfsResOp> = ops.iter().map(|op| gen_resop(op, &mut r)).collect();
        let args = CompoundArgs::new(String::gen(&mut r), ops);
        let res = CompoundRes::new(String::gen(&mut r), results);
        let ab = round_trip(&args);
        let rb = round_trip(&res);
        truncations_fail::<CompoundArgs>(&ab);
        truncations_fail::<CompoundRes>(&rb);
        mutations_do_not_panic::<CompoundArgs>(&ab, &mut r);
        mutations_do_not_panic::<CompoundRes>(&rb, &mut r);
    }
}

#[test]
fn random_bytes_never_panic_the_decoders() {
    let mut r = Rng::new(seed() ^ 0xf00d);
    for _ in 0..20_000 {
        let n = r.below(96);
        let mut bytes: Vec<u8> = (0..n).map(|_| u8::gen(&mut r)).collect();
        // Plausible headers make the decoders go deeper: empty tag, minor version 1, few ops,
        // and a real opnum.
        if n >= 16 && r.below(2) == 0 {
            bytes[..12].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
            let op = u32::try_from(3 + r.below(69)).unwrap();
            bytes[12..16].copy_from_slice(&op.to_be_bytes());
        }
        let _ = from_bytes::<CompoundArgs>(&bytes);
        let _ = from_bytes::<CompoundRes>(&bytes);
        let _ = from_bytes::<Fattr4>(&bytes).map(|f| Fattr::from_fattr4(&f));
    }
}

#[test]
fn typed_attributes_round_trip() {
    let mut r = Rng::new(seed() ^ 0xa77);
    for _ in 0..500 {
        let attrs = Fattr::gen(&mut r);
        let f = attrs.to_fattr4();
        assert!(f.attrmask.same_bits(&attrs.mask()));
        assert_eq!(Fattr::from_fattr4(&f), Ok(attrs.clone()));
        // Asking for a random subset yields exactly the set ∩ requested attributes.
        let request = Bitmap4::from_bits(
            &Fattr::KNOWN
                .iter()
                .copied()
                .filter(|_| r.below(2) == 0)
                .collect::<Vec<_>>(),
        );
        let sub = attrs.encode_masked(&request);
        assert!(sub.attrmask.same_bits(&attrs.mask().intersection(&request)));
        let back = Fattr::from_fattr4(&sub).unwrap();
        for bit in Fattr::KNOWN {
            assert_eq!(back.mask().contains(*bit), sub.attrmask.contains(*bit));
        }
        let bytes = round_trip(&attrs);
        mutations_do_not_panic::<Fattr>(&bytes, &mut r);
    }
}

#[test]
fn bitmap_set_operations() {
    let a = Bitmap4::from_bits(&[0, 4, 33, 65]);
    assert_eq!(a.0, vec![0b10001, 0b10, 0b10]);
    assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 4, 33, 65]);
    let b = Bitmap4::from_bits(&[4, 65, 70]);
    assert_eq!(a.intersection(&b).iter().collect::<Vec<_>>(), vec![4, 65]);
    assert_eq!(a.difference(&b).iter().collect::<Vec<_>>(), vec![0, 33]);
    assert!(Bitmap4(vec![1, 0, 0]).same_bits(&Bitmap4(vec![1])));
    let mut c = a.clone();
    c.clear(65);
    assert!(!c.contains(65) && c.contains(33));
    // Too many words on the wire.
    let words = Bitmap4(vec![0; NFS4_MAX_BITMAP_WORDS + 1]);
    assert!(from_bytes::<Bitmap4>(&to_bytes(&words)).is_err());
}
