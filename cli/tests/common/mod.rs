//! What the host end-to-end tests share: a running `pnfsgw` process with its output, the real
//! NBD clients as tools, and readiness waits.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pnfsgw");
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
pub const STOP_TIMEOUT: Duration = Duration::from_secs(90);

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pnfsgw-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running pnfsgw with its stdout lines on a channel and its stderr collected.
pub struct Gw {
    pub child: Child,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: Arc<Mutex<String>>,
}

impl Gw {
    pub fn spawn(args: &[&str]) -> Gw {
        Self::spawn_env(args, &[])
    }

    pub fn spawn_env(args: &[&str], env: &[(&str, &Path)]) -> Gw {
        Self::spawn_in(Path::new("."), args, env)
    }

    /// [`Gw::spawn_env`] with `cwd` as the working directory (relative paths in `args`).
    pub fn spawn_in(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Gw {
        let mut child = Command::new(BIN)
            .current_dir(cwd)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Gw {
            child,
            stdout: rx,
            stderr,
        }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of it.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .stdout
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!(
                        "pnfsgw exited ({status}) before {prefix:?}:\n{}",
                        self.log()
                    );
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "pnfsgw exited ({status}) before {prefix:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} within {READY_TIMEOUT:?}:\n{}",
                self.log()
            );
        }
    }

    /// SIGTERM, then the exit code (bounded).
    pub fn terminate(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(st.success());
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "pnfsgw did not stop within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Let the reader thread drain the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status.code(), self.log())
    }
}

/// A test that fails half-way must not leave its gateway running.
impl Drop for Gw {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs qemu-io on a raw NBD URI with `commands` (each one `-c`), failing the test on any
/// failed command or pattern mismatch; returns its output.
pub fn qemu_io(uri: &str, commands: &[&str]) -> String {
    let mut args = vec!["-f", "raw", uri];
    for c in commands {
        args.extend(["-c", c]);
    }
    let out = tool("qemu-io", &args);
    assert!(
        !out.contains("Pattern verification failed") && !out.contains("failed"),
        "qemu-io {commands:?} on {uri}:\n{out}"
    );
    out
}

pub fn stats(control: &Path) -> String {
    tool(BIN, &["stats", "--control", control.to_str().unwrap()])
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_listening(addr: &str, child: &mut Gw) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while std::net::TcpStream::connect(addr).is_err() {
        if let Some(s) = child.child.try_wait().unwrap() {
            panic!("exited ({s}) before listening on {addr}:\n{}", child.log());
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {addr}:\n{}",
            child.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `pnfsgw mds` process on a free port over a new 256 MiB sparse volume file `dir/VOL_NAME`,
/// with `extra` flags; returns it once it listens, with its address and the volume's path.
pub fn start_mds(dir: &Path, vol_name: &str, extra: &[&str]) -> (Gw, String, PathBuf) {
    let vol = dir.join(vol_name);
    std::fs::File::create(&vol)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let addr = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let state = dir.join("mds");
    let mut args = vec![
        "mds",
        "--listen",
        &addr,
        "--state",
        state.to_str().unwrap(),
        "--volume",
        vol.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut mds = Gw::spawn(&args);
    wait_listening(&addr, &mut mds);
    (mds, addr, vol)
}

/// A counter of `pnfsgw stats` (the first `pnfs.NAME VALUE` line).
pub fn counter(control: &Path, name: &str) -> u64 {
    named_counter(control, &format!("pnfs.{name}"))
}

/// The first `NAME VALUE` line of `pnfsgw stats` (NBD request kinds never seen are not
/// listed: 0).
pub fn named_counter(control: &Path, name: &str) -> u64 {
    let s = stats(control);
    match s
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name} ")))
    {
        Some(v) => v.parse().unwrap_or_else(|e| panic!("{name} {v:?}: {e}")),
        None if name.starts_with("nbd.requests.") => 0,
        None => panic!("no {name} in:\n{s}"),
    }
}

/// One `pnfsgw export` of /vm with its defaults (its own control socket and client owner)
/// on the MDS at `mds`; returns it, its URI and its default control socket.
pub fn export_vm(mds: &str, vol: &Path, extra: &[&str]) -> (Gw, String, PathBuf) {
    let port = pnfs_testbed::free_port().unwrap();
    let nbd = format!("127.0.0.1:{port}");
    let mut args = vec![
        "export",
        "--mds",
        mds,
        "--path",
        "/vm",
        "--nbd",
        &nbd,
        "--volume",
        vol.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut gw = Gw::spawn(&args);
    let uri = format!("nbd://{}", gw.wait_line("nbd://"));
    // The default control socket: one per export name and port.
    let control = PathBuf::from(format!("/run/pnfsgw/export-vm-{port}.sock"));
    assert!(control.exists(), "{}:\n{}", control.display(), gw.log());
    (gw, uri, control)
}
