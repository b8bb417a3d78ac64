//! The NFSv4.1 client: transport, session with slot table, backchannel, lease renewal, recovery.

pub mod cb;
pub mod error;
pub mod rpc;
pub mod slots;
pub mod transport;
pub mod wire;

pub use error::ClientError;
