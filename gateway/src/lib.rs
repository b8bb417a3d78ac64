//! The pnfs-gateway core: a userspace NFSv4.1 pNFS block-layout client that turns block
//! requests on a file into direct I/O on the shared volume.
//!
//! - [`client`]: the NFSv4.1 client (transport, session and slot table, backchannel, lease,
//!   recovery). It implements [`mds_api::MetadataServer`].
//! - [`pnfs`]: layouts and extents, volume resolution, the I/O engine, fencing, and the
//!   [`disk::Disk`] implementation for one file.
//! - [`mds_api`]: the boundary between the two.
//! - [`stats`]: counters the CLI prints.

pub mod client;
/// The Disk API (crate `pnfs-disk`), re-exported so that `pnfs_gateway::disk` keeps naming it.
pub use pnfs_disk as disk;
pub mod mds_api;
pub mod pnfs;
pub mod stats;
pub mod sync;
