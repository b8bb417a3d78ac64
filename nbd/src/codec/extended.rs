//! Extended headers (`NBD_OPT_EXTENDED_HEADERS`, the NBD protocol's 64-bit extension): the
//! 32-byte request header with a 64-bit length and the 32-byte reply chunk header that
//! echoes the request's offset. Once negotiated every request and every reply of the
//! connection uses them; there are no simple replies. The chunk payloads are the structured
//! ones ([`super::transmission`]), plus `NBD_REPLY_TYPE_BLOCK_STATUS_EXT` with 64-bit
//! extent lengths, the only block status type in this style.

use bytes::{BufMut, Bytes, BytesMut};

use super::consts::*;
use super::transmission::{decode_chunk_payload, encode_chunk_body, Chunk, Command, Request};
use super::{be_u16, be_u32, be_u64, frame_body, CodecLimits, Decode, Frame};
use crate::error::{NbdError, NbdResult};

/// Parses one extended request header (32 bytes). The length is not limited here: the
/// server checks a payload length against its limit itself, and effect lengths may use all
/// 64 bits. A compact (or any other) magic is [`NbdError::Protocol`]: after negotiating
/// extended headers the client must not send compact ones.
pub(crate) fn decode_extended_request_header(buf: &[u8]) -> NbdResult<Decode<Request>> {
    if buf.len() < EXTENDED_REQUEST_HEADER_BYTES {
        return Ok(Decode::NeedMore {
            total_bytes: EXTENDED_REQUEST_HEADER_BYTES,
        });
    }
    let magic = be_u32(buf, 0);
    if magic != EXTENDED_REQUEST_MAGIC {
        return Err(NbdError::protocol(format!(
            "request has magic {magic:#010x}, not the extended request magic \
             {EXTENDED_REQUEST_MAGIC:#010x} (extended headers were negotiated)"
        )));
    }
    Ok(Decode::Done {
        value: Request {
            flags: be_u16(buf, 4),
            command: Command::from_code(be_u16(buf, 6)),
            cookie: be_u64(buf, 8),
            offset_bytes: be_u64(buf, 16),
            length_bytes: be_u64(buf, 24),
        },
        consumed_bytes: EXTENDED_REQUEST_HEADER_BYTES,
    })
}

/// Client side: encodes an extended request header followed by `payload` (the client sets
/// `NBD_CMD_FLAG_PAYLOAD_LEN` when there is one).
pub fn encode_extended_request(req: &Request, payload: &[u8], out: &mut BytesMut) {
    out.put_u32(EXTENDED_REQUEST_MAGIC);
    out.put_u16(req.flags);
    out.put_u16(req.command.code());
    out.put_u64(req.cookie);
    out.put_u64(req.offset_bytes);
    out.put_u64(req.length_bytes);
    out.put_slice(payload);
}

/// Server side: encodes a chunk with the extended header; `request_offset_bytes` is the
/// offset of the request it answers (the header echoes it, whatever the payload says).
/// Header and fixed fields go into `out`; for `OffsetData` the data is returned instead of
/// copied, and must be sent right after `out`.
pub fn encode_extended_chunk(
    chunk: &Chunk,
    request_offset_bytes: u64,
    out: &mut BytesMut,
) -> Option<Bytes> {
    let (body, tail) = encode_chunk_body(&chunk.payload);
    let tail_len = tail.as_ref().map_or(0, Bytes::len);
    out.put_u32(EXTENDED_REPLY_MAGIC);
    out.put_u16(chunk.flags);
    out.put_u16(chunk.payload.chunk_type());
    out.put_u64(chunk.cookie);
    out.put_u64(request_offset_bytes);
    // usize → u64 never loses bits on the targets this crate builds for.
    out.put_u64((body.len() + tail_len) as u64);
    out.put_slice(&body);
    tail
}

/// One reply chunk with the extended header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedChunk {
    /// The offset of the request this chunk answers (from the header).
    pub request_offset_bytes: u64,
    /// Flags, cookie and payload.
    pub chunk: Chunk,
}

