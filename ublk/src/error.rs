//! The one error type of this crate.

use thiserror::Error;

/// The path of the ublk control device the kernel's `ublk_drv` module creates.
pub const UBLK_CONTROL_PATH: &str = "/dev/ublk-control";

/// Everything that can go wrong creating, running or stopping a ublk device.
///
/// Request-level errors never show up here: they are completed to the kernel with `-errno`
/// (from [`pnfs_disk::DiskError::errno`]) and counted in
/// [`crate::UblkStats::errors`].
#[derive(Debug, Error)]
pub enum UblkError {
    /// `/dev/ublk-control` does not exist: the kernel has no ublk driver loaded.
    #[error(
        "ublk: {UBLK_CONTROL_PATH} not found: the kernel needs the ublk_drv module \
         (CONFIG_BLK_DEV_UBLK)"
    )]
    ControlMissing,
    /// The disk or the parameters cannot be expressed as a ublk device.
    #[error("ublk: invalid configuration: {0}")]
    InvalidConfig(String),
    /// A ublk control or queue operation failed in the kernel or in libublk.
    #[error("ublk: {op} failed: {detail}")]
    Kernel {
        /// What was being done.
        op: &'static str,
        /// The libublk error, with the errno spelled out where there is one.
        detail: String,
    },
    /// A thread could not be created, or one of ours died.
    #[error("ublk: thread {name}: {detail}")]
    Thread {
        /// Thread name.
        name: String,
        /// What happened.
        detail: String,
    },
    /// The device did not come up in time.
    #[error("ublk: the device did not start within {secs} s")]
    StartTimeout {
        /// The limit that passed.
        secs: u64,
    },
    /// The device stopped on its own (a queue failed); the reason is in the message.
    #[error("ublk: device failed: {0}")]
    Failed(String),
    /// The records of devices left for recovery could not be read or written, or a device
    /// left behind could not be dealt with.
    #[error("ublk: device records: {0}")]
    Record(String),
}

impl UblkError {
    /// Wraps a libublk error with what was being done.
    pub(crate) fn kernel(op: &'static str, err: &libublk::UblkError) -> Self {
        UblkError::Kernel {
            op,
            detail: describe_libublk(err),
        }
    }
}

/// libublk's own Display is terse ("other failure"): spell the errno out.
pub(crate) fn describe_libublk(err: &libublk::UblkError) -> String {
    match err {
        libublk::UblkError::OtherError(code) | libublk::UblkError::UringIOError(code) => {
            let io = std::io::Error::from_raw_os_error(code.saturating_abs());
            format!("{err} ({io})")
        }
        libublk::UblkError::IOError(io) => format!("{io}"),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_control_names_the_module_and_config() {
        let text = UblkError::ControlMissing.to_string();
        assert_eq!(
            text,
            "ublk: /dev/ublk-control not found: the kernel needs the ublk_drv module \
             (CONFIG_BLK_DEV_UBLK)"
        );
    }

    #[test]
    fn libublk_errno_is_spelled_out() {
        let e = UblkError::kernel("add device", &libublk::UblkError::OtherError(-libc::EBUSY));
        let text = e.to_string();
        assert!(text.contains("add device"), "{text}");
        assert!(text.contains("busy"), "{text}");
    }
}
