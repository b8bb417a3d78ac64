//! Shared by the gateway's host tests: the embedded MDS as a real process, a TCP proxy that
//! cuts connections, and the check of a file's data as the server sees it. Each test binary uses part of it.
#![allow(dead_code)]

pub mod client_suite;
pub mod ganesha;
pub mod nfsd_guest;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pnfs_gateway::client::NfsClient;
use pnfs_gateway::mds_api::{MetadataServer, OpenMode};
use pnfs_gateway::pnfs::testing::workload::Model;
use pnfs_gateway::pnfs::testing::{make_volume_file, scratch_dir};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a started MDS may take to listen.
const MDS_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an admin-socket command may take to answer.
const ADMIN_REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// Size of the one volume file each MDS process serves.
const MDS_VOLUME_BYTES: u64 = 64 << 20;

/// The `pnfs-mds` binary of this target directory (`PNFS_MDS_BIN` overrides), built on demand.
pub fn mds_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PNFS_MDS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/<test> → target/<profile>/pnfs-mds
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let bin = profile_dir.join("pnfs-mds");
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "pnfs-mds", "--bin", "pnfs-mds"])
        .env(
            "CARGO_TARGET_DIR",
            profile_dir.parent().expect("target dir"),
        )
        .status()
        .expect("run cargo build -p pnfs-mds");
    assert!(status.success(), "building pnfs-mds failed");
    assert!(bin.exists(), "{} missing after build", bin.display());
    bin
}

/// Command-line settings of an [`MdsProcess`].
#[derive(Debug, Clone, Copy)]
pub struct MdsOptions {
    /// `--block-size`.
    pub block_bytes: u64,
    /// `--lease-seconds`.
    pub lease_seconds: u32,
    /// `--grace-seconds`.
    pub grace_seconds: u32,
    /// `--recall-timeout-seconds`.
    pub recall_timeout_seconds: u32,
}

impl Default for MdsOptions {
    fn default() -> Self {
        Self {
            block_bytes: 4096,
            lease_seconds: 10,
            grace_seconds: 5,
            recall_timeout_seconds: 20,
        }
    }
}

/// The embedded MDS as a real `pnfs-mds` process on 127.0.0.1, one volume file, an admin
/// socket, its log in its scratch directory. SIGKILL + [`MdsProcess::spawn`] restarts it on
/// the same state and port.
pub struct MdsProcess {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    opts: MdsOptions,
    child: Option<Child>,
}

impl MdsProcess {
    /// Starts one and waits until it listens.
    pub fn start(tag: &str, opts: MdsOptions) -> Self {
        let dir = scratch_dir(&format!("mdsproc-{tag}"));
        make_volume_file(&dir, "leaf0", MDS_VOLUME_BYTES).expect("volume");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let mut m = Self {
            bin: mds_binary(),
            dir,
            port,
            opts,
            child: None,
        };
        m.spawn();
        m
    }

