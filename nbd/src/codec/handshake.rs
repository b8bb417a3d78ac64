//! Handshake phase (fixed newstyle): greeting, client flags, options, option replies and the
//! `NBD_OPT_EXPORT_NAME` reply.

use bytes::{BufMut, BytesMut};

use super::consts::*;
use super::{
    be_u16, be_u32, be_u64, clip_str, frame_body, lossy, parse_string, wire_len, CodecLimits,
    Cursor, Decode, Frame,
};
use crate::error::{NbdError, NbdResult};

// ---------------------------------------------------------------------------------------------
// Greeting and client flags
// ---------------------------------------------------------------------------------------------

/// The handshake flags this server sends.
pub const SERVER_HANDSHAKE_FLAGS: u16 = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;

/// Server → client: `NBDMAGIC`, `IHAVEOPT`, handshake flags (fixed newstyle, no zeroes).
pub fn encode_greeting(out: &mut BytesMut) {
    out.put_u64(NBD_MAGIC);
    out.put_u64(IHAVEOPT);
    out.put_u16(SERVER_HANDSHAKE_FLAGS);
}

/// Client side: parses the server greeting and returns the handshake flags.
pub fn decode_greeting(buf: &[u8]) -> NbdResult<Decode<u16>> {
    if buf.len() < GREETING_BYTES {
        return Ok(Decode::NeedMore {
            total_bytes: GREETING_BYTES,
        });
    }
    if be_u64(buf, 0) != NBD_MAGIC {
        return Err(NbdError::protocol("greeting does not start with NBDMAGIC"));
    }
    if be_u64(buf, 8) != IHAVEOPT {
        return Err(NbdError::protocol(
            "greeting is not newstyle (no IHAVEOPT; oldstyle is not supported)",
        ));
    }
    Ok(Decode::Done {
        value: be_u16(buf, 16),
        consumed_bytes: GREETING_BYTES,
    })
}

/// The client flags, as this server understood them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientFlags {
    /// `NBD_FLAG_C_FIXED_NEWSTYLE`.
    pub fixed_newstyle: bool,
    /// `NBD_FLAG_C_NO_ZEROES`.
    pub no_zeroes: bool,
}

impl ClientFlags {
    /// The wire value.
    pub fn bits(self) -> u32 {
        let mut b = 0;
        if self.fixed_newstyle {
            b |= FLAG_C_FIXED_NEWSTYLE;
        }
        if self.no_zeroes {
            b |= FLAG_C_NO_ZEROES;
        }
        b
    }
}

/// Client → server: the 32-bit client flags.
pub fn encode_client_flags(flags: u32, out: &mut BytesMut) {
    out.put_u32(flags);
}

/// Server side: parses the client flags. Unknown bits are a protocol violation (the server
/// must drop the connection).
pub fn decode_client_flags(buf: &[u8]) -> NbdResult<Decode<ClientFlags>> {
    if buf.len() < CLIENT_FLAGS_BYTES {
        return Ok(Decode::NeedMore {
            total_bytes: CLIENT_FLAGS_BYTES,
        });
    }
    let bits = be_u32(buf, 0);
    if bits & !KNOWN_CLIENT_FLAGS != 0 {
        return Err(NbdError::protocol(format!(
            "client sent unknown client flags {bits:#010x}"
        )));
    }
    Ok(Decode::Done {
        value: ClientFlags {
            fixed_newstyle: bits & FLAG_C_FIXED_NEWSTYLE != 0,
            no_zeroes: bits & FLAG_C_NO_ZEROES != 0,
        },
        consumed_bytes: CLIENT_FLAGS_BYTES,
    })
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// One option as framed on the wire (code + data), before its data is interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    /// Option code (`NBD_OPT_*`).
    pub code: u32,
    /// Option data.
    pub data: Vec<u8>,
}

