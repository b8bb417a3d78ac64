//! The store's invariants, checked as a whole.

use std::collections::{BTreeSet, HashMap};

use super::store::Fs;

impl Fs {
    /// Checks every invariant (tests): extents sorted, non-overlapping, no block used twice
    /// unless shared, nothing both free and used.
    pub fn check(&self) -> Result<(), String> {
        let bs = self.block_bytes;
        let mut owners: HashMap<u64, u32> = HashMap::new();
        for ino in self.inodes.values() {
            for w in ino.extents.windows(2) {
                if w[0].end() > w[1].file_off {
                    return Err(format!("inode {}: overlapping extents {w:?}", ino.id));
                }
            }
            let mut mine = BTreeSet::new();
            for e in ino.extents.iter().chain(ino.cow.iter()) {
                let mut b = e.vol_off / bs * bs;
                while b < e.vol_off + e.len {
                    mine.insert(b);
                    b += bs;
                }
            }
            for b in mine {
                *owners.entry(b).or_default() += 1;
            }
        }
        for (&b, &n) in &owners {
            if n > 1 && self.shared.get(&b).copied().unwrap_or(1) < 2 {
                return Err(format!("block {b} used {n} times but not shared"));
            }
            if let Some((&s, &l)) = self.free.range(..=b).next_back() {
                if b < s + l {
                    return Err(format!("block {b} both used and free"));
                }
            }
        }
        Ok(())
    }
}
