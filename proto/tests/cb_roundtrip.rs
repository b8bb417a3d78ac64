//! The callback program: hand-checked encodings, round trips of every operation's arguments
//! and results, the CB_ILLEGAL rule, limits, and never-panic decoding.
//!
//! Random tests print their seed; force one with `PNFS_TEST_SEED=<n>`.

// The generators cut random u64s down to bytes and small counts on purpose.
#![allow(clippy::cast_possible_truncation)]

use pnfs_proto::nfs4::cb::*;
use pnfs_proto::nfs4::types::{
    DeviceId, FileHandle, LayoutIoMode, LayoutType, NfsStat, SessionId, Stateid,
};
use pnfs_proto::nfs4::{
    Bitmap4, Fattr4, ModifiedLimit, NfsAce, OpenDelegation, OpenNoneDelegation, OpenReadDelegation,
    OpenWriteDelegation, SpaceLimit, StateOwner,
};
use pnfs_proto::xdr::{from_bytes, to_bytes, XdrError};

mod common;
use common::Rng;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.bytes())
        .filter(u8::is_ascii_hexdigit)
        .collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// A CB_COMPOUND as an MDS sends it to recall a block layout (RFC 8881 §20.3, §20.9).
const LAYOUTRECALL_ARGS_HEX: &str = "
    00000000                              # tag: empty
    00000001                              # minorversion 1
    00000000                              # callback_ident
    00000002                              # 2 ops
    0000000b                              # OP_CB_SEQUENCE
    11111111111111111111111111111111      # csa_sessionid
    00000001 00000000 00000000            # sequenceid 1, slot 0, highest slot 0
    00000000                              # cachethis false
    00000001                              # 1 referring call list
    22222222222222222222222222222222      #   rcl_sessionid
    00000001 00000005 00000002            #   1 call: sequenceid 5, slot 2
    00000005                              # OP_CB_LAYOUTRECALL
    00000003 00000003 00000001            # LAYOUT4_BLOCK_VOLUME, IOMODE_ANY, changed
    00000001                              # LAYOUTRECALL4_FILE
    00000008 01020304 05060708            #   fh (8 bytes)
    0000000000000000 ffffffffffffffff     #   offset 0, length to EOF
    00000002 aaaaaaaaaaaaaaaaaaaaaaaa     #   layout stateid seqid 2
";

/// The client's reply: CB_SEQUENCE fine, no matching layout.
const LAYOUTRECALL_RES_HEX: &str = "
    0000274c                              # NFS4ERR_NOMATCHING_LAYOUT (10060)
    00000000                              # tag: empty
    00000002                              # 2 results
    0000000b 00000000                     # CB_SEQUENCE, NFS4_OK
    11111111111111111111111111111111
    00000001 00000000 00000000 00000000   # seq 1, slot 0, highest 0, target highest 0
    00000005 0000274c                     # CB_LAYOUTRECALL, NFS4ERR_NOMATCHING_LAYOUT
";

fn sequence_args() -> CbArgOp {
    CbArgOp::Sequence(CbSequenceArgs {
        sessionid: SessionId([0x11; 16]),
        sequenceid: 1,
        slotid: 0,
        highest_slotid: 0,
        cachethis: false,
        referring_call_lists: vec![ReferringCallList {
            sessionid: SessionId([0x22; 16]),
            calls: vec![ReferringCall {
                sequenceid: 5,
                slotid: 2,
            }],
        }],
    })
}

#[test]
fn layoutrecall_compound_matches_hand_encoding() {
    let args = CbCompoundArgs {
        tag: String::new(),
        minorversion: 1,
        callback_ident: 0,
        ops: vec![
            sequence_args(),
            CbArgOp::LayoutRecall(CbLayoutRecallArgs {
                layout_type: LayoutType::BlockVolume,
                iomode: LayoutIoMode::Any,
                changed: true,
                recall: LayoutRecall::File(LayoutRecallFile {
                    fh: FileHandle(vec![1, 2, 3, 4, 5, 6, 7, 8]),
                    offset_bytes: 0,
                    length_bytes: u64::MAX,
                    stateid: Stateid {
                        seqid: 2,
                        other: [0xaa; 12],
                    },
                }),
            }),
        ],
    };
    let bytes = hex(LAYOUTRECALL_ARGS_HEX);
    assert_eq!(to_bytes(&args), bytes);
    assert_eq!(from_bytes::<CbCompoundArgs>(&bytes), Ok(args.clone()));

    let res = CbCompoundRes::from_results(
        String::new(),
        vec![
            CbResOp::Sequence(Ok(CbSequenceResOk {
                sessionid: SessionId([0x11; 16]),
                sequenceid: 1,
                slotid: 0,
                highest_slotid: 0,
                target_highest_slotid: 0,
            })),
            CbResOp::error_for(&args.ops[1], NfsStat::NOMATCHING_LAYOUT),
        ],
    );
    assert_eq!(res.status, NfsStat::NOMATCHING_LAYOUT);
    let bytes = hex(LAYOUTRECALL_RES_HEX);
    assert_eq!(to_bytes(&res), bytes);
    assert_eq!(from_bytes::<CbCompoundRes>(&bytes), Ok(res));
}

