//! XDR (RFC 4506) encoding and decoding with limits.
//!
//! The decoder never panics on any input: every length, count and nesting level that comes
//! from the wire is checked against a limit before anything is allocated.

use thiserror::Error;

/// Every XDR item is a multiple of four bytes.
pub const XDR_UNIT_BYTES: usize = 4;

/// Default nesting limit for recursive structures (volume topologies, nested unions).
pub const XDR_MAX_DEPTH: u32 = 32;

/// Largest opaque/string that any decoder accepts unless a tighter limit is given.
pub const XDR_MAX_OPAQUE_BYTES: usize = 64 * 1024 * 1024;

/// Everything that can go wrong while decoding XDR.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XdrError {
    /// The buffer ended before the item did.
    #[error("truncated XDR: need {need} bytes at offset {offset}, {have} left")]
    Truncated {
        /// Bytes the item needs.
        need: usize,
        /// Offset of the item in the buffer.
        offset: usize,
        /// Bytes that were left.
        have: usize,
    },
    /// A length or count is larger than the limit for that field.
    #[error("{what}: length {len} exceeds the limit {limit}")]
    TooLong {
        /// The field.
        what: &'static str,
        /// The length or count on the wire.
        len: u64,
        /// The limit that applies.
        limit: u64,
    },
    /// An enum or union discriminant has no meaning here.
    #[error("{what}: invalid value {value}")]
    BadEnum {
        /// The field.
        what: &'static str,
        /// The discriminant on the wire.
        value: u32,
    },
    /// A string is not UTF-8.
    #[error("{what}: not valid UTF-8")]
    BadUtf8 {
        /// The field.
        what: &'static str,
    },
    /// Recursive structures nest deeper than the limit.
    #[error("nesting deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: u32,
    },
    /// Bytes remained after the top-level item.
    #[error("{count} trailing bytes after the message")]
    Trailing {
        /// How many.
        count: usize,
    },
    /// A value is well-formed XDR but violates a protocol rule.
    #[error("{what}: {detail}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// Result of a decode.
pub type XdrResult<T> = Result<T, XdrError>;

fn pad_len(len: usize) -> usize {
    (XDR_UNIT_BYTES - len % XDR_UNIT_BYTES) % XDR_UNIT_BYTES
}

/// Appends XDR items to a growable buffer.
#[derive(Debug, Default, Clone)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An encoder that appends to `buf`.
    pub fn with_buffer(buf: Vec<u8>) -> Self {
        Self { buf }
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The finished buffer.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// Overwrites a u32 written earlier at `offset` (for counts known only afterwards).
    ///
    /// # Panics
    /// If `offset + 4` is past the end of what was written (a caller bug).
    pub fn patch_u32(&mut self, offset: usize, value: u32) {
        self.buf[offset..offset + 4].copy_from_slice(&value.to_be_bytes());
    }

    /// unsigned int.
    pub fn put_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// int.
    pub fn put_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// unsigned hyper.
    pub fn put_u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// hyper.
    pub fn put_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// bool.
    pub fn put_bool(&mut self, v: bool) {
        self.put_u32(u32::from(v));
    }

    /// Fixed-length opaque: the bytes, then zero padding to a unit.
    pub fn put_opaque_fixed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.buf
            .extend_from_slice(&[0u8; XDR_UNIT_BYTES][..pad_len(bytes.len())]);
    }

    /// Variable-length opaque: length, bytes, zero padding.
    ///
    /// # Panics
    /// If `bytes` is longer than 4 GiB - 1, which no caller can build legitimately.
    pub fn put_opaque(&mut self, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).expect("XDR opaque longer than u32::MAX");
        self.put_u32(len);
        self.put_opaque_fixed(bytes);
    }

    /// string.
    pub fn put_str(&mut self, s: &str) {
        self.put_opaque(s.as_bytes());
    }

    /// Variable-length array of encodable items.
    ///
    /// # Panics
    /// If the slice has more than u32::MAX items.
    pub fn put_array<T: XdrEncode>(&mut self, items: &[T]) {
        let n = u32::try_from(items.len()).expect("XDR array longer than u32::MAX");
        self.put_u32(n);
        for item in items {
            item.encode(self);
        }
    }

    /// Optional data (`*T` in XDR): a bool, then the item if present.
    pub fn put_option<T: XdrEncode>(&mut self, item: Option<&T>) {
        match item {
            Some(v) => {
                self.put_bool(true);
                v.encode(self);
            }
            None => self.put_bool(false),
        }
    }

    /// Any encodable item.
    pub fn put<T: XdrEncode + ?Sized>(&mut self, item: &T) {
        item.encode(self);
    }
}

