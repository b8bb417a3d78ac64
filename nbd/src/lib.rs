//! NBD protocol codec (no I/O) and tokio NBD server for pnfs-gateway.
//!
//! - [`codec`]: the wire format (handshake, options, requests, replies) as pure parsers and
//!   encoders with limits on everything the peer controls.
//! - [`export`]: an [`Export`] is a named [`pnfs_disk::Disk`] with its NBD settings
//!   and counters; an [`ExportSet`] is what a server offers.
//! - [`server`]: [`serve`] on a TCP or Unix listener until a shutdown future completes.
//!
//! What the server implements (reference: `doc/proto.md` of the NetworkBlockDevice project):
//! fixed newstyle handshake with `NBD_FLAG_NO_ZEROES`; `NBD_OPT_EXPORT_NAME`, `ABORT`,
//! `LIST`, `INFO`, `GO` (with `NBD_INFO_EXPORT`, `NAME`, `DESCRIPTION`, `BLOCK_SIZE`),
//! `STRUCTURED_REPLY`, `EXTENDED_HEADERS`, `LIST_META_CONTEXT` and `SET_META_CONTEXT`
//! (`base:allocation`);
//! `STARTTLS` on TCP listeners given a [`ServerTls`] ([`tls`]: X.509 with rustls, "on" or
//! "require" mode, optional client-certificate verification); every other option gets
//! `NBD_REP_ERR_UNSUP`. Commands
//! `READ`, `WRITE` (FUA), `DISC`, `FLUSH`, `TRIM`, `CACHE`, `WRITE_ZEROES` (`NO_HOLE`,
//! `FAST_ZERO` when the export opts in), `BLOCK_STATUS` (`REQ_ONE`); many requests in flight
//! per connection, replies out of order; `NBD_FLAG_CAN_MULTI_CONN` only when the disk says
//! so. With extended headers (the 64-bit extension, [`codec::extended`]; qemu 10 asks for
//! it, libnbd from 1.18) requests and reply chunks have 32-byte headers, TRIM,
//! WRITE_ZEROES, BLOCK_STATUS and CACHE take 64-bit lengths, block status answers with
//! 64-bit descriptors (`NBD_REPLY_TYPE_BLOCK_STATUS_EXT`) and there are no simple replies;
//! payloads stay bounded by the write payload limit.
//!
//! Error handling at the boundary: every request is checked once (command, flags,
//! alignment to the minimum block size, maximum block size, then
//! [`pnfs_disk::validate_request`]) and refused with an NBD error reply while the
//! connection keeps working; disk errors are mapped once by [`nbd_error_from_disk`]. A
//! request whose payload (a write, or `NBD_CMD_FLAG_PAYLOAD_LEN`) exceeds [`codec::CodecLimits::max_write_payload_bytes`]
//! (32 MiB by default) is answered with EINVAL and then the connection is closed, because its
//! payload is not read. A malformed handshake (bad magic, unknown client flags, oversized
//! option) closes only that connection.

pub mod codec;
mod connection;
pub mod error;
pub mod export;
mod negotiate;
mod request_set;
pub mod server;
mod session;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

pub use error::{nbd_error_from_disk, nbd_error_from_errno, NbdError, NbdResult};
pub use export::{BlockSizes, DynDisk, Export, ExportSet, ExportStats, StatsSnapshot};
pub use negotiate::BASE_ALLOCATION_CONTEXT_ID;
pub use server::{
    serve, serve_stream, serve_with_config, serve_with_tls, Listener, NbdStream, ServerConfig,
    ShutdownSignal,
};
pub use session::{descriptors_from_extents, status_flags, Session};
pub use tls::{ServerTls, TlsMode};
