//! pNFS layout-type specific bodies.

pub mod block;
pub mod scsi;