impl ExtendedChunk {
    /// The whole chunk as one buffer (tests, small chunks).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(tail) = encode_extended_chunk(&self.chunk, self.request_offset_bytes, &mut out)
        {
            out.put_slice(&tail);
        }
        out.freeze()
    }
}

/// Client side: parses one complete extended reply chunk; a payload longer than
/// `limits.max_reply_payload_bytes` is [`NbdError::TooLarge`] (the protocol lets a client
/// hang up on an unexpectedly large reply length), a wrong magic [`NbdError::Protocol`].
pub fn decode_extended_chunk(buf: &[u8], limits: &CodecLimits) -> NbdResult<Decode<ExtendedChunk>> {
    let header = EXTENDED_REPLY_HEADER_BYTES;
    if buf.len() < header {
        return Ok(Decode::NeedMore {
            total_bytes: header,
        });
    }
    let magic = be_u32(buf, 0);
    if magic != EXTENDED_REPLY_MAGIC {
        return Err(NbdError::protocol(format!(
            "reply has magic {magic:#010x}, not the extended reply magic {EXTENDED_REPLY_MAGIC:#010x}"
        )));
    }
    let flags = be_u16(buf, 4);
    let chunk_type = be_u16(buf, 6);
    let cookie = be_u64(buf, 8);
    let request_offset_bytes = be_u64(buf, 16);
    let length = be_u64(buf, 24);
    let max = limits.max_reply_payload_bytes;
    let too_large = || NbdError::TooLarge {
        what: "extended reply chunk",
        value_bytes: length,
        limit_bytes: u64::from(max),
    };
    let length = u32::try_from(length).map_err(|_| too_large())?;
    let (body, total) = match frame_body(buf, header, length, max, "extended reply chunk")? {
        Frame::Body { body, total_bytes } => (body, total_bytes),
        Frame::NeedMore { total_bytes } => return Ok(Decode::NeedMore { total_bytes }),
    };
    let payload = decode_chunk_payload(flags, chunk_type, body)?;
    Ok(Decode::Done {
        value: ExtendedChunk {
            request_offset_bytes,
            chunk: Chunk {
                flags,
                cookie,
                payload,
            },
        },
        consumed_bytes: total,
    })
}

#[cfg(test)]
mod tests {
    use super::super::transmission::{
        decode_request, encode_request, BlockDescriptorExt, ChunkPayload, HeaderStyle,
    };
    use super::*;

    fn limits() -> CodecLimits {
        CodecLimits::default()
    }

    const EXT: HeaderStyle = HeaderStyle::Extended;

    #[test]
    fn extended_requests_round_trip_with_64_bit_lengths_and_wait_for_payload() {
        let cases = [
            // Effect lengths past 4 GiB on the commands without a payload.
            (Command::Trim, 0, 5 << 30, 0),
            (Command::WriteZeroes, CMD_FLAG_NO_HOLE, u64::MAX - 1, 0),
            (Command::BlockStatus, CMD_FLAG_REQ_ONE, 1 << 40, 0),
            (Command::Cache, 0, 6 << 30, 0),
            (Command::Read, 0, 4096, 0),
            (Command::Flush, 0, 0, 0),
            (Command::Disc, 0, 0, 0),
            // A write carries its payload with PAYLOAD_LEN ...
            (
                Command::Write,
                CMD_FLAG_PAYLOAD_LEN | CMD_FLAG_FUA,
                1000,
                1000,
            ),
            // ... and so does any command that sets it (the server consumes and refuses it).
            (Command::Read, CMD_FLAG_PAYLOAD_LEN, 7, 7),
            (Command::Unknown(77), CMD_FLAG_PAYLOAD_LEN, 3, 3),
            // A write without the flag still carries its payload (qemu 10 sends it so).
            (Command::Write, 0, 4096, 4096),
        ];
        for (command, flags, length_bytes, payload_len) in cases {
            let req = Request {
                flags,
                command,
                cookie: 0xfeed_f00d_0000_0001,
                offset_bytes: (1 << 42) + 512,
                length_bytes,
            };
            assert_eq!(req.payload_bytes(EXT), payload_len, "{req:?}");
            let payload = vec![0x5a; usize::try_from(payload_len).unwrap()];
            let mut out = BytesMut::new();
            encode_extended_request(&req, &payload, &mut out);
            assert_eq!(out.len(), EXTENDED_REQUEST_HEADER_BYTES + payload.len());
            for cut in 0..out.len() {
                assert!(
                    matches!(
                        decode_request(&out[..cut], EXT, &limits()).unwrap(),
                        Decode::NeedMore { .. }
                    ),
                    "{req:?} cut at {cut}"
                );
            }
            let (back, n) = decode_request(&out, EXT, &limits())
                .unwrap()
                .done()
                .unwrap();
            assert_eq!((back, n), (req, out.len()));
        }
    }

