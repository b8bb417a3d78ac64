//! Test helpers shared by the file system's test modules.

use std::path::Path;

use super::store::Fs;
use crate::volume::{LabelAt, LogicalVolume, SimpleVolume, Topology};

/// A file system over a new 16 MiB volume file in `dir` (or the one already there, so that a
/// second call reopens the same store) with `bs`-byte blocks.
pub(crate) fn mkfs(dir: &Path, bs: u64) -> Fs {
    let p = dir.join("vol");
    if !p.exists() {
        std::fs::File::create(&p)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
    }
    let v = SimpleVolume::open(p, LabelAt::Start).unwrap();
    let lv = LogicalVolume::new(vec![v], Topology::Simple { volume: 0 }).unwrap();
    Fs::open(&dir.join("state"), lv, bs).unwrap()
}
