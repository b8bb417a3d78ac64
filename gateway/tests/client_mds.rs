//! The NFSv4.1 client against the project's embedded MDS (`pnfs-mds`, a real server process
//! on 127.0.0.1): block layouts, CB_LAYOUTRECALLs sent on demand through the MDS admin socket
//! and delivered to the CallbackSink, and SIGKILL + restart recovered by reclaim.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::mds_api::{
    BoxFuture, CallbackSink, DeviceNotification, LayoutGetArgs, LayoutRecall, LayoutReturnArgs,
    LayoutReturnTarget, MetadataServer, OpenFile, OpenMode, RecallTarget, StableHow, StateidArg,
};
use pnfs_proto::layout::block::BlockLayout;
use pnfs_proto::nfs4::{LayoutIoMode, LayoutType, NfsStat, Stateid};
use tokio::sync::mpsc;

use common::{CutProxy, MdsOptions, MdsProcess};

struct Sink {
    tx: mpsc::UnboundedSender<LayoutRecall>,
    restarted: AtomicU32,
    lost: AtomicU32,
}

impl CallbackSink for Sink {
    fn layout_recall(&self, recall: LayoutRecall) -> NfsStat {
        let _ = self.tx.send(recall);
        NfsStat::OK
    }
    fn recall_any(&self, _m: u32, _k: u32) -> NfsStat {
        NfsStat::OK
    }
    fn notify_deviceid(&self, _n: &[DeviceNotification]) -> NfsStat {
        NfsStat::OK
    }
    fn server_restarted(&self) -> BoxFuture<()> {
        self.restarted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }
    fn state_lost(&self) {
        self.lost.fetch_add(1, Ordering::SeqCst);
    }
}

async fn layout_get(c: &NfsClient, f: &OpenFile, len: u64) -> (Stateid, BlockLayout) {
    let lg = c
        .layout_get(
            f,
            LayoutGetArgs {
                layout_type: LayoutType::BlockVolume,
                iomode: LayoutIoMode::Read,
                offset_bytes: 0,
                length_bytes: len,
                min_length_bytes: 4096,
                stateid: StateidArg::Open,
                max_reply_bytes: 64 * 1024,
                signal_layout_avail: false,
            },
        )
        .await
        .expect("LAYOUTGET");
    let body = &lg.segments.first().expect("a layout segment").body;
    (
        lg.stateid,
        pnfs_proto::xdr::from_bytes(body).expect("block layout body"),
    )
}

