//! ublk frontend: one `/dev/ublkbN` per configured file, on the `libublk` crate.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn demo<D: pnfs_disk::Disk>(disk: Arc<D>, rt: &tokio::runtime::Runtime)
//! # -> Result<(), pnfs_ublk::UblkError> {
//! use pnfs_ublk::{UblkDevice, UblkParams};
//! let dev = UblkDevice::start(disk, UblkParams::default(), rt.handle().clone())?;
//! println!("{}", dev.path().display()); // /dev/ublkb0
//! // ... on SIGTERM/SIGINT:
//! dev.stop()?;
//! # Ok(()) }
//! ```
//!
//! Structure:
//! - [`geometry`]: [`UblkParams`] + the disk's info → block sizes, request size, flags
//!   (pure).
//! - [`request`]: descriptor → Disk API call, validated once with `validate_request`;
//!   failures complete with `-errno` from `DiskError::errno` (pure, plus the async call).
//! - `queue`: one thread and one io_uring per queue, a local executor with a task per tag;
//!   requests run on the gateway's tokio runtime and come back through a oneshot channel
//!   plus an eventfd polled by the queue's io_uring (no busy waiting; see that module).
//! - `device`: [`UblkDevice`] — control thread, start, stats, stop and delete.
//!
//! Request mapping: READ → `Disk::read`, WRITE → `Disk::write` (FUA passed through),
//! FLUSH → `Disk::flush` (awaited before completion: durable + LAYOUTCOMMIT done),
//! DISCARD → `Disk::trim`, WRITE_ZEROES → `Disk::write_zeroes` (`may_unmap` unless the
//! kernel set NOUNMAP). Read-only disks are flagged read-only to the kernel.

mod device;
mod error;
pub mod geometry;
mod queue;
pub mod request;

pub use device::{
    DeviceState, UblkDevice, UblkStats, UblkStatus, START_TIMEOUT_SECS, STOP_TIMEOUT_SECS,
};
pub use error::{UblkError, UBLK_CONTROL_PATH};
pub use geometry::UblkParams;