/// Server side: frames one option. A wrong magic, or data longer than
/// `limits.max_option_data_bytes`, is an error (the connection cannot stay in sync).
pub fn decode_option(buf: &[u8], limits: &CodecLimits) -> NbdResult<Decode<RawOption>> {
    if buf.len() < OPTION_HEADER_BYTES {
        return Ok(Decode::NeedMore {
            total_bytes: OPTION_HEADER_BYTES,
        });
    }
    if be_u64(buf, 0) != IHAVEOPT {
        return Err(NbdError::protocol("option does not start with IHAVEOPT"));
    }
    let code = be_u32(buf, 8);
    let length = be_u32(buf, 12);
    let max = limits.max_option_data_bytes;
    let (data, total) = match frame_body(buf, OPTION_HEADER_BYTES, length, max, "option data")? {
        Frame::Body { body, total_bytes } => (body, total_bytes),
        Frame::NeedMore { total_bytes } => return Ok(Decode::NeedMore { total_bytes }),
    };
    Ok(Decode::Done {
        value: RawOption {
            code,
            data: data.to_vec(),
        },
        consumed_bytes: total,
    })
}

/// Client side: frames one option.
pub fn encode_option(code: u32, data: &[u8], out: &mut BytesMut) {
    out.put_u64(IHAVEOPT);
    out.put_u32(code);
    out.put_u32(wire_len(data.len()));
    out.put_slice(data);
}

/// Data of `NBD_OPT_INFO` and `NBD_OPT_GO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoRequest {
    /// Export name ("" = the default export).
    pub name: String,
    /// `NBD_INFO_*` types the client asks for.
    pub info_requests: Vec<u16>,
}

/// Data of `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaContextRequest {
    /// Export the contexts are for.
    pub export_name: String,
    /// Query strings.
    pub queries: Vec<String>,
}

/// An option with its data interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOption {
    /// `NBD_OPT_EXPORT_NAME`.
    ExportName(String),
    /// `NBD_OPT_ABORT` (any data is ignored, as the protocol asks).
    Abort,
    /// `NBD_OPT_LIST`.
    List,
    /// `NBD_OPT_STARTTLS`.
    StartTls,
    /// `NBD_OPT_INFO`.
    Info(GoRequest),
    /// `NBD_OPT_GO`.
    Go(GoRequest),
    /// `NBD_OPT_STRUCTURED_REPLY`.
    StructuredReply,
    /// `NBD_OPT_LIST_META_CONTEXT`.
    ListMetaContext(MetaContextRequest),
    /// `NBD_OPT_SET_META_CONTEXT`.
    SetMetaContext(MetaContextRequest),
    /// `NBD_OPT_EXTENDED_HEADERS`.
    ExtendedHeaders,
    /// Any option this server does not implement (answered `NBD_REP_ERR_UNSUP`).
    Unsupported(u32),
}

/// Why option data could not be interpreted; the option is answered with an error reply and
/// negotiation continues (except for `NBD_OPT_EXPORT_NAME`, which cannot be answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionDataError {
    /// Malformed: answered `NBD_REP_ERR_INVALID`.
    Invalid(String),
    /// Over a count limit: answered `NBD_REP_ERR_TOO_BIG`.
    TooBig(String),
}

