//! The boundary between the pNFS layer ([`crate::pnfs`]) and the NFSv4.1 client
//! ([`crate::client`]).
//!
//! The pNFS layer calls the MDS only through [`MetadataServer`]; the client delivers callbacks
//! to the pNFS layer only through [`CallbackSink`]. This keeps each side testable on its own
//! (with fault layers) while the acceptance tests run both against real servers.
//!
//! Owned by the pNFS layer; the client implements [`MetadataServer`] and calls [`CallbackSink`].
//!
//! # Shape
//! - [`MetadataServer`] methods are `async` in the form `fn …(&self, …) -> impl Future<Output =
//!   MdsResult<T>> + Send`. The pNFS layer is generic over `M: MetadataServer` (no `dyn`), so no
//!   boxing is needed on the hot path.
//! - [`CallbackSink`] is dyn-compatible (the client stores a `Weak<dyn CallbackSink>`): its
//!   methods answer synchronously (they must not wait on the fore channel: a callback answer
//!   must never wait on a fore-channel reply that may queue behind it). The only asynchronous
//!   one, [`CallbackSink::server_restarted`], returns a boxed future.
//! - Times are `tokio::time::Instant` so tests can drive them with `tokio::time::pause()`.
//!
//! # Retry responsibility
//! | condition | who handles it | how |
//! | --- | --- | --- |
//! | connection loss, BADSESSION, DEADSESSION, SEQ_MISORDERED, BADSLOT, STALE_CLIENTID, CB_PATH_DOWN flags | client | recover the session/client and resend, transparently |
//! | NFS4ERR_DELAY (any op) | client | resend with backoff, bounded by its stall limit |
//! | NFS4ERR_GRACE on non-reclaim ops | client | stall until the grace period ends, bounded by its stall limit |
//! | server reboot (STALE_CLIENTID after restart) | client, then pNFS | client reclaims opens (CLAIM_PREVIOUS), calls [`CallbackSink::server_restarted`] and awaits it (pNFS sends reclaim LAYOUTCOMMITs), then RECLAIM_COMPLETE |
//! | NFS4ERR_LAYOUTUNAVAILABLE, BADLAYOUT, UNKNOWN_LAYOUTTYPE | pNFS | fall back to MDS READ/WRITE for the range |
//! | NFS4ERR_LAYOUTTRYLATER, RECALLCONFLICT | pNFS | bounded retry with backoff, then MDS I/O |
//! | NFS4ERR_BAD_STATEID, OLD_STATEID, EXPIRED, ADMIN_REVOKED on layout ops | pNFS | forget the layout stateid, re-seed from the open stateid, retry once |
//! | NFS4ERR_NOMATCHING_LAYOUT on LAYOUTRETURN/COMMIT | pNFS | treat as already returned |
//! | anything else | pNFS | surface as an I/O error (after trying the MDS data path where that makes sense) |
//!
//! The client bounds every call: if it cannot get an answer within its configured stall limit
//! (which must cover a server restart plus its grace period) it returns
//! [`MdsErrorKind::Timeout`]; during shutdown it returns [`MdsErrorKind::Shutdown`]. The pNFS
//! layer never retries `Transport`/`Timeout` on its own except where documented (it maps them
//! to an I/O error for the block request).
//!
//! # Open state
//! Files stay OPEN for the life of a device. The client owns the open stateid: after reclaim or
//! re-open its value may change, so the pNFS layer never caches it; it names the open with
//! [`OpenFile`] and asks for "the current open stateid" with [`StateidArg::Open`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use pnfs_proto::nfs4::{
    DeviceId, FileHandle, LayoutIoMode, LayoutType, NfsStat, NfsTime, Stateid, Verifier,
};
use thiserror::Error;
use tokio::sync::watch;
use tokio::time::Instant;

