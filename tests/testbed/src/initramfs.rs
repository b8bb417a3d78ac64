//! The guest's tiny initramfs: static busybox, the 9p and overlay modules, and the stage-1 init.
//!
//! Built in memory as a `newc` cpio archive (no compression: the kernel reads it as is),
//! cached under the temp dir by a key over every input (init script, kernel release, busybox
//! and module file sizes and mtimes) and rebuilt when any of them changes.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use crate::error::{Result, TestbedError};
use crate::kernel::GuestKernel;
use crate::util::StableHash;

/// The stage-1 init script (runs in the initramfs as PID 1).
pub const INIT_SCRIPT: &str = include_str!("guest/init.sh");

/// Modules the initramfs loads, by name; their dependencies are added from `modules.dep`.
pub const INITRAMFS_MODULES: &[&str] = &["9pnet_virtio", "9p", "overlay"];

/// Where the static busybox comes from (Debian's busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// Bumped when the archive layout changes, to invalidate old caches.
const LAYOUT_VERSION: &[u8] = b"pnfs-testbed-initramfs-1";

/// Limit on the dependency depth when resolving modules (modules.dep has no cycles; be safe).
const MAX_MODULE_DEPTH: usize = 16;

/// Returns the path of an up-to-date initramfs for `kernel`, building it if needed.
pub fn ensure_initramfs(kernel: &GuestKernel) -> Result<PathBuf> {
    ensure_initramfs_with(kernel, INIT_SCRIPT, INITRAMFS_MODULES)
}

/// An initramfs like [`ensure_initramfs`]'s (static busybox at `/bin/busybox`, the modules
/// in load order under `/modules` with their names in `/modules/order`) but with another
/// `/init` and other modules: for guests that must run without the 9p host root, e.g. a VM
/// that live-migrates (a mounted virtio-9p device blocks migration). Cached the same way.
pub fn ensure_initramfs_with(
    kernel: &GuestKernel,
    init_script: &str,
    module_names: &[&str],
) -> Result<PathBuf> {
    let modules = resolve_modules(&kernel.modules_dir, module_names)?;
    let busybox = Path::new(BUSYBOX);
    let mut key = StableHash::new();
    key.update(LAYOUT_VERSION);
    key.update(init_script.as_bytes());
    key.update(kernel.release.as_bytes());
    for file in std::iter::once(busybox.to_path_buf()).chain(modules.iter().cloned()) {
        hash_file_identity(&mut key, &file)?;
    }
    let cache_dir = std::env::temp_dir().join("pnfs-testbed-cache");
    fs::create_dir_all(&cache_dir)
        .map_err(TestbedError::io(format!("create {}", cache_dir.display())))?;
    let path = cache_dir.join(format!("initramfs-{:016x}.cpio", key.finish()));
    if path.is_file() {
        return Ok(path);
    }
    let archive = build(busybox, init_script, &modules)?;
    // Write under a unique name, then rename: concurrent builders never see a partial file.
    let tmp = cache_dir.join(format!(
        "initramfs-{:016x}.{}.tmp",
        key.finish(),
        std::process::id()
    ));
    fs::write(&tmp, &archive).map_err(TestbedError::io(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, &path).map_err(TestbedError::io(format!("rename to {}", path.display())))?;
    Ok(path)
}

/// Modules the guest tests load often, decompressed once on the host (with their
/// dependencies) so the guest kernel need not decompress them under emulation each boot.
pub const DECOMPRESSED_MODULES: &[&str] = &[
    "loop",
    "xfs",
    "nfsd",
    "nfsv4",
    "blocklayoutdriver",
    "rpcsec_gss_krb5",
    "ublk_drv",
    "nbd",
    "crc32c_generic",
    "crc32c_intel",
];

/// Returns a directory that mirrors `<modules_dir>/kernel` for [`DECOMPRESSED_MODULES`]:
/// same relative paths and names (`.ko.xz`), decompressed contents (kmod detects compression
/// by magic number, not by name). The guest overlays it on `/lib/modules/<release>/kernel`.
/// Cached by a key over the module files; built under a temporary name, then renamed.
pub fn ensure_module_cache(kernel: &GuestKernel) -> Result<PathBuf> {
    let modules = resolve_modules(&kernel.modules_dir, DECOMPRESSED_MODULES)?;
    let mut key = StableHash::new();
    key.update(LAYOUT_VERSION);
    key.update(kernel.release.as_bytes());
    for file in &modules {
        hash_file_identity(&mut key, file)?;
    }
    let cache_dir = std::env::temp_dir().join("pnfs-testbed-cache");
    let dir = cache_dir.join(format!("modules-{:016x}", key.finish()));
    if dir.is_dir() {
        return Ok(dir);
    }
    let tmp = cache_dir.join(format!(
        "modules-{:016x}.{}.tmp",
        key.finish(),
        std::process::id()
    ));
    let kernel_dir = kernel.modules_dir.join("kernel");
    for module in &modules {
        let rel = module.strip_prefix(&kernel_dir).map_err(|_| {
            TestbedError::Invalid(format!(
                "module {} is not under {}",
                module.display(),
                kernel_dir.display()
            ))
        })?;
        let dest = tmp.join(rel);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(TestbedError::io(format!("create {}", parent.display())))?;
        }
        fs::write(&dest, read_module(module)?)
            .map_err(TestbedError::io(format!("write {}", dest.display())))?;
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process built the same cache first: use theirs.
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(TestbedError::Io {
            what: format!("rename {} to {}", tmp.display(), dir.display()),
            source: e,
        }),
    }
}

