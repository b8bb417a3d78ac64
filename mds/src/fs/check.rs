//! The store's invariants, checked as a whole: after every store commit in debug builds
//! ([`Fs::debug_check`]), and by the tests.
//!
//! The check works on ranges, not on single blocks, so that its cost grows with the number of
//! extents, directory entries and free runs, not with the size of the volume: cheap enough to
//! run after every commit of the test suite.

use std::collections::HashMap;

use super::extents::{round_up, Extent, MAX_EXTENTS_PER_FILE, SECTOR_BYTES};
use super::inode::{Inode, Kind, MAX_FILE_BYTES, MAX_LINKS, ROOT_ID};
use super::store::Fs;
use super::truncate::MAX_CUTS_PER_FILE;

impl Fs {
    /// Checks every invariant of the in-memory metadata set:
    ///
    /// - inodes: extent maps and COW lists sorted, non-overlapping, sector aligned, inside the
    ///   volume and bounded; sizes bounded; ids below the next one handed out;
    /// - namespace: every entry names a live inode; link counts match the entries (files) and
    ///   the subdirectories (directories); a directory's parent holds it; files with no name
    ///   are exactly the orphans; truncation records only for live files, bounded, in order;
    /// - blocks: a block used by n > 1 files has the shared count n and a block used by one
    ///   or none has no shared count; no used block is free or under a label; the free runs
    ///   are block aligned, disjoint, inside the volume and off the labels, and they sum to
    ///   the free byte count; used + free + label bytes are the whole volume (nothing leaks).
    pub fn check(&self) -> Result<(), String> {
        if self.inodes.len() > self.max_inodes {
            return Err(format!("{} inodes, over the limit", self.inodes.len()));
        }
        for ino in self.inodes.values() {
            self.check_inode(ino)?;
        }
        self.check_namespace()?;
        self.check_blocks()
    }

    /// [`Fs::check`] in debug builds, where a broken invariant panics at the commit that
    /// broke it; nothing in release builds. Skipped once the store is broken (a failed commit
    /// leaves memory and store apart on purpose, see the module documentation).
    pub(super) fn debug_check(&self) {
        if cfg!(debug_assertions) && !self.broken {
            if let Err(e) = self.check() {
                panic!("MDS store invariant broken: {e}");
            }
        }
    }

