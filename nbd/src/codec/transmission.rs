//! Transmission phase: requests, simple replies and structured reply chunks, in the compact
//! style; the extended style (`NBD_OPT_EXTENDED_HEADERS`) shares the request type and the
//! chunk payloads, and its headers are in [`super::extended`].

use bytes::{BufMut, Bytes, BytesMut};

use super::consts::*;
use super::extended::decode_extended_request_header;
use super::{
    be_u16, be_u32, be_u64, clip_str, frame_body, wire_len, CodecLimits, Cursor, Decode, Frame,
};
use crate::error::{NbdError, NbdResult};

/// Which request and reply headers a connection uses, as negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HeaderStyle {
    /// 28-byte requests with 32-bit lengths; simple or structured replies.
    #[default]
    Compact,
    /// `NBD_OPT_EXTENDED_HEADERS`: 32-byte requests with 64-bit lengths, 32-byte reply
    /// chunk headers, never a simple reply.
    Extended,
}

impl HeaderStyle {
    /// Bytes of one request header in this style.
    pub fn request_header_bytes(self) -> usize {
        match self {
            HeaderStyle::Compact => REQUEST_HEADER_BYTES,
            HeaderStyle::Extended => EXTENDED_REQUEST_HEADER_BYTES,
        }
    }
}

/// A transmission command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `NBD_CMD_READ`.
    Read,
    /// `NBD_CMD_WRITE` (a payload of `length` bytes follows the header).
    Write,
    /// `NBD_CMD_DISC`.
    Disc,
    /// `NBD_CMD_FLUSH`.
    Flush,
    /// `NBD_CMD_TRIM`.
    Trim,
    /// `NBD_CMD_CACHE`.
    Cache,
    /// `NBD_CMD_WRITE_ZEROES`.
    WriteZeroes,
    /// `NBD_CMD_BLOCK_STATUS`.
    BlockStatus,
    /// A command this codec does not know (answered EINVAL; assumed to carry no payload).
    Unknown(u16),
}

impl Command {
    /// From the wire code.
    pub fn from_code(code: u16) -> Self {
        match code {
            CMD_READ => Command::Read,
            CMD_WRITE => Command::Write,
            CMD_DISC => Command::Disc,
            CMD_FLUSH => Command::Flush,
            CMD_TRIM => Command::Trim,
            CMD_CACHE => Command::Cache,
            CMD_WRITE_ZEROES => Command::WriteZeroes,
            CMD_BLOCK_STATUS => Command::BlockStatus,
            other => Command::Unknown(other),
        }
    }

    /// The wire code.
    pub fn code(self) -> u16 {
        match self {
            Command::Read => CMD_READ,
            Command::Write => CMD_WRITE,
            Command::Disc => CMD_DISC,
            Command::Flush => CMD_FLUSH,
            Command::Trim => CMD_TRIM,
            Command::Cache => CMD_CACHE,
            Command::WriteZeroes => CMD_WRITE_ZEROES,
            Command::BlockStatus => CMD_BLOCK_STATUS,
            Command::Unknown(c) => c,
        }
    }

    /// Name for logs.
    pub fn name(self) -> &'static str {
        command_name(self.code())
    }
}

/// A request header (a payload of [`Request::payload_bytes`] follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Command flags (`NBD_CMD_FLAG_*`).
    pub flags: u16,
    /// The command.
    pub command: Command,
    /// The client's handle, echoed in the reply.
    pub cookie: u64,
    /// Offset.
    pub offset_bytes: u64,
    /// Length: 32 bits on the wire in the compact style, 64 in the extended one, where it is
    /// the payload length with `NBD_CMD_FLAG_PAYLOAD_LEN` and the effect length without.
    pub length_bytes: u64,
}

impl Request {
    /// Bytes of payload that follow the header on the wire: the length of a write, and in
    /// the extended style also the length of any request with `NBD_CMD_FLAG_PAYLOAD_LEN`.
    /// (The extension's draft asks clients to set the flag on writes, but qemu 10 does not:
    /// a write's length is its payload either way.)
    pub fn payload_bytes(&self, style: HeaderStyle) -> u64 {
        let carries = match style {
            HeaderStyle::Compact => self.command == Command::Write,
            HeaderStyle::Extended => {
                self.command == Command::Write || self.has_flag(CMD_FLAG_PAYLOAD_LEN)
            }
        };
        if carries {
            self.length_bytes
        } else {
            0
        }
    }