    #[test]
    fn extended_request_magic_and_payload_limit() {
        let write = Request {
            flags: CMD_FLAG_PAYLOAD_LEN,
            command: Command::Write,
            cookie: 1,
            offset_bytes: 0,
            length_bytes: 512,
        };
        // A compact header after extended headers were negotiated: protocol error, and the
        // other way round.
        let mut compact = BytesMut::new();
        encode_request(&write, &[0; 512], &mut compact);
        assert!(matches!(
            decode_request(&compact, EXT, &limits()),
            Err(NbdError::Protocol(_))
        ));
        let mut ext = BytesMut::new();
        encode_extended_request(&write, &[0; 512], &mut ext);
        assert!(matches!(
            decode_request(&ext, HeaderStyle::Compact, &limits()),
            Err(NbdError::Protocol(_))
        ));
        // A payload over the limit, and one past 32 bits: TooLarge before any byte of it.
        let max = u64::from(limits().max_write_payload_bytes);
        for length_bytes in [max + 1, 1 << 32, u64::MAX] {
            let big = Request {
                length_bytes,
                ..write
            };
            let mut out = BytesMut::new();
            encode_extended_request(&big, &[], &mut out);
            match decode_request(&out, EXT, &limits()) {
                Err(NbdError::TooLarge { value_bytes, .. }) => {
                    assert_eq!(value_bytes, length_bytes)
                }
                other => panic!("{length_bytes}: {other:?}"),
            }
        }
        // The same lengths as effect lengths (no PAYLOAD_LEN) are only a header.
        let trim = Request {
            flags: 0,
            command: Command::Trim,
            length_bytes: u64::MAX,
            ..write
        };
        let mut out = BytesMut::new();
        encode_extended_request(&trim, &[], &mut out);
        assert_eq!(
            decode_request(&out, EXT, &limits()).unwrap().done(),
            Some((trim, EXTENDED_REQUEST_HEADER_BYTES))
        );
    }

    fn ext_chunk(payload: ChunkPayload) -> ExtendedChunk {
        ExtendedChunk {
            request_offset_bytes: 5 << 30,
            chunk: Chunk {
                flags: REPLY_FLAG_DONE,
                cookie: 77,
                payload,
            },
        }
    }

