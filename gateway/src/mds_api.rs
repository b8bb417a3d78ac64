//! The boundary between the pNFS layer ([`crate::pnfs`]) and the NFSv4.1 client
//! ([`crate::client`]).
//!
//! The pNFS layer calls the MDS only through [`MetadataServer`]; the client delivers callbacks
//! to the pNFS layer only through [`CallbackSink`]. This keeps each side testable on its own
//! (with fault layers) while the acceptance tests run both against real servers.
//!
//! Owned by the pNFS layer; the client implements it.