/// The kind of an [`MdsError`]: small and matchable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MdsErrorKind {
    /// The operation's own status was not NFS4_OK (after the client's own retries, see the
    /// module table). Layout-level statuses (LAYOUTTRYLATER, BAD_STATEID, …) arrive here.
    Status(NfsStat),
    /// The connection failed and could not be re-established within the stall limit.
    Transport,
    /// No answer within the client's stall limit (includes a stall in recovery or grace).
    Timeout,
    /// The reply could not be decoded (malformed or over a limit).
    Protocol,
    /// The client is shutting down.
    Shutdown,
    /// The server or the client does not support this operation (e.g. DEALLOCATE on a
    /// 4.1-only server); no request was sent or the server said NOTSUPP / OP_ILLEGAL.
    NotSupported,
}

/// The single error type of the MDS boundary.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{op}: {kind:?}: {message}")]
pub struct MdsError {
    /// What kind of failure.
    pub kind: MdsErrorKind,
    /// The operation that failed ("LAYOUTGET", "OPEN", …).
    pub op: &'static str,
    /// Human-readable detail for logs.
    pub message: String,
}

impl MdsError {
    /// A new error.
    pub fn new(kind: MdsErrorKind, op: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            op,
            message: message.into(),
        }
    }

    /// An error carrying an NFS status.
    pub fn status(op: &'static str, status: NfsStat) -> Self {
        Self::new(MdsErrorKind::Status(status), op, status.to_string())
    }

    /// The NFS status, if the error carries one.
    pub fn nfs_status(&self) -> Option<NfsStat> {
        match self.kind {
            MdsErrorKind::Status(s) => Some(s),
            _ => None,
        }
    }

    /// True for statuses the caller may retry after a pause (DELAY, GRACE, LAYOUTTRYLATER,
    /// RECALLCONFLICT). The client already retried DELAY/GRACE up to its limit.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.nfs_status(),
            Some(
                NfsStat::DELAY | NfsStat::GRACE | NfsStat::LAYOUTTRYLATER | NfsStat::RECALLCONFLICT
            )
        )
    }
}

/// Result of a [`MetadataServer`] call.
pub type MdsResult<T> = Result<T, MdsError>;

/// Identifies one open of one file within the client (chosen by the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenId(pub u64);

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenMode {
    /// Open with OPEN4_SHARE_ACCESS_READ only (else BOTH), deny NONE.
    pub read_only: bool,
    /// Create the file (UNCHECKED, mode 0600) if missing, with this size if it is new.
    pub create_size_bytes: Option<u64>,
}

/// What [`MetadataServer::open`] returns: the open, with attributes the pNFS layer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    /// The client's name for this open (pass it back in every call).
    pub id: OpenId,
    /// The path as given to `open`.
    pub path: String,
    /// The current file handle.
    pub fh: FileHandle,
    /// The open stateid at open time (informational: always use [`StateidArg::Open`]).
    pub open_stateid: Stateid,
    /// FATTR4_SIZE.
    pub size_bytes: u64,
    /// FATTR4_FSID (major, minor), to match FSID recalls.
    pub fsid: (u64, u64),
    /// FATTR4_FS_LAYOUT_TYPES (empty when the server offers no pNFS).
    pub layout_types: Vec<LayoutType>,
    /// FATTR4_LAYOUT_BLKSIZE (preferred layout I/O size), 0 if not returned.
    pub layout_blksize_bytes: u32,
    /// FATTR4_LAYOUT_ALIGNMENT, 0 if not returned.
    pub layout_alignment_bytes: u32,
}

/// Which stateid to send in a layout operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateidArg {
    /// The open's current open stateid (the client fills it in at send time).
    Open,
    /// This exact stateid (a layout stateid the pNFS layer tracks).
    Given(Stateid),
}

