//! The `pnfsgw` binary as users run it: exit codes and messages.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pnfsgw");

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pnfsgw-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/pnfsgw.example.toml")
}

#[test]
fn check_config_accepts_the_example() {
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(example())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (2 device(s))"));
}

#[test]
fn check_config_rejects_with_file_line_column_and_exit_2() {
    let dir = tmpdir("bad");
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[mds]\naddresses = [\"127.0.0.1:2049\"]\n[nbd]\ntcp = [\"127.0.0.1:10809\"]\n\
         [[device]]\nname = \"a\"\npath = \"/a\"\nfrontends = [\"ublk\"]\nqueues = 0\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "{}:9:10: queues = 0 is out of range: it must be between 1 and 64",
            file.display()
        )
    );

    std::fs::write(
        &file,
        "[mds]\naddresses = [\"127.0.0.1:2049\"]\nbogus = 1\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{}:3:1: ", file.display())),
        "{err}"
    );
    assert!(err.contains("bogus"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_with_a_bad_config_exits_2() {
    let out = Command::new(BIN)
        .args(["run", "--config", "/nonexistent/pnfsgw.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pnfsgw.toml: cannot read"));
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    let out = Command::new(BIN)
        .args(["export", "--mds", "x:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args([
            "export",
            "--mds",
            "nohost",
            "--path",
            "/f",
            "--nbd",
            "127.0.0.1:10809",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--mds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  success",
        "1  runtime failure",
        "2  usage or configuration error",
        "3  run/export",
    ] {
        assert!(help.contains(line), "{help}");
    }
}

#[test]
fn stats_without_a_gateway_exits_1() {
    let dir = tmpdir("stats");
    let out = Command::new(BIN)
        .args(["stats", "--control"])
        .arg(dir.join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is the gateway running?"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An MDS address where nothing listens: bind a port, then free it.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn run_against_an_unreachable_mds_fails_with_exit_1_and_cleans_up() {
    let dir = tmpdir("run");
    let file = dir.join("gw.toml");
    let control = dir.join("control.sock");
    std::fs::write(
        &file,
        format!(
            "[mds]\naddresses = [\"127.0.0.1:{}\"]\nconnect_timeout_ms = 2000\n\
             [nbd]\ntcp = [\"127.0.0.1:{}\"]\n[control]\nsocket = \"{}\"\n\
             [[device]]\nname = \"a\"\npath = \"/a\"\n",
            dead_port(),
            dead_port(),
            control.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "pnfsgw run did not give up");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        err.push_str(&line.unwrap());
        err.push('\n');
    }
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("connecting to the MDS at 127.0.0.1:"), "{err}");
    assert!(!control.exists(), "control socket left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn systemd_units_verify() {
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing (apt-get install systemd)"
        );
        eprintln!("SKIP: systemd-analyze not installed");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/verify.sh");
    let out = Command::new(script).arg(BIN).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `pnfsgw` with `args` until it exits (bounded), returning (exit code, stderr).
fn run_to_exit(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        for line in BufReader::new(stderr).lines() {
            s.push_str(&line.unwrap());
            s.push('\n');
        }
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pnfsgw {args:?} did not exit within {limit:?}:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), reader.join().unwrap())
}

#[test]
fn run_against_ganesha_reports_a_missing_file_by_name() {
    let dir = tmpdir("ganesha");
    let export = dir.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let Some(ganesha) = pnfs_testbed::require(pnfs_testbed::Ganesha::start(&export)) else {
        return;
    };
    let file = dir.join("gw.toml");
    std::fs::write(
        &file,
        format!(
            "[mds]\naddresses = [\"{}\"]\nconnect_timeout_ms = 10000\n\
             [nbd]\ntcp = [\"127.0.0.1:{}\"]\n[control]\nsocket = \"{}\"\n\
             [[device]]\nname = \"missing\"\npath = \"/export/no-such-file\"\n",
            ganesha.addr(),
            dead_port(),
            dir.join("control.sock").display()
        ),
    )
    .unwrap();
    let (code, err) = run_to_exit(
        &["run", "--config", file.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(err.contains("session up"), "{err}");
    assert!(
        err.contains("device missing: cannot start: /export/no-such-file"),
        "{err}"
    );
    assert!(err.contains("no device could start (missing)"), "{err}");
    assert_eq!(code, Some(1), "{err}");
    ganesha.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_examples_metrics_table_checks_and_a_remote_address_is_refused() {
    let dir = tmpdir("metrics-example");
    let text = std::fs::read_to_string(example()).unwrap();
    // The commented [metrics] table of the example, switched on.
    let on = text
        .replace("# [metrics]\n", "[metrics]\n")
        .replace("# listen = ", "listen = ")
        .replace("# allow_remote = ", "allow_remote = ");
    assert_ne!(on, text, "the example has no commented [metrics] table");
    let file = dir.join("on.toml");
    std::fs::write(&file, &on).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let remote = on.replace("listen = \"127.0.0.1:9810\"", "listen = \"0.0.0.0:9810\"");
    let line = remote
        .lines()
        .position(|l| l.starts_with("listen = \"0.0.0.0:9810\""))
        .expect("the example's listen line")
        + 1;
    let file = dir.join("remote.toml");
    std::fs::write(&file, &remote).unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(&format!("{}:{line}:10: ", file.display())),
        "{err}"
    );
    assert!(err.contains("allow_remote = true"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_with_its_metrics_port_taken_fails_with_exit_1_naming_it() {
    let dir = tmpdir("metrics-busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let file = dir.join("gw.toml");
    let control = dir.join("control.sock");
    std::fs::write(
        &file,
        format!(
            "[mds]\naddresses = [\"127.0.0.1:{}\"]\nconnect_timeout_ms = 2000\n\
             [nbd]\ntcp = [\"127.0.0.1:{}\"]\n[control]\nsocket = \"{}\"\n\
             [metrics]\nlisten = \"{busy}\"\n\
             [[device]]\nname = \"a\"\npath = \"/a\"\n",
            dead_port(),
            dead_port(),
            control.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("metrics listener {busy}: ")), "{err}");
    assert!(!control.exists(), "control socket left behind");
    drop(taken);
    std::fs::remove_dir_all(&dir).unwrap();
}
