//! NFSv4.1 (RFC 8881) and the NFSv4.2 (RFC 7862) additions: basic types, COMPOUND operations,
//! attributes, and the callback program's CB_COMPOUND ([`cb`]).

pub(crate) mod macros;

pub mod attr;
pub mod cb;
pub mod ops;
pub mod types;

pub use attr::{Bitmap4, Fattr4};
pub use ops::*;
pub use types::*;
