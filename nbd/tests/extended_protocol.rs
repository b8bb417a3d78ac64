//! Extended headers on the wire, with a raw client built on the crate's codec: the corner
//! cases no library client sends (other-style magic, payloads on commands that take none,
//! oversized payloads, 64-bit ranges that overflow) and the exact reply format (no simple
//! replies, the request offset echoed, 64-bit block status descriptors).

mod common;

use std::sync::Arc;

use bytes::BytesMut;
use common::*;
use pnfs_disk::Disk;
use pnfs_nbd::codec::consts::*;
use pnfs_nbd::codec::{
    decode_extended_chunk, encode_extended_request, encode_request, BlockDescriptorExt,
    ChunkPayload, ClientOption, Command, ExtendedChunk, MetaContextRequest, OptionReply, Request,
};
use pnfs_nbd::testing::MemDisk;
use pnfs_nbd::{Export, ExportSet, ServerConfig, BASE_ALLOCATION_CONTEXT_ID};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const DISK_BYTES: u64 = 8 * GIB;

async fn start(disk: Arc<MemDisk>) -> (Running, Arc<Export>) {
    let mut set = ExportSet::new();
    set.add(Export::new("d", disk)).expect("add export");
    let export = set.lookup("d").expect("export").clone();
    (start_tcp(set, ServerConfig::default()).await, export)
}

/// EXTENDED_HEADERS, base:allocation, GO; returns the GO answer.
async fn go_extended(c: &mut RawClient) -> (u64, u16, (u32, u32, u32)) {
    c.option(&ClientOption::ExtendedHeaders).await;
    assert_eq!(c.option_replies().await, vec![OptionReply::Ack]);
    c.option(&ClientOption::SetMetaContext(MetaContextRequest {
        export_name: "d".into(),
        queries: vec![CONTEXT_BASE_ALLOCATION.into()],
    }))
    .await;
    assert_eq!(
        c.option_replies().await,
        vec![
            OptionReply::MetaContext {
                id: BASE_ALLOCATION_CONTEXT_ID,
                name: CONTEXT_BASE_ALLOCATION.into()
            },
            OptionReply::Ack
        ]
    );
    c.go("d").await
}

fn ext_req(command: Command, flags: u16, cookie: u64, offset: u64, length: u64) -> Request {
    Request {
        flags,
        command,
        cookie,
        offset_bytes: offset,
        length_bytes: length,
    }
}

async fn send_ext(c: &mut RawClient, req: Request, payload: &[u8]) {
    let mut out = BytesMut::new();
    encode_extended_request(&req, payload, &mut out);
    c.send(&out).await;
}

/// Reads one extended chunk: it must be the final chunk of the reply to `req` (cookie and
/// offset echoed); returns its payload.
async fn reply_to(c: &mut RawClient, req: &Request) -> ChunkPayload {
    let limits = c.limits;
    let got: ExtendedChunk = c
        .read(move |b| decode_extended_chunk(b, &limits))
        .await
        .expect("an extended reply chunk");
    assert_eq!(got.chunk.cookie, req.cookie, "{got:?}");
    assert_eq!(got.request_offset_bytes, req.offset_bytes, "{got:?}");
    assert!(got.chunk.is_done(), "{got:?}");
    got.chunk.payload
}

