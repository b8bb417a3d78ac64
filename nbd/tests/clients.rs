//! The server in-process over the in-memory disk, driven by real NBD clients on the host:
//! nbdinfo, qemu-io, qemu-img, nbdcopy, fio (nbd engine) and nbdsh (libnbd from Python).
//! A missing tool fails the test when `CI` is set and is reported loudly otherwise.

mod common;

use std::sync::Arc;

use common::*;
use pnfs_disk::{Disk, DiskInfo, ExtentStatus, DISK_MAX_IO_BYTES};
use pnfs_nbd::testing::MemDisk;
use pnfs_nbd::{Export, ExportSet, ServerConfig};

const MIB: u64 = 1024 * 1024;
const MIB_USIZE: usize = 1024 * 1024;

fn set_of(name: &str, disk: Arc<MemDisk>) -> ExportSet {
    let mut set = ExportSet::new();
    set.add(
        Export::new(name, disk)
            .with_description("in-memory test disk")
            .with_fast_zero(true),
    )
    .expect("add export");
    set
}

/// Value of `"key": value` in nbdinfo's JSON (numbers and booleans only).
fn json_value<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} not in nbdinfo output:\n{json}"));
    let rest = json[at + pat.len()..].trim_start();
    let end = rest.find([',', '\n', '}']).unwrap_or(rest.len());
    rest[..end].trim()
}

