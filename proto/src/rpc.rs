//! ONC RPC (RFC 5531): record marking, call and reply headers, AUTH_NONE and AUTH_SYS.
//!
//! Covered:
//! - Record marking (RFC 5531 §11): [`RecordReader`] is an incremental, pure reader (feed it
//!   whatever bytes arrived, take complete records out) with a caller-given record size limit
//!   and a fragment-count limit; [`write_record`] / [`begin_record`] + [`finish_record`] write
//!   single- or multi-fragment records.
//! - `rpc_msg` headers: [`RpcMsg`] with a CALL body ([`CallBody`]) or a REPLY body
//!   ([`ReplyBody`]: accepted with [`AcceptStat`], or denied with [`RejectedReply`]). The
//!   procedure arguments/results follow the header; [`decode_message`] returns them as the rest
//!   of the record.
//! - `opaque_auth` ([`OpaqueAuth`]): AUTH_NONE, AUTH_SYS ([`AuthSys`]) and any other flavour
//!   kept as raw bytes (so RPCSEC_GSS can be decoded and refused with an auth error).
//!
//! Not covered: RPCSEC_GSS bodies, AUTH_DH, AUTH_SHORT interpretation, RPC over RDMA.

use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

/// The only RPC protocol version (RFC 5531 §9).
pub const RPC_VERSION: u32 = 2;

/// NFS program number.
pub const NFS_PROGRAM: u32 = 100_003;
/// NFS version 4 (all minor versions).
pub const NFS_V4: u32 = 4;
/// NFSPROC4_NULL.
pub const NFSPROC4_NULL: u32 = 0;
/// NFSPROC4_COMPOUND.
pub const NFSPROC4_COMPOUND: u32 = 1;

/// Version of the NFSv4.1 callback program (the program number is chosen by the client in
/// CREATE_SESSION / BACKCHANNEL_CTL).
pub const NFS_CB_VERSION: u32 = 1;
/// CB_NULL.
pub const CB_NULL: u32 = 0;
/// CB_COMPOUND.
pub const CB_COMPOUND: u32 = 1;

/// Largest `opaque_auth` body (RFC 5531 §8.2: `opaque body<400>`).
pub const MAX_AUTH_BODY_BYTES: usize = 400;
/// Largest AUTH_SYS machine name (`string machinename<255>`).
pub const AUTH_SYS_MAX_MACHINE_NAME_BYTES: usize = 255;
/// Largest AUTH_SYS supplementary group list (`unsigned int gids<16>`).
pub const AUTH_SYS_MAX_GIDS: usize = 16;

/// Record-mark bit that flags the last fragment of a record.
pub const RECORD_LAST_FRAGMENT: u32 = 0x8000_0000;
/// Largest fragment a record mark can describe (31 bits).
pub const RECORD_MAX_FRAGMENT_BYTES: usize = 0x7fff_ffff;
/// Size of a record mark.
pub const RECORD_MARK_BYTES: usize = 4;
/// Most fragments [`RecordReader`] accepts in one record (empty fragments cost no memory but
/// would let a peer keep a record open forever).
pub const RECORD_MAX_FRAGMENTS: u32 = 4096;

/// AUTH_NONE.
pub const AUTH_NONE: u32 = 0;
/// AUTH_SYS (also called AUTH_UNIX).
pub const AUTH_SYS: u32 = 1;
/// AUTH_SHORT.
pub const AUTH_SHORT: u32 = 2;
/// AUTH_DH.
pub const AUTH_DH: u32 = 3;
/// RPCSEC_GSS (RFC 2203).
pub const RPCSEC_GSS: u32 = 6;

// ---------------------------------------------------------------------------------------------
// Record marking
// ---------------------------------------------------------------------------------------------