    /// Whether `flag` is set.
    pub fn has_flag(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// Server side: parses one request header only (28 bytes compact, 32 extended), with no
/// limit on the length: the server checks the payload length itself so that it can still
/// answer with the request's cookie. A wrong magic (including the other style's) is
/// [`NbdError::Protocol`].
pub fn decode_request_header(buf: &[u8], style: HeaderStyle) -> NbdResult<Decode<Request>> {
    match style {
        HeaderStyle::Compact => decode_compact_request_header(buf),
        HeaderStyle::Extended => decode_extended_request_header(buf),
    }
}

fn decode_compact_request_header(buf: &[u8]) -> NbdResult<Decode<Request>> {
    if buf.len() < REQUEST_HEADER_BYTES {
        return Ok(Decode::NeedMore {
            total_bytes: REQUEST_HEADER_BYTES,
        });
    }
    let magic = be_u32(buf, 0);
    if magic != REQUEST_MAGIC {
        return Err(NbdError::protocol(format!(
            "request has magic {magic:#010x}, not {REQUEST_MAGIC:#010x}"
        )));
    }
    Ok(Decode::Done {
        value: Request {
            flags: be_u16(buf, 4),
            command: Command::from_code(be_u16(buf, 6)),
            cookie: be_u64(buf, 8),
            offset_bytes: be_u64(buf, 16),
            length_bytes: u64::from(be_u32(buf, 24)),
        },
        consumed_bytes: REQUEST_HEADER_BYTES,
    })
}

/// Parses one whole request. `Done` is returned only once the whole payload is in `buf`;
/// the payload is `buf[style.request_header_bytes()..consumed_bytes]`. A payload longer than
/// `limits.max_write_payload_bytes` is [`NbdError::TooLarge`] (the connection cannot be kept
/// in sync without reading it), a wrong magic is [`NbdError::Protocol`].
pub fn decode_request(
    buf: &[u8],
    style: HeaderStyle,
    limits: &CodecLimits,
) -> NbdResult<Decode<Request>> {
    let req = match decode_request_header(buf, style)? {
        Decode::Done { value, .. } => value,
        Decode::NeedMore { total_bytes } => return Ok(Decode::NeedMore { total_bytes }),
    };
    let max = limits.max_write_payload_bytes;
    let payload = req.payload_bytes(style);
    let payload = u32::try_from(payload).map_err(|_| NbdError::TooLarge {
        what: "write payload",
        value_bytes: payload,
        limit_bytes: u64::from(max),
    })?;
    let header = style.request_header_bytes();
    let total = match frame_body(buf, header, payload, max, "write payload")? {
        Frame::Body { total_bytes, .. } => total_bytes,
        Frame::NeedMore { total_bytes } => return Ok(Decode::NeedMore { total_bytes }),
    };
    Ok(Decode::Done {
        value: req,
        consumed_bytes: total,
    })
}

/// Client side: encodes a compact request header followed by `payload` (empty except for
/// writes); [`super::extended::encode_extended_request`] is the extended counterpart. A
/// compact header cannot carry a length above 32 bits: it is sent as `u32::MAX` (the server
/// refuses it; tests only).
pub fn encode_request(req: &Request, payload: &[u8], out: &mut BytesMut) {
    out.put_u32(REQUEST_MAGIC);
    out.put_u16(req.flags);
    out.put_u16(req.command.code());
    out.put_u64(req.cookie);
    out.put_u64(req.offset_bytes);
    out.put_u32(u32::try_from(req.length_bytes).unwrap_or(u32::MAX));
    out.put_slice(payload);
}

/// A simple reply header (read data, if any, follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimpleReplyHeader {
    /// NBD error value (0 = success).
    pub error: u32,
    /// The request's cookie.
    pub cookie: u64,
}

/// Server side: encodes a simple reply header. For a successful read the caller sends the
/// data right after it.
pub fn encode_simple_reply(error: u32, cookie: u64, out: &mut BytesMut) {
    out.put_u32(SIMPLE_REPLY_MAGIC);
    out.put_u32(error);
    out.put_u64(cookie);
}

/// Client side: parses a simple reply header (the client knows from its own request whether
/// read data follows).
pub fn decode_simple_reply(buf: &[u8]) -> NbdResult<Decode<SimpleReplyHeader>> {
    if buf.len() < SIMPLE_REPLY_HEADER_BYTES {
        return Ok(Decode::NeedMore {
            total_bytes: SIMPLE_REPLY_HEADER_BYTES,
        });
    }
    if be_u32(buf, 0) != SIMPLE_REPLY_MAGIC {
        return Err(NbdError::protocol("simple reply has a wrong magic"));
    }
    Ok(Decode::Done {
        value: SimpleReplyHeader {
            error: be_u32(buf, 4),
            cookie: be_u64(buf, 8),
        },
        consumed_bytes: SIMPLE_REPLY_HEADER_BYTES,
    })
}

/// One `base:allocation` (or other context) descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockDescriptor {
    /// Extent length (never 0).
    pub length_bytes: u32,
    /// Status flags (`NBD_STATE_*`).
    pub status_flags: u32,
}

