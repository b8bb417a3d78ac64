//! Small `macro_rules!` helpers that write the XDR codec of plain structs and simple unions.
//!
//! `xdr_struct!` takes a struct definition whose fields may carry a codec hint after `=>`:
//! `opaque(LIMIT)` for `Vec<u8>`, `string(LIMIT)` for `String`, `array(LIMIT)` for `Vec<T>`,
//! `option` for `Option<T>` (XDR `*T`, and also `T<1>`, which has the same encoding). Fields
//! without a hint use the type's own `XdrEncode` / `XdrDecode`. Fields are encoded in order.
//!
//! `xdr_union!` takes an enum whose variants are unit or one-field tuple variants, each with
//! its discriminant; an unknown discriminant is a decode error.
//!
//! `xdr_status_union!` takes an operation result with the RFC's three-armed shape: a body on
//! NFS4_OK, a body of its own on one error status, only the status on any other error.
//!
//! `op_table!` declares an argument enum and a result enum from one table of operations, for
//! the fore channel (COMPOUND) and the back channel (CB_COMPOUND) alike.
//!
//! Other modules of the crate can use them as `crate::nfs4::macros::xdr_struct!`.

/// Encodes one field (internal to `xdr_struct!`).
macro_rules! xdr_put {
    ($enc:ident, $v:expr) => {
        $crate::xdr::XdrEncode::encode($v, $enc)
    };
    ($enc:ident, $v:expr, opaque) => {
        $enc.put_opaque($v)
    };
    ($enc:ident, $v:expr, string) => {
        $enc.put_str($v)
    };
    ($enc:ident, $v:expr, array) => {
        $enc.put_array($v)
    };
    ($enc:ident, $v:expr, option) => {
        $enc.put_option(($v).as_ref())
    };
}

/// Decodes one field (internal to `xdr_struct!`).
macro_rules! xdr_get {
    ($dec:ident, $what:expr) => {
        $dec.get()?
    };
    ($dec:ident, $what:expr, opaque, $lim:expr) => {
        $dec.opaque($what, $lim)?.to_vec()
    };
    ($dec:ident, $what:expr, string, $lim:expr) => {
        $dec.string($what, $lim)?
    };
    ($dec:ident, $what:expr, array, $lim:expr) => {
        $dec.array($what, $lim)?
    };
    ($dec:ident, $what:expr, option) => {
        $dec.option()?
    };
}

/// Defines a struct and its XDR codec; see the module documentation.
macro_rules! xdr_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident : $ty:ty $(=> $codec:ident $(($limit:expr))?)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::xdr::XdrEncode for $name {
            #[allow(unused_variables)]
            fn encode(&self, enc: &mut $crate::xdr::Encoder) {
                $( $crate::nfs4::macros::xdr_put!(enc, &self.$field $(, $codec)?); )*
            }
        }

        impl $crate::xdr::XdrDecode for $name {
            #[allow(unused_variables)]
            fn decode(dec: &mut $crate::xdr::Decoder<'_>) -> $crate::xdr::XdrResult<Self> {
                Ok(Self {
                    $(
                        $field: $crate::nfs4::macros::xdr_get!(
                            dec,
                            concat!(stringify!($name), ".", stringify!($field))
                            $(, $codec $(, $limit)?)?
                        ),
                    )*
                })
            }
        }
    };
}