/// LAYOUTGET arguments (besides the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutGetArgs {
    /// loga_layout_type.
    pub layout_type: LayoutType,
    /// loga_iomode (READ or RW).
    pub iomode: LayoutIoMode,
    /// loga_offset.
    pub offset_bytes: u64,
    /// loga_length (`u64::MAX` = to EOF).
    pub length_bytes: u64,
    /// loga_minlength.
    pub min_length_bytes: u64,
    /// loga_stateid: the open stateid for the first LAYOUTGET (or after a reset), else the
    /// current layout stateid.
    pub stateid: StateidArg,
    /// loga_maxcount: the largest reply body the pNFS layer wants.
    pub max_reply_bytes: u32,
    /// loga_signal_layout_avail.
    pub signal_layout_avail: bool,
}

/// One layout4 of a LAYOUTGET reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutSegment {
    /// lo_offset.
    pub offset_bytes: u64,
    /// lo_length (`u64::MAX` = to EOF).
    pub length_bytes: u64,
    /// lo_iomode.
    pub iomode: LayoutIoMode,
    /// loc_type.
    pub layout_type: LayoutType,
    /// loc_body, undecoded (the pNFS layer parses it with `pnfs_proto::layout`).
    pub body: Bytes,
}

/// A successful LAYOUTGET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutGetResult {
    /// logr_return_on_close.
    pub return_on_close: bool,
    /// logr_stateid: the new layout stateid.
    pub stateid: Stateid,
    /// logr_layout.
    pub segments: Vec<LayoutSegment>,
}

/// LAYOUTCOMMIT arguments (besides the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutCommitArgs {
    /// loca_offset.
    pub offset_bytes: u64,
    /// loca_length.
    pub length_bytes: u64,
    /// loca_reclaim: true only from [`CallbackSink::server_restarted`] during grace.
    pub reclaim: bool,
    /// loca_stateid: the layout stateid ([`StateidArg::Open`] for reclaim after a restart).
    pub stateid: StateidArg,
    /// loca_last_write_offset (newoffset4): the last byte written, if any.
    pub last_write_offset_bytes: Option<u64>,
    /// loca_time_modify (newtime4), if the pNFS layer sets it.
    pub time_modify: Option<NfsTime>,
    /// loca_layoutupdate: type and body (for block layouts: the encoded extent list).
    pub layout_type: LayoutType,
    /// loca_layoutupdate body, already encoded.
    pub update_body: Bytes,
}

/// A successful LAYOUTCOMMIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutCommitResult {
    /// locr_newsize (ns_sizechanged): the new file size, if the server changed it.
    pub new_size_bytes: Option<u64>,
}

/// What a LAYOUTRETURN returns: proto's `Layoutreturn` (layoutreturn4) in the vocabulary of
/// this boundary, kept on purpose. Every type the pNFS layer hands to [`MetadataServer`] names
/// its units (`offset_bytes`) and carries bodies as [`Bytes`] shared with the layout cache
/// without a copy, and the FILE target has no file handle of its own (the [`OpenFile`] names
/// the file). The client turns it into `Layoutreturn` in one place
/// (`client/mds_impl.rs`, `layout_return`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutReturnTarget {
    /// LAYOUTRETURN4_FILE for the open's file.
    File {
        /// lrf_offset.
        offset_bytes: u64,
        /// lrf_length (`u64::MAX` = to EOF).
        length_bytes: u64,
        /// lrf_stateid: the current layout stateid.
        stateid: Stateid,
        /// lrf_body (layout-type specific; empty for block layouts).
        body: Bytes,
    },
    /// LAYOUTRETURN4_FSID of the open's file system.
    Fsid,
    /// LAYOUTRETURN4_ALL.
    All,
}

/// LAYOUTRETURN arguments (besides the file, which supplies the current fh).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutReturnArgs {
    /// lora_reclaim.
    pub reclaim: bool,
    /// lora_layout_type.
    pub layout_type: LayoutType,
    /// lora_iomode.
    pub iomode: LayoutIoMode,
    /// lora_layoutreturn.
    pub target: LayoutReturnTarget,
}

