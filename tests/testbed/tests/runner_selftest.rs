//! Self-tests of the guest runner: success with files given back, a failing step that is named
//! with the kernel log tail, and a hang that the timeout kills and reports.

use std::time::Duration;

use pnfs_testbed::{require, GuestRunner, GuestScript, TestbedError};

#[test]
fn guest_runs_script_and_gives_files_back() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let script = r#"
        step "environment"
        test "$(id -u)" = 0
        echo "greeting=$GREETING"
        printf '%s' "$GREETING" > $OUT/greeting
        step "writable tree and loopback"
        echo x > /etc/pnfs-test && echo y > /var/pnfs-test && mkdir -p /newdir
        ip -o link show lo | grep -q 'state UNKNOWN\|UP'
        test -e /dev/fd/0
        uname -r > $OUT/release
    "#;
    let outcome = runner
        .run(
            &GuestScript::new(script)
                .name("selftest-ok")
                .env("GREETING", "it's a 'quoted' value")
                .timeout(Duration::from_secs(600)),
        )
        .expect("guest run");
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(outcome.out_file("greeting")).unwrap(),
        "it's a 'quoted' value"
    );
    assert_eq!(
        std::fs::read_to_string(outcome.out_file("release"))
            .unwrap()
            .trim(),
        runner.kernel().release
    );
    assert!(outcome.stdout.contains("greeting=it's a 'quoted' value"));
    let names: Vec<&str> = outcome.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["environment", "writable tree and loopback"]);
    // Nothing the guest wrote reached the host's root.
    assert!(!std::path::Path::new("/etc/pnfs-test").exists());
    println!(
        "boot {:.1}s, total {:.1}s",
        outcome.boot_time.as_secs_f64(),
        outcome.elapsed.as_secs_f64()
    );
}

#[test]
fn failing_step_is_named_with_kernel_log_tail() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let script = r#"
        step "this step passes"
        true
        step "this step fails on purpose"
        echo "about to fail"
        ls /definitely/not/here
        step "never reached"
    "#;
    let err = runner
        .run(
            &GuestScript::new(script)
                .name("selftest-fail")
                .timeout(Duration::from_secs(600)),
        )
        .expect_err("the script fails on purpose");
    let msg = err.to_string();
    println!("the expected failure reads:\n{msg}");
    match &err {
        TestbedError::GuestFailed {
            exit_code,
            failed,
            report,
        } => {
            let kernel_log_tail = &report.kernel_log_tail;
            assert_eq!(report.step, "\"this step fails on purpose\"");
            assert_eq!(*exit_code, 2, "ls exits with 2 for a missing file");
            assert!(failed.contains("ls /definitely/not/here"), "{failed}");
            // The kernel log tail is real kernel output: the step markers and the power-off.
            assert!(
                kernel_log_tail.contains("pnfs-testbed: step: this step fails on purpose"),
                "{kernel_log_tail}"
            );
            assert!(
                kernel_log_tail.contains("reboot: Power down"),
                "{kernel_log_tail}"
            );
            assert!(kernel_log_tail.lines().count() >= 20, "{kernel_log_tail}");
        }
        other => panic!("expected GuestFailed, got: {other}"),
    }
    assert!(msg.contains("guest step \"this step fails on purpose\" failed"));
    assert!(msg.contains("last lines of the guest kernel log"));
    assert!(msg.contains("about to fail"));
}

#[test]
fn hanging_guest_is_killed_and_reported_as_timeout() {
    let Some(runner) = require(GuestRunner::new()) else {
        return;
    };
    let timeout = Duration::from_secs(20);
    let err = runner
        .run(
            &GuestScript::new("step \"hang forever\"\nsleep 1000\n")
                .name("selftest-hang")
                .timeout(timeout),
        )
        .expect_err("the script hangs on purpose");
    println!("the expected timeout reads:\n{err}");
    match &err {
        TestbedError::GuestTimeout {
            timeout: t,
            ran_for,
            report,
        } => {
            let (step, kernel_log_tail) = (&report.step, &report.kernel_log_tail);
            assert_eq!(*t, timeout);
            // The boot may be slow on a loaded machine: the step is named if it was reached.
            assert!(
                *step == "\"hang forever\"" || *step == "<before the first step>",
                "{step}"
            );
            assert!(!kernel_log_tail.is_empty());
            // Killed at the timeout, not waited for.
            assert!(
                *ran_for >= timeout && *ran_for < timeout + Duration::from_secs(5),
                "qemu ran {ran_for:?}"
            );
        }
        other => panic!("expected GuestTimeout, got: {other}"),
    }
}
