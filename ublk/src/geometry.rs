//! From a [`DiskInfo`] and [`UblkParams`] to what the kernel is told (pure, no I/O).

use pnfs_disk::DiskInfo;

use crate::UblkError;

/// The most queues one device may have (the kernel's `UBLK_MAX_NR_QUEUES` is larger; this
/// bounds the threads one device costs).
pub const MAX_QUEUES: u16 = 64;
/// The deepest queue (the kernel's `UBLK_MAX_QUEUE_DEPTH`).
pub const MAX_QUEUE_DEPTH: u16 = 4096;
/// The largest request buffer libublk accepts.
pub const MAX_IO_BUF_BYTES: u32 = 32 * 1024 * 1024;
/// Bytes per kernel sector (the unit of every ublk offset and length).
pub const SECTOR_BYTES: u64 = 512;
/// The largest discard or write-zeroes request the kernel sends at once (it splits larger
/// ones): 1 GiB.
pub const MAX_DISCARD_BYTES: u64 = 1 << 30;

/// How a device is set up: queues, depth, request size cap, device id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UblkParams {
    /// Number of hardware queues (one thread and one io_uring each), 1..=[`MAX_QUEUES`].
    pub nr_queues: u16,
    /// Requests in flight per queue, 1..=[`MAX_QUEUE_DEPTH`].
    pub queue_depth: u16,
    /// Cap on one request's size in bytes (the device uses the smaller of this and the
    /// disk's `max_io_bytes`, rounded down to the page size); each queue holds
    /// `queue_depth` buffers of this size.
    pub max_io_bytes: u32,
    /// The device number to ask for (`/dev/ublkb<id>`); `None` lets the kernel choose.
    pub dev_id: Option<u32>,
    /// A short name for logs and libublk's run-time JSON file.
    pub name: String,
    /// Pin each queue thread to the CPUs that submit to its queue (libublk's
    /// `set_thread_affinity`). Off by default: the submitter and the queue thread then share
    /// one CPU and every request costs two context switches on it; unpinned, the scheduler
    /// runs the queue thread on another CPU. Measured in the 2-CPU test guest, 4 KiB random
    /// reads with 2 queues: 5.4k IOPS pinned, 26k unpinned (1 queue: 19k either way).
    pub pin_queue_threads: bool,
    /// Make the device survive its process (ublk user recovery with re-issue,
    /// `UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE`): when the process dies or hands
    /// the device over, `/dev/ublkbN` stays and its requests wait for the next process, which
    /// recovers it (see [`crate::UblkDevice::start_kept`]). Off by default.
    pub recovery: bool,
}

impl Default for UblkParams {
    /// Two queues of depth 64, 1 MiB requests, any device id.
    fn default() -> Self {
        Self {
            nr_queues: 2,
            queue_depth: 64,
            max_io_bytes: 1024 * 1024,
            dev_id: None,
            name: "pnfs".to_string(),
            pin_queue_threads: false,
            recovery: false,
        }
    }
}

/// What the kernel is told about the device, derived once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Device size in bytes (the disk size rounded down to the logical block size).
    pub size_bytes: u64,
    /// Logical block size (`info.logical_block_bytes`).
    pub logical_block_bytes: u32,
    /// Physical block size: the preferred block, at least the logical block and at most a
    /// page (the kernel's limit for the block shifts it accepts without complaint).
    pub physical_block_bytes: u32,
    /// Minimum and optimal I/O size hints: the disk's preferred block.
    pub io_opt_bytes: u32,
    /// Largest request in bytes (the per-tag buffer size).
    pub max_io_bytes: u32,
    /// Read-only device.
    pub read_only: bool,
    /// Queues.
    pub nr_queues: u16,
    /// Depth per queue.
    pub queue_depth: u16,
}

fn log2_exact(what: &str, v: u32) -> Result<u8, UblkError> {
    if v == 0 || !v.is_power_of_two() {
        return Err(UblkError::InvalidConfig(format!(
            "{what} of {v} bytes is not a power of two"
        )));
    }
    // trailing_zeros of a u32 is at most 31.
    u8::try_from(v.trailing_zeros()).map_err(|_| UblkError::InvalidConfig(what.to_string()))
}

