//! Numeric values of the NBD protocol (magic numbers, flags, option, reply and command codes),
//! as the NBD protocol document (`doc/proto.md` of the NetworkBlockDevice project) defines them.

// ---- Magic numbers ----

/// `NBDMAGIC`: first 8 bytes the server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: newstyle magic, also the prefix of every client option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Prefix of every option reply (fixed newstyle).
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Prefix of every transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Prefix of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Prefix of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;
/// Prefix of every request once extended headers are negotiated (`NBD_EXTENDED_REQUEST_MAGIC`).
pub const EXTENDED_REQUEST_MAGIC: u32 = 0x21e4_1c71;
/// Prefix of every reply chunk once extended headers are negotiated
/// (`NBD_EXTENDED_REPLY_MAGIC`).
pub const EXTENDED_REPLY_MAGIC: u32 = 0x6e8a_278c;

// ---- Handshake flags (server, 16 bits) ----

/// The server speaks fixed newstyle.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// The server can omit the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;

// ---- Client flags (32 bits) ----

/// The client speaks fixed newstyle.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// The client does not want the 124 zero bytes.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;
/// Every client flag this server understands.
pub const KNOWN_CLIENT_FLAGS: u32 = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;

// ---- Transmission flags (16 bits) ----

/// Always set.
pub const TFLAG_HAS_FLAGS: u16 = 1 << 0;
/// The export is read-only.
pub const TFLAG_READ_ONLY: u16 = 1 << 1;
/// `NBD_CMD_FLUSH` is supported.
pub const TFLAG_SEND_FLUSH: u16 = 1 << 2;
/// `NBD_CMD_FLAG_FUA` is supported.
pub const TFLAG_SEND_FUA: u16 = 1 << 3;
/// Rotational medium hint.
pub const TFLAG_ROTATIONAL: u16 = 1 << 4;
/// `NBD_CMD_TRIM` is supported.
pub const TFLAG_SEND_TRIM: u16 = 1 << 5;
/// `NBD_CMD_WRITE_ZEROES` (and `NBD_CMD_FLAG_NO_HOLE`) is supported.
pub const TFLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
/// `NBD_CMD_FLAG_DF` is supported on reads (structured replies only).
pub const TFLAG_SEND_DF: u16 = 1 << 7;
/// Several connections see each other's flushed writes.
pub const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;
/// `NBD_CMD_RESIZE` (experimental; never set here).
pub const TFLAG_SEND_RESIZE: u16 = 1 << 9;
/// `NBD_CMD_CACHE` is understood.
pub const TFLAG_SEND_CACHE: u16 = 1 << 10;
/// `NBD_CMD_FLAG_FAST_ZERO` is supported.
pub const TFLAG_SEND_FAST_ZERO: u16 = 1 << 11;

// ---- Options ----

/// Choose an export and enter transmission (no error reply possible).
pub const OPT_EXPORT_NAME: u32 = 1;
/// Soft disconnect during negotiation.
pub const OPT_ABORT: u32 = 2;
/// List the exports.
pub const OPT_LIST: u32 = 3;
/// Withdrawn `PEEK_EXPORT` (answered as unsupported).
pub const OPT_PEEK_EXPORT: u32 = 4;
/// Upgrade to TLS.
pub const OPT_STARTTLS: u32 = 5;
/// Describe an export without entering transmission.
pub const OPT_INFO: u32 = 6;
/// Describe an export and enter transmission.
pub const OPT_GO: u32 = 7;
/// Use structured replies.
pub const OPT_STRUCTURED_REPLY: u32 = 8;
/// List metadata contexts.
pub const OPT_LIST_META_CONTEXT: u32 = 9;
/// Select metadata contexts.
pub const OPT_SET_META_CONTEXT: u32 = 10;
/// Extended headers: 32-byte request and reply headers with 64-bit lengths.
pub const OPT_EXTENDED_HEADERS: u32 = 11;

// ---- Option reply types ----

