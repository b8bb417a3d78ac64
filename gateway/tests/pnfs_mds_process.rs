//! The pNFS disk against the embedded MDS running as a real process (`pnfs-mds` binary, built
//! by `cargo build -p pnfs-mds` into the same target dir): SIGKILL + restart and TCP cuts
//! during the workload (recovery), and SIGSTOP past the fence point (fencing, proven with a
//! volume tracing layer).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::disk::Disk;
use pnfs_gateway::mds_api::MetadataServer;
use pnfs_gateway::pnfs::testing::workload::{run_workload, Model, WorkloadConfig};
use pnfs_gateway::pnfs::volume::{FileVolume, TraceKind, TraceVolume, VolumeIo};
use pnfs_gateway::pnfs::{PnfsClient, PnfsConfig};
use pnfs_gateway::stats::Stats;

use common::{check_server_view, create_file, CutProxy, MdsOptions, MdsProcess};

const FILE_BYTES: u64 = 8 << 20;
/// Bound on the fencing test's workload loop (the stop/continue itself takes ~10 s).
const FENCE_TEST_DEADLINE: Duration = Duration::from_secs(120);

fn mds_options() -> MdsOptions {
    MdsOptions {
        block_bytes: 65536,
        lease_seconds: 10,
        grace_seconds: 5,
        recall_timeout_seconds: 15,
    }
}

fn client_config(name: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(format!("pnfs-gw-proc-{name}-{}", std::process::id()));
    cfg.limits.call_timeout_ms = 5_000;
    cfg.stall_limit_ms = 120_000;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_survives_mds_sigkill_restarts_and_tcp_cuts() {
    let mds = Arc::new(Mutex::new(MdsProcess::start("recovery", mds_options())));
    let (addr, leaf) = {
        let m = mds.lock().expect("lock");
        (m.addr(), m.leaf())
    };
    let proxy = Arc::new(CutProxy::start(addr).await);
    let nfs = Arc::new(
        NfsClient::connect(
            &format!("127.0.0.1:{}", proxy.port),
            client_config("recovery"),
        )
        .await
        .expect("connect"),
    );
    create_file(&nfs, "disk.img", FILE_BYTES).await;
    let vols: Vec<Arc<dyn VolumeIo>> = vec![Arc::new(
        FileVolume::open(&leaf, false, true).expect("leaf"),
    )];
    let gw = PnfsClient::new(
        Arc::clone(&nfs),
        vols,
        PnfsConfig::default(),
        Arc::new(Stats::default()),
    );
    let disk = gw.open_disk("disk.img", false).await.expect("open disk");
    let (m2, p2) = (Arc::clone(&mds), Arc::clone(&proxy));
    let chaos = tokio::spawn(async move {
        for i in 0..10 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if i % 2 == 0 {
                let mut m = m2.lock().expect("lock");
                m.kill9();
                m.spawn();
            } else {
                p2.cut();
            }
        }
    });
    let mut rounds = 0u64;
    loop {
        rounds += 1;
        let mut cfg = WorkloadConfig::new(0x4ec0_0000 + rounds, 65536);
        cfg.ops = 200;
        cfg.limit_bytes = 4 << 20;
        run_workload(&disk, &cfg)
            .await
            .unwrap_or_else(|e| panic!("round {rounds}: {e}"));
        if chaos.is_finished() || rounds >= 200 {
            break;
        }
    }
    assert!(
        chaos.is_finished(),
        "workload rounds ran out before the chaos ended"
    );
    chaos.await.expect("chaos");
    // One more full round after the last restart.
    let cfg = WorkloadConfig::new(0x4ec0_ffff, 65536);
    let (_, model) = run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("final round: {e}"));
    disk.close().await.expect("close disk");
    // The server's block map (MDS READ) holds exactly the model: commits survived restarts.
    check_server_view(&nfs, "disk.img", &model, "after restarts and cuts").await;
    let snap = gw.stats().snapshot();
    eprintln!("rounds={rounds}\n  {snap}");
    assert_eq!(snap.request_errors, 0, "{snap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_past_the_fence_point_issues_no_direct_write() {
    let m = MdsProcess::start("fence", mds_options());
    let nfs = Arc::new(
        NfsClient::connect(&m.addr(), client_config("fence"))
            .await
            .expect("connect"),
    );
    create_file(&nfs, "disk.img", FILE_BYTES).await;
    let base: Arc<dyn VolumeIo> = Arc::new(FileVolume::open(m.leaf(), false, true).expect("leaf"));
    let trace = Arc::new(TraceVolume::new(base));
    // No LAYOUTCOMMIT by pending count: an op blocked on the stopped MDS would stall the
    // workload through the whole window and no direct I/O would ever meet the fence.
    let cfg = PnfsConfig {
        commit_threshold_pieces: usize::MAX,
        ..PnfsConfig::default()
    };
    let fence = cfg.fence;
    let gw = PnfsClient::new(
        Arc::clone(&nfs),
        vec![Arc::clone(&trace) as Arc<dyn VolumeIo>],
        cfg,
        Arc::new(Stats::default()),
    );
    let disk = Arc::new(gw.open_disk("disk.img", false).await.expect("open disk"));
    let m = Arc::new(Mutex::new(m));
    let (m2, nfs2) = (Arc::clone(&m), Arc::clone(&nfs));
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        m2.lock().expect("lock").signal(libc::SIGSTOP);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let lease = nfs2.lease_status();
        let fence_point = fence.fence_point(&lease).expect("renewed before");
        // Past the fence point, short of the lease (so the server keeps our state).
        tokio::time::sleep_until(fence_point + Duration::from_millis(1500)).await;
        let resumed_at = tokio::time::Instant::now();
        m2.lock().expect("lock").signal(libc::SIGCONT);
        (fence_point, resumed_at)
    });
    // The workload runs until the MDS has been stopped past the fence point and continued
    // (a round count would end early once I/O gets faster); the deadline only bounds a hang.
    let deadline = tokio::time::Instant::now() + FENCE_TEST_DEADLINE;
    let mut rounds = 0u64;
    loop {
        rounds += 1;
        let mut wcfg = WorkloadConfig::new(0xfe_0000 + rounds, 65536);
        wcfg.ops = 200;
        wcfg.limit_bytes = 4 << 20;
        wcfg.flushes = false;
        wcfg.trims = false;
        wcfg.workers = 0;
        run_workload(&*disk, &wcfg)
            .await
            .unwrap_or_else(|e| panic!("round {rounds}: {e}"));
        if stopper.is_finished() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stop/continue of the MDS did not finish within {FENCE_TEST_DEADLINE:?}"
        );
    }
    let (fence_point, resumed_at) = stopper.await.expect("stopper");
    let late: Vec<_> = trace
        .entries()
        .into_iter()
        .filter(|e| {
            e.kind == TraceKind::Write && e.issued_at >= fence_point && e.issued_at < resumed_at
        })
        .collect();
    assert!(
        late.is_empty(),
        "direct writes after the fence point: {late:?}"
    );
    let snap = gw.stats().snapshot();
    eprintln!("rounds={rounds}\n  {snap}");
    assert!(snap.fencing_events > 0, "never fenced: {snap}");
    assert_eq!(snap.request_errors, 0);
}

