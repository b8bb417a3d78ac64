//! The NFSv4.1 client: transport, session with slot table, backchannel, lease renewal, recovery.
//!
//! [`NfsClient`] implements [`crate::mds_api::MetadataServer`]; callbacks go to the
//! [`crate::mds_api::CallbackSink`] the pNFS layer registers.
//!
//! Layers, bottom up:
//! - [`transport`]: one RPC connection (record marking, xids, outstanding calls, timeouts, and
//!   the server's CALLs on the same connection, handed to the backchannel).
//! - [`slots`]: the fore-channel slot table; [`cb`]: the backchannel and its slot table.
//! - [`wire`]: COMPOUND encoding/decoding (no I/O).
//! - [`session`]: client ID, session, SEQUENCE, recovery, reclaim, lease renewal.
//! - `mds_impl`: the [`crate::mds_api::MetadataServer`] operations.
//!
//! Recovery (docs/requirements.md S1, C5): a transport error closes the connection; the request
//! is resent on the same slot and sequence id over a new connection bound with
//! BIND_CONN_TO_SESSION (the server's reply cache makes that exactly-once).
//! BADSESSION/DEADSESSION create a new session; STALE_CLIENTID a new client ID; a new client ID
//! while files are open means the server lost our state: opens are reclaimed with
//! CLAIM_PREVIOUS (or re-opened with CLAIM_FH when the server has no grace for us), the pNFS
//! layer is told, then RECLAIM_COMPLETE. DELAY and GRACE stall the request with backoff up to
//! [`ClientConfig::stall_limit_ms`].

pub mod cb;
pub mod error;
#[cfg(test)]
mod fake_peer_tests;
mod mds_impl;
pub mod rpc;
pub mod session;
pub mod slots;
pub mod transport;
pub mod wire;

pub use error::ClientError;
pub use mds_impl::to_mds_error;
pub use session::{
    AsyncStream, BoxStream, ClientConfig, ClientStatsSnapshot, Connector, NfsClient, TcpConnector,
};
pub use transport::TransportLimits;