fn error_of(p: &ChunkPayload) -> Option<u32> {
    match p {
        ChunkPayload::Error { error, .. } => Some(*error),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_transmission_uses_only_extended_chunks_and_64_bit_ranges() {
    let disk = Arc::new(MemDisk::new(DISK_BYTES));
    let (srv, export) = start(disk.clone()).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    let (size, flags, (min, _, max)) = go_extended(&mut c).await;
    assert_eq!(size, DISK_BYTES);
    assert_ne!(
        flags & TFLAG_SEND_DF,
        0,
        "extended headers imply structured replies"
    );

    // A write past 4 GiB with PAYLOAD_LEN, and one without it (as qemu 10 sends them).
    let five = 5 * GIB;
    let data = vec![0x5a; 8192];
    let w = ext_req(
        Command::Write,
        CMD_FLAG_PAYLOAD_LEN | CMD_FLAG_FUA,
        1,
        five,
        8192,
    );
    send_ext(&mut c, w, &data).await;
    assert_eq!(reply_to(&mut c, &w).await, ChunkPayload::None);
    let w2 = ext_req(Command::Write, 0, 2, five + 8192, 4096);
    send_ext(&mut c, w2, &[0x6b; 4096]).await;
    assert_eq!(reply_to(&mut c, &w2).await, ChunkPayload::None);
    // Read it back: data chunk whose payload offset is absolute, header offset the request's.
    let r = ext_req(Command::Read, 0, 3, five, 12288);
    send_ext(&mut c, r, &[]).await;
    match reply_to(&mut c, &r).await {
        ChunkPayload::OffsetData { offset_bytes, data } => {
            assert_eq!(offset_bytes, five);
            assert_eq!(&data[..8192], &[0x5a; 8192][..]);
            assert_eq!(&data[8192..], &[0x6b; 4096][..]);
        }
        other => panic!("{other:?}"),
    }
    // Flush: success is a NONE chunk, never a simple reply.
    let f = ext_req(Command::Flush, 0, 4, 0, 0);
    send_ext(&mut c, f, &[]).await;
    assert_eq!(reply_to(&mut c, &f).await, ChunkPayload::None);
    // Block status over the whole disk (a 64-bit effect length): 5 GiB of hole in one
    // 64-bit descriptor, the data, then the rest.
    let bs = ext_req(Command::BlockStatus, 0, 5, 0, DISK_BYTES);
    send_ext(&mut c, bs, &[]).await;
    let hole = u64::from(STATE_HOLE | STATE_ZERO);
    let d = |length_bytes, status_flags| BlockDescriptorExt {
        length_bytes,
        status_flags,
    };
    assert_eq!(
        reply_to(&mut c, &bs).await,
        ChunkPayload::BlockStatusExt {
            context_id: BASE_ALLOCATION_CONTEXT_ID,
            descriptors: vec![
                d(five, hole),
                d(12288, 0),
                d(DISK_BYTES - five - 12288, hole)
            ]
        }
    );
    // REQ_ONE: one descriptor, no longer than asked.
    let one = ext_req(Command::BlockStatus, CMD_FLAG_REQ_ONE, 6, 0, 6 * GIB);
    send_ext(&mut c, one, &[]).await;
    assert_eq!(
        reply_to(&mut c, &one).await,
        ChunkPayload::BlockStatusExt {
            context_id: BASE_ALLOCATION_CONTEXT_ID,
            descriptors: vec![d(five, hole)]
        }
    );
    // A 64-bit TRIM over the data and a 64-bit WRITE_ZEROES, then the data reads as zeros.
    let t = ext_req(Command::Trim, 0, 7, 4 * GIB, 3 * GIB);
    send_ext(&mut c, t, &[]).await;
    assert_eq!(reply_to(&mut c, &t).await, ChunkPayload::None);
    let z = ext_req(Command::WriteZeroes, CMD_FLAG_NO_HOLE, 8, GIB, 5 * GIB);
    send_ext(&mut c, z, &[]).await;
    assert_eq!(reply_to(&mut c, &z).await, ChunkPayload::None);
    assert_eq!(disk.read(five, 4096).await.unwrap(), vec![0u8; 4096]);
    // CACHE may also use a 64-bit effect length.
    let ca = ext_req(Command::Cache, 0, 9, 0, DISK_BYTES);
    send_ext(&mut c, ca, &[]).await;
    assert_eq!(reply_to(&mut c, &ca).await, ChunkPayload::None);
    // Reads and writes stay bounded by the maximum block size.
    let big = ext_req(Command::Read, 0, 10, 0, u64::from(max) + u64::from(min));
    send_ext(&mut c, big, &[]).await;
    assert_eq!(error_of(&reply_to(&mut c, &big).await), Some(NBD_EINVAL));
    let huge = ext_req(Command::Read, 0, 11, 0, 1 << 40);
    send_ext(&mut c, huge, &[]).await;
    assert_eq!(error_of(&reply_to(&mut c, &huge).await), Some(NBD_EINVAL));

    let disc = ext_req(Command::Disc, 0, 12, 0, 0);
    send_ext(&mut c, disc, &[]).await;
    assert!(c.closed_by_peer().await);
    srv.stop().await.unwrap();
    let st = export.stats().snapshot();
    assert_eq!(st.written_bytes, 12288);
    assert_eq!(st.trimmed_bytes, 3 * GIB);
    assert_eq!(st.zeroed_bytes, 5 * GIB);
    assert_eq!(st.errors, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_extended_requests_get_errors_and_the_connection_stays_in_sync() {
    let disk = Arc::new(MemDisk::new(DISK_BYTES));
    let (srv, _) = start(disk).await;
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    go_extended(&mut c).await;
    // PAYLOAD_LEN on a command that takes none: the payload is consumed, EINVAL, and the
    // next request is read from the right place.
    let r = ext_req(Command::Read, CMD_FLAG_PAYLOAD_LEN, 1, 0, 7);
    send_ext(&mut c, r, b"garbage").await;
    assert_eq!(error_of(&reply_to(&mut c, &r).await), Some(NBD_EINVAL));
    let fl = ext_req(Command::Flush, 0, 2, 0, 0);
    send_ext(&mut c, fl, &[]).await;
    assert_eq!(reply_to(&mut c, &fl).await, ChunkPayload::None);
    // Unknown command with a payload: the same.
    let u = ext_req(Command::Unknown(99), CMD_FLAG_PAYLOAD_LEN, 3, 0, 3);
    send_ext(&mut c, u, b"xyz").await;
    assert_eq!(error_of(&reply_to(&mut c, &u).await), Some(NBD_EINVAL));
    // Offset + length overflowing 64 bits, a range past the end, unaligned lengths.
    for (i, (cmd, offset, length)) in [
        (Command::Trim, u64::MAX - 511, 1024),
        (Command::WriteZeroes, 4096, DISK_BYTES),
        (Command::BlockStatus, 0, DISK_BYTES + 512),
        (Command::Trim, 0, 5 * GIB + 1),
    ]
    .into_iter()
    .enumerate()
    {
        let q = ext_req(cmd, 0, 10 + i as u64, offset, length);
        send_ext(&mut c, q, &[]).await;
        let e = error_of(&reply_to(&mut c, &q).await);
        assert!(
            e.is_some_and(|e| e != 0),
            "{cmd:?} {offset} {length}: {e:?}"
        );
    }
    // Still in sync.
    send_ext(&mut c, fl, &[]).await;
    assert_eq!(reply_to(&mut c, &fl).await, ChunkPayload::None);
    // A compact header now is a protocol error: the connection closes.
    let mut out = BytesMut::new();
    encode_request(&ext_req(Command::Flush, 0, 20, 0, 0), &[], &mut out);
    out.resize(32, 0);
    c.send(&out).await;
    assert!(c.closed_by_peer().await, "a compact request must close");

    // A payload past the limit (here past 32 bits): answered, then closed, unread.
    let mut c = RawClient::connect(srv.addr.unwrap()).await;
    go_extended(&mut c).await;
    let w = ext_req(Command::Write, CMD_FLAG_PAYLOAD_LEN, 30, 0, 1 << 33);
    send_ext(&mut c, w, &[]).await;
    assert_eq!(error_of(&reply_to(&mut c, &w).await), Some(NBD_EINVAL));
    assert!(c.closed_by_peer().await, "an oversized payload must close");
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_headers_negotiation_rules_on_the_wire() {
    let (srv, _) = start(Arc::new(MemDisk::new(MIB))).await;
    let addr = srv.addr.unwrap();
    // With data: INVALID; negotiation goes on in the compact style.
    let mut c = RawClient::connect(addr).await;
    let mut out = BytesMut::new();
    pnfs_nbd::codec::encode_option(OPT_EXTENDED_HEADERS, b"x", &mut out);
    c.send(&out).await;
    assert_eq!(c.option_reply().await.1.reply_type(), REP_ERR_INVALID);
    c.go("d").await;
    c.request(req(Command::Flush, 1, 0, 0), &[]).await;
    assert_eq!(c.simple_reply().await.unwrap().error, 0);
    // STRUCTURED_REPLY after it: EXT_HEADER_REQD, and the connection stays extended.
    let mut c = RawClient::connect(addr).await;
    c.option(&ClientOption::ExtendedHeaders).await;
    assert_eq!(c.option_replies().await, vec![OptionReply::Ack]);
    c.option(&ClientOption::StructuredReply).await;
    assert_eq!(
        c.option_reply().await.1.reply_type(),
        REP_ERR_EXT_HEADER_REQD
    );
    c.go("d").await;
    let f = ext_req(Command::Flush, 0, 2, 0, 0);
    send_ext(&mut c, f, &[]).await;
    assert_eq!(reply_to(&mut c, &f).await, ChunkPayload::None);
    // EXPORT_NAME after it: closed.
    let mut c = RawClient::connect(addr).await;
    c.option(&ClientOption::ExtendedHeaders).await;
    assert_eq!(c.option_replies().await, vec![OptionReply::Ack]);
    c.option(&ClientOption::ExportName("d".into())).await;
    assert!(c.closed_by_peer().await);
    srv.stop().await.unwrap();
}
