//! Byte-range locks: LOCK, LOCKT, LOCKU (RFC 8881 §9, §18.10–§18.12).
//!
//! A lock-owner's locks on a file live in one lock stateid (`StateEntry::Lock`), created by
//! LOCK from an open stateid (open_to_lock_owner4) and used by later LOCK / LOCKU
//! (exist_lock_owner4). Locks are advisory and POSIX-like: a LOCK over a range the owner
//! already holds replaces that part (upgrade or downgrade), LOCKU of a range not held is OK.
//! They go with their open's CLOSE, with FREE_STATEID once empty, and with the client's state
//! (lease expiry, replacement).

use pnfs_proto::nfs4::{
    LockArgs, LockDenied, LockType, Locker, LocktArgs, LockuArgs, NfsStat, StateOwner, Stateid,
    OPEN4_SHARE_ACCESS_WRITE,
};

use super::{Ctx, State, StateEntry, MAX_LOCK_RANGES_PER_STATEID};

/// Why a LOCK or LOCKT was refused.
pub(crate) enum Refused {
    /// NFS4ERR_DENIED with the conflicting lock.
    Denied(LockDenied),
    /// Any other error.
    Status(NfsStat),
}

impl From<NfsStat> for Refused {
    fn from(e: NfsStat) -> Self {
        Self::Status(e)
    }
}

fn is_write(t: LockType) -> bool {
    matches!(t, LockType::Write | LockType::WriteW)
}

/// The exclusive end of `offset`/`length` (all ones: to the end of the file); INVAL for a
/// zero length or a range past 2^64 (§18.10.3).
fn range(offset: u64, length: u64) -> Result<u64, NfsStat> {
    if length == 0 {
        return Err(NfsStat::INVAL);
    }
    if length == u64::MAX {
        return Ok(u64::MAX);
    }
    offset.checked_add(length).ok_or(NfsStat::INVAL)
}

/// `ranges` without [`off`, `end`).
fn cut(ranges: &[(u64, u64, bool)], off: u64, end: u64) -> Vec<(u64, u64, bool)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(a, b, w) in ranges {
        if b <= off || a >= end {
            out.push((a, b, w));
            continue;
        }
        if a < off {
            out.push((a, off, w));
        }
        if b > end {
            out.push((end, b, w));
        }
    }
    out
}

impl State {
    /// The first lock of another lock-owner on `file` that conflicts with [`off`, `end`) of
    /// `write` (two reads never conflict).
    fn lock_conflict(
        &self,
        file: u64,
        me: (u64, &[u8]),
        off: u64,
        end: u64,
        write: bool,
    ) -> Option<LockDenied> {
        self.states.values().find_map(|s| match s {
            StateEntry::Lock {
                clientid,
                owner,
                file: f,
                ranges,
                ..
            } if *f == file && (*clientid, owner.as_slice()) != me => ranges
                .iter()
                .find(|&&(a, b, w)| a < end && off < b && (w || write))
                .map(|&(a, b, w)| LockDenied {
                    offset: a,
                    length: if b == u64::MAX { u64::MAX } else { b - a },
                    locktype: if w { LockType::Write } else { LockType::Read },
                    owner: StateOwner {
                        clientid: *clientid,
                        owner: owner.clone(),
                    },
                }),
            _ => None,
        })
    }