impl Geometry {
    /// Checks `params` and derives the device shape from `info`; `page_bytes` is the host's
    /// page size.
    pub fn new(info: &DiskInfo, params: &UblkParams, page_bytes: u32) -> Result<Self, UblkError> {
        if params.nr_queues == 0 || params.nr_queues > MAX_QUEUES {
            return Err(UblkError::InvalidConfig(format!(
                "nr_queues {} is outside 1..={MAX_QUEUES}",
                params.nr_queues
            )));
        }
        if params.queue_depth == 0 || params.queue_depth > MAX_QUEUE_DEPTH {
            return Err(UblkError::InvalidConfig(format!(
                "queue_depth {} is outside 1..={MAX_QUEUE_DEPTH}",
                params.queue_depth
            )));
        }
        let logical = info.logical_block_bytes;
        log2_exact("logical block size", logical)?;
        if logical < 512 || logical > page_bytes {
            return Err(UblkError::InvalidConfig(format!(
                "logical block size {logical} is outside 512..={page_bytes} (ublk's limit)"
            )));
        }
        let preferred = info.preferred_block_bytes.max(logical);
        log2_exact("preferred block size", preferred)?;
        let physical = preferred.min(page_bytes);
        let size_bytes = info.size_bytes - info.size_bytes % u64::from(logical);
        if size_bytes == 0 {
            return Err(UblkError::InvalidConfig(format!(
                "disk of {} bytes is smaller than one {logical}-byte block",
                info.size_bytes
            )));
        }
        let cap = info
            .max_io_bytes
            .min(params.max_io_bytes)
            .min(MAX_IO_BUF_BYTES);
        let max_io_bytes = cap - cap % page_bytes;
        if max_io_bytes == 0 {
            return Err(UblkError::InvalidConfig(format!(
                "largest request of {cap} bytes (disk {} / configured {}) is below one \
                 {page_bytes}-byte page",
                info.max_io_bytes, params.max_io_bytes
            )));
        }
        Ok(Self {
            size_bytes,
            logical_block_bytes: logical,
            physical_block_bytes: physical,
            io_opt_bytes: preferred,
            max_io_bytes,
            read_only: info.read_only,
            nr_queues: params.nr_queues,
            queue_depth: params.queue_depth,
        })
    }