/// The MDS data path (no volumes: every request goes through MDS READ/WRITE) sends WRITE
/// UNSTABLE4 and COMMITs at the flush. The MDS is SIGKILLed between the writes and the flush,
/// so it loses the writes' block maps; the COMMIT after the restart returns another verifier
/// and the gateway must send every write it had not committed again before the flush
/// succeeds. The server's view after the flush holds all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mds_path_resends_uncommitted_writes_after_an_mds_restart() {
    const WRITE_BYTES: usize = 4096;
    const WRITES: u64 = 64;
    let mut mds = MdsProcess::start("unstable", mds_options());
    let nfs = Arc::new(
        NfsClient::connect(&mds.addr(), client_config("unstable"))
            .await
            .expect("connect"),
    );
    create_file(&nfs, "disk.img", FILE_BYTES).await;
    let stats = Arc::new(Stats::default());
    let gw = PnfsClient::new(
        Arc::clone(&nfs),
        Vec::new(),
        PnfsConfig::default(),
        Arc::clone(&stats),
    );
    let disk = gw.open_disk("disk.img", false).await.expect("open disk");
    // The file was created FILE_BYTES long: zeros everywhere not written.
    let file_len = usize::try_from(FILE_BYTES).expect("size");
    let mut model = Model {
        data: vec![0; file_len],
        defined: vec![true; file_len],
    };
    // Every other 4 KiB block of the first half: fresh space, so each write allocates.
    for i in 0..WRITES {
        let off = i * 2 * WRITE_BYTES as u64;
        let data = vec![u8::try_from(i % 251).expect("byte") + 1; WRITE_BYTES];
        let at = usize::try_from(off).expect("offset");
        model.data[at..at + WRITE_BYTES].copy_from_slice(&data);
        disk.write(off, bytes::Bytes::from(data), false)
            .await
            .expect("write");
    }
    assert_eq!(stats.snapshot().mds_rewrites, 0);
    mds.kill9();
    mds.spawn();
    disk.flush().await.expect("flush after the restart");
    assert_eq!(
        stats.snapshot().mds_rewrites,
        1,
        "the writes were sent again once"
    );
    disk.close().await.expect("close disk");
    check_server_view(&nfs, "disk.img", &model, "after the restart and flush").await;
    assert_eq!(gw.stats().snapshot().request_errors, 0);
}