impl OptionDataError {
    /// The option reply type for this error.
    pub fn reply_type(&self) -> u32 {
        match self {
            OptionDataError::Invalid(_) => REP_ERR_INVALID,
            OptionDataError::TooBig(_) => REP_ERR_TOO_BIG,
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        match self {
            OptionDataError::Invalid(m) | OptionDataError::TooBig(m) => m,
        }
    }
}

fn invalid(m: impl Into<String>) -> OptionDataError {
    OptionDataError::Invalid(m.into())
}

fn parse_sized_string(c: &mut Cursor<'_>, what: &str) -> Result<String, OptionDataError> {
    let len = c
        .u32()
        .ok_or_else(|| invalid(format!("option data ends before the {what} length")))?;
    let len = usize::try_from(len).map_err(|_| invalid(format!("{what} length overflows")))?;
    if len > c.remaining() {
        return Err(invalid(format!(
            "{what} length {len} runs past the end of the option data"
        )));
    }
    let bytes = c.take(len).unwrap_or_default();
    parse_string(bytes, what).map_err(OptionDataError::Invalid)
}

fn parse_go(data: &[u8], limits: &CodecLimits) -> Result<GoRequest, OptionDataError> {
    let mut c = Cursor::new(data);
    let name = parse_sized_string(&mut c, "export name")?;
    let n = c
        .u16()
        .ok_or_else(|| invalid("option data ends before the information request count"))?;
    if n > limits.max_info_requests {
        return Err(OptionDataError::TooBig(format!(
            "{n} information requests (limit {})",
            limits.max_info_requests
        )));
    }
    if c.remaining() != usize::from(n) * 2 {
        return Err(invalid(format!(
            "{n} information requests need {} bytes, {} remain",
            usize::from(n) * 2,
            c.remaining()
        )));
    }
    let info_requests = (0..n).filter_map(|_| c.u16()).collect();
    Ok(GoRequest {
        name,
        info_requests,
    })
}

fn parse_meta(data: &[u8], limits: &CodecLimits) -> Result<MetaContextRequest, OptionDataError> {
    let mut c = Cursor::new(data);
    let export_name = parse_sized_string(&mut c, "export name")?;
    let n = c
        .u32()
        .ok_or_else(|| invalid("option data ends before the query count"))?;
    if n > limits.max_meta_queries {
        return Err(OptionDataError::TooBig(format!(
            "{n} metadata context queries (limit {})",
            limits.max_meta_queries
        )));
    }
    let mut queries = Vec::new();
    for _ in 0..n {
        queries.push(parse_sized_string(&mut c, "query")?);
    }
    if c.remaining() != 0 {
        return Err(invalid(format!(
            "{} bytes left after the last query",
            c.remaining()
        )));
    }
    Ok(MetaContextRequest {
        export_name,
        queries,
    })
}

fn expect_empty(data: &[u8], what: &str) -> Result<(), OptionDataError> {
    if data.is_empty() {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} carries {} bytes of data",
            data.len()
        )))
    }
}

impl ClientOption {
    /// Interprets option data. Errors name what is wrong.
    pub fn parse(code: u32, data: &[u8], limits: &CodecLimits) -> Result<Self, OptionDataError> {
        if data.len() > limits.max_option_data_bytes as usize {
            return Err(OptionDataError::TooBig(format!(
                "option data of {} bytes (limit {})",
                data.len(),
                limits.max_option_data_bytes
            )));
        }
        Ok(match code {
            OPT_EXPORT_NAME => {
                ClientOption::ExportName(parse_string(data, "export name").map_err(invalid)?)
            }
            OPT_ABORT => ClientOption::Abort,
            OPT_LIST => {
                expect_empty(data, "NBD_OPT_LIST")?;
                ClientOption::List
            }
            OPT_STARTTLS => {
                expect_empty(data, "NBD_OPT_STARTTLS")?;
                ClientOption::StartTls
            }
            OPT_INFO => ClientOption::Info(parse_go(data, limits)?),
            OPT_GO => ClientOption::Go(parse_go(data, limits)?),
            OPT_STRUCTURED_REPLY => {
                expect_empty(data, "NBD_OPT_STRUCTURED_REPLY")?;
                ClientOption::StructuredReply
            }
            OPT_LIST_META_CONTEXT => ClientOption::ListMetaContext(parse_meta(data, limits)?),
            OPT_SET_META_CONTEXT => ClientOption::SetMetaContext(parse_meta(data, limits)?),
            OPT_EXTENDED_HEADERS => {
                expect_empty(data, "NBD_OPT_EXTENDED_HEADERS")?;
                ClientOption::ExtendedHeaders
            }
            other => ClientOption::Unsupported(other),
        })
    }