/// Incremental record-marking reader.
///
/// Pure: it owns no socket. Feed it the bytes as they arrive with [`RecordReader::feed`]; it
/// returns how many bytes it consumed and, when a record completed, that record. A record larger
/// than the limit is an error as soon as its fragment headers say so (before the body is
/// buffered); after an error the reader stays failed and the connection should be closed.
#[derive(Debug)]
pub struct RecordReader {
    max_record_bytes: usize,
    mark: [u8; RECORD_MARK_BYTES],
    mark_have: usize,
    /// Bytes left in the current fragment; `None` while reading a record mark.
    frag_left: Option<usize>,
    frag_is_last: bool,
    fragments: u32,
    record: Vec<u8>,
    failed: Option<XdrError>,
}

impl RecordReader {
    /// A reader that refuses records larger than `max_record_bytes` (sum of its fragments).
    pub fn new(max_record_bytes: usize) -> Self {
        Self {
            max_record_bytes,
            mark: [0; RECORD_MARK_BYTES],
            mark_have: 0,
            frag_left: None,
            frag_is_last: false,
            fragments: 0,
            record: Vec::new(),
            failed: None,
        }
    }

    /// The record size limit.
    pub fn max_record_bytes(&self) -> usize {
        self.max_record_bytes
    }

    /// True when no partial record is buffered (a clean point to close the connection).
    pub fn is_idle(&self) -> bool {
        self.failed.is_none()
            && self.mark_have == 0
            && self.frag_left.is_none()
            && self.fragments == 0
    }

    /// Consumes bytes from `data` up to the end of the first record that completes.
    ///
    /// Returns the number of bytes consumed and the record, if one completed. Call again with
    /// `&data[consumed..]` until everything is consumed. Errors (oversized record, too many
    /// fragments) are sticky.
    pub fn feed(&mut self, data: &[u8]) -> XdrResult<(usize, Option<Vec<u8>>)> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut used = 0;
        while used < data.len() {
            match self.frag_left {
                None => {
                    let want = RECORD_MARK_BYTES - self.mark_have;
                    let n = want.min(data.len() - used);
                    self.mark[self.mark_have..self.mark_have + n]
                        .copy_from_slice(&data[used..used + n]);
                    self.mark_have += n;
                    used += n;
                    if self.mark_have == RECORD_MARK_BYTES {
                        self.mark_have = 0;
                        let mark = u32::from_be_bytes(self.mark);
                        if let Err(e) = self.start_fragment(mark) {
                            self.failed = Some(e.clone());
                            return Err(e);
                        }
                        if let Some(rec) = self.take_if_complete() {
                            return Ok((used, Some(rec)));
                        }
                    }
                }
                Some(left) => {
                    let n = left.min(data.len() - used);
                    self.record.extend_from_slice(&data[used..used + n]);
                    used += n;
                    self.frag_left = Some(left - n);
                    if let Some(rec) = self.take_if_complete() {
                        return Ok((used, Some(rec)));
                    }
                }
            }
        }
        Ok((used, None))
    }

    /// Feeds all of `data` and returns every record that completed, in order.
    pub fn feed_all(&mut self, mut data: &[u8]) -> XdrResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (used, rec) = self.feed(data)?;
            data = &data[used..];
            out.extend(rec);
        }
        Ok(out)
    }

    fn start_fragment(&mut self, mark: u32) -> XdrResult<()> {
        let len = usize::try_from(mark & !RECORD_LAST_FRAGMENT).unwrap_or(usize::MAX);
        self.fragments += 1;
        if self.fragments > RECORD_MAX_FRAGMENTS {
            return Err(XdrError::TooLong {
                what: "RPC record fragments",
                len: u64::from(self.fragments),
                limit: u64::from(RECORD_MAX_FRAGMENTS),
            });
        }
        let total = self.record.len().saturating_add(len);
        if total > self.max_record_bytes {
            return Err(XdrError::TooLong {
                what: "RPC record",
                len: total as u64,
                limit: self.max_record_bytes as u64,
            });
        }
        self.record.reserve(len);
        self.frag_left = Some(len);
        self.frag_is_last = mark & RECORD_LAST_FRAGMENT != 0;
        Ok(())
    }

    fn take_if_complete(&mut self) -> Option<Vec<u8>> {
        if self.frag_left != Some(0) {
            return None;
        }
        self.frag_left = None;
        if !self.frag_is_last {
            return None;
        }
        self.fragments = 0;
        Some(std::mem::take(&mut self.record))
    }
}

