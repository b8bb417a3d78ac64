//! Read delegations (RFC 8881 §10.4): granted on OPEN, recalled (CB_RECALL) when another
//! client opens the file in a way that conflicts, returned by DELEGRETURN, revoked when the
//! recall is not answered by a DELEGRETURN within a lease.
//!
//! What is granted: a read delegation to a client that opens a regular file for reading only
//! (CLAIM_NULL or CLAIM_FH) when nobody has the file open for writing, no delegation of it is
//! being recalled, the client has a back channel, and the bounds
//! [`MAX_DELEGATIONS_PER_CLIENT`] / [`MAX_DELEGATIONS`] leave room. Write delegations are
//! never granted. No CB_NOTIFY_LOCK, CB_PUSH_DELEG or "signal when available" is offered.
//!
//! The OPEN4_SHARE_ACCESS_WANT_* bits (§18.16.3) steer it: NO_PREFERENCE (0) gets a read
//! delegation when one can be granted and OPEN_DELEGATE_NONE otherwise; an explicit want
//! that is not met gets OPEN_DELEGATE_NONE_EXT with the WND4_* reason; WANT_NO_DELEG gets
//! NONE_EXT/WND4_NOT_WANTED, WANT_CANCEL NONE_EXT/WND4_CANCELLED (no want is ever kept
//! pending, so there is nothing to cancel).

use std::time::Instant;

use pnfs_proto::nfs4::{
    why_no_delegation, NfsAce, NfsStat, OpenDelegation, OpenNoneDelegation, OpenReadDelegation,
    Stateid, OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_ACCESS_WANT_ANY_DELEG,
    OPEN4_SHARE_ACCESS_WANT_CANCEL, OPEN4_SHARE_ACCESS_WANT_DELEG_MASK,
    OPEN4_SHARE_ACCESS_WANT_NO_DELEG, OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE,
    OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED, OPEN4_SHARE_ACCESS_WANT_READ_DELEG,
    OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL, OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG,
    OPEN4_SHARE_ACCESS_WRITE, OPEN4_SHARE_DENY_READ,
};

use super::callback::Recall;
use super::{fh_of, Ctx, State, StateEntry};

/// Most delegations one client holds; past it OPEN grants none (WND4_RESOURCE).
pub(crate) const MAX_DELEGATIONS_PER_CLIENT: usize = 1024;
/// Most delegations all clients hold together.
pub(crate) const MAX_DELEGATIONS: usize = 16 * 1024;

/// Every share_access bit §18.16.3 defines: access, the delegation want, and the two want
/// flags (which we accept and do not act on).
const SHARE_ACCESS_DEFINED: u32 = OPEN4_SHARE_ACCESS_BOTH
    | OPEN4_SHARE_ACCESS_WANT_DELEG_MASK
    | OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL
    | OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED;

/// The delegation an OPEN asks for (the want bits of share_access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    NoPreference,
    Read,
    Write,
    Any,
    None,
    Cancel,
}

/// The want of `share_access`; INVAL for undefined bits or an undefined want value.
pub(crate) fn want_of(share_access: u32) -> Result<Want, NfsStat> {
    if share_access & !SHARE_ACCESS_DEFINED != 0 {
        return Err(NfsStat::INVAL);
    }
    Ok(match share_access & OPEN4_SHARE_ACCESS_WANT_DELEG_MASK {
        OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE => Want::NoPreference,
        OPEN4_SHARE_ACCESS_WANT_READ_DELEG => Want::Read,
        OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG => Want::Write,
        OPEN4_SHARE_ACCESS_WANT_ANY_DELEG => Want::Any,
        OPEN4_SHARE_ACCESS_WANT_NO_DELEG => Want::None,
        OPEN4_SHARE_ACCESS_WANT_CANCEL => Want::Cancel,
        _ => return Err(NfsStat::INVAL),
    })
}

/// Why no delegation is granted.
fn none_ext(why: OpenNoneDelegation) -> OpenDelegation {
    OpenDelegation::NoneExt(why)
}