    /// The option code.
    pub fn code(&self) -> u32 {
        match self {
            ClientOption::ExportName(_) => OPT_EXPORT_NAME,
            ClientOption::Abort => OPT_ABORT,
            ClientOption::List => OPT_LIST,
            ClientOption::StartTls => OPT_STARTTLS,
            ClientOption::Info(_) => OPT_INFO,
            ClientOption::Go(_) => OPT_GO,
            ClientOption::StructuredReply => OPT_STRUCTURED_REPLY,
            ClientOption::ListMetaContext(_) => OPT_LIST_META_CONTEXT,
            ClientOption::SetMetaContext(_) => OPT_SET_META_CONTEXT,
            ClientOption::ExtendedHeaders => OPT_EXTENDED_HEADERS,
            ClientOption::Unsupported(c) => *c,
        }
    }

    /// Client side: the option data.
    pub fn data(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        match self {
            ClientOption::ExportName(name) => out.put_slice(name.as_bytes()),
            ClientOption::Info(g) | ClientOption::Go(g) => {
                out.put_u32(wire_len(g.name.len()));
                out.put_slice(g.name.as_bytes());
                out.put_u16(u16::try_from(g.info_requests.len()).unwrap_or(u16::MAX));
                for i in &g.info_requests {
                    out.put_u16(*i);
                }
            }
            ClientOption::ListMetaContext(m) | ClientOption::SetMetaContext(m) => {
                out.put_u32(wire_len(m.export_name.len()));
                out.put_slice(m.export_name.as_bytes());
                out.put_u32(wire_len(m.queries.len()));
                for q in &m.queries {
                    out.put_u32(wire_len(q.len()));
                    out.put_slice(q.as_bytes());
                }
            }
            ClientOption::Abort
            | ClientOption::List
            | ClientOption::StartTls
            | ClientOption::StructuredReply
            | ClientOption::ExtendedHeaders
            | ClientOption::Unsupported(_) => {}
        }
        out.to_vec()
    }

    /// Client side: the framed option.
    pub fn encode(&self, out: &mut BytesMut) {
        encode_option(self.code(), &self.data(), out);
    }
}

// ---------------------------------------------------------------------------------------------
// Option replies
// ---------------------------------------------------------------------------------------------

/// One `NBD_REP_INFO` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoReply {
    /// `NBD_INFO_EXPORT`: size and transmission flags.
    Export {
        /// Export size.
        size_bytes: u64,
        /// Transmission flags.
        transmission_flags: u16,
    },
    /// `NBD_INFO_NAME`: canonical name.
    Name(String),
    /// `NBD_INFO_DESCRIPTION`.
    Description(String),
    /// `NBD_INFO_BLOCK_SIZE`.
    BlockSize {
        /// Minimum block size (alignment of every request).
        minimum_bytes: u32,
        /// Preferred block size.
        preferred_bytes: u32,
        /// Largest request payload.
        maximum_bytes: u32,
    },
    /// An information type this parser does not know (client side).
    Unknown {
        /// The type.
        info_type: u16,
        /// Its payload.
        data: Vec<u8>,
    },
}

/// One option reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionReply {
    /// `NBD_REP_ACK`.
    Ack,
    /// `NBD_REP_SERVER`: one export of a list.
    Server {
        /// Export name.
        name: String,
        /// Optional human-readable details (empty = none).
        description: String,
    },
    /// `NBD_REP_INFO`.
    Info(InfoReply),
    /// `NBD_REP_META_CONTEXT`.
    MetaContext {
        /// Context id (0 in list replies).
        id: u32,
        /// Context name.
        name: String,
    },
    /// An error reply (`reply_type` has bit 31 set) with an optional message.
    Error {
        /// `NBD_REP_ERR_*`.
        reply_type: u32,
        /// Message for a human.
        message: String,
    },
    /// A non-error reply type this parser does not know (client side).
    Unknown {
        /// The reply type.
        reply_type: u32,
        /// Its data.
        data: Vec<u8>,
    },
}

