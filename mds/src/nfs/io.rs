//! Opens and I/O through the MDS: OPEN, OPEN_DOWNGRADE, CLOSE, READ, WRITE, COMMIT, CLONE.

use pnfs_proto::nfs4::attr::{Bitmap4, FATTR4_SIZE};
use pnfs_proto::nfs4::{
    CloneArgs, CommitResOk, CreateHow, NfsRes, NfsStat, OpenArgs, OpenClaim, OpenDowngradeArgs,
    OpenFlag, OpenResOk, ReadArgs, ReadResOk, StableHow, Stateid, Verifier, WriteArgs, WriteResOk,
    OPEN4_RESULT_LOCKTYPE_POSIX, OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_BOTH,
};

use super::attrs::InAttrs;
use super::namespace::cinfo;
use super::{deleg, Ctx, State, StateEntry, MAX_IO_BYTES};
use crate::fs::{Durability, Kind, SetAttrs};

impl State {
    pub(crate) fn open(&mut self, ctx: &mut Ctx, a: OpenArgs, attrs: InAttrs) -> NfsRes<OpenResOk> {
        let cid = ctx.clientid()?;
        let access = a.share_access & OPEN4_SHARE_ACCESS_BOTH;
        let want = deleg::want_of(a.share_access)?;
        if access == 0 || a.share_deny & !OPEN4_SHARE_DENY_BOTH != 0 {
            return Err(NfsStat::INVAL);
        }
        // Checked before anything is created (an upgrade of a held open is refused too).
        if !self.room_for_stateid(cid) {
            return Err(NfsStat::DELAY);
        }
        // Only CLAIM_NULL and CLAIM_FH get a delegation; the CLAIM_DELEG_CUR* opens are done
        // under one and do not recall it.
        let mut grantable = false;
        let mut under_delegation = false;
        let deny = a.share_deny;
        let mut cinfo_v = (0u64, 0u64);
        let mut attrset = Bitmap4::new();
        let file = match a.claim {
            OpenClaim::Null(name) => {
                if self.in_grace() {
                    return Err(NfsStat::GRACE);
                }
                let dir = ctx.cfh()?;
                let dino = self.fs.get(dir)?;
                if !dino.is_dir() {
                    return Err(if matches!(dino.kind, Kind::Symlink(_)) {
                        NfsStat::SYMLINK
                    } else {
                        NfsStat::NOTDIR
                    });
                }
                cinfo_v = (dino.change, dino.change);
                grantable = true;
                match a.openhow {
                    OpenFlag::NoCreate => self.fs.lookup(dir, &name)?,
                    OpenFlag::Create(how) => {
                        let guarded = !matches!(how, CreateHow::Unchecked(_));
                        if attrs.unsupported {
                            return Err(NfsStat::ATTRNOTSUPP);
                        }
                        match self.fs.lookup(dir, &name) {
                            Ok(id) => {
                                if guarded {
                                    return Err(NfsStat::EXIST);
                                }
                                // Before any truncation: a denied OPEN changes nothing.
                                self.check_share(id, cid, &a.owner.owner, access, deny)?;
                                if self.break_delegations(id, cid, access, deny) > 0 {
                                    return Err(NfsStat::DELAY);
                                }
                                if let Some(0) = attrs.set.size {
                                    if self.fs.get(id)?.size > 0 {
                                        if self.recall_file(id, None, 0, u64::MAX, true) > 0 {
                                            return Err(NfsStat::DELAY);
                                        }
                                        self.fs.setattr(
                                            id,
                                            &SetAttrs {
                                                size: Some(0),
                                                ..SetAttrs::default()
                                            },
                                        )?;
                                    }
                                    attrset.set(FATTR4_SIZE);
                                }
                                id
                            }
                            Err(NfsStat::NOENT) => {
                                let mut set = attrs.set.clone();
                                set.size = None;
                                let (id, b, af) = self.fs.create(
                                    dir,
                                    &name,
                                    Kind::File,
                                    ctx.cred.uid,
                                    ctx.cred.gid,
                                    &set,
                                )?;
                                cinfo_v = (b, af);
                                attrset = attrs.mask.clone();
                                id
                            }
                            Err(x) => return Err(x),
                        }
                    }
                }
            }
            OpenClaim::Fh => {
                if self.in_grace() {
                    return Err(NfsStat::GRACE);
                }
                grantable = true;
                ctx.cfh()?
            }
            OpenClaim::Previous(_) => {
                if !self.in_grace() {
                    return Err(NfsStat::NO_GRACE);
                }
                let c = self.clients.get(&cid).ok_or(NfsStat::STALE_CLIENTID)?;
                if !c.can_reclaim() {
                    return Err(NfsStat::RECLAIM_BAD);
                }
                ctx.cfh()?
            }
            // §18.16.3: an open the client did locally under its delegation, claimed while it
            // returns the delegation (so no recall and no grace check).
            OpenClaim::DelegateCur(c) => {
                let dir = ctx.cfh()?;
                if !self.fs.get(dir)?.is_dir() {
                    return Err(NfsStat::NOTDIR);
                }
                let id = self.fs.lookup(dir, &c.file)?;
                self.check_delegation(cid, id, &c.delegate_stateid)?;
                under_delegation = true;
                id
            }
            OpenClaim::DelegCurFh(sid) => {
                let id = ctx.cfh()?;
                self.check_delegation(cid, id, &sid)?;
                under_delegation = true;
                id
            }
            // Delegations do not survive a restart of either side here: a client that
            // restarted has no delegation to claim by (its state went with its old client ID).
            OpenClaim::DelegatePrev(_) | OpenClaim::DelegPrevFh => return Err(NfsStat::NOTSUPP),
        };
        match &self.fs.get(file)?.kind {
            Kind::File => {}
            Kind::Dir => return Err(NfsStat::ISDIR),
            Kind::Symlink(_) => return Err(NfsStat::SYMLINK),
            // RFC 8881 §18.16.3: OPEN of anything else that is not a regular file.
            Kind::Special { .. } => return Err(NfsStat::WRONG_TYPE),
        }
        self.check_share(file, cid, &a.owner.owner, access, deny)?;
        if !under_delegation && self.break_delegations(file, cid, access, deny) > 0 {
            return Err(NfsStat::DELAY);
        }
        let owner = a.owner.owner;
        // One open stateid per (client, owner, file); a second OPEN upgrades it.
        let found = self.states.iter_mut().find_map(|(k, s)| match s {
            StateEntry::Open {
                clientid,
                owner: o,
                file: f,
                access: acc,
                deny: d,
                seqid,
            } if *clientid == cid && *o == owner && *f == file => {
                *acc |= access;
                *d |= deny;
                *seqid += 1;
                Some(Stateid {
                    seqid: *seqid,
                    other: *k,
                })
            }
            _ => None,
        });
        let stateid = match found {
            Some(s) => s,
            None => {
                let other = self.new_other();
                self.states.insert(
                    other,
                    StateEntry::Open {
                        clientid: cid,
                        owner,
                        file,
                        access,
                        deny,
                        seqid: 1,
                    },
                );
                Stateid { seqid: 1, other }
            }
        };
        ctx.cfh = Some(file);
        ctx.csid = Some(stateid);
        let delegation = self.offer_delegation(cid, file, access, want, grantable);
        Ok(OpenResOk {
            stateid,
            cinfo: cinfo(cinfo_v.0, cinfo_v.1),
            rflags: OPEN4_RESULT_LOCKTYPE_POSIX,
            attrset,
            delegation,
        })
    }

