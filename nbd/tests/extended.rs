//! Extended headers (`NBD_OPT_EXTENDED_HEADERS`) with real clients: qemu 10's `qemu-io` and
//! `qemu-img` negotiate them (their own trace, `-T nbd_*`, proves it: the option is
//! acknowledged and block status comes back as the 64-bit chunk type) and use 64-bit lengths;
//! libnbd 1.14 (`nbdinfo`, `nbdcopy`) does not know them and must keep working in the
//! compact style on the same server.

mod common;

use std::sync::Arc;

use common::*;
use pnfs_disk::{Disk, ExtentStatus};
use pnfs_nbd::codec::consts::*;
use pnfs_nbd::testing::MemDisk;
use pnfs_nbd::{Export, ExportSet, ServerConfig};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
/// A disk larger than 4 GiB, so that one request or extent can need more than 32 bits.
const DISK_BYTES: u64 = 8 * GIB;

fn set_of(name: &str, disk: Arc<MemDisk>) -> ExportSet {
    let mut set = ExportSet::new();
    set.add(Export::new(name, disk).with_fast_zero(true))
        .expect("add export");
    set
}

/// stdout + stderr of a finished command (qemu's trace goes to stderr).
fn text_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The qemu trace line that says the server acknowledged `NBD_OPT_EXTENDED_HEADERS`.
const QEMU_EXTENDED_ACK: &str = "Received option reply 11 (extended headers), type 1 (ack)";
/// The qemu trace of a simple reply (never allowed with extended headers).
const QEMU_SIMPLE_REPLY: &str = "Got simple reply";
/// The qemu trace fragment of a block status reply in the 64-bit chunk type.
const QEMU_BLOCK_STATUS_EXT: &str = "type = 6 (block status (64-bit))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_io_negotiates_extended_headers_and_sends_64_bit_lengths() {
    let Some(qemu_io) = tool("qemu-io") else {
        return;
    };
    let disk = Arc::new(MemDisk::new(DISK_BYTES));
    let set = set_of("big", disk.clone());
    let export = set.lookup("big").expect("export").clone();
    let srv = start_tcp(set, ServerConfig::default()).await;
    let uri = srv.uri("big");
    let out = run(
        &qemu_io,
        &[
            "-T",
            "nbd_receive_option_reply",
            "-T",
            "nbd_send_request",
            "-T",
            "nbd_receive_reply_chunk_header",
            "-T",
            "nbd_receive_simple_reply",
            "-f",
            "raw",
            "-c",
            "write -P 0xab 5G 1M",
            "-c",
            "aio_write -P 0x22 7G 64k",
            "-c",
            "aio_write -P 0x33 1G 64k",
            "-c",
            "aio_flush",
            "-c",
            "read -P 0xab 5G 1M",
            // One WRITE_ZEROES of 6 GiB: a 64-bit effect length (-n: fast zero, which
            // lets qemu-io send it whole).
            "-c",
            "write -z -u -n 0 6G",
            "-c",
            "read -P 0 5G 1M",
            "-c",
            "read -P 0x22 7G 64k",
            "-c",
            "discard 7G 64k",
            "-c",
            "flush",
            &uri,
        ],
    )
    .await;
    let text = text_of(&out);
    assert!(out.status.success(), "qemu-io failed:\n{text}");
    assert!(
        !text.contains("failed"),
        "qemu-io reported a failure:\n{text}"
    );
    assert!(text.contains(QEMU_EXTENDED_ACK), "not negotiated:\n{text}");
    // qemu tolerates simple replies in extended mode, but the protocol forbids them.
    assert!(
        !text.contains(QEMU_SIMPLE_REPLY),
        "simple reply sent:\n{text}"
    );
    assert!(
        text.contains(".len = 6442450944,") && text.contains("(write zeroes)"),
        "no 64-bit WRITE_ZEROES was sent:\n{text}"
    );
    // The server took the 6 GiB zeroing as one request, and answered every request.
    srv.stop().await.unwrap();
    let st = export.stats().snapshot();
    assert_eq!(st.requests[usize::from(CMD_WRITE_ZEROES)], 1, "{st:?}");
    assert_eq!(st.zeroed_bytes, 6 * GIB);
    assert_eq!(st.trimmed_bytes, 64 * 1024);
    assert_eq!(st.errors, 0);
    let e = disk.extents();
    assert!(
        e.iter().any(|x| x.offset_bytes == 0
            && x.length_bytes == 6 * GIB
            && x.status != ExtentStatus::Data),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_img_map_gets_64_bit_block_status_extents() {
    let Some(qemu_img) = tool("qemu-img") else {
        return;
    };
    let disk = Arc::new(MemDisk::new(DISK_BYTES));
    disk.write(5 * GIB, bytes::Bytes::from(vec![7u8; 1 << 20]), false)
        .await
        .unwrap();
    let srv = start_tcp(set_of("big", disk.clone()), ServerConfig::default()).await;
    let out = run(
        &qemu_img,
        &[
            "-T",
            "nbd_receive_option_reply",
            "-T",
            "nbd_receive_reply_chunk_header",
            "map",
            "--output=json",
            &srv.uri("big"),
        ],
    )
    .await;
    let text = text_of(&out);
    assert!(out.status.success(), "qemu-img map failed:\n{text}");
    assert!(text.contains(QEMU_EXTENDED_ACK), "not negotiated:\n{text}");
    assert!(text.contains(QEMU_BLOCK_STATUS_EXT), "{text}");
    // The hole before the data is one extent of 5 GiB: more than a 32-bit descriptor holds.
    assert!(
        text.contains(r#"{ "start": 0, "length": 5368709120, "depth": 0, "present": true, "zero": true, "data": false"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{ "start": 5368709120, "length": 1048576, "depth": 0, "present": true, "zero": false, "data": true"#),
        "{text}"
    );
    srv.stop().await.unwrap();
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

/// Which headers libnbd negotiated, from Python: libnbd before 1.18 has no extended headers
/// (and no `get_extended_headers_negotiated`); a newer one must get them from this server.
const NBDSH_HEADERS_SCRIPT: &str = r#"
h.connect_uri(os.environ["NBD_URI"])
assert h.get_structured_replies_negotiated()
if hasattr(h, "get_extended_headers_negotiated"):
    assert h.get_extended_headers_negotiated(), "a libnbd with extended headers must get them"
    print("HEADERS=extended")
else:
    print("HEADERS=compact")
h.shutdown()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libnbd_maps_and_copies_a_disk_past_4_gib_with_or_without_extended_headers() {
    let (Some(nbdinfo), Some(nbdcopy), Some(nbdsh)) =
        (tool("nbdinfo"), tool("nbdcopy"), tool("nbdsh"))
    else {
        return;
    };
    let disk = Arc::new(MemDisk::new(DISK_BYTES));
    disk.write(5 * GIB, bytes::Bytes::from(vec![7u8; 1 << 20]), false)
        .await
        .unwrap();
    let srv = start_tcp(set_of("big", disk.clone()), ServerConfig::default()).await;
    let uri = srv.uri("big");

    let script = scratch_dir().join("headers.py");
    std::fs::write(&script, NBDSH_HEADERS_SCRIPT).unwrap();
    // nbdsh 1.14 takes no script file: run it with -c.
    let command = format!(
        "import os; exec(open({:?}).read())",
        script.display().to_string()
    );
    let path = format!(
        "/usr/bin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new(&nbdsh)
        .arg("-c")
        .arg(&command)
        .env("PATH", path)
        .env("NBD_URI", &uri)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TEST_TIMEOUT, out)
        .await
        .expect("nbdsh timed out")
        .expect("nbdsh starts");
    let text = text_of(&out);
    assert!(out.status.success(), "nbdsh failed:\n{text}");
    eprintln!("libnbd negotiated: {}", text.trim());
    assert!(text.contains("HEADERS="), "{text}");

    // The map covers the whole 8 GiB (32-bit requests and descriptors in the compact style)
    // and finds the data at 5 GiB.
    let map = parse_map(&run_ok(&nbdinfo, &["--map", &uri]).await);
    const HOLE: u32 = 3;
    const DATA: u32 = 0;
    let mut at = 0;
    for &(offset, length, kind) in &map {
        assert_eq!(offset, at, "{map:?}");
        let data = (5 * GIB..5 * GIB + MIB).contains(&offset);
        assert_eq!(kind, if data { DATA } else { HOLE }, "{map:?}");
        at += length;
    }
    assert_eq!(at, DISK_BYTES, "{map:?}");
    assert!(map.contains(&(5 * GIB, MIB, DATA)), "{map:?}");

    // nbdcopy to a sparse file: same size, the data where it was, zeros around it.
    let copy = scratch_dir().join("extended-copy.img");
    let _ = std::fs::remove_file(&copy);
    run_ok(&nbdcopy, &[&uri, copy.to_str().unwrap()]).await;
    let check = || -> std::io::Result<(u64, Vec<u8>)> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&copy)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(5 * GIB - 4096))?;
        let mut buf = vec![0u8; 4096 + (1 << 20) + 4096];
        f.read_exact(&mut buf)?;
        Ok((len, buf))
    };
    let (len, buf) = check().expect("read the copy");
    let _ = std::fs::remove_file(&copy);
    assert_eq!(len, DISK_BYTES);
    assert!(buf[..4096].iter().all(|&b| b == 0));
    assert!(buf[4096..4096 + (1 << 20)].iter().all(|&b| b == 7));
    assert!(buf[4096 + (1 << 20)..].iter().all(|&b| b == 0));
    srv.stop().await.unwrap();
}