impl OptionReply {
    /// The reply type on the wire.
    pub fn reply_type(&self) -> u32 {
        match self {
            OptionReply::Ack => REP_ACK,
            OptionReply::Server { .. } => REP_SERVER,
            OptionReply::Info(_) => REP_INFO,
            OptionReply::MetaContext { .. } => REP_META_CONTEXT,
            OptionReply::Error { reply_type, .. } | OptionReply::Unknown { reply_type, .. } => {
                *reply_type
            }
        }
    }
}

/// Server side: encodes one option reply to `option`. Strings are clipped to the protocol's
/// 4096-byte limit.
pub fn encode_option_reply(option: u32, reply: &OptionReply, out: &mut BytesMut) {
    let mut data = BytesMut::new();
    match reply {
        OptionReply::Ack => {}
        OptionReply::Server { name, description } => {
            let name = clip_str(name, MAX_STRING_BYTES);
            data.put_u32(wire_len(name.len()));
            data.put_slice(name.as_bytes());
            data.put_slice(clip_str(description, MAX_STRING_BYTES).as_bytes());
        }
        OptionReply::Info(info) => match info {
            InfoReply::Export {
                size_bytes,
                transmission_flags,
            } => {
                data.put_u16(INFO_EXPORT);
                data.put_u64(*size_bytes);
                data.put_u16(*transmission_flags);
            }
            InfoReply::Name(n) => {
                data.put_u16(INFO_NAME);
                data.put_slice(clip_str(n, MAX_STRING_BYTES).as_bytes());
            }
            InfoReply::Description(d) => {
                data.put_u16(INFO_DESCRIPTION);
                data.put_slice(clip_str(d, MAX_STRING_BYTES).as_bytes());
            }
            InfoReply::BlockSize {
                minimum_bytes,
                preferred_bytes,
                maximum_bytes,
            } => {
                data.put_u16(INFO_BLOCK_SIZE);
                data.put_u32(*minimum_bytes);
                data.put_u32(*preferred_bytes);
                data.put_u32(*maximum_bytes);
            }
            InfoReply::Unknown { info_type, data: d } => {
                data.put_u16(*info_type);
                data.put_slice(d);
            }
        },
        OptionReply::MetaContext { id, name } => {
            data.put_u32(*id);
            data.put_slice(clip_str(name, MAX_STRING_BYTES).as_bytes());
        }
        OptionReply::Error { message, .. } => {
            data.put_slice(clip_str(message, MAX_STRING_BYTES).as_bytes());
        }
        OptionReply::Unknown { data: d, .. } => data.put_slice(d),
    }
    out.put_u64(OPTION_REPLY_MAGIC);
    out.put_u32(option);
    out.put_u32(reply.reply_type());
    out.put_u32(wire_len(data.len()));
    out.put_slice(&data);
}

fn parse_info(data: &[u8]) -> NbdResult<InfoReply> {
    let mut c = Cursor::new(data);
    let t = c
        .u16()
        .ok_or_else(|| NbdError::protocol("NBD_REP_INFO shorter than 2 bytes"))?;
    Ok(match t {
        INFO_EXPORT => {
            if data.len() != 12 {
                return Err(NbdError::protocol(format!(
                    "NBD_INFO_EXPORT of {} bytes (want 12)",
                    data.len()
                )));
            }
            InfoReply::Export {
                size_bytes: c.u64().unwrap_or_default(),
                transmission_flags: c.u16().unwrap_or_default(),
            }
        }
        INFO_NAME => InfoReply::Name(lossy(c.rest())),
        INFO_DESCRIPTION => InfoReply::Description(lossy(c.rest())),
        INFO_BLOCK_SIZE => {
            if data.len() != 14 {
                return Err(NbdError::protocol(format!(
                    "NBD_INFO_BLOCK_SIZE of {} bytes (want 14)",
                    data.len()
                )));
            }
            InfoReply::BlockSize {
                minimum_bytes: c.u32().unwrap_or_default(),
                preferred_bytes: c.u32().unwrap_or_default(),
                maximum_bytes: c.u32().unwrap_or_default(),
            }
        }
        other => InfoReply::Unknown {
            info_type: other,
            data: c.rest().to_vec(),
        },
    })
}