/// One descriptor of `NBD_REPLY_TYPE_BLOCK_STATUS_EXT` (extended headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockDescriptorExt {
    /// Extent length (never 0).
    pub length_bytes: u64,
    /// Status flags (`NBD_STATE_*`; `base:allocation` uses only the low 32 bits).
    pub status_flags: u64,
}

/// The payload of a structured reply chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkPayload {
    /// `NBD_REPLY_TYPE_NONE`.
    None,
    /// `NBD_REPLY_TYPE_OFFSET_DATA`.
    OffsetData {
        /// Absolute offset of the data.
        offset_bytes: u64,
        /// The data (at least one byte).
        data: Bytes,
    },
    /// `NBD_REPLY_TYPE_OFFSET_HOLE`.
    OffsetHole {
        /// Absolute offset of the zeroes.
        offset_bytes: u64,
        /// How many bytes read as zero (never 0).
        length_bytes: u32,
    },
    /// `NBD_REPLY_TYPE_BLOCK_STATUS`.
    BlockStatus {
        /// The metadata context id.
        context_id: u32,
        /// One or more descriptors.
        descriptors: Vec<BlockDescriptor>,
    },
    /// `NBD_REPLY_TYPE_BLOCK_STATUS_EXT` (extended headers only).
    BlockStatusExt {
        /// The metadata context id.
        context_id: u32,
        /// One or more descriptors.
        descriptors: Vec<BlockDescriptorExt>,
    },
    /// `NBD_REPLY_TYPE_ERROR`.
    Error {
        /// NBD error value (nonzero).
        error: u32,
        /// Message for a human (≤ 4096 bytes).
        message: String,
    },
    /// `NBD_REPLY_TYPE_ERROR_OFFSET`.
    ErrorOffset {
        /// NBD error value (nonzero).
        error: u32,
        /// Message for a human (≤ 4096 bytes).
        message: String,
        /// Where the error happened.
        offset_bytes: u64,
    },
    /// Any other type (client side).
    Unknown {
        /// The chunk type.
        chunk_type: u16,
        /// Its payload.
        data: Bytes,
    },
}

impl ChunkPayload {
    /// The chunk type on the wire.
    pub fn chunk_type(&self) -> u16 {
        match self {
            ChunkPayload::None => REPLY_TYPE_NONE,
            ChunkPayload::OffsetData { .. } => REPLY_TYPE_OFFSET_DATA,
            ChunkPayload::OffsetHole { .. } => REPLY_TYPE_OFFSET_HOLE,
            ChunkPayload::BlockStatus { .. } => REPLY_TYPE_BLOCK_STATUS,
            ChunkPayload::BlockStatusExt { .. } => REPLY_TYPE_BLOCK_STATUS_EXT,
            ChunkPayload::Error { .. } => REPLY_TYPE_ERROR,
            ChunkPayload::ErrorOffset { .. } => REPLY_TYPE_ERROR_OFFSET,
            ChunkPayload::Unknown { chunk_type, .. } => *chunk_type,
        }
    }
}

/// One structured reply chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Reply flags (`NBD_REPLY_FLAG_DONE`).
    pub flags: u16,
    /// The request's cookie.
    pub cookie: u64,
    /// Type and payload.
    pub payload: ChunkPayload,
}

