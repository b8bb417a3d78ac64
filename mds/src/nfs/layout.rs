//! pNFS: devices, LAYOUTGET / LAYOUTCOMMIT / LAYOUTRETURN and layout recalls. Layout bodies
//! are `pnfs_proto::layout::block` types.

use std::time::Instant;

use pnfs_proto::layout::block::{BlockLayout, BlockLayoutUpdate};
use pnfs_proto::layout::{Extent, ExtentState};
use pnfs_proto::nfs4::{
    DeviceId, GetdeviceinfoArgs, GetdeviceinfoRes, GetdeviceinfoResOk, GetdevicelistArgs,
    GetdevicelistResOk, Layout, LayoutContent, LayoutIoMode, LayoutType, LayoutcommitArgs,
    LayoutcommitResOk, LayoutgetArgs, LayoutgetResOk, Layoutreturn, LayoutreturnArgs,
    LayoutreturnResOk, NfsRes, NfsStat, Stateid, Verifier,
};
use pnfs_proto::xdr::{from_bytes, to_bytes};

use super::callback::Recall;
use super::{
    fh_of, Ctx, Seg, State, StateEntry, MAX_READ_LAYOUT_BYTES, MAX_RW_LAYOUT_BYTES,
    MAX_SEGS_PER_LAYOUT_STATEID,
};
use crate::fs::{Grant, LayoutPiece};

/// Encoded size of one pnfs_block_extent4 (device id, three offsets, state).
const EXTENT_XDR_BYTES: u32 = 16 + 8 + 8 + 8 + 4;
/// Bytes of a LAYOUTGET reply besides the extents, rounded up.
const LAYOUTGET_OVERHEAD_BYTES: u32 = 64;
/// NOTIFY_DEVICEID4_CHANGE and NOTIFY_DEVICEID4_DELETE (bits 1 and 2 of notify_types).
const NOTIFY_DEVICEID_CHANGE_DELETE: u32 = (1 << 1) | (1 << 2);
/// Bytes of a GETDEVICEINFO reply besides the device address body.
const GETDEVICEINFO_OVERHEAD_BYTES: u32 = 16;

/// The device notifications granted for the ones asked: CHANGE and DELETE (an empty set
/// when none of those is asked).
fn granted_notifications(asked: &pnfs_proto::nfs4::Bitmap4) -> pnfs_proto::nfs4::Bitmap4 {
    let granted = asked.0.first().copied().unwrap_or(0) & NOTIFY_DEVICEID_CHANGE_DELETE;
    if granted == 0 {
        pnfs_proto::nfs4::Bitmap4::new()
    } else {
        pnfs_proto::nfs4::Bitmap4(vec![granted])
    }
}

/// The extent state of a layout piece (`LayoutPiece::es` uses the RFC 5663 numbers).
fn extent_state(es: u32) -> ExtentState {
    match es {
        0 => ExtentState::ReadWriteData,
        1 => ExtentState::ReadData,
        2 => ExtentState::InvalidData,
        _ => ExtentState::NoneData,
    }
}

/// Joins adjacent NONE_DATA pieces.
fn merge_none(p: &mut Vec<LayoutPiece>) {
    let mut out: Vec<LayoutPiece> = Vec::with_capacity(p.len());
    for x in p.drain(..) {
        if let Some(l) = out.last_mut() {
            if l.es == 3 && x.es == 3 && l.file_off + l.len == x.file_off {
                l.len += x.len;
                continue;
            }
        }
        out.push(x);
    }
    *p = out;
}

/// Only the block layout type is served.
fn check_type(t: LayoutType) -> Result<(), NfsStat> {
    if t == LayoutType::BlockVolume {
        Ok(())
    } else {
        Err(NfsStat::UNKNOWN_LAYOUTTYPE)
    }
}