/// Client side: parses one option reply; returns the option it answers and the reply.
pub fn decode_option_reply(
    buf: &[u8],
    limits: &CodecLimits,
) -> NbdResult<Decode<(u32, OptionReply)>> {
    if buf.len() < OPTION_REPLY_HEADER_BYTES {
        return Ok(Decode::NeedMore {
            total_bytes: OPTION_REPLY_HEADER_BYTES,
        });
    }
    if be_u64(buf, 0) != OPTION_REPLY_MAGIC {
        return Err(NbdError::protocol("option reply has a wrong magic"));
    }
    let option = be_u32(buf, 8);
    let reply_type = be_u32(buf, 12);
    let length = be_u32(buf, 16);
    let max = limits.max_reply_payload_bytes;
    let (data, total) =
        match frame_body(buf, OPTION_REPLY_HEADER_BYTES, length, max, "option reply")? {
            Frame::Body { body, total_bytes } => (body, total_bytes),
            Frame::NeedMore { total_bytes } => return Ok(Decode::NeedMore { total_bytes }),
        };
    let reply = match reply_type {
        REP_ACK => OptionReply::Ack,
        REP_SERVER => {
            let mut c = Cursor::new(data);
            let n = c
                .u32()
                .ok_or_else(|| NbdError::protocol("NBD_REP_SERVER shorter than 4 bytes"))?;
            let name = usize::try_from(n)
                .ok()
                .and_then(|n| c.take(n))
                .ok_or_else(|| NbdError::protocol("NBD_REP_SERVER name runs past its data"))?;
            OptionReply::Server {
                name: lossy(name),
                description: lossy(c.rest()),
            }
        }
        REP_INFO => OptionReply::Info(parse_info(data)?),
        REP_META_CONTEXT => {
            let mut c = Cursor::new(data);
            let id = c
                .u32()
                .ok_or_else(|| NbdError::protocol("NBD_REP_META_CONTEXT shorter than 4 bytes"))?;
            OptionReply::MetaContext {
                id,
                name: lossy(c.rest()),
            }
        }
        t if t & REP_FLAG_ERROR != 0 => OptionReply::Error {
            reply_type: t,
            message: lossy(data),
        },
        t => OptionReply::Unknown {
            reply_type: t,
            data: data.to_vec(),
        },
    };
    Ok(Decode::Done {
        value: (option, reply),
        consumed_bytes: total,
    })
}

/// Server side: the reply to `NBD_OPT_EXPORT_NAME` (size, flags, and 124 zero bytes unless
/// the client set `NBD_FLAG_C_NO_ZEROES`).
pub fn encode_export_name_reply(
    size_bytes: u64,
    transmission_flags: u16,
    no_zeroes: bool,
    out: &mut BytesMut,
) {
    out.put_u64(size_bytes);
    out.put_u16(transmission_flags);
    if !no_zeroes {
        out.put_bytes(0, EXPORT_NAME_ZERO_PAD_BYTES);
    }
}

