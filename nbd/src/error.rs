//! The one error type of this crate, and the one mapping from a disk errno to an NBD error
//! value on the wire.

use pnfs_disk::{libc_errno, DiskError};
use thiserror::Error;

use crate::codec::consts::{
    NBD_EINVAL, NBD_EIO, NBD_ENOMEM, NBD_ENOSPC, NBD_ENOTSUP, NBD_EOVERFLOW, NBD_EPERM,
    NBD_ESHUTDOWN,
};

/// Everything that can go wrong in the codec or the server.
#[derive(Debug, Error)]
pub enum NbdError {
    /// The peer broke the protocol (bad magic, unknown client flags, malformed header). The
    /// connection it came on is closed; nothing else is affected.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A length from the peer is over one of our limits.
    #[error("{what} of {value_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The length the peer sent.
        value_bytes: u64,
        /// Our limit.
        limit_bytes: u64,
    },
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The backing disk failed (only where no NBD error reply can carry it, e.g. the final
    /// flush at shutdown).
    #[error("disk error on export {export:?}: {source}")]
    Disk {
        /// The export whose disk failed.
        export: String,
        /// The disk's error.
        source: DiskError,
    },
    /// An export set or server configuration that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bounded wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// TLS: certificates that cannot be loaded, or a TLS handshake with a peer that failed
    /// (bad or untrusted client certificate, protocol error, timeout).
    #[error("TLS: {0}")]
    Tls(String),
}

impl NbdError {
    /// Shorthand for [`NbdError::Protocol`].
    pub fn protocol(message: impl Into<String>) -> Self {
        NbdError::Protocol(message.into())
    }
}

/// Result type of this crate.
pub type NbdResult<T> = Result<T, NbdError>;

/// The one mapping from an errno (as [`DiskError::errno`] gives it) to the error value sent in
/// an NBD reply. The protocol only defines a few values; anything else becomes `NBD_EIO`.
pub fn nbd_error_from_errno(errno: i32) -> u32 {
    match errno {
        libc_errno::EPERM => NBD_EPERM,
        libc_errno::EIO => NBD_EIO,
        libc_errno::ENOMEM => NBD_ENOMEM,
        libc_errno::EINVAL => NBD_EINVAL,
        libc_errno::ENOSPC => NBD_ENOSPC,
        libc_errno::EOVERFLOW => NBD_EOVERFLOW,
        libc_errno::ENOTSUP => NBD_ENOTSUP,
        libc_errno::ESHUTDOWN => NBD_ESHUTDOWN,
        _ => NBD_EIO,
    }
}

/// The NBD error value for a disk error (through [`DiskError::errno`]).
pub fn nbd_error_from_disk(err: &DiskError) -> u32 {
    nbd_error_from_errno(err.errno())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnfs_disk::DiskErrorKind;

    #[test]
    fn every_disk_error_kind_maps_to_a_defined_nbd_value() {
        let kinds = [
            (DiskErrorKind::InvalidRange, NBD_EINVAL),
            (DiskErrorKind::ReadOnly, NBD_EPERM),
            (DiskErrorKind::TooLarge, NBD_EOVERFLOW),
            (DiskErrorKind::Io, NBD_EIO),
            (DiskErrorKind::NoSpace, NBD_ENOSPC),
            (DiskErrorKind::NotSupported, NBD_ENOTSUP),
            (DiskErrorKind::Shutdown, NBD_ESHUTDOWN),
        ];
        for (kind, want) in kinds {
            assert_eq!(
                nbd_error_from_disk(&DiskError::new(kind, "x")),
                want,
                "{kind:?}"
            );
        }
        assert_eq!(nbd_error_from_errno(4242), NBD_EIO);
    }
}
