//! The NFSv4.1 client against Linux nfsd with a pNFS block-layout export, in the QEMU guest
//! (the host kernel has no nfsd). The test boots the guest, starts nfsd and the kernel client,
//! and runs this same test binary inside the guest (`PNFS_CLIENT_IN_GUEST=1`), where it:
//! opens a file, writes through the MDS, gets a block layout (LAYOUTGET) and its device
//! (GETDEVICEINFO), then lets the kernel client write the file so that nfsd recalls our layout
//! (a real CB_LAYOUTRECALL on our backchannel, delivered to the CallbackSink), returns it, and
//! finally cuts the connection and checks BIND_CONN_TO_SESSION against nfsd.

mod common;

use std::time::Duration;

use bytes::Bytes;
use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::mds_api::{MetadataServer, RecallTarget, StableHow};
use pnfs_proto::nfs4::LayoutType;

use common::client_suite::{layout_get, layout_return, write_all, RecordingSink, OPEN_CREATE};

const IN_GUEST: &str = "PNFS_CLIENT_IN_GUEST";
/// Guest deadline (`guarded`) of the guest body: its own waits are bounded (60 s for the
/// recall, 120 s for the kernel client's write, nfsd's 10 s grace after the restart); it
/// takes well under a minute under TCG.
const BODY_DEADLINE_S: u64 = 400;
const TEST_NAME: &str = "client_against_linux_nfsd_in_the_guest";
/// Bytes written through the MDS before asking for a layout.
const FILE_BYTES: usize = 1024 * 1024;
/// How long nfsd may take to recall our layout once the kernel client writes.
const RECALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the kernel client's write may take.
const KERNEL_WRITE_TIMEOUT: Duration = Duration::from_secs(120);

