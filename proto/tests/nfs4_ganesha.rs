//! The protocol crate against a real NFSv4.1 server (nfs-ganesha on 127.0.0.1): our encoder
//! builds every request, our decoder reads every reply, and the results are checked against
//! the exported directory on disk.
//!
//! Needs `ganesha.nfsd` (nfs-ganesha + nfs-ganesha-vfs) and root; without them the test prints
//! a loud SKIP, or fails when `CI` is set (pnfs-testbed's `require`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pnfs_proto::nfs4::attr::*;
use pnfs_proto::nfs4::*;
use pnfs_proto::rpc::*;
use pnfs_proto::xdr::from_bytes;
use pnfs_testbed::util::TempDir;
use pnfs_testbed::{require, Ganesha};

const IO_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

struct Conn {
    stream: TcpStream,
    reader: RecordReader,
    xid: u32,
    cred: OpaqueAuth,
    session: Option<SessionId>,
    slot_seq: u32,
}

impl Conn {
    fn connect(server: &Ganesha) -> Conn {
        let stream = TcpStream::connect(server.addr()).expect("connect to ganesha");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Conn {
            stream,
            reader: RecordReader::new(MAX_REPLY_BYTES),
            xid: 0x1000,
            cred: OpaqueAuth::Sys(AuthSys {
                stamp: 1,
                machine_name: "pnfs-proto-test".into(),
                uid: 0,
                gid: 0,
                gids: vec![],
            }),
            session: None,
            slot_seq: 0,
        }
    }

    /// One RPC round trip; returns the reply header and body.
    fn call(
        &mut self,
        proc_num: u32,
        body: Option<&dyn pnfs_proto::XdrEncode>,
    ) -> (RpcMsg, Vec<u8>) {
        self.xid += 1;
        let msg = RpcMsg::call(
            self.xid,
            CallBody::new(NFS_PROGRAM, NFS_V4, proc_num, self.cred.clone()),
        );
        let record = encode_record(&msg, body).unwrap();
        self.stream.write_all(&record).expect("send");
        let mut buf = vec![0u8; 64 * 1024];
        let reply = loop {
            let n = self.stream.read(&mut buf).expect("receive");
            assert!(n > 0, "server closed the connection");
            let mut data = &buf[..n];
            let mut done = None;
            while !data.is_empty() {
                let (used, rec) = self.reader.feed(data).unwrap();
                data = &data[used..];
                if rec.is_some() {
                    assert!(data.is_empty(), "one reply per call expected");
                    done = rec;
                }
            }
            if let Some(rec) = done {
                break rec;
            }
        };
        let (head, rest) = decode_message(&reply).unwrap();
        assert_eq!(head.xid, self.xid);
        (head, rest.to_vec())
    }

    fn compound(&mut self, ops: Vec<NfsArgOp>) -> CompoundRes {
        self.compound_v(1, ops)
    }

    fn compound_v(&mut self, minorversion: u32, ops: Vec<NfsArgOp>) -> CompoundRes {
        let args = CompoundArgs::new("pnfs-proto", ops).with_minorversion(minorversion);
        let (head, body) = self.call(NFSPROC4_COMPOUND, Some(&args));
        assert_eq!(head.body, MsgBody::Reply(ReplyBody::success()), "RPC reply");
        let res: CompoundRes = from_bytes(&body).expect("COMPOUND4res decodes");
        assert_eq!(res.tag, "pnfs-proto");
        res
    }

    /// SEQUENCE + `ops`; checks SEQUENCE and returns the other results.
    fn seq(&mut self, ops: Vec<NfsArgOp>) -> (NfsStat, Vec<NfsResOp>) {
        self.seq_v(1, ops)
    }

