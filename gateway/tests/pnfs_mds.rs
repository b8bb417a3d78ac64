//! The pNFS disk against the real embedded MDS (crate pnfs-mds, served in-process on
//! 127.0.0.1) through the real NFSv4.1 client: block layouts on volume files, every topology,
//! block sizes 4 KiB / 64 KiB / 1 MiB, copy-on-write clones and recalls on demand. The seeded
//! workload is checked against its model after every read, and at the end the data read
//! back through MDS READ (the server's block map) must equal the model: LAYOUTCOMMIT worked.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::disk::Disk;
use pnfs_gateway::mds_api::MetadataServer;
use pnfs_gateway::pnfs::testing::workload::{run_workload, WorkloadConfig};
use pnfs_gateway::pnfs::testing::{make_volume_file, scratch_dir};
use pnfs_gateway::pnfs::volume::{FaultVolume, FileVolume, VolumeIo};
use pnfs_gateway::pnfs::{PnfsClient, PnfsConfig};
use pnfs_gateway::stats::{Stats, StatsSnapshot};
use pnfs_mds::volume::{LabelAt, Topology};

use common::{check_server_view, create_file, READ_ONLY};

const FILE_BYTES: u64 = 8 << 20;
const LEAF_BYTES: u64 = 32 << 20;