async fn guest_body() {
    let mnt = std::env::var("PNFS_CLIENT_MNT").expect("PNFS_CLIENT_MNT from the guest script");
    let mut cfg = ClientConfig::new("pnfs-gateway-guest-test");
    cfg.limits.call_timeout_ms = 30_000;
    let c = NfsClient::connect("127.0.0.1:2049", cfg)
        .await
        .expect("connect to nfsd");
    println!(
        "RESULT session slots={} mach_cred={} lease={:?}",
        c.fore_slots(),
        c.uses_mach_cred(),
        c.lease()
    );
    let (sink, mut rx) = RecordingSink::attach(&c);

    let f = c
        .open("gw.bin", OPEN_CREATE)
        .await
        .expect("OPEN create on nfsd");
    assert!(
        f.layout_types.contains(&LayoutType::BlockVolume),
        "nfsd pnfs export offers block layouts: {:?}",
        f.layout_types
    );
    println!(
        "RESULT open blksize={} types={:?}",
        f.layout_blksize_bytes, f.layout_types
    );
    let data: Vec<u8> = (0..FILE_BYTES)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    write_all(&c, &f, 0, &data, StableHow::FileSync).await;
    let (layout_stateid, layout) = layout_get(&c, &f, FILE_BYTES as u64).await;
    let ext = layout.extents.first().expect("at least one extent");
    println!("RESULT layoutget extents={}", layout.extents.len());
    let dev = c
        .get_device_info(LayoutType::BlockVolume, ext.device_id, 0)
        .await
        .expect("GETDEVICEINFO from nfsd");
    assert!(!dev.addr_body.is_empty());
    println!("RESULT getdeviceinfo bytes={}", dev.addr_body.len());

    // The kernel client writes the same file: nfsd recalls our layout over the backchannel.
    let path = format!("{mnt}/gw.bin");
    let writer = tokio::task::spawn_blocking(move || {
        std::process::Command::new("dd")
            .args([
                "if=/dev/zero",
                &format!("of={path}"),
                "bs=4096",
                "count=4",
                "conv=notrunc,fsync",
            ])
            .status()
    });
    let recall = tokio::time::timeout(RECALL_TIMEOUT, rx.recv())
        .await
        .expect("no CB_LAYOUTRECALL within 60 s")
        .expect("sink channel open");
    match &recall.target {
        RecallTarget::File { fh, .. } => assert_eq!(fh, &f.fh, "recall names our file"),
        other => println!("RESULT recall target {other:?}"),
    }
    layout_return(&c, &f, layout_stateid).await;
    println!("RESULT recall={:?} returned", recall.iomode);
    let st = tokio::time::timeout(KERNEL_WRITE_TIMEOUT, writer)
        .await
        .expect("kernel client write finished")
        .unwrap()
        .expect("dd ran");
    assert!(st.success(), "kernel client write failed: {st}");

    // Connection cut: the next request reconnects and binds the new connection to the session.
    let session = c.session_id();
    c.drop_connection();
    let size = c.get_size(&f).await.expect("GETATTR after reconnect");
    assert_eq!(size, FILE_BYTES as u64);
    let s = c.stats();
    assert_eq!(c.session_id(), session);
    assert!(s.binds >= 1, "{s:?}");
    assert!(s.callbacks >= 1, "{s:?}");
    println!("RESULT stats after cut {s:?}");

    // nfsd restart: its state is gone; the client gets a new client ID, reclaims the open
    // (CLAIM_PREVIOUS in nfsd's grace period) and the same OpenFile keeps working.
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "rpc.nfsd 0 && sleep 1 && rpc.nfsd -N 3 -V 4.1 -V 4.2 4",
        ])
        .output()
        .expect("restart nfsd");
    assert!(
        out.status.success(),
        "nfsd restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tail = Bytes::from(vec![0xabu8; 8192]);
    let mut done = 0usize;
    while done < tail.len() {
        let w = c
            .write(
                &f,
                (FILE_BYTES - tail.len() + done) as u64,
                tail.slice(done..),
                StableHow::FileSync,
            )
            .await
            .expect("WRITE across the nfsd restart");
        done += w.count_bytes as usize;
    }
    let r = c
        .read(&f, (FILE_BYTES - tail.len()) as u64, 8192)
        .await
        .expect("READ after restart");
    assert!(r.data == tail, "data written across the restart reads back");
    let r = c.read(&f, 65536, 4096).await.expect("READ after restart");
    assert!(
        r.data[..] == data[65536..65536 + 4096],
        "data from before the restart is intact"
    );
    let s = c.stats();
    let (restarted, lost) = sink.counts();
    println!("RESULT after nfsd restart {s:?} server_restarted={restarted} state_lost={lost}");
    assert_eq!(s.client_ids, 2, "{s:?}");
    assert_eq!(s.reclaimed_opens + s.reopened_opens, 1, "{s:?}");
    assert_eq!(restarted + lost, 1);
    c.close(&f).await.expect("CLOSE");
    c.shutdown()
        .await
        .expect("DESTROY_SESSION + DESTROY_CLIENTID");
    println!("RESULT guest body passed");
}

#[test]
fn client_against_linux_nfsd_in_the_guest() {
    if std::env::var_os(IN_GUEST).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(guest_body());
        return;
    }
    let Some(runner) = pnfs_testbed::require(pnfs_testbed::GuestRunner::new()) else {
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        r#"
        step "nfsd pnfs export"
        mkdir -p /var/lib/nfs/v4recovery
        start_nfsd_pnfs 512
        step "kernel client"
        mount_kernel_client
        step "gateway client in the guest"
        guarded {BODY_DEADLINE_S} "the gateway client's guest body" env {IN_GUEST}=1 PNFS_CLIENT_MNT=$PNFS_CLIENT_MNT \
          {exe} --exact {TEST_NAME} --nocapture --test-threads 1 2>&1 | tee $OUT/body.log
        grep -q 'RESULT guest body passed' $OUT/body.log
        nfs_op_count LAYOUTGET > $OUT/kernel_layoutgets || true
        "#,
        exe = exe.display(),
    );
    let outcome = runner
        .run(
            &pnfs_testbed::GuestScript::new(script)
                .name("client-nfsd")
                .timeout(Duration::from_secs(600)),
        )
        .expect("guest run");
    let log = std::fs::read_to_string(outcome.out_file("body.log")).unwrap_or_default();
    for line in log.lines().filter(|l| l.starts_with("RESULT")) {
        println!("{line}");
    }
    assert!(
        log.contains("RESULT guest body passed"),
        "guest body did not pass:\n{log}"
    );
}