    /// [`Conn::seq`] with a minor version.
    fn seq_v(&mut self, minorversion: u32, ops: Vec<NfsArgOp>) -> (NfsStat, Vec<NfsResOp>) {
        let sessionid = self.session.expect("session");
        self.slot_seq += 1;
        let mut all = vec![NfsArgOp::Sequence(SequenceArgs {
            sessionid,
            sequenceid: self.slot_seq,
            slotid: 0,
            highest_slotid: 0,
            cachethis: false,
        })];
        let n = ops.len();
        all.extend(ops);
        let res = self.compound_v(minorversion, all);
        let mut results = res.resarray.into_iter();
        match results.next() {
            Some(NfsResOp::Sequence(Ok(ok))) => {
                assert_eq!(ok.sessionid, sessionid);
                assert_eq!(ok.sequenceid, self.slot_seq);
            }
            other => panic!("SEQUENCE failed: {other:?}"),
        }
        let rest: Vec<NfsResOp> = results.collect();
        assert!(rest.len() <= n);
        (res.status, rest)
    }
}

fn attrs_of(r: &NfsResOp) -> Fattr {
    match r {
        NfsResOp::Getattr(Ok(ok)) => {
            Fattr::from_fattr4(&ok.obj_attributes).expect("fattr4 decodes")
        }
        other => panic!("GETATTR failed: {other:?}"),
    }
}

fn fh_of(r: &NfsResOp) -> FileHandle {
    match r {
        NfsResOp::Getfh(Ok(ok)) => ok.object.clone(),
        other => panic!("GETFH failed: {other:?}"),
    }
}

fn owner(clientid: ClientId, name: &str) -> StateOwner {
    StateOwner {
        clientid,
        owner: name.as_bytes().to_vec(),
    }
}