impl State {
    /// The delegation for an OPEN by `cid` of `file` with `access` that has just been
    /// granted (`grantable`: the claim allows one — CLAIM_NULL or CLAIM_FH).
    pub(crate) fn offer_delegation(
        &mut self,
        cid: u64,
        file: u64,
        access: u32,
        want: Want,
        grantable: bool,
    ) -> OpenDelegation {
        let reason = match want {
            Want::None => {
                return none_ext(OpenNoneDelegation::Other(why_no_delegation::NOT_WANTED))
            }
            Want::Cancel => {
                return none_ext(OpenNoneDelegation::Other(why_no_delegation::CANCELLED))
            }
            // Write delegations are not supported on any file type.
            Want::Write => {
                return none_ext(OpenNoneDelegation::Other(
                    why_no_delegation::WRITE_DELEG_NOT_SUPP_FTYPE,
                ))
            }
            Want::NoPreference | Want::Read | Want::Any => {
                self.why_no_read_delegation(cid, file, access, grantable)
            }
        };
        let Some(why) = reason else {
            let other = self.new_other();
            self.states.insert(
                other,
                StateEntry::Deleg {
                    clientid: cid,
                    file,
                    seqid: 1,
                    recalled: None,
                },
            );
            return OpenDelegation::Read(OpenReadDelegation {
                stateid: Stateid { seqid: 1, other },
                recall: false,
                // No access is granted through the delegation: the client asks ACCESS.
                permissions: NfsAce::default(),
            });
        };
        if want == Want::NoPreference {
            OpenDelegation::None
        } else {
            none_ext(why)
        }
    }

    /// Why `cid` cannot get a read delegation of `file` for an open with `access` (None: it
    /// can).
    fn why_no_read_delegation(
        &self,
        cid: u64,
        file: u64,
        access: u32,
        grantable: bool,
    ) -> Option<OpenNoneDelegation> {
        let contention = Some(OpenNoneDelegation::Contention {
            server_will_push_deleg: false,
        });
        let resource = Some(OpenNoneDelegation::Resource {
            server_will_signal_avail: false,
        });
        if access & OPEN4_SHARE_ACCESS_WRITE != 0 {
            // A writing open would need a write delegation.
            return Some(OpenNoneDelegation::Other(
                why_no_delegation::WRITE_DELEG_NOT_SUPP_FTYPE,
            ));
        }
        if !grantable {
            return contention;
        }
        // §10.4.2: nobody may be writing the file; no delegation of it may be on its way back;
        // the client has none of it yet.
        let mut mine = 0;
        let mut all = 0;
        for s in self.states.values() {
            match s {
                StateEntry::Open {
                    file: f, access: a, ..
                } if *f == file && a & OPEN4_SHARE_ACCESS_WRITE != 0 => return contention,
                StateEntry::Deleg {
                    clientid,
                    file: f,
                    recalled,
                    ..
                } => {
                    if *f == file && (recalled.is_some() || *clientid == cid) {
                        return contention;
                    }
                    all += 1;
                    if *clientid == cid {
                        mine += 1;
                    }
                }
                _ => {}
            }
        }
        // §10.2.1: a delegation needs a callback path to be recalled by.
        let back = self
            .sessions
            .values()
            .any(|s| s.clientid == cid && s.back.is_some());
        if !back || mine >= MAX_DELEGATIONS_PER_CLIENT || all >= MAX_DELEGATIONS {
            return resource;
        }
        None
    }

    /// §10.4.1 (and §9.7 share reservations): an OPEN by `cid` of `file` with `access` and
    /// `deny` conflicts with other clients' read delegations of it when it writes or denies
    /// reading. Those are recalled (CB_RECALL, once each); the number still out is returned
    /// (the OPEN answers DELAY until it is 0).
    pub(crate) fn break_delegations(
        &mut self,
        file: u64,
        cid: u64,
        access: u32,
        deny: u32,
    ) -> usize {
        if access & OPEN4_SHARE_ACCESS_WRITE == 0 && deny & OPEN4_SHARE_DENY_READ == 0 {
            return 0;
        }
        self.recall_delegations(file, Some(cid))
    }

    /// §10.4.1 (as nfsd breaks delegations on unlink, rename, link and setattr): a change of
    /// `file`'s name or attributes by a client other than the holders recalls their
    /// delegations and waits (DELAY) until they are returned.
    pub(crate) fn delegations_in_the_way(&mut self, file: u64, ctx: &Ctx) -> Result<(), NfsStat> {
        if self.recall_delegations(file, ctx.clientid) > 0 {
            Err(NfsStat::DELAY)
        } else {
            Ok(())
        }
    }

