//! Required tools and kernel features: a failure in CI, a loud skip elsewhere.

use std::path::PathBuf;

use crate::error::{Result, TestbedError};

/// Host tools the test bed knows, with the Debian package that provides each.
const TOOL_PACKAGES: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86 (bookworm-backports)"),
    ("qemu-img", "qemu-utils"),
    ("qemu-io", "qemu-utils"),
    ("ganesha.nfsd", "nfs-ganesha nfs-ganesha-vfs"),
    ("nbdkit", "nbdkit"),
    ("nbdinfo", "libnbd-bin"),
    ("nbdcopy", "libnbd-bin"),
    ("nbdsh", "libnbd-bin"),
    ("fio", "fio"),
    ("tshark", "tshark"),
    ("xz", "xz-utils"),
    ("mkfs.xfs", "xfsprogs"),
    ("mkfs.ext4", "e2fsprogs"),
    ("nbd-client", "nbd-client"),
    ("rpcinfo", "rpcbind"),
    ("promtool", "prometheus"),
    ("curl", "curl"),
    ("openssl", "openssl"),
];

/// True when the environment variable `CI` is set (and not empty, `0` or `false`): then a
/// missing tool or kernel feature must fail the test instead of skipping it.
pub fn ci_strict() -> bool {
    match std::env::var("CI") {
        Ok(v) => !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")),
        Err(_) => false,
    }
}

/// Looks `name` up in `PATH` (plus the sbin directories, which a non-root PATH may lack).
pub fn find_tool(name: &str, hint: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| TestbedError::ToolMissing {
            tool: name.to_owned(),
            hint: hint.to_owned(),
        })
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The package hint for a known tool.
fn hint_for(name: &str) -> String {
    TOOL_PACKAGES
        .iter()
        .find(|(tool, _)| *tool == name)
        .map(|(_, pkg)| format!("apt-get install {pkg}, or run tests/setup.sh"))
        .unwrap_or_else(|| "run tests/setup.sh".to_owned())
}

/// Finds a required host tool. When it is missing: panics in CI (see [`ci_strict`]) naming the
/// tool, otherwise prints a loud SKIP line and returns `None` (the test should return).
///
/// ```no_run
/// let Some(nbdinfo) = pnfs_testbed::require_tool("nbdinfo") else { return };
/// # let _ = nbdinfo;
/// ```
pub fn require_tool(name: &str) -> Option<PathBuf> {
    require(find_tool(name, &hint_for(name)))
}

/// Unwraps a test bed setup result. A missing tool or kernel ([`TestbedError::ToolMissing`],
/// [`TestbedError::KernelNotFound`]) fails the test in CI and is a loud SKIP elsewhere
/// (`None`); every other error panics, so real failures are never turned into skips.
///
/// ```no_run
/// use pnfs_testbed::{require, GuestRunner};
/// let Some(runner) = require(GuestRunner::new()) else { return };
/// # let _ = runner;
/// ```
pub fn require<T>(result: Result<T>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e @ (TestbedError::ToolMissing { .. } | TestbedError::KernelNotFound { .. })) => {
            skip(&e.to_string());
            None
        }
        Err(e) => panic!("test bed setup failed: {e}"),
    }
}

/// Reports a missing prerequisite: panics in CI, prints a loud SKIP message otherwise.
pub fn skip(reason: &str) {
    if ci_strict() {
        panic!("CI is set, so a missing prerequisite is a failure: {reason}");
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    eprintln!("\n!!!!!!!! SKIP {test}: {reason}\n!!!!!!!! (set CI=1 to make this a failure)\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_names_missing_tools() {
        assert!(find_tool("sh", "").is_ok());
        let err = find_tool("pnfs-no-such-tool", "apt-get install nothing").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("pnfs-no-such-tool"), "{msg}");
        assert!(msg.contains("apt-get install nothing"), "{msg}");
    }

    #[test]
    fn known_tools_have_package_hints() {
        assert!(hint_for("nbdinfo").contains("libnbd-bin"));
        assert!(hint_for("unknown").contains("tests/setup.sh"));
    }
}