/// Client side: parses the reply to `NBD_OPT_EXPORT_NAME` → (size, transmission flags).
pub fn decode_export_name_reply(buf: &[u8], no_zeroes: bool) -> Decode<(u64, u16)> {
    let total = 10
        + if no_zeroes {
            0
        } else {
            EXPORT_NAME_ZERO_PAD_BYTES
        };
    if buf.len() < total {
        return Decode::NeedMore { total_bytes: total };
    }
    Decode::Done {
        value: (be_u64(buf, 0), be_u16(buf, 8)),
        consumed_bytes: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CodecLimits {
        CodecLimits::default()
    }

    #[test]
    fn greeting_round_trip_and_need_more() {
        let mut out = BytesMut::new();
        encode_greeting(&mut out);
        assert_eq!(out.len(), GREETING_BYTES);
        assert_eq!(&out[..8], b"NBDMAGIC");
        assert_eq!(&out[8..16], b"IHAVEOPT");
        for n in 0..GREETING_BYTES {
            assert_eq!(
                decode_greeting(&out[..n]).unwrap(),
                Decode::NeedMore {
                    total_bytes: GREETING_BYTES
                }
            );
        }
        assert_eq!(
            decode_greeting(&out).unwrap().done(),
            Some((SERVER_HANDSHAKE_FLAGS, GREETING_BYTES))
        );
        out[0] = b'X';
        assert!(decode_greeting(&out).is_err());
    }

    #[test]
    fn client_flags_reject_unknown_bits() {
        let mut out = BytesMut::new();
        encode_client_flags(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES, &mut out);
        let (f, n) = decode_client_flags(&out).unwrap().done().unwrap();
        assert_eq!(n, 4);
        assert!(f.fixed_newstyle && f.no_zeroes);
        assert_eq!(f.bits(), 3);
        assert!(decode_client_flags(&[0, 0, 0, 4]).is_err());
        assert!(decode_client_flags(b"GET ").is_err());
        assert!(matches!(
            decode_client_flags(&[0, 0]).unwrap(),
            Decode::NeedMore { total_bytes: 4 }
        ));
    }

    fn round_trip(opt: ClientOption) {
        let mut out = BytesMut::new();
        opt.encode(&mut out);
        let (raw, n) = decode_option(&out, &limits()).unwrap().done().unwrap();
        assert_eq!(n, out.len());
        assert_eq!(raw.code, opt.code());
        let back = ClientOption::parse(raw.code, &raw.data, &limits()).unwrap();
        assert_eq!(back, opt);
        // Every strict prefix needs more.
        for cut in 0..out.len() {
            assert!(matches!(
                decode_option(&out[..cut], &limits()).unwrap(),
                Decode::NeedMore { .. }
            ));
        }
    }

    #[test]
    fn options_round_trip() {
        round_trip(ClientOption::ExportName("disk0".into()));
        round_trip(ClientOption::ExportName(String::new()));
        round_trip(ClientOption::Abort);
        round_trip(ClientOption::List);
        round_trip(ClientOption::StartTls);
        round_trip(ClientOption::StructuredReply);
        round_trip(ClientOption::Go(GoRequest {
            name: "vm1".into(),
            info_requests: vec![INFO_BLOCK_SIZE, INFO_NAME],
        }));
        round_trip(ClientOption::Info(GoRequest {
            name: String::new(),
            info_requests: vec![],
        }));
        round_trip(ClientOption::SetMetaContext(MetaContextRequest {
            export_name: "vm1".into(),
            queries: vec![CONTEXT_BASE_ALLOCATION.into(), "qemu:dirty-bitmap:x".into()],
        }));
        round_trip(ClientOption::ListMetaContext(MetaContextRequest {
            export_name: "vm1".into(),
            queries: vec![],
        }));
        round_trip(ClientOption::ExtendedHeaders);
        round_trip(ClientOption::Unsupported(0xdead_beef));
    }

    #[test]
    fn option_limits_and_bad_data() {
        // Too long an option → error before any allocation.
        let mut out = BytesMut::new();
        out.put_u64(IHAVEOPT);
        out.put_u32(OPT_GO);
        out.put_u32(u32::MAX);
        assert!(matches!(
            decode_option(&out, &limits()),
            Err(NbdError::TooLarge { .. })
        ));
        // Bad magic.
        let mut bad = BytesMut::new();
        encode_option(OPT_LIST, &[], &mut bad);
        bad[3] ^= 1;
        assert!(decode_option(&bad, &limits()).is_err());
        // LIST with data → invalid.
        assert!(matches!(
            ClientOption::parse(OPT_LIST, b"x", &limits()),
            Err(OptionDataError::Invalid(_))
        ));
        // GO whose name length runs past the data.
        let mut d = BytesMut::new();
        d.put_u32(100);
        d.put_slice(b"abc");
        assert!(ClientOption::parse(OPT_GO, &d, &limits()).is_err());
        // GO with too many info requests.
        let mut d = BytesMut::new();
        d.put_u32(0);
        d.put_u16(1000);
        assert!(matches!(
            ClientOption::parse(OPT_GO, &d, &limits()),
            Err(OptionDataError::TooBig(_))
        ));
        // GO with an odd number of trailing bytes.
        let mut d = BytesMut::new();
        d.put_u32(0);
        d.put_u16(1);
        d.put_u8(0);
        assert!(ClientOption::parse(OPT_GO, &d, &limits()).is_err());
        // Meta with too many queries.
        let mut d = BytesMut::new();
        d.put_u32(0);
        d.put_u32(1_000_000);
        assert!(matches!(
            ClientOption::parse(OPT_SET_META_CONTEXT, &d, &limits()),
            Err(OptionDataError::TooBig(_))
        ));
        // Meta with trailing garbage.
        let mut d = BytesMut::new();
        d.put_u32(0);
        d.put_u32(0);
        d.put_u8(1);
        assert!(ClientOption::parse(OPT_LIST_META_CONTEXT, &d, &limits()).is_err());
        // ABORT ignores data.
        assert_eq!(
            ClientOption::parse(OPT_ABORT, b"junk", &limits()),
            Ok(ClientOption::Abort)
        );
    }

    #[test]
    fn option_replies_round_trip() {
        let replies = vec![
            OptionReply::Ack,
            OptionReply::Server {
                name: "a".into(),
                description: "disk a".into(),
            },
            OptionReply::Server {
                name: String::new(),
                description: String::new(),
            },
            OptionReply::Info(InfoReply::Export {
                size_bytes: 1 << 40,
                transmission_flags: TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH,
            }),
            OptionReply::Info(InfoReply::Name("n".into())),
            OptionReply::Info(InfoReply::Description("d".into())),
            OptionReply::Info(InfoReply::BlockSize {
                minimum_bytes: 512,
                preferred_bytes: 65536,
                maximum_bytes: 32 << 20,
            }),
            OptionReply::Info(InfoReply::Unknown {
                info_type: 77,
                data: vec![1, 2],
            }),
            OptionReply::MetaContext {
                id: 1,
                name: CONTEXT_BASE_ALLOCATION.into(),
            },
            OptionReply::Error {
                reply_type: REP_ERR_UNSUP,
                message: "no".into(),
            },
            OptionReply::Unknown {
                reply_type: 99,
                data: vec![9],
            },
        ];
        for r in replies {
            let mut out = BytesMut::new();
            encode_option_reply(OPT_GO, &r, &mut out);
            let ((opt, back), n) = decode_option_reply(&out, &limits())
                .unwrap()
                .done()
                .unwrap();
            assert_eq!((opt, n), (OPT_GO, out.len()));
            assert_eq!(back, r);
            assert!(matches!(
                decode_option_reply(&out[..out.len() - 1], &limits()).unwrap(),
                Decode::NeedMore { .. }
            ));
        }
    }

    #[test]
    fn export_name_reply_with_and_without_zeroes() {
        for no_zeroes in [false, true] {
            let mut out = BytesMut::new();
            encode_export_name_reply(4096, TFLAG_HAS_FLAGS, no_zeroes, &mut out);
            assert_eq!(out.len(), if no_zeroes { 10 } else { 134 });
            assert_eq!(
                decode_export_name_reply(&out, no_zeroes).done(),
                Some(((4096, TFLAG_HAS_FLAGS), out.len()))
            );
        }
    }
}
