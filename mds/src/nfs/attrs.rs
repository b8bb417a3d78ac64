//! Attributes: what a client may set (fattr4 in, typed with `pnfs_proto`'s `Fattr` at decode
//! time) and what the server reports for an inode (`Fattr` out, encoded by `pnfs_proto`).

use pnfs_proto::nfs4::attr::{self as a, Bitmap4, Fattr, Fattr4, Fsid, SetTime};
use pnfs_proto::nfs4::{
    CreateHow, FileHandle, LayoutType, NfsArgOp, NfsStat, NfsTime, OpenFlag, SpecData, NF4DIR,
    NF4LNK, NF4REG,
};
use pnfs_proto::xdr::XdrResult;

use super::{fh_of, State, MAX_IO_BYTES};
use crate::fs::{Kind, SetAttrs};

/// fsid of the one file system served.
const FSID: Fsid = Fsid {
    major: 0x706e_6673,
    minor: 1,
};
/// Longest name.
const MAX_NAME_BYTES: u32 = 255;

/// The attributes this server supports, in bit order.
const SUPPORTED: &[u32] = &[
    a::FATTR4_SUPPORTED_ATTRS,
    a::FATTR4_TYPE,
    a::FATTR4_FH_EXPIRE_TYPE,
    a::FATTR4_CHANGE,
    a::FATTR4_SIZE,
    a::FATTR4_LINK_SUPPORT,
    a::FATTR4_SYMLINK_SUPPORT,
    a::FATTR4_NAMED_ATTR,
    a::FATTR4_FSID,
    a::FATTR4_UNIQUE_HANDLES,
    a::FATTR4_LEASE_TIME,
    a::FATTR4_RDATTR_ERROR,
    a::FATTR4_ACLSUPPORT,
    a::FATTR4_CANSETTIME,
    a::FATTR4_CASE_INSENSITIVE,
    a::FATTR4_CASE_PRESERVING,
    a::FATTR4_CHOWN_RESTRICTED,
    a::FATTR4_FILEHANDLE,
    a::FATTR4_FILEID,
    a::FATTR4_FILES_AVAIL,
    a::FATTR4_FILES_FREE,
    a::FATTR4_FILES_TOTAL,
    a::FATTR4_HOMOGENEOUS,
    a::FATTR4_MAXFILESIZE,
    a::FATTR4_MAXLINK,
    a::FATTR4_MAXNAME,
    a::FATTR4_MAXREAD,
    a::FATTR4_MAXWRITE,
    a::FATTR4_MODE,
    a::FATTR4_NO_TRUNC,
    a::FATTR4_NUMLINKS,
    a::FATTR4_OWNER,
    a::FATTR4_OWNER_GROUP,
    a::FATTR4_RAWDEV,
    a::FATTR4_SPACE_AVAIL,
    a::FATTR4_SPACE_FREE,
    a::FATTR4_SPACE_TOTAL,
    a::FATTR4_SPACE_USED,
    a::FATTR4_TIME_ACCESS,
    a::FATTR4_TIME_ACCESS_SET,
    a::FATTR4_TIME_DELTA,
    a::FATTR4_TIME_METADATA,
    a::FATTR4_TIME_MODIFY,
    a::FATTR4_TIME_MODIFY_SET,
    a::FATTR4_MOUNTED_ON_FILEID,
    a::FATTR4_FS_LAYOUT_TYPES,
    a::FATTR4_LAYOUT_TYPES,
    a::FATTR4_LAYOUT_BLKSIZE,
    a::FATTR4_LAYOUT_ALIGNMENT,
    a::FATTR4_SUPPATTR_EXCLCREAT,
];

/// The attributes a client may set when creating exclusively.
const EXCLCREAT: &[u32] = &[
    a::FATTR4_SIZE,
    a::FATTR4_MODE,
    a::FATTR4_OWNER,
    a::FATTR4_OWNER_GROUP,
    a::FATTR4_TIME_ACCESS_SET,
    a::FATTR4_TIME_MODIFY_SET,
];

