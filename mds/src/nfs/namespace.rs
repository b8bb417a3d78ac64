//! File handles and the namespace: lookup, attributes, create, remove, rename, link, readdir,
//! setattr.

use pnfs_proto::nfs4::attr::{Bitmap4, Fattr4};
use pnfs_proto::nfs4::{
    AccessResOk, ChangeInfo, CinfoResOk, CreateArgs, CreateResOk, CreateType, DirEntry, DirList,
    FileHandle, GetattrResOk, GetfhResOk, NfsRes, NfsStat, ReaddirArgs, ReaddirResOk,
    ReadlinkResOk, RenameResOk, SecInfo, SecinfoResOk, SetattrRes, Stateid, Verifier,
    ACCESS4_DELETE, ACCESS4_EXECUTE, ACCESS4_EXTEND, ACCESS4_LOOKUP, ACCESS4_MODIFY, ACCESS4_READ,
};
use pnfs_proto::nfs4::{NF4BLK, NF4CHR, NF4FIFO, NF4SOCK};
use pnfs_proto::rpc::AUTH_SYS;
use pnfs_proto::xdr::to_bytes;

use super::attrs::InAttrs;
use std::collections::HashMap;

use super::{fh_of, id_of, Ctx, State, StateEntry};
use crate::fs::{Kind, ROOT_ID};

/// Most names one READDIR returns.
const MAX_READDIR_ENTRIES: usize = 4096;
/// Bytes of a READDIR reply that are not entries (status, verifier, list end, eof), rounded up.
const READDIR_OVERHEAD_BYTES: usize = 128;
/// READDIR cookies 0, 1 and 2 are reserved; entry `i` has cookie `i + 3`.
const FIRST_COOKIE: u64 = 3;
/// Every ACCESS4 bit.
const ACCESS_ALL: u32 = ACCESS4_READ
    | ACCESS4_LOOKUP
    | ACCESS4_MODIFY
    | ACCESS4_EXTEND
    | ACCESS4_DELETE
    | ACCESS4_EXECUTE;

/// change_info4 of a directory change done atomically.
pub(crate) fn cinfo(before: u64, after: u64) -> ChangeInfo {
    ChangeInfo {
        atomic: true,
        before,
        after,
    }
}

impl State {
    pub(crate) fn putrootfh(&mut self, ctx: &mut Ctx) -> Result<(), NfsStat> {
        ctx.cfh = Some(ROOT_ID);
        Ok(())
    }

    pub(crate) fn putfh(&mut self, ctx: &mut Ctx, fh: &[u8]) -> Result<(), NfsStat> {
        let id = id_of(fh)?;
        self.fs.get(id)?;
        ctx.cfh = Some(id);
        Ok(())
    }

    pub(crate) fn getfh(&self, ctx: &Ctx) -> NfsRes<GetfhResOk> {
        Ok(GetfhResOk {
            object: FileHandle(fh_of(ctx.cfh()?)),
        })
    }

    pub(crate) fn lookup(&mut self, ctx: &mut Ctx, name: &str) -> Result<(), NfsStat> {
        ctx.cfh = Some(self.fs.lookup(ctx.cfh()?, name)?);
        Ok(())
    }

    pub(crate) fn lookupp(&mut self, ctx: &mut Ctx) -> Result<(), NfsStat> {
        let d = ctx.cfh()?;
        let ino = self.fs.get(d)?;
        // RFC 8881 §18.14.3: SYMLINK from a symbolic link, NOTDIR from any other non-directory.
        if matches!(ino.kind, Kind::Symlink(_)) {
            return Err(NfsStat::SYMLINK);
        }
        if !ino.is_dir() {
            return Err(NfsStat::NOTDIR);
        }
        if d == ROOT_ID {
            return Err(NfsStat::NOENT);
        }
        ctx.cfh = Some(ino.parent);
        Ok(())
    }

    pub(crate) fn getattr(&self, ctx: &Ctx, request: &Bitmap4) -> NfsRes<GetattrResOk> {
        Ok(GetattrResOk {
            obj_attributes: self.attrs_of(ctx.cfh()?, request)?,
        })
    }

    /// VERIFY (`not` = false) and NVERIFY: compares the attributes sent with ours, value by
    /// value as encoded.
    pub(crate) fn verify(&self, ctx: &Ctx, given: &Fattr4, not: bool) -> Result<(), NfsStat> {
        let mine = self.attrs_of(ctx.cfh()?, &given.attrmask)?;
        let same = mine.attrmask.same_bits(&given.attrmask) && mine.attr_vals == given.attr_vals;
        match (same, not) {
            (true, true) => Err(NfsStat::SAME),
            (false, false) => Err(NfsStat::NOT_SAME),
            _ => Ok(()),
        }
    }