/// `segs` with `seg` added. Segments of the same mode and truncation generation that
/// overlap or touch become one (their union was granted, under the same fence), so a client
/// that gets the same or the next range again does not grow the list. None when the result
/// would hold more than [`MAX_SEGS_PER_LAYOUT_STATEID`] segments.
pub(crate) fn with_seg(segs: &[Seg], seg: Seg) -> Option<Vec<Seg>> {
    let mut all: Vec<Seg> = segs.iter().copied().chain([seg]).collect();
    all.sort_unstable_by_key(|g| (g.rw, g.gen, g.off));
    let mut out: Vec<Seg> = Vec::with_capacity(all.len());
    for g in all {
        match out.last_mut() {
            Some(l) if l.rw == g.rw && l.gen == g.gen && g.off <= l.end => {
                l.end = l.end.max(g.end);
            }
            _ => out.push(g),
        }
    }
    (out.len() <= MAX_SEGS_PER_LAYOUT_STATEID).then_some(out)
}

impl State {
    /// The one device: the logical volume, named by its first volume's UUID.
    pub(crate) fn device_id(&self) -> DeviceId {
        DeviceId(self.fs.vol.volumes[0].uuid)
    }

    pub(crate) fn getdevicelist(&self, a: &GetdevicelistArgs) -> NfsRes<GetdevicelistResOk> {
        check_type(a.layout_type)?;
        Ok(GetdevicelistResOk {
            cookie: 0,
            cookieverf: Verifier([0; 8]),
            deviceid_list: vec![self.device_id()],
            eof: true,
        })
    }

    pub(crate) fn getdeviceinfo(&self, a: &GetdeviceinfoArgs) -> GetdeviceinfoRes {
        if let Err(e) = check_type(a.layout_type) {
            return GetdeviceinfoRes::Error(e);
        }
        if a.device_id != self.device_id() {
            return GetdeviceinfoRes::Error(NfsStat::NOENT);
        }
        let body = to_bytes(&self.fs.vol.device_addr());
        let need = u32::try_from(body.len())
            .unwrap_or(u32::MAX)
            .saturating_add(GETDEVICEINFO_OVERHEAD_BYTES);
        if a.maxcount != 0 && a.maxcount < need {
            return GetdeviceinfoRes::TooSmall { mincount: need };
        }
        GetdeviceinfoRes::Ok(GetdeviceinfoResOk {
            device_addr: pnfs_proto::nfs4::DeviceAddr {
                layout_type: LayoutType::BlockVolume,
                addr_body: body,
            },
            // Grant the CHANGE/DELETE notifications asked for, as nfsd does: the devices
            // never change while the MDS runs, so none is ever due. Linux marks a device whose
            // reply grants fewer types than it asked "nocache" and resolves it again (a
            // blkmapd upcall) for every new layout: thousands of upcalls in the exerciser,
            // until one hung.
            notification: granted_notifications(&a.notify_types),
        })
    }