/// A fully sparse 64 GiB disk: mapping it takes one block status request with extended
/// headers (qemu-img), and at least 16 in the compact style (nbdinfo from libnbd 1.14: a
/// request length has 32 bits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_block_status_request_maps_a_64_gib_hole_with_extended_headers() {
    let (Some(qemu_img), Some(nbdinfo)) = (tool("qemu-img"), tool("nbdinfo")) else {
        return;
    };
    const SPARSE_BYTES: u64 = 64 * GIB;
    let block_status = |e: &Export| e.stats().snapshot().requests[usize::from(CMD_BLOCK_STATUS)];
    let disk = Arc::new(MemDisk::new(SPARSE_BYTES));
    let set = set_of("sparse", disk);
    let export = set.lookup("sparse").expect("export").clone();
    let srv = start_tcp(set, ServerConfig::default()).await;
    let uri = srv.uri("sparse");
    let out = run_ok(&qemu_img, &["map", "--output=json", &uri]).await;
    assert!(
        out.contains(r#"{ "start": 0, "length": 68719476736, "depth": 0, "present": true, "zero": true, "data": false"#),
        "{out}"
    );
    let extended = block_status(&export);
    let map = parse_map(&run_ok(&nbdinfo, &["--map", &uri]).await);
    let compact = block_status(&export) - extended;
    eprintln!("block status requests for a 64 GiB hole: extended {extended}, compact {compact}");
    assert_eq!(extended, 1);
    assert!(compact >= 16, "{compact}");
    assert_eq!(map.iter().map(|m| m.1).sum::<u64>(), SPARSE_BYTES);
    srv.stop().await.unwrap();
}
