//! Test support (feature `testing`, and the crate's own tests): the MDS test double for
//! exact-timing logic tests (with a SCSI-layout mode and a reserved-LU volume layer), and the
//! seeded random workload every peer's test runs; and [`Hooks`], hook points inside the pNFS
//! layer that let a test run code at an exact point of a race window instead of hoping for
//! the timing.

pub mod fake_mds;
pub mod scsi_volume;
pub mod workload;

use crate::sync::LockExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type Hook = Box<dyn FnOnce() + Send>;

/// Test hook points inside the pNFS layer (per [`super::PnfsClient`], see
/// [`super::PnfsClient::hooks`]). Each hook runs once, synchronously, on the task that reaches
/// the point; it may call into the MDS test double (e.g. send a recall, whose answer comes
/// back before the hook returns).
#[derive(Default)]
pub struct Hooks {
    layoutget_reply: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

impl Hooks {
    /// Runs `hook` the next time a LAYOUTGET reply has arrived and is not applied yet (its
    /// layout stateid and extents not yet in the file's state).
    pub fn on_next_layoutget_reply(&self, hook: impl FnOnce() + Send + 'static) {
        *self.layoutget_reply.lock_unpoisoned() = Some(Box::new(hook));
    }

    pub(crate) fn layoutget_reply(&self) {
        let hook = self.layoutget_reply.lock_unpoisoned().take();
        if let Some(h) = hook {
            h();
        }
    }
}

/// Creates (or truncates) a sparse volume file of `size_bytes` at `dir/name`.
pub fn make_volume_file(dir: &Path, name: &str, size_bytes: u64) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join(name);
    let f = std::fs::File::create(&p)?;
    f.set_len(size_bytes)?;
    Ok(p)
}

/// A fresh scratch directory under the system temp dir, unique to this process and `tag`.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pnfsgw-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
