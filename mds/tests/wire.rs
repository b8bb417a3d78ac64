//! Host-side tests of the MDS over a raw TCP connection: record limits, garbage, the slot
//! table, and that a request that fails to decode changes nothing.

use std::sync::Arc;
use std::time::Duration;

use pnfs_proto::rpc::{self, CallBody, OpaqueAuth, RpcMsg};
use pnfs_proto::xdr::{Decoder, Encoder, XdrEncode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    dir: std::path::PathBuf,
}

async fn start(dir: Option<std::path::PathBuf>) -> Server {
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
    let args = <pnfs_mds::MdsArgs as clap::Parser>::parse_from([
        "pnfs-mds",
        "--state",
        dir.join("state").to_str().unwrap(),
        "--volume",
        dir.join("vol").to_str().unwrap(),
    ]);
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
    }
}

impl Server {
    async fn stop(mut self) -> std::path::PathBuf {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
        self.dir
    }
}

struct Client {
    s: TcpStream,
    xid: u32,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self {
            s: TcpStream::connect(addr).await.unwrap(),
            xid: 1,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Sends one NFS call with `args` and returns the reply body after the RPC header, or the
    /// accept_stat when it is not SUCCESS.
    async fn call(&mut self, proc_num: u32, args: &[u8]) -> Result<Vec<u8>, u32> {
        self.xid += 1;
        let mut enc = Encoder::new();
        let mark = rpc::begin_record(&mut enc);
        RpcMsg::call(
            self.xid,
            CallBody::new(rpc::NFS_PROGRAM, 4, proc_num, OpaqueAuth::None),
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

    async fn read_record(&mut self) -> Option<Vec<u8>> {
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
}

fn compound(ops: &[u8], nops: u32) -> Vec<u8> {
    let mut e = Encoder::new();
    e.put_opaque(b"");
    e.put_u32(1);
    e.put_u32(nops);
    e.put_opaque_fixed(ops);
    e.into_inner()
}

/// Parses COMPOUND4res: (status, [(op, status)]) with the first result's body bytes.
fn status_of(res: &[u8]) -> u32 {
    Decoder::new(res).u32().unwrap()
}

/// EXCHANGE_ID + CREATE_SESSION; returns the session id.
async fn session(c: &mut Client, owner: &[u8]) -> [u8; 16] {
    let mut e = Encoder::new();
    e.put_u32(42);
    e.put_opaque_fixed(&[1; 8]);
    e.put_opaque(owner);
    e.put_u32(0);
    e.put_u32(0);
    e.put_u32(0);
    let r = c.call(1, &compound(e.as_slice(), 1)).await.unwrap();
    let mut d = Decoder::new(&r);
    assert_eq!(d.u32().unwrap(), 0, "EXCHANGE_ID");
    d.opaque("tag", 100).unwrap();
    d.u32().unwrap();
    d.u32().unwrap();
    d.u32().unwrap();
    let clientid = d.u64().unwrap();
    let seq = d.u32().unwrap();
    let flags = d.u32().unwrap();
    assert_ne!(flags & 0x2_0000, 0, "USE_PNFS_MDS");
    let mut e = Encoder::new();
    e.put_u32(43);
    e.put_u64(clientid);
    e.put_u32(seq);
    e.put_u32(0);
    for _ in 0..2 {
        for v in [0u32, 1 << 20, 1 << 20, 4096, 16, 4] {
            e.put_u32(v);
        }
        e.put_u32(0);
    }
    e.put_u32(0x4000_0000);
    e.put_u32(0);
    let r = c.call(1, &compound(e.as_slice(), 1)).await.unwrap();
    let mut d = Decoder::new(&r);
    assert_eq!(d.u32().unwrap(), 0, "CREATE_SESSION");
    d.opaque("tag", 100).unwrap();
    d.u32().unwrap();
    d.u32().unwrap();
    d.u32().unwrap();
    d.array_fixed::<16>().unwrap()
}

fn seq_op(e: &mut Encoder, sess: &[u8; 16], seq: u32, slot: u32) {
    e.put_u32(53);
    e.put_opaque_fixed(sess);
    e.put_u32(seq);
    e.put_u32(slot);
    e.put_u32(slot);
    e.put_u32(0);
}

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
    let sess = session(&mut good, b"wire-test-1").await;
    let mut e = Encoder::new();
    seq_op(&mut e, &sess, 1, 0);
    e.put_u32(24);
    e.put_u32(9);
    e.put_u32(1);
    e.put_u32(1 << 4);
    let r = good.call(1, &compound(e.as_slice(), 3)).await.unwrap();
    assert_eq!(status_of(&r), 0);
    srv.stop().await;
}

#[tokio::test]
async fn slot_table_replays_and_rejects_misordered() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let sess = session(&mut c, b"wire-test-2").await;
    let mut e = Encoder::new();
    seq_op(&mut e, &sess, 1, 1);
    e.put_u32(24);
    e.put_u32(10);
    let first = c.call(1, &compound(e.as_slice(), 3)).await.unwrap();
    assert_eq!(status_of(&first), 0);
    // The same seqid again is a replay: the cached reply, byte for byte.
    let again = c.call(1, &compound(e.as_slice(), 3)).await.unwrap();
    assert_eq!(first, again);
    let mut e = Encoder::new();
    seq_op(&mut e, &sess, 5, 1);
    let r = c.call(1, &compound(e.as_slice(), 1)).await.unwrap();
    assert_eq!(status_of(&r), 10063, "SEQ_MISORDERED");
    let mut e = Encoder::new();
    seq_op(&mut e, &sess, 1, 9999);
    let r = c.call(1, &compound(e.as_slice(), 1)).await.unwrap();
    assert_eq!(status_of(&r), 10053, "BADSLOT");
    let mut e = Encoder::new();
    seq_op(&mut e, &[7; 16], 1, 0);
    let r = c.call(1, &compound(e.as_slice(), 1)).await.unwrap();
    assert_eq!(status_of(&r), 10052, "BADSESSION");
    srv.stop().await;
}

fn create_dir_ops(e: &mut Encoder, name: &str) {
    e.put_u32(24);
    e.put_u32(6);
    e.put_u32(2); // NF4DIR
    e.put_str(name);
    e.put_u32(0);
    e.put_opaque(b"");
}

#[tokio::test]
async fn undecodable_compound_changes_nothing_even_after_restart() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let sess = session(&mut c, b"wire-test-3").await;
    // SEQUENCE, PUTROOTFH, CREATE "x" followed by a truncated op: nothing may run.
    let mut e = Encoder::new();
    seq_op(&mut e, &sess, 1, 0);
    create_dir_ops(&mut e, "x");
    e.put_u32(15); // LOOKUP with a missing name
    assert_eq!(c.call(1, &compound(e.as_slice(), 4)).await, Err(4));
    // The same without the garbage creates "y".
    let mut e = Encoder::new();
    seq_op(&mut e, &sess, 1, 0);
    create_dir_ops(&mut e, "y");
    let r = c.call(1, &compound(e.as_slice(), 3)).await.unwrap();
    assert_eq!(status_of(&r), 0);
    let dir = srv.stop().await;
    // Restart on the same store: "y" exists, "x" does not.
    let srv = start(Some(dir)).await;
    let mut c = Client::connect(srv.addr).await;
    let sess = session(&mut c, b"wire-test-3b").await;
    for (i, (name, want)) in [(1u32, ("y", 0u32)), (2, ("x", 2u32))] {
        let mut e = Encoder::new();
        seq_op(&mut e, &sess, i, 0);
        e.put_u32(24);
        e.put_u32(15);
        e.put_str(name);
        let r = c.call(1, &compound(e.as_slice(), 3)).await.unwrap();
        assert_eq!(status_of(&r), want, "LOOKUP {name}");
    }
    srv.stop().await;
}

/// Skips COMPOUND4res's header and the SEQUENCE result; the decoder is left at the second op.
fn after_sequence(res: &[u8]) -> Decoder<'_> {
    let mut d = Decoder::new(res);
    assert_eq!(d.u32().unwrap(), 0, "compound status");
    d.opaque("tag", 100).unwrap();
    d.u32().unwrap(); // result count
    assert_eq!((d.u32().unwrap(), d.u32().unwrap()), (53, 0), "SEQUENCE");
    d.array_fixed::<16>().unwrap();
    for _ in 0..5 {
        d.u32().unwrap();
    }
    d
}

