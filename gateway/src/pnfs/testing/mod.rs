//! Test support (feature `testing`, and the crate's own tests): the MDS test double for
//! exact-timing logic tests (with a SCSI-layout mode and a reserved-LU volume layer), and the
//! seeded random workload every peer's test runs.

pub mod fake_mds;
pub mod scsi_volume;
pub mod workload;

use std::path::{Path, PathBuf};

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