    /// RFC 8881 §9.7 / §18.16.3: an OPEN by `owner` of `cid` asking `access` and `deny`
    /// conflicts with another open-owner's open of `file` whose deny covers the access asked,
    /// or whose access the deny asked covers: SHARE_DENIED. (The same open-owner's own open
    /// is upgraded instead.)
    fn check_share(
        &self,
        file: u64,
        cid: u64,
        owner: &[u8],
        access: u32,
        deny: u32,
    ) -> Result<(), NfsStat> {
        let conflict = self.states.values().any(|s| match s {
            StateEntry::Open {
                clientid,
                owner: o,
                file: f,
                access: acc,
                deny: d,
                ..
            } => {
                *f == file
                    && !(*clientid == cid && o.as_slice() == owner)
                    && (access & d != 0 || deny & acc != 0)
            }
            StateEntry::Layout { .. } | StateEntry::Lock { .. } | StateEntry::Deleg { .. } => false,
        });
        if conflict {
            Err(NfsStat::SHARE_DENIED)
        } else {
            Ok(())
        }
    }

    /// OPEN_DOWNGRADE, RFC 8881 §18.18.3: the new access and deny must be subsets of what the
    /// open holds (else INVAL), and the access not empty.
    pub(crate) fn open_downgrade(&mut self, ctx: &Ctx, a: &OpenDowngradeArgs) -> NfsRes<Stateid> {
        let cid = ctx.clientid()?;
        let sid = ctx.sid(&a.open_stateid)?;
        let new_access = a.share_access & OPEN4_SHARE_ACCESS_BOTH;
        match self.states.get_mut(&sid.other) {
            Some(StateEntry::Open {
                clientid,
                access,
                deny,
                seqid,
                ..
            }) if *clientid == cid => {
                if new_access == 0 || new_access & !*access != 0 || a.share_deny & !*deny != 0 {
                    return Err(NfsStat::INVAL);
                }
                *access = new_access;
                *deny = a.share_deny;
                *seqid += 1;
                Ok(Stateid {
                    seqid: *seqid,
                    other: sid.other,
                })
            }
            Some(_) => Err(NfsStat::BAD_STATEID),
            None => Err(self.unknown_stateid(&sid)),
        }
    }

