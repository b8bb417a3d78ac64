//! fattr4: attribute bitmaps ([`Bitmap4`]), the raw attribute container ([`Fattr4`]) and a
//! typed attribute set ([`Fattr`]).
//!
//! [`Fattr`] has an `Option` field per attribute this crate knows: every RFC 8881 attribute
//! except fs_locations_info (67), plus the RFC 7862 ones (clone_blksize 77, space_freed 78,
//! change_attr_type 79, sec_label 80), mode_umask (81, RFC 8275; Linux sends it when creating
//! over NFSv4.2) and xattr_support (82, RFC 8276). [`Fattr::encode_masked`] writes the attributes that are
//! both set and requested, in bit order, and returns the result mask; [`Fattr::from_fattr4`]
//! walks the mask in bit order and refuses unknown bits (their values cannot be skipped).
//! What a server advertises in supported_attrs is its own choice; [`Fattr::known_bitmap`] is
//! only the upper bound of what this crate can carry.
//!
//! Also: nfs_ftype4 constants are in `crate::nfs4::types` (`NF4REG`…), mode bits and
//! fh_expire_type / aclsupport / time_how4 constants are below.

use crate::nfs4::macros::{xdr_get, xdr_put, xdr_struct, xdr_union};
use crate::nfs4::types::NfsAce;
use crate::nfs4::types::{LayoutType, NfsStat, NfsTime, NFS4_OPAQUE_LIMIT_BYTES};
use crate::nfs4::FileHandle;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, XdrResult};

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

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/// MODE4_SUID.
pub const MODE4_SUID: u32 = 0o4000;
/// MODE4_SGID.
pub const MODE4_SGID: u32 = 0o2000;
/// MODE4_SVTX.
pub const MODE4_SVTX: u32 = 0o1000;
/// MODE4_RUSR.
pub const MODE4_RUSR: u32 = 0o400;
/// MODE4_WUSR.
pub const MODE4_WUSR: u32 = 0o200;
/// MODE4_XUSR.
pub const MODE4_XUSR: u32 = 0o100;
/// MODE4_RGRP.
pub const MODE4_RGRP: u32 = 0o040;
/// MODE4_WGRP.
pub const MODE4_WGRP: u32 = 0o020;
/// MODE4_XGRP.
pub const MODE4_XGRP: u32 = 0o010;
/// MODE4_ROTH.
pub const MODE4_ROTH: u32 = 0o004;
/// MODE4_WOTH.
pub const MODE4_WOTH: u32 = 0o002;
/// MODE4_XOTH.
pub const MODE4_XOTH: u32 = 0o001;
/// All the mode bits fattr4_mode may carry.
pub const MODE4_ALL_BITS: u32 = 0o7777;

/// FH4_PERSISTENT (fh_expire_type).
pub const FH4_PERSISTENT: u32 = 0x0;
/// FH4_NOEXPIRE_WITH_OPEN.
pub const FH4_NOEXPIRE_WITH_OPEN: u32 = 0x1;
/// FH4_VOLATILE_ANY.
pub const FH4_VOLATILE_ANY: u32 = 0x2;
/// FH4_VOL_MIGRATION.
pub const FH4_VOL_MIGRATION: u32 = 0x4;
/// FH4_VOL_RENAME.
pub const FH4_VOL_RENAME: u32 = 0x8;

/// ACL4_SUPPORT_ALLOW_ACL.
pub const ACL4_SUPPORT_ALLOW_ACL: u32 = 0x1;
/// ACL4_SUPPORT_DENY_ACL.
pub const ACL4_SUPPORT_DENY_ACL: u32 = 0x2;
/// ACL4_SUPPORT_AUDIT_ACL.
pub const ACL4_SUPPORT_AUDIT_ACL: u32 = 0x4;
/// ACL4_SUPPORT_ALARM_ACL.
pub const ACL4_SUPPORT_ALARM_ACL: u32 = 0x8;

/// Most ACEs in an acl / dacl / sacl attribute.
pub const NFS4_MAX_ACES: usize = 256;
/// Most layout types in fs_layout_types / layout_types.
pub const NFS4_MAX_LAYOUT_TYPES: usize = 16;
/// Most components in a pathname4.
pub const NFS4_MAX_PATH_COMPONENTS: usize = 64;
/// Most entries in fs_locations, server lists and mdsthreshold.
pub const NFS4_MAX_LOCATION_ITEMS: usize = 16;
/// Longest owner / owner_group / mimetype / other attribute string.
pub const NFS4_MAX_ATTR_STRING_BYTES: usize = NFS4_OPAQUE_LIMIT_BYTES;
/// Largest sec_label data and other opaque attribute bodies.
pub const NFS4_MAX_ATTR_OPAQUE_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Attribute value types
// ---------------------------------------------------------------------------------------------

