//! Real peers on the host: nfs-ganesha (NFSv4.1 server) and nbdkit (NBD server).
//!
//! Each runs in the foreground as a child of the test on 127.0.0.1 at a free port, with its
//! files (config, log, pid, state) in its own temp dir; dropping the handle stops it
//! (SIGTERM, then SIGKILL after [`STOP_GRACE`]). Keep the handle alive as long as the peer is
//! needed; a handle may be moved to (and dropped on) any thread.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, TestbedError};
use crate::tools::find_tool;
use crate::util::{tail_file, TempDir};

/// How long a peer may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Attempts to start a peer when its port was taken in the meantime.
const START_ATTEMPTS: usize = 3;
/// Poll interval while waiting for a peer.
const POLL: Duration = Duration::from_millis(50);
/// Lines of a peer's log quoted in errors.
const LOG_TAIL_LINES: usize = 30;

/// ONC RPC program number of NFS.
pub const NFS_PROGRAM: u32 = 100_003;

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(TestbedError::io("bind 127.0.0.1:0 to find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(TestbedError::io("local_addr of the free-port listener"))?
        .port();
    Ok(port)
}

/// The reply to an ONC RPC call (RFC 5531 §9), as far as a NULL call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcReply {
    /// MSG_ACCEPTED with this accept_stat (0 = SUCCESS, 1 = PROG_UNAVAIL, 2 = PROG_MISMATCH…).
    Accepted(u32),
    /// MSG_DENIED with this reject_stat (0 = RPC_MISMATCH, 1 = AUTH_ERROR).
    Denied(u32),
}

/// Largest RPC reply record accepted by [`rpc_null_call`].
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Sends an RPC NULL call (procedure 0, AUTH_NONE) for `program`/`version` over TCP with
/// record marking, and decodes the reply header. Bounded by `timeout` for each I/O.
pub fn rpc_null_call(
    addr: SocketAddr,
    program: u32,
    version: u32,
    timeout: Duration,
) -> Result<RpcReply> {
    let what = format!("RPC NULL call to {addr} program {program} version {version}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(TestbedError::io(format!("{what}: connect")))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(TestbedError::io(format!("{what}: set timeouts")))?;
    const XID: u32 = 0x706e_6673; // "pnfs"
    const CALL: u32 = 0;
    const RPC_VERSION: u32 = 2;
    const NULL_PROC: u32 = 0;
    const AUTH_NONE: u32 = 0;
    let words = [
        XID,
        CALL,
        RPC_VERSION,
        program,
        version,
        NULL_PROC,
        AUTH_NONE,
        0, // credential body length
        AUTH_NONE,
        0, // verifier body length
    ];
    let body: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let body_len = u32::try_from(body.len()).expect("40-byte RPC call");
    let mut msg = (0x8000_0000 | body_len).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    stream
        .write_all(&msg)
        .map_err(TestbedError::io(format!("{what}: send")))?;

    let mut reply = Vec::new();
    loop {
        let mut mark = [0u8; 4];
        stream
            .read_exact(&mut mark)
            .map_err(TestbedError::io(format!("{what}: read record mark")))?;
        let mark = u32::from_be_bytes(mark);
        let len = usize::try_from(mark & 0x7fff_ffff).unwrap_or(usize::MAX);
        if reply.len().saturating_add(len) > MAX_REPLY_BYTES {
            return Err(TestbedError::Invalid(format!(
                "{what}: reply larger than {MAX_REPLY_BYTES} bytes"
            )));
        }
        let start = reply.len();
        reply.resize(start + len, 0);
        stream
            .read_exact(&mut reply[start..])
            .map_err(TestbedError::io(format!("{what}: read reply")))?;
        if mark & 0x8000_0000 != 0 {
            break;
        }
    }
    decode_reply_header(&reply, XID).map_err(|e| TestbedError::Invalid(format!("{what}: {e}")))
}

fn decode_reply_header(reply: &[u8], xid: u32) -> std::result::Result<RpcReply, String> {
    let word = |i: usize| -> std::result::Result<u32, String> {
        reply
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("reply truncated at word {i} ({} bytes)", reply.len()))
    };
    if word(0)? != xid {
        return Err(format!("reply xid {:#x} != call xid {xid:#x}", word(0)?));
    }
    if word(1)? != 1 {
        return Err(format!("msg_type {} is not REPLY", word(1)?));
    }
    match word(2)? {
        0 => {
            // verifier: flavor, length, opaque body padded to 4 bytes
            let verf_len = usize::try_from(word(4)?).map_err(|e| e.to_string())?;
            if verf_len > 400 {
                return Err(format!("verifier length {verf_len} > 400"));
            }
            let stat_word = 5 + verf_len.div_ceil(4);
            Ok(RpcReply::Accepted(word(stat_word)?))
        }
        1 => Ok(RpcReply::Denied(word(3)?)),
        other => Err(format!("reply_stat {other} is neither ACCEPTED nor DENIED")),
    }
}

