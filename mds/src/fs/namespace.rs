//! The namespace: names, directories, links, renames, orphans (files removed while open)
//! and SETATTR.

use std::collections::BTreeMap;

use pnfs_proto::nfs4::types::{NfsStat, NfsTime};

use super::inode::{now, Inode, Kind, MAX_FILE_BYTES, MAX_LINKS, ROOT_ID};
use super::store::{Fs, Tx};

/// Attributes given at creation or by SETATTR.
#[derive(Debug, Clone, Default)]
pub struct SetAttrs {
    /// New size.
    pub size: Option<u64>,
    /// New mode.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New atime (None inside = server time).
    pub atime: Option<Option<NfsTime>>,
    /// New mtime (None inside = server time).
    pub mtime: Option<Option<NfsTime>>,
}

impl Fs {
    fn check_name(name: &str) -> Result<(), NfsStat> {
        if name.is_empty() {
            return Err(NfsStat::INVAL);
        }
        if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
            return Err(NfsStat::BADNAME);
        }
        if name.len() > 255 {
            return Err(NfsStat::NAMETOOLONG);
        }
        Ok(())
    }

    fn dir(&self, id: u64) -> Result<&BTreeMap<String, u64>, NfsStat> {
        let ino = self.get(id)?;
        if !ino.is_dir() {
            return Err(NfsStat::NOTDIR);
        }
        self.dirs.get(&id).ok_or(NfsStat::SERVERFAULT)
    }

    /// Looks a name up in a directory.
    pub fn lookup(&self, dir: u64, name: &str) -> Result<u64, NfsStat> {
        Self::check_name(name)?;
        self.dir(dir)?.get(name).copied().ok_or(NfsStat::NOENT)
    }

    /// Directory entries in name order.
    pub fn readdir(&self, dir: u64) -> Result<Vec<(String, u64)>, NfsStat> {
        Ok(self
            .dir(dir)?
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect())
    }

    /// Creates an object; returns its id and the parent's change before/after.
    pub fn create(
        &mut self,
        dir: u64,
        name: &str,
        kind: Kind,
        uid: u32,
        gid: u32,
        attrs: &SetAttrs,
    ) -> Result<(u64, u64, u64), NfsStat> {
        Self::check_name(name)?;
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        if self.dir(dir)?.contains_key(name) {
            return Err(NfsStat::EXIST);
        }
        if self.inodes.len() >= self.max_inodes {
            return Err(NfsStat::NOSPC);
        }
        let id = self.next_id;
        self.next_id += 1;
        let t = now();
        let is_dir = kind == Kind::Dir;
        let size = match &kind {
            Kind::Symlink(s) => s.len() as u64,
            _ => 0,
        };
        let mut ino = Inode {
            id,
            kind,
            mode: attrs.mode.unwrap_or(if is_dir { 0o755 } else { 0o644 }) & 0o7777,
            uid: attrs.uid.unwrap_or(uid),
            gid: attrs.gid.unwrap_or(gid),
            size,
            atime: t,
            mtime: t,
            ctime: t,
            change: 1,
            nlink: if is_dir { 2 } else { 1 },
            parent: dir,
            extents: Vec::new(),
            cow: Vec::new(),
        };
        if let Some(Some(a)) = attrs.atime {
            ino.atime = a;
        }
        if let Some(Some(m)) = attrs.mtime {
            ino.mtime = m;
        }
        self.inodes.insert(id, ino);
        if is_dir {
            self.dirs.insert(id, BTreeMap::new());
        }
        self.dirs
            .get_mut(&dir)
            .ok_or(NfsStat::SERVERFAULT)?
            .insert(name.to_owned(), id);
        let p = self.inodes.get_mut(&dir).ok_or(NfsStat::SERVERFAULT)?;
        let before = p.change;
        p.touch_data();
        if is_dir {
            p.nlink += 1;
        }
        let after = p.change;
        let mut tx = Tx::default();
        tx.inodes.insert(id);
        tx.inodes.insert(dir);
        tx.dirent_put.push((dir, name.to_owned(), id));
        self.commit(tx)?;
        Ok((id, before, after))
    }

    /// Removes a name; frees the inode and its blocks when the last link goes.
    /// Returns (before, after, removed inode id if it was freed).
    pub fn remove(&mut self, dir: u64, name: &str) -> Result<(u64, u64, Option<u64>), NfsStat> {
        self.remove_keeping(dir, name, &|_| false)
    }

    /// [`Fs::remove`], but a file that loses its last name while `is_open` says it is open
    /// stays as an orphan (see `orphans`) instead of being freed.
    pub fn remove_keeping(
        &mut self,
        dir: u64,
        name: &str,
        is_open: &dyn Fn(u64) -> bool,
    ) -> Result<(u64, u64, Option<u64>), NfsStat> {
        let id = self.lookup(dir, name)?;
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        let is_dir = self.get(id)?.is_dir();
        if is_dir && !self.dirs.get(&id).is_none_or(|d| d.is_empty()) {
            return Err(NfsStat::NOTEMPTY);
        }
        let mut tx = Tx::default();
        if let Some(d) = self.dirs.get_mut(&dir) {
            d.remove(name);
        }
        tx.dirent_del.push((dir, name.to_owned()));
        let p = self.inodes.get_mut(&dir).ok_or(NfsStat::SERVERFAULT)?;
        let before = p.change;
        p.touch_data();
        if is_dir {
            p.nlink = p.nlink.saturating_sub(1);
        }
        let after = p.change;
        tx.inodes.insert(dir);
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::SERVERFAULT)?;
        ino.nlink = ino.nlink.saturating_sub(if is_dir { 2 } else { 1 });
        ino.touch_meta();
        let nlink = ino.nlink;
        let freed = if nlink == 0 && (is_dir || !is_open(id)) {
            self.free_inode(id, &mut tx)?;
            Some(id)
        } else {
            if nlink == 0 {
                self.orphans.insert(id);
            }
            tx.inodes.insert(id);
            None
        };
        self.commit(tx)?;
        Ok((before, after, freed))
    }

    /// Drops inode `id` and gives back its blocks (in `tx`).
    fn free_inode(&mut self, id: u64, tx: &mut Tx) -> Result<(), NfsStat> {
        let ino = self.inodes.remove(&id).ok_or(NfsStat::SERVERFAULT)?;
        for e in ino.extents.iter().chain(ino.cow.iter()) {
            self.release(e.vol_off, e.len, tx);
        }
        self.dirs.remove(&id);
        self.cuts.remove(&id);
        self.orphans.remove(&id);
        tx.deleted.insert(id);
        Ok(())
    }

    /// Files removed while open that are still kept (see `orphans`).
    pub fn orphans(&self) -> impl Iterator<Item = u64> + '_ {
        self.orphans.iter().copied()
    }

    /// Frees an orphan once nobody has it open; false if `id` is not one.
    pub fn release_orphan(&mut self, id: u64) -> Result<bool, NfsStat> {
        if !self.orphans.contains(&id) {
            return Ok(false);
        }
        let mut tx = Tx::default();
        self.free_inode(id, &mut tx)?;
        self.commit(tx)?;
        Ok(true)
    }

    /// Renames; returns (src before, src after, dst before, dst after, replaced inode freed).
    pub fn rename(
        &mut self,
        sdir: u64,
        sname: &str,
        ddir: u64,
        dname: &str,
    ) -> Result<(u64, u64, u64, u64, Option<u64>), NfsStat> {
        self.rename_keeping(sdir, sname, ddir, dname, &|_| false)
    }

    /// [`Fs::rename`]; a replaced target that `is_open` says is open stays as an orphan (see
    /// [`Fs::remove_keeping`]).
    pub fn rename_keeping(
        &mut self,
        sdir: u64,
        sname: &str,
        ddir: u64,
        dname: &str,
        is_open: &dyn Fn(u64) -> bool,
    ) -> Result<(u64, u64, u64, u64, Option<u64>), NfsStat> {
        // Both names are checked before either is looked up (a zero-length target is INVAL
        // whether or not the source exists).
        Self::check_name(sname)?;
        Self::check_name(dname)?;
        let id = self.lookup(sdir, sname)?;
        self.dir(ddir)?;
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        let moving_dir = self.get(id)?.is_dir();
        if moving_dir {
            // Refuse moving a directory under itself.
            let mut p = ddir;
            for _ in 0..4096 {
                if p == id {
                    return Err(NfsStat::INVAL);
                }
                if p == ROOT_ID {
                    break;
                }
                p = self.get(p)?.parent;
            }
        }
        let mut freed = None;
        if let Some(&old) = self.dir(ddir)?.get(dname) {
            if old == id {
                let c = self.get(sdir)?.change;
                let d = self.get(ddir)?.change;
                return Ok((c, c, d, d, None));
            }
            let old_dir = self.get(old)?.is_dir();
            if old_dir != moving_dir {
                return Err(NfsStat::EXIST);
            }
            let (_, _, f) = self.remove_keeping(ddir, dname, is_open)?;
            freed = f;
        }
        let mut tx = Tx::default();
        if let Some(d) = self.dirs.get_mut(&sdir) {
            d.remove(sname);
        }
        tx.dirent_del.push((sdir, sname.to_owned()));
        self.dirs
            .get_mut(&ddir)
            .ok_or(NfsStat::SERVERFAULT)?
            .insert(dname.to_owned(), id);
        tx.dirent_put.push((ddir, dname.to_owned(), id));
        let sp = self.inodes.get_mut(&sdir).ok_or(NfsStat::SERVERFAULT)?;
        let sb = sp.change;
        sp.touch_data();
        if moving_dir && sdir != ddir {
            sp.nlink = sp.nlink.saturating_sub(1);
        }
        let sa = sp.change;
        let dp = self.inodes.get_mut(&ddir).ok_or(NfsStat::SERVERFAULT)?;
        let db = if sdir == ddir { sb } else { dp.change };
        if sdir != ddir {
            dp.touch_data();
            if moving_dir {
                dp.nlink += 1;
            }
        }
        let da = dp.change;
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::SERVERFAULT)?;
        ino.touch_meta();
        ino.parent = ddir;
        tx.inodes.extend([sdir, ddir, id]);
        self.commit(tx)?;
        Ok((sb, sa, db, da, freed))
    }

    /// Adds a hard link to a file.
    pub fn link(&mut self, id: u64, dir: u64, name: &str) -> Result<(u64, u64), NfsStat> {
        Self::check_name(name)?;
        let ino = self.get(id)?;
        if ino.is_dir() {
            return Err(NfsStat::ISDIR);
        }
        if ino.nlink >= MAX_LINKS {
            return Err(NfsStat::MLINK);
        }
        if self.dir(dir)?.contains_key(name) {
            return Err(NfsStat::EXIST);
        }
        self.dirs
            .get_mut(&dir)
            .ok_or(NfsStat::SERVERFAULT)?
            .insert(name.to_owned(), id);
        let p = self.inodes.get_mut(&dir).ok_or(NfsStat::SERVERFAULT)?;
        let b = p.change;
        p.touch_data();
        let a = p.change;
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::SERVERFAULT)?;
        ino.nlink += 1;
        ino.touch_meta();
        let mut tx = Tx::default();
        tx.inodes.extend([dir, id]);
        tx.dirent_put.push((dir, name.to_owned(), id));
        self.commit(tx)?;
        Ok((b, a))
    }

    /// Applies SETATTR. Size changes free blocks past the new end.
    pub fn setattr(&mut self, id: u64, a: &SetAttrs) -> Result<(), NfsStat> {
        if self.broken {
            return Err(NfsStat::SERVERFAULT);
        }
        let ino = self.get(id)?;
        if a.size.is_some() && ino.kind != Kind::File {
            return Err(if ino.is_dir() {
                NfsStat::ISDIR
            } else {
                NfsStat::INVAL
            });
        }
        if a.size.is_some_and(|s| s > MAX_FILE_BYTES) {
            return Err(NfsStat::FBIG);
        }
        let mut tx = Tx::default();
        if let Some(size) = a.size {
            self.truncate(id, size, &mut tx)?;
        }
        let ino = self.inodes.get_mut(&id).ok_or(NfsStat::STALE)?;
        if let Some(m) = a.mode {
            ino.mode = m & 0o7777;
        }
        if let Some(u) = a.uid {
            ino.uid = u;
        }
        if let Some(g) = a.gid {
            ino.gid = g;
        }
        ino.touch_meta();
        if let Some(t) = a.atime {
            ino.atime = t.unwrap_or_else(now);
        }
        if let Some(t) = a.mtime {
            ino.mtime = t.unwrap_or_else(now);
        }
        tx.inodes.insert(id);
        self.commit(tx)
    }

    /// Inodes the file system can hold ([`super::inode::MAX_INODES`]).
    pub fn files_total(&self) -> u64 {
        u64::try_from(self.max_inodes).unwrap_or(u64::MAX)
    }

    /// Inodes that can still be created.
    pub fn files_avail(&self) -> u64 {
        u64::try_from(self.max_inodes.saturating_sub(self.inodes.len())).unwrap_or(0)
    }

    /// Resolves a slash-separated path from the root.
    pub fn resolve(&self, path: &str) -> Result<u64, NfsStat> {
        let mut id = ROOT_ID;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            id = self.lookup(id, c)?;
        }
        Ok(id)
    }
}
