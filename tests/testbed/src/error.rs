//! The one error type of the test bed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in the test bed: a guest run that failed, a peer that did not
/// start, a missing tool or kernel, an I/O error on the host.
///
/// `Debug` prints the same text as `Display` so that a test returning
/// `Result<(), TestbedError>` shows a readable message (with the kernel log tail) on failure.
#[derive(thiserror::Error)]
pub enum TestbedError {
    /// No guest kernel of a usable version was found.
    #[error(
        "no guest kernel >= {min}: looked for /boot/vmlinuz-<version> with /lib/modules/<version>/modules.dep{found}; \
         run tests/setup.sh (installs linux-image-amd64 from bookworm-backports) or set PNFS_GUEST_KERNEL"
    )]
    KernelNotFound {
        /// The minimum version wanted, e.g. "6.12".
        min: String,
        /// What was found instead (empty or ", found: ...").
        found: String,
    },
    /// A host tool the test needs is not installed.
    #[error("required tool `{tool}` not found in PATH ({hint})")]
    ToolMissing {
        /// The executable name.
        tool: String,
        /// Which package provides it.
        hint: String,
    },
    /// A host I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the test bed was doing.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The guest script ended with a nonzero exit code.
    #[error("guest step {} failed with exit code {exit_code}{failed}\n{report}", report.step)]
    GuestFailed {
        /// The script's exit code.
        exit_code: i32,
        /// `": WHAT (at FILE:LINE ...)"` when the prelude recorded the failure, else empty.
        failed: String,
        /// Step, output and kernel log tails.
        report: Box<GuestReport>,
    },
    /// The guest did not finish in time; QEMU was killed.
    #[error(
        "guest TIMEOUT after {timeout:?} in step {}; qemu was killed (ran {ran_for:.1?})\n{report}",
        report.step
    )]
    GuestTimeout {
        /// The timeout that expired.
        timeout: Duration,
        /// How long QEMU ran until it was killed and reaped.
        ran_for: Duration,
        /// Step, output and kernel log tails.
        report: Box<GuestReport>,
    },
    /// QEMU ended without the guest reporting an exit code (boot failure, panic, crash).
    #[error("guest gave no exit code (in step {}): {detail}\n{report}", report.step)]
    GuestNoExitCode {
        /// How QEMU ended.
        detail: String,
        /// Step, output and kernel log tails.
        report: Box<GuestReport>,
    },
    /// A host peer (nfs-ganesha, nbdkit) did not start or did not become ready.
    #[error("{peer} did not start: {detail}\n--- last lines of its log ---\n{log_tail}")]
    PeerStart {
        /// Which peer.
        peer: &'static str,
        /// What went wrong.
        detail: String,
        /// The last lines of the peer's log.
        log_tail: String,
    },
    /// Invalid input given to the test bed (e.g. a bad environment variable name).
    #[error("invalid test bed input: {0}")]
    Invalid(String),
}

/// What the runner knows about a failed guest run.
#[derive(Debug, Clone)]
pub struct GuestReport {
    /// The step that was running, quoted (`"name"`), or `<before the first step>` (literally).
    pub step: String,
    /// The last lines the script printed.
    pub stdout_tail: String,
    /// The guest kernel log file on the host (kept for inspection).
    pub kernel_log: PathBuf,
    /// The last lines of the kernel log.
    pub kernel_log_tail: String,
    /// The last lines of QEMU's own error output (empty when it printed none).
    pub qemu_stderr: String,
}

impl fmt::Display for GuestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.qemu_stderr.trim().is_empty() {
            writeln!(f, "--- qemu stderr ---\n{}", self.qemu_stderr.trim_end())?;
        }
        writeln!(
            f,
            "--- last lines of the guest output ---\n{}",
            self.stdout_tail.trim_end()
        )?;
        write!(
            f,
            "--- last lines of the guest kernel log ({}) ---\n{}",
            self.kernel_log.display(),
            self.kernel_log_tail.trim_end()
        )
    }
}

impl fmt::Debug for TestbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TestbedError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| TestbedError::Io { what, source }
    }
}

/// Result with [`TestbedError`].
pub type Result<T, E = TestbedError> = std::result::Result<T, E>;
