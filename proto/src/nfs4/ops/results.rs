//! Results.

use crate::nfs4::types::*;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrResult};

/// A result union that carries a body only on NFS4_OK, on both channels.
///
/// `Err` should never hold [`NfsStat::OK`] (the decoder cannot produce it); if one is built
/// anyway, it reads, encodes and is built by [`OpResult::from_error`] as
/// NFS4ERR_SERVERFAULT rather than as a malformed NFS4_OK without a body.
pub type NfsRes<T> = Result<T, NfsStat>;

/// The status of an [`NfsRes`] (NFS4ERR_SERVERFAULT for `Err(NFS4_OK)`).
fn res_status<T>(r: &NfsRes<T>) -> NfsStat {
    match r {
        Ok(_) => NfsStat::OK,
        Err(s) if s.is_ok() => NfsStat::SERVERFAULT,
        Err(s) => *s,
    }
}

impl<T: XdrEncode> XdrEncode for Result<T, NfsStat> {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            Ok(v) => {
                enc.put_u32(NfsStat::OK.0);
                v.encode(enc);
            }
            Err(_) => res_status(self).encode(enc),
        }
    }
}

impl<T: XdrDecode> XdrDecode for Result<T, NfsStat> {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        let status = NfsStat::decode(dec)?;
        if status.is_ok() {
            Ok(Ok(T::decode(dec)?))
        } else {
            Ok(Err(status))
        }
    }
}

/// What every operation result can do.
pub trait OpResult: Sized {
    /// The result for a failure with `status` (which must not be NFS4_OK).
    fn from_error(status: NfsStat) -> Self;
    /// The status of the result.
    fn status(&self) -> NfsStat;
}

impl<T> OpResult for Result<T, NfsStat> {
    fn from_error(status: NfsStat) -> Self {
        Err(if status.is_ok() {
            NfsStat::SERVERFAULT
        } else {
            status
        })
    }
    fn status(&self) -> NfsStat {
        res_status(self)
    }
}

impl OpResult for NfsStat {
    fn from_error(status: NfsStat) -> Self {
        status
    }
    fn status(&self) -> NfsStat {
        *self
    }
}
