//! The memory of a large extent cache (docs/requirements.md: 1M cached extents in one file
//! within 64 MiB). Every heap byte is counted by a counting global allocator, so the figure
//! is the cache's own, not the process's. Two shapes: a file whose layouts arrive as long
//! extent lists (LAYOUTGET replies, inserted in order), and one cut up by random 4 KiB first
//! writes into INVALID storage (each write splits a piece in three).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use pnfs_gateway::pnfs::extent_cache::ExtentCache;
use pnfs_proto::layout::{Extent, ExtentState};
use pnfs_proto::nfs4::DeviceId;

/// Heap bytes allocated and not yet freed, by everything in this test process.
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The requirement: 1M cached extents within 64 MiB.
const PIECES: usize = 1 << 20;
const MAX_BYTES_FOR_PIECES: usize = 64 << 20;
const BLOCK_BYTES: u64 = 4096;
/// `PnfsConfig::commit_threshold_pieces` default.
const COMMIT_THRESHOLD_PIECES: usize = 256;
/// Extents per insert, about what one LAYOUTGET reply of 1 MiB carries.
const EXTENTS_PER_LAYOUTGET: u64 = 16 * 1024;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// Builds a cache with `build`, returns (pieces, heap bytes it holds).
fn measure(what: &str, build: impl FnOnce() -> ExtentCache) -> (ExtentCache, usize) {
    let t0 = std::time::Instant::now();
    let rss0 = rss_bytes();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let cache = build();
    let bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;
    let rss = rss_bytes().saturating_sub(rss0);
    eprintln!(
        "[extent cache memory] {what}: {} pieces, {:.1} MiB heap ({:.1} bytes a piece), RSS +{:.1} MiB, built in {:.1?}",
        cache.len(),
        bytes as f64 / f64::from(1 << 20),
        bytes as f64 / cache.len() as f64,
        rss as f64 / f64::from(1 << 20),
        t0.elapsed(),
    );
    (cache, bytes)
}

#[test]
fn a_million_cached_extents_fit_in_64_mib() {
    let dev = DeviceId([7; 16]);
    // Layout replies: 4 KiB extents whose storage is not contiguous (none coalesce).
    let (cache, bytes) = measure("1M extents from LAYOUTGET replies", || {
        let mut c = ExtentCache::new();
        let total = PIECES as u64;
        for batch in 0..total / EXTENTS_PER_LAYOUTGET {
            let first = batch * EXTENTS_PER_LAYOUTGET;
            let extents: Vec<Extent> = (first..first + EXTENTS_PER_LAYOUTGET)
                .map(|i| Extent {
                    device_id: dev,
                    file_offset_bytes: i * BLOCK_BYTES,
                    length_bytes: BLOCK_BYTES,
                    storage_offset_bytes: i * 2 * BLOCK_BYTES,
                    state: if i % 2 == 0 {
                        ExtentState::ReadWriteData
                    } else {
                        ExtentState::InvalidData
                    },
                })
                .collect();
            let start = first * BLOCK_BYTES;
            c.insert_extents(start, start + EXTENTS_PER_LAYOUTGET * BLOCK_BYTES, &extents)
                .expect("insert");
        }
        c
    });
    assert_eq!(cache.len(), PIECES);
    cache.check_invariant();
    assert!(
        bytes <= MAX_BYTES_FOR_PIECES,
        "{bytes} bytes for {PIECES} pieces from layouts"
    );
    drop(cache);

    // Random first writes into one INVALID extent of 16 GiB: each isolated write adds two
    // pieces (written + the INVALID rest after it), neighbours merge.
    let (cache, bytes) = measure("1M pieces from random 4 KiB first writes", || {
        let blocks: u64 = 4 << 20;
        let mut c = ExtentCache::new();
        c.insert_extents(
            0,
            blocks * BLOCK_BYTES,
            &[Extent {
                device_id: dev,
                file_offset_bytes: 0,
                length_bytes: blocks * BLOCK_BYTES,
                storage_offset_bytes: 0,
                state: ExtentState::InvalidData,
            }],
        )
        .expect("insert");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while c.len() < PIECES {
            // xorshift64: a fixed sequence, so the figure is the same every run.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x % blocks;
            c.mark_written(b * BLOCK_BYTES, (b + 1) * BLOCK_BYTES);
            // The engine commits once this many pieces are pending.
            if c.uncommitted_count() > COMMIT_THRESHOLD_PIECES {
                c.mark_committed(&c.uncommitted(0, u64::MAX));
            }
        }
        c
    });
    assert!(cache.len() >= PIECES);
    cache.check_invariant();
    let per_piece = bytes as f64 / cache.len() as f64;
    assert!(
        per_piece * PIECES as f64 <= MAX_BYTES_FOR_PIECES as f64,
        "{per_piece:.1} bytes a piece after random writes"
    );
    assert_eq!(
        cache.uncommitted_count(),
        cache
            .pieces()
            .filter(|p| matches!(
                p.state,
                pnfs_gateway::pnfs::extent_cache::PieceState::Uncommitted(_)
            ))
            .count()
    );
}