    #[allow(clippy::too_many_lines)]
    pub(crate) fn layout_get(
        &mut self,
        ctx: &mut Ctx,
        a: &LayoutgetArgs,
    ) -> NfsRes<LayoutgetResOk> {
        let cid = ctx.clientid()?;
        let id = ctx.cfh()?;
        check_type(a.layout_type)?;
        let rw = match a.iomode {
            LayoutIoMode::Read => false,
            LayoutIoMode::ReadWrite => true,
            LayoutIoMode::Any => return Err(NfsStat::BADIOMODE),
        };
        if self.in_grace() {
            return Err(NfsStat::GRACE);
        }
        let (off, len, minlen) = (a.offset, a.length, a.minlength);
        // As nfsd: an empty range, a range past 2^64 (other than "to EOF") or a minlength
        // above the length is INVAL (RFC 8881 §18.43.3).
        if len == 0 || (len != u64::MAX && off.checked_add(len).is_none()) || minlen > len {
            tracing::debug!("LAYOUTGET file {id} rw {rw}: invalid range {off}+{len} min {minlen}");
            return Err(NfsStat::INVAL);
        }
        let sid = ctx.sid(&a.stateid)?;
        // The stateid: an open of this file by this client, or its layout stateid.
        let layout_other = match self.states.get(&sid.other) {
            // Linux sends the lock stateid when the process holds a lock (§18.43.3 allows
            // open, lock and delegation stateids).
            // Linux sends the delegation stateid when it holds a delegation.
            Some(
                StateEntry::Open { clientid, file, .. }
                | StateEntry::Lock { clientid, file, .. }
                | StateEntry::Deleg { clientid, file, .. },
            ) if *clientid == cid && *file == id => None,
            Some(StateEntry::Layout {
                clientid,
                file,
                seqid,
                ..
            }) if *clientid == cid && *file == id => {
                if sid.seqid > *seqid {
                    return Err(NfsStat::BAD_STATEID);
                }
                Some(sid.other)
            }
            Some(_) => return Err(NfsStat::BAD_STATEID),
            None => return Err(self.unknown_stateid(&sid)),
        };
        if layout_other.is_none() {
            // A LAYOUTGET on an open stateid starts the client's layout of the file over:
            // it has dropped any revoked layout of it (Linux never FREE_STATEIDs one).
            self.revoked_layouts
                .retain(|_, r| r.deleg || !(r.clientid == cid && r.file == id));
        }
        // No layout is granted to a client whose layout of this file is being recalled,
        // whichever stateid the request carries (nfsd: fi_lo_recalls). Otherwise a segment
        // granted in between joins the recalled state, and the client's NOMATCHING_LAYOUT
        // answer to the recall (it held nothing when the recall came) drops it: its next
        // LAYOUTCOMMIT got BAD_STATEID and the application's fsync EIO.
        let recalling = self.states.values().any(|s| {
            matches!(s, StateEntry::Layout { clientid, file, recalled: Some(_), .. }
                if *clientid == cid && *file == id)
        });
        if recalling {
            return Err(NfsStat::RECALLCONFLICT);
        }
        let bs = self.fs.block_bytes;
        let size = self.fs.get(id)?.size;
        let start = off / bs * bs;
        let want_end = if len == u64::MAX { u64::MAX } else { off + len };
        let min_end = off.saturating_add(minlen).div_ceil(bs) * bs;
        let mut end = if rw {
            let cap = start + MAX_RW_LAYOUT_BYTES;
            let e0 = if len == u64::MAX {
                size.div_ceil(bs) * bs
            } else {
                want_end.div_ceil(bs) * bs
            };
            e0.min(cap)
        } else {
            crate::fs::read_layout_end(start, want_end, size, bs, MAX_READ_LAYOUT_BYTES)
        };
        end = end.max(min_end).max(start + bs);
        // Conflicts with other clients: RW against anything, READ against RW.
        if self.recall_file(id, Some(cid), start, end, rw) > 0 {
            return Err(NfsStat::RECALLCONFLICT);
        }
        let mut pieces = self.fs.layout(id, start, end - start, rw)?;
        if !rw {
            for p in &mut pieces {
                // READ layouts carry only READ_DATA and NONE_DATA (RFC 5663 §2.3.2).
                if p.es == 2 {
                    p.es = 3;
                    p.vol_off = 0;
                }
            }
            merge_none(&mut pieces);
        }
        // Fit the body into maxcount.
        let max_exts = usize::try_from(
            (a.maxcount.saturating_sub(LAYOUTGET_OVERHEAD_BYTES) / EXTENT_XDR_BYTES).max(1),
        )
        .unwrap_or(usize::MAX);
        if pieces.len() > max_exts {
            // Keep a prefix that does not cut a copy-on-write pair.
            let mut k = max_exts;
            while k > 0 && pieces[k].file_off < pieces[k - 1].file_off + pieces[k - 1].len {
                k -= 1;
            }
            let covered = pieces[..k]
                .iter()
                .map(|p| p.file_off + p.len)
                .max()
                .unwrap_or(start);
            if k == 0 || covered < min_end {
                return Err(NfsStat::TOOSMALL);
            }
            pieces.truncate(k);
            end = covered;
        }
        tracing::debug!(
            "LAYOUTGET file {id} rw {rw} asked {off}+{len} min {minlen} -> {start}..{end} {pieces:?}"
        );
        let device_id = self.device_id();
        let body = BlockLayout {
            extents: pieces
                .iter()
                .map(|p| Extent {
                    device_id,
                    file_offset_bytes: p.file_off,
                    length_bytes: p.len,
                    storage_offset_bytes: p.vol_off,
                    state: extent_state(p.es),
                })
                .collect(),
        };
        let seg = Seg {
            rw,
            off: start,
            end,
            gen: self.fs.cut_gen(),
        };
        let stateid = self.add_layout_seg(cid, id, layout_other, seg)?;
        ctx.csid = Some(stateid);
        Ok(LayoutgetResOk {
            return_on_close: true,
            stateid,
            layouts: vec![Layout {
                offset: start,
                length: end - start,
                iomode: a.iomode,
                content: LayoutContent {
                    loc_type: LayoutType::BlockVolume,
                    loc_body: to_bytes(&body),
                },
            }],
        })
    }

