//! fattr4: attribute bitmaps ([`Bitmap4`]), the raw attribute container ([`Fattr4`]) and a
//! typed attribute set.

use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrResult};

/// Most bitmap4 words a decoder accepts (attributes up to number 255).
pub const NFS4_MAX_BITMAP_WORDS: usize = 8;
/// Most bytes of attribute values in one fattr4.
pub const NFS4_MAX_FATTR_BYTES: usize = 1024 * 1024;

/// bitmap4: a set of bit numbers (attribute numbers, notification types, operations…).
///
/// Equality is on the words as sent (so round trips are exact); use [`Bitmap4::same_bits`]
/// to compare sets regardless of trailing zero words.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Bitmap4(pub Vec<u32>);

impl Bitmap4 {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set with the given bits.
    pub fn from_bits(bits: &[u32]) -> Self {
        let mut b = Self::new();
        for &bit in bits {
            b.set(bit);
        }
        b
    }

    /// Adds `bit` (grows the word list as needed).
    pub fn set(&mut self, bit: u32) {
        let word = usize::try_from(bit / 32).unwrap_or(usize::MAX);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (bit % 32);
    }

    /// Removes `bit`.
    pub fn clear(&mut self, bit: u32) {
        let word = usize::try_from(bit / 32).unwrap_or(usize::MAX);
        if let Some(w) = self.0.get_mut(word) {
            *w &= !(1 << (bit % 32));
        }
    }

    /// True when `bit` is set.
    pub fn contains(&self, bit: u32) -> bool {
        let word = usize::try_from(bit / 32).unwrap_or(usize::MAX);
        self.0.get(word).is_some_and(|w| w & (1 << (bit % 32)) != 0)
    }

    /// True when no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The set bits in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let base = u32::try_from(i).unwrap_or(u32::MAX).saturating_mul(32);
            (0..32u32)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| base + b)
        })
    }

    /// Bits set in both.
    pub fn intersection(&self, other: &Self) -> Self {
        let mut words: Vec<u32> = self.0.iter().zip(&other.0).map(|(a, b)| a & b).collect();
        while words.last() == Some(&0) {
            words.pop();
        }
        Self(words)
    }

    /// Bits set in `self` but not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        let mut words: Vec<u32> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, a)| a & !other.0.get(i).copied().unwrap_or(0))
            .collect();
        while words.last() == Some(&0) {
            words.pop();
        }
        Self(words)
    }

    /// True when both have the same bits set (ignoring trailing zero words).
    pub fn same_bits(&self, other: &Self) -> bool {
        let n = self.0.len().max(other.0.len());
        (0..n).all(|i| self.0.get(i).copied().unwrap_or(0) == other.0.get(i).copied().unwrap_or(0))
    }
}

impl XdrEncode for Bitmap4 {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_array(&self.0);
    }
}

impl XdrDecode for Bitmap4 {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self(dec.array("bitmap4", NFS4_MAX_BITMAP_WORDS)?))
    }
}

/// fattr4 as on the wire: the mask and the packed values. See [`Fattr`] for typed values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fattr4 {
    /// attrmask.
    pub attrmask: Bitmap4,
    /// attr_vals, at most [`NFS4_MAX_FATTR_BYTES`].
    pub attr_vals: Vec<u8>,
}

impl XdrEncode for Fattr4 {
    fn encode(&self, enc: &mut Encoder) {
        self.attrmask.encode(enc);
        enc.put_opaque(&self.attr_vals);
    }
}

impl XdrDecode for Fattr4 {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self {
            attrmask: dec.get()?,
            attr_vals: dec
                .opaque("fattr4.attr_vals", NFS4_MAX_FATTR_BYTES)?
                .to_vec(),
        })
    }
}

/// Typed attribute values (filled in below).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fattr {}