xdr_struct! {
    /// fsid4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Fsid {
        /// major.
        pub major: u64,
        /// minor.
        pub minor: u64,
    }
}

xdr_union! {
    /// settime4 (time_access_set, time_modify_set).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub enum SetTime: "time_how4" {
        /// SET_TO_SERVER_TIME4.
        #[default]
        ServerTime = 0,
        /// SET_TO_CLIENT_TIME4 with the time.
        ClientTime(NfsTime) = 1,
    }
}

xdr_struct! {
    /// mode_masked4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ModeMasked {
        /// mm_value_to_set.
        pub value_to_set: u32,
        /// mm_mask_bits.
        pub mask_bits: u32,
    }
}

xdr_struct! {
    /// nfsacl41 (dacl, sacl).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct NfsAcl41 {
        /// na41_flag.
        pub flag: u32,
        /// na41_aces.
        pub aces: Vec<NfsAce> => array(NFS4_MAX_ACES),
    }
}

xdr_struct! {
    /// change_policy4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ChangePolicy {
        /// cp_major.
        pub major: u64,
        /// cp_minor.
        pub minor: u64,
    }
}

/// A string of at most [`NFS4_MAX_ATTR_STRING_BYTES`] (utf8str_cs / utf8str_cis / component4
/// inside attributes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AttrString(pub String);

impl XdrEncode for AttrString {
    fn encode(&self, enc: &mut Encoder) {
        enc.put_str(&self.0);
    }
}

impl XdrDecode for AttrString {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Ok(Self(
            dec.string("attribute string", NFS4_MAX_ATTR_STRING_BYTES)?,
        ))
    }
}

xdr_struct! {
    /// pathname4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Pathname {
        /// The components.
        pub components: Vec<AttrString> => array(NFS4_MAX_PATH_COMPONENTS),
    }
}

xdr_struct! {
    /// fs_location4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FsLocation {
        /// server names or addresses.
        pub server: Vec<AttrString> => array(NFS4_MAX_LOCATION_ITEMS),
        /// rootpath.
        pub rootpath: Pathname,
    }
}

xdr_struct! {
    /// fs_locations4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FsLocations {
        /// fs_root.
        pub fs_root: Pathname,
        /// locations.
        pub locations: Vec<FsLocation> => array(NFS4_MAX_LOCATION_ITEMS),
    }
}

xdr_struct! {
    /// fs4_status.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct FsStatus {
        /// fss_absent.
        pub absent: bool,
        /// fss_type (fs4_status_type).
        pub status_type: u32,
        /// fss_source.
        pub source: String => string(NFS4_MAX_ATTR_STRING_BYTES),
        /// fss_current.
        pub current: String => string(NFS4_MAX_ATTR_STRING_BYTES),
        /// fss_age.
        pub age: i32,
        /// fss_version.
        pub version: NfsTime,
    }
}

xdr_struct! {
    /// layouthint4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LayoutHint {
        /// loh_type.
        pub layout_type: LayoutType,
        /// loh_body.
        pub body: Vec<u8> => opaque(NFS4_MAX_ATTR_OPAQUE_BYTES),
    }
}

xdr_struct! {
    /// threshold_item4.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ThresholdItem {
        /// thi_layout_type.
        pub layout_type: LayoutType,
        /// thi_hintset.
        pub hintset: Bitmap4,
        /// thi_hintlist.
        pub hintlist: Vec<u8> => opaque(NFS4_MAX_ATTR_OPAQUE_BYTES),
    }
}

xdr_struct! {
    /// mdsthreshold4.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct MdsThreshold {
        /// mth_hints.
        pub hints: Vec<ThresholdItem> => array(NFS4_MAX_LOCATION_ITEMS),
    }
}

xdr_struct! {
    /// retention_get4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct RetentionGet {
        /// rg_duration.
        pub duration: u64,
        /// rg_begin_time<1>.
        pub begin_time: Option<NfsTime> => option,
    }
}

