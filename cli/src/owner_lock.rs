//! One gateway process per client owner and MDS on a host.
//!
//! An MDS serves every connection that presents one client owner as one client (RFC 8881
//! §2.4): two gateways with the same owner on one file get no recalls for each other's I/O,
//! and each keeps reading its own stale extents — the silent corruption this lock prevents.
//! Defaults are unique per instance by construction (see `HostIdentity::client_owner`); an
//! owner written into two configs is caught here, on this host, before the MDS sees it.
//!
//! The lock is an `flock` on a file named after a hash of (owner, MDS addresses), held for the
//! life of the process; the kernel drops it when the process dies, even by SIGKILL, so a
//! crashed gateway never blocks its successor. The file holds the holder's PID for the error.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Where the lock files live when this process may create it (root, systemd).
pub const OWNER_LOCK_DIR: &str = "/run/pnfsgw/owners";

/// A held owner lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock for `owner` on the MDS at `mds_addresses`, or says which process has it.
    pub fn acquire(owner: &str, mds_addresses: &[String]) -> Result<OwnerLock, String> {
        let dir = lock_dir();
        Self::acquire_in(&dir, owner, mds_addresses)
    }

    /// [`OwnerLock::acquire`] with the lock directory given (tests).
    pub fn acquire_in(dir: &Path, owner: &str, mds_addresses: &[String]) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create the owner lock directory {}: {e}",
                dir.display()
            )
        })?;
        let path = dir.join(format!("{:016x}.lock", key_hash(owner, mds_addresses)));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: the descriptor is open for the whole call; flock has no memory effects.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(format!(
                    "client owner {owner:?} is already in use on this host for MDS {} by \
                     another pnfsgw (pid {}): two gateways with one owner would be served as \
                     one client and could read stale data; give each its own [mds] \
                     client_owner, or leave it unset (the default is unique per instance)",
                    mds_addresses.join(","),
                    holder.trim()
                ));
            }
            return Err(format!("cannot lock {}: {err}", path.display()));
        }
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())?;
            writeln!(f, "{owner}")
        };
        write_pid(&mut file).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        tracing::debug!("holding the owner lock {}", path.display());
        Ok(OwnerLock { _file: file })
    }
}

/// [`OWNER_LOCK_DIR`] where it can be created, else a per-user directory under the
/// system's temporary directory (a gateway run by an ordinary user for tests).
fn lock_dir() -> PathBuf {
    let run = PathBuf::from(OWNER_LOCK_DIR);
    if std::fs::create_dir_all(&run).is_ok() {
        return run;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir().join(format!("pnfsgw-owners-{uid}"))
}

/// FNV-1a over the owner and the MDS addresses (a stable file name of fixed length).
fn key_hash(owner: &str, mds_addresses: &[String]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    let parts = std::iter::once(owner).chain(mds_addresses.iter().map(String::as_str));
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("pnfsgw-owner-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_second_holder_of_one_owner_is_refused_with_the_first_pid() {
        let dir = scratch("twice");
        let mds = vec!["127.0.0.1:2049".to_owned()];
        let first = OwnerLock::acquire_in(&dir, "pnfsgw:gw1", &mds).expect("first");
        let e = OwnerLock::acquire_in(&dir, "pnfsgw:gw1", &mds).unwrap_err();
        assert!(e.contains("already in use"), "{e}");
        assert!(e.contains(&std::process::id().to_string()), "{e}");
        // Another owner, or the same owner on another MDS, is another client: allowed.
        let _other = OwnerLock::acquire_in(&dir, "pnfsgw:gw2", &mds).expect("other owner");
        let other_mds = vec!["127.0.0.1:2050".to_owned()];
        let _elsewhere = OwnerLock::acquire_in(&dir, "pnfsgw:gw1", &other_mds).expect("other MDS");
        drop(first);
        let _again = OwnerLock::acquire_in(&dir, "pnfsgw:gw1", &mds).expect("after release");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