    /// Records a granted segment in the client's layout stateid for the file (the one named,
    /// the one it has, or a new one) and returns the stateid with its new seqid.
    fn add_layout_seg(
        &mut self,
        cid: u64,
        file_id: u64,
        named: Option<[u8; 12]>,
        seg: Seg,
    ) -> Result<Stateid, NfsStat> {
        let found = match named {
            Some(o) => Some(o),
            None => self.states.iter().find_map(|(k, s)| match s {
                StateEntry::Layout { clientid, file, .. }
                    if *clientid == cid && *file == file_id =>
                {
                    Some(*k)
                }
                _ => None,
            }),
        };
        match found {
            Some(o) => match self.states.get_mut(&o) {
                Some(StateEntry::Layout { seqid, segs, .. }) => {
                    *segs = with_seg(segs, seg).ok_or(NfsStat::LAYOUTTRYLATER)?;
                    *seqid += 1;
                    Ok(Stateid {
                        seqid: *seqid,
                        other: o,
                    })
                }
                _ => Err(NfsStat::SERVERFAULT),
            },
            None => {
                if !self.room_for_stateid(cid) {
                    return Err(NfsStat::LAYOUTTRYLATER);
                }
                let other = self.new_other();
                self.states.insert(
                    other,
                    StateEntry::Layout {
                        clientid: cid,
                        file: file_id,
                        seqid: 1,
                        segs: vec![seg],
                        recalled: None,
                    },
                );
                Ok(Stateid { seqid: 1, other })
            }
        }
    }

    pub(crate) fn layout_commit(
        &mut self,
        ctx: &Ctx,
        a: &LayoutcommitArgs,
    ) -> NfsRes<LayoutcommitResOk> {
        let id = ctx.cfh()?;
        check_type(a.layoutupdate.lou_type)?;
        // The RW ranges granted under this layout stateid, with the truncation generation
        // at grant time (a reclaim has none: the grants were lost with the restart).
        let grants: Vec<Grant> = if a.reclaim {
            if !self.in_grace() {
                return Err(NfsStat::NO_GRACE);
            }
            Vec::new()
        } else {
            if self.in_grace() {
                return Err(NfsStat::GRACE);
            }
            let sid = ctx.sid(&a.stateid)?;
            match self.states.get(&sid.other) {
                Some(StateEntry::Layout { file, segs, .. }) if *file == id => segs
                    .iter()
                    .filter(|g| g.rw)
                    .map(|g| Grant {
                        off: g.off,
                        end: g.end,
                        gen: g.gen,
                    })
                    .collect(),
                _ => return Err(self.unknown_stateid(&sid)),
            }
        };
        // RFC 5663 §2.3.2: a client with no extents to report may send an empty
        // layoutupdate body; that commits nothing but the size and times.
        let list: Vec<(u64, u64, u64)> = if a.layoutupdate.lou_body.is_empty() {
            Vec::new()
        } else {
            let update: BlockLayoutUpdate =
                from_bytes(&a.layoutupdate.lou_body).map_err(|_| NfsStat::BADLAYOUT)?;
            let valid = update.validate().map_err(|e| {
                tracing::warn!("LAYOUTCOMMIT with a bad extent list: {e}");
                NfsStat::BADLAYOUT
            })?;
            let dev = self.device_id();
            if valid.as_slice().iter().any(|x| x.device_id != dev) {
                return Err(NfsStat::BADLAYOUT);
            }
            valid
                .as_slice()
                .iter()
                .map(|x| (x.file_offset_bytes, x.length_bytes, x.storage_offset_bytes))
                .collect()
        };
        tracing::debug!(
            "LAYOUTCOMMIT file {id} last {:?} extents {list:?}",
            a.last_write_offset
        );
        let newsize =
            self.fs
                .layout_commit(id, &list, a.last_write_offset, a.time_modify, &grants)?;
        Ok(LayoutcommitResOk { newsize })
    }

