//! `pnfs-guest`: run a shell script in the test guest by hand (exploration, debugging).
//!
//! ```text
//! pnfs-guest [--timeout SECS] [--memory MIB] [--cpus N] [--keep] (-c SCRIPT | FILE)
//! ```
//! Prints the guest output live; exits with the script's exit code (124 on timeout, 125 when
//! the guest gave no exit code or the runner failed). `--keep` keeps the run directory (the
//! `/out` share and the kernel log) and prints its path.

use std::process::ExitCode;
use std::time::Duration;

use pnfs_testbed::{GuestRunner, GuestScript, TestbedError};

fn usage() -> ExitCode {
    eprintln!(
        "usage: pnfs-guest [--timeout SECS] [--memory MIB] [--cpus N] [--keep] (-c SCRIPT | FILE)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut timeout_s: u64 = 600;
    let mut memory_mib: u32 = 1024;
    let mut cpus: u32 = 2;
    let mut keep = false;
    let mut script = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--timeout" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => timeout_s = v,
                None => return usage(),
            },
            "--memory" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => memory_mib = v,
                None => return usage(),
            },
            "--cpus" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) if (1..=8).contains(&v) => cpus = v,
                _ => return usage(),
            },
            "--keep" => keep = true,
            "-c" => match args.next() {
                Some(s) => script = Some(s),
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            file if script.is_none() => match std::fs::read_to_string(file) {
                Ok(s) => script = Some(s),
                Err(e) => {
                    eprintln!("pnfs-guest: read {file}: {e}");
                    return ExitCode::from(2);
                }
            },
            _ => return usage(),
        }
    }
    let Some(script) = script else {
        return usage();
    };
    let runner = match GuestRunner::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pnfs-guest: {e}");
            return ExitCode::from(125);
        }
    };
    let job = GuestScript::new(script)
        .name("pnfs-guest")
        .timeout(Duration::from_secs(timeout_s))
        .memory_mib(memory_mib)
        .cpus(cpus);
    match runner.run(&job) {
        Ok(mut outcome) => {
            for s in &outcome.steps {
                eprintln!("step {:?}: {:.1}s", s.name, s.duration.as_secs_f64());
            }
            if keep {
                eprintln!("run directory kept: {}", outcome.keep().display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pnfs-guest: {e}");
            match e {
                TestbedError::GuestFailed { exit_code, .. } => {
                    ExitCode::from(u8::try_from(exit_code.clamp(1, 255)).unwrap_or(1))
                }
                TestbedError::GuestTimeout { .. } => ExitCode::from(124),
                _ => ExitCode::from(125),
            }
        }
    }
}
