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
//! - `device`: [`UblkDevice`] — control thread, start (or recover), stats, stop and delete,
//!   or hand over to the next process (`detach`).
//! - [`recovery`]: devices that outlive their process — the records of whose device is
//!   whose, and the rule that recovers or deletes a device left behind.
//! - `gate`: holds requests unanswered once a device is being handed over.
//!
//! Request mapping: READ → `Disk::read`, WRITE → `Disk::write` (FUA passed through),
//! FLUSH → `Disk::flush` (awaited before completion: durable + LAYOUTCOMMIT done),
//! DISCARD → `Disk::trim`, WRITE_ZEROES → `Disk::write_zeroes` (`may_unmap` unless the
//! kernel set NOUNMAP). Read-only disks are flagged read-only to the kernel.

mod device;
mod error;
mod gate;
pub mod geometry;
mod queue;
pub mod recovery;
pub mod request;

pub use device::{
    DeviceState, UblkDevice, UblkStats, UblkStatus, START_TIMEOUT_SECS, STOP_TIMEOUT_SECS,
};
pub use error::{UblkError, UBLK_CONTROL_PATH};
pub use geometry::UblkParams;
pub use recovery::{Registry, RECORD_DIR_DEFAULT};
