//! COMPOUND.

use super::*;
use crate::nfs4::macros::decode_op_list;
use crate::nfs4::types::*;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrResult};

/// COMPOUND4args.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundArgs {
    /// tag (echoed in the reply).
    pub tag: String,
    /// minorversion.
    pub minorversion: u32,
    /// argarray; if the last op is [`NfsArgOp::Illegal`], decoding stopped there.
    pub argarray: Vec<NfsArgOp>,
}

impl CompoundArgs {
    /// A minor-version-1 compound.
    pub fn new(tag: impl Into<String>, ops: Vec<NfsArgOp>) -> Self {
        Self {
            tag: tag.into(),
            minorversion: 1,
            argarray: ops,
        }
    }

    /// Sets the minor version (e.g. 2 for NFSv4.2).
    pub fn with_minorversion(mut self, minorversion: u32) -> Self {
        self.minorversion = minorversion;
        self
    }
}

/// The fixed head of COMPOUND4args, readable even when the operations are not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundHeader {
    /// tag.
    pub tag: String,
    /// minorversion.
    pub minorversion: u32,
    /// Number of operations announced (not checked against [`NFS4_MAX_COMPOUND_OPS`]).
    pub op_count: u32,
}

impl CompoundArgs {
    /// Reads only the tag, minor version and operation count of an encoded COMPOUND4args.
    ///
    /// A server whose full decode failed uses it to answer with the right tag and
    /// NFS4ERR_TOO_MANY_OPS (count above the limit), NFS4ERR_MINOR_VERS_MISMATCH or
    /// NFS4ERR_BADXDR and an empty result array.
    pub fn decode_header(bytes: &[u8]) -> XdrResult<CompoundHeader> {
        let mut dec = Decoder::new(bytes);
        Ok(CompoundHeader {
            tag: dec.string("COMPOUND4args.tag", NFS4_MAX_TAG_BYTES)?,
            minorversion: dec.u32()?,
            op_count: dec.u32()?,
        })
    }
}

impl XdrEncode for CompoundArgs {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_str(&self.tag);
        enc.put_u32(self.minorversion);
        enc.put_array(&self.argarray);
    }
}

impl XdrDecode for CompoundArgs {
    /// Decodes up to and including the first unknown operation; the bytes after an unknown
    /// operation cannot be parsed and are consumed unread (whole XDR units only).
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let tag = dec.string("COMPOUND4args.tag", NFS4_MAX_TAG_BYTES)?;
        let minorversion = dec.u32()?;
        let argarray = decode_op_list(dec, "COMPOUND4args.argarray", NFS4_MAX_COMPOUND_OPS)?;
        Ok(Self {
            tag,
            minorversion,
            argarray,
        })
    }
}

/// COMPOUND4res.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundRes {
    /// status: that of the last result (NFS4_OK when all succeeded).
    pub status: NfsStat,
    /// tag, echoed from the request.
    pub tag: String,
    /// resarray: one result per operation executed.
    pub resarray: Vec<NfsResOp>,
}

impl CompoundRes {
    /// A reply whose status is that of the last result (NFS4_OK when empty).
    pub fn new(tag: impl Into<String>, resarray: Vec<NfsResOp>) -> Self {
        let status = resarray.last().map_or(NfsStat::OK, NfsResOp::status);
        Self {
            status,
            tag: tag.into(),
            resarray,
        }
    }
}

impl CompoundRes {
    /// The index and status of the first failed result, if any.
    pub fn first_error(&self) -> Option<(usize, NfsStat)> {
        self.resarray
            .iter()
            .enumerate()
            .find(|(_, r)| !r.status().is_ok())
            .map(|(i, r)| (i, r.status()))
    }
}

impl XdrEncode for CompoundRes {
    fn encode(&self, enc: &mut Encoder) {
        self.status.encode(enc);
        enc.put_str(&self.tag);
        enc.put_array(&self.resarray);
    }
}

impl XdrDecode for CompoundRes {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            status: dec.get()?,
            tag: dec.string("COMPOUND4res.tag", NFS4_MAX_TAG_BYTES)?,
            resarray: dec.array("COMPOUND4res.resarray", NFS4_MAX_COMPOUND_OPS)?,
        })
    }
}