async fn layout_return(c: &NfsClient, f: &OpenFile, stateid: Stateid) {
    c.layout_return(
        f,
        LayoutReturnArgs {
            reclaim: false,
            layout_type: LayoutType::BlockVolume,
            iomode: LayoutIoMode::Any,
            target: LayoutReturnTarget::File {
                offset_bytes: 0,
                length_bytes: u64::MAX,
                stateid,
                body: Bytes::new(),
            },
        },
    )
    .await
    .expect("LAYOUTRETURN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layouts_recalls_and_restart_against_the_embedded_mds() {
    let mut mds = MdsProcess::start(
        "client",
        MdsOptions {
            lease_seconds: 6,
            grace_seconds: 6,
            ..MdsOptions::default()
        },
    );
    let proxy = CutProxy::start(mds.addr()).await;
    let addr = format!("127.0.0.1:{}", proxy.port);
    let mut cfg = ClientConfig::new(format!("client-mds-test-{}", std::process::id()));
    cfg.stall_limit_ms = 60_000;
    let c = NfsClient::connect(&addr, cfg)
        .await
        .expect("connect to pnfs-mds");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = Arc::new(Sink {
        tx,
        restarted: AtomicU32::new(0),
        lost: AtomicU32::new(0),
    });
    let dynsink: Arc<dyn CallbackSink> = sink.clone();
    let weak: Weak<dyn CallbackSink> = Arc::downgrade(&dynsink);
    c.set_callback_sink(weak);

    let f = c
        .open(
            "m.bin",
            OpenMode {
                read_only: false,
                create_size_bytes: Some(0),
            },
        )
        .await
        .expect("OPEN create");
    assert!(
        f.layout_types.contains(&LayoutType::BlockVolume),
        "{:?}",
        f.layout_types
    );
    let len = 256 * 1024;
    let data: Vec<u8> = (0..len).map(|i| u8::try_from(i % 253).unwrap()).collect();
    let mut off = 0;
    while off < len {
        let w = c
            .write(
                &f,
                off as u64,
                Bytes::copy_from_slice(&data[off..]),
                StableHow::FileSync,
            )
            .await
            .expect("WRITE");
        off += w.count_bytes as usize;
    }
    let (_, layout) = layout_get(&c, &f, len as u64).await;
    let dev = c
        .get_device_info(LayoutType::BlockVolume, layout.extents[0].device_id, 0)
        .await
        .expect("GETDEVICEINFO");
    assert!(!dev.addr_body.is_empty());

    // On-demand recalls: each is delivered to the sink and answered with LAYOUTRETURN.
    let recalls = 10;
    for i in 0..recalls {
        let (stateid, _) = layout_get(&c, &f, len as u64).await;
        let answer = mds.admin("recall /m.bin");
        assert_eq!(answer, "ok 1", "recall {i}");
        let r = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("recall delivered")
            .unwrap();
        assert!(
            matches!(&r.target, RecallTarget::File { fh, .. } if *fh == f.fh),
            "{r:?}"
        );
        layout_return(&c, &f, stateid).await;
    }
    assert_eq!(c.stats().callbacks, recalls);

    // Five connection cuts while a writer runs: reconnect + BIND_CONN_TO_SESSION, no error.
    let chunk = 64 * 1024;
    let chunks = 16u64;
    let pattern = move |i: u64| -> Vec<u8> {
        (0..chunk)
            .map(|j| u8::try_from((i * 7 + j as u64) % 249).unwrap())
            .collect()
    };
    let writer = {
        let (c, f) = (c.clone(), f.clone());
        tokio::spawn(async move {
            for i in 0..chunks {
                let mut done = 0;
                let buf = Bytes::from(pattern(i));
                while done < chunk {
                    let off = len as u64 + i * chunk as u64 + done as u64;
                    let w = c
                        .write(&f, off, buf.slice(done..), StableHow::FileSync)
                        .await
                        .expect("WRITE across cuts");
                    done += w.count_bytes as usize;
                }
            }
        })
    };
    let mut cuts = 0;
    while cuts < 5 {
        if proxy.cut() > 0 {
            cuts += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("writer finished")
        .expect("writer ok");
    let total = len as u64 + chunks * chunk as u64;
    for i in 0..chunks {
        let r = c
            .read(
                &f,
                len as u64 + i * chunk as u64,
                u32::try_from(chunk).unwrap(),
            )
            .await
            .unwrap();
        assert!(r.data[..] == pattern(i)[..], "chunk {i} after cuts");
    }
    // Counted after these reads: a cut that came after the writer's last request is only
    // noticed (reconnect + BIND_CONN_TO_SESSION) by the next request.
    let s = c.stats();
    assert!(s.binds >= 5, "{s:?}");
    // One client ID, plus one for each time the MDS let the lease expire (a loaded machine
    // can stall the reconnects past the 6 s lease): never a new ID without a reason.
    let expired = mds_stat(&mds, "expired_clients");
    assert_eq!(s.client_ids, 1 + expired, "{s:?} (MDS expired {expired})");

    // SIGKILL and restart, three times: new client ID, the open reclaimed in grace
    // (CLAIM_PREVIOUS), server_restarted() delivered, data intact, writes continue.
    let restarts = 3;
    for k in 0..restarts {
        mds.kill9();
        mds.spawn();
        let r = c
            .read(&f, 0, 65536)
            .await
            .expect("READ across the MDS restart");
        assert!(r.data[..] == data[..65536], "restart {k}");
        let off = total + k * 13;
        let w = c
            .write(
                &f,
                off,
                Bytes::from_static(b"after restart"),
                StableHow::FileSync,
            )
            .await
            .unwrap();
        assert_eq!(w.count_bytes, 13);
    }
    let s = c.stats();
    println!("client stats after cuts and restarts: {s:?}");
    // The restarted MDS counts its own expiries from zero.
    let expired_now = mds_stat(&mds, "expired_clients");
    assert_eq!(
        s.client_ids,
        1 + expired + restarts + expired_now,
        "{s:?} (MDS expired {expired} before the restarts, {expired_now} since)"
    );
    assert_eq!(
        (s.reclaimed_opens, s.reopened_opens),
        (restarts, 0),
        "CLAIM_PREVIOUS in grace: {s:?}"
    );
    assert_eq!(u64::from(sink.restarted.load(Ordering::SeqCst)), restarts);
    assert_eq!(sink.lost.load(Ordering::SeqCst), 0);
    assert_eq!(c.get_size(&f).await.unwrap(), total + restarts * 13);
    c.close(&f).await.expect("CLOSE");
    c.shutdown().await.expect("shutdown");
}

/// One `key=value` counter of the MDS's admin `stats` line.
fn mds_stat(mds: &MdsProcess, key: &str) -> u64 {
    let line = mds.admin("stats");
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in MDS stats: {line}"))
}