impl Chunk {
    /// Whether this is the last chunk of its reply.
    pub fn is_done(&self) -> bool {
        self.flags & REPLY_FLAG_DONE != 0
    }

    /// The whole chunk as one buffer (tests, small chunks).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(tail) = encode_chunk(self, &mut out) {
            out.put_slice(&tail);
        }
        out.freeze()
    }
}

/// Largest error message in a structured error chunk (the protocol's string limit).
const MAX_ERROR_MESSAGE_BYTES: usize = MAX_STRING_BYTES;

/// Server side: encodes a chunk. Header and fixed fields go into `out`; for
/// `OffsetData` the data is returned instead of copied, and must be sent right after `out`.
pub fn encode_chunk(chunk: &Chunk, out: &mut BytesMut) -> Option<Bytes> {
    let (body, tail) = encode_chunk_body(&chunk.payload);
    let tail_len = tail.as_ref().map_or(0, Bytes::len);
    out.put_u32(STRUCTURED_REPLY_MAGIC);
    out.put_u16(chunk.flags);
    out.put_u16(chunk.payload.chunk_type());
    out.put_u64(chunk.cookie);
    out.put_u32(wire_len(body.len() + tail_len));
    out.put_slice(&body);
    tail
}

/// The payload of a chunk (either header style): the fixed fields, and the data of
/// `OffsetData` apart so that it is sent without a copy.
pub(crate) fn encode_chunk_body(payload: &ChunkPayload) -> (BytesMut, Option<Bytes>) {
    let mut body = BytesMut::new();
    let mut tail = None;
    match payload {
        ChunkPayload::None => {}
        ChunkPayload::OffsetData { offset_bytes, data } => {
            body.put_u64(*offset_bytes);
            tail = Some(data.clone());
        }
        ChunkPayload::OffsetHole {
            offset_bytes,
            length_bytes,
        } => {
            body.put_u64(*offset_bytes);
            body.put_u32(*length_bytes);
        }
        ChunkPayload::BlockStatus {
            context_id,
            descriptors,
        } => {
            body.put_u32(*context_id);
            for d in descriptors {
                body.put_u32(d.length_bytes);
                body.put_u32(d.status_flags);
            }
        }
        ChunkPayload::BlockStatusExt {
            context_id,
            descriptors,
        } => {
            body.put_u32(*context_id);
            // The count is optional on the wire (0 = "see the length"); this side always
            // fills it in.
            body.put_u32(wire_len(descriptors.len()));
            for d in descriptors {
                body.put_u64(d.length_bytes);
                body.put_u64(d.status_flags);
            }
        }
        ChunkPayload::Error { error, message } => {
            let m = clip_str(message, MAX_ERROR_MESSAGE_BYTES);
            body.put_u32(*error);
            body.put_u16(u16::try_from(m.len()).unwrap_or(0));
            body.put_slice(m.as_bytes());
        }
        ChunkPayload::ErrorOffset {
            error,
            message,
            offset_bytes,
        } => {
            let m = clip_str(message, MAX_ERROR_MESSAGE_BYTES);
            body.put_u32(*error);
            body.put_u16(u16::try_from(m.len()).unwrap_or(0));
            body.put_slice(m.as_bytes());
            body.put_u64(*offset_bytes);
        }
        ChunkPayload::Unknown { data, .. } => body.put_slice(data),
    }
    (body, tail)
}

fn parse_error_fields(c: &mut Cursor<'_>, what: &str) -> NbdResult<(u32, String)> {
    let error = c
        .u32()
        .ok_or_else(|| NbdError::protocol(format!("{what} chunk shorter than 6 bytes")))?;
    let mlen = c
        .u16()
        .ok_or_else(|| NbdError::protocol(format!("{what} chunk shorter than 6 bytes")))?;
    let m = c
        .take(usize::from(mlen))
        .ok_or_else(|| NbdError::protocol(format!("{what} message runs past the chunk")))?;
    if error == 0 {
        return Err(NbdError::protocol(format!("{what} chunk with error 0")));
    }
    if m.len() > MAX_ERROR_MESSAGE_BYTES {
        return Err(NbdError::protocol(format!(
            "{what} message of {} bytes is longer than {MAX_ERROR_MESSAGE_BYTES}",
            m.len()
        )));
    }
    Ok((error, super::lossy(m)))
}

