//! Byte-exact NFSv4.1 COMPOUND encodings, derived by hand from RFC 8881's XDR.

use pnfs_proto::nfs4::attr::Bitmap4;
use pnfs_proto::nfs4::*;
use pnfs_proto::xdr::{from_bytes, to_bytes};

fn hex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts
        .concat()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(s.len() % 2, 0, "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn session() -> SessionId {
    SessionId([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
}

fn layout_stateid() -> Stateid {
    Stateid {
        seqid: 1,
        other: [
            0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
        ],
    }
}

#[test]
fn sequence_putfh_layoutget_args() {
    let args = CompoundArgs::new(
        "",
        vec![
            NfsArgOp::Sequence(SequenceArgs {
                sessionid: session(),
                sequenceid: 7,
                slotid: 0,
                highest_slotid: 0,
                cachethis: false,
            }),
            NfsArgOp::Putfh(FileHandle(vec![1, 2, 3, 4, 5, 6, 7, 8])),
            NfsArgOp::Layoutget(LayoutgetArgs {
                signal_layout_avail: false,
                layout_type: LayoutType::BlockVolume,
                iomode: LayoutIoMode::ReadWrite,
                offset: 0,
                length: NFS4_LENGTH_TO_EOF,
                minlength: 4096,
                stateid: layout_stateid(),
                maxcount: 4096,
            }),
        ],
    );
    let expected = hex(&[
        "00000000",                          // tag: empty
        "00000001",                          // minorversion 1
        "00000003",                          // 3 operations
        "00000035",                          // OP_SEQUENCE (53)
        "000102030405060708090a0b0c0d0e0f",  // sa_sessionid
        "00000007",                          // sa_sequenceid
        "00000000",                          // sa_slotid
        "00000000",                          // sa_highest_slotid
        "00000000",                          // sa_cachethis FALSE
        "00000016",                          // OP_PUTFH (22)
        "00000008 0102030405060708",         // nfs_fh4: length 8 + bytes
        "00000032",                          // OP_LAYOUTGET (50)
        "00000000",                          // loga_signal_layout_avail FALSE
        "00000003",                          // loga_layout_type LAYOUT4_BLOCK_VOLUME
        "00000002",                          // loga_iomode LAYOUTIOMODE4_RW
        "0000000000000000",                  // loga_offset 0
        "ffffffffffffffff",                  // loga_length NFS4_UINT64_MAX
        "0000000000001000",                  // loga_minlength 4096
        "00000001 aabbccddeeff001122334455", // loga_stateid: seqid, other
        "00001000",                          // loga_maxcount 4096
    ]);
    assert_eq!(to_bytes(&args), expected);
    assert_eq!(from_bytes::<CompoundArgs>(&expected), Ok(args));
}

#[test]
fn sequence_putfh_layoutget_result() {
    let res = CompoundRes::new(
        "",
        vec![
            NfsResOp::Sequence(Ok(SequenceResOk {
                sessionid: session(),
                sequenceid: 7,
                slotid: 0,
                highest_slotid: 0,
                target_highest_slotid: 15,
                status_flags: 0,
            })),
            NfsResOp::Putfh(NfsStat::OK),
            NfsResOp::Layoutget(LayoutgetRes::Ok(LayoutgetResOk {
                return_on_close: true,
                stateid: layout_stateid(),
                layouts: vec![Layout {
                    offset: 0,
                    length: 0x10_0000,
                    iomode: LayoutIoMode::ReadWrite,
                    content: LayoutContent {
                        loc_type: LayoutType::BlockVolume,
                        loc_body: vec![0xde, 0xad, 0xbe, 0xef, 0x01],
                    },
                }],
            })),
        ],
    );
    assert_eq!(res.status, NfsStat::OK);
    let expected = hex(&[
        "00000000",                          // status NFS4_OK
        "00000000",                          // tag: empty
        "00000003",                          // 3 results
        "00000035 00000000",                 // OP_SEQUENCE, NFS4_OK
        "000102030405060708090a0b0c0d0e0f",  // sr_sessionid
        "00000007 00000000 00000000",        // sr_sequenceid, sr_slotid, sr_highest_slotid
        "0000000f 00000000",                 // sr_target_highest_slotid 15, sr_status_flags
        "00000016 00000000",                 // OP_PUTFH, NFS4_OK
        "00000032 00000000",                 // OP_LAYOUTGET, NFS4_OK
        "00000001",                          // logr_return_on_close TRUE
        "00000001 aabbccddeeff001122334455", // logr_stateid
        "00000001",                          // one layout4
        "0000000000000000 0000000000100000", // lo_offset 0, lo_length 1 MiB
        "00000002",                          // lo_iomode RW
        "00000003",                          // loc_type BLOCK_VOLUME
        "00000005 deadbeef01000000",         // loc_body: length 5, bytes, 3 zero pad bytes
    ]);
    assert_eq!(to_bytes(&res), expected);
    assert_eq!(from_bytes::<CompoundRes>(&expected), Ok(res));
}

#[test]
fn error_results_carry_data_only_where_the_rfc_says() {
    let r = NfsResOp::Layoutget(LayoutgetRes::TryLater {
        will_signal_layout_avail: true,
    });
    // OP_LAYOUTGET, NFS4ERR_LAYOUTTRYLATER (10058 = 0x274a), TRUE.
    let expected = hex(&["00000032 0000274a 00000001"]);
    assert_eq!(to_bytes(&r), expected);
    assert_eq!(from_bytes::<NfsResOp>(&expected), Ok(r));

    // CREATE_SESSION has no data on error.
    let r = NfsResOp::CreateSession(Err(NfsStat::STALE_CLIENTID));
    assert_eq!(to_bytes(&r), hex(&["0000002b 00002726"]));
}

#[test]
fn exchange_id_args() {
    let args = CompoundArgs::new(
        "pnfs",
        vec![NfsArgOp::ExchangeId(ExchangeIdArgs {
            clientowner: ClientOwner {
                verifier: Verifier([1, 2, 3, 4, 5, 6, 7, 8]),
                ownerid: b"client1".to_vec(),
            },
            flags: EXCHGID4_FLAG_SUPP_MOVED_REFER
                | EXCHGID4_FLAG_SUPP_MOVED_MIGR
                | EXCHGID4_FLAG_BIND_PRINC_STATEID
                | EXCHGID4_FLAG_USE_PNFS_MDS,
            state_protect: StateProtectA::MachCred(StateProtectOps {
                must_enforce: Bitmap4::from_bits(&[
                    OP_BIND_CONN_TO_SESSION,
                    OP_EXCHANGE_ID,
                    OP_CREATE_SESSION,
                    OP_DESTROY_SESSION,
                    OP_DESTROY_CLIENTID,
                ]),
                must_allow: Bitmap4::new(),
            }),
            client_impl_id: Some(NfsImplId {
                domain: "kernel.org".into(),
                name: "Linux".into(),
                date: NfsTime::default(),
            }),
        })],
    );
    let expected = hex(&[
        "00000004 706e6673",                 // tag "pnfs"
        "00000001",                          // minorversion
        "00000001",                          // one op
        "0000002a",                          // OP_EXCHANGE_ID (42)
        "0102030405060708",                  // co_verifier
        "00000007 636c69656e743100",         // co_ownerid "client1" + 1 pad byte
        "00020103", // eia_flags: USE_PNFS_MDS | BIND_PRINC_STATEID | MOVED_MIGR | MOVED_REFER
        "00000001", // spa_how SP4_MACH_CRED
        "00000002 00000000 02001e00", // spo_must_enforce: ops 41-44 and 57 in word 1
        "00000000", // spo_must_allow: empty
        "00000001", // eia_client_impl_id: one entry
        "0000000a 6b65726e656c2e6f72670000", // nii_domain "kernel.org" + 2 pad bytes
        "00000005 4c696e7578000000", // nii_name "Linux" + 3 pad bytes
        "0000000000000000 00000000", // nii_date
    ]);
    assert_eq!(to_bytes(&args), expected);
    assert_eq!(from_bytes::<CompoundArgs>(&expected), Ok(args));
}

#[test]
fn unknown_op_decodes_to_illegal_and_stops() {
    let bytes = hex(&[
        "00000000 00000001 00000003", // tag, minor version 1, 3 ops
        "00000018",                   // OP_PUTROOTFH
        "0000270f",                   // 9999: unknown
        "deadbeef cafe0000",          // garbage that cannot be parsed
    ]);
    let args: CompoundArgs = from_bytes(&bytes).unwrap();
    assert_eq!(
        args.argarray,
        vec![NfsArgOp::Putrootfh, NfsArgOp::Illegal { opnum: 9999 }]
    );
    // A tail that is not whole XDR units is still an error.
    let mut odd = bytes.clone();
    odd.push(0);
    assert!(from_bytes::<CompoundArgs>(&odd).is_err());
    let res = NfsResOp::error_for(&args.argarray[1], NfsStat::SERVERFAULT);
    assert_eq!(res, NfsResOp::Illegal(NfsStat::OP_ILLEGAL));
    assert_eq!(to_bytes(&res), hex(&["0000273c 0000273c"]));
}

#[test]
fn too_many_ops_and_long_tags_are_refused() {
    let mut bytes = hex(&["00000000 00000001"]);
    bytes.extend_from_slice(
        &u32::try_from(NFS4_MAX_COMPOUND_OPS + 1)
            .unwrap()
            .to_be_bytes(),
    );
    for _ in 0..=NFS4_MAX_COMPOUND_OPS {
        bytes.extend_from_slice(&OP_GETFH.to_be_bytes());
    }
    assert!(from_bytes::<CompoundArgs>(&bytes).is_err());
    let long = CompoundArgs::new("x".repeat(NFS4_MAX_TAG_BYTES + 1), vec![]);
    assert!(from_bytes::<CompoundArgs>(&to_bytes(&long)).is_err());
}

#[test]
fn fattr_encodes_set_and_requested_attributes_in_bit_order() {
    use pnfs_proto::nfs4::attr::*;
    let attrs = Fattr {
        file_type: Some(NF4REG),
        size: Some(4096),
        mode: Some(0o644),
        fs_layout_types: Some(vec![LayoutType::BlockVolume]),
        layout_blksize: Some(4096),
        ..Fattr::default()
    };
    // Requested: type, size, time_modify (not set), fs_layout_types, layout_blksize;
    // mode is set but not requested.
    let request = Bitmap4::from_bits(&[
        FATTR4_LAYOUT_BLKSIZE,
        FATTR4_TYPE,
        FATTR4_SIZE,
        FATTR4_TIME_MODIFY,
        FATTR4_FS_LAYOUT_TYPES,
    ]);
    let f = attrs.encode_masked(&request);
    let expected = hex(&[
        "00000003",          // attrmask: 3 words
        "00000012",          // word 0: type (1), size (4)
        "40000000",          // word 1: fs_layout_types (62 = 32 + 30)
        "00000002",          // word 2: layout_blksize (65 = 64 + 1)
        "00000018",          // attr_vals: 24 bytes
        "00000001",          // type NF4REG
        "0000000000001000",  // size 4096
        "00000001 00000003", // fs_layout_types: [LAYOUT4_BLOCK_VOLUME]
        "00001000",          // layout_blksize 4096
    ]);
    assert_eq!(to_bytes(&f), expected);
    let back = Fattr::from_fattr4(&from_bytes(&expected).unwrap()).unwrap();
    assert_eq!(
        back,
        Fattr {
            mode: None,
            ..attrs.clone()
        }
    );

    // Unknown bit (fs_locations_info, 67) and trailing value bytes are errors.
    let mut bad = f.clone();
    bad.attrmask.set(FATTR4_FS_LOCATIONS_INFO);
    assert!(Fattr::from_fattr4(&bad).is_err());
    let mut bad = f;
    bad.attr_vals.extend_from_slice(&[0, 0, 0, 0]);
    assert!(Fattr::from_fattr4(&bad).is_err());
    // Full round trip of everything set.
    assert_eq!(Fattr::from_fattr4(&attrs.to_fattr4()), Ok(attrs));
}

#[test]
fn header_is_readable_when_the_ops_are_not() {
    // "ab" tag, minor version 7, 200 ops announced, garbage after.
    let bytes = hex(&["00000002 61620000 00000007 000000c8 ffffffff"]);
    assert!(from_bytes::<CompoundArgs>(&bytes).is_err());
    let head = CompoundArgs::decode_header(&bytes).unwrap();
    assert_eq!(
        head,
        CompoundHeader {
            tag: "ab".into(),
            minorversion: 7,
            op_count: 200
        }
    );
    let res = CompoundRes::new(
        "",
        vec![
            NfsResOp::Putrootfh(NfsStat::OK),
            NfsResOp::Lookup(NfsStat::NOENT),
        ],
    );
    assert_eq!(res.status, NfsStat::NOENT);
    assert_eq!(res.first_error(), Some((1, NfsStat::NOENT)));
}

#[test]
fn whole_rpc_record_with_compound_body() {
    use pnfs_proto::rpc::*;
    let call = RpcMsg::call(
        9,
        CallBody::new(NFS_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, OpaqueAuth::None),
    );
    let args = CompoundArgs::new("", vec![NfsArgOp::Putrootfh, NfsArgOp::Getfh]);
    let record = encode_record(&call, Some(&args)).unwrap();
    let mut reader = RecordReader::new(1 << 20);
    let got = reader.feed_all(&record).unwrap();
    assert_eq!(got.len(), 1);
    let (msg, body) = decode_message(&got[0]).unwrap();
    assert_eq!(msg, call);
    assert_eq!(from_bytes::<CompoundArgs>(body), Ok(args));
}

#[test]
fn status_names_and_unknown_attribute_bits() {
    use pnfs_proto::nfs4::attr::{Fattr, FATTR4_FS_LOCATIONS_INFO, FATTR4_SIZE};
    assert_eq!(
        NfsStat::LAYOUTTRYLATER.name(),
        Some("NFS4ERR_LAYOUTTRYLATER")
    );
    assert_eq!(NfsStat(10073).name(), None);
    assert_eq!(NfsStat::NOENT.to_string(), "NFS4ERR_NOENT (2)");
    let mask = Bitmap4::from_bits(&[FATTR4_SIZE, FATTR4_FS_LOCATIONS_INFO, 90]);
    let unknown = Fattr::unknown_bits(&mask);
    assert_eq!(
        unknown.iter().collect::<Vec<_>>(),
        vec![FATTR4_FS_LOCATIONS_INFO, 90]
    );
}
