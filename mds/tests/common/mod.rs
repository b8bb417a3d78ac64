//! The wire-test harness shared by the MDS's host-side test binaries: a server on a scratch
//! store, a raw RPC client, and COMPOUND builders. Each binary uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pnfs_proto::nfs4::attr::Fattr4;
use pnfs_proto::nfs4::*;
use pnfs_proto::rpc::{self, CallBody, OpaqueAuth, RpcMsg};
use pnfs_proto::xdr::{from_bytes, to_bytes, Decoder, Encoder, XdrEncode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Server {
    pub addr: std::net::SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
    pub dir: std::path::PathBuf,
    /// The server itself, for its counters.
    pub mds: Arc<pnfs_mds::Mds>,
}

pub async fn start(dir: Option<std::path::PathBuf>) -> Server {
    start_with(dir, &[]).await
}

/// Starts a server on a fresh (or the given) store with extra command-line flags.
pub async fn start_with(dir: Option<std::path::PathBuf>, flags: &[&str]) -> Server {
    let dir = dir.unwrap_or_else(|| {
        let d = std::env::temp_dir().join(format!(
            "pnfs-mds-wire-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::File::create(d.join("vol"))
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        d
    });
    let state = dir.join("state");
    let vol = dir.join("vol");
    let mut argv = vec![
        "pnfs-mds",
        "--state",
        state.to_str().unwrap(),
        "--volume",
        vol.to_str().unwrap(),
    ];
    argv.extend_from_slice(flags);
    let args = <pnfs_mds::MdsArgs as clap::Parser>::parse_from(argv);
    let mds = pnfs_mds::Config::from_args(&args).unwrap().open().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pnfs_mds::run(listener, Arc::clone(&mds), async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
        dir,
        mds,
    }
}

impl Server {
    pub async fn stop(mut self) -> std::path::PathBuf {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
        self.dir
    }
}

pub struct Client {
    pub s: TcpStream,
    pub xid: u32,
    /// The credential of every call.
    pub cred: OpaqueAuth,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::connect_as(addr, OpaqueAuth::None).await
    }

    /// A connection whose calls carry `cred`.
    pub async fn connect_as(addr: std::net::SocketAddr, cred: OpaqueAuth) -> Self {
        Self {
            s: TcpStream::connect(addr).await.unwrap(),
            xid: 1,
            cred,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Sends one NFS call with `args` and returns the reply body after the RPC header, or the
    /// accept_stat when it is not SUCCESS.
    pub async fn call(&mut self, proc_num: u32, args: &[u8]) -> Result<Vec<u8>, u32> {
        self.xid += 1;
        let mut enc = Encoder::new();
        let mark = rpc::begin_record(&mut enc);
        RpcMsg::call(
            self.xid,
            CallBody::new(rpc::NFS_PROGRAM, 4, proc_num, self.cred.clone()),
        )
        .encode(&mut enc);
        enc.put_opaque_fixed(args);
        rpc::finish_record(&mut enc, mark).unwrap();
        self.s.write_all(enc.as_slice()).await.unwrap();
        let rec = self.read_record().await.expect("a reply");
        let mut d = Decoder::new(&rec);
        assert_eq!(d.u32().unwrap(), self.xid);
        assert_eq!(d.u32().unwrap(), 1); // REPLY
        assert_eq!(d.u32().unwrap(), 0); // MSG_ACCEPTED
        d.u32().unwrap();
        d.opaque("verf", 400).unwrap();
        match d.u32().unwrap() {
            0 => Ok(d.rest().to_vec()),
            s => Err(s),
        }
    }

    pub async fn read_record(&mut self) -> Option<Vec<u8>> {
        let mut mark = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.s.read_exact(&mut mark))
            .await
            .ok()?
            .ok()?;
        let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
        let mut b = vec![0u8; len];
        self.s.read_exact(&mut b).await.ok()?;
        Some(b)
    }

    /// Sends a COMPOUND and decodes the reply.
    pub async fn compound(&mut self, ops: Vec<NfsArgOp>) -> CompoundRes {
        let r = self
            .call(1, &to_bytes(&CompoundArgs::new("", ops)))
            .await
            .expect("accepted");
        from_bytes(&r).expect("a COMPOUND4res")
    }
}

pub fn seq(sess: SessionId, sequenceid: u32, slotid: u32) -> NfsArgOp {
    NfsArgOp::Sequence(SequenceArgs {
        sessionid: sess,
        sequenceid,
        slotid,
        highest_slotid: slotid,
        cachethis: false,
    })
}

pub fn lookup(name: &str) -> NfsArgOp {
    NfsArgOp::Lookup(LookupArgs {
        objname: name.into(),
    })
}

pub fn mkdir(name: &str, attrs: Fattr4) -> NfsArgOp {
    NfsArgOp::Create(CreateArgs {
        objtype: CreateType::Dir,
        objname: name.into(),
        createattrs: attrs,
    })
}

/// EXCHANGE_ID + CREATE_SESSION (no back channel); returns the client and session ids.
pub async fn session(c: &mut Client, owner: &[u8]) -> (ClientId, SessionId) {
    let r = c
        .compound(vec![NfsArgOp::ExchangeId(ExchangeIdArgs {
            clientowner: ClientOwner {
                verifier: Verifier([1; 8]),
                ownerid: owner.to_vec(),
            },
            ..ExchangeIdArgs::default()
        })])
        .await;
    let Some(NfsResOp::ExchangeId(Ok(x))) = r.resarray.first() else {
        panic!("EXCHANGE_ID: {r:?}");
    };
    assert_ne!(x.flags & EXCHGID4_FLAG_USE_PNFS_MDS, 0, "USE_PNFS_MDS");
    let chan = ChannelAttrs {
        headerpadsize: 0,
        maxrequestsize: 1 << 20,
        maxresponsesize: 1 << 20,
        maxresponsesize_cached: 4096,
        maxoperations: 16,
        maxrequests: 4,
        rdma_ird: None,
    };
    let clientid = x.clientid;
    let r = c
        .compound(vec![NfsArgOp::CreateSession(CreateSessionArgs {
            clientid,
            sequence: x.sequenceid,
            flags: 0,
            fore_chan_attrs: chan,
            back_chan_attrs: chan,
            cb_program: 0x4000_0000,
            sec_parms: vec![CallbackSecParms::None],
        })])
        .await;
    let Some(NfsResOp::CreateSession(Ok(s))) = r.resarray.first() else {
        panic!("CREATE_SESSION: {r:?}");
    };
    assert_eq!(s.fore_chan_attrs.maxrequests, 4);
    (clientid, s.sessionid)
}

/// SEQUENCE alone; returns its status flags.
pub async fn sequence_flags(c: &mut Client, sess: SessionId, seqid: u32) -> u32 {
    let r = c.compound(vec![seq(sess, seqid, 0)]).await;
    match r.resarray.first() {
        Some(NfsResOp::Sequence(Ok(s))) => s.status_flags,
        _ => panic!("SEQUENCE: {r:?}"),
    }
}

/// An AUTH_SYS credential of `machine` and `uid` (the MDS's principal for client records).
pub fn auth_sys(machine: &str, uid: u32) -> OpaqueAuth {
    OpaqueAuth::Sys(rpc::AuthSys {
        stamp: 1,
        machine_name: machine.into(),
        uid,
        gid: uid,
        gids: vec![],
    })
}

/// EXCHANGE_ID alone with `args`; its result.
pub async fn exchange_id_with(
    c: &mut Client,
    args: ExchangeIdArgs,
) -> Result<ExchangeIdResOk, NfsStat> {
    let r = c.compound(vec![NfsArgOp::ExchangeId(args)]).await;
    match r.resarray.first() {
        Some(NfsResOp::ExchangeId(x)) => x.clone(),
        _ => panic!("EXCHANGE_ID: {r:?}"),
    }
}

/// EXCHANGE_ID of `owner` with a verifier of eight `verifier` bytes and `flags`.
pub async fn exchange_id(
    c: &mut Client,
    owner: &[u8],
    verifier: u8,
    flags: u32,
) -> Result<ExchangeIdResOk, NfsStat> {
    exchange_id_with(
        c,
        ExchangeIdArgs {
            clientowner: ClientOwner {
                verifier: Verifier([verifier; 8]),
                ownerid: owner.to_vec(),
            },
            flags,
            ..ExchangeIdArgs::default()
        },
    )
    .await
}

/// The channel attributes the tests ask for unless they test them.
pub const CHAN: ChannelAttrs = ChannelAttrs {
    headerpadsize: 0,
    maxrequestsize: 1 << 20,
    maxresponsesize: 1 << 20,
    maxresponsesize_cached: 4096,
    maxoperations: 16,
    maxrequests: 4,
    rdma_ird: None,
};

/// CREATE_SESSION alone for `clientid` with `sequence`; the session id.
pub async fn create_session(
    c: &mut Client,
    clientid: ClientId,
    sequence: u32,
) -> Result<SessionId, NfsStat> {
    create_session_with(c, clientid, sequence, 0, CHAN).await
}

/// CREATE_SESSION alone with `flags` and fore channel attributes `fore`.
pub async fn create_session_with(
    c: &mut Client,
    clientid: ClientId,
    sequence: u32,
    flags: u32,
    fore: ChannelAttrs,
) -> Result<SessionId, NfsStat> {
    let r = c
        .compound(vec![NfsArgOp::CreateSession(CreateSessionArgs {
            clientid,
            sequence,
            flags,
            fore_chan_attrs: fore,
            back_chan_attrs: CHAN,
            cb_program: 0x4000_0000,
            sec_parms: vec![CallbackSecParms::None],
        })])
        .await;
    match r.resarray.first() {
        Some(NfsResOp::CreateSession(x)) => x.as_ref().map(|s| s.sessionid).map_err(|e| *e),
        _ => panic!("CREATE_SESSION: {r:?}"),
    }
}

/// EXCHANGE_ID + CREATE_SESSION of `owner` with `verifier`; the client and session ids.
pub async fn confirmed(c: &mut Client, owner: &[u8], verifier: u8) -> (ClientId, SessionId) {
    let x = exchange_id(c, owner, verifier, 0)
        .await
        .expect("EXCHANGE_ID");
    let s = create_session(c, x.clientid, x.sequenceid)
        .await
        .expect("CREATE_SESSION");
    (x.clientid, s)
}

/// The status of SEQUENCE alone on `sess`.
pub async fn sequence_status(c: &mut Client, sess: SessionId, seqid: u32) -> NfsStat {
    c.compound(vec![seq(sess, seqid, 0)]).await.status
}

/// OPEN (CLAIM_NULL, UNCHECKED create) of `name` in the current directory by `clientid`.
pub fn open_create(clientid: ClientId, name: &str) -> NfsArgOp {
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
    })
}

/// OPEN of `name` (created if absent) by open-owner `owner` of `clientid` with `access` and
/// `deny`.
pub fn open_share(
    clientid: ClientId,
    owner: &[u8],
    name: &str,
    access: u32,
    deny: u32,
) -> NfsArgOp {
    NfsArgOp::Open(OpenArgs {
        seqid: 0,
        share_access: access,
        share_deny: deny,
        owner: StateOwner {
            clientid,
            owner: owner.to_vec(),
        },
        openhow: OpenFlag::Create(CreateHow::Unchecked(Fattr4::default())),
        claim: OpenClaim::Null(name.into()),
    })
}

/// SEQUENCE, PUTROOTFH, LOOKUP `name` (none if empty), then `op`; the result of `op`.
pub async fn on_file(
    c: &mut Client,
    sess: SessionId,
    seqid: &mut u32,
    name: &str,
    op: NfsArgOp,
) -> NfsResOp {
    *seqid += 1;
    let mut ops = vec![seq(sess, *seqid, 0), NfsArgOp::Putrootfh];
    if !name.is_empty() {
        ops.push(lookup(name));
    }
    ops.push(op);
    let n = ops.len();
    let r = c.compound(ops).await;
    assert_eq!(r.resarray.len(), n, "{r:?}");
    r.resarray.into_iter().last().unwrap()
}

pub fn lock_new(
    t: LockType,
    offset: u64,
    length: u64,
    open: Stateid,
    owner: StateOwner,
) -> NfsArgOp {
    NfsArgOp::Lock(LockArgs {
        locktype: t,
        reclaim: false,
        offset,
        length,
        locker: Locker::New(OpenToLockOwner {
            open_seqid: 0,
            open_stateid: open,
            lock_seqid: 0,
            lock_owner: owner,
        }),
    })
}

pub fn lock_more(t: LockType, offset: u64, length: u64, lock: Stateid) -> NfsArgOp {
    NfsArgOp::Lock(LockArgs {
        locktype: t,
        reclaim: false,
        offset,
        length,
        locker: Locker::Exist(ExistLockOwner {
            lock_stateid: lock,
            lock_seqid: 0,
        }),
    })
}

pub fn locku(offset: u64, length: u64, lock: Stateid) -> NfsArgOp {
    NfsArgOp::Locku(LockuArgs {
        locktype: LockType::Read,
        seqid: 0,
        lock_stateid: lock,
        offset,
        length,
    })
}

pub fn lockt(t: LockType, offset: u64, length: u64, owner: StateOwner) -> NfsArgOp {
    NfsArgOp::Lockt(LocktArgs {
        locktype: t,
        offset,
        length,
        owner,
    })
}
