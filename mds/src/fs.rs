//! The exported file system: namespace, per-file extent maps, the block allocator, and their
//! persistence in redb.
//!
//! The whole metadata set is kept in memory for lookups and mirrored in a redb database.
//! Every change is built in memory and then written in ONE redb write transaction
//! ([`Fs::commit`]) before the request is answered. If a commit ever fails the in-memory copy
//! can no longer be trusted, so the file system turns itself read-only (every later change gets
//! NFS4ERR_SERVERFAULT) instead of answering from state that is not on disk.
//!
//! The free-space map is not stored: it is derived at start from the extent maps (everything in
//! the logical volume that no extent uses and no label covers is free), so it can never
//! disagree with them after a crash.
//!
//! Extent maps have a state granularity of [`SECTOR_BYTES`] (4 KiB): a client may commit part of
//! an allocation block. Allocation is in units of the configured block size.
//!
//! One idea a file; each file imports only from the ones above it in this list (no import
//! circle, `tests/tools/import_circles.py mds/src fs`; the facade here only declares and
//! re-exports them, and opens the store):
//!
//! | file | what |
//! | --- | --- |
//! | `fs/extents.rs` | extent maps and the pure functions over them |
//! | `fs/inode.rs` | inodes and their record format |
//! | `fs/store.rs` | [`Fs`], [`Tx`], the redb tables, [`Fs::commit`], the client records |
//! | `fs/check.rs` | the invariants ([`Fs::check`]) |
//! | `fs/alloc.rs` | the free-space map, allocation, shared-block reference counts |
//! | `fs/truncate.rs` | truncation and the fence for late LAYOUTCOMMITs ([`Grant`]) |
//! | `fs/namespace.rs` | names, directories, links, renames, orphans, SETATTR |
//! | `fs/cow.rs` | clones and copy on write |
//! | `fs/layout.rs` | LAYOUTGET pieces and LAYOUTCOMMIT |
//! | `fs/data.rs` | READ, WRITE and COMMIT through the MDS |

use std::path::Path;

use crate::volume::LogicalVolume;
use crate::MdsError;

mod alloc;
mod check;
mod cow;
mod data;
mod extents;
mod inode;
mod layout;
mod namespace;
mod store;
mod truncate;

pub use data::Durability;
pub use extents::{merge, split_at, ExtState, Extent, MAX_EXTENTS_PER_FILE, SECTOR_BYTES};
pub use inode::{
    now, Inode, Kind, MAX_FILE_BYTES, MAX_INODES, MAX_LINKS, MAX_SYMLINK_BYTES, ROOT_ID,
};
pub use layout::{read_layout_end, LayoutPiece};
pub use namespace::SetAttrs;
pub use store::{Fs, Tx};
pub use truncate::{Grant, MAX_CUTS_PER_FILE};

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

impl Fs {
    /// Opens (or creates) the store in `state_dir` over `vol`.
    pub fn open(state_dir: &Path, vol: LogicalVolume, block_bytes: u64) -> Result<Self, MdsError> {
        let mut fs = Self::load(state_dir, vol, block_bytes)?;
        fs.rebuild_free();
        // Files removed while open before the restart: nobody has them open any more.
        let left: Vec<u64> = fs
            .inodes
            .values()
            .filter(|i| i.nlink == 0 && i.id != ROOT_ID)
            .map(|i| i.id)
            .collect();
        for id in left {
            fs.orphans.insert(id);
            fs.release_orphan(id)
                .map_err(|e| MdsError::Store(format!("freeing removed file {id}: {e}")))?;
        }
        fs.debug_check();
        Ok(fs)
    }
}