/// Defines an enum for an XDR union (or enum) and its codec; see the module documentation.
macro_rules! xdr_union {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $what:literal {
            $(
                $(#[$vmeta:meta])*
                $variant:ident $(($ty:ty))? = $disc:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$vmeta])* $variant $(($ty))?, )*
        }

        impl $name {
            /// The discriminant on the wire.
            pub fn discriminant(&self) -> u32 {
                match self {
                    $( $crate::nfs4::macros::xdr_union!(@pat $variant _v $($ty)?) => $disc, )*
                }
            }
        }

        impl $crate::xdr::XdrEncode for $name {
            fn encode(&self, enc: &mut $crate::xdr::Encoder) {
                enc.put_u32(self.discriminant());
                match self {
                    $(
                        $crate::nfs4::macros::xdr_union!(@pat $variant v $($ty)?) => {
                            $crate::nfs4::macros::xdr_union!(@put enc v $($ty)?)
                        }
                    )*
                }
            }
        }

        impl $crate::xdr::XdrDecode for $name {
            fn decode(dec: &mut $crate::xdr::Decoder<'_>) -> $crate::xdr::XdrResult<Self> {
                let value = dec.u32()?;
                $(
                    if value == $disc {
                        return Ok($crate::nfs4::macros::xdr_union!(@get dec $variant $($ty)?));
                    }
                )*
                Err($crate::xdr::XdrError::BadEnum { what: $what, value })
            }
        }
    };
    (@pat $variant:ident $v:ident $ty:ty) => { Self::$variant($v) };
    (@pat $variant:ident $v:ident) => { Self::$variant };
    (@put $enc:ident $v:ident $ty:ty) => { $crate::xdr::XdrEncode::encode($v, $enc) };
    (@put $enc:ident $v:ident) => { () };
    (@get $dec:ident $variant:ident $ty:ty) => { Self::$variant($dec.get::<$ty>()?) };
    (@get $dec:ident $variant:ident) => { Self::$variant };
}