/// Success / end of a list.
pub const REP_ACK: u32 = 1;
/// One export in reply to `NBD_OPT_LIST`.
pub const REP_SERVER: u32 = 2;
/// One piece of information in reply to `NBD_OPT_INFO` / `NBD_OPT_GO`.
pub const REP_INFO: u32 = 3;
/// One metadata context.
pub const REP_META_CONTEXT: u32 = 4;
/// Bit 31: the reply is an error.
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// Unknown option.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// Forbidden by policy.
pub const REP_ERR_POLICY: u32 = REP_FLAG_ERROR | 2;
/// Syntactically or semantically invalid option.
pub const REP_ERR_INVALID: u32 = REP_FLAG_ERROR | 3;
/// Not supported on this platform.
pub const REP_ERR_PLATFORM: u32 = REP_FLAG_ERROR | 4;
/// TLS required first.
pub const REP_ERR_TLS_REQD: u32 = REP_FLAG_ERROR | 5;
/// Unknown export.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;
/// The server is shutting down.
pub const REP_ERR_SHUTDOWN: u32 = REP_FLAG_ERROR | 7;
/// The client must ask for `NBD_INFO_BLOCK_SIZE`.
pub const REP_ERR_BLOCK_SIZE_REQD: u32 = REP_FLAG_ERROR | 8;
/// Request or reply too large.
pub const REP_ERR_TOO_BIG: u32 = REP_FLAG_ERROR | 9;
/// Extended headers are required, or (the use here) already negotiated, which rules out
/// `NBD_OPT_STRUCTURED_REPLY`.
pub const REP_ERR_EXT_HEADER_REQD: u32 = REP_FLAG_ERROR | 10;

// ---- Information types (NBD_OPT_INFO / NBD_OPT_GO) ----

/// Size and transmission flags.
pub const INFO_EXPORT: u16 = 0;
/// Canonical name.
pub const INFO_NAME: u16 = 1;
/// Human-readable description.
pub const INFO_DESCRIPTION: u16 = 2;
/// Block size constraints.
pub const INFO_BLOCK_SIZE: u16 = 3;

// ---- Commands ----

/// Read.
pub const CMD_READ: u16 = 0;
/// Write (payload follows).
pub const CMD_WRITE: u16 = 1;
/// Disconnect (no reply).
pub const CMD_DISC: u16 = 2;
/// Flush.
pub const CMD_FLUSH: u16 = 3;
/// Trim / discard.
pub const CMD_TRIM: u16 = 4;
/// Cache / prefetch hint.
pub const CMD_CACHE: u16 = 5;
/// Write zeroes.
pub const CMD_WRITE_ZEROES: u16 = 6;
/// Block status query.
pub const CMD_BLOCK_STATUS: u16 = 7;

// ---- Command flags ----

/// Force unit access.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
/// Write zeroes must not punch a hole.
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
/// Do not fragment the read reply.
pub const CMD_FLAG_DF: u16 = 1 << 2;
/// One extent per context in the block status reply.
pub const CMD_FLAG_REQ_ONE: u16 = 1 << 3;
/// Fail write zeroes with ENOTSUP unless it is fast.
pub const CMD_FLAG_FAST_ZERO: u16 = 1 << 4;
/// Extended headers only: the length is a payload length (the payload follows the header),
/// not an effect length. Required on `NBD_CMD_WRITE`.
pub const CMD_FLAG_PAYLOAD_LEN: u16 = 1 << 5;

// ---- Structured replies ----

/// Last chunk of a structured reply.
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
/// No payload; only as the final chunk.
pub const REPLY_TYPE_NONE: u16 = 0;
/// Offset + data.
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
/// Offset + length of zeroes.
pub const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
/// Context id + (length, flags) descriptors.
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
/// Context id + descriptor count + (64-bit length, 64-bit flags) descriptors; extended
/// headers only, and then the only block status type.
pub const REPLY_TYPE_BLOCK_STATUS_EXT: u16 = 6;
/// Bit 15: the chunk is an error chunk.
pub const REPLY_TYPE_FLAG_ERROR: u16 = 1 << 15;
/// Error + message.
pub const REPLY_TYPE_ERROR: u16 = REPLY_TYPE_FLAG_ERROR | 1;
/// Error + message + offset.
pub const REPLY_TYPE_ERROR_OFFSET: u16 = REPLY_TYPE_FLAG_ERROR | 2;

// ---- base:allocation status flags ----

/// The extent is not allocated.
pub const STATE_HOLE: u32 = 1 << 0;
/// The extent reads as zeroes.
pub const STATE_ZERO: u32 = 1 << 1;

/// Name of the one metadata context this server offers.
pub const CONTEXT_BASE_ALLOCATION: &str = "base:allocation";

