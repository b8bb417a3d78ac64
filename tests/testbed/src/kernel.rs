//! Finding the guest kernel and its modules on the host.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, TestbedError};

/// The oldest kernel with ublk_drv, nbd and the nfsd SCSI/block layouts (see docs/testbed.md).
pub const MIN_KERNEL: (u32, u32) = (6, 12);

/// Environment variable naming a kernel image to use instead of the newest one in /boot.
pub const KERNEL_ENV: &str = "PNFS_GUEST_KERNEL";

/// A guest kernel image and the module tree that belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestKernel {
    /// Release string, e.g. `6.12.95+deb12-amd64`.
    pub release: String,
    /// The bzImage, e.g. `/boot/vmlinuz-6.12.95+deb12-amd64`.
    pub image: PathBuf,
    /// `/lib/modules/<release>`.
    pub modules_dir: PathBuf,
}

/// Parses the leading `major.minor[.patch]` of a kernel release.
pub fn parse_release(release: &str) -> Option<(u32, u32, u32)> {
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|s| s.parse::<u32>().ok());
    let major = nums.next()??;
    let minor = nums.next()??;
    let patch = nums.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Finds the guest kernel: `$PNFS_GUEST_KERNEL` if set, else the newest `/boot/vmlinuz-*` of
/// version >= [`MIN_KERNEL`] whose `/lib/modules/<release>/modules.dep` exists.
pub fn find_guest_kernel() -> Result<GuestKernel> {
    if let Some(image) = std::env::var_os(KERNEL_ENV) {
        let image = PathBuf::from(image);
        let name = image
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let release = name.strip_prefix("vmlinuz-").ok_or_else(|| {
            TestbedError::Invalid(format!(
                "{KERNEL_ENV}={} is not named vmlinuz-<release>",
                image.display()
            ))
        })?;
        return kernel_at(Path::new("/"), release)
            .ok_or_else(|| not_found(format!(", found: {} without modules", image.display())));
    }
    find_in(Path::new("/"))
}

fn kernel_at(root: &Path, release: &str) -> Option<GuestKernel> {
    let image = root.join("boot").join(format!("vmlinuz-{release}"));
    let modules_dir = root.join("lib/modules").join(release);
    (image.is_file() && modules_dir.join("modules.dep").is_file()).then(|| GuestKernel {
        release: release.to_owned(),
        image,
        modules_dir,
    })
}

fn not_found(found: String) -> TestbedError {
    TestbedError::KernelNotFound {
        min: format!("{}.{}", MIN_KERNEL.0, MIN_KERNEL.1),
        found,
    }
}

/// [`find_guest_kernel`] below a different root (for tests).
pub(crate) fn find_in(root: &Path) -> Result<GuestKernel> {
    let boot = root.join("boot");
    let entries = fs::read_dir(&boot).map_err(TestbedError::io(format!(
        "list {} for the guest kernel",
        boot.display()
    )))?;
    let mut seen = Vec::new();
    let mut best: Option<((u32, u32, u32), GuestKernel)> = None;
    for entry in entries {
        let entry = entry.map_err(TestbedError::io(format!("list {}", boot.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(release) = name.strip_prefix("vmlinuz-") else {
            continue;
        };
        seen.push(release.to_owned());
        let Some(version) = parse_release(release) else {
            continue;
        };
        if (version.0, version.1) < MIN_KERNEL {
            continue;
        }
        let Some(kernel) = kernel_at(root, release) else {
            continue;
        };
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, kernel));
        }
    }
    best.map(|(_, k)| k).ok_or_else(|| {
        seen.sort();
        not_found(if seen.is_empty() {
            String::new()
        } else {
            format!(", found: {}", seen.join(", "))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::TempDir;

    #[test]
    fn parses_debian_releases() {
        assert_eq!(parse_release("6.12.95+deb12-amd64"), Some((6, 12, 95)));
        assert_eq!(parse_release("6.1.0-31-amd64"), Some((6, 1, 0)));
        assert_eq!(parse_release("7.0-rc1"), Some((7, 0, 0)));
        assert_eq!(parse_release("junk"), None);
    }

    fn fake_kernel(root: &Path, release: &str, with_modules: bool) {
        fs::create_dir_all(root.join("boot")).unwrap();
        fs::write(root.join("boot").join(format!("vmlinuz-{release}")), b"k").unwrap();
        if with_modules {
            let m = root.join("lib/modules").join(release);
            fs::create_dir_all(&m).unwrap();
            fs::write(m.join("modules.dep"), b"").unwrap();
        }
    }

    #[test]
    fn picks_the_newest_kernel_with_modules() {
        let dir = TempDir::new("kernel-test").unwrap();
        let root = dir.path();
        fake_kernel(root, "6.1.0-31-amd64", true);
        fake_kernel(root, "6.12.9-amd64", true);
        fake_kernel(root, "6.12.95+deb12-amd64", true);
        fake_kernel(root, "6.13.1-amd64", false);
        let k = find_in(root).unwrap();
        assert_eq!(k.release, "6.12.95+deb12-amd64");
    }

    #[test]
    fn names_what_is_missing() {
        let dir = TempDir::new("kernel-test").unwrap();
        fake_kernel(dir.path(), "6.1.0-31-amd64", true);
        let msg = find_in(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("no guest kernel >= 6.12"), "{msg}");
        assert!(msg.contains("6.1.0-31-amd64"), "{msg}");
    }
}
