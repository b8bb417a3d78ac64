//! Devices that outlive their gateway process: the record of which device belongs to whom,
//! the kernel's view of a device left behind, and the rule that decides between recovering
//! it and deleting it.
//!
//! **Records.** Every device this crate creates through [`crate::UblkDevice::start_kept`]
//! gets a small file `<dir>/<dev_id>` (by default under [`RECORD_DIR_DEFAULT`], a tmpfs
//! that, like ublk devices, does not outlive a reboot) naming the gateway instance that owns
//! it (its client owner, which one live process at most holds) and the device's name in that
//! instance's configuration. A clean delete removes the record; a crash or a hand-over
//! leaves it, and the next start of the same owner finds its devices there. Devices without
//! a record of ours (other programs', other owners') are never touched.
//!
//! **The rule** ([`decide`]), applied by the next start of the owner to each of its records:
//! - the configuration still has the device with `recovery` on, the kernel device was made
//!   with user recovery and re-issue, has the same queues, depth, request size, size, block
//!   size and read-only flag, and its process is gone → **recover** it (same id, same
//!   `/dev/ublkbN`; the requests that waited are served by the new process);
//! - anything else (recovery off, the device gone from the configuration, another geometry —
//!   e.g. the file was resized —, a device the kernel already stopped) → **delete** it. A
//!   configuration entry whose device could not be opened this time keeps its record: the
//!   next start that opens it recovers the device.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libublk::ctrl::UblkCtrl;
use libublk::sys;

use crate::error::describe_libublk;
use crate::geometry::{Geometry, SECTOR_BYTES};
use crate::UblkError;

/// Where records live unless told otherwise: per boot, like the devices themselves.
pub const RECORD_DIR_DEFAULT: &str = "/run/pnfsgw/ublk";
/// Most record files looked at in one directory.
pub const RECORDS_MAX: usize = 4096;
/// Largest record file read.
pub const RECORD_MAX_BYTES: u64 = 4096;
/// How long a start waits for the kernel to quiesce a device whose process just died
/// (the kernel does it once the dead process's io_uring and `/dev/ublkcN` are released).
pub const QUIESCE_WAIT_MS: u64 = 30_000;
/// How often the kernel's device state is read while waiting for it to quiesce: the
/// driver has no notification for it.
pub const QUIESCE_POLL_MS: u64 = 20;

/// The record store of one gateway instance (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    dir: PathBuf,
    owner: String,
}

/// One record: device `dev_id` is `name` of this owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Kernel device id (N in /dev/ublkbN).
    pub dev_id: u32,
    /// The device's name in the owner's configuration.
    pub name: String,
}

fn format_record(owner: &str, name: &str) -> String {
    format!("owner={owner}\nname={name}\n")
}

/// `(owner, name)` of a record file's text; `None` when it is not one.
fn parse_record(text: &str) -> Option<(String, String)> {
    let mut owner = None;
    let mut name = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("owner=") {
            owner = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("name=") {
            name = Some(v.to_owned());
        } else if !line.is_empty() {
            return None;
        }
    }
    Some((owner?, name?))
}