    /// Starts the process (again) and waits until it listens.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "pnfs-mds is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log");
        let o = self.opts;
        let child = Command::new(&self.bin)
            .arg("--listen")
            .arg(self.addr())
            .arg("--state")
            .arg(self.dir.join("state"))
            .arg("--volume")
            .arg(self.leaf())
            .arg("--admin-socket")
            .arg(self.dir.join("admin.sock"))
            .args(["--block-size", &o.block_bytes.to_string()])
            .args(["--lease-seconds", &o.lease_seconds.to_string()])
            .args(["--grace-seconds", &o.grace_seconds.to_string()])
            .args([
                "--recall-timeout-seconds",
                &o.recall_timeout_seconds.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pnfs-mds");
        self.child = Some(child);
        let log_path = self.log_path();
        wait_listening(
            &mut self.child,
            self.port,
            MDS_START_TIMEOUT,
            "pnfs-mds",
            || std::fs::read_to_string(&log_path).unwrap_or_default(),
        );
    }

    /// SIGKILL (the server loses everything not in its store) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `sig` (SIGSTOP, SIGCONT, ...) to the running process.
    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().map(Child::id).expect("running");
        let pid = i32::try_from(pid).expect("pid");
        // SAFETY: kill(2) on a child process id we own; no memory is involved.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    /// One admin-socket command (`recall /path`, `stats`, ...) and its one-line answer.
    pub fn admin(&self, cmd: &str) -> String {
        let mut s = UnixStream::connect(self.dir.join("admin.sock")).expect("admin socket");
        s.set_read_timeout(Some(ADMIN_REPLY_TIMEOUT))
            .expect("timeout");
        writeln!(s, "{cmd}").expect("admin write");
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).expect("admin read");
        line.trim().to_owned()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The volume file (for the gateway's volume list).
    pub fn leaf(&self) -> PathBuf {
        self.dir.join("leaf0")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("mds.log")
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// A failing test gets the server's log; a stopped process is continued before the kill.
impl Drop for MdsProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGCONT);
        }
        self.kill9();
        if std::thread::panicking() {
            eprintln!("pnfs-mds log:\n{}", self.log());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A TCP proxy whose connections can all be cut at once (a real close on both sides).
pub struct CutProxy {
    /// The port clients connect to.
    pub port: u16,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CutProxy {
    /// Proxies 127.0.0.1:port → `upstream`.
    pub async fn start(upstream: String) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let c2 = Arc::clone(&conns);
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                let up = upstream.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut upc) = TcpStream::connect(&up).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut upc).await;
                    }
                });
                c2.lock().expect("lock").push(h);
            }
        });
        Self {
            port,
            conns,
            accept,
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every live connection; returns how many there were.
    pub fn cut(&self) -> usize {
        let v: Vec<_> = self.conns.lock().expect("lock").drain(..).collect();
        let n = v.iter().filter(|h| !h.is_finished()).count();
        v.iter().for_each(JoinHandle::abort);
        n
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Opening an existing file for reading only.
pub const READ_ONLY: OpenMode = OpenMode {
    read_only: true,
    create_size_bytes: None,
};

/// Creates `path` with `size_bytes` (OPEN create, CLOSE) and checks the size OPEN reports.
pub async fn create_file(nfs: &NfsClient, path: &str, size_bytes: u64) {
    let f = nfs
        .open(
            path,
            OpenMode {
                read_only: false,
                create_size_bytes: Some(size_bytes),
            },
        )
        .await
        .expect("create file");
    assert_eq!(f.size_bytes, size_bytes, "{path}: size after OPEN create");
    nfs.close(&f).await.expect("close");
}

/// Waits until something listens on 127.0.0.1:`port`, failing with `log()` if `child` exits
/// (then `child` is `None`) or `timeout` passes first.
pub fn wait_listening(
    child: &mut Option<Child>,
    port: u16,
    timeout: Duration,
    what: &str,
    log: impl Fn() -> String,
) {
    const POLL: Duration = Duration::from_millis(20);
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            *child = None;
            panic!("{what} exited with {st}:\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within {timeout:?}:\n{}",
            log()
        );
        std::thread::sleep(POLL);
    }
}

/// Reads `path` through MDS READ (the server's own block map, not our layouts) and checks it
/// against the workload's model wherever the model is defined: LAYOUTCOMMIT really happened.
pub async fn check_server_view(nfs: &NfsClient, path: &str, model: &Model, what: &str) {
    const READ_CHUNK_BYTES: u32 = 1 << 20;
    let f = nfs.open(path, READ_ONLY).await.expect("open for check");
    let file_bytes = model.data.len() as u64;
    let mut at = 0u64;
    while at < file_bytes {
        let r = nfs.read(&f, at, READ_CHUNK_BYTES).await.expect("MDS READ");
        assert!(!r.data.is_empty(), "{what}: empty READ at {at}");
        for (i, &b) in r.data.iter().enumerate() {
            let o = usize::try_from(at).expect("offset") + i;
            if model.defined[o] {
                assert_eq!(b, model.data[o], "{what}: server data differs at byte {o}");
            }
        }
        at += r.data.len() as u64;
    }
    nfs.close(&f).await.expect("close check");
}

/// NFSv4 operation numbers: indices into [`proc4ops`].
pub const OP_READ: usize = 25;
/// WRITE.
pub const OP_WRITE: usize = 38;
/// GETDEVICEINFO.
pub const OP_GETDEVICEINFO: usize = 47;
/// LAYOUTCOMMIT.
pub const OP_LAYOUTCOMMIT: usize = 49;
/// LAYOUTGET.
pub const OP_LAYOUTGET: usize = 50;

/// The per-operation counts of the `proc4ops` line of /proc/net/rpc/nfsd (empty if absent).
pub fn proc4ops(text: &str) -> Vec<u64> {
    text.lines()
        .find(|l| l.starts_with("proc4ops"))
        .map(|l| {
            l.split_whitespace()
                .skip(2)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// An environment variable the guest script sets for the guest side of a test.
pub fn guest_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: this test runs in the guest"))
}

/// nfsd's per-operation counts as the guest saved them (`cat /proc/net/rpc/nfsd > $OUT/file`),
/// printed; fails if the proc4ops line is missing.
pub fn nfsd_ops(outcome: &pnfs_testbed::GuestOutcome, file: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(outcome.out_file(file)).expect("nfsd stats");
    let ops = proc4ops(&text);
    assert!(
        ops.len() > OP_LAYOUTGET,
        "no proc4ops in /proc/net/rpc/nfsd: {ops:?}"
    );
    eprintln!(
        "nfsd: READ={} WRITE={} GETDEVICEINFO={} LAYOUTGET={} LAYOUTCOMMIT={}",
        ops[OP_READ], ops[OP_WRITE], ops[OP_GETDEVICEINFO], ops[OP_LAYOUTGET], ops[OP_LAYOUTCOMMIT]
    );
    ops
}

/// The kernel client's copy of the file (saved by the guest) equals the workload's model.
pub fn assert_kernel_copy_is_model(
    outcome: &pnfs_testbed::GuestOutcome,
    model_file: &str,
    kernel_file: &str,
    what: &str,
) {
    let model = std::fs::read(outcome.out_file(model_file)).expect("model");
    let kernel = std::fs::read(outcome.out_file(kernel_file)).expect("kernel copy");
    assert_eq!(kernel.len(), model.len(), "{what}: sizes");
    if let Some(i) = kernel.iter().zip(&model).position(|(a, b)| a != b) {
        panic!("{what}: the kernel client's copy differs from the model at byte {i}");
    }
}