    pub(crate) fn layout_return(
        &mut self,
        ctx: &Ctx,
        a: &LayoutreturnArgs,
    ) -> NfsRes<LayoutreturnResOk> {
        let cid = ctx.clientid()?;
        check_type(a.layout_type)?;
        let f = match &a.layoutreturn {
            Layoutreturn::File(f) => f,
            Layoutreturn::Fsid | Layoutreturn::All => {
                self.states.retain(
                    |_, s| !matches!(s, StateEntry::Layout { clientid, .. } if *clientid == cid),
                );
                self.revoked_layouts
                    .retain(|_, r| r.deleg || r.clientid != cid);
                return Ok(LayoutreturnResOk { stateid: None });
            }
        };
        let id = ctx.cfh()?;
        let (off, end) = (f.offset, f.offset.saturating_add(f.length));
        let other = ctx.sid(&f.stateid)?.other;
        // A late return of a revoked layout acknowledges the revocation: nothing is left.
        if self
            .revoked_layouts
            .get(&other)
            .is_some_and(|r| r.clientid == cid && !r.deleg)
        {
            self.revoked_layouts.remove(&other);
            return Ok(LayoutreturnResOk { stateid: None });
        }
        let Some(StateEntry::Layout {
            file,
            seqid,
            segs,
            clientid,
            recalled,
        }) = self.states.get_mut(&other)
        else {
            return Ok(LayoutreturnResOk { stateid: None });
        };
        if *file != id || *clientid != cid {
            return Ok(LayoutreturnResOk { stateid: None });
        }
        let mut kept = Vec::new();
        for g in segs.drain(..) {
            let match_mode = match a.iomode {
                LayoutIoMode::Any => true,
                LayoutIoMode::ReadWrite => g.rw,
                LayoutIoMode::Read => !g.rw,
            };
            if !match_mode || g.end <= off || g.off >= end {
                kept.push(g);
                continue;
            }
            if g.off < off {
                kept.push(Seg { end: off, ..g });
            }
            if g.end > end {
                kept.push(Seg { off: end, ..g });
            }
        }
        *segs = kept;
        *seqid += 1;
        if segs.is_empty() {
            self.states.remove(&other);
            return Ok(LayoutreturnResOk { stateid: None });
        }
        *recalled = None;
        Ok(LayoutreturnResOk {
            stateid: Some(Stateid {
                seqid: *seqid,
                other,
            }),
        })
    }

    /// Recalls every layout on the file at `path`; returns how many recalls were queued.
    pub fn recall_path(&mut self, path: &str) -> Result<usize, NfsStat> {
        let id = self.fs.resolve(path)?;
        Ok(self.recall_file(id, None, 0, u64::MAX, true))
    }