    pub(crate) fn access(&self, ctx: &Ctx, req: u32) -> NfsRes<AccessResOk> {
        self.fs.get(ctx.cfh()?)?;
        // Permissions are not enforced (trusted AUTH_SYS clients); all asked is granted.
        Ok(AccessResOk {
            supported: req & ACCESS_ALL,
            access: req & ACCESS_ALL,
        })
    }

    /// SECINFO (with a name) and SECINFO_NO_NAME: AUTH_SYS only; both consume the current
    /// file handle.
    /// SECINFO_STYLE4_PARENT (`parent`) asks about the current directory's parent: RFC 8881
    /// §18.45.3 makes that NOENT at the root (there is none) and, like LOOKUPP, NOTDIR from
    /// anything but a directory.
    pub(crate) fn secinfo(
        &self,
        ctx: &mut Ctx,
        name: Option<&str>,
        parent: bool,
    ) -> NfsRes<SecinfoResOk> {
        let d = ctx.cfh()?;
        if parent {
            if !self.fs.get(d)?.is_dir() {
                return Err(NfsStat::NOTDIR);
            }
            if d == ROOT_ID {
                return Err(NfsStat::NOENT);
            }
        }
        if let Some(n) = name {
            self.fs.lookup(d, n)?;
        }
        ctx.cfh = None;
        Ok(SecinfoResOk {
            flavors: vec![SecInfo::Flavor(AUTH_SYS)],
        })
    }

    pub(crate) fn readlink(&self, ctx: &Ctx) -> NfsRes<ReadlinkResOk> {
        match &self.fs.get(ctx.cfh()?)?.kind {
            Kind::Symlink(t) => Ok(ReadlinkResOk { link: t.clone() }),
            _ => Err(NfsStat::INVAL),
        }
    }

    pub(crate) fn create(
        &mut self,
        ctx: &mut Ctx,
        a: CreateArgs,
        attrs: InAttrs,
    ) -> NfsRes<CreateResOk> {
        let d = ctx.cfh()?;
        let kind = match a.objtype {
            CreateType::Link(target) => {
                if target.len() > crate::fs::MAX_SYMLINK_BYTES {
                    return Err(NfsStat::NAMETOOLONG);
                }
                Kind::Symlink(target)
            }
            CreateType::Dir => Kind::Dir,
            // RFC 8881 §18.4: devices with their numbers, sockets and fifos, stored as such.
            CreateType::Block(d) => Kind::Special {
                ftype: NF4BLK,
                major: d.specdata1,
                minor: d.specdata2,
            },
            CreateType::Char(d) => Kind::Special {
                ftype: NF4CHR,
                major: d.specdata1,
                minor: d.specdata2,
            },
            CreateType::Socket => Kind::Special {
                ftype: NF4SOCK,
                major: 0,
                minor: 0,
            },
            CreateType::Fifo => Kind::Special {
                ftype: NF4FIFO,
                major: 0,
                minor: 0,
            },
            CreateType::Other(_) => return Err(NfsStat::BADTYPE),
        };
        if attrs.unsupported {
            return Err(NfsStat::ATTRNOTSUPP);
        }
        let (id, b, af) =
            self.fs
                .create(d, &a.objname, kind, ctx.cred.uid, ctx.cred.gid, &attrs.set)?;
        ctx.cfh = Some(id);
        Ok(CreateResOk {
            cinfo: cinfo(b, af),
            attrset: attrs.mask,
        })
    }

    pub(crate) fn remove(&mut self, ctx: &Ctx, name: &str) -> NfsRes<CinfoResOk> {
        let d = ctx.cfh()?;
        self.refuse_in_grace(None)?;
        let id = self.fs.lookup(d, name)?;
        self.delegations_in_the_way(id, ctx)?;
        let states = &self.states;
        let (b, a, freed) = self.fs.remove_keeping(d, name, &|f| is_open(states, f))?;
        if freed.is_some() {
            self.forget_file(id);
        }
        Ok(CinfoResOk { cinfo: cinfo(b, a) })
    }

    pub(crate) fn rename(&mut self, ctx: &Ctx, old: &str, new: &str) -> NfsRes<RenameResOk> {
        let sd = ctx.sfh()?;
        let dd = ctx.cfh()?;
        self.refuse_in_grace(None)?;
        let victim = self.fs.lookup(dd, new).ok();
        if let Ok(src) = self.fs.lookup(sd, old) {
            self.delegations_in_the_way(src, ctx)?;
        }
        if let Some(v) = victim {
            self.delegations_in_the_way(v, ctx)?;
        }
        let states = &self.states;
        let (sb, sa, db, da, freed) = self
            .fs
            .rename_keeping(sd, old, dd, new, &|f| is_open(states, f))?;
        if let (Some(v), Some(_)) = (victim, freed) {
            self.forget_file(v);
        }
        Ok(RenameResOk {
            source_cinfo: cinfo(sb, sa),
            target_cinfo: cinfo(db, da),
        })
    }

