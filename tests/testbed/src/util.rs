//! Small host helpers: temporary directories, an exclusive file lock, log tails, a stable hash.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TestbedError};

/// A directory under the system temp dir, removed on drop unless [`TempDir::keep`] was called.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates a fresh directory named `pnfs-<prefix>-<pid>-<n>-<nanos>`.
    pub fn new(prefix: &str) -> Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("pnfs-{prefix}-{}-{n}-{nanos}", std::process::id()));
        fs::create_dir_all(&path)
            .map_err(TestbedError::io(format!("create {}", path.display())))?;
        Ok(TempDir { path, keep: false })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory after drop (for inspection after a failure); returns its path.
    pub fn keep(&mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: a leftover temp dir must not turn a passing test into a panic.
            if let Err(e) = fs::remove_dir_all(&self.path) {
                eprintln!(
                    "pnfs-testbed: could not remove {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// An exclusive `flock(2)` on a file; released when dropped (the file is closed).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` is held. Calls `on_wait` once if it has to wait.
    pub fn exclusive(path: &Path, on_wait: impl FnOnce()) -> Result<FileLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(TestbedError::io(format!(
                "open lock file {}",
                path.display()
            )))?;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is an open descriptor owned by `file`, which outlives the call.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(FileLock { _file: file });
        }
        on_wait();
        loop {
            // SAFETY: as above; a blocking flock on a descriptor we own.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(TestbedError::Io {
                    what: format!("flock {}", path.display()),
                    source: err,
                });
            }
        }
    }
}

/// The last `max_lines` lines of a file (at most the last 256 KiB are read), `\r` removed.
/// A missing or unreadable file yields a one-line explanation instead of an error, because
/// this is only ever used to decorate another error.
pub fn tail_file(path: &Path, max_lines: usize) -> String {
    const MAX_TAIL_BYTES: u64 = 256 * 1024;
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("<cannot read {}: {e}>", path.display()),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX_TAIL_BYTES);
    let mut buf = Vec::new();
    if let Err(e) = file
        .seek(SeekFrom::Start(start))
        .and_then(|_| file.read_to_end(&mut buf))
    {
        return format!("<cannot read {}: {e}>", path.display());
    }
    let text = String::from_utf8_lossy(&buf).replace('\r', "");
    let out = tail_lines(&text, max_lines);
    if out.trim().is_empty() {
        format!("<{} is empty>", path.display())
    } else {
        out
    }
}

/// The last `max_lines` lines of `text`.
pub fn tail_lines(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(max_lines);
    lines[from..].join("\n")
}

/// 64-bit FNV-1a: a hash that is stable across builds (for cache keys).
#[derive(Debug, Clone, Copy)]
pub struct StableHash(u64);

impl StableHash {
    /// A fresh hash state.
    pub fn new() -> StableHash {
        StableHash(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes `bytes` into the hash, followed by a separator so that concatenations differ.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().chain(std::iter::once(&0xff)) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash value.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for StableHash {
    fn default() -> Self {
        StableHash::new()
    }
}

/// Shell-quotes `s` with single quotes (safe for any byte string without NUL).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
        assert_eq!(tail_lines("", 5), "");
    }

    #[test]
    fn shell_quote_escapes_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn stable_hash_separates_fields() {
        let mut a = StableHash::new();
        a.update(b"ab");
        a.update(b"c");
        let mut b = StableHash::new();
        b.update(b"a");
        b.update(b"bc");
        assert_ne!(a.finish(), b.finish());
    }
}