/// Appends `payload` to `out` as one record, split into fragments of at most
/// `max_fragment_bytes` (clamped to 1..=[`RECORD_MAX_FRAGMENT_BYTES`]). An empty payload is one
/// empty last fragment.
pub fn write_record(payload: &[u8], max_fragment_bytes: usize, out: &mut Vec<u8>) {
    let frag = max_fragment_bytes.clamp(1, RECORD_MAX_FRAGMENT_BYTES);
    let mut chunks = payload.chunks(frag).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&RECORD_LAST_FRAGMENT.to_be_bytes());
        return;
    }
    while let Some(chunk) = chunks.next() {
        // A chunk is at most RECORD_MAX_FRAGMENT_BYTES long, so it fits in 31 bits.
        let mut mark = u32::try_from(chunk.len()).unwrap_or(u32::MAX) & !RECORD_LAST_FRAGMENT;
        if chunks.peek().is_none() {
            mark |= RECORD_LAST_FRAGMENT;
        }
        out.extend_from_slice(&mark.to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Reserves a record mark in `enc`; encode the message after it, then call [`finish_record`]
/// with the returned offset. Produces a single-fragment record without copying.
pub fn begin_record(enc: &mut Encoder) -> usize {
    let at = enc.len();
    enc.put_u32(0);
    at
}

/// Fills in the record mark reserved by [`begin_record`] at `mark_offset`.
///
/// Errors if the message is larger than one fragment can hold (2 GiB - 1); use
/// [`write_record`] for such payloads.
pub fn finish_record(enc: &mut Encoder, mark_offset: usize) -> XdrResult<()> {
    let len = enc.len().saturating_sub(mark_offset + RECORD_MARK_BYTES);
    if len > RECORD_MAX_FRAGMENT_BYTES {
        return Err(XdrError::TooLong {
            what: "RPC record fragment",
            len: len as u64,
            limit: RECORD_MAX_FRAGMENT_BYTES as u64,
        });
    }
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    enc.patch_u32(mark_offset, len | RECORD_LAST_FRAGMENT);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/// authsys_parms (RFC 5531 appendix A).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthSys {
    /// Arbitrary id the caller machine may generate.
    pub stamp: u32,
    /// Caller's host name, at most [`AUTH_SYS_MAX_MACHINE_NAME_BYTES`]. Bytes that are not
    /// UTF-8 become `?` on decode, one for one (the name is informational only).
    pub machine_name: String,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Supplementary groups, at most [`AUTH_SYS_MAX_GIDS`].
    pub gids: Vec<u32>,
}

impl XdrEncode for AuthSys {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.stamp);
        enc.put_str(&self.machine_name);
        enc.put_u32(self.uid);
        enc.put_u32(self.gid);
        enc.put_array(&self.gids);
    }
}

impl XdrDecode for AuthSys {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let stamp = dec.u32()?;
        // Lossy but length-preserving: the name stays within its 255-byte limit, so what was
        // decoded always encodes again (a fuzz finding: three bytes per bad byte did not).
        let machine_name =
            dec.string_lossy("authsys_parms.machinename", AUTH_SYS_MAX_MACHINE_NAME_BYTES)?;
        Ok(Self {
            stamp,
            machine_name,
            uid: dec.u32()?,
            gid: dec.u32()?,
            gids: dec.array("authsys_parms.gids", AUTH_SYS_MAX_GIDS)?,
        })
    }
}

/// opaque_auth: a credential or verifier.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OpaqueAuth {
    /// AUTH_NONE with an empty body.
    #[default]
    None,
    /// AUTH_SYS with its parameters.
    Sys(AuthSys),
    /// Any other flavour (or AUTH_NONE with a non-empty body), kept raw. The body is at most
    /// [`MAX_AUTH_BODY_BYTES`].
    Other {
        /// auth_flavor.
        flavor: u32,
        /// The opaque body.
        body: Vec<u8>,
    },
}

