//! The install step (`tests/setup.sh`) on a simulated fresh machine: an empty dpkg database
//! (`dpkg-query --admindir`) stands for a machine with none of our packages, a scratch apt
//! directory takes the sources entry it writes, and a stub `apt-get` first on `PATH` fails the
//! way a broken mirror or a full disk would. Every machine the project ran on had the packages,
//! so without this nothing would notice the script dying silently on a new one (it did: the
//! `dpkg-query` status under `set -e`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pnfs_testbed::util::TempDir;

/// Every package the script must name on a machine that has none (kept in step with
/// `BOOKWORM_PKGS` and `BACKPORTS_PKGS` in tests/setup.sh: a package added there and not
/// here, or the other way round, fails `dry_run_names_every_package_of_an_empty_machine`).
const EXPECTED_PACKAGES: &[&str] = &[
    "libclang-dev",
    "libnbd-bin",
    "nbdkit",
    "fio",
    "nfs-ganesha",
    "nfs-ganesha-vfs",
    "xfsprogs",
    "e2fsprogs",
    "nfs-kernel-server",
    "nfs-common",
    "nbd-client",
    "busybox-static",
    "kmod",
    "cpio",
    "xz-utils",
    "iproute2",
    "tshark",
    "python3-libnbd",
    "prometheus",
    "curl",
    "openssl",
    "qemu-system-x86",
    "qemu-utils",
    "linux-image-amd64",
];

/// A scratch "machine": an empty dpkg database, an apt directory with a bookworm
/// debian.sources, and a bin directory for stubs.
struct FreshMachine {
    dir: TempDir,
}

impl FreshMachine {
    fn new() -> FreshMachine {
        let dir = TempDir::new("setup-script").expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("dpkg")).unwrap();
        std::fs::write(root.join("dpkg/status"), "").unwrap();
        std::fs::create_dir_all(root.join("apt/sources.list.d")).unwrap();
        std::fs::write(
            root.join("apt/sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        FreshMachine { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Puts an executable shell script named `name` first on the script's PATH.
    fn stub(&self, name: &str, body: &str) {
        let path = self.root().join("bin").join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.root().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("bash")
            .arg(setup_script())
            .args(args)
            .env("PATH", path)
            .env("PNFS_DPKG_ADMINDIR", self.root().join("dpkg"))
            .env("PNFS_APT_DIR", self.root().join("apt"))
            .output()
            .expect("run tests/setup.sh")
    }
}

fn setup_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../setup.sh")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The line of `out` that starts with `prefix`, split into package names.
fn listed(out: &str, prefix: &str) -> Vec<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn dry_run_names_every_package_of_an_empty_machine() {
    let m = FreshMachine::new();
    let o = m.run(&["--dry-run"]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let mut named = listed(&stdout, "missing from bookworm: ");
    named.extend(listed(&stdout, "missing from bookworm-backports: "));
    let mut expected: Vec<String> = EXPECTED_PACKAGES.iter().map(|s| s.to_string()).collect();
    named.sort();
    expected.sort();
    assert_eq!(named, expected, "{all}");
    assert!(
        stdout.contains("bookworm-backports: would write"),
        "the backports source is missing and must be written: {all}"
    );
}

#[test]
fn a_failing_apt_update_names_its_step() {
    if !is_root() {
        pnfs_testbed::skip("the install path runs only as root (the script re-runs with sudo)");
        return;
    }
    let m = FreshMachine::new();
    m.stub("apt-get", "echo \"stub apt-get: $*\" >&2; exit 100");
    let o = m.run(&[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(100), "{all}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    for p in EXPECTED_PACKAGES {
        assert!(stderr.contains(p), "{p} not named before installing: {all}");
    }
    assert!(
        stderr.contains("setup: ERROR: step \"apt-get update\" failed")
            && stderr.contains("exited with status 100"),
        "{all}"
    );
    // The sources entry was written from the machine's own URIs, not from a name in the repo.
    let written = std::fs::read_to_string(
        m.root()
            .join("apt/sources.list.d/bookworm-backports.sources"),
    )
    .expect("bookworm-backports.sources written");
    assert!(
        written.contains("URIs: http://mirror.invalid/debian"),
        "{written}"
    );
    assert!(written.contains("Suites: bookworm-backports"), "{written}");
}

#[test]
fn a_failing_install_names_its_step_and_packages() {
    if !is_root() {
        pnfs_testbed::skip("the install path runs only as root (the script re-runs with sudo)");
        return;
    }
    let m = FreshMachine::new();
    m.stub(
        "apt-get",
        "case \"$1\" in update) exit 0;; *) echo \"stub apt-get: $*\" >&2; exit 100;; esac",
    );
    let o = m.run(&[]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(100), "{all}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "setup: ERROR: step \"installing qemu-system-x86 qemu-utils linux-image-amd64 from \
             bookworm-backports\" failed"
        ),
        "{all}"
    );
}

#[test]
fn dev_rejects_an_unknown_command_with_usage() {
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dev");
    let o = Command::new(&dev)
        .arg("no-such-command")
        .output()
        .expect("run ./dev");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage: ./dev"));
}