    #[test]
    fn extended_chunks_round_trip_and_echo_the_request_offset() {
        let payloads = vec![
            ChunkPayload::None,
            ChunkPayload::OffsetData {
                offset_bytes: (5 << 30) + 4096,
                data: Bytes::from_static(b"data in the middle"),
            },
            ChunkPayload::OffsetHole {
                offset_bytes: 5 << 30,
                length_bytes: 4096,
            },
            ChunkPayload::BlockStatusExt {
                context_id: 1,
                descriptors: vec![
                    BlockDescriptorExt {
                        length_bytes: 6 << 30,
                        status_flags: u64::from(STATE_HOLE | STATE_ZERO),
                    },
                    BlockDescriptorExt {
                        length_bytes: 512,
                        status_flags: 0,
                    },
                ],
            },
            ChunkPayload::Error {
                error: NBD_EINVAL,
                message: "no".into(),
            },
        ];
        for p in payloads {
            let c = ext_chunk(p);
            let wire = c.to_bytes();
            assert_eq!(be_u32(&wire, 0), EXTENDED_REPLY_MAGIC);
            assert_eq!(be_u64(&wire, 16), 5 << 30, "the header echoes the offset");
            assert_eq!(
                be_u64(&wire, 24),
                (wire.len() - EXTENDED_REPLY_HEADER_BYTES) as u64
            );
            for cut in 0..wire.len() {
                assert!(matches!(
                    decode_extended_chunk(&wire[..cut], &limits()).unwrap(),
                    Decode::NeedMore { .. }
                ));
            }
            let (back, n) = decode_extended_chunk(&wire, &limits())
                .unwrap()
                .done()
                .unwrap();
            assert_eq!((&back, n), (&c, wire.len()));
        }
    }

    #[test]
    fn block_status_ext_layout_on_the_wire() {
        let c = ext_chunk(ChunkPayload::BlockStatusExt {
            context_id: 9,
            descriptors: vec![BlockDescriptorExt {
                length_bytes: 0x1_0000_0200,
                status_flags: 3,
            }],
        });
        let wire = c.to_bytes();
        let body = &wire[EXTENDED_REPLY_HEADER_BYTES..];
        assert_eq!(be_u16(&wire, 6), REPLY_TYPE_BLOCK_STATUS_EXT);
        assert_eq!(body.len(), 8 + 16);
        assert_eq!(be_u32(body, 0), 9, "context id");
        assert_eq!(be_u32(body, 4), 1, "descriptor count");
        assert_eq!(be_u64(body, 8), 0x1_0000_0200, "64-bit length");
        assert_eq!(be_u64(body, 16), 3, "flags");
    }

    #[test]
    fn malformed_extended_chunks_are_errors() {
        let good = ext_chunk(ChunkPayload::BlockStatusExt {
            context_id: 1,
            descriptors: vec![
                BlockDescriptorExt {
                    length_bytes: 512,
                    status_flags: 0,
                };
                2
            ],
        })
        .to_bytes()
        .to_vec();
        let at = EXTENDED_REPLY_HEADER_BYTES;
        // Wrong descriptor count (nonzero and not 2).
        let mut bad = good.clone();
        bad[at + 7] = 3;
        assert!(decode_extended_chunk(&bad, &limits()).is_err());
        // Count 0 means "see the length".
        let mut zero_count = good.clone();
        zero_count[at + 7] = 0;
        assert!(decode_extended_chunk(&zero_count, &limits()).is_ok());
        // A zero-length descriptor.
        let mut bad = good.clone();
        bad[at + 8..at + 16].fill(0);
        assert!(decode_extended_chunk(&bad, &limits()).is_err());
        // A payload that is not 8 + 16n: cut one byte and fix the header length.
        let mut bad = good[..good.len() - 1].to_vec();
        let len = (bad.len() - at) as u64;
        bad[24..32].copy_from_slice(&len.to_be_bytes());
        assert!(decode_extended_chunk(&bad, &limits()).is_err());
        // A structured (compact) chunk is not an extended one.
        let compact = Chunk {
            flags: REPLY_FLAG_DONE,
            cookie: 1,
            payload: ChunkPayload::None,
        }
        .to_bytes();
        let mut padded = compact.to_vec();
        padded.resize(EXTENDED_REPLY_HEADER_BYTES, 0);
        assert!(matches!(
            decode_extended_chunk(&padded, &limits()),
            Err(NbdError::Protocol(_))
        ));
        // A reply length past the limit, and past 32 bits: TooLarge before reading it.
        for length in [u64::from(limits().max_reply_payload_bytes) + 1, u64::MAX] {
            let mut big = good.clone();
            big[24..32].copy_from_slice(&length.to_be_bytes());
            assert!(matches!(
                decode_extended_chunk(&big, &limits()),
                Err(NbdError::TooLarge { .. })
            ));
        }
    }
}
