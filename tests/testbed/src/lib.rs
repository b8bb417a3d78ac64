//! Test bed: a QEMU guest runner and real host peers for end-to-end tests.
//!
//! # The guest
//!
//! The host kernel has no nfsd, NFS client, nbd or ublk, so tests that need them run in a QEMU
//! guest under TCG: [`GuestRunner`] boots the newest `/boot/vmlinuz-6.12+` with a tiny cached
//! initramfs that mounts the host's `/` over 9p (read-only, under a tmpfs overlay: the whole
//! tree is writable in the guest and nothing reaches the host), then runs a bash script as
//! root. Host binaries (e.g. `target/debug/pnfsgw`) run in the guest at the same path.
//!
//! - Output is streamed live (`[guest NAME  12.3s] ...` lines; `cargo test -- --nocapture`
//!   shows them as they come) and returned in [`GuestOutcome::stdout`].
//! - Files the script leaves in `/out` appear in [`GuestOutcome::out_dir`].
//! - The script runs under `set -eEo pipefail`. `step "name"` names the step that runs: a
//!   failure or a timeout names it, and [`GuestOutcome::steps`] times each one. On any failure
//!   the error quotes the last [`guest::LOG_TAIL_LINES`] lines of the guest kernel log.
//! - `tests/guest/lib.sh` is sourced first: `start_nfsd_pnfs`, `mount_kernel_client`,
//!   `nfs_op_count`, `make_xfs_volume`, `require_module`, `wait_for`, ... (see that file).
//! - Only one guest runs at a time on the machine (an `flock` on
//!   [`guest::guest_lock_path`]); parallel tests queue. The timeout starts once the lock is held.
//! - A boot costs about 5 s before the script starts and code runs 5-10x slower than on the
//!   host: batch many checks into one boot with steps, and keep data in MiB.
//!
//! ```no_run
//! use std::time::Duration;
//! use pnfs_testbed::{require, GuestRunner, GuestScript};
//!
//! let Some(runner) = require(GuestRunner::new()) else { return }; // SKIP/fail if no kernel
//! let outcome = runner
//!     .run(
//!         &GuestScript::new(
//!             r#"
//!             step "nfsd pnfs export"
//!             start_nfsd_pnfs
//!             step "kernel client"
//!             mount_kernel_client
//!             echo hello > $PNFS_CLIENT_MNT/f
//!             nfs_op_count LAYOUTGET > $OUT/layoutgets
//!             "#,
//!         )
//!         .name("example")
//!         .timeout(Duration::from_secs(120)),
//!     )
//!     .expect("guest run"); // the error names the step and has the kernel log tail
//! let layoutgets = std::fs::read_to_string(outcome.out_file("layoutgets")).unwrap();
//! assert!(layoutgets.trim().parse::<u64>().unwrap() > 0);
//! ```
//!
//! # Host peers
//!
//! [`Ganesha`] (nfs-ganesha, NFSv4.1, on 127.0.0.1 at a free port) and [`Nbdkit`] (a file
//! served over NBD) run on the host; both are killed when their handle is dropped.
//!
//! # Missing prerequisites
//!
//! [`require`] and [`require_tool`] turn a missing tool or kernel into a loud SKIP outside CI
//! and into a failure naming it when `CI` is set ([`ci_strict`]).

mod error;
pub mod guest;
pub mod initramfs;
pub mod kernel;
pub mod peers;
pub mod pki;
mod tools;
pub mod util;

pub use error::{GuestReport, Result, TestbedError};
pub use guest::{GuestOutcome, GuestRunner, GuestScript, StepTiming};
pub use kernel::{find_guest_kernel, GuestKernel};
pub use peers::{free_port, Ganesha, GaneshaOptions, Nbdkit};
pub use pki::TestPki;
pub use tools::{ci_strict, find_tool, require, require_tool, skip};
