//! Namespace operations.

use super::*;
use crate::nfs4::attr::{Bitmap4, Fattr4};
use crate::nfs4::macros::xdr_struct;
use crate::nfs4::types::*;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

/// createtype4: the kind of object CREATE makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateType {
    /// NF4LNK with the link text.
    Link(String),
    /// NF4BLK with device numbers.
    Block(SpecData),
    /// NF4CHR with device numbers.
    Char(SpecData),
    /// NF4SOCK.
    Socket,
    /// NF4FIFO.
    Fifo,
    /// NF4DIR.
    Dir,
    /// Any other type (the server answers NFS4ERR_BADTYPE).
    Other(u32),
}

impl XdrEncode for CreateType {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Self::Link(text) => {
                enc.put_u32(NF4LNK);
                enc.put_str(text);
            }
            Self::Block(d) => {
                enc.put_u32(NF4BLK);
                d.encode(enc);
            }
            Self::Char(d) => {
                enc.put_u32(NF4CHR);
                d.encode(enc);
            }
            Self::Socket => enc.put_u32(NF4SOCK),
            Self::Fifo => enc.put_u32(NF4FIFO),
            Self::Dir => enc.put_u32(NF4DIR),
            Self::Other(t) => enc.put_u32(*t),
        }
    }
}

impl XdrDecode for CreateType {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(match dec.u32()? {
            NF4LNK => Self::Link(dec.string("createtype4.linkdata", NFS4_MAX_LINKTEXT_BYTES)?),
            NF4BLK => Self::Block(dec.get()?),
            NF4CHR => Self::Char(dec.get()?),
            NF4SOCK => Self::Socket,
            NF4FIFO => Self::Fifo,
            NF4DIR => Self::Dir,
            t => Self::Other(t),
        })
    }
}

xdr_struct! {
    /// CREATE4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CreateArgs {
        /// objtype.
        pub objtype: CreateType,
        /// objname.
        pub objname: Component => string(NFS4_MAX_COMPONENT_BYTES),
        /// createattrs.
        pub createattrs: Fattr4,
    }
}

xdr_struct! {
    /// CREATE4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct CreateResOk {
        /// cinfo.
        pub cinfo: ChangeInfo,
        /// attrset.
        pub attrset: Bitmap4,
    }
}

xdr_struct! {
    /// REMOVE4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RemoveArgs {
        /// target.
        pub target: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

xdr_struct! {
    /// REMOVE4resok and LINK4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CinfoResOk {
        /// cinfo.
        pub cinfo: ChangeInfo,
    }
}

xdr_struct! {
    /// RENAME4args (saved fh: source dir, current fh: target dir).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct RenameArgs {
        /// oldname.
        pub oldname: Component => string(NFS4_MAX_COMPONENT_BYTES),
        /// newname.
        pub newname: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

xdr_struct! {
    /// RENAME4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct RenameResOk {
        /// source_cinfo.
        pub source_cinfo: ChangeInfo,
        /// target_cinfo.
        pub target_cinfo: ChangeInfo,
    }
}

xdr_struct! {
    /// LINK4args (saved fh: source object, current fh: target dir).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LinkArgs {
        /// newname.
        pub newname: Component => string(NFS4_MAX_COMPONENT_BYTES),
    }
}

xdr_struct! {
    /// READLINK4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReadlinkResOk {
        /// link.
        pub link: String => string(NFS4_MAX_LINKTEXT_BYTES),
    }
}

xdr_struct! {
    /// READDIR4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReaddirArgs {
        /// cookie (0 = start).
        pub cookie: u64,
        /// cookieverf.
        pub cookieverf: Verifier,
        /// dircount.
        pub dircount: u32,
        /// maxcount.
        pub maxcount: u32,
        /// attr_request.
        pub attr_request: Bitmap4,
    }
}

xdr_struct! {
    /// entry4 without its link (the list is a `Vec` in [`DirList`]).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct DirEntry {
        /// cookie.
        pub cookie: u64,
        /// name.
        pub name: Component => string(NFS4_MAX_COMPONENT_BYTES),
        /// attrs.
        pub attrs: Fattr4,
    }
}

/// dirlist4: the entry4 linked list as a vector, decoded iteratively with
/// [`NFS4_MAX_READDIR_ENTRIES`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirList {
    /// entries, in order.
    pub entries: Vec<DirEntry>,
    /// eof.
    pub eof: bool,
}

impl XdrEncode for DirList {
    fn encode(&self, enc: &mut Encoder) {
        for e in &self.entries {
            enc.put_bool(true);
            e.encode(enc);
        }
        enc.put_bool(false);
        enc.put_bool(self.eof);
    }
}

impl XdrDecode for DirList {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let mut entries = Vec::new();
        while dec.bool()? {
            if entries.len() >= NFS4_MAX_READDIR_ENTRIES {
                return Err(XdrError::TooLong {
                    what: "dirlist4.entries",
                    len: entries.len() as u64 + 1,
                    limit: NFS4_MAX_READDIR_ENTRIES as u64,
                });
            }
            entries.push(dec.get()?);
        }
        Ok(Self {
            entries,
            eof: dec.bool()?,
        })
    }
}

xdr_struct! {
    /// READDIR4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReaddirResOk {
        /// cookieverf.
        pub cookieverf: Verifier,
        /// reply.
        pub reply: DirList,
    }
}