fn hash_file_identity(key: &mut StableHash, file: &Path) -> Result<()> {
    let meta = fs::metadata(file).map_err(TestbedError::io(format!("stat {}", file.display())))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    key.update(file.as_os_str().as_encoded_bytes());
    key.update(&meta.len().to_le_bytes());
    key.update(&mtime.to_le_bytes());
    Ok(())
}

/// Resolves `names` and their dependencies through `modules.dep`, in load order
/// (dependencies first, each module once).
pub fn resolve_modules(modules_dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>> {
    let dep_path = modules_dir.join("modules.dep");
    let text = fs::read_to_string(&dep_path)
        .map_err(TestbedError::io(format!("read {}", dep_path.display())))?;
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    let mut by_name: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let Some((module, rest)) = line.split_once(':') else {
            continue;
        };
        by_name.insert(module_name(module), module.to_owned());
        deps.insert(
            module.to_owned(),
            rest.split_whitespace().map(str::to_owned).collect(),
        );
    }
    let mut order: Vec<String> = Vec::new();
    for name in names {
        let module = by_name.get(*name).ok_or_else(|| {
            TestbedError::Invalid(format!(
                "module {name} not found in {} (is it built in or missing from this kernel?)",
                dep_path.display()
            ))
        })?;
        add_with_deps(module, &deps, &mut order, 0)?;
    }
    Ok(order.iter().map(|m| modules_dir.join(m)).collect())
}

fn add_with_deps(
    module: &str,
    deps: &HashMap<String, Vec<String>>,
    order: &mut Vec<String>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_MODULE_DEPTH {
        return Err(TestbedError::Invalid(format!(
            "module dependencies deeper than {MAX_MODULE_DEPTH} at {module}"
        )));
    }
    if order.iter().any(|m| m == module) {
        return Ok(());
    }
    // modules.dep lists the dependencies so that the last one must be loaded first.
    for dep in deps.get(module).into_iter().flatten().rev() {
        add_with_deps(dep, deps, order, depth + 1)?;
    }
    order.push(module.to_owned());
    Ok(())
}

/// `kernel/fs/9p/9p.ko.xz` -> `9p`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let base = file.split(".ko").next().unwrap_or(file);
    base.replace('-', "_")
}

