//! Two gateways, one file: coherence through the embedded MDS on the host.
//!
//! Two `pnfsgw export` processes serve the same file on one MDS and volume, each with its
//! defaults (no `--control`, no owner): they must be two clients to the MDS, so that a write
//! through one recalls the other's layout and what one flushed the other reads back exactly.
//! Every block is self-describing (tests/blocks.py: offset, generation, checksum), so a reader
//! names zeros, stale generations, misplaced or torn blocks. Rounds: A writes → B reads; B
//! writes → A reads; interleaved writers on disjoint ranges; both on one range; then a third
//! gateway that reads only through the MDS (READ) checks the end state.
//!
//! This failed before each instance had its own client owner: both presented
//! `pnfsgw:HOST:export:/vm`, the MDS served them as one client, and B read zeros where A had
//! written and flushed.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const MIB: u64 = 1 << 20;

/// Runs tests/blocks.py on `uri` with `ops`; fails the test with its report on a mismatch.
fn blocks(uri: &str, ops: &[String]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/blocks.py");
    // The system python has libnbd's bindings (python3-libnbd).
    let out = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(uri)
        .args(ops)
        .output()
        .expect("run tests/blocks.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "blocks.py {uri} {ops:?}:\n{text}");
    text
}

fn w(off_mib: u64, len_mib: u64, gen: u64) -> String {
    format!("w:{}:{}:{gen}", off_mib * MIB, len_mib * MIB)
}

fn v(off_mib: u64, len_mib: u64, gen: u64) -> String {
    format!("v:{}:{}:{gen}", off_mib * MIB, len_mib * MIB)
}

#[test]
fn two_exports_of_one_file_read_what_the_other_flushed() {
    let (Some(_), Some(_)) = (
        pnfs_testbed::require_tool("nbdinfo"),
        pnfs_testbed::require_tool("/usr/bin/python3"),
    ) else {
        return;
    };
    let dir = tmpdir("two-gw");
    // A killed gateway's layout is revoked after 10 s, so the crash round below is short.
    let (mds, mds_addr, vol) = start_mds(
        &dir,
        "vol.img",
        &[
            "--block-size",
            "4096",
            "--lease-seconds",
            "10",
            "--recall-timeout-seconds",
            "10",
        ],
    );

    let (a, uri_a, ctl_a) = export_vm(&mds_addr, &vol, &["--create", "64M"]);
    let (b, uri_b, ctl_b) = export_vm(&mds_addr, &vol, &[]);
    let owner = |g: &Gw| {
        g.log()
            .lines()
            .find_map(|l| l.split_once("client owner ").map(|(_, o)| o.to_owned()))
            .unwrap_or_else(|| panic!("no client owner logged:\n{}", g.log()))
    };
    assert_ne!(owner(&a), owner(&b), "two instances, one client owner");

    // A writes and flushes; B reads exactly that. Then the other way round.
    blocks(&uri_a, &[w(0, 16, 1)]);
    blocks(&uri_b, &[v(0, 16, 1)]);
    blocks(&uri_b, &[w(4, 4, 2)]);
    blocks(&uri_a, &[v(0, 4, 1), v(4, 4, 2), v(8, 8, 1)]);

    // Interleaved writers on disjoint ranges (alternating 1 MiB pieces of 16..24 MiB).
    for i in 0..4u64 {
        blocks(&uri_a, &[w(16 + 2 * i, 1, 10 + i)]);
        blocks(&uri_b, &[w(17 + 2 * i, 1, 20 + i)]);
    }
    let disjoint: Vec<String> = (0..4u64)
        .flat_map(|i| [v(16 + 2 * i, 1, 10 + i), v(17 + 2 * i, 1, 20 + i)])
        .collect();
    blocks(&uri_a, &disjoint);
    blocks(&uri_b, &disjoint);

    // Both on one range: the last flushed write wins, seen from both sides.
    blocks(&uri_a, &[w(32, 2, 30)]);
    blocks(&uri_b, &[w(32, 1, 31)]);
    blocks(&uri_a, &[w(33, 1, 32)]);
    let same = [v(32, 1, 31), v(33, 1, 32)];
    blocks(&uri_b, &same);
    blocks(&uri_a, &same);

    // Each gateway had its layout recalled for the other's I/O, and committed its writes.
    let mut report = String::new();
    for (name, ctl) in [("A", &ctl_a), ("B", &ctl_b)] {
        let recalls = counter(ctl, "recalls");
        let commits = counter(ctl, "commits");
        let mds_bytes = counter(ctl, "mds_write_bytes") + counter(ctl, "mds_read_bytes");
        let errors = counter(ctl, "request_errors");
        report += &format!(
            "gateway {name}: recalls={recalls} commits={commits} mds_bytes={mds_bytes} errors={errors}\n"
        );
        assert!(recalls > 0, "{name} saw no recall:\n{report}");
        assert!(commits > 0, "{name} committed nothing:\n{report}");
        assert_eq!(errors, 0, "{name}:\n{report}");
    }
    eprintln!("{report}");

    // A crash right after a flush: what A flushed is durable and committed (LAYOUTCOMMIT is
    // part of the flush), so B reads it once the MDS has revoked the dead A's layout. A
    // gateway that skipped the LAYOUTCOMMIT on flush fails here: its INVALID extents were
    // never committed, and B reads zeros.
    blocks(&uri_a, &[w(40, 2, 40)]);
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    blocks(&uri_b, &[v(40, 2, 40)]);

    let (code, log) = b.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");

    // The end state through the MDS alone (READ), by a third gateway.
    let (c, uri_c, _) = export_vm(&mds_addr, &vol, &["--data-path", "mds", "--read-only"]);
    let mut all = vec![v(0, 4, 1), v(4, 4, 2), v(8, 8, 1)];
    all.extend(disjoint);
    all.extend(same);
    all.push(v(40, 2, 40));
    blocks(&uri_c, &all);
    let (code, log) = c.terminate();
    assert_eq!(code, Some(0), "{log}");

    let (code, log) = mds.terminate();
    assert_eq!(code, Some(0), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two `run`s whose configs name one client owner for one MDS: the second is refused at
/// start, naming the owner and the first one's PID, instead of corrupting the first's data.
#[test]
fn a_second_gateway_with_the_same_client_owner_is_refused() {
    let dir = tmpdir("owner-twice");
    // No MDS needs to listen: the owner check comes before connecting.
    let mds_addr = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
    let config = |n: u32| {
        let file = dir.join(format!("gw{n}.toml"));
        let nbd = format!("127.0.0.1:{}", pnfs_testbed::free_port().unwrap());
        std::fs::write(
            &file,
            format!(
                "[mds]\naddresses = [\"{mds_addr}\"]\nclient_owner = \"pnfsgw:twice-{}\"\n\
                 connect_timeout_ms = 60000\n[nbd]\ntcp = [\"{nbd}\"]\n[control]\nsocket = \"{}\"\n\
                 [[device]]\nname = \"d\"\npath = \"/d\"\n",
                std::process::id(),
                dir.join(format!("gw{n}.sock")).display()
            ),
        )
        .unwrap();
        file
    };
    let (f1, f2) = (config(1), config(2));
    // The first one keeps trying to reach the absent MDS while it holds the owner.
    let first = Gw::spawn(&["run", "--config", f1.to_str().unwrap()]);
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while !first.log().contains("client owner") {
        assert!(std::time::Instant::now() < deadline, "{}", first.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = Command::new(BIN)
        .args(["run", "--config", f2.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is already in use on this host"), "{err}");
    assert!(
        err.contains(&format!("pid {}", first.child.id())),
        "the holder's PID is named: {err}"
    );
    drop(first);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Most turns of the ping-pong below before the back-off must have shown on both sides.
const PINGPONG_MAX_TURNS: u64 = 40;
/// Turns that go on after both gateways backed off (MDS path, and back to layouts when a
/// back-off period ends), every one verified.
const PINGPONG_TURNS_AFTER_BACKOFF: u64 = 6;

/// Two gateways taking turns on one range (ping-pong): each turn's write recalls the other's
/// layout. After repeated recalls each gateway serves the file through the MDS for a while
/// (`pnfs.contention_backoffs`, MDS WRITE bytes) instead of a recall, LAYOUTCOMMIT,
/// LAYOUTRETURN and LAYOUTGET per turn; and every flushed write still reads back exactly from
/// both sides, across the switches between direct I/O and the MDS path.
#[test]
fn ping_pong_on_one_range_backs_off_to_the_mds_and_stays_coherent() {
    let (Some(_), Some(_)) = (
        pnfs_testbed::require_tool("nbdinfo"),
        pnfs_testbed::require_tool("/usr/bin/python3"),
    ) else {
        return;
    };
    let dir = tmpdir("ping-pong");
    let (mds, mds_addr, vol) = start_mds(&dir, "vol.img", &["--block-size", "4096"]);
    let (a, uri_a, ctl_a) = export_vm(&mds_addr, &vol, &["--create", "16M"]);
    let (b, uri_b, ctl_b) = export_vm(&mds_addr, &vol, &[]);
    let gws = [(&uri_a, &ctl_a), (&uri_b, &ctl_b)];
    let backed_off = |ctl: &Path| counter(ctl, "contention_backoffs") > 0;

    // Turn t: one gateway writes generation t over 0..2 MiB and flushes (a 4 KiB write
    // first, then the rest: two requests), the other reads it back, then the writer too.
    let mut turn = 0u64;
    let mut after = None;
    while after.is_none_or(|a| turn < a + PINGPONG_TURNS_AFTER_BACKOFF) {
        assert!(
            turn < PINGPONG_MAX_TURNS + PINGPONG_TURNS_AFTER_BACKOFF,
            "no back-off on both sides after {turn} turns:\nA:\n{}\nB:\n{}",
            stats(&ctl_a),
            stats(&ctl_b)
        );
        let (writer, reader) = (gws[(turn % 2) as usize], gws[((turn + 1) % 2) as usize]);
        let gen = 100 + turn;
        blocks(
            writer.0,
            &[
                format!("w:0:4096:{gen}"),
                format!("w:4096:{}:{gen}", 2 * MIB - 4096),
            ],
        );
        blocks(reader.0, &[v(0, 2, gen)]);
        blocks(writer.0, &[v(0, 2, gen)]);
        turn += 1;
        if after.is_none() && backed_off(&ctl_a) && backed_off(&ctl_b) {
            after = Some(turn);
        }
    }

    let mut report = String::new();
    for (name, ctl) in [("A", &ctl_a), ("B", &ctl_b)] {
        let line = |c: &str| format!("{c}={} ", counter(ctl, c));
        report += &format!("gateway {name}: ");
        for c in [
            "recalls",
            "contention_backoffs",
            "mds_write_bytes",
            "mds_read_bytes",
            "direct_write_bytes",
            "commits",
            "request_errors",
        ] {
            report += &line(c);
        }
        report += "\n";
        assert!(
            counter(ctl, "mds_write_bytes") > 0,
            "{name} never wrote through the MDS:\n{report}"
        );
        assert_eq!(counter(ctl, "request_errors"), 0, "{name}:\n{report}");
    }
    eprintln!("{turn} turns, both backed off after turn {after:?}\n{report}");

    for g in [a, b, mds] {
        let (code, log) = g.terminate();
        assert_eq!(code, Some(0), "{log}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