/// A child process killed on drop: SIGTERM, then SIGKILL after [`STOP_GRACE`].
#[derive(Debug)]
struct PeerProcess {
    child: Child,
}

impl PeerProcess {
    fn spawn(mut cmd: Command, name: &'static str, hint: &str) -> Result<PeerProcess> {
        // No PR_SET_PDEATHSIG here (unlike the guest): it fires when the *thread* that
        // spawned the peer exits, and a peer may outlive that thread (a shared peer, a
        // blocking-pool thread). The handle's Drop stops the peer; Ctrl-C reaches it through
        // the process group.
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TestbedError::ToolMissing {
                tool: name.to_owned(),
                hint: hint.to_owned(),
            },
            _ => TestbedError::Io {
                what: format!("start {name}"),
                source: e,
            },
        })?;
        Ok(PeerProcess { child })
    }

    /// The exit status if the process has ended.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }

    /// SIGKILL and reap: the peer loses everything it held in memory.
    fn kill9(&mut self) {
        if self.exited().is_some() {
            return;
        }
        if let Err(e) = self.child.kill() {
            eprintln!("pnfs-testbed: kill peer: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("pnfs-testbed: wait for peer: {e}");
        }
    }

    fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        if pid > 0 {
            // SAFETY: kill(2) on our own child's pid; the child is not yet reaped (try_wait
            // returned None above), so the pid cannot have been reused.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(POLL);
        }
        if let Err(e) = self.child.kill() {
            eprintln!("pnfs-testbed: kill peer: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("pnfs-testbed: wait for peer: {e}");
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Settings of a ganesha started with [`Ganesha::start_with`].
#[derive(Debug, Clone, Copy)]
pub struct GaneshaOptions {
    /// `Lease_Lifetime` in seconds; `None` keeps ganesha's default.
    pub lease_seconds: Option<u32>,
    /// `Graceless`: no grace period after a (re)start. With a grace period, it lasts the
    /// lease plus [`GANESHA_GRACE_OVER_LEASE_S`] (at least [`GANESHA_MIN_GRACE_S`]).
    pub graceless: bool,
}

impl Default for GaneshaOptions {
    fn default() -> Self {
        Self {
            lease_seconds: None,
            graceless: true,
        }
    }
}

/// A grace period lasts this much longer than the lease.
pub const GANESHA_GRACE_OVER_LEASE_S: u32 = 2;
/// The shortest grace period configured.
pub const GANESHA_MIN_GRACE_S: u32 = 7;

/// nfs-ganesha serving one NFSv4.1/4.2 export (FSAL VFS) on 127.0.0.1, in the foreground.
///
/// Config (docs/testbed.md): `Protocols = 4`, no NLM/RQUOTA, `Graceless = true` unless
/// [`GaneshaOptions`] say otherwise, `Minor_Versions = 1, 2`, one export `Pseudo = /export` of
/// the given directory with `Access_Type = RW`, `Squash = No_Root_Squash`, `SecType = sys`.
/// Its recovery state, pid file and log live in its own temp dir, so that
/// [`Ganesha::restart`] finds its clients' records again. No dbus or rpcbind is needed (it
/// logs that dbus is absent).
#[derive(Debug)]
pub struct Ganesha {
    /// The NFS port on 127.0.0.1.
    pub port: u16,
    /// The directory exported.
    pub export_dir: PathBuf,
    binary: PathBuf,
    process: PeerProcess,
    dir: TempDir,
}

impl Ganesha {
    /// The NFSv4 pseudo path of the export.
    pub const PSEUDO_PATH: &'static str = "/export";

    /// Starts ganesha exporting `export_dir` (which must exist) with the default
    /// [`GaneshaOptions`] and waits until it answers an RPC NULL call to NFS version 4.
    pub fn start(export_dir: &Path) -> Result<Ganesha> {
        Self::start_with(export_dir, GaneshaOptions::default())
    }

    /// [`Ganesha::start`] with `options`.
    pub fn start_with(export_dir: &Path, options: GaneshaOptions) -> Result<Ganesha> {
        let binary = find_tool(
            "ganesha.nfsd",
            "apt-get install nfs-ganesha nfs-ganesha-vfs",
        )?;
        let export_dir = fs::canonicalize(export_dir).map_err(TestbedError::io(format!(
            "export directory {}",
            export_dir.display()
        )))?;
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&binary, &export_dir, options) {
                Ok(g) => return Ok(g),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| TestbedError::Invalid("no start attempt".to_owned())))
    }

    fn start_once(binary: &Path, export_dir: &Path, options: GaneshaOptions) -> Result<Ganesha> {
        let dir = TempDir::new("ganesha")?;
        let port = free_port()?;
        let recovery = dir.path().join("recovery");
        fs::create_dir_all(&recovery)
            .map_err(TestbedError::io(format!("create {}", recovery.display())))?;
        let config = dir.path().join("ganesha.conf");
        let lease = match options.lease_seconds {
            Some(s) => format!(
                " Lease_Lifetime = {s}; Grace_Period = {};",
                (s + GANESHA_GRACE_OVER_LEASE_S).max(GANESHA_MIN_GRACE_S)
            ),
            None => String::new(),
        };
        let text = format!(
            "NFS_CORE_PARAM {{ NFS_Port = {port}; Bind_addr = 127.0.0.1; Protocols = 4; \
             Enable_NLM = false; Enable_RQUOTA = false; }}\n\
             NFSV4 {{ Graceless = {};{lease} Minor_Versions = 1, 2; RecoveryBackend = fs; \
             RecoveryRoot = {}; }}\n\
             EXPORT {{ Export_Id = 1; Path = {}; Pseudo = {}; Access_Type = RW; \
             Squash = No_Root_Squash; SecType = sys; FSAL {{ Name = VFS; }} }}\n\
             LOG {{ Default_Log_Level = EVENT; }}\n",
            options.graceless,
            quote_conf(&recovery)?,
            quote_conf(export_dir)?,
            Self::PSEUDO_PATH
        );
        fs::write(&config, text)
            .map_err(TestbedError::io(format!("write {}", config.display())))?;
        let process = Self::spawn(binary, dir.path(), port)?;
        Ok(Ganesha {
            port,
            export_dir: export_dir.to_path_buf(),
            binary: binary.to_path_buf(),
            process,
            dir,
        })
    }

    /// Runs ganesha on the config in `dir` and waits until it answers on `port`.
    fn spawn(binary: &Path, dir: &Path, port: u16) -> Result<PeerProcess> {
        let log = dir.join("ganesha.log");
        let output = File::options()
            .create(true)
            .append(true)
            .open(dir.join("ganesha.out"))
            .map_err(TestbedError::io("create ganesha.out"))?;
        let output2 = output
            .try_clone()
            .map_err(TestbedError::io("dup ganesha.out"))?;
        let mut cmd = Command::new(binary);
        cmd.arg("-F")
            .arg("-L")
            .arg(&log)
            .arg("-f")
            .arg(dir.join("ganesha.conf"))
            .arg("-p")
            .arg(dir.join("ganesha.pid"))
            .args(["-N", "NIV_EVENT"])
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output2);
        let mut process = PeerProcess::spawn(cmd, "ganesha.nfsd", "apt-get install nfs-ganesha")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = process.exited() {
                return Err(TestbedError::PeerStart {
                    peer: "nfs-ganesha",
                    detail: format!("exited with {status} (port {port})"),
                    log_tail: tail_file(&log, LOG_TAIL_LINES),
                });
            }
            if let Ok(RpcReply::Accepted(_)) =
                rpc_null_call(addr, NFS_PROGRAM, 4, Duration::from_secs(2))
            {
                return Ok(process);
            }
            if Instant::now() >= deadline {
                return Err(TestbedError::PeerStart {
                    peer: "nfs-ganesha",
                    detail: format!("no RPC reply on {addr} within {START_TIMEOUT:?}"),
                    log_tail: tail_file(&log, LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL (no clean shutdown: ganesha loses its in-memory state) and start again on the
    /// same port, config and recovery directory; returns once it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.process.kill9();
        self.process = Self::spawn(&self.binary, self.dir.path(), self.port)?;
        Ok(())
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Ganesha's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("ganesha.log")
    }

    /// Stops the server now (also done on drop).
    pub fn stop(mut self) {
        self.process.stop();
    }
}

/// Quotes a path for ganesha's config (double quotes; refuses quotes and control characters).
fn quote_conf(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .ok_or_else(|| TestbedError::Invalid(format!("path {} is not UTF-8", path.display())))?;
    if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(TestbedError::Invalid(format!(
            "path {s:?} has characters ganesha's config cannot hold"
        )));
    }
    Ok(format!("\"{s}\""))
}

/// nbdkit serving one file (the `file` plugin) on 127.0.0.1, in the foreground.
#[derive(Debug)]
pub struct Nbdkit {
    /// The NBD port on 127.0.0.1.
    pub port: u16,
    process: PeerProcess,
    dir: TempDir,
}

impl Nbdkit {
    /// Starts nbdkit serving `file` and waits until it listens (it writes its pid file then).
    pub fn start(file: &Path) -> Result<Nbdkit> {
        let binary = find_tool("nbdkit", "apt-get install nbdkit")?;
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&binary, file) {
                Ok(n) => return Ok(n),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| TestbedError::Invalid("no start attempt".to_owned())))
    }

    fn start_once(binary: &Path, file: &Path) -> Result<Nbdkit> {
        let dir = TempDir::new("nbdkit")?;
        let port = free_port()?;
        let pid_file = dir.path().join("nbdkit.pid");
        let log = dir.path().join("nbdkit.log");
        let output = File::create(&log).map_err(TestbedError::io("create nbdkit.log"))?;
        let output2 = output
            .try_clone()
            .map_err(TestbedError::io("dup nbdkit.log"))?;
        let mut cmd = Command::new(binary);
        cmd.args(["-f", "-i", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .arg("-P")
            .arg(&pid_file)
            .arg("file")
            .arg(file)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output2);
        let mut process = PeerProcess::spawn(cmd, "nbdkit", "apt-get install nbdkit")?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = process.exited() {
                return Err(TestbedError::PeerStart {
                    peer: "nbdkit",
                    detail: format!("exited with {status} (port {port})"),
                    log_tail: tail_file(&log, LOG_TAIL_LINES),
                });
            }
            if pid_file.is_file() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(TestbedError::PeerStart {
                    peer: "nbdkit",
                    detail: format!("no pid file within {START_TIMEOUT:?}"),
                    log_tail: tail_file(&log, LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(POLL);
        }
        Ok(Nbdkit { port, process, dir })
    }

    /// `nbd://127.0.0.1:PORT` (nbdkit's file plugin serves every export name).
    pub fn uri(&self) -> String {
        format!("nbd://127.0.0.1:{}", self.port)
    }

    /// nbdkit's log file (its stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nbdkit.log")
    }

    /// Stops the server now (also done on drop).
    pub fn stop(mut self) {
        self.process.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_accepted_and_denied_replies() {
        let words = |w: &[u32]| -> Vec<u8> { w.iter().flat_map(|x| x.to_be_bytes()).collect() };
        // xid, REPLY, MSG_ACCEPTED, verf AUTH_NONE len 0, SUCCESS
        let ok = words(&[7, 1, 0, 0, 0, 0]);
        assert_eq!(decode_reply_header(&ok, 7), Ok(RpcReply::Accepted(0)));
        // a 5-byte verifier body is padded to 8 bytes
        let padded = words(&[7, 1, 0, 1, 5, 0xaaaa_aaaa, 0xaa00_0000, 2]);
        assert_eq!(decode_reply_header(&padded, 7), Ok(RpcReply::Accepted(2)));
        let denied = words(&[7, 1, 1, 1]);
        assert_eq!(decode_reply_header(&denied, 7), Ok(RpcReply::Denied(1)));
        assert!(decode_reply_header(&ok, 8).unwrap_err().contains("xid"));
        assert!(decode_reply_header(&ok[..10], 7)
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn conf_quoting_refuses_quotes() {
        assert_eq!(quote_conf(Path::new("/a b")).unwrap(), "\"/a b\"");
        assert!(quote_conf(Path::new("/a\"b")).is_err());
    }
}