xdr_struct! {
    /// retention_set4.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct RetentionSet {
        /// rs_enable.
        pub enable: bool,
        /// rs_duration<1>.
        pub duration: Option<u64> => option,
    }
}

xdr_struct! {
    /// mode_umask4 (RFC 8275): the mode to create with and the umask to apply to it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct ModeUmask {
        /// mu_mode.
        pub mode: u32,
        /// mu_umask.
        pub umask: u32,
    }
}

xdr_struct! {
    /// sec_label4 (RFC 7862).
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct SecLabel {
        /// slai_lfs.lfs_lfs.
        pub lfs: u32,
        /// slai_lfs.lfs_pi.
        pub pi: u32,
        /// slai_data.
        pub data: Vec<u8> => opaque(NFS4_MAX_ATTR_OPAQUE_BYTES),
    }
}

// ---------------------------------------------------------------------------------------------
// The typed attribute set
// ---------------------------------------------------------------------------------------------

/// Declares the attribute numbers, [`Fattr`] and its codec from one table in bit order.
macro_rules! fattr_table {
    ($( $bit:literal $konst:ident $field:ident : $ty:ty $(=> $codec:ident $(($limit:expr))?)? ; )*) => {
        $(
            #[doc = concat!("Attribute number of `", stringify!($field), "`.")]
            pub const $konst: u32 = $bit;
        )*

        /// Typed attribute values: `Some` for each attribute present. See the module docs.
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct Fattr {
            $(
                #[doc = concat!("`", stringify!($konst), "` (", stringify!($bit), ").")]
                pub $field: Option<$ty>,
            )*
        }

        impl Fattr {
            /// Every attribute number [`Fattr`] can encode and decode, in increasing order.
            pub const KNOWN: &'static [u32] = &[$($bit),*];

            /// The attributes that are set.
            pub fn mask(&self) -> Bitmap4 {
                let mut mask = Bitmap4::new();
                $( if self.$field.is_some() { mask.set($bit); } )*
                mask
            }

            /// Encodes the attributes that are set and in `request`, in bit order. The
            /// returned fattr4's mask says which were written.
            pub fn encode_masked(&self, request: &Bitmap4) -> Fattr4 {
                let mut attrmask = Bitmap4::new();
                let mut enc = Encoder::new();
                let e = &mut enc;
                $(
                    if let Some(v) = &self.$field {
                        if request.contains($bit) {
                            attrmask.set($bit);
                            xdr_put!(e, v $(, $codec)?);
                        }
                    }
                )*
                Fattr4 { attrmask, attr_vals: enc.into_inner() }
            }

            /// Decodes a fattr4: walks its mask in bit order. An unknown bit, a value that
            /// does not decode, or bytes left over are errors.
            pub fn from_fattr4(fattr: &Fattr4) -> XdrResult<Self> {
                let mut out = Self::default();
                let mut dec = Decoder::new(&fattr.attr_vals);
                for bit in fattr.attrmask.iter() {
                    match bit {
                        $(
                            $bit => {
                                out.$field = Some(xdr_get!(
                                    dec,
                                    concat!("fattr4.", stringify!($field))
                                    $(, $codec $(, $limit)?)?
                                ));
                            }
                        )*
                        _ => {
                            return Err(XdrError::Invalid {
                                what: "fattr4",
                                detail: format!("attribute {bit} is not supported"),
                            })
                        }
                    }
                }
                dec.finish()?;
                Ok(out)
            }
        }
    };
}

