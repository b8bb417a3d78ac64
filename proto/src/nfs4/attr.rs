//! fattr4: attribute bitmaps and the attribute values the MDS and the gateway use.