impl Registry {
    /// The records of `owner` in `dir`.
    pub fn new(dir: impl Into<PathBuf>, owner: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            owner: owner.into(),
        }
    }

    /// The record directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io_err(&self, what: &str, e: &std::io::Error) -> UblkError {
        UblkError::Record(format!("{what} in {}: {e}", self.dir.display()))
    }

    /// Every record of this owner, by device id (a missing directory: none).
    pub fn records(&self) -> Result<Vec<Record>, UblkError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_err("listing records", &e)),
        };
        let mut out = Vec::new();
        for (seen, entry) in rd.enumerate() {
            if seen >= RECORDS_MAX {
                return Err(UblkError::Record(format!(
                    "more than {RECORDS_MAX} entries in {}",
                    self.dir.display()
                )));
            }
            let entry = entry.map_err(|e| self.io_err("listing records", &e))?;
            let Some(dev_id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| self.io_err("reading a record", &e))?;
            if !meta.is_file() || meta.len() > RECORD_MAX_BYTES {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|e| self.io_err("reading a record", &e))?;
            match parse_record(&text) {
                Some((owner, name)) if owner == self.owner => out.push(Record { dev_id, name }),
                Some(_) => {}
                None => tracing::warn!("ublk: {} is not a device record; ignored", path.display()),
            }
        }
        out.sort_by_key(|r| r.dev_id);
        Ok(out)
    }

    /// The device id recorded for `name`, if any.
    pub fn find(&self, name: &str) -> Result<Option<u32>, UblkError> {
        Ok(self
            .records()?
            .into_iter()
            .find(|r| r.name == name)
            .map(|r| r.dev_id))
    }

    /// Records that device `dev_id` is `name` of this owner.
    pub fn write(&self, dev_id: u32, name: &str) -> Result<(), UblkError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io_err("creating", &e))?;
        let path = self.dir.join(dev_id.to_string());
        let tmp = self.dir.join(format!(".{dev_id}.tmp"));
        std::fs::write(&tmp, format_record(&self.owner, name))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| self.io_err("writing a record", &e))
    }

    /// Forgets device `dev_id` (a missing record is not an error).
    pub fn remove(&self, dev_id: u32) -> Result<(), UblkError> {
        match std::fs::remove_file(self.dir.join(dev_id.to_string())) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err("removing a record", &e)),
        }
    }

    /// Deletes every device of this owner whose name is not in `keep` (and its record);
    /// returns the ids deleted. Errors are collected per device; the others go on.
    pub fn sweep(&self, keep: &[String]) -> Result<Vec<u32>, UblkError> {
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for r in self.records()? {
            if keep.contains(&r.name) {
                continue;
            }
            tracing::info!(
                "ublk: device {} ({}) was left by an earlier run and is not to be recovered \
                 (no longer configured with recovery): deleting it",
                r.dev_id,
                r.name
            );
            match delete_leftover(r.dev_id).and_then(|()| self.remove(r.dev_id)) {
                Ok(()) => deleted.push(r.dev_id),
                Err(e) => errors.push(format!("device {}: {e}", r.dev_id)),
            }
        }
        if errors.is_empty() {
            Ok(deleted)
        } else {
            Err(UblkError::Record(errors.join("; ")))
        }
    }
}

/// The kernel's view of a device, from GET_DEV_INFO and GET_PARAMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelDevice {
    /// `UBLK_S_DEV_*`.
    pub state: u16,
    /// `UBLK_F_*` the device was added with.
    pub flags: u64,
    /// The serving process (0 or a dead one after a crash).
    pub pid: i32,
    /// Queues.
    pub nr_queues: u16,
    /// Depth per queue.
    pub queue_depth: u16,
    /// Request buffer size.
    pub max_io_bytes: u32,
    /// Size in bytes.
    pub size_bytes: u64,
    /// log2 of the logical block size.
    pub logical_bs_shift: u8,
    /// `UBLK_ATTR_*`.
    pub attrs: u32,
}

/// What to do with a device left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Recover it with this process.
    Recover,
    /// Wait for the kernel to quiesce it (its process is exiting), then decide again.
    Wait,
    /// Delete it; the reason is logged.
    Delete(String),
}

/// The flags a device must have been added with to be recovered.
pub const RECOVERY_FLAGS: u64 =
    (sys::UBLK_F_USER_RECOVERY | sys::UBLK_F_USER_RECOVERY_REISSUE) as u64;

/// The rule of the module doc, for a device the configuration still has (pure).
pub fn decide(k: &KernelDevice, g: &Geometry, recovery: bool, pid_alive: bool) -> Decision {
    if !recovery {
        return Decision::Delete("recovery is off for it".into());
    }
    if k.flags & RECOVERY_FLAGS != RECOVERY_FLAGS {
        return Decision::Delete("it was made without user recovery".into());
    }
    let want = match g.kernel_params() {
        Ok(p) => p.basic,
        Err(e) => return Decision::Delete(e.to_string()),
    };
    let mut differs = Vec::new();
    if k.nr_queues != g.nr_queues {
        differs.push(format!("queues {} (now {})", k.nr_queues, g.nr_queues));
    }
    if k.queue_depth != g.queue_depth {
        differs.push(format!("depth {} (now {})", k.queue_depth, g.queue_depth));
    }
    if k.max_io_bytes != g.max_io_bytes {
        differs.push(format!(
            "request size {} (now {})",
            k.max_io_bytes, g.max_io_bytes
        ));
    }
    if k.size_bytes != g.size_bytes {
        differs.push(format!(
            "size {} bytes (now {})",
            k.size_bytes, g.size_bytes
        ));
    }
    if k.logical_bs_shift != want.logical_bs_shift {
        differs.push(format!(
            "logical block {} (now {})",
            1u64 << k.logical_bs_shift.min(63),
            g.logical_block_bytes
        ));
    }
    let ro = sys::UBLK_ATTR_READ_ONLY;
    if k.attrs & ro != want.attrs & ro {
        differs.push("read-only flag".into());
    }
    if !differs.is_empty() {
        return Decision::Delete(format!("it has other {}", differs.join(", ")));
    }
    match u32::from(k.state) {
        sys::UBLK_S_DEV_QUIESCED if !pid_alive => Decision::Recover,
        sys::UBLK_S_DEV_LIVE | sys::UBLK_S_DEV_QUIESCED => Decision::Wait,
        sys::UBLK_S_DEV_DEAD => Decision::Delete("the kernel has stopped it".into()),
        other => Decision::Delete(format!("it is in state {other}")),
    }
}