/// A successful LAYOUTRETURN: lrs_stateid when present (layout state remains).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutReturnResult {
    /// The new layout stateid if the server still holds layout state for the file.
    pub stateid: Option<Stateid>,
}

/// GETDEVICEINFO notification bit: NOTIFY_DEVICEID4_CHANGE (1 << 1).
pub const NOTIFY_DEVICEID4_CHANGE_MASK: u32 = 1 << 1;
/// GETDEVICEINFO notification bit: NOTIFY_DEVICEID4_DELETE (1 << 2).
pub const NOTIFY_DEVICEID4_DELETE_MASK: u32 = 1 << 2;

/// A successful GETDEVICEINFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// da_layout_type.
    pub layout_type: LayoutType,
    /// da_addr_body, undecoded.
    pub addr_body: Bytes,
    /// gdir_notification bitmap word 0 (which notifications the server will send).
    pub notifications: u32,
}

/// stable_how4 for MDS WRITE: the protocol's own type.
pub use pnfs_proto::nfs4::StableHow;

/// A successful MDS READ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The data (may be short at EOF).
    pub data: Bytes,
    /// eof.
    pub eof: bool,
}

/// A successful MDS WRITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteResult {
    /// count (may be short: the caller writes the rest).
    pub count_bytes: u32,
    /// committed.
    pub committed: StableHow,
    /// writeverf.
    pub verifier: Verifier,
}

/// Lease facts for fencing (docs/requirements.md B7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseStatus {
    /// When the request of the latest SEQUENCE that got a successful reply was SENT (the
    /// server renewed the lease no earlier than that). `None` before the first one.
    pub last_renewal_sent: Option<Instant>,
    /// The server's lease time (FATTR4_LEASE_TIME).
    pub lease: Duration,
    /// Increases when the client ID changes (new EXCHANGE_ID: restart or state loss). The pNFS
    /// layer drops layouts whose epoch is older.
    pub client_epoch: u64,
}

impl LeaseStatus {
    /// The instant after which the lease may have expired on the server.
    pub fn expires_at(&self) -> Option<Instant> {
        self.last_renewal_sent.map(|t| t + self.lease)
    }
}

