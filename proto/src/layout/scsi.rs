//! RFC 8154 SCSI layout: volumes with designators and PR keys, extents, layout update.