/// Defines an operation result that carries a body on NFS4_OK, a body of its own on one
/// error status and only the status on any other error (LOCK4res, LAYOUTGET4res, …), with its
/// codec and [`OpResult`](crate::nfs4::OpResult). The error body is a one-field tuple or a
/// one-field struct variant; its value for [`OpResult::from_error`](crate::nfs4::OpResult::from_error)
/// is the type's default.
macro_rules! xdr_status_union {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(#[$okmeta:meta])*
            Ok $(($okty:ty))?,
            $(#[$emeta:meta])*
            $evar:ident $ebody:tt = $estat:ident,
            $(#[$errmeta:meta])*
            Error(NfsStat) $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $(#[$okmeta])*
            Ok $(($okty))?,
            $(#[$emeta])*
            $evar $ebody,
            $(#[$errmeta])*
            Error($crate::nfs4::types::NfsStat),
        }

        impl $crate::xdr::XdrEncode for $name {
            fn encode(&self, enc: &mut $crate::xdr::Encoder) {
                use $crate::nfs4::types::NfsStat;
                #[allow(unused_imports)]
                use $crate::xdr::{XdrDecode as _, XdrEncode as _};
                match self {
                    $crate::nfs4::macros::xdr_status_union!(@okpat ok $($okty)?) => {
                        NfsStat::OK.encode(enc);
                        $crate::nfs4::macros::xdr_status_union!(@okput enc ok $($okty)?);
                    }
                    $crate::nfs4::macros::xdr_status_union!(@epat $evar $ebody v) => {
                        NfsStat::$estat.encode(enc);
                        $crate::xdr::XdrEncode::encode(v, enc);
                    }
                    Self::Error(s) => s.encode(enc),
                }
            }
        }

        impl $crate::xdr::XdrDecode for $name {
            fn decode(dec: &mut $crate::xdr::Decoder<'_>) -> $crate::xdr::XdrResult<Self> {
                use $crate::nfs4::types::NfsStat;
                #[allow(unused_imports)]
                use $crate::xdr::{XdrDecode as _, XdrEncode as _};
                Ok(match NfsStat::decode(dec)? {
                    NfsStat::OK => $crate::nfs4::macros::xdr_status_union!(@okget dec $($okty)?),
                    NfsStat::$estat => $crate::nfs4::macros::xdr_status_union!(@eget dec $evar $ebody),
                    s => Self::Error(s),
                })
            }
        }

        impl $crate::nfs4::OpResult for $name {
            fn from_error(status: $crate::nfs4::types::NfsStat) -> Self {
                if status == $crate::nfs4::types::NfsStat::$estat {
                    $crate::nfs4::macros::xdr_status_union!(@edefault $evar $ebody)
                } else {
                    Self::Error(status)
                }
            }
            fn status(&self) -> $crate::nfs4::types::NfsStat {
                match self {
                    $crate::nfs4::macros::xdr_status_union!(@okpat _ok $($okty)?) => {
                        $crate::nfs4::types::NfsStat::OK
                    }
                    $crate::nfs4::macros::xdr_status_union!(@epat $evar $ebody _v) => {
                        $crate::nfs4::types::NfsStat::$estat
                    }
                    Self::Error(s) => *s,
                }
            }
        }
    };
    (@okpat $v:ident $t:ty) => { Self::Ok($v) };
    (@okpat $v:ident) => { Self::Ok };
    (@okput $enc:ident $v:ident $t:ty) => { $crate::xdr::XdrEncode::encode($v, $enc) };
    (@okput $enc:ident $v:ident) => { () };
    (@okget $dec:ident $t:ty) => { Self::Ok($dec.get::<$t>()?) };
    (@okget $dec:ident) => { Self::Ok };
    (@epat $evar:ident ($t:ty) $v:ident) => { Self::$evar($v) };
    (@epat $evar:ident { $(#[$m:meta])* $f:ident : $t:ty $(,)? } $v:ident) => { Self::$evar { $f: $v } };
    (@eget $dec:ident $evar:ident ($t:ty)) => { Self::$evar($dec.get::<$t>()?) };
    (@eget $dec:ident $evar:ident { $(#[$m:meta])* $f:ident : $t:ty $(,)? }) => {
        Self::$evar { $f: $dec.get::<$t>()? }
    };
    (@edefault $evar:ident ($t:ty)) => { Self::$evar(<$t>::default()) };
    (@edefault $evar:ident { $(#[$m:meta])* $f:ident : $t:ty $(,)? }) => {
        Self::$evar { $f: <$t>::default() }
    };
}

/// Declares an argument enum and a result enum from one table (variant, opnum, argument type
/// or nothing for void, result type), with their codecs, `opnum`, `status` and `error_for`.
/// Both enums get an `Illegal` variant: an unknown operation number decodes to the argument
/// `Illegal { opnum }` (the caller stops decoding there, see [`decode_op_list`]), and its
/// result is `Illegal(status)` under the channel's ILLEGAL opnum.
///
/// [`decode_op_list`]: crate::nfs4::macros::decode_op_list
macro_rules! op_table {
    (
        args: $(#[$am:meta])* $argty:ident,
        results: $(#[$rm:meta])* $resty:ident,
        illegal: $illegal:expr,
        result_what: $what:literal,
        ops: { $( $(#[$m:meta])* $variant:ident = $opnum:ident ( $($arg:ty)? ) -> $res:ty ; )* }
    ) => {
        $(#[$am])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $argty {
            $( $(#[$m])* $variant $(($arg))?, )*
            /// An operation number this crate does not know; decoding stopped here.
            Illegal {
                /// The number on the wire.
                opnum: u32,
            },
        }

        $(#[$rm])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $resty {
            $( $(#[$m])* $variant($res), )*
            /// The ILLEGAL operation's result with its status (NFS4ERR_OP_ILLEGAL).
            Illegal($crate::nfs4::types::NfsStat),
        }

        impl $argty {
            /// The operation number (for `Illegal`, the number received).
            pub fn opnum(&self) -> u32 {
                match self {
                    $( $crate::nfs4::macros::op_table!(@argpat $argty $variant $($arg)?) => $opnum, )*
                    Self::Illegal { opnum } => *opnum,
                }
            }
        }

        impl $crate::nfs4::macros::OpListItem for $argty {
            fn is_illegal(&self) -> bool {
                matches!(self, Self::Illegal { .. })
            }
        }

        impl $resty {
            /// The operation number.
            pub fn opnum(&self) -> u32 {
                match self {
                    $( Self::$variant(_) => $opnum, )*
                    Self::Illegal(_) => $illegal,
                }
            }

            /// The operation status.
            pub fn status(&self) -> $crate::nfs4::types::NfsStat {
                match self {
                    $( Self::$variant(r) => $crate::nfs4::OpResult::status(r), )*
                    Self::Illegal(s) => *s,
                }
            }

            /// The failed result of `op` with `status` (NFS4_OK is taken as
            /// NFS4ERR_SERVERFAULT for results that need a body); for an illegal op this is
            /// the ILLEGAL result with NFS4ERR_OP_ILLEGAL whatever `status` is.
            pub fn error_for(op: &$argty, status: $crate::nfs4::types::NfsStat) -> Self {
                match op {
                    $( $crate::nfs4::macros::op_table!(@argpat $argty $variant $($arg)?) => {
                        Self::$variant($crate::nfs4::OpResult::from_error(status))
                    } )*
                    $argty::Illegal { .. } => Self::Illegal($crate::nfs4::types::NfsStat::OP_ILLEGAL),
                }
            }
        }

        impl $crate::xdr::XdrEncode for $argty {
            fn encode(&self, enc: &mut $crate::xdr::Encoder) {
                enc.put_u32(self.opnum());
                match self {
                    $( $crate::nfs4::macros::op_table!(@argpat $argty $variant $($arg)? , a) => {
                        $crate::nfs4::macros::op_table!(@argput enc a $($arg)?)
                    } )*
                    Self::Illegal { .. } => {}
                }
            }
        }

        impl $crate::xdr::XdrDecode for $argty {
            /// Reads one operation; an unknown number gives `Illegal` without reading further.
            fn decode(dec: &mut $crate::xdr::Decoder<'_>) -> $crate::xdr::XdrResult<Self> {
                let opnum = dec.u32()?;
                Ok(match opnum {
                    $( $opnum => $crate::nfs4::macros::op_table!(@argget dec $argty $variant $($arg)?), )*
                    opnum => Self::Illegal { opnum },
                })
            }
        }

        impl $crate::xdr::XdrEncode for $resty {
            fn encode(&self, enc: &mut $crate::xdr::Encoder) {
                enc.put_u32(self.opnum());
                match self {
                    $( Self::$variant(r) => r.encode(enc), )*
                    Self::Illegal(s) => s.encode(enc),
                }
            }
        }

        impl $crate::xdr::XdrDecode for $resty {
            fn decode(dec: &mut $crate::xdr::Decoder<'_>) -> $crate::xdr::XdrResult<Self> {
                Ok(match dec.u32()? {
                    $( $opnum => Self::$variant(dec.get()?), )*
                    x if x == $illegal => Self::Illegal(dec.get()?),
                    value => return Err($crate::xdr::XdrError::BadEnum { what: $what, value }),
                })
            }
        }
    };
    (@argpat $a:ident $variant:ident $arg:ty) => { $a::$variant(_) };
    (@argpat $a:ident $variant:ident) => { $a::$variant };
    (@argpat $a:ident $variant:ident $arg:ty, $v:ident) => { $a::$variant($v) };
    (@argpat $a:ident $variant:ident, $v:ident) => { $a::$variant };
    (@argput $enc:ident $v:ident $arg:ty) => { $v.encode($enc) };
    (@argput $enc:ident $v:ident) => { () };
    (@argget $dec:ident $a:ident $variant:ident $arg:ty) => { $a::$variant($dec.get()?) };
    (@argget $dec:ident $a:ident $variant:ident) => { $a::$variant };
}

/// An operation of an argument list that can end the list (see [`decode_op_list`]).
pub(crate) trait OpListItem: crate::xdr::XdrDecode {
    /// True for the `Illegal` operation (an unknown number), after which nothing is decoded.
    fn is_illegal(&self) -> bool;
}

/// Decodes the operation array of COMPOUND4args or CB_COMPOUND4args: at most `limit`
/// operations, up to and including the first unknown one. The bytes after an unknown
/// operation cannot be parsed and are consumed unread in whole XDR units (these arrays are the
/// last item of their call); a call that is not a multiple of four bytes is malformed anyway
/// and its tail stays unread, an error in `from_bytes`.
pub(crate) fn decode_op_list<T: OpListItem>(
    dec: &mut crate::xdr::Decoder<'_>,
    what: &'static str,
    limit: usize,
) -> crate::xdr::XdrResult<Vec<T>> {
    let count = dec.length(what, limit)?;
    let mut ops = Vec::with_capacity(count.min(dec.remaining() / 4));
    for _ in 0..count {
        let op = T::decode(dec)?;
        let stop = op.is_illegal();
        ops.push(op);
        if stop {
            let rest = dec.remaining();
            dec.opaque_fixed(rest - rest % 4)?;
            break;
        }
    }
    Ok(ops)
}

pub(crate) use {op_table, xdr_get, xdr_put, xdr_status_union, xdr_struct, xdr_union};