/// The MDS as the pNFS layer sees it. Implemented by the NFSv4.1 client (and by in-crate test
/// doubles used only for exact-timing logic tests).
///
/// Every method takes the [`OpenFile`] it concerns (except `open` and `get_device_info`); the
/// client uses `open.id` to find its open state and current file handle. See the module docs
/// for which errors the client retries itself.
pub trait MetadataServer: Send + Sync + 'static {
    /// Registers the sink for callbacks (CB_LAYOUTRECALL, …) on this client ID. Called once by
    /// the pNFS layer before its first LAYOUTGET. Until then the client answers
    /// CB_LAYOUTRECALL with NOMATCHING_LAYOUT (no layouts can exist) and ignores the rest.
    fn set_callback_sink(&self, sink: Weak<dyn CallbackSink>);

    /// Opens (PUTROOTFH, LOOKUP each component, OPEN CLAIM_NULL, GETFH, GETATTR) the file at
    /// `path` ("/" separated, from the server's pseudo-root). Errors: Status(NOENT, ACCESS,
    /// ISDIR, …). The client keeps the open across session recovery and reclaims it after a
    /// server restart.
    fn open(&self, path: &str, mode: OpenMode) -> impl Future<Output = MdsResult<OpenFile>> + Send;

    /// CLOSE. The pNFS layer returns its layouts before calling this.
    fn close(&self, open: &OpenFile) -> impl Future<Output = MdsResult<()>> + Send;

    /// GETATTR size.
    fn get_size(&self, open: &OpenFile) -> impl Future<Output = MdsResult<u64>> + Send;

    /// SETATTR size (with the open stateid).
    fn set_size(
        &self,
        open: &OpenFile,
        size_bytes: u64,
    ) -> impl Future<Output = MdsResult<()>> + Send;

    /// LAYOUTGET. Layout-level statuses come back as `Status(..)` untouched (see the table).
    fn layout_get(
        &self,
        open: &OpenFile,
        args: LayoutGetArgs,
    ) -> impl Future<Output = MdsResult<LayoutGetResult>> + Send;

    /// LAYOUTCOMMIT. A `reclaim = true` commit must be let through while the client is in
    /// reboot recovery (it is sent from [`CallbackSink::server_restarted`]).
    fn layout_commit(
        &self,
        open: &OpenFile,
        args: LayoutCommitArgs,
    ) -> impl Future<Output = MdsResult<LayoutCommitResult>> + Send;

    /// LAYOUTRETURN.
    fn layout_return(
        &self,
        open: &OpenFile,
        args: LayoutReturnArgs,
    ) -> impl Future<Output = MdsResult<LayoutReturnResult>> + Send;

    /// GETDEVICEINFO for `device_id`, asking for the `notify_mask` notifications. The client
    /// handles NFS4ERR_TOOSMALL itself (retries once with the server's gdir_mincount, bounded
    /// by its reply size limit).
    fn get_device_info(
        &self,
        layout_type: LayoutType,
        device_id: DeviceId,
        notify_mask: u32,
    ) -> impl Future<Output = MdsResult<DeviceInfo>> + Send;

    /// MDS READ with the open stateid (fallback path). May return fewer bytes than asked at
    /// EOF; never more.
    fn read(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        length_bytes: u32,
    ) -> impl Future<Output = MdsResult<ReadResult>> + Send;

    /// MDS WRITE with the open stateid (fallback path). May be short (the caller loops). If
    /// the verifier changes between WRITE and COMMIT the caller resends its unstable writes.
    fn write(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        data: Bytes,
        stable: StableHow,
    ) -> impl Future<Output = MdsResult<WriteResult>> + Send;

    /// MDS COMMIT of a range (`length_bytes` 0 = to EOF); returns the write verifier.
    fn commit(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> impl Future<Output = MdsResult<Verifier>> + Send;

    /// DEALLOCATE (NFSv4.2) of a range, with the open stateid. Returns `NotSupported` when
    /// the session is 4.1 or the server does not support it; the pNFS layer then writes zeros.
    fn deallocate(
        &self,
        open: &OpenFile,
        offset_bytes: u64,
        length_bytes: u64,
    ) -> impl Future<Output = MdsResult<()>> + Send;

    /// The lease facts for fencing, updated after every successful SEQUENCE (explicit lease
    /// renewal or any other compound). The client must keep renewing (an idle SEQUENCE at
    /// least every lease/3) whether or not the pNFS layer is busy, and during recovery.
    fn lease_watch(&self) -> watch::Receiver<LeaseStatus>;

    /// The current lease facts (a snapshot of [`MetadataServer::lease_watch`]).
    fn lease_status(&self) -> LeaseStatus {
        *self.lease_watch().borrow()
    }
}

/// What CB_LAYOUTRECALL recalls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecallTarget {
    /// LAYOUTRECALL4_FILE.
    File {
        /// lor_fh.
        fh: FileHandle,
        /// lor_offset.
        offset_bytes: u64,
        /// lor_length (`u64::MAX` = to EOF).
        length_bytes: u64,
        /// lor_stateid.
        stateid: Stateid,
    },
    /// LAYOUTRECALL4_FSID.
    Fsid {
        /// fsid4.major.
        major: u64,
        /// fsid4.minor.
        minor: u64,
    },
    /// LAYOUTRECALL4_ALL.
    All,
}

/// One CB_LAYOUTRECALL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRecall {
    /// clora_type.
    pub layout_type: LayoutType,
    /// clora_iomode.
    pub iomode: LayoutIoMode,
    /// clora_changed.
    pub changed: bool,
    /// clora_recall.
    pub target: RecallTarget,
}

