//! Stable-Rust bounded random-input test: random, truncated and mutated bytes through every
//! parser (the same body as the fuzz target), and random bytes into a live connection. The
//! seed is printed; rerun with NBD_TEST_SEED=<seed>.

mod common;

use std::sync::Arc;

use bytes::BytesMut;
use common::Rng;
use pnfs_nbd::codec::consts::*;
use pnfs_nbd::codec::exercise::exercise_all_parsers;
use pnfs_nbd::codec::{
    encode_chunk, encode_extended_request, encode_option_reply, encode_request, BlockDescriptor,
    BlockDescriptorExt, Chunk, ChunkPayload, ClientOption, CodecLimits, Command, ExtendedChunk,
    GoRequest, HeaderStyle, InfoReply, MetaContextRequest, OptionReply, Request,
};
use pnfs_nbd::testing::MemDisk;
use pnfs_nbd::{serve_stream, Export, ExportSet, ServerConfig, ShutdownSignal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ITERATIONS: usize = 20_000;

/// Valid messages of every kind, as seeds for mutation.
fn corpus() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let opts = [
        ClientOption::ExportName("disk".into()),
        ClientOption::List,
        ClientOption::Go(GoRequest {
            name: "disk".into(),
            info_requests: vec![INFO_BLOCK_SIZE, INFO_NAME],
        }),
        ClientOption::SetMetaContext(MetaContextRequest {
            export_name: "disk".into(),
            queries: vec![CONTEXT_BASE_ALLOCATION.into()],
        }),
        ClientOption::StructuredReply,
    ];
    for o in &opts {
        let mut b = BytesMut::new();
        o.encode(&mut b);
        v.push(b.to_vec());
    }
    for r in [
        OptionReply::Ack,
        OptionReply::Info(InfoReply::BlockSize {
            minimum_bytes: 512,
            preferred_bytes: 4096,
            maximum_bytes: 1 << 25,
        }),
        OptionReply::Server {
            name: "x".into(),
            description: "y".into(),
        },
    ] {
        let mut b = BytesMut::new();
        encode_option_reply(OPT_GO, &r, &mut b);
        v.push(b.to_vec());
    }
    for cmd in [Command::Read, Command::Write, Command::BlockStatus] {
        let req = Request {
            flags: CMD_FLAG_FUA,
            command: cmd,
            cookie: 7,
            offset_bytes: 4096,
            length_bytes: 16,
        };
        let mut b = BytesMut::new();
        let payload = vec![1; usize::try_from(req.payload_bytes(HeaderStyle::Compact)).unwrap()];
        encode_request(&req, &payload, &mut b);
        v.push(b.to_vec());
        // The same with extended headers: a payload with PAYLOAD_LEN, a 64-bit effect length
        // without.
        let ext = Request {
            flags: if cmd == Command::Write {
                CMD_FLAG_PAYLOAD_LEN
            } else {
                0
            },
            length_bytes: if cmd == Command::Write { 16 } else { 5 << 30 },
            ..req
        };
        let mut b = BytesMut::new();
        let payload = vec![1; usize::try_from(ext.payload_bytes(HeaderStyle::Extended)).unwrap()];
        encode_extended_request(&ext, &payload, &mut b);
        v.push(b.to_vec());
    }
    for p in [
        ChunkPayload::BlockStatusExt {
            context_id: 1,
            descriptors: vec![BlockDescriptorExt {
                length_bytes: 5 << 30,
                status_flags: 3,
            }],
        },
        ChunkPayload::OffsetData {
            offset_bytes: 4096,
            data: bytes::Bytes::from_static(b"data"),
        },
        ChunkPayload::None,
    ] {
        let c = ExtendedChunk {
            request_offset_bytes: 4096,
            chunk: Chunk {
                flags: REPLY_FLAG_DONE,
                cookie: 3,
                payload: p,
            },
        };
        v.push(c.to_bytes().to_vec());
    }
    for p in [
        ChunkPayload::BlockStatus {
            context_id: 1,
            descriptors: vec![BlockDescriptor {
                length_bytes: 512,
                status_flags: 3,
            }],
        },
        ChunkPayload::Error {
            error: NBD_EIO,
            message: "bad".into(),
        },
        ChunkPayload::ErrorOffset {
            error: NBD_EIO,
            message: "bad".into(),
            offset_bytes: 9,
        },
        ChunkPayload::OffsetHole {
            offset_bytes: 0,
            length_bytes: 512,
        },
    ] {
        let c = Chunk {
            flags: REPLY_FLAG_DONE,
            cookie: 3,
            payload: p,
        };
        let mut b = BytesMut::new();
        if let Some(tail) = encode_chunk(&c, &mut b) {
            b.extend_from_slice(&tail);
        }
        v.push(b.to_vec());
    }
    v
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    match rng.below(5) {
        0 => {
            // Truncate.
            let keep = rng.index(b.len() + 1);
            b.truncate(keep);
        }
        1 => {
            // Flip a few bytes.
            for _ in 0..=rng.below(4) {
                if !b.is_empty() {
                    let i = rng.index(b.len());
                    b[i] ^= rng.byte() | 1;
                }
            }
        }
        2 => {
            // Overwrite a length-looking field with something extreme.
            if b.len() >= 20 {
                let i = rng.index(b.len() - 3);
                let v = [0u32, 1, 0xffff_ffff, 0x8000_0000, 4097][rng.index(5)];
                b[i..i + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        3 => {
            // Append random bytes.
            let mut extra = vec![0u8; rng.index(64)];
            rng.fill(&mut extra);
            b.extend_from_slice(&extra);
        }
        _ => {
            // Pure random bytes.
            b = vec![0u8; rng.index(300)];
            rng.fill(&mut b);
        }
    }
    b
}

#[test]
fn random_and_mutated_bytes_never_panic_the_parsers() {
    let mut rng = Rng::from_env("random_input_parsers");
    let seeds = corpus();
    let small = CodecLimits {
        max_option_data_bytes: 64,
        max_write_payload_bytes: 64,
        max_meta_queries: 2,
        max_info_requests: 2,
        max_reply_payload_bytes: 64,
    };
    for i in 0..ITERATIONS {
        let seed = &seeds[i % seeds.len()];
        let data = mutate(&mut rng, seed);
        exercise_all_parsers(&data, &CodecLimits::default());
        exercise_all_parsers(&data, &small);
        // Every prefix of a valid message must ask for more, never fail or panic.
        if i < seeds.len() {
            for cut in 0..seed.len() {
                exercise_all_parsers(&seed[..cut], &CodecLimits::default());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_into_live_connections_close_them_cleanly() {
    let mut rng = Rng::from_env("random_input_connections");
    let mut set = ExportSet::new();
    set.add(Export::new("disk", Arc::new(MemDisk::new(1 << 20))))
        .unwrap();
    let exports = Arc::new(set);
    let config = ServerConfig {
        handshake_timeout_ms: 5_000,
        drain_timeout_ms: 5_000,
        ..ServerConfig::default()
    };
    // A valid prefix (flags, structured replies, GO) then garbage, or garbage from the start.
    let mut prefix = BytesMut::new();
    prefix.extend_from_slice(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes());
    ClientOption::StructuredReply.encode(&mut prefix);
    ClientOption::Go(GoRequest {
        name: "disk".into(),
        info_requests: vec![],
    })
    .encode(&mut prefix);
    for round in 0..200 {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (_stop, signal) = ShutdownSignal::new();
        let task = tokio::spawn(serve_stream(server, exports.clone(), config, signal));
        let mut garbage = vec![0u8; rng.index(2048) + 1];
        rng.fill(&mut garbage);
        let (mut rd, mut wr) = tokio::io::split(client);
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = rd.read_to_end(&mut sink).await;
        });
        if round % 2 == 0 {
            let _ = wr.write_all(&prefix).await;
        }
        let _ = wr.write_all(&garbage).await;
        let _ = wr.shutdown().await;
        // The connection ends (error or clean) without panicking, within the bound.
        let r = tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("connection ends");
        assert!(r.is_ok(), "connection task panicked: {r:?}");
        let _ = reader.await;
    }
}
