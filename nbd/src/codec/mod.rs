//! The NBD wire format, with no I/O: pure parsers over byte buffers and encoders into
//! [`BytesMut`](bytes::BytesMut).
//!
//! Every parser takes the bytes received so far and returns [`Decode::NeedMore`] (with the
//! total it needs before it can decide) or [`Decode::Done`] with the value and how many bytes
//! it used; malformed input is an [`NbdError`], never a panic. Every length
//! from the peer is checked against [`CodecLimits`] before anything is allocated for it.
//!
//! Both directions are here (server and client side) so that every message round-trips in
//! tests and the fuzz target can exercise every parser.

use crate::error::{NbdError, NbdResult};

pub mod consts;
pub mod exercise;
pub mod extended;
pub mod handshake;
pub mod transmission;

pub use extended::{
    decode_extended_chunk, encode_extended_chunk, encode_extended_request, ExtendedChunk,
};
pub use handshake::{
    decode_client_flags, decode_export_name_reply, decode_greeting, decode_option,
    decode_option_reply, encode_client_flags, encode_export_name_reply, encode_greeting,
    encode_option, encode_option_reply, ClientFlags, ClientOption, GoRequest, InfoReply,
    MetaContextRequest, OptionDataError, OptionReply, RawOption,
};
pub use transmission::{
    decode_chunk, decode_request, decode_request_header, decode_simple_reply, encode_chunk,
    encode_request, encode_simple_reply, BlockDescriptor, BlockDescriptorExt, Chunk, ChunkPayload,
    Command, HeaderStyle, Request, SimpleReplyHeader,
};

/// Outcome of a parser that may need more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decode<T> {
    /// Not enough bytes yet: at least `total_bytes` (counted from the start of the buffer)
    /// are needed before the parser can decide.
    NeedMore {
        /// Total bytes needed, from the start of the buffer.
        total_bytes: usize,
    },
    /// A complete value, which used the first `consumed_bytes` of the buffer.
    Done {
        /// The value.
        value: T,
        /// Bytes used.
        consumed_bytes: usize,
    },
}

impl<T> Decode<T> {
    /// The value, if complete.
    pub fn done(self) -> Option<(T, usize)> {
        match self {
            Decode::Done {
                value,
                consumed_bytes,
            } => Some((value, consumed_bytes)),
            Decode::NeedMore { .. } => None,
        }
    }
}

/// A length-prefixed frame split into its body, once the length has been checked.
pub(crate) enum Frame<'a> {
    /// Not enough bytes yet for the whole frame.
    NeedMore {
        /// Total bytes needed, from the start of the buffer.
        total_bytes: usize,
    },
    /// The whole frame is in the buffer.
    Body {
        /// The `length_bytes` after the header.
        body: &'a [u8],
        /// Header plus body.
        total_bytes: usize,
    },
}

/// Frames `header_bytes` followed by `length_bytes` of body: a length above `limit_bytes` is
/// [`NbdError::TooLarge`] naming `what` (the connection cannot stay in sync after it).
pub(crate) fn frame_body<'a>(
    buf: &'a [u8],
    header_bytes: usize,
    length_bytes: u32,
    limit_bytes: u32,
    what: &'static str,
) -> NbdResult<Frame<'a>> {
    if length_bytes > limit_bytes {
        return Err(NbdError::TooLarge {
            what,
            value_bytes: u64::from(length_bytes),
            limit_bytes: u64::from(limit_bytes),
        });
    }
    // length_bytes <= limit_bytes, a u32: far below usize::MAX on every supported target.
    let total_bytes = header_bytes + length_bytes as usize;
    match buf.get(header_bytes..total_bytes) {
        Some(body) => Ok(Frame::Body { body, total_bytes }),
        None => Ok(Frame::NeedMore { total_bytes }),
    }
}

/// Limits on everything the peer controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecLimits {
    /// Largest option data accepted during the handshake (the name alone may be 4096 bytes).
    pub max_option_data_bytes: u32,
    /// Largest `NBD_CMD_WRITE` payload that is read at all; a larger one closes the
    /// connection (the protocol allows a hard disconnect for such payloads).
    pub max_write_payload_bytes: u32,
    /// Most queries in one `NBD_OPT_LIST_META_CONTEXT` / `NBD_OPT_SET_META_CONTEXT`.
    pub max_meta_queries: u32,
    /// Most information requests in one `NBD_OPT_INFO` / `NBD_OPT_GO`.
    pub max_info_requests: u16,
    /// Largest option reply / structured chunk payload a client-side parser accepts.
    pub max_reply_payload_bytes: u32,
}

