//! The client's error type.

use pnfs_proto::nfs4::NfsStat;
use pnfs_proto::xdr::XdrError;
use thiserror::Error;

/// Everything the NFSv4.1 client can fail with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("connect to {addr}: {detail}")]
    Connect {
        /// Server address.
        addr: String,
        /// The OS error.
        detail: String,
    },
    /// The connection broke (or was closed) before the reply arrived.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// No reply within the per-call timeout.
    #[error("RPC call timed out after {timeout_ms} ms")]
    Timeout {
        /// The timeout that expired.
        timeout_ms: u64,
    },
    /// The server rejected the RPC itself (not an NFS status).
    #[error("RPC error: {0}")]
    Rpc(String),
    /// A reply or callback did not decode.
    #[error("malformed message: {0}")]
    Xdr(#[from] XdrError),
    /// An NFS operation failed with a status.
    #[error("{op} failed: {status} ({name})", name = stat_name(*status))]
    Nfs {
        /// The operation.
        op: &'static str,
        /// Its status.
        status: NfsStat,
    },
    /// The server broke a protocol rule (wrong op in a reply, bad session id, …).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Recovery did not succeed within the configured bound.
    #[error("gave up after {elapsed_ms} ms of recovery: {last}")]
    RecoveryTimeout {
        /// How long we tried.
        elapsed_ms: u64,
        /// The last error seen.
        last: String,
    },
    /// A request was invalid before anything was sent (too large, bad name, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The client was shut down.
    #[error("client is shut down")]
    Shutdown,
}

impl ClientError {
    /// The NFS status, when this is an NFS error.
    pub fn nfs_status(&self) -> Option<NfsStat> {
        match self {
            Self::Nfs { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for errors of the transport (the request may be retried on a new connection).
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::ConnectionLost(_) | Self::Timeout { .. })
    }
}

/// A short name for the statuses that matter in logs.
pub fn stat_name(s: NfsStat) -> &'static str {
    match s {
        NfsStat::OK => "OK",
        NfsStat::NOENT => "NOENT",
        NfsStat::IO => "IO",
        NfsStat::ACCESS => "ACCESS",
        NfsStat::EXIST => "EXIST",
        NfsStat::INVAL => "INVAL",
        NfsStat::NOSPC => "NOSPC",
        NfsStat::STALE => "STALE",
        NfsStat::NOTSUPP => "NOTSUPP",
        NfsStat::SERVERFAULT => "SERVERFAULT",
        NfsStat::DELAY => "DELAY",
        NfsStat::EXPIRED => "EXPIRED",
        NfsStat::GRACE => "GRACE",
        NfsStat::STALE_CLIENTID => "STALE_CLIENTID",
        NfsStat::STALE_STATEID => "STALE_STATEID",
        NfsStat::OLD_STATEID => "OLD_STATEID",
        NfsStat::BAD_STATEID => "BAD_STATEID",
        NfsStat::NO_GRACE => "NO_GRACE",
        NfsStat::RECLAIM_BAD => "RECLAIM_BAD",
        NfsStat::BADXDR => "BADXDR",
        NfsStat::BADSESSION => "BADSESSION",
        NfsStat::DEADSESSION => "DEADSESSION",
        NfsStat::BADSLOT => "BADSLOT",
        NfsStat::SEQ_MISORDERED => "SEQ_MISORDERED",
        NfsStat::LAYOUTTRYLATER => "LAYOUTTRYLATER",
        NfsStat::LAYOUTUNAVAILABLE => "LAYOUTUNAVAILABLE",
        NfsStat::NOMATCHING_LAYOUT => "NOMATCHING_LAYOUT",
        NfsStat::RECALLCONFLICT => "RECALLCONFLICT",
        NfsStat::BADLAYOUT => "BADLAYOUT",
        NfsStat::UNKNOWN_LAYOUTTYPE => "UNKNOWN_LAYOUTTYPE",
        NfsStat::RETRY_UNCACHED_REP => "RETRY_UNCACHED_REP",
        NfsStat::COMPLETE_ALREADY => "COMPLETE_ALREADY",
        NfsStat::CONN_NOT_BOUND_TO_SESSION => "CONN_NOT_BOUND_TO_SESSION",
        NfsStat::CLID_INUSE => "CLID_INUSE",
        NfsStat::TOOSMALL => "TOOSMALL",
        NfsStat::ADMIN_REVOKED => "ADMIN_REVOKED",
        NfsStat::OP_ILLEGAL => "OP_ILLEGAL",
        NfsStat::WRONG_CRED => "WRONG_CRED",
        _ => "?",
    }
}