fattr_table! {
    0 FATTR4_SUPPORTED_ATTRS supported_attrs: Bitmap4;
    1 FATTR4_TYPE file_type: u32;
    2 FATTR4_FH_EXPIRE_TYPE fh_expire_type: u32;
    3 FATTR4_CHANGE change: u64;
    4 FATTR4_SIZE size: u64;
    5 FATTR4_LINK_SUPPORT link_support: bool;
    6 FATTR4_SYMLINK_SUPPORT symlink_support: bool;
    7 FATTR4_NAMED_ATTR named_attr: bool;
    8 FATTR4_FSID fsid: Fsid;
    9 FATTR4_UNIQUE_HANDLES unique_handles: bool;
    10 FATTR4_LEASE_TIME lease_time: u32;
    11 FATTR4_RDATTR_ERROR rdattr_error: NfsStat;
    12 FATTR4_ACL acl: Vec<NfsAce> => array(NFS4_MAX_ACES);
    13 FATTR4_ACLSUPPORT aclsupport: u32;
    14 FATTR4_ARCHIVE archive: bool;
    15 FATTR4_CANSETTIME cansettime: bool;
    16 FATTR4_CASE_INSENSITIVE case_insensitive: bool;
    17 FATTR4_CASE_PRESERVING case_preserving: bool;
    18 FATTR4_CHOWN_RESTRICTED chown_restricted: bool;
    19 FATTR4_FILEHANDLE filehandle: FileHandle;
    20 FATTR4_FILEID fileid: u64;
    21 FATTR4_FILES_AVAIL files_avail: u64;
    22 FATTR4_FILES_FREE files_free: u64;
    23 FATTR4_FILES_TOTAL files_total: u64;
    24 FATTR4_FS_LOCATIONS fs_locations: FsLocations;
    25 FATTR4_HIDDEN hidden: bool;
    26 FATTR4_HOMOGENEOUS homogeneous: bool;
    27 FATTR4_MAXFILESIZE maxfilesize: u64;
    28 FATTR4_MAXLINK maxlink: u32;
    29 FATTR4_MAXNAME maxname: u32;
    30 FATTR4_MAXREAD maxread: u64;
    31 FATTR4_MAXWRITE maxwrite: u64;
    32 FATTR4_MIMETYPE mimetype: String => string(NFS4_MAX_ATTR_STRING_BYTES);
    33 FATTR4_MODE mode: u32;
    34 FATTR4_NO_TRUNC no_trunc: bool;
    35 FATTR4_NUMLINKS numlinks: u32;
    36 FATTR4_OWNER owner: String => string(NFS4_MAX_ATTR_STRING_BYTES);
    37 FATTR4_OWNER_GROUP owner_group: String => string(NFS4_MAX_ATTR_STRING_BYTES);
    38 FATTR4_QUOTA_AVAIL_HARD quota_avail_hard: u64;
    39 FATTR4_QUOTA_AVAIL_SOFT quota_avail_soft: u64;
    40 FATTR4_QUOTA_USED quota_used: u64;
    41 FATTR4_RAWDEV rawdev: crate::nfs4::types::SpecData;
    42 FATTR4_SPACE_AVAIL space_avail: u64;
    43 FATTR4_SPACE_FREE space_free: u64;
    44 FATTR4_SPACE_TOTAL space_total: u64;
    45 FATTR4_SPACE_USED space_used: u64;
    46 FATTR4_SYSTEM system: bool;
    47 FATTR4_TIME_ACCESS time_access: NfsTime;
    48 FATTR4_TIME_ACCESS_SET time_access_set: SetTime;
    49 FATTR4_TIME_BACKUP time_backup: NfsTime;
    50 FATTR4_TIME_CREATE time_create: NfsTime;
    51 FATTR4_TIME_DELTA time_delta: NfsTime;
    52 FATTR4_TIME_METADATA time_metadata: NfsTime;
    53 FATTR4_TIME_MODIFY time_modify: NfsTime;
    54 FATTR4_TIME_MODIFY_SET time_modify_set: SetTime;
    55 FATTR4_MOUNTED_ON_FILEID mounted_on_fileid: u64;
    56 FATTR4_DIR_NOTIF_DELAY dir_notif_delay: NfsTime;
    57 FATTR4_DIRENT_NOTIF_DELAY dirent_notif_delay: NfsTime;
    58 FATTR4_DACL dacl: NfsAcl41;
    59 FATTR4_SACL sacl: NfsAcl41;
    60 FATTR4_CHANGE_POLICY change_policy: ChangePolicy;
    61 FATTR4_FS_STATUS fs_status: FsStatus;
    62 FATTR4_FS_LAYOUT_TYPES fs_layout_types: Vec<LayoutType> => array(NFS4_MAX_LAYOUT_TYPES);
    63 FATTR4_LAYOUT_HINT layout_hint: LayoutHint;
    64 FATTR4_LAYOUT_TYPES layout_types: Vec<LayoutType> => array(NFS4_MAX_LAYOUT_TYPES);
    65 FATTR4_LAYOUT_BLKSIZE layout_blksize: u32;
    66 FATTR4_LAYOUT_ALIGNMENT layout_alignment: u32;
    68 FATTR4_MDSTHRESHOLD mdsthreshold: MdsThreshold;
    69 FATTR4_RETENTION_GET retention_get: RetentionGet;
    70 FATTR4_RETENTION_SET retention_set: RetentionSet;
    71 FATTR4_RETENTEVT_GET retentevt_get: RetentionGet;
    72 FATTR4_RETENTEVT_SET retentevt_set: RetentionSet;
    73 FATTR4_RETENTION_HOLD retention_hold: u64;
    74 FATTR4_MODE_SET_MASKED mode_set_masked: ModeMasked;
    75 FATTR4_SUPPATTR_EXCLCREAT suppattr_exclcreat: Bitmap4;
    76 FATTR4_FS_CHARSET_CAP fs_charset_cap: u32;
    77 FATTR4_CLONE_BLKSIZE clone_blksize: u32;
    78 FATTR4_SPACE_FREED space_freed: u64;
    79 FATTR4_CHANGE_ATTR_TYPE change_attr_type: u32;
    80 FATTR4_SEC_LABEL sec_label: SecLabel;
    81 FATTR4_MODE_UMASK mode_umask: ModeUmask;
    82 FATTR4_XATTR_SUPPORT xattr_support: bool;
}

