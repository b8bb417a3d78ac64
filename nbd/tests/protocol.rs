//! Protocol behaviour over real sockets, driven by a raw client built on the crate's codec:
//! corner cases no library client sends (garbage handshakes, unknown options, oversized
//! requests), out-of-order replies, DISC, shutdown.

mod common;

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use common::*;
use pnfs_disk::{DiskErrorKind, DiskInfo, DISK_MAX_IO_BYTES};
use pnfs_nbd::codec::consts::*;
use pnfs_nbd::codec::{
    decode_export_name_reply, BlockDescriptor, ChunkPayload, ClientOption, Command, GoRequest,
    MetaContextRequest, OptionReply, Request,
};
use pnfs_nbd::testing::{FaultOp, MemDisk};
use pnfs_nbd::{Export, ExportSet, ServerConfig};
use tokio::io::AsyncWriteExt;

const MIB: u64 = 1024 * 1024;
const MIB32: u32 = 1024 * 1024;

fn one_export(name: &str, disk: Arc<MemDisk>) -> ExportSet {
    let mut set = ExportSet::new();
    set.add(Export::new(name, disk).with_description("test disk"))
        .expect("add");
    set
}

async fn start(name: &str, disk: Arc<MemDisk>) -> Running {
    start_tcp(one_export(name, disk), ServerConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_handshake_closes_only_that_connection() {
    let disk = Arc::new(MemDisk::new(MIB));
    let srv = start("d", disk).await;
    let addr = srv.addr.unwrap();
    // A healthy connection opened first must survive the garbage one.
    let mut good = RawClient::connect(addr).await;
    // Garbage instead of client flags (an HTTP request).
    let (mut bad, _) = RawClient::connect_bare(addr).await;
    bad.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        bad.closed_by_peer().await,
        "garbage client flags must close"
    );
    // Valid flags, then an option with a wrong magic.
    let mut bad2 = RawClient::connect(addr).await;
    bad2.send(&[0xde; 16]).await;
    assert!(bad2.closed_by_peer().await, "bad option magic must close");
    // Unknown client flag bit.
    let (mut bad3, _) = RawClient::connect_bare(addr).await;
    bad3.send(&[0, 0, 0, 0x80]).await;
    assert!(
        bad3.closed_by_peer().await,
        "unknown client flag must close"
    );
    // An option claiming 1 GiB of data.
    let mut bad4 = RawClient::connect(addr).await;
    let mut out = BytesMut::new();
    out.put_u64(IHAVEOPT);
    out.put_u32(OPT_GO);
    out.put_u32(1 << 30);
    bad4.send(&out).await;
    assert!(bad4.closed_by_peer().await, "oversized option must close");
    // The first connection still works, and so does a new one.
    let (size, flags, _) = good.go("d").await;
    assert_eq!(size, MIB);
    assert_ne!(flags & TFLAG_HAS_FLAGS, 0);
    good.request(req(Command::Read, 1, 0, 512), &[]).await;
    assert_eq!(good.simple_reply().await.unwrap().error, 0);
    assert_eq!(good.raw_bytes(512).await, vec![0u8; 512]);
    let mut fresh = RawClient::connect(addr).await;
    fresh.go("d").await;
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_unsupported_options_get_err_unsup_and_negotiation_continues() {
    let srv = start("d", Arc::new(MemDisk::new(MIB))).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    for code in [0xdead_beef, OPT_PEEK_EXPORT] {
        c.option(&ClientOption::Unsupported(code)).await;
        let (opt, r) = c.option_reply().await;
        assert_eq!(opt, code);
        assert_eq!(r.reply_type(), REP_ERR_UNSUP, "option {code}: {r:?}");
    }
    c.option(&ClientOption::StartTls).await;
    assert_eq!(c.option_reply().await.1.reply_type(), REP_ERR_UNSUP);
    // Malformed known options → ERR_INVALID, still negotiating.
    let mut out = BytesMut::new();
    pnfs_nbd::codec::encode_option(OPT_LIST, b"junk", &mut out);
    c.send(&out).await;
    assert_eq!(c.option_reply().await.1.reply_type(), REP_ERR_INVALID);
    // SET_META_CONTEXT before STRUCTURED_REPLY → ERR_INVALID.
    c.option(&ClientOption::SetMetaContext(MetaContextRequest {
        export_name: "d".into(),
        queries: vec![CONTEXT_BASE_ALLOCATION.into()],
    }))
    .await;
    assert_eq!(c.option_reply().await.1.reply_type(), REP_ERR_INVALID);
    // Unknown export → ERR_UNKNOWN (INFO and GO), empty name without a default too.
    for name in ["nope", ""] {
        c.option(&ClientOption::Info(GoRequest {
            name: name.into(),
            info_requests: vec![],
        }))
        .await;
        assert_eq!(c.option_reply().await.1.reply_type(), REP_ERR_UNKNOWN);
    }
    c.option(&ClientOption::Go(GoRequest {
        name: "nope".into(),
        info_requests: vec![],
    }))
    .await;
    assert_eq!(c.option_reply().await.1.reply_type(), REP_ERR_UNKNOWN);
    // After all that, GO works.
    let (size, _, sizes) = c.go("d").await;
    assert_eq!(size, MIB);
    assert_eq!(sizes, (512, 4096, DISK_MAX_IO_BYTES));
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_info_default_export_and_abort() {
    let mut set = ExportSet::new();
    set.add(Export::new("alpha", Arc::new(MemDisk::new(MIB))).with_description("first"))
        .unwrap();
    set.add(Export::new("beta", Arc::new(MemDisk::new(2 * MIB))).with_read_only(true))
        .unwrap();
    set.set_default("beta").unwrap();
    assert!(set.set_default("gamma").is_err());
    let srv = start_tcp(set, ServerConfig::default()).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    c.option(&ClientOption::List).await;
    assert_eq!(
        c.option_replies().await,
        vec![
            OptionReply::Server {
                name: "alpha".into(),
                description: "first".into()
            },
            OptionReply::Server {
                name: "beta".into(),
                description: String::new()
            },
            OptionReply::Ack
        ]
    );
    // INFO on the default export names it when asked.
    c.option(&ClientOption::Info(GoRequest {
        name: String::new(),
        info_requests: vec![INFO_NAME, INFO_DESCRIPTION],
    }))
    .await;
    let r = c.option_replies().await;
    assert!(
        r.contains(&OptionReply::Info(pnfs_nbd::codec::InfoReply::Name(
            "beta".into()
        )))
    );
    assert!(r.iter().any(|x| matches!(
        x,
        OptionReply::Info(pnfs_nbd::codec::InfoReply::Export { size_bytes, transmission_flags })
            if *size_bytes == 2 * MIB && transmission_flags & TFLAG_READ_ONLY != 0
               && transmission_flags & TFLAG_SEND_TRIM == 0
    )));
    // LIST_META_CONTEXT with no query lists base:allocation; unknown namespaces are ignored.
    c.option(&ClientOption::ListMetaContext(MetaContextRequest {
        export_name: "alpha".into(),
        queries: vec![],
    }))
    .await;
    assert_eq!(
        c.option_replies().await,
        vec![
            OptionReply::MetaContext {
                id: 0,
                name: CONTEXT_BASE_ALLOCATION.into()
            },
            OptionReply::Ack
        ]
    );
    c.option(&ClientOption::ListMetaContext(MetaContextRequest {
        export_name: "alpha".into(),
        queries: vec!["qemu:dirty-bitmap:x".into()],
    }))
    .await;
    assert_eq!(c.option_replies().await, vec![OptionReply::Ack]);
    c.option(&ClientOption::Abort).await;
    assert_eq!(c.option_reply().await.1, OptionReply::Ack);
    assert!(c.closed_by_peer().await);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_name_with_and_without_zeroes_and_unknown_name_closes() {
    let srv = start("d", Arc::new(MemDisk::new(MIB))).await;
    let addr = srv.addr.unwrap();
    for no_zeroes in [true, false] {
        let (mut c, _) = RawClient::connect_bare(addr).await;
        let flags = if no_zeroes {
            FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES
        } else {
            FLAG_C_FIXED_NEWSTYLE
        };
        c.send(&flags.to_be_bytes()).await;
        c.option(&ClientOption::ExportName("d".into())).await;
        let (size, tflags) = c
            .read(move |b| Ok(decode_export_name_reply(b, no_zeroes)))
            .await
            .unwrap();
        assert_eq!(size, MIB);
        assert_ne!(tflags & TFLAG_SEND_FLUSH, 0);
        // Without the zeroes negotiated away, exactly 124 of them came and nothing more.
        c.request(req(Command::Flush, 5, 0, 0), &[]).await;
        let r = c.simple_reply().await.unwrap();
        assert_eq!((r.error, r.cookie), (0, 5));
    }
    let mut c = RawClient::connect(addr).await;
    c.option(&ClientOption::ExportName("missing".into())).await;
    assert!(c.closed_by_peer().await);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errors_and_the_connection_keeps_working() {
    // A disk whose largest I/O is 1 MiB, so a 2 MiB write is over the advertised maximum but
    // under the hard payload limit (its payload is read and discarded).
    let disk = Arc::new(MemDisk::with_info(DiskInfo {
        size_bytes: 8 * MIB,
        logical_block_bytes: 512,
        preferred_block_bytes: 4096,
        max_io_bytes: 1 << 20,
        read_only: false,
        multi_conn_safe: false,
    }));
    let srv = start("d", disk.clone()).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    let (_, flags, sizes) = c.go("d").await;
    assert_eq!(sizes.2, 1 << 20);
    assert_eq!(
        flags & TFLAG_CAN_MULTI_CONN,
        0,
        "disk is not multi-conn safe"
    );
    let cases: Vec<(Request, Vec<u8>, u32)> = vec![
        (
            req(Command::Read, 1, 8 * MIB - 512, 1024),
            vec![],
            NBD_EINVAL,
        ),
        (
            req(Command::Read, 2, u64::MAX - 511, 512),
            vec![],
            NBD_EINVAL,
        ),
        (
            req(Command::Write, 3, 8 * MIB, 512),
            vec![1; 512],
            NBD_EINVAL,
        ),
        (req(Command::Read, 4, 0, 2 << 20), vec![], NBD_EINVAL),
        (
            req(Command::Write, 5, 0, 2 << 20),
            vec![2; 2 << 20],
            NBD_EINVAL,
        ),
        (req(Command::Read, 6, 100, 512), vec![], NBD_EINVAL),
        (req(Command::Unknown(42), 7, 0, 0), vec![], NBD_EINVAL),
        (
            Request {
                flags: CMD_FLAG_REQ_ONE,
                ..req(Command::Read, 8, 0, 512)
            },
            vec![],
            NBD_EINVAL,
        ),
        (req(Command::BlockStatus, 9, 0, 512), vec![], NBD_EINVAL),
        (req(Command::Trim, 10, 0, 9 * MIB32), vec![], NBD_EINVAL),
    ];
    for (r, payload, want) in cases {
        c.request(r, &payload).await;
        let reply = c.simple_reply().await.expect("reply");
        assert_eq!(
            (reply.cookie, reply.error),
            (r.cookie, want),
            "request {r:?}"
        );
        // The next request works.
        c.request(req(Command::Write, 100, 4096, 512), &[9; 512])
            .await;
        assert_eq!(c.simple_reply().await.unwrap().error, 0);
    }
    // Disk failures map through the one errno mapping.
    disk.fail_next(FaultOp::Read, DiskErrorKind::Io);
    c.request(req(Command::Read, 11, 0, 512), &[]).await;
    assert_eq!(c.simple_reply().await.unwrap().error, NBD_EIO);
    disk.fail_next(FaultOp::Write, DiskErrorKind::NoSpace);
    c.request(req(Command::Write, 12, 0, 512), &[1; 512]).await;
    assert_eq!(c.simple_reply().await.unwrap().error, NBD_ENOSPC);
    c.request(req(Command::Read, 13, 4096, 512), &[]).await;
    assert_eq!(c.simple_reply().await.unwrap().error, 0);
    assert_eq!(c.raw_bytes(512).await, vec![9u8; 512]);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_one_request_fails_only_that_request() {
    let disk = Arc::new(MemDisk::new(MIB));
    let srv = start("d", Arc::clone(&disk)).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    c.go("d").await;
    c.request(req(Command::Write, 1, 0, 512), &[7; 512]).await;
    assert_eq!(c.simple_reply().await.unwrap().error, 0);
    // A bug inside the disk: the request gets EIO, the connection stays.
    disk.panic_next(FaultOp::Read);
    c.request(req(Command::Read, 2, 0, 512), &[]).await;
    let r = c
        .simple_reply()
        .await
        .expect("an error reply, not a closed connection");
    assert_eq!((r.cookie, r.error), (2, NBD_EIO));
    disk.panic_next(FaultOp::Write);
    c.request(req(Command::Write, 3, 0, 512), &[8; 512]).await;
    let r = c.simple_reply().await.expect("an error reply");
    assert_eq!((r.cookie, r.error), (3, NBD_EIO));
    c.request(req(Command::Read, 4, 0, 512), &[]).await;
    assert_eq!(c.simple_reply().await.unwrap().error, 0);
    assert_eq!(c.raw_bytes(512).await, vec![7u8; 512]);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_payload_over_the_hard_limit_gets_einval_then_close() {
    let srv = start("d", Arc::new(MemDisk::new(64 * MIB))).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    c.go("d").await;
    c.request(req(Command::Write, 77, 0, 48 << 20), &[]).await;
    let r = c
        .simple_reply()
        .await
        .expect("an error reply before the close");
    assert_eq!((r.cookie, r.error), (77, NBD_EINVAL));
    assert!(c.closed_by_peer().await);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_export_refuses_writes_with_eperm() {
    let mut set = ExportSet::new();
    set.add(Export::new("ro", Arc::new(MemDisk::new(MIB))).with_read_only(true))
        .unwrap();
    let srv = start_tcp(set, ServerConfig::default()).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    let (_, flags, _) = c.go("ro").await;
    assert_ne!(flags & TFLAG_READ_ONLY, 0);
    for (cmd, payload) in [
        (Command::Write, vec![0u8; 512]),
        (Command::Trim, vec![]),
        (Command::WriteZeroes, vec![]),
    ] {
        c.request(req(cmd, 1, 0, 512), &payload).await;
        assert_eq!(c.simple_reply().await.unwrap().error, NBD_EPERM, "{cmd:?}");
    }
    c.request(req(Command::Flush, 2, 0, 0), &[]).await;
    assert_eq!(c.simple_reply().await.unwrap().error, 0);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_reads_block_status_and_errors() {
    let disk = Arc::new(MemDisk::new(4 * MIB));
    let srv = start("d", disk.clone()).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    let (_, flags, _) = c.go_structured("d").await;
    assert_ne!(flags & TFLAG_SEND_DF, 0);
    c.request(req(Command::Write, 1, 65536, 65536), &[0x5a; 65536])
        .await;
    assert_eq!(c.simple_reply().await.unwrap().error, 0);
    c.request(req(Command::WriteZeroes, 2, MIB, 131072), &[])
        .await;
    assert_eq!(c.simple_reply().await.unwrap().error, 0);
    // Read: one OFFSET_DATA chunk with DONE.
    c.request(req(Command::Read, 3, 65536, 4096), &[]).await;
    let ch = c.chunk().await.unwrap();
    assert!(ch.is_done());
    assert_eq!(ch.cookie, 3);
    match ch.payload {
        ChunkPayload::OffsetData { offset_bytes, data } => {
            assert_eq!(offset_bytes, 65536);
            assert_eq!(&data[..], &[0x5a; 4096][..]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Block status over the first 2 MiB: hole, data, hole, zero, hole.
    c.request(req(Command::BlockStatus, 4, 0, 2 * MIB32), &[])
        .await;
    let ch = c.chunk().await.unwrap();
    assert!(ch.is_done());
    let hole = STATE_HOLE | STATE_ZERO;
    let d = |length_bytes: u32, status_flags: u32| BlockDescriptor {
        length_bytes,
        status_flags,
    };
    assert_eq!(
        ch.payload,
        ChunkPayload::BlockStatus {
            context_id: pnfs_nbd::BASE_ALLOCATION_CONTEXT_ID,
            descriptors: vec![
                d(65536, hole),
                d(65536, 0),
                d(MIB32 - 131072, hole),
                d(131072, STATE_ZERO),
                d(MIB32 - 131072, hole),
            ]
        }
    );
    // REQ_ONE: a single descriptor, not longer than asked.
    c.request(
        Request {
            flags: CMD_FLAG_REQ_ONE,
            ..req(Command::BlockStatus, 5, 65536, 4096)
        },
        &[],
    )
    .await;
    match c.chunk().await.unwrap().payload {
        ChunkPayload::BlockStatus { descriptors, .. } => {
            assert_eq!(descriptors, vec![d(4096, 0)])
        }
        other => panic!("unexpected {other:?}"),
    }
    // Errors come as structured ERROR chunks with a message.
    c.request(req(Command::Read, 6, 4 * MIB, 512), &[]).await;
    let ch = c.chunk().await.unwrap();
    assert!(ch.is_done());
    match ch.payload {
        ChunkPayload::Error { error, message } => {
            assert_eq!(error, NBD_EINVAL);
            assert!(message.contains("past"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    disk.fail_next(FaultOp::BlockStatus, DiskErrorKind::Io);
    c.request(req(Command::BlockStatus, 7, 0, 4096), &[]).await;
    assert!(matches!(
        c.chunk().await.unwrap().payload,
        ChunkPayload::Error { error: NBD_EIO, .. }
    ));
    // And the connection still works.
    c.request(req(Command::Read, 8, 0, 512), &[]).await;
    assert!(matches!(
        c.chunk().await.unwrap().payload,
        ChunkPayload::OffsetData { .. }
    ));
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_come_out_of_order_and_whole() {
    let disk = Arc::new(MemDisk::new(4 * MIB));
    let srv = start("d", disk.clone()).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    c.go("d").await;
    disk.gate_reads_at(0);
    let mut out = BytesMut::new();
    for (cookie, offset) in [(1u64, 0u64), (2, 65536)] {
        pnfs_nbd::codec::encode_request(&req(Command::Read, cookie, offset, 65536), &[], &mut out);
    }
    c.send(&out).await;
    // The read at 0 is held: the second one must be answered first, header + data intact.
    let r = c.simple_reply().await.unwrap();
    assert_eq!((r.cookie, r.error), (2, 0));
    assert_eq!(c.raw_bytes(65536).await.len(), 65536);
    disk.release_gated_reads(1);
    let r = c.simple_reply().await.unwrap();
    assert_eq!((r.cookie, r.error), (1, 0));
    assert_eq!(c.raw_bytes(65536).await.len(), 65536);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pipelined_requests_all_answered_with_their_data() {
    let disk = Arc::new(MemDisk::new(16 * MIB));
    let config = ServerConfig {
        max_in_flight_requests: 8,
        ..ServerConfig::default()
    };
    let srv = start_tcp(one_export("d", disk.clone()), config).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    c.go_structured("d").await;
    let mut rng = Rng::from_env("many_pipelined_requests");
    const N: u64 = 300;
    let mut expected = std::collections::HashMap::new();
    let mut out = BytesMut::new();
    for i in 0..N {
        let mut data = vec![0u8; 4096];
        rng.fill(&mut data);
        pnfs_nbd::codec::encode_request(&req(Command::Write, i, i * 4096, 4096), &data, &mut out);
        expected.insert(i, data);
    }
    // Write everything at once from another task while reading replies here.
    let (mut rd, mut wr) = c.stream.into_split();
    let sender = tokio::spawn(async move {
        wr.write_all(&out).await.unwrap();
        wr
    });
    let mut c2 = ReadOnly {
        rd: &mut rd,
        buf: BytesMut::new(),
    };
    let mut seen = std::collections::HashSet::new();
    for _ in 0..N {
        let r = c2.simple().await;
        assert_eq!(r.error, 0);
        assert!(seen.insert(r.cookie), "cookie {} twice", r.cookie);
    }
    let _wr = sender.await.unwrap();
    for i in (0..N).step_by(37) {
        let got = disk_read(&disk, i * 4096, 4096).await;
        assert_eq!(&got, expected.get(&i).unwrap());
    }
    srv.stop().await.unwrap();
}

struct ReadOnly<'a> {
    rd: &'a mut tokio::net::tcp::OwnedReadHalf,
    buf: BytesMut,
}

impl ReadOnly<'_> {
    async fn simple(&mut self) -> pnfs_nbd::codec::SimpleReplyHeader {
        use tokio::io::AsyncReadExt;
        loop {
            if let Some((h, n)) = pnfs_nbd::codec::decode_simple_reply(&self.buf)
                .unwrap()
                .done()
            {
                let _ = self.buf.split_to(n);
                return h;
            }
            let n = tokio::time::timeout(TEST_TIMEOUT, self.rd.read_buf(&mut self.buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "server closed early");
        }
    }
}

async fn disk_read(disk: &MemDisk, offset: u64, len: u32) -> Vec<u8> {
    pnfs_disk::Disk::read(disk, offset, len)
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disc_finishes_requests_in_flight_then_closes_and_counts() {
    let disk = Arc::new(MemDisk::new(MIB));
    let mut set = ExportSet::new();
    let export = set.add(Export::new("d", disk.clone())).unwrap();
    let srv = start_tcp(set, ServerConfig::default()).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    c.go("d").await;
    c.request(req(Command::Write, 1, 0, 1024), &[3; 1024]).await;
    assert_eq!(c.simple_reply().await.unwrap().error, 0);
    disk.gate_reads_at(4096);
    let mut out = BytesMut::new();
    pnfs_nbd::codec::encode_request(&req(Command::Read, 2, 4096, 512), &[], &mut out);
    pnfs_nbd::codec::encode_request(&req(Command::Disc, 3, 0, 0), &[], &mut out);
    c.send(&out).await;
    disk.release_gated_reads(1);
    let r = c
        .simple_reply()
        .await
        .expect("the read in flight is answered");
    assert_eq!((r.cookie, r.error), (2, 0));
    assert_eq!(c.raw_bytes(512).await.len(), 512);
    assert!(c.closed_by_peer().await, "then the server closes");
    srv.stop().await.unwrap();
    let st = export.stats().snapshot();
    assert_eq!(st.requests[usize::from(CMD_READ)], 1);
    assert_eq!(st.requests[usize::from(CMD_WRITE)], 1);
    assert_eq!((st.read_bytes, st.written_bytes), (512, 1024));
    assert_eq!((st.connections_total, st.connections_active), (1, 0));
    assert_eq!(st.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_flushes() {
    let disk = Arc::new(MemDisk::new(MIB));
    let srv = start("d", disk.clone()).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    c.go("d").await;
    // A connection still in the handshake is closed by shutdown.
    let mut idle = RawClient::connect(srv.addr.unwrap()).await;
    disk.gate_reads_at(0);
    c.request(req(Command::Read, 1, 0, 512), &[]).await;
    // Wait until the read is executing (held at the disk), so it is in flight at shutdown.
    wait_until(|| disk.gated_waiters() == 1).await;
    let flushes_before = disk.flush_count();
    let stopping = tokio::spawn(srv.stop());
    assert!(idle.closed_by_peer().await);
    // serve() cannot return while the read is held.
    assert!(!stopping.is_finished());
    disk.release_gated_reads(1);
    let r = c
        .simple_reply()
        .await
        .expect("in-flight read answered during shutdown");
    assert_eq!((r.cookie, r.error), (1, 0));
    assert_eq!(c.raw_bytes(512).await.len(), 512);
    assert!(c.closed_by_peer().await);
    stopping.await.unwrap().unwrap();
    assert!(
        disk.flush_count() > flushes_before,
        "disks are flushed at shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_a_failed_flush() {
    let disk = Arc::new(MemDisk::new(MIB));
    let srv = start("d", disk.clone()).await;
    disk.fail_next(FaultOp::Flush, DiskErrorKind::Io);
    let err = srv.stop().await.unwrap_err();
    assert!(err.to_string().contains("\"d\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_serves_the_same_protocol() {
    use tokio::io::AsyncReadExt;
    let srv = start_unix(
        one_export("u", Arc::new(MemDisk::new(MIB))),
        ServerConfig::default(),
        "proto",
    )
    .await;
    let path = srv.socket.clone().unwrap();
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut greeting = [0u8; GREETING_BYTES];
    s.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting[..8], b"NBDMAGIC");
    let mut out = BytesMut::new();
    out.put_u32(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
    ClientOption::ExportName("u".into()).encode(&mut out);
    s.write_all(&out).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), MIB);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_limits_close_slow_chatty_and_surplus_clients() {
    let config = ServerConfig {
        handshake_timeout_ms: 300,
        max_options_per_handshake: 3,
        max_connections: 2,
        ..ServerConfig::default()
    };
    let srv = start_tcp(one_export("d", Arc::new(MemDisk::new(MIB))), config).await;
    let addr = srv.addr.unwrap();
    // A client that never sends its flags is closed after the handshake time limit.
    let (mut slow, _) = RawClient::connect_bare(addr).await;
    assert!(slow.closed_by_peer().await, "idle handshake must time out");
    // A client that sends more options than allowed is closed.
    let mut chatty = RawClient::connect(addr).await;
    for _ in 0..3 {
        chatty.option(&ClientOption::List).await;
        assert_eq!(
            chatty.option_replies().await.last(),
            Some(&OptionReply::Ack)
        );
    }
    chatty.option(&ClientOption::List).await;
    assert!(chatty.closed_by_peer().await, "4th option must close");
    // Two connections in transmission fill the slots; a third is closed at once.
    let mut a = RawClient::connect_when_slot_free(addr).await;
    a.go("d").await;
    let mut b = RawClient::connect_when_slot_free(addr).await;
    b.go("d").await;
    let surplus = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut surplus = RawClient {
        stream: surplus,
        buf: BytesMut::new(),
        limits: Default::default(),
    };
    assert!(surplus.closed_by_peer().await, "connection over the limit");
    // Once one leaves, a new client gets in (the slot frees when its task ends).
    drop(a);
    let mut c = RawClient::connect_when_slot_free(addr).await;
    c.go("d").await;
    b.request(req(Command::Read, 1, 0, 512), &[]).await;
    assert_eq!(b.simple_reply().await.unwrap().error, 0);
    srv.stop().await.unwrap();
}
