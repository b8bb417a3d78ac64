//! The pNFS disk against a real nfs-ganesha on 127.0.0.1 (no block layouts): the seeded
//! workload runs entirely through MDS READ/WRITE fallback and must match the model.
//!
//! Needs `ganesha.nfsd` (nfs-ganesha + nfs-ganesha-vfs) and root; missing either fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pnfs_gateway::client::{ClientConfig, NfsClient};
use pnfs_gateway::pnfs::testing::workload::{run_workload, WorkloadConfig};
use pnfs_gateway::pnfs::{PnfsClient, PnfsConfig};
use pnfs_gateway::stats::Stats;

const GANESHA: &str = "/usr/bin/ganesha.nfsd";
const FILE_BYTES: u64 = 4 << 20;

struct Ganesha {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Ganesha {
    fn start(name: &str) -> Self {
        assert!(
            Path::new(GANESHA).exists(),
            "{GANESHA} missing: apt-get install nfs-ganesha nfs-ganesha-vfs"
        );
        let dir = std::env::temp_dir().join(format!("pnfs-ganesha-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("export")).expect("export dir");
        std::fs::create_dir_all(dir.join("recovery")).expect("recovery dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let conf = format!(
            "NFS_CORE_PARAM {{ NFS_Port = {port}; Bind_addr = 127.0.0.1; Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; }}\n\
             NFSV4 {{ Graceless = true; Lease_Lifetime = 10; Minor_Versions = 1, 2; RecoveryBackend = fs; RecoveryRoot = \"{rec}\"; }}\n\
             EXPORT {{ Export_Id = 1; Path = {exp}; Pseudo = /export; Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL {{ Name = VFS; }} }}\n",
            rec = dir.join("recovery").display(),
            exp = dir.join("export").display(),
        );
        std::fs::write(dir.join("ganesha.conf"), conf).expect("conf");
        let child = Command::new(GANESHA)
            .arg("-F")
            .arg("-f")
            .arg(dir.join("ganesha.conf"))
            .arg("-L")
            .arg(dir.join("ganesha.log"))
            .arg("-p")
            .arg(dir.join("ganesha.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ganesha.nfsd");
        let g = Self { dir, port, child };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", g.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "ganesha did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        g
    }
}

impl Drop for Ganesha {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_through_mds_fallback_on_ganesha() {
    let g = Ganesha::start("wl");
    let f = std::fs::File::create(g.dir.join("export/disk.img")).expect("create file");
    f.set_len(FILE_BYTES).expect("size");
    drop(f);
    let nfs = NfsClient::connect(
        &format!("127.0.0.1:{}", g.port),
        ClientConfig::new("pnfs-ganesha-wl"),
    )
    .await
    .expect("connect");
    let client = PnfsClient::new(
        Arc::new(nfs),
        Vec::new(),
        PnfsConfig::default(),
        Arc::new(Stats::default()),
    );
    let disk = client
        .open_disk("export/disk.img", false)
        .await
        .expect("open disk");
    let mut cfg = WorkloadConfig::new(0x6a4e5a, 4096);
    cfg.ops = 300;
    let (rep, model) = run_workload(&disk, &cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    disk.close().await.expect("close");
    // The file on ganesha's export equals the model where defined.
    let on_disk = std::fs::read(g.dir.join("export/disk.img")).expect("read back");
    for (i, (&a, &m)) in on_disk.iter().zip(model.data.iter()).enumerate() {
        if model.defined[i] {
            assert_eq!(a, m, "seed={}: export file differs at byte {i}", cfg.seed);
        }
    }
    let snap = client.stats().snapshot();
    eprintln!("{rep:?}\n  {snap}");
    assert_eq!(
        snap.direct_write_bytes + snap.direct_read_bytes,
        0,
        "{snap}"
    );
    assert!(
        snap.mds_write_bytes > 0 && snap.mds_read_bytes > 0,
        "{snap}"
    );
    assert_eq!(snap.request_errors, 0);
}