/// Client side: parses one complete structured reply chunk; payloads longer than
/// `limits.max_reply_payload_bytes` are an error.
pub fn decode_chunk(buf: &[u8], limits: &CodecLimits) -> NbdResult<Decode<Chunk>> {
    if buf.len() < STRUCTURED_REPLY_HEADER_BYTES {
        return Ok(Decode::NeedMore {
            total_bytes: STRUCTURED_REPLY_HEADER_BYTES,
        });
    }
    if be_u32(buf, 0) != STRUCTURED_REPLY_MAGIC {
        return Err(NbdError::protocol(
            "structured reply chunk has a wrong magic",
        ));
    }
    let flags = be_u16(buf, 4);
    let chunk_type = be_u16(buf, 6);
    let cookie = be_u64(buf, 8);
    let length = be_u32(buf, 16);
    let max = limits.max_reply_payload_bytes;
    let header = STRUCTURED_REPLY_HEADER_BYTES;
    let (body, total) = match frame_body(buf, header, length, max, "structured reply chunk")? {
        Frame::Body { body, total_bytes } => (body, total_bytes),
        Frame::NeedMore { total_bytes } => return Ok(Decode::NeedMore { total_bytes }),
    };
    let payload = decode_chunk_payload(flags, chunk_type, body)?;
    Ok(Decode::Done {
        value: Chunk {
            flags,
            cookie,
            payload,
        },
        consumed_bytes: total,
    })
}

/// Parses the payload of one chunk (either header style) of type `chunk_type`.
pub(crate) fn decode_chunk_payload(
    flags: u16,
    chunk_type: u16,
    body: &[u8],
) -> NbdResult<ChunkPayload> {
    let mut c = Cursor::new(body);
    Ok(match chunk_type {
        REPLY_TYPE_NONE => {
            if !body.is_empty() {
                return Err(NbdError::protocol("NONE chunk with a payload"));
            }
            if flags & REPLY_FLAG_DONE == 0 {
                return Err(NbdError::protocol("NONE chunk without the DONE flag"));
            }
            ChunkPayload::None
        }
        REPLY_TYPE_OFFSET_DATA => {
            if body.len() < 9 {
                return Err(NbdError::protocol("OFFSET_DATA chunk shorter than 9 bytes"));
            }
            let offset_bytes = c.u64().unwrap_or_default();
            ChunkPayload::OffsetData {
                offset_bytes,
                data: Bytes::copy_from_slice(c.rest()),
            }
        }
        REPLY_TYPE_OFFSET_HOLE => {
            if body.len() != 12 {
                return Err(NbdError::protocol("OFFSET_HOLE chunk not 12 bytes"));
            }
            let offset_bytes = c.u64().unwrap_or_default();
            let length_bytes = c.u32().unwrap_or_default();
            if length_bytes == 0 {
                return Err(NbdError::protocol("OFFSET_HOLE of length 0"));
            }
            ChunkPayload::OffsetHole {
                offset_bytes,
                length_bytes,
            }
        }
        REPLY_TYPE_BLOCK_STATUS => {
            if body.len() < 12 || (body.len() - 4) % 8 != 0 {
                return Err(NbdError::protocol(format!(
                    "BLOCK_STATUS chunk of {} bytes (want 4 + 8n, n ≥ 1)",
                    body.len()
                )));
            }
            let context_id = c.u32().unwrap_or_default();
            let mut descriptors = Vec::with_capacity((body.len() - 4) / 8);
            while c.remaining() >= 8 {
                let length_bytes = c.u32().unwrap_or_default();
                let status_flags = c.u32().unwrap_or_default();
                if length_bytes == 0 {
                    return Err(NbdError::protocol("block status descriptor of length 0"));
                }
                descriptors.push(BlockDescriptor {
                    length_bytes,
                    status_flags,
                });
            }
            ChunkPayload::BlockStatus {
                context_id,
                descriptors,
            }
        }
        REPLY_TYPE_BLOCK_STATUS_EXT => decode_block_status_ext(body)?,
        REPLY_TYPE_ERROR => {
            let (error, message) = parse_error_fields(&mut c, "ERROR")?;
            if c.remaining() != 0 {
                return Err(NbdError::protocol("ERROR chunk with trailing bytes"));
            }
            ChunkPayload::Error { error, message }
        }
        REPLY_TYPE_ERROR_OFFSET => {
            let (error, message) = parse_error_fields(&mut c, "ERROR_OFFSET")?;
            let offset_bytes = c
                .u64()
                .ok_or_else(|| NbdError::protocol("ERROR_OFFSET chunk without an offset"))?;
            if c.remaining() != 0 {
                return Err(NbdError::protocol("ERROR_OFFSET chunk with trailing bytes"));
            }
            ChunkPayload::ErrorOffset {
                error,
                message,
                offset_bytes,
            }
        }
        other => ChunkPayload::Unknown {
            chunk_type: other,
            data: Bytes::copy_from_slice(body),
        },
    })
}

