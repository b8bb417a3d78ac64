//! COMPOUND4args / COMPOUND4res and the arguments and results of every NFSv4.1 operation,
//! plus the NFSv4.2 (RFC 7862) operations and the NFSv4.0-only operations (so a server can
//! answer them with NFS4ERR_NOTSUPP).
//!
//! - [`CompoundArgs`] holds [`NfsArgOp`]s, [`CompoundRes`] holds [`NfsResOp`]s; both decode with
//!   limits ([`NFS4_MAX_COMPOUND_OPS`], [`NFS4_MAX_TAG_BYTES`], …).
//! - An unknown operation number in the arguments decodes to [`NfsArgOp::Illegal`] and stops
//!   the decoding there (the rest of the record is ignored), so the server can answer
//!   NFS4ERR_OP_ILLEGAL with [`NfsResOp::Illegal`].
//! - Results are `Result<ResOk, NfsStat>` ([`NfsRes`]) where the RFC's union carries a body only
//!   on NFS4_OK; results that carry data on a specific error have their own enum
//!   ([`LockRes`], [`LocktRes`], [`LayoutgetRes`], [`GetdeviceinfoRes`], [`CopyRes`],
//!   [`SetclientidRes`]); status-only results are a bare [`NfsStat`](crate::nfs4::types::NfsStat).
//! - Every result type implements [`OpResult`] (build from an error status, read the status),
//!   and [`NfsResOp::error_for`] builds the error result for any argument op.
//! - Layout bodies (`loc_body`, `da_addr_body`, `lou_body`, `lrf_body`) stay opaque bytes;
//!   `crate::layout` parses them.
//! - Attribute values stay packed in [`Fattr4`](crate::nfs4::attr::Fattr4); `crate::nfs4::attr::Fattr` types them.
//!
//! Decoders accept what the XDR allows within the limits; protocol rules (a name longer than
//! 255 bytes, minor version, which ops are allowed) are the server's and client's business.
//!
//! ```
//! use pnfs_proto::nfs4::*;
//! use pnfs_proto::xdr::{from_bytes, to_bytes};
//!
//! // Client: build and encode a request.
//! let args = CompoundArgs::new("", vec![NfsArgOp::Putrootfh, NfsArgOp::Getfh, NfsArgOp::Savefh]);
//! let wire = to_bytes(&args);
//!
//! // Server: decode, answer op by op, stop at the first failure.
//! let req: CompoundArgs = from_bytes(&wire).unwrap();
//! let mut results = Vec::new();
//! for op in &req.argarray {
//!     let res = match op {
//!         NfsArgOp::Putrootfh => NfsResOp::Putrootfh(NfsStat::OK),
//!         NfsArgOp::Getfh => NfsResOp::Getfh(Ok(GetfhResOk { object: FileHandle(vec![1, 2]) })),
//!         other => NfsResOp::error_for(other, NfsStat::NOTSUPP),
//!     };
//!     let failed = !res.status().is_ok();
//!     results.push(res);
//!     if failed {
//!         break;
//!     }
//! }
//! let reply = CompoundRes::new(req.tag, results);
//! assert_eq!(reply.status, NfsStat::NOTSUPP);
//!
//! // Client: decode the reply.
//! let back: CompoundRes = from_bytes(&to_bytes(&reply)).unwrap();
//! assert_eq!(back.first_error(), Some((2, NfsStat::NOTSUPP)));
//! ```

mod compound;
mod consts;
mod fh_attr;
mod io;
mod limits;
mod locks;
mod namespace;
mod open;
mod opnum;
mod pnfs;
mod results;
mod session;
mod shared;
mod table;
mod v40;
mod v42;

pub use compound::*;
pub use consts::*;
pub use fh_attr::*;
pub use io::*;
pub use limits::*;
pub use locks::*;
pub use namespace::*;
pub use open::*;
pub use opnum::*;
pub use pnfs::*;
pub use results::*;
pub use session::*;
pub use shared::*;
pub use table::*;
pub use v40::*;
pub use v42::*;
