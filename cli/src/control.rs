//! The control socket: a Unix stream socket where `pnfsgw stats` asks the running gateway for
//! a [`Snapshot`]. Protocol: the client sends one line, `stats`; the server answers one JSON
//! object and closes. Requests are bounded in size, time and concurrency.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::status::{Board, Snapshot};

/// Longest request line.
pub const REQUEST_MAX_BYTES: u64 = 256;
/// Longest reply the client reads.
pub const REPLY_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Time limit for one request, both sides.
pub const REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Control connections served at once.
pub const CONNECTIONS_MAX: usize = 16;

/// A bound control socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path`, creating its directory (mode 0755). A stale socket file (nobody
    /// listening) is replaced; a live one is an error: another gateway is running.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use: is another pnfsgw running?", path.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => {
                // Not listening: a leftover of a process that died. Only remove sockets.
                use std::os::unix::fs::FileTypeExt;
                if std::fs::symlink_metadata(path)?.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                }
            }
        }
        let listener = UnixListener::bind(path)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves snapshots of `board` until `shutdown` turns true.
    pub async fn serve(self, board: Board, shutdown: watch::Receiver<bool>) {
        let limits = crate::accept::Limits {
            what: "control socket",
            connections_max: CONNECTIONS_MAX,
            request_timeout_ms: REQUEST_TIMEOUT_MS,
        };
        let listener = &self.listener;
        let accept = || async {
            let (stream, _) = listener.accept().await?;
            Ok((stream, "a local process".to_owned()))
        };
        let answer = |stream| {
            let board = board.clone();
            async move { answer(stream, &board).await }
        };
        crate::accept::serve(limits, accept, answer, shutdown).await;
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("removing control socket {}: {e}", self.path.display());
            }
        }
    }
}

async fn answer(stream: UnixStream, board: &Board) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    BufReader::new(rd.take(REQUEST_MAX_BYTES))
        .read_line(&mut line)
        .await?;
    let reply = match line.trim() {
        "stats" => serde_json::to_string(&board.snapshot()).map_err(io::Error::other)?,
        other => serde_json::json!({ "error": format!("unknown request {other:?}") }).to_string(),
    };
    wr.write_all(reply.as_bytes()).await?;
    wr.write_all(b"\n").await?;
    wr.shutdown().await
}

/// The directory of the default control sockets (`run`'s and every `export`'s).
pub const CONTROL_DIR: &str = "/run/pnfsgw";

/// The control sockets of the gateways running on this host with default sockets: `run`'s
/// `control.sock` and every `export-*.sock`, sorted (other sockets there, e.g. an NBD one,
/// are not asked). A socket file whose process is gone answers with an error, as it should.
pub fn running_instances() -> Result<Vec<PathBuf>, String> {
    let dir = Path::new(CONTROL_DIR);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name == "control.sock" || (name.starts_with("export-") && name.ends_with(".sock"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Client side: asks the gateway at `path` for a snapshot.
pub async fn fetch(path: &Path) -> Result<Snapshot, String> {
    let limit = Duration::from_millis(REQUEST_TIMEOUT_MS);
    let work = async {
        let mut s = UnixStream::connect(path).await.map_err(|e| {
            format!(
                "cannot connect to {}: {e} (is the gateway running?)",
                path.display()
            )
        })?;
        s.write_all(b"stats\n").await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.take(REPLY_MAX_BYTES)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_slice(&buf)
            .map_err(|e| format!("bad reply from {}: {e}", path.display()))?;
        if let Some(err) = v.get("error") {
            return Err(format!("the gateway answered: {err}"));
        }
        serde_json::from_value(v).map_err(|e| format!("bad reply from {}: {e}", path.display()))
    };
    tokio::time::timeout(limit, work).await.map_err(|_| {
        format!(
            "no answer from {} within {REQUEST_TIMEOUT_MS} ms",
            path.display()
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stats_round_trip_and_stale_socket_replaced() {
        let dir = std::env::temp_dir().join(format!("pnfsgw-control-{}", std::process::id()));
        let path = dir.join("control.sock");
        // A stale socket file left by a dead process.
        std::fs::create_dir_all(&dir).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());

        let sock = ControlSocket::bind(&path).unwrap();
        let board = Board::new(vec!["mds:2049".into()], Vec::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(sock.serve(board, stop_rx));

        // A second gateway on the same socket is refused.
        let e = ControlSocket::bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);

        let snap = fetch(&path).await.unwrap();
        assert_eq!(snap.mds, ["mds:2049"]);
        assert_eq!(snap.pid, std::process::id());

        stop_tx.send(true).unwrap();
        server.await.unwrap();
        assert!(!path.exists(), "socket file removed on stop");
        let e = fetch(&path).await.unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
