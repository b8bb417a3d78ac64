//! The NFSv4.1 client against a real nfs-ganesha on 127.0.0.1 (MDS path: ganesha offers no
//! block layouts). Each test starts its own ganesha (foreground, own port, own directories) and
//! kills it on drop.
//!
//! Needs `ganesha.nfsd` (nfs-ganesha + nfs-ganesha-vfs) and root (ganesha's VFS FSAL uses
//! open_by_handle_at). Missing either is a test failure, never a silent skip.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::mds_api::{MetadataServer, OpenMode, StableHow};

use common::CutProxy;

const GANESHA: &str = "/usr/bin/ganesha.nfsd";
/// How long ganesha may take to accept connections after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One ganesha instance with its own config, export and recovery directories.
struct Ganesha {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Ganesha {
    fn start(name: &str, lease_s: u32, graceless: bool) -> Self {
        assert!(
            Path::new(GANESHA).exists(),
            "{GANESHA} missing: apt-get install nfs-ganesha nfs-ganesha-vfs"
        );
        let dir =
            std::env::temp_dir().join(format!("pnfs-client-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("export")).unwrap();
        std::fs::create_dir_all(dir.join("recovery")).unwrap();
        let port = free_port();
        let conf = format!(
            "NFS_CORE_PARAM {{ NFS_Port = {port}; Bind_addr = 127.0.0.1; Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; }}\n\
             NFSV4 {{ Graceless = {graceless}; Lease_Lifetime = {lease_s}; Grace_Period = {grace}; Minor_Versions = 1, 2; RecoveryBackend = fs; RecoveryRoot = \"{rec}\"; }}\n\
             EXPORT {{ Export_Id = 1; Path = {exp}; Pseudo = /export; Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL {{ Name = VFS; }} }}\n",
            grace = lease_s.max(5) + 2,
            rec = dir.join("recovery").display(),
            exp = dir.join("export").display(),
        );
        std::fs::write(dir.join("ganesha.conf"), conf).unwrap();
        let mut g = Self {
            dir,
            port,
            child: None,
        };
        g.spawn();
        g
    }

    fn spawn(&mut self) {
        let child = Command::new(GANESHA)
            .arg("-F")
            .arg("-f")
            .arg(self.dir.join("ganesha.conf"))
            .arg("-L")
            .arg(self.dir.join("ganesha.log"))
            .arg("-p")
            .arg(self.dir.join("ganesha.pid"))
            .arg("-N")
            .arg("NIV_EVENT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ganesha.nfsd");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("ganesha exited with {st}; log:\n{}", self.log_tail());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ganesha did not listen; log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (no clean shutdown: the server loses its in-memory state) and wait.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn export(&self) -> PathBuf {
        self.dir.join("export")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("ganesha.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn config(name: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new(format!("pnfs-gateway-test-{name}-{}", std::process::id()));
    cfg.limits.call_timeout_ms = 10_000;
    cfg.stall_limit_ms = 60_000;
    cfg
}

/// Deterministic test data (no RNG needed: content is a function of the offset).
fn pattern(offset: u64, len: usize, salt: u8) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = (offset + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56;
            (x as u8) ^ salt
        })
        .collect()
}

async fn write_all(c: &NfsClient, f: &pnfs_gateway::mds_api::OpenFile, mut off: u64, data: &[u8]) {
    let mut rest = Bytes::copy_from_slice(data);
    while !rest.is_empty() {
        let w = c
            .write(f, off, rest.clone(), StableHow::Unstable)
            .await
            .expect("WRITE");
        assert!(w.count_bytes > 0, "zero-length WRITE reply");
        off += u64::from(w.count_bytes);
        rest = rest.slice(w.count_bytes as usize..);
    }
}

async fn read_all(
    c: &NfsClient,
    f: &pnfs_gateway::mds_api::OpenFile,
    mut off: u64,
    len: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let want = u32::try_from(len - out.len()).unwrap();
        let r = c.read(f, off, want).await.expect("READ");
        if r.data.is_empty() {
            assert!(r.eof, "empty READ without eof");
            break;
        }
        off += r.data.len() as u64;
        out.extend_from_slice(&r.data);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_open_write_read_commit_against_ganesha() {
    let g = Ganesha::start("rw", 10, true);
    let c = NfsClient::connect(&g.addr(), config("rw"))
        .await
        .expect("connect + session");
    assert!(c.session_id().is_some());
    println!(
        "state protection: SP4_MACH_CRED granted = {}",
        c.uses_mach_cred()
    );
    assert!(c.fore_slots() >= 1);
    assert_eq!(
        c.lease(),
        Duration::from_secs(10),
        "lease_time from the root"
    );
    let f = c
        .open(
            "export/data.bin",
            OpenMode {
                read_only: false,
                create_size_bytes: Some(0),
            },
        )
        .await
        .expect("OPEN create");
    assert_eq!(f.size_bytes, 0);
    assert!(
        f.layout_types.is_empty(),
        "ganesha VFS offers no layouts: {:?}",
        f.layout_types
    );
    // 3 MiB + a bit, so that WRITE is split by the session's max request size.
    let len = 3 * 1024 * 1024 + 4097;
    let data = pattern(0, len, 0x5a);
    write_all(&c, &f, 0, &data).await;
    let v1 = c.commit(&f, 0, 0).await.expect("COMMIT");
    assert_eq!(c.get_size(&f).await.unwrap(), len as u64);
    let back = read_all(&c, &f, 0, len).await;
    assert!(back == data, "read back differs from what was written");
    // Past EOF: short read with eof.
    let r = c.read(&f, len as u64 - 10, 100).await.unwrap();
    assert_eq!((r.data.len(), r.eof), (10, true));
    // The bytes are in the exported file on disk.
    let on_disk = std::fs::read(g.export().join("data.bin")).unwrap();
    assert!(on_disk == data, "file on disk differs");
    // SETATTR size truncates; a second open of an existing file does not create.
    c.set_size(&f, 4096).await.expect("SETATTR size");
    assert_eq!(
        std::fs::metadata(g.export().join("data.bin"))
            .unwrap()
            .len(),
        4096
    );
    let f2 = c
        .open(
            "export/data.bin",
            OpenMode {
                read_only: true,
                create_size_bytes: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(f2.size_bytes, 4096);
    let v2 = c.commit(&f, 0, 0).await.unwrap();
    assert_eq!(v1, v2, "write verifier stable while the server runs");
    c.close(&f2).await.expect("CLOSE");
    c.close(&f).await.expect("CLOSE");
    let err = c
        .open(
            "export/missing",
            OpenMode {
                read_only: true,
                create_size_bytes: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.nfs_status(),
        Some(pnfs_proto::nfs4::NfsStat::NOENT),
        "{err}"
    );
    let s = c.stats();
    assert_eq!((s.client_ids, s.sessions), (1, 1), "{s:?}");
    c.shutdown()
        .await
        .expect("DESTROY_SESSION + DESTROY_CLIENTID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_lease_renewal_keeps_the_session_across_three_leases() {
    let lease_s = 4;
    let g = Ganesha::start("lease", lease_s, true);
    let c = NfsClient::connect(&g.addr(), config("lease"))
        .await
        .unwrap();
    assert_eq!(c.lease(), Duration::from_secs(u64::from(lease_s)));
    let f = c
        .open(
            "export/f",
            OpenMode {
                read_only: false,
                create_size_bytes: Some(0),
            },
        )
        .await
        .unwrap();
    write_all(&c, &f, 0, b"before idle").await;
    let session = c.session_id();
    let mut lease = c.lease_watch();
    let start = tokio::time::Instant::now();
    // Idle for three leases; wait on the lease watch (no fixed sleeps): it moves on every renewal.
    let mut renewals_seen = 0;
    while start.elapsed() < Duration::from_secs(3 * u64::from(lease_s)) {
        tokio::time::timeout(Duration::from_secs(u64::from(lease_s)), lease.changed())
            .await
            .expect("no lease renewal within one lease time")
            .unwrap();
        renewals_seen += 1;
    }
    assert!(
        renewals_seen >= 6,
        "renewals at ~lease/3: saw {renewals_seen}"
    );
    // The open state survived: the same stateid still works and nothing was re-established.
    write_all(&c, &f, 11, b" after idle").await;
    assert_eq!(read_all(&c, &f, 0, 22).await, b"before idle after idle");
    let s = c.stats();
    assert_eq!(c.session_id(), session);
    assert_eq!(
        (s.client_ids, s.sessions, s.reopened_opens),
        (1, 1, 0),
        "{s:?}"
    );
    assert!(s.renewals >= 6, "{s:?}");
    c.close(&f).await.unwrap();
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cuts_reconnect_and_bind_while_the_workload_continues() {
    let g = Ganesha::start("cut", 10, true);
    let proxy = CutProxy::start(g.addr()).await;
    let c = NfsClient::connect(&proxy.addr(), config("cut"))
        .await
        .unwrap();
    let session = c.session_id();
    let f = c
        .open(
            "export/cut.bin",
            OpenMode {
                read_only: false,
                create_size_bytes: Some(0),
            },
        )
        .await
        .unwrap();
    let chunk = 256 * 1024;
    let chunks = 24u64;
    // Writers run concurrently (several slots in use) while the connection is cut 5 times.
    let writer = {
        let (c, f) = (c.clone(), f.clone());
        tokio::spawn(async move {
            for i in 0..chunks {
                let off = i * chunk as u64;
                write_all(&c, &f, off, &pattern(off, chunk, 1)).await;
            }
        })
    };
    let mut cuts = 0;
    for _ in 0..5 {
        // Wait until the client is connected again AND has bound that connection to the
        // session (a live proxied TCP connection alone is not enough: cutting it while
        // BIND_CONN_TO_SESSION is in flight makes the client retry on one more connection, so
        // two cuts would cost only one bind and the bind count below would not match).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if c.stats().binds >= cuts && proxy.cut() > 0 {
                cuts += 1;
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "client never reconnected"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    writer.await.expect("writer saw an error");
    let total = usize::try_from(chunks).unwrap() * chunk;
    let back = read_all(&c, &f, 0, total).await;
    let expect: Vec<u8> = (0..chunks)
        .flat_map(|i| pattern(i * chunk as u64, chunk, 1))
        .collect();
    assert!(back == expect, "contents differ after connection cuts");
    let s = c.stats();
    assert_eq!(cuts, 5);
    assert!(
        s.binds >= 5,
        "each new connection is bound to the session: {s:?}"
    );
    assert!(s.connects >= 6, "{s:?}");
    assert_eq!(c.session_id(), session, "the session survived the cuts");
    assert_eq!(s.client_ids, 1, "{s:?}");
    c.close(&f).await.unwrap();
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ganesha_restart_gives_a_new_client_id_and_the_open_is_recovered() {
    let mut g = Ganesha::start("restart", 5, true);
    let c = NfsClient::connect(&g.addr(), config("restart"))
        .await
        .unwrap();
    let f = c
        .open(
            "export/r.bin",
            OpenMode {
                read_only: false,
                create_size_bytes: Some(0),
            },
        )
        .await
        .unwrap();
    write_all(&c, &f, 0, &pattern(0, 65536, 2)).await;
    c.commit(&f, 0, 0).await.unwrap();
    let old_client = c.client_id();
    g.kill();
    g.spawn();
    // The same open keeps working: reconnect, BADSESSION/STALE_CLIENTID, new client ID and
    // session, re-open (ganesha here is graceless: CLAIM_PREVIOUS gets NO_GRACE, then CLAIM_FH).
    write_all(&c, &f, 65536, &pattern(65536, 65536, 2)).await;
    c.commit(&f, 0, 0).await.unwrap();
    assert_eq!(read_all(&c, &f, 0, 131072).await, pattern(0, 131072, 2));
    let s = c.stats();
    let _ = old_client; // ganesha derives client IDs from its boot second: may repeat
    assert_eq!(s.client_ids, 2, "{s:?}");
    assert_eq!(s.sessions, 2, "{s:?}");
    assert_eq!(s.reclaimed_opens + s.reopened_opens, 1, "{s:?}");
    c.close(&f).await.unwrap();
    c.shutdown().await.unwrap();
}

/// Records what the client tells the pNFS layer.
#[derive(Default)]
struct RecordingSink {
    restarted: std::sync::atomic::AtomicU32,
    lost: std::sync::atomic::AtomicU32,
}

impl pnfs_gateway::mds_api::CallbackSink for RecordingSink {
    fn layout_recall(&self, _r: pnfs_gateway::mds_api::LayoutRecall) -> pnfs_proto::nfs4::NfsStat {
        pnfs_proto::nfs4::NfsStat::NOMATCHING_LAYOUT
    }
    fn recall_any(&self, _m: u32, _k: u32) -> pnfs_proto::nfs4::NfsStat {
        pnfs_proto::nfs4::NfsStat::OK
    }
    fn notify_deviceid(
        &self,
        _n: &[pnfs_gateway::mds_api::DeviceNotification],
    ) -> pnfs_proto::nfs4::NfsStat {
        pnfs_proto::nfs4::NfsStat::OK
    }
    fn server_restarted(&self) -> pnfs_gateway::mds_api::BoxFuture<()> {
        self.restarted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async {})
    }
    fn state_lost(&self) {
        self.lost.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ganesha_restart_with_grace_reclaims_the_open_with_claim_previous() {
    let mut g = Ganesha::start("grace", 5, false);
    let c = NfsClient::connect(&g.addr(), config("grace"))
        .await
        .unwrap();
    let sink: Arc<RecordingSink> = Arc::default();
    let weak: std::sync::Weak<dyn pnfs_gateway::mds_api::CallbackSink> = {
        let dynsink: Arc<dyn pnfs_gateway::mds_api::CallbackSink> = sink.clone();
        Arc::downgrade(&dynsink)
    };
    c.set_callback_sink(weak);
    // The server starts in grace: the first non-reclaim OPEN stalls (GRACE) until it ends.
    let f = c
        .open(
            "export/g.bin",
            OpenMode {
                read_only: false,
                create_size_bytes: Some(0),
            },
        )
        .await
        .unwrap();
    write_all(&c, &f, 0, &pattern(0, 8192, 3)).await;
    c.commit(&f, 0, 0).await.unwrap();
    g.kill();
    g.spawn();
    write_all(&c, &f, 8192, &pattern(8192, 8192, 3)).await;
    c.commit(&f, 0, 0).await.unwrap();
    assert_eq!(read_all(&c, &f, 0, 16384).await, pattern(0, 16384, 3));
    let s = c.stats();
    assert_eq!(s.client_ids, 2, "{s:?}");
    assert_eq!(
        (s.reclaimed_opens, s.reopened_opens),
        (1, 0),
        "CLAIM_PREVIOUS accepted in grace: {s:?}"
    );
    assert_eq!(sink.restarted.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(sink.lost.load(std::sync::atomic::Ordering::SeqCst), 0);
    c.close(&f).await.unwrap();
    c.shutdown().await.unwrap();
}
