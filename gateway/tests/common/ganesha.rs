//! A real nfs-ganesha on 127.0.0.1 (VFS FSAL, NFSv4.1/4.2 only), foreground, with its own port,
//! config, export and recovery directories; SIGKILLed on drop. Offers no block layouts.
//!
//! Needs `ganesha.nfsd` (nfs-ganesha + nfs-ganesha-vfs) and root (the VFS FSAL uses
//! open_by_handle_at). Missing either is a test failure, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const GANESHA: &str = "/usr/bin/ganesha.nfsd";
/// How long ganesha may take to accept connections after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines shown when ganesha fails to start.
const LOG_TAIL_LINES: usize = 30;
/// Ganesha's grace period is its lease plus this, and at least `MIN_GRACE_LEASE_S` + this.
const GRACE_OVER_LEASE_S: u32 = 2;
/// See [`GRACE_OVER_LEASE_S`].
const MIN_GRACE_LEASE_S: u32 = 5;

/// One ganesha instance.
pub struct Ganesha {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Ganesha {
    /// Writes the config and starts ganesha; returns once it listens. `graceless` starts it
    /// (and every restart) without a grace period.
    pub fn start(name: &str, lease_s: u32, graceless: bool) -> Self {
        assert!(
            Path::new(GANESHA).exists(),
            "{GANESHA} missing: apt-get install nfs-ganesha nfs-ganesha-vfs"
        );
        let dir =
            std::env::temp_dir().join(format!("pnfs-ganesha-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("export")).expect("export dir");
        std::fs::create_dir_all(dir.join("recovery")).expect("recovery dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let conf = format!(
            "NFS_CORE_PARAM {{ NFS_Port = {port}; Bind_addr = 127.0.0.1; Protocols = 4; Enable_NLM = false; Enable_RQUOTA = false; }}\n\
             NFSV4 {{ Graceless = {graceless}; Lease_Lifetime = {lease_s}; Grace_Period = {grace}; Minor_Versions = 1, 2; RecoveryBackend = fs; RecoveryRoot = \"{rec}\"; }}\n\
             EXPORT {{ Export_Id = 1; Path = {exp}; Pseudo = /export; Access_Type = RW; Squash = No_Root_Squash; SecType = sys; FSAL {{ Name = VFS; }} }}\n",
            grace = lease_s.max(MIN_GRACE_LEASE_S) + GRACE_OVER_LEASE_S,
            rec = dir.join("recovery").display(),
            exp = dir.join("export").display(),
        );
        std::fs::write(dir.join("ganesha.conf"), conf).expect("ganesha.conf");
        let mut g = Self {
            dir,
            port,
            child: None,
        };
        g.spawn();
        g
    }

    /// Starts the process (again, on the same config and recovery directory) and waits
    /// until it listens.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "ganesha is already running");
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
        let log = self.dir.join("ganesha.log");
        super::wait_listening(&mut self.child, self.port, START_TIMEOUT, "ganesha", || {
            log_tail(&log)
        });
    }

    /// SIGKILL (no clean shutdown: the server loses its in-memory state) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The exported directory on this host (NFS path `export/`).
    pub fn export(&self) -> PathBuf {
        self.dir.join("export")
    }
}

/// The last lines of ganesha's log.
fn log_tail(log: &Path) -> String {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// A failing test keeps the directory (config, log) for a look.
impl Drop for Ganesha {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