impl OpaqueAuth {
    /// The auth_flavor on the wire.
    pub fn flavor(&self) -> u32 {
        match self {
            Self::None => AUTH_NONE,
            Self::Sys(_) => AUTH_SYS,
            Self::Other { flavor, .. } => *flavor,
        }
    }
}

impl XdrEncode for OpaqueAuth {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::None => {
                enc.put_u32(AUTH_NONE);
                enc.put_u32(0);
            }
            Self::Sys(sys) => {
                enc.put_u32(AUTH_SYS);
                enc.put_opaque(&crate::xdr::to_bytes(sys));
            }
            Self::Other { flavor, body } => {
                enc.put_u32(*flavor);
                enc.put_opaque(body);
            }
        }
    }
}

impl XdrDecode for OpaqueAuth {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let flavor = dec.u32()?;
        let body = dec.opaque("opaque_auth.body", MAX_AUTH_BODY_BYTES)?;
        match flavor {
            AUTH_NONE if body.is_empty() => Ok(Self::None),
            AUTH_SYS => Ok(Self::Sys(crate::xdr::from_bytes(body)?)),
            _ => Ok(Self::Other {
                flavor,
                body: body.to_vec(),
            }),
        }
    }
}

/// auth_stat: why a credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthStat(pub u32);

impl AuthStat {
    /// AUTH_OK.
    pub const OK: Self = Self(0);
    /// AUTH_BADCRED: bad credential (seal broken).
    pub const BADCRED: Self = Self(1);
    /// AUTH_REJECTEDCRED: client must begin a new session.
    pub const REJECTEDCRED: Self = Self(2);
    /// AUTH_BADVERF: bad verifier.
    pub const BADVERF: Self = Self(3);
    /// AUTH_REJECTEDVERF: verifier expired or replayed.
    pub const REJECTEDVERF: Self = Self(4);
    /// AUTH_TOOWEAK: rejected for security reasons.
    pub const TOOWEAK: Self = Self(5);
    /// AUTH_INVALIDRESP: bogus response verifier.
    pub const INVALIDRESP: Self = Self(6);
    /// AUTH_FAILED: reason unknown.
    pub const FAILED: Self = Self(7);
    /// RPCSEC_GSS_CREDPROBLEM.
    pub const RPCSEC_GSS_CREDPROBLEM: Self = Self(13);
    /// RPCSEC_GSS_CTXPROBLEM.
    pub const RPCSEC_GSS_CTXPROBLEM: Self = Self(14);
}

impl XdrEncode for AuthStat {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.0);
    }
}

impl XdrDecode for AuthStat {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self(dec.u32()?))
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// The CALL body of an rpc_msg (the procedure arguments follow it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallBody {
    /// rpcvers: must be [`RPC_VERSION`]; kept as received so a server can answer
    /// RPC_MISMATCH.
    pub rpcvers: u32,
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_num: u32,
    /// Credential.
    pub cred: OpaqueAuth,
    /// Verifier.
    pub verf: OpaqueAuth,
}

impl CallBody {
    /// A call of `prog`/`vers`/`proc_num` with RPC version 2 and an AUTH_NONE verifier.
    pub fn new(prog: u32, vers: u32, proc_num: u32, cred: OpaqueAuth) -> Self {
        Self {
            rpcvers: RPC_VERSION,
            prog,
            vers,
            proc_num,
            cred,
            verf: OpaqueAuth::None,
        }
    }
}

impl XdrEncode for CallBody {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.rpcvers);
        enc.put_u32(self.prog);
        enc.put_u32(self.vers);
        enc.put_u32(self.proc_num);
        self.cred.encode(enc);
        self.verf.encode(enc);
    }
}

impl XdrDecode for CallBody {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            rpcvers: dec.u32()?,
            prog: dec.u32()?,
            vers: dec.u32()?,
            proc_num: dec.u32()?,
            cred: dec.get()?,
            verf: dec.get()?,
        })
    }
}

