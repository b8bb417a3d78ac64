//! pNFS layer logic tests against the in-crate MDS test double (exact control over timing,
//! recalls and faults) over real volume files. The acceptance runs against real servers are in
//! pnfs_mds.rs, pnfs_mds_process.rs (the embedded MDS), pnfs_nfsd.rs, pnfs_nfsd_scsi.rs (Linux
//! nfsd in the guest) and pnfs_ganesha.rs (nfs-ganesha: no layouts, the MDS path).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pnfs_gateway::disk::Disk;
use pnfs_gateway::mds_api::MetadataServer;
use pnfs_gateway::pnfs::fence::FenceConfig;
use pnfs_gateway::pnfs::testing::fake_mds::{
    FakeMds, FakeMdsConfig, FakeTopology, FAKE_SIG_RESERVE_BYTES,
};
use pnfs_gateway::pnfs::testing::workload::{run_workload, WorkloadConfig};
use pnfs_gateway::pnfs::testing::{make_volume_file, scratch_dir};
use pnfs_gateway::pnfs::volume::{
    FaultRange, FaultVolume, FileVolume, TraceKind, TraceVolume, VolumeIo,
};
use pnfs_gateway::pnfs::{PnfsClient, PnfsConfig};
use pnfs_gateway::stats::Stats;
use pnfs_proto::nfs4::NfsStat;

const FILE_BYTES: u64 = 8 << 20;

struct Bed {
    fake: Arc<FakeMds>,
    client: PnfsClient<FakeMds>,
}

async fn bed(
    tag: &str,
    topo: FakeTopology,
    leaves: usize,
    block: u64,
    layouts: bool,
    wrap: impl Fn(Arc<dyn VolumeIo>) -> Arc<dyn VolumeIo>,
) -> Bed {
    bed_with(
        tag,
        topo,
        leaves,
        block,
        layouts,
        wrap,
        PnfsConfig::default(),
    )
    .await
}

async fn bed_with(
    tag: &str,
    topo: FakeTopology,
    leaves: usize,
    block: u64,
    layouts: bool,
    wrap: impl Fn(Arc<dyn VolumeIo>) -> Arc<dyn VolumeIo>,
    cfg: PnfsConfig,
) -> Bed {
    let dir = scratch_dir(tag);
    let leaf_bytes = 16 << 20;
    let paths: Vec<_> = (0..leaves)
        .map(|i| {
            make_volume_file(
                &dir,
                &format!("leaf{i}"),
                leaf_bytes + FAKE_SIG_RESERVE_BYTES,
            )
            .expect("volume file")
        })
        .collect();
    let fake = FakeMds::new(FakeMdsConfig {
        leaves: paths.clone(),
        topology: topo,
        block_bytes: block,
        lease: Duration::from_secs(30),
        layouts,
    })
    .await
    .expect("fake MDS");
    fake.create_file("/f", FILE_BYTES);
    // Client-side handles: separate opens of the same files (as a gateway would have).
    let volumes: Vec<Arc<dyn VolumeIo>> = paths
        .iter()
        .map(|p| {
            wrap(
                Arc::new(FileVolume::open(p, false, true).expect("open volume"))
                    as Arc<dyn VolumeIo>,
            )
        })
        .collect();
    let client = PnfsClient::new(Arc::clone(&fake), volumes, cfg, Arc::new(Stats::default()));
    Bed { fake, client }
}

fn plain(v: Arc<dyn VolumeIo>) -> Arc<dyn VolumeIo> {
    v
}

