//! Page-aligned I/O buffers for `O_DIRECT`: they live in the Disk API crate
//! (`pnfs_disk::aligned`), so that a frontend can hand its own buffer to
//! `Disk::read_into` / `Disk::write_from` and the volume reads into or writes from it directly.

pub use pnfs_disk::aligned::{AlignedBuf, DIRECT_IO_ALIGN_BYTES};