/// `NBD_REPLY_TYPE_BLOCK_STATUS_EXT`: context id, descriptor count (0, or the number of
/// descriptors), then 16-byte descriptors of nonzero length.
fn decode_block_status_ext(body: &[u8]) -> NbdResult<ChunkPayload> {
    let prefix = BLOCK_STATUS_EXT_PREFIX_BYTES;
    let each = BLOCK_STATUS_EXT_DESCRIPTOR_BYTES;
    if body.len() < prefix + each || (body.len() - prefix) % each != 0 {
        return Err(NbdError::protocol(format!(
            "BLOCK_STATUS_EXT chunk of {} bytes (want {prefix} + {each}n, n ≥ 1)",
            body.len()
        )));
    }
    let n = (body.len() - prefix) / each;
    let mut c = Cursor::new(body);
    let context_id = c.u32().unwrap_or_default();
    let count = c.u32().unwrap_or_default();
    if count != 0 && usize::try_from(count).ok() != Some(n) {
        return Err(NbdError::protocol(format!(
            "BLOCK_STATUS_EXT chunk says {count} descriptors but carries {n}"
        )));
    }
    let mut descriptors = Vec::with_capacity(n);
    while c.remaining() >= each {
        let length_bytes = c.u64().unwrap_or_default();
        let status_flags = c.u64().unwrap_or_default();
        if length_bytes == 0 {
            return Err(NbdError::protocol("block status descriptor of length 0"));
        }
        descriptors.push(BlockDescriptorExt {
            length_bytes,
            status_flags,
        });
    }
    Ok(ChunkPayload::BlockStatusExt {
        context_id,
        descriptors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CodecLimits {
        CodecLimits::default()
    }

    #[test]
    fn requests_round_trip_and_wait_for_payload() {
        let cmds = [
            Command::Read,
            Command::Write,
            Command::Disc,
            Command::Flush,
            Command::Trim,
            Command::Cache,
            Command::WriteZeroes,
            Command::BlockStatus,
            Command::Unknown(99),
        ];
        for cmd in cmds {
            let req = Request {
                flags: CMD_FLAG_FUA,
                command: cmd,
                cookie: 0x0102_0304_0506_0708,
                offset_bytes: 1 << 33,
                length_bytes: 1024,
            };
            let style = HeaderStyle::Compact;
            let payload = vec![0xa5; usize::try_from(req.payload_bytes(style)).unwrap()];
            let mut out = BytesMut::new();
            encode_request(&req, &payload, &mut out);
            let total = out.len();
            assert_eq!(total, REQUEST_HEADER_BYTES + payload.len());
            for cut in 0..total {
                assert!(matches!(
                    decode_request(&out[..cut], style, &limits()).unwrap(),
                    Decode::NeedMore { .. }
                ));
            }
            let (back, n) = decode_request(&out, style, &limits())
                .unwrap()
                .done()
                .unwrap();
            assert_eq!((back, n), (req, total));
            assert_eq!(Command::from_code(cmd.code()), cmd);
        }
    }

    #[test]
    fn request_limits_and_magic() {
        let req = Request {
            flags: 0,
            command: Command::Write,
            cookie: 1,
            offset_bytes: 0,
            length_bytes: u64::from(DEFAULT_LIMIT) + 1,
        };
        const DEFAULT_LIMIT: u32 = super::super::DEFAULT_MAX_WRITE_PAYLOAD_BYTES;
        let style = HeaderStyle::Compact;
        let mut out = BytesMut::new();
        encode_request(&req, &[], &mut out);
        assert!(matches!(
            decode_request(&out, style, &limits()),
            Err(NbdError::TooLarge { .. })
        ));
        // A read of the same length is just a header: the server answers it with an error.
        let read = Request {
            command: Command::Read,
            ..req
        };
        let mut out = BytesMut::new();
        encode_request(&read, &[], &mut out);
        assert!(decode_request(&out, style, &limits())
            .unwrap()
            .done()
            .is_some());
        out[0] = 0;
        assert!(matches!(
            decode_request(&out, style, &limits()),
            Err(NbdError::Protocol(_))
        ));
    }

    #[test]
    fn simple_reply_round_trip() {
        let mut out = BytesMut::new();
        encode_simple_reply(NBD_EINVAL, 42, &mut out);
        assert_eq!(
            decode_simple_reply(&out).unwrap().done(),
            Some((
                SimpleReplyHeader {
                    error: NBD_EINVAL,
                    cookie: 42
                },
                SIMPLE_REPLY_HEADER_BYTES
            ))
        );
        out[1] = 0;
        assert!(decode_simple_reply(&out).is_err());
    }

    #[test]
    fn chunks_round_trip() {
        let payloads = vec![
            ChunkPayload::None,
            ChunkPayload::OffsetData {
                offset_bytes: 4096,
                data: Bytes::from_static(b"hello world"),
            },
            ChunkPayload::OffsetHole {
                offset_bytes: 8192,
                length_bytes: 512,
            },
            ChunkPayload::BlockStatus {
                context_id: 1,
                descriptors: vec![
                    BlockDescriptor {
                        length_bytes: 4096,
                        status_flags: 0,
                    },
                    BlockDescriptor {
                        length_bytes: 512,
                        status_flags: STATE_HOLE | STATE_ZERO,
                    },
                ],
            },
            ChunkPayload::Error {
                error: NBD_EINVAL,
                message: "past the end".into(),
            },
            ChunkPayload::ErrorOffset {
                error: NBD_EIO,
                message: String::new(),
                offset_bytes: 77,
            },
            ChunkPayload::Unknown {
                chunk_type: 3,
                data: Bytes::from_static(b"?"),
            },
        ];
        for p in payloads {
            let chunk = Chunk {
                flags: REPLY_FLAG_DONE,
                cookie: 9,
                payload: p,
            };
            let wire = chunk.to_bytes();
            let (back, n) = decode_chunk(&wire, &limits()).unwrap().done().unwrap();
            assert_eq!((&back, n), (&chunk, wire.len()));
            assert!(back.is_done());
            assert!(matches!(
                decode_chunk(&wire[..wire.len() - 1], &limits()).unwrap(),
                Decode::NeedMore { .. }
            ));
        }
    }

    #[test]
    fn chunk_validation() {
        // NONE without DONE.
        let c = Chunk {
            flags: 0,
            cookie: 1,
            payload: ChunkPayload::None,
        };
        assert!(decode_chunk(&c.to_bytes(), &limits()).is_err());
        // Zero-length descriptor.
        let c = Chunk {
            flags: REPLY_FLAG_DONE,
            cookie: 1,
            payload: ChunkPayload::BlockStatus {
                context_id: 1,
                descriptors: vec![BlockDescriptor {
                    length_bytes: 0,
                    status_flags: 0,
                }],
            },
        };
        assert!(decode_chunk(&c.to_bytes(), &limits()).is_err());
        // Error 0.
        let c = Chunk {
            flags: REPLY_FLAG_DONE,
            cookie: 1,
            payload: ChunkPayload::Error {
                error: 0,
                message: String::new(),
            },
        };
        assert!(decode_chunk(&c.to_bytes(), &limits()).is_err());
        // A long error message is clipped to the string limit.
        let c = Chunk {
            flags: REPLY_FLAG_DONE,
            cookie: 1,
            payload: ChunkPayload::Error {
                error: NBD_EIO,
                message: "x".repeat(10_000),
            },
        };
        let (back, _) = decode_chunk(&c.to_bytes(), &limits())
            .unwrap()
            .done()
            .unwrap();
        match back.payload {
            ChunkPayload::Error { message, .. } => assert_eq!(message.len(), MAX_STRING_BYTES),
            other => panic!("unexpected {other:?}"),
        }
    }
}