async fn workload_and_server_view(b: &Bed, seed: u64, block: u64) {
    let disk = b.client.open_disk("/f", false).await.expect("open disk");
    let mut cfg = WorkloadConfig::new(seed, block);
    cfg.ops = 300;
    let (rep, model) = run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rep.reads > 50 && rep.writes > 50, "{rep:?}");
    // After the workload's final flush, the server's view (committed data) equals the model.
    let server = b.fake.server_view("/f").await.expect("server view");
    for (i, (&s, &m)) in server.iter().zip(model.data.iter()).enumerate() {
        if model.defined[i] {
            assert_eq!(s, m, "seed={seed}: server view differs at byte {i}");
        }
    }
    disk.close().await.expect("close");
    let snap = b.client.stats().snapshot();
    eprintln!("seed={seed} block={block} {rep:?}\n  {snap}");
    assert!(
        snap.direct_write_bytes > 0 && snap.layoutgets > 0 && snap.commits > 0,
        "{snap}"
    );
    assert_eq!(snap.request_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_block_sizes_simple() {
    for (i, block) in [4096u64, 65536, 1 << 20].into_iter().enumerate() {
        let b = bed(
            &format!("bs{block}"),
            FakeTopology::Simple,
            1,
            block,
            true,
            plain,
        )
        .await;
        workload_and_server_view(&b, 0x5eed_0000 + i as u64, block).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_topologies() {
    let cases = [
        ("slice", FakeTopology::Slice, 1),
        ("concat", FakeTopology::Concat, 3),
        (
            "stripe",
            FakeTopology::Stripe {
                unit_bytes: 64 * 1024,
            },
            3,
        ),
        (
            "nested",
            FakeTopology::Nested {
                unit_bytes: 128 * 1024,
            },
            4,
        ),
    ];
    for (i, (name, topo, leaves)) in cases.into_iter().enumerate() {
        let b = bed(&format!("topo-{name}"), topo, leaves, 65536, true, plain).await;
        workload_and_server_view(&b, 0x70b0_0000 + i as u64, 65536).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_written_through_copy_on_write_leaves_source_unchanged() {
    let b = bed("cow", FakeTopology::Simple, 1, 65536, true, plain).await;
    {
        let src = b.client.open_disk("/f", false).await.expect("open src");
        let mut cfg = WorkloadConfig::new(0xc0de, 65536);
        cfg.trims = false;
        cfg.workers = 0;
        run_workload(&src, &cfg)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        src.close().await.expect("close src");
    }
    let before = b.fake.server_view("/f").await.expect("src view");
    b.fake.clone_file("/f", "/clone").expect("clone");
    let clone = b
        .client
        .open_disk("/clone", false)
        .await
        .expect("open clone");
    let first = clone.read(0, 1 << 20).await.expect("read clone");
    assert_eq!(&first[..], &before[..1 << 20], "clone starts as the source");
    let cfg = WorkloadConfig::new(0xc0de_0001, 65536);
    run_workload(&clone, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    clone.close().await.expect("close clone");
    let after = b.fake.server_view("/f").await.expect("src view");
    assert!(before == after, "source changed by writes to the clone");
    let snap = b.client.stats().snapshot();
    assert!(snap.rmw_blocks > 0, "{snap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recalls_during_workload_cause_no_errors_or_mismatches() {
    // A hundred recalls in a row are what the ping-pong back-off answers by leaving the
    // layouts alone for a while; this test is about recalls during direct I/O, so it keeps
    // the back-off off.
    let mut cfg = PnfsConfig::default();
    cfg.contention.recalls = 0;
    let b = bed_with("recall", FakeTopology::Simple, 1, 4096, true, plain, cfg).await;
    let disk = b.client.open_disk("/f", false).await.expect("open");
    let fake = Arc::clone(&b.fake);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let recaller = tokio::spawn(async move {
        let mut ok = 0u32;
        let mut rounds = 0u32;
        while ok < 100 && rounds < 100_000 && !stop2.load(Ordering::SeqCst) {
            rounds += 1;
            if fake.recall("/f") == NfsStat::OK {
                ok += 1;
                // Wait (bounded) for the return before the next recall.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while fake.recall_pending("/f") && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                assert!(
                    !fake.recall_pending("/f"),
                    "layout not returned within 10 s"
                );
            } else {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        ok
    });
    let mut cfg = WorkloadConfig::new(0x7eca11, 4096);
    cfg.ops = 1000;
    let r = run_workload(&disk, &cfg).await;
    stop.store(true, Ordering::SeqCst);
    let recalled = recaller.await.expect("recaller");
    r.unwrap_or_else(|e| panic!("{e}"));
    let snap = b.client.stats().snapshot();
    eprintln!("recalls answered OK: {recalled}\n  {snap}");
    assert!(
        recalled >= 20,
        "too few recalls happened during the workload: {recalled}"
    );
    assert_eq!(snap.request_errors, 0);
    assert!(snap.layoutreturns >= u64::from(recalled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_eio_requests_complete_through_the_mds() {
    let faults: Arc<std::sync::Mutex<Vec<Arc<FaultVolume>>>> = Arc::default();
    let f2 = Arc::clone(&faults);
    let b = bed("eio", FakeTopology::Simple, 1, 4096, true, move |v| {
        let fv = Arc::new(FaultVolume::new(v));
        f2.lock().expect("lock").push(Arc::clone(&fv));
        fv
    })
    .await;
    // Fail the first 4 MiB of the volume for reads and writes.
    for fv in faults.lock().expect("lock").iter() {
        fv.add_fault(FaultRange {
            start_bytes: 0,
            end_bytes: 4 << 20,
            reads: true,
            writes: true,
        });
    }
    let disk = b.client.open_disk("/f", false).await.expect("open");
    let mut cfg = WorkloadConfig::new(0xe10, 4096);
    cfg.trims = false;
    run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let snap = b.client.stats().snapshot();
    eprintln!("{snap}");
    assert!(
        snap.volume_errors > 0 && snap.mds_write_bytes > 0 && snap.mds_read_bytes > 0,
        "{snap}"
    );
    assert_eq!(snap.request_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_layouts_means_mds_io_and_trylater_is_retried() {
    let b = bed("nolayout", FakeTopology::Simple, 1, 4096, false, plain).await;
    let disk = b.client.open_disk("/f", false).await.expect("open");
    let mut cfg = WorkloadConfig::new(0x6a7e, 4096);
    cfg.ops = 100;
    run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let snap = b.client.stats().snapshot();
    assert_eq!(snap.direct_write_bytes, 0);
    assert!(snap.mds_write_bytes > 0);

    let b = bed("trylater", FakeTopology::Simple, 1, 4096, true, plain).await;
    b.fake.layoutget_errors.lock().expect("lock").extend([
        NfsStat::LAYOUTTRYLATER,
        NfsStat::RECALLCONFLICT,
        NfsStat::BAD_STATEID,
    ]);
    let disk = b.client.open_disk("/f", false).await.expect("open");
    disk.write(0, Bytes::from(vec![7u8; 8192]), true)
        .await
        .expect("write");
    assert_eq!(
        &disk.read(0, 8192).await.expect("read")[..],
        &[7u8; 8192][..]
    );
    let snap = b.client.stats().snapshot();
    assert_eq!(snap.layoutget_errors, 3, "{snap}");
    assert!(snap.direct_write_bytes >= 8192, "{snap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_no_direct_write_after_the_fence_point() {
    let traces: Arc<std::sync::Mutex<Vec<Arc<TraceVolume>>>> = Arc::default();
    let t2 = Arc::clone(&traces);
    let dir = scratch_dir("fence");
    let path = make_volume_file(&dir, "leaf0", (16 << 20) + FAKE_SIG_RESERVE_BYTES).expect("vol");
    let lease = Duration::from_secs(3);
    let fake = FakeMds::new(FakeMdsConfig {
        leaves: vec![path.clone()],
        topology: FakeTopology::Simple,
        block_bytes: 4096,
        lease,
        layouts: true,
    })
    .await
    .expect("fake");
    fake.create_file("/f", FILE_BYTES);
    fake.spawn_renewer();
    let base: Arc<dyn VolumeIo> = Arc::new(FileVolume::open(&path, false, true).expect("open"));
    let tv = Arc::new(TraceVolume::new(base));
    t2.lock().expect("lock").push(Arc::clone(&tv));
    let fence = FenceConfig {
        safety_margin: Duration::from_millis(500),
        max_io: Duration::from_millis(500),
        max_wait: Duration::from_millis(300),
    };
    let cfg = PnfsConfig {
        fence,
        ..PnfsConfig::default()
    };
    let client = PnfsClient::new(
        Arc::clone(&fake),
        vec![tv.clone() as Arc<dyn VolumeIo>],
        cfg,
        Arc::new(Stats::default()),
    );
    let disk = Arc::new(client.open_disk("/f", false).await.expect("open disk"));
    // Stall the MDS (SIGSTOP-like) while the workload runs; resume after 2 leases.
    let fake2 = Arc::clone(&fake);
    let lease_rx = fake.lease_watch();
    let staller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        fake2.stall();
        let last = lease_rx.borrow().last_renewal_sent.expect("renewed");
        let fence_point = fence.fence_point(&pnfs_gateway::mds_api::LeaseStatus {
            last_renewal_sent: Some(last),
            lease,
            client_epoch: 1,
        });
        tokio::time::sleep(lease * 2).await;
        let resumed_at = tokio::time::Instant::now();
        fake2.resume();
        fake2.renew();
        (fence_point.expect("fence point"), resumed_at)
    });
    // Direct writes and checked reads on an already committed region (no MDS call needed)
    // until the stall is over (bounded); the fence must stop them, not the MDS.
    let mut model = vec![0u8; 1 << 20];
    disk.write(0, Bytes::from(model.clone()), true)
        .await
        .expect("prefill");
    let mut rng = 0x5eed_u64;
    let mut iterations = 0u32;
    while !staller.is_finished() && iterations < 1_000_000 {
        iterations += 1;
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let off = usize::try_from((rng >> 33) % ((1 << 20) - 8192)).expect("offset");
        let len = 1 + usize::try_from((rng >> 20) % 8192).expect("len");
        let data: Vec<u8> = (0..len)
            .map(|k| rng.to_le_bytes()[0].wrapping_add(k.to_le_bytes()[0]) | 1)
            .collect();
        disk.write(off as u64, Bytes::from(data.clone()), false)
            .await
            .expect("write");
        model[off..off + len].copy_from_slice(&data);
        let back = disk
            .read(off as u64, u32::try_from(len).expect("len"))
            .await
            .expect("read");
        assert_eq!(&back[..], &model[off..off + len], "iteration {iterations}");
    }
    assert!(
        staller.is_finished(),
        "iterations ran out before the stall ended"
    );
    let back = disk.read(0, 1 << 20).await.expect("final read");
    assert!(back[..] == model[..], "final content differs");
    let (fence_point, resumed_at) = staller.await.expect("staller");
    let late: Vec<_> = tv
        .entries()
        .into_iter()
        .filter(|e| {
            e.kind == TraceKind::Write && e.issued_at >= fence_point && e.issued_at < resumed_at
        })
        .collect();
    assert!(
        late.is_empty(),
        "direct writes issued after the fence point: {late:?}"
    );
    let snap = client.stats().snapshot();
    eprintln!("{snap}");
    assert!(
        snap.fencing_events > 0,
        "the workload never hit the fence: {snap}"
    );
    assert_eq!(snap.request_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_any_bulk_recall_and_device_notification() {
    use pnfs_gateway::mds_api::{
        DeviceNotification, LayoutRecall, RecallTarget, RCA4_TYPE_MASK_BLK_LAYOUT_BIT,
    };
    use pnfs_proto::nfs4::{LayoutIoMode, LayoutType};
    let b = bed("rca", FakeTopology::Simple, 1, 4096, true, plain).await;
    let disk = b.client.open_disk("/f", false).await.expect("open");
    let sink = b.fake.sink().expect("sink registered");
    let wait_empty =
        |disk: &pnfs_gateway::pnfs::file_disk::PnfsDisk<FakeMds>| disk.cached_pieces() == 0;

    // CB_RECALL_ANY without the block bit: nothing happens.
    disk.write(0, Bytes::from(vec![1u8; 10_000]), false)
        .await
        .expect("write");
    assert_eq!(sink.recall_any(1 << 3, 0), NfsStat::OK);
    assert!(disk.cached_pieces() > 0);
    // With the block bit and keep 0: the layout is committed and returned.
    assert_eq!(
        sink.recall_any(1 << RCA4_TYPE_MASK_BLK_LAYOUT_BIT, 0),
        NfsStat::OK
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !wait_empty(&disk) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(wait_empty(&disk), "layout not returned after CB_RECALL_ANY");
    assert_eq!(
        &b.fake.server_view("/f").await.expect("view")[..10_000],
        &[1u8; 10_000][..]
    );

    // Bulk recall (ALL): returned with one LAYOUTRETURN4_ALL; data committed first.
    disk.write(20_000, Bytes::from(vec![2u8; 5000]), false)
        .await
        .expect("write");
    let returns_before = b.fake.counters.returns.load(Ordering::SeqCst);
    let answer = sink.layout_recall(LayoutRecall {
        layout_type: LayoutType::BlockVolume,
        iomode: LayoutIoMode::Any,
        changed: true,
        target: RecallTarget::All,
    });
    assert_eq!(answer, NfsStat::OK);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while b.fake.counters.returns.load(Ordering::SeqCst) == returns_before
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        b.fake.counters.returns.load(Ordering::SeqCst) > returns_before,
        "no LAYOUTRETURN after a bulk recall"
    );
    assert_eq!(
        &b.fake.server_view("/f").await.expect("view")[20_000..25_000],
        &[2u8; 5000][..]
    );
    // Nothing held now: a second bulk recall finds no matching layout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !wait_empty(&disk) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // CB_NOTIFY_DEVICEID: the device is fetched again on next use.
    let gdi_before = b.fake.counters.getdeviceinfos.load(Ordering::SeqCst);
    assert_eq!(
        sink.notify_deviceid(&[DeviceNotification::Change {
            layout_type: LayoutType::BlockVolume,
            device_id: b.fake.device_id(),
            immediate: true,
        }]),
        NfsStat::OK
    );
    assert_eq!(
        &disk.read(20_000, 5000).await.expect("read")[..],
        &[2u8; 5000][..]
    );
    assert!(
        b.fake.counters.getdeviceinfos.load(Ordering::SeqCst) > gdi_before,
        "device not re-fetched"
    );
    assert_eq!(b.client.stats().snapshot().request_errors, 0);
}

/// Without DEALLOCATE (the fake has none, like a 4.1 session) trim zeros the written parts of
/// the range: it reads back as zeros, the data around it is untouched, and trimming
/// never-written space (INVALID extents: already zeros) writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trim_without_deallocate_reads_back_zeros() {
    let b = bed("trim", FakeTopology::Simple, 1, 4096, true, plain).await;
    let disk = b.client.open_disk("/f", false).await.expect("open");
    let pattern: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8 + 1).collect();
    disk.write(1 << 20, Bytes::from(pattern.clone()), false)
        .await
        .expect("write");
    let written_before = b.client.stats().snapshot().direct_write_bytes;
    // Never written: trimming it must not write.
    disk.trim(5 << 20, 2 << 20).await.expect("trim fresh space");
    assert_eq!(
        b.client.stats().snapshot().direct_write_bytes,
        written_before,
        "trim of never-written space wrote data"
    );
    // The middle MiB of the pattern plus 4 KiB either side.
    let (at, len) = ((2 << 20) - 4096, (1 << 20) + 8192);
    disk.trim(at, len).await.expect("trim written data");
    let back = disk.read(1 << 20, 3 << 20).await.expect("read back");
    let rel = usize::try_from(at - (1 << 20)).expect("offset");
    let rel_end = rel + usize::try_from(len).expect("length");
    assert_eq!(
        &back[..rel],
        &pattern[..rel],
        "data before the trim changed"
    );
    assert!(
        back[rel..rel_end].iter().all(|&b| b == 0),
        "trimmed range does not read as zeros"
    );
    assert_eq!(
        &back[rel_end..],
        &pattern[rel_end..],
        "data after the trim changed"
    );
    disk.flush().await.expect("flush");
    assert_eq!(b.client.stats().snapshot().request_errors, 0);
}

/// Waits (bounded) until the fake has no recall of `path` outstanding; false on timeout.
async fn recall_answered(fake: &FakeMds, path: &str) -> bool {
    let deadline = tokio::time::Instant::now() + RECALL_RETURN_LIMIT;
    while fake.recall_pending(path) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    !fake.recall_pending(path)
}

/// How long a test waits for a held call to arrive or a recalled layout to come back.
const RECALL_RETURN_LIMIT: Duration = Duration::from_secs(10);

/// Issue 12 item 6 (`recalls_during_workload_cause_no_errors_or_mismatches` failing with
/// BAD_STATEID on a trim's LAYOUTCOMMIT): a CB_LAYOUTRECALL that arrives after a LAYOUTGET
/// reply came back but before its layout stateid is applied. The client once cleared its
/// "LAYOUTGET in flight" mark before applying the reply, so in that window it had no layout
/// stateid and no LAYOUTGET in flight and answered NOMATCHING_LAYOUT: for the server the
/// layout was returned, yet the client then cached it, wrote through it and sent LAYOUTCOMMIT
/// on it, which the server refused. The hook sends the recall exactly in that window. The
/// recall must be answered DELAY (the reply lands first), the flush's LAYOUTCOMMIT succeed
/// with the new stateid, and nothing be rewritten through the MDS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_between_layoutget_reply_and_its_stateid_is_delayed() {
    let b = bed("lgreply", FakeTopology::Simple, 1, 4096, true, plain).await;
    let disk = b.client.open_disk("/f", false).await.expect("open");
    let answer = Arc::new(std::sync::Mutex::new(None));
    let (fake, seen) = (Arc::clone(&b.fake), Arc::clone(&answer));
    b.client.hooks().on_next_layoutget_reply(move || {
        *seen.lock().expect("lock") = Some(fake.recall("/f"));
    });
    let data = Bytes::from(vec![0x5au8; 3 * 4096 + 100]);
    disk.write(8192, data.clone(), false).await.expect("write");
    disk.flush()
        .await
        .expect("flush: LAYOUTCOMMIT on the layout just granted");
    assert_eq!(
        *answer.lock().expect("lock"),
        Some(NfsStat::DELAY),
        "recall between a LAYOUTGET reply and its stateid: the reply must land first"
    );
    // The layout the server still knows is recalled and returned normally.
    assert_eq!(b.fake.recall("/f"), NfsStat::OK);
    assert!(recall_answered(&b.fake, "/f").await, "layout not returned");
    let view = b.fake.server_view("/f").await.expect("view");
    assert_eq!(&view[8192..8192 + data.len()], &data[..]);
    let snap = b.client.stats().snapshot();
    assert_eq!(snap.commit_errors, 0, "{snap}");
    assert_eq!(snap.request_errors, 0, "{snap}");
    assert!(snap.direct_write_bytes >= data.len() as u64, "{snap}");
    assert_eq!(
        b.fake.counters.write_bytes.load(Ordering::SeqCst),
        0,
        "data rewritten through the MDS: the commit was refused"
    );
}

/// docs/requirements.md (C1–C4): BAD_STATEID on a layout stateid means reset and retry, never
/// an I/O error for the user, and written data is never lost. A LAYOUTCOMMIT refused with
/// BAD_STATEID on the stateid the file still holds: the flush succeeds, the written blocks
/// reach the server through MDS WRITEs (read back from the volume), the layout state is
/// forgotten and the next write takes a new layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layoutcommit_bad_stateid_rewrites_through_the_mds_not_an_io_error() {
    let b = bed("lcbad", FakeTopology::Simple, 1, 4096, true, plain).await;
    let disk = b.client.open_disk("/f", false).await.expect("open");
    let first = Bytes::from(vec![0x11u8; 10_000]);
    disk.write(0, first.clone(), false).await.expect("write");
    assert!(disk.uncommitted_pieces() > 0, "the write went direct");
    b.fake
        .layoutcommit_errors
        .lock()
        .expect("lock")
        .push_back(NfsStat::BAD_STATEID);
    disk.flush()
        .await
        .expect("flush after a refused LAYOUTCOMMIT");
    assert_eq!(disk.cached_pieces(), 0, "the refused layout is forgotten");
    assert!(
        b.fake.counters.write_bytes.load(Ordering::SeqCst) >= first.len() as u64,
        "the uncommitted data did not go through the MDS"
    );
    let view = b.fake.server_view("/f").await.expect("view");
    assert_eq!(&view[..first.len()], &first[..]);
    // A new layout for the next write, committed normally.
    let layoutgets = b.fake.counters.layoutgets.load(Ordering::SeqCst);
    let second = Bytes::from(vec![0x22u8; 5000]);
    disk.write(40_000, second.clone(), false)
        .await
        .expect("write");
    disk.flush().await.expect("flush");
    assert!(b.fake.counters.layoutgets.load(Ordering::SeqCst) > layoutgets);
    let view = b.fake.server_view("/f").await.expect("view");
    assert_eq!(&view[40_000..45_000], &second[..]);
    assert_eq!(&view[..first.len()], &first[..]);
    let snap = b.client.stats().snapshot();
    assert_eq!(snap.commit_errors, 1, "{snap}");
    assert_eq!(snap.request_errors, 0, "{snap}");
}

/// A recall answered while a LAYOUTCOMMIT is on the wire (held by the fake until the answer
/// is in): the return waits for that commit and returns only after it, and the commit, judged
/// by the server after the recall was answered, still holds a valid stateid. Once for a
/// flush; once for a close (shutdown): a closing file's layout is being committed and
/// returned, so the recall is answered OK (the close's LAYOUTRETURN answers it), not
/// NOMATCHING_LAYOUT, which would tell the server the layout was already returned and
/// make the close's LAYOUTCOMMIT fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_answered_while_a_commit_is_held_returns_after_it() {
    for close in [false, true] {
        let b = bed(
            &format!("cmthold-{close}"),
            FakeTopology::Simple,
            1,
            4096,
            true,
            plain,
        )
        .await;
        let disk = b.client.open_disk("/f", false).await.expect("open");
        let data = Bytes::from(vec![0x3cu8; 20_000]);
        disk.write(4096, data.clone(), false).await.expect("write");
        let mut hold = b.fake.hold_next_layoutcommit();
        let recall = async {
            assert!(
                hold.arrived(RECALL_RETURN_LIMIT).await,
                "no LAYOUTCOMMIT arrived (close={close})"
            );
            let answer = b.fake.recall("/f");
            hold.release();
            answer
        };
        let (done, answer) = if close {
            tokio::join!(disk.close(), recall)
        } else {
            tokio::join!(disk.flush(), recall)
        };
        done.unwrap_or_else(|e| panic!("close={close}: {e}"));
        assert_eq!(answer, NfsStat::OK, "close={close}");
        assert!(
            recall_answered(&b.fake, "/f").await,
            "close={close}: layout not returned"
        );
        let view = b.fake.server_view("/f").await.expect("view");
        assert_eq!(&view[4096..4096 + data.len()], &data[..], "close={close}");
        let snap = b.client.stats().snapshot();
        assert_eq!(snap.commit_errors, 0, "close={close}: {snap}");
        assert_eq!(snap.request_errors, 0, "close={close}: {snap}");
        assert_eq!(
            b.fake.counters.write_bytes.load(Ordering::SeqCst),
            0,
            "close={close}: data rewritten through the MDS"
        );
    }
}

/// Bulk recall (CB_LAYOUTRECALL ALL): each file commits and forgets its layout, then one
/// LAYOUTRETURN4_ALL. A write that arrives while that LAYOUTRETURN is on the wire (held by
/// the fake) must not take a layout the LAYOUTRETURN is about to return (its commit would be
/// refused): it waits for the bulk return, then takes a new layout. The write is polled
/// first, so it reaches its LAYOUTGET (or its wait for the recall) before the release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_during_a_bulk_layoutreturn_waits_for_it() {
    use pnfs_gateway::mds_api::{LayoutRecall, RecallTarget};
    use pnfs_proto::nfs4::{LayoutIoMode, LayoutType};
    let b = bed("bulkhold", FakeTopology::Simple, 1, 4096, true, plain).await;
    let disk = b.client.open_disk("/f", false).await.expect("open");
    let first = Bytes::from(vec![0x71u8; 12_000]);
    disk.write(0, first.clone(), false).await.expect("write");
    let sink = b.fake.sink().expect("sink registered");
    let mut hold = b.fake.hold_next_layoutreturn();
    let answer = sink.layout_recall(LayoutRecall {
        layout_type: LayoutType::BlockVolume,
        iomode: LayoutIoMode::Any,
        changed: true,
        target: RecallTarget::All,
    });
    assert_eq!(answer, NfsStat::OK);
    assert!(
        hold.arrived(RECALL_RETURN_LIMIT).await,
        "no LAYOUTRETURN after the bulk recall"
    );
    let second = Bytes::from(vec![0x72u8; 9000]);
    let (written, ()) = tokio::join!(disk.write(100_000, second.clone(), false), async {
        hold.release()
    });
    written.expect("write during the bulk LAYOUTRETURN");
    disk.flush().await.expect("flush");
    let view = b.fake.server_view("/f").await.expect("view");
    assert_eq!(&view[..first.len()], &first[..]);
    assert_eq!(&view[100_000..100_000 + second.len()], &second[..]);
    let snap = b.client.stats().snapshot();
    assert_eq!(snap.commit_errors, 0, "{snap}");
    assert_eq!(snap.request_errors, 0, "{snap}");
    assert_eq!(
        b.fake.counters.write_bytes.load(Ordering::SeqCst),
        0,
        "data rewritten through the MDS: a commit was refused"
    );
}

/// A file that leaves the MDS path (here: a LAYOUTUNAVAILABLE back-off that ends; in service
/// also the contention back-off) must not keep an UNSTABLE MDS write of bytes it then writes
/// directly: if the write verifier changes before the next commit (an MDS restart), the
/// gateway sends its kept writes again, and that older write would land over the newer
/// direct data of the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_write_is_not_overwritten_by_an_older_unstable_mds_write_sent_again() {
    const BACKOFF: Duration = Duration::from_millis(200);
    let cfg = PnfsConfig {
        unavailable_backoff: BACKOFF,
        ..PnfsConfig::default()
    };
    let b = bed_with(
        "kept-order",
        FakeTopology::Simple,
        1,
        4096,
        true,
        plain,
        cfg,
    )
    .await;
    b.fake
        .unstable_writes
        .store(true, std::sync::atomic::Ordering::SeqCst);
    b.fake
        .layoutget_errors
        .lock()
        .expect("lock")
        .push_back(NfsStat::LAYOUTUNAVAILABLE);
    let disk = b.client.open_disk("/f", false).await.expect("open");
    disk.write(0, Bytes::from(vec![1u8; 8192]), false)
        .await
        .expect("write through the MDS");
    let snap = b.client.stats().snapshot();
    assert_eq!(
        snap.mds_write_bytes, 8192,
        "the first write goes through the MDS: {snap}"
    );
    // The back-off is a configured period: once it is over, the same bytes are written
    // directly.
    tokio::time::sleep(BACKOFF + Duration::from_millis(50)).await;
    disk.write(0, Bytes::from(vec![2u8; 8192]), false)
        .await
        .expect("direct write");
    let snap = b.client.stats().snapshot();
    assert!(
        snap.direct_write_bytes >= 8192,
        "the second write is direct: {snap}"
    );
    // The MDS restarts (a new write verifier) before the flush.
    b.fake
        .write_verifier
        .store(2, std::sync::atomic::Ordering::SeqCst);
    disk.flush().await.expect("flush");
    let got = disk.read(0, 8192).await.expect("read");
    let stale = got.iter().filter(|&&b| b != 2).count();
    assert_eq!(
        stale,
        0,
        "the newer direct write survives the flush after the verifier change: {stale} of \
         8192 bytes differ (first bytes {:?})",
        &got[..8]
    );
    assert_eq!(b.client.stats().snapshot().request_errors, 0);
}