/// A fattr4 sent by the client, reduced to what this server can set.
#[derive(Debug, Default, Clone)]
pub(crate) struct InAttrs {
    /// The values to set.
    pub set: SetAttrs,
    /// The mask as sent (echoed as attrsset).
    pub mask: Bitmap4,
    /// Some attribute is one we cannot set (the operation answers ATTRNOTSUPP).
    pub unsupported: bool,
}

/// The owner or group number in an owner string (`"1000"` or `"1000@domain"`).
fn parse_owner(s: &str) -> Option<u32> {
    s.split('@').next().unwrap_or(s).parse().ok()
}

/// Types a client's fattr4. XDR errors in the values fail the request; attributes that are
/// valid but not settable here only mark it unsupported.
pub(crate) fn parse(f: &Fattr4) -> XdrResult<InAttrs> {
    let mut out = InAttrs {
        mask: f.attrmask.clone(),
        ..InAttrs::default()
    };
    if !Fattr::unknown_bits(&f.attrmask).is_empty() {
        // Values of unknown attributes cannot be skipped; nothing after them is readable.
        out.unsupported = true;
        return Ok(out);
    }
    let typed = Fattr::from_fattr4(f)?;
    let Fattr {
        size,
        mode,
        owner,
        owner_group,
        time_access_set,
        time_modify_set,
        ..
    } = typed.clone();
    out.set.size = size;
    out.set.mode = mode;
    if let Some(o) = owner {
        out.set.uid = parse_owner(&o);
        out.unsupported |= out.set.uid.is_none();
    }
    if let Some(g) = owner_group {
        out.set.gid = parse_owner(&g);
        out.unsupported |= out.set.gid.is_none();
    }
    let time = |t: SetTime| match t {
        SetTime::ServerTime => None,
        SetTime::ClientTime(t) => Some(t),
    };
    out.set.atime = time_access_set.map(time);
    out.set.mtime = time_modify_set.map(time);
    let settable = Bitmap4::from_bits(EXCLCREAT);
    out.unsupported |= !typed.mask().difference(&settable).is_empty();
    Ok(out)
}

/// The typed attributes an operation carries, if any.
pub(crate) fn of_op(op: &NfsArgOp) -> XdrResult<Option<InAttrs>> {
    let f = match op {
        NfsArgOp::Create(c) => &c.createattrs,
        NfsArgOp::Setattr(s) => &s.obj_attributes,
        NfsArgOp::Open(o) => match &o.openhow {
            OpenFlag::Create(CreateHow::Unchecked(f) | CreateHow::Guarded(f)) => f,
            OpenFlag::Create(CreateHow::Exclusive41(v)) => &v.attrs,
            OpenFlag::Create(CreateHow::Exclusive(_)) | OpenFlag::NoCreate => return Ok(None),
        },
        _ => return Ok(None),
    };
    parse(f).map(Some)
}