    pub(crate) fn link(&mut self, ctx: &Ctx, name: &str) -> NfsRes<CinfoResOk> {
        let src = ctx.sfh()?;
        let d = ctx.cfh()?;
        self.delegations_in_the_way(src, ctx)?;
        let (b, a) = self.fs.link(src, d, name)?;
        Ok(CinfoResOk { cinfo: cinfo(b, a) })
    }

    pub(crate) fn readdir(&self, ctx: &Ctx, a: &ReaddirArgs) -> NfsRes<ReaddirResOk> {
        let d = ctx.cfh()?;
        let names = self.fs.readdir(d)?;
        let verf = self.fs.get(d)?.change;
        let start = if a.cookie < FIRST_COOKIE {
            0
        } else {
            usize::try_from(a.cookie - FIRST_COOKIE + 1).unwrap_or(usize::MAX)
        };
        let budget = usize::try_from(a.maxcount)
            .unwrap_or(usize::MAX)
            .saturating_sub(READDIR_OVERHEAD_BYTES);
        let mut used = 0usize;
        let mut entries = Vec::new();
        let mut eof = true;
        for (i, (name, id)) in names.iter().enumerate().skip(start) {
            let entry = DirEntry {
                cookie: i as u64 + FIRST_COOKIE,
                name: name.clone(),
                attrs: self.attrs_of(*id, &a.attr_request)?,
            };
            // The entry plus its "value follows" boolean.
            let size = to_bytes(&entry).len() + 4;
            if used + size > budget || entries.len() >= MAX_READDIR_ENTRIES {
                eof = false;
                break;
            }
            used += size;
            entries.push(entry);
        }
        if entries.is_empty() && !eof {
            return Err(NfsStat::TOOSMALL);
        }
        Ok(ReaddirResOk {
            cookieverf: Verifier(verf.to_be_bytes()),
            reply: DirList { entries, eof },
        })
    }

    pub(crate) fn setattr(&mut self, ctx: &Ctx, sid: &Stateid, attrs: InAttrs) -> SetattrRes {
        match self.setattr_inner(ctx, sid, &attrs) {
            Ok(()) => SetattrRes {
                status: NfsStat::OK,
                attrsset: attrs.mask,
            },
            Err(status) => SetattrRes {
                status,
                attrsset: Bitmap4::new(),
            },
        }
    }

    fn setattr_inner(&mut self, ctx: &Ctx, sid: &Stateid, attrs: &InAttrs) -> Result<(), NfsStat> {
        let id = ctx.cfh()?;
        if attrs.unsupported {
            return Err(NfsStat::ATTRNOTSUPP);
        }
        self.delegations_in_the_way(id, ctx)?;
        if let Some(size) = attrs.set.size {
            self.refuse_in_grace(Some(&ctx.sid(sid)?))?;
            let cur = self.fs.get(id)?.size;
            if size < cur {
                // Shrinking: every layout past the new end must come back first. Other
                // clients' layouts there are recalled and the SETATTR waits (DELAY); Linux
                // returns its own before truncating (LAYOUTRET_ON_SETATTR), anything left of
                // the caller's is recalled without waiting.
                let bs = self.fs.block_bytes;
                let from = size / bs * bs;
                if self.recall_file(id, ctx.clientid, from, u64::MAX, true) > 0 {
                    return Err(NfsStat::DELAY);
                }
                self.recall_file(id, None, from, u64::MAX, true);
            }
        }
        self.fs.setattr(id, &attrs.set)
    }

    /// Drops all state of a file that no longer exists.
    pub(crate) fn forget_file(&mut self, id: u64) {
        self.states.retain(|_, s| s.file() != id);
    }

    /// Frees the files removed while open that nobody has open any more (after a CLOSE or
    /// when a client's state goes), with whatever layouts are left on them.
    pub(crate) fn reap_orphans(&mut self) {
        let done: Vec<u64> = self
            .fs
            .orphans()
            .filter(|&f| !is_open(&self.states, f))
            .collect();
        for f in done {
            if let Err(e) = self.fs.release_orphan(f) {
                tracing::error!("freeing removed file {f}: {e}");
            }
            self.forget_file(f);
        }
    }
}

/// Does any client have `file` open?
fn is_open(states: &HashMap<[u8; 12], StateEntry>, file: u64) -> bool {
    states
        .values()
        .any(|s| matches!(s, StateEntry::Open { file: f, .. } if *f == file))
}