/// accept_stat with its per-case data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceptStat {
    /// SUCCESS: the results follow.
    #[default]
    Success,
    /// PROG_UNAVAIL.
    ProgUnavail,
    /// PROG_MISMATCH with the supported version range.
    ProgMismatch {
        /// Lowest supported version.
        low: u32,
        /// Highest supported version.
        high: u32,
    },
    /// PROC_UNAVAIL.
    ProcUnavail,
    /// GARBAGE_ARGS.
    GarbageArgs,
    /// SYSTEM_ERR.
    SystemErr,
}

impl XdrEncode for AcceptStat {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Success => enc.put_u32(0),
            Self::ProgUnavail => enc.put_u32(1),
            Self::ProgMismatch { low, high } => {
                enc.put_u32(2);
                enc.put_u32(*low);
                enc.put_u32(*high);
            }
            Self::ProcUnavail => enc.put_u32(3),
            Self::GarbageArgs => enc.put_u32(4),
            Self::SystemErr => enc.put_u32(5),
        }
    }
}

impl XdrDecode for AcceptStat {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            0 => Self::Success,
            1 => Self::ProgUnavail,
            2 => Self::ProgMismatch {
                low: dec.u32()?,
                high: dec.u32()?,
            },
            3 => Self::ProcUnavail,
            4 => Self::GarbageArgs,
            5 => Self::SystemErr,
            value => {
                return Err(XdrError::BadEnum {
                    what: "accept_stat",
                    value,
                })
            }
        })
    }
}

/// accepted_reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AcceptedReply {
    /// Server verifier.
    pub verf: OpaqueAuth,
    /// Outcome; on [`AcceptStat::Success`] the procedure results follow.
    pub stat: AcceptStat,
}

impl XdrEncode for AcceptedReply {
    fn encode(&self, enc: &mut Encoder) {
        self.verf.encode(enc);
        self.stat.encode(enc);
    }
}

impl XdrDecode for AcceptedReply {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            verf: dec.get()?,
            stat: dec.get()?,
        })
    }
}

/// rejected_reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedReply {
    /// RPC_MISMATCH with the supported RPC version range.
    RpcMismatch {
        /// Lowest supported RPC version.
        low: u32,
        /// Highest supported RPC version.
        high: u32,
    },
    /// AUTH_ERROR with the reason.
    AuthError(AuthStat),
}

impl XdrEncode for RejectedReply {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::RpcMismatch { low, high } => {
                enc.put_u32(0);
                enc.put_u32(*low);
                enc.put_u32(*high);
            }
            Self::AuthError(stat) => {
                enc.put_u32(1);
                stat.encode(enc);
            }
        }
    }
}

impl XdrDecode for RejectedReply {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            0 => Self::RpcMismatch {
                low: dec.u32()?,
                high: dec.u32()?,
            },
            1 => Self::AuthError(dec.get()?),
            value => {
                return Err(XdrError::BadEnum {
                    what: "reject_stat",
                    value,
                })
            }
        })
    }
}

/// reply_body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// MSG_ACCEPTED.
    Accepted(AcceptedReply),
    /// MSG_DENIED.
    Denied(RejectedReply),
}

impl ReplyBody {
    /// An accepted SUCCESS reply with an AUTH_NONE verifier (results follow).
    pub fn success() -> Self {
        Self::Accepted(AcceptedReply::default())
    }

    /// An accepted reply with `stat` and an AUTH_NONE verifier.
    pub fn accepted(stat: AcceptStat) -> Self {
        Self::Accepted(AcceptedReply {
            verf: OpaqueAuth::None,
            stat,
        })
    }
}

impl XdrEncode for ReplyBody {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Accepted(a) => {
                enc.put_u32(0);
                a.encode(enc);
            }
            Self::Denied(r) => {
                enc.put_u32(1);
                r.encode(enc);
            }
        }
    }
}