/// Reads a module file, decompressing `.ko.xz` / `.ko.zst` / `.ko.gz` with the host tools
/// (busybox insmod only loads plain modules).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some(("xz", "xz-utils"))
    } else if name.ends_with(".zst") {
        Some(("zstd", "zstd"))
    } else if name.ends_with(".gz") {
        Some(("gzip", "gzip"))
    } else {
        None
    };
    let Some((tool, package)) = tool else {
        return fs::read(path).map_err(TestbedError::io(format!("read {}", path.display())));
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TestbedError::ToolMissing {
                tool: tool.to_owned(),
                hint: format!("apt-get install {package}"),
            },
            _ => TestbedError::Io {
                what: format!("run {tool} -dc {}", path.display()),
                source: e,
            },
        })?;
    if !out.status.success() {
        return Err(TestbedError::Invalid(format!(
            "{tool} -dc {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

fn build(busybox: &Path, init_script: &str, modules: &[PathBuf]) -> Result<Vec<u8>> {
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "modules", "proc", "sys"] {
        cpio.dir(dir);
    }
    // The kernel opens /dev/console for init's stdio before anything is mounted.
    cpio.char_dev("dev/console", 0o600, 5, 1);
    let bb = fs::read(busybox).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TestbedError::ToolMissing {
            tool: BUSYBOX.to_owned(),
            hint: "apt-get install busybox-static".to_owned(),
        },
        _ => TestbedError::Io {
            what: format!("read {}", busybox.display()),
            source: e,
        },
    })?;
    cpio.file("bin/busybox", 0o755, &bb);
    cpio.file("init", 0o755, init_script.as_bytes());
    let mut order = String::new();
    for module in modules {
        let name = module_file_name(module);
        cpio.file(&format!("modules/{name}"), 0o644, &read_module(module)?);
        order.push_str(&name);
        order.push('\n');
    }
    cpio.file("modules/order", 0o644, order.as_bytes());
    Ok(cpio.finish())
}

/// `/lib/.../9p.ko.xz` -> `9p.ko`.
fn module_file_name(path: &Path) -> String {
    format!(
        "{}.ko",
        module_name(&path.file_name().unwrap_or_default().to_string_lossy())
    )
}

/// A minimal writer for the `newc` cpio format (what the kernel unpacks as initramfs).
#[derive(Debug, Default)]
struct Cpio {
    buf: Vec<u8>,
    next_ino: u32,
}

impl Cpio {
    const S_IFDIR: u32 = 0o040_000;
    const S_IFREG: u32 = 0o100_000;
    const S_IFCHR: u32 = 0o020_000;

    fn dir(&mut self, name: &str) {
        self.entry(name, Self::S_IFDIR | 0o755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, Self::S_IFREG | perm, (0, 0), data);
    }

    fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, Self::S_IFCHR | perm, (major, minor), &[]);
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.next_ino += 1;
        let name_size = name.len() + 1;
        // Every field is 8 hex digits; the archive members here are far below 4 GiB.
        let file_size = u32::try_from(data.len()).expect("initramfs member larger than 4 GiB");
        let name_size_u32 = u32::try_from(name_size).expect("cpio name longer than 4 GiB");
        let nlink = if mode & Self::S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            self.next_ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, the archive is reproducible
            file_size,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name_size_u32,
            0, // check
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::TempDir;

    #[test]
    fn module_names_strip_path_and_compression() {
        assert_eq!(module_name("kernel/fs/9p/9p.ko.xz"), "9p");
        assert_eq!(module_name("kernel/net/9p/9pnet_virtio.ko"), "9pnet_virtio");
        assert_eq!(module_name("kernel/x/foo-bar.ko.zst"), "foo_bar");
    }

    #[test]
    fn resolves_dependencies_first_once() {
        let dir = TempDir::new("modules-test").unwrap();
        fs::write(
            dir.path().join("modules.dep"),
            "kernel/fs/netfs/netfs.ko.xz:\n\
             kernel/net/9p/9pnet.ko.xz: kernel/fs/netfs/netfs.ko.xz\n\
             kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n\
             kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n\
             kernel/fs/overlayfs/overlay.ko.xz:\n",
        )
        .unwrap();
        let order = resolve_modules(dir.path(), INITRAMFS_MODULES).unwrap();
        let names: Vec<String> = order.iter().map(|p| module_file_name(p)).collect();
        assert_eq!(
            names,
            [
                "netfs.ko",
                "9pnet.ko",
                "9pnet_virtio.ko",
                "9p.ko",
                "overlay.ko"
            ]
        );
        let err = resolve_modules(dir.path(), &["nope"]).unwrap_err();
        assert!(err.to_string().contains("module nope not found"), "{err}");
    }

    #[test]
    fn cpio_entries_are_aligned_and_terminated() {
        let mut c = Cpio::default();
        c.file("init", 0o755, b"abc");
        let buf = c.finish();
        assert_eq!(buf.len() % 4, 0);
        assert!(buf.starts_with(b"070701"));
        let trailer = b"TRAILER!!!";
        assert!(buf.windows(trailer.len()).any(|w| w == trailer));
    }
}