    pub(crate) fn lock(&mut self, ctx: &mut Ctx, a: &LockArgs) -> Result<Stateid, Refused> {
        let cid = ctx.clientid()?;
        let file = ctx.cfh()?;
        let end = range(a.offset, a.length)?;
        // §8.4.2: during grace only reclaims, and reclaims only then.
        if a.reclaim {
            if !self.in_grace() {
                return Err(NfsStat::NO_GRACE.into());
            }
            if !self.clients.get(&cid).is_some_and(|c| c.can_reclaim()) {
                return Err(NfsStat::RECLAIM_BAD.into());
            }
        } else if self.in_grace() {
            return Err(NfsStat::GRACE.into());
        }
        let write = is_write(a.locktype);
        // The lock-owner and the open it locks under.
        let (owner, open, existing) = match &a.locker {
            Locker::New(n) => {
                let osid = ctx.sid(&n.open_stateid)?;
                match self.states.get(&osid.other) {
                    Some(StateEntry::Open {
                        clientid, file: f, ..
                    }) if *clientid == cid && *f == file => {}
                    Some(_) => return Err(NfsStat::BAD_STATEID.into()),
                    None => return Err(self.unknown_stateid(&osid).into()),
                }
                if n.lock_owner.clientid != cid {
                    return Err(NfsStat::STALE_CLIENTID.into());
                }
                let owner = n.lock_owner.owner.clone();
                // A lock-owner has one lock stateid per file: a second open_to_lock_owner4
                // for it goes on with that one.
                let existing = self.states.iter().find_map(|(k, s)| match s {
                    StateEntry::Lock {
                        clientid,
                        owner: o,
                        file: f,
                        ..
                    } if *clientid == cid && *o == owner && *f == file => Some(*k),
                    _ => None,
                });
                (owner, osid.other, existing)
            }
            Locker::Exist(e) => {
                let lsid = ctx.sid(&e.lock_stateid)?;
                match self.states.get(&lsid.other) {
                    Some(StateEntry::Lock {
                        clientid,
                        owner,
                        file: f,
                        open,
                        seqid,
                        ..
                    }) if *clientid == cid && *f == file => {
                        // §8.2.2: a seqid other than the current one (or 0) is old or bad.
                        if lsid.seqid != 0 && lsid.seqid != *seqid {
                            return Err(if lsid.seqid < *seqid {
                                NfsStat::OLD_STATEID
                            } else {
                                NfsStat::BAD_STATEID
                            }
                            .into());
                        }
                        (owner.clone(), *open, Some(lsid.other))
                    }
                    Some(_) => return Err(NfsStat::BAD_STATEID.into()),
                    None => return Err(self.unknown_stateid(&lsid).into()),
                }
            }
        };
        // §18.10.4: a write lock needs an open for writing (OPENMODE).
        if write {
            let access = match self.states.get(&open) {
                Some(StateEntry::Open { access, .. }) => *access,
                _ => return Err(NfsStat::BAD_STATEID.into()),
            };
            if access & OPEN4_SHARE_ACCESS_WRITE == 0 {
                return Err(NfsStat::OPENMODE.into());
            }
        }
        if let Some(d) = self.lock_conflict(file, (cid, &owner), a.offset, end, write) {
            return Err(Refused::Denied(d));
        }
        let other = match existing {
            Some(k) => k,
            None => {
                if !self.room_for_stateid(cid) {
                    return Err(NfsStat::DELAY.into());
                }
                let k = self.new_other();
                self.states.insert(
                    k,
                    StateEntry::Lock {
                        clientid: cid,
                        owner,
                        file,
                        open,
                        seqid: 0,
                        ranges: Vec::new(),
                    },
                );
                k
            }
        };
        let Some(StateEntry::Lock { seqid, ranges, .. }) = self.states.get_mut(&other) else {
            return Err(NfsStat::SERVERFAULT.into());
        };
        let mut held = cut(ranges, a.offset, end);
        held.push((a.offset, end, write));
        if held.len() > MAX_LOCK_RANGES_PER_STATEID {
            return Err(NfsStat::LOCK_RANGE.into());
        }
        held.sort_unstable();
        *ranges = held;
        *seqid += 1;
        let sid = Stateid {
            seqid: *seqid,
            other,
        };
        ctx.csid = Some(sid);
        Ok(sid)
    }

    pub(crate) fn lockt(&mut self, ctx: &Ctx, a: &LocktArgs) -> Result<(), Refused> {
        let cid = ctx.clientid()?;
        let file = ctx.cfh()?;
        let end = range(a.offset, a.length)?;
        if self.in_grace() {
            return Err(NfsStat::GRACE.into());
        }
        let me = (a.owner.clientid, a.owner.owner.as_slice());
        if a.owner.clientid != cid {
            return Err(NfsStat::STALE_CLIENTID.into());
        }
        match self.lock_conflict(file, me, a.offset, end, is_write(a.locktype)) {
            Some(d) => Err(Refused::Denied(d)),
            None => Ok(()),
        }
    }

    pub(crate) fn locku(&mut self, ctx: &mut Ctx, a: &LockuArgs) -> Result<Stateid, NfsStat> {
        let cid = ctx.clientid()?;
        let file = ctx.cfh()?;
        let end = range(a.offset, a.length)?;
        let sid = ctx.sid(&a.lock_stateid)?;
        let unknown = self.unknown_stateid(&sid);
        match self.states.get_mut(&sid.other) {
            Some(StateEntry::Lock {
                clientid,
                file: f,
                seqid,
                ranges,
                ..
            }) if *clientid == cid && *f == file => {
                if sid.seqid != 0 && sid.seqid != *seqid {
                    return Err(if sid.seqid < *seqid {
                        NfsStat::OLD_STATEID
                    } else {
                        NfsStat::BAD_STATEID
                    });
                }
                let left = cut(ranges, a.offset, end);
                if left.len() > MAX_LOCK_RANGES_PER_STATEID {
                    return Err(NfsStat::LOCK_RANGE);
                }
                *ranges = left;
                *seqid += 1;
                let out = Stateid {
                    seqid: *seqid,
                    other: sid.other,
                };
                ctx.csid = Some(out);
                Ok(out)
            }
            Some(_) => Err(NfsStat::BAD_STATEID),
            None => Err(unknown),
        }
    }
}