struct Server {
    mds: Arc<pnfs_mds::Mds>,
    addr: String,
    leaves: Vec<PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The MDS settings of these tests unless one says otherwise.
fn settings() -> pnfs_mds::nfs::Settings {
    pnfs_mds::nfs::Settings {
        lease: Duration::from_secs(10),
        grace: Duration::from_secs(10),
        recall_timeout: Duration::from_secs(15),
        layout_blksize: 4096,
    }
}

async fn start(
    tag: &str,
    leaves: usize,
    block_bytes: u64,
    topology: Topology,
    label_at: LabelAt,
) -> Server {
    start_with(tag, leaves, block_bytes, topology, label_at, settings()).await
}

async fn start_with(
    tag: &str,
    leaves: usize,
    block_bytes: u64,
    topology: Topology,
    label_at: LabelAt,
    settings: pnfs_mds::nfs::Settings,
) -> Server {
    let dir = scratch_dir(&format!("mds-{tag}"));
    let paths: Vec<PathBuf> = (0..leaves)
        .map(|i| make_volume_file(&dir, &format!("leaf{i}"), LEAF_BYTES).expect("volume"))
        .collect();
    let cfg = pnfs_mds::Config {
        settings,
        block_bytes,
        state_dir: dir.join("state"),
        volumes: paths.iter().map(|p| (p.clone(), label_at)).collect(),
        topology,
    };
    let mds = cfg.open().expect("open MDS");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let addr = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(pnfs_mds::run(listener, Arc::clone(&mds), async move {
        let _ = rx.await;
    }));
    Server {
        mds,
        addr,
        leaves: paths,
        stop: Some(tx),
    }
}

fn simple(volume: usize) -> Topology {
    Topology::Simple { volume }
}

async fn connect(s: &Server, owner: &str) -> Arc<NfsClient> {
    Arc::new(
        NfsClient::connect(&s.addr, ClientConfig::new(owner))
            .await
            .expect("connect"),
    )
}

fn gateway(s: &Server, nfs: Arc<NfsClient>) -> PnfsClient<NfsClient> {
    gateway_with(s, nfs, PnfsConfig::default())
}

fn gateway_with(s: &Server, nfs: Arc<NfsClient>, cfg: PnfsConfig) -> PnfsClient<NfsClient> {
    let vols: Vec<Arc<dyn VolumeIo>> = s
        .leaves
        .iter()
        .map(|p| {
            Arc::new(FileVolume::open(p, false, true).expect("open leaf")) as Arc<dyn VolumeIo>
        })
        .collect();
    PnfsClient::new(nfs, vols, cfg, Arc::new(Stats::default()))
}

async fn run_case(s: &Server, tag: &str, seed: u64, block: u64) -> StatsSnapshot {
    let nfs = connect(s, &format!("gw-{tag}")).await;
    create_file(&nfs, "disk.img", FILE_BYTES).await;
    let gw = gateway(s, Arc::clone(&nfs));
    let disk = gw.open_disk("disk.img", false).await.expect("open disk");
    let mut cfg = WorkloadConfig::new(seed, block);
    cfg.ops = 250;
    let (rep, model) = run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
    disk.close().await.expect("close disk");
    check_server_view(&nfs, "disk.img", &model, &format!("{tag} seed={seed}")).await;
    let snap = gw.stats().snapshot();
    eprintln!("[{tag}] seed={seed} {rep:?}\n  {snap}");
    assert!(
        snap.layoutgets > 0 && snap.direct_write_bytes > 0 && snap.commits > 0,
        "{tag}: {snap}"
    );
    assert_eq!(snap.request_errors, 0, "{tag}");
    snap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_on_embedded_mds_block_sizes() {
    for (i, block) in [4096u64, 65536, 1 << 20].into_iter().enumerate() {
        let s = start(&format!("bs{block}"), 1, block, simple(0), LabelAt::Start).await;
        run_case(&s, &format!("simple-{block}"), 0x3d5_0000 + i as u64, block).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_on_embedded_mds_topologies() {
    let cases: Vec<(&str, usize, Topology, LabelAt)> = vec![
        (
            "slice",
            1,
            Topology::Slice {
                start_bytes: 1 << 20,
                length_bytes: 24 << 20,
                child: Box::new(simple(0)),
            },
            LabelAt::End,
        ),
        (
            "concat",
            3,
            Topology::Concat {
                children: (0..3).map(simple).collect(),
            },
            LabelAt::Start,
        ),
        (
            "stripe",
            3,
            Topology::Stripe {
                unit_bytes: 64 * 1024,
                children: (0..3).map(simple).collect(),
            },
            LabelAt::End,
        ),
        (
            "nested",
            4,
            Topology::Stripe {
                unit_bytes: 128 * 1024,
                children: vec![
                    Topology::Concat {
                        children: vec![simple(0), simple(1)],
                    },
                    Topology::Concat {
                        children: vec![simple(2), simple(3)],
                    },
                ],
            },
            LabelAt::Start,
        ),
    ];
    for (i, (name, leaves, topo, label)) in cases.into_iter().enumerate() {
        let s = start(&format!("topo-{name}"), leaves, 65536, topo, label).await;
        run_case(&s, name, 0x7090_0000 + i as u64, 65536).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_through_copy_on_write_leaves_source_unchanged() {
    let s = start("cow", 1, 65536, simple(0), LabelAt::Start).await;
    let nfs = connect(&s, "gw-cow").await;
    create_file(&nfs, "src.img", FILE_BYTES).await;
    create_file(&nfs, "clone.img", FILE_BYTES).await;
    let gw = gateway(&s, Arc::clone(&nfs));
    let src = gw.open_disk("src.img", false).await.expect("open src");
    let mut cfg = WorkloadConfig::new(0xc0de, 65536);
    cfg.trims = false;
    cfg.ops = 150;
    let (_, src_model) = run_workload(&src, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    src.close().await.expect("close src");
    s.mds.clone_file("src.img", "clone.img").expect("clone");
    let clone = gw.open_disk("clone.img", false).await.expect("open clone");
    let head = clone.read(0, 1 << 20).await.expect("read clone");
    assert_eq!(
        &head[..],
        &src_model.data[..1 << 20],
        "clone starts equal to the source"
    );
    let cfg = WorkloadConfig::new(0xc0de_0001, 65536);
    let (_, clone_model) = run_workload(&clone, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    clone.close().await.expect("close clone");
    check_server_view(&nfs, "src.img", &src_model, "source").await;
    check_server_view(&nfs, "clone.img", &clone_model, "clone").await;
    let snap = gw.stats().snapshot();
    eprintln!("[cow] {snap}");
    assert_eq!(snap.request_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_recalls_during_workload_on_embedded_mds() {
    let s = start("recall", 1, 4096, simple(0), LabelAt::Start).await;
    let nfs = connect(&s, "gw-recall").await;
    create_file(&nfs, "disk.img", FILE_BYTES).await;
    // A hundred recalls in a row are what the ping-pong back-off answers by leaving the
    // layouts alone for a while; this test is about recalls during direct I/O, so it keeps
    // the back-off off.
    let mut cfg = PnfsConfig::default();
    cfg.contention.recalls = 0;
    let gw = gateway_with(&s, Arc::clone(&nfs), cfg);
    let disk = gw.open_disk("disk.img", false).await.expect("open disk");
    let stop = Arc::new(AtomicBool::new(false));
    let (mds, stop2) = (Arc::clone(&s.mds), Arc::clone(&stop));
    let recaller = tokio::spawn(async move {
        let mut sent = 0usize;
        let mut rounds = 0u32;
        while sent < 100 && rounds < 20_000 && !stop2.load(Ordering::SeqCst) {
            rounds += 1;
            sent += mds.recall_layouts("disk.img").unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent
    });
    let mut total_rounds = 0;
    loop {
        total_rounds += 1;
        let mut cfg = WorkloadConfig::new(0x7eca_0000 + total_rounds, 4096);
        cfg.ops = 300;
        cfg.limit_bytes = 4 << 20;
        run_workload(&disk, &cfg)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if recaller.is_finished() || total_rounds >= 40 {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let sent = recaller.await.expect("recaller");
    disk.close().await.expect("close");
    let (recalls_sent, revoked) = s.mds.recall_stats();
    let snap = gw.stats().snapshot();
    eprintln!(
        "[recall] recalls triggered {sent}, MDS sent {recalls_sent}, revoked {revoked}\n  {snap}"
    );
    assert!(
        sent >= 100,
        "only {sent} recalls during {total_rounds} workload rounds"
    );
    assert_eq!(
        revoked, 0,
        "a layout was revoked: the client did not return in time"
    );
    assert_eq!(snap.request_errors, 0);
}

/// The first `len` bytes of `path` as the server has them (MDS READ, not our layouts).
async fn server_copy(nfs: &NfsClient, path: &str, len: u32) -> Vec<u8> {
    let h = nfs.open(path, READ_ONLY).await.expect("open for check");
    let r = nfs.read(&h, 0, len).await.expect("MDS READ");
    nfs.close(&h).await.expect("close check");
    r.data.to_vec()
}

/// Polls `cond` every 10 ms for up to 10 s (eviction returns the layout in the background).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layouts_of_the_least_recently_used_file_are_evicted_under_the_memory_bound() {
    const CHUNK_BYTES: u64 = 64 * 1024;
    let s = start("evict", 1, 4096, simple(0), LabelAt::Start).await;
    let nfs = connect(&s, "gw-evict").await;
    for f in ["probe.img", "a.img", "b.img", "c.img"] {
        create_file(&nfs, f, FILE_BYTES).await;
    }
    let small_layouts = |max_cached_pieces| PnfsConfig {
        layout_chunk_bytes: CHUNK_BYTES,
        max_cached_pieces,
        ..PnfsConfig::default()
    };
    let pattern = |tag: u8| bytes::Bytes::from(vec![tag; 64 * 1024]);
    // What one file holds after one whole-chunk write, with no bound in the way.
    let probe_gw = gateway_with(&s, Arc::clone(&nfs), small_layouts(usize::MAX));
    let probe = probe_gw.open_disk("probe.img", false).await.expect("probe");
    probe
        .write(0, pattern(0x11), false)
        .await
        .expect("probe write");
    let per_file = probe.cached_pieces();
    probe.close().await.expect("close probe");
    assert!(per_file > 0, "a written file caches its layout");

    // Room for exactly two such files.
    let gw = gateway_with(&s, Arc::clone(&nfs), small_layouts(2 * per_file));
    let a = gw.open_disk("a.img", false).await.expect("open a");
    let b = gw.open_disk("b.img", false).await.expect("open b");
    let c = gw.open_disk("c.img", false).await.expect("open c");
    a.write(0, pattern(0xa1), false).await.expect("write a");
    b.write(0, pattern(0xb1), false).await.expect("write b");
    assert_eq!((a.cached_pieces(), b.cached_pieces()), (per_file, per_file));
    assert_eq!(gw.stats().snapshot().evictions, 0, "two files fit");
    // a is used again (a cache hit), so b is now the least recently used.
    assert_eq!(
        &a.read(0, 4096).await.expect("read a")[..],
        &[0xa1; 4096][..]
    );
    c.write(0, pattern(0xc1), false).await.expect("write c");
    eventually("b's layout returned", || b.cached_pieces() == 0).await;
    assert_eq!(
        a.cached_pieces(),
        per_file,
        "the recently used file keeps its layout"
    );
    assert!(
        c.cached_pieces() > 0,
        "the file being used is never the victim"
    );
    assert_eq!(gw.stats().snapshot().evictions, 1);
    // b's data survived the eviction (committed before the return); reading it back needs a
    // new layout, which pushes out a (now the least recently used).
    assert_eq!(
        &b.read(0, 65536).await.expect("read b")[..],
        &pattern(0xb1)[..]
    );
    eventually("a's layout returned", || a.cached_pieces() == 0).await;
    assert_eq!(gw.stats().snapshot().evictions, 2);
    for (d, tag) in [(&a, 0xa1u8), (&b, 0xb1), (&c, 0xc1)] {
        assert_eq!(
            &d.read(0, 65536).await.expect("read back")[..],
            &pattern(tag)[..]
        );
    }
    for d in [a, b, c] {
        d.close().await.expect("close");
    }
    // The server's copy (MDS READ) has every file's data: nothing lost by evicting.
    for (f, tag) in [("a.img", 0xa1u8), ("b.img", 0xb1), ("c.img", 0xc1)] {
        assert!(
            server_copy(&nfs, f, 65536).await == pattern(tag)[..],
            "{f} on the server differs"
        );
    }
    let snap = gw.stats().snapshot();
    eprintln!("[evict] {per_file} pieces per file\n  {snap}");
    assert_eq!(snap.request_errors, 0);
}

/// Each file keeps its own bound on cached pieces (a device's `max_cached_extents`), by
/// returning its least recently used layout windows: another file's pieces are never taken,
/// even when that file holds more than the first one's bound; an evicted window is fetched
/// again with LAYOUTGET (never served from what was dropped) and its data survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_file_keeps_its_own_cache_bound_by_returning_its_least_recently_used_windows() {
    const WINDOW_BYTES: u64 = 64 * 1024;
    const WINDOWS: u64 = 16;
    let s = start("perfile", 1, 4096, simple(0), LabelAt::Start).await;
    let nfs = connect(&s, "gw-perfile").await;
    for f in ["a.img", "b.img"] {
        create_file(&nfs, f, FILE_BYTES).await;
    }
    let gw = gateway_with(
        &s,
        Arc::clone(&nfs),
        PnfsConfig {
            layout_chunk_bytes: WINDOW_BYTES,
            ..PnfsConfig::default()
        },
    );
    // 4 KiB at the start of a window: with the layout of the window that is two pieces
    // (written, INVALID rest), which never merge with the next window's.
    let block =
        |w: u64, tag: u8| bytes::Bytes::from(vec![tag.wrapping_add(w.to_le_bytes()[0]); 4096]);
    let b = gw
        .open_disk_bounded("b.img", false, 1000)
        .await
        .expect("open b");
    for w in 0..WINDOWS {
        b.write(w * WINDOW_BYTES, block(w, 0xb0), false)
            .await
            .expect("write b");
    }
    b.flush().await.expect("flush b");
    let b_pieces = b.cached_pieces();
    let per_window = b_pieces / usize::try_from(WINDOWS).expect("small");
    assert!(per_window >= 2, "{b_pieces} pieces in b");

    // a may hold 4 windows' worth: far less than b holds.
    let bound = 4 * per_window;
    let a = gw
        .open_disk_bounded("a.img", false, bound)
        .await
        .expect("open a");
    for w in 0..WINDOWS {
        a.write(w * WINDOW_BYTES, block(w, 0xa0), false)
            .await
            .expect("write a");
    }
    eventually("a within its bound", || a.cached_pieces() <= bound).await;
    let snap = gw.stats().snapshot();
    assert!(snap.window_evictions > 0, "{snap}");
    assert_eq!(snap.evictions, 0, "no whole file was evicted: {snap}");
    assert_eq!(
        b.cached_pieces(),
        b_pieces,
        "a's bound never takes b's pieces"
    );

    // a now holds its 4 most recent windows (12..16). Use 12 again, then fetch window 0
    // back: the least recently used one (13) goes, 12 stays.
    let layoutgets = || gw.stats().snapshot().layoutgets;
    let before = layoutgets();
    let read = |w: u64| a.read(w * WINDOW_BYTES, 4096);
    assert_eq!(&read(12).await.expect("read 12")[..], &block(12, 0xa0)[..]);
    assert_eq!(layoutgets(), before, "window 12 is cached");
    assert_eq!(&read(0).await.expect("read 0")[..], &block(0, 0xa0)[..]);
    assert!(layoutgets() > before, "window 0 was evicted: fetched again");
    eventually("a within its bound again", || a.cached_pieces() <= bound).await;
    let before = layoutgets();
    assert_eq!(&read(12).await.expect("read 12")[..], &block(12, 0xa0)[..]);
    assert_eq!(layoutgets(), before, "the recently used window 12 was kept");
    assert_eq!(&read(13).await.expect("read 13")[..], &block(13, 0xa0)[..]);
    assert!(
        layoutgets() > before,
        "window 13 was the least recently used"
    );
    // A write into an evicted window goes through a new layout too, and is read back.
    a.write(WINDOW_BYTES + 8192, block(1, 0xc0), false)
        .await
        .expect("rewrite 1");
    assert_eq!(
        &a.read(WINDOW_BYTES + 8192, 4096).await.expect("read")[..],
        &block(1, 0xc0)[..]
    );

    // Every block of both files, read back through the gateway and from the server.
    for w in 0..WINDOWS {
        assert_eq!(
            &read(w).await.expect("read a")[..],
            &block(w, 0xa0)[..],
            "a {w}"
        );
        let got = b.read(w * WINDOW_BYTES, 4096).await.expect("read b");
        assert_eq!(&got[..], &block(w, 0xb0)[..], "b {w}");
    }
    assert_eq!(b.cached_pieces(), b_pieces, "b kept everything");
    a.close().await.expect("close a");
    b.close().await.expect("close b");
    let len = u32::try_from(WINDOWS * WINDOW_BYTES).expect("small");
    for (f, tag) in [("a.img", 0xa0u8), ("b.img", 0xb0)] {
        let copy = server_copy(&nfs, f, len).await;
        for w in 0..WINDOWS {
            let at = usize::try_from(w * WINDOW_BYTES).expect("small");
            assert!(
                copy[at..at + 4096] == block(w, tag)[..],
                "{f} window {w} on the server"
            );
        }
    }
    let copy = server_copy(&nfs, "a.img", len).await;
    let at = usize::try_from(WINDOW_BYTES + 8192).expect("small");
    assert!(
        copy[at..at + 4096] == block(1, 0xc0)[..],
        "a's rewrite on the server"
    );
    let snap = gw.stats().snapshot();
    eprintln!("[perfile] {per_window} pieces a window, bound {bound}\n  {snap}");
    assert_eq!(snap.request_errors, 0);
}

/// Writes that cross the commit threshold together wait for one LAYOUTCOMMIT: a commit
/// needs more than `commit_threshold_pieces` uncommitted pieces when it gets the commit
/// lock, not only when its write ended (else each of a queue of first writes sent its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_writes_crossing_the_commit_threshold_together_share_one_layoutcommit() {
    const THRESHOLD_PIECES: usize = 4;
    const WRITES: u64 = 256;
    const QUEUE: u64 = 16;
    let s = start("threshold", 1, 4096, simple(0), LabelAt::Start).await;
    let nfs = connect(&s, "gw-threshold").await;
    create_file(&nfs, "t.img", FILE_BYTES).await;
    let gw = gateway_with(
        &s,
        Arc::clone(&nfs),
        PnfsConfig {
            commit_threshold_pieces: THRESHOLD_PIECES,
            ..PnfsConfig::default()
        },
    );
    let d = Arc::new(gw.open_disk("t.img", false).await.expect("open"));
    // One LAYOUTGET first, so that the writes below run together.
    d.write(0, bytes::Bytes::from(vec![1u8; 4096]), false)
        .await
        .expect("first write");
    let before = gw.stats().snapshot().commits;
    // Every other block: each write leaves its own uncommitted piece. QUEUE writers, each
    // writing in turn (like fio at a queue depth): while a commit runs, others keep adding
    // pieces and queue up behind it.
    let mut set = tokio::task::JoinSet::new();
    for q in 0..QUEUE {
        let d = Arc::clone(&d);
        set.spawn(async move {
            for i in (1..=WRITES).filter(|i| i % QUEUE == q) {
                d.write(i * 8192, bytes::Bytes::from(vec![2u8; 4096]), false)
                    .await?;
            }
            Ok::<(), pnfs_gateway::disk::DiskError>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("join").expect("write");
    }
    let commits = gw.stats().snapshot().commits - before;
    // Each commit empties the pending set, so the next needs THRESHOLD + 1 new pieces.
    let most = WRITES / (THRESHOLD_PIECES as u64 + 1) + 1;
    eprintln!("[threshold] {WRITES} first writes, {commits} LAYOUTCOMMITs (at most {most})");
    assert!(
        commits <= most,
        "{commits} LAYOUTCOMMITs for {WRITES} writes"
    );
    assert!(commits >= 1);
    d.close().await.expect("close");
    // The server's copy, block by block (MDS READ).
    let h = nfs.open("t.img", READ_ONLY).await.expect("open for check");
    for i in 1..=WRITES {
        let r = nfs.read(&h, i * 8192, 4096).await.expect("MDS READ");
        assert!(r.data.iter().all(|&b| b == 2), "block {i} on the server");
    }
    nfs.close(&h).await.expect("close check");
    assert_eq!(gw.stats().snapshot().request_errors, 0);
}

/// A layout the gateway cannot return in time (a write to the volume hangs past the recall
/// timeout) is revoked by the MDS. The MDS then flags RECALLABLE_STATE_REVOKED; the gateway
/// finds the layout with TEST_STATEID, frees it and drops that file's layout only (the other
/// file keeps its own: no new LAYOUTGET to read it). When the volume answers again the hung
/// write completes, its data reaches the server (LAYOUTCOMMIT is refused, so it is rewritten
/// through the MDS) and the revocation ends acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_layout_is_found_freed_and_dropped_alone() {
    let quick_recall = pnfs_mds::nfs::Settings {
        recall_timeout: Duration::from_secs(1),
        ..settings()
    };
    let s = start_with("revoke", 1, 4096, simple(0), LabelAt::Start, quick_recall).await;
    let nfs = connect(&s, "gw-revoke").await;
    for f in ["a.img", "b.img"] {
        create_file(&nfs, f, FILE_BYTES).await;
    }
    let leaf = FileVolume::open(&s.leaves[0], false, true).expect("open leaf");
    let fault = Arc::new(FaultVolume::new(Arc::new(leaf)));
    let gw = PnfsClient::new(
        Arc::clone(&nfs),
        vec![Arc::clone(&fault) as Arc<dyn VolumeIo>],
        PnfsConfig::default(),
        Arc::new(Stats::default()),
    );
    let a = Arc::new(gw.open_disk("a.img", false).await.expect("open a"));
    let b = gw.open_disk("b.img", false).await.expect("open b");
    let fill = |tag: u8, len: usize| bytes::Bytes::from(vec![tag; len]);
    a.write(0, fill(0xa1, 65536), false).await.expect("write a");
    b.write(0, fill(0xb1, 65536), false).await.expect("write b");

    fault.stall_writes();
    let a2 = Arc::clone(&a);
    let hung = tokio::spawn(async move { a2.write(4096, fill(0xa2, 4096), false).await });
    eventually("the write to a is held by the volume", || {
        fault.stalled_writes() == 1
    })
    .await;
    assert_eq!(s.mds.recall_layouts("a.img").expect("recall a"), 1);
    eventually(
        "the MDS revokes a's layout after the recall timeout",
        || s.mds.recall_stats().1 == 1,
    )
    .await;
    assert_eq!(s.mds.revoked_unacknowledged(), 1);
    // Any compound now carries the flag; this one is a GETATTR through b's open.
    let probe = nfs
        .open("b.img", READ_ONLY)
        .await
        .expect("open b for a GETATTR");
    assert_eq!(nfs.get_size(&probe).await.expect("GETATTR"), FILE_BYTES);
    nfs.close(&probe).await.expect("close probe");
    eventually("the gateway finds and drops a's revoked layout", || {
        gw.stats().snapshot().layouts_revoked == 1
    })
    .await;
    let layoutgets = gw.stats().snapshot().layoutgets;
    assert!(
        b.read(0, 65536).await.expect("read b")[..] == fill(0xb1, 65536)[..],
        "b reads back what was written"
    );
    assert_eq!(
        gw.stats().snapshot().layoutgets,
        layoutgets,
        "b's layout was not revoked and must still be cached"
    );

    fault.release_writes();
    hung.await
        .expect("write task")
        .expect("the held write completes once the volume answers");
    eventually("the revocation is acknowledged", || {
        s.mds.revoked_unacknowledged() == 0
    })
    .await;
    let mut want = vec![0xa1u8; 65536];
    want[4096..8192].fill(0xa2);
    assert!(
        a.read(0, 65536).await.expect("read a")[..] == want[..],
        "a reads back both writes"
    );
    a.close().await.expect("close a");
    b.close().await.expect("close b");
    // The server's copy (MDS READ) has both files' data.
    for (f, data) in [("a.img", want), ("b.img", vec![0xb1u8; 65536])] {
        assert!(
            server_copy(&nfs, f, 65536).await == data,
            "{f} on the server differs"
        );
    }
    let snap = gw.stats().snapshot();
    eprintln!("[revoke] {snap}");
    assert_eq!(snap.layouts_revoked, 1);
    assert_eq!(snap.request_errors, 0);
}