/// RCA4_TYPE_MASK_BLK_LAYOUT (RFC 5663): bit 4 of the CB_RECALL_ANY type mask; the pNFS layer
/// honours it for both block and SCSI layouts.
pub const RCA4_TYPE_MASK_BLK_LAYOUT_BIT: u32 = 4;

/// One CB_NOTIFY_DEVICEID entry: the protocol's own type.
pub use pnfs_proto::nfs4::cb::DeviceNotification;

/// A boxed future, for the one asynchronous callback.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Callbacks from the client to the pNFS layer. Implemented by the pNFS layer; the client keeps
/// a `Weak` to it (see [`MetadataServer::set_callback_sink`]).
///
/// The synchronous methods return at once (no fore-channel calls inside); work they start
/// (LAYOUTCOMMIT, LAYOUTRETURN) runs in tasks the pNFS layer spawns on the current Tokio
/// runtime, which the client must be running on.
pub trait CallbackSink: Send + Sync {
    /// CB_LAYOUTRECALL. Returns the status to answer: `OK` means "the pNFS layer will return
    /// the layout" (it then stops new direct I/O on the range, drains, commits and sends
    /// LAYOUTRETURN asynchronously); `NOMATCHING_LAYOUT` when it holds nothing matching (no
    /// LAYOUTRETURN follows); `DELAY` when a LAYOUTGET for the file is in flight and the
    /// recall's stateid seqid is ahead of what the layer has seen (RFC 8881 §12.5.5.2.1).
    fn layout_recall(&self, recall: LayoutRecall) -> NfsStat;

    /// CB_RECALL_ANY: `type_mask` as on the wire (bit 4 = block/SCSI layouts), keep at most
    /// `objects_to_keep` layouts. Returns the status to answer (OK).
    fn recall_any(&self, type_mask: u32, objects_to_keep: u32) -> NfsStat;

    /// CB_NOTIFY_DEVICEID. Returns the status to answer (OK).
    fn notify_deviceid(&self, notifications: &[DeviceNotification]) -> NfsStat;

    /// CB_RECALLABLE_OBJ_AVAIL (sent when the layer asked `signal_layout_avail`). Default: OK.
    fn recallable_obj_avail(&self, _type_mask: u32) -> NfsStat {
        NfsStat::OK
    }

    /// The server restarted; the client has a new client ID and session, has reclaimed every
    /// open (CLAIM_PREVIOUS), and is inside the grace period. The pNFS layer forgets all layout
    /// stateids, sends `reclaim = true` LAYOUTCOMMITs for writes not yet committed, and
    /// resolves the future; the client awaits it (bounded by the grace period) before
    /// RECLAIM_COMPLETE.
    fn server_restarted(&self) -> BoxFuture<()>;

    /// The client's state was lost without a server restart (lease expired, state revoked:
    /// SEQ4_STATUS_EXPIRED_ALL_STATE_REVOKED, ADMIN/RECALLABLE_STATE_REVOKED, or
    /// STALE_CLIENTID outside grace). The client re-opens the files (new open stateids); the
    /// pNFS layer drops every layout without returning it.
    fn state_lost(&self);

    /// The layout stateids the pNFS layer holds now: after SEQ4_STATUS_RECALLABLE_STATE_REVOKED
    /// the client tests them (TEST_STATEID) to find the revoked ones. Default: none.
    fn layout_stateids(&self) -> Vec<Stateid> {
        Vec::new()
    }

    /// The server revoked these layouts (TEST_STATEID said so and the client has freed them
    /// with FREE_STATEID): drop them without returning; every other layout stays. Default:
    /// [`CallbackSink::state_lost`].
    fn layouts_revoked(&self, revoked: &[Stateid]) {
        let _ = revoked;
        self.state_lost();
    }
}