impl XdrDecode for ReplyBody {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            0 => Self::Accepted(dec.get()?),
            1 => Self::Denied(dec.get()?),
            value => {
                return Err(XdrError::BadEnum {
                    what: "reply_stat",
                    value,
                })
            }
        })
    }
}

/// The body of an rpc_msg: msg_type and its arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgBody {
    /// CALL (0).
    Call(CallBody),
    /// REPLY (1).
    Reply(ReplyBody),
}

/// rpc_msg header. The procedure arguments (after a CALL) or results (after an accepted
/// SUCCESS reply) follow it in the same record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMsg {
    /// Transaction id, echoed in the reply.
    pub xid: u32,
    /// Call or reply.
    pub body: MsgBody,
}

impl RpcMsg {
    /// A CALL header.
    pub fn call(xid: u32, call: CallBody) -> Self {
        Self {
            xid,
            body: MsgBody::Call(call),
        }
    }

    /// A REPLY header.
    pub fn reply(xid: u32, reply: ReplyBody) -> Self {
        Self {
            xid,
            body: MsgBody::Reply(reply),
        }
    }
}

impl XdrEncode for RpcMsg {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_u32(self.xid);
        match &self.body {
            MsgBody::Call(c) => {
                enc.put_u32(0);
                c.encode(enc);
            }
            MsgBody::Reply(r) => {
                enc.put_u32(1);
                r.encode(enc);
            }
        }
    }
}

impl XdrDecode for RpcMsg {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let xid = dec.u32()?;
        let body = match dec.u32()? {
            0 => MsgBody::Call(dec.get()?),
            1 => MsgBody::Reply(dec.get()?),
            value => {
                return Err(XdrError::BadEnum {
                    what: "msg_type",
                    value,
                })
            }
        };
        Ok(Self { xid, body })
    }
}

/// Encodes a whole record: record mark, the rpc_msg header, then `body` (the procedure
/// arguments or results; `None` for NULL procedures and replies that are not SUCCESS).
pub fn encode_record(msg: &RpcMsg, body: Option<&dyn XdrEncode>) -> XdrResult<Vec<u8>> {
    let mut enc = Encoder::new();
    let mark = begin_record(&mut enc);
    msg.encode(&mut enc);
    if let Some(body) = body {
        body.encode(&mut enc);
    }
    finish_record(&mut enc, mark)?;
    Ok(enc.into_inner())
}

/// Decodes the rpc_msg header at the start of `record` and returns it with the rest of the
/// record (the procedure arguments or results).
pub fn decode_message(record: &[u8]) -> XdrResult<(RpcMsg, &[u8])> {
    let mut dec = Decoder::new(record);
    let msg = RpcMsg::decode(&mut dec)?;
    Ok((msg, dec.rest()))
}

/// Reads only the xid of a record, if it has one (useful to answer a call whose header is
/// malformed, or to route a reply).
pub fn peek_xid(record: &[u8]) -> Option<u32> {
    Decoder::new(record).u32().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::{from_bytes, to_bytes};

    #[test]
    fn single_fragment_record_and_split_input() {
        let mut out = Vec::new();
        write_record(b"hello", 1024, &mut out);
        assert_eq!(&out[..4], &[0x80, 0, 0, 5]);
        let mut r = RecordReader::new(100);
        let (used, rec) = r.feed(&out[..3]).unwrap();
        assert_eq!((used, rec), (3, None));
        let (used, rec) = r.feed(&out[3..]).unwrap();
        assert_eq!(used, 6);
        assert_eq!(rec.as_deref(), Some(&b"hello"[..]));
        assert!(r.is_idle());
    }

    #[test]
    fn auth_sys_round_trips_inside_opaque_auth() {
        let a = OpaqueAuth::Sys(AuthSys {
            stamp: 1,
            machine_name: "host".into(),
            uid: 1000,
            gid: 100,
            gids: vec![4, 24],
        });
        assert_eq!(from_bytes::<OpaqueAuth>(&to_bytes(&a)), Ok(a));
    }
}