// ---- Error values on the wire ----

/// Operation not permitted.
pub const NBD_EPERM: u32 = 1;
/// Input/output error.
pub const NBD_EIO: u32 = 5;
/// Cannot allocate memory.
pub const NBD_ENOMEM: u32 = 12;
/// Invalid argument.
pub const NBD_EINVAL: u32 = 22;
/// No space left.
pub const NBD_ENOSPC: u32 = 28;
/// Value too large.
pub const NBD_EOVERFLOW: u32 = 75;
/// Operation not supported.
pub const NBD_ENOTSUP: u32 = 95;
/// Server shutting down.
pub const NBD_ESHUTDOWN: u32 = 108;

// ---- Sizes on the wire ----

/// Server greeting: NBDMAGIC + IHAVEOPT + handshake flags.
pub const GREETING_BYTES: usize = 8 + 8 + 2;
/// Client flags.
pub const CLIENT_FLAGS_BYTES: usize = 4;
/// Option header: IHAVEOPT + option + length.
pub const OPTION_HEADER_BYTES: usize = 8 + 4 + 4;
/// Option reply header: magic + option + type + length.
pub const OPTION_REPLY_HEADER_BYTES: usize = 8 + 4 + 4 + 4;
/// Reserved zero bytes after the `NBD_OPT_EXPORT_NAME` reply unless NO_ZEROES.
pub const EXPORT_NAME_ZERO_PAD_BYTES: usize = 124;
/// Request header: magic + flags + type + cookie + offset + length.
pub const REQUEST_HEADER_BYTES: usize = 4 + 2 + 2 + 8 + 8 + 4;
/// Simple reply header: magic + error + cookie.
pub const SIMPLE_REPLY_HEADER_BYTES: usize = 4 + 4 + 8;
/// Structured reply chunk header: magic + flags + type + cookie + length.
pub const STRUCTURED_REPLY_HEADER_BYTES: usize = 4 + 2 + 2 + 8 + 4;
/// Extended request header: magic + flags + type + cookie + offset + 64-bit length.
pub const EXTENDED_REQUEST_HEADER_BYTES: usize = 4 + 2 + 2 + 8 + 8 + 8;
/// Extended reply chunk header: magic + flags + type + cookie + offset + 64-bit length.
pub const EXTENDED_REPLY_HEADER_BYTES: usize = 4 + 2 + 2 + 8 + 8 + 8;
/// `NBD_REPLY_TYPE_BLOCK_STATUS_EXT` payload before the descriptors: context id + count.
pub const BLOCK_STATUS_EXT_PREFIX_BYTES: usize = 4 + 4;
/// One `NBD_REPLY_TYPE_BLOCK_STATUS_EXT` descriptor: 64-bit length + 64-bit flags.
pub const BLOCK_STATUS_EXT_DESCRIPTOR_BYTES: usize = 8 + 8;

/// Longest string (export name, context name, message) the protocol allows.
pub const MAX_STRING_BYTES: usize = 4096;

/// Human-readable name of a command code, for logs.
pub fn command_name(code: u16) -> &'static str {
    match code {
        CMD_READ => "READ",
        CMD_WRITE => "WRITE",
        CMD_DISC => "DISC",
        CMD_FLUSH => "FLUSH",
        CMD_TRIM => "TRIM",
        CMD_CACHE => "CACHE",
        CMD_WRITE_ZEROES => "WRITE_ZEROES",
        CMD_BLOCK_STATUS => "BLOCK_STATUS",
        _ => "UNKNOWN",
    }
}

/// Human-readable name of an option code, for logs.
pub fn option_name(code: u32) -> &'static str {
    match code {
        OPT_EXPORT_NAME => "EXPORT_NAME",
        OPT_ABORT => "ABORT",
        OPT_LIST => "LIST",
        OPT_PEEK_EXPORT => "PEEK_EXPORT",
        OPT_STARTTLS => "STARTTLS",
        OPT_INFO => "INFO",
        OPT_GO => "GO",
        OPT_STRUCTURED_REPLY => "STRUCTURED_REPLY",
        OPT_LIST_META_CONTEXT => "LIST_META_CONTEXT",
        OPT_SET_META_CONTEXT => "SET_META_CONTEXT",
        OPT_EXTENDED_HEADERS => "EXTENDED_HEADERS",
        _ => "UNKNOWN",
    }
}