/// `bytes` as UTF-8 with every byte of an invalid sequence replaced by `?`: the result is
/// exactly `bytes.len()` bytes long, so a length limit that held on the wire still holds.
pub fn lossy_utf8_same_len(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n('?', chunk.invalid().len()));
    }
    out
}

/// Reads XDR items from a byte slice, checking every length against what is left and a limit.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: u32,
    max_depth: u32,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf` with the default depth limit.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            depth: 0,
            max_depth: XDR_MAX_DEPTH,
        }
    }

    /// Sets the nesting limit used by [`Decoder::enter`].
    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Offset of the next byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The unconsumed rest of the buffer.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Errors if anything is left.
    pub fn finish(&self) -> XdrResult<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(XdrError::Trailing { count }),
        }
    }

    /// Enters one level of a recursive structure; pair with [`Decoder::leave`].
    pub fn enter(&mut self) -> XdrResult<()> {
        if self.depth >= self.max_depth {
            return Err(XdrError::TooDeep {
                limit: self.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves a level entered with [`Decoder::enter`].
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn take(&mut self, n: usize) -> XdrResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(XdrError::Truncated {
                need: n,
                offset: self.pos,
                have: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// unsigned int.
    pub fn u32(&mut self) -> XdrResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// int.
    pub fn i32(&mut self) -> XdrResult<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// unsigned hyper.
    pub fn u64(&mut self) -> XdrResult<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// hyper.
    pub fn i64(&mut self) -> XdrResult<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// bool: only 0 and 1 are accepted.
    pub fn bool(&mut self) -> XdrResult<bool> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(XdrError::BadEnum {
                what: "bool",
                value,
            }),
        }
    }

    /// Fixed-length opaque of `n` bytes (padding skipped, not checked for zero).
    pub fn opaque_fixed(&mut self, n: usize) -> XdrResult<&'a [u8]> {
        let data = self.take(n)?;
        self.take(pad_len(n))?;
        Ok(data)
    }

    /// Fixed-length opaque into an array.
    pub fn array_fixed<const N: usize>(&mut self) -> XdrResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.opaque_fixed(N)?);
        Ok(a)
    }

    /// Length prefix of a variable item, checked against `limit`.
    pub fn length(&mut self, what: &'static str, limit: usize) -> XdrResult<usize> {
        let len = self.u32()?;
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize > limit {
            return Err(XdrError::TooLong {
                what,
                len: u64::from(len),
                limit: limit as u64,
            });
        }
        Ok(len_usize)
    }

    /// Variable-length opaque of at most `limit` bytes.
    pub fn opaque(&mut self, what: &'static str, limit: usize) -> XdrResult<&'a [u8]> {
        let n = self.length(what, limit)?;
        self.opaque_fixed(n)
    }

    /// string of at most `limit` bytes, UTF-8.
    pub fn string(&mut self, what: &'static str, limit: usize) -> XdrResult<String> {
        let b = self.opaque(what, limit)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| XdrError::BadUtf8 { what })
    }

    /// string of at most `limit` bytes whose bytes that are not UTF-8 become `?`, one for one,
    /// so the result has exactly as many bytes as the wire had and re-encodes within `limit`
    /// (`String::from_utf8_lossy` would grow each bad byte to three and break that).
    pub fn string_lossy(&mut self, what: &'static str, limit: usize) -> XdrResult<String> {
        let b = self.opaque(what, limit)?;
        Ok(lossy_utf8_same_len(b))
    }

    /// Variable-length array of at most `limit` items.
    ///
    /// Allocation is bounded by what the remaining bytes could hold (each item is at least
    /// one XDR unit), so a huge count on the wire never allocates.
    pub fn array<T: XdrDecode>(&mut self, what: &'static str, limit: usize) -> XdrResult<Vec<T>> {
        let n = self.length(what, limit)?;
        let mut v = Vec::with_capacity(n.min(self.remaining() / XDR_UNIT_BYTES));
        for _ in 0..n {
            v.push(T::decode(self)?);
        }
        Ok(v)
    }

    /// Optional data (`*T`).
    pub fn option<T: XdrDecode>(&mut self) -> XdrResult<Option<T>> {
        if self.bool()? {
            Ok(Some(T::decode(self)?))
        } else {
            Ok(None)
        }
    }

    /// Any decodable item.
    pub fn get<T: XdrDecode>(&mut self) -> XdrResult<T> {
        T::decode(self)
    }
}

/// A type with an XDR encoding.
pub trait XdrEncode {
    /// Appends the encoding of `self`.
    fn encode(&self, enc: &mut Encoder);
}

/// A type that can be decoded from XDR.
pub trait XdrDecode: Sized {
    /// Reads one item, enforcing every limit that applies to it.
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self>;
}

/// Encodes one item into a fresh buffer.
pub fn to_bytes<T: XdrEncode + ?Sized>(item: &T) -> Vec<u8> {
    let mut enc = Encoder::new();
    item.encode(&mut enc);
    enc.into_inner()
}

/// Decodes exactly one item from `buf`; trailing bytes are an error.
pub fn from_bytes<T: XdrDecode>(buf: &[u8]) -> XdrResult<T> {
    let mut dec = Decoder::new(buf);
    let v = T::decode(&mut dec)?;
    dec.finish()?;
    Ok(v)
}

macro_rules! xdr_int {
    ($t:ty, $put:ident, $get:ident) => {
        impl XdrEncode for $t {
            fn encode(&self, enc: &mut Encoder) {
                enc.$put(*self);
            }
        }
        impl XdrDecode for $t {
            fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
                dec.$get()
            }
        }
    };
}
xdr_int!(u32, put_u32, u32);
xdr_int!(i32, put_i32, i32);
xdr_int!(u64, put_u64, u64);
xdr_int!(i64, put_i64, i64);
xdr_int!(bool, put_bool, bool);

impl<const N: usize> XdrEncode for [u8; N] {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_opaque_fixed(self);
    }
}

impl<const N: usize> XdrDecode for [u8; N] {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        dec.array_fixed::<N>()
    }
}

impl<T: XdrEncode> XdrEncode for Box<T> {
    fn encode(&self, enc: &mut Encoder) {
        (**self).encode(enc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_is_padded_with_zeros_and_round_trips() {
        let mut enc = Encoder::new();
        enc.put_opaque(b"abcde");
        assert_eq!(
            enc.as_slice(),
            &[0, 0, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]
        );
        let mut dec = Decoder::new(enc.as_slice());
        assert_eq!(dec.opaque("t", 16).unwrap(), b"abcde");
        dec.finish().unwrap();
    }

    #[test]
    fn huge_count_is_refused_without_allocating() {
        let buf = [0xff, 0xff, 0xff, 0xff];
        let err = Decoder::new(&buf).array::<u32>("items", 1024).unwrap_err();
        assert!(matches!(
            err,
            XdrError::TooLong {
                len: 0xffff_ffff,
                limit: 1024,
                ..
            }
        ));
        // Within the limit but past the end of the buffer: truncated, not a panic.
        let buf = [0, 0, 0, 3, 0, 0, 0, 1];
        let err = Decoder::new(&buf).array::<u32>("items", 1024).unwrap_err();
        assert!(matches!(err, XdrError::Truncated { .. }));
    }

    #[test]
    fn bool_rejects_other_values_and_depth_is_limited() {
        assert!(Decoder::new(&[0, 0, 0, 2]).bool().is_err());
        let mut dec = Decoder::new(&[]).with_max_depth(2);
        dec.enter().unwrap();
        dec.enter().unwrap();
        assert_eq!(dec.enter(), Err(XdrError::TooDeep { limit: 2 }));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        assert_eq!(
            from_bytes::<u32>(&[0, 0, 0, 1, 0]),
            Err(XdrError::Trailing { count: 1 })
        );
        assert_eq!(from_bytes::<u64>(&to_bytes(&u64::MAX)), Ok(u64::MAX));
    }
}