/// True when process `pid` exists (and is not this one's zombie child, which never happens
/// for a ublk server).
pub(crate) fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reads the kernel's view of device `dev_id`; `None` when it does not exist.
pub(crate) fn inspect(dev_id: u32) -> Result<Option<(UblkCtrl, KernelDevice)>, UblkError> {
    if !Path::new(&format!("/sys/class/ublk-char/ublkc{dev_id}")).exists() {
        return Ok(None);
    }
    let id = i32::try_from(dev_id)
        .map_err(|_| UblkError::InvalidConfig(format!("device id {dev_id} is too large")))?;
    let ctrl = UblkCtrl::new_simple(id).map_err(|e| UblkError::kernel("opening a device", &e))?;
    let k = read_kernel(&ctrl)?;
    Ok(Some((ctrl, k)))
}

fn read_kernel(ctrl: &UblkCtrl) -> Result<KernelDevice, UblkError> {
    ctrl.read_dev_info()
        .map_err(|e| UblkError::kernel("reading the device's info", &e))?;
    let info = ctrl.dev_info();
    let mut p = sys::ublk_params {
        len: u32::try_from(std::mem::size_of::<sys::ublk_params>()).unwrap_or(u32::MAX),
        types: sys::UBLK_PARAM_TYPE_BASIC,
        ..Default::default()
    };
    ctrl.get_params(&mut p)
        .map_err(|e| UblkError::kernel("reading the device's parameters", &e))?;
    Ok(KernelDevice {
        state: info.state,
        flags: info.flags,
        pid: info.ublksrv_pid,
        nr_queues: info.nr_hw_queues,
        queue_depth: info.queue_depth,
        max_io_bytes: info.max_io_buf_bytes,
        size_bytes: p.basic.dev_sectors.saturating_mul(SECTOR_BYTES),
        logical_bs_shift: p.basic.logical_bs_shift,
        attrs: p.basic.attrs,
    })
}

/// Decides for device `dev_id` (waiting, bounded by [`QUIESCE_WAIT_MS`], while its old
/// process is still going away); `Ok(None)` when the device no longer exists.
pub(crate) fn settle(
    dev_id: u32,
    g: &Geometry,
    recovery: bool,
) -> Result<Option<Decision>, UblkError> {
    let Some((ctrl, mut k)) = inspect(dev_id)? else {
        return Ok(None);
    };
    let deadline = Instant::now() + Duration::from_millis(QUIESCE_WAIT_MS);
    loop {
        let d = decide(&k, g, recovery, pid_alive(k.pid));
        if d != Decision::Wait {
            return Ok(Some(d));
        }
        if Instant::now() >= deadline {
            return Ok(Some(Decision::Delete(format!(
                "the kernel did not quiesce it within {QUIESCE_WAIT_MS} ms (state {}, pid {})",
                k.state, k.pid
            ))));
        }
        std::thread::sleep(Duration::from_millis(QUIESCE_POLL_MS));
        k = read_kernel(&ctrl)?;
    }
}

