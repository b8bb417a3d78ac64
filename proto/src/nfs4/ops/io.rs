//! I/O.

use super::*;
use crate::nfs4::macros::xdr_struct;
use crate::nfs4::types::*;

xdr_struct! {
    /// READ4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ReadArgs {
        /// stateid.
        pub stateid: Stateid,
        /// offset.
        pub offset: u64,
        /// count.
        pub count: u32,
    }
}

xdr_struct! {
    /// READ4resok.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ReadResOk {
        /// eof.
        pub eof: bool,
        /// data, at most [`NFS4_MAX_IO_BYTES`].
        pub data: Vec<u8> => opaque(NFS4_MAX_IO_BYTES),
    }
}

xdr_struct! {
    /// WRITE4args.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct WriteArgs {
        /// stateid.
        pub stateid: Stateid,
        /// offset.
        pub offset: u64,
        /// stable.
        pub stable: StableHow,
        /// data, at most [`NFS4_MAX_IO_BYTES`].
        pub data: Vec<u8> => opaque(NFS4_MAX_IO_BYTES),
    }
}

xdr_struct! {
    /// WRITE4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct WriteResOk {
        /// count.
        pub count: u32,
        /// committed.
        pub committed: StableHow,
        /// writeverf.
        pub writeverf: Verifier,
    }
}

xdr_struct! {
    /// COMMIT4args.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CommitArgs {
        /// offset.
        pub offset: u64,
        /// count (0 = to the end of file).
        pub count: u32,
    }
}

xdr_struct! {
    /// COMMIT4resok.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct CommitResOk {
        /// writeverf.
        pub writeverf: Verifier,
    }
}