/// Default largest option data: one maximal name plus queries.
pub const DEFAULT_MAX_OPTION_DATA_BYTES: u32 = 16 * 1024;
/// Default largest write payload (the protocol's "never a denial of service" size, 32 MiB).
pub const DEFAULT_MAX_WRITE_PAYLOAD_BYTES: u32 = 32 * 1024 * 1024;
/// Default most meta-context queries per option.
pub const DEFAULT_MAX_META_QUERIES: u32 = 16;
/// Default most information requests per option.
pub const DEFAULT_MAX_INFO_REQUESTS: u16 = 32;
/// Default largest reply payload for the client-side parsers (32 MiB of data plus headers).
pub const DEFAULT_MAX_REPLY_PAYLOAD_BYTES: u32 = 32 * 1024 * 1024 + 64;

impl Default for CodecLimits {
    fn default() -> Self {
        Self {
            max_option_data_bytes: DEFAULT_MAX_OPTION_DATA_BYTES,
            max_write_payload_bytes: DEFAULT_MAX_WRITE_PAYLOAD_BYTES,
            max_meta_queries: DEFAULT_MAX_META_QUERIES,
            max_info_requests: DEFAULT_MAX_INFO_REQUESTS,
            max_reply_payload_bytes: DEFAULT_MAX_REPLY_PAYLOAD_BYTES,
        }
    }
}

/// A bounds-checked big-endian reader over a complete message body.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_be_bytes(a)
        })
    }
}

/// Reads a big-endian u32 at `at` of a buffer known to be long enough.
pub(crate) fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// Reads a big-endian u16 at `at` of a buffer known to be long enough.
pub(crate) fn be_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// Reads a big-endian u64 at `at` of a buffer known to be long enough.
pub(crate) fn be_u64(buf: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&buf[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Checks a protocol string: UTF-8, no NUL, at most 4096 bytes; the error names `what`.
pub fn parse_string(bytes: &[u8], what: &str) -> Result<String, String> {
    if bytes.len() > consts::MAX_STRING_BYTES {
        return Err(format!(
            "{what} of {} bytes is longer than {} bytes",
            bytes.len(),
            consts::MAX_STRING_BYTES
        ));
    }
    if bytes.contains(&0) {
        return Err(format!("{what} contains a NUL byte"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

/// Cuts a string to at most `max_bytes`, on a character boundary (for messages we send).
/// `bytes` as UTF-8 with every byte of an invalid sequence replaced by `?`, one for one: the
/// text keeps the length it had on the wire, so a length limit checked there still holds when
/// it is encoded again (`String::from_utf8_lossy` makes three bytes of each bad one).
pub(crate) fn lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n('?', chunk.invalid().len()));
    }
    out
}

pub(crate) fn clip_str(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Length of a buffer as the u32 the wire wants. Every caller bounds its buffers far below
/// 4 GiB (strings ≤ 4096 bytes, payloads ≤ the write limit), so this never saturates in
/// practice; it saturates rather than wrapping if a caller ever breaks that.
pub(crate) fn wire_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossy_keeps_the_wire_length() {
        assert_eq!(lossy(b"ok"), "ok");
        assert_eq!(lossy(&[b'a', 0xde, 0xde, b'b']), "a??b");
        assert_eq!(lossy(&[0xff; 300]).len(), 300);
    }

    #[test]
    fn clip_str_respects_char_boundaries() {
        assert_eq!(clip_str("abc", 5), "abc");
        assert_eq!(clip_str("abc", 2), "ab");
        assert_eq!(clip_str("aé", 2), "a");
    }

    #[test]
    fn parse_string_rejects_nul_long_and_non_utf8() {
        assert!(parse_string(b"ok", "name").is_ok());
        assert!(parse_string(b"a\0b", "name").is_err());
        assert!(parse_string(&[0xff, 0xfe], "name").is_err());
        assert!(parse_string(&vec![b'a'; 4097], "name").is_err());
        assert!(parse_string(&vec![b'a'; 4096], "name").is_ok());
    }
}
