//! End to end on the host: `pnfsgw demo`, `export` and `run` with real NBD clients (nbdinfo,
//! qemu-io) and real servers (the embedded MDS, nfs-ganesha).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn demo_end_to_end() {
    let (Some(_), Some(_)) = (
        pnfs_testbed::require_tool("nbdinfo"),
        pnfs_testbed::require_tool("qemu-io"),
    ) else {
        return;
    };
    let dir = tmpdir("demo");
    let state = dir.join("state");
    let port = pnfs_testbed::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "demo",
        "--state-dir",
        state.to_str().unwrap(),
        "--listen",
        &listen,
        "--size",
        "64M",
        "--volume-size",
        "256M",
    ];
    // systemd readiness: a datagram socket standing in for the service manager's.
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(READY_TIMEOUT)).unwrap();
    let mut gw = Gw::spawn_env(&args, &[("NOTIFY_SOCKET", &notify_path)]);
    let uri = gw.wait_line("pnfsgw demo: ready: ");
    assert_eq!(uri, format!("nbd://{listen}/demo"));
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1\nSTATUS=serving 1 device(s)");

    let size = tool("nbdinfo", &["--size", &uri]);
    assert_eq!(size.trim(), (64u64 << 20).to_string());
    qemu_io(
        &uri,
        &[
            "write -P 0xab 0 1M",
            "read -P 0xab 0 1M",
            "write -z 1M 1M",
            "read -P 0 1M 1M",
            "flush",
        ],
    );
    let s = stats(&state.join("control.sock"));
    assert!(s.contains("device demo (/demo, 64M, pnfs): up"), "{s}");

    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");
    let n = notify.recv(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"STOPPING=1\n"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(log.contains("committed, layouts returned, closed"), "{log}");
    assert!(log.contains("session destroyed"), "{log}");
    assert!(log.contains("demo stopped cleanly"), "{log}");

    // The data survives a restart on the same state directory.
    let mut gw = Gw::spawn(&args);
    let uri = gw.wait_line("pnfsgw demo: ready: ");
    qemu_io(&uri, &["read -P 0xab 0 1M", "read -P 0 1M 1M"]);
    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn export_over_ganesha_serves_through_mds_io_and_run_reports_a_missing_file() {
    let (Some(_), Some(_), Some(_)) = (
        pnfs_testbed::require_tool("qemu-io"),
        pnfs_testbed::require_tool("curl"),
        pnfs_testbed::require_tool("promtool"),
    ) else {
        return;
    };
    let dir = tmpdir("ganesha");
    let export = dir.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let Some(ganesha) = pnfs_testbed::require(pnfs_testbed::Ganesha::start(&export)) else {
        return;
    };
    let mds = ganesha.addr().to_string();

    // `export`: one file, created on the server, MDS I/O (ganesha hands out no layouts).
    let nbd = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let metrics = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let control = dir.join("export.sock");
    let mut gw = Gw::spawn(&[
        "export",
        "--mds",
        &mds,
        "--path",
        "/export/disk.img",
        "--nbd",
        &nbd,
        "--create",
        "16M",
        "--data-path",
        "mds",
        "--control",
        control.to_str().unwrap(),
        "--metrics",
        &metrics,
    ]);
    let uri = gw.wait_line("nbd://");
    let uri = format!("nbd://{uri}");
    assert_eq!(uri, format!("nbd://{nbd}/disk.img"));
    qemu_io(&uri, &["write -P 0x5a 4096 64k", "flush"]);
    // The metrics show the write went through MDS WRITE, none of it direct.
    let m = scrape(&format!("http://{metrics}/metrics"));
    assert!(
        sample(&m, "pnfsgw_write_bytes_total{path=\"mds\"}") >= 65536.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "pnfsgw_write_bytes_total{path=\"direct\"}"),
        0.0,
        "{m}"
    );
    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");
    // The bytes are in the server's file.
    let data = std::fs::read(export.join("disk.img")).unwrap();
    assert_eq!(data.len(), 16 << 20);
    assert!(data[4096..4096 + 65536].iter().all(|&b| b == 0x5a));
    assert!(data[..4096].iter().all(|&b| b == 0));

    // `run` with one good and one missing file: the good one serves, exit 3 at stop.
    let file = dir.join("gw.toml");
    let nbd = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let control = dir.join("run.sock");
    let nbd_sock = dir.join("nbd.sock");
    std::fs::write(
        &file,
        format!(
            "[mds]\naddresses = [\"{mds}\"]\n[nbd]\ntcp = [\"{nbd}\"]\nunix = [\"{}\"]\n\
             [control]\nsocket = \"{}\"\n\
             [[device]]\nname = \"good\"\npath = \"/export/disk.img\"\ndata_path = \"mds\"\n\
             [[device]]\nname = \"gone\"\npath = \"/export/gone.img\"\ndata_path = \"mds\"\n",
            nbd_sock.display(),
            control.display()
        ),
    )
    .unwrap();
    let gw = Gw::spawn(&["run", "--config", file.to_str().unwrap()]);
    let deadline = Instant::now() + READY_TIMEOUT;
    while !gw
        .log()
        .contains("ready: serving 1 device(s); failed: gone")
    {
        assert!(Instant::now() < deadline, "{}", gw.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gw.log()
            .contains("device gone: cannot start: /export/gone.img"),
        "{}",
        gw.log()
    );
    qemu_io(&format!("nbd://{nbd}/good"), &["read -P 0x5a 4096 64k"]);
    // The same export over the Unix socket.
    let unix_uri = format!("nbd+unix:///good?socket={}", nbd_sock.display());
    qemu_io(&unix_uri, &["read -P 0x5a 4096 64k"]);
    let s = stats(&control);
    assert!(
        s.contains("device gone (/export/gone.img, -, mds): FAILED"),
        "{s}"
    );
    assert!(
        s.contains("device good (/export/disk.img, 16M, mds): up"),
        "{s}"
    );
    let (code, log) = gw.terminate();
    assert_eq!(code, Some(3), "{log}");
    assert!(
        !nbd_sock.exists() && !control.exists(),
        "sockets left behind"
    );
    ganesha.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `len` bytes of a `StdRng` seeded with `seed` to `path`.
fn write_random(path: &Path, len: usize, seed: u64) {
    use rand::{RngCore, SeedableRng};
    use std::io::Write;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

/// Runs a shell pipeline, asserting success; returns stdout.
fn sh(script: &str) -> String {
    tool("bash", &["-c", &format!("set -euo pipefail; {script}")])
}

#[test]
fn demo_with_64k_blocks_passes_real_clients() {
    for t in ["nbdinfo", "nbdcopy", "qemu-img", "qemu-io", "fio"] {
        if pnfs_testbed::require_tool(t).is_none() {
            return;
        }
    }
    let dir = tmpdir("demo64k");
    let state = dir.join("state");
    let port = pnfs_testbed::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut gw = Gw::spawn(&[
        "demo",
        "--state-dir",
        state.to_str().unwrap(),
        "--listen",
        &listen,
        "--size",
        "256M",
        "--volume-size",
        "512M",
        "--block-size",
        "65536",
    ]);
    let uri = gw.wait_line("pnfsgw demo: ready: ");

    // Block sizes advertised from the 64 KiB layout block size.
    let info = tool("nbdinfo", &[&uri]);
    assert!(info.contains("export-size: 268435456"), "{info}");
    assert!(info.contains("block_size_preferred: 65536"), "{info}");

    // A fresh file is all holes/zeros; after a write at 1 MiB the map shows data there only.
    qemu_io(&uri, &["write -P 0x11 1M 64k"]);
    let map = tool("nbdinfo", &["--map", &uri]);
    let data: Vec<&str> = map.lines().filter(|l| l.contains("data")).collect();
    assert_eq!(data.len(), 1, "{map}");
    let fields: Vec<&str> = data[0].split_whitespace().collect();
    assert_eq!((fields[0], fields[1]), ("1048576", "65536"), "{map}");

    // nbdcopy of 256 MiB of random data in and out.
    let img = dir.join("random.img");
    let back = dir.join("back.img");
    let seed = std::process::id();
    eprintln!("random image seed {seed}");
    write_random(&img, 256 << 20, u64::from(seed));
    tool("nbdcopy", &[img.to_str().unwrap(), &uri]);
    tool("nbdcopy", &[&uri, back.to_str().unwrap()]);
    tool("cmp", &[img.to_str().unwrap(), back.to_str().unwrap()]);
    let cmp = tool(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            img.to_str().unwrap(),
            &uri,
        ],
    );
    assert!(cmp.contains("Images are identical"), "{cmp}");

    // qemu-img convert in (zeros over the random data), then compare.
    let zeros = dir.join("zeros.img");
    sh(&format!("truncate -s 256M {}", zeros.display()));
    tool(
        "qemu-img",
        &[
            "convert",
            "-n",
            "-f",
            "raw",
            "-O",
            "raw",
            zeros.to_str().unwrap(),
            &uri,
        ],
    );
    let cmp = tool(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            "raw",
            zeros.to_str().unwrap(),
            &uri,
        ],
    );
    assert!(cmp.contains("Images are identical"), "{cmp}");

    // qemu-io: write / read -P / discard / write -z.
    qemu_io(
        &uri,
        &[
            "write -P 0x7e 100k 300k",
            "read -P 0x7e 100k 300k",
            "discard 128k 64k",
            "write -z 192k 64k",
            "read -P 0 192k 64k",
            "read -P 0x7e 256k 144k",
        ],
    );

    // fio with verify=crc32c at iodepth 32 (the NBD engine).
    let fio = tool(
        "fio",
        &[
            "--name=verify",
            "--ioengine=nbd",
            &format!("--uri={uri}"),
            "--rw=randwrite",
            "--bs=4k",
            "--iodepth=32",
            "--size=64m",
            "--verify=crc32c",
            "--do_verify=1",
            "--randrepeat=1",
            // Otherwise fio leaves local-verify-*.state in the working directory (the crate).
            "--verify_state_save=0",
            "--output-format=terse",
        ],
    );
    let terse = fio
        .lines()
        .find(|l| l.starts_with("3;"))
        .unwrap_or_else(|| panic!("no terse line: {fio}"));
    assert_eq!(
        terse.split(';').nth(4),
        Some("0"),
        "fio reported an error: {fio}"
    );

    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("demo stopped cleanly"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mds_process_then_export_then_run_with_a_volume_glob_and_ublk() {
    let Some(_) = pnfs_testbed::require_tool("qemu-io") else {
        return;
    };
    let dir = tmpdir("mdsrun");
    let (mds, mds_addr, _) = start_mds(&dir, "vol0.img", &["--block-size", "4096"]);

    // `export` creates the file and writes through the pNFS direct path (volume by a glob
    // relative to its working directory, as qemu-nbd takes image paths).
    let glob = dir.join("vol*.img");
    let nbd = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let mut gw = Gw::spawn_in(
        &dir,
        &[
            "export",
            "--mds",
            &mds_addr,
            "--path",
            "/disk.img",
            "--nbd",
            &nbd,
            "--create",
            "32M",
            "--volume",
            "vol*.img",
            "--control",
            dir.join("export.sock").to_str().unwrap(),
        ],
        &[],
    );
    let uri = format!("nbd://{}", gw.wait_line("nbd://"));
    qemu_io(&uri, &["write -P 0x42 0 256k", "flush"]);
    let s = tool(
        BIN,
        &[
            "stats",
            "--control",
            dir.join("export.sock").to_str().unwrap(),
        ],
    );
    let direct: u64 = s
        .lines()
        .find_map(|l| l.trim().strip_prefix("pnfs.direct_write_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{s}"));
    assert!(
        direct >= 256 << 10,
        "the write did not go to the volume directly:\n{s}"
    );
    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");

    // `run`: NBD + ublk; on a host without the ublk driver only the ublk frontend fails.
    let file = dir.join("gw.toml");
    let nbd = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let control = dir.join("run.sock");
    std::fs::write(
        &file,
        format!(
            "[mds]\naddresses = [\"{mds_addr}\"]\n[volumes]\nsearch = [\"{}\"]\n\
             [nbd]\ntcp = [\"{nbd}\"]\n[control]\nsocket = \"{}\"\n\
             [[device]]\nname = \"disk\"\npath = \"/disk.img\"\nfrontends = [\"nbd\", \"ublk\"]\n\
             block_size = 4096\n",
            glob.display(),
            control.display()
        ),
    )
    .unwrap();
    let gw = Gw::spawn(&["run", "--config", file.to_str().unwrap()]);
    let deadline = Instant::now() + READY_TIMEOUT;
    while !gw.log().contains("ready: serving 1 device(s)") {
        assert!(Instant::now() < deadline, "{}", gw.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let has_ublk = Path::new("/dev/ublk-control").exists();
    if !has_ublk {
        assert!(gw.log().contains("failed: disk (ublk)"), "{}", gw.log());
        assert!(
            gw.log().contains("device disk: ublk frontend failed: "),
            "{}",
            gw.log()
        );
        let s = stats(&control);
        assert!(s.contains("  ublk : FAILED: "), "{s}");
        assert!(s.contains(&format!("  nbd nbd://{nbd}/disk: up")), "{s}");
    }
    qemu_io(&format!("nbd://{nbd}/disk"), &["read -P 0x42 0 256k"]);
    let (code, log) = gw.terminate();
    assert_eq!(code, Some(if has_ublk { 0 } else { 3 }), "{log}");

    let (code, log) = mds.terminate();
    assert_eq!(code, Some(0), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGTERM while the MDS does not answer (its process stopped with SIGSTOP): the stop waits
/// one stall limit in all, not one per step (flush, close, session), and ends with one line
/// that names the devices left uncommitted, and exit status 1.
#[test]
fn stop_with_the_mds_gone_waits_once_and_names_what_stayed_uncommitted() {
    let Some(_) = pnfs_testbed::require_tool("qemu-io") else {
        return;
    };
    const STALL_LIMIT_MS: u64 = 4_000;
    let dir = tmpdir("stop-no-mds");
    let (mds, mds_addr, vol) = start_mds(&dir, "vol.img", &[]);
    // The file, made by `export --create`.
    let nbd = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let mut gw = Gw::spawn(&[
        "export",
        "--mds",
        &mds_addr,
        "--path",
        "/d",
        "--nbd",
        &nbd,
        "--create",
        "16M",
        "--volume",
        vol.to_str().unwrap(),
        "--control",
        dir.join("e.sock").to_str().unwrap(),
    ]);
    gw.wait_line("nbd://");
    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");

    let file = dir.join("gw.toml");
    let nbd = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    std::fs::write(
        &file,
        format!(
            "[mds]\naddresses = [\"{mds_addr}\"]\nstall_limit_ms = {STALL_LIMIT_MS}\n\
             request_timeout_ms = 1000\nconnect_timeout_ms = 1000\n[volumes]\nsearch = [\"{}\"]\n\
             [nbd]\ntcp = [\"{nbd}\"]\n[control]\nsocket = \"{}\"\n\
             [[device]]\nname = \"d\"\npath = \"/d\"\n",
            vol.display(),
            dir.join("run.sock").display()
        ),
    )
    .unwrap();
    let gw = Gw::spawn(&["run", "--config", file.to_str().unwrap()]);
    let deadline = Instant::now() + READY_TIMEOUT;
    while !gw.log().contains("ready: serving 1 device(s)") {
        assert!(Instant::now() < deadline, "{}", gw.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    qemu_io(&format!("nbd://{nbd}/d"), &["write -P 0x5a 0 1M", "flush"]);

    let mds_pid = mds.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &mds_pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let (code, log) = gw.terminate();
    let took = started.elapsed();
    assert!(Command::new("kill")
        .args(["-CONT", &mds_pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(
            "did not answer within the stop deadline of 4 s: not committed and returned: d"
        ),
        "{log}"
    );
    // One stall limit and the time to notice it, never one per step.
    assert!(
        took < Duration::from_millis(2 * STALL_LIMIT_MS),
        "the stop took {took:?} with a stall limit of {STALL_LIMIT_MS} ms:\n{log}"
    );
    let (code, log) = mds.terminate();
    assert_eq!(code, Some(0), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The value of the sample `series` (name and labels exactly as printed) in a scrape; 0 when
/// absent (a request counter appears with its first request).
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// `curl` of the metrics URL; the body must pass `promtool check metrics`.
fn scrape(url: &str) -> String {
    let body = tool("curl", &["-sS", "--fail", "--max-time", "10", url]);
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    body
}

#[test]
fn demo_metrics_count_a_known_workload_and_pass_promtool() {
    let (Some(_), Some(_), Some(_)) = (
        pnfs_testbed::require_tool("qemu-io"),
        pnfs_testbed::require_tool("curl"),
        pnfs_testbed::require_tool("promtool"),
    ) else {
        return;
    };
    let dir = tmpdir("metrics");
    let state = dir.join("state");
    let listen = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let metrics = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let mut gw = Gw::spawn(&[
        "demo",
        "--state-dir",
        state.to_str().unwrap(),
        "--listen",
        &listen,
        "--size",
        "64M",
        "--volume-size",
        "256M",
        "--metrics",
        &metrics,
    ]);
    let uri = gw.wait_line("pnfsgw demo: ready: ");
    let url = format!("http://{metrics}/metrics");
    let before = scrape(&url);
    let dev = "device=\"demo\",frontend=\"nbd\"";
    let reqs = |s: &str, op: &str| {
        sample(
            s,
            &format!("pnfsgw_frontend_requests_total{{{dev},op=\"{op}\"}}"),
        )
    };
    let hist = |s: &str, op: &str| {
        sample(
            s,
            &format!("pnfsgw_frontend_request_duration_seconds_count{{{dev},op=\"{op}\"}}"),
        )
    };
    assert_eq!(
        sample(&before, "pnfsgw_device_up{device=\"demo\"}"),
        1.0,
        "{before}"
    );
    assert_eq!(
        sample(&before, "pnfsgw_device_size_bytes{device=\"demo\"}"),
        (64u64 << 20) as f64
    );

    // One 1 MiB write, one 1 MiB read, one flush (qemu-io flushes once more when it closes).
    qemu_io(&uri, &["write -P 0x5c 0 1M", "read -P 0x5c 0 1M", "flush"]);
    let after = scrape(&url);
    let mib = f64::from(1u32 << 20);
    assert_eq!(
        reqs(&after, "write") - reqs(&before, "write"),
        1.0,
        "{after}"
    );
    assert_eq!(reqs(&after, "read") - reqs(&before, "read"), 1.0, "{after}");
    let flushes = reqs(&after, "flush") - reqs(&before, "flush");
    assert!((1.0..=2.0).contains(&flushes), "{flushes} flushes\n{after}");
    let written = "pnfsgw_frontend_written_bytes_total{device=\"demo\",frontend=\"nbd\"}";
    let read = "pnfsgw_frontend_read_bytes_total{device=\"demo\",frontend=\"nbd\"}";
    assert_eq!(sample(&after, written) - sample(&before, written), mib);
    assert_eq!(sample(&after, read) - sample(&before, read), mib);
    // The pNFS data path wrote and read the MiB directly on the volume, and committed.
    let direct_w = "pnfsgw_write_bytes_total{path=\"direct\"}";
    let direct_r = "pnfsgw_read_bytes_total{path=\"direct\"}";
    assert!(
        sample(&after, direct_w) - sample(&before, direct_w) >= mib,
        "{after}"
    );
    assert!(
        sample(&after, direct_r) - sample(&before, direct_r) >= mib,
        "{after}"
    );
    assert_eq!(
        sample(&after, "pnfsgw_write_bytes_total{path=\"mds\"}"),
        0.0,
        "{after}"
    );
    assert!(
        sample(&after, "pnfsgw_layoutcommits_total")
            > sample(&before, "pnfsgw_layoutcommits_total"),
        "{after}"
    );
    assert!(sample(&after, "pnfsgw_layoutgets_total") >= 1.0, "{after}");
    // The latency histograms counted the same requests; nothing is in flight now.
    assert_eq!(
        hist(&after, "write") - hist(&before, "write"),
        1.0,
        "{after}"
    );
    assert_eq!(hist(&after, "read") - hist(&before, "read"), 1.0, "{after}");
    assert_eq!(
        hist(&after, "flush") - hist(&before, "flush"),
        flushes,
        "{after}"
    );
    let inf = format!(
        "pnfsgw_frontend_request_duration_seconds_bucket{{{dev},op=\"write\",le=\"+Inf\"}}"
    );
    assert_eq!(sample(&after, &inf), hist(&after, "write"));
    assert_eq!(
        sample(
            &after,
            &format!("pnfsgw_frontend_requests_in_flight{{{dev}}}")
        ),
        0.0,
        "{after}"
    );
    // `pnfsgw stats` shows the same snapshot.
    let s = stats(&state.join("control.sock"));
    assert!(s.contains("nbd.write latency: 1 requests"), "{s}");

    // Other paths and methods.
    let code = |args: &[&str]| {
        let mut a = vec![
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ];
        a.extend_from_slice(args);
        tool("curl", &a)
    };
    assert_eq!(code(&[&format!("http://{metrics}/")]), "404");
    assert_eq!(code(&["-X", "POST", &url]), "405");

    let (code, log) = gw.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains(&format!("metrics at {url}")), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}