/// FATTR4_FS_LOCATIONS_INFO (67): known number, but [`Fattr`] does not carry it.
pub const FATTR4_FS_LOCATIONS_INFO: u32 = 67;

impl Fattr {
    /// Write-only attributes: GETATTR asking for them gets NFS4ERR_INVAL (RFC 8881 §5.5,
    /// §5.12, RFC 8275; nfs-ganesha refuses the RFC 8881 ones).
    pub const WRITE_ONLY: &'static [u32] = &[
        FATTR4_TIME_ACCESS_SET,
        FATTR4_TIME_MODIFY_SET,
        FATTR4_LAYOUT_HINT,
        FATTR4_RETENTION_SET,
        FATTR4_RETENTEVT_SET,
        FATTR4_MODE_SET_MASKED,
        FATTR4_MODE_UMASK,
    ];

    /// Attributes that exist only from NFSv4.2 (RFC 7862, 8275, 8276); a minor-version-1
    /// request should not ask for them.
    pub const MINOR2_ONLY: &'static [u32] = &[
        FATTR4_CLONE_BLKSIZE,
        FATTR4_SPACE_FREED,
        FATTR4_CHANGE_ATTR_TYPE,
        FATTR4_SEC_LABEL,
        FATTR4_MODE_UMASK,
        FATTR4_XATTR_SUPPORT,
    ];

    /// A bitmap of every attribute [`Fattr`] knows.
    pub fn known_bitmap() -> Bitmap4 {
        Bitmap4::from_bits(Self::KNOWN)
    }

    /// A bitmap of every attribute [`Fattr`] knows that a GETATTR of `minorversion` may ask
    /// for (no write-only attributes; no NFSv4.2 attributes below minor version 2).
    pub fn readable_bitmap(minorversion: u32) -> Bitmap4 {
        let mut b = Self::known_bitmap().difference(&Bitmap4::from_bits(Self::WRITE_ONLY));
        if minorversion < 2 {
            b = b.difference(&Bitmap4::from_bits(Self::MINOR2_ONLY));
        }
        b
    }

    /// The bits of `mask` that [`Fattr`] cannot carry (a server answers NFS4ERR_ATTRNOTSUPP
    /// to a SETATTR/VERIFY/create with any of them instead of failing the whole request).
    pub fn unknown_bits(mask: &Bitmap4) -> Bitmap4 {
        mask.difference(&Self::known_bitmap())
    }

    /// Encodes every attribute that is set.
    pub fn to_fattr4(&self) -> Fattr4 {
        self.encode_masked(&self.mask())
    }
}

impl XdrEncode for Fattr {
    /// Encodes as a fattr4 with every attribute that is set.
    fn encode(&self, enc: &mut Encoder) {
        self.to_fattr4().encode(enc);
    }
}

impl XdrDecode for Fattr {
    fn decode(dec: &mut Decoder<'_>) -> XdrResult<Self> {
        Self::from_fattr4(&Fattr4::decode(dec)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_attributes_are_in_increasing_order() {
        assert!(Fattr::KNOWN.windows(2).all(|w| w[0] < w[1]));
        assert!(!Fattr::KNOWN.contains(&FATTR4_FS_LOCATIONS_INFO));
    }
}
