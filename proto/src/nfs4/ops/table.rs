//! nfs_argop4 / nfs_resop4.

use super::*;
use crate::nfs4::macros::op_table;
use crate::nfs4::types::*;

op_table! {
    args:
        /// nfs_argop4: one operation of a COMPOUND request.
        NfsArgOp,
    results:
        /// nfs_resop4: the result of one operation.
        NfsResOp,
    illegal: OP_ILLEGAL,
    result_what: "nfs_resop4",
    ops: {
    /// ACCESS.
    Access = OP_ACCESS (AccessArgs) -> NfsRes<AccessResOk>;
    /// CLOSE (result: the closed open stateid).
    Close = OP_CLOSE (CloseArgs) -> NfsRes<Stateid>;
    /// COMMIT.
    Commit = OP_COMMIT (CommitArgs) -> NfsRes<CommitResOk>;
    /// CREATE.
    Create = OP_CREATE (CreateArgs) -> NfsRes<CreateResOk>;
    /// DELEGPURGE (argument: clientid).
    Delegpurge = OP_DELEGPURGE (ClientId) -> NfsStat;
    /// DELEGRETURN (argument: the delegation stateid).
    Delegreturn = OP_DELEGRETURN (Stateid) -> NfsStat;
    /// GETATTR.
    Getattr = OP_GETATTR (GetattrArgs) -> NfsRes<GetattrResOk>;
    /// GETFH.
    Getfh = OP_GETFH () -> NfsRes<GetfhResOk>;
    /// LINK.
    Link = OP_LINK (LinkArgs) -> NfsRes<CinfoResOk>;
    /// LOCK.
    Lock = OP_LOCK (LockArgs) -> LockRes;
    /// LOCKT.
    Lockt = OP_LOCKT (LocktArgs) -> LocktRes;
    /// LOCKU (result: the lock stateid).
    Locku = OP_LOCKU (LockuArgs) -> NfsRes<Stateid>;
    /// LOOKUP.
    Lookup = OP_LOOKUP (LookupArgs) -> NfsStat;
    /// LOOKUPP.
    Lookupp = OP_LOOKUPP () -> NfsStat;
    /// NVERIFY.
    Nverify = OP_NVERIFY (VerifyArgs) -> NfsStat;
    /// OPEN.
    Open = OP_OPEN (OpenArgs) -> NfsRes<OpenResOk>;
    /// OPENATTR.
    Openattr = OP_OPENATTR (OpenattrArgs) -> NfsStat;
    /// OPEN_CONFIRM (NFSv4.0 only; result: the open stateid).
    OpenConfirm = OP_OPEN_CONFIRM (OpenConfirmArgs) -> NfsRes<Stateid>;
    /// OPEN_DOWNGRADE (result: the open stateid).
    OpenDowngrade = OP_OPEN_DOWNGRADE (OpenDowngradeArgs) -> NfsRes<Stateid>;
    /// PUTFH.
    Putfh = OP_PUTFH (FileHandle) -> NfsStat;
    /// PUTPUBFH.
    Putpubfh = OP_PUTPUBFH () -> NfsStat;
    /// PUTROOTFH.
    Putrootfh = OP_PUTROOTFH () -> NfsStat;
    /// READ.
    Read = OP_READ (ReadArgs) -> NfsRes<ReadResOk>;
    /// READDIR.
    Readdir = OP_READDIR (ReaddirArgs) -> NfsRes<ReaddirResOk>;
    /// READLINK.
    Readlink = OP_READLINK () -> NfsRes<ReadlinkResOk>;
    /// REMOVE.
    Remove = OP_REMOVE (RemoveArgs) -> NfsRes<CinfoResOk>;
    /// RENAME.
    Rename = OP_RENAME (RenameArgs) -> NfsRes<RenameResOk>;
    /// RENEW (NFSv4.0 only; argument: clientid).
    Renew = OP_RENEW (ClientId) -> NfsStat;
    /// RESTOREFH.
    Restorefh = OP_RESTOREFH () -> NfsStat;
    /// SAVEFH.
    Savefh = OP_SAVEFH () -> NfsStat;
    /// SECINFO.
    Secinfo = OP_SECINFO (SecinfoArgs) -> NfsRes<SecinfoResOk>;
    /// SETATTR.
    Setattr = OP_SETATTR (SetattrArgs) -> SetattrRes;
    /// SETCLIENTID (NFSv4.0 only).
    Setclientid = OP_SETCLIENTID (SetclientidArgs) -> SetclientidRes;
    /// SETCLIENTID_CONFIRM (NFSv4.0 only).
    SetclientidConfirm = OP_SETCLIENTID_CONFIRM (SetclientidConfirmArgs) -> NfsStat;
    /// VERIFY.
    Verify = OP_VERIFY (VerifyArgs) -> NfsStat;
    /// WRITE.
    Write = OP_WRITE (WriteArgs) -> NfsRes<WriteResOk>;
    /// RELEASE_LOCKOWNER (NFSv4.0 only; argument: the lock owner).
    ReleaseLockowner = OP_RELEASE_LOCKOWNER (StateOwner) -> NfsStat;
    /// BACKCHANNEL_CTL.
    BackchannelCtl = OP_BACKCHANNEL_CTL (BackchannelCtlArgs) -> NfsStat;
    /// BIND_CONN_TO_SESSION.
    BindConnToSession = OP_BIND_CONN_TO_SESSION (BindConnToSessionArgs) -> NfsRes<BindConnToSessionResOk>;
    /// EXCHANGE_ID.
    ExchangeId = OP_EXCHANGE_ID (ExchangeIdArgs) -> NfsRes<ExchangeIdResOk>;
    /// CREATE_SESSION.
    CreateSession = OP_CREATE_SESSION (CreateSessionArgs) -> NfsRes<CreateSessionResOk>;
    /// DESTROY_SESSION (argument: the session id).
    DestroySession = OP_DESTROY_SESSION (SessionId) -> NfsStat;
    /// FREE_STATEID (argument: the stateid).
    FreeStateid = OP_FREE_STATEID (Stateid) -> NfsStat;
    /// GET_DIR_DELEGATION.
    GetDirDelegation = OP_GET_DIR_DELEGATION (GetDirDelegationArgs) -> NfsRes<GetDirDelegationNonFatal>;
    /// GETDEVICEINFO.
    Getdeviceinfo = OP_GETDEVICEINFO (GetdeviceinfoArgs) -> GetdeviceinfoRes;
    /// GETDEVICELIST.
    Getdevicelist = OP_GETDEVICELIST (GetdevicelistArgs) -> NfsRes<GetdevicelistResOk>;
    /// LAYOUTCOMMIT.
    Layoutcommit = OP_LAYOUTCOMMIT (LayoutcommitArgs) -> NfsRes<LayoutcommitResOk>;
    /// LAYOUTGET.
    Layoutget = OP_LAYOUTGET (LayoutgetArgs) -> LayoutgetRes;
    /// LAYOUTRETURN.
    Layoutreturn = OP_LAYOUTRETURN (LayoutreturnArgs) -> NfsRes<LayoutreturnResOk>;
    /// SECINFO_NO_NAME.
    SecinfoNoName = OP_SECINFO_NO_NAME (SecinfoStyle) -> NfsRes<SecinfoResOk>;
    /// SEQUENCE.
    Sequence = OP_SEQUENCE (SequenceArgs) -> NfsRes<SequenceResOk>;
    /// SET_SSV.
    SetSsv = OP_SET_SSV (SetSsvArgs) -> NfsRes<SetSsvResOk>;
    /// TEST_STATEID.
    TestStateid = OP_TEST_STATEID (TestStateidArgs) -> NfsRes<TestStateidResOk>;
    /// WANT_DELEGATION.
    WantDelegation = OP_WANT_DELEGATION (WantDelegationArgs) -> NfsRes<OpenDelegation>;
    /// DESTROY_CLIENTID (argument: clientid).
    DestroyClientid = OP_DESTROY_CLIENTID (ClientId) -> NfsStat;
    /// RECLAIM_COMPLETE (argument: rca_one_fs).
    ReclaimComplete = OP_RECLAIM_COMPLETE (bool) -> NfsStat;
    /// ALLOCATE (4.2).
    Allocate = OP_ALLOCATE (AllocateArgs) -> NfsStat;
    /// COPY (4.2).
    Copy = OP_COPY (CopyArgs) -> CopyRes;
    /// COPY_NOTIFY (4.2).
    CopyNotify = OP_COPY_NOTIFY (CopyNotifyArgs) -> NfsRes<CopyNotifyResOk>;
    /// DEALLOCATE (4.2).
    Deallocate = OP_DEALLOCATE (AllocateArgs) -> NfsStat;
    /// IO_ADVISE (4.2).
    IoAdvise = OP_IO_ADVISE (IoAdviseArgs) -> NfsRes<IoAdviseResOk>;
    /// LAYOUTERROR (4.2).
    Layouterror = OP_LAYOUTERROR (LayouterrorArgs) -> NfsStat;
    /// LAYOUTSTATS (4.2).
    Layoutstats = OP_LAYOUTSTATS (LayoutstatsArgs) -> NfsStat;
    /// OFFLOAD_CANCEL (4.2; argument: the copy stateid).
    OffloadCancel = OP_OFFLOAD_CANCEL (Stateid) -> NfsStat;
    /// OFFLOAD_STATUS (4.2; argument: the copy stateid).
    OffloadStatus = OP_OFFLOAD_STATUS (Stateid) -> NfsRes<OffloadStatusResOk>;
    /// READ_PLUS (4.2).
    ReadPlus = OP_READ_PLUS (ReadPlusArgs) -> NfsRes<ReadPlusResOk>;
    /// SEEK (4.2).
    Seek = OP_SEEK (SeekArgs) -> NfsRes<SeekResOk>;
    /// WRITE_SAME (4.2).
    WriteSame = OP_WRITE_SAME (WriteSameArgs) -> NfsRes<WriteResponse>;
    /// CLONE (4.2).
    Clone = OP_CLONE (CloneArgs) -> NfsStat;
    }
}
