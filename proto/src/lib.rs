//! Wire formats for pnfs-gateway: XDR, ONC RPC with record marking, NFSv4.1 COMPOUND and the
//! callback program, and the pNFS block (RFC 5663) and SCSI (RFC 8154) layout bodies.
//!
//! This crate does no I/O. Decoders take byte slices and enforce limits; encoders append to
//! buffers. Everything that comes from the network is validated here once.

pub mod layout;
pub mod nfs4;
pub mod rpc;
pub mod xdr;

pub use xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};