#[test]
fn recall_any_and_notify_deviceid_match_hand_encoding() {
    let bytes = hex("
        00000004 74657374                 # tag 'test'
        00000001 00000000 00000002        # minorversion 1, ident 0, 2 ops
        00000008                          # OP_CB_RECALL_ANY
        00000000                          #   keep 0 objects
        00000001 00000010                 #   type mask: bit 4 (RCA4_TYPE_MASK_BLK_LAYOUT)
        0000000e                          # OP_CB_NOTIFY_DEVICEID
        00000001                          #   one notify4 ...
        00000001 00000006                 #   ... with bits 1 (CHANGE) and 2 (DELETE)
        0000002c                          #   44 bytes of values, in bit order:
        00000003 33333333333333333333333333333333 00000001  # change: block, dev, immediate
        00000003 44444444444444444444444444444444           # delete: block, dev
    ");
    let args = from_bytes::<CbCompoundArgs>(&bytes).unwrap();
    assert_eq!(args.tag, "test");
    match &args.ops[0] {
        CbArgOp::RecallAny(a) => {
            assert_eq!(a.objects_to_keep, 0);
            assert!(a.type_mask.contains(RCA4_TYPE_MASK_BLK_LAYOUT));
            assert!(!a.type_mask.contains(RCA4_TYPE_MASK_FILE_LAYOUT));
        }
        other => panic!("not CB_RECALL_ANY: {other:?}"),
    }
    let want = CbNotifyDeviceidArgs {
        changes: vec![
            DeviceNotification::Change {
                layout_type: LayoutType::BlockVolume,
                device_id: DeviceId([0x33; 16]),
                immediate: true,
            },
            DeviceNotification::Delete {
                layout_type: LayoutType::BlockVolume,
                device_id: DeviceId([0x44; 16]),
            },
        ],
    };
    assert_eq!(args.ops[1], CbArgOp::NotifyDeviceid(want.clone()));
    // Our encoder writes one notify4 per notification.
    let enc = to_bytes(&want);
    assert_eq!(
        enc,
        hex("
            00000002
            00000001 00000002 00000018 00000003 33333333333333333333333333333333 00000001
            00000001 00000004 00000014 00000003 44444444444444444444444444444444
        ")
    );
}

#[test]
fn unknown_operation_becomes_illegal_and_ends_the_list() {
    // CB_SEQUENCE, then op 99 followed by bytes nobody can parse, then more "ops".
    let mut bytes = hex("00000000 00000001 00000000 00000003");
    bytes.extend(to_bytes(&sequence_args()));
    bytes.extend(hex("00000063 deadbeef 00000004"));
    let args = from_bytes::<CbCompoundArgs>(&bytes).unwrap();
    assert_eq!(args.ops.len(), 2);
    assert_eq!(args.ops[1], CbArgOp::Illegal { opnum: 99 });
    assert_eq!(
        CbResOp::error_for(&args.ops[1], NfsStat::OK),
        CbResOp::Illegal(NfsStat::OP_ILLEGAL)
    );
    // NFSv4.2's CB_OFFLOAD is not an NFSv4.1 operation either.
    let mut bytes = hex("00000000 00000001 00000000 00000001");
    bytes.extend(hex("0000000f 01020304"));
    assert_eq!(
        from_bytes::<CbCompoundArgs>(&bytes).unwrap().ops,
        vec![CbArgOp::Illegal {
            opnum: OP_CB_OFFLOAD
        }]
    );
    // The illegal result round-trips; an unknown result op number is an error.
    let res = CbCompoundRes::from_results("t".into(), vec![CbResOp::Illegal(NfsStat::OP_ILLEGAL)]);
    assert_eq!(res.status, NfsStat::OP_ILLEGAL);
    assert_eq!(from_bytes::<CbCompoundRes>(&to_bytes(&res)), Ok(res));
    assert_eq!(
        from_bytes::<CbCompoundRes>(&hex("00000000 00000000 00000001 00000063 00000000")),
        Err(XdrError::BadEnum {
            what: "nfs_cb_resop4",
            value: 99
        })
    );
}

#[test]
fn limits_are_enforced() {
    // More ops than CB_MAX_OPS.
    let err =
        from_bytes::<CbCompoundArgs>(&hex("00000000 00000001 00000000 00000041")).unwrap_err();
    assert!(
        matches!(
            err,
            XdrError::TooLong {
                len: 65,
                limit: 64,
                ..
            }
        ),
        "{err:?}"
    );
    // A tag longer than the limit.
    let mut b = hex("00000401");
    b.extend(vec![b'a'; 1028]);
    assert!(matches!(
        from_bytes::<CbCompoundArgs>(&b),
        Err(XdrError::TooLong { len: 1025, .. })
    ));
    // An unknown notification bit, and values left over after the known ones.
    let unknown = hex(
        "00000000 00000001 00000000 00000001 0000000e 00000001 00000001 00000001 00000008 00000000 00000000",
    );
    assert_eq!(
        from_bytes::<CbCompoundArgs>(&unknown),
        Err(XdrError::BadEnum {
            what: "notify_deviceid_type4",
            value: 0
        })
    );
    let trailing = hex("
        00000000 00000001 00000000 00000001 0000000e 00000001
        00000001 00000004 00000018
        00000003 44444444444444444444444444444444 00000000
    ");
    assert_eq!(
        from_bytes::<CbCompoundArgs>(&trailing),
        Err(XdrError::Trailing { count: 4 })
    );
    // Bad enum values inside an op.
    let bad_iomode = hex("00000000 00000001 00000000 00000001 00000005 00000003 00000009");
    assert_eq!(
        from_bytes::<CbCompoundArgs>(&bad_iomode),
        Err(XdrError::BadEnum {
            what: "layoutiomode4",
            value: 9
        })
    );
    let bad_recall =
        hex("00000000 00000001 00000000 00000001 00000005 00000003 00000001 00000000 00000004");
    assert_eq!(
        from_bytes::<CbCompoundArgs>(&bad_recall),
        Err(XdrError::BadEnum {
            what: "layoutrecall_type4",
            value: 4
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Random round trips of every operation.

fn fh(rng: &mut Rng) -> FileHandle {
    let n = rng.below(129) as usize;
    FileHandle(rng.bytes(n))
}

fn stateid(rng: &mut Rng) -> Stateid {
    Stateid {
        seqid: rng.u32(),
        other: rng.array(),
    }
}

fn bitmap(rng: &mut Rng) -> Bitmap4 {
    let n = rng.below(4) as usize;
    Bitmap4((0..n).map(|_| rng.u32()).collect())
}

fn layout_type(rng: &mut Rng) -> LayoutType {
    LayoutType::from_u32(rng.below(8) as u32)
}

fn ace(rng: &mut Rng) -> NfsAce {
    NfsAce {
        ace_type: rng.u32(),
        flag: rng.u32(),
        access_mask: rng.u32(),
        who: rng.string(40),
    }
}

fn random_arg_op(rng: &mut Rng, opnum: u32) -> CbArgOp {
    match opnum {
        OP_CB_GETATTR => CbArgOp::Getattr(CbGetattrArgs {
            fh: fh(rng),
            attr_request: bitmap(rng),
        }),
        OP_CB_RECALL => CbArgOp::Recall(CbRecallArgs {
            stateid: stateid(rng),
            truncate: rng.bool(),
            fh: fh(rng),
        }),
        OP_CB_LAYOUTRECALL => CbArgOp::LayoutRecall(CbLayoutRecallArgs {
            layout_type: layout_type(rng),
            iomode: [
                LayoutIoMode::Read,
                LayoutIoMode::ReadWrite,
                LayoutIoMode::Any,
            ][rng.below(3) as usize],
            changed: rng.bool(),
            recall: match rng.below(3) {
                0 => LayoutRecall::File(LayoutRecallFile {
                    fh: fh(rng),
                    offset_bytes: rng.next(),
                    length_bytes: rng.next(),
                    stateid: stateid(rng),
                }),
                1 => LayoutRecall::Fsid(Fsid {
                    major: rng.next(),
                    minor: rng.next(),
                }),
                _ => LayoutRecall::All,
            },
        }),
        OP_CB_NOTIFY => CbArgOp::Notify(CbNotifyArgs {
            stateid: stateid(rng),
            fh: fh(rng),
            changes: (0..rng.below(4))
                .map(|_| Notify4 {
                    mask: bitmap(rng),
                    vals: {
                        let n = rng.below(64) as usize;
                        rng.bytes(n)
                    },
                })
                .collect(),
        }),
        OP_CB_PUSH_DELEG => CbArgOp::PushDeleg(CbPushDelegArgs {
            fh: fh(rng),
            delegation: match rng.below(4) {
                0 => OpenDelegation::None,
                1 => OpenDelegation::Read(OpenReadDelegation {
                    stateid: stateid(rng),
                    recall: rng.bool(),
                    permissions: ace(rng),
                }),
                2 => OpenDelegation::Write(OpenWriteDelegation {
                    stateid: stateid(rng),
                    recall: rng.bool(),
                    space_limit: if rng.bool() {
                        SpaceLimit::Size(rng.next())
                    } else {
                        SpaceLimit::Blocks(ModifiedLimit {
                            num_blocks: rng.u32(),
                            bytes_per_block: rng.u32(),
                        })
                    },
                    permissions: ace(rng),
                }),
                _ => OpenDelegation::NoneExt(match rng.below(3) {
                    0 => OpenNoneDelegation::Contention {
                        server_will_push_deleg: rng.bool(),
                    },
                    1 => OpenNoneDelegation::Resource {
                        server_will_signal_avail: rng.bool(),
                    },
                    _ => OpenNoneDelegation::Other([0, 3, 4, 5, 6, 7, 8][rng.below(7) as usize]),
                }),
            },
        }),
        OP_CB_RECALL_ANY | OP_CB_RECALLABLE_OBJ_AVAIL => {
            let a = CbRecallAnyArgs {
                objects_to_keep: rng.u32(),
                type_mask: bitmap(rng),
            };
            if opnum == OP_CB_RECALL_ANY {
                CbArgOp::RecallAny(a)
            } else {
                CbArgOp::RecallableObjAvail(a)
            }
        }
        OP_CB_RECALL_SLOT => CbArgOp::RecallSlot(CbRecallSlotArgs {
            target_highest_slotid: rng.u32(),
        }),
        OP_CB_SEQUENCE => CbArgOp::Sequence(CbSequenceArgs {
            sessionid: SessionId(rng.array()),
            sequenceid: rng.u32(),
            slotid: rng.u32(),
            highest_slotid: rng.u32(),
            cachethis: rng.bool(),
            referring_call_lists: (0..rng.below(3))
                .map(|_| ReferringCallList {
                    sessionid: SessionId(rng.array()),
                    calls: (0..rng.below(4))
                        .map(|_| ReferringCall {
                            sequenceid: rng.u32(),
                            slotid: rng.u32(),
                        })
                        .collect(),
                })
                .collect(),
        }),
        OP_CB_WANTS_CANCELLED => CbArgOp::WantsCancelled(CbWantsCancelledArgs {
            contended_wants_cancelled: rng.bool(),
            resourced_wants_cancelled: rng.bool(),
        }),
        OP_CB_NOTIFY_LOCK => CbArgOp::NotifyLock(CbNotifyLockArgs {
            fh: fh(rng),
            lock_owner: StateOwner {
                clientid: rng.next(),
                owner: {
                    let n = rng.below(100) as usize;
                    rng.bytes(n)
                },
            },
        }),
        OP_CB_NOTIFY_DEVICEID => CbArgOp::NotifyDeviceid(CbNotifyDeviceidArgs {
            changes: (0..rng.below(5))
                .map(|_| {
                    if rng.bool() {
                        DeviceNotification::Change {
                            layout_type: layout_type(rng),
                            device_id: DeviceId(rng.array()),
                            immediate: rng.bool(),
                        }
                    } else {
                        DeviceNotification::Delete {
                            layout_type: layout_type(rng),
                            device_id: DeviceId(rng.array()),
                        }
                    }
                })
                .collect(),
        }),
        _ => CbArgOp::Illegal { opnum },
    }
}

fn random_status(rng: &mut Rng) -> NfsStat {
    if rng.bool() {
        NfsStat::OK
    } else {
        NfsStat(10000 + rng.below(90) as u32)
    }
}

fn random_res_op(rng: &mut Rng, op: &CbArgOp) -> CbResOp {
    let status = random_status(rng);
    match op {
        CbArgOp::Getattr(_) if status.is_ok() => CbResOp::Getattr(Ok(Fattr4 {
            attrmask: bitmap(rng),
            attr_vals: {
                let n = rng.below(100) as usize;
                rng.bytes(n)
            },
        })),
        CbArgOp::Sequence(_) if status.is_ok() => CbResOp::Sequence(Ok(CbSequenceResOk {
            sessionid: SessionId(rng.array()),
            sequenceid: rng.u32(),
            slotid: rng.u32(),
            highest_slotid: rng.u32(),
            target_highest_slotid: rng.u32(),
        })),
        CbArgOp::Illegal { .. } => CbResOp::Illegal(NfsStat::OP_ILLEGAL),
        op => CbResOp::error_for(op, status),
    }
}

const ALL_OPS: [u32; 13] = [
    OP_CB_GETATTR,
    OP_CB_RECALL,
    OP_CB_LAYOUTRECALL,
    OP_CB_NOTIFY,
    OP_CB_PUSH_DELEG,
    OP_CB_RECALL_ANY,
    OP_CB_RECALLABLE_OBJ_AVAIL,
    OP_CB_RECALL_SLOT,
    OP_CB_SEQUENCE,
    OP_CB_WANTS_CANCELLED,
    OP_CB_NOTIFY_LOCK,
    OP_CB_NOTIFY_DEVICEID,
    OP_CB_ILLEGAL,
];

fn random_compound(rng: &mut Rng) -> (CbCompoundArgs, CbCompoundRes) {
    let n = rng.below(6) as usize;
    let mut ops: Vec<CbArgOp> = (0..n)
        .map(|_| {
            let opnum = ALL_OPS[rng.below(12) as usize];
            random_arg_op(rng, opnum)
        })
        .collect();
    if rng.below(5) == 0 {
        ops.push(CbArgOp::Illegal {
            opnum: [OP_CB_ILLEGAL, 0, 1, 2, 15, 99, u32::MAX][rng.below(7) as usize],
        });
    }
    let results = ops.iter().map(|op| random_res_op(rng, op)).collect();
    let tag = rng.string(20);
    (
        CbCompoundArgs {
            tag: tag.clone(),
            minorversion: 1,
            callback_ident: rng.u32(),
            ops,
        },
        CbCompoundRes::from_results(tag, results),
    )
}

#[test]
fn every_operation_round_trips() {
    let mut rng = Rng::from_env("every_operation_round_trips");
    // Each op on its own, many times, so every variant and arm is covered.
    for _ in 0..50 {
        for &opnum in &ALL_OPS {
            let op = random_arg_op(&mut rng, opnum);
            assert_eq!(op.opnum(), opnum);
            let res = random_res_op(&mut rng, &op);
            let args = CbCompoundArgs {
                tag: String::new(),
                minorversion: 1,
                callback_ident: 0,
                ops: vec![op],
            };
            assert_eq!(from_bytes::<CbCompoundArgs>(&to_bytes(&args)), Ok(args));
            let res = CbCompoundRes::from_results(String::new(), vec![res]);
            assert_eq!(from_bytes::<CbCompoundRes>(&to_bytes(&res)), Ok(res));
        }
    }
    for _ in 0..300 {
        let (args, res) = random_compound(&mut rng);
        assert_eq!(from_bytes::<CbCompoundArgs>(&to_bytes(&args)), Ok(args));
        assert_eq!(from_bytes::<CbCompoundRes>(&to_bytes(&res)), Ok(res));
    }
}

// ---------------------------------------------------------------------------------------------
// Never panic.

#[test]
fn every_truncation_is_an_error() {
    for body in [hex(LAYOUTRECALL_ARGS_HEX), hex(LAYOUTRECALL_RES_HEX)] {
        for cut in 0..body.len() {
            assert!(
                from_bytes::<CbCompoundArgs>(&body[..cut]).is_err(),
                "cut {cut}"
            );
            assert!(
                from_bytes::<CbCompoundRes>(&body[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = Rng::from_env("random_and_mutated_bytes_never_panic");
    for i in 0..4000 {
        let bytes = if i % 4 == 0 {
            let n = rng.below(400) as usize;
            rng.bytes(n)
        } else {
            let (args, res) = random_compound(&mut rng);
            let mut b = if i % 2 == 0 {
                to_bytes(&args)
            } else {
                to_bytes(&res)
            };
            for _ in 0..1 + rng.below(6) {
                if b.is_empty() {
                    break;
                }
                let pos = rng.below(b.len() as u64) as usize;
                match rng.below(3) {
                    0 => b[pos] = rng.next() as u8,
                    1 => b[pos] ^= 1 << rng.below(8),
                    _ => b.truncate(pos),
                }
            }
            b
        };
        let _ = from_bytes::<CbCompoundArgs>(&bytes);
        let _ = from_bytes::<CbCompoundRes>(&bytes);
    }
}