    /// The parameter block for `UBLK_CMD_SET_PARAMS`.
    pub fn kernel_params(&self) -> Result<libublk::sys::ublk_params, UblkError> {
        use libublk::sys;
        let shift = |what, v| log2_exact(what, v);
        let sectors = |bytes: u64| -> Result<u32, UblkError> {
            u32::try_from(bytes / SECTOR_BYTES)
                .map_err(|_| UblkError::InvalidConfig(format!("{bytes} bytes overflow sectors")))
        };
        let mut attrs = 0;
        let mut types = sys::UBLK_PARAM_TYPE_BASIC;
        let mut discard = sys::ublk_param_discard::default();
        if self.read_only {
            attrs |= sys::UBLK_ATTR_READ_ONLY;
        } else {
            // A volatile cache makes the kernel send FLUSH; FUA passes through.
            attrs |= sys::UBLK_ATTR_VOLATILE_CACHE | sys::UBLK_ATTR_FUA;
            types |= sys::UBLK_PARAM_TYPE_DISCARD;
            discard = sys::ublk_param_discard {
                discard_alignment: 0,
                discard_granularity: self.physical_block_bytes,
                max_discard_sectors: sectors(MAX_DISCARD_BYTES)?,
                max_write_zeroes_sectors: sectors(MAX_DISCARD_BYTES)?,
                max_discard_segments: 1,
                reserved0: 0,
            };
        }
        Ok(sys::ublk_params {
            len: u32::try_from(std::mem::size_of::<sys::ublk_params>())
                .map_err(|_| UblkError::InvalidConfig("params size".into()))?,
            types,
            basic: sys::ublk_param_basic {
                attrs,
                logical_bs_shift: shift("logical block size", self.logical_block_bytes)?,
                physical_bs_shift: shift("physical block size", self.physical_block_bytes)?,
                io_opt_shift: shift("optimal I/O size", self.io_opt_bytes)?,
                io_min_shift: shift("optimal I/O size", self.io_opt_bytes)?,
                max_sectors: sectors(u64::from(self.max_io_bytes))?,
                dev_sectors: self.size_bytes / SECTOR_BYTES,
                ..Default::default()
            },
            discard,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> DiskInfo {
        DiskInfo {
            size_bytes: 1 << 30,
            logical_block_bytes: 512,
            preferred_block_bytes: 4096,
            max_io_bytes: 32 << 20,
            read_only: false,
            multi_conn_safe: true,
        }
    }

    #[test]
    fn writable_disk_gets_flush_fua_discard_and_sizes() {
        let g = Geometry::new(&info(), &UblkParams::default(), 4096).unwrap();
        assert_eq!(g.max_io_bytes, 1 << 20);
        let p = g.kernel_params().unwrap();
        assert_eq!(p.basic.logical_bs_shift, 9);
        assert_eq!(p.basic.physical_bs_shift, 12);
        assert_eq!(p.basic.max_sectors, 2048);
        assert_eq!(p.basic.dev_sectors, (1 << 30) / 512);
        let want = libublk::sys::UBLK_ATTR_VOLATILE_CACHE | libublk::sys::UBLK_ATTR_FUA;
        assert_eq!(p.basic.attrs, want);
        assert_ne!(p.types & libublk::sys::UBLK_PARAM_TYPE_DISCARD, 0);
        assert_eq!(p.discard.max_discard_segments, 1);
        assert_eq!(p.discard.discard_granularity, 4096);
    }

    #[test]
    fn read_only_disk_is_flagged_and_gets_no_discard() {
        let mut i = info();
        i.read_only = true;
        let p = Geometry::new(&i, &UblkParams::default(), 4096)
            .unwrap()
            .kernel_params()
            .unwrap();
        assert_eq!(p.basic.attrs, libublk::sys::UBLK_ATTR_READ_ONLY);
        assert_eq!(p.types & libublk::sys::UBLK_PARAM_TYPE_DISCARD, 0);
    }

    #[test]
    fn large_server_blocks_clamp_physical_but_keep_the_hint() {
        let mut i = info();
        i.preferred_block_bytes = 1 << 20;
        i.max_io_bytes = 3 * 4096 + 100;
        let g = Geometry::new(&i, &UblkParams::default(), 4096).unwrap();
        assert_eq!(g.physical_block_bytes, 4096);
        assert_eq!(g.io_opt_bytes, 1 << 20);
        assert_eq!(g.max_io_bytes, 3 * 4096, "rounded down to whole pages");
    }

    #[test]
    fn odd_sizes_and_bad_params_are_refused_or_rounded() {
        let mut i = info();
        i.size_bytes = 4096 * 10 + 511;
        assert_eq!(
            Geometry::new(&i, &UblkParams::default(), 4096)
                .unwrap()
                .size_bytes,
            40960
        );
        let mut i = info();
        i.logical_block_bytes = 8192;
        assert!(Geometry::new(&i, &UblkParams::default(), 4096).is_err());
        let mut i = info();
        i.preferred_block_bytes = 3000;
        assert!(Geometry::new(&i, &UblkParams::default(), 4096).is_err());
        let mut i = info();
        i.max_io_bytes = 2048;
        assert!(Geometry::new(&i, &UblkParams::default(), 4096).is_err());
        let p = UblkParams {
            nr_queues: 0,
            ..UblkParams::default()
        };
        assert!(Geometry::new(&info(), &p, 4096).is_err());
        let p = UblkParams {
            queue_depth: 5000,
            ..UblkParams::default()
        };
        assert!(Geometry::new(&info(), &p, 4096).is_err());
    }
}
