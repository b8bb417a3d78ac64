//! Shared helpers for proto's integration tests.
#![allow(dead_code, clippy::cast_possible_truncation)]

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// A seeded generator (rand's `StdRng`) with the few draws the tests use. The seed comes from
/// `PNFS_TEST_SEED` or the clock and is printed, so any failure can be replayed.
pub struct Rng(StdRng);

impl Rng {
    /// Seeds from `PNFS_TEST_SEED`, else the clock; prints the seed under the test's name.
    pub fn from_env(test: &str) -> Self {
        let seed = std::env::var("PNFS_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{test}: seed {seed} (PNFS_TEST_SEED={seed} to repeat)");
        Self(StdRng::seed_from_u64(seed))
    }
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// 32 random bits.
    pub fn u32(&mut self) -> u32 {
        self.next() as u32
    }
    /// A coin flip.
    pub fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// A random fixed-size array.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        self.bytes(N).try_into().unwrap()
    }
    /// A lowercase ASCII string of at most `max` bytes.
    pub fn string(&mut self, max: u64) -> String {
        let n = self.below(max + 1) as usize;
        (0..n)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }
}
