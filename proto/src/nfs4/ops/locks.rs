//! Locks.

use super::*;
use crate::nfs4::macros::{xdr_status_union, xdr_struct, xdr_union};
use crate::nfs4::types::*;

xdr_struct! {
    /// open_to_lock_owner4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct OpenToLockOwner {
        /// open_seqid.
        pub open_seqid: u32,
        /// open_stateid.
        pub open_stateid: Stateid,
        /// lock_seqid.
        pub lock_seqid: u32,
        /// lock_owner.
        pub lock_owner: StateOwner,
    }
}

xdr_struct! {
    /// exist_lock_owner4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ExistLockOwner {
        /// lock_stateid.
        pub lock_stateid: Stateid,
        /// lock_seqid.
        pub lock_seqid: u32,
    }
}

xdr_union! {
    /// locker4 (switch on new_lock_owner).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Locker: "locker4" {
        /// FALSE: an existing lock owner.
        Exist(ExistLockOwner) = 0,
        /// TRUE: a new lock owner derived from an open.
        New(OpenToLockOwner) = 1,
    }
}

xdr_struct! {
    /// LOCK4args.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LockArgs {
        /// locktype.
        pub locktype: LockType,
        /// reclaim.
        pub reclaim: bool,
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
        /// locker.
        pub locker: Locker,
    }
}

xdr_struct! {
    /// LOCK4denied.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LockDenied {
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
        /// locktype.
        pub locktype: LockType,
        /// owner.
        pub owner: StateOwner,
    }
}

xdr_status_union! {
    /// LOCK4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LockRes {
        /// NFS4_OK with lock_stateid.
        Ok(Stateid),
        /// NFS4ERR_DENIED with the conflicting lock.
        Denied(LockDenied) = DENIED,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_status_union! {
    /// LOCKT4res.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum LocktRes {
        /// NFS4_OK: no conflict.
        Ok,
        /// NFS4ERR_DENIED with the conflicting lock.
        Denied(LockDenied) = DENIED,
        /// Any other error.
        Error(NfsStat),
    }
}

xdr_struct! {
    /// LOCKT4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct LocktArgs {
        /// locktype.
        pub locktype: LockType,
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
        /// owner.
        pub owner: StateOwner,
    }
}

xdr_struct! {
    /// LOCKU4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct LockuArgs {
        /// locktype.
        pub locktype: LockType,
        /// seqid.
        pub seqid: u32,
        /// lock_stateid.
        pub lock_stateid: Stateid,
        /// offset.
        pub offset: u64,
        /// length.
        pub length: u64,
    }
}