    pub(crate) fn close(&mut self, ctx: &Ctx, sid: &Stateid) -> NfsRes<Stateid> {
        let cid = ctx.clientid()?;
        let sid = &ctx.sid(sid)?;
        match self.states.get(&sid.other) {
            Some(StateEntry::Open { file, seqid, .. }) => {
                let (file, seqid) = (*file, *seqid);
                self.states.remove(&sid.other);
                // The open's lock stateids and their locks go with it.
                self.states.retain(
                    |_, s| !matches!(s, StateEntry::Lock { open, .. } if *open == sid.other),
                );
                // Layouts are return-on-close: the last close of the file by this client
                // returns them.
                let still_open = self.states.values().any(|s| {
                    matches!(s, StateEntry::Open { clientid, file: f, .. }
                        if *clientid == cid && *f == file)
                });
                if !still_open {
                    self.states.retain(|_, s| {
                        !matches!(s, StateEntry::Layout { clientid, file: f, .. }
                            if *clientid == cid && *f == file)
                    });
                    self.reap_orphans();
                }
                Ok(Stateid {
                    seqid: seqid + 1,
                    other: sid.other,
                })
            }
            Some(_) => Err(NfsStat::BAD_STATEID),
            None => Err(self.unknown_stateid(sid)),
        }
    }

    pub(crate) fn read(&mut self, ctx: &Ctx, a: &ReadArgs) -> NfsRes<ReadResOk> {
        let id = ctx.cfh()?;
        let sid = ctx.sid(&a.stateid)?;
        self.check_sid_for_io(&sid)?;
        self.refuse_in_grace(Some(&sid))?;
        let (data, eof) = self.fs.read(id, a.offset, a.count.min(MAX_IO_BYTES))?;
        Ok(ReadResOk { eof, data })
    }

    pub(crate) fn write(&mut self, ctx: &Ctx, a: &WriteArgs) -> NfsRes<WriteResOk> {
        let id = ctx.cfh()?;
        let sid = ctx.sid(&a.stateid)?;
        self.check_sid_for_io(&sid)?;
        self.refuse_in_grace(Some(&sid))?;
        let count = u32::try_from(a.data.len())
            .ok()
            .filter(|&n| n <= MAX_IO_BYTES)
            .ok_or(NfsStat::INVAL)?;
        let off = a.offset;
        let end = off.saturating_add(u64::from(count));
        let bs = self.fs.block_bytes;
        let (from, to) = (off / bs * bs, end.div_ceil(bs) * bs);
        // Other clients' layouts on the range come back before the MDS writes it.
        if self.recall_file(id, ctx.clientid, from, to, true) > 0 {
            return Err(NfsStat::DELAY);
        }
        let stale = self.fs.write_changes_map(id, off, u64::from(count));
        // RFC 8881 §18.32.3: only FILE_SYNC4 / DATA_SYNC4 need the data (and for FILE_SYNC4
        // the metadata) durable before the reply; UNSTABLE4 waits for COMMIT.
        let wanted = match a.stable {
            StableHow::Unstable => Durability::Unstable,
            StableHow::DataSync | StableHow::FileSync => Durability::Stable,
        };
        let done = self.fs.write(id, off, &a.data, wanted)?;
        if stale {
            // The writer's own cached layout no longer matches the map (its page cache has
            // the data): recall it without holding up this WRITE.
            self.recall_file(id, None, from, to, true);
        }
        Ok(WriteResOk {
            count,
            committed: match done {
                Durability::Unstable => StableHow::Unstable,
                // Data and metadata are on disk before the reply.
                Durability::Stable => StableHow::FileSync,
            },
            writeverf: Verifier(self.write_verf),
        })
    }

    /// COMMIT, RFC 8881 §18.3: every UNSTABLE write is made durable (the whole volume is
    /// synced at once, so the range does not matter), then the verifier is returned; it is the
    /// boot epoch, so a client whose unstable writes were lost in a restart sees it change.
    pub(crate) fn commit(&mut self, ctx: &Ctx) -> NfsRes<CommitResOk> {
        let id = ctx.cfh()?;
        match self.fs.get(id)?.kind {
            Kind::File => {}
            Kind::Dir => return Err(NfsStat::ISDIR),
            Kind::Symlink(_) | Kind::Special { .. } => return Err(NfsStat::INVAL),
        }
        self.fs.flush()?;
        Ok(CommitResOk {
            writeverf: Verifier(self.write_verf),
        })
    }

    /// CLONE of a whole file (saved fh: source, current fh: destination).
    pub(crate) fn clone_range(&mut self, ctx: &Ctx, a: &CloneArgs) -> Result<(), NfsStat> {
        let d = ctx.cfh()?;
        let s = ctx.sfh()?;
        self.check_sid_for_io(&ctx.sid(&a.src_stateid)?)?;
        self.check_sid_for_io(&ctx.sid(&a.dst_stateid)?)?;
        if a.src_offset != 0
            || a.dst_offset != 0
            || (a.count != 0 && a.count < self.fs.get(s)?.size)
        {
            return Err(NfsStat::NOTSUPP);
        }
        if self.recall_file(d, None, 0, u64::MAX, true)
            + self.recall_file(s, None, 0, u64::MAX, false)
            > 0
        {
            return Err(NfsStat::DELAY);
        }
        self.fs.clone_file(s, d)
    }
}