/// Stops and deletes device `dev_id`, which no process serves (a missing device is fine).
pub fn delete_leftover(dev_id: u32) -> Result<(), UblkError> {
    let Some((ctrl, k)) = inspect(dev_id)? else {
        return Ok(());
    };
    if pid_alive(k.pid) && u32::from(k.state) == sys::UBLK_S_DEV_LIVE {
        return Err(UblkError::Record(format!(
            "device {dev_id} is still served by process {}: not deleting it",
            k.pid
        )));
    }
    if let Err(e) = ctrl.kill_dev() {
        tracing::debug!(
            "ublk: stop of leftover device {dev_id}: {}",
            describe_libublk(&e)
        );
    }
    ctrl.del_dev()
        .map_err(|e| UblkError::kernel("deleting a leftover device", &e))?;
    tracing::info!("ublk: leftover device {dev_id} deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::UblkParams;
    use pnfs_disk::DiskInfo;

    fn geometry() -> Geometry {
        let info = DiskInfo {
            size_bytes: 1 << 30,
            read_only: false,
            preferred_block_bytes: 4096,
            logical_block_bytes: 512,
            max_io_bytes: 1 << 20,
            multi_conn_safe: true,
        };
        Geometry::new(&info, &UblkParams::default(), 4096).unwrap()
    }

    fn state(s: u32) -> u16 {
        u16::try_from(s).unwrap()
    }

    fn quiesced(g: &Geometry) -> KernelDevice {
        let p = g.kernel_params().unwrap().basic;
        KernelDevice {
            state: state(sys::UBLK_S_DEV_QUIESCED),
            flags: RECOVERY_FLAGS,
            pid: 0,
            nr_queues: g.nr_queues,
            queue_depth: g.queue_depth,
            max_io_bytes: g.max_io_bytes,
            size_bytes: g.size_bytes,
            logical_bs_shift: p.logical_bs_shift,
            attrs: p.attrs,
        }
    }

    #[test]
    fn a_quiesced_device_of_the_same_shape_is_recovered() {
        let g = geometry();
        assert_eq!(decide(&quiesced(&g), &g, true, false), Decision::Recover);
    }

    #[test]
    fn recovery_off_or_a_device_without_it_is_deleted() {
        let g = geometry();
        let k = quiesced(&g);
        assert!(matches!(decide(&k, &g, false, false), Decision::Delete(_)));
        let plain = KernelDevice {
            flags: u64::from(sys::UBLK_F_USER_RECOVERY),
            ..k
        };
        let Decision::Delete(why) = decide(&plain, &g, true, false) else {
            panic!("a device without re-issue must not be recovered");
        };
        assert!(why.contains("without user recovery"), "{why}");
    }

    #[test]
    fn another_geometry_is_deleted_and_named() {
        let g = geometry();
        let k = KernelDevice {
            size_bytes: 2 << 30,
            queue_depth: 8,
            ..quiesced(&g)
        };
        let Decision::Delete(why) = decide(&k, &g, true, false) else {
            panic!("a resized device must not be recovered");
        };
        assert!(why.contains("size") && why.contains("depth 8"), "{why}");
    }

    #[test]
    fn a_live_or_still_served_device_is_waited_for_and_a_dead_one_deleted() {
        let g = geometry();
        let live = KernelDevice {
            state: state(sys::UBLK_S_DEV_LIVE),
            ..quiesced(&g)
        };
        assert_eq!(decide(&live, &g, true, false), Decision::Wait);
        assert_eq!(decide(&quiesced(&g), &g, true, true), Decision::Wait);
        let dead = KernelDevice {
            state: state(sys::UBLK_S_DEV_DEAD),
            ..quiesced(&g)
        };
        assert!(matches!(
            decide(&dead, &g, true, false),
            Decision::Delete(_)
        ));
    }

    #[test]
    fn records_round_trip_per_owner_and_foreign_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("ublk-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Registry::new(&dir, "pnfsgw:m:a");
        let b = Registry::new(&dir, "pnfsgw:m:b");
        assert_eq!(a.records().unwrap(), vec![], "no directory: no records");
        a.write(3, "vm1").unwrap();
        a.write(1, "vm2").unwrap();
        b.write(2, "vm1").unwrap();
        std::fs::write(dir.join("7"), "garbage\n").unwrap();
        std::fs::write(dir.join("notes"), "owner=pnfsgw:m:a\nname=x\n").unwrap();
        assert_eq!(
            a.records().unwrap(),
            vec![
                Record {
                    dev_id: 1,
                    name: "vm2".into()
                },
                Record {
                    dev_id: 3,
                    name: "vm1".into()
                }
            ]
        );
        assert_eq!(a.find("vm1").unwrap(), Some(3));
        assert_eq!(b.find("vm1").unwrap(), Some(2));
        a.remove(3).unwrap();
        a.remove(3).unwrap();
        assert_eq!(a.find("vm1").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn record_text_round_trips() {
        let t = format_record("pnfsgw:abc:/run/x.sock", "vm-1");
        assert_eq!(
            parse_record(&t),
            Some(("pnfsgw:abc:/run/x.sock".into(), "vm-1".into()))
        );
        assert_eq!(parse_record("name=x\n"), None);
        assert_eq!(parse_record("owner=a\nname=b\nextra=c\n"), None);
    }
}