/// GETDEVICEINFO grants the CHANGE/DELETE notifications the client asks for (as nfsd does):
/// Linux re-resolves a device whose reply grants fewer (a blkmapd upcall per new layout).
#[tokio::test]
async fn getdeviceinfo_grants_the_asked_change_and_delete_notifications() {
    let srv = start(None).await;
    let mut c = Client::connect(srv.addr).await;
    let sess = session(&mut c, b"wire-test-4").await;
    let mut e = Encoder::new();
    seq_op(&mut e, &sess, 1, 0);
    e.put_u32(48); // GETDEVICELIST
    e.put_u32(3); // LAYOUT4_BLOCK_VOLUME
    e.put_u32(16);
    e.put_u64(0);
    e.put_opaque_fixed(&[0; 8]);
    let r = c.call(1, &compound(e.as_slice(), 2)).await.unwrap();
    let mut d = after_sequence(&r);
    assert_eq!(
        (d.u32().unwrap(), d.u32().unwrap()),
        (48, 0),
        "GETDEVICELIST"
    );
    d.u64().unwrap();
    d.array_fixed::<8>().unwrap();
    assert_eq!(d.u32().unwrap(), 1, "one device");
    let devid = d.array_fixed::<16>().unwrap();
    // Asked: CHANGE (bit 1), DELETE (bit 2) and an unknown bit 5; granted: CHANGE and DELETE.
    for (asked, granted) in [(&[0b10_0110u32][..], vec![0b110u32]), (&[][..], vec![])] {
        let mut e = Encoder::new();
        seq_op(&mut e, &sess, 2 + u32::from(asked.is_empty()), 0);
        e.put_u32(47); // GETDEVICEINFO
        e.put_opaque_fixed(&devid);
        e.put_u32(3);
        e.put_u32(65536);
        e.put_u32(u32::try_from(asked.len()).unwrap());
        for w in asked {
            e.put_u32(*w);
        }
        let r = c.call(1, &compound(e.as_slice(), 2)).await.unwrap();
        let mut d = after_sequence(&r);
        assert_eq!(
            (d.u32().unwrap(), d.u32().unwrap()),
            (47, 0),
            "GETDEVICEINFO"
        );
        assert_eq!(d.u32().unwrap(), 3);
        d.opaque("da_addr_body", 1 << 20).unwrap();
        let n = d.u32().unwrap();
        let got: Vec<u32> = (0..n).map(|_| d.u32().unwrap()).collect();
        assert_eq!(got, granted, "asked {asked:?}");
    }
    srv.stop().await;
}