/// Parses `nbdinfo --map` text lines: (offset, length, type).
fn parse_map(text: &str) -> Vec<(u64, u64, u32)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().expect("offset"),
                f[1].parse().expect("length"),
                f[2].parse().expect("type"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdinfo_reports_size_block_sizes_flags_and_an_honest_map() {
    let Some(nbdinfo) = tool("nbdinfo") else {
        return;
    };
    // A 64 KiB preferred block, as the gateway on a 64 KiB-block MDS will report.
    let disk = Arc::new(MemDisk::with_info(DiskInfo {
        size_bytes: 64 * MIB,
        logical_block_bytes: 4096,
        preferred_block_bytes: 65536,
        max_io_bytes: DISK_MAX_IO_BYTES,
        read_only: false,
        multi_conn_safe: true,
    }));
    disk.write(MIB, vec![0xaa; MIB_USIZE].into(), false)
        .await
        .unwrap();
    disk.write_zeroes(8 * MIB, 2 * MIB, false, false)
        .await
        .unwrap();
    disk.write(10 * MIB, vec![0x55; 65536].into(), false)
        .await
        .unwrap();
    let srv = start_tcp(set_of("disk0", disk.clone()), ServerConfig::default()).await;
    let uri = srv.uri("disk0");

    let json = run_ok(&nbdinfo, &["--json", &uri]).await;
    assert_eq!(json_value(&json, "export-size"), (64 * MIB).to_string());
    assert_eq!(json_value(&json, "block_size_minimum"), "4096");
    assert_eq!(json_value(&json, "block_size_preferred"), "65536");
    assert_eq!(
        json_value(&json, "block_size_maximum"),
        DISK_MAX_IO_BYTES.to_string()
    );
    assert_eq!(json_value(&json, "is_read_only"), "false");
    assert_eq!(json_value(&json, "can_multi_conn"), "true");
    assert_eq!(json_value(&json, "can_trim"), "true");
    assert_eq!(json_value(&json, "can_zero"), "true");
    assert_eq!(json_value(&json, "can_fua"), "true");
    assert!(json.contains("base:allocation"), "{json}");

    let map = parse_map(&run_ok(&nbdinfo, &["--map", &uri]).await);
    const HOLE: u32 = 3;
    const ZERO: u32 = 2;
    const DATA: u32 = 0;
    assert_eq!(
        map,
        vec![
            (0, MIB, HOLE),
            (MIB, MIB, DATA),
            (2 * MIB, 6 * MIB, HOLE),
            (8 * MIB, 2 * MIB, ZERO),
            (10 * MIB, 65536, DATA),
            (10 * MIB + 65536, 54 * MIB - 65536, HOLE),
        ],
        "nbdinfo --map must match what was written"
    );
    // The map agrees with the disk's own view.
    let data_bytes: u64 = disk
        .extents()
        .iter()
        .filter(|e| e.status == ExtentStatus::Data)
        .map(|e| e.length_bytes)
        .sum();
    assert_eq!(data_bytes, MIB + 65536);
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdinfo_list_shows_every_export_and_unix_sockets_work() {
    let Some(nbdinfo) = tool("nbdinfo") else {
        return;
    };
    let mut set = ExportSet::new();
    set.add(Export::new("alpha", Arc::new(MemDisk::new(MIB))).with_description("first disk"))
        .unwrap();
    set.add(Export::new("beta", Arc::new(MemDisk::new(2 * MIB))).with_read_only(true))
        .unwrap();
    let srv = start_unix(set, ServerConfig::default(), "list").await;
    let out = run_ok(&nbdinfo, &["--list", &srv.uri("")]).await;
    assert!(out.contains("export=\"alpha\""), "{out}");
    assert!(out.contains("export=\"beta\""), "{out}");
    assert!(out.contains("first disk"), "{out}");
    let json = run_ok(&nbdinfo, &["--json", &srv.uri("beta")]).await;
    assert_eq!(json_value(&json, "export-size"), (2 * MIB).to_string());
    assert_eq!(json_value(&json, "is_read_only"), "true");
    // No default export configured: the empty name is refused.
    let out = run(&nbdinfo, &[&srv.uri("")]).await;
    assert!(
        !out.status.success(),
        "the empty export name must be refused"
    );
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_io_write_read_discard_write_zeroes() {
    let Some(qemu_io) = tool("qemu-io") else {
        return;
    };
    let disk = Arc::new(MemDisk::new(16 * MIB));
    let srv = start_tcp(set_of("vm", disk.clone()), ServerConfig::default()).await;
    let uri = srv.uri("vm");
    let out = run_ok(
        &qemu_io,
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0xab 0 2M",
            "-c",
            "read -P 0xab 0 2M",
            "-c",
            "write -P 0x11 3M 4k",
            "-c",
            "aio_write -P 0x22 4M 64k",
            "-c",
            "aio_write -P 0x33 5M 64k",
            "-c",
            "aio_flush",
            "-c",
            "discard 0 64k",
            "-c",
            "write -z 1M 1M",
            "-c",
            "read -P 0 1M 1M",
            "-c",
            "read -P 0x11 3M 4k",
            "-c",
            "read -P 0x22 4M 64k",
            "-c",
            "read -P 0x33 5M 64k",
            "-c",
            "flush",
            &uri,
        ],
    )
    .await;
    assert!(
        !out.contains("failed"),
        "qemu-io reported a failure:\n{out}"
    );
    assert!(out.contains("wrote 2097152/2097152"), "{out}");
    // A wrong pattern is detected (the check can fail).
    let bad = run(&qemu_io, &["-f", "raw", "-c", "read -P 0x99 3M 4k", &uri]).await;
    let text =
        String::from_utf8_lossy(&bad.stdout).to_string() + &String::from_utf8_lossy(&bad.stderr);
    assert!(text.contains("Pattern verification failed"), "{text}");
    // The disk saw exactly that.
    let data = disk.read(64 * 1024, 4096).await.unwrap();
    assert!(data.iter().all(|b| *b == 0xab));
    let st = disk.block_status(0, 2 * MIB).await.unwrap();
    assert_eq!(
        st[0].status,
        ExtentStatus::Hole,
        "discard punched a hole: {st:?}"
    );
    assert!(
        st.iter()
            .any(|e| e.offset_bytes == MIB && e.status == ExtentStatus::Zero),
        "write -z left a zero extent: {st:?}"
    );
    srv.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_img_convert_in_then_compare_equal() {
    let Some(qemu_img) = tool("qemu-img") else {
        return;
    };
    let mut rng = Rng::from_env("qemu_img_convert");
    // A sparse 64 MiB image: random 1 MiB chunks here and there, holes elsewhere.
    let size = 64 * MIB;
    let path = scratch_dir().join("convert-src.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&path).unwrap();
        f.set_len(size).unwrap();
        for i in 0..64u64 {
            if rng.below(3) == 0 {
                let mut chunk = vec![0u8; MIB_USIZE];
                rng.fill(&mut chunk);
                f.seek(SeekFrom::Start(i * MIB)).unwrap();
                f.write_all(&chunk).unwrap();
            }
        }
    }
    let src = path.to_str().unwrap();
    let disk = Arc::new(MemDisk::new(size));
    let srv = start_tcp(set_of("img", disk.clone()), ServerConfig::default()).await;
    let uri = srv.uri("img");
    run_ok(
        &qemu_img,
        &["convert", "-n", "-f", "raw", "-O", "raw", src, &uri],
    )
    .await;
    run_ok(&qemu_img, &["compare", "-f", "raw", "-F", "raw", src, &uri]).await;
    // Change one byte on the export: compare must now fail (the check can fail).
    disk.write(size - 4096, vec![0x5a; 4096].into(), false)
        .await
        .unwrap();
    let out = run(&qemu_img, &["compare", "-f", "raw", "-F", "raw", src, &uri]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "compare must report a difference"
    );
    srv.stop().await.unwrap();
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdcopy_random_image_in_and_out_is_identical() {
    let (Some(nbdcopy), Some(cmp)) = (tool("nbdcopy"), tool("cmp")) else {
        return;
    };
    let mut rng = Rng::from_env("nbdcopy");
    let size = 128 * MIB;
    let src = random_file("nbdcopy-src.img", 128 * MIB_USIZE, &mut rng);
    let out = scratch_dir().join("nbdcopy-out.img");
    let disk = Arc::new(MemDisk::new(size));
    let srv = start_tcp(set_of("copy", disk), ServerConfig::default()).await;
    let uri = srv.uri("copy");
    run_ok(&nbdcopy, &[src.to_str().unwrap(), &uri]).await;
    run_ok(&nbdcopy, &[&uri, out.to_str().unwrap()]).await;
    run_ok(&cmp, &[src.to_str().unwrap(), out.to_str().unwrap()]).await;
    srv.stop().await.unwrap();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fio_randwrite_with_crc32c_verify_at_iodepth_32() {
    let Some(fio) = tool("fio") else {
        return;
    };
    let disk = Arc::new(MemDisk::new(64 * MIB));
    let srv = start_tcp(set_of("fio", disk), ServerConfig::default()).await;
    let uri_arg = format!("--uri={}", srv.uri("fio"));
    let out = run_ok(
        &fio,
        &[
            "--name=nbdverify",
            "--ioengine=nbd",
            &uri_arg,
            "--rw=randwrite",
            "--bs=4k",
            "--size=32M",
            "--iodepth=32",
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_fatal=1",
            "--verify_state_save=0",
        ],
    )
    .await;
    assert!(out.contains("err= 0"), "fio reported errors:\n{out}");
    assert!(!out.contains("verify: bad"), "{out}");
    srv.stop().await.unwrap();
}

const NBDSH_SCRIPT: &str = r#"
import errno, os, sys
import nbd

uri = os.environ["NBD_URI"]
h = nbd.NBD()
h.add_meta_context("base:allocation")
h.connect_uri(uri)
assert h.get_structured_replies_negotiated(), "structured replies"
assert h.can_meta_context("base:allocation"), "base:allocation"
size = h.get_size()
h.set_strict_mode(0)

def expect_errno(what, want, f):
    try:
        f()
    except nbd.Error as e:
        got = getattr(errno, e.errno) if isinstance(e.errno, str) else e.errno
        assert got == want, "%s: errno %s, wanted %s (%s)" % (what, e.errno, want, e)
        return
    raise AssertionError("%s: no error" % what)

# Past the end: EINVAL, and the connection keeps working.
expect_errno("read past end", errno.EINVAL, lambda: h.pread(4096, size))
expect_errno("write past end", errno.EINVAL, lambda: h.pwrite(b"x" * 4096, size - 2048))
assert h.pread(4096, 0) == bytes(4096)
# Longer than the maximum block size: EINVAL, connection keeps working.
maxb = h.get_block_size(nbd.SIZE_MAXIMUM)
expect_errno("read over max", errno.EINVAL, lambda: h.pread(maxb + 4096, 0))
# Unaligned to the minimum block size: EINVAL.
expect_errno("unaligned read", errno.EINVAL, lambda: h.pread(512, 100))

h.pwrite(b"\xab" * 65536, 65536)
h.zero(4 * 65536, 65536, nbd.CMD_FLAG_NO_HOLE)
h.pwrite(b"\xcd" * 4096, 8 * 65536, nbd.CMD_FLAG_FUA)
h.flush()
h.cache(65536, 0)
assert h.pread(4096, 8 * 65536) == b"\xcd" * 4096
assert h.pread(4096, 4 * 65536) == bytes(4096)

entries = []
def cb(metacontext, offset, e, err):
    assert metacontext == "base:allocation"
    entries.append((offset, list(e)))
    return 0
h.block_status(16 * 65536, 0, cb)
assert len(entries) == 1
offset, e = entries[0]
pairs = list(zip(e[0::2], e[1::2]))
# hole [0,64K), zero [64K, 320K), hole [320K, 512K), data [512K, 516K), hole after
assert pairs[0] == (65536, 3), pairs
assert pairs[1] == (4 * 65536, 2), pairs
assert pairs[2] == (3 * 65536, 3), pairs
assert pairs[3] == (4096, 0), pairs
# REQ_ONE: one extent
entries.clear()
h.block_status(16 * 65536, 0, cb, nbd.CMD_FLAG_REQ_ONE)
assert len(entries[0][1]) == 2, entries
expect_errno("block status past end", errno.EINVAL, lambda: h.block_status(65536, size, cb))
# Many requests in flight at once, completed out of order if the server likes.
cookies = [h.aio_pwrite(bytes([i]) * 4096, i * 4096 + 1048576) for i in range(64)]
while h.aio_in_flight() > 0:
    h.poll(-1)
for c in cookies:
    assert h.aio_command_completed(c)
for i in range(0, 64, 7):
    assert h.pread(4096, i * 4096 + 1048576) == bytes([i]) * 4096
h.shutdown()
print("NBDSH-OK")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nbdsh_protocol_corner_cases() {
    let Some(nbdsh) = tool("nbdsh") else {
        return;
    };
    let disk = Arc::new(MemDisk::new(8 * MIB));
    let srv = start_tcp(set_of("sh", disk), ServerConfig::default()).await;
    let script = scratch_dir().join("corner.py");
    std::fs::write(&script, NBDSH_SCRIPT).unwrap();
    let path = format!(
        "/usr/bin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    // nbdsh 1.14 takes no script file: run it with -c.
    let command = format!("exec(open({:?}).read())", script.display().to_string());
    let child = tokio::process::Command::new(&nbdsh)
        .arg("-c")
        .arg(&command)
        .env("PATH", path)
        .env("NBD_URI", srv.uri("sh"))
        .current_dir(scratch_dir())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TEST_TIMEOUT, child)
        .await
        .expect("nbdsh timed out")
        .expect("nbdsh starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("NBDSH-OK"),
        "nbdsh script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    srv.stop().await.unwrap();
}
