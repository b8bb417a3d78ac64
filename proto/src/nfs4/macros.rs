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

pub(crate) use {xdr_get, xdr_put, xdr_struct, xdr_union};