    /// Queues recalls for layouts on `file` overlapping [off, end) not held by `except`
    /// (only RW ones unless `any_mode`). Returns how many layouts are in conflict.
    pub(crate) fn recall_file(
        &mut self,
        file: u64,
        except: Option<u64>,
        off: u64,
        end: u64,
        any_mode: bool,
    ) -> usize {
        let mut n = 0;
        let fh = fh_of(file);
        for (k, s) in &mut self.states {
            let StateEntry::Layout {
                clientid,
                file: f,
                seqid,
                segs,
                recalled,
            } = s
            else {
                continue;
            };
            if *f != file || Some(*clientid) == except {
                continue;
            }
            if !segs
                .iter()
                .any(|g| (any_mode || g.rw) && g.off < end && g.end > off)
            {
                continue;
            }
            n += 1;
            if recalled.is_none() {
                *recalled = Some(Instant::now());
                *seqid += 1;
                self.recalls.push(Recall {
                    clientid: *clientid,
                    fh: fh.clone(),
                    stateid: Stateid {
                        seqid: *seqid,
                        other: *k,
                    },
                    delegation: false,
                });
            }
        }
        n
    }

    /// The holder answered a recall with NOMATCHING_LAYOUT: it holds nothing of that layout
    /// any more (RFC 8881 §20.3.4), so the layout is returned.
    pub(crate) fn recall_answered_nomatch(&mut self, other: &[u8; 12]) {
        if self.states.remove(other).is_some() {
            tracing::info!("layout {other:02x?}: holder has no matching layout; forgotten");
        }
    }

    /// Layout stateids held on the file at `path` (admin/test hook).
    pub fn layouts_on(&self, path: &str) -> Result<usize, NfsStat> {
        let id = self.fs.resolve(path)?;
        Ok(self
            .states
            .values()
            .filter(|s| matches!(s, StateEntry::Layout { file, .. } if *file == id))
            .count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(rw: bool, off: u64, end: u64, gen: u64) -> Seg {
        Seg { rw, off, end, gen }
    }

    /// The same range again, or the next one, under the same mode and generation does not
    /// grow the list; another mode or generation keeps its own segment (its fence differs).
    #[test]
    fn layout_segments_merge_only_under_the_same_mode_and_fence() {
        let mut segs = vec![seg(true, 0, 4096, 0)];
        for _ in 0..3 {
            segs = with_seg(&segs, seg(true, 0, 4096, 0)).unwrap();
        }
        assert_eq!(segs, vec![seg(true, 0, 4096, 0)]);
        segs = with_seg(&segs, seg(true, 4096, 8192, 0)).unwrap();
        assert_eq!(segs, vec![seg(true, 0, 8192, 0)]);
        segs = with_seg(&segs, seg(true, 8192, 12288, 1)).unwrap();
        segs = with_seg(&segs, seg(false, 0, 4096, 0)).unwrap();
        assert_eq!(
            segs,
            vec![
                seg(false, 0, 4096, 0),
                seg(true, 0, 8192, 0),
                seg(true, 8192, 12288, 1)
            ]
        );
    }

    /// Past `MAX_SEGS_PER_LAYOUT_STATEID` disjoint segments a new one is refused, while one
    /// that merges into a held segment still fits.
    #[test]
    fn layout_segments_are_bounded() {
        let block = 4096;
        let disjoint = |i: u64| seg(false, 2 * i * block, (2 * i + 1) * block, 0);
        let mut segs = Vec::new();
        for i in 0..MAX_SEGS_PER_LAYOUT_STATEID as u64 {
            segs = with_seg(&segs, disjoint(i)).unwrap();
        }
        let n = MAX_SEGS_PER_LAYOUT_STATEID as u64;
        assert_eq!(with_seg(&segs, disjoint(n)), None);
        let touching = seg(false, block, 2 * block, 0);
        let merged = with_seg(&segs, touching).expect("a touching segment merges");
        assert_eq!(merged.len(), MAX_SEGS_PER_LAYOUT_STATEID - 1);
    }
}