impl State {
    /// Every supported attribute of inode `id`.
    pub(crate) fn fattr_of(&self, id: u64) -> Result<Fattr, NfsStat> {
        let ino = self.fs.get(id)?;
        let free = self.fs.free_bytes();
        let time_delta = NfsTime {
            seconds: 0,
            nseconds: 1,
        };
        Ok(Fattr {
            supported_attrs: Some(Bitmap4::from_bits(SUPPORTED)),
            file_type: Some(match ino.kind {
                Kind::File => NF4REG,
                Kind::Dir => NF4DIR,
                Kind::Symlink(_) => NF4LNK,
                Kind::Special { ftype, .. } => ftype,
            }),
            fh_expire_type: Some(a::FH4_PERSISTENT),
            change: Some(ino.change),
            size: Some(ino.size),
            link_support: Some(true),
            symlink_support: Some(true),
            named_attr: Some(false),
            fsid: Some(FSID),
            unique_handles: Some(true),
            lease_time: Some(u32::try_from(self.settings.lease.as_secs()).unwrap_or(u32::MAX)),
            rdattr_error: Some(NfsStat::OK),
            aclsupport: Some(0),
            cansettime: Some(true),
            case_insensitive: Some(false),
            case_preserving: Some(true),
            chown_restricted: Some(true),
            filehandle: Some(FileHandle(fh_of(id))),
            fileid: Some(id),
            files_avail: Some(self.fs.files_avail()),
            files_free: Some(self.fs.files_avail()),
            files_total: Some(self.fs.files_total()),
            homogeneous: Some(true),
            maxfilesize: Some(crate::fs::MAX_FILE_BYTES),
            maxlink: Some(crate::fs::MAX_LINKS),
            maxname: Some(MAX_NAME_BYTES),
            maxread: Some(u64::from(MAX_IO_BYTES)),
            maxwrite: Some(u64::from(MAX_IO_BYTES)),
            mode: Some(ino.mode),
            no_trunc: Some(true),
            numlinks: Some(ino.nlink),
            owner: Some(ino.uid.to_string()),
            owner_group: Some(ino.gid.to_string()),
            rawdev: Some(match ino.kind {
                Kind::Special { major, minor, .. } => SpecData {
                    specdata1: major,
                    specdata2: minor,
                },
                _ => SpecData::default(),
            }),
            space_avail: Some(free),
            space_free: Some(free),
            space_total: Some(self.fs.vol.size_bytes),
            space_used: Some(ino.used_bytes()),
            time_access: Some(ino.atime),
            time_delta: Some(time_delta),
            time_metadata: Some(ino.ctime),
            time_modify: Some(ino.mtime),
            mounted_on_fileid: Some(id),
            fs_layout_types: Some(vec![LayoutType::BlockVolume]),
            layout_types: Some(vec![LayoutType::BlockVolume]),
            layout_blksize: Some(self.settings.layout_blksize),
            layout_alignment: Some(u32::try_from(self.fs.block_bytes).unwrap_or(u32::MAX)),
            suppattr_exclcreat: Some(Bitmap4::from_bits(EXCLCREAT)),
            ..Fattr::default()
        })
    }

    /// The attributes of `id` that `request` asks for and this server supports.
    pub(crate) fn attrs_of(&self, id: u64, request: &Bitmap4) -> Result<Fattr4, NfsStat> {
        Ok(self.fattr_of(id)?.encode_masked(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settable_attributes_are_typed_and_others_marked_unsupported() {
        let f = Fattr {
            size: Some(7),
            mode: Some(0o640),
            owner: Some("1000@example".into()),
            time_modify_set: Some(SetTime::ServerTime),
            ..Fattr::default()
        };
        let a = parse(&f.to_fattr4()).unwrap();
        assert!(!a.unsupported);
        assert_eq!(a.set.size, Some(7));
        assert_eq!(a.set.mode, Some(0o640));
        assert_eq!(a.set.uid, Some(1000));
        assert_eq!(a.set.mtime, Some(None));
        assert!(a.mask.same_bits(&f.mask()));
        // Valid but not settable here.
        let hidden = Fattr {
            hidden: Some(true),
            ..Fattr::default()
        };
        assert!(parse(&hidden.to_fattr4()).unwrap().unsupported);
        // An owner that is not a number.
        let named = Fattr {
            owner: Some("alice".into()),
            ..Fattr::default()
        };
        assert!(parse(&named.to_fattr4()).unwrap().unsupported);
        // An attribute number the protocol crate does not know: unsupported, not an error.
        let unknown = Fattr4 {
            attrmask: Bitmap4::from_bits(&[200]),
            attr_vals: vec![0; 4],
        };
        assert!(parse(&unknown).unwrap().unsupported);
        // A value cut short is an XDR error (the whole request is refused).
        let cut = Fattr4 {
            attrmask: Bitmap4::from_bits(&[a::FATTR4_SIZE]),
            attr_vals: vec![0; 4],
        };
        assert!(parse(&cut).is_err());
    }
}