    fn check_inode(&self, ino: &Inode) -> Result<(), String> {
        let id = ino.id;
        if id >= self.next_id {
            return Err(format!(
                "inode {id}: not below the next id {}",
                self.next_id
            ));
        }
        if ino.size > MAX_FILE_BYTES {
            return Err(format!("inode {id}: size {} over the limit", ino.size));
        }
        if ino.kind != Kind::File && !(ino.extents.is_empty() && ino.cow.is_empty()) {
            return Err(format!("inode {id}: a {:?} with extents", ino.kind));
        }
        for (what, list) in [("extent", &ino.extents), ("cow", &ino.cow)] {
            if list.len() > MAX_EXTENTS_PER_FILE {
                return Err(format!("inode {id}: {} {what}s", list.len()));
            }
            for e in list.iter() {
                self.check_extent(id, e)
                    .map_err(|m| format!("{what} {e:?}: {m}"))?;
            }
            for w in list.windows(2) {
                if w[0].end() > w[1].file_off {
                    return Err(format!(
                        "inode {id}: {what}s out of order or overlapping {w:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_extent(&self, id: u64, e: &Extent) -> Result<(), String> {
        if e.len == 0 || e.file_off % SECTOR_BYTES != 0 || e.len % SECTOR_BYTES != 0 {
            return Err(format!("inode {id}: empty or not sector aligned"));
        }
        let fits = e
            .file_off
            .checked_add(e.len)
            .is_some_and(|x| x <= MAX_FILE_BYTES)
            && e.vol_off
                .checked_add(e.len)
                .is_some_and(|x| x <= self.vol.size_bytes);
        if !fits {
            return Err(format!("inode {id}: outside the file limit or the volume"));
        }
        Ok(())
    }

    fn check_namespace(&self) -> Result<(), String> {
        // Entries naming each inode, and subdirectories of each directory.
        let mut names: HashMap<u64, u32> = HashMap::new();
        let mut subdirs: HashMap<u64, u32> = HashMap::new();
        for (&dir, entries) in &self.dirs {
            match self.inodes.get(&dir) {
                Some(d) if d.is_dir() => {}
                _ => return Err(format!("entries for {dir}, which is not a directory")),
            }
            for (name, &id) in entries {
                let ino = self
                    .inodes
                    .get(&id)
                    .ok_or_else(|| format!("entry {dir}/{name:?} names no inode ({id})"))?;
                *names.entry(id).or_default() += 1;
                if ino.is_dir() {
                    *subdirs.entry(dir).or_default() += 1;
                    if ino.parent != dir {
                        return Err(format!(
                            "directory {id} is in {dir} but its parent is {}",
                            ino.parent
                        ));
                    }
                }
            }
        }
        for ino in self.inodes.values() {
            let id = ino.id;
            let named = names.get(&id).copied().unwrap_or(0);
            if ino.is_dir() {
                if !self.dirs.contains_key(&id) {
                    return Err(format!("directory {id} has no entry list"));
                }
                let want = 2 + subdirs.get(&id).copied().unwrap_or(0);
                if ino.nlink != want {
                    return Err(format!("directory {id}: nlink {} for {want}", ino.nlink));
                }
                if id != ROOT_ID && named != 1 {
                    return Err(format!("directory {id} has {named} names"));
                }
            } else if ino.nlink > MAX_LINKS {
                return Err(format!("inode {id}: nlink {} over the limit", ino.nlink));
            } else if ino.nlink != named {
                return Err(format!("inode {id}: nlink {} for {named} names", ino.nlink));
            }
            if (id != ROOT_ID && named == 0) != self.orphans.contains(&id) {
                return Err(format!("inode {id}: {named} names, orphan list disagrees"));
            }
        }
        if let Some(id) = self.orphans.iter().find(|id| !self.inodes.contains_key(id)) {
            return Err(format!("orphan {id} has no inode"));
        }
        for (id, cuts) in &self.cuts {
            let in_order = cuts.windows(2).all(|w| w[0].0 < w[1].0);
            let known = cuts.iter().all(|&(g, _)| g <= self.cut_gen);
            if !self.inodes.contains_key(id)
                || cuts.len() > MAX_CUTS_PER_FILE
                || !in_order
                || !known
            {
                return Err(format!("truncation records of {id}: {cuts:?}"));
            }
        }
        Ok(())
    }

    fn check_blocks(&self) -> Result<(), String> {
        let bs = self.block_bytes;
        // Each file's blocks as merged block-aligned ranges, then +1/-1 events per range: the
        // owner count is constant between two neighbouring event positions.
        let mut events: Vec<(u64, i64)> = Vec::new();
        for ino in self.inodes.values() {
            let mut mine: Vec<(u64, u64)> = ino
                .extents
                .iter()
                .chain(ino.cow.iter())
                .map(|e| (e.vol_off / bs * bs, round_up(e.vol_off + e.len, bs)))
                .collect();
            mine.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(mine.len());
            for (a, b) in mine {
                match merged.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            for (a, b) in merged {
                events.push((a, 1));
                events.push((b, -1));
            }
        }
        events.sort_unstable();
        let mut owners: i64 = 0;
        let mut used_bytes = 0u64;
        let mut at = 0u64;
        for (pos, delta) in events {
            if pos > at {
                self.check_owned(at, pos, owners)?;
                if owners > 0 {
                    used_bytes += pos - at;
                }
            }
            owners += delta;
            at = pos;
        }
        if let Some((&b, &n)) = self.shared.range(at..).next() {
            return Err(format!("block {b} has the shared count {n} but no user"));
        }
        let mut free_sum = 0u64;
        let mut prev_end = 0u64;
        for (&s, &l) in &self.free {
            let bad = s % bs != 0
                || l == 0
                || l % bs != 0
                || s < prev_end
                || s + l > self.vol.size_bytes
                || self.vol.touches_label(s, l);
            if bad {
                return Err(format!(
                    "free run {s}+{l} is misaligned, overlapping or misplaced"
                ));
            }
            prev_end = s + l;
            free_sum += l;
        }
        if free_sum != self.free_bytes {
            return Err(format!(
                "free runs sum to {free_sum}, free bytes say {}",
                self.free_bytes
            ));
        }
        let whole = self.vol.size_bytes / bs * bs;
        if used_bytes + self.free_bytes + self.label_bytes != whole {
            return Err(format!(
                "used {used_bytes} + free {} + label {} bytes is not the volume's {whole}",
                self.free_bytes, self.label_bytes
            ));
        }
        Ok(())
    }

    /// The blocks in [a, b), used by `owners` files.
    fn check_owned(&self, a: u64, b: u64, owners: i64) -> Result<(), String> {
        let bs = self.block_bytes;
        if owners > 1 {
            let want = u32::try_from(owners).unwrap_or(u32::MAX);
            let mut blk = a;
            while blk < b {
                let n = self.shared.get(&blk).copied().unwrap_or(0);
                if n != want {
                    return Err(format!(
                        "block {blk} used by {owners} files, shared count {n}"
                    ));
                }
                blk += bs;
            }
        } else if let Some((&blk, &n)) = self.shared.range(a..b).next() {
            return Err(format!(
                "block {blk} used by {owners} files, shared count {n}"
            ));
        }
        if owners > 0 {
            if let Some((&s, &l)) = self.free.range(..b).next_back() {
                if s + l > a {
                    return Err(format!("blocks in {a}..{b} both used and free"));
                }
            }
            if self.vol.touches_label(a, b - a) {
                return Err(format!("blocks in {a}..{b} used under a volume label"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use pnfs_proto::nfs4::types::NfsStat;

    use super::super::data::Durability;
    use super::super::inode::{Kind, MAX_LINKS, ROOT_ID};
    use super::super::namespace::SetAttrs;
    use super::super::store::Fs;
    use super::super::testing::mkfs;

    fn create(fs: &mut Fs, dir: u64, name: &str, kind: Kind) -> u64 {
        fs.create(dir, name, kind, 0, 0, &SetAttrs::default())
            .unwrap()
            .0
    }

    /// A file with two written blocks, another one cloned from it (two shared blocks), and a
    /// directory holding a hard link of the first.
    fn populated(bs: u64) -> (Fs, u64, u64) {
        let d = crate::volume::tests::tempdir();
        let mut fs = mkfs(&d, bs);
        let a = create(&mut fs, ROOT_ID, "a", Kind::File);
        let b = create(&mut fs, ROOT_ID, "b", Kind::File);
        fs.write(
            a,
            0,
            &vec![3u8; 2 * usize::try_from(bs).unwrap()],
            Durability::Stable,
        )
        .unwrap();
        fs.clone_file(a, b).unwrap();
        let sub = create(&mut fs, ROOT_ID, "sub", Kind::Dir);
        fs.link(a, sub, "a2").unwrap();
        fs.check().unwrap();
        (fs, a, b)
    }

    /// Links, renames of files and directories, removes of open and unopened files and
    /// truncations: every commit on the way runs the check (debug builds), and the end state
    /// passes it.
    #[test]
    fn namespace_changes_keep_every_invariant() {
        let (mut fs, a, b) = populated(4096);
        let d1 = create(&mut fs, ROOT_ID, "d1", Kind::Dir);
        let d2 = create(&mut fs, d1, "d2", Kind::Dir);
        fs.rename(d1, "d2", ROOT_ID, "d2").unwrap();
        let e = create(&mut fs, ROOT_ID, "e", Kind::Dir);
        // A directory renamed over an empty one, a file over another file.
        fs.rename(ROOT_ID, "d2", ROOT_ID, "e").unwrap();
        assert!(fs.get(e).is_err());
        fs.rename(ROOT_ID, "b", d2, "b").unwrap();
        fs.link(b, d1, "b2").unwrap();
        // Removing the last names of an open file keeps it as an orphan until released.
        fs.remove(d2, "b").unwrap();
        fs.remove_keeping(d1, "b2", &|id| id == b).unwrap();
        assert_eq!(fs.orphans().collect::<Vec<_>>(), vec![b]);
        fs.check().unwrap();
        assert!(fs.release_orphan(b).unwrap());
        fs.setattr(
            a,
            &SetAttrs {
                size: Some(100),
                ..Default::default()
            },
        )
        .unwrap();
        fs.remove(ROOT_ID, "a").unwrap();
        fs.remove(ROOT_ID, "e").unwrap();
        fs.check().unwrap();
    }

    /// Each kind of broken state is found and named.
    #[test]
    fn check_finds_each_kind_of_broken_state() {
        let bs = 4096;
        type Break = fn(&mut Fs, u64, u64);
        let cases: [(&str, Break); 7] = [
            ("is not the volume's", |fs, _, _| {
                // A free run lost: its blocks are neither used nor free.
                let (&s, &l) = fs.free.iter().next().unwrap();
                fs.free.remove(&s);
                fs.free_bytes -= l;
            }),
            ("free runs sum to", |fs, _, _| fs.free_bytes += 4096),
            ("nlink 2 for 1 names", |fs, _, b| {
                fs.inodes.get_mut(&b).unwrap().nlink = 2;
            }),
            ("shared count", |fs, _, b| {
                let v = fs.inodes[&b].extents[0].vol_off;
                fs.shared.insert(v, 3);
            }),
            ("overlapping", |fs, a, _| {
                let ino = fs.inodes.get_mut(&a).unwrap();
                let mut e = ino.extents[0];
                e.len = 4096;
                ino.extents.push(e);
            }),
            ("both used and free", |fs, a, _| {
                let v = fs.inodes[&a].extents[0].vol_off;
                fs.free.insert(v, 4096);
                fs.free_bytes += 4096;
            }),
            ("orphan list disagrees", |fs, a, _| {
                fs.orphans.insert(a);
            }),
        ];
        for (want, break_it) in cases {
            let (mut fs, a, b) = populated(bs);
            break_it(&mut fs, a, b);
            let err = fs.check().expect_err(want);
            assert!(err.contains(want), "wanted {want:?}, got {err:?}");
        }
    }

    /// CREATE past the inode limit is NOSPC and LINK past the link limit MLINK, and
    /// neither changes anything; the limit shows in files_avail.
    #[test]
    fn inodes_and_links_are_bounded() {
        let (mut fs, a, _) = populated(4096);
        fs.max_inodes = fs.inodes.len() + 1;
        assert_eq!(fs.files_avail(), 1);
        create(&mut fs, ROOT_ID, "last", Kind::File);
        assert_eq!(fs.files_avail(), 0);
        let r = fs.create(ROOT_ID, "over", Kind::File, 0, 0, &SetAttrs::default());
        assert_eq!(r.err(), Some(NfsStat::NOSPC));
        assert_eq!(fs.lookup(ROOT_ID, "over").err(), Some(NfsStat::NOENT));
        let names = fs.inodes[&a].nlink;
        fs.inodes.get_mut(&a).unwrap().nlink = MAX_LINKS;
        assert_eq!(fs.link(a, ROOT_ID, "a3").err(), Some(NfsStat::MLINK));
        fs.inodes.get_mut(&a).unwrap().nlink = names;
        assert_eq!(fs.lookup(ROOT_ID, "a3").err(), Some(NfsStat::NOENT));
        fs.check().unwrap();
    }

    /// A commit over broken state stops the server in debug builds, at the commit that
    /// follows the damage, not later.
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "MDS store invariant broken")]
    fn a_commit_over_broken_state_panics_in_debug_builds() {
        let (mut fs, a, _) = populated(4096);
        fs.inodes.get_mut(&a).unwrap().nlink = 7;
        create(&mut fs, ROOT_ID, "c", Kind::File);
    }
}