    /// Recalls every delegation of `file` not held by `except`; returns how many are out.
    pub(crate) fn recall_delegations(&mut self, file: u64, except: Option<u64>) -> usize {
        let mut n = 0;
        let now = Instant::now();
        for (k, s) in &mut self.states {
            let StateEntry::Deleg {
                clientid,
                file: f,
                seqid,
                recalled,
            } = s
            else {
                continue;
            };
            if *f != file || Some(*clientid) == except {
                continue;
            }
            n += 1;
            if recalled.is_none() {
                *recalled = Some(now);
                self.recalls.push(Recall {
                    clientid: *clientid,
                    fh: fh_of(file),
                    stateid: Stateid {
                        seqid: *seqid,
                        other: *k,
                    },
                    delegation: true,
                });
            }
        }
        n
    }

    /// The delegation `sid` names if `cid` holds it on `file` (for CLAIM_DELEGATE_CUR and
    /// CLAIM_DELEG_CUR_FH, §18.16.3: opens the client did locally under the delegation,
    /// made real while it is being returned).
    pub(crate) fn check_delegation(
        &self,
        cid: u64,
        file: u64,
        sid: &Stateid,
    ) -> Result<(), NfsStat> {
        match self.states.get(&sid.other) {
            Some(StateEntry::Deleg {
                clientid, file: f, ..
            }) if *clientid == cid && *f == file => Ok(()),
            Some(_) => Err(NfsStat::BAD_STATEID),
            None => Err(self.unknown_stateid(sid)),
        }
    }

    /// DELEGRETURN, §18.6: the current file's delegation `sid` goes. A revoked one answers
    /// DELEG_REVOKED (the client then frees it with FREE_STATEID, §8.2.4).
    pub(crate) fn delegreturn(&mut self, ctx: &Ctx, sid: &Stateid) -> Result<(), NfsStat> {
        let cid = ctx.clientid()?;
        let file = ctx.cfh()?;
        let sid = ctx.sid(sid)?;
        match self.states.get(&sid.other) {
            Some(StateEntry::Deleg {
                clientid,
                file: f,
                seqid,
                ..
            }) if *clientid == cid => {
                if *f != file {
                    return Err(NfsStat::BAD_STATEID);
                }
                if sid.seqid != 0 && sid.seqid != *seqid {
                    return Err(if sid.seqid < *seqid {
                        NfsStat::OLD_STATEID
                    } else {
                        NfsStat::BAD_STATEID
                    });
                }
                self.states.remove(&sid.other);
                Ok(())
            }
            Some(_) => Err(NfsStat::BAD_STATEID),
            None => Err(self.unknown_stateid(&sid)),
        }
    }

    /// Revokes delegations recalled more than a lease ago (§10.4.6 lets the server revoke a
    /// delegation not returned in a lease); their client learns of it as of a revoked layout
    /// (SEQ4_STATUS_RECALLABLE_STATE_REVOKED, DELEG_REVOKED) until it frees the stateid.
    pub(crate) fn revoke_late_delegations(&mut self, now: Instant) {
        let lease = self.settings.lease;
        let late: Vec<[u8; 12]> = self
            .states
            .iter()
            .filter_map(|(k, s)| match s {
                StateEntry::Deleg {
                    recalled: Some(t), ..
                } if now.saturating_duration_since(*t) > lease => Some(*k),
                _ => None,
            })
            .collect();
        for k in late {
            tracing::warn!("delegation {k:02x?}: not returned a lease after its recall; revoked");
            if let Some(StateEntry::Deleg { clientid, file, .. }) = self.states.remove(&k) {
                self.remember_revoked(k, clientid, file, true);
            }
            self.delegations_revoked += 1;
        }
    }

    /// Delegations held on the file at `path` (admin/test hook).
    pub fn delegations_on(&self, path: &str) -> Result<usize, NfsStat> {
        let id = self.fs.resolve(path)?;
        Ok(self
            .states
            .values()
            .filter(|s| matches!(s, StateEntry::Deleg { file, .. } if *file == id))
            .count())
    }
}
