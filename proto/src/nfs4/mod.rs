//! NFSv4.1 (RFC 8881) types, COMPOUND operations and attributes.

pub mod attr;
pub mod ops;
pub mod types;

pub use types::*;