#[test]
fn session_namespace_and_io_against_ganesha() {
    let export = TempDir::new("proto-ganesha-export").unwrap();
    let hello = b"hello from the exported directory\n".repeat(100);
    std::fs::write(export.path().join("hello.txt"), &hello).unwrap();
    let Some(server) = require(Ganesha::start(export.path())) else {
        return;
    };
    let mut c = Conn::connect(&server);

    // NULL procedure: an accepted reply with no body.
    let (head, body) = c.call(NFSPROC4_NULL, None);
    assert_eq!(head.body, MsgBody::Reply(ReplyBody::success()));
    assert!(body.is_empty());

    // EXCHANGE_ID.
    let res = c.compound(vec![NfsArgOp::ExchangeId(ExchangeIdArgs {
        clientowner: ClientOwner {
            verifier: Verifier(*b"pnfsprot"),
            ownerid: format!("pnfs-proto-test-{}", std::process::id()).into_bytes(),
        },
        flags: EXCHGID4_FLAG_USE_NON_PNFS,
        state_protect: StateProtectA::None,
        client_impl_id: Some(NfsImplId {
            domain: "example.invalid".into(),
            name: "pnfs-proto test".into(),
            date: NfsTime::default(),
        }),
    })]);
    let eid = match &res.resarray[..] {
        [NfsResOp::ExchangeId(Ok(ok))] => ok.clone(),
        other => panic!("EXCHANGE_ID: {other:?}"),
    };
    assert_ne!(eid.clientid, 0);
    assert_eq!(eid.state_protect, StateProtectR::None);
    assert!(!eid.server_owner.major_id.is_empty());

    // CREATE_SESSION.
    let fore = ChannelAttrs {
        headerpadsize: 0,
        maxrequestsize: 1024 * 1024,
        maxresponsesize: 1024 * 1024,
        maxresponsesize_cached: 64 * 1024,
        maxoperations: 16,
        maxrequests: 4,
        rdma_ird: None,
    };
    let res = c.compound(vec![NfsArgOp::CreateSession(CreateSessionArgs {
        clientid: eid.clientid,
        sequence: eid.sequenceid,
        flags: 0,
        fore_chan_attrs: fore,
        back_chan_attrs: ChannelAttrs {
            maxrequestsize: 4096,
            maxresponsesize: 4096,
            maxoperations: 2,
            maxrequests: 1,
            ..ChannelAttrs::default()
        },
        cb_program: 0x4000_0000,
        sec_parms: vec![CallbackSecParms::None],
    })]);
    let cs = match &res.resarray[..] {
        [NfsResOp::CreateSession(Ok(ok))] => ok.clone(),
        other => panic!("CREATE_SESSION: {other:?}"),
    };
    assert!(cs.fore_chan_attrs.maxrequests >= 1);
    c.session = Some(cs.sessionid);

    let (status, r) = c.seq(vec![NfsArgOp::ReclaimComplete(false)]);
    assert_eq!(
        (status, &r[..]),
        (NfsStat::OK, &[NfsResOp::ReclaimComplete(NfsStat::OK)][..])
    );

    // The root: GETFH and every attribute we know (the server returns what it supports).
    let (status, r) = c.seq(vec![
        NfsArgOp::Putrootfh,
        NfsArgOp::Getfh,
        NfsArgOp::Getattr(GetattrArgs {
            attr_request: Fattr::readable_bitmap(1),
        }),
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    assert!(!fh_of(&r[1]).0.is_empty());
    let root = attrs_of(&r[2]);
    assert_eq!(root.file_type, Some(NF4DIR));
    let supported = root.supported_attrs.clone().expect("supported_attrs");
    for required in [
        FATTR4_TYPE,
        FATTR4_SIZE,
        FATTR4_CHANGE,
        FATTR4_FSID,
        FATTR4_FILEID,
    ] {
        assert!(
            supported.contains(required),
            "server lacks attribute {required}"
        );
    }
    assert!(root.lease_time.is_some_and(|t| t > 0));

    // The same over NFSv4.2, which may add the 4.2 attributes.
    let (status, r) = c.seq_v(
        2,
        vec![
            NfsArgOp::Putrootfh,
            NfsArgOp::Getattr(GetattrArgs {
                // nfs-ganesha answers NFS4ERR_INVAL to clone_blksize, space_freed and
                // change_attr_type (it does not implement them), so leave those out.
                attr_request: Fattr::readable_bitmap(2).difference(&Bitmap4::from_bits(&[
                    FATTR4_CLONE_BLKSIZE,
                    FATTR4_SPACE_FREED,
                    FATTR4_CHANGE_ATTR_TYPE,
                ])),
            }),
        ],
    );
    assert_eq!(status, NfsStat::OK, "{r:?}");
    let root42 = attrs_of(&r[1]);
    assert_eq!(root42.fileid, root.fileid);
    assert_eq!(root42.fsid, root.fsid);

    // LOOKUP the export, READDIR it with a few attributes.
    let want = Bitmap4::from_bits(&[FATTR4_TYPE, FATTR4_SIZE, FATTR4_FILEID, FATTR4_MODE]);
    let (status, r) = c.seq(vec![
        NfsArgOp::Putrootfh,
        NfsArgOp::Lookup(LookupArgs {
            objname: "export".into(),
        }),
        NfsArgOp::Getfh,
        NfsArgOp::Readdir(ReaddirArgs {
            cookie: 0,
            cookieverf: Verifier::default(),
            dircount: 8192,
            maxcount: 32768,
            attr_request: want.clone(),
        }),
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    let dir_fh = fh_of(&r[2]);
    let listing = match &r[3] {
        NfsResOp::Readdir(Ok(ok)) => ok.reply.clone(),
        other => panic!("READDIR: {other:?}"),
    };
    let entry = listing
        .entries
        .iter()
        .find(|e| e.name == "hello.txt")
        .expect("hello.txt listed");
    let a = Fattr::from_fattr4(&entry.attrs).unwrap();
    assert_eq!(a.file_type, Some(NF4REG));
    assert_eq!(a.size, Some(u64::try_from(hello.len()).unwrap()));

    // OPEN hello.txt for read, READ it back, CLOSE.
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(dir_fh.clone()),
        NfsArgOp::Open(OpenArgs {
            seqid: 0,
            share_access: OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
            share_deny: OPEN4_SHARE_DENY_NONE,
            owner: owner(eid.clientid, "reader"),
            openhow: OpenFlag::NoCreate,
            claim: OpenClaim::Null("hello.txt".into()),
        }),
        NfsArgOp::Getfh,
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    let open = match &r[1] {
        NfsResOp::Open(Ok(ok)) => ok.clone(),
        other => panic!("OPEN: {other:?}"),
    };
    let file_fh = fh_of(&r[2]);
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(file_fh.clone()),
        NfsArgOp::Read(ReadArgs {
            stateid: open.stateid,
            offset: 0,
            count: 1 << 16,
        }),
        NfsArgOp::Close(CloseArgs {
            seqid: 0,
            open_stateid: open.stateid,
        }),
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    match &r[1] {
        NfsResOp::Read(Ok(ok)) => {
            assert!(ok.eof);
            assert_eq!(ok.data, hello);
        }
        other => panic!("READ: {other:?}"),
    }

    // OPEN/CREATE a new file (GUARDED, mode 0640), WRITE, COMMIT, GETATTR, CLOSE.
    let create_attrs = Fattr {
        mode: Some(0o640),
        ..Fattr::default()
    };
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(dir_fh.clone()),
        NfsArgOp::Open(OpenArgs {
            seqid: 0,
            share_access: OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
            share_deny: OPEN4_SHARE_DENY_NONE,
            owner: owner(eid.clientid, "writer"),
            openhow: OpenFlag::Create(CreateHow::Guarded(create_attrs.to_fattr4())),
            claim: OpenClaim::Null("new.bin".into()),
        }),
        NfsArgOp::Getfh,
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    let created = match &r[1] {
        NfsResOp::Open(Ok(ok)) => ok.clone(),
        other => panic!("OPEN create: {other:?}"),
    };
    let new_fh = fh_of(&r[2]);
    // Byte-range locks while the file is still open: LOCK, a conflicting LOCKT from another
    // owner (DENIED with the holder), LOCKU.
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(new_fh.clone()),
        NfsArgOp::Lock(LockArgs {
            locktype: LockType::Write,
            reclaim: false,
            offset: 0,
            length: 100,
            locker: Locker::New(OpenToLockOwner {
                open_seqid: 0,
                open_stateid: created.stateid,
                lock_seqid: 0,
                lock_owner: owner(eid.clientid, "locker"),
            }),
        }),
        NfsArgOp::Lockt(LocktArgs {
            locktype: LockType::Read,
            offset: 50,
            length: 10,
            owner: owner(eid.clientid, "other"),
        }),
    ]);
    assert_eq!(status, NfsStat::DENIED, "{r:?}");
    let lock_stateid = match &r[1] {
        NfsResOp::Lock(LockRes::Ok(s)) => *s,
        other => panic!("LOCK: {other:?}"),
    };
    match &r[2] {
        NfsResOp::Lockt(LocktRes::Denied(d)) => {
            assert_eq!((d.offset, d.length, d.locktype), (0, 100, LockType::Write));
            assert_eq!(d.owner.owner, b"locker");
        }
        other => panic!("LOCKT: {other:?}"),
    }
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(new_fh.clone()),
        NfsArgOp::Locku(LockuArgs {
            locktype: LockType::Write,
            seqid: 0,
            lock_stateid,
            offset: 0,
            length: 100,
        }),
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    let unlocked = match &r[1] {
        NfsResOp::Locku(Ok(s)) => *s,
        other => panic!("LOCKU: {other:?}"),
    };
    assert_eq!(unlocked.other, lock_stateid.other);
    assert!(unlocked.seqid > lock_stateid.seqid);
    let (status, r) = c.seq(vec![NfsArgOp::FreeStateid(unlocked)]);
    assert_eq!(
        (status, &r[..]),
        (NfsStat::OK, &[NfsResOp::FreeStateid(NfsStat::OK)][..])
    );

    let data: Vec<u8> = (0..10_000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(new_fh.clone()),
        NfsArgOp::Write(WriteArgs {
            stateid: created.stateid,
            offset: 4096,
            stable: StableHow::Unstable,
            data: data.clone(),
        }),
        NfsArgOp::Commit(CommitArgs {
            offset: 0,
            count: 0,
        }),
        NfsArgOp::Getattr(GetattrArgs {
            attr_request: want.clone(),
        }),
        NfsArgOp::Close(CloseArgs {
            seqid: 0,
            open_stateid: created.stateid,
        }),
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    match (&r[1], &r[2]) {
        (NfsResOp::Write(Ok(w)), NfsResOp::Commit(Ok(cm))) => {
            assert_eq!(w.count, u32::try_from(data.len()).unwrap());
            assert_eq!(w.writeverf, cm.writeverf);
        }
        other => panic!("WRITE/COMMIT: {other:?}"),
    }
    let a = attrs_of(&r[3]);
    assert_eq!(a.size, Some(4096 + u64::try_from(data.len()).unwrap()));
    assert_eq!(a.mode.map(|m| m & MODE4_ALL_BITS), Some(0o640));
    let on_disk = std::fs::read(export.path().join("new.bin")).unwrap();
    assert_eq!(&on_disk[..4096], &[0u8; 4096][..]);
    assert_eq!(&on_disk[4096..], &data[..]);

    // SETATTR truncates; RENAME and REMOVE change the directory.
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(new_fh),
        NfsArgOp::Setattr(SetattrArgs {
            stateid: Stateid::ANONYMOUS,
            obj_attributes: Fattr {
                size: Some(100),
                ..Fattr::default()
            }
            .to_fattr4(),
        }),
        NfsArgOp::Putfh(dir_fh.clone()),
        NfsArgOp::Savefh,
        NfsArgOp::Rename(RenameArgs {
            oldname: "new.bin".into(),
            newname: "renamed.bin".into(),
        }),
        NfsArgOp::Remove(RemoveArgs {
            target: "hello.txt".into(),
        }),
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    match &r[1] {
        NfsResOp::Setattr(s) => assert!(s.attrsset.contains(FATTR4_SIZE)),
        other => panic!("SETATTR: {other:?}"),
    }
    assert_eq!(
        std::fs::metadata(export.path().join("renamed.bin"))
            .unwrap()
            .len(),
        100
    );
    assert!(!export.path().join("hello.txt").exists());

    // An error stops the compound and is reported where it happened.
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(dir_fh.clone()),
        NfsArgOp::Lookup(LookupArgs {
            objname: "missing".into(),
        }),
        NfsArgOp::Getfh,
    ]);
    assert_eq!(status, NfsStat::NOENT);
    assert_eq!(
        r,
        vec![
            NfsResOp::Putfh(NfsStat::OK),
            NfsResOp::Lookup(NfsStat::NOENT)
        ]
    );

    // SECINFO_NO_NAME lists AUTH_SYS.
    let (status, r) = c.seq(vec![
        NfsArgOp::Putfh(dir_fh),
        NfsArgOp::SecinfoNoName(SecinfoStyle::CurrentFh),
    ]);
    assert_eq!(status, NfsStat::OK, "{r:?}");
    match &r[1] {
        NfsResOp::SecinfoNoName(Ok(ok)) => {
            assert!(ok.flavors.contains(&SecInfo::Flavor(AUTH_SYS)), "{ok:?}")
        }
        other => panic!("SECINFO_NO_NAME: {other:?}"),
    }

    // Tear down.
    let (status, _) = c.seq(vec![]);
    assert_eq!(status, NfsStat::OK);
    let res = c.compound(vec![NfsArgOp::DestroySession(cs.sessionid)]);
    assert_eq!(res.resarray, vec![NfsResOp::DestroySession(NfsStat::OK)]);
    let res = c.compound(vec![NfsArgOp::DestroyClientid(eid.clientid)]);
    assert_eq!(res.resarray, vec![NfsResOp::DestroyClientid(NfsStat::OK)]);
    drop(server);
}
